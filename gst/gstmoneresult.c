/* gst-mone: monefilter's results, as the GstStructure its meta and its messages carry.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmoneresult.h"

#include <string.h>

#include <mone/gstmonemeta.h>

#if HAVE_GST_ANALYTICS
#include <gst/analytics/analytics.h>
#endif

/* Indices of the k largest probabilities, best first (ties: lower index first); `out` holds k. */
static guint
select_top_k (const float *probs, gint classes, guint k, gint * out)
{
  guint n = 0;

  k = MIN (k, (guint) classes);
  for (gint c = 0; c < classes; c++) {
    guint i;

    if (n == k && probs[c] <= probs[out[n - 1]])
      continue;
    i = n < k ? n++ : n - 1;
    while (i > 0 && probs[c] > probs[out[i - 1]]) {
      out[i] = out[i - 1];
      i--;
    }
    out[i] = c;
  }
  return n;
}

/* Where in the frame the model looked. */
static void
set_input_fields (MoneClassification * c, const GstMoneInput * input,
    const GstMoneInputGeometry * g)
{
  c->scale_mode = gst_mone_scale_mode_nick (gst_mone_input_get_scale_mode (input));
  c->content_x = g->src_x;
  c->content_y = g->src_y;
  c->content_width = g->src_width;
  c->content_height = g->src_height;
  c->model_x = g->dest_x;
  c->model_y = g->dest_y;
  c->model_width = g->dest_width;
  c->model_height = g->dest_height;
}

GstStructure *
gst_mone_result_new (MoneModel * model, const MoneResult * result, const GstMoneInput * input,
    const GstMoneResultInfo * info)
{
  const MoneConfig *config = mone_model_get_config (model);
  const GstVideoInfo *in_info = gst_mone_input_get_video_info (input);
  gint top[GST_MONE_META_MAX_TOP_K];
  MoneClassification c;
  GstStructure *s;

  gst_mone_classification_init (&c);
  c.frame = c.result_frame = info->frame;
  /* Non-finite logits are no answer: no class, no label, no scores (valid=false below). */
  c.top_class = result->finite ? result->top_class : -1;
  c.label = result->finite ? mone_model_get_label (model, result->top_class) : "";
  c.top_score = result->finite ? result->probs[result->top_class] : 0.0;
  c.top_k = result->finite ? select_top_k (result->probs, config->classes,
      MIN (info->top_k, GST_MONE_META_MAX_TOP_K), top) : 0;
  for (guint i = 0; i < c.top_k; i++) {
    c.top_classes[i] = top[i];
    c.top_labels[i] = mone_model_get_label (model, top[i]);
    c.top_scores[i] = result->probs[top[i]];
  }
  c.budget_auto = info->budget_auto;
  c.budget_requested = info->budget_requested;
  c.budget_used = result->budget_used;
  c.gflops = result->flops * 1e-9;
  c.latency_ns = info->latency_ns;
  c.latency_ms = info->latency_ns * 1e-6;
  c.experts = result->experts;
  c.tokens = result->tokens;
  for (gint j = 0; j < result->experts && j < MONE_MAX_EXPERTS; j++)
    c.tokens_per_expert[j] = result->tokens_per_expert[j];
  c.grid_width = config->grid_width;
  c.grid_height = config->grid_height;
  c.grid_slices = config->tokens / MAX (config->grid_width * config->grid_height, 1);
  c.expert_grid = result->expert_of_token;
  c.expert_grid_size = result->tokens;
  set_input_fields (&c, input, info->geometry ? info->geometry
      : gst_mone_input_get_geometry (input));
  c.model_input_width = config->width;
  c.model_input_height = config->height;
  s = gst_mone_classification_to_structure (&c);
  /* Not in MoneClassification (its size is the library's ABI): the structure only. */
  gst_structure_set (s,
      "frame-width", G_TYPE_INT, GST_VIDEO_INFO_WIDTH (in_info),
      "frame-height", G_TYPE_INT, GST_VIDEO_INFO_HEIGHT (in_info),
      "window-frames", G_TYPE_INT, config->frames,
      "frames-per-slice", G_TYPE_INT, config->tubelet,
      "window-filled", G_TYPE_INT, (gint) gst_mone_input_get_filled (input),
      "valid", G_TYPE_BOOLEAN, result->finite, NULL);
  return s;
}

