/* The optimised forward pass against references written here with plain loops in double precision:
 *  - a MoNE reference that follows docs/mone.md literally: every token multiplies the FULL weight
 *    matrices with its input zero-padded beyond d_j, and zeroes the outputs beyond d_j afterwards;
 *    routing by brute force; the convolutional stem (mone.stem) as a direct convolution, the class
 *    token (mone.pool = cls) as the first row of the sequence;
 *  - a plain pre-LN ViT with mean pooling (no router, no experts), which e = 1 must equal when
 *    alpha = 0.
 * Random models of several shapes (odd widths, a video config with tubelets, more tokens than one
 * attention block, stems of 1 to 4 layers), several budgets, 1, 2 and 3 threads, on every path of
 * the projections this CPU runs (MONE_ISA: avx512, avx2, generic kernels on packed weights, and
 * openblas). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine-check.h"
#include "forced-isa.h"
#include "mone-private.h"

/* ---------------------------------------------------------------------------------------------- */
/* Random models */

static guint64 rng = 0x1234567;
static double
uniform (double lo, double hi)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return lo + (hi - lo) * ((rng >> 11) * 0x1.0p-53);
}

typedef struct {
  MoneConfig config;
  MoneTensorSpec *specs;
  int n_tensors;
  float **tensors;
  MoneModel *model;
} TestModel;

/* Weights large enough that attention is far from uniform, GELU far from linear and the router
 * far from uniform: a test on near-zero activations would pass with half the code missing. */
static TestModel *
test_model_new (MoneConfig config, float alpha)
{
  TestModel *m = g_new0 (TestModel, 1);
  GError *error = NULL;
  g_assert (mone_config_finalize (&config, &error));
  m->config = config;
  m->specs = mone_tensor_specs (&config, &m->n_tensors);
  m->tensors = g_new0 (float *, m->n_tensors);
  for (int i = 0; i < m->n_tensors; i++) {
    const MoneTensorSpec *s = &m->specs[i];
    float *t = m->tensors[i] = g_new (float, s->numel);
    const char *name = s->name;
    double fan_in = s->ndim == 2 ? (double) s->shape[1] : 1;
    for (int64_t k = 0; k < s->numel; k++) {
      if (!strcmp (name, "alpha"))
        t[k] = alpha;
      else if (strstr (name, "norm") && g_str_has_suffix (name, ".weight"))
        t[k] = (float) uniform (0.7, 1.3);
      else if (!strcmp (name, "pos_embed"))
        t[k] = (float) uniform (-0.5, 0.5);
      else if (!strcmp (name, "router.weight") || !strcmp (name, "router.hidden.weight"))
        t[k] = (float) uniform (-3, 3) / sqrt (fan_in);
      else if (s->ndim == 2)
        t[k] = (float) (uniform (-1.7, 1.7) / sqrt (fan_in));
      else
        t[k] = (float) uniform (-0.2, 0.2);
    }
  }
  m->model = mone_model_new_borrowed (&config, NULL, (const float *const *) m->tensors, &error);
  g_assert_no_error (error);
  return m;
}

static void
test_model_free (TestModel *m)
{
  mone_model_unref (m->model);
  for (int i = 0; i < m->n_tensors; i++)
    g_free (m->tensors[i]);
  g_free (m->tensors);
  g_free (m->specs);
  g_free (m);
}

static const float *
tensor (TestModel *m, const char *name)
{
  for (int i = 0; i < m->n_tensors; i++)
    if (!strcmp (m->specs[i].name, name))
      return m->tensors[i];
  g_error ("no tensor %s", name);
}

static const float *
block_tensor (TestModel *m, int layer, const char *suffix)
{
  char name[64];
  snprintf (name, sizeof name, "blocks.%d.%s", layer, suffix);
  return tensor (m, name);
}

/* ---------------------------------------------------------------------------------------------- */
/* Reference building blocks (double precision, plain loops) */

/* y (rows) = W (rows, cols) x (cols) + b */
static void
matvec (const float *W, const float *b, int rows, int cols, const double *x, double *y)
{
  for (int r = 0; r < rows; r++) {
    double acc = b ? b[r] : 0;
    for (int c = 0; c < cols; c++)
      acc += (double) W[(size_t) r * cols + c] * x[c];
    y[r] = acc;
  }
}

static void
layernorm (const double *x, int D, const float *w, const float *b, double eps, double *y)
{
  double mean = 0, var = 0;
  for (int i = 0; i < D; i++)
    mean += x[i];
  mean /= D;
  for (int i = 0; i < D; i++)
    var += (x[i] - mean) * (x[i] - mean);
  var /= D;
  for (int i = 0; i < D; i++)
    y[i] = (x[i] - mean) / sqrt (var + eps) * w[i] + b[i];
}

static double
gelu (double v)
{
  return 0.5 * v * (1 + erf (v / sqrt (2.0)));
}

/* What the patch embedding reads, (T, C', H', W'): the normalised pixels, then every stem layer i
 * as PyTorch's Conv2d(C_{i-1}, C_i, 3, stride 2, padding 1) written out (every output pixel and
 * channel sums its bias and the 3x3 taps of every input channel, zero outside the map), then
 * GELU. */
