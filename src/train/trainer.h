/* The trainer's inside: the layout of a model's parameters, the batched forward/backward pass
 * (MonePass) over many images and AdamW. What programs call (data, training runs, evaluation,
 * reports) is in include/mone/mone-train.h.
 *
 * The forward pass implements exactly the semantics of docs/mone.md (the engine's forward.c is
 * the per-frame, inference-only twin); tests/train/test-forward-equal.c checks that both give the
 * same logits on the same weights.
 */
#ifndef MONE_TRAIN_TRAINER_H
#define MONE_TRAIN_TRAINER_H

#include "mone-private.h"
#include "mone/mone-train.h"

G_BEGIN_DECLS

/* Named pointers into a flat float array laid out as mone_tensor_specs. Used for the parameters,
 * their gradients and the two AdamW moments alike. */
typedef struct {
  float *norm1_weight, *norm1_bias; /* (D) */
  float *qkv_weight;                /* (3D, D) */
  float *qkv_bias;                  /* (3D) */
  float *proj_weight;               /* (D, D) */
  float *proj_bias;                 /* (D) */
  float *norm2_weight, *norm2_bias; /* (D) */
  float *fc1_weight;                /* (F, D) */
  float *fc1_bias;                  /* (F) */
  float *fc2_weight;                /* (D, F) */
  float *fc2_bias;                  /* (D) */
} MoneTrainBlock;

typedef struct {
  float *patch_embed_weight;      /* (D, P), P = C'*p'*p' (mone_patch_inputs): pixels or the stem's map */
  float *patch_embed_bias;        /* (D) */
  float *pos_embed;               /* (N, D); (N + 1, D) with a class token, its position first */
  float *router_weight;           /* (E, D), or (E, H) with a hidden layer */
  float *router_bias;             /* (E) */
  float *alpha;                   /* (1) */
  MoneTrainBlock *blocks;         /* (L) */
  float *norm_weight, *norm_bias; /* (D) */
  float *head_weight;             /* (K, D) */
  float *head_bias;               /* (K) */
  float *cls_token;               /* (D), mone.pool = cls only, else NULL */
  float *router_hidden_weight;    /* (H, D), mone.router_hidden = H > 0 only, else NULL */
  float *router_hidden_bias;      /* (H) */
  /* Stem layer i < S = mone.stem layers: (C_i, 9 C_{i-1}), inputs (channel, row, column); NULL past S. */
  float *stem_weight[MONE_MAX_STEM_LAYERS];
  float *stem_bias[MONE_MAX_STEM_LAYERS]; /* (C_i) */
} MoneTrainTensors;

struct MoneTrainModel {
  MoneConfig config;
  int n_specs;
  MoneTensorSpec *specs; /* (n_specs) */
  size_t *offsets;       /* (n_specs) float offset of each tensor in params */
  size_t n_params;
  float *params;      /* (n_params) */
  MoneTrainTensors t; /* pointers into params */
};

/* ViT-style initialisation: weights N(0, 0.02) truncated at 2 sigma, biases 0, LayerNorm weights 1,
 * alpha 0. A pure function of the seed. */
void mone_train_model_init (MoneTrainModel *model, uint64_t seed);

/* Binds named pointers to any flat array laid out like the parameters (grads, moments). */
void mone_train_tensors_bind (MoneTrainTensors *t, const MoneTrainModel *model, float *base);
void mone_train_tensors_clear (MoneTrainTensors *t);

/* Activations and scratch for one batch of up to max_batch images. One per thread. */
typedef struct MonePass MonePass;

MonePass *mone_pass_new (const MoneConfig *config, int max_batch);
void mone_pass_free (MonePass *pass);

/* Forward pass over `batch` images: input (batch, C, H, W) float32 in [0,1], normalised per channel,
 * then through the convolutional stem if the model has one (mone.stem), then cut into patches. With labels (batch)
 * the label-smoothed cross-entropy is computed; returns the SUM of the per-image losses (0 without
 * labels). routing_seed seeds the per-image random routing (image b uses stream b). */
double mone_pass_forward (MonePass *pass, const MoneTrainModel *model, const float *input, const guint8 *labels,
    int batch, double budget, MoneRouting routing, uint64_t routing_seed, float label_smoothing);
