/* The few-row matrix product of the forward pass. The element-wise kernels declared in
 * engine-kernels.h are compiled per instruction set (vector-kernels.c) and dispatched in kernels.c. */
#include "engine-kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* The 32-byte vectors never cross a non-inlined call; the ABI note does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"
/* The project builds with -std=c11, which turns off a * b + c -> fma contraction; these kernels
 * want it (fewer instructions, shorter dependency chains, and no worse rounding). */
#if defined(__clang__)
#pragma clang fp contract(fast)
#else
#pragma GCC optimize("fp-contract=fast")
#endif

/* Two builds of the product, selected by the dynamic loader (ifunc) from the CPU. */
/* Not under sanitizers: their instrumentation of the generated resolver calls into the runtime
 * before the dynamic loader has relocated libmone (a TSan build crashes at load). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__ELF__)            \
    && !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
#define VECTOR_CLONES __attribute__ ((target_clones ("arch=x86-64-v3", "default")))
#else
#define VECTOR_CLONES
#endif

#define LANES 8
typedef float vf __attribute__ ((vector_size (LANES * sizeof (float))));
typedef int32_t vi __attribute__ ((vector_size (LANES * sizeof (int32_t))));

static inline __attribute__ ((always_inline)) vf
load (const float *p)
{
  vf v;
  memcpy (&v, p, sizeof v); /* unaligned; compiles to one vector load */
  return v;
}

static inline __attribute__ ((always_inline)) vf
splat (float x)
{
  return (vf){ x, x, x, x, x, x, x, x };
}

static inline __attribute__ ((always_inline)) float
horizontal_sum (vf v)
{
  /* Fixed pairwise order so results do not depend on anything but the data. */
  float a = (v[0] + v[4]) + (v[2] + v[6]);
  float b = (v[1] + v[5]) + (v[3] + v[7]);
  return a + b;
}

/* ---------------------------------------------------------------------------------------------- */
/* Few-row matrix product, C = beta C + A B^T, straight from the weights' own layout. */

/* Two-vector lane shuffle: GCC and clang spell it differently (the indices pick from a ++ b). */
#if defined(__clang__)
#define SHUFFLE2(a, b, i0, i1, i2, i3, i4, i5, i6, i7)                                             \
  __builtin_shufflevector (a, b, i0, i1, i2, i3, i4, i5, i6, i7)
#else
#define SHUFFLE2(a, b, i0, i1, i2, i3, i4, i5, i6, i7)                                             \
  __builtin_shuffle (a, b, (vi){ i0, i1, i2, i3, i4, i5, i6, i7 })
#endif

/* Pairwise sums of neighbouring lanes of a and b, in the lane order of x86's hadd:
 * [a0+a1, a2+a3, b0+b1, b2+b3, a4+a5, a6+a7, b4+b5, b6+b7]. */
static inline __attribute__ ((always_inline)) vf
pair_sums (vf a, vf b)
{
  return SHUFFLE2 (a, b, 0, 2, 8, 10, 4, 6, 12, 14) + SHUFFLE2 (a, b, 1, 3, 9, 11, 5, 7, 13, 15);
}

/* Lane i of the result = the sum of all lanes of acc[i]: 8 dot products finished at once with
 * 7 shuffle-adds instead of 8 separate horizontal sums. */
static inline __attribute__ ((always_inline)) vf
sum_each_of_8 (const vf acc[8])
{
  vf low = pair_sums (pair_sums (acc[0], acc[1]), pair_sums (acc[2], acc[3]));
  vf high = pair_sums (pair_sums (acc[4], acc[5]), pair_sums (acc[6], acc[7]));
  return SHUFFLE2 (low, high, 0, 1, 2, 3, 8, 9, 10, 11)
      + SHUFFLE2 (low, high, 4, 5, 6, 7, 12, 13, 14, 15);
}

#define GEMM_ROWS 4    /* rows of A per register block */
#define GEMM_OUTPUTS 2 /* rows of B (outputs) per register block: 4 x 2 = 8 accumulators */

