/* The grey scaler (gst/gstmonegreyscale.c) on every path, for samples one, two and three bytes
 * apart, against a naive reference: the same taps
 * and weights as GstVideoScaler, applied as one 4x4 sum per output in double precision. Also
 * against GStreamer's own converter with the element's options, which rounds to bytes (and
 * quantises its weights), so there the bound is a few levels of 255. And no path reads a byte past
 * the rectangle's last sample (guard pages).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <math.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gst/check/gstcheck.h>
#include <gst/video/video.h>

#include "gstmonegreyscale.h"
#include "gstmonecolourscale.h"

#define TAPS 4
/* levels of 255 (see check_colour_scaler): from YUV whose chroma is subsampled at most 2x, and 4x;
 * from RGB into RGB and into grey */
#define YUV_TOLERANCE 4.0
#define YUV_TOLERANCE_SUBSAMPLED_4X 5.0
#define RGB_TOLERANCE 1.0
#define RGB_TO_GREY_TOLERANCE 2.5

typedef struct
{
  gint src_width, src_height, stride;   /* the bytes */
  GstMoneScalerTarget target;
  gint step;                    /* bytes between samples */
  gint first;                   /* the first sample's byte */
  gint words;                   /* samples are 16-bit little-endian words (else bytes) */
} Case;

static gint
sample_bytes (const Case * c)
{
  return c->words ? 2 : 1;
}

static const Case cases[] = {
  {640, 480, 640, {0, 0, 128, 128, 128, 128}, 1, 0, FALSE},     /* a camera frame, shipped model */
  {1280, 720, 1344, {0, 24, 128, 80, 128, 128}, 1, 0, FALSE},   /* letterboxed, padded rows */
  {150, 64, 151, {0, 0, 32, 32, 32, 32}, 1, 0, FALSE},  /* odd stride */
  {64, 64, 64, {0, 0, 32, 32, 32, 32}, 1, 0, FALSE},    /* halved (not against the converter) */
  {33, 17, 40, {3, 5, 27, 21, 32, 32}, 1, 0, FALSE},    /* enlarged, odd sizes */
  {32, 32, 32, {0, 0, 32, 32, 32, 32}, 1, 0, FALSE},    /* the same size */
  {203, 9, 205, {0, 0, 13, 7, 16, 16}, 1, 0, FALSE},    /* leftover columns for the vector paths */
  {320, 240, 646, {0, 16, 128, 96, 128, 128}, 2, 0, FALSE},     /* YUY2's luma: every other byte */
  {37, 11, 74, {2, 0, 20, 16, 24, 16}, 2, 1, FALSE},    /* UYVY's: it ends each row */
  {300, 20, 600, {0, 0, 30, 10, 32, 16}, 2, 1, FALSE},  /* a large reduction of it */
  {48, 20, 200, {0, 0, 16, 16, 16, 16}, 4, 1, FALSE},   /* AYUV's luma */
  {37, 11, 148, {0, 0, 24, 11, 24, 16}, 4, 3, FALSE},   /* YUY2's V: it ends each row */
  {300, 20, 1200, {0, 0, 30, 10, 32, 16}, 4, 3, FALSE}, /* a large reduction of it */
  {40, 30, 120, {0, 0, 16, 16, 16, 16}, 3, 0, FALSE},   /* packed RGB's R */
  {37, 11, 111, {0, 0, 24, 11, 24, 16}, 3, 2, FALSE},   /* its B: it ends each row */
  {300, 20, 900, {0, 0, 30, 10, 32, 16}, 3, 2, FALSE},  /* a large reduction of it */
  {40, 30, 200, {0, 0, 16, 16, 16, 16}, 5, 0, FALSE},   /* other steps: gathered */
  {320, 240, 640, {0, 0, 128, 128, 128, 128}, 2, 0, TRUE},      /* I420_10LE's luma: words */
  {37, 11, 76, {2, 0, 20, 16, 24, 16}, 2, 2, TRUE},     /* the last word the row's last bytes */
  {300, 20, 600, {0, 0, 30, 10, 32, 16}, 2, 0, TRUE},   /* a large reduction of words */
  {37, 11, 148, {0, 0, 24, 11, 24, 16}, 4, 2, TRUE},    /* P010's V: every other word */
  {300, 20, 1200, {0, 0, 30, 10, 32, 16}, 4, 0, TRUE},  /* a large reduction of P010's U */
  {40, 30, 240, {0, 0, 16, 16, 16, 16}, 6, 0, TRUE},    /* other steps of words: gathered */
};


/* Bytes with edges and texture (the samples and whatever lies between them). */
static guint8 *
make_bytes (const Case * c)
{
  guint8 *bytes = g_malloc ((gsize) c->stride * c->src_height);
  guint32 state = 12345;

  for (gsize i = 0; i < (gsize) c->stride * c->src_height; i++) {
    const gint x = i % c->stride, y = i / c->stride;
    state = state * 1664525u + 1013904223u;
    bytes[i] = (guint8) ((((x / 5) ^ (y / 3)) & 1) * 180 + (state >> 27) + (x * 3 + y) % 40);
  }
  return bytes;
}

