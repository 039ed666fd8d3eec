/* The pipelines of pipelines/ run end to end on real encoded video:
 *  - file: filesrc ! decodebin ! videoconvert ! monefilter message=true ! fakesink (default
 *    properties otherwise) on the scene videos the test renders (20 Fashion-MNIST test items x 3
 *    frames), VP8/WebM and H.264/MP4 (openh264enc);
 *  - RTSP: a gst-rtsp-server on 127.0.0.1 (random free port, in this process) serves the same
 *    file; rtspsrc ! decodebin ! videoconvert ! monefilter ! fakesink must classify every frame,
 *    with the same results as the file pipeline (the same compressed frames decode to the same
 *    pixels, and the engine is deterministic).
 * End-to-end accuracy against the engine is test-accuracy.c.
 *
 * Inputs from meson (environment): MONE_SAMPLE_VIDEO_TOOL (mone-sample-video), MONE_SHIPPED_MODEL
 * (classified with when the tree has it) and MONE_TOOL (`mone init` makes a random model of the
 * same input kind otherwise: the plumbing is checked either way).
 */
#include <gst/check/gstcheck.h>
#include <glib/gstdio.h>

#include "pipeline-run.h"
#include "rtsp-server.h"

#define ITEMS 20
#define FRAMES_PER_ITEM 3
#define FRAMES (ITEMS * FRAMES_PER_ITEM)

static char *work_dir, *video_path, *h264_path, *model_path;

static void
render_sample_video (void)
{
  const char *tool = g_getenv ("MONE_SAMPLE_VIDEO_TOOL");
  GError *error = NULL;
  char items[16], frames[16];

  const char *shipped = g_getenv ("MONE_SHIPPED_MODEL");

  fail_unless (tool != NULL && g_getenv ("MONE_TOOL") != NULL,
      "MONE_SAMPLE_VIDEO_TOOL and MONE_TOOL must be set (run through meson test)");
  work_dir = g_dir_make_tmp ("mone-pipelines-XXXXXX", &error);
  fail_unless (work_dir != NULL, "temporary folder: %s", error ? error->message : "");

  if (shipped && g_file_test (shipped, G_FILE_TEST_IS_REGULAR)) {
    model_path = g_strdup (shipped);
  } else {
    /* 28x28 grey like the shipped Fashion-MNIST model (coarser patches: a fallback only) */
    const char *argv[] = { g_getenv ("MONE_TOOL"), "init", "--config", "tiny", "seed=3",
      "channels=1", "height=28", "width=28", "patch=7", NULL, NULL
    };

    model_path = g_build_filename (work_dir, "random-model.safetensors", NULL);
    argv[9] = model_path;
    fail_unless (run_tool (argv, &error), "%s", error ? error->message : "");
  }
  video_path = g_build_filename (work_dir, "sample.webm", NULL);
  h264_path = g_build_filename (work_dir, "sample.mp4", NULL);
  g_snprintf (items, sizeof items, "%d", ITEMS);
  g_snprintf (frames, sizeof frames, "%d", FRAMES_PER_ITEM);
  {
    /* the same items and scenes in both (the CSV of the second replaces the first's) */
    const char *argv[] = { tool, "--output", video_path, "--items", items, "--frames-per-item",
      frames, "--seed", "7", NULL
    };

    fail_unless (run_tool (argv, &error), "%s", error ? error->message : "");
    argv[2] = h264_path;
    fail_unless (run_tool (argv, &error), "%s", error ? error->message : "");
  }
}

static void
remove_sample_video (void)
{
  char *labels = g_build_filename (work_dir, "sample.csv", NULL);

  g_unlink (video_path);
  g_unlink (h264_path);
  g_unlink (labels);
  if (g_str_has_prefix (model_path, work_dir))
    g_unlink (model_path);
  g_rmdir (work_dir);
  g_free (labels);
  g_free (video_path);
  g_free (h264_path);
  g_free (work_dir);
  g_free (model_path);
}

