/* GStreamer MoNE overlay
 * Copyright (C) 2026 gst-mone authors
 *
 * This library is free software; you can redistribute it and/or modify it under the terms of the
 * GNU Lesser General Public License as published by the Free Software Foundation; either version
 * 2.1 of the License, or (at your option) any later version.
 */
/**
 * SECTION:element-moneoverlay
 * @title: moneoverlay
 *
 * Draws the classification that monefilter attached to each buffer onto the frame, in place:
 * - the top-1 label and score, the budget used (and requested, when they differ), the GFLOPs spent
 *   and the inference latency, in a box at the top left;
 * - the per-patch expert map: every patch of the model's input tinted by the colour of the nested
 *   expert that processed it, from blue (the smallest expert) through green and yellow to red (the
 *   full-width one), with a legend at the bottom left giving each expert's width and token share.
 *
 * The patch grid is placed with the geometry monefilter records in the meta: over the whole frame
 * for scale-mode=stretch, over the centred crop for crop, and for letterbox over the picture with
 * the bars' patches cut off. Frames scaled after monefilter (videoscale) get the map scaled with
 * them (the meta records the size monefilter saw); cropping, added borders or flips in between
 * are not known to the overlay. Video models: the map shows the newest time slice of the token
 * grid, while the legend's shares count every token of the window (what the budget paid for).
 *
 * Buffers without the meta pass unchanged. Works at any frame size, in the formats Cairo draws into
 * directly (BGRx, BGRA and RGB16 on little-endian machines); put videoconvert around it for others.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 videotestsrc ! monefilter ! videoconvert ! moneoverlay map-alpha=0.4 ! \
 *     videoconvert ! autovideosink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmoneoverlay.h"
#include "gstmonetsan.h"

#include <math.h>
#include <string.h>

#include <mone/gstmonemeta.h>

GST_DEBUG_CATEGORY_STATIC (gst_mone_overlay_debug);
#define GST_CAT_DEFAULT gst_mone_overlay_debug

/* Formats Cairo's image surfaces use natively, in memory order. */
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
#define OVERLAY_FORMATS "{ BGRx, BGRA, RGB16 }"
#else
#define OVERLAY_FORMATS "{ xRGB, ARGB, RGB16 }"
#endif

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (OVERLAY_FORMATS)));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (OVERLAY_FORMATS)));

enum
{
  PROP_0,
  PROP_SHOW_MAP,
  PROP_SHOW_TEXT,
  PROP_SHOW_LEGEND,
  PROP_MAP_ALPHA,
};

#define DEFAULT_SHOW_MAP TRUE
#define DEFAULT_SHOW_TEXT TRUE
#define DEFAULT_SHOW_LEGEND TRUE
#define DEFAULT_MAP_ALPHA 0.35

#define BOX_ALPHA 0.6           /* opacity of the dark boxes behind text */

/* What one frame's drawing needs, copied out of the meta. */
typedef struct
{
  char label[128];
  double score;
  double budget_requested, budget_used;
  double gflops;
  double latency_ms;
  gboolean reused;
  int experts;
  int tokens;
  int tokens_per_expert[MONE_MAX_EXPERTS];
  gboolean budget_auto;
  int grid_width, grid_height;  /* 0 when the meta has no usable grid */
  const guint8 *expert_grid;    /* (grid_height, grid_width), valid while the buffer is */
  /* The model input's rectangle on the frame, in frame pixels (it may reach past the frame's
   * edges with letterboxing), and the part of the frame the model saw: the map is clipped to it. */
  double grid_x, grid_y, grid_span_x, grid_span_y;
  double clip_x, clip_y, clip_width, clip_height;
  /* A region result (inference-region=roi-list): its box on this frame. */
  gboolean is_region;
  double region_x, region_y, region_width, region_height;
} OverlayInfo;

G_DEFINE_TYPE (GstMoneOverlay, gst_mone_overlay, GST_TYPE_VIDEO_FILTER);
GST_ELEMENT_REGISTER_DEFINE (moneoverlay, "moneoverlay", GST_RANK_NONE, GST_TYPE_MONE_OVERLAY);

