/* Batched MoNE forward and backward pass for training (see trainer.h).
 *
 * Reads top to bottom: layers (each *_forward next to its *_backward), then the model pass.
 * Shapes: B images per pass, N tokens per image, R = B*N rows, D width, F MLP width, E experts,
 * H heads, K classes, P = C'*p'*p' inputs per patch (mone_patch_inputs: C*p*p pixels, or with a
 * convolutional stem of S layers p' = p / 2^S pixels of its last map's C' channels).
 *
 * Row orders. After routing, the residual stream lives in "grouped" order: all rows of expert 0
 * (image by image, token order), then expert 1, ... so every nested projection is one sgemm per
 * expert on contiguous rows with the leading d_j columns (or rows) of the weight, exactly as the
 * engine does per frame. Attention needs each image's tokens together, so q/k/v are scattered into
 * "image" order (b*N + t) and the attention output gathered back.
 *
 * A convolutional stem (mone.stem) runs before the patch embedding on channels-last maps, each
 * layer one sgemm over all its output pixels (im2col); mone_pass_stem_hold lets the passes of a
 * training step share one stem forward and one stem backward.
 */
#include "trainer.h"

#include "engine-kernels.h"
#include "gemm.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------- */
/* Layers. */

/* Where a pass's matrix products run: the engine's packed kernels for this CPU (AVX-512 or
 * AVX2; training.md has the speed), OpenBLAS where there is none or MONE_ISA=openblas asks for it
 * (the path the 28x28 models were trained on, which it reproduces bit for bit). */
typedef struct {
  MoneIsa isa;
  float *scratch; /* mone_gemm_general_scratch_floats () */
} Gemm;

/* cblas_sgemm's row-major product, for beta 0 or 1. */
static void
gemm (const Gemm *g, CBLAS_TRANSPOSE trans_a, CBLAS_TRANSPOSE trans_b, int m, int n, int k, float alpha, const float *a,
    int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
  g_assert (beta == 0.0f || beta == 1.0f);
  mone_gemm_general (g->isa, trans_a == CblasTrans, trans_b == CblasTrans, m, n, k, alpha, a, lda, b, ldb, beta == 1.0f,
      c, ldc, g->scratch);
}

/* Plain linear: out (R, OUT) = in (R, IN) W^T + b, W (OUT, IN). */
static void
linear_forward (const Gemm *g, float *out, const float *in, const float *W, const float *b, int R, int IN, int OUT)
{
  gemm (g, CblasNoTrans, CblasTrans, R, OUT, IN, 1.0f, in, IN, W, IN, 0.0f, out, OUT);
  if (b)
    for (int r = 0; r < R; r++)
      for (int o = 0; o < OUT; o++)
        out[(size_t) r * OUT + o] += b[o];
}

/* dW (OUT, IN) += dout^T in; db (OUT) += column sums; din (R, IN) = dout W (if din). */
static void
linear_backward (const Gemm *g, float *din, float *dW, float *db, const float *dout, const float *in, const float *W,
    int R, int IN, int OUT)
{
  gemm (g, CblasTrans, CblasNoTrans, OUT, IN, R, 1.0f, dout, OUT, in, IN, 1.0f, dW, IN);
  if (db)
    for (int r = 0; r < R; r++)
      for (int o = 0; o < OUT; o++)
        db[o] += dout[(size_t) r * OUT + o];
  if (din)
    gemm (g, CblasNoTrans, CblasNoTrans, R, IN, OUT, 1.0f, dout, OUT, W, IN, 0.0f, din, IN);
}

/* Nested projection with sliced INPUT (qkv, fc1): for the rows of expert j,
 * out[r] (OUT) = W[:, :d_j] in[r, :d_j] + b.   in (R, D), W (OUT, D), out (R, OUT).
 * group_start (E+1) delimits the experts' rows, width (E) gives d_j. */
static void
nested_in_forward (const Gemm *g, float *out, const float *in, const float *W, const float *b, const int *group_start,
    const int *width, int E, int D, int OUT)
{
  for (int j = 0; j < E; j++) {
    int r0 = group_start[j], n = group_start[j + 1] - r0;
    if (n == 0)
      continue;
    gemm (g, CblasNoTrans, CblasTrans, n, OUT, width[j], 1.0f, in + (size_t) r0 * D, D, W, D, 0.0f,
        out + (size_t) r0 * OUT, OUT);
  }
  int R = group_start[E];
  for (int r = 0; r < R; r++)
    for (int o = 0; o < OUT; o++)
      out[(size_t) r * OUT + o] += b[o];
}

/* dW[:, :d_j] += dout_j^T in_j[:, :d_j]; db += column sums; din (R, D) = dout_j W[:, :d_j] on the
 * leading d_j columns, zero beyond (the input's trailing channels did not take part). */
static void
nested_in_backward (const Gemm *g, float *din, float *dW, float *db, const float *dout, const float *in, const float *W,
    const int *group_start, const int *width, int E, int D, int OUT)
{
  for (int j = 0; j < E; j++) {
    int r0 = group_start[j], n = group_start[j + 1] - r0, d = width[j];
    if (n == 0)
      continue;
    gemm (g, CblasTrans, CblasNoTrans, OUT, d, n, 1.0f, dout + (size_t) r0 * OUT, OUT, in + (size_t) r0 * D, D, 1.0f,
        dW, D);
    gemm (g, CblasNoTrans, CblasNoTrans, n, d, OUT, 1.0f, dout + (size_t) r0 * OUT, OUT, W, D, 0.0f,
        din + (size_t) r0 * D, D);
    if (d < D)
      for (int r = r0; r < r0 + n; r++)
        memset (din + (size_t) r * D + d, 0, sizeof (float) * (D - d));
  }
  int R = group_start[E];
  for (int r = 0; r < R; r++)
    for (int o = 0; o < OUT; o++)
      db[o] += dout[(size_t) r * OUT + o];
}

/* Nested projection with sliced OUTPUT (proj, fc2): for the rows of expert j,
 * out[r, :d_j] = W[:d_j, :] in[r] + b[:d_j], out[r, d_j:] = 0.   in (R, IN), W (D, IN), out (R, D). */
static void
nested_out_forward (const Gemm *g, float *out, const float *in, const float *W, const float *b, const int *group_start,
    const int *width, int E, int IN, int D)
{
  for (int j = 0; j < E; j++) {
    int r0 = group_start[j], n = group_start[j + 1] - r0, d = width[j];
    if (n == 0)
      continue;
    gemm (g, CblasNoTrans, CblasTrans, n, d, IN, 1.0f, in + (size_t) r0 * IN, IN, W, IN, 0.0f, out + (size_t) r0 * D,
        D);
    for (int r = r0; r < r0 + n; r++) {
      float *o = out + (size_t) r * D;
      for (int c = 0; c < d; c++)
        o[c] += b[c];
      if (d < D)
        memset (o + d, 0, sizeof (float) * (D - d));
    }
  }
}

/* dW[:d_j, :] += dout_j[:, :d_j]^T in_j; db[:d_j] += column sums; din (R, IN) = dout_j[:, :d_j] W[:d_j, :].
 * dout's trailing columns are ignored: those outputs were constant zeros. */
static void
nested_out_backward (const Gemm *g, float *din, float *dW, float *db, const float *dout, const float *in,
    const float *W, const int *group_start, const int *width, int E, int IN, int D)
{
  for (int j = 0; j < E; j++) {
    int r0 = group_start[j], n = group_start[j + 1] - r0, d = width[j];
    if (n == 0)
      continue;
    gemm (g, CblasTrans, CblasNoTrans, d, IN, n, 1.0f, dout + (size_t) r0 * D, D, in + (size_t) r0 * IN, IN, 1.0f, dW,
        IN);
    gemm (g, CblasNoTrans, CblasNoTrans, n, IN, d, 1.0f, dout + (size_t) r0 * D, D, W, IN, 0.0f, din + (size_t) r0 * IN,
        IN);
    for (int r = r0; r < r0 + n; r++)
      for (int c = 0; c < d; c++)
        db[c] += dout[(size_t) r * D + c];
  }
}

/* Sums over a row in double precision in four partial sums (c mod 4) added at the end: four
 * independent chains instead of one, whose latency bound the LayerNorms. A fixed order: the same
 * bits at any thread count. */
static double
row_sum (const float *x, int D)
{
  double part[4] = { 0, 0, 0, 0 };
  int c = 0;
  for (; c + 4 <= D; c += 4)
    for (int j = 0; j < 4; j++)
      part[j] += x[c + j];
  for (; c < D; c++)
    part[c % 4] += x[c];
  return (part[0] + part[1]) + (part[2] + part[3]);
}

