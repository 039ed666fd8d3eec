/* The scene render protocol (src/train/scene.c) and the lift and accuracy by item height `mone eval`
 * reports:
 *  - a scene is a pure function of (seed, index), pixels finite in [0, 1];
 *  - the item's box: 30-95% of the frame height, squeezed by the camera aspect (4:3, 16:9, 1:1) as a
 *    stretch to the model input does, at least 70% of it inside the frame, cut by an edge in about a
 *    fifth of the scenes; all three aspects, light and dark backgrounds occur;
 *  - the item stands out: inside its box the frame follows the item's own pixels;
 *  - close-ups: deterministic, the item at 60-100% of the height near the centre, every aspect;
 *  - a camera-aspect frame (mone_render_scene_frame) keeps the item square;
 *  - colour pictures with alpha (cut-outs) are pasted by their alpha, in colour, in scenes and close-ups;
 *  - the lift of the widest expert on the item: exactly 1 at e = 1 and on full frames, about 1 with
 *    random routing, well above 1 when routing by the item's box;
 *  - accuracy by item height: every image counted in the bin of its own render's box.
 * argv: none; needs Debian's dataset-fashion-mnist. */
#include "trainer.h"
#include "train-test-helpers.h"

#include <math.h>
#include <string.h>

#define SIDE 64

static MoneImageSet test_set;

static void
test_deterministic (void)
{
  float a[SIDE * SIDE], b[SIDE * SIDE];
  MoneItemBox box_a, box_b;
  mone_render_with_box (&test_set, 7, MONE_PROTOCOL_SCENE, 99, TRUE, 1, SIDE, SIDE, a, &box_a);
  mone_render_with_box (&test_set, 7, MONE_PROTOCOL_SCENE, 99, TRUE, 1, SIDE, SIDE, b, &box_b);
  g_assert_cmpmem (a, sizeof a, b, sizeof b);
  g_assert_cmpmem (&box_a, sizeof box_a, &box_b, sizeof box_b);
  mone_render (&test_set, 8, MONE_PROTOCOL_SCENE, 99, TRUE, 1, SIDE, SIDE, b);
  g_assert_true (memcmp (a, b, sizeof a) != 0);
  mone_render (&test_set, 7, MONE_PROTOCOL_SCENE, 100, TRUE, 1, SIDE, SIDE, b);
  g_assert_true (memcmp (a, b, sizeof a) != 0);
}

/* Pearson correlation of the frame inside the box with the item drawn alone into the same box. */
static double
item_correlation (const MoneImageSet *set, int index, const float *frame, const MoneItemBox *box)
{
  double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
  int n = 0;
  for (int y = MAX (0, (int) ceilf (box->y)); y < MIN (SIDE, (int) floorf (box->y + box->h)); y++)
    for (int x = MAX (0, (int) ceilf (box->x)); x < MIN (SIDE, (int) floorf (box->x + box->w)); x++) {
      const double u = (x + 0.5 - box->x) * set->cols / box->w - 0.5, v = (y + 0.5 - box->y) * set->rows / box->h - 0.5;
      const int iu = CLAMP ((int) lround (u), 0, set->cols - 1), iv = CLAMP ((int) lround (v), 0, set->rows - 1);
      const double item = set->pixels[(size_t) index * set->rows * set->cols + iv * set->cols + iu];
      const double f = frame[y * SIDE + x];
      sx += item, sy += f, sxx += item * item, syy += f * f, sxy += item * f, n++;
    }
  const double cov = sxy - sx * sy / n, vx = sxx - sx * sx / n, vy = syy - sy * sy / n;
  return vx > 0 && vy > 0 ? cov / sqrt (vx * vy) : 0;
}

