/* The budget controller on a simulated clock.
 *
 * Synthetic engine: latency(e) = load * (overhead + per_budget * e), optionally with a seeded +-jitter.
 * The deadline is a frame period; a frame is late when its latency exceeds it. Each test states the
 * number of frames the controller may take to settle, and checks both that it is never late after
 * that and that it uses the time it has (within the safety margin of the largest fitting budget). */
#include "gstmonebudget.h"

#include <math.h>

#define MIN_BUDGET 0.125        /* r_0 of a 4-expert model */
#define OVERHEAD_NS 2000000.0   /* 2 ms at any budget */
#define PER_BUDGET_NS 8000000.0 /* +8 ms from budget 0 to 1 */
#define DEADLINE_NS 8000000     /* 125 frames/s: budget 1 does not fit, 0.75 does */

typedef struct
{
  double load;
  double jitter;                /* relative amplitude of the seeded noise, 0 for none */
  guint32 seed;
} SimulatedEngine;

static double
uniform_noise (SimulatedEngine * engine)
{
  engine->seed = engine->seed * 1664525u + 1013904223u;
  return (engine->seed >> 8) / (double) (1u << 24) * 2.0 - 1.0;
}

static gint64
simulated_latency (SimulatedEngine * engine, double budget)
{
  double latency = engine->load * (OVERHEAD_NS + PER_BUDGET_NS * budget);
  if (engine->jitter > 0)
    latency *= 1.0 + engine->jitter * uniform_noise (engine);
  return (gint64) latency;
}

/* Largest budget whose noiseless latency fits the deadline at `load`, clamped like the controller. */
static double
largest_fitting_budget (double load, double deadline_ns, double ceiling)
{
  double budget = (deadline_ns / load - OVERHEAD_NS) / PER_BUDGET_NS;
  return CLAMP (budget, MIN_BUDGET, ceiling);
}

typedef struct
{
  int late;                     /* frames whose latency exceeded the deadline */
  double min_budget, max_budget, last_budget;
} RunStats;

/* Runs `frames` frames; statistics cover only frames from `settle` on. */
static RunStats
run_frames (GstMoneBudgetController * controller, SimulatedEngine * engine, int frames, int settle,
    double ceiling, gint64 deadline_ns)
{
  RunStats stats = { 0, INFINITY, -INFINITY, 0 };
  for (int frame = 0; frame < frames; frame++) {
    double budget = gst_mone_budget_controller_choose (controller, ceiling, deadline_ns);
    g_assert_cmpfloat (budget, >=, MIN_BUDGET);
    g_assert_cmpfloat (budget, <=, MAX (ceiling, MIN_BUDGET) + 1e-12);
    gint64 latency = simulated_latency (engine, budget);
    gst_mone_budget_controller_observe (controller, budget, latency);
    if (frame >= settle) {
      stats.late += latency > deadline_ns;
      stats.min_budget = MIN (stats.min_budget, budget);
      stats.max_budget = MAX (stats.max_budget, budget);
    }
    stats.last_budget = budget;
  }
  return stats;
}

/* Within 20 frames of a cold start (a wide margin while it learns) it sits just under the largest
 * fitting budget, and it is never late. */
static void
test_converges_to_largest_fitting_budget (void)
{
  GstMoneBudgetController *controller = gst_mone_budget_controller_new (MIN_BUDGET);
  SimulatedEngine engine = {.load = 1.0 };
  RunStats warmup = run_frames (controller, &engine, 20, 0, 1.0, DEADLINE_NS);
  g_assert_cmpint (warmup.late, ==, 0);
  RunStats stats = run_frames (controller, &engine, 300, 0, 1.0, DEADLINE_NS);
  double best = largest_fitting_budget (1.0, DEADLINE_NS, 1.0);
  g_assert_cmpint (stats.late, ==, 0);
  g_assert_cmpfloat (stats.max_budget, <=, best);
  g_assert_cmpfloat (stats.min_budget, >=, 0.85 * best);

  GstMoneBudgetModel model;
  gst_mone_budget_controller_get_model (controller, &model);
  g_assert_cmpfloat (fabs (model.slowdown * model.slope_ns - PER_BUDGET_NS), <,
      0.05 * PER_BUDGET_NS);
  g_assert_cmpfloat (fabs (model.slowdown * model.overhead_ns - OVERHEAD_NS), <, 0.1 * OVERHEAD_NS);
  gint64 predicted = gst_mone_budget_controller_predict (controller, 0.5);
  g_assert_cmpfloat (fabs (predicted - (OVERHEAD_NS + 0.5 * PER_BUDGET_NS)), <, 0.05 * 6e6);
  gst_mone_budget_controller_free (controller);
}

