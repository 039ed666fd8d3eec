/* CSV, gnuplot plot and cairo routing maps for `mone eval` (see include/mone/mone-train.h). */
#include "trainer.h"

#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

gboolean
mone_report_write_csv (const char *path, const MoneEvalRow *rows, int n_rows, int experts,
    const MoneDenseFigures *dense, GError **error)
{
  GString *s = g_string_new (
      "protocol,budget,gflops_per_frame,accuracy,random_routing_accuracy,dense_twin_accuracy,widest_item_lift");
  for (int j = 0; j < experts; j++)
    g_string_append_printf (s, ",share_expert%d", j);
  g_string_append_c (s, '\n');
  for (int i = 0; i < n_rows; i++) {
    const MoneEvalRow *r = &rows[i];
    g_string_append_printf (s, "%s,%.3f,%.6f,%.2f,", mone_protocol_name (r->protocol), r->budget, r->gflops,
        r->accuracy);
    if (!isnan (r->random_accuracy)) /* NaN: not measured (--no-random), an empty field */
      g_string_append_printf (s, "%.2f", r->random_accuracy);
    g_string_append_c (s, ',');
    if (dense && dense->present && r->budget >= 0.9999 && !isnan (dense->accuracy[r->protocol]))
      g_string_append_printf (s, "%.2f", dense->accuracy[r->protocol]);
    g_string_append_c (s, ',');
    if (!isnan (r->widest_item_lift))
      g_string_append_printf (s, "%.3f", r->widest_item_lift);
    for (int j = 0; j < experts; j++)
      g_string_append_printf (s, ",%.4f", r->expert_share[j]);
    g_string_append_c (s, '\n');
  }
  gboolean ok = g_file_set_contents (path, s->str, (gssize) s->len, error);
  g_string_free (s, TRUE);
  return ok;
}

/* Which protocols have rows, and each one's gnuplot data block (gnuplot numbers blocks as they
 * come, and an empty one would merge its separators with the next). Returns the block count. */
static int
plot_blocks (const MoneEvalRow *rows, int n_rows, gboolean *present, int *block_of)
{
  int n_blocks = 0;
  for (int p = 0; p < MONE_N_PROTOCOLS; p++)
    present[p] = FALSE;
  for (int i = 0; i < n_rows; i++)
    present[rows[i].protocol] = TRUE;
  for (int p = 0; p < MONE_N_PROTOCOLS; p++)
    block_of[p] = present[p] ? n_blocks++ : -1;
  return n_blocks;
}

/* One data block per present protocol (gflops accuracy random_accuracy budget), the dense twin's
 * point last. */
static GString *
plot_data (const MoneEvalRow *rows, int n_rows, const gboolean *present, const MoneDenseFigures *dense)
{
  GString *d = g_string_new ("");
  for (int p = 0; p < MONE_N_PROTOCOLS; p++) {
    if (!present[p])
      continue;
    g_string_append_printf (d, "# %s\n", mone_protocol_name ((MoneProtocol) p));
    for (int i = 0; i < n_rows; i++)
      if (rows[i].protocol == (MoneProtocol) p)
        g_string_append_printf (d, "%.6f %.3f %.3f %.3f\n", rows[i].gflops, rows[i].accuracy, rows[i].random_accuracy,
            rows[i].budget);
    g_string_append (d, "\n\n");
  }
  if (dense && dense->present)
    g_string_append_printf (d, "# dense twin\n%.6f %.3f %.3f %.3f\n", dense->gflops, dense->accuracy[0],
        dense->accuracy[1], dense->accuracy[2]);
  return d;
}

/* The gnuplot script: per protocol the MoNE curve, the random-routing curve where it was measured
 * and the dense twin's point; only measured series get a legend entry. */
