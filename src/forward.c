/* The MoNE forward pass (docs/mone.md "Forward pass of an image model") and its per-stream context.
 *
 * Layout of one frame:
 *   stem (mone.stem): S 3x3 stride-2 convolutions + GELU on every frame, one pool run per layer
 *   patchify + patch embed + pos embed + router     (rows in token order)
 *   capacity -> token counts -> Expert Preferred Routing
 *   group: permute the token rows so that each expert's tokens are contiguous (ascending token
 *          index inside a group). Everything after this works on grouped rows; attention is
 *          permutation-equivariant and mean pooling permutation-invariant, so nothing needs to be
 *          put back, and the per-token outputs (experts, router probabilities) were produced in
 *          token order before the permutation.
 *   L blocks; final LayerNorm, mean pool (or the class token's row), head, softmax.
 *
 * Class-token models (mone.pool = cls): the sequence is S = N + 1 rows, the class token (its own
 * vector plus the first position embedding) before the N patch tokens. The budget routes the
 * patch tokens; the class token always joins the widest expert, as the first row of its group,
 * and the head reads its final LayerNorm row. Results (experts, router probabilities, counts)
 * describe the N patch tokens.
 *
 * Nested experts without copies or padding: every projection (patch embedding, QKV, attention
 * projection, fc1, fc2) multiplies weights packed once at load (gemm.h) in a layout where expert
 * j's slice -- its leading d_j inputs (QKV, fc1) or leading d_j outputs (projection, fc2) -- is a
 * prefix of each panel or a prefix of the panels, so it is one kernel call per (expert, row
 * range), with no per-call packing. MONE_ISA=openblas multiplies the file layout with sgemm
 * instead (k = d_j with the full leading dimension, or the leading d_j rows), as a reference.
 *
 * Threads: OpenBLAS is set to one thread and our own pool (threadpool.h) splits the work:
 * row ranges of each expert for the token-wise parts, (head, query block) pairs for attention,
 * output rows of a layer for the stem.
 * Why not OpenBLAS's threads: its thread count is process-global, its per-call threshold decides
 * to thread or not by size, and at these sizes (N ~ 200, D ~ 200) most calls would stay serial
 * while LayerNorm, softmax and GELU -- a large share of the time at low budgets -- would not be
 * threaded at all. Splitting whole phases (LN + product + GELU + product on a row range) across
 * our own threads parallelises everything with 2 barriers per block. Each task writes disjoint rows
 * with a fixed order of operations and the packed kernels compute every output element in the
 * same order whatever rows share its block, so results are the same bits for any number of
 * threads (on the openblas path, up to sgemm's rounding on different row-block shapes).
 *
 * Time per frame: the token-wise phase of a block is fused (attention projection, residual, LN2,
 * fc1, GELU, fc2, residual, then the next block's LN1 and QKV), so each token row is loaded once
 * per block while it is hot in cache. */
#include "mone-private.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attention.h"
#include "engine-kernels.h"
#include "kernels.h"
#include "threadpool.h"

/* Query rows per attention task: enough tasks to balance heads over threads. */
#define ATTENTION_QUERY_BLOCK 64
/* Upper bound on token rows per token-wise task: each task streams its expert's weight slices
 * once (on the openblas path, repacks them), so fewer, longer tasks are faster, while its hidden
 * activations (rows x F) still fit a 1 MB L2. */
#define ROW_BLOCK 256
/* Stem, openblas path: each task builds the im2col rows of this many floats' worth of output
 * pixels at a time in its own scratch (32 KB: it stays in L1/L2 while the product reads it),
 * whatever the map's size. */
#define STEM_CHUNK_FLOATS 8192
/* ...and runs its GELU on rows of at least this many values (MoneContext.stem_bias_tiled). */
#define STEM_GELU_ROW 64
/* openblas path: groups of at most this many rows multiply with mone_gemm_nt_few_rows, which
 * does not repack the weights (at e = 0.25 on ViT-Ti, 18.1 -> 16.1 ms). */
#define FEW_ROWS 16
/* ...but only products above this many multiply-adds: below it OpenBLAS (0.3.21 on x86-64) takes
 * its small-matrix path, which skips the repacking and beats the few-row kernel (the shipped
 * Fashion model, D 64: e = 0.5 from 0.46 to 0.42 ms, `mone bench`). */
#define SMALL_PRODUCT (64 * 64 * 64)

typedef struct {
  int expert;
  int row_begin, row_end; /* grouped rows [begin, end) */
} RowTask;

struct MoneContext {
  MoneModel *model;
  MoneConfig config; /* copy: the hot loop reads it often */
  MoneThreadPool *pool;
  int n_threads;
  MoneIsa isa; /* which kernels multiply the projections (gemm.h) */

  /* Workspaces (N patch tokens, S = N + class token sequence rows, D width, F MLP width,
   * P = C'*t*p'*p' patch values (mone_patch_inputs), E experts, K classes). */
  int seq;             /* S */
  /* Attention tasks per head, and the query count their blocks are multiples of (but the last). */
  int attention_query_blocks, attention_query_granule;
  /* Stem (mone.stem, layers i < c->stem_layers, C_i channels): feature maps channels last, so
   * that a product's output rows (pixels) are the map's rows. Every map but the last keeps a zero
   * row above and a zero column left of each frame: the next layer's padding, read in place. */
  float *stem_maps[MONE_MAX_STEM_LAYERS]; /* (T, H_i [+ 1], W_i [+ 1], C_i), H_i = H >> (i + 1) */
  /* The first layer's input: the normalised frame channels last, below a zero row and right of a
   * zero column (its padding; the bottom and right padding are never read). */
  float *stem_padded;                     /* (T, H + 1, (W + 1) C) */
  const MoneKernels *stem_kernels;        /* the context's ISA's (stem_first_row) */
  float *stem_columns; /* (threads, stem_chunk_floats) each task's im2col rows (openblas path) */
  size_t stem_chunk_floats;
  /* Layer i's bias repeated for stem_gelu_pixels[i] pixels: its GELU then runs on rows of at
   * least 64 values, where the kernel overlaps four vectors' dependency chains (rows of 16 or 32
   * channels would run one vector at a time). GELU is element-wise: the same bits either way. */
  float *stem_bias_tiled[MONE_MAX_STEM_LAYERS]; /* (stem_gelu_pixels[i] * C_i) */
  int stem_gelu_pixels[MONE_MAX_STEM_LAYERS];
  int stem_layer, n_stem_tasks; /* the layer the running stem tasks compute, and their number */
  float *patches;               /* (N, P) normalised patch pixels or stem features, token order */
  float *embedded;     /* (S, D) patch embedding + pos embedding, class token first */
  float *x;            /* (S, D) residual stream, grouped rows */
  float *normed;       /* (S, D) LayerNorm output; row of expert j uses its leading d_j */
  float *qkv;          /* (S, 3D) q | k | v per row, heads contiguous inside each */
  float *attention;    /* (S, D) attention output, heads concatenated */
  float *hidden;       /* (S, F) MLP hidden activations */
  float *scores;       /* (threads, mone_attention_scratch_floats) per-thread attention scratch */
  float *router_probs; /* (S, E) class token first, then the patch tokens in token order */
  /* Hidden-layer router (R = router_hidden units). */
  float *router_weight_t;    /* (D, R) W_h transposed */
  double *router_center_sum; /* (D) */
  float *router_center;      /* (D) the frame's mean patch token */
  float *router_hidden;      /* (S, R) hidden units of every row */
  const MoneKernels *router_kernels; /* the generic build's, whatever the ISA (route_frame_hidden) */
  float *gate;         /* (S) grouped rows: alpha g + 1 */
  float *pooled;       /* (D) */
  float *logits;       /* (K) */
  float *probs;        /* (K) */
  int *route_scratch;  /* (2N) for mone_route_tokens */
  uint8_t *expert_of_token; /* (N) token order */

