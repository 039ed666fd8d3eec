/* Strict JSON parser: recursive descent over a byte span that always knows how many bytes remain.
 * Every failure records the byte offset and a cause, then unwinds through the callers, each of which
 * frees what it built. */
#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct {
  const unsigned char *text;
  size_t len;
  size_t pos;
  int depth;
  size_t n_values;
  MoneJsonLimits limits;
  MoneJsonError *error;
} Parser;

static gboolean G_GNUC_PRINTF (3, 4) fail (Parser *p, size_t offset, const char *format, ...)
{
  if (p->error) {
    va_list args;
    va_start (args, format);
    p->error->offset = offset;
    vsnprintf (p->error->message, sizeof p->error->message, format, args);
    va_end (args);
  }
  return FALSE;
}

/* Describes the byte at pos for messages: a printable character or its hex value. */
static const char *
describe_byte (const Parser *p, size_t pos, char *buf, size_t size)
{
  if (pos >= p->len)
    return "end of input";
  unsigned char c = p->text[pos];
  if (c >= 0x20 && c < 0x7f)
    snprintf (buf, size, "'%c'", c);
  else
    snprintf (buf, size, "byte 0x%02x", c);
  return buf;
}

static gboolean
unexpected (Parser *p, const char *expected)
{
  char buf[16];
  return fail (p, p->pos, "expected %s, found %s", expected,
      describe_byte (p, p->pos, buf, sizeof buf));
}

static void
skip_whitespace (Parser *p)
{
  while (p->pos < p->len) {
    unsigned char c = p->text[p->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
      break;
    p->pos++;
  }
}

static MoneJson *
new_value (Parser *p, MoneJsonType type, size_t offset)
{
  if (p->n_values >= p->limits.max_values) {
    fail (p, offset, "more than %zu values", p->limits.max_values);
    return NULL;
  }
  p->n_values++;
  MoneJson *v = g_new0 (MoneJson, 1);
  v->type = type;
  v->offset = offset;
  return v;
}

void
mone_json_free (MoneJson *v)
{
  if (v == NULL)
    return;
  switch (v->type) {
    case MONE_JSON_STRING:
      g_free (v->u.string.bytes);
      break;
    case MONE_JSON_ARRAY:
      for (size_t i = 0; i < v->u.array.len; i++)
        mone_json_free (v->u.array.items[i]);
      g_free (v->u.array.items);
      break;
    case MONE_JSON_OBJECT:
      for (size_t i = 0; i < v->u.object.len; i++) {
        g_free (v->u.object.members[i].key);
        mone_json_free (v->u.object.members[i].value);
      }
      g_free (v->u.object.members);
      break;
    default:
      break;
  }
  g_free (v);
}

/* Length of the valid UTF-8 sequence starting at s[0] (at most `avail` bytes), or 0 if invalid.
 * Rejects overlong encodings, UTF-16 surrogates and code points above U+10FFFF (RFC 3629). */
static size_t
utf8_sequence_length (const unsigned char *s, size_t avail)
{
  unsigned char c = s[0];
  if (c < 0x80)
    return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
  if (c >= 0xc2 && c <= 0xdf)
    n = 2;
  else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0)
      lo = 0xa0; /* overlong below U+0800 */
    else if (c == 0xed)
      hi = 0x9f; /* U+D800..U+DFFF are surrogates */
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0)
      lo = 0x90; /* overlong below U+10000 */
    else if (c == 0xf4)
      hi = 0x8f; /* above U+10FFFF */
  } else
    return 0;
  if (avail < n)
    return 0;
  if (s[1] < lo || s[1] > hi)
    return 0;
  for (size_t i = 2; i < n; i++)
    if (s[i] < 0x80 || s[i] > 0xbf)
      return 0;
  return n;
}

