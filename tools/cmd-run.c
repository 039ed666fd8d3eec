/* `mone run MODEL RAW --budget E`: classifies one input stored as raw float32 (T, C, H, W). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mone-commands.h"
#include "mone/mone.h"
#include "tool-input.h"

#include <math.h>

typedef struct {
  int index;
  float prob;
} Ranked;

static int
by_probability (const void *a, const void *b)
{
  const Ranked *x = a, *y = b;
  if (x->prob != y->prob)
    return x->prob < y->prob ? 1 : -1;
  return x->index - y->index;
}

/* Prints n floats as a JSON array; %.9g round-trips a float32, so a reader sees the exact values. */
static void
print_floats (const float *v, int n)
{
  putchar ('[');
  for (int i = 0; i < n; i++)
    printf ("%s%.9g", i ? "," : "", v[i]);
  putchar (']');
}

/* The whole MoneResult for programs (tests/engine/test-torch-reference.py compares it with a
 * second implementation). Doubles with %.17g, also exact. */
static void
print_json (const MoneResult *r, const MoneConfig *c)
{
  printf ("{\"budget_requested\":%.17g,\"budget_used\":%.17g,\"flops\":%.17g,\"top_class\":%d,"
          "\"tokens\":%d,\"experts\":%d,\"tokens_per_expert\":[",
      r->budget_requested, r->budget_used, r->flops, r->top_class, r->tokens, r->experts);
  for (int j = 0; j < r->experts; j++)
    printf ("%s%d", j ? "," : "", r->tokens_per_expert[j]);
  printf ("],\n\"logits\":");
  print_floats (r->logits, c->classes);
  printf (",\n\"probs\":");
  print_floats (r->probs, c->classes);
  printf (",\n\"expert_of_token\":[");
  for (int t = 0; t < r->tokens; t++)
    printf ("%s%d", t ? "," : "", r->expert_of_token[t]);
  printf ("],\n\"router_probs\":");
  print_floats (r->router_probs, r->tokens * r->experts);
  printf ("}\n");
}

