/* safetensors reader/writer and the half-precision conversions. Format rules: safetensors.h. */
#include "safetensors.h"

#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

/* ---- dtypes ---- */

/* Every dtype name the safetensors format defines; only the float ones we can compute with are
 * accepted, the others get a precise "unsupported" message rather than "unknown". */
static const char *const known_unsupported_dtypes[] = {
  "BOOL",
  "U8",
  "I8",
  "I16",
  "U16",
  "I32",
  "U32",
  "I64",
  "U64",
  "F64",
  "C64",
  "F8_E5M2",
  "F8_E4M3",
  "F8_E8M0",
  "F6_E2M3",
  "F6_E3M2",
  "F4",
};

size_t
mone_dtype_size (MoneDtype dtype)
{
  return dtype == MONE_DTYPE_F32 ? 4 : 2;
}

const char *
mone_dtype_name (MoneDtype dtype)
{
  switch (dtype) {
    case MONE_DTYPE_F32:
      return "F32";
    case MONE_DTYPE_F16:
      return "F16";
    case MONE_DTYPE_BF16:
      return "BF16";
  }
  return "?";
}

static uint32_t
f32_bits (float f)
{
  uint32_t u;
  memcpy (&u, &f, 4);
  return u;
}

static float
f32_from_bits (uint32_t u)
{
  float f;
  memcpy (&f, &u, 4);
  return f;
}

/* Inlined into the bulk loops below: calls to the exported functions would go through the PLT. */
static inline float
f16_to_f32 (uint16_t h)
{
  uint32_t sign = (uint32_t) (h & 0x8000) << 16;
  uint32_t magnitude = h & 0x7fff; /* exponent and mantissa */
  if (magnitude >= 0x7c00)         /* infinity or NaN (payload kept) */
    return f32_from_bits (sign | 0x7f800000u | ((magnitude & 0x3ff) << 13));
  if (magnitude >= 0x0400) /* normal: rebias the exponent by 127 - 15 */
    return f32_from_bits (sign | ((magnitude << 13) + ((127 - 15) << 23)));
  /* Zero or subnormal: mantissa * 2^-24, exact in float. */
  return f32_from_bits (sign | f32_bits ((float) magnitude * 0x1p-24f));
}

static inline float
bf16_to_f32 (uint16_t h)
{
  return f32_from_bits ((uint32_t) h << 16);
}

float
mone_f16_bits_to_f32 (uint16_t h)
{
  return f16_to_f32 (h);
}

float
mone_bf16_bits_to_f32 (uint16_t h)
{
  return bf16_to_f32 (h);
}

uint16_t
mone_f32_to_f16_bits (float f)
{
  uint32_t x = f32_bits (f);
  uint16_t sign = (uint16_t) ((x >> 16) & 0x8000);
  uint32_t magnitude = x & 0x7fffffffu;
  if (magnitude > 0x7f800000u) /* NaN: keep it a (quiet) NaN */
    return sign | 0x7e00 | (uint16_t) ((magnitude >> 13) & 0x3ff);
  if (magnitude >= 0x477ff000u) /* >= 65520 rounds to infinity (65504 is the largest half) */
    return sign | 0x7c00;
  if (magnitude < 0x38800000u) {
    /* Below 2^-14: a half subnormal m * 2^-24. Scaling by 2^24 is exact; rintf rounds to nearest
     * even. m == 1024 is the smallest normal, whose bit pattern is exactly 0x400. */
    float scaled = f32_from_bits (magnitude) * 16777216.0f;
    return sign | (uint16_t) rintf (scaled);
  }
  uint32_t h = ((magnitude >> 23) - 127 + 15) << 10 | ((magnitude >> 13) & 0x3ff);
  uint32_t rest = magnitude & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
    h++; /* a carry into the exponent is the correct rounding */
  return sign | (uint16_t) h;
}

