/* Online budget controller (issue 5): the largest budget whose predicted inference time fits the
 * frame deadline.
 *
 * Latency model: latency(e) = slowdown * (overhead + slope * e).
 * - The shape (overhead, slope) is fitted by weighted least squares to a table of budget bins. Each
 *   bin keeps an exponentially weighted mean of the budgets it saw and of their latencies divided by
 *   the slowdown at the time ("as if unloaded"), so bins filled under different loads stay comparable.
 *   A line is the right shape: FLOPs are affine in the budget (sum c_j r_j = e scales every projection,
 *   attention scores and the head are fixed) and wall time follows FLOPs closely.
 * - The slowdown tracks contention, the one factor that scales every budget at once: it rises fast when
 *   a frame takes longer than predicted (a few frames after a CPU hog starts) and falls slowly when
 *   frames get faster, so the budget climbs back once the load goes, without oscillating.
 * - The safety margin grows with the measured relative jitter of latencies.
 * - Downstream QoS (late buffers, proportion > 1) shortens the deadline for a while and bumps the
 *   slowdown; both recover on their own.
 * Every now and then the controller probes one step above its choice if even the un-margined
 * prediction allows it, so the table keeps learning the slope above the operating point.
 *
 * Deterministic: no clock (callers pass measured times), no randomness. */
#include "mone-budget.h"

#include <math.h>

#define N_BINS 20
#define BIN_GAIN 0.2            /* EWMA gain of a bin's mean per observation */
#define WEIGHT_FORGET 0.97      /* every bin's fit weight decays per observation ... */
#define WEIGHT_FLOOR 0.05       /* ... down to this, so the shape of old bins is never forgotten */
#define WEIGHT_CAP 16.0
#define SLOWDOWN_RISE 0.6       /* gain when a frame is slower than predicted */
#define SLOWDOWN_FALL 0.12      /* gain when it is faster: ~20 frames to follow a drop in load */
#define SLOWDOWN_MIN 0.1
#define SLOWDOWN_MAX 1000.0
#define NOISE_GAIN 0.1
#define NOISE_PRIOR 0.04        /* assumed before any measurement: a wide margin while learning */
#define SURPRISE_SCALE 0.1      /* relative surprise at which the table learns at 1/e of its rate */
#define MARGIN_BASE 0.08        /* relative margin with perfectly steady latencies */
#define MARGIN_PER_NOISE 4.0    /* plus this many mean upward relative deviations */
#define MARGIN_MAX 0.6
#define PRIOR_OVERHEAD 0.1      /* overhead / slope (budget units) assumed while only one bin is known */
#define MIN_SLOPE_SHARE 0.1     /* slope at least this share of mean latency / mean budget */
#define DEADLINE_SCALE_MIN 0.5
#define DEADLINE_LATE_TIGHTEN 0.9
#define DEADLINE_RECOVERY 0.05  /* per chosen frame, toward 1: ~60 frames to recover */
#define LATE_SLOWDOWN_BUMP 0.5  /* slowdown *= 1 + this * min (jitter / deadline, 1) */
#define EXPLORE_PERIOD 30       /* frames between upward probes */
#define EXPLORE_STEP 0.05       /* probe size, share of [min_budget, 1] */

typedef struct {
  double weight;       /* 0: never observed */
  double budget;       /* EWMA of the budgets observed in this bin */
  double latency_ns;   /* EWMA of latency / slowdown */
} BudgetBin;

struct MoneBudgetController {
  double min_budget;
  BudgetBin bins[N_BINS];
  /* Fitted shape, refreshed after each observation. */
  double overhead_ns, slope_ns;
  double slowdown;
  double noise;                /* EWMA of max (measured / predicted - 1, 0) */
  double deadline_scale;
  gint64 last_deadline_ns;
  guint64 observations;
  guint frames_since_probe;
};

MoneBudgetController *
mone_budget_controller_new (double min_budget)
{
  MoneBudgetController *controller = g_new0 (MoneBudgetController, 1);
  if (!(min_budget > 0.0))
    min_budget = 1e-3;
  controller->min_budget = MIN (min_budget, 1.0);
  mone_budget_controller_reset (controller);
  return controller;
}

void
mone_budget_controller_free (MoneBudgetController *controller)
{
  g_free (controller);
}

void
mone_budget_controller_reset (MoneBudgetController *controller)
{
  double min_budget = controller->min_budget;
  *controller = (MoneBudgetController) { 0 };
  controller->min_budget = min_budget;
  controller->slowdown = 1.0;
  controller->deadline_scale = 1.0;
  controller->noise = NOISE_PRIOR;
}

static double
clamp_budget (const MoneBudgetController *controller, double budget)
{
  if (!(budget >= controller->min_budget))  /* also catches NaN */
    return controller->min_budget;
  return MIN (budget, 1.0);
}

static int
bin_of_budget (const MoneBudgetController *controller, double budget)
{
  double range = 1.0 - controller->min_budget;
  if (range <= 0.0)
    return 0;
  int bin = (int) floor ((budget - controller->min_budget) / range * N_BINS);
  return CLAMP (bin, 0, N_BINS - 1);
}

/* Weighted least squares of bin latency on bin budget, constrained to a non-negative overhead and a
 * slope that grows with the budget. */
