/* gst-mone: 8-bit YUV (planar, semi-planar or packed) scaled straight into an RGB model's floats.
 *
 * Each of Y, U and V goes through the grey scaler (gstmonegreyscale.h: the converter's filter) from
 * its own plane at its own resolution to the model's size, then the frame's colour matrix and
 * range (its colorimetry, as GstVideoConverter reads them) give R, G and B in [0, 1], planar. The
 * converter instead scaled the frame in its own format, upsampled the chroma and converted: the
 * same filter and matrix, in bytes, with the chroma's siting, which this leaves out (a quarter of a
 * chroma sample at most).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_MONE_YUV_SCALE_H__
#define __GST_MONE_YUV_SCALE_H__

#include <gst/video/video.h>

#include "gstmonegreyscale.h"

G_BEGIN_DECLS

typedef struct _GstMoneYuvScaler GstMoneYuvScaler;

/* Whether frames of in_info can take this path: 8-bit YUV whose every component has a fixed sample
 * step (planar, semi-planar and packed formats such as YUY2 and AYUV; not IYU1, and not VYUY, whose
 * description in GStreamer 1.22 swaps U and V), progressive. */
gboolean gst_mone_yuv_scaler_usable (const GstVideoInfo * in_info);

/* A scaler of the rectangle src_x, src_y, src_width x src_height of in_info's frames into
 * `target` of an RGB input, everything else black. NULL when a plane's part of the rectangle is
 * under four samples across. */
GstMoneYuvScaler *gst_mone_yuv_scaler_new (const GstVideoInfo * in_info, gint src_x, gint src_y,
    gint src_width, gint src_height, const GstMoneScalerTarget * target,
    GstMoneGreyScalerPath path);
void gst_mone_yuv_scaler_free (GstMoneYuvScaler * scaler);

/* dest: (3, out_height, out_width), R, G, B. */
void gst_mone_yuv_scaler_run (GstMoneYuvScaler * scaler, const GstVideoFrame * frame,
    gfloat * dest);

G_END_DECLS
#endif /* __GST_MONE_YUV_SCALE_H__ */
