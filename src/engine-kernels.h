/* Element-wise kernels of the forward pass: LayerNorm, softmax, GELU, exp, pixel normalisation;
 * and the few-row matrix product.
 *
 * The element-wise ones run on every token at every budget (LayerNorm over full D, GELU over full
 * F), so at low budgets they are a large share of the time left after the nested matrix products
 * shrink. They are compiled once per instruction set (vector-kernels.c: AVX-512, AVX2+FMA,
 * generic) and dispatched on the CPU once per process (kernels.c, cpu-isa.h), so the same binary
 * is fast where it can be and still runs everywhere. Results are independent of thread count: each
 * call works on its own rows with a fixed summation order. */
#ifndef MONE_ENGINE_KERNELS_H
#define MONE_ENGINE_KERNELS_H

#include <stddef.h>

/* out[i, :] = (x[i, :] - mean_i) / sqrt(var_i + eps) * weight + bias for rows i < n_rows, where the
 * statistics are over all `width` columns, but only the first out_width columns are written (a
 * nested expert reads only its leading d_j channels). x and out have row strides ldx, ldout. */
void mone_layernorm_rows (int n_rows, int width, int out_width, const float *x, int ldx,
    const float *weight, const float *bias, float eps, float *out, int ldout);

/* In place: row i <- softmax(scale * row i) over n_cols columns, for n_rows rows of stride ld.
 * If inverse_sums (n_rows) is given, rows are left unnormalised (exp(scale (x - max))) and
 * 1 / sum is stored instead, so a caller that multiplies the rows by a matrix next can scale the
 * narrower product (attention: N x head_dim instead of N x N). */
void mone_softmax_rows (int n_rows, int n_cols, float scale, float *x, int ld, float *inverse_sums);

/* In place: x[i, c] <- GELU(x[i, c] + bias[c]) * row_scale[i], exact-erf GELU
 * 0.5 v (1 + erf(v / sqrt 2)) with erf to ~1e-7 absolute (float rounding included). row_scale may be NULL (1). */
void mone_bias_gelu_scale_rows (int n_rows, int n_cols, float *x, int ld, const float *bias,
    const float *row_scale);

/* In place: x[i, c] += row_scale[i] * bias[c]: the fc2 bias under the MLP's gate. */
void mone_scale_bias_add_rows (int n_rows, int n_cols, float *x, int ld, const float *bias,
    const float *row_scale);

/* The trainer's exact GELU, forward and backward, each one pass over n values:
 * cdf[i] = Phi(x[i]) = (1 + erf(x[i] / sqrt 2)) / 2 and out[i] = x[i] cdf[i];
 * din[i] = dout[i] (cdf[i] + x[i] phi(x[i])), phi(x) = exp(-x^2 / 2) / sqrt(2 pi). */
void mone_gelu_cdf_array (int n, const float *x, float *out, float *cdf);
void mone_gelu_grad_array (int n, const float *dout, const float *x, const float *cdf, float *din);

/* init + sum over i < n of a[i] b[i] in double, for the router's logits: eight lanes, lane k summing
 * the products of the indices d = k mod 8 below the last multiple of 8 in increasing order, then
 * init plus the products past it in order, plus the lanes 0 to 7 in order. A float product is
 * exact in double, so fused and separate multiply-adds give the same bits: every kernel path
 * returns the same value, and the router ranks tokens alike on all of them. */
double mone_router_dot (const float *a, const float *b, int n, double init);

/* out[r, i] = (x[r, i] - mean) * inv_std for n_rows rows of n (strides ldx, ldout): the pixel
 * normalisation of the patch embedding, a run of patches' rows at a time. */
void mone_normalize_rows (int n_rows, int n, const float *x, int ldx, float mean, float inv_std,
    float *out, int ldout);

/* C (n x m, ldc) = beta C + A B^T, row-major, A (n x k, lda), B (m x k, ldb): the engine's
 * "tokens times weights^T" product, read straight from the weights' (out, in) layout. For a handful
 * of rows OpenBLAS spends longer packing B than multiplying (a 6-token group on a ViT-Ti-sized
 * expert repacks 110k weights for 660k multiply-adds), so the forward pass routes groups of at
 * most FEW_ROWS (forward.c) rows here. beta 0 ignores C's old contents (NaN included). */
void mone_gemm_nt_few_rows (int n, int m, int k, const float *a, int lda, const float *b, int ldb,
    float beta, float *c, int ldc);

#endif
