/* Training loop: data order, data-parallel workers, AdamW with warm-up + cosine decay, gradient
 * clipping, checkpoints; and batched evaluation.
 *
 * Every random choice is a pure function of (seed, step) or (seed, epoch, sample): which images a
 * step sees, their protocol and augmentation, and the step's budget. A checkpoint therefore only
 * needs the step number to resume the random streams exactly, and the same seed gives the same
 * model for any number of worker threads up to float summation order of the gradient reduction
 * (which is fixed for a given --threads).
 */
#include "trainer.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const double sampled_budgets[] = { 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95, 1.0 };

void
mone_train_options_init (MoneTrainOptions *o)
{
  memset (o, 0, sizeof *o);
  o->seed = 1;
  o->epochs = 10;
  o->batch = 128;
  o->threads = 2;
  o->lr = 1e-3;
  o->min_lr = 1e-5;
  o->weight_decay = 0.05;
  o->warmup_fraction = 0.05;
  o->clip_norm = 1.0;
  o->label_smoothing = 0.1;
  o->fixed_budget = 0;
  o->max_sampled_budget = 1.0;
  o->in_frame_fraction = 0.5;
  o->alpha_min = -INFINITY;
  o->checkpoint_every = 200;
  o->log_every = 20;
}

double
mone_train_lr (const MoneTrainOptions *o, long step, long total)
{
  long warmup = (long) (o->warmup_fraction * total);
  if (step < warmup)
    return o->lr * (step + 1) / warmup;
  double progress = total > warmup ? (double) (step - warmup) / (double) (total - warmup) : 1.0;
  progress = CLAMP (progress, 0.0, 1.0);
  return o->min_lr + 0.5 * (o->lr - o->min_lr) * (1.0 + cos (G_PI * progress));
}

double
mone_train_budget_for_step (const MoneTrainOptions *o, long step)
{
  if (o->fixed_budget > 0)
    return o->fixed_budget;
  MoneTrainRng rng;
  mone_train_rng_seed (&rng, o->seed, 0xB0D6E7000000ull + (uint64_t) step);
  uint32_t choices = 0;
  while (choices < G_N_ELEMENTS (sampled_budgets) && sampled_budgets[choices] <= o->max_sampled_budget + 1e-9)
    choices++;
  /* With self-distillation every step trains e = 1 anyway; the second pass takes the others. */
  if (o->self_distill && choices == G_N_ELEMENTS (sampled_budgets))
    choices--;
  g_return_val_if_fail (choices > 0, sampled_budgets[0]);
  return sampled_budgets[mone_train_rng_below (&rng, choices)];
}

/* ---------------------------------------------------------------------------------------------- */
/* Data order. */

typedef struct {
  const MoneTrainOptions *opts;
  const MoneImageSet *set; /* the training images (validation part excluded) */
  int cached_epoch;
  int *perm; /* (set->count) order of the cached epoch */
} DataOrder;

static void
data_order_epoch (DataOrder *d, int epoch)
{
  if (d->cached_epoch == epoch)
    return;
  MoneTrainRng rng;
  mone_train_rng_seed (&rng, d->opts->seed, 0xE90C000000ull + (uint64_t) epoch);
  int n = d->set->count;
  for (int i = 0; i < n; i++)
    d->perm[i] = i;
  for (int i = n - 1; i > 0; i--) {
    int j = (int) mone_train_rng_below (&rng, (uint32_t) (i + 1));
    int t = d->perm[i];
    d->perm[i] = d->perm[j];
    d->perm[j] = t;
  }
  d->cached_epoch = epoch;
}

/* cover (N): the fraction of each token's p x p patch that lies inside the item's box. */
static void
item_cover (const MoneConfig *c, const MoneItemBox *box, float *cover)
{
  const int p = c->patch;
  for (int t = 0; t < c->tokens; t++) {
    const float x0 = (float) (t % c->grid_width) * p, y0 = (float) (t / c->grid_width) * p;
    const float w = MAX (0.0f, MIN (x0 + p, box->x + box->w) - MAX (x0, box->x));
    const float h = MAX (0.0f, MIN (y0 + p, box->y + box->h) - MAX (y0, box->y));
    cover[t] = w * h / (float) (p * p);
  }
}

/* Renders global sample `sample` (= step * batch + k) into out and returns its label. With
 * router_target (N) not NULL, also where the item is: the share of each token's patch it covers, or
 * NaN for full-frame samples (the item fills the frame: nothing to route by). */
static guint8
data_render_sample (DataOrder *d, long sample, float *out, float *router_target)
{
  const MoneConfig *c = &d->opts->config;
  int n = d->set->count;
  int epoch = (int) (sample / n);
  data_order_epoch (d, epoch);
  int index = d->perm[sample % n];
  MoneTrainRng rng;
  mone_train_rng_seed (&rng, d->opts->seed, 0x5A3F1E000000000ull + (uint64_t) sample);
  /* One draw picks the protocol: [0, scene) scene, then in-frame, then close-up, the rest full-frame. */
  const double u = mone_train_rng_uniform (&rng);
  const double scene = d->opts->scene_fraction, in_frame = d->opts->in_frame_fraction;
  const double close_up = d->opts->close_up_fraction;
  MoneProtocol protocol = u < scene     ? MONE_PROTOCOL_SCENE
      : u < scene + in_frame            ? MONE_PROTOCOL_IN_FRAME
      : u < scene + in_frame + close_up ? MONE_PROTOCOL_CLOSE_UP
                                        : MONE_PROTOCOL_FULL_FRAME;
  uint64_t render_seed = d->opts->seed * 0x9E3779B97F4A7C15ull + (uint64_t) epoch * 7919u;
  MoneItemBox box;
  mone_render_with_box (d->set, index, protocol, render_seed, TRUE, c->channels, c->height, c->width, out, &box);
  if (router_target) {
    if (protocol == MONE_PROTOCOL_FULL_FRAME)
      for (int t = 0; t < c->tokens; t++)
        router_target[t] = NAN;
    else
      item_cover (c, &box, router_target);
  }
  return d->set->labels[index];
}

/* ---------------------------------------------------------------------------------------------- */
/* Data-parallel workers: each renders its share of the batch, runs forward and backward into its
 * own gradient buffer; the main thread sums the buffers in worker order. */

/* Losses summed over images: one worker's share of a step, a whole step, or a log interval. */
typedef struct {
  double loss;        /* cross-entropy on the labels (at e = 1 with self-distillation) */
  double distill;     /* cross-entropy of the budget-e pass against the full model's predictions */
  double min_distill; /* the same for the smallest budget (min_budget_pass) */
  double router;      /* router supervision (router_item_weight), per image */
  long correct;       /* of the label pass */
} LossSums;

static void
loss_sums_add (LossSums *to, const LossSums *from)
{
  to->loss += from->loss;
  to->distill += from->distill;
  to->min_distill += from->min_distill;
  to->router += from->router;
  to->correct += from->correct;
}

typedef struct {
  const MoneTrainOptions *opts;
  MoneTrainModel *model;
  const MoneTrainModel *frozen_teacher; /* the --init model (frozen_teacher), or NULL */
  MonePass *pass;
  DataOrder order;
  float *input;         /* (max_share, C, H, W) */
  guint8 *labels;       /* (max_share) */
  float *teacher;       /* (max_share, K) the full model's predictions (self-distillation) */
  float *router_target; /* (max_share, N) item cover per token, NaN rows for full frames */
  float *grads;         /* (n_params) */
  /* Per-step job. */
  long first_sample;
  int count;
  int batch_total;
  double budget;
  LossSums sums;
} Worker;

