/* AVX-512 kernel of gemm.h. Built with -mavx512f -mavx512vl -mfma (this file only); called only
 * after mone_isa_supported (MONE_ISA_AVX512).
 *
 * Register block: ROWS token rows x PANELS panels (16 outputs each) = ROWS * PANELS zmm
 * accumulators; per input channel it loads PANELS weight vectors and broadcasts ROWS activations
 * (folded into the FMA's memory operand) straight from A's rows, so 2 * ROWS FMAs share ROWS + 2
 * loads. Reading A in place rather than copying a block of it into a (k, ROWS) interleaved
 * buffer first measured as fast or faster on every shape of the forward pass, and much faster
 * on the narrow ones (n = 24, k = 768: the copy cost as much as the one group of panels it fed).
 * 28 accumulators + 2 weight vectors leave two of the 32 zmm registers free. */
#include "gemm.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define ROWS 14
#define PANELS 2
/* Panel rows (one cache line each) to prefetch ahead of the FMAs. Groups of few tokens stream
 * each block's weights from L3 or memory for little arithmetic, and the hardware prefetcher
 * alone keeps too few lines in flight: 48 ahead made a 14-token group through ViT-Ti's twelve
 * blocks of weights 58 -> 70 GFLOP/s (16 and 32 ahead: in between). Never past the k in use: a
 * narrow expert's panels go on with inputs it does not read. */
#ifndef PREFETCH_AHEAD
#define PREFETCH_AHEAD 48
#endif
/* A product whose panels exceed this many bytes prefetches across panel groups (gemm). */
#define STREAMED_BYTES (256 * 1024)

typedef void (*BlockFunc) (int taps, int tap_len, const float *a, int lda, ptrdiff_t tap_stride,
    const float *b, size_t panel_stride, const float *next, int cols, const float *bias,
    bool accumulate, float *c, int ldc);

static inline __attribute__ ((always_inline)) __mmask16
lanes_below (int cols)
{
  return cols >= 16 ? (__mmask16) 0xffff : (__mmask16) ((1u << (cols > 0 ? cols : 0)) - 1);
}

/* c (R, cols) = a (R, k; row stride lda) x b (NP panels of (k, 16)) [+ bias] [+ c], k = tap_len
 * (A_ROWS); A_TRANSPOSED: a is stored as its transpose (k, R; row stride lda); A_TAPS: k = taps x
 * tap_len, run t of each row tap_stride after run t - 1 (gemm.h). With HALF,
 * the last panel has at most 8 outputs in use and is multiplied 8 wide: where a zmm FMA costs two
 * ymm FMAs (AMD Zen 4), that makes the narrowest experts' n = 24 products 4/3 as fast. With
 * `next` (the following group's panels, or NULL), the last PREFETCH_AHEAD inputs prefetch its first
 * rows. */
