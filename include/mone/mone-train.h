/* The MoNE trainer as the `mone` tool and other programs use it: data sets (Fashion-MNIST, image
 * folders), the render protocols, training runs with checkpoints, evaluation and its reports.
 *
 * The static monetrain library (src/train/) implements it; its batched forward/backward pass and
 * optimiser stay inside (src/train/trainer.h). Not part of the installed runtime library.
 *
 * Data (src/train/data.c, image-folder.c, scene.c): Fashion-MNIST from the Debian package (gzip IDX
 * files), image folders of pictures (DIR/<class>/<picture>: PNG read with cairo, other formats
 * through GStreamer), and the seeded render protocols that turn an item into a model input
 * (docs/training.md):
 *  - MONE_PROTOCOL_FULL_FRAME: the item fills the frame (bilinear resize to the model input).
 *  - MONE_PROTOCOL_IN_FRAME: the item, at a random scale (40-70% of the shorter side) and position,
 *    is blended onto a cluttered canvas (background gradient, random bars and blobs, fragments of
 *    other items) with Gaussian noise, as an object appears in a camera frame.
 *  - MONE_PROTOCOL_SCENE: a camera frame (4:3, 16:9 or 1:1) stretched to the model input as
 *    monefilter's default scale-mode does, the item at 30-95% of the frame height anywhere (sometimes
 *    cut by the edge), on a light or dark, unevenly lit background with texture, shapes and
 *    fragments of other items, then contrast, gamma, blur, sensor noise and blocky compression.
 *  - MONE_PROTOCOL_CLOSE_UP: the same camera frame without clutter, the item at 60-100% of its
 *    height near the centre on a plainly lit background (a garment held up to the camera).
 * Rendering is a pure function of (seed, protocol, index): the same arguments give the same pixels
 * on every machine, so test sets are reproducible. Output is float32 planar CHW in [0,1]; a grey
 * item is replicated over every channel. In-frame needs grey items (it uses brightness as the
 * item's mask, which holds for Fashion-MNIST's black backgrounds, not for photos).
 */
#ifndef MONE_MONE_TRAIN_H
#define MONE_MONE_TRAIN_H

#include "mone/mone.h"

#include <signal.h>

G_BEGIN_DECLS

#define MONE_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
#define MONE_FASHION_MNIST_CLASSES 10
/* The last 5,000 training images are held out for validation (model and recipe choices); the
 * trainer never sees them, and the 10k test images are used only for the final figures. */
#define MONE_VALIDATION_SIZE 5000

typedef struct {
  int count, channels, rows, cols; /* channels: 1 (grey) or 3 (RGB planes) */
  guint8 *pixels;                  /* (count, channels, rows, cols) */
  guint8 *labels;                  /* (count) */
  /* (count, rows, cols) how much of each pixel the picture covers (255: all), or NULL where items
   * lie on black and their brightness is their coverage (Fashion-MNIST). Pixels of a set with
   * alpha are composited over black (premultiplied), so pasting is bg * (1 - alpha) + pixel. */
  guint8 *alpha;
} MoneImageSet;

extern const char *const mone_fashion_mnist_labels[10];

/* Reads {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz from dir (NULL = the Debian package's
 * folder), validating magic numbers, dimensions, counts, truncation and the label range. */
gboolean mone_fashion_mnist_load (const char *dir, gboolean train, MoneImageSet *out,
    GError **error);

/* Reads one gzip (or plain) IDX image/label file pair. max_label: labels must be < max_label. */
gboolean mone_idx_load (const char *images_path, const char *labels_path, int max_label,
    MoneImageSet *out, GError **error);

void mone_image_set_clear (MoneImageSet *set);

/* A view [first, first + count) of a set, sharing its pixels (no copy, do not clear it). */
MoneImageSet mone_image_set_slice (const MoneImageSet *set, int first, int count);

