/* gst-mone: monefilter's input preparation.
 *
 * A frame reaches the model as floats in [0, 1], planar, in the newest slot of the frame window,
 * scaled to the model's size and placed per scale-mode. Frames of 8 bits, or 10 to 16 in
 * little-endian words, take the element's own scalers, the converter's filter run in floats
 * straight into that slot: a grey model from YUV or grey frames reads the luma
 * (gstmonegreyscale.h); an RGB model from YUV or RGB frames, and a grey model from RGB ones, read
 * the three colour components and mix them (gstmonecolourscale.h). Everything else (grey frames
 * into RGB models, bit fields, big-endian words, interlaced or tiny frames, and rectangles too
 * small for the scalers' taps) takes GstVideoConverter to the model's pixel format
 * at the model's size (GRAY8 or RGB bytes), then a table from bytes to floats; for an RGB model
 * and a frame of another 8-bit format it runs twice, scaling the frame in its own format before
 * converting the small frame (converting first would convert every pixel of the large frame,
 * several times the work: docs/engine.md). Regions take the same paths as whole frames. The path
 * is chosen in gst_mone_input_set_format() for the negotiated format, so a frame takes it without
 * deciding anything.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmoneinput.h"
#include "gstmonegreyscale.h"
#include "gstmonecolourscale.h"

#include <string.h>

/* Frames smaller than this in either direction are converted from a copy (see set_format). */
#define TINY_FRAME_SIZE 8
/* Region conversions kept between frames; a frame with more regions creates the rest per use. */
#define MAX_REGION_CONVERSIONS 512

typedef void (*GstMoneInputUnpackFunc) (const GstVideoFrame * model_frame, gint width,
    gint height, const float *byte_values, float *dest);

/* How one rectangle of the frame reaches the model: a scaler of the element's own where one
 * applies (see the top), else GstVideoConverter (then, for two stages, to_model) and the bytes'
 * table. */
typedef struct
{
  GstMoneInputGeometry geometry;
  GstMoneGreyScaler *grey_scaler;
  GstMoneColourScaler *colour_scaler;
  GstVideoConverter *converter; /* when neither scaler applies */
} Conversion;

/* A region rectangle's conversion, kept while regions keep using it. */
typedef struct
{
  Conversion conversion;        /* its geometry is the key */
  gboolean used;                /* by a region of the current frame */
} RegionConversion;

struct _GstMoneInput
{
  gint width, height, channels, frames; /* the model input: (T, C, H, W) */
  guint threads;
  float *window;                /* (T, C, H, W), oldest frame first */
  guint filled;                 /* frames pushed since the last reset, at most T */

  /* From set_format. */
  GstVideoInfo in_info;         /* the caps' frames, with their default strides */
  /* Which scaler the frames take (gstmonegreyscale.h, gstmonecolourscale.h), if any; for the grey
   * one, what a luma byte v means: CLAMP ((v - luma_black) * luma_scale, 0, 1). */
  gboolean grey, colour;
  gfloat luma_black, luma_scale;
  GstVideoInfo model_info;      /* GRAY8 or RGB at the model size */
  GstBuffer *model_buffer;      /* one converted frame */
  /* Two-stage conversion (see the top): the frame's format at the model size, and its converter
   * to model_info. NULL to_model: one stage, scaled_info is model_info. */
  GstVideoInfo scaled_info;
  GstBuffer *scaled_buffer;
  GstVideoConverter *to_model;
  GstMoneFilterScaleMode scale_mode;
  Conversion frame_conversion;  /* the whole frame, placed per scale-mode */
  GstBuffer *tiny_copy;         /* tiny frames are converted from this copy */
  GstMoneInputUnpackFunc unpack;
  float byte_values[256];       /* what a converted byte means to the model, in [0, 1] */
  GArray *region_conversions;   /* RegionConversion, for gst_mone_input_push_region */
};

