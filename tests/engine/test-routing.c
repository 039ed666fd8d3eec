/* Expert Preferred Routing against a brute-force reference (docs/mone.md, step 4). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mone/mone.h"

/* The definition, literally: for j = E-1 down to 1, repeat counts[j] times "pick the unassigned token
 * with the highest p[:, j], lowest index among equals"; the rest go to expert 0. O(N^2 E). */
static void
reference_route (int n, int experts, const float *p, const int *counts, uint8_t *out)
{
  int *assigned = calloc (n, sizeof (int));
  memset (out, 0, n);
  for (int j = experts - 1; j >= 1; j--) {
    for (int k = 0; k < counts[j]; k++) {
      int best = -1;
      for (int t = 0; t < n; t++)
        if (!assigned[t] && (best < 0 || p[t * experts + j] > p[best * experts + j]))
          best = t;
      if (best < 0)
        break;
      assigned[best] = 1;
      out[best] = (uint8_t) j;
    }
  }
  free (assigned);
}

static guint32 rng_state = 12345;
static guint32
next_random (void)
{
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 17;
  rng_state ^= rng_state << 5;
  return rng_state;
}

/* Random tables, many with ties: Expert Preferred Routing matches the naive reference and gives
 * every expert its capacity. */
static void
test_random_tables (void)
{
  int cases = 0;
  for (int trial = 0; trial < 400; trial++) {
    int experts = 1 + (int) (next_random () % 6);
    int n = 1 + (int) (next_random () % 300);
    /* levels: a few distinct values force many ties; 0 = continuous values. */
    int levels = (int) (next_random () % 4);
    float *p = malloc (sizeof (float) * n * experts);
    for (int t = 0; t < n; t++) {
      float sum = 0;
      for (int j = 0; j < experts; j++) {
        float v = levels ? (float) (next_random () % levels + 1)
                         : (next_random () % 1000000) / 1e6f;
        p[t * experts + j] = v;
        sum += v;
      }
      for (int j = 0; j < experts; j++)
        p[t * experts + j] = sum > 0 ? p[t * experts + j] / sum : 1.0f / experts;
    }
    double budget = ldexp (1.0, -(experts - 1)) + (next_random () % 1001) / 1000.0;
    double c[MONE_MAX_EXPERTS];
    int counts[MONE_MAX_EXPERTS];
    mone_capacity_from_budget (experts, 2, 10, budget, c);
    mone_tokens_per_expert (experts, c, n, counts);

    uint8_t *got = malloc (n), *want = malloc (n);
    int *scratch = malloc (sizeof (int) * 2 * n);
    mone_route_tokens (n, experts, p, counts, got, scratch);
    reference_route (n, experts, p, counts, want);
    int per_expert[MONE_MAX_EXPERTS] = { 0 };
    for (int t = 0; t < n; t++)
      per_expert[got[t] < MONE_MAX_EXPERTS ? got[t] : 0]++;
    if (memcmp (got, want, n) != 0) {
      for (int t = 0; t < n; t++)
        if (got[t] != want[t]) {
          g_test_fail_printf ("trial %d (E=%d N=%d levels=%d): token %d got expert %d, expected %d",
              trial, experts, n, levels, t, got[t], want[t]);
          break;
        }
    }
    for (int j = 0; j < experts; j++)
      if (per_expert[j] != counts[j])
        g_test_fail_printf ("trial %d: expert %d has %d tokens, expected %d", trial, j,
            per_expert[j], counts[j]);
    free (p);
    free (got);
    free (want);
    free (scratch);
    cases++;
  }

  g_test_message ("%d random cases", cases);
}

static void
test_all_ties (void)
{
  /* All probabilities equal: each expert takes the lowest-index remaining tokens. */
  enum { N = 10, E = 3 };
  float p[N * E];
  for (int i = 0; i < N * E; i++)
    p[i] = 1.0f / 3;
  int counts[E] = { 3, 3, 4 };
  uint8_t got[N];
  int scratch[2 * N];
  mone_route_tokens (N, E, p, counts, got, scratch);
  static const uint8_t want[N] = { 2, 2, 2, 2, 1, 1, 1, 0, 0, 0 };
  if (memcmp (got, want, N) != 0)
    g_test_fail_printf ("all-ties case routed wrongly");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/routing/random-tables", test_random_tables);
  g_test_add_func ("/routing/all-ties", test_all_ties);
  return g_test_run ();
}
