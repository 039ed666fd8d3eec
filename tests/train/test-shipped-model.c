/* Regression guard for the shipped model: evaluated through the ENGINE (mone_model_load_file +
 * mone_context_run, one frame at a time) on a fixed subset of 2,000 test images per protocol at
 * e = 1 and e = 0.5, its accuracy must be within 1 point of the figures documented in
 * docs/training.md (lines "regression-figure PROTOCOL BUDGET ACCURACY").
 * argv[1] = model, argv[2] = docs/training.md. */
#include "trainer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SUBSET 2000
#define TOLERANCE 1.0

int
main (int argc, char **argv)
{
  if (argc != 3) {
    fprintf (stderr, "usage: %s MODEL DOCS\n", argv[0]);
    return 2;
  }
  GError *error = NULL;
  char *docs = NULL;
  if (!g_file_get_contents (argv[2], &docs, NULL, &error)) {
    printf ("FAIL %s\n", error->message);
    return 1;
  }
  MoneModel *model = mone_model_load_file (argv[1], &error);
  if (!model) {
    printf ("FAIL %s\n", error->message);
    return 1;
  }
  MoneContext *ctx = mone_context_new (model, 2, &error);
  g_assert_no_error (error);
  MoneImageSet test;
  if (!mone_fashion_mnist_load (NULL, FALSE, &test, &error)) {
    printf ("FAIL %s\n", error->message);
    return 1;
  }
  const MoneConfig *c = mone_model_get_config (model);
  float *frame = g_new (float, (size_t) c->channels * c->height * c->width);
  int failures = 0, figures = 0;
  char **lines = g_strsplit (docs, "\n", -1);
  for (int i = 0; lines[i]; i++) {
    char protocol_name[32];
    double budget, documented;
    if (sscanf (lines[i], "regression-figure %31s %lf %lf", protocol_name, &budget, &documented) != 3)
      continue;
    MoneProtocol protocol;
    if (!mone_protocol_from_name (protocol_name, &protocol)) {
      printf ("FAIL unknown protocol '%s' in %s\n", protocol_name, argv[2]);
      failures++;
      continue;
    }
    int correct = 0;
    for (int k = 0; k < SUBSET; k++) {
      mone_render (&test, k, protocol, MONE_EVAL_RENDER_SEED, FALSE, c->channels, c->height, c->width, frame);
      MoneResult r;
      if (!mone_context_run (ctx, frame, budget, &r, &error)) {
        printf ("FAIL %s\n", error->message);
        return 1;
      }
      correct += r.top_class == test.labels[k];
    }
    double acc = 100.0 * correct / SUBSET;
    gboolean ok = fabs (acc - documented) <= TOLERANCE;
    printf ("%s %-10s e=%.2f: %.2f%% on the first %d test images, documented %.2f%% (tolerance %.1f)\n",
        ok ? "ok  " : "FAIL", protocol_name, budget, acc, SUBSET, documented, TOLERANCE);
    failures += !ok;
    figures++;
  }
  g_strfreev (lines);
  if (figures < 4) {
    printf ("FAIL only %d regression figures found in %s (expected 4)\n", figures, argv[2]);
    failures++;
  }
  g_free (frame);
  g_free (docs);
  mone_image_set_clear (&test);
  mone_context_free (ctx);
  mone_model_unref (model);
  return failures ? 1 : 0;
}
