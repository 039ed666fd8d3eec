/* monefilter's frame scheduler on a simulated clock (gst-check).
 *
 * A live source delivers frame i at i * PERIOD; a synchronising sink renders it at
 * i * PERIOD + LATENCY (the pipeline latency). The element starts a frame when it arrives or when
 * the previous one is done, whichever is later; classifying takes a simulated engine's time,
 * load * (OVERHEAD + SLOPE * budget) per run (a frame of regions takes one run per region);
 * carrying the latest result takes none. A frame is late when
 * it is done after its render time. The scheduler reads no clock, so all of this is exact and
 * deterministic.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <math.h>

#include <gst/check/gstcheck.h>

#include "gstmonescheduler.h"

#define MIN_BUDGET 0.125        /* a four-expert model */
#define OVERHEAD_NS 2000000.0   /* 2 ms at any budget */
#define SLOPE_NS 8000000.0      /* +8 ms from budget 0 to 1: budget 1 takes 10 ms */
#define PERIOD (GST_SECOND / 30)
#define LATENCY PERIOD          /* a frame is due one period after it arrives */

typedef struct
{
  GstMoneScheduler *scheduler;
  GstMoneSchedulerFrame frame;  /* the settings every frame is decided with */
  gdouble load;                 /* engine slowdown: 1 as learned */
  GstClockTime now;             /* the simulated clock */
  guint64 index;                /* next frame */
  /* Counted over the frames since the last stream_reset_counts(). */
  guint fresh, reused, late, caught_up;
  gdouble min_budget, max_budget;
  guint max_interval;
  GstClockTime max_lag;         /* how long after its arrival a frame was done at most */
} SimulatedStream;

static void
stream_reset_counts (SimulatedStream * s)
{
  s->fresh = s->reused = s->late = s->caught_up = 0;
  s->min_budget = G_MAXDOUBLE;
  s->max_budget = 0;
  s->max_interval = 0;
  s->max_lag = 0;
}

static void
stream_init (SimulatedStream * s, gboolean auto_budget, guint interval)
{
  memset (s, 0, sizeof *s);
  s->scheduler = gst_mone_scheduler_new (MIN_BUDGET);
  s->frame.auto_budget = auto_budget;
  s->frame.budget = 1.0;
  s->frame.interval = interval;
  s->frame.max_latency = 0;
  s->frame.frame_duration = PERIOD;
  s->frame.buffer_duration = PERIOD;
  s->load = 1.0;
  stream_reset_counts (s);
}

static gint64
engine_ns (gdouble load, gdouble budget)
{
  return (gint64) (load * (OVERHEAD_NS + SLOPE_NS * budget));
}

/* One frame through the scheduler and the simulated engine; returns its decision. */
static GstMoneSchedulerDecision
stream_step (SimulatedStream * s)
{
  GstClockTime arrival = s->index * PERIOD, due = arrival + LATENCY;
  GstMoneSchedulerDecision d;

  s->now = MAX (s->now, arrival);
  s->frame.render_time_known = TRUE;
  s->frame.time_left = GST_CLOCK_DIFF (s->now, due);
  gst_mone_scheduler_decide (s->scheduler, &s->frame, &d);
  if (d.fresh) {
    gint64 latency = engine_ns (s->load, d.budget) * MAX (s->frame.runs, 1);

    s->now += latency;
    gst_mone_scheduler_classified (s->scheduler, &d, d.budget, latency);
    s->fresh++;
    s->late += s->now > due;
    s->min_budget = MIN (s->min_budget, d.budget);
    s->max_budget = MAX (s->max_budget, d.budget);
  } else {
    gst_mone_scheduler_reused (s->scheduler);
    s->reused++;
    s->caught_up += d.catching_up;
  }
  s->max_interval = MAX (s->max_interval, d.interval);
  s->max_lag = MAX (s->max_lag, s->now - arrival);
  s->index++;
  return d;
}

static void
stream_run (SimulatedStream * s, guint frames)
{
  for (guint i = 0; i < frames; i++)
    stream_step (s);
}

static void
stream_clear (SimulatedStream * s)
{
  gst_mone_scheduler_free (s->scheduler);
}