  /* Per-frame schedule. */
  int group_begin[MONE_MAX_EXPERTS + 1]; /* grouped rows of expert j: [begin[j], begin[j+1]) */
  RowTask *row_tasks;                    /* (max_row_tasks) */
  int n_row_tasks, max_row_tasks;
  int n_patch_tasks;
  int post_block, pre_block; /* which block the running token-wise phase finishes / starts */
  const float *input;
  float alpha;
  /* The last budget's capacity solution: a stream keeps its budget for many frames, and the
   * bisection (with pow per step) is a few percent of a small model's frame. */
  double counted_budget, counted_used;
  int counted[MONE_MAX_EXPERTS];
};

/* Whether the stem's last map, read in order, already is the patch vectors in token order (one
 * pixel per patch and one frame per tubelet, its channels the vector: patchify_stem_tokens would
 * copy it as it is), so that the patch embedding can read the map in place. */
static bool
stem_map_is_patches (const MoneConfig *c)
{
  return c->stem_layers && mone_embed_patch (c) == 1 && c->tubelet == 1;
}

static inline int
expert_width (const MoneConfig *c, int j)
{
  return c->dim >> (c->experts - 1 - j);
}

/* Whether stem layer i's map has the zero row and column of the next layer's padding. */
static inline bool
stem_map_padded (const MoneConfig *c, int layer)
{
  return layer < c->stem_layers - 1;
}

/* Floats of one row of stem layer i's map, and of one frame's map, padding included. */
static size_t
stem_map_row_floats (const MoneConfig *c, int layer)
{
  return (size_t) ((c->width >> (layer + 1)) + stem_map_padded (c, layer))
      * c->stem_channels[layer];
}

static size_t
stem_map_frame_floats (const MoneConfig *c, int layer)
{
  return (size_t) ((c->height >> (layer + 1)) + stem_map_padded (c, layer))
      * stem_map_row_floats (c, layer);
}

/* Output pixels per im2col chunk of a stem layer with K = 9 C_{i-1} inputs per pixel: at least a
 * register block of the product's rows, or wide layers would stream their weights once per pixel. */
static inline size_t
stem_chunk_pixels (size_t K)
{
  return MAX (16, STEM_CHUNK_FLOATS / K);
}

/* ---------------------------------------------------------------------------------------------- */
/* FLOPs (multiply-add = 2) of the matrix products; element-wise work is not counted. */

static double
flops_for_counts (const MoneConfig *c, const int *counts)
{
  const double N = c->tokens, D = c->dim, F = c->mlp_dim, E = c->experts, K = c->classes;
  const double P = mone_patch_inputs (c);
  const double S = N + (c->pool == MONE_POOL_CLS); /* the class token: widest expert */
  /* sum_j n_j d_j: the token-width product every nested projection scales with. */
  double token_width = (S - N) * D;
  for (int j = 0; j < c->experts; j++)
    token_width += (double) counts[j] * expert_width (c, j);
  const double qkv = 2 * token_width * 3 * D; /* (n_j x d_j) x (d_j x 3D) */
  /* Per query row: scores and attention x V over S keys at full width, then proj ((1 x D) x
   * (D x d_j)), fc1 and fc2, token_width being the rows' sum of d_j. */
  const double per_block = qkv + 2 * 2 * S * S * D + 2 * token_width * D + 2 * 2 * token_width * F;
  /* With a class token the head reads only its row, so the last block runs every row's QKV (the
   * keys and values) and then the class token's row alone (mone_context_run). */
  const double last_block = S > N ? qkv + 2 * 2 * S * D + 2 * D * D + 2 * 2 * D * F : per_block;
  /* Stem layer i: every output pixel of every frame reads 3x3 pixels of C_{i-1} channels. */
  double stem = 0;
  for (int i = 0; i < c->stem_layers; i++)
    stem += 2.0 * c->frames * (c->height >> (i + 1)) * (c->width >> (i + 1)) * c->stem_channels[i]
        * mone_stem_in_channels (c, i) * 9;
  const double patch_embedding = 2 * N * P * D;
  const double router = c->router_hidden ? 2 * S * c->router_hidden * (D + E) : 2 * S * D * E;
  const double head = 2 * D * K;
  return stem + patch_embedding + router + (c->depth - 1) * per_block + last_block + head;
}

static void
counts_for_budget (const MoneConfig *c, double budget, double *used, int *counts)
{
  double capacity[MONE_MAX_EXPERTS];
  *used = mone_capacity_from_budget (c->experts, c->delta, c->beta, budget, capacity);
  mone_tokens_per_expert (c->experts, capacity, c->tokens, counts);
}

double
mone_model_flops (const MoneModel *model, double budget)
{
  int counts[MONE_MAX_EXPERTS];
  double used;
  counts_for_budget (&model->config, budget, &used, counts);
  return flops_for_counts (&model->config, counts);
}

/* ---------------------------------------------------------------------------------------------- */
/* Context */

/* probs = softmax(logits) of E router logits. */
static void
router_softmax (const double *logit_in, int E, float *probs)
{
  double logit[MONE_MAX_EXPERTS], max = -INFINITY, sum = 0;
  for (int j = 0; j < E; j++)
    max = logit_in[j] > max ? logit_in[j] : max;
  for (int j = 0; j < E; j++)
    sum += (logit[j] = exp (logit_in[j] - max));
  for (int j = 0; j < E; j++)
    probs[j] = (float) (logit[j] / sum);
}

/* Linear router: probs = softmax(W_r row + b_r), W_r (E, D). The logits are dot products in
 * double (mone_router_dot), the same bits on every kernel path: routing is a ranking, and equal
 * inputs must rank alike. */
static void
route_row (const MoneWeights *w, int D, int E, const float *row, float *probs)
{
  double logit[MONE_MAX_EXPERTS];
  for (int j = 0; j < E; j++)
    logit[j] = mone_router_dot (w->router_weight + (size_t) j * D, row, D, w->router_bias[j]);
  router_softmax (logit, E, probs);
}

