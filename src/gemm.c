/* Weight packing, the portable kernel and the choice of kernel (gemm.h). */
#include "gemm.h"

#include <cblas.h>
#include <glib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static size_t
panel_floats (int outputs, int inputs)
{
  const size_t panels = (size_t) (outputs + MONE_PANEL_WIDTH - 1) / MONE_PANEL_WIDTH;
  return panels * inputs * MONE_PANEL_WIDTH;
}

static size_t
pair_copy_floats (int inputs)
{
  return (size_t) (inputs + 1) / 2 * MONE_PANEL_WIDTH;
}

size_t
mone_packed_size (int outputs, int inputs)
{
  return panel_floats (outputs, inputs) + MONE_PAIR_COPIES * pair_copy_floats (inputs);
}

const float *
mone_packed_pairs (const MonePackedMatrix *w, int panel)
{
  g_assert (panel >= 0 && panel < MONE_PAIR_COPIES);
  return w->panels + panel_floats (w->outputs, w->inputs) + panel * pair_copy_floats (w->inputs);
}

void
mone_pack_weights (int outputs, int inputs, const float *w, int ldw, float *panels)
{
  const int n_panels = (outputs + MONE_PANEL_WIDTH - 1) / MONE_PANEL_WIDTH;
  for (int p = 0; p < n_panels; p++) {
    float *panel = panels + (size_t) p * inputs * MONE_PANEL_WIDTH; /* (inputs, MONE_PANEL_WIDTH) */
    for (int col = 0; col < MONE_PANEL_WIDTH; col++) {
      const int out = p * MONE_PANEL_WIDTH + col;
      const float *row = w + (size_t) out * ldw;
      for (int i = 0; i < inputs; i++)
        panel[(size_t) i * MONE_PANEL_WIDTH + col] = out < outputs ? row[i] : 0.0f;
    }
  }
  /* The pair copies of the first MONE_PAIR_OUTPUTS outputs of the first panels (gemm.h). */
  for (int copy = 0; copy < MONE_PAIR_COPIES; copy++) {
    float *pairs = panels + panel_floats (outputs, inputs) + copy * pair_copy_floats (inputs);
    for (int pair = 0; pair < (inputs + 1) / 2; pair++)
      for (int lane = 0; lane < MONE_PANEL_WIDTH; lane++) {
        const int out = copy * MONE_PANEL_WIDTH + lane / 2, in = 2 * pair + lane % 2;
        pairs[(size_t) pair * MONE_PANEL_WIDTH + lane] = out < outputs && in < inputs
            ? w[(size_t) out * ldw + in]
            : 0.0f;
      }
  }
}

/* ---------------------------------------------------------------------------------------------- */
/* Portable kernel: 2 rows x one panel per block, written with GCC vector extensions of 4 floats
 * (SSE2 on baseline x86-64, NEON on arm64): 8 registers accumulate, 4 hold a panel row. */

#define GENERIC_ROWS 2
#define QUARTERS (MONE_PANEL_WIDTH / 4)

typedef float Float4 __attribute__ ((vector_size (4 * sizeof (float))));

static inline Float4
load4 (const float *p)
{
  Float4 v;
  memcpy (&v, p, sizeof v);
  return v;
}