static gboolean
conversion_ready (const Conversion * conversion)
{
  return conversion->grey_scaler || conversion->colour_scaler || conversion->converter;
}

static void
conversion_clear (Conversion * conversion)
{
  g_clear_pointer (&conversion->grey_scaler, gst_mone_grey_scaler_free);
  g_clear_pointer (&conversion->colour_scaler, gst_mone_colour_scaler_free);
  g_clear_pointer (&conversion->converter, gst_video_converter_free);
}

const gchar *
gst_mone_scale_mode_nick (GstMoneFilterScaleMode mode)
{
  switch (mode) {
    case GST_MONE_FILTER_SCALE_MODE_LETTERBOX:
      return "letterbox";
    case GST_MONE_FILTER_SCALE_MODE_CROP:
      return "crop";
    default:
      return "stretch";
  }
}

void
gst_mone_input_fit (gint in_w, gint in_h, gint par_n, gint par_d, gint out_w, gint out_h,
    GstMoneFilterScaleMode mode, GstMoneInputGeometry * g)
{
  /* Display aspect of the frame and of the model input. */
  gdouble in_aspect = (gdouble) in_w * MAX (par_n, 1) / ((gdouble) in_h * MAX (par_d, 1));
  gdouble out_aspect = (gdouble) out_w / out_h;

  g->src_x = g->src_y = g->dest_x = g->dest_y = 0;
  g->src_width = in_w;
  g->src_height = in_h;
  g->dest_width = out_w;
  g->dest_height = out_h;
  if (mode == GST_MONE_FILTER_SCALE_MODE_LETTERBOX) {
    if (in_aspect > out_aspect)
      g->dest_height = CLAMP ((gint) (out_w / in_aspect + 0.5), 1, out_h);
    else
      g->dest_width = CLAMP ((gint) (out_h * in_aspect + 0.5), 1, out_w);
    g->dest_x = (out_w - g->dest_width) / 2;
    g->dest_y = (out_h - g->dest_height) / 2;
  } else if (mode == GST_MONE_FILTER_SCALE_MODE_CROP) {
    if (in_aspect > out_aspect)
      g->src_width = CLAMP ((gint) (in_w * out_aspect / in_aspect + 0.5), 1, in_w);
    else
      g->src_height = CLAMP ((gint) (in_h * in_aspect / out_aspect + 0.5), 1, in_h);
    g->src_x = (in_w - g->src_width) / 2;
    g->src_y = (in_h - g->src_height) / 2;
  }
}

GstMoneInput *
gst_mone_input_new (const MoneConfig * config, guint threads)
{
  GstMoneInput *input = g_new0 (GstMoneInput, 1);

  input->width = config->width;
  input->height = config->height;
  input->channels = config->channels;
  input->frames = config->frames;
  input->threads = MAX (threads, 1);
  input->window = g_new0 (float, (gsize) config->frames * config->channels * config->height *
      config->width);
  input->region_conversions = g_array_new (FALSE, FALSE, sizeof (RegionConversion));
  return input;
}

static void
clear_region_conversions (GstMoneInput * input)
{
  for (guint i = 0; i < input->region_conversions->len; i++)
    conversion_clear (&g_array_index (input->region_conversions, RegionConversion, i).conversion);
  g_array_set_size (input->region_conversions, 0);
}

void
gst_mone_input_free (GstMoneInput * input)
{
  if (!input)
    return;
  conversion_clear (&input->frame_conversion);
  g_clear_pointer (&input->to_model, gst_video_converter_free);
  clear_region_conversions (input);
  g_array_free (input->region_conversions, TRUE);
  gst_clear_buffer (&input->model_buffer);
  gst_clear_buffer (&input->scaled_buffer);
  gst_clear_buffer (&input->tiny_copy);
  g_free (input->window);
  g_free (input);
}

/* ---- Bytes of the converted frame to floats ---- */

/* Bytes through a table (the value of each of the 256 bytes for this format and range): one load
 * per pixel instead of arithmetic and a clamp, which a small model's frame notices. */