/* Router with a hidden layer (mone.router_hidden = R): probs = softmax(W_r h + b_r),
 * h = GELU(W_h (row - center) + b_h), W_h (R, D), W_r (E, R); center is the frame's mean patch
 * token, so the router sees how a token differs from the rest of its frame (an item stands out
 * from a light background and from a dark one alike). Computed for every row after the embedding.
 *
 * Routing is a ranking, and equal inputs must rank alike on every kernel path, so none of this
 * goes through the per-ISA kernels: the hidden layer is one multiply-add chain per unit over d in
 * increasing order, in GCC vectors of 4 units compiled once for the baseline target, and its GELU
 * is the generic build's (compiled once too). Laying W_h out as (D, R) in the context makes each
 * step one broadcast of a centred input against R contiguous weights. */
typedef float RouterFloat4 __attribute__ ((vector_size (4 * sizeof (float))));

static void
route_frame_hidden (MoneContext *ctx)
{
  const MoneConfig *c = &ctx->config;
  const MoneWeights *w = &ctx->model->weights;
  const int N = c->tokens, D = c->dim, E = c->experts, R = c->router_hidden, S = ctx->seq, cls = S - N;

  /* center = mean of the patch rows, each channel summed in double in token order. */
  double *sum = ctx->router_center_sum;
  for (int d = 0; d < D; d++)
    sum[d] = 0;
  for (int t = 0; t < N; t++) {
    const float *row = ctx->embedded + (size_t) (cls + t) * D;
    for (int d = 0; d < D; d++)
      sum[d] += row[d];
  }
  float *center = ctx->router_center;
  for (int d = 0; d < D; d++)
    center[d] = (float) (sum[d] / N);

  /* hidden (S, R) = (rows - center) W_h^T; W_h^T is ctx->router_weight_t (D, R). Units in blocks
   * of 16 (four independent chains per row, so the adds' latency overlaps), a row at a time: every
   * hidden value is the same chain whatever block computes it. */
  const float *wt = ctx->router_weight_t;
  for (int r = 0; r < S; r++) {
    const float *row = ctx->embedded + (size_t) r * D;
    float *h = ctx->router_hidden + (size_t) r * R;
    int i = 0;
    for (; i + 16 <= R; i += 16) {
      RouterFloat4 acc0 = { 0 }, acc1 = { 0 }, acc2 = { 0 }, acc3 = { 0 }, w0, w1, w2, w3;
      for (int d = 0; d < D; d++) {
        const float x = row[d] - center[d];
        const float *w_row = wt + (size_t) d * R + i;
        memcpy (&w0, w_row, sizeof w0);
        memcpy (&w1, w_row + 4, sizeof w1);
        memcpy (&w2, w_row + 8, sizeof w2);
        memcpy (&w3, w_row + 12, sizeof w3);
        acc0 += x * w0;
        acc1 += x * w1;
        acc2 += x * w2;
        acc3 += x * w3;
      }
      memcpy (h + i, &acc0, sizeof acc0);
      memcpy (h + i + 4, &acc1, sizeof acc1);
      memcpy (h + i + 8, &acc2, sizeof acc2);
      memcpy (h + i + 12, &acc3, sizeof acc3);
    }
    for (; i < R; i++) {
      float acc = 0;
      for (int d = 0; d < D; d++)
        acc += (row[d] - center[d]) * wt[(size_t) d * R + i];
      h[i] = acc;
    }
  }
  ctx->router_kernels->bias_gelu_scale_rows (S, R, ctx->router_hidden, R, w->router_hidden_bias, NULL);

  for (int r = 0; r < S; r++) {
    double logit[MONE_MAX_EXPERTS];
    for (int j = 0; j < E; j++)
      logit[j] = mone_router_dot (w->router_weight + (size_t) j * R,
          ctx->router_hidden + (size_t) r * R, R, w->router_bias[j]);
    router_softmax (logit, E, ctx->router_probs + (size_t) r * E);
  }
}

/* A context's workspaces are allocated against a bound, half the machine's memory: a model file
 * whose shapes ask for more (tens of thousands of tokens times a wide MLP) gets an error, not an
 * abort in the allocator (GLib's aborts) or the out-of-memory killer while pages are zeroed. */
typedef struct {
  size_t bytes_left;
  size_t bytes_asked; /* for the message */
  gboolean ok;
} WorkspaceBudget;

static WorkspaceBudget
workspace_budget (void)
{
  const long pages = sysconf (_SC_PHYS_PAGES), page_size = sysconf (_SC_PAGESIZE);
  WorkspaceBudget b = { .bytes_left = SIZE_MAX, .ok = TRUE };
  if (pages > 0 && page_size > 0)
    b.bytes_left = (size_t) pages / 2 * (size_t) page_size;
  return b;
}

/* n_floats zeroed floats, 64-byte aligned so rows start on cache lines; freed with free(). */
static float *
workspace (size_t n_floats, WorkspaceBudget *budget)
{
  const size_t bytes = MAX (n_floats, 1) * sizeof (float);
  void *p = NULL;
  budget->bytes_asked += n_floats <= SIZE_MAX / 2 / sizeof (float) ? bytes : SIZE_MAX / 2;
  if (!budget->ok || n_floats > SIZE_MAX / 2 / sizeof (float) || bytes > budget->bytes_left
      || posix_memalign (&p, 64, bytes) != 0) {
    budget->ok = FALSE;
    return NULL;
  }
  budget->bytes_left -= bytes;
  memset (p, 0, bytes);
  return p;
}

void
mone_context_free (MoneContext *ctx)
{
  if (!ctx)
    return;
  mone_thread_pool_free (ctx->pool);
  for (int i = 0; i < MONE_MAX_STEM_LAYERS; i++) {
    free (ctx->stem_maps[i]);
    free (ctx->stem_bias_tiled[i]);
  }
  free (ctx->stem_columns);
  free (ctx->stem_padded);
  free (ctx->patches);
  free (ctx->embedded);
  free (ctx->x);
  free (ctx->normed);
  free (ctx->qkv);
  free (ctx->attention);
  free (ctx->hidden);
  free (ctx->scores);
  free (ctx->router_probs);
  free (ctx->router_weight_t);
  g_free (ctx->router_center_sum);
  free (ctx->router_center);
  free (ctx->router_hidden);
  free (ctx->gate);
  free (ctx->pooled);
  free (ctx->logits);
  free (ctx->probs);
  g_free (ctx->route_scratch);
  g_free (ctx->expert_of_token);
  g_free (ctx->row_tasks);
  mone_model_unref (ctx->model);
  g_free (ctx);
}