/* A's input t tap_len + j of row r is a[t * tap_stride + r * row_step + j * input_step]. */
static void
generic_block (int rows, int cols, int taps, int tap_len, const float *a, size_t row_step,
    size_t input_step, ptrdiff_t tap_stride, const float *panel, const float *bias, bool accumulate,
    float *c, int ldc)
{
  Float4 acc0[QUARTERS] = { 0 }, acc1[QUARTERS] = { 0 };
  for (int t = 0; t < taps; t++) {
    const float *a0 = a + t * tap_stride;
    const float *a1 = rows > 1 ? a0 + row_step
                               : a0; /* a duplicate row when there is one, never stored */
    const float *tap_panel = panel + (size_t) t * tap_len * MONE_PANEL_WIDTH;
    for (int j = 0; j < tap_len; j++) {
      const float *w = tap_panel + (size_t) j * MONE_PANEL_WIDTH;
      const float x0_j = a0[j * input_step], x1_j = a1[j * input_step];
      const Float4 x0 = { x0_j, x0_j, x0_j, x0_j }, x1 = { x1_j, x1_j, x1_j, x1_j };
      UNROLL_FULLY
      for (int q = 0; q < QUARTERS; q++) {
        const Float4 wq = load4 (w + 4 * q);
        acc0[q] += x0 * wq;
        acc1[q] += x1 * wq;
      }
    }
  }
  float sums[GENERIC_ROWS][MONE_PANEL_WIDTH];
  memcpy (sums[0], acc0, sizeof acc0);
  memcpy (sums[1], acc1, sizeof acc1);
  for (int r = 0; r < rows; r++) {
    float *out = c + (size_t) r * ldc;
    for (int col = 0; col < cols; col++) {
      float v = sums[r][col];
      if (bias)
        v += bias[col];
      out[col] = accumulate ? out[col] + v : v;
    }
  }
}

static void
generic_gemm (int rows, int n, int taps, int tap_len, const float *a, size_t row_step,
    size_t input_step, ptrdiff_t tap_stride, const float *panels, size_t panel_stride,
    const float *bias, bool accumulate, float *c, int ldc)
{
  for (int r0 = 0; r0 < rows; r0 += GENERIC_ROWS) {
    const int block_rows = MIN (GENERIC_ROWS, rows - r0);
    for (int c0 = 0; c0 < n; c0 += MONE_PANEL_WIDTH)
      generic_block (block_rows, MIN (MONE_PANEL_WIDTH, n - c0), taps, tap_len, a + r0 * row_step,
          row_step, input_step, tap_stride,
          panels + (size_t) (c0 / MONE_PANEL_WIDTH) * panel_stride, bias ? bias + c0 : NULL,
          accumulate, c + (size_t) r0 * ldc + c0, ldc);
  }
}

void
mone_gemm_generic (int rows, int n, int taps, int tap_len, const float *a, int lda,
    ptrdiff_t tap_stride, const float *panels, size_t panel_stride, const float *bias,
    bool accumulate, float *c, int ldc)
{
  generic_gemm (rows, n, taps, tap_len, a, lda, 1, tap_stride, panels, panel_stride, bias,
      accumulate, c, ldc);
}

void
mone_gemm_at_generic (int rows, int n, int k, const float *at, int ldat, const float *panels,
    size_t panel_stride, const float *bias, bool accumulate, float *c, int ldc)
{
  generic_gemm (rows, n, 1, k, at, 1, ldat, 0, panels, panel_stride, bias, accumulate, c, ldc);
}

/* ---------------------------------------------------------------------------------------------- */
/* Choice of kernel */

#ifndef MONE_HAVE_X86_KERNELS
void
mone_gemm_avx2 (int rows, int n, int taps, int tap_len, const float *a, int lda,
    ptrdiff_t tap_stride, const float *panels, size_t panel_stride, const float *bias,
    bool accumulate, float *c, int ldc)
{
  g_assert_not_reached ();
}

void
mone_gemm_avx512 (int rows, int n, int taps, int tap_len, const float *a, int lda,
    ptrdiff_t tap_stride, const float *panels, size_t panel_stride, const float *bias,
    bool accumulate, float *c, int ldc)
{
  g_assert_not_reached ();
}

void
mone_gemm_at_avx2 (int rows, int n, int k, const float *at, int ldat, const float *panels,
    size_t panel_stride, const float *bias, bool accumulate, float *c, int ldc)
{
  g_assert_not_reached ();
}

void
mone_gemm_at_avx512 (int rows, int n, int k, const float *at, int ldat, const float *panels,
    size_t panel_stride, const float *bias, bool accumulate, float *c, int ldc)
{
  g_assert_not_reached ();
}

void
mone_gemm_pairs_avx2 (int rows, int n, int k, const float *a, int lda, const float *pairs,
    const float *bias, bool accumulate, float *c, int ldc)
{
  g_assert_not_reached ();
}

void
mone_gemm_pairs_avx512 (int rows, int n, int k, const float *a, int lda, const float *pairs,
    const float *bias, bool accumulate, float *c, int ldc)
{
  g_assert_not_reached ();
}

