/* Frames per second of a GStreamer pipeline (pipeline-timing.h). */
#include "pipeline-timing.h"

typedef struct {
  guint64 buffers;
  gint64 first_us, last_us;
} SinkTiming;

static GstPadProbeReturn
count_sink_buffer (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  SinkTiming *timing = user_data;
  const gint64 now = g_get_monotonic_time ();

  if (timing->buffers++ == 0)
    timing->first_us = now;
  timing->last_us = now;
  return GST_PAD_PROBE_OK;
}

double
bench_pipeline_fps (const char *description, GError **error)
{
  GstElement *pipeline = gst_parse_launch (description, error);
  if (pipeline && error && *error) /* a bad property value: a pipeline and an error */
    g_clear_object (&pipeline);
  if (!pipeline)
    return -1.0;
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  if (!sink) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED, "no element named \"sink\" in: %s",
        description);
    gst_object_unref (pipeline);
    return -1.0;
  }
  SinkTiming timing = { 0 };
  GstPad *pad = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, count_sink_buffer, &timing, NULL);
  gst_object_unref (pad);
  gst_object_unref (sink);

  double fps = -1.0;
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    GError *err = NULL;
    char *debug = NULL;
    gst_message_parse_error (msg, &err, &debug);
    g_set_error (error, err->domain, err->code, "%s (%s)", err->message, debug ? debug : "");
    g_error_free (err);
    g_free (debug);
  } else if (timing.buffers < 2) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED,
        "only %" G_GUINT64_FORMAT " buffers reached the sink", timing.buffers);
  } else {
    fps = (timing.buffers - 1) / ((timing.last_us - timing.first_us) * 1e-6);
  }
  gst_message_unref (msg);
  gst_object_unref (bus);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  return fps;
}

gboolean
bench_has_element (const char *name)
{
  GstElementFactory *factory = gst_element_factory_find (name);
  if (factory)
    gst_object_unref (factory);
  return factory != NULL;
}