/* sum_c (x[c] - m)^2, the same way. */
static double
row_squared_deviation (const float *x, int D, double m)
{
  double part[4] = { 0, 0, 0, 0 };
  int c = 0;
  for (; c + 4 <= D; c += 4)
    for (int j = 0; j < 4; j++)
      part[j] += (x[c + j] - m) * (x[c + j] - m);
  for (; c < D; c++)
    part[c % 4] += (x[c] - m) * (x[c] - m);
  return (part[0] + part[1]) + (part[2] + part[3]);
}

/* LayerNorm over D channels: out = (x - mean) * rstd * w + b. mean, rstd (R) saved for backward. */
static void
layernorm_forward (float *out, float *mean, float *rstd, const float *in, const float *w, const float *b, int R, int D,
    float eps)
{
  for (int r = 0; r < R; r++) {
    const float *x = in + (size_t) r * D;
    const double m = row_sum (x, D) / D;
    const double v = row_squared_deviation (x, D, m) / D;
    float s = (float) (1.0 / sqrt (v + eps));
    float *y = out + (size_t) r * D;
    for (int c = 0; c < D; c++)
      y[c] = (float) (x[c] - m) * s * w[c] + b[c];
    mean[r] = (float) m;
    rstd[r] = s;
  }
}

/* din (R, D) += LN backward of dout; dw, db (D) accumulate. */
static void
layernorm_backward (float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
    const float *mean, const float *rstd, int R, int D)
{
  for (int r = 0; r < R; r++) {
    const float *x = in + (size_t) r * D, *dy = dout + (size_t) r * D;
    float *dx = din + (size_t) r * D;
    float m = mean[r], s = rstd[r];
    double sum_dn[4] = { 0, 0, 0, 0 }, sum_dn_n[4] = { 0, 0, 0, 0 }; /* partial sums, c mod 4 */
    for (int c = 0; c < D; c += 4)
      for (int j = 0; j < 4 && c + j < D; j++) {
        float n = (x[c + j] - m) * s;
        float dn = dy[c + j] * w[c + j];
        sum_dn[j] += dn;
        sum_dn_n[j] += dn * n;
        dw[c + j] += dy[c + j] * n;
        db[c + j] += dy[c + j];
      }
    float mean_dn = (float) (((sum_dn[0] + sum_dn[1]) + (sum_dn[2] + sum_dn[3])) / D);
    float mean_dn_n = (float) (((sum_dn_n[0] + sum_dn_n[1]) + (sum_dn_n[2] + sum_dn_n[3])) / D);
    for (int c = 0; c < D; c++) {
      float n = (x[c] - m) * s;
      dx[c] += s * (dy[c] * w[c] - mean_dn - n * mean_dn_n);
    }
  }
}

/* Exact GELU: out = x Phi(x); Phi(x) saved in cdf for the backward (the engine's vector erf, 2.9e-7
 * absolute, one pass over the values). */
static void
gelu_forward (float *out, float *cdf, const float *in, size_t n)
{
  for (size_t i = 0; i < n; i += INT_MAX / 2)
    mone_gelu_cdf_array ((int) MIN (n - i, (size_t) INT_MAX / 2), in + i, out + i, cdf + i);
}

/* din = dout * (Phi(x) + x phi(x)), phi by the engine's vector exp. */
static void
gelu_backward (float *din, const float *dout, const float *in, const float *cdf, size_t n)
{
  for (size_t i = 0; i < n; i += INT_MAX / 2)
    mone_gelu_grad_array ((int) MIN (n - i, (size_t) INT_MAX / 2), dout + i, in + i, cdf + i, din + i);
}

static void
softmax_row (float *x, int n)
{
  float mx = x[0];
  for (int i = 1; i < n; i++)
    mx = x[i] > mx ? x[i] : mx;
  double sum = 0;
  for (int i = 0; i < n; i++) {
    x[i] = expf (x[i] - mx);
    sum += x[i];
  }
  float inv = (float) (1.0 / sum);
  for (int i = 0; i < n; i++)
    x[i] *= inv;
}

/* Full-width multi-head attention per image. qkv (B, N, 3D) rows q|k|v in image order,
 * probs (B, H, N, N) saved, out (B, N, D). */
static void
attention_forward (const Gemm *g, float *out, float *probs, const float *qkv, int B, int N, int D, int H)
{
  const int hd = D / H, ld = 3 * D;
  const float scale = 1.0f / sqrtf ((float) hd);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const float *q = qkv + (size_t) b * N * ld + h * hd, *k = q + D, *v = q + 2 * D;
      float *p = probs + ((size_t) b * H + h) * N * N;
      gemm (g, CblasNoTrans, CblasTrans, N, N, hd, scale, q, ld, k, ld, 0.0f, p, N);
      mone_softmax_rows (N, N, 1.0f, p, N, NULL);
      gemm (g, CblasNoTrans, CblasNoTrans, N, hd, N, 1.0f, p, N, v, ld, 0.0f, out + (size_t) b * N * D + h * hd, D);
    }
}

/* dqkv (B, N, 3D) overwritten from dout (B, N, D); dp is (N, N) scratch. */
static void
attention_backward (const Gemm *g, float *dqkv, float *dp, const float *dout, const float *qkv, const float *probs,
    int B, int N, int D, int H)
{
  const int hd = D / H, ld = 3 * D;
  const float scale = 1.0f / sqrtf ((float) hd);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      size_t base = (size_t) b * N * ld + h * hd;
      const float *q = qkv + base, *k = q + D, *v = q + 2 * D;
      float *dq = dqkv + base, *dk = dq + D, *dv = dq + 2 * D;
      const float *p = probs + ((size_t) b * H + h) * N * N;
      const float *dO = dout + (size_t) b * N * D + h * hd;
      /* dP = dO V^T; dV = P^T dO */
      gemm (g, CblasNoTrans, CblasTrans, N, N, hd, 1.0f, dO, D, v, ld, 0.0f, dp, N);
      gemm (g, CblasTrans, CblasNoTrans, N, hd, N, 1.0f, p, N, dO, D, 0.0f, dv, ld);
      /* softmax backward: dS = P * (dP - rowsum(dP * P)) */
      for (int i = 0; i < N; i++) {
        const float *pi = p + (size_t) i * N;
        float *di = dp + (size_t) i * N;
        double dot = 0;
        for (int j = 0; j < N; j++)
          dot += pi[j] * di[j];
        for (int j = 0; j < N; j++)
          di[j] = pi[j] * (di[j] - (float) dot);
      }
      /* S = scale Q K^T: dQ = scale dS K; dK = scale dS^T Q */
      gemm (g, CblasNoTrans, CblasNoTrans, N, hd, N, scale, dp, N, k, ld, 0.0f, dq, ld);
      gemm (g, CblasTrans, CblasNoTrans, N, hd, N, scale, dp, N, q, ld, 0.0f, dk, ld);
    }
}

/* The gated MLP residual: out = z + (alpha g + 1) m, with g (R) per row. */
static void
gated_residual_forward (float *out, const float *z, const float *m, const float *g, float alpha, int R, int D)
{
  for (int r = 0; r < R; r++) {
    float s = alpha * g[r] + 1.0f;
    for (int c = 0; c < D; c++)
      out[(size_t) r * D + c] = z[(size_t) r * D + c] + s * m[(size_t) r * D + c];
  }
}

/* dm = (alpha g + 1) dout; dg += alpha <dout, m>; dalpha += g <dout, m>. dz is dout itself. */
static void
gated_residual_backward (float *dm, float *dg, double *dalpha, const float *dout, const float *m, const float *g,
    float alpha, int R, int D)
{
  double da = 0;
  for (int r = 0; r < R; r++) {
    const float *dy = dout + (size_t) r * D, *mr = m + (size_t) r * D;
    float s = alpha * g[r] + 1.0f;
    double dot = 0;
    for (int c = 0; c < D; c++) {
      dm[(size_t) r * D + c] = s * dy[c];
      dot += (double) dy[c] * mr[c];
    }
    dg[r] += (float) (alpha * dot);
    da += g[r] * dot;
  }
  *dalpha += da;
}

/* Mean over each image's N tokens: pooled (B, D); image_of_row (R). */
static void
mean_pool_forward (float *pooled, const float *x, const int *image_of_row, int B, int N, int D)
{
  memset (pooled, 0, sizeof (float) * B * D);
  for (int r = 0; r < B * N; r++) {
    float *p = pooled + (size_t) image_of_row[r] * D;
    for (int c = 0; c < D; c++)
      p[c] += x[(size_t) r * D + c];
  }
  for (int i = 0; i < B * D; i++)
    pooled[i] /= N;
}

