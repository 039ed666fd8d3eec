/* gst-mone: monefilter's regions of interest.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmoneregions.h"

#if HAVE_GST_ANALYTICS
#include <gst/analytics/analytics.h>
#endif

/* What is remembered of a region id between frames. */
typedef struct
{
  GstStructure *result;         /* latest result, or NULL */
  guint frames_since;           /* frames since it was computed */
  guint64 seen;                 /* the frame serial it last appeared on */
  guint index;                  /* its entry in the current frame's array */
} RegionState;

struct _GstMoneRegions
{
  GHashTable *states;           /* region id (GINT_TO_POINTER) -> RegionState */
  GHashTable *shared_ids;       /* ids two regions of one frame had: they name no object */
  GArray *current;              /* GstMoneRegion, the current frame's */
  GPtrArray *untracked_results; /* results of this frame's untracked regions */
  guint64 serial;               /* frames collected */
};

static void
region_state_free (gpointer data)
{
  RegionState *state = data;

  if (state->result)
    gst_structure_free (state->result);
  g_free (state);
}

GstMoneRegions *
gst_mone_regions_new (void)
{
  GstMoneRegions *regions = g_new0 (GstMoneRegions, 1);

  regions->states = g_hash_table_new_full (NULL, NULL, NULL, region_state_free);
  regions->shared_ids = g_hash_table_new (NULL, NULL);
  regions->current = g_array_new (FALSE, FALSE, sizeof (GstMoneRegion));
  regions->untracked_results = g_ptr_array_new_with_free_func ((GDestroyNotify)
      gst_structure_free);
  return regions;
}

void
gst_mone_regions_free (GstMoneRegions * regions)
{
  if (!regions)
    return;
  g_hash_table_destroy (regions->states);
  g_hash_table_destroy (regions->shared_ids);
  g_array_free (regions->current, TRUE);
  g_ptr_array_free (regions->untracked_results, TRUE);
  g_free (regions);
}

void
gst_mone_regions_reset (GstMoneRegions * regions)
{
  g_hash_table_remove_all (regions->states);
  g_hash_table_remove_all (regions->shared_ids);
  g_array_set_size (regions->current, 0);
  g_ptr_array_set_size (regions->untracked_results, 0);
}

static gboolean
type_wanted (GQuark type, const GQuark * types, guint n_types)
{
  if (n_types == 0)
    return TRUE;
  for (guint i = 0; i < n_types; i++)
    if (types[i] == type)
      return TRUE;
  return FALSE;
}

/* [start, start + length) clipped to [0, limit), in 64 bits: detectors may put boxes anywhere. */
static gint
clip_span (gint64 start, gint64 length, gint limit, gint * clipped_start)
{
  gint64 a = CLAMP (start, 0, (gint64) limit);
  gint64 b = CLAMP (start + MAX (length, 0), 0, (gint64) limit);

  *clipped_start = (gint) a;
  return (gint) (b - a);
}

/* Appends the region with box (x, y, w, h) clipped to the frame; FALSE (nothing appended) when
 * nothing of it is inside. */
static gboolean
append_clipped (GstMoneRegions * regions, GstMoneRegion * region, gint64 x, gint64 y, gint64 w,
    gint64 h, gint frame_width, gint frame_height)
{
  region->width = clip_span (x, w, frame_width, &region->x);
  region->height = clip_span (y, h, frame_height, &region->y);
  if (region->width <= 0 || region->height <= 0)
    return FALSE;
  g_array_append_val (regions->current, *region);
  return TRUE;
}

/* Looks the region's id up. A second region with the same id on this frame makes both untracked,
 * and the id too for the rest of the stream: it numbers no object (a detector that numbers nothing
 * leaves every id at 0), so a lone region with it on a later frame is no earlier one's either. */
static void
track (GstMoneRegions * regions, GstMoneRegion * region, guint index, guint interval)
{
  gpointer key = GINT_TO_POINTER (region->id);
  RegionState *state = g_hash_table_lookup (regions->states, key);

  if (g_hash_table_contains (regions->shared_ids, key)) {
    region->tracked = FALSE;
    region->due = TRUE;
    return;
  }
  if (!state) {
    state = g_new0 (RegionState, 1);
    g_hash_table_insert (regions->states, key, state);
  } else if (state->seen == regions->serial) {
    GstMoneRegion *first = &g_array_index (regions->current, GstMoneRegion, state->index);
    first->tracked = FALSE;
    first->due = TRUE;
    first->last = NULL;
    region->tracked = FALSE;
    region->due = TRUE;
    g_hash_table_add (regions->shared_ids, key);
    g_hash_table_remove (regions->states, key); /* and the result kept under it */
    return;
  }
  state->seen = regions->serial;
  state->index = index;
  region->tracked = TRUE;
  region->last = state->result;
  /* frames_since counts the frames after the one it was computed on. */
  region->due = !state->result || state->frames_since >= MAX (interval, 1);
}

