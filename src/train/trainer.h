/* The MoNE trainer: parameters in one allocation laid out by mone_tensor_specs, a batched
 * forward/backward pass (MonePass) over many images, AdamW, checkpoints and the training loop.
 *
 * The forward pass implements exactly the semantics of docs/mone.md (the engine's forward.c is
 * the per-frame, inference-only twin); tests/train/test-forward-equal.c checks that both give the
 * same logits on the same weights.
 */
#ifndef MONE_TRAIN_TRAINER_H
#define MONE_TRAIN_TRAINER_H

#include "mone-private.h"
#include "data.h"

#include <signal.h>

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
  float *patch_embed_weight;      /* (D, P) with P = C*p*p */
  float *patch_embed_bias;        /* (D) */
  float *pos_embed;               /* (N, D) */
  float *router_weight;           /* (E, D) */
  float *router_bias;             /* (E) */
  float *alpha;                   /* (1) */
  MoneTrainBlock *blocks;         /* (L) */
  float *norm_weight, *norm_bias; /* (D) */
  float *head_weight;             /* (K, D) */
  float *head_bias;               /* (K) */
} MoneTrainTensors;

typedef struct {
  MoneConfig config;
  int n_specs;
  MoneTensorSpec *specs; /* (n_specs) */
  size_t *offsets;       /* (n_specs) float offset of each tensor in params */
  size_t n_params;
  float *params;      /* (n_params) */
  MoneTrainTensors t; /* pointers into params */
} MoneTrainModel;

/* A model with every parameter zero. The config must be an image model (frames = tubelet = 1). */
MoneTrainModel *mone_train_model_new (const MoneConfig *config, GError **error);
void mone_train_model_free (MoneTrainModel *model);
/* ViT-style initialisation: weights N(0, 0.02) truncated at 2 sigma, biases 0, LayerNorm weights 1,
 * alpha 0. A pure function of the seed. */
void mone_train_model_init (MoneTrainModel *model, uint64_t seed);
/* Copies the weights of a loaded engine model. */
MoneTrainModel *mone_train_model_from_engine (MoneModel *engine, GError **error);
/* An engine model that borrows this model's parameters (they must outlive it). */
MoneModel *mone_train_model_to_engine (MoneTrainModel *model, const char *const *labels, GError **error);
gboolean mone_train_model_write (MoneTrainModel *model, const char *path, const char *const *labels, GError **error);
/* Binds named pointers to any flat array laid out like the parameters (grads, moments). */
void mone_train_tensors_bind (MoneTrainTensors *t, const MoneTrainModel *model, float *base);
void mone_train_tensors_clear (MoneTrainTensors *t);

typedef enum {
  MONE_ROUTING_EPR = 0,    /* Expert Preferred Routing (the model's own router) */
  MONE_ROUTING_RANDOM = 1, /* same tokens per expert, tokens assigned uniformly at random */
  /* Same tokens per expert, ranked by how much of each token's patch the item covers (then by the
   * router): what routing could reach if it always found the object. Evaluation only; the
   * scores come from mone_pass_set_item_cover. */
  MONE_ROUTING_ITEM_BOX = 2,
} MoneRouting;

/* Activations and scratch for one batch of up to max_batch images. One per thread. */
typedef struct MonePass MonePass;

MonePass *mone_pass_new (const MoneConfig *config, int max_batch);
void mone_pass_free (MonePass *pass);

/* Forward pass over `batch` images: input (batch, C, H, W) float32 in [0,1]. With labels (batch)
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
/* Number of images among the last forward's whose argmax equals the label. */
int mone_pass_correct (const MonePass *pass, const guint8 *labels);

/* Backward of loss_weight * (sum of the per-image losses of the last forward). Gradients are
 * ADDED to grads (laid out like the parameters). dinput, if not NULL, receives (overwritten) the
 * gradient with respect to the input pixels, (batch, C, H, W). */
void mone_pass_backward (MonePass *pass, const MoneTrainModel *model, float loss_weight, float *grads, float *dinput);

/* Router supervision from where the item is, on the last forward (call before the next one): per
 * token, the binary cross-entropy between the router's probability of the widest expert and
 * target (batch, N) in [0, 1] (the share of the token's patch the item covers; NaN: no target),
 * averaged over each image's tokens and multiplied by weight. Gradients are ADDED to grads: the
 * router and, through the token embeddings, the patch and position embeddings. Returns the sum of
 * the per-image losses (unweighted). Expert Preferred Routing fills the widest expert first, by
 * this probability, so this teaches it to give the item the full width. */
double mone_pass_router_target_backward (MonePass *pass, const MoneTrainModel *model, const float *target, float weight,
    float *grads);

/* ---------------------------------------------------------------------------------------------- */
/* Training. */

