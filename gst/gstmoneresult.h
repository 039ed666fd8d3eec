/* gst-mone: monefilter's results, as the GstStructure its meta and its messages carry.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_MONE_RESULT_H__
#define __GST_MONE_RESULT_H__

#include <gst/gst.h>

#include <mone/mone.h>

#include "gstmoneinput.h"

G_BEGIN_DECLS

/* How a result came about, beyond what MoneResult says. */
typedef struct
{
  guint64 frame;                /* the frame classified */
  guint top_k;                  /* classes listed, best first */
  gboolean budget_auto;         /* the budget was chosen by budget-mode=auto */
  gdouble budget_requested;
  gint64 latency_ns;            /* conversion and inference */
} GstMoneResultInfo;

/* Which frame a buffer is and whether it carries a result of its own. */
typedef struct
{
  guint64 frame;
  gboolean reused;
  GstClockTime timestamp, stream_time, running_time, duration;
} GstMoneFrameStamp;

/* The result's fields ("mone-classification": top-k, budget, cost, expert grid, and the geometry
 * and window of `input` it was computed from). Free with gst_structure_free(). */
GstStructure *gst_mone_result_new (MoneModel * model, const MoneResult * result,
    const GstMoneInput * input, const GstMoneResultInfo * info);

/* Attaches `result`, stamped for this buffer, as the buffer's GstMoneMeta (and, with GStreamer's
 * analytics library, as a classification in its relation meta). With `message` non-NULL also
 * returns a copy named for an element message. FALSE when the meta cannot be attached. */
gboolean gst_mone_result_attach (GstBuffer * buffer, const GstStructure * result,
    const GstMoneFrameStamp * stamp, GstStructure ** message);

G_END_DECLS

#endif /* __GST_MONE_RESULT_H__ */
