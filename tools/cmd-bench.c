/* `mone bench`: latency of the forward pass per budget, against the machine's own sgemm speed
 * measured in the same run.
 *
 * Noise on a shared machine hits everything measured at the same time alike, so the program
 * interleaves: each round measures the sgemm reference once and then every budget (in an order
 * that rotates from round to round); ratios (fraction of sgemm, speedup) are computed within a
 * round and their median over rounds is reported. Latency median and p90 are over all frames.
 * With --baseline-threads a second context with that many threads runs every budget beside the
 * first in each round (which of the two goes first alternates by round), so that the speedup of
 * more threads is a ratio measured side by side too (on a shared virtual machine one core's speed
 * can drift by 15% within minutes). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mone/mone-authoring.h"
#include "mone-commands.h"
#include "tool-input.h"

/* CLOCK_MONOTONIC (latency as a user sees it) or, with --clock cpu, CLOCK_PROCESS_CPUTIME_ID: the
 * CPU time this process got, which on a machine shared with other jobs leaves out the time the
 * scheduler gave to them (a cleaner ratio for one-thread runs; with more threads it sums them). */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static double
now_seconds (void)
{
  struct timespec ts;
  clock_gettime (bench_clock, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int
compare_doubles (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

/* q-quantile (0..1) of n values, nearest rank; sorts v. */
static double
quantile (double *v, int n, double q)
{
  qsort (v, n, sizeof *v, compare_doubles);
  int i = (int) ceil (q * n) - 1;
  return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

/* The sgemm reference: the matrix products of one transformer block of this model at e = 1 at
 * their natural shapes (QKV, per-head scores and attention x V, projection, fc1, fc2), with no
 * element-wise work in between. This is what the forward pass would cost if it were nothing
 * but sgemm, on this machine, now. */
typedef struct {
  int N, D, F, H;
  float *a, *b, *c; /* big enough for any of the operands */
  double flops;     /* of one block */
} SgemmMix;

static void
sgemm_mix_init (SgemmMix *mix, const MoneConfig *cfg)
{
  mix->N = cfg->tokens;
  mix->D = cfg->dim;
  mix->F = cfg->mlp_dim;
  mix->H = cfg->heads;
  /* Generous: every operand of sgemm_mix_block fits in each buffer. */
  size_t n = (size_t) mix->N * (4 * mix->D + mix->F + mix->N) + (size_t) 4 * mix->D * (mix->D + mix->F);
  mix->a = g_new (float, n);
  mix->b = g_new (float, n);
  mix->c = g_new (float, n);
  for (size_t i = 0; i < n; i++) {
    mix->a[i] = (float) ((i * 7919) % 1000) / 1000.0f - 0.5f;
    mix->b[i] = (float) ((i * 104729) % 1000) / 1000.0f - 0.5f;
  }
  const double N = mix->N, D = mix->D, F = mix->F;
  mix->flops = 2 * N * D * 3 * D + 2 * 2 * N * N * D + 2 * N * D * D + 2 * 2 * N * D * F;
}

static void
sgemm_mix_block (SgemmMix *m)
{
  const int N = m->N, D = m->D, F = m->F, hd = m->D / m->H;
  /* Row-major (M, K) x (N_out, K)^T like the model's (out, in) weights. */
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, N, 3 * D, D, 1, m->a, D, m->b, D, 0, m->c, 3 * D);
  for (int h = 0; h < m->H; h++) {
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, N, N, hd, 1, m->a + h * hd, 3 * D, m->b + h * hd, 3 * D, 0,
        m->c, N);
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, N, hd, N, 1, m->c, N, m->b + h * hd, 3 * D, 0,
        m->a + (size_t) N * 3 * D, D);
  }
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, N, D, D, 1, m->a, D, m->b, D, 0, m->c, D);
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, N, F, D, 1, m->a, D, m->b, D, 0, m->c, F);
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, N, D, F, 1, m->c, F, m->b, F, 0, m->a, D);
}

