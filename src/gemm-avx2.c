/* AVX2+FMA kernel of gemm.h. Built with -mavx2 -mfma (this file only); called only after
 * mone_isa_supported (MONE_ISA_AVX2).
 *
 * Register block: ROWS token rows x one panel (16 outputs = 2 ymm) = 12 accumulators, plus the
 * panel's 2 weight vectors and one broadcast: 15 of the 16 ymm registers. A is read in place
 * (broadcasts from its rows), as in the AVX-512 kernel. */
#include "gemm.h"

#include <immintrin.h>
#include <string.h>

#define ROWS 6
/* Panel rows to prefetch ahead: as in the AVX-512 kernel. */
#ifndef PREFETCH_AHEAD
#define PREFETCH_AHEAD 48
#endif

typedef void (*BlockFunc) (int taps, int tap_len, const float *a, int lda, ptrdiff_t tap_stride,
    const float *b, int cols, const float *bias, bool accumulate, float *c, int ldc);

/* All-ones in the lanes below `lanes` (0..8). */
static inline __attribute__ ((always_inline)) __m256i
lanes_below (int lanes)
{
  return _mm256_cmpgt_epi32 (_mm256_set1_epi32 (lanes), _mm256_setr_epi32 (0, 1, 2, 3, 4, 5, 6, 7));
}

/* The bias of the columns in `mask` (zero without one), read once per block: it is the same for
 * every row, and after the first store the compiler would have to read it again (c might overlap
 * it). */
static inline __attribute__ ((always_inline)) __m256
load_bias (const float *bias, __m256i mask, bool full)
{
  if (!bias)
    return _mm256_setzero_ps ();
  return full ? _mm256_loadu_ps (bias) : _mm256_maskload_ps (bias, mask);
}

/* v [+ bias_v] [+ out]. */
static inline __attribute__ ((always_inline)) __m256
finish (__m256 v, bool has_bias, __m256 bias_v, bool accumulate, const float *out, __m256i mask,
    bool full)
{
  if (has_bias)
    v = _mm256_add_ps (v, bias_v);
  if (accumulate)
    v = _mm256_add_ps (full ? _mm256_loadu_ps (out) : _mm256_maskload_ps (out, mask), v);
  return v;
}

/* c (R, cols) = a (R, k; row stride lda) x b (k, 16) [+ bias] [+ c], A read as in the AVX-512
 * kernel's block (A_ROWS, A_TRANSPOSED, A_TAPS). With HALF (cols <= 8) the upper 8 outputs are
 * not multiplied. */
static inline __attribute__ ((always_inline)) void
block (const int R, const bool HALF, const int A_LAYOUT, int taps, int tap_len, const float *a,
    int lda, ptrdiff_t tap_stride, const float *b, int cols, const float *bias, bool accumulate,
    float *c, int ldc)
{
  const int k = A_LAYOUT == A_TAPS ? taps * tap_len : tap_len;
  __m256 lo[ROWS], hi[ROWS];
  UNROLL_FULLY
  for (int r = 0; r < R; r++)
    lo[r] = hi[r] = _mm256_setzero_ps ();
  /* Taps (gemm.h): each row's inputs in runs; the other layouts are one run, with no outer loop. */
  for (int t = 0; t < (A_LAYOUT == A_TAPS ? taps : 1); t++) {
    const float *a_tap = A_LAYOUT == A_TAPS ? a + t * tap_stride : a;
    for (int j = 0; j < tap_len; j++) {
      const int i = A_LAYOUT == A_TAPS ? t * tap_len + j : j;
      if (PREFETCH_AHEAD > 0 && i + PREFETCH_AHEAD < k)
        _mm_prefetch ((const char *) (b + (size_t) (i + PREFETCH_AHEAD) * 16), _MM_HINT_T0);
      const __m256 w_lo = _mm256_loadu_ps (b + (size_t) i * 16);
      const __m256 w_hi = HALF ? _mm256_setzero_ps () : _mm256_loadu_ps (b + (size_t) i * 16 + 8);
      UNROLL_FULLY
      for (int r = 0; r < R; r++) {
        const __m256 xr = _mm256_broadcast_ss (
            A_LAYOUT == A_TRANSPOSED ? a + (size_t) i * lda + r : a_tap + (size_t) r * lda + j);
        lo[r] = _mm256_fmadd_ps (xr, w_lo, lo[r]);
        if (!HALF)
          hi[r] = _mm256_fmadd_ps (xr, w_hi, hi[r]);
      }
    }
  }
  const __m256i mask_lo = lanes_below (cols < 8 ? cols : 8);
  const __m256i mask_hi = lanes_below (cols > 8 ? cols - 8 : 0);
  const bool full = cols == 16;
  const __m256 bias_lo = load_bias (bias, mask_lo, full);
  const __m256 bias_hi = HALF ? _mm256_setzero_ps ()
                              : load_bias (bias ? bias + 8 : NULL, mask_hi, full);
  UNROLL_FULLY
  for (int r = 0; r < R; r++) {
    float *out = c + (size_t) r * ldc;
    const __m256 v_lo = finish (lo[r], bias != NULL, bias_lo, accumulate, out, mask_lo, full);
    if (full) {
      _mm256_storeu_ps (out, v_lo);
    } else {
      _mm256_maskstore_ps (out, mask_lo, v_lo);
    }
    if (!HALF) {
      const __m256 v_hi = finish (hi[r], bias != NULL, bias_hi, accumulate, out + 8, mask_hi, full);
      if (full)
        _mm256_storeu_ps (out + 8, v_hi);
      else
        _mm256_maskstore_ps (out + 8, mask_hi, v_hi);
    }
  }
}