static double *
reference_features (TestModel *m, const float *input)
{
  const MoneConfig *c = &m->config;
  const int T = c->frames;
  int C = c->channels, H = c->height, W = c->width;
  double *map = g_new (double, (size_t) T *C *H *W);
  for (int f = 0; f < T; f++)
    for (int ch = 0; ch < C; ch++)
      for (int i = 0; i < H * W; i++) {
        size_t at = ((size_t) f * C + ch) * H * W + i;
        map[at] = (input[at] - c->mean[ch]) / c->std[ch];
      }
  for (int layer = 0; layer < c->stem_layers; layer++) {
    char name[64];
    snprintf (name, sizeof name, "stem.%d.weight", layer);
    const float *weight = tensor (m, name); /* (C_out, C, 3, 3) */
    snprintf (name, sizeof name, "stem.%d.bias", layer);
    const float *bias = tensor (m, name);
    const int C_out = c->stem_channels[layer], H_out = H / 2, W_out = W / 2;
    double *out = g_new (double, (size_t) T *C_out *H_out *W_out);
    for (int f = 0; f < T; f++)
      for (int oy = 0; oy < H_out; oy++)
        for (int ox = 0; ox < W_out; ox++)
          for (int o = 0; o < C_out; o++) {
            double acc = bias[o];
            for (int ch = 0; ch < C; ch++)
              for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++) {
                  int y = 2 * oy - 1 + ky, x = 2 * ox - 1 + kx;
                  if (y < 0 || y >= H || x < 0 || x >= W)
                    continue; /* zero padding */
                  acc += (double) weight[((o * C + ch) * 3 + ky) * 3 + kx]
                      * map[(((size_t) f * C + ch) * H + y) * W + x];
                }
            out[(((size_t) f * C_out + o) * H_out + oy) * W_out + ox] = gelu (acc);
          }
    g_free (map);
    map = out;
    C = C_out;
    H = H_out;
    W = W_out;
  }
  return map;
}

/* Patch vector of token n, read straight from the (T, C', H', W') features by its definition:
 * patches of side p' = p / 2^S. */
static void
reference_patch (const MoneConfig *c, const double *features, int n, double *out)
{
  const int C = mone_embed_channels (c), p = mone_embed_patch (c);
  const int H = c->height >> c->stem_layers, W = c->width >> c->stem_layers;
  int per_slice = c->grid_width * c->grid_height;
  int slice = n / per_slice, gy = (n % per_slice) / c->grid_width, gx = n % c->grid_width;
  int i = 0;
  for (int ch = 0; ch < C; ch++)
    for (int ti = 0; ti < c->tubelet; ti++)
      for (int py = 0; py < p; py++)
        for (int px = 0; px < p; px++) {
          int frame = slice * c->tubelet + ti, y = gy * p + py, x = gx * p + px;
          out[i++] = features[(((size_t) frame * C + ch) * H + y) * W + x];
        }
}

/* Full-width multi-head attention: attn (N, D) from qkv (N, 3D). */
static void
reference_attention (int N, int D, int H, const double *qkv, double *attn)
{
  int hd = D / H;
  double *s = g_new (double, N);
  for (int h = 0; h < H; h++)
    for (int i = 0; i < N; i++) {
      double max = -INFINITY, sum = 0;
      for (int j = 0; j < N; j++) {
        double dot = 0;
        for (int k = 0; k < hd; k++)
          dot += qkv[(size_t) i * 3 * D + h * hd + k] * qkv[(size_t) j * 3 * D + D + h * hd + k];
        s[j] = dot / sqrt ((double) hd);
        if (s[j] > max)
          max = s[j];
      }
      for (int j = 0; j < N; j++)
        sum += (s[j] = exp (s[j] - max));
      for (int k = 0; k < hd; k++) {
        double acc = 0;
        for (int j = 0; j < N; j++)
          acc += s[j] / sum * qkv[(size_t) j * 3 * D + 2 * D + h * hd + k];
        attn[(size_t) i * D + h * hd + k] = acc;
      }
    }
  g_free (s);
}

/* Final LN, mean pool over the patch rows (or the class token's row), head: logits (K). */
static void
reference_head (TestModel *m, const double *x, double *logits)
{
  const MoneConfig *c = &m->config;
  int N = c->tokens, D = c->dim;
  double *pooled = g_new0 (double, D), *y = g_new (double, D);
  if (c->pool == MONE_POOL_CLS) {
    layernorm (x, D, tensor (m, "norm.weight"), tensor (m, "norm.bias"), c->ln_eps, pooled);
  } else {
    for (int t = 0; t < N; t++) {
      layernorm (x + (size_t) t * D, D, tensor (m, "norm.weight"), tensor (m, "norm.bias"),
          c->ln_eps, y);
      for (int i = 0; i < D; i++)
        pooled[i] += y[i] / N;
    }
  }
  matvec (tensor (m, "head.weight"), tensor (m, "head.bias"), c->classes, D, pooled, logits);
  g_free (pooled);
  g_free (y);
}

/* Sequence rows: the class token's (cls = 1 with mone.pool = cls), then the patch tokens'. */
static int
class_rows (const MoneConfig *c)
{
  return c->pool == MONE_POOL_CLS;
}

/* Patch + pos embedding: x (S, D), the class token (its vector + position 0) first if any. */
static void
reference_embed (TestModel *m, const float *input, double *x)
{
  const MoneConfig *c = &m->config;
  const int D = c->dim, P = mone_patch_inputs (c), cls = class_rows (c);
  const float *pos = tensor (m, "pos_embed"); /* (S, D) */
  double *features = reference_features (m, input);
  double *patch = g_new (double, P);
  for (int i = 0; i < cls * D; i++)
    x[i] = (double) tensor (m, "cls_token")[i] + pos[i];
  for (int t = 0; t < c->tokens; t++) {
    double *row = x + (size_t) (cls + t) * D;
    reference_patch (c, features, t, patch);
    matvec (tensor (m, "patch_embed.weight"), tensor (m, "patch_embed.bias"), D, P, patch, row);
    for (int i = 0; i < D; i++)
      row[i] += pos[(size_t) (cls + t) * D + i];
  }
  g_free (patch);
  g_free (features);
}

