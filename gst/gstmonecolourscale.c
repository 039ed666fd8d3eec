/* gst-mone: YUV and RGB frames scaled straight into a model's floats (see the header).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmonecolourscale.h"

#include <string.h>

#define COMPONENTS 3

struct _GstMoneColourScaler
{
  /* each into [0, 1]: its sample over its full range. Components of one plane with the same step
   * and subsampling (packed RGB, AYUV, YUY2's chroma) share a scaler that reads their pixels once:
   * components[c] for the group's first component, NULL for the others; lead[c] the group's
   * component whose byte comes first in a pixel (where the scaler reads from). */
  GstMoneGreyScaler *components[COMPONENTS];
  guint lead[COMPONENTS];
  /* Or, for packed RGB into a grey model, one scaler reading the mix of each pixel's samples from
   * its first component's (lead[0]) on: the mix's sums, then one horizontal pass. */
  GstMoneGreyScaler *mixed;
  /* each component's part of the rectangle, in its own samples */
  gint src_x[COMPONENTS], src_y[COMPONENTS];
  GstMoneScalerTarget target;
  gint channels;                /* the model's: 3 (R, G, B) or 1 (grey) */
  /* channel c = CLAMP (bias[c] + sum_k mix[c][k] * component k, 0, 1) */
  gfloat mix[3][COMPONENTS], bias[3];
  /* The mix is the identity (full-range RGB into RGB models): the components are the channels. */
  gboolean components_are_channels;
  gfloat *scratch;              /* (COMPONENTS, out_height, out_width) the scaled components */
};

static gboolean
is_grey_model (const GstVideoInfo * model_info)
{
  return GST_VIDEO_FORMAT_INFO_IS_GRAY (model_info->finfo);
}

gboolean
gst_mone_colour_scaler_usable (const GstVideoInfo * in_info, const GstVideoInfo * model_info)
{
  const GstVideoFormatInfo *finfo = in_info->finfo;
  gdouble kr, kb;

  /* GStreamer 1.22 describes VYUY with UYVY's component offsets (U first) while its own pack and
   * unpack functions, like the fourcc, put V first: read by the description, U and V swap. */
  if (GST_VIDEO_FORMAT_INFO_FORMAT (finfo) == GST_VIDEO_FORMAT_VYUY)
    return FALSE;
  if (GST_VIDEO_FORMAT_INFO_IS_COMPLEX (finfo)
      || GST_VIDEO_FORMAT_INFO_IS_TILED (finfo) || GST_VIDEO_FORMAT_INFO_HAS_PALETTE (finfo)
      || GST_VIDEO_INFO_INTERLACE_MODE (in_info) != GST_VIDEO_INTERLACE_MODE_PROGRESSIVE)
    return FALSE;
  if (GST_VIDEO_FORMAT_INFO_IS_YUV (finfo)) {
    /* into grey models the luma alone: the grey scaler's work */
    if (is_grey_model (model_info)
        || !gst_video_color_matrix_get_Kr_Kb (in_info->colorimetry.matrix, &kr, &kb))
      return FALSE;
  } else if (!GST_VIDEO_FORMAT_INFO_IS_RGB (finfo)) {
    return FALSE;
  }
  if (is_grey_model (model_info)
      && !gst_video_color_matrix_get_Kr_Kb (model_info->colorimetry.matrix, &kr, &kb))
    return FALSE;
  for (guint c = 0; c < COMPONENTS; c++)
    if (gst_mone_grey_scaler_sample_bytes (finfo, c) == 0
        || GST_VIDEO_FORMAT_INFO_DEPTH (finfo, c) != GST_VIDEO_FORMAT_INFO_DEPTH (finfo, 0))
      return FALSE;
  return TRUE;
}

/* to_rgb: R, G, B in [0, 1] from the components normalised by their range (Y in [0, 1], U and V
 * in [-0.5, 0.5]; R, G, B as they are). */
static void
frame_to_rgb (const GstVideoInfo * in_info, gdouble to_rgb[3][COMPONENTS])
{
  gdouble kr, kb;

  memset (to_rgb, 0, sizeof (gdouble) * 3 * COMPONENTS);
  if (!GST_VIDEO_INFO_IS_YUV (in_info)) {
    for (guint c = 0; c < 3; c++)
      to_rgb[c][c] = 1.0;
    return;
  }
  /* R = Y + 2 (1 - Kr) V, B = Y + 2 (1 - Kb) U, G = (Y - Kr R - Kb B) / (1 - Kr - Kb) */
  gst_video_color_matrix_get_Kr_Kb (in_info->colorimetry.matrix, &kr, &kb);
  to_rgb[0][0] = to_rgb[1][0] = to_rgb[2][0] = 1.0;
  to_rgb[0][2] = 2 * (1 - kr);
  to_rgb[2][1] = 2 * (1 - kb);
  to_rgb[1][1] = -kb * 2 * (1 - kb) / (1 - kr - kb);
  to_rgb[1][2] = -kr * 2 * (1 - kr) / (1 - kr - kb);
}