uint16_t
mone_f32_to_bf16_bits (float f)
{
  uint32_t x = f32_bits (f);
  if ((x & 0x7fffffffu) > 0x7f800000u)
    return (uint16_t) ((x >> 16) | 0x40); /* quiet NaN, even if the payload was in the low bits */
  x += 0x7fff + ((x >> 16) & 1);
  return (uint16_t) (x >> 16);
}

static inline uint16_t
load_u16le (const uint8_t *p)
{
  return (uint16_t) (p[0] | (p[1] << 8));
}

void
mone_f16_to_f32 (const uint8_t *src, float *dst, size_t n)
{
  for (size_t i = 0; i < n; i++)
    dst[i] = f16_to_f32 (load_u16le (src + 2 * i));
}

void
mone_bf16_to_f32 (const uint8_t *src, float *dst, size_t n)
{
  for (size_t i = 0; i < n; i++)
    dst[i] = bf16_to_f32 (load_u16le (src + 2 * i));
}

void
mone_f32le_to_f32 (const uint8_t *src, float *dst, size_t n)
{
#if G_BYTE_ORDER == G_LITTLE_ENDIAN
  memcpy (dst, src, n * 4);
#else
  for (size_t i = 0; i < n; i++) {
    const uint8_t *p = src + 4 * i;
    dst[i] = f32_from_bits (
        (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24);
  }
#endif
}

/* ---- reader ---- */

#define FORMAT_ERROR(...) g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT, __VA_ARGS__)

void
mone_safetensors_clear (MoneSafetensors *st)
{
  for (int i = 0; i < st->n_tensors; i++)
    g_free (st->tensors[i].name);
  g_free (st->tensors);
  for (int i = 0; i < st->n_metadata; i++) {
    g_free (st->metadata_keys[i]);
    g_free (st->metadata_values[i]);
  }
  g_free (st->metadata_keys);
  g_free (st->metadata_values);
  memset (st, 0, sizeof *st);
}

const char *
mone_safetensors_get_metadata (const MoneSafetensors *st, const char *key)
{
  for (int i = 0; i < st->n_metadata; i++)
    if (strcmp (st->metadata_keys[i], key) == 0)
      return st->metadata_values[i];
  return NULL;
}

/* Bytes stay printable in messages even for hostile names: escapes control characters, caps length. */
static char *
printable_name (const char *bytes, size_t len)
{
  GString *s = g_string_new (NULL);
  for (size_t i = 0; i < len && s->len < 80; i++) {
    unsigned char c = (unsigned char) bytes[i];
    if (c < 0x20 || c == 0x7f)
      g_string_append_printf (s, "\\x%02x", c);
    else
      g_string_append_c (s, (char) c);
  }
  if (s->len >= 80)
    g_string_append (s, "...");
  return g_string_free (s, FALSE);
}

static gboolean
parse_metadata (MoneSafetensors *st, const MoneJson *object, GError **error)
{
  if (object->type != MONE_JSON_OBJECT) {
    FORMAT_ERROR ("__metadata__ is a %s, expected an object of strings",
        mone_json_type_name (object->type));
    return FALSE;
  }
  size_t n = object->u.object.len;
  gboolean ok = FALSE;
  /* A hash set keeps duplicate detection linear even for a 100 MB header of metadata keys. */
  GHashTable *seen = g_hash_table_new (g_str_hash, g_str_equal);
  st->metadata_keys = g_new0 (char *, n + 1);
  st->metadata_values = g_new0 (char *, n + 1);
  for (size_t i = 0; i < n; i++) {
    const MoneJsonMember *m = &object->u.object.members[i];
    g_autofree char *key = printable_name (m->key, m->key_len);
    if (strlen (m->key) != m->key_len) {
      FORMAT_ERROR ("metadata key '%s' contains a NUL character", key);
      goto out;
    }
    if (m->value->type != MONE_JSON_STRING) {
      FORMAT_ERROR ("metadata '%s' is a %s, expected a string", key,
          mone_json_type_name (m->value->type));
      goto out;
    }
    if (strlen (m->value->u.string.bytes) != m->value->u.string.len) {
      FORMAT_ERROR ("metadata '%s' contains a NUL character", key);
      goto out;
    }
    if (g_hash_table_contains (seen, m->key)) {
      FORMAT_ERROR ("duplicate metadata key '%s'", key);
      goto out;
    }
    st->metadata_keys[st->n_metadata] = g_strdup (m->key);
    st->metadata_values[st->n_metadata] = g_strdup (m->value->u.string.bytes);
    g_hash_table_add (seen, st->metadata_keys[st->n_metadata]);
    st->n_metadata++;
  }
  ok = TRUE;
out:
  g_hash_table_destroy (seen);
  return ok;
}

/* A JSON number that must be an exact non-negative integer (shape dimension, offset). */
static gboolean
get_count (const MoneJson *v, const char *tensor, const char *what, int64_t *out, GError **error)
{
  if (v->type != MONE_JSON_NUMBER || !v->u.number.is_integer) {
    FORMAT_ERROR ("tensor '%s': %s is not an integer", tensor, what);
    return FALSE;
  }
  if (v->u.number.overflow) {
    FORMAT_ERROR ("tensor '%s': %s does not fit in 64 bits", tensor, what);
    return FALSE;
  }
  if (v->u.number.integer < 0) {
    FORMAT_ERROR ("tensor '%s': %s %" G_GINT64_FORMAT " is negative", tensor, what,
        v->u.number.integer);
    return FALSE;
  }
  *out = v->u.number.integer;
  return TRUE;
}

/* The three fields of a tensor entry, each exactly once and nothing else. */
static gboolean
tensor_fields (const char *name, const MoneJson *info, const MoneJson **dtype,
    const MoneJson **shape, const MoneJson **offsets, GError **error)
{
  if (info->type != MONE_JSON_OBJECT) {
    FORMAT_ERROR ("tensor '%s': entry is a %s, expected an object", name,
        mone_json_type_name (info->type));
    return FALSE;
  }
  *dtype = *shape = *offsets = NULL;
  for (size_t i = 0; i < info->u.object.len; i++) {
    const MoneJsonMember *m = &info->u.object.members[i];
    const MoneJson **slot = !strcmp (m->key, "dtype") ? dtype
        : !strcmp (m->key, "shape")                   ? shape
        : !strcmp (m->key, "data_offsets")            ? offsets
                                                      : NULL;
    g_autofree char *field = printable_name (m->key, m->key_len);
    if (slot == NULL || strlen (m->key) != m->key_len) {
      FORMAT_ERROR ("tensor '%s': unknown field '%s'", name, field);
      return FALSE;
    }
    if (*slot != NULL) {
      FORMAT_ERROR ("tensor '%s': duplicate field '%s'", name, field);
      return FALSE;
    }
    *slot = m->value;
  }
  if (!*dtype || !*shape || !*offsets) {
    FORMAT_ERROR ("tensor '%s': missing field '%s'", name,
        !*dtype       ? "dtype"
            : !*shape ? "shape"
                      : "data_offsets");
    return FALSE;
  }
  return TRUE;
}

static gboolean
tensor_dtype (MoneSafetensorsTensor *t, const char *name, const MoneJson *dtype, GError **error)
{
  if (dtype->type != MONE_JSON_STRING) {
    FORMAT_ERROR ("tensor '%s': dtype is a %s, expected a string", name,
        mone_json_type_name (dtype->type));
    return FALSE;
  }
  const char *dt = dtype->u.string.bytes;
  if (!strcmp (dt, "F32"))
    t->dtype = MONE_DTYPE_F32;
  else if (!strcmp (dt, "F16"))
    t->dtype = MONE_DTYPE_F16;
  else if (!strcmp (dt, "BF16"))
    t->dtype = MONE_DTYPE_BF16;
  else {
    g_autofree char *shown = printable_name (dt, dtype->u.string.len);
    for (size_t i = 0; i < G_N_ELEMENTS (known_unsupported_dtypes); i++)
      if (!strcmp (dt, known_unsupported_dtypes[i])) {
        FORMAT_ERROR ("tensor '%s': unsupported dtype '%s' (F32, F16 and BF16 are supported)", name,
            shown);
        return FALSE;
      }
    FORMAT_ERROR ("tensor '%s': unknown dtype '%s'", name, shown);
    return FALSE;
  }
  return TRUE;
}

/* The shape and its element count, which must fit in 64 bits. */
static gboolean
tensor_shape (MoneSafetensorsTensor *t, const char *name, const MoneJson *shape, GError **error)
{
  if (shape->type != MONE_JSON_ARRAY) {
    FORMAT_ERROR ("tensor '%s': shape is a %s, expected an array", name,
        mone_json_type_name (shape->type));
    return FALSE;
  }
  if (shape->u.array.len > MONE_SAFETENSORS_MAX_DIMS) {
    FORMAT_ERROR ("tensor '%s': shape has %zu dimensions, at most %d are supported", name,
        shape->u.array.len, MONE_SAFETENSORS_MAX_DIMS);
    return FALSE;
  }
  t->ndim = (int) shape->u.array.len;
  t->numel = 1;
  for (int d = 0; d < t->ndim; d++) {
    char what[32];
    snprintf (what, sizeof what, "shape[%d]", d);
    if (!get_count (shape->u.array.items[d], name, what, &t->shape[d], error))
      return FALSE;
    if (t->shape[d] != 0 && t->numel > INT64_MAX / t->shape[d]) {
      FORMAT_ERROR ("tensor '%s': element count of the shape overflows 64 bits", name);
      return FALSE;
    }
    t->numel *= t->shape[d];
  }
  return TRUE;
}

/* The byte range: ordered, inside the data region, and exactly numel elements of the dtype. */
static gboolean
tensor_offsets (MoneSafetensorsTensor *t, const char *name, const MoneJson *offsets,
    size_t data_size, GError **error)
{
  if (offsets->type != MONE_JSON_ARRAY || offsets->u.array.len != 2) {
    FORMAT_ERROR ("tensor '%s': data_offsets must be an array of two integers", name);
    return FALSE;
  }
  int64_t begin, end;
  if (!get_count (offsets->u.array.items[0], name, "data_offsets begin", &begin, error)
      || !get_count (offsets->u.array.items[1], name, "data_offsets end", &end, error))
    return FALSE;
  if (end < begin) {
    FORMAT_ERROR ("tensor '%s': data_offsets [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                  ") end before begin",
        name, begin, end);
    return FALSE;
  }
  if ((uint64_t) end > data_size) {
    FORMAT_ERROR ("tensor '%s': data_offsets [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                  ") outside the data region of %zu bytes",
        name, begin, end, data_size);
    return FALSE;
  }
  /* numel * size cannot overflow uint64: numel < 2^63 and size <= 4 is checked by division. */
  uint64_t length = (uint64_t) (end - begin);
  size_t elem = mone_dtype_size (t->dtype);
  if ((uint64_t) t->numel > length / elem || (uint64_t) t->numel * elem != length) {
    FORMAT_ERROR ("tensor '%s': data length %" G_GUINT64_FORMAT " bytes, expected %" G_GINT64_FORMAT
                  " elements x %zu bytes",
        name, length, t->numel, elem);
    return FALSE;
  }
  t->begin = (uint64_t) begin;
  t->end = (uint64_t) end;
  return TRUE;
}

