/* Fashion-MNIST IDX reader and the seeded render protocols (see include/mone/mone-train.h). */
#include "mone/mone-train.h"
#include "scene.h"

#include "mone/mone.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

const char *const mone_fashion_mnist_labels[10] = {
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
};

/* ---------------------------------------------------------------------------------------------- */
/* IDX files: big-endian magic 0x00 0x00 0x08 ndim, ndim big-endian uint32 sizes, then uint8 data. */

#define IDX_MAX_ITEMS 10000000
#define IDX_MAX_SIDE 4096

typedef struct {
  const char *path;
  gzFile gz;
} IdxReader;

static gboolean
idx_open (IdxReader *r, const char *path, GError **error)
{
  r->path = path;
  r->gz = NULL;
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "cannot open IDX file '%s': %s", path, g_strerror (e));
    return FALSE;
  }
  /* gzdopen reads plain (uncompressed) files transparently too. */
  r->gz = gzdopen (fd, "rb");
  if (!r->gz) {
    close (fd);
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "cannot open IDX file '%s': out of memory", path);
    return FALSE;
  }
  gzbuffer (r->gz, 1 << 17);
  return TRUE;
}

static void
idx_close (IdxReader *r)
{
  if (r->gz)
    gzclose (r->gz);
  r->gz = NULL;
}

/* Reads exactly n bytes; a short read is "truncated", a zlib failure is "corrupt". */
static gboolean
idx_read (IdxReader *r, void *buf, size_t n, const char *what, GError **error)
{
  size_t done = 0;
  while (done < n) {
    size_t chunk = MIN (n - done, (size_t) 1 << 30);
    int got = gzread (r->gz, (char *) buf + done, (unsigned) chunk);
    if (got < 0) {
      int errnum = 0;
      const char *msg = gzerror (r->gz, &errnum);
      g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT, "IDX file '%s' is corrupt (reading %s): %s", r->path, what,
          msg ? msg : "zlib error");
      return FALSE;
    }
    if (got == 0) {
      int errnum = 0;
      const char *msg = gzerror (r->gz, &errnum);
      if (errnum == Z_BUF_ERROR)
        g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT,
            "IDX file '%s' is truncated: the compressed stream ends after %zu of the %zu bytes of %s", r->path, done, n,
            what);
      else if (errnum != Z_OK && errnum != Z_STREAM_END)
        g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT,
            "IDX file '%s' is corrupt (reading %s after %zu of %zu bytes): %s", r->path, what, done, n,
            msg ? msg : "zlib error");
      else
        g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT,
            "IDX file '%s' is truncated: %s needs %zu bytes, only %zu present", r->path, what, n, done);
      return FALSE;
    }
    done += (size_t) got;
  }
  return TRUE;
}

static gboolean
idx_expect_end (IdxReader *r, GError **error)
{
  char extra;
  int got = gzread (r->gz, &extra, 1);
  if (got > 0) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT, "IDX file '%s' has trailing bytes after the declared data",
        r->path);
    return FALSE;
  }
  int errnum = 0;
  const char *msg = gzerror (r->gz, &errnum);
  if (got < 0 || (errnum != Z_OK && errnum != Z_STREAM_END)) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT, "IDX file '%s' is corrupt at its end: %s", r->path,
        msg ? msg : "zlib error");
    return FALSE;
  }
  return TRUE;
}

/* Reads the header: magic (unsigned byte data, expected_ndim dimensions) and the sizes. */
static gboolean
idx_read_header (IdxReader *r, int expected_ndim, uint32_t *dims, GError **error)
{
  guint8 magic[4];
  if (!idx_read (r, magic, 4, "the magic number", error))
    return FALSE;
  if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] != expected_ndim) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT,
        "'%s' is not an IDX %s file: magic %02x %02x %02x %02x, expected 00 00 08 %02x", r->path,
        expected_ndim == 1 ? "label" : "image", magic[0], magic[1], magic[2], magic[3], expected_ndim);
    return FALSE;
  }
  for (int i = 0; i < expected_ndim; i++) {
    guint8 b[4];
    if (!idx_read (r, b, 4, "the dimensions", error))
      return FALSE;
    dims[i] = (uint32_t) b[0] << 24 | (uint32_t) b[1] << 16 | (uint32_t) b[2] << 8 | b[3];
  }
  if (dims[0] == 0 || dims[0] > IDX_MAX_ITEMS) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT, "IDX file '%s': item count %u out of range 1..%d", r->path,
        dims[0], IDX_MAX_ITEMS);
    return FALSE;
  }
  for (int i = 1; i < expected_ndim; i++)
    if (dims[i] == 0 || dims[i] > IDX_MAX_SIDE) {
      g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT, "IDX file '%s': dimension %d is %u, out of range 1..%d",
          r->path, i, dims[i], IDX_MAX_SIDE);
      return FALSE;
    }
  return TRUE;
}

