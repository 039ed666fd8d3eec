/* A tiny MoNE model must memorise one small batch of real Fashion-MNIST images: after
 * OVERFIT_STEPS AdamW steps (budget sampled per step as in training, alpha learned, no label
 * smoothing) the mean cross-entropy is below 0.05 at e = 1 and below 0.15 at e = 0.5 (the smaller
 * experts have less capacity to memorise). */
#include "trainer.h"
#include "train-test-helpers.h"

#include <stdio.h>
#include <string.h>

#define OVERFIT_IMAGES 32
#define OVERFIT_STEPS 250

static void
test_memorise_batch (void)
{
  GError *error = NULL;
  MoneImageSet set;
  g_assert_true (mone_fashion_mnist_load (NULL, TRUE, &set, &error));
  g_assert_no_error (error);
  MoneConfig c = small_grey_config (2);
  MoneTrainModel *model = mone_train_model_new (&c, &error);
  g_assert_no_error (error);
  mone_train_model_init (model, 3);
  const size_t frame = 16 * 16;
  float *input = g_new (float, OVERFIT_IMAGES *frame);
  for (int i = 0; i < OVERFIT_IMAGES; i++)
    mone_render (&set, i, MONE_PROTOCOL_FULL_FRAME, 1, FALSE, 1, 16, 16, input + i * frame);
  const guint8 *labels = set.labels;
  MonePass *pass = mone_pass_new (&model->config, OVERFIT_IMAGES);
  float *grads = g_new (float, model->n_params), *m = g_new0 (float, model->n_params),
        *v = g_new0 (float, model->n_params);
  MoneTrainOptions opts;
  mone_train_options_init (&opts);
  double first_loss = 0;
  for (long step = 0; step < OVERFIT_STEPS; step++) {
    double budget = mone_train_budget_for_step (&opts, step);
    double loss = mone_pass_forward (pass, model, input, labels, OVERFIT_IMAGES, budget, MONE_ROUTING_EPR, 0, 0.0f);
    if (step == 0)
      first_loss = loss / OVERFIT_IMAGES;
    memset (grads, 0, sizeof (float) * model->n_params);
    mone_pass_backward (pass, model, 1.0f / OVERFIT_IMAGES, grads, NULL);
    mone_train_adamw_step (model, grads, m, v, 3e-3, 0.0, step + 1, 1.0);
  }
  const double budgets[] = { 1.0, 0.5 }, bounds[] = { 0.05, 0.15 };
  for (int b = 0; b < 2; b++) {
    double loss = mone_pass_forward (pass, model, input, labels, OVERFIT_IMAGES, budgets[b], MONE_ROUTING_EPR, 0, 0.0f)
        / OVERFIT_IMAGES;
    int correct = mone_pass_correct (pass, labels);
    gboolean ok = loss < bounds[b];
    report_row (ok, "e=%.1f: loss %.4f -> %.4f after %d steps (bound %.2f), %d/%d correct, alpha %+.3f", budgets[b],
        first_loss, loss, OVERFIT_STEPS, bounds[b], correct, OVERFIT_IMAGES, model->t.alpha[0]);
  }
  g_free (grads);
  g_free (m);
  g_free (v);
  g_free (input);
  mone_pass_free (pass);
  mone_train_model_free (model);
  mone_image_set_clear (&set);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/train/overfit/memorise-batch", test_memorise_batch);
  return g_test_run ();
}