static void
unpack_grey (const GstVideoFrame * model_frame, gint w, gint h, const float *byte_values,
    float *dest)
{
  const guint8 *pixels = GST_VIDEO_FRAME_PLANE_DATA (model_frame, 0);
  const gint stride = GST_VIDEO_FRAME_PLANE_STRIDE (model_frame, 0);

  for (gint y = 0; y < h; y++) {
    const guint8 *row = pixels + (gsize) y * stride;
    float *out = dest + (gsize) y * w;
    for (gint x = 0; x < w; x++)
      out[x] = byte_values[row[x]];
  }
}

/* Packed RGB bytes to planar (3, H, W) floats. */
static void
unpack_rgb (const GstVideoFrame * model_frame, gint w, gint h, const float *byte_values,
    float *dest)
{
  const guint8 *pixels = GST_VIDEO_FRAME_PLANE_DATA (model_frame, 0);
  const gint stride = GST_VIDEO_FRAME_PLANE_STRIDE (model_frame, 0);
  const gsize plane = (gsize) w * h;

  for (gint y = 0; y < h; y++) {
    const guint8 *row = pixels + (gsize) y * stride;
    float *red = dest + (gsize) y * w, *green = red + plane, *blue = green + plane;
    for (gint x = 0; x < w; x++) {
      red[x] = byte_values[row[3 * x]];
      green[x] = byte_values[row[3 * x + 1]];
      blue[x] = byte_values[row[3 * x + 2]];
    }
  }
}

/* ---- Negotiation ---- */

static GstVideoConverter *
new_converter (const GstVideoInfo * in_info, const GstVideoInfo * model_info,
    const GstMoneInputGeometry * g, guint threads)
{
  const GstMoneScalerTarget target = { g->dest_x, g->dest_y, g->dest_width, g->dest_height,
    GST_VIDEO_INFO_WIDTH (model_info), GST_VIDEO_INFO_HEIGHT (model_info)
  };

  return gst_video_converter_new ((GstVideoInfo *) in_info, (GstVideoInfo *) model_info,
      gst_mone_scaler_converter_options (g->src_x, g->src_y, g->src_width, g->src_height, &target,
          threads));
}

/* The geometry of the frame's rectangle (x, y, width, height) in `mode`, as the input's converters
 * place it. A converter writing a subsampled format (the two-step conversion's first step) puts
 * the picture at offsets that are multiples of the subsampling only (GStreamer rounds others
 * down): the geometry takes that position, so that what the element reports is where the picture
 * is. */
static void
fit_rectangle (const GstMoneInput * input, gint x, gint y, gint width, gint height,
    GstMoneFilterScaleMode mode, GstMoneInputGeometry * g)
{
  const GstVideoFormatInfo *finfo = input->scaled_info.finfo;
  gint x_mask = 0, y_mask = 0;

  gst_mone_input_fit (width, height, GST_VIDEO_INFO_PAR_N (&input->in_info),
      GST_VIDEO_INFO_PAR_D (&input->in_info), input->width, input->height, mode, g);
  g->src_x += x;
  g->src_y += y;
  for (guint c = 0; c < GST_VIDEO_FORMAT_INFO_N_COMPONENTS (finfo); c++) {
    x_mask |= (1 << GST_VIDEO_FORMAT_INFO_W_SUB (finfo, c)) - 1;
    y_mask |= (1 << GST_VIDEO_FORMAT_INFO_H_SUB (finfo, c)) - 1;
  }
  g->dest_x &= ~x_mask;
  g->dest_y &= ~y_mask;
}

/* The conversion of the rectangle of g: a scaler where the frames take one and the rectangle is
 * large enough for it, else a converter using `threads`. FALSE when there is none. */