static gboolean
parse_tensor (MoneSafetensorsTensor *t, const char *name, const MoneJson *info, size_t data_size,
    GError **error)
{
  const MoneJson *dtype, *shape, *offsets;
  return tensor_fields (name, info, &dtype, &shape, &offsets, error)
      && tensor_dtype (t, name, dtype, error) && tensor_shape (t, name, shape, error)
      && tensor_offsets (t, name, offsets, data_size, error);
}

static int
compare_by_offset (const void *a, const void *b)
{
  const MoneSafetensorsTensor *x = *(const MoneSafetensorsTensor *const *) a;
  const MoneSafetensorsTensor *y = *(const MoneSafetensorsTensor *const *) b;
  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end)
    return x->end < y->end ? -1 : 1;
  return 0;
}

/* Sorted by offset, each tensor must start where the previous one ended, from 0 to data_size. */
static gboolean
check_tiling (const MoneSafetensors *st, GError **error)
{
  gboolean ok = FALSE;
  const MoneSafetensorsTensor **order = g_new (const MoneSafetensorsTensor *, st->n_tensors + 1);
  for (int i = 0; i < st->n_tensors; i++)
    order[i] = &st->tensors[i];
  qsort (order, st->n_tensors, sizeof *order, compare_by_offset);
  uint64_t covered = 0;
  const MoneSafetensorsTensor *previous = NULL;
  for (int i = 0; i < st->n_tensors; i++) {
    const MoneSafetensorsTensor *t = order[i];
    if (t->begin < covered) {
      FORMAT_ERROR ("tensor '%s': data_offsets [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT
                    ") overlap tensor '%s' [%" G_GUINT64_FORMAT ", %" G_GUINT64_FORMAT ")",
          t->name, t->begin, t->end, previous->name, previous->begin, previous->end);
      goto out;
    }
    if (t->begin > covered) {
      FORMAT_ERROR ("gap of %" G_GUINT64_FORMAT
                    " bytes in the data region before tensor '%s' (offset %" G_GUINT64_FORMAT ")",
          t->begin - covered, t->name, t->begin);
      goto out;
    }
    covered = t->end;
    previous = t;
  }
  if (covered != st->data_size) {
    FORMAT_ERROR ("%" G_GUINT64_FORMAT
                  " bytes of data after the last tensor (data region %zu bytes, "
                  "tensors cover %" G_GUINT64_FORMAT ")",
        (uint64_t) st->data_size - covered, st->data_size, covered);
    goto out;
  }
  ok = TRUE;
out:
  g_free (order);
  return ok;
}

