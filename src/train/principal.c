/* Principal axes of the residual stream: how a model trained at full width (a dense twin, an
 * imported ViT) is turned so that its nested experts start from the channels that matter.
 *
 * Expert j reads and writes only the leading d_j channels of the stream. A full-width model
 * spreads what it carries over all D channels, so cutting it to d_j loses at random. The stream
 * can be expressed in any orthonormal basis R without changing the function, as long as every
 * LayerNorm sees the same numbers:
 *  - each LayerNorm's scale and shift move into the projection that reads it
 *    (W diag(gamma), b + W beta), so the LayerNorm itself only centres and scales;
 *  - the stream's component along the all-ones direction u, which every LayerNorm removes before
 *    anything reads it, is dropped from whatever writes to the stream (P = I - u u^T);
 *  - R keeps u in place (R u = u), so a centred vector stays centred in the new channels and its
 *    variance is unchanged.
 * R is made of the eigenvectors of the centred stream's second moments, largest eigenvalue first
 * and u last, followed by the Householder reflection that takes the last axis onto u. Writers of
 * the stream become (R P) W, readers W R^T. Only the router reads the stream uncentred: it loses
 * the mean component, which moves the gate (alpha g + 1) of a model whose alpha is not 0 a little.
 */
#include "trainer.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Images the moments are taken over: every image gives (2 depth + 1) x tokens centred rows. */
#define PRINCIPAL_IMAGES 512
#define PRINCIPAL_BATCH 32

/* Eigenvalues (descending) and eigenvectors (rows of vectors, same order) of a symmetric matrix
 * a (n, n), overwritten. Cyclic Jacobi rotations: slow for large n (O(n^3) per sweep), but exact
 * to double rounding, deterministic and without LAPACK. */
static void
symmetric_eigen (double *a, int n, double *values, double *vectors)
{
  double *v = g_new0 (double, (size_t) n *n); /* columns: eigenvectors */
  for (int i = 0; i < n; i++)
    v[(size_t) i * n + i] = 1;
  for (int sweep = 0; sweep < 100; sweep++) {
    double off = 0, diagonal = 0;
    for (int i = 0; i < n; i++) {
      diagonal += a[(size_t) i * n + i] * a[(size_t) i * n + i];
      for (int j = i + 1; j < n; j++)
        off += a[(size_t) i * n + j] * a[(size_t) i * n + j];
    }
    if (off <= 1e-30 * diagonal || off == 0)
      break;
    for (int p = 0; p < n; p++)
      for (int q = p + 1; q < n; q++) {
        const double apq = a[(size_t) p * n + q];
        if (fabs (apq) < 1e-300)
          continue;
        const double theta = (a[(size_t) q * n + q] - a[(size_t) p * n + p]) / (2 * apq);
        const double t = (theta >= 0 ? 1 : -1) / (fabs (theta) + sqrt (theta * theta + 1));
        const double c = 1 / sqrt (t * t + 1), s = t * c;
        for (int k = 0; k < n; k++) { /* columns p and q */
          const double akp = a[(size_t) k * n + p], akq = a[(size_t) k * n + q];
          a[(size_t) k * n + p] = c * akp - s * akq;
          a[(size_t) k * n + q] = s * akp + c * akq;
        }
        for (int k = 0; k < n; k++) { /* rows p and q */
          const double apk = a[(size_t) p * n + k], aqk = a[(size_t) q * n + k];
          a[(size_t) p * n + k] = c * apk - s * aqk;
          a[(size_t) q * n + k] = s * apk + c * aqk;
        }
        for (int k = 0; k < n; k++) {
          const double vkp = v[(size_t) k * n + p], vkq = v[(size_t) k * n + q];
          v[(size_t) k * n + p] = c * vkp - s * vkq;
          v[(size_t) k * n + q] = s * vkp + c * vkq;
        }
      }
  }
  /* Selection sort by eigenvalue, descending; each vector's largest entry made positive so that
   * the basis does not depend on the rotations' signs. */
  int *order = g_new (int, n);
  for (int i = 0; i < n; i++)
    order[i] = i;
  for (int i = 0; i < n; i++) {
    int best = i;
    for (int j = i + 1; j < n; j++)
      if (a[(size_t) order[j] * n + order[j]] > a[(size_t) order[best] * n + order[best]])
        best = j;
    const int swap = order[i];
    order[i] = order[best];
    order[best] = swap;
  }
  for (int i = 0; i < n; i++) {
    const int col = order[i];
    values[i] = a[(size_t) col * n + col];
    int largest = 0;
    for (int k = 0; k < n; k++)
      if (fabs (v[(size_t) k * n + col]) > fabs (v[(size_t) largest * n + col]))
        largest = k;
    const double sign = v[(size_t) largest * n + col] < 0 ? -1 : 1;
    for (int k = 0; k < n; k++)
      vectors[(size_t) i * n + k] = sign * v[(size_t) k * n + col];
  }
  g_free (order);
  g_free (v);
}

