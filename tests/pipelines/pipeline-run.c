/* See pipeline-run.h. */
#include "pipeline-run.h"

#include <string.h>

#include <gst/gst.h>
#include <mone/gstmonemeta.h>

static GstPadProbeReturn
collect_frame (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  PipelineRun *run = user_data;
  FrameResult frame = {.top_class = -1 };
  MoneClassification result;

  if (gst_mone_meta_read (GST_PAD_PROBE_INFO_BUFFER (info), &result)) {
    frame.has_meta = TRUE;
    frame.top_class = result.top_class;
    frame.top_score = result.top_score;
    frame.budget_used = result.budget_used;
    frame.gflops = result.gflops;
    frame.reused = result.reused;
  }
  /* the probe runs in the streaming thread; the main thread reads only after EOS and NULL */
  g_array_append_val (run->frames, frame);
  return GST_PAD_PROBE_OK;
}

gboolean
pipeline_run (const char *description, guint timeout_seconds, PipelineRun * run, GError ** error)
{
  GstElement *pipeline = gst_parse_launch (description, error);
  GstElement *sink;
  GstPad *pad;
  GstBus *bus;
  gint64 deadline;
  gboolean ok = TRUE;

  memset (run, 0, sizeof *run);
  run->frames = g_array_new (FALSE, TRUE, sizeof (FrameResult));
  if (pipeline && error && *error)      /* a bad property value: a pipeline and an error */
    g_clear_object (&pipeline);
  if (!pipeline)
    return FALSE;
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  g_assert (sink != NULL);
  pad = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, collect_frame, run, NULL);
  gst_object_unref (pad);
  gst_object_unref (sink);

  bus = gst_element_get_bus (pipeline);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  deadline = g_get_monotonic_time () + (gint64) timeout_seconds *G_USEC_PER_SEC;
  while (TRUE) {
    gint64 left = deadline - g_get_monotonic_time ();
    GstMessage *msg;

    if (left <= 0)
      break;
    msg = gst_bus_timed_pop_filtered (bus, left * GST_USECOND,
        GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_ELEMENT);
    if (!msg)
      break;
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ELEMENT) {
      const GstStructure *s = gst_message_get_structure (msg);

      if (s && gst_structure_has_name (s, "mone-classification"))
        run->messages++;
    } else if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
      GError *err = NULL;
      char *debug = NULL;

      gst_message_parse_error (msg, &err, &debug);
      g_set_error (error, err->domain, err->code, "%s: %s (%s)", GST_OBJECT_NAME (msg->src),
          err->message, debug ? debug : "no details");
      g_error_free (err);
      g_free (debug);
      ok = FALSE;
    } else {
      run->eos = TRUE;
    }
    gst_message_unref (msg);
    if (!ok || run->eos)
      break;
  }
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (pipeline);
  return ok;
}

void
pipeline_run_clear (PipelineRun * run)
{
  if (run->frames)
    g_array_free (run->frames, TRUE);
  memset (run, 0, sizeof *run);
}

gboolean
run_tool (const char *const *argv, GError ** error)
{
  char *err_text = NULL;
  int wait_status = 0;
  gboolean ok;

  ok = g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL,
      &err_text, &wait_status, error)
      && g_spawn_check_wait_status (wait_status, error);
  if (!ok && error && *error) {
    char *joined = g_strjoinv (" ", (char **) argv);

    g_prefix_error (error, "%s: %s: ", joined, err_text ? g_strstrip (err_text) : "");
    g_free (joined);
  }
  g_free (err_text);
  return ok;
}

char *
pipeline_quote (const char *path)
{
  GString *s = g_string_new ("\"");

  for (const char *p = path; *p; p++) {
    if (*p == '"' || *p == '\\')
      g_string_append_c (s, '\\');
    g_string_append_c (s, *p);
  }
  g_string_append_c (s, '"');
  return g_string_free (s, FALSE);
}
