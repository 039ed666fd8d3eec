/* libgstmonemeta: structure round trip, buffer copies, and the meta surviving elements that
 * change size and format.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <string.h>

#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>

#include <mone/gstmonemeta.h>

static const guint8 grid[12] = { 0, 1, 2, 3, 3, 2, 1, 0, 1, 1, 2, 2 };

static void
fill_example (MoneClassification * r)
{
  gst_mone_classification_init (r);
  r->frame = 7;
  r->result_frame = 6;
  r->reused = TRUE;
  r->timestamp = 3 * GST_SECOND;
  r->top_class = 4;
  r->label = "coat";
  r->top_score = 0.75;
  r->top_k = 2;
  r->top_classes[0] = 4;
  r->top_classes[1] = 2;
  r->top_labels[0] = "coat";
  r->top_labels[1] = "pullover";
  r->top_scores[0] = 0.75;
  r->top_scores[1] = 0.125;
  r->budget_auto = TRUE;
  r->budget_requested = 0.4;
  r->budget_used = 0.375;
  r->gflops = 0.5;
  r->latency_ns = 1234567;
  r->latency_ms = 1.234567;
  r->experts = 4;
  r->tokens = 12;
  r->tokens_per_expert[0] = 2;
  r->tokens_per_expert[1] = 4;
  r->tokens_per_expert[2] = 4;
  r->tokens_per_expert[3] = 2;
  r->grid_width = 4;
  r->grid_height = 3;
  r->grid_slices = 1;
  r->expert_grid = grid;
  r->expert_grid_size = sizeof (grid);
  r->scale_mode = "crop";
}

static void
check_example (const MoneClassification * r)
{
  fail_unless_equals_uint64 (r->frame, 7);
  fail_unless_equals_uint64 (r->result_frame, 6);
  fail_unless (r->reused);
  fail_unless_equals_uint64 (r->timestamp, 3 * GST_SECOND);
  fail_unless_equals_uint64 (r->running_time, GST_CLOCK_TIME_NONE);
  fail_unless_equals_int (r->top_class, 4);
  fail_unless_equals_string (r->label, "coat");
  fail_unless_equals_float (r->top_score, 0.75);
  fail_unless_equals_int (r->top_k, 2);
  fail_unless_equals_int (r->top_classes[1], 2);
  fail_unless_equals_string (r->top_labels[1], "pullover");
  fail_unless_equals_float (r->top_scores[1], 0.125);
  fail_unless (r->budget_auto);
  fail_unless_equals_float (r->budget_requested, 0.4);
  fail_unless_equals_float (r->budget_used, 0.375);
  fail_unless_equals_float (r->gflops, 0.5);
  fail_unless_equals_uint64 (r->latency_ns, 1234567);
  fail_unless_equals_int (r->experts, 4);
  fail_unless_equals_int (r->tokens_per_expert[1], 4);
  fail_unless_equals_int (r->grid_width, 4);
  fail_unless_equals_int (r->grid_height, 3);
  fail_unless_equals_int (r->expert_grid_size, sizeof (grid));
  fail_unless (memcmp (r->expert_grid, grid, sizeof (grid)) == 0);
  fail_unless (r->expert_grid != grid, "grid not copied into the structure");
  fail_unless_equals_string (r->scale_mode, "crop");
}

GST_START_TEST (test_structure_round_trip)
{
  MoneClassification in, out;
  GstStructure *s;

  fill_example (&in);
  s = gst_mone_classification_to_structure (&in);
  fail_unless (gst_structure_has_name (s, "mone-classification"));
  fail_unless (gst_mone_classification_from_structure (s, &out));
  check_example (&out);

  /* Incomplete or inconsistent structures are refused. */
  gst_structure_set (s, "tokens", G_TYPE_INT, 13, NULL);
  fail_if (gst_mone_classification_from_structure (s, &out));
  gst_structure_remove_field (s, "label");
  fail_if (gst_mone_classification_from_structure (s, &out));
  gst_structure_set_name (s, "something-else");
  fail_if (gst_mone_classification_from_structure (s, &out));
  gst_structure_free (s);
}

GST_END_TEST;

GST_START_TEST (test_buffer_meta)
{
  MoneClassification in, out;
  GstStructure *s;
  GstBuffer *buffer = gst_buffer_new_allocate (NULL, 16, NULL), *copy;

  fail_if (gst_mone_meta_read (buffer, &out));
  fail_unless (gst_buffer_get_mone_meta (buffer) == NULL);
  fill_example (&in);
  s = gst_mone_classification_to_structure (&in);
  fail_unless (gst_buffer_add_mone_meta (buffer, s) != NULL);
  /* A second add replaces: one meta per buffer. */
  fail_unless (gst_buffer_add_mone_meta (buffer, s) != NULL);
  gst_structure_free (s);
  guint n = 0;
  gpointer state = NULL;
  while (gst_buffer_iterate_meta (buffer, &state))
    n++;
  fail_unless_equals_int (n, 1);

  /* Re-adding the meta's own structure (read back from the buffer) keeps every field. */
  fail_unless (gst_buffer_add_mone_meta (buffer, gst_buffer_get_mone_structure (buffer)) != NULL);

  copy = gst_buffer_copy (buffer);
  gst_buffer_unref (buffer);
  fail_unless (gst_mone_meta_read (copy, &out));
  check_example (&out);
  fail_unless (gst_custom_meta_has_name (gst_buffer_get_mone_meta (copy), GST_MONE_META_NAME));
  gst_buffer_unref (copy);
}

GST_END_TEST;

/* videoscale and videoconvert keep the meta (it has no tags). */
GST_START_TEST (test_meta_survives_conversion)
{
  GstHarness *h = gst_harness_new_parse ("videoconvert ! videoscale");
  MoneClassification in, out;
  GstStructure *s;
  GstBuffer *buffer = gst_buffer_new_allocate (NULL, 64 * 48 * 3, NULL), *result;

  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=64,height=48,framerate=30/1");
  gst_harness_set_sink_caps_str (h, "video/x-raw,format=I420,width=32,height=24");
  gst_buffer_memset (buffer, 0, 128, 64 * 48 * 3);
  fill_example (&in);
  s = gst_mone_classification_to_structure (&in);
  gst_buffer_add_mone_meta (buffer, s);
  gst_structure_free (s);
  result = gst_harness_push_and_pull (h, buffer);
  fail_unless (result != NULL);
  fail_unless (gst_mone_meta_read (result, &out));
  check_example (&out);
  gst_buffer_unref (result);
  gst_harness_teardown (h);
}

GST_END_TEST;

static Suite *
monemeta_suite (void)
{
  Suite *s = suite_create ("gstmonemeta");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_structure_round_trip);
  tcase_add_test (tc, test_buffer_meta);
  tcase_add_test (tc, test_meta_survives_conversion);
  return s;
}

GST_CHECK_MAIN (monemeta);