/* Router supervision on the model's last forward. The router's probabilities do not depend on the
 * budget: once per step is enough. */
static void
supervise_router (Worker *w)
{
  if (w->router_target)
    w->sums.router = mone_pass_router_target_backward (w->pass, w->model, w->router_target,
        (float) (w->opts->router_item_weight / w->batch_total), w->grads);
}

static gpointer
worker_step (gpointer data)
{
  Worker *w = data;
  const MoneConfig *c = &w->model->config;
  size_t frame = (size_t) c->channels * c->height * c->width;
  memset (w->grads, 0, sizeof (float) * w->model->n_params);
  w->sums = (LossSums){ 0 };
  if (w->count == 0)
    return NULL;
  for (int k = 0; k < w->count; k++)
    w->labels[k] = data_render_sample (&w->order, w->first_sample + k, w->input + k * frame,
        w->router_target ? w->router_target + (size_t) k * c->tokens : NULL);
  /* Self-distillation (the "sandwich" of slimmable networks): the full model learns from the labels
   * on every step, and the step's smaller budget learns to match the full model's predictions.
   * With a frozen teacher the starting model, as it was, teaches every pass instead: the full model
   * starts equal to it, so no pass on the labels is needed to keep it there (a third of a step). */
  if (w->frozen_teacher) {
    mone_pass_forward (w->pass, w->frozen_teacher, w->input, NULL, w->count, 1.0, MONE_ROUTING_EPR, 0, 0);
    memcpy (w->teacher, mone_pass_probs (w->pass), sizeof (float) * w->count * c->classes);
  }
  /* The model's passes below read the same images with the same parameters: a convolutional stem
   * runs forward and backward once for all of them. */
  mone_pass_stem_hold (w->pass);
  if (!w->frozen_teacher) {
    const double label_budget = w->opts->self_distill ? 1.0 : w->budget;
    w->sums.loss = mone_pass_forward (w->pass, w->model, w->input, w->labels, w->count, label_budget, MONE_ROUTING_EPR,
        0, (float) w->opts->label_smoothing);
    w->sums.correct = mone_pass_correct (w->pass, w->labels);
    mone_pass_backward (w->pass, w->model, 1.0f / w->batch_total, w->grads, NULL);
    supervise_router (w);
    if (w->opts->self_distill)
      memcpy (w->teacher, mone_pass_probs (w->pass), sizeof (float) * w->count * c->classes);
  }
  if (w->opts->self_distill) {
    w->sums.distill = mone_pass_forward_distill (w->pass, w->model, w->input, w->teacher, w->count, w->budget);
    if (w->frozen_teacher)
      w->sums.correct = mone_pass_correct (w->pass, w->labels);
    mone_pass_backward (w->pass, w->model, 1.0f / w->batch_total, w->grads, NULL);
    if (w->frozen_teacher)
      supervise_router (w);
    if (w->opts->min_budget_pass) {
      w->sums.min_distill = mone_pass_forward_distill (w->pass, w->model, w->input, w->teacher, w->count,
          sampled_budgets[0]);
      mone_pass_backward (w->pass, w->model, 1.0f / w->batch_total, w->grads, NULL);
    }
  }
  mone_pass_stem_release (w->pass, w->model, w->grads);
  return NULL;
}

/* ---------------------------------------------------------------------------------------------- */
/* Checkpoints: fixed header, then params, AdamW m and v (float32, native byte order), then a
 * trailer naming the classes (older checkpoints end after v and resume without that check). */

#define CHECKPOINT_MAGIC "MONECKP2"
#define CHECKPOINT_CLASSES_MAGIC "MONECLS1"

/* What a checkpoint's trailer holds: the run's class names, hashed in order, so that a resumed
 * image-folder run whose class folders were renamed (same counts, other labels or another order)
 * is refused instead of training its classes under the wrong names. */
typedef struct {
  char magic[8];
  uint64_t classes_checksum;
} CheckpointTrailer;

/* Below this many optimiser steps a run is warned about: the image-folder model of the docs needs
 * about 500 to get past chance on a few hundred pictures. */
#define MONE_TRAIN_FEW_STEPS 500

typedef struct {
  char magic[8];
  uint32_t header_size;
  uint32_t n_specs;
  uint64_t n_params;
  int64_t step;
  int64_t total_steps;
  uint64_t seed;
  int32_t batch, epochs, train_images, threads;
  int32_t self_distill, min_budget_pass, frozen_teacher;
  /* A float in the 4 bytes before the doubles: checkpoints of runs without close-ups hold 0 here,
   * whichever version wrote them. */
  float close_up_fraction;
  double fixed_budget, in_frame_fraction, scene_fraction, router_item_weight, lr, alpha_min, max_sampled_budget;
  double min_lr, weight_decay, warmup_fraction, clip_norm, label_smoothing;
  uint64_t init_checksum; /* of the --init model's parameters; 0: random start */
  MoneConfig config;
} CheckpointHeader;

static gboolean
checkpoint_write (const char *path, const CheckpointHeader *h, const float *params, const float *m, const float *v,
    uint64_t classes_checksum, GError **error)
{
  CheckpointTrailer trailer = { .classes_checksum = classes_checksum };
  memcpy (trailer.magic, CHECKPOINT_CLASSES_MAGIC, 8);
  char *tmp = g_strdup_printf ("%s.tmp", path);
  FILE *f = fopen (tmp, "wb");
  gboolean ok = f != NULL;
  int saved_errno = ok ? 0 : errno; /* of the first step that failed */
  size_t n = h->n_params;
  ok = ok && fwrite (h, sizeof *h, 1, f) == 1;
  ok = ok && fwrite (params, sizeof (float), n, f) == n;
  ok = ok && fwrite (m, sizeof (float), n, f) == n;
  ok = ok && fwrite (v, sizeof (float), n, f) == n;
  ok = ok && fwrite (&trailer, sizeof trailer, 1, f) == 1;
  /* On disk before the rename: a crash then leaves the previous checkpoint or the whole new one. */
  ok = ok && fflush (f) == 0 && fsync (fileno (f)) == 0;
  if (!ok && saved_errno == 0)
    saved_errno = errno;
  if (f && fclose (f) != 0 && ok)
    ok = FALSE, saved_errno = errno;
  if (ok && rename (tmp, path) != 0)
    ok = FALSE, saved_errno = errno;
  if (!ok) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "cannot write checkpoint '%s': %s", path, g_strerror (saved_errno));
    unlink (tmp);
  }
  g_free (tmp);
  return ok;
}

/* "dim=32 (now 64), --lr 0.001 (now 0.002)": every option a checkpoint was made with that differs
 * from this run's; empty when the run may resume from it. */