/* ---------------------------------------------------------------------------------------------- */
/* MoNE reference: literal, with zero padding. */

static void
reference_mone (TestModel *m, const float *input, double budget, double *logits, uint8_t *experts,
    double *router_probs)
{
  const MoneConfig *c = &m->config;
  const int N = c->tokens, D = c->dim, F = c->mlp_dim, E = c->experts;
  const int cls = class_rows (c), S = N + cls; /* sequence row r: patch token r - cls */
  double *x = g_new0 (double, (size_t) S *D);
  double *qkv = g_new0 (double, (size_t) S * 3 * D);
  double *attn = g_new0 (double, (size_t) S *D);
  double *h = g_new (double, D), *o = g_new (double, D), *a = g_new (double, F);
  double *probs = g_new (double, (size_t) S *E); /* every row's; router_probs gets the patches' */
  uint8_t *row_expert = g_new (uint8_t, S);
  reference_embed (m, input, x);

  /* Router: one layer on the row, or (router_hidden) GELU units on the row minus the mean patch
   * token; the class token's row is routed too (its probability gates its MLP). */
  const int RH = c->router_hidden;
  double *center = g_new0 (double, D), *centred = g_new (double, D), *hidden = g_new (double, MAX (1, RH));
  for (int t = 0; t < N; t++)
    for (int d = 0; d < D; d++)
      center[d] += x[(size_t) (cls + t) * D + d] / N;
  for (int r = 0; r < S; r++) {
    double logit[MONE_MAX_EXPERTS], sum = 0;
    if (RH) {
      for (int d = 0; d < D; d++)
        centred[d] = x[(size_t) r * D + d] - center[d];
      matvec (tensor (m, "router.hidden.weight"), tensor (m, "router.hidden.bias"), RH, D, centred, hidden);
      for (int i = 0; i < RH; i++)
        hidden[i] = 0.5 * hidden[i] * (1 + erf (hidden[i] / sqrt (2.0)));
      matvec (tensor (m, "router.weight"), tensor (m, "router.bias"), E, RH, hidden, logit);
    } else {
      matvec (tensor (m, "router.weight"), tensor (m, "router.bias"), E, D, x + (size_t) r * D,
          logit);
    }
    for (int j = 0; j < E; j++)
      sum += exp (logit[j]);
    for (int j = 0; j < E; j++)
      probs[r * E + j] = exp (logit[j]) / sum;
  }
  memcpy (router_probs, probs + cls * E, sizeof (double) * N * E);
  g_free (center);
  g_free (centred);
  g_free (hidden);
  /* Capacity from the library (tested on its own), routing by brute force on the probabilities the
   * engine stores (float), so that near-ties do not depend on rounding. */
  double cap[MONE_MAX_EXPERTS];
  int counts[MONE_MAX_EXPERTS];
  mone_capacity_from_budget (E, c->delta, c->beta, budget, cap);
  mone_tokens_per_expert (E, cap, N, counts);
  memset (experts, 0, N);
  gboolean *taken = g_new0 (gboolean, N);
  for (int j = E - 1; j >= 1; j--)
    for (int k = 0; k < counts[j]; k++) {
      int best = -1;
      for (int t = 0; t < N; t++)
        if (!taken[t]
            && (best < 0 || (float) router_probs[t * E + j] > (float) router_probs[best * E + j]))
          best = t;
      taken[best] = TRUE;
      experts[best] = (uint8_t) j;
    }
  g_free (taken);
  /* The class token always goes to the widest expert. */
  for (int r = 0; r < S; r++)
    row_expert[r] = r < cls ? (uint8_t) (E - 1) : experts[r - cls];

  const double alpha = tensor (m, "alpha")[0];
  for (int l = 0; l < c->depth; l++) {
    for (int r = 0; r < S; r++) {
      int d = D >> (E - 1 - row_expert[r]);
      layernorm (x + (size_t) r * D, D, block_tensor (m, l, "norm1.weight"),
          block_tensor (m, l, "norm1.bias"), c->ln_eps, h);
      for (int i = d; i < D; i++)
        h[i] = 0; /* explicit zero padding: the full matrix sees zeros beyond d_j */
      matvec (block_tensor (m, l, "attn.qkv.weight"), block_tensor (m, l, "attn.qkv.bias"), 3 * D,
          D, h, qkv + (size_t) r * 3 * D);
    }
    reference_attention (S, D, c->heads, qkv, attn);
    for (int r = 0; r < S; r++) {
      int d = D >> (E - 1 - row_expert[r]);
      double *xr = x + (size_t) r * D;
      matvec (block_tensor (m, l, "attn.proj.weight"), block_tensor (m, l, "attn.proj.bias"), D, D,
          attn + (size_t) r * D, o);
      for (int i = 0; i < D; i++)
        xr[i] += i < d ? o[i] : 0;
      layernorm (xr, D, block_tensor (m, l, "norm2.weight"), block_tensor (m, l, "norm2.bias"),
          c->ln_eps, h);
      for (int i = d; i < D; i++)
        h[i] = 0;
      matvec (block_tensor (m, l, "mlp.fc1.weight"), block_tensor (m, l, "mlp.fc1.bias"), F, D, h,
          a);
      for (int i = 0; i < F; i++)
        a[i] = gelu (a[i]);
      matvec (block_tensor (m, l, "mlp.fc2.weight"), block_tensor (m, l, "mlp.fc2.bias"), D, F, a,
          o);
      double g = probs[r * E + row_expert[r]];
      for (int i = 0; i < D; i++)
        xr[i] += i < d ? (alpha * g + 1) * o[i] : 0;
    }
  }
  reference_head (m, x, logits);
  g_free (x);
  g_free (qkv);
  g_free (attn);
  g_free (h);
  g_free (o);
  g_free (a);
  g_free (probs);
  g_free (row_expert);
}

