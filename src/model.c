/* The model object: config validation, the canonical tensor table, reference counting, getters. */
#include "mone-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

G_DEFINE_QUARK (mone - error - quark, mone_error)

gboolean
mone_config_finalize (MoneConfig *c, GError **error)
{
#define REQUIRE(cond, ...)                                                                         \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      g_set_error (error, MONE_ERROR, MONE_ERROR_MODEL, __VA_ARGS__);                              \
      return FALSE;                                                                                \
    }                                                                                              \
  } while (0)
  /* Upper bounds keep every derived product far from int overflow (4096^2 * 4 < 2^31 is not
   * needed: counts below are bounded individually and products are computed in int64). */
  REQUIRE (c->height > 0 && c->height <= 8192, "mone.height %d out of range 1..8192", c->height);
  REQUIRE (c->width > 0 && c->width <= 8192, "mone.width %d out of range 1..8192", c->width);
  REQUIRE (c->channels >= 1 && c->channels <= MONE_MAX_CHANNELS,
      "mone.channels %d out of range 1..%d", c->channels, MONE_MAX_CHANNELS);
  REQUIRE (c->frames >= 1 && c->frames <= 256, "mone.frames %d out of range 1..256", c->frames);
  REQUIRE (c->patch >= 1 && c->patch <= 256, "mone.patch %d out of range 1..256", c->patch);
  REQUIRE (c->tubelet >= 1 && c->tubelet <= c->frames,
      "mone.tubelet %d out of range 1..mone.frames (%d)", c->tubelet, c->frames);
  REQUIRE (c->height % c->patch == 0, "mone.height %d is not a multiple of mone.patch %d",
      c->height, c->patch);
  REQUIRE (c->width % c->patch == 0, "mone.width %d is not a multiple of mone.patch %d", c->width,
      c->patch);
  REQUIRE (c->frames % c->tubelet == 0, "mone.frames %d is not a multiple of mone.tubelet %d",
      c->frames, c->tubelet);
  REQUIRE (c->pool == MONE_POOL_MEAN || c->pool == MONE_POOL_CLS,
      "mone.pool %d is neither mean nor cls", c->pool);
  REQUIRE (c->router_hidden >= 0 && c->router_hidden <= 4096, "mone.router_hidden %d out of range 0..4096",
      c->router_hidden);
  REQUIRE (c->stem_layers >= 0 && c->stem_layers <= MONE_MAX_STEM_LAYERS,
      "mone.stem has %d layers, at most %d are supported", c->stem_layers, MONE_MAX_STEM_LAYERS);
  for (int i = 0; i < c->stem_layers; i++)
    REQUIRE (c->stem_channels[i] >= 1 && c->stem_channels[i] <= 1024,
        "mone.stem layer %d has %d channels, out of range 1..1024", i, c->stem_channels[i]);
  REQUIRE (c->patch % (1 << c->stem_layers) == 0,
      "mone.patch %d is not a multiple of 2^(stem layers) = %d", c->patch, 1 << c->stem_layers);
  REQUIRE (c->experts >= 1 && c->experts <= MONE_MAX_EXPERTS, "mone.experts %d out of range 1..%d",
      c->experts, MONE_MAX_EXPERTS);
  REQUIRE (c->dim >= 1 && c->dim <= 16384, "mone.dim %d out of range 1..16384", c->dim);
  REQUIRE (c->heads >= 1 && c->heads <= c->dim, "mone.heads %d out of range 1..mone.dim", c->heads);
  REQUIRE (c->dim % c->heads == 0, "mone.dim %d is not divisible by mone.heads %d", c->dim,
      c->heads);
  REQUIRE (c->dim % (1 << (c->experts - 1)) == 0,
      "mone.dim %d is not divisible by 2^(mone.experts-1) = %d", c->dim, 1 << (c->experts - 1));
  REQUIRE (c->depth >= 1 && c->depth <= 1024, "mone.depth %d out of range 1..1024", c->depth);
  REQUIRE (c->mlp_dim >= 1 && c->mlp_dim <= 65536, "mone.mlp_dim %d out of range 1..65536",
      c->mlp_dim);
  REQUIRE (c->classes >= 1 && c->classes <= 100000, "mone.classes %d out of range 1..100000",
      c->classes);
  REQUIRE (c->beta > 0 && c->beta < 1e6f, "mone.beta %g out of range (0, 1e6)", (double) c->beta);
  REQUIRE (c->delta > 0 && c->delta < 1e3f, "mone.delta %g out of range (0, 1000)",
      (double) c->delta);
  REQUIRE (c->ln_eps > 0 && c->ln_eps < 1.0f, "mone.ln_eps %g out of range (0, 1)",
      (double) c->ln_eps);
  /* Pixels are in [0, 1]; these bounds keep (pixel - mean) / std far from float overflow. */
  for (int ch = 0; ch < c->channels; ch++) {
    REQUIRE (c->mean[ch] >= -MONE_MAX_PIXEL_MEAN && c->mean[ch] <= MONE_MAX_PIXEL_MEAN,
        "mone.mean[%d] = %g out of range [-%g, %g]", ch, (double) c->mean[ch], MONE_MAX_PIXEL_MEAN,
        MONE_MAX_PIXEL_MEAN);
    REQUIRE (c->std[ch] >= MONE_MIN_PIXEL_STD && c->std[ch] <= MONE_MAX_PIXEL_STD,
        "mone.std[%d] = %g out of range [%g, %g]", ch, (double) c->std[ch], MONE_MIN_PIXEL_STD,
        MONE_MAX_PIXEL_STD);
  }

  c->grid_width = c->width / c->patch;
  c->grid_height = c->height / c->patch;
  int64_t tokens = (int64_t) (c->frames / c->tubelet) * c->grid_width * c->grid_height;
  REQUIRE (tokens <= 65536, "model has %lld tokens, more than the supported 65536",
      (long long) tokens);
  c->tokens = (int) tokens;
  /* P = C' t p' p' (mone_patch_inputs, an int): bounded here in 64 bits before anyone multiplies
   * it in int; 2^24 inputs per token is far beyond any model and far from overflow. */
  const int64_t patch_inputs = (int64_t) mone_embed_channels (c) * c->tubelet * mone_embed_patch (c)
      * mone_embed_patch (c);
  REQUIRE (patch_inputs <= (1 << 24),
      "model has %lld patch-embedding inputs per token, more than the supported %d",
      (long long) patch_inputs, 1 << 24);
  return TRUE;