static GString *
checkpoint_differences (const CheckpointHeader *was, const CheckpointHeader *now)
{
  GString *out = g_string_new (NULL);
#define DIFFER(option, a, b, fmt, cast)                                                                                \
  if (!((a) == (b)))                                                                                                   \
  g_string_append_printf (out, "%s--%s " fmt " (now " fmt ")", out->len ? ", " : "", option, (cast) (a), (cast) (b))
#define DIFFER_INT(option, field) DIFFER (option, was->field, now->field, "%lld", long long)
#define DIFFER_REAL(option, field) DIFFER (option, was->field, now->field, "%g", double)
  DIFFER_INT ("seed", seed);
  DIFFER_INT ("batch", batch);
  DIFFER_INT ("epochs", epochs);
  if (was->train_images != now->train_images) /* --train-images, or pictures added to an --images folder */
    g_string_append_printf (out, "%s%d training images (now %d)", out->len ? ", " : "", was->train_images,
        now->train_images);
  DIFFER_INT ("threads", threads);
  DIFFER_INT ("self-distill", self_distill);
  DIFFER_INT ("min-budget-pass", min_budget_pass);
  DIFFER_INT ("frozen-teacher", frozen_teacher);
  DIFFER_REAL ("budget", fixed_budget);
  DIFFER_REAL ("in-frame-fraction", in_frame_fraction);
  DIFFER_REAL ("scene-fraction", scene_fraction);
  DIFFER_REAL ("close-up-fraction", close_up_fraction);
  DIFFER_REAL ("router-item-weight", router_item_weight);
  DIFFER_REAL ("lr", lr);
  DIFFER_REAL ("min-lr", min_lr);
  DIFFER_REAL ("weight-decay", weight_decay);
  DIFFER_REAL ("warmup", warmup_fraction);
  DIFFER_REAL ("clip", clip_norm);
  DIFFER_REAL ("label-smoothing", label_smoothing);
  DIFFER_REAL ("alpha-min", alpha_min);
  DIFFER_REAL ("max-sampled-budget", max_sampled_budget);
  if (was->init_checksum != now->init_checksum)
    g_string_append_printf (out, "%s--init %s (now %s)", out->len ? ", " : "",
        was->init_checksum ? "another model" : "none", now->init_checksum ? "a model" : "none");
    /* The model's shape, in the key=value words of --config. */
#define DIFFER_KEY(key, field, fmt, cast)                                                                              \
  if (!(was->config.field == now->config.field))                                                                       \
  g_string_append_printf (out, "%s" key "=" fmt " (now " fmt ")", out->len ? ", " : "", (cast) was->config.field,      \
      (cast) now->config.field)
  DIFFER_KEY ("height", height, "%d", int);
  DIFFER_KEY ("width", width, "%d", int);
  DIFFER_KEY ("channels", channels, "%d", int);
  DIFFER_KEY ("patch", patch, "%d", int);
  DIFFER_KEY ("dim", dim, "%d", int);
  DIFFER_KEY ("depth", depth, "%d", int);
  DIFFER_KEY ("heads", heads, "%d", int);
  DIFFER_KEY ("mlp_dim", mlp_dim, "%d", int);
  DIFFER_KEY ("experts", experts, "%d", int);
  DIFFER_KEY ("mean", mean[0], "%g", double);
  DIFFER_KEY ("std", std[0], "%g", double);
  DIFFER_KEY ("delta", delta, "%g", double);
  DIFFER_KEY ("beta", beta, "%g", double);
  if (was->config.stem_layers != now->config.stem_layers
      || memcmp (was->config.stem_channels, now->config.stem_channels, sizeof (int) * was->config.stem_layers)) {
    g_autofree char *was_stem = mone_config_stem_string (&was->config),
                    *now_stem = mone_config_stem_string (&now->config);
    g_string_append_printf (out, "%sstem=%s (now %s)", out->len ? ", " : "", was_stem, now_stem);
  }
#undef DIFFER_KEY
#undef DIFFER_REAL
#undef DIFFER_INT
#undef DIFFER
  /* Anything else in the config (set by code, not options) or a layout change. */
  if (out->len == 0
      && (memcmp (&was->config, &now->config, sizeof was->config) || was->n_params != now->n_params
          || was->n_specs != now->n_specs))
    g_string_append (out, "a different model configuration");
  return out;
}

/* The header as read (read_ok: fread got all of it) is this build's: FALSE with a message that
 * tells another build's checkpoint (its header has another size) from a file that is none. */
static gboolean
checkpoint_header_valid (const char *path, const CheckpointHeader *h, gboolean read_ok, GError **error)
{
  if (read_ok && !memcmp (h->magic, CHECKPOINT_MAGIC, 8) && h->header_size != sizeof *h) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT,
        "'%s' was written by another version of mone train (a %u-byte header, this build's is %zu): "
        "resume it with that version, or start the run again",
        path, (unsigned) h->header_size, sizeof *h);
    return FALSE;
  }
  if (!read_ok) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT,
        "'%s' is shorter than a checkpoint's header: not a mone checkpoint, or one cut short", path);
    return FALSE;
  }
  if (memcmp (h->magic, CHECKPOINT_MAGIC, 8)) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT, "'%s' is not a mone checkpoint", path);
    return FALSE;
  }
  return TRUE;
}

/* Reads a checkpoint written with the same model config, recipe and classes; FALSE with a message
 * otherwise. */
static gboolean
checkpoint_read (const char *path, const CheckpointHeader *expected, uint64_t classes_checksum, int64_t *step,
    float *params, float *m, float *v, GError **error)
{
  CheckpointHeader h;
  FILE *f = fopen (path, "rb");
  if (!f) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "cannot open checkpoint '%s': %s", path, g_strerror (errno));
    return FALSE;
  }
  size_t n = expected->n_params;
  gboolean ok = fread (&h, sizeof h, 1, f) == 1;
  if (!checkpoint_header_valid (path, &h, ok, error)) {
    fclose (f);
    return FALSE;
  }
  GString *differences = checkpoint_differences (&h, expected);
  if (differences->len > 0) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
        "checkpoint '%s' was made with other options (%s); resume with the same options or delete it", path,
        differences->str);
    g_string_free (differences, TRUE);
    fclose (f);
    return FALSE;
  }
  g_string_free (differences, TRUE);
  if (h.step < 0 || h.step > h.total_steps) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT, "checkpoint '%s' is corrupt: step %lld of %lld", path,
        (long long) h.step, (long long) h.total_steps);
    fclose (f);
    return FALSE;
  }
  ok = fread (params, sizeof (float), n, f) == n && fread (m, sizeof (float), n, f) == n
      && fread (v, sizeof (float), n, f) == n;
  /* The trailer, or nothing (a checkpoint from before trailers), and then the end of the file. */
  CheckpointTrailer trailer;
  const size_t trailer_read = ok ? fread (&trailer, 1, sizeof trailer, f) : 0;
  const gboolean has_trailer = trailer_read == sizeof trailer;
  char extra;
  if (ok && trailer_read != 0 && (!has_trailer || memcmp (trailer.magic, CHECKPOINT_CLASSES_MAGIC, 8) != 0))
    ok = FALSE;
  if (ok && fread (&extra, 1, 1, f) != 0)
    ok = FALSE;
  fclose (f);
  if (!ok) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT, "checkpoint '%s' is truncated or has trailing bytes", path);
    return FALSE;
  }
  if (has_trailer && trailer.classes_checksum != classes_checksum) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
        "checkpoint '%s' was made on classes with other names or in another order (an image folder's class "
        "folders renamed?); resume on the same classes or delete it",
        path);
    return FALSE;
  }
  *step = h.step;
  return TRUE;
}

