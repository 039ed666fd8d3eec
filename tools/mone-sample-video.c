/* mone-sample-video: renders Fashion-MNIST test items into an encoded video for the pipelines.
 *
 * Each chosen test item is shown for --frames-per-item frames, drawn by one of these placements:
 *
 *  - scene (default): the trainer's scene protocol drawn as a camera frame of the output's own
 *    aspect (mone_render_scene_frame) at a camera-like small size, --scene-height rows (128) by
 *    round(128 * width / height) columns (171 x 128 for 320 x 240), then enlarged bilinearly to the
 *    output size: the item anywhere at 30-95% of the frame height on an uneven, textured background,
 *    with the camera's and codec's traces, as a camera shows it to monefilter (default stretch);
 *  - close-up: the item centred on black, its square about 80% of the frame height (--item-size);
 *  - full-frame: the item fills the centre square of a grey frame (side = the shorter side unless
 *    --item-size says otherwise), as `mone eval` renders it for a centre-cropping monefilter;
 *  - in-frame: the item small on a cluttered canvas in that square, as the in-frame protocol.
 *
 * The frames go through appsrc ! videoconvert ! RGB ! videoconvert ! ENCODER ! MUX ! filesink (real
 * limited-range I420, as decoders and cameras deliver): VP8 (vp8enc) in WebM or Matroska, or H.264
 * (Debian's openh264enc, in gstreamer1.0-plugins-bad) in MP4 or Matroska; the codec follows
 * --codec, else the file's extension (.mp4/.m4v/.mov: H.264). A CSV next to the video records which
 * item is on which frames and where its box is, in frame pixels (the item's 28 x 28 cell; a
 * scene's box may reach past the frame edge and is not clipped):
 *
 *   item,test_index,first_frame,last_frame,label,label_name,box_x,box_y,box_w,box_h
 *
 * The item choice is a seeded shuffle of the 10k test set and the pixels come from the trainer's
 * render protocols (include/mone/mone-train.h), so the same arguments give the same items, frames and CSV
 * on every machine.
 *
 *   mone-sample-video --items 200 --output sample/scenes.webm
 *   mone-sample-video --items 200 --output sample/scenes.mp4          # H.264
 */
#include <errno.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <gst/video/video.h>

#include "mone/mone-train.h"

#define DEFAULT_ITEMS 200
#define DEFAULT_FRAMES_PER_ITEM 5
#define DEFAULT_WIDTH 320
#define DEFAULT_HEIGHT 240
#define DEFAULT_FPS 25
#define DEFAULT_SEED 1
#define DEFAULT_BACKGROUND 128  /* full-frame and in-frame; close-up is on black */
#define DEFAULT_SCENE_HEIGHT 128 /* a small camera frame, the scene model's input height */
#define CLOSE_UP_FRACTION 0.8   /* close-up item square / frame height */
#define DEFAULT_BITRATE 1500000 /* bits/s: high for 320x240, so codec loss barely moves accuracy */

typedef enum {
  PLACEMENT_SCENE,
  PLACEMENT_CLOSE_UP,
  PLACEMENT_FULL_FRAME,
  PLACEMENT_IN_FRAME,
} Placement;

static const char *const placement_names[] = { "scene", "close-up", "full-frame", "in-frame" };

typedef enum { CODEC_VP8, CODEC_H264 } Codec;
typedef enum { MUX_WEBM, MUX_MP4, MUX_MATROSKA } Container;

typedef struct {
  char *output;   /* the video file */
  char *labels;   /* the CSV; default: output with its extension replaced by .csv */
  char *data_dir; /* Fashion-MNIST IDX folder; NULL = the Debian package's */
  int items, frames_per_item, width, height, item_size, fps, background, bitrate, scene_height;
  int scene_width; /* derived: the small scene frame's width at the output's aspect */
  gint64 seed;
  Placement placement;
  Codec codec;
  Container container;
  gboolean blocks; /* full-frame: enlarge by pixel replication instead of bilinear */
} SampleOptions;

