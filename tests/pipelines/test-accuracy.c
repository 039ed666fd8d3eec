/* End-to-end accuracy through an encoded video matches the engine on the same items.
 *
 * Renders ITEMS Fashion-MNIST test items (FRAMES_PER_ITEM frames each) into a VP8/WebM sample
 * video with mone-sample-video, plays it through
 *   filesrc ! decodebin ! videoconvert ! monefilter scale-mode=crop ! fakesink
 * and compares, per budget, the accuracy of the per-item predictions (majority of the item's
 * frames, pipelines/sample-labels.h) with the accuracy of the engine on the same items rendered
 * by the full-frame protocol at the model's input size (mone_render + mone_context_run: exactly
 * what `mone eval` does for the full-frame test set, restricted to these items). The two must be
 * within TOLERANCE_POINTS. What differs between them is the real path a camera or file takes:
 * upscaling to the frame, 4:2:0 colour and VP8 compression, decoding, and the element's own
 * crop and downscale. 1,000 items make one point ten items.
 *
 * Measured (shipped model of 3753f2e, monefilter of 23691cd): video 78.6% vs engine 79.7% at e = 1
 * (-1.1, fails), 76.6% vs 77.0% at e = 0.5; per-item agreement 94%. Almost all the disagreement
 * comes from the element's downscale: with the item drawn at the model's own size agreement is
 * 99.8%, and the VP8 bitrate (1.5 or 30 Mbit/s) changes nothing. GstVideoConverter's automatic
 * taps widen the kernel for a 120->28 reduction, blurring the input compared with the plain
 * bilinear resize the model was trained on; with RESAMPLER_TAPS = 4 in the element the same test
 * gives -0.5 and -0.1 points and 97% agreement.
 *
 * Measured again (16-epoch shipped model of 7631e29, RESAMPLER_TAPS = 4): e = 1 82.7% vs 82.6%
 * (+0.1), e = 0.5 80.2% vs 81.3% (-1.1), agreement 95-96%; taps 2: -0.3 / -1.5; taps 6: +0.9 / -1.6.
 *
 * Measured again (49-token shipped model of 30 Nov 2026): e = 1 86.2% vs 86.7% (-0.5), e = 0.5
 * 84.9% vs 85.2% (-0.3), agreement 97.3% / 96.9%; the tolerance is back to the 1 point.
 * Self-distilled shipped model (session 3): e = 1 90.0% vs 90.1% (-0.1), e = 0.5 87.3% vs 88.2%
 * (-0.9), agreement 96.9% / 96.4%. 48-epoch shipped model (session 4): e = 1 90.9% vs 91.0% (-0.1),
 * e = 0.5 89.3% vs 89.2% (+0.1), agreement 98.6% / 97.0%. Three-expert shipped model (session 10):
 * e = 1 91.6% vs 91.2% (+0.4), e = 0.5 90.5% vs 90.8% (-0.3), agreement 98.0% / 97.7%.
 *
 * Needs the shipped model (MONE_SHIPPED_MODEL): exits 77 (skipped) when it is not in the tree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>
#include <gst/gst.h>
#include <mone/mone.h>

#include "pipeline-run.h"
#include "sample-labels.h"
#include "train/data.h"

#define ITEMS 1000
#define FRAMES_PER_ITEM 1
#define SEED "11"
/* The bar. The per-item agreement guards against two different errors cancelling out. */
#define TOLERANCE_POINTS 1.0
#define MIN_AGREEMENT 0.95

static const double budgets[] = { 1.0, 0.5 };

