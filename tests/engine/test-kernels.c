/* The vector kernels against libm and plain double-precision loops, on every instruction set this
 * machine can run (kernels.h): erf, exp, GELU (dense sweep plus extremes), softmax (with -inf
 * masking), LayerNorm (large and small magnitudes), pixel normalisation, attention (own micro-kernels and the sgemm
 * path), at lengths that are not multiples of any vector width. Then the few-row product. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-check.h"
#include "attention.h"
#include "engine-kernels.h"
#include "kernels.h"

static const char *isa_label;

/* GELU error bounds over all float inputs, as stated in vector-kernels.c: absolute, and relative
 * to max(1, |x|) (the absolute error peaks near |x| = 5.3, where it is two float ulps of x). */
#define GELU_MAX_ABS_ERROR 1.2e-6
#define GELU_MAX_SCALED_ERROR 2.5e-7

static double
gelu_reference (double v)
{
  return 0.5 * v * (1 + erf (v / sqrt (2.0)));
}

static void
test_erf_exp (const MoneKernels *kernels)
{
  enum { N = 200001 };
  float *x = malloc (sizeof (float) * N), *y = malloc (sizeof (float) * N);
  /* erf: absolute error, over the whole line (saturation included). */
  for (int i = 0; i < N; i++)
    x[i] = -12.0f + 24.0f * i / (N - 1);
  kernels->erf_array (N, x, y);
  double worst = 0;
  for (int i = 0; i < N; i++)
    worst = fmax (worst, fabs (y[i] - erf ((double) x[i])));
  CHECK (worst < 5e-7, "%s erf max abs error %.3g", isa_label, worst);
  printf ("%-8s erf: max abs error %.2e\n", isa_label, worst);

  /* exp: relative error where the result is a normal float. */
  for (int i = 0; i < N; i++)
    x[i] = -87.0f + 175.0f * i / (N - 1);
  kernels->exp_array (N - 3, x, y); /* an odd length: the tail goes through the masked path */
  worst = 0;
  for (int i = 0; i < N - 3; i++) {
    double want = exp ((double) x[i]);
    if (want < 88.0 && x[i] <= 88.0f)
      worst = fmax (worst, fabs (y[i] - want) / want);
  }
  CHECK (worst < 5e-7, "%s exp max rel error %.3g", isa_label, worst);
  printf ("%-8s exp: max rel error %.2e\n", isa_label, worst);
  float big[3] = { -1000.0f, 0.0f, -INFINITY }, big_out[4] = { 0, 0, 0, 42.0f };
  kernels->exp_array (3, big, big_out);
  CHECK (big_out[0] >= 0 && big_out[0] < 1e-30f && big_out[1] == 1.0f && big_out[2] < 1e-30f
          && big_out[3] == 42.0f,
      "%s exp extremes %g %g %g %g", isa_label, big_out[0], big_out[1], big_out[2], big_out[3]);
  free (x);
  free (y);
}

/* The trainer's GELU forward (cdf and output) and backward against double precision on
 * [-12, 12], an odd length so that the tail takes the masked path, nothing written past it. */
static void
test_trainer_gelu (const MoneKernels *kernels)
{
  enum { N = 100003 };
  float *x = malloc (sizeof (float) * (N + 1)), *out = malloc (sizeof (float) * (N + 1));
  float *cdf = malloc (sizeof (float) * (N + 1)), *dout = malloc (sizeof (float) * N);
  float *din = malloc (sizeof (float) * (N + 1));
  for (int i = 0; i < N; i++) {
    x[i] = -12.0f + 24.0f * i / (N - 1);
    dout[i] = 1.0f - 2.0f * (i % 7) / 6.0f;
  }
  out[N] = cdf[N] = din[N] = 42.0f;
  kernels->gelu_cdf_array (N, x, out, cdf);
  kernels->gelu_grad_array (N, dout, x, cdf, din);
  double worst_cdf = 0, worst_out = 0, worst_grad = 0;
  for (int i = 0; i < N; i++) {
    const double v = x[i], phi = 0.5 * (1 + erf (v / sqrt (2.0)));
    const double grad = dout[i] * (phi + v * exp (-0.5 * v * v) / sqrt (2 * M_PI));
    worst_cdf = fmax (worst_cdf, fabs (cdf[i] - phi));
    worst_out = fmax (worst_out, fabs (out[i] - v * phi) / fmax (1.0, fabs (v)));
    worst_grad = fmax (worst_grad, fabs (din[i] - grad) / fmax (1.0, fabs (dout[i])));
  }
  CHECK (worst_cdf < 5e-7 && worst_out < 5e-7 && worst_grad < 1e-6,
      "%s trainer gelu: cdf %.3g, output %.3g, gradient %.3g", isa_label, worst_cdf, worst_out,
      worst_grad);
  CHECK (out[N] == 42.0f && cdf[N] == 42.0f && din[N] == 42.0f, "%s trainer gelu wrote past n",
      isa_label);
  printf ("%-8s trainer gelu: max error cdf %.2e, output %.2e, gradient %.2e\n", isa_label,
      worst_cdf, worst_out, worst_grad);
  free (x);
  free (out);
  free (cdf);
  free (dout);
  free (din);
}