MoneTrainModel *
mone_train_checkpoint_load (const char *path, long *step, GError **error)
{
  CheckpointHeader h;
  FILE *f = fopen (path, "rb");
  if (!f) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "cannot open checkpoint '%s': %s", path, g_strerror (errno));
    return NULL;
  }
  if (!checkpoint_header_valid (path, &h, fread (&h, sizeof h, 1, f) == 1, error)) {
    fclose (f);
    return NULL;
  }
  MoneTrainModel *model = mone_train_model_new (&h.config, error);
  if (model
      && (model->n_params != h.n_params
          || fread (model->params, sizeof (float), model->n_params, f) != model->n_params)) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT, "checkpoint '%s' is truncated or inconsistent", path);
    mone_train_model_free (model);
    model = NULL;
  }
  fclose (f);
  if (model && step)
    *step = (long) h.step;
  return model;
}

/* ---------------------------------------------------------------------------------------------- */
/* AdamW. Decoupled weight decay on matrices only (not biases, norms, pos_embed or alpha). */

void
mone_train_adamw_step (MoneTrainModel *model, const float *grads, float *m, float *v, double lr, double wd, long t,
    double grad_scale)
{
  const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  const double c1 = 1.0 - pow (b1, (double) t), c2 = 1.0 - pow (b2, (double) t);
  for (int s = 0; s < model->n_specs; s++) {
    const MoneTensorSpec *spec = &model->specs[s];
    gboolean decay = spec->ndim == 2 && strcmp (spec->name, "pos_embed") != 0;
    size_t o = model->offsets[s];
    for (int64_t k = 0; k < spec->numel; k++) {
      size_t i = o + (size_t) k;
      float g = (float) (grads[i] * grad_scale);
      m[i] = (float) (b1 * m[i] + (1 - b1) * g);
      v[i] = (float) (b2 * v[i] + (1 - b2) * g * g);
      double update = (m[i] / c1) / (sqrt (v[i] / c2) + eps);
      if (decay)
        update += wd * model->params[i];
      model->params[i] -= (float) (lr * update);
    }
  }
}

static void
format_duration (char *buf, size_t size, double seconds)
{
  long s = (long) (seconds + 0.5);
  snprintf (buf, size, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
}

/* Accuracy per protocol at a few budgets on the validation images, one line on stderr. */
static void
report_validation (MoneTrainModel *model, const MoneImageSet *val, const MoneProtocol *protocols, int n_protocols,
    int threads)
{
  const double budgets[] = { 1.0, 0.5, 0.3 };
  static const char *const short_name[MONE_N_PROTOCOLS] = { "full", "in", "scene", "close" };
  if (val->count == 0)
    return;
  fprintf (stderr, "  validation (%d held-out training images):", val->count);
  for (int i = 0; i < n_protocols; i++)
    for (size_t b = 0; b < G_N_ELEMENTS (budgets); b++) {
      const MoneProtocol p = protocols[i];
      MoneEvalResult r;
      if (!mone_evaluate (model, val, val->count, p, MONE_EVAL_RENDER_SEED + 1, budgets[b], MONE_ROUTING_EPR, 0,
              threads, &r, NULL))
        continue;
      fprintf (stderr, " %s e=%.2f %.2f%%", short_name[p], budgets[b], 100.0 * r.correct / r.total);
      if (p == MONE_PROTOCOL_SCENE && budgets[b] < 1 && !isnan (r.widest_item_lift))
        fprintf (stderr, " (lift %.2f)", r.widest_item_lift);
    }
  fprintf (stderr, "\n");
}

gboolean
mone_check_writable (const char *path, const char *what, GError **error)
{
  if (g_file_test (path, G_FILE_TEST_IS_DIR)) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "cannot write %s to '%s': it is a directory", what, path);
    return FALSE;
  }
  char *probe = g_strconcat (path, ".XXXXXX", NULL);
  int fd = g_mkstemp (probe);
  if (fd < 0) {
    int saved_errno = errno;
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "cannot write %s to '%s': %s", what, path, g_strerror (saved_errno));
    g_free (probe);
    return FALSE;
  }
  close (fd);
  unlink (probe);
  g_free (probe);
  return TRUE;
}

/* ---------------------------------------------------------------------------------------------- */
/* What a run learns from: Fashion-MNIST or an image folder, as training and validation views. */

typedef struct {
  MoneImageSet fashion;    /* Fashion-MNIST's training file (no image folder given) */
  MoneImageFolder folder;  /* the image folder (images_dir given) */
  MoneImageSet train, val; /* views of one of the two */
  int classes;
  const char *const *labels; /* (classes) */
  /* Validated on: Fashion-MNIST's full-frame, in-frame and scenes; an image folder's full-frame, and
   * scenes if it trains on them; close-ups too if the run trains on them. */
  MoneProtocol protocols[MONE_N_PROTOCOLS];
  int n_protocols;
} TrainingData;

static void
training_data_clear (TrainingData *d)
{
  mone_image_set_clear (&d->fashion);
  mone_image_folder_clear (&d->folder);
  memset (d, 0, sizeof *d);
}

static gboolean
training_data_load (const MoneTrainOptions *opts, TrainingData *d, GError **error)
{
  const MoneConfig *c = &opts->config;
  memset (d, 0, sizeof *d);
  if (opts->images_dir) {
    if (opts->in_frame_fraction > 0) {
      g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
          "an image folder trains full-frame and scene samples only: in-frame rendering blends an item onto "
          "clutter by its brightness, which needs grey items on black like Fashion-MNIST's; in-frame fraction %g "
          "must be 0",
          opts->in_frame_fraction);
      return FALSE;
    }
    const gint64 t_read = g_get_monotonic_time ();
    if (!mone_image_folder_load (opts->images_dir, c->height, c->width, c->channels, &d->folder, error))
      return FALSE;
    char *description = mone_image_folder_describe (&d->folder, opts->images_dir);
    fprintf (stderr, "%s; read in %.1f s\n", description, (g_get_monotonic_time () - t_read) / 1e6);
    g_free (description);
    if (d->folder.n_val == 0)
      fprintf (stderr, "no validation images: every class has fewer than %d images\n", MONE_IMAGE_FOLDER_VAL_EVERY);
    d->train = mone_image_folder_train_set (&d->folder);
    d->val = mone_image_folder_val_set (&d->folder);
    d->classes = d->folder.classes;
    d->labels = (const char *const *) d->folder.class_names;
    d->protocols[0] = MONE_PROTOCOL_FULL_FRAME;
    d->protocols[1] = MONE_PROTOCOL_SCENE;
    d->n_protocols = opts->scene_fraction > 0 ? 2 : 1;
    if (opts->close_up_fraction > 0)
      d->protocols[d->n_protocols++] = MONE_PROTOCOL_CLOSE_UP;
  } else {
    if (c->classes != MONE_FASHION_MNIST_CLASSES) {
      g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT, "the model has %d classes but Fashion-MNIST has %d",
          c->classes, MONE_FASHION_MNIST_CLASSES);
      return FALSE;
    }
    if (!mone_fashion_mnist_load (opts->data_dir, TRUE, &d->fashion, error))
      return FALSE;
    if (d->fashion.count <= MONE_VALIDATION_SIZE) {
      g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT, "training set has only %d images", d->fashion.count);
      training_data_clear (d);
      return FALSE;
    }
    const int n_train = d->fashion.count - MONE_VALIDATION_SIZE;
    d->train = mone_image_set_slice (&d->fashion, 0, n_train);
    d->val = mone_image_set_slice (&d->fashion, n_train, MONE_VALIDATION_SIZE);
    d->classes = MONE_FASHION_MNIST_CLASSES;
    d->labels = mone_fashion_mnist_labels;
    d->n_protocols = 0;
    for (int p = 0; p < MONE_N_PROTOCOLS; p++)
      if (p != MONE_PROTOCOL_CLOSE_UP || opts->close_up_fraction > 0)
        d->protocols[d->n_protocols++] = (MoneProtocol) p;
  }
  if (opts->train_images > 0 && opts->train_images < d->train.count)
    d->train = mone_image_set_slice (&d->train, 0, opts->train_images);
  return TRUE;
}

