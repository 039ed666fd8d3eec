/* Evaluation reports: the compute-accuracy table (CSV), its plot (gnuplot, pngcairo) and routing
 * maps (cairo): test frames with every patch tinted by the expert that processed it. */
#ifndef MONE_TRAIN_REPORT_H
#define MONE_TRAIN_REPORT_H

#include "trainer.h"

G_BEGIN_DECLS

typedef struct {
  MoneProtocol protocol;
  double budget;          /* as requested */
  double gflops;          /* per frame, from mone_model_flops */
  double accuracy;        /* percent, Expert Preferred Routing */
  double random_accuracy; /* percent, random routing with the same tokens per expert */
  double expert_share[MONE_MAX_EXPERTS];
  double widest_item_lift; /* MoneEvalResult.widest_item_lift */
} MoneEvalRow;

typedef struct {
  gboolean present;
  double gflops;
  double accuracy[MONE_N_PROTOCOLS]; /* per protocol, percent; NaN if not measured */
} MoneDenseFigures;

gboolean mone_report_write_csv (const char *path, const MoneEvalRow *rows, int n_rows, int experts,
    const MoneDenseFigures *dense, GError **error);

/* Runs gnuplot (pngcairo) on the rows: accuracy against GFLOPs per frame for each protocol, with
 * random routing and the dense twin for reference. */
gboolean mone_report_plot (const char *png_path, const MoneEvalRow *rows, int n_rows, const MoneDenseFigures *dense,
    const char *title, GError **error);

/* Draws a grid of routing maps: columns are test items, each rendered with its protocol
 * (protocols[i]), rows are budgets. Uses the trainer's forward pass (equal to the engine's). */
gboolean mone_report_routing_maps (const char *png_path, MoneTrainModel *model, const MoneImageSet *test,
    const int *items, const MoneProtocol *protocols, int n_items, const double *budgets, int n_budgets,
    const char *const *labels, GError **error);

G_END_DECLS

#endif /* MONE_TRAIN_REPORT_H */
