/* Bad input is rejected with a message naming the cause: IDX files (missing, truncated plain and
 * gzip, corrupt gzip, wrong magic, count mismatch, labels out of range, trailing bytes), a model
 * whose class count disagrees with the data (library and `mone eval` / `mone train`), a missing
 * model file, out-of-range options of `mone train` and `mone eval` (each named in the message) and
 * output paths that cannot be written (refused before any work). argv[1] is the `mone` tool. */
#include "trainer.h"
#include "train-test-helpers.h"

#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

static char *tmpdir;

static void
expect_error (const char *what, gboolean ok, GError *error, const char *needle)
{
  report_row (!ok && error && strstr (error->message, needle), "%s: expected an error containing '%s', got %s", what,
      needle,
      ok          ? "success"
          : error ? error->message
                  : "no message");
}

static char *
tmp_path (const char *name)
{
  return g_build_filename (tmpdir, name, NULL);
}

static void
write_file (const char *path, const void *data, size_t n)
{
  GError *error = NULL;
  g_file_set_contents (path, data, (gssize) n, &error);
  g_assert_no_error (error);
}

/* Plain IDX bytes: magic 00 00 08 ndim, big-endian sizes, data. */
static GByteArray *
idx_bytes (int ndim, const uint32_t *dims, const guint8 *data, size_t n_data)
{
  GByteArray *b = g_byte_array_new ();
  guint8 magic[4] = { 0, 0, 8, (guint8) ndim };
  g_byte_array_append (b, magic, 4);
  for (int i = 0; i < ndim; i++) {
    guint8 be[4] = { dims[i] >> 24, dims[i] >> 16, dims[i] >> 8, dims[i] };
    g_byte_array_append (b, be, 4);
  }
  g_byte_array_append (b, data, (guint) n_data);
  return b;
}

static void
check_idx (const char *what, GByteArray *images, GByteArray *labels, int max_label, const char *needle)
{
  char *ip = tmp_path ("images.idx"), *lp = tmp_path ("labels.idx");
  write_file (ip, images->data, images->len);
  write_file (lp, labels->data, labels->len);
  MoneImageSet set;
  GError *error = NULL;
  gboolean ok = mone_idx_load (ip, lp, max_label, &set, &error);
  expect_error (what, ok, error, needle);
  if (ok)
    mone_image_set_clear (&set);
  g_clear_error (&error);
  g_free (ip);
  g_free (lp);
}

/* A Fashion-MNIST folder whose two files differ in size only: `count` blank 28x28 images of
 * class 0 as {prefix}-images-idx3-ubyte.gz / {prefix}-labels-idx1-ubyte.gz (plain IDX bytes;
 * the reader takes plain files under the .gz names). */
static char *
split_file (const char *dir, const char *prefix, const char *kind)
{
  char *name = g_strdup_printf ("%s-%s-ubyte.gz", prefix, kind);
  char *path = g_build_filename (dir, name, NULL);
  g_free (name);
  return path;
}

/* A freshly initialised Fashion-MNIST model of config c written to NAME in the temporary folder. */
static char *
write_fashion_model (const MoneConfig *c, const char *name)
{
  GError *error = NULL;
  MoneTrainModel *model = mone_train_model_new (c, &error);
  g_assert_no_error (error);
  mone_train_model_init (model, 1);
  char *path = tmp_path (name);
  mone_train_model_write (model, path, mone_fashion_mnist_labels, &error);
  g_assert_no_error (error);
  mone_train_model_free (model);
  return path;
}

static void
write_blank_split (const char *dir, const char *prefix, uint32_t count)
{
  uint32_t idims[3] = { count, 28, 28 };
  guint8 *zeros = g_malloc0 ((size_t) count * 28 * 28);
  GByteArray *images = idx_bytes (3, idims, zeros, (size_t) count * 28 * 28);
  GByteArray *labels = idx_bytes (1, idims, zeros, count);
  char *path = split_file (dir, prefix, "images-idx3");
  write_file (path, images->data, images->len);
  g_free (path);
  path = split_file (dir, prefix, "labels-idx1");
  write_file (path, labels->data, labels->len);
  g_free (path);
  g_byte_array_unref (images), g_byte_array_unref (labels);
  g_free (zeros);
}

