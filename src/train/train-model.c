/* MoneTrainModel: all parameters in one allocation laid out by mone_tensor_specs, so the same
 * offsets serve gradients, AdamW moments, checkpoints and the model file. */
#include "mone/mone-authoring.h"
#include "trainer.h"

#include <math.h>
#include <string.h>

void
mone_train_tensors_bind (MoneTrainTensors *t, const MoneTrainModel *m, float *base)
{
  int i = 0;
  const size_t *o = m->offsets;
  t->patch_embed_weight = base + o[i++];
  t->patch_embed_bias = base + o[i++];
  t->pos_embed = base + o[i++];
  t->router_weight = base + o[i++];
  t->router_bias = base + o[i++];
  t->alpha = base + o[i++];
  t->blocks = g_new0 (MoneTrainBlock, m->config.depth);
  for (int l = 0; l < m->config.depth; l++) {
    MoneTrainBlock *b = &t->blocks[l];
    b->norm1_weight = base + o[i++];
    b->norm1_bias = base + o[i++];
    b->qkv_weight = base + o[i++];
    b->qkv_bias = base + o[i++];
    b->proj_weight = base + o[i++];
    b->proj_bias = base + o[i++];
    b->norm2_weight = base + o[i++];
    b->norm2_bias = base + o[i++];
    b->fc1_weight = base + o[i++];
    b->fc1_bias = base + o[i++];
    b->fc2_weight = base + o[i++];
    b->fc2_bias = base + o[i++];
  }
  t->norm_weight = base + o[i++];
  t->norm_bias = base + o[i++];
  t->head_weight = base + o[i++];
  t->head_bias = base + o[i++];
  t->cls_token = m->config.pool == MONE_POOL_CLS ? base + o[i++] : NULL;
  t->router_hidden_weight = m->config.router_hidden ? base + o[i++] : NULL;
  t->router_hidden_bias = m->config.router_hidden ? base + o[i++] : NULL;
  for (int l = 0; l < MONE_MAX_STEM_LAYERS; l++) {
    t->stem_weight[l] = l < m->config.stem_layers ? base + o[i++] : NULL;
    t->stem_bias[l] = l < m->config.stem_layers ? base + o[i++] : NULL;
  }
  g_assert (i == m->n_specs);
}

void
mone_train_tensors_clear (MoneTrainTensors *t)
{
  g_clear_pointer (&t->blocks, g_free);
}

MoneTrainModel *
mone_train_model_new (const MoneConfig *config, GError **error)
{
  MoneConfig c = *config;
  if (!mone_config_finalize (&c, error))
    return NULL;
  if (c.frames != 1 || c.tubelet != 1) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
        "the trainer handles image models only (frames = tubelet = 1), got frames %d, tubelet %d", c.frames, c.tubelet);
    return NULL;
  }
  MoneTrainModel *m = g_new0 (MoneTrainModel, 1);
  m->config = c;
  m->specs = mone_tensor_specs (&c, &m->n_specs);
  m->offsets = g_new (size_t, m->n_specs);
  size_t total = 0;
  for (int i = 0; i < m->n_specs; i++) {
    m->offsets[i] = total;
    total += (size_t) m->specs[i].numel;
  }
  m->n_params = total;
  m->params = g_try_new0 (float, total);
  if (!m->params) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT, "out of memory for %zu parameters", total);
    g_free (m->offsets);
    g_free (m->specs);
    g_free (m);
    return NULL;
  }
  mone_train_tensors_bind (&m->t, m, m->params);
  return m;
}

void
mone_train_model_free (MoneTrainModel *m)
{
  if (!m)
    return;
  mone_train_tensors_clear (&m->t);
  g_free (m->params);
  g_free (m->offsets);
  g_free (m->specs);
  g_free (m);
}

const MoneConfig *
mone_train_model_get_config (const MoneTrainModel *m)
{
  return &m->config;
}

void
mone_train_model_init (MoneTrainModel *m, uint64_t seed)
{
  /* The engine's initialiser (also behind `mone init`), so a trained model and a random model of
   * the same config and seed start from the same bytes. */
  MoneParameters *p = mone_parameters_new_random (&m->config, seed, NULL);
  g_assert (p != NULL && p->n_params == m->n_params);
  memcpy (m->params, p->storage, sizeof (float) * m->n_params);
  mone_parameters_free (p);
}

MoneTrainModel *
mone_train_model_from_engine (MoneModel *engine, GError **error)
{
  MoneTrainModel *m = mone_train_model_new (mone_model_get_config (engine), error);
  if (!m)
    return NULL;
  /* The engine's weight table is in spec order too; walk both. */
  const MoneWeights *w = &engine->weights;
  const float *src[6 + 12 * 1024 + 7 + 2 * MONE_MAX_STEM_LAYERS];
  int n = 0;
  src[n++] = w->patch_embed_weight;
  src[n++] = w->patch_embed_bias;
  src[n++] = w->pos_embed;
  src[n++] = w->router_weight;
  src[n++] = w->router_bias;
  src[n++] = w->alpha;
  for (int l = 0; l < m->config.depth; l++) {
    const MoneBlockWeights *b = &w->blocks[l];
    src[n++] = b->norm1_weight;
    src[n++] = b->norm1_bias;
    src[n++] = b->qkv_weight;
    src[n++] = b->qkv_bias;
    src[n++] = b->proj_weight;
    src[n++] = b->proj_bias;
    src[n++] = b->norm2_weight;
    src[n++] = b->norm2_bias;
    src[n++] = b->fc1_weight;
    src[n++] = b->fc1_bias;
    src[n++] = b->fc2_weight;
    src[n++] = b->fc2_bias;
  }
  src[n++] = w->norm_weight;
  src[n++] = w->norm_bias;
  src[n++] = w->head_weight;
  src[n++] = w->head_bias;
  if (m->config.pool == MONE_POOL_CLS)
    src[n++] = w->cls_token;
  if (m->config.router_hidden) {
    src[n++] = w->router_hidden_weight;
    src[n++] = w->router_hidden_bias;
  }
  for (int l = 0; l < m->config.stem_layers; l++) {
    src[n++] = w->stem_weight[l];
    src[n++] = w->stem_bias[l];
  }
  g_assert (n == m->n_specs);
  for (int i = 0; i < n; i++)
    memcpy (m->params + m->offsets[i], src[i], sizeof (float) * m->specs[i].numel);
  return m;
}

static const float **
tensor_pointers (MoneTrainModel *m)
{
  const float **t = g_new (const float *, m->n_specs);
  for (int i = 0; i < m->n_specs; i++)
    t[i] = m->params + m->offsets[i];
  return t;
}

MoneModel *
mone_train_model_to_engine (MoneTrainModel *m, const char *const *labels, GError **error)
{
  const float **t = tensor_pointers (m);
  MoneModel *model = mone_model_new_borrowed (&m->config, labels, t, error);
  g_free (t);
  return model;
}

gboolean
mone_train_model_write (MoneTrainModel *m, const char *path, const char *const *labels, GError **error)
{
  const float **t = tensor_pointers (m);
  gboolean ok = mone_model_write (path, &m->config, labels, t, error);
  g_free (t);
  return ok;
}
