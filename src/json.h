/* A small strict JSON (RFC 8259) parser for safetensors headers and the mone.labels metadata value.
 *
 * Strict means: UTF-8 is validated (no overlong forms, no surrogates, nothing above U+10FFFF),
 * \u escapes must pair surrogates correctly, control characters inside strings are rejected,
 * nothing but whitespace may follow the top-level value, and nesting is limited. Integers (no
 * fraction, no exponent) are kept exactly as int64 with an overflow flag, so offsets and shapes
 * never pass through a double. Duplicate object keys are kept in order, so callers can detect them.
 */
#ifndef MONE_JSON_H
#define MONE_JSON_H

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

G_BEGIN_DECLS

typedef enum {
  MONE_JSON_NULL,
  MONE_JSON_FALSE,
  MONE_JSON_TRUE,
  MONE_JSON_NUMBER,
  MONE_JSON_STRING,
  MONE_JSON_ARRAY,
  MONE_JSON_OBJECT,
} MoneJsonType;

typedef struct MoneJson MoneJson;

typedef struct {
  char *key;         /* decoded UTF-8, NUL-terminated (may also contain NUL from \u0000) */
  size_t key_len;    /* bytes, without the terminating NUL */
  size_t key_offset; /* byte offset of the key's opening quote in the parsed text */
  MoneJson *value;
} MoneJsonMember;

struct MoneJson {
  MoneJsonType type;
  size_t offset; /* byte offset of the value's first character in the parsed text */
  union {
    struct {
      char *bytes; /* decoded UTF-8, NUL-terminated */
      size_t len;  /* bytes, without the terminating NUL */
    } string;
    struct {
      gboolean is_integer; /* written without fraction or exponent */
      gboolean overflow;   /* is_integer, but outside int64 */
      int64_t integer;     /* exact value when is_integer && !overflow */
      double real;         /* nearest double, always set */
    } number;
    struct {
      MoneJson **items;
      size_t len;
    } array;
    struct {
      MoneJsonMember *members; /* in document order, duplicates included */
      size_t len;
    } object;
  } u;
};

typedef struct {
  int max_depth;     /* nesting of arrays/objects; the top-level value is depth 1 */
  size_t max_values; /* total values, to bound memory on hostile input */
} MoneJsonLimits;

typedef struct {
  size_t offset;     /* byte offset in the parsed text where the problem was found */
  char message[160]; /* the cause, without the offset */
} MoneJsonError;

/* Parses text[0..len). Returns NULL and fills *error on failure. limits may be NULL (depth 64,
 * 1M values). */
MoneJson *mone_json_parse (const char *text, size_t len, const MoneJsonLimits *limits,
    MoneJsonError *error);
void mone_json_free (MoneJson *value);

/* First member named key (exact bytes, key must not contain NUL), or NULL. */
const MoneJson *mone_json_object_get (const MoneJson *object, const char *key);

/* Name of a type for messages ("string", "array", ...). */
const char *mone_json_type_name (MoneJsonType type);

/* Appends text as a JSON string literal (with quotes) to out, escaping '"', '\\' and control
 * characters. text must be valid UTF-8; it is copied through unchanged otherwise. */
void mone_json_append_string (GString *out, const char *text, size_t len);

G_END_DECLS

#endif /* MONE_JSON_H */
