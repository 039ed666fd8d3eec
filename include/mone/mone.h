/* libmone: Mixture of Nested Experts (MoNE) vision-transformer inference.
 *
 * One MoneModel (immutable, reference counted, safe to share between threads) serves any number of
 * MoneContexts; a context owns every workspace one stream needs and is used by one thread at a time.
 * The algorithm is described in docs/mone.md, the model file format in docs/model-format.md.
 *
 * Errors are reported through GError in the MONE_ERROR domain with a message naming the cause.
 */
#ifndef MONE_MONE_H
#define MONE_MONE_H

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

G_BEGIN_DECLS

/* The library exports these declarations and nothing else (it is built with hidden visibility). */
#if defined(__GNUC__)
#define MONE_API __attribute__ ((visibility ("default")))
#else
#define MONE_API
#endif

#define MONE_MAX_EXPERTS 8
#define MONE_MAX_CHANNELS 4
#define MONE_MAX_STEM_LAYERS 4

#define MONE_ERROR (mone_error_quark ())
MONE_API GQuark mone_error_quark (void);

typedef enum {
  MONE_ERROR_IO,     /* the file could not be opened, read or written */
  MONE_ERROR_FORMAT, /* the bytes are not a valid safetensors file */
  MONE_ERROR_MODEL,  /* valid safetensors, but not a consistent MoNE model */
  MONE_ERROR_INVALID_ARGUMENT,
  MONE_ERROR_INTERRUPTED, /* a long job (training) was asked to stop before it finished */
} MoneErrorCode;

/* Model hyper-parameters, from the file's __metadata__. */
typedef struct {
  int height, width;           /* input frame size in pixels */
  int channels;                /* C: 1 (grey) or 3 (RGB) */
  int frames;                  /* T: frames per input (1 for image models) */
  int patch;                   /* p: patch side in pixels */
  int tubelet;                 /* t: frames per tubelet (1 for image models) */
  int dim;                     /* D: model width */
  int depth;                   /* L: number of transformer blocks */
  int heads;                   /* H: attention heads, D % H == 0 */
  int mlp_dim;                 /* F: MLP hidden width */
  int experts;                 /* E: nested experts, D % 2^(E-1) == 0 */
  int classes;                 /* K */
  int tokens;                  /* N = (T/t) * (height/p) * (width/p), derived */
  int grid_width, grid_height; /* tokens per row / column of one time slice, derived */
  float delta, beta;           /* capacity-distribution constants */
  float ln_eps;                /* LayerNorm epsilon */
  float mean[MONE_MAX_CHANNELS],
      std[MONE_MAX_CHANNELS]; /* per-channel normalisation of [0,1] pixels */
  int pool; /* what the head reads: MONE_POOL_MEAN (the mean of the tokens) or MONE_POOL_CLS (a
             * class token's output; the class token goes to the widest expert at every budget) */
  int router_hidden; /* 0: the router is one linear layer on each embedded token; R > 0: it reads
                      * the token minus the frame's mean token through R GELU units */
  /* Convolutional stem: S = stem_layers 3x3 stride-2 convolutions (padding 1, GELU after each)
   * run on every frame before the patch embedding, which then reads patches of side p / 2^S of
   * the last layer's stem_channels[S - 1] channels. S = 0: the patch embedding reads the pixels. */
  int stem_layers;
  int stem_channels[MONE_MAX_STEM_LAYERS];
} MoneConfig;

#define MONE_POOL_MEAN 0
#define MONE_POOL_CLS 1

typedef struct MoneModel MoneModel;
typedef struct MoneContext MoneContext;

/* Loading. The file is read into memory once (replacing it later does not affect a loaded model);
 * F32 tensors are used in place, F16/BF16 converted once. */
MONE_API MoneModel *mone_model_load_file (const char *path, GError **error);
/* Loads from a caller buffer. The bytes are copied, so the buffer may be freed afterwards. */
MONE_API MoneModel *mone_model_load_memory (const void *data, size_t size, GError **error);
MONE_API MoneModel *mone_model_ref (MoneModel *model);
MONE_API void mone_model_unref (MoneModel *model);

