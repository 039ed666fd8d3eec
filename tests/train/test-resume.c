/* Checkpoints resume exactly: a run interrupted after 7 steps and resumed from its checkpoint
 * writes the same model file, byte for byte, as the uninterrupted run with the same seed, also
 * with --self-distill and --min-budget-pass, with a hidden-layer router and with a convolutional stem; resuming with a different recipe (another seed,
 * --alpha-min, --self-distill, --max-sampled-budget, --min-budget-pass, the optimiser's settings) is
 * refused with a message naming what differs. A stop request (SIGINT in mone train) checkpoints and
 * resumes exactly. A run with
 * --alpha-min keeps alpha at or above it (free, alpha goes negative on this tiny recipe). The
 * per-step budget draws exactly the allowed budgets. */
#include "trainer.h"

#include "train-test-helpers.h"

#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static void
tiny_options (MoneTrainOptions *o)
{
  tiny_train_options (o, 10);
  o->seed = 5;
  o->epochs = 2;
  o->batch = 32;
  o->threads = 2;
  o->train_images = 256; /* 16 steps */
  o->log_every = 4;
  o->checkpoint_every = 3;
}

/* tiny_options writing `output`, checkpointing to and resuming from `checkpoint`. */
static void
resume_options (MoneTrainOptions *o, const char *output, const char *checkpoint)
{
  tiny_options (o);
  o->output = output;
  o->checkpoint = checkpoint;
  o->resume = TRUE;
}

/* A recipe that differs from the checkpoint's must not silently continue from it. */
static void
expect_resume_refused (const MoneTrainOptions *o, const char *what, const char *difference)
{
  GError *error = NULL;
  gboolean ok = mone_train_run (o, &error);
  gboolean refused = !ok && error && strstr (error->message, "was made with other options")
      && strstr (error->message, difference);
  report_row (refused, "resume with another %s: %s", what, error ? error->message : "accepted");
  g_clear_error (&error);
}

/* Over 2,000 steps the sampler draws every budget of {0.15, ..., 1.0} allowed by the options and
 * nothing else. */
static void
check_budget_sampler (gboolean self_distill, double max_sampled_budget, int expected_choices)
{
  MoneTrainOptions o;
  mone_train_options_init (&o);
  o.self_distill = self_distill;
  o.max_sampled_budget = max_sampled_budget;
  const double budgets[10] = { 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95, 1.0 };
  const double highest = self_distill ? MIN (max_sampled_budget, 0.95) : max_sampled_budget;
  int seen[10] = { 0 }, outside = 0;
  for (long step = 0; step < 2000; step++) {
    double e = mone_train_budget_for_step (&o, step);
    int index = 0;
    while (index < 10 && fabs (e - budgets[index]) > 1e-12)
      index++;
    if (index == 10 || e > highest + 1e-9)
      outside++;
    else
      seen[index]++;
  }
  int distinct = 0;
  for (int i = 0; i < 10; i++)
    distinct += seen[i] > 0;
  gboolean ok = outside == 0 && distinct == expected_choices;
  report_row (ok, "budget sampler (self-distill %d, max %.2f): %d distinct budgets (expected %d), %d outside",
      self_distill, max_sampled_budget, distinct, expected_choices, outside);
}

/* The tiny model changed by `shape` (key=value as mone train's arguments, e.g. router_hidden=6 or
 * stem=4,8; NULL: unchanged). */
static void
apply_shape (MoneTrainOptions *o, const char *shape)
{
  GError *error = NULL;
  if (shape)
    g_assert_true (mone_config_apply_override (&o->config, shape, NULL, &error));
  g_assert_no_error (error);
}

/* A --self-distill run (with the third pass if min_budget_pass, the model changed by `shape`)
 * interrupted after `interrupt_after`
 * steps and resumed must equal the uninterrupted run byte for byte, and differ from `other` (the
 * model of the recipe without this variant). The uninterrupted model goes to *model. */
