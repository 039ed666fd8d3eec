/* The packed-weight kernels (gemm.h), every one this CPU runs, against a plain double-precision
 * triple loop: random shapes with row, input and output counts that are not multiples of the
 * register blocks, nested prefixes (the first k inputs, the first n outputs) of one packed
 * matrix, bias and accumulation; products whose rows' inputs lie in runs (the stem's windows read
 * in place). Also: the FMA kernels agree bit for bit with each other, and a product does not
 * depend on how its rows are split into calls. The general products of the
 * trainer (mone_gemm_general: either operand transposed, scaled, chunked) on every path, OpenBLAS
 * included. */
#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-check.h"
#include "gemm.h"

static float *
random_floats (size_t n)
{
  float *x = g_new (float, n);
  for (size_t i = 0; i < n; i++)
    x[i] = check_uniform (-1, 1);
  return x;
}

/* want (rows, n) = a (rows, k) w[:n, :k]^T + bias + (accumulate ? c0 : 0), in double; also the
 * scale sum |a||w| per element for the error bound. */
static void
reference (int rows, int n, int k, const float *a, int lda, const float *w, int ldw,
    const float *bias, const float *c0, int ldc, double *want, double *scale)
{
  for (int r = 0; r < rows; r++)
    for (int o = 0; o < n; o++) {
      double sum = 0, abs_sum = 0;
      for (int i = 0; i < k; i++) {
        sum += (double) a[(size_t) r * lda + i] * w[(size_t) o * ldw + i];
        abs_sum += fabs ((double) a[(size_t) r * lda + i] * w[(size_t) o * ldw + i]);
      }
      if (bias)
        sum += bias[o];
      if (c0)
        sum += c0[(size_t) r * ldc + o];
      want[(size_t) r * n + o] = sum;
      scale[(size_t) r * n + o] = abs_sum + 1;
    }
}

/* The worst error of c (rows, n; row stride ldc) against want (rows, n), relative to scale; INFINITY
 * if a column past n differs from c0, which the product must leave alone. */
static double
worst_error (int rows, int n, const float *c, const float *c0, int ldc, const double *want,
    const double *scale)
{
  double worst = 0;
  for (int r = 0; r < rows; r++) {
    for (int o = 0; o < n; o++)
      worst = fmax (worst,
          fabs (c[(size_t) r * ldc + o] - want[(size_t) r * n + o]) / scale[(size_t) r * n + o]);
    for (int o = n; o < ldc; o++)
      if (c[(size_t) r * ldc + o] != c0[(size_t) r * ldc + o])
        worst = INFINITY;
  }
  return worst;
}

typedef struct {
  int rows, outputs, inputs; /* the packed matrix is (outputs, inputs) */
  int n, k;                  /* the product uses its first n outputs and first k inputs */
  gboolean bias, accumulate;
} Case;

/* Runs one case on one kernel; returns the worst error relative to sum |a w| + 1, and leaves the
 * output in c_out (rows, ldc) for cross-kernel comparison. */
static double
run_case (MoneIsa isa, const Case *t, const float *w, const float *panels, const float *a,
    const float *bias, const float *c0, float *c_out, int ldc)
{
  const int lda = t->inputs + 3; /* row strides wider than the product, as in the forward pass */
  MonePackedMatrix packed = { panels, t->outputs, t->inputs };
  memcpy (c_out, c0, sizeof (float) * t->rows * ldc);
  mone_gemm_packed (isa, t->rows, t->n, t->k, a, lda, &packed, t->bias ? bias : NULL, t->accumulate,
      c_out, ldc);

  double *want = g_new (double, (size_t) t->rows * t->n);
  double *scale = g_new (double, (size_t) t->rows * t->n);
  reference (t->rows, t->n, t->k, a, lda, w, t->inputs, t->bias ? bias : NULL,
      t->accumulate ? c0 : NULL, ldc, want, scale);
  const double worst = worst_error (t->rows, t->n, c_out, c0, ldc, want, scale);
  g_free (want);
  g_free (scale);
  return worst;
}