static GString *
plot_script (const char *data_path, const char *png_path, const char *title, const MoneEvalRow *rows, int n_rows,
    const MoneDenseFigures *dense)
{
  gboolean present[MONE_N_PROTOCOLS];
  int block_of[MONE_N_PROTOCOLS];
  const int n_blocks = plot_blocks (rows, n_rows, present, block_of);
  const gboolean with_dense = dense && dense->present;
  gboolean with_random = FALSE;
  for (int i = 0; i < n_rows; i++)
    with_random |= !isnan (rows[i].random_accuracy);

  char *esc_data = g_strescape (data_path, NULL), *esc_png = g_strescape (png_path, NULL);
  char *esc_title = g_strescape (title ? title : "MoNE", NULL);
  GString *g = g_string_new ("");
  g_string_append_printf (g,
      "set terminal pngcairo size 1100,560 font 'Sans,11'\n"
      "set output \"%s\"\n"
      "set title \"%s\"\n"
      "set xlabel 'GFLOPs per frame'\n"
      "set ylabel 'test accuracy (%%)'\n"
      "set key outside right top\n"
      "set grid\n"
      "plot ",
      esc_png, esc_title);
  /* Per protocol: colour, then point types of the MoNE, random-routing and dense-twin series. */
  static const struct {
    const char *colour;
    int pt_mone, pt_random, pt_dense;
  } style[MONE_N_PROTOCOLS] = { { "#1f77b4", 7, 6, 9 }, { "#d62728", 5, 4, 11 }, { "#2ca02c", 13, 12, 3 },
    { "#9467bd", 15, 14, 1 } };
  gboolean first = TRUE;
#define NEXT_SERIES() (g_string_append (g, first ? "" : ", \\\n     "), first = FALSE)
  for (int p = 0; p < MONE_N_PROTOCOLS; p++)
    if (present[p]) {
      NEXT_SERIES ();
      g_string_append_printf (g, "\"%s\" index %d using 1:2 with linespoints lw 2 pt %d lc rgb '%s' title 'MoNE %s'",
          esc_data, block_of[p], style[p].pt_mone, style[p].colour, mone_protocol_name ((MoneProtocol) p));
    }
  for (int p = 0; p < MONE_N_PROTOCOLS && with_random; p++)
    if (present[p]) {
      NEXT_SERIES ();
      g_string_append_printf (g,
          "\"%s\" index %d using 1:3 with linespoints dt 2 pt %d lc rgb '%s' title 'random routing, %s'", esc_data,
          block_of[p], style[p].pt_random, style[p].colour, mone_protocol_name ((MoneProtocol) p));
    }
  for (int p = 0; p < MONE_N_PROTOCOLS && with_dense; p++)
    if (present[p] && !isnan (dense->accuracy[p])) {
      NEXT_SERIES ();
      g_string_append_printf (g, "\"%s\" index %d using 1:%d with points pt %d ps 2 lc rgb '%s' title 'dense twin, %s'",
          esc_data, n_blocks, 2 + p, style[p].pt_dense, style[p].colour, mone_protocol_name ((MoneProtocol) p));
    }
#undef NEXT_SERIES
  g_string_append_c (g, '\n');
  g_free (esc_data);
  g_free (esc_png);
  g_free (esc_title);
  return g;
}

/* Runs gnuplot on the script; its error, folded onto one line, names png_path. */
static gboolean
run_gnuplot (const char *script_path, const char *png_path, GError **error)
{
  char *argv[] = { (char *) "gnuplot", (char *) script_path, NULL };
  char *err_out = NULL;
  int status = 0;
  gboolean ok = g_spawn_sync (NULL, argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL,
      &err_out, &status, error);
  if (ok && !g_spawn_check_wait_status (status, NULL)) {
    /* gnuplot spreads one error over several lines (the script line, a caret, the message). */
    char *one_line = g_strstrip (g_strdelimit (g_strdup (err_out ? err_out : ""), "\n", ' '));
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "gnuplot failed writing '%s': %s", png_path, one_line);
    g_free (one_line);
    ok = FALSE;
  } else if (!ok) {
    g_prefix_error (error, "cannot run gnuplot (package gnuplot-nox): ");
  }
  g_free (err_out);
  return ok;
}

gboolean
mone_report_plot (const char *png_path, const MoneEvalRow *rows, int n_rows, const MoneDenseFigures *dense,
    const char *title, GError **error)
{
  char *data_path = NULL, *script_path = NULL;
  int fd_data = g_file_open_tmp ("mone-eval-XXXXXX.dat", &data_path, error);
  if (fd_data < 0)
    return FALSE;
  close (fd_data);
  int fd_script = g_file_open_tmp ("mone-eval-XXXXXX.gp", &script_path, error);
  if (fd_script < 0) {
    unlink (data_path);
    g_free (data_path);
    return FALSE;
  }
  close (fd_script);

  gboolean present[MONE_N_PROTOCOLS];
  int block_of[MONE_N_PROTOCOLS];
  plot_blocks (rows, n_rows, present, block_of);
  GString *d = plot_data (rows, n_rows, present, dense);
  GString *g = plot_script (data_path, png_path, title, rows, n_rows, dense);
  gboolean ok = g_file_set_contents (data_path, d->str, (gssize) d->len, error)
      && g_file_set_contents (script_path, g->str, (gssize) g->len, error)
      && run_gnuplot (script_path, png_path, error);
  unlink (data_path);
  unlink (script_path);
  g_free (data_path);
  g_free (script_path);
  g_string_free (d, TRUE);
  g_string_free (g, TRUE);
  return ok;
}

