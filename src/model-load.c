/* Model file -> validated MoneModel.
 *
 * Three stages, each trusting only what the previous one checked:
 *   1. safetensors.c: the bytes form a well-formed safetensors file (sizes, offsets, tiling).
 *   2. here: the metadata form a consistent MoneConfig (mone_config_finalize).
 *   3. here: the file's tensors are exactly mone_tensor_specs(config), with the declared shapes,
 *      and every value is finite.
 * F32 tensors that are little-endian and 4-byte aligned are used in place (no copy of the mapping);
 * everything else is converted once into one converted_storage allocation.
 */
#include "mone-private.h"

#include "json.h"
#include "safetensors.h"

#include <errno.h>
#include <float.h>
#include <glib/gstdio.h>
#include <sys/stat.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MODEL_ERROR(...) g_set_error (error, MONE_ERROR, MONE_ERROR_MODEL, __VA_ARGS__)

static const char *
require_metadata (const MoneSafetensors *st, const char *key, GError **error)
{
  const char *value = mone_safetensors_get_metadata (st, key);
  if (value == NULL)
    MODEL_ERROR ("missing metadata key '%s'", key);
  return value;
}

/* Strict decimal integer: digits only, no sign, no spaces, no leading zeros, fits in int. */
static gboolean
parse_metadata_int (const MoneSafetensors *st, const char *key, int *out, GError **error)
{
  const char *s = require_metadata (st, key, error);
  if (s == NULL)
    return FALSE;
  size_t n = strlen (s);
  gboolean ok = n > 0 && n <= 9 && !(n > 1 && s[0] == '0');
  for (size_t i = 0; ok && i < n; i++)
    ok = s[i] >= '0' && s[i] <= '9';
  if (!ok) {
    g_autofree char *shown = g_strescape (s, NULL);
    MODEL_ERROR ("metadata '%s' = '%.40s' is not a decimal integer (0..999999999)", key, shown);
    return FALSE;
  }
  *out = atoi (s);
  return TRUE;
}

/* A finite decimal number, locale independent: [-]digits[.digits][e[+-]digits]. */
static gboolean
parse_real (const char *s, double *out)
{
  const char *p = s;
  if (*p == '-' || *p == '+')
    p++;
  if (!g_ascii_isdigit (*p) && !(*p == '.' && g_ascii_isdigit (p[1])))
    return FALSE;
  for (const char *q = p; *q; q++)
    if (!g_ascii_isdigit (*q) && *q != '.' && *q != 'e' && *q != 'E' && *q != '+' && *q != '-')
      return FALSE;
  char *end = NULL;
  errno = 0;
  double v = g_ascii_strtod (s, &end);
  if (end == s || *end != '\0' || errno == ERANGE || !isfinite (v))
    return FALSE;
  *out = v;
  return TRUE;
}

/* Finite in float32 and not flushed to zero (1e-46 would silently become 0). */
static gboolean
fits_float (double v)
{
  return fabs (v) <= FLT_MAX && (v == 0 || fabs (v) >= FLT_MIN);
}

static gboolean
parse_metadata_float (const MoneSafetensors *st, const char *key, float fallback, float *out,
    GError **error)
{
  const char *s = mone_safetensors_get_metadata (st, key);
  double v;
  if (s == NULL) {
    *out = fallback;
    return TRUE;
  }
  if (!parse_real (s, &v) || !fits_float (v)) {
    g_autofree char *shown = g_strescape (s, NULL);
    MODEL_ERROR ("metadata '%s' = '%.40s' is not a finite float32 number", key, shown);
    return FALSE;
  }
  *out = (float) v;
  return TRUE;
}

/* "a,b,c" with exactly `channels` finite numbers (spaces around commas allowed). */
static gboolean
parse_metadata_list (const MoneSafetensors *st, const char *key, int channels, float *out,
    GError **error)
{
  const char *s = require_metadata (st, key, error);
  if (s == NULL)
    return FALSE;
  gboolean ok = TRUE;
  char **items = g_strsplit (s, ",", -1);
  int n = (int) g_strv_length (items);
  if (n != channels) {
    MODEL_ERROR ("metadata '%s' has %d values, expected %d (mone.channels)", key, n, channels);
    ok = FALSE;
  }
  for (int i = 0; ok && i < n; i++) {
    double v;
    g_strstrip (items[i]);
    if (!parse_real (items[i], &v) || !fits_float (v)) {
      g_autofree char *shown = g_strescape (items[i], NULL);
      MODEL_ERROR ("metadata '%s' value %d '%.40s' is not a finite float32 number", key, i, shown);
      ok = FALSE;
    } else
      out[i] = (float) v;
  }
  g_strfreev (items);
  return ok;
}

