/* Capacity distribution, token counts per expert and Expert Preferred Routing (docs/mone.md,
 * "Capacity distribution from the budget" and "Forward pass" steps 3-4).
 *
 * These three functions run once per frame, before the transformer blocks, and must not allocate:
 * the forward pass calls them from its hot path and the trainer calls them per example. */
#include "mone-private.h"

#include <math.h>
#include <string.h>

/* Relative cost r_j = d_j / D = 1 / 2^(E-1-j) of expert j. */
static double
expert_cost (int experts, int j)
{
  return ldexp (1.0, j - (experts - 1));
}

/* c_j(lambda) = softmax_j ((delta^j - lambda r_j) / beta); returns sum_j c_j r_j.
 * The largest exponent is subtracted first so that exp never overflows, whatever lambda is. */
static double
capacity_at (int experts, double delta, double beta, double lambda, double *capacity)
{
  double exponent[MONE_MAX_EXPERTS];
  double max_exponent = -INFINITY;
  for (int j = 0; j < experts; j++) {
    exponent[j] = (pow (delta, j) - lambda * expert_cost (experts, j)) / beta;
    if (exponent[j] > max_exponent)
      max_exponent = exponent[j];
  }
  double total = 0;
  for (int j = 0; j < experts; j++) {
    capacity[j] = exp (exponent[j] - max_exponent);
    total += capacity[j];
  }
  double cost = 0;
  for (int j = 0; j < experts; j++) {
    capacity[j] /= total;
    cost += capacity[j] * expert_cost (experts, j);
  }
  return cost;
}

double
mone_capacity_from_budget (int experts, double delta, double beta, double budget, double *capacity)
{
  g_return_val_if_fail (experts >= 1 && experts <= MONE_MAX_EXPERTS, 1.0);
  g_return_val_if_fail (isfinite (delta) && delta > 0 && isfinite (beta) && beta > 0, 1.0);
  const double min_budget = expert_cost (experts, 0);

  /* Clamp; NaN counts as the full budget (the caller asked for something meaningless, and the
   * full model is the safe answer). */
  if (!(budget <= 1.0))
    budget = 1.0;
  if (budget < min_budget)
    budget = min_budget;

  /* The optimum at the ends of the range is degenerate (lambda = -inf / +inf): every token on the
   * largest / smallest expert. Return it exactly rather than a bisection's approximation. */
  if (budget >= 1.0 || budget <= min_budget) {
    memset (capacity, 0, sizeof (double) * experts);
    capacity[budget >= 1.0 ? experts - 1 : 0] = 1.0;
    return budget;
  }

  /* sum_j c_j r_j falls monotonically as lambda grows. Bracket the root by doubling, then bisect
   * until the bracket stops shrinking in double precision. */
  double lo = -1.0, hi = 1.0;
  while (capacity_at (experts, delta, beta, lo, capacity) < budget && lo > -1e300)
    lo *= 2;
  while (capacity_at (experts, delta, beta, hi, capacity) > budget && hi < 1e300)
    hi *= 2;
  for (int iter = 0; iter < 2000; iter++) {
    double mid = 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi)
      break;
    if (capacity_at (experts, delta, beta, mid, capacity) > budget)
      lo = mid;
    else
      hi = mid;
  }
  capacity_at (experts, delta, beta, 0.5 * (lo + hi), capacity);
  return budget;
}

void
mone_tokens_per_expert (int experts, const double *capacity, int tokens, int *counts)
{
  int remaining = tokens;
  for (int j = experts - 1; j >= 1; j--) {
    /* The small slack keeps c_j N = 49.999999999 (rounding in the bisection) from losing a token. */
    double share = floor (capacity[j] * tokens + 1e-9);
    int k = !(share >= 0) ? 0 : share > remaining ? remaining : (int) share; /* NaN: none */
    counts[j] = k;
    remaining -= k;
  }
  counts[0] = remaining;
}

/* Token a ranks before token b for expert j: higher probability, then lower index. A strict total
 * order, so the selection below is unique whatever sorting method produces it. */
static inline gboolean
ranks_before (const float *probs, int experts, int j, int a, int b)
{
  float pa = probs[(size_t) a * experts + j], pb = probs[(size_t) b * experts + j];
  if (pa != pb)
    return pa > pb;
  return a < b;
}

/* Heap sort of token indices by ranks_before (best first). In place, no allocation, O(n log n)
 * worst case: qsort may call malloc, which the forward pass must not. The heap keeps the worst-
 * ranked token at the root so that extracting to the end leaves the array best-first. */
static void
sift_down (int *idx, int n, int root, const float *probs, int experts, int j)
{
  for (;;) {
    int child = 2 * root + 1;
    if (child >= n)
      return;
    if (child + 1 < n && ranks_before (probs, experts, j, idx[child], idx[child + 1]))
      child++;
    if (!ranks_before (probs, experts, j, idx[root], idx[child]))
      return;
    int t = idx[root];
    idx[root] = idx[child];
    idx[child] = t;
    root = child;
  }
}

static void
sort_tokens_by_preference (int *idx, int n, const float *probs, int experts, int j)
{
  for (int i = n / 2 - 1; i >= 0; i--)
    sift_down (idx, n, i, probs, experts, j);
  for (int end = n - 1; end > 0; end--) {
    int t = idx[0];
    idx[0] = idx[end];
    idx[end] = t;
    sift_down (idx, end, 0, probs, experts, j);
  }
}

void
mone_route_tokens (int tokens, int experts, const float *router_probs, const int *counts,
    uint8_t *expert_of_token, int *scratch)
{
  const uint8_t unassigned = 0xff;
  memset (expert_of_token, unassigned, tokens);
  int *candidates = scratch; /* (N) unassigned token indices */
  for (int j = experts - 1; j >= 1; j--) {
    if (counts[j] <= 0)
      continue;
    int n = 0;
    for (int t = 0; t < tokens; t++)
      if (expert_of_token[t] == unassigned)
        candidates[n++] = t;
    sort_tokens_by_preference (candidates, n, router_probs, experts, j);
    int take = counts[j] < n ? counts[j] : n;
    for (int i = 0; i < take; i++)
      expert_of_token[candidates[i]] = (uint8_t) j;
  }
  for (int t = 0; t < tokens; t++)
    if (expert_of_token[t] == unassigned)
      expert_of_token[t] = 0;
}
