/* End-to-end accuracy of camera-like scene videos through the element matches the engine on the
 * same items.
 *
 * Renders ITEMS Fashion-MNIST test items as scenes (mone-sample-video's default placement: the
 * scene protocol drawn as a 4:3 camera frame at the video's own size, WIDTH x HEIGHT) into two
 * videos, VP8/WebM and H.264/MP4 (openh264enc), plays each through
 *   filesrc ! decodebin ! videoconvert ! monefilter ! fakesink
 * with the element's default properties (stretch), and compares, per codec and budget, the
 * accuracy of the per-item predictions with that of the engine on the same scene frames stretched
 * to the model input by area averaging (mone_render_scene_frame + mone_context_run: what the
 * pipeline would deliver with no codec and an ideal scaler). The element may not lose more than
 * TOLERANCE_POINTS against the engine, and the two must agree on MIN_AGREEMENT of the items. What
 * differs between them is the real path a camera or file takes: 4:2:0 colour and compression,
 * decoding, and the element's own scaling.
 *
 * The model: MONE_TEST_MODEL, the shipped scene model.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>
#include <gst/gst.h>
#include <mone/mone.h>

#include "pipeline-run.h"
#include "sample-labels.h"
#include "mone/mone-train.h"

#define ITEMS 1500
#define SEED 11
/* A quarter of the demo's 320x240, at a quarter of the decoding cost. The scene is drawn at the
 * video's size (--scene-height HEIGHT), so the element and the reference below start from the same
 * pixels, whatever the model's input. */
#define WIDTH 160
#define HEIGHT 120
/* The per-item agreement guards against two different errors cancelling out in the accuracy. */
#define TOLERANCE_POINTS 1.0
#define MIN_AGREEMENT 0.90

static const double budgets[] = { 1.0, 0.5 };

typedef struct
{
  const char *name, *extension;
} Codec;

static const Codec codecs[] = { {"vp8", "webm"}, {"h264", "mp4"} };

/* Area-averaging resize of one plane (sh, sw) -> (dh, dw): every destination pixel is the mean of
 * the source area it covers, partial pixels weighted by their overlap. */
static void
resize_area (const float *src, int sh, int sw, float *dst, int dh, int dw)
{
  for (int y = 0; y < dh; y++) {
    double y0 = (double) y * sh / dh, y1 = (double) (y + 1) * sh / dh;

    for (int x = 0; x < dw; x++) {
      double x0 = (double) x * sw / dw, x1 = (double) (x + 1) * sw / dw;
      double sum = 0, area = 0;

      for (int sy = (int)floor (y0); sy < (int) ceil (y1) && sy < sh; sy++) {
        double wy = MIN (y1, sy + 1.0) - MAX (y0, (double) sy);

        for (int sx = (int)floor (x0); sx < (int) ceil (x1) && sx < sw; sx++) {
          double w = wy * (MIN (x1, sx + 1.0) - MAX (x0, (double) sx));

          sum += w * src[sy * sw + sx];
          area += w;
        }
      }
      dst[y * dw + x] = (float) (sum / area);
    }
  }
}

/* The engine's per-item classes on the ideal frames of the same items. */
static double
engine_accuracy (MoneModel * model, const MoneImageSet * test_set, const SampleLabels * labels,
    double budget, int *engine_class)
{
  const MoneConfig *cfg = mone_model_get_config (model);
  gsize plane = (gsize) cfg->height * cfg->width;
  float *scene = g_new (float, HEIGHT * WIDTH);
  float *input = g_new (float, (gsize) cfg->channels * plane);
  GError *error = NULL;
  MoneContext *ctx = mone_context_new (model, 0, &error);
  int correct = 0;

  g_assert (ctx != NULL);
  for (int i = 0; i < labels->count; i++) {
    MoneResult result;

    mone_render_scene_frame (test_set, labels->items[i].test_index, SEED, HEIGHT, WIDTH,
        scene, NULL);
    resize_area (scene, HEIGHT, WIDTH, input, cfg->height, cfg->width);
    /* a colour model sees the grey scene in every channel, as the element gives it grey video */
    for (int c = 1; c < cfg->channels; c++)
      memcpy (input + c * plane, input, sizeof (float) * plane);
    if (!mone_context_run (ctx, input, budget, &result, &error)) {
      fprintf (stderr, "engine: %s\n", error->message);
      exit (1);
    }
    engine_class[i] = result.top_class;
    correct += result.top_class == labels->items[i].label;
  }
  mone_context_free (ctx);
  g_free (input);
  g_free (scene);
  return (double) correct / labels->count;
}

