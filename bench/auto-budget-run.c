/* Helper of bench/auto-budget.sh: runs monefilter in a live pipeline and counts late frames.
 *
 *   auto-budget-run measure MODEL FRAMES
 *     videotestsrc (not live) ! 224x224 ! monefilter budget=1 threads=1 ! fakesink sync=false;
 *     prints the frame rate budget 1.0 sustains ("fps <value>").
 *   auto-budget-run run MODEL FPS SECONDS fixed|auto hog|nohog [direct|queue]
 *     videotestsrc is-live=true at FPS ! monefilter ! [queue !] fakesink sync=true qos=true for
 *     SECONDS (a queue with `queue`; `direct` is the default); with `hog`, a busy-loop child process
 *     (inheriting this process's CPU affinity, so run it under taskset) starts halfway. Prints the
 *     pipeline latency, per half frames, late frames, worst lateness and the mean budget, then the
 *     budget trace (mean budget per quarter second).
 *
 * A frame is late when it reaches the sink after the clock time the sink should render it at
 * (running time + the pipeline latency the sink was configured with): exactly what a display would
 * show as a stutter. Budgets come from monefilter's per-result element messages. */
#include <gst/gst.h>
#include <gst/base/gstbasesink.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TRACE_STEP (GST_SECOND / 4)
#define MAX_TRACE 4096

/* A buffer reaching the sink: its running time and the clock's running time when it came. Lateness
 * is computed after the run against the latency the sink ended up with: the first buffer of a live
 * pipeline arrives before the latency is configured (it is what completes the state change). */
typedef struct {
  GstClockTime running, arrival;
  double budget, latency_ms;
  gboolean reused;
} Arrival;

typedef struct {
  GstElement *pipeline;
  GstElement *sink;
  GstClockTime half; /* running time at which the second half starts */
  /* Streaming thread (probes) */
  guint produced[2]; /* buffers leaving the source */
  GArray *arrivals;  /* Arrival per buffer reaching the sink */
  /* Computed after the run */
  guint frames[2], late[2]; /* buffers reaching the sink, and the late ones among them */
  guint reused[2];          /* of those, frames that carried an earlier result (not classified) */
  GstClockTimeDiff worst_lateness[2];
  /* Main thread (bus) */
  double budget_sum[2];
  guint budget_count[2];
  double trace_sum[MAX_TRACE];
  guint trace_count[MAX_TRACE];
  guint qos_messages;
  gboolean error;
  gboolean verbose; /* AUTO_BUDGET_VERBOSE=1: a line per frame */
} RunStats;

static GstPadProbeReturn
count_late (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  RunStats *stats = user_data;
  GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER (info);
  GstEvent *segment_event = gst_pad_get_sticky_event (pad, GST_EVENT_SEGMENT, 0);
  GstClock *clock = gst_element_get_clock (stats->sink);

  if (segment_event && clock && GST_BUFFER_PTS_IS_VALID (buffer)) {
    const GstSegment *segment;
    gst_event_parse_segment (segment_event, &segment);
    GstClockTime running = gst_segment_to_running_time (segment, GST_FORMAT_TIME,
        GST_BUFFER_PTS (buffer));
    Arrival arrival = { running,
      gst_clock_get_time (clock) - gst_element_get_base_time (stats->sink), NAN, NAN, FALSE };
    GstCustomMeta *meta = gst_buffer_get_custom_meta (buffer, "GstMoneMeta");
    if (meta) {
      GstStructure *s = gst_custom_meta_get_structure (meta);
      gst_structure_get_double (s, "budget-used", &arrival.budget);
      gst_structure_get_double (s, "latency-ms", &arrival.latency_ms);
      gst_structure_get_boolean (s, "reused", &arrival.reused);
    }
    g_array_append_val (stats->arrivals, arrival);
  }
  if (clock)
    gst_object_unref (clock);
  if (segment_event)
    gst_event_unref (segment_event);
  return GST_PAD_PROBE_OK;
}

/* Buffers the source produced, by the half their timestamp falls in: produced - frames = dropped
 * (by monefilter's QoS handling, for instance). */
static GstPadProbeReturn
count_produced (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  RunStats *stats = user_data;
  GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER (info);
  if (GST_BUFFER_PTS_IS_VALID (buffer))
    stats->produced[GST_BUFFER_PTS (buffer) >= stats->half]++;
  return GST_PAD_PROBE_OK;
}

static gboolean
structure_get_number (const GstStructure *s, const char *a, const char *b, double *value)
{
  return gst_structure_get_double (s, a, value) || gst_structure_get_double (s, b, value);
}