/* The second moments (D, D) of the model's centred residual stream over the first images of set,
 * as full frames at budget 1. */
static gboolean
residual_moments (const MoneTrainModel *model, const MoneImageSet *set, double *moments, GError **error)
{
  const MoneConfig *c = &model->config;
  const int count = MIN (set->count, PRINCIPAL_IMAGES);
  if (count < 1) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
        "the principal axes of the model need training images, and there are none");
    return FALSE;
  }
  const size_t frame = (size_t) c->channels * c->height * c->width;
  float *input = g_new (float, PRINCIPAL_BATCH *frame);
  MonePass *pass = mone_pass_new (c, PRINCIPAL_BATCH);
  for (int first = 0; first < count; first += PRINCIPAL_BATCH) {
    const int n = MIN (PRINCIPAL_BATCH, count - first);
    for (int i = 0; i < n; i++)
      mone_render (set, first + i, MONE_PROTOCOL_FULL_FRAME, 0, FALSE, c->channels, c->height, c->width,
          input + i * frame);
    mone_pass_forward (pass, model, input, NULL, n, 1.0, MONE_ROUTING_EPR, 0, 0);
    mone_pass_add_residual_moments (pass, moments);
  }
  mone_pass_free (pass);
  g_free (input);
  return TRUE;
}

/* The basis R (D, D), rows = new channels: the principal axes orthogonal to u, largest first,
 * then u, and the reflection that takes the last axis onto u (so that R u = u). */
static void
principal_basis (double *moments, int D, float *basis)
{
  const double inv_sqrt_d = 1 / sqrt ((double) D);
  /* Moments of centred rows vanish along u already (up to rounding); subtracting trace + 1 along
   * u makes u the smallest eigenvector for sure, so the first D - 1 are the stream's own axes. */
  double trace = 0;
  for (int i = 0; i < D; i++)
    trace += moments[(size_t) i * D + i];
  for (size_t i = 0; i < (size_t) D * D; i++)
    moments[i] -= (trace + 1) / D;
  double *values = g_new (double, D), *axes = g_new (double, (size_t) D *D);
  symmetric_eigen (moments, D, values, axes);

  /* Rows 0..D-2: the axes, made exactly orthogonal to u and to each other (Gram-Schmidt); the
   * last row: u. */
  for (int i = 0; i < D; i++) {
    double *row = axes + (size_t) i * D;
    if (i == D - 1) {
      for (int k = 0; k < D; k++)
        row[k] = inv_sqrt_d;
      break;
    }
    double along_u = 0;
    for (int k = 0; k < D; k++)
      along_u += row[k] * inv_sqrt_d;
    for (int k = 0; k < D; k++)
      row[k] -= along_u * inv_sqrt_d;
    for (int prev = 0; prev < i; prev++) {
      const double *other = axes + (size_t) prev * D;
      double dot = 0;
      for (int k = 0; k < D; k++)
        dot += row[k] * other[k];
      for (int k = 0; k < D; k++)
        row[k] -= dot * other[k];
    }
    double norm = 0;
    for (int k = 0; k < D; k++)
      norm += row[k] * row[k];
    norm = sqrt (norm);
    for (int k = 0; k < D; k++)
      row[k] /= norm;
  }

  /* Householder H = I - 2 w w^T with w = (e_last - u) / |e_last - u| swaps e_last and u;
   * R = H A where A holds the axes as rows. */
  double *w = g_new (double, D);
  double norm = 0;
  for (int k = 0; k < D; k++) {
    w[k] = (k == D - 1 ? 1 : 0) - inv_sqrt_d;
    norm += w[k] * w[k];
  }
  norm = sqrt (norm);
  for (int k = 0; k < D; k++)
    w[k] /= norm;
  for (int col = 0; col < D; col++) {
    double dot = 0;
    for (int k = 0; k < D; k++)
      dot += w[k] * axes[(size_t) k * D + col];
    for (int row = 0; row < D; row++)
      basis[(size_t) row * D + col] = (float) (axes[(size_t) row * D + col] - 2 * w[row] * dot);
  }
  g_free (w);
  g_free (values);
  g_free (axes);
}

