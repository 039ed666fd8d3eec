/* The scene protocol: a Fashion-MNIST item as a camera would show it to monefilter.
 *
 * A camera frame of aspect 4:3, 16:9 or 1:1 is drawn directly at the model input size, already
 * stretched as the element's default scale-mode (stretch) would deliver it: a square item that is
 * a fraction f of the frame height appears f*H pixels tall and f*W/aspect pixels wide. Rendering at
 * the model size keeps a render at a few hundred microseconds, cheap enough to make every training
 * sample a new scene.
 *
 * Layers, back to front: an unevenly lit background (light or dark base, gradient, smooth
 * illumination, sometimes a texture), shapes, fragments of other items, the item (blended by its
 * brightness, like in-frame), then what the camera and the codec do to the whole frame: contrast,
 * brightness, gamma, blur, sensor noise and blocky compression. Every choice is drawn from the
 * render's own random stream, so a scene is a pure function of (seed, index).
 *
 * The close-up protocol is the same camera without the clutter: the item fills most of a plainly lit
 * frame, near its centre (a garment held up to the camera; the sample video's close-ups).
 */
#include "scene.h"

#include <math.h>
#include <string.h>

/* Item height as a fraction of the frame height. */
#define SCENE_ITEM_MIN 0.30
#define SCENE_ITEM_MAX 0.95
/* Share of scenes whose item is cut by a frame edge, and how much of its width or height may be
 * outside then. */
#define SCENE_CUT_PROBABILITY 0.2
#define SCENE_CUT_MAX 0.3
/* Close-ups: the item's height as a fraction of the frame height, and how far its centre may be
 * off the frame's centre (fraction of the frame side). */
#define CLOSE_UP_ITEM_MIN 0.6
#define CLOSE_UP_ITEM_MAX 1.0
#define CLOSE_UP_OFF_CENTRE 0.05

static inline float
clampf (float v, float lo, float hi)
{
  return v < lo ? lo : v > hi ? hi : v;
}

static inline float
uniform (MoneTrainRng *rng, double lo, double hi)
{
  return (float) (lo + (hi - lo) * mone_train_rng_uniform (rng));
}

/* Camera aspect ratios (width / height) in the proportions cameras deliver them. */
static float
scene_aspect (MoneTrainRng *rng)
{
  double u = mone_train_rng_uniform (rng);
  return u < 0.45 ? 4.0f / 3.0f : u < 0.8 ? 16.0f / 9.0f : 1.0f;
}

/* Base level, a linear gradient and smooth illumination: a 4 x 4 grid of random offsets
 * interpolated bilinearly over the frame. Light and dark backgrounds are equally likely. */
static void
scene_background (MoneTrainRng *rng, int height, int width, float *plane)
{
  const gboolean light = mone_train_rng_uniform (rng) < 0.5;
  const float base = light ? uniform (rng, 0.5, 0.95) : uniform (rng, 0.0, 0.35);
  const float grad = uniform (rng, 0.0, 0.3);
  const float angle = uniform (rng, 0.0, 2 * G_PI);
  const float gx = cosf (angle) * grad / width, gy = sinf (angle) * grad / height;
  const float light_amplitude = uniform (rng, 0.0, 0.25);
  float grid[4][4];
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++)
      grid[i][j] = light_amplitude * uniform (rng, -1.0, 1.0);
  for (int y = 0; y < height; y++) {
    const float gyf = 3.0f * y / MAX (1, height - 1);
    const int i = MIN (2, (int) gyf);
    const float fy = gyf - i;
    for (int x = 0; x < width; x++) {
      const float gxf = 3.0f * x / MAX (1, width - 1);
      const int j = MIN (2, (int) gxf);
      const float fx = gxf - j;
      const float smooth = (1 - fy) * ((1 - fx) * grid[i][j] + fx * grid[i][j + 1])
          + fy * ((1 - fx) * grid[i + 1][j] + fx * grid[i + 1][j + 1]);
      plane[y * width + x] = base + gx * (x - width / 2.0f) + gy * (y - height / 2.0f) + smooth;
    }
  }
}

