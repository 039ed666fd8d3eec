/* gst-mone: monefilter
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-monefilter
 * @title: monefilter
 *
 * Classifies video with a Mixture of Nested Experts (MoNE) vision transformer and attaches the
 * result to every buffer as a GstCustomMeta ("GstMoneMeta"; fields in
 * include/mone/gstmonemeta.h). The video itself passes through untouched and uncopied.
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
 * With #GstMoneFilter:inference-region=roi-list the element classifies each region of interest on
 * the frame (GstVideoRegionOfInterestMeta from a detector upstream, and from GStreamer 1.24 on
 * the object detections, GstAnalyticsODMtd, of its analytics relation meta) whose type
 * #GstMoneFilter:object-class lists, instead of the whole frame: each region clipped to the frame
 * and fitted to the model per #GstMoneFilter:scale-mode, its result added to the region meta as a
 * "mone-classification" parameter (to a detection as a GstAnalyticsClsMtd it relates to) and
 * listed in the buffer's meta. #GstMoneFilter:interval then
 * counts per region id, and auto mode shares the frame's deadline among the regions due on it.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 -m videotestsrc ! monefilter budget=0.5 message=true ! fakesink
 * gst-launch-1.0 filesrc location=video.webm ! decodebin ! videoconvert ! \
 *     monefilter model=fashion-mone.safetensors budget-mode=auto ! moneoverlay ! autovideosink
 * ... ! DETECTOR ! monefilter inference-region=roi-list object-class=item ! moneoverlay ! ...
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmonefilter.h"
#include "gstmonetsan.h"

#include <dlfcn.h>
#include <errno.h>
#include <glib/gstdio.h>
#include <time.h>

#include <mone/gstmonemeta.h>

/* The element is GObject, properties, caps, events and state; each frame goes through units of
 * its own: gstmonescheduler (classify this frame? at which budget?), gstmoneinput (frame to model
 * input), the engine (mone_context_run) and gstmoneresult (meta and message). Models come from
 * gstmonemodelcache, shared by elements playing the same file. */
#include "gstmoneinput.h"
#include "gstmonemodelcache.h"
#include "gstmoneregions.h"
#include "gstmoneresult.h"
#include "gstmonescheduler.h"

/* Shared with the element's helper units (gstmonemodelcache.c). */
GST_DEBUG_CATEGORY (gst_mone_filter_debug);
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
  PROP_INVALID_FRAMES,
  PROP_LAST_GFLOPS,
  PROP_LAST_BUDGET,
  PROP_INFERENCE_REGION,
  PROP_OBJECT_CLASS,
};

#define DEFAULT_BUDGET 1.0
#define DEFAULT_BUDGET_MODE GST_MONE_FILTER_BUDGET_MODE_FIXED
#define DEFAULT_MAX_LATENCY 0
#define DEFAULT_INTERVAL 1
#define DEFAULT_TOP_K 5
#define DEFAULT_THREADS 0
#define DEFAULT_MESSAGE FALSE
#define DEFAULT_SCALE_MODE GST_MONE_FILTER_SCALE_MODE_STRETCH
#define DEFAULT_INFERENCE_REGION GST_MONE_FILTER_INFERENCE_REGION_FULL_FRAME
/* Region types object-class can name. */
#define MAX_OBJECT_CLASSES 32
/* A frame deadline beyond a minute means nothing for live video, and the bound keeps the latency
 * the element adds in the LATENCY query far from overflowing. */
#define MAX_MAX_LATENCY (60 * GST_SECOND)

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
  GQuark object_classes[MAX_OBJECT_CLASSES];    /* region types to classify; none: all */
  guint n_object_classes;
} Settings;

/* Everything one frame is processed with: the settings, the QoS handed over from the src pad,
 * and the frame's times. Taken under the object lock, used outside it. */
typedef struct
{
  Settings settings;
  gboolean qos_pending;
  gdouble qos_proportion;
  gint64 qos_jitter;
  GstMoneSchedulerFrame timing;
  GstMoneFrameStamp stamp;
} Snapshot;

struct _GstMoneFilter
{
  GstVideoFilter parent;

  /* Properties and reported state, under the object lock. */
  gchar *model_path;
  gchar *object_class;          /* as set; parsed into settings.object_classes */
  Settings settings;
  gint threads;                 /* applied by start() */
  GstMoneFilterInferenceRegion inference_region;        /* applied by start() */
  gchar **labels;
  gdouble min_budget;
  guint64 last_latency;
  gdouble last_gflops;
  gdouble last_budget;
  guint64 invalid_frames;       /* frames whose logits were not finite, since start() */
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
  /* From the caps, or NONE; the LATENCY query reads it from other threads. */
  GstClockTime frame_duration;