static void
test_statistics (void)
{
  /* Under valgrind, which looks for memory errors, half the renders (the thresholds are per
   * render). */
  const int n = under_valgrind () ? 1000 : 2000;
  int aspect_seen[3] = { 0 }, cut = 0, light = 0, dark = 0, visible = 0;
  float frame[SIDE * SIDE];
  for (int i = 0; i < n; i++) {
    MoneItemBox box;
    mone_render_with_box (&test_set, i, MONE_PROTOCOL_SCENE, MONE_EVAL_RENDER_SEED, FALSE, 1, SIDE, SIDE, frame, &box);
    for (int k = 0; k < SIDE * SIDE; k++)
      g_assert_true (isfinite (frame[k]) && frame[k] >= 0 && frame[k] <= 1);
    g_assert_cmpfloat (box.h, >=, 0.30f * SIDE - 1e-3f);
    g_assert_cmpfloat (box.h, <=, 0.95f * SIDE + 1e-3f);
    /* The width of a square item in a stretched frame: h / aspect. */
    const float aspect = box.h / box.w;
    const float aspects[3] = { 4.0f / 3.0f, 16.0f / 9.0f, 1.0f };
    int which = -1;
    for (int a = 0; a < 3; a++)
      if (fabsf (aspect - aspects[a]) < 1e-3f)
        which = a;
    g_assert_cmpint (which, >=, 0);
    aspect_seen[which]++;
    const float inside_w = MIN (box.x + box.w, SIDE) - MAX (box.x, 0),
                inside_h = MIN (box.y + box.h, SIDE) - MAX (box.y, 0);
    g_assert_cmpfloat (inside_w, >=, 0.7f * box.w - 1e-3f);
    g_assert_cmpfloat (inside_h, >=, 0.7f * box.h - 1e-3f);
    cut += inside_w < box.w - 1e-3f || inside_h < box.h - 1e-3f;
    const float corner = (frame[0] + frame[SIDE - 1] + frame[(SIDE - 1) * SIDE] + frame[SIDE * SIDE - 1]) / 4;
    light += corner > 0.6f;
    dark += corner < 0.3f;
    visible += fabs (item_correlation (&test_set, i, frame, &box)) > 0.5;
  }
  g_test_message ("aspects 4:3 %d, 16:9 %d, 1:1 %d; cut %d, light corners %d, dark %d, item correlation > 0.5 %d of %d",
      aspect_seen[0], aspect_seen[1], aspect_seen[2], cut, light, dark, visible, n);
  for (int a = 0; a < 3; a++)
    g_assert_cmpint (aspect_seen[a], >, n / 10);
  g_assert_cmpint (cut, >, n / 10);
  g_assert_cmpint (cut, <, n / 3);
  g_assert_cmpint (light, >, n / 5);
  g_assert_cmpint (dark, >, n / 5);
  g_assert_cmpint (visible, >, n * 3 / 4);
}

/* Close-ups: a pure function of (seed, index); the item at 60-100% of the frame height, squeezed
 * by the camera aspect, its centre within 5% of the frame's; it is the frame's content. */
static void
test_close_up (void)
{
  const int n = under_valgrind () ? 250 : 1000;
  int aspect_seen[3] = { 0 }, visible = 0;
  float frame[SIDE * SIDE], again[SIDE * SIDE];
  for (int i = 0; i < n; i++) {
    MoneItemBox box, box_again;
    mone_render_with_box (&test_set, i, MONE_PROTOCOL_CLOSE_UP, MONE_EVAL_RENDER_SEED, FALSE, 1, SIDE, SIDE, frame,
        &box);
    mone_render_with_box (&test_set, i, MONE_PROTOCOL_CLOSE_UP, MONE_EVAL_RENDER_SEED, FALSE, 1, SIDE, SIDE, again,
        &box_again);
    g_assert_cmpmem (frame, sizeof frame, again, sizeof again);
    g_assert_cmpmem (&box, sizeof box, &box_again, sizeof box_again);
    for (int k = 0; k < SIDE * SIDE; k++)
      g_assert_true (isfinite (frame[k]) && frame[k] >= 0 && frame[k] <= 1);
    g_assert_cmpfloat (box.h, >=, 0.60f * SIDE - 1e-3f);
    g_assert_cmpfloat (box.h, <=, 1.00f * SIDE + 1e-3f);
    g_assert_cmpfloat (fabsf (box.x + box.w / 2 - SIDE / 2.0f), <=, 0.05f * SIDE + 1e-3f);
    g_assert_cmpfloat (fabsf (box.y + box.h / 2 - SIDE / 2.0f), <=, 0.05f * SIDE + 1e-3f);
    const float aspects[3] = { 4.0f / 3.0f, 16.0f / 9.0f, 1.0f };
    for (int a = 0; a < 3; a++)
      if (fabsf (box.h / box.w - aspects[a]) < 1e-3f)
        aspect_seen[a]++;
    visible += fabs (item_correlation (&test_set, i, frame, &box)) > 0.5;
  }
  g_test_message ("close-ups: aspects 4:3 %d, 16:9 %d, 1:1 %d; item correlation > 0.5 %d of %d", aspect_seen[0],
      aspect_seen[1], aspect_seen[2], visible, n);
  g_assert_cmpint (aspect_seen[0] + aspect_seen[1] + aspect_seen[2], ==, n);
  for (int a = 0; a < 3; a++)
    g_assert_cmpint (aspect_seen[a], >, n / 10);
  g_assert_cmpint (visible, >, n * 9 / 10);
}