static void
on_element_message (RunStats *stats, GstMessage *message)
{
  const GstStructure *s = gst_message_get_structure (message);
  double budget;
  guint64 running = GST_CLOCK_TIME_NONE;

  if (!s || !gst_structure_has_name (s, "mone-classification"))
    return;
  if (!structure_get_number (s, "budget-used", "budget_used", &budget))
    return;
  if (!gst_structure_get_uint64 (s, "running-time", &running)
      && !gst_structure_get_uint64 (s, "timestamp", &running))
    return;
  int half = running >= stats->half;
  stats->budget_sum[half] += budget;
  stats->budget_count[half]++;
  guint slot = running / TRACE_STEP;
  if (slot < MAX_TRACE) {
    stats->trace_sum[slot] += budget;
    stats->trace_count[slot]++;
  }
}

static pid_t
start_hog (void)
{
  pid_t pid = fork ();
  if (pid == 0) {
    volatile unsigned long spin = 0;
    for (;;)
      spin++;
  }
  return pid;
}

#define WARMUP_FRAMES 10

typedef struct {
  guint buffers;
  gint64 first_us, last_us; /* monotonic times at the WARMUP_FRAMES-th and the last buffer */
} MeasureStats;

static GstPadProbeReturn
time_buffers (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  MeasureStats *stats = user_data;
  gint64 now = g_get_monotonic_time ();
  if (++stats->buffers == WARMUP_FRAMES)
    stats->first_us = now;
  stats->last_us = now;
  return GST_PAD_PROBE_OK;
}

static int
measure (const char *model, int frames)
{
  MeasureStats stats = { 0 };
  char *description = g_strdup_printf (
      "videotestsrc num-buffers=%d pattern=smpte ! "
      "video/x-raw,format=RGB,width=224,height=224,framerate=30/1 ! "
      "monefilter model=\"%s\" budget=1.0 threads=1 ! fakesink name=sink sync=false",
      frames + WARMUP_FRAMES, model);
  GError *error = NULL;
  GstElement *pipeline = gst_parse_launch_full (description, NULL, GST_PARSE_FLAG_FATAL_ERRORS,
      &error);
  g_free (description);
  if (!pipeline) {
    fprintf (stderr, "pipeline: %s\n", error->message);
    g_error_free (error);
    return 1;
  }
  /* The first frames warm caches and allocate workspaces: time from the WARMUP_FRAMES-th on. */
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  GstPad *pad = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, time_buffers, &stats, NULL);
  gst_object_unref (pad);
  gst_object_unref (sink);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  int status = 0;
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    GError *err;
    gst_message_parse_error (msg, &err, NULL);
    fprintf (stderr, "error: %s\n", err->message);
    g_error_free (err);
    status = 1;
  } else {
    printf ("fps %.3f\n",
        (stats.buffers - WARMUP_FRAMES) / ((stats.last_us - stats.first_us) / 1e6));
  }
  gst_message_unref (msg);
  gst_object_unref (bus);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  return status;
}

