/* `mone eval MODEL`: accuracy and GFLOPs per budget on the Fashion-MNIST protocols (full-frame,
 * in-frame and scene by default, close-up on request; or full-frame on an image folder), the same
 * model with random routing, the dense twin, and where the widest expert's tokens fall; CSV, plot
 * and routing maps (see docs/training.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mone-commands.h"
#include "mone/mone-authoring.h"
#include "mone/mone-train.h"
#include "tool-input.h"

/* A budget below the model's smallest would run at the smallest and be reported as asked: refused. */
static gboolean
parse_budgets (const char *text, double min_budget, GArray *out, GError **error)
{
  char **parts = g_strsplit (text, ",", -1);
  gboolean ok = parts[0] != NULL;
  if (!ok)
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT, "--budgets is empty");
  for (int i = 0; parts[i] && ok; i++) {
    double b = NAN;
    const char *item = g_strstrip (parts[i]);
    gboolean number = !g_strcmp0 (item, "min") ? (b = min_budget, TRUE) : mone_tool_parse_decimal (item, &b);
    if (!number || !(b > 0 && b <= 1)) {
      g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT, "budget '%s' is not a number in (0, 1] or 'min'",
          parts[i]);
      ok = FALSE;
    } else if (b < min_budget - 1e-9) {
      g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
          "budget %g is below this model's smallest budget %g (write 'min' for it)", b, min_budget);
      ok = FALSE;
    } else {
      g_array_append_val (out, b);
    }
  }
  g_strfreev (parts);
  return ok;
}

/* A comma-separated list of protocol names, each once. */
static gboolean
parse_protocols (const char *text, MoneProtocol *out, int *n_out, GError **error)
{
  char **parts = g_strsplit (text, ",", -1);
  gboolean ok = parts[0] != NULL;
  *n_out = 0;
  if (!ok)
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT, "--protocols is empty");
  for (int i = 0; parts[i] && ok; i++) {
    MoneProtocol p;
    if (!mone_protocol_from_name (g_strstrip (parts[i]), &p)) {
      g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
          "protocol '%s' is not one of full-frame, in-frame, scene, close-up", parts[i]);
      ok = FALSE;
    } else {
      for (int j = 0; j < *n_out; j++)
        if (out[j] == p) {
          g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT, "protocol '%s' is listed twice", parts[i]);
          ok = FALSE;
        }
      if (ok)
        out[(*n_out)++] = p;
    }
  }
  g_strfreev (parts);
  return ok;
}

/* "min" and the tenths from 0.2 that lie above it: a 3-expert model starts at 0.25, a 1-expert one
 * at 1, and a fixed list would ask them for budgets they do not have. */
static char *
default_budget_list (double min_budget)
{
  GString *list = g_string_new ("min");
  for (int tenths = 2; tenths <= 10; tenths++)
    if (tenths / 10.0 > min_budget + 1e-9)
      g_string_append_printf (list, ",%.1f", tenths / 10.0);
  return g_string_free (list, FALSE);
}

/* Whether a model's classes are the folder's, in the same order: a model trained on another
 * folder would be scored against the wrong labels. A checkpoint keeps no class names (its engine
 * model has placeholders): its classes are taken to be the folder's, which only the count checks. */
static gboolean
labels_match_folder (MoneModel *engine, const char *path, const MoneImageFolder *folder, const char *dir,
    GError **error)
{
  const MoneConfig *c = mone_model_get_config (engine);
  if (c->classes != folder->classes) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_MODEL, "model '%s' has %d classes but image folder '%s' has %d", path,
        c->classes, dir, folder->classes);
    return FALSE;
  }
  if (g_str_has_suffix (path, ".ckpt"))
    return TRUE;
  for (int k = 0; k < c->classes; k++)
    if (strcmp (mone_model_get_label (engine, k), folder->class_names[k]) != 0) {
      g_set_error (error, MONE_ERROR, MONE_ERROR_MODEL,
          "model '%s' has label '%s' for class %d but image folder '%s' has class folder '%s' there", path,
          mone_model_get_label (engine, k), k, dir, folder->class_names[k]);
      return FALSE;
    }
  return TRUE;
}

/* Checks a loaded model can be evaluated on Fashion-MNIST, or on the image folder if one is given
 * (read at the model's input size), and copies its weights for the trainer's forward pass. */
