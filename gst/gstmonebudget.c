/* Online budget controller: the largest budget whose predicted inference time fits the
 * frame deadline.
 *
 * Latency model: latency(e) = scale * shape(e), shape(e) = overhead + slope * e, shape(1) = 1.
 * - The shape is fitted by weighted least squares to a table of budget bins. Each bin keeps an
 *   exponentially weighted mean of the budgets it saw and of their latencies divided by the level
 *   at the time, so bins filled under different loads stay comparable. After every fit the table is
 *   rescaled so that shape(1) = 1: the absolute size lives in the scale alone, and the table and
 *   the scale cannot drift against each other.
 *   A line is the right shape: FLOPs are affine in the budget (sum c_j r_j = e scales every
 *   projection, attention scores and the head are fixed) and wall time follows FLOPs closely.
 * - Two scales, both in ns at budget 1. The level is an unbiased running mean of
 *   measured / shape(e); it normalises what the table learns. The guard scale is what predictions
 *   use: it rises fast when a frame is slower than predicted, all the way to the measured value
 *   when a frame overruns even the safety margin (a CPU hog starting: planning the next frame for
 *   only part of the slowdown would make it late too), and falls slowly when frames get faster,
 *   so the budget climbs back once the load goes, without oscillating. slowdown = guard / level
 *   is the contention factor the element reports.
 * - The safety margin is the 99th percentile of the guard's relative under-prediction over the last
 *   128 frames (plus a little): on a steady machine about one frame in a hundred may be late, on a
 *   jittery one the margin widens until that holds again.
 * - Downstream QoS (late buffers, proportion > 1) shortens the deadline for a while and raises the
 *   guard; both recover on their own.
 * Every now and then the controller probes one step above its choice if the prediction with half
 * the margin allows it, so the table keeps learning the slope above the operating point. It never
 * jumps far above the highest budget it has measured (a trust region): a line fitted to nearby
 * points can extrapolate far off.
 *
 * Deterministic: no clock (callers pass measured times), no randomness. */
#include "gstmonebudget.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N_BINS 20
#define BIN_GAIN 0.2            /* EWMA gain of a bin's mean per observation */
#define WEIGHT_FORGET 0.97      /* every bin's fit weight decays per observation ... */
#define WEIGHT_FLOOR 0.05       /* ... down to this, so the shape of old bins is never forgotten */
#define WEIGHT_CAP 16.0
#define LEVEL_GAIN 0.2          /* unbiased level: symmetric EWMA */
#define GUARD_RISE 0.7          /* guard gain when a frame is slower than predicted */
#define GUARD_FALL 0.12         /* and when it is faster: ~20 frames to follow a drop in load */
#define SURPRISE_SCALE 0.1      /* relative surprise at which the table learns at 1/e of its rate */
#define ERROR_WINDOW 128        /* frames of prediction errors the margin is taken from ... */
#define ERROR_QUANTILE 0.99     /* ... as this quantile: about 1 frame in 100 may still be late */
#define ERROR_MIN_FRAMES 16     /* fewer errors than this: MARGIN_LEARNING */
#define MARGIN_LEARNING 0.25
#define MARGIN_BASE 0.08        /* added to the quantile: the line is only an approximation off the
                                 * budgets it was measured at */
#define MARGIN_MAX 0.8
/* overhead / slope (budget units) assumed while only one bin is known */
#define PRIOR_OVERHEAD 0.1
#define MIN_SLOPE_SHARE 0.1     /* slope at least this share of mean latency / mean budget */
#define DEADLINE_SCALE_MIN 0.5
#define DEADLINE_LATE_TIGHTEN 0.9
#define DEADLINE_RECOVERY 0.05  /* per chosen frame, toward 1: ~60 frames to recover */
#define LATE_GUARD_BUMP 0.5     /* guard *= 1 + this * min (jitter / deadline, 1) ... */
#define LATE_GUARD_CAP 2.0      /* ... up to this multiple of the last measured scale: a pipeline
                                 * that stays behind sends a late QoS event per frame */