#define DEFINE_BLOCK(R, HALF, LAYOUT, NAME)                                                        \
  static void NAME (int taps, int tap_len, const float *a, int lda, ptrdiff_t tap_stride,          \
      const float *b, int cols, const float *bias, bool accumulate, float *c, int ldc)             \
  {                                                                                                \
    block (R, HALF, LAYOUT, taps, tap_len, a, lda, tap_stride, b, cols, bias, accumulate, c, ldc); \
  }
#define DEFINE_BLOCKS(R)                                                                           \
  DEFINE_BLOCK (R, false, A_ROWS, block_##R)                                                       \
  DEFINE_BLOCK (R, true, A_ROWS, block_##R##_half)                                                 \
  DEFINE_BLOCK (R, false, A_TRANSPOSED, block_at_##R)                                              \
  DEFINE_BLOCK (R, true, A_TRANSPOSED, block_at_##R##_half)                                        \
  DEFINE_BLOCK (R, false, A_TAPS, block_taps_##R)                                                  \
  DEFINE_BLOCK (R, true, A_TAPS, block_taps_##R##_half)
DEFINE_BLOCKS (1)
DEFINE_BLOCKS (2)
DEFINE_BLOCKS (3)
DEFINE_BLOCKS (4)
DEFINE_BLOCKS (5)
DEFINE_BLOCKS (6)
/* [A's layout][rows - 1][at most 8 outputs used] */
#define BLOCK_ROW(PREFIX, R)                                                                       \
  {                                                                                                \
    PREFIX##R, PREFIX##R##_half                                                                    \
  }
#define BLOCK_ROWS(PREFIX)                                                                         \
  {                                                                                                \
    BLOCK_ROW (PREFIX, 1), BLOCK_ROW (PREFIX, 2), BLOCK_ROW (PREFIX, 3), BLOCK_ROW (PREFIX, 4),    \
        BLOCK_ROW (PREFIX, 5), BLOCK_ROW (PREFIX, 6)                                               \
  }
static const BlockFunc blocks[A_LAYOUTS][ROWS][2] = { BLOCK_ROWS (block_), BLOCK_ROWS (block_at_),
  BLOCK_ROWS (block_taps_) };

/* `panels` whole panels one after the other for the same R rows, in one call: with few inputs
 * (a narrow expert's QKV and fc1) a call's set-up costs as much as its arithmetic. */
static inline __attribute__ ((always_inline)) void
block_panels (const int R, int panels, int k, const float *a, int lda, const float *b,
    size_t panel_stride, const float *bias, bool accumulate, float *c, int ldc)
{
  for (int p = 0; p < panels; p++)
    block (R, false, A_ROWS, 1, k, a, lda, 0, b + (size_t) p * panel_stride, MONE_PANEL_WIDTH,
        bias ? bias + p * MONE_PANEL_WIDTH : NULL, accumulate, c + p * MONE_PANEL_WIDTH, ldc);
}

typedef void (*PanelsFunc) (int panels, int k, const float *a, int lda, const float *b,
    size_t panel_stride, const float *bias, bool accumulate, float *c, int ldc);
#define DEFINE_PANELS(R)                                                                           \
  static void panels_##R (int panels, int k, const float *a, int lda, const float *b,              \
      size_t panel_stride, const float *bias, bool accumulate, float *c, int ldc)                  \
  {                                                                                                \
    block_panels (R, panels, k, a, lda, b, panel_stride, bias, accumulate, c, ldc);                \
  }
DEFINE_PANELS (1)
DEFINE_PANELS (2)
DEFINE_PANELS (3)
DEFINE_PANELS (4)
DEFINE_PANELS (5)
DEFINE_PANELS (6)
static const PanelsFunc panels_of_rows[ROWS] = { panels_1, panels_2, panels_3, panels_4, panels_5,
  panels_6 };

/* Up to this many inputs, a row block's whole panels go in one call; longer products keep one
 * call per panel, since whole-panel calls measured slower on a few rows with k = 64 (docs/engine.md,
 * Kernels). */
#ifndef SHORT_K
#define SHORT_K 32
#endif

_Static_assert(MONE_PANEL_WIDTH == 16, "two ymm per panel row");

static void
gemm (ALayout layout, int rows, int n, int taps, int tap_len, const float *a, int lda,
    ptrdiff_t tap_stride, const float *panels, size_t panel_stride, const float *bias,
    bool accumulate, float *c, int ldc)
{
  const int row_blocks = mone_row_block_count (rows, ROWS);
  for (int rb = 0; rb < row_blocks; rb++) {
    const int r0 = mone_row_block_start (rows, row_blocks, rb);
    const int block_rows = mone_row_block_start (rows, row_blocks, rb + 1) - r0;
    int c0 = 0;
    if (layout == A_ROWS && taps == 1 && tap_len <= SHORT_K && n >= MONE_PANEL_WIDTH) {
      const int whole = n / MONE_PANEL_WIDTH;
      panels_of_rows[block_rows - 1](whole, tap_len, a + (size_t) r0 * lda, lda, panels,
          panel_stride, bias, accumulate, c + (size_t) r0 * ldc, ldc);
      c0 = whole * MONE_PANEL_WIDTH;
    }
    for (; c0 < n; c0 += MONE_PANEL_WIDTH) {
      const int cols = n - c0 < MONE_PANEL_WIDTH ? n - c0 : MONE_PANEL_WIDTH;
      blocks[layout][block_rows - 1][cols <= MONE_PANEL_WIDTH / 2](taps, tap_len,
          layout == A_TRANSPOSED ? a + r0 : a + (size_t) r0 * lda, lda, tap_stride,
          panels + (size_t) (c0 / MONE_PANEL_WIDTH) * panel_stride, cols, bias ? bias + c0 : NULL,
          accumulate, c + (size_t) r0 * ldc + c0, ldc);
    }
  }
}

void
mone_gemm_avx2 (int rows, int n, int taps, int tap_len, const float *a, int lda,
    ptrdiff_t tap_stride, const float *panels, size_t panel_stride, const float *bias,
    bool accumulate, float *c, int ldc)
{
  gemm (taps > 1 ? A_TAPS : A_ROWS, rows, n, taps, tap_len, a, lda, tap_stride, panels,
      panel_stride, bias, accumulate, c, ldc);
}

void
mone_gemm_at_avx2 (int rows, int n, int k, const float *at, int ldat, const float *panels,
    size_t panel_stride, const float *bias, bool accumulate, float *c, int ldc)
{
  gemm (A_TRANSPOSED, rows, n, 1, k, at, ldat, 0, panels, panel_stride, bias, accumulate, c, ldc);
}

/* ---------------------------------------------------------------------------------------------- */
/* At most 8 outputs, on the pair copy (gemm.h): per row, lo holds outputs 0-3 and hi outputs 4-7,
 * lane 2 o + s of each output o's chain over the inputs of parity s, the same chains as the
 * AVX-512 pair kernel (so both give the same bits). With HALF (cols <= 4) hi is not needed. */

typedef void (*PairBlockFunc) (int k, const float *a, int lda, const float *pairs, int cols,
    const float *bias, bool accumulate, float *c, int ldc);

static inline __attribute__ ((always_inline)) void
pair_block (const int R, const bool HALF, int k, const float *a, int lda, const float *pairs, int cols,
    const float *bias, bool accumulate, float *c, int ldc)
{
  __m256 lo[ROWS], hi[ROWS];
  UNROLL_FULLY
  for (int r = 0; r < R; r++)
    lo[r] = hi[r] = _mm256_setzero_ps ();
  const int whole_pairs = k / 2;
  for (int p = 0; p < whole_pairs; p++) {
    if (PREFETCH_AHEAD > 0 && 2 * (p + PREFETCH_AHEAD) < k)
      _mm_prefetch ((const char *) (pairs + (size_t) (p + PREFETCH_AHEAD) * 16), _MM_HINT_T0);
    const __m256 w_lo = _mm256_loadu_ps (pairs + (size_t) p * 16);
    const __m256 w_hi = HALF ? _mm256_setzero_ps () : _mm256_loadu_ps (pairs + (size_t) p * 16 + 8);
    UNROLL_FULLY
    for (int r = 0; r < R; r++) {
      double two_inputs; /* a[r][2p], a[r][2p + 1] as one 64-bit value: broadcast by one load */
      memcpy (&two_inputs, a + (size_t) r * lda + 2 * p, sizeof two_inputs);
      const __m256 x = _mm256_castpd_ps (_mm256_set1_pd (two_inputs));
      lo[r] = _mm256_fmadd_ps (x, w_lo, lo[r]);
      if (!HALF)
        hi[r] = _mm256_fmadd_ps (x, w_hi, hi[r]);
    }
  }
  if (k % 2) {
    /* The last input alone: the odd lanes multiply a zero input (as in the AVX-512 kernel). */
    const __m256 w_lo = _mm256_loadu_ps (pairs + (size_t) whole_pairs * 16);
    const __m256 w_hi = HALF ? _mm256_setzero_ps () : _mm256_loadu_ps (pairs + (size_t) whole_pairs * 16 + 8);
    UNROLL_FULLY
    for (int r = 0; r < R; r++) {
      const __m256 x = _mm256_blend_ps (_mm256_setzero_ps (), _mm256_set1_ps (a[(size_t) r * lda + k - 1]), 0x55);
      lo[r] = _mm256_fmadd_ps (x, w_lo, lo[r]);
      if (!HALF)
        hi[r] = _mm256_fmadd_ps (x, w_hi, hi[r]);
    }
  }
  const __m256i mask = lanes_below (cols);
  const __m256 bias_v = load_bias (bias, mask, false);
  UNROLL_FULLY
  for (int r = 0; r < R; r++) {
    /* Output o = even chain + odd chain: add each lane to its neighbour, gather the even lanes of
     * lo and hi in output order. */
    const __m256 lo_sums = _mm256_add_ps (lo[r], _mm256_permute_ps (lo[r], 0xb1));
    const __m256 hi_sums = _mm256_add_ps (hi[r], _mm256_permute_ps (hi[r], 0xb1));
    const __m256 mixed = _mm256_shuffle_ps (lo_sums, hi_sums, _MM_SHUFFLE (2, 0, 2, 0));
    const __m256 sums = _mm256_castpd_ps (_mm256_permute4x64_pd (_mm256_castps_pd (mixed), 0xd8));
    float *out = c + (size_t) r * ldc;
    _mm256_maskstore_ps (out, mask,
        finish (sums, bias != NULL, bias_v, accumulate, out, mask, false));
  }
}

#define DEFINE_PAIR_BLOCK(R, HALF, NAME)                                                           \
  static void NAME (int k, const float *a, int lda, const float *pairs, int cols,                  \
      const float *bias, bool accumulate, float *c, int ldc)                                       \
  {                                                                                                \
    pair_block (R, HALF, k, a, lda, pairs, cols, bias, accumulate, c, ldc);                        \
  }
#define DEFINE_PAIR_BLOCKS(R)                                                                      \
  DEFINE_PAIR_BLOCK (R, false, pair_block_##R)                                                     \
  DEFINE_PAIR_BLOCK (R, true, pair_block_##R##_half)
DEFINE_PAIR_BLOCKS (1)
DEFINE_PAIR_BLOCKS (2)
DEFINE_PAIR_BLOCKS (3)
DEFINE_PAIR_BLOCKS (4)
DEFINE_PAIR_BLOCKS (5)
DEFINE_PAIR_BLOCKS (6)
/* [rows - 1][at most 4 outputs used] */
static const PairBlockFunc pair_blocks[ROWS][2] = {
  { pair_block_1, pair_block_1_half },
  { pair_block_2, pair_block_2_half },
  { pair_block_3, pair_block_3_half },
  { pair_block_4, pair_block_4_half },
  { pair_block_5, pair_block_5_half },
  { pair_block_6, pair_block_6_half },
};

void
mone_gemm_pairs_avx2 (int rows, int n, int k, const float *a, int lda, const float *pairs,
    const float *bias, bool accumulate, float *c, int ldc)
{
  const int row_blocks = mone_row_block_count (rows, ROWS);
  for (int rb = 0; rb < row_blocks; rb++) {
    const int r0 = mone_row_block_start (rows, row_blocks, rb);
    const int block_rows = mone_row_block_start (rows, row_blocks, rb + 1) - r0;
    pair_blocks[block_rows - 1][n <= 4](k, a + (size_t) r0 * lda, lda, pairs, n, bias, accumulate,
        c + (size_t) r0 * ldc, ldc);
  }
}