/* Output o's taps in one direction: GstVideoScaler's, or the one input o when the sizes are equal
 * (the converter does not scale that direction). */
static const gdouble *
taps_of (GstVideoScaler * scaler, guint o, guint * first, guint * n)
{
  static const gdouble one = 1.0;

  if (!scaler) {
    *first = o;
    *n = 1;
    return &one;
  }
  return gst_video_scaler_get_coeff (scaler, o, first, n);
}

static GstVideoScaler *
scaler_for (gint in_size, gint out_size)
{
  return in_size == out_size ? NULL : gst_video_scaler_new (GST_VIDEO_RESAMPLER_METHOD_LINEAR, 0,
      TAPS, in_size, out_size, NULL);
}

/* The reference: CLAMP ((sum - black) * scale) with the converter's coefficients. */
static void
reference (const Case * c, const guint8 * bytes, gfloat black, gfloat scale, gdouble * out)
{
  GstVideoScaler *v = scaler_for (c->src_height, c->target.height);
  GstVideoScaler *h = scaler_for (c->src_width, c->target.width);

  memset (out, 0, sizeof (gdouble) * c->target.out_width * c->target.out_height);
  for (gint y = 0; y < c->target.height; y++) {
    guint row, n_rows;
    const gdouble *wy = taps_of (v, y, &row, &n_rows);
    for (gint x = 0; x < c->target.width; x++) {
      guint column, n_columns;
      const gdouble *wx = taps_of (h, x, &column, &n_columns);
      gdouble sum = 0;
      for (guint i = 0; i < n_rows; i++)
        for (guint j = 0; j < n_columns; j++) {
          const guint8 *p = bytes + c->first + (gsize) (row + i) * c->stride
              + (gsize) (column + j) * c->step;
          sum += wy[i] * wx[j] * (c->words ? p[0] | p[1] << 8 : p[0]);
        }
      out[(gsize) (c->target.y + y) * c->target.out_width + c->target.x + x] =
          CLAMP ((sum - black) * scale, 0.0, 1.0);
    }
  }
  if (v)
    gst_video_scaler_free (v);
  if (h)
    gst_video_scaler_free (h);
}

static gdouble
largest_difference (const gfloat * a, const gdouble * b, gsize n)
{
  gdouble d = 0;

  for (gsize i = 0; i < n; i++)
    d = MAX (d, fabs (a[i] - b[i]));
  return d;
}

/* Runs scaler s (then frees it) on src into out (n floats, garbage first: the border must be
 * written too) and holds it to the reference: float sums of four products, twice, a few ulps of
 * values up to 1. */
static void
check_against_reference (GstMoneGreyScaler * s, const guint8 * src, gsize stride,
    const gdouble * expected, gfloat * out, gsize n, const gchar * what)
{
  gdouble d;

  fail_unless (s != NULL, "%s: no scaler", what);
  memset (out, 0x7f, n * sizeof (gfloat));
  gst_mone_grey_scaler_run (s, src, stride, out);
  d = largest_difference (out, expected, n);
  GST_INFO ("%s, %s: largest difference %.3g", what, gst_mone_grey_scaler_path_name (s), d);
  fail_unless (d < 2e-6, "%s, %s: %.3g from the reference", what,
      gst_mone_grey_scaler_path_name (s), d);
  gst_mone_grey_scaler_free (s);
}

GST_START_TEST (test_paths_match_reference)
{
  static const GstMoneGreyScalerPath paths[] = { GST_MONE_GREY_SCALER_GENERIC,
    GST_MONE_GREY_SCALER_AVX2, GST_MONE_GREY_SCALER_AVX512, GST_MONE_GREY_SCALER_BEST
  };
  /* full range, and limited range expanded (what YUV from decoders gets) */
  static const gfloat ranges[][2] = { {0.0f, 1.0f / 255.0f}, {16.0f, 1.0f / 219.0f} };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    const Case *c = &cases[i];
    const gsize n = (gsize) c->target.out_width * c->target.out_height;
    guint8 *bytes = make_bytes (c);
    gdouble *expected = g_new (gdouble, n);
    gfloat *out = g_new (gfloat, n);

    for (guint r = 0; r < G_N_ELEMENTS (ranges); r++) {
      /* words: the same ranges at 16 bits */
      const gfloat unit = c->words ? 257.0f : 1.0f;
      const gfloat black = ranges[r][0] * unit, scale = ranges[r][1] / unit;

      reference (c, bytes, black, scale, expected);
      for (guint p = 0; p < G_N_ELEMENTS (paths); p++) {
        GstMoneGreyScaler *s = gst_mone_grey_scaler_new (c->src_width, c->src_height, c->step,
            sample_bytes (c), &c->target, black, scale, paths[p]);
        gchar *what = g_strdup_printf ("case %u, range %u", i, r);

        check_against_reference (s, bytes + c->first, c->stride, expected, out, n, what);
        g_free (what);
      }
    }
    g_free (out);
    g_free (expected);
    g_free (bytes);
  }
}

