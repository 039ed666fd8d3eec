/* gst-mone: monepublish, results out as JSON lines or MQTT messages.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-monepublish
 *
 * A passthrough element: for every buffer it writes one JSON object (the schema is in
 * docs/publish.md) built from the buffer's timestamps, the stream id and the GstMoneMeta monefilter
 * attached. method=file appends one line per buffer to file-path ("-" is stdout); method=mqtt
 * publishes one message per buffer (QoS 1) to topic on host:port. The streaming thread never waits
 * on the network: messages go through a bounded queue (max-queue) whose oldest entry is dropped
 * when it is full; the property `dropped` counts them, a warning is posted once per broker outage
 * (connection lost or refused, or not made within 3 s of starting) and an element message
 * "mone-publish-recovered" with the count when the connection comes back.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 videotestsrc num-buffers=100 ! monefilter ! monepublish file-path=out.jsonl ! fakesink
 * gst-launch-1.0 v4l2src ! videoconvert ! monefilter ! monepublish method=mqtt host=127.0.0.1 topic=mone/cam0 ! fakesink
 * ]|
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmonepublish.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <json-glib/json-glib.h>
#include <mone/gstmonemeta.h>

#ifdef HAVE_MOSQUITTO
#include "gstmonemqtt.h"
#endif

GST_DEBUG_CATEGORY_STATIC (gst_mone_publish_debug);
#define GST_CAT_DEFAULT gst_mone_publish_debug

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

enum
{
  PROP_0,
  PROP_METHOD,
  PROP_FILE_PATH,
  PROP_FILE_FORMAT,
  PROP_HOST,
  PROP_PORT,
  PROP_TOPIC,
  PROP_CLIENT_ID,
  PROP_MAX_QUEUE,
  PROP_SKIP_UNCLASSIFIED,
  PROP_PUBLISHED,
  PROP_DROPPED,
};

#define DEFAULT_METHOD GST_MONE_PUBLISH_METHOD_FILE
#define DEFAULT_FILE_PATH "-"
#define DEFAULT_FILE_FORMAT 0   /* json-lines */
#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_PORT 1883
#define DEFAULT_TOPIC "mone/classification"
#define DEFAULT_CLIENT_ID ""
#define DEFAULT_MAX_QUEUE 1000
#define DEFAULT_SKIP_UNCLASSIFIED FALSE

/* One format today, as an enum so that GLib refuses any other value where it is set. */
#define GST_TYPE_MONE_PUBLISH_FILE_FORMAT (gst_mone_publish_file_format_get_type ())
static GType
gst_mone_publish_file_format_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {0, "One JSON object per line", "json-lines"},
    {0, NULL, NULL},
  };
  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstMonePublishFileFormat", values));
  return type;
}

#define GST_TYPE_MONE_PUBLISH_METHOD (gst_mone_publish_method_get_type ())
static GType
gst_mone_publish_method_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_MONE_PUBLISH_METHOD_FILE, "JSON lines to a file or stdout", "file"},
    {GST_MONE_PUBLISH_METHOD_MQTT, "MQTT messages to a broker", "mqtt"},
    {0, NULL, NULL},
  };
  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstMonePublishMethod", values));
  return type;
}

G_DEFINE_TYPE (GstMonePublish, gst_mone_publish, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE (monepublish, "monepublish", GST_RANK_NONE, GST_TYPE_MONE_PUBLISH);

static void gst_mone_publish_finalize (GObject * object);
static void gst_mone_publish_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec);
static void gst_mone_publish_get_property (GObject * object, guint prop_id,
    GValue * value, GParamSpec * pspec);
static gboolean gst_mone_publish_start (GstBaseTransform * trans);
static gboolean gst_mone_publish_stop (GstBaseTransform * trans);
static gboolean gst_mone_publish_sink_event (GstBaseTransform * trans, GstEvent * event);
static GstFlowReturn gst_mone_publish_transform_ip (GstBaseTransform * trans, GstBuffer * buf);

