/* Image-folder fixtures drawn with cairo (see image-folder-fixtures.h). */
#include "image-folder-fixtures.h"

#include <zlib.h>

#include <cairo.h>
#include <glib/gstdio.h>
#include <math.h>

const char *const fixture_shape_classes[3] = { "Square", "circle", "triangle" };

void
fixture_mkdir (const char *path)
{
  g_assert_cmpint (g_mkdir_with_parents (path, 0700), ==, 0);
}

static void
write_surface (cairo_surface_t *surface, const char *path)
{
  g_assert_cmpint (cairo_surface_write_to_png (surface, path), ==, CAIRO_STATUS_SUCCESS);
  cairo_surface_destroy (surface);
}

static void
write_text (const char *path, const char *text)
{
  g_assert (g_file_set_contents (path, text, -1, NULL));
}

/* One picture of class k (0 square, 1 disc, 2 triangle); rng decides everything else. */
static void
write_shape (const char *path, int k, int index, GRand *rng)
{
  const int w = g_rand_int_range (rng, 12, 41), h = g_rand_int_range (rng, 12, 41);
  const gboolean grey = index % 7 == 3, transparent = !grey && index % 3 == 2;
  cairo_surface_t *surface = cairo_image_surface_create (grey ? CAIRO_FORMAT_A8
          : transparent                                       ? CAIRO_FORMAT_ARGB32
                                                              : CAIRO_FORMAT_RGB24,
      w, h);
  cairo_t *cr = cairo_create (surface);
  /* An A8 surface is written as a grey PNG of its alpha values: draw with alpha as the grey level. */
  if (!transparent) {
    double level = g_rand_double_range (rng, 0.0, 0.3);
    if (grey)
      cairo_set_source_rgba (cr, 0, 0, 0, level);
    else
      cairo_set_source_rgb (cr, level * g_rand_double (rng), level * g_rand_double (rng), level * g_rand_double (rng));
    cairo_paint (cr);
  }
  /* The shape: in picture units scaled to w x h, so a stretched square stays a square after the
   * loader stretches it back to a square input. */
  cairo_scale (cr, w, h);
  const double size = g_rand_double_range (rng, 0.45, 0.75);
  const double cx = g_rand_double_range (rng, size / 2, 1 - size / 2);
  const double cy = g_rand_double_range (rng, size / 2, 1 - size / 2);
  /* Square green, disc red, triangle blue: the dominant channel bright, the others jittered. */
  static const int dominant[3] = { 1, 0, 2 };
  const double bright = g_rand_double_range (rng, 0.7, 1.0);
  double rgb[3];
  for (int c = 0; c < 3; c++)
    rgb[c] = c == dominant[k] ? bright : g_rand_double_range (rng, 0.05, 0.35);
  if (grey)
    cairo_set_source_rgba (cr, 0, 0, 0, 0.5 + 0.5 * bright);
  else
    cairo_set_source_rgb (cr, rgb[0], rgb[1], rgb[2]);
  if (k == 0) {
    cairo_rectangle (cr, cx - size / 2, cy - size / 2, size, size);
  } else if (k == 1) {
    cairo_arc (cr, cx, cy, size / 2, 0, 2 * G_PI);
  } else {
    cairo_move_to (cr, cx, cy - size / 2);
    cairo_line_to (cr, cx + size / 2, cy + size / 2);
    cairo_line_to (cr, cx - size / 2, cy + size / 2);
    cairo_close_path (cr);
  }
  cairo_fill (cr);
  cairo_destroy (cr);
  write_surface (surface, path);
}

void
fixture_write_shapes (const char *dir, int per_class)
{
  for (int k = 0; k < 3; k++) {
    char *class_dir = g_build_filename (dir, fixture_shape_classes[k], NULL);
    fixture_mkdir (class_dir);
    GRand *rng = g_rand_new_with_seed (1000u + (guint32) k);
    for (int i = 0; i < per_class; i++) {
      char name[32];
      g_snprintf (name, sizeof name, "img%03d.png", i);
      char *path = g_build_filename (class_dir, name, NULL);
      write_shape (path, k, i, rng);
      g_free (path);
    }
    g_rand_free (rng);
    if (k == 0) {
      char *path = g_build_filename (class_dir, ".DS_Store", NULL);
      write_text (path, "hidden");
      g_free (path);
      path = g_build_filename (class_dir, "notes.txt", NULL);
      write_text (path, "not a picture");
      g_free (path);
      path = g_build_filename (class_dir, "more", NULL);
      fixture_mkdir (path);
      g_free (path);
    }
    g_free (class_dir);
  }
  char *path = g_build_filename (dir, "README", NULL);
  write_text (path, "class folders are beside me");
  g_free (path);
}

