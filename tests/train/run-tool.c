#include "run-tool.h"

#include <glib.h>

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
  gboolean ok = g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL,
      err_out, &status, &error);
  g_assert_no_error (error);
  g_assert (ok);
  g_ptr_array_free (argv, TRUE);
  return status;
}
