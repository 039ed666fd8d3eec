/* The engine's kernels on the shapes of one frame of a model, per kernel path, side by side.
 *
 * For a budget's token counts per expert: each expert's four packed products (QKV, attention
 * projection, fc1, fc2, the weights warm in cache), one head's attention over all tokens, GELU
 * over the hidden units and LayerNorm over the tokens, and for a model with a convolutional stem
 * its first layer and the products of the later ones. Each item is timed on every kernel path the
 * CPU runs (and OpenBLAS's sgemm for the products and attention, the reference), the paths
 * alternating within each round; medians over rounds. This is the loop behind docs/engine.md's
 * kernel rates: to compare two builds, run it from both in turn.
 *
 *   build/bench/kernels --config vit-ti16 -b 0.25
 *   build/bench/kernels models/scene-mone.safetensors --paths avx2,openblas */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attention.h"
#include "bench-stats.h"
#include "gemm.h"
#include "kernels.h"
#include "mone-private.h"
#include "mone/mone-authoring.h"

#define MAX_PATHS 4
#define MAX_ROUNDS 99
/* QKV, projection, fc1, fc2, then the stem layers after the first */
#define MATRICES (4 + MONE_MAX_STEM_LAYERS)
#define MAX_ITEMS (4 * MONE_MAX_EXPERTS + MONE_MAX_STEM_LAYERS + 3)

typedef enum { PRODUCT, STEM_PRODUCT, STEM_FIRST, ATTENTION, GELU, LAYERNORM } ItemKind;

typedef struct {
  char name[48];
  ItemKind kind;
  int rows, n, k;  /* products: c (rows, n) = a (rows, k) W^T; stem: output pixels per row */
  int matrix;      /* which weight matrix (Bench.w and .packed) */
  int out_h, c_in; /* stem layers: output rows, input channels */
  double work;     /* FLOPs, or values for GELU and LayerNorm */
  double times[MAX_PATHS][MAX_ROUNDS];
} Item;

typedef struct {
  const MoneConfig *config;
  float *w[MATRICES]; /* unpacked weights (outputs, inputs), for OpenBLAS */
  MonePackedMatrix packed[MATRICES];
  float *a, *c, *bias, *scratch, *stem_first_weights; /* a: inputs, also the stem's input maps */
  const float *padded_rows[3];
} Bench;

