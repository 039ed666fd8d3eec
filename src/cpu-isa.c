/* Vector ISA selection (see cpu-isa.h). */
#include "cpu-isa.h"

#include <string.h>

gboolean
mone_isa_supported (MoneIsa isa)
{
  switch (isa) {
    case MONE_ISA_GENERIC:
    case MONE_ISA_OPENBLAS:
      return TRUE;
#if defined(__x86_64__) && defined(__GNUC__)
    /* __builtin_cpu_supports also checks that the OS saves the wide registers (XCR0). */
    case MONE_ISA_AVX2:
      __builtin_cpu_init (); /* needed when called from a constructor; cheap otherwise */
      return __builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma");
    case MONE_ISA_AVX512:
      return __builtin_cpu_supports ("avx512f") && __builtin_cpu_supports ("avx512vl")
          && __builtin_cpu_supports ("avx512bw") && __builtin_cpu_supports ("avx512dq")
          && mone_isa_supported (MONE_ISA_AVX2);
#endif
    default:
      return FALSE;
  }
}

const char *
mone_isa_name (MoneIsa isa)
{
  switch (isa) {
    case MONE_ISA_GENERIC:
      return "generic";
    case MONE_ISA_AVX2:
      return "avx2";
    case MONE_ISA_AVX512:
      return "avx512";
    case MONE_ISA_OPENBLAS:
      return "openblas";
    default:
      return "unknown";
  }
}

gboolean
mone_isa_from_name (const char *name, MoneIsa *isa)
{
  for (MoneIsa i = MONE_ISA_GENERIC; i < MONE_ISA_COUNT; i++)
    if (strcmp (name, mone_isa_name (i)) == 0) {
      *isa = i;
      return TRUE;
    }
  return FALSE;
}

MoneIsa
mone_isa_best (void)
{
  if (mone_isa_supported (MONE_ISA_AVX512))
    return MONE_ISA_AVX512;
  if (mone_isa_supported (MONE_ISA_AVX2))
    return MONE_ISA_AVX2;
  return MONE_ISA_GENERIC;
}

static MoneIsa
choose_isa (void)
{
  const MoneIsa best = mone_isa_best ();
  const char *forced = g_getenv ("MONE_ISA");
  if (!forced || !*forced)
    return best;
  MoneIsa isa;
  if (mone_isa_from_name (forced, &isa)) {
    if (mone_isa_supported (isa))
      return isa;
    g_warning ("MONE_ISA=%s: this CPU does not support it; using %s", forced, mone_isa_name (best));
    return best;
  }
  g_warning ("MONE_ISA=%s is not one of generic, avx2, avx512, openblas; using %s", forced,
      mone_isa_name (best));
  return best;
}

MoneIsa
mone_isa_active (void)
{
  static gsize chosen = 0; /* 0: not yet; else isa + 1 */
  if (g_once_init_enter (&chosen))
    g_once_init_leave (&chosen, (gsize) choose_isa () + 1);
  return (MoneIsa) (chosen - 1);
}

/* MONE_ISA_COUNT until decided. */
static gint default_isa = MONE_ISA_COUNT;

MoneIsa
mone_isa_default (void)
{
  gint isa = g_atomic_int_get (&default_isa);
  if (isa == MONE_ISA_COUNT) {
    g_atomic_int_compare_and_exchange (&default_isa, MONE_ISA_COUNT, (gint) mone_isa_active ());
    isa = g_atomic_int_get (&default_isa);
  }
  return (MoneIsa) isa;
}

gboolean
mone_isa_set_default (MoneIsa isa)
{
  if (isa < 0 || isa >= MONE_ISA_COUNT || !mone_isa_supported (isa))
    return FALSE;
  g_atomic_int_set (&default_isa, (gint) isa);
  return TRUE;
}
