/* GstAnalytics (GStreamer >= 1.24): every classified frame carries a GstAnalyticsClsMtd whose
 * classes and levels are GstMoneMeta's top-k, read back through the analytics API; with
 * inference-region=roi-list the object detections upstream put in the relation meta
 * (GstAnalyticsODMtd) are classified as regions, each result a ClsMtd the detection relates to.
 * argv: none; MONE_TEST_MODEL names the model (the shipped one). Built only where the analytics
 * library exists (Debian 13: gstreamer-analytics-1.0 from libgstreamer-plugins-bad1.0-dev).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <string.h>

#include <gst/analytics/analytics.h>
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include <mone/gstmonemeta.h>

#define WIDTH 64
#define HEIGHT 48
#define FRAMES 12

/* A grey frame with a bright rectangle whose place and size change with n, so frames differ. */
static GstBuffer *
pattern_frame (guint n)
{
  GstBuffer *buffer = gst_buffer_new_allocate (NULL, WIDTH * HEIGHT, NULL);
  GstMapInfo map;
  gst_buffer_map (buffer, &map, GST_MAP_WRITE);
  memset (map.data, 20, map.size);
  for (guint y = 4 + n % 7; y < HEIGHT - 6; y++)
    for (guint x = 8 + (3 * n) % 11; x < WIDTH - 10 + n % 5; x++)
      map.data[y * WIDTH + x] = (guint8) (120 + 9 * n + x);
  gst_buffer_unmap (buffer, &map);
  GST_BUFFER_PTS (buffer) = n * GST_SECOND / 25;
  GST_BUFFER_DURATION (buffer) = GST_SECOND / 25;
  return buffer;
}

/* The buffer's classification metadata of the analytics API; fails the test unless there is
 * exactly one. */
static GstAnalyticsClsMtd
only_cls_mtd (GstBuffer * buffer)
{
  GstAnalyticsRelationMeta *relations = gst_buffer_get_analytics_relation_meta (buffer);
  GstAnalyticsClsMtd mtd, next;
  gpointer state = NULL;

  fail_unless (relations != NULL, "no GstAnalyticsRelationMeta on a classified buffer");
  fail_unless (gst_analytics_relation_meta_iterate (relations, &state,
          gst_analytics_cls_mtd_get_mtd_type (), &mtd),
      "no GstAnalyticsClsMtd on a classified buffer");
  fail_if (gst_analytics_relation_meta_iterate (relations, &state,
          gst_analytics_cls_mtd_get_mtd_type (), &next),
      "more than one GstAnalyticsClsMtd on one buffer");
  return mtd;
}

GST_START_TEST (test_cls_mtd_equals_top_k)
{
  const gchar *model = g_getenv ("MONE_TEST_MODEL");
  gchar *launch;
  GstHarness *h;

  fail_unless (model != NULL, "MONE_TEST_MODEL is not set");
  launch = g_strdup_printf ("monefilter model=\"%s\" top-k=3", model);
  h = gst_harness_new_parse (launch);
  g_free (launch);
  gst_harness_set_src_caps_str (h, "video/x-raw,format=GRAY8,width=64,height=48,framerate=25/1");

  for (guint n = 0; n < FRAMES; n++) {
    GstBuffer *out;
    MoneClassification c;
    GstAnalyticsClsMtd mtd;

    fail_unless_equals_int (gst_harness_push (h, pattern_frame (n)), GST_FLOW_OK);
    out = gst_harness_pull (h);
    fail_unless (gst_mone_meta_read (out, &c), "frame %u has no GstMoneMeta", n);
    fail_unless_equals_int (c.top_k, 3);
    mtd = only_cls_mtd (out);
    fail_unless_equals_int (gst_analytics_cls_mtd_get_length (&mtd), c.top_k);
    for (guint i = 0; i < c.top_k; i++) {
      fail_unless_equals_string (g_quark_to_string (gst_analytics_cls_mtd_get_quark (&mtd, i)),
          c.top_labels[i]);
      fail_unless (ABS (gst_analytics_cls_mtd_get_level (&mtd, i) - c.top_scores[i]) < 1e-6,
          "frame %u, class %u: level %g, meta score %g", n, i,
          gst_analytics_cls_mtd_get_level (&mtd, i), c.top_scores[i]);
    }
    gst_buffer_unref (out);
  }
  gst_harness_teardown (h);
}

GST_END_TEST;

