/* What the engine tests share: a check that reports where it failed and counts, without stopping,
 * so every case of a table runs (main returns failures != 0), and a small deterministic stream of
 * floats for test inputs. Included once per test program. */
#ifndef MONE_ENGINE_CHECK_H
#define MONE_ENGINE_CHECK_H

#include <stdio.h>

static int failures;
#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf (stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);                   \
      fprintf (stderr, __VA_ARGS__);                                                               \
      fprintf (stderr, "\n");                                                                      \
      failures++;                                                                                  \
    }                                                                                              \
  } while (0)

/* Linear congruential stream; tests may set the state to pick their inputs. */
static unsigned uniform_state = 12345;
static inline float
check_uniform (float lo, float hi)
{
  uniform_state = uniform_state * 1664525u + 1013904223u;
  return lo + (hi - lo) * (uniform_state >> 8) / 16777216.0f;
}

#endif /* MONE_ENGINE_CHECK_H */
