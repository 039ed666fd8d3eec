/* gst-mone: the luma of 8-bit YUV and grey frames as a GRAY8 frame (see the header).
 *
 * Built with -O3 (gst/meson.build): the copy loops below are vectorised only then.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmoneluma.h"

gboolean
gst_mone_luma_usable (const GstVideoInfo * in_info)
{
  const GstVideoFormatInfo *finfo = in_info->finfo;

  return (GST_VIDEO_FORMAT_INFO_IS_YUV (finfo) || GST_VIDEO_FORMAT_INFO_IS_GRAY (finfo))
      && GST_VIDEO_FORMAT_INFO_DEPTH (finfo, 0) == 8 && GST_VIDEO_FORMAT_INFO_BITS (finfo) == 8
      && GST_VIDEO_FORMAT_INFO_W_SUB (finfo, 0) == 0 && GST_VIDEO_FORMAT_INFO_H_SUB (finfo, 0) == 0
      && !GST_VIDEO_FORMAT_INFO_IS_COMPLEX (finfo) && !GST_VIDEO_FORMAT_INFO_IS_TILED (finfo)
      && !GST_VIDEO_FORMAT_INFO_HAS_PALETTE (finfo)
      && GST_VIDEO_INFO_INTERLACE_MODE (in_info) == GST_VIDEO_INTERLACE_MODE_PROGRESSIVE;
}

void
gst_mone_luma_info (const GstVideoInfo * in_info, GstVideoInfo * luma_info)
{
  gst_video_info_set_format (luma_info, GST_VIDEO_FORMAT_GRAY8, GST_VIDEO_INFO_WIDTH (in_info),
      GST_VIDEO_INFO_HEIGHT (in_info));
  GST_VIDEO_INFO_FPS_N (luma_info) = GST_VIDEO_INFO_FPS_N (in_info);
  GST_VIDEO_INFO_FPS_D (luma_info) = GST_VIDEO_INFO_FPS_D (in_info);
  GST_VIDEO_INFO_PAR_N (luma_info) = GST_VIDEO_INFO_PAR_N (in_info);
  GST_VIDEO_INFO_PAR_D (luma_info) = GST_VIDEO_INFO_PAR_D (in_info);
  luma_info->colorimetry.range = in_info->colorimetry.range;
}

gboolean
gst_mone_luma_is_packed (const GstVideoInfo * in_info)
{
  return GST_VIDEO_FORMAT_INFO_PSTRIDE (in_info->finfo, 0) != 1;
}

gboolean
gst_mone_luma_view_unsafe (const GstVideoFrame * frame, gint x, gint y, gint width, gint height,
    gint dest_width, gint dest_height)
{
  const guintptr start = (guintptr) GST_VIDEO_FRAME_COMP_DATA (frame, 0)
      + (guintptr) y * GST_VIDEO_FRAME_COMP_STRIDE (frame, 0) + (guintptr) x;

  return width == 2 * dest_width && height == 2 * dest_height
      && ((start | (guintptr) GST_VIDEO_FRAME_COMP_STRIDE (frame, 0)) & 1);
}

/* Copies keep rows of this many bytes' alignment (the widest vector loads GStreamer's scalers use). */
#define COPY_ALIGN 16

static gint
copy_stride (const GstVideoInfo * luma_info)
{
  return GST_ROUND_UP_16 (GST_VIDEO_INFO_WIDTH (luma_info));
}

gsize
gst_mone_luma_copy_size (const GstVideoInfo * luma_info)
{
  return (gsize) copy_stride (luma_info) * GST_VIDEO_INFO_HEIGHT (luma_info) + 2 * COPY_ALIGN;
}

/* One row's luma samples, `step` bytes apart; a constant step lets the compiler vectorise. */
static inline void
copy_samples (const guint8 * restrict src, gint step, guint8 * restrict dest, gint n)
{
  for (gint x = 0; x < n; x++)
    dest[x] = src[(gsize) x * step];
}

static void
copy_rectangle (const guint8 * src, gint src_stride, gint step, guint8 * dest, gint dest_stride,
    gint width, gint height)
{
  for (gint y = 0; y < height; y++) {
    const guint8 *row = src + (gsize) y * src_stride;
    guint8 *out = dest + (gsize) y * dest_stride;
    switch (step) {
      case 2:                  /* YUY2, UYVY, YVYU, VYUY */
        copy_samples (row, 2, out, width);
        break;
      case 4:                  /* AYUV, VUYA */
        copy_samples (row, 4, out, width);
        break;
      default:
        copy_samples (row, step, out, width);
        break;
    }
  }
}

void
gst_mone_luma_frame (const GstVideoFrame * frame, const GstVideoInfo * luma_info,
    guint8 * copy_plane, gint x, gint y, gint width, gint height, GstVideoFrame * luma)
{
  const guint8 *samples = GST_VIDEO_FRAME_COMP_DATA (frame, 0);
  const gint stride = GST_VIDEO_FRAME_COMP_STRIDE (frame, 0);

  /* The frame's buffer, flags and id stay; only what the converter reads changes. */
  *luma = *frame;
  luma->info = *luma_info;
  if (!copy_plane) {
    luma->info.stride[0] = stride;
    luma->data[0] = (gpointer) samples;
    return;
  }
  {
    const gint step = GST_VIDEO_FRAME_COMP_PSTRIDE (frame, 0);
    const gint dest_stride = copy_stride (luma_info);
    /* The plane starts where column x of every row lands on an aligned address. */
    guint8 *aligned = (guint8 *) GST_ROUND_UP_16 ((guintptr) copy_plane);
    guint8 *plane = aligned + (COPY_ALIGN - x % COPY_ALIGN) % COPY_ALIGN;

    copy_rectangle (samples + (gsize) y * stride + (gsize) x * step, stride, step,
        plane + (gsize) y * dest_stride + x, dest_stride, width, height);
    luma->info.stride[0] = dest_stride;
    luma->data[0] = plane;
  }
}
