/* gst-mone: 8-bit YUV scaled straight into an RGB model's floats (see the header).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmoneyuvscale.h"

#include <string.h>

struct _GstMoneYuvScaler
{
  GstMoneGreyScaler *planes[3]; /* Y, U, V, each into [0, 1] as byte / 255 */
  gint src_x[3], src_y[3];      /* each plane's part of the rectangle, in its own samples */
  GstMoneScalerTarget target;
  /* (byte / 255 - offset) * scale per component, then the matrix's coefficients */
  gfloat offset[3], scale[3];
  gfloat r_from_v, g_from_u, g_from_v, b_from_u;
  gfloat *scratch;              /* (3, out_height, out_width) the scaled planes */
};

gboolean
gst_mone_yuv_scaler_usable (const GstVideoInfo * in_info)
{
  const GstVideoFormatInfo *finfo = in_info->finfo;
  gdouble kr, kb;

  /* GStreamer 1.22 describes VYUY with UYVY's component offsets (U first) while its own pack and
   * unpack functions, like the fourcc, put V first: read by the description, U and V swap. */
  if (GST_VIDEO_FORMAT_INFO_FORMAT (finfo) == GST_VIDEO_FORMAT_VYUY)
    return FALSE;
  if (!GST_VIDEO_FORMAT_INFO_IS_YUV (finfo) || GST_VIDEO_FORMAT_INFO_BITS (finfo) != 8
      || GST_VIDEO_FORMAT_INFO_IS_COMPLEX (finfo) || GST_VIDEO_FORMAT_INFO_IS_TILED (finfo)
      || GST_VIDEO_INFO_INTERLACE_MODE (in_info) != GST_VIDEO_INTERLACE_MODE_PROGRESSIVE
      || !gst_video_color_matrix_get_Kr_Kb (in_info->colorimetry.matrix, &kr, &kb))
    return FALSE;
  for (guint c = 0; c < 3; c++)
    if (GST_VIDEO_FORMAT_INFO_DEPTH (finfo, c) != 8 || GST_VIDEO_FORMAT_INFO_PSTRIDE (finfo, c) < 1)
      return FALSE;
  return TRUE;
}

GstMoneYuvScaler *
gst_mone_yuv_scaler_new (const GstVideoInfo * in_info, gint src_x, gint src_y, gint src_width,
    gint src_height, const GstMoneScalerTarget * target, GstMoneGreyScalerPath path)
{
  const GstVideoFormatInfo *finfo = in_info->finfo;
  GstMoneYuvScaler *s = g_new0 (GstMoneYuvScaler, 1);
  gint offsets[GST_VIDEO_MAX_COMPONENTS], scales[GST_VIDEO_MAX_COMPONENTS];
  gdouble kr, kb;

  for (guint c = 0; c < 3; c++) {
    /* The plane's samples covering the rectangle (subsampled: the pairs it touches). */
    const gint x0 = GST_VIDEO_FORMAT_INFO_SCALE_WIDTH (finfo, c, src_x);
    const gint y0 = GST_VIDEO_FORMAT_INFO_SCALE_HEIGHT (finfo, c, src_y);
    const gint x1 = GST_VIDEO_FORMAT_INFO_SCALE_WIDTH (finfo, c, src_x + src_width);
    const gint y1 = GST_VIDEO_FORMAT_INFO_SCALE_HEIGHT (finfo, c, src_y + src_height);

    s->src_x[c] = x0;
    s->src_y[c] = y0;
    s->planes[c] = gst_mone_grey_scaler_new (x1 - x0, y1 - y0,
        GST_VIDEO_FORMAT_INFO_PSTRIDE (finfo, c), target, 0.0f, 1.0f / 255.0f, path);
    if (!s->planes[c]) {
      gst_mone_yuv_scaler_free (s);
      return NULL;
    }
  }
  s->target = *target;

  /* Y' = (Y - offset) / scale in [0, 1], U' and V' likewise in [-0.5, 0.5]; R = Y' + 2 (1 - Kr) V',
   * B = Y' + 2 (1 - Kb) U', G = (Y' - Kr R - Kb B) / (1 - Kr - Kb). */
  gst_video_color_range_offsets (in_info->colorimetry.range, finfo, offsets, scales);
  gst_video_color_matrix_get_Kr_Kb (in_info->colorimetry.matrix, &kr, &kb);
  for (guint c = 0; c < 3; c++) {
    s->offset[c] = offsets[c] / 255.0f;
    s->scale[c] = 255.0f / scales[c];
  }
  s->r_from_v = (gfloat) (2 * (1 - kr));
  s->b_from_u = (gfloat) (2 * (1 - kb));
  s->g_from_u = (gfloat) (-kb * 2 * (1 - kb) / (1 - kr - kb));
  s->g_from_v = (gfloat) (-kr * 2 * (1 - kr) / (1 - kr - kb));
  s->scratch = g_new (gfloat, (gsize) 3 * target->out_width * target->out_height);
  return s;
}