MoneContext *
mone_context_new (MoneModel *model, int n_threads, GError **error)
{
  if (!model) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT, "mone_context_new: model is NULL");
    return NULL;
  }
  /* Automatic: one thread for small models, whose frames are too short to pay for the fork-joins
   * (the shipped 0.033-GFLOP model in a pipeline: 0.58 ms with one thread, 0.67-0.86 with two),
   * every processor otherwise (ViT-Ti/16: 30 ms -> 17 ms on two). An explicit count is honoured
   * (tests use more threads than cores to check results do not depend on them), capped at 256. */
  if (n_threads <= 0)
    n_threads = mone_model_flops (model, 1.0) < MONE_AUTO_THREADS_MIN_FLOPS
        ? 1
        : (int) g_get_num_processors ();
  n_threads = CLAMP (n_threads, 1, 256);

  /* Our pool does the threading (see the top of this file). Process-global: set it only when it
   * is not 1 already, so that creating a context does not touch OpenBLAS's thread state while
   * another context in the process runs an sgemm. */
  if (openblas_get_num_threads () != 1)
    openblas_set_num_threads (1);

  const MoneConfig *c = &model->config;
  const size_t N = c->tokens, D = c->dim, F = c->mlp_dim, E = c->experts, K = c->classes;
  const size_t P = (size_t) mone_patch_inputs (c);
  const size_t S = N + (c->pool == MONE_POOL_CLS);
  MoneContext *ctx = g_new0 (MoneContext, 1);
  ctx->seq = (int) S;
  ctx->attention_query_granule = mone_attention_query_granule ();
  ctx->attention_query_blocks = (int) MIN ((S + ATTENTION_QUERY_BLOCK - 1) / ATTENTION_QUERY_BLOCK,
      (S + ctx->attention_query_granule - 1) / ctx->attention_query_granule);
  ctx->counted_budget = NAN; /* nothing counted yet */
  ctx->model = mone_model_ref (model);
  ctx->config = *c;
  ctx->n_threads = n_threads;
  ctx->isa = mone_isa_default ();

  WorkspaceBudget ok = workspace_budget ();
  for (int i = 0; i < c->stem_layers; i++)
    ctx->stem_maps[i] = workspace ((size_t) c->frames * stem_map_frame_floats (c, i), &ok);
  if (c->stem_layers)
    ctx->stem_padded = workspace ((size_t) c->frames * (c->height + 1) * (c->width + 1)
            * c->channels,
        &ok);
  ctx->stem_kernels = mone_kernels_for_isa (ctx->isa);
  if (!ctx->stem_kernels)
    ctx->stem_kernels = mone_kernels ();
  for (int i = 1; i < c->stem_layers; i++) {
    const size_t K = 9 * (size_t) mone_stem_in_channels (c, i);
    ctx->stem_chunk_floats = MAX (ctx->stem_chunk_floats, stem_chunk_pixels (K) * K);
    ctx->stem_gelu_pixels[i] = (STEM_GELU_ROW + c->stem_channels[i] - 1) / c->stem_channels[i];
    ctx->stem_bias_tiled[i] = workspace ((size_t) ctx->stem_gelu_pixels[i] * c->stem_channels[i],
        &ok);
  }
  if (ctx->isa == MONE_ISA_OPENBLAS) /* the packed kernels read the windows in place */
    ctx->stem_columns = workspace (n_threads * ctx->stem_chunk_floats, &ok);
  if (!stem_map_is_patches (c)) /* else the patch embedding reads the stem's last map */
    ctx->patches = workspace (N * P, &ok);
  ctx->embedded = workspace (S * D, &ok);
  ctx->x = workspace (S * D, &ok);
  ctx->normed = workspace (S * D, &ok);
  ctx->qkv = workspace (S * 3 * D, &ok);
  ctx->attention = workspace (S * D, &ok);
  ctx->hidden = workspace (S * F, &ok);
  ctx->scores = workspace ((size_t) n_threads
          * mone_attention_scratch_floats ((int) S, (int) (D / c->heads)),
      &ok);
  ctx->router_probs = workspace (S * E, &ok);
  const size_t R = (size_t) c->router_hidden;
  ctx->router_weight_t = workspace (D * R, &ok);
  ctx->router_center_sum = g_try_new0 (double, D);
  ctx->router_center = workspace (D, &ok);
  ctx->router_hidden = workspace (S * R, &ok);
  ctx->gate = workspace (S, &ok);
  ctx->pooled = workspace (D, &ok);
  ctx->logits = workspace (K, &ok);
  ctx->probs = workspace (K, &ok);
  ctx->route_scratch = g_try_new0 (int, 2 * N);
  ctx->expert_of_token = g_try_malloc0 (N);
  /* Each expert's rows split into at most max(threads, ceil(n_j / ROW_BLOCK)) tasks; the sum over
   * experts is bounded by E * threads + S / ROW_BLOCK + E. */
  ctx->max_row_tasks = (int) (E * n_threads + S / ROW_BLOCK + E + 1);
  ctx->row_tasks = g_try_new0 (RowTask, ctx->max_row_tasks);
  if (!ok.ok || !ctx->route_scratch || !ctx->expert_of_token || !ctx->row_tasks
      || !ctx->router_center_sum) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_MODEL,
        "mone_context_new: cannot allocate the workspaces of a model of %zu tokens, width %zu, MLP "
        "%zu "
        "(at least %.1f MB, of at most half the machine's memory)",
        N, D, F, ok.bytes_asked / 1e6);
    mone_context_free (ctx);
    return NULL;
  }
  ctx->router_kernels = mone_kernels_for_isa (MONE_ISA_GENERIC);
  for (int i = 1; i < c->stem_layers; i++)
    for (int k = 0; k < ctx->stem_gelu_pixels[i]; k++)
      memcpy (ctx->stem_bias_tiled[i] + (size_t) k * c->stem_channels[i],
          model->weights.stem_bias[i], sizeof (float) * c->stem_channels[i]);
  for (size_t i = 0; i < R; i++) /* the hidden router's W_h, transposed (route_frame_hidden) */
    for (size_t d = 0; d < D; d++)
      ctx->router_weight_t[d * R + i] = model->weights.router_hidden_weight[i * D + d];
  if (S > N) {
    /* The class token's row is the same every frame (its vector plus the first position): embedded
     * once here, and routed once unless the router compares it with the frame's mean token; the
     * frames write the patch rows after it. */
    const MoneWeights *w = &model->weights;
    for (size_t d = 0; d < D; d++)
      ctx->embedded[d] = w->cls_token[d] + w->pos_embed[d];
    if (!c->router_hidden)
      route_row (w, (int) D, (int) E, ctx->embedded, ctx->router_probs);
  }
  ctx->pool = mone_thread_pool_new (n_threads);
  if (!ctx->pool) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
        "mone_context_new: cannot start %d threads", n_threads);
    mone_context_free (ctx);
    return NULL;
  }
  return ctx;
}

MoneModel *
mone_context_get_model (MoneContext *ctx)
{
  return ctx->model;
}

int
mone_context_get_threads (MoneContext *ctx)
{
  return ctx->n_threads;
}

MoneIsa
mone_context_get_isa (MoneContext *ctx)
{
  return ctx->isa;
}

const char *
mone_context_get_kernels (MoneContext *ctx)
{
  return mone_isa_name (ctx->isa);
}

const char *
mone_default_kernels (void)
{
  return mone_isa_name (mone_isa_default ());
}

/* The reference path (MONE_ISA=openblas): c (n, m) = beta c + a (n, k) b^T, b (m, k) on the
 * unpacked weights. */
static void
openblas_tokens_times_weights (int n, int m, int k, const float *a, int lda, const float *b,
    int ldb, float beta, float *c, int ldc)
{
  if (n <= FEW_ROWS && (long) n * m * k > SMALL_PRODUCT)
    mone_gemm_nt_few_rows (n, m, k, a, lda, b, ldb, beta, c, ldc);
  else
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, n, m, k, 1.0f, a, lda, b, ldb, beta, c,
        ldc);
}