/* Sometimes a texture: stripes at a random period and angle, or a checkerboard (fabric, tiles). */
static void
scene_texture (MoneTrainRng *rng, int height, int width, float *plane)
{
  const double u = mone_train_rng_uniform (rng);
  if (u >= 0.4)
    return;
  const float amplitude = uniform (rng, 0.02, 0.12);
  const float period = uniform (rng, 2.5, 12.0);
  if (u < 0.25) {
    const float angle = uniform (rng, 0.0, G_PI);
    const float kx = cosf (angle) * 2 * G_PI / period, ky = sinf (angle) * 2 * G_PI / period;
    const float phase = uniform (rng, 0.0, 2 * G_PI);
    for (int y = 0; y < height; y++)
      for (int x = 0; x < width; x++)
        plane[y * width + x] += amplitude * sinf (kx * x + ky * y + phase);
  } else {
    const int cell = (int) period;
    for (int y = 0; y < height; y++)
      for (int x = 0; x < width; x++)
        plane[y * width + x] += ((x / cell + y / cell) & 1) ? amplitude : -amplitude;
  }
}

/* 2-6 rectangles, ellipses and thin bars of random grey, some translucent. */
static void
scene_shapes (MoneTrainRng *rng, int height, int width, float *plane)
{
  const int n = 2 + (int) mone_train_rng_below (rng, 5);
  for (int s = 0; s < n; s++) {
    const int kind = (int) mone_train_rng_below (rng, 3); /* 0 rectangle, 1 ellipse, 2 bar */
    float w = uniform (rng, 0.05, 0.5) * width, h = uniform (rng, 0.05, 0.5) * height;
    if (kind == 2) {
      if (mone_train_rng_uniform (rng) < 0.5)
        w = uniform (rng, 1.0, 2.5), h = uniform (rng, 0.4, 1.0) * height;
      else
        h = uniform (rng, 1.0, 2.5), w = uniform (rng, 0.4, 1.0) * width;
    }
    const float cx = uniform (rng, 0.0, width), cy = uniform (rng, 0.0, height);
    const float value = uniform (rng, 0.0, 1.0);
    const float a = uniform (rng, 0.3, 1.0);
    const int x0 = MAX (0, (int) floorf (cx - w / 2)), x1 = MIN (width, (int) ceilf (cx + w / 2));
    const int y0 = MAX (0, (int) floorf (cy - h / 2)), y1 = MIN (height, (int) ceilf (cy + h / 2));
    for (int y = y0; y < y1; y++)
      for (int x = x0; x < x1; x++) {
        if (kind == 1) {
          const float dx = (x + 0.5f - cx) / (w / 2), dy = (y + 0.5f - cy) / (h / 2);
          if (dx * dx + dy * dy > 1)
            continue;
        }
        plane[y * width + x] = (1 - a) * plane[y * width + x] + a * value;
      }
  }
}

/* Blends a grey item drawn in the rectangle (x0, y0, w, h) onto the plane, using its brightness v
 * as coverage (Fashion-MNIST items lie on black) and as its tone: level + contrast * v, where level
 * is the mean of what lies behind the item and contrast is signed (a dark garment on a light table
 * is a negative one; Fashion-MNIST stores negatives of product photos taken on white). */
static void
scene_paste_item (const guint8 *img, int rows, int cols, gboolean flip, float x0, float y0, float w, float h,
    float level, float contrast, int height, int width, float *plane)
{
  const int n = MAX (1, (int) ceilf (cols / MIN (w, h)));
  for (int y = MAX (0, (int) floorf (y0)); y < MIN (height, (int) ceilf (y0 + h)); y++)
    for (int x = MAX (0, (int) floorf (x0)); x < MIN (width, (int) ceilf (x0 + w)); x++) {
      const float v = mone_item_render_pixel (img, rows, cols, flip, x0, y0, w, h, n, x, y);
      const float a = clampf (v * 3.0f, 0, 1);
      plane[y * width + x] = (1 - a) * plane[y * width + x] + a * clampf (level + contrast * v, 0, 1);
    }
}

