/* LayerNorm, softmax, GELU, exp and erf on vectors of LANES floats, compiled once per instruction
 * set (simd.h, kernels.h). Row ends that are not a whole vector go through masked loads and
 * stores, never past the row. Each call works on its own rows with a fixed order of operations, so
 * results do not depend on the thread count (they differ between instruction sets in rounding). */
#include "simd.h"

#include "kernels.h"

#include <stdbool.h>

static void
exp_array (int n, const float *x, float *out)
{
  int i = 0;
  for (; i + LANES <= n; i += LANES)
    vstore (out + i, vexp (vload (x + i)));
  if (i < n)
    vstore_first (out + i, vexp (vload_first (x + i, n - i)), n - i);
}

static void
erf_array (int n, const float *x, float *out)
{
  int i = 0;
  for (; i + LANES <= n; i += LANES)
    vstore (out + i, verf (vload (x + i)));
  if (i < n)
    vstore_first (out + i, verf (vload_first (x + i, n - i)), n - i);
}

/* The trainer's GELU forward, one pass: cdf = Phi(x) = (1 + erf(x / sqrt 2)) / 2, out = x cdf. */
static void
gelu_cdf_array (int n, const float *x, float *out, float *cdf)
{
  const vf rsqrt2 = splat (0.70710678118654752f), half = splat (0.5f), one = splat (1.0f);
  int i = 0;
  for (; i + LANES <= n; i += LANES) {
    const vf v = vload (x + i), c = half * (one + verf (v * rsqrt2));
    vstore (cdf + i, c);
    vstore (out + i, v * c);
  }
  if (i < n) {
    const vf v = vload_first (x + i, n - i), c = half * (one + verf (v * rsqrt2));
    vstore_first (cdf + i, c, n - i);
    vstore_first (out + i, v * c, n - i);
  }
}

/* Its backward, one pass: din = dout (Phi(x) + x phi(x)), phi(x) = exp(-x^2 / 2) / sqrt(2 pi). */
static void
gelu_grad_array (int n, const float *dout, const float *x, const float *cdf, float *din)
{
  const vf minus_half = splat (-0.5f), inv_sqrt_2pi = splat (0.3989422804014327f);
  int i = 0;
  for (; i + LANES <= n; i += LANES) {
    const vf v = vload (x + i), g = vexp (minus_half * v * v);
    vstore (din + i, vload (dout + i) * (vload (cdf + i) + v * inv_sqrt_2pi * g));
  }
  if (i < n) {
    const int m = n - i;
    const vf v = vload_first (x + i, m), g = vexp (minus_half * v * v);
    vstore_first (din + i,
        vload_first (dout + i, m) * (vload_first (cdf + i, m) + v * inv_sqrt_2pi * g), m);
  }
}