/* Chooses `count` distinct indices of [0, total) by a partial Fisher-Yates shuffle. */
static int *
choose_items (int total, int count, guint64 seed)
{
  int *order = g_new (int, total);
  MoneTrainRng rng;

  for (int i = 0; i < total; i++)
    order[i] = i;
  /* stream 0x5a4d: keep this sequence independent of the render protocols' use of the seed */
  mone_train_rng_seed (&rng, seed, 0x5a4d);
  for (int i = 0; i < count; i++) {
    int j = i + (int) mone_train_rng_below (&rng, (uint32_t) (total - i));
    int t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

static inline guint8
to_byte (float v)
{
  v = v * 255.0f + 0.5f;
  return (guint8) (v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
}

/* Enlarges a (sh, sw) float plane to the whole GRAY8 frame bilinearly, pixel centres aligned and
 * edges repeated: smooth, as a camera's own scaler would, with no block edges for the codec. */
static void
upscale_bilinear (const float *src, int sh, int sw, guint8 *frame, int stride, int height, int width)
{
  for (int y = 0; y < height; y++) {
    float v = (y + 0.5f) * sh / height - 0.5f;
    int y0 = (int) floorf (v);
    float fy = v - y0;
    int ya = CLAMP (y0, 0, sh - 1), yb = CLAMP (y0 + 1, 0, sh - 1);
    guint8 *row = frame + (gsize) y * stride;

    for (int x = 0; x < width; x++) {
      float u = (x + 0.5f) * sw / width - 0.5f;
      int x0 = (int) floorf (u);
      float fx = u - x0;
      int xa = CLAMP (x0, 0, sw - 1), xb = CLAMP (x0 + 1, 0, sw - 1);
      float top = (1 - fx) * src[ya * sw + xa] + fx * src[ya * sw + xb];
      float bottom = (1 - fx) * src[yb * sw + xa] + fx * src[yb * sw + xb];

      row[x] = to_byte ((1 - fy) * top + fy * bottom);
    }
  }
}

/* Draws one item into a GRAY8 frame and reports its box in frame pixels. scratch holds at least
 * MAX (item_size^2, scene_height * scene_width) floats. */
static void
draw_frame (const SampleOptions *opt, const MoneImageSet *set, int test_index, const GstVideoInfo *info, guint8 *frame,
    float *scratch, MoneItemBox *box)
{
  int stride = GST_VIDEO_INFO_PLANE_STRIDE (info, 0);
  int side = opt->item_size;
  int x0 = (opt->width - side) / 2, y0 = (opt->height - side) / 2;

  if (opt->placement == PLACEMENT_SCENE) {
    MoneItemBox small;
    float sx = (float) opt->width / opt->scene_width, sy = (float) opt->height / opt->scene_height;

    mone_render_scene_frame (set, test_index, (uint64_t) opt->seed, opt->scene_height, opt->scene_width, scratch,
        &small);
    upscale_bilinear (scratch, opt->scene_height, opt->scene_width, frame, stride, opt->height, opt->width);
    *box = (MoneItemBox){ small.x * sx, small.y * sy, small.w * sx, small.h * sy };
    return;
  }

  for (int y = 0; y < opt->height; y++)
    memset (frame + (gsize) y * stride, opt->background, opt->width);
  *box = (MoneItemBox){ (float) x0, (float) y0, (float) side, (float) side };

  if (opt->blocks && opt->placement == PLACEMENT_FULL_FRAME) {
    /* each item pixel becomes a block: a downscaler that averages areas gets the item back */
    const guint8 *item = set->pixels + (gsize) test_index * set->rows * set->cols;

    for (int y = 0; y < side; y++)
      for (int x = 0; x < side; x++)
        scratch[y * side + x] = item[(y * set->rows / side) * set->cols + x * set->cols / side] / 255.0f;
  } else if (opt->placement == PLACEMENT_IN_FRAME) {
    MoneItemBox in_square;

    mone_render_with_box (set, test_index, MONE_PROTOCOL_IN_FRAME, (uint64_t) opt->seed, FALSE, 1, side, side, scratch,
        &in_square);
    *box = (MoneItemBox){ x0 + in_square.x, y0 + in_square.y, in_square.w, in_square.h };
  } else {
    /* full-frame and close-up: the item's cell fills the square (bilinear) */
    mone_render (set, test_index, MONE_PROTOCOL_FULL_FRAME, (uint64_t) opt->seed, FALSE, 1, side, side, scratch);
  }
  for (int y = 0; y < side; y++) {
    guint8 *row = frame + (gsize) (y0 + y) * stride + x0;
    for (int x = 0; x < side; x++)
      row[x] = to_byte (scratch[y * side + x]);
  }
}

static gboolean
labels_error (const char *path, GError **error)
{
  g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno), "cannot write labels file %s: %s", path,
      g_strerror (errno));
  return FALSE;
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
/* *error from an ERROR message: the element that failed, its message and its details. */
static void
set_error_from_message (GstMessage *msg, GError **error)
{
  GError *err = NULL;
  char *debug = NULL;

  gst_message_parse_error (msg, &err, &debug);
  g_set_error (error, err->domain, err->code, "%s: %s (%s)", GST_OBJECT_NAME (msg->src), err->message,
      debug ? debug : "no details");
  g_clear_error (&err);
  g_free (debug);
}

static gboolean
wait_for_eos (GstElement *pipeline, GError **error)
{
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  gboolean ok = GST_MESSAGE_TYPE (msg) != GST_MESSAGE_ERROR;

  if (!ok)
    set_error_from_message (msg, error);
  gst_message_unref (msg);
  gst_object_unref (bus);
  return ok;
}

/* Waits while appsrc holds `queue_bytes` or more; FALSE with *error when the pipeline failed
 * meanwhile. Backpressure by hand rather than appsrc's block=TRUE: a downstream error (a full
 * disk) stops the pipeline, and a push blocked on a full queue would then wait forever. */
static gboolean
wait_for_room (GstElement *pipeline, GstAppSrc *src, guint64 queue_bytes, GError **error)
{
  GstBus *bus = gst_element_get_bus (pipeline);
  gboolean ok = TRUE;

  while (ok && gst_app_src_get_current_level_bytes (src) >= queue_bytes) {
    GstMessage *msg = gst_bus_timed_pop_filtered (bus, 10 * GST_MSECOND, GST_MESSAGE_ERROR);
    if (msg) {
      set_error_from_message (msg, error);
      gst_message_unref (msg);
      ok = FALSE;
    }
  }
  gst_object_unref (bus);
  return ok;
}

/* The encoder, and for H.264 the parser that turns its byte-stream into what the muxers store. */
static gboolean
make_encoder (const SampleOptions *opt, GstElement **encoder, GstElement **parser, GError **error)
{
  *parser = NULL;
  if (opt->codec == CODEC_VP8) {
    if (!(*encoder = make_element ("vp8enc", "gstreamer1.0-plugins-good", error)))
      return FALSE;
    /* One encoder thread and a fixed good-quality deadline: the same frames give the same bytes.
     * Every item starts with a keyframe-sized change anyway, so keyframes every second cost little. */
    g_object_set (*encoder, "threads", 1, "deadline", (gint64) 20000, "cpu-used", 4, "target-bitrate", opt->bitrate,
        "keyframe-max-dist", opt->fps, NULL);
    return TRUE;
  }
  if (!(*encoder = make_element ("openh264enc", "gstreamer1.0-plugins-bad", error)))
    return FALSE;
  if (!(*parser = make_element ("h264parse", "gstreamer1.0-plugins-bad", error))) {
    gst_object_unref (*encoder);
    *encoder = NULL;
    return FALSE;
  }
  /* One thread for the same bytes from the same frames; bit-rate control at the VP8 rate so the
   * two codecs are compared at one bit rate; never skip frames (the CSV counts every one). */
  g_object_set (*encoder, "multi-thread", 1, "bitrate", (guint) opt->bitrate, "gop-size", (guint) opt->fps,
      "enable-frame-skip", FALSE, NULL);
  gst_util_set_object_arg (G_OBJECT (*encoder), "rate-control", "bitrate");
  gst_util_set_object_arg (G_OBJECT (*encoder), "usage-type", "camera");
  return TRUE;
}

static GstElement *
make_muxer (const SampleOptions *opt, GError **error)
{
  switch (opt->container) {
    case MUX_WEBM:
      return make_element ("webmmux", "gstreamer1.0-plugins-good", error);
    case MUX_MP4:
      return make_element ("mp4mux", "gstreamer1.0-plugins-good", error);
    case MUX_MATROSKA:
    default:
      return make_element ("matroskamux", "gstreamer1.0-plugins-good", error);
  }
}

/* Encodes the video to `path`, writing one CSV row per item to `labels` as it goes. */
static gboolean
encode_video (const SampleOptions *opt, const char *path, FILE *labels, const char *labels_path,
    const MoneImageSet *set, const int *chosen, GError **error)
{
  GstElement *pipeline = gst_pipeline_new ("sample-video");
  GstElement *src = NULL, *to_rgb = NULL, *rgb_filter = NULL, *convert = NULL, *encoder = NULL;
  GstElement *parser = NULL, *mux = NULL, *sink = NULL;
  GstVideoInfo info;
  GstCaps *caps = NULL;
  gsize scratch_size = MAX ((gsize) opt->item_size * opt->item_size, (gsize) opt->scene_height * opt->scene_width);
  float *scratch = g_new (float, scratch_size);
  gboolean ok = FALSE;
  guint64 frame_index = 0;

  if (!(src = make_element ("appsrc", "gstreamer1.0-plugins-base", error))
      || !(to_rgb = make_element ("videoconvert", "gstreamer1.0-plugins-base", error))
      || !(rgb_filter = make_element ("capsfilter", "libgstreamer1.0-0", error))
      || !(convert = make_element ("videoconvert", "gstreamer1.0-plugins-base", error))
      || !make_encoder (opt, &encoder, &parser, error) || !(mux = make_muxer (opt, error))
      || !(sink = make_element ("filesink", "gstreamer1.0-plugins-base", error)))
    goto done;

  gst_video_info_set_format (&info, GST_VIDEO_FORMAT_GRAY8, opt->width, opt->height);
  GST_VIDEO_INFO_FPS_N (&info) = opt->fps;
  GST_VIDEO_INFO_FPS_D (&info) = 1;
  caps = gst_video_info_to_caps (&info);
  const guint64 queue_bytes = (guint64) info.size * 8;
  g_object_set (src, "caps", caps, "format", GST_FORMAT_TIME, "max-bytes", queue_bytes, NULL);
  g_object_set (sink, "location", path, NULL);

  /* Through RGB: GStreamer's converter would copy GRAY8 into the Y plane as it is (full range in a
   * stream that says limited range); GRAY8 -> RGB -> I420 stores real limited-range video, as a
   * camera or decoder delivers it. */
  GstCaps *rgb_caps = gst_caps_new_simple ("video/x-raw", "format", G_TYPE_STRING, "RGB", NULL);
  g_object_set (rgb_filter, "caps", rgb_caps, NULL);
  gst_caps_unref (rgb_caps);
  gst_bin_add_many (GST_BIN (pipeline), src, to_rgb, rgb_filter, convert, encoder, mux, sink, NULL);
  if (parser)
    gst_bin_add (GST_BIN (pipeline), parser);
  if (!gst_element_link_many (src, to_rgb, rgb_filter, convert, encoder, NULL)
      || (parser && !gst_element_link_many (encoder, parser, mux, sink, NULL))
      || (!parser && !gst_element_link_many (encoder, mux, sink, NULL))) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
        "cannot link appsrc ! videoconvert ! video/x-raw,format=RGB ! videoconvert ! %s%s ! %s ! "
        "filesink",
        GST_OBJECT_NAME (gst_element_get_factory (encoder)), parser ? " ! h264parse" : "",
        GST_OBJECT_NAME (gst_element_get_factory (mux)));
    src = to_rgb = rgb_filter = convert = encoder = parser = mux = sink = NULL;
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
    MoneItemBox box;
    int label = set->labels[chosen[i]];
    int first = i * opt->frames_per_item;

    gst_buffer_map (item_frame, &map, GST_MAP_WRITE);
    draw_frame (opt, set, chosen[i], &info, map.data, scratch, &box);
    gst_buffer_unmap (item_frame, &map);
    if (fprintf (labels, "%d,%d,%d,%d,%d,%s,%.1f,%.1f,%.1f,%.1f\n", i, chosen[i], first,
            first + opt->frames_per_item - 1, label, mone_fashion_mnist_labels[label], box.x, box.y, box.w, box.h)
        < 0) {
      gst_buffer_unref (item_frame);
      labels_error (labels_path, error);
      gst_app_src_end_of_stream (GST_APP_SRC (src));
      goto stop;
    }

    for (int k = 0; k < opt->frames_per_item; k++, frame_index++) {
      GstBuffer *buf = gst_buffer_copy (item_frame);

      GST_BUFFER_PTS (buf) = gst_util_uint64_scale (frame_index, GST_SECOND, opt->fps);
      GST_BUFFER_DURATION (buf) = gst_util_uint64_scale (frame_index + 1, GST_SECOND, opt->fps) - GST_BUFFER_PTS (buf);
      if (!wait_for_room (pipeline, GST_APP_SRC (src), queue_bytes, error)) {
        gst_buffer_unref (buf);
        gst_buffer_unref (item_frame);
        goto stop;
      }
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
  src = to_rgb = rgb_filter = convert = encoder = parser = mux = sink = NULL; /* the pipeline's */
done:
  if (src)
    gst_object_unref (src);
  if (to_rgb)
    gst_object_unref (to_rgb);
  if (rgb_filter)
    gst_object_unref (rgb_filter);
  if (convert)
    gst_object_unref (convert);
  if (encoder)
    gst_object_unref (encoder);
  if (parser)
    gst_object_unref (parser);
  if (mux)
    gst_object_unref (mux);
  if (sink)
    gst_object_unref (sink);
  if (caps)
    gst_caps_unref (caps);
  gst_object_unref (pipeline);
  g_free (scratch);
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

static gboolean
has_extension (const char *path, const char *const *extensions)
{
  char *lower = g_ascii_strdown (path, -1);
  gboolean found = FALSE;

  for (const char *const *e = extensions; *e && !found; e++)
    found = g_str_has_suffix (lower, *e);
  g_free (lower);
  return found;
}

/* The codec from --codec, else from the extension; the container from the extension, else the
 * codec's usual one. FALSE (with a message) for a pair no muxer here stores. */
static gboolean
choose_codec_and_container (SampleOptions *opt, const char *codec, GError **error)
{
  static const char *const mp4[] = { ".mp4", ".m4v", ".mov", NULL };
  static const char *const webm[] = { ".webm", NULL };
  static const char *const mkv[] = { ".mkv", NULL };

  if (codec && !strcmp (codec, "vp8")) {
    opt->codec = CODEC_VP8;
  } else if (codec && !strcmp (codec, "h264")) {
    opt->codec = CODEC_H264;
  } else if (codec) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--codec must be vp8 or h264, not '%s'", codec);
    return FALSE;
  } else {
    opt->codec = has_extension (opt->output, mp4) ? CODEC_H264 : CODEC_VP8;
  }

  if (has_extension (opt->output, webm))
    opt->container = MUX_WEBM;
  else if (has_extension (opt->output, mp4))
    opt->container = MUX_MP4;
  else if (has_extension (opt->output, mkv))
    opt->container = MUX_MATROSKA;
  else
    opt->container = opt->codec == CODEC_VP8 ? MUX_WEBM : MUX_MP4;

  if ((opt->container == MUX_WEBM && opt->codec != CODEC_VP8)
      || (opt->container == MUX_MP4 && opt->codec != CODEC_H264)) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
        "--codec %s does not go into %s: use .webm or .mkv for vp8, .mp4 or .mkv for h264",
        opt->codec == CODEC_VP8 ? "vp8" : "h264", opt->output);
    return FALSE;
  }
  return TRUE;
}