static gboolean
conversion_init (const GstMoneInput * input, const GstMoneInputGeometry * g, guint threads,
    Conversion * conversion)
{
  const GstMoneScalerTarget target = { g->dest_x, g->dest_y, g->dest_width, g->dest_height,
    input->width, input->height
  };

  memset (conversion, 0, sizeof *conversion);
  conversion->geometry = *g;
  if (input->grey)
    conversion->grey_scaler = gst_mone_grey_scaler_new (g->src_width, g->src_height,
        GST_VIDEO_FORMAT_INFO_PSTRIDE (input->in_info.finfo, 0),
        gst_mone_grey_scaler_sample_bytes (input->in_info.finfo, 0), &target, input->luma_black,
        input->luma_scale, GST_MONE_GREY_SCALER_BEST);
  else if (input->colour)
    conversion->colour_scaler = gst_mone_colour_scaler_new (&input->in_info, &input->model_info,
        g->src_x, g->src_y, g->src_width, g->src_height, &target, GST_MONE_GREY_SCALER_BEST);
  if (conversion->grey_scaler || conversion->colour_scaler)
    return TRUE;
  conversion->converter = new_converter (&input->in_info, &input->scaled_info, g, threads);
  return conversion->converter != NULL;
}

gboolean
gst_mone_input_set_scale_mode (GstMoneInput * input, GstMoneFilterScaleMode mode)
{
  const GstVideoInfo *in_info = &input->in_info;
  GstMoneInputGeometry geometry;
  Conversion conversion;

  if (conversion_ready (&input->frame_conversion) && mode == input->scale_mode)
    return TRUE;
  fit_rectangle (input, 0, 0, GST_VIDEO_INFO_WIDTH (in_info), GST_VIDEO_INFO_HEIGHT (in_info), mode,
      &geometry);
  if (!conversion_init (input, &geometry, input->threads, &conversion))
    return FALSE;
  conversion_clear (&input->frame_conversion);
  clear_region_conversions (input);
  input->frame_conversion = conversion;
  input->scale_mode = mode;
  return TRUE;
}

/* info for frames of `format` at the model size that agree with the caps' frames on what
 * GstVideoConverter wants both sides to agree on (it converts pictures, not timing). */
static void
set_model_size_info (const GstMoneInput * input, GstVideoFormat format, GstVideoInfo * info)
{
  const GstVideoInfo *in_info = &input->in_info;

  gst_video_info_set_format (info, format, input->width, input->height);
  GST_VIDEO_INFO_FPS_N (info) = GST_VIDEO_INFO_FPS_N (in_info);
  GST_VIDEO_INFO_FPS_D (info) = GST_VIDEO_INFO_FPS_D (in_info);
  GST_VIDEO_INFO_INTERLACE_MODE (info) = GST_VIDEO_INFO_INTERLACE_MODE (in_info);
}

/* Whether scaling frames of this format in their own format before converting them saves time:
 * 8 bits per component, progressive, not already the model's format. (Formats of more bits
 * convert to 8-bit RGB about as fast as they scale in their own format.) */
static gboolean
scales_in_own_format (const GstVideoInfo * in_info, const GstVideoInfo * model_info)
{
  const GstVideoFormatInfo *finfo = in_info->finfo;

  if (GST_VIDEO_INFO_FORMAT (in_info) == GST_VIDEO_INFO_FORMAT (model_info)
      || GST_VIDEO_INFO_INTERLACE_MODE (in_info) != GST_VIDEO_INTERLACE_MODE_PROGRESSIVE
      || GST_VIDEO_FORMAT_INFO_IS_COMPLEX (finfo) || GST_VIDEO_FORMAT_INFO_IS_TILED (finfo)
      || GST_VIDEO_FORMAT_INFO_HAS_PALETTE (finfo))
    return FALSE;
  for (guint c = 0; c < GST_VIDEO_FORMAT_INFO_N_COMPONENTS (finfo); c++)
    if (GST_VIDEO_FORMAT_INFO_DEPTH (finfo, c) != 8)
      return FALSE;
  return TRUE;
}

