/* Model file reader/writer tests: round trips, F16/BF16 twins, half-precision conversion, the JSON
 * parser, every committed hostile file (tests/loader/hostile/expectations.txt) and exhaustive
 * truncation / byte-flip robustness over a small valid file. */
#include "json.h"
#include "mone-private.h"
#include "safetensors.h"
#include "tiny-model.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

static char *tmp_dir;

/* The model's tensors in mone_tensor_specs order: the inverse of mone_weights_bind. */
static const float **
model_tensors (const MoneModel *m, int *n)
{
  const MoneConfig *c = mone_model_get_config (m);
  const MoneWeights *w = &m->weights;
  const float **t = g_new0 (const float *, 13 + 12 * c->depth + 2 * MONE_MAX_STEM_LAYERS);
  int i = 0;
  t[i++] = w->patch_embed_weight;
  t[i++] = w->patch_embed_bias;
  t[i++] = w->pos_embed;
  t[i++] = w->router_weight;
  t[i++] = w->router_bias;
  t[i++] = w->alpha;
  for (int l = 0; l < c->depth; l++) {
    const MoneBlockWeights *b = &w->blocks[l];
    const float *block[] = { b->norm1_weight, b->norm1_bias, b->qkv_weight, b->qkv_bias,
      b->proj_weight, b->proj_bias, b->norm2_weight, b->norm2_bias, b->fc1_weight, b->fc1_bias,
      b->fc2_weight, b->fc2_bias };
    for (int k = 0; k < 12; k++)
      t[i++] = block[k];
  }
  t[i++] = w->norm_weight;
  t[i++] = w->norm_bias;
  t[i++] = w->head_weight;
  t[i++] = w->head_bias;
  if (c->pool == MONE_POOL_CLS)
    t[i++] = w->cls_token;
  if (c->router_hidden) {
    t[i++] = w->router_hidden_weight;
    t[i++] = w->router_hidden_bias;
  }
  for (int l = 0; l < c->stem_layers; l++) {
    t[i++] = w->stem_weight[l];
    t[i++] = w->stem_bias[l];
  }
  *n = i;
  return t;
}

static const char *const tricky_labels[] = { "T-shirt/top", "say \"hi\"\\\n\ttab",
  "caf\xc3\xa9 \xf0\x9f\x91\x9f" };

static void
assert_config_equal (const MoneConfig *a, const MoneConfig *b)
{
  g_assert_cmpint (a->height, ==, b->height);
  g_assert_cmpint (a->width, ==, b->width);
  g_assert_cmpint (a->channels, ==, b->channels);
  g_assert_cmpint (a->frames, ==, b->frames);
  g_assert_cmpint (a->patch, ==, b->patch);
  g_assert_cmpint (a->tubelet, ==, b->tubelet);
  g_assert_cmpint (a->dim, ==, b->dim);
  g_assert_cmpint (a->depth, ==, b->depth);
  g_assert_cmpint (a->heads, ==, b->heads);
  g_assert_cmpint (a->mlp_dim, ==, b->mlp_dim);
  g_assert_cmpint (a->experts, ==, b->experts);
  g_assert_cmpint (a->classes, ==, b->classes);
  g_assert_cmpint (a->tokens, ==, b->tokens);
  g_assert_cmpint (a->pool, ==, b->pool);
  g_assert_cmpint (a->stem_layers, ==, b->stem_layers);
  for (int i = 0; i < a->stem_layers; i++)
    g_assert_cmpint (a->stem_channels[i], ==, b->stem_channels[i]);
  g_assert_true (a->delta == b->delta && a->beta == b->beta && a->ln_eps == b->ln_eps);
  for (int ch = 0; ch < a->channels; ch++)
    g_assert_true (a->mean[ch] == b->mean[ch] && a->std[ch] == b->std[ch]);
}

/* Loads path and compares every value with the source parameters: exactly for F32, against the
 * rounded value for F16/BF16. */
