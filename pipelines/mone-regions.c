/* mone-regions: monefilter classifying regions of interest that an application supplies.
 *
 * Debian 12 packages no detector whose objects the Fashion-MNIST models know, so this program plays
 * the detector: it reads the boxes mone-sample-video recorded for its video (the labels CSV) and
 * puts each on its frames as a GstVideoRegionOfInterestMeta of type "item", id the item's number,
 * before monefilter, exactly as a detector upstream would. The pipeline is
 *
 *   filesrc ! decodebin ! videoconvert ! [boxes added here] ! monefilter inference-region=roi-list
 *     ! [results read here] ! fakesink       (or ! moneoverlay ! x264enc/vp8enc ! file, --output)
 *
 * and it prints, per budget, how many items the regions got right (each item's frames vote, as in
 * mone-demo), beside what the same model gets on the whole frames, and what a region costs.
 * With --detections (GStreamer >= 1.24) the boxes are GstAnalyticsODMtd detections instead, as
 * GStreamer's own detectors produce them, and --output draws them with GStreamer's
 * objectdetectionoverlay, which labels each box with the classification monefilter related to it.
 *
 *   mone-regions --video pipelines/sample/scene.mp4 --budgets 1,0.5
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gst/gst.h>
#include <gst/video/video.h>
#include <mone/gstmonemeta.h>
#if MONE_HAVE_ANALYTICS
#include <gst/analytics/analytics.h>
#endif

#include "sample-labels.h"

typedef struct {
  const SampleLabels *labels;
  gboolean regions;    /* inference-region=roi-list, boxes from the labels */
  gboolean detections; /* ...as GstAnalyticsODMtd rather than GstVideoRegionOfInterestMeta */
  guint64 frames_in;   /* frames that reached monefilter (region runs) */
  guint64 frames_out;  /* frames that left it */
  int *frame_class;    /* (labels->frames) top-1 class per frame, -1 if none */
  float *frame_score;  /* (labels->frames) its score */
  GArray *region_ms;   /* double: the frame's latency per classified region */
  double gflops_sum;   /* over classified regions (or frames) */
  guint64 classified;  /* regions (or frames) classified */
} RegionsRun;

/* Before monefilter: the item on this frame, at its box, as a region of interest. */
static GstPadProbeReturn
add_item_region (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  RegionsRun *run = user_data;
  guint64 frame = run->frames_in++;

  for (int i = 0; i < run->labels->count; i++) {
    const SampleItem *item = &run->labels->items[i];
    if (frame < (guint64) item->first_frame || frame > (guint64) item->last_frame)
      continue;
    GstBuffer *buffer = gst_buffer_make_writable (GST_PAD_PROBE_INFO_BUFFER (info));
    /* The box may start before the frame edge (scenes): what lies inside it is the region. */
    double x0 = MAX (item->box_x, 0.0), y0 = MAX (item->box_y, 0.0);
    double x1 = item->box_x + item->box_w, y1 = item->box_y + item->box_h;
    const guint x = (guint) x0, y = (guint) y0, w = (guint) (x1 - x0 + 0.5),
                h = (guint) (y1 - y0 + 0.5);
#if MONE_HAVE_ANALYTICS
    if (run->detections && x1 > x0 && y1 > y0) {
      GstAnalyticsRelationMeta *relations = gst_buffer_get_analytics_relation_meta (buffer);
      GstAnalyticsODMtd od;
      if (!relations)
        relations = gst_buffer_add_analytics_relation_meta (buffer);
      gst_analytics_relation_meta_add_od_mtd (relations, g_quark_from_static_string ("item"),
          (gint) x, (gint) y, (gint) w, (gint) h, 1.0f, &od);
    } else
#endif
        if (x1 > x0 && y1 > y0)
      gst_buffer_add_video_region_of_interest_meta (buffer, "item", x, y, w, h)->id = item->item;
    GST_PAD_PROBE_INFO_DATA (info) = buffer;
    break;
  }
  return GST_PAD_PROBE_OK;
}

