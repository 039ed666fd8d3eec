/* mone-example: a minimal application around monefilter.
 *
 * Plays SOURCE ! monefilter ! fakesink (in real time), prints each classification from the buffer
 * meta through the meta library (include/mone/gstmonemeta.h), and changes the budget while it
 * plays, from stdin and/or a timer:
 *
 *   +  / -        raise / lower the budget by 0.1
 *   0.35          set the budget to a number in (0, 1]
 *   q             quit
 *
 *   mone-example --model models/scene-mone.safetensors --video pipelines/sample/scene.mp4
 *   mone-example --model M --sweep 2 "videotestsrc is-live=true pattern=ball"
 *
 * --sweep S lowers the budget by 0.1 every S seconds (back to 1.0 after the minimum); the budget
 * takes effect on the next frame, which the printed lines show.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gst/gst.h>
#include <mone/gstmonemeta.h>

#define BUDGET_STEP 0.1

typedef struct {
  GMainLoop *loop;
  GstElement *pipeline;
  GstElement *filter;
  double min_budget;
  int print_every; /* print every Nth fresh result */
  guint64 results; /* fresh results seen (streaming thread) */
  int status;
} ExampleApp;

/* Streaming thread: one line per fresh result (every print_every-th). */
static GstPadProbeReturn
print_result (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  ExampleApp *app = user_data;
  GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER (info);
  MoneClassification result;
  GString *experts;

  if (!gst_mone_meta_read (buffer, &result) || result.reused)
    return GST_PAD_PROBE_OK;
  if (app->results++ % app->print_every)
    return GST_PAD_PROBE_OK;

  /* share of tokens per expert, smallest first: where the compute went */
  experts = g_string_new ("");
  for (int j = 0; j < result.experts; j++)
    g_string_append_printf (experts, "%s%3.0f%%", j ? " " : "",
        100.0 * result.tokens_per_expert[j] / MAX (result.tokens, 1));
  printf ("%8.3fs  %-12s %5.1f%%  budget %.2f (used %.2f)  %7.4f GFLOPs  %6.2f ms  experts [%s]\n",
      GST_BUFFER_PTS_IS_VALID (buffer) ? GST_BUFFER_PTS (buffer) / (double) GST_SECOND : -1.0,
      result.label, 100.0 * result.top_score, result.budget_requested, result.budget_used,
      result.gflops, result.latency_ms, experts->str);
  fflush (stdout);
  g_string_free (experts, TRUE);
  return GST_PAD_PROBE_OK;
}

static double
get_budget (ExampleApp *app)
{
  double budget;

  g_object_get (app->filter, "budget", &budget, NULL);
  return budget;
}

static void
set_budget (ExampleApp *app, double budget)
{
  budget = CLAMP (budget, app->min_budget, 1.0);
  g_object_set (app->filter, "budget", budget, NULL);
  printf ("-- budget set to %.3f\n", budget);
  fflush (stdout);
}

