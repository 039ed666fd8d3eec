/* safetensors reader and writer (docs/model-format.md).
 *
 * File layout: u64 little-endian header length n, n bytes of UTF-8 JSON, then the data region.
 * The JSON object maps tensor names to {"dtype", "shape", "data_offsets": [begin, end)} (offsets
 * relative to the data region) plus an optional "__metadata__" object of string -> string.
 *
 * The reader trusts nothing: the header length is checked against the bytes present and a 100 MB
 * cap, the JSON is parsed strictly, every shape product and offset is overflow-checked, each
 * tensor's byte length must equal numel * dtype size, and the tensors must tile the data region
 * exactly (sorted by offset, no gap, no overlap, nothing after the last one).
 */
#ifndef MONE_SAFETENSORS_H
#define MONE_SAFETENSORS_H

#include "mone-private.h"

G_BEGIN_DECLS

#define MONE_SAFETENSORS_MAX_HEADER (100u * 1000u * 1000u)
#define MONE_SAFETENSORS_MAX_DIMS 8

typedef enum {
  MONE_DTYPE_F32,
  MONE_DTYPE_F16,
  MONE_DTYPE_BF16,
} MoneDtype;

typedef struct {
  char *name; /* UTF-8, NUL-free */
  MoneDtype dtype;
  int ndim;
  int64_t shape[MONE_SAFETENSORS_MAX_DIMS];
  int64_t numel;
  uint64_t begin, end; /* byte range inside the data region */
  const uint8_t *data; /* = data region + begin; little-endian elements, possibly unaligned */
} MoneSafetensorsTensor;

typedef struct {
  const uint8_t *bytes; /* the whole file (borrowed) */
  size_t size;
  const uint8_t *data; /* start of the data region */
  size_t data_size;
  MoneSafetensorsTensor *tensors; /* in header order */
  int n_tensors;
  char **metadata_keys; /* n_metadata entries each, in header order */
  char **metadata_values;
  int n_metadata;
} MoneSafetensors;

/* Parses and validates a complete file held in bytes[0..size). On success fills *st (which borrows
 * bytes) and returns TRUE; free it with mone_safetensors_clear. Errors are MONE_ERROR_FORMAT. */
gboolean mone_safetensors_parse (MoneSafetensors *st, const void *bytes, size_t size,
    GError **error);
void mone_safetensors_clear (MoneSafetensors *st);

/* Value of a metadata key, or NULL. */
const char *mone_safetensors_get_metadata (const MoneSafetensors *st, const char *key);

size_t mone_dtype_size (MoneDtype dtype);
const char *mone_dtype_name (MoneDtype dtype);

/* Element conversions. Sources are little-endian byte arrays of any alignment. */
void mone_f16_to_f32 (const uint8_t *src, float *dst, size_t n);
void mone_bf16_to_f32 (const uint8_t *src, float *dst, size_t n);
void mone_f32le_to_f32 (const uint8_t *src, float *dst, size_t n);
float mone_f16_bits_to_f32 (uint16_t h);
float mone_bf16_bits_to_f32 (uint16_t h);
/* Round to nearest, ties to even; overflow gives infinity; NaN stays NaN. */
uint16_t mone_f32_to_f16_bits (float f);
uint16_t mone_f32_to_bf16_bits (float f);

/* One tensor to write: F32 values, stored as `dtype`. */
typedef struct {
  const char *name;
  int ndim;
  const int64_t *shape;
  const float *values; /* numel floats, numel = product of shape */
} MoneSafetensorsWriteTensor;

/* Writes a safetensors file with the tensors in the given order (offsets increasing) and the
 * metadata pairs. The header is padded with spaces so the data region starts 8-byte aligned.
 * Writes to a temporary file next to `path` and renames it, so a failed write leaves no partial
 * model. Errors are MONE_ERROR_IO. */
gboolean mone_safetensors_write (const char *path, const char *const *metadata_keys,
    const char *const *metadata_values, int n_metadata, const MoneSafetensorsWriteTensor *tensors,
    int n_tensors, MoneDtype dtype, GError **error);

/* Like mone_model_write, with the tensors stored as F32, F16 or BF16 (tests make F16/BF16 twins
 * of an F32 model with it). */
gboolean mone_model_write_dtype (const char *path, const MoneConfig *config,
    const char *const *labels, const float *const *tensors, MoneDtype dtype, GError **error);

/* The metadata pairs mone_model_write stores for a config and its labels (both arrays
 * NULL-terminated, free with g_strfreev). Exposed for tests that build files by hand. */
void mone_model_metadata (const MoneConfig *config, const char *const *labels, char ***keys,
    char ***values);

G_END_DECLS

#endif /* MONE_SAFETENSORS_H */