/* After a warm-up, 300 frames: none late or reused, every budget at most `best` (the largest
 * whose runs fit) and at least 0.8 of it; and what was learned of one run: 6 ms at budget 0.5,
 * within 10%. */
static void
check_settles_below (SimulatedStream * s, gdouble best)
{
  stream_run (s, 100);
  stream_reset_counts (s);
  stream_run (s, 300);
  fail_unless_equals_int (s->late, 0);
  fail_unless_equals_int (s->reused, 0);
  fail_unless (s->max_budget <= best, "budget %f above the largest that fits, %f", s->max_budget,
      best);
  fail_unless (s->min_budget >= 0.8 * best, "budget %f far under the largest that fits, %f",
      s->min_budget, best);
  fail_unless (fabs (gst_mone_scheduler_predict (s->scheduler, 0.5) - 6e6) < 0.6e6,
      "predicts %" G_GINT64_FORMAT " ns per run at budget 0.5, a run takes 6 ms",
      gst_mone_scheduler_predict (s->scheduler, 0.5));
}

/* ---- fixed mode ---- */

GST_START_TEST (test_fixed_interval_counting)
{
  SimulatedStream s;

  stream_init (&s, FALSE, 3);
  s.frame.budget = 0.5;
  for (guint i = 0; i < 10; i++) {
    GstMoneSchedulerDecision d = stream_step (&s);

    fail_unless_equals_int (d.fresh, i % 3 == 0);
    fail_unless_equals_float (d.budget, 0.5);
    fail_unless (!d.catching_up && d.deadline == 0, "fixed mode has no deadline");
  }
  fail_unless_equals_int (s.fresh, 4);
  fail_unless_equals_int (s.reused, 6);
  stream_clear (&s);
}

GST_END_TEST;

/* The interval counts frames since the latest result: lowered while playing, it takes effect on
 * the next frame; raised, the current result lasts longer. */
GST_START_TEST (test_interval_change_counts_from_last_result)
{
  SimulatedStream s;

  stream_init (&s, FALSE, 4);
  fail_unless (stream_step (&s).fresh);
  fail_unless (!stream_step (&s).fresh);        /* 1 frame since the result */
  s.frame.interval = 2;
  fail_unless (stream_step (&s).fresh, "interval 2 after 2 frames since the result");
  s.frame.interval = 5;
  for (guint i = 0; i < 4; i++)
    fail_unless (!stream_step (&s).fresh, "frame %u after the result reused it", i + 1);
  fail_unless (stream_step (&s).fresh);
  stream_clear (&s);
}

GST_END_TEST;

/* A reset (new stream, gap, discontinuity) or a flush: nothing to reuse, the next frame is
 * classified whatever the interval. */
GST_START_TEST (test_reset_classifies_next_frame)
{
  SimulatedStream s;

  stream_init (&s, FALSE, 10);
  fail_unless (stream_step (&s).fresh);
  fail_unless (!stream_step (&s).fresh);
  gst_mone_scheduler_reset (s.scheduler);
  fail_unless (stream_step (&s).fresh, "first frame after a reset reused a result");
  fail_unless (!stream_step (&s).fresh);
  gst_mone_scheduler_flush (s.scheduler);
  fail_unless (stream_step (&s).fresh, "first frame after a flush reused a result");
  stream_clear (&s);
}

GST_END_TEST;

/* ---- auto mode ---- */

/* The deadline: max-latency, else the caps' frame duration, else the buffer's, else 30 fps. */
GST_START_TEST (test_deadline_sources)
{
  GstMoneSchedulerFrame f = {.auto_budget = TRUE,.budget = 1.0,.interval = 1,
    .max_latency = 5 * GST_MSECOND,.frame_duration = 40 * GST_MSECOND,
    .buffer_duration = 20 * GST_MSECOND
  };

  fail_unless_equals_int64 (gst_mone_scheduler_frame_deadline (&f), 5 * GST_MSECOND);
  f.max_latency = 0;
  fail_unless_equals_int64 (gst_mone_scheduler_frame_deadline (&f), 40 * GST_MSECOND);
  f.frame_duration = GST_CLOCK_TIME_NONE;
  fail_unless_equals_int64 (gst_mone_scheduler_frame_deadline (&f), 20 * GST_MSECOND);
  f.buffer_duration = GST_CLOCK_TIME_NONE;
  fail_unless_equals_int64 (gst_mone_scheduler_frame_deadline (&f),
      GST_MONE_SCHEDULER_FALLBACK_FRAME_DURATION);
}

