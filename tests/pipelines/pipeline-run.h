/* Runs a pipeline description to EOS and collects what monefilter attached to every buffer that
 * reached the element named "sink", plus the mone-classification messages on the bus. */
#ifndef MONE_TEST_PIPELINE_RUN_H
#define MONE_TEST_PIPELINE_RUN_H

#include <glib.h>

typedef struct {
  int top_class;
  float top_score;
  double budget_used;
  double gflops;
  gboolean reused;
  gboolean has_meta;
} FrameResult;

typedef struct {
  GArray *frames;        /* FrameResult, in arrival order at the sink */
  int messages;          /* mone-classification element messages */
  gboolean eos;          /* FALSE: the timeout ended the run */
} PipelineRun;

/* FALSE with the pipeline's error (or parse error); a timeout is not an error (run->eos FALSE). */
gboolean pipeline_run (const char *description, guint timeout_seconds, PipelineRun *run,
    GError **error);
void pipeline_run_clear (PipelineRun *run);

/* Runs argv (NULL-terminated) and fails with its stderr when it exits non-zero. */
gboolean run_tool (const char *const *argv, GError **error);

/* Double-quoted for a gst-launch description. */
char *pipeline_quote (const char *path);

#endif
