/* mone-demo: the README's main job. Plays the sample video through monefilter at several budgets
 * and shows what the budget buys:
 *
 *   - per item: the recorded label and the label predicted at each budget (an item's prediction is
 *     the class most of its frames got, see pipelines/sample-labels.h);
 *   - per budget: accuracy against the recorded labels, mean GFLOPs per frame and the FLOPs saved
 *     against budget 1.0, and beside them the time actually saved: in the element (conversion and
 *     inference, as its meta reports) and in the whole pipeline (decoding included, timed at the
 *     sink), each the fastest of --repeat passes;
 *   - when the plugin has moneoverlay: an annotated video (WebM) and a PNG still in --output-dir.
 *
 *   mone-demo --video pipelines/sample/scene.mp4 \
 *       --model models/scene-mone.safetensors --budgets 1,0.75,0.5,0.3,min
 *
 * The frames are decoded, converted and classified by the project's own pipeline with the
 * element's default properties (stretch: the scene model saw camera frames stretched so):
 *   filesrc ! decodebin ! videoconvert ! monefilter ! fakesink
 * (--scale-mode crop for the older full-frame samples, whose item is the centre square).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <mone/gstmonemeta.h>
#include <mone/mone.h>

#include "sample-labels.h"

#define DEFAULT_BUDGETS "1,0.75,0.5,0.3,min"
#define DEFAULT_OVERLAY_BUDGET 0.5
/* Passes per budget, interleaved so that a busy spell of the machine falls on every budget. */
#define DEFAULT_REPEAT 3

typedef struct {
  char *video, *labels_path, *model_path, *budgets, *output_dir, *scale_mode;
  double overlay_budget;
  int threads, still_item, repeat;
  gboolean no_items;
} DemoOptions;

/* What one budget's pass over the video produced. */
typedef struct {
  double budget_requested;
  double budget_used;    /* as reported in the meta (clamped by the element) */
  int frames_seen;       /* buffers that reached the sink */
  int frames_classified; /* of which fresh results (not reused) */
  double gflops_sum, latency_ms_sum;
  double *element_ms;  /* (repeat) per pass: mean conversion + inference per classified frame */
  double *pipeline_ms; /* (repeat) per pass: sink-to-sink time per frame, decoding included */
  int *frame_class;    /* (frames) top-1 class per frame, -1 if none */
  float *frame_score;  /* (frames) its score */
  int *verdicts;       /* (items) per-item prediction */
  double accuracy;
} BudgetRun;

typedef struct {
  BudgetRun *run;
  int n_frames;
  int frame;                /* index of the next buffer */
  gint64 first_us, last_us; /* when the first and the last buffer reached the sink */
  gboolean missing_meta;
} CollectState;

static GstPadProbeReturn
collect_frame_result (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  CollectState *state = user_data;
  GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER (info);
  BudgetRun *run = state->run;
  MoneClassification result;
  int f = state->frame++;

  state->last_us = g_get_monotonic_time ();
  if (f == 0)
    state->first_us = state->last_us;
  run->frames_seen++;
  if (!gst_mone_meta_read (buffer, &result)) {
    state->missing_meta = TRUE;
    return GST_PAD_PROBE_OK;
  }
  if (f < state->n_frames) {
    run->frame_class[f] = result.top_class;
    run->frame_score[f] = result.top_score;
  }
  run->budget_used = result.budget_used;
  if (!result.reused) {
    run->frames_classified++;
    run->gflops_sum += result.gflops;
    run->latency_ms_sum += result.latency_ms;
  }
  return GST_PAD_PROBE_OK;
}

static gboolean
wait_for_eos (GstElement *pipeline, GError **error)
{
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  gboolean ok = GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS;

  if (!ok) {
    GError *err = NULL;
    char *debug = NULL;

    gst_message_parse_error (msg, &err, &debug);
    g_set_error (error, err->domain, err->code, "%s: %s\n  (%s)", GST_OBJECT_NAME (msg->src),
        err->message, debug ? debug : "no details");
    g_error_free (err);
    g_free (debug);
  }
  gst_message_unref (msg);
  gst_object_unref (bus);
  return ok;
}

/* Sets a string property of the element called `name` in the pipeline: paths are set this way
 * rather than written into the launch description, so no quoting can go wrong. */
static void
set_element_string (GstElement *pipeline, const char *name, const char *property, const char *value)
{
  GstElement *element = gst_bin_get_by_name (GST_BIN (pipeline), name);

  g_object_set (element, property, value, NULL);
  gst_object_unref (element);
}