/* ---------------------------------------------------------------------------------------------- */
/* Plain pre-LN ViT with mean pooling: no router, no experts, no gate. */

static void
reference_vit (TestModel *m, const float *input, double *logits)
{
  const MoneConfig *c = &m->config;
  const int N = c->tokens, D = c->dim, F = c->mlp_dim;
  g_assert (c->pool == MONE_POOL_MEAN);
  double *x = g_new0 (double, (size_t) N *D);
  double *qkv = g_new0 (double, (size_t) N * 3 * D);
  double *attn = g_new0 (double, (size_t) N *D);
  double *h = g_new (double, D), *o = g_new (double, D), *a = g_new (double, F);
  reference_embed (m, input, x);
  for (int l = 0; l < c->depth; l++) {
    for (int t = 0; t < N; t++) {
      layernorm (x + (size_t) t * D, D, block_tensor (m, l, "norm1.weight"),
          block_tensor (m, l, "norm1.bias"), c->ln_eps, h);
      matvec (block_tensor (m, l, "attn.qkv.weight"), block_tensor (m, l, "attn.qkv.bias"), 3 * D,
          D, h, qkv + (size_t) t * 3 * D);
    }
    reference_attention (N, D, c->heads, qkv, attn);
    for (int t = 0; t < N; t++) {
      double *xt = x + (size_t) t * D;
      matvec (block_tensor (m, l, "attn.proj.weight"), block_tensor (m, l, "attn.proj.bias"), D, D,
          attn + (size_t) t * D, o);
      for (int i = 0; i < D; i++)
        xt[i] += o[i];
      layernorm (xt, D, block_tensor (m, l, "norm2.weight"), block_tensor (m, l, "norm2.bias"),
          c->ln_eps, h);
      matvec (block_tensor (m, l, "mlp.fc1.weight"), block_tensor (m, l, "mlp.fc1.bias"), F, D, h,
          a);
      for (int i = 0; i < F; i++)
        a[i] = gelu (a[i]);
      matvec (block_tensor (m, l, "mlp.fc2.weight"), block_tensor (m, l, "mlp.fc2.bias"), D, F, a,
          o);
      for (int i = 0; i < D; i++)
        xt[i] += o[i];
    }
  }
  reference_head (m, x, logits);
  g_free (x);
  g_free (qkv);
  g_free (attn);
  g_free (h);
  g_free (o);
  g_free (a);
}

/* ---------------------------------------------------------------------------------------------- */

static double
max_abs (const double *v, int n)
{
  double m = 0;
  for (int i = 0; i < n; i++)
    m = fmax (m, fabs (v[i]));
  return m;
}

/* max |got - want| / max(1e-3, max |want|) */
static double
relative_error (const float *got, const double *want, int n)
{
  double err = 0;
  for (int i = 0; i < n; i++)
    err = fmax (err, fabs (got[i] - want[i]));
  return err / fmax (1e-3, max_abs (want, n));
}

static MoneConfig
make_config (int height, int width, int channels, int frames, int tubelet, int patch, int dim,
    int depth, int heads, int mlp_dim, int experts, int classes)
{
  MoneConfig c = { 0 };
  c.height = height;
  c.width = width;
  c.channels = channels;
  c.frames = frames;
  c.tubelet = tubelet;
  c.patch = patch;
  c.dim = dim;
  c.depth = depth;
  c.heads = heads;
  c.mlp_dim = mlp_dim;
  c.experts = experts;
  c.classes = classes;
  c.delta = 2;
  c.beta = 10;
  c.ln_eps = 1e-6f;
  for (int ch = 0; ch < MONE_MAX_CHANNELS; ch++) {
    c.mean[ch] = 0.4f + 0.05f * ch;
    c.std[ch] = 0.25f + 0.02f * ch;
  }
  return c;
}

/* config with one key=value override, as `mone init` takes them ("stem=4,8", "pool=cls"). */
static MoneConfig
with (MoneConfig c, const char *key_value)
{
  GError *error = NULL;
  mone_config_apply_override (&c, key_value, NULL, &error);
  g_assert_no_error (error);
  return c;
}

static float *
random_input (const MoneConfig *c)
{
  size_t n = (size_t) c->frames * c->channels * c->height * c->width;
  float *input = g_new (float, n);
  for (size_t i = 0; i < n; i++)
    input[i] = (float) uniform (0, 1);
  return input;
}

/* The engine on every path this CPU runs (MONE_ISA), at 1-3 threads and five budgets, against the
 * naive double-precision MoNE, computed once per budget for all paths. */