/* What the cases share: the command under test, a Fashion-MNIST folder holding the real test
 * split, and a five-class model config (the data has ten). */
static const char *tool;
static char *fm_dir;
static MoneConfig five_classes;

static void
test_missing_folder (void)
{
  GError *error = NULL;
  MoneImageSet set;
  gboolean ok = mone_fashion_mnist_load ("/nonexistent/fashion", TRUE, &set, &error);
  expect_error ("missing folder", ok, error, "cannot open IDX file '/nonexistent/fashion/train-images-idx3-ubyte.gz'");
  g_clear_error (&error);
}

/* Plain IDX files crafted byte by byte. */
static void
test_idx_files (void)
{
  GError *error = NULL;
  MoneImageSet set;
  guint8 pixels[3 * 2 * 2] = { 0 }, labels3[3] = { 1, 2, 3 }, bad_labels[3] = { 1, 12, 3 };
  uint32_t idims[3] = { 3, 2, 2 }, ldims[1] = { 3 }, ldims2[1] = { 2 };
  GByteArray *img = idx_bytes (3, idims, pixels, sizeof pixels), *lab = idx_bytes (1, ldims, labels3, 3);
  {
    /* Control: the well-formed pair loads. */
    char *ip = tmp_path ("images.idx"), *lp = tmp_path ("labels.idx");
    write_file (ip, img->data, img->len);
    write_file (lp, lab->data, lab->len);
    gboolean loaded = mone_idx_load (ip, lp, 10, &set, &error);
    report_row (loaded && set.count == 3 && set.rows == 2 && set.labels[2] == 3, "valid control loads: %s",
        error        ? error->message
            : loaded ? "as written"
                     : "wrong content");
    g_clear_error (&error);
    if (loaded)
      mone_image_set_clear (&set);
    g_free (ip);
    g_free (lp);
  }
  GByteArray *img_short = idx_bytes (3, idims, pixels, sizeof pixels - 5);
  check_idx ("truncated pixels", img_short, lab, 10, "is truncated: the pixels needs 12 bytes, only 7 present");
  GByteArray *img_long = idx_bytes (3, idims, pixels, sizeof pixels);
  guint8 extra = 7;
  g_byte_array_append (img_long, &extra, 1);
  check_idx ("trailing bytes", img_long, lab, 10, "trailing bytes");
  GByteArray *bad_magic = idx_bytes (3, idims, pixels, sizeof pixels);
  bad_magic->data[2] = 0x0D; /* float data */
  check_idx ("wrong magic", bad_magic, lab, 10, "is not an IDX image file: magic 00 00 0d 03");
  GByteArray *labels_as_images = idx_bytes (1, ldims, labels3, 3);
  check_idx ("label file given as images", labels_as_images, lab, 10, "expected 00 00 08 03");
  GByteArray *lab2 = idx_bytes (1, ldims2, labels3, 2);
  check_idx ("count mismatch", img, lab2, 10, "holds 3 images but");
  GByteArray *lab_bad = idx_bytes (1, ldims, bad_labels, 3);
  check_idx ("label out of range", img, lab_bad, 10, "label 12 of item 1 is out of range 0..9");
  uint32_t zero_dims[3] = { 0, 2, 2 };
  GByteArray *img_zero = idx_bytes (3, zero_dims, NULL, 0);
  check_idx ("zero items", img_zero, lab, 10, "item count 0 out of range");
  GByteArray *header_only = g_byte_array_new ();
  g_byte_array_append (header_only, (const guint8 *) "\0\0\x08", 3);
  check_idx ("truncated header", header_only, lab, 10, "is truncated: the magic number needs 4 bytes");

  GByteArray *arrays[] = { img, lab, img_short, img_long, bad_magic, labels_as_images, lab2, lab_bad, img_zero,
    header_only };
  for (size_t i = 0; i < G_N_ELEMENTS (arrays); i++)
    g_byte_array_unref (arrays[i]);
  char *p1 = tmp_path ("images.idx"), *p2 = tmp_path ("labels.idx");
  g_unlink (p1);
  g_unlink (p2);
  g_free (p1);
  g_free (p2);
}

