/* gst-mone: the classification meta (see include/mone/gstmonemeta.h for every field).
 *
 * The meta is a GstCustomMeta so that any GObject-introspection language can read it as a
 * GstStructure without bindings of its own; C gets typed accessors here.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <mone/gstmonemeta.h>

#include <string.h>

/* The result does not depend on the frame's size or pixel layout (the expert grid is in model
 * tokens; content-* is in the pixels of the frame monefilter saw, whose size the meta records as
 * frame-width/frame-height), so every transform keeps it. */
static gboolean
gst_mone_meta_transform (GstBuffer * dest, GstCustomMeta * meta, GstBuffer * src,
    GQuark type, gpointer data, gpointer user_data)
{
  GstCustomMeta *copy = gst_buffer_add_mone_meta (dest, gst_custom_meta_get_structure (meta));
  return copy != NULL;
}

const GstMetaInfo *
gst_mone_meta_get_info (void)
{
  static gsize info = 0;

  if (g_once_init_enter (&info)) {
    /* No tags: elements that change size or format (videoconvert, videoscale) keep the meta. The
     * "size" tag would have videoscale transform it, but elements that cannot transform a sized
     * meta drop it (GStreamer 1.22: videocrop, videobox, alpha, edgetv...) and the classification
     * with it. Readers rescale content-* by frame-width/frame-height instead. */
    static const gchar *tags[] = { NULL };
    const GstMetaInfo *registered = gst_meta_register_custom (GST_MONE_META_NAME, tags,
        gst_mone_meta_transform, NULL, NULL);
    g_once_init_leave (&info, (gsize) registered);
  }
  return (const GstMetaInfo *) info;
}

void
gst_mone_classification_init (MoneClassification * result)
{
  memset (result, 0, sizeof (*result));
  result->timestamp = GST_CLOCK_TIME_NONE;
  result->stream_time = GST_CLOCK_TIME_NONE;
  result->running_time = GST_CLOCK_TIME_NONE;
  result->duration = GST_CLOCK_TIME_NONE;
}

static void
take_array_int (GstStructure * s, const char *field, const gint * values, guint n)
{
  GValue array = G_VALUE_INIT, item = G_VALUE_INIT;

  gst_value_array_init (&array, n);
  g_value_init (&item, G_TYPE_INT);
  for (guint i = 0; i < n; i++) {
    g_value_set_int (&item, values[i]);
    gst_value_array_append_value (&array, &item);
  }
  g_value_unset (&item);
  gst_structure_take_value (s, field, &array);
}

static void
take_array_double (GstStructure * s, const char *field, const gdouble * values, guint n)
{
  GValue array = G_VALUE_INIT, item = G_VALUE_INIT;

  gst_value_array_init (&array, n);
  g_value_init (&item, G_TYPE_DOUBLE);
  for (guint i = 0; i < n; i++) {
    g_value_set_double (&item, values[i]);
    gst_value_array_append_value (&array, &item);
  }
  g_value_unset (&item);
  gst_structure_take_value (s, field, &array);
}

static void
take_array_string (GstStructure * s, const char *field, const gchar * const *values, guint n)
{
  GValue array = G_VALUE_INIT, item = G_VALUE_INIT;

  gst_value_array_init (&array, n);
  g_value_init (&item, G_TYPE_STRING);
  for (guint i = 0; i < n; i++) {
    g_value_set_string (&item, values[i] ? values[i] : "");
    gst_value_array_append_value (&array, &item);
  }
  g_value_unset (&item);
  gst_structure_take_value (s, field, &array);
}