/* A region-list harness: GRAY8 WIDTH x HEIGHT frames, the shipped model, top-3. */
static GstHarness *
regions_harness (const gchar * object_class)
{
  gchar *launch = g_strdup_printf ("monefilter model=\"%s\" top-k=3 inference-region=roi-list%s%s",
      g_getenv ("MONE_TEST_MODEL"), object_class ? " object-class=" : "",
      object_class ? object_class : "");
  GstHarness *h = gst_harness_new_parse (launch);

  g_free (launch);
  gst_harness_set_src_caps_str (h, "video/x-raw,format=GRAY8,width=64,height=48,framerate=25/1");
  return h;
}

/* Adds a detection of `type` at (x, y, w, h) to the buffer's relation meta; returns its id. */
static guint
add_detection (GstBuffer * buffer, const gchar * type, gint x, gint y, gint w, gint h)
{
  GstAnalyticsRelationMeta *relations = gst_buffer_get_analytics_relation_meta (buffer);
  GstAnalyticsODMtd od;

  if (!relations)
    relations = gst_buffer_add_analytics_relation_meta (buffer);
  fail_unless (gst_analytics_relation_meta_add_od_mtd (relations, g_quark_from_string (type), x, y,
          w, h, 0.9f, &od));
  return od.id;
}

/* The meta's region result whose region-id is `id`; fails unless there is one. */
static const GstStructure *
listed_region (GstBuffer * buffer, gint id, MoneRegion * region, MoneClassification * c)
{
  for (guint i = 0; i < gst_mone_meta_get_region_count (buffer); i++) {
    const GstStructure *s = gst_mone_meta_get_region (buffer, i);

    fail_unless (gst_mone_region_from_structure (s, region, c), "region %u unreadable", i);
    if (region->id == id)
      return s;
  }
  fail ("no region result with id %d", id);
  return NULL;
}

/* The classification a detection relates to equals the region's top-k. */
static void
check_related_classification (GstBuffer * buffer, guint detection, const MoneClassification * c)
{
  GstAnalyticsRelationMeta *relations = gst_buffer_get_analytics_relation_meta (buffer);
  GstAnalyticsClsMtd mtd, next;
  gpointer state = NULL;

  fail_unless (gst_analytics_relation_meta_get_direct_related (relations, detection,
          GST_ANALYTICS_REL_TYPE_RELATE_TO, gst_analytics_cls_mtd_get_mtd_type (), &state, &mtd),
      "detection %u relates to no classification", detection);
  fail_if (gst_analytics_relation_meta_get_direct_related (relations, detection,
          GST_ANALYTICS_REL_TYPE_RELATE_TO, gst_analytics_cls_mtd_get_mtd_type (), &state, &next),
      "detection %u relates to two classifications", detection);
  fail_unless_equals_int (gst_analytics_cls_mtd_get_length (&mtd), c->top_k);
  for (guint i = 0; i < c->top_k; i++) {
    fail_unless_equals_string (g_quark_to_string (gst_analytics_cls_mtd_get_quark (&mtd, i)),
        c->top_labels[i]);
    fail_unless (ABS (gst_analytics_cls_mtd_get_level (&mtd, i) - c->top_scores[i]) < 1e-6);
  }
}

/* Detections of the wanted type are classified, each result listed with source od-mtd and related
 * to its detection; a detection of another type, and one outside the frame, are not. */