gboolean
mone_safetensors_parse (MoneSafetensors *st, const void *bytes, size_t size, GError **error)
{
  MoneJson *root = NULL;
  GHashTable *names = NULL;
  memset (st, 0, sizeof *st);
  st->bytes = bytes;
  st->size = size;

  if (size < 8) {
    FORMAT_ERROR ("file is %zu bytes, too short for the 8-byte header length", size);
    goto error;
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; i--)
    header_len = header_len << 8 | st->bytes[i];
  if (header_len > MONE_SAFETENSORS_MAX_HEADER) {
    FORMAT_ERROR ("header length %" G_GUINT64_FORMAT " exceeds the limit of 100 MB", header_len);
    goto error;
  }
  if (header_len > size - 8) {
    FORMAT_ERROR ("header length %" G_GUINT64_FORMAT
                  " runs past the end of the file (%zu bytes after "
                  "the length field)",
        header_len, size - 8);
    goto error;
  }
  st->data = st->bytes + 8 + header_len;
  st->data_size = size - 8 - (size_t) header_len;

  /* Depth: root object, tensor object, shape array. A model of depth 1024 has ~100k header values;
   * the 1M cap bounds the parse tree of a hostile 100 MB header to ~100 MB. */
  MoneJsonLimits limits = { .max_depth = 8, .max_values = 1000000 };
  MoneJsonError json_error;
  root = mone_json_parse ((const char *) st->bytes + 8, (size_t) header_len, &limits, &json_error);
  if (root == NULL) {
    FORMAT_ERROR ("header is not valid JSON: %s at header byte %zu", json_error.message,
        json_error.offset);
    goto error;
  }
  if (root->type != MONE_JSON_OBJECT) {
    FORMAT_ERROR ("header is a JSON %s, expected an object", mone_json_type_name (root->type));
    goto error;
  }

  size_t n_members = root->u.object.len;
  st->tensors = g_new0 (MoneSafetensorsTensor, n_members + 1);
  names = g_hash_table_new (g_str_hash, g_str_equal);
  gboolean seen_metadata = FALSE;
  for (size_t i = 0; i < n_members; i++) {
    const MoneJsonMember *m = &root->u.object.members[i];
    g_autofree char *name = printable_name (m->key, m->key_len);
    if (strlen (m->key) != m->key_len) {
      FORMAT_ERROR ("tensor name '%s' contains a NUL character", name);
      goto error;
    }
    if (!strcmp (m->key, "__metadata__")) {
      if (seen_metadata) {
        FORMAT_ERROR ("duplicate __metadata__");
        goto error;
      }
      seen_metadata = TRUE;
      if (!parse_metadata (st, m->value, error))
        goto error;
      continue;
    }
    if (g_hash_table_contains (names, m->key)) {
      FORMAT_ERROR ("duplicate tensor '%s' in the header", name);
      goto error;
    }
    MoneSafetensorsTensor *t = &st->tensors[st->n_tensors];
    if (!parse_tensor (t, name, m->value, st->data_size, error))
      goto error;
    t->name = g_strdup (m->key);
    t->data = st->data + t->begin;
    st->n_tensors++;
    g_hash_table_add (names, t->name);
  }
  if (!check_tiling (st, error))
    goto error;

  g_hash_table_destroy (names);
  mone_json_free (root);
  return TRUE;

error:
  if (names)
    g_hash_table_destroy (names);
  mone_json_free (root);
  mone_safetensors_clear (st);
  return FALSE;
}

