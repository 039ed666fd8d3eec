/* Internal definitions shared by the loader, the inference engine, the model writer and the trainer.
 * Not installed. */
#ifndef MONE_PRIVATE_H
#define MONE_PRIVATE_H

#include "mone/mone-authoring.h"

#include "gemm.h"

G_BEGIN_DECLS

/* Weights of one transformer block; all row-major float32, shapes as in docs/model-format.md. */
typedef struct {
  const float *norm1_weight, *norm1_bias; /* (D) */
  const float *qkv_weight;                /* (3D, D) rows q, k, v */
  const float *qkv_bias;                  /* (3D) */
  const float *proj_weight;               /* (D, D) */
  const float *proj_bias;                 /* (D) */
  const float *norm2_weight, *norm2_bias; /* (D) */
  const float *fc1_weight;                /* (F, D) */
  const float *fc1_bias;                  /* (F) */
  const float *fc2_weight;                /* (D, F) */
  const float *fc2_bias;                  /* (D) */
  /* The four projections again, packed for the engine's kernels (gemm.h): expert j reads the
   * first d_j inputs of qkv and fc1 and writes the first d_j outputs of proj and fc2. */
  MonePackedMatrix qkv_packed, proj_packed, fc1_packed, fc2_packed;
} MoneBlockWeights;

typedef struct {
  const float
      *patch_embed_weight;       /* (D, C*t*p*p) flattened in (channel, time, row, column) order */
  const float *patch_embed_bias; /* (D) */
  const float *pos_embed;        /* (N, D) */
  const float *router_weight;    /* (E, D), or (E, R) with a hidden layer */
  const float *router_bias;      /* (E) */
  const float *router_hidden_weight; /* (R, D), mone.router_hidden = R > 0 only, else NULL */
  const float *router_hidden_bias;   /* (R) */
  const float *alpha;            /* (1) */
  MoneBlockWeights *blocks;      /* (L) */
  const float *norm_weight, *norm_bias; /* (D) */
  const float *head_weight;             /* (K, D) */
  const float *head_bias;               /* (K) */
  const float *cls_token;               /* (D), mone.pool = cls only, else NULL */
  /* Stem layer i: (C_i, C_{i-1} * 9), inputs flattened (channel, row, column) as PyTorch's
   * Conv2d weight (C_i, C_{i-1}, 3, 3); C_{-1} is the model's channels. NULL past stem_layers. */
  const float *stem_weight[MONE_MAX_STEM_LAYERS];
  const float *stem_bias[MONE_MAX_STEM_LAYERS]; /* (C_i) */
  MonePackedMatrix patch_embed_packed;
  /* The stem's weights as the engine multiplies them: inputs reordered to (row, column, channel),
   * the order of its channels-last feature maps (forward.c), so that an output pixel's inputs are
   * three runs of 3 C_{i-1} contiguous values. Made at load in packed_storage, for layers i > 0:
   * unpacked (the openblas path multiplies these) and packed (gemm.h); the first layer, a direct
   * convolution on every path (kernels.h, stem_first_row), tap-major instead. */
  const float *stem_weight_taps[MONE_MAX_STEM_LAYERS]; /* (C_i, 3 * 3 * C_{i-1}), NULL for i = 0 */
  MonePackedMatrix stem_packed[MONE_MAX_STEM_LAYERS];  /* layers i > 0 */
  const float *stem_first_weights;                     /* (3 * 3 * C_{-1}, C_0) */
} MoneWeights;

struct MoneModel {
  gint refcount;
  MoneConfig config;
  char **labels;            /* (K) NUL-terminated UTF-8 strings, owned */
  MoneWeights weights;      /* pointers into the mapping or into converted_storage */
  void *owned_bytes;        /* the whole file, read or copied at load (tensors may point into it) */
  float *converted_storage; /* F16/BF16 tensors converted to F32, one allocation */
  float *packed_storage;    /* every MonePackedMatrix of `weights` and the stem's reordered
                             * weights, one 64-byte aligned allocation (posix_memalign, free) */
};

/* Packs the projection matrices of m->weights (bound already), and the stem's after reordering
 * them (stem_weight_taps), into m->packed_storage. The
 * packed copy is taken now: weights changed later (a trainer's borrowed parameters) are not seen
 * by the engine, so a model must be created from final weights. */
gboolean mone_model_pack_weights (MoneModel *m, GError **error);

/* What the patch embedding reads: the pixels, or the stem's last feature map at 1 / 2^S of the
 * frame's size. */
static inline int
mone_embed_channels (const MoneConfig *c)
{
  return c->stem_layers ? c->stem_channels[c->stem_layers - 1] : c->channels;
}

static inline int
mone_embed_patch (const MoneConfig *c)
{
  return c->patch >> c->stem_layers;
}

/* C_{i-1}: the channels stem layer i reads (the pixels' for the first layer). */
static inline int
mone_stem_in_channels (const MoneConfig *c, int layer)
{
  return layer ? c->stem_channels[layer - 1] : c->channels;
}

/* P: the patch embedding's inputs per token, (channel, time, row, column). */
static inline int
mone_patch_inputs (const MoneConfig *c)
{
  return mone_embed_channels (c) * c->tubelet * mone_embed_patch (c) * mone_embed_patch (c);
}

/* Limits of the per-channel normalisation (pixels are in [0, 1]). */
#define MONE_MAX_PIXEL_MEAN 1000.0
#define MONE_MIN_PIXEL_STD 1e-4
#define MONE_MAX_PIXEL_STD 1e4

/* Points the weight table at tensors given in mone_tensor_specs order (allocates w->blocks). */
void mone_weights_bind (MoneWeights *w, const MoneConfig *config, const float *const *tensors);

/* Builds a MoneModel directly from in-memory F32 parameters laid out as mone_tensor_specs (the
 * trainer's evaluation uses this; the model borrows the `params` pointers, which must outlive it). */
MoneModel *mone_model_new_borrowed (const MoneConfig *config, const char *const *labels,
    const float *const *tensors, GError **error);

/* The path a context multiplies its projections with (fixed at mone_context_new). */
MoneIsa mone_context_get_isa (MoneContext *ctx);

G_END_DECLS

#endif /* MONE_PRIVATE_H */