/* Per-item predictions of the engine on the full-frame renders of the same test items. */
static double
engine_accuracy (MoneModel *model, const MoneImageSet *test_set, const SampleLabels *labels,
    double budget, int *engine_class)
{
  const MoneConfig *cfg = mone_model_get_config (model);
  float *input = g_new (float, (gsize) cfg->channels * cfg->height * cfg->width);
  GError *error = NULL;
  MoneContext *ctx = mone_context_new (model, 0, &error);
  int correct = 0;

  g_assert (ctx != NULL);
  for (int i = 0; i < labels->count; i++) {
    MoneResult result;

    mone_render (test_set, labels->items[i].test_index, MONE_PROTOCOL_FULL_FRAME,
        g_ascii_strtoull (SEED, NULL, 10), FALSE, cfg->channels, cfg->height, cfg->width, input);
    if (!mone_context_run (ctx, input, budget, &result, &error)) {
      fprintf (stderr, "engine: %s\n", error->message);
      exit (1);
    }
    engine_class[i] = result.top_class;
    correct += result.top_class == labels->items[i].label;
  }
  mone_context_free (ctx);
  g_free (input);
  return (double) correct / labels->count;
}

int
main (int argc, char **argv)
{
  const char *tool = g_getenv ("MONE_SAMPLE_VIDEO_TOOL");
  const char *model_path = g_getenv ("MONE_SHIPPED_MODEL");
  GError *error = NULL;
  char *dir, *video, *labels_path, *quoted_video, *quoted_model;
  SampleLabels labels;
  MoneImageSet test_set = { 0 };
  MoneModel *model;
  int failures = 0;
  char items[16], frames[16];

  gst_init (&argc, &argv);
  if (!tool) {
    fprintf (stderr, "MONE_SAMPLE_VIDEO_TOOL is not set (run through meson test)\n");
    return 1;
  }
  if (!model_path || !g_file_test (model_path, G_FILE_TEST_IS_REGULAR)) {
    printf ("SKIP: the shipped model %s is not in the tree yet\n", model_path ? model_path : "");
    return 77;
  }
  if (!(model = mone_model_load_file (model_path, &error))
      || !mone_fashion_mnist_load (NULL, FALSE, &test_set, &error)) {
    fprintf (stderr, "%s\n", error->message);
    return 1;
  }

  dir = g_dir_make_tmp ("mone-accuracy-XXXXXX", &error);
  g_assert (dir != NULL);
  video = g_build_filename (dir, "sample.webm", NULL);
  labels_path = g_build_filename (dir, "sample.csv", NULL);
  g_snprintf (items, sizeof items, "%d", ITEMS);
  g_snprintf (frames, sizeof frames, "%d", FRAMES_PER_ITEM);
  {
    /* extra arguments go to mone-sample-video (experiments: --bitrate, --width, ...) */
    GPtrArray *tool_argv = g_ptr_array_new ();
    /* 160x120 frames: the item still fills a 120x120 square to be scaled down to the model's
     * input, at a quarter of the rendering and decoding cost of the demo's 320x240 */
    const char *fixed[] = { tool, "--output", video, "--items", items, "--frames-per-item",
      frames, "--seed", SEED, "--width", "160", "--height", "120" };

    for (guint i = 0; i < G_N_ELEMENTS (fixed); i++)
      g_ptr_array_add (tool_argv, (gpointer) fixed[i]);
    for (int i = 1; i < argc; i++)
      g_ptr_array_add (tool_argv, argv[i]);
    g_ptr_array_add (tool_argv, NULL);
    if (!run_tool ((const char *const *) tool_argv->pdata, &error) || !sample_labels_load (labels_path, &labels, &error)) {
      fprintf (stderr, "%s\n", error->message);
      return 1;
    }
    g_ptr_array_free (tool_argv, TRUE);
  }
  /* the CSV must record the items the video shows: distinct test images with their true labels */
  {
    guint8 *seen = g_new0 (guint8, test_set.count);

    if (labels.count != ITEMS || labels.frames != ITEMS * FRAMES_PER_ITEM) {
      fprintf (stderr, "labels CSV: %d items, %d frames; expected %d, %d\n", labels.count,
          labels.frames, ITEMS, ITEMS * FRAMES_PER_ITEM);
      return 1;
    }
    for (int i = 0; i < labels.count; i++) {
      const SampleItem *item = &labels.items[i];

      if (item->test_index >= test_set.count || seen[item->test_index]++
          || item->label != test_set.labels[item->test_index]
          || strcmp (item->label_name, mone_fashion_mnist_labels[item->label]) != 0) {
        fprintf (stderr, "labels CSV item %d: test index %d, label %d (%s) is wrong or repeated\n",
            i, item->test_index, item->label, item->label_name);
        return 1;
      }
    }
    g_free (seen);
  }
  quoted_video = pipeline_quote (video);
  quoted_model = pipeline_quote (model_path);

  printf ("%d items x %d frames, model %s\n", ITEMS, FRAMES_PER_ITEM, model_path);
  printf ("%-7s %10s %10s %10s %10s\n", "budget", "video", "engine", "diff", "agree");
  for (guint b = 0; b < G_N_ELEMENTS (budgets); b++) {
    char *description = g_strdup_printf ("filesrc location=%s ! decodebin ! videoconvert ! "
        "monefilter model=%s budget=%g scale-mode=crop ! fakesink name=sink", quoted_video,
        quoted_model, budgets[b]);
    PipelineRun run;
    int *frame_class = g_new (int, labels.frames), *verdicts = g_new (int, labels.count);
    int *engine_class = g_new (int, labels.count);
    float *frame_score = g_new0 (float, labels.frames);
    double video_acc, direct_acc, diff_points;
    int agree = 0;

    if (!pipeline_run (description, 50, &run, &error) || !run.eos
        || (int) run.frames->len != labels.frames) {
      fprintf (stderr, "budget %g: %s (%u of %d frames, eos %d)\n", budgets[b],
          error ? error->message : "incomplete run", run.frames ? run.frames->len : 0,
          labels.frames, run.eos);
      return 1;
    }
    for (int f = 0; f < labels.frames; f++) {
      const FrameResult *r = &g_array_index (run.frames, FrameResult, f);

      if (!r->has_meta) {
        fprintf (stderr, "budget %g: frame %d has no meta\n", budgets[b], f);
        return 1;
      }
      frame_class[f] = r->top_class;
      frame_score[f] = r->top_score;
    }
    for (int i = 0; i < labels.count; i++)
      verdicts[i] = sample_item_verdict (&labels.items[i], frame_class, frame_score,
          labels.frames, mone_model_get_config (model)->classes);
    video_acc = sample_labels_accuracy (&labels, verdicts);
    direct_acc = engine_accuracy (model, &test_set, &labels, budgets[b], engine_class);
    for (int i = 0; i < labels.count; i++)
      agree += verdicts[i] == engine_class[i];
    diff_points = 100.0 * (video_acc - direct_acc);
    printf ("%-7g %9.2f%% %9.2f%% %+9.2f %9.1f%%\n", budgets[b], 100.0 * video_acc,
        100.0 * direct_acc, diff_points, 100.0 * agree / labels.count);
    if ((double) agree / labels.count < MIN_AGREEMENT) {
      fprintf (stderr, "FAIL: budget %g: video and engine agree on %.1f%% of items, below %.0f%%\n",
          budgets[b], 100.0 * agree / labels.count, 100.0 * MIN_AGREEMENT);
      failures++;
    }
    if (diff_points > TOLERANCE_POINTS || diff_points < -TOLERANCE_POINTS) {
      fprintf (stderr, "FAIL: budget %g: accuracy through the video %.2f%% is %.2f points from "
          "the engine's %.2f%% (tolerance %.1f)\n", budgets[b], 100.0 * video_acc, diff_points,
          100.0 * direct_acc, TOLERANCE_POINTS);
      failures++;
    }
    pipeline_run_clear (&run);
    g_free (description);
    g_free (frame_class);
    g_free (frame_score);
    g_free (verdicts);
    g_free (engine_class);
  }

  g_unlink (video);
  g_unlink (labels_path);
  g_rmdir (dir);
  g_free (video);
  g_free (labels_path);
  g_free (dir);
  g_free (quoted_video);
  g_free (quoted_model);
  sample_labels_clear (&labels);
  mone_image_set_clear (&test_set);
  mone_model_unref (model);
  return failures ? 1 : 0;
}