/* " scale-mode=MODE" when one was asked for; the element's default otherwise. */
static char *
scale_mode_property (const DemoOptions *opt)
{
  return opt->scale_mode ? g_strdup_printf (" scale-mode=%s", opt->scale_mode) : g_strdup ("");
}

/* Plays the whole video once at one budget (pass `pass` of opt->repeat), collecting every frame's
 * result and the pass's timings. */
static gboolean
run_budget (const DemoOptions *opt, const SampleLabels *labels, BudgetRun *run, int pass,
    GError **error)
{
  char *scale_mode = scale_mode_property (opt);
  char *description = g_strdup_printf ("filesrc name=file ! decodebin ! videoconvert ! "
                                       "monefilter name=mone budget=%.17g threads=%d%s ! fakesink "
                                       "name=sink sync=false",
      run->budget_requested, opt->threads, scale_mode);
  GstElement *pipeline = gst_parse_launch_full (description, NULL, GST_PARSE_FLAG_FATAL_ERRORS,
      error);
  CollectState state = { .run = run, .n_frames = labels->frames };
  GstElement *sink;
  GstPad *pad;
  gboolean ok = FALSE;

  g_free (scale_mode);
  g_free (description);
  if (pipeline && error && *error) /* a bad property value: a pipeline and an error */
    g_clear_object (&pipeline);
  if (!pipeline)
    return FALSE;
  set_element_string (pipeline, "file", "location", opt->video);
  set_element_string (pipeline, "mone", "model", opt->model_path);
  if (!run->frame_class) {
    run->frame_class = g_new (int, labels->frames);
    run->frame_score = g_new0 (float, labels->frames);
    run->element_ms = g_new0 (double, opt->repeat);
    run->pipeline_ms = g_new0 (double, opt->repeat);
  }
  for (int f = 0; f < labels->frames; f++)
    run->frame_class[f] = -1;
  /* every pass classifies the same frames the same way: keep one pass's counts */
  run->frames_seen = run->frames_classified = 0;
  run->gflops_sum = run->latency_ms_sum = 0;

  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  pad = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, collect_frame_result, &state, NULL);
  gst_object_unref (pad);
  gst_object_unref (sink);

  if (gst_element_set_state (pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    if (!wait_for_eos (pipeline, error) && error && !*error)
      g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_STATE_CHANGE, "cannot play %s",
          opt->video);
    goto done;
  }
  if (!wait_for_eos (pipeline, error))
    goto done;

  if (state.missing_meta) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED,
        "some buffers left monefilter without a classification meta");
    goto done;
  }
  /* A cut-short video (an interrupted mone-sample-video) would score its missing items as wrong. */
  if (state.frame != labels->frames) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED,
        "the video has %d frames but its labels file describes %d: make the sample again "
        "(mone-sample-video)",
        state.frame, labels->frames);
    goto done;
  }
  /* From the first frame's arrival on, so model loading and preroll are not counted. */
  run->pipeline_ms[pass] = state.frame > 1
      ? (state.last_us - state.first_us) * 1e-3 / (state.frame - 1)
      : 0.0;
  run->element_ms[pass] = run->frames_classified ? run->latency_ms_sum / run->frames_classified
                                                 : 0.0;
  ok = TRUE;

done:
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  return ok;
}

/* The annotated output: the same pipeline with moneoverlay, encoded to WebM, and one frame (the
 * last of item `still_item`) kept as a PNG. The frame is scaled to 640x480 first so the
 * overlay's text is legible; the element scales it to the model input as it would the original. */
typedef struct {
  int still_frame;
  int frame;
  GstSample *still;
} StillState;

static GstPadProbeReturn
keep_still_frame (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  StillState *state = user_data;

  if (state->frame++ == state->still_frame && !state->still) {
    GstCaps *caps = gst_pad_get_current_caps (pad);

    state->still = gst_sample_new (GST_PAD_PROBE_INFO_BUFFER (info), caps, NULL, NULL);
    gst_caps_unref (caps);
  }
  return GST_PAD_PROBE_OK;
}

