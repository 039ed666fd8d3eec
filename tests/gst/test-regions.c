/* monefilter inference-region=roi-list (gst-check, GstHarness): regions of interest put on the
 * buffers as an upstream detector would, each classified and its result on its own region meta
 * and in GstMoneMeta.
 * MONE_TEST_MODEL names the model (the shipped one); a video model for the refusal is generated.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <math.h>
#include <string.h>

#include <glib/gstdio.h>
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include <mone/gstmonemeta.h>
#include "mone/mone-authoring.h"

static const gchar *
test_model (void)
{
  const gchar *model = g_getenv ("MONE_TEST_MODEL");

  fail_unless (model != NULL, "MONE_TEST_MODEL is not set");
  return model;
}

static GstHarness *
regions_harness (const gchar * format, gint width, gint height, const gchar * properties)
{
  gchar *launch = g_strdup_printf ("monefilter model=\"%s\" threads=1 inference-region=roi-list "
      "%s", test_model (), properties ? properties : "");
  gchar *caps = g_strdup_printf ("video/x-raw,format=%s,width=%d,height=%d,framerate=30/1",
      format, width, height);
  GstHarness *h = gst_harness_new_parse (launch);

  gst_harness_set_src_caps_str (h, caps);
  g_free (caps);
  g_free (launch);
  return h;
}

/* A frame of deterministic pseudo-random bytes: every region of it looks different. */
static GstBuffer *
noise_frame (const gchar * format, gint width, gint height, guint seed, guint n)
{
  GstVideoInfo info;
  GstBuffer *buffer;
  GstMapInfo map;
  guint32 state = 2654435761u * (seed + 1);

  fail_unless (gst_video_info_set_format (&info, gst_video_format_from_string (format), width,
          height));
  buffer = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&info), NULL);
  gst_buffer_map (buffer, &map, GST_MAP_WRITE);
  for (gsize i = 0; i < map.size; i++) {
    state = state * 1664525u + 1013904223u;
    map.data[i] = state >> 24;
  }
  gst_buffer_unmap (buffer, &map);
  GST_BUFFER_PTS (buffer) = n * GST_SECOND / 30;
  GST_BUFFER_DURATION (buffer) = GST_SECOND / 30;
  return buffer;
}

static GstVideoRegionOfInterestMeta *
add_region (GstBuffer * buffer, const gchar * type, gint id, guint x, guint y, guint w, guint h)
{
  GstVideoRegionOfInterestMeta *roi = gst_buffer_add_video_region_of_interest_meta (buffer, type,
      x, y, w, h);

  roi->id = id;
  return roi;
}

/* Pushes and pulls one buffer. */
static GstBuffer *
push_pull (GstHarness * h, GstBuffer * in)
{
  GstBuffer *out;

  fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless (out != NULL);
  return out;
}

/* The meta's frame fields: a region list, no class of its own. */
static const GstStructure *
frame_fields (GstBuffer * buffer, guint * classified, guint * skipped)
{
  const GstStructure *s = gst_buffer_get_mone_structure (buffer);
  MoneClassification whole;

  fail_unless (s != NULL, "no GstMoneMeta");
  fail_unless_equals_string (gst_structure_get_string (s, "inference-region"), "roi-list");
  fail_unless (gst_structure_get_uint (s, "regions-classified", classified));
  fail_unless (gst_structure_get_uint (s, "regions-skipped", skipped));
  fail_if (gst_mone_meta_read (buffer, &whole), "a region frame read as one whole-frame result");
  return s;
}

/* The region meta with this id. */
static GstVideoRegionOfInterestMeta *
region_meta (GstBuffer * buffer, gint id)
{
  GstVideoRegionOfInterestMeta *roi;
  gpointer state = NULL;

  while ((roi = (GstVideoRegionOfInterestMeta *) gst_buffer_iterate_meta_filtered (buffer,
              &state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)))
    if (roi->id == id)
      return roi;
  return NULL;
}