GST_END_TEST;

/* A deadline budget 1 fits (33 ms, budget 1 takes 10 ms): every frame is classified, none late,
 * and the budget climbs to the ceiling. */
GST_START_TEST (test_deadlines_met_at_ceiling)
{
  SimulatedStream s;

  stream_init (&s, TRUE, 1);
  stream_run (&s, 100);
  stream_reset_counts (&s);
  stream_run (&s, 300);
  fail_unless_equals_int (s.reused, 0);
  fail_unless_equals_int (s.late, 0);
  fail_unless_equals_float (s.min_budget, 1.0);
  stream_clear (&s);
}

GST_END_TEST;

/* A deadline only part of the budget range fits (8 ms: budgets up to 0.75): no frame late after
 * the first ones, and the budget used is close under the largest that fits. */
GST_START_TEST (test_deadlines_met_below_ceiling)
{
  SimulatedStream s;
  const gdouble best = (8e6 - OVERHEAD_NS) / SLOPE_NS;

  stream_init (&s, TRUE, 1);
  s.frame.max_latency = 8 * GST_MSECOND;
  check_settles_below (&s, best);
  stream_clear (&s);
}

GST_END_TEST;

/* Frames of 5 regions: the frame's 33 ms are shared by 5 runs, so each gets the largest budget
 * whose run fits 6.7 ms; and what is learned is the time of one run. */
GST_START_TEST (test_runs_share_deadline)
{
  SimulatedStream s;
  const gdouble best = (PERIOD / 5.0 - OVERHEAD_NS) / SLOPE_NS;

  stream_init (&s, TRUE, 1);
  s.frame.runs = 5;
  check_settles_below (&s, best);

  /* One region per frame again: the full budget fits. */
  s.frame.runs = 1;
  stream_run (&s, 100);
  stream_reset_counts (&s);
  stream_run (&s, 100);
  fail_unless_equals_float (s.min_budget, 1.0);
  stream_clear (&s);
}

GST_END_TEST;

/* Downstream reports lateness: the next budget is lower than before. */
GST_START_TEST (test_qos_lowers_budget)
{
  SimulatedStream s;
  gdouble before, after;

  stream_init (&s, TRUE, 1);
  s.frame.max_latency = 8 * GST_MSECOND;
  stream_run (&s, 100);
  before = stream_step (&s).budget;
  gst_mone_scheduler_qos (s.scheduler, 1.5, 5 * GST_MSECOND);
  after = stream_step (&s).budget;
  fail_unless (after < before, "budget %f after a late QoS event, %f before", after, before);
  stream_clear (&s);
}

GST_END_TEST;

/* A frame whose render time has passed, or that has less time left than the minimum budget
 * needs, carries the latest result; one with time left is classified. */
GST_START_TEST (test_catch_up_reuses_late_frame)
{
  SimulatedStream s;
  GstMoneSchedulerDecision d;

  stream_init (&s, TRUE, 1);
  stream_run (&s, 50);
  s.frame.render_time_known = TRUE;
  s.frame.time_left = -GST_MSECOND;
  gst_mone_scheduler_decide (s.scheduler, &s.frame, &d);
  fail_unless (!d.fresh && d.catching_up, "a frame already late was classified");
  gst_mone_scheduler_reused (s.scheduler);

  s.frame.time_left = GST_USECOND;
  gst_mone_scheduler_decide (s.scheduler, &s.frame, &d);
  fail_unless (!d.fresh && d.catching_up, "a frame with 1 us left was classified");
  gst_mone_scheduler_reused (s.scheduler);

  s.frame.time_left = 20 * GST_MSECOND;
  gst_mone_scheduler_decide (s.scheduler, &s.frame, &d);
  fail_unless (d.fresh && !d.catching_up, "a frame with 20 ms left was not classified");
  fail_unless (d.frame_deadline == 20 * GST_MSECOND && d.deadline == PERIOD);
  stream_clear (&s);
}

