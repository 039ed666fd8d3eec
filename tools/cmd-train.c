/* `mone train`: trains a MoNE image model on Fashion-MNIST or an image folder (see docs/training.md). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mone/mone-authoring.h"
#include "mone-commands.h"
#include "tool-input.h"
#include "mone/mone-train.h"

static volatile sig_atomic_t stop_requested = 0;

static void
request_stop (int signum)
{
  (void) signum;
  stop_requested = 1;
}

/* Prints "mone train: --OPTION VALUE out of range [lo, hi]" (brackets per open/closed end) unless
 * lo <= value <= hi; written as a negated test so that NaN is refused too. */
static gboolean
option_in_range (const char *option, double value, double lo, gboolean lo_open, double hi, gboolean hi_open)
{
  gboolean ok = (lo_open ? value > lo : value >= lo) && (hi_open ? value < hi : value <= hi);
  if (!ok)
    fprintf (stderr, "mone train: --%s %.10g out of range %c%.10g, %.10g%c\n", option, value, lo_open ? '(' : '[', lo,
        hi, hi_open ? ')' : ']');
  return ok;
}

/* Every option checked on its own, so the message names the one that is wrong. Model-shape
 * arguments are checked afterwards by mone_config_from_args. *budget gets the fixed budget (0: sampled). */
static gboolean
train_options_valid (const MoneTrainOptions *o, const char *budget_text, gboolean dense, const char *checkpoint,
    gboolean resume, double *budget)
{
  if (o->images_dir && o->data_dir) {
    fprintf (stderr,
        "mone train: --data is the Fashion-MNIST folder and --images an image folder; give one of the two\n");
    return FALSE;
  }
  *budget = 0;
  if (budget_text) {
    char *end = NULL;
    *budget = g_ascii_strtod (budget_text, &end);
    if (end == budget_text || *end != '\0') {
      fprintf (stderr, "mone train: --budget '%s' is not a number\n", budget_text);
      return FALSE;
    }
    if (!option_in_range ("budget", *budget, 0, TRUE, 1, FALSE))
      return FALSE;
    if (dense) {
      fprintf (stderr, "mone train: --dense is --budget 1; give one of the two\n");
      return FALSE;
    }
  }
  if (dense)
    *budget = 1.0;
  if (!option_in_range ("epochs", o->epochs, 1, FALSE, 1e6, FALSE)
      || !option_in_range ("batch", o->batch, 1, FALSE, 1 << 20, FALSE)
      || !option_in_range ("threads", o->threads, 1, FALSE, 64, FALSE)
      || !option_in_range ("lr", o->lr, 0, TRUE, 1, FALSE)
      || !option_in_range ("min-lr", o->min_lr, 0, FALSE, o->lr, FALSE)
      || !option_in_range ("weight-decay", o->weight_decay, 0, FALSE, 1, FALSE)
      || !option_in_range ("warmup", o->warmup_fraction, 0, FALSE, 1, TRUE)
      || !option_in_range ("clip", o->clip_norm, 0, FALSE, 1e6, FALSE)
      || !option_in_range ("label-smoothing", o->label_smoothing, 0, FALSE, 1, TRUE)
      || !option_in_range ("max-sampled-budget", o->max_sampled_budget, 0.15, FALSE, 1, FALSE)
      || !option_in_range ("in-frame-fraction", o->in_frame_fraction, 0, FALSE, 1, FALSE)
      || !option_in_range ("scene-fraction", o->scene_fraction, 0, FALSE, 1, FALSE)
      || !option_in_range ("close-up-fraction", o->close_up_fraction, 0, FALSE, 1, FALSE)
      || !option_in_range ("router-item-weight", o->router_item_weight, 0, FALSE, 100, FALSE)
      || !option_in_range ("train-images", o->train_images, 0, FALSE, G_MAXINT, FALSE)
      || !option_in_range ("max-steps", o->max_steps, 0, FALSE, G_MAXINT, FALSE)
      || !option_in_range ("log-every", o->log_every, 1, FALSE, G_MAXINT, FALSE)
      || !option_in_range ("checkpoint-every", o->checkpoint_every, 1, FALSE, G_MAXINT, FALSE))
    return FALSE;
  /* -inf (the default) leaves alpha free; a given bound must be a modest number. */
  if (o->alpha_min != -INFINITY && !option_in_range ("alpha-min", o->alpha_min, -10, FALSE, 10, FALSE))
    return FALSE;
  if (o->images_dir && o->in_frame_fraction > 0) {
    fprintf (stderr,
        "mone train: --in-frame-fraction %g: an image folder has no in-frame samples (in-frame blends "
        "an item onto clutter by its brightness, which needs grey items on black like Fashion-MNIST's; scenes paste "
        "pictures by their alpha: --scene-fraction); leave it out or give 0\n",
        o->in_frame_fraction);
    return FALSE;
  }
  if (o->scene_fraction + o->in_frame_fraction + o->close_up_fraction > 1 + 1e-12) {
    fprintf (stderr,
        "mone train: --scene-fraction %g, --in-frame-fraction %g and --close-up-fraction %g add up to more than 1\n",
        o->scene_fraction, o->in_frame_fraction, o->close_up_fraction);
    return FALSE;
  }
  if (*budget > 0 && o->max_sampled_budget != 1.0) {
    fprintf (stderr,
        "mone train: --max-sampled-budget limits the sampled budgets; with a fixed --budget or "
        "--dense there are none\n");
    return FALSE;
  }
  if (o->self_distill && *budget >= 1.0) {
    fprintf (stderr,
        "mone train: --self-distill trains e = 1 on every step already; it needs sampled budgets "
        "or a fixed --budget below 1\n");
    return FALSE;
  }
  if (o->min_budget_pass && !o->self_distill) {
    fprintf (stderr, "mone train: --min-budget-pass is a third pass of --self-distill; add --self-distill\n");
    return FALSE;
  }
  if ((resume || o->max_steps > 0) && !checkpoint) {
    fprintf (stderr, "mone train: %s needs --checkpoint FILE (where the run's state is kept)\n",
        resume ? "--resume" : "--max-steps");
    return FALSE;
  }
  return TRUE;
}