/* scaled_info, scaled_buffer and to_model for one stage (scaled_info = model_info) or, when
 * allowed and it pays, two. */
static gboolean
set_up_stages (GstMoneInput * input, gboolean two_allowed)
{
  const GstVideoInfo *in_info = &input->in_info;
  const GstMoneInputGeometry whole = { 0, 0, input->width, input->height,
    0, 0, input->width, input->height
  };

  g_clear_pointer (&input->to_model, gst_video_converter_free);
  gst_clear_buffer (&input->scaled_buffer);
  input->scaled_info = input->model_info;
  if (!two_allowed || !scales_in_own_format (in_info, &input->model_info))
    return TRUE;
  set_model_size_info (input, GST_VIDEO_INFO_FORMAT (in_info), &input->scaled_info);
  input->scaled_info.colorimetry = in_info->colorimetry;
  input->scaled_info.chroma_site = in_info->chroma_site;
  input->to_model = new_converter (&input->scaled_info, &input->model_info, &whole, input->threads);
  if (!input->to_model)
    return FALSE;
  input->scaled_buffer = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&input->scaled_info),
      NULL);
  return TRUE;
}

gboolean
gst_mone_input_set_format (GstMoneInput * input, const GstVideoInfo * in_info,
    GstMoneFilterScaleMode mode)
{
  gboolean limited_range = FALSE, tiny;
  gfloat black, scale;

  input->in_info = *in_info;
  set_model_size_info (input, input->channels == 1 ? GST_VIDEO_FORMAT_GRAY8 : GST_VIDEO_FORMAT_RGB,
      &input->model_info);
  /* Grey models from YUV through the converter (frames under TINY_FRAME_SIZE, interlaced ones;
   * the grey scaler maps the range itself, below): it copies Y into GRAY8 (GStreamer 1.22 does so
   * even when told the ranges differ), so the model input is declared in the source's range,
   * making that copy exact by definition, and limited range (16-235, what decoders and cameras
   * deliver) is expanded when the bytes become floats. Without it the shipped grey model loses 3
   * points on the sample video (the four-expert one shipped before it 10). (Converting through RGB
   * also expands it, but cost 13% of the element's frame rate on the four-expert model:
   * bench/element-vs-engine.sh.) */
  if (input->channels == 1 && GST_VIDEO_INFO_IS_YUV (in_info)) {
    input->model_info.colorimetry.range = in_info->colorimetry.range;
    limited_range = in_info->colorimetry.range == GST_VIDEO_COLOR_RANGE_16_235;
  }
  gst_clear_buffer (&input->model_buffer);
  clear_region_conversions (input);
  input->model_buffer = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&input->model_info),
      NULL);
  conversion_clear (&input->frame_conversion);

  /* GStreamer 1.22's converter keeps pointers to source lines between frames for some tiny
   * frames (ARGB 1x3, found with valgrind): frames that small are converted from a copy that
   * stays at one address. */
  tiny = GST_VIDEO_INFO_WIDTH (in_info) < TINY_FRAME_SIZE
      || GST_VIDEO_INFO_HEIGHT (in_info) < TINY_FRAME_SIZE;
  input->grey = input->channels == 1 && !tiny && gst_mone_grey_scaler_usable (in_info);
  input->colour = !input->grey && !tiny
      && gst_mone_colour_scaler_usable (in_info, &input->model_info);
  /* The grey scaler reads the luma in its own range. */
  gst_mone_grey_scaler_sample_range (in_info->finfo, 0,
      in_info->colorimetry.range == GST_VIDEO_COLOR_RANGE_16_235, &input->luma_black,
      &input->luma_scale);
  if (!set_up_stages (input, !tiny && input->channels == 3))
    return FALSE;
  if (!gst_mone_input_set_scale_mode (input, mode))
    return FALSE;

  gst_clear_buffer (&input->tiny_copy);
  if (tiny) {
    /* Zeroed: the converter also reads the row padding of such frames. */
    input->tiny_copy = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (in_info), NULL);
    gst_buffer_memset (input->tiny_copy, 0, 0, GST_VIDEO_INFO_SIZE (in_info));
  }
  input->unpack = input->channels == 3 ? unpack_rgb : unpack_grey;
  /* What a converted byte means to the model: v / 255, or in limited range (v - 16) / 219. */
  gst_mone_grey_scaler_sample_range (input->model_info.finfo, 0, limited_range, &black, &scale);
  for (gint v = 0; v < 256; v++)
    input->byte_values[v] = CLAMP ((v - black) * scale, 0.0f, 1.0f);
  gst_mone_input_reset (input);
  return TRUE;
}