#define FNV1A_START 0xcbf29ce484222325ull

/* FNV-1a: h continued over n bytes. */
static uint64_t
fnv1a (uint64_t h, const void *data, size_t n)
{
  const unsigned char *bytes = data;
  for (size_t i = 0; i < n; i++)
    h = (h ^ bytes[i]) * 0x100000001b3ull;
  return h;
}

/* The class names in order, each with its NUL: the checkpoint trailer's check. */
static uint64_t
class_names_checksum (const char *const *labels, int classes)
{
  uint64_t h = FNV1A_START;
  for (int k = 0; k < classes; k++)
    h = fnv1a (h, labels[k], strlen (labels[k]) + 1);
  return h;
}

/* A model's parameters: tells one --init model from another in a checkpoint (0 means none). */
static uint64_t
parameters_checksum (const MoneTrainModel *model)
{
  const uint64_t h = fnv1a (FNV1A_START, model->params, model->n_params * sizeof (float));
  return h ? h : 1;
}

/* The --init model: loaded, checked to be an image model, and its architecture put into
 * resolved->config (the data decides the classes later). */
static MoneTrainModel *
init_model_load (MoneTrainOptions *resolved, char ***labels, GError **error)
{
  MoneModel *engine = mone_model_load_file (resolved->init_path, error);
  if (!engine)
    return NULL;
  const MoneConfig *c = mone_model_get_config (engine);
  MoneTrainModel *init = NULL;
  if (c->frames != 1) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_MODEL,
        "--init '%s' is a video model (%d frames); the trainer "
        "trains image models",
        resolved->init_path, c->frames);
  } else if (resolved->images_dir == NULL && c->channels != 1 && c->channels != 3) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_MODEL,
        "--init '%s' takes %d channels; Fashion-MNIST is grey (1) or "
        "replicated (3)",
        resolved->init_path, c->channels);
  } else if ((init = mone_train_model_from_engine (engine, error)) != NULL) {
    resolved->config = *c;
    /* The data decides the classes (an image folder's are counted when it is read). */
    if (!resolved->images_dir)
      resolved->config.classes = MONE_FASHION_MNIST_CLASSES;
    *labels = g_new0 (char *, c->classes + 1);
    for (int k = 0; k < c->classes; k++)
      (*labels)[k] = g_strdup (mone_model_get_label (engine, k));
  }
  mone_model_unref (engine);
  return init;
}

/* Copies the --init weights into the freshly initialised model: everything, or everything but the
 * head when the data's classes are not the init model's (the new head keeps its random init).
 * Returns whether the head was kept. */
static gboolean
init_model_copy (MoneTrainModel *model, const MoneTrainModel *init, const char *const *init_labels,
    const TrainingData *data)
{
  gboolean same_classes = init->config.classes == data->classes;
  for (int k = 0; same_classes && k < data->classes; k++)
    same_classes = g_strcmp0 (init_labels[k], data->labels[k]) == 0;
  for (int i = 0; i < model->n_specs; i++) {
    const gboolean head = g_str_has_prefix (model->specs[i].name, "head.");
    if (head && !same_classes)
      continue;
    memcpy (model->params + model->offsets[i], init->params + init->offsets[i],
        sizeof (float) * (size_t) model->specs[i].numel);
  }
  if (!same_classes)
    fprintf (stderr,
        "starting from the weights of the --init model with a new head for %d classes (its own "
        "classes differ)\n",
        data->classes);
  else
    fprintf (stderr, "starting from the weights of the --init model, head included\n");
  return same_classes;
}

/* A training run's state between its steps. */
typedef struct {
  const MoneTrainOptions *opts; /* resolved: with --init the model file's architecture */
  TrainingData data;
  MoneImageSet val_quick; /* the first 1,000 validation images: the per-epoch check */
  MoneTrainModel *model;
  const MoneTrainModel *frozen_teacher; /* the --init model with opts->frozen_teacher, else NULL */
  int threads;
  int share;            /* samples per worker and step */
  Worker *workers;      /* (threads) */
  float *m, *v, *grads; /* (n_params) AdamW moments, the step's summed gradient */
  long total_steps;
  CheckpointHeader header; /* the run's options; .step set when written */
  uint64_t classes_checksum; /* of data.labels: the checkpoint trailer */
  /* progress lines */
  double t_log;
  long seen_in_interval; /* images since the last progress line */
  LossSums interval;
} TrainRun;

/* The options a checkpoint records, so that a resume with any other value is refused. */
static void
checkpoint_header_fill (CheckpointHeader *header, const TrainRun *run, const MoneTrainModel *init)
{
  const MoneTrainOptions *opts = run->opts;
  memset (header, 0, sizeof *header);
  memcpy (header->magic, CHECKPOINT_MAGIC, 8);
  header->header_size = sizeof *header;
  header->n_specs = (uint32_t) run->model->n_specs;
  header->n_params = run->model->n_params;
  header->total_steps = run->total_steps;
  header->seed = opts->seed;
  header->batch = opts->batch;
  header->epochs = opts->epochs;
  header->train_images = run->data.train.count;
  header->threads = run->threads;
  header->fixed_budget = opts->fixed_budget;
  header->in_frame_fraction = opts->in_frame_fraction;
  header->scene_fraction = opts->scene_fraction;
  header->close_up_fraction = (float) opts->close_up_fraction;
  header->router_item_weight = opts->router_item_weight;
  header->lr = opts->lr;
  header->alpha_min = opts->alpha_min;
  header->max_sampled_budget = opts->max_sampled_budget;
  header->min_lr = opts->min_lr;
  header->weight_decay = opts->weight_decay;
  header->warmup_fraction = opts->warmup_fraction;
  header->clip_norm = opts->clip_norm;
  header->label_smoothing = opts->label_smoothing;
  header->self_distill = opts->self_distill ? 1 : 0;
  header->min_budget_pass = opts->min_budget_pass ? 1 : 0;
  header->frozen_teacher = opts->frozen_teacher ? 1 : 0;
  header->init_checksum = init ? parameters_checksum (init) : 0;
  header->config = run->model->config;
}

/* One worker per thread, each with buffers for its share of a batch. */
static void
workers_new (TrainRun *run)
{
  const MoneConfig *c = &run->model->config;
  const int share = run->share;
  const size_t frame = (size_t) c->channels * c->height * c->width;
  run->workers = g_new0 (Worker, run->threads);
  for (int i = 0; i < run->threads; i++) {
    Worker *w = &run->workers[i];
    w->opts = run->opts;
    w->frozen_teacher = run->frozen_teacher;
    w->model = run->model;
    w->pass = mone_pass_new (c, share);
    w->order.opts = run->opts;
    w->order.set = &run->data.train;
    w->order.cached_epoch = -1;
    w->order.perm = g_new (int, run->data.train.count);
    w->input = g_new (float, share *frame);
    w->labels = g_new (guint8, share);
    w->teacher = g_new (float, (size_t) share * c->classes);
    w->router_target = run->opts->router_item_weight > 0 ? g_new (float, (size_t) share * c->tokens) : NULL;
    w->grads = g_new (float, run->model->n_params);
  }
}

