/* Named configurations, key=value overrides and deterministic random initialisation (include/mone/mone-authoring.h). */
#include "mone-private.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------- */
/* PRNG */

static guint64
splitmix64 (guint64 *x)
{
  guint64 z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void
mone_rng_seed (MoneRng *rng, guint64 seed)
{
  guint64 x = seed;
  for (int i = 0; i < 4; i++)
    rng->s[i] = splitmix64 (&x);
}

static inline guint64
rotl (guint64 x, int k)
{
  return (x << k) | (x >> (64 - k));
}

guint64
mone_rng_next (MoneRng *rng)
{
  guint64 *s = rng->s;
  guint64 result = rotl (s[1] * 5, 7) * 9;
  guint64 t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl (s[3], 45);
  return result;
}

double
mone_rng_uniform (MoneRng *rng)
{
  return (double) (mone_rng_next (rng) >> 11) * 0x1.0p-53;
}

double
mone_rng_normal (MoneRng *rng)
{
  /* 1 - u lies in (0, 1], so the log is finite. */
  double u1 = 1.0 - mone_rng_uniform (rng), u2 = mone_rng_uniform (rng);
  return sqrt (-2.0 * log (u1)) * cos (2.0 * G_PI * u2);
}

/* ---------------------------------------------------------------------------------------------- */
/* Named configurations */

static const char *const config_names[] = { "vit-ti16", "vit-s16", "tiny", "small32", "fashion28",
  "scene64", NULL };

const char *const *
mone_config_names (void)
{
  return config_names;
}

static void
set_defaults (MoneConfig *c)
{
  memset (c, 0, sizeof *c);
  c->frames = 1;
  c->tubelet = 1;
  c->channels = 3;
  c->experts = 4;
  c->delta = 2;
  c->beta = 10;
  c->ln_eps = 1e-6f;
  for (int ch = 0; ch < MONE_MAX_CHANNELS; ch++) {
    c->mean[ch] = 0.5f;
    c->std[ch] = 0.5f;
  }
}

gboolean
mone_config_from_name (const char *name, MoneConfig *c, GError **error)
{
  set_defaults (c);
  if (!g_strcmp0 (name, "vit-ti16") || !g_strcmp0 (name, "vit-s16")) {
    /* ViT-Ti/16 and ViT-S/16 shapes (timm vit_tiny/small_patch16_224), 1000 ImageNet classes. */
    gboolean small = !strcmp (name, "vit-s16");
    c->height = c->width = 224;
    c->patch = 16;
    c->dim = small ? 384 : 192;
    c->heads = small ? 6 : 3;
    c->mlp_dim = 4 * c->dim;
    c->depth = 12;
    c->classes = 1000;
  } else if (!g_strcmp0 (name, "tiny")) {
    /* Small enough for unit tests: 16 tokens, width 32, two blocks. */
    c->height = c->width = 32;
    c->patch = 8;
    c->dim = 32;
    c->heads = 2;
    c->mlp_dim = 64;
    c->depth = 2;
    c->classes = 10;
  } else if (!g_strcmp0 (name, "small32") || !g_strcmp0 (name, "fashion28")
      || !g_strcmp0 (name, "scene64")) {
    /* The trainer's grey models: `mone train`'s default (32x32, patch 4), the shipped Fashion-MNIST
     * model's shape (28x28, patch 4) and the scene recipe's base (64x64, patch 8; the shipped scene
     * model takes it to 128x128 by key=value); D 64, 6 blocks. */
    const gboolean scene = !strcmp (name, "scene64");
    c->height = c->width = scene ? 64 : !strcmp (name, "fashion28") ? 28 : 32;
    c->channels = 1;
    c->patch = scene ? 8 : 4;
    c->dim = 64;
    c->heads = 4;
    c->mlp_dim = 256;
    c->depth = 6;
    c->classes = 10;
  } else {
    g_autofree char *known = g_strjoinv (", ", (char **) config_names);
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT, "unknown config '%s' (known: %s)",
        name ? name : "(null)", known);
    return FALSE;
  }
  return TRUE;
}

static gboolean
parse_int (const char *key, const char *value, int minimum, int *out, GError **error)
{
  char *end = NULL;
  errno = 0;
  long v = strtol (value, &end, 10);
  if (errno || end == value || *end || v < minimum || v > G_MAXINT) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT, "%s=%s: expected a %s integer", key, value,
        minimum > 0 ? "positive" : "non-negative");
    return FALSE;
  }
  *out = (int) v;
  return TRUE;
}

static gboolean
parse_float (const char *key, const char *value, float *out, GError **error)
{
  char *end = NULL;
  errno = 0;
  double v = g_ascii_strtod (value, &end);
  if (errno || end == value || *end || !isfinite (v)) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT, "%s=%s: expected a number", key,
        value);
    return FALSE;
  }
  *out = (float) v;
  return TRUE;
}

