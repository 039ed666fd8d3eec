/* The trainer's batched forward pass and the engine's per-frame mone_context_run are two
 * implementations of one definition (docs/mone.md). On the same weights (the engine borrows the
 * trainer's parameters through mone_model_new_borrowed) they must give the same logits, the same
 * expert per token and the same router probabilities, at every budget, also with a convolutional
 * stem.
 * Bound: max |logit difference| <= 1e-4 * max(1, max |logit|). */
#include "trainer.h"
#include "train-test-helpers.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void
check_config (MoneConfig c, uint64_t seed)
{
  GError *error = NULL;
  MoneTrainModel *model = mone_train_model_new (&c, &error);
  g_assert_no_error (error);
  mone_train_model_init (model, seed);
  /* Move away from the initial point: alpha != 0, non-trivial biases and LN parameters. */
  MoneTrainRng rng;
  mone_train_rng_seed (&rng, seed, 99);
  for (size_t i = 0; i < model->n_params; i++)
    model->params[i] += (float) (0.05 * mone_train_rng_normal (&rng));
  model->t.alpha[0] = 0.8f;

  MoneModel *engine = mone_train_model_to_engine (model, NULL, &error);
  g_assert_no_error (error);
  /* And back: every tensor (the stem's too) where the trainer's layout expects it. */
  MoneTrainModel *back = mone_train_model_from_engine (engine, &error);
  g_assert_no_error (error);
  report_row (back->n_params == model->n_params
          && memcmp (back->params, model->params, sizeof (float) * model->n_params) == 0,
      "trainer -> engine -> trainer keeps all %zu parameters", model->n_params);
  mone_train_model_free (back);
  MoneContext *ctx = mone_context_new (engine, 1, &error);
  g_assert_no_error (error);
  const MoneConfig *cf = &model->config;
  const int B = 4, N = cf->tokens, E = cf->experts, K = cf->classes;
  const size_t frame = (size_t) cf->channels * cf->height * cf->width;
  float *input = g_new (float, B *frame);
  for (size_t i = 0; i < B * frame; i++)
    input[i] = (float) mone_train_rng_uniform (&rng);
  MonePass *pass = mone_pass_new (cf, B);
  const double budgets[] = { 0.05, 0.125, 0.2, 0.3, 0.5, 0.75, 0.9, 1.0 };
  for (size_t bi = 0; bi < G_N_ELEMENTS (budgets); bi++) {
    mone_pass_forward (pass, model, input, NULL, B, budgets[bi], MONE_ROUTING_EPR, 0, 0);
    const float *logits = mone_pass_logits (pass);
    const uint8_t *experts = mone_pass_experts (pass);
    const float *probs = mone_pass_router_probs (pass);
    double max_diff = 0, scale = 1, max_pdiff = 0;
    int expert_mismatch = 0;
    for (int b = 0; b < B; b++) {
      MoneResult r;
      g_assert_true (mone_context_run (ctx, input + b * frame, budgets[bi], &r, &error));
      g_assert_no_error (error);
      for (int k = 0; k < K; k++) {
        max_diff = fmax (max_diff, fabs (r.logits[k] - logits[b * K + k]));
        scale = fmax (scale, fabs (r.logits[k]));
      }
      for (int t = 0; t < N; t++) {
        expert_mismatch += r.expert_of_token[t] != experts[b * N + t];
        for (int e = 0; e < E; e++)
          max_pdiff = fmax (max_pdiff, fabs (r.router_probs[t * E + e] - probs[(b * N + t) * E + e]));
      }
    }
    gboolean ok = max_diff <= 1e-4 * scale && expert_mismatch == 0 && max_pdiff <= 1e-5;
    report_row (ok,
        "D %d E %d N %d budget %.3f: max |dlogit| %.2e (scale %.2f), router prob diff %.2e, "
        "%d tokens routed differently",
        cf->dim, E, N, budgets[bi], max_diff, scale, max_pdiff, expert_mismatch);
  }
  /* Item-box routing (an evaluation diagnostic): the widest experts go to the covered tokens, most
   * covered first; the number of tokens per expert stays the budget's. */
  float *cover = g_new (float, (size_t) B *N);
  for (int i = 0; i < B * N; i++)
    cover[i] = (float) ((i * 7919) % 11) / 10.0f; /* eleven cover levels, scattered */
  mone_pass_set_item_cover (pass, cover);
  for (size_t bi = 0; bi < G_N_ELEMENTS (budgets); bi++) {
    mone_pass_forward (pass, model, input, NULL, B, budgets[bi], MONE_ROUTING_ITEM_BOX, 0, 0);
    const uint8_t *ex = mone_pass_experts (pass);
    int inversions = 0;
    for (int b = 0; b < B; b++)
      for (int t = 0; t < N; t++)
        for (int u = 0; u < N; u++)
          inversions += ex[b * N + t] > ex[b * N + u] && cover[b * N + t] < cover[b * N + u];
    report_row (inversions == 0, "item-box routing at budget %.3f: %d tokens with less cover on a wider expert",
        budgets[bi], inversions);
  }
  g_free (cover);
  mone_pass_free (pass);
  g_free (input);
  mone_context_free (ctx);
  mone_model_unref (engine);
  mone_train_model_free (model);
}