/* Mean of the plane over the part of a rectangle inside it. */
static float
scene_mean (const float *plane, int height, int width, float x0, float y0, float w, float h)
{
  double sum = 0;
  int n = 0;
  for (int y = MAX (0, (int) floorf (y0)); y < MIN (height, (int) ceilf (y0 + h)); y++)
    for (int x = MAX (0, (int) floorf (x0)); x < MIN (width, (int) ceilf (x0 + w)); x++, n++)
      sum += plane[y * width + x];
  return n ? (float) (sum / n) : 0.5f;
}

/* 0-2 fragments of other items (a half or a quarter, drawn smaller than the item) so that item-like
 * texture alone does not mark the item. The part is chosen by drawing the whole item into a larger
 * rectangle that the clip to the fragment's rectangle cuts. */
static void
scene_fragments (const MoneImageSet *set, MoneTrainRng *rng, float item_h, float squeeze, int height, int width,
    float *plane)
{
  const int n = (int) mone_train_rng_below (rng, 3);
  const size_t item_bytes = (size_t) set->rows * set->cols;
  for (int f = 0; f < n; f++) {
    const guint8 *img = set->pixels + mone_train_rng_below (rng, (uint32_t) set->count) * item_bytes;
    const float h = item_h * uniform (rng, 0.4, 0.8), w = h * squeeze;
    const float x0 = uniform (rng, -0.5 * w, width - 0.5 * w), y0 = uniform (rng, -0.5 * h, height - 0.5 * h);
    /* Keep one half (0-1: left/right, 2-3: top/bottom) of the item's rectangle. */
    const int half = (int) mone_train_rng_below (rng, 4);
    const float cx0 = half == 1 ? x0 + w / 2 : x0, cx1 = half == 0 ? x0 + w / 2 : x0 + w;
    const float cy0 = half == 3 ? y0 + h / 2 : y0, cy1 = half == 2 ? y0 + h / 2 : y0 + h;
    const gboolean positive = mone_train_rng_uniform (rng) < 0.5;
    const float offset = uniform (rng, 0.0, 0.2), gain = uniform (rng, 0.4, 1.0);
    const int n_sub = MAX (1, (int) ceilf (set->cols / MIN (w, h)));
    for (int y = MAX (0, (int) floorf (cy0)); y < MIN (height, (int) ceilf (cy1)); y++)
      for (int x = MAX (0, (int) floorf (cx0)); x < MIN (width, (int) ceilf (cx1)); x++) {
        const float v = mone_item_render_pixel (img, set->rows, set->cols, FALSE, x0, y0, w, h, n_sub, x, y);
        const float a = clampf (v * 3.0f, 0, 1);
        const float tone = positive ? 1 - gain * v - offset : offset + gain * v;
        plane[y * width + x] = (1 - a) * plane[y * width + x] + a * clampf (tone, 0, 1);
      }
  }
}

/* Where the item goes: fully inside the frame, or with probability SCENE_CUT_PROBABILITY reaching
 * up to SCENE_CUT_MAX of its extent past the frame edges. */
static void
scene_place_item (MoneTrainRng *rng, float w, float h, int height, int width, float *x0, float *y0)
{
  const float out = mone_train_rng_uniform (rng) < SCENE_CUT_PROBABILITY ? (float) SCENE_CUT_MAX : 0.0f;
  const float lo_x = -out * w, hi_x = MAX (lo_x, width - w + out * w);
  const float lo_y = -out * h, hi_y = MAX (lo_y, height - h + out * h);
  *x0 = uniform (rng, lo_x, hi_x);
  *y0 = uniform (rng, lo_y, hi_y);
}