#define TRUST_STEP 0.15         /* never more than this share of [min_budget, 1] above the highest
                                 * budget measured */
#define EXPLORE_PERIOD 30       /* frames between upward probes */
#define EXPLORE_STEP 0.05       /* probe size, share of [min_budget, 1] */

typedef struct
{
  double weight;                /* 0: never observed */
  double budget;                /* EWMA of the budgets observed in this bin */
  double latency;               /* EWMA of latency / level: shape units */
} BudgetBin;

struct GstMoneBudgetController
{
  double min_budget;
  BudgetBin bins[N_BINS];
  double shape_overhead, shape_slope;   /* fitted, shape_overhead + shape_slope = 1 */
  double level_ns;              /* unbiased latency at budget 1 under the current load */
  double guard_ns;              /* the same, biased up: what predictions use */
  double measured_ns;           /* the latest measured / shape(e) */
  double errors[ERROR_WINDOW];  /* ring: max (measured / predicted - 1, 0) of recent frames */
  guint n_errors;               /* valid entries */
  guint next_error;             /* ring position */
  double margin;                /* from errors, refreshed per observation */
  double deadline_scale;
  gint64 last_deadline_ns;
  guint64 observations;
  guint frames_since_probe;
};

GstMoneBudgetController *
gst_mone_budget_controller_new (double min_budget)
{
  GstMoneBudgetController *controller = g_new0 (GstMoneBudgetController, 1);
  if (!(min_budget > 0.0))
    min_budget = 1e-3;
  controller->min_budget = MIN (min_budget, 1.0);
  gst_mone_budget_controller_reset (controller);
  return controller;
}

void
gst_mone_budget_controller_free (GstMoneBudgetController * controller)
{
  g_free (controller);
}

void
gst_mone_budget_controller_reset (GstMoneBudgetController * controller)
{
  double min_budget = controller->min_budget;
  *controller = (GstMoneBudgetController) {
  0};
  controller->min_budget = min_budget;
  controller->shape_slope = 1.0 / (1.0 + PRIOR_OVERHEAD);
  controller->shape_overhead = PRIOR_OVERHEAD * controller->shape_slope;
  controller->deadline_scale = 1.0;
  controller->margin = MARGIN_LEARNING;
}

void
gst_mone_budget_controller_flush (GstMoneBudgetController * controller)
{
  controller->deadline_scale = 1.0;
}

static double
clamp_budget (const GstMoneBudgetController * controller, double budget)
{
  if (!(budget >= controller->min_budget))      /* also catches NaN */
    return controller->min_budget;
  return MIN (budget, 1.0);
}

static int
bin_of_budget (const GstMoneBudgetController * controller, double budget)
{
  double range = 1.0 - controller->min_budget;
  if (range <= 0.0)
    return 0;
  int bin = (int) floor ((budget - controller->min_budget) / range * N_BINS);
  return CLAMP (bin, 0, N_BINS - 1);
}

static double
shape_at (const GstMoneBudgetController * controller, double budget)
{
  return controller->shape_overhead + controller->shape_slope * budget;
}

/* Weighted least squares of bin latency on bin budget, constrained to a non-negative overhead and a
 * slope that grows with the budget; then the table and both scales are re-expressed so that the
 * fitted shape is 1 at budget 1 (predictions unchanged). */