static inline __attribute__ ((always_inline)) void
block_group (const int R, const int NP, const bool HALF, const int A_LAYOUT, int taps, int tap_len,
    const float *a, int lda, ptrdiff_t tap_stride, const float *b, size_t panel_stride,
    const float *next, int cols, const float *bias, bool accumulate, float *c, int ldc)
{
  const int k = A_LAYOUT == A_TAPS ? taps * tap_len : tap_len;
  const int FULL = HALF ? NP - 1 : NP; /* panels multiplied 16 wide */
  __m512 acc[ROWS][PANELS];
  __m256 acc_half[ROWS];
  UNROLL_FULLY
  for (int r = 0; r < R; r++) {
    UNROLL_FULLY
    for (int p = 0; p < FULL; p++)
      acc[r][p] = _mm512_setzero_ps ();
    acc_half[r] = _mm256_setzero_ps ();
  }
  const float *b_half = b + FULL * panel_stride;
  /* Taps (gemm.h): each row's inputs in runs; the other layouts are one run, with no outer loop. */
  for (int t = 0; t < (A_LAYOUT == A_TAPS ? taps : 1); t++) {
    const float *a_tap = A_LAYOUT == A_TAPS ? a + t * tap_stride : a;
    for (int j = 0; j < tap_len; j++) {
      const int i = A_LAYOUT == A_TAPS ? t * tap_len + j : j;
      __m512 w[PANELS];
      UNROLL_FULLY
      for (int p = 0; p < FULL; p++) {
        if (PREFETCH_AHEAD > 0 && i + PREFETCH_AHEAD < k)
          _mm_prefetch ((const char *) (b + p * panel_stride + (size_t) (i + PREFETCH_AHEAD) * 16),
              _MM_HINT_T0);
        else if (PREFETCH_AHEAD > 0 && next && i + PREFETCH_AHEAD - k < k)
          _mm_prefetch ((const char *) (next + p * panel_stride
                            + (size_t) (i + PREFETCH_AHEAD - k) * 16),
              _MM_HINT_T0);
        w[p] = _mm512_loadu_ps (b + p * panel_stride + (size_t) i * 16);
      }
      const __m256 w_half = HALF ? _mm256_loadu_ps (b_half + (size_t) i * 16)
                                 : _mm256_setzero_ps ();
      UNROLL_FULLY
      for (int r = 0; r < R; r++) {
        const __m512 xr = _mm512_set1_ps (
            A_LAYOUT == A_TRANSPOSED ? a[(size_t) i * lda + r] : a_tap[(size_t) r * lda + j]);
        UNROLL_FULLY
        for (int p = 0; p < FULL; p++)
          acc[r][p] = _mm512_fmadd_ps (xr, w[p], acc[r][p]);
        if (HALF)
          acc_half[r] = _mm256_fmadd_ps (_mm512_castps512_ps256 (xr), w_half, acc_half[r]);
      }
    }
  }
  /* out = acc [+ bias] [+ out], masked to the columns in use. The bias and the masks are the same
   * for every row: read once, before the first store (after which the compiler would have to read
   * the bias again, since c might overlap it). */
  __mmask16 mask[PANELS];
  __m512 bias_v[PANELS];
  UNROLL_FULLY
  for (int p = 0; p < FULL; p++) {
    mask[p] = lanes_below (cols - 16 * p);
    bias_v[p] = bias ? _mm512_maskz_loadu_ps (mask[p], bias + 16 * p) : _mm512_setzero_ps ();
  }
  const __mmask8 mask_half = (__mmask8) lanes_below (cols - 16 * FULL);
  const __m256 bias_half = HALF && bias ? _mm256_maskz_loadu_ps (mask_half, bias + 16 * FULL)
                                        : _mm256_setzero_ps ();
  UNROLL_FULLY
  for (int r = 0; r < R; r++) {
    float *out = c + (size_t) r * ldc;
    UNROLL_FULLY
    for (int p = 0; p < FULL; p++) {
      __m512 v = bias ? _mm512_add_ps (acc[r][p], bias_v[p]) : acc[r][p];
      if (accumulate)
        v = _mm512_add_ps (_mm512_maskz_loadu_ps (mask[p], out + 16 * p), v);
      _mm512_mask_storeu_ps (out + 16 * p, mask[p], v);
    }
    if (HALF) {
      __m256 v = bias ? _mm256_add_ps (acc_half[r], bias_half) : acc_half[r];
      if (accumulate)
        v = _mm256_add_ps (_mm256_maskz_loadu_ps (mask_half, out + 16 * FULL), v);
      _mm256_mask_storeu_ps (out + 16 * FULL, mask_half, v);
    }
  }
}

/* `groups` consecutive groups of PANELS whole panels (32 outputs each), one after the other, for
 * the same R rows: one call instead of one per group, whose set-up outweighs the arithmetic when
 * k is small (the scene model's narrow experts read 8 or 16 inputs in QKV and fc1). */
static inline __attribute__ ((always_inline)) void
block_groups (const int R, int groups, int k, const float *a, int lda, const float *b,
    size_t panel_stride, const float *bias, bool accumulate, float *c, int ldc)
{
  for (int g = 0; g < groups; g++)
    block_group (R, PANELS, false, A_ROWS, 1, k, a, lda, 0, b + (size_t) g * PANELS * panel_stride,
        panel_stride, NULL, PANELS * MONE_PANEL_WIDTH,
        bias ? bias + g * PANELS * MONE_PANEL_WIDTH : NULL, accumulate,
        c + g * PANELS * MONE_PANEL_WIDTH, ldc);
}