static gboolean
write_annotated (const DemoOptions *opt, const SampleLabels *labels, double budget, int still_item,
    char **video_out, char **still_out, GError **error)
{
  char *video_path = g_build_filename (opt->output_dir, "demo-annotated.webm", NULL);
  char *still_path = g_build_filename (opt->output_dir, "demo-still.png", NULL);
  char *scale_mode = scale_mode_property (opt);
  char *description = g_strdup_printf (
      "filesrc name=file ! decodebin ! videoscale ! "
      "video/x-raw,width=640,height=480 ! videoconvert ! "
      "monefilter name=mone budget=%.17g threads=%d%s ! videoconvert ! "
      "moneoverlay name=overlay ! videoconvert ! vp8enc threads=1 deadline=20000 cpu-used=4 "
      "target-bitrate=2500000 ! webmmux ! filesink name=out",
      budget, opt->threads, scale_mode);
  GstElement *pipeline = NULL, *overlay = NULL;
  StillState still = { .frame = 0, .still = NULL };
  GstSample *png = NULL;
  GstCaps *png_caps = NULL;
  GstPad *pad;
  gboolean ok = FALSE;

  g_free (scale_mode);
  if (g_mkdir_with_parents (opt->output_dir, 0755) != 0) {
    g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno), "cannot create %s: %s",
        opt->output_dir, g_strerror (errno));
    goto done;
  }
  pipeline = gst_parse_launch_full (description, NULL, GST_PARSE_FLAG_FATAL_ERRORS, error);
  if (pipeline && error && *error)
    g_clear_object (&pipeline);
  if (!pipeline)
    goto done;
  set_element_string (pipeline, "file", "location", opt->video);
  set_element_string (pipeline, "mone", "model", opt->model_path);
  set_element_string (pipeline, "out", "location", video_path);
  still.still_frame = labels->items[CLAMP (still_item, 0, labels->count - 1)].last_frame;
  overlay = gst_bin_get_by_name (GST_BIN (pipeline), "overlay");
  pad = gst_element_get_static_pad (overlay, "src");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, keep_still_frame, &still, NULL);
  gst_object_unref (pad);

  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  if (!wait_for_eos (pipeline, error))
    goto done;
  if (!still.still) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED,
        "frame %d never reached the "
        "overlay's output",
        still.still_frame);
    goto done;
  }
  /* gst_video_convert_sample runs videoconvert ! pngenc on the kept frame */
  png_caps = gst_caps_new_empty_simple ("image/png");
  if (!(png = gst_video_convert_sample (still.still, png_caps, 10 * GST_SECOND, error)))
    goto done;
  {
    GstMapInfo map;
    GstBuffer *buf = gst_sample_get_buffer (png);

    gst_buffer_map (buf, &map, GST_MAP_READ);
    ok = g_file_set_contents (still_path, (const char *) map.data, map.size, error);
    gst_buffer_unmap (buf, &map);
  }

done:
  if (pipeline) {
    gst_element_set_state (pipeline, GST_STATE_NULL);
    gst_object_unref (pipeline);
  }
  if (overlay)
    gst_object_unref (overlay);
  if (still.still)
    gst_sample_unref (still.still);
  if (png)
    gst_sample_unref (png);
  if (png_caps)
    gst_caps_unref (png_caps);
  g_free (description);
  if (ok) {
    *video_out = video_path;
    *still_out = still_path;
  } else {
    g_free (video_path);
    g_free (still_path);
  }
  return ok;
}

/* "1,0.5,min" -> budgets; "min" is the model's smallest budget. */
static gboolean
parse_budgets (const char *text, double min_budget, GArray *budgets, GError **error)
{
  char **parts = g_strsplit (text, ",", -1);
  gboolean ok = TRUE;

  for (char **p = parts; *p && ok; p++) {
    char *s = g_strstrip (*p), *end;
    double b = !strcmp (s, "min") ? min_budget : g_ascii_strtod (s, &end);

    if (strcmp (s, "min") && (end == s || *end || !(b > 0.0 && b <= 1.0))) {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
          "budget '%s': expected a number in (0, 1] or 'min'", s);
      ok = FALSE;
    } else {
      g_array_append_val (budgets, b);
    }
  }
  if (ok && budgets->len == 0) {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "no budgets given");
    ok = FALSE;
  }
  g_strfreev (parts);
  return ok;
}

static const char *
class_name (const MoneModel *model, int k)
{
  return k >= 0 ? mone_model_get_label (model, k) : "-";
}

