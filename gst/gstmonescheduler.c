/* gst-mone: monefilter's frame scheduler.
 *
 * Fixed mode classifies every `interval`th frame at the budget property. Auto mode gives every
 * frame a deadline (the time per frame the stream allows) and lets the budget controller pick the
 * largest budget whose predicted latency fits it; two things lowering the budget cannot fix are
 * handled here:
 * - sustained overload (even the minimum budget is predicted to miss the deadline: a loaded
 *   machine, a stream faster than the model): only every Nth frame is classified, N chosen so the
 *   inference time per frame fits again, and the frames between carry the latest result;
 * - an overrun (one frame took longer, a CPU hog starting): the next frames have less time before
 *   they are due at the sink; one that would be late even at the minimum budget carries the
 *   latest result instead, so the delay is not passed on from frame to frame.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmonescheduler.h"

#include <math.h>
#include <string.h>

#include "gstmonebudget.h"

struct _GstMoneScheduler
{
  gdouble min_budget;
  GstMoneBudgetController *controller;
  gboolean have_result;         /* a result exists that frames may carry */
  guint frames_since_result;    /* frames that carried it */
};

GstMoneScheduler *
gst_mone_scheduler_new (gdouble min_budget)
{
  GstMoneScheduler *scheduler = g_new0 (GstMoneScheduler, 1);

  scheduler->min_budget = min_budget;
  scheduler->controller = gst_mone_budget_controller_new (min_budget);
  return scheduler;
}

void
gst_mone_scheduler_free (GstMoneScheduler * scheduler)
{
  if (!scheduler)
    return;
  gst_mone_budget_controller_free (scheduler->controller);
  g_free (scheduler);
}

void
gst_mone_scheduler_reset (GstMoneScheduler * scheduler)
{
  scheduler->have_result = FALSE;
  scheduler->frames_since_result = 0;
}

void
gst_mone_scheduler_flush (GstMoneScheduler * scheduler)
{
  gst_mone_budget_controller_flush (scheduler->controller);
  gst_mone_scheduler_reset (scheduler);
}

void
gst_mone_scheduler_qos (GstMoneScheduler * scheduler, gdouble proportion, gint64 jitter)
{
  gst_mone_budget_controller_qos (scheduler->controller, proportion, jitter);
}

gint64
gst_mone_scheduler_frame_deadline (const GstMoneSchedulerFrame * frame)
{
  GstClockTime deadline = frame->max_latency != 0 ? frame->max_latency : frame->frame_duration;

  if (!GST_CLOCK_TIME_IS_VALID (deadline) || deadline == 0)
    deadline = GST_CLOCK_TIME_IS_VALID (frame->buffer_duration) && frame->buffer_duration > 0
        ? frame->buffer_duration : GST_MONE_SCHEDULER_FALLBACK_FRAME_DURATION;
  return (gint64) MIN (deadline, (GstClockTime) G_MAXINT64);
}

gint64
gst_mone_scheduler_predict (const GstMoneScheduler * scheduler, gdouble budget)
{
  return gst_mone_budget_controller_predict (scheduler->controller, budget);
}

/* Frames per classification that make `runs` runs at the minimum budget fit `deadline` (with the
 * controller's safety margin): 1 when they fit, at most
 * GST_MONE_SCHEDULER_MAX_OVERLOAD_INTERVAL. */
static guint
overload_interval (const GstMoneScheduler * scheduler, gint64 deadline, guint runs)
{
  GstMoneBudgetModel latency_model;
  gint64 predicted = gst_mone_budget_controller_predict (scheduler->controller,
      scheduler->min_budget);
  gdouble needed;

  if (predicted <= 0 || deadline <= 0)
    return 1;
  gst_mone_budget_controller_get_model (scheduler->controller, &latency_model);
  needed = predicted * (gdouble) runs *(1.0 + latency_model.margin) / (gdouble) deadline;
  return needed <= 1.0 ? 1 : (guint) MIN (ceil (needed), GST_MONE_SCHEDULER_MAX_OVERLOAD_INTERVAL);
}

/* This frame has less than a frame's time left (an earlier one overran) and even the minimum
 * budget would make it late, although the minimum fits a whole frame's time. Only ever a short
 * skip: sustained overload is the interval's business, and never past the overload cap. */
static gboolean
behind_schedule (const GstMoneScheduler * scheduler, const GstMoneSchedulerDecision * d)
{
  return d->frame_deadline < d->deadline && d->interval == 1
      && scheduler->frames_since_result + 1 < GST_MONE_SCHEDULER_MAX_OVERLOAD_INTERVAL
      && (d->frame_deadline <= 0 || overload_interval (scheduler, d->frame_deadline, d->runs) > 1);
}

void
gst_mone_scheduler_decide (GstMoneScheduler * scheduler, const GstMoneSchedulerFrame * frame,
    GstMoneSchedulerDecision * d)
{
  memset (d, 0, sizeof *d);
  d->budget = frame->budget;
  d->auto_budget = frame->auto_budget;
  d->interval = frame->interval;
  d->runs = MAX (frame->runs, 1);
  if (frame->auto_budget) {
    d->deadline = d->frame_deadline = gst_mone_scheduler_frame_deadline (frame);
    d->interval = MAX (d->interval, overload_interval (scheduler, d->deadline, d->runs));
    if (frame->render_time_known)
      d->frame_deadline = MIN (d->frame_deadline, frame->time_left);
  }
  d->fresh = !scheduler->have_result || scheduler->frames_since_result + 1 >= d->interval;
  if (d->fresh && scheduler->have_result && behind_schedule (scheduler, d)) {
    d->fresh = FALSE;
    d->catching_up = TRUE;
  }
  /* Every run gets an equal share of the frame's time. */
  if (d->fresh && d->auto_budget)
    d->budget = gst_mone_budget_controller_choose (scheduler->controller, frame->budget,
        MAX (d->frame_deadline / d->runs, 1));
}

void
gst_mone_scheduler_classified (GstMoneScheduler * scheduler,
    const GstMoneSchedulerDecision * decision, gdouble budget_used, gint64 latency_ns)
{
  if (decision->auto_budget)
    gst_mone_budget_controller_observe (scheduler->controller, budget_used,
        latency_ns / MAX (decision->runs, 1));
  scheduler->have_result = TRUE;
  scheduler->frames_since_result = 0;
}

void
gst_mone_scheduler_reused (GstMoneScheduler * scheduler)
{
  scheduler->frames_since_result++;
}
