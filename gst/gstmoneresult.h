/* gst-mone: monefilter's results, as the GstStructure its meta and its messages carry.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_MONE_RESULT_H__
#define __GST_MONE_RESULT_H__

#include <gst/gst.h>
#include <gst/video/video.h>

#include <mone/mone.h>

#include "gstmoneinput.h"
#include "gstmoneregions.h"

G_BEGIN_DECLS

/* How a result came about, beyond what MoneResult says. */
typedef struct
{
  guint64 frame;                /* the frame classified */
  guint top_k;                  /* classes listed, best first */
  gboolean budget_auto;         /* the budget was chosen by budget-mode=auto */
  gdouble budget_requested;
  gint64 latency_ns;            /* conversion and inference */
  /* Where the model input came from: a region's (gst_mone_input_push_region), or NULL for the
   * input's whole-frame geometry. */
  const GstMoneInputGeometry *geometry;
} GstMoneResultInfo;

/* Which frame a buffer is and whether it carries a result of its own. */
typedef struct
{
  guint64 frame;
  gboolean reused;
  GstClockTime timestamp, stream_time, running_time, duration;
} GstMoneFrameStamp;

/* The result's fields ("mone-classification": top-k, budget, cost, expert grid, and the geometry
 * and window of `input` it was computed from). Free with gst_structure_free(). */
GstStructure *gst_mone_result_new (MoneModel * model, const MoneResult * result,
    const GstMoneInput * input, const GstMoneResultInfo * info);

/* Attaches `result`, stamped for this buffer, as the buffer's GstMoneMeta (and, with GStreamer's
 * analytics library, as a classification in its relation meta). With `message` non-NULL also
 * returns a copy named for an element message. FALSE when the meta cannot be attached. */
gboolean gst_mone_result_attach (GstBuffer * buffer, const GstStructure * result,
    const GstMoneFrameStamp * stamp, GstStructure ** message);

/* Marks a region's result (from gst_mone_result_new) with the region: its id, type, box and
 * source ("roi-meta" for a region meta, with or without a detection of the same box; "od-mtd" for
 * a detection alone). */
void gst_mone_result_set_region (GstStructure * result, const GstMoneRegion * region);

/* What a frame of regions cost, for the frame's own fields. */
typedef struct
{
  guint classified;             /* regions run on this frame */
  guint skipped;                /* regions left out: no area inside the frame */
  gdouble gflops;               /* spent on this frame, all regions */
  gint64 latency_ns;            /* conversion and inference of all regions */
} GstMoneRegionsCost;

/* inference-region=roi-list: attaches the buffer's GstMoneMeta with the frame's stamp and a
 * "regions" array of the results in `results` (GstStructure, one per region, in the regions'
 * order; each copied, stamped for this frame: reused unless computed on it), and adds each result
 * to its region's GstVideoRegionOfInterestMeta as a parameter structure named
 * "mone-classification" and, for a region with a detection (GStreamer >= 1.24), as a
 * GstAnalyticsClsMtd the detection relates to. `regions` holds the GstMoneRegion of each result,
 * in the same order. With `message` non-NULL also returns a copy of the meta's fields named for an
 * element message. */
gboolean gst_mone_result_attach_regions (GstBuffer * buffer, GPtrArray * results,
    GPtrArray * regions, const GstMoneFrameStamp * stamp, const GstMoneRegionsCost * cost,
    GstStructure ** message);

G_END_DECLS

#endif /* __GST_MONE_RESULT_H__ */
