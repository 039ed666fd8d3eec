/* AVX2+FMA kernel of gemm.h. Built with -mavx2 -mfma (this file only); called only after
 * mone_isa_supported (MONE_ISA_AVX2).
 *
 * Register block: ROWS token rows x one panel (16 outputs = 2 ymm) = 12 accumulators, plus the
 * panel's 2 weight vectors and one broadcast: 15 of the 16 ymm registers. A is read in place
 * (broadcasts from its rows), as in the AVX-512 kernel. */
#include "gemm.h"

#include <immintrin.h>

#define ROWS 6
/* Panel rows to prefetch ahead: as in the AVX-512 kernel. */
#ifndef PREFETCH_AHEAD
#define PREFETCH_AHEAD 48
#endif

typedef void (*BlockFunc) (int k, const float *a, int lda, const float *b, int cols,
    const float *bias, bool accumulate, float *c, int ldc);

/* All-ones in the lanes below `lanes` (0..8). */
static inline __attribute__ ((always_inline)) __m256i
lanes_below (int lanes)
{
  return _mm256_cmpgt_epi32 (_mm256_set1_epi32 (lanes), _mm256_setr_epi32 (0, 1, 2, 3, 4, 5, 6, 7));
}

static inline __attribute__ ((always_inline)) __m256
finish (__m256 v, const float *bias, bool accumulate, const float *out, __m256i mask, bool full)
{
  if (bias)
    v = _mm256_add_ps (v, full ? _mm256_loadu_ps (bias) : _mm256_maskload_ps (bias, mask));
  if (accumulate)
    v = _mm256_add_ps (full ? _mm256_loadu_ps (out) : _mm256_maskload_ps (out, mask), v);
  return v;
}

/* c (R, cols) = a (R, k; row stride lda) x b (k, 16) [+ bias] [+ c]. With HALF (cols <= 8) the
 * upper 8 outputs are not multiplied. */
static inline __attribute__ ((always_inline)) void
block (const int R, const bool HALF, int k, const float *a, int lda, const float *b, int cols,
    const float *bias, bool accumulate, float *c, int ldc)
{
  __m256 lo[ROWS], hi[ROWS];
  UNROLL_FULLY
  for (int r = 0; r < R; r++)
    lo[r] = hi[r] = _mm256_setzero_ps ();
  for (int i = 0; i < k; i++) {
    if (PREFETCH_AHEAD > 0 && i + PREFETCH_AHEAD < k)
      _mm_prefetch ((const char *) (b + (size_t) (i + PREFETCH_AHEAD) * 16), _MM_HINT_T0);
    const __m256 w_lo = _mm256_loadu_ps (b + (size_t) i * 16);
    const __m256 w_hi = HALF ? _mm256_setzero_ps () : _mm256_loadu_ps (b + (size_t) i * 16 + 8);
    UNROLL_FULLY
    for (int r = 0; r < R; r++) {
      const __m256 xr = _mm256_broadcast_ss (a + (size_t) r * lda + i);
      lo[r] = _mm256_fmadd_ps (xr, w_lo, lo[r]);
      if (!HALF)
        hi[r] = _mm256_fmadd_ps (xr, w_hi, hi[r]);
    }
  }
  const __m256i mask_lo = lanes_below (cols < 8 ? cols : 8);
  const __m256i mask_hi = lanes_below (cols > 8 ? cols - 8 : 0);
  const bool full = cols == 16;
  UNROLL_FULLY
  for (int r = 0; r < R; r++) {
    float *out = c + (size_t) r * ldc;
    const __m256 v_lo = finish (lo[r], bias, accumulate, out, mask_lo, full);
    if (full) {
      _mm256_storeu_ps (out, v_lo);
    } else {
      _mm256_maskstore_ps (out, mask_lo, v_lo);
    }
    if (!HALF) {
      const __m256 v_hi = finish (hi[r], bias ? bias + 8 : NULL, accumulate, out + 8, mask_hi,
          full);
      if (full)
        _mm256_storeu_ps (out + 8, v_hi);
      else
        _mm256_maskstore_ps (out + 8, mask_hi, v_hi);
    }
  }
}

#define DEFINE_BLOCK(R, HALF, NAME)                                                                \
  static void NAME (int k, const float *a, int lda, const float *b, int cols, const float *bias,   \
      bool accumulate, float *c, int ldc)                                                          \
  {                                                                                                \
    block (R, HALF, k, a, lda, b, cols, bias, accumulate, c, ldc);                                 \
  }
#define DEFINE_BLOCKS(R)                                                                           \
  DEFINE_BLOCK (R, false, block_##R)                                                               \
  DEFINE_BLOCK (R, true, block_##R##_half)
DEFINE_BLOCKS (1)
DEFINE_BLOCKS (2)
DEFINE_BLOCKS (3)
DEFINE_BLOCKS (4)
DEFINE_BLOCKS (5)
DEFINE_BLOCKS (6)
/* [rows - 1][at most 8 outputs used] */
#define BLOCK_ROW(R)                                                                               \
  {                                                                                                \
    block_##R, block_##R##_half                                                                    \
  }
static const BlockFunc blocks[ROWS][2] = { BLOCK_ROW (1), BLOCK_ROW (2), BLOCK_ROW (3),
  BLOCK_ROW (4), BLOCK_ROW (5), BLOCK_ROW (6) };

_Static_assert(MONE_PANEL_WIDTH == 16, "two ymm per panel row");

void
mone_gemm_avx2 (int rows, int n, int k, const float *a, int lda, const float *panels,
    size_t panel_stride, const float *bias, bool accumulate, float *c, int ldc)
{
  for (int r0 = 0; r0 < rows; r0 += ROWS) {
    const int block_rows = rows - r0 < ROWS ? rows - r0 : ROWS;
    for (int c0 = 0; c0 < n; c0 += MONE_PANEL_WIDTH) {
      const int cols = n - c0 < MONE_PANEL_WIDTH ? n - c0 : MONE_PANEL_WIDTH;
      blocks[block_rows - 1][cols <= MONE_PANEL_WIDTH / 2](k, a + (size_t) r0 * lda, lda,
          panels + (size_t) (c0 / MONE_PANEL_WIDTH) * panel_stride, cols, bias ? bias + c0 : NULL,
          accumulate, c + (size_t) r0 * ldc + c0, ldc);
    }
  }
}