/* What C's old contents contribute: nothing when beta is 0, so NaN garbage there is ignored. */
static inline __attribute__ ((always_inline)) float
scaled_old (float beta, float old)
{
  return beta == 0.0f ? 0.0f : beta * old;
}

/* One output element the plain way, for the ragged edges of the blocking. */
static inline __attribute__ ((always_inline)) float
dot (int k, const float *a, const float *b)
{
  vf acc = splat (0);
  int i = 0;
  for (; i + LANES <= k; i += LANES)
    acc += load (a + i) * load (b + i);
  float sum = horizontal_sum (acc);
  for (; i < k; i++)
    sum += a[i] * b[i];
  return sum;
}

/* Static: target_clones makes an ifunc, which GCC would export whatever -fvisibility says. */
static VECTOR_CLONES void
gemm_nt_few_rows (int n, int m, int k, const float *a, int lda, const float *b, int ldb, float beta,
    float *c, int ldc)
{
  const int k_vec = k - k % LANES;
  /* Outputs outermost: a pair of B rows stays in L1 while every row block of A (few rows, hot
   * in L1 too) streams past it. */
  int o = 0;
  for (; o + GEMM_OUTPUTS <= m; o += GEMM_OUTPUTS) {
    const float *b0 = b + (size_t) o * ldb, *b1 = b0 + ldb;
    int r = 0;
    for (; r + GEMM_ROWS <= n; r += GEMM_ROWS) {
      const float *a0 = a + (size_t) r * lda;
      const float *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
      /* Named accumulators, not an array: GCC then keeps all eight in registers. */
      vf r0o0 = splat (0), r0o1 = splat (0), r1o0 = splat (0), r1o1 = splat (0);
      vf r2o0 = splat (0), r2o1 = splat (0), r3o0 = splat (0), r3o1 = splat (0);
      for (int i = 0; i < k_vec; i += LANES) {
        const vf w0 = load (b0 + i), w1 = load (b1 + i);
        vf x = load (a0 + i);
        r0o0 += x * w0;
        r0o1 += x * w1;
        x = load (a1 + i);
        r1o0 += x * w0;
        r1o1 += x * w1;
        x = load (a2 + i);
        r2o0 += x * w0;
        r2o1 += x * w1;
        x = load (a3 + i);
        r3o0 += x * w0;
        r3o1 += x * w1;
      }
      const vf acc[8] = { r0o0, r0o1, r1o0, r1o1, r2o0, r2o1, r3o0, r3o1 };
      vf sums = sum_each_of_8 (acc);
      for (int i = k_vec; i < k; i++)
        for (int row = 0; row < GEMM_ROWS; row++) {
          sums[2 * row] += a0[(size_t) row * lda + i] * b0[i];
          sums[2 * row + 1] += a0[(size_t) row * lda + i] * b1[i];
        }
      for (int row = 0; row < GEMM_ROWS; row++) {
        float *out = c + (size_t) (r + row) * ldc + o;
        out[0] = scaled_old (beta, out[0]) + sums[2 * row];
        out[1] = scaled_old (beta, out[1]) + sums[2 * row + 1];
      }
    }
    for (; r < n; r++) {
      const float *a_row = a + (size_t) r * lda;
      float *out = c + (size_t) r * ldc + o;
      out[0] = scaled_old (beta, out[0]) + dot (k, a_row, b0);
      out[1] = scaled_old (beta, out[1]) + dot (k, a_row, b1);
    }
  }
  for (; o < m; o++)
    for (int r = 0; r < n; r++) {
      float *out = c + (size_t) r * ldc + o;
      *out = scaled_old (beta, *out) + dot (k, a + (size_t) r * lda, b + (size_t) o * ldb);
    }
}

void
mone_gemm_nt_few_rows (int n, int m, int k, const float *a, int lda, const float *b, int ldb,
    float beta, float *c, int ldc)
{
  gemm_nt_few_rows (n, m, k, a, lda, b, ldb, beta, c, ldc);
}
