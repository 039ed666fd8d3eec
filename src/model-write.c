/* MoneConfig + labels + parameters (mone_tensor_specs order) -> model file. */
#include "mone-private.h"

#include "json.h"
#include "safetensors.h"

#include <string.h>

/* Shortest decimal that reads back as the same float ("%.9g" always does), locale independent. */
static char *
format_float (float v)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  for (int digits = 6; digits <= 9; digits++) {
    char format[8];
    g_snprintf (format, sizeof format, "%%.%dg", digits);
    g_ascii_formatd (buf, sizeof buf, format, v);
    if ((float) g_ascii_strtod (buf, NULL) == v)
      break;
  }
  return g_strdup (buf);
}

static char *
format_float_list (const float *v, int n)
{
  GString *s = g_string_new (NULL);
  for (int i = 0; i < n; i++) {
    char *item = format_float (v[i]);
    if (i)
      g_string_append_c (s, ',');
    g_string_append (s, item);
    g_free (item);
  }
  return g_string_free (s, FALSE);
}

void
mone_model_metadata (const MoneConfig *c, const char *const *labels, char ***keys_out,
    char ***values_out)
{
  GPtrArray *keys = g_ptr_array_new (), *values = g_ptr_array_new ();
#define ADD(key, value)                                                                            \
  do {                                                                                             \
    g_ptr_array_add (keys, g_strdup (key));                                                        \
    g_ptr_array_add (values, (value));                                                             \
  } while (0)
  ADD ("format", g_strdup ("mone"));
  ADD ("format_version", g_strdup ("1"));
  ADD ("mone.height", g_strdup_printf ("%d", c->height));
  ADD ("mone.width", g_strdup_printf ("%d", c->width));
  ADD ("mone.channels", g_strdup_printf ("%d", c->channels));
  ADD ("mone.frames", g_strdup_printf ("%d", c->frames));
  ADD ("mone.patch", g_strdup_printf ("%d", c->patch));
  ADD ("mone.tubelet", g_strdup_printf ("%d", c->tubelet));
  ADD ("mone.dim", g_strdup_printf ("%d", c->dim));
  ADD ("mone.depth", g_strdup_printf ("%d", c->depth));
  ADD ("mone.heads", g_strdup_printf ("%d", c->heads));
  ADD ("mone.mlp_dim", g_strdup_printf ("%d", c->mlp_dim));
  ADD ("mone.experts", g_strdup_printf ("%d", c->experts));
  ADD ("mone.classes", g_strdup_printf ("%d", c->classes));
  ADD ("mone.delta", format_float (c->delta));
  ADD ("mone.beta", format_float (c->beta));
  ADD ("mone.ln_eps", format_float (c->ln_eps));
  ADD ("mone.mean", format_float_list (c->mean, c->channels));
  ADD ("mone.std", format_float_list (c->std, c->channels));
  /* Mean pooling is the default: its files do not name it (and stay as they were). */
  if (c->pool == MONE_POOL_CLS)
    ADD ("mone.pool", g_strdup ("cls"));
  if (c->router_hidden)
    ADD ("mone.router_hidden", g_strdup_printf ("%d", c->router_hidden));
  if (c->stem_layers) {
    GString *stem = g_string_new (NULL);
    for (int i = 0; i < c->stem_layers; i++)
      g_string_append_printf (stem, i ? ",%d" : "%d", c->stem_channels[i]);
    ADD ("mone.stem", g_string_free (stem, FALSE));
  }
  GString *json = g_string_new ("[");
  for (int k = 0; k < c->classes; k++) {
    char *fallback = labels && labels[k] ? NULL : g_strdup_printf ("class %d", k);
    const char *label = fallback ? fallback : labels[k];
    if (k)
      g_string_append_c (json, ',');
    mone_json_append_string (json, label, strlen (label));
    g_free (fallback);
  }
  g_string_append_c (json, ']');
  ADD ("mone.labels", g_string_free (json, FALSE));
#undef ADD
  g_ptr_array_add (keys, NULL);
  g_ptr_array_add (values, NULL);
  *keys_out = (char **) g_ptr_array_free (keys, FALSE);
  *values_out = (char **) g_ptr_array_free (values, FALSE);
}

gboolean
mone_model_write_dtype (const char *path, const MoneConfig *config, const char *const *labels,
    const float *const *tensors, MoneDtype dtype, GError **error)
{
  MoneConfig c = *config;
  GError *local = NULL;
  if (!mone_config_finalize (&c, &local)) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
        "%s: not writing an invalid model: %s", path, local->message);
    g_error_free (local);
    return FALSE;
  }
  for (int k = 0; labels && k < c.classes; k++)
    if (labels[k] && !g_utf8_validate (labels[k], -1, NULL)) {
      g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
          "%s: label %d is not valid UTF-8", path, k);
      return FALSE;
    }
  int n_specs = 0;
  MoneTensorSpec *specs = mone_tensor_specs (&c, &n_specs);
  MoneSafetensorsWriteTensor *out = g_new0 (MoneSafetensorsWriteTensor, n_specs);
  for (int i = 0; i < n_specs; i++) {
    out[i].name = specs[i].name;
    out[i].ndim = specs[i].ndim;
    out[i].shape = specs[i].shape;
    out[i].values = tensors[i];
  }
  char **keys, **values;
  mone_model_metadata (&c, labels, &keys, &values);
  gboolean ok = mone_safetensors_write (path, (const char *const *) keys,
      (const char *const *) values, (int) g_strv_length (keys), out, n_specs, dtype, error);
  g_strfreev (keys);
  g_strfreev (values);
  g_free (out);
  g_free (specs);
  return ok;
}

gboolean
mone_model_write (const char *path, const MoneConfig *config, const char *const *labels,
    const float *const *tensors, GError **error)
{
  return mone_model_write_dtype (path, config, labels, tensors, MONE_DTYPE_F32, error);
}