static void
check_case (const Case *t)
{
  const int lda = t->inputs + 3, ldc = t->outputs + 5;
  float *w = random_floats ((size_t) t->outputs * t->inputs);
  float *panels = g_aligned_alloc (mone_packed_size (t->outputs, t->inputs), sizeof (float), 64);
  mone_pack_weights (t->outputs, t->inputs, w, t->inputs, panels);
  float *a = random_floats ((size_t) t->rows * lda + 1);
  float *bias = random_floats (t->outputs);
  float *c0 = random_floats ((size_t) t->rows * ldc + 1);
  float *c[MONE_ISA_COUNT];
  for (int isa = 0; isa < MONE_ISA_OPENBLAS; isa++) {
    c[isa] = g_new (float, (size_t) t->rows *ldc + 1);
    if (!mone_isa_supported (isa))
      continue;
    double err = run_case (isa, t, w, panels, a, bias, c0, c[isa], ldc);
    CHECK (err < 1e-6, "%s rows %d, W (%d, %d), n %d, k %d, bias %d, accumulate %d: error %.3g",
        mone_isa_name (isa), t->rows, t->outputs, t->inputs, t->n, t->k, t->bias, t->accumulate,
        err);
  }
  if (mone_isa_supported (MONE_ISA_AVX512) && mone_isa_supported (MONE_ISA_AVX2))
    CHECK (memcmp (c[MONE_ISA_AVX2], c[MONE_ISA_AVX512], sizeof (float) * t->rows * ldc) == 0,
        "avx2 and avx512 differ: rows %d, n %d, k %d", t->rows, t->n, t->k);

  /* Split the rows into two calls at an odd place: the same bits. */
  for (int isa = 0; isa < MONE_ISA_OPENBLAS && t->rows > 1; isa++) {
    if (!mone_isa_supported (isa))
      continue;
    MonePackedMatrix packed = { panels, t->outputs, t->inputs };
    float *split = g_new (float, (size_t) t->rows *ldc + 1);
    memcpy (split, c0, sizeof (float) * t->rows * ldc);
    const int first = t->rows / 2 | 1;
    mone_gemm_packed (isa, first, t->n, t->k, a, lda, &packed, t->bias ? bias : NULL, t->accumulate,
        split, ldc);
    mone_gemm_packed (isa, t->rows - first, t->n, t->k, a + (size_t) first * lda, lda, &packed,
        t->bias ? bias : NULL, t->accumulate, split + (size_t) first * ldc, ldc);
    CHECK (memcmp (split, c[isa], sizeof (float) * t->rows * ldc) == 0,
        "%s: rows split %d + %d differ from one call", mone_isa_name (isa), first, t->rows - first);
    g_free (split);
  }
  for (int isa = 0; isa < MONE_ISA_OPENBLAS; isa++)
    g_free (c[isa]);
  g_free (w);
  g_aligned_free (panels);
  g_free (a);
  g_free (bias);
  g_free (c0);
}

/* Shapes of the forward pass: QKV and fc1 read the first d_j inputs, proj and fc2 write the
 * first d_j outputs (D 192, d_j = 24..192; D 64, d_j = 8..64). */