/* c (n, m) = a (n, k) W[:m, :k]^T [+ bias (m)] [+ c if accumulate]: every token-times-weights
 * product of the frame. W is given packed and as the original (out, in) matrix (the reference
 * path multiplies that one). */
static void
tokens_times_weights (MoneContext *ctx, int n, int m, int k, const float *a, int lda,
    const MonePackedMatrix *packed, const float *w, const float *bias, bool accumulate, float *c,
    int ldc)
{
  if (ctx->isa != MONE_ISA_OPENBLAS) {
    mone_gemm_packed (ctx->isa, n, m, k, a, lda, packed, bias, accumulate, c, ldc);
    return;
  }
  if (bias)
    for (int i = 0; i < n; i++)
      for (int o = 0; o < m; o++)
        c[(size_t) i * ldc + o] = accumulate ? c[(size_t) i * ldc + o] + bias[o] : bias[o];
  const float beta = bias || accumulate ? 1.0f : 0.0f;
  openblas_tokens_times_weights (n, m, k, a, lda, w, packed->inputs, beta, c, ldc);
}

/* ---------------------------------------------------------------------------------------------- */
/* Stem: layer i is a 3x3 convolution of stride 2 with zero padding 1, then GELU, on every frame;
 * its output is (H >> (i + 1), W >> (i + 1)) (H and W are multiples of 2^S). The first layer,
 * with one to three input channels, is a direct convolution from the padded normalised frame
 * (kernels.h, stem_first_row). Layers i > 0 multiply each output row's pixels, their 3x3 x
 * C_{i-1} inputs in (row, column, channel) order, by the weight reordered to match at load
 * (MoneWeights.stem_packed): on the packed kernels straight from the previous map, whose zero row
 * and column are the padding and where each kernel row's 3 pixels x C_{i-1} channels are one run
 * (gemm.h, mone_gemm_packed_taps); on the openblas path as im2col rows copied out first, times the
 * unpacked stem_weight_taps. Each output value is one sum in a fixed order, whatever task computes
 * it, so thread counts give the same bits. Task = a range of output rows (all frames' rows in
 * order). */

/* The first layer's padded input (MoneContext.stem_padded) from the frame (T, C, H, W): each
 * pixel normalised as patchify_tokens does, channels last; the zero row and column stay as the
 * workspace was allocated. */
static void
fill_stem_padded (MoneContext *ctx)
{
  const MoneConfig *c = &ctx->config;
  const int C = c->channels, H = c->height, W = c->width;
  const size_t row = (size_t) (W + 1) * C;
  for (int f = 0; f < c->frames; f++)
    for (int ch = 0; ch < C; ch++) {
      const float mean = c->mean[ch], inv_std = 1.0f / c->std[ch];
      const float *plane = ctx->input + ((size_t) f * C + ch) * H * W; /* (H, W) */
      float *first_row = ctx->stem_padded + ((size_t) f * (H + 1) + 1) * row + C + ch;
      if (C == 1) {
        mone_normalize_rows (H, W, plane, W, mean, inv_std, first_row, (int) row);
        continue;
      }
      for (int y = 0; y < H; y++) {
        const float *src = plane + (size_t) y * W;
        float *dst = first_row + (size_t) y * row;
        for (int x = 0; x < W; x++)
          dst[(size_t) x * C] = (src[x] - mean) * inv_std;
      }
    }
}

/* Stem layer i's output row y of frame f: (W >> (i + 1), C_i), inside the padding if any. */
static float *
stem_output_row (MoneContext *ctx, int layer, int64_t frame, int y)
{
  const MoneConfig *c = &ctx->config;
  const bool padded = stem_map_padded (c, layer);
  return ctx->stem_maps[layer] + (size_t) frame * stem_map_frame_floats (c, layer)
      + (size_t) (y + padded) * stem_map_row_floats (c, layer)
      + (padded ? (size_t) c->stem_channels[layer] : 0);
}

/* Im2col rows of output pixels ox0 .. ox0 + n - 1 of one output row, whose first pixel's window
 * starts at `window` in the previous, padded map (row stride row_floats, C channels): per kernel
 * row, one run of 3 C values. */
static void
stem_columns_from_map (const float *window, size_t row_floats, int C, int ox0, int n,
    float *columns)
{
  const int K = 9 * C;
  for (int i = 0; i < n; i++)
    for (int ky = 0; ky < 3; ky++)
      memcpy (columns + (size_t) i * K + ky * 3 * C,
          window + ky * row_floats + (size_t) 2 * (ox0 + i) * C, sizeof (float) * 3 * C);
}

/* out (n pixels, C_i) <- GELU(out + bias), as rows of stem_gelu_pixels pixels, then the rest. */
static void
stem_bias_gelu (MoneContext *ctx, int layer, int n, float *out)
{
  const int C = ctx->config.stem_channels[layer];
  const int group = ctx->stem_gelu_pixels[layer], grouped = n / group * group;
  mone_bias_gelu_scale_rows (n / group, group * C, out, group * C, ctx->stem_bias_tiled[layer],
      NULL);
  mone_bias_gelu_scale_rows (n - grouped, C, out + (size_t) grouped * C, C,
      ctx->model->weights.stem_bias[layer], NULL);
}

static void
stem_task (void *data, int task, int thread)
{
  MoneContext *ctx = data;
  const MoneConfig *c = &ctx->config;
  const MoneWeights *w = &ctx->model->weights;
  const int layer = ctx->stem_layer, in_channels = mone_stem_in_channels (c, layer);
  const int out_channels = c->stem_channels[layer], K = 9 * in_channels;
  const int in_h = c->height >> layer, in_w = c->width >> layer, out_h = in_h / 2, out_w = in_w / 2;
  const int64_t rows = (int64_t) c->frames * out_h; /* output rows of every frame, in order */
  const int64_t first = rows * task / ctx->n_stem_tasks,
                end = rows * (task + 1) / ctx->n_stem_tasks;
  if (layer == 0) { /* a direct convolution, an output row at a time */
    const size_t padded_row = (size_t) (in_w + 1) * in_channels;
    for (int64_t r = first; r < end; r++) {
      const float *padded = ctx->stem_padded + (size_t) (r / out_h) * (in_h + 1) * padded_row
          + (size_t) (2 * (r % out_h)) * padded_row; /* padded row 2 oy: input row 2 oy - 1 */
      const float *const rows[3] = { padded, padded + padded_row, padded + 2 * padded_row };
      ctx->stem_kernels->stem_first_row (out_w, in_channels, out_channels, rows,
          w->stem_first_weights, w->stem_bias[0], stem_output_row (ctx, 0, r / out_h, r % out_h));
    }
    return;
  }
  const size_t in_row_floats = stem_map_row_floats (c, layer - 1); /* with its zero column */
  for (int64_t r = first; r < end; r++) {
    const int64_t frame = r / out_h;
    const int oy = (int) (r % out_h);
    /* Output pixel ox's window: padded rows 2 oy .. 2 oy + 2, padded columns 2 ox .. 2 ox + 2. */
    const float *window = ctx->stem_maps[layer - 1]
        + (size_t) frame * stem_map_frame_floats (c, layer - 1) + (size_t) 2 * oy * in_row_floats;
    float *out = stem_output_row (ctx, layer, frame, oy); /* (out_w, C_i) */
    /* out = GELU(windows W^T + b); W (C_i, K) reordered to (row, column, channel) order. */
    if (ctx->isa != MONE_ISA_OPENBLAS) {
      mone_gemm_packed_taps (ctx->isa, out_w, out_channels, 3, 3 * in_channels, window,
          2 * in_channels, (ptrdiff_t) in_row_floats, &w->stem_packed[layer], NULL, false, out,
          out_channels);
    } else { /* the openblas path's scratch, the only one that has it */
      const int chunk = (int) stem_chunk_pixels (K);
      float *columns = ctx->stem_columns
          + (size_t) thread * ctx->stem_chunk_floats; /* (chunk, K) */
      for (int ox = 0; ox < out_w; ox += chunk) {
        const int n = MIN (chunk, out_w - ox);
        stem_columns_from_map (window, in_row_floats, in_channels, ox, n, columns);
        tokens_times_weights (ctx, n, out_channels, K, columns, K, &w->stem_packed[layer],
            w->stem_weight_taps[layer], NULL, false, out + (size_t) ox * out_channels,
            out_channels);
      }
    }
    stem_bias_gelu (ctx, layer, out_w, out);
  }
}

