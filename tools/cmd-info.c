/* `mone info MODEL`: the config, parameter count and GFLOPs per budget of a model file. */
#include <stdio.h>
#include <string.h>

#include "mone/mone-authoring.h"
#include "mone-commands.h"
#include "tool-input.h"

int
mone_cmd_info (int argc, char **argv)
{
  char *config_name = NULL;
  GOptionEntry entries[] = {
    { "config", 0, 0, G_OPTION_ARG_STRING, &config_name,
        "describe a named config (vit-ti16, vit-s16, tiny, small32, fashion28, scene64) instead of a file; key=value "
        "arguments "
        "override it",
        "NAME" },
    G_OPTION_ENTRY_NULL,
  };
  GOptionContext *opts = g_option_context_new ("MODEL | --config NAME [key=value...]");
  g_option_context_set_summary (opts,
      "Prints a model's config, parameter count, labels and the "
      "GFLOPs of one forward pass at e = 1, 0.75, 0.5, 0.25 and its minimum budget.");
  g_option_context_add_main_entries (opts, entries, NULL);
  GError *error = NULL;
  MoneModel *model = NULL;
  int status = 1;

  if (!g_option_context_parse (opts, &argc, &argv, &error)) {
    fprintf (stderr, "mone info: %s\n", error->message);
    status = 2;
    goto out;
  }
  if (!(model = mone_tool_model_from_args ("info", config_name, argc, argv, &status)))
    goto out;

  const MoneConfig *c = mone_model_get_config (model);
  printf ("input:      %d x %d pixels, %d channel%s", c->width, c->height, c->channels, c->channels > 1 ? "s" : "");
  if (c->frames > 1)
    printf (", %d frames (tubelet %d)", c->frames, c->tubelet);
  printf ("\nnormalise:  mean");
  for (int ch = 0; ch < c->channels; ch++)
    printf (" %g", c->mean[ch]);
  printf (", std");
  for (int ch = 0; ch < c->channels; ch++)
    printf (" %g", c->std[ch]);
  if (c->stem_layers) {
    printf ("\nstem:       %d 3x3 stride-2 convolutions with GELU, channels", c->stem_layers);
    for (int i = 0; i < c->stem_layers; i++)
      printf (" %d", c->stem_channels[i]);
  }
  printf ("\ntokens:     %d (%d x %d patches of %d px", c->tokens, c->grid_width, c->grid_height, c->patch);
  if (c->frames > 1)
    printf (", x %d time slices", c->frames / c->tubelet);
  printf (")%s\ntransformer: D %d, depth %d, heads %d, MLP %d, LayerNorm eps %g\n",
      c->pool == MONE_POOL_CLS ? " and a class token (always on the widest expert), read by the head"
                               : ", their mean read by the head",
      c->dim, c->depth, c->heads, c->mlp_dim, c->ln_eps);
  printf ("experts:    %d, widths", c->experts);
  for (int j = 0; j < c->experts; j++)
    printf (" %d", c->dim >> (c->experts - 1 - j));
  printf (" (delta %g, beta %g)\n", c->delta, c->beta);
  if (c->router_hidden)
    printf ("router:     %d GELU units on each token minus the frame's mean token\n", c->router_hidden);
  else
    printf ("router:     one linear layer on each token\n");
  printf ("classes:    %d (", c->classes);
  for (int k = 0; k < c->classes && k < 5; k++) {
    char *label = mone_tool_escape_text (mone_model_get_label (model, k));
    printf ("%s%s", k ? ", " : "", label);
    g_free (label);
  }
  printf ("%s)\n", c->classes > 5 ? ", ..." : "");
  size_t params = mone_model_parameter_count (model);
  printf ("parameters: %zu (%.2f M, %.1f MB as F32)\n", params, params / 1e6, params * 4.0 / 1e6);
  printf ("projections: %s (this machine's choice; MONE_ISA=avx512|avx2|generic|openblas forces "
          "one)\n\n",
      mone_default_kernels ());

  const double min_budget = mone_model_min_budget (model);
  const double budgets[] = { 1.0, 0.75, 0.5, 0.25, min_budget };
  const double full = mone_model_flops (model, 1.0);
  printf ("%8s %9s %9s   %s\n", "budget", "GFLOPs", "of e=1", "capacity (smallest expert first)");
  for (size_t i = 0; i < G_N_ELEMENTS (budgets); i++) {
    /* the minimum may be one of the fixed rows (0.25 for three experts): print it once */
    gboolean printed_already = FALSE;
    for (size_t j = 0; j < i; j++)
      printed_already |= budgets[j] == budgets[i];
    if (budgets[i] < min_budget || printed_already)
      continue;
    double capacity[MONE_MAX_EXPERTS];
    mone_capacity_from_budget (c->experts, c->delta, c->beta, budgets[i], capacity);
    double flops = mone_model_flops (model, budgets[i]);
    printf ("%8.4f %9.4g %8.1f%%  ", budgets[i], flops / 1e9, 100 * flops / full);
    for (int j = 0; j < c->experts; j++)
      printf (" %.3f", capacity[j]);
    printf ("%s\n", budgets[i] == min_budget ? "  (minimum)" : "");
  }
  printf ("\nGFLOPs count a multiply-add as 2 and include patch embedding, router, attention "
          "(full width at every budget) and head.\n");
  status = 0;

out:
  mone_model_unref (model);
  g_clear_error (&error);
  g_free (config_name);
  g_option_context_free (opts);
  return status;
}