static MoneTrainModel *
prepare_for_eval (MoneModel *engine, const char *path, const MoneImageFolder *folder, const char *folder_dir,
    GError **error)
{
  const MoneConfig *c = mone_model_get_config (engine);
  if (folder && !labels_match_folder (engine, path, folder, folder_dir, error))
    return NULL;
  if (folder
      && (c->height != folder->images.rows || c->width != folder->images.cols
          || c->channels != folder->images.channels)) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_MODEL, "model '%s' takes %dx%dx%d, the folder was read at %dx%dx%d",
        path, c->width, c->height, c->channels, folder->images.cols, folder->images.rows, folder->images.channels);
    return NULL;
  }
  if (!folder && c->classes != MONE_FASHION_MNIST_CLASSES) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_MODEL, "model '%s' has %d classes but Fashion-MNIST has %d", path,
        c->classes, MONE_FASHION_MNIST_CLASSES);
    return NULL;
  }
  if (c->frames != 1) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_MODEL,
        "model '%s' is a video model (%d frames); eval needs an image model", path, c->frames);
    return NULL;
  }
  return mone_train_model_from_engine (engine, error);
}

/* A model file, or a training checkpoint (*.ckpt) to look at a run in progress: its parameters stay
 * in *checkpoint, which the engine model borrows; a ten-class checkpoint gets Fashion-MNIST's labels. */
static MoneModel *
load_model_or_checkpoint (const char *path, MoneTrainModel **checkpoint, GError **error)
{
  long step;
  if (!g_str_has_suffix (path, ".ckpt"))
    return mone_model_load_file (path, error);
  if (!(*checkpoint = mone_train_checkpoint_load (path, &step, error)))
    return NULL;
  printf ("checkpoint %s: step %ld\n", path, step);
  const gboolean fashion = mone_train_model_get_config (*checkpoint)->classes == MONE_FASHION_MNIST_CLASSES;
  return mone_train_model_to_engine (*checkpoint, fashion ? mone_fashion_mnist_labels : NULL, error);
}

