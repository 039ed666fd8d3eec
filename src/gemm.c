/* Weight packing, the portable kernel and the choice of kernel (gemm.h). */
#include "gemm.h"

#include <glib.h>
#include <stdio.h>
#include <string.h>

static size_t
panel_floats (int outputs, int inputs)
{
  const size_t panels = (size_t) (outputs + MONE_PANEL_WIDTH - 1) / MONE_PANEL_WIDTH;
  return panels * inputs * MONE_PANEL_WIDTH;
}

size_t
mone_packed_size (int outputs, int inputs)
{
  return panel_floats (outputs, inputs) + (size_t) (inputs + 1) / 2 * MONE_PANEL_WIDTH;
}

const float *
mone_packed_pairs (const MonePackedMatrix *w)
{
  return w->panels + panel_floats (w->outputs, w->inputs);
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
  /* The pair layout of the first MONE_PAIR_OUTPUTS outputs (gemm.h). */
  float *pairs = panels + panel_floats (outputs, inputs);
  for (int pair = 0; pair < (inputs + 1) / 2; pair++)
    for (int lane = 0; lane < MONE_PANEL_WIDTH; lane++) {
      const int out = lane / 2, in = 2 * pair + lane % 2;
      pairs[(size_t) pair * MONE_PANEL_WIDTH + lane] = out < outputs && in < inputs ? w[(size_t) out * ldw + in] : 0.0f;
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

static void
generic_block (int rows, int cols, int k, const float *a, int lda, const float *panel,
    const float *bias, bool accumulate, float *c, int ldc)
{
  Float4 acc0[QUARTERS] = { 0 }, acc1[QUARTERS] = { 0 };
  const float *a1 = rows > 1 ? a + lda : a; /* a duplicate row when there is one, never stored */
  for (int i = 0; i < k; i++) {
    const float *w = panel + (size_t) i * MONE_PANEL_WIDTH;
    const Float4 x0 = { a[i], a[i], a[i], a[i] }, x1 = { a1[i], a1[i], a1[i], a1[i] };
    UNROLL_FULLY
    for (int q = 0; q < QUARTERS; q++) {
      const Float4 wq = load4 (w + 4 * q);
      acc0[q] += x0 * wq;
      acc1[q] += x1 * wq;
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

void
mone_gemm_generic (int rows, int n, int k, const float *a, int lda, const float *panels,
    size_t panel_stride, const float *bias, bool accumulate, float *c, int ldc)
{
  for (int r0 = 0; r0 < rows; r0 += GENERIC_ROWS) {
    const int block_rows = MIN (GENERIC_ROWS, rows - r0);
    for (int c0 = 0; c0 < n; c0 += MONE_PANEL_WIDTH)
      generic_block (block_rows, MIN (MONE_PANEL_WIDTH, n - c0), k, a + (size_t) r0 * lda, lda,
          panels + (size_t) (c0 / MONE_PANEL_WIDTH) * panel_stride, bias ? bias + c0 : NULL,
          accumulate, c + (size_t) r0 * ldc + c0, ldc);
  }
}

/* ---------------------------------------------------------------------------------------------- */
/* Choice of kernel */

#ifndef MONE_HAVE_X86_KERNELS
void
mone_gemm_avx2 (int rows, int n, int k, const float *a, int lda, const float *panels,
    size_t panel_stride, const float *bias, bool accumulate, float *c, int ldc)
{
  g_assert_not_reached ();
}

void
mone_gemm_avx512 (int rows, int n, int k, const float *a, int lda, const float *panels,
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
#endif

static const MoneGemmKernel kernels[MONE_ISA_COUNT] = { mone_gemm_generic, mone_gemm_avx2,
  mone_gemm_avx512, NULL };
static const MoneGemmPairKernel pair_kernels[MONE_ISA_COUNT] = { NULL, mone_gemm_pairs_avx2,
  mone_gemm_pairs_avx512, NULL };

void
mone_gemm_packed (MoneIsa isa, int rows, int n, int k, const float *a, int lda,
    const MonePackedMatrix *w, const float *bias, bool accumulate, float *c, int ldc)
{
  g_assert (isa >= 0 && isa < MONE_ISA_OPENBLAS && n <= w->outputs && k <= w->inputs);
  if (rows <= 0 || n <= 0)
    return;
  if (n <= MONE_PAIR_OUTPUTS && pair_kernels[isa])
    pair_kernels[isa](rows, n, k, a, lda, mone_packed_pairs (w), bias, accumulate, c, ldc);
  else
    kernels[isa](rows, n, k, a, lda, w->panels, (size_t) w->inputs * MONE_PANEL_WIDTH, bias,
        accumulate, c, ldc);
}