/* mone_router_dot: eight lanes of doubles (engine-kernels.h). */
static double
router_dot (const float *a, const float *b, int n, double init)
{
  double lanes[8];
  int d = 0;
#if defined(MONE_KERNEL_BUILD_AVX512)
  __m512d acc = _mm512_setzero_pd ();
  for (; d + 8 <= n; d += 8)
    acc = _mm512_fmadd_pd (_mm512_cvtps_pd (_mm256_loadu_ps (a + d)),
        _mm512_cvtps_pd (_mm256_loadu_ps (b + d)), acc);
  _mm512_storeu_pd (lanes, acc);
#elif defined(MONE_KERNEL_BUILD_AVX2)
  __m256d low = _mm256_setzero_pd (), high = _mm256_setzero_pd ();
  for (; d + 8 <= n; d += 8) {
    low = _mm256_fmadd_pd (_mm256_cvtps_pd (_mm_loadu_ps (a + d)),
        _mm256_cvtps_pd (_mm_loadu_ps (b + d)), low);
    high = _mm256_fmadd_pd (_mm256_cvtps_pd (_mm_loadu_ps (a + d + 4)),
        _mm256_cvtps_pd (_mm_loadu_ps (b + d + 4)), high);
  }
  _mm256_storeu_pd (lanes, low);
  _mm256_storeu_pd (lanes + 4, high);
#else
  /* Pairs of lanes, named, so that the compiler keeps the chains in registers. */
  typedef double Double2 __attribute__ ((vector_size (2 * sizeof (double))));
  Double2 lanes01 = { 0 }, lanes23 = { 0 }, lanes45 = { 0 }, lanes67 = { 0 };
  for (; d + 8 <= n; d += 8) {
    lanes01 += (Double2){ a[d], a[d + 1] } * (Double2){ b[d], b[d + 1] };
    lanes23 += (Double2){ a[d + 2], a[d + 3] } * (Double2){ b[d + 2], b[d + 3] };
    lanes45 += (Double2){ a[d + 4], a[d + 5] } * (Double2){ b[d + 4], b[d + 5] };
    lanes67 += (Double2){ a[d + 6], a[d + 7] } * (Double2){ b[d + 6], b[d + 7] };
  }
  const Double2 pairs[4] = { lanes01, lanes23, lanes45, lanes67 };
  for (int k = 0; k < 8; k++)
    lanes[k] = pairs[k / 2][k % 2];
#endif
  for (; d < n; d++)
    init += (double) a[d] * b[d];
  for (int k = 0; k < 8; k++)
    init += lanes[k];
  return init;
}

static void
normalize_rows (int n_rows, int n, const float *x, int ldx, float mean, float inv_std, float *out,
    int ldout)
{
  const vf vmean = splat (mean), vscale = splat (inv_std);
  for (int r = 0; r < n_rows; r++) {
    const float *row = x + (size_t) r * ldx;
    float *dst = out + (size_t) r * ldout;
    int i = 0;
    for (; i + LANES <= n; i += LANES)
      vstore (dst + i, (vload (row + i) - vmean) * vscale);
    if (i < n)
      vstore_first (dst + i, (vload_first (row + i, n - i) - vmean) * vscale, n - i);
  }
}

/* LayerNorm's rows go LAYERNORM_ROWS at a time: one row's steps (a sum, its reduction, the mean,
 * the squared deviations, their reduction, the square root) depend on each other, and with rows
 * of 64 (the scene model) that chain, not the arithmetic, set the pace; four rows side by side
 * fill the pipes. */
#define LAYERNORM_ROWS 4

ALWAYS_INLINE vf
row_term (const bool squared, vf x, vf mean)
{
  return squared ? (x - mean) * (x - mean) : x;
}

/* sums[r] = sum over row r of x, or of (x - means[r])^2 when `squared`, for R <= LAYERNORM_ROWS
 * rows ld apart: four vectors of running sums per row (one chain of dependent adds would wait on
 * the add's latency at every step), then a fixed-order reduction; each row's sum is the same
 * whatever R. */
ALWAYS_INLINE void
row_sums_of (const int R, const bool squared, const float *rows, int ld, int width,
    const float *means, float *sums)
{
  vf vmean[LAYERNORM_ROWS], acc[LAYERNORM_ROWS][4];
#pragma GCC unroll 4
  for (int r = 0; r < R; r++) {
    vmean[r] = splat (means[r]);
    acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = splat (0);
  }
  int c = 0;
  for (; c + 4 * LANES <= width; c += 4 * LANES) {
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
      for (int r = 0; r < R; r++)
        acc[r][i] += row_term (squared, vload (rows + (size_t) r * ld + c + i * LANES), vmean[r]);
  }
  /* At most three whole vectors left, each into its own accumulator: constant indices keep acc
   * in registers (an index known only at run time would put the array on the stack). */
#pragma GCC unroll 3
  for (int i = 0; i < 3; i++)
    if (c + LANES <= width) {
#pragma GCC unroll 4
      for (int r = 0; r < R; r++)
        acc[r][i] += row_term (squared, vload (rows + (size_t) r * ld + c), vmean[r]);
      c += LANES;
    }
  if (c < width) /* lanes past the row add 0 (not mean^2) */
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
      acc[r][3] += vselect (lane_index () < width - c,
          row_term (squared, vload_first (rows + (size_t) r * ld + c, width - c), vmean[r]),
          splat (0));
#pragma GCC unroll 4
  for (int r = 0; r < R; r++)
    sums[r] = hsum ((acc[r][0] + acc[r][1]) + (acc[r][2] + acc[r][3]));
}

