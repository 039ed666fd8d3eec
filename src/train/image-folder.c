/* Image folders: DIR/<class>/<picture>, PNG read with cairo and every other picture format through
 * GStreamer's decoders, converted to the model's channels and resized once to its input (see
 * include/mone/mone-train.h for the convention and docs/training.md for users). */
#include "mone/mone-train.h"

#include "mone/mone.h"

#include <cairo.h>
#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* As for IDX files: keeps every count an int and every size computation far from overflow. */
#define IMAGE_FOLDER_MAX_IMAGES 10000000

/* ---------------------------------------------------------------------------------------------- */
/* Listing. */

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

/* Picture files by name (any case). PNG goes through cairo; the others through GStreamer, whose
 * decoders on the machine decide what can be read. */
static const char *const picture_suffixes[] = { ".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff" };

static gboolean
has_suffix (const char *name, const char *suffix)
{
  size_t n = strlen (name), k = strlen (suffix);
  return n > k && g_ascii_strcasecmp (name + n - k, suffix) == 0;
}

static gboolean
has_picture_suffix (const char *name)
{
  for (size_t i = 0; i < G_N_ELEMENTS (picture_suffixes); i++)
    if (has_suffix (name, picture_suffixes[i]))
      return TRUE;
  return FALSE;
}

/* The entries of `dir` that are folders (want_folders) or picture files (otherwise), sorted in byte
 * order. Hidden entries and everything else are counted, not listed. `what` names the folder's
 * role in messages. */
static GPtrArray *
list_entries (const char *dir, const char *what, gboolean want_folders, int *hidden, int *other, GError **error)
{
  if (!g_file_test (dir, G_FILE_TEST_IS_DIR)) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "%s '%s' %s", what, dir,
        g_file_test (dir, G_FILE_TEST_EXISTS) ? "is not a folder" : "does not exist");
    return NULL;
  }
  GError *local = NULL;
  GDir *d = g_dir_open (dir, 0, &local);
  if (!d) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "cannot list %s '%s': %s", what, dir, local->message);
    g_error_free (local);
    return NULL;
  }
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  const char *name;
  while ((name = g_dir_read_name (d)) != NULL) {
    if (name[0] == '.') {
      (*hidden)++;
      continue;
    }
    char *path = g_build_filename (dir, name, NULL);
    gboolean is_folder = g_file_test (path, G_FILE_TEST_IS_DIR);
    g_free (path);
    if (want_folders ? is_folder : !is_folder && has_picture_suffix (name))
      g_ptr_array_add (names, g_strdup (name));
    else
      (*other)++;
  }
  g_dir_close (d);
  g_ptr_array_sort (names, compare_names);
  return names;
}

/* ---------------------------------------------------------------------------------------------- */
/* Decoding and resizing. */

static const char *
png_failure_reason (cairo_status_t status)
{
  switch (status) {
    case CAIRO_STATUS_FILE_NOT_FOUND:
      return "the file cannot be opened";
    case CAIRO_STATUS_READ_ERROR:
      return "truncated or unreadable (cairo: error while reading from input stream)";
    case CAIRO_STATUS_NO_MEMORY:
      /* cairo 1.16 reports every libpng failure (bad signature, CRC, data) as out of memory. */
      return "corrupt or not PNG data, or too large to decode (cairo: out of memory)";
#if CAIRO_VERSION >= CAIRO_VERSION_ENCODE(1, 17, 8)
    case CAIRO_STATUS_PNG_ERROR:
      /* Newer cairo (Debian 13) names libpng's failures. */
      return "corrupt or not PNG data (cairo: libpng error)";
#endif
    default:
      return cairo_status_to_string (status);
  }
}

/* The PNG at `path` as an RGB24 or ARGB32 surface. cairo premultiplies alpha, so an ARGB32
 * pixel's colour is already the picture composited over black. */