GST_END_TEST;

/* Without a render time (no QoS from downstream yet) nothing is skipped to catch up. */
GST_START_TEST (test_no_catch_up_without_render_time)
{
  SimulatedStream s;
  GstMoneSchedulerDecision d;

  stream_init (&s, TRUE, 1);
  stream_run (&s, 50);
  s.frame.render_time_known = FALSE;
  s.frame.time_left = -GST_SECOND;
  gst_mone_scheduler_decide (s.scheduler, &s.frame, &d);
  fail_unless (d.fresh && !d.catching_up);
  stream_clear (&s);
}

GST_END_TEST;

/* One frame overruns (the engine is 8x slower for it: 80 ms at budget 1, past the next two render
 * times): the frames already due carry the latest result, classification resumes within three
 * frames, and no frame after the overrun is late: the delay is not passed on. */
GST_START_TEST (test_overrun_absorbed)
{
  SimulatedStream s;

  stream_init (&s, TRUE, 1);
  stream_run (&s, 100);
  s.load = 8.0;
  fail_unless (stream_step (&s).fresh);
  s.load = 1.0;
  stream_reset_counts (&s);
  stream_run (&s, 3);
  fail_unless (s.caught_up >= 1, "no frame skipped after the overrun");
  fail_unless (s.fresh >= 1, "nothing classified in the 3 frames after the overrun");
  fail_unless_equals_int (s.late, 0);
  stream_run (&s, 100);
  fail_unless_equals_int (s.late, 0);
  stream_clear (&s);
}

GST_END_TEST;

/* Sustained overload (even the minimum budget takes 100 ms against a 33 ms period): every Nth
 * frame is classified, N such that inference keeps up with the stream (a classified frame is done
 * about one inference time after it arrived; classifying every frame would fall 67 ms further
 * behind with each one, 20 s over these 300); N never exceeds the overload cap, and once the load
 * goes every frame is classified again. */
GST_START_TEST (test_overload_interval)
{
  SimulatedStream s;
  const gdouble load = 1e8 / (OVERHEAD_NS + SLOPE_NS * MIN_BUDGET);

  stream_init (&s, TRUE, 1);
  stream_run (&s, 50);
  s.load = load;
  stream_run (&s, 100);
  stream_reset_counts (&s);
  stream_run (&s, 300);
  fail_unless (s.max_interval >= 3 && s.max_interval <= GST_MONE_SCHEDULER_MAX_OVERLOAD_INTERVAL,
      "interval %u under 3x overload", s.max_interval);
  fail_unless (s.fresh >= 300 / GST_MONE_SCHEDULER_MAX_OVERLOAD_INTERVAL && s.fresh <= 100,
      "%u of 300 frames classified under 3x overload", s.fresh);
  fail_unless (s.max_lag <= 150 * GST_MSECOND, "a frame done %" GST_TIME_FORMAT " after it "
      "arrived: falling behind", GST_TIME_ARGS (s.max_lag));

  s.load = 1.0;
  stream_run (&s, 200);
  stream_reset_counts (&s);
  stream_run (&s, 50);
  fail_unless_equals_int (s.reused, 0);
  fail_unless_equals_int (s.max_interval, 1);
  stream_clear (&s);
}

GST_END_TEST;

static Suite *
scheduler_suite (void)
{
  Suite *s = suite_create ("monescheduler");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_fixed_interval_counting);
  tcase_add_test (tc, test_interval_change_counts_from_last_result);
  tcase_add_test (tc, test_reset_classifies_next_frame);
  tcase_add_test (tc, test_deadline_sources);
  tcase_add_test (tc, test_deadlines_met_at_ceiling);
  tcase_add_test (tc, test_deadlines_met_below_ceiling);
  tcase_add_test (tc, test_runs_share_deadline);
  tcase_add_test (tc, test_qos_lowers_budget);
  tcase_add_test (tc, test_catch_up_reuses_late_frame);
  tcase_add_test (tc, test_no_catch_up_without_render_time);
  tcase_add_test (tc, test_overrun_absorbed);
  tcase_add_test (tc, test_overload_interval);
  return s;
}

GST_CHECK_MAIN (scheduler);
