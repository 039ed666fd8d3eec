/* Gradient check: the trainer's analytic gradients against central finite differences of its own
 * forward pass, for every parameter tensor and the input pixels, at several budgets, with alpha != 0.
 *
 * Every layer's input gradient lies on the path from the loss to the block-0 parameters and to the
 * pixels, so a wrong input gradient in any layer type (LN, nested projections, attention, GELU,
 * gated residual, router, pooling, head) shows up here.
 *
 * Float32 forward, so each check compares a DIRECTIONAL derivative, where the signal is large:
 *  - along the normalised analytic gradient u = g/|g|: finite difference vs |g|,
 *  - along a random +-1 direction (normalised): finite difference vs g.u,
 *  - the three largest single coordinates.
 * Bound: |fd - analytic| <= REL_TOL * max(|fd|, |analytic|) + ABS_TOL. A tensor whose perturbation
 * changes the routing decisions (the loss is only piecewise smooth) is re-checked with a smaller step.
 * One case replaces the labels by soft targets (the self-distillation loss); the last adds the
 * router's supervision by the item's cover (mone_pass_router_target_backward), with one image
 * without targets. Models with a convolutional stem (mone.stem) check its weights and biases, and
 * the pixels' gradient through it, the same way. */
#include "trainer.h"
#include "train-test-helpers.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define REL_TOL 2e-2
#define ABS_TOL 2e-4

static MoneConfig
tiny_config (void)
{
  MoneConfig c = { 0 };
  c.height = c.width = 8;
  c.channels = 2;
  c.frames = c.tubelet = 1;
  c.patch = 2; /* 16 tokens */
  c.dim = 16;  /* experts of width 2, 4, 8, 16 */
  c.depth = 2;
  c.heads = 2;
  c.mlp_dim = 24;
  c.experts = 4;
  c.classes = 5;
  c.delta = 2;
  c.beta = 10;
  c.ln_eps = 1e-6f;
  c.mean[0] = 0.4f, c.std[0] = 0.3f;
  c.mean[1] = 0.5f, c.std[1] = 0.25f;
  return c;
}

static int checks = 0, skipped = 0;

typedef struct {
  MoneTrainModel *model;
  MonePass *pass;
  const float *input;
  const guint8 *labels;
  const float *soft_targets;  /* (batch, K) instead of labels, or NULL */
  const float *router_target; /* (batch, N) item cover, NaN: none; NULL: no router supervision */
  float router_weight;
  gboolean router_only; /* the loss is the router's supervision alone (its gradient is not drowned) */
  int batch;
  double budget;
  uint8_t *experts_ref; /* routing of the unperturbed forward */
  int n_tokens;
} Problem;

/* The problem's loss: label-smoothed cross-entropy, or against the soft targets if it has them. */
static double
problem_forward (Problem *p, const float *input)
{
  double loss = p->router_only ? (mone_pass_forward (p->pass, p->model, input, NULL, p->batch, p->budget,
                                         MONE_ROUTING_EPR, 0, 0.1f), 0.0)
      : p->soft_targets
      ? mone_pass_forward_distill (p->pass, p->model, input, p->soft_targets, p->batch, p->budget)
      : mone_pass_forward (p->pass, p->model, input, p->labels, p->batch, p->budget, MONE_ROUTING_EPR, 0, 0.1f);
  if (p->router_target) {
    /* Binary cross-entropy of the widest expert's router probability, mean over each image's tokens. */
    const MoneConfig *c = &p->model->config;
    const float *probs = mone_pass_router_probs (p->pass);
    for (int r = 0; r < p->batch * c->tokens; r++) {
      const double y = p->router_target[r], q = probs[(size_t) r * c->experts + c->experts - 1];
      if (!isnan (y))
        loss += p->router_weight * -(y * log (q) + (1 - y) * log (1 - q)) / c->tokens;
    }
  }
  return loss;
}

/* Loss in double from the float forward; also reports whether routing matches the reference. */
static double
loss_at (Problem *p, const float *input, gboolean *same_routing)
{
  double l = problem_forward (p, input);
  *same_routing = memcmp (mone_pass_experts (p->pass), p->experts_ref, p->n_tokens) == 0;
  return l;
}