#undef REQUIRE
}

static void
add_spec (MoneTensorSpec *specs, int *n, const char *name, int ndim, int64_t d0, int64_t d1)
{
  MoneTensorSpec *s = &specs[(*n)++];
  g_strlcpy (s->name, name, sizeof s->name);
  s->ndim = ndim;
  s->shape[0] = d0;
  s->shape[1] = ndim == 2 ? d1 : 0;
  s->numel = ndim == 2 ? d0 * d1 : d0;
}

MoneTensorSpec *
mone_tensor_specs (const MoneConfig *c, int *n_specs)
{
  const int64_t D = c->dim, F = c->mlp_dim, E = c->experts, K = c->classes, N = c->tokens;
  const int64_t patch_in = mone_patch_inputs (c);
  const int64_t R = c->router_hidden;
  MoneTensorSpec *specs = g_new0 (MoneTensorSpec, 6 + 12 * c->depth + 7 + 2 * MONE_MAX_STEM_LAYERS);
  int n = 0;
  char name[64];

  add_spec (specs, &n, "patch_embed.weight", 2, D, patch_in);
  add_spec (specs, &n, "patch_embed.bias", 1, D, 0);
  /* A class token has its own position, first. */
  add_spec (specs, &n, "pos_embed", 2, N + (c->pool == MONE_POOL_CLS), D);
  /* The router's output layer reads the embedded token, or its hidden layer when it has one. */
  add_spec (specs, &n, "router.weight", 2, E, R ? R : D);
  add_spec (specs, &n, "router.bias", 1, E, 0);
  add_spec (specs, &n, "alpha", 1, 1, 0);
  for (int i = 0; i < c->depth; i++) {
#define BLOCK(suffix, ndim, d0, d1)                                                                \
  snprintf (name, sizeof name, "blocks.%d." suffix, i);                                            \
  add_spec (specs, &n, name, ndim, d0, d1)
    BLOCK ("norm1.weight", 1, D, 0);
    BLOCK ("norm1.bias", 1, D, 0);
    BLOCK ("attn.qkv.weight", 2, 3 * D, D);
    BLOCK ("attn.qkv.bias", 1, 3 * D, 0);
    BLOCK ("attn.proj.weight", 2, D, D);
    BLOCK ("attn.proj.bias", 1, D, 0);
    BLOCK ("norm2.weight", 1, D, 0);
    BLOCK ("norm2.bias", 1, D, 0);
    BLOCK ("mlp.fc1.weight", 2, F, D);
    BLOCK ("mlp.fc1.bias", 1, F, 0);
    BLOCK ("mlp.fc2.weight", 2, D, F);
    BLOCK ("mlp.fc2.bias", 1, D, 0);
#undef BLOCK
  }
  add_spec (specs, &n, "norm.weight", 1, D, 0);
  add_spec (specs, &n, "norm.bias", 1, D, 0);
  add_spec (specs, &n, "head.weight", 2, K, D);
  add_spec (specs, &n, "head.bias", 1, K, 0);
  /* Last, so that a mean-pool model's tensors keep their indices. */
  if (c->pool == MONE_POOL_CLS)
    add_spec (specs, &n, "cls_token", 1, D, 0);
  if (R) {
    add_spec (specs, &n, "router.hidden.weight", 2, R, D);
    add_spec (specs, &n, "router.hidden.bias", 1, R, 0);
  }
  for (int i = 0; i < c->stem_layers; i++) {
    const int64_t in = mone_stem_in_channels (c, i), out = c->stem_channels[i];
    snprintf (name, sizeof name, "stem.%d.weight", i);
    add_spec (specs, &n, name, 2, out, in * 9);
    snprintf (name, sizeof name, "stem.%d.bias", i);
    add_spec (specs, &n, name, 1, out, 0);
  }
  *n_specs = n;
  return specs;
}

