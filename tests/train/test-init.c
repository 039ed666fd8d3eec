/* Training from a model file's weights (`mone train --init`, MoneTrainOptions.init_path):
 *  - the run starts from the file's weights (a run that barely moves them ends next to them);
 *  - the file decides the architecture, even when the options say otherwise;
 *  - data with other classes gets a new head and keeps everything else;
 *  - a checkpoint remembers which model the run started from: resuming with another is refused;
 *  - the tool refuses architecture options beside --init, naming the option;
 *  - --principal-axes keeps what the full model computes and puts the stream's variance in the
 *    leading channels, the ones the nested experts use;
 *  - --frozen-teacher changes what the budgets learn, is kept in the checkpoint, and is refused
 *    where there is no teacher for the data's classes.
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

/* Logits of a model at budget 1 on `count` images of set, full frames (count <= 32). */
static float *
full_width_logits (const MoneTrainModel *model, const MoneImageSet *set, int count)
{
  const MoneConfig *c = &model->config;
  const size_t frame = (size_t) c->channels * c->height * c->width;
  float *input = g_new (float, count *frame), *logits = g_new (float, count * c->classes);
  for (int i = 0; i < count; i++)
    mone_render (set, i, MONE_PROTOCOL_FULL_FRAME, 0, FALSE, c->channels, c->height, c->width, input + i * frame);
  MonePass *pass = mone_pass_new (c, count);
  mone_pass_forward (pass, model, input, NULL, count, 1.0, MONE_ROUTING_EPR, 0, 0);
  memcpy (logits, mone_pass_logits (pass), sizeof (float) * count * c->classes);
  mone_pass_free (pass);
  g_free (input);
  return logits;
}

/* Share of the residual stream's (centred) variance on the first `lead` channels. */
static double
leading_share (const MoneTrainModel *model, const MoneImageSet *set, int lead)
{
  const MoneConfig *c = &model->config;
  const size_t frame = (size_t) c->channels * c->height * c->width;
  const int count = 32, D = c->dim;
  float *input = g_new (float, count *frame);
  for (int i = 0; i < count; i++)
    mone_render (set, i, MONE_PROTOCOL_FULL_FRAME, 0, FALSE, c->channels, c->height, c->width, input + i * frame);
  MonePass *pass = mone_pass_new (c, count);
  mone_pass_forward (pass, model, input, NULL, count, 1.0, MONE_ROUTING_EPR, 0, 0);
  double *moments = g_new0 (double, (size_t) D *D), lead_sum = 0, all = 0;
  mone_pass_add_residual_moments (pass, moments);
  for (int d = 0; d < D; d++) {
    all += moments[(size_t) d * D + d];
    lead_sum += d < lead ? moments[(size_t) d * D + d] : 0;
  }
  mone_pass_free (pass);
  g_free (moments);
  g_free (input);
  return lead_sum / all;
}

/* A LayerNorm's scale in [0.3, 2.3) and its shift normal: far from the identity it starts as. */
static void
perturb_layernorm (float *scale, float *shift, int D, MoneTrainRng *rng)
{
  for (int d = 0; d < D; d++) {
    scale[d] = (float) (0.3 + 2 * mone_train_rng_uniform (rng));
    shift[d] = (float) mone_train_rng_normal (rng);
  }
}

/* One model of each pooling kind and one with a convolutional stem (outside the stream: the
 * rotation leaves it alone but turns the patch embedding that reads it), LayerNorms with scales and shifts far from 1 and 0 (so that
 * folding them matters) and alpha 0 (the gate, the one thing the router's lost mean would move,
 * is then 1): the same logits after the rotation, and the variance moved to the leading channels. */