/* GFLOP/s of the mix: `blocks` blocks per sample (about one frame's worth), median of samples. */
static double
sgemm_mix_gflops (SgemmMix *m, int blocks, int samples)
{
  double rate[16];
  samples = MIN (samples, 16);
  for (int s = 0; s < samples; s++) {
    double t0 = now_seconds ();
    for (int b = 0; b < blocks; b++)
      sgemm_mix_block (m);
    rate[s] = m->flops * blocks / (now_seconds () - t0) / 1e9;
  }
  return quantile (rate, samples, 0.5);
}

static void
sgemm_mix_clear (SgemmMix *m)
{
  g_free (m->a);
  g_free (m->b);
  g_free (m->c);
}

/* Square sgemm for context: the machine's best case, not the bar's reference. */
static double
square_sgemm_gflops (int n)
{
  float *a = g_new (float, (size_t) n *n), *b = g_new (float, (size_t) n *n), *c = g_new (float, (size_t) n *n);
  for (size_t i = 0; i < (size_t) n * n; i++)
    a[i] = b[i] = (float) (i % 13) / 13.0f;
  double best = 0;
  for (int rep = 0; rep < 5; rep++) {
    double t0 = now_seconds ();
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    best = MAX (best, 2.0 * n * n * n / (now_seconds () - t0) / 1e9);
  }
  g_free (a);
  g_free (b);
  g_free (c);
  return best;
}

static gboolean
parse_budget_list (const char *text, double min_budget, GArray *out, GError **error)
{
  g_auto (GStrv) parts = g_strsplit (text, ",", -1);
  for (int i = 0; parts[i]; i++) {
    const char *s = g_strstrip (parts[i]);
    double b;
    if (!strcmp (s, "min")) {
      b = min_budget;
    } else {
      if (!mone_tool_parse_decimal (s, &b) || !(b > 0 && b <= 1)) {
        g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT, "budget '%s' is not a number in (0, 1] or 'min'",
            s);
        return FALSE;
      }
    }
    g_array_append_val (out, b);
  }
  return TRUE;
}

typedef struct {
  double budget; /* as requested */
  double flops;
  GArray *latencies;             /* (double) seconds, every frame of every round */
  double *round_median;          /* (rounds) */
  double *baseline_round_median; /* (rounds) the --baseline-threads context's, or NULL */
} BudgetStats;

/* Runs `frames` frames of one budget, each on a fresh pixel, appending their latencies to
 * `latencies` (if not NULL); returns their median. */
static double
time_frames (MoneContext *ctx, float *input, size_t n_input, MoneRng *rng, double budget, int frames,
    double *frame_time, GArray *latencies)
{
  MoneResult result;
  for (int f = 0; f < frames; f++) {
    input[f % n_input] = (float) mone_rng_uniform (rng); /* a new frame each time */
    double t0 = now_seconds ();
    mone_context_run (ctx, input, budget, &result, NULL);
    frame_time[f] = now_seconds () - t0;
    if (latencies)
      g_array_append_val (latencies, frame_time[f]);
  }
  return quantile (frame_time, frames, 0.5);
}