static cairo_surface_t *
png_load (const char *path, GError **error)
{
  cairo_surface_t *surface = cairo_image_surface_create_from_png (path);
  cairo_status_t status = cairo_surface_status (surface);
  if (status == CAIRO_STATUS_SUCCESS) {
    cairo_format_t format = cairo_image_surface_get_format (surface);
    if (format != CAIRO_FORMAT_RGB24 && format != CAIRO_FORMAT_ARGB32) {
      /* Newer cairo (1.17.2 on) loads 16-bit PNGs as float formats: paint them into ARGB32 (created
       * transparent), which keeps their alpha premultiplied as cairo's 8-bit loads do. */
      cairo_surface_t *flat = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, cairo_image_surface_get_width (surface),
          cairo_image_surface_get_height (surface));
      cairo_t *cr = cairo_create (flat);
      cairo_set_source_surface (cr, surface, 0, 0);
      cairo_paint (cr);
      status = cairo_status (cr);
      cairo_destroy (cr);
      cairo_surface_destroy (surface);
      surface = flat;
    }
  }
  if (status != CAIRO_STATUS_SUCCESS) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT, "cannot read PNG '%s': %s", path, png_failure_reason (status));
    cairo_surface_destroy (surface);
    return NULL;
  }
  cairo_surface_flush (surface);
  return surface;
}

/* Copies a decoded BGRA frame into an ARGB32 surface, premultiplying as cairo does, so that a
 * picture with transparency becomes the same "colour over black" a PNG would. */
static cairo_surface_t *
surface_from_bgra (GstVideoFrame *frame)
{
  const int width = GST_VIDEO_FRAME_WIDTH (frame), height = GST_VIDEO_FRAME_HEIGHT (frame);
  const int src_stride = GST_VIDEO_FRAME_PLANE_STRIDE (frame, 0);
  const guint8 *src = GST_VIDEO_FRAME_PLANE_DATA (frame, 0);
  cairo_surface_t *surface = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, width, height);
  if (cairo_surface_status (surface) != CAIRO_STATUS_SUCCESS)
    return surface;
  const int stride = cairo_image_surface_get_stride (surface);
  unsigned char *data = cairo_image_surface_get_data (surface);
  for (int y = 0; y < height; y++) {
    const guint8 *in = src + (size_t) y * src_stride;
    uint32_t *out = (uint32_t *) (data + (size_t) y * stride);
    for (int x = 0; x < width; x++) {
      const unsigned b = in[4 * x], g = in[4 * x + 1], r = in[4 * x + 2], a = in[4 * x + 3];
      out[x] = (uint32_t) a << 24 | ((r * a + 127) / 255) << 16 | ((g * a + 127) / 255) << 8 | (b * a + 127) / 255;
    }
  }
  cairo_surface_mark_dirty (surface);
  return surface;
}

/* A picture in any format the machine's GStreamer decodes (decodebin picks the decoder), as an
 * ARGB32 surface. The first error on the bus, or the missing decoder, names the cause. */
static cairo_surface_t *
gst_picture_load (const char *path, GError **error)
{
  GError *local = NULL;
  GstElement *pipeline = NULL, *file = NULL, *sink = NULL;
  GstSample *sample = NULL;
  cairo_surface_t *surface = NULL;

  if (!gst_init_check (NULL, NULL, &local)) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "cannot read picture '%s': GStreamer: %s", path, local->message);
    g_error_free (local);
    return NULL;
  }
  pipeline = gst_parse_launch ("filesrc name=file ! decodebin ! videoconvert ! video/x-raw,format=BGRA ! "
                               "appsink name=sink sync=false max-buffers=1",
      &local);
  if (!pipeline || local) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "cannot read picture '%s': GStreamer elements missing: %s", path,
        local ? local->message : "?");
    g_clear_error (&local);
    goto out;
  }
  file = gst_bin_get_by_name (GST_BIN (pipeline), "file");
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  g_object_set (file, "location", path, NULL);
  /* A picture prerolls its only frame; an error (corrupt data, no decoder) fails the state change. */
  gst_element_set_state (pipeline, GST_STATE_PAUSED);
  if (gst_element_get_state (pipeline, NULL, NULL, 30 * GST_SECOND) == GST_STATE_CHANGE_SUCCESS)
    sample = gst_app_sink_try_pull_preroll (GST_APP_SINK (sink), 0);
  if (!sample) {
    GstBus *bus = gst_element_get_bus (pipeline);
    GstMessage *message = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
    GError *cause = NULL;
    if (message)
      gst_message_parse_error (message, &cause, NULL);
    g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT, "cannot decode picture '%s': %s", path,
        cause ? cause->message : "no frame decoded (not a picture GStreamer can decode here)");
    g_clear_error (&cause);
    if (message)
      gst_message_unref (message);
    gst_object_unref (bus);
    goto out;
  }
  GstVideoInfo info;
  GstVideoFrame frame;
  if (!gst_video_info_from_caps (&info, gst_sample_get_caps (sample))
      || !gst_video_frame_map (&frame, &info, gst_sample_get_buffer (sample), GST_MAP_READ)) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT, "cannot decode picture '%s': unreadable frame", path);
    goto out;
  }
  surface = surface_from_bgra (&frame);
  gst_video_frame_unmap (&frame);
  if (cairo_surface_status (surface) != CAIRO_STATUS_SUCCESS) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT, "cannot read picture '%s': %s", path,
        cairo_status_to_string (cairo_surface_status (surface)));
    cairo_surface_destroy (surface);
    surface = NULL;
  }