static void
test_camera_frame (void)
{
  const int height = 48, width = 85; /* 16:9 */
  float *frame = g_new (float, height *width), *again = g_new (float, height *width);
  for (int i = 0; i < 50; i++) {
    MoneItemBox box;
    mone_render_scene_frame (&test_set, i, 5, height, width, frame, &box);
    g_assert_cmpfloat (fabsf (box.w - box.h), <, 1e-3f);
    g_assert_cmpfloat (box.h, >=, 0.30f * height - 1e-3f);
    mone_render_scene_frame (&test_set, i, 5, height, width, again, NULL);
    g_assert_cmpmem (frame, sizeof (float) * height * width, again, sizeof (float) * height * width);
  }
  g_free (frame);
  g_free (again);
}

/* A red disc on a transparent 16 x 16 picture, 3 channels, premultiplied. */
static MoneImageSet
red_disc_set (void)
{
  const int side = 16, count = 4;
  MoneImageSet set = { .count = count, .channels = 3, .rows = side, .cols = side };
  set.pixels = g_new0 (guint8, (size_t) count * 3 * side * side);
  set.labels = g_new0 (guint8, count);
  set.alpha = g_new0 (guint8, (size_t) count * side * side);
  for (int i = 0; i < count; i++)
    for (int y = 0; y < side; y++)
      for (int x = 0; x < side; x++) {
        const float dx = x + 0.5f - side / 2.0f, dy = y + 0.5f - side / 2.0f;
        if (dx * dx + dy * dy > 0.2f * side * side)
          continue;
        set.alpha[((size_t) i * side + y) * side + x] = 255;
        set.pixels[(((size_t) i * 3 + 0) * side + y) * side + x] = 255;
      }
  return set;
}

/* data: the protocol (scene or close-up). */
static void
test_cutout (gconstpointer data)
{
  const MoneProtocol protocol = (MoneProtocol) GPOINTER_TO_INT (data);
  MoneImageSet set = red_disc_set ();
  const size_t plane = SIDE * SIDE;
  float *frame = g_new (float, 3 * plane);
  double disc_red = 0, rest_red = 0, corner_grey = 0, around_grey = 0;
  int n_disc = 0, n_rest = 0, n_corner = 0, n_around = 0;
  for (int i = 0; i < 200; i++) {
    MoneItemBox box;
    mone_render_with_box (&set, i % set.count, protocol, 11, FALSE, 3, SIDE, SIDE, frame, &box);
    const float cx = box.x + box.w / 2, cy = box.y + box.h / 2;
    for (int y = 0; y < SIDE; y++)
      for (int x = 0; x < SIDE; x++) {
        const float u = (x + 0.5f - cx) / (box.w / 2), v = (y + 0.5f - cy) / (box.h / 2);
        const double redness = frame[y * SIDE + x]
            - 0.5 * (frame[plane + y * SIDE + x] + frame[2 * plane + y * SIDE + x]);
        const double grey = (frame[y * SIDE + x] + frame[plane + y * SIDE + x] + frame[2 * plane + y * SIDE + x]) / 3;
        const float r2 = u * u + v * v;
        if (r2 < 0.3f)
          disc_red += redness, n_disc++;
        else if (r2 > 1.2f * 1.2f * 2)
          rest_red += redness, n_rest++;
        /* The transparent corners of the picture's square, against the band just outside it. */
        if (fabsf (u) > 0.85f && fabsf (u) < 1 && fabsf (v) > 0.85f && fabsf (v) < 1)
          corner_grey += grey, n_corner++;
        else if (fabsf (u) > 1 && fabsf (u) < 1.2f && fabsf (v) > 1 && fabsf (v) < 1.2f)
          around_grey += grey, n_around++;
      }
  }
  disc_red /= MAX (n_disc, 1), rest_red /= MAX (n_rest, 1);
  corner_grey /= MAX (n_corner, 1), around_grey /= MAX (n_around, 1);
  g_test_message ("%s: redness inside the disc %.3f, elsewhere %.3f; grey in the transparent corners %.3f, around %.3f",
      mone_protocol_name (protocol), disc_red, rest_red, corner_grey, around_grey);
  g_assert_cmpfloat (disc_red, >, rest_red + 0.3);
  g_assert_cmpfloat (fabs (corner_grey - around_grey), <, 0.05);
  g_free (frame);
  mone_image_set_clear (&set);
}

