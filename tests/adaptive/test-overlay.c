/* moneoverlay with GstHarness: buffers carry a hand-made MoNE meta with a known expert grid.
 *
 * Pixels are compared in BGRx on little-endian machines (bytes B, G, R, x); the element's palette
 * runs blue (smallest expert) -> green -> yellow -> red (full width). */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <string.h>

#include <mone/gstmonemeta.h>

#if G_BYTE_ORDER == G_LITTLE_ENDIAN
#define FORMAT_X "BGRx"
#define FORMAT_A "BGRA"
#define B_OFFSET 0
#define G_OFFSET 1
#define R_OFFSET 2
#else
#define FORMAT_X "xRGB"
#define FORMAT_A "ARGB"
#define B_OFFSET 3
#define G_OFFSET 2
#define R_OFFSET 1
#endif

static const char *formats[] = { FORMAT_X, FORMAT_A, "RGB16" };

static GstHarness *
overlay_harness (const char *format, int width, int height)
{
  GstHarness *h = gst_harness_new ("moneoverlay");
  char *caps = g_strdup_printf ("video/x-raw,format=%s,width=%d,height=%d,framerate=30/1",
      format, width, height);
  gst_harness_set_src_caps_str (h, caps);
  g_free (caps);
  return h;
}

/* A frame of the given format filled with `value` in every byte (alpha opaque), with the standard
 * layout or, when stride > 0, that stride through a GstVideoMeta. */
static GstBuffer *
make_frame (const char *format, int width, int height, guint8 value, int stride)
{
  GstVideoInfo info;
  gst_video_info_set_format (&info, gst_video_format_from_string (format), width, height);
  gsize size = GST_VIDEO_INFO_SIZE (&info);
  int row_stride = GST_VIDEO_INFO_PLANE_STRIDE (&info, 0);
  if (stride > 0) {
    row_stride = stride;
    size = (gsize) stride *height;
  }
  GstBuffer *buffer = gst_buffer_new_allocate (NULL, size, NULL);
  GstMapInfo map;
  gst_buffer_map (buffer, &map, GST_MAP_WRITE);
  memset (map.data, value, map.size);
  if (GST_VIDEO_INFO_HAS_ALPHA (&info)) {
    int alpha = G_BYTE_ORDER == G_LITTLE_ENDIAN ? 3 : 0;
    for (int y = 0; y < height; y++)
      for (int x = 0; x < width; x++)
        map.data[(gsize) y * row_stride + 4 * x + alpha] = 255;
  }
  gst_buffer_unmap (buffer, &map);
  if (stride > 0) {
    gsize offsets[GST_VIDEO_MAX_PLANES] = { 0 };
    gint strides[GST_VIDEO_MAX_PLANES] = { stride };
    gst_buffer_add_video_meta_full (buffer, GST_VIDEO_FRAME_FLAG_NONE,
        GST_VIDEO_INFO_FORMAT (&info), width, height, 1, offsets, strides);
  }
  GST_BUFFER_PTS (buffer) = 0;
  GST_BUFFER_DURATION (buffer) = GST_SECOND / 30;
  return buffer;
}

/* Attaches a classification with a 4-expert grid (grid_width x grid_height bytes). */
static void
attach_meta (GstBuffer * buffer, const char *label, int grid_width, int grid_height,
    const guint8 * grid)
{
  MoneClassification result;
  gst_mone_classification_init (&result);
  result.top_class = 3;
  result.label = label;
  result.top_score = 0.875;
  result.budget_requested = 1.0;
  result.budget_used = 0.5;
  result.gflops = 0.123;
  result.latency_ns = 2500000;
  result.latency_ms = 2.5;
  result.experts = 4;
  result.grid_width = grid_width;
  result.grid_height = grid_height;
  result.grid_slices = 1;
  result.tokens = grid_width * grid_height;
  for (int t = 0; t < result.tokens; t++)
    result.tokens_per_expert[grid[t]]++;
  result.expert_grid = grid;
  result.expert_grid_size = result.tokens;
  result.scale_mode = "stretch";
  GstStructure *fields = gst_mone_classification_to_structure (&result);
  fail_unless (gst_buffer_add_mone_meta (buffer, fields) != NULL);
  gst_structure_free (fields);
}

