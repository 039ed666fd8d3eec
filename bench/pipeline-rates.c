/* pipeline-rates: frames per second of several GStreamer pipelines on the same frames, side by side.
 *
 *   pipeline-rates [--runs R] NAME=PIPELINE [NAME=PIPELINE...]
 *
 * Each PIPELINE is a gst-launch description that ends by itself (a source with num-buffers) and
 * names its sink "sink". The pipelines run in turn, R rounds, so that machine load affects all of
 * them alike; each run's rate is taken between the first and the last buffer at the sink (start-up
 * and model loading not counted). Prints, per pipeline, the median rate, the range over rounds,
 * and its rate over the first pipeline's (per round, median). */
#include <stdio.h>
#include <string.h>

#include "pipeline-timing.h"

typedef struct {
  char *name, *description;
  double *fps, *ratio;
} Pipeline;

int
main (int argc, char **argv)
{
  int runs = 5;
  GOptionEntry entries[] = { { "runs", 'r', 0, G_OPTION_ARG_INT, &runs,
                                 "Rounds, medians reported (default 5)", "R" },
    G_OPTION_ENTRY_NULL };
  GOptionContext *octx = g_option_context_new ("NAME=PIPELINE... - frame rates of pipelines");
  GError *error = NULL;
  int status = 1, n = 0;
  Pipeline *pipelines = NULL;

  g_option_context_add_main_entries (octx, entries, NULL);
  g_option_context_add_group (octx, gst_init_get_option_group ());
  if (!g_option_context_parse (octx, &argc, &argv, &error)) {
    fprintf (stderr, "pipeline-rates: %s\n", error->message);
    status = 2;
    goto out;
  }
  if (argc < 2 || runs < 1) {
    fprintf (stderr, "usage: pipeline-rates [--runs R >= 1] NAME=PIPELINE...\n");
    status = 2;
    goto out;
  }
  pipelines = g_new0 (Pipeline, argc - 1);
  for (int i = 1; i < argc; i++, n++) {
    const char *eq = strchr (argv[i], '=');
    if (!eq || eq == argv[i]) {
      fprintf (stderr, "pipeline-rates: '%s' is not NAME=PIPELINE\n", argv[i]);
      status = 2;
      goto out;
    }
    pipelines[n].name = g_strndup (argv[i], eq - argv[i]);
    pipelines[n].description = g_strdup (eq + 1);
    pipelines[n].fps = g_new0 (double, runs);
    pipelines[n].ratio = g_new0 (double, runs);
  }

  for (int r = 0; r < runs; r++)
    for (int i = 0; i < n; i++) {
      Pipeline *p = &pipelines[i];
      if ((p->fps[r] = bench_pipeline_fps (p->description, &error)) < 0) {
        fprintf (stderr, "pipeline-rates: %s: %s\n", p->name, error->message);
        goto out;
      }
      p->ratio[r] = p->fps[r] / pipelines[0].fps[r];
    }

  printf ("%-28s %10s %10s %10s %14s\n", "pipeline", "fps", "min", "max", "over first");
  for (int i = 0; i < n; i++) {
    Pipeline *p = &pipelines[i];
    /* bench_median sorts: after it, fps[0] and fps[runs - 1] are the extremes. */
    const double ratio = bench_median (p->ratio, runs), fps = bench_median (p->fps, runs);
    printf ("%-28s %10.1f %10.1f %10.1f %14.2f\n", p->name, fps, p->fps[0], p->fps[runs - 1],
        ratio);
  }
  status = 0;

out:
  g_clear_error (&error);
  for (int i = 0; i < n; i++) {
    g_free (pipelines[i].name);
    g_free (pipelines[i].description);
    g_free (pipelines[i].fps);
    g_free (pipelines[i].ratio);
  }
  g_free (pipelines);
  g_option_context_free (octx);
  return status;
}