static void
check_every_frame_classified (const PipelineRun * run, const char *what)
{
  fail_unless (run->eos, "%s: no EOS before the timeout", what);
  fail_unless_equals_int (run->frames->len, FRAMES);
  for (guint f = 0; f < run->frames->len; f++) {
    const FrameResult *r = &g_array_index (run->frames, FrameResult, f);

    fail_unless (r->has_meta, "%s: frame %u has no classification meta", what, f);
    fail_unless (!r->reused, "%s: frame %u reused a result with interval=1", what, f);
    fail_unless (r->top_class >= 0 && r->top_class < 10, "%s: frame %u: class %d", what, f,
        r->top_class);
    fail_unless (r->top_score > 0.0f && r->top_score <= 1.0f, "%s: frame %u: score %f", what, f,
        r->top_score);
    fail_unless (r->gflops > 0.0, "%s: frame %u: %f GFLOPs", what, f, r->gflops);
  }
}

/* The file pipeline of pipelines/file.sh on one of the sample videos. */
static void
run_file_pipeline (const char *path, PipelineRun * run)
{
  char *video = pipeline_quote (path), *model = pipeline_quote (model_path);
  char *description = g_strdup_printf ("filesrc location=%s ! decodebin ! videoconvert ! "
      "monefilter model=%s budget=0.5 message=true ! fakesink name=sink", video, model);
  GError *error = NULL;

  fail_unless (pipeline_run (description, 30, run, &error), "%s", error ? error->message : "");
  check_every_frame_classified (run, path);
  g_free (description);
  g_free (video);
  g_free (model);
}

GST_START_TEST (test_file_pipeline)
{
  PipelineRun run;

  run_file_pipeline (video_path, &run);
  /* message=true: one bus message per fresh result */
  fail_unless_equals_int (run.messages, FRAMES);
  pipeline_run_clear (&run);
}

GST_END_TEST;

/* H.264 in MP4, as cameras and phones record (decoded by openh264dec of gstreamer1.0-plugins-bad
 * where no other H.264 decoder is installed). */
GST_START_TEST (test_h264_file_pipeline)
{
  PipelineRun run;

  run_file_pipeline (h264_path, &run);
  fail_unless_equals_int (run.messages, FRAMES);
  pipeline_run_clear (&run);
}

GST_END_TEST;

GST_START_TEST (test_rtsp_pipeline)
{
  char *video = pipeline_quote (video_path), *model = pipeline_quote (model_path);
  char *launch = g_strdup_printf ("( filesrc location=%s ! matroskademux ! rtpvp8pay name=pay0 "
      "pt=96 )", video);
  GError *error = NULL;
  TestRtspServer *server = test_rtsp_server_start (launch, &error);
  char *description;
  PipelineRun run, file_run;

  fail_unless (server != NULL, "RTSP server: %s", error ? error->message : "");
  /* TCP interleaved: no packet loss on a busy machine, so every frame must arrive. The jitter
   * buffer still gives up on a packet that is later than its latency (one frame of 60 was lost
   * that way with 100 ms on a CI run with both cores busy), so it waits a full second. */
  description = g_strdup_printf ("rtspsrc location=%s protocols=tcp latency=1000 ! decodebin ! "
      "videoconvert ! monefilter model=%s budget=0.5 ! fakesink name=sink",
      test_rtsp_server_url (server), model);
  fail_unless (pipeline_run (description, 40, &run, &error), "%s: %s", description,
      error ? error->message : "");
  check_every_frame_classified (&run, "rtsp");

  run_file_pipeline (video_path, &file_run);
  for (guint f = 0; f < run.frames->len; f++)
    fail_unless (g_array_index (run.frames, FrameResult, f).top_class
        == g_array_index (file_run.frames, FrameResult, f).top_class,
        "frame %u: class %d over RTSP, %d from the file", f,
        g_array_index (run.frames, FrameResult, f).top_class,
        g_array_index (file_run.frames, FrameResult, f).top_class);

  pipeline_run_clear (&file_run);
  pipeline_run_clear (&run);
  test_rtsp_server_stop (server);
  g_free (description);
  g_free (launch);
  g_free (video);
  g_free (model);
}

GST_END_TEST;

static Suite *
pipelines_suite (void)
{
  Suite *s = suite_create ("pipelines");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 60);
  tcase_add_unchecked_fixture (tc, render_sample_video, remove_sample_video);
  tcase_add_test (tc, test_file_pipeline);
  tcase_add_test (tc, test_h264_file_pipeline);
  tcase_add_test (tc, test_rtsp_pipeline);
  suite_add_tcase (s, tc);
  return s;
}

GST_CHECK_MAIN (pipelines);