/* Central difference of the loss along dir at step eps; FALSE if either side routes differently. */
static gboolean
central_difference (Problem *p, float *x, const float *saved, const float *dir, size_t n, const float *input,
    double eps, double *out)
{
  gboolean same1, same2;
  for (size_t i = 0; i < n; i++)
    x[i] = saved[i] + (float) (eps * dir[i]);
  double lp = loss_at (p, input, &same1);
  for (size_t i = 0; i < n; i++)
    x[i] = saved[i] - (float) (eps * dir[i]);
  double lm = loss_at (p, input, &same2);
  memcpy (x, (const void *) saved, n * sizeof (float));
  *out = (lp - lm) / (2 * eps);
  return same1 && same2;
}

/* Directional derivative of the loss along dir over the array x (length n): central differences at
 * eps and 2 eps with the reference routing; *out is the first, *spread their difference, which
 * measures the float rounding of the loss and the curvature, and widens the bound. The step shrinks
 * once (2e-3, then 5e-4) where routing changes; below that the float loss's rounding dominates. */
static gboolean
directional_fd (Problem *p, float *x, const float *dir, size_t n, const float *input, double *out, double *spread)
{
  double eps = 2e-3, wide;
  float *saved = g_memdup2 (x, n * sizeof (float));
  for (int attempt = 0; attempt < 2; attempt++, eps /= 4)
    if (central_difference (p, x, saved, dir, n, input, eps, out)
        && central_difference (p, x, saved, dir, n, input, 2 * eps, &wide)) {
      *spread = fabs (*out - wide);
      g_free (saved);
      return TRUE;
    }
  g_free (saved);
  skipped++;
  return FALSE;
}

static void
compare (const char *what, const char *kind, double fd, double spread, double analytic)
{
  double err = fabs (fd - analytic), bound = REL_TOL * fmax (fabs (fd), fabs (analytic)) + ABS_TOL + spread;
  checks++;
  if (err > bound) {
    g_printerr ("FAIL %-28s %-12s fd %+.6e analytic %+.6e (err %.2e > %.2e)\n", what, kind, fd, analytic, err, bound);
    g_test_fail_printf ("%s %s: fd %+.6e analytic %+.6e", what, kind, fd, analytic);
  } else if (g_getenv ("GRADCHECK_VERBOSE")) {
    printf ("ok   %-28s %-12s fd %+.6e analytic %+.6e\n", what, kind, fd, analytic);
  }
}

static void
check_array (Problem *p, const char *name, float *x, const float *g, size_t n, const float *input, MoneTrainRng *rng)
{
  float *dir = g_new (float, n);
  double norm = 0;
  for (size_t i = 0; i < n; i++)
    norm += (double) g[i] * g[i];
  norm = sqrt (norm);
  double fd, spread;
  if (norm > 0) {
    for (size_t i = 0; i < n; i++)
      dir[i] = (float) (g[i] / norm);
    if (directional_fd (p, x, dir, n, input, &fd, &spread))
      compare (name, "along grad", fd, spread, norm);
  } else {
    /* A zero gradient must be zero by finite differences too. */
    for (size_t i = 0; i < n; i++)
      dir[i] = (float) (1.0 / sqrt ((double) n));
    if (directional_fd (p, x, dir, n, input, &fd, &spread))
      compare (name, "zero grad", fd, spread, 0);
  }
  /* Under valgrind this run looks for memory errors: one direction per array already runs every
   * forward and backward path (the plain run checks all five), and each costs four forwards. */
  if (under_valgrind ()) {
    g_free (dir);
    return;
  }
  double dot = 0;
  for (size_t i = 0; i < n; i++) {
    dir[i] = (float) ((mone_train_rng_uniform (rng) < 0.5 ? -1.0 : 1.0) / sqrt ((double) n));
    dot += (double) dir[i] * g[i];
  }
  if (directional_fd (p, x, dir, n, input, &fd, &spread))
    compare (name, "random dir", fd, spread, dot);
  /* The three largest coordinates. */
  float *mag = g_new (float, n);
  for (size_t i = 0; i < n; i++)
    mag[i] = fabsf (g[i]);
  for (int k = 0; k < 3 && (size_t) k < n; k++) {
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
      if (mag[i] > mag[best])
        best = i;
    mag[best] = -1.0f;
    memset (dir, 0, n * sizeof (float));
    dir[best] = 1.0f;
    if (directional_fd (p, x, dir, n, input, &fd, &spread))
      compare (name, "coordinate", fd, spread, g[best]);
  }
  g_free (mag);
  g_free (dir);
}

