/* Training from a model file's weights (`mone train --init`, MoneTrainOptions.init_path):
 *  - the run starts from the file's weights (a run that barely moves them ends next to them);
 *  - the file decides the architecture, even when the options say otherwise;
 *  - data with other classes gets a new head and keeps everything else;
 *  - a checkpoint remembers which model the run started from: resuming with another is refused;
 *  - the tool refuses architecture options beside --init, naming the option.
 * argv[1]: the `mone` tool. Needs Debian's dataset-fashion-mnist. */
#include "image-folder-fixtures.h"
#include "train-test-helpers.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

static const char *tool;
static char *tmpdir;

static char *
tmp_path (const char *name)
{
  return g_build_filename (tmpdir, name, NULL);
}

/* A tiny Fashion-MNIST model trained for a few steps: the starting point of the other tests. */
static char *
write_start_model (void)
{
  static char *path = NULL;
  if (path)
    return path;
  path = tmp_path ("start.safetensors");
  MoneTrainOptions o;
  tiny_train_options (&o, MONE_FASHION_MNIST_CLASSES);
  o.seed = 5, o.epochs = 1, o.batch = 32, o.threads = 1, o.train_images = 320, o.log_every = 1000;
  o.output = path;
  GError *error = NULL;
  g_assert_true (mone_train_run (&o, &error));
  g_assert_no_error (error);
  return path;
}

static MoneTrainModel *
load_train_model (const char *path)
{
  GError *error = NULL;
  MoneModel *engine = mone_model_load_file (path, &error);
  g_assert_no_error (error);
  MoneTrainModel *m = mone_train_model_from_engine (engine, &error);
  g_assert_no_error (error);
  mone_model_unref (engine);
  return m;
}

/* Largest difference between two models' tensors whose names start (or not) with a prefix. */
static double
max_difference (const MoneTrainModel *a, const MoneTrainModel *b, const char *prefix, gboolean with_prefix)
{
  double worst = 0;
  g_assert_cmpint (a->n_specs, ==, b->n_specs);
  for (int i = 0; i < a->n_specs; i++) {
    if (g_str_has_prefix (a->specs[i].name, prefix) != with_prefix)
      continue;
    g_assert_cmpint (a->specs[i].numel, ==, b->specs[i].numel);
    for (int64_t k = 0; k < a->specs[i].numel; k++)
      worst = fmax (worst, fabs (a->params[a->offsets[i] + k] - b->params[b->offsets[i] + k]));
  }
  return worst;
}

/* One step at a learning rate too small to move anything: the result is the starting point. */
static void
still_options (MoneTrainOptions *o, const char *init, const char *output)
{
  tiny_train_options (o, MONE_FASHION_MNIST_CLASSES);
  /* Deliberately another architecture: --init must override it. */
  o->config.dim = 32, o->config.mlp_dim = 64;
  g_assert_true (mone_config_finalize (&o->config, NULL));
  o->seed = 9, o->epochs = 1, o->batch = 32, o->threads = 1, o->train_images = 32, o->log_every = 1000;
  o->lr = 1e-12, o->min_lr = 0, o->weight_decay = 0;
  o->init_path = init;
  o->output = output;
}

static void
test_starts_from_weights (void)
{
  char *start = write_start_model (), *out = tmp_path ("still.safetensors");
  MoneTrainOptions o;
  still_options (&o, start, out);
  GError *error = NULL;
  g_assert_true (mone_train_run (&o, &error));
  g_assert_no_error (error);
  MoneTrainModel *a = load_train_model (start), *b = load_train_model (out);
  g_assert_cmpint (b->config.dim, ==, a->config.dim);
  g_assert_cmpfloat (max_difference (a, b, "", TRUE), <, 1e-6);
  mone_train_model_free (a);
  mone_train_model_free (b);
  g_unlink (out);
  g_free (out);
}

static void
test_new_head (void)
{
  char *start = write_start_model (), *out = tmp_path ("shapes.safetensors"), *dir = tmp_path ("shapes");
  fixture_write_shapes (dir, 12);
  MoneTrainOptions o;
  still_options (&o, start, out);
  o.images_dir = dir;
  o.in_frame_fraction = 0;
  o.train_images = 0;
  GError *error = NULL;
  g_assert_true (mone_train_run (&o, &error));
  g_assert_no_error (error);
  MoneTrainModel *a = load_train_model (start), *b = load_train_model (out);
  g_assert_cmpint (b->config.classes, !=, a->config.classes);
  g_assert_cmpfloat (max_difference (a, b, "head.", FALSE), <, 1e-6);
  mone_train_model_free (a);
  mone_train_model_free (b);
  g_unlink (out);
  g_free (out);
  g_free (dir);
}

static void
test_resume_needs_same_init (void)
{
  char *start = write_start_model (), *out = tmp_path ("resumed.safetensors"), *ckpt = tmp_path ("run.ckpt");
  MoneTrainOptions o;
  still_options (&o, start, out);
  o.train_images = 128;
  o.checkpoint = ckpt;
  o.resume = TRUE;
  o.max_steps = 1;
  GError *error = NULL;
  g_assert_true (mone_train_run (&o, &error));
  g_assert_no_error (error);
  /* The same run without --init: refused, naming the difference. */
  o.init_path = NULL;
  MoneTrainModel *a = load_train_model (start);
  o.config = a->config;
  mone_train_model_free (a);
  g_assert_false (mone_train_run (&o, &error));
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "--init another model (now none)"));
  g_clear_error (&error);
  g_unlink (ckpt);
  g_free (ckpt);
  g_free (out);
}

static void
test_tool_refuses_architecture (void)
{
  char *start = write_start_model (), *out = tmp_path ("x.safetensors"), *err = NULL;
  const char *args[] = { "train", "--init", start, "-o", out, "dim=32", NULL };
  int status = run_tool (tool, args, &err);
  g_assert_false (g_spawn_check_wait_status (status, NULL));
  g_assert_nonnull (strstr (err, "dim=32: with --init the model file decides the architecture"));
  g_free (err);
  const char *missing[] = { "train", "--init", "/nonexistent/model.safetensors", "-o", out, NULL };
  status = run_tool (tool, missing, &err);
  g_assert_false (g_spawn_check_wait_status (status, NULL));
  g_assert_nonnull (strstr (err, "/nonexistent/model.safetensors"));
  g_free (err);
  g_free (out);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (argc < 2) {
    g_printerr ("usage: %s MONE_TOOL\n", argv[0]);
    return 2;
  }
  tool = argv[1];
  GError *error = NULL;
  tmpdir = g_dir_make_tmp ("mone-init-XXXXXX", &error);
  g_assert_no_error (error);
  g_test_add_func ("/init/starts-from-weights", test_starts_from_weights);
  g_test_add_func ("/init/new-head", test_new_head);
  g_test_add_func ("/init/resume-needs-same-init", test_resume_needs_same_init);
  g_test_add_func ("/init/tool-refuses-architecture", test_tool_refuses_architecture);
  int status = g_test_run ();
  fixture_remove_tree (tmpdir);
  g_free (tmpdir);
  return status;
}