/* After monefilter: the frame's answer (its region's, or the whole frame's) and the costs. */
static GstPadProbeReturn
read_result (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  RegionsRun *run = user_data;
  GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER (info);
  const GstStructure *fields = gst_buffer_get_mone_structure (buffer);
  MoneClassification c;
  MoneRegion region;
  guint64 frame;

  run->frames_out++;
  if (!fields || !gst_structure_get_uint64 (fields, "frame", &frame)
      || frame >= (guint64) run->labels->frames)
    return GST_PAD_PROBE_OK;
  if (run->regions) {
    guint classified = 0;
    double latency_ms = 0;
    if (gst_mone_meta_get_region_count (buffer) == 0
        || !gst_mone_region_from_structure (gst_mone_meta_get_region (buffer, 0), &region, &c))
      return GST_PAD_PROBE_OK;
    gst_structure_get_uint (fields, "regions-classified", &classified);
    gst_structure_get_double (fields, "latency-ms", &latency_ms);
    if (classified > 0) {
      double per_region = latency_ms / classified;
      g_array_append_val (run->region_ms, per_region);
    }
  } else if (!gst_mone_meta_read (buffer, &c)) {
    return GST_PAD_PROBE_OK;
  } else if (!c.reused) {
    g_array_append_val (run->region_ms, c.latency_ms);
  }
  if (!c.reused) {
    run->gflops_sum += c.gflops;
    run->classified++;
  }
  run->frame_class[frame] = c.top_class;
  run->frame_score[frame] = (float) c.top_score;
  return GST_PAD_PROBE_OK;
}

/* GStreamer's overlay for detections; red (ARGB 0xffff3030) boxes and labels, which its default
 * white would lose on light scenes. */
#define DETECTION_OVERLAY                                                                          \
  "videoconvert ! objectdetectionoverlay labels-color=4294914096 "                                 \
  "object-detection-outline-color=4294914096"

static gboolean
play (const char *video, const char *model, double budget, const char *output, RegionsRun *run,
    GError **error)
{
  /* Detections are drawn by GStreamer's own overlay, region metas by moneoverlay. */
  g_autofree char *tail = output
      ? g_strdup_printf ("%s ! videoconvert ! vp8enc deadline=1 ! matroskamux ! filesink name=sink",
          run->detections ? DETECTION_OVERLAY : "moneoverlay")
      : g_strdup ("fakesink");
  g_autofree char *launch =
      g_strdup_printf ("filesrc name=src ! decodebin ! videoconvert ! "
                       "monefilter name=f threads=1 budget=%g inference-region=%s ! "
                       "identity name=out ! %s",
          budget, run->regions ? "roi-list" : "full-frame", tail);
  GstElement *pipeline = gst_parse_launch_full (launch, NULL, GST_PARSE_FLAG_FATAL_ERRORS, error);
  if (!pipeline)
    return FALSE;
  GstElement *src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  GstElement *filter = gst_bin_get_by_name (GST_BIN (pipeline), "f");
  GstElement *out = gst_bin_get_by_name (GST_BIN (pipeline), "out");
  /* Paths as properties: no quoting in the launch line. */
  g_object_set (src, "location", video, NULL);
  if (output) {
    GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
    g_object_set (sink, "location", output, NULL);
    gst_object_unref (sink);
  }
  if (model)
    g_object_set (filter, "model", model, NULL);
  GstPad *in_pad = gst_element_get_static_pad (filter, "sink");
  GstPad *out_pad = gst_element_get_static_pad (out, "src");
  if (run->regions)
    gst_pad_add_probe (in_pad, GST_PAD_PROBE_TYPE_BUFFER, add_item_region, run, NULL);
  gst_pad_add_probe (out_pad, GST_PAD_PROBE_TYPE_BUFFER, read_result, run, NULL);
  gst_object_unref (in_pad);
  gst_object_unref (out_pad);

  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  gboolean ok = msg && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS;
  if (msg && !ok) {
    g_autofree char *debug = NULL;
    gst_message_parse_error (msg, error, &debug);
  }
  if (msg)
    gst_message_unref (msg);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (src);
  gst_object_unref (filter);
  gst_object_unref (out);
  gst_object_unref (pipeline);
  return ok;
}