/* GELU over [-10, 10] in steps of 1e-4 and the extremes of the float range, as one long row (its
 * tail is not a whole vector) with zero bias and no row scale. */
static void
test_gelu_error_bound (const MoneKernels *kernels)
{
  static const float extremes[] = { 0.0f, -0.0f, FLT_MIN, -FLT_MIN, 1e-40f, -1e-40f, 5.5f, -5.5f,
    5.7f, -5.7f, 30.0f, -30.0f, 1e4f, -1e4f, 1e30f, -1e30f, FLT_MAX, -FLT_MAX };
  const int n_grid = 200001, n_extremes = G_N_ELEMENTS (extremes), n = n_grid + n_extremes;
  float *x = malloc (sizeof (float) * n), *y = malloc (sizeof (float) * n);
  float *bias = calloc (n, sizeof (float));
  for (int i = 0; i < n_grid; i++)
    x[i] = (float) (-10.0 + 1e-4 * i);
  memcpy (x + n_grid, extremes, sizeof extremes);
  memcpy (y, x, sizeof (float) * n);
  kernels->bias_gelu_scale_rows (1, n, y, n, bias, NULL);
  double worst = 0, worst_scaled = 0;
  float worst_at = 0;
  for (int i = 0; i < n; i++) {
    const double error = fabs (y[i] - gelu_reference (x[i]));
    worst_scaled = fmax (worst_scaled, error / fmax (1, fabs (x[i])));
    if (error > worst) {
      worst = error;
      worst_at = x[i];
    }
    /* Past |x| = 5.6 the float result is x or 0 exactly. */
    if (fabs (x[i]) > 5.6)
      CHECK (y[i] == (x[i] > 0 ? x[i] : 0.0f), "%s gelu(%g) = %g", isa_label, x[i], y[i]);
  }
  CHECK (worst <= GELU_MAX_ABS_ERROR, "%s gelu max abs error %.3g at %g", isa_label, worst,
      worst_at);
  CHECK (worst_scaled <= GELU_MAX_SCALED_ERROR, "%s gelu max error / max(1, |x|) %.3g", isa_label,
      worst_scaled);
  printf ("%-8s gelu: max abs error %.2e (at %g), max error / max(1, |x|) %.2e over [-10, 10] "
          "and extremes\n",
      isa_label, worst, worst_at, worst_scaled);
  free (x);
  free (y);
  free (bias);
}

/* softmax, normalised and with deferred normalisation; some rows masked with -inf. */
static void
check_softmax (const MoneKernels *kernels, int w, int rows, int ld, const float *orig, float *m)
{
  float inverse_sums[8];
  for (int deferred = 0; deferred < 2; deferred++) {
    memcpy (m, orig, sizeof (float) * rows * ld);
    kernels->softmax_rows (rows, w, 0.7f, m, ld, deferred ? inverse_sums : NULL);
    for (int r = 0; r < rows; r++) {
      double max = -INFINITY, sum = 0;
      for (int c = 0; c < w; c++)
        max = fmax (max, orig[r * ld + c]);
      for (int c = 0; c < w; c++)
        sum += exp (0.7 * (orig[r * ld + c] - max));
      for (int c = 0; c < w; c++) {
        double want = exp (0.7 * (orig[r * ld + c] - max)) / sum;
        double got = m[r * ld + c] * (deferred ? inverse_sums[r] : 1.0f);
        CHECK (fabs (got - want) < 1e-6, "%s softmax w=%d deferred=%d [%d,%d] %g vs %g", isa_label,
            w, deferred, r, c, got, want);
      }
      CHECK (m[r * ld + w] == orig[r * ld + w], "%s softmax wrote past its row", isa_label);
    }
  }
}