static void
test_against_mone_reference (const char *label, MoneConfig config)
{
  TestModel *m = test_model_new (config, 0.8f);
  const MoneConfig *c = &m->config;
  const int N = c->tokens, E = c->experts, K = c->classes;
  float *input = random_input (c);
  const double r0 = mone_model_min_budget (m->model);
  const double budgets[] = { 1.0, 0.75, 0.5, 0.3, r0 };
  enum { BUDGETS = G_N_ELEMENTS (budgets) };
  const size_t logit_count = (size_t) BUDGETS * K, prob_count = (size_t) BUDGETS * N * E;
  double *want = g_new (double, logit_count), *want_probs = g_new (double, prob_count);
  uint8_t *want_experts = g_new (uint8_t, (size_t) BUDGETS * N);
  float *logits_1thread = g_new (float, K);
  for (int b = 0; b < BUDGETS; b++)
    reference_mone (m, input, budgets[b], want + b * K, want_experts + b * N,
        want_probs + (size_t) b * N * E);

  const MoneIsa default_isa = mone_isa_default ();
  for (int isa = 0; isa < MONE_ISA_COUNT; isa++) {
    if (!mone_isa_set_default (isa))
      continue;
    const char *path = mone_isa_name (isa);
    GError *error = NULL;
    MoneContext *ctx[3];
    for (int i = 0; i < 3; i++) {
      ctx[i] = mone_context_new (m->model, i + 1, &error);
      g_assert_no_error (error);
    }
    for (int b = 0; b < BUDGETS; b++) {
      const double *want_b = want + b * K, *want_probs_b = want_probs + (size_t) b * N * E;
      for (int threads = 1; threads <= 3; threads++) {
        MoneResult r;
        CHECK (mone_context_run (ctx[threads - 1], input, budgets[b], &r, &error), "run failed");
        g_assert_no_error (error);
        double err = relative_error (r.logits, want_b, K);
        CHECK (err <= 1e-4, "%s, %s e=%.3f threads=%d: logits off by %.3g of their scale %.3g",
            label, path, budgets[b], threads, err, max_abs (want_b, K));
        CHECK (memcmp (r.expert_of_token, want_experts + b * N, N) == 0,
            "%s, %s e=%.3f: routing differs", label, path, budgets[b]);
        double perr = 0;
        for (int i = 0; i < N * E; i++)
          perr = fmax (perr, fabs (r.router_probs[i] - want_probs_b[i]));
        CHECK (perr <= 1e-5, "%s, %s e=%.3f: router probs off by %.3g", label, path, budgets[b],
            perr);
        CHECK (fabs (r.budget_used - fmax (budgets[b], r0)) < 1e-12, "budget_used %g",
            r.budget_used);
        CHECK (r.flops == mone_model_flops (m->model, budgets[b]), "flops %g vs %g", r.flops,
            mone_model_flops (m->model, budgets[b]));
        double psum = 0;
        int top = 0;
        for (int k = 0; k < K; k++) {
          psum += r.probs[k];
          if (want_b[k] > want_b[top])
            top = k;
        }
        CHECK (fabs (psum - 1) < 1e-5, "probs sum %g", psum);
        CHECK (r.top_class == top || fabs (want_b[r.top_class] - want_b[top]) < 1e-5,
            "top class %d vs %d", r.top_class, top);
        int hist[MONE_MAX_EXPERTS] = { 0 };
        for (int t = 0; t < N; t++)
          hist[r.expert_of_token[t]]++;
        for (int j = 0; j < E; j++)
          CHECK (hist[j] == r.tokens_per_expert[j], "tokens_per_expert[%d]", j);
        /* Thread counts agree with each other up to rounding (much tighter than the reference). */
        if (threads == 1) {
          memcpy (logits_1thread, r.logits, sizeof (float) * K);
        } else {
          double terr = 0;
          for (int k = 0; k < K; k++)
            terr = fmax (terr, fabs (r.logits[k] - logits_1thread[k]));
          terr /= fmax (1e-3, max_abs (want_b, K));
          CHECK (terr <= 1e-5, "%s, %s e=%.3f: %d threads differ from 1 thread by %.3g", label,
              path, budgets[b], threads, terr);
          /* The packed kernels compute each output with one task in a fixed order: same bits. */
          if (isa != MONE_ISA_OPENBLAS)
            CHECK (memcmp (r.logits, logits_1thread, sizeof (float) * K) == 0,
                "%s, %s e=%.3f: %d threads not bit-identical to 1 thread", label, path, budgets[b],
                threads);
        }
      }
      printf ("%-8s %-28s N=%4d e=%.3f: max |logit error| / scale = %.2e (scale %.2f)\n", path,
          label, N, budgets[b], relative_error (logits_1thread, want_b, K), max_abs (want_b, K));
    }
    /* A context is reusable: the same input gives the same result on a second run. */
    MoneResult again;
    mone_context_run (ctx[0], input, budgets[0], &again, NULL);
    CHECK (relative_error (again.logits, want, K) <= 1e-4, "%s, %s: second run differs", label,
        path);
    for (int i = 0; i < 3; i++)
      mone_context_free (ctx[i]);
  }
  mone_isa_set_default (default_isa);
  g_free (input);
  g_free (want);
  g_free (want_probs);
  g_free (want_experts);
  g_free (logits_1thread);
  test_model_free (m);
}

/* With alpha = 0 the gate is exactly 1, and at e = 1 MoNE is a plain pre-LN ViT: every path
 * against the naive ViT. */