gboolean
mone_idx_load (const char *images_path, const char *labels_path, int max_label, MoneImageSet *out, GError **error)
{
  IdxReader ri = { 0 }, rl = { 0 };
  uint32_t idims[3], ldims[1];
  guint8 *pixels = NULL, *labels = NULL;

  memset (out, 0, sizeof *out);
  if (!idx_open (&ri, images_path, error) || !idx_read_header (&ri, 3, idims, error))
    goto fail;
  if (!idx_open (&rl, labels_path, error) || !idx_read_header (&rl, 1, ldims, error))
    goto fail;
  if (idims[0] != ldims[0]) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT, "'%s' holds %u images but '%s' holds %u labels", images_path,
        idims[0], labels_path, ldims[0]);
    goto fail;
  }
  /* Bounded by IDX_MAX_ITEMS * IDX_MAX_SIDE^2 < 2^58: no overflow in size_t. */
  size_t n_pixels = (size_t) idims[0] * idims[1] * idims[2];
  pixels = g_try_malloc (n_pixels);
  labels = g_try_malloc (ldims[0]);
  if (!pixels || !labels) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "out of memory for %zu pixels from '%s'", n_pixels, images_path);
    goto fail;
  }
  if (!idx_read (&ri, pixels, n_pixels, "the pixels", error) || !idx_expect_end (&ri, error))
    goto fail;
  if (!idx_read (&rl, labels, ldims[0], "the labels", error) || !idx_expect_end (&rl, error))
    goto fail;
  for (uint32_t i = 0; i < ldims[0]; i++)
    if (labels[i] >= max_label) {
      g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT, "'%s': label %u of item %u is out of range 0..%d", labels_path,
          labels[i], i, max_label - 1);
      goto fail;
    }
  idx_close (&ri);
  idx_close (&rl);
  out->count = (int) idims[0];
  out->channels = 1;
  out->rows = (int) idims[1];
  out->cols = (int) idims[2];
  out->pixels = pixels;
  out->labels = labels;
  return TRUE;

fail:
  idx_close (&ri);
  idx_close (&rl);
  g_free (pixels);
  g_free (labels);
  return FALSE;
}

gboolean
mone_fashion_mnist_load (const char *dir, gboolean train, MoneImageSet *out, GError **error)
{
  if (!dir)
    dir = MONE_FASHION_MNIST_DIR;
  const char *prefix = train ? "train" : "t10k";
  char *images = g_strdup_printf ("%s/%s-images-idx3-ubyte.gz", dir, prefix);
  char *labels = g_strdup_printf ("%s/%s-labels-idx1-ubyte.gz", dir, prefix);
  gboolean ok = mone_idx_load (images, labels, MONE_FASHION_MNIST_CLASSES, out, error);
  if (ok && (out->rows != 28 || out->cols != 28)) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT, "'%s': images are %dx%d, Fashion-MNIST is 28x28", images,
        out->cols, out->rows);
    mone_image_set_clear (out);
    ok = FALSE;
  }
  g_free (images);
  g_free (labels);
  return ok;
}

void
mone_image_set_clear (MoneImageSet *set)
{
  if (!set)
    return;
  g_free (set->pixels);
  g_free (set->labels);
  g_free (set->alpha);
  memset (set, 0, sizeof *set);
}

MoneImageSet
mone_image_set_slice (const MoneImageSet *set, int first, int count)
{
  MoneImageSet s = *set;
  g_assert (first >= 0 && count >= 0 && first + count <= set->count);
  s.count = count;
  s.pixels = set->pixels + (size_t) first * set->channels * set->rows * set->cols;
  s.labels = set->labels + first;
  if (set->alpha)
    s.alpha = set->alpha + (size_t) first * set->rows * set->cols;
  return s;
}

/* ---------------------------------------------------------------------------------------------- */
/* Random numbers: every render derives its own stream from (seed, protocol, index), so rendering
 * order and thread count never change the pixels. */

static uint64_t
splitmix64 (uint64_t *x)
{
  uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void
mone_train_rng_seed (MoneTrainRng *rng, uint64_t seed, uint64_t stream)
{
  uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull);
  rng->s[0] = splitmix64 (&x);
  rng->s[1] = splitmix64 (&x);
  if (rng->s[0] == 0 && rng->s[1] == 0)
    rng->s[1] = 1;
}