/* Contrast and brightness around mid-grey, then gamma, on the whole frame (exposure, tone curve). */
static void
scene_tone (MoneTrainRng *rng, int n, float *planes)
{
  const float contrast = uniform (rng, 0.7, 1.3), brightness = uniform (rng, -0.1, 0.1);
  const float gamma = expf (uniform (rng, logf (0.6f), logf (1.6f)));
  for (int i = 0; i < n; i++)
    planes[i] = powf (clampf ((planes[i] - 0.5f) * contrast + 0.5f + brightness, 0, 1), gamma);
}

/* Half the scenes are out of focus: one or two passes of a separable [1 2 1] / 4 filter
 * (sigma 0.7 or 1 pixel), edges repeated. */
static void
scene_blur (MoneTrainRng *rng, int planes, int height, int width, float *out)
{
  if (mone_train_rng_uniform (rng) >= 0.5)
    return;
  const int passes = 1 + (int) mone_train_rng_below (rng, 2);
  float line[MONE_SCENE_MAX_SIDE];
  for (int pass = 0; pass < passes * planes; pass++) {
    float *plane = out + (size_t) (pass % planes) * height * width;
    for (int y = 0; y < height; y++) {
      float *row = plane + (size_t) y * width;
      memcpy (line, row, sizeof (float) * width);
      for (int x = 0; x < width; x++)
        row[x] = 0.25f * line[MAX (0, x - 1)] + 0.5f * line[x] + 0.25f * line[MIN (width - 1, x + 1)];
    }
    for (int x = 0; x < width; x++) {
      for (int y = 0; y < height; y++)
        line[y] = plane[(size_t) y * width + x];
      for (int y = 0; y < height; y++)
        plane[(size_t) y * width + x] = 0.25f * line[MAX (0, y - 1)] + 0.5f * line[y]
            + 0.25f * line[MIN (height - 1, y + 1)];
    }
  }
}

/* A codec at a low bit rate flattens blocks: each b x b block keeps its mean and a fraction of its
 * detail, and the result is quantised (b = 2-4 model pixels, a camera's 8 x 8 blocks at typical
 * frame-to-model ratios). Applied to 40% of the scenes. */
static void
scene_blocks (MoneTrainRng *rng, int planes, int height, int width, float *out)
{
  if (mone_train_rng_uniform (rng) >= 0.4)
    return;
  const int b = 2 + (int) mone_train_rng_below (rng, 3);
  const float keep = uniform (rng, 0.2, 0.8);
  const float levels = uniform (rng, 16.0, 64.0);
  for (int ch = 0; ch < planes; ch++) {
    float *plane = out + (size_t) ch * height * width;
    for (int by = 0; by < height; by += b)
      for (int bx = 0; bx < width; bx += b) {
        const int y1 = MIN (height, by + b), x1 = MIN (width, bx + b);
        float mean = 0;
        for (int y = by; y < y1; y++)
          for (int x = bx; x < x1; x++)
            mean += plane[y * width + x];
        mean /= (float) ((y1 - by) * (x1 - bx));
        for (int y = by; y < y1; y++)
          for (int x = bx; x < x1; x++) {
            const float v = mean + keep * (plane[y * width + x] - mean);
            plane[y * width + x] = clampf (roundf (v * levels) / levels, 0, 1);
          }
      }
  }
}

/* Colour pictures (sets with alpha): the grey background becomes colour by a gain per channel (a
 * tinted light or wall), drawn once for every plane. */
static void
scene_tint (MoneTrainRng *rng, int planes, int height, int width, float *out)
{
  const size_t n = (size_t) height * width;
  for (int ch = 1; ch < planes; ch++)
    memcpy (out + ch * n, out, sizeof (float) * n);
  for (int ch = 0; ch < planes; ch++) {
    const float gain = uniform (rng, 0.75, 1.25);
    for (size_t i = 0; i < n; i++)
      out[ch * n + i] *= gain;
  }
}

