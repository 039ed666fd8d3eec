/* Element-wise kernels of the forward pass (see engine-kernels.h for why they are vectorised). */
#include "engine-kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* The 32-byte vectors never cross a non-inlined call; the ABI note does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"
/* The project builds with -std=c11, which turns off a * b + c -> fma contraction; these kernels
 * want it (fewer instructions, shorter dependency chains, and no worse rounding). */
#if defined(__clang__)
#pragma clang fp contract (fast)
#else
#pragma GCC optimize ("fp-contract=fast")
#endif

/* Two builds of each public kernel, selected by the dynamic loader (ifunc) from the CPU. */
/* Not under sanitizers: their instrumentation of the generated resolver calls into the runtime
 * before the dynamic loader has relocated libmone (a TSan build crashes at load). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__ELF__) \
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

static inline __attribute__ ((always_inline)) void
store (float *p, vf v)
{
  memcpy (p, &v, sizeof v);
}

static inline __attribute__ ((always_inline)) vf
splat (float x)
{
  return (vf) { x, x, x, x, x, x, x, x };
}

static inline __attribute__ ((always_inline)) float
horizontal_sum (vf v)
{
  /* Fixed pairwise order so results do not depend on anything but the data. */
  float a = (v[0] + v[4]) + (v[2] + v[6]);
  float b = (v[1] + v[5]) + (v[3] + v[7]);
  return a + b;
}

static inline __attribute__ ((always_inline)) float
horizontal_max (vf v)
{
  float m = v[0];
  for (int i = 1; i < LANES; i++)
    m = v[i] > m ? v[i] : m;
  return m;
}

static inline __attribute__ ((always_inline)) vf
vmax (vf a, vf b)
{
  vi gt = a > b; /* -1 where true */
  return (vf) ((gt & (vi) a) | (~gt & (vi) b));
}

static inline __attribute__ ((always_inline)) vf
vmin (vf a, vf b)
{
  vi lt = a < b;
  return (vf) ((lt & (vi) a) | (~lt & (vi) b));
}

/* exp(x) = 2^n e^r with n = round(x / ln 2), |r| <= ln2 / 2, e^r by its Taylor polynomial to r^6
 * (truncation error < 2e-7 relative). Inputs are clamped to [-87, 88] so 2^n stays a normal float:
 * below, the result is ~1.6e-38 instead of a denormal, which no caller can tell from 0. */
static inline __attribute__ ((always_inline)) vf
vexp (vf x)
{
  const vf round_magic = splat (12582912.0f); /* 1.5 * 2^23: adding it rounds to an integer */
  x = vmin (vmax (x, splat (-87.0f)), splat (88.0f));
  vf n = (x * splat (1.44269504088896341f) + round_magic) - round_magic;
  /* r = x - n ln2 in two steps (Cody-Waite) so the subtraction is exact for |n| < 2^8. */
  vf r = x - n * splat (0.693359375f);
  r = r - n * splat (-2.12194440e-4f);
  vf p = splat (1.0f / 720);
  p = p * r + splat (1.0f / 120);
  p = p * r + splat (1.0f / 24);
  p = p * r + splat (1.0f / 6);
  p = p * r + splat (0.5f);
  p = p * r + splat (1.0f);
  p = p * r + splat (1.0f);
  vi bits = (__builtin_convertvector (n, vi) + 127) << 23;
  return p * (vf) bits;
}

/* erf(x) = x P(x^2) / Q(x^2) on |x| <= 3.925 (beyond, erf is 1 to 3e-8), P and Q of degree 5:
 * a rational fit to erf made for this file (Sanathanan-Koerner iteration with Lawson weights on
 * Chebyshev nodes, coefficients rounded to float; max abs error 4.3e-8 before float rounding).
 * No exp and one division: GELU over N x F activations runs at every budget, so its cost matters
 * more as the nested matrix products shrink. */
