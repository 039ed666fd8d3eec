/* mone-sample-video: renders Fashion-MNIST test items into an encoded video for the pipelines.
 *
 * Each chosen test item is drawn into the centre square of a grey frame (side = the frame's
 * shorter side unless --item-size says otherwise) and shown for --frames-per-item frames. The
 * frames go through appsrc ! videoconvert ! RGB ! videoconvert ! vp8enc ! webmmux ! filesink (real
 * limited-range I420, as decoders and cameras deliver), and a CSV next to the
 * video records which item is on which frames:
 *
 *   item,test_index,first_frame,last_frame,label,label_name
 *
 * The item choice is a seeded shuffle of the 10k test set and the pixels come from the trainer's
 * render protocols (src/train/data.h), so the same arguments give the same items, frames and CSV
 * on every machine. With the default placement (full-frame) a monefilter in centre-crop mode sees
 * exactly the item, as `mone eval` renders it; --placement in-frame draws the item small on a
 * cluttered canvas instead, as the in-frame protocol does.
 *
 *   mone-sample-video --items 200 --output sample/fashion.webm
 */
#include <errno.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <gst/video/video.h>

#include "train/data.h"

#define DEFAULT_ITEMS 200
#define DEFAULT_FRAMES_PER_ITEM 5
#define DEFAULT_WIDTH 320
#define DEFAULT_HEIGHT 240
#define DEFAULT_FPS 25
#define DEFAULT_SEED 1
#define DEFAULT_BACKGROUND 128
#define DEFAULT_BITRATE 1500000 /* bits/s: high for 320x240, so codec loss barely moves accuracy */

typedef struct {
  char *output;            /* the .webm file */
  char *labels;            /* the CSV; default: output with its extension replaced by .csv */
  char *data_dir;          /* Fashion-MNIST IDX folder; NULL = the Debian package's */
  int items, frames_per_item, width, height, item_size, fps, background, bitrate;
  gint64 seed;
  MoneProtocol placement;
  gboolean blocks;         /* full-frame: enlarge by pixel replication instead of bilinear */
} SampleOptions;

/* Chooses `count` distinct indices of [0, total) by a partial Fisher-Yates shuffle. */
static int *
choose_items (int total, int count, guint64 seed)
{
  int *order = g_new (int, total);
  MoneRng rng;

  for (int i = 0; i < total; i++)
    order[i] = i;
  /* stream 0x5a4d: keep this sequence independent of the render protocols' use of the seed */
  mone_rng_seed (&rng, seed, 0x5a4d);
  for (int i = 0; i < count; i++) {
    int j = i + (int) mone_rng_below (&rng, (uint32_t) (total - i));
    int t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

/* Draws one item into a GRAY8 frame: grey background, the item rendered at item_size x item_size
 * in the centre. item_pixels is scratch of item_size^2 floats. */
static void
draw_frame (const SampleOptions *opt, const MoneImageSet *set, int test_index,
    const GstVideoInfo *info, guint8 *frame, float *item_pixels)
{
  int stride = GST_VIDEO_INFO_PLANE_STRIDE (info, 0);
  int side = opt->item_size;
  int x0 = (opt->width - side) / 2, y0 = (opt->height - side) / 2;

  for (int y = 0; y < opt->height; y++)
    memset (frame + (gsize) y * stride, opt->background, opt->width);

  if (opt->blocks && opt->placement == MONE_PROTOCOL_FULL_FRAME) {
    /* each item pixel becomes a block: a downscaler that averages areas gets the item back */
    const guint8 *item = set->pixels + (gsize) test_index * set->rows * set->cols;

    for (int y = 0; y < side; y++)
      for (int x = 0; x < side; x++)
        item_pixels[y * side + x] = item[(y * set->rows / side) * set->cols + x * set->cols / side]
            / 255.0f;
  } else {
    mone_render (set, test_index, opt->placement, (uint64_t) opt->seed, FALSE, 1, side, side,
        item_pixels);
  }
  for (int y = 0; y < side; y++) {
    guint8 *row = frame + (gsize) (y0 + y) * stride + x0;
    for (int x = 0; x < side; x++) {
      float v = item_pixels[y * side + x] * 255.0f + 0.5f;
      row[x] = (guint8) (v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
    }
  }
}

static gboolean
write_labels (const SampleOptions *opt, const char *path, const MoneImageSet *set, const int *chosen,
    GError **error)
{
  FILE *f = fopen (path, "w");

  if (!f) {
    g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno),
        "cannot write labels file %s: %s", path, g_strerror (errno));
    return FALSE;
  }
  fprintf (f, "item,test_index,first_frame,last_frame,label,label_name\n");
  for (int i = 0; i < opt->items; i++) {
    int label = set->labels[chosen[i]];
    int first = i * opt->frames_per_item;
    fprintf (f, "%d,%d,%d,%d,%d,%s\n", i, chosen[i], first, first + opt->frames_per_item - 1,
        label, mone_fashion_mnist_labels[label]);
  }
  if (fclose (f) != 0) {
    g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno),
        "cannot write labels file %s: %s", path, g_strerror (errno));
    return FALSE;
  }
  return TRUE;
}

