/* GstAnalytics output (GStreamer >= 1.24): every classified frame carries a GstAnalyticsClsMtd
 * whose classes and levels are GstMoneMeta's top-k, read back through the analytics API.
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

static Suite *
analytics_suite (void)
{
  Suite *s = suite_create ("monefilter-analytics");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_cls_mtd_equals_top_k);
  return s;
}

GST_CHECK_MAIN (analytics);
