/* Which x86 vector instruction set the hand-written kernels use, chosen once per process.
 *
 * Picked from the CPU itself (never from OpenBLAS's own core detection, which can be forced to
 * something else with OPENBLAS_CORETYPE), so one library binary runs its AVX-512 kernels where the
 * CPU has them and still runs on CPUs without. MONE_ISA=avx512|avx2|generic|openblas forces a path (for
 * tests and comparisons); a forced path the CPU lacks falls back to the best one it has, with a
 * warning. */
#ifndef MONE_CPU_ISA_H
#define MONE_CPU_ISA_H

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  MONE_ISA_GENERIC, /* portable C (GCC vector extensions, whatever the baseline target offers) */
  MONE_ISA_AVX2,    /* AVX2 + FMA, 8 floats per vector */
  MONE_ISA_AVX512,  /* AVX-512 F/VL/BW/DQ, 16 floats per vector */
  /* Not a kernel set: the projections go to OpenBLAS's cblas_sgemm on the unpacked weights (the
   * reference path); the vector kernels then run at the best ISA the CPU has. */
  MONE_ISA_OPENBLAS,
  MONE_ISA_COUNT
} MoneIsa;

/* The path chosen for this process: MONE_ISA if set and supported, else the best the CPU
 * supports. Decided on the first call; thread-safe. The vector kernels follow it (the best real
 * ISA for MONE_ISA_OPENBLAS); new contexts' projections follow mone_isa_default. */
MoneIsa mone_isa_active (void);

/* The projection path for contexts created from now on: mone_isa_active() unless a test or
 * benchmark changed it with mone_isa_set_default (FALSE, and no change, for a path this CPU
 * cannot run). */
MoneIsa mone_isa_default (void);
gboolean mone_isa_set_default (MoneIsa isa);

/* The best of generic, AVX2 and AVX-512 this CPU runs. */
MoneIsa mone_isa_best (void);

/* "generic", "avx2", "avx512", "openblas" (the MONE_ISA spellings). */
const char *mone_isa_name (MoneIsa isa);

/* The path a MONE_ISA spelling names (FALSE, *isa untouched, for anything else). */
gboolean mone_isa_from_name (const char *name, MoneIsa *isa);

/* Whether this CPU (and OS) can run the given path; tests use it to try every path there is. */
gboolean mone_isa_supported (MoneIsa isa);

G_END_DECLS

#endif