int
mone_cmd_train (int argc, char **argv)
{
  MoneTrainOptions o;
  mone_train_options_init (&o);
  char *data_dir = NULL, *images_dir = NULL, *output = NULL, *checkpoint = NULL, *init_path = NULL;
  gboolean resume = FALSE, dense = FALSE;
  gint64 seed = 1;
  char *budget_text = NULL, *in_frame_text = NULL, *config_name = NULL;
  double budget = 0;
  GOptionEntry entries[] = {
    { "data", 0, 0, G_OPTION_ARG_FILENAME, &data_dir, "Fashion-MNIST folder (default " MONE_FASHION_MNIST_DIR ")",
        "DIR" },
    { "images", 0, 0, G_OPTION_ARG_FILENAME, &images_dir,
        "train on your own pictures instead: DIR/<class name>/<picture> (PNG, JPEG, WebP, ...), every 10th image of "
        "each class held out "
        "for validation; each picture stretched to the config's size, full-frame, or pasted into scenes by its alpha "
        "with "
        "--scene-fraction (see docs/training.md)",
        "DIR" },
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output, "model file to write (required)", "FILE" },
    { "init", 0, 0, G_OPTION_ARG_FILENAME, &init_path,
        "start from this model's weights (its architecture; a new head if its classes are not the data's)", "MODEL" },
    { "principal-axes", 0, 0, G_OPTION_ARG_NONE, &o.principal_axes,
        "with --init: first turn the model's residual stream onto its principal axes, so that the nested experts "
        "start from the channels that carry the most (for a dense model or an import; the full model is unchanged)",
        NULL },
    { "checkpoint", 0, 0, G_OPTION_ARG_FILENAME, &checkpoint, "checkpoint file, written every --checkpoint-every steps",
        "FILE" },
    { "resume", 0, 0, G_OPTION_ARG_NONE, &resume, "continue from --checkpoint if it exists", NULL },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, "random seed (default 1)", "N" },
    { "epochs", 0, 0, G_OPTION_ARG_INT, &o.epochs, "epochs over the training images (default 10)", "N" },
    { "batch", 0, 0, G_OPTION_ARG_INT, &o.batch, "images per step (default 128)", "N" },
    { "threads", 0, 0, G_OPTION_ARG_INT, &o.threads, "data-parallel worker threads (default 2)", "N" },
    { "lr", 0, 0, G_OPTION_ARG_DOUBLE, &o.lr, "peak learning rate (default 1e-3)", "X" },
    { "min-lr", 0, 0, G_OPTION_ARG_DOUBLE, &o.min_lr, "final learning rate (default 1e-5)", "X" },
    { "weight-decay", 0, 0, G_OPTION_ARG_DOUBLE, &o.weight_decay, "AdamW weight decay (default 0.05)", "X" },
    { "warmup", 0, 0, G_OPTION_ARG_DOUBLE, &o.warmup_fraction, "warm-up fraction of the steps (default 0.05)", "X" },
    { "clip", 0, 0, G_OPTION_ARG_DOUBLE, &o.clip_norm, "gradient-norm clip (default 1; 0 = off)", "X" },
    { "label-smoothing", 0, 0, G_OPTION_ARG_DOUBLE, &o.label_smoothing, "label smoothing (default 0.1)", "X" },
    { "budget", 0, 0, G_OPTION_ARG_STRING, &budget_text, "train at this fixed budget instead of sampling per step",
        "E" },
    { "dense", 0, 0, G_OPTION_ARG_NONE, &dense, "the dense twin: same as --budget 1", NULL },
    { "max-sampled-budget", 0, 0, G_OPTION_ARG_DOUBLE, &o.max_sampled_budget,
        "sample only budgets up to X from {0.15, 0.25, ..., 0.95, 1.0} (default 1: all)", "X" },
    { "in-frame-fraction", 0, 0, G_OPTION_ARG_STRING, &in_frame_text,
        "share of in-frame samples (default 0.5; 0 with --images, which has none)", "X" },
    { "scene-fraction", 0, 0, G_OPTION_ARG_DOUBLE, &o.scene_fraction,
        "share of samples rendered as camera scenes (default 0); an image folder's pictures are pasted by their "
        "alpha (cut-outs as PNG with transparency)",
        "X" },
    { "close-up-fraction", 0, 0, G_OPTION_ARG_DOUBLE, &o.close_up_fraction,
        "share of samples rendered as close-ups: the item filling most of a plain camera frame, stretched from "
        "the frame's aspect like a scene (default 0)",
        "X" },
    { "router-item-weight", 0, 0, G_OPTION_ARG_DOUBLE, &o.router_item_weight,
        "teach the router where the item is on scene, in-frame and close-up samples, with this weight "
        "(default 0)",
        "X" },
    { "alpha-min", 0, 0, G_OPTION_ARG_DOUBLE, &o.alpha_min, "keep alpha >= X after every step (default: free)", "X" },
    { "self-distill", 0, 0, G_OPTION_ARG_NONE, &o.self_distill,
        "every step trains e = 1 on the labels and the sampled budget on e = 1's predictions", NULL },
    { "min-budget-pass", 0, 0, G_OPTION_ARG_NONE, &o.min_budget_pass,
        "with --self-distill, every step also trains e = 0.15 on e = 1's predictions (sandwich rule)", NULL },
    { "frozen-teacher", 0, 0, G_OPTION_ARG_NONE, &o.frozen_teacher,
        "with --self-distill and --init: the --init model, kept as it was, teaches every pass (no pass on the labels; "
        "the full model starts as the teacher)",
        NULL },
    { "train-images", 0, 0, G_OPTION_ARG_INT, &o.train_images, "use only the first N training images (default 0: all)",
        "N" },
    { "max-steps", 0, 0, G_OPTION_ARG_INT, &o.max_steps, "stop this run after N steps (resume later)", "N" },
    { "log-every", 0, 0, G_OPTION_ARG_INT, &o.log_every, "steps between progress lines (default 20)", "N" },
    { "checkpoint-every", 0, 0, G_OPTION_ARG_INT, &o.checkpoint_every, "steps between checkpoints (default 200)", "N" },
    { "config", 0, 0, G_OPTION_ARG_STRING, &config_name,
        "the model's shape: a named config (small32, the default; fashion28; scene64; tiny; vit-ti16; vit-s16), "
        "changed by key=value arguments after the options, as in mone init (channels=3 height=64 width=64 patch=8 "
        "dim=64 depth=6 heads=4 mlp_dim=256 experts=4 mean=0.485,0.456,0.406 std=0.229,0.224,0.225 delta=2 "
        "beta=10)",
        "NAME" },
    G_OPTION_ENTRY_NULL,
  };
  static const char *const decimal_options[] = { "lr", "min-lr", "weight-decay", "warmup", "clip", "label-smoothing",
    "budget", "max-sampled-budget", "in-frame-fraction", "scene-fraction", "close-up-fraction", "router-item-weight",
    "alpha-min", NULL };
  if (!mone_tool_check_decimal_options (argc, argv, decimal_options, "mone train"))
    return 2;
  GOptionContext *ctx = g_option_context_new (
      "[key=value...] - train a MoNE model on Fashion-MNIST or on your own images (--images)");
  g_option_context_add_main_entries (ctx, entries, NULL);
  GError *error = NULL;
  int status = 1;
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    fprintf (stderr, "mone train: %s\n", error->message);
    status = 2;
    goto out;
  }
  o.data_dir = data_dir;
  o.images_dir = images_dir;
  /* Read as text so that its default can depend on --images. */
  if (in_frame_text) {
    char *end = NULL;
    o.in_frame_fraction = g_ascii_strtod (in_frame_text, &end);
    if (end == in_frame_text || *end != '\0') {
      fprintf (stderr, "mone train: --in-frame-fraction '%s' is not a number\n", in_frame_text);
      status = 2;
      goto out;
    }
  } else if (images_dir) {
    o.in_frame_fraction = 0;
  }
  /* What follows the options changes the named config: key=value only, and the seed is --seed. */
  for (int i = 1; i < argc; i++) {
    if (!strchr (argv[i], '=') || argv[i][0] == '-') {
      fprintf (stderr, "mone train: unexpected argument '%s' (the model's shape is --config NAME key=value...)\n",
          argv[i]);
      status = 2;
      goto out;
    }
    if (g_str_has_prefix (argv[i], "seed=")) {
      fprintf (stderr, "mone train: %s: the training seed is --seed N\n", argv[i]);
      status = 2;
      goto out;
    }
  }
  if (!output) {
    fprintf (stderr, "mone train: --output FILE is required\n");
    status = 2;
    goto out;
  }
  /* With --init the model file decides the architecture: a config as well would be ignored or
   * contradict it. */
  if (init_path && (config_name || argc > 1)) {
    fprintf (stderr, "mone train: %s%s: with --init the model file decides the architecture; leave it out\n",
        config_name ? "--config " : "", config_name ? config_name : argv[1]);
    status = 2;
    goto out;
  }
  if (!train_options_valid (&o, budget_text, dense, checkpoint, resume, &budget)) {
    status = 2;
    goto out;
  }
  MoneConfig *c = &o.config;
  guint64 unused_seed;
  if (!mone_config_from_args (config_name ? config_name : "small32", argc - 1, (const char *const *) argv + 1, c,
          &unused_seed, &error)) {
    fprintf (stderr, "mone train: %s\n", error->message);
    status = 2;
    goto out;
  }
  if (c->channels != 1 && c->channels != 3) {
    fprintf (stderr, "mone train: channels=%d: the trainer and monefilter take 1 (grey) or 3 (RGB)\n", c->channels);
    status = 2;
    goto out;
  }
  if (c->frames != 1) {
    fprintf (stderr, "mone train: frames=%d: the trainer trains image models (frames=1)\n", c->frames);
    status = 2;
    goto out;
  }
  /* An image folder's class count replaces this once the folder is read; 2 is its smallest. */
  c->classes = images_dir ? 2 : MONE_FASHION_MNIST_CLASSES;
  if (!mone_config_finalize (c, &error)) {
    fprintf (stderr, "mone train: %s\n", error->message);
    status = 2;
    goto out;
  }
  if (init_path) {
    MoneModel *init = mone_model_load_file (init_path, &error);
    if (!init) {
      fprintf (stderr, "mone train: --init: %s\n", error->message);
      goto out;
    }
    const int classes = c->classes;
    *c = *mone_model_get_config (init);
    c->classes = classes;
    mone_model_unref (init);
    o.init_path = init_path;
  }
  /* Below the smallest expert's cost every token is on expert 0 already: the budget would be
   * clamped, and the run would not be what was asked for. */
  const double min_budget = mone_config_min_budget (c);
  if (budget > 0 && budget < min_budget - 1e-12) {
    fprintf (stderr, "mone train: --budget %g is below the smallest budget of a %d-expert model (%g)\n", budget,
        c->experts, min_budget);
    status = 2;
    goto out;
  }
  o.output = output;
  o.checkpoint = checkpoint;
  o.resume = resume;
  o.seed = (uint64_t) seed;
  o.fixed_budget = budget;
  /* Ctrl-C or SIGTERM: finish the step, write the checkpoint, stop. A second signal kills at once. */
  struct sigaction on_stop = { 0 };
  on_stop.sa_handler = request_stop;
  on_stop.sa_flags = SA_RESETHAND;
  sigemptyset (&on_stop.sa_mask);
  sigaction (SIGINT, &on_stop, NULL);
  sigaction (SIGTERM, &on_stop, NULL);
  o.stop_requested = &stop_requested;
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
  g_free (images_dir);
  g_free (output);
  g_free (checkpoint);
  g_free (init_path);
  g_free (budget_text);
  g_free (in_frame_text);
  g_free (config_name);
  return status;
}