void
fixture_write_flat_png (const char *path, int w, int h, guint32 argb, gboolean grey)
{
  const double a = (argb >> 24) / 255.0, r = ((argb >> 16) & 0xff) / 255.0, g = ((argb >> 8) & 0xff) / 255.0,
               b = (argb & 0xff) / 255.0;
  cairo_surface_t *surface = cairo_image_surface_create (grey ? CAIRO_FORMAT_A8
          : a < 1                                             ? CAIRO_FORMAT_ARGB32
                                                              : CAIRO_FORMAT_RGB24,
      w, h);
  cairo_t *cr = cairo_create (surface);
  cairo_set_operator (cr, CAIRO_OPERATOR_SOURCE);
  if (grey)
    cairo_set_source_rgba (cr, 0, 0, 0, r);
  else
    cairo_set_source_rgba (cr, r, g, b, a);
  cairo_paint (cr);
  cairo_destroy (cr);
  write_surface (surface, path);
}

/* One PNG chunk: length, type, data, CRC of type and data. */
static void
png_chunk (GByteArray *out, const char type[4], const guint8 *data, guint32 length)
{
  const guint8 be_length[4] = { length >> 24, length >> 16, length >> 8, length };
  g_byte_array_append (out, be_length, 4);
  g_byte_array_append (out, (const guint8 *) type, 4);
  g_byte_array_append (out, data, length);
  uLong crc = crc32 (crc32 (0L, (const Bytef *) type, 4), data, length);
  const guint8 be_crc[4] = { crc >> 24, crc >> 16, crc >> 8, crc };
  g_byte_array_append (out, be_crc, 4);
}

void
fixture_write_flat_png16 (const char *path, int w, int h, guint32 argb)
{
  static const guint8 signature[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
  const guint8 header[13] = { w >> 24, w >> 16, w >> 8, w, h >> 24, h >> 16, h >> 8, h, 16, 6, 0, 0, 0 };
  const guint8 rgba[4] = { argb >> 16, argb >> 8, argb, argb >> 24 };
  const size_t row_bytes = 1 + (size_t) w * 8; /* filter byte, then 4 channels of 2 bytes */
  guint8 *rows = g_malloc0 (row_bytes * h);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < 4; c++)
        rows[y * row_bytes + 1 + x * 8 + 2 * c] = rows[y * row_bytes + 2 + x * 8 + 2 * c] = rgba[c];
  uLongf packed_size = compressBound (row_bytes * h);
  guint8 *packed = g_malloc (packed_size);
  g_assert_cmpint (compress (packed, &packed_size, rows, row_bytes * h), ==, Z_OK);
  GByteArray *png = g_byte_array_new ();
  g_byte_array_append (png, signature, 8);
  png_chunk (png, "IHDR", header, sizeof header);
  png_chunk (png, "IDAT", packed, (guint32) packed_size);
  png_chunk (png, "IEND", (const guint8 *) "", 0); /* not NULL: zlib's crc32 of NULL restarts at 0 */
  g_assert_true (g_file_set_contents (path, (const char *) png->data, png->len, NULL));
  g_byte_array_unref (png);
  g_free (packed);
  g_free (rows);
}

void
fixture_remove_tree (const char *path)
{
  if (g_file_test (path, G_FILE_TEST_IS_DIR) && !g_file_test (path, G_FILE_TEST_IS_SYMLINK)) {
    GDir *d = g_dir_open (path, 0, NULL);
    const char *name;
    while (d && (name = g_dir_read_name (d)) != NULL) {
      char *child = g_build_filename (path, name, NULL);
      fixture_remove_tree (child);
      g_free (child);
    }
    if (d)
      g_dir_close (d);
    g_rmdir (path);
  } else {
    g_unlink (path);
  }
}