static void
check_gelu_rows (const MoneKernels *kernels, int w, int rows, int ld, const float *orig, float *m,
    const float *bias, const float *scale)
{
  memcpy (m, orig, sizeof (float) * rows * ld);
  kernels->bias_gelu_scale_rows (rows, w, m, ld, bias, scale);
  for (int r = 0; r < rows; r++) {
    for (int c = 0; c < w; c++) {
      double want = gelu_reference ((double) orig[r * ld + c] + bias[c]) * scale[r];
      CHECK (fabs (m[r * ld + c] - want) < 2e-6 * fmax (1, fabs (want)), "%s gelu w=%d %g vs %g",
          isa_label, w, m[r * ld + c], want);
    }
    CHECK (m[r * ld + w] == orig[r * ld + w], "%s gelu wrote past its row", isa_label);
  }
}

/* LayerNorm over w columns writing only the leading out_w, rows with an offset far larger than
 * their spread (large), and with a tiny spread (small). */
static void
check_layernorm (const MoneKernels *kernels, int w, int rows, int ld, const float *orig, float *out,
    const float *gamma, const float *beta, float offset, float spread)
{
  float *x = malloc (sizeof (float) * rows * ld);
  for (int i = 0; i < rows * ld; i++)
    x[i] = offset + spread * orig[i];
  const int out_w = (w + 1) / 2;
  for (int i = 0; i < rows * ld; i++)
    out[i] = -123.0f;
  kernels->layernorm_rows (rows, w, out_w, x, ld, gamma, beta, 1e-6f, out, ld);
  for (int r = 0; r < rows; r++) {
    double mean = 0, var = 0;
    for (int c = 0; c < w; c++)
      mean += x[r * ld + c] / (double) w;
    for (int c = 0; c < w; c++)
      var += (x[r * ld + c] - mean) * (x[r * ld + c] - mean) / w;
    for (int c = 0; c < out_w; c++) {
      double want = (x[r * ld + c] - mean) / sqrt (var + 1e-6) * gamma[c] + beta[c];
      /* float input offset by |offset|: its rounding (ulp(offset) / spread) is the floor. */
      double tolerance = 2e-5 + 4 * fabs (offset) * FLT_EPSILON / fmax (spread, 1e-3);
      CHECK (fabs (out[r * ld + c] - want) < tolerance * fmax (1, fabs (want)),
          "%s layernorm w=%d offset=%g spread=%g %g vs %g", isa_label, w, offset, spread,
          out[r * ld + c], want);
    }
    for (int c = out_w; c < ld; c++)
      CHECK (out[r * ld + c] == -123.0f, "%s layernorm wrote column %d of %d", isa_label, c, out_w);
  }
  free (x);
}