static void
test_model_shapes (void)
{
  const Case fixed[] = {
    { 196, 576, 192, 576, 192, TRUE, FALSE },
    { 6, 576, 192, 576, 24, TRUE, FALSE },
    { 37, 768, 192, 768, 48, FALSE, FALSE },
    { 15, 192, 768, 24, 768, FALSE, TRUE },
    { 29, 192, 192, 96, 192, TRUE, TRUE },
    { 1, 64, 256, 8, 256, FALSE, TRUE },
    { 13, 192, 64, 192, 8, TRUE, FALSE },
    { 14, 32, 32, 32, 32, FALSE, FALSE },
    { 28, 48, 48, 48, 48, TRUE, TRUE },
    { 3, 17, 5, 17, 5, TRUE, TRUE },
    { 5, 7, 1, 7, 1, FALSE, FALSE },
    { 2, 33, 7, 1, 0, TRUE, TRUE },
    /* Few rows across more than one group of wide blocks (AVX-512: up to 8 panels at a time). */
    { 2, 576, 192, 576, 192, TRUE, FALSE },
    { 3, 256, 64, 256, 8, FALSE, TRUE },
    { 17, 300, 40, 300, 40, TRUE, TRUE },
    { 1, 200, 31, 136, 31, TRUE, FALSE },
    /* A whole panel and a partial one last (17-24 outputs: the second panel's pair copy; 40:
     * the half-panel blocks), ragged, after other panels, with k past the short-k path. */
    { 6, 40, 100, 20, 100, TRUE, FALSE },
    { 11, 24, 192, 24, 192, TRUE, TRUE },
    { 5, 48, 64, 40, 64, FALSE, TRUE },
    { 23, 30, 70, 17, 70, TRUE, TRUE },
    /* ... with an odd k short of the inputs (the pair copy's last input alone), k = 1 and 0. */
    { 9, 40, 37, 24, 35, TRUE, TRUE },
    { 15, 24, 5, 21, 1, FALSE, TRUE },
    { 3, 24, 8, 18, 0, TRUE, FALSE },
    /* At most 8 outputs (the pair kernels): the narrowest scene expert's proj and fc2, odd and
     * zero k, at most 4 outputs (AVX2's half pair block), row counts around both kernels' blocks. */
    { 31, 64, 64, 8, 64, TRUE, TRUE },
    { 31, 64, 256, 8, 256, FALSE, TRUE },
    { 20, 64, 63, 8, 63, TRUE, FALSE },
    { 15, 8, 9, 8, 9, TRUE, TRUE },
    { 7, 5, 1, 5, 1, FALSE, TRUE },
    { 6, 12, 10, 3, 7, TRUE, TRUE },
    { 13, 9, 40, 4, 0, TRUE, TRUE },
    { 29, 6, 301, 6, 301, FALSE, FALSE },
  };
  for (size_t i = 0; i < G_N_ELEMENTS (fixed); i++)
    check_case (&fixed[i]);
}

static void
test_random_shapes (void)
{
  for (int trial = 0; trial < 150; trial++) {
    Case t;
    t.rows = 1 + (int) check_uniform (0, 70);
    t.outputs = 1 + (int) check_uniform (0, trial % 3 ? 100 : 300);
    t.inputs = 1 + (int) check_uniform (0, 300);
    t.n = 1 + (int) check_uniform (0, (float) t.outputs - 0.5f);
    if (trial % 4 == 0) /* every fourth: at most 8 outputs (the pair kernels) */
      t.n = MIN (t.n, 1 + (int) check_uniform (0, 7.5f));
    t.k = (int) check_uniform (0, (float) t.inputs + 0.5f);
    t.bias = check_uniform (0, 1) < 0.5f;
    t.accumulate = check_uniform (0, 1) < 0.5f;
    check_case (&t);
  }
}

/* mone_gemm_packed_taps: row r's inputs are `taps` runs of tap_len, run t at a + t tap_stride + r
 * lda (runs and rows may overlap, as a convolution's windows do). Against the double triple loop
 * on the rows copied out, and, where mone_gemm_packed takes the same panel kernels for every
 * output (no pair copy: mone_gemm_panel_outputs), bit for bit against mone_gemm_packed on that
 * copy: the same sums in the same order. */