static void
fit_shape (MoneBudgetController *controller)
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
    sl += bin->weight * bin->latency_ns;
    sbb += bin->weight * bin->budget * bin->budget;
    sbl += bin->weight * bin->budget * bin->latency_ns;
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
  controller->overhead_ns = overhead;
  controller->slope_ns = slope;
}

static double
predict_unloaded (const MoneBudgetController *controller, double budget)
{
  return controller->overhead_ns + controller->slope_ns * budget;
}

static double
current_margin (const MoneBudgetController *controller)
{
  return MIN (MARGIN_BASE + MARGIN_PER_NOISE * controller->noise, MARGIN_MAX);
}

double
mone_budget_controller_choose (MoneBudgetController *controller, double ceiling,
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
  double allowed = deadline / (1.0 + current_margin (controller)) / controller->slowdown;
  double budget = (allowed - controller->overhead_ns) / controller->slope_ns;
  budget = MIN (clamp_budget (controller, budget), ceiling);

  controller->frames_since_probe++;
  if (budget < ceiling && controller->frames_since_probe >= EXPLORE_PERIOD) {
    double probe = MIN (ceiling, budget + EXPLORE_STEP * (1.0 - controller->min_budget));
    if (controller->slowdown * predict_unloaded (controller, probe) <= deadline) {
      budget = probe;
      controller->frames_since_probe = 0;
    }
  }
  return budget;
}

void
mone_budget_controller_observe (MoneBudgetController *controller, double budget,
    gint64 latency_ns)
{
  if (latency_ns <= 0)
    return;
  budget = clamp_budget (controller, budget);
  double latency = (double) latency_ns;

  /* How far this frame is from what the current slowdown explains: near 0 in steady state, large
   * while the load is changing. */
  double surprise = 0.0;
  if (controller->observations > 0) {
    double ratio = latency / predict_unloaded (controller, budget);
    surprise = ratio / controller->slowdown - 1.0;
    /* Only slower-than-predicted frames widen the margin: a sudden speed-up is no danger. */
    controller->noise += (CLAMP (surprise, 0.0, 0.25) - controller->noise) * NOISE_GAIN;
    double gain = ratio > controller->slowdown ? SLOWDOWN_RISE : SLOWDOWN_FALL;
    controller->slowdown += (ratio - controller->slowdown) * gain;
    controller->slowdown = CLAMP (controller->slowdown, SLOWDOWN_MIN, SLOWDOWN_MAX);
  }

  /* The table learns the shape from frames the slowdown explains; while the load is changing the
   * slowdown is still catching up, and letting the table learn then would bake one moment's load
   * into one bin and bend the fitted line. */
  double confidence = exp (-fabs (surprise) / SURPRISE_SCALE);
  for (int i = 0; i < N_BINS; i++) {
    BudgetBin *other = &controller->bins[i];
    if (other->weight > 0)
      other->weight = MAX (other->weight * WEIGHT_FORGET, WEIGHT_FLOOR);
  }
  BudgetBin *bin = &controller->bins[bin_of_budget (controller, budget)];
  double unloaded = latency / controller->slowdown;
  if (bin->weight <= 0) {
    bin->budget = budget;
    bin->latency_ns = unloaded;
    bin->weight = MAX (confidence, WEIGHT_FLOOR);
  } else {
    double gain = BIN_GAIN * confidence;
    bin->budget += (budget - bin->budget) * gain;
    bin->latency_ns += (unloaded - bin->latency_ns) * gain;
    bin->weight = MIN (bin->weight + confidence, WEIGHT_CAP);
  }
  controller->observations++;
  fit_shape (controller);
}

void
mone_budget_controller_qos (MoneBudgetController *controller, double proportion,
    gint64 jitter_ns)
{
  gboolean late = FALSE;
  if (proportion > 1.0) {
    controller->deadline_scale = MIN (controller->deadline_scale, 1.0 / proportion);
    late = TRUE;
  }
  if (jitter_ns > 0) {
    controller->deadline_scale *= DEADLINE_LATE_TIGHTEN;
    if (controller->last_deadline_ns > 0) {
      double lateness = MIN ((double) jitter_ns / (double) controller->last_deadline_ns, 1.0);
      controller->slowdown = MIN (controller->slowdown * (1.0 + LATE_SLOWDOWN_BUMP * lateness),
          SLOWDOWN_MAX);
    }
    late = TRUE;
  }
  if (late)
    controller->deadline_scale = MAX (controller->deadline_scale, DEADLINE_SCALE_MIN);
}

void
mone_budget_controller_get_model (const MoneBudgetController *controller, MoneBudgetModel *model)
{
  model->overhead_ns = controller->overhead_ns;
  model->slope_ns = controller->slope_ns;
  model->slowdown = controller->slowdown;
  model->margin = current_margin (controller);
  model->deadline_scale = controller->deadline_scale;
  model->observations = controller->observations;
}

gint64
mone_budget_controller_predict (const MoneBudgetController *controller, double budget)
{
  if (controller->observations == 0)
    return -1;
  budget = clamp_budget (controller, budget);
  return (gint64) llround (controller->slowdown * predict_unloaded (controller, budget));
}
