/* `mone train`: trains a MoNE image model on Fashion-MNIST (see docs/training.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mone-commands.h"
#include "trainer.h"

int
mone_cmd_train (int argc, char **argv)
{
  MoneTrainOptions o;
  mone_train_options_init (&o);
  char *data_dir = NULL, *output = NULL, *checkpoint = NULL;
  gboolean resume = FALSE, dense = FALSE;
  gint64 seed = 1;
  int size = 32, patch = 4, dim = 64, depth = 6, heads = 4, mlp_dim = 0, experts = 4, channels = 1;
  double budget = 0, mean = 0.5, std = 0.5, delta = 2, beta = 10;
  GOptionEntry entries[] = {
    { "data", 0, 0, G_OPTION_ARG_FILENAME, &data_dir, "Fashion-MNIST folder (default " MONE_FASHION_MNIST_DIR ")", "DIR" },
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output, "model file to write (required)", "FILE" },
    { "checkpoint", 0, 0, G_OPTION_ARG_FILENAME, &checkpoint, "checkpoint file, written every --checkpoint-every steps", "FILE" },
    { "resume", 0, 0, G_OPTION_ARG_NONE, &resume, "continue from --checkpoint if it exists", NULL },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, "random seed (default 1)", "N" },
    { "epochs", 0, 0, G_OPTION_ARG_INT, &o.epochs, "epochs over the 55,000 training images (default 10)", "N" },
    { "batch", 0, 0, G_OPTION_ARG_INT, &o.batch, "images per step (default 128)", "N" },
    { "threads", 0, 0, G_OPTION_ARG_INT, &o.threads, "data-parallel worker threads (default 2)", "N" },
    { "lr", 0, 0, G_OPTION_ARG_DOUBLE, &o.lr, "peak learning rate (default 1e-3)", "X" },
    { "min-lr", 0, 0, G_OPTION_ARG_DOUBLE, &o.min_lr, "final learning rate (default 1e-5)", "X" },
    { "weight-decay", 0, 0, G_OPTION_ARG_DOUBLE, &o.weight_decay, "AdamW weight decay (default 0.05)", "X" },
    { "warmup", 0, 0, G_OPTION_ARG_DOUBLE, &o.warmup_fraction, "warm-up fraction of the steps (default 0.05)", "X" },
    { "clip", 0, 0, G_OPTION_ARG_DOUBLE, &o.clip_norm, "gradient-norm clip (default 1; 0 = off)", "X" },
    { "label-smoothing", 0, 0, G_OPTION_ARG_DOUBLE, &o.label_smoothing, "label smoothing (default 0.1)", "X" },
    { "budget", 0, 0, G_OPTION_ARG_DOUBLE, &budget, "train at this fixed budget instead of sampling per step", "E" },
    { "dense", 0, 0, G_OPTION_ARG_NONE, &dense, "the dense twin: same as --budget 1", NULL },
    { "max-sampled-budget", 0, 0, G_OPTION_ARG_DOUBLE, &o.max_sampled_budget,
      "sample only budgets up to X from {0.15, 0.25, ..., 0.95, 1.0} (default 1: all)", "X" },
    { "in-frame-fraction", 0, 0, G_OPTION_ARG_DOUBLE, &o.in_frame_fraction, "share of in-frame samples (default 0.5)", "X" },
    { "alpha-min", 0, 0, G_OPTION_ARG_DOUBLE, &o.alpha_min, "keep alpha >= X after every step (default: free)", "X" },
    { "self-distill", 0, 0, G_OPTION_ARG_NONE, &o.self_distill,
      "every step trains e = 1 on the labels and the sampled budget on e = 1's predictions", NULL },
    { "min-budget-pass", 0, 0, G_OPTION_ARG_NONE, &o.min_budget_pass,
      "with --self-distill, every step also trains e = 0.15 on e = 1's predictions (sandwich rule)", NULL },
    { "train-images", 0, 0, G_OPTION_ARG_INT, &o.train_images, "use only the first N training images", "N" },
    { "max-steps", 0, 0, G_OPTION_ARG_INT, &o.max_steps, "stop this run after N steps (resume later)", "N" },
    { "log-every", 0, 0, G_OPTION_ARG_INT, &o.log_every, "steps between progress lines (default 20)", "N" },
    { "checkpoint-every", 0, 0, G_OPTION_ARG_INT, &o.checkpoint_every, "steps between checkpoints (default 200)", "N" },
    { "size", 0, 0, G_OPTION_ARG_INT, &size, "input side in pixels (default 32)", "N" },
    { "channels", 0, 0, G_OPTION_ARG_INT, &channels, "input channels, 1 or 3 (default 1)", "N" },
    { "patch", 0, 0, G_OPTION_ARG_INT, &patch, "patch side (default 4)", "N" },
    { "dim", 0, 0, G_OPTION_ARG_INT, &dim, "model width D (default 64)", "N" },
    { "depth", 0, 0, G_OPTION_ARG_INT, &depth, "blocks (default 6)", "N" },
    { "heads", 0, 0, G_OPTION_ARG_INT, &heads, "attention heads (default 4)", "N" },
    { "mlp-dim", 0, 0, G_OPTION_ARG_INT, &mlp_dim, "MLP width F (default 4 D)", "N" },
    { "experts", 0, 0, G_OPTION_ARG_INT, &experts, "nested experts E (default 4)", "N" },
    { "mean", 0, 0, G_OPTION_ARG_DOUBLE, &mean, "pixel mean used for normalisation (default 0.5)", "X" },
    { "std", 0, 0, G_OPTION_ARG_DOUBLE, &std, "pixel std used for normalisation (default 0.5)", "X" },
    { "delta", 0, 0, G_OPTION_ARG_DOUBLE, &delta, "capacity distribution: reward for bigger experts (default 2)", "X" },
    { "beta", 0, 0, G_OPTION_ARG_DOUBLE, &beta, "capacity distribution: entropy weight (default 10)", "X" },
    { NULL },
  };
  GOptionContext *ctx = g_option_context_new ("- train a MoNE model on Fashion-MNIST");
  g_option_context_add_main_entries (ctx, entries, NULL);
  GError *error = NULL;
  int status = 1;
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    fprintf (stderr, "mone train: %s\n", error->message);
    status = 2;
    goto out;
  }
  if (argc > 1) {
    fprintf (stderr, "mone train: unexpected argument '%s'\n", argv[1]);
    status = 2;
    goto out;
  }
  if (!output) {
    fprintf (stderr, "mone train: --output FILE is required\n");
    status = 2;
    goto out;
  }
  if (dense)
    budget = 1.0;
  if (budget < 0 || budget > 1 || o.threads < 1 || o.threads > 64 || isnan (o.alpha_min) || o.in_frame_fraction < 0
      || o.in_frame_fraction > 1 || o.log_every < 1 || o.checkpoint_every < 1 || o.lr <= 0
      || !(o.max_sampled_budget >= 0.15 && o.max_sampled_budget <= 1)) {
    fprintf (stderr, "mone train: option out of range (budget in (0,1], threads 1..64, fractions in [0,1], alpha-min a number, "
        "max-sampled-budget in [0.15,1], positive lr and step counts)\n");
    status = 2;
    goto out;
  }
  if (o.self_distill && budget >= 1.0) {
    fprintf (stderr, "mone train: --self-distill trains e = 1 on every step already; it needs sampled budgets "
        "or a fixed --budget below 1\n");
    status = 2;
    goto out;
  }
  if (o.min_budget_pass && !o.self_distill) {
    fprintf (stderr, "mone train: --min-budget-pass is a third pass of --self-distill; add --self-distill\n");
    status = 2;
    goto out;
  }
  MoneConfig *c = &o.config;
  memset (c, 0, sizeof *c);
  c->height = c->width = size;
  c->channels = channels;
  c->frames = c->tubelet = 1;
  c->patch = patch;
  c->dim = dim;
  c->depth = depth;
  c->heads = heads;
  c->mlp_dim = mlp_dim > 0 ? mlp_dim : 4 * dim;
  c->experts = experts;
  c->classes = MONE_FASHION_MNIST_CLASSES;
  c->delta = (float) delta;
  c->beta = (float) beta;
  c->ln_eps = 1e-6f;
  for (int ch = 0; ch < MONE_MAX_CHANNELS; ch++) {
    c->mean[ch] = (float) mean;
    c->std[ch] = (float) std;
  }
  if (!mone_config_finalize (c, &error)) {
    fprintf (stderr, "mone train: %s\n", error->message);
    goto out;
  }
  o.data_dir = data_dir;
  o.output = output;
  o.checkpoint = checkpoint;
  o.resume = resume;
  o.seed = (uint64_t) seed;
  o.fixed_budget = budget;
  if (!mone_train_run (&o, &error)) {
    fprintf (stderr, "mone train: %s\n", error->message);
    goto out;
  }
  if (o.max_steps == 0)
    fprintf (stderr, "wrote %s\n", output);
  status = 0;

out:
  g_clear_error (&error);
  g_option_context_free (ctx);
  g_free (data_dir);
  g_free (output);
  g_free (checkpoint);
  return status;
}