out:
  if (sample)
    gst_sample_unref (sample);
  if (pipeline)
    gst_element_set_state (pipeline, GST_STATE_NULL);
  g_clear_object (&file);
  g_clear_object (&sink);
  g_clear_object (&pipeline);
  return surface;
}

/* Source taps of every output pixel along one axis: n_taps (index, weight) pairs each. */
typedef struct {
  int n_taps;
  int *index;    /* (dst, n_taps) */
  float *weight; /* (dst, n_taps), summing to 1 per output pixel */
} ResampleAxis;

/* The full-frame protocol's area-correct resample (data.c, item_render_pixel) along one axis:
 * each output pixel averages n = ceil(src / dst) evenly spaced bilinear samples of its
 * footprint, so shrinking averages every source pixel under it instead of aliasing, and equal
 * sizes copy. Unlike the protocol, which pads Fashion items with black, the edge pixel is
 * repeated: a photo's border is content. */
static void
resample_axis_init (ResampleAxis *a, int src, int dst)
{
  const int n = MAX (1, (src + dst - 1) / dst);
  a->n_taps = 2 * n;
  a->index = g_new (int, (size_t) dst * a->n_taps);
  a->weight = g_new (float, (size_t) dst * a->n_taps);
  for (int o = 0; o < dst; o++) {
    int *index = a->index + (size_t) o * a->n_taps;
    float *weight = a->weight + (size_t) o * a->n_taps;
    for (int s = 0; s < n; s++) {
      double u = (o + (s + 0.5) / n) * src / dst - 0.5; /* source coordinate, pixel centres at integers */
      int u0 = (int) floor (u);
      double f = u - u0;
      index[2 * s] = CLAMP (u0, 0, src - 1);
      weight[2 * s] = (float) ((1 - f) / n);
      index[2 * s + 1] = CLAMP (u0 + 1, 0, src - 1);
      weight[2 * s + 1] = (float) (f / n);
    }
  }
}

static void
resample_axis_clear (ResampleAxis *a)
{
  g_free (a->index);
  g_free (a->weight);
}

/* Converts an RGB24/ARGB32 surface to `channels` planes (3: R, G, B; 1: BT.601 luma) and its
 * alpha, resized to height x width, rounded to bytes, into out (channels, height, width) and
 * alpha (height, width). Rows first, then columns, so a large picture never needs a float copy of
 * its own size. */