/* Every parameter tensor and the input pixels, at five budgets (soft targets and router
 * supervision among them): analytic gradients against central finite differences. */
/* Every parameter at the budgets of the list (all five, or under valgrind, where each costs a
 * minute, the ones flagged `quick`). */
static void
check_every_parameter (MoneConfig c, gboolean quick_under_valgrind)
{
  GError *error = NULL;
  MoneTrainModel *model = mone_train_model_new (&c, &error);
  g_assert_no_error (error);
  const int B = 3;
  const size_t frame = (size_t) c.channels * c.height * c.width;
  MoneTrainRng rng;
  mone_train_rng_seed (&rng, 42, 0);
  float *input = g_new (float, B *frame);
  for (size_t i = 0; i < B * frame; i++)
    input[i] = (float) mone_train_rng_uniform (&rng);
  guint8 labels[3] = { 1, 4, 0 };
  MonePass *pass = mone_pass_new (&model->config, B);
  const double budgets[] = { 0.3, 0.6, 1.0, 0.45, 0.5, 0.5 };
  const gboolean use_soft_targets[] = { FALSE, FALSE, FALSE, TRUE, FALSE, FALSE };
  const gboolean use_router_target[] = { FALSE, FALSE, FALSE, FALSE, TRUE, TRUE };
  const gboolean router_only[] = { FALSE, FALSE, FALSE, FALSE, FALSE, TRUE };
  const gboolean quick[] = { TRUE, FALSE, FALSE, FALSE, TRUE, TRUE };
  const gboolean only_quick = quick_under_valgrind && under_valgrind ();
  const int N = model->config.tokens;
  float *router_target = g_new (float, (size_t) B *N);
  for (int r = 0; r < B * N; r++)
    router_target[r] = r < N ? NAN : (float) mone_train_rng_uniform (&rng);
  float *soft_targets = g_new (float, (size_t) B *c.classes);
  for (int b = 0; b < B; b++) {
    double sum = 0;
    for (int k = 0; k < c.classes; k++)
      sum += soft_targets[b * c.classes + k] = (float) (0.05 + mone_train_rng_uniform (&rng));
    for (int k = 0; k < c.classes; k++)
      soft_targets[b * c.classes + k] /= (float) sum;
  }
  float *grads = g_new (float, model->n_params);
  float *dinput = g_new (float, B *frame);

  for (size_t b = 0; b < G_N_ELEMENTS (budgets); b++) {
    if (only_quick && !quick[b])
      continue;
    /* Larger weights than training init so every path carries a visible gradient. */
    mone_train_model_init (model, 7 + b);
    for (size_t i = 0; i < model->n_params; i++)
      model->params[i] *= 4.0f;
    /* The stem's convolutions start at unit gain already (He): four times that would push the
     * patch embedding's inputs where the float loss rounds away the finite differences. */
    for (int i = 0; i < model->n_specs; i++)
      if (g_str_has_prefix (model->specs[i].name, "stem.") && model->specs[i].ndim == 2)
        for (int64_t k = 0; k < model->specs[i].numel; k++)
          model->params[model->offsets[i] + k] *= 0.25f;
    for (int i = 0; i < model->n_specs; i++)
      if (!g_str_has_suffix (model->specs[i].name, "weight") && model->specs[i].ndim == 1)
        for (int64_t k = 0; k < model->specs[i].numel; k++)
          model->params[model->offsets[i] + k] += (float) (0.1 * mone_train_rng_normal (&rng));
    model->t.alpha[0] = 0.7f;

    Problem p = { .model = model,
      .pass = pass,
      .input = input,
      .labels = labels,
      .batch = B,
      .budget = budgets[b],
      .soft_targets = use_soft_targets[b] ? soft_targets : NULL,
      .router_target = use_router_target[b] ? router_target : NULL,
      .router_weight = 0.8f,
      .router_only = router_only[b] };
    p.n_tokens = B * model->config.tokens;
    problem_forward (&p, input);
    p.experts_ref = g_memdup2 (mone_pass_experts (pass), p.n_tokens);
    memset (grads, 0, sizeof (float) * model->n_params);
    if (!p.router_only)
      mone_pass_backward (pass, model, 1.0f, grads, dinput);
    if (p.router_target)
      mone_pass_router_target_backward (pass, model, p.router_target, p.router_weight, grads);
    int hist[MONE_MAX_EXPERTS] = { 0 };
    for (int i = 0; i < p.n_tokens; i++)
      hist[p.experts_ref[i]]++;
    printf ("budget %.2f%s%s: tokens per expert %d %d %d %d\n", budgets[b], p.soft_targets ? " (soft targets)" : "",
        p.router_only ? " (router supervision alone)" : p.router_target ? " (router supervised)" : "", hist[0], hist[1], hist[2], hist[3]);

    for (int i = 0; i < model->n_specs; i++) {
      char what[96];
      snprintf (what, sizeof what, "%s", model->specs[i].name);
      float *gcopy = g_memdup2 (grads + model->offsets[i], sizeof (float) * model->specs[i].numel);
      check_array (&p, what, model->params + model->offsets[i], gcopy, (size_t) model->specs[i].numel, input, &rng);
      g_free (gcopy);
    }
    /* The router's supervision stops at the embeddings (it is a training signal, not a pixel loss). */
    if (!p.router_target) {
      float *gin = g_memdup2 (dinput, sizeof (float) * B * frame);
      float *x = g_memdup2 (input, sizeof (float) * B * frame);
      check_array (&p, "input pixels", x, gin, B * frame, x, &rng);
      g_free (gin);
      g_free (x);
    }
    g_free (p.experts_ref);
  }
  g_test_message ("%d checks, %d skipped because routing changed (bound |fd - analytic| <= %.0e * max + %.0e + "
                  "|fd(eps) - fd(2 eps)|)",
      checks, skipped, REL_TOL, ABS_TOL);
  /* Routing flips must stay rare, or the check would prove little. */
  g_assert_cmpint (skipped * 20, <=, checks);
  g_free (soft_targets);
  g_free (router_target);
  g_free (grads);
  g_free (dinput);
  g_free (input);
  mone_pass_free (pass);
  mone_train_model_free (model);
}