/* ---------------------------------------------------------------------------------------------- */
/* Embedding: patchify, patch embed, pos embed, router. Task = a range of tokens (token order). */

/* Normalised patch vectors of tokens [begin, end) into out (end - begin, P). Token order: time
 * slice, grid row, grid column; patch vector order: channel, time, row, column; input (T, C, H, W).
 * Walks the image row by row across a grid row's tokens, so the input is read sequentially (a
 * token at a time read 48 short runs 896 bytes apart, and waited on memory for most of them). */
static void
patchify_tokens (const MoneConfig *c, const float *input, int begin, int end, float *out)
{
  const int p = c->patch, t = c->tubelet, P = c->channels * t * p * p;
  const int per_slice = c->grid_width * c->grid_height;
  for (int token = begin; token < end;) {
    /* The run of tokens [token, run_end) on one grid row of one time slice. */
    const int slice = token / per_slice, grid_row = token % per_slice / c->grid_width;
    const int first_col = token % c->grid_width;
    const int run_end = MIN (end, token - first_col + c->grid_width);
    for (int ch = 0; ch < c->channels; ch++) {
      const float mean = c->mean[ch], inv_std = 1.0f / c->std[ch];
      for (int ti = 0; ti < t; ti++) {
        const int frame = slice * t + ti;
        const float *plane = input + ((size_t) frame * c->channels + ch) * c->height * c->width;
        for (int py = 0; py < p; py++) {
          const float *src = plane + (size_t) (grid_row * p + py) * c->width + first_col * p;
          float *dst = out + (size_t) (token - begin) * P + ((ch * t + ti) * p + py) * p;
          mone_normalize_rows (run_end - token, p, src, p, mean, inv_std, dst, P); /* a row each */
        }
      }
    }
    token = run_end;
  }
}

/* Patch vectors of tokens [begin, end) into out (end - begin, P) from the stem's last map
 * (T, H', W', C'), channels last, already normalised: the same token and (channel, time, row,
 * column) orders as patchify_tokens, with patches of side p' = p / 2^S. */
static void
patchify_stem_tokens (const MoneConfig *c, const float *map, int begin, int end, float *out)
{
  const int p = mone_embed_patch (c), t = c->tubelet, C = mone_embed_channels (c);
  const int P = C * t * p * p, channel_stride = t * p * p;
  const int map_h = c->height >> c->stem_layers, map_w = c->width >> c->stem_layers;
  const int per_slice = c->grid_width * c->grid_height;
  for (int token = begin; token < end; token++) {
    const int slice = token / per_slice, grid_row = token % per_slice / c->grid_width;
    const int grid_col = token % c->grid_width;
    float *dst = out + (size_t) (token - begin) * P;
    for (int ti = 0; ti < t; ti++)
      for (int py = 0; py < p; py++) {
        const size_t map_row = (size_t) (slice * t + ti) * map_h + grid_row * p + py;
        const float *src = map + (map_row * map_w + grid_col * p) * C; /* (p, C) */
        float *dst_row = dst + (ti * p + py) * p; /* channel ch's p values at ch * channel_stride */
        for (int px = 0; px < p; px++)
          for (int ch = 0; ch < C; ch++)
            dst_row[(size_t) ch * channel_stride + px] = src[px * C + ch];
      }
  }
}

static void
embed_task (void *data, int task, int thread)
{
  MoneContext *ctx = data;
  const MoneConfig *c = &ctx->config;
  const MoneWeights *w = &ctx->model->weights;
  const int N = c->tokens, D = c->dim, E = c->experts;
  const int P = mone_patch_inputs (c);
  const int begin = (int) ((int64_t) N * task / ctx->n_patch_tasks);
  const int end = (int) ((int64_t) N * (task + 1) / ctx->n_patch_tasks);
  const int n = end - begin;
  if (n <= 0)
    return;

  /* Patch token t is sequence row t + cls (after the class token, when there is one). */
  const int cls = ctx->seq - N;
  float *embedded = ctx->embedded + (size_t) (begin + cls) * D; /* (n, D) */
  const float *patches;                                         /* (n, P) */
  if (stem_map_is_patches (c)) {
    patches = ctx->stem_maps[c->stem_layers - 1] + (size_t) begin * P;
  } else { /* ctx->patches exists only on this path */
    float *copy = ctx->patches + (size_t) begin * P;
    if (c->stem_layers)
      patchify_stem_tokens (c, ctx->stem_maps[c->stem_layers - 1], begin, end, copy);
    else
      patchify_tokens (c, ctx->input, begin, end, copy);
    patches = copy;
  }
  /* embedded = pos_embed + patch_embed_bias + patches W_pe^T; W_pe (D, P). */
  for (int i = 0; i < n; i++) {
    const float *pos = w->pos_embed + (size_t) (begin + cls + i) * D;
    float *row = embedded + (size_t) i * D;
    for (int d = 0; d < D; d++)
      row[d] = pos[d] + w->patch_embed_bias[d];
  }
  tokens_times_weights (ctx, n, D, P, patches, P, &w->patch_embed_packed, w->patch_embed_weight,
      NULL, true, embedded, D);

  if (!c->router_hidden) /* else route_frame_hidden, once every row is embedded */
    for (int i = 0; i < n; i++)
      route_row (w, D, E, embedded + (size_t) i * D, ctx->router_probs + (size_t) (begin + cls + i) * E);
}

/* ---------------------------------------------------------------------------------------------- */
/* Token-wise phase of the blocks. Task = (expert j, grouped row range). */

/* Second half of block l for the task's rows: attention projection and residual, LN2, MLP and
 * residual. Expert j: only the leading d_j channels of x change. */
