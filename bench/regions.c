/* regions: what monefilter inference-region=roi-list costs per frame and per region.
 *
 * A 1280x720 I420 stream (videotestsrc) gets R regions of interest per frame on a grid, as an
 * upstream detector would put them; monefilter classifies each. For every budget the program runs
 * the stream and prints the median over frames of the frame's latency (conversion and inference of
 * all regions, from the meta), that latency per region, and the GFLOPs; the whole frame classified
 * once (inference-region=full-frame) is printed beside it. Rounds alternate the budgets.
 *
 *   regions MODEL [REGIONS [FRAMES [ROUNDS]]]      (defaults: 100 regions, 60 frames, 3 rounds)
 */
#include <stdio.h>
#include <stdlib.h>

#include <gst/gst.h>
#include <gst/video/video.h>
#include <mone/gstmonemeta.h>

#define WIDTH 1280
#define HEIGHT 720

typedef struct {
  guint regions;
  GArray *latency_ms; /* double, one per frame */
  double gflops;      /* of the last frame */
  guint classified;   /* regions classified on the last frame */
} Run;

/* Before monefilter: a grid of `regions` boxes covering the frame. */
static GstPadProbeReturn
add_regions (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  Run *run = user_data;
  GstBuffer *buffer = gst_buffer_make_writable (GST_PAD_PROBE_INFO_BUFFER (info));
  guint columns = 1;

  while (columns * columns < run->regions)
    columns++;
  guint rows = (run->regions + columns - 1) / columns;
  for (guint i = 0; i < run->regions; i++) {
    guint w = WIDTH / columns, h = HEIGHT / rows;
    gst_buffer_add_video_region_of_interest_meta (buffer, "item", (i % columns) * w,
        (i / columns) * h, w, h)
        ->id = (gint) i;
  }
  GST_PAD_PROBE_INFO_DATA (info) = buffer;
  return GST_PAD_PROBE_OK;
}

/* After monefilter: the frame's figures from its meta. */
static GstPadProbeReturn
read_meta (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  Run *run = user_data;
  const GstStructure *s = gst_buffer_get_mone_structure (GST_PAD_PROBE_INFO_BUFFER (info));
  double latency_ms = 0;

  if (s && gst_structure_get_double (s, "latency-ms", &latency_ms)) {
    g_array_append_val (run->latency_ms, latency_ms);
    gst_structure_get_double (s, "gflops", &run->gflops);
    gst_structure_get_uint (s, "regions-classified", &run->classified);
  }
  return GST_PAD_PROBE_OK;
}

static int
compare_doubles (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

static double
median (GArray *values)
{
  g_array_sort (values, compare_doubles);
  return values->len ? g_array_index (values, double, values->len / 2) : 0.0;
}

/* One stream at one budget; regions 0: the whole frame (inference-region=full-frame). */
static gboolean
run_stream (const char *model, double budget, guint regions, int frames, Run *run)
{
  char *launch =
      g_strdup_printf ("videotestsrc num-buffers=%d pattern=ball ! "
                       "video/x-raw,format=I420,width=%d,height=%d,framerate=30/1 ! "
                       "monefilter name=f model=\"%s\" threads=1 budget=%g inference-region=%s ! "
                       "fakesink name=sink",
          frames, WIDTH, HEIGHT, model, budget, regions ? "roi-list" : "full-frame");
  GError *error = NULL;
  GstElement *pipeline = gst_parse_launch_full (launch, NULL, GST_PARSE_FLAG_FATAL_ERRORS, &error);
  g_free (launch);
  if (!pipeline) {
    fprintf (stderr, "regions: %s\n", error->message);
    g_error_free (error);
    return FALSE;
  }
  run->regions = regions;
  g_array_set_size (run->latency_ms, 0);
  GstElement *filter = gst_bin_get_by_name (GST_BIN (pipeline), "f");
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  GstPad *filter_sink = gst_element_get_static_pad (filter, "sink");
  GstPad *sink_pad = gst_element_get_static_pad (sink, "sink");
  if (regions)
    gst_pad_add_probe (filter_sink, GST_PAD_PROBE_TYPE_BUFFER, add_regions, run, NULL);
  gst_pad_add_probe (sink_pad, GST_PAD_PROBE_TYPE_BUFFER, read_meta, run, NULL);

  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *msg = gst_bus_timed_pop_filtered (bus, GST_CLOCK_TIME_NONE,
      GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  gboolean ok = msg && GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS;
  if (!ok && msg) {
    gst_message_parse_error (msg, &error, NULL);
    fprintf (stderr, "regions: %s\n", error->message);
    g_error_free (error);
  }
  if (msg)
    gst_message_unref (msg);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (filter_sink);
  gst_object_unref (sink_pad);
  gst_object_unref (filter);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  return ok;
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  if (argc < 2) {
    fprintf (stderr, "usage: regions MODEL [REGIONS [FRAMES [ROUNDS]]]\n");
    return 2;
  }
  const char *model = argv[1];
  const guint regions = argc > 2 ? (guint) atoi (argv[2]) : 100;
  const int frames = argc > 3 ? atoi (argv[3]) : 60, rounds = argc > 4 ? atoi (argv[4]) : 3;
  const double budgets[] = { 1.0, 0.5, 0.25 };
  enum { N_BUDGETS = G_N_ELEMENTS (budgets) };
  GArray *per_budget[N_BUDGETS + 1]; /* medians of each round; the last: the whole frame at 1 */
  double gflops[N_BUDGETS + 1] = { 0 };
  guint classified[N_BUDGETS + 1] = { 0 };
  Run run = { .latency_ms = g_array_new (FALSE, FALSE, sizeof (double)) };

  if (regions == 0 || frames < 2 || rounds < 1) {
    fprintf (stderr, "regions: REGIONS >= 1, FRAMES >= 2, ROUNDS >= 1\n");
    return 2;
  }
  for (int b = 0; b <= N_BUDGETS; b++)
    per_budget[b] = g_array_new (FALSE, FALSE, sizeof (double));
  for (int r = 0; r < rounds; r++)
    for (int i = 0; i <= N_BUDGETS; i++) {
      int b = (i + r) % (N_BUDGETS + 1); /* the order rotates from round to round */
      gboolean whole = b == N_BUDGETS;
      if (!run_stream (model, whole ? 1.0 : budgets[b], whole ? 0 : regions, frames, &run))
        return 1;
      g_array_remove_index (run.latency_ms, 0); /* the first frame builds the converters */
      double m = median (run.latency_ms);
      g_array_append_val (per_budget[b], m);
      gflops[b] = run.gflops;
      classified[b] = run.classified;
    }

  printf ("model %s, %dx%d I420, %u regions per frame (grid), %d frames x %d rounds, 1 thread\n",
      model, WIDTH, HEIGHT, regions, frames, rounds);
  printf ("%-24s %12s %12s %14s %12s\n", "", "ms/frame", "ms/region", "GFLOPs/frame", "regions");
  for (int b = 0; b <= N_BUDGETS; b++) {
    double ms = median (per_budget[b]);
    gboolean whole = b == N_BUDGETS;
    char name[64];
    if (whole)
      g_snprintf (name, sizeof name, "whole frame, budget 1");
    else
      g_snprintf (name, sizeof name, "regions, budget %.2f", budgets[b]);
    printf ("%-24s %12.2f %12.3f %14.3f %12u\n", name, ms, whole ? ms : ms / regions, gflops[b],
        whole ? 1 : classified[b]);
    g_array_free (per_budget[b], TRUE);
  }
  g_array_free (run.latency_ms, TRUE);
  return 0;
}