GST_START_TEST (test_detections_classified)
{
  GstHarness *h = regions_harness ("item");
  GstBuffer *in = pattern_frame (1), *out;
  guint a = add_detection (in, "item", 4, 6, 30, 24);
  guint b = add_detection (in, "item", -10, 20, 40, 40);        /* cut by two edges */
  guint other = add_detection (in, "person", 0, 0, 32, 32);
  guint gone = add_detection (in, "item", 100, 10, 20, 20);     /* right of the frame */
  GstAnalyticsRelationMeta *relations;
  GstAnalyticsClsMtd cls;
  gpointer state = NULL;
  MoneClassification c;
  MoneRegion region;
  const GstStructure *s;
  guint classified, skipped;

  /* A region meta for the same object outside the frame: one object skipped, not two. */
  gst_buffer_add_video_region_of_interest_meta (in, "item", 100, 10, 20, 20)->id = 9;
  fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_OK);
  out = gst_harness_pull (h);
  s = gst_buffer_get_mone_structure (out);
  fail_unless (gst_structure_get_uint (s, "regions-classified", &classified));
  fail_unless (gst_structure_get_uint (s, "regions-skipped", &skipped));
  fail_unless_equals_int (classified, 2);
  fail_unless_equals_int (skipped, 1);
  fail_unless_equals_int (gst_mone_meta_get_region_count (out), 2);

  s = listed_region (out, (gint) a, &region, &c);
  fail_unless_equals_string (gst_structure_get_string (s, "region-source"), "od-mtd");
  fail_unless_equals_string (region.type, "item");
  fail_unless (region.x == 4 && region.y == 6 && region.width == 30 && region.height == 24);
  check_related_classification (out, a, &c);

  s = listed_region (out, (gint) b, &region, &c);
  fail_unless (region.x == 0 && region.y == 20 && region.width == 30 && region.height == 28,
      "clipped box %d,%d %dx%d", region.x, region.y, region.width, region.height);
  check_related_classification (out, b, &c);

  relations = gst_buffer_get_analytics_relation_meta (out);
  fail_if (gst_analytics_relation_meta_get_direct_related (relations, other,
          GST_ANALYTICS_REL_TYPE_RELATE_TO, gst_analytics_cls_mtd_get_mtd_type (), &state, &cls),
      "a detection of a type not asked for was classified");
  state = NULL;
  fail_if (gst_analytics_relation_meta_get_direct_related (relations, gone,
          GST_ANALYTICS_REL_TYPE_RELATE_TO, gst_analytics_cls_mtd_get_mtd_type (), &state, &cls),
      "a detection outside the frame was classified");
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* A detection and a region meta with the same box give the same result; with both on one buffer
 * (a detector that adds both) the object is classified once, its result on the region meta and
 * related to the detection. */
GST_START_TEST (test_detection_equals_region_meta)
{
  GstHarness *h = regions_harness (NULL);
  GstBuffer *by_meta = pattern_frame (2), *by_detection = pattern_frame (2), *both =
      pattern_frame (2);
  MoneClassification from_meta, from_detection, from_both;
  MoneRegion region;
  GstVideoRegionOfInterestMeta *roi;
  guint detection;

  gst_buffer_add_video_region_of_interest_meta (by_meta, "item", 10, 8, 36, 30)->id = 7;
  detection = add_detection (by_detection, "item", 10, 8, 36, 30);
  roi = gst_buffer_add_video_region_of_interest_meta (both, "item", 10, 8, 36, 30);
  roi->id = 7;
  add_detection (both, "item", 10, 8, 36, 30);

  fail_unless_equals_int (gst_harness_push (h, by_meta), GST_FLOW_OK);
  by_meta = gst_harness_pull (h);
  fail_unless_equals_int (gst_harness_push (h, by_detection), GST_FLOW_OK);
  by_detection = gst_harness_pull (h);
  fail_unless_equals_int (gst_harness_push (h, both), GST_FLOW_OK);
  both = gst_harness_pull (h);

  listed_region (by_meta, 7, &region, &from_meta);
  listed_region (by_detection, (gint) detection, &region, &from_detection);
  fail_unless_equals_int (from_meta.top_class, from_detection.top_class);
  for (guint i = 0; i < from_meta.top_k; i++)
    fail_unless (ABS (from_meta.top_scores[i] - from_detection.top_scores[i]) < 1e-6);

  fail_unless_equals_int (gst_mone_meta_get_region_count (both), 1);
  fail_unless_equals_string (gst_structure_get_string (listed_region (both, 7, &region,
              &from_both), "region-source"), "roi-meta");
  roi = gst_buffer_get_video_region_of_interest_meta_id (both, 7);
  fail_unless (roi != NULL
      && gst_video_region_of_interest_meta_get_param (roi, "mone-classification") != NULL,
      "the region meta has no result");
  check_related_classification (both, detection, &from_both);
  fail_unless_equals_int (from_both.top_class, from_meta.top_class);

  gst_buffer_unref (by_meta);
  gst_buffer_unref (by_detection);
  gst_buffer_unref (both);
  gst_harness_teardown (h);
}

GST_END_TEST;

static Suite *
analytics_suite (void)
{
  Suite *s = suite_create ("monefilter-analytics");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_cls_mtd_equals_top_k);
  tcase_add_test (tc, test_detections_classified);
  tcase_add_test (tc, test_detection_equals_region_meta);
  return s;
}

GST_CHECK_MAIN (analytics);