static void
check_variant_resumes (const char *dir, const char *output, const char *checkpoint, gboolean min_budget_pass,
    const char *shape, int interrupt_after, const char *name, GBytes *other, const char *other_name, GBytes **model)
{
  GError *error = NULL;
  MoneTrainOptions o;
  resume_options (&o, output, checkpoint);
  o.self_distill = TRUE;
  o.min_budget_pass = min_budget_pass;
  apply_shape (&o, shape);
  o.max_steps = interrupt_after;
  gboolean ok = mone_train_run (&o, &error);
  o.max_steps = 0;
  ok = ok && mone_train_run (&o, &error);
  char *reference = g_build_filename (dir, "reference.safetensors", NULL);
  tiny_options (&o);
  o.output = reference;
  o.self_distill = TRUE;
  o.min_budget_pass = min_budget_pass;
  apply_shape (&o, shape);
  ok = ok && mone_train_run (&o, &error);
  char *resumed_data = NULL, *reference_data = NULL;
  gsize resumed_len = 0, reference_len = 0;
  ok = ok && g_file_get_contents (output, &resumed_data, &resumed_len, &error)
      && g_file_get_contents (reference, &reference_data, &reference_len, &error);
  g_unlink (reference);
  g_free (reference);
  if (!ok) {
    report_row (FALSE, "%s run: %s", name, error ? error->message : "?");
    g_clear_error (&error);
    g_free (resumed_data);
    g_free (reference_data);
    *model = g_bytes_new (NULL, 0);
    return;
  }
  *model = g_bytes_new_take (reference_data, reference_len);
  gboolean same = resumed_len == reference_len && memcmp (resumed_data, reference_data, reference_len) == 0;
  gboolean differs = !g_bytes_equal (*model, other);
  report_row (same && differs, "%s: resumed run %s the uninterrupted one; %s %s model", name,
      same ? "equals" : "differs from", differs ? "differs from" : "equals", other_name);
  g_free (resumed_data);
}

/* What the cases share, in the order they run: the uninterrupted run's model (made by the
 * first run case) is the reference of the later ones. */
static struct {
  char *dir, *a, *b, *ckpt;
  GBytes *uninterrupted;
} fixture;

static void
test_budget_sampler (void)
{
  check_budget_sampler (FALSE, 1.0, 10);
  check_budget_sampler (TRUE, 1.0, 9);
  check_budget_sampler (TRUE, 0.55, 5);
  check_budget_sampler (FALSE, 0.15, 1);
}

static GBytes *
file_bytes (const char *path)
{
  char *data = NULL;
  gsize len = 0;
  return g_file_get_contents (path, &data, &len, NULL) ? g_bytes_new_take (data, len) : g_bytes_new (NULL, 0);
}

static void
test_interrupted_equals_uninterrupted (void)
{
  GError *error = NULL;
  MoneTrainOptions o;
  tiny_options (&o);
  o.output = fixture.a;
  g_assert_true (mone_train_run (&o, &error));
  g_assert_no_error (error);
  fixture.uninterrupted = file_bytes (fixture.a);
  resume_options (&o, fixture.b, fixture.ckpt);
  o.max_steps = 7;
  g_assert_true (mone_train_run (&o, &error));
  g_assert_false (g_file_test (fixture.b, G_FILE_TEST_EXISTS)); /* not before the run finished */
  o.max_steps = 0;
  g_assert_true (mone_train_run (&o, &error));
  g_assert_no_error (error);
  GBytes *resumed = file_bytes (fixture.b);
  gboolean same = g_bytes_equal (resumed, fixture.uninterrupted);
  report_row (same, "interrupted + resumed run %s the uninterrupted one (%zu bytes)", same ? "equals" : "differs from",
      g_bytes_get_size (fixture.uninterrupted));
  g_bytes_unref (resumed);
}

/* A stop request (what mone train's SIGINT/SIGTERM handler sets) checkpoints after the current
 * step; resuming from there ends with the same model again. */