/* Row kernels at widths around every vector width and its multiples. */
static void
test_row_kernels (const MoneKernels *kernels)
{
  static const int widths[] = { 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 192, 197 };
  for (size_t wi = 0; wi < G_N_ELEMENTS (widths); wi++) {
    const int w = widths[wi], rows = 5, ld = w + 3;
    float *m = malloc (sizeof (float) * rows * ld), *orig = malloc (sizeof (float) * rows * ld);
    float *out = malloc (sizeof (float) * rows * ld), *gamma = malloc (sizeof (float) * w),
          *beta = malloc (sizeof (float) * w), *scale = malloc (sizeof (float) * rows);
    for (int i = 0; i < rows * ld; i++)
      orig[i] = check_uniform (-6, 6) + 40.0f * (i % ld == 0); /* an outlier column */
    for (int c = 0; c < w; c++) {
      gamma[c] = check_uniform (0.5f, 1.5f);
      beta[c] = check_uniform (-0.5f, 0.5f);
    }
    for (int r = 0; r < rows; r++)
      scale[r] = check_uniform (0.5f, 2.0f);

    check_softmax (kernels, w, rows, ld, orig, m);
    /* Masking: -inf scores (all but column 0 of row 1, every other column of row 2) get 0. */
    for (int c = 1; c < w; c++) {
      orig[1 * ld + c] = -INFINITY;
      if (c % 2)
        orig[2 * ld + c] = -INFINITY;
    }
    /* ...and large magnitudes in row 3. */
    for (int c = 0; c < w; c++)
      orig[3 * ld + c] *= 100.0f;
    check_softmax (kernels, w, rows, ld, orig, m);
    for (int i = 0; i < rows * ld; i++)
      orig[i] = check_uniform (-6, 6);

    check_gelu_rows (kernels, w, rows, ld, orig, m, beta, scale);
    /* Pixel normalisation: the same two float operations as a scalar loop, rows of w at a stride
     * of ld, nothing between or past them. */
    for (int i = 0; i < rows * ld; i++)
      m[i] = 55.0f;
    kernels->normalize_rows (rows, w, orig, ld, 0.45f, 1.0f / 0.226f, m, ld);
    for (int r = 0; r < rows; r++)
      for (int c = 0; c < ld; c++) {
        const float want = c < w ? (orig[r * ld + c] - 0.45f) * (1.0f / 0.226f) : 55.0f;
        CHECK (m[r * ld + c] == want, "%s normalize w=%d [%d, %d] %g", isa_label, w, r, c,
            m[r * ld + c]);
      }
    /* Gated bias: one rounding per multiply and add, or one for both where the build contracts
     * them into an FMA (every path but the generic one, simd.h); nothing past w in any row. */
    const gboolean fused = kernels != mone_kernels_for_isa (MONE_ISA_GENERIC);
    for (int i = 0; i < rows * ld; i++)
      m[i] = orig[i];
    kernels->scale_bias_add_rows (rows, w, m, ld, beta, scale);
    for (int r = 0; r < rows; r++) {
      for (int c = 0; c < w; c++) {
        const float want = fused ? fmaf (scale[r], beta[c], orig[r * ld + c]) : orig[r * ld + c] + scale[r] * beta[c];
        CHECK (m[r * ld + c] == want, "%s scale_bias_add w=%d [%d, %d] %g, want %g", isa_label, w, r, c,
            m[r * ld + c], want);
      }
      for (int c = w; c < ld && r < rows - 1; c++)
        CHECK (m[r * ld + c] == orig[r * ld + c], "%s scale_bias_add wrote past row %d", isa_label, r);
    }
    check_layernorm (kernels, w, rows, ld, orig, out, gamma, beta, 0.0f, 1.0f);
    check_layernorm (kernels, w, rows, ld, orig, out, gamma, beta, 3e3f, 1.0f);
    check_layernorm (kernels, w, rows, ld, orig, out, gamma, beta, 0.0f, 1e-3f);
    check_layernorm (kernels, w, rows, ld, orig, out, gamma, beta, 0.0f, 1e3f);
    free (m);
    free (orig);
    free (out);
    free (gamma);
    free (beta);
    free (scale);
  }
}

/* One head's attention against a double-precision loop: q, k, v interleaved in (n, 3 * width)
 * rows at a head offset, output rows strided, guard values around the output left alone. */