static void gst_mone_overlay_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
static void gst_mone_overlay_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);
static gboolean gst_mone_overlay_start (GstBaseTransform * trans);
static gboolean gst_mone_overlay_stop (GstBaseTransform * trans);
static gboolean gst_mone_overlay_set_info (GstVideoFilter * filter, GstCaps * incaps,
    GstVideoInfo * in_info, GstCaps * outcaps, GstVideoInfo * out_info);
static GstFlowReturn gst_mone_overlay_transform_frame_ip (GstVideoFilter * filter,
    GstVideoFrame * frame);

static void
gst_mone_overlay_class_init (GstMoneOverlayClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstVideoFilterClass *filter_class = GST_VIDEO_FILTER_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_mone_overlay_debug, "moneoverlay", 0,
      "MoNE classification and expert-map overlay");

  gobject_class->set_property = gst_mone_overlay_set_property;
  gobject_class->get_property = gst_mone_overlay_get_property;

  g_object_class_install_property (gobject_class, PROP_SHOW_MAP,
      g_param_spec_boolean ("show-map", "Show map",
          "Tint every patch by the expert that processed it", DEFAULT_SHOW_MAP,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING |
          GST_PARAM_CONTROLLABLE));
  g_object_class_install_property (gobject_class, PROP_SHOW_TEXT,
      g_param_spec_boolean ("show-text", "Show text",
          "Draw the label, score, budget, GFLOPs and latency", DEFAULT_SHOW_TEXT,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING |
          GST_PARAM_CONTROLLABLE));
  g_object_class_install_property (gobject_class, PROP_SHOW_LEGEND,
      g_param_spec_boolean ("show-legend", "Show legend",
          "Draw the expert colour legend with token shares (only with show-map)",
          DEFAULT_SHOW_LEGEND,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING |
          GST_PARAM_CONTROLLABLE));
  g_object_class_install_property (gobject_class, PROP_MAP_ALPHA,
      g_param_spec_double ("map-alpha", "Map alpha",
          "Opacity of the expert tint (0 = invisible, 1 = opaque)", 0.0, 1.0,
          DEFAULT_MAP_ALPHA,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING |
          GST_PARAM_CONTROLLABLE));

  gst_element_class_set_static_metadata (element_class, "MoNE overlay",
      "Filter/Effect/Video",
      "Draws the MoNE classification and per-patch expert map onto the video", "gst-mone authors");
  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);

  trans_class->start = GST_DEBUG_FUNCPTR (gst_mone_overlay_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_mone_overlay_stop);
  filter_class->set_info = GST_DEBUG_FUNCPTR (gst_mone_overlay_set_info);
  filter_class->transform_frame_ip = GST_DEBUG_FUNCPTR (gst_mone_overlay_transform_frame_ip);
}

static void
gst_mone_overlay_init (GstMoneOverlay * self)
{
  self->show_map = DEFAULT_SHOW_MAP;
  self->show_text = DEFAULT_SHOW_TEXT;
  self->show_legend = DEFAULT_SHOW_LEGEND;
  self->map_alpha = DEFAULT_MAP_ALPHA;
  self->cairo_format = CAIRO_FORMAT_INVALID;
  /* The meta is read, never changed; the frame is drawn on in place. */
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
}

