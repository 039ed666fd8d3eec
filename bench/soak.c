/* soak: does memory stay flat over a long stream?
 *
 * Runs one pipeline per mode for --frames frames and samples the process's resident set size
 * (/proc/self/statm) every --sample-every buffers at the sink:
 *   fixed:   videotestsrc ! monefilter budget=0.5 ! fakesink
 *   auto:    videotestsrc ! monefilter budget-mode=auto ! fakesink
 *   overlay: videotestsrc ! monefilter budget-mode=auto ! moneoverlay ! fakesink
 * The budget changes every 1,000 frames in the fixed mode, so the context sees every routing
 * shape. After a warm-up (the first tenth of the frames) the growth of the RSS is printed per mode,
 * with the verdict "flat" when it stays under --limit-kb. A program that prints figures, not a
 * test: a leak of a few bytes per frame shows here, where the test suite's short runs cannot see it.
 *
 *   GST_PLUGIN_PATH=build/gst build/bench/soak --frames 1000000 --modes fixed,auto,overlay
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gst/gst.h>

typedef struct {
  guint64 buffers;
  guint64 sample_every;
  GArray *rss_kb;     /* (samples) RSS at each sample, kB */
  GstElement *filter; /* monefilter, for the budget changes of the fixed mode */
  gboolean vary_budget;
} SoakProbe;

static long
resident_kb (void)
{
  long pages_total = 0, pages_resident = 0;
  FILE *f = fopen ("/proc/self/statm", "r");
  if (!f)
    return -1;
  if (fscanf (f, "%ld %ld", &pages_total, &pages_resident) != 2)
    pages_resident = -1;
  fclose (f);
  return pages_resident < 0 ? -1 : pages_resident * (sysconf (_SC_PAGESIZE) / 1024);
}

static GstPadProbeReturn
on_buffer (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  SoakProbe *probe = data;
  probe->buffers++;
  if (probe->buffers % probe->sample_every == 0) {
    long kb = resident_kb ();
    g_array_append_val (probe->rss_kb, kb);
  }
  /* Budgets 1, 0.75, 0.5, 0.3, the minimum in turn: every routing shape and capacity. */
  if (probe->vary_budget && probe->buffers % 1000 == 0) {
    static const double budgets[] = { 1.0, 0.75, 0.5, 0.3, 0.0 };
    g_object_set (probe->filter, "budget",
        budgets[(probe->buffers / 1000) % G_N_ELEMENTS (budgets)], NULL);
  }
  return GST_PAD_PROBE_OK;
}

static char *
pipeline_text (const char *mode, const char *model, guint64 frames)
{
  const char *filter = !strcmp (mode, "fixed") ? "monefilter name=f budget=0.5"
                                               : "monefilter name=f budget-mode=auto";
  const char *overlay = !strcmp (mode, "overlay") ? " ! videoconvert ! moneoverlay" : "";
  char *model_prop = model ? g_strdup_printf (" model=\"%s\"", model) : g_strdup ("");
  char *text = g_strdup_printf ("videotestsrc num-buffers=%" G_GUINT64_FORMAT
                                " pattern=ball is-live=false ! "
                                "video/x-raw,format=I420,width=320,height=240,framerate=1000/1 ! "
                                "%s%s%s ! fakesink name=sink sync=false",
      frames, filter, model_prop, overlay);
  g_free (model_prop);
  return text;
}

/* Plays one mode to EOS; returns FALSE (with a message) on an error. */
static gboolean
run_mode (const char *mode, const char *model, guint64 frames, guint64 sample_every, GArray *rss_kb)
{
  char *text = pipeline_text (mode, model, frames);
  GError *error = NULL;
  GstElement *pipeline = gst_parse_launch_full (text, NULL, GST_PARSE_FLAG_FATAL_ERRORS, &error);
  g_free (text);
  if (!pipeline) {
    fprintf (stderr, "soak: %s: %s\n", mode, error->message);
    g_clear_error (&error);
    return FALSE;
  }
  SoakProbe probe = { .sample_every = sample_every,
    .rss_kb = rss_kb,
    .vary_budget = !strcmp (mode, "fixed") };
  probe.filter = gst_bin_get_by_name (GST_BIN (pipeline), "f");
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  GstPad *pad = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, on_buffer, &probe, NULL);
  gst_object_unref (pad);
  gst_object_unref (sink);

  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  gboolean ok = msg && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS;
  if (msg && !ok) {
    gchar *debug = NULL;
    gst_message_parse_error (msg, &error, &debug);
    fprintf (stderr, "soak: %s: %s (%s)\n", mode, error->message, debug ? debug : "");
    g_clear_error (&error);
    g_free (debug);
  }
  if (msg)
    gst_message_unref (msg);
  gst_object_unref (bus);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (probe.filter);
  gst_object_unref (pipeline);
  if (ok && probe.buffers != frames) {
    fprintf (stderr,
        "soak: %s: %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " frames reached the sink\n", mode,
        probe.buffers, frames);
    ok = FALSE;
  }
  return ok;
}

