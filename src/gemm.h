/* The engine's own matrix products on weights packed once at load.
 *
 * Every projection of the forward pass is "tokens times weights^T": C (rows, n) = A (rows, k) W^T
 * with W stored (out, in). Nested experts use a leading slice of W: the first k = d_j inputs (QKV,
 * fc1) or the first n = d_j outputs (attention projection, fc2). OpenBLAS repacks that slice on
 * every call; here each matrix is packed once, in a layout where every such slice is a prefix:
 *
 *   panels of MONE_PANEL_WIDTH consecutive outputs; inside a panel, input-major:
 *   packed[p][i][c] = W[p * MONE_PANEL_WIDTH + c][i]      (panels, k, MONE_PANEL_WIDTH)
 *   the last panel is zero-padded to the full width.
 *
 * Reading the first k' inputs reads the first k' rows of each panel (contiguous, stride k *
 * MONE_PANEL_WIDTH between panels); producing the first n' outputs reads the first
 * ceil(n' / MONE_PANEL_WIDTH) panels. One layout serves both slicings and every ISA.
 *
 * A panel of which a product uses at most 8 outputs (MONE_PAIR_OUTPUTS) would fill only half of
 * each 16-wide FMA: the narrowest experts' attention projection and fc2 when d_j <= 8, or when
 * d_j = 24 (a whole panel and half of the next). For the first MONE_PAIR_COPIES panels the x86
 * kernels read a second, small copy of that panel's first 8 outputs instead, in input pairs:
 *
 *   pairs_q[p][2 o + s] = W[16 q + o][2 p + s]      (ceil(inputs / 2), 16), zero past the matrix
 *
 * so one 16-wide FMA takes two inputs of one row (the pair broadcast as a 64-bit value) for all 8
 * outputs, and each output's even and odd inputs accumulate in separate chains, added at the end.
 *
 * Kernels (AVX-512F, AVX2+FMA, portable C) are picked once per process from the CPU (cpu-isa.h),
 * or forced with MONE_ISA=avx512|avx2|generic; MONE_ISA=openblas sends the projections to
 * cblas_sgemm on the unpacked weights, as a reference. Every output element is one accumulation over k in
 * increasing order (for the pair kernels: its even inputs and its odd inputs, each in increasing
 * order, then their sum), whatever the row blocking, so results do not depend on how rows are
 * split over tasks (the FMA kernels agree bit for bit with each other too). */
#ifndef MONE_GEMM_H
#define MONE_GEMM_H

#include <stdbool.h>
#include <stddef.h>

#include "cpu-isa.h"

#define MONE_PANEL_WIDTH 16

/* Before a loop of a constant, small trip count in a kernel: its accumulators must become
 * registers, which needs the loop unrolled (-O2 does not do it by itself). */
#if defined(__clang__)
#define UNROLL_FULLY _Pragma ("clang loop unroll(full)")
#else
#define UNROLL_FULLY _Pragma ("GCC unroll 16")
#endif

typedef struct {
  const float *panels; /* (ceil(outputs / MONE_PANEL_WIDTH), inputs, MONE_PANEL_WIDTH) */
  int outputs, inputs; /* the (out, in) shape of the original matrix */
} MonePackedMatrix;

#define MONE_PAIR_OUTPUTS 8
#define MONE_PAIR_COPIES 2

/* Floats of the packed form of an (outputs, inputs) matrix: its panels, then its pair copies. */
size_t mone_packed_size (int outputs, int inputs);
/* Packs w (outputs, inputs), row stride ldw, into panels (mone_packed_size floats). */
void mone_pack_weights (int outputs, int inputs, const float *w, int ldw, float *panels);

/* The pair copy of the first MONE_PAIR_OUTPUTS outputs of panel `panel` (< MONE_PAIR_COPIES). */
const float *mone_packed_pairs (const MonePackedMatrix *w, int panel);

/* How many of a product's n outputs the x86 kernels take from the panels; the rest (at most
 * MONE_PAIR_OUTPUTS, in one of the first MONE_PAIR_COPIES panels) come from that panel's pair
 * copy. */
static inline int
mone_gemm_panel_outputs (int n)
{
  const int last_panel = (n - 1) / MONE_PANEL_WIDTH;
  const int in_last = n - last_panel * MONE_PANEL_WIDTH;
  return last_panel < MONE_PAIR_COPIES && in_last <= MONE_PAIR_OUTPUTS ? n - in_last : n;
}

/* c (rows, n) = a (rows, k) W[:n, :k]^T [+ bias (n)] [+ c if accumulate], for n <= W.outputs and
 * k <= W.inputs; a and c are row-major with strides lda, ldc and must not overlap. isa must be a
 * kernel (not MONE_ISA_OPENBLAS) that this CPU runs. No allocation, no shared state: any number
 * of threads may call it at once. */
void mone_gemm_packed (MoneIsa isa, int rows, int n, int k, const float *a, int lda,
    const MonePackedMatrix *w, const float *bias, bool accumulate, float *c, int ldc);

/* The same product where each row's k = taps x tap_len inputs lie in `taps` runs of tap_len, run
 * t of row r at a + t tap_stride + r lda: a convolution's rows read in place from its input map
 * (the stem: tap t = a kernel row, whose 3 pixels x channels are contiguous), with no im2col
 * copy. Always on the panels (a pair of inputs may straddle two runs). */