static int
compare_doubles (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

/* Plays the video once and prints one line: items right, ms and GFLOPs per classification. */
static gboolean
report (const char *video, const char *model, double budget, gboolean regions, gboolean detections,
    const char *output, const SampleLabels *labels, GError **error)
{
  RegionsRun run = { .labels = labels, .regions = regions, .detections = regions && detections };
  int *verdicts = g_new (int, labels->count);
  gboolean ok;

  run.frame_class = g_new (int, labels->frames);
  run.frame_score = g_new0 (float, labels->frames);
  run.region_ms = g_array_new (FALSE, FALSE, sizeof (double));
  for (int f = 0; f < labels->frames; f++)
    run.frame_class[f] = -1;
  ok = play (video, model, budget, output, &run, error);
  /* A video cut short, or the labels of another render, would count frames never seen as wrong. */
  if (ok && run.frames_out != (guint64) labels->frames) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED,
        "the video has %" G_GUINT64_FORMAT
        " frames but its labels file describes %d: make the sample "
        "again (mone-sample-video), or give its own --labels",
        run.frames_out, labels->frames);
    ok = FALSE;
  }
  if (ok) {
    for (int i = 0; i < labels->count; i++)
      verdicts[i] = sample_item_verdict (&labels->items[i], run.frame_class, run.frame_score,
          labels->frames, 256);
    g_array_sort (run.region_ms, compare_doubles);
    printf ("%-12s budget %.2f  %5.1f%% of %d items  %7.3f ms and %.4f GFLOPs per %s (median ms)\n",
        regions ? "regions" : "whole frames", budget,
        100.0 * sample_labels_accuracy (labels, verdicts), labels->count,
        run.region_ms->len ? g_array_index (run.region_ms, double, run.region_ms->len / 2) : 0.0,
        run.classified ? run.gflops_sum / run.classified : 0.0, regions ? "region" : "frame");
    fflush (stdout);
  }
  g_free (verdicts);
  g_free (run.frame_class);
  g_free (run.frame_score);
  g_array_free (run.region_ms, TRUE);
  return ok;
}

int
main (int argc, char **argv)
{
  g_autofree char *video = NULL, *labels_path = NULL, *model = NULL, *budget_list = NULL,
                  *output = NULL;
  gboolean regions_only = FALSE, detections = FALSE;
  GOptionEntry entries[] = {
    { "video", 'v', 0, G_OPTION_ARG_FILENAME, &video, "Sample video (mone-sample-video)", "FILE" },
    { "labels", 'l', 0, G_OPTION_ARG_FILENAME, &labels_path,
        "Its labels CSV (default: FILE with .csv)", "CSV" },
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model, "Model file (default: the element's)",
        "MODEL" },
    { "budgets", 'b', 0, G_OPTION_ARG_STRING, &budget_list,
        "Comma-separated budgets (default 1,0.5)", "LIST" },
    { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output,
        "Also write the regions run, annotated by moneoverlay, to this Matroska file", "FILE" },
    { "regions-only", 0, 0, G_OPTION_ARG_NONE, &regions_only, "Skip the whole-frame runs", NULL },
    { "detections", 'd', 0, G_OPTION_ARG_NONE, &detections,
        "Supply the boxes as GstAnalyticsODMtd detections (GStreamer >= 1.24), drawn with "
        "objectdetectionoverlay",
        NULL },
    G_OPTION_ENTRY_NULL,
  };
  GOptionContext *octx = g_option_context_new (
      "- classify the items of a sample video as regions of interest");
  GError *error = NULL;
  SampleLabels labels = { 0 };
  int status = 0;

  g_option_context_add_main_entries (octx, entries, NULL);
  g_option_context_add_group (octx, gst_init_get_option_group ());
  if (!g_option_context_parse (octx, &argc, &argv, &error) || !video) {
    fprintf (stderr, "mone-regions: %s\n", error ? error->message : "--video FILE is required");
    g_clear_error (&error);
    g_option_context_free (octx);
    return 2;
  }
  g_option_context_free (octx);
#if !MONE_HAVE_ANALYTICS
  if (detections) {
    fprintf (stderr,
        "mone-regions: --detections needs GStreamer's analytics library (>= 1.24), "
        "which this build did not find\n");
    return 2;
  }
#endif
  if (!labels_path)
    labels_path = sample_labels_path_for (video);
  if (!sample_labels_load (labels_path, &labels, &error) || labels.count == 0
      || !labels.items[0].has_box) {
    fprintf (stderr, "mone-regions: %s\n",
        error ? error->message
              : "the labels CSV has no item boxes (made by an older mone-sample-video)");
    g_clear_error (&error);
    sample_labels_clear (&labels);
    return 1;
  }
  g_auto (GStrv) budgets = g_strsplit (budget_list ? budget_list : "1,0.5", ",", -1);
  for (int i = 0; budgets[i] && status == 0; i++) {
    char *end;
    double budget = g_ascii_strtod (budgets[i], &end);
    if (*end || !(budget > 0 && budget <= 1)) {
      fprintf (stderr, "mone-regions: budget '%s' is not a number in (0, 1]\n", budgets[i]);
      status = 2;
      break;
    }
    if (!report (video, model, budget, TRUE, detections, i == 0 ? output : NULL, &labels, &error)
        || (!regions_only && !report (video, model, budget, FALSE, FALSE, NULL, &labels, &error))) {
      fprintf (stderr, "mone-regions: %s\n", error ? error->message : "playback failed");
      g_clear_error (&error);
      status = 1;
    }
  }
  sample_labels_clear (&labels);
  return status;
}
