/* monefilter element tests (gst-check, GstHarness).
 *
 * Models are generated at suite start from random parameters (tiny configs: 32x32 input, 16
 * tokens, 4 experts), so the suite needs no fixture files and runs in seconds.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/controller/gstinterpolationcontrolsource.h>
#include <gst/controller/gstdirectcontrolbinding.h>
#include <gst/video/video.h>

#include <mone/gstmonemeta.h>
#include "mone/mone-authoring.h"

static gchar *tmp_dir;
static gchar *rgb_model;        /* 32x32 RGB, 4 experts, 10 classes */
static gchar *grey_model;       /* the same with one channel */
static gchar *video_model;      /* 4 frames, tubelets of 2 */
static gchar *grey_video_model; /* the same with one channel: GRAY8 frames of its size are its input */
static gchar *corrupt_model;    /* not safetensors at all */
static gchar *truncated_model;  /* rgb_model cut in half */

/* A random model of the "tiny" config with the overrides, written to NAME in the test folder.
 * overflow: every patch-embedding weight at 3.4e38, finite weights whose products overflow, so
 * every logit is NaN or infinite. */
static gchar *
write_model_full (const gchar * name, int n_overrides, const char *const *overrides,
    gboolean overflow)
{
  gchar *path = g_build_filename (tmp_dir, name, NULL);
  MoneConfig config;
  guint64 seed = 0;
  GError *error = NULL;
  MoneParameters *params;
  gchar **labels;

  fail_unless (mone_config_from_args ("tiny", n_overrides, overrides, &config, &seed, &error),
      "config: %s", error ? error->message : "");
  params = mone_parameters_new_random (&config, seed, &error);
  fail_unless (params != NULL, "init: %s", error ? error->message : "");
  if (overflow) {
    int n_specs;
    MoneTensorSpec *specs = mone_tensor_specs (&params->config, &n_specs);

    fail_unless_equals_string (specs[0].name, "patch_embed.weight");
    for (int64_t i = 0; i < specs[0].numel; i++)
      params->tensors[0][i] = 3.4e38f;
    g_free (specs);
  }
  labels = g_new0 (gchar *, params->config.classes + 1);
  for (int k = 0; k < params->config.classes; k++)
    labels[k] = g_strdup_printf ("class-%d", k);
  fail_unless (mone_model_write (path, &params->config, (const char *const *) labels,
          (const float *const *) params->tensors, &error), "write: %s",
      error ? error->message : "");
  g_strfreev (labels);
  mone_parameters_free (params);
  return path;
}

static gchar *
write_model (const gchar * name, int n_overrides, const char *const *overrides)
{
  return write_model_full (name, n_overrides, overrides, FALSE);
}

static void
models_setup (void)
{
  static const char *const rgb[] = { "seed=11" };
  static const char *const grey[] = { "channels=1", "seed=12" };
  static const char *const video[] = { "frames=4", "tubelet=2", "seed=13" };
  static const char *const grey_video[] = { "channels=1", "frames=4", "tubelet=2", "seed=14" };
  gchar *contents;
  gsize length;

  tmp_dir = g_dir_make_tmp ("test-monefilter-XXXXXX", NULL);
  fail_unless (tmp_dir != NULL);
  rgb_model = write_model ("rgb.safetensors", G_N_ELEMENTS (rgb), rgb);
  grey_model = write_model ("grey.safetensors", G_N_ELEMENTS (grey), grey);
  video_model = write_model ("video.safetensors", G_N_ELEMENTS (video), video);
  grey_video_model = write_model ("grey-video.safetensors", G_N_ELEMENTS (grey_video), grey_video);

  /* Read once, when the element class is first created (after this setup). */
  g_setenv ("MONE_MODEL", rgb_model, TRUE);

  corrupt_model = g_build_filename (tmp_dir, "corrupt.safetensors", NULL);
  fail_unless (g_file_set_contents (corrupt_model, "this is not a model file\n", -1, NULL));
  truncated_model = g_build_filename (tmp_dir, "truncated.safetensors", NULL);
  fail_unless (g_file_get_contents (rgb_model, &contents, &length, NULL));
  fail_unless (g_file_set_contents (truncated_model, contents, length / 2, NULL));
  g_free (contents);
}

static void
models_teardown (void)
{
  const gchar *paths[] = { rgb_model, grey_model, video_model, grey_video_model, corrupt_model,
    truncated_model
  };

  for (guint i = 0; i < G_N_ELEMENTS (paths); i++)
    g_unlink (paths[i]);
  g_rmdir (tmp_dir);
  g_free (rgb_model);
  g_free (grey_model);
  g_free (video_model);
  g_free (grey_video_model);
  g_free (corrupt_model);
  g_free (truncated_model);
  g_free (tmp_dir);
}

/* ---- helpers ---- */

static GstElement *
make_filter (const gchar * model)
{
  GstElement *filter = gst_element_factory_make ("monefilter", NULL);

  fail_unless (filter != NULL, "monefilter not found (GST_PLUGIN_PATH_1_0?)");
  gst_object_ref_sink (filter);
  g_object_set (filter, "model", model, "threads", 1, NULL);
  return filter;
}

/* A harness around a configured filter (the harness starts it: start() loads the model). */
static GstHarness *
harness_for (GstElement * filter, const gchar * caps)
{
  GstHarness *h = gst_harness_new_with_element (filter, "sink", "src");
  gst_object_unref (filter);
  if (caps)
    gst_harness_set_src_caps_str (h, caps);
  return h;
}

/* A buffer of `size` deterministic pseudo-random bytes with a timestamp. */
static GstBuffer *
make_frame (gsize size, guint seed, GstClockTime pts)
{
  GstBuffer *buffer = gst_buffer_new_allocate (NULL, size, NULL);
  GstMapInfo map;
  guint32 state = 2654435761u * (seed + 1);

  gst_buffer_map (buffer, &map, GST_MAP_WRITE);
  for (gsize i = 0; i < size; i++) {
    state = state * 1664525u + 1013904223u;
    map.data[i] = state >> 24;
  }
  gst_buffer_unmap (buffer, &map);
  GST_BUFFER_PTS (buffer) = pts;
  GST_BUFFER_DURATION (buffer) = GST_SECOND / 30;
  return buffer;
}

static gsize
frame_size (const gchar * format, gint width, gint height)
{
  GstVideoInfo info;

  fail_unless (gst_video_info_set_format (&info, gst_video_format_from_string (format), width,
          height));
  return GST_VIDEO_INFO_SIZE (&info);
}

static gchar *
caps_string (const gchar * format, gint width, gint height)
{
  return g_strdup_printf ("video/x-raw,format=%s,width=%d,height=%d,framerate=30/1", format,
      width, height);
}

/* Pushes one frame, pulls it and reads its meta; the buffer is returned for more checks. */
static GstBuffer *
push_pull (GstHarness * h, gsize size, guint seed, MoneClassification * result)
{
  GstBuffer *out;

  fail_unless_equals_int (gst_harness_push (h, make_frame (size, seed, seed * GST_SECOND / 30)),
      GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless (out != NULL);
  fail_unless (gst_mone_meta_read (out, result), "buffer without a complete MoNE meta");
  return out;
}

static gboolean
buffer_bytes_equal (GstBuffer * a, GstBuffer * b)
{
  GstMapInfo ma, mb;
  gboolean equal;

  gst_buffer_map (a, &ma, GST_MAP_READ);
  gst_buffer_map (b, &mb, GST_MAP_READ);
  equal = ma.size == mb.size && memcmp (ma.data, mb.data, ma.size) == 0;
  gst_buffer_unmap (a, &ma);
  gst_buffer_unmap (b, &mb);
  return equal;
}

/* The top class is the first and best of the top-k list, scores descend and sum to at most 1, and
 * the labels are the ones written into the test models ("class-<index>"). */
static void
check_result_consistent (const MoneClassification * r, const gchar * what)
{
  gdouble sum = 0;

  fail_unless_equals_int (r->top_k, 5);
  fail_unless_equals_int (r->top_classes[0], r->top_class);
  fail_unless_equals_float (r->top_scores[0], r->top_score);
  for (guint i = 0; i < r->top_k; i++) {
    gchar *label = g_strdup_printf ("class-%d", r->top_classes[i]);

    fail_unless_equals_string (r->top_labels[i], label);
    fail_unless (i == 0 || r->top_scores[i] <= r->top_scores[i - 1], "%s: scores not sorted", what);
    sum += r->top_scores[i];
    g_free (label);
  }
  fail_unless (sum <= 1.0 + 1e-6, "%s: top-k scores sum to %f", what, sum);
}

/* Pushes two frames of one format and size and checks: negotiated or refused cleanly, the bytes
 * come out unchanged, and every buffer carries a meta. Returns whether it negotiated. */
static gboolean
check_format (const gchar * model, const gchar * format, gint width, gint height)
{
  gchar *caps = caps_string (format, width, height);
  GstHarness *h = harness_for (make_filter (model), caps);
  gsize size = frame_size (format, width, height);
  gboolean negotiated = TRUE;

  for (guint i = 0; i < 2 && negotiated; i++) {
    GstBuffer *in = make_frame (size, i, i * GST_SECOND / 30);
    GstBuffer *reference = gst_buffer_copy_deep (in);
    GstFlowReturn flow = gst_harness_push (h, in);

    if (flow == GST_FLOW_NOT_NEGOTIATED) {
      negotiated = FALSE;
    } else {
      MoneClassification result;
      GstBuffer *out;

      fail_unless_equals_int (flow, GST_FLOW_OK);
      out = gst_harness_pull (h);
      fail_unless (buffer_bytes_equal (out, reference), "%s: pixels changed", caps);
      fail_unless (gst_mone_meta_read (out, &result), "%s: no meta", caps);
      fail_unless_equals_int (result.tokens, 16);
      fail_unless_equals_uint64 (result.frame, i);
      /* The result is self-consistent and names the model's own label for its class. */
      check_result_consistent (&result, caps);
      gst_buffer_unref (out);
    }
    gst_buffer_unref (reference);
  }
  gst_harness_teardown (h);
  GST_INFO ("%s: %s", caps, negotiated ? "negotiated" : "refused");
  g_free (caps);
  return negotiated;
}

static const gchar *const listed_formats[] = {
  "RGB", "BGR", "RGBx", "BGRx", "xRGB", "xBGR", "RGBA", "BGRA", "ARGB", "ABGR", "GRAY8",
  "I420", "NV12", "YUY2",
};

static const gchar *const extra_formats[] = {
  "GRAY16_LE", "GRAY16_BE", "YV12", "NV21", "UYVY", "YVYU", "Y41B", "Y42B", "Y444", "AYUV",
  "RGB16", "BGR16", "I420_10LE", "P010_10LE",
};

/* ---- tests ---- */

GST_START_TEST (test_negotiation_listed_formats)
{
  for (guint i = 0; i < G_N_ELEMENTS (listed_formats); i++) {
    fail_unless (check_format (rgb_model, listed_formats[i], 320, 240), "%s refused",
        listed_formats[i]);
    fail_unless (check_format (grey_model, listed_formats[i], 64, 48), "%s refused (grey)",
        listed_formats[i]);
  }
  for (guint i = 0; i < G_N_ELEMENTS (extra_formats); i++)
    fail_unless (check_format (rgb_model, extra_formats[i], 160, 120), "%s refused",
        extra_formats[i]);
}

GST_END_TEST;

GST_START_TEST (test_negotiation_odd_sizes)
{
  static const struct
  {
    gint width, height;
  } sizes[] = { {1, 1}, {3, 1}, {1, 3}, {33, 17}, {641, 479}, {4096, 2160} };

  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++) {
    for (guint i = 0; i < G_N_ELEMENTS (listed_formats); i++) {
      /* The largest size for a few formats only: it is about size, not format. */
      if (sizes[s].width > 1000 && !g_str_equal (listed_formats[i], "I420")
          && !g_str_equal (listed_formats[i], "NV12") && !g_str_equal (listed_formats[i], "RGB")
          && !g_str_equal (listed_formats[i], "BGRx"))
        continue;
      /* Either works or is refused at negotiation; in practice GstVideoConverter takes them all. */
      fail_unless (check_format (rgb_model, listed_formats[i], sizes[s].width, sizes[s].height),
          "%s %dx%d refused", listed_formats[i], sizes[s].width, sizes[s].height);
    }
  }
}

