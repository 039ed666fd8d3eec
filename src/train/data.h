/* Fashion-MNIST from the Debian package (gzip IDX files), image folders of pictures
 * (DIR/<class>/<picture>: PNG read with cairo, other formats through GStreamer; image-folder.c), and the two seeded render protocols
 * that turn an item into a model input.
 *
 * Protocols (documented in docs/training.md):
 *  - MONE_PROTOCOL_FULL_FRAME: the item fills the frame (bilinear resize to the model input).
 *  - MONE_PROTOCOL_IN_FRAME: the item, at a random scale (40-70% of the shorter side) and position,
 *    is blended onto a cluttered canvas (background gradient, random bars and blobs, fragments of
 *    other items) with Gaussian noise, as an object appears in a camera frame.
 *  - MONE_PROTOCOL_SCENE: a camera frame (4:3, 16:9 or 1:1) stretched to the model input as
 *    monefilter's default scale-mode does, the item at 30-95% of the frame height anywhere (sometimes
 *    cut by the edge), on a light or dark, unevenly lit background with texture, shapes and
 *    fragments of other items, then contrast, gamma, blur, sensor noise and blocky compression.
 * Rendering is a pure function of (seed, protocol, index): the same arguments give the same pixels
 * on every machine, so test sets are reproducible. Output is float32 planar CHW in [0,1]; a grey
 * item is replicated over every channel. In-frame needs grey items (it uses brightness as the
 * item's mask, which holds for Fashion-MNIST's black backgrounds, not for photos).
 */
#ifndef MONE_TRAIN_DATA_H
#define MONE_TRAIN_DATA_H

#include <glib.h>
#include <stdint.h>

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
gboolean mone_fashion_mnist_load (const char *dir, gboolean train, MoneImageSet *out, GError **error);

/* Reads one gzip (or plain) IDX image/label file pair. max_label: labels must be < max_label. */
gboolean mone_idx_load (const char *images_path, const char *labels_path, int max_label, MoneImageSet *out,
    GError **error);

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
  int skipped_other;  /* files not named as pictures, folders inside class folders, files beside them */
} MoneImageFolder;

/* Reads every image of an image folder at height x width with 1 or 3 channels. Refuses, naming
 * the file or folder: an unreadable folder, a class name that is not UTF-8, fewer than 2 or more
 * than MONE_IMAGE_FOLDER_MAX_CLASSES classes, a class folder without PNG files, a PNG cairo cannot
 * read. */
gboolean mone_image_folder_load (const char *dir, int height, int width, int channels, MoneImageFolder *out,
    GError **error);
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
} MoneProtocol;
#define MONE_N_PROTOCOLS 3

const char *mone_protocol_name (MoneProtocol protocol);
/* Parses "full-frame" / "in-frame" / "scene"; returns FALSE for anything else. */
gboolean mone_protocol_from_name (const char *name, MoneProtocol *protocol);

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
void mone_render (const MoneImageSet *set, int index, MoneProtocol protocol, uint64_t seed, gboolean augment,
    int channels, int height, int width, float *out);
/* The same render, also reporting where the item is (box may be NULL). */
void mone_render_with_box (const MoneImageSet *set, int index, MoneProtocol protocol, uint64_t seed, gboolean augment,
    int channels, int height, int width, float *out, MoneItemBox *box);

/* The largest side mone_render_scene_frame draws. */
#define MONE_SCENE_MAX_SIDE 512
/* A scene as a camera would deliver it, unstretched: the frame's aspect is width / height (a video
 * frame at a camera-like size, e.g. 86 x 64, for tools that scale it up to a video). Grey, one plane
 * (height, width), a pure function of (seed, index). */
void mone_render_scene_frame (const MoneImageSet *set, int index, uint64_t seed, int height, int width, float *out,
    MoneItemBox *box);

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

/* Old spellings, kept for tools/mone-sample-video.c. The names collide with the engine's PRNG in
 * src/init.h (a different generator), so they are only offered where init.h is not included;
 * new code uses mone_train_rng_*. */
#ifndef MONE_INIT_H
#define MoneRng MoneTrainRng
#define mone_rng_seed mone_train_rng_seed
#define mone_rng_next mone_train_rng_next
#define mone_rng_uniform mone_train_rng_uniform
#define mone_rng_below mone_train_rng_below
#define mone_rng_normal mone_train_rng_normal
#endif

G_END_DECLS

#endif /* MONE_TRAIN_DATA_H */