static void
print_items (const SampleLabels *labels, const MoneModel *model, const BudgetRun *runs, int n_runs)
{
  printf ("\n%5s %6s  %-12s", "item", "test#", "recorded");
  for (int r = 0; r < n_runs; r++) {
    char head[32];

    g_snprintf (head, sizeof head, "e=%.3g", runs[r].budget_requested);
    printf (" %-13s", head);
  }
  printf ("\n");
  for (int i = 0; i < labels->count; i++) {
    const SampleItem *item = &labels->items[i];

    printf ("%5d %6d  %-12s", item->item, item->test_index, item->label_name);
    for (int r = 0; r < n_runs; r++) {
      int k = runs[r].verdicts[i];

      /* a '*' marks a wrong prediction */
      printf (" %-12s%c", class_name (model, k), k == item->label ? ' ' : '*');
    }
    printf ("\n");
  }
}

/* The fastest pass: the one the rest of the machine disturbed least (others only add time). */
static double
fastest (const double *values, int n)
{
  double m = values[0];

  for (int i = 1; i < n; i++)
    m = MIN (m, values[i]);
  return m;
}

/* "12.3%" saved against the reference, or "-" without one. */
static void
format_saved (char *out, gsize size, double value, double reference)
{
  if (reference > 0)
    g_snprintf (out, size, "%.1f%%", 100.0 * (1.0 - value / reference));
  else
    g_strlcpy (out, "-", size);
}

static void
print_summary (const DemoOptions *opt, const SampleLabels *labels, const MoneModel *model,
    const BudgetRun *runs, int n_runs)
{
  double full_gflops = mone_model_flops ((MoneModel *) model, 1.0) * 1e-9;
  double full_element = 0, full_pipeline = 0; /* 0: no budget-1 run to compare with */

  for (int r = 0; r < n_runs; r++)
    if (runs[r].budget_used >= 1.0 && runs[r].frames_classified) {
      full_gflops = runs[r].gflops_sum / runs[r].frames_classified; /* measured beats predicted */
      full_element = fastest (runs[r].element_ms, opt->repeat);
      full_pipeline = fastest (runs[r].pipeline_ms, opt->repeat);
    }

  printf ("\n%d items, %d frames each on average; an item's prediction is the class most of its "
          "frames got\n",
      labels->count, labels->frames / labels->count);
  /* Time saved lags FLOPs saved on a small model: attention, layer norms, the frame conversion
   * and decoding do not shrink with the budget (docs/engine.md). */
  printf ("%-7s %-7s %9s %10s %11s | %10s %10s | %11s %10s %7s\n", "budget", "used", "accuracy",
      "GFLOPs/f", "FLOPs saved", "element ms", "time saved", "pipeline ms", "time saved", "fps");
  for (int r = 0; r < n_runs; r++) {
    const BudgetRun *run = &runs[r];
    double gflops = run->frames_classified ? run->gflops_sum / run->frames_classified : 0.0;
    double element = fastest (run->element_ms, opt->repeat);
    double pipeline = fastest (run->pipeline_ms, opt->repeat);
    char element_saved[16], pipeline_saved[16];

    format_saved (element_saved, sizeof element_saved, element, full_element);
    format_saved (pipeline_saved, sizeof pipeline_saved, pipeline, full_pipeline);
    printf ("%-7.3g %-7.3g %8.1f%% %10.4f %10.1f%% | %10.3f %10s | %11.3f %10s %7.0f\n",
        run->budget_requested, run->budget_used, 100.0 * run->accuracy, gflops,
        100.0 * (1.0 - gflops / full_gflops), element, element_saved, pipeline, pipeline_saved,
        pipeline > 0 ? 1000.0 / pipeline : 0.0);
  }
  printf ("element ms: conversion and inference per frame, as the element's meta reports; pipeline "
          "ms: per frame at the sink, decoding included; the fastest of %d pass%s\n",
      opt->repeat, opt->repeat == 1 ? "" : "es");
}

/* The still shows a correct prediction when the overlay budget was one of the runs: the first item
 * from --still-item on that run classified right; otherwise --still-item itself. */
static int
still_item_for (const DemoOptions *opt, const SampleLabels *labels, const BudgetRun *runs,
    int n_runs)
{
  for (int r = 0; r < n_runs; r++) {
    if (fabs (runs[r].budget_requested - opt->overlay_budget) > 1e-9)
      continue;
    for (int i = MAX (opt->still_item, 0); i < labels->count; i++)
      if (runs[r].verdicts[i] == labels->items[i].label)
        return i;
  }
  return opt->still_item;
}