static void
check_attention (const MoneKernels *kernels, gboolean sgemm, int n_queries, int n_keys,
    int head_dim, float score_scale)
{
  const int width = 2 * head_dim + 3, ld_qkv = 3 * width, offset = head_dim + 1;
  const int ld_out = head_dim + 5;
  const int n = MAX (n_queries, n_keys);
  float *qkv = malloc (sizeof (float) * n * ld_qkv);
  float *out = malloc (sizeof (float) * n_queries * ld_out);
  float *scratch = malloc (sizeof (float) * mone_attention_scratch_floats (n_keys, head_dim));
  double *p = malloc (sizeof (double) * n_keys);
  for (int i = 0; i < n * ld_qkv; i++)
    qkv[i] = check_uniform (-1, 1) * score_scale;
  for (int i = 0; i < n_queries * ld_out; i++)
    out[i] = 777.0f;
  const float *q = qkv + offset, *k = qkv + width + offset, *v = qkv + 2 * width + offset;
  if (sgemm)
    mone_attention_block_sgemm (kernels, n_queries, n_keys, head_dim, q, k, v, ld_qkv, out, ld_out,
        scratch);
  else
    kernels->attention_block (n_queries, n_keys, head_dim, q, k, v, ld_qkv, out, ld_out, scratch);
  double worst = 0;
  for (int i = 0; i < n_queries; i++) {
    double max = -INFINITY, sum = 0;
    for (int j = 0; j < n_keys; j++) {
      double dot = 0;
      for (int d = 0; d < head_dim; d++)
        dot += (double) q[(size_t) i * ld_qkv + d] * k[(size_t) j * ld_qkv + d];
      p[j] = dot / sqrt ((double) head_dim);
      max = fmax (max, p[j]);
    }
    for (int j = 0; j < n_keys; j++)
      sum += (p[j] = exp (p[j] - max));
    for (int d = 0; d < head_dim; d++) {
      double want = 0;
      for (int j = 0; j < n_keys; j++)
        want += p[j] / sum * v[(size_t) j * ld_qkv + d];
      worst = fmax (worst, fabs (out[(size_t) i * ld_out + d] - want) / score_scale);
    }
    for (int d = head_dim; d < ld_out; d++)
      CHECK (out[(size_t) i * ld_out + d] == 777.0f, "%s attention wrote past head_dim", isa_label);
  }
  /* Relative to the scale of v; the scores' rounding grows with their magnitude (score_scale^2). */
  const double tolerance = 2e-6 * fmax (1, score_scale * score_scale);
  CHECK (worst <= tolerance, "%s attention%s nq=%d nk=%d hd=%d scale=%g: error %.3g", isa_label,
      sgemm ? " (sgemm)" : "", n_queries, n_keys, head_dim, score_scale, worst);
  free (qkv);
  free (out);
  free (scratch);
  free (p);
}

static void
test_attention (const MoneKernels *kernels)
{
  static const int queries[] = { 1, 3, 4, 7, 15, 16, 17, 31, 32, 33, 47, 64 };
  static const int keys[] = { 1, 5, 17, 64, 65, 128, 197 };
  static const int head_dims[] = { 3, 8, 12, 16, 20, 24, 32, 48, 64, 72 };
  for (size_t qi = 0; qi < G_N_ELEMENTS (queries); qi++)
    for (size_t ki = 0; ki < G_N_ELEMENTS (keys); ki++)
      for (size_t hi = 0; hi < G_N_ELEMENTS (head_dims); hi++)
        for (int sgemm = 0; sgemm < 2; sgemm++)
          check_attention (kernels, sgemm, queries[qi], keys[ki], head_dims[hi], 1.0f);
  /* Peaked softmax: scores up to about +-100. */
  check_attention (kernels, FALSE, 64, 197, 64, 3.0f);
  check_attention (kernels, FALSE, 33, 50, 20, 4.0f);
  check_attention (kernels, TRUE, 64, 197, 64, 3.0f);
}