/* ---------------------------------------------------------------------------------------------- */
/* Image folders (the ImageFolder convention): DIR/<class name>/<picture>. Class names, sorted by
 * byte order (strcmp), are the labels; files are taken in byte order of their names too. Every
 * PNG (grey, RGB, palette, with or without alpha) is read with cairo, every other picture (*.jpg,
 * *.jpeg, *.webp, *.bmp, *.gif, *.tif, *.tiff) by the GStreamer decoders the machine has, each
 * composited over black where it has alpha, converted to the model's channels (3: RGB; 1: luma Y = 0.299 R + 0.587 G +
 * 0.114 B, BT.601 on the stored sRGB values) and resized once, at load time, to the model input
 * by stretching (monefilter's default scale-mode, so training sees frames as the element
 * prepares them) with an area-correct resample (see image-folder.c). Hidden entries (names
 * starting with '.') and anything that is not a picture file directly inside a class folder are
 * skipped and counted. */

/* Labels are guint8. */
#define MONE_IMAGE_FOLDER_MAX_CLASSES 256
/* Validation split: the 10th, 20th, 30th, ... image of each class (in file-name order) is held out. */
#define MONE_IMAGE_FOLDER_VAL_EVERY 10

typedef struct {
  /* (count, channels, height, width): the training images, then the validation images. Each
   * part runs round-robin over the classes (first file of every class, then the second, ...), so
   * any prefix of it holds every class in proportion. */
  MoneImageSet images;
  int n_train, n_val;
  int classes;
  char **class_names; /* (classes + 1) NULL-terminated, UTF-8, byte order */
  int skipped_hidden; /* entries whose name starts with '.' */
  int skipped_other; /* files not named as pictures, folders inside class folders, files beside them */
} MoneImageFolder;

/* Reads every image of an image folder at height x width with 1 or 3 channels. Refuses, naming
 * the file or folder: an unreadable folder, a class name that is not UTF-8, fewer than 2 or more
 * than MONE_IMAGE_FOLDER_MAX_CLASSES classes, a class folder without PNG files, a PNG cairo cannot
 * read. */
gboolean mone_image_folder_load (const char *dir, int height, int width, int channels,
    MoneImageFolder *out, GError **error);
void mone_image_folder_clear (MoneImageFolder *folder);
/* Views of the two parts (sharing the pixels). */
MoneImageSet mone_image_folder_train_set (const MoneImageFolder *folder);
MoneImageSet mone_image_folder_val_set (const MoneImageFolder *folder);
/* One line for the logs: classes, images per split, what was skipped. */
char *mone_image_folder_describe (const MoneImageFolder *folder, const char *dir);

typedef enum {
  MONE_PROTOCOL_FULL_FRAME = 0,
  MONE_PROTOCOL_IN_FRAME = 1,
  MONE_PROTOCOL_SCENE = 2,
  MONE_PROTOCOL_CLOSE_UP = 3,
} MoneProtocol;
#define MONE_N_PROTOCOLS 4

const char *mone_protocol_name (MoneProtocol protocol);
/* Parses "full-frame" / "in-frame" / "scene" / "close-up"; returns FALSE for anything else. */
gboolean mone_protocol_from_name (const char *name, MoneProtocol *protocol);
/* Whether a set with this many channels (and alpha or not) can be rendered with the protocol:
 * grey sets with every protocol; colour sets full-frame, and into scenes and close-ups only by
 * their alpha (in-frame and a grey item's paste blend by brightness). */
gboolean mone_protocol_renders (MoneProtocol protocol, const MoneImageSet *set);

/* Where the item landed in a rendered frame: a w x h rectangle with its top-left corner at (x, y), in
 * model input pixels (the whole frame for full-frame renders). A scene's item may reach beyond the
 * frame edge: the box is not clipped. */
typedef struct {
  float x, y, w, h;
} MoneItemBox;

/* Renders item `index` of `set` into out (channels, height, width), float32 in [0,1]. The set
 * has one channel (replicated over `channels`) or `channels` channels; in-frame and scene need one.
 * augment: training-time augmentation (random horizontal flip and a shift of up to 2 pixels for
 * full-frame); evaluation renders with augment = FALSE. */
