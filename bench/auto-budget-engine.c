/* Helper of bench/auto-budget.sh: the budget controller driving the engine directly, on the real
 * clock, without GStreamer, so the controller's own behaviour can be told apart from the pipeline's.
 *
 *   auto-budget-engine MODEL measure FRAMES
 *     median latency of budget 1.0 on one thread ("latency-ms <value>", "fps <value>")
 *   auto-budget-engine MODEL run FPS SECONDS fixed|auto hog|nohog
 *     frames "arrive" every 1/FPS s (like a live source); each must be done within one frame period
 *     of its arrival (the deadline monefilter's max-latency defaults to). Frames are never dropped:
 *     a late frame delays the next ones, as in a pipeline. With `hog` a busy-loop child starts
 *     halfway (run under taskset so it shares the core). Prints late frames per half, the mean
 *     budget and a budget trace. */
#include "mone/mone.h"
#include "gstmonebudget.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int
compare_doubles (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
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

int
main (int argc, char **argv)
{
  if (argc < 4) {
    fprintf (stderr,
        "usage: %s MODEL measure FRAMES | MODEL run FPS SECONDS fixed|auto hog|nohog\n", argv[0]);
    return 2;
  }
  GError *error = NULL;
  MoneModel *model = mone_model_load_file (argv[1], &error);
  MoneContext *ctx = model ? mone_context_new (model, 1, &error) : NULL;
  if (!ctx) {
    fprintf (stderr, "%s\n", error->message);
    return 1;
  }
  const MoneConfig *c = mone_model_get_config (model);
  size_t input_size = (size_t) c->frames * c->channels * c->height * c->width;
  float *input = g_new (float, input_size);
  guint32 seed = 1;
  for (size_t i = 0; i < input_size; i++) {
    seed = seed * 1664525u + 1013904223u;
    input[i] = (seed >> 8) / (float) (1u << 24);
  }
  MoneResult result;
  int status = 0;

  if (!strcmp (argv[2], "measure")) {
    int frames = atoi (argv[3]);
    double *latencies = g_new (double, MAX (frames, 1));
    mone_context_run (ctx, input, 1.0, &result, NULL); /* warm-up */
    for (int i = 0; i < frames; i++) {
      gint64 start = g_get_monotonic_time ();
      mone_context_run (ctx, input, 1.0, &result, NULL);
      latencies[i] = (g_get_monotonic_time () - start) / 1000.0;
    }
    qsort (latencies, frames, sizeof (double), compare_doubles);
    double median = latencies[frames / 2];
    printf ("latency-ms %.3f\nfps %.3f\n", median, 1000.0 / median);
    g_free (latencies);
  } else if (!strcmp (argv[2], "run") && argc == 7) {
    double fps = g_ascii_strtod (argv[3], NULL), seconds = g_ascii_strtod (argv[4], NULL);
    gboolean automatic = !strcmp (argv[5], "auto"), hog = !strcmp (argv[6], "hog");
    gint64 period_us = (gint64) (1e6 / fps);
    int frames = (int) (fps * seconds), half_frame = frames / 2;
    GstMoneBudgetController *controller = gst_mone_budget_controller_new (
        mone_model_min_budget (model));
    int late[2] = { 0 }, counted[2] = { 0 };
    double budget_sum[2] = { 0 }, worst_ms[2] = { 0 };
    pid_t hog_pid = 0;
    GString *trace = g_string_new ("");
    double trace_sum = 0;
    int trace_n = 0, trace_every = MAX ((int) (fps / 4), 1);

    mone_context_run (ctx, input, 1.0, &result, NULL);
    gint64 start = g_get_monotonic_time ();
    for (int i = 0; i < frames; i++) {
      int half = i >= half_frame;
      if (hog && half && !hog_pid)
        hog_pid = start_hog ();
      gint64 arrival = start + i * period_us;
      gint64 now = g_get_monotonic_time ();
      if (now < arrival)
        g_usleep (arrival - now);
      double budget = automatic
          ? gst_mone_budget_controller_choose (controller, 1.0, period_us * 1000)
          : 1.0;
      gint64 begin = g_get_monotonic_time ();
      mone_context_run (ctx, input, budget, &result, NULL);
      gint64 end = g_get_monotonic_time ();
      if (automatic)
        gst_mone_budget_controller_observe (controller, result.budget_used, (end - begin) * 1000);
      double lateness_ms = (end - (arrival + period_us)) / 1000.0;
      late[half] += lateness_ms > 0;
      worst_ms[half] = MAX (worst_ms[half], lateness_ms);
      counted[half]++;
      budget_sum[half] += result.budget_used;
      trace_sum += result.budget_used;
      if (++trace_n == trace_every) {
        g_string_append_printf (trace, " %.2f", trace_sum / trace_n);
        trace_sum = 0;
        trace_n = 0;
      }
    }
    if (hog_pid > 0) {
      kill (hog_pid, SIGKILL);
      waitpid (hog_pid, NULL, 0);
    }
    printf ("engine-only %s %s fps %.3f seconds %.1f\n", argv[5], hog ? "hog" : "nohog", fps,
        seconds);
    for (int half = 0; half < 2; half++)
      printf ("half %d: frames %d late %d (%.2f%%) worst-lateness-ms %.1f mean-budget %.3f\n",
          half + 1, counted[half], late[half], 100.0 * late[half] / MAX (counted[half], 1),
          worst_ms[half], budget_sum[half] / MAX (counted[half], 1));
    printf ("trace (mean budget per %d frames):%s\n", trace_every, trace->str);
    g_string_free (trace, TRUE);
    gst_mone_budget_controller_free (controller);
  } else {
    fprintf (stderr, "bad arguments\n");
    status = 2;
  }
  g_free (input);
  mone_context_free (ctx);
  mone_model_unref (model);
  return status;
}