static double
now_seconds (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *
random_floats (size_t n, unsigned *seed)
{
  float *x = g_aligned_alloc (n + 16, sizeof (float), 64);
  for (size_t i = 0; i < n + 16; i++) {
    *seed = *seed * 1664525u + 1013904223u;
    x[i] = (float) ((*seed >> 8) * (1.0 / 16777216.0) - 0.5);
  }
  return x;
}

static void
add_matrix (Bench *b, int index, int outputs, int inputs, unsigned *seed)
{
  b->w[index] = random_floats ((size_t) outputs * inputs, seed);
  float *panels = g_aligned_alloc (mone_packed_size (outputs, inputs), sizeof (float), 64);
  mone_pack_weights (outputs, inputs, b->w[index], inputs, panels);
  b->packed[index] = (MonePackedMatrix){ panels, outputs, inputs };
}

/* One call of the item on one path (MONE_ISA_OPENBLAS: sgemm, for products only). */
static void
run_item (Bench *b, const Item *item, MoneIsa isa)
{
  const MoneConfig *c = b->config;
  const MoneKernels *kernels = isa == MONE_ISA_OPENBLAS ? NULL : mone_kernels_for_isa (isa);
  switch (item->kind) {
    case PRODUCT:
      if (isa == MONE_ISA_OPENBLAS)
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, item->rows, item->n, item->k, 1.0f,
            b->a, item->k, b->w[item->matrix], b->packed[item->matrix].inputs, 0.0f, b->c, item->n);
      else
        mone_gemm_packed (isa, item->rows, item->n, item->k, b->a, item->k,
            &b->packed[item->matrix], b->bias, false, b->c, item->n);
      break;
    case STEM_PRODUCT: {
      const size_t in_row = (size_t) (2 * item->rows + 1) * item->c_in;
      for (int oy = 0; oy < item->out_h; oy++)
        mone_gemm_packed_taps (isa, item->rows, item->n, 3, 3 * item->c_in,
            b->a + (size_t) 2 * oy * in_row, 2 * item->c_in, (ptrdiff_t) in_row,
            &b->packed[item->matrix], NULL, false, b->c + (size_t) oy * item->rows * item->n,
            item->n);
      break;
    }
    case STEM_FIRST:
      for (int oy = 0; oy < item->out_h; oy++)
        kernels->stem_first_row (item->rows, item->c_in, item->n, b->padded_rows,
            b->stem_first_weights, b->bias, b->c + (size_t) oy * item->rows * item->n);
      break;
    case ATTENTION: {
      const int head_dim = c->dim / c->heads, ld = 3 * c->dim;
      if (isa == MONE_ISA_OPENBLAS) /* two sgemm calls per strip, the best path's softmax */
        mone_attention_block_sgemm (mone_kernels_for_isa (mone_isa_best ()), c->tokens, c->tokens,
            head_dim, b->a, b->a + c->dim, b->a + 2 * c->dim, ld, b->c, c->dim, b->scratch);
      else
        kernels->attention_block (c->tokens, c->tokens, head_dim, b->a, b->a + c->dim,
            b->a + 2 * c->dim, ld, b->c, c->dim, b->scratch);
      break;
    }
    case GELU:
      kernels->bias_gelu_scale_rows (c->tokens, c->mlp_dim, b->c, c->mlp_dim, b->bias, NULL);
      break;
    case LAYERNORM:
      kernels->layernorm_rows (c->tokens, c->dim, c->dim, b->a, c->dim, b->bias, b->bias, c->ln_eps,
          b->c, c->dim);
      break;
  }
}

static gboolean
item_runs_on (const Item *item, MoneIsa isa)
{
  return isa != MONE_ISA_OPENBLAS || item->kind == PRODUCT || item->kind == ATTENTION;
}

