/* Training on an image folder end to end. The folder: 3 classes of shapes (green-ish squares,
 * red-ish discs, blue-ish triangles on dark backgrounds; every seventh picture grey, every third
 * RGBA with a transparent background; 12-40 pixels a side, not square), 100 PNGs per class drawn
 * with cairo at test time: 270 training and 30 held-out images.
 *  - `mone train --images DIR ... channels=3` (argv[1] is the `mone` tool), a tiny model (16x16,
 *    patch 4, D 32, depth 2, E 4) for 85 steps, prints the folder and its validation line;
 *  - the written model loads in the engine with the folder's class names as labels, and both the
 *    engine (e = 1) and the trainer's forward (e = 1 and the smallest budget 0.125) classify the 30
 *    held-out images at >= 70% (chance is 33.3%; about 90% measured);
 *  - a run interrupted after 5 steps and resumed writes the same bytes as the uninterrupted run
 *    (library, channels=1, so the luma path trains too), also from a checkpoint without the
 *    trailer naming the classes; a resume with a class folder renamed is refused. */
#include "image-folder-fixtures.h"
#include "train-test-helpers.h"
#include "trainer.h"

#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIN_ACCURACY 70.0 /* percent of the 30 held-out images; chance 33.3 */

/* Accuracy (percent) of the engine itself at e = 1 on the held-out images, rendered as mone eval
 * renders them. */
static double
engine_accuracy (MoneModel *engine, const MoneImageSet *val)
{
  const MoneConfig *c = mone_model_get_config (engine);
  GError *error = NULL;
  MoneContext *ctx = mone_context_new (engine, 1, &error);
  g_assert_no_error (error);
  float *input = g_new (float, (size_t) c->channels * c->height * c->width);
  int correct = 0;
  for (int i = 0; i < val->count; i++) {
    mone_render (val, i, MONE_PROTOCOL_FULL_FRAME, MONE_EVAL_RENDER_SEED, FALSE, c->channels, c->height, c->width,
        input);
    MoneResult r;
    g_assert (mone_context_run (ctx, input, 1.0, &r, &error));
    correct += r.top_class == val->labels[i];
  }
  g_free (input);
  mone_context_free (ctx);
  return 100.0 * correct / val->count;
}

static void
check_cli_training (const char *tool, const char *dir, const char *model_path)
{
  const char *argv[] = { tool, "train", "--images", dir, "--batch", "32", "--epochs", "10", "--lr", "3e-3", "--threads",
    "2", "--seed", "1", "--log-every", "40", "-o", model_path, "--config", "small32", "channels=3", "height=16",
    "width=16", "patch=4", "dim=32", "depth=2", "heads=2", "mlp_dim=128", "experts=4", NULL };
  char *err = NULL;
  int status = 0;
  GError *error = NULL;
  gint64 t0 = g_get_monotonic_time ();
  g_assert (
      g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, &err, &status, &error));
  printf ("%s", err);
  char took[64];
  g_snprintf (took, sizeof took, "%.1f s", (g_get_monotonic_time () - t0) / 1e6);
  check (g_spawn_check_wait_status (status, NULL), "mone train --images runs", took);
  check (strstr (err, "3 classes (Square, circle, triangle), 300 images at 16x16x3: 270 training, 30 validation")
          != NULL,
      "it describes the folder", NULL);
  check (strstr (err, "validation (30 held-out training images): full e=1.00") != NULL && !strstr (err, " in e="),
      "it reports full-frame validation", NULL);
  /* 85 steps learn this easy folder, but a user's folder would not: the run says how to lengthen it. */
  check (strstr (err,
             "warning: only 85 training steps; a model learns little in fewer than 500: give --epochs 63 or "
             "more")
          != NULL,
      "it warns that the run is short, naming --epochs", NULL);
  g_free (err);

  MoneModel *engine = mone_model_load_file (model_path, &error);
  check (engine != NULL, "the model loads in the engine", error ? error->message : NULL);
  if (!engine)
    return;
  const MoneConfig *c = mone_model_get_config (engine);
  gboolean labels_ok = c->classes == 3 && c->channels == 3 && c->height == 16;
  for (int k = 0; labels_ok && k < 3; k++)
    labels_ok = !strcmp (mone_model_get_label (engine, k), fixture_shape_classes[k]);
  check (labels_ok, "16x16x3, 3 classes labelled Square, circle, triangle", NULL);

  MoneImageFolder folder;
  g_assert (mone_image_folder_load (dir, c->height, c->width, c->channels, &folder, &error));
  MoneImageSet val = mone_image_folder_val_set (&folder);
  MoneTrainModel *model = mone_train_model_from_engine (engine, &error);
  g_assert_no_error (error);
  const double budgets[] = { 1.0, mone_model_min_budget (engine) };
  for (size_t b = 0; b < G_N_ELEMENTS (budgets); b++) {
    MoneEvalResult r;
    g_assert (mone_evaluate (model, &val, val.count, MONE_PROTOCOL_FULL_FRAME, MONE_EVAL_RENDER_SEED, budgets[b],
        MONE_ROUTING_EPR, 0, 2, &r, &error));
    double accuracy = 100.0 * r.correct / r.total;
    char what[96], detail[64];
    g_snprintf (what, sizeof what, "held-out accuracy at e = %.3f >= %.0f%%", budgets[b], MIN_ACCURACY);
    g_snprintf (detail, sizeof detail, "%.2f%% (%d of %d)", accuracy, r.correct, r.total);
    check (accuracy >= MIN_ACCURACY, what, detail);
  }
  double accuracy = engine_accuracy (engine, &val);
  char detail[32];
  g_snprintf (detail, sizeof detail, "%.2f%%", accuracy);
  check (accuracy >= MIN_ACCURACY, "the engine's held-out accuracy at e = 1 >= 70%", detail);
  mone_train_model_free (model);
  mone_image_folder_clear (&folder);
  mone_model_unref (engine);
}