static void
test_few_rows (void)
{
  /* Few-row product against double-precision dot products: every blocking edge (rows 1..9 around
   * the 4-row block, odd output counts, k below, at and off the 8-lane width), strided operands,
   * beta 0 over NaN garbage and beta 1 accumulating; columns past m must stay untouched. */
  const int ks[] = { 1, 7, 8, 9, 24, 37, 192 }, ms[] = { 1, 2, 3, 5, 24, 31 };
  for (int n = 1; n <= 9; n++)
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
      for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
        for (int beta_one = 0; beta_one <= 1; beta_one++) {
          const int k = ks[ki], m = ms[mi], lda = k + 3, ldb = k + 5, ldc = m + 2;
          float *a = malloc (sizeof (float) * n * lda), *b = malloc (sizeof (float) * m * ldb);
          float *c = malloc (sizeof (float) * n * ldc), *before = malloc (sizeof (float) * n * ldc);
          for (int i = 0; i < n * lda; i++)
            a[i] = check_uniform (-1, 1);
          for (int i = 0; i < m * ldb; i++)
            b[i] = check_uniform (-1, 1);
          for (int i = 0; i < n * ldc; i++)
            c[i] = beta_one ? check_uniform (0, 1) : NAN;
          memcpy (before, c, sizeof (float) * n * ldc);
          mone_gemm_nt_few_rows (n, m, k, a, lda, b, ldb, beta_one ? 1.0f : 0.0f, c, ldc);
          for (int r = 0; r < n; r++) {
            for (int o = 0; o < m; o++) {
              double want = beta_one ? before[r * ldc + o] : 0, magnitude = fabs (want);
              for (int i = 0; i < k; i++) {
                want += (double) a[r * lda + i] * b[o * ldb + i];
                magnitude += fabs ((double) a[r * lda + i] * b[o * ldb + i]);
              }
              CHECK (fabs (c[r * ldc + o] - want) <= 1e-6 * magnitude + 1e-7,
                  "few-rows n=%d m=%d k=%d beta=%d [%d,%d] %g vs %g", n, m, k, beta_one, r, o,
                  c[r * ldc + o], want);
            }
            for (int o = m; o < ldc; o++)
              CHECK (memcmp (&c[r * ldc + o], &before[r * ldc + o], sizeof (float)) == 0,
                  "few-rows wrote column %d past m=%d", o, m);
          }
          free (a);
          free (b);
          free (c);
          free (before);
        }
}

/* The router's dot product: the documented order written out in scalar double, bit for bit, on
 * lengths with and without a tail past the last multiple of 8 (and a mutation that drops a lane
 * or a product fails here). */
static void
test_router_dot (const MoneKernels *kernels)
{
  const int lengths[] = { 0, 1, 7, 8, 13, 64, 192, 203 };
  float a[203], b[203];
  for (int i = 0; i < 203; i++) {
    a[i] = check_uniform (-2, 2);
    b[i] = check_uniform (-2, 2) * (i % 5 == 0 ? 1e4f : 1.0f); /* magnitudes where order matters */
  }
  for (size_t li = 0; li < G_N_ELEMENTS (lengths); li++) {
    const int n = lengths[li], whole = n / 8 * 8;
    double lanes[8] = { 0 }, want = 0.375;
    for (int d = 0; d < whole; d++)
      lanes[d % 8] += (double) a[d] * b[d];
    for (int d = whole; d < n; d++)
      want += (double) a[d] * b[d];
    for (int k = 0; k < 8; k++)
      want += lanes[k];
    const double got = kernels->router_dot (a, b, n, 0.375);
    CHECK (memcmp (&got, &want, sizeof got) == 0, "%s router_dot n=%d: %.17g, want %.17g",
        isa_label, n, got, want);
  }
}

/* Every kernel of one instruction set against its reference; skipped where the CPU lacks it. */
static void
test_isa (gconstpointer data)
{
  const MoneIsa isa = (MoneIsa) GPOINTER_TO_INT (data);
  const MoneKernels *kernels = mone_kernels_for_isa (isa);
  /* The portable path exists everywhere: only the vector paths may be missing. */
  if (!kernels && isa == MONE_ISA_GENERIC) {
    g_test_fail_printf ("no generic kernels");
    return;
  }
  if (!kernels) {
    g_test_skip_printf ("%s is not supported on this CPU", mone_isa_name (isa));
    return;
  }
  isa_label = mone_isa_name (isa);
  test_erf_exp (kernels);
  test_trainer_gelu (kernels);
  test_gelu_error_bound (kernels);
  test_row_kernels (kernels);
  test_attention (kernels);
  test_router_dot (kernels);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  uniform_state = 99; /* the inputs this test was written with */
  for (MoneIsa isa = MONE_ISA_GENERIC; isa <= MONE_ISA_AVX512; isa++) {
    g_autofree char *path = g_strdup_printf ("/kernels/%s", mone_isa_name (isa));
    g_test_add_data_func (path, GINT_TO_POINTER (isa), test_isa);
  }
  g_test_add_func ("/kernels/few-rows", test_few_rows);
  return g_test_run ();
}
