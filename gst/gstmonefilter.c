/* gst-mone: monefilter
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-monefilter
 * @title: monefilter
 *
 * Classifies video with a Mixture of Nested Experts (MoNE) vision transformer and attaches the
 * result to every buffer as a GstCustomMeta ("GstMoneMeta"; fields in include/mone/gstmonemeta.h). The video itself passes through untouched and uncopied.
 *
 * Each frame is converted and scaled once to the model's input (grey or RGB at the model's size,
 * #GstMoneFilter:scale-mode says how the aspect ratio is handled) and run at the compute
 * #GstMoneFilter:budget, which may change at any time while playing and takes effect on the next
 * frame. With #GstMoneFilter:budget-mode=auto the element picks per frame the largest budget up to
 * #GstMoneFilter:budget whose predicted latency fits #GstMoneFilter:max-latency (by default the
 * frame duration), learning the latency online and reacting to QoS events from downstream.
 *
 * Latency: in auto mode the element promises to finish a frame within #GstMoneFilter:max-latency
 * (when even the minimum budget fits), so it answers the LATENCY query by adding that deadline to
 * the upstream minimum and maximum latency, and posts a latency message when the deadline changes
 * (max-latency, budget-mode or the caps' frame rate). With a queue between the element and a
 * synchronising sink (the usual live layout) every frame then has that much more time before it
 * is due, so a frame that overruns (the first one under a new CPU load) is absorbed. Without a
 * queue the sink holds the streaming thread until each frame's render time, so a frame reaches
 * the element only when the previous one is due and has one frame duration, whatever the latency.
 * In fixed mode the inference time is whatever the budget costs on this machine and nothing
 * bounds it, so the element adds nothing: the sink's processing-deadline (20 ms by default) is all
 * the slack, as for any other filter.
 *
 * Once downstream reports QoS and the pipeline latency is known (the LATENCY event sinks send
 * upstream), auto mode also races each frame's render time: a frame gets at most the time left
 * until it is due, and a frame that would be late even at the minimum budget carries the latest
 * result (flagged reused) instead, so one overrun does not make the following frames late too.
 *
 * Video models (more than one frame per input) see a window of the latest frames, oldest first;
 * every frame enters it, whether classified or not. A flush, a new stream, a caps change, a GAP
 * event and a buffer flagged DISCONT start the window afresh (the first frame after them fills
 * every slot) and end the reuse of the latest result.
 *
 * With #GstMoneFilter:message=true an element message "mone-classification" with the same fields
 * as the meta is posted for every frame.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -m videotestsrc ! monefilter budget=0.5 message=true ! fakesink
 * gst-launch-1.0 filesrc location=video.webm ! decodebin ! videoconvert ! \
 *     monefilter model=fashion-mone.safetensors budget-mode=auto ! moneoverlay ! autovideosink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmonefilter.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <mone/gstmonemeta.h>
#include "mone-budget.h"

#if HAVE_GST_ANALYTICS
#include <gst/analytics/analytics.h>
#endif

GST_DEBUG_CATEGORY_STATIC (gst_mone_filter_debug);
#define GST_CAT_DEFAULT gst_mone_filter_debug

/* Every raw format GstVideoConverter reads that a camera, decoder or test source commonly gives. */
#define MONE_FILTER_FORMATS "{ RGB, BGR, RGBx, BGRx, xRGB, xBGR, RGBA, BGRA, ARGB, ABGR, " \
    "GRAY8, GRAY16_LE, GRAY16_BE, I420, YV12, NV12, NV21, YUY2, UYVY, YVYU, Y41B, Y42B, Y444, " \
    "AYUV, RGB16, BGR16, I420_10LE, P010_10LE }"

static GstStaticPadTemplate gst_mone_filter_sink_template =
GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (MONE_FILTER_FORMATS)));

static GstStaticPadTemplate gst_mone_filter_src_template =
GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (MONE_FILTER_FORMATS)));

enum
{
  PROP_0,
  PROP_MODEL,
  PROP_BUDGET,
  PROP_BUDGET_MODE,
  PROP_MAX_LATENCY,
  PROP_INTERVAL,
  PROP_TOP_K,
  PROP_THREADS,
  PROP_MESSAGE,
  PROP_SCALE_MODE,
  PROP_LABELS,
  PROP_MIN_BUDGET,
  PROP_LAST_LATENCY,
  PROP_LAST_GFLOPS,
  PROP_LAST_BUDGET,
};

#define DEFAULT_BUDGET 1.0
#define DEFAULT_BUDGET_MODE GST_MONE_FILTER_BUDGET_MODE_FIXED
#define DEFAULT_MAX_LATENCY 0
#define DEFAULT_INTERVAL 1
#define DEFAULT_TOP_K 5
#define DEFAULT_THREADS 0
#define DEFAULT_MESSAGE FALSE
#define DEFAULT_SCALE_MODE GST_MONE_FILTER_SCALE_MODE_STRETCH
/* A frame deadline beyond a minute means nothing for live video, and the bound keeps the latency
 * the element adds in the LATENCY query far from overflowing. */
#define MAX_MAX_LATENCY (60 * GST_SECOND)

/* Deadline in auto mode when neither max-latency nor the caps nor the buffers give a frame rate. */
#define FALLBACK_FRAME_DURATION (GST_SECOND / 30)
/* Longest run of frames auto mode lets share one result when even the minimum budget is late:
 * about a second of video at 30 fps. */
#define MAX_OVERLOAD_INTERVAL 30

/* The settings one frame is processed with, copied under the object lock. */
typedef struct
{
  gdouble budget;
  GstMoneFilterBudgetMode budget_mode;
  guint64 max_latency;
  guint interval;
  guint top_k;
  gboolean post_messages;
  GstMoneFilterScaleMode scale_mode;
} Settings;

struct _GstMoneFilter
{
  GstVideoFilter parent;

  /* Properties and reported state, under the object lock. */
  gchar *model_path;
  Settings settings;
  gint threads;
  gchar **labels;
  gdouble min_budget;
  guint64 last_latency;
  gdouble last_gflops;
  gdouble last_budget;
  /* Latest downstream QoS event, handed from the src_event thread to the streaming thread. */
  gboolean qos_pending;
  gdouble qos_proportion;
  gint64 qos_jitter;
  /* A synchronising sink downstream reports lateness (a QoS event arrived since start()): only then
   * do frames have a render time worth racing. */
  gboolean qos_seen;
  /* Pipeline latency from the LATENCY event sinks send upstream, or NONE: with the running time it
   * gives the clock time a frame is rendered at. */
  GstClockTime pipeline_latency;

  /* Between start() and stop(): used by the streaming thread only. */
  MoneModel *model;
  gchar *model_cache_key;       /* NULL when the model is not shared through the cache */
  MoneContext *context;
  MoneBudgetController *controller;
  gint model_width, model_height, model_channels, model_frames;
  float *input;                 /* (T, C, H, W) the model input, oldest frame first */
  guint frames_in_input;        /* frames converted into `input` since the stream (re)started */
  guint64 frame_count;
  guint frames_since_result;
  GstStructure *last_result;    /* the latest fresh result, reused between classified frames */
  gint *top_scratch;            /* (classes) */

  /* From set_info (streaming thread). */
  GstVideoInfo model_info;      /* GRAY8 or RGB at the model size */
  gboolean luma_limited_range;  /* GRAY8 model_info holding limited-range (16-235) luma */
  GstBuffer *model_buffer;      /* one converted frame */
  GstVideoConverter *converter;
  GstMoneFilterScaleMode converter_scale_mode;
  GstBuffer *tiny_copy;         /* frames of a few pixels are converted from this copy */
  GstClockTime frame_duration;  /* from the caps, or NONE; written under the object lock (the
                                 * LATENCY query reads it from other threads) */
  gdouble content_x, content_y, content_width, content_height;  /* frame pixels */
  gdouble region_x, region_y, region_width, region_height;  /* model pixels */
};