static void
grey_options (MoneTrainOptions *o, const char *dir)
{
  tiny_train_options (o, 2);
  o->images_dir = dir;
  o->in_frame_fraction = 0;
  o->seed = 3;
  o->epochs = 2;
  o->batch = 32;
  o->threads = 2;
  o->log_every = 100;
  o->checkpoint_every = 3;
}

/* `mone eval RUN.ckpt --images DIR`: a checkpoint keeps no class names, the folder's are taken. */
static void
check_eval_checkpoint (const char *tool, const char *dir, const char *checkpoint)
{
  const char *argv[] = { tool, "eval", checkpoint, "--images", dir, "--split", "val", "-n", "20", "-b", "1",
    "--no-random", NULL };
  char *err = NULL;
  int status = 0;
  GError *error = NULL;
  gboolean ran = g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, &err, &status,
      &error);
  check (ran && g_spawn_check_wait_status (status, NULL), "mone eval on a checkpoint of an image-folder run",
      err         ? err
          : error ? error->message
                  : NULL);
  g_clear_error (&error);
  g_free (err);
}

/* The run of o, stopped, is resumed with a class folder renamed ("Square" to "square": the same
 * counts, another name and another class order): refused, naming the classes. */
static void
check_resume_refused_renamed_class (const MoneTrainOptions *o, const char *dir)
{
  char *from = g_build_filename (dir, fixture_shape_classes[0], NULL);
  char *to = g_build_filename (dir, "square", NULL);
  GError *error = NULL;
  g_assert_cmpint (g_rename (from, to), ==, 0);
  gboolean refused = !mone_train_run (o, &error) && error && strstr (error->message, "classes with other names");
  check (refused, "a resume with a class folder renamed is refused", error ? error->message : "it resumed");
  g_clear_error (&error);
  g_assert_cmpint (g_rename (to, from), ==, 0);
  g_free (from);
  g_free (to);
}