GST_END_TEST;

/* A letterbox whose centred position is odd (640x360 into 32x32: 18 rows from row 7): where the
 * picture is written in a subsampled format first (I420 into an RGB model: scaled as I420, then
 * converted), it lands on the even row above, and the meta says so; RGB frames and grey models
 * keep row 7. */
GST_START_TEST (test_letterbox_odd_offset)
{
  static const struct
  {
    const gchar *format;
    gboolean grey;
    gdouble model_y;
  } cases[] = {
    {"I420", FALSE, 6}, {"NV12", FALSE, 6}, {"YUY2", FALSE, 7}, {"RGB", FALSE, 7},
    {"I420", TRUE, 7},
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    GstElement *filter = make_filter (cases[i].grey ? grey_model : rgb_model);
    gchar *caps = caps_string (cases[i].format, 640, 360);
    MoneClassification r;
    GstHarness *h;
    GstBuffer *out;

    gst_util_set_object_arg (G_OBJECT (filter), "scale-mode", "letterbox");
    h = harness_for (filter, caps);
    out = push_pull (h, frame_size (cases[i].format, 640, 360), 0, &r);
    fail_unless_equals_float (r.model_height, 18);
    fail_unless (r.model_y == cases[i].model_y, "%s into the %s model: picture at row %g, not %g",
        cases[i].format, cases[i].grey ? "grey" : "RGB", r.model_y, cases[i].model_y);
    gst_buffer_unref (out);
    gst_harness_teardown (h);
    g_free (caps);
  }
}

GST_END_TEST;

/* Passthrough: the buffer downstream shares the very memory pushed, even when the pusher holds a
 * reference (then only the GstBuffer is new, for the meta). */
GST_START_TEST (test_passthrough_no_copy)
{
  GstHarness *h = harness_for (make_filter (rgb_model), "video/x-raw,format=RGB,width=64,"
      "height=48,framerate=30/1");
  GstBuffer *in = make_frame (frame_size ("RGB", 64, 48), 1, 0), *out;
  GstMemory *memory = gst_buffer_peek_memory (in, 0);

  gst_buffer_ref (in);          /* not writable any more */
  fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless_equals_int (gst_buffer_n_memory (out), 1);
  fail_unless (gst_buffer_peek_memory (out, 0) == memory, "pixels were copied");
  fail_unless (gst_buffer_get_mone_meta (out) != NULL);
  fail_unless (gst_buffer_get_mone_meta (in) == NULL, "the pusher's buffer was modified");
  gst_buffer_unref (out);
  gst_buffer_unref (in);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_meta_fields)
{
  GstElement *filter = make_filter (rgb_model);
  GstHarness *h;
  MoneClassification r;
  GstBuffer *out;
  gchar **labels = NULL;
  gdouble min_budget;
  guint64 last_latency;
  gdouble last_gflops, last_budget;
  int counts = 0;

  g_object_set (filter, "top-k", 3, "budget", 0.5, NULL);
  h = harness_for (filter, "video/x-raw,format=BGRx,width=320,height=240,framerate=30/1");
  out = push_pull (h, frame_size ("BGRx", 320, 240), 3, &r);

  g_object_get (h->element, "labels", &labels, "min-budget", &min_budget, "last-latency",
      &last_latency, "last-gflops", &last_gflops, "last-budget", &last_budget, NULL);
  fail_unless (labels != NULL && g_strv_length (labels) == 10);
  fail_unless_equals_string (labels[r.top_class], r.label);
  fail_unless_equals_float (min_budget, 0.125);
  fail_unless_equals_int (r.top_k, 3);
  fail_unless_equals_int (r.top_classes[0], r.top_class);
  fail_unless_equals_string (r.top_labels[0], r.label);
  fail_unless (r.top_scores[0] >= r.top_scores[1] && r.top_scores[1] >= r.top_scores[2]);
  fail_unless (r.top_score > 0 && r.top_score <= 1);
  fail_unless_equals_float (r.budget_requested, 0.5);
  fail_unless (fabs (r.budget_used - 0.5) < 1e-9);
  fail_unless (!r.budget_auto && !r.reused);
  fail_unless (r.gflops > 0 && fabs (r.gflops - last_gflops) < 1e-12);
  fail_unless (r.latency_ns > 0 && r.latency_ns == last_latency);
  fail_unless_equals_float (last_budget, r.budget_used);
  fail_unless_equals_int (r.experts, 4);
  fail_unless_equals_int (r.grid_width, 4);
  fail_unless_equals_int (r.grid_height, 4);
  fail_unless_equals_int (r.grid_slices, 1);
  fail_unless_equals_int (r.expert_grid_size, 16);
  for (int j = 0; j < r.experts; j++)
    counts += r.tokens_per_expert[j];
  fail_unless_equals_int (counts, 16);
  for (int t = 0; t < 16; t++)
    fail_unless (r.expert_grid[t] < 4);
  fail_unless_equals_uint64 (r.timestamp, 3 * GST_SECOND / 30);
  fail_unless_equals_string (r.scale_mode, "stretch");
  fail_unless_equals_float (r.content_width, 320);
  fail_unless_equals_float (r.model_width, 32);
  {
    gint window_frames = 0, frames_per_slice = 0, window_filled = 0;
    fail_unless (gst_structure_get (gst_buffer_get_mone_structure (out), "window-frames",
            G_TYPE_INT, &window_frames, "frames-per-slice", G_TYPE_INT, &frames_per_slice,
            "window-filled", G_TYPE_INT, &window_filled, NULL));
    fail_unless (window_frames == 1 && frames_per_slice == 1 && window_filled == 1);
  }
  {
    /* The size content-* is in, for readers behind an element that scales the picture. */
    gint frame_width = 0, frame_height = 0;
    fail_unless (gst_structure_get (gst_buffer_get_mone_structure (out), "frame-width",
            G_TYPE_INT, &frame_width, "frame-height", G_TYPE_INT, &frame_height, NULL));
    fail_unless (frame_width == 320 && frame_height == 240);
  }
  g_strfreev (labels);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_scale_modes)
{
  static const struct
  {
    const gchar *mode;
    gdouble content[4], model[4];
  } cases[] = {
    {"stretch", {0, 0, 320, 240}, {0, 0, 32, 32}},
    {"letterbox", {0, 0, 320, 240}, {0, 4, 32, 24}},
    {"crop", {40, 0, 240, 240}, {0, 0, 32, 32}},
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    GstElement *filter = make_filter (rgb_model);
    GstHarness *h;
    MoneClassification r;
    GstBuffer *out;

    gst_util_set_object_arg (G_OBJECT (filter), "scale-mode", cases[i].mode);
    h = harness_for (filter, "video/x-raw,format=I420,width=320,height=240,framerate=30/1");
    out = push_pull (h, frame_size ("I420", 320, 240), 0, &r);
    fail_unless_equals_string (r.scale_mode, cases[i].mode);
    fail_unless_equals_float (r.content_x, cases[i].content[0]);
    fail_unless_equals_float (r.content_y, cases[i].content[1]);
    fail_unless_equals_float (r.content_width, cases[i].content[2]);
    fail_unless_equals_float (r.content_height, cases[i].content[3]);
    fail_unless_equals_float (r.model_x, cases[i].model[0]);
    fail_unless_equals_float (r.model_y, cases[i].model[1]);
    fail_unless_equals_float (r.model_width, cases[i].model[2]);
    fail_unless_equals_float (r.model_height, cases[i].model[3]);
    gst_buffer_unref (out);
    gst_harness_teardown (h);
  }

  /* Changed while playing: the next frame is fitted the new way. */
  GstHarness *h = harness_for (make_filter (rgb_model),
      "video/x-raw,format=I420,width=320,height=240,framerate=30/1");
  MoneClassification r;
  GstBuffer *out = push_pull (h, frame_size ("I420", 320, 240), 0, &r);
  fail_unless_equals_string (r.scale_mode, "stretch");
  gst_buffer_unref (out);
  gst_util_set_object_arg (G_OBJECT (h->element), "scale-mode", "crop");
  out = push_pull (h, frame_size ("I420", 320, 240), 1, &r);
  fail_unless_equals_string (r.scale_mode, "crop");
  fail_unless_equals_float (r.content_x, 40);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* The picture matters: two different frames give different logits, so the conversion really
 * feeds the frame to the model (scores of equal frames are equal). */
/* Classifies one buffer in a fresh harness and returns its result. */
static MoneClassification
classify_buffer (const gchar * model, const gchar * caps, GstBuffer * buffer)
{
  GstHarness *h = harness_for (make_filter (model), caps);
  MoneClassification result;
  GstBuffer *out;

  GST_BUFFER_PTS (buffer) = 0;
  GST_BUFFER_DURATION (buffer) = GST_SECOND / 30;
  fail_unless_equals_int (gst_harness_push (h, buffer), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless (gst_mone_meta_read (out, &result), "%s: no meta", caps);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
  return result;
}

/* A GRAY8 frame of width x height whose rows are `stride` bytes apart (a GstVideoMeta says so),
 * pixel (x, y) = pattern (x, y), padding 0xAB. */
static GstBuffer *
gray_frame_with_stride (gint width, gint height, gint stride)
{
  GstBuffer *buffer = gst_buffer_new_allocate (NULL, (gsize) stride * height, NULL);
  GstMapInfo map;
  gsize offset[GST_VIDEO_MAX_PLANES] = { 0 };
  gint strides[GST_VIDEO_MAX_PLANES] = { stride };

  gst_buffer_map (buffer, &map, GST_MAP_WRITE);
  memset (map.data, 0xAB, map.size);
  for (gint y = 0; y < height; y++)
    for (gint x = 0; x < width; x++)
      map.data[(gsize) y * stride + x] = (guint8) (37 * x + 91 * y + 11);
  gst_buffer_unmap (buffer, &map);
  gst_buffer_add_video_meta_full (buffer, GST_VIDEO_FRAME_FLAG_NONE, GST_VIDEO_FORMAT_GRAY8, width,
      height, 1, offset, strides);
  return buffer;
}

/* Upstream buffers whose rows are padded (a GstVideoMeta with a larger stride) classify exactly
 * like tightly packed ones, also for frames under 8 pixels (which the element converts from a
 * copy; that copy once took the upstream strides and wrote past its end). */
GST_START_TEST (test_padded_strides)
{
  static const struct
  {
    gint width, height;
  } sizes[] = { {4, 7}, {1, 1}, {7, 3}, {33, 17} };

  for (guint s = 0; s < G_N_ELEMENTS (sizes); s++) {
    const gint w = sizes[s].width, h = sizes[s].height;
    gchar *caps = caps_string ("GRAY8", w, h);
    GstVideoInfo info;
    gst_video_info_set_format (&info, GST_VIDEO_FORMAT_GRAY8, w, h);
    MoneClassification packed = classify_buffer (grey_model, caps,
        gray_frame_with_stride (w, h, GST_VIDEO_INFO_PLANE_STRIDE (&info, 0)));
    MoneClassification padded = classify_buffer (grey_model, caps,
        gray_frame_with_stride (w, h, 4096));

    for (guint i = 0; i < packed.top_k; i++) {
      fail_unless_equals_int (packed.top_classes[i], padded.top_classes[i]);
      fail_unless_equals_float (packed.top_scores[i], padded.top_scores[i]);
    }
    g_free (caps);
  }
}

GST_END_TEST;

/* A uniform I420 frame (U = V = 128) with luma `y`, or a GRAY8 frame of value `y`. */
static GstBuffer *
uniform_frame (const gchar * format, gint width, gint height, guint8 y)
{
  GstVideoInfo info;
  GstVideoFrame frame;
  GstBuffer *buffer;

  gst_video_info_set_format (&info, gst_video_format_from_string (format), width, height);
  buffer = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&info), NULL);
  fail_unless (gst_video_frame_map (&frame, &info, buffer, GST_MAP_WRITE));
  for (guint p = 0; p < GST_VIDEO_FRAME_N_PLANES (&frame); p++) {
    guint8 *data = GST_VIDEO_FRAME_PLANE_DATA (&frame, p);
    gint rows = GST_VIDEO_FRAME_COMP_HEIGHT (&frame, p);
    memset (data, p == 0 ? y : 128, (gsize) GST_VIDEO_FRAME_PLANE_STRIDE (&frame, p) * rows);
  }
  gst_video_frame_unmap (&frame);
  return buffer;
}