static int
run (const char *model, double fps, double seconds, const char *mode, gboolean hog, gboolean queued)
{
  RunStats stats = { 0 };
  int fps_num = (int) (fps * 1000 + 0.5), fps_den = 1000;
  int frames = (int) (fps * seconds);
  char *description = g_strdup_printf (
      "videotestsrc name=source is-live=true num-buffers=%d pattern=smpte ! "
      "video/x-raw,format=RGB,width=224,height=224,framerate=%d/%d ! "
      "monefilter name=filter model=\"%s\" budget=1.0 threads=1 budget-mode=%s message=true ! "
      "%s fakesink name=sink sync=true qos=true",
      frames, fps_num, fps_den, model, mode, queued ? "queue !" : "");
  GError *error = NULL;
  stats.pipeline = gst_parse_launch_full (description, NULL, GST_PARSE_FLAG_FATAL_ERRORS, &error);
  g_free (description);
  if (!stats.pipeline) {
    fprintf (stderr, "pipeline: %s\n", error->message);
    g_error_free (error);
    return 1;
  }
  stats.half = (GstClockTime) (seconds / 2 * GST_SECOND);
  stats.arrivals = g_array_new (FALSE, FALSE, sizeof (Arrival));
  stats.verbose = g_getenv ("AUTO_BUDGET_VERBOSE") && atoi (g_getenv ("AUTO_BUDGET_VERBOSE"));
  stats.sink = gst_bin_get_by_name (GST_BIN (stats.pipeline), "sink");
  GstPad *sinkpad = gst_element_get_static_pad (stats.sink, "sink");
  gst_pad_add_probe (sinkpad, GST_PAD_PROBE_TYPE_BUFFER, count_late, &stats, NULL);
  gst_object_unref (sinkpad);
  GstElement *source = gst_bin_get_by_name (GST_BIN (stats.pipeline), "source");
  GstPad *srcpad = gst_element_get_static_pad (source, "src");
  gst_pad_add_probe (srcpad, GST_PAD_PROBE_TYPE_BUFFER, count_produced, &stats, NULL);
  gst_object_unref (srcpad);
  gst_object_unref (source);

  gst_element_set_state (stats.pipeline, GST_STATE_PLAYING);
  GstBus *bus = gst_element_get_bus (stats.pipeline);
  pid_t hog_pid = 0;
  gint64 start = g_get_monotonic_time ();
  gboolean done = FALSE;
  while (!done) {
    GstMessage *msg = gst_bus_timed_pop (bus, 20 * GST_MSECOND);
    if (hog && !hog_pid && g_get_monotonic_time () - start >= seconds / 2 * 1e6)
      hog_pid = start_hog ();
    if (!msg)
      continue;
    switch (GST_MESSAGE_TYPE (msg)) {
      case GST_MESSAGE_EOS:
        done = TRUE;
        break;
      case GST_MESSAGE_ERROR: {
        GError *err;
        char *debug;
        gst_message_parse_error (msg, &err, &debug);
        fprintf (stderr, "error: %s (%s)\n", err->message, debug ? debug : "");
        g_error_free (err);
        g_free (debug);
        stats.error = done = TRUE;
        break;
      }
      case GST_MESSAGE_QOS:
        stats.qos_messages++;
        break;
      case GST_MESSAGE_LATENCY:
        /* An element's latency changed (monefilter's max-latency follows the caps): what
         * gst-launch does too. */
        gst_bin_recalculate_latency (GST_BIN (stats.pipeline));
        break;
      case GST_MESSAGE_ELEMENT:
        on_element_message (&stats, msg);
        break;
      default:
        break;
    }
    gst_message_unref (msg);
  }
  GstClockTime latency = gst_base_sink_get_latency (GST_BASE_SINK (stats.sink));
  if (hog_pid > 0) {
    kill (hog_pid, SIGKILL);
    waitpid (hog_pid, NULL, 0);
  }
  gst_element_set_state (stats.pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (stats.sink);
  gst_object_unref (stats.pipeline);
  /* The streaming thread has stopped: the arrivals are complete. */
  for (guint i = 0; i < stats.arrivals->len; i++) {
    const Arrival *a = &g_array_index (stats.arrivals, Arrival, i);
    /* Late: after the clock time the sink renders it at (running time + pipeline latency). */
    GstClockTimeDiff lateness = GST_CLOCK_DIFF (a->running + latency, a->arrival);
    int half = a->running >= stats.half;
    if (stats.verbose)
      /* One line per frame: when it was due, how late it came, what monefilter spent on it. */
      printf ("frame running-s %.3f lateness-ms %8.2f budget %.3f latency-ms %7.2f%s\n",
          a->running / 1e9, lateness / 1e6, a->budget, a->latency_ms, a->reused ? " reused" : "");
    stats.frames[half]++;
    if (lateness > 0)
      stats.late[half]++;
    if (a->reused)
      stats.reused[half]++;
    stats.worst_lateness[half] = MAX (stats.worst_lateness[half], lateness);
  }
  g_array_free (stats.arrivals, TRUE);
  if (stats.error)
    return 1;

  printf ("mode %s hog %s %s fps %.3f seconds %.1f pipeline-latency-ms %.1f\n", mode,
      hog ? "yes" : "no", queued ? "queue" : "direct", fps, seconds, latency / 1e6);
  for (int half = 0; half < 2; half++)
    printf ("half %d: produced %u dropped %u rendered %u late %u (late+dropped %.2f%%) "
            "worst-lateness-ms %.2f mean-budget %.3f reused %u\n",
        half + 1, stats.produced[half],
        stats.produced[half] - MIN (stats.frames[half], stats.produced[half]), stats.frames[half],
        stats.late[half],
        100.0
            * (stats.late[half] + stats.produced[half]
                - MIN (stats.frames[half], stats.produced[half]))
            / MAX (stats.produced[half], 1),
        stats.worst_lateness[half] / 1e6,
        stats.budget_count[half] ? stats.budget_sum[half] / stats.budget_count[half] : NAN,
        stats.reused[half]);
  printf ("qos-messages %u\n", stats.qos_messages);
  printf ("trace (mean budget per %.2f s):", TRACE_STEP / 1e9);
  for (guint slot = 0; slot < MAX_TRACE && slot * TRACE_STEP < seconds * GST_SECOND; slot++)
    printf (" %.2f",
        stats.trace_count[slot] ? stats.trace_sum[slot] / stats.trace_count[slot] : NAN);
  printf ("\n");
  return 0;
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  if (argc == 4 && !strcmp (argv[1], "measure"))
    return measure (argv[2], atoi (argv[3]));
  if ((argc == 7 || argc == 8) && !strcmp (argv[1], "run"))
    return run (argv[2], g_ascii_strtod (argv[3], NULL), g_ascii_strtod (argv[4], NULL), argv[5],
        !strcmp (argv[6], "hog"), argc == 8 && !strcmp (argv[7], "queue"));
  fprintf (stderr,
      "usage: %s measure MODEL FRAMES\n"
      "       %s run MODEL FPS SECONDS fixed|auto hog|nohog [direct|queue]\n",
      argv[0], argv[0]);
  return 2;
}
