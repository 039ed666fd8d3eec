/* A tiny, fully valid MoNE model for the loader tests and the fuzz seed: 8x8 grey frames, patch 4
 * (N = 4 tokens), D = 4, one block, 2 heads, F = 8, E = 2 experts, K = 3 classes. Values come from
 * a fixed-seed generator so every run sees the same bytes. */
#ifndef MONE_TESTS_TINY_MODEL_H
#define MONE_TESTS_TINY_MODEL_H

#include "mone-private.h"

static inline MoneConfig
tiny_config (void)
{
  MoneConfig c = {
    .height = 8,
    .width = 8,
    .channels = 1,
    .frames = 1,
    .patch = 4,
    .tubelet = 1,
    .dim = 4,
    .depth = 1,
    .heads = 2,
    .mlp_dim = 8,
    .experts = 2,
    .classes = 3,
    .delta = 2.0f,
    .beta = 10.0f,
    .ln_eps = 1e-6f,
  };
  c.mean[0] = 0.2860f;
  c.std[0] = 0.3530f;
  return c;
}

/* Parameters of `config` in mone_tensor_specs order, filled with values in [-1, 1) from `seed`.
 * Returns the array of per-tensor pointers (all into one allocation at [0]); free with
 * tiny_params_free. */
static inline float **
tiny_params_new (const MoneConfig *config, uint32_t seed, int *n_tensors)
{
  MoneConfig c = *config;
  g_assert_true (mone_config_finalize (&c, NULL));
  int n = 0;
  MoneTensorSpec *specs = mone_tensor_specs (&c, &n);
  size_t total = 0;
  for (int i = 0; i < n; i++)
    total += (size_t) specs[i].numel;
  float **t = g_new0 (float *, n + 1);
  float *storage = g_new (float, total);
  uint32_t state = seed ? seed : 1;
  for (size_t i = 0; i < total; i++) {
    state ^= state << 13; /* xorshift32 */
    state ^= state >> 17;
    state ^= state << 5;
    storage[i] = (float) ((double) state / 4294967296.0 * 2.0 - 1.0);
  }
  for (int i = 0; i < n; i++) {
    t[i] = storage;
    storage += specs[i].numel;
  }
  g_free (specs);
  *n_tensors = n;
  return t;
}

static inline void
tiny_params_free (float **t)
{
  if (t) {
    g_free (t[0]);
    g_free (t);
  }
}

#endif
