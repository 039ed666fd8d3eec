/* Image folders written with cairo while the tests run (no binaries in git): a small learnable
 * set of shapes, and the single PNG files the loader tests need. Every picture is a pure function
 * of its arguments. */
#ifndef MONE_TEST_IMAGE_FOLDER_FIXTURES_H
#define MONE_TEST_IMAGE_FOLDER_FIXTURES_H

#include <glib.h>

G_BEGIN_DECLS

/* The learnable set's class folders, in byte order ('S' < 'c'): what the labels must be. */
extern const char *const fixture_shape_classes[3];

/* Writes DIR/Square, DIR/circle, DIR/triangle with `per_class` PNG files each: a filled shape
 * (green-ish square, red-ish disc, blue-ish triangle, colours jittered) at a random place and size
 * on a random dark background. Sizes vary from 12 to 40 pixels a side, not square; every third
 * picture is RGBA with a transparent background, every seventh grey (colour then carries no hint).
 * Also a hidden file, a text file and a sub-folder in the first class folder, and a README beside
 * the class folders, which the loader must skip (4 skipped: 1 hidden, 3 other). */
void fixture_write_shapes (const char *dir, int per_class);

/* A w x h PNG of one colour (0xAARRGGBB, not premultiplied) at `path`: grey = TRUE writes an
 * 8-bit grey PNG of the colour's red byte, otherwise RGBA when alpha < 255, else RGB. */
void fixture_write_flat_png (const char *path, int w, int h, guint32 argb, gboolean grey);

/* The same as a 16-bit-per-channel RGBA PNG (each byte repeated: 0x80 -> 0x8080), written by hand
 * since cairo writes 8-bit PNGs only; cairo 1.17.2 and later read these as a float format. */
void fixture_write_flat_png16 (const char *path, int w, int h, guint32 argb);

/* mkdir -p, asserting success. */
void fixture_mkdir (const char *path);
/* rm -r (the fixtures are small). */
void fixture_remove_tree (const char *path);

G_END_DECLS

#endif