static GstElement *
make_element (const char *factory, const char *package, GError **error)
{
  GstElement *e = gst_element_factory_make (factory, NULL);

  if (!e)
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_MISSING_PLUGIN,
        "GStreamer element '%s' is missing (Debian package %s)", factory, package);
  return e;
}

/* Returns TRUE on EOS; FALSE with the pipeline's error message otherwise. */
static gboolean
wait_for_eos (GstElement *pipeline, GError **error)
{
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  gboolean ok = TRUE;

  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    GError *err = NULL;
    char *debug = NULL;

    gst_message_parse_error (msg, &err, &debug);
    g_set_error (error, err->domain, err->code, "%s: %s (%s)", GST_OBJECT_NAME (msg->src),
        err->message, debug ? debug : "no details");
    g_clear_error (&err);
    g_free (debug);
    ok = FALSE;
  }
  gst_message_unref (msg);
  gst_object_unref (bus);
  return ok;
}

static gboolean
encode_video (const SampleOptions *opt, const char *path, const MoneImageSet *set, const int *chosen,
    GError **error)
{
  GstElement *pipeline = gst_pipeline_new ("sample-video");
  GstElement *src = NULL, *to_rgb = NULL, *rgb_filter = NULL, *convert = NULL, *encoder = NULL, *mux = NULL;
  GstElement *sink = NULL;
  GstVideoInfo info;
  GstCaps *caps = NULL;
  float *item_pixels = g_new (float, (gsize) opt->item_size * opt->item_size);
  gboolean ok = FALSE;
  guint64 frame_index = 0;

  if (!(src = make_element ("appsrc", "gstreamer1.0-plugins-base", error))
      || !(to_rgb = make_element ("videoconvert", "gstreamer1.0-plugins-base", error))
      || !(rgb_filter = make_element ("capsfilter", "libgstreamer1.0-0", error))
      || !(convert = make_element ("videoconvert", "gstreamer1.0-plugins-base", error))
      || !(encoder = make_element ("vp8enc", "gstreamer1.0-plugins-good", error))
      || !(mux = make_element ("webmmux", "gstreamer1.0-plugins-good", error))
      || !(sink = make_element ("filesink", "gstreamer1.0-plugins-base", error)))
    goto done;

  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_GRAY8, opt->width, opt->height);
  GST_VIDEO_INFO_FPS_N (&info) = opt->fps;
  GST_VIDEO_INFO_FPS_D (&info) = 1;
  caps = gst_video_info_to_caps (&info);
  g_object_set (src, "caps", caps, "format", GST_FORMAT_TIME, "block", TRUE,
      "max-bytes", (guint64) info.size * 8, NULL);
  /* One encoder thread and a fixed good-quality deadline: the same frames give the same bytes.
   * Every item starts with a keyframe-sized change anyway, so keyframes every second cost little. */
  g_object_set (encoder, "threads", 1, "deadline", (gint64) 20000, "cpu-used", 4,
      "target-bitrate", opt->bitrate, "keyframe-max-dist", opt->fps, NULL);
  g_object_set (sink, "location", path, NULL);

  /* Through RGB: GStreamer's converter would copy GRAY8 into the Y plane as it is (full range in a
   * stream that says limited range); GRAY8 -> RGB -> I420 stores real limited-range video, as a
   * camera or decoder delivers it. */
  GstCaps *rgb_caps = gst_caps_new_simple ("video/x-raw", "format", G_TYPE_STRING, "RGB", NULL);
  g_object_set (rgb_filter, "caps", rgb_caps, NULL);
  gst_caps_unref (rgb_caps);
  gst_bin_add_many (GST_BIN (pipeline), src, to_rgb, rgb_filter, convert, encoder, mux, sink, NULL);
  if (!gst_element_link_many (src, to_rgb, rgb_filter, convert, encoder, mux, sink, NULL)) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
        "cannot link appsrc ! videoconvert ! video/x-raw,format=RGB ! videoconvert ! vp8enc ! webmmux ! filesink");
    src = to_rgb = rgb_filter = convert = encoder = mux = sink = NULL;
    goto done;
  }
  if (gst_element_set_state (pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    wait_for_eos (pipeline, error);
    if (error && !*error)
      g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_STATE_CHANGE,
          "cannot start the encoding pipeline (writing %s)", opt->output);
    goto stop;
  }

  for (int i = 0; i < opt->items; i++) {
    GstBuffer *item_frame = gst_buffer_new_allocate (NULL, info.size, NULL);
    GstMapInfo map;

    gst_buffer_map (item_frame, &map, GST_MAP_WRITE);
    draw_frame (opt, set, chosen[i], &info, map.data, item_pixels);
    gst_buffer_unmap (item_frame, &map);

    for (int k = 0; k < opt->frames_per_item; k++, frame_index++) {
      GstBuffer *buf = gst_buffer_copy (item_frame);

      GST_BUFFER_PTS (buf) = gst_util_uint64_scale (frame_index, GST_SECOND, opt->fps);
      GST_BUFFER_DURATION (buf) = gst_util_uint64_scale (frame_index + 1, GST_SECOND, opt->fps)
          - GST_BUFFER_PTS (buf);
      if (gst_app_src_push_buffer (GST_APP_SRC (src), buf) != GST_FLOW_OK) {
        gst_buffer_unref (item_frame);
        /* the pipeline stopped: its error message says why */
        gst_app_src_end_of_stream (GST_APP_SRC (src));
        wait_for_eos (pipeline, error);
        if (error && !*error)
          g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED,
              "the encoding pipeline stopped at frame %" G_GUINT64_FORMAT, frame_index);
        goto stop;
      }
    }
    gst_buffer_unref (item_frame);
  }
  gst_app_src_end_of_stream (GST_APP_SRC (src));
  ok = wait_for_eos (pipeline, error);