static void
check_loaded (MoneModel *m, const MoneConfig *config, float **params, MoneDtype dtype)
{
  MoneConfig c = *config;
  g_assert_true (mone_config_finalize (&c, NULL));
  assert_config_equal (mone_model_get_config (m), &c);
  for (int k = 0; k < c.classes; k++)
    g_assert_cmpstr (mone_model_get_label (m, k), ==, tricky_labels[k]);
  g_assert_null (mone_model_get_label (m, c.classes));
  int n_specs, n;
  MoneTensorSpec *specs = mone_tensor_specs (&c, &n_specs);
  const float **loaded = model_tensors (m, &n);
  g_assert_cmpint (n, ==, n_specs);
  for (int i = 0; i < n; i++)
    for (int64_t j = 0; j < specs[i].numel; j++) {
      float want = params[i][j];
      if (dtype == MONE_DTYPE_F16)
        want = mone_f16_bits_to_f32 (mone_f32_to_f16_bits (want));
      else if (dtype == MONE_DTYPE_BF16)
        want = mone_bf16_bits_to_f32 (mone_f32_to_bf16_bits (want));
      if (loaded[i][j] != want)
        g_error ("%s[%" G_GINT64_FORMAT "]: loaded %.9g, expected %.9g", specs[i].name, j,
            loaded[i][j], want);
      /* Rounding error bounds of the format itself (values are in [-1, 1)). */
      double bound = dtype == MONE_DTYPE_F32 ? 0 : dtype == MONE_DTYPE_F16 ? 1.0 / 2048 : 1.0 / 256;
      g_assert_cmpfloat (fabs (loaded[i][j] - params[i][j]), <=,
          bound * fabs (params[i][j]) + 1e-7);
    }
  g_free (loaded);
  g_free (specs);
}

/* Writes the parameters as tmp_dir/name (F32) and loads the file back; both must succeed. */
static MoneModel *
write_and_load (const MoneConfig *c, float **params, const char *name, char **path_out)
{
  char *path = g_build_filename (tmp_dir, name, NULL);
  GError *error = NULL;
  g_assert_true (mone_model_write (path, c, tricky_labels, (const float *const *) params, &error));
  g_assert_no_error (error);
  MoneModel *m = mone_model_load_file (path, &error);
  g_assert_no_error (error);
  *path_out = path;
  return m;
}

static void
test_round_trip (void)
{
  MoneConfig c = tiny_config ();
  c.depth = 2;
  c.mean[0] = 0.1f;
  c.std[0] = 0.7f;
  c.delta = 2.5f;
  c.beta = 7.25f;
  c.ln_eps = 1e-5f;
  int n;
  float **params = tiny_params_new (&c, 42, &n);
  g_autofree char *path = NULL;
  GError *error = NULL;
  MoneModel *m = write_and_load (&c, params, "round-trip.safetensors", &path);
  check_loaded (m, &c, params, MONE_DTYPE_F32);
  /* F32 from an aligned file is used in place: nothing converted. */
  g_assert_null (m->converted_storage);
  GStatBuf st;
  g_assert_cmpint (g_stat (path, &st), ==, 0);
  const char *contents = m->owned_bytes;
  g_assert_nonnull (contents);
  g_assert_true ((const char *) m->weights.head_bias > contents
      && (const char *) m->weights.head_bias < contents + st.st_size);
  /* 95 outside the blocks + 2 blocks x 172 + 23 for the final norm and head. */
  g_assert_cmpuint (mone_model_parameter_count (m), ==, 95 + 2 * 172 + 23);
  mone_model_unref (m);

  /* From memory: the caller's buffer is copied and may be freed right away. */
  gchar *bytes;
  gsize size;
  g_assert_true (g_file_get_contents (path, &bytes, &size, NULL));
  m = mone_model_load_memory (bytes, size, &error);
  memset (bytes, 0xff, size);
  g_free (bytes);
  g_assert_no_error (error);
  check_loaded (m, &c, params, MONE_DTYPE_F32);
  /* References: the model lives until the last unref. */
  mone_model_ref (m);
  mone_model_unref (m);
  g_assert_cmpint (mone_model_get_config (m)->dim, ==, 4);
  mone_model_unref (m);
  tiny_params_free (params);
}

static void
test_half_twins (void)
{
  MoneConfig c = tiny_config ();
  int n;
  float **params = tiny_params_new (&c, 7, &n);
  const MoneDtype dtypes[] = { MONE_DTYPE_F16, MONE_DTYPE_BF16 };
  for (size_t i = 0; i < G_N_ELEMENTS (dtypes); i++) {
    g_autofree char *path = g_strdup_printf ("%s/twin-%s.safetensors", tmp_dir,
        mone_dtype_name (dtypes[i]));
    GError *error = NULL;
    g_assert_true (mone_model_write_dtype (path, &c, tricky_labels, (const float *const *) params,
        dtypes[i], &error));
    MoneModel *m = mone_model_load_file (path, &error);
    g_assert_no_error (error);
    g_assert_nonnull (m->converted_storage);
    check_loaded (m, &c, params, dtypes[i]);
    mone_model_unref (m);
  }
  tiny_params_free (params);
}

