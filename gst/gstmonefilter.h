/* gst-mone: monefilter, classifies video frames with a Mixture of Nested Experts model.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_MONE_FILTER_H__
#define __GST_MONE_FILTER_H__

#include <gst/gst.h>
#include <gst/video/video.h>
#include <gst/video/gstvideofilter.h>

#include <mone/mone.h>

G_BEGIN_DECLS

#define GST_TYPE_MONE_FILTER (gst_mone_filter_get_type ())
G_DECLARE_FINAL_TYPE (GstMoneFilter, gst_mone_filter, GST, MONE_FILTER, GstVideoFilter);

#define GST_TYPE_MONE_FILTER_BUDGET_MODE (gst_mone_filter_budget_mode_get_type ())
#define GST_TYPE_MONE_FILTER_SCALE_MODE (gst_mone_filter_scale_mode_get_type ())
#define GST_TYPE_MONE_FILTER_INFERENCE_REGION (gst_mone_filter_inference_region_get_type ())

typedef enum
{
  GST_MONE_FILTER_BUDGET_MODE_FIXED,    /* run at the `budget` property */
  GST_MONE_FILTER_BUDGET_MODE_AUTO,     /* largest budget <= `budget` that fits the deadline */
} GstMoneFilterBudgetMode;

typedef enum
{
  GST_MONE_FILTER_SCALE_MODE_STRETCH,   /* whole frame to the model size, aspect not kept */
  GST_MONE_FILTER_SCALE_MODE_LETTERBOX, /* whole frame, aspect kept, black bars */
  GST_MONE_FILTER_SCALE_MODE_CROP,      /* centred crop with the model's aspect */
} GstMoneFilterScaleMode;

typedef enum
{
  GST_MONE_FILTER_INFERENCE_REGION_FULL_FRAME,  /* classify the whole frame */
  GST_MONE_FILTER_INFERENCE_REGION_ROI_LIST,    /* classify each region of interest on it */
} GstMoneFilterInferenceRegion;

GType gst_mone_filter_budget_mode_get_type (void);
GType gst_mone_filter_inference_region_get_type (void);
GType gst_mone_filter_scale_mode_get_type (void);

GST_ELEMENT_REGISTER_DECLARE (monefilter);

G_END_DECLS

#endif /* __GST_MONE_FILTER_H__ */