static void
test_stop_request (void)
{
  GError *error = NULL;
  MoneTrainOptions o;
  g_unlink (fixture.b);
  g_unlink (fixture.ckpt);
  volatile sig_atomic_t stop = 1;
  resume_options (&o, fixture.b, fixture.ckpt);
  o.stop_requested = &stop;
  gboolean stopped = !mone_train_run (&o, &error) && g_error_matches (error, MONE_ERROR, MONE_ERROR_INTERRUPTED)
      && strstr (error->message, "interrupted after step 1 of 16") && !g_file_test (fixture.b, G_FILE_TEST_EXISTS);
  report_row (stopped, "stop request: %s", error ? error->message : "not stopped");
  g_clear_error (&error);
  stop = 0;
  gboolean finished = mone_train_run (&o, &error);
  GBytes *resumed = file_bytes (fixture.b);
  gboolean same = finished && g_bytes_equal (resumed, fixture.uninterrupted);
  report_row (same, "stopped + resumed run %s the uninterrupted one", same ? "equals" : "differs from");
  g_clear_error (&error);
  g_bytes_unref (resumed);
}

static void
test_other_options_refused (void)
{
  MoneTrainOptions o;
  resume_options (&o, fixture.b, fixture.ckpt);
  o.seed = 6;
  expect_resume_refused (&o, "seed", "--seed 5 (now 6)");
  resume_options (&o, fixture.b, fixture.ckpt);
  o.alpha_min = 0.25;
  expect_resume_refused (&o, "alpha-min", "--alpha-min -inf (now 0.25)");
  resume_options (&o, fixture.b, fixture.ckpt);
  o.self_distill = TRUE;
  expect_resume_refused (&o, "--self-distill setting", "--self-distill 0 (now 1)");
  resume_options (&o, fixture.b, fixture.ckpt);
  o.max_sampled_budget = 0.55;
  expect_resume_refused (&o, "--max-sampled-budget", "--max-sampled-budget 1 (now 0.55)");
  resume_options (&o, fixture.b, fixture.ckpt);
  o.weight_decay = 0.5;
  o.label_smoothing = 0;
  expect_resume_refused (&o, "optimiser recipe", "--weight-decay 0.05 (now 0.5), --label-smoothing 0.1 (now 0)");
  /* The same command without --resume would start over and overwrite the checkpoint: refused. */
  resume_options (&o, fixture.b, fixture.ckpt);
  o.resume = FALSE;
  GError *error = NULL;
  GBytes *before = file_bytes (fixture.ckpt);
  gboolean refused = !mone_train_run (&o, &error) && error && strstr (error->message, "add --resume");
  GBytes *after = file_bytes (fixture.ckpt);
  report_row (refused && g_bytes_equal (before, after), "an existing checkpoint without --resume: %s",
      error ? error->message : "accepted");
  g_clear_error (&error);
  g_bytes_unref (before);
  g_bytes_unref (after);
}

/* Self-distillation (two passes per step) and the sandwich's third pass (--min-budget-pass) each
 * resume exactly too, and each trains a model of its own. */
