/* Image folders (mone_image_folder_load, `mone train --images`, `mone eval --images`), on folders
 * written with cairo while the test runs:
 *  - layout: classes in byte order, the split (every 10th image of each class), round-robin order,
 *    hidden entries and files that are not pictures skipped and counted, 256 classes accepted;
 *  - pixels: RGB kept, alpha composited over black, grey PNGs, BT.601 luma for 1 channel, a stretch
 *    that keeps halves apart, an area-correct shrink (a 1-pixel checkerboard averages to grey);
 *  - bad input, one row each, refused with a message naming the file or folder by the library and
 *    by `mone train --images` (argv[1] is the `mone` tool): missing folder, a file, no class
 *    folders, one class, an empty class folder, one without pictures, corrupt / truncated / empty
 *    PNGs, a JPEG that is not one, 257 classes, a class name that is not UTF-8; JPEG and PNG mixed
 *    in one folder load alike; and `mone train` / `mone eval` options that
 *    do not go with an image folder, a model whose labels are not the folder's classes.
 * Tagged memcheck: the library's failure paths run in this process. */
#include "image-folder-fixtures.h"
#include "train-test-helpers.h"
#include "trainer.h"

#include <cairo.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <gst/gst.h>
#include <stdlib.h>
#include <string.h>

static char *tmpdir;

static char *
tmp_path (const char *name)
{
  return g_build_filename (tmpdir, name, NULL);
}

static void
write_bytes (const char *path, const void *data, gsize n)
{
  g_assert (g_file_set_contents (path, data, (gssize) n, NULL));
}

/* dir/name with a 2x2 PNG in it (a minimal valid class folder). */
static void
add_class (const char *dir, const char *name)
{
  char *class_dir = g_build_filename (dir, name, NULL);
  fixture_mkdir (class_dir);
  char *png = g_build_filename (class_dir, "x.png", NULL);
  fixture_write_flat_png (png, 2, 2, 0xFF808080u, FALSE);
  g_free (png);
  g_free (class_dir);
}

/* A w x h PNG whose pixel (x, y) is white when pattern says so. */
static void
write_pattern_png (const char *path, int w, int h, gboolean (*white) (int x, int y))
{
  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_RGB24, w, h);
  unsigned char *data = cairo_image_surface_get_data (surface);
  const int stride = cairo_image_surface_get_stride (surface);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      *(guint32 *) (data + (size_t) y * stride + (size_t) x * 4) = white (x, y) ? 0xFFFFFFu : 0;
  cairo_surface_mark_dirty (surface);
  g_assert_cmpint (cairo_surface_write_to_png (surface, path), ==, CAIRO_STATUS_SUCCESS);
  cairo_surface_destroy (surface);
}

static gboolean
checkerboard (int x, int y)
{
  return (x + y) % 2 == 0;
}

static gboolean
left_half (int x, int y)
{
  return x < 8;
}

/* ---------------------------------------------------------------------------------------------- */

static void
check_layout (void)
{
  char *dir = tmp_path ("shapes");
  fixture_write_shapes (dir, 21); /* per class: 19 training, 2 validation (the 10th and 20th) */
  MoneImageFolder f;
  GError *error = NULL;
  gboolean ok = mone_image_folder_load (dir, 8, 8, 3, &f, &error);
  check (ok, "shapes folder loads", error ? error->message : NULL);
  if (!ok) {
    g_clear_error (&error);
    g_free (dir);
    return;
  }
  char *description = mone_image_folder_describe (&f, dir);
  printf ("     %s\n", description);
  g_free (description);
  gboolean names_ok = f.classes == 3 && g_strv_length (f.class_names) == 3;
  for (int k = 0; names_ok && k < 3; k++)
    names_ok = !strcmp (f.class_names[k], fixture_shape_classes[k]);
  check (names_ok, "class names in byte order (Square, circle, triangle)", NULL);
  check (f.n_train == 57 && f.n_val == 6 && f.images.count == 63, "every 10th image of each class held out", NULL);
  check (f.skipped_hidden == 1 && f.skipped_other == 3, "1 hidden and 3 other entries skipped", NULL);
  gboolean round_robin = TRUE;
  for (int i = 0; i < f.images.count; i++)
    round_robin &= f.images.labels[i] == (i < f.n_train ? i : i - f.n_train) % 3;
  check (round_robin, "each split round-robin over the classes", NULL);
  check (f.images.channels == 3 && f.images.rows == 8 && f.images.cols == 8, "read at 8x8x3", NULL);
  MoneImageSet val = mone_image_folder_val_set (&f);
  check (val.count == 6 && val.labels[0] == 0 && val.labels[5] == 2, "validation view", NULL);
  mone_image_folder_clear (&f);
  g_free (dir);
}