static char *
fm_file (const char *name)
{
  return g_build_filename (fm_dir, name, NULL);
}

/* Gzip files: truncated and corrupted copies of the real test labels. */
static void
test_gzip_files (void)
{
  GError *error = NULL;
  MoneImageSet set;
  char *contents = NULL;
  gsize len = 0;
  g_assert_true (g_file_get_contents (MONE_FASHION_MNIST_DIR "/t10k-labels-idx1-ubyte.gz", &contents, &len, &error));
  char *lp = fm_file ("t10k-labels-idx1-ubyte.gz");
  write_file (lp, contents, len / 2);
  gboolean ok = mone_fashion_mnist_load (fm_dir, FALSE, &set, &error);
  expect_error ("truncated gzip", ok, error, "is truncated");
  g_clear_error (&error);
  char *corrupt = g_memdup2 (contents, len);
  for (gsize i = len / 3; i < len / 3 + 64; i++)
    corrupt[i] ^= 0x5A;
  write_file (lp, corrupt, len);
  ok = mone_fashion_mnist_load (fm_dir, FALSE, &set, &error);
  expect_error ("corrupt gzip", ok, error, "is corrupt");
  g_clear_error (&error);
  write_file (lp, contents, len);
  g_free (corrupt);
  g_free (contents);
  g_free (lp);
}

/* A model whose class count disagrees with the data. */
static void
test_class_count_mismatch (void)
{
  GError *error = NULL;
  MoneImageSet test;
  g_assert_true (mone_fashion_mnist_load (fm_dir, FALSE, &test, &error));
  MoneTrainModel *model = mone_train_model_new (&five_classes, &error);
  g_assert_no_error (error);
  mone_train_model_init (model, 1);
  MoneEvalResult r;
  gboolean ok = mone_evaluate (model, &test, 100, MONE_PROTOCOL_FULL_FRAME, 1, 1.0, MONE_ROUTING_EPR, 0, 1, &r, &error);
  expect_error ("evaluate with 5 classes", ok, error, "does not exist in a model with 5 classes");
  g_clear_error (&error);
  MoneTrainOptions opts;
  mone_train_options_init (&opts);
  opts.config = model->config;
  opts.data_dir = fm_dir;
  ok = mone_train_run (&opts, &error);
  expect_error ("train with 5 classes", ok, error, "the model has 5 classes but Fashion-MNIST has 10");
  g_clear_error (&error);
  mone_train_model_free (model);
  mone_image_set_clear (&test);
}