void mone_gemm_packed_taps (MoneIsa isa, int rows, int n, int taps, int tap_len, const float *a,
    int lda, ptrdiff_t tap_stride, const MonePackedMatrix *w, const float *bias, bool accumulate,
    float *c, int ldc);
/* The kernels, one per ISA (gemm-avx512.c, gemm-avx2.c, gemm.c); the contract of
 * mone_gemm_packed_taps, with the panels' stride between panels in floats. */
typedef void (*MoneGemmKernel) (int rows, int n, int taps, int tap_len, const float *a, int lda,
    ptrdiff_t tap_stride, const float *panels, size_t panel_stride, const float *bias,
    bool accumulate, float *c, int ldc);
void mone_gemm_generic (int rows, int n, int taps, int tap_len, const float *a, int lda,
    ptrdiff_t tap_stride, const float *panels, size_t panel_stride, const float *bias,
    bool accumulate, float *c, int ldc);
void mone_gemm_avx2 (int rows, int n, int taps, int tap_len, const float *a, int lda,
    ptrdiff_t tap_stride, const float *panels, size_t panel_stride, const float *bias,
    bool accumulate, float *c, int ldc);
void mone_gemm_avx512 (int rows, int n, int taps, int tap_len, const float *a, int lda,
    ptrdiff_t tap_stride, const float *panels, size_t panel_stride, const float *bias,
    bool accumulate, float *c, int ldc);
/* The kernels' rows go in the fewest blocks of at most max_rows, their sizes differing by at most
 * one: block b covers rows [mone_row_block_start (rows, blocks, b), ... (b + 1)). Filling the
 * largest blocks first leaves short remainders (a narrow expert's 16 rows as 14 + 2, a stem row's
 * 8 pixels as 6 + 2), whose few accumulators cannot hide the FMA latency; 8 + 8 or 4 + 4 run
 * every block at full rate. Which rows share a block changes no output bit (each output is one
 * chain over k). */
static inline int
mone_row_block_count (int rows, int max_rows)
{
  return (rows + max_rows - 1) / max_rows;
}

static inline int
mone_row_block_start (int rows, int blocks, int b)
{
  return (int) ((long long) rows * b / blocks);
}

/* How the x86 kernels' register blocks read A: rows lda apart, the transpose (k, rows), or rows
 * in tap runs. Each is compiled on its own, so the plain rows pay nothing for the taps. */
typedef enum { A_ROWS, A_TRANSPOSED, A_TAPS, A_LAYOUTS } ALayout;
/* With A stored as its transpose: at (k, rows; row stride ldat), one run. */
typedef void (*MoneGemmTransposedKernel) (int rows, int n, int k, const float *at, int ldat,
    const float *panels, size_t panel_stride, const float *bias, bool accumulate, float *c,
    int ldc);
void mone_gemm_at_generic (int rows, int n, int k, const float *at, int ldat, const float *panels,
    size_t panel_stride, const float *bias, bool accumulate, float *c, int ldc);
void mone_gemm_at_avx2 (int rows, int n, int k, const float *at, int ldat, const float *panels,
    size_t panel_stride, const float *bias, bool accumulate, float *c, int ldc);
void mone_gemm_at_avx512 (int rows, int n, int k, const float *at, int ldat, const float *panels,
    size_t panel_stride, const float *bias, bool accumulate, float *c, int ldc);

/* The pair kernels (n <= MONE_PAIR_OUTPUTS), same contract, on mone_packed_pairs. */
typedef void (*MoneGemmPairKernel) (int rows, int n, int k, const float *a, int lda,
    const float *pairs, const float *bias, bool accumulate, float *c, int ldc);
void mone_gemm_pairs_avx2 (int rows, int n, int k, const float *a, int lda, const float *pairs,
    const float *bias, bool accumulate, float *c, int ldc);
void mone_gemm_pairs_avx512 (int rows, int n, int k, const float *a, int lda, const float *pairs,
    const float *bias, bool accumulate, float *c, int ldc);
/* 17-24 outputs in one pass: the first 16 on the first panel, the rest on the second panel's pair
 * copy; the same bits as the panel kernel for the first 16 and the pair kernel for the rest. */
typedef void (*MoneGemmPanelPairsKernel) (int rows, int n, int k, const float *a, int lda,
    const float *panel, const float *pairs, const float *bias, bool accumulate, float *c, int ldc);
void mone_gemm_panel_pairs_avx512 (int rows, int n, int k, const float *a, int lda,
    const float *panel, const float *pairs, const float *bias, bool accumulate, float *c, int ldc);

/* General row-major products for the trainer, whose weights change every step:
 * c (m, n) = alpha op(a) op(b) [+ c] as cblas_sgemm with beta 1 (accumulate) or 0, on isa's
 * kernel (MONE_ISA_OPENBLAS: cblas_sgemm itself). op(b) is packed into scratch
 * (mone_gemm_general_scratch_floats) in chunks of at most K_CHUNK inputs by N_CHUNK outputs, and
 * each output is summed chunk by chunk, k in increasing order: the bits depend on the chunk sizes
 * and on nothing else (not the ISA where both fuse multiply-adds, not the caller's threads). */
#define MONE_GEMM_GENERAL_K_CHUNK 256
#define MONE_GEMM_GENERAL_N_CHUNK 256
size_t mone_gemm_general_scratch_floats (void);
void mone_gemm_general (MoneIsa isa, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
    const float *a, int lda, const float *b, int ldb, bool accumulate, float *c, int ldc,
    float *scratch);

#endif
