/* Checkpoints resume exactly: a run interrupted after 7 steps and resumed from its checkpoint
 * writes the same model file, byte for byte, as the uninterrupted run with the same seed, also
 * with --self-distill and --min-budget-pass; resuming with a different recipe (another seed,
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

/* A recipe that differs from the checkpoint's must not silently continue from it. 1 on failure. */
static int
expect_resume_refused (const MoneTrainOptions *o, const char *what, const char *difference)
{
  GError *error = NULL;
  gboolean ok = mone_train_run (o, &error);
  gboolean refused = !ok && error && strstr (error->message, "was made with other options")
      && strstr (error->message, difference);
  printf ("%s resume with another %s: %s\n", refused ? "ok  " : "FAIL", what, error ? error->message : "accepted");
  g_clear_error (&error);
  return !refused;
}

/* Over 2,000 steps the sampler draws every budget of {0.15, ..., 1.0} allowed by the options and
 * nothing else. 1 on failure. */
static int
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
  printf ("%s budget sampler (self-distill %d, max %.2f): %d distinct budgets (expected %d), %d outside\n",
      ok ? "ok  " : "FAIL", self_distill, max_sampled_budget, distinct, expected_choices, outside);
  return !ok;
}

/* A --self-distill run (with the third pass if min_budget_pass) interrupted after `interrupt_after`
 * steps and resumed must equal the uninterrupted run byte for byte, and differ from `other` (the
 * model of the recipe without this variant). The uninterrupted model goes to *model. 1 on failure. */
static int
check_variant_resumes (const char *dir, const char *output, const char *checkpoint, gboolean min_budget_pass,
    int interrupt_after, const char *name, GBytes *other, const char *other_name, GBytes **model)
{
  GError *error = NULL;
  MoneTrainOptions o;
  resume_options (&o, output, checkpoint);
  o.self_distill = TRUE;
  o.min_budget_pass = min_budget_pass;
  o.max_steps = interrupt_after;
  gboolean ok = mone_train_run (&o, &error);
  o.max_steps = 0;
  ok = ok && mone_train_run (&o, &error);
  char *reference = g_build_filename (dir, "reference.safetensors", NULL);
  tiny_options (&o);
  o.output = reference;
  o.self_distill = TRUE;
  o.min_budget_pass = min_budget_pass;
  ok = ok && mone_train_run (&o, &error);
  char *resumed_data = NULL, *reference_data = NULL;
  gsize resumed_len = 0, reference_len = 0;
  ok = ok && g_file_get_contents (output, &resumed_data, &resumed_len, &error)
      && g_file_get_contents (reference, &reference_data, &reference_len, &error);
  g_unlink (reference);
  g_free (reference);
  if (!ok) {
    printf ("FAIL %s run: %s\n", name, error ? error->message : "?");
    g_clear_error (&error);
    g_free (resumed_data);
    g_free (reference_data);
    *model = g_bytes_new (NULL, 0);
    return 1;
  }
  *model = g_bytes_new_take (reference_data, reference_len);
  gboolean same = resumed_len == reference_len && memcmp (resumed_data, reference_data, reference_len) == 0;
  gboolean differs = !g_bytes_equal (*model, other);
  printf ("%s %s: resumed run %s the uninterrupted one; %s %s model\n", same && differs ? "ok  " : "FAIL", name,
      same ? "equals" : "differs from", differs ? "differs from" : "equals", other_name);
  g_free (resumed_data);
  return !(same && differs);
}