#if HAVE_GST_ANALYTICS
/* The buffer's region meta with exactly this box and type, or NULL. */
static GstVideoRegionOfInterestMeta *
same_region_meta (GstBuffer * buffer, GQuark type, gint x, gint y, gint w, gint h)
{
  GstVideoRegionOfInterestMeta *roi;
  gpointer iter = NULL;

  while ((roi = (GstVideoRegionOfInterestMeta *) gst_buffer_iterate_meta_filtered (buffer, &iter,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)))
    if (roi->roi_type == type && (gint64) roi->x == x && (gint64) roi->y == y
        && (gint64) roi->w == w && (gint64) roi->h == h)
      return roi;
  return NULL;
}

/* The object detections of the buffer's analytics relation meta: one a region meta describes
 * (same box and type) is that region's object, counted once; the others become regions of their
 * own. */
static void
collect_detections (GstMoneRegions * regions, GstBuffer * buffer, gint frame_width,
    gint frame_height, const GQuark * types, guint n_types, guint * skipped)
{
  GstAnalyticsRelationMeta *relations = gst_buffer_get_analytics_relation_meta (buffer);
  GstAnalyticsODMtd od;
  gpointer state = NULL;

  if (!relations)
    return;
  while (gst_analytics_relation_meta_iterate (relations, &state,
          gst_analytics_od_mtd_get_mtd_type (), &od)) {
    GstMoneRegion region = { 0, };
    GstVideoRegionOfInterestMeta *same;
    GQuark type = gst_analytics_od_mtd_get_obj_type (&od);
    gint x, y, w, h;
    gfloat confidence;

    if (!type_wanted (type, types, n_types)
        || !gst_analytics_od_mtd_get_location (&od, &x, &y, &w, &h, &confidence))
      continue;
    if ((same = same_region_meta (buffer, type, x, y, w, h))) {
      /* That region's object: its entry (none if it was skipped or counted) gets the detection. */
      for (guint i = 0; i < regions->current->len; i++)
        if (g_array_index (regions->current, GstMoneRegion, i).roi == same)
          g_array_index (regions->current, GstMoneRegion, i).od_id = (gint) od.id;
      continue;
    }
    region.od_id = (gint) od.id;
    region.id = (gint) od.id;
    region.type = type;
    region.due = TRUE;
    if (!append_clipped (regions, &region, x, y, w, h, frame_width, frame_height))
      (*skipped)++;
  }
}
#endif

GArray *
gst_mone_regions_collect (GstMoneRegions * regions, GstBuffer * buffer, gint frame_width,
    gint frame_height, const GQuark * types, guint n_types, guint interval, guint * skipped)
{
  GstVideoRegionOfInterestMeta *roi;
  gpointer iter = NULL;

  regions->serial++;
  g_array_set_size (regions->current, 0);
  g_ptr_array_set_size (regions->untracked_results, 0);
  *skipped = 0;
  while ((roi = (GstVideoRegionOfInterestMeta *) gst_buffer_iterate_meta_filtered (buffer, &iter,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    GstMoneRegion region = { 0, };

    if (!type_wanted (roi->roi_type, types, n_types))
      continue;
    region.roi = roi;
    region.od_id = -1;
    region.id = roi->id;
    region.type = roi->roi_type;
    if (!append_clipped (regions, &region, roi->x, roi->y, roi->w, roi->h, frame_width,
            frame_height)) {
      (*skipped)++;
      continue;
    }
    track (regions, &g_array_index (regions->current, GstMoneRegion, regions->current->len - 1),
        regions->current->len - 1, interval);
  }
#if HAVE_GST_ANALYTICS
  collect_detections (regions, buffer, frame_width, frame_height, types, n_types, skipped);
#endif
  return regions->current;
}

void
gst_mone_regions_classified (GstMoneRegions * regions, guint i, GstStructure * result)
{
  GstMoneRegion *region = &g_array_index (regions->current, GstMoneRegion, i);
  RegionState *state;

  region->last = result;
  if (!region->tracked) {
    g_ptr_array_add (regions->untracked_results, result);
    return;
  }
  state = g_hash_table_lookup (regions->states, GINT_TO_POINTER (region->id));
  if (state->result)
    gst_structure_free (state->result);
  state->result = result;
  state->frames_since = 0;
}

static gboolean
absent (gpointer key, gpointer value, gpointer user_data)
{
  const RegionState *state = value;

  return state->seen != *(const guint64 *) user_data;
}

void
gst_mone_regions_end_frame (GstMoneRegions * regions)
{
  GHashTableIter iter;
  gpointer value;

  g_ptr_array_set_size (regions->untracked_results, 0);
  g_hash_table_foreach_remove (regions->states, absent, &regions->serial);
  g_hash_table_iter_init (&iter, regions->states);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    RegionState *state = value;
    if (state->result)
      state->frames_since++;
  }
}