/* mix and bias of s for the model's channels from the components as scaled (each over its full
 * range). */
static void
set_mix (GstMoneColourScaler * s, const GstVideoInfo * in_info, const GstVideoInfo * model_info)
{
  gdouble to_rgb[3][COMPONENTS], to_model[3][3] = { {1, 0, 0}, {0, 1, 0}, {0, 0, 1} };
  gint offsets[GST_VIDEO_MAX_COMPONENTS], scales[GST_VIDEO_MAX_COMPONENTS];
  const gdouble top = (1u << GST_VIDEO_FORMAT_INFO_DEPTH (in_info->finfo, 0)) - 1.0;

  frame_to_rgb (in_info, to_rgb);
  if (s->channels == 1) {
    gdouble kr, kb;
    gst_video_color_matrix_get_Kr_Kb (model_info->colorimetry.matrix, &kr, &kb);
    to_model[0][0] = kr;
    to_model[0][1] = 1 - kr - kb;
    to_model[0][2] = kb;
  }
  /* component k normalised = (scaled - offsets[k] / top) * top / scales[k], the offsets and scales
   * in the components' d bits, top = 2^d - 1 */
  gst_video_color_range_offsets (in_info->colorimetry.range, in_info->finfo, offsets, scales);
  for (gint c = 0; c < s->channels; c++) {
    gdouble bias = 0;
    for (gint k = 0; k < COMPONENTS; k++) {
      gdouble m = 0;
      for (gint j = 0; j < 3; j++)
        m += to_model[c][j] * to_rgb[j][k];
      m *= top / scales[k];
      s->mix[c][k] = (gfloat) m;
      bias -= m * offsets[k] / top;
    }
    s->bias[c] = (gfloat) bias;
  }
}

/* Whether components a and b are samples of the same pixels: one plane, one step, one
 * subsampling. */
static gboolean
same_pixels (const GstVideoFormatInfo * finfo, guint a, guint b)
{
  return GST_VIDEO_FORMAT_INFO_PLANE (finfo, a) == GST_VIDEO_FORMAT_INFO_PLANE (finfo, b)
      && GST_VIDEO_FORMAT_INFO_PSTRIDE (finfo, a) == GST_VIDEO_FORMAT_INFO_PSTRIDE (finfo, b)
      && GST_VIDEO_FORMAT_INFO_W_SUB (finfo, a) == GST_VIDEO_FORMAT_INFO_W_SUB (finfo, b)
      && GST_VIDEO_FORMAT_INFO_H_SUB (finfo, a) == GST_VIDEO_FORMAT_INFO_H_SUB (finfo, b);
}

/* For the components begin .. end - 1, samples of the same pixels: which comes first in a pixel
 * (returned: where their scaler reads from) and each one's byte offset from it. */
static guint
pixel_offsets (const GstVideoFormatInfo * finfo, guint begin, guint end, gint * offsets)
{
  guint lead = begin;

  for (guint c = begin + 1; c < end; c++)
    if (GST_VIDEO_FORMAT_INFO_POFFSET (finfo, c) < GST_VIDEO_FORMAT_INFO_POFFSET (finfo, lead))
      lead = c;
  for (guint c = begin; c < end; c++)
    offsets[c - begin] = GST_VIDEO_FORMAT_INFO_POFFSET (finfo, c)
        - GST_VIDEO_FORMAT_INFO_POFFSET (finfo, lead);
  return lead;
}

/* The one scaler of a grey model from packed RGB (all three components in one plane, the same
 * step apart): the mix straight from each pixel's samples, in sample units, so that black and scale
 * map it as bias + mix . (samples over their full range). NULL for other layouts. */
static GstMoneGreyScaler *
new_mixed_scaler (GstMoneColourScaler * s, const GstVideoFormatInfo * finfo, gint src_width,
    gint src_height, const GstMoneScalerTarget * target, GstMoneGreyScalerPath path)
{
  const gint step = GST_VIDEO_FORMAT_INFO_PSTRIDE (finfo, 0);
  const gint bytes = gst_mone_grey_scaler_sample_bytes (finfo, 0);
  gint offsets[COMPONENTS];
  gfloat black, scale;

  for (guint c = 1; c < COMPONENTS; c++)
    if (!same_pixels (finfo, 0, c))
      return NULL;
  s->lead[0] = pixel_offsets (finfo, 0, COMPONENTS, offsets);
  gst_mone_grey_scaler_sample_range (finfo, 0, FALSE, &black, &scale);
  return gst_mone_grey_scaler_new_mixed (src_width, src_height, step, bytes, COMPONENTS, offsets,
      s->mix[0], target, -s->bias[0] / scale, scale, path);
}