static void
test_full_budget_is_plain_vit (const char *label, MoneConfig config)
{
  TestModel *m = test_model_new (config, 0.0f);
  const int K = m->config.classes;
  float *input = random_input (&m->config);
  double *want = g_new (double, K);
  reference_vit (m, input, want);
  const MoneIsa default_isa = mone_isa_default ();
  for (int isa = 0; isa < MONE_ISA_COUNT; isa++) {
    if (!mone_isa_set_default (isa))
      continue;
    MoneContext *ctx = mone_context_new (m->model, 2, NULL);
    MoneResult r;
    mone_context_run (ctx, input, 1.0, &r, NULL);
    double err = relative_error (r.logits, want, K);
    CHECK (err <= 1e-4, "%s, %s: e=1 differs from plain ViT by %.3g", label, mone_isa_name (isa),
        err);
    CHECK (r.tokens_per_expert[m->config.experts - 1] == m->config.tokens,
        "e=1 not all on the top expert");
    printf ("%-8s %-28s e=1 vs plain ViT: %.2e\n", mone_isa_name (isa), label, err);
    mone_context_free (ctx);
  }
  mone_isa_set_default (default_isa);
  g_free (input);
  g_free (want);
  test_model_free (m);
}

/* FLOPs of the ViT-Ti/16 shape at e = 1, counted by hand (multiply-add = 2):
 * patch embed 2*196*768*192, router 2*196*192*4, head 2*192*1000, and per block
 * QKV 2*196*192*576 + attention 2*2*196*196*192 + proj 2*196*192*192 + MLP 2*2*196*192*768. */
static void
test_flops (void)
{
  MoneConfig c = make_config (224, 224, 3, 1, 1, 16, 192, 12, 3, 768, 4, 1000);
  TestModel *m = test_model_new (c, 0);
  double block = 2.0 * 196 * 192 * 576 + 4.0 * 196 * 196 * 192 + 2.0 * 196 * 192 * 192
      + 4.0 * 196 * 192 * 768;
  double want = 2.0 * 196 * 768 * 192 + 2.0 * 196 * 192 * 4 + 2.0 * 192 * 1000 + 12 * block;
  CHECK (fabs (mone_model_flops (m->model, 1.0) - want) < 1, "vit-ti16 flops %.0f, expected %.0f",
      mone_model_flops (m->model, 1.0), want);
  /* At r_0 every projection runs at 1/8 width; attention scores stay full. */
  double block_min = (2.0 * 196 * 192 * 576 + 2.0 * 196 * 192 * 192 + 4.0 * 196 * 192 * 768) / 8
      + 4.0 * 196 * 196 * 192;
  double want_min = 2.0 * 196 * 768 * 192 + 2.0 * 196 * 192 * 4 + 2.0 * 192 * 1000 + 12 * block_min;
  CHECK (fabs (mone_model_flops (m->model, 0.125) - want_min) < 1,
      "vit-ti16 min flops %.0f, expected %.0f", mone_model_flops (m->model, 0.125), want_min);
  double prev = 0;
  for (double e = 0.125; e <= 1.0; e += 0.0625) {
    double f = mone_model_flops (m->model, e);
    CHECK (f >= prev, "flops not monotone at e=%g", e);
    prev = f;
  }
  test_model_free (m);

  /* With a class token: 197 rows, and the last block runs its attention, proj and MLP for the
   * class token's row alone (the keys and values still need every row's QKV). */
  m = test_model_new (with (c, "pool=cls"), 0);
  double cls_block = 2.0 * 197 * 192 * 576 + 4.0 * 197 * 197 * 192 + 2.0 * 197 * 192 * 192
      + 4.0 * 197 * 192 * 768;
  double cls_last = 2.0 * 197 * 192 * 576 + 4.0 * 197 * 192 + 2.0 * 192 * 192 + 4.0 * 192 * 768;
  double want_cls = 2.0 * 196 * 768 * 192 + 2.0 * 197 * 192 * 4 + 2.0 * 192 * 1000 + 11 * cls_block
      + cls_last;
  CHECK (fabs (mone_model_flops (m->model, 1.0) - want_cls) < 1,
      "vit-ti16 pool=cls flops %.0f, expected %.0f", mone_model_flops (m->model, 1.0), want_cls);
  test_model_free (m);

  /* A stem (scene64 with stem=16,32) adds its convolutions, 2 x 9 C_{i-1} C_i per output pixel,
   * and changes the patch embedding's inputs from 1 x 8 x 8 pixels to 32 x 2 x 2 features. */
  MoneConfig scene = make_config (64, 64, 1, 1, 1, 8, 64, 6, 4, 256, 4, 10);
  TestModel *plain = test_model_new (scene, 0);
  TestModel *stem = test_model_new (with (scene, "stem=16,32"), 0);
  double added = 2.0 * 32 * 32 * 9 * 1 * 16 + 2.0 * 16 * 16 * 9 * 16 * 32
      + 2.0 * 64 * 64 * (32 * 2 * 2 - 1 * 8 * 8);
  for (double e = 0.125; e <= 1.0; e += 0.125) {
    double diff = mone_model_flops (stem->model, e) - mone_model_flops (plain->model, e);
    CHECK (fabs (diff - added) < 1, "stem flops at e=%g: %.0f more, expected %.0f", e, diff, added);
  }
  test_model_free (plain);
  test_model_free (stem);
}