static void
mean_pool_backward (float *dx, const float *dpooled, const int *image_of_row, int B, int N, int D)
{
  for (int r = 0; r < B * N; r++)
    for (int c = 0; c < D; c++)
      dx[(size_t) r * D + c] = dpooled[(size_t) image_of_row[r] * D + c] / N;
}

/* Target distribution q of image b: the given soft targets (B, K) if any (distillation), else the
 * label smoothed by ls. */
static inline double
target_prob (const guint8 *labels, const float *soft_targets, int b, int k, int K, float ls)
{
  if (soft_targets)
    return soft_targets[(size_t) b * K + k];
  return ls / K + (k == labels[b] ? 1.0 - ls : 0.0);
}

/* Cross-entropy against q = target_prob: probs (B, K) written. Returns the sum of the per-image
 * losses (0 without targets). */
static double
crossentropy_forward (float *probs, const float *logits, const guint8 *labels, const float *soft_targets, int B, int K,
    float ls)
{
  double total = 0;
  for (int b = 0; b < B; b++) {
    float *p = probs + (size_t) b * K;
    memcpy (p, logits + (size_t) b * K, sizeof (float) * K);
    softmax_row (p, K);
    if (!labels && !soft_targets)
      continue;
    for (int k = 0; k < K; k++) {
      double q = target_prob (labels, soft_targets, b, k, K, ls);
      if (q > 0)
        total -= q * log (fmax (p[k], 1e-30));
    }
  }
  return total;
}