GstMoneColourScaler *
gst_mone_colour_scaler_new (const GstVideoInfo * in_info, const GstVideoInfo * model_info,
    gint src_x, gint src_y, gint src_width, gint src_height, const GstMoneScalerTarget * target,
    GstMoneGreyScalerPath path)
{
  const GstVideoFormatInfo *finfo = in_info->finfo;
  GstMoneColourScaler *s = g_new0 (GstMoneColourScaler, 1);

  s->target = *target;
  s->channels = is_grey_model (model_info) ? 1 : 3;
  set_mix (s, in_info, model_info);
  for (guint c = 0; c < COMPONENTS; c++) {
    s->src_x[c] = GST_VIDEO_FORMAT_INFO_SCALE_WIDTH (finfo, c, src_x);
    s->src_y[c] = GST_VIDEO_FORMAT_INFO_SCALE_HEIGHT (finfo, c, src_y);
  }
  if (s->channels == 1 && GST_VIDEO_FORMAT_INFO_IS_RGB (finfo)) {
    s->mixed = new_mixed_scaler (s, finfo, src_width, src_height, target, path);
    if (s->mixed)
      return s;
  }
  for (guint c = 0, end; c < COMPONENTS; c = end) {
    /* The component's samples covering the rectangle (subsampled: the pairs it touches). */
    const gint x1 = GST_VIDEO_FORMAT_INFO_SCALE_WIDTH (finfo, c, src_x + src_width);
    const gint y1 = GST_VIDEO_FORMAT_INFO_SCALE_HEIGHT (finfo, c, src_y + src_height);
    const gint step = GST_VIDEO_FORMAT_INFO_PSTRIDE (finfo, c);
    const gint bytes = gst_mone_grey_scaler_sample_bytes (finfo, c);
    gint offsets[COMPONENTS];
    gfloat black, scale;

    for (end = c + 1; end < COMPONENTS && same_pixels (finfo, c, end); end++);
    s->lead[c] = pixel_offsets (finfo, c, end, offsets);
    gst_mone_grey_scaler_sample_range (finfo, c, FALSE, &black, &scale);
    s->components[c] = end - c == 1
        ? gst_mone_grey_scaler_new (x1 - s->src_x[c], y1 - s->src_y[c], step, bytes, target,
        black, scale, path)
        : gst_mone_grey_scaler_new_components (x1 - s->src_x[c], y1 - s->src_y[c], step, bytes,
        end - c, offsets, target, black, scale, path);
    if (!s->components[c]) {
      gst_mone_colour_scaler_free (s);
      return NULL;
    }
  }
  s->components_are_channels = s->channels == COMPONENTS;
  for (gint c = 0; c < s->channels; c++)
    for (gint k = 0; k < COMPONENTS; k++)
      if (s->mix[c][k] != (c == k ? 1.0f : 0.0f) || s->bias[c] != 0.0f)
        s->components_are_channels = FALSE;
  if (!s->components_are_channels)
    s->scratch = g_new (gfloat, (gsize) COMPONENTS * target->out_width * target->out_height);
  return s;
}

void
gst_mone_colour_scaler_free (GstMoneColourScaler * scaler)
{
  if (!scaler)
    return;
  for (guint c = 0; c < COMPONENTS; c++)
    gst_mone_grey_scaler_free (scaler->components[c]);
  gst_mone_grey_scaler_free (scaler->mixed);
  g_free (scaler->scratch);
  g_free (scaler);
}

/* out[x] = CLAMP (bias + mix . (c0[x], c1[x], c2[x]), 0, 1) for n pixels; the constants in locals
 * and the pointers restrict, so that the compiler vectorises the loop. */
static void
mix_row (const gfloat * mix, gfloat bias, const gfloat * restrict c0, const gfloat * restrict c1,
    const gfloat * restrict c2, gfloat * restrict out, gint n)
{
  const gfloat m0 = mix[0], m1 = mix[1], m2 = mix[2];

  for (gint x = 0; x < n; x++)
    out[x] = CLAMP (bias + m0 * c0[x] + m1 * c1[x] + m2 * c2[x], 0.0f, 1.0f);
}

void
gst_mone_colour_scaler_run (GstMoneColourScaler * s, const GstVideoFrame * frame, gfloat * dest)
{
  const GstMoneScalerTarget *t = &s->target;
  const gsize plane = (gsize) t->out_width * t->out_height;
  gfloat *components = s->components_are_channels ? dest : s->scratch;
  const gfloat *c0 = components, *c1 = c0 + plane, *c2 = c1 + plane;

  if (s->mixed) {
    gst_mone_grey_scaler_run_frame (s->mixed, frame, s->lead[0], s->src_x[s->lead[0]],
        s->src_y[s->lead[0]], dest);
    return;
  }
  for (guint c = 0; c < COMPONENTS; c++)
    if (s->components[c])
      gst_mone_grey_scaler_run_frame (s->components[c], frame, s->lead[c], s->src_x[c],
          s->src_y[c], components + c * plane);
  if (s->components_are_channels)
    return;
  /* Black outside the picture; inside, the mix. */
  memset (dest, 0, s->channels * plane * sizeof (gfloat));
  for (gint c = 0; c < s->channels; c++)
    for (gint y = t->y; y < t->y + t->height; y++) {
      const gsize i = (gsize) y * t->out_width + t->x;
      mix_row (s->mix[c], s->bias[c], c0 + i, c1 + i, c2 + i, dest + c * plane + i, t->width);
    }
}