/* `mone eval` and `mone train` refuse bad models, data and options, naming them. */
static void
test_tool_refusals (void)
{
  GError *error = NULL;
  char *model_path = tmp_path ("five.safetensors");
  const char *labels5[] = { "a", "b", "c", "d", "e" };
  MoneTrainModel *model = mone_train_model_new (&five_classes, &error);
  g_assert_no_error (error);
  mone_train_model_init (model, 1);
  g_assert_true (mone_train_model_write (model, model_path, labels5, &error));
  mone_train_model_free (model);
  const char *eval5[] = { "eval", model_path, "-n", "10", NULL };
  expect_tool_error ("mone eval, 5-class model", tool, eval5, "has 5 classes but Fashion-MNIST has 10");
  const char *eval_missing[] = { "eval", "/nonexistent/model.safetensors", NULL };
  expect_tool_error ("mone eval, missing model", tool, eval_missing, "/nonexistent/model.safetensors");
  const char *train_missing[] = { "train", "--data", "/nonexistent/fm", "-o", model_path, NULL };
  expect_tool_error ("mone train, missing data", tool, train_missing, "cannot open IDX file '/nonexistent/fm/");
  /* `mone train OPTION VALUE -o MODEL`: each refused before any data is read, naming the option. */
  static const struct {
    const char *what, *option, *value, *needle;
  } refused[] = {
    { "budget out of range", "--budget", "1.5", "--budget 1.5 out of range (0, 1]" },
    { "budget not a number", "--budget", "nan", "--budget 'nan' is not a decimal number" },
    { "budget below the smallest expert's", "--budget", "0.01",
        "--budget 0.01 is below the smallest budget of a 4-expert model (0.125)" },
    { "negative learning rate", "--lr", "-1", "--lr -1 out of range (0, 1]" },
    { "no epochs", "--epochs", "0", "--epochs 0 out of range [1, 1000000]" },
    { "label smoothing", "--label-smoothing", "2", "--label-smoothing 2 out of range [0, 1)" },
    { "two channels", "channels=2", NULL, "channels=2: the trainer and monefilter take 1" },
    { "std not a number", "std=x", NULL, "std=x: expected a number" },
    { "an option where key=value goes", "--size", "8", "Unknown option --size" },
    { "a word that is not key=value", "fashion28", NULL, "unexpected argument 'fashion28'" },
    { "the seed as a key", "seed=3", NULL, "seed=3: the training seed is --seed N" },
    { "--max-steps without a checkpoint", "--max-steps", "3", "--max-steps needs --checkpoint FILE" },
    { "capacity delta not positive", "delta=0", NULL, "mone.delta 0 out of range (0, 1000)" },
    { "no sampled budget left", "--max-sampled-budget", "0.1", "--max-sampled-budget 0.1 out of range [0.15, 1]" },
    { "min-budget pass without self-distillation", "--min-budget-pass", NULL,
        "--min-budget-pass is a third pass of --self-distill" },
  };
  for (size_t i = 0; i < G_N_ELEMENTS (refused); i++) {
    const char *args[] = { "train", refused[i].option, refused[i].value ? refused[i].value : "-o",
      refused[i].value ? "-o" : model_path, refused[i].value ? model_path : NULL, NULL };
    char *what = g_strdup_printf ("mone train, %s", refused[i].what);
    expect_tool_error (what, tool, args, refused[i].needle);
    g_free (what);
  }
  const char *train_output[] = { "train", "-o", "/nonexistent/dir/model.safetensors", NULL };
  expect_tool_error ("mone train, output folder missing (before training)", tool, train_output,
      "cannot write the model to '/nonexistent/dir/model.safetensors': No such file or directory");
  g_unlink (model_path);
  g_free (model_path);
}

/* Which file each split reads: 3 test images against 5,004 training images (the last 5,000 of
 * which are the validation split); the image count in the refusal names the file read. */