/* Rebuilds a file with its header replaced (data region unchanged). */
static GBytes *
with_header (const guint8 *file, gsize size, const char *header)
{
  uint64_t old_len = 0;
  for (int i = 7; i >= 0; i--)
    old_len = old_len << 8 | file[i];
  GByteArray *out = g_byte_array_new ();
  uint64_t len = strlen (header);
  for (int i = 0; i < 8; i++) {
    guint8 b = (guint8) (len >> (8 * i));
    g_byte_array_append (out, &b, 1);
  }
  g_byte_array_append (out, (const guint8 *) header, (guint) len);
  g_byte_array_append (out, file + 8 + old_len, (guint) (size - 8 - old_len));
  return g_byte_array_free_to_bytes (out);
}

static char *
header_of (const guint8 *file)
{
  uint64_t len = 0;
  for (int i = 7; i >= 0; i--)
    len = len << 8 | file[i];
  return g_strndup ((const char *) file + 8, len);
}

/* A class-token model (mone.pool = cls): its metadata and its extra tensor (the class token, and
 * one more position) survive the round trip; a pool the format does not know is refused, naming
 * the key. */
static void
test_class_token (void)
{
  MoneConfig c = tiny_config ();
  c.pool = MONE_POOL_CLS;
  int n;
  float **params = tiny_params_new (&c, 5, &n);
  g_autofree char *path = NULL;
  GError *error = NULL;
  MoneModel *m = write_and_load (&c, params, "class-token.safetensors", &path);
  check_loaded (m, &c, params, MONE_DTYPE_F32);
  g_assert_nonnull (m->weights.cls_token);
  mone_model_unref (m);

  gchar *bytes;
  gsize size;
  g_assert_true (g_file_get_contents (path, &bytes, &size, NULL));
  char *header = header_of ((const guint8 *) bytes);
  char *at = strstr (header, "\"mone.pool\":\"cls\"");
  g_assert_nonnull (at);
  memcpy (at + strlen ("\"mone.pool\":\""), "max", 3);
  GBytes *file = with_header ((const guint8 *) bytes, size, header);
  m = mone_model_load_memory (g_bytes_get_data (file, NULL), g_bytes_get_size (file), &error);
  g_assert_null (m);
  g_assert_nonnull (strstr (error->message, "mone.pool"));
  g_clear_error (&error);
  g_bytes_unref (file);
  g_free (header);
  g_free (bytes);
  tiny_params_free (params);
}

/* A convolutional stem (mone.stem) survives writing and loading; the engine packs its weights. */
static void
test_stem (void)
{
  MoneConfig c = tiny_config ();
  c.height = c.width = 16;
  c.stem_layers = 2;
  c.stem_channels[0] = 3;
  c.stem_channels[1] = 5;
  int n;
  float **params = tiny_params_new (&c, 11, &n);
  g_autofree char *path = NULL;
  MoneModel *m = write_and_load (&c, params, "stem.safetensors", &path);
  check_loaded (m, &c, params, MONE_DTYPE_F32);
  g_assert_cmpint (m->weights.stem_packed[1].outputs, ==, 5);
  g_assert_cmpint (m->weights.stem_packed[1].inputs, ==, 3 * 9);
  MoneContext *ctx = mone_context_new (m, 1, NULL);
  float input[16 * 16] = { 0 };
  MoneResult r;
  g_assert_true (mone_context_run (ctx, input, 1.0, &r, NULL) && r.finite);
  mone_context_free (ctx);
  mone_model_unref (m);

  gchar *bytes;
  gsize size;
  g_assert_true (g_file_get_contents (path, &bytes, &size, NULL));
  char *header = header_of ((const guint8 *) bytes);
  g_assert_nonnull (strstr (header, "\"mone.stem\":\"3,5\""));
  g_free (header);
  g_free (bytes);
  tiny_params_free (params);
}