uint64_t
mone_train_rng_next (MoneTrainRng *rng)
{
  /* xorshift128+ */
  uint64_t s1 = rng->s[0];
  const uint64_t s0 = rng->s[1];
  const uint64_t result = s0 + s1;
  rng->s[0] = s0;
  s1 ^= s1 << 23;
  rng->s[1] = s1 ^ s0 ^ (s1 >> 18) ^ (s0 >> 5);
  return result;
}

double
mone_train_rng_uniform (MoneTrainRng *rng)
{
  return (double) (mone_train_rng_next (rng) >> 11) * (1.0 / 9007199254740992.0);
}

uint32_t
mone_train_rng_below (MoneTrainRng *rng, uint32_t n)
{
  return (uint32_t) (mone_train_rng_uniform (rng) * n) % (n ? n : 1);
}

double
mone_train_rng_normal (MoneTrainRng *rng)
{
  double u1 = mone_train_rng_uniform (rng), u2 = mone_train_rng_uniform (rng);
  if (u1 < 1e-300)
    u1 = 1e-300;
  return sqrt (-2.0 * log (u1)) * cos (2.0 * G_PI * u2);
}

/* ---------------------------------------------------------------------------------------------- */
/* Rendering. */

const char *
mone_protocol_name (MoneProtocol protocol)
{
  switch (protocol) {
    case MONE_PROTOCOL_IN_FRAME:
      return "in-frame";
    case MONE_PROTOCOL_SCENE:
      return "scene";
    case MONE_PROTOCOL_CLOSE_UP:
      return "close-up";
    default:
      return "full-frame";
  }
}

gboolean
mone_protocol_renders (MoneProtocol protocol, const MoneImageSet *set)
{
  return set->channels == 1 || protocol == MONE_PROTOCOL_FULL_FRAME
      || ((protocol == MONE_PROTOCOL_SCENE || protocol == MONE_PROTOCOL_CLOSE_UP) && set->alpha);
}

gboolean
mone_protocol_from_name (const char *name, MoneProtocol *protocol)
{
  if (!g_strcmp0 (name, "full-frame"))
    *protocol = MONE_PROTOCOL_FULL_FRAME;
  else if (!g_strcmp0 (name, "in-frame"))
    *protocol = MONE_PROTOCOL_IN_FRAME;
  else if (!g_strcmp0 (name, "scene"))
    *protocol = MONE_PROTOCOL_SCENE;
  else if (!g_strcmp0 (name, "close-up"))
    *protocol = MONE_PROTOCOL_CLOSE_UP;
  else
    return FALSE;
  return TRUE;
}

/* Bilinear sample of item pixels at continuous source coordinates (pixel centres at integers),
 * zero outside, value in [0,1]. */
float
mone_item_sample (const guint8 *img, int rows, int cols, float u, float v)
{
  int u0 = (int) floorf (u), v0 = (int) floorf (v);
  float fu = u - u0, fv = v - v0;
  float acc = 0;
  for (int dv = 0; dv <= 1; dv++)
    for (int du = 0; du <= 1; du++) {
      int x = u0 + du, y = v0 + dv;
      if (x < 0 || y < 0 || x >= cols || y >= rows)
        continue;
      float w = (du ? fu : 1 - fu) * (dv ? fv : 1 - fv);
      acc += w * img[y * cols + x];
    }
  return acc * (1.0f / 255.0f);
}

/* Area-correct resampling: the item's source rectangle [0,cols)x[0,rows) mapped onto the
 * destination rectangle (x0, y0, size w x h); value at destination pixel (x, y), supersampled
 * n x n when shrinking so small renders do not alias. */
float
mone_item_render_pixel (const guint8 *img, int rows, int cols, gboolean flip, float x0, float y0, float w, float h,
    int n, int x, int y)
{
  float acc = 0;
  for (int sy = 0; sy < n; sy++)
    for (int sx = 0; sx < n; sx++) {
      float px = x + (sx + 0.5f) / n, py = y + (sy + 0.5f) / n; /* continuous dest coords */
      float u = (px - x0) * cols / w - 0.5f, v = (py - y0) * rows / h - 0.5f;
      if (flip)
        u = cols - 1 - u;
      acc += mone_item_sample (img, rows, cols, u, v);
    }
  return acc / (n * n);
}

static inline float
clampf (float v, float lo, float hi)
{
  return v < lo ? lo : v > hi ? hi : v;
}