/* Grey, square grid, four experts. */
static void
test_grey (void)
{
  check_config (small_grey_config (4), 1);
}

/* RGB, non-square grid, 3 experts, F != 4D. */
static void
test_rgb_non_square (void)
{
  MoneConfig c = small_grey_config (4);
  c.height = 24, c.width = 16, c.channels = 3, c.patch = 4, c.dim = 24, c.heads = 3, c.mlp_dim = 40;
  c.experts = 3, c.classes = 7, c.depth = 3;
  for (int ch = 0; ch < 3; ch++)
    c.mean[ch] = 0.4f + 0.05f * ch, c.std[ch] = 0.2f + 0.1f * ch;
  check_config (c, 2);
}

/* A class token (mone.pool = cls), RGB, four experts. */
static void
test_class_token (void)
{
  MoneConfig c = small_grey_config (4);
  c.pool = MONE_POOL_CLS;
  check_config (c, 3);
}

/* A router with a hidden layer, with and without a class token. */
static void
test_hidden_router (void)
{
  MoneConfig c = small_grey_config (4);
  c.router_hidden = 16;
  check_config (c, 4);
  c.pool = MONE_POOL_CLS;
  check_config (c, 5);
}

/* A convolutional stem (mone.stem): grey 32x32 through two layers (16x16x6, 8x8x8) into 2x2
 * patches; RGB 24x16 through one (12x8x5, 4x4 patches) with a class token; grey 64x64 through four
 * (down to 4x4x10), each token one pixel of the last map, as the 128x128 scene shape has it. */
static void
test_stem (void)
{
  MoneConfig c = small_grey_config (4);
  c.height = c.width = 32, c.patch = 8;
  c.stem_layers = 2, c.stem_channels[0] = 6, c.stem_channels[1] = 8;
  check_config (c, 6);
  c = small_grey_config (4);
  c.height = 24, c.width = 16, c.channels = 3, c.patch = 8, c.dim = 24, c.heads = 3, c.experts = 3;
  for (int ch = 0; ch < 3; ch++)
    c.mean[ch] = 0.4f + 0.05f * ch, c.std[ch] = 0.2f + 0.1f * ch;
  c.pool = MONE_POOL_CLS;
  c.stem_layers = 1, c.stem_channels[0] = 5;
  check_config (c, 7);
  c = small_grey_config (4);
  c.height = c.width = 64, c.patch = 16;
  c.stem_layers = 4;
  c.stem_channels[0] = 4, c.stem_channels[1] = 6, c.stem_channels[2] = 8, c.stem_channels[3] = 10;
  check_config (c, 8);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/train/forward-equal/grey", test_grey);
  g_test_add_func ("/train/forward-equal/hidden-router", test_hidden_router);
  g_test_add_func ("/train/forward-equal/class-token", test_class_token);
  g_test_add_func ("/train/forward-equal/rgb-non-square", test_rgb_non_square);
  g_test_add_func ("/train/forward-equal/stem", test_stem);
  return g_test_run ();
}
