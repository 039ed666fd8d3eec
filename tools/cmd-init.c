/* `mone init --config NAME [key=value...] OUT`: writes a randomly initialised model file. */
#include <stdio.h>
#include <string.h>

#include "mone/mone-authoring.h"
#include "mone-commands.h"

int
mone_cmd_init (int argc, char **argv)
{
  char *config_name = NULL;
  GOptionEntry entries[] = {
    { "config", 'c', 0, G_OPTION_ARG_STRING, &config_name,
        "named config: vit-ti16, vit-s16, tiny (the default), small32, fashion28 or scene64", "NAME" },
    G_OPTION_ENTRY_NULL,
  };
  GOptionContext *opts = g_option_context_new ("[key=value...] OUT");
  g_option_context_set_summary (opts,
      "Writes a model with random weights (normal, std 0.02, truncated at 2 std; stem convolutions\n"
      "He-normal; biases 0; LayerNorm weights 1; alpha 0) for tests and benchmarks. Deterministic for a given seed.\n\n"
      "keys: height width channels frames tubelet patch dim depth heads mlp_dim experts classes\n"
      "      router_hidden pool (mean or cls) stem (layer widths, e.g. 16,32)\n"
      "      delta beta ln_eps mean std (comma-separated per channel) seed");
  g_option_context_add_main_entries (opts, entries, NULL);
  GError *error = NULL;
  MoneParameters *params = NULL;
  char **labels = NULL;
  int status = 1;

  if (!g_option_context_parse (opts, &argc, &argv, &error)) {
    fprintf (stderr, "mone init: %s\n", error->message);
    status = 2;
    goto out;
  }
  if (argc < 2 || strchr (argv[argc - 1], '=')) {
    fprintf (stderr, "mone init: expected the output file as the last argument\n");
    status = 2;
    goto out;
  }
  const char *out_path = argv[argc - 1];
  MoneConfig config;
  guint64 seed;
  if (!mone_config_from_args (config_name ? config_name : "tiny", argc - 2, (const char *const *) argv + 1, &config,
          &seed, &error)
      || !(params = mone_parameters_new_random (&config, seed, &error))) {
    fprintf (stderr, "mone init: %s\n", error->message);
    goto out;
  }
  const MoneConfig *c = &params->config;
  labels = g_new0 (char *, c->classes + 1);
  for (int k = 0; k < c->classes; k++)
    labels[k] = g_strdup_printf ("class %d", k);
  if (!mone_model_write (out_path, c, (const char *const *) labels, (const float *const *) params->tensors, &error)) {
    fprintf (stderr, "mone init: %s\n", error->message);
    goto out;
  }
  char *stem = c->stem_layers ? mone_config_stem_string (c) : NULL;
  printf ("wrote %s: %d x %d x %d%s%s, patch %d, D %d, depth %d, heads %d, F %d, E %d, K %d, "
          "%zu parameters, seed %" G_GUINT64_FORMAT "\n",
      out_path, c->width, c->height, c->channels, stem ? ", stem " : "", stem ? stem : "", c->patch, c->dim, c->depth,
      c->heads, c->mlp_dim, c->experts, c->classes, params->n_params, seed);
  g_free (stem);
  status = 0;

out:
  g_strfreev (labels);
  mone_parameters_free (params);
  g_clear_error (&error);
  g_free (config_name);
  g_option_context_free (opts);
  return status;
}