void
mone_weights_bind (MoneWeights *w, const MoneConfig *c, const float *const *t)
{
  int i = 0;
  w->patch_embed_weight = t[i++];
  w->patch_embed_bias = t[i++];
  w->pos_embed = t[i++];
  w->router_weight = t[i++];
  w->router_bias = t[i++];
  w->alpha = t[i++];
  w->blocks = g_new0 (MoneBlockWeights, c->depth);
  for (int l = 0; l < c->depth; l++) {
    MoneBlockWeights *b = &w->blocks[l];
    b->norm1_weight = t[i++];
    b->norm1_bias = t[i++];
    b->qkv_weight = t[i++];
    b->qkv_bias = t[i++];
    b->proj_weight = t[i++];
    b->proj_bias = t[i++];
    b->norm2_weight = t[i++];
    b->norm2_bias = t[i++];
    b->fc1_weight = t[i++];
    b->fc1_bias = t[i++];
    b->fc2_weight = t[i++];
    b->fc2_bias = t[i++];
  }
  w->norm_weight = t[i++];
  w->norm_bias = t[i++];
  w->head_weight = t[i++];
  w->head_bias = t[i++];
  w->cls_token = c->pool == MONE_POOL_CLS ? t[i++] : NULL;
  w->router_hidden_weight = c->router_hidden ? t[i++] : NULL;
  w->router_hidden_bias = c->router_hidden ? t[i++] : NULL;
  for (int l = 0; l < c->stem_layers; l++) {
    w->stem_weight[l] = t[i++];
    w->stem_bias[l] = t[i++];
  }
}

MoneModel *
mone_model_new_borrowed (const MoneConfig *config, const char *const *labels,
    const float *const *tensors, GError **error)
{
  MoneConfig c = *config;
  if (!mone_config_finalize (&c, error))
    return NULL;
  MoneModel *m = g_new0 (MoneModel, 1);
  m->refcount = 1;
  m->config = c;
  m->labels = g_new0 (char *, c.classes + 1);
  for (int k = 0; k < c.classes; k++)
    m->labels[k] = labels && labels[k] ? g_strdup (labels[k]) : g_strdup_printf ("class %d", k);
  mone_weights_bind (&m->weights, &c, tensors);
  if (!mone_model_pack_weights (m, error)) {
    mone_model_unref (m);
    return NULL;
  }
  return m;
}

/* Calls fn for every packed matrix of w with its source (out, in) matrix. */
typedef void (*PackedMatrixFunc) (MonePackedMatrix *packed, const float *source, int outputs,
    int inputs, void *data);

static void
for_each_packed_matrix (MoneWeights *w, const MoneConfig *c, PackedMatrixFunc fn, void *data)
{
  const int D = c->dim, F = c->mlp_dim, P = mone_patch_inputs (c);
  fn (&w->patch_embed_packed, w->patch_embed_weight, D, P, data);
  for (int l = 0; l < c->depth; l++) {
    MoneBlockWeights *b = &w->blocks[l];
    fn (&b->qkv_packed, b->qkv_weight, 3 * D, D, data);
    fn (&b->proj_packed, b->proj_weight, D, D, data);
    fn (&b->fc1_packed, b->fc1_weight, F, D, data);
    fn (&b->fc2_packed, b->fc2_weight, D, F, data);
  }
  for (int i = 1; i < c->stem_layers; i++)
    fn (&w->stem_packed[i], w->stem_weight_taps[i], c->stem_channels[i],
        9 * mone_stem_in_channels (c, i), data);
}

/* Floats of stem layer i's reordered weight, rounded up to whole cache lines so that what follows
 * it in packed_storage stays 64-byte aligned. */