static void
finish_block (MoneContext *ctx, const MoneBlockWeights *b, int d, int r0, int n)
{
  const MoneConfig *c = &ctx->config;
  const int D = c->dim, F = c->mlp_dim;
  float *x = ctx->x + (size_t) r0 * D;                       /* (n, D), leading d columns updated */
  const float *attention = ctx->attention + (size_t) r0 * D; /* (n, D) */
  float *normed = ctx->normed + (size_t) r0 * D;             /* (n, D), leading d columns used */
  float *hidden = ctx->hidden + (size_t) r0 * F;             /* (n, F) */
  const float *gate = ctx->gate + r0;                        /* (n) */

  /* x[:, :d] += attention W_o[:d, :]^T + b_o[:d]; W_o (D, D), its leading d rows. */
  tokens_times_weights (ctx, n, d, D, attention, D, &b->proj_packed, b->proj_weight, b->proj_bias,
      true, x, D);

  /* LN2 over all D channels; the expert reads only the leading d. */
  mone_layernorm_rows (n, D, d, x, D, b->norm2_weight, b->norm2_bias, c->ln_eps, normed, D);

  /* hidden = GELU(normed[:, :d] W_1[:, :d]^T + b_1) * gate; W_1 (F, D), its leading d columns.
   * The gate (alpha g + 1) is a per-row scale, so applying it to hidden scales fc2's output. */
  tokens_times_weights (ctx, n, F, d, normed, D, &b->fc1_packed, b->fc1_weight, NULL, false, hidden,
      F);
  mone_bias_gelu_scale_rows (n, F, hidden, F, b->fc1_bias, gate);

  /* x[:, :d] += gate * b_2[:d] + hidden W_2[:d, :]^T; W_2 (D, F), its leading d rows. */
  mone_scale_bias_add_rows (n, d, x, D, b->fc2_bias, gate);
  tokens_times_weights (ctx, n, d, F, hidden, F, &b->fc2_packed, b->fc2_weight, NULL, true, x, D);
}

/* First half of block l for the task's rows: LN1 and the QKV projection (full 3D outputs, so
 * attention runs at full width; expert j reads the leading d_j channels). */
static void
start_block (MoneContext *ctx, const MoneBlockWeights *b, int d, int r0, int n)
{
  const MoneConfig *c = &ctx->config;
  const int D = c->dim;
  const float *x = ctx->x + (size_t) r0 * D;     /* (n, D) */
  float *normed = ctx->normed + (size_t) r0 * D; /* (n, D), leading d columns written */
  float *qkv = ctx->qkv + (size_t) r0 * 3 * D;   /* (n, 3D) */

  mone_layernorm_rows (n, D, d, x, D, b->norm1_weight, b->norm1_bias, c->ln_eps, normed, D);
  /* qkv = b_qkv + normed[:, :d] W_qkv[:, :d]^T; W_qkv (3D, D), its leading d columns. */
  tokens_times_weights (ctx, n, 3 * D, d, normed, D, &b->qkv_packed, b->qkv_weight, b->qkv_bias,
      false, qkv, 3 * D);
}

/* After the last block: the final LayerNorm over all D channels of n rows from r0, for pooling. */
static void
final_layernorm (MoneContext *ctx, int r0, int n)
{
  const MoneConfig *c = &ctx->config;
  const MoneWeights *w = &ctx->model->weights;
  const int D = c->dim;
  mone_layernorm_rows (n, D, D, ctx->x + (size_t) r0 * D, D, w->norm_weight, w->norm_bias,
      c->ln_eps, ctx->normed + (size_t) r0 * D, D);
}

static void
token_task (void *data, int task, int thread)
{
  MoneContext *ctx = data;
  const MoneConfig *c = &ctx->config;
  const MoneWeights *w = &ctx->model->weights;
  const RowTask *t = &ctx->row_tasks[task];
  const int d = expert_width (c, t->expert), n = t->row_end - t->row_begin;

  if (ctx->post_block >= 0)
    finish_block (ctx, &w->blocks[ctx->post_block], d, t->row_begin, n);
  if (ctx->pre_block < c->depth)
    start_block (ctx, &w->blocks[ctx->pre_block], d, t->row_begin, n);
  else
    final_layernorm (ctx, t->row_begin, n);
}

/* ---------------------------------------------------------------------------------------------- */
/* Attention. Task = (head, block of query rows); all N keys, full head width. */

/* One head's attention for the nq query rows from q0 (sequence rows, expert order) over all rows'
 * keys and values, into ctx->attention. */
static void
attend_rows (MoneContext *ctx, int head, int q0, int nq, int thread)
{
  const int N = ctx->seq, D = ctx->config.dim, head_dim = D / ctx->config.heads;
  const float *q = ctx->qkv + (size_t) q0 * 3 * D + head * head_dim; /* (nq, head_dim), ld 3D */
  const float *k = ctx->qkv + D + head * head_dim;                   /* (N, head_dim), ld 3D */
  const float *v = ctx->qkv + 2 * D + head * head_dim;               /* (N, head_dim), ld 3D */
  float *scratch = ctx->scores + (size_t) thread * mone_attention_scratch_floats (N, head_dim);
  float *out = ctx->attention + (size_t) q0 * D + head * head_dim; /* (nq, head_dim), ld D */
  mone_attention_block (nq, N, head_dim, q, k, v, 3 * D, out, D, scratch);
}

/* A class-token model's class token: the first row of the widest expert's group. */
static inline int
class_token_row (const MoneContext *ctx)
{
  return ctx->group_begin[ctx->config.experts - 1];
}

static void
attention_task (void *data, int task, int thread)
{
  MoneContext *ctx = data;
  const int N = ctx->seq; /* every row, class token too */
  /* Blocks of about equal size (N = 196: 48, 48, 48, 52 with 16-query vectors rather than 64, 64,
   * 64, 4), so that tasks are alike in cost and spread evenly over threads, cut at multiples of the
   * kernel's query vector so that no block pays for a vector it barely fills. */
  const int blocks = ctx->attention_query_blocks, granule = ctx->attention_query_granule;
  const int head = task / blocks, block = task % blocks;
  const int units = (N + granule - 1) / granule;
  const int q0 = MIN (units * block / blocks * granule, N);
  const int nq = MIN (units * (block + 1) / blocks * granule, N) - q0;
  attend_rows (ctx, head, q0, nq, thread);
}

/* ---------------------------------------------------------------------------------------------- */
/* One frame */

/* Groups tokens by expert (ascending token index inside a group), gathers the residual stream in
 * that order, and splits each group into row tasks. */