static void
test_distill_variants (void)
{
  MoneTrainOptions o;
  GBytes *two_pass = NULL, *three_pass = NULL, *hidden_router = NULL, *stem = NULL;
  g_unlink (fixture.ckpt);
  check_variant_resumes (fixture.dir, fixture.b, fixture.ckpt, FALSE, NULL, 5, "self-distillation",
      fixture.uninterrupted, "the plain recipe's", &two_pass);
  resume_options (&o, fixture.b, fixture.ckpt);
  o.self_distill = o.min_budget_pass = TRUE;
  expect_resume_refused (&o, "--min-budget-pass setting", "--min-budget-pass 0 (now 1)");
  g_unlink (fixture.ckpt);
  check_variant_resumes (fixture.dir, fixture.b, fixture.ckpt, TRUE, NULL, 6, "min-budget pass", two_pass,
      "the two-pass", &three_pass);
  g_unlink (fixture.ckpt);
  check_variant_resumes (fixture.dir, fixture.b, fixture.ckpt, TRUE, "router_hidden=6", 7, "hidden-layer router",
      three_pass, "the one-layer router's", &hidden_router);
  /* Its checkpoint holds other tensors: a one-layer router's run must not continue from it. */
  resume_options (&o, fixture.b, fixture.ckpt);
  o.self_distill = o.min_budget_pass = TRUE;
  expect_resume_refused (&o, "model configuration (router_hidden)", "a different model configuration");
  /* A convolutional stem (two layers, 16x16 to 8x8x4 to 4x4x8, read as 1x1 patches) resumes exactly
   * too; its checkpoint is refused to a run without one, naming the stem. */
  g_unlink (fixture.ckpt);
  check_variant_resumes (fixture.dir, fixture.b, fixture.ckpt, TRUE, "stem=4,8", 6, "convolutional stem", three_pass,
      "the stemless", &stem);
  resume_options (&o, fixture.b, fixture.ckpt);
  o.self_distill = o.min_budget_pass = TRUE;
  expect_resume_refused (&o, "model configuration (stem)", "stem=4,8 (now none)");
  g_bytes_unref (two_pass);
  g_bytes_unref (three_pass);
  g_bytes_unref (hidden_router);
  g_bytes_unref (stem);
}

static float
trained_alpha (const char *path)
{
  GError *error = NULL;
  MoneModel *engine = mone_model_load_file (path, &error);
  MoneTrainModel *trained = engine ? mone_train_model_from_engine (engine, &error) : NULL;
  g_assert_no_error (error);
  const float alpha = trained->t.alpha[0];
  mone_train_model_free (trained);
  mone_model_unref (engine);
  return alpha;
}

/* Free alpha on this recipe ends below 0.25, so the bound has something to hold. */
static void
test_alpha_min (void)
{
  GError *error = NULL;
  MoneTrainOptions o;
  const float free_alpha = trained_alpha (fixture.a);
  tiny_options (&o);
  o.output = fixture.a;
  o.alpha_min = 0.25;
  g_assert_true (mone_train_run (&o, &error));
  g_assert_no_error (error);
  const float bounded_alpha = trained_alpha (fixture.a);
  report_row (free_alpha < 0.25f && bounded_alpha >= 0.25f, "alpha free %.4f, with --alpha-min 0.25 %.4f", free_alpha,
      bounded_alpha);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  GError *error = NULL;
  fixture.dir = g_dir_make_tmp ("mone-resume-XXXXXX", &error);
  g_assert_no_error (error);
  fixture.a = g_build_filename (fixture.dir, "a.safetensors", NULL);
  fixture.b = g_build_filename (fixture.dir, "b.safetensors", NULL);
  fixture.ckpt = g_build_filename (fixture.dir, "b.ckpt", NULL);
  g_test_add_func ("/train/resume/budget-sampler", test_budget_sampler);
  g_test_add_func ("/train/resume/interrupted-equals-uninterrupted", test_interrupted_equals_uninterrupted);
  g_test_add_func ("/train/resume/stop-request", test_stop_request);
  g_test_add_func ("/train/resume/other-options-refused", test_other_options_refused);
  g_test_add_func ("/train/resume/distill-variants", test_distill_variants);
  g_test_add_func ("/train/resume/alpha-min", test_alpha_min);
  int status = g_test_run ();
  g_unlink (fixture.a);
  g_unlink (fixture.b);
  g_unlink (fixture.ckpt);
  g_rmdir (fixture.dir);
  g_free (fixture.a);
  g_free (fixture.b);
  g_free (fixture.ckpt);
  g_free (fixture.dir);
  if (fixture.uninterrupted)
    g_bytes_unref (fixture.uninterrupted);
  return status;
}