/* ---- writer ---- */

static uint64_t
write_tensor_numel (const MoneSafetensorsWriteTensor *t)
{
  uint64_t numel = 1;
  for (int d = 0; d < t->ndim; d++)
    numel *= (uint64_t) t->shape[d];
  return numel;
}

/* The JSON header: metadata first, then each tensor with its byte range in order. */
static GString *
write_header (const char *const *metadata_keys, const char *const *metadata_values, int n_metadata,
    const MoneSafetensorsWriteTensor *tensors, int n_tensors, MoneDtype dtype)
{
  GString *header = g_string_new ("{");
  const size_t elem = mone_dtype_size (dtype);

  if (n_metadata > 0) {
    g_string_append (header, "\"__metadata__\":{");
    for (int i = 0; i < n_metadata; i++) {
      if (i)
        g_string_append_c (header, ',');
      mone_json_append_string (header, metadata_keys[i], strlen (metadata_keys[i]));
      g_string_append_c (header, ':');
      mone_json_append_string (header, metadata_values[i], strlen (metadata_values[i]));
    }
    g_string_append_c (header, '}');
  }
  uint64_t offset = 0;
  for (int i = 0; i < n_tensors; i++) {
    const MoneSafetensorsWriteTensor *t = &tensors[i];
    const uint64_t bytes = write_tensor_numel (t) * elem;
    if (n_metadata > 0 || i)
      g_string_append_c (header, ',');
    mone_json_append_string (header, t->name, strlen (t->name));
    g_string_append_printf (header, ":{\"dtype\":\"%s\",\"shape\":[", mone_dtype_name (dtype));
    for (int d = 0; d < t->ndim; d++)
      g_string_append_printf (header, d ? ",%" G_GINT64_FORMAT : "%" G_GINT64_FORMAT, t->shape[d]);
    g_string_append_printf (header,
        "],\"data_offsets\":[%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT "]}", offset,
        offset + bytes);
    offset += bytes;
  }
  g_string_append_c (header, '}');
  /* Spaces are JSON whitespace: padding the header to a multiple of 8 puts the data region (and
   * so every F32 tensor) on an 8-byte boundary of the file. */
  while (header->len % 8 != 0)
    g_string_append_c (header, ' ');
  return header;
}