/* TRUE when the registry has the element (any version). */
static gboolean
has_element (const char *name)
{
  GstElementFactory *factory = gst_element_factory_find (name);

  if (factory)
    gst_object_unref (factory);
  return factory != NULL;
}

int
main (int argc, char **argv)
{
  DemoOptions opt = { .overlay_budget = DEFAULT_OVERLAY_BUDGET,
    .threads = 1,
    .still_item = 3,
    .repeat = DEFAULT_REPEAT };
  GOptionEntry entries[] = { { "video", 'v', 0, G_OPTION_ARG_FILENAME, &opt.video,
                                 "Sample video (required)", "FILE" },
    { "labels", 'l', 0, G_OPTION_ARG_FILENAME, &opt.labels_path,
        "Labels CSV (default: the video's name with .csv)", "CSV" },
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &opt.model_path, "Model file (required)", "FILE" },
    { "budgets", 'b', 0, G_OPTION_ARG_STRING, &opt.budgets,
        "Comma-separated budgets, 'min' = the model's minimum (default " DEFAULT_BUDGETS ")",
        "LIST" },
    { "scale-mode", 'c', 0, G_OPTION_ARG_STRING, &opt.scale_mode,
        "monefilter scale-mode (default: the element's, stretch; crop for full-frame samples)",
        "MODE" },
    { "repeat", 'r', 0, G_OPTION_ARG_INT, &opt.repeat,
        "Passes per budget, interleaved; timings are the fastest pass's (default 3)", "N" },
    { "threads", 't', 0, G_OPTION_ARG_INT, &opt.threads,
        "monefilter threads (default 1: the shipped model is small enough that more threads only "
        "add synchronisation; 0 = all cores)",
        "N" },
    { "output-dir", 'o', 0, G_OPTION_ARG_FILENAME, &opt.output_dir,
        "Where the annotated video and still go (needs moneoverlay; default: no annotated output)",
        "DIR" },
    { "overlay-budget", 0, 0, G_OPTION_ARG_DOUBLE, &opt.overlay_budget,
        "Budget of the annotated video (default 0.5)", "E" },
    { "still-item", 0, 0, G_OPTION_ARG_INT, &opt.still_item,
        "The PNG still shows the last frame of the first item from I on that the overlay budget's "
        "run got right (default 3)",
        "I" },
    { "no-items", 0, 0, G_OPTION_ARG_NONE, &opt.no_items, "Print only the per-budget summary",
        NULL },
    G_OPTION_ENTRY_NULL };
  GOptionContext *octx = g_option_context_new ("- classify the sample video at several budgets");
  GError *error = NULL;
  SampleLabels labels = { 0 };
  MoneModel *model = NULL;
  GArray *budgets = g_array_new (FALSE, FALSE, sizeof (double));
  BudgetRun *runs = NULL;
  int n_runs = 0, status = 1;

  g_option_context_add_main_entries (octx, entries, NULL);
  g_option_context_add_group (octx, gst_init_get_option_group ());
  if (!g_option_context_parse (octx, &argc, &argv, &error)) {
    g_printerr ("mone-demo: %s\n", error->message);
    status = 2;
    goto out;
  }
  if (!opt.video || !opt.model_path) {
    g_printerr ("mone-demo: --video FILE and --model FILE are required (see --help)\n");
    status = 2;
    goto out;
  }
  if (!opt.labels_path)
    opt.labels_path = sample_labels_path_for (opt.video);
  if (!(opt.overlay_budget > 0 && opt.overlay_budget <= 1)) {
    g_printerr ("mone-demo: --overlay-budget %g is not in (0, 1]\n", opt.overlay_budget);
    status = 2;
    goto out;
  }
  if (opt.repeat < 1 || opt.repeat > 100) {
    g_printerr ("mone-demo: --repeat %d is not in 1..100\n", opt.repeat);
    status = 2;
    goto out;
  }
  if (opt.scale_mode && strcmp (opt.scale_mode, "stretch") && strcmp (opt.scale_mode, "letterbox")
      && strcmp (opt.scale_mode, "crop")) {
    g_printerr ("mone-demo: --scale-mode '%s' is not stretch, letterbox or crop\n", opt.scale_mode);
    status = 2;
    goto out;
  }
  if (opt.threads < 0) {
    g_printerr ("mone-demo: --threads %d is negative\n", opt.threads);
    status = 2;
    goto out;
  }
  /* Checked now rather than after every budget has been played. */
  if (opt.output_dir && g_mkdir_with_parents (opt.output_dir, 0755) != 0) {
    g_printerr ("mone-demo: cannot create --output-dir %s: %s\n", opt.output_dir,
        g_strerror (errno));
    goto out;
  }
  if (!g_file_test (opt.video, G_FILE_TEST_IS_REGULAR)) {
    g_printerr ("mone-demo: video %s not found (make it with mone-sample-video)\n", opt.video);
    goto out;
  }
  if (!sample_labels_load (opt.labels_path, &labels, &error)
      || !(model = mone_model_load_file (opt.model_path, &error))) {
    g_printerr ("mone-demo: %s\n", error->message);
    goto out;
  }
  if (!has_element ("monefilter")) {
    g_printerr ("mone-demo: GStreamer element monefilter not found: set GST_PLUGIN_PATH to the "
                "build's gst/ folder or install the plugin\n");
    goto out;
  }
  if (!parse_budgets (opt.budgets ? opt.budgets : DEFAULT_BUDGETS, mone_model_min_budget (model),
          budgets, &error)) {
    g_printerr ("mone-demo: %s\n", error->message);
    status = 2;
    goto out;
  }

  printf ("model %s (%zu parameters, input %dx%dx%d)\nvideo %s: %d items, %d frames\n",
      opt.model_path, mone_model_parameter_count (model), mone_model_get_config (model)->channels,
      mone_model_get_config (model)->height, mone_model_get_config (model)->width, opt.video,
      labels.count, labels.frames);

  runs = g_new0 (BudgetRun, budgets->len);
  n_runs = budgets->len;
  for (int r = 0; r < n_runs; r++)
    runs[r].budget_requested = g_array_index (budgets, double, r);
  /* Passes interleave the budgets, so a slow spell of the machine falls on all of them alike. */
  for (int pass = 0; pass < opt.repeat; pass++) {
    printf ("pass %d of %d, budget", pass + 1, opt.repeat);
    for (int r = 0; r < n_runs; r++) {
      printf (" %.3g", runs[r].budget_requested);
      fflush (stdout);
      if (!run_budget (&opt, &labels, &runs[r], pass, &error)) {
        g_printerr ("\nmone-demo: budget %.3g: %s\n", runs[r].budget_requested, error->message);
        goto out;
      }
    }
    printf ("\n");
  }
  for (int r = 0; r < n_runs; r++) {
    BudgetRun *run = &runs[r];
    int classes = mone_model_get_config (model)->classes;

    run->verdicts = g_new (int, labels.count);
    for (int i = 0; i < labels.count; i++)
      run->verdicts[i] = sample_item_verdict (&labels.items[i], run->frame_class, run->frame_score,
          labels.frames, classes);
    run->accuracy = sample_labels_accuracy (&labels, run->verdicts);
  }

  if (!opt.no_items)
    print_items (&labels, model, runs, n_runs);
  print_summary (&opt, &labels, model, runs, n_runs);

  if (opt.output_dir) {
    char *video_out = NULL, *still_out = NULL;

    if (!has_element ("moneoverlay")) {
      printf ("\n(no annotated output: this build of the plugin has no moneoverlay element)\n");
    } else if (!write_annotated (&opt, &labels, opt.overlay_budget,
                   still_item_for (&opt, &labels, runs, n_runs), &video_out, &still_out, &error)) {
      g_printerr ("mone-demo: annotated output: %s\n", error->message);
      goto out;
    } else {
      printf ("\nannotated video (budget %.3g): %s\nstill: %s\n", opt.overlay_budget, video_out,
          still_out);
      g_free (video_out);
      g_free (still_out);
    }
  }
  status = 0;

out:
  for (int r = 0; r < n_runs; r++) {
    g_free (runs[r].frame_class);
    g_free (runs[r].frame_score);
    g_free (runs[r].verdicts);
    g_free (runs[r].element_ms);
    g_free (runs[r].pipeline_ms);
  }
  g_free (runs);
  g_array_free (budgets, TRUE);
  sample_labels_clear (&labels);
  if (model)
    mone_model_unref (model);
  g_clear_error (&error);
  g_option_context_free (octx);
  g_free (opt.video);
  g_free (opt.labels_path);
  g_free (opt.model_path);
  g_free (opt.budgets);
  g_free (opt.output_dir);
  g_free (opt.scale_mode);
  return status;
}