/* mone.stem: "16,32", 1 to MONE_MAX_STEM_LAYERS strict decimal integers (spaces around commas
 * allowed); their ranges are mone_config_finalize's. Absent: no stem. */
static gboolean
parse_metadata_stem (const MoneSafetensors *st, MoneConfig *c, GError **error)
{
  const char *s = mone_safetensors_get_metadata (st, "mone.stem");
  c->stem_layers = 0;
  if (s == NULL)
    return TRUE;
  g_auto (GStrv) items = g_strsplit (s, ",", -1);
  int n = (int) g_strv_length (items);
  if (n < 1 || n > MONE_MAX_STEM_LAYERS) {
    MODEL_ERROR ("metadata 'mone.stem' has %d values, expected 1 to %d layer widths", n,
        MONE_MAX_STEM_LAYERS);
    return FALSE;
  }
  for (int i = 0; i < n; i++) {
    g_strstrip (items[i]);
    size_t len = strlen (items[i]);
    gboolean ok = len > 0 && len <= 9 && !(len > 1 && items[i][0] == '0');
    for (size_t k = 0; ok && k < len; k++)
      ok = g_ascii_isdigit (items[i][k]);
    if (!ok) {
      g_autofree char *shown = g_strescape (items[i], NULL);
      MODEL_ERROR ("metadata 'mone.stem' value %d '%.40s' is not a decimal integer", i, shown);
      return FALSE;
    }
    c->stem_channels[i] = atoi (items[i]);
  }
  c->stem_layers = n;
  return TRUE;
}

/* mone.labels: a JSON array of exactly `classes` strings without NUL characters. */
static char **
parse_labels (const MoneSafetensors *st, int classes, GError **error)
{
  const char *s = require_metadata (st, "mone.labels", error);
  if (s == NULL)
    return NULL;
  MoneJsonLimits limits = { .max_depth = 2, .max_values = 2 * (size_t) classes + 16 };
  MoneJsonError json_error;
  MoneJson *array = mone_json_parse (s, strlen (s), &limits, &json_error);
  char **labels = NULL;
  if (array == NULL) {
    MODEL_ERROR ("metadata 'mone.labels' is not a JSON array of %d strings: %s at byte %zu",
        classes, json_error.message, json_error.offset);
    return NULL;
  }
  if (array->type != MONE_JSON_ARRAY) {
    MODEL_ERROR ("metadata 'mone.labels' is a JSON %s, expected an array of %d strings",
        mone_json_type_name (array->type), classes);
    goto out;
  }
  if (array->u.array.len != (size_t) classes) {
    MODEL_ERROR ("metadata 'mone.labels' has %zu labels, expected %d (mone.classes)",
        array->u.array.len, classes);
    goto out;
  }
  for (int k = 0; k < classes; k++) {
    const MoneJson *item = array->u.array.items[k];
    if (item->type != MONE_JSON_STRING || strlen (item->u.string.bytes) != item->u.string.len) {
      MODEL_ERROR ("metadata 'mone.labels' item %d is not a string without NUL characters", k);
      goto out;
    }
  }
  labels = g_new0 (char *, classes + 1);
  for (int k = 0; k < classes; k++)
    labels[k] = g_strdup (array->u.array.items[k]->u.string.bytes);
out:
  mone_json_free (array);
  return labels;
}

