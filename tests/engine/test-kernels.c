/* The vectorised element-wise kernels against libm and plain double-precision loops, including row
 * lengths that are not multiples of the vector width. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-kernels.h"

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

static unsigned state = 99;
static float
uniform (float lo, float hi)
{
  state = state * 1664525u + 1013904223u;
  return lo + (hi - lo) * (state >> 8) / 16777216.0f;
}

int
main (void)
{
  enum { N = 200001 };
  float *x = malloc (sizeof (float) * N), *y = malloc (sizeof (float) * N);

  /* erf: absolute error, over the whole line (saturation included). */
  for (int i = 0; i < N; i++)
    x[i] = -12.0f + 24.0f * i / (N - 1);
  mone_erf_array (N, x, y);
  double worst = 0;
  for (int i = 0; i < N; i++)
    worst = fmax (worst, fabs (y[i] - erf ((double) x[i])));
  CHECK (worst < 5e-7, "erf max abs error %.3g", worst);
  printf ("erf: max abs error %.2e\n", worst);

  /* exp: relative error where the result is a normal float. */
  for (int i = 0; i < N; i++)
    x[i] = -87.0f + 175.0f * i / (N - 1);
  mone_exp_array (N, x, y);
  worst = 0;
  for (int i = 0; i < N; i++) {
    double want = exp ((double) x[i]);
    if (want < 88.0 && x[i] <= 88.0f)
      worst = fmax (worst, fabs (y[i] - want) / want);
  }
  CHECK (worst < 5e-7, "exp max rel error %.3g", worst);
  printf ("exp: max rel error %.2e\n", worst);
  float big[3] = { -1000.0f, 0.0f, -INFINITY }, big_out[3];
  mone_exp_array (3, big, big_out);
  CHECK (big_out[0] >= 0 && big_out[0] < 1e-30f && big_out[1] == 1.0f && big_out[2] < 1e-30f,
      "exp extremes %g %g %g", big_out[0], big_out[1], big_out[2]);

  /* Row kernels at widths around the vector width and its multiples. */
  static const int widths[] = { 1, 3, 7, 8, 9, 16, 31, 33, 64, 100 };
  for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
    const int w = widths[wi], rows = 5, ld = w + 3;
    float *m = malloc (sizeof (float) * rows * ld), *orig = malloc (sizeof (float) * rows * ld);
    float *out = malloc (sizeof (float) * rows * ld), *gamma = malloc (sizeof (float) * w),
          *beta = malloc (sizeof (float) * w), *scale = malloc (sizeof (float) * rows);
    float inverse_sums[5];
    for (int i = 0; i < rows * ld; i++)
      orig[i] = m[i] = uniform (-6, 6) + 40.0f * (i % ld == 0); /* an outlier column */
    for (int c = 0; c < w; c++) {
      gamma[c] = uniform (0.5f, 1.5f);
      beta[c] = uniform (-0.5f, 0.5f);
    }
    for (int r = 0; r < rows; r++)
      scale[r] = uniform (0.5f, 2.0f);

    /* softmax, normalised and with deferred normalisation */
    for (int deferred = 0; deferred < 2; deferred++) {
      for (int i = 0; i < rows * ld; i++)
        m[i] = orig[i];
      mone_softmax_rows (rows, w, 0.7f, m, ld, deferred ? inverse_sums : NULL);
      for (int r = 0; r < rows; r++) {
        double max = -INFINITY, sum = 0;
        for (int c = 0; c < w; c++)
          max = fmax (max, orig[r * ld + c]);
        for (int c = 0; c < w; c++)
          sum += exp (0.7 * (orig[r * ld + c] - max));
        for (int c = 0; c < w; c++) {
          double want = exp (0.7 * (orig[r * ld + c] - max)) / sum;
          double got = m[r * ld + c] * (deferred ? inverse_sums[r] : 1.0f);
          CHECK (fabs (got - want) < 1e-6, "softmax w=%d deferred=%d [%d,%d] %g vs %g", w, deferred,
              r, c, got, want);
        }
        CHECK (m[r * ld + w] == orig[r * ld + w], "softmax wrote past its row");
      }
    }

    /* GELU with bias and row scale */
    for (int i = 0; i < rows * ld; i++)
      m[i] = orig[i];
    mone_bias_gelu_scale_rows (rows, w, m, ld, beta, scale);
    for (int r = 0; r < rows; r++) {
      for (int c = 0; c < w; c++) {
        double v = (double) orig[r * ld + c] + beta[c];
        double want = 0.5 * v * (1 + erf (v / sqrt (2.0))) * scale[r];
        CHECK (fabs (m[r * ld + c] - want) < 2e-6 * fmax (1, fabs (want)), "gelu w=%d %g vs %g", w,
            m[r * ld + c], want);
      }
      CHECK (m[r * ld + w] == orig[r * ld + w], "gelu wrote past its row");
    }

    /* LayerNorm over w columns writing only the leading out_w */
    const int out_w = (w + 1) / 2;
    for (int i = 0; i < rows * ld; i++)
      out[i] = -123.0f;
    mone_layernorm_rows (rows, w, out_w, orig, ld, gamma, beta, 1e-6f, out, ld);
    for (int r = 0; r < rows; r++) {
      double mean = 0, var = 0;
      for (int c = 0; c < w; c++)
        mean += orig[r * ld + c] / (double) w;
      for (int c = 0; c < w; c++)
        var += (orig[r * ld + c] - mean) * (orig[r * ld + c] - mean) / w;
      for (int c = 0; c < out_w; c++) {
        double want = (orig[r * ld + c] - mean) / sqrt (var + 1e-6) * gamma[c] + beta[c];
        CHECK (fabs (out[r * ld + c] - want) < 2e-5 * fmax (1, fabs (want)), "layernorm w=%d %g vs %g",
            w, out[r * ld + c], want);
      }
      for (int c = out_w; c < ld; c++)
        CHECK (out[r * ld + c] == -123.0f, "layernorm wrote column %d of %d", c, out_w);
    }
    free (m);
    free (orig);
    free (out);
    free (gamma);
    free (beta);
    free (scale);
  }
  /* Few-row product against double-precision dot products: every blocking edge (rows 1..9 around
   * the 4-row block, odd output counts, k below, at and off the 8-lane width), strided operands,
   * beta 0 over NaN garbage and beta 1 accumulating; columns past m must stay untouched. */
  {
    const int ks[] = { 1, 7, 8, 9, 24, 37, 192 }, ms[] = { 1, 2, 3, 5, 24, 31 };
    for (int n = 1; n <= 9; n++)
      for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
          for (int beta_one = 0; beta_one <= 1; beta_one++) {
            const int k = ks[ki], m = ms[mi], lda = k + 3, ldb = k + 5, ldc = m + 2;
            float *a = malloc (sizeof (float) * n * lda), *b = malloc (sizeof (float) * m * ldb);
            float *c = malloc (sizeof (float) * n * ldc), *before = malloc (sizeof (float) * n * ldc);
            for (int i = 0; i < n * lda; i++)
              a[i] = uniform (-1, 1);
            for (int i = 0; i < m * ldb; i++)
              b[i] = uniform (-1, 1);
            for (int i = 0; i < n * ldc; i++)
              c[i] = beta_one ? uniform (0, 1) : NAN;
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
  free (x);
  free (y);
  if (failures)
    fprintf (stderr, "%d checks failed\n", failures);
  else
    printf ("kernels: all checks passed\n");
  return failures ? 1 : 0;
}