static void
test_tool_splits (void)
{
  MoneConfig c = five_classes;
  char *split_dir = tmp_path ("splits");
  g_mkdir (split_dir, 0700);
  write_blank_split (split_dir, "t10k", 3);
  write_blank_split (split_dir, "train", MONE_VALIDATION_SIZE + 4);
  MoneConfig c10 = c;
  c10.classes = MONE_FASHION_MNIST_CLASSES;
  char *model10_path = write_fashion_model (&c10, "ten.safetensors");
  const char *eval_test[] = { "eval", model10_path, "--data", split_dir, "-n", "4", "--no-random", NULL };
  expect_tool_error ("mone eval, test split reads t10k", tool, eval_test, "--count must be 1..3\n");
  const char *eval_val[] = { "eval", model10_path, "--data", split_dir, "--split", "val", "-n", "5001", "--no-random",
    NULL };
  expect_tool_error ("mone eval, val split reads the training file's last 5,000", tool, eval_val,
      "--count must be 1..5000\n");
  const char *eval_test_ok[] = { "eval", model10_path, "--data", split_dir, "-n", "3", "-b", "1", "--no-random", NULL };
  report_row (run_tool (tool, eval_test_ok, NULL) == 0, "mone eval on the 3 test images of the split folder");
  const char *eval_low[] = { "eval", model10_path, "--data", split_dir, "-n", "3", "-b", "0.01", NULL };
  expect_tool_error ("mone eval, budget below the model's smallest", tool, eval_low,
      "budget 0.01 is below this model's smallest budget 0.125");
  const char *eval_empty[] = { "eval", model10_path, "--data", split_dir, "-n", "3", "-b", "", NULL };
  expect_tool_error ("mone eval, no budgets", tool, eval_empty, "--budgets is empty");
  const char *eval_negative[] = { "eval", model10_path, "--data", split_dir, "-n", "-1", NULL };
  expect_tool_error ("mone eval, negative image count", tool, eval_negative, "--count must be 1..3\n");
  const char *eval_csv[] = { "eval", model10_path, "--data", split_dir, "--csv", "/nonexistent/dir/eval.csv", NULL };
  expect_tool_error ("mone eval, CSV folder missing (before evaluating)", tool, eval_csv,
      "cannot write the CSV to '/nonexistent/dir/eval.csv'");
  char *batch_out = tmp_path ("batch.safetensors");
  const char *train_batch[] = { "train", "--data", split_dir, "--batch", "8", "--config", "tiny", "-o", batch_out,
    NULL };
  expect_tool_error ("mone train, a batch larger than the data", tool, train_batch,
      "--batch 8 is larger than the 4 training images");
  g_free (batch_out);
  /* Finite weights that overflow the forward pass: no answer, an error, not a low accuracy. */
  {
    GError *error = NULL;
    MoneTrainModel *huge = mone_train_model_new (&c10, &error);
    g_assert_no_error (error);
    mone_train_model_init (huge, 1);
    for (size_t i = 0; i < (size_t) c10.dim * c10.channels * c10.patch * c10.patch; i++)
      huge->t.patch_embed_weight[i] = 3.4e38f;
    char *huge_path = tmp_path ("huge.safetensors");
    mone_train_model_write (huge, huge_path, mone_fashion_mnist_labels, &error);
    g_assert_no_error (error);
    mone_train_model_free (huge);
    const char *eval_huge[] = { "eval", huge_path, "--data", split_dir, "-n", "3", "-b", "1", "--no-random", NULL };
    expect_tool_error ("mone eval, weights that overflow", tool, eval_huge, "non-finite logits on 3 of 3 images");
    g_unlink (huge_path);
    g_free (huge_path);
  }
  /* The default budget list starts at the model's own minimum: 0.25 for three experts, 1 for one. */
  for (int experts = 3; experts >= 1; experts -= 2) {
    MoneConfig c_experts = c10;
    c_experts.experts = experts;
    char *experts_path = write_fashion_model (&c_experts, "experts.safetensors");
    const char *eval_default[] = { "eval", experts_path, "--data", split_dir, "-n", "3", "--no-random", NULL };
    char *err = NULL;
    report_row (run_tool (tool, eval_default, &err) == 0, "mone eval with the default budgets on a %d-expert model: %s",
        experts, err ? err : "");
    g_free (err);
    g_unlink (experts_path);
    g_free (experts_path);
  }
  /* Without -n each split is evaluated whole: 5,000 validation images, more than the test file has. */
  const char *eval_val_whole[] = { "eval", model10_path, "--data", split_dir, "--split", "val", "-b", "1",
    "--no-random", NULL };
  report_row (run_tool (tool, eval_val_whole, NULL) == 0, "mone eval --split val without -n");
  /* A checkpoint of a run in progress evaluates like a model file; a damaged one is refused by name. */
  {
    GError *error = NULL;
    MoneTrainOptions o;
    mone_train_options_init (&o);
    o.config = c10;
    o.data_dir = split_dir;
    o.train_images = 8;
    /* Two steps an epoch (the split has 4 training images): the one step run stops before the
     * epoch's validation pass over 1,000 images, which the checkpoint does not need. */
    o.batch = 2;
    o.threads = 1;
    o.max_steps = 1;
    char *ckpt = tmp_path ("run.ckpt");
    o.checkpoint = ckpt;
    g_assert_true (mone_train_run (&o, &error));
    g_assert_no_error (error);
    const char *eval_ckpt[] = { "eval", ckpt, "--data", split_dir, "-n", "3", "-b", "1", "--no-random", NULL };
    char *err = NULL;
    report_row (run_tool (tool, eval_ckpt, &err) == 0, "mone eval on a checkpoint: %s", err ? err : "");
    g_free (err);
    const char *eval_bad_ckpt[] = { "eval", ckpt, "--data", split_dir, "-n", "3", NULL };
    /* Another build's checkpoint: the magic, then a header size (little-endian uint32) this
     * build's header does not have. */
    gchar *bytes = NULL;
    gsize size = 0;
    g_assert_true (g_file_get_contents (ckpt, &bytes, &size, NULL));
    g_assert_cmpuint (size, >, 12);
    bytes[8] = (char) (bytes[8] + 24);
    write_file (ckpt, bytes, size);
    g_free (bytes);
    char *needle = g_strdup_printf ("'%s' was written by another version of mone train", ckpt);
    expect_tool_error ("mone eval, another version's checkpoint", tool, eval_bad_ckpt, needle);
    g_free (needle);
    write_file (ckpt, "MONECKP2", 8);
    needle = g_strdup_printf ("'%s' is shorter than a checkpoint's header", ckpt);
    expect_tool_error ("mone eval, a truncated checkpoint", tool, eval_bad_ckpt, needle);
    g_free (needle);
    g_unlink (ckpt);
    g_free (ckpt);
  }
  for (int i = 0; i < 4; i++) {
    char *path = split_file (split_dir, i < 2 ? "t10k" : "train", i % 2 ? "labels-idx1" : "images-idx3");
    g_unlink (path);
    g_free (path);
  }
  g_rmdir (split_dir);
  g_unlink (model10_path);
  g_free (model10_path), g_free (split_dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  GError *error = NULL;
  tmpdir = g_dir_make_tmp ("mone-bad-input-XXXXXX", &error);
  g_assert_no_error (error);
  tool = argc > 1 ? argv[1] : NULL;
  fm_dir = tmp_path ("fm");
  g_mkdir (fm_dir, 0700);
  const char *const split_files[] = { "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz" };
  for (size_t i = 0; i < G_N_ELEMENTS (split_files); i++) {
    char *source = g_build_filename (MONE_FASHION_MNIST_DIR, split_files[i], NULL), *copy = fm_file (split_files[i]);
    char *contents = NULL;
    gsize len = 0;
    g_file_get_contents (source, &contents, &len, &error);
    g_assert_no_error (error);
    write_file (copy, contents, len);
    g_free (contents);
    g_free (source);
    g_free (copy);
  }
  MoneConfig *c = &five_classes;
  c->height = c->width = 28, c->channels = 1, c->frames = c->tubelet = 1, c->patch = 7, c->dim = 16, c->depth = 1;
  c->heads = 2, c->mlp_dim = 32, c->experts = 4, c->classes = 5, c->delta = 2, c->beta = 10, c->ln_eps = 1e-6f;
  c->mean[0] = 0.5f, c->std[0] = 0.5f;

  g_test_add_func ("/train/bad-input/missing-folder", test_missing_folder);
  g_test_add_func ("/train/bad-input/idx-files", test_idx_files);
  g_test_add_func ("/train/bad-input/gzip-files", test_gzip_files);
  g_test_add_func ("/train/bad-input/class-count-mismatch", test_class_count_mismatch);
  if (tool) {
    g_test_add_func ("/train/bad-input/tool-refusals", test_tool_refusals);
    g_test_add_func ("/train/bad-input/tool-splits", test_tool_splits);
  }
  int status = g_test_run ();
  for (size_t i = 0; i < G_N_ELEMENTS (split_files); i++) {
    char *copy = fm_file (split_files[i]);
    g_unlink (copy);
    g_free (copy);
  }
  g_rmdir (fm_dir);
  g_rmdir (tmpdir);
  g_free (fm_dir);
  g_free (tmpdir);
  return status;
}