/* 100 regions on a 1280x720 frame: every one classified, its result on its own region meta equal
 * to the one listed in GstMoneMeta, with its cost. (Under valgrind, where each region's converter
 * costs a second, the first 20.) */
GST_START_TEST (test_hundred_regions_720p)
{
  GstHarness *h = regions_harness ("I420", 1280, 720, NULL);
  GstBuffer *in = noise_frame ("I420", 1280, 720, 1, 0), *out;
  const guint n_regions = g_getenv ("MONE_UNDER_VALGRIND") ? 20 : 100;
  guint classified, skipped;
  gdouble frame_gflops = 0, sum_gflops = 0;

  for (guint i = 0; i < n_regions; i++)
    add_region (in, "item", (gint) i, (i % 10) * 128, (i / 10) * 72, 128, 72);
  out = push_pull (h, in);
  fail_unless (gst_structure_get_double (frame_fields (out, &classified, &skipped), "gflops",
          &frame_gflops));
  fail_unless_equals_int (classified, n_regions);
  fail_unless_equals_int (skipped, 0);
  fail_unless_equals_int (gst_mone_meta_get_region_count (out), n_regions);
  for (guint i = 0; i < n_regions; i++) {
    const GstStructure *listed = gst_mone_meta_get_region (out, i);
    GstVideoRegionOfInterestMeta *roi;
    const GstStructure *param;
    MoneClassification c;
    MoneRegion region;
    guint64 latency = 0;

    fail_unless (gst_mone_region_from_structure (listed, &region, &c), "region %u unreadable", i);
    fail_unless_equals_int (region.id, (gint) i);
    fail_unless_equals_string (region.type, "item");
    fail_unless_equals_int (region.x, (gint) (i % 10) * 128);
    fail_unless_equals_int (region.y, (gint) (i / 10) * 72);
    fail_unless_equals_int (region.width, 128);
    fail_unless_equals_int (region.height, 72);
    fail_unless (c.top_class >= 0 && !c.reused && c.gflops > 0);
    fail_unless (gst_structure_get_uint64 (listed, "latency", &latency) && latency > 0);
    sum_gflops += c.gflops;
    roi = region_meta (out, (gint) i);
    fail_unless (roi != NULL);
    param = gst_video_region_of_interest_meta_get_param (roi, GST_MONE_CLASSIFICATION_NAME);
    fail_unless (param != NULL, "region %u has no result parameter", i);
    fail_unless (gst_structure_is_equal (param, listed), "region %u: parameter differs from the "
        "meta's entry", i);
  }
  fail_unless (fabs (frame_gflops - sum_gflops) < 1e-9 * MAX (1.0, sum_gflops));
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* The pixels of a rectangle of `frame` as a frame of their own (every plane, subsampled planes
 * at the matching position: x and y even for 4:2:0). */
static GstBuffer *
cut_out (GstBuffer * frame, const gchar * format, gint width, gint height, gint x, gint y,
    gint w, gint h)
{
  GstVideoInfo in_info, out_info;
  GstVideoFrame in, out;
  GstBuffer *crop;

  gst_video_info_set_format (&in_info, gst_video_format_from_string (format), width, height);
  gst_video_info_set_format (&out_info, gst_video_format_from_string (format), w, h);
  crop = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&out_info), NULL);
  fail_unless (gst_video_frame_map (&in, &in_info, frame, GST_MAP_READ));
  fail_unless (gst_video_frame_map (&out, &out_info, crop, GST_MAP_WRITE));
  for (guint p = 0; p < GST_VIDEO_INFO_N_PLANES (&in_info); p++) {
    gint comp[GST_VIDEO_MAX_COMPONENTS];
    const GstVideoFormatInfo *finfo = in_info.finfo;
    gint pstride, sx, sy, bytes, rows;

    gst_video_format_info_component (finfo, p, comp);
    pstride = GST_VIDEO_FORMAT_INFO_PSTRIDE (finfo, comp[0]);
    sx = GST_VIDEO_FORMAT_INFO_SCALE_WIDTH (finfo, comp[0], x);
    sy = GST_VIDEO_FORMAT_INFO_SCALE_HEIGHT (finfo, comp[0], y);
    bytes = GST_VIDEO_FORMAT_INFO_SCALE_WIDTH (finfo, comp[0], w) * pstride;
    rows = GST_VIDEO_FORMAT_INFO_SCALE_HEIGHT (finfo, comp[0], h);
    for (gint r = 0; r < rows; r++)
      memcpy ((guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&out, p) +
          r * GST_VIDEO_FRAME_PLANE_STRIDE (&out, p),
          (const guint8 *) GST_VIDEO_FRAME_PLANE_DATA (&in, p) +
          (sy + r) * GST_VIDEO_FRAME_PLANE_STRIDE (&in, p) + sx * pstride, bytes);
  }
  gst_video_frame_unmap (&out);
  gst_video_frame_unmap (&in);
  GST_BUFFER_PTS (crop) = 0;
  return crop;
}