static void
surface_to_planes (cairo_surface_t *surface, int channels, int height, int width, guint8 *out, guint8 *alpha)
{
  const gboolean has_alpha = cairo_image_surface_get_format (surface) == CAIRO_FORMAT_ARGB32;
  channels += 1; /* the alpha plane rides along as the last one */
  const int src_w = cairo_image_surface_get_width (surface), src_h = cairo_image_surface_get_height (surface);
  const int stride = cairo_image_surface_get_stride (surface);
  const unsigned char *data = cairo_image_surface_get_data (surface);
  ResampleAxis ax, ay;
  resample_axis_init (&ax, src_w, width);
  resample_axis_init (&ay, src_h, height);
  float *row = g_new (float, (size_t) channels *src_w);
  float *narrow = g_new (float, (size_t) channels *src_h *width); /* (channels, src_h, width) */

  for (int y = 0; y < src_h; y++) {
    const uint32_t *pixels = (const uint32_t *) (data + (size_t) y * stride);
    for (int x = 0; x < src_w; x++) {
      const float r = (float) ((pixels[x] >> 16) & 0xff), g = (float) ((pixels[x] >> 8) & 0xff),
                  b = (float) (pixels[x] & 0xff);
      if (channels == 4) {
        row[x] = r;
        row[src_w + x] = g;
        row[2 * src_w + x] = b;
      } else {
        row[x] = 0.299f * r + 0.587f * g + 0.114f * b;
      }
      row[(size_t) (channels - 1) * src_w + x] = has_alpha ? (float) (pixels[x] >> 24) : 255.0f;
    }
    for (int ch = 0; ch < channels; ch++)
      for (int ox = 0; ox < width; ox++) {
        const int *index = ax.index + (size_t) ox * ax.n_taps;
        const float *weight = ax.weight + (size_t) ox * ax.n_taps;
        float acc = 0;
        for (int t = 0; t < ax.n_taps; t++)
          acc += weight[t] * row[(size_t) ch * src_w + index[t]];
        narrow[((size_t) ch * src_h + y) * width + ox] = acc;
      }
  }
  for (int ch = 0; ch < channels; ch++)
    for (int oy = 0; oy < height; oy++) {
      const int *index = ay.index + (size_t) oy * ay.n_taps;
      const float *weight = ay.weight + (size_t) oy * ay.n_taps;
      for (int ox = 0; ox < width; ox++) {
        float acc = 0;
        for (int t = 0; t < ay.n_taps; t++)
          acc += weight[t] * narrow[((size_t) ch * src_h + index[t]) * width + ox];
        guint8 *to = ch < channels - 1 ? out + ((size_t) ch * height + oy) * width : alpha + (size_t) oy * width;
        to[ox] = (guint8) CLAMP (floorf (acc + 0.5f), 0.0f, 255.0f);
      }
    }

  g_free (row);
  g_free (narrow);
  resample_axis_clear (&ax);
  resample_axis_clear (&ay);
}

static gboolean
picture_read_resized (const char *path, int channels, int height, int width, guint8 *out, guint8 *alpha, GError **error)
{
  cairo_surface_t *surface = has_suffix (path, ".png") ? png_load (path, error) : gst_picture_load (path, error);
  if (!surface)
    return FALSE;
  surface_to_planes (surface, channels, height, width, out, alpha);
  cairo_surface_destroy (surface);
  return TRUE;
}

/* ---------------------------------------------------------------------------------------------- */
/* The folder. */

/* One image to read: its path and class, in the order the set stores them. */
typedef struct {
  const char *class_dir;
  const char *file;
  int label;
} ImageJob;

/* Appends the images of one split, round-robin over the classes. files: per class, the PNG names
 * in byte order; validation picks the 10th, 20th, ... of each (index % EVERY == EVERY - 1). */
static void
append_split_jobs (GArray *jobs, GPtrArray *class_dirs, GPtrArray **files, gboolean validation)
{
  for (int round = 0;; round++) {
    gboolean any = FALSE;
    for (guint k = 0; k < class_dirs->len; k++) {
      /* The round-th file of class k in this split. */
      const int every = MONE_IMAGE_FOLDER_VAL_EVERY;
      long i = validation ? (long) (round + 1) * every - 1 : round + round / (every - 1);
      if (i >= files[k]->len)
        continue;
      ImageJob job = { g_ptr_array_index (class_dirs, k), g_ptr_array_index (files[k], i), (int) k };
      g_array_append_val (jobs, job);
      any = TRUE;
    }
    if (!any)
      return;
  }
}