static void
fit_shape (GstMoneBudgetController * controller)
{
  double sw = 0, sb = 0, sl = 0, sbb = 0, sbl = 0;
  int used = 0;
  for (int i = 0; i < N_BINS; i++) {
    const BudgetBin *bin = &controller->bins[i];
    if (bin->weight <= 0)
      continue;
    used++;
    sw += bin->weight;
    sb += bin->weight * bin->budget;
    sl += bin->weight * bin->latency;
    sbb += bin->weight * bin->budget * bin->budget;
    sbl += bin->weight * bin->budget * bin->latency;
  }
  if (used == 0)
    return;
  double mean_budget = sb / sw, mean_latency = sl / sw;
  double budget_variance = sbb / sw - mean_budget * mean_budget;
  double slope, overhead;
  if (used >= 2 && budget_variance > 1e-8) {
    slope = (sbl / sw - mean_budget * mean_latency) / budget_variance;
    double min_slope = MIN_SLOPE_SHARE * mean_latency / mean_budget;
    if (slope < min_slope)
      slope = min_slope;
    overhead = mean_latency - slope * mean_budget;
    if (overhead < 0) {
      overhead = 0;
      slope = sbl / sbb;
    }
  } else {
    /* One budget seen: assume a small overhead, which over-predicts higher budgets (safe) until a
     * second bin has been measured. */
    slope = mean_latency / (mean_budget + PRIOR_OVERHEAD);
    overhead = PRIOR_OVERHEAD * slope;
  }
  double at_one = overhead + slope;
  if (!(at_one > 0))
    return;
  for (int i = 0; i < N_BINS; i++)
    controller->bins[i].latency /= at_one;
  controller->shape_overhead = overhead / at_one;
  controller->shape_slope = slope / at_one;
  controller->level_ns *= at_one;
  controller->guard_ns *= at_one;
  controller->measured_ns *= at_one;
}