#define DEFINE_BLOCK(R, NP, HALF, LAYOUT, NAME)                                                    \
  static void NAME (int taps, int tap_len, const float *a, int lda, ptrdiff_t tap_stride,          \
      const float *b, size_t panel_stride, const float *next, int cols, const float *bias,         \
      bool accumulate, float *c, int ldc)                                                          \
  {                                                                                                \
    block_group (R, NP, HALF, LAYOUT, taps, tap_len, a, lda, tap_stride, b, panel_stride, next,    \
        cols, bias, accumulate, c, ldc);                                                           \
  }
#define DEFINE_BLOCKS(R)                                                                           \
  DEFINE_BLOCK (R, 1, false, A_ROWS, block_##R##_1)                                                \
  DEFINE_BLOCK (R, 2, false, A_ROWS, block_##R##_2)                                                \
  DEFINE_BLOCK (R, 1, true, A_ROWS, block_##R##_half)                                              \
  DEFINE_BLOCK (R, 2, true, A_ROWS, block_##R##_1_half)                                            \
  DEFINE_BLOCK (R, 1, false, A_TRANSPOSED, block_at_##R##_1)                                       \
  DEFINE_BLOCK (R, 2, false, A_TRANSPOSED, block_at_##R##_2)                                       \
  DEFINE_BLOCK (R, 1, true, A_TRANSPOSED, block_at_##R##_half)                                     \
  DEFINE_BLOCK (R, 2, true, A_TRANSPOSED, block_at_##R##_1_half)                                   \
  DEFINE_BLOCK (R, 1, false, A_TAPS, block_taps_##R##_1)                                           \
  DEFINE_BLOCK (R, 2, false, A_TAPS, block_taps_##R##_2)                                           \
  DEFINE_BLOCK (R, 1, true, A_TAPS, block_taps_##R##_half)                                         \
  DEFINE_BLOCK (R, 2, true, A_TAPS, block_taps_##R##_1_half)
DEFINE_BLOCKS (1)
DEFINE_BLOCKS (2)
DEFINE_BLOCKS (3)
DEFINE_BLOCKS (4)
DEFINE_BLOCKS (5)
DEFINE_BLOCKS (6)
DEFINE_BLOCKS (7)
DEFINE_BLOCKS (8)
DEFINE_BLOCKS (9)
DEFINE_BLOCKS (10)
DEFINE_BLOCKS (11)
DEFINE_BLOCKS (12)
DEFINE_BLOCKS (13)
DEFINE_BLOCKS (14)

typedef void (*GroupsFunc) (int groups, int k, const float *a, int lda, const float *b,
    size_t panel_stride, const float *bias, bool accumulate, float *c, int ldc);
#define DEFINE_GROUPS(R)                                                                           \
  static void groups_##R (int groups, int k, const float *a, int lda, const float *b,              \
      size_t panel_stride, const float *bias, bool accumulate, float *c, int ldc)                  \
  {                                                                                                \
    block_groups (R, groups, k, a, lda, b, panel_stride, bias, accumulate, c, ldc);                \
  }
DEFINE_GROUPS (1)
DEFINE_GROUPS (2)
DEFINE_GROUPS (3)
DEFINE_GROUPS (4)
DEFINE_GROUPS (5)
DEFINE_GROUPS (6)
DEFINE_GROUPS (7)
DEFINE_GROUPS (8)
DEFINE_GROUPS (9)
DEFINE_GROUPS (10)
DEFINE_GROUPS (11)
DEFINE_GROUPS (12)
DEFINE_GROUPS (13)
DEFINE_GROUPS (14)
static const GroupsFunc groups_of_rows[ROWS] = { groups_1, groups_2, groups_3, groups_4, groups_5,
  groups_6, groups_7, groups_8, groups_9, groups_10, groups_11, groups_12, groups_13, groups_14 };

#define BLOCK_ROW(PREFIX, R)                                                                       \
  {                                                                                                \
    { PREFIX##R##_1, PREFIX##R##_2 },                                                              \
    {                                                                                              \
      PREFIX##R##_half, PREFIX##R##_1_half                                                         \
    }                                                                                              \
  }
#define BLOCK_ROWS(PREFIX)                                                                         \
  {                                                                                                \
    BLOCK_ROW (PREFIX, 1), BLOCK_ROW (PREFIX, 2), BLOCK_ROW (PREFIX, 3), BLOCK_ROW (PREFIX, 4),    \
        BLOCK_ROW (PREFIX, 5), BLOCK_ROW (PREFIX, 6), BLOCK_ROW (PREFIX, 7),                       \
        BLOCK_ROW (PREFIX, 8), BLOCK_ROW (PREFIX, 9), BLOCK_ROW (PREFIX, 10),                      \
        BLOCK_ROW (PREFIX, 11), BLOCK_ROW (PREFIX, 12), BLOCK_ROW (PREFIX, 13),                    \
        BLOCK_ROW (PREFIX, 14)                                                                     \
  }
/* [A's layout][rows - 1][last panel half used][panels - 1] */
static const BlockFunc blocks[A_LAYOUTS][ROWS][2][PANELS] = { BLOCK_ROWS (block_),
  BLOCK_ROWS (block_at_), BLOCK_ROWS (block_taps_) };

_Static_assert(MONE_PANEL_WIDTH == 16, "one zmm per panel row");

static void
gemm (ALayout layout, int rows, int n, int taps, int tap_len, const float *a, int lda,
    ptrdiff_t tap_stride, const float *panels, size_t panel_stride, const float *bias,
    bool accumulate, float *c, int ldc)
{
  const int group_width = PANELS * MONE_PANEL_WIDTH;
  const int row_blocks = mone_row_block_count (rows, ROWS);
  /* Panels this large come from L3 or memory: the last rows of each group prefetch the next
   * group's first ones. Smaller ones stay in L2 between uses, where that only costs. */
  const bool streamed = (size_t) (n + MONE_PANEL_WIDTH - 1) / MONE_PANEL_WIDTH * panel_stride
      * sizeof (float) > STREAMED_BYTES;
  for (int rb = 0; rb < row_blocks; rb++) {
    const int r0 = mone_row_block_start (rows, row_blocks, rb);
    const int block_rows = mone_row_block_start (rows, row_blocks, rb + 1) - r0;
    int c0 = 0;
    /* Whole groups of an L2-resident matrix in one call (the streamed ones prefetch across
     * groups, which the one-group blocks do). */
    if (layout == A_ROWS && taps == 1 && !streamed && n >= group_width) {
      const int whole = n / group_width;
      groups_of_rows[block_rows - 1](whole, tap_len, a + (size_t) r0 * lda, lda, panels,
          panel_stride, bias, accumulate, c + (size_t) r0 * ldc, ldc);
      c0 = whole * group_width;
    }
    for (; c0 < n; c0 += group_width) {
      const int cols = n - c0 < group_width ? n - c0 : group_width;
      const int n_panels = (cols + MONE_PANEL_WIDTH - 1) / MONE_PANEL_WIDTH;
      const bool half = cols - (n_panels - 1) * MONE_PANEL_WIDTH <= MONE_PANEL_WIDTH / 2;
      const float *group = panels + (size_t) (c0 / MONE_PANEL_WIDTH) * panel_stride;
      blocks[layout][block_rows - 1][half][n_panels - 1](taps, tap_len,
          layout == A_TRANSPOSED ? a + r0 : a + (size_t) r0 * lda, lda, tap_stride, group,
          panel_stride, streamed && c0 + group_width < n ? group + PANELS * panel_stride : NULL,
          cols, bias ? bias + c0 : NULL, accumulate, c + (size_t) r0 * ldc + c0, ldc);
    }
  }
}

void
mone_gemm_avx512 (int rows, int n, int taps, int tap_len, const float *a, int lda,
    ptrdiff_t tap_stride, const float *panels, size_t panel_stride, const float *bias,
    bool accumulate, float *c, int ldc)
{
  gemm (taps > 1 ? A_TAPS : A_ROWS, rows, n, taps, tap_len, a, lda, tap_stride, panels,
      panel_stride, bias, accumulate, c, ldc);
}

void
mone_gemm_at_avx512 (int rows, int n, int k, const float *at, int ldat, const float *panels,
    size_t panel_stride, const float *bias, bool accumulate, float *c, int ldc)
{
  gemm (A_TRANSPOSED, rows, n, 1, k, at, ldat, 0, panels, panel_stride, bias, accumulate, c, ldc);
}

/* ---------------------------------------------------------------------------------------------- */
/* At most 8 outputs, on the pair copy (gemm.h): one zmm accumulator per row, lane 2 o + s holding
 * output o's chain over the inputs of parity s. Up to PAIR_ROWS rows share each pair row of
 * weights; every FMA does 16 useful multiply-adds, where the panel kernel's 8-wide FMAs did 8. */

#define PAIR_ROWS 14

/* The 8 outputs of a pair accumulator: lane 2 o + s holds output o's chain over the inputs of
 * parity s, so each output is the sum of two neighbouring lanes. */
static inline __attribute__ ((always_inline)) __m256
pair_outputs (__m512 acc)
{
  const __m512i even_lanes = _mm512_setr_epi32 (0, 2, 4, 6, 8, 10, 12, 14, 0, 2, 4, 6, 8, 10, 12,
      14);
  const __m512 sums = _mm512_add_ps (acc, _mm512_permute_ps (acc, 0xb1));
  return _mm512_castps512_ps256 (_mm512_permutexvar_ps (even_lanes, sums));
}

/* A pair operand for the last input alone (odd k): its odd lanes multiply a zero input, their
 * weight being the next input's or the copy's zero padding (as in the AVX2 kernel). */
static inline __attribute__ ((always_inline)) __m512
last_input_alone (__m512 broadcast)
{
  return _mm512_maskz_mov_ps (0x5555, broadcast);
}

typedef void (*PairBlockFunc) (int k, const float *a, int lda, const float *pairs, int cols,
    const float *bias, bool accumulate, float *c, int ldc);

static inline __attribute__ ((always_inline)) void
pair_block (const int R, int k, const float *a, int lda, const float *pairs, int cols,
    const float *bias, bool accumulate, float *c, int ldc)
{
  __m512 acc[PAIR_ROWS];
  UNROLL_FULLY
  for (int r = 0; r < R; r++)
    acc[r] = _mm512_setzero_ps ();
  const int whole_pairs = k / 2;
  for (int p = 0; p < whole_pairs; p++) {
    if (PREFETCH_AHEAD > 0 && 2 * (p + PREFETCH_AHEAD) < k)
      _mm_prefetch ((const char *) (pairs + (size_t) (p + PREFETCH_AHEAD) * 16), _MM_HINT_T0);
    const __m512 w = _mm512_loadu_ps (pairs + (size_t) p * 16);
    UNROLL_FULLY
    for (int r = 0; r < R; r++) {
      double two_inputs; /* a[r][2p], a[r][2p + 1] as one 64-bit value: broadcast by one load */
      memcpy (&two_inputs, a + (size_t) r * lda + 2 * p, sizeof two_inputs);
      acc[r] = _mm512_fmadd_ps (_mm512_castpd_ps (_mm512_set1_pd (two_inputs)), w, acc[r]);
    }
  }
  if (k % 2) {
    const __m512 w = _mm512_loadu_ps (pairs + (size_t) whole_pairs * 16);
    UNROLL_FULLY
    for (int r = 0; r < R; r++)
      acc[r] = _mm512_fmadd_ps (last_input_alone (_mm512_set1_ps (a[(size_t) r * lda + k - 1])), w,
          acc[r]);
  }
  /* out = sums [+ bias] [+ out]; bias and mask read once for all rows, as in block_group. */
  const __mmask8 mask = (__mmask8) lanes_below (cols);
  const __m256 bias_v = bias ? _mm256_maskz_loadu_ps (mask, bias) : _mm256_setzero_ps ();
  UNROLL_FULLY
  for (int r = 0; r < R; r++) {
    __m256 v = pair_outputs (acc[r]);
    if (bias)
      v = _mm256_add_ps (v, bias_v);
    float *out = c + (size_t) r * ldc;
    if (accumulate)
      v = _mm256_add_ps (_mm256_maskz_loadu_ps (mask, out), v);
    _mm256_mask_storeu_ps (out, mask, v);
  }
}

#define DEFINE_PAIR_BLOCK(R)                                                                       \
  static void pair_block_##R (int k, const float *a, int lda, const float *pairs, int cols,        \
      const float *bias, bool accumulate, float *c, int ldc)                                       \
  {                                                                                                \
    pair_block (R, k, a, lda, pairs, cols, bias, accumulate, c, ldc);                              \
  }
DEFINE_PAIR_BLOCK (1)
DEFINE_PAIR_BLOCK (2)
DEFINE_PAIR_BLOCK (3)
DEFINE_PAIR_BLOCK (4)
DEFINE_PAIR_BLOCK (5)
DEFINE_PAIR_BLOCK (6)
DEFINE_PAIR_BLOCK (7)
DEFINE_PAIR_BLOCK (8)
DEFINE_PAIR_BLOCK (9)
DEFINE_PAIR_BLOCK (10)
DEFINE_PAIR_BLOCK (11)
DEFINE_PAIR_BLOCK (12)
DEFINE_PAIR_BLOCK (13)
DEFINE_PAIR_BLOCK (14)
static const PairBlockFunc pair_blocks[PAIR_ROWS] = { pair_block_1, pair_block_2, pair_block_3,
  pair_block_4, pair_block_5, pair_block_6, pair_block_7, pair_block_8, pair_block_9,
  pair_block_10, pair_block_11, pair_block_12, pair_block_13, pair_block_14 };

void
mone_gemm_pairs_avx512 (int rows, int n, int k, const float *a, int lda, const float *pairs,
    const float *bias, bool accumulate, float *c, int ldc)
{
  const int row_blocks = mone_row_block_count (rows, PAIR_ROWS);
  for (int rb = 0; rb < row_blocks; rb++) {
    const int r0 = mone_row_block_start (rows, row_blocks, rb);
    const int block_rows = mone_row_block_start (rows, row_blocks, rb + 1) - r0;
    pair_blocks[block_rows - 1](k, a + (size_t) r0 * lda, lda, pairs, n, bias, accumulate,
        c + (size_t) r0 * ldc, ldc);
  }
}

/* ---------------------------------------------------------------------------------------------- */
/* 17-24 outputs (ViT-Ti's narrowest expert, d = 24): the first panel 16 wide and the other 8
 * outputs from the second panel's pair copy, in one pass. Per row and pair of inputs, the two
 * broadcasts the panel's FMAs need are blended into the pair's operand, so three full FMAs do the
 * work that took two 16-wide and two 8-wide ones. Same chains as the panel kernel (the first 16
 * outputs) and the pair kernel (the rest), so the same bits as the two run one after the other. */

static inline __attribute__ ((always_inline)) void
panel_pairs_block (const int R, int k, const float *a, int lda, const float *panel,
    const float *pairs, int cols, const float *bias, bool accumulate, float *c, int ldc)
{
  __m512 acc[ROWS], acc_pairs[ROWS];
  UNROLL_FULLY
  for (int r = 0; r < R; r++)
    acc[r] = acc_pairs[r] = _mm512_setzero_ps ();
  const int whole_pairs = k / 2;
  for (int p = 0; p < whole_pairs; p++) {
    const int i = 2 * p;
    if (PREFETCH_AHEAD > 0 && i + PREFETCH_AHEAD < k) {
      _mm_prefetch ((const char *) (panel + (size_t) (i + PREFETCH_AHEAD) * 16), _MM_HINT_T0);
      _mm_prefetch ((const char *) (pairs + (size_t) (p + PREFETCH_AHEAD / 2) * 16), _MM_HINT_T0);
    }
    const __m512 w_even = _mm512_loadu_ps (panel + (size_t) i * 16);
    const __m512 w_odd = _mm512_loadu_ps (panel + (size_t) (i + 1) * 16);
    const __m512 w_pair = _mm512_loadu_ps (pairs + (size_t) p * 16);
    UNROLL_FULLY
    for (int r = 0; r < R; r++) {
      const __m512 x_even = _mm512_set1_ps (a[(size_t) r * lda + i]);
      const __m512 x_odd = _mm512_set1_ps (a[(size_t) r * lda + i + 1]);
      acc[r] = _mm512_fmadd_ps (x_even, w_even, acc[r]);
      acc[r] = _mm512_fmadd_ps (x_odd, w_odd, acc[r]);
      acc_pairs[r] = _mm512_fmadd_ps (_mm512_mask_blend_ps (0xaaaa, x_even, x_odd), w_pair,
          acc_pairs[r]);
    }
  }
  if (k % 2) {
    const __m512 w_last = _mm512_loadu_ps (panel + (size_t) (k - 1) * 16);
    const __m512 w_pair = _mm512_loadu_ps (pairs + (size_t) whole_pairs * 16);
    UNROLL_FULLY
    for (int r = 0; r < R; r++) {
      const __m512 x = _mm512_set1_ps (a[(size_t) r * lda + k - 1]);
      acc[r] = _mm512_fmadd_ps (x, w_last, acc[r]);
      acc_pairs[r] = _mm512_fmadd_ps (last_input_alone (x), w_pair, acc_pairs[r]);
    }
  }
  const __mmask8 mask_pairs = (__mmask8) lanes_below (cols - 16);
  const __m512 bias_panel = bias ? _mm512_loadu_ps (bias) : _mm512_setzero_ps ();
  const __m256 bias_pairs = bias ? _mm256_maskz_loadu_ps (mask_pairs, bias + 16)
                                 : _mm256_setzero_ps ();
  UNROLL_FULLY
  for (int r = 0; r < R; r++) {
    float *out = c + (size_t) r * ldc;
    __m512 v = bias ? _mm512_add_ps (acc[r], bias_panel) : acc[r];
    if (accumulate)
      v = _mm512_add_ps (_mm512_loadu_ps (out), v);
    _mm512_storeu_ps (out, v);
    __m256 u = pair_outputs (acc_pairs[r]);
    if (bias)
      u = _mm256_add_ps (u, bias_pairs);
    if (accumulate)
      u = _mm256_add_ps (_mm256_maskz_loadu_ps (mask_pairs, out + 16), u);
    _mm256_mask_storeu_ps (out + 16, mask_pairs, u);
  }
}

#define DEFINE_PANEL_PAIRS_BLOCK(R)                                                                \
  static void panel_pairs_block_##R (int k, const float *a, int lda, const float *panel,           \
      const float *pairs, int cols, const float *bias, bool accumulate, float *c, int ldc)         \
  {                                                                                                \
    panel_pairs_block (R, k, a, lda, panel, pairs, cols, bias, accumulate, c, ldc);                \
  }
DEFINE_PANEL_PAIRS_BLOCK (1)
DEFINE_PANEL_PAIRS_BLOCK (2)
DEFINE_PANEL_PAIRS_BLOCK (3)
DEFINE_PANEL_PAIRS_BLOCK (4)
DEFINE_PANEL_PAIRS_BLOCK (5)
DEFINE_PANEL_PAIRS_BLOCK (6)
DEFINE_PANEL_PAIRS_BLOCK (7)
DEFINE_PANEL_PAIRS_BLOCK (8)
DEFINE_PANEL_PAIRS_BLOCK (9)
DEFINE_PANEL_PAIRS_BLOCK (10)
DEFINE_PANEL_PAIRS_BLOCK (11)
DEFINE_PANEL_PAIRS_BLOCK (12)
DEFINE_PANEL_PAIRS_BLOCK (13)
DEFINE_PANEL_PAIRS_BLOCK (14)
typedef void (*PanelPairsBlockFunc) (int k, const float *a, int lda, const float *panel,
    const float *pairs, int cols, const float *bias, bool accumulate, float *c, int ldc);
static const PanelPairsBlockFunc panel_pairs_blocks[ROWS] = { panel_pairs_block_1,
  panel_pairs_block_2, panel_pairs_block_3, panel_pairs_block_4, panel_pairs_block_5,
  panel_pairs_block_6, panel_pairs_block_7, panel_pairs_block_8, panel_pairs_block_9,
  panel_pairs_block_10, panel_pairs_block_11, panel_pairs_block_12, panel_pairs_block_13,
  panel_pairs_block_14 };

void
mone_gemm_panel_pairs_avx512 (int rows, int n, int k, const float *a, int lda, const float *panel,
    const float *pairs, const float *bias, bool accumulate, float *c, int ldc)
{
  const int row_blocks = mone_row_block_count (rows, ROWS);
  for (int rb = 0; rb < row_blocks; rb++) {
    const int r0 = mone_row_block_start (rows, row_blocks, rb);
    const int block_rows = mone_row_block_start (rows, row_blocks, rb + 1) - r0;
    panel_pairs_blocks[block_rows - 1](k, a + (size_t) r0 * lda, lda, panel, pairs, n, bias,
        accumulate, c + (size_t) r0 * ldc, ldc);
  }
}