/* The class folders' names: at least 2, at most MONE_IMAGE_FOLDER_MAX_CLASSES. */
static GPtrArray *
list_classes (const char *dir, MoneImageFolder *out, GError **error)
{
  GPtrArray *class_names = list_entries (dir, "image folder", TRUE, &out->skipped_hidden, &out->skipped_other, error);
  if (!class_names)
    return NULL;
  const int classes = (int) class_names->len;
  if (classes < 2) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT,
        classes == 0 ? "image folder '%s' has no class folders: expected %s/<class name>/<picture>.png (or .jpg, ...)"
                     : "image folder '%s' has one class folder ('%s'); a classifier needs at least 2",
        dir, classes == 0 ? dir : (const char *) g_ptr_array_index (class_names, 0));
  } else if (classes > MONE_IMAGE_FOLDER_MAX_CLASSES) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT,
        "image folder '%s' has %d class folders, more than the %d supported", dir, classes,
        MONE_IMAGE_FOLDER_MAX_CLASSES);
  } else {
    return class_names;
  }
  g_ptr_array_unref (class_names);
  return NULL;
}

/* Each class folder's path (into class_dirs) and picture names (files[k]); *n_images their total. */
static gboolean
list_class_files (const char *dir, GPtrArray *class_names, GPtrArray *class_dirs, GPtrArray **files,
    MoneImageFolder *out, long *n_images, GError **error)
{
  *n_images = 0;
  for (guint k = 0; k < class_names->len; k++) {
    const char *name = g_ptr_array_index (class_names, k);
    char *class_dir = g_build_filename (dir, name, NULL);
    g_ptr_array_add (class_dirs, class_dir);
    /* Class names become the model's labels, which are UTF-8 (JSON metadata). */
    if (!g_utf8_validate (name, -1, NULL)) {
      char *shown = g_filename_display_name (class_dir);
      g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT,
          "class folder '%s': its name is not UTF-8, so it cannot be a label", shown);
      g_free (shown);
      return FALSE;
    }
    files[k] = list_entries (class_dir, "class folder", FALSE, &out->skipped_hidden, &out->skipped_other, error);
    if (!files[k])
      return FALSE;
    if (files[k]->len == 0) {
      g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT,
          "class folder '%s' holds no pictures (*.png, *.jpg, *.jpeg, *.webp, *.bmp, *.gif, *.tif, *.tiff)", class_dir);
      return FALSE;
    }
    *n_images += files[k]->len;
  }
  if (*n_images > IMAGE_FOLDER_MAX_IMAGES) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_FORMAT, "image folder '%s' holds %ld images, more than the %d supported",
        dir, *n_images, IMAGE_FOLDER_MAX_IMAGES);
    return FALSE;
  }
  return TRUE;
}

/* Reads every job's picture, resized, into `images` (whose buffers the caller allocated). */
static gboolean
read_images (const GArray *jobs, MoneImageSet *images, GError **error)
{
  const size_t plane = (size_t) images->rows * images->cols;
  const size_t frame = images->channels * plane;
  for (guint j = 0; j < jobs->len; j++) {
    const ImageJob *job = &g_array_index (jobs, ImageJob, j);
    g_autofree char *image_path = g_build_filename (job->class_dir, job->file, NULL);
    if (!picture_read_resized (image_path, images->channels, images->rows, images->cols, images->pixels + j * frame,
            images->alpha + j * plane, error))
      return FALSE;
    images->labels[j] = (guint8) job->label;
  }
  return TRUE;
}