GST_END_TEST;

/* Each vector path where the CPU has its instructions, else the next one down: the tests above
 * run the path they name. */
GST_START_TEST (test_path_follows_cpu)
{
  const GstMoneScalerTarget target = { 0, 0, 32, 32, 32, 32 };
  const gboolean avx2 = __builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma");
  const gboolean avx512 = avx2 && __builtin_cpu_supports ("avx512f")
      && __builtin_cpu_supports ("avx512bw") && __builtin_cpu_supports ("avx512vl");
  static const struct
  {
    GstMoneGreyScalerPath path;
    const gchar *name;
  } expected[] = { {GST_MONE_GREY_SCALER_GENERIC, "generic"}, {GST_MONE_GREY_SCALER_AVX2, "avx2"},
  {GST_MONE_GREY_SCALER_AVX512, "avx512"}
  };

  for (guint i = 0; i < G_N_ELEMENTS (expected); i++) {
    GstMoneGreyScaler *s = gst_mone_grey_scaler_new (64, 64, 1, 1, &target, 0.0f, 1.0f / 255.0f,
        expected[i].path);
    const gchar *name = expected[i].name;

    if (g_str_equal (name, "avx512") && !avx512)
      name = avx2 ? "avx2" : "generic";
    else if (g_str_equal (name, "avx2") && !avx2)
      name = "generic";
    fail_unless_equals_string (gst_mone_grey_scaler_path_name (s), name);
    gst_mone_grey_scaler_free (s);
  }
}

GST_END_TEST;

/* The bytes from `from` to the end of the case's last sample (its last row's `last` byte: the
 * sample's, or the last component's of a pixel), copied so that they end where an inaccessible
 * page begins: a scaler that reads one byte past the rectangle crashes the test. */
static const guint8 *
guarded_copy (const Case * c, const guint8 * bytes, gint from, gint last, gpointer * map,
    gsize * map_size)
{
  const gsize page = (gsize) sysconf (_SC_PAGESIZE);
  const gsize size = (gsize) (c->src_height - 1) * c->stride + last + 1 - from;
  const gsize pages = (size + page - 1) / page;
  guint8 *base;

  *map_size = (pages + 1) * page;
  base = mmap (NULL, *map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  fail_unless (base != MAP_FAILED);
  fail_unless (mprotect (base + pages * page, page, PROT_NONE) == 0);
  memcpy (base + pages * page - size, bytes + from, size);
  *map = base;
  return base + pages * page - size;
}

/* Every case on every path, alone and (two or more bytes a pixel) mixed and apart, with the
 * rectangle's last byte the last one mapped. */
GST_START_TEST (test_reads_nothing_past_the_rectangle)
{
  static const GstMoneGreyScalerPath paths[] = { GST_MONE_GREY_SCALER_GENERIC,
    GST_MONE_GREY_SCALER_AVX2, GST_MONE_GREY_SCALER_AVX512
  };
  static const gint offsets[3] = { 0, 1, 2 };
  static const gfloat weights[3] = { 0.299f, 0.587f, 0.114f };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    const Case *c = &cases[i];
    const gsize n = (gsize) c->target.out_width * c->target.out_height;
    const gint last_in_row = c->first + (c->src_width - 1) * c->step + sample_bytes (c) - 1;
    guint8 *bytes = make_bytes (c);
    gdouble *expected = g_new (gdouble, n);
    gfloat *out = g_new (gfloat, 3 * n);
    gpointer map;
    gsize map_size;
    const guint8 *src = guarded_copy (c, bytes, c->first, last_in_row, &map, &map_size);

    reference (c, bytes, 0.0f, 1.0f / 255.0f, expected);
    for (guint p = 0; p < G_N_ELEMENTS (paths); p++) {
      GstMoneGreyScaler *s = gst_mone_grey_scaler_new (c->src_width, c->src_height, c->step,
          sample_bytes (c), &c->target, 0.0f, 1.0f / 255.0f, paths[p]);
      gchar *what = g_strdup_printf ("case %u at the end of its mapping", i);

      check_against_reference (s, src, c->stride, expected, out, n, what);
      g_free (what);
    }
    munmap (map, map_size);

    /* Three bytes of each pixel ending at the case's sample (as in the tests below). */
    if (c->step >= 3 && !c->words && c->first >= 2) {
      src = guarded_copy (c, bytes, c->first - 2, last_in_row, &map, &map_size);
      for (guint p = 0; p < G_N_ELEMENTS (paths); p++) {
        GstMoneGreyScaler *mixed = gst_mone_grey_scaler_new_mixed (c->src_width, c->src_height,
            c->step, 1, 3, offsets, weights, &c->target, 0.0f, 1.0f / 255.0f, paths[p]);
        GstMoneGreyScaler *apart = gst_mone_grey_scaler_new_components (c->src_width,
            c->src_height, c->step, 1, 3, offsets, &c->target, 0.0f, 1.0f / 255.0f, paths[p]);

        fail_unless (mixed != NULL && apart != NULL);
        gst_mone_grey_scaler_run (mixed, src, c->stride, out);
        gst_mone_grey_scaler_run (apart, src, c->stride, out);
        gst_mone_grey_scaler_free (mixed);
        gst_mone_grey_scaler_free (apart);
      }
      munmap (map, map_size);
    }
    g_free (out);
    g_free (expected);
    g_free (bytes);
  }
}