static size_t
stem_taps_floats (const MoneConfig *c, int layer)
{
  const size_t n = (size_t) c->stem_channels[layer] * 9 * mone_stem_in_channels (c, layer);
  return (n + MONE_PANEL_WIDTH - 1) / MONE_PANEL_WIDTH * MONE_PANEL_WIDTH;
}

/* w (out, in, 3, 3), PyTorch's Conv2d order, to the engine's channels-last order: taps (out, 3, 3,
 * in) (MoneWeights.stem_weight_taps), or with tap_major (3, 3, in, out), each tap's weights for
 * every output channel in a row (MoneWeights.stem_first_weights). */
static void
reorder_stem_weight (int outputs, int in_channels, const float *w, bool tap_major, float *taps)
{
  for (int o = 0; o < outputs; o++)
    for (int ch = 0; ch < in_channels; ch++)
      for (int tap = 0; tap < 9; tap++) {
        const size_t k = (size_t) tap * in_channels + ch; /* (row, column, channel) */
        taps[tap_major ? k * outputs + o : (size_t) o * 9 * in_channels + k] =
            w[((size_t) o * in_channels + ch) * 9 + tap];
      }
}

static void
add_packed_size (MonePackedMatrix *packed, const float *source, int outputs, int inputs, void *data)
{
  *(size_t *) data += mone_packed_size (outputs, inputs);
}

static void
pack_into (MonePackedMatrix *packed, const float *source, int outputs, int inputs, void *data)
{
  float **next = data;
  mone_pack_weights (outputs, inputs, source, inputs, *next);
  *packed = (MonePackedMatrix){ *next, outputs, inputs };
  /* Packed sizes are multiples of MONE_PANEL_WIDTH floats: every matrix starts 64-byte aligned. */
  *next += mone_packed_size (outputs, inputs);
}

gboolean
mone_model_pack_weights (MoneModel *m, GError **error)
{
  const MoneConfig *c = &m->config;
  size_t total = 0;
  for (int i = 0; i < c->stem_layers; i++)
    total += stem_taps_floats (c, i);
  for_each_packed_matrix (&m->weights, c, add_packed_size, &total);
  /* Not g_aligned_alloc, which aborts: a hostile file may ask for more than the machine has. */
  void *storage = NULL;
  if (posix_memalign (&storage, 64, MAX (total, 1) * sizeof (float)) != 0)
    storage = NULL;
  m->packed_storage = storage;
  if (!m->packed_storage) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_MODEL,
        "cannot allocate %zu bytes for the packed weights", total * sizeof (float));
    return FALSE;
  }
  float *next = m->packed_storage;
  /* The stem's reordered weights first: they are the sources of its packed matrices (the first
   * layer's, a direct convolution, tap-major instead). */
  for (int i = 0; i < c->stem_layers; i++) {
    reorder_stem_weight (c->stem_channels[i], mone_stem_in_channels (c, i),
        m->weights.stem_weight[i], i == 0, next);
    if (i == 0)
      m->weights.stem_first_weights = next;
    else
      m->weights.stem_weight_taps[i] = next;
    next += stem_taps_floats (c, i);
  }
  for_each_packed_matrix (&m->weights, c, pack_into, &next);
  return TRUE;
}

MoneModel *
mone_model_ref (MoneModel *model)
{
  g_return_val_if_fail (model != NULL, NULL);
  g_atomic_int_inc (&model->refcount);
  return model;
}

void
mone_model_unref (MoneModel *model)
{
  if (model == NULL || !g_atomic_int_dec_and_test (&model->refcount))
    return;
  g_strfreev (model->labels);
  g_free (model->weights.blocks);
  g_free (model->owned_bytes);
  g_free (model->converted_storage);
  free (model->packed_storage);
  g_free (model);
}

const MoneConfig *
mone_model_get_config (const MoneModel *model)
{
  return &model->config;
}

const char *
mone_model_get_label (const MoneModel *model, int k)
{
  if (k < 0 || k >= model->config.classes)
    return NULL;
  return model->labels[k];
}

size_t
mone_model_parameter_count (const MoneModel *model)
{
  int n = 0;
  MoneTensorSpec *specs = mone_tensor_specs (&model->config, &n);
  size_t total = 0;
  for (int i = 0; i < n; i++)
    total += (size_t) specs[i].numel;
  g_free (specs);
  return total;
}

double
mone_model_min_budget (const MoneModel *model)
{
  return mone_config_min_budget (&model->config);
}

double
mone_config_min_budget (const MoneConfig *config)
{
  return 1.0 / (double) (1 << (config->experts - 1));
}