/* Pastes picture `index` of a set with alpha into (x0, y0, w, h) of every plane: the pixels are
 * already composited over black, so out = out * (1 - alpha) + pixel. A fragment keeps only the
 * part inside the clip rectangle (cx0, cy0)-(cx1, cy1). */
static void
scene_paste_cutout (const MoneImageSet *set, int index, gboolean flip, float x0, float y0, float w, float h, float cx0,
    float cy0, float cx1, float cy1, int height, int width, float *out)
{
  const size_t plane = (size_t) set->rows * set->cols, frame = (size_t) height * width;
  const guint8 *alpha = set->alpha + (size_t) index * plane;
  const guint8 *pixels = set->pixels + (size_t) index * set->channels * plane;
  const int n = MAX (1, (int) ceilf (set->cols / MIN (w, h)));
  for (int y = MAX (0, (int) floorf (MAX (y0, cy0))); y < MIN (height, (int) ceilf (MIN (y0 + h, cy1))); y++)
    for (int x = MAX (0, (int) floorf (MAX (x0, cx0))); x < MIN (width, (int) ceilf (MIN (x0 + w, cx1))); x++) {
      const float a = mone_item_render_pixel (alpha, set->rows, set->cols, flip, x0, y0, w, h, n, x, y);
      for (int ch = 0; ch < set->channels; ch++) {
        const float v = mone_item_render_pixel (pixels + ch * plane, set->rows, set->cols, flip, x0, y0, w, h, n, x, y);
        float *o = out + ch * frame + (size_t) y * width + x;
        *o = *o * (1 - a) + v;
      }
    }
}

/* Fragments of other pictures, as scene_fragments draws them for grey items. */
static void
scene_fragments_cutout (const MoneImageSet *set, MoneTrainRng *rng, float item_h, float squeeze, int height, int width,
    float *out)
{
  const int n = (int) mone_train_rng_below (rng, 3);
  for (int f = 0; f < n; f++) {
    const int other = (int) mone_train_rng_below (rng, (uint32_t) set->count);
    const float h = item_h * uniform (rng, 0.4, 0.8), w = h * squeeze;
    const float x0 = uniform (rng, -0.5 * w, width - 0.5 * w), y0 = uniform (rng, -0.5 * h, height - 0.5 * h);
    const int half = (int) mone_train_rng_below (rng, 4);
    const float cx0 = half == 1 ? x0 + w / 2 : x0, cx1 = half == 0 ? x0 + w / 2 : x0 + w;
    const float cy0 = half == 3 ? y0 + h / 2 : y0, cy1 = half == 2 ? y0 + h / 2 : y0 + h;
    scene_paste_cutout (set, other, FALSE, x0, y0, w, h, cx0, cy0, cx1, cy1, height, width, out);
  }
}

/* The item onto the frame at (x0, y0, w, h): a picture with alpha by its alpha, a grey item
 * standing out from what lies behind it (darker on light, brighter on dark, either way on mid grey). */
static void
scene_item (const MoneImageSet *set, int index, MoneTrainRng *rng, gboolean flip, float x0, float y0, float w, float h,
    int height, int width, float *out)
{
  if (set->alpha) {
    scene_paste_cutout (set, index, flip, x0, y0, w, h, x0, y0, x0 + w, y0 + h, height, width, out);
    return;
  }
  const float level = scene_mean (out, height, width, x0, y0, w, h);
  const gboolean darker = level > 0.65f || (level > 0.35f && mone_train_rng_uniform (rng) < 0.5);
  const float contrast = (darker ? -1.0f : 1.0f) * uniform (rng, 0.6, 1.0);
  const guint8 *img = set->pixels + (size_t) index * set->rows * set->cols;
  scene_paste_item (img, set->rows, set->cols, flip, x0, y0, w, h, level, contrast, height, width, out);
}

