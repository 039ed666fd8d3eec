/* See tool-input.h. */
#include "tool-input.h"

#include "mone/mone-authoring.h"
#include "mone/mone.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

MoneModel *
mone_tool_model_from_args (const char *command, const char *config_name, int argc, char **argv, int *status)
{
  GError *error = NULL;
  MoneModel *model = NULL;

  *status = 1;
  if (config_name) {
    MoneConfig config;
    guint64 seed;
    if (mone_config_from_args (config_name, argc - 1, (const char *const *) argv + 1, &config, &seed, &error))
      model = mone_model_new_random (&config, seed, &error);
  } else if (argc != 2) {
    fprintf (stderr, "mone %s: expected one MODEL file (or --config NAME)\n", command);
    *status = 2;
    return NULL;
  } else {
    model = mone_model_load_file (argv[1], &error);
  }
  if (!model) {
    fprintf (stderr, "mone %s: %s\n", command, error->message);
    g_error_free (error);
  }
  return model;
}

gboolean
mone_tool_read_exact (const char *path, gsize size, const char *what, char **contents, GError **error)
{
  *contents = NULL;
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "cannot open '%s': %s", path, g_strerror (errno));
    return FALSE;
  }
  struct stat st;
  char *buffer = NULL;
  gsize got = 0;
  if (fstat (fd, &st) != 0) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "cannot stat '%s': %s", path, g_strerror (errno));
    goto fail;
  }
  if (S_ISDIR (st.st_mode)) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "'%s' is a directory, not %s", path, what);
    goto fail;
  }
  if (S_ISREG (st.st_mode) && (guint64) st.st_size != size) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT,
        "'%s' has %" G_GUINT64_FORMAT " bytes, expected %" G_GSIZE_FORMAT " (%s)", path, (guint64) st.st_size, size,
        what);
    goto fail;
  }
  /* One byte more than expected tells a long stream from an exact one. */
  buffer = g_malloc (size + 1);
  while (got < size + 1) {
    ssize_t n = read (fd, buffer + got, size + 1 - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "cannot read '%s': %s", path, g_strerror (errno));
      goto fail;
    }
    if (n == 0)
      break;
    got += (gsize) n;
  }
  if (got != size) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT,
        "'%s' holds %s%" G_GSIZE_FORMAT " bytes, expected %" G_GSIZE_FORMAT " (%s)", path,
        got > size ? "more than " : "", got > size ? size : got, size, what);
    goto fail;
  }
  close (fd);
  *contents = buffer;
  return TRUE;

fail:
  g_free (buffer);
  close (fd);
  return FALSE;
}

gboolean
mone_tool_parse_decimal (const char *text, double *value)
{
  const char *p = text;
  if (!text)
    return FALSE;
  if (*p == '+' || *p == '-')
    p++;
  int digits = 0, dots = 0;
  for (; g_ascii_isdigit (*p) || *p == '.'; p++) {
    if (*p == '.')
      dots++;
    else
      digits++;
  }
  if (digits == 0 || dots > 1)
    return FALSE;
  if (*p == 'e' || *p == 'E') {
    p++;
    if (*p == '+' || *p == '-')
      p++;
    if (!g_ascii_isdigit (*p))
      return FALSE;
    while (g_ascii_isdigit (*p))
      p++;
  }
  if (*p != '\0')
    return FALSE;
  char *end = NULL;
  errno = 0;
  double v = g_ascii_strtod (text, &end);
  if (end != p || !isfinite (v))
    return FALSE;
  *value = v;
  return TRUE;
}

gboolean
mone_tool_check_decimal_options (int argc, char **argv, const char *const *names, const char *tool)
{
  for (int i = 1; i < argc; i++) {
    if (!g_str_has_prefix (argv[i], "--"))
      continue;
    for (int k = 0; names[k]; k++) {
      const size_t n = strlen (names[k]);
      const char *value;
      if (strncmp (argv[i] + 2, names[k], n) != 0)
        continue;
      if (argv[i][2 + n] == '=')
        value = argv[i] + 3 + n;
      else if (argv[i][2 + n] == '\0' && i + 1 < argc)
        value = argv[i + 1];
      else
        continue;
      double ignored;
      if (!mone_tool_parse_decimal (value, &ignored)) {
        fprintf (stderr, "%s: --%s '%s' is not a decimal number\n", tool, names[k], value);
        return FALSE;
      }
    }
  }
  return TRUE;
}

char *
mone_tool_escape_text (const char *text)
{
  GString *out = g_string_new (NULL);
  const char *p = text;
  while (*p) {
    const char *end = NULL;
    gunichar c = g_utf8_get_char_validated (p, -1);
    if (c == (gunichar) -1 || c == (gunichar) -2) {
      g_string_append_printf (out, "\\x%02X", (unsigned char) *p);
      p++;
      continue;
    }
    end = g_utf8_next_char (p);
    if (c == '\\')
      g_string_append (out, "\\\\");
    else if (c < 0x20 || c == 0x7F || (c >= 0x80 && c < 0xA0))
      for (const char *b = p; b < end; b++)
        g_string_append_printf (out, "\\x%02X", (unsigned char) *b);
    else
      g_string_append_len (out, p, end - p);
    p = end;
  }
  return g_string_free (out, FALSE);
}