/* "0.485,0.456,0.406" or "0.5" (applies to every channel). */
static gboolean
parse_channel_list (const char *key, const char *value, float *out, GError **error)
{
  g_auto (GStrv) parts = g_strsplit (value, ",", -1);
  int n = (int) g_strv_length (parts);
  if (n < 1 || n > MONE_MAX_CHANNELS) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
        "%s=%s: expected 1 to %d comma-separated numbers", key, value, MONE_MAX_CHANNELS);
    return FALSE;
  }
  float v[MONE_MAX_CHANNELS];
  for (int i = 0; i < n; i++)
    if (!parse_float (key, parts[i], &v[i], error))
      return FALSE;
  for (int ch = 0; ch < MONE_MAX_CHANNELS; ch++)
    out[ch] = v[n == 1 ? 0 : ch < n ? ch : n - 1];
  return TRUE;
}

char *
mone_config_stem_string (const MoneConfig *c)
{
  if (!c->stem_layers)
    return g_strdup ("none");
  GString *widths = g_string_new (NULL);
  for (int i = 0; i < c->stem_layers; i++)
    g_string_append_printf (widths, i ? ",%d" : "%d", c->stem_channels[i]);
  return g_string_free (widths, FALSE);
}

/* "16,32": the stem's layer widths; "none": no stem. */
static gboolean
parse_stem (const char *value, MoneConfig *c, GError **error)
{
  if (!strcmp (value, "none")) {
    c->stem_layers = 0;
    return TRUE;
  }
  g_auto (GStrv) parts = g_strsplit (value, ",", -1);
  int n = (int) g_strv_length (parts);
  if (n < 1 || n > MONE_MAX_STEM_LAYERS) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
        "stem=%s: expected 1 to %d comma-separated layer widths, or none", value,
        MONE_MAX_STEM_LAYERS);
    return FALSE;
  }
  int widths[MONE_MAX_STEM_LAYERS];
  for (int i = 0; i < n; i++)
    if (!parse_int ("stem", parts[i], 1, &widths[i], error))
      return FALSE;
  c->stem_layers = n;
  for (int i = 0; i < n; i++)
    c->stem_channels[i] = widths[i];
  return TRUE;
}

gboolean
mone_config_apply_override (MoneConfig *c, const char *key_value, guint64 *seed, GError **error)
{
  const char *eq = strchr (key_value, '=');
  if (!eq || eq == key_value) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT, "'%s': expected key=value",
        key_value);
    return FALSE;
  }
  g_autofree char *key = g_strndup (key_value, eq - key_value);
  const char *value = eq + 1;
  static const struct {
    const char *key;
    size_t offset;
    int minimum;
  } int_fields[] = {
    { "height", G_STRUCT_OFFSET (MoneConfig, height), 1 },
    { "width", G_STRUCT_OFFSET (MoneConfig, width), 1 },
    { "channels", G_STRUCT_OFFSET (MoneConfig, channels), 1 },
    { "frames", G_STRUCT_OFFSET (MoneConfig, frames), 1 },
    { "tubelet", G_STRUCT_OFFSET (MoneConfig, tubelet), 1 },
    { "patch", G_STRUCT_OFFSET (MoneConfig, patch), 1 },
    { "dim", G_STRUCT_OFFSET (MoneConfig, dim), 1 },
    { "depth", G_STRUCT_OFFSET (MoneConfig, depth), 1 },
    { "heads", G_STRUCT_OFFSET (MoneConfig, heads), 1 },
    { "mlp_dim", G_STRUCT_OFFSET (MoneConfig, mlp_dim), 1 },
    { "experts", G_STRUCT_OFFSET (MoneConfig, experts), 1 },
    { "classes", G_STRUCT_OFFSET (MoneConfig, classes), 1 },
    { "router_hidden", G_STRUCT_OFFSET (MoneConfig, router_hidden), 0 }, /* 0: a linear router */
  };
  for (size_t i = 0; i < G_N_ELEMENTS (int_fields); i++)
    if (!strcmp (key, int_fields[i].key))
      return parse_int (key, value, int_fields[i].minimum, G_STRUCT_MEMBER_P (c, int_fields[i].offset), error);
  if (!strcmp (key, "delta"))
    return parse_float (key, value, &c->delta, error);
  if (!strcmp (key, "beta"))
    return parse_float (key, value, &c->beta, error);
  if (!strcmp (key, "ln_eps"))
    return parse_float (key, value, &c->ln_eps, error);
  if (!strcmp (key, "pool")) {
    if (strcmp (value, "mean") && strcmp (value, "cls")) {
      g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT, "pool=%s: expected mean or cls",
          value);
      return FALSE;
    }
    c->pool = strcmp (value, "cls") ? MONE_POOL_MEAN : MONE_POOL_CLS;
    return TRUE;
  }
  if (!strcmp (key, "stem"))
    return parse_stem (value, c, error);
  if (!strcmp (key, "mean"))
    return parse_channel_list (key, value, c->mean, error);
  if (!strcmp (key, "std"))
    return parse_channel_list (key, value, c->std, error);
  if (!strcmp (key, "seed") && seed) {
    char *end = NULL;
    errno = 0;
    guint64 v = g_ascii_strtoull (value, &end, 10);
    if (errno || end == value || *end) {
      g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
          "seed=%s: expected an unsigned integer", value);
      return FALSE;
    }
    *seed = v;
    return TRUE;
  }
  g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
      "unknown key '%s' (known: height width channels frames tubelet patch dim depth heads mlp_dim "
      "experts classes router_hidden stem delta beta ln_eps mean std pool%s)",
      key, seed ? " seed" : "");
  return FALSE;
}