GST_END_TEST;

/* Mixed samples (RGB into grey: three bytes of each pixel weighted and summed, filtered as one)
 * against the mix of each byte's reference, on every case of three or more bytes per sample, in
 * place and gathered, on every path. */
GST_START_TEST (test_mixed_matches_reference)
{
  static const GstMoneGreyScalerPath paths[] = { GST_MONE_GREY_SCALER_GENERIC,
    GST_MONE_GREY_SCALER_AVX2, GST_MONE_GREY_SCALER_AVX512
  };
  static const gint offsets[3] = { 0, 1, 2 };
  static const gfloat weights[3] = { 0.299f, 0.587f, 0.114f };
  guint n_tested = 0;

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    const Case *c = &cases[i];
    const gsize n = (gsize) c->target.out_width * c->target.out_height;
    /* the three bytes end at the case's sample when it is a row's last byte */
    const gint first = c->first >= 2 ? c->first - 2 : c->first;
    guint8 *bytes;
    gdouble *expected, *component;
    gfloat *out;

    if (c->step < 3 || first + 2 >= c->step || c->words)
      continue;
    n_tested++;
    bytes = make_bytes (c);
    expected = g_new0 (gdouble, n);
    component = g_new (gdouble, n);
    out = g_new (gfloat, n);
    for (gint k = 0; k < 3; k++) {
      Case one = *c;
      one.first = first + offsets[k];
      reference (&one, bytes, 0.0f, 1.0f / 255.0f, component);
      for (gsize j = 0; j < n; j++)
        expected[j] += weights[k] * component[j];
    }
    for (guint p = 0; p < G_N_ELEMENTS (paths); p++) {
      GstMoneGreyScaler *s = gst_mone_grey_scaler_new_mixed (c->src_width, c->src_height,
          c->step, 1, 3, offsets, weights, &c->target, 0.0f, 1.0f / 255.0f, paths[p]);
      gchar *what = g_strdup_printf ("case %u mixed", i);

      check_against_reference (s, bytes + first, c->stride, expected, out, n, what);
      g_free (what);
    }
    g_free (out);
    g_free (component);
    g_free (expected);
    g_free (bytes);
  }
  fail_unless (n_tested >= 6);
}

GST_END_TEST;

/* Components scaled apart in one pass (packed RGB into RGB models, YUY2's and NV12's chroma):
 * each plane against its component's own reference, three bytes of each pixel, the first and the
 * third, or two adjacent ones, on the cases of two or more bytes per sample, on every path. */
GST_START_TEST (test_components_match_reference)
{
  static const GstMoneGreyScalerPath paths[] = { GST_MONE_GREY_SCALER_GENERIC,
    GST_MONE_GREY_SCALER_AVX2, GST_MONE_GREY_SCALER_AVX512
  };
  static const gint three[3] = { 0, 1, 2 }, first_and_third[2] = { 0, 2 }, two[2] = { 0, 1 };
  static const struct
  {
    gint n;
    const gint *offsets;
    gint min_step;
  } sets[] = { {3, three, 3}, {2, first_and_third, 3}, {2, two, 2} };
  guint n_tested = 0;

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    const Case *c = &cases[i];
    const gsize n = (gsize) c->target.out_width * c->target.out_height;
    guint8 *bytes;
    gdouble *expected;
    gfloat *out;

    if (c->step < 2 || c->words)
      continue;
    n_tested++;
    bytes = make_bytes (c);
    expected = g_new (gdouble, 3 * n);
    out = g_new (gfloat, 3 * n);
    for (guint set = 0; set < G_N_ELEMENTS (sets); set++) {
      const gint last = sets[set].offsets[sets[set].n - 1];
      /* the last byte read ends at the case's sample when it is a row's last byte */
      const gint first = c->first >= last ? c->first - last : c->first;

      if (c->step < sets[set].min_step || first + last >= c->step)
        continue;
      for (gint k = 0; k < sets[set].n; k++) {
        Case one = *c;
        one.first = first + sets[set].offsets[k];
        reference (&one, bytes, 0.0f, 1.0f / 255.0f, expected + k * n);
      }
      for (guint p = 0; p < G_N_ELEMENTS (paths); p++) {
        GstMoneGreyScaler *s = gst_mone_grey_scaler_new_components (c->src_width, c->src_height,
            c->step, 1, sets[set].n, sets[set].offsets, &c->target, 0.0f, 1.0f / 255.0f,
            paths[p]);
        gchar *what = g_strdup_printf ("case %u, %d components", i, sets[set].n);

        check_against_reference (s, bytes + first, c->stride, expected, out, sets[set].n * n, what);
        g_free (what);
      }
    }
    g_free (out);
    g_free (expected);
    g_free (bytes);
  }
  fail_unless (n_tested >= 9);
}

