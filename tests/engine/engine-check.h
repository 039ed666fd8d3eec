/* What the engine tests share: a GTest check that names the table row it failed on and marks the
 * running test case failed without stopping it, so every row of a table is tried; and a small
 * deterministic stream of floats for test inputs. Included once per test program. */
#ifndef MONE_ENGINE_CHECK_H
#define MONE_ENGINE_CHECK_H

#include <glib.h>

#define CHECK(cond, ...)                                                                           \
  G_STMT_START                                                                                     \
  {                                                                                                \
    if (G_UNLIKELY (!(cond)))                                                                      \
      check_failed (__FILE__, __LINE__, #cond, __VA_ARGS__);                                       \
  }                                                                                                \
  G_STMT_END

static G_GNUC_PRINTF (4, 5) void check_failed (const char *file, int line, const char *cond,
    const char *format, ...)
{
  va_list args;
  va_start (args, format);
  g_autofree char *detail = g_strdup_vprintf (format, args);
  va_end (args);
  /* stderr as well as the test log: meson shows a failing test's stderr. */
  g_printerr ("%s:%d: check failed: %s: %s\n", file, line, cond, detail);
  g_test_fail_printf ("%s:%d: %s: %s", file, line, cond, detail);
}

/* Linear congruential stream; tests may set the state to pick their inputs. */
static unsigned uniform_state = 12345;
static inline float
check_uniform (float lo, float hi)
{
  uniform_state = uniform_state * 1664525u + 1013904223u;
  return lo + (hi - lo) * (uniform_state >> 8) / 16777216.0f;
}

#endif /* MONE_ENGINE_CHECK_H */