gboolean
mone_image_folder_load (const char *dir, int height, int width, int channels, MoneImageFolder *out, GError **error)
{
  GPtrArray *class_names = NULL, *class_dirs = g_ptr_array_new_with_free_func (g_free);
  GPtrArray **files = NULL; /* (n_files) per class, its picture names */
  int n_files = 0;
  GArray *jobs = g_array_new (FALSE, FALSE, sizeof (ImageJob));
  MoneImageSet images = { .channels = channels, .rows = height, .cols = width };
  gboolean ok = FALSE;

  memset (out, 0, sizeof *out);
  if ((channels != 1 && channels != 3) || height < 1 || width < 1 || height > 8192 || width > 8192) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_INVALID_ARGUMENT,
        "image folder '%s': cannot read images at %dx%d with %d channels (1 or 3, sides 1..8192)", dir, width, height,
        channels);
    goto out;
  }
  if (!(class_names = list_classes (dir, out, error)))
    goto out;
  const int classes = (int) class_names->len;
  files = g_new0 (GPtrArray *, classes);
  n_files = classes;
  long n_images;
  if (!list_class_files (dir, class_names, class_dirs, files, out, &n_images, error))
    goto out;
  append_split_jobs (jobs, class_dirs, files, FALSE);
  const int n_train = (int) jobs->len;
  append_split_jobs (jobs, class_dirs, files, TRUE);
  g_assert ((long) jobs->len == n_images);

  images.count = (int) n_images;
  images.pixels = g_try_malloc ((size_t) n_images * channels * height * width);
  images.labels = g_try_malloc ((size_t) n_images);
  images.alpha = g_try_malloc ((size_t) n_images * height * width);
  if (!images.pixels || !images.labels || !images.alpha) {
    g_set_error (error, MONE_ERROR, MONE_ERROR_IO, "out of memory for %ld images of %dx%dx%d from '%s'", n_images,
        width, height, channels, dir);
    goto out;
  }
  if (!read_images (jobs, &images, error))
    goto out;

  out->images = images;
  memset (&images, 0, sizeof images);
  out->n_train = n_train;
  out->n_val = (int) n_images - n_train;
  out->classes = classes;
  g_ptr_array_add (class_names, NULL);
  out->class_names = (char **) g_ptr_array_free (class_names, FALSE);
  class_names = NULL;
  ok = TRUE;

out:
  for (int k = 0; k < n_files; k++)
    if (files[k])
      g_ptr_array_unref (files[k]);
  g_free (files);
  if (class_names)
    g_ptr_array_unref (class_names);
  g_ptr_array_unref (class_dirs);
  g_array_unref (jobs);
  g_free (images.pixels);
  g_free (images.labels);
  g_free (images.alpha);
  if (!ok)
    memset (out, 0, sizeof *out);
  return ok;
}

void
mone_image_folder_clear (MoneImageFolder *folder)
{
  if (!folder)
    return;
  mone_image_set_clear (&folder->images);
  g_strfreev (folder->class_names);
  memset (folder, 0, sizeof *folder);
}

MoneImageSet
mone_image_folder_train_set (const MoneImageFolder *folder)
{
  return mone_image_set_slice (&folder->images, 0, folder->n_train);
}

MoneImageSet
mone_image_folder_val_set (const MoneImageFolder *folder)
{
  return mone_image_set_slice (&folder->images, folder->n_train, folder->n_val);
}

char *
mone_image_folder_describe (const MoneImageFolder *folder, const char *dir)
{
  GString *s = g_string_new (NULL);
  g_string_append_printf (s, "image folder '%s': %d classes (", dir, folder->classes);
  for (int k = 0; k < folder->classes && k < 8; k++)
    g_string_append_printf (s, "%s%s", k ? ", " : "", folder->class_names[k]);
  g_string_append_printf (s, "%s), %d images at %dx%dx%d: %d training, %d validation (every %dth of each class)",
      folder->classes > 8 ? ", ..." : "", folder->images.count, folder->images.cols, folder->images.rows,
      folder->images.channels, folder->n_train, folder->n_val, MONE_IMAGE_FOLDER_VAL_EVERY);
  if (folder->skipped_hidden || folder->skipped_other)
    g_string_append_printf (s, "; skipped %d hidden entr%s and %d other entr%s (not pictures in a class folder)",
        folder->skipped_hidden, folder->skipped_hidden == 1 ? "y" : "ies", folder->skipped_other,
        folder->skipped_other == 1 ? "y" : "ies");
  return g_string_free (s, FALSE);
}
