/* The hand-written vector kernels, one table per instruction set.
 *
 * vector-kernels.c (LayerNorm, softmax, GELU, exp, erf) and attention.c are compiled once per
 * MoneIsa with that ISA's flags (src/meson.build), each build defining its own table; the engine
 * calls through the table of mone_isa_active() (engine-kernels.h and attention.h declare the calls
 * the engine makes). Tests reach each table directly to check every path the machine can run. */
#ifndef MONE_KERNELS_H
#define MONE_KERNELS_H

#include "cpu-isa.h"

typedef struct {
  /* Same contracts as mone_layernorm_rows, mone_softmax_rows, mone_bias_gelu_scale_rows,
   * mone_scale_bias_add_rows, mone_gelu_cdf_array, mone_gelu_grad_array, mone_normalize_rows
   * (engine-kernels.h) and mone_attention_block (attention.h). */
  void (*layernorm_rows) (int n_rows, int width, int out_width, const float *x, int ldx,
      const float *weight, const float *bias, float eps, float *out, int ldout);
  void (*softmax_rows) (int n_rows, int n_cols, float scale, float *x, int ld, float *inverse_sums);
  void (*bias_gelu_scale_rows) (int n_rows, int n_cols, float *x, int ld, const float *bias,
      const float *row_scale);
  void (*scale_bias_add_rows) (int n_rows, int n_cols, float *x, int ld, const float *bias,
      const float *row_scale);
  /* out[i] = exp(x[i]) (relative error ~2e-7) and erf(x[i]), the vector functions under the
   * softmax and the GELUs, on their own for tests/engine/test-kernels.c. */
  void (*exp_array) (int n, const float *x, float *out);
  void (*erf_array) (int n, const float *x, float *out);
  void (*gelu_cdf_array) (int n, const float *x, float *out, float *cdf);
  void (*gelu_grad_array) (int n, const float *dout, const float *x, const float *cdf, float *din);
  /* out[r, i] = (x[r, i] - mean) inv_std for n_rows rows of n, rows ldx and ldout apart: the
   * pixel normalisation, a whole run of patches' rows per call. */
  void (*normalize_rows) (int n_rows, int n, const float *x, int ldx, float mean, float inv_std,
      float *out, int ldout);
  /* init + sum of a[i] b[i] in double (engine-kernels.h, mone_router_dot): the same bits on
   * every path. */
  double (*router_dot) (const float *a, const float *b, int n, double init);
  /* One output row of the stem's first convolution (3x3, stride 2, zero padding 1, then GELU)
   * straight from the normalised pixels: out (n_out, C_out), out[o, :] = GELU(bias + sum over
   * ky < 3, t < 3 C_in of padded_rows[ky][2 o C_in + t] weights[(3 ky C_in + t) C_out + :]).
   * padded_rows[ky]: input row 2 oy - 1 + ky (a zero row above the frame), channels last, its
   * first C_in values the zero column left of the frame; weights (9 C_in, C_out), taps in (ky,
   * kx, channel) order. A direct convolution: with one to three input channels an im2col row has
   * 9 to 27 values, and building it cost more than its multiply-adds. */
  void (*stem_first_row) (int n_out, int C_in, int C_out, const float *const padded_rows[3],
      const float *weights, const float *bias, float *out);
  void (*attention_block) (int n_queries, int n_keys, int head_dim, const float *q, const float *k,
      const float *v, int ld_qkv, float *out, int ld_out, float *scratch);
  /* Whether mone_attention_block should use mone_attention_block_sgemm (with this table's softmax)
   * instead of attention_block: true where OpenBLAS measured faster than our micro-kernels. */
  int attention_prefers_sgemm;
  /* Queries per vector of attention_block's strips: a block of queries whose size is a multiple
   * of it fills every vector it computes (attention.h, mone_attention_query_granule). */
  int attention_query_granule;
} MoneKernels;

/* mone_attention_block through two OpenBLAS sgemm calls per 32 queries and kernels->softmax_rows,
 * normalising the (queries, head_dim) product rather than the (queries, N) scores. */
void mone_attention_block_sgemm (const MoneKernels *kernels, int n_queries, int n_keys,
    int head_dim, const float *q, const float *k, const float *v, int ld_qkv, float *out,
    int ld_out, float *scratch);

/* The table for one instruction set, or NULL if it was not built or this CPU cannot run it. */
const MoneKernels *mone_kernels_for_isa (MoneIsa isa);

/* The table of mone_isa_active(). */
const MoneKernels *mone_kernels (void);

#endif