#define gst_mone_filter_parent_class parent_class
G_DEFINE_TYPE (GstMoneFilter, gst_mone_filter, GST_TYPE_VIDEO_FILTER);
GST_ELEMENT_REGISTER_DEFINE (monefilter, "monefilter", GST_RANK_NONE, GST_TYPE_MONE_FILTER);

static void gst_mone_filter_finalize (GObject * object);
static void gst_mone_filter_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
static void gst_mone_filter_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);
static gboolean gst_mone_filter_start (GstBaseTransform * trans);
static gboolean gst_mone_filter_stop (GstBaseTransform * trans);
static gboolean gst_mone_filter_src_event (GstBaseTransform * trans, GstEvent * event);
static gboolean gst_mone_filter_sink_event (GstBaseTransform * trans, GstEvent * event);
static gboolean gst_mone_filter_query (GstBaseTransform * trans, GstPadDirection direction,
    GstQuery * query);
static GstFlowReturn gst_mone_filter_prepare_output_buffer (GstBaseTransform * trans,
    GstBuffer * input, GstBuffer ** outbuf);
static gboolean gst_mone_filter_set_info (GstVideoFilter * filter, GstCaps * incaps,
    GstVideoInfo * in_info, GstCaps * outcaps, GstVideoInfo * out_info);
static GstFlowReturn gst_mone_filter_transform_frame_ip (GstVideoFilter * filter,
    GstVideoFrame * frame);

