/* gst-mone: the luma of 8-bit YUV and grey frames as a GRAY8 frame, for grey models.
 *
 * A grey model needs only the luma. The element's own scaler (gstmonegreyscale.h) reads it in
 * place from planar formats and YUY2-like ones, and from a copy made here from the others (AYUV).
 * Where the element still uses GStreamer's converter (rectangles under four pixels across), it
 * hands it the luma as a GRAY8 frame: GStreamer 1.22 scales GRAY8 to GRAY8 on a fast path, but
 * most YUV formats into GRAY8 on a general path ten times slower (docs/engine.md, "Into the
 * model").
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_MONE_LUMA_H__
#define __GST_MONE_LUMA_H__

#include <gst/video/video.h>

G_BEGIN_DECLS

/* Whether frames of `in_info` have a luma component of 8 bits that a GRAY8 frame of the same size
 * can stand for (YUV or grey, progressive, not tiled or otherwise complex). */
gboolean gst_mone_luma_usable (const GstVideoInfo * in_info);

/* GRAY8 at in_info's size, rate and range, with default strides. */
void gst_mone_luma_info (const GstVideoInfo * in_info, GstVideoInfo * luma_info);

/* Whether the luma samples are interleaved with others (YUY2, AYUV...), so that the converter
 * must read a copy of them. */
gboolean gst_mone_luma_is_packed (const GstVideoInfo * in_info);

/* Whether the converter may not read the frame's luma plane in place for this rectangle and
 * destination size: GStreamer 1.22's converter crashes halving GRAY8 in both directions when
 * the rectangle's rows start at odd addresses. */
gboolean gst_mone_luma_view_unsafe (const GstVideoFrame * frame, gint x, gint y, gint width,
    gint height, gint dest_width, gint dest_height);

/* Bytes of the plane a copy of luma_info's luma needs (its rows aligned to 16 bytes). */
gsize gst_mone_luma_copy_size (const GstVideoInfo * luma_info);

/* `luma`, a GRAY8 frame of luma_info for the converters (not to be unmapped), holding the luma of
 * `frame` at least inside the rectangle x, y, width x height: a view of the frame's plane or,
 * when copy_plane (gst_mone_luma_copy_size() bytes) is given, that rectangle of it copied there
 * with its rows 16-byte aligned. */
void gst_mone_luma_frame (const GstVideoFrame * frame, const GstVideoInfo * luma_info,
    guint8 * copy_plane, gint x, gint y, gint width, gint height, GstVideoFrame * luma);

G_END_DECLS
#endif /* __GST_MONE_LUMA_H__ */
