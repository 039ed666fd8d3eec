/* element-vs-engine: how much of the engine's frame rate survives inside a GStreamer pipeline.
 *
 * For each budget, alternates R runs of
 *   engine:  mone_context_run in a loop on one model-sized input (the floor of any element), and
 *   element: videotestsrc num-buffers=1 ! video/x-raw,width=W,height=H ! imagefreeze num-buffers=N
 *            ! monefilter ! fakesink,
 * and prints the median frames per second of each and the median of the runs' ratios (element /
 * engine, each element run over the engine run just before it). The two are measured side by side
 * in one process, alternating, so that a change in the machine's speed between runs, which moves
 * both medians, cancels in the ratio of neighbouring runs.
 *
 * The element's rate is taken between the first and the last buffer reaching the sink, so model
 * loading and negotiation are not counted; the engine's after one warm-up run, likewise. The
 * source repeats one frame (imagefreeze passes references to it), so that the rate is the
 * element's alone; with --draw, videotestsrc draws every frame in the element's thread, which
 * costs far more than zero for most patterns (about 0.2 ms per 640x480 smpte frame).
 *
 *   element-vs-engine --model models/scene-mone.safetensors --budgets 1,0.5
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gst/gst.h>
#include <mone/mone.h>

#include "pipeline-timing.h"

typedef struct {
  char *model_path;
  char *budgets;
  char *format;
  char *pattern;
  int width, height, frames, runs, threads;
  gboolean queue, draw;
} BenchOptions;

/* Frames per second of `frames` engine runs on one input (after one warm-up run). */
static double
engine_fps (MoneContext *ctx, const float *input, double budget, int frames, GError **error)
{
  MoneResult result;
  gint64 start;

  if (!mone_context_run (ctx, input, budget, &result, error))
    return -1.0;
  start = g_get_monotonic_time ();
  for (int i = 0; i < frames; i++)
    if (!mone_context_run (ctx, input, budget, &result, error))
      return -1.0;
  return frames / ((g_get_monotonic_time () - start) * 1e-6);
}

/* Frames per second of the element pipeline between the first and the last buffer at the sink. */
static double
element_fps (const BenchOptions *opt, double budget, GError **error)
{
  /* one extra buffer: the rate is measured over the gaps between `frames` + 1 arrivals */
  char *source = opt->draw
      ? g_strdup_printf ("videotestsrc num-buffers=%d pattern=%s", opt->frames + 1, opt->pattern)
      : g_strdup_printf ("videotestsrc num-buffers=1 pattern=%s", opt->pattern);
  char *repeat = opt->draw ? g_strdup ("")
      : g_strdup_printf ("imagefreeze num-buffers=%d ! ", opt->frames + 1);
  char *description = g_strdup_printf (
      "%s ! video/x-raw,format=%s,width=%d,height=%d,framerate=30/1 ! %s%s"
      "monefilter name=mone model=\"%s\" budget=%g threads=%d ! fakesink name=sink sync=false",
      source, opt->format, opt->width, opt->height, repeat,
      opt->queue ? "queue max-size-buffers=4 ! " : "", opt->model_path, budget, opt->threads);
  const double fps = bench_pipeline_fps (description, error);
  g_free (description);
  g_free (repeat);
  g_free (source);
  return fps;
}