/* Load x2 (a CPU hog on the same core): only the first frame under the new load is late (no
 * prediction can see the step coming; in a pipeline without a queue a second late frame would
 * already be 1% of a 10 s half at 15 fps), and from the second frame on the budget is at or below
 * the new fit and stays there without lateness. Load back to 1: within 40 frames the budget is
 * back near the unloaded fit. */
static void
test_follows_load_steps (void)
{
  GstMoneBudgetController *controller = gst_mone_budget_controller_new (MIN_BUDGET);
  SimulatedEngine engine = {.load = 1.0 };
  run_frames (controller, &engine, 200, 0, 1.0, DEADLINE_NS);

  engine.load = 2.0;
  RunStats step_frames = run_frames (controller, &engine, 5, 1, 1.0, DEADLINE_NS);
  g_assert_cmpint (step_frames.late, ==, 0);
  g_assert_cmpfloat (step_frames.max_budget, <=, largest_fitting_budget (2.0, DEADLINE_NS, 1.0));
  RunStats loaded = run_frames (controller, &engine, 200, 0, 1.0, DEADLINE_NS);
  double best_loaded = largest_fitting_budget (2.0, DEADLINE_NS, 1.0);
  g_assert_cmpint (loaded.late, ==, 0);
  g_assert_cmpfloat (loaded.max_budget, <=, best_loaded);
  g_assert_cmpfloat (loaded.last_budget, >=, 0.7 * best_loaded);

  engine.load = 1.0;
  RunStats recovering = run_frames (controller, &engine, 40, 0, 1.0, DEADLINE_NS);
  double best = largest_fitting_budget (1.0, DEADLINE_NS, 1.0);
  g_assert_cmpint (recovering.late, ==, 0);
  g_assert_cmpfloat (recovering.last_budget, >=, 0.85 * best);
  RunStats unloaded = run_frames (controller, &engine, 100, 0, 1.0, DEADLINE_NS);
  g_assert_cmpint (unloaded.late, ==, 0);
  g_assert_cmpfloat (unloaded.min_budget, >=, 0.85 * best);
  gst_mone_budget_controller_free (controller);
}

/* With +-5% seeded jitter the margin widens: after 20 frames under 1% of frames are late. */
static void
test_noisy_latency (void)
{
  GstMoneBudgetController *controller = gst_mone_budget_controller_new (MIN_BUDGET);
  SimulatedEngine engine = {.load = 1.0,.jitter = 0.05,.seed = 12345 };
  RunStats stats = run_frames (controller, &engine, 2000, 20, 1.0, DEADLINE_NS);
  g_assert_cmpint (stats.late, <=, 2000 / 100);
  g_assert_cmpfloat (stats.last_budget, >=, 0.7 * largest_fitting_budget (1.0, DEADLINE_NS, 1.0));
  gst_mone_budget_controller_free (controller);
}

/* Plenty of time: it climbs to the ceiling and never passes it, whatever the ceiling is. */
static void
test_respects_ceiling (void)
{
  const double ceilings[] = { 0.5, 0.2, MIN_BUDGET, 1.0 };
  for (guint i = 0; i < G_N_ELEMENTS (ceilings); i++) {
    GstMoneBudgetController *controller = gst_mone_budget_controller_new (MIN_BUDGET);
    SimulatedEngine engine = {.load = 1.0 };
    RunStats stats = run_frames (controller, &engine, 100, 20, ceilings[i], 100 * DEADLINE_NS);
    g_assert_cmpfloat (stats.min_budget, ==, ceilings[i]);
    g_assert_cmpfloat (stats.max_budget, ==, ceilings[i]);
    gst_mone_budget_controller_free (controller);
  }
  /* A ceiling below the minimum or above 1 is clamped, not obeyed. */
  GstMoneBudgetController *controller = gst_mone_budget_controller_new (MIN_BUDGET);
  SimulatedEngine engine = {.load = 1.0 };
  run_frames (controller, &engine, 10, 0, 1.0, 100 * DEADLINE_NS);
  g_assert_cmpfloat (gst_mone_budget_controller_choose (controller, 0.01, DEADLINE_NS), ==,
      MIN_BUDGET);
  g_assert_cmpfloat (gst_mone_budget_controller_choose (controller, 7.0, 100 * DEADLINE_NS), ==,
      1.0);
  g_assert_cmpfloat (gst_mone_budget_controller_choose (controller, NAN, DEADLINE_NS), ==,
      MIN_BUDGET);
  /* No deadline: nothing to trade, the ceiling it is. */
  g_assert_cmpfloat (gst_mone_budget_controller_choose (controller, 0.6, 0), ==, 0.6);
  gst_mone_budget_controller_free (controller);
}