static void
test_principal_axes (void)
{
  MoneImageSet train;
  GError *error = NULL;
  g_assert_true (mone_fashion_mnist_load (NULL, TRUE, &train, &error));
  g_assert_no_error (error);
  MoneImageSet images = mone_image_set_slice (&train, 0, 64);
  for (int variant = 0; variant < 3; variant++) {
    MoneConfig c = small_grey_config (2);
    c.pool = variant == 1 ? MONE_POOL_CLS : MONE_POOL_MEAN;
    if (variant == 2)
      c.stem_layers = 2, c.stem_channels[0] = 4, c.stem_channels[1] = 8;
    g_assert_true (mone_config_finalize (&c, NULL));
    MoneTrainModel *model = mone_train_model_new (&c, &error);
    g_assert_no_error (error);
    mone_train_model_init (model, 3);
    MoneTrainRng rng;
    mone_train_rng_seed (&rng, 11, 0);
    for (int l = 0; l < c.depth; l++) {
      perturb_layernorm (model->t.blocks[l].norm1_weight, model->t.blocks[l].norm1_bias, c.dim, &rng);
      perturb_layernorm (model->t.blocks[l].norm2_weight, model->t.blocks[l].norm2_bias, c.dim, &rng);
    }
    perturb_layernorm (model->t.norm_weight, model->t.norm_bias, c.dim, &rng);
    /* Some channels far louder than others, the way trained models have them. */
    const int P = mone_patch_inputs (&c);
    for (int d = 0; d < c.dim; d += 5)
      for (int p = 0; p < P; p++)
        model->t.patch_embed_weight[(size_t) d * P + p] *= 20;
    model->t.alpha[0] = 0;

    float *before = full_width_logits (model, &images, 16);
    const double share_before = leading_share (model, &images, c.dim / 4);
    g_assert_true (mone_train_model_rotate_principal (model, &images, &error));
    g_assert_no_error (error);
    float *after = full_width_logits (model, &images, 16);
    const double share_after = leading_share (model, &images, c.dim / 4);
    double scale = 0, worst = 0;
    for (int i = 0; i < 16 * c.classes; i++) {
      scale = fmax (scale, fabs (before[i]));
      worst = fmax (worst, fabs (after[i] - before[i]));
    }
    g_test_message ("pool %d, stem %d layers: |dlogit| %.3g of %.3g; variance on the first quarter %.3f -> %.3f",
        c.pool, c.stem_layers, worst, scale, share_before, share_after);
    g_assert_cmpfloat (worst, <=, 1e-4 * scale);
    g_assert_cmpfloat (share_after, >, share_before + 0.2);
    g_free (before);
    g_free (after);
    mone_train_model_free (model);
  }
  mone_image_set_clear (&train);
}

static void
test_tool_principal_axes_needs_init (void)
{
  char *out = tmp_path ("y.safetensors");
  const char *args[] = { "train", "--principal-axes", "-o", out, NULL };
  expect_tool_error ("--principal-axes without --init", tool, args, "--principal-axes turns the --init model");
  g_free (out);
}

/* A few steps of self-distillation from the start model, with its own predictions as the frozen
 * teacher or the full model's: the targets differ, so the weights do. */
static void
test_frozen_teacher (void)
{
  char *start = write_start_model (), *own = tmp_path ("own.safetensors"), *frozen = tmp_path ("frozen.safetensors");
  char *ckpt = tmp_path ("frozen.ckpt");
  MoneTrainOptions o;
  still_options (&o, start, own);
  o.lr = 1e-3, o.min_lr = 1e-3, o.train_images = 128, o.self_distill = TRUE;
  GError *error = NULL;
  g_assert_true (mone_train_run (&o, &error));
  g_assert_no_error (error);
  o.output = frozen;
  o.frozen_teacher = TRUE;
  o.checkpoint = ckpt;
  g_assert_true (mone_train_run (&o, &error));
  g_assert_no_error (error);
  MoneTrainModel *a = load_train_model (own), *b = load_train_model (frozen);
  const double moved = max_difference (a, b, "", TRUE);
  g_test_message ("largest difference between the two runs: %g", moved);
  g_assert_cmpfloat (moved, >, 1e-5);
  mone_train_model_free (a);
  mone_train_model_free (b);

  /* Resuming without it is another run. */
  o.frozen_teacher = FALSE;
  o.resume = TRUE;
  g_assert_false (mone_train_run (&o, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "--frozen-teacher 1 (now 0)"));
  g_clear_error (&error);

  /* Other classes: the start model cannot teach them. */
  char *dir = tmp_path ("shapes-teacher");
  fixture_write_shapes (dir, 12);
  still_options (&o, start, own);
  o.images_dir = dir, o.in_frame_fraction = 0, o.train_images = 0, o.self_distill = TRUE, o.frozen_teacher = TRUE;
  g_assert_false (mone_train_run (&o, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "--frozen-teacher: the --init model's classes are not the data's"));
  g_clear_error (&error);

  /* No starting model, or no self-distillation to teach: refused before any work. */
  still_options (&o, start, own);
  o.self_distill = TRUE, o.frozen_teacher = TRUE, o.init_path = NULL;
  g_assert_false (mone_train_run (&o, &error));
  g_assert_nonnull (strstr (error->message, "--frozen-teacher teaches from the --init model"));
  g_clear_error (&error);
  o.init_path = start, o.self_distill = FALSE;
  g_assert_false (mone_train_run (&o, &error));
  g_assert_nonnull (strstr (error->message, "add --self-distill"));
  g_clear_error (&error);

  const char *args[] = { "train", "--init", start, "--frozen-teacher", "-o", own, NULL };
  expect_tool_error ("--frozen-teacher without --self-distill", tool, args, "add --self-distill");
  g_unlink (own);
  g_unlink (frozen);
  g_unlink (ckpt);
  g_free (own);
  g_free (frozen);
  g_free (ckpt);
  g_free (dir);
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
  g_test_add_func ("/init/principal-axes", test_principal_axes);
  g_test_add_func ("/init/tool-principal-axes-needs-init", test_tool_principal_axes_needs_init);
  g_test_add_func ("/init/frozen-teacher", test_frozen_teacher);
  int status = g_test_run ();
  fixture_remove_tree (tmpdir);
  g_free (tmpdir);
  return status;
}