GstMoneFilterScaleMode
gst_mone_input_get_scale_mode (const GstMoneInput * input)
{
  return input->scale_mode;
}

const GstMoneInputGeometry *
gst_mone_input_get_geometry (const GstMoneInput * input)
{
  return &input->frame_conversion.geometry;
}

const GstVideoInfo *
gst_mone_input_get_video_info (const GstMoneInput * input)
{
  return &input->in_info;
}

const gchar *
gst_mone_input_get_path (const GstMoneInput * input)
{
  const Conversion *conversion = &input->frame_conversion;

  if (conversion->grey_scaler) {
    const gchar *path = gst_mone_grey_scaler_path_name (conversion->grey_scaler);
    return g_str_equal (path, "avx512") ? "luma scaler (avx512)"
        : g_str_equal (path, "avx2") ? "luma scaler (avx2)" : "luma scaler (generic)";
  }
  if (conversion->colour_scaler)
    return "colour scaler";
  return input->to_model ? "converter, two steps" : "converter";
}

/* ---- Frames ---- */

/* The rectangle of `conversion` of the frame as floats (C, H, W) into dest. */
static gboolean
conversion_run (GstMoneInput * input, const Conversion * conversion, GstVideoFrame * frame,
    float *dest)
{
  const GstMoneInputGeometry *g = &conversion->geometry;
  GstVideoFrame model_frame, copy, scaled;
  GstVideoFrame *source = frame;
  gboolean ok = FALSE;

  if (conversion->grey_scaler) {
    gst_mone_grey_scaler_run_frame (conversion->grey_scaler, frame, 0, g->src_x, g->src_y, dest);
    return TRUE;
  }
  if (conversion->colour_scaler) {
    gst_mone_colour_scaler_run (conversion->colour_scaler, frame, dest);
    return TRUE;
  }
  if (!gst_video_frame_map (&model_frame, &input->model_info, input->model_buffer, GST_MAP_WRITE))
    return FALSE;
  /* Tiny frames from their copy (see set_format), mapped with the caps' default strides (what
   * tiny_copy was sized for), not the upstream buffer's own, which a GstVideoMeta may make far
   * larger; the copy handles the difference. It fails only when the frames disagree in format or
   * size, which the caps rule out: then say so rather than classify the copy's old contents. */
  if (input->tiny_copy) {
    if (!gst_video_frame_map (&copy, &input->in_info, input->tiny_copy, GST_MAP_WRITE))
      goto unmap_model;
    source = &copy;
    if (!gst_video_frame_copy (&copy, frame))
      goto unmap_copy;
  }
  if (!input->to_model) {
    gst_video_converter_frame (conversion->converter, source, &model_frame);
  } else {
    if (!gst_video_frame_map (&scaled, &input->scaled_info, input->scaled_buffer,
            GST_MAP_READWRITE))
      goto unmap_copy;
    gst_video_converter_frame (conversion->converter, source, &scaled);
    gst_video_converter_frame (input->to_model, &scaled, &model_frame);
    gst_video_frame_unmap (&scaled);
  }
  input->unpack (&model_frame, input->width, input->height, input->byte_values, dest);
  ok = TRUE;
unmap_copy:
  if (source == &copy)
    gst_video_frame_unmap (&copy);
unmap_model:
  gst_video_frame_unmap (&model_frame);
  return ok;
}