static void
check_taps (int rows, int outputs, int n, int taps, int tap_len, int lda, int tap_stride,
    gboolean bias_on, gboolean accumulate)
{
  const int k = taps * tap_len, ldc = n + 3;
  const size_t a_floats = (size_t) (taps - 1) * tap_stride + (size_t) (rows - 1) * lda + tap_len;
  float *a = random_floats (a_floats);
  float *w = random_floats ((size_t) outputs * k);
  float *panels = g_aligned_alloc (mone_packed_size (outputs, k), sizeof (float), 64);
  mone_pack_weights (outputs, k, w, k, panels);
  const MonePackedMatrix packed = { panels, outputs, k };
  float *copied = g_new (float, (size_t) rows *k + 1); /* (rows, k): the runs side by side */
  for (int r = 0; r < rows; r++)
    for (int t = 0; t < taps; t++)
      memcpy (copied + (size_t) r * k + (size_t) t * tap_len,
          a + (size_t) t * tap_stride + (size_t) r * lda, sizeof (float) * tap_len);
  float *bias = bias_on ? random_floats (n) : NULL;
  float *c0 = random_floats ((size_t) rows * ldc);
  double *want = g_new (double, (size_t) rows *n + 1),
         *scale = g_new (double, (size_t) rows *n + 1);
  reference (rows, n, k, copied, k, w, k, bias, accumulate ? c0 : NULL, ldc, want, scale);
  float *c[MONE_ISA_COUNT] = { NULL };
  for (int isa = 0; isa < MONE_ISA_OPENBLAS; isa++) {
    if (!mone_isa_supported (isa))
      continue;
    c[isa] = g_memdup2 (c0, sizeof (float) * rows * ldc);
    mone_gemm_packed_taps (isa, rows, n, taps, tap_len, a, lda, tap_stride, &packed, bias,
        accumulate, c[isa], ldc);
    const double worst = worst_error (rows, n, c[isa], c0, ldc, want, scale);
    CHECK (worst < 1e-6, "%s taps: rows %d, n %d, %d taps of %d, lda %d, tap stride %d: error %.3g",
        mone_isa_name (isa), rows, n, taps, tap_len, lda, tap_stride, worst);
    if (mone_gemm_panel_outputs (n) == n) {
      float *plain = g_memdup2 (c0, sizeof (float) * rows * ldc);
      mone_gemm_packed (isa, rows, n, k, copied, k, &packed, bias, accumulate, plain, ldc);
      CHECK (memcmp (plain, c[isa], sizeof (float) * rows * ldc) == 0,
          "%s taps: rows %d, n %d, %d taps of %d differ from the same rows copied out",
          mone_isa_name (isa), rows, n, taps, tap_len);
      g_free (plain);
    }
  }
  if (c[MONE_ISA_AVX512] && c[MONE_ISA_AVX2])
    CHECK (memcmp (c[MONE_ISA_AVX2], c[MONE_ISA_AVX512], sizeof (float) * rows * ldc) == 0,
        "taps: avx2 and avx512 differ (rows %d, n %d, %d taps of %d)", rows, n, taps, tap_len);
  for (int isa = 0; isa < MONE_ISA_COUNT; isa++)
    g_free (c[isa]);
  g_free (a);
  g_free (w);
  g_aligned_free (panels);
  g_free (copied);
  g_free (bias);
  g_free (c0);
  g_free (want);
  g_free (scale);
}

/* The stem's layers (a row of output pixels of a 3x3 stride-2 convolution read from the previous,
 * padded map: lda 2 C, three runs of 3 C one padded row apart), then random layouts. */
static void
test_taps (void)
{
  const int stem[][3] = { { 32, 16, 32 }, { 16, 32, 64 }, { 8, 64, 256 }, { 7, 3, 8 }, { 1, 5, 20 },
    { 15, 1, 17 } }; /* output pixels, input channels C, output channels */
  for (size_t i = 0; i < G_N_ELEMENTS (stem); i++) {
    const int out_w = stem[i][0], C = stem[i][1];
    check_taps (out_w, stem[i][2] + 5, stem[i][2], 3, 3 * C, 2 * C, (2 * out_w + 1) * C, i % 2,
        i % 3 == 0);
  }
  for (int trial = 0; trial < 60; trial++) {
    const int rows = 1 + (int) check_uniform (0, 40), outputs = 1 + (int) check_uniform (0, 150);
    const int taps = 1 + (int) check_uniform (0, 4), tap_len = 1 + (int) check_uniform (0, 90);
    const int lda = 1 + (int) check_uniform (0, 2.0f * tap_len);
    check_taps (rows, outputs, 1 + (int) check_uniform (0, (float) outputs - 0.5f), taps, tap_len,
        lda, (int) check_uniform (0, (float) rows * lda + tap_len), check_uniform (0, 1) < 0.5f,
        check_uniform (0, 1) < 0.5f);
  }
}

/* One mone_gemm_general case on every path against the double triple loop, with operands stored
 * at strides wider than the product and columns past n left alone. */
