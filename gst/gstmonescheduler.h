/* gst-mone: monefilter's frame scheduler. Decides per frame whether to classify it or let it carry
 * the latest result, and at which budget: the interval, the auto-mode deadline, sustained overload
 * and catching up after an overrun. Pure: every time and duration is an input (no clock is read),
 * so it runs on a simulated clock as well as on a real one.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_MONE_SCHEDULER_H__
#define __GST_MONE_SCHEDULER_H__

#include <gst/gst.h>

G_BEGIN_DECLS

/* Deadline in auto mode when neither max-latency nor the caps nor the buffers give a frame rate. */
#define GST_MONE_SCHEDULER_FALLBACK_FRAME_DURATION (GST_SECOND / 30)
/* Longest run of frames auto mode lets share one result when even the minimum budget is late:
 * about a second of video at 30 fps. */
#define GST_MONE_SCHEDULER_MAX_OVERLOAD_INTERVAL 30

/* What is known of one frame when it arrives. */
typedef struct
{
  gboolean auto_budget;         /* budget-mode=auto */
  gdouble budget;               /* the budget (fixed mode) or its ceiling (auto mode) */
  guint interval;               /* classify at least every Nth frame */
  GstClockTime max_latency;     /* per-frame deadline; 0: the frame duration */
  GstClockTime frame_duration;  /* from the caps, or GST_CLOCK_TIME_NONE */
  GstClockTime buffer_duration; /* of this buffer, or GST_CLOCK_TIME_NONE */
  gboolean render_time_known;   /* a synchronising sink downstream says when frames are due */
  gint64 time_left;             /* ns until this frame is due there (< 0: already late) */
  guint runs;                   /* model runs classifying it takes (regions); 0 counts as 1 */
} GstMoneSchedulerFrame;

typedef struct
{
  gboolean fresh;               /* classify this frame; else it carries the latest result */
  gdouble budget;               /* the budget to classify it at (when fresh) */
  gboolean auto_budget;         /* the budget was chosen for the deadline */
  guint interval;               /* the interval in force: the property's, or more when overloaded */
  gint64 deadline;              /* auto mode: ns per frame the stream allows; 0 in fixed mode */
  gint64 frame_deadline;        /* auto mode: ns this frame has, at most `deadline` */
  gboolean catching_up;         /* reused because an earlier frame overran */
  guint runs;                   /* the frame's runs (at least 1): the deadline is shared by them */
} GstMoneSchedulerDecision;

typedef struct _GstMoneScheduler GstMoneScheduler;

/* min_budget: the smallest budget the model runs at (auto mode never goes below it). */
GstMoneScheduler *gst_mone_scheduler_new (gdouble min_budget);
void gst_mone_scheduler_free (GstMoneScheduler * scheduler);

/* A new stream, a gap or a discontinuity: no result to reuse, the next frame is classified. */
void gst_mone_scheduler_reset (GstMoneScheduler * scheduler);
/* A flush (seek): reset, and forget what downstream QoS said about the old position (the learned
 * latency describes the machine and is kept). */
void gst_mone_scheduler_flush (GstMoneScheduler * scheduler);
/* A QoS event from downstream (proportion and jitter as gst_event_parse_qos gives them). */
void gst_mone_scheduler_qos (GstMoneScheduler * scheduler, gdouble proportion, gint64 jitter);

/* The auto-mode deadline of `frame` in ns: max-latency, else the caps' frame duration, else the
 * buffer's, else GST_MONE_SCHEDULER_FALLBACK_FRAME_DURATION. */
gint64 gst_mone_scheduler_frame_deadline (const GstMoneSchedulerFrame * frame);

/* Decides for the next frame. Follow with gst_mone_scheduler_classified() when the frame was
 * classified as decided, else with gst_mone_scheduler_reused(). */
void gst_mone_scheduler_decide (GstMoneScheduler * scheduler, const GstMoneSchedulerFrame * frame,
    GstMoneSchedulerDecision * decision);
/* The frame was classified at `budget_used` in `latency_ns` (conversion included, all its runs):
 * auto mode learns the time of one run from it; the result is the one later frames reuse. */
void gst_mone_scheduler_classified (GstMoneScheduler * scheduler,
    const GstMoneSchedulerDecision * decision, gdouble budget_used, gint64 latency_ns);
/* The frame carried the latest result. */
void gst_mone_scheduler_reused (GstMoneScheduler * scheduler);

/* Predicted ns for one frame at `budget` (-1 before anything was learned): what auto mode
 * believes the engine costs, for debugging and tests. */
gint64 gst_mone_scheduler_predict (const GstMoneScheduler * scheduler, gdouble budget);

G_END_DECLS

#endif /* __GST_MONE_SCHEDULER_H__ */