int
main (void)
{
  GError *error = NULL;
  char *dir = g_dir_make_tmp ("mone-resume-XXXXXX", &error);
  g_assert_no_error (error);
  char *a = g_build_filename (dir, "a.safetensors", NULL), *b = g_build_filename (dir, "b.safetensors", NULL);
  char *ckpt = g_build_filename (dir, "b.ckpt", NULL);
  MoneTrainOptions o;
  int failures = 0;

  failures += check_budget_sampler (FALSE, 1.0, 10);
  failures += check_budget_sampler (TRUE, 1.0, 9);
  failures += check_budget_sampler (TRUE, 0.55, 5);
  failures += check_budget_sampler (FALSE, 0.15, 1);

  tiny_options (&o);
  o.output = a;
  if (!mone_train_run (&o, &error)) {
    printf ("FAIL uninterrupted run: %s\n", error->message);
    return 1;
  }
  resume_options (&o, b, ckpt);
  o.max_steps = 7;
  if (!mone_train_run (&o, &error) || g_file_test (b, G_FILE_TEST_EXISTS)) {
    printf ("FAIL interrupted run: %s\n", error ? error->message : "wrote the model before finishing");
    return 1;
  }
  o.max_steps = 0;
  if (!mone_train_run (&o, &error)) {
    printf ("FAIL resumed run: %s\n", error->message);
    return 1;
  }
  char *da = NULL, *db = NULL;
  gsize la = 0, lb = 0;
  g_file_get_contents (a, &da, &la, NULL);
  g_file_get_contents (b, &db, &lb, NULL);
  gboolean same = da && db && la == lb && memcmp (da, db, la) == 0;
  printf ("%s interrupted + resumed run %s the uninterrupted one (%zu bytes)\n", same ? "ok  " : "FAIL",
      same ? "equals" : "differs from", la);
  failures += !same;

  /* A stop request (what mone train's SIGINT/SIGTERM handler sets) checkpoints after the current
   * step; resuming from there ends with the same model again. */
  g_unlink (b);
  g_unlink (ckpt);
  volatile sig_atomic_t stop = 1;
  resume_options (&o, b, ckpt);
  o.stop_requested = &stop;
  gboolean stopped = !mone_train_run (&o, &error) && g_error_matches (error, MONE_ERROR, MONE_ERROR_INTERRUPTED)
      && strstr (error->message, "interrupted after step 1 of 16") && !g_file_test (b, G_FILE_TEST_EXISTS);
  printf ("%s stop request: %s\n", stopped ? "ok  " : "FAIL", error ? error->message : "not stopped");
  failures += !stopped;
  g_clear_error (&error);
  stop = 0;
  char *dc = NULL;
  gsize lc = 0;
  gboolean same_after_stop = mone_train_run (&o, &error) && g_file_get_contents (b, &dc, &lc, NULL) && lc == la
      && memcmp (dc, da, la) == 0;
  printf ("%s stopped + resumed run %s the uninterrupted one\n", same_after_stop ? "ok  " : "FAIL",
      same_after_stop ? "equals" : "differs from");
  failures += !same_after_stop;
  g_clear_error (&error);
  g_free (dc);

  resume_options (&o, b, ckpt);
  o.seed = 6;
  failures += expect_resume_refused (&o, "seed", "--seed 5 (now 6)");
  resume_options (&o, b, ckpt);
  o.alpha_min = 0.25;
  failures += expect_resume_refused (&o, "alpha-min", "--alpha-min -inf (now 0.25)");
  resume_options (&o, b, ckpt);
  o.self_distill = TRUE;
  failures += expect_resume_refused (&o, "--self-distill setting", "--self-distill 0 (now 1)");
  resume_options (&o, b, ckpt);
  o.max_sampled_budget = 0.55;
  failures += expect_resume_refused (&o, "--max-sampled-budget", "--max-sampled-budget 1 (now 0.55)");
  resume_options (&o, b, ckpt);
  o.weight_decay = 0.5;
  o.label_smoothing = 0;
  failures += expect_resume_refused (&o, "optimiser recipe", "--weight-decay 0.05 (now 0.5), --label-smoothing 0.1 (now 0)");

  /* Self-distillation (two passes per step) and the sandwich's third pass (--min-budget-pass) each
   * resume exactly too, and each trains a model of its own. */
  GBytes *plain = g_bytes_new (da, la), *two_pass = NULL, *three_pass = NULL;
  g_unlink (ckpt);
  failures += check_variant_resumes (dir, b, ckpt, FALSE, 5, "self-distillation", plain, "the plain recipe's",
      &two_pass);
  resume_options (&o, b, ckpt);
  o.self_distill = o.min_budget_pass = TRUE;
  failures += expect_resume_refused (&o, "--min-budget-pass setting", "--min-budget-pass 0 (now 1)");
  g_unlink (ckpt);
  failures += check_variant_resumes (dir, b, ckpt, TRUE, 6, "min-budget pass", two_pass, "the two-pass",
      &three_pass);
  g_bytes_unref (plain);
  g_bytes_unref (two_pass);
  g_bytes_unref (three_pass);

  /* Free alpha on this recipe ends below 0.25 (so the bound below has something to hold). */
  MoneModel *engine = mone_model_load_file (a, &error);
  MoneTrainModel *trained = engine ? mone_train_model_from_engine (engine, &error) : NULL;
  g_assert_no_error (error);
  const float free_alpha = trained->t.alpha[0];
  mone_train_model_free (trained);
  mone_model_unref (engine);
  tiny_options (&o);
  o.output = a;
  o.alpha_min = 0.25;
  if (!mone_train_run (&o, &error)) {
    printf ("FAIL run with alpha-min: %s\n", error->message);
    return 1;
  }
  engine = mone_model_load_file (a, &error);
  trained = engine ? mone_train_model_from_engine (engine, &error) : NULL;
  g_assert_no_error (error);
  const float bounded_alpha = trained->t.alpha[0];
  gboolean bounded = free_alpha < 0.25f && bounded_alpha >= 0.25f;
  printf ("%s alpha free %.4f, with --alpha-min 0.25 %.4f\n", bounded ? "ok  " : "FAIL", free_alpha,
      bounded_alpha);
  failures += !bounded;
  mone_train_model_free (trained);
  mone_model_unref (engine);

  g_unlink (a);
  g_unlink (b);
  g_unlink (ckpt);
  g_rmdir (dir);
  g_free (da);
  g_free (db);
  g_free (a);
  g_free (b);
  g_free (ckpt);
  g_free (dir);
  return failures ? 1 : 0;
}