int
main (int argc, char **argv)
{
  char *config_name = NULL, *paths_text = NULL;
  double budget = 1.0;
  int rounds = 9;
  GOptionEntry entries[] = {
    { "config", 0, 0, G_OPTION_ARG_STRING, &config_name,
        "a model of this config (mone_config_names) instead of a file; key=value arguments "
        "override it",
        "NAME" },
    { "budget", 'b', 0, G_OPTION_ARG_DOUBLE, &budget,
        "the budget whose token counts per expert the products take (default 1)", "E" },
    { "runs", 'r', 0, G_OPTION_ARG_INT, &rounds, "rounds, medians over rounds (default 9)", "N" },
    { "paths", 0, 0, G_OPTION_ARG_STRING, &paths_text,
        "comma-separated kernel paths (default: every one this CPU runs, then openblas)", "LIST" },
    G_OPTION_ENTRY_NULL,
  };
  GOptionContext *opts = g_option_context_new ("MODEL | --config NAME [key=value...]");
  g_option_context_set_summary (opts,
      "Times the engine's kernels on one frame's shapes, per path.");
  g_option_context_add_main_entries (opts, entries, NULL);
  GError *error = NULL;
  if (!g_option_context_parse (opts, &argc, &argv, &error)) {
    fprintf (stderr, "kernels: %s\n", error->message);
    return 2;
  }
  g_option_context_free (opts);
  if (rounds < 1 || rounds > MAX_ROUNDS) {
    fprintf (stderr, "kernels: --runs must be in 1..%d\n", MAX_ROUNDS);
    return 2;
  }

  MoneConfig config;
  MoneModel *model = NULL;
  if (config_name) {
    guint64 seed = 0;
    if (!mone_config_from_args (config_name, argc - 1, (const char *const *) argv + 1, &config,
            &seed, &error)
        || !mone_config_finalize (&config, &error)) {
      fprintf (stderr, "kernels: %s\n", error->message);
      return 2;
    }
  } else {
    if (argc != 2) {
      fprintf (stderr, "kernels: give a model file or --config NAME (--help)\n");
      return 2;
    }
    if (!(model = mone_model_load_file (argv[1], &error))) {
      fprintf (stderr, "kernels: %s\n", error->message);
      return 1;
    }
    config = *mone_model_get_config (model);
    mone_model_unref (model);
  }

  MoneIsa paths[MAX_PATHS];
  int n_paths = 0;
  if (paths_text) {
    char **names = g_strsplit (paths_text, ",", -1);
    for (char **name = names; *name; name++) {
      MoneIsa isa;
      if (!mone_isa_from_name (*name, &isa) || !mone_isa_supported (isa) || n_paths == MAX_PATHS) {
        fprintf (stderr, "kernels: '%s' is not a kernel path this CPU runs\n", *name);
        return 2;
      }
      paths[n_paths++] = isa;
    }
    g_strfreev (names);
  } else {
    const MoneIsa all[] = { MONE_ISA_AVX512, MONE_ISA_AVX2, MONE_ISA_GENERIC, MONE_ISA_OPENBLAS };
    for (size_t i = 0; i < G_N_ELEMENTS (all); i++)
      if (mone_isa_supported (all[i]))
        paths[n_paths++] = all[i];
  }

  /* Token counts of the budget, as the forward pass routes them. */
  const MoneConfig *c = &config;
  double capacity[MONE_MAX_EXPERTS];
  int counts[MONE_MAX_EXPERTS];
  budget = mone_capacity_from_budget (c->experts, c->delta, c->beta, budget, capacity);
  mone_tokens_per_expert (c->experts, capacity, c->tokens, counts);

  unsigned seed = 1;
  Bench b = { .config = c };
  const int D = c->dim, F = c->mlp_dim, N = c->tokens;
  add_matrix (&b, 0, 3 * D, D, &seed);
  add_matrix (&b, 1, D, D, &seed);
  add_matrix (&b, 2, F, D, &seed);
  add_matrix (&b, 3, D, F, &seed);
  size_t a_floats = (size_t) N * MAX (3 * D, F), c_floats = a_floats;
  for (int i = 0; i < c->stem_layers; i++) {
    const int c_in = i ? c->stem_channels[i - 1] : c->channels, out_w = c->width >> (i + 1);
    if (i)
      add_matrix (&b, 3 + i, c->stem_channels[i], 9 * c_in, &seed);
    c_floats = MAX (c_floats, (size_t) out_w * (c->height >> (i + 1)) * c->stem_channels[i]);
    a_floats = MAX (a_floats, (size_t) (2 * out_w + 1) * (2 * (c->height >> (i + 1)) + 1) * c_in);
  }
  b.a = random_floats (a_floats, &seed);
  b.c = random_floats (c_floats, &seed);
  b.bias = random_floats (MAX (3 * D, F) + 1024, &seed);
  b.scratch = g_aligned_alloc (mone_attention_scratch_floats (N, D / c->heads) + 64, sizeof (float),
      64);
  if (c->stem_layers > 0) {
    const int c_in = c->channels, row = (c->width + 1) * c_in;
    b.stem_first_weights = random_floats ((size_t) 9 * c_in * c->stem_channels[0], &seed);
    for (int r = 0; r < 3; r++)
      b.padded_rows[r] = b.a + (size_t) r * row;
  }

  Item items[MAX_ITEMS];
  int n_items = 0;
  const char *product_names[4] = { "qkv", "proj", "fc1", "fc2" };
  for (int j = c->experts - 1; j >= 0; j--) {
    const int d = D >> (c->experts - 1 - j);
    if (!counts[j])
      continue;
    const int shapes[4][2] = { { 3 * D, d }, { d, D }, { F, d }, { d, F } }; /* n, k */
    for (int m = 0; m < 4; m++) {
      Item *it = &items[n_items++];
      *it = (Item){ .kind = PRODUCT,
        .rows = counts[j],
        .n = shapes[m][0],
        .k = shapes[m][1],
        .matrix = m };
      it->work = 2.0 * it->rows * it->n * it->k;
      snprintf (it->name, sizeof it->name, "%s d=%d, %d rows", product_names[m], d, counts[j]);
    }
  }
  for (int i = 0; i < c->stem_layers; i++) {
    Item *it = &items[n_items++];
    const int c_in = i ? c->stem_channels[i - 1] : c->channels;
    *it = (Item){ .kind = i ? STEM_PRODUCT : STEM_FIRST,
      .rows = c->width >> (i + 1),
      .out_h = c->height >> (i + 1),
      .n = c->stem_channels[i],
      .k = 9 * c_in,
      .c_in = c_in,
      .matrix = 3 + i };
    it->work = 2.0 * it->rows * it->out_h * it->n * it->k;
    snprintf (it->name, sizeof it->name, "stem %d: %dx%d px, %d -> %d", i, it->rows, it->out_h,
        c_in, it->n);
  }
  items[n_items++] = (Item){ .name = "attention, one head",
    .kind = ATTENTION,
    .work = 4.0 * N * N * (D / c->heads) };
  items[n_items++] = (Item){ .name = "GELU, all hidden units",
    .kind = GELU,
    .work = (double) N * F };
  items[n_items++] = (Item){ .name = "LayerNorm, all tokens",
    .kind = LAYERNORM,
    .work = (double) N * D };

  openblas_set_num_threads (1); /* the kernels run on one thread; so does the reference */
  /* Calls per timing: about 5 ms on the first path. */
  int calls[MAX_ITEMS];
  for (int i = 0; i < n_items; i++) {
    const MoneIsa isa = item_runs_on (&items[i], paths[0]) ? paths[0] : MONE_ISA_GENERIC;
    double t = now_seconds ();
    int done = 0;
    while (now_seconds () - t < 5e-3)
      run_item (&b, &items[i], isa), done++;
    calls[i] = MAX (done, 1);
  }
  for (int r = 0; r < rounds; r++)
    for (int i = 0; i < n_items; i++)
      for (int p = 0; p < n_paths; p++) {
        const MoneIsa isa = paths[(p + r) % n_paths]; /* which path goes first rotates */
        if (!item_runs_on (&items[i], isa))
          continue;
        run_item (&b, &items[i], isa); /* warm */
        const double t = now_seconds ();
        for (int k = 0; k < calls[i]; k++)
          run_item (&b, &items[i], isa);
        items[i].times[(p + r) % n_paths][r] = (now_seconds () - t) / calls[i];
      }

  printf ("config: D %d, F %d, N %d tokens, %d heads of %d; budget %.4f, tokens per expert", D, F,
      N, c->heads, D / c->heads, budget);
  for (int j = 0; j < c->experts; j++)
    printf (" %d", counts[j]);
  printf ("\n%d rounds, paths alternating, medians; us per call, then GFLOP/s (ns per value for "
          "GELU and LayerNorm); x: time over the first path's\n\n%-34s",
      rounds, "");
  for (int p = 0; p < n_paths; p++)
    printf (" %25s", mone_isa_name (paths[p]));
  printf ("\n");
  for (int i = 0; i < n_items; i++) {
    Item *it = &items[i];
    printf ("%-34s", it->name);
    double first = 0;
    for (int p = 0; p < n_paths; p++) {
      if (!item_runs_on (it, paths[p])) {
        printf (" %25s", "-");
        continue;
      }
      const double t = bench_median (it->times[p], rounds);
      if (p == 0)
        first = t;
      const gboolean values = it->kind == GELU || it->kind == LAYERNORM;
      printf (" %9.2f %7.2f %s", t * 1e6, values ? t * 1e9 / it->work : it->work / t * 1e-9,
          values ? "ns" : "GF");
      if (p)
        printf (" x%4.2f", t / first);
      else
        printf ("      ");
    }
    printf ("\n");
  }
  for (int m = 0; m < MATRICES; m++) {
    g_aligned_free (b.w[m]);
    g_aligned_free ((float *) b.packed[m].panels);
  }
  g_aligned_free (b.a);
  g_aligned_free (b.c);
  g_aligned_free (b.bias);
  g_aligned_free (b.scratch);
  g_aligned_free (b.stem_first_weights);
  g_free (config_name);
  g_free (paths_text);
  return 0;
}