static void
workers_free (Worker *workers, int threads)
{
  if (!workers)
    return;
  for (int i = 0; i < threads; i++) {
    mone_pass_free (workers[i].pass);
    g_free (workers[i].order.perm);
    g_free (workers[i].input);
    g_free (workers[i].labels);
    g_free (workers[i].teacher);
    g_free (workers[i].router_target);
    g_free (workers[i].grads);
  }
  g_free (workers);
}

static void
print_run_banner (const TrainRun *run)
{
  const MoneConfig *c = &run->model->config;
  double mflops = 0;
  MoneModel *engine = mone_train_model_to_engine (run->model, NULL, NULL);
  if (engine) {
    mflops = mone_model_flops (engine, 1.0) / 1e6;
    mone_model_unref (engine);
  }
  g_autofree char *stem = c->stem_layers ? mone_config_stem_string (c) : NULL;
  fprintf (stderr,
      "training %dx%dx%d%s%s patch %d D %d depth %d heads %d F %d E %d: %zu parameters, %.1f MFLOPs/frame at e=1; "
      "%d images, batch %d, %d epochs = %ld steps, %d threads\n",
      c->width, c->height, c->channels, stem ? " stem " : "", stem ? stem : "", c->patch, c->dim, c->depth, c->heads,
      c->mlp_dim, c->experts, run->model->n_params, mflops, run->data.train.count, run->opts->batch, run->opts->epochs,
      run->total_steps, run->threads);
  /* A few hundred pictures at the default epochs make a run of a few dozen steps, which learns
   * little: say so, with the option that fixes it. */
  if (run->total_steps < MONE_TRAIN_FEW_STEPS) {
    const long steps_per_epoch = MAX (1, run->total_steps / run->opts->epochs);
    fprintf (stderr,
        "warning: only %ld training steps; a model learns little in fewer than %d: give --epochs %ld or more\n",
        run->total_steps, MONE_TRAIN_FEW_STEPS, (MONE_TRAIN_FEW_STEPS + steps_per_epoch - 1) / steps_per_epoch);
  }
}

/* Splits the step's batch over the workers, sums their losses and gradients, clips the norm and
 * updates the parameters. *norm: the gradient norm before clipping; *lr: the step's rate. */
static gboolean
train_step (TrainRun *run, int64_t step, int batch, double budget, LossSums *step_sums, double *norm, double *lr,
    GError **error)
{
  const MoneTrainOptions *opts = run->opts;
  const size_t np = run->model->n_params;
  const long first = step * (long) opts->batch;
  GThread *threads[64] = { 0 };
  int assigned = 0;
  for (int i = 0; i < run->threads; i++) {
    Worker *w = &run->workers[i];
    w->first_sample = first + assigned;
    w->count = MIN (run->share, batch - assigned);
    assigned += w->count;
    w->batch_total = batch;
    w->budget = budget;
    if (i > 0)
      threads[i] = g_thread_new ("mone-train", worker_step, w);
  }
  worker_step (&run->workers[0]);
  *step_sums = run->workers[0].sums;
  memcpy (run->grads, run->workers[0].grads, sizeof (float) * np);
  for (int i = 1; i < run->threads; i++) {
    g_thread_join (threads[i]);
    loss_sums_add (step_sums, &run->workers[i].sums);
    for (size_t k = 0; k < np; k++)
      run->grads[k] += run->workers[i].grads[k];
  }

  double norm2 = 0;
  for (size_t k = 0; k < np; k++)
    norm2 += (double) run->grads[k] * run->grads[k];
  *norm = sqrt (norm2);
  if (!isfinite (*norm)) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
        "training diverged at step %lld (gradient norm is not finite); lower --lr", (long long) step);
    return FALSE;
  }
  double scale = opts->clip_norm > 0 && *norm > opts->clip_norm ? opts->clip_norm / *norm : 1.0;
  *lr = mone_train_lr (opts, step, run->total_steps);
  mone_train_adamw_step (run->model, run->grads, run->m, run->v, *lr, opts->weight_decay, step + 1, scale);
  if (run->model->t.alpha[0] < opts->alpha_min)
    run->model->t.alpha[0] = (float) opts->alpha_min;
  return TRUE;
}

/* The progress line every --log-every steps: means over the images since the previous line. */
static void
log_progress (TrainRun *run, int64_t step, long samples_done, double budget, double lr, double norm)
{
  const MoneTrainOptions *opts = run->opts;
  const LossSums *sums = &run->interval;
  const double seen = run->seen_in_interval;
  double now = g_get_monotonic_time () / 1e6;
  double ips = seen / MAX (now - run->t_log, 1e-9);
  char eta[32];
  format_duration (eta, sizeof eta, (run->total_steps - step - 1) * (double) opts->batch / MAX (ips, 1e-9));
  char distill[64] = "";
  if (opts->self_distill && opts->min_budget_pass)
    g_snprintf (distill, sizeof distill, "  distill %.4f  at %.2f %.4f", sums->distill / seen, sampled_budgets[0],
        sums->min_distill / seen);
  else if (opts->self_distill)
    g_snprintf (distill, sizeof distill, "  distill %.4f", sums->distill / seen);
  if (opts->router_item_weight > 0) {
    const size_t used = strlen (distill);
    g_snprintf (distill + used, sizeof distill - used, "  route %.4f", sums->router / seen);
  }
  /* With a frozen teacher no pass learns the labels; the accuracy is the sampled budget's. */
  char loss[32] = "";
  if (!opts->frozen_teacher)
    g_snprintf (loss, sizeof loss, "  loss %.4f", sums->loss / seen);
  fprintf (stderr,
      "step %6lld/%ld  epoch %5.2f  lr %.2e  e %.2f%s%s  acc %6.2f%%  |g| %.3f  alpha %+.3f  %6.1f img/s  ETA %s\n",
      (long long) step + 1, run->total_steps, (double) samples_done / run->data.train.count, lr, budget, loss, distill,
      100.0 * sums->correct / seen, norm, run->model->t.alpha[0], ips, eta);
  run->t_log = now;
  run->interval = (LossSums){ 0 };
  run->seen_in_interval = 0;
}

static gboolean
checkpoint_save (TrainRun *run, int64_t steps_done, GError **error)
{
  run->header.step = steps_done;
  return checkpoint_write (run->opts->checkpoint, &run->header, run->model->params, run->m, run->v,
      run->classes_checksum, error);
}

typedef enum { RUN_CONTINUE, RUN_PAUSED, RUN_FAILED } RunNext;