/* The labels CSV must record the items the video shows: distinct test images with their true
 * labels, one frame each, and the scene's box. */
static gboolean
check_labels (const SampleLabels * labels, const MoneImageSet * test_set)
{
  guint8 *seen = g_new0 (guint8, test_set->count);
  gboolean ok = labels->count == ITEMS && labels->frames == ITEMS;

  if (!ok)
    fprintf (stderr, "labels CSV: %d items, %d frames; expected %d of each\n", labels->count,
        labels->frames, ITEMS);
  for (int i = 0; ok && i < labels->count; i++) {
    const SampleItem *item = &labels->items[i];

    if (item->test_index >= test_set->count || seen[item->test_index]++
        || item->label != test_set->labels[item->test_index]
        || strcmp (item->label_name, mone_fashion_mnist_labels[item->label]) != 0
        || !item->has_box || item->box_h < 0.29 * HEIGHT || item->box_h > 0.96 * HEIGHT) {
      fprintf (stderr, "labels CSV item %d: test index %d, label %d (%s), box height %.1f: wrong, "
          "repeated or missing\n", i, item->test_index, item->label, item->label_name, item->box_h);
      ok = FALSE;
    }
  }
  g_free (seen);
  return ok;
}

int
main (int argc, char **argv)
{
  const char *tool = g_getenv ("MONE_SAMPLE_VIDEO_TOOL");
  const char *model_path;
  GError *error = NULL;
  char *dir, *quoted_model;
  MoneImageSet test_set = { 0 };
  MoneModel *model;
  int failures = 0, classes;
  int *engine_class[G_N_ELEMENTS (budgets)];
  double engine_acc[G_N_ELEMENTS (budgets)];
  char items[16], seed[16], width[16], height[16];

  gst_init (&argc, &argv);
  if (!tool) {
    fprintf (stderr, "MONE_SAMPLE_VIDEO_TOOL is not set (run through meson test)\n");
    return 1;
  }
  if (!(model_path = g_getenv ("MONE_TEST_MODEL"))) {
    fprintf (stderr, "MONE_TEST_MODEL is not set (run through meson test)\n");
    return 1;
  }
  if (!(model = mone_model_load_file (model_path, &error))
      || !mone_fashion_mnist_load (NULL, FALSE, &test_set, &error)) {
    fprintf (stderr, "%s\n", error->message);
    return 1;
  }
  classes = mone_model_get_config (model)->classes;
  dir = g_dir_make_tmp ("mone-accuracy-XXXXXX", &error);
  g_assert (dir != NULL);
  quoted_model = pipeline_quote (model_path);
  g_snprintf (items, sizeof items, "%d", ITEMS);
  g_snprintf (seed, sizeof seed, "%d", SEED);
  g_snprintf (width, sizeof width, "%d", WIDTH);
  g_snprintf (height, sizeof height, "%d", HEIGHT);

  printf ("%d scene items x 1 frame, %dx%d, model %s\n", ITEMS, WIDTH, HEIGHT, model_path);
  printf ("%-6s %-7s %10s %10s %10s %10s\n", "codec", "budget", "element", "engine", "diff",
      "agree");
  for (guint c = 0; c < G_N_ELEMENTS (codecs); c++) {
    char *name = g_strdup_printf ("scenes.%s", codecs[c].extension);
    char *video = g_build_filename (dir, name, NULL);
    char *labels_path = g_build_filename (dir, "scenes.csv", NULL);
    char *quoted_video = pipeline_quote (video);
    /* extra arguments go to mone-sample-video (experiments: --bitrate, ...) */
    GPtrArray *tool_argv = g_ptr_array_new ();
    const char *fixed[] = { tool, "--output", video, "--codec", codecs[c].name, "--items", items,
      "--frames-per-item", "1", "--seed", seed, "--width", width, "--height", height,
      "--placement", "scene", "--scene-height", height
    };
    SampleLabels labels;

    for (guint i = 0; i < G_N_ELEMENTS (fixed); i++)
      g_ptr_array_add (tool_argv, (gpointer) fixed[i]);
    for (int i = 1; i < argc; i++)
      g_ptr_array_add (tool_argv, argv[i]);
    g_ptr_array_add (tool_argv, NULL);
    if (!run_tool ((const char *const *) tool_argv->pdata, &error)
        || !sample_labels_load (labels_path, &labels, &error)) {
      fprintf (stderr, "%s\n", error->message);
      return 1;
    }
    g_ptr_array_free (tool_argv, TRUE);
    if (!check_labels (&labels, &test_set))
      return 1;

    for (guint b = 0; b < G_N_ELEMENTS (budgets); b++) {
      char *description = g_strdup_printf ("filesrc location=%s ! decodebin ! videoconvert ! "
          "monefilter model=%s budget=%g ! fakesink name=sink", quoted_video, quoted_model,
          budgets[b]);
      PipelineRun run;
      int *frame_class = g_new (int, labels.frames), *verdicts = g_new (int, labels.count);
      float *frame_score = g_new0 (float, labels.frames);
      double video_acc, diff_points;
      int agree = 0;

      if (c == 0) {
        /* the engine's side depends on the items only: the same for both codecs */
        engine_class[b] = g_new (int, labels.count);
        engine_acc[b] = engine_accuracy (model, &test_set, &labels, budgets[b], engine_class[b]);
      }
      if (!pipeline_run (description, 50, &run, &error) || !run.eos
          || (int) run.frames->len != labels.frames) {
        fprintf (stderr, "%s, budget %g: %s (%u of %d frames, eos %d)\n", codecs[c].name,
            budgets[b], error ? error->message : "incomplete run", run.frames ? run.frames->len : 0,
            labels.frames, run.eos);
        return 1;
      }
      for (int f = 0; f < labels.frames; f++) {
        const FrameResult *r = &g_array_index (run.frames, FrameResult, f);

        if (!r->has_meta) {
          fprintf (stderr, "%s, budget %g: frame %d has no meta\n", codecs[c].name, budgets[b], f);
          return 1;
        }
        frame_class[f] = r->top_class;
        frame_score[f] = r->top_score;
      }
      for (int i = 0; i < labels.count; i++) {
        verdicts[i] = sample_item_verdict (&labels.items[i], frame_class, frame_score,
            labels.frames, classes);
        agree += verdicts[i] == engine_class[b][i];
      }
      video_acc = sample_labels_accuracy (&labels, verdicts);
      diff_points = 100.0 * (video_acc - engine_acc[b]);
      printf ("%-6s %-7g %9.2f%% %9.2f%% %+9.2f %9.1f%%\n", codecs[c].name, budgets[b],
          100.0 * video_acc, 100.0 * engine_acc[b], diff_points, 100.0 * agree / labels.count);
      fflush (stdout);
      if ((double) agree / labels.count < MIN_AGREEMENT) {
        fprintf (stderr, "FAIL: %s, budget %g: element and engine agree on %.1f%% of items, below "
            "%.0f%%\n", codecs[c].name, budgets[b], 100.0 * agree / labels.count,
            100.0 * MIN_AGREEMENT);
        failures++;
      }
      if (diff_points < -TOLERANCE_POINTS) {
        fprintf (stderr, "FAIL: %s, budget %g: accuracy through the element %.2f%% is %+.2f points "
            "from the engine's %.2f%% (at most %.1f below)\n", codecs[c].name, budgets[b],
            100.0 * video_acc, diff_points, 100.0 * engine_acc[b], TOLERANCE_POINTS);
        failures++;
      }
      pipeline_run_clear (&run);
      g_free (description);
      g_free (frame_class);
      g_free (frame_score);
      g_free (verdicts);
    }
    g_unlink (video);
    g_unlink (labels_path);
    sample_labels_clear (&labels);
    g_free (name);
    g_free (video);
    g_free (labels_path);
    g_free (quoted_video);
  }

  for (guint b = 0; b < G_N_ELEMENTS (budgets); b++)
    g_free (engine_class[b]);
  g_rmdir (dir);
  g_free (dir);
  g_free (quoted_model);
  mone_image_set_clear (&test_set);
  mone_model_unref (model);
  return failures ? 1 : 0;
}