static gboolean
on_stdin (GIOChannel *channel, GIOCondition condition, gpointer user_data)
{
  ExampleApp *app = user_data;
  char *line = NULL;
  GIOStatus status = g_io_channel_read_line (channel, &line, NULL, NULL, NULL);

  if (status == G_IO_STATUS_EOF) {
    g_free (line);
    return G_SOURCE_REMOVE; /* stdin closed: keep playing, the timer or EOS ends it */
  }
  if (status == G_IO_STATUS_ERROR) {
    printf ("-- could not read that line; commands: + - q or a budget in (0, 1]\n");
    g_free (line);
    return G_SOURCE_CONTINUE;
  }
  if (line) {
    char *cmd = g_strstrip (line), *end;
    double value;

    if (!strcmp (cmd, "+"))
      set_budget (app, get_budget (app) + BUDGET_STEP);
    else if (!strcmp (cmd, "-"))
      set_budget (app, get_budget (app) - BUDGET_STEP);
    else if (!strcmp (cmd, "q"))
      g_main_loop_quit (app->loop);
    else if (*cmd && (value = g_ascii_strtod (cmd, &end), end != cmd && !*end) && value > 0.0
        && value <= 1.0)
      set_budget (app, value);
    else if (*cmd)
      printf ("-- commands: + - q or a budget in (0, 1]; got '%s'\n", cmd);
  }
  g_free (line);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_sweep_timer (gpointer user_data)
{
  ExampleApp *app = user_data;
  double budget = get_budget (app);

  /* step down; after the minimum start again at the full model */
  set_budget (app, budget <= app->min_budget + 1e-9 ? 1.0 : budget - BUDGET_STEP);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_bus_message (GstBus *bus, GstMessage *msg, gpointer user_data)
{
  ExampleApp *app = user_data;

  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_EOS:
      g_main_loop_quit (app->loop);
      break;
    case GST_MESSAGE_ERROR: {
      GError *err = NULL;
      char *debug = NULL;

      gst_message_parse_error (msg, &err, &debug);
      fprintf (stderr, "mone-example: %s: %s\n  (%s)\n", GST_OBJECT_NAME (msg->src), err->message,
          debug ? debug : "no details");
      g_error_free (err);
      g_free (debug);
      app->status = 1;
      g_main_loop_quit (app->loop);
      break;
    }
    default:
      break;
  }
  return G_SOURCE_CONTINUE;
}

int
main (int argc, char **argv)
{
  char *model_path = NULL, *video = NULL, *scale_mode = NULL;
  double budget = 1.0, sweep = 0.0;
  int print_every = 1, threads = 0;
  GOptionEntry entries[] = { { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model_path,
                                 "Model file (default: monefilter's default model)", "FILE" },
    { "video", 'v', 0, G_OPTION_ARG_FILENAME, &video,
        "Play this file (filesrc ! decodebin) instead of SOURCE", "FILE" },
    { "budget", 'b', 0, G_OPTION_ARG_DOUBLE, &budget, "Starting budget (default 1.0)", "E" },
    { "sweep", 's', 0, G_OPTION_ARG_DOUBLE, &sweep,
        "Lower the budget by 0.1 every S seconds (0 = off)", "S" },
    { "print-every", 'p', 0, G_OPTION_ARG_INT, &print_every, "Print every Nth result (default 1)",
        "N" },
    { "threads", 't', 0, G_OPTION_ARG_INT, &threads, "monefilter threads (0 = all cores)", "N" },
    { "scale-mode", 0, 0, G_OPTION_ARG_STRING, &scale_mode,
        "stretch, letterbox or crop (default: the element's stretch; full-frame samples: crop)",
        "MODE" },
    G_OPTION_ENTRY_NULL };
  GOptionContext *octx = g_option_context_new ("[SOURCE] - play a pipeline through monefilter "
                                               "and change its budget while it plays");
  ExampleApp app = { 0 };
  GError *error = NULL;
  char *source = NULL, *description = NULL;
  GIOChannel *stdin_channel = NULL;
  GstBus *bus = NULL;
  GstPad *pad;
  guint bus_watch = 0;

  g_option_context_add_main_entries (octx, entries, NULL);
  g_option_context_add_group (octx, gst_init_get_option_group ());
  if (!g_option_context_parse (octx, &argc, &argv, &error)) {
    fprintf (stderr, "mone-example: %s\n", error->message);
    app.status = 2;
    goto out;
  }
  if (!(budget > 0.0 && budget <= 1.0) || !(sweep >= 0.0) || print_every < 1 || threads < 0
      || threads > 256) {
    fprintf (stderr,
        "mone-example: --budget in (0, 1], --sweep >= 0, --print-every >= 1, "
        "--threads 0..256\n");
    app.status = 2;
    goto out;
  }
  /* Paths are set as properties once the pipeline exists, not written into the description,
   * so no path needs quoting. */
  source = g_strdup (video ? "filesrc name=file ! decodebin"
          : argc > 1       ? argv[1]
                           : "videotestsrc is-live=true pattern=ball");
  /* sync=true: the file plays at its own frame rate, so there is time to type */
  description = g_strdup_printf ("%s ! videoconvert ! monefilter name=mone budget=%.17g "
                                 "threads=%d%s%s ! fakesink sync=true",
      source, budget, threads, scale_mode ? " scale-mode=" : "", scale_mode ? scale_mode : "");
  printf ("pipeline: %s\n", description);
  /* a bad property value leaves a pipeline *and* an error: both mean "no" */
  if (!(app.pipeline = gst_parse_launch (description, &error)) || error) {
    fprintf (stderr, "mone-example: %s\n", error->message);
    app.status = 1;
    goto out;
  }
  app.filter = gst_bin_get_by_name (GST_BIN (app.pipeline), "mone");
  if (model_path)
    g_object_set (app.filter, "model", model_path, NULL);
  if (video) {
    GstElement *file = gst_bin_get_by_name (GST_BIN (app.pipeline), "file");

    g_object_set (file, "location", video, NULL);
    gst_object_unref (file);
  }
  app.loop = g_main_loop_new (NULL, FALSE);
  app.print_every = print_every;

  bus = gst_element_get_bus (app.pipeline);
  bus_watch = gst_bus_add_watch (bus, on_bus_message, &app);
  pad = gst_element_get_static_pad (app.filter, "src");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, print_result, &app, NULL);
  gst_object_unref (pad);

  /* the model loads on READY->PAUSED; only then is its minimum budget known */
  if (gst_element_set_state (app.pipeline, GST_STATE_PAUSED) == GST_STATE_CHANGE_FAILURE
      || gst_element_get_state (app.pipeline, NULL, NULL, 30 * GST_SECOND)
          == GST_STATE_CHANGE_FAILURE) {
    /* The state change can report failure before the element that failed has posted why. */
    GstMessage *msg = gst_bus_timed_pop_filtered (bus, 2 * GST_SECOND, GST_MESSAGE_ERROR);

    if (msg) {
      on_bus_message (bus, msg, &app);
      gst_message_unref (msg);
    } else {
      fprintf (stderr, "mone-example: the pipeline does not start\n");
    }
    app.status = 1;
    goto out;
  }
  g_object_get (app.filter, "min-budget", &app.min_budget, NULL);
  printf ("model minimum budget %.4f; type + - q or a budget and Enter\n", app.min_budget);

  stdin_channel = g_io_channel_unix_new (0);
  /* Raw bytes: with GLib's default UTF-8 decoding one invalid byte would end stdin control. */
  g_io_channel_set_encoding (stdin_channel, NULL, NULL);
  g_io_add_watch (stdin_channel, G_IO_IN | G_IO_HUP | G_IO_ERR, on_stdin, &app);
  if (sweep > 0.0)
    g_timeout_add ((guint) (sweep * 1000.0), on_sweep_timer, &app);

  gst_element_set_state (app.pipeline, GST_STATE_PLAYING);
  g_main_loop_run (app.loop);
  /* Stopped first: the streaming thread's probe counts results until then. */
  gst_element_set_state (app.pipeline, GST_STATE_NULL);
  printf ("%" G_GUINT64_FORMAT " results\n", app.results);

out:
  if (app.pipeline)
    gst_element_set_state (app.pipeline, GST_STATE_NULL);
  if (bus_watch)
    g_source_remove (bus_watch);
  if (bus)
    gst_object_unref (bus);
  if (stdin_channel)
    g_io_channel_unref (stdin_channel);
  if (app.filter)
    gst_object_unref (app.filter);
  if (app.pipeline)
    gst_object_unref (app.pipeline);
  if (app.loop)
    g_main_loop_unref (app.loop);
  g_clear_error (&error);
  g_option_context_free (octx);
  g_free (source);
  g_free (description);
  g_free (model_path);
  g_free (video);
  g_free (scale_mode);
  return app.status;
}