int
mone_cmd_run (int argc, char **argv)
{
  double budget = 1.0;
  char *budget_text = NULL;
  int top = 5, threads = 1;
  gboolean show_logits = FALSE, json = FALSE;
  GOptionEntry entries[] = {
    { "budget", 'e', 0, G_OPTION_ARG_STRING, &budget_text, "compute budget in [r_0, 1] (default 1)", "E" },
    { "top", 'k', 0, G_OPTION_ARG_INT, &top, "classes to list (default 5)", "K" },
    { "threads", 't', 0, G_OPTION_ARG_INT, &threads,
        "threads (default 1; 0 = automatic: 1 for small models, else all cores)", "N" },
    { "logits", 0, 0, G_OPTION_ARG_NONE, &show_logits, "print every logit", NULL },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json,
        "print the whole result as one JSON object instead "
        "(exact: floats round-trip)",
        NULL },
    G_OPTION_ENTRY_NULL,
  };
  GOptionContext *opts = g_option_context_new ("MODEL RAW");
  g_option_context_set_summary (opts,
      "RAW holds the model's input as little-endian float32 pixels in [0, 1], planar:\n"
      "frames x channels x height x width (frames = 1 for image models), nothing else.");
  g_option_context_add_main_entries (opts, entries, NULL);
  GError *error = NULL;
  MoneModel *model = NULL;
  MoneContext *ctx = NULL;
  char *raw = NULL;
  Ranked *ranked = NULL;
  int status = 1;

  if (!g_option_context_parse (opts, &argc, &argv, &error)) {
    fprintf (stderr, "mone run: %s\n", error->message);
    status = 2;
    goto out;
  }
  if (argc != 3) {
    fprintf (stderr, "mone run: expected MODEL and RAW\n");
    status = 2;
    goto out;
  }
  if (top < 1 || threads < 0 || threads > 256) {
    fprintf (stderr, "mone run: --top must be >= 1, --threads in 0..256\n");
    status = 2;
    goto out;
  }
  if (budget_text && !mone_tool_parse_decimal (budget_text, &budget)) {
    fprintf (stderr, "mone run: --budget '%s' is not a decimal number\n", budget_text);
    status = 2;
    goto out;
  }
  if (!(budget > 0 && budget <= 1)) {
    fprintf (stderr, "mone run: --budget %g is outside (0, 1]\n", budget);
    status = 2;
    goto out;
  }
  if (!(model = mone_model_load_file (argv[1], &error))) {
    fprintf (stderr, "mone run: %s\n", error->message);
    goto out;
  }
  const MoneConfig *c = mone_model_get_config (model);
  const size_t expected = (size_t) c->frames * c->channels * c->height * c->width * sizeof (float);
  char *layout = g_strdup_printf ("float32 %d x %d x %d x %d: frames x channels x height x width", c->frames,
      c->channels, c->height, c->width);
  gboolean read_ok = mone_tool_read_exact (argv[2], expected, layout, &raw, &error);
  g_free (layout);
  if (!read_ok) {
    fprintf (stderr, "mone run: %s\n", error->message);
    goto out;
  }
  /* The buffer comes from malloc: aligned for float. */
  const float *input = (const float *) raw;
  size_t n_values = expected / sizeof (float), out_of_range = 0, not_finite = 0;
  for (size_t i = 0; i < n_values; i++) {
    if (!isfinite (input[i]))
      not_finite++;
    else if (!(input[i] >= 0.0f && input[i] <= 1.0f))
      out_of_range++;
  }
  /* A NaN or infinite pixel makes every logit NaN: there would be no answer to print. */
  if (not_finite) {
    fprintf (stderr, "mone run: %s: %zu of %zu values are NaN or infinite; pixels must be numbers in [0, 1]\n", argv[2],
        not_finite, n_values);
    goto out;
  }
  if (out_of_range)
    fprintf (stderr, "mone run: warning: %zu of %zu values are outside [0, 1]\n", out_of_range, n_values);

  if (!(ctx = mone_context_new (model, threads, &error))) {
    fprintf (stderr, "mone run: %s\n", error->message);
    goto out;
  }
  MoneResult r;
  if (!mone_context_run (ctx, input, budget, &r, &error)) {
    fprintf (stderr, "mone run: %s\n", error->message);
    goto out;
  }
  if (!r.finite) {
    fprintf (stderr,
        "mone run: model %s gave non-finite logits on %s (its weights overflow the forward pass): "
        "no answer\n",
        argv[1], argv[2]);
    status = 3;
    goto out;
  }

  if (json) {
    print_json (&r, c);
    status = 0;
    goto out;
  }
  printf ("budget %.4f (requested %.4f), %.4g GFLOPs\n", r.budget_used, r.budget_requested, r.flops / 1e9);
  ranked = g_new (Ranked, c->classes);
  for (int k = 0; k < c->classes; k++)
    ranked[k] = (Ranked){ k, r.probs[k] };
  qsort (ranked, c->classes, sizeof *ranked, by_probability);
  if (top > c->classes)
    top = c->classes;
  printf ("\ntop %d:\n", top);
  for (int i = 0; i < top; i++) {
    char *label = mone_tool_escape_text (mone_model_get_label (model, ranked[i].index));
    printf ("  %6.2f%%  logit %8.4f  %4d  %s\n", 100 * ranked[i].prob, r.logits[ranked[i].index], ranked[i].index,
        label);
    g_free (label);
  }
  printf ("\ntokens per expert (width):\n");
  for (int j = 0; j < r.experts; j++)
    printf ("  expert %d (%4d): %5d tokens  %5.1f%%\n", j, c->dim >> (r.experts - 1 - j), r.tokens_per_expert[j],
        100.0 * r.tokens_per_expert[j] / r.tokens);
  /* Expert map of the first time slice: one character per token, laid out as the patch grid. */
  printf ("\nexpert of each token (first time slice, patch grid):\n");
  for (int y = 0; y < c->grid_height; y++) {
    printf ("  ");
    for (int x = 0; x < c->grid_width; x++)
      putchar ('0' + r.expert_of_token[y * c->grid_width + x]);
    putchar ('\n');
  }
  if (show_logits) {
    printf ("\nlogits:\n");
    for (int k = 0; k < c->classes; k++) {
      char *label = mone_tool_escape_text (mone_model_get_label (model, k));
      printf ("  %4d %10.5f  %s\n", k, r.logits[k], label);
      g_free (label);
    }
  }
  status = 0;

out:
  g_free (ranked);
  g_free (raw);
  g_free (budget_text);
  mone_context_free (ctx);
  mone_model_unref (model);
  g_clear_error (&error);
  g_option_context_free (opts);
  return status;
}