void mone_render (const MoneImageSet *set, int index, MoneProtocol protocol, uint64_t seed,
    gboolean augment, int channels, int height, int width, float *out);
/* The same render, also reporting where the item is (box may be NULL). */
void mone_render_with_box (const MoneImageSet *set, int index, MoneProtocol protocol, uint64_t seed,
    gboolean augment, int channels, int height, int width, float *out, MoneItemBox *box);

/* The largest side mone_render_scene_frame draws. */
#define MONE_SCENE_MAX_SIDE 512
/* A scene as a camera would deliver it, unstretched: the frame's aspect is width / height (a video
 * frame at a camera-like size, e.g. 86 x 64, for tools that scale it up to a video). Grey, one plane
 * (height, width), a pure function of (seed, index). */
void mone_render_scene_frame (const MoneImageSet *set, int index, uint64_t seed, int height,
    int width, float *out, MoneItemBox *box);

/* Small deterministic random number generator (splitmix64 seeding, xoshiro128+-like stream). */
typedef struct {
  uint64_t s[2];
} MoneTrainRng;

void mone_train_rng_seed (MoneTrainRng *rng, uint64_t seed, uint64_t stream);
uint64_t mone_train_rng_next (MoneTrainRng *rng);
/* Uniform in [0, 1). */
double mone_train_rng_uniform (MoneTrainRng *rng);
/* Uniform integer in [0, n). */
uint32_t mone_train_rng_below (MoneTrainRng *rng, uint32_t n);
/* Standard normal (Box-Muller). */
double mone_train_rng_normal (MoneTrainRng *rng);

/* ---------------------------------------------------------------------------------------------- */
/* Models being trained: parameters in one allocation laid out by mone_tensor_specs. */

typedef struct MoneTrainModel MoneTrainModel;

/* A model with every parameter zero. The config must be an image model (frames = tubelet = 1). */
MoneTrainModel *mone_train_model_new (const MoneConfig *config, GError **error);
void mone_train_model_free (MoneTrainModel *model);
/* Copies the weights of a loaded engine model. */
MoneTrainModel *mone_train_model_from_engine (MoneModel *engine, GError **error);
/* An engine model that borrows this model's parameters (they must outlive it). */
MoneModel *mone_train_model_to_engine (MoneTrainModel *model, const char *const *labels,
    GError **error);
gboolean mone_train_model_write (MoneTrainModel *model, const char *path, const char *const *labels,
    GError **error);
/* The model's config (finalized). */
const MoneConfig *mone_train_model_get_config (const MoneTrainModel *model);

/* The parameters stored in a training checkpoint (and the step it was taken at). */
MoneTrainModel *mone_train_checkpoint_load (const char *path, long *step, GError **error);

typedef enum {
  MONE_ROUTING_EPR = 0,    /* Expert Preferred Routing (the model's own router) */
  MONE_ROUTING_RANDOM = 1, /* same tokens per expert, tokens assigned uniformly at random */
  /* Same tokens per expert, ranked by how much of each token's patch the item covers (then by the
   * router): what routing could reach if it always found the object. Evaluation only. */
  MONE_ROUTING_ITEM_BOX = 2,
} MoneRouting;

/* ---------------------------------------------------------------------------------------------- */
/* Training. */