#if HAVE_GST_ANALYTICS
/* GStreamer >= 1.24: the same top-k as a GstAnalyticsClsMtd for analytics-aware elements; with
 * `detection` >= 0 that detection (a GstAnalyticsODMtd of the same relation meta) relates to it. */
static void
add_analytics_classification (GstBuffer * buffer, const GstStructure * s, gint detection)
{
  MoneClassification c;
  gfloat confidences[GST_MONE_META_MAX_TOP_K];
  GQuark quarks[GST_MONE_META_MAX_TOP_K];
  GstAnalyticsRelationMeta *relations;
  GstAnalyticsClsMtd mtd;

  if (!gst_mone_classification_from_structure (s, &c) || c.top_k == 0)
    return;
  for (guint i = 0; i < c.top_k; i++) {
    confidences[i] = c.top_scores[i];
    quarks[i] = g_quark_from_string (c.top_labels[i]);
  }
  relations = gst_buffer_get_analytics_relation_meta (buffer);
  if (!relations)
    relations = gst_buffer_add_analytics_relation_meta (buffer);
  if (!relations
      || !gst_analytics_relation_meta_add_cls_mtd (relations, c.top_k, confidences, quarks, &mtd))
    return;
  if (detection >= 0)
    gst_analytics_relation_meta_set_relation (relations, GST_ANALYTICS_REL_TYPE_RELATE_TO,
        (guint) detection, mtd.id);
}
#endif

gboolean
gst_mone_result_attach (GstBuffer * buffer, const GstStructure * result,
    const GstMoneFrameStamp * stamp, GstStructure ** message)
{
  GstCustomMeta *meta = gst_buffer_add_mone_meta (buffer, result);
  GstStructure *fields;

  if (!meta)
    return FALSE;
  fields = gst_custom_meta_get_structure (meta);
  gst_structure_set (fields,
      "frame", G_TYPE_UINT64, stamp->frame,
      "reused", G_TYPE_BOOLEAN, stamp->reused,
      "timestamp", G_TYPE_UINT64, stamp->timestamp,
      "stream-time", G_TYPE_UINT64, stamp->stream_time,
      "running-time", G_TYPE_UINT64, stamp->running_time,
      "duration", G_TYPE_UINT64, stamp->duration, NULL);
#if HAVE_GST_ANALYTICS
  add_analytics_classification (buffer, fields, -1);
#endif
  if (message) {
    *message = gst_structure_copy (fields);
    gst_structure_set_name (*message, GST_MONE_CLASSIFICATION_NAME);
  }
  return TRUE;
}

void
gst_mone_result_set_region (GstStructure * result, const GstMoneRegion * region)
{
  gst_structure_set (result,
      "region-id", G_TYPE_INT, region->id,
      "region-type", G_TYPE_STRING, region->type ? g_quark_to_string (region->type) : "",
      "region-source", G_TYPE_STRING, region->roi ? "roi-meta" : "od-mtd",
      "region-x", G_TYPE_INT, region->x,
      "region-y", G_TYPE_INT, region->y,
      "region-width", G_TYPE_INT, region->width, "region-height", G_TYPE_INT, region->height, NULL);
}

/* A copy of a region's result for this frame: its stamp says which frame this is and whether the
 * result was computed on it. */