static void
test_unaligned_data_is_converted (void)
{
  MoneConfig c = tiny_config ();
  int n;
  float **params = tiny_params_new (&c, 9, &n);
  g_autofree char *path = g_build_filename (tmp_dir, "unaligned.safetensors", NULL);
  g_assert_true (mone_model_write (path, &c, tricky_labels, (const float *const *) params, NULL));
  gchar *bytes;
  gsize size;
  g_assert_true (g_file_get_contents (path, &bytes, &size, NULL));
  /* One more space moves the data region off the 4-byte grid. */
  char *header = header_of ((const guint8 *) bytes);
  char *shifted = g_strconcat (header, " ", NULL);
  GBytes *file = with_header ((const guint8 *) bytes, size, shifted);
  GError *error = NULL;
  g_assert_true (g_file_set_contents (path, g_bytes_get_data (file, NULL),
      (gssize) g_bytes_get_size (file), NULL));
  MoneModel *m = mone_model_load_file (path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (m->converted_storage);
  check_loaded (m, &c, params, MONE_DTYPE_F32);
  mone_model_unref (m);
  g_bytes_unref (file);
  g_free (shifted);
  g_free (header);
  g_free (bytes);
  tiny_params_free (params);
}

static void
test_half_conversion (void)
{
  /* Every half and bfloat16 bit pattern survives a round trip through float (NaNs stay NaN). */
  for (uint32_t h = 0; h < 65536; h++) {
    float f = mone_f16_bits_to_f32 ((uint16_t) h);
    if (isnan (f))
      g_assert_true (isnan (mone_f16_bits_to_f32 (mone_f32_to_f16_bits (f))));
    else
      g_assert_cmphex (mone_f32_to_f16_bits (f), ==, h);
    float b = mone_bf16_bits_to_f32 ((uint16_t) h);
    if (isnan (b))
      g_assert_true (isnan (mone_bf16_bits_to_f32 (mone_f32_to_bf16_bits (b))));
    else
      g_assert_cmphex (mone_f32_to_bf16_bits (b), ==, h);
  }
  /* Known values: subnormals, largest finite, infinities, signed zero. */
  g_assert_cmpfloat (mone_f16_bits_to_f32 (0x0001), ==, ldexpf (1.0f, -24));
  g_assert_cmpfloat (mone_f16_bits_to_f32 (0x03ff), ==, ldexpf (1023.0f, -24));
  g_assert_cmpfloat (mone_f16_bits_to_f32 (0x0400), ==, ldexpf (1.0f, -14));
  g_assert_cmpfloat (mone_f16_bits_to_f32 (0x7bff), ==, 65504.0f);
  g_assert_cmpfloat (mone_f16_bits_to_f32 (0xfc00), ==, -INFINITY);
  g_assert_true (signbit (mone_f16_bits_to_f32 (0x8000)) && mone_f16_bits_to_f32 (0x8000) == 0.0f);
  g_assert_cmpfloat (mone_bf16_bits_to_f32 (0x3f80), ==, 1.0f);
  g_assert_cmpfloat (mone_bf16_bits_to_f32 (0x0001), ==, ldexpf (1.0f, -133));
  /* Rounding to half: nearest, ties to even, overflow to infinity. */
  g_assert_cmphex (mone_f32_to_f16_bits (65519.0f), ==, 0x7bff);
  g_assert_cmphex (mone_f32_to_f16_bits (65520.0f), ==, 0x7c00);
  g_assert_cmphex (mone_f32_to_f16_bits (1e10f), ==, 0x7c00);
  g_assert_cmphex (mone_f32_to_f16_bits (ldexpf (1.0f, -25)), ==, 0x0000); /* tie to even (0) */
  g_assert_cmphex (mone_f32_to_f16_bits (ldexpf (1.5f, -25)), ==, 0x0001);
  g_assert_cmphex (mone_f32_to_f16_bits (ldexpf (3.0f, -25)), ==,
      0x0002); /* 1.5 ulp: tie to even */
  g_assert_cmphex (mone_f32_to_f16_bits (1.0f + ldexpf (1.0f, -11)), ==, 0x3c00); /* tie to even */
  g_assert_cmphex (mone_f32_to_f16_bits (1.0f + ldexpf (3.0f, -11)), ==, 0x3c02);
  g_assert_cmphex (mone_f32_to_f16_bits (ldexpf (2047.0f, -25)), ==,
      0x0400); /* rounds up to normal */
  g_assert_cmphex (mone_f32_to_f16_bits (-0.0f), ==, 0x8000);
  g_assert_cmphex (mone_f32_to_f16_bits (NAN) & 0x7c00, ==, 0x7c00);
  g_assert_cmphex (mone_f32_to_bf16_bits (1.0f + ldexpf (1.0f, -8)), ==, 0x3f80); /* tie to even */
  g_assert_cmphex (mone_f32_to_bf16_bits (1.0f + ldexpf (3.0f, -8)), ==, 0x3f82);
  g_assert_cmphex (mone_f32_to_bf16_bits (3.4e38f), ==, 0x7f80); /* overflow */
}

/* ---- JSON parser ---- */

static MoneJson *
parse (const char *text, MoneJsonError *error)
{
  return mone_json_parse (text, strlen (text), NULL, error);
}

static void
expect_json_error (const char *text, const char *message, size_t offset)
{
  MoneJsonError error = { 0 };
  MoneJson *v = mone_json_parse (text, strlen (text), NULL, &error);
  if (v != NULL)
    g_error ("'%s' parsed, expected error '%s'", text, message);
  if (strstr (error.message, message) == NULL || error.offset != offset)
    g_error ("'%s': error '%s' at %zu, expected '%s' at %zu", text, error.message, error.offset,
        message, offset);
}

static void
test_json (void)
{
  MoneJsonError error;
  MoneJson *v =
      parse (" {\"a\" : [1, -0, 9223372036854775807, -9223372036854775808, 9223372036854775808,"
             " 1.5e3, true, false, null, \"x\\u00e9\\ud83d\\ude00\\n\\/\"], \"a\": {}} ",
          &error);
  g_assert_nonnull (v);
  g_assert_cmpint (v->type, ==, MONE_JSON_OBJECT);
  g_assert_cmpuint (v->u.object.len, ==, 2); /* duplicate keys are kept, in order */
  g_assert_cmpstr (v->u.object.members[1].key, ==, "a");
  const MoneJson *a = mone_json_object_get (v, "a");
  g_assert_true (a == v->u.object.members[0].value);
  g_assert_cmpuint (a->u.array.len, ==, 10);
  g_assert_cmpint (a->u.array.items[0]->u.number.integer, ==, 1);
  g_assert_cmpint (a->u.array.items[1]->u.number.integer, ==, 0);
  g_assert_cmpint (a->u.array.items[2]->u.number.integer, ==, INT64_MAX);
  g_assert_false (a->u.array.items[2]->u.number.overflow);
  g_assert_cmpint (a->u.array.items[3]->u.number.integer, ==, INT64_MIN);
  g_assert_false (a->u.array.items[3]->u.number.overflow);
  g_assert_true (a->u.array.items[4]->u.number.overflow);
  g_assert_false (a->u.array.items[5]->u.number.is_integer);
  g_assert_cmpfloat (a->u.array.items[5]->u.number.real, ==, 1500.0);
  g_assert_cmpint (a->u.array.items[6]->type, ==, MONE_JSON_TRUE);
  g_assert_cmpint (a->u.array.items[8]->type, ==, MONE_JSON_NULL);
  g_assert_cmpstr (a->u.array.items[9]->u.string.bytes, ==, "x\xc3\xa9\xf0\x9f\x98\x80\n/");
  mone_json_free (v);

  v = parse ("\"a\\u0000b\"", &error);
  g_assert_cmpuint (v->u.string.len, ==, 3);
  mone_json_free (v);

  expect_json_error ("", "expected a JSON value, found end of input", 0);
  expect_json_error ("{\"a\":1} x", "trailing 'x'", 8);
  expect_json_error ("{\"a\" 1}", "expected ':'", 5);
  expect_json_error ("[1,]", "expected a JSON value", 3);
  expect_json_error ("{\"a\":1,}", "expected string key", 7);
  expect_json_error ("[01]", "leading zero", 1);
  expect_json_error ("[1.]", "digit after decimal point", 3);
  expect_json_error ("[1e]", "digit in exponent", 3);
  expect_json_error ("[-]", "expected digit", 2);
  expect_json_error ("[+1]", "expected a JSON value", 1);
  expect_json_error ("\"abc", "unterminated string", 0);
  expect_json_error ("\"a\tb\"", "control character 0x09", 2);
  expect_json_error ("\"\\x\"", "invalid escape", 1);
  expect_json_error ("\"\\u12g4\"", "invalid hex digit", 5);
  expect_json_error ("\"\\ud800\"", "unpaired high surrogate", 1);
  expect_json_error ("\"\\udc00\"", "unpaired low surrogate", 1);
  expect_json_error ("\"\\ud800\\u0041\"", "not a low surrogate", 1);
  expect_json_error ("\"\xc0\xaf\"", "invalid UTF-8", 1);         /* overlong '/' */
  expect_json_error ("\"\xed\xa0\x80\"", "invalid UTF-8", 1);     /* encoded surrogate */
  expect_json_error ("\"\xf4\x90\x80\x80\"", "invalid UTF-8", 1); /* above U+10FFFF */
  expect_json_error ("\"\xe2\x82\"", "invalid UTF-8", 1);         /* truncated sequence */
  expect_json_error ("[tru]", "expected a JSON value", 1);
  expect_json_error ("\xef\xbb\xbf{}", "expected a JSON value, found byte 0xef", 0); /* no BOM */

  /* Depth and value limits. */
  GString *deep = g_string_new (NULL);
  for (int i = 0; i < 65; i++)
    g_string_append_c (deep, '[');
  for (int i = 0; i < 65; i++)
    g_string_append_c (deep, ']');
  expect_json_error (deep->str, "nesting deeper than 64", 64);
  g_string_free (deep, TRUE);
  MoneJsonLimits limits = { .max_depth = 4, .max_values = 3 };
  g_assert_null (mone_json_parse ("[1,2,3]", 7, &limits, &error));
  g_assert_nonnull (strstr (error.message, "more than 3 values"));

  GString *out = g_string_new (NULL);
  mone_json_append_string (out, "a\"\\\n\x01", 5);
  g_assert_cmpstr (out->str, ==, "\"a\\\"\\\\\\n\\u0001\"");
  g_string_free (out, TRUE);
}

/* ---- hostile files ---- */

static void
test_hostile_files (void)
{
  const char *dir = g_getenv ("MONE_HOSTILE_DIR");
  if (dir == NULL) {
    g_test_skip ("MONE_HOSTILE_DIR not set");
    return;
  }
  g_autofree char *table_path = g_build_filename (dir, "expectations.txt", NULL);
  gchar *table;
  g_assert_true (g_file_get_contents (table_path, &table, NULL, NULL));
  char **lines = g_strsplit (table, "\n", -1);
  int checked = 0;
  for (char **line = lines; *line; line++) {
    if (**line == '\0' || **line == '#')
      continue;
    /* file TAB error-code TAB expected message substring */
    char **fields = g_strsplit (*line, "\t", 3);
    g_assert_cmpuint (g_strv_length (fields), ==, 3);
    g_autofree char *path = g_build_filename (dir, fields[0], NULL);
    int code = !strcmp (fields[1], "FORMAT") ? MONE_ERROR_FORMAT
        : !strcmp (fields[1], "MODEL")       ? MONE_ERROR_MODEL
                                             : MONE_ERROR_IO;
    GError *error = NULL;
    MoneModel *m = mone_model_load_file (path, &error);
    if (m != NULL)
      g_error ("%s: loaded, expected '%s'", fields[0], fields[2]);
    g_assert_nonnull (error);
    if (!g_error_matches (error, MONE_ERROR, code) || strstr (error->message, fields[2]) == NULL
        || !g_str_has_prefix (error->message, path))
      g_error ("%s: got error %d '%s', expected %s '%s' after the path", fields[0], error->code,
          error->message, fields[1], fields[2]);
    g_test_message ("%s: %s", fields[0], error->message);
    g_clear_error (&error);

    /* The same bytes from memory give the same cause. */
    gchar *bytes;
    gsize size;
    g_assert_true (g_file_get_contents (path, &bytes, &size, NULL));
    m = mone_model_load_memory (bytes, size, &error);
    g_assert_null (m);
    g_assert_true (
        g_str_has_prefix (error->message, "<memory>: ") && strstr (error->message, fields[2]));
    g_error_free (error);
    g_free (bytes);
    g_strfreev (fields);
    checked++;
  }
  g_assert_cmpint (checked, >=, 25);
  g_strfreev (lines);
  g_free (table);
}

static void
test_valid_fixtures (void)
{
  /* Files written by the independent Python generator load, and their F16/BF16 twins agree. */
  const char *dir = g_getenv ("MONE_HOSTILE_DIR");
  if (dir == NULL) {
    g_test_skip ("MONE_HOSTILE_DIR not set");
    return;
  }
  const char *names[] = { "valid-f32.safetensors", "valid-f16.safetensors",
    "valid-bf16.safetensors" };
  MoneModel *models[3];
  for (int i = 0; i < 3; i++) {
    g_autofree char *path = g_build_filename (dir, "..", names[i], NULL);
    GError *error = NULL;
    models[i] = mone_model_load_file (path, &error);
    g_assert_no_error (error);
  }
  int n;
  const float **f32 = model_tensors (models[0], &n);
  const float **f16 = model_tensors (models[1], &n);
  const float **bf16 = model_tensors (models[2], &n);
  int n_specs;
  MoneTensorSpec *specs = mone_tensor_specs (mone_model_get_config (models[0]), &n_specs);
  for (int i = 0; i < n; i++)
    for (int64_t j = 0; j < specs[i].numel; j++) {
      g_assert_cmpfloat (f16[i][j], ==, mone_f16_bits_to_f32 (mone_f32_to_f16_bits (f32[i][j])));
      g_assert_cmpfloat (bf16[i][j], ==, mone_bf16_bits_to_f32 (mone_f32_to_bf16_bits (f32[i][j])));
    }

  /* Mixed dtypes: F16 alpha first, so the F32 tensors behind it are unaligned and get copied. */
  g_autofree char *mixed_path = g_build_filename (dir, "..", "valid-mixed.safetensors", NULL);
  GError *error = NULL;
  MoneModel *mixed = mone_model_load_file (mixed_path, &error);
  g_assert_no_error (error);
  g_assert_nonnull (mixed->converted_storage);
  const float **mixed_tensors = model_tensors (mixed, &n);
  for (int i = 0; i < n; i++)
    for (int64_t j = 0; j < specs[i].numel; j++)
      g_assert_cmpfloat (mixed_tensors[i][j], ==,
          !strcmp (specs[i].name, "alpha") ? f16[i][j] : f32[i][j]);
  g_free (mixed_tensors);
  mone_model_unref (mixed);

  /* The same model with a one-layer stem (mone.stem = 4) written by the generator: every tensor
   * but the stem's is valid-f32's. */
  g_autofree char *stem_path = g_build_filename (dir, "..", "valid-stem.safetensors", NULL);
  MoneModel *stem = mone_model_load_file (stem_path, &error);
  g_assert_no_error (error);
  const MoneConfig *stem_config = mone_model_get_config (stem);
  g_assert_cmpint (stem_config->stem_layers, ==, 1);
  g_assert_cmpint (stem_config->stem_channels[0], ==, 4);
  int n_stem;
  const float **stem_tensors = model_tensors (stem, &n_stem);
  g_assert_cmpint (n_stem, ==, n + 2);
  for (int i = 0; i < n; i++)
    g_assert_true (memcmp (stem_tensors[i], f32[i], sizeof (float) * specs[i].numel) == 0);
  g_assert_true (stem->weights.stem_weight[0] != NULL && stem->weights.stem_bias[0] != NULL);
  g_free (stem_tensors);
  mone_model_unref (stem);

  g_free (specs);
  g_free (f32);
  g_free (f16);
  g_free (bf16);
  for (int i = 0; i < 3; i++)
    mone_model_unref (models[i]);
}

/* Metadata whose patch-embedding inputs per token (channels x tubelet x patch^2 after the stem)
 * would pass 2^32 and wrap the int they are multiplied in: refused, naming the count. */
static void
test_patch_inputs_bounded (void)
{
  MoneConfig c = tiny_config ();
  c.height = c.width = c.patch = 256;
  c.frames = c.tubelet = 256;
  c.stem_layers = 1;
  c.stem_channels[0] = 1024; /* 1024 x 256 x 128^2 = 2^32 */
  GError *error = NULL;
  g_assert_false (mone_config_finalize (&c, &error));
  g_assert_error (error, MONE_ERROR, MONE_ERROR_MODEL);
  g_assert_nonnull (strstr (error->message, "4294967296 patch-embedding inputs per token"));
  g_clear_error (&error);
}

static void
test_missing_file (void)
{
  GError *error = NULL;
  g_autofree char *path = g_build_filename (tmp_dir, "does-not-exist.safetensors", NULL);
  g_assert_null (mone_model_load_file (path, &error));
  g_assert_error (error, MONE_ERROR, MONE_ERROR_IO);
  g_assert_true (g_str_has_prefix (error->message, path));
  g_assert_nonnull (strstr (error->message, "No such file or directory"));
  g_clear_error (&error);
  g_assert_null (mone_model_load_file (tmp_dir, &error)); /* a directory */
  g_assert_error (error, MONE_ERROR, MONE_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "not a regular file"));
  g_clear_error (&error);
  /* A FIFO nobody writes to: opening it would block forever. */
  g_autofree char *fifo = g_build_filename (tmp_dir, "model.fifo", NULL);
  g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);
  g_assert_null (mone_model_load_file (fifo, &error));
  g_assert_error (error, MONE_ERROR, MONE_ERROR_IO);
  g_assert_nonnull (strstr (error->message, "not a regular file"));
  g_clear_error (&error);
  g_unlink (fifo);
}