/* Pixel value of plane ch at (x, y) of image i. */
static int
pixel (const MoneImageSet *s, int i, int ch, int x, int y)
{
  return s->pixels[(((size_t) i * s->channels + ch) * s->rows + y) * s->cols + x];
}

static void
check_pixels (void)
{
  /* Class "a": rgb, rgba (50% red: composited over black); class "b": grey, checkerboard, halves.
   * File names fix the order within each class. */
  char *dir = tmp_path ("pixels");
  char *a = g_build_filename (dir, "a", NULL), *b = g_build_filename (dir, "b", NULL);
  fixture_mkdir (a);
  fixture_mkdir (b);
  char *p = g_build_filename (a, "1-rgb.png", NULL);
  fixture_write_flat_png (p, 7, 5, 0xFFC86432u, FALSE); /* (200, 100, 50) */
  g_free (p);
  p = g_build_filename (a, "2-rgba.png", NULL);
  fixture_write_flat_png (p, 3, 9, 0x80FF0000u, FALSE);
  g_free (p);
  p = g_build_filename (b, "1-grey.png", NULL);
  fixture_write_flat_png (p, 5, 5, 0xFF4D0000u, TRUE); /* grey 77 */
  g_free (p);
  p = g_build_filename (b, "2-checker.png", NULL);
  write_pattern_png (p, 16, 16, checkerboard);
  g_free (p);
  p = g_build_filename (b, "3-halves.png", NULL);
  write_pattern_png (p, 16, 3, left_half);
  g_free (p);
  p = g_build_filename (b, "4-rgba16.png", NULL);
  fixture_write_flat_png16 (p, 3, 3, 0x80FF0000u);
  g_free (p);

  MoneImageFolder f;
  GError *error = NULL;
  gboolean ok = mone_image_folder_load (dir, 4, 4, 3, &f, &error);
  check (ok, "pixel folder loads with 3 channels", error ? error->message : NULL);
  if (ok) {
    /* Round-robin: a/1-rgb, b/1-grey, a/2-rgba, b/2-checker, b/3-halves, b/4-rgba16. */
    const MoneImageSet *s = &f.images;
    char detail[160];
    g_snprintf (detail, sizeof detail, "(%d, %d, %d) at both corners", pixel (s, 0, 0, 0, 0), pixel (s, 0, 1, 3, 3),
        pixel (s, 0, 2, 3, 0));
    check (pixel (s, 0, 0, 0, 0) == 200 && pixel (s, 0, 1, 3, 3) == 100 && pixel (s, 0, 2, 3, 0) == 50,
        "RGB kept, 7x5 stretched to 4x4", detail);
    g_snprintf (detail, sizeof detail, "(%d, %d, %d)", pixel (s, 2, 0, 1, 1), pixel (s, 2, 1, 1, 1),
        pixel (s, 2, 2, 1, 1));
    check (pixel (s, 2, 0, 1, 1) == 128 && pixel (s, 2, 1, 1, 1) == 0 && pixel (s, 2, 2, 1, 1) == 0,
        "50% red composited over black = (128, 0, 0)", detail);
    check (pixel (s, 1, 0, 2, 2) == 77 && pixel (s, 1, 2, 2, 2) == 77, "grey PNG on every channel", NULL);
    int lo = 255, hi = 0;
    for (int y = 0; y < 4; y++)
      for (int x = 0; x < 4; x++)
        lo = MIN (lo, pixel (s, 3, 0, x, y)), hi = MAX (hi, pixel (s, 3, 0, x, y));
    g_snprintf (detail, sizeof detail, "values %d..%d", lo, hi);
    check (lo >= 126 && hi <= 129, "1-pixel checkerboard 16x16 -> 4x4 averages to grey (area-correct)", detail);
    g_snprintf (detail, sizeof detail, "row 0: %d %d %d %d", pixel (s, 4, 0, 0, 0), pixel (s, 4, 0, 1, 0),
        pixel (s, 4, 0, 2, 0), pixel (s, 4, 0, 3, 0));
    check (pixel (s, 4, 0, 1, 0) == 255 && pixel (s, 4, 0, 2, 0) == 0 && pixel (s, 4, 0, 1, 3) == 255,
        "white left half stays the left two columns", detail);
    const guint8 alpha16 = s->alpha[(size_t) 5 * s->rows * s->cols + s->cols + 1];
    g_snprintf (detail, sizeof detail, "(%d, %d, %d), alpha %d", pixel (s, 5, 0, 1, 1), pixel (s, 5, 1, 1, 1),
        pixel (s, 5, 2, 1, 1), alpha16);
    check (s->count == 6 && pixel (s, 5, 0, 1, 1) == 128 && pixel (s, 5, 1, 1, 1) == 0 && alpha16 == 128,
        "a 16-bit RGBA PNG keeps its alpha: 50% red = (128, 0, 0), alpha 128", detail);
    mone_image_folder_clear (&f);
  }
  g_clear_error (&error);
  ok = mone_image_folder_load (dir, 4, 4, 1, &f, &error);
  check (ok, "pixel folder loads with 1 channel", error ? error->message : NULL);
  if (ok) {
    /* 0.299 * 200 + 0.587 * 100 + 0.114 * 50 = 124.2 */
    char detail[64];
    g_snprintf (detail, sizeof detail, "%d", pixel (&f.images, 0, 0, 2, 2));
    check (pixel (&f.images, 0, 0, 2, 2) == 124 && f.images.channels == 1, "BT.601 luma of (200, 100, 50) = 124",
        detail);
    mone_image_folder_clear (&f);
  }
  g_clear_error (&error);
  g_free (a);
  g_free (b);
  g_free (dir);
}