static void
test_bad_arguments (void)
{
  TestModel *m = test_model_new (make_config (16, 16, 1, 1, 1, 8, 8, 1, 2, 8, 2, 2), 0);
  MoneContext *ctx = mone_context_new (m->model, 1, NULL);
  MoneResult r;
  GError *error = NULL;
  CHECK (!mone_context_run (ctx, NULL, 0.5, &r, &error), "NULL input accepted");
  CHECK (error && error->code == MONE_ERROR_INVALID_ARGUMENT, "no error for NULL input");
  g_clear_error (&error);
  float input[256] = { 0 };
  CHECK (mone_context_run (ctx, input, 7.0, &r, NULL) && r.budget_used == 1.0,
      "budget 7 not clamped");
  CHECK (mone_context_run (ctx, input, -1.0, &r, NULL) && r.budget_used == 0.5,
      "budget -1 not clamped to r_0 = 0.5");
  CHECK (mone_context_run (ctx, input, NAN, &r, NULL) && r.budget_used == 1.0, "NaN budget");
  CHECK (mone_context_new (NULL, 1, &error) == NULL && error, "NULL model accepted");
  g_clear_error (&error);
  mone_context_free (ctx);
  test_model_free (m);

  /* A valid model whose workspaces exceed the machine: 65,536 tokens times an MLP of 65,536 is 17
   * GB of hidden units. An error naming the shape, not an abort. Skipped where half the memory
   * would hold it (the context would then be made, zeroing 17 GB). */
  const long pages = sysconf (_SC_PHYS_PAGES), page_size = sysconf (_SC_PAGESIZE);
  if (pages > 0 && page_size > 0 && (double) pages * page_size / 2 < 17e9) {
    m = test_model_new (make_config (256, 256, 1, 1, 1, 1, 4, 1, 1, 65536, 1, 2), 0);
    ctx = mone_context_new (m->model, 1, &error);
    CHECK (ctx == NULL && error && strstr (error->message, "cannot allocate the workspaces"),
        "huge workspaces: %s", error ? error->message : "a context was made");
    g_clear_error (&error);
    mone_context_free (ctx);
    test_model_free (m);
  }
}

/* One model, several streams: contexts on different threads give the same logits as one context
 * alone (the model is read-only and every workspace belongs to its context). */
typedef struct {
  MoneModel *model;
  const float *input;
  float logits[16];
  gboolean ok;
} StreamJob;

static gpointer
stream_thread (gpointer data)
{
  StreamJob *job = data;
  MoneContext *ctx = mone_context_new (job->model, 1, NULL);
  MoneResult r;
  job->ok = TRUE;
  for (int frame = 0; frame < 20 && job->ok; frame++) {
    job->ok = mone_context_run (ctx, job->input, frame % 2 ? 0.4 : 0.9, &r, NULL);
    if (frame == 19)
      memcpy (job->logits, r.logits, sizeof (float) * mone_model_get_config (job->model)->classes);
  }
  mone_context_free (ctx);
  return NULL;
}

static void
test_concurrent_streams (void)
{
  TestModel *m = test_model_new (make_config (32, 32, 3, 1, 1, 8, 32, 2, 2, 64, 4, 10), 0.5f);
  float *input = random_input (&m->config);
  MoneContext *ctx = mone_context_new (m->model, 1, NULL);
  MoneResult alone;
  mone_context_run (ctx, input, 0.4, &alone, NULL);
  StreamJob jobs[3];
  GThread *threads[3];
  for (int i = 0; i < 3; i++) {
    jobs[i] = (StreamJob){ m->model, input, { 0 }, FALSE };
    threads[i] = g_thread_new ("stream", stream_thread, &jobs[i]);
  }
  for (int i = 0; i < 3; i++) {
    g_thread_join (threads[i]);
    CHECK (jobs[i].ok, "stream %d failed", i);
    for (int k = 0; k < 10; k++)
      CHECK (jobs[i].logits[k] == alone.logits[k], "stream %d logit %d: %g vs %g", i, k,
          jobs[i].logits[k], alone.logits[k]);
  }
  mone_context_free (ctx);
  g_free (input);
  test_model_free (m);
}

/* The FMA kernels (AVX2, AVX-512) round every product the same way: whole frames agree bit for bit,
 * with a stem too (its windows read in place by the panel kernels, 8 then 24 outputs). */
static void
test_fma_paths_agree (void)
{
  if (!mone_isa_supported (MONE_ISA_AVX2) || !mone_isa_supported (MONE_ISA_AVX512)) {
    printf ("avx2 vs avx512: not both on this CPU, skipped\n");
    return;
  }
  const MoneConfig configs[] = { make_config (40, 80, 4, 1, 1, 4, 64, 1, 4, 96, 4, 4),
    with (make_config (64, 64, 3, 1, 1, 8, 64, 1, 4, 96, 4, 4), "stem=8,24") };
  for (size_t k = 0; k < G_N_ELEMENTS (configs); k++) {
    TestModel *m = test_model_new (configs[k], 0.5f);
    float *input = random_input (&m->config);
    const int K = m->config.classes;
    float logits[2][4];
    const MoneIsa paths[2] = { MONE_ISA_AVX2, MONE_ISA_AVX512 }, default_isa = mone_isa_default ();
    for (int i = 0; i < 2; i++) {
      mone_isa_set_default (paths[i]);
      MoneContext *ctx = mone_context_new (m->model, 2, NULL);
      MoneResult r;
      mone_context_run (ctx, input, 0.4, &r, NULL);
      memcpy (logits[i], r.logits, sizeof (float) * K);
      mone_context_free (ctx);
    }
    mone_isa_set_default (default_isa);
    CHECK (memcmp (logits[0], logits[1], sizeof (float) * K) == 0,
        "config %zu: avx2 and avx512 logits differ", k);
    g_free (input);
    test_model_free (m);
  }
}