int
mone_cmd_eval (int argc, char **argv)
{
  char *data_dir = NULL, *images_dir = NULL, *dense_path = NULL, *csv = NULL, *plot = NULL, *maps = NULL;
  char *budget_text = NULL, *split = NULL, *protocol_text = NULL;
  int count = G_MININT, threads = 2; /* G_MININT: not given, the whole split */
  gboolean no_random = FALSE, item_box = FALSE, by_size = FALSE;
  GOptionEntry entries[] = {
    { "data", 0, 0, G_OPTION_ARG_FILENAME, &data_dir, "Fashion-MNIST folder (default " MONE_FASHION_MNIST_DIR ")",
        "DIR" },
    { "dense", 0, 0, G_OPTION_ARG_FILENAME, &dense_path, "dense twin model (trained at e = 1) for reference", "MODEL" },
    { "images", 0, 0, G_OPTION_ARG_FILENAME, &images_dir,
        "evaluate on an image folder (DIR/<class name>/<picture>, as mone train --images) instead: full-frame, "
        "or scenes too with --protocols full-frame,scene",
        "DIR" },
    { "count", 'n', 0, G_OPTION_ARG_INT, &count,
        "evaluate the first N images of the split (default all: 10,000 test, 5,000 val)", "N" },
    { "split", 0, 0, G_OPTION_ARG_STRING, &split,
        "Fashion-MNIST: test (default) or val (the 5,000 held-out training images); image folder: all (default), "
        "train or val (every 10th image of each class)",
        "SPLIT" },
    { "budgets", 'b', 0, G_OPTION_ARG_STRING, &budget_text,
        "comma-separated budgets (default min and the tenths from 0.2 to 1.0 above it)", "LIST" },
    { "protocols", 0, 0, G_OPTION_ARG_STRING, &protocol_text,
        "Fashion-MNIST render protocols to evaluate: full-frame, in-frame, scene, close-up (default "
        "full-frame,in-frame,scene)",
        "LIST" },
    { "threads", 0, 0, G_OPTION_ARG_INT, &threads, "worker threads (default 2)", "N" },
    { "no-random", 0, 0, G_OPTION_ARG_NONE, &no_random, "skip the random-routing ablation", NULL },
    { "item-box", 0, 0, G_OPTION_ARG_NONE, &item_box,
        "also route by the item's box (tokens the item covers get the widest experts): a bound for the router", NULL },
    { "by-size", 0, 0, G_OPTION_ARG_NONE, &by_size,
        "after each row, accuracy by the item's height in tenths of the frame height (scenes: 0.3 to 0.95)", NULL },
    { "csv", 0, 0, G_OPTION_ARG_FILENAME, &csv, "write the table as CSV", "FILE" },
    { "plot", 0, 0, G_OPTION_ARG_FILENAME, &plot, "write the compute-accuracy curve (PNG, gnuplot)", "FILE" },
    { "maps", 0, 0, G_OPTION_ARG_FILENAME, &maps, "write routing maps (PNG, cairo)", "FILE" },
    G_OPTION_ENTRY_NULL,
  };
  GOptionContext *octx = g_option_context_new (
      "MODEL - accuracy and GFLOPs per budget on Fashion-MNIST or an image folder (--images)");
  g_option_context_add_main_entries (octx, entries, NULL);
  GError *error = NULL;
  int status = 1;
  MoneModel *engine = NULL, *dense_engine = NULL;
  MoneTrainModel *checkpoint = NULL, *dense_checkpoint = NULL;
  MoneTrainModel *model = NULL, *dense = NULL;
  MoneImageSet set = { 0 };
  MoneImageFolder folder = { 0 };
  GArray *budgets = g_array_new (FALSE, FALSE, sizeof (double));
  MoneEvalRow *rows = NULL;

  if (!g_option_context_parse (octx, &argc, &argv, &error)) {
    fprintf (stderr, "mone eval: %s\n", error->message);
    status = 2;
    goto out;
  }
  if (argc != 2) {
    fprintf (stderr, "usage: mone eval MODEL [OPTION...] (see --help)\n");
    status = 2;
    goto out;
  }
  if (images_dir && data_dir) {
    fprintf (stderr,
        "mone eval: --data is the Fashion-MNIST folder and --images an image folder; give one of the two\n");
    status = 2;
    goto out;
  }
  /* --images used to be the image count (now --count): say so rather than "folder '500' does not exist". */
  if (images_dir && images_dir[0] && strspn (images_dir, "0123456789") == strlen (images_dir)
      && !g_file_test (images_dir, G_FILE_TEST_EXISTS)) {
    fprintf (stderr, "mone eval: --images names an image folder; the number of images to evaluate is -n/--count\n");
    status = 2;
    goto out;
  }
  gboolean use_val = split && !strcmp (split, "val");
  gboolean use_train = split && !strcmp (split, "train"); /* image folders */
  if (!images_dir && split && !use_val && strcmp (split, "test")) {
    fprintf (stderr, "mone eval: --split must be 'test' or 'val' for Fashion-MNIST, not '%s'\n", split);
    status = 2;
    goto out;
  }
  if (images_dir && split && !use_val && !use_train && strcmp (split, "all")) {
    fprintf (stderr, "mone eval: --split must be 'all', 'train' or 'val' for an image folder, not '%s'\n", split);
    status = 2;
    goto out;
  }
  if (images_dir && (maps || item_box)) {
    fprintf (stderr, "mone eval: %s Fashion-MNIST's protocols only, not an image folder\n",
        maps ? "--maps draws" : "--item-box routes by the rendered item's box:");
    status = 2;
    goto out;
  }
  /* In-frame blends grey items by brightness: Fashion-MNIST only (see mone-train.h). An image folder is
   * evaluated full-frame unless --protocols asks for scenes too. */
  static const MoneProtocol default_protocols[] = { MONE_PROTOCOL_FULL_FRAME, MONE_PROTOCOL_IN_FRAME,
    MONE_PROTOCOL_SCENE };
  MoneProtocol protocols[MONE_N_PROTOCOLS];
  int n_protocols = images_dir ? 1 : (int) G_N_ELEMENTS (default_protocols);
  memcpy (protocols, default_protocols, sizeof default_protocols);
  if (protocol_text && !parse_protocols (protocol_text, protocols, &n_protocols, &error))
    goto fail;
  for (int i = 0; i < n_protocols && images_dir; i++)
    if (protocols[i] == MONE_PROTOCOL_IN_FRAME) {
      fprintf (stderr,
          "mone eval: an image folder has no in-frame protocol (it blends grey items by brightness); "
          "use full-frame and scene\n");
      status = 2;
      goto out;
    }
  if (threads < 1 || threads > 16) {
    fprintf (stderr, "mone eval: --threads must be 1..16\n");
    status = 2;
    goto out;
  }
  /* Output files are checked now, not after minutes of evaluation. */
  if ((csv && !mone_check_writable (csv, "the CSV", &error))
      || (plot && !mone_check_writable (plot, "the plot", &error))
      || (maps && !mone_check_writable (maps, "the routing maps", &error)))
    goto fail;
  if (!(engine = load_model_or_checkpoint (argv[1], &checkpoint, &error)))
    goto fail;
  if (dense_path && !(dense_engine = load_model_or_checkpoint (dense_path, &dense_checkpoint, &error)))
    goto fail;
  /* An image folder is read once, at the model's input size and channels. */
  if (images_dir) {
    const MoneConfig *ec = mone_model_get_config (engine);
    if (!mone_image_folder_load (images_dir, ec->height, ec->width, ec->channels, &folder, &error))
      goto fail;
  }
  const MoneImageFolder *eval_folder = images_dir ? &folder : NULL;
  if (!(model = prepare_for_eval (engine, argv[1], eval_folder, images_dir, &error)))
    goto fail;
  if (dense_engine && !(dense = prepare_for_eval (dense_engine, dense_path, eval_folder, images_dir, &error)))
    goto fail;
  const MoneConfig *c = mone_train_model_get_config (model);
  double min_budget = mone_model_min_budget (engine);
  char *default_budgets = default_budget_list (min_budget);
  gboolean budgets_ok = parse_budgets (budget_text ? budget_text : default_budgets, min_budget, budgets, &error);
  g_free (default_budgets);
  if (!budgets_ok)
    goto fail;

  MoneImageSet eval_set;
  const char *split_name;
  if (images_dir) {
    char *description = mone_image_folder_describe (&folder, images_dir);
    printf ("%s\n", description);
    g_free (description);
    eval_set = use_val ? mone_image_folder_val_set (&folder)
        : use_train    ? mone_image_folder_train_set (&folder)
                       : folder.images;
    split_name = use_val ? "validation" : use_train ? "training" : "whole";
  } else {
    if (!mone_fashion_mnist_load (data_dir, use_val, &set, &error))
      goto fail;
    eval_set = use_val ? mone_image_set_slice (&set, set.count - MONE_VALIDATION_SIZE, MONE_VALIDATION_SIZE) : set;
    split_name = use_val ? "validation" : "test";
  }
  if (eval_set.count == 0) {
    fprintf (stderr, "mone eval: image folder '%s' has no validation images: every class has fewer than %d\n",
        images_dir, MONE_IMAGE_FOLDER_VAL_EVERY);
    goto out;
  }
  if (count == G_MININT)
    count = eval_set.count;
  if (count < 1 || count > eval_set.count) {
    fprintf (stderr, "mone eval: --count must be 1..%d\n", eval_set.count);
    status = 2;
    goto out;
  }

  char *stem = c->stem_layers ? mone_config_stem_string (c) : NULL;
  printf ("model %s: %dx%dx%d%s%s, patch %d (%d tokens), D %d, depth %d, E %d; %s split, %d images per protocol\n",
      argv[1], c->width, c->height, c->channels, stem ? ", stem " : "", stem ? stem : "", c->patch, c->tokens, c->dim,
      c->depth, c->experts, split_name, count);
  g_free (stem);
  /* NaN for a protocol not measured: the plot leaves it out. */
  MoneDenseFigures dense_fig = { .accuracy = { NAN, NAN, NAN } };
  if (dense) {
    dense_fig.present = TRUE;
    dense_fig.gflops = mone_model_flops (dense_engine, 1.0) / 1e9;
    printf ("dense twin %s at e=1: %.4f GFLOPs", dense_path, dense_fig.gflops);
    for (int i = 0; i < n_protocols; i++) {
      const MoneProtocol p = protocols[i];
      MoneEvalResult r;
      if (!mone_evaluate (dense, &eval_set, count, p, MONE_EVAL_RENDER_SEED, 1.0, MONE_ROUTING_EPR, 0, threads, &r,
              &error))
        goto fail;
      dense_fig.accuracy[p] = 100.0 * r.correct / r.total;
      printf (", %s %.2f%%", mone_protocol_name (p), dense_fig.accuracy[p]);
    }
    printf ("\n");
  }

  int n_rows = n_protocols * (int) budgets->len;
  rows = g_new0 (MoneEvalRow, n_rows);
  printf ("%-10s %6s %9s %8s %8s%s %6s  %s\n", "protocol", "budget", "GFLOPs", "acc%", "random%",
      item_box ? "     box%" : "", "lift", "tokens per expert (share)");
  for (int p = 0; p < n_protocols; p++)
    for (guint b = 0; b < budgets->len; b++) {
      MoneEvalRow *row = &rows[p * budgets->len + b];
      row->protocol = protocols[p];
      row->budget = g_array_index (budgets, double, b);
      row->gflops = mone_model_flops (engine, row->budget) / 1e9;
      MoneEvalResult r;
      if (!mone_evaluate (model, &eval_set, count, row->protocol, MONE_EVAL_RENDER_SEED, row->budget, MONE_ROUTING_EPR,
              0, threads, &r, &error))
        goto fail;
      row->accuracy = 100.0 * r.correct / r.total;
      row->widest_item_lift = r.widest_item_lift;
      MoneEvalResult by_height = r;
      memcpy (row->expert_share, r.expert_share, sizeof row->expert_share);
      row->random_accuracy = NAN;
      if (!no_random) {
        if (!mone_evaluate (model, &eval_set, count, row->protocol, MONE_EVAL_RENDER_SEED, row->budget,
                MONE_ROUTING_RANDOM, MONE_EVAL_ROUTING_SEED, threads, &r, &error))
          goto fail;
        row->random_accuracy = 100.0 * r.correct / r.total;
      }
      printf ("%-10s %6.3f %9.4f %8.2f ", mone_protocol_name (row->protocol), row->budget, row->gflops, row->accuracy);
      if (no_random)
        printf ("%8s ", "-");
      else
        printf ("%8.2f ", row->random_accuracy);
      if (item_box) {
        if (!mone_evaluate (model, &eval_set, count, row->protocol, MONE_EVAL_RENDER_SEED, row->budget,
                MONE_ROUTING_ITEM_BOX, 0, threads, &r, &error))
          goto fail;
        printf ("%8.2f ", 100.0 * r.correct / r.total);
      }
      if (isnan (row->widest_item_lift))
        printf ("%6s ", "-");
      else
        printf ("%6.2f ", row->widest_item_lift);
      for (int j = 0; j < c->experts; j++)
        printf (" %.3f", row->expert_share[j]);
      printf ("\n");
      if (by_size) {
        printf ("  by item height:");
        for (int h = 0; h < MONE_EVAL_HEIGHT_BINS; h++)
          if (by_height.total_by_height[h])
            printf ("  %.1f-%.1f %.2f%% (%d)", h / 10.0, (h + 1) / 10.0,
                100.0 * by_height.correct_by_height[h] / by_height.total_by_height[h], by_height.total_by_height[h]);
        printf ("\n");
      }
      fflush (stdout);
    }

  if (csv && !mone_report_write_csv (csv, rows, n_rows, c->experts, &dense_fig, &error))
    goto fail;
  if (plot) {
    char *title = images_dir
        ? g_strdup_printf ("MoNE on %s (%s split, %d images)", images_dir, split_name, count)
        : g_strdup_printf ("MoNE on Fashion-MNIST (%s, %d images per protocol)", split_name, count);
    gboolean ok = mone_report_plot (plot, rows, n_rows, &dense_fig, title, &error);
    g_free (title);
    if (!ok)
      goto fail;
  }
  if (maps) {
    /* The first test items of ten different classes: two full-frame, then eight in the last
     * protocol evaluated (scene by default), where routing has background to save on. */
    int items[MONE_FASHION_MNIST_CLASSES], n_items = 0;
    MoneProtocol item_protocols[MONE_FASHION_MNIST_CLASSES];
    gboolean seen[MONE_FASHION_MNIST_CLASSES] = { 0 };
    for (int i = 0; i < eval_set.count && n_items < MONE_FASHION_MNIST_CLASSES; i++)
      if (!seen[eval_set.labels[i]]) {
        seen[eval_set.labels[i]] = TRUE;
        item_protocols[n_items] = n_items < 2 ? MONE_PROTOCOL_FULL_FRAME : protocols[n_protocols - 1];
        items[n_items++] = i;
      }
    const double map_budgets[] = { 0.3, 0.5, 1.0 };
    if (!mone_report_routing_maps (maps, model, &eval_set, items, item_protocols, n_items, map_budgets, 3,
            mone_fashion_mnist_labels, &error))
      goto fail;
  }
  status = 0;
  goto out;

fail:
  fprintf (stderr, "mone eval: %s\n", error->message);
out:
  g_clear_error (&error);
  g_option_context_free (octx);
  g_array_free (budgets, TRUE);
  g_free (rows);
  mone_image_set_clear (&set);
  mone_image_folder_clear (&folder);
  mone_train_model_free (model);
  mone_train_model_free (dense);
  if (engine)
    mone_model_unref (engine);
  if (dense_engine)
    mone_model_unref (dense_engine);
  mone_train_model_free (checkpoint); /* after the engine models that borrow them */
  mone_train_model_free (dense_checkpoint);
  g_free (data_dir);
  g_free (images_dir);
  g_free (dense_path);
  g_free (csv);
  g_free (plot);
  g_free (maps);
  g_free (budget_text);
  g_free (split);
  g_free (protocol_text);
  return status;
}