GST_END_TEST;

/* `in` (in_info) converted by GStreamer with the element's options into the rectangle dest_x,
 * dest_y, dest_width x dest_height of out_info. */
static GstBuffer *
convert (GstBuffer * in, const GstVideoInfo * in_info, const GstVideoInfo * out_info, gint dest_x,
    gint dest_y, gint dest_width, gint dest_height)
{
  const GstMoneScalerTarget target = { dest_x, dest_y, dest_width, dest_height,
    GST_VIDEO_INFO_WIDTH (out_info), GST_VIDEO_INFO_HEIGHT (out_info)
  };
  GstBuffer *out = gst_buffer_new_allocate (NULL, out_info->size, NULL);
  GstVideoConverter *converter = gst_video_converter_new ((GstVideoInfo *) in_info,
      (GstVideoInfo *) out_info, gst_mone_scaler_converter_options (0, 0,
          GST_VIDEO_INFO_WIDTH (in_info), GST_VIDEO_INFO_HEIGHT (in_info), &target, 1));
  GstVideoFrame in_frame, out_frame;

  fail_unless (gst_video_frame_map (&in_frame, in_info, in, GST_MAP_READ));
  fail_unless (gst_video_frame_map (&out_frame, out_info, out, GST_MAP_WRITE));
  gst_video_converter_frame (converter, &in_frame, &out_frame);
  gst_video_frame_unmap (&out_frame);
  gst_video_frame_unmap (&in_frame);
  gst_video_converter_free (converter);
  return out;
}

/* GStreamer's converter with the element's options (GRAY8 to GRAY8) gives the same picture up to
 * its rounding: it quantises the weights and rounds to bytes between and after its two passes
 * (measured: at most 3 levels of 255 on these cases). Exact halving is left out: there the
 * converter takes a shortcut of its own instead of the four taps (50 levels apart on these sharp
 * edges), the one that crashes at odd row addresses (docs/engine.md). */
GST_START_TEST (test_matches_converter)
{
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    const Case *c = &cases[i];
    const gsize n = (gsize) c->target.out_width * c->target.out_height;
    guint8 *bytes = make_bytes (c);
    GstVideoInfo in_info, out_info;
    GstVideoFrame out_frame;
    GstBuffer *in_buffer, *out_buffer;
    GstMoneGreyScaler *s;
    gfloat *out = g_new (gfloat, n);
    gdouble d = 0;

    if ((c->src_width == 2 * c->target.width && c->src_height == 2 * c->target.height)
        || c->step != 1 || c->words) {
      g_free (out);
      g_free (bytes);
      continue;
    }
    gst_video_info_set_format (&in_info, GST_VIDEO_FORMAT_GRAY8, c->src_width, c->src_height);
    in_info.stride[0] = c->stride;
    in_info.size = (gsize) c->stride * c->src_height;
    gst_video_info_set_format (&out_info, GST_VIDEO_FORMAT_GRAY8, c->target.out_width,
        c->target.out_height);
    in_buffer =
        gst_buffer_new_wrapped_full (GST_MEMORY_FLAG_READONLY, bytes, in_info.size, 0, in_info.size,
        NULL, NULL);
    out_buffer =
        convert (in_buffer, &in_info, &out_info, c->target.x, c->target.y, c->target.width,
        c->target.height);
    fail_unless (gst_video_frame_map (&out_frame, &out_info, out_buffer, GST_MAP_READ));

    s = gst_mone_grey_scaler_new (c->src_width, c->src_height, 1, 1, &c->target, 0.0f,
        1.0f / 255.0f, GST_MONE_GREY_SCALER_BEST);
    gst_mone_grey_scaler_run (s, bytes, c->stride, out);
    for (gint y = 0; y < c->target.out_height; y++) {
      const guint8 *row = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&out_frame, 0)
          + (gsize) y * GST_VIDEO_FRAME_PLANE_STRIDE (&out_frame, 0);
      for (gint x = 0; x < c->target.out_width; x++)
        d = MAX (d, fabs (out[(gsize) y * c->target.out_width + x] * 255.0 - row[x]));
    }
    GST_INFO ("case %u: largest difference to the converter %.3g levels", i, d);
    fail_unless (d < 3.5, "case %u: %.3g levels from GStreamer's converter", i, d);

    gst_mone_grey_scaler_free (s);
    gst_video_frame_unmap (&out_frame);
    gst_buffer_unref (out_buffer);
    gst_buffer_unref (in_buffer);
    g_free (out);
    g_free (bytes);
  }
}