/* For MONE_ROUTING_ITEM_BOX: cover (batch, N), the fraction of each token's patch inside the
 * item's box, read by the next forward (caller's memory). */
void mone_pass_set_item_cover (MonePass *pass, const float *cover);

/* The same forward with soft targets instead of labels: the loss is the cross-entropy against
 * teacher_probs (batch, K), e.g. the full model's own predictions (in-place distillation). The
 * targets are constants (no gradient flows into them) and must stay valid until the backward. */
double mone_pass_forward_distill (MonePass *pass, const MoneTrainModel *model, const float *input,
    const float *teacher_probs, int batch, double budget);
const float *mone_pass_logits (const MonePass *pass);       /* (batch, K) */
const float *mone_pass_probs (const MonePass *pass);        /* (batch, K) softmax of the logits */
const uint8_t *mone_pass_experts (const MonePass *pass);    /* (batch, N) expert of each token */
const float *mone_pass_router_probs (const MonePass *pass); /* (batch, N, E) */
/* Adds to moments (D, D) the second moments of the last forward's residual stream, every row
 * centred over its channels, taken at each block's input, after its attention and at the output. */
void mone_pass_add_residual_moments (const MonePass *pass, double *moments);
/* Number of images among the last forward's whose argmax equals the label. */
int mone_pass_correct (const MonePass *pass, const guint8 *labels);

/* Backward of loss_weight * (sum of the per-image losses of the last forward). Gradients are
 * ADDED to grads (laid out like the parameters). dinput, if not NULL, receives (overwritten) the
 * gradient with respect to the input pixels, (batch, C, H, W). */
void mone_pass_backward (MonePass *pass, const MoneTrainModel *model, float loss_weight, float *grads, float *dinput);

/* A training step runs several passes on the same images with the same parameters (the labels'
 * pass, the distilled budgets', the router's supervision). Between mone_pass_stem_hold and
 * mone_pass_stem_release a convolutional stem runs forward once, in the first forward, whose
 * output the later forwards reuse (their input must be the same images), and backward once, in
 * release, on the sum of every backward's gradient at its output, which release adds to grads
 * (the backwards must not ask for dinput meanwhile). The gradients are those of the passes run
 * one by one, up to float rounding. Without a stem both do nothing. */
void mone_pass_stem_hold (MonePass *pass);
void mone_pass_stem_release (MonePass *pass, const MoneTrainModel *model, float *grads);

/* Router supervision from where the item is, on the last forward (call before the next one): per
 * token, the binary cross-entropy between the router's probability of the widest expert and
 * target (batch, N) in [0, 1] (the share of the token's patch the item covers; NaN: no target),
 * averaged over each image's tokens and multiplied by weight. Gradients are ADDED to grads: the
 * router and, through the token embeddings, the patch and position embeddings and the stem. Returns the sum of
 * the per-image losses (unweighted). Expert Preferred Routing fills the widest expert first, by
 * this probability, so this teaches it to give the item the full width. */
double mone_pass_router_target_backward (MonePass *pass, const MoneTrainModel *model, const float *target, float weight,
    float *grads);

/* One AdamW step (betas 0.9, 0.999, eps 1e-8, bias-corrected; decoupled weight decay on matrices
 * except pos_embed). grads are multiplied by grad_scale first (gradient clipping); t counts from 1.
 * m and v are laid out like the parameters. */
void mone_train_adamw_step (MoneTrainModel *model, const float *grads, float *m, float *v, double lr, double wd, long t,
    double grad_scale);

/* Rotates a model's residual stream onto the principal axes of its own activations on the first
 * images of `images` (full frames, budget 1), largest variance first, after folding every
 * LayerNorm's scale and shift into the projection that reads it. The full-width model computes the
 * same function up to rounding (and up to the router, which reads the stream before any
 * LayerNorm); each nested expert's leading channels then carry most of the stream. See
 * principal.c. */
gboolean mone_train_model_rotate_principal (MoneTrainModel *model, const MoneImageSet *images, GError **error);

/* Learning rate at `step` of `total`: linear warm-up then cosine decay to min_lr. */
double mone_train_lr (const MoneTrainOptions *opts, long step, long total);
/* The budget used at `step` (a pure function of seed and step). */
double mone_train_budget_for_step (const MoneTrainOptions *opts, long step);

G_END_DECLS

#endif /* MONE_TRAIN_TRAINER_H */