static void
gst_mone_publish_class_init (GstMonePublishClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_mone_publish_debug, "monepublish", 0,
      "MoNE results as JSON lines or MQTT messages");

  gobject_class->finalize = gst_mone_publish_finalize;
  gobject_class->set_property = gst_mone_publish_set_property;
  gobject_class->get_property = gst_mone_publish_get_property;

  g_object_class_install_property (gobject_class, PROP_METHOD,
      g_param_spec_enum ("method", "Method", "Where results go", GST_TYPE_MONE_PUBLISH_METHOD,
          DEFAULT_METHOD, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_FILE_PATH,
      g_param_spec_string ("file-path", "File path",
          "File the JSON lines are appended to (method=file); \"-\" is stdout", DEFAULT_FILE_PATH,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_FILE_FORMAT,
      g_param_spec_enum ("file-format", "File format", "Output format",
          GST_TYPE_MONE_PUBLISH_FILE_FORMAT, DEFAULT_FILE_FORMAT,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_HOST,
      g_param_spec_string ("host", "Host", "MQTT broker host name or address", DEFAULT_HOST,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_PORT,
      g_param_spec_int ("port", "Port", "MQTT broker port", 1, 65535, DEFAULT_PORT,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_TOPIC,
      g_param_spec_string ("topic", "Topic", "MQTT topic the messages are published to",
          DEFAULT_TOPIC, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_CLIENT_ID,
      g_param_spec_string ("client-id", "Client id",
          "MQTT client id; empty lets the broker pick one", DEFAULT_CLIENT_ID,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_MAX_QUEUE,
      g_param_spec_uint ("max-queue", "Max queue",
          "Messages held while the broker is slow or away; when full the oldest is dropped",
          1, 1000000, DEFAULT_MAX_QUEUE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_SKIP_UNCLASSIFIED,
      g_param_spec_boolean ("skip-unclassified", "Skip unclassified",
          "Write nothing for buffers without a GstMoneMeta (default: a line with "
          "\"classified\": false)", DEFAULT_SKIP_UNCLASSIFIED,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_PUBLISHED,
      g_param_spec_uint64 ("published", "Published",
          "Lines written (file) or messages acknowledged by the broker (mqtt)", 0, G_MAXUINT64,
          0, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (gobject_class, PROP_DROPPED,
      g_param_spec_uint64 ("dropped", "Dropped",
          "Results not delivered: failed writes (file) or queue overflow (mqtt)", 0, G_MAXUINT64,
          0, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class, "MoNE result publisher",
      "Filter/Analyzer/Video", "Writes each buffer's MoNE classification as JSON lines to a file "
      "or publishes it to an MQTT broker", "gst-mone developers");

  trans_class->passthrough_on_same_caps = TRUE;
  trans_class->start = GST_DEBUG_FUNCPTR (gst_mone_publish_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_mone_publish_stop);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_mone_publish_sink_event);
  trans_class->transform_ip = GST_DEBUG_FUNCPTR (gst_mone_publish_transform_ip);

  gst_type_mark_as_plugin_api (GST_TYPE_MONE_PUBLISH_METHOD, 0);
}

static void
gst_mone_publish_init (GstMonePublish * self)
{
  self->method = DEFAULT_METHOD;
  self->file_path = g_strdup (DEFAULT_FILE_PATH);
  self->host = g_strdup (DEFAULT_HOST);
  self->port = DEFAULT_PORT;
  self->topic = g_strdup (DEFAULT_TOPIC);
  self->client_id = g_strdup (DEFAULT_CLIENT_ID);
  self->max_queue = DEFAULT_MAX_QUEUE;
  self->skip_unclassified = DEFAULT_SKIP_UNCLASSIFIED;
  self->fd = -1;
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), TRUE);
}

static void
gst_mone_publish_finalize (GObject * object)
{
  GstMonePublish *self = GST_MONE_PUBLISH (object);

  g_free (self->file_path);
  g_free (self->host);
  g_free (self->topic);
  g_free (self->client_id);
  g_free (self->stream_id);
  G_OBJECT_CLASS (gst_mone_publish_parent_class)->finalize (object);
}

static void
gst_mone_publish_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  GstMonePublish *self = GST_MONE_PUBLISH (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_METHOD:
      self->method = g_value_get_enum (value);
      break;
    case PROP_FILE_PATH:
      g_free (self->file_path);
      self->file_path = g_value_dup_string (value);
      if (!self->file_path)
        self->file_path = g_strdup (DEFAULT_FILE_PATH);
      break;
    case PROP_FILE_FORMAT:
      break;
    case PROP_HOST:
      g_free (self->host);
      self->host = g_value_dup_string (value);
      break;
    case PROP_PORT:
      self->port = g_value_get_int (value);
      break;
    case PROP_TOPIC:
      g_free (self->topic);
      self->topic = g_value_dup_string (value);
      break;
    case PROP_CLIENT_ID:
      g_free (self->client_id);
      self->client_id = g_value_dup_string (value);
      break;
    case PROP_MAX_QUEUE:
      self->max_queue = g_value_get_uint (value);
      break;
    case PROP_SKIP_UNCLASSIFIED:
      self->skip_unclassified = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_mone_publish_get_property (GObject * object, guint prop_id, GValue * value, GParamSpec * pspec)
{
  GstMonePublish *self = GST_MONE_PUBLISH (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_METHOD:
      g_value_set_enum (value, self->method);
      break;
    case PROP_FILE_PATH:
      g_value_set_string (value, self->file_path);
      break;
    case PROP_FILE_FORMAT:
      g_value_set_enum (value, DEFAULT_FILE_FORMAT);
      break;
    case PROP_HOST:
      g_value_set_string (value, self->host);
      break;
    case PROP_PORT:
      g_value_set_int (value, self->port);
      break;
    case PROP_TOPIC:
      g_value_set_string (value, self->topic);
      break;
    case PROP_CLIENT_ID:
      g_value_set_string (value, self->client_id);
      break;
    case PROP_MAX_QUEUE:
      g_value_set_uint (value, self->max_queue);
      break;
    case PROP_SKIP_UNCLASSIFIED:
      g_value_set_boolean (value, self->skip_unclassified);
      break;
    case PROP_PUBLISHED:
#ifdef HAVE_MOSQUITTO
      if (self->mqtt) {
        g_value_set_uint64 (value, mone_mqtt_get_published (self->mqtt));
        break;
      }
#endif
      g_value_set_uint64 (value, self->file_written);
      break;
    case PROP_DROPPED:
#ifdef HAVE_MOSQUITTO
      if (self->mqtt) {
        g_value_set_uint64 (value, mone_mqtt_get_dropped (self->mqtt));
        break;
      }
#endif
      g_value_set_uint64 (value, self->file_dropped);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

#ifdef HAVE_MOSQUITTO
/* From the MQTT client's threads: post the outage warning once, and the recovery with the drop
 * count. Never called with the object lock held. */
static void
gst_mone_publish_mqtt_state (gpointer user_data, gboolean connected, guint64 dropped,
    const gchar * reason)
{
  GstMonePublish *self = user_data;
  gboolean was_outage;

  GST_OBJECT_LOCK (self);
  was_outage = self->outage;
  self->outage = !connected;
  GST_OBJECT_UNLOCK (self);

  if (!connected && !was_outage) {
    GST_ELEMENT_WARNING (self, RESOURCE, WRITE, ("MQTT broker unavailable: %s", reason),
        ("reconnecting with backoff; results queue (then drop) meanwhile; %" G_GUINT64_FORMAT
            " dropped so far", dropped));
  } else if (connected && was_outage) {
    gst_element_post_message (GST_ELEMENT (self),
        gst_message_new_element (GST_OBJECT (self),
            gst_structure_new ("mone-publish-recovered", "dropped", G_TYPE_UINT64, dropped, NULL)));
  }
}
#endif

static gboolean
gst_mone_publish_start (GstBaseTransform * trans)
{
  GstMonePublish *self = GST_MONE_PUBLISH (trans);
  GstMonePublishMethod method;
  g_autofree gchar *file_path = NULL, *host = NULL, *topic = NULL, *client_id = NULL;
  gint port;
  guint max_queue;

  GST_OBJECT_LOCK (self);
  method = self->method;
  file_path = g_strdup (self->file_path);
  host = g_strdup (self->host);
  topic = g_strdup (self->topic);
  client_id = g_strdup (self->client_id);
  port = self->port;
  max_queue = self->max_queue;
  self->file_written = self->file_dropped = 0;
  self->outage = FALSE;
  g_clear_pointer (&self->stream_id, g_free);
  GST_OBJECT_UNLOCK (self);
  self->frames = 0;

  if (method == GST_MONE_PUBLISH_METHOD_FILE) {
    if (g_strcmp0 (file_path, "-") == 0) {
      self->fd = STDOUT_FILENO;
      self->own_fd = FALSE;
    } else {
      /* O_APPEND: each write() lands at the end as one piece, so several elements (tee branches,
       * other processes) can share the file without interleaving inside a line. */
      self->fd = open (file_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (self->fd < 0)
        goto open_failed;
      self->own_fd = TRUE;
    }
    return TRUE;
  }
#ifdef HAVE_MOSQUITTO
  {
    GError *err = NULL;
    MoneMqtt *mqtt = mone_mqtt_new (host, port, client_id, topic, max_queue,
        gst_mone_publish_mqtt_state, self, &err);

    /* Under the lock: the published and dropped properties read it from other threads. */
    GST_OBJECT_LOCK (self);
    self->mqtt = mqtt;
    GST_OBJECT_UNLOCK (self);
    if (!mqtt) {
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE, ("Could not set up MQTT: %s", err->message),
          (NULL));
      g_error_free (err);
      return FALSE;
    }
    return TRUE;
  }
#else
  GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("This build of monepublish has no MQTT support"),
      ("gst-mone was configured without libmosquitto (meson option mqtt)"));
  return FALSE;
#endif

open_failed:
  GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE, ("Could not open \"%s\" for appending",
          file_path), ("open: %s", g_strerror (errno)));
  return FALSE;
}

static gboolean
gst_mone_publish_stop (GstBaseTransform * trans)
{
  GstMonePublish *self = GST_MONE_PUBLISH (trans);

#ifdef HAVE_MOSQUITTO
  if (self->mqtt) {
    MoneMqtt *mqtt = self->mqtt;
    guint64 published, dropped;

    /* Give queued results a moment to leave: stopping after EOS should not lose the tail. */
    mone_mqtt_flush (mqtt, 2 * G_USEC_PER_SEC);
    published = mone_mqtt_get_published (mqtt);
    dropped = mone_mqtt_get_dropped (mqtt);
    GST_OBJECT_LOCK (self);
    self->mqtt = NULL;
    /* keep the final counts readable after stop */
    self->file_written = published;
    self->file_dropped = dropped;
    GST_OBJECT_UNLOCK (self);
    mone_mqtt_free (mqtt);
  }
#endif
  if (self->fd >= 0 && self->own_fd)
    close (self->fd);
  self->fd = -1;
  return TRUE;
}

static gboolean
gst_mone_publish_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstMonePublish *self = GST_MONE_PUBLISH (trans);

  if (GST_EVENT_TYPE (event) == GST_EVENT_STREAM_START) {
    const gchar *stream_id = NULL;

    gst_event_parse_stream_start (event, &stream_id);
    GST_OBJECT_LOCK (self);
    g_free (self->stream_id);
    self->stream_id = g_strdup (stream_id);
    GST_OBJECT_UNLOCK (self);
  }
#ifdef HAVE_MOSQUITTO
  /* At the end of the stream, while the pipeline still reports: a short file can end before the
   * client says the broker is unreachable, and the results would then go unnoticed. */
  if (GST_EVENT_TYPE (event) == GST_EVENT_EOS && self->mqtt
      && !mone_mqtt_flush (self->mqtt, 2 * G_USEC_PER_SEC)) {
    GST_ELEMENT_WARNING (self, RESOURCE, WRITE, ("%u results not delivered to the MQTT broker %s",
            mone_mqtt_get_pending (self->mqtt), mone_mqtt_get_broker (self->mqtt)),
        ("%" G_GUINT64_FORMAT " delivered, %" G_GUINT64_FORMAT " dropped from the queue",
            mone_mqtt_get_published (self->mqtt), mone_mqtt_get_dropped (self->mqtt)));
  }
#endif
  return GST_BASE_TRANSFORM_CLASS (gst_mone_publish_parent_class)->sink_event (trans, event);
}

static void
add_time (JsonBuilder * b, const gchar * name, GstClockTime t)
{
  json_builder_set_member_name (b, name);
  if (GST_CLOCK_TIME_IS_VALID (t))
    json_builder_add_int_value (b, (gint64) t);
  else
    json_builder_add_null_value (b);
}

static void
add_rect (JsonBuilder * b, const gchar * name, gdouble x, gdouble y, gdouble w, gdouble h)
{
  json_builder_set_member_name (b, name);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "x");
  json_builder_add_double_value (b, x);
  json_builder_set_member_name (b, "y");
  json_builder_add_double_value (b, y);
  json_builder_set_member_name (b, "width");
  json_builder_add_double_value (b, w);
  json_builder_set_member_name (b, "height");
  json_builder_add_double_value (b, h);
  json_builder_end_object (b);
}

/* The meta's fields, as documented in docs/publish.md. */
static void
add_classification (JsonBuilder * b, const MoneClassification * r, const GstStructure * s)
{
  gboolean valid = TRUE;
  guint i;

  gst_structure_get_boolean (s, "valid", &valid);
  json_builder_set_member_name (b, "valid");
  json_builder_add_boolean_value (b, valid);
  json_builder_set_member_name (b, "result-frame");
  json_builder_add_int_value (b, (gint64) r->result_frame);
  json_builder_set_member_name (b, "reused");
  json_builder_add_boolean_value (b, r->reused);
  json_builder_set_member_name (b, "class-id");
  json_builder_add_int_value (b, r->top_class);
  json_builder_set_member_name (b, "label");
  json_builder_add_string_value (b, r->label ? r->label : "");
  json_builder_set_member_name (b, "score");
  json_builder_add_double_value (b, r->top_score);

  json_builder_set_member_name (b, "top-k");
  json_builder_begin_array (b);
  for (i = 0; i < r->top_k; i++) {
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "class-id");
    json_builder_add_int_value (b, r->top_classes[i]);
    json_builder_set_member_name (b, "label");
    json_builder_add_string_value (b, r->top_labels[i] ? r->top_labels[i] : "");
    json_builder_set_member_name (b, "score");
    json_builder_add_double_value (b, r->top_scores[i]);
    json_builder_end_object (b);
  }
  json_builder_end_array (b);

  json_builder_set_member_name (b, "budget-mode");
  json_builder_add_string_value (b, r->budget_auto ? "auto" : "fixed");
  json_builder_set_member_name (b, "budget-requested");
  json_builder_add_double_value (b, r->budget_requested);
  json_builder_set_member_name (b, "budget-used");
  json_builder_add_double_value (b, r->budget_used);
  json_builder_set_member_name (b, "gflops");
  json_builder_add_double_value (b, r->gflops);
  json_builder_set_member_name (b, "latency-ns");
  json_builder_add_int_value (b, (gint64) r->latency_ns);
  json_builder_set_member_name (b, "latency-ms");
  json_builder_add_double_value (b, r->latency_ms);

  /* Per-region results: which nested expert each token (image region) was routed to. */
  json_builder_set_member_name (b, "experts");
  json_builder_add_int_value (b, r->experts);
  json_builder_set_member_name (b, "tokens-per-expert");
  json_builder_begin_array (b);
  for (i = 0; i < (guint) r->experts && i < MONE_MAX_EXPERTS; i++)
    json_builder_add_int_value (b, r->tokens_per_expert[i]);
  json_builder_end_array (b);
  json_builder_set_member_name (b, "grid");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "width");
  json_builder_add_int_value (b, r->grid_width);
  json_builder_set_member_name (b, "height");
  json_builder_add_int_value (b, r->grid_height);
  json_builder_set_member_name (b, "slices");
  json_builder_add_int_value (b, r->grid_slices);
  json_builder_set_member_name (b, "experts");
  json_builder_begin_array (b);
  for (i = 0; i < r->expert_grid_size; i++)
    json_builder_add_int_value (b, r->expert_grid[i]);
  json_builder_end_array (b);
  json_builder_end_object (b);

  json_builder_set_member_name (b, "scale-mode");
  json_builder_add_string_value (b, r->scale_mode ? r->scale_mode : "");
  add_rect (b, "content", r->content_x, r->content_y, r->content_width, r->content_height);
  add_rect (b, "model", r->model_x, r->model_y, r->model_width, r->model_height);
}

/* inference-region=roi-list: the frame's totals and one object per region result, each its
 * region (id, type, box) and the fields of add_classification. */
static void
add_regions (JsonBuilder * b, GstBuffer * buf, const GstStructure * frame_fields)
{
  guint classified = 0, skipped = 0, n = gst_mone_meta_get_region_count (buf);
  gdouble gflops = 0, latency_ms = 0;

  gst_structure_get_uint (frame_fields, "regions-classified", &classified);
  gst_structure_get_uint (frame_fields, "regions-skipped", &skipped);
  gst_structure_get_double (frame_fields, "gflops", &gflops);
  gst_structure_get_double (frame_fields, "latency-ms", &latency_ms);
  json_builder_set_member_name (b, "inference-region");
  json_builder_add_string_value (b, "roi-list");
  json_builder_set_member_name (b, "regions-classified");
  json_builder_add_int_value (b, classified);
  json_builder_set_member_name (b, "regions-skipped");
  json_builder_add_int_value (b, skipped);
  json_builder_set_member_name (b, "gflops");
  json_builder_add_double_value (b, gflops);
  json_builder_set_member_name (b, "latency-ms");
  json_builder_add_double_value (b, latency_ms);
  json_builder_set_member_name (b, "regions");
  json_builder_begin_array (b);
  for (guint i = 0; i < n; i++) {
    const GstStructure *s = gst_mone_meta_get_region (buf, i);
    MoneClassification r;
    MoneRegion region;

    if (!gst_mone_region_from_structure (s, &region, &r))
      continue;
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "region-id");
    json_builder_add_int_value (b, region.id);
    json_builder_set_member_name (b, "region-type");
    json_builder_add_string_value (b, region.type);
    if (gst_structure_has_field_typed (s, "region-source", G_TYPE_STRING)) {
      json_builder_set_member_name (b, "region-source");
      json_builder_add_string_value (b, gst_structure_get_string (s, "region-source"));
    }
    add_rect (b, "region", region.x, region.y, region.width, region.height);
    add_classification (b, &r, s);
    json_builder_end_object (b);
  }
  json_builder_end_array (b);
}

/* One JSON object, newline-terminated, for this buffer; NULL when it is to be skipped. */
static gchar *
build_line (GstMonePublish * self, GstBuffer * buf, const gchar * stream_id, guint64 frame,
    gboolean skip_unclassified, gsize * length)
{
  g_autoptr (JsonBuilder) b = NULL;
  g_autoptr (JsonGenerator) gen = NULL;
  g_autoptr (JsonNode) root = NULL;
  MoneClassification r;
  GstCustomMeta *meta = gst_buffer_get_mone_meta (buf);
  const GstStructure *fields = meta ? gst_custom_meta_get_structure (meta) : NULL;
  gboolean regions = fields
      && g_strcmp0 (gst_structure_get_string (fields, "inference-region"), "roi-list") == 0;
  gboolean classified = regions || (meta && gst_mone_meta_read (buf, &r));
  gchar *json;
  GString *line;

  if (!classified && skip_unclassified)
    return NULL;

  b = json_builder_new ();
  json_builder_begin_object (b);
  add_time (b, "pts", GST_BUFFER_PTS (buf));
  add_time (b, "dts", GST_BUFFER_DTS (buf));
  add_time (b, "duration", GST_BUFFER_DURATION (buf));
  json_builder_set_member_name (b, "stream-id");
  if (stream_id)
    json_builder_add_string_value (b, stream_id);
  else
    json_builder_add_null_value (b);
  json_builder_set_member_name (b, "frame");
  json_builder_add_int_value (b, (gint64) frame);
  json_builder_set_member_name (b, "classified");
  json_builder_add_boolean_value (b, classified);
  if (regions) {
    guint64 meta_frame = 0;
    gst_structure_get_uint64 (fields, "frame", &meta_frame);
    json_builder_set_member_name (b, "meta-frame");
    json_builder_add_int_value (b, (gint64) meta_frame);
    add_regions (b, buf, fields);
  } else if (classified) {
    json_builder_set_member_name (b, "meta-frame");
    json_builder_add_int_value (b, (gint64) r.frame);
    add_classification (b, &r, fields);
  }
  json_builder_end_object (b);

  root = json_builder_get_root (b);
  gen = json_generator_new ();
  json_generator_set_root (gen, root);
  json = json_generator_to_data (gen, NULL);
  /* json-glib escapes newlines inside strings, so the only one is the terminator */
  line = g_string_new (json);
  g_free (json);
  g_string_append_c (line, '\n');
  *length = line->len;
  return g_string_free (line, FALSE);
}

static GstFlowReturn
gst_mone_publish_transform_ip (GstBaseTransform * trans, GstBuffer * buf)
{
  GstMonePublish *self = GST_MONE_PUBLISH (trans);
  g_autofree gchar *stream_id = NULL;
  g_autofree gchar *line = NULL;
  gboolean skip_unclassified;
  gsize length = 0;
  guint64 frame = self->frames++;

  GST_OBJECT_LOCK (self);
  stream_id = g_strdup (self->stream_id);
  skip_unclassified = self->skip_unclassified;
  GST_OBJECT_UNLOCK (self);

  line = build_line (self, buf, stream_id, frame, skip_unclassified, &length);
  if (!line)
    return GST_FLOW_OK;

#ifdef HAVE_MOSQUITTO
  if (self->mqtt) {
    /* the message is the line without its newline */
    mone_mqtt_enqueue (self->mqtt, line, length - 1);
    return GST_FLOW_OK;
  }
#endif
  {
    /* One write() per line: with O_APPEND, the kernel places it whole at the end of the file. A
     * short write (a full disk, a file size limit, a signal on a pipe) is finished rather than
     * left as half a line that the next one would be glued to. */
    gsize done = 0;
    ssize_t n = 0;
    while (done < length) {
      n = write (self->fd, line + done, length - done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      done += (gsize) n;
    }
    GST_OBJECT_LOCK (self);
    if (done == length)
      self->file_written++;
    else
      self->file_dropped++;
    GST_OBJECT_UNLOCK (self);
    if (done < length) {
      GST_ELEMENT_ERROR (self, RESOURCE, WRITE, ("Could not write results"),
          ("write: %s after %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT " bytes of a line",
              n < 0 ? g_strerror (errno) : "nothing written", done, length));
      return GST_FLOW_ERROR;
    }
  }
  return GST_FLOW_OK;
}