GstStructure *
gst_mone_classification_to_structure (const MoneClassification * r)
{
  guint top_k = MIN (r->top_k, GST_MONE_META_MAX_TOP_K);
  gint experts = CLAMP (r->experts, 0, MONE_MAX_EXPERTS);
  GstStructure *s;

  s = gst_structure_new (GST_MONE_CLASSIFICATION_NAME,
      "frame", G_TYPE_UINT64, r->frame,
      "result-frame", G_TYPE_UINT64, r->result_frame,
      "reused", G_TYPE_BOOLEAN, r->reused,
      "timestamp", G_TYPE_UINT64, r->timestamp,
      "stream-time", G_TYPE_UINT64, r->stream_time,
      "running-time", G_TYPE_UINT64, r->running_time,
      "duration", G_TYPE_UINT64, r->duration,
      "class-id", G_TYPE_INT, r->top_class,
      "label", G_TYPE_STRING, r->label ? r->label : "",
      "score", G_TYPE_DOUBLE, r->top_score,
      "budget-mode", G_TYPE_STRING, r->budget_auto ? "auto" : "fixed",
      "budget-requested", G_TYPE_DOUBLE, r->budget_requested,
      "budget-used", G_TYPE_DOUBLE, r->budget_used,
      "gflops", G_TYPE_DOUBLE, r->gflops,
      "latency", G_TYPE_UINT64, r->latency_ns,
      "latency-ms", G_TYPE_DOUBLE, r->latency_ms,
      "experts", G_TYPE_INT, experts,
      "tokens", G_TYPE_INT, r->tokens,
      "grid-width", G_TYPE_INT, r->grid_width,
      "grid-height", G_TYPE_INT, r->grid_height,
      "grid-slices", G_TYPE_INT, r->grid_slices,
      "scale-mode", G_TYPE_STRING, r->scale_mode ? r->scale_mode : "stretch",
      "content-x", G_TYPE_DOUBLE, r->content_x,
      "content-y", G_TYPE_DOUBLE, r->content_y,
      "content-width", G_TYPE_DOUBLE, r->content_width,
      "content-height", G_TYPE_DOUBLE, r->content_height,
      "model-x", G_TYPE_DOUBLE, r->model_x,
      "model-y", G_TYPE_DOUBLE, r->model_y,
      "model-width", G_TYPE_DOUBLE, r->model_width,
      "model-height", G_TYPE_DOUBLE, r->model_height,
      "model-input-width", G_TYPE_INT, r->model_input_width,
      "model-input-height", G_TYPE_INT, r->model_input_height, NULL);
  take_array_int (s, "top-ids", r->top_classes, top_k);
  take_array_string (s, "top-labels", r->top_labels, top_k);
  take_array_double (s, "top-scores", r->top_scores, top_k);
  take_array_int (s, "tokens-per-expert", r->tokens_per_expert, experts);

  GBytes *grid = g_bytes_new (r->expert_grid, r->expert_grid ? r->expert_grid_size : 0);
  gst_structure_set (s, "expert-grid", G_TYPE_BYTES, grid, NULL);
  g_bytes_unref (grid);
  return s;
}

/* Reads up to `capacity` entries of a GstValueArray of `item_type`; returns how many. */
static guint
read_array (const GstStructure * s, const char *field, GType item_type, guint capacity,
    gpointer out)
{
  const GValue *array = gst_structure_get_value (s, field);
  guint n, i;

  if (!array || !GST_VALUE_HOLDS_ARRAY (array))
    return 0;
  n = MIN (gst_value_array_get_size (array), capacity);
  for (i = 0; i < n; i++) {
    const GValue *item = gst_value_array_get_value (array, i);
    if (!G_VALUE_HOLDS (item, item_type))
      break;
    if (item_type == G_TYPE_INT)
      ((gint *) out)[i] = g_value_get_int (item);
    else if (item_type == G_TYPE_DOUBLE)
      ((gdouble *) out)[i] = g_value_get_double (item);
    else
      ((const gchar **) out)[i] = g_value_get_string (item);
  }
  return i;
}