static void
test_every_parameter (void)
{
  check_every_parameter (tiny_config (), FALSE);
}

/* A class token (mone.pool = cls): its own vector and position, on the widest expert, read by the
 * head; the patch tokens routed by the budget. */
static void
test_class_token (void)
{
  MoneConfig c = tiny_config ();
  c.pool = MONE_POOL_CLS;
  check_every_parameter (c, TRUE);
}

/* A router with a hidden layer on the token minus its image's mean token, with and without a class
 * token (which is centred by the same mean but not part of it). */
static void
test_hidden_router (void)
{
  MoneConfig c = tiny_config ();
  c.router_hidden = 6;
  check_every_parameter (c, TRUE);
  c.pool = MONE_POOL_CLS;
  check_every_parameter (c, TRUE);
}

/* A grey model with a two-layer stem: 32x32 pixels, 16x16x3 after layer 0, 8x8x4 after layer 1,
 * cut into 2x2 patches (P = 16) on the 4x4 token grid of patch 8. */
static void
test_stem_grey (void)
{
  MoneConfig c = tiny_config ();
  c.height = c.width = 32;
  c.channels = 1;
  c.patch = 8;
  c.stem_layers = 2;
  c.stem_channels[0] = 3, c.stem_channels[1] = 4;
  check_every_parameter (c, TRUE);
}

/* Three channels, one stem layer (16x16x3 to 8x8x5, 2x2 patches) and a class token. */
static void
test_stem_rgb_class_token (void)
{
  MoneConfig c = tiny_config ();
  c.height = c.width = 16;
  c.channels = 3;
  c.patch = 4;
  c.mean[2] = 0.45f, c.std[2] = 0.2f;
  c.pool = MONE_POOL_CLS;
  c.stem_layers = 1;
  c.stem_channels[0] = 5;
  check_every_parameter (c, TRUE);
}