static int
compare_doubles (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

/* The margin that would have covered ERROR_QUANTILE of the recent under-predictions. */
static void
update_margin (GstMoneBudgetController * controller, double error)
{
  controller->errors[controller->next_error] = error;
  controller->next_error = (controller->next_error + 1) % ERROR_WINDOW;
  controller->n_errors = MIN (controller->n_errors + 1, ERROR_WINDOW);
  if (controller->n_errors < ERROR_MIN_FRAMES) {
    controller->margin = MARGIN_LEARNING;
    return;
  }
  double sorted[ERROR_WINDOW];
  memcpy (sorted, controller->errors, controller->n_errors * sizeof (double));
  qsort (sorted, controller->n_errors, sizeof (double), compare_doubles);
  guint index = (guint) ceil (ERROR_QUANTILE * controller->n_errors) - 1;
  controller->margin =
      MIN (MARGIN_BASE + sorted[MIN (index, controller->n_errors - 1)], MARGIN_MAX);
}

static double
current_margin (const GstMoneBudgetController * controller)
{
  return controller->margin;
}

double
gst_mone_budget_controller_choose (GstMoneBudgetController * controller, double ceiling,
    gint64 deadline_ns)
{
  ceiling = clamp_budget (controller, ceiling);
  controller->deadline_scale += (1.0 - controller->deadline_scale) * DEADLINE_RECOVERY;
  if (deadline_ns <= 0)
    return ceiling;             /* no deadline: nothing to trade */
  controller->last_deadline_ns = deadline_ns;
  if (controller->observations == 0)
    return controller->min_budget;      /* start safe; the first measurement sets the scale */

  double deadline = (double) deadline_ns * controller->deadline_scale;
  double allowed = deadline / (1.0 + current_margin (controller)) / controller->guard_ns;
  double budget = (allowed - controller->shape_overhead) / controller->shape_slope;
  budget = MIN (clamp_budget (controller, budget), ceiling);
  double highest_measured = controller->min_budget;
  for (int i = 0; i < N_BINS; i++)
    if (controller->bins[i].weight > 0)
      highest_measured = MAX (highest_measured, controller->bins[i].budget);
  budget = MIN (budget, highest_measured + TRUST_STEP * (1.0 - controller->min_budget));

  controller->frames_since_probe++;
  if (budget < ceiling && controller->frames_since_probe >= EXPLORE_PERIOD) {
    double probe = MIN (ceiling, budget + EXPLORE_STEP * (1.0 - controller->min_budget));
    /* Half the margin: a probe may be a little more daring than a regular choice. */
    double daring = deadline / (1.0 + 0.5 * current_margin (controller));
    if (controller->guard_ns * shape_at (controller, probe) <= daring) {
      budget = probe;
      controller->frames_since_probe = 0;
    }
  }
  return budget;
}

void
gst_mone_budget_controller_observe (GstMoneBudgetController * controller, double budget,
    gint64 latency_ns)
{
  if (latency_ns <= 0)
    return;
  budget = clamp_budget (controller, budget);
  double latency = (double) latency_ns;
  double measured = latency / shape_at (controller, budget);    /* ns at budget 1, this frame */
  controller->measured_ns = measured;

  /* How far this frame is from the level: near 0 in steady state, large while the load changes. */
  double surprise = 0.0;
  if (controller->observations == 0) {
    controller->level_ns = controller->guard_ns = measured;
  } else {
    surprise = measured / controller->level_ns - 1.0;
    /* Only slower-than-predicted frames need a margin: a sudden speed-up is no danger. */
    update_margin (controller, MAX (measured / controller->guard_ns - 1.0, 0.0));
    controller->level_ns += (measured - controller->level_ns) * LEVEL_GAIN;
    double gain = measured > controller->guard_ns ? GUARD_RISE : GUARD_FALL;
    /* Slower than even the margin allowed for: the load has most likely stepped up (a CPU hog),
     * and in a pipeline without slack the next frame is late too unless it is planned for the
     * whole slowdown at once. */
    if (measured > controller->guard_ns * (1.0 + controller->margin))
      gain = 1.0;
    controller->guard_ns += (measured - controller->guard_ns) * gain;
  }

  /* The table learns the shape from frames the level explains; while the load is changing the
   * level is still catching up, and letting the table learn then would bend the fitted line. */
  double confidence = exp (-fabs (surprise) / SURPRISE_SCALE);
  for (int i = 0; i < N_BINS; i++) {
    BudgetBin *other = &controller->bins[i];
    if (other->weight > 0)
      other->weight = MAX (other->weight * WEIGHT_FORGET, WEIGHT_FLOOR);
  }
  BudgetBin *bin = &controller->bins[bin_of_budget (controller, budget)];
  double normalised = latency / controller->level_ns;
  if (bin->weight <= 0) {
    bin->budget = budget;
    bin->latency = normalised;
    bin->weight = MAX (confidence, WEIGHT_FLOOR);
  } else {
    double gain = BIN_GAIN * confidence;
    bin->budget += (budget - bin->budget) * gain;
    bin->latency += (normalised - bin->latency) * gain;
    bin->weight = MIN (bin->weight + confidence, WEIGHT_CAP);
  }
  controller->observations++;
  fit_shape (controller);
}

void
gst_mone_budget_controller_qos (GstMoneBudgetController * controller, double proportion,
    gint64 jitter_ns)
{
  gboolean late = FALSE;
  if (proportion > 1.0) {
    controller->deadline_scale = MIN (controller->deadline_scale, 1.0 / proportion);
    late = TRUE;
  }
  if (jitter_ns > 0) {
    controller->deadline_scale *= DEADLINE_LATE_TIGHTEN;
    if (controller->last_deadline_ns > 0 && controller->observations > 0) {
      double lateness = MIN ((double) jitter_ns / (double) controller->last_deadline_ns, 1.0);
      double bumped = controller->guard_ns * (1.0 + LATE_GUARD_BUMP * lateness);
      double cap = MAX (controller->guard_ns, LATE_GUARD_CAP * controller->measured_ns);
      controller->guard_ns = MIN (bumped, cap);
    }
    late = TRUE;
  }
  if (late)
    controller->deadline_scale = MAX (controller->deadline_scale, DEADLINE_SCALE_MIN);
}

void
gst_mone_budget_controller_get_model (const GstMoneBudgetController * controller,
    GstMoneBudgetModel * model)
{
  double level = controller->observations ? controller->level_ns : 0.0;
  model->overhead_ns = level * controller->shape_overhead;
  model->slope_ns = level * controller->shape_slope;
  model->slowdown = controller->observations ? controller->guard_ns / controller->level_ns : 1.0;
  model->margin = current_margin (controller);
  model->deadline_scale = controller->deadline_scale;
  model->observations = controller->observations;
}

gint64
gst_mone_budget_controller_predict (const GstMoneBudgetController * controller, double budget)
{
  if (controller->observations == 0)
    return -1;
  budget = clamp_budget (controller, budget);
  return (gint64) llround (controller->guard_ns * shape_at (controller, budget));
}