/* Renders every channel of the item into out (set->channels planes of height x width). */
static void
render_full_frame (const MoneImageSet *set, int index, MoneTrainRng *rng, gboolean augment, int height, int width,
    float *out)
{
  const size_t item_plane = (size_t) set->rows * set->cols;
  const guint8 *item = set->pixels + (size_t) index * set->channels * item_plane;
  gboolean flip = FALSE;
  float shift_x = 0, shift_y = 0;
  if (augment) {
    flip = mone_train_rng_uniform (rng) < 0.5;
    /* Shift by up to 2 item pixels, expressed in output pixels. */
    shift_x = (float) ((int) mone_train_rng_below (rng, 5) - 2) * width / set->cols;
    shift_y = (float) ((int) mone_train_rng_below (rng, 5) - 2) * height / set->rows;
  }
  int n = MAX (1, (set->cols + width - 1) / width);
  for (int ch = 0; ch < set->channels; ch++) {
    const guint8 *img = item + ch * item_plane;
    float *plane = out + (size_t) ch * height * width;
    for (int y = 0; y < height; y++)
      for (int x = 0; x < width; x++)
        plane[y * width + x] = mone_item_render_pixel (img, set->rows, set->cols, flip, shift_x, shift_y, (float) width,
            (float) height, n, x, y);
  }
}

static void
render_in_frame (const MoneImageSet *set, int index, MoneTrainRng *rng, gboolean augment, int height, int width,
    float *plane, MoneItemBox *box)
{
  const int side = MIN (width, height);

  /* Background: a base level with a linear gradient in a random direction. */
  float base = (float) (0.05 + 0.25 * mone_train_rng_uniform (rng));
  float grad = (float) (0.2 * mone_train_rng_uniform (rng));
  float angle = (float) (2 * G_PI * mone_train_rng_uniform (rng));
  float gx = cosf (angle) * grad / width, gy = sinf (angle) * grad / height;
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++)
      plane[y * width + x] = clampf (base + gx * (x - width / 2.0f) + gy * (y - height / 2.0f), 0, 1);

  /* Clutter: 3-6 translucent bars and blocks. */
  int n_shapes = 3 + (int) mone_train_rng_below (rng, 4);
  for (int s = 0; s < n_shapes; s++) {
    int w = 1 + (int) mone_train_rng_below (rng, (uint32_t) MAX (1, side / 3));
    int h = 1 + (int) mone_train_rng_below (rng, (uint32_t) MAX (1, side / 3));
    if (mone_train_rng_uniform (rng) < 0.5) { /* thin bar */
      if (mone_train_rng_uniform (rng) < 0.5)
        w = 1 + (int) mone_train_rng_below (rng, 2),
        h = side / 2 + (int) mone_train_rng_below (rng, (uint32_t) (side / 2));
      else
        h = 1 + (int) mone_train_rng_below (rng, 2),
        w = side / 2 + (int) mone_train_rng_below (rng, (uint32_t) (side / 2));
    }
    int x0 = (int) mone_train_rng_below (rng, (uint32_t) width) - w / 2;
    int y0 = (int) mone_train_rng_below (rng, (uint32_t) height) - h / 2;
    float value = (float) (0.1 + 0.6 * mone_train_rng_uniform (rng));
    float a = (float) (0.3 + 0.5 * mone_train_rng_uniform (rng));
    for (int y = MAX (0, y0); y < MIN (height, y0 + h); y++)
      for (int x = MAX (0, x0); x < MIN (width, x0 + w); x++)
        plane[y * width + x] = (1 - a) * plane[y * width + x] + a * value;
  }

  /* Distractors: 1-2 small, dim fragments of other items (a quarter of an item each). */
  int n_fragments = 1 + (int) mone_train_rng_below (rng, 2);
  for (int f = 0; f < n_fragments; f++) {
    int other = (int) mone_train_rng_below (rng, (uint32_t) set->count);
    const guint8 *img = set->pixels + (size_t) other * set->rows * set->cols;
    int fsize = MAX (2, side / 4);
    int fx = (int) mone_train_rng_below (rng, (uint32_t) MAX (1, width - fsize));
    int fy = (int) mone_train_rng_below (rng, (uint32_t) MAX (1, height - fsize));
    int qx = (int) mone_train_rng_below (rng, 2) * set->cols / 2,
        qy = (int) mone_train_rng_below (rng, 2) * set->rows / 2;
    float gain = (float) (0.3 + 0.3 * mone_train_rng_uniform (rng));
    for (int y = 0; y < fsize && fy + y < height; y++)
      for (int x = 0; x < fsize && fx + x < width; x++) {
        float v = mone_item_sample (img, set->rows, set->cols, qx + (x + 0.5f) * (set->cols / 2.0f) / fsize - 0.5f,
            qy + (y + 0.5f) * (set->rows / 2.0f) / fsize - 0.5f);
        float a = clampf (v * 2.5f, 0, 1) * 0.7f;
        float *p = &plane[(fy + y) * width + fx + x];
        *p = (1 - a) * *p + a * v * gain;
      }
  }

  /* The item: 40-70% of the shorter side, anywhere fully inside the canvas. */
  const guint8 *img = set->pixels + (size_t) index * set->rows * set->cols;
  float size = (float) ((0.40 + 0.30 * mone_train_rng_uniform (rng)) * side);
  float ix = (float) (mone_train_rng_uniform (rng) * (width - size));
  float iy = (float) (mone_train_rng_uniform (rng) * (height - size));
  float gain = (float) (0.75 + 0.25 * mone_train_rng_uniform (rng));
  gboolean flip = augment && mone_train_rng_uniform (rng) < 0.5;
  *box = (MoneItemBox){ ix, iy, size, size };
  int n = MAX (1, (int) ceilf (set->cols / size));
  for (int y = MAX (0, (int) iy); y < MIN (height, (int) ceilf (iy + size)); y++)
    for (int x = MAX (0, (int) ix); x < MIN (width, (int) ceilf (ix + size)); x++) {
      float v = mone_item_render_pixel (img, set->rows, set->cols, flip, ix, iy, size, size, n, x, y);
      float a = clampf (v * 2.5f, 0, 1);
      plane[y * width + x] = (1 - a) * plane[y * width + x] + a * v * gain;
    }

  /* Sensor noise. */
  float sigma = (float) (0.02 + 0.06 * mone_train_rng_uniform (rng));
  for (int i = 0; i < width * height; i++)
    plane[i] = clampf (plane[i] + sigma * (float) mone_train_rng_normal (rng), 0, 1);
}