/* Same, with letterbox geometry: the content (the whole frame) sits at model_y.. in the model
 * input, bars above and below. */
static void
attach_letterbox_meta (GstBuffer * buffer, int frame_width, int frame_height, int input_side,
    double model_y, double model_height, int grid_side, const guint8 * grid)
{
  MoneClassification result;
  gst_mone_classification_init (&result);
  result.label = "Bag";
  result.top_score = 0.5;
  result.budget_requested = result.budget_used = 1.0;
  result.experts = 4;
  result.grid_width = result.grid_height = grid_side;
  result.grid_slices = 1;
  result.tokens = grid_side * grid_side;
  for (int t = 0; t < result.tokens; t++)
    result.tokens_per_expert[grid[t]]++;
  result.expert_grid = grid;
  result.expert_grid_size = result.tokens;
  result.scale_mode = "letterbox";
  result.content_width = frame_width;
  result.content_height = frame_height;
  result.model_x = 0;
  result.model_y = model_y;
  result.model_width = input_side;
  result.model_height = model_height;
  result.model_input_width = result.model_input_height = input_side;
  GstStructure *fields = gst_mone_classification_to_structure (&result);
  fail_unless (gst_buffer_add_mone_meta (buffer, fields) != NULL);
  gst_structure_free (fields);
}

/* inference-region=roi-list: a frame meta listing regions, each with a 2x2 grid all on the
 * full-width expert and the model's input stretched over the region. */
static void
attach_regions_meta (GstBuffer * buffer, int frame_width, int frame_height, const int boxes[][4],
    int n)
{
  static const guint8 grid[4] = { 3, 3, 3, 3 };
  GstStructure *fields = gst_structure_new (GST_MONE_CLASSIFICATION_NAME,
      "inference-region", G_TYPE_STRING, "roi-list",
      "regions-classified", G_TYPE_UINT, (guint) n, "gflops", G_TYPE_DOUBLE, 0.1,
      "latency-ms", G_TYPE_DOUBLE, 1.5, NULL);
  GValue list = G_VALUE_INIT;

  gst_value_array_init (&list, n);
  for (int i = 0; i < n; i++) {
    MoneClassification result;
    GValue item = G_VALUE_INIT;
    gst_mone_classification_init (&result);
    result.label = i ? "Bag" : "Shirt";
    result.top_score = 0.75;
    result.budget_requested = result.budget_used = 1.0;
    result.experts = 4;
    result.grid_width = result.grid_height = 2;
    result.grid_slices = 1;
    result.tokens = result.tokens_per_expert[3] = 4;
    result.expert_grid = grid;
    result.expert_grid_size = 4;
    result.scale_mode = "stretch";
    result.content_x = boxes[i][0];
    result.content_y = boxes[i][1];
    result.content_width = boxes[i][2];
    result.content_height = boxes[i][3];
    result.model_width = result.model_height = 28;
    result.model_input_width = result.model_input_height = 28;
    GstStructure *region = gst_mone_classification_to_structure (&result);
    gst_structure_set (region, "region-id", G_TYPE_INT, i, "region-type", G_TYPE_STRING, "item",
        "region-x", G_TYPE_INT, boxes[i][0], "region-y", G_TYPE_INT, boxes[i][1],
        "region-width", G_TYPE_INT, boxes[i][2], "region-height", G_TYPE_INT, boxes[i][3],
        "frame-width", G_TYPE_INT, frame_width, "frame-height", G_TYPE_INT, frame_height, NULL);
    g_value_init (&item, GST_TYPE_STRUCTURE);
    g_value_take_boxed (&item, region);
    gst_value_array_append_and_take_value (&list, &item);
  }
  gst_structure_take_value (fields, "regions", &list);
  fail_unless (gst_buffer_add_mone_meta (buffer, fields) != NULL);
  gst_structure_free (fields);
}

static const guint8 *
pixel (const GstMapInfo * map, int stride, int x, int y)
{
  return map->data + (gsize) y *stride + 4 * x;
}