/* Expert colours, smallest to largest (up to MONE_MAX_EXPERTS). */
static const double expert_rgb[MONE_MAX_EXPERTS][3] = {
  { 0.20, 0.45, 0.95 },
  { 0.15, 0.75, 0.35 },
  { 0.98, 0.70, 0.10 },
  { 0.90, 0.15, 0.15 },
  { 0.60, 0.30, 0.80 },
  { 0.10, 0.70, 0.70 },
  { 0.55, 0.40, 0.20 },
  { 0.95, 0.40, 0.70 },
};

/* Where the routing maps are drawn: tile sizes and margins of the grid (items across, budgets down). */
typedef struct {
  int cell;         /* screen pixels per input pixel */
  int img_w, img_h; /* one tile */
  int pad, label_h, left, top, legend_h;
  int width, height; /* the whole picture */
} MapLayout;

static MapLayout
map_layout (const MoneConfig *c, int n_items, int n_budgets)
{
  MapLayout l = { .pad = 10, .label_h = 34, .left = 90, .top = 40, .legend_h = 34 };
  l.cell = 6 * MAX (1, 192 / (6 * MAX (c->width, c->height)));
  l.img_w = c->width * l.cell;
  l.img_h = c->height * l.cell;
  l.width = l.left + n_items * (l.img_w + l.pad) + l.pad;
  l.height = l.top + n_budgets * (l.img_h + l.label_h + l.pad) + l.legend_h;
  return l;
}

/* One tile at (x0, y0): the grey input (first channel) blended 35% toward each token's expert
 * colour, the patch grid, and the item's box where it does not fill the frame. */
static void
draw_routing_tile (cairo_t *cr, cairo_surface_t *surface, const MapLayout *l, const MoneConfig *c, const float *image,
    const uint8_t *experts, MoneProtocol protocol, const MoneItemBox *box, int x0, int y0)
{
  unsigned char *pixels = cairo_image_surface_get_data (surface);
  const int stride = cairo_image_surface_get_stride (surface), cell = l->cell;
  cairo_surface_flush (surface);
  for (int y = 0; y < c->height; y++)
    for (int x = 0; x < c->width; x++) {
      float v = image[(size_t) y * c->width + x];
      int t = (y / c->patch) * c->grid_width + x / c->patch;
      const double *rgb = expert_rgb[experts[t] % MONE_MAX_EXPERTS];
      double mix = 0.35;
      unsigned r = (unsigned) (255 * ((1 - mix) * v + mix * rgb[0]));
      unsigned g = (unsigned) (255 * ((1 - mix) * v + mix * rgb[1]));
      unsigned b = (unsigned) (255 * ((1 - mix) * v + mix * rgb[2]));
      uint32_t argb = 0xFF000000u | r << 16 | g << 8 | b;
      for (int yy = 0; yy < cell; yy++)
        for (int xx = 0; xx < cell; xx++)
          *(uint32_t *) (pixels + (size_t) (y0 + y * cell + yy) * stride + (size_t) (x0 + x * cell + xx) * 4) = argb;
    }
  cairo_surface_mark_dirty (surface);
  cairo_set_source_rgba (cr, 1, 1, 1, 0.25);
  cairo_set_line_width (cr, 1);
  for (int gx = 1; gx < c->grid_width; gx++) {
    cairo_move_to (cr, x0 + gx * c->patch * cell + 0.5, y0);
    cairo_line_to (cr, x0 + gx * c->patch * cell + 0.5, y0 + l->img_h);
  }
  for (int gy = 1; gy < c->grid_height; gy++) {
    cairo_move_to (cr, x0, y0 + gy * c->patch * cell + 0.5);
    cairo_line_to (cr, x0 + l->img_w, y0 + gy * c->patch * cell + 0.5);
  }
  cairo_stroke (cr);
  /* What the widest experts should cover. */
  if (protocol != MONE_PROTOCOL_FULL_FRAME) {
    cairo_save (cr);
    cairo_rectangle (cr, x0, y0, l->img_w, l->img_h);
    cairo_clip (cr);
    cairo_set_source_rgb (cr, 1, 0.2, 0.8);
    cairo_set_line_width (cr, 1.5);
    cairo_rectangle (cr, x0 + box->x * cell, y0 + box->y * cell, box->w * cell, box->h * cell);
    cairo_stroke (cr);
    cairo_restore (cr);
  }
}