static gdouble
score_distance (const MoneClassification * a, const MoneClassification * b)
{
  gdouble d = 0;

  for (guint i = 0; i < a->top_k; i++)
    d += ABS (a->top_scores[i] - b->top_scores[i]) + (a->top_classes[i] != b->top_classes[i]);
  return d;
}

/* Limited-range video (I420 from a decoder or camera: black at Y 16, white at 235) reaches a grey
 * model expanded to the full range: I420 luma 60 classifies like GRAY8 (60 - 16) * 255 / 219 = 51,
 * not like GRAY8 60 (what copying Y into GRAY8 would give). */
GST_START_TEST (test_limited_range_expanded)
{
  gchar *i420 = caps_string ("I420", 64, 48), *gray = caps_string ("GRAY8", 64, 48);
  MoneClassification video = classify_buffer (grey_model, i420, uniform_frame ("I420", 64, 48, 60));
  MoneClassification expanded = classify_buffer (grey_model, gray,
      uniform_frame ("GRAY8", 64, 48, 51));
  MoneClassification copied = classify_buffer (grey_model, gray,
      uniform_frame ("GRAY8", 64, 48, 60));
  gdouble to_expanded = score_distance (&video, &expanded), to_copied = score_distance (&video,
      &copied);

  GST_INFO ("score distance to the expanded grey %g, to the copied grey %g", to_expanded,
      to_copied);
  fail_unless (to_expanded < to_copied, "I420 luma was not range-expanded (%g >= %g)",
      to_expanded, to_copied);
  fail_unless (to_expanded < 0.02, "I420 result far from the expanded grey (%g)", to_expanded);
  g_free (i420);
  g_free (gray);
}

GST_END_TEST;