typedef struct {
  const char *data_dir; /* NULL = Debian's fashion-mnist folder */
  /* An image folder (DIR/<class>/<image>.png, data.h) to train on instead of Fashion-MNIST, or
   * NULL. Its class count replaces config.classes, its class names are the model's labels, and it
   * trains full-frame and scene samples only (in_frame_fraction must be 0; scenes paste its pictures
   * by their alpha). */
  const char *images_dir;
  /* A model file to start from (a MoNE model, a dense twin, an import) instead of random weights:
   * its architecture and pixel normalisation replace config's, and its head is kept when its
   * labels are the data's, else a new head is initialised for the data's classes. NULL: random. */
  const char *init_path;
  const char *output;     /* model file written at the end */
  const char *checkpoint; /* checkpoint path (written every checkpoint_every steps), or NULL */
  gboolean resume;        /* continue from `checkpoint` if it exists */
  MoneConfig config;
  uint64_t seed;
  int epochs;
  int batch;
  int threads; /* data-parallel workers (1 or more) */
  double lr, min_lr, weight_decay, warmup_fraction, clip_norm, label_smoothing;
  double fixed_budget; /* <= 0: sample per step from {0.15, 0.25, ..., 0.95, 1.0} */
  /* Sampled budgets above this are left out (1 = all), so low budgets get more of the steps. */
  double max_sampled_budget;
  double in_frame_fraction; /* share of training samples rendered with the in-frame protocol */
  double scene_fraction;    /* share rendered as camera scenes; the rest is full-frame */
  /* Weight of the router's supervision by the item's box (mone_pass_router_target_backward) on
   * scene and in-frame samples; 0: the router learns only through its gate. */
  double router_item_weight;
  /* Lower bound on alpha after every step (-inf: free). With alpha < 0 a high router probability
   * shrinks a token's MLP update, which pays the router to rank background highest. */
  double alpha_min;
  /* Each step also trains e = 1 on the labels, and the sampled budget (from {0.15, ..., 0.95})
   * learns the full model's predictions instead of the labels (in-place distillation). */
  gboolean self_distill;
  /* With self_distill: each step also trains the smallest budget (0.15) on the full model's
   * predictions, besides the sampled one (the "sandwich rule" of slimmable networks: largest,
   * smallest and one random width every step). */
  gboolean min_budget_pass;
  int train_images;     /* 0 = all 55,000 non-validation images (all of an image folder's) */
  int checkpoint_every; /* steps */
  int log_every;        /* steps */
  int max_steps;        /* stop early after this many steps in this run (0 = no limit) */
  /* If not NULL and set (e.g. by a signal handler), the run checkpoints after the current step and
   * returns FALSE with an "interrupted" error. */
  const volatile sig_atomic_t *stop_requested;
} MoneTrainOptions;

void mone_train_options_init (MoneTrainOptions *opts);
/* Whether a file can be written at `path` (creates and removes a temporary file beside it), so a long
 * job can refuse a bad output path before it starts. `what` names the file in the message. */
gboolean mone_check_writable (const char *path, const char *what, GError **error);
/* Runs (or resumes) training and writes opts->output. Progress lines go to stderr. */
gboolean mone_train_run (const MoneTrainOptions *opts, GError **error);

/* One AdamW step (betas 0.9, 0.999, eps 1e-8, bias-corrected; decoupled weight decay on matrices
 * except pos_embed). grads are multiplied by grad_scale first (gradient clipping); t counts from 1.
 * m and v are laid out like the parameters. */
void mone_train_adamw_step (MoneTrainModel *model, const float *grads, float *m, float *v, double lr, double wd, long t,
    double grad_scale);

/* The parameters stored in a training checkpoint (and the step it was taken at). */
MoneTrainModel *mone_train_checkpoint_load (const char *path, long *step, GError **error);

/* Learning rate at `step` of `total`: linear warm-up then cosine decay to min_lr. */
double mone_train_lr (const MoneTrainOptions *opts, long step, long total);
/* The budget used at `step` (a pure function of seed and step). */
double mone_train_budget_for_step (const MoneTrainOptions *opts, long step);

/* ---------------------------------------------------------------------------------------------- */
/* Evaluation: accuracy of a model on `count` images of a set rendered with a protocol. */

typedef struct {
  int correct, total;
  double loss; /* mean cross-entropy without smoothing */
  /* Fraction of tokens per expert (averaged over the set). */
  double expert_share[MONE_MAX_EXPERTS];
  /* How much more of the item a widest-expert token covers than the average token: the mean share
   * of a widest-expert token's patch inside the item's box over the mean share of all tokens'
   * patches. 1 when routing ignores the item (and at e = 1, where every token is widest); NaN when no
   * token went to the widest expert. Full-frame items cover every token: always 1 there. */
  double widest_item_lift;
} MoneEvalResult;

gboolean mone_evaluate (MoneTrainModel *model, const MoneImageSet *set, int count, MoneProtocol protocol,
    uint64_t render_seed, double budget, MoneRouting routing, uint64_t routing_seed, int threads,
    MoneEvalResult *result, GError **error);

/* Seeds of the evaluation renders (the test sets are a pure function of these). */
#define MONE_EVAL_RENDER_SEED 20260101u
#define MONE_EVAL_ROUTING_SEED 777u

G_END_DECLS

#endif /* MONE_TRAIN_TRAINER_H */
