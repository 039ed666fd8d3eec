/* libmone worker of the peer benchmark (driven by bench/peers/peers.py; see bench/peers/run.sh).
 *
 *   mone-peer MODEL FRAME.f32 THREADS
 *
 * Loads MODEL, makes one context with THREADS threads and answers one JSON line per command line
 * on stdin, so that the driver can alternate it round by round with the other engines' workers
 * without reloading anything:
 *   flops E        -> {"budget_used": .., "flops": ..}   mone_model_flops (what `mone info` prints)
 *   logits E       -> {"logits": [...]}                  the result for FRAME at budget E
 *   time E N       -> {"ms": [...], "cpu_ms": [...]}     wall and process CPU time of N frames
 *                                                        at budget E
 *   quit
 * The first line out is {"ready": true, "min_budget": .., "threads": ..}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mone/mone.h"

static double
now_ms (clockid_t clock)
{
  struct timespec ts;
  clock_gettime (clock, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static gboolean
parse_budget (const char *s, double *budget)
{
  char *end = NULL;
  if (!s)
    return FALSE;
  *budget = g_ascii_strtod (s, &end);
  return end != s && !*end && *budget > 0 && *budget <= 1;
}

int
main (int argc, char **argv)
{
  if (argc != 4) {
    fprintf (stderr, "usage: mone-peer MODEL FRAME.f32 THREADS\n");
    return 2;
  }
  GError *error = NULL;
  MoneModel *model = mone_model_load_file (argv[1], &error);
  if (!model) {
    fprintf (stderr, "mone-peer: %s\n", error->message);
    return 1;
  }
  const MoneConfig *c = mone_model_get_config (model);
  char *raw = NULL;
  gsize size = 0;
  const gsize expected = (gsize) c->frames * c->channels * c->height * c->width * sizeof (float);
  if (!g_file_get_contents (argv[2], &raw, &size, &error)) {
    fprintf (stderr, "mone-peer: %s\n", error->message);
    return 1;
  }
  if (size != expected) {
    fprintf (stderr, "mone-peer: %s has %zu bytes, the model takes %zu\n", argv[2], (size_t) size,
        (size_t) expected);
    return 1;
  }
  MoneContext *ctx = mone_context_new (model, atoi (argv[3]), &error);
  if (!ctx) {
    fprintf (stderr, "mone-peer: %s\n", error->message);
    return 1;
  }
  const float *frame = (const float *) raw;
  printf ("{\"ready\":true,\"min_budget\":%.17g,\"threads\":%d}\n", mone_model_min_budget (model),
      mone_context_get_threads (ctx));
  fflush (stdout);

  char line[256];
  int status = 0;
  while (fgets (line, sizeof line, stdin)) {
    char *words[4] = { NULL };
    int n = 0;
    for (char *save = NULL, *w = strtok_r (line, " \t\r\n", &save); w && n < 4;
         w = strtok_r (NULL, " \t\r\n", &save))
      words[n++] = w;
    double budget;
    MoneResult r;
    if (n == 1 && !strcmp (words[0], "quit")) {
      break;
    } else if (n == 2 && !strcmp (words[0], "flops") && parse_budget (words[1], &budget)) {
      double capacity[MONE_MAX_EXPERTS];
      double used = mone_capacity_from_budget (c->experts, c->delta, c->beta, budget, capacity);
      printf ("{\"budget_used\":%.17g,\"flops\":%.17g}\n", used, mone_model_flops (model, budget));
    } else if (n == 2 && !strcmp (words[0], "logits") && parse_budget (words[1], &budget)) {
      if (!mone_context_run (ctx, frame, budget, &r, &error))
        break;
      printf ("{\"logits\":[");
      for (int k = 0; k < c->classes; k++)
        printf ("%s%.9g", k ? "," : "", r.logits[k]);
      printf ("]}\n");
    } else if (n == 3 && !strcmp (words[0], "time") && parse_budget (words[1], &budget)
        && atoi (words[2]) > 0) {
      int frames = atoi (words[2]);
      double *ms = g_new (double, 2 * frames), *cpu_ms = ms + frames;
      for (int f = 0; f < frames && !error; f++) {
        double c0 = now_ms (CLOCK_PROCESS_CPUTIME_ID), t0 = now_ms (CLOCK_MONOTONIC);
        mone_context_run (ctx, frame, budget, &r, &error);
        ms[f] = now_ms (CLOCK_MONOTONIC) - t0;
        cpu_ms[f] = now_ms (CLOCK_PROCESS_CPUTIME_ID) - c0;
      }
      for (int k = 0; k < 2 && !error; k++) {
        printf (k ? ",\"cpu_ms\":[" : "{\"ms\":[");
        for (int f = 0; f < frames; f++)
          printf ("%s%.6f", f ? "," : "", ms[k * frames + f]);
        printf ("]");
      }
      g_free (ms);
      if (error)
        break;
      printf ("}\n");
    } else {
      fprintf (stderr, "mone-peer: bad command '%s'\n", line);
      status = 2;
      break;
    }
    fflush (stdout);
  }
  if (error) {
    fprintf (stderr, "mone-peer: %s\n", error->message);
    status = 1;
  }
  g_clear_error (&error);
  mone_context_free (ctx);
  mone_model_unref (model);
  g_free (raw);
  return status;
}