/* What the camera and the codec do to the whole frame: tone, focus, sensor noise, blocks. */
static void
scene_camera (MoneTrainRng *rng, int planes, int height, int width, float *out)
{
  const int n = planes * height * width;
  for (int i = 0; i < n; i++)
    out[i] = clampf (out[i], 0, 1);
  scene_tone (rng, n, out);
  scene_blur (rng, planes, height, width, out);
  const float sigma = uniform (rng, 0.01, 0.06);
  for (int i = 0; i < n; i++)
    out[i] = clampf (out[i] + sigma * (float) mone_train_rng_normal (rng), 0, 1);
  scene_blocks (rng, planes, height, width, out);
}

/* Planes a camera frame of this set fills: grey items on black one (the caller replicates it),
 * pictures with alpha one per channel; 0 for a set or size the renderer cannot draw. */
static int
camera_planes (const MoneImageSet *set, int height, int width)
{
  g_return_val_if_fail ((set->alpha || set->channels == 1) && height <= MONE_SCENE_MAX_SIDE
          && width <= MONE_SCENE_MAX_SIDE,
      0);
  return set->alpha ? set->channels : 1;
}

void
mone_render_scene (const MoneImageSet *set, int index, MoneTrainRng *rng, gboolean augment, float aspect, int height,
    int width, float *out, MoneItemBox *box)
{
  const gboolean cutout = set->alpha != NULL;
  const int planes = camera_planes (set, height, width);
  if (!planes)
    return;
  float *plane = out; /* the first, where the background is drawn */
  if (aspect <= 0)
    aspect = scene_aspect (rng);
  /* Model pixels of width per model pixel of height for a square in the camera frame. */
  const float squeeze = (float) width / height / aspect;
  const float item_h = uniform (rng, SCENE_ITEM_MIN, SCENE_ITEM_MAX) * height, item_w = item_h * squeeze;

  scene_background (rng, height, width, plane);
  scene_texture (rng, height, width, plane);
  scene_shapes (rng, height, width, plane);
  if (cutout) {
    scene_tint (rng, planes, height, width, out);
    scene_fragments_cutout (set, rng, item_h, squeeze, height, width, out);
  } else {
    scene_fragments (set, rng, item_h, squeeze, height, width, plane);
  }

  float x0, y0;
  scene_place_item (rng, item_w, item_h, height, width, &x0, &y0);
  const gboolean flip = augment && mone_train_rng_uniform (rng) < 0.5;
  scene_item (set, index, rng, flip, x0, y0, item_w, item_h, height, width, out);
  *box = (MoneItemBox){ x0, y0, item_w, item_h };
  scene_camera (rng, planes, height, width, out);
}

void
mone_render_close_up (const MoneImageSet *set, int index, MoneTrainRng *rng, gboolean augment, int height, int width,
    float *out, MoneItemBox *box)
{
  const int planes = camera_planes (set, height, width);
  if (!planes)
    return;
  const float squeeze = (float) width / height / scene_aspect (rng);
  const float item_h = uniform (rng, CLOSE_UP_ITEM_MIN, CLOSE_UP_ITEM_MAX) * height, item_w = item_h * squeeze;

  scene_background (rng, height, width, out);
  if (set->alpha)
    scene_tint (rng, planes, height, width, out);
  const float x0 = (width - item_w) / 2 + uniform (rng, -CLOSE_UP_OFF_CENTRE, CLOSE_UP_OFF_CENTRE) * width;
  const float y0 = (height - item_h) / 2 + uniform (rng, -CLOSE_UP_OFF_CENTRE, CLOSE_UP_OFF_CENTRE) * height;
  const gboolean flip = augment && mone_train_rng_uniform (rng) < 0.5;
  scene_item (set, index, rng, flip, x0, y0, item_w, item_h, height, width, out);
  *box = (MoneItemBox){ x0, y0, item_w, item_h };
  scene_camera (rng, planes, height, width, out);
}