static void
test_lift (void)
{
  MoneConfig c = { 0 };
  c.height = c.width = SIDE;
  c.channels = c.frames = c.tubelet = 1;
  c.patch = 8;
  c.dim = 32;
  c.depth = 1;
  c.heads = 2;
  c.mlp_dim = 64;
  c.experts = 3;
  c.classes = 10;
  c.delta = 2;
  c.beta = 10;
  c.ln_eps = 1e-6f;
  c.mean[0] = c.std[0] = 0.5f;
  GError *error = NULL;
  g_assert_true (mone_config_finalize (&c, &error));
  MoneTrainModel *model = mone_train_model_new (&c, &error);
  g_assert_nonnull (model);
  mone_train_model_init (model, 3);
  MoneEvalResult r;
  const int count = under_valgrind () ? 100 : 200;
  g_assert_true (
      mone_evaluate (model, &test_set, count, MONE_PROTOCOL_SCENE, 1, 1.0, MONE_ROUTING_EPR, 0, 2, &r, &error));
  g_assert_cmpfloat (fabs (r.widest_item_lift - 1), <, 1e-9);
  /* Accuracy by item height: each image in the bin of its own render's box, the bins adding up. */
  int want_by_height[MONE_EVAL_HEIGHT_BINS] = { 0 }, correct = 0;
  float *frame = g_new (float, SIDE * SIDE);
  for (int i = 0; i < count; i++) {
    MoneItemBox box;
    mone_render_with_box (&test_set, i, MONE_PROTOCOL_SCENE, 1, FALSE, 1, SIDE, SIDE, frame, &box);
    want_by_height[MIN (MONE_EVAL_HEIGHT_BINS - 1, (int) (box.h / SIDE * MONE_EVAL_HEIGHT_BINS))]++;
  }
  g_free (frame);
  for (int h = 0; h < MONE_EVAL_HEIGHT_BINS; h++) {
    g_assert_cmpint (r.total_by_height[h], ==, want_by_height[h]);
    g_assert_cmpint (r.correct_by_height[h], <=, r.total_by_height[h]);
    correct += r.correct_by_height[h];
  }
  g_assert_cmpint (correct, ==, r.correct);
  g_assert_cmpint (r.total_by_height[0] + r.total_by_height[1] + r.total_by_height[2], ==, 0);
  g_assert_true (
      mone_evaluate (model, &test_set, count, MONE_PROTOCOL_FULL_FRAME, 1, 0.5, MONE_ROUTING_EPR, 0, 2, &r, &error));
  g_assert_cmpfloat (fabs (r.widest_item_lift - 1), <, 1e-6);
  g_assert_cmpint (r.total_by_height[MONE_EVAL_HEIGHT_BINS - 1], ==, count);
  g_assert_true (
      mone_evaluate (model, &test_set, count, MONE_PROTOCOL_SCENE, 1, 0.5, MONE_ROUTING_RANDOM, 9, 2, &r, &error));
  g_test_message ("random routing lift %.3f", r.widest_item_lift);
  g_assert_cmpfloat (fabs (r.widest_item_lift - 1), <, 0.15);
  g_assert_true (
      mone_evaluate (model, &test_set, count, MONE_PROTOCOL_SCENE, 1, 0.5, MONE_ROUTING_ITEM_BOX, 0, 2, &r, &error));
  g_test_message ("item-box routing lift %.3f", r.widest_item_lift);
  g_assert_cmpfloat (r.widest_item_lift, >, 1.8);
  mone_train_model_free (model);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  GError *error = NULL;
  if (!mone_fashion_mnist_load (NULL, FALSE, &test_set, &error)) {
    g_printerr ("cannot read Fashion-MNIST: %s\n", error->message);
    return 1;
  }
  g_test_add_func ("/scene/deterministic", test_deterministic);
  g_test_add_func ("/scene/statistics", test_statistics);
  g_test_add_func ("/scene/close-up", test_close_up);
  g_test_add_func ("/scene/camera-frame", test_camera_frame);
  g_test_add_data_func ("/scene/cutout", GINT_TO_POINTER (MONE_PROTOCOL_SCENE), test_cutout);
  g_test_add_data_func ("/scene/cutout-close-up", GINT_TO_POINTER (MONE_PROTOCOL_CLOSE_UP), test_cutout);
  g_test_add_func ("/scene/lift", test_lift);
  int status = g_test_run ();
  mone_image_set_clear (&test_set);
  return status;
}