/* A region's result equals classifying the same pixels cut out as a whole frame: same class and
 * probabilities up to float rounding, for every scale-mode and several formats. */
static void
check_region_equals_crop (const gchar * format, const gchar * scale_mode)
{
  const gint width = 320, height = 240, x = 34, y = 50, w = 96, hh = 144;
  gchar *props = g_strdup_printf ("scale-mode=%s", scale_mode);
  gchar *launch = g_strdup_printf ("monefilter model=\"%s\" threads=1 scale-mode=%s",
      test_model (), scale_mode);
  gchar *crop_caps = g_strdup_printf ("video/x-raw,format=%s,width=%d,height=%d,framerate=30/1",
      format, w, hh);
  GstHarness *regions = regions_harness (format, width, height, props);
  GstHarness *whole = gst_harness_new_parse (launch);
  GstBuffer *frame = noise_frame (format, width, height, 7, 0), *crop, *a, *b;
  MoneClassification by_region, by_frame;
  MoneRegion region;

  gst_harness_set_src_caps_str (whole, crop_caps);
  crop = cut_out (frame, format, width, height, x, y, w, hh);
  add_region (frame, "item", 5, x, y, w, hh);
  a = push_pull (regions, frame);
  b = push_pull (whole, crop);
  fail_unless (gst_mone_region_from_structure (gst_mone_meta_get_region (a, 0), &region,
          &by_region));
  fail_unless (gst_mone_meta_read (b, &by_frame));
  fail_unless_equals_int (by_region.top_class, by_frame.top_class);
  fail_unless_equals_int (by_region.top_k, by_frame.top_k);
  for (guint k = 0; k < by_frame.top_k; k++) {
    fail_unless_equals_int (by_region.top_classes[k], by_frame.top_classes[k]);
    fail_unless (fabs (by_region.top_scores[k] - by_frame.top_scores[k]) < 1e-5,
        "%s %s: score %u %g vs %g", format, scale_mode, k, by_region.top_scores[k],
        by_frame.top_scores[k]);
  }
  /* content-* is in frame pixels: the crop's offset plus the region's. */
  fail_unless_equals_float (by_region.content_x, by_frame.content_x + x);
  fail_unless_equals_float (by_region.content_y, by_frame.content_y + y);
  fail_unless_equals_float (by_region.content_width, by_frame.content_width);
  fail_unless_equals_float (by_region.model_y, by_frame.model_y);
  gst_buffer_unref (a);
  gst_buffer_unref (b);
  gst_harness_teardown (regions);
  gst_harness_teardown (whole);
  g_free (crop_caps);
  g_free (launch);
  g_free (props);
}

GST_START_TEST (test_region_equals_crop)
{
  const gchar *formats[] = { "I420", "GRAY8", "RGB", "BGRx", "NV12", "YUY2" };
  const gchar *modes[] = { "stretch", "letterbox", "crop" };
  /* Under valgrind the conversion paths are the same code for every format: one is enough. */
  const guint n_formats = g_getenv ("MONE_UNDER_VALGRIND") ? 1 : G_N_ELEMENTS (formats);

  for (guint f = 0; f < n_formats; f++)
    for (guint m = 0; m < G_N_ELEMENTS (modes); m++)
      check_region_equals_crop (formats[f], modes[m]);
}