GST_START_TEST (test_result_follows_picture)
{
  GstHarness *h = harness_for (make_filter (rgb_model),
      "video/x-raw,format=RGB,width=96,height=96,framerate=30/1");
  gsize size = frame_size ("RGB", 96, 96);
  MoneClassification a, b, c;
  GstBuffer *oa = push_pull (h, size, 1, &a), *ob = push_pull (h, size, 2, &b);
  GstBuffer *oc;

  fail_unless_equals_int (gst_harness_push (h, make_frame (size, 1, GST_SECOND)), GST_FLOW_OK);
  oc = gst_harness_pull (h);
  fail_unless (gst_mone_meta_read (oc, &c));
  fail_unless (a.top_scores[0] != b.top_scores[0] || a.top_scores[1] != b.top_scores[1]);
  for (guint i = 0; i < a.top_k; i++) {
    fail_unless_equals_int (a.top_classes[i], c.top_classes[i]);
    fail_unless_equals_float (a.top_scores[i], c.top_scores[i]);
  }
  gst_buffer_unref (oa);
  gst_buffer_unref (ob);
  gst_buffer_unref (oc);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_interval)
{
  GstElement *filter = make_filter (rgb_model);
  GstHarness *h;
  gsize size = frame_size ("GRAY8", 64, 48);

  g_object_set (filter, "interval", 3, NULL);
  h = harness_for (filter, "video/x-raw,format=GRAY8,width=64,height=48,framerate=30/1");
  for (guint i = 0; i < 10; i++) {
    MoneClassification r;
    GstBuffer *out = push_pull (h, size, i, &r);

    fail_unless_equals_uint64 (r.frame, i);
    fail_unless_equals_int (r.reused, i % 3 != 0);
    fail_unless_equals_uint64 (r.result_frame, i - i % 3);
    fail_unless_equals_uint64 (r.timestamp, i * GST_SECOND / 30);
    gst_buffer_unref (out);
  }
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_budget_change_next_frame)
{
  GstHarness *h = harness_for (make_filter (rgb_model),
      "video/x-raw,format=RGBx,width=64,height=64,framerate=30/1");
  gsize size = frame_size ("RGBx", 64, 64);
  MoneClassification full, low, again;
  GstBuffer *o1, *o2, *o3;

  o1 = push_pull (h, size, 0, &full);
  fail_unless_equals_float (full.budget_used, 1.0);
  fail_unless_equals_int (full.tokens_per_expert[3], 16);

  g_object_set (h->element, "budget", 0.25, NULL);
  o2 = push_pull (h, size, 0, &low);
  fail_unless (fabs (low.budget_used - 0.25) < 1e-9, "budget-used %f", low.budget_used);
  fail_unless (low.tokens_per_expert[3] < 16, "histogram unchanged");
  fail_unless (low.gflops < 0.8 * full.gflops, "GFLOPs %f vs %f", low.gflops, full.gflops);
  fail_unless (memcmp (full.expert_grid, low.expert_grid, 16) != 0);

  /* Below the model minimum: clamped and reported. */
  g_object_set (h->element, "budget", 0.01, NULL);
  o3 = push_pull (h, size, 0, &again);
  fail_unless_equals_float (again.budget_requested, 0.01);
  fail_unless_equals_float (again.budget_used, 0.125);
  fail_unless_equals_int (again.tokens_per_expert[0], 16);
  fail_unless (again.gflops < low.gflops);

  gst_buffer_unref (o1);
  gst_buffer_unref (o2);
  gst_buffer_unref (o3);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* budget is controllable: a control source drives it through gst_object_sync_values. */
GST_START_TEST (test_budget_controlled)
{
  GstElement *filter = make_filter (rgb_model);
  GstControlSource *cs = gst_interpolation_control_source_new ();
  GstTimedValueControlSource *tvcs = GST_TIMED_VALUE_CONTROL_SOURCE (cs);
  GstHarness *h;
  gsize size = frame_size ("RGB", 32, 32);
  MoneClassification r;

  g_object_set (cs, "mode", GST_INTERPOLATION_MODE_NONE, NULL);
  gst_timed_value_control_source_set (tvcs, 0, 1.0);
  gst_timed_value_control_source_set (tvcs, 2 * GST_SECOND / 30, 0.5);
  gst_object_add_control_binding (GST_OBJECT (filter),
      gst_direct_control_binding_new_absolute (GST_OBJECT (filter), "budget", cs));
  h = harness_for (filter, "video/x-raw,format=RGB,width=32,height=32,framerate=30/1");
  for (guint i = 0; i < 4; i++) {
    GstBuffer *out = push_pull (h, size, i, &r);
    fail_unless_equals_float (r.budget_used, i < 2 ? 1.0 : 0.5);
    gst_buffer_unref (out);
  }
  gst_object_unref (cs);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_video_model_window)
{
  GstHarness *h = harness_for (make_filter (video_model),
      "video/x-raw,format=NV12,width=64,height=48,framerate=30/1");
  gsize size = frame_size ("NV12", 64, 48);

  for (guint i = 0; i < 6; i++) {
    MoneClassification r;
    GstBuffer *out = push_pull (h, size, i, &r);
    const GstStructure *s = gst_buffer_get_mone_structure (out);
    gint window_frames = 0, frames_per_slice = 0, window_filled = 0;

    fail_unless_equals_int (r.grid_slices, 2);
    fail_unless_equals_int (r.tokens, 32);
    fail_unless_equals_int (r.expert_grid_size, 32);
    /* Which frames the slices cover, and whether the window is full yet. */
    fail_unless (gst_structure_get (s, "window-frames", G_TYPE_INT, &window_frames,
            "frames-per-slice", G_TYPE_INT, &frames_per_slice, "window-filled", G_TYPE_INT,
            &window_filled, NULL), "window fields missing");
    fail_unless_equals_int (window_frames, 4);
    fail_unless_equals_int (frames_per_slice, 2);
    fail_unless_equals_int (window_filled, MIN (i + 1, 4));
    gst_buffer_unref (out);
  }
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Pushes `in` through a grey 32x32 video model and checks the result against the engine run
 * directly on the frames `window` (make_frame seeds, oldest first). */
static void
check_video_window (GstHarness * h, MoneContext * context, GstBuffer * in, const guint window[4],
    const gchar * what)
{
  const gsize slot = 32 * 32;
  float *input = g_new (float, 4 * slot);
  MoneClassification r;
  MoneResult expected;
  GstBuffer *out;

  for (guint t = 0; t < 4; t++) {
    GstBuffer *frame = make_frame (slot, window[t], 0);
    GstMapInfo map;

    gst_buffer_map (frame, &map, GST_MAP_READ);
    for (gsize i = 0; i < slot; i++)
      input[t * slot + i] = map.data[i] / 255.0f;
    gst_buffer_unmap (frame, &map);
    gst_buffer_unref (frame);
  }
  fail_unless (mone_context_run (context, input, 1.0, &expected, NULL));
  fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless (gst_mone_meta_read (out, &r));
  fail_unless (!r.reused);
  /* Equal up to float rounding (the two contexts' buffers differ in alignment); another window
   * moves these probabilities by about 1e-3. */
  for (guint i = 0; i < r.top_k; i++)
    fail_unless (fabs (r.top_scores[i] - expected.probs[r.top_classes[i]]) < 1e-6,
        "%s: class %d has probability %.9f, the window {%u %u %u %u} gives %.9f", what,
        r.top_classes[i], r.top_scores[i], window[0], window[1], window[2], window[3],
        (double) expected.probs[r.top_classes[i]]);
  gst_buffer_unref (out);
  g_free (input);
}

/* A video model sees the latest frames oldest first; the first frame of a stream fills the whole
 * window; a flush, a DISCONT buffer, a GAP event or a new stream start the window afresh rather
 * than join pictures from both sides. */
GST_START_TEST (test_video_model_window_resets)
{
  MoneModel *model = mone_model_load_file (grey_video_model, NULL);
  MoneContext *context = mone_context_new (model, 1, NULL);
  GstHarness *h = harness_for (make_filter (grey_video_model),
      "video/x-raw,format=GRAY8,width=32,height=32,framerate=30/1");
  const gsize size = 32 * 32;
  GstSegment segment;
  GstBuffer *in;
  static const guint start[6][4] = {
    {0, 0, 0, 0}, {0, 0, 0, 1}, {0, 0, 1, 2}, {0, 1, 2, 3}, {1, 2, 3, 4}, {2, 3, 4, 5},
  };
  static const guint discont[] = { 10, 10, 10, 10 }, after_discont[] = { 10, 10, 10, 11 };
  static const guint gap[] = { 20, 20, 20, 20 }, stream[] = { 30, 30, 30, 30 };
  static const guint flushed[] = { 40, 40, 40, 40 };

  fail_unless (context != NULL);
  for (guint i = 0; i < 6; i++)
    check_video_window (h, context, make_frame (size, i, i * GST_SECOND / 30), start[i],
        "stream start");

  in = make_frame (size, 10, 10 * GST_SECOND);
  GST_BUFFER_FLAG_SET (in, GST_BUFFER_FLAG_DISCONT);
  check_video_window (h, context, in, discont, "DISCONT buffer");
  check_video_window (h, context, make_frame (size, 11, 10 * GST_SECOND + GST_SECOND / 30),
      after_discont, "after the DISCONT buffer");

  fail_unless (gst_harness_push_event (h, gst_event_new_gap (11 * GST_SECOND, GST_SECOND)));
  check_video_window (h, context, make_frame (size, 20, 12 * GST_SECOND), gap, "GAP event");

  fail_unless (gst_harness_push_event (h, gst_event_new_stream_start ("second")));
  gst_harness_set_src_caps_str (h, "video/x-raw,format=GRAY8,width=32,height=32," "framerate=30/1");
  gst_segment_init (&segment, GST_FORMAT_TIME);
  fail_unless (gst_harness_push_event (h, gst_event_new_segment (&segment)));
  check_video_window (h, context, make_frame (size, 30, 0), stream, "new stream");

  fail_unless (gst_harness_push_event (h, gst_event_new_flush_start ()));
  fail_unless (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
  fail_unless (gst_harness_push_event (h, gst_event_new_segment (&segment)));
  check_video_window (h, context, make_frame (size, 40, 0), flushed, "flush");

  gst_harness_teardown (h);
  mone_context_free (context);
  mone_model_unref (model);
}

GST_END_TEST;

/* interval > 1: a result from before a discontinuity or a gap is not reused after it. */
GST_START_TEST (test_interval_discont)
{
  GstElement *filter = make_filter (rgb_model);
  GstHarness *h;
  gsize size = frame_size ("RGB", 32, 32);
  MoneClassification r;
  GstBuffer *in, *out;

  g_object_set (filter, "interval", 4, NULL);
  h = harness_for (filter, "video/x-raw,format=RGB,width=32,height=32,framerate=30/1");
  gst_buffer_unref (push_pull (h, size, 0, &r));
  gst_buffer_unref (push_pull (h, size, 1, &r));
  fail_unless (r.reused);

  in = make_frame (size, 2, 5 * GST_SECOND);
  GST_BUFFER_FLAG_SET (in, GST_BUFFER_FLAG_DISCONT);
  fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless (gst_mone_meta_read (out, &r));
  fail_unless (!r.reused && r.result_frame == 2, "DISCONT frame reused frame %" G_GUINT64_FORMAT,
      r.result_frame);
  gst_buffer_unref (out);
  gst_buffer_unref (push_pull (h, size, 3, &r));
  fail_unless (r.reused && r.result_frame == 2);

  fail_unless (gst_harness_push_event (h, gst_event_new_gap (6 * GST_SECOND, GST_SECOND)));
  gst_buffer_unref (push_pull (h, size, 4, &r));
  fail_unless (!r.reused && r.result_frame == 4, "frame after a GAP reused frame %"
      G_GUINT64_FORMAT, r.result_frame);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_messages)
{
  GstElement *filter = make_filter (rgb_model);
  GstBus *bus = gst_bus_new ();
  GstHarness *h;
  gsize size = frame_size ("YUY2", 64, 48);
  GstMessage *message;

  g_object_set (filter, "message", TRUE, NULL);
  gst_element_set_bus (filter, bus);
  h = harness_for (filter, "video/x-raw,format=YUY2,width=64,height=48,framerate=30/1");
  for (guint i = 0; i < 5; i++) {
    MoneClassification r, m;
    GstBuffer *out = push_pull (h, size, i, &r);

    message = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT);
    fail_unless (message != NULL, "no element message for frame %u", i);
    fail_unless (gst_structure_has_name (gst_message_get_structure (message),
            GST_MONE_CLASSIFICATION_NAME));
    GstStructure *from_meta = gst_structure_copy (gst_buffer_get_mone_structure (out));
    gst_structure_set_name (from_meta, GST_MONE_CLASSIFICATION_NAME);
    fail_unless (gst_structure_is_equal (gst_message_get_structure (message), from_meta),
        "message and meta differ");
    gst_structure_free (from_meta);
    fail_unless (gst_mone_classification_from_structure (gst_message_get_structure (message), &m));
    fail_unless_equals_uint64 (m.frame, i);
    gst_message_unref (message);
    gst_buffer_unref (out);
  }
  /* Off again: no more messages. */
  g_object_set (h->element, "message", FALSE, NULL);
  gst_buffer_unref (gst_harness_push_and_pull (h, make_frame (size, 9, GST_SECOND)));
  fail_unless (gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT) == NULL);
  gst_harness_teardown (h);
  gst_bus_set_flushing (bus, TRUE);
  gst_object_unref (bus);
}

GST_END_TEST;

/* A model whose logits overflow: every frame passes with valid=false and no class, one warning
 * names the model, invalid-frames counts them; a new stream warns again. */
GST_START_TEST (test_invalid_results)
{
  static const char *const rgb[] = { "seed=11" };
  gchar *model = write_model_full ("overflow.safetensors", G_N_ELEMENTS (rgb), rgb, TRUE);
  GstElement *filter = make_filter (model);
  GstBus *bus = gst_bus_new ();
  GstHarness *h;
  gsize size = frame_size ("RGB", 32, 32);
  GstMessage *message;
  guint64 invalid = 0;

  g_object_set (filter, "message", TRUE, NULL);
  gst_element_set_bus (filter, bus);
  h = harness_for (filter, "video/x-raw,format=RGB,width=32,height=32,framerate=30/1");
  for (guint i = 0; i < 4; i++) {
    GstBuffer *out = gst_harness_push_and_pull (h, make_frame (size, i, i * GST_SECOND / 30));
    const GstStructure *s = gst_buffer_get_mone_structure (out);
    MoneClassification r;
    gboolean valid = TRUE;

    fail_unless (s != NULL, "frame %u has no meta", i);
    fail_unless (gst_structure_get_boolean (s, "valid", &valid) && !valid, "frame %u: valid", i);
    fail_unless (gst_mone_meta_read (out, &r));
    fail_unless_equals_int (r.top_class, -1);
    fail_unless_equals_string (r.label, "");
    fail_unless_equals_int (r.top_k, 0);
    gst_buffer_unref (out);
  }
  message = gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING);
  fail_unless (message != NULL, "no warning for non-finite results");
  {
    GError *error = NULL;
    gst_message_parse_warning (message, &error, NULL);
    fail_unless (strstr (error->message, "overflow.safetensors") != NULL, "%s", error->message);
    g_error_free (error);
  }
  gst_message_unref (message);
  fail_unless (gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING) == NULL, "more than one warning");
  g_object_get (h->element, "invalid-frames", &invalid, NULL);
  fail_unless_equals_uint64 (invalid, 4);
  /* A new stream is told again. */
  gst_harness_push_event (h, gst_event_new_stream_start ("second"));
  gst_buffer_unref (gst_harness_push_and_pull (h, make_frame (size, 9, GST_SECOND)));
  message = gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING);
  fail_unless (message != NULL, "no warning in the second stream");
  gst_message_unref (message);
  gst_harness_teardown (h);
  gst_bus_set_flushing (bus, TRUE);
  gst_object_unref (bus);
  g_unlink (model);
  g_free (model);
}