/* R rows of layernorm_rows. */
ALWAYS_INLINE void
layernorm_block (const int R, int width, int out_width, const float *x, int ldx,
    const float *weight, const float *bias, float eps, float *out, int ldout)
{
  const float zeros[LAYERNORM_ROWS] = { 0 };
  float sums[LAYERNORM_ROWS], means[LAYERNORM_ROWS], squares[LAYERNORM_ROWS];
  row_sums_of (R, false, x, ldx, width, zeros, sums);
#pragma GCC unroll 4
  for (int r = 0; r < R; r++)
    means[r] = sums[r] / width;
  /* Two passes: the residual stream can have a large mean relative to its spread. */
  row_sums_of (R, true, x, ldx, width, means, squares);
#pragma GCC unroll 4
  for (int r = 0; r < R; r++) {
    const float *row = x + (size_t) r * ldx; /* (width) */
    float *dst = out + (size_t) r * ldout;   /* (out_width) */
    const vf vmean = splat (means[r]), vrstd = splat (1.0f / sqrtf (squares[r] / width + eps));
    int c = 0;
    for (; c + LANES <= out_width; c += LANES)
      vstore (dst + c, (vload (row + c) - vmean) * vrstd * vload (weight + c) + vload (bias + c));
    if (c < out_width) {
      const int n = out_width - c;
      vf y = (vload_first (row + c, n) - vmean) * vrstd * vload_first (weight + c, n)
          + vload_first (bias + c, n);
      vstore_first (dst + c, y, n);
    }
  }
}

static void
layernorm_rows (int n_rows, int width, int out_width, const float *x, int ldx, const float *weight,
    const float *bias, float eps, float *out, int ldout)
{
  int r = 0;
  for (; r + LAYERNORM_ROWS <= n_rows; r += LAYERNORM_ROWS)
    layernorm_block (LAYERNORM_ROWS, width, out_width, x + (size_t) r * ldx, ldx, weight, bias, eps,
        out + (size_t) r * ldout, ldout);
  for (; r < n_rows; r++)
    layernorm_block (1, width, out_width, x + (size_t) r * ldx, ldx, weight, bias, eps,
        out + (size_t) r * ldout, ldout);
}

ALWAYS_INLINE float
row_max (const float *row, int n_cols)
{
  vf m = splat (-INFINITY);
  int c = 0;
  for (; c + LANES <= n_cols; c += LANES)
    m = vmax (m, vload (row + c));
  if (c < n_cols)
    m = vmax (m,
        vselect (lane_index () < n_cols - c, vload_first (row + c, n_cols - c), splat (-INFINITY)));
  return hmax (m);
}

static void
softmax_rows (int n_rows, int n_cols, float scale, float *x, int ld, float *inverse_sums)
{
  const vf vscale = splat (scale);
  for (int r = 0; r < n_rows; r++) {
    float *row = x + (size_t) r * ld; /* (n_cols) */
    /* softmax(scale s) = exp(scale (s - max)) / sum, for scale > 0. */
    const vf vmaxs = splat (row_max (row, n_cols));
    vf acc = splat (0);
    int c = 0;
    for (; c + LANES <= n_cols; c += LANES) {
      vf e = vexp ((vload (row + c) - vmaxs) * vscale);
      vstore (row + c, e);
      acc += e;
    }
    if (c < n_cols) {
      const int n = n_cols - c;
      vf e = vexp ((vload_first (row + c, n) - vmaxs) * vscale);
      e = vselect (lane_index () < n, e, splat (0));
      vstore_first (row + c, e, n);
      acc += e;
    }
    const float sum = hsum (acc);
    if (inverse_sums) {
      inverse_sums[r] = 1.0f / sum;
      continue;
    }
    const vf inv = splat (1.0f / sum);
    for (c = 0; c + LANES <= n_cols; c += LANES)
      vstore (row + c, vload (row + c) * inv);
    if (c < n_cols)
      vstore_first (row + c, vload_first (row + c, n_cols - c) * inv, n_cols - c);
  }
}