GST_START_TEST (test_patch_tint)
{
  /* 64x64 grey frame, 4x4 grid of 16x16 patches: all expert 1 (green) except (row 1, col 2) on
   * the full-width expert (red) and (row 2, col 1) on the smallest (blue). */
  guint8 grid[16];
  memset (grid, 1, sizeof (grid));
  grid[1 * 4 + 2] = 3;
  grid[2 * 4 + 1] = 0;
  GstHarness *h = overlay_harness (FORMAT_X, 64, 64);
  g_object_set (h->element, "show-text", FALSE, "show-legend", FALSE, "map-alpha", 0.5, NULL);
  GstBuffer *in = make_frame (FORMAT_X, 64, 64, 128, 0);
  attach_meta (in, "Shirt", 4, 4, grid);
  GstBuffer *out = gst_harness_push_and_pull (h, in);
  GstMapInfo map;
  gst_buffer_map (out, &map, GST_MAP_READ);

  const guint8 *red = pixel (&map, 256, 40, 24);
  fail_unless (red[R_OFFSET] > 170 && red[G_OFFSET] < 100 && red[B_OFFSET] < 100,
      "full-width patch not red: R %d G %d B %d", red[R_OFFSET], red[G_OFFSET], red[B_OFFSET]);
  const guint8 *blue = pixel (&map, 256, 24, 40);
  fail_unless (blue[B_OFFSET] > 170 && blue[R_OFFSET] < 100,
      "smallest-expert patch not blue: R %d G %d B %d", blue[R_OFFSET], blue[G_OFFSET],
      blue[B_OFFSET]);
  const guint8 *green = pixel (&map, 256, 8, 8);
  fail_unless (green[G_OFFSET] > 150 && green[R_OFFSET] < 100 && green[B_OFFSET] < 120,
      "expert-1 patch not green: R %d G %d B %d", green[R_OFFSET], green[G_OFFSET],
      green[B_OFFSET]);
  /* Sharp patch edges: column 32 starts the red patch, column 31 is still green. */
  fail_unless (pixel (&map, 256, 32, 16)[R_OFFSET] > 170);
  fail_unless (pixel (&map, 256, 31, 16)[R_OFFSET] < 100);
  fail_unless (pixel (&map, 256, 47, 31)[R_OFFSET] > 170);
  fail_unless (pixel (&map, 256, 48, 31)[R_OFFSET] < 100);
  fail_unless (pixel (&map, 256, 40, 32)[R_OFFSET] < 100);
  /* Every patch of one expert carries the same colour. */
  fail_unless (memcmp (pixel (&map, 256, 8, 8), pixel (&map, 256, 56, 56), 3) == 0);
  gst_buffer_unmap (out, &map);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Regions: each region's box is outlined (yellow), the map tints only the part of the frame its
 * region covers, and the picture outside every region and the summary text stays as it was. */
GST_START_TEST (test_regions_drawn)
{
  const int boxes[2][4] = { {20, 40, 40, 40}, {100, 60, 50, 50} };
  GstHarness *h = overlay_harness (FORMAT_X, 160, 120);
  g_object_set (h->element, "map-alpha", 0.5, NULL);
  GstBuffer *in = make_frame (FORMAT_X, 160, 120, 128, 0);
  attach_regions_meta (in, 160, 120, boxes, 2);
  GstBuffer *out = gst_harness_push_and_pull (h, in);
  GstMapInfo map;
  gst_buffer_map (out, &map, GST_MAP_READ);
  const int stride = 160 * 4;

  for (int i = 0; i < 2; i++) {
    const guint8 *inside = pixel (&map, stride, boxes[i][0] + boxes[i][2] / 2,
        boxes[i][1] + boxes[i][3] - 4);
    fail_unless (inside[R_OFFSET] > 170 && inside[G_OFFSET] < 100,
        "region %d not tinted red: R %d G %d B %d", i, inside[R_OFFSET], inside[G_OFFSET],
        inside[B_OFFSET]);
    const guint8 *edge = pixel (&map, stride, boxes[i][0], boxes[i][1] + boxes[i][3] - 2);
    fail_unless (edge[R_OFFSET] > 200 && edge[G_OFFSET] > 170 && edge[B_OFFSET] < 80,
        "region %d box not outlined: R %d G %d B %d", i, edge[R_OFFSET], edge[G_OFFSET],
        edge[B_OFFSET]);
  }
  const guint8 *outside = pixel (&map, stride, 80, 110);
  fail_unless (outside[R_OFFSET] == 128 && outside[G_OFFSET] == 128 && outside[B_OFFSET] == 128);
  fail_unless (pixel (&map, stride, 155, 115)[G_OFFSET] == 128);
  gst_buffer_unmap (out, &map);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

GST_START_TEST (test_letterbox_geometry)
{
  /* A 64x48 frame letterboxed into a 32x32 model input: content rows 4..28 of the input. The 2x2
   * grid's top row covers input rows 0..16, i.e. frame rows -8..24; the bottom row frame rows
   * 24..56, cut at 48. */
  const guint8 grid[4] = { 0, 0, 3, 3 };
  GstHarness *h = overlay_harness (FORMAT_X, 64, 48);
  g_object_set (h->element, "show-text", FALSE, "show-legend", FALSE, "map-alpha", 0.5, NULL);
  GstBuffer *in = make_frame (FORMAT_X, 64, 48, 128, 0);
  attach_letterbox_meta (in, 64, 48, 32, 4.0, 24.0, 2, grid);
  GstBuffer *out = gst_harness_push_and_pull (h, in);
  GstMapInfo map;
  gst_buffer_map (out, &map, GST_MAP_READ);
  fail_unless (pixel (&map, 256, 10, 23)[B_OFFSET] > 170, "row 23 should be in the top (blue) row");
  fail_unless (pixel (&map, 256, 10, 24)[R_OFFSET] > 170,
      "row 24 should be in the bottom (red) row");
  fail_unless (pixel (&map, 256, 10, 47)[R_OFFSET] > 170);
  fail_unless (pixel (&map, 256, 10, 0)[B_OFFSET] > 170);
  gst_buffer_unmap (out, &map);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* monefilter classified a 32x24 frame (stretch: the whole frame is the 32x32 model input) and a
 * videoscale after it doubled the size: the map covers the whole 64x48 frame, not its top-left
 * quarter. The 2x2 grid's top row is blue, the bottom row red. */
GST_START_TEST (test_scaled_after_classification)
{
  const guint8 grid[4] = { 0, 0, 3, 3 };
  MoneClassification result;
  GstHarness *h = overlay_harness (FORMAT_X, 64, 48);
  GstBuffer *in = make_frame (FORMAT_X, 64, 48, 128, 0), *out;
  GstStructure *fields;
  GstMapInfo map;

  g_object_set (h->element, "show-text", FALSE, "show-legend", FALSE, "map-alpha", 0.5, NULL);
  gst_mone_classification_init (&result);
  result.label = "Coat";
  result.budget_requested = result.budget_used = 1.0;
  result.experts = 4;
  result.grid_width = result.grid_height = 2;
  result.grid_slices = 1;
  result.tokens = 4;
  result.tokens_per_expert[0] = result.tokens_per_expert[3] = 2;
  result.expert_grid = grid;
  result.expert_grid_size = 4;
  result.scale_mode = "stretch";
  result.content_width = 32;
  result.content_height = 24;
  result.model_width = result.model_height = 32;
  result.model_input_width = result.model_input_height = 32;
  fields = gst_mone_classification_to_structure (&result);
  gst_structure_set (fields, "frame-width", G_TYPE_INT, 32, "frame-height", G_TYPE_INT, 24, NULL);
  fail_unless (gst_buffer_add_mone_meta (in, fields) != NULL);
  gst_structure_free (fields);

  out = gst_harness_push_and_pull (h, in);
  gst_buffer_map (out, &map, GST_MAP_READ);
  fail_unless (pixel (&map, 256, 60, 23)[B_OFFSET] > 170, "row 23 should be in the top (blue) row");
  fail_unless (pixel (&map, 256, 60, 24)[R_OFFSET] > 170,
      "row 24 should be in the bottom (red) row");
  fail_unless (pixel (&map, 256, 63, 47)[R_OFFSET] > 170, "bottom right corner not tinted");
  gst_buffer_unmap (out, &map);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

static GstBuffer *
overlay_one (GstHarness * h, const char *label)
{
  guint8 grid[196];
  memset (grid, 2, sizeof (grid));
  GstBuffer *in = make_frame (FORMAT_X, 320, 240, 100, 0);
  attach_meta (in, label, 14, 14, grid);
  return gst_harness_push_and_pull (h, in);
}

/* Bytes that differ between two 320x240 BGRx buffers inside rows [y0, y1). */
static int
count_differences (GstBuffer * a, GstBuffer * b, int y0, int y1)
{
  GstMapInfo ma, mb;
  int differences = 0;
  gst_buffer_map (a, &ma, GST_MAP_READ);
  gst_buffer_map (b, &mb, GST_MAP_READ);
  for (gsize i = (gsize) y0 * 320 * 4; i < (gsize) y1 * 320 * 4; i++)
    differences += ma.data[i] != mb.data[i];
  gst_buffer_unmap (a, &ma);
  gst_buffer_unmap (b, &mb);
  return differences;
}

GST_START_TEST (test_label_changes_text)
{
  GstHarness *h = overlay_harness (FORMAT_X, 320, 240);
  g_object_set (h->element, "show-map", FALSE, NULL);
  GstBuffer *sneaker = overlay_one (h, "Sneaker");
  GstBuffer *sneaker_again = overlay_one (h, "Sneaker");
  GstBuffer *boot = overlay_one (h, "Ankle boot");
  GstBuffer *plain = make_frame (FORMAT_X, 320, 240, 100, 0);

  /* Text lands in the top-left box only, and the same meta draws the same pixels. */
  fail_unless (count_differences (sneaker, plain, 0, 60) > 100, "no text drawn");
  fail_unless_equals_int (count_differences (sneaker, plain, 120, 240), 0);
  fail_unless_equals_int (count_differences (sneaker, sneaker_again, 0, 240), 0);
  /* Another label, other pixels in the text region and nowhere else. */
  fail_unless (count_differences (sneaker, boot, 0, 60) > 50, "label change not visible");
  fail_unless_equals_int (count_differences (sneaker, boot, 120, 240), 0);

  gst_buffer_unref (sneaker);
  gst_buffer_unref (sneaker_again);
  gst_buffer_unref (boot);
  gst_buffer_unref (plain);
  gst_harness_teardown (h);
}

GST_END_TEST;

static guint pango_warnings;

/* Pango logs through GLib's structured writer, which g_log_set_handler does not see. */
static GLogWriterOutput
count_pango_warnings (GLogLevelFlags level, const GLogField * fields, gsize n_fields,
    gpointer user_data)
{
  for (gsize i = 0; i < n_fields; i++)
    if (g_strcmp0 (fields[i].key, "GLIB_DOMAIN") == 0 && fields[i].length < 0
        && g_strcmp0 (fields[i].value, "Pango") == 0
        && (level & (G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL)))
      pango_warnings++;
  return g_log_writer_default (level, fields, n_fields, user_data);
}

/* A label longer than the overlay keeps (a user's class folder named in 50 CJK characters, 150
 * bytes) is cut at a character boundary: Pango would warn on every frame about a cut inside one
 * (gst-check does not watch Pango's warnings, so the test counts them itself). */
GST_START_TEST (test_long_utf8_label)
{
  GstHarness *h = overlay_harness (FORMAT_X, 320, 240);
  GString *label = g_string_new (NULL);
  GstBuffer *out, *plain = make_frame (FORMAT_X, 320, 240, 100, 0);

  g_log_set_writer_func (count_pango_warnings, NULL, NULL);

  for (int i = 0; i < 50; i++)
    g_string_append (label, "\xe7\xb1\xbb");     /* U+7C7B */
  g_object_set (h->element, "show-map", FALSE, NULL);
  out = overlay_one (h, label->str);
  fail_unless_equals_int (pango_warnings, 0);
  fail_unless (count_differences (out, plain, 0, 60) > 100, "no text drawn");
  gst_buffer_unref (out);
  gst_buffer_unref (plain);
  g_string_free (label, TRUE);
  gst_harness_teardown (h);
}

GST_END_TEST;

static gboolean
buffers_equal (GstBuffer * a, GstBuffer * b)
{
  GstMapInfo ma, mb;
  gst_buffer_map (a, &ma, GST_MAP_READ);
  gst_buffer_map (b, &mb, GST_MAP_READ);
  gboolean equal = ma.size == mb.size && memcmp (ma.data, mb.data, ma.size) == 0;
  gst_buffer_unmap (a, &ma);
  gst_buffer_unmap (b, &mb);
  return equal;
}

GST_START_TEST (test_formats_and_sizes)
{
  static const int sizes[][2] = { {1, 1}, {3, 5}, {7, 3}, {224, 224}, {1921, 1081} };
  guint8 grid[196];
  for (int t = 0; t < 196; t++)
    grid[t] = (t * 7 + t / 14) % 4;

  for (guint f = 0; f < G_N_ELEMENTS (formats); f++) {
    for (guint s = 0; s < G_N_ELEMENTS (sizes); s++) {
      int width = sizes[s][0], height = sizes[s][1];
      GstHarness *h = overlay_harness (formats[f], width, height);
      GstBuffer *in = make_frame (formats[f], width, height, 90, 0);
      GstBuffer *reference = make_frame (formats[f], width, height, 90, 0);
      attach_meta (in, "Trouser", 14, 14, grid);
      GstBuffer *out = gst_harness_push_and_pull (h, in);
      fail_unless (out != NULL, "%s %dx%d: no output", formats[f], width, height);
      fail_unless_equals_int (gst_buffer_get_size (out), gst_buffer_get_size (reference));
      if (width * height >= 64)
        fail_if (buffers_equal (out, reference), "%s %dx%d: nothing drawn", formats[f], width,
            height);
      if (!strcmp (formats[f], FORMAT_A)) {
        /* Drawing over an opaque frame leaves it opaque. */
        GstMapInfo map;
        int alpha = G_BYTE_ORDER == G_LITTLE_ENDIAN ? 3 : 0;
        gst_buffer_map (out, &map, GST_MAP_READ);
        for (gsize i = alpha; i < map.size; i += 4)
          fail_unless (map.data[i] == 255, "%dx%d: alpha changed at byte %" G_GSIZE_FORMAT,
              width, height, i);
        gst_buffer_unmap (out, &map);
      }
      gst_buffer_unref (out);
      gst_buffer_unref (reference);
      gst_harness_teardown (h);
    }
  }
}

GST_END_TEST;

/* Frames with straight alpha: drawing is blended in, pixels nothing was drawn on keep their exact
 * bytes even when translucent (a premultiply/unpremultiply round trip of the whole frame used to
 * round them), and over an opaque frame the result matches the same drawing on BGRx. */
GST_START_TEST (test_alpha_frames)
{
  guint8 grid[196];
  memset (grid, 2, sizeof (grid));
  const int alpha = G_BYTE_ORDER == G_LITTLE_ENDIAN ? 3 : 0;

  /* Translucent frame (alpha 127, colour bytes 2): text only, in the top-left box. */
  GstHarness *h = overlay_harness (FORMAT_A, 320, 240);
  g_object_set (h->element, "show-map", FALSE, NULL);
  GstBuffer *in = make_frame (FORMAT_A, 320, 240, 2, 0);
  GstMapInfo map;
  gst_buffer_map (in, &map, GST_MAP_WRITE);
  for (gsize i = alpha; i < map.size; i += 4)
    map.data[i] = 127;
  gst_buffer_unmap (in, &map);
  GstBuffer *reference = gst_buffer_copy_deep (in);
  attach_meta (in, "Sneaker", 14, 14, grid);
  GstBuffer *out = gst_harness_push_and_pull (h, in);
  fail_unless (count_differences (out, reference, 0, 60) > 100, "no text drawn");
  fail_unless_equals_int (count_differences (out, reference, 120, 240), 0);
  gst_buffer_unref (out);
  gst_buffer_unref (reference);
  gst_harness_teardown (h);

  /* Opaque frames: BGRA and BGRx give the same colours (within rounding), map and text. */
  GstBuffer *results[2];
  const char *pair[2] = { FORMAT_X, FORMAT_A };
  for (int f = 0; f < 2; f++) {
    h = overlay_harness (pair[f], 320, 240);
    in = make_frame (pair[f], 320, 240, 100, 0);
    attach_meta (in, "Sneaker", 14, 14, grid);
    results[f] = gst_harness_push_and_pull (h, in);
    gst_harness_teardown (h);
  }
  GstMapInfo mx, ma;
  gst_buffer_map (results[0], &mx, GST_MAP_READ);
  gst_buffer_map (results[1], &ma, GST_MAP_READ);
  int worst = 0, changed = 0;
  for (gsize i = 0; i < mx.size; i++) {
    if (i % 4 == (gsize) alpha) {
      fail_unless_equals_int (ma.data[i], 255);
      continue;
    }
    worst = MAX (worst, ABS ((int) mx.data[i] - (int) ma.data[i]));
    changed += mx.data[i] != 100;
  }
  gst_buffer_unmap (results[0], &mx);
  gst_buffer_unmap (results[1], &ma);
  fail_unless (changed > 1000, "nothing drawn");
  fail_unless (worst <= 1, "BGRA and BGRx drawings differ by %d", worst);
  gst_buffer_unref (results[0]);
  gst_buffer_unref (results[1]);
}

GST_END_TEST;

GST_START_TEST (test_no_meta_unchanged)
{
  for (guint f = 0; f < G_N_ELEMENTS (formats); f++) {
    GstHarness *h = overlay_harness (formats[f], 97, 31);
    GstBuffer *in = make_frame (formats[f], 97, 31, 77, 0);
    GstBuffer *reference = make_frame (formats[f], 97, 31, 77, 0);
    GstBuffer *out = gst_harness_push_and_pull (h, in);
    fail_unless (buffers_equal (out, reference), "%s: buffer without meta changed", formats[f]);
    gst_buffer_unref (out);
    gst_buffer_unref (reference);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

GST_START_TEST (test_nothing_to_draw_unchanged)
{
  guint8 grid[16] = { 0 };
  GstHarness *h = overlay_harness (FORMAT_X, 64, 64);
  g_object_set (h->element, "show-text", FALSE, "show-legend", FALSE, "map-alpha", 0.0, NULL);
  GstBuffer *in = make_frame (FORMAT_X, 64, 64, 50, 0);
  GstBuffer *reference = make_frame (FORMAT_X, 64, 64, 50, 0);
  attach_meta (in, "Coat", 4, 4, grid);
  GstBuffer *out = gst_harness_push_and_pull (h, in);
  fail_unless (buffers_equal (out, reference), "map-alpha 0 without text changed the frame");
  gst_buffer_unref (out);

  g_object_set (h->element, "show-map", FALSE, "map-alpha", 0.9, NULL);
  in = make_frame (FORMAT_X, 64, 64, 50, 0);
  attach_meta (in, "Coat", 4, 4, grid);
  out = gst_harness_push_and_pull (h, in);
  fail_unless (buffers_equal (out, reference), "show-map and show-text off changed the frame");
  gst_buffer_unref (out);
  gst_buffer_unref (reference);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* A stride Cairo cannot take (not a multiple of 4) is drawn through a copy: same pixels. */
GST_START_TEST (test_odd_stride)
{
  guint8 grid[4] = { 0, 1, 2, 3 };
  GstHarness *h = overlay_harness (FORMAT_X, 7, 3);
  GstBuffer *odd = make_frame (FORMAT_X, 7, 3, 60, 30);
  GstBuffer *normal = make_frame (FORMAT_X, 7, 3, 60, 0);
  attach_meta (odd, "Dress", 2, 2, grid);
  attach_meta (normal, "Dress", 2, 2, grid);
  GstBuffer *out_odd = gst_harness_push_and_pull (h, odd);
  GstBuffer *out_normal = gst_harness_push_and_pull (h, normal);
  GstMapInfo mo, mn;
  gst_buffer_map (out_odd, &mo, GST_MAP_READ);
  gst_buffer_map (out_normal, &mn, GST_MAP_READ);
  for (int y = 0; y < 3; y++)
    fail_unless (memcmp (mo.data + y * 30, mn.data + y * 28, 28) == 0, "row %d differs", y);
  gst_buffer_unmap (out_odd, &mo);
  gst_buffer_unmap (out_normal, &mn);
  gst_buffer_unref (out_odd);
  gst_buffer_unref (out_normal);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* Every property reads back what was set, and starts at its declared default. */
GST_START_TEST (test_properties_round_trip)
{
  GstElement *overlay = gst_element_factory_make ("moneoverlay", NULL);
  gboolean show_map, show_text, show_legend;
  double alpha;
  GParamSpecDouble *alpha_spec;

  fail_unless (overlay != NULL);
  alpha_spec = G_PARAM_SPEC_DOUBLE (g_object_class_find_property (G_OBJECT_GET_CLASS (overlay),
          "map-alpha"));
  fail_unless (alpha_spec->minimum == 0.0 && alpha_spec->maximum == 1.0);
  g_object_get (overlay, "show-map", &show_map, "show-text", &show_text, "show-legend",
      &show_legend, "map-alpha", &alpha, NULL);
  fail_unless (show_map && show_text && show_legend, "everything is drawn by default");
  fail_unless_equals_float (alpha, alpha_spec->default_value);

  g_object_set (overlay, "show-map", FALSE, "show-text", FALSE, "show-legend", FALSE,
      "map-alpha", 0.8, NULL);
  g_object_get (overlay, "show-map", &show_map, "show-text", &show_text, "show-legend",
      &show_legend, "map-alpha", &alpha, NULL);
  fail_unless (!show_map && !show_text && !show_legend, "a show-* property did not stick");
  fail_unless_equals_float (alpha, 0.8);
  gst_object_unref (overlay);
}

GST_END_TEST;

/* The red channel of a full-width (red) patch over grey 128 at map-alpha `alpha`. */
static int
red_patch_value (double alpha)
{
  const guint8 grid[4] = { 3, 3, 3, 3 };
  GstHarness *h = overlay_harness (FORMAT_X, 32, 32);
  GstBuffer *in = make_frame (FORMAT_X, 32, 32, 128, 0), *out;
  GstMapInfo map;
  int red;

  g_object_set (h->element, "show-text", FALSE, "show-legend", FALSE, "map-alpha", alpha, NULL);
  attach_meta (in, "Shirt", 2, 2, grid);
  out = gst_harness_push_and_pull (h, in);
  gst_buffer_map (out, &map, GST_MAP_READ);
  red = pixel (&map, 128, 8, 8)[R_OFFSET];
  gst_buffer_unmap (out, &map);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
  return red;
}

/* map-alpha is how strongly the map tints the picture: 0 leaves it, more tints more. */
GST_START_TEST (test_map_alpha_sets_tint)
{
  int none = red_patch_value (0.0), light = red_patch_value (0.2), strong = red_patch_value (0.8);

  fail_unless_equals_int (none, 128);
  fail_unless (light > none + 10, "alpha 0.2 barely tints: red %d over 128", light);
  fail_unless (strong > light + 40, "alpha 0.8 (red %d) not stronger than 0.2 (red %d)", strong,
      light);
}

GST_END_TEST;

static Suite *
moneoverlay_suite (void)
{
  Suite *s = suite_create ("moneoverlay");
  TCase *tc = tcase_create ("general");
  tcase_set_timeout (tc, 120);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_patch_tint);
  tcase_add_test (tc, test_regions_drawn);
  tcase_add_test (tc, test_letterbox_geometry);
  tcase_add_test (tc, test_scaled_after_classification);
  tcase_add_test (tc, test_label_changes_text);
  tcase_add_test (tc, test_long_utf8_label);
  tcase_add_test (tc, test_alpha_frames);
  tcase_add_test (tc, test_formats_and_sizes);
  tcase_add_test (tc, test_no_meta_unchanged);
  tcase_add_test (tc, test_nothing_to_draw_unchanged);
  tcase_add_test (tc, test_odd_stride);
  tcase_add_test (tc, test_properties_round_trip);
  tcase_add_test (tc, test_map_alpha_sets_tint);
  return s;
}

GST_CHECK_MAIN (moneoverlay);