/* m (rows, cols) <- basis m with on_left (basis (rows, rows)), else m basis^T (basis (cols, cols)). */
static void
transform (float *m, int rows, int cols, const float *basis, gboolean on_left)
{
  float *product = g_new (float, (size_t) rows *cols);
  if (on_left)
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, cols, rows, 1.0f, basis, rows, m, cols, 0.0f, product,
        cols);
  else
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, cols, 1.0f, m, cols, basis, cols, 0.0f, product,
        cols);
  memcpy (m, product, sizeof (float) * (size_t) rows * cols);
  g_free (product);
}

/* LayerNorm (scale, shift) followed by y = W h + b, W (out, D): W <- W diag(scale),
 * b <- b + W shift; the LayerNorm keeps scale 1 and shift 0. */
static void
fold_layernorm (float *scale, float *shift, float *weight, float *bias, int out, int D)
{
  for (int o = 0; o < out; o++) {
    float *row = weight + (size_t) o * D;
    double acc = bias[o];
    for (int d = 0; d < D; d++)
      acc += (double) row[d] * shift[d];
    bias[o] = (float) acc;
    for (int d = 0; d < D; d++)
      row[d] *= scale[d];
  }
  for (int d = 0; d < D; d++) {
    scale[d] = 1;
    shift[d] = 0;
  }
}

gboolean
mone_train_model_rotate_principal (MoneTrainModel *model, const MoneImageSet *images, GError **error)
{
  const MoneConfig *c = &model->config;
  const int D = c->dim, F = c->mlp_dim, K = c->classes, E = c->experts;
  const int P = mone_patch_inputs (c); /* the stem, if any, is before the stream: left as it is */
  const int S = c->tokens + (c->pool == MONE_POOL_CLS ? 1 : 0);
  MoneTrainTensors *t = &model->t;

  double *moments = g_new0 (double, (size_t) D *D);
  if (!residual_moments (model, images, moments, error)) {
    g_free (moments);
    return FALSE;
  }
  float *basis = g_new (float, (size_t) D *D);  /* R: reads become W R^T */
  float *writer = g_new (float, (size_t) D *D); /* R P: writes become R P W */
  principal_basis (moments, D, basis);
  /* R P = R - (R u) u^T = R - u u^T, since R u = u. */
  for (int i = 0; i < D; i++)
    for (int k = 0; k < D; k++)
      writer[(size_t) i * D + k] = basis[(size_t) i * D + k] - 1.0f / (float) D;

  for (int l = 0; l < c->depth; l++) {
    MoneTrainBlock *b = &t->blocks[l];
    fold_layernorm (b->norm1_weight, b->norm1_bias, b->qkv_weight, b->qkv_bias, 3 * D, D);
    fold_layernorm (b->norm2_weight, b->norm2_bias, b->fc1_weight, b->fc1_bias, F, D);
    transform (b->qkv_weight, 3 * D, D, basis, FALSE);
    transform (b->fc1_weight, F, D, basis, FALSE);
    transform (b->proj_weight, D, D, writer, TRUE);
    transform (b->proj_bias, D, 1, writer, TRUE);
    transform (b->fc2_weight, D, F, writer, TRUE);
    transform (b->fc2_bias, D, 1, writer, TRUE);
  }
  fold_layernorm (t->norm_weight, t->norm_bias, t->head_weight, t->head_bias, K, D);
  transform (t->head_weight, K, D, basis, FALSE);
  /* The router reads the stream too: its only layer, or its hidden layer. */
  if (t->router_hidden_weight)
    transform (t->router_hidden_weight, c->router_hidden, D, basis, FALSE);
  else
    transform (t->router_weight, E, D, basis, FALSE);
  transform (t->patch_embed_weight, D, P, writer, TRUE);
  transform (t->patch_embed_bias, D, 1, writer, TRUE);
  transform (t->pos_embed, S, D, writer, FALSE);
  if (t->cls_token)
    transform (t->cls_token, D, 1, writer, TRUE);

  g_free (moments);
  g_free (basis);
  g_free (writer);
  return TRUE;
}