GST_END_TEST;

/* Rectangles too small for the four taps, or destinations outside the input: no scaler. */
GST_START_TEST (test_refuses_what_it_cannot_do)
{
  const GstMoneScalerTarget fits = { 0, 0, 8, 8, 8, 8 }, shifted = { 1, 0, 8, 8, 8, 8 },
      empty = { 0, 0, 0, 8, 8, 8 };

  fail_unless (gst_mone_grey_scaler_new (3, 100, 1, 1, &fits, 0, 1, 0) == NULL);
  fail_unless (gst_mone_grey_scaler_new (100, 3, 1, 1, &fits, 0, 1, 0) == NULL);
  fail_unless (gst_mone_grey_scaler_new (100, 100, 1, 1, &shifted, 0, 1, 0) == NULL);
  fail_unless (gst_mone_grey_scaler_new (100, 100, 1, 1, &empty, 0, 1, 0) == NULL);
  fail_unless (gst_mone_grey_scaler_new (100, 100, 0, 1, &fits, 0, 1, 0) == NULL);
  /* samples of other sizes than bytes and words, words closer than their size */
  fail_unless (gst_mone_grey_scaler_new (100, 100, 4, 3, &fits, 0, 1, 0) == NULL);
  fail_unless (gst_mone_grey_scaler_new (100, 100, 1, 2, &fits, 0, 1, 0) == NULL);
  {
    /* mixed: bytes outside the sample's step, or no byte or too many */
    const gint outside[3] = { 0, 1, 3 }, inside[4] = { 0, 1, 2, 2 };
    const gfloat weights[4] = { 0.25f, 0.25f, 0.25f, 0.25f };
    fail_unless (gst_mone_grey_scaler_new_mixed (100, 100, 3, 1, 3, outside, weights, &fits, 0,
            1, 0) == NULL);
    fail_unless (gst_mone_grey_scaler_new_mixed (100, 100, 3, 1, 0, inside, weights, &fits, 0,
            1, 0) == NULL);
    fail_unless (gst_mone_grey_scaler_new_mixed (100, 100, 3, 1, 4, inside, weights, &fits, 0,
            1, 0) == NULL);
    /* a word's second byte past the step */
    fail_unless (gst_mone_grey_scaler_new_mixed (100, 100, 4, 2, 3, outside, weights, &fits, 0,
            1, 0) == NULL);
  }
}

GST_END_TEST;

/* A smooth coloured picture (hue and brightness gradients, as a lens delivers them), RGB. */
static GstBuffer *
colour_picture (gint width, gint height, GstVideoInfo * info)
{
  GstVideoFrame frame;
  GstBuffer *rgb;

  gst_video_info_set_format (info, GST_VIDEO_FORMAT_RGB, width, height);
  rgb = gst_buffer_new_allocate (NULL, info->size, NULL);
  fail_unless (gst_video_frame_map (&frame, info, rgb, GST_MAP_WRITE));
  for (gint y = 0; y < height; y++)
    for (gint x = 0; x < width; x++) {
      guint8 *p = (guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&frame, 0)
          + (gsize) y * GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0) + 3 * x;
      p[0] = (guint8) (30 + 200.0 * x / width);
      p[1] = (guint8) (220 - 180.0 * y / height);
      p[2] = (guint8) (40 + 100.0 * (x + y) / (width + height));
    }
  gst_video_frame_unmap (&frame);
  return rgb;
}

/* The model's channels: 1 for GRAY8, 3 for RGB. */
static gint
model_channels (const GstVideoInfo * info)
{
  return GST_VIDEO_INFO_IS_GRAY (info) ? 1 : 3;
}

/* Packed GRAY8 or RGB bytes as planar floats in [0, 1] (the model's layout). */
static gfloat *
bytes_as_floats (GstBuffer * bytes, const GstVideoInfo * info)
{
  const gint w = GST_VIDEO_INFO_WIDTH (info), h = GST_VIDEO_INFO_HEIGHT (info);
  const gint channels = model_channels (info);
  gfloat *floats = g_new (gfloat, channels * w * h);
  GstVideoFrame frame;

  fail_unless (gst_video_frame_map (&frame, info, bytes, GST_MAP_READ));
  for (gint c = 0; c < channels; c++)
    for (gint y = 0; y < h; y++) {
      const guint8 *row = (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&frame, 0)
          + (gsize) y * GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0);
      for (gint x = 0; x < w; x++)
        floats[(gsize) (c * h + y) * w + x] = row[channels * x + c] / 255.0f;
    }
  gst_video_frame_unmap (&frame);
  return floats;
}