int
mone_cmd_bench (int argc, char **argv)
{
  char *config_name = NULL, *budget_text = NULL, *clock_name = NULL;
  int threads = 1, baseline_threads = 0, frames = 20, rounds = 7, warmup = 3;
  gboolean only = FALSE;
  GOptionEntry entries[] = {
    { "config", 0, 0, G_OPTION_ARG_STRING, &config_name,
        "bench a random model of this config (vit-ti16, vit-s16, tiny, small32, fashion28, scene64) instead of a file; "
        "key=value arguments override it",
        "NAME" },
    { "threads", 't', 0, G_OPTION_ARG_INT, &threads, "threads of the context (default 1)", "N" },
    { "baseline-threads", 0, 0, G_OPTION_ARG_INT, &baseline_threads,
        "also run a context of N threads (0, the default: none), interleaved, "
        "and print the speedup of --threads over it",
        "N" },
    { "frames", 'f', 0, G_OPTION_ARG_INT, &frames, "frames per budget per round (default 20)", "N" },
    { "runs", 'r', 0, G_OPTION_ARG_INT, &rounds, "rounds, medians are over rounds (default 7)", "N" },
    { "clock", 0, 0, G_OPTION_ARG_STRING, &clock_name,
        "wall (default) or cpu: time frames by this process's CPU time (for a busy shared machine)", "CLOCK" },
    { "budgets", 'b', 0, G_OPTION_ARG_STRING, &budget_text,
        "comma-separated budgets, 'min' = r_0 (default 1,0.75,0.5,0.25,min)", "LIST" },
    { "only", 0, 0, G_OPTION_ARG_NONE, &only,
        "run --frames frames of the first budget in --budgets and nothing else (no e = 1, no sgemm "
        "reference): the command to run under a profiler",
        NULL },
    G_OPTION_ENTRY_NULL,
  };
  GOptionContext *opts = g_option_context_new ("MODEL | --config NAME [key=value...]");
  g_option_context_set_summary (opts,
      "Latency per budget (median, p90), GFLOP/s and its fraction of this machine's one-context\n"
      "sgemm speed on the model's own matrix shapes (measured in the same run), speedup against\n"
      "e = 1 next to the FLOP-ideal speedup.");
  g_option_context_add_main_entries (opts, entries, NULL);
  GError *error = NULL;
  MoneModel *model = NULL;
  MoneContext *ctx = NULL, *baseline_ctx = NULL;
  GArray *budgets = g_array_new (FALSE, FALSE, sizeof (double));
  BudgetStats *stats = NULL;
  float *input = NULL;
  double *mix_rate = NULL, *frame_time = NULL;
  SgemmMix mix = { 0 };
  int status = 1;

  if (!g_option_context_parse (opts, &argc, &argv, &error)) {
    fprintf (stderr, "mone bench: %s\n", error->message);
    status = 2;
    goto out;
  }
  if (clock_name && strcmp (clock_name, "wall") && strcmp (clock_name, "cpu")) {
    fprintf (stderr, "mone bench: --clock must be wall or cpu, not '%s'\n", clock_name);
    status = 2;
    goto out;
  }
  if (clock_name && !strcmp (clock_name, "cpu"))
    bench_clock = CLOCK_PROCESS_CPUTIME_ID;
  if (frames < 1 || rounds < 1 || threads < 0 || threads > 256 || baseline_threads < 0 || baseline_threads > 256) {
    fprintf (stderr, "mone bench: --frames and --runs must be >= 1, --threads and --baseline-threads in 0..256\n");
    status = 2;
    goto out;
  }
  if (only && baseline_threads) {
    fprintf (stderr, "mone bench: --only runs one context: no --baseline-threads\n");
    status = 2;
    goto out;
  }
  if (baseline_threads && bench_clock != CLOCK_MONOTONIC) {
    /* Process CPU time sums the threads: it cannot show a speedup from more of them. */
    fprintf (stderr, "mone bench: --baseline-threads needs the wall clock, not --clock cpu\n");
    status = 2;
    goto out;
  }
  if (!(model = mone_tool_model_from_args ("bench", config_name, argc, argv, &status)))
    goto out;
  const MoneConfig *c = mone_model_get_config (model);
  const double min_budget = mone_model_min_budget (model);
  if (!parse_budget_list (budget_text ? budget_text : "1,0.75,0.5,0.25,min", min_budget, budgets, &error)) {
    fprintf (stderr, "mone bench: %s\n", error->message);
    status = 2;
    goto out;
  }
  if (only)
    g_array_set_size (budgets, 1);
  /* e = 1 is the reference for speedups: make sure it is measured, first in the list. */
  gboolean has_full = only;
  for (guint i = 0; i < budgets->len; i++)
    has_full |= g_array_index (budgets, double, i) == 1.0;
  if (!has_full) {
    double one = 1.0;
    g_array_prepend_val (budgets, one);
  }
  if (!(ctx = mone_context_new (model, threads, &error))) {
    fprintf (stderr, "mone bench: %s\n", error->message);
    goto out;
  }
  threads = mone_context_get_threads (ctx);
  if (baseline_threads) {
    if (!(baseline_ctx = mone_context_new (model, baseline_threads, &error))) {
      fprintf (stderr, "mone bench: %s\n", error->message);
      goto out;
    }
    baseline_threads = mone_context_get_threads (baseline_ctx);
  }

  size_t n_input = (size_t) c->frames * c->channels * c->height * c->width;
  input = g_new (float, n_input);
  MoneRng rng;
  mone_rng_seed (&rng, 42);
  for (size_t i = 0; i < n_input; i++)
    input[i] = (float) mone_rng_uniform (&rng);

  const int n_budgets = budgets->len;
  int full_index = 0;
  stats = g_new0 (BudgetStats, n_budgets);
  for (int b = 0; b < n_budgets; b++) {
    stats[b].budget = g_array_index (budgets, double, b);
    stats[b].flops = mone_model_flops (model, stats[b].budget);
    stats[b].latencies = g_array_new (FALSE, FALSE, sizeof (double));
    stats[b].round_median = g_new0 (double, rounds);
    stats[b].baseline_round_median = baseline_ctx ? g_new0 (double, rounds) : NULL;
    if (stats[b].budget == 1.0)
      full_index = b;
  }
  sgemm_mix_init (&mix, c);
  mix_rate = g_new0 (double, rounds);
  frame_time = g_new (double, frames);

  printf ("model: %dx%dx%d", c->width, c->height, c->channels);
  if (c->frames > 1)
    printf (" x %d frames (tubelet %d)", c->frames, c->tubelet);
  if (c->stem_layers) {
    g_autofree char *stem = mone_config_stem_string (c);
    printf (", stem %s", stem);
  }
  printf (", patch %d, D %d, depth %d, heads %d, F %d, E %d, K %d, N %d tokens\n", c->patch, c->dim, c->depth, c->heads,
      c->mlp_dim, c->experts, c->classes, c->tokens);
  printf ("threads: %d (OpenBLAS at 1 thread, the context's pool splits the work)", threads);
  if (baseline_ctx)
    printf ("; against a context of %d, interleaved", baseline_threads);
  printf ("\n");
  printf ("projections: %s\n",
      strcmp (mone_context_get_kernels (ctx), "openblas") == 0 ? "openblas (cblas_sgemm on the unpacked weights)"
                                                               : mone_context_get_kernels (ctx));
  const char *clock_label = bench_clock == CLOCK_MONOTONIC ? "wall" : "process CPU-time";
  if (only)
    printf ("%d frames of budget %.4f alone, %s clock\n", frames, stats[0].budget, clock_label);
  else
    printf ("%d rounds x %d frames per budget, budgets interleaved, %s clock\n", rounds, frames, clock_label);
  fflush (stdout);

  MoneResult result;
  if (only) {
    /* For a profiler: after the warm-up, this budget's frames are all the process does. */
    for (int f = 0; f < warmup; f++)
      mone_context_run (ctx, input, stats[0].budget, &result, NULL);
    const double median = time_frames (ctx, input, n_input, &rng, stats[0].budget, frames, frame_time, NULL);
    printf ("%8s %8s %10s %10s %9s\n", "budget", "GFLOPs", "median ms", "p90 ms", "GFLOP/s");
    printf ("%8.4f %8.3f %10.3f %10.3f %9.1f\n", stats[0].budget, stats[0].flops / 1e9, median * 1e3,
        quantile (frame_time, frames, 0.9) * 1e3, stats[0].flops / median / 1e9);
    status = 0;
    goto out;
  }

  /* Warm-up: page in weights, let the CPU clock settle. */
  for (int b = 0; b < n_budgets; b++)
    for (int f = 0; f < warmup; f++) {
      mone_context_run (ctx, input, stats[b].budget, &result, NULL);
      if (baseline_ctx)
        mone_context_run (baseline_ctx, input, stats[b].budget, &result, NULL);
    }
  sgemm_mix_gflops (&mix, c->depth, 1);

  for (int r = 0; r < rounds; r++) {
    /* The sgemm reference runs single-threaded: the bar compares one-thread runs. With more
     * threads the fraction is against the one-thread rate times the thread count. */
    mix_rate[r] = sgemm_mix_gflops (&mix, c->depth, 3);
    for (int i = 0; i < n_budgets; i++) {
      int b = (i + r) % n_budgets;
      /* With a baseline, the context that runs first alternates from round to round, so that
       * neither always meets the caches and clock the other left. */
      for (int turn = 0; turn < (baseline_ctx ? 2 : 1); turn++) {
        if (baseline_ctx && (turn + r) % 2)
          stats[b].baseline_round_median[r] = time_frames (baseline_ctx, input, n_input, &rng, stats[b].budget, frames,
              frame_time, NULL);
        else
          stats[b].round_median[r] = time_frames (ctx, input, n_input, &rng, stats[b].budget, frames, frame_time,
              stats[b].latencies);
      }
    }
  }

  double sgemm_rate = quantile (mix_rate, rounds, 0.5);
  printf ("one-thread sgemm on this model's block shapes (e = 1): %.1f GFLOP/s (median of rounds); "
          "square 512: %.1f GFLOP/s\n\n",
      sgemm_rate, square_sgemm_gflops (512));
  char baseline_heading[32];
  snprintf (baseline_heading, sizeof baseline_heading, "vs %d thr", baseline_threads);
  printf ("%8s %8s %10s %10s %9s %9s %9s %9s %9s", "budget", "GFLOPs", "median ms", "p90 ms", "GFLOP/s", "of sgemm",
      "speedup", "ideal", "sp/ideal");
  if (baseline_ctx)
    printf (" %9s", baseline_heading);
  printf ("\n");
  double *ratio = g_new (double, rounds);
  for (int b = 0; b < n_budgets; b++) {
    BudgetStats *s = &stats[b];
    double *all = (double *) s->latencies->data;
    int n = s->latencies->len;
    double median = quantile (all, n, 0.5), p90 = quantile (all, n, 0.9);
    for (int r = 0; r < rounds; r++)
      ratio[r] = s->flops / s->round_median[r] / 1e9 / (mix_rate[r] * threads);
    double of_sgemm = quantile (ratio, rounds, 0.5);
    for (int r = 0; r < rounds; r++)
      ratio[r] = stats[full_index].round_median[r] / s->round_median[r];
    double speedup = quantile (ratio, rounds, 0.5);
    double ideal = stats[full_index].flops / s->flops;
    printf ("%8.4f %8.3f %10.3f %10.3f %9.1f %8.1f%% %9.2f %9.2f %9.2f", s->budget, s->flops / 1e9, median * 1e3,
        p90 * 1e3, s->flops / median / 1e9, 100 * of_sgemm, speedup, ideal, speedup / ideal);
    if (baseline_ctx) {
      for (int r = 0; r < rounds; r++)
        ratio[r] = s->baseline_round_median[r] / s->round_median[r];
      printf (" %9.2f", quantile (ratio, rounds, 0.5));
    }
    printf ("\n");
  }
  printf ("\n'of sgemm': the budget's GFLOP/s over the sgemm reference (x threads), per round, median."
          "\n'speedup': e = 1 latency over this budget's, per round, median; 'ideal': FLOP ratio.\n");
  if (baseline_ctx)
    printf ("'vs %d thr': the %d-thread context's latency over this one's at the same budget, per round, median.\n",
        baseline_threads, baseline_threads);
  g_free (ratio);
  status = 0;

out:
  g_free (mix_rate);
  g_free (frame_time);
  if (stats)
    for (guint b = 0; b < budgets->len; b++) {
      g_array_unref (stats[b].latencies);
      g_free (stats[b].round_median);
      g_free (stats[b].baseline_round_median);
    }
  g_free (stats);
  sgemm_mix_clear (&mix);
  g_free (input);
  g_array_unref (budgets);
  mone_context_free (ctx);
  mone_context_free (baseline_ctx);
  mone_model_unref (model);
  g_clear_error (&error);
  g_free (config_name);
  g_free (budget_text);
  g_free (clock_name);
  g_option_context_free (opts);
  return status;
}