static void
check_general (int m, int n, int k, gboolean trans_a, gboolean trans_b, float alpha,
    gboolean accumulate)
{
  const int lda = (trans_a ? m : k) + 3, ldb = (trans_b ? k : n) + 2, ldc = n + 5;
  float *a = random_floats ((size_t) (trans_a ? k : m) * lda + 1);
  float *b = random_floats ((size_t) (trans_b ? n : k) * ldb + 1);
  float *c0 = random_floats ((size_t) m * ldc + 1);
  float *scratch = g_new (float, mone_gemm_general_scratch_floats ());
  double *want = g_new (double, (size_t) m *n), *scale = g_new (double, (size_t) m *n);
  for (int r = 0; r < m; r++)
    for (int o = 0; o < n; o++) {
      double sum = accumulate ? c0[(size_t) r * ldc + o] : 0, abs_sum = 0;
      for (int i = 0; i < k; i++) {
        const double x = trans_a ? a[(size_t) i * lda + r] : a[(size_t) r * lda + i];
        const double y = trans_b ? b[(size_t) o * ldb + i] : b[(size_t) i * ldb + o];
        sum += alpha * x * y;
        abs_sum += fabs (alpha * x * y);
      }
      want[(size_t) r * n + o] = sum;
      scale[(size_t) r * n + o] = abs_sum + 1;
    }
  float *c[MONE_ISA_COUNT];
  for (int isa = 0; isa < MONE_ISA_COUNT; isa++) {
    c[isa] = g_memdup2 (c0, sizeof (float) * ((size_t) m * ldc + 1));
    if (!mone_isa_supported (isa))
      continue;
    mone_gemm_general (isa, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, accumulate, c[isa],
        ldc, scratch);
    const double worst = worst_error (m, n, c[isa], c0, ldc, want, scale);
    CHECK (worst < 1e-6, "%s: m %d n %d k %d, A%s B%s, alpha %g, accumulate %d: error %.3g",
        mone_isa_name (isa), m, n, k, trans_a ? "^T" : "", trans_b ? "^T" : "", alpha, accumulate,
        worst);
  }
  if (mone_isa_supported (MONE_ISA_AVX512) && mone_isa_supported (MONE_ISA_AVX2))
    CHECK (memcmp (c[MONE_ISA_AVX2], c[MONE_ISA_AVX512], sizeof (float) * m * ldc) == 0,
        "general product: avx2 and avx512 differ (m %d n %d k %d)", m, n, k);
  for (int isa = 0; isa < MONE_ISA_COUNT; isa++)
    g_free (c[isa]);
  g_free (a);
  g_free (b);
  g_free (c0);
  g_free (scratch);
  g_free (want);
  g_free (scale);
}

/* Shapes like the trainer's (the scene model's widths, attention's 64 x 64 x 16, weight gradients
 * summed over more rows than one chunk takes, outputs past one chunk) and random ones, every
 * transpose; few rows, so that the double-precision reference stays quick under valgrind. */
static void
test_general (void)
{
  const int fixed[][3] = { { 100, 192, 64 }, { 64, 64, 16 }, { 20, 64, 1100 }, { 8, 288, 600 },
    { 30, 576, 128 }, { 33, 1, 7 }, { 5, 17, 0 }, { 1, 300, 513 } };
  for (size_t i = 0; i < G_N_ELEMENTS (fixed); i++)
    for (int t = 0; t < 4; t++)
      check_general (fixed[i][0], fixed[i][1], fixed[i][2], t & 1, t >> 1, t == 2 ? 0.125f : 1.0f,
          i % 2 == 1);
  for (int trial = 0; trial < 40; trial++)
    check_general (1 + (int) check_uniform (0, 40), 1 + (int) check_uniform (0, 300),
        (int) check_uniform (0, 600), trial & 1, (trial >> 1) & 1,
        trial % 3 ? 1.0f : check_uniform (-2, 2), check_uniform (0, 1) < 0.5f);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  GString *isas = g_string_new ("kernels this CPU runs:");
  for (int isa = 0; isa < MONE_ISA_OPENBLAS; isa++)
    if (mone_isa_supported (isa))
      g_string_append_printf (isas, " %s", mone_isa_name (isa));
  g_test_message ("%s; default %s", isas->str, mone_isa_name (mone_isa_default ()));
  g_string_free (isas, TRUE);
  g_test_add_func ("/gemm/model-shapes", test_model_shapes);
  g_test_add_func ("/gemm/random-shapes", test_random_shapes);
  g_test_add_func ("/gemm/taps", test_taps);
  g_test_add_func ("/gemm/general", test_general);
  return g_test_run ();
}