void
mone_gemm_panel_pairs_avx512 (int rows, int n, int k, const float *a, int lda, const float *panel,
    const float *pairs, const float *bias, bool accumulate, float *c, int ldc)
{
  g_assert_not_reached ();
}
#endif

static const MoneGemmKernel kernels[MONE_ISA_COUNT] = { mone_gemm_generic, mone_gemm_avx2,
  mone_gemm_avx512, NULL };
static const MoneGemmTransposedKernel transposed_kernels[MONE_ISA_COUNT] = { mone_gemm_at_generic,
  mone_gemm_at_avx2, mone_gemm_at_avx512, NULL };
static const MoneGemmPairKernel pair_kernels[MONE_ISA_COUNT] = { NULL, mone_gemm_pairs_avx2,
  mone_gemm_pairs_avx512, NULL };
static const MoneGemmPanelPairsKernel panel_pairs_kernels[MONE_ISA_COUNT] = { NULL, NULL,
  mone_gemm_panel_pairs_avx512, NULL };

void
mone_gemm_packed (MoneIsa isa, int rows, int n, int k, const float *a, int lda,
    const MonePackedMatrix *w, const float *bias, bool accumulate, float *c, int ldc)
{
  g_assert (isa >= 0 && isa < MONE_ISA_OPENBLAS && n <= w->outputs && k <= w->inputs);
  if (rows <= 0 || n <= 0)
    return;
  const size_t panel_stride = (size_t) w->inputs * MONE_PANEL_WIDTH;
  const int on_panels = mone_gemm_panel_outputs (n);
  if (on_panels == n || !pair_kernels[isa]) {
    kernels[isa](rows, n, 1, k, a, lda, 0, w->panels, panel_stride, bias, accumulate, c, ldc);
    return;
  }
  /* The last panel's outputs from its pair copy: in one pass with the first panel where the ISA
   * has that kernel, else the panels and then the pairs. */
  const float *pairs = mone_packed_pairs (w, on_panels / MONE_PANEL_WIDTH);
  if (on_panels == MONE_PANEL_WIDTH && panel_pairs_kernels[isa]) {
    panel_pairs_kernels[isa](rows, n, k, a, lda, w->panels, pairs, bias, accumulate, c, ldc);
    return;
  }
  if (on_panels > 0)
    kernels[isa](rows, on_panels, 1, k, a, lda, 0, w->panels, panel_stride, bias, accumulate, c,
        ldc);
  pair_kernels[isa](rows, n - on_panels, k, a, lda, pairs, bias ? bias + on_panels : NULL,
      accumulate, c + on_panels, ldc);
}

void
mone_gemm_packed_taps (MoneIsa isa, int rows, int n, int taps, int tap_len, const float *a, int lda,
    ptrdiff_t tap_stride, const MonePackedMatrix *w, const float *bias, bool accumulate, float *c,
    int ldc)
{
  g_assert (isa >= 0 && isa < MONE_ISA_OPENBLAS && n <= w->outputs && taps >= 1
      && (int64_t) taps * tap_len <= w->inputs);
  if (rows <= 0 || n <= 0)
    return;
  kernels[isa](rows, n, taps, tap_len, a, lda, tap_stride, w->panels,
      (size_t) w->inputs * MONE_PANEL_WIDTH, bias, accumulate, c, ldc);
}

/* ---------------------------------------------------------------------------------------------- */
/* General products (the trainer's): op(B) packed per call, in chunks that stay in L2 */

size_t
mone_gemm_general_scratch_floats (void)
{
  return (size_t) MONE_GEMM_GENERAL_N_CHUNK * MONE_GEMM_GENERAL_K_CHUNK;
}

/* out[0:16] = alpha x in[0:16], four vectors at a time. */
static inline void
scale16 (float *out, const float *in, float alpha)
{
  const Float4 scale = { alpha, alpha, alpha, alpha };
  for (int q = 0; q < QUARTERS; q++) {
    const Float4 v = load4 (in + 4 * q) * scale;
    memcpy (out + 4 * q, &v, sizeof v);
  }
}