/* Under a tile: the predicted label (green when right, red when wrong) and the true one. */
static void
draw_tile_labels (cairo_t *cr, const MapLayout *l, const MoneConfig *c, const float *logits, int truth,
    const char *const *labels, int x0, int y0)
{
  char text[64];
  int best = 0;
  for (int k = 1; k < c->classes; k++)
    if (logits[k] > logits[best])
      best = k;
  gboolean right = best == truth;
  cairo_set_source_rgb (cr, right ? 0.0 : 0.8, right ? 0.45 : 0.0, 0.0);
  cairo_set_font_size (cr, 11);
  cairo_move_to (cr, x0, y0 + l->img_h + 14);
  cairo_show_text (cr, labels && best < 10 ? labels[best] : "?");
  cairo_set_source_rgb (cr, 0.4, 0.4, 0.4);
  cairo_move_to (cr, x0, y0 + l->img_h + 28);
  snprintf (text, sizeof text, "true: %s", labels ? labels[truth] : "?");
  cairo_show_text (cr, text);
  cairo_set_font_size (cr, 12);
}

static void
draw_expert_legend (cairo_t *cr, const MapLayout *l, const MoneConfig *c)
{
  int ly = l->height - l->legend_h + 10;
  for (int j = 0; j < c->experts; j++) {
    int lx = l->left + j * 150;
    cairo_set_source_rgb (cr, expert_rgb[j][0], expert_rgb[j][1], expert_rgb[j][2]);
    cairo_rectangle (cr, lx, ly, 14, 14);
    cairo_fill (cr);
    cairo_set_source_rgb (cr, 0, 0, 0);
    cairo_move_to (cr, lx + 20, ly + 12);
    char text[64];
    snprintf (text, sizeof text, "expert %d (d = %d)", j, c->dim >> (c->experts - 1 - j));
    cairo_show_text (cr, text);
  }
}

gboolean
mone_report_routing_maps (const char *png_path, MoneTrainModel *model, const MoneImageSet *test, const int *items,
    const MoneProtocol *protocols, int n_items, const double *budgets, int n_budgets, const char *const *labels,
    GError **error)
{
  const MoneConfig *c = &model->config;
  const MapLayout l = map_layout (c, n_items, n_budgets);
  const size_t frame = (size_t) c->channels * c->height * c->width;

  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_RGB24, l.width, l.height);
  cairo_t *cr = cairo_create (surface);
  cairo_set_source_rgb (cr, 1, 1, 1);
  cairo_paint (cr);
  cairo_select_font_face (cr, "Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size (cr, 12);
  cairo_set_source_rgb (cr, 0, 0, 0);
  cairo_move_to (cr, l.left, 22);
  cairo_show_text (cr, "Routing maps: each patch tinted by the expert that processed it; magenta: the item's box");

  MonePass *pass = mone_pass_new (c, n_items);
  float *input = g_new (float, n_items *frame);
  MoneItemBox *boxes = g_new (MoneItemBox, n_items);
  for (int i = 0; i < n_items; i++)
    mone_render_with_box (test, items[i], protocols[i], MONE_EVAL_RENDER_SEED, FALSE, c->channels, c->height, c->width,
        input + i * frame, &boxes[i]);
  for (int bi = 0; bi < n_budgets; bi++) {
    mone_pass_forward (pass, model, input, NULL, n_items, budgets[bi], MONE_ROUTING_EPR, 0, 0);
    const uint8_t *experts = mone_pass_experts (pass);
    const float *logits = mone_pass_logits (pass);
    int y0 = l.top + bi * (l.img_h + l.label_h + l.pad);
    char text[64];
    snprintf (text, sizeof text, "e = %.2f", budgets[bi]);
    cairo_set_source_rgb (cr, 0, 0, 0);
    cairo_move_to (cr, 10, y0 + l.img_h / 2);
    cairo_show_text (cr, text);
    for (int i = 0; i < n_items; i++) {
      int x0 = l.left + i * (l.img_w + l.pad);
      draw_routing_tile (cr, surface, &l, c, input + i * frame, experts + (size_t) i * c->tokens, protocols[i],
          &boxes[i], x0, y0);
      draw_tile_labels (cr, &l, c, logits + (size_t) i * c->classes, test->labels[items[i]], labels, x0, y0);
    }
  }
  draw_expert_legend (cr, &l, c);

  cairo_status_t st = cairo_surface_write_to_png (surface, png_path);
  gboolean ok = st == CAIRO_STATUS_SUCCESS;
  if (!ok)
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "cannot write '%s': %s", png_path, cairo_status_to_string (st));
  cairo_destroy (cr);
  cairo_surface_destroy (surface);
  mone_pass_free (pass);
  g_free (input);
  g_free (boxes);
  return ok;
}