static gboolean
parse_config (const MoneSafetensors *st, MoneConfig *c, GError **error)
{
  memset (c, 0, sizeof *c);
  if (st->n_metadata == 0) {
    MODEL_ERROR ("no __metadata__: not a MoNE model file (expected format = 'mone')");
    return FALSE;
  }
  const char *format = require_metadata (st, "format", error);
  if (format == NULL)
    return FALSE;
  if (strcmp (format, "mone") != 0) {
    g_autofree char *shown = g_strescape (format, NULL);
    MODEL_ERROR ("metadata 'format' is '%.40s', expected 'mone'", shown);
    return FALSE;
  }
  const char *version = require_metadata (st, "format_version", error);
  if (version == NULL)
    return FALSE;
  if (strcmp (version, "1") != 0) {
    g_autofree char *shown = g_strescape (version, NULL);
    MODEL_ERROR ("unsupported format_version '%.40s' (this build reads version 1)", shown);
    return FALSE;
  }
  const struct {
    const char *key;
    int *field;
  } ints[] = {
    { "mone.height", &c->height },
    { "mone.width", &c->width },
    { "mone.channels", &c->channels },
    { "mone.frames", &c->frames },
    { "mone.patch", &c->patch },
    { "mone.tubelet", &c->tubelet },
    { "mone.dim", &c->dim },
    { "mone.depth", &c->depth },
    { "mone.heads", &c->heads },
    { "mone.mlp_dim", &c->mlp_dim },
    { "mone.experts", &c->experts },
    { "mone.classes", &c->classes },
  };
  for (size_t i = 0; i < G_N_ELEMENTS (ints); i++)
    if (!parse_metadata_int (st, ints[i].key, ints[i].field, error))
      return FALSE;
  const char *pool = mone_safetensors_get_metadata (st, "mone.pool");
  if (pool && strcmp (pool, "mean") && strcmp (pool, "cls")) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_MODEL,
        "metadata mone.pool is \"%s\": expected \"mean\" or \"cls\"", pool);
    return FALSE;
  }
  c->pool = pool && !strcmp (pool, "cls") ? MONE_POOL_CLS : MONE_POOL_MEAN;
  c->router_hidden = 0; /* a linear router unless the file names a hidden layer */
  if (mone_safetensors_get_metadata (st, "mone.router_hidden")
      && !parse_metadata_int (st, "mone.router_hidden", &c->router_hidden, error))
    return FALSE;
  if (!parse_metadata_stem (st, c, error))
    return FALSE;
  if (!parse_metadata_float (st, "mone.delta", 2.0f, &c->delta, error)
      || !parse_metadata_float (st, "mone.beta", 10.0f, &c->beta, error)
      || !parse_metadata_float (st, "mone.ln_eps", 1e-6f, &c->ln_eps, error))
    return FALSE;
  /* Validate the sizes (channels in particular) before reading per-channel lists; std = 1 stands in
   * until the real values are read and checked by the second finalize. */
  for (int ch = 0; ch < MONE_MAX_CHANNELS; ch++)
    c->std[ch] = 1.0f;
  if (!mone_config_finalize (c, error))
    return FALSE;
  if (!parse_metadata_list (st, "mone.mean", c->channels, c->mean, error)
      || !parse_metadata_list (st, "mone.std", c->channels, c->std, error))
    return FALSE;
  return mone_config_finalize (c, error);
}

static void
format_shape (GString *s, int ndim, const int64_t *shape)
{
  g_string_append_c (s, '[');
  for (int d = 0; d < ndim; d++)
    g_string_append_printf (s, d ? ", %" G_GINT64_FORMAT : "%" G_GINT64_FORMAT, shape[d]);
  g_string_append_c (s, ']');
}

static gboolean
tensor_is_usable_in_place (const MoneSafetensorsTensor *t)
{
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
  return t->dtype == MONE_DTYPE_F32 && ((uintptr_t) t->data % sizeof (float)) == 0;
#else
  return FALSE;
#endif
}

/* Matches the file's tensors against the spec table, converts what cannot be used in place, checks
 * every value is finite and binds the weight table. */
static gboolean
bind_tensors (MoneModel *m, const MoneSafetensors *st, GError **error)
{
  int n_specs = 0;
  MoneTensorSpec *specs = mone_tensor_specs (&m->config, &n_specs);
  const MoneSafetensorsTensor **found = g_new0 (const MoneSafetensorsTensor *, n_specs);
  const float **pointers = g_new0 (const float *, n_specs);
  GHashTable *index = g_hash_table_new (g_str_hash, g_str_equal);
  gboolean ok = FALSE;

  for (int i = 0; i < n_specs; i++)
    g_hash_table_insert (index, specs[i].name, GINT_TO_POINTER (i + 1));
  for (int i = 0; i < st->n_tensors; i++) {
    const MoneSafetensorsTensor *t = &st->tensors[i];
    int s = GPOINTER_TO_INT (g_hash_table_lookup (index, t->name)) - 1;
    if (s < 0) {
      g_autofree char *shown = g_strescape (t->name, NULL);
      MODEL_ERROR ("unknown tensor '%.80s'", shown);
      goto out;
    }
    const MoneTensorSpec *spec = &specs[s];
    gboolean same = t->ndim == spec->ndim;
    for (int d = 0; same && d < t->ndim; d++)
      same = t->shape[d] == spec->shape[d];
    if (!same) {
      GString *got = g_string_new (NULL), *want = g_string_new (NULL);
      format_shape (got, t->ndim, t->shape);
      format_shape (want, spec->ndim, spec->shape);
      MODEL_ERROR ("tensor '%s': shape %s, expected %s", t->name, got->str, want->str);
      g_string_free (got, TRUE);
      g_string_free (want, TRUE);
      goto out;
    }
    found[s] = t; /* names are unique: the reader rejects duplicates */
  }
  size_t converted_floats = 0;
  for (int s = 0; s < n_specs; s++) {
    if (found[s] == NULL) {
      GString *want = g_string_new (NULL);
      format_shape (want, specs[s].ndim, specs[s].shape);
      MODEL_ERROR ("missing tensor '%s' (expected shape %s)", specs[s].name, want->str);
      g_string_free (want, TRUE);
      goto out;
    }
    if (!tensor_is_usable_in_place (found[s]))
      converted_floats += (size_t) specs[s].numel;
  }

  /* The shapes matched, so every numel is bounded by the file size: this allocation is at most
   * twice the file. */
  if (converted_floats > 0)
    m->converted_storage = g_try_new (float, converted_floats);
  if (converted_floats > 0 && m->converted_storage == NULL) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "out of memory converting %zu weights to F32",
        converted_floats);
    goto out;
  }
  float *next = m->converted_storage;
  for (int s = 0; s < n_specs; s++) {
    const MoneSafetensorsTensor *t = found[s];
    size_t n = (size_t) specs[s].numel;
    if (tensor_is_usable_in_place (t)) {
      pointers[s] = (const float *) (const void *) t->data;
      continue;
    }
    switch (t->dtype) {
      case MONE_DTYPE_F32:
        mone_f32le_to_f32 (t->data, next, n);
        break;
      case MONE_DTYPE_F16:
        mone_f16_to_f32 (t->data, next, n);
        break;
      case MONE_DTYPE_BF16:
        mone_bf16_to_f32 (t->data, next, n);
        break;
    }
    pointers[s] = next;
    next += n;
  }
  /* One pass over the weights at load time, so inference never meets a NaN or infinity from the
   * file. */
  for (int s = 0; s < n_specs; s++) {
    const float *v = pointers[s];
    for (int64_t i = 0; i < specs[s].numel; i++)
      if (!isfinite (v[i])) {
        MODEL_ERROR ("tensor '%s': element %" G_GINT64_FORMAT " is %s, weights must be finite",
            specs[s].name, i, isnan (v[i]) ? "NaN" : "infinite");
        goto out;
      }
  }
  mone_weights_bind (&m->weights, &m->config, pointers);
  ok = TRUE;