static void
append_utf8 (GString *out, uint32_t cp)
{
  char buf[4];
  size_t n;
  if (cp < 0x80) {
    buf[0] = (char) cp;
    n = 1;
  } else if (cp < 0x800) {
    buf[0] = (char) (0xc0 | (cp >> 6));
    buf[1] = (char) (0x80 | (cp & 0x3f));
    n = 2;
  } else if (cp < 0x10000) {
    buf[0] = (char) (0xe0 | (cp >> 12));
    buf[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
    buf[2] = (char) (0x80 | (cp & 0x3f));
    n = 3;
  } else {
    buf[0] = (char) (0xf0 | (cp >> 18));
    buf[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
    buf[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
    buf[3] = (char) (0x80 | (cp & 0x3f));
    n = 4;
  }
  g_string_append_len (out, buf, (gssize) n);
}

/* Reads the 4 hex digits of a \u escape at p->pos. */
static gboolean
parse_hex4 (Parser *p, uint32_t *out)
{
  if (p->len - p->pos < 4)
    return fail (p, p->pos, "truncated \\u escape");
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    int d = g_ascii_xdigit_value ((char) p->text[p->pos + i]);
    if (d < 0)
      return fail (p, p->pos + i, "invalid hex digit in \\u escape");
    v = v * 16 + (uint32_t) d;
  }
  p->pos += 4;
  *out = v;
  return TRUE;
}

/* One escape sequence at p->pos (the backslash), decoded and appended to out as UTF-8: a
 * \uD800-\uDBFF must be followed by an escaped low surrogate, and the pair becomes one code point. */
static gboolean
parse_escape (Parser *p, GString *out)
{
  size_t escape_at = p->pos;
  p->pos++;
  if (p->pos >= p->len) {
    fail (p, escape_at, "unterminated escape sequence");
    return FALSE;
  }
  unsigned char e = p->text[p->pos++];
  switch (e) {
    case '"':
    case '\\':
    case '/':
      g_string_append_c (out, (char) e);
      return TRUE;
    case 'b':
      g_string_append_c (out, '\b');
      return TRUE;
    case 'f':
      g_string_append_c (out, '\f');
      return TRUE;
    case 'n':
      g_string_append_c (out, '\n');
      return TRUE;
    case 'r':
      g_string_append_c (out, '\r');
      return TRUE;
    case 't':
      g_string_append_c (out, '\t');
      return TRUE;
    case 'u':
      break;
    default: {
      char buf[16];
      fail (p, escape_at, "invalid escape sequence \\%s",
          describe_byte (p, p->pos - 1, buf, sizeof buf));
      return FALSE;
    }
  }
  uint32_t cp = 0;
  if (!parse_hex4 (p, &cp))
    return FALSE;
  if (cp >= 0xdc00 && cp <= 0xdfff) {
    fail (p, escape_at, "unpaired low surrogate \\u%04X", (unsigned) cp);
    return FALSE;
  }
  if (cp >= 0xd800 && cp <= 0xdbff) {
    if (p->len - p->pos < 2 || p->text[p->pos] != '\\' || p->text[p->pos + 1] != 'u') {
      fail (p, escape_at, "unpaired high surrogate \\u%04X", (unsigned) cp);
      return FALSE;
    }
    p->pos += 2;
    uint32_t low = 0;
    if (!parse_hex4 (p, &low))
      return FALSE;
    if (low < 0xdc00 || low > 0xdfff) {
      fail (p, escape_at, "high surrogate \\u%04X followed by \\u%04X, not a low surrogate",
          (unsigned) cp, (unsigned) low);
      return FALSE;
    }
    cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
  }
  append_utf8 (out, cp);
  return TRUE;
}

/* Parses a string literal at p->pos (which holds '"'); returns the decoded bytes. */
static gboolean
parse_string_literal (Parser *p, char **bytes, size_t *len)
{
  size_t start = p->pos;
  GString *out = g_string_new (NULL);
  p->pos++; /* opening quote */
  for (;;) {
    if (p->pos >= p->len) {
      fail (p, start, "unterminated string");
      goto error;
    }
    unsigned char c = p->text[p->pos];
    if (c == '"') {
      p->pos++;
      break;
    }
    if (c < 0x20) {
      fail (p, p->pos, "unescaped control character 0x%02x in string", c);
      goto error;
    }
    if (c == '\\') {
      if (!parse_escape (p, out))
        goto error;
      continue;
    }
    if (c < 0x80) {
      /* A run of plain ASCII is copied in one go. */
      size_t run = p->pos + 1;
      while (run < p->len && p->text[run] >= 0x20 && p->text[run] < 0x80 && p->text[run] != '"'
          && p->text[run] != '\\')
        run++;
      g_string_append_len (out, (const char *) p->text + p->pos, (gssize) (run - p->pos));
      p->pos = run;
      continue;
    }
    size_t n = utf8_sequence_length (p->text + p->pos, p->len - p->pos);
    if (n == 0) {
      fail (p, p->pos, "invalid UTF-8 in string");
      goto error;
    }
    g_string_append_len (out, (const char *) p->text + p->pos, (gssize) n);
    p->pos += n;
  }
  *len = out->len;
  *bytes = g_string_free (out, FALSE);
  return TRUE;
error:
  g_string_free (out, TRUE);
  return FALSE;
}

static gboolean
is_digit (Parser *p, size_t pos)
{
  return pos < p->len && p->text[pos] >= '0' && p->text[pos] <= '9';
}

static MoneJson *
parse_number (Parser *p)
{
  size_t start = p->pos;
  gboolean negative = FALSE;
  if (p->text[p->pos] == '-') {
    negative = TRUE;
    p->pos++;
  }
  if (!is_digit (p, p->pos)) {
    unexpected (p, "digit");
    return NULL;
  }
  /* Integer part: accumulate the magnitude exactly; 2^63 is the largest magnitude int64 holds
   * (for a negative number). */
  const uint64_t limit = (uint64_t) INT64_MAX + 1;
  uint64_t magnitude = 0;
  gboolean overflow = FALSE;
  if (p->text[p->pos] == '0') {
    p->pos++;
    if (is_digit (p, p->pos)) {
      fail (p, start, "number with a leading zero");
      return NULL;
    }
  } else {
    while (is_digit (p, p->pos)) {
      unsigned d = p->text[p->pos++] - '0';
      if (magnitude > (limit - d) / 10)
        overflow = TRUE;
      else
        magnitude = magnitude * 10 + d;
    }
  }
  gboolean is_integer = TRUE;
  if (p->pos < p->len && p->text[p->pos] == '.') {
    is_integer = FALSE;
    p->pos++;
    if (!is_digit (p, p->pos)) {
      unexpected (p, "digit after decimal point");
      return NULL;
    }
    while (is_digit (p, p->pos))
      p->pos++;
  }
  if (p->pos < p->len && (p->text[p->pos] == 'e' || p->text[p->pos] == 'E')) {
    is_integer = FALSE;
    p->pos++;
    if (p->pos < p->len && (p->text[p->pos] == '+' || p->text[p->pos] == '-'))
      p->pos++;
    if (!is_digit (p, p->pos)) {
      unexpected (p, "digit in exponent");
      return NULL;
    }
    while (is_digit (p, p->pos))
      p->pos++;
  }
  MoneJson *v = new_value (p, MONE_JSON_NUMBER, start);
  if (v == NULL)
    return NULL;
  if (!negative && magnitude == limit)
    overflow = TRUE;
  v->u.number.is_integer = is_integer;
  v->u.number.overflow = is_integer && overflow;
  if (is_integer && !overflow)
    v->u.number.integer = negative ? (int64_t) (0 - magnitude) : (int64_t) magnitude;
  /* strtod needs a NUL-terminated copy; the lexeme is known to be a valid JSON number. */
  char *lexeme = g_strndup ((const char *) p->text + start, p->pos - start);
  v->u.number.real = g_ascii_strtod (lexeme, NULL);
  g_free (lexeme);
  return v;
}

static MoneJson *parse_value (Parser *p);

static gboolean
enter (Parser *p, size_t offset)
{
  if (p->depth >= p->limits.max_depth)
    return fail (p, offset, "nesting deeper than %d levels", p->limits.max_depth);
  p->depth++;
  return TRUE;
}

static MoneJson *
parse_array (Parser *p)
{
  size_t start = p->pos;
  if (!enter (p, start))
    return NULL;
  MoneJson *v = new_value (p, MONE_JSON_ARRAY, start);
  if (v == NULL)
    return NULL;
  size_t capacity = 0;
  p->pos++; /* '[' */
  skip_whitespace (p);
  if (p->pos < p->len && p->text[p->pos] == ']') {
    p->pos++;
    p->depth--;
    return v;
  }
  for (;;) {
    skip_whitespace (p);
    MoneJson *item = parse_value (p);
    if (item == NULL)
      goto error;
    if (v->u.array.len == capacity) {
      capacity = capacity ? 2 * capacity : 4;
      v->u.array.items = g_renew (MoneJson *, v->u.array.items, capacity);
    }
    v->u.array.items[v->u.array.len++] = item;
    skip_whitespace (p);
    if (p->pos < p->len && p->text[p->pos] == ',') {
      p->pos++;
      continue;
    }
    if (p->pos < p->len && p->text[p->pos] == ']') {
      p->pos++;
      break;
    }
    unexpected (p, "',' or ']' in array");
    goto error;
  }
  p->depth--;
  return v;
error:
  mone_json_free (v);
  return NULL;
}

static MoneJson *
parse_object (Parser *p)
{
  size_t start = p->pos;
  if (!enter (p, start))
    return NULL;
  MoneJson *v = new_value (p, MONE_JSON_OBJECT, start);
  if (v == NULL)
    return NULL;
  size_t capacity = 0;
  p->pos++; /* '{' */
  skip_whitespace (p);
  if (p->pos < p->len && p->text[p->pos] == '}') {
    p->pos++;
    p->depth--;
    return v;
  }
  for (;;) {
    skip_whitespace (p);
    if (p->pos >= p->len || p->text[p->pos] != '"') {
      unexpected (p, "string key in object");
      goto error;
    }
    MoneJsonMember m = { .key_offset = p->pos };
    if (!parse_string_literal (p, &m.key, &m.key_len))
      goto error;
    skip_whitespace (p);
    if (p->pos >= p->len || p->text[p->pos] != ':') {
      g_free (m.key);
      unexpected (p, "':' after object key");
      goto error;
    }
    p->pos++;
    skip_whitespace (p);
    m.value = parse_value (p);
    if (m.value == NULL) {
      g_free (m.key);
      goto error;
    }
    if (v->u.object.len == capacity) {
      capacity = capacity ? 2 * capacity : 4;
      v->u.object.members = g_renew (MoneJsonMember, v->u.object.members, capacity);
    }
    v->u.object.members[v->u.object.len++] = m;
    skip_whitespace (p);
    if (p->pos < p->len && p->text[p->pos] == ',') {
      p->pos++;
      continue;
    }
    if (p->pos < p->len && p->text[p->pos] == '}') {
      p->pos++;
      break;
    }
    unexpected (p, "',' or '}' in object");
    goto error;
  }
  p->depth--;
  return v;
error:
  mone_json_free (v);
  return NULL;
}

static MoneJson *
parse_literal (Parser *p, const char *word, MoneJsonType type)
{
  size_t n = strlen (word);
  if (p->len - p->pos < n || memcmp (p->text + p->pos, word, n) != 0) {
    unexpected (p, "a JSON value");
    return NULL;
  }
  MoneJson *v = new_value (p, type, p->pos);
  if (v)
    p->pos += n;
  return v;
}

static MoneJson *
parse_value (Parser *p)
{
  if (p->pos >= p->len) {
    unexpected (p, "a JSON value");
    return NULL;
  }
  switch (p->text[p->pos]) {
    case '{':
      return parse_object (p);
    case '[':
      return parse_array (p);
    case '"': {
      size_t start = p->pos;
      char *bytes;
      size_t len;
      if (!parse_string_literal (p, &bytes, &len))
        return NULL;
      MoneJson *v = new_value (p, MONE_JSON_STRING, start);
      if (v == NULL) {
        g_free (bytes);
        return NULL;
      }
      v->u.string.bytes = bytes;
      v->u.string.len = len;
      return v;
    }
    case 't':
      return parse_literal (p, "true", MONE_JSON_TRUE);
    case 'f':
      return parse_literal (p, "false", MONE_JSON_FALSE);
    case 'n':
      return parse_literal (p, "null", MONE_JSON_NULL);
    default:
      if (p->text[p->pos] == '-' || (p->text[p->pos] >= '0' && p->text[p->pos] <= '9'))
        return parse_number (p);
      unexpected (p, "a JSON value");
      return NULL;
  }
}

MoneJson *
mone_json_parse (const char *text, size_t len, const MoneJsonLimits *limits, MoneJsonError *error)
{
  Parser p = {
    .text = (const unsigned char *) text,
    .len = text ? len : 0,
    .limits = { .max_depth = 64, .max_values = 1000000 },
    .error = error,
  };
  if (limits)
    p.limits = *limits;
  skip_whitespace (&p);
  MoneJson *v = parse_value (&p);
  if (v == NULL)
    return NULL;
  skip_whitespace (&p);
  if (p.pos != p.len) {
    char buf[16];
    fail (&p, p.pos, "trailing %s after the JSON value",
        describe_byte (&p, p.pos, buf, sizeof buf));
    mone_json_free (v);
    return NULL;
  }
  return v;
}

const MoneJson *
mone_json_object_get (const MoneJson *object, const char *key)
{
  if (object == NULL || object->type != MONE_JSON_OBJECT)
    return NULL;
  size_t n = strlen (key);
  for (size_t i = 0; i < object->u.object.len; i++) {
    const MoneJsonMember *m = &object->u.object.members[i];
    if (m->key_len == n && memcmp (m->key, key, n) == 0)
      return m->value;
  }
  return NULL;
}

const char *
mone_json_type_name (MoneJsonType type)
{
  switch (type) {
    case MONE_JSON_NULL:
      return "null";
    case MONE_JSON_FALSE:
    case MONE_JSON_TRUE:
      return "boolean";
    case MONE_JSON_NUMBER:
      return "number";
    case MONE_JSON_STRING:
      return "string";
    case MONE_JSON_ARRAY:
      return "array";
    case MONE_JSON_OBJECT:
      return "object";
  }
  return "?";
}

void
mone_json_append_string (GString *out, const char *text, size_t len)
{
  g_string_append_c (out, '"');
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char) text[i];
    switch (c) {
      case '"':
        g_string_append (out, "\\\"");
        break;
      case '\\':
        g_string_append (out, "\\\\");
        break;
      case '\n':
        g_string_append (out, "\\n");
        break;
      case '\r':
        g_string_append (out, "\\r");
        break;
      case '\t':
        g_string_append (out, "\\t");
        break;
      default:
        if (c < 0x20)
          g_string_append_printf (out, "\\u%04x", c);
        else
          g_string_append_c (out, (char) c);
    }
  }
  g_string_append_c (out, '"');
}
