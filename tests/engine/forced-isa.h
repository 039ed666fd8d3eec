/* The engine tests that run once per kernel path (MONE_ISA, tests/engine/meson.build) have nothing
 * to test where this CPU lacks the forced path: the library would warn and fall back to another
 * path, which the run for that path already covers. They report themselves skipped instead. */
#ifndef MONE_FORCED_ISA_H
#define MONE_FORCED_ISA_H

#include <stdio.h>
#include <stdlib.h>

#include "cpu-isa.h"

/* meson's exit status for a skipped test. */
#define MONE_TEST_SKIPPED 77

/* Exits as skipped when MONE_ISA names a path this CPU cannot run. Call first in main, before
 * anything reads MONE_ISA (the library's warning would be fatal under g_test_init). */
static inline void
skip_if_forced_isa_unsupported (void)
{
  const char *forced = getenv ("MONE_ISA");
  MoneIsa isa;
  if (forced && mone_isa_from_name (forced, &isa) && !mone_isa_supported (isa)) {
    printf ("MONE_ISA=%s: this CPU does not run that path; skipped\n", forced);
    exit (MONE_TEST_SKIPPED);
  }
}

#endif /* MONE_FORCED_ISA_H */
