/* Online budget controller: picks, per frame, the largest budget whose predicted inference time
 * fits a deadline. Pure logic with no clock of its own (callers pass measured times), so it can be
 * tested on a simulated clock. Not thread-safe: one controller per stream. */
#ifndef GST_MONE_BUDGET_H
#define GST_MONE_BUDGET_H

#include <glib.h>

G_BEGIN_DECLS

typedef struct GstMoneBudgetController GstMoneBudgetController;

/* min_budget: the model's minimum (r_0). Budgets are chosen in [min_budget, ceiling]. */
GstMoneBudgetController *gst_mone_budget_controller_new (double min_budget);
void gst_mone_budget_controller_free (GstMoneBudgetController *controller);
void gst_mone_budget_controller_reset (GstMoneBudgetController *controller);
/* A flush (seek): forgets what downstream QoS said about the old position (the deadline
 * tightening) and keeps the latency model, which describes the machine, not the position. */
void gst_mone_budget_controller_flush (GstMoneBudgetController *controller);

/* Largest budget in [min_budget, ceiling] whose predicted latency fits deadline_ns. */
double gst_mone_budget_controller_choose (GstMoneBudgetController *controller, double ceiling,
    gint64 deadline_ns);
/* Feeds back the measured inference latency of a frame run at `budget`. */
void gst_mone_budget_controller_observe (GstMoneBudgetController *controller, double budget,
    gint64 latency_ns);
/* Feeds back a downstream QoS event (proportion and jitter as in gst_event_parse_qos). */
void gst_mone_budget_controller_qos (GstMoneBudgetController *controller, double proportion,
    gint64 jitter_ns);

/* The controller's current view, for debugging, element messages and tests. Latency is modelled as
 * slowdown * (overhead_ns + slope_ns * budget): FLOPs grow linearly with the budget (sum c_j r_j
 * = e scales every projection; attention scores are fixed), and contention scales the whole
 * pass. */
typedef struct {
  double overhead_ns;      /* predicted latency at budget 0, before slowdown */
  double slope_ns;         /* added latency per unit of budget, before slowdown */
  double slowdown;         /* current contention factor (1 = as learned) */
  double margin;           /* relative safety margin, grows with measured jitter */
  double deadline_scale;   /* (0, 1]: deadline tightening from downstream QoS */
  guint64 observations;    /* frames observed since creation or reset */
} GstMoneBudgetModel;

void gst_mone_budget_controller_get_model (const GstMoneBudgetController *controller,
    GstMoneBudgetModel *model);
/* Predicted latency in ns of one frame at `budget` (slowdown included, margin not); -1 before the
 * first observation. */
gint64 gst_mone_budget_controller_predict (const GstMoneBudgetController *controller,
    double budget);

G_END_DECLS

#endif