/* After a step: checkpoints, and whether a signal or --max-steps ends this run early. */
static RunNext
after_step (TrainRun *run, int64_t step, long steps_in_run, gboolean last, GError **error)
{
  const MoneTrainOptions *opts = run->opts;
  if (opts->checkpoint && ((step + 1) % opts->checkpoint_every == 0 || last) && !checkpoint_save (run, step + 1, error))
    return RUN_FAILED;
  if (opts->stop_requested && *opts->stop_requested && !last) {
    if (opts->checkpoint && !checkpoint_save (run, step + 1, error))
      return RUN_FAILED;
    if (opts->checkpoint)
      g_set_error (error, MONE_ERROR, MONE_ERROR_INTERRUPTED,
          "interrupted after step %lld of %ld; the checkpoint '%s' holds it: run the same command with --resume",
          (long long) step + 1, run->total_steps, opts->checkpoint);
    else
      g_set_error (error, MONE_ERROR, MONE_ERROR_INTERRUPTED,
          "interrupted after step %lld of %ld; nothing saved (no --checkpoint)", (long long) step + 1,
          run->total_steps);
    return RUN_FAILED;
  }
  if (opts->max_steps > 0 && steps_in_run >= opts->max_steps && !last) {
    if (!checkpoint_save (run, step + 1, error))
      return RUN_FAILED;
    fprintf (stderr, "stopping after %ld steps (--max-steps); resume with --resume\n", steps_in_run);
    return RUN_PAUSED;
  }
  return RUN_CONTINUE;
}

/* Steps from `step` to the end (or an early stop); FALSE on an error. */
static gboolean
train_steps (TrainRun *run, int64_t step, gboolean *finished, GError **error)
{
  const MoneTrainOptions *opts = run->opts;
  const int n_train = run->data.train.count;
  long steps_in_run = 0;

  *finished = FALSE;
  run->t_log = g_get_monotonic_time () / 1e6;
  for (; step < run->total_steps; step++) {
    const long first = step * (long) opts->batch;
    const int batch = (int) MIN ((long) opts->batch, (long) opts->epochs * n_train - first);
    const double budget = mone_train_budget_for_step (opts, step);
    LossSums step_sums;
    double norm, lr;
    if (!train_step (run, step, batch, budget, &step_sums, &norm, &lr, error))
      return FALSE;

    loss_sums_add (&run->interval, &step_sums);
    run->seen_in_interval += batch;
    steps_in_run++;
    const gboolean last = step + 1 == run->total_steps;
    if ((step + 1) % opts->log_every == 0 || last)
      log_progress (run, step, first + batch, budget, lr, norm);
    long steps_per_epoch = n_train / opts->batch;
    if (steps_per_epoch > 0 && (step + 1) % steps_per_epoch == 0 && !last)
      report_validation (run->model, &run->val_quick, run->data.protocols, run->data.n_protocols, run->threads);
    switch (after_step (run, step, steps_in_run, last, error)) {
      case RUN_FAILED:
        return FALSE;
      case RUN_PAUSED:
        return TRUE;
      case RUN_CONTINUE:
        break;
    }
  }
  *finished = TRUE;
  return TRUE;
}

/* The argument checks that need no data, and the output paths tried before an hour of training. */
static gboolean
train_run_check (const MoneTrainOptions *opts, int threads, GError **error)
{
  if (opts->epochs < 1) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT, "epochs (%d) must be at least 1", opts->epochs);
    return FALSE;
  }
  if (opts->batch < threads) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
        "batch (%d) must be at least the number of threads (%d)", opts->batch, threads);
    return FALSE;
  }
  /* Both options act on the starting model; without one they would do nothing, or (a teacher
   * without self-distillation) leave every step without a pass. */
  if ((opts->principal_axes || opts->frozen_teacher) && !opts->init_path) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT, "%s the --init model; give --init MODEL",
        opts->principal_axes ? "--principal-axes turns" : "--frozen-teacher teaches from");
    return FALSE;
  }
  if (opts->frozen_teacher && !opts->self_distill) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
        "--frozen-teacher is the teacher of --self-distill; add --self-distill");
    return FALSE;
  }
  /* Without --resume a run starts from step 0 and would overwrite the checkpoint of the run before,
   * losing its progress to a command repeated without the flag. */
  if (opts->checkpoint && !opts->resume && g_file_test (opts->checkpoint, G_FILE_TEST_EXISTS)) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
        "checkpoint '%s' exists: add --resume to continue its run, or delete it to start a new one", opts->checkpoint);
    return FALSE;
  }
  return (!opts->output || mone_check_writable (opts->output, "the model", error))
      && (!opts->checkpoint || mone_check_writable (opts->checkpoint, "the checkpoint", error));
}

gboolean
mone_train_run (const MoneTrainOptions *opts, GError **error)
{
  TrainRun run = { .threads = MAX (1, opts->threads) };
  MoneTrainModel *init = NULL;
  char **init_labels = NULL;
  gboolean ok = FALSE, finished;

  if (!train_run_check (opts, run.threads, error))
    return FALSE;
  /* With --init the model file decides the architecture: resolved replaces opts from here on. */
  MoneTrainOptions resolved = *opts;
  if (opts->init_path && !(init = init_model_load (&resolved, &init_labels, error)))
    return FALSE;
  run.opts = opts = &resolved;
  if (!training_data_load (opts, &run.data, error))
    goto out;
  if (init && opts->principal_axes) {
    if (!mone_train_model_rotate_principal (init, &run.data.train, error))
      goto out;
    fprintf (stderr, "the --init model's residual stream turned onto its principal axes\n");
  }
  const int n_train = run.data.train.count;
  /* A batch only repeats pictures beyond this, and its buffers (sized by the batch) could exhaust
   * memory before the first step; say so instead. */
  if (opts->batch > n_train) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
        "--batch %d is larger than the %d training images; give --batch %d or less", opts->batch, n_train, n_train);
    goto out;
  }
  run.val_quick = mone_image_set_slice (&run.data.val, 0, MIN (1000, run.data.val.count));

  MoneConfig config = opts->config;
  config.classes = run.data.classes;
  if (!(run.model = mone_train_model_new (&config, error)))
    goto out;
  mone_train_model_init (run.model, opts->seed);
  const gboolean head_kept = init && init_model_copy (run.model, init, (const char *const *) init_labels, &run.data);
  if (opts->frozen_teacher && !head_kept) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
        "--frozen-teacher: the --init model's classes are not the data's, so it cannot teach them");
    goto out;
  }
  run.frozen_teacher = opts->frozen_teacher ? init : NULL;
  const size_t np = run.model->n_params;
  run.m = g_new0 (float, np);
  run.v = g_new0 (float, np);
  run.grads = g_new0 (float, np);
  run.total_steps = ((long) opts->epochs * n_train + opts->batch - 1) / opts->batch;
  checkpoint_header_fill (&run.header, &run, init);
  run.classes_checksum = class_names_checksum (run.data.labels, run.data.classes);

  int64_t step = 0;
  if (opts->resume && opts->checkpoint && g_file_test (opts->checkpoint, G_FILE_TEST_EXISTS)) {
    if (!checkpoint_read (opts->checkpoint, &run.header, run.classes_checksum, &step, run.model->params, run.m,
            run.v, error))
      goto out;
    fprintf (stderr, "resuming from '%s' at step %lld of %ld\n", opts->checkpoint, (long long) step, run.total_steps);
  }

  /* Our workers each run single-threaded BLAS: at these matrix sizes splitting the batch beats
   * splitting every sgemm (see docs/training.md). */
  openblas_set_num_threads (1);
  run.share = (opts->batch + run.threads - 1) / run.threads;
  workers_new (&run);
  print_run_banner (&run);

  double t_start = g_get_monotonic_time () / 1e6;
  if (!train_steps (&run, step, &finished, error))
    goto out;
  if (finished) {
    fprintf (stderr, "trained in %.1f s\n", g_get_monotonic_time () / 1e6 - t_start);
    report_validation (run.model, &run.data.val, run.data.protocols, run.data.n_protocols, run.threads);
    if (opts->output && !mone_train_model_write (run.model, opts->output, run.data.labels, error))
      goto out;
  }
  ok = TRUE;