static void
test_every_path (void)
{
  for (int isa = 0; isa < MONE_ISA_COUNT; isa++)
    printf ("path %s: %s\n", mone_isa_name (isa),
        mone_isa_supported (isa) ? "tested" : "not on this CPU, skipped");
  /*                                       H   W  C  T  t  p   D  L  heads F  E   K */
  test_against_mone_reference ("image 32x32x3, E=4",
      make_config (32, 32, 3, 1, 1, 8, 32, 2, 2, 64, 4, 10));
  test_against_mone_reference ("grey 24x40, odd widths, E=3",
      make_config (24, 40, 1, 1, 1, 8, 48, 3, 3, 84, 3, 7));
  test_against_mone_reference ("video T=4 tubelet=2",
      make_config (32, 32, 3, 4, 2, 8, 64, 2, 4, 128, 4, 5));
  test_against_mone_reference ("100 tokens, E=2",
      make_config (80, 80, 3, 1, 1, 8, 32, 1, 2, 48, 2, 3));
  test_against_mone_reference ("200 tokens, E=4, RGBA",
      make_config (40, 80, 4, 1, 1, 4, 64, 1, 4, 96, 4, 4));
  MoneConfig hidden_router = make_config (64, 64, 1, 1, 1, 8, 64, 2, 4, 128, 4, 10);
  hidden_router.router_hidden = 24;
  test_against_mone_reference ("router with 24 hidden units, E=4", hidden_router);
  /* Products large enough for OpenBLAS's path to use the few-row kernel. */
  test_against_mone_reference ("16 tokens, D 192",
      make_config (32, 32, 3, 1, 1, 8, 192, 1, 3, 768, 4, 10));
  test_against_mone_reference ("class token, E=4",
      with (make_config (32, 32, 3, 1, 1, 8, 32, 2, 2, 64, 4, 10), "pool=cls"));
  /* Convolutional stems (mone.stem): the later layers' windows read in place from the padded
   * maps (half a panel up to 8 output channels, whole panels above); the openblas path copies
   * them out as im2col rows. */
  test_against_mone_reference ("grey 32x32, stem 4,8",
      with (make_config (32, 32, 1, 1, 1, 8, 32, 2, 2, 64, 4, 10), "stem=4,8"));
  test_against_mone_reference ("RGB 32x48, stem 12",
      with (make_config (32, 48, 3, 1, 1, 8, 48, 2, 3, 96, 4, 7), "stem=12"));
  /* Rows of 22 first-layer pixels, not a multiple of its blocks (8 pixels by one vector of
   * channels, 4 by two): the last ones go one at a time. */
  test_against_mone_reference ("RGB 32x44, stem 12",
      with (make_config (32, 44, 3, 1, 1, 4, 48, 1, 3, 96, 4, 7), "stem=12"));
  test_against_mone_reference ("grey 32x44, stem 6,8",
      with (make_config (32, 44, 1, 1, 1, 4, 32, 1, 2, 64, 4, 5), "stem=6,8"));
  test_against_mone_reference ("video T=2 tubelet=2, stem 6,10",
      with (make_config (32, 32, 3, 2, 2, 8, 64, 2, 4, 128, 4, 5), "stem=6,10"));
  test_against_mone_reference ("class token, stem 4,8,8",
      with (with (make_config (32, 32, 1, 1, 1, 8, 32, 2, 2, 64, 4, 10), "pool=cls"),
          "stem=4,8,8"));
  /* A wide first layer (64 channels: the second reads windows of 576 values), rows of 24 and
   * 12 output pixels (blocks of 12 and 12, and 12). And 4 layers reduce patches of 16 to single
   * pixels. */
  test_against_mone_reference ("RGB 64x48, stem 64,16",
      with (make_config (64, 48, 3, 1, 1, 8, 32, 1, 2, 64, 4, 6), "stem=64,16"));
  test_against_mone_reference ("4-layer stem, hidden router",
      with (with (make_config (64, 64, 1, 1, 1, 16, 32, 1, 2, 64, 2, 3), "stem=4,4,8,8"),
          "router_hidden=8"));
  /* Patches reduced to single pixels over several frames: the embedding reads the last map in
   * place, frame after frame. */
  test_against_mone_reference ("video T=3 tubelet=1, stem 4,8 to single pixels",
      with (make_config (32, 32, 1, 3, 1, 4, 32, 1, 2, 64, 4, 5), "stem=4,8"));
  test_full_budget_is_plain_vit ("image 32x32x3",
      make_config (32, 32, 3, 1, 1, 8, 32, 2, 2, 64, 4, 10));
  test_full_budget_is_plain_vit ("video T=4 tubelet=2",
      make_config (32, 32, 3, 4, 2, 8, 64, 2, 4, 128, 4, 5));
  test_full_budget_is_plain_vit ("video T=4 tubelet=2, stem 8",
      with (make_config (32, 32, 3, 4, 2, 8, 64, 2, 4, 128, 4, 5), "stem=8"));
}

int
main (int argc, char **argv)
{
  skip_if_forced_isa_unsupported ();
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/forward/every-path", test_every_path);
  g_test_add_func ("/forward/fma-paths-agree", test_fma_paths_agree);
  g_test_add_func ("/forward/flops", test_flops);
  g_test_add_func ("/forward/bad-arguments", test_bad_arguments);
  g_test_add_func ("/forward/concurrent-streams", test_concurrent_streams);
  return g_test_run ();
}