/* Re-encodes a PNG as a JPEG with GStreamer's own encoder (quality 100). */
static void
png_to_jpeg (const char *png, const char *jpeg)
{
  GError *error = NULL;
  g_assert_true (gst_init_check (NULL, NULL, &error));
  GstElement *pipeline = gst_parse_launch ("filesrc name=in ! pngdec ! videoconvert ! jpegenc quality=100 ! "
                                           "filesink name=out",
      &error);
  g_assert_no_error (error);
  GstElement *in = gst_bin_get_by_name (GST_BIN (pipeline), "in"),
             *out = gst_bin_get_by_name (GST_BIN (pipeline), "out");
  g_object_set (in, "location", png, NULL);
  g_object_set (out, "location", jpeg, NULL);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *done = gst_bus_timed_pop_filtered (bus, 30 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  g_assert_nonnull (done);
  g_assert_cmpint (GST_MESSAGE_TYPE (done), ==, GST_MESSAGE_EOS);
  gst_message_unref (done);
  gst_object_unref (bus);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (in);
  gst_object_unref (out);
  gst_object_unref (pipeline);
}

/* JPEG and PNG in one folder: a flat colour reads the same from both (JPEG within 3 levels). */
static void
check_mixed_formats (void)
{
  char *dir = tmp_path ("mixed"), *a = g_build_filename (dir, "a", NULL), *b = g_build_filename (dir, "b", NULL);
  fixture_mkdir (dir);
  fixture_mkdir (a);
  fixture_mkdir (b);
  char *png = g_build_filename (a, "flat.png", NULL), *jpeg = g_build_filename (b, "flat.JPG", NULL);
  fixture_write_flat_png (png, 24, 16, 0xFF4080C0u, FALSE);
  png_to_jpeg (png, jpeg);
  MoneImageFolder f;
  GError *error = NULL;
  gboolean ok = mone_image_folder_load (dir, 4, 4, 3, &f, &error);
  check (ok, "a folder of one PNG and one JPEG loads", error ? error->message : NULL);
  g_clear_error (&error);
  if (ok) {
    int worst = 0;
    const size_t frame = 3 * 4 * 4;
    /* Round-robin order: the PNG of class a, then the JPEG of class b. */
    for (size_t i = 0; i < frame; i++)
      worst = MAX (worst, abs ((int) f.images.pixels[i] - (int) f.images.pixels[frame + i]));
    char *detail = g_strdup_printf ("largest difference %d levels", worst);
    check (worst <= 3 && f.images.pixels[0] == 0x40 && f.images.pixels[16] == 0x80,
        "the JPEG's pixels match the PNG's (R 0x40, G 0x80, B 0xC0)", detail);
    g_free (detail);
    mone_image_folder_clear (&f);
  }
  g_free (png);
  g_free (jpeg);
  g_free (a);
  g_free (b);
  g_free (dir);
}

static void
check_max_classes (void)
{
  char *dir = tmp_path ("many");
  for (int k = 0; k < MONE_IMAGE_FOLDER_MAX_CLASSES; k++) {
    char name[16];
    g_snprintf (name, sizeof name, "c%03d", k);
    add_class (dir, name);
  }
  MoneImageFolder f;
  GError *error = NULL;
  gboolean ok = mone_image_folder_load (dir, 2, 2, 1, &f, &error);
  check (ok && f.classes == 256 && !strcmp (f.class_names[255], "c255") && f.n_val == 0,
      "256 classes load (labels are bytes)", error ? error->message : NULL);
  if (ok)
    mone_image_folder_clear (&f);
  g_clear_error (&error);
  g_free (dir);
}

/* ---------------------------------------------------------------------------------------------- */
/* Bad folders: each built by its setup under tmpdir/<name>, refused with a message containing
 * needle (where "@" stands for the folder's path). */

static void
setup_file (const char *dir)
{
  write_bytes (dir, "not a folder", 12);
}

static void
setup_no_classes (const char *dir)
{
  fixture_mkdir (dir);
  char *p = g_build_filename (dir, "README", NULL);
  write_bytes (p, "x", 1);
  g_free (p);
  p = g_build_filename (dir, ".git", NULL);
  fixture_mkdir (p);
  g_free (p);
}

static void
setup_one_class (const char *dir)
{
  add_class (dir, "only");
}

static void
setup_empty_class (const char *dir)
{
  add_class (dir, "a");
  char *p = g_build_filename (dir, "b", NULL);
  fixture_mkdir (p);
  g_free (p);
}

static void
setup_no_picture_class (const char *dir)
{
  add_class (dir, "a");
  char *b = g_build_filename (dir, "b", NULL);
  fixture_mkdir (b);
  const char *names[] = { "photo.jpg.txt", ".hidden.png", "notes.txt" };
  for (size_t i = 0; i < G_N_ELEMENTS (names); i++) {
    char *p = g_build_filename (b, names[i], NULL);
    write_bytes (p, "x", 1);
    g_free (p);
  }
  char *p = g_build_filename (b, "folder.png", NULL);
  fixture_mkdir (p);
  g_free (p);
  g_free (b);
}

/* Class "a" valid, class "b" holding a file named like a JPEG that holds text. */
static void
setup_not_jpeg_data (const char *dir)
{
  add_class (dir, "a");
  char *b = g_build_filename (dir, "b", NULL);
  fixture_mkdir (b);
  char *p = g_build_filename (b, "x.jpg", NULL);
  write_bytes (p, "not a picture\n", 14);
  g_free (p);
  g_free (b);
}

/* Class "a" valid, class "b" holding one PNG of the given bytes (NULL: a damaged valid PNG). */
static void
setup_bad_png (const char *dir, const char *bytes, gssize n, gboolean damage)
{
  add_class (dir, "a");
  add_class (dir, "b");
  char *p = g_build_filename (dir, "b", "x.png", NULL);
  if (damage) {
    char *data = NULL;
    gsize len = 0;
    g_assert (g_file_get_contents (p, &data, &len, NULL));
    if (n < 0) {
      /* A byte of the compressed pixels: a critical chunk's CRC fails (an ancillary one would only warn). */
      char *idat = memmem (data, len, "IDAT", 4);
      g_assert (idat != NULL && idat + 6 < data + len);
      idat[6] ^= 0x5A;
    }
    write_bytes (p, data, n < 0 ? len : (gsize) n);
    g_free (data);
  } else {
    write_bytes (p, bytes, (gsize) n);
  }
  g_free (p);
}

static void
setup_not_png_data (const char *dir)
{
  setup_bad_png (dir, "GIF89a, not a PNG at all", 24, FALSE);
}

static void
setup_truncated_png (const char *dir)
{
  setup_bad_png (dir, NULL, 40, TRUE);
}

static void
setup_corrupt_png (const char *dir)
{
  setup_bad_png (dir, NULL, -1, TRUE);
}

static void
setup_empty_png (const char *dir)
{
  setup_bad_png (dir, "", 0, FALSE);
}

static void
setup_too_many_classes (const char *dir)
{
  for (int k = 0; k <= MONE_IMAGE_FOLDER_MAX_CLASSES; k++) {
    char name[16];
    g_snprintf (name, sizeof name, "c%03d", k);
    char *p = g_build_filename (dir, name, NULL);
    fixture_mkdir (p);
    g_free (p);
  }
}

static void
setup_latin1_name (const char *dir)
{
  add_class (dir, "a");
  add_class (dir, "caf\xe9");
}

static const struct {
  const char *name;
  void (*setup) (const char *dir); /* NULL: leave the path absent */
  const char *needle;
} bad_folders[] = {
  { "missing", NULL, "image folder '@' does not exist" },
  { "a-file", setup_file, "image folder '@' is not a folder" },
  { "no-classes", setup_no_classes,
      "image folder '@' has no class folders: expected @/<class name>/<picture>.png (or .jpg, ...)" },
  { "one-class", setup_one_class, "image folder '@' has one class folder ('only'); a classifier needs at least 2" },
  { "empty-class", setup_empty_class, "class folder '@/b' holds no pictures (*.png, *.jpg" },
  { "no-picture-class", setup_no_picture_class, "class folder '@/b' holds no pictures (*.png, *.jpg" },
  { "not-jpeg-data", setup_not_jpeg_data, "cannot decode picture '@/b/x.jpg'" },
  { "not-png-data", setup_not_png_data, "cannot read PNG '@/b/x.png': corrupt or not PNG data" },
  { "truncated-png", setup_truncated_png, "cannot read PNG '@/b/x.png': truncated or unreadable" },
  { "corrupt-png", setup_corrupt_png, "cannot read PNG '@/b/x.png': corrupt or not PNG data" },
  { "empty-png", setup_empty_png, "cannot read PNG '@/b/x.png': truncated or unreadable" },
  { "257-classes", setup_too_many_classes, "image folder '@' has 257 class folders, more than the 256 supported" },
  { "latin1-name", setup_latin1_name, "class folder '@/caf\xef\xbf\xbd': its name is not UTF-8" },
};

/* needle with "@" replaced by dir. */
static char *
expand (const char *needle, const char *dir)
{
  char **parts = g_strsplit (needle, "@", -1);
  char *out = g_strjoinv (dir, parts);
  g_strfreev (parts);
  return out;
}

static void
check_bad_folders (const char *tool)
{
  char *model_path = tmp_path ("bad.safetensors");
  for (size_t i = 0; i < G_N_ELEMENTS (bad_folders); i++) {
    char *dir = tmp_path (bad_folders[i].name);
    if (bad_folders[i].setup)
      bad_folders[i].setup (dir);
    char *needle = expand (bad_folders[i].needle, dir);
    MoneImageFolder f;
    GError *error = NULL;
    /* Under valgrind the GStreamer-decoded row is checked through the tool only (a child process
     * valgrind does not trace). */
    const gboolean in_process = !(under_valgrind () && g_str_has_suffix (bad_folders[i].name, "jpeg-data"));
    gboolean ok = in_process ? mone_image_folder_load (dir, 8, 8, 3, &f, &error) : FALSE;
    if (!in_process)
      g_set_error (&error, MONE_ERROR, MONE_ERROR_FORMAT, "%s (checked through the tool)", needle);
    gboolean refused = !ok && error && strstr (error->message, needle);
    char *what = g_strdup_printf ("%s refused", bad_folders[i].name);
    check (refused, what, error ? error->message : "accepted");
    if (!refused)
      printf ("     expected '%s'\n", needle);
    if (ok)
      mone_image_folder_clear (&f);
    g_clear_error (&error);
    g_free (what);
    if (tool) {
      const char *args[] = { "train", "--images", dir, "-o", model_path, "height=8", "width=8", NULL };
      what = g_strdup_printf ("mone train --images %s", bad_folders[i].name);
      expect_tool_error (what, tool, args, needle);
      g_free (what);
    }
    g_free (needle);
    g_free (dir);
  }
  g_free (model_path);
}

/* A random 3-class model labelled like the shapes folder (16x16x3): enough for eval's checks. */
static char *
write_shapes_model (const char *name, const char *const *labels)
{
  MoneConfig c = { 0 };
  c.height = c.width = 16, c.channels = 3, c.frames = c.tubelet = 1, c.patch = 4, c.dim = 16, c.depth = 1;
  c.heads = 2, c.mlp_dim = 32, c.experts = 4, c.classes = 3, c.delta = 2, c.beta = 10, c.ln_eps = 1e-6f;
  for (int ch = 0; ch < 3; ch++)
    c.mean[ch] = 0.5f, c.std[ch] = 0.5f;
  GError *error = NULL;
  g_assert (mone_config_finalize (&c, &error));
  MoneTrainModel *model = mone_train_model_new (&c, &error);
  g_assert_no_error (error);
  mone_train_model_init (model, 1);
  char *path = tmp_path (name);
  g_assert (mone_train_model_write (model, path, labels, &error));
  mone_train_model_free (model);
  return path;
}

static void
check_tool_options (const char *tool)
{
  char *shapes = tmp_path ("shapes"); /* written by check_layout */
  char *pixels = tmp_path ("pixels");
  char *out = tmp_path ("out.safetensors");
  const char *both[] = { "train", "--images", shapes, "--data", pixels, "-o", out, NULL };
  expect_tool_error ("mone train --images with --data", tool, both, "give one of the two");
  const char *in_frame[] = { "train", "--images", shapes, "--in-frame-fraction", "0.3", "-o", out, NULL };
  expect_tool_error ("mone train --images with in-frame samples", tool, in_frame,
      "--in-frame-fraction 0.3: an image folder has no in-frame samples");

  char *model = write_shapes_model ("shapes.safetensors", fixture_shape_classes);
  const char *other_labels[] = { "Square", "circle", "star" };
  char *other = write_shapes_model ("other.safetensors", other_labels);
  const char *split_test[] = { "eval", model, "--images", shapes, "--split", "test", NULL };
  expect_tool_error ("mone eval --images --split test", tool, split_test,
      "--split must be 'all', 'train' or 'val' for an image folder, not 'test'");
  const char *maps[] = { "eval", model, "--images", shapes, "--maps", out, NULL };
  expect_tool_error ("mone eval --images --maps", tool, maps, "--maps draws Fashion-MNIST's protocols only");
  const char *old_count[] = { "eval", model, "--images", "500", NULL };
  expect_tool_error ("mone eval --images N (the old count option)", tool, old_count,
      "--images names an image folder; the number of images to evaluate is -n/--count");
  const char *classes[] = { "eval", model, "--images", pixels, NULL };
  char *needle = g_strdup_printf ("model '%s' has 3 classes but image folder '%s' has 2", model, pixels);
  expect_tool_error ("mone eval, 3-class model on a 2-class folder", tool, classes, needle);
  g_free (needle);
  const char *labels[] = { "eval", other, "--images", shapes, NULL };
  needle = g_strdup_printf ("model '%s' has label 'star' for class 2 but image folder '%s' has class folder "
                            "'triangle' there",
      other, shapes);
  expect_tool_error ("mone eval, labels not the folder's classes", tool, labels, needle);
  g_free (needle);
  const char *count[] = { "eval", model, "--images", shapes, "--split", "val", "-n", "7", NULL };
  expect_tool_error ("mone eval --images, count beyond the split", tool, count, "--count must be 1..6");
  /* A full run, with the dense twin (the model itself) so its figures go through CSV and plot. */
  char *csv = tmp_path ("eval.csv"), *plot = tmp_path ("eval.png");
  char *gnuplot = g_find_program_in_path ("gnuplot");
  const gboolean with_plot = gnuplot != NULL;
  g_free (gnuplot);
  const char *ok_run[] = { "eval", model, "--images", shapes, "--split", "val", "-b", "min,1", "--dense", model,
    "--csv", csv, with_plot ? "--plot" : NULL, plot, NULL };
  char *err = NULL, *table = NULL;
  int status = run_tool (tool, ok_run, &err);
  check (status == 0, "mone eval --images --split val --dense --csv runs", err && *err ? err : NULL);
  g_assert (status != 0 || g_file_get_contents (csv, &table, NULL, NULL));
  char **lines = table ? g_strsplit (table, "\n", -1) : NULL; /* header, 2 rows, "" after the last newline */
  check (lines && g_strv_length (lines) == 4 && !strstr (table, "in-frame")
          && g_str_has_prefix (lines[2], "full-frame,1.000,"),
      "its CSV: two full-frame rows", NULL);
  g_strfreev (lines);
  if (with_plot)
    check (g_file_test (plot, G_FILE_TEST_EXISTS), "its plot (full-frame series only)", NULL);
  g_free (table);
  g_free (err);
  g_free (csv);
  g_free (plot);
  g_unlink (model);
  g_unlink (other);
  g_free (model);
  g_free (other);
  g_free (shapes);
  g_free (pixels);
  g_free (out);
}

static const char *tool;

static void
test_bad_folders (void)
{
  check_bad_folders (tool);
}

static void
test_tool_options (void)
{
  check_tool_options (tool);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  GError *error = NULL;
  tmpdir = g_dir_make_tmp ("mone-image-folder-XXXXXX", &error);
  g_assert_no_error (error);
  tool = argc > 1 ? argv[1] : NULL;
  g_test_add_func ("/train/image-folder/layout", check_layout);
  g_test_add_func ("/train/image-folder/pixels", check_pixels);
  g_test_add_func ("/train/image-folder/max-classes", check_max_classes);
  if (!under_valgrind ())
    g_test_add_func ("/train/image-folder/mixed-formats", check_mixed_formats);
  g_test_add_func ("/train/image-folder/bad-folders", test_bad_folders);
  if (tool)
    g_test_add_func ("/train/image-folder/tool-options", test_tool_options);
  int status = g_test_run ();
  fixture_remove_tree (tmpdir);
  g_free (tmpdir);
  return status;
}