/* The length field, the header and every tensor's little-endian element bytes, converted a chunk
 * at a time. FALSE on the first short write (errno tells why). */
static gboolean
write_file_body (FILE *out, const GString *header, const MoneSafetensorsWriteTensor *tensors,
    int n_tensors, MoneDtype dtype)
{
  enum { CHUNK_ELEMENTS = 16384 };
  const size_t elem = mone_dtype_size (dtype);
  uint8_t length_field[8];
  uint64_t header_len = header->len;
  for (int i = 0; i < 8; i++)
    length_field[i] = (uint8_t) (header_len >> (8 * i));
  gboolean written = fwrite (length_field, 1, 8, out) == 8
      && fwrite (header->str, 1, header->len, out) == header->len;

  uint8_t *chunk = g_malloc (CHUNK_ELEMENTS * 4);
  for (int i = 0; written && i < n_tensors; i++) {
    const MoneSafetensorsWriteTensor *t = &tensors[i];
    const uint64_t numel = write_tensor_numel (t);
    for (uint64_t start = 0; written && start < numel; start += CHUNK_ELEMENTS) {
      size_t n = (size_t) MIN ((uint64_t) CHUNK_ELEMENTS, numel - start);
      for (size_t k = 0; k < n; k++) {
        float v = t->values[start + k];
        uint8_t *p = chunk + k * elem;
        if (dtype == MONE_DTYPE_F32) {
          uint32_t b = f32_bits (v);
          p[0] = (uint8_t) b, p[1] = (uint8_t) (b >> 8), p[2] = (uint8_t) (b >> 16),
          p[3] = (uint8_t) (b >> 24);
        } else {
          uint16_t b = dtype == MONE_DTYPE_F16 ? mone_f32_to_f16_bits (v)
                                               : mone_f32_to_bf16_bits (v);
          p[0] = (uint8_t) b, p[1] = (uint8_t) (b >> 8);
        }
      }
      written = fwrite (chunk, elem, n, out) == n;
    }
  }
  int write_errno = errno;
  g_free (chunk);
  errno = write_errno;
  return written;
}