/* Exact-erf GELU, 0.5 v (1 + erf(v / sqrt 2)), the function the trainer uses. Error against
 * double-precision erf over every float input: at most 1.2e-6 absolute, and at most
 * 2.3e-7 max(1, |v|) (the absolute error peaks near |v| = 5.2, where it is two float ulps of v);
 * for |v| >= 5.6 the result is v or 0 exactly. tests/engine/test-kernels.c checks both bounds on
 * [-10, 10] in steps of 1e-4 and at the extremes of the float range, on every instruction set. */
ALWAYS_INLINE vf
vgelu (vf v, vf half_scale)
{
  /* scale GELU(v) = h + h erf(v / sqrt 2) with h = scale v / 2: the 1 / sqrt 2 lives in the
   * rational's coefficients and the scale in h, two multiplies fewer per vector. */
  const vf h = v * half_scale;
  return h + h * verf_rational (v, ERF_RATIONAL (1.41421356237309505));
}

static void
bias_gelu_scale_rows (int n_rows, int n_cols, float *x, int ld, const float *bias,
    const float *row_scale)
{
  for (int r = 0; r < n_rows; r++) {
    float *row = x + (size_t) r * ld; /* (n_cols) */
    const vf half_scale = splat (0.5f * (row_scale ? row_scale[r] : 1.0f));
    int c = 0;
    /* Four independent vectors per iteration: one GELU is a long dependency chain (a division and
     * two polynomials), and out-of-order execution alone overlaps too few of them. */
    for (; c + 4 * LANES <= n_cols; c += 4 * LANES) {
      vf a = vgelu (vload (row + c) + vload (bias + c), half_scale);
      vf b = vgelu (vload (row + c + LANES) + vload (bias + c + LANES), half_scale);
      vf d = vgelu (vload (row + c + 2 * LANES) + vload (bias + c + 2 * LANES), half_scale);
      vf e = vgelu (vload (row + c + 3 * LANES) + vload (bias + c + 3 * LANES), half_scale);
      vstore (row + c, a);
      vstore (row + c + LANES, b);
      vstore (row + c + 2 * LANES, d);
      vstore (row + c + 3 * LANES, e);
    }
    for (; c + LANES <= n_cols; c += LANES)
      vstore (row + c, vgelu (vload (row + c) + vload (bias + c), half_scale));
    if (c < n_cols) {
      const int n = n_cols - c;
      vstore_first (row + c,
          vgelu (vload_first (row + c, n) + vload_first (bias + c, n), half_scale), n);
    }
  }
}

/* One pass of the stem's first layer over output pixels [o, o_end) in blocks of P, for V whole
 * vectors of output channels from channel cv: three consecutive taps t0.. of input row ky. The
 * accumulators start at the bias on the first pass and at the partial sums in out after it, and
 * leave through GELU on the last. The three taps' weights stay in registers across the row; P x V
 * independent chains hide the FMAs' latency. Each output sums its bias and then its taps in
 * order, as stem_first_block does in one go. */