gboolean
gst_mone_classification_from_structure (const GstStructure * s, MoneClassification * r)
{
  const gchar *mode;
  GBytes *grid = NULL;
  gboolean complete;

  gst_mone_classification_init (r);
  if (!s || !(gst_structure_has_name (s, GST_MONE_CLASSIFICATION_NAME)
          || gst_structure_has_name (s, GST_MONE_META_NAME)))
    return FALSE;

  gst_structure_get_uint64 (s, "frame", &r->frame);
  gst_structure_get_uint64 (s, "result-frame", &r->result_frame);
  gst_structure_get_boolean (s, "reused", &r->reused);
  gst_structure_get_uint64 (s, "timestamp", &r->timestamp);
  gst_structure_get_uint64 (s, "stream-time", &r->stream_time);
  gst_structure_get_uint64 (s, "running-time", &r->running_time);
  gst_structure_get_uint64 (s, "duration", &r->duration);
  complete = gst_structure_get_int (s, "class-id", &r->top_class);
  r->label = gst_structure_get_string (s, "label");
  complete &= r->label != NULL;
  complete &= gst_structure_get_double (s, "score", &r->top_score);

  guint n_ids = read_array (s, "top-ids", G_TYPE_INT, GST_MONE_META_MAX_TOP_K, r->top_classes);
  guint n_labels = read_array (s, "top-labels", G_TYPE_STRING, GST_MONE_META_MAX_TOP_K,
      r->top_labels);
  guint n_scores = read_array (s, "top-scores", G_TYPE_DOUBLE, GST_MONE_META_MAX_TOP_K,
      r->top_scores);
  r->top_k = MIN (n_ids, MIN (n_labels, n_scores));

  mode = gst_structure_get_string (s, "budget-mode");
  r->budget_auto = mode && strcmp (mode, "auto") == 0;
  gst_structure_get_double (s, "budget-requested", &r->budget_requested);
  complete &= gst_structure_get_double (s, "budget-used", &r->budget_used);
  gst_structure_get_double (s, "gflops", &r->gflops);
  gst_structure_get_uint64 (s, "latency", &r->latency_ns);
  gst_structure_get_double (s, "latency-ms", &r->latency_ms);

  gst_structure_get_int (s, "experts", &r->experts);
  r->experts = CLAMP (r->experts, 0, MONE_MAX_EXPERTS);
  read_array (s, "tokens-per-expert", G_TYPE_INT, r->experts, r->tokens_per_expert);
  gst_structure_get_int (s, "tokens", &r->tokens);
  gst_structure_get_int (s, "grid-width", &r->grid_width);
  gst_structure_get_int (s, "grid-height", &r->grid_height);
  gst_structure_get_int (s, "grid-slices", &r->grid_slices);

  /* The structure keeps its own reference, so the data stays valid while the structure does. */
  if (gst_structure_get (s, "expert-grid", G_TYPE_BYTES, &grid, NULL) && grid) {
    r->expert_grid = g_bytes_get_data (grid, &r->expert_grid_size);
    g_bytes_unref (grid);
  } else {
    complete = FALSE;
  }
  if (r->tokens < 0 || (gsize) r->tokens != r->expert_grid_size
      || (gint64) r->grid_width * r->grid_height * MAX (r->grid_slices, 1) != r->tokens)
    complete = FALSE;

  r->scale_mode = gst_structure_get_string (s, "scale-mode");
  gst_structure_get_double (s, "content-x", &r->content_x);
  gst_structure_get_double (s, "content-y", &r->content_y);
  gst_structure_get_double (s, "content-width", &r->content_width);
  gst_structure_get_double (s, "content-height", &r->content_height);
  gst_structure_get_double (s, "model-x", &r->model_x);
  gst_structure_get_double (s, "model-y", &r->model_y);
  gst_structure_get_double (s, "model-width", &r->model_width);
  gst_structure_get_double (s, "model-height", &r->model_height);
  gst_structure_get_int (s, "model-input-width", &r->model_input_width);
  gst_structure_get_int (s, "model-input-height", &r->model_input_height);
  return complete;
}