GType
gst_mone_filter_budget_mode_get_type (void)
{
  static gsize type = 0;
  static const GEnumValue values[] = {
    {GST_MONE_FILTER_BUDGET_MODE_FIXED, "Run at the budget property", "fixed"},
    {GST_MONE_FILTER_BUDGET_MODE_AUTO,
        "Largest budget up to the budget property that fits max-latency", "auto"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstMoneFilterBudgetMode", values));
  return (GType) type;
}

GType
gst_mone_filter_scale_mode_get_type (void)
{
  static gsize type = 0;
  static const GEnumValue values[] = {
    {GST_MONE_FILTER_SCALE_MODE_STRETCH, "Scale the whole frame, ignoring its aspect ratio",
        "stretch"},
    {GST_MONE_FILTER_SCALE_MODE_LETTERBOX,
        "Scale the whole frame keeping its aspect ratio, black bars", "letterbox"},
    {GST_MONE_FILTER_SCALE_MODE_CROP, "Centre crop with the model's aspect ratio", "crop"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstMoneFilterScaleMode", values));
  return (GType) type;
}

static const gchar *
scale_mode_nick (GstMoneFilterScaleMode mode)
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

/* The shipped model: the installed copy, else the source tree's (running from the build tree). */
static const gchar *
built_in_model_path (void)
{
  static gsize path = 0;

  if (g_once_init_enter (&path)) {
    const gchar *chosen = MONE_INSTALLED_MODEL;
    if (!g_file_test (chosen, G_FILE_TEST_EXISTS)
        && g_file_test (MONE_SOURCE_TREE_MODEL, G_FILE_TEST_EXISTS))
      chosen = MONE_SOURCE_TREE_MODEL;
    g_once_init_leave (&path, (gsize) g_strdup (chosen));
  }
  return (const gchar *) path;
}

/* The model used when the `model` property is not set: $MONE_MODEL as it is when the element is
 * created or the property reset (not when the plugin was first loaded), else the built-in one. */
static gchar *
default_model_path (void)
{
  const gchar *from_env = g_getenv ("MONE_MODEL");

  return g_strdup (from_env && *from_env ? from_env : built_in_model_path ());
}

/* ---- Process-wide model cache: instances playing the same file share one MoneModel. ---- */

typedef struct
{
  MoneModel *model;
  guint users;
} SharedModel;

static GMutex model_cache_lock;
static GHashTable *model_cache;  /* key (owned) -> SharedModel* */

/* Canonical path plus the file's identity (device, inode, size, modification time), so a file
 * replaced on disk is loaded afresh rather than served stale. NULL when the file cannot be
 * stat()ed; the loader then reports why. */
static gchar *
model_cache_key (const gchar * path)
{
  struct stat st;
  char *canonical = realpath (path, NULL);
  gchar *key = NULL;

  if (canonical && stat (canonical, &st) == 0 && S_ISREG (st.st_mode))
    key = g_strdup_printf ("%s|%ju:%ju:%jd:%jd.%09ld", canonical, (uintmax_t) st.st_dev,
        (uintmax_t) st.st_ino, (intmax_t) st.st_size, (intmax_t) st.st_mtim.tv_sec,
        (long) st.st_mtim.tv_nsec);
  free (canonical);
  return key;
}

/* Returns a model reference; *key_out is the cache key to release it with (NULL if uncached). */
static MoneModel *
model_cache_acquire (const gchar * path, gchar ** key_out, GError ** error)
{
  gchar *key = model_cache_key (path);
  SharedModel *shared;
  MoneModel *model;

  *key_out = NULL;
  if (!key)
    return mone_model_load_file (path, error);

  g_mutex_lock (&model_cache_lock);
  if (!model_cache)
    model_cache = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  shared = g_hash_table_lookup (model_cache, key);
  if (shared) {
    shared->users++;
    model = mone_model_ref (shared->model);
  } else {
    /* Loading under the lock keeps two instances starting together from loading twice. */
    model = mone_model_load_file (path, error);
    if (model) {
      GST_INFO ("loaded model file %s", key);
      shared = g_new0 (SharedModel, 1);
      shared->model = mone_model_ref (model);
      shared->users = 1;
      g_hash_table_insert (model_cache, g_strdup (key), shared);
    }
  }
  g_mutex_unlock (&model_cache_lock);
  if (model)
    *key_out = key;
  else
    g_free (key);
  return model;
}

static void
model_cache_release (MoneModel * model, gchar * key)
{
  if (key) {
    g_mutex_lock (&model_cache_lock);
    SharedModel *shared = model_cache ? g_hash_table_lookup (model_cache, key) : NULL;
    if (shared && --shared->users == 0) {
      mone_model_unref (shared->model);
      g_hash_table_remove (model_cache, key);
      if (g_hash_table_size (model_cache) == 0)
        g_clear_pointer (&model_cache, g_hash_table_unref);
    }
    g_mutex_unlock (&model_cache_lock);
  }
  mone_model_unref (model);
  g_free (key);
}

/* ---- GObject ---- */

static void
gst_mone_filter_class_init (GstMoneFilterClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstVideoFilterClass *filter_class = GST_VIDEO_FILTER_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_mone_filter_debug, "monefilter", 0,
      "MoNE video classification");

  gobject_class->finalize = gst_mone_filter_finalize;
  gobject_class->set_property = gst_mone_filter_set_property;
  gobject_class->get_property = gst_mone_filter_get_property;

  g_object_class_install_property (gobject_class, PROP_MODEL,
      g_param_spec_string ("model", "Model",
          "Path of the MoNE model file (safetensors). Default: $MONE_MODEL when the element is "
          "created, else the installed fashion-mone.safetensors, else the source tree's "
          "models/fashion-mone.safetensors", built_in_model_path (),
          G_PARAM_READWRITE | GST_PARAM_MUTABLE_READY | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_BUDGET,
      g_param_spec_double ("budget", "Budget",
          "Compute budget e in (0, 1]: the share of full-model compute per token on average "
          "(1 = every token through the full model). Values below the model's min-budget run at "
          "min-budget. In budget-mode=auto the ceiling of the chosen budget. Takes effect on the "
          "next frame", 0.0, 1.0, DEFAULT_BUDGET,
          G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING | GST_PARAM_CONTROLLABLE |
          G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_BUDGET_MODE,
      g_param_spec_enum ("budget-mode", "Budget mode",
          "fixed: run at the budget property; auto: per frame the largest budget up to it whose "
          "predicted latency fits max-latency (learned online, lowered on QoS from downstream); "
          "when even the minimum budget cannot fit, only every Nth frame is classified and the "
          "rest reuse the result",
          GST_TYPE_MONE_FILTER_BUDGET_MODE, DEFAULT_BUDGET_MODE,
          G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_MAX_LATENCY,
      g_param_spec_uint64 ("max-latency", "Maximum latency",
          "Per-frame deadline in nanoseconds for budget-mode=auto (0 = the frame duration from "
          "the caps); in auto mode also the latency the element reports to the pipeline", 0,
          MAX_MAX_LATENCY, DEFAULT_MAX_LATENCY,
          G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_INTERVAL,
      g_param_spec_uint ("interval", "Interval",
          "Classify every Nth frame; the frames between carry the latest result flagged as reused",
          1, G_MAXINT, DEFAULT_INTERVAL,
          G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING | GST_PARAM_CONTROLLABLE |
          G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_TOP_K,
      g_param_spec_uint ("top-k", "Top k",
          "Number of best classes listed in the meta and messages (at most the model's classes)",
          1, GST_MONE_META_MAX_TOP_K, DEFAULT_TOP_K,
          G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_THREADS,
      g_param_spec_int ("threads", "Threads",
          "Threads of the inference engine (0 = automatic: 1 for small models, else all "
          "cores; at most the number of cores); applied when the element starts",
          0, 256, DEFAULT_THREADS,
          G_PARAM_READWRITE | GST_PARAM_MUTABLE_READY | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_MESSAGE,
      g_param_spec_boolean ("message", "Message",
          "Post a \"mone-classification\" element message per frame (same fields as the meta)",
          DEFAULT_MESSAGE,
          G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_SCALE_MODE,
      g_param_spec_enum ("scale-mode", "Scale mode",
          "How a frame is fitted to the model's input size",
          GST_TYPE_MONE_FILTER_SCALE_MODE, DEFAULT_SCALE_MODE,
          G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_LABELS,
      g_param_spec_boxed ("labels", "Labels",
          "Class labels of the loaded model, by class index (known once the element has started)",
          G_TYPE_STRV, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_MIN_BUDGET,
      g_param_spec_double ("min-budget", "Minimum budget",
          "Smallest budget the loaded model runs at, 1/2^(experts-1) (0 before it has started)",
          0.0, 1.0, 0.0, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_LAST_LATENCY,
      g_param_spec_uint64 ("last-latency", "Last latency",
          "Inference latency of the latest classified frame in nanoseconds (conversion included)",
          0, G_MAXUINT64, 0, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_LAST_GFLOPS,
      g_param_spec_double ("last-gflops", "Last GFLOPs",
          "GFLOPs spent on the latest classified frame", 0.0, G_MAXDOUBLE, 0.0,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_LAST_BUDGET,
      g_param_spec_double ("last-budget", "Last budget",
          "Budget the latest classified frame ran at (after clamping; the auto choice in "
          "budget-mode=auto)", 0.0, 1.0, 0.0, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  gst_element_class_set_static_metadata (element_class, "MoNE video classifier",
      "Filter/Analyzer/Video",
      "Classifies video with a Mixture of Nested Experts transformer at a compute budget that "
      "can change while playing; attaches the result as meta, video passes unchanged",
      "gst-mone developers");
  gst_element_class_add_static_pad_template (element_class, &gst_mone_filter_sink_template);
  gst_element_class_add_static_pad_template (element_class, &gst_mone_filter_src_template);

  trans_class->start = GST_DEBUG_FUNCPTR (gst_mone_filter_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_mone_filter_stop);
  trans_class->src_event = GST_DEBUG_FUNCPTR (gst_mone_filter_src_event);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_mone_filter_sink_event);
  trans_class->query = GST_DEBUG_FUNCPTR (gst_mone_filter_query);
  trans_class->prepare_output_buffer =
      GST_DEBUG_FUNCPTR (gst_mone_filter_prepare_output_buffer);
  /* The video is only read: passthrough, with transform_ip still called to add the meta. */
  trans_class->transform_ip_on_passthrough = TRUE;
  filter_class->set_info = GST_DEBUG_FUNCPTR (gst_mone_filter_set_info);
  filter_class->transform_frame_ip = GST_DEBUG_FUNCPTR (gst_mone_filter_transform_frame_ip);

  gst_type_mark_as_plugin_api (GST_TYPE_MONE_FILTER_BUDGET_MODE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_MONE_FILTER_SCALE_MODE, 0);
  gst_mone_meta_get_info ();
}

static void
gst_mone_filter_init (GstMoneFilter * self)
{
  self->model_path = default_model_path ();
  self->settings.budget = DEFAULT_BUDGET;
  self->settings.budget_mode = DEFAULT_BUDGET_MODE;
  self->settings.max_latency = DEFAULT_MAX_LATENCY;
  self->settings.interval = DEFAULT_INTERVAL;
  self->settings.top_k = DEFAULT_TOP_K;
  self->settings.post_messages = DEFAULT_MESSAGE;
  self->settings.scale_mode = DEFAULT_SCALE_MODE;
  self->threads = DEFAULT_THREADS;
  self->frame_duration = GST_CLOCK_TIME_NONE;
  self->pipeline_latency = GST_CLOCK_TIME_NONE;
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), TRUE);
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
  /* Late frames are not dropped here: budget-mode=auto answers QoS by lowering the budget. */
  gst_base_transform_set_qos_enabled (GST_BASE_TRANSFORM (self), FALSE);
}

static void
gst_mone_filter_finalize (GObject * object)
{
  GstMoneFilter *self = GST_MONE_FILTER (object);

  g_free (self->model_path);
  g_strfreev (self->labels);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

/* The auto-mode deadline the settings and caps give: max-latency, else the caps' frame duration,
 * else NONE. The streaming thread adds a fallback from the buffers; the LATENCY query does not. */
static GstClockTime
gst_mone_filter_configured_deadline (GstMoneFilter * self, const Settings * settings)
{
  return settings->max_latency != 0 ? settings->max_latency : self->frame_duration;
}

/* The latency the element adds in the LATENCY query: the auto-mode deadline as far as it is known
 * without a buffer (max-latency, else the frame duration of the caps), 0 in fixed mode or before
 * the frame rate is known. Called with the object lock held. */
static GstClockTime
gst_mone_filter_own_latency_locked (GstMoneFilter * self)
{
  GstClockTime deadline;

  if (self->settings.budget_mode != GST_MONE_FILTER_BUDGET_MODE_AUTO)
    return 0;
  deadline = gst_mone_filter_configured_deadline (self, &self->settings);
  return GST_CLOCK_TIME_IS_VALID (deadline) ? deadline : 0;
}

/* Asks the pipeline to redistribute latency after the element's own latency changed. */
static void
gst_mone_filter_latency_changed (GstMoneFilter * self, GstClockTime before, GstClockTime after)
{
  if (before == after)
    return;
  GST_DEBUG_OBJECT (self, "latency %" GST_TIME_FORMAT " -> %" GST_TIME_FORMAT,
      GST_TIME_ARGS (before), GST_TIME_ARGS (after));
  gst_element_post_message (GST_ELEMENT (self), gst_message_new_latency (GST_OBJECT (self)));
}

static void
gst_mone_filter_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  GstMoneFilter *self = GST_MONE_FILTER (object);
  GstClockTime latency_before, latency_after;

  GST_OBJECT_LOCK (self);
  latency_before = gst_mone_filter_own_latency_locked (self);
  switch (prop_id) {
    case PROP_MODEL:
      if (GST_STATE (self) > GST_STATE_READY)
        GST_WARNING_OBJECT (self, "the model is loaded when the element starts: the new one "
            "applies after the next READY->PAUSED");
      g_free (self->model_path);
      /* NULL or "" restores the default. */
      self->model_path = g_value_get_string (value) && *g_value_get_string (value)
          ? g_value_dup_string (value) : default_model_path ();
      break;
    case PROP_BUDGET:
      self->settings.budget = g_value_get_double (value);
      break;
    case PROP_BUDGET_MODE:
      self->settings.budget_mode = g_value_get_enum (value);
      break;
    case PROP_MAX_LATENCY:
      self->settings.max_latency = g_value_get_uint64 (value);
      break;
    case PROP_INTERVAL:
      self->settings.interval = g_value_get_uint (value);
      break;
    case PROP_TOP_K:
      self->settings.top_k = g_value_get_uint (value);
      break;
    case PROP_THREADS:
      if (GST_STATE (self) > GST_STATE_READY)
        GST_WARNING_OBJECT (self, "threads apply after the next READY->PAUSED");
      self->threads = g_value_get_int (value);
      break;
    case PROP_MESSAGE:
      self->settings.post_messages = g_value_get_boolean (value);
      break;
    case PROP_SCALE_MODE:
      self->settings.scale_mode = g_value_get_enum (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  latency_after = gst_mone_filter_own_latency_locked (self);
  GST_OBJECT_UNLOCK (self);
  gst_mone_filter_latency_changed (self, latency_before, latency_after);
}

static void
gst_mone_filter_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstMoneFilter *self = GST_MONE_FILTER (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL:
      g_value_set_string (value, self->model_path);
      break;
    case PROP_BUDGET:
      g_value_set_double (value, self->settings.budget);
      break;
    case PROP_BUDGET_MODE:
      g_value_set_enum (value, self->settings.budget_mode);
      break;
    case PROP_MAX_LATENCY:
      g_value_set_uint64 (value, self->settings.max_latency);
      break;
    case PROP_INTERVAL:
      g_value_set_uint (value, self->settings.interval);
      break;
    case PROP_TOP_K:
      g_value_set_uint (value, self->settings.top_k);
      break;
    case PROP_THREADS:
      g_value_set_int (value, self->threads);
      break;
    case PROP_MESSAGE:
      g_value_set_boolean (value, self->settings.post_messages);
      break;
    case PROP_SCALE_MODE:
      g_value_set_enum (value, self->settings.scale_mode);
      break;
    case PROP_LABELS:
      g_value_set_boxed (value, self->labels);
      break;
    case PROP_MIN_BUDGET:
      g_value_set_double (value, self->min_budget);
      break;
    case PROP_LAST_LATENCY:
      g_value_set_uint64 (value, self->last_latency);
      break;
    case PROP_LAST_GFLOPS:
      g_value_set_double (value, self->last_gflops);
      break;
    case PROP_LAST_BUDGET:
      g_value_set_double (value, self->last_budget);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* ---- Resources ---- */

static void
gst_mone_filter_reset_stream (GstMoneFilter * self)
{
  self->frames_in_input = 0;
  self->frames_since_result = 0;
  g_clear_pointer (&self->last_result, gst_structure_free);
}

static gboolean
gst_mone_filter_start (GstBaseTransform * trans)
{
  GstMoneFilter *self = GST_MONE_FILTER (trans);
  GError *error = NULL;
  gchar *path;
  gint threads;
  const MoneConfig *config;
  gchar **labels;
  GStatBuf st;
  int stat_errno = 0;

  GST_OBJECT_LOCK (self);
  path = g_strdup (self->model_path);
  threads = self->threads;
  GST_OBJECT_UNLOCK (self);

  if (!path || !*path)
    goto no_path;
  if (g_stat (path, &st) != 0) {
    stat_errno = errno;
    goto not_found;
  }

  self->model = model_cache_acquire (path, &self->model_cache_key, &error);
  if (!self->model)
    goto load_failed;
  config = mone_model_get_config (self->model);
  if (config->channels != 1 && config->channels != 3)
    goto bad_channels;

  /* More threads than cores only wait on each other at every fork-join of the engine. */
  if (threads > (gint) g_get_num_processors ()) {
    GST_INFO_OBJECT (self, "threads=%d capped at the %u cores", threads, g_get_num_processors ());
    threads = (gint) g_get_num_processors ();
  }
  self->context = mone_context_new (self->model, threads, &error);
  if (!self->context)
    goto context_failed;
  self->controller = mone_budget_controller_new (mone_model_min_budget (self->model));
  self->model_width = config->width;
  self->model_height = config->height;
  self->model_channels = config->channels;
  self->model_frames = config->frames;
  self->input = g_new0 (float, (gsize) config->frames * config->channels * config->height *
      config->width);
  self->top_scratch = g_new (gint, config->classes);
  self->frame_count = 0;
  gst_mone_filter_reset_stream (self);

  labels = g_new0 (gchar *, config->classes + 1);
  for (int k = 0; k < config->classes; k++)
    labels[k] = g_strdup (mone_model_get_label (self->model, k));

  GST_OBJECT_LOCK (self);
  g_strfreev (self->labels);
  self->labels = labels;
  self->min_budget = mone_model_min_budget (self->model);
  self->last_latency = 0;
  self->last_gflops = 0;
  self->last_budget = 0;
  self->qos_pending = FALSE;
  self->qos_seen = FALSE;
  self->pipeline_latency = GST_CLOCK_TIME_NONE;
  GST_OBJECT_UNLOCK (self);

  GST_INFO_OBJECT (self, "model %s: %dx%dx%d, %d frame(s), %d classes, %d experts, %d threads",
      path, config->width, config->height, config->channels, config->frames, config->classes,
      config->experts, mone_context_get_threads (self->context));
  g_free (path);
  return TRUE;

no_path:
  GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND, ("No MoNE model file given."),
      ("set the model property or MONE_MODEL"));
  g_free (path);
  return FALSE;
not_found:
  if (stat_errno == ENOENT)
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND, ("Could not load MoNE model \"%s\": %s.", path,
            g_strerror (stat_errno)), ("%s: %s", path, g_strerror (stat_errno)));
  else
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ, ("Could not load MoNE model \"%s\": %s.", path,
            g_strerror (stat_errno)), ("%s: %s", path, g_strerror (stat_errno)));
  g_free (path);
  return FALSE;
load_failed:
  /* The loader's messages start with the path; the user-facing text names it once. */
  if (g_error_matches (error, MONE_ERROR, MONE_ERROR_IO))
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ, ("Could not load MoNE model %s", error->message),
        ("%s", error->message));
  else
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED, ("Could not load MoNE model %s", error->message),
        ("%s", error->message));
  g_clear_error (&error);
  g_free (path);
  return FALSE;
bad_channels:
  GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
      ("Could not use MoNE model \"%s\": %d input channels (monefilter feeds 1 or 3).", path,
          config->channels), (NULL));
  gst_mone_filter_stop (trans);
  g_free (path);
  return FALSE;
context_failed:
  GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
      ("Could not prepare MoNE model \"%s\": %s", path, error->message), (NULL));
  g_clear_error (&error);
  gst_mone_filter_stop (trans);
  g_free (path);
  return FALSE;
}

static gboolean
gst_mone_filter_stop (GstBaseTransform * trans)
{
  GstMoneFilter *self = GST_MONE_FILTER (trans);

  gst_mone_filter_reset_stream (self);
  GST_OBJECT_LOCK (self);
  self->frame_duration = GST_CLOCK_TIME_NONE;
  GST_OBJECT_UNLOCK (self);
  g_clear_pointer (&self->converter, gst_video_converter_free);
  gst_clear_buffer (&self->model_buffer);
  gst_clear_buffer (&self->tiny_copy);
  g_clear_pointer (&self->controller, mone_budget_controller_free);
  g_clear_pointer (&self->context, mone_context_free);
  g_clear_pointer (&self->input, g_free);
  g_clear_pointer (&self->top_scratch, g_free);
  if (self->model) {
    model_cache_release (self->model, self->model_cache_key);
    self->model = NULL;
    self->model_cache_key = NULL;
  }
  return TRUE;
}

/* ---- Events ---- */

static gboolean
gst_mone_filter_src_event (GstBaseTransform * trans, GstEvent * event)
{
  GstMoneFilter *self = GST_MONE_FILTER (trans);

  if (GST_EVENT_TYPE (event) == GST_EVENT_QOS) {
    GstQOSType type;
    gdouble proportion;
    GstClockTimeDiff diff;
    GstClockTime timestamp;

    gst_event_parse_qos (event, &type, &proportion, &diff, &timestamp);
    /* The controller belongs to the streaming thread; hand the event over. */
    GST_OBJECT_LOCK (self);
    self->qos_pending = TRUE;
    self->qos_seen = TRUE;
    self->qos_proportion = proportion;
    self->qos_jitter = diff;
    GST_OBJECT_UNLOCK (self);
    GST_LOG_OBJECT (self, "QoS proportion %f jitter %" G_GINT64_FORMAT, proportion, diff);
  } else if (GST_EVENT_TYPE (event) == GST_EVENT_LATENCY) {
    /* Sinks forward the pipeline latency upstream so that elements can tell when their data will
     * be rendered: render clock time = base time + running time + latency. */
    GstClockTime latency;

    gst_event_parse_latency (event, &latency);
    GST_OBJECT_LOCK (self);
    self->pipeline_latency = latency;
    GST_OBJECT_UNLOCK (self);
    GST_DEBUG_OBJECT (self, "pipeline latency %" GST_TIME_FORMAT, GST_TIME_ARGS (latency));
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->src_event (trans, event);
}

static gboolean
gst_mone_filter_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstMoneFilter *self = GST_MONE_FILTER (trans);

  /* The frame window and the last result belong to the picture before: after a flush (seek), at
   * a new stream (gapless playback, concat) and across a gap (frames missing: a video model's
   * window would join pictures that are not consecutive). Buffers flagged DISCONT are handled in
   * transform_frame_ip. All are serialised, so this runs in the streaming thread's turn. */
  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_FLUSH_STOP:
      /* QoS described the old position: drop a pending event and the deadline tightening, as
       * GstBaseTransform resets its own QoS here (the learned latency model stays). */
      GST_OBJECT_LOCK (self);
      self->qos_pending = FALSE;
      GST_OBJECT_UNLOCK (self);
      if (self->controller)
        mone_budget_controller_flush (self->controller);
      /* fall through */
    case GST_EVENT_STREAM_START:
    case GST_EVENT_GAP:
      GST_DEBUG_OBJECT (self, "%s: frame window and last result reset",
          GST_EVENT_TYPE_NAME (event));
      gst_mone_filter_reset_stream (self);
      break;
    default:
      break;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

/* LATENCY on the src pad: upstream's latency plus the element's own (see the section comment).
 * Added to both bounds like a video encoder's latency: the frame leaves the element up to that
 * much later, and the element holds no further buffers. Everything else: GstBaseTransform. */
static gboolean
gst_mone_filter_query (GstBaseTransform * trans, GstPadDirection direction, GstQuery * query)
{
  GstMoneFilter *self = GST_MONE_FILTER (trans);
  gboolean live;
  GstClockTime min, max, own;

  if (direction != GST_PAD_SRC || GST_QUERY_TYPE (query) != GST_QUERY_LATENCY)
    return GST_BASE_TRANSFORM_CLASS (parent_class)->query (trans, direction, query);

  if (!gst_pad_peer_query (GST_BASE_TRANSFORM_SINK_PAD (trans), query))
    return FALSE;
  gst_query_parse_latency (query, &live, &min, &max);
  GST_OBJECT_LOCK (self);
  own = gst_mone_filter_own_latency_locked (self);
  GST_OBJECT_UNLOCK (self);
  /* Upstream may report huge values; saturate rather than wrap. */
  min = min > G_MAXUINT64 - 1 - own ? G_MAXUINT64 - 1 : min + own;
  if (GST_CLOCK_TIME_IS_VALID (max))
    max = max > G_MAXUINT64 - 1 - own ? G_MAXUINT64 - 1 : max + own;
  GST_DEBUG_OBJECT (self, "latency: live %d, own %" GST_TIME_FORMAT ", total min %"
      GST_TIME_FORMAT " max %" GST_TIME_FORMAT, live, GST_TIME_ARGS (own), GST_TIME_ARGS (min),
      GST_TIME_ARGS (max));
  gst_query_set_latency (query, live, min, max);
  return TRUE;
}

/* In passthrough the input buffer goes downstream; only the meta is added. A buffer someone else
 * still holds gets a new GstBuffer sharing the same memory (pixels are neither copied nor mapped
 * for writing). */
static GstFlowReturn
gst_mone_filter_prepare_output_buffer (GstBaseTransform * trans, GstBuffer * input,
    GstBuffer ** outbuf)
{
  if (gst_buffer_is_writable (input))
    *outbuf = input;
  else
    *outbuf = gst_buffer_copy (input);
  return *outbuf ? GST_FLOW_OK : GST_FLOW_ERROR;
}

/* ---- Negotiation ---- */

/* Places the frame into the model input per scale-mode and builds the converter for it. */
static gboolean
gst_mone_filter_setup_converter (GstMoneFilter * self, const GstVideoInfo * in_info,
    GstMoneFilterScaleMode mode)
{
  gint in_w = GST_VIDEO_INFO_WIDTH (in_info), in_h = GST_VIDEO_INFO_HEIGHT (in_info);
  gint out_w = self->model_width, out_h = self->model_height;
  gint par_n = MAX (GST_VIDEO_INFO_PAR_N (in_info), 1), par_d = MAX (GST_VIDEO_INFO_PAR_D (in_info), 1);
  /* Display aspect of the frame and of the model input. */
  gdouble in_aspect = (gdouble) in_w * par_n / ((gdouble) in_h * par_d);
  gdouble out_aspect = (gdouble) out_w / out_h;
  gint src_x = 0, src_y = 0, src_w = in_w, src_h = in_h;
  gint dest_x = 0, dest_y = 0, dest_w = out_w, dest_h = out_h;
  GstVideoConverter *converter;
  GstStructure *options;

  if (mode == GST_MONE_FILTER_SCALE_MODE_LETTERBOX) {
    if (in_aspect > out_aspect)
      dest_h = CLAMP ((gint) (out_w / in_aspect + 0.5), 1, out_h);
    else
      dest_w = CLAMP ((gint) (out_h * in_aspect + 0.5), 1, out_w);
    dest_x = (out_w - dest_w) / 2;
    dest_y = (out_h - dest_h) / 2;
  } else if (mode == GST_MONE_FILTER_SCALE_MODE_CROP) {
    if (in_aspect > out_aspect)
      src_w = CLAMP ((gint) (in_w * out_aspect / in_aspect + 0.5), 1, in_w);
    else
      src_h = CLAMP ((gint) (in_h * in_aspect / out_aspect + 0.5), 1, in_h);
    src_x = (in_w - src_w) / 2;
    src_y = (in_h - src_h) / 2;
  }

  options = gst_structure_new ("GstVideoConverter",
      GST_VIDEO_CONVERTER_OPT_SRC_X, G_TYPE_INT, src_x,
      GST_VIDEO_CONVERTER_OPT_SRC_Y, G_TYPE_INT, src_y,
      GST_VIDEO_CONVERTER_OPT_SRC_WIDTH, G_TYPE_INT, src_w,
      GST_VIDEO_CONVERTER_OPT_SRC_HEIGHT, G_TYPE_INT, src_h,
      GST_VIDEO_CONVERTER_OPT_DEST_X, G_TYPE_INT, dest_x,
      GST_VIDEO_CONVERTER_OPT_DEST_Y, G_TYPE_INT, dest_y,
      GST_VIDEO_CONVERTER_OPT_DEST_WIDTH, G_TYPE_INT, dest_w,
      GST_VIDEO_CONVERTER_OPT_DEST_HEIGHT, G_TYPE_INT, dest_h,
      GST_VIDEO_CONVERTER_OPT_FILL_BORDER, G_TYPE_BOOLEAN, TRUE,
      GST_VIDEO_CONVERTER_OPT_BORDER_ARGB, G_TYPE_UINT, 0xff000000u,
      GST_VIDEO_CONVERTER_OPT_DITHER_METHOD, GST_TYPE_VIDEO_DITHER_METHOD,
      GST_VIDEO_DITHER_NONE,
      /* Bilinear (widened for downscaling) costs ~2/3 of the default cubic and is all a
       * classifier needs: 640x480 I420 -> 224x224 RGB takes ~2 ms on one core. */
      GST_VIDEO_CONVERTER_OPT_RESAMPLER_METHOD, GST_TYPE_VIDEO_RESAMPLER_METHOD,
      GST_VIDEO_RESAMPLER_METHOD_LINEAR,
      /* Fixed taps: the default widens the filter with the scale factor and blurs a large
       * downscale far beyond the plain resize the models are trained on (cost 2 points of
       * end-to-end accuracy, tests/pipelines/test-accuracy.c), and is 10x slower. */
      GST_VIDEO_CONVERTER_OPT_RESAMPLER_TAPS, G_TYPE_UINT, 4,
      GST_VIDEO_CONVERTER_OPT_CHROMA_RESAMPLER_METHOD, GST_TYPE_VIDEO_RESAMPLER_METHOD,
      GST_VIDEO_RESAMPLER_METHOD_LINEAR,
      /* Conversion and inference run one after the other: the engine's cores are free. */
      GST_VIDEO_CONVERTER_OPT_THREADS, G_TYPE_UINT,
      (guint) MAX (1, mone_context_get_threads (self->context)), NULL);
  converter = gst_video_converter_new ((GstVideoInfo *) in_info, &self->model_info, options);
  if (!converter)
    return FALSE;

  g_clear_pointer (&self->converter, gst_video_converter_free);
  self->converter = converter;
  self->converter_scale_mode = mode;
  self->content_x = src_x;
  self->content_y = src_y;
  self->content_width = src_w;
  self->content_height = src_h;
  self->region_x = dest_x;
  self->region_y = dest_y;
  self->region_width = dest_w;
  self->region_height = dest_h;
  GST_DEBUG_OBJECT (self, "%s: frame %dx%d region %d,%d %dx%d -> model %d,%d %dx%d of %dx%d",
      scale_mode_nick (mode), in_w, in_h, src_x, src_y, src_w, src_h, dest_x, dest_y, dest_w,
      dest_h, out_w, out_h);
  return TRUE;
}

static gboolean
gst_mone_filter_set_info (GstVideoFilter * filter, GstCaps * incaps, GstVideoInfo * in_info,
    GstCaps * outcaps, GstVideoInfo * out_info)
{
  GstMoneFilter *self = GST_MONE_FILTER (filter);
  GstMoneFilterScaleMode mode;
  GstClockTime latency_before, latency_after;

  if (!self->model)
    return FALSE;

  GST_OBJECT_LOCK (self);
  mode = self->settings.scale_mode;
  GST_OBJECT_UNLOCK (self);

  gst_video_info_set_format (&self->model_info,
      self->model_channels == 1 ? GST_VIDEO_FORMAT_GRAY8 : GST_VIDEO_FORMAT_RGB,
      self->model_width, self->model_height);
  /* Grey models from YUV: the converter copies Y into GRAY8 (GStreamer 1.22 does so even when
   * told the ranges differ), so the model input is declared in the source's range, making that
   * copy exact by definition, and limited range (16-235, what decoders and cameras deliver) is
   * expanded when the bytes become floats. Without it the shipped grey model loses 3 points on the
   * sample video (the four-expert one shipped before it 10). (Converting through RGB also expands
   * it, but cost 13% of the element's frame rate on the four-expert model:
   * bench/element-vs-engine.sh.) */
  self->luma_limited_range = FALSE;
  if (self->model_channels == 1 && GST_VIDEO_INFO_IS_YUV (in_info)) {
    self->model_info.colorimetry.range = in_info->colorimetry.range;
    self->luma_limited_range = in_info->colorimetry.range == GST_VIDEO_COLOR_RANGE_16_235;
  }
  /* GstVideoConverter converts pictures, not timing: it wants both sides to agree on these. */
  GST_VIDEO_INFO_FPS_N (&self->model_info) = GST_VIDEO_INFO_FPS_N (in_info);
  GST_VIDEO_INFO_FPS_D (&self->model_info) = GST_VIDEO_INFO_FPS_D (in_info);
  GST_VIDEO_INFO_INTERLACE_MODE (&self->model_info) = GST_VIDEO_INFO_INTERLACE_MODE (in_info);
  gst_clear_buffer (&self->model_buffer);
  self->model_buffer = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (&self->model_info),
      NULL);
  if (!gst_mone_filter_setup_converter (self, in_info, mode))
    goto no_converter;
  /* GStreamer 1.22's converter keeps pointers to source lines between frames for some tiny
   * frames (ARGB 1x3, found with valgrind): frames that small are converted from a copy that
   * stays at one address. */
  gst_clear_buffer (&self->tiny_copy);
  if (GST_VIDEO_INFO_WIDTH (in_info) < 8 || GST_VIDEO_INFO_HEIGHT (in_info) < 8)
  {
    /* Zeroed: the converter also reads the row padding of such frames. */
    self->tiny_copy = gst_buffer_new_allocate (NULL, GST_VIDEO_INFO_SIZE (in_info), NULL);
    gst_buffer_memset (self->tiny_copy, 0, 0, GST_VIDEO_INFO_SIZE (in_info));
  }

  GST_OBJECT_LOCK (self);
  latency_before = gst_mone_filter_own_latency_locked (self);
  if (GST_VIDEO_INFO_FPS_N (in_info) > 0 && GST_VIDEO_INFO_FPS_D (in_info) > 0)
    self->frame_duration = gst_util_uint64_scale_int (GST_SECOND,
        GST_VIDEO_INFO_FPS_D (in_info), GST_VIDEO_INFO_FPS_N (in_info));
  else
    self->frame_duration = GST_CLOCK_TIME_NONE;
  latency_after = gst_mone_filter_own_latency_locked (self);
  GST_OBJECT_UNLOCK (self);
  gst_mone_filter_latency_changed (self, latency_before, latency_after);
  /* A new format means new picture content: start the frame window afresh. */
  gst_mone_filter_reset_stream (self);
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), TRUE);
  return TRUE;

no_converter:
  GST_WARNING_OBJECT (self, "no conversion from %" GST_PTR_FORMAT " to the model input", incaps);
  return FALSE;
}

/* ---- Processing ---- */

static gint64
monotonic_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64) ts.tv_sec * GST_SECOND + ts.tv_nsec;
}

/* Converts the frame to the model size and appends it, as floats in [0,1] (C, H, W), to the frame
 * window; the first frame of a stream fills every slot so that a video model answers at once. */
static void
gst_mone_filter_convert_frame (GstMoneFilter * self, GstVideoFrame * frame)
{
  GstVideoFrame model_frame;
  const gint w = self->model_width, h = self->model_height, c = self->model_channels;
  const gsize slot = (gsize) c * h * w;
  float *dest;

  if (!gst_video_frame_map (&model_frame, &self->model_info, self->model_buffer, GST_MAP_WRITE))
    return;
  if (self->tiny_copy) {
    GstVideoFrame copy;
    /* Mapped with the caps' default strides (what tiny_copy was sized for), not the upstream
     * buffer's own, which a GstVideoMeta may make far larger; the copy handles the difference. */
    if (gst_video_frame_map (&copy, &GST_VIDEO_FILTER (self)->in_info, self->tiny_copy,
            GST_MAP_WRITE)) {
      gst_video_frame_copy (&copy, frame);
      gst_video_converter_frame (self->converter, &copy, &model_frame);
      gst_video_frame_unmap (&copy);
    }
  } else {
    gst_video_converter_frame (self->converter, frame, &model_frame);
  }

  if (self->model_frames > 1 && self->frames_in_input > 0)
    memmove (self->input, self->input + slot, slot * (self->model_frames - 1) * sizeof (float));
  dest = self->input + slot * (self->model_frames - 1);

  const guint8 *pixels = GST_VIDEO_FRAME_PLANE_DATA (&model_frame, 0);
  const gint stride = GST_VIDEO_FRAME_PLANE_STRIDE (&model_frame, 0);
  /* Bytes to [0,1]: full range v / 255; limited-range luma (v - 16) / 219, clamped. */
  for (gint y = 0; y < h; y++) {
    const guint8 *row = pixels + (gsize) y * stride;
    if (self->luma_limited_range) {
      for (gint x = 0; x < w; x++)
        dest[(gsize) y * w + x] = CLAMP ((row[x] - 16.0f) * (1.0f / 219.0f), 0.0f, 1.0f);
    } else {
      for (gint x = 0; x < w; x++)
        for (gint ch = 0; ch < c; ch++)
          dest[((gsize) ch * h + y) * w + x] = row[x * c + ch] * (1.0f / 255.0f);
    }
  }
  gst_video_frame_unmap (&model_frame);

  if (self->frames_in_input == 0)
    for (gint t = 0; t < self->model_frames - 1; t++)
      memcpy (self->input + slot * t, dest, slot * sizeof (float));
  self->frames_in_input++;
}

/* Indices of the k largest probabilities, best first (ties: lower index first). */
static guint
select_top_k (const float *probs, gint classes, guint k, gint * out)
{
  guint n = 0;

  k = MIN (k, (guint) classes);
  for (gint c = 0; c < classes; c++) {
    if (n == k && probs[c] <= probs[out[n - 1]])
      continue;
    guint i = n < k ? n++ : n - 1;
    while (i > 0 && probs[c] > probs[out[i - 1]]) {
      out[i] = out[i - 1];
      i--;
    }
    out[i] = c;
  }
  return n;
}

static GstStructure *
gst_mone_filter_result_structure (GstMoneFilter * self, const MoneResult * result,
    const Settings * settings, double budget_requested, gint64 latency_ns)
{
  const MoneConfig *config = mone_model_get_config (self->model);
  MoneClassification c;
  GstStructure *s;

  gst_mone_classification_init (&c);
  c.frame = c.result_frame = self->frame_count;
  c.top_class = result->top_class;
  c.label = mone_model_get_label (self->model, result->top_class);
  c.top_score = result->probs[result->top_class];
  c.top_k = select_top_k (result->probs, config->classes, settings->top_k, self->top_scratch);
  for (guint i = 0; i < c.top_k; i++) {
    c.top_classes[i] = self->top_scratch[i];
    c.top_labels[i] = mone_model_get_label (self->model, self->top_scratch[i]);
    c.top_scores[i] = result->probs[self->top_scratch[i]];
  }
  c.budget_auto = settings->budget_mode == GST_MONE_FILTER_BUDGET_MODE_AUTO;
  c.budget_requested = budget_requested;
  c.budget_used = result->budget_used;
  c.gflops = result->flops * 1e-9;
  c.latency_ns = latency_ns;
  c.latency_ms = latency_ns * 1e-6;
  c.experts = result->experts;
  c.tokens = result->tokens;
  for (gint j = 0; j < result->experts && j < MONE_MAX_EXPERTS; j++)
    c.tokens_per_expert[j] = result->tokens_per_expert[j];
  c.grid_width = config->grid_width;
  c.grid_height = config->grid_height;
  c.grid_slices = config->tokens / MAX (config->grid_width * config->grid_height, 1);
  c.expert_grid = result->expert_of_token;
  c.expert_grid_size = result->tokens;
  c.scale_mode = scale_mode_nick (self->converter_scale_mode);
  c.content_x = self->content_x;
  c.content_y = self->content_y;
  c.content_width = self->content_width;
  c.content_height = self->content_height;
  c.model_x = self->region_x;
  c.model_y = self->region_y;
  c.model_width = self->region_width;
  c.model_height = self->region_height;
  c.model_input_width = self->model_width;
  c.model_input_height = self->model_height;
  s = gst_mone_classification_to_structure (&c);
  /* Not in MoneClassification (its size is the library's ABI): the structure only. */
  gst_structure_set (s,
      "frame-width", G_TYPE_INT, GST_VIDEO_INFO_WIDTH (&GST_VIDEO_FILTER (self)->in_info),
      "frame-height", G_TYPE_INT, GST_VIDEO_INFO_HEIGHT (&GST_VIDEO_FILTER (self)->in_info),
      "window-frames", G_TYPE_INT, config->frames,
      "frames-per-slice", G_TYPE_INT, config->tubelet,
      "window-filled", G_TYPE_INT, (gint) MIN (self->frames_in_input, (guint) config->frames),
      NULL);
  return s;
}

#if HAVE_GST_ANALYTICS
/* GStreamer >= 1.24: the same top-k as a GstAnalyticsClsMtd for analytics-aware elements. */
static void
add_analytics_classification (GstBuffer * buffer, const GstStructure * s)
{
  MoneClassification c;
  gfloat confidences[GST_MONE_META_MAX_TOP_K];
  GQuark quarks[GST_MONE_META_MAX_TOP_K];
  GstAnalyticsRelationMeta *relations;
  GstAnalyticsClsMtd mtd;

  if (!gst_mone_classification_from_structure (s, &c) || c.top_k == 0)
    return;
  for (guint i = 0; i < c.top_k; i++) {
    confidences[i] = c.top_scores[i];
    quarks[i] = g_quark_from_string (c.top_labels[i]);
  }
  relations = (GstAnalyticsRelationMeta *) gst_buffer_get_meta (buffer,
      GST_ANALYTICS_RELATION_META_API_TYPE);
  if (!relations)
    relations = gst_buffer_add_analytics_relation_meta (buffer);
  if (relations)
    gst_analytics_relation_meta_add_cls_mtd (relations, c.top_k, confidences, quarks, &mtd);
}
#endif

/* Per-frame deadline of budget-mode=auto: max-latency, else the frame duration from the caps,
 * else the buffer's duration. */
static gint64
gst_mone_filter_auto_deadline (GstMoneFilter * self, const Settings * settings,
    GstBuffer * buffer)
{
  GstClockTime deadline = gst_mone_filter_configured_deadline (self, settings);

  if (!GST_CLOCK_TIME_IS_VALID (deadline) || deadline == 0)
    deadline = GST_BUFFER_DURATION_IS_VALID (buffer) && GST_BUFFER_DURATION (buffer) > 0
        ? GST_BUFFER_DURATION (buffer) : FALLBACK_FRAME_DURATION;
  return (gint64) MIN (deadline, (GstClockTime) G_MAXINT64);
}

/* When even the minimum budget is predicted to miss the deadline (a loaded machine, a stream
 * faster than the model), lowering the budget cannot keep up: classify only every Nth frame so
 * the inference time per frame fits again, and let the frames between carry the latest result
 * (flagged reused) rather than fall behind. 1 when the minimum fits. */
static guint
gst_mone_filter_overload_interval (GstMoneFilter * self, gint64 deadline)
{
  MoneBudgetModel latency_model;
  gint64 predicted = mone_budget_controller_predict (self->controller,
      mone_model_min_budget (self->model));

  if (predicted <= 0 || deadline <= 0)
    return 1;
  mone_budget_controller_get_model (self->controller, &latency_model);
  gdouble needed = predicted * (1.0 + latency_model.margin) / (gdouble) deadline;
  return needed <= 1.0 ? 1 : (guint) MIN (ceil (needed), MAX_OVERLOAD_INTERVAL);
}

/* Time left in ns until the frame at `running_time` is due at the sink, when that is known: while
 * PLAYING, with a clock, a pipeline latency from downstream and a sink that reports lateness (QoS).
 * In a pipeline without a queue the sink holds the streaming thread until the previous frame's
 * render time, so this is the frame duration less however late the previous frame was: when a
 * frame overruns (a CPU hog starting), the next one gets less time rather than inheriting the
 * delay. Downstream elements' processing time is not known here and not subtracted. */
static gboolean
gst_mone_filter_time_to_render (GstMoneFilter * self, GstClockTime running_time,
    gint64 * time_left)
{
  GstClock *clock = NULL;
  GstClockTime base_time = 0, latency = 0, now;

  if (!GST_CLOCK_TIME_IS_VALID (running_time))
    return FALSE;
  GST_OBJECT_LOCK (self);
  if (GST_STATE (self) == GST_STATE_PLAYING && self->qos_seen
      && GST_CLOCK_TIME_IS_VALID (self->pipeline_latency) && GST_ELEMENT_CLOCK (self)) {
    clock = gst_object_ref (GST_ELEMENT_CLOCK (self));
    base_time = GST_ELEMENT_CAST (self)->base_time;
    latency = self->pipeline_latency;
  }
  GST_OBJECT_UNLOCK (self);
  if (!clock)
    return FALSE;
  now = gst_clock_get_time (clock);
  gst_object_unref (clock);
  *time_left = GST_CLOCK_DIFF (now, base_time + running_time + latency);
  return TRUE;
}

static GstFlowReturn
gst_mone_filter_transform_frame_ip (GstVideoFilter * filter, GstVideoFrame * frame)
{
  GstMoneFilter *self = GST_MONE_FILTER (filter);
  GstBaseTransform *trans = GST_BASE_TRANSFORM (filter);
  GstBuffer *buffer = frame->buffer;
  GstClockTime timestamp = GST_BUFFER_PTS (buffer);
  GstClockTime stream_time = GST_CLOCK_TIME_NONE, running_time = GST_CLOCK_TIME_NONE;
  Settings settings;
  gboolean qos_pending, fresh;
  guint interval;
  gint64 deadline = 0, frame_deadline = 0, time_left;
  gdouble qos_proportion = 1.0;
  gint64 qos_jitter = 0;
  GstStructure *posted = NULL;
  GstCustomMeta *meta;
  GstStructure *meta_structure;
  GError *error = NULL;

  /* A discontinuity (frames lost, a non-flushing seek, a source restarting): like a flush, the
   * window must not join pictures from both sides, nor may a result from before be reused after. */
  if (GST_BUFFER_IS_DISCONT (buffer) && (self->frames_in_input > 0 || self->last_result)) {
    GST_DEBUG_OBJECT (self, "discontinuity at %" GST_TIME_FORMAT ": frame window and last result "
        "reset", GST_TIME_ARGS (timestamp));
    gst_mone_filter_reset_stream (self);
  }

  if (GST_CLOCK_TIME_IS_VALID (timestamp)) {
    stream_time = gst_segment_to_stream_time (&trans->segment, GST_FORMAT_TIME, timestamp);
    running_time = gst_segment_to_running_time (&trans->segment, GST_FORMAT_TIME, timestamp);
    /* Controlled properties (budget, interval) take their value for this frame. */
    if (GST_CLOCK_TIME_IS_VALID (stream_time))
      gst_object_sync_values (GST_OBJECT (self), stream_time);
  }

  GST_OBJECT_LOCK (self);
  settings = self->settings;
  qos_pending = self->qos_pending;
  if (qos_pending) {
    qos_proportion = self->qos_proportion;
    qos_jitter = self->qos_jitter;
    self->qos_pending = FALSE;
  }
  GST_OBJECT_UNLOCK (self);

  if (qos_pending)
    mone_budget_controller_qos (self->controller, qos_proportion, qos_jitter);
  if (settings.scale_mode != self->converter_scale_mode
      && !gst_mone_filter_setup_converter (self, &filter->in_info, settings.scale_mode))
    goto no_converter;

  interval = settings.interval;
  if (settings.budget_mode == GST_MONE_FILTER_BUDGET_MODE_AUTO) {
    /* deadline: the time per frame the stream allows (what the element can sustain);
     * frame_deadline: what this frame has left before it is due at the sink, never more. */
    deadline = frame_deadline = gst_mone_filter_auto_deadline (self, &settings, buffer);
    interval = MAX (interval, gst_mone_filter_overload_interval (self, deadline));
    if (gst_mone_filter_time_to_render (self, running_time, &time_left))
      frame_deadline = MIN (frame_deadline, time_left);
  }
  fresh = !self->last_result || self->frames_since_result + 1 >= interval;
  /* Behind schedule (an earlier frame overran): when even the minimum budget would make this frame
   * late although it fits a full frame's time, reuse the latest result for this frame and so catch
   * up at once, instead of passing the delay on from frame to frame. Sustained overload is the
   * interval's business (above); this only ever skips a frame after a short one. */
  if (fresh && self->last_result && frame_deadline < deadline && interval == 1
      && self->frames_since_result + 1 < MAX_OVERLOAD_INTERVAL
      && (frame_deadline <= 0 || gst_mone_filter_overload_interval (self, frame_deadline) > 1)) {
    GST_LOG_OBJECT (self, "frame %" G_GUINT64_FORMAT ": %.2f ms left, reusing the last result",
        self->frame_count, frame_deadline * 1e-6);
    fresh = FALSE;
  }
  /* A video model sees every frame of its window, classified or not. */
  if (fresh || self->model_frames > 1) {
    gint64 start = monotonic_ns ();
    gst_mone_filter_convert_frame (self, frame);
    self->frames_since_result++;
    if (fresh) {
      gdouble budget = settings.budget;
      MoneResult result;

      if (settings.budget_mode == GST_MONE_FILTER_BUDGET_MODE_AUTO)
        budget = mone_budget_controller_choose (self->controller, settings.budget,
            MAX (frame_deadline, 1));
      if (!mone_context_run (self->context, self->input, budget, &result, &error))
        goto run_failed;
      gint64 latency = monotonic_ns () - start;
      if (settings.budget_mode == GST_MONE_FILTER_BUDGET_MODE_AUTO)
        mone_budget_controller_observe (self->controller, result.budget_used, latency);

      g_clear_pointer (&self->last_result, gst_structure_free);
      self->last_result = gst_mone_filter_result_structure (self, &result, &settings, budget,
          latency);
      self->frames_since_result = 0;

      GST_OBJECT_LOCK (self);
      self->last_latency = latency;
      self->last_gflops = result.flops * 1e-9;
      self->last_budget = result.budget_used;
      GST_OBJECT_UNLOCK (self);
      GST_LOG_OBJECT (self, "frame %" G_GUINT64_FORMAT ": class %d (%.3f), budget %.3f -> %.3f, "
          "%.4f GFLOPs, %.3f ms", self->frame_count, result.top_class,
          result.probs[result.top_class], budget, result.budget_used, result.flops * 1e-9,
          latency * 1e-6);
    }
  } else {
    self->frames_since_result++;
  }

  meta = gst_buffer_add_mone_meta (buffer, self->last_result);
  if (!meta)
    goto no_meta;
  meta_structure = gst_custom_meta_get_structure (meta);
  gst_structure_set (meta_structure,
      "frame", G_TYPE_UINT64, self->frame_count,
      "reused", G_TYPE_BOOLEAN, !fresh,
      "timestamp", G_TYPE_UINT64, timestamp,
      "stream-time", G_TYPE_UINT64, stream_time,
      "running-time", G_TYPE_UINT64, running_time,
      "duration", G_TYPE_UINT64, GST_BUFFER_DURATION (buffer), NULL);
#if HAVE_GST_ANALYTICS
  add_analytics_classification (buffer, meta_structure);
#endif
  if (settings.post_messages) {
    posted = gst_structure_copy (meta_structure);
    gst_structure_set_name (posted, GST_MONE_CLASSIFICATION_NAME);
  }
  self->frame_count++;

  if (posted)
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_element (GST_OBJECT (self), posted));
  return GST_FLOW_OK;

no_converter:
  GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
      ("cannot convert %s %dx%d to the model input with scale-mode %s",
          gst_video_format_to_string (GST_VIDEO_INFO_FORMAT (&filter->in_info)),
          GST_VIDEO_INFO_WIDTH (&filter->in_info), GST_VIDEO_INFO_HEIGHT (&filter->in_info),
          scale_mode_nick (settings.scale_mode)));
  return GST_FLOW_NOT_NEGOTIATED;
run_failed:
  GST_ELEMENT_ERROR (self, STREAM, FAILED, ("MoNE inference failed: %s", error->message),
      (NULL));
  g_clear_error (&error);
  return GST_FLOW_ERROR;
no_meta:
  GST_ELEMENT_ERROR (self, CORE, FAILED, (NULL), ("could not attach the classification meta"));
  return GST_FLOW_ERROR;
}
