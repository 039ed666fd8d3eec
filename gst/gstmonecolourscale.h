/* gst-mone: colour frames (YUV or RGB, 8 to 16 bits; planar, semi-planar or packed) scaled
 * straight into a model's floats, grey or RGB.
 *
 * Each of the frame's three colour components goes through the grey scaler (gstmonegreyscale.h:
 * the converter's filter) from its own plane, or its own bytes of a packed one, at its own
 * resolution to the model's size (components of the same pixels, as packed RGB's or YUY2's U and
 * V, in one scaler that reads each pixel once: gst_mone_grey_scaler_new_components); then one
 * affine map per pixel (none from full-range RGB into RGB models) gives the model's channels in
 * [0, 1], planar: from YUV the frame's colour matrix and range (its colorimetry, as
 * GstVideoConverter reads them) to R, G and B; from RGB the channels themselves, or for a grey
 * model the luma of the model's GRAY8 colorimetry (BT.601 weights, full range), as the converter
 * makes GRAY8 from RGB (packed RGB into a grey model mixes each pixel's samples inside one grey
 * scaler instead: gst_mone_grey_scaler_new_mixed). The filter being linear, scaling the
 * components before mixing them gives what mixing first would, up to float rounding. The
 * converter instead scaled the frame in its own format (upsampling YUV's chroma with its siting,
 * which this leaves out: a quarter of a chroma sample at most) and converted in bytes. YUV frames
 * into grey models take the grey scaler alone, on their luma.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_MONE_COLOUR_SCALE_H__
#define __GST_MONE_COLOUR_SCALE_H__

#include <gst/video/video.h>

#include "gstmonegreyscale.h"

G_BEGIN_DECLS

typedef struct _GstMoneColourScaler GstMoneColourScaler;

/* Whether frames of in_info can take this path into a model of model_info (RGB, or GRAY8 from
 * RGB frames): YUV or RGB whose three colour components are samples the grey scaler reads
 * (gst_mone_grey_scaler_sample_bytes), of one depth (planar, semi-planar and packed formats such
 * as I420, NV12, YUY2, AYUV, RGB, BGRx, GBR, I420_10LE; not IYU1, and not VYUY or P010, whose
 * descriptions in GStreamer 1.22 put V where it is not), progressive. */
gboolean gst_mone_colour_scaler_usable (const GstVideoInfo * in_info,
    const GstVideoInfo * model_info);

/* A scaler of the rectangle src_x, src_y, src_width x src_height of in_info's frames into `target`
 * of the model's input (model_info's format and colorimetry), everything else black. NULL when
 * a component's part of the rectangle is under four samples across. */
GstMoneColourScaler *gst_mone_colour_scaler_new (const GstVideoInfo * in_info,
    const GstVideoInfo * model_info, gint src_x, gint src_y, gint src_width, gint src_height,
    const GstMoneScalerTarget * target, GstMoneGreyScalerPath path);
void gst_mone_colour_scaler_free (GstMoneColourScaler * scaler);

/* dest: (C, out_height, out_width), the model's channels (R, G, B, or grey). */
void gst_mone_colour_scaler_run (GstMoneColourScaler * scaler, const GstVideoFrame * frame,
    gfloat * dest);

G_END_DECLS
#endif /* __GST_MONE_COLOUR_SCALE_H__ */