int
main (int argc, char **argv)
{
  BenchOptions opt = { .width = 640, .height = 480, .frames = 100, .runs = 5, .threads = 0 };
  GOptionEntry entries[] = { { "model", 'm', 0, G_OPTION_ARG_FILENAME, &opt.model_path,
                                 "Model file (required)", "FILE" },
    { "budgets", 'b', 0, G_OPTION_ARG_STRING, &opt.budgets,
        "Comma-separated budgets (default 1,0.5)", "LIST" },
    { "width", 0, 0, G_OPTION_ARG_INT, &opt.width, "Frame width (default 640)", "W" },
    { "height", 0, 0, G_OPTION_ARG_INT, &opt.height, "Frame height (default 480)", "H" },
    { "format", 0, 0, G_OPTION_ARG_STRING, &opt.format, "videotestsrc format (default I420)",
        "FMT" },
    { "frames", 'n', 0, G_OPTION_ARG_INT, &opt.frames, "Frames per run (default 100)", "N" },
    { "runs", 'r', 0, G_OPTION_ARG_INT, &opt.runs, "Runs of each, medians reported (default 5)",
        "R" },
    { "threads", 't', 0, G_OPTION_ARG_INT, &opt.threads,
        "Engine threads, both sides (0 = automatic: 1 for small models, else all cores)", "T" },
    { "pattern", 0, 0, G_OPTION_ARG_STRING, &opt.pattern, "videotestsrc pattern (default smpte)",
        "P" },
    { "draw", 0, 0, G_OPTION_ARG_NONE, &opt.draw,
        "Draw every frame in the source instead of repeating one", NULL },
    { "queue", 'q', 0, G_OPTION_ARG_NONE, &opt.queue,
        "Put a queue before the element, so frames are made in another thread", NULL },
    G_OPTION_ENTRY_NULL };
  GOptionContext *octx = g_option_context_new ("- monefilter frame rate against the bare engine");
  GError *error = NULL;
  MoneModel *model = NULL;
  MoneContext *ctx = NULL;
  float *input = NULL;
  double *engine = NULL, *element = NULL, *ratio = NULL; /* per run, reused for every budget */
  char **budget_list = NULL;
  int status = 1;

  g_option_context_add_main_entries (octx, entries, NULL);
  g_option_context_add_group (octx, gst_init_get_option_group ());
  if (!g_option_context_parse (octx, &argc, &argv, &error)) {
    fprintf (stderr, "element-vs-engine: %s\n", error->message);
    status = 2;
    goto out;
  }
  if (!opt.model_path || opt.frames < 1 || opt.runs < 1) {
    fprintf (stderr, "element-vs-engine: --model FILE is required; --frames and --runs >= 1\n");
    status = 2;
    goto out;
  }
  if (!opt.budgets)
    opt.budgets = g_strdup ("1,0.5");
  if (!opt.format)
    opt.format = g_strdup ("I420");
  if (!opt.pattern)
    opt.pattern = g_strdup ("smpte");
  if (!bench_has_element ("monefilter")) {
    fprintf (stderr,
        "element-vs-engine: element monefilter not found (set GST_PLUGIN_PATH to the "
        "build's gst/ folder)\n");
    goto out;
  }

  if (!(model = mone_model_load_file (opt.model_path, &error))
      || !(ctx = mone_context_new (model, opt.threads, &error))) {
    fprintf (stderr, "element-vs-engine: %s\n", error->message);
    goto out;
  }
  {
    const MoneConfig *cfg = mone_model_get_config (model);
    gsize n = (gsize) cfg->frames * cfg->channels * cfg->height * cfg->width;

    /* a smooth pattern in [0,1]; the cost does not depend on the pixels, only on the budget */
    input = g_new (float, n);
    for (gsize i = 0; i < n; i++)
      input[i] = 0.5f + 0.5f * sinf ((float) i * 0.01f);
    printf ("model %s: %dx%dx%d, patch %d, D=%d, L=%d, E=%d; engine threads %d\n", opt.model_path,
        cfg->channels, cfg->height, cfg->width, cfg->patch, cfg->dim, cfg->depth, cfg->experts,
        mone_context_get_threads (ctx));
    printf ("pipeline: videotestsrc pattern=%s ! video/x-raw,format=%s,width=%d,height=%d ! %s%s"
            "monefilter ! fakesink; %d frames x %d runs each, medians\n\n",
        opt.pattern, opt.format, opt.width, opt.height, opt.draw ? "" : "imagefreeze ! ",
        opt.queue ? "queue ! " : "", opt.frames, opt.runs);
  }
  printf ("%-8s %8s %12s %12s %8s\n", "budget", "GFLOPs", "engine fps", "element fps", "ratio");

  budget_list = g_strsplit (opt.budgets, ",", -1);
  engine = g_new (double, opt.runs);
  element = g_new (double, opt.runs);
  ratio = g_new (double, opt.runs);
  for (char **b = budget_list; *b; b++) {
    char *end;
    double budget = g_ascii_strtod (*b, &end);
    double engine_median, element_median;

    if (end == *b || *end || !(budget > 0.0 && budget <= 1.0)) {
      fprintf (stderr, "element-vs-engine: budget '%s' is not a number in (0, 1]\n", *b);
      goto out;
    }
    for (int r = 0; r < opt.runs; r++) {
      if ((engine[r] = engine_fps (ctx, input, budget, opt.frames, &error)) < 0
          || (element[r] = element_fps (&opt, budget, &error)) < 0) {
        fprintf (stderr, "element-vs-engine: budget %g: %s\n", budget, error->message);
        goto out;
      }
      ratio[r] = element[r] / engine[r];
    }
    engine_median = bench_median (engine, opt.runs);
    element_median = bench_median (element, opt.runs);
    printf ("%-8.3g %8.4f %12.1f %12.1f %7.1f%%\n", budget, mone_model_flops (model, budget) * 1e-9,
        engine_median, element_median, 100.0 * bench_median (ratio, opt.runs));
    fflush (stdout);
  }
  status = 0;

out:
  g_clear_error (&error);
  g_free (engine);
  g_free (element);
  g_free (ratio);
  g_strfreev (budget_list);
  g_free (input);
  if (ctx)
    mone_context_free (ctx);
  if (model)
    mone_model_unref (model);
  g_option_context_free (octx);
  g_free (opt.model_path);
  g_free (opt.budgets);
  g_free (opt.format);
  g_free (opt.pattern);
  return status;
}