void
gst_mone_yuv_scaler_free (GstMoneYuvScaler * scaler)
{
  if (!scaler)
    return;
  for (guint c = 0; c < 3; c++)
    gst_mone_grey_scaler_free (scaler->planes[c]);
  g_free (scaler->scratch);
  g_free (scaler);
}

/* n pixels of scaled Y, U, V (byte / 255) to R, G, B in [0, 1]; the constants in locals and the
 * pointers restrict, so that the compiler vectorises the loop. */
static void
yuv_row_to_rgb (const GstMoneYuvScaler * s, const gfloat * restrict y_row,
    const gfloat * restrict u_row, const gfloat * restrict v_row, gfloat * restrict red,
    gfloat * restrict green, gfloat * restrict blue, gint n)
{
  const gfloat y_offset = s->offset[0], u_offset = s->offset[1], v_offset = s->offset[2];
  const gfloat y_scale = s->scale[0], u_scale = s->scale[1], v_scale = s->scale[2];
  const gfloat r_from_v = s->r_from_v, g_from_u = s->g_from_u, g_from_v = s->g_from_v,
      b_from_u = s->b_from_u;

  for (gint x = 0; x < n; x++) {
    const gfloat luma = (y_row[x] - y_offset) * y_scale;
    const gfloat u = (u_row[x] - u_offset) * u_scale;
    const gfloat v = (v_row[x] - v_offset) * v_scale;
    red[x] = CLAMP (luma + r_from_v * v, 0.0f, 1.0f);
    green[x] = CLAMP (luma + g_from_u * u + g_from_v * v, 0.0f, 1.0f);
    blue[x] = CLAMP (luma + b_from_u * u, 0.0f, 1.0f);
  }
}

void
gst_mone_yuv_scaler_run (GstMoneYuvScaler * s, const GstVideoFrame * frame, gfloat * dest)
{
  const GstMoneScalerTarget *t = &s->target;
  const gsize plane = (gsize) t->out_width * t->out_height;
  gfloat *y_plane = s->scratch, *u_plane = y_plane + plane, *v_plane = u_plane + plane;
  gfloat *red = dest, *green = red + plane, *blue = green + plane;

  for (guint c = 0; c < 3; c++)
    gst_mone_grey_scaler_run_frame (s->planes[c], frame, c, s->src_x[c], s->src_y[c],
        s->scratch + c * plane);
  /* Black outside the picture; inside, the matrix. */
  memset (dest, 0, 3 * plane * sizeof (gfloat));
  for (gint y = t->y; y < t->y + t->height; y++) {
    const gsize i = (gsize) y * t->out_width + t->x;
    yuv_row_to_rgb (s, y_plane + i, u_plane + i, v_plane + i, red + i, green + i, blue + i,
        t->width);
  }
}