static inline __attribute__ ((always_inline)) vf
verf (vf x)
{
  x = vmin (vmax (x, splat (-3.925f)), splat (3.925f));
  vf t = x * x;
  vf p = splat (2.030878932e-06f);
  p = p * t + splat (2.874896745e-04f);
  p = p * t + splat (3.876237199e-03f);
  p = p * t + splat (5.308407545e-02f);
  p = p * t + splat (1.929705143e-01f);
  p = p * t + splat (1.128378987e+00f);
  vf q = splat (3.803141590e-05f);
  q = q * t + splat (1.189727336e-03f);
  q = q * t + splat (1.518817712e-02f);
  q = q * t + splat (1.151666045e-01f);
  q = q * t + splat (5.043473244e-01f);
  q = q * t + splat (1.0f);
  return x * p / q;
}

VECTOR_CLONES void
mone_exp_array (int n, const float *x, float *out)
{
  int i = 0;
  for (; i + LANES <= n; i += LANES)
    store (out + i, vexp (load (x + i)));
  if (i < n) {
    float tail[LANES] = { 0 };
    memcpy (tail, x + i, sizeof (float) * (n - i));
    store (tail, vexp (load (tail)));
    memcpy (out + i, tail, sizeof (float) * (n - i));
  }
}

VECTOR_CLONES void
mone_erf_array (int n, const float *x, float *out)
{
  int i = 0;
  for (; i + LANES <= n; i += LANES)
    store (out + i, verf (load (x + i)));
  if (i < n) {
    float tail[LANES] = { 0 };
    memcpy (tail, x + i, sizeof (float) * (n - i));
    store (tail, verf (load (tail)));
    memcpy (out + i, tail, sizeof (float) * (n - i));
  }
}

VECTOR_CLONES void
mone_layernorm_rows (int n_rows, int width, int out_width, const float *x, int ldx,
    const float *weight, const float *bias, float eps, float *out, int ldout)
{
  for (int r = 0; r < n_rows; r++) {
    const float *row = x + (size_t) r * ldx;   /* (width) */
    float *dst = out + (size_t) r * ldout;     /* (out_width) */
    vf acc = splat (0);
    int c = 0;
    for (; c + LANES <= width; c += LANES)
      acc += load (row + c);
    float sum = horizontal_sum (acc);
    for (; c < width; c++)
      sum += row[c];
    const float mean = sum / width;
    /* Two-pass variance: the residual stream can have a large mean relative to its spread. */
    vf vmean = splat (mean);
    acc = splat (0);
    for (c = 0; c + LANES <= width; c += LANES) {
      vf d = load (row + c) - vmean;
      acc += d * d;
    }
    float sq = horizontal_sum (acc);
    for (; c < width; c++)
      sq += (row[c] - mean) * (row[c] - mean);
    const float rstd = 1.0f / sqrtf (sq / width + eps);
    vf vrstd = splat (rstd);
    for (c = 0; c + LANES <= out_width; c += LANES)
      store (dst + c, (load (row + c) - vmean) * vrstd * load (weight + c) + load (bias + c));
    for (; c < out_width; c++)
      dst[c] = (row[c] - mean) * rstd * weight[c] + bias[c];
  }
}