gboolean
gst_mone_input_push (GstMoneInput * input, GstVideoFrame * frame)
{
  const gsize slot = (gsize) input->channels * input->height * input->width;
  float *newest = input->window + slot * (input->frames - 1);

  if (input->frames > 1 && input->filled > 0)
    memmove (input->window, input->window + slot, slot * (input->frames - 1) * sizeof (float));
  if (!conversion_run (input, &input->frame_conversion, frame, newest)) {
    input->filled = 0;          /* the window has moved: start afresh */
    return FALSE;
  }
  if (input->filled == 0)
    for (gint t = 0; t < input->frames - 1; t++)
      memcpy (input->window + slot * t, newest, slot * sizeof (float));
  input->filled = MIN (input->filled + 1, (guint) input->frames);
  return TRUE;
}

const float *
gst_mone_input_get_window (const GstMoneInput * input)
{
  return input->window;
}

guint
gst_mone_input_get_filled (const GstMoneInput * input)
{
  return input->filled;
}

void
gst_mone_input_reset (GstMoneInput * input)
{
  input->filled = 0;
}

/* ---- Regions ---- */

/* The kept conversion for geometry g, or a new one in *spare, kept as well when there is room and
 * the rectangle is not tiny (see TINY_FRAME_SIZE); *owned: the caller clears *spare after use. */
static const Conversion *
region_conversion (GstMoneInput * input, const GstMoneInputGeometry * g, Conversion * spare,
    gboolean * owned)
{
  GArray *kept = input->region_conversions;
  RegionConversion entry;

  *owned = FALSE;
  for (guint i = 0; i < kept->len; i++) {
    RegionConversion *e = &g_array_index (kept, RegionConversion, i);
    if (memcmp (&e->conversion.geometry, g, sizeof *g) == 0) {
      e->used = TRUE;
      return &e->conversion;
    }
  }
  /* One thread: a region is small, and the engine's cores are idle only between regions. */
  if (!conversion_init (input, g, 1, spare))
    return NULL;
  if (kept->len >= MAX_REGION_CONVERSIONS || g->src_width < TINY_FRAME_SIZE
      || g->src_height < TINY_FRAME_SIZE) {
    *owned = TRUE;
    return spare;
  }
  entry.conversion = *spare;
  entry.used = TRUE;
  g_array_append_val (kept, entry);
  return &g_array_index (kept, RegionConversion, kept->len - 1).conversion;
}

gboolean
gst_mone_input_push_region (GstMoneInput * input, GstVideoFrame * frame, gint x, gint y,
    gint width, gint height, GstMoneInputGeometry * g)
{
  const GstVideoInfo *in_info = &input->in_info;
  const Conversion *conversion;
  Conversion spare;
  gboolean owned, ok;

  g_return_val_if_fail (input->frames == 1, FALSE);
  g_return_val_if_fail (x >= 0 && y >= 0 && width > 0 && height > 0
      && x + width <= GST_VIDEO_INFO_WIDTH (in_info)
      && y + height <= GST_VIDEO_INFO_HEIGHT (in_info), FALSE);
  fit_rectangle (input, x, y, width, height, input->scale_mode, g);
  if (!(conversion = region_conversion (input, g, &spare, &owned)))
    return FALSE;
  ok = conversion_run (input, conversion, frame, input->window);
  if (ok)
    input->filled = 1;
  if (owned)
    conversion_clear (&spare);
  return ok;
}

void
gst_mone_input_end_regions (GstMoneInput * input)
{
  GArray *kept = input->region_conversions;

  for (guint i = kept->len; i-- > 0;) {
    RegionConversion *e = &g_array_index (kept, RegionConversion, i);
    if (e->used) {
      e->used = FALSE;
      continue;
    }
    conversion_clear (&e->conversion);
    g_array_remove_index_fast (kept, i);
  }
}
