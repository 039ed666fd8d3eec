/* Dispatch of the per-ISA vector kernels (kernels.h): the engine's entry points for LayerNorm,
 * softmax, GELU, exp, erf, pixel normalisation (engine-kernels.h) and attention (attention.h). */
#include "kernels.h"

#include <cblas.h>
#include <math.h>

#include "attention.h"
#include "engine-kernels.h"

extern const MoneKernels mone_kernels_generic;
#if defined(MONE_HAVE_X86_KERNELS)
extern const MoneKernels mone_kernels_avx2, mone_kernels_avx512;
#endif

const MoneKernels *
mone_kernels_for_isa (MoneIsa isa)
{
  /* The OpenBLAS reference path is about the projections only. */
  if (isa == MONE_ISA_OPENBLAS)
    isa = mone_isa_best ();
  if (!mone_isa_supported (isa))
    return NULL;
  switch (isa) {
    case MONE_ISA_GENERIC:
      return &mone_kernels_generic;
#if defined(MONE_HAVE_X86_KERNELS)
    case MONE_ISA_AVX2:
      return &mone_kernels_avx2;
    case MONE_ISA_AVX512:
      return &mone_kernels_avx512;
#endif
    default:
      return NULL;
  }
}

const MoneKernels *
mone_kernels (void)
{
  /* Decided once (mone_isa_active); a CPU that supports an ISA this build lacks gets generic. */
  static const MoneKernels *active;
  const MoneKernels *k = __atomic_load_n (&active, __ATOMIC_ACQUIRE);
  if (G_UNLIKELY (!k)) {
    k = mone_kernels_for_isa (mone_isa_active ());
    if (!k)
      k = &mone_kernels_generic;
    __atomic_store_n (&active, k, __ATOMIC_RELEASE);
  }
  return k;
}

void
mone_layernorm_rows (int n_rows, int width, int out_width, const float *x, int ldx,
    const float *weight, const float *bias, float eps, float *out, int ldout)
{
  mone_kernels ()->layernorm_rows (n_rows, width, out_width, x, ldx, weight, bias, eps, out, ldout);
}

void
mone_softmax_rows (int n_rows, int n_cols, float scale, float *x, int ld, float *inverse_sums)
{
  mone_kernels ()->softmax_rows (n_rows, n_cols, scale, x, ld, inverse_sums);
}

void
mone_bias_gelu_scale_rows (int n_rows, int n_cols, float *x, int ld, const float *bias,
    const float *row_scale)
{
  mone_kernels ()->bias_gelu_scale_rows (n_rows, n_cols, x, ld, bias, row_scale);
}

void
mone_scale_bias_add_rows (int n_rows, int n_cols, float *x, int ld, const float *bias,
    const float *row_scale)
{
  mone_kernels ()->scale_bias_add_rows (n_rows, n_cols, x, ld, bias, row_scale);
}

void
mone_gelu_cdf_array (int n, const float *x, float *out, float *cdf)
{
  mone_kernels ()->gelu_cdf_array (n, x, out, cdf);
}

void
mone_gelu_grad_array (int n, const float *dout, const float *x, const float *cdf, float *din)
{
  mone_kernels ()->gelu_grad_array (n, dout, x, cdf, din);
}

/* Queries per step: the widest strip of attention.c (2 AVX-512 vectors), and the row count of the
 * sgemm path's score block, so both fit the same scratch. */
#define ATTENTION_STRIP 32

double
mone_router_dot (const float *a, const float *b, int n, double init)
{
  return mone_kernels ()->router_dot (a, b, n, init);
}

void
mone_normalize_rows (int n_rows, int n, const float *x, int ldx, float mean, float inv_std,
    float *out, int ldout)
{
  mone_kernels ()->normalize_rows (n_rows, n, x, ldx, mean, inv_std, out, ldout);
}

size_t
mone_attention_scratch_floats (int n_keys, int head_dim)
{
  /* Strips: (head_dim + n_keys + 1) rows of ATTENTION_STRIP. sgemm path: (ATTENTION_STRIP, n_keys)
   * scores and ATTENTION_STRIP inverse sums, which is less. */
  return ((size_t) head_dim + n_keys + 1) * ATTENTION_STRIP;
}

void
mone_attention_block_sgemm (const MoneKernels *kernels, int n_queries, int n_keys, int head_dim,
    const float *q, const float *k, const float *v, int ld_qkv, float *out, int ld_out,
    float *scratch)
{
  float *scores = scratch;                                          /* (32, n_keys) */
  float *inverse_sums = scores + (size_t) ATTENTION_STRIP * n_keys; /* (32) */
  const float scale = 1.0f / sqrtf ((float) head_dim);
  for (int i0 = 0; i0 < n_queries; i0 += ATTENTION_STRIP) {
    const int nq = MIN (ATTENTION_STRIP, n_queries - i0);
    float *o = out + (size_t) i0 * ld_out; /* (nq, head_dim), ld ld_out */
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, nq, n_keys, head_dim, 1.0f,
        q + (size_t) i0 * ld_qkv, ld_qkv, k, ld_qkv, 0.0f, scores, n_keys);
    kernels->softmax_rows (nq, n_keys, scale, scores, n_keys, inverse_sums);
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, head_dim, n_keys, 1.0f, scores,
        n_keys, v, ld_qkv, 0.0f, o, ld_out);
    for (int i = 0; i < nq; i++)
      for (int c = 0; c < head_dim; c++)
        o[(size_t) i * ld_out + c] *= inverse_sums[i];
  }
}

int
mone_attention_query_granule (void)
{
  const MoneKernels *kernels = mone_kernels ();
  return kernels->attention_prefers_sgemm ? 1 : kernels->attention_query_granule;
}

void
mone_attention_block (int n_queries, int n_keys, int head_dim, const float *q, const float *k,
    const float *v, int ld_qkv, float *out, int ld_out, float *scratch)
{
  const MoneKernels *kernels = mone_kernels ();
  if (kernels->attention_prefers_sgemm)
    mone_attention_block_sgemm (kernels, n_queries, n_keys, head_dim, q, k, v, ld_qkv, out, ld_out,
        scratch);
  else
    kernels->attention_block (n_queries, n_keys, head_dim, q, k, v, ld_qkv, out, ld_out, scratch);
}