/* A training step's passes with the stem held (mone_pass_stem_hold: one stem forward, one stem
 * backward on the summed gradient, in release) give the losses of the passes run one by one, bit
 * for bit, and their gradients up to the rounding of the sums' order. */
static double
held_step (MoneTrainModel *model, MonePass *pass, const float *input, const guint8 *labels, const float *target,
    gboolean hold, float *grads)
{
  const int B = 3, K = model->config.classes;
  float teacher[3 * 8];
  memset (grads, 0, sizeof (float) * model->n_params);
  if (hold)
    mone_pass_stem_hold (pass);
  double loss = mone_pass_forward (pass, model, input, labels, B, 1.0, MONE_ROUTING_EPR, 0, 0.1f);
  mone_pass_backward (pass, model, 0.5f, grads, NULL);
  loss += mone_pass_router_target_backward (pass, model, target, 0.3f, grads);
  memcpy (teacher, mone_pass_probs (pass), sizeof (float) * B * K);
  loss += mone_pass_forward_distill (pass, model, input, teacher, B, 0.5);
  mone_pass_backward (pass, model, 0.5f, grads, NULL);
  loss += mone_pass_forward_distill (pass, model, input, teacher, B, 0.3);
  mone_pass_backward (pass, model, 0.5f, grads, NULL);
  if (hold)
    mone_pass_stem_release (pass, model, grads);
  return loss;
}

static void
test_stem_held (void)
{
  MoneConfig c = tiny_config ();
  c.height = c.width = 32, c.channels = 1, c.patch = 8;
  c.stem_layers = 2, c.stem_channels[0] = 3, c.stem_channels[1] = 4;
  GError *error = NULL;
  MoneTrainModel *model = mone_train_model_new (&c, &error);
  g_assert_no_error (error);
  mone_train_model_init (model, 5);
  const int B = 3, N = model->config.tokens;
  const size_t frame = (size_t) c.height * c.width;
  MoneTrainRng rng;
  mone_train_rng_seed (&rng, 43, 0);
  float *input = g_new (float, B *frame), *target = g_new (float, (size_t) B *N);
  for (size_t i = 0; i < B * frame; i++)
    input[i] = (float) mone_train_rng_uniform (&rng);
  for (int i = 0; i < B * N; i++)
    target[i] = (float) mone_train_rng_uniform (&rng);
  const guint8 labels[3] = { 2, 0, 4 };
  float *one_by_one = g_new (float, model->n_params), *held = g_new (float, model->n_params);
  MonePass *pass = mone_pass_new (&model->config, B);
  const double loss = held_step (model, pass, input, labels, target, FALSE, one_by_one);
  const double held_loss = held_step (model, pass, input, labels, target, TRUE, held);
  double worst = 0, scale = 0, stem = 0;
  for (size_t i = 0; i < model->n_params; i++) {
    worst = fmax (worst, fabs (held[i] - one_by_one[i]));
    scale = fmax (scale, fabs (one_by_one[i]));
  }
  for (int i = 0; i < model->n_specs; i++)
    if (g_str_has_prefix (model->specs[i].name, "stem."))
      for (int64_t k = 0; k < model->specs[i].numel; k++)
        stem = fmax (stem, fabs (held[model->offsets[i] + k]));
  g_test_message ("held stem: loss %.9g (one by one %.9g), max |dgrad| %.2e of %.2e, stem gradients up to %.2e",
      held_loss, loss, worst, scale, stem);
  g_assert_cmpfloat (held_loss, ==, loss);
  g_assert_cmpfloat (worst, <=, 1e-5 * scale);
  g_assert_cmpfloat (stem, >, 1e-3 * scale);
  mone_pass_free (pass);
  g_free (one_by_one);
  g_free (held);
  g_free (input);
  g_free (target);
  mone_train_model_free (model);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/train/gradcheck/every-parameter", test_every_parameter);
  g_test_add_func ("/train/gradcheck/class-token", test_class_token);
  g_test_add_func ("/train/gradcheck/hidden-router", test_hidden_router);
  g_test_add_func ("/train/gradcheck/stem-grey", test_stem_grey);
  g_test_add_func ("/train/gradcheck/stem-rgb-class-token", test_stem_rgb_class_token);
  g_test_add_func ("/train/gradcheck/stem-held", test_stem_held);
  return g_test_run ();
}