/* Panels of op(B)[k0 : k0 + kc, n0 : n0 + nc] x alpha, zero past n. Packing runs on every call
 * here, and a product of few rows pays for it in full, so each source row is read once, front to
 * back, and whole panel rows move as vectors. */
static void
pack_chunk (bool trans_b, int k0, int kc, int n0, int nc, float alpha, const float *b, int ldb,
    float *panels)
{
  const int n_panels = (nc + MONE_PANEL_WIDTH - 1) / MONE_PANEL_WIDTH;
  const int whole_panels = nc / MONE_PANEL_WIDTH, tail = nc - whole_panels * MONE_PANEL_WIDTH;
  const size_t panel_floats = (size_t) kc * MONE_PANEL_WIDTH; /* (kc, MONE_PANEL_WIDTH) */
  if (tail)
    memset (panels + whole_panels * panel_floats, 0, sizeof (float) * panel_floats);
  if (!trans_b) { /* op(B)[i][j] = b[i][j]: row i of the chunk feeds row i of every panel */
    for (int i = 0; i < kc; i++) {
      const float *row = b + (size_t) (k0 + i) * ldb + n0;
      float *out = panels + (size_t) i * MONE_PANEL_WIDTH;
      for (int p = 0; p < whole_panels; p++)
        scale16 (out + p * panel_floats, row + p * MONE_PANEL_WIDTH, alpha);
      for (int col = 0; col < tail; col++)
        out[whole_panels * panel_floats + col] = alpha * row[whole_panels * MONE_PANEL_WIDTH + col];
    }
    return;
  }
  /* op(B)[i][j] = b[j][i]: each output's inputs are a row of b, read front to back into its lane
   * of the panel, which (at most 256 x 16 floats) stays in L1 meanwhile. */
  for (int p = 0; p < n_panels; p++) {
    float *panel = panels + p * panel_floats;
    const int cols = p < whole_panels ? MONE_PANEL_WIDTH : tail;
    for (int col = 0; col < cols; col++) {
      const float *row = b + (size_t) (n0 + p * MONE_PANEL_WIDTH + col) * ldb + k0;
      for (int i = 0; i < kc; i++)
        panel[(size_t) i * MONE_PANEL_WIDTH + col] = alpha * row[i];
    }
  }
}

void
mone_gemm_general (MoneIsa isa, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
    const float *a, int lda, const float *b, int ldb, bool accumulate, float *c, int ldc,
    float *scratch)
{
  g_assert (isa >= 0 && isa < MONE_ISA_COUNT);
  if (m <= 0 || n <= 0)
    return;
  if (isa == MONE_ISA_OPENBLAS) {
    cblas_sgemm (CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
        trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb,
        accumulate ? 1.0f : 0.0f, c, ldc);
    return;
  }
  if (k <= 0) { /* an empty sum, as cblas_sgemm */
    if (!accumulate)
      for (int r = 0; r < m; r++)
        memset (c + (size_t) r * ldc, 0, sizeof (float) * n);
    return;
  }
  for (int n0 = 0; n0 < n; n0 += MONE_GEMM_GENERAL_N_CHUNK) {
    const int nc = MIN (MONE_GEMM_GENERAL_N_CHUNK, n - n0);
    for (int k0 = 0; k0 < k; k0 += MONE_GEMM_GENERAL_K_CHUNK) {
      const int kc = MIN (MONE_GEMM_GENERAL_K_CHUNK, k - k0);
      pack_chunk (trans_b, k0, kc, n0, nc, alpha, b, ldb, scratch);
      const float *a_chunk = trans_a ? a + (size_t) k0 * lda : a + k0;
      const size_t panel_stride = (size_t) kc * MONE_PANEL_WIDTH;
      if (trans_a)
        transposed_kernels[isa](m, nc, kc, a_chunk, lda, scratch, panel_stride, NULL,
            accumulate || k0 > 0, c + n0, ldc);
      else
        kernels[isa](m, nc, 1, kc, a_chunk, lda, 0, scratch, panel_stride, NULL,
            accumulate || k0 > 0, c + n0, ldc);
    }
  }
}