int
main (int argc, char **argv)
{
  gint64 frames = 1000000, sample_every = 10000, limit_kb = 1024;
  char *modes = NULL, *model = NULL;
  GOptionEntry entries[] = {
    { "frames", 'n', 0, G_OPTION_ARG_INT64, &frames, "frames per mode (default 1000000)", "N" },
    { "sample-every", 0, 0, G_OPTION_ARG_INT64, &sample_every,
        "frames between RSS samples (default 10000)", "N" },
    { "modes", 0, 0, G_OPTION_ARG_STRING, &modes,
        "comma-separated: fixed, auto, overlay (default all)", "LIST" },
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model, "model file (default: monefilter's default)",
        "FILE" },
    { "limit-kb", 0, 0, G_OPTION_ARG_INT64, &limit_kb,
        "growth after warm-up counted as flat (default 1024)", "KB" },
    G_OPTION_ENTRY_NULL,
  };
  GOptionContext *octx = g_option_context_new ("- RSS over a long stream through monefilter");
  g_option_context_add_main_entries (octx, entries, NULL);
  g_option_context_add_group (octx, gst_init_get_option_group ());
  GError *error = NULL;
  if (!g_option_context_parse (octx, &argc, &argv, &error)) {
    fprintf (stderr, "soak: %s\n", error->message);
    return 2;
  }
  g_option_context_free (octx);
  if (frames < 10 || sample_every < 1 || sample_every > frames / 10) {
    fprintf (stderr, "soak: --frames must be >= 10 and --sample-every at most a tenth of it\n");
    return 2;
  }
  char **mode_list = g_strsplit (modes ? modes : "fixed,auto,overlay", ",", -1);
  int status = 0;
  printf ("%-8s %10s %12s %12s %12s %10s  %s\n", "mode", "frames", "RSS warm kB", "RSS end kB",
      "growth kB", "max-min", "verdict");
  for (int i = 0; mode_list[i]; i++) {
    const char *mode = mode_list[i];
    if (strcmp (mode, "fixed") && strcmp (mode, "auto") && strcmp (mode, "overlay")) {
      fprintf (stderr, "soak: unknown mode '%s' (fixed, auto, overlay)\n", mode);
      status = 2;
      break;
    }
    GArray *rss = g_array_new (FALSE, FALSE, sizeof (long));
    gint64 t0 = g_get_monotonic_time ();
    if (!run_mode (mode, model, (guint64) frames, (guint64) sample_every, rss)) {
      g_array_free (rss, TRUE);
      status = 1;
      continue;
    }
    /* Warm-up: the first tenth of the samples (caches, pools, the budget controller's history). */
    guint warm = rss->len / 10;
    long at_warm = g_array_index (rss, long, warm),
         at_end = g_array_index (rss, long, rss->len - 1);
    long lo = at_warm, hi = at_warm;
    for (guint k = warm; k < rss->len; k++) {
      lo = MIN (lo, g_array_index (rss, long, k));
      hi = MAX (hi, g_array_index (rss, long, k));
    }
    gboolean flat = at_end - at_warm < limit_kb && hi - lo < limit_kb;
    printf ("%-8s %10" G_GINT64_FORMAT " %12ld %12ld %12ld %10ld  %s (%.0f s)\n", mode, frames,
        at_warm, at_end, at_end - at_warm, hi - lo, flat ? "flat" : "GROWS",
        (g_get_monotonic_time () - t0) / 1e6);
    fflush (stdout);
    if (!flat)
      status = 1;
    g_array_free (rss, TRUE);
  }
  g_strfreev (mode_list);
  g_free (modes);
  g_free (model);
  return status;
}
