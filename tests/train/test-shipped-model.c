/* Regression guard for a shipped model: evaluated through the ENGINE (mone_model_load_file +
 * mone_context_run, one frame at a time) on a fixed subset of 2,000 test images per protocol at
 * e = 1 and e = 0.5, its accuracy must be within 1 point of the figures documented in
 * docs/training.md (lines "regression-figure MODEL PROTOCOL BUDGET ACCURACY", MODEL the file's
 * name without ".safetensors").
 * argv[1] = model, argv[2] = docs/training.md. */
#include "trainer.h"
#include "train-test-helpers.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SUBSET 2000
#define TOLERANCE 1.0

static const char *model_path, *docs_path;

static void
test_documented_figures (void)
{
  GError *error = NULL;
  char *docs = NULL;
  g_assert_true (g_file_get_contents (docs_path, &docs, NULL, &error));
  MoneModel *model = mone_model_load_file (model_path, &error);
  g_assert_no_error (error);
  MoneContext *ctx = mone_context_new (model, 2, &error);
  g_assert_no_error (error);
  MoneImageSet test;
  g_assert_true (mone_fashion_mnist_load (NULL, FALSE, &test, &error));
  g_assert_no_error (error);
  const MoneConfig *c = mone_model_get_config (model);
  float *frame = g_new (float, (size_t) c->channels * c->height * c->width);
  char *model_name = g_path_get_basename (model_path);
  if (g_str_has_suffix (model_name, ".safetensors"))
    model_name[strlen (model_name) - strlen (".safetensors")] = '\0';
  int figures = 0;
  char **lines = g_strsplit (docs, "\n", -1);
  for (int i = 0; lines[i]; i++) {
    char figure_model[64], protocol_name[32];
    double budget, documented;
    if (sscanf (lines[i], "regression-figure %63s %31s %lf %lf", figure_model, protocol_name, &budget,
            &documented)
            != 4
        || strcmp (figure_model, model_name) != 0)
      continue;
    MoneProtocol protocol;
    if (!mone_protocol_from_name (protocol_name, &protocol)) {
      report_row (FALSE, "unknown protocol '%s' in %s", protocol_name, docs_path);
      continue;
    }
    int correct = 0;
    for (int k = 0; k < SUBSET; k++) {
      mone_render (&test, k, protocol, MONE_EVAL_RENDER_SEED, FALSE, c->channels, c->height, c->width, frame);
      MoneResult r;
      g_assert_true (mone_context_run (ctx, frame, budget, &r, &error));
      correct += r.top_class == test.labels[k];
    }
    double acc = 100.0 * correct / SUBSET;
    report_row (fabs (acc - documented) <= TOLERANCE,
        "%-10s e=%.2f: %.2f%% on the first %d test images, "
        "documented %.2f%% (tolerance %.1f)",
        protocol_name, budget, acc, SUBSET, documented, TOLERANCE);
    figures++;
  }
  g_strfreev (lines);
  report_row (figures >= 4, "%d regression figures of %s found in %s (expected at least 4)", figures,
      model_name, docs_path);
  g_free (model_name);
  g_free (frame);
  g_free (docs);
  mone_image_set_clear (&test);
  mone_context_free (ctx);
  mone_model_unref (model);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (argc != 3) {
    g_printerr ("usage: %s MODEL DOCS\n", argv[0]);
    return 2;
  }
  model_path = argv[1];
  docs_path = argv[2];
  g_test_add_func ("/train/shipped-model/documented-figures", test_documented_figures);
  return g_test_run ();
}