/* A deadline nothing fits: the minimum, never below it; and back up once the deadline relaxes. */
static void
test_respects_minimum (void)
{
  GstMoneBudgetController *controller = gst_mone_budget_controller_new (MIN_BUDGET);
  SimulatedEngine engine = {.load = 1.0 };
  RunStats stats = run_frames (controller, &engine, 100, 0, 1.0, 1000000);
  g_assert_cmpfloat (stats.min_budget, ==, MIN_BUDGET);
  g_assert_cmpfloat (stats.max_budget, ==, MIN_BUDGET);
  RunStats relaxed = run_frames (controller, &engine, 100, 50, 1.0, DEADLINE_NS);
  g_assert_cmpint (relaxed.late, ==, 0);
  g_assert_cmpfloat (relaxed.min_budget, >=, 0.85 * largest_fitting_budget (1.0, DEADLINE_NS, 1.0));
  gst_mone_budget_controller_free (controller);
}

/* Downstream says we are late: the next choice is lower at once; without further QoS it recovers. */
static void
test_qos_reaction (void)
{
  GstMoneBudgetController *controller = gst_mone_budget_controller_new (MIN_BUDGET);
  SimulatedEngine engine = {.load = 1.0 };
  RunStats settled = run_frames (controller, &engine, 100, 0, 1.0, DEADLINE_NS);

  gst_mone_budget_controller_qos (controller, 1.5, DEADLINE_NS / 2);
  double after_late = gst_mone_budget_controller_choose (controller, 1.0, DEADLINE_NS);
  g_assert_cmpfloat (after_late, <, 0.8 * settled.last_budget);
  GstMoneBudgetModel model;
  gst_mone_budget_controller_get_model (controller, &model);
  g_assert_cmpfloat (model.deadline_scale, <, 1.0);

  /* Early buffers (negative jitter, proportion < 1) change nothing. */
  GstMoneBudgetController *calm = gst_mone_budget_controller_new (MIN_BUDGET);
  SimulatedEngine calm_engine = {.load = 1.0 };
  run_frames (calm, &calm_engine, 100, 0, 1.0, DEADLINE_NS);
  double before = gst_mone_budget_controller_choose (calm, 1.0, DEADLINE_NS);
  gst_mone_budget_controller_qos (calm, 0.7, -DEADLINE_NS / 2);
  g_assert_cmpfloat (fabs (gst_mone_budget_controller_choose (calm, 1.0, DEADLINE_NS) - before), <,
      1e-9);
  gst_mone_budget_controller_free (calm);

  gst_mone_budget_controller_observe (controller, after_late, simulated_latency (&engine,
          after_late));
  RunStats recovered = run_frames (controller, &engine, 100, 0, 1.0, DEADLINE_NS);
  g_assert_cmpint (recovered.late, ==, 0);
  g_assert_cmpfloat (recovered.last_budget, >=, 0.95 * settled.last_budget);
  gst_mone_budget_controller_free (controller);
}

/* A flush (seek) forgets the QoS tightening of the deadline at once but keeps the learned latency
 * model, so the first frame after it gets the settled budget again instead of recovering over ~60.
 * (Lateness reported as jitter also raises the learned slowdown; that describes the machine and
 * stays: the event here reports a proportion only.) */
static void
test_flush_forgets_qos (void)
{
  GstMoneBudgetController *controller = gst_mone_budget_controller_new (MIN_BUDGET);
  SimulatedEngine engine = {.load = 1.0 };
  RunStats settled = run_frames (controller, &engine, 100, 0, 1.0, DEADLINE_NS);
  GstMoneBudgetModel before, after;
  gst_mone_budget_controller_get_model (controller, &before);

  gst_mone_budget_controller_qos (controller, 1.8, 0);
  g_assert_cmpfloat (gst_mone_budget_controller_choose (controller, 1.0, DEADLINE_NS), <,
      0.8 * settled.last_budget);
  gst_mone_budget_controller_flush (controller);
  gst_mone_budget_controller_get_model (controller, &after);
  g_assert_cmpfloat (after.deadline_scale, ==, 1.0);
  g_assert_cmpuint (after.observations, ==, before.observations);
  g_assert_cmpfloat (after.slope_ns, ==, before.slope_ns);
  g_assert_cmpfloat (fabs (gst_mone_budget_controller_choose (controller, 1.0, DEADLINE_NS) -
          settled.last_budget), <, 0.01);
  gst_mone_budget_controller_free (controller);
}