static void
check_resume (const char *tool, const char *dir, const char *tmpdir)
{
  char *whole = g_build_filename (tmpdir, "whole.safetensors", NULL);
  char *resumed = g_build_filename (tmpdir, "resumed.safetensors", NULL);
  char *checkpoint = g_build_filename (tmpdir, "run.ckpt", NULL);
  MoneTrainOptions o;
  GError *error = NULL;
  grey_options (&o, dir);
  o.output = whole;
  gboolean ok = mone_train_run (&o, &error);
  check (ok, "grey run (library)", error ? error->message : NULL);
  g_clear_error (&error);
  grey_options (&o, dir);
  o.output = resumed;
  o.checkpoint = checkpoint;
  o.resume = TRUE;
  o.max_steps = 5;
  ok = ok && mone_train_run (&o, &error);
  o.max_steps = 0;
  check_resume_refused_renamed_class (&o, dir);
  /* A checkpoint from before the trailer naming the classes (the same bytes without it) resumes. */
  struct stat st;
  ok = ok && g_stat (checkpoint, &st) == 0 && truncate (checkpoint, st.st_size - 16) == 0;
  ok = ok && mone_train_run (&o, &error);
  check (ok, "grey run stopped after 5 steps and resumed", error ? error->message : NULL);
  g_clear_error (&error);
  char *a = NULL, *b = NULL;
  gsize na = 0, nb = 0;
  gboolean same = ok && g_file_get_contents (whole, &a, &na, NULL) && g_file_get_contents (resumed, &b, &nb, NULL)
      && na == nb && memcmp (a, b, na) == 0;
  check (same, "the resumed run writes the same model bytes", NULL);
  check_eval_checkpoint (tool, dir, checkpoint);
  g_free (a);
  g_free (b);
  g_unlink (whole);
  g_unlink (resumed);
  g_unlink (checkpoint);
  g_free (whole);
  g_free (resumed);
  g_free (checkpoint);
}

/* Pictures pasted into scenes and close-ups by their alpha, with the router taught where they are:
 * the run completes and learns something else than the full-frame run with the same seed. */
static void
check_scenes (const char *dir, const char *tmpdir)
{
  char *plain = g_build_filename (tmpdir, "plain.safetensors", NULL);
  char *scenes = g_build_filename (tmpdir, "scenes.safetensors", NULL);
  MoneTrainOptions o;
  GError *error = NULL;
  grey_options (&o, dir);
  o.epochs = 1;
  o.output = plain;
  gboolean ok = mone_train_run (&o, &error);
  grey_options (&o, dir);
  o.epochs = 1;
  o.output = scenes;
  o.scene_fraction = 0.4;
  o.close_up_fraction = 0.2;
  o.router_item_weight = 0.3;
  ok = ok && mone_train_run (&o, &error);
  check (ok, "an image folder trains on scenes and close-ups with router supervision", error ? error->message : NULL);
  g_clear_error (&error);
  char *a = NULL, *b = NULL;
  gsize na = 0, nb = 0;
  gboolean differ = ok && g_file_get_contents (plain, &a, &na, NULL) && g_file_get_contents (scenes, &b, &nb, NULL)
      && (na != nb || memcmp (a, b, na) != 0);
  check (differ, "scene and close-up samples change what the run learns", NULL);
  g_free (a);
  g_free (b);
  g_unlink (plain);
  g_unlink (scenes);
  g_free (plain);
  g_free (scenes);
}

/* What the cases share: the command under test and a folder of 100 drawn shapes per class. */
static struct {
  const char *tool;
  char *tmpdir, *dir, *model_path;
} fixture;

static void
test_cli_training (void)
{
  check_cli_training (fixture.tool, fixture.dir, fixture.model_path);
}

static void
test_resume (void)
{
  check_resume (fixture.tool, fixture.dir, fixture.tmpdir);
}

static void
test_scenes (void)
{
  check_scenes (fixture.dir, fixture.tmpdir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (argc < 2) {
    g_printerr ("usage: %s MONE_TOOL\n", argv[0]);
    return 2;
  }
  GError *error = NULL;
  fixture.tool = argv[1];
  fixture.tmpdir = g_dir_make_tmp ("mone-image-train-XXXXXX", &error);
  g_assert_no_error (error);
  fixture.dir = g_build_filename (fixture.tmpdir, "shapes", NULL);
  fixture.model_path = g_build_filename (fixture.tmpdir, "shapes.safetensors", NULL);
  fixture_write_shapes (fixture.dir, 100);
  g_test_add_func ("/train/image-folder-train/cli-training", test_cli_training);
  g_test_add_func ("/train/image-folder-train/resume", test_resume);
  g_test_add_func ("/train/image-folder-train/scenes", test_scenes);
  int status = g_test_run ();
  fixture_remove_tree (fixture.tmpdir);
  g_free (fixture.model_path);
  g_free (fixture.dir);
  g_free (fixture.tmpdir);
  return status;
}