/* dlogits = weight (probs - q). */
static void
crossentropy_backward (float *dlogits, const float *probs, const guint8 *labels, const float *soft_targets, int B,
    int K, float ls, float weight)
{
  for (int b = 0; b < B; b++)
    for (int k = 0; k < K; k++) {
      float q = (float) target_prob (labels, soft_targets, b, k, K, ls);
      dlogits[(size_t) b * K + k] = weight * (probs[(size_t) b * K + k] - q);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Activations of one pass. */

typedef struct {
  float *x_in;                /* (R, D) grouped: block input */
  float *ln1;                 /* (R, D) */
  float *ln1_mean, *ln1_rstd; /* (R) */
  float *qkv;                 /* (R, 3D) image order */
  float *att;                 /* (B, H, N, N) attention probabilities */
  float *att_out;             /* (R, D) grouped: attention output (proj input) */
  float *z;                   /* (R, D) grouped: x_in + proj output */
  float *ln2;                 /* (R, D) */
  float *ln2_mean, *ln2_rstd; /* (R) */
  float *fc1;                 /* (R, F) pre-GELU */
  float *gelu;                /* (R, F) */
  float *gelu_cdf;            /* (R, F) Phi(fc1) */
  float *mlp;                 /* (R, D) fc2 output m (zero beyond d_j) */
} BlockActs;

struct MonePass {
  MoneConfig config;
  Gemm gemm;
  int max_batch;
  int batch; /* of the last forward */
  float label_smoothing;
  const guint8 *labels;      /* of the last forward (caller's memory) */
  const float *soft_targets; /* (B, K) of the last forward instead of labels, or NULL (caller's memory) */

  /* Rows per image: S = N patch tokens, after a class token (cls = 1) when the model has one.
   * "Image order" below is (B, S); the class token is row 0 of its image. */
  int seq, cls;
  int counts[MONE_MAX_EXPERTS];          /* tokens per expert per image */
  int group_start[MONE_MAX_EXPERTS + 1]; /* (E+1) grouped row ranges */
  int width[MONE_MAX_EXPERTS];           /* d_j */

  float *pixel_inv_std;       /* (C) 1 / mone.std */
  float *patches;             /* (B * N, P) image order: normalised pixels, or the stem's last map */
  float *x0;                  /* (R, D) image order: patch embedding + position */
  float *router_probs;        /* (R, E) image order */
  float *router_xc;           /* (R, D) image order, x0 minus its image's mean patch row (hidden router) */
  float *router_pre, *router_h; /* (R, router_hidden) the hidden layer before and after GELU */
  uint8_t *expert;            /* (R) image order: expert of each token */
  uint8_t *patch_expert;      /* (B, N) the patch tokens' experts (class-token models) */
  float *patch_probs;         /* (B, N, E) their router probabilities (class-token models) */
  int *cls_row;               /* (B) grouped row of each image's class token */
  int *row_of_group;          /* (R) grouped row -> image-order row */
  int *image_of_row;          /* (R) grouped row -> image */
  float *g;                   /* (R) grouped: router probability of the chosen expert */
  BlockActs *blocks;          /* (L) */
  float *x_final;             /* (R, D) grouped: output of the last block */
  float *lnf;                 /* (R, D) */
  float *lnf_mean, *lnf_rstd; /* (R) */
  float *pooled;              /* (B, D) */
  float *logits;              /* (B, K) */
  float *probs;               /* (B, K) */
  int *route_scratch;         /* (2N) */
  const float *item_cover;    /* (B, N) for MONE_ROUTING_ITEM_BOX, caller's memory */
  float *box_scores;          /* (N, E) ranking scores for MONE_ROUTING_ITEM_BOX */

  /* Backward scratch. */
  float *dx, *dz, *dh;  /* (R, D) */
  float *dqkv_g, *dqkv; /* (R, 3D) grouped / image order; also forward scratch for qkv */
  float *datt, *datt_g; /* (R, D) image / grouped order */
  float *dfc, *dgelu;   /* (R, F) */
  float *dmlp;          /* (R, D) */
  float *dp;            /* (S, S) */
  float *dg;            /* (R) grouped */
  float *dg_image;      /* (R) image order */
  float *dlogits;       /* (B, K) */
  float *dpooled;       /* (B, D) */
  float *drouter;       /* (R, E) */
  float *drouter_h;     /* (R, router_hidden) */
  float *dx0;           /* (R, D) image order */
  float *dpatches;      /* (B * N, P) */

  /* Convolutional stem (mone.stem): layer i < S maps (B, H_i, W_i) = (B, H >> (i + 1), W >> (i + 1))
   * pixels, channels last, so that each is one sgemm with the pixels as rows. NULL past S. */
  float *stem_col[MONE_MAX_STEM_LAYERS];           /* (B H_i W_i, 9 C_{i-1}) the layer's 3x3 input windows */
  float *stem_window_weight[MONE_MAX_STEM_LAYERS]; /* (C_i, 9 C_{i-1}) the weights in window order */
  float *stem_pre[MONE_MAX_STEM_LAYERS];           /* (B H_i W_i, C_i) before GELU */
  float *stem_cdf[MONE_MAX_STEM_LAYERS];           /* (B H_i W_i, C_i) Phi(pre) */
  float *stem_out[MONE_MAX_STEM_LAYERS];           /* (B H_i W_i, C_i) after GELU: the next layer's input */
  float *dstem_out, *dstem_pre;                    /* backward scratch, the largest (B H_i W_i, C_i) */
  float *dstem_col;                                /* backward scratch, the largest (B H_i W_i, 9 C_{i-1}) */
  float *dstem_window_weight;                      /* backward scratch, the largest (C_i, 9 C_{i-1}) */
  /* mone_pass_stem_hold: the stem's activations of the first forward serve the next ones
   * (stem_ready, for stem_batch images), and the patches' gradients add up in dpatches
   * (dpatches_pending) for one stem backward in mone_pass_stem_release. */
  gboolean stem_held, stem_ready, dpatches_pending;
  int stem_batch;
};

/* A batch of maps through strides: value (b, ch, y, x) at
 * data[b * image + ch * channel + y * row + x * column], normalised by (value - mean[ch]) * inv_std[ch]
 * when mean is not NULL (the pixels: the patch embedding and the stem read them normalised). */
typedef struct {
  int channels, height, width;
  size_t image, channel, row, column;
  const float *mean, *inv_std; /* (channels) or NULL */
} MapLayout;

/* The input pixels, (B, C, H, W) planes. */
static MapLayout
pixel_layout (const MonePass *s)
{
  const MoneConfig *c = &s->config;
  const size_t plane = (size_t) c->height * c->width;
  return (MapLayout){ .channels = c->channels,
    .height = c->height,
    .width = c->width,
    .image = c->channels * plane,
    .channel = plane,
    .row = c->width,
    .column = 1,
    .mean = c->mean,
    .inv_std = s->pixel_inv_std };
}

/* Stem layer i's output, (B, H_i, W_i, C_i): channels last, as its sgemm writes it. */
static MapLayout
stem_layout (const MonePass *s, int i)
{
  const MoneConfig *c = &s->config;
  const int C = c->stem_channels[i], H = c->height >> (i + 1), W = c->width >> (i + 1);
  return (MapLayout){ .channels = C,
    .height = H,
    .width = W,
    .image = (size_t) H * W * C,
    .channel = 1,
    .row = (size_t) W * C,
    .column = C };
}

/* What the patch embedding reads: the pixels, or the stem's last map. */
static MapLayout
embed_layout (const MonePass *s)
{
  return s->config.stem_layers ? stem_layout (s, s->config.stem_layers - 1) : pixel_layout (s);
}

MonePass *
mone_pass_new (const MoneConfig *config, int max_batch)
{
  MonePass *s = g_new0 (MonePass, 1);
  const MoneConfig *c = &s->config;
  s->config = *config;
  s->gemm.isa = mone_isa_default () == MONE_ISA_GENERIC ? MONE_ISA_OPENBLAS : mone_isa_default ();
  s->gemm.scratch = g_new (float, mone_gemm_general_scratch_floats ());
  s->max_batch = max_batch;
  s->cls = c->pool == MONE_POOL_CLS;
  s->seq = c->tokens + s->cls;
  const size_t R = (size_t) max_batch * s->seq, D = c->dim, F = c->mlp_dim, E = c->experts, N = c->tokens, S = s->seq,
               P = mone_patch_inputs (c), B = max_batch, K = c->classes;
  s->pixel_inv_std = g_new (float, c->channels);
  for (int ch = 0; ch < c->channels; ch++)
    s->pixel_inv_std[ch] = 1.0f / c->std[ch];
  s->patches = g_new (float, B *N *P);
  s->patch_expert = g_new (uint8_t, B * N);
  s->patch_probs = g_new (float, B *N *E);
  s->cls_row = g_new (int, B);
  s->x0 = g_new (float, R *D);
  s->router_probs = g_new (float, R *E);
  if (c->router_hidden) {
    s->router_xc = g_new (float, R *D);
    s->router_pre = g_new (float, R * c->router_hidden);
    s->router_h = g_new (float, R * c->router_hidden);
    s->drouter_h = g_new (float, R * c->router_hidden);
  }
  s->expert = g_new (uint8_t, R);
  s->row_of_group = g_new (int, R);
  s->image_of_row = g_new (int, R);
  s->g = g_new (float, R);
  s->blocks = g_new0 (BlockActs, c->depth);
  for (int l = 0; l < c->depth; l++) {
    BlockActs *a = &s->blocks[l];
    a->x_in = g_new (float, R *D);
    a->ln1 = g_new (float, R *D);
    a->ln1_mean = g_new (float, R);
    a->ln1_rstd = g_new (float, R);
    a->qkv = g_new (float, R * 3 * D);
    a->att = g_new (float, B * c->heads * S * S);
    a->att_out = g_new (float, R *D);
    a->z = g_new (float, R *D);
    a->ln2 = g_new (float, R *D);
    a->ln2_mean = g_new (float, R);
    a->ln2_rstd = g_new (float, R);
    a->fc1 = g_new (float, R *F);
    a->gelu = g_new (float, R *F);
    a->gelu_cdf = g_new (float, R *F);
    a->mlp = g_new (float, R *D);
  }
  s->x_final = g_new (float, R *D);
  s->lnf = g_new (float, R *D);
  s->lnf_mean = g_new (float, R);
  s->lnf_rstd = g_new (float, R);
  s->pooled = g_new (float, B *D);
  s->logits = g_new (float, B *K);
  s->probs = g_new (float, B *K);
  s->route_scratch = g_new (int, 2 * N);
  s->box_scores = g_new (float, (size_t) N * c->experts);
  s->dx = g_new (float, R *D);
  s->dz = g_new (float, R *D);
  s->dh = g_new (float, R *D);
  s->dqkv_g = g_new (float, R * 3 * D);
  s->dqkv = g_new (float, R * 3 * D);
  s->datt = g_new (float, R *D);
  s->datt_g = g_new (float, R *D);
  s->dfc = g_new (float, R *F);
  s->dgelu = g_new (float, R *F);
  s->dmlp = g_new (float, R *D);
  s->dp = g_new (float, S *S);
  s->dg = g_new (float, R);
  s->dg_image = g_new (float, R);
  s->dlogits = g_new (float, B *K);
  s->dpooled = g_new (float, B *D);
  s->drouter = g_new (float, R *E);
  s->dx0 = g_new (float, R *D);
  s->dpatches = g_new (float, B *N *P);
  size_t max_map = 0, max_col = 0, max_weight = 0;
  for (int i = 0; i < c->stem_layers; i++) {
    const size_t rows = B * (size_t) (c->height >> (i + 1)) * (size_t) (c->width >> (i + 1));
    const size_t in = 9 * (size_t) mone_stem_in_channels (c, i), out = c->stem_channels[i];
    s->stem_col[i] = g_new (float, rows *in);
    s->stem_window_weight[i] = g_new (float, out *in);
    max_weight = MAX (max_weight, out * in);
    s->stem_pre[i] = g_new (float, rows *out);
    s->stem_cdf[i] = g_new (float, rows *out);
    s->stem_out[i] = g_new (float, rows *out);
    max_map = MAX (max_map, rows * out);
    max_col = MAX (max_col, rows * in);
  }
  if (c->stem_layers) {
    s->dstem_out = g_new (float, max_map);
    s->dstem_pre = g_new (float, max_map);
    s->dstem_col = g_new (float, max_col);
    s->dstem_window_weight = g_new (float, max_weight);
  }
  return s;
}

void
mone_pass_free (MonePass *s)
{
  if (!s)
    return;
  g_free (s->gemm.scratch);
  for (int l = 0; l < s->config.depth; l++) {
    BlockActs *a = &s->blocks[l];
    g_free (a->x_in);
    g_free (a->ln1);
    g_free (a->ln1_mean);
    g_free (a->ln1_rstd);
    g_free (a->qkv);
    g_free (a->att);
    g_free (a->att_out);
    g_free (a->z);
    g_free (a->ln2);
    g_free (a->ln2_mean);
    g_free (a->ln2_rstd);
    g_free (a->fc1);
    g_free (a->gelu);
    g_free (a->gelu_cdf);
    g_free (a->mlp);
  }
  g_free (s->blocks);
  for (int i = 0; i < s->config.stem_layers; i++) {
    g_free (s->stem_col[i]);
    g_free (s->stem_window_weight[i]);
    g_free (s->stem_pre[i]);
    g_free (s->stem_cdf[i]);
    g_free (s->stem_out[i]);
  }
  void *bufs[] = { s->pixel_inv_std, s->dstem_out, s->dstem_pre, s->dstem_col, s->dstem_window_weight, s->patches,
    s->x0, s->router_probs, s->expert, s->row_of_group, s->image_of_row, s->g, s->x_final, s->lnf, s->lnf_mean,
    s->lnf_rstd, s->pooled, s->logits, s->probs, s->route_scratch, s->box_scores, s->dx, s->dz, s->dh, s->dqkv_g,
    s->dqkv, s->datt, s->datt_g, s->dfc, s->dgelu, s->dmlp, s->dp, s->dg, s->dg_image, s->dlogits, s->dpooled,
    s->drouter, s->dx0, s->dpatches, s->patch_expert, s->patch_probs, s->cls_row, s->router_xc, s->router_pre,
    s->router_h, s->drouter_h };
  for (size_t i = 0; i < G_N_ELEMENTS (bufs); i++)
    g_free (bufs[i]);
  g_free (s);
}

/* Cuts the maps in (layout l: the normalised pixels, or the stem's last map) into patches: patches
 * (B * N, P) image order, row-major patch grid, each patch of side p' flattened in (channel, row,
 * column) order. */
static void
patchify_forward (float *patches, const float *in, const MapLayout *l, const MoneConfig *c, int B)
{
  const int p = mone_embed_patch (c), P = mone_patch_inputs (c);
  for (int b = 0; b < B; b++)
    for (int gy = 0; gy < c->grid_height; gy++)
      for (int gx = 0; gx < c->grid_width; gx++) {
        float *dst = patches + ((size_t) b * c->tokens + gy * c->grid_width + gx) * P;
        for (int ch = 0; ch < l->channels; ch++) {
          const float *plane = in + b * l->image + ch * l->channel;
          const float mean = l->mean ? l->mean[ch] : 0.0f, inv_std = l->mean ? l->inv_std[ch] : 1.0f;
          for (int y = 0; y < p; y++)
            for (int x = 0; x < p; x++)
              *dst++ = (plane[(gy * p + y) * l->row + (gx * p + x) * l->column] - mean) * inv_std;
        }
      }
}

/* din (layout l) = the patches' gradient put back in place (overwritten: the patches tile the
 * maps), through the normalisation. */
static void
patchify_backward (float *din, const float *dpatches, const MapLayout *l, const MoneConfig *c, int B)
{
  const int p = mone_embed_patch (c), P = mone_patch_inputs (c);
  for (int b = 0; b < B; b++)
    for (int gy = 0; gy < c->grid_height; gy++)
      for (int gx = 0; gx < c->grid_width; gx++) {
        const float *src = dpatches + ((size_t) b * c->tokens + gy * c->grid_width + gx) * P;
        for (int ch = 0; ch < l->channels; ch++) {
          float *plane = din + b * l->image + ch * l->channel;
          const float inv_std = l->mean ? l->inv_std[ch] : 1.0f;
          for (int y = 0; y < p; y++)
            for (int x = 0; x < p; x++)
              plane[(gy * p + y) * l->row + (gx * p + x) * l->column] = *src++ * inv_std;
        }
      }
}

/* The input windows of a 3x3, stride-2, padding-1 convolution over the maps in (layout l, even
 * sides): col (B * H/2 * W/2, 9 C), row (b, y, x), column (ky, kx, channel) = in at
 * (2y + ky - 1, 2x + kx - 1), normalised, and 0 outside the map (zero padding in normalised units,
 * as PyTorch pads the normalised tensor). The channel runs fastest, so on a channels-last map each
 * window is nine copies of C floats; the weights are permuted to match (stem_weight_to_windows). */
static void
im2col_forward (float *col, const float *in, const MapLayout *l, int B)
{
  const int C = l->channels, Ho = l->height / 2, Wo = l->width / 2;
  const gboolean channels_last = l->channel == 1 && !l->mean;
  for (int b = 0; b < B; b++)
    for (int y = 0; y < Ho; y++)
      for (int x = 0; x < Wo; x++) {
        float *window = col + (((size_t) b * Ho + y) * Wo + x) * 9 * C;
        for (int ky = 0; ky < 3; ky++)
          for (int kx = 0; kx < 3; kx++) {
            const int iy = 2 * y + ky - 1, ix = 2 * x + kx - 1;
            float *dst = window + (ky * 3 + kx) * C;
            if (iy < 0 || iy >= l->height || ix < 0 || ix >= l->width) {
              memset (dst, 0, sizeof (float) * C);
              continue;
            }
            const float *src = in + b * l->image + iy * l->row + ix * l->column;
            if (channels_last)
              memcpy (dst, src, sizeof (float) * C);
            else
              for (int ch = 0; ch < C; ch++)
                dst[ch] = l->mean ? (src[ch * l->channel] - l->mean[ch]) * l->inv_std[ch] : src[ch * l->channel];
          }
      }
}

/* din (layout l, dense; overwritten) = the sum over the windows that read each value of their
 * gradient dcol (B * H/2 * W/2, 9 C), through the normalisation; padding takes none. */
static void
im2col_backward (float *din, const float *dcol, const MapLayout *l, int B)
{
  const int C = l->channels, Ho = l->height / 2, Wo = l->width / 2;
  g_assert (l->image == (size_t) C * l->height * l->width);
  memset (din, 0, sizeof (float) * B * l->image);
  for (int b = 0; b < B; b++)
    for (int y = 0; y < Ho; y++)
      for (int x = 0; x < Wo; x++) {
        const float *window = dcol + (((size_t) b * Ho + y) * Wo + x) * 9 * C;
        for (int ky = 0; ky < 3; ky++)
          for (int kx = 0; kx < 3; kx++) {
            const int iy = 2 * y + ky - 1, ix = 2 * x + kx - 1;
            if (iy < 0 || iy >= l->height || ix < 0 || ix >= l->width)
              continue;
            const float *src = window + (ky * 3 + kx) * C;
            float *dst = din + b * l->image + iy * l->row + ix * l->column;
            for (int ch = 0; ch < C; ch++)
              dst[ch * l->channel] += l->mean ? src[ch] * l->inv_std[ch] : src[ch];
          }
      }
}

/* PyTorch's Conv2d weight W (OUT, C, 3, 3) -> Wp (OUT, 3, 3, C), im2col's column order. */
static void
stem_weight_to_windows (float *Wp, const float *W, int OUT, int C)
{
  for (int o = 0; o < OUT; o++)
    for (int ch = 0; ch < C; ch++)
      for (int k = 0; k < 9; k++)
        Wp[((size_t) o * 9 + k) * C + ch] = W[((size_t) o * C + ch) * 9 + k];
}

/* dW (OUT, C, 3, 3) += dWp (OUT, 3, 3, C). */
static void
stem_weight_from_windows_add (float *dW, const float *dWp, int OUT, int C)
{
  for (int o = 0; o < OUT; o++)
    for (int ch = 0; ch < C; ch++)
      for (int k = 0; k < 9; k++)
        dW[((size_t) o * C + ch) * 9 + k] += dWp[((size_t) o * 9 + k) * C + ch];
}

/* The convolutional stem: layer i, on the normalised pixels (i = 0) or layer i - 1's output,
 * pre (B H_i W_i, C_i) = col Wp_i^T + b_i with col the 3x3 windows, then out = GELU(pre). */
static void
stem_forward (MonePass *s, const MoneTrainTensors *w, const float *input, int B)
{
  const MoneConfig *c = &s->config;
  for (int i = 0; i < c->stem_layers; i++) {
    const MapLayout in = i ? stem_layout (s, i - 1) : pixel_layout (s);
    const int rows = B * (c->height >> (i + 1)) * (c->width >> (i + 1)), OUT = c->stem_channels[i];
    stem_weight_to_windows (s->stem_window_weight[i], w->stem_weight[i], OUT, in.channels);
    im2col_forward (s->stem_col[i], i ? s->stem_out[i - 1] : input, &in, B);
    linear_forward (&s->gemm, s->stem_pre[i], s->stem_col[i], s->stem_window_weight[i], w->stem_bias[i], rows,
        9 * in.channels, OUT);
    gelu_forward (s->stem_out[i], s->stem_cdf[i], s->stem_pre[i], (size_t) rows * OUT);
  }
}

/* From the patches' gradient (s->dpatches) back through the stem: dWp_i = dpre^T col, db_i, and
 * dcol = dpre Wp_i folded back onto layer i - 1's output, or onto the pixels when dinput is given
 * (overwritten; layer 0's dcol is not computed without it). */
static void
stem_backward (MonePass *s, MoneTrainTensors *gw, float *dinput)
{
  const MoneConfig *c = &s->config;
  const int B = s->batch;
  const MapLayout last = stem_layout (s, c->stem_layers - 1);
  patchify_backward (s->dstem_out, s->dpatches, &last, c, B);
  for (int i = c->stem_layers - 1; i >= 0; i--) {
    const MapLayout in = i ? stem_layout (s, i - 1) : pixel_layout (s);
    const int rows = B * (c->height >> (i + 1)) * (c->width >> (i + 1)), OUT = c->stem_channels[i], K = 9 * in.channels;
    float *dcol = i || dinput ? s->dstem_col : NULL;
    gelu_backward (s->dstem_pre, s->dstem_out, s->stem_pre[i], s->stem_cdf[i], (size_t) rows * OUT);
    memset (s->dstem_window_weight, 0, sizeof (float) * OUT * K);
    linear_backward (&s->gemm, dcol, s->dstem_window_weight, gw->stem_bias[i], s->dstem_pre, s->stem_col[i],
        s->stem_window_weight[i], rows, K, OUT);
    stem_weight_from_windows_add (gw->stem_weight[i], s->dstem_window_weight, OUT, in.channels);
    if (dcol) /* s->dstem_out is free again: it becomes layer i - 1's output gradient */
      im2col_backward (i ? s->dstem_out : dinput, dcol, &in, B);
  }
}

/* Random routing for the router ablation: the same number of tokens per expert as EPR, assigned by
 * a uniformly random permutation of the tokens. */
static void
route_random (int N, int E, const int *counts, uint8_t *expert, int *perm, MoneTrainRng *rng)
{
  for (int t = 0; t < N; t++)
    perm[t] = t;
  for (int t = N - 1; t > 0; t--) {
    int u = (int) mone_train_rng_below (rng, (uint32_t) (t + 1));
    int tmp = perm[t];
    perm[t] = perm[u];
    perm[u] = tmp;
  }
  int pos = 0;
  for (int j = E - 1; j >= 1; j--)
    for (int k = 0; k < counts[j]; k++)
      expert[perm[pos++]] = (uint8_t) j;
  while (pos < N)
    expert[perm[pos++]] = 0;
}

static void
gather_rows (float *dst, const float *src, const int *row_of_group, int R, int width)
{
  for (int r = 0; r < R; r++)
    memcpy (dst + (size_t) r * width, src + (size_t) row_of_group[r] * width, sizeof (float) * width);
}

static void
scatter_rows (float *dst, const float *src, const int *row_of_group, int R, int width)
{
  for (int r = 0; r < R; r++)
    memcpy (dst + (size_t) row_of_group[r] * width, src + (size_t) r * width, sizeof (float) * width);
}

/* Embedding of a batch: s->x0 (B * S, D), image order. */
static void
embed_forward (MonePass *s, const MoneTrainTensors *w, const float *input, int B)
{
  const MoneConfig *c = &s->config;
  const int N = c->tokens, D = c->dim, S = s->seq, cls = s->cls, P = mone_patch_inputs (c);
  /* Embedding: x0 (R, D) = patches W_pe^T + b_pe + pos[t]; a class token is cls_token + pos[0],
   * the patches follow it (their patch embedding computed in s->dx0, free until the backward).
   * The patches are the normalised pixels', or those of the stem's last map. */
  if (!s->stem_ready) {
    stem_forward (s, w, input, B);
    const MapLayout l = embed_layout (s);
    patchify_forward (s->patches, c->stem_layers ? s->stem_out[c->stem_layers - 1] : input, &l, c, B);
    s->stem_ready = s->stem_held;
    s->stem_batch = B;
  }
  g_assert (B == s->stem_batch || !s->stem_held);
  float *patch_rows = cls ? s->dx0 : s->x0;
  linear_forward (&s->gemm, patch_rows, s->patches, w->patch_embed_weight, w->patch_embed_bias, B * N, P, D);
  for (int b = 0; b < B; b++) {
    float *x = s->x0 + (size_t) b * S * D;
    if (cls) {
      memcpy (x + D, patch_rows + (size_t) b * N * D, sizeof (float) * N * D);
      for (int i = 0; i < D; i++)
        x[i] = w->cls_token[i];
    }
    for (size_t i = 0; i < (size_t) S * D; i++)
      x[i] += w->pos_embed[i];
  }
}

/* Router, image order: probs (R, E) = softmax(x W_r^T + b_r) with x = x0, or with a hidden layer
 * (mone.router_hidden = H) x = GELU(xc W_h^T + b_h), xc = x0 minus its image's mean patch row. */
static void
router_forward (MonePass *s, const MoneTrainTensors *w, int B)
{
  const MoneConfig *c = &s->config;
  const int N = c->tokens, D = c->dim, E = c->experts, H = c->router_hidden, S = s->seq, R = B * S;
  if (!H) {
    linear_forward (&s->gemm, s->router_probs, s->x0, w->router_weight, w->router_bias, R, D, E);
  } else {
    for (int b = 0; b < B; b++) {
      const float *x = s->x0 + (size_t) b * S * D;
      float *xc = s->router_xc + (size_t) b * S * D;
      for (int d = 0; d < D; d++) {
        double sum = 0;
        for (int t = 0; t < N; t++)
          sum += x[(size_t) (s->cls + t) * D + d];
        const float center = (float) (sum / N);
        for (int r = 0; r < S; r++)
          xc[(size_t) r * D + d] = x[(size_t) r * D + d] - center;
      }
    }
    linear_forward (&s->gemm, s->router_pre, s->router_xc, w->router_hidden_weight, w->router_hidden_bias, R, D, H);
    /* erff, not gelu_forward's vector erf: the engine's router uses erff too, so trainer and
     * engine rank tokens from the same GELU. */
    for (size_t i = 0; i < (size_t) R * H; i++) {
      const float u = s->router_pre[i];
      s->router_h[i] = 0.5f * u * (1.0f + erff (u * (float) M_SQRT1_2));
    }
    linear_forward (&s->gemm, s->router_probs, s->router_h, w->router_weight, w->router_bias, R, H, E);
  }
  for (int r = 0; r < R; r++)
    softmax_row (s->router_probs + (size_t) r * E, E);
}

/* From the gradient of the router's logits, dlogits (R, E): the router's parameter gradients (added
 * to gw), and dx (R, D) = the gradient on x0 (overwritten). */
static void
router_logits_backward (MonePass *s, const MoneTrainTensors *w, MoneTrainTensors *gw, const float *dlogits, float *dx,
    int R)
{
  const MoneConfig *c = &s->config;
  const int N = c->tokens, D = c->dim, E = c->experts, H = c->router_hidden, S = s->seq;
  if (!H) {
    linear_backward (&s->gemm, dx, gw->router_weight, gw->router_bias, dlogits, s->x0, w->router_weight, R, D, E);
    return;
  }
  linear_backward (&s->gemm, s->drouter_h, gw->router_weight, gw->router_bias, dlogits, s->router_h, w->router_weight,
      R, H, E);
  for (size_t i = 0; i < (size_t) R * H; i++) {
    /* GELU'(u) = Phi(u) + u phi(u) */
    const float u = s->router_pre[i];
    const float cdf = 0.5f * (1.0f + erff (u * (float) M_SQRT1_2));
    const float pdf = expf (-0.5f * u * u) * (float) (0.5 * M_2_SQRTPI * M_SQRT1_2);
    s->drouter_h[i] *= cdf + u * pdf;
  }
  linear_backward (&s->gemm, dx, gw->router_hidden_weight, gw->router_hidden_bias, s->drouter_h, s->router_xc,
      w->router_hidden_weight, R, D, H);
  /* xc = x0 - mean of the image's patch rows: each patch row also gets -1/N of the image's sum. */
  for (int b = 0; b < R / S; b++) {
    float *g = dx + (size_t) b * S * D;
    for (int d = 0; d < D; d++) {
      double sum = 0;
      for (int r = 0; r < S; r++)
        sum += g[(size_t) r * D + d];
      const float share = (float) (sum / N);
      for (int t = 0; t < N; t++)
        g[(size_t) (s->cls + t) * D + d] -= share;
    }
  }
}

/* The router only reaches the loss through g_r = probs[r, a_r]: dlogits[r, e] = dg_r g_r (1[e = a_r]
 * - probs[r, e]) (in s->drouter). dx0 += the gradient on x0, through s->dh as scratch. */
static void
router_backward (MonePass *s, const MoneTrainTensors *w, MoneTrainTensors *gw, int R)
{
  const int E = s->config.experts, D = s->config.dim;
  for (int r = 0; r < R; r++) {
    const float *p = s->router_probs + (size_t) r * E;
    float ga = p[s->expert[r]], d = s->dg_image[r];
    for (int e = 0; e < E; e++)
      s->drouter[(size_t) r * E + e] = d * ga * ((e == s->expert[r] ? 1.0f : 0.0f) - p[e]);
  }
  router_logits_backward (s, w, gw, s->drouter, s->dh, R);
  for (size_t i = 0; i < (size_t) R * D; i++)
    s->dx0[i] += s->dh[i];
}

/* Router probabilities of every row, and each image's routing: s->expert (image order), and the
 * patch-token views of class-token models. */
static void
route_forward (MonePass *s, const MoneTrainTensors *w, int B, MoneRouting routing, uint64_t routing_seed)
{
  const MoneConfig *c = &s->config;
  const int N = c->tokens, E = c->experts, S = s->seq, cls = s->cls;
  /* Route once per image: the patch tokens by the budget, a class token to the widest expert. */
  router_forward (s, w, B);
  for (int b = 0; b < B; b++) {
    const float *probs = s->router_probs + ((size_t) b * S + cls) * E;
    uint8_t *expert = s->expert + (size_t) b * S + cls;
    if (cls)
      s->expert[(size_t) b * S] = (uint8_t) (E - 1);
    if (routing == MONE_ROUTING_ITEM_BOX) {
      /* Cover decides; among equally covered tokens the router's own preference breaks the tie. */
      g_assert (s->item_cover != NULL);
      const float *cover = s->item_cover + (size_t) b * N;
      for (int t = 0; t < N; t++)
        for (int j = 0; j < E; j++)
          s->box_scores[(size_t) t * E + j] = cover[t] + 1e-3f * probs[(size_t) t * E + j];
      mone_route_tokens (N, E, s->box_scores, s->counts, expert, s->route_scratch);
    } else if (routing == MONE_ROUTING_RANDOM) {
      MoneTrainRng rng;
      mone_train_rng_seed (&rng, routing_seed, (uint64_t) b);
      route_random (N, E, s->counts, expert, s->route_scratch, &rng);
    } else {
      mone_route_tokens (N, E, probs, s->counts, expert, s->route_scratch);
    }
    if (cls) {
      memcpy (s->patch_expert + (size_t) b * N, expert, N);
      memcpy (s->patch_probs + (size_t) b * N * E, probs, sizeof (float) * N * E);
    }
  }
}

static double
pass_forward (MonePass *s, const MoneTrainModel *model, const float *input, const guint8 *labels,
    const float *soft_targets, int B, double budget, MoneRouting routing, uint64_t routing_seed, float label_smoothing)
{
  const MoneConfig *c = &s->config;
  const MoneTrainTensors *w = &model->t;
  const int N = c->tokens, D = c->dim, F = c->mlp_dim, E = c->experts, H = c->heads, K = c->classes;
  const int S = s->seq, cls = s->cls, R = B * S;
  g_assert (B >= 1 && B <= s->max_batch);
  s->batch = B;
  s->labels = labels;
  s->soft_targets = soft_targets;
  s->label_smoothing = label_smoothing;

  /* Capacity and token counts, shared by every image of the pass. */
  double capacity[MONE_MAX_EXPERTS];
  mone_capacity_from_budget (E, c->delta, c->beta, budget, capacity);
  mone_tokens_per_expert (E, capacity, N, s->counts);
  for (int j = 0; j < E; j++)
    s->width[j] = D >> (E - 1 - j);

  embed_forward (s, w, input, B);
  route_forward (s, w, B, routing, routing_seed);

  /* Grouped order: expert by expert, then image by image, then token order. */
  int r = 0;
  for (int j = 0; j < E; j++) {
    s->group_start[j] = r;
    for (int i = 0; i < R; i++)
      if (s->expert[i] == j) {
        s->row_of_group[r] = i;
        s->image_of_row[r] = i / S;
        s->g[r] = s->router_probs[(size_t) i * E + j];
        if (cls && i % S == 0)
          s->cls_row[i / S] = r;
        r++;
      }
  }
  s->group_start[E] = r;
  g_assert (r == R);

  gather_rows (s->blocks[0].x_in, s->x0, s->row_of_group, R, D);
  const float alpha = w->alpha[0];
  for (int l = 0; l < c->depth; l++) {
    BlockActs *a = &s->blocks[l];
    const MoneTrainBlock *bw = &w->blocks[l];
    float *x_out = l + 1 < c->depth ? s->blocks[l + 1].x_in : s->x_final;
    float *qkv_g = s->dqkv_g; /* forward scratch (R, 3D) */
    float *att_img = s->datt; /* forward scratch (R, D) */

    layernorm_forward (a->ln1, a->ln1_mean, a->ln1_rstd, a->x_in, bw->norm1_weight, bw->norm1_bias, R, D, c->ln_eps);
    nested_in_forward (&s->gemm, qkv_g, a->ln1, bw->qkv_weight, bw->qkv_bias, s->group_start, s->width, E, D, 3 * D);
    scatter_rows (a->qkv, qkv_g, s->row_of_group, R, 3 * D);
    attention_forward (&s->gemm, att_img, a->att, a->qkv, B, S, D, H);
    gather_rows (a->att_out, att_img, s->row_of_group, R, D);
    nested_out_forward (&s->gemm, a->z, a->att_out, bw->proj_weight, bw->proj_bias, s->group_start, s->width, E, D, D);
    for (size_t i = 0; i < (size_t) R * D; i++)
      a->z[i] += a->x_in[i];

    layernorm_forward (a->ln2, a->ln2_mean, a->ln2_rstd, a->z, bw->norm2_weight, bw->norm2_bias, R, D, c->ln_eps);
    nested_in_forward (&s->gemm, a->fc1, a->ln2, bw->fc1_weight, bw->fc1_bias, s->group_start, s->width, E, D, F);
    gelu_forward (a->gelu, a->gelu_cdf, a->fc1, (size_t) R * F);
    nested_out_forward (&s->gemm, a->mlp, a->gelu, bw->fc2_weight, bw->fc2_bias, s->group_start, s->width, E, F, D);
    gated_residual_forward (x_out, a->z, a->mlp, s->g, alpha, R, D);
  }

  layernorm_forward (s->lnf, s->lnf_mean, s->lnf_rstd, s->x_final, w->norm_weight, w->norm_bias, R, D, c->ln_eps);
  if (cls)
    for (int b = 0; b < B; b++)
      memcpy (s->pooled + (size_t) b * D, s->lnf + (size_t) s->cls_row[b] * D, sizeof (float) * D);
  else
    mean_pool_forward (s->pooled, s->lnf, s->image_of_row, B, N, D);
  linear_forward (&s->gemm, s->logits, s->pooled, w->head_weight, w->head_bias, B, D, K);
  return crossentropy_forward (s->probs, s->logits, labels, soft_targets, B, K, label_smoothing);
}

double
mone_pass_forward (MonePass *s, const MoneTrainModel *model, const float *input, const guint8 *labels, int B,
    double budget, MoneRouting routing, uint64_t routing_seed, float label_smoothing)
{
  return pass_forward (s, model, input, labels, NULL, B, budget, routing, routing_seed, label_smoothing);
}

void
mone_pass_set_item_cover (MonePass *s, const float *cover)
{
  s->item_cover = cover;
}

double
mone_pass_forward_distill (MonePass *s, const MoneTrainModel *model, const float *input, const float *teacher_probs,
    int B, double budget)
{
  return pass_forward (s, model, input, NULL, teacher_probs, B, budget, MONE_ROUTING_EPR, 0, 0.0f);
}

const float *
mone_pass_probs (const MonePass *s)
{
  return s->probs;
}

const float *
mone_pass_logits (const MonePass *s)
{
  return s->logits;
}

const uint8_t *
mone_pass_experts (const MonePass *s)
{
  return s->cls ? s->patch_expert : s->expert;
}

const float *
mone_pass_router_probs (const MonePass *s)
{
  return s->cls ? s->patch_probs : s->router_probs;
}

/* Sums the residual stream's rows of the last forward, each centred (its mean over the channels
 * removed, as LayerNorm removes it), into moments (D, D) += sum over rows of row^T row: at every
 * block's input and after its attention, and at the last block's output. */
void
mone_pass_add_residual_moments (const MonePass *s, double *moments)
{
  const int D = s->config.dim, R = s->batch * s->seq;
  float *centred = g_new (float, (size_t) R *D);
  float *product = g_new (float, (size_t) D *D);
  for (int point = 0; point <= 2 * s->config.depth; point++) {
    const int l = point / 2;
    const float *x = point == 2 * s->config.depth ? s->x_final : point % 2 ? s->blocks[l].z : s->blocks[l].x_in;
    for (int r = 0; r < R; r++) {
      const float *row = x + (size_t) r * D;
      double mean = 0;
      for (int d = 0; d < D; d++)
        mean += row[d];
      mean /= D;
      for (int d = 0; d < D; d++)
        centred[(size_t) r * D + d] = (float) (row[d] - mean);
    }
    cblas_ssyrk (CblasRowMajor, CblasUpper, CblasTrans, D, R, 1.0f, centred, D, 0.0f, product, D);
    for (int i = 0; i < D; i++)
      for (int j = i; j < D; j++) {
        moments[(size_t) i * D + j] += product[(size_t) i * D + j];
        if (j != i)
          moments[(size_t) j * D + i] += product[(size_t) i * D + j];
      }
  }
  g_free (centred);
  g_free (product);
}

int
mone_pass_correct (const MonePass *s, const guint8 *labels)
{
  int correct = 0, K = s->config.classes;
  for (int b = 0; b < s->batch; b++) {
    const float *l = s->logits + (size_t) b * K;
    int best = 0;
    for (int k = 1; k < K; k++)
      if (l[k] > l[best])
        best = k;
    correct += best == labels[b];
  }
  return correct;
}

/* x0 = patches W_pe^T + b_pe + pos: from d loss / d x0 (s->dx0, image order) to the position and
 * patch embeddings, the stem, and to the input pixels when dinput is given. While the stem is held
 * (mone_pass_stem_hold) the patches' gradient is added up in s->dpatches instead, for release. */
static void
embedding_backward (MonePass *s, const MoneTrainTensors *w, MoneTrainTensors *gw, float *dinput)
{
  const MoneConfig *c = &s->config;
  const int B = s->batch, N = c->tokens, S = s->seq, D = c->dim, P = mone_patch_inputs (c);
  float *dpatch_rows = s->dx0; /* (B * N, D): the patch tokens' rows, contiguous */
  for (int b = 0; b < B; b++) {
    const float *dx = s->dx0 + (size_t) b * S * D;
    for (size_t i = 0; i < (size_t) S * D; i++)
      gw->pos_embed[i] += dx[i];
    if (s->cls)
      for (int i = 0; i < D; i++)
        gw->cls_token[i] += dx[i];
  }
  if (s->cls) {
    dpatch_rows = s->dh; /* free once the router's backward is done */
    for (int b = 0; b < B; b++)
      memcpy (dpatch_rows + (size_t) b * N * D, s->dx0 + ((size_t) b * S + 1) * D, sizeof (float) * N * D);
  }
  g_assert (!(dinput && s->stem_held));
  linear_backward (&s->gemm, (dinput || c->stem_layers) && !s->dpatches_pending ? s->dpatches : NULL,
      gw->patch_embed_weight, gw->patch_embed_bias, dpatch_rows, s->patches, w->patch_embed_weight, B * N, P, D);
  if (s->dpatches_pending) /* dpatches (B * N, P) += dpatch_rows W_pe */
    gemm (&s->gemm, CblasNoTrans, CblasNoTrans, B * N, P, D, 1.0f, dpatch_rows, D, w->patch_embed_weight, P, 1.0f,
        s->dpatches, P);
  if (s->stem_held) {
    s->dpatches_pending = TRUE;
  } else if (c->stem_layers) {
    stem_backward (s, gw, dinput);
  } else if (dinput) {
    const MapLayout l = pixel_layout (s);
    patchify_backward (dinput, s->dpatches, &l, c, B);
  }
}

void
mone_pass_backward (MonePass *s, const MoneTrainModel *model, float loss_weight, float *grads, float *dinput)
{
  const MoneConfig *c = &s->config;
  const MoneTrainTensors *w = &model->t;
  MoneTrainTensors gw;
  mone_train_tensors_bind (&gw, model, grads);
  const int B = s->batch, N = c->tokens, D = c->dim, F = c->mlp_dim, E = c->experts, H = c->heads, K = c->classes,
            S = s->seq, R = B * S;
  const float alpha = w->alpha[0];
  double dalpha = 0;
  g_assert (s->labels != NULL || s->soft_targets != NULL);

  crossentropy_backward (s->dlogits, s->probs, s->labels, s->soft_targets, B, K, s->label_smoothing, loss_weight);
  linear_backward (&s->gemm, s->dpooled, gw.head_weight, gw.head_bias, s->dlogits, s->pooled, w->head_weight, B, D, K);
  if (s->cls) {
    memset (s->dh, 0, sizeof (float) * R * D);
    for (int b = 0; b < B; b++)
      memcpy (s->dh + (size_t) s->cls_row[b] * D, s->dpooled + (size_t) b * D, sizeof (float) * D);
  } else {
    mean_pool_backward (s->dh, s->dpooled, s->image_of_row, B, N, D);
  }
  memset (s->dx, 0, sizeof (float) * R * D);
  layernorm_backward (s->dx, gw.norm_weight, gw.norm_bias, s->dh, s->x_final, w->norm_weight, s->lnf_mean, s->lnf_rstd,
      R, D);
  memset (s->dg, 0, sizeof (float) * R);

  /* s->dx holds d loss / d (output of block l). */
  for (int l = c->depth - 1; l >= 0; l--) {
    BlockActs *a = &s->blocks[l];
    const MoneTrainBlock *bw = &w->blocks[l];
    MoneTrainBlock *gb = &gw.blocks[l];

    /* x_out = z + (alpha g + 1) m: the residual passes dx straight to dz. */
    gated_residual_backward (s->dmlp, s->dg, &dalpha, s->dx, a->mlp, s->g, alpha, R, D);
    memcpy (s->dz, s->dx, sizeof (float) * R * D);
    nested_out_backward (&s->gemm, s->dgelu, gb->fc2_weight, gb->fc2_bias, s->dmlp, a->gelu, bw->fc2_weight,
        s->group_start, s->width, E, F, D);
    gelu_backward (s->dfc, s->dgelu, a->fc1, a->gelu_cdf, (size_t) R * F);
    nested_in_backward (&s->gemm, s->dh, gb->fc1_weight, gb->fc1_bias, s->dfc, a->ln2, bw->fc1_weight, s->group_start,
        s->width, E, D, F);
    layernorm_backward (s->dz, gb->norm2_weight, gb->norm2_bias, s->dh, a->z, bw->norm2_weight, a->ln2_mean,
        a->ln2_rstd, R, D);

    /* z = x_in + proj(att): dz flows to dx_in directly and through attention. */
    memcpy (s->dx, s->dz, sizeof (float) * R * D);
    nested_out_backward (&s->gemm, s->datt_g, gb->proj_weight, gb->proj_bias, s->dz, a->att_out, bw->proj_weight,
        s->group_start, s->width, E, D, D);
    scatter_rows (s->datt, s->datt_g, s->row_of_group, R, D);
    attention_backward (&s->gemm, s->dqkv, s->dp, s->datt, a->qkv, a->att, B, S, D, H);
    gather_rows (s->dqkv_g, s->dqkv, s->row_of_group, R, 3 * D);
    nested_in_backward (&s->gemm, s->dh, gb->qkv_weight, gb->qkv_bias, s->dqkv_g, a->ln1, bw->qkv_weight,
        s->group_start, s->width, E, D, 3 * D);
    layernorm_backward (s->dx, gb->norm1_weight, gb->norm1_bias, s->dh, a->x_in, bw->norm1_weight, a->ln1_mean,
        a->ln1_rstd, R, D);
  }
  gw.alpha[0] += (float) dalpha;

  /* Back to image order; the router adds its gradient through g. */
  scatter_rows (s->dx0, s->dx, s->row_of_group, R, D);
  for (int r = 0; r < R; r++)
    s->dg_image[s->row_of_group[r]] = s->dg[r];
  router_backward (s, w, &gw, R);
  embedding_backward (s, w, &gw, dinput);
  mone_train_tensors_clear (&gw);
}

double
mone_pass_router_target_backward (MonePass *s, const MoneTrainModel *model, const float *target, float weight,
    float *grads)
{
  const MoneConfig *c = &s->config;
  const int B = s->batch, N = c->tokens, E = c->experts, S = s->seq, R = B * S, widest = E - 1;
  double loss = 0;
  if (s->cls) /* no target for a class token */
    for (int b = 0; b < B; b++)
      memset (s->drouter + (size_t) b * S * E, 0, sizeof (float) * E);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < N; t++) {
      const size_t r = (size_t) b * S + s->cls + t;
      float *dl = s->drouter + r * E;
      const float *p = s->router_probs + r * E;
      const float y = target[(size_t) b * N + t];
      if (isnan (y)) {
        memset (dl, 0, sizeof (float) * E);
        continue;
      }
      /* Binary cross-entropy of "widest" against "any other": on the logits, (q - y) on the widest
       * and -(q - y) p_e / (1 - q) on the others, q = p_widest. */
      const double q = CLAMP ((double) p[widest], 1e-7, 1 - 1e-7);
      loss += -(y * log (q) + (1 - y) * log (1 - q)) / N;
      const float scale = weight / N;
      for (int e = 0; e < E; e++)
        dl[e] = e == widest ? scale * (float) (q - y) : -scale * (float) ((q - y) * p[e] / (1 - q));
    }
  MoneTrainTensors gw;
  mone_train_tensors_bind (&gw, model, grads);
  router_logits_backward (s, &model->t, &gw, s->drouter, s->dx0, R);
  embedding_backward (s, &model->t, &gw, NULL);
  mone_train_tensors_clear (&gw);
  return loss;
}

void
mone_pass_stem_hold (MonePass *s)
{
  /* Without a stem the passes have nothing to share: everything stays as it is. */
  s->stem_held = s->config.stem_layers > 0;
  s->stem_ready = s->dpatches_pending = FALSE;
}

void
mone_pass_stem_release (MonePass *s, const MoneTrainModel *model, float *grads)
{
  if (s->dpatches_pending) {
    MoneTrainTensors gw;
    mone_train_tensors_bind (&gw, model, grads);
    s->batch = s->stem_batch;
    stem_backward (s, &gw, NULL);
    mone_train_tensors_clear (&gw);
  }
  s->stem_held = s->stem_ready = s->dpatches_pending = FALSE;
}