static void
test_write_errors (void)
{
  MoneConfig c = tiny_config ();
  int n;
  float **params = tiny_params_new (&c, 3, &n);
  GError *error = NULL;
  g_autofree char *bad_dir = g_build_filename (tmp_dir, "no-such-dir", "m.safetensors", NULL);
  g_assert_false (mone_model_write (bad_dir, &c, NULL, (const float *const *) params, &error));
  g_assert_error (error, MONE_ERROR, MONE_ERROR_IO);
  g_assert_true (g_str_has_prefix (error->message, bad_dir));
  g_clear_error (&error);
  MoneConfig bad = c;
  bad.heads = 3;
  g_autofree char *path = g_build_filename (tmp_dir, "bad.safetensors", NULL);
  g_assert_false (mone_model_write (path, &bad, NULL, (const float *const *) params, &error));
  g_assert_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
  /* NULL labels get "class k". */
  g_assert_true (mone_model_write (path, &c, NULL, (const float *const *) params, &error));
  MoneModel *m = mone_model_load_file (path, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (mone_model_get_label (m, 2), ==, "class 2");
  mone_model_unref (m);
  tiny_params_free (params);
}

/* Every proper prefix of a valid file is rejected, and replacing any single header byte with a few
 * values never crashes (run under valgrind/ASan to make the "never reads out of bounds" part count). */
static void
test_truncations_and_flips (void)
{
  MoneConfig c = tiny_config ();
  int n;
  float **params = tiny_params_new (&c, 5, &n);
  g_autofree char *path = g_build_filename (tmp_dir, "flip.safetensors", NULL);
  g_assert_true (mone_model_write (path, &c, tricky_labels, (const float *const *) params, NULL));
  gchar *bytes;
  gsize size;
  g_assert_true (g_file_get_contents (path, &bytes, &size, NULL));
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; i--)
    header_len = header_len << 8 | (guint8) bytes[i];
  /* Every cut inside the length field and header; in the data region (one check) every 61st. */
  for (gsize len = 0; len < size; len += len < 8 + header_len || len + 8 > size ? 1 : 61) {
    GError *error = NULL;
    MoneModel *m = mone_model_load_memory (bytes, len, &error);
    if (m != NULL)
      g_error ("prefix of %zu of %zu bytes loaded", len, size);
    g_assert_nonnull (error);
    g_error_free (error);
  }
  int loaded = 0;
  const guint8 replacements[] = { 0x00, '"', '9', '[', 0xff };
  /* One replacement value per position, rotating, keeps the valgrind run short. */
  for (gsize pos = 0; pos < 8 + header_len; pos++)
    for (size_t k = 0; k < 1; k++) {
      guint8 replacement = replacements[(pos + 2 * k) % G_N_ELEMENTS (replacements)];
      gchar saved = bytes[pos];
      if ((guint8) saved == replacement)
        continue;
      bytes[pos] = (gchar) replacement;
      GError *error = NULL;
      MoneModel *m = mone_model_load_memory (bytes, size, &error);
      if (m) {
        loaded++;
        mone_model_unref (m);
      } else {
        g_assert_nonnull (error);
        g_error_free (error);
      }
      bytes[pos] = saved;
    }
  g_test_message ("%d single-byte header mutations still formed a valid model", loaded);
  g_free (bytes);
  tiny_params_free (params);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tmp_dir = g_dir_make_tmp ("mone-loader-XXXXXX", NULL);
  g_assert_nonnull (tmp_dir);
  g_test_add_func ("/loader/round-trip", test_round_trip);
  g_test_add_func ("/loader/half-twins", test_half_twins);
  g_test_add_func ("/loader/class-token", test_class_token);
  g_test_add_func ("/loader/stem", test_stem);
  g_test_add_func ("/loader/unaligned-data", test_unaligned_data_is_converted);
  g_test_add_func ("/loader/half-conversion", test_half_conversion);
  g_test_add_func ("/loader/json", test_json);
  g_test_add_func ("/loader/hostile-files", test_hostile_files);
  g_test_add_func ("/loader/valid-fixtures", test_valid_fixtures);
  g_test_add_func ("/loader/missing-file", test_missing_file);
  g_test_add_func ("/loader/patch-inputs-bounded", test_patch_inputs_bounded);
  g_test_add_func ("/loader/write-errors", test_write_errors);
  g_test_add_func ("/loader/truncations-and-flips", test_truncations_and_flips);
  int status = g_test_run ();
  /* Remove what the tests wrote. */
  GDir *d = g_dir_open (tmp_dir, 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name (d))) {
    char *p = g_build_filename (tmp_dir, name, NULL);
    g_unlink (p);
    g_free (p);
  }
  if (d)
    g_dir_close (d);
  g_rmdir (tmp_dir);
  g_free (tmp_dir);
  return status;
}