GST_END_TEST;

/* Other threads change budget and interval as fast as they can during 1,000 pushes. */
GST_START_TEST (test_property_stress)
{
  GstElement *filter = make_filter (grey_model);
  GstHarness *h;
  GValue low = G_VALUE_INIT, high = G_VALUE_INIT, one = G_VALUE_INIT, four = G_VALUE_INIT;
  GstHarnessThread *threads[4];
  gsize size = frame_size ("GRAY8", 32, 32);
  guint fresh = 0, at_low = 0, at_high = 0;

  g_object_set (filter, "budget", 0.3, NULL);
  h = harness_for (filter, "video/x-raw,format=GRAY8,width=32,height=32,framerate=30/1");
  g_value_init (&low, G_TYPE_DOUBLE);
  g_value_set_double (&low, 0.3);
  g_value_init (&high, G_TYPE_DOUBLE);
  g_value_set_double (&high, 0.9);
  g_value_init (&one, G_TYPE_UINT);
  g_value_set_uint (&one, 1);
  g_value_init (&four, G_TYPE_UINT);
  g_value_set_uint (&four, 4);
  threads[0] = gst_harness_stress_property_start_full (h, "budget", &low, 10);
  threads[1] = gst_harness_stress_property_start_full (h, "budget", &high, 10);
  threads[2] = gst_harness_stress_property_start_full (h, "interval", &one, 10);
  threads[3] = gst_harness_stress_property_start_full (h, "interval", &four, 10);

  for (guint i = 0; i < 1000; i++) {
    MoneClassification r;
    GstBuffer *out = push_pull (h, size, i % 7, &r);

    fail_unless (fabs (r.budget_used - 0.3) < 1e-9 || fabs (r.budget_used - 0.9) < 1e-9,
        "budget-used %f", r.budget_used);
    fail_unless (i - r.result_frame < 4, "result of frame %" G_GUINT64_FORMAT " on frame %u",
        r.result_frame, i);
    fresh += !r.reused;
    at_low += !r.reused && fabs (r.budget_used - 0.3) < 1e-9;
    at_high += !r.reused && fabs (r.budget_used - 0.9) < 1e-9;
    gst_buffer_unref (out);
  }
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    fail_unless (gst_harness_stress_thread_stop (threads[i]) > 0);
  /* Both values of each property reached frames: some frames were reused (interval 4 at times),
   * at least one in four was classified (interval never above 4), and classified frames ran at
   * both budgets. */
  fail_unless (fresh >= 250 && fresh < 1000, "%u of 1000 frames classified", fresh);
  fail_unless (at_low > 0 && at_high > 0, "classified at 0.3: %u, at 0.9: %u", at_low, at_high);
  g_value_unset (&low);
  g_value_unset (&high);
  g_value_unset (&one);
  g_value_unset (&four);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* NULL -> PLAYING (model loaded, a frame classified) -> NULL (everything freed), 100 times. */
GST_START_TEST (test_state_cycles)
{
  GstHarness *h = harness_for (make_filter (rgb_model), NULL);
  gsize size = frame_size ("I420", 64, 48);

  for (guint i = 0; i < 100; i++) {
    MoneClassification r;
    GstBuffer *out;
    gchar *stream_id = g_strdup_printf ("cycle-%u", i);

    fail_unless_equals_int (gst_element_set_state (h->element, GST_STATE_NULL),
        GST_STATE_CHANGE_SUCCESS);
    fail_unless (gst_element_set_state (h->element, GST_STATE_PLAYING) ==
        GST_STATE_CHANGE_SUCCESS, "cycle %u", i);
    /* Deactivated pads dropped their sticky events: a new stream each time. */
    gst_harness_push_event (h, gst_event_new_stream_start (stream_id));
    gst_harness_set_src_caps_str (h, "video/x-raw,format=I420,width=64,height=48,"
        "framerate=30/1");
    out = push_pull (h, size, i, &r);
    fail_unless_equals_uint64 (r.frame, 0);
    gst_buffer_unref (out);
    g_free (stream_id);
  }
  gst_harness_teardown (h);
}

GST_END_TEST;

/* How many mappings of `path` this process holds (the loader maps model files). */
/* Counts the element's "loaded model file" debug lines (one per file actually read). */
static volatile gint models_loaded;

static void
count_model_loads (GstDebugCategory * category, GstDebugLevel level, const gchar * file,
    const gchar * function, gint line, GObject * object, GstDebugMessage * message,
    gpointer user_data)
{
  if (g_str_equal (gst_debug_category_get_name (category), "monefilter")
      && g_str_has_prefix (gst_debug_message_get (message), "loaded model file "))
    g_atomic_int_inc (&models_loaded);
}

GST_START_TEST (test_shared_model)
{
  const gchar *caps = "video/x-raw,format=RGB,width=64,height=48,framerate=30/1";
  gst_debug_set_threshold_for_name ("monefilter", GST_LEVEL_INFO);
  gst_debug_add_log_function (count_model_loads, NULL, NULL);
  g_atomic_int_set (&models_loaded, 0);
  GstHarness *a = harness_for (make_filter (rgb_model), caps);
  GstHarness *b = harness_for (make_filter (rgb_model), caps);
  gsize size = frame_size ("RGB", 64, 48);
  MoneClassification ra, rb;
  GstBuffer *oa, *ob;

  fail_unless_equals_int (g_atomic_int_get (&models_loaded), 1);
  /* Each has its own context: interleaved runs at different budgets stay independent. */
  g_object_set (b->element, "budget", 0.25, NULL);
  for (guint i = 0; i < 3; i++) {
    oa = push_pull (a, size, i, &ra);
    ob = push_pull (b, size, i, &rb);
    fail_unless_equals_float (ra.budget_used, 1.0);
    fail_unless (fabs (rb.budget_used - 0.25) < 1e-9);
    gst_buffer_unref (oa);
    gst_buffer_unref (ob);
  }
  gst_harness_teardown (a);
  /* b still holds the model: a new element shares it. */
  a = harness_for (make_filter (rgb_model), caps);
  fail_unless_equals_int (g_atomic_int_get (&models_loaded), 1);
  gst_harness_teardown (a);
  gst_harness_teardown (b);
  /* The last user released it: the next element reads the file again. */
  a = harness_for (make_filter (rgb_model), caps);
  fail_unless_equals_int (g_atomic_int_get (&models_loaded), 2);
  gst_harness_teardown (a);
  gst_debug_remove_log_function (count_model_loads);
  gst_debug_unset_threshold_for_name ("monefilter");
}

GST_END_TEST;

/* Sets the model and tries READY->PAUSED; returns the error posted (caller frees). */
static GError *
start_error (const gchar * model)
{
  GstElement *pipeline = gst_pipeline_new (NULL);
  GstElement *filter = gst_element_factory_make ("monefilter", NULL);
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *message;
  GError *error = NULL;

  gst_bin_add (GST_BIN (pipeline), filter);
  g_object_set (filter, "model", model, NULL);
  fail_unless_equals_int (gst_element_set_state (pipeline, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  message = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (message != NULL, "no error message for %s", model);
  fail_unless (GST_MESSAGE_SRC (message) == GST_OBJECT (filter));
  gst_message_parse_error (message, &error, NULL);
  gst_message_unref (message);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
  return error;
}

/* The loader's own words for why `path` cannot be loaded. */
static gchar *
loader_reason (const gchar * path)
{
  GError *error = NULL;
  MoneModel *model = mone_model_load_file (path, &error);
  gchar *reason;

  fail_unless (model == NULL);
  reason = g_strdup (error->message);
  g_error_free (error);
  return reason;
}

GST_START_TEST (test_bad_models)
{
  gchar *missing = g_build_filename (tmp_dir, "no-such-model.safetensors", NULL);
  const gchar *broken[] = { corrupt_model, truncated_model };
  GError *error;

  error = start_error (missing);
  fail_unless (g_error_matches (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND));
  fail_unless (strstr (error->message, missing) != NULL, "%s", error->message);
  fail_unless (strstr (error->message, "No such file or directory") != NULL, "%s", error->message);
  g_error_free (error);

  for (guint i = 0; i < G_N_ELEMENTS (broken); i++) {
    gchar *reason = loader_reason (broken[i]);
    error = start_error (broken[i]);
    fail_unless (g_error_matches (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED),
        "%s", error->message);
    fail_unless (strstr (error->message, broken[i]) != NULL, "%s", error->message);
    fail_unless (strstr (error->message, reason) != NULL, "'%s' lacks '%s'", error->message,
        reason);
    g_error_free (error);
    g_free (reason);
  }

  /* A directory, and a FIFO (opening it would block the state change for ever). */
  gchar *fifo = g_build_filename (tmp_dir, "model.fifo", NULL);
  fail_unless_equals_int (mkfifo (fifo, 0600), 0);
  const gchar *not_files[] = { tmp_dir, fifo };
  for (guint i = 0; i < G_N_ELEMENTS (not_files); i++) {
    error = start_error (not_files[i]);
    fail_unless (g_error_matches (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ),
        "%s", error->message);
    fail_unless (strstr (error->message, not_files[i]) != NULL, "%s", error->message);
    fail_unless (strstr (error->message, "not a regular file") != NULL, "%s", error->message);
    g_error_free (error);
  }
  g_unlink (fifo);
  g_free (fifo);
  g_free (missing);
}

GST_END_TEST;

/* GLib refuses an out-of-range property value with a warning up to 2.7x (Debian 12) and with a
 * critical since (Debian 13); either way the value must not be taken. */
#define ASSERT_REFUSED(code) G_STMT_START {                                    \
    _gst_check_expecting_log = TRUE;                                          \
    _gst_check_raised_warning = FALSE;                                        \
    _gst_check_raised_critical = FALSE;                                       \
    code;                                                                     \
    fail_unless (_gst_check_raised_warning || _gst_check_raised_critical,     \
        "expected GLib to refuse: " #code);                                   \
    _gst_check_raised_warning = FALSE;                                        \
    _gst_check_raised_critical = FALSE;                                       \
    _gst_check_expecting_log = FALSE;                                         \
  } G_STMT_END

GST_START_TEST (test_property_ranges)
{
  GstElement *filter = make_filter (rgb_model);
  gdouble budget;
  guint interval;

  ASSERT_REFUSED (g_object_set (filter, "budget", 1.5, NULL));
  ASSERT_REFUSED (g_object_set (filter, "budget", -0.1, NULL));
  ASSERT_REFUSED (g_object_set (filter, "interval", 0, NULL));
  ASSERT_REFUSED (g_object_set (filter, "top-k", 100, NULL));
  g_object_get (filter, "budget", &budget, "interval", &interval, NULL);
  fail_unless_equals_float (budget, 1.0);
  fail_unless_equals_int (interval, 1);
  gst_object_unref (filter);
}

GST_END_TEST;

/* budget-mode=auto: an impossible deadline drives the budget to the model minimum, a generous
 * one lets it climb to the ceiling; QoS events are taken without disturbing the stream. */
GST_START_TEST (test_auto_budget_smoke)
{
  GstElement *filter = make_filter (rgb_model);
  GstHarness *h;
  gsize size = frame_size ("RGB", 32, 32);
  MoneClassification r;
  GstBuffer *out;
  guint i;

  gst_util_set_object_arg (G_OBJECT (filter), "budget-mode", "auto");
  g_object_set (filter, "max-latency", (guint64) 1000, "budget", 0.9, NULL);
  h = harness_for (filter, "video/x-raw,format=RGB,width=32,height=32,framerate=30/1");
  /* Nothing fits 1 us: the first frame starts at the minimum (nothing learned yet) and no later
   * one is ever chosen above it. */
  for (i = 0; i < 20; i++) {
    out = push_pull (h, size, i, &r);
    fail_unless (r.budget_auto);
    fail_unless (fabs (r.budget_used - 0.125) < 1e-9 && fabs (r.budget_requested - 0.125) < 1e-9,
        "frame %u at budget %f (chosen %f) with a 1 us deadline", i, r.budget_used,
        r.budget_requested);
    gst_buffer_unref (out);
  }

  g_object_set (h->element, "max-latency", (guint64) 10 * GST_SECOND, NULL);
  for (i = 0; i < 200 && r.budget_used < 0.9 - 1e-9; i++) {
    out = push_pull (h, size, i, &r);
    gst_buffer_unref (out);
  }
  fail_unless (fabs (r.budget_used - 0.9) < 1e-9, "stuck at %f after %u frames", r.budget_used, i);

  /* 50 ms late against a 10 s deadline: taken, and still far inside the deadline. */
  fail_unless (gst_harness_push_upstream_event (h, gst_event_new_qos (GST_QOS_TYPE_UNDERFLOW,
              2.0, 50 * GST_MSECOND, 0)));
  out = push_pull (h, size, 1, &r);
  fail_unless (r.budget_auto && !r.reused);
  fail_unless (fabs (r.budget_used - 0.9) < 1e-9, "budget %f after a QoS event 50 ms late with a "
      "10 s deadline", r.budget_used);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* budget-mode=auto when even the minimum budget misses the deadline: the element classifies only
 * every Nth frame (the rest reuse the latest result) instead of falling behind; with a deadline
 * that fits, every frame is classified again. */
GST_START_TEST (test_auto_budget_overload_skips)
{
  GstElement *filter = make_filter (rgb_model);
  GstHarness *h;
  gsize size = frame_size ("RGB", 32, 32);
  MoneClassification r;
  GstBuffer *out;
  guint i, reused = 0, fresh = 0;

  gst_util_set_object_arg (G_OBJECT (filter), "budget-mode", "auto");
  g_object_set (filter, "max-latency", (guint64) 1000, NULL);
  h = harness_for (filter, "video/x-raw,format=RGB,width=32,height=32,framerate=30/1");
  for (i = 0; i < 60; i++) {
    out = push_pull (h, size, i, &r);
    if (i >= 10) {
      reused += r.reused;
      fresh += !r.reused;
    }
    gst_buffer_unref (out);
  }
  /* 1 us is far below any inference time: the interval sits at its cap of 30 frames. */
  fail_unless (fresh >= 1 && fresh <= 3, "%u fresh results in 50 overloaded frames", fresh);
  fail_unless (reused >= 47, "%u reused results in 50 overloaded frames", reused);

  g_object_set (h->element, "max-latency", (guint64) 10 * GST_SECOND, NULL);
  out = push_pull (h, size, 0, &r);     /* may still finish the overloaded interval */
  gst_buffer_unref (out);
  for (i = 0; i < 40; i++) {
    out = push_pull (h, size, i, &r);
    if (i >= 30)
      fail_unless (!r.reused, "frame %u reused with a 10 s deadline", i);
    gst_buffer_unref (out);
  }
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Stands in for a live source upstream reporting min 10 ms, max 50 ms (the harness's own source pad
 * has no way to report a bounded maximum). */
static GstPadProbeReturn
answer_upstream_latency (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  GstQuery *query = GST_PAD_PROBE_INFO_QUERY (info);

  if (GST_QUERY_TYPE (query) != GST_QUERY_LATENCY)
    return GST_PAD_PROBE_OK;
  gst_query_set_latency (query, TRUE, 10 * GST_MSECOND, 50 * GST_MSECOND);
  return GST_PAD_PROBE_HANDLED;
}

/* The LATENCY query answered by the element's src pad, as a sink would send it. */
static void
query_latency (GstHarness * h, gboolean * live, GstClockTime * min, GstClockTime * max)
{
  GstQuery *query = gst_query_new_latency ();

  fail_unless (gst_pad_peer_query (h->sinkpad, query));
  gst_query_parse_latency (query, live, min, max);
  gst_query_unref (query);
}

/* The element adds its auto-mode deadline to the upstream latency (both bounds); nothing in fixed
 * mode. */
GST_START_TEST (test_latency_query)
{
  GstElement *filter = make_filter (rgb_model);
  GstHarness *h;
  gboolean live;
  GstClockTime min, max;
  MoneClassification r;
  const GstClockTime frame = gst_util_uint64_scale_int (GST_SECOND, 1, 25);

  h = harness_for (filter, "video/x-raw,format=RGB,width=32,height=32,framerate=25/1");
  gst_pad_add_probe (h->srcpad, GST_PAD_PROBE_TYPE_QUERY_UPSTREAM, answer_upstream_latency, NULL,
      NULL);
  /* set_info (and with it the frame duration) runs with the first buffer. */
  gst_buffer_unref (push_pull (h, frame_size ("RGB", 32, 32), 0, &r));

  query_latency (h, &live, &min, &max);
  fail_unless (live);
  fail_unless_equals_uint64 (min, 10 * GST_MSECOND);
  fail_unless_equals_uint64 (max, 50 * GST_MSECOND);

  gst_util_set_object_arg (G_OBJECT (h->element), "budget-mode", "auto");
  query_latency (h, &live, &min, &max);
  fail_unless (live);
  fail_unless_equals_uint64 (min, 10 * GST_MSECOND + frame);
  fail_unless_equals_uint64 (max, 50 * GST_MSECOND + frame);

  g_object_set (h->element, "max-latency", (guint64) 5 * GST_MSECOND, NULL);
  query_latency (h, &live, &min, &max);
  fail_unless_equals_uint64 (min, 15 * GST_MSECOND);
  fail_unless_equals_uint64 (max, 55 * GST_MSECOND);
  gst_harness_teardown (h);

  /* An unbounded upstream maximum stays unbounded. */
  filter = make_filter (rgb_model);
  gst_util_set_object_arg (G_OBJECT (filter), "budget-mode", "auto");
  h = harness_for (filter, "video/x-raw,format=RGB,width=32,height=32,framerate=25/1");
  gst_harness_set_upstream_latency (h, 10 * GST_MSECOND);
  gst_buffer_unref (push_pull (h, frame_size ("RGB", 32, 32), 0, &r));
  query_latency (h, &live, &min, &max);
  fail_unless_equals_uint64 (min, 10 * GST_MSECOND + frame);
  fail_unless_equals_uint64 (max, GST_CLOCK_TIME_NONE);
  /* A huge upstream minimum saturates instead of wrapping round to a small one. */
  gst_harness_set_upstream_latency (h, G_MAXUINT64 - 2);
  query_latency (h, &live, &min, &max);
  fail_unless_equals_uint64 (min, G_MAXUINT64 - 1);
  gst_harness_teardown (h);
}

GST_END_TEST;

static guint
count_latency_messages (GstBus * bus)
{
  GstMessage *message;
  guint n = 0;

  while ((message = gst_bus_pop_filtered (bus, GST_MESSAGE_LATENCY))) {
    n++;
    gst_message_unref (message);
  }
  return n;
}

/* A latency message whenever the latency the element reports changes, and only then. */
GST_START_TEST (test_latency_messages)
{
  GstElement *filter = make_filter (rgb_model);
  GstBus *bus = gst_bus_new ();
  GstHarness *h;
  MoneClassification r;
  gsize size = frame_size ("RGB", 32, 32);

  gst_element_set_bus (filter, bus);
  h = harness_for (filter, "video/x-raw,format=RGB,width=32,height=32,framerate=25/1");
  gst_buffer_unref (push_pull (h, size, 0, &r));
  /* Fixed mode reports nothing of its own: max-latency does not matter there. */
  g_object_set (h->element, "max-latency", (guint64) 5 * GST_MSECOND, NULL);
  fail_unless_equals_int (count_latency_messages (bus), 0);

  gst_util_set_object_arg (G_OBJECT (h->element), "budget-mode", "auto");
  fail_unless_equals_int (count_latency_messages (bus), 1);
  g_object_set (h->element, "max-latency", (guint64) 5 * GST_MSECOND, NULL);
  fail_unless_equals_int (count_latency_messages (bus), 0);
  g_object_set (h->element, "max-latency", (guint64) 0, NULL);  /* now the frame duration */
  fail_unless_equals_int (count_latency_messages (bus), 1);

  /* A new frame rate changes the default deadline. */
  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=32,height=32,framerate=50/1");
  gst_buffer_unref (push_pull (h, size, 1, &r));
  fail_unless_equals_int (count_latency_messages (bus), 1);
  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=64,height=48,framerate=50/1");
  gst_buffer_unref (push_pull (h, frame_size ("RGB", 64, 48), 2, &r));
  fail_unless_equals_int (count_latency_messages (bus), 0);

  gst_util_set_object_arg (G_OBJECT (h->element), "budget-mode", "fixed");
  fail_unless_equals_int (count_latency_messages (bus), 1);
  gst_harness_teardown (h);
  gst_bus_set_flushing (bus, TRUE);
  gst_object_unref (bus);
}

GST_END_TEST;

/* Pushes a frame at `pts` with the harness clock at `now` (base time 0, segment from 0; the test
 * clock cannot go back). */
static GstBuffer *
push_pull_at (GstHarness * h, gsize size, GstClockTime pts, GstClockTime now,
    MoneClassification * result)
{
  GstBuffer *out;

  fail_unless (gst_harness_set_time (h, now));
  fail_unless_equals_int (gst_harness_push (h, make_frame (size, pts / GST_MSECOND, pts)),
      GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless (out != NULL);
  fail_unless (gst_mone_meta_read (out, result));
  return out;
}

/* Auto mode behind schedule: once a synchronising sink reports (QoS) and the pipeline latency is
 * known (LATENCY event), a frame that could not make its render time even at the minimum budget
 * carries the latest result instead of being classified late; a frame with time left is
 * classified as usual. On the harness's test clock, so deterministic. */
GST_START_TEST (test_auto_budget_catches_up)
{
  GstElement *filter = make_filter (rgb_model);
  GstHarness *h;
  gsize size = frame_size ("RGB", 32, 32);
  MoneClassification r;
  const GstClockTime latency = 100 * GST_MSECOND;
  GstClockTime pts = 10 * GST_SECOND;
  guint i;

  gst_util_set_object_arg (G_OBJECT (filter), "budget-mode", "auto");
  /* A generous per-frame deadline: the minimum budget always fits a whole one. */
  g_object_set (filter, "max-latency", (guint64) GST_SECOND, NULL);
  h = harness_for (filter, "video/x-raw,format=RGB,width=32,height=32,framerate=30/1");
  for (i = 0; i < 20; i++, pts += GST_SECOND / 30)
    gst_buffer_unref (push_pull_at (h, size, pts, 0, &r));
  fail_unless (!r.reused);

  /* Render times are unknown without QoS from downstream: a frame "late" on the clock is still
   * classified. */
  fail_unless (gst_harness_push_upstream_event (h, gst_event_new_latency (latency)));
  gst_buffer_unref (push_pull_at (h, size, pts, pts + latency + GST_SECOND, &r));
  fail_unless (!r.reused);
  pts += 2 * GST_SECOND;        /* the test clock only goes forward */

  fail_unless (gst_harness_push_upstream_event (h, gst_event_new_qos (GST_QOS_TYPE_UNDERFLOW,
              1.0, -GST_MSECOND, pts)));
  /* Already past its render time: reused. */
  gst_buffer_unref (push_pull_at (h, size, pts, pts + latency + GST_MSECOND, &r));
  fail_unless (r.reused);
  pts += GST_SECOND / 30;
  /* 1 us left: no budget fits, reused. */
  gst_buffer_unref (push_pull_at (h, size, pts, pts + latency - GST_USECOND, &r));
  fail_unless (r.reused);
  pts += GST_SECOND / 5;
  /* 100 ms left: classified. */
  gst_buffer_unref (push_pull_at (h, size, pts, pts, &r));
  fail_unless (!r.reused);
  fail_unless_equals_uint64 (r.result_frame, r.frame);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* ---- The same picture in every format ---- */

/* A Fashion-MNIST-like item in grey on black, at size x size: a T-shirt, body and sleeves shaded
 * top to bottom, a dark collar, a bright stripe and a pocket on one side only, so a conversion
 * that shifts, flips, mis-scales or mis-levels the picture changes the answer. */
static guint8
tshirt_pixel (gint x, gint y, gint size)
{
  const gdouble u = (x + 0.5) / size, v = (y + 0.5) / size;
  gboolean sleeves = v > 0.2 && v < 0.42 && u > 0.12 && u < 0.88;
  gboolean body = v > 0.2 && v < 0.9 && u > 0.28 && u < 0.72;

  if (!sleeves && !body)
    return 0;
  if ((u - 0.5) * (u - 0.5) + (v - 0.2) * (v - 0.2) < 0.01)
    return 40;                  /* collar */
  if (u > 0.34 && u < 0.44 && v > 0.3 && v < 0.38)
    return 70;                  /* pocket */
  if (v > 0.55 && v < 0.62)
    return 250;                 /* stripe */
  return (guint8) (110 + 100 * v);
}

/* The picture, box-blurred over (2 * blur + 1)^2 pixels when blur > 0: soft edges, the way a
 * camera or a decoder delivers them. */
static guint8
picture_pixel (gint x, gint y, gint size, gint blur)
{
  guint sum = 0;

  for (gint dy = -blur; dy <= blur; dy++)
    for (gint dx = -blur; dx <= blur; dx++)
      sum += tshirt_pixel (x + dx, y + dy, size);
  return (guint8) ((sum + (2 * blur + 1) * (2 * blur + 1) / 2) / ((2 * blur + 1) * (2 * blur + 1)));
}

/* Caps of the picture in `format`: YUV declared full range (0-255), as a JPEG decoder or a
 * camera in full-range mode delivers it, so that Y = the grey value exactly. */
static gchar *
picture_caps (const gchar * format, gint size)
{
  GstVideoInfo info;

  gst_video_info_set_format (&info, gst_video_format_from_string (format), size, size);
  return g_strdup_printf ("video/x-raw,format=%s,width=%d,height=%d,framerate=30/1%s", format,
      size, size, GST_VIDEO_INFO_IS_YUV (&info) ? ",colorimetry=1:4:0:0" : "");
}

/* The picture written directly in `format`: every RGB component and Y is the grey value, chroma
 * is neutral (128), padding bytes 255. */
static GstBuffer *
picture_buffer (const gchar * format, gint size, gint blur)
{
  gchar *caps_str = picture_caps (format, size);
  GstCaps *caps = gst_caps_from_string (caps_str);
  GstVideoInfo info;
  GstVideoFrame frame;
  GstBuffer *buffer;

  fail_unless (gst_video_info_from_caps (&info, caps));
  buffer = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&info), NULL);
  gst_buffer_memset (buffer, 0, 255, GST_VIDEO_INFO_SIZE (&info));
  fail_unless (gst_video_frame_map (&frame, &info, buffer, GST_MAP_WRITE));
  for (guint c = 0; c < GST_VIDEO_FRAME_N_COMPONENTS (&frame); c++) {
    guint8 *data = GST_VIDEO_FRAME_COMP_DATA (&frame, c);
    const gint stride = GST_VIDEO_FRAME_COMP_STRIDE (&frame, c);
    const gint pstride = GST_VIDEO_FRAME_COMP_PSTRIDE (&frame, c);
    const gboolean chroma = GST_VIDEO_INFO_IS_YUV (&info) && c > 0;

    for (gint y = 0; y < GST_VIDEO_FRAME_COMP_HEIGHT (&frame, c); y++)
      for (gint x = 0; x < GST_VIDEO_FRAME_COMP_WIDTH (&frame, c); x++)
        data[(gsize) y * stride + (gsize) x * pstride] = chroma ? 128 : picture_pixel (x, y, size,
            blur);
  }
  gst_video_frame_unmap (&frame);
  gst_caps_unref (caps);
  g_free (caps_str);
  return buffer;
}

/* Classifies the picture pushed in `format` at size x size; every class listed (top-k 10). */
static MoneClassification
classify_picture (const gchar * model, const gchar * format, gint size, gint blur)
{
  GstElement *filter = make_filter (model);
  gchar *caps = picture_caps (format, size);
  GstHarness *h;
  MoneClassification result;
  GstBuffer *in = picture_buffer (format, size, blur), *out;

  g_object_set (filter, "top-k", 10, NULL);
  h = harness_for (filter, caps);
  GST_BUFFER_PTS (in) = 0;
  GST_BUFFER_DURATION (in) = GST_SECOND / 30;
  fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless (gst_mone_meta_read (out, &result), "%s: no meta", caps);
  fail_unless_equals_int (result.top_k, 10);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
  g_free (caps);
  return result;
}

/* Largest difference between a result's class probabilities and `probs` (by class). */
static gdouble
probability_distance (const MoneClassification * r, const float *probs)
{
  gdouble d = 0;

  for (guint i = 0; i < r->top_k; i++)
    d = MAX (d, fabs (r->top_scores[i] - probs[r->top_classes[i]]));
  return d;
}

static const gchar *const picture_formats[] = { "RGB", "BGRx", "I420", "NV12", "YUY2", "AYUV",
  "GRAY8"
};

/* The tiny random test models spread their probabilities thinly (about 0.1 each; two different
 * pictures differ by some 1e-3), so the tolerance is tight: at the model's size every format must
 * give the engine's probabilities on the exact picture within 2e-5. Measured with GStreamer 1.22:
 * 0 for the grey model, 7.5e-9 (float rounding) for the RGB one, in every format; rounding one
 * level in a few pixels in another version's colour conversion would move them by about 1e-6. */
#define PICTURE_TOLERANCE 2e-5

/* Known answer: the picture at the model's own size (nothing to scale) pushed as RGB, BGRx, I420,
 * NV12 and GRAY8 gives what the engine gives on the picture itself, for a grey and an RGB model. */
GST_START_TEST (test_formats_known_answer)
{
  const gchar *models[] = { grey_model, rgb_model };

  for (guint m = 0; m < G_N_ELEMENTS (models); m++) {
    MoneModel *model = mone_model_load_file (models[m], NULL);
    MoneContext *context = mone_context_new (model, 1, NULL);
    const MoneConfig *config = mone_model_get_config (model);
    const gint size = config->width;
    const gsize plane = (gsize) size * size;
    float *input = g_new (float, plane * config->channels);
    MoneResult expected;

    for (gint c = 0; c < config->channels; c++)
      for (gint y = 0; y < size; y++)
        for (gint x = 0; x < size; x++)
          input[c * plane + (gsize) y * size + x] = tshirt_pixel (x, y, size) / 255.0f;
    fail_unless (mone_context_run (context, input, 1.0, &expected, NULL));
    for (guint f = 0; f < G_N_ELEMENTS (picture_formats); f++) {
      MoneClassification r = classify_picture (models[m], picture_formats[f], size, 0);
      gdouble distance = probability_distance (&r, expected.probs);

      GST_INFO ("%d-channel model, %s: class %d, largest probability difference %.3g",
          config->channels, picture_formats[f], r.top_class, distance);
      fail_unless_equals_int (r.top_class, expected.top_class);
      fail_unless (distance < PICTURE_TOLERANCE, "%d-channel model, %s: probabilities %.3g from "
          "the engine's on the picture", config->channels, picture_formats[f], distance);
    }
    g_free (input);
    mone_context_free (context);
    mone_model_unref (model);
  }
}

GST_END_TEST;

/* Scaling is not the same in every format: GStreamer 1.22's converter takes shortcuts when only the
 * size changes (GRAY8 and I420 to a grey model; any 8-bit format to an RGB model, which scales the
 * frame in its own format before converting it) that filter horizontally with fewer taps than its
 * general path, so a sharp edge comes out up to 47 levels apart. The scaled picture is therefore
 * blurred (9x9 box, soft edges as from a camera), which leaves 7.2e-5 in probability with the grey
 * test model and 1.0e-4 with the RGB one; full-range NV12 taken for limited range moves the grey
 * model's by 3.6e-4. */
#define SCALED_PICTURE_TOLERANCE 1.5e-4

/* The picture at twice the model's size (so the converter scales too), blurred, gives the same
 * answer in every format as in RGB. */
GST_START_TEST (test_formats_equivalent_scaled)
{
  const gchar *models[] = { grey_model, rgb_model };

  for (guint m = 0; m < G_N_ELEMENTS (models); m++) {
    MoneClassification reference = classify_picture (models[m], "RGB", 64, 4);
    float probs[10] = { 0 };

    for (guint i = 0; i < reference.top_k; i++)
      probs[reference.top_classes[i]] = reference.top_scores[i];
    for (guint f = 1; f < G_N_ELEMENTS (picture_formats); f++) {
      MoneClassification r = classify_picture (models[m], picture_formats[f], 64, 4);
      gdouble distance = probability_distance (&r, probs);

      GST_INFO ("%s, %s at 64x64: class %d, largest probability difference to RGB %.3g",
          models[m], picture_formats[f], r.top_class, distance);
      fail_unless_equals_int (r.top_class, reference.top_class);
      fail_unless (distance < SCALED_PICTURE_TOLERANCE, "%s at 64x64: probabilities %.3g from "
          "RGB's", picture_formats[f], distance);
    }
  }
}

GST_END_TEST;

/* A full-range frame of `format` whose luma is a fixed texture and whose other components are
 * 128: what a grey model sees of it is the texture alone. */
static GstBuffer *
luma_texture_frame (const gchar * format, gint width, gint height)
{
  GstVideoInfo info;
  GstVideoFrame frame;
  GstBuffer *buffer;

  gst_video_info_set_format (&info, gst_video_format_from_string (format), width, height);
  buffer = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&info), NULL);
  gst_buffer_memset (buffer, 0, 128, GST_VIDEO_INFO_SIZE (&info));
  fail_unless (gst_video_frame_map (&frame, &info, buffer, GST_MAP_WRITE));
  {
    guint8 *data = GST_VIDEO_FRAME_COMP_DATA (&frame, 0);
    const gint stride = GST_VIDEO_FRAME_COMP_STRIDE (&frame, 0);
    const gint pstride = GST_VIDEO_FRAME_COMP_PSTRIDE (&frame, 0);

    const guint depth = GST_VIDEO_FORMAT_INFO_DEPTH (info.finfo, 0);
    const guint shift = GST_VIDEO_FORMAT_INFO_SHIFT (info.finfo, 0);

    for (gint y = 0; y < height; y++)
      for (gint x = 0; x < width; x++) {
        const guint v = (x * 7 + y * 3) % 251 + ((x / 8 + y / 8) % 2) * 4;
        guint8 *p = data + (gsize) y * stride + (gsize) x * pstride;
        /* deeper: a little-endian word, the byte widened as GStreamer widens it */
        const guint word = ((v << (depth - 8)) | (v >> (16 - depth))) << shift;

        if (depth == 8) {
          p[0] = (guint8) v;
        } else {
          p[0] = (guint8) word;
          p[1] = (guint8) (word >> 8);
        }
      }
  }
  gst_video_frame_unmap (&frame);
  GST_BUFFER_PTS (buffer) = 0;
  GST_BUFFER_DURATION (buffer) = GST_SECOND / 30;
  return buffer;
}

/* A grey model reads only the luma, so the same luma in any 8-bit YUV layout (planar, semi-planar,
 * packed, subsampled or not) classifies exactly as GRAY8 does, in every scale-mode: the element
 * scales the luma samples where they lie, which must hold the whole rectangle the mode reads (crop
 * reads the middle of a wide frame, letterbox all of it). The same luma widened to 10 or 16 bits
 * classifies as GRAY8 does up to the rounding of its deeper scale (probabilities measured within
 * 8e-9 for GRAY16_LE, whose words are the bytes times 257, and 2.4e-6 for 10 bits, widened as
 * GStreamer widens bytes, the top bits repeated below). */
#define DEEP_LUMA_TOLERANCE 2e-5

GST_START_TEST (test_grey_model_luma_layouts)
{
  static const gchar *const formats[] = { "I420", "YV12", "NV12", "NV21", "Y42B", "Y444", "YUY2",
    "UYVY", "YVYU", "Y41B", "AYUV", "GRAY16_LE", "I420_10LE", "P010_10LE"
  };
  static const gchar *const modes[] = { "stretch", "crop", "letterbox" };
  const gint width = 150, height = 64;

  for (guint m = 0; m < G_N_ELEMENTS (modes); m++) {
    MoneClassification reference = { 0 };

    for (gint f = -1; f < (gint) G_N_ELEMENTS (formats); f++) {
      const gchar *format = f < 0 ? "GRAY8" : formats[f];
      gchar *caps = g_strdup_printf ("video/x-raw,format=%s,width=%d,height=%d,framerate=30/1%s",
          format, width, height, f < 0 ? "" : ",colorimetry=1:4:0:0");
      GstElement *filter = make_filter (grey_model);
      MoneClassification r;
      GstHarness *h;
      GstBuffer *out;

      g_object_set (filter, "top-k", 10, NULL);
      gst_util_set_object_arg (G_OBJECT (filter), "scale-mode", modes[m]);
      h = harness_for (filter, caps);
      fail_unless_equals_int (gst_harness_push (h, luma_texture_frame (format, width, height)),
          GST_FLOW_OK);
      out = gst_harness_pull (h);
      fail_unless (gst_mone_meta_read (out, &r), "%s: no meta", caps);
      if (f < 0)
        reference = r;
      for (guint i = 0; i < r.top_k; i++) {
        const gboolean deep = GST_VIDEO_FORMAT_INFO_DEPTH (gst_video_format_get_info
            (gst_video_format_from_string (format)), 0) > 8;
        const gdouble d = fabs (r.top_scores[i] - reference.top_scores[i]);

        GST_INFO ("%s, %s: class %d %.9g, GRAY8 %.9g", format, modes[m], r.top_classes[i],
            r.top_scores[i], reference.top_scores[i]);
        fail_unless_equals_int (r.top_classes[i], reference.top_classes[i]);
        fail_unless (deep ? d < DEEP_LUMA_TOLERANCE : d == 0, "%s, %s: class %d %.9g, GRAY8 "
            "%.9g", format, modes[m], r.top_classes[i], r.top_scores[i], reference.top_scores[i]);
      }
      gst_buffer_unref (out);
      gst_harness_teardown (h);
      g_free (caps);
    }
  }
}

GST_END_TEST;

/* Without the model property the element uses $MONE_MODEL (the installed model otherwise). */
GST_START_TEST (test_default_model_from_env)
{
  GstElement *filter = gst_element_factory_make ("monefilter", NULL);
  GstHarness *h;
  gchar *model = NULL;
  MoneClassification r;
  GstBuffer *out;

  g_object_get (filter, "model", &model, NULL);
  fail_unless_equals_string (model, rgb_model);
  g_object_set (filter, "threads", 1, "model", NULL, NULL);     /* NULL restores the default */
  g_free (model);
  g_object_get (filter, "model", &model, NULL);
  fail_unless_equals_string (model, rgb_model);
  gst_object_ref_sink (filter);
  h = harness_for (filter, "video/x-raw,format=RGB,width=32,height=32,framerate=30/1");
  out = push_pull (h, frame_size ("RGB", 32, 32), 0, &r);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
  g_free (model);

  /* Read when an element is created, not once when the plugin loaded. */
  g_setenv ("MONE_MODEL", grey_model, TRUE);
  filter = gst_object_ref_sink (gst_element_factory_make ("monefilter", NULL));
  g_object_get (filter, "model", &model, NULL);
  fail_unless_equals_string (model, grey_model);
  g_free (model);
  gst_object_unref (filter);
  g_setenv ("MONE_MODEL", rgb_model, TRUE);
}

GST_END_TEST;

static Suite *
monefilter_suite (void)
{
  Suite *s = suite_create ("monefilter");
  TCase *tc = tcase_create ("general");

  tcase_add_unchecked_fixture (tc, models_setup, models_teardown);
  tcase_set_timeout (tc, 300);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_negotiation_listed_formats);
  tcase_add_test (tc, test_negotiation_odd_sizes);
  tcase_add_test (tc, test_passthrough_no_copy);
  tcase_add_test (tc, test_meta_fields);
  tcase_add_test (tc, test_scale_modes);
  tcase_add_test (tc, test_letterbox_odd_offset);
  tcase_add_test (tc, test_padded_strides);
  tcase_add_test (tc, test_limited_range_expanded);
  tcase_add_test (tc, test_formats_known_answer);
  tcase_add_test (tc, test_formats_equivalent_scaled);
  tcase_add_test (tc, test_grey_model_luma_layouts);
  tcase_add_test (tc, test_result_follows_picture);
  tcase_add_test (tc, test_interval);
  tcase_add_test (tc, test_budget_change_next_frame);
  tcase_add_test (tc, test_budget_controlled);
  tcase_add_test (tc, test_video_model_window);
  tcase_add_test (tc, test_video_model_window_resets);
  tcase_add_test (tc, test_interval_discont);
  tcase_add_test (tc, test_messages);
  tcase_add_test (tc, test_property_stress);
  tcase_add_test (tc, test_state_cycles);
  tcase_add_test (tc, test_shared_model);
  tcase_add_test (tc, test_bad_models);
  tcase_add_test (tc, test_property_ranges);
  tcase_add_test (tc, test_invalid_results);
  tcase_add_test (tc, test_auto_budget_smoke);
  tcase_add_test (tc, test_auto_budget_overload_skips);
  tcase_add_test (tc, test_latency_query);
  tcase_add_test (tc, test_latency_messages);
  tcase_add_test (tc, test_auto_budget_catches_up);
  tcase_add_test (tc, test_default_model_from_env);
  return s;
}

GST_CHECK_MAIN (monefilter);