/* By quark: no lookup of the field's name, once to read it and once to write it. */
static gboolean
copy_field (GQuark field, const GValue * value, gpointer dest)
{
  gst_structure_id_set_value (dest, field, value);
  return TRUE;
}

GstCustomMeta *
gst_buffer_add_mone_meta (GstBuffer * buffer, const GstStructure * fields)
{
  GstCustomMeta *meta;
  GstStructure *s;

  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  g_return_val_if_fail (gst_buffer_is_writable (buffer), NULL);
  g_return_val_if_fail (fields != NULL, NULL);
  g_return_val_if_fail (gst_structure_has_name (fields, GST_MONE_CLASSIFICATION_NAME)
      || gst_structure_has_name (fields, GST_MONE_META_NAME), NULL);

  meta = gst_buffer_get_mone_meta (buffer);
  if (!meta)
    meta = (GstCustomMeta *) gst_buffer_add_meta (buffer, gst_mone_meta_get_info (), NULL);
  if (!meta)
    return NULL;
  /* The structure belongs to the meta (its parent refcount is the buffer's): edit it in place.
   * Its name stays the meta's, as gst_custom_meta_has_name() expects. */
  s = gst_custom_meta_get_structure (meta);
  if (s == fields)              /* the meta's own structure: already in place */
    return meta;
  gst_structure_remove_all_fields (s);
  gst_structure_foreach (fields, copy_field, s);
  return meta;
}

GstCustomMeta *
gst_buffer_get_mone_meta (GstBuffer * buffer)
{
  g_return_val_if_fail (GST_IS_BUFFER (buffer), NULL);
  gst_mone_meta_get_info ();    /* a reader may run before any element registered the meta */
  return gst_buffer_get_custom_meta (buffer, GST_MONE_META_NAME);
}

const GstStructure *
gst_buffer_get_mone_structure (GstBuffer * buffer)
{
  GstCustomMeta *meta = gst_buffer_get_mone_meta (buffer);
  return meta ? gst_custom_meta_get_structure (meta) : NULL;
}

gboolean
gst_mone_meta_read (GstBuffer * buffer, MoneClassification * result)
{
  const GstStructure *s = gst_buffer_get_mone_structure (buffer);

  if (!s) {
    gst_mone_classification_init (result);
    return FALSE;
  }
  return gst_mone_classification_from_structure (s, result);
}

static const GValue *
regions_value (GstBuffer * buffer)
{
  const GstStructure *s = gst_buffer_get_mone_structure (buffer);
  const GValue *v = s ? gst_structure_get_value (s, "regions") : NULL;

  return v && GST_VALUE_HOLDS_ARRAY (v) ? v : NULL;
}

guint
gst_mone_meta_get_region_count (GstBuffer * buffer)
{
  const GValue *v = regions_value (buffer);

  return v ? gst_value_array_get_size (v) : 0;
}

const GstStructure *
gst_mone_meta_get_region (GstBuffer * buffer, guint index)
{
  const GValue *v = regions_value (buffer);
  const GValue *item;

  if (!v || index >= gst_value_array_get_size (v))
    return NULL;
  item = gst_value_array_get_value (v, index);
  return GST_VALUE_HOLDS_STRUCTURE (item) ? gst_value_get_structure (item) : NULL;
}

gboolean
gst_mone_region_from_structure (const GstStructure * s, MoneRegion * region,
    MoneClassification * result)
{
  memset (region, 0, sizeof *region);
  gst_mone_classification_init (result);
  if (!s || !gst_structure_get_int (s, "region-id", &region->id)
      || !gst_structure_get_int (s, "region-x", &region->x)
      || !gst_structure_get_int (s, "region-y", &region->y)
      || !gst_structure_get_int (s, "region-width", &region->width)
      || !gst_structure_get_int (s, "region-height", &region->height))
    return FALSE;
  region->type = gst_structure_get_string (s, "region-type");
  if (!region->type)
    region->type = "";
  return gst_mone_classification_from_structure (s, result);
}