ALWAYS_INLINE void
stem_first_pass (const int P, const int V, int o, int o_end, int cv, int ky, int t0, bool first,
    bool last, int C_in, int C_out, const float *const padded_rows[3], const float *weights,
    const float *bias, float *out)
{
  const vf half = splat (0.5f);
  const float *w = weights + (size_t) (ky * 3 * C_in + t0) * C_out + cv;
  vf wt[3][2], b[2];
#pragma GCC unroll 2
  for (int v = 0; v < V; v++) {
#pragma GCC unroll 3
    for (int t = 0; t < 3; t++)
      wt[t][v] = vload (w + (size_t) t * C_out + v * LANES);
    b[v] = vload (bias + cv + v * LANES);
  }
  const float *x = padded_rows[ky] + t0;
  for (; o + P <= o_end; o += P) {
    vf acc[8][2];
#pragma GCC unroll 8
    for (int p = 0; p < P; p++)
#pragma GCC unroll 2
      for (int v = 0; v < V; v++)
        acc[p][v] = first ? b[v] : vload (out + (size_t) (o + p) * C_out + cv + v * LANES);
#pragma GCC unroll 3
    for (int t = 0; t < 3; t++)
#pragma GCC unroll 8
      for (int p = 0; p < P; p++) {
        const vf xp = splat (x[t + (size_t) 2 * (o + p) * C_in]);
#pragma GCC unroll 2
        for (int v = 0; v < V; v++)
          acc[p][v] += xp * wt[t][v];
      }
#pragma GCC unroll 8
    for (int p = 0; p < P; p++)
#pragma GCC unroll 2
      for (int v = 0; v < V; v++)
        vstore (out + (size_t) (o + p) * C_out + cv + v * LANES,
            last ? vgelu (acc[p][v], half) : acc[p][v]);
  }
}

/* The first n of LANES floats at p (all of them without a mask when n is LANES). */
ALWAYS_INLINE vf
vload_up_to (const float *p, int n)
{
  return n == LANES ? vload (p) : vload_first (p, n);
}

/* P consecutive output pixels from pixel o, by V vectors of output channels from channel cv, of the
 * stem's first layer, all taps at once: P x V independent chains (a chain per output, bias first,
 * then the taps in order); GELU in registers. For channel groups that end in a partial vector,
 * whose partial sums could not wait in out between passes without masked stores. */
ALWAYS_INLINE void
stem_first_block (const int P, const int V, int o, int cv, int C_in, int C_out,
    const float *const padded_rows[3], const float *weights, const float *bias, float *out)
{
  const vf half = splat (0.5f);
  const int taps = 3 * C_in; /* per input row */
  int lanes[2];
  vf acc[8][2];
#pragma GCC unroll 8
  for (int v = 0; v < V; v++) {
    lanes[v] = MIN (LANES, C_out - cv - v * LANES);
    const vf b = vload_up_to (bias + cv + v * LANES, lanes[v]);
#pragma GCC unroll 8
    for (int p = 0; p < P; p++)
      acc[p][v] = b;
  }
  for (int ky = 0; ky < 3; ky++) {
    const float *x = padded_rows[ky] + (size_t) 2 * o * C_in;
    const float *w = weights + (size_t) ky * taps * C_out + cv;
    for (int t = 0; t < taps; t++) {
      vf wt[2];
#pragma GCC unroll 8
      for (int v = 0; v < V; v++)
        wt[v] = vload_up_to (w + (size_t) t * C_out + v * LANES, lanes[v]);
#pragma GCC unroll 8
      for (int p = 0; p < P; p++) {
        const vf xp = splat (x[t + 2 * p * C_in]);
#pragma GCC unroll 8
        for (int v = 0; v < V; v++)
          acc[p][v] += xp * wt[v];
      }
    }
  }
#pragma GCC unroll 8
  for (int p = 0; p < P; p++)
#pragma GCC unroll 8
    for (int v = 0; v < V; v++)
      vstore_first (out + (size_t) (o + p) * C_out + cv + v * LANES, vgelu (acc[p][v], half),
          lanes[v]);
}