/* Largest difference, in levels of 255, between planar floats and packed GRAY8 or RGB bytes. */
static gdouble
bytes_difference (const gfloat * floats, GstBuffer * bytes, const GstVideoInfo * info)
{
  const gsize n = (gsize) model_channels (info) * GST_VIDEO_INFO_WIDTH (info)
      * GST_VIDEO_INFO_HEIGHT (info);
  gfloat *expected = bytes_as_floats (bytes, info);
  gdouble d = 0;

  for (gsize i = 0; i < n; i++)
    d = MAX (d, fabs (floats[i] - expected[i]) * 255.0);
  g_free (expected);
  return d;
}

/* Every format of GStreamer's list that the colour scaler takes into a model of model_format, on
 * every path, whole and letterboxed, against the coloured picture converted and scaled by
 * GStreamer straight from RGB: from RGB within rgb_tolerance levels of 255; from YUV within
 * yuv_tolerance (chroma subsampled 4x: yuv_tolerance_4x). GStreamer's converter from the same
 * frame is logged beside it, not held to it: its rounding may change between versions. Returns
 * how many formats it ran. */
static guint
check_colour_scaler (GstVideoFormat model_format, gdouble rgb_tolerance, gdouble yuv_tolerance,
    gdouble yuv_tolerance_4x)
{
  /* each vector path falls back to the next where the CPU lacks its instructions */
  static const GstMoneGreyScalerPath paths[] = { GST_MONE_GREY_SCALER_GENERIC,
    GST_MONE_GREY_SCALER_AVX2, GST_MONE_GREY_SCALER_AVX512
  };
  const gint width = 160, height = 120, out_size = 32;
  GstVideoInfo rgb_info, out_info, info;
  GstBuffer *picture = colour_picture (width, height, &rgb_info);
  const GstVideoFormat *raw_formats;
  guint n_raw_formats, n_tested = 0;

  gst_video_info_set_format (&out_info, model_format, out_size, out_size);
  raw_formats = gst_video_formats_raw (&n_raw_formats);
  for (guint f = 0; f < n_raw_formats; f++) {
    const gchar *name = gst_video_format_to_string (raw_formats[f]);
    const gboolean yuv = GST_VIDEO_FORMAT_INFO_IS_YUV (gst_video_format_get_info (raw_formats[f]));
    gdouble bound;

    if (!gst_video_info_set_format (&info, raw_formats[f], width, height)
        || !gst_mone_colour_scaler_usable (&info, &out_info))
      continue;
    n_tested++;
    bound = !yuv ? rgb_tolerance : GST_VIDEO_FORMAT_INFO_W_SUB (info.finfo, 1) > 1
        ? yuv_tolerance_4x : yuv_tolerance;
    for (gint letterbox = 0; letterbox < 2; letterbox++) {
      const gint dest_y = letterbox ? 4 : 0, dest_height = letterbox ? 24 : out_size;
      const GstMoneScalerTarget target = { 0, dest_y, out_size, dest_height, out_size, out_size };
      GstBuffer *frame_bytes, *expected, *by_converter;
      GstVideoFrame frame;
      gfloat *floats = g_new (gfloat, model_channels (&out_info) * out_size * out_size);
      gfloat *converter_floats;
      gdouble d, converter_d;

      frame_bytes = convert (picture, &rgb_info, &info, 0, 0, width, height);
      expected = convert (picture, &rgb_info, &out_info, 0, dest_y, out_size, dest_height);
      by_converter = convert (frame_bytes, &info, &out_info, 0, dest_y, out_size, dest_height);
      converter_floats = bytes_as_floats (by_converter, &out_info);
      converter_d = bytes_difference (converter_floats, expected, &out_info);
      for (guint p = 0; p < G_N_ELEMENTS (paths); p++) {
        GstMoneColourScaler *s = gst_mone_colour_scaler_new (&info, &out_info, 0, 0, width,
            height, &target, paths[p]);

        fail_unless (s != NULL);
        fail_unless (gst_video_frame_map (&frame, &info, frame_bytes, GST_MAP_READ));
        gst_mone_colour_scaler_run (s, &frame, floats);
        gst_video_frame_unmap (&frame);
        gst_mone_colour_scaler_free (s);

        d = bytes_difference (floats, expected, &out_info);
        GST_INFO ("%s into %s%s, path %u: %.3g levels from the picture (GStreamer's converter: "
            "%.3g)", name, gst_video_format_to_string (model_format),
            letterbox ? " letterboxed" : "", paths[p], d, converter_d);
        fail_unless (d < bound, "%s%s, path %u: %.3g levels from the picture", name,
            letterbox ? " letterboxed" : "", paths[p], d);
      }
      g_free (converter_floats);
      gst_buffer_unref (by_converter);
      gst_buffer_unref (expected);
      gst_buffer_unref (frame_bytes);
      g_free (floats);
    }
  }
  gst_buffer_unref (picture);
  return n_tested;
}

/* Which formats take the colour scaler: the YUV and RGB layouts cameras, decoders and image
 * decoders deliver, into RGB models, and the RGB ones into grey models too (YUV into grey models
 * is the grey scaler's, on the luma, 8 to 16 bits); not IYU1 (samples without a fixed step), VYUY
 * and P010 (GStreamer 1.22's descriptions put their V in the wrong place), grey frames, bit fields
 * or big-endian words. */
