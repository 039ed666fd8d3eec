/* gst-mone: monefilter's input preparation. Fits a video frame into the model input (converter
 * geometry per scale-mode, colour conversion, limited-range expansion) and keeps the window of
 * the latest frames a video model sees.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_MONE_INPUT_H__
#define __GST_MONE_INPUT_H__

#include <gst/video/video.h>

#include <mone/mone.h>

#include "gstmonefilter.h"

G_BEGIN_DECLS

/* Which part of the frame is classified and where it lands in the model input. */
typedef struct
{
  gint src_x, src_y, src_width, src_height;     /* frame pixels */
  gint dest_x, dest_y, dest_width, dest_height; /* model input pixels; outside: black */
} GstMoneInputGeometry;

/* The geometry of `mode` for a frame of in_width x in_height with pixel aspect par_n/par_d and a
 * model input of model_width x model_height. Pure: no state, no allocation. */
void gst_mone_input_fit (gint in_width, gint in_height, gint par_n, gint par_d,
    gint model_width, gint model_height, GstMoneFilterScaleMode mode,
    GstMoneInputGeometry * geometry);

const gchar *gst_mone_scale_mode_nick (GstMoneFilterScaleMode mode);

typedef struct _GstMoneInput GstMoneInput;

/* An input for the model of `config`; conversions use `threads` threads (the engine's cores are
 * idle while a frame is converted). Frames can be pushed once a format is set. */
GstMoneInput *gst_mone_input_new (const MoneConfig * config, guint threads);
void gst_mone_input_free (GstMoneInput * input);

/* Prepares conversion from frames of `in_info` (the caps): the model-side format and range, the
 * converter, and the code path each frame takes. Empties the window. FALSE when GstVideoConverter
 * cannot convert the format. */
gboolean gst_mone_input_set_format (GstMoneInput * input, const GstVideoInfo * in_info,
    GstMoneFilterScaleMode mode);
/* Rebuilds the converter for another scale-mode (the window is kept). */
gboolean gst_mone_input_set_scale_mode (GstMoneInput * input, GstMoneFilterScaleMode mode);
GstMoneFilterScaleMode gst_mone_input_get_scale_mode (const GstMoneInput * input);
const GstMoneInputGeometry *gst_mone_input_get_geometry (const GstMoneInput * input);
const GstVideoInfo *gst_mone_input_get_video_info (const GstMoneInput * input);
/* How frames reach the model: "converter", "converter, two steps" or "luma scaler (ISA)". */
const gchar *gst_mone_input_get_path (const GstMoneInput * input);

/* Converts `frame` and appends it to the window as floats in [0, 1], (C, H, W); the first frame
 * after a reset fills every slot, so a video model answers at once. */
gboolean gst_mone_input_push (GstMoneInput * input, GstVideoFrame * frame);
/* (T, C, H, W) the model input, oldest frame first. */
const float *gst_mone_input_get_window (const GstMoneInput * input);
/* Frames pushed since the last reset, at most T: the window is full at T. */
guint gst_mone_input_get_filled (const GstMoneInput * input);
/* The next frame starts the window afresh (new stream, flush, gap, discontinuity). */
void gst_mone_input_reset (GstMoneInput * input);

/* Regions of interest (image models only). The rectangle x, y, width x height (inside the frame,
 * at least 1x1) is fitted to the model input per the scale-mode, as a whole frame of that size
 * would be, and converted into the window's single slot; *geometry says where it came from, in
 * frame pixels. A region converts exactly as the same pixels cut out as a frame of their own:
 * GstVideoConverter reads only the rectangle. Converters are kept per rectangle between frames,
 * so regions that stay put (a fixed region list, a steady tracker) cost no allocation;
 * gst_mone_input_end_regions() after each frame drops those no region used. */
gboolean gst_mone_input_push_region (GstMoneInput * input, GstVideoFrame * frame, gint x, gint y,
    gint width, gint height, GstMoneInputGeometry * geometry);
void gst_mone_input_end_regions (GstMoneInput * input);

G_END_DECLS

#endif /* __GST_MONE_INPUT_H__ */