VECTOR_CLONES void
mone_softmax_rows (int n_rows, int n_cols, float scale, float *x, int ld, float *inverse_sums)
{
  const vf vscale = splat (scale);
  for (int r = 0; r < n_rows; r++) {
    float *row = x + (size_t) r * ld; /* (n_cols) */
    int c = 0;
    float max = -INFINITY;
    if (n_cols >= LANES) {
      vf vm = load (row);
      for (c = LANES; c + LANES <= n_cols; c += LANES)
        vm = vmax (vm, load (row + c));
      max = horizontal_max (vm);
    }
    for (; c < n_cols; c++)
      max = row[c] > max ? row[c] : max;
    /* softmax(scale s) = exp(scale (s - max)) / sum, for scale > 0. */
    const vf vmaxs = splat (max);
    vf acc = splat (0);
    for (c = 0; c + LANES <= n_cols; c += LANES) {
      vf e = vexp ((load (row + c) - vmaxs) * vscale);
      store (row + c, e);
      acc += e;
    }
    float sum = horizontal_sum (acc);
    if (c < n_cols) {
      float tail[LANES];
      for (int i = 0; i < LANES; i++)
        tail[i] = c + i < n_cols ? (row[c + i] - max) * scale : -INFINITY;
      vf e = vexp (load (tail));
      for (int i = 0; c + i < n_cols; i++) {
        row[c + i] = e[i];
        sum += e[i];
      }
    }
    if (inverse_sums) {
      inverse_sums[r] = 1.0f / sum;
      continue;
    }
    const vf inv = splat (1.0f / sum);
    for (c = 0; c + LANES <= n_cols; c += LANES)
      store (row + c, load (row + c) * inv);
    for (; c < n_cols; c++)
      row[c] *= inv[0];
  }
}

static inline __attribute__ ((always_inline)) vf
vgelu (vf v)
{
  return splat (0.5f) * v * (splat (1.0f) + verf (v * splat (0.70710678118654752f)));
}

VECTOR_CLONES void
mone_bias_gelu_scale_rows (int n_rows, int n_cols, float *x, int ld, const float *bias,
    const float *row_scale)
{
  for (int r = 0; r < n_rows; r++) {
    float *row = x + (size_t) r * ld; /* (n_cols) */
    const vf s = splat (row_scale ? row_scale[r] : 1.0f);
    int c = 0;
    /* Four independent vectors per iteration: one GELU is a long dependency chain (exp, divide,
     * two polynomials), and out-of-order execution alone overlaps too few of them. */
    for (; c + 4 * LANES <= n_cols; c += 4 * LANES) {
      vf a = load (row + c) + load (bias + c);
      vf b2 = load (row + c + LANES) + load (bias + c + LANES);
      vf c2 = load (row + c + 2 * LANES) + load (bias + c + 2 * LANES);
      vf d2 = load (row + c + 3 * LANES) + load (bias + c + 3 * LANES);
      a = vgelu (a);
      b2 = vgelu (b2);
      c2 = vgelu (c2);
      d2 = vgelu (d2);
      store (row + c, a * s);
      store (row + c + LANES, b2 * s);
      store (row + c + 2 * LANES, c2 * s);
      store (row + c + 3 * LANES, d2 * s);
    }
    for (; c + LANES <= n_cols; c += LANES)
      store (row + c, vgelu (load (row + c) + load (bias + c)) * s);
    if (c < n_cols) {
      float tail[LANES] = { 0 };
      for (int i = 0; c + i < n_cols; i++)
        tail[i] = row[c + i] + bias[c + i];
      vf g = vgelu (load (tail)) * s;
      for (int i = 0; c + i < n_cols; i++)
        row[c + i] = g[i];
    }
  }
}

/* ---------------------------------------------------------------------------------------------- */
/* Few-row matrix product, C = beta C + A B^T, straight from the weights' own layout. */

/* Two-vector lane shuffle: GCC and clang spell it differently (the indices pick from a ++ b). */
#if defined(__clang__)
#define SHUFFLE2(a, b, i0, i1, i2, i3, i4, i5, i6, i7) \
  __builtin_shufflevector (a, b, i0, i1, i2, i3, i4, i5, i6, i7)
#else
#define SHUFFLE2(a, b, i0, i1, i2, i3, i4, i5, i6, i7) \
  __builtin_shuffle (a, b, (vi) { i0, i1, i2, i3, i4, i5, i6, i7 })
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
  return SHUFFLE2 (low, high, 0, 1, 2, 3, 8, 9, 10, 11) + SHUFFLE2 (low, high, 4, 5, 6, 7, 12, 13, 14, 15);
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

VECTOR_CLONES void
mone_gemm_nt_few_rows (int n, int m, int k, const float *a, int lda, const float *b, int ldb,
    float beta, float *c, int ldc)
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