stop:
  gst_element_set_state (pipeline, GST_STATE_NULL);
  src = to_rgb = rgb_filter = convert = encoder = mux = sink = NULL; /* owned by the pipeline */
done:
  if (src) gst_object_unref (src);
  if (to_rgb) gst_object_unref (to_rgb);
  if (rgb_filter) gst_object_unref (rgb_filter);
  if (convert) gst_object_unref (convert);
  if (encoder) gst_object_unref (encoder);
  if (mux) gst_object_unref (mux);
  if (sink) gst_object_unref (sink);
  if (caps) gst_caps_unref (caps);
  gst_object_unref (pipeline);
  g_free (item_pixels);
  return ok;
}

static char *
default_labels_path (const char *output)
{
  char *base = g_path_get_basename (output);
  char *dot = strrchr (base, '.');
  char *dir = g_path_get_dirname (output);
  char *path;

  if (dot && dot != base)
    *dot = '\0';
  path = g_strdup_printf ("%s%s%s.csv", dir, G_DIR_SEPARATOR_S, base);
  g_free (base);
  g_free (dir);
  return path;
}

int
main (int argc, char **argv)
{
  SampleOptions opt = {
    .items = DEFAULT_ITEMS, .frames_per_item = DEFAULT_FRAMES_PER_ITEM,
    .width = DEFAULT_WIDTH, .height = DEFAULT_HEIGHT, .item_size = 0, .fps = DEFAULT_FPS,
    .background = DEFAULT_BACKGROUND, .bitrate = DEFAULT_BITRATE, .seed = DEFAULT_SEED,
    .placement = MONE_PROTOCOL_FULL_FRAME,
  };
  char *placement = NULL;
  GOptionEntry entries[] = {
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &opt.output, "Video file to write (WebM/VP8; required)", "FILE" },
    { "labels", 'l', 0, G_OPTION_ARG_FILENAME, &opt.labels, "Labels CSV (default: FILE with .csv)", "CSV" },
    { "items", 'n', 0, G_OPTION_ARG_INT, &opt.items, "Test items to show (default 200)", "N" },
    { "frames-per-item", 'f', 0, G_OPTION_ARG_INT, &opt.frames_per_item, "Frames each item stays on screen (default 5)", "K" },
    { "seed", 's', 0, G_OPTION_ARG_INT64, &opt.seed, "Seed of the item choice and the in-frame clutter (default 1)", "S" },
    { "width", 0, 0, G_OPTION_ARG_INT, &opt.width, "Frame width (default 320)", "W" },
    { "height", 0, 0, G_OPTION_ARG_INT, &opt.height, "Frame height (default 240)", "H" },
    { "item-size", 0, 0, G_OPTION_ARG_INT, &opt.item_size, "Side of the item square (default: the shorter frame side)", "PX" },
    { "fps", 0, 0, G_OPTION_ARG_INT, &opt.fps, "Frame rate (default 25)", "FPS" },
    { "background", 0, 0, G_OPTION_ARG_INT, &opt.background, "Grey level around the item, 0-255 (default 128)", "V" },
    { "bitrate", 0, 0, G_OPTION_ARG_INT, &opt.bitrate, "VP8 target bitrate in bits/s (default 1500000)", "BPS" },
    { "blocks", 0, 0, G_OPTION_ARG_NONE, &opt.blocks, "full-frame: enlarge the item by pixel replication (blocks) instead of bilinear", NULL },
    { "placement", 'p', 0, G_OPTION_ARG_STRING, &placement, "full-frame (item fills the square) or in-frame (small, on clutter)", "P" },
    { "data-dir", 0, 0, G_OPTION_ARG_FILENAME, &opt.data_dir, "Fashion-MNIST IDX folder (default " MONE_FASHION_MNIST_DIR ")", "DIR" },
    G_OPTION_ENTRY_NULL
  };
  GOptionContext *octx = g_option_context_new ("- render Fashion-MNIST test items into a VP8/WebM video");
  GError *error = NULL;
  MoneImageSet test_set = { 0 };
  int *chosen = NULL;
  int status = 1;
  char *labels_partial = NULL, *video_partial = NULL;

  g_option_context_add_main_entries (octx, entries, NULL);
  g_option_context_add_group (octx, gst_init_get_option_group ());
  if (!g_option_context_parse (octx, &argc, &argv, &error)) {
    fprintf (stderr, "mone-sample-video: %s\n", error->message);
    status = 2;
    goto out;
  }
  if (!opt.output) {
    fprintf (stderr, "mone-sample-video: --output FILE is required\n");
    status = 2;
    goto out;
  }
  if (placement && !mone_protocol_from_name (placement, &opt.placement)) {
    fprintf (stderr, "mone-sample-video: --placement must be full-frame or in-frame, not '%s'\n",
        placement);
    status = 2;
    goto out;
  }
  if (opt.item_size == 0)
    opt.item_size = MIN (opt.width, opt.height);
  if (opt.width < 16 || opt.height < 16 || opt.width > 4096 || opt.height > 4096
      || opt.width % 2 || opt.height % 2) {
    fprintf (stderr, "mone-sample-video: frame size %dx%d: need even sides in 16..4096\n",
        opt.width, opt.height);
    status = 2;
    goto out;
  }
  if (opt.item_size < 8 || opt.item_size > MIN (opt.width, opt.height)) {
    fprintf (stderr, "mone-sample-video: --item-size %d: need 8..%d (the shorter frame side)\n",
        opt.item_size, MIN (opt.width, opt.height));
    status = 2;
    goto out;
  }
  if (opt.frames_per_item < 1 || opt.frames_per_item > 1000 || opt.fps < 1 || opt.fps > 240
      || opt.background < 0 || opt.background > 255 || opt.bitrate < 10000) {
    fprintf (stderr, "mone-sample-video: --frames-per-item 1..1000, --fps 1..240, "
        "--background 0..255, --bitrate >= 10000\n");
    status = 2;
    goto out;
  }
  if (!opt.labels)
    opt.labels = default_labels_path (opt.output);

  if (!mone_fashion_mnist_load (opt.data_dir, FALSE, &test_set, &error)) {
    fprintf (stderr, "mone-sample-video: %s\n(Debian package dataset-fashion-mnist)\n",
        error->message);
    goto out;
  }
  if (opt.items < 1 || opt.items > test_set.count) {
    fprintf (stderr, "mone-sample-video: --items %d: the test set has 1..%d items\n", opt.items,
        test_set.count);
    status = 2;
    goto out;
  }

  chosen = choose_items (test_set.count, opt.items, (guint64) opt.seed);
  /* Both files are written under temporary names and renamed when complete, the CSV last: an
   * interrupted run leaves no video and CSV pair that looks finished. */
  labels_partial = g_strconcat (opt.labels, ".partial", NULL);
  video_partial = g_strconcat (opt.output, ".partial", NULL);
  if (!write_labels (&opt, labels_partial, &test_set, chosen, &error)
      || !encode_video (&opt, video_partial, &test_set, chosen, &error)) {
    fprintf (stderr, "mone-sample-video: %s\n", error->message);
    g_unlink (labels_partial);
    g_unlink (video_partial);
    goto out;
  }
  if (g_rename (video_partial, opt.output) != 0 || g_rename (labels_partial, opt.labels) != 0) {
    fprintf (stderr, "mone-sample-video: cannot rename the finished files into place: %s\n",
        g_strerror (errno));
    g_unlink (labels_partial);
    g_unlink (video_partial);
    goto out;
  }
  printf ("wrote %s (%d items x %d frames, %dx%d @ %d fps, %s) and %s\n", opt.output, opt.items,
      opt.frames_per_item, opt.width, opt.height, opt.fps, mone_protocol_name (opt.placement),
      opt.labels);
  status = 0;

out:
  g_free (labels_partial);
  g_free (video_partial);
  g_clear_error (&error);
  g_option_context_free (octx);
  mone_image_set_clear (&test_set);
  g_free (chosen);
  g_free (placement);
  g_free (opt.output);
  g_free (opt.labels);
  g_free (opt.data_dir);
  return status;
}
