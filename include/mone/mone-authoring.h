/* Model authoring: describing a model (named configurations, `key=value` overrides, the tensor
 * list of a config), random parameters and writing model files.
 *
 * The static mone-authoring library (src/init.c, src/model-write.c) and the engine's config
 * checks implement it; the `mone` tool, the trainer and the tests build models with it. Not part of
 * the installed runtime library. Deterministic: the same config and seed give the same bytes on
 * every machine (the PRNG is our own and the normal samples are computed in double precision). */
#ifndef MONE_MONE_AUTHORING_H
#define MONE_MONE_AUTHORING_H

#include "mone/mone.h"

G_BEGIN_DECLS

/* Validates a config (positive sizes, divisibility, channels <= MONE_MAX_CHANNELS, experts <=
 * MONE_MAX_EXPERTS, normalisation within the engine's limits, ...) and fills the derived fields
 * (tokens, grid_width, grid_height). */
gboolean mone_config_finalize (MoneConfig *config, GError **error);
/* The smallest budget, r_0 = 1 / 2^(E-1): every token on the narrowest expert. */
double mone_config_min_budget (const MoneConfig *config);

/* Fills *config with the named configuration (see mone_config_names) and the defaults every
 * config shares: delta 2, beta 10, ln_eps 1e-6, mean 0.5 and std 0.5 per channel. Derived fields
 * are not filled (mone_config_finalize does). */
gboolean mone_config_from_name (const char *name, MoneConfig *config, GError **error);

/* NULL-terminated list of the names mone_config_from_name accepts. */
const char *const *mone_config_names (void);

/* Applies one "key=value" override: height, width, channels, frames, tubelet, patch, dim, depth,
 * heads, mlp_dim, experts, classes (integers), delta, beta, ln_eps (numbers), mean, std
 * (comma-separated, one per channel or one for all), seed (into *seed; may be NULL if the caller
 * has no seed, which makes "seed=" an error). */
gboolean mone_config_apply_override (MoneConfig *config, const char *key_value, guint64 *seed,
    GError **error);

/* The stem as `stem=` takes it: "16,32,64", or "none" without a stem. Free with g_free. */
char *mone_config_stem_string (const MoneConfig *config);

/* Config from a name and "key=value" overrides (seed= included, default seed 0):
 * the command-line form "vit-ti16 depth=6 seed=3". */
gboolean mone_config_from_args (const char *name, int n_overrides, const char *const *overrides,
    MoneConfig *config, guint64 *seed, GError **error);

/* The complete list of tensors of a model with the given config, in canonical order:
 * the loader matches the file against it, the writer and the trainer lay parameters out by it. */
typedef struct {
  char name[64];
  int ndim;
  int64_t shape[2];
  int64_t numel;
} MoneTensorSpec;

/* Returns a newly allocated array of specs (g_free it) and its length in *n_specs. */
MoneTensorSpec *mone_tensor_specs (const MoneConfig *config, int *n_specs);

/* All parameters of one model, in mone_tensor_specs order, in a single allocation. */
typedef struct {
  MoneConfig config; /* finalized */
  int n_tensors;
  MoneTensorSpec *specs; /* (n_tensors) */
  float **tensors;       /* (n_tensors) pointers into storage, spec order */
  float *storage;        /* (n_params) every parameter, contiguous, spec order */
  size_t n_params;
} MoneParameters;

/* Random initialisation: matrices and pos_embed ~ normal(0, 0.02) truncated at +-2 std (0.04),
 * biases 0, LayerNorm weights 1 and biases 0, alpha 0. Validates the config (derived fields are
 * filled in the copy kept in ->config). */
MoneParameters *mone_parameters_new_random (const MoneConfig *config, guint64 seed, GError **error);
/* Same layout, all zeros (gradients, optimiser moments). */
MoneParameters *mone_parameters_new_zero (const MoneConfig *config, GError **error);
void mone_parameters_free (MoneParameters *params);

/* A model that owns freshly initialised random parameters (mone_parameters_new_random): for tests,
 * benchmarks and `mone init`. */
MoneModel *mone_model_new_random (const MoneConfig *config, guint64 seed, GError **error);

/* Writes a model file (F32) with every tensor of mone_tensor_specs(config) in that order.
 * tensors[i] points at specs[i].numel floats. labels has config->classes entries. */
gboolean mone_model_write (const char *path, const MoneConfig *config, const char *const *labels,
    const float *const *tensors, GError **error);

/* The authoring PRNG (xoshiro256**, seeded through splitmix64): small, fast, reproducible. */
typedef struct {
  guint64 s[4];
} MoneRng;

void mone_rng_seed (MoneRng *rng, guint64 seed);
guint64 mone_rng_next (MoneRng *rng);
/* Uniform in [0, 1) with 53 random bits. */
double mone_rng_uniform (MoneRng *rng);
/* Standard normal (Box-Muller, one sample per call). */
double mone_rng_normal (MoneRng *rng);

G_END_DECLS

#endif /* MONE_MONE_AUTHORING_H */