static void
gst_mone_overlay_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  GstMoneOverlay *self = GST_MONE_OVERLAY (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_SHOW_MAP:
      self->show_map = g_value_get_boolean (value);
      break;
    case PROP_SHOW_TEXT:
      self->show_text = g_value_get_boolean (value);
      break;
    case PROP_SHOW_LEGEND:
      self->show_legend = g_value_get_boolean (value);
      break;
    case PROP_MAP_ALPHA:
      self->map_alpha = g_value_get_double (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_mone_overlay_get_property (GObject * object, guint prop_id, GValue * value, GParamSpec * pspec)
{
  GstMoneOverlay *self = GST_MONE_OVERLAY (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_SHOW_MAP:
      g_value_set_boolean (value, self->show_map);
      break;
    case PROP_SHOW_TEXT:
      g_value_set_boolean (value, self->show_text);
      break;
    case PROP_SHOW_LEGEND:
      g_value_set_boolean (value, self->show_legend);
      break;
    case PROP_MAP_ALPHA:
      g_value_set_double (value, self->map_alpha);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static gboolean
gst_mone_overlay_start (GstBaseTransform * trans)
{
  GstMoneOverlay *self = GST_MONE_OVERLAY (trans);

  /* Our own font map: Pango's default one is per thread, and streaming threads come and go. */
  self->font_map = pango_cairo_font_map_new ();
  if (self->font_map == NULL) {
    GST_ELEMENT_ERROR (self, LIBRARY, INIT, ("Could not set up fonts for the overlay text"),
        ("pango_cairo_font_map_new() failed"));
    return FALSE;
  }
  self->pango_context = pango_font_map_create_context (self->font_map);
  self->layout = pango_layout_new (self->pango_context);
  return TRUE;
}

static gboolean
gst_mone_overlay_stop (GstBaseTransform * trans)
{
  GstMoneOverlay *self = GST_MONE_OVERLAY (trans);

  g_clear_object (&self->layout);
  g_clear_object (&self->pango_context);
  g_clear_object (&self->font_map);
  g_clear_pointer (&self->scratch, g_free);
  self->scratch_size = 0;
  return TRUE;
}

static gboolean
gst_mone_overlay_set_info (GstVideoFilter * filter, GstCaps * incaps, GstVideoInfo * in_info,
    GstCaps * outcaps, GstVideoInfo * out_info)
{
  GstMoneOverlay *self = GST_MONE_OVERLAY (filter);
  int width = GST_VIDEO_INFO_WIDTH (in_info), height = GST_VIDEO_INFO_HEIGHT (in_info);

  self->has_alpha = FALSE;
  switch (GST_VIDEO_INFO_FORMAT (in_info)) {
    case GST_VIDEO_FORMAT_BGRx:
    case GST_VIDEO_FORMAT_xRGB:
      self->cairo_format = CAIRO_FORMAT_RGB24;
      break;
    case GST_VIDEO_FORMAT_BGRA:
    case GST_VIDEO_FORMAT_ARGB:
      self->cairo_format = CAIRO_FORMAT_ARGB32;
      self->has_alpha = TRUE;
      break;
    case GST_VIDEO_FORMAT_RGB16:
      self->cairo_format = CAIRO_FORMAT_RGB16_565;
      break;
    default:
      GST_ERROR_OBJECT (self, "unsupported format %s",
          gst_video_format_to_string (GST_VIDEO_INFO_FORMAT (in_info)));
      return FALSE;
  }
  /* Readable from 224x224 up without covering a 1080p picture. */
  self->font_px = CLAMP (MIN (width, height) / 18, 7, 32);
  PangoFontDescription *font = pango_font_description_from_string ("Sans Bold");
  pango_font_description_set_absolute_size (font, self->font_px * PANGO_SCALE);
  pango_layout_set_font_description (self->layout, font);
  pango_font_description_free (font);
  /* Narrow frames wrap the text rather than cut it. */
  pango_layout_set_wrap (self->layout, PANGO_WRAP_WORD_CHAR);
  pango_layout_set_width (self->layout, MAX (width - self->font_px / 2, 1) * PANGO_SCALE);
  GST_DEBUG_OBJECT (self, "%dx%d %s, text %d px", width, height,
      gst_video_format_to_string (GST_VIDEO_INFO_FORMAT (in_info)), self->font_px);
  return TRUE;
}

/* Copies what the drawing needs out of one result (the buffer's MoNE meta, or one of its regions);
 * FALSE when it is incomplete. The map shows the last time slice of the grid (the newest frame of
 * a video model's window). */
static gboolean
read_overlay_info (const GstStructure * s, int frame_width, int frame_height, OverlayInfo * info)
{
  MoneClassification result;
  MoneRegion region;
  gboolean valid = TRUE;

  memset (info, 0, sizeof (*info));
  info->is_region = gst_mone_region_from_structure (s, &region, &result);
  if (!info->is_region && !gst_mone_classification_from_structure (s, &result))
    return FALSE;
  /* A model whose logits were not finite gave no class (monefilter's meta: valid=false). */
  gst_structure_get_boolean (s, "valid", &valid);
  g_strlcpy (info->label, !valid ? "no answer" : result.label ? result.label : "?",
      sizeof (info->label));
  /* Cut at a character boundary: Pango refuses a label ending inside a UTF-8 sequence. */
  {
    const gchar *end = NULL;

    if (!g_utf8_validate (info->label, -1, &end))
      info->label[end - info->label] = '\0';
  }
  info->score = result.top_score;
  info->budget_requested = result.budget_requested;
  info->budget_used = result.budget_used;
  info->budget_auto = result.budget_auto;
  info->gflops = result.gflops;
  info->latency_ms = result.latency_ms;
  info->reused = result.reused;
  info->experts = CLAMP (result.experts, 0, MONE_MAX_EXPERTS);
  info->tokens = result.tokens;
  for (int j = 0; j < info->experts; j++)
    info->tokens_per_expert[j] = result.tokens_per_expert[j];

  gsize slice = (gsize) MAX (result.grid_width, 0) * MAX (result.grid_height, 0);
  int slices = MAX (result.grid_slices, 1);
  if (slice > 0 && result.expert_grid && result.expert_grid_size >= slice * slices) {
    info->grid_width = result.grid_width;
    info->grid_height = result.grid_height;
    info->expert_grid = result.expert_grid + slice * (slices - 1);
  }

  /* content-* (and a region's box) are in the pixels of the frame monefilter classified; an
   * element between that scaled the picture (videoscale) leaves the meta as it was, so scale them
   * to this frame. */
  gint classified_width = 0, classified_height = 0;
  double fx = 1.0, fy = 1.0;
  if (gst_structure_get_int (s, "frame-width", &classified_width)
      && gst_structure_get_int (s, "frame-height", &classified_height)
      && classified_width > 0 && classified_height > 0) {
    fx = (double) frame_width / classified_width;
    fy = (double) frame_height / classified_height;
  }
  result.content_x *= fx;
  result.content_width *= fx;
  result.content_y *= fy;
  result.content_height *= fy;
  info->region_x = region.x * fx;
  info->region_y = region.y * fy;
  info->region_width = region.width * fx;
  info->region_height = region.height * fy;

  /* Where the model input lies on the frame. The grid tiles the whole model input; the frame
   * region the model saw (content) sits at model_x.. inside it (letterbox bars around it, or
   * none). Without geometry in the meta: the model input stretched over the whole frame. */
  gboolean has_geometry = result.content_width > 0 && result.content_height > 0
      && result.model_width > 0 && result.model_height > 0
      && result.model_input_width > 0 && result.model_input_height > 0;
  if (has_geometry) {
    double sx = result.content_width / result.model_width;
    double sy = result.content_height / result.model_height;
    info->grid_x = result.content_x - result.model_x * sx;
    info->grid_y = result.content_y - result.model_y * sy;
    info->grid_span_x = result.model_input_width * sx;
    info->grid_span_y = result.model_input_height * sy;
    info->clip_x = result.content_x;
    info->clip_y = result.content_y;
    info->clip_width = result.content_width;
    info->clip_height = result.content_height;
  } else {
    info->grid_span_x = info->clip_width = frame_width;
    info->grid_span_y = info->clip_height = frame_height;
  }
  return TRUE;
}

/* Expert j of E: blue (smallest) -> green -> yellow -> red (full width). */
static void
expert_colour (int expert, int experts, double rgb[3])
{
  static const double stops[4][3] = {
    {0.15, 0.35, 1.00}, {0.10, 0.80, 0.25}, {1.00, 0.85, 0.05}, {1.00, 0.10, 0.10},
  };
  double t = experts > 1 ? (double) expert / (experts - 1) * 3.0 : 3.0;
  int i = MIN ((int) t, 2);
  double f = t - i;
  for (int c = 0; c < 3; c++)
    rgb[c] = stops[i][c] * (1.0 - f) + stops[i + 1][c] * f;
}

/* Blends a premultiplied ARGB32 layer (what Cairo drew on transparent black) over a frame of
 * straight-alpha pixels in the same byte order (GStreamer's BGRA/ARGB). Pixels the layer left
 * transparent are not touched, so the rest of the frame keeps its exact bytes; converting the
 * whole frame to premultiplied and back would round every translucent pixel. */
static void
composite_layer (guint8 * frame, int frame_stride, const guint8 * layer, int layer_stride,
    int width, int height)
{
  for (int y = 0; y < height; y++) {
    guint8 *row = frame + (gsize) y * frame_stride;
    const guint32 *over = (const guint32 *) (layer + (gsize) y * layer_stride);
    for (int x = 0; x < width; x++) {
      guint32 o = over[x], p, out;
      if (o == 0)
        continue;
      memcpy (&p, row + 4 * x, 4);      /* frame rows need not be 4-byte aligned */
      if ((p >> 24) == 255) {
        /* Opaque frame pixel (the usual case): plain "over", in integers. */
        const guint32 keep = 255 - (o >> 24);
        out = 0xffu << 24;
        for (int shift = 0; shift < 24; shift += 8)
          out |=
              MIN (((o >> shift) & 0xff) + (((p >> shift) & 0xff) * keep + 127) / 255,
              255u) << shift;
        memcpy (row + 4 * x, &out, 4);
        continue;
      }
      const double oa = (o >> 24) / 255.0, pa = (p >> 24) / 255.0, a = oa + pa * (1.0 - oa);
      out = (guint32) lround (a * 255.0) << 24;
      for (int shift = 0; shift < 24; shift += 8) {
        const double over_premultiplied = ((o >> shift) & 0xff) / 255.0;
        const double under = ((p >> shift) & 0xff) / 255.0;
        const double c = (over_premultiplied + under * pa * (1.0 - oa)) / a;
        out |= (guint32) lround (CLAMP (c, 0.0, 1.0) * 255.0) << shift;
      }
      memcpy (row + 4 * x, &out, 4);
    }
  }
}

/* Patch edges are rounded the same way for neighbours, so the tint has neither gaps nor
 * overlaps. */
static void
draw_expert_map (cairo_t * cr, const OverlayInfo * info, double alpha)
{
  int gw = info->grid_width, gh = info->grid_height;

  cairo_save (cr);
  cairo_set_antialias (cr, CAIRO_ANTIALIAS_NONE);
  cairo_rectangle (cr, round (info->clip_x), round (info->clip_y),
      round (info->clip_x + info->clip_width) - round (info->clip_x),
      round (info->clip_y + info->clip_height) - round (info->clip_y));
  cairo_clip (cr);
  for (int expert = 0; expert < info->experts; expert++) {
    double rgb[3];
    gboolean any = FALSE;
    for (int row = 0; row < gh; row++) {
      double y0 = round (info->grid_y + info->grid_span_y * row / gh);
      double y1 = round (info->grid_y + info->grid_span_y * (row + 1) / gh);
      for (int col = 0; col < gw; col++) {
        if (info->expert_grid[(gsize) row * gw + col] != expert)
          continue;
        double x0 = round (info->grid_x + info->grid_span_x * col / gw);
        double x1 = round (info->grid_x + info->grid_span_x * (col + 1) / gw);
        cairo_rectangle (cr, x0, y0, x1 - x0, y1 - y0);
        any = TRUE;
      }
    }
    if (!any)
      continue;
    expert_colour (expert, info->experts, rgb);
    cairo_set_source_rgba (cr, rgb[0], rgb[1], rgb[2], alpha);
    cairo_fill (cr);
  }
  cairo_restore (cr);
}

/* Lays `markup` out and draws it on a dark box with its top-left corner at (x, y); returns the
 * box height. */
static int
draw_text_box (GstMoneOverlay * self, cairo_t * cr, const char *text, double x, double y)
{
  PangoRectangle ink, logical;
  int pad = MAX (self->font_px / 4, 1);

  pango_layout_set_text (self->layout, text, -1);
  pango_layout_get_pixel_extents (self->layout, &ink, &logical);
  cairo_set_source_rgba (cr, 0, 0, 0, BOX_ALPHA);
  cairo_rectangle (cr, x, y, logical.width + 2 * pad, logical.height + 2 * pad);
  cairo_fill (cr);
  cairo_set_source_rgb (cr, 1, 1, 1);
  cairo_move_to (cr, x + pad, y + pad);
  pango_cairo_show_layout (cr, self->layout);
  return logical.height + 2 * pad;
}

/* Non-breaking spaces keep numbers with their units when a narrow frame wraps the text. */
#define NBSP "\u00a0"

static void
draw_text (GstMoneOverlay * self, cairo_t * cr, const OverlayInfo * info)
{
  char text[320];
  char budget[64];

  if (info->budget_auto)
    g_snprintf (budget, sizeof (budget), "budget" NBSP "%.2f" NBSP "(auto)", info->budget_used);
  else if (fabs (info->budget_requested - info->budget_used) > 5e-3)
    g_snprintf (budget, sizeof (budget), "budget" NBSP "%.2f" NBSP "(asked" NBSP "%.2f)",
        info->budget_used, info->budget_requested);
  else
    g_snprintf (budget, sizeof (budget), "budget" NBSP "%.2f", info->budget_used);
  g_snprintf (text, sizeof (text), "%s  %.1f%%%s\n%s  %.3g" NBSP "GFLOPs  %.1f" NBSP "ms",
      info->label, 100.0 * info->score, info->reused ? "  (reused)" : "", budget, info->gflops,
      info->latency_ms);
  draw_text_box (self, cr, text, 0, 0);
}

static void
format_legend_entry (const OverlayInfo * info, int expert, char *text, gsize size)
{
  double share = 100.0 * info->tokens_per_expert[expert] / MAX (info->tokens, 1);
  if (expert == info->experts - 1)
    g_snprintf (text, size, "full  %3.0f%%", share);
  else
    g_snprintf (text, size, "1/%d  %3.0f%%", 1 << (info->experts - 1 - expert), share);
}

/* Bottom left: one swatch per expert, smallest first, with its width and share of the tokens. */
static void
draw_legend (GstMoneOverlay * self, cairo_t * cr, const OverlayInfo * info, int frame_height)
{
  int pad = MAX (self->font_px / 4, 1);
  int line = self->font_px + pad;
  int rows = info->experts;
  double y = frame_height - rows * line - 2 * pad;
  int text_width = 0;

  for (int j = 0; j < info->experts; j++) {
    char text[64];
    PangoRectangle logical;
    format_legend_entry (info, j, text, sizeof (text));
    pango_layout_set_text (self->layout, text, -1);
    pango_layout_get_pixel_extents (self->layout, NULL, &logical);
    text_width = MAX (text_width, logical.width);
  }
  cairo_set_source_rgba (cr, 0, 0, 0, BOX_ALPHA);
  cairo_rectangle (cr, 0, y, 3 * pad + self->font_px + text_width + pad, rows * line + 2 * pad);
  cairo_fill (cr);

  /* largest expert on top, like a heat scale */
  for (int row = 0; row < rows; row++) {
    int j = info->experts - 1 - row;
    double rgb[3], top = y + pad + row * line;
    char text[64];
    expert_colour (j, info->experts, rgb);
    cairo_set_source_rgb (cr, rgb[0], rgb[1], rgb[2]);
    cairo_rectangle (cr, pad, top + pad / 2.0, self->font_px, self->font_px - pad / 2.0);
    cairo_fill (cr);
    format_legend_entry (info, j, text, sizeof (text));
    pango_layout_set_text (self->layout, text, -1);
    cairo_set_source_rgb (cr, 1, 1, 1);
    cairo_move_to (cr, 2 * pad + self->font_px, top);
    pango_cairo_show_layout (cr, self->layout);
  }
}

/* A region: its box, and its label on a box just inside its top-left corner. */
static void
draw_region (GstMoneOverlay * self, cairo_t * cr, const OverlayInfo * info, gboolean show_text)
{
  double line = MAX (self->font_px / 8.0, 1.0);

  cairo_set_source_rgb (cr, 1.0, 0.85, 0.05);
  cairo_set_line_width (cr, line);
  cairo_rectangle (cr, info->region_x + line / 2, info->region_y + line / 2,
      MAX (info->region_width - line, 0), MAX (info->region_height - line, 0));
  cairo_stroke (cr);
  if (show_text) {
    char text[160];
    g_snprintf (text, sizeof (text), "%s  %.0f%%%s", info->label, 100.0 * info->score,
        info->reused ? " (reused)" : "");
    draw_text_box (self, cr, text, info->region_x, info->region_y);
  }
}

/* Top left, for a frame of regions: how many, at which budget, what they cost together. */
static void
draw_regions_summary (GstMoneOverlay * self, cairo_t * cr, const GstStructure * frame_fields,
    guint n_regions, const OverlayInfo * first)
{
  char text[200];
  guint classified = 0;
  double gflops = 0, latency_ms = 0;

  gst_structure_get_uint (frame_fields, "regions-classified", &classified);
  gst_structure_get_double (frame_fields, "gflops", &gflops);
  gst_structure_get_double (frame_fields, "latency-ms", &latency_ms);
  g_snprintf (text, sizeof (text), "%u" NBSP "regions (%u" NBSP "classified)  budget" NBSP
      "%.2f%s\n%.3g" NBSP "GFLOPs  %.1f" NBSP "ms", n_regions, classified,
      n_regions ? first->budget_used : 0.0, n_regions && first->budget_auto ? NBSP "(auto)" : "",
      gflops, latency_ms);
  draw_text_box (self, cr, text, 0, 0);
}

/* Every region result of the frame: routing map inside the part of the region the model saw,
 * box and label. */
static void
draw_regions (GstMoneOverlay * self, cairo_t * cr, GstBuffer * buffer, int width, int height,
    gboolean show_map, gboolean show_text, double map_alpha)
{
  guint n = gst_mone_meta_get_region_count (buffer);
  OverlayInfo info;

  /* The summary first: a region's label near the top stays readable on top of it. */
  if (show_text) {
    gboolean have_first = n > 0
        && read_overlay_info (gst_mone_meta_get_region (buffer, 0), width, height, &info);
    if (!have_first)
      memset (&info, 0, sizeof info);
    draw_regions_summary (self, cr, gst_buffer_get_mone_structure (buffer), n, &info);
  }
  for (guint i = 0; i < n; i++) {
    if (!read_overlay_info (gst_mone_meta_get_region (buffer, i), width, height, &info))
      continue;
    if (show_map && info.expert_grid && info.grid_width > 0 && info.grid_height > 0)
      draw_expert_map (cr, &info, map_alpha);
    draw_region (self, cr, &info, show_text);
  }
}

static GstFlowReturn
gst_mone_overlay_transform_frame_ip (GstVideoFilter * filter, GstVideoFrame * frame)
{
  GstMoneOverlay *self = GST_MONE_OVERLAY (filter);
  int width = GST_VIDEO_FRAME_WIDTH (frame), height = GST_VIDEO_FRAME_HEIGHT (frame);
  guint8 *pixels = GST_VIDEO_FRAME_PLANE_DATA (frame, 0);
  int stride = GST_VIDEO_FRAME_PLANE_STRIDE (frame, 0);
  gboolean show_map, show_text, show_legend;
  double map_alpha;
  OverlayInfo info;

  GstClockTime stream_time = gst_segment_to_stream_time (&GST_BASE_TRANSFORM (self)->segment,
      GST_FORMAT_TIME, GST_BUFFER_PTS (frame->buffer));
  if (GST_CLOCK_TIME_IS_VALID (stream_time))
    gst_object_sync_values (GST_OBJECT (self), stream_time);
  GST_OBJECT_LOCK (self);
  show_map = self->show_map;
  show_text = self->show_text;
  show_legend = self->show_legend;
  map_alpha = self->map_alpha;
  GST_OBJECT_UNLOCK (self);

  const GstStructure *fields = gst_buffer_get_mone_structure (frame->buffer);
  const gchar *inference_region = fields ? gst_structure_get_string (fields,
      "inference-region") : NULL;
  gboolean regions = g_strcmp0 (inference_region, "roi-list") == 0;
  if (!fields || (!regions && !read_overlay_info (fields, width, height, &info))) {
    GST_LOG_OBJECT (self, "no MoNE meta on %" GST_PTR_FORMAT, frame->buffer);
    return GST_FLOW_OK;
  }
  gboolean map_valid = regions || (info.experts > 0 && info.grid_width > 0
      && info.grid_height > 0 && info.expert_grid != NULL);
  if (show_map && !map_valid)
    GST_LOG_OBJECT (self, "meta without an expert grid");
  show_map = show_map && map_valid;
  /* Regions: every box is drawn (it is the result's place), the legend is not. */
  show_legend = show_legend && show_map && !regions;
  if (!show_map && !show_text && !regions)
    return GST_FLOW_OK;

  /* Cairo needs a 4-byte aligned stride at least as wide as its own; frames that do not have
   * one (odd strides from a foreign allocator) are drawn in a copy. Frames with alpha are drawn
   * on a transparent layer and blended (Cairo premultiplies alpha, GStreamer does not). */
  int cairo_stride = cairo_format_stride_for_width (self->cairo_format, width);
  gboolean use_scratch = self->has_alpha || stride < cairo_stride || stride % 4 != 0
      || ((guintptr) pixels) % 4 != 0;
  guint8 *target = pixels;
  int target_stride = stride;
  int row_bytes = GST_VIDEO_FRAME_COMP_PSTRIDE (frame, 0) * width;
  if (use_scratch) {
    gsize needed = (gsize) cairo_stride * height;
    if (needed > self->scratch_size) {
      g_free (self->scratch);
      self->scratch = g_malloc (needed);
      self->scratch_size = needed;
    }
    if (self->has_alpha)
      memset (self->scratch, 0, needed);
    else
      for (int y = 0; y < height; y++)
        memcpy (self->scratch + (gsize) y * cairo_stride, pixels + (gsize) y * stride, row_bytes);
    target = self->scratch;
    target_stride = cairo_stride;
  }

  cairo_surface_t *surface = cairo_image_surface_create_for_data (target, self->cairo_format,
      width, height, target_stride);
  cairo_t *cr = cairo_create (surface);
  if (cairo_status (cr) != CAIRO_STATUS_SUCCESS) {
    GST_WARNING_OBJECT (self, "cairo: %s", cairo_status_to_string (cairo_status (cr)));
  } else {
    pango_cairo_update_context (cr, self->pango_context);
    pango_layout_context_changed (self->layout);

    if (regions)
      draw_regions (self, cr, frame->buffer, width, height, show_map, show_text, map_alpha);
    if (!regions && show_map)
      draw_expert_map (cr, &info, map_alpha);
    if (show_legend)
      draw_legend (self, cr, &info, height);
    if (!regions && show_text)
      draw_text (self, cr, &info);
  }
  cairo_destroy (cr);
  cairo_surface_flush (surface);
  cairo_surface_destroy (surface);

  if (self->has_alpha) {
    composite_layer (pixels, stride, self->scratch, cairo_stride, width, height);
  } else if (use_scratch) {
    for (int y = 0; y < height; y++)
      memcpy (pixels + (gsize) y * stride, self->scratch + (gsize) y * cairo_stride, row_bytes);
  }
  return GST_FLOW_OK;
}