MONE_API const MoneConfig *mone_model_get_config (const MoneModel *model);
/* Class label k (0 <= k < classes); never NULL for a valid k. */
MONE_API const char *mone_model_get_label (const MoneModel *model, int k);
MONE_API size_t mone_model_parameter_count (const MoneModel *model);
/* Smallest budget the model accepts: r_0 = 1 / 2^(E-1). */
MONE_API double mone_model_min_budget (const MoneModel *model);
/* Expected FLOPs (multiply-add = 2) of one forward pass at the given budget (clamped). */
MONE_API double mone_model_flops (const MoneModel *model, double budget);

/* Capacity distribution: fills capacity[0..E-1] (smallest expert first), sum 1, sum c_j r_j = budget.
 * Returns the clamped budget actually used. experts in 1..MONE_MAX_EXPERTS, delta and beta finite
 * and > 0 (a model's: MoneConfig); otherwise a critical warning, 1.0 and capacity untouched. */
MONE_API double mone_capacity_from_budget (int experts, double delta, double beta, double budget,
    double *capacity);
/* Token counts per expert from a capacity distribution: k_j = floor(c_j N + 1e-9) for j = E-1..1,
 * expert 0 takes the rest. The 1e-9 keeps an exactly integer c_j N (e.g. E = 5, e = 31/80, where
 * the optimum is uniform) from losing a token when the bisection leaves c_j an ulp low. */
MONE_API void mone_tokens_per_expert (int experts, const double *capacity, int tokens, int *counts);
/* Expert Preferred Routing. router_probs is N x E row-major; writes expert_of_token[N].
 * For j = E-1 down to 1 expert j takes the counts[j] unassigned tokens with the highest
 * router_probs[:, j], ties broken by lower token index; the rest go to expert 0.
 * scratch must hold 2 * N ints. */
MONE_API void mone_route_tokens (int tokens, int experts, const float *router_probs,
    const int *counts, uint8_t *expert_of_token, int *scratch);

/* Per-stream context. n_threads <= 0 chooses: 1 for models under MONE_AUTO_THREADS_MIN_FLOPS per
 * frame at e = 1, else every processor. More threads than processors work but are slow: every
 * fork-join waits for descheduled threads. */
#define MONE_AUTO_THREADS_MIN_FLOPS 2.5e8
MONE_API MoneContext *mone_context_new (MoneModel *model, int n_threads, GError **error);
MONE_API void mone_context_free (MoneContext *ctx);
MONE_API MoneModel *mone_context_get_model (MoneContext *ctx);
MONE_API int mone_context_get_threads (MoneContext *ctx);
/* The matrix-product path of the context (fixed when it is created): "avx512", "avx2" or
 * "generic", the best the CPU runs unless the environment variable MONE_ISA names another, or
 * "openblas" (MONE_ISA=openblas: OpenBLAS on the unpacked weights, the reference). */
MONE_API const char *mone_context_get_kernels (MoneContext *ctx);
/* The path a context created now would take. */
MONE_API const char *mone_default_kernels (void);

/* Output of one forward pass. Pointers refer to buffers owned by the context and stay valid until
 * the next mone_context_run on that context or its destruction. */
typedef struct {
  double budget_requested;
  double budget_used; /* after clamping to [r_0, 1] */
  double flops;       /* FLOPs actually spent on this frame */
  /* FALSE when a logit is NaN or infinite (weights or pixels that overflow the forward pass): the
   * frame has no answer, top_class is -1 and logits/probs must not be reported as scores. */
  gboolean finite;
  int top_class; /* argmax of probs; -1 when !finite */
  int tokens;    /* N */
  int experts;   /* E */
  int tokens_per_expert[MONE_MAX_EXPERTS];
  const float *logits;            /* (K) */
  const float *probs;             /* (K) softmax of logits */
  const uint8_t *expert_of_token; /* (N) expert index of each token, token order as patchified */
  const float *router_probs;      /* (N, E) */
} MoneResult;

/* Runs one input: float32 planar pixels in [0,1], layout (T, C, H, W) with the model's exact
 * size (T = 1 for image models). Normalisation by mean/std is done inside. No heap allocation
 * after the first call. */
MONE_API gboolean mone_context_run (MoneContext *ctx, const float *input, double budget,
    MoneResult *result, GError **error);

G_END_DECLS

#endif /* MONE_MONE_H */