out:
  workers_free (run.workers, run.threads);
  g_free (run.m);
  g_free (run.v);
  g_free (run.grads);
  mone_train_model_free (run.model);
  mone_train_model_free (init);
  g_strfreev (init_labels);
  training_data_clear (&run.data);
  return ok;
}

/* ---------------------------------------------------------------------------------------------- */
/* Evaluation. Images are processed in fixed chunks of EVAL_CHUNK, chunk i by worker i % threads,
 * so results do not depend on the thread count. */

#define EVAL_CHUNK 50

typedef struct {
  MoneTrainModel *model;
  const MoneImageSet *set;
  int count, threads, index;
  MoneProtocol protocol;
  uint64_t render_seed, routing_seed;
  double budget;
  MoneRouting routing;
  MonePass *pass;
  float *input;
  float *item_cover; /* (EVAL_CHUNK, N) share of each token's patch inside the item's box */
  int correct, total;
  double loss;
  long expert_tokens[MONE_MAX_EXPERTS];
  double widest_cover, all_cover; /* item cover summed over the widest expert's tokens, over all tokens */
  int not_finite;                 /* images whose logits hold a NaN or an infinity */
  int correct_by_height[MONE_EVAL_HEIGHT_BINS], total_by_height[MONE_EVAL_HEIGHT_BINS];
} EvalWorker;

static gpointer
eval_worker (gpointer data)
{
  EvalWorker *w = data;
  const MoneConfig *c = &w->model->config;
  size_t frame = (size_t) c->channels * c->height * c->width;
  for (int start = w->index * EVAL_CHUNK; start < w->count; start += w->threads * EVAL_CHUNK) {
    int n = MIN (EVAL_CHUNK, w->count - start);
    int height_bin[EVAL_CHUNK];
    for (int k = 0; k < n; k++) {
      MoneItemBox box;
      mone_render_with_box (w->set, start + k, w->protocol, w->render_seed, FALSE, c->channels, c->height, c->width,
          w->input + k * frame, &box);
      item_cover (c, &box, w->item_cover + (size_t) k * c->tokens);
      height_bin[k] = CLAMP ((int) (box.h / c->height * MONE_EVAL_HEIGHT_BINS), 0, MONE_EVAL_HEIGHT_BINS - 1);
    }
    w->loss += mone_pass_forward (w->pass, w->model, w->input, w->set->labels + start, n, w->budget, w->routing,
        w->routing_seed ^ ((uint64_t) start << 20), 0.0f);
    w->correct += mone_pass_correct (w->pass, w->set->labels + start);
    w->total += n;
    const float *logits = mone_pass_logits (w->pass);
    for (int k = 0; k < n; k++) {
      const float *l = logits + (size_t) k * c->classes;
      gboolean finite = TRUE;
      int best = 0;
      for (int j = 0; j < c->classes; j++) {
        finite &= isfinite (l[j]) != 0;
        best = l[j] > l[best] ? j : best;
      }
      w->not_finite += !finite;
      w->total_by_height[height_bin[k]]++;
      w->correct_by_height[height_bin[k]] += best == w->set->labels[start + k];
    }
    const uint8_t *ex = mone_pass_experts (w->pass);
    for (int i = 0; i < n * c->tokens; i++) {
      w->expert_tokens[ex[i]]++;
      w->all_cover += w->item_cover[i];
      if (ex[i] == c->experts - 1)
        w->widest_cover += w->item_cover[i];
    }
  }
  return NULL;
}

gboolean
mone_evaluate (MoneTrainModel *model, const MoneImageSet *set, int count, MoneProtocol protocol, uint64_t render_seed,
    double budget, MoneRouting routing, uint64_t routing_seed, int threads, MoneEvalResult *result, GError **error)
{
  const MoneConfig *c = &model->config;
  memset (result, 0, sizeof *result);
  if (count <= 0 || count > set->count) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT, "asked for %d images of a set of %d", count,
        set->count);
    return FALSE;
  }
  if (set->channels != 1 && set->channels != c->channels) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT, "images have %d channels, the model takes %d",
        set->channels, c->channels);
    return FALSE;
  }
  if (!mone_protocol_renders (protocol, set)) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
        "the %s protocol needs grey items (it blends them by brightness); these have %d channels",
        mone_protocol_name (protocol), set->channels);
    return FALSE;
  }
  for (int i = 0; i < count; i++)
    if (set->labels[i] >= c->classes) {
      g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
          "label %d of image %d does not exist in a model with %d classes", set->labels[i], i, c->classes);
      return FALSE;
    }
  threads = CLAMP (threads, 1, 16);
  if (threads > 1)
    openblas_set_num_threads (1);
  EvalWorker w[16];
  GThread *th[16] = { 0 };
  size_t frame = (size_t) c->channels * c->height * c->width;
  for (int i = 0; i < threads; i++) {
    w[i] = (EvalWorker){ .model = model,
      .set = set,
      .count = count,
      .threads = threads,
      .index = i,
      .protocol = protocol,
      .render_seed = render_seed,
      .routing_seed = routing_seed,
      .budget = budget,
      .routing = routing };
    w[i].pass = mone_pass_new (c, EVAL_CHUNK);
    w[i].input = g_new (float, EVAL_CHUNK *frame);
    w[i].item_cover = g_new (float, (size_t) EVAL_CHUNK * c->tokens);
    mone_pass_set_item_cover (w[i].pass, w[i].item_cover);
    if (i > 0)
      th[i] = g_thread_new ("mone-eval", eval_worker, &w[i]);
  }
  eval_worker (&w[0]);
  long tokens = 0;
  double loss = 0, widest_cover = 0, all_cover = 0;
  int not_finite = 0;
  for (int i = 0; i < threads; i++) {
    if (i > 0)
      g_thread_join (th[i]);
    not_finite += w[i].not_finite;
    widest_cover += w[i].widest_cover;
    all_cover += w[i].all_cover;
    result->correct += w[i].correct;
    result->total += w[i].total;
    for (int h = 0; h < MONE_EVAL_HEIGHT_BINS; h++) {
      result->correct_by_height[h] += w[i].correct_by_height[h];
      result->total_by_height[h] += w[i].total_by_height[h];
    }
    loss += w[i].loss;
    for (int j = 0; j < c->experts; j++)
      tokens += w[i].expert_tokens[j];
    mone_pass_free (w[i].pass);
    g_free (w[i].input);
    g_free (w[i].item_cover);
  }
  for (int j = 0; j < c->experts; j++) {
    long n = 0;
    for (int i = 0; i < threads; i++)
      n += w[i].expert_tokens[j];
    result->expert_share[j] = tokens ? (double) n / tokens : 0;
  }
  result->loss = loss / MAX (result->total, 1);
  /* Mean item cover of a widest-expert token over that of any token. */
  const double widest_share = result->expert_share[c->experts - 1];
  result->widest_item_lift = widest_share > 0 && all_cover > 0 ? (widest_cover / widest_share) / all_cover : NAN;
  /* A NaN logit is no answer: counting it as a wrong one would hide a broken model in a low score. */
  if (not_finite) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_MODEL,
        "the model gave non-finite logits on %d of %d images (%s, "
        "e = %g): its weights overflow the forward pass",
        not_finite, result->total, mone_protocol_name (protocol), budget);
    return FALSE;
  }
  return TRUE;
}