typedef struct {
  const char *data_dir; /* NULL = Debian's fashion-mnist folder */
  /* An image folder (DIR/<class>/<picture>, see above) to train on instead of Fashion-MNIST, or
   * NULL. Its class count replaces config.classes, its class names are the model's labels, and it
   * trains full-frame and scene samples only (in_frame_fraction must be 0; scenes paste its pictures
   * by their alpha). */
  const char *images_dir;
  /* A model file to start from (a MoNE model, a dense twin, an import) instead of random weights:
   * its architecture and pixel normalisation replace config's, and its head is kept when its
   * labels are the data's, else a new head is initialised for the data's classes. NULL: random. */
  const char *init_path;
  /* With init_path: first turn the model's residual stream onto the principal axes of its
   * activations on the training images, so that each nested expert's leading channels carry the
   * most (same function at full width). For models trained at full width: a dense twin, an import. */
  gboolean principal_axes;
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
  double scene_fraction;    /* share rendered as camera scenes */
  double close_up_fraction; /* share rendered as close-ups; the rest is full-frame */
  /* Weight of the router's supervision by the item's box (mone_pass_router_target_backward) on
   * scene, in-frame and close-up samples; 0: the router learns only through its gate. */
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
  /* With self_distill and init_path: the starting model, kept as it was, is the teacher of every
   * pass (the sampled budget's and the smallest's), and no pass learns the labels: the full model
   * starts equal to the teacher. The starting model must keep its head (the data's classes are
   * its labels). */
  gboolean frozen_teacher;
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

/* ---------------------------------------------------------------------------------------------- */
/* Evaluation: accuracy of a model on `count` images of a set rendered with a protocol. */

#define MONE_EVAL_HEIGHT_BINS 10

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
  /* Accuracy by the item's height as a share of the frame's height, in tenths: bin i holds items
   * from i/10 to (i+1)/10 of the frame height (the last also full frames, whose item is the frame). */
  int correct_by_height[MONE_EVAL_HEIGHT_BINS], total_by_height[MONE_EVAL_HEIGHT_BINS];
} MoneEvalResult;

gboolean mone_evaluate (MoneTrainModel *model, const MoneImageSet *set, int count,
    MoneProtocol protocol, uint64_t render_seed, double budget, MoneRouting routing,
    uint64_t routing_seed, int threads, MoneEvalResult *result, GError **error);

/* Seeds of the evaluation renders (the test sets are a pure function of these). */
#define MONE_EVAL_RENDER_SEED 20260101u
#define MONE_EVAL_ROUTING_SEED 777u

/* ---------------------------------------------------------------------------------------------- */
/* Evaluation reports: the compute-accuracy table (CSV), its plot (gnuplot, pngcairo) and routing
 * maps (cairo): test frames with every patch tinted by the expert that processed it. */

typedef struct {
  MoneProtocol protocol;
  double budget;          /* as requested */
  double gflops;          /* per frame, from mone_model_flops */
  double accuracy;        /* percent, Expert Preferred Routing */
  double random_accuracy; /* percent, random routing with the same tokens per expert */
  double expert_share[MONE_MAX_EXPERTS];
  double widest_item_lift;
  /* Accuracy by the item's height as a share of the frame's height, in tenths: bin i holds items
   * from i/10 to (i+1)/10 of the frame height (the last also full frames, whose item is the frame). */
  int correct_by_height[MONE_EVAL_HEIGHT_BINS], total_by_height[MONE_EVAL_HEIGHT_BINS]; /* MoneEvalResult.widest_item_lift */
} MoneEvalRow;

typedef struct {
  gboolean present;
  double gflops;
  double accuracy[MONE_N_PROTOCOLS]; /* per protocol, percent; NaN if not measured */
} MoneDenseFigures;

gboolean mone_report_write_csv (const char *path, const MoneEvalRow *rows, int n_rows, int experts,
    const MoneDenseFigures *dense, GError **error);

/* Runs gnuplot (pngcairo) on the rows: accuracy against GFLOPs per frame for each protocol, with
 * random routing and the dense twin for reference. */
gboolean mone_report_plot (const char *png_path, const MoneEvalRow *rows, int n_rows,
    const MoneDenseFigures *dense, const char *title, GError **error);

/* Draws a grid of routing maps: columns are test items, each rendered with its protocol
 * (protocols[i]), rows are budgets. Uses the trainer's forward pass (equal to the engine's). */
gboolean mone_report_routing_maps (const char *png_path, MoneTrainModel *model,
    const MoneImageSet *test, const int *items, const MoneProtocol *protocols, int n_items,
    const double *budgets, int n_budgets, const char *const *labels, GError **error);

G_END_DECLS

#endif /* MONE_MONE_TRAIN_H */