static GstStructure *
stamped_region (const GstStructure * result, const GstMoneFrameStamp * stamp)
{
  GstStructure *s = gst_structure_copy (result);
  guint64 result_frame = stamp->frame;

  gst_structure_get_uint64 (s, "result-frame", &result_frame);
  gst_structure_set (s,
      "frame", G_TYPE_UINT64, stamp->frame,
      "reused", G_TYPE_BOOLEAN, result_frame != stamp->frame,
      "timestamp", G_TYPE_UINT64, stamp->timestamp,
      "stream-time", G_TYPE_UINT64, stamp->stream_time,
      "running-time", G_TYPE_UINT64, stamp->running_time,
      "duration", G_TYPE_UINT64, stamp->duration, NULL);
  return s;
}

/* Puts a region's result on its region meta in place of any earlier one of the same name: a
 * second monefilter on the same regions replaces the first one's result, which readers would
 * otherwise keep finding (gst_video_region_of_interest_meta_get_param returns the first match). */
static void
replace_region_param (GstVideoRegionOfInterestMeta * roi, GstStructure * result)
{
  GList *link = roi->params;

  while (link) {
    GList *next = link->next;

    if (gst_structure_has_name (link->data, gst_structure_get_name (result))) {
      gst_structure_free (link->data);
      roi->params = g_list_delete_link (roi->params, link);
    }
    link = next;
  }
  gst_video_region_of_interest_meta_add_param (roi, result);
}

gboolean
gst_mone_result_attach_regions (GstBuffer * buffer, GPtrArray * results, GPtrArray * regions,
    const GstMoneFrameStamp * stamp, const GstMoneRegionsCost * cost, GstStructure ** message)
{
  GstStructure *fields = gst_structure_new (GST_MONE_CLASSIFICATION_NAME,
      "frame", G_TYPE_UINT64, stamp->frame,
      "timestamp", G_TYPE_UINT64, stamp->timestamp,
      "stream-time", G_TYPE_UINT64, stamp->stream_time,
      "running-time", G_TYPE_UINT64, stamp->running_time,
      "duration", G_TYPE_UINT64, stamp->duration,
      "inference-region", G_TYPE_STRING, "roi-list",
      "regions-classified", G_TYPE_UINT, cost->classified,
      "regions-skipped", G_TYPE_UINT, cost->skipped,
      "gflops", G_TYPE_DOUBLE, cost->gflops,
      "latency", G_TYPE_UINT64, (guint64) cost->latency_ns,
      "latency-ms", G_TYPE_DOUBLE, cost->latency_ns * 1e-6, NULL);
  GValue list = G_VALUE_INIT, item = G_VALUE_INIT;
  GstCustomMeta *meta;

  /* The frame's fields first; the region list then goes straight into the meta's own structure
   * (gst_buffer_add_mone_meta copies what it is given: every region again). */
  meta = gst_buffer_add_mone_meta (buffer, fields);
  gst_structure_free (fields);
  if (!meta)
    return FALSE;
  gst_value_array_init (&list, results->len);
  for (guint i = 0; i < results->len; i++) {
    GstStructure *region = stamped_region (g_ptr_array_index (results, i), stamp);
    const GstMoneRegion *source = g_ptr_array_index (regions, i);

    /* This frame's box: a result carried from an earlier frame follows its region as it moves. */
    gst_mone_result_set_region (region, source);

    if (source->roi)
      replace_region_param (source->roi, gst_structure_copy (region));
#if HAVE_GST_ANALYTICS
    if (source->od_id >= 0)
      add_analytics_classification (buffer, region, source->od_id);
#endif
    g_value_init (&item, GST_TYPE_STRUCTURE);
    g_value_take_boxed (&item, region);
    gst_value_array_append_and_take_value (&list, &item);
    memset (&item, 0, sizeof item);
  }
  fields = gst_custom_meta_get_structure (meta);
  gst_structure_take_value (fields, "regions", &list);
  if (message) {
    *message = gst_structure_copy (fields);
    gst_structure_set_name (*message, GST_MONE_CLASSIFICATION_NAME);
  }
  return TRUE;
}