out:
  g_hash_table_destroy (index);
  g_free (pointers);
  g_free (found);
  g_free (specs);
  return ok;
}

/* Builds the model over bytes that m already owns (mapping or copy). */
static gboolean
load_from_bytes (MoneModel *m, const uint8_t *bytes, size_t size, GError **error)
{
  MoneSafetensors st;
  if (!mone_safetensors_parse (&st, bytes, size, error))
    return FALSE;
  gboolean ok = parse_config (&st, &m->config, error)
      && (m->labels = parse_labels (&st, m->config.classes, error)) != NULL
      && bind_tensors (m, &st, error) && mone_model_pack_weights (m, error);
  mone_safetensors_clear (&st);
  return ok;
}

static MoneModel *
model_new_empty (void)
{
  MoneModel *m = g_new0 (MoneModel, 1);
  m->refcount = 1;
  return m;
}

MoneModel *
mone_model_load_file (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  GError *local = NULL;
  /* Checked before opening: a FIFO would block the open, a directory fails with a vague message. */
  GStatBuf st;
  if (g_stat (path, &st) != 0) {
    int saved_errno = errno;
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "%s: cannot open model: %s", path,
        g_strerror (saved_errno));
    return NULL;
  }
  if (!S_ISREG (st.st_mode)) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "%s: cannot open model: not a regular file",
        path);
    return NULL;
  }
  /* Read into memory rather than mapped: a mapped file that is truncated or rewritten in place
   * while a pipeline plays (cp over it) would crash the process (SIGBUS) or swap in unchecked bytes.
   * g_malloc memory is aligned for any type, so the F32 tensors of a well-made file stay in place. */
  MoneModel *m = model_new_empty ();
  gsize size = 0;
  if (!g_file_get_contents (path, (char **) &m->owned_bytes, &size, &local)) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "%s: cannot read model: %s", path,
        local->message);
    g_error_free (local);
    goto error;
  }
  if (!load_from_bytes (m, m->owned_bytes, size, &local)) {
    g_propagate_prefixed_error (error, local, "%s: ", path);
    goto error;
  }
  return m;
error:
  mone_model_unref (m);
  return NULL;
}

MoneModel *
mone_model_load_memory (const void *data, size_t size, GError **error)
{
  g_return_val_if_fail (data != NULL || size == 0, NULL);
  GError *local = NULL;
  MoneModel *m = model_new_empty ();
  if (size > 0) {
    /* g_malloc memory is aligned for any type, so F32 tensors of a well-made file stay in place. */
    m->owned_bytes = g_try_malloc (size);
    if (m->owned_bytes == NULL) {
      g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "<memory>: out of memory copying %zu bytes",
          size);
      goto error;
    }
    memcpy (m->owned_bytes, data, size);
  }
  if (!load_from_bytes (m, m->owned_bytes, size, &local)) {
    g_propagate_prefixed_error (error, local, "<memory>: ");
    goto error;
  }
  return m;
error:
  mone_model_unref (m);
  return NULL;
}