/* One output row of the stem's first layer (kernels.h), a group of one or two vectors of output
 * channels at a time, in blocks of eight chains (8 pixels by one vector, or 4 by two) and then
 * pixel by pixel. Groups of whole vectors go in passes of three taps over the row, so that each
 * tap's weights are loaded once per row instead of once per block and the loop over a block's
 * taps is short and unrolled; a group ending in a partial vector takes all taps per block. */
static void
stem_first_row (int n_out, int C_in, int C_out, const float *const padded_rows[3],
    const float *weights, const float *bias, float *out)
{
  const int taps = 3 * C_in; /* per input row, a multiple of 3 */
  for (int cv = 0; cv < C_out; cv += 2 * LANES) {
    const int left = C_out - cv;
    const int V = left > LANES ? 2 : 1, P = V == 2 ? 4 : 8;
    const int blocked = n_out - n_out % P;
    if (left % LANES != 0 && left < 2 * LANES) {
      for (int o = 0; o < blocked; o += P)
        if (V == 2)
          stem_first_block (4, 2, o, cv, C_in, C_out, padded_rows, weights, bias, out);
        else
          stem_first_block (8, 1, o, cv, C_in, C_out, padded_rows, weights, bias, out);
      for (int o = blocked; o < n_out; o++)
        for (int c = cv; c < C_out; c += LANES)
          stem_first_block (1, 1, o, c, C_in, C_out, padded_rows, weights, bias, out);
      continue;
    }
    for (int ky = 0; ky < 3; ky++)
      for (int t0 = 0; t0 < taps; t0 += 3) {
        const bool first = ky == 0 && t0 == 0, last = ky == 2 && t0 + 3 == taps;
#define PASS(p, v, begin, end)                                                                     \
  stem_first_pass (p, v, begin, end, cv, ky, t0, first, last, C_in, C_out, padded_rows, weights,   \
      bias, out)
        if (V == 2) {
          PASS (4, 2, 0, blocked);
          PASS (1, 2, blocked, n_out);
        } else {
          PASS (8, 1, 0, blocked);
          PASS (1, 1, blocked, n_out);
        }
#undef PASS
      }
  }
}

/* x[r, c] += row_scale[r] * bias[c] (one FMA where the build has them, simd.h). */
static void
scale_bias_add_rows (int n_rows, int n_cols, float *x, int ld, const float *bias,
    const float *row_scale)
{
  for (int r = 0; r < n_rows; r++) {
    float *row = x + (size_t) r * ld;
    const vf s = splat (row_scale[r]);
    int c = 0;
    for (; c + LANES <= n_cols; c += LANES)
      vstore (row + c, vload (row + c) + s * vload (bias + c));
    if (c < n_cols) {
      const int n = n_cols - c;
      vstore_first (row + c, vload_first (row + c, n) + s * vload_first (bias + c, n), n);
    }
  }
}

void KERNEL (mone_attention_block) (int n_queries, int n_keys, int head_dim, const float *q,
    const float *k, const float *v, int ld_qkv, float *out, int ld_out, float *scratch);

const MoneKernels KERNEL (mone_kernels) = {
  .layernorm_rows = layernorm_rows,
  .softmax_rows = softmax_rows,
  .bias_gelu_scale_rows = bias_gelu_scale_rows,
  .scale_bias_add_rows = scale_bias_add_rows,
  .exp_array = exp_array,
  .erf_array = erf_array,
  .gelu_cdf_array = gelu_cdf_array,
  .gelu_grad_array = gelu_grad_array,
  .normalize_rows = normalize_rows,
  .router_dot = router_dot,
  .stem_first_row = stem_first_row,
  .attention_block = KERNEL (mone_attention_block),
  .attention_query_granule = LANES,
/* OpenBLAS picks kernels for the CPU it runs on, wider than the generic build's 4-float vectors;
   * ours are faster only with AVX-512 and AVX2 (ViT-Ti attention shapes, docs/engine.md). */
#if defined(MONE_KERNEL_BUILD_GENERIC)
  .attention_prefers_sgemm = 1,
#endif
};