void
mone_render (const MoneImageSet *set, int index, MoneProtocol protocol, uint64_t seed, gboolean augment, int channels,
    int height, int width, float *out)
{
  mone_render_with_box (set, index, protocol, seed, augment, channels, height, width, out, NULL);
}

void
mone_render_with_box (const MoneImageSet *set, int index, MoneProtocol protocol, uint64_t seed, gboolean augment,
    int channels, int height, int width, float *out, MoneItemBox *box)
{
  /* A grey set fills one plane and is replicated below; a colour set fills them all. In-frame
   * blends by brightness and needs grey items; a scene of colour pictures needs their alpha. */
  g_return_if_fail ((set->channels == 1 || set->channels == channels) && mone_protocol_renders (protocol, set));
  g_return_if_fail (protocol == MONE_PROTOCOL_FULL_FRAME || protocol == MONE_PROTOCOL_IN_FRAME
      || protocol == MONE_PROTOCOL_SCENE || protocol == MONE_PROTOCOL_CLOSE_UP);
  MoneTrainRng rng;
  MoneItemBox where = { 0, 0, (float) width, (float) height };
  mone_train_rng_seed (&rng, seed, ((uint64_t) protocol << 40) ^ ((uint64_t) augment << 39) ^ (uint64_t) index);
  if (protocol == MONE_PROTOCOL_IN_FRAME)
    render_in_frame (set, index, &rng, augment, height, width, out, &where);
  else if (protocol == MONE_PROTOCOL_SCENE)
    mone_render_scene (set, index, &rng, augment, 0.0f, height, width, out, &where);
  else if (protocol == MONE_PROTOCOL_CLOSE_UP)
    mone_render_close_up (set, index, &rng, augment, height, width, out, &where);
  else
    render_full_frame (set, index, &rng, augment, height, width, out);
  if (box)
    *box = where;
  for (int c = set->channels; c < channels; c++)
    memcpy (out + (size_t) c * height * width, out, sizeof (float) * height * width);
}

void
mone_render_scene_frame (const MoneImageSet *set, int index, uint64_t seed, int height, int width, float *out,
    MoneItemBox *box)
{
  g_return_if_fail (set->channels == 1 && height <= MONE_SCENE_MAX_SIDE && width <= MONE_SCENE_MAX_SIDE);
  MoneTrainRng rng;
  MoneItemBox where;
  mone_train_rng_seed (&rng, seed, ((uint64_t) MONE_PROTOCOL_SCENE << 40) ^ (1ull << 38) ^ (uint64_t) index);
  mone_render_scene (set, index, &rng, FALSE, (float) width / height, height, width, out, &where);
  if (box)
    *box = where;
}