/* A pipeline stuck behind (a late QoS event per frame for 200 frames while even the minimum does
 * not fit) must not wind the controller up: 60 frames after the lateness ends it is back near the
 * largest fitting budget. */
static void
test_qos_storm_recovers (void)
{
  GstMoneBudgetController *controller = gst_mone_budget_controller_new (MIN_BUDGET);
  SimulatedEngine engine = {.load = 4.0 };
  for (int frame = 0; frame < 200; frame++) {
    double budget = gst_mone_budget_controller_choose (controller, 1.0, DEADLINE_NS);
    gst_mone_budget_controller_observe (controller, budget, simulated_latency (&engine, budget));
    gst_mone_budget_controller_qos (controller, 1.8, 50 * (gint64) DEADLINE_NS);
    g_assert_cmpfloat (budget, ==, MIN_BUDGET);
  }
  GstMoneBudgetModel model;
  gst_mone_budget_controller_get_model (controller, &model);
  g_assert_cmpfloat (model.slowdown, <=, 2.0 * 4.0 * 1.1);
  engine.load = 1.0;
  RunStats recovering = run_frames (controller, &engine, 60, 0, 1.0, DEADLINE_NS);
  g_assert_cmpint (recovering.late, ==, 0);
  g_assert_cmpfloat (recovering.last_budget, >=, 0.85 * largest_fitting_budget (1.0, DEADLINE_NS,
          1.0));
  gst_mone_budget_controller_free (controller);
}

/* Same inputs, same choices; reset forgets everything. */
static void
test_deterministic_and_reset (void)
{
  GstMoneBudgetController *a = gst_mone_budget_controller_new (MIN_BUDGET);
  GstMoneBudgetController *b = gst_mone_budget_controller_new (MIN_BUDGET);
  SimulatedEngine engine_a = {.load = 1.3,.jitter = 0.1,.seed = 7 };
  SimulatedEngine engine_b = engine_a;
  for (int frame = 0; frame < 500; frame++) {
    double budget_a = gst_mone_budget_controller_choose (a, 1.0, DEADLINE_NS);
    double budget_b = gst_mone_budget_controller_choose (b, 1.0, DEADLINE_NS);
    g_assert_cmpfloat (budget_a, ==, budget_b);
    gst_mone_budget_controller_observe (a, budget_a, simulated_latency (&engine_a, budget_a));
    gst_mone_budget_controller_observe (b, budget_b, simulated_latency (&engine_b, budget_b));
  }
  gst_mone_budget_controller_reset (a);
  GstMoneBudgetModel model;
  gst_mone_budget_controller_get_model (a, &model);
  g_assert_cmpuint (model.observations, ==, 0);
  g_assert_cmpfloat (model.slowdown, ==, 1.0);
  g_assert_cmpint (gst_mone_budget_controller_predict (a, 0.5), ==, -1);
  g_assert_cmpfloat (gst_mone_budget_controller_choose (a, 1.0, DEADLINE_NS), ==, MIN_BUDGET);
  /* Nonsense measurements are ignored. */
  gst_mone_budget_controller_observe (a, 0.5, 0);
  gst_mone_budget_controller_observe (a, 0.5, -5);
  gst_mone_budget_controller_get_model (a, &model);
  g_assert_cmpuint (model.observations, ==, 0);
  gst_mone_budget_controller_free (a);
  gst_mone_budget_controller_free (b);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/budget/converges", test_converges_to_largest_fitting_budget);
  g_test_add_func ("/budget/load-steps", test_follows_load_steps);
  g_test_add_func ("/budget/noisy", test_noisy_latency);
  g_test_add_func ("/budget/ceiling", test_respects_ceiling);
  g_test_add_func ("/budget/minimum", test_respects_minimum);
  g_test_add_func ("/budget/qos", test_qos_reaction);
  g_test_add_func ("/budget/qos-storm", test_qos_storm_recovers);
  g_test_add_func ("/budget/flush", test_flush_forgets_qos);
  g_test_add_func ("/budget/deterministic", test_deterministic_and_reset);
  return g_test_run ();
}