/* ---------------------------------------------------------------------------------------------- */
/* Parameters */

static MoneParameters *
parameters_alloc (const MoneConfig *config, GError **error)
{
  MoneConfig c = *config;
  if (!mone_config_finalize (&c, error))
    return NULL;
  MoneParameters *p = g_new0 (MoneParameters, 1);
  p->config = c;
  p->specs = mone_tensor_specs (&c, &p->n_tensors);
  for (int i = 0; i < p->n_tensors; i++)
    p->n_params += (size_t) p->specs[i].numel;
  p->storage = g_try_new0 (float, p->n_params);
  if (!p->storage) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
        "cannot allocate %zu parameters (%zu MB)", p->n_params, p->n_params * 4 >> 20);
    mone_parameters_free (p);
    return NULL;
  }
  p->tensors = g_new (float *, p->n_tensors);
  size_t offset = 0;
  for (int i = 0; i < p->n_tensors; i++) {
    p->tensors[i] = p->storage + offset;
    offset += (size_t) p->specs[i].numel;
  }
  return p;
}

MoneParameters *
mone_parameters_new_zero (const MoneConfig *config, GError **error)
{
  return parameters_alloc (config, error);
}

static gboolean
name_ends_with (const char *name, const char *suffix)
{
  return g_str_has_suffix (name, suffix);
}

MoneParameters *
mone_parameters_new_random (const MoneConfig *config, guint64 seed, GError **error)
{
  MoneParameters *p = parameters_alloc (config, error);
  if (!p)
    return NULL;
  MoneRng rng;
  mone_rng_seed (&rng, seed);
  const double std = 0.02;
  for (int i = 0; i < p->n_tensors; i++) {
    const MoneTensorSpec *s = &p->specs[i];
    float *t = p->tensors[i];
    gboolean is_norm = strstr (s->name, "norm") != NULL;
    if (is_norm && name_ends_with (s->name, ".weight")) {
      for (int64_t k = 0; k < s->numel; k++)
        t[k] = 1.0f;
    } else if (g_str_has_prefix (s->name, "stem.") && s->ndim == 2) {
      /* Stem convolutions: He (Kaiming-normal) variance 2 / fan_in, fan_in = 9 C_{i-1}, drawn from
       * the same 2-sigma truncated normal, widened by 1 / 0.8796 (the truncated normal's std) so the
       * variance is really 2 / fan_in. GELU passes about as much of a unit-variance input as ReLU,
       * so every layer's pre-activation keeps about the variance of the normalised pixels and the
       * patch embedding reads features of the pixels' scale; with std 0.02 the stem would start
       * as a near-zero, near-linear map that starves the patch embedding and its own gradients.
       * Biases stay 0. The stem's tensors come last in the specs, so every other tensor draws the
       * same numbers as in the same model without a stem. */
      const double he = sqrt (2.0 / (double) s->shape[1]) / 0.87962;
      for (int64_t k = 0; k < s->numel; k++) {
        double z;
        do
          z = mone_rng_normal (&rng);
        while (fabs (z) > 2.0);
        t[k] = (float) (he * z);
      }
    } else if ((s->ndim == 2 && !is_norm) || !strcmp (s->name, "cls_token")) {
      /* Matrices, pos_embed and the class token. Rejection keeps |w| <= 2 std (the usual
       * truncated normal). */
      for (int64_t k = 0; k < s->numel; k++) {
        double z;
        do
          z = mone_rng_normal (&rng);
        while (fabs (z) > 2.0);
        t[k] = (float) (std * z);
      }
    }
    /* Everything else (biases, LayerNorm biases, alpha) stays 0 from the zeroed storage. */
  }
  return p;
}

void
mone_parameters_free (MoneParameters *p)
{
  if (!p)
    return;
  g_free (p->specs);
  g_free (p->tensors);
  g_free (p->storage);
  g_free (p);
}

MoneModel *
mone_model_new_random (const MoneConfig *config, guint64 seed, GError **error)
{
  MoneParameters *p = mone_parameters_new_random (config, seed, error);
  if (!p)
    return NULL;
  MoneModel *model = mone_model_new_borrowed (&p->config, NULL, (const float *const *) p->tensors,
      error);
  if (model) {
    /* The model takes the storage: its weight table points into it and unref frees it. */
    model->converted_storage = p->storage;
    p->storage = NULL;
  }
  mone_parameters_free (p);
  return model;
}

gboolean
mone_config_from_args (const char *name, int n_overrides, const char *const *overrides,
    MoneConfig *config, guint64 *seed, GError **error)
{
  *seed = 0;
  if (!mone_config_from_name (name, config, error))
    return FALSE;
  for (int i = 0; i < n_overrides; i++)
    if (!mone_config_apply_override (config, overrides[i], seed, error))
      return FALSE;
  MoneConfig check = *config;
  return mone_config_finalize (&check, error);
}