gboolean
mone_safetensors_write (const char *path, const char *const *metadata_keys,
    const char *const *metadata_values, int n_metadata, const MoneSafetensorsWriteTensor *tensors,
    int n_tensors, MoneDtype dtype, GError **error)
{
  GString *header = write_header (metadata_keys, metadata_values, n_metadata, tensors, n_tensors,
      dtype);
  char *tmp_path = g_strconcat (path, ".XXXXXX", NULL);
  FILE *out = NULL;
  int fd = -1;
  gboolean ok = FALSE;

  /* Written beside the target and renamed into place: a reader never sees half a file. */
  fd = g_mkstemp_full (tmp_path, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) {
    int e = errno;
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "%s: cannot create: %s", path, g_strerror (e));
    goto out;
  }
  out = fdopen (fd, "wb");
  if (out == NULL) {
    int e = errno;
    close (fd);
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "%s: cannot write: %s", path, g_strerror (e));
    goto out_unlink;
  }
  gboolean written = write_file_body (out, header, tensors, n_tensors, dtype);
  int write_errno = errno;
  if (fclose (out) != 0 && written) {
    written = FALSE;
    write_errno = errno;
  }
  if (!written) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "%s: write failed: %s", path,
        g_strerror (write_errno));
    goto out_unlink;
  }
  if (g_rename (tmp_path, path) != 0) {
    int e = errno;
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO,
        "%s: cannot rename the temporary file into place: %s", path, g_strerror (e));
    goto out_unlink;
  }
  ok = TRUE;
  goto out;

out_unlink:
  g_unlink (tmp_path);
out:
  g_free (tmp_path);
  g_string_free (header, TRUE);
  return ok;
}