  /* Between start() and stop(): used by the streaming thread only. */
  MoneModel *model;
  gchar *model_cache_key;       /* NULL when the model is not shared through the cache */
  MoneContext *context;
  GstMoneInput *input;          /* conversion and the frame window */
  GstMoneScheduler *scheduler;  /* which frames to classify, at which budget */
  /* inference-region as start() checked it against the model: a change while playing would
   * switch paths under a scheduler and a last result the other path keeps. */
  GstMoneFilterInferenceRegion active_region;
  guint64 frame_count;
  GstStructure *last_result;    /* the latest fresh result, reused between classified frames */
  /* inference-region=roi-list: each region's latest result, and the frame's results in order. */
  GstMoneRegions *regions;
  GPtrArray *region_results;    /* const GstStructure *, owned by `regions` */
  GPtrArray *region_entries;    /* const GstMoneRegion * of the same regions */
  gboolean invalid_warned;      /* a non-finite result was reported for this stream */
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
static void gst_mone_filter_before_transform (GstBaseTransform * trans, GstBuffer * buffer);
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

GType
gst_mone_filter_inference_region_get_type (void)
{
  static gsize type = 0;
  static const GEnumValue values[] = {
    {GST_MONE_FILTER_INFERENCE_REGION_FULL_FRAME, "Classify the whole frame", "full-frame"},
    {GST_MONE_FILTER_INFERENCE_REGION_ROI_LIST,
          "Classify each region of interest (GstVideoRegionOfInterestMeta, GstAnalyticsODMtd) "
          "on the frame",
        "roi-list"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstMoneFilterInferenceRegion", values));
  return (GType) type;
}

/* The shipped model as installed beside this plugin (libdir/gstreamer-1.0 -> datadir/gst-mone),
 * else at the configured prefix. */
static const gchar *
built_in_model_path (void)
{
  static gsize path = 0;

  if (g_once_init_enter (&path)) {
    gchar *chosen = NULL;
    Dl_info self;
    if (MONE_MODEL_FROM_PLUGIN_DIR[0] != '\0'
        && dladdr ((const void *) built_in_model_path, &self) && self.dli_fname) {
      gchar *plugin_dir = g_path_get_dirname (self.dli_fname);
      gchar *beside = g_build_filename (plugin_dir, MONE_MODEL_FROM_PLUGIN_DIR, NULL);
      if (g_file_test (beside, G_FILE_TEST_EXISTS))
        chosen = g_canonicalize_filename (beside, NULL);
      g_free (beside);
      g_free (plugin_dir);
    }
    g_once_init_leave (&path, (gsize) (chosen ? chosen : g_strdup (MONE_INSTALLED_MODEL)));
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

static void
gst_mone_filter_class_init (GstMoneFilterClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstVideoFilterClass *filter_class = GST_VIDEO_FILTER_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_mone_filter_debug, "monefilter", 0, "MoNE video classification");

  gobject_class->finalize = gst_mone_filter_finalize;
  gobject_class->set_property = gst_mone_filter_set_property;
  gobject_class->get_property = gst_mone_filter_get_property;

  g_object_class_install_property (gobject_class, PROP_MODEL,
      g_param_spec_string ("model", "Model",
          "Path of the MoNE model file (safetensors). Default: $MONE_MODEL when the element is "
          "created, else the model installed with the plugin (share/gst-mone)",
          built_in_model_path (),
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
          DEFAULT_MESSAGE, G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_SCALE_MODE,
      g_param_spec_enum ("scale-mode", "Scale mode",
          "How a frame is fitted to the model's input size",
          GST_TYPE_MONE_FILTER_SCALE_MODE, DEFAULT_SCALE_MODE,
          G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_INFERENCE_REGION,
      g_param_spec_enum ("inference-region", "Inference region",
          "full-frame: classify the whole frame; roi-list: classify each region of interest an "
          "upstream element put on the frame (GstVideoRegionOfInterestMeta; from GStreamer 1.24 "
          "also GstAnalyticsODMtd), each fitted to the model per scale-mode, the result added to "
          "the region (a detection: as a GstAnalyticsClsMtd it relates to) and listed in the meta. "
          "Needs an image model; applied when the element starts",
          GST_TYPE_MONE_FILTER_INFERENCE_REGION, DEFAULT_INFERENCE_REGION,
          G_PARAM_READWRITE | GST_PARAM_MUTABLE_READY | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_OBJECT_CLASS,
      g_param_spec_string ("object-class", "Object class",
          "inference-region=roi-list: comma-separated region types (roi_type, a detection's type, "
          "e.g. \"person,car\") to classify; empty: every region",
          NULL, G_PARAM_READWRITE | GST_PARAM_MUTABLE_PLAYING | G_PARAM_STATIC_STRINGS));
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
  g_object_class_install_property (gobject_class, PROP_INVALID_FRAMES,
      g_param_spec_uint64 ("invalid-frames", "Invalid frames",
          "Frames since start whose logits were NaN or infinite (the model overflowed): their meta "
          "says valid=false and carries no class", 0, G_MAXUINT64, 0,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
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
  trans_class->prepare_output_buffer = GST_DEBUG_FUNCPTR (gst_mone_filter_prepare_output_buffer);
  trans_class->before_transform = GST_DEBUG_FUNCPTR (gst_mone_filter_before_transform);
  /* The video is only read: passthrough, with transform_ip still called to add the meta. */
  trans_class->transform_ip_on_passthrough = TRUE;
  filter_class->set_info = GST_DEBUG_FUNCPTR (gst_mone_filter_set_info);
  filter_class->transform_frame_ip = GST_DEBUG_FUNCPTR (gst_mone_filter_transform_frame_ip);

  gst_type_mark_as_plugin_api (GST_TYPE_MONE_FILTER_BUDGET_MODE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_MONE_FILTER_SCALE_MODE, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_MONE_FILTER_INFERENCE_REGION, 0);
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
  self->inference_region = DEFAULT_INFERENCE_REGION;
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
  g_free (self->object_class);
  g_strfreev (self->labels);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

/* The auto-mode deadline the settings and caps give: max-latency, else the caps' frame duration,
 * else NONE. Per frame the scheduler falls back further, on the buffer's duration
 * (gst_mone_scheduler_frame_deadline); the LATENCY query has no buffer to ask. */
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

/* object-class into region types, called with the object lock held. */
static void
gst_mone_filter_parse_object_class (GstMoneFilter * self, const gchar * list)
{
  g_auto (GStrv) names = g_strsplit (list ? list : "", ",", -1);
  Settings *settings = &self->settings;

  settings->n_object_classes = 0;
  for (guint i = 0; names[i]; i++) {
    const gchar *name = g_strstrip (names[i]);
    if (!*name)
      continue;
    if (settings->n_object_classes == MAX_OBJECT_CLASSES) {
      GST_WARNING_OBJECT (self, "object-class: only the first %d types are used",
          MAX_OBJECT_CLASSES);
      break;
    }
    settings->object_classes[settings->n_object_classes++] = g_quark_from_string (name);
  }
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
    case PROP_INFERENCE_REGION:
      if (GST_STATE (self) > GST_STATE_READY)
        GST_WARNING_OBJECT (self, "inference-region applies after the next READY->PAUSED");
      self->inference_region = g_value_get_enum (value);
      break;
    case PROP_OBJECT_CLASS:
      g_free (self->object_class);
      self->object_class = g_value_dup_string (value);
      gst_mone_filter_parse_object_class (self, self->object_class);
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
gst_mone_filter_get_property (GObject * object, guint prop_id, GValue * value, GParamSpec * pspec)
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
    case PROP_INFERENCE_REGION:
      g_value_set_enum (value, self->inference_region);
      break;
    case PROP_OBJECT_CLASS:
      g_value_set_string (value, self->object_class);
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
    case PROP_INVALID_FRAMES:
      g_value_set_uint64 (value, self->invalid_frames);
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

/* The frame window and the last result belong to the picture before: the next frame starts
 * afresh. */
static void
gst_mone_filter_reset_stream (GstMoneFilter * self)
{
  if (self->input)
    gst_mone_input_reset (self->input);
  if (self->scheduler)
    gst_mone_scheduler_reset (self->scheduler);
  g_clear_pointer (&self->last_result, gst_structure_free);
  if (self->regions)
    gst_mone_regions_reset (self->regions);
  self->invalid_warned = FALSE;
}

/* Loads the model file, or shares it with other elements playing it. On failure *error says why
 * to the user (GST_RESOURCE_ERROR) and *debug adds the detail. */
static gboolean
gst_mone_filter_open_model (GstMoneFilter * self, const gchar * path, GError ** error,
    gchar ** debug)
{
  g_autoptr (GError) load_error = NULL;
  const MoneConfig *config;
  GStatBuf st;
  int stat_errno;

  if (!path || !*path) {
    g_set_error_literal (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND,
        "No MoNE model file given.");
    *debug = g_strdup ("set the model property or MONE_MODEL");
    return FALSE;
  }
  if (g_stat (path, &st) != 0) {
    stat_errno = errno;
    g_set_error (error, GST_RESOURCE_ERROR, stat_errno == ENOENT ? GST_RESOURCE_ERROR_NOT_FOUND
        : GST_RESOURCE_ERROR_OPEN_READ, "Could not load MoNE model \"%s\": %s.", path,
        g_strerror (stat_errno));
    *debug = g_strdup_printf ("%s: %s", path, g_strerror (stat_errno));
    return FALSE;
  }
  self->model = gst_mone_model_cache_acquire (path, &self->model_cache_key, &load_error);
  if (!self->model) {
    /* The loader's messages start with the path; the user-facing text names it once. */
    g_set_error (error, GST_RESOURCE_ERROR, g_error_matches (load_error, MONE_ERROR,
            MONE_ERROR_IO) ? GST_RESOURCE_ERROR_OPEN_READ : GST_RESOURCE_ERROR_FAILED,
        "Could not load MoNE model %s", load_error->message);
    *debug = g_strdup (load_error->message);
    return FALSE;
  }
  config = mone_model_get_config (self->model);
  if (config->channels != 1 && config->channels != 3) {
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED,
        "Could not use MoNE model \"%s\": %d input channels (monefilter feeds 1 or 3).", path,
        config->channels);
    return FALSE;
  }
  return TRUE;
}

/* Regions are classified one picture each: a video model's window has no meaning for them. */
static gboolean
gst_mone_filter_check_inference_region (GstMoneFilter * self, const gchar * path,
    GstMoneFilterInferenceRegion region, GError ** error)
{
  const MoneConfig *config = mone_model_get_config (self->model);

  if (region != GST_MONE_FILTER_INFERENCE_REGION_ROI_LIST || config->frames == 1)
    return TRUE;
  g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS,
      "inference-region=roi-list needs an image model: \"%s\" takes %d frames per input.", path,
      config->frames);
  return FALSE;
}

/* What this element runs the model with: its own inference context, input and scheduler. */
static gboolean
gst_mone_filter_open_stream (GstMoneFilter * self, const gchar * path, gint threads,
    GError ** error)
{
  g_autoptr (GError) context_error = NULL;

  /* More threads than cores only wait on each other at every fork-join of the engine. */
  if (threads > (gint) g_get_num_processors ()) {
    GST_INFO_OBJECT (self, "threads=%d capped at the %u cores", threads, g_get_num_processors ());
    threads = (gint) g_get_num_processors ();
  }
  self->context = mone_context_new (self->model, threads, &context_error);
  if (!self->context) {
    g_set_error (error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED,
        "Could not prepare MoNE model \"%s\": %s", path, context_error->message);
    return FALSE;
  }
  self->input = gst_mone_input_new (mone_model_get_config (self->model),
      (guint) mone_context_get_threads (self->context));
  self->scheduler = gst_mone_scheduler_new (mone_model_min_budget (self->model));
  self->regions = gst_mone_regions_new ();
  self->region_results = g_ptr_array_new ();
  self->region_entries = g_ptr_array_new ();
  self->frame_count = 0;
  return TRUE;
}

/* The read-only properties that describe the loaded model; the per-frame reports start over. */
static void
gst_mone_filter_publish_model (GstMoneFilter * self)
{
  const MoneConfig *config = mone_model_get_config (self->model);
  gchar **labels = g_new0 (gchar *, config->classes + 1);

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
}

static gboolean
gst_mone_filter_start (GstBaseTransform * trans)
{
  GstMoneFilter *self = GST_MONE_FILTER (trans);
  g_autofree gchar *path = NULL;
  g_autofree gchar *debug = NULL;
  g_autoptr (GError) error = NULL;
  GstMoneFilterInferenceRegion region;
  const MoneConfig *config;
  gint threads;

  GST_OBJECT_LOCK (self);
  path = g_strdup (self->model_path);
  threads = self->threads;
  region = self->inference_region;
  GST_OBJECT_UNLOCK (self);

  if (!gst_mone_filter_open_model (self, path, &error, &debug)
      || !gst_mone_filter_check_inference_region (self, path, region, &error)
      || !gst_mone_filter_open_stream (self, path, threads, &error))
    goto error;
  self->active_region = region;
  gst_mone_filter_publish_model (self);
  gst_mone_filter_reset_stream (self);
  GST_OBJECT_LOCK (self);
  self->invalid_frames = 0;
  GST_OBJECT_UNLOCK (self);

  config = mone_model_get_config (self->model);
  GST_INFO_OBJECT (self, "model %s: %dx%dx%d, %d frame(s), %d classes, %d experts, %d threads",
      path, config->width, config->height, config->channels, config->frames, config->classes,
      config->experts, mone_context_get_threads (self->context));
  return TRUE;

error:
  /* GST_ELEMENT_ERROR with the code the failing step chose. */
  gst_element_message_full (GST_ELEMENT (self), GST_MESSAGE_ERROR, error->domain, error->code,
      g_strdup (error->message), g_steal_pointer (&debug), __FILE__, GST_FUNCTION, __LINE__);
  gst_mone_filter_stop (trans);
  return FALSE;
}

/* Undoes start(), also a start() that failed halfway. */
static gboolean
gst_mone_filter_stop (GstBaseTransform * trans)
{
  GstMoneFilter *self = GST_MONE_FILTER (trans);

  GST_OBJECT_LOCK (self);
  self->frame_duration = GST_CLOCK_TIME_NONE;
  GST_OBJECT_UNLOCK (self);
  g_clear_pointer (&self->last_result, gst_structure_free);
  g_clear_pointer (&self->region_results, g_ptr_array_unref);
  g_clear_pointer (&self->region_entries, g_ptr_array_unref);
  g_clear_pointer (&self->regions, gst_mone_regions_free);
  g_clear_pointer (&self->scheduler, gst_mone_scheduler_free);
  g_clear_pointer (&self->input, gst_mone_input_free);
  g_clear_pointer (&self->context, mone_context_free);
  if (self->model) {
    gst_mone_model_cache_release (self->model, self->model_cache_key);
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
    /* The scheduler belongs to the streaming thread; hand the event over. */
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
      if (self->scheduler)
        gst_mone_scheduler_flush (self->scheduler);
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

static void
gst_mone_filter_log_geometry (GstMoneFilter * self)
{
  const GstMoneInputGeometry *g = gst_mone_input_get_geometry (self->input);
  const GstVideoInfo *in_info = gst_mone_input_get_video_info (self->input);
  const MoneConfig *config = mone_model_get_config (self->model);

  GST_DEBUG_OBJECT (self, "%s: frame %dx%d region %d,%d %dx%d -> model %d,%d %dx%d of %dx%d, by %s",
      gst_mone_scale_mode_nick (gst_mone_input_get_scale_mode (self->input)),
      GST_VIDEO_INFO_WIDTH (in_info), GST_VIDEO_INFO_HEIGHT (in_info), g->src_x, g->src_y,
      g->src_width, g->src_height, g->dest_x, g->dest_y, g->dest_width, g->dest_height,
      config->width, config->height, gst_mone_input_get_path (self->input));
}

static gboolean
gst_mone_filter_set_info (GstVideoFilter * filter, GstCaps * incaps, GstVideoInfo * in_info,
    GstCaps * outcaps, GstVideoInfo * out_info)
{
  GstMoneFilter *self = GST_MONE_FILTER (filter);
  GstMoneFilterScaleMode mode;
  GstClockTime frame_duration = GST_CLOCK_TIME_NONE, latency_before, latency_after;

  if (!self->input)
    return FALSE;

  GST_OBJECT_LOCK (self);
  mode = self->settings.scale_mode;
  GST_OBJECT_UNLOCK (self);
  /* The conversion path for this format, chosen once for all its frames. */
  if (!gst_mone_input_set_format (self->input, in_info, mode))
    goto no_converter;
  gst_mone_filter_log_geometry (self);

  if (GST_VIDEO_INFO_FPS_N (in_info) > 0 && GST_VIDEO_INFO_FPS_D (in_info) > 0)
    frame_duration = gst_util_uint64_scale_int (GST_SECOND, GST_VIDEO_INFO_FPS_D (in_info),
        GST_VIDEO_INFO_FPS_N (in_info));
  GST_OBJECT_LOCK (self);
  latency_before = gst_mone_filter_own_latency_locked (self);
  self->frame_duration = frame_duration;
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

/* Controlled properties (budget, interval) take their value for this frame before its snapshot. */
static void
gst_mone_filter_before_transform (GstBaseTransform * trans, GstBuffer * buffer)
{
  GstClockTime timestamp = GST_BUFFER_PTS (buffer), stream_time;

  if (!GST_CLOCK_TIME_IS_VALID (timestamp))
    return;
  stream_time = gst_segment_to_stream_time (&trans->segment, GST_FORMAT_TIME, timestamp);
  if (GST_CLOCK_TIME_IS_VALID (stream_time))
    gst_object_sync_values (GST_OBJECT (trans), stream_time);
}

/* A discontinuity (frames lost, a non-flushing seek, a source restarting): like a flush, the
 * window must not join pictures from both sides, nor may a result from before be reused after. */
static void
gst_mone_filter_check_discont (GstMoneFilter * self, GstBuffer * buffer)
{
  if (!GST_BUFFER_IS_DISCONT (buffer)
      || (gst_mone_input_get_filled (self->input) == 0 && !self->last_result))
    return;
  GST_DEBUG_OBJECT (self, "discontinuity at %" GST_TIME_FORMAT ": frame window and last result "
      "reset", GST_TIME_ARGS (GST_BUFFER_PTS (buffer)));
  gst_mone_filter_reset_stream (self);
}

/* The clock a frame's render time is read from, when there is one worth racing: while PLAYING,
 * with a pipeline latency from downstream and a sink that reports lateness (QoS). Called with the
 * object lock held; the caller unrefs the clock. */
static GstClock *
gst_mone_filter_render_clock_locked (GstMoneFilter * self, GstClockTime * base_time,
    GstClockTime * latency)
{
  if (GST_STATE (self) != GST_STATE_PLAYING || !self->qos_seen
      || !GST_CLOCK_TIME_IS_VALID (self->pipeline_latency) || !GST_ELEMENT_CLOCK (self))
    return NULL;
  *base_time = GST_ELEMENT_CAST (self)->base_time;
  *latency = self->pipeline_latency;
  return gst_object_ref (GST_ELEMENT_CLOCK (self));
}

/* The frame's times, and under the object lock the settings, the pending QoS and what the render
 * time is computed from. In a pipeline without a queue the sink holds the streaming thread until
 * the previous frame's render time, so the time left is the frame duration less however late the
 * previous frame was: a frame after an overrun gets less time rather than inheriting the delay.
 * Downstream elements' processing time is not known here and not subtracted. */
static void
gst_mone_filter_snapshot (GstMoneFilter * self, GstBuffer * buffer, Snapshot * snap)
{
  GstSegment *segment = &GST_BASE_TRANSFORM (self)->segment;
  GstMoneFrameStamp *stamp = &snap->stamp;
  GstMoneSchedulerFrame *timing = &snap->timing;
  GstClockTime base_time = 0, latency = 0;
  GstClock *clock = NULL;

  stamp->frame = self->frame_count;
  stamp->reused = FALSE;
  stamp->timestamp = GST_BUFFER_PTS (buffer);
  stamp->stream_time = stamp->running_time = GST_CLOCK_TIME_NONE;
  stamp->duration = GST_BUFFER_DURATION (buffer);
  if (GST_CLOCK_TIME_IS_VALID (stamp->timestamp)) {
    stamp->stream_time = gst_segment_to_stream_time (segment, GST_FORMAT_TIME, stamp->timestamp);
    stamp->running_time = gst_segment_to_running_time (segment, GST_FORMAT_TIME, stamp->timestamp);
  }

  GST_OBJECT_LOCK (self);
  snap->settings = self->settings;
  snap->qos_pending = self->qos_pending;
  snap->qos_proportion = self->qos_proportion;
  snap->qos_jitter = self->qos_jitter;
  self->qos_pending = FALSE;
  timing->auto_budget = self->settings.budget_mode == GST_MONE_FILTER_BUDGET_MODE_AUTO;
  timing->budget = self->settings.budget;
  timing->interval = self->settings.interval;
  timing->max_latency = self->settings.max_latency;
  timing->frame_duration = self->frame_duration;
  timing->buffer_duration = stamp->duration;
  timing->render_time_known = FALSE;
  timing->time_left = 0;
  timing->runs = 1;
  if (timing->auto_budget && GST_CLOCK_TIME_IS_VALID (stamp->running_time))
    clock = gst_mone_filter_render_clock_locked (self, &base_time, &latency);
  GST_OBJECT_UNLOCK (self);

  if (clock) {
    timing->render_time_known = TRUE;
    timing->time_left = GST_CLOCK_DIFF (gst_clock_get_time (clock),
        base_time + stamp->running_time + latency);
    gst_object_unref (clock);
  }
}

/* Hands pending QoS to the scheduler and asks it about this frame. */
static void
gst_mone_filter_decide (GstMoneFilter * self, const Snapshot * snap,
    GstMoneSchedulerDecision * decision)
{
  if (snap->qos_pending)
    gst_mone_scheduler_qos (self->scheduler, snap->qos_proportion, snap->qos_jitter);
  gst_mone_scheduler_decide (self->scheduler, &snap->timing, decision);
  if (decision->catching_up)
    GST_LOG_OBJECT (self, "frame %" G_GUINT64_FORMAT ": %.2f ms left, reusing the last result",
        self->frame_count, decision->frame_deadline * 1e-6);
}

/* Follows a scale-mode change: the converters depend on it. */
static gboolean
gst_mone_filter_follow_scale_mode (GstMoneFilter * self, GstMoneFilterScaleMode mode,
    const GstVideoInfo * in_info)
{
  if (mode == gst_mone_input_get_scale_mode (self->input))
    return TRUE;
  if (!gst_mone_input_set_scale_mode (self->input, mode)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
        ("cannot convert %s %dx%d to the model input with scale-mode %s",
            gst_video_format_to_string (GST_VIDEO_INFO_FORMAT (in_info)),
            GST_VIDEO_INFO_WIDTH (in_info), GST_VIDEO_INFO_HEIGHT (in_info),
            gst_mone_scale_mode_nick (mode)));
    return FALSE;
  }
  gst_mone_filter_log_geometry (self);
  return TRUE;
}

/* Converts the frame into the window if the model will see it: a video model sees every frame of
 * its window, classified or not. */
static GstFlowReturn
gst_mone_filter_convert (GstMoneFilter * self, const Snapshot * snap,
    const GstMoneSchedulerDecision * decision, GstVideoFrame * frame)
{
  if (!gst_mone_filter_follow_scale_mode (self, snap->settings.scale_mode, &frame->info))
    return GST_FLOW_NOT_NEGOTIATED;
  if (!decision->fresh && mone_model_get_config (self->model)->frames == 1)
    return GST_FLOW_OK;
  if (!gst_mone_input_push (self->input, frame)) {
    GST_ELEMENT_ERROR (self, CORE, FAILED, (NULL), ("could not map the model input buffer"));
    return GST_FLOW_ERROR;
  }
  return GST_FLOW_OK;
}

/* Once per stream: the model gave NaN or infinite logits (weights that overflow, or pixels it
 * cannot take). The frames still pass, with a meta saying valid=false. */
static void
gst_mone_filter_warn_invalid (GstMoneFilter * self)
{
  g_autofree gchar *path = NULL;

  if (self->invalid_warned)
    return;
  self->invalid_warned = TRUE;
  GST_OBJECT_LOCK (self);
  path = g_strdup (self->model_path);
  GST_OBJECT_UNLOCK (self);
  GST_ELEMENT_WARNING (self, STREAM, DECODE,
      ("Model %s gave no answer for frame %" G_GUINT64_FORMAT ": its logits are not finite numbers",
          path, self->frame_count),
      ("the frame's meta says valid=false; the invalid-frames property counts such frames"));
}

/* Runs the model on the input's window at `budget` and describes the result (for the whole frame,
 * or for a region when `geometry` says where it came from); the reported properties follow it.
 * `start`: when the input's conversion began (latency includes it). */
static GstStructure *
gst_mone_filter_run (GstMoneFilter * self, const Snapshot * snap, gdouble budget,
    gboolean budget_auto, const GstMoneInputGeometry * geometry, gint64 start, gdouble * gflops,
    GError ** error)
{
  GstMoneResultInfo info;
  MoneResult result;

  if (!mone_context_run (self->context, gst_mone_input_get_window (self->input), budget, &result,
          error))
    return NULL;
  info.frame = self->frame_count;
  info.top_k = snap->settings.top_k;
  info.budget_auto = budget_auto;
  info.budget_requested = budget;
  info.latency_ns = monotonic_ns () - start;
  info.geometry = geometry;
  *gflops = result.flops * 1e-9;

  GST_OBJECT_LOCK (self);
  self->last_gflops = *gflops;
  self->last_budget = result.budget_used;
  self->invalid_frames += !result.finite;
  GST_OBJECT_UNLOCK (self);
  if (!result.finite)
    gst_mone_filter_warn_invalid (self);
  else
    GST_LOG_OBJECT (self, "frame %" G_GUINT64_FORMAT ": class %d (%.3f), budget %.3f -> %.3f, "
        "%.4f GFLOPs, %.3f ms", self->frame_count, result.top_class,
        result.probs[result.top_class], budget, result.budget_used, *gflops,
        info.latency_ns * 1e-6);
  return gst_mone_result_new (self->model, &result, self->input, &info);
}

/* The whole frame at the decided budget; the result is kept for this frame and the ones that
 * reuse it. */
static gboolean
gst_mone_filter_classify (GstMoneFilter * self, const Snapshot * snap,
    const GstMoneSchedulerDecision * decision, gint64 start, GError ** error)
{
  GstStructure *result;
  gdouble gflops, budget_used = 1.0;
  guint64 latency_ns = 0;

  result = gst_mone_filter_run (self, snap, decision->budget, decision->auto_budget, NULL, start,
      &gflops, error);
  if (!result)
    return FALSE;
  gst_structure_get_uint64 (result, "latency", &latency_ns);
  gst_structure_get_double (result, "budget-used", &budget_used);
  gst_mone_scheduler_classified (self->scheduler, decision, budget_used, (gint64) latency_ns);
  g_clear_pointer (&self->last_result, gst_structure_free);
  self->last_result = result;
  GST_OBJECT_LOCK (self);
  self->last_latency = latency_ns;
  GST_OBJECT_UNLOCK (self);
  return TRUE;
}

/* The frame has its meta: count it and post its message (message=true). */
static GstFlowReturn
gst_mone_filter_frame_done (GstMoneFilter * self, GstStructure * message)
{
  self->frame_count++;
  if (message)
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_element (GST_OBJECT (self), message));
  return GST_FLOW_OK;
}

/* The engine failed (error set), or the meta could not be attached (error NULL). */
static GstFlowReturn
gst_mone_filter_frame_failed (GstMoneFilter * self, const GError * error)
{
  if (error)
    GST_ELEMENT_ERROR (self, STREAM, FAILED, ("MoNE inference failed: %s", error->message), (NULL));
  else
    GST_ELEMENT_ERROR (self, CORE, FAILED, (NULL), ("could not attach the classification meta"));
  return GST_FLOW_ERROR;
}

/* ---- Regions of interest ---- */

/* Classifies this frame's due regions at the decided budget (none when the scheduler says the
 * frame carries results); every region with a result, fresh or carried, joins the frame's
 * lists. */
static gboolean
gst_mone_filter_classify_regions (GstMoneFilter * self, const Snapshot * snap, GArray * regions,
    const GstMoneSchedulerDecision * decision, GstVideoFrame * frame, GstMoneRegionsCost * cost,
    GError ** error)
{
  const gint64 frame_start = monotonic_ns ();
  gdouble budget_used = 1.0;

  g_ptr_array_set_size (self->region_results, 0);
  g_ptr_array_set_size (self->region_entries, 0);
  for (guint i = 0; i < regions->len; i++) {
    GstMoneRegion *region = &g_array_index (regions, GstMoneRegion, i);

    if (region->due && decision->fresh) {
      const gint64 start = monotonic_ns ();
      GstMoneInputGeometry geometry;
      GstStructure *result;
      gdouble gflops;

      if (!gst_mone_input_push_region (self->input, frame, region->x, region->y, region->width,
              region->height, &geometry)) {
        g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED,
            "could not convert region %d (%d,%d %dx%d)", region->id, region->x, region->y,
            region->width, region->height);
        return FALSE;
      }
      result = gst_mone_filter_run (self, snap, decision->budget, decision->auto_budget,
          &geometry, start, &gflops, error);
      if (!result)
        return FALSE;
      gst_mone_result_set_region (result, region);
      gst_structure_get_double (result, "budget-used", &budget_used);
      gst_mone_regions_classified (self->regions, i, result);
      cost->classified++;
      cost->gflops += gflops;
    }
    if (region->last) {
      g_ptr_array_add (self->region_results, (gpointer) region->last);
      g_ptr_array_add (self->region_entries, region);
    }
  }
  cost->latency_ns = monotonic_ns () - frame_start;
  if (cost->classified > 0)
    gst_mone_scheduler_classified (self->scheduler, decision, budget_used, cost->latency_ns);
  return TRUE;
}

/* inference-region=roi-list: the regions on the frame, each classified every `interval` frames of
 * its own; the scheduler shares the frame's time among those due. */
static GstFlowReturn
gst_mone_filter_process_regions (GstMoneFilter * self, Snapshot * snap, GstVideoFrame * frame)
{
  GstMoneSchedulerDecision decision = { 0, };
  GstMoneRegionsCost cost = { 0, };
  GstStructure *message = NULL;
  g_autoptr (GError) error = NULL;
  GArray *regions;
  guint due = 0;

  regions = gst_mone_regions_collect (self->regions, frame->buffer, GST_VIDEO_FRAME_WIDTH (frame),
      GST_VIDEO_FRAME_HEIGHT (frame), snap->settings.object_classes,
      snap->settings.n_object_classes, snap->settings.interval, &cost.skipped);
  for (guint i = 0; i < regions->len; i++)
    due += g_array_index (regions, GstMoneRegion, i).due;
  if (!gst_mone_filter_follow_scale_mode (self, snap->settings.scale_mode, &frame->info))
    return GST_FLOW_NOT_NEGOTIATED;
  if (due > 0) {
    snap->timing.interval = 1;
    snap->timing.runs = due;
    gst_mone_filter_decide (self, snap, &decision);
  } else if (snap->qos_pending) {
    /* Nothing to decide on this frame: hand the QoS the snapshot took back for the next frame
     * that decides, unless a newer one has come since. */
    GST_OBJECT_LOCK (self);
    if (!self->qos_pending) {
      self->qos_pending = TRUE;
      self->qos_proportion = snap->qos_proportion;
      self->qos_jitter = snap->qos_jitter;
    }
    GST_OBJECT_UNLOCK (self);
  }
  if (!gst_mone_filter_classify_regions (self, snap, regions, &decision, frame, &cost, &error))
    goto run_failed;
  if (due > 0 && cost.classified == 0)
    gst_mone_scheduler_reused (self->scheduler);
  gst_mone_input_end_regions (self->input);
  if (!gst_mone_result_attach_regions (frame->buffer, self->region_results, self->region_entries,
          &snap->stamp, &cost, snap->settings.post_messages ? &message : NULL))
    goto no_meta;
  gst_mone_regions_end_frame (self->regions);
  if (cost.classified > 0) {
    GST_OBJECT_LOCK (self);
    self->last_latency = cost.latency_ns;
    self->last_gflops = cost.gflops;
    GST_OBJECT_UNLOCK (self);
  }
  return gst_mone_filter_frame_done (self, message);

run_failed:
  return gst_mone_filter_frame_failed (self, error);
no_meta:
  return gst_mone_filter_frame_failed (self, NULL);
}

static GstFlowReturn
gst_mone_filter_transform_frame_ip (GstVideoFilter * filter, GstVideoFrame * frame)
{
  GstMoneFilter *self = GST_MONE_FILTER (filter);
  GstMoneSchedulerDecision decision;
  GstStructure *message = NULL;
  g_autoptr (GError) error = NULL;
  Snapshot snap;
  GstFlowReturn ret;
  gint64 start;

  gst_mone_filter_check_discont (self, frame->buffer);
  gst_mone_filter_snapshot (self, frame->buffer, &snap);
  if (self->active_region == GST_MONE_FILTER_INFERENCE_REGION_ROI_LIST)
    return gst_mone_filter_process_regions (self, &snap, frame);
  gst_mone_filter_decide (self, &snap, &decision);
  start = monotonic_ns ();
  if ((ret = gst_mone_filter_convert (self, &snap, &decision, frame)) != GST_FLOW_OK)
    return ret;
  if (decision.fresh && !gst_mone_filter_classify (self, &snap, &decision, start, &error))
    goto run_failed;
  if (!decision.fresh)
    gst_mone_scheduler_reused (self->scheduler);
  snap.stamp.reused = !decision.fresh;
  if (!gst_mone_result_attach (frame->buffer, self->last_result, &snap.stamp,
          snap.settings.post_messages ? &message : NULL))
    goto no_meta;
  return gst_mone_filter_frame_done (self, message);

run_failed:
  return gst_mone_filter_frame_failed (self, error);
no_meta:
  return gst_mone_filter_frame_failed (self, NULL);
}
