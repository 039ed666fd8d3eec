/* Frames per second of a GStreamer pipeline, for the benchmarks that compare pipelines. */
#ifndef MONE_BENCH_PIPELINE_TIMING_H
#define MONE_BENCH_PIPELINE_TIMING_H

#include <gst/gst.h>

#include "bench-stats.h"

/* Runs the pipeline `description` (which must contain an element named "sink" and end by itself,
 * e.g. a source with num-buffers) to EOS and returns the rate at which buffers reached "sink"
 * between the first and the last one, so start-up (model loading, negotiation) is not counted.
 * Returns -1 with error set on a parse or pipeline error, or when fewer than two buffers came. */
double bench_pipeline_fps (const char *description, GError **error);

/* TRUE when the registry has the element. */
gboolean bench_has_element (const char *name);

#endif