int
main (int argc, char **argv)
{
  SampleOptions opt = {
    .items = DEFAULT_ITEMS,
    .frames_per_item = DEFAULT_FRAMES_PER_ITEM,
    .width = DEFAULT_WIDTH,
    .height = DEFAULT_HEIGHT,
    .item_size = 0,
    .fps = DEFAULT_FPS,
    .background = -1,
    .bitrate = DEFAULT_BITRATE,
    .seed = DEFAULT_SEED,
    .scene_height = 0,
    .placement = PLACEMENT_SCENE,
  };
  char *placement = NULL, *codec = NULL;
  GOptionEntry entries[] = { { "output", 'o', 0, G_OPTION_ARG_FILENAME, &opt.output,
                                 "Video file to write (.webm: VP8, .mp4: H.264, .mkv: either; required)", "FILE" },
    { "labels", 'l', 0, G_OPTION_ARG_FILENAME, &opt.labels, "Labels CSV (default: FILE with .csv)", "CSV" },
    { "items", 'n', 0, G_OPTION_ARG_INT, &opt.items, "Test items to show (default 200)", "N" },
    { "frames-per-item", 'f', 0, G_OPTION_ARG_INT, &opt.frames_per_item, "Frames each item stays on screen (default 5)",
        "K" },
    { "seed", 's', 0, G_OPTION_ARG_INT64, &opt.seed, "Seed of the item choice and the scenes or clutter (default 1)",
        "S" },
    { "width", 0, 0, G_OPTION_ARG_INT, &opt.width, "Frame width (default 320)", "W" },
    { "height", 0, 0, G_OPTION_ARG_INT, &opt.height, "Frame height (default 240)", "H" },
    { "placement", 'p', 0, G_OPTION_ARG_STRING, &placement,
        "scene (default: an item in a camera frame), close-up (centred on black, 80% of the height), full-frame (item "
        "fills the centre square) or in-frame (small, on clutter)",
        "P" },
    { "scene-height", 0, 0, G_OPTION_ARG_INT, &opt.scene_height,
        "scene: rows of the small camera frame drawn before enlarging (default 128, at most H; "
        "columns = round(ROWS * W / H))",
        "ROWS" },
    { "item-size", 0, 0, G_OPTION_ARG_INT, &opt.item_size,
        "Side of the item square (default: 80% of the height for close-up, else the shorter frame side)", "PX" },
    { "fps", 0, 0, G_OPTION_ARG_INT, &opt.fps, "Frame rate (default 25)", "FPS" },
    { "background", 0, 0, G_OPTION_ARG_INT, &opt.background,
        "Grey level around the item square, 0-255 (default 128; close-up 0)", "V" },
    { "codec", 'c', 0, G_OPTION_ARG_STRING, &codec, "vp8 or h264 (default: by FILE's extension, .mp4 h264, else vp8)",
        "C" },
    { "bitrate", 0, 0, G_OPTION_ARG_INT, &opt.bitrate, "Target bit rate in bits/s (default 1500000)", "BPS" },
    { "blocks", 0, 0, G_OPTION_ARG_NONE, &opt.blocks,
        "full-frame: enlarge the item by pixel replication (blocks) instead of bilinear", NULL },
    { "data-dir", 0, 0, G_OPTION_ARG_FILENAME, &opt.data_dir,
        "Fashion-MNIST IDX folder (default " MONE_FASHION_MNIST_DIR ")", "DIR" },
    G_OPTION_ENTRY_NULL };
  GOptionContext *octx = g_option_context_new ("- render Fashion-MNIST test items into a VP8 or H.264 video");
  GError *error = NULL;
  MoneImageSet test_set = { 0 };
  int *chosen = NULL;
  int status = 1;
  char *labels_partial = NULL, *video_partial = NULL;
  FILE *labels = NULL;

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
  if (placement) {
    guint p;

    for (p = 0; p < G_N_ELEMENTS (placement_names) && strcmp (placement, placement_names[p]); p++)
      ;
    if (p == G_N_ELEMENTS (placement_names)) {
      fprintf (stderr,
          "mone-sample-video: --placement must be scene, close-up, full-frame or "
          "in-frame, not '%s'\n",
          placement);
      status = 2;
      goto out;
    }
    opt.placement = (Placement) p;
  }
  if (!choose_codec_and_container (&opt, codec, &error)) {
    fprintf (stderr, "mone-sample-video: %s\n", error->message);
    status = 2;
    goto out;
  }
  if (opt.width < 16 || opt.height < 16 || opt.width > 4096 || opt.height > 4096 || opt.width % 2 || opt.height % 2) {
    fprintf (stderr, "mone-sample-video: frame size %dx%d: need even sides in 16..4096\n", opt.width, opt.height);
    status = 2;
    goto out;
  }
  if (opt.item_size == 0)
    opt.item_size = opt.placement == PLACEMENT_CLOSE_UP ? (int) lround (CLOSE_UP_FRACTION * opt.height)
                                                        : MIN (opt.width, opt.height);
  if (opt.item_size < 8 || opt.item_size > MIN (opt.width, opt.height)) {
    fprintf (stderr, "mone-sample-video: --item-size %d: need 8..%d (the shorter frame side)\n", opt.item_size,
        MIN (opt.width, opt.height));
    status = 2;
    goto out;
  }
  /* The scene frame keeps the output's aspect, so enlarging it stretches nothing. */
  if (opt.scene_height == 0)
    opt.scene_height = MIN (DEFAULT_SCENE_HEIGHT, opt.height);
  opt.scene_width = (int) lround ((double) opt.scene_height * opt.width / opt.height);
  if (opt.scene_height < 8 || opt.scene_height > opt.height || opt.scene_width < 8
      || opt.scene_width > MONE_SCENE_MAX_SIDE) {
    fprintf (stderr,
        "mone-sample-video: --scene-height %d: need 8..%d rows and 8..%d "
        "columns (%d at this aspect)\n",
        opt.scene_height, opt.height, MONE_SCENE_MAX_SIDE, opt.scene_width);
    status = 2;
    goto out;
  }
  if (opt.background < 0)
    opt.background = opt.placement == PLACEMENT_CLOSE_UP ? 0 : DEFAULT_BACKGROUND;
  if (opt.frames_per_item < 1 || opt.frames_per_item > 1000 || opt.fps < 1 || opt.fps > 240 || opt.background > 255
      || opt.bitrate < 10000) {
    fprintf (stderr,
        "mone-sample-video: --frames-per-item 1..1000, --fps 1..240, "
        "--background 0..255, --bitrate >= 10000\n");
    status = 2;
    goto out;
  }
  if (!opt.labels)
    opt.labels = default_labels_path (opt.output);
  if (strcmp (opt.labels, opt.output) == 0) {
    fprintf (stderr,
        "mone-sample-video: the labels file and the video are both '%s': name the video "
        "with its extension (.webm, .mp4) or give --labels\n",
        opt.output);
    status = 2;
    goto out;
  }

  if (!mone_fashion_mnist_load (opt.data_dir, FALSE, &test_set, &error)) {
    fprintf (stderr, "mone-sample-video: %s\n(Debian package dataset-fashion-mnist)\n", error->message);
    goto out;
  }
  if (opt.items < 1 || opt.items > test_set.count) {
    fprintf (stderr, "mone-sample-video: --items %d: the test set has 1..%d items\n", opt.items, test_set.count);
    status = 2;
    goto out;
  }

  chosen = choose_items (test_set.count, opt.items, (guint64) opt.seed);
  /* Both files are written under temporary names and renamed when complete, the CSV last: an
   * interrupted run leaves no video and CSV pair that looks finished. The CSV is opened first so
   * an unwritable path is refused before any encoding. */
  labels_partial = g_strconcat (opt.labels, ".partial", NULL);
  video_partial = g_strconcat (opt.output, ".partial", NULL);
  if (!(labels = fopen (labels_partial, "w"))
      || fprintf (labels,
             "item,test_index,first_frame,last_frame,label,label_name,"
             "box_x,box_y,box_w,box_h\n")
          < 0) {
    labels_error (opt.labels, &error);
  } else if (encode_video (&opt, video_partial, labels, opt.labels, &test_set, chosen, &error)) {
    int closed = fclose (labels);

    labels = NULL;
    if (closed != 0)
      labels_error (opt.labels, &error);
  }
  if (labels)
    fclose (labels);
  if (error) {
    fprintf (stderr, "mone-sample-video: %s\n", error->message);
    g_unlink (labels_partial);
    g_unlink (video_partial);
    goto out;
  }
  if (g_rename (video_partial, opt.output) != 0 || g_rename (labels_partial, opt.labels) != 0) {
    fprintf (stderr, "mone-sample-video: cannot rename the finished files into place: %s\n", g_strerror (errno));
    g_unlink (labels_partial);
    g_unlink (video_partial);
    goto out;
  }
  printf ("wrote %s (%d items x %d frames, %dx%d @ %d fps, %s, %s) and %s\n", opt.output, opt.items,
      opt.frames_per_item, opt.width, opt.height, opt.fps, placement_names[opt.placement],
      opt.codec == CODEC_VP8 ? "VP8" : "H.264", opt.labels);
  status = 0;

out:
  g_free (labels_partial);
  g_free (video_partial);
  g_clear_error (&error);
  g_option_context_free (octx);
  mone_image_set_clear (&test_set);
  g_free (chosen);
  g_free (placement);
  g_free (codec);
  g_free (opt.output);
  g_free (opt.labels);
  g_free (opt.data_dir);
  return status;
}