static void
group_tokens (MoneContext *ctx)
{
  const MoneConfig *c = &ctx->config;
  const int N = c->tokens, D = c->dim, E = c->experts, cls = ctx->seq - N;
  int fill[MONE_MAX_EXPERTS];
  int count[MONE_MAX_EXPERTS] = { 0 };
  count[E - 1] = cls; /* the class token: first row of the widest expert's group */
  for (int t = 0; t < N; t++)
    count[ctx->expert_of_token[t]]++;
  ctx->group_begin[0] = 0;
  for (int j = 0; j < E; j++)
    ctx->group_begin[j + 1] = ctx->group_begin[j] + count[j];
  for (int j = 0; j < E; j++)
    fill[j] = ctx->group_begin[j];
  /* Sequence row i: the class token (i < cls), else patch token i - cls. */
  for (int i = 0; i < ctx->seq; i++) {
    const int j = i < cls ? E - 1 : ctx->expert_of_token[i - cls], row = fill[j]++;
    memcpy (ctx->x + (size_t) row * D, ctx->embedded + (size_t) i * D, sizeof (float) * D);
    ctx->gate[row] = ctx->alpha * ctx->router_probs[(size_t) i * E + j] + 1.0f;
  }

  /* Big experts first so the longest tasks start early. Within an expert: enough pieces for every
   * thread and none longer than ROW_BLOCK rows. */
  ctx->n_row_tasks = 0;
  for (int j = E - 1; j >= 0; j--) {
    const int rows = count[j];
    if (rows == 0)
      continue;
    int pieces = (rows + ROW_BLOCK - 1) / ROW_BLOCK;
    if (ctx->n_threads > 1 && pieces < ctx->n_threads)
      pieces = MIN (ctx->n_threads, rows);
    for (int i = 0; i < pieces; i++) {
      RowTask *t = &ctx->row_tasks[ctx->n_row_tasks++];
      t->expert = j;
      t->row_begin = ctx->group_begin[j] + (int) ((int64_t) rows * i / pieces);
      t->row_end = ctx->group_begin[j] + (int) ((int64_t) rows * (i + 1) / pieces);
    }
  }
  g_assert (ctx->n_row_tasks <= ctx->max_row_tasks);
}

gboolean
mone_context_run (MoneContext *ctx, const float *input, double budget, MoneResult *result,
    GError **error)
{
  if (!ctx || !input || !result) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT, "mone_context_run: %s is NULL",
        !ctx         ? "context"
            : !input ? "input"
                     : "result");
    return FALSE;
  }
  const MoneConfig *c = &ctx->config;
  const MoneWeights *w = &ctx->model->weights;
  const int N = c->tokens, D = c->dim, E = c->experts, K = c->classes;

  memset (result, 0, sizeof *result);
  result->budget_requested = budget;
  if (budget != ctx->counted_budget) {
    counts_for_budget (c, budget, &ctx->counted_used, ctx->counted);
    ctx->counted_budget = budget;
  }
  result->budget_used = ctx->counted_used;
  const int *counts = ctx->counted;

  /* Embedding and router, token order. */
  ctx->input = input;
  ctx->alpha = w->alpha[0];
  ctx->n_patch_tasks = MIN (ctx->n_threads, N);
  mone_thread_pool_begin_series (ctx->pool);
  /* Stem, a layer at a time (each reads the whole previous map); its output rows split over the
   * threads. */
  if (c->stem_layers)
    fill_stem_padded (ctx);
  for (int i = 0; i < c->stem_layers; i++) {
    ctx->stem_layer = i;
    ctx->n_stem_tasks = MIN (ctx->n_threads, c->frames * (c->height >> (i + 1)));
    mone_thread_pool_run (ctx->pool, ctx->n_stem_tasks, stem_task, ctx);
  }
  mone_thread_pool_run (ctx->pool, ctx->n_patch_tasks, embed_task, ctx);
  if (c->router_hidden)
    route_frame_hidden (ctx);
  const int cls = ctx->seq - N;

  /* Routing, once per frame: the budget decides for the patch tokens. */
  const float *patch_probs = ctx->router_probs + (size_t) cls * E;
  mone_route_tokens (N, E, patch_probs, counts, ctx->expert_of_token, ctx->route_scratch);
  group_tokens (ctx);

  /* Blocks: token-wise phase (finish block l-1, start block l), then attention of block l. A
   * class-token model's head reads only the class token's row: after the last block's QKV (every
   * row's keys and values) its attention and second half run for that row alone. */
  const int last = c->depth - 1;
  for (int l = 0; l <= last; l++) {
    ctx->post_block = l - 1;
    ctx->pre_block = l;
    mone_thread_pool_run (ctx->pool, ctx->n_row_tasks, token_task, ctx);
    if (!cls || l < last)
      mone_thread_pool_run (ctx->pool, c->heads * ctx->attention_query_blocks, attention_task, ctx);
  }
  if (cls) {
    /* One query per head and one row: too little to hand to the pool, so this thread (the pool's
     * thread 0, whose scratch it uses) does it. Each query's attention is its own, so the row comes
     * out as it would in a block of queries. */
    const int row = class_token_row (ctx);
    for (int head = 0; head < c->heads; head++)
      attend_rows (ctx, head, row, 1, 0);
    finish_block (ctx, &w->blocks[last], D, row, 1);
    final_layernorm (ctx, row, 1);
  } else {
    ctx->post_block = last;
    ctx->pre_block = c->depth;
    mone_thread_pool_run (ctx->pool, ctx->n_row_tasks, token_task, ctx);
  }
  mone_thread_pool_end_series (ctx->pool);

  /* Mean pool of the final LayerNorm output (in ctx->normed), or the class token's row (the first
   * of the widest expert's group), head, softmax. */
  if (cls) {
    memcpy (ctx->pooled, ctx->normed + (size_t) class_token_row (ctx) * D, sizeof (float) * D);
  } else {
    for (int d = 0; d < D; d++)
      ctx->pooled[d] = 0;
    for (int row = 0; row < N; row++)
      cblas_saxpy (D, 1.0f, ctx->normed + (size_t) row * D, 1, ctx->pooled, 1);
    cblas_sscal (D, 1.0f / N, ctx->pooled, 1);
  }
  memcpy (ctx->logits, w->head_bias, sizeof (float) * K);
  cblas_sgemv (CblasRowMajor, CblasNoTrans, K, D, 1.0f, w->head_weight, D, ctx->pooled, 1, 1.0f,
      ctx->logits, 1);
  int top = 0;
  for (int k = 1; k < K; k++)
    if (ctx->logits[k] > ctx->logits[top])
      top = k;
  double sum = 0;
  for (int k = 0; k < K; k++)
    sum += exp ((double) ctx->logits[k] - ctx->logits[top]);
  for (int k = 0; k < K; k++)
    ctx->probs[k] = (float) (exp ((double) ctx->logits[k] - ctx->logits[top]) / sum);

  /* The head's output is where any overflow upstream ends up: checking K values is enough. */
  gboolean finite = TRUE;
  for (int k = 0; k < K; k++)
    finite &= isfinite (ctx->logits[k]) != 0;
  result->flops = flops_for_counts (c, counts);
  result->finite = finite;
  result->top_class = finite ? top : -1;
  result->tokens = N;
  result->experts = E;
  for (int j = 0; j < E; j++)
    result->tokens_per_expert[j] = counts[j];
  result->logits = ctx->logits;
  result->probs = ctx->probs;
  result->expert_of_token = ctx->expert_of_token;
  result->router_probs = patch_probs;
  return TRUE;
}