GST_END_TEST;

/* Regions reaching beyond the frame are clipped to it; regions with nothing inside it (outside,
 * zero-sized) are counted and left out, their metas untouched. */
GST_START_TEST (test_regions_at_edges)
{
  GstHarness *h = regions_harness ("GRAY8", 200, 100, NULL);
  GstBuffer *in = noise_frame ("GRAY8", 200, 100, 3, 0), *out;
  guint classified, skipped;
  MoneClassification c;
  MoneRegion r;

  add_region (in, "item", 1, 150, 60, 100, 100);        /* past the right and bottom edges */
  add_region (in, "item", 2, 250, 10, 20, 20);  /* wholly outside */
  add_region (in, "item", 3, 10, 10, 0, 30);    /* zero-sized */
  add_region (in, "item", 4, 0, 0, G_MAXUINT, G_MAXUINT);       /* absurdly large */
  add_region (in, "item", 5, 199, 99, 1, 1);    /* one pixel */
  out = push_pull (h, in);
  frame_fields (out, &classified, &skipped);
  fail_unless_equals_int (classified, 3);
  fail_unless_equals_int (skipped, 2);
  fail_unless_equals_int (gst_mone_meta_get_region_count (out), 3);
  fail_unless (gst_mone_region_from_structure (gst_mone_meta_get_region (out, 0), &r, &c));
  fail_unless (r.id == 1 && r.x == 150 && r.y == 60 && r.width == 50 && r.height == 40);
  fail_unless (gst_mone_region_from_structure (gst_mone_meta_get_region (out, 1), &r, &c));
  fail_unless (r.id == 4 && r.x == 0 && r.y == 0 && r.width == 200 && r.height == 100);
  fail_unless (gst_mone_region_from_structure (gst_mone_meta_get_region (out, 2), &r, &c));
  fail_unless (r.id == 5 && r.width == 1 && r.height == 1 && c.top_class >= 0);
  fail_unless (gst_video_region_of_interest_meta_get_param (region_meta (out, 2),
          GST_MONE_CLASSIFICATION_NAME) == NULL);
  fail_unless (gst_video_region_of_interest_meta_get_param (region_meta (out, 3),
          GST_MONE_CLASSIFICATION_NAME) == NULL);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Region `id`'s result in the buffer's meta (the test fails without one). */
static void
find_region (GstBuffer * buffer, gint id, MoneRegion * region, MoneClassification * result)
{
  for (guint i = 0; i < gst_mone_meta_get_region_count (buffer); i++) {
    fail_unless (gst_mone_region_from_structure (gst_mone_meta_get_region (buffer, i), region,
            result));
    if (region->id == id)
      return;
  }
  fail ("region %d missing", id);
}

/* Whether region `id` was classified on this buffer (not carried). */
static gboolean
region_fresh (GstBuffer * buffer, gint id)
{
  MoneClassification c;
  MoneRegion r;

  find_region (buffer, id, &r, &c);
  return !c.reused;
}

/* The x of region `id`'s box in the buffer's meta. */
static gint
region_x (GstBuffer * buffer, gint id)
{
  MoneClassification c;
  MoneRegion r;

  find_region (buffer, id, &r, &c);
  return r.x;
}

/* interval counts per region id: a region is classified on its first frame and then every
 * interval-th frame of its own; a region that leaves and comes back starts afresh. Regions that
 * share an id are classified on every frame. */
GST_START_TEST (test_interval_per_region)
{
  GstHarness *h = regions_harness ("GRAY8", 160, 120, "interval=3");
  /* frame: region 1 fresh?, region 2 present?, region 2 fresh? */
  const gboolean expect[8][3] = {
    {TRUE, FALSE, FALSE}, {FALSE, TRUE, TRUE}, {FALSE, TRUE, FALSE}, {TRUE, TRUE, FALSE},
    {FALSE, TRUE, TRUE}, {FALSE, FALSE, FALSE}, {TRUE, TRUE, TRUE}, {FALSE, TRUE, FALSE},
  };

  for (guint n = 0; n < G_N_ELEMENTS (expect); n++) {
    GstBuffer *in = noise_frame ("GRAY8", 160, 120, n, n), *out;

    add_region (in, "item", 1, 10 + n, 10, 60, 80);
    if (expect[n][1])
      add_region (in, "item", 2, 80, 20, 50, 50);
    out = push_pull (h, in);
    fail_unless_equals_int (region_fresh (out, 1), expect[n][0]);
    /* Carried or fresh, the result names this frame's box (region 1 moves a pixel a frame). */
    fail_unless_equals_int (region_x (out, 1), 10 + n);
    if (expect[n][1])
      fail_unless_equals_int (region_fresh (out, 2), expect[n][2]);
    gst_buffer_unref (out);
  }
  for (guint n = 0; n < 3; n++) {
    GstBuffer *in = noise_frame ("GRAY8", 160, 120, n, 10 + n), *out;
    guint classified, skipped;

    add_region (in, "", 0, 0, 0, 40, 40);
    add_region (in, "", 0, 50, 50, 40, 40);
    out = push_pull (h, in);
    frame_fields (out, &classified, &skipped);
    fail_unless_equals_int (classified, 2);
    gst_buffer_unref (out);
  }
  gst_harness_teardown (h);
}

GST_END_TEST;

/* object-class keeps the regions of the listed types only; a frame without regions still gets a
 * meta, with an empty list. */
GST_START_TEST (test_object_class_filter)
{
  GstHarness *h = regions_harness ("GRAY8", 160, 120, "object-class=\" shirt , bag\"");
  GstBuffer *in = noise_frame ("GRAY8", 160, 120, 4, 0), *out;
  guint classified, skipped;
  MoneClassification c;
  MoneRegion r;

  add_region (in, "person", 1, 0, 0, 50, 50);
  add_region (in, "shirt", 2, 10, 10, 50, 50);
  add_region (in, "car", 3, 20, 20, 50, 50);
  add_region (in, "bag", 4, 30, 30, 50, 50);
  out = push_pull (h, in);
  frame_fields (out, &classified, &skipped);
  fail_unless_equals_int (classified, 2);
  fail_unless (gst_mone_region_from_structure (gst_mone_meta_get_region (out, 0), &r, &c));
  fail_unless (r.id == 2 && strcmp (r.type, "shirt") == 0);
  fail_unless (gst_mone_region_from_structure (gst_mone_meta_get_region (out, 1), &r, &c));
  fail_unless (r.id == 4 && strcmp (r.type, "bag") == 0);
  fail_unless (gst_video_region_of_interest_meta_get_param (region_meta (out, 1),
          GST_MONE_CLASSIFICATION_NAME) == NULL);
  gst_buffer_unref (out);

  out = push_pull (h, noise_frame ("GRAY8", 160, 120, 5, 1));
  frame_fields (out, &classified, &skipped);
  fail_unless_equals_int (classified, 0);
  fail_unless_equals_int (gst_mone_meta_get_region_count (out), 0);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* budget-mode=auto on regions: every region result was chosen by auto mode, within the model's
 * budget range, on frames whose region count changes. How the frame's time is shared among its
 * regions is tests/adaptive/test-scheduler.c's (test_runs_share_deadline, on a simulated clock). */
GST_START_TEST (test_auto_budget_regions)
{
  GstHarness *h = regions_harness ("GRAY8", 320, 240, "budget-mode=auto max-latency=20000000");
  gdouble min_budget = 0;
  guint results = 0;

  for (guint n = 0; n < 12; n++) {
    const guint n_regions = n % 2 ? 8 : 1;
    GstBuffer *in = noise_frame ("GRAY8", 320, 240, n, n), *out;

    for (guint i = 0; i < n_regions; i++)
      add_region (in, "item", (gint) i, (i % 4) * 80, (i / 4) * 120, 80, 120);
    out = push_pull (h, in);
    if (n == 0) {
      GstElement *filter = gst_harness_find_element (h, "monefilter");
      g_object_get (filter, "min-budget", &min_budget, NULL);
      gst_object_unref (filter);
    }
    for (guint i = 0; i < gst_mone_meta_get_region_count (out); i++, results++) {
      MoneClassification c;
      MoneRegion r;

      fail_unless (gst_mone_region_from_structure (gst_mone_meta_get_region (out, i), &r, &c));
      fail_unless (c.budget_auto, "frame %u region %d: not an auto-mode result", n, r.id);
      fail_unless (c.budget_used >= min_budget - 1e-9 && c.budget_used <= 1.0,
          "frame %u region %d: budget %f", n, r.id, c.budget_used);
    }
    gst_buffer_unref (out);
  }
  fail_unless (min_budget > 0 && results > 0);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* A video model cannot classify regions (its window would mix them): refused at start, naming
 * the model. */
GST_START_TEST (test_video_model_refused)
{
  static const char *const video[] = { "frames=4", "tubelet=2", "channels=1" };
  gchar *dir = g_dir_make_tmp ("test-regions-XXXXXX", NULL);
  gchar *path = g_build_filename (dir, "video.safetensors", NULL);
  const char *labels[10] = { "0", "1", "2", "3", "4", "5", "6", "7", "8", "9" };
  GError *error = NULL;
  MoneParameters *params;
  MoneConfig config;
  guint64 seed = 0;
  GstElement *filter;
  GstBus *bus;
  GstMessage *msg;
  gchar *debug = NULL;

  fail_unless (mone_config_from_args ("tiny", G_N_ELEMENTS (video), video, &config, &seed, &error));
  fail_unless ((params = mone_parameters_new_random (&config, seed, &error)) != NULL);
  fail_unless (mone_model_write (path, &params->config, labels,
          (const float *const *) params->tensors, &error));
  mone_parameters_free (params);

  filter = gst_element_factory_make ("monefilter", NULL);
  bus = gst_bus_new ();
  gst_element_set_bus (filter, bus);
  g_object_set (filter, "model", path, "inference-region", 1, NULL);
  fail_unless_equals_int (gst_element_set_state (filter, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_parse_error (msg, &error, &debug);
  fail_unless (strstr (error->message, "roi-list") && strstr (error->message, path),
      "unexpected error: %s", error->message);
  g_clear_error (&error);
  g_free (debug);
  gst_message_unref (msg);
  gst_element_set_state (filter, GST_STATE_NULL);
  gst_element_set_bus (filter, NULL);
  gst_object_unref (bus);
  gst_object_unref (filter);
  g_unlink (path);
  g_rmdir (dir);
  g_free (path);
  g_free (dir);
}

GST_END_TEST;

/* inference-region set while playing: the element keeps the path start() checked (with interval,
 * the whole-frame path would find no result of its own to reuse) and takes the new one after the
 * next READY->PAUSED. */
GST_START_TEST (test_region_mode_fixed_while_playing)
{
  GstHarness *h = regions_harness ("GRAY8", 160, 120, "interval=5");
  GstElement *filter = gst_harness_find_element (h, "monefilter");
  GstSegment segment;
  gint mode;

  for (guint n = 0; n < 4; n++) {
    GstBuffer *in = noise_frame ("GRAY8", 160, 120, n, n), *out;
    guint classified, skipped;

    if (n == 2)
      g_object_set (filter, "inference-region", 0, NULL);
    add_region (in, "item", 1, 10, 10, 60, 80);
    out = push_pull (h, in);
    frame_fields (out, &classified, &skipped);
    gst_buffer_unref (out);
  }
  g_object_get (filter, "inference-region", &mode, NULL);
  fail_unless_equals_int (mode, 0);
  gst_object_unref (filter);

  fail_unless (gst_element_set_state (h->element, GST_STATE_READY) == GST_STATE_CHANGE_SUCCESS);
  fail_unless (gst_element_set_state (h->element, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  gst_harness_set_src_caps_str (h, "video/x-raw,format=GRAY8,width=160,height=120,framerate=30/1");
  gst_segment_init (&segment, GST_FORMAT_TIME);
  fail_unless (gst_harness_push_event (h, gst_event_new_segment (&segment)));
  {
    GstBuffer *in = noise_frame ("GRAY8", 160, 120, 9, 9), *out;
    MoneClassification whole;

    add_region (in, "item", 1, 10, 10, 60, 80);
    out = push_pull (h, in);
    fail_unless (gst_mone_meta_read (out, &whole), "no whole-frame result after the restart");
    gst_buffer_unref (out);
  }
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Two monefilters on the same regions: each region meta carries one result, the second element's,
 * the one GstMoneMeta lists. */
GST_START_TEST (test_second_filter_replaces_region_result)
{
  gchar *launch = g_strdup_printf ("monefilter model=\"%s\" threads=1 inference-region=roi-list "
      "top-k=1 ! monefilter model=\"%s\" threads=1 inference-region=roi-list top-k=3",
      test_model (), test_model ());
  GstHarness *h = gst_harness_new_parse (launch);
  GstBuffer *in, *out;
  GstVideoRegionOfInterestMeta *roi;
  guint results = 0;

  g_free (launch);
  gst_harness_set_src_caps_str (h, "video/x-raw,format=GRAY8,width=160,height=120,framerate=30/1");
  in = noise_frame ("GRAY8", 160, 120, 0, 0);
  add_region (in, "item", 1, 10, 10, 60, 80);
  out = push_pull (h, in);
  roi = region_meta (out, 1);
  fail_unless (roi != NULL);
  for (GList * l = roi->params; l; l = l->next)
    results += gst_structure_has_name (l->data, GST_MONE_CLASSIFICATION_NAME);
  fail_unless_equals_int (results, 1);
  fail_unless_equals_int (gst_mone_meta_get_region_count (out), 1);
  fail_unless (gst_structure_is_equal (gst_video_region_of_interest_meta_get_param (roi,
              GST_MONE_CLASSIFICATION_NAME), gst_mone_meta_get_region (out, 0)));
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* A detector that numbers nothing (every id 0): once two regions shared the id on a frame, a lone
 * region with it on a later frame is classified afresh, not given the earlier object's result. */
GST_START_TEST (test_shared_id_stays_untracked)
{
  GstHarness *h = regions_harness ("GRAY8", 160, 120, "interval=3");
  const guint counts[3] = { 1, 2, 1 };

  for (guint n = 0; n < G_N_ELEMENTS (counts); n++) {
    GstBuffer *in = noise_frame ("GRAY8", 160, 120, n, n), *out;
    guint classified, skipped;

    for (guint i = 0; i < counts[n]; i++)
      add_region (in, "item", 0, 10 + 70 * i, 10, 60, 80);
    out = push_pull (h, in);
    frame_fields (out, &classified, &skipped);
    fail_unless_equals_int (classified, counts[n]);
    gst_buffer_unref (out);
  }
  gst_harness_teardown (h);
}

GST_END_TEST;

static Suite *
regions_suite (void)
{
  Suite *s = suite_create ("monefilter-regions");
  TCase *tc = tcase_create ("regions");

  tcase_set_timeout (tc, 300);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_hundred_regions_720p);
  tcase_add_test (tc, test_region_equals_crop);
  tcase_add_test (tc, test_regions_at_edges);
  tcase_add_test (tc, test_interval_per_region);
  tcase_add_test (tc, test_object_class_filter);
  tcase_add_test (tc, test_auto_budget_regions);
  tcase_add_test (tc, test_video_model_refused);
  tcase_add_test (tc, test_region_mode_fixed_while_playing);
  tcase_add_test (tc, test_second_filter_replaces_region_result);
  tcase_add_test (tc, test_shared_id_stays_untracked);
  return s;
}

GST_CHECK_MAIN (regions);