GST_START_TEST (test_colour_scaler_formats)
{
  static const gchar *const yuv[] = { "I420", "YV12", "NV12", "NV21", "Y42B", "Y444", "YUY2",
    "UYVY", "YVYU", "AYUV", "I420_10LE"
  };
  /* their luma into grey models: the grey scaler's */
  static const gchar *const luma[] = { "I420", "NV12", "YUY2", "UYVY", "AYUV", "GRAY8",
    "I420_10LE", "P010_10LE", "GRAY16_LE"
  };
  static const gchar *const rgb[] = { "RGB", "BGR", "RGBx", "BGRx", "xRGB", "xBGR", "RGBA",
    "BGRA", "ARGB", "ABGR", "GBR"
  };
  static const gchar *const refused[] = { "IYU1", "VYUY", "GRAY8", "I420_10BE", "RGB16", "r210",
    "RGB10A2_LE", "P010_10LE"
  };
  GstVideoInfo rgb_model, grey_model, info;

  gst_video_info_set_format (&rgb_model, GST_VIDEO_FORMAT_RGB, 32, 32);
  gst_video_info_set_format (&grey_model, GST_VIDEO_FORMAT_GRAY8, 32, 32);
  for (guint f = 0; f < G_N_ELEMENTS (yuv); f++) {
    gst_video_info_set_format (&info, gst_video_format_from_string (yuv[f]), 160, 120);
    fail_unless (gst_mone_colour_scaler_usable (&info, &rgb_model), "%s", yuv[f]);
    fail_if (gst_mone_colour_scaler_usable (&info, &grey_model), "%s", yuv[f]);
  }
  for (guint f = 0; f < G_N_ELEMENTS (rgb); f++) {
    gst_video_info_set_format (&info, gst_video_format_from_string (rgb[f]), 160, 120);
    fail_unless (gst_mone_colour_scaler_usable (&info, &rgb_model), "%s", rgb[f]);
    fail_unless (gst_mone_colour_scaler_usable (&info, &grey_model), "%s", rgb[f]);
  }
  for (guint f = 0; f < G_N_ELEMENTS (luma); f++) {
    gst_video_info_set_format (&info, gst_video_format_from_string (luma[f]), 160, 120);
    fail_unless (gst_mone_grey_scaler_usable (&info), "%s", luma[f]);
  }
  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_I420_10BE, 160, 120);
  fail_if (gst_mone_grey_scaler_usable (&info));
  for (guint f = 0; f < G_N_ELEMENTS (refused); f++) {
    gst_video_info_set_format (&info, gst_video_format_from_string (refused[f]), 160, 120);
    fail_if (gst_mone_colour_scaler_usable (&info, &rgb_model), "%s", refused[f]);
    fail_if (gst_mone_colour_scaler_usable (&info, &grey_model), "%s", refused[f]);
  }
}

GST_END_TEST;

/* Into RGB models from YUV (the YUV bytes' own rounding, the chroma's subsampling and siting;
 * measured with GStreamer 1.22: 1.9-2.5 levels, 3.3-4.1 where the chroma is subsampled 4x, the
 * converter 6-8) and from RGB (the reference's rounding to bytes: 0.31-0.48): 35 formats. */
GST_START_TEST (test_colour_into_rgb_matches_picture)
{
  fail_unless (check_colour_scaler (GST_VIDEO_FORMAT_RGB, RGB_TOLERANCE, YUV_TOLERANCE,
          YUV_TOLERANCE_SUBSAMPLED_4X) >= 35);
}

GST_END_TEST;

/* Into grey models from RGB: the picture's BT.601 luma, as GStreamer's converter makes GRAY8 from
 * RGB, rounding to bytes between its passes (measured: 1.36-1.38 levels): 14 formats. */
GST_START_TEST (test_colour_into_grey_matches_picture)
{
  fail_unless (check_colour_scaler (GST_VIDEO_FORMAT_GRAY8, RGB_TO_GREY_TOLERANCE, 0, 0) >= 14);
}

GST_END_TEST;

static Suite *
greyscale_suite (void)
{
  Suite *s = suite_create ("greyscale");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_paths_match_reference);
  tcase_add_test (tc, test_path_follows_cpu);
  tcase_add_test (tc, test_reads_nothing_past_the_rectangle);
  tcase_add_test (tc, test_mixed_matches_reference);
  tcase_add_test (tc, test_components_match_reference);
  tcase_add_test (tc, test_matches_converter);
  tcase_add_test (tc, test_refuses_what_it_cannot_do);
  tcase_add_test (tc, test_colour_scaler_formats);
  tcase_add_test (tc, test_colour_into_rgb_matches_picture);
  tcase_add_test (tc, test_colour_into_grey_matches_picture);
  return s;
}

GST_CHECK_MAIN (greyscale);
