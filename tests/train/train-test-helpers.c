#include "train-test-helpers.h"

#include <glib.h>
#include <stdarg.h>
#include <string.h>

void
tiny_train_options (MoneTrainOptions *o, int classes)
{
  mone_train_options_init (o);
  MoneConfig *c = &o->config;
  c->height = c->width = 16, c->channels = 1, c->frames = c->tubelet = 1, c->patch = 4, c->dim = 16, c->depth = 1;
  c->heads = 2, c->mlp_dim = 32, c->experts = 4, c->classes = classes, c->delta = 2, c->beta = 10, c->ln_eps = 1e-6f;
  c->mean[0] = 0.5f, c->std[0] = 0.5f;
  g_assert (mone_config_finalize (c, NULL));
}

MoneConfig
small_grey_config (int heads)
{
  MoneConfig c = { 0 };
  c.height = c.width = 16;
  c.channels = 1;
  c.frames = c.tubelet = 1;
  c.patch = 4;
  c.dim = 32;
  c.depth = 2;
  c.heads = heads;
  c.mlp_dim = 64;
  c.experts = 4;
  c.classes = 10;
  c.delta = 2;
  c.beta = 10;
  c.ln_eps = 1e-6f;
  c.mean[0] = 0.5f;
  c.std[0] = 0.5f;
  return c;
}

void
report_row (gboolean ok, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  char *text = g_strdup_vprintf (format, args);
  va_end (args);
  if (ok) {
    g_test_message ("ok: %s", text);
  } else {
    g_printerr ("FAIL: %s\n", text);
    g_test_fail_printf ("%s", text);
  }
  g_free (text);
}

gboolean
under_valgrind (void)
{
  return g_getenv ("MONE_UNDER_VALGRIND") != NULL;
}

void
check (gboolean ok, const char *what, const char *detail)
{
  report_row (ok, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
}

int
run_tool (const char *tool, const char *const *args, char **err_out)
{
  GPtrArray *argv = g_ptr_array_new ();
  g_ptr_array_add (argv, (gpointer) tool);
  for (int i = 0; args[i]; i++)
    g_ptr_array_add (argv, (gpointer) args[i]);
  g_ptr_array_add (argv, NULL);
  int status = 0;
  GError *error = NULL;
  gboolean ok = g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, err_out,
      &status, &error);
  g_assert_no_error (error);
  g_assert (ok);
  g_ptr_array_free (argv, TRUE);
  return status;
}

void
expect_tool_error (const char *what, const char *tool, const char *const *args, const char *needle)
{
  char *err = NULL;
  int status = run_tool (tool, args, &err);
  const gboolean ok = status != 0 && err && strstr (err, needle);
  report_row (ok, "%s: expected failure with '%s', got status %d, stderr: %s", what, needle, status,
      err && *err ? g_strstrip (err) : "(none)");
  g_free (err);
}
