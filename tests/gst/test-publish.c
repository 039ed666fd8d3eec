/* monepublish: JSON lines match the meta of their buffer; two writers share one file; MQTT against
 * a real mosquitto broker on 127.0.0.1 (no loss while it is up; across a restart the stream never
 * waits and the gap equals the reported drop count).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/gst.h>
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/video/video.h>
#include <json-glib/json-glib.h>
#include <mone/gstmonemeta.h>
#include <glib/gstdio.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef HAVE_MOSQUITTO
#include <dlfcn.h>
#include <mosquitto.h>
#include <netdb.h>
#endif

#define FRAME_NS (GST_SECOND / 100)     /* 10 ms frames: the restart test's blocking bar */

/* Sanitizer and valgrind runs slow every call several times over (their test setups set
 * MONE_TIMING_SLACK), so a time bar stretches by that factor there; plain runs keep the bar. */
static double
timing_slack (void)
{
  const gchar *text = g_getenv ("MONE_TIMING_SLACK");
  double slack = text ? g_ascii_strtod (text, NULL) : 1.0;

  return slack >= 1.0 ? slack : 1.0;
}

static const gchar *labels[] = { "zero", "one", "two \"quoted\"\nline", "three" };

/* A buffer carrying a meta whose fields depend on `i`. */
static GstBuffer *
make_buffer (guint64 i)
{
  MoneClassification r;
  guint8 grid[12];
  GstStructure *s;
  GstBuffer *buf = gst_buffer_new_allocate (NULL, 16, NULL);
  guint k;

  gst_mone_classification_init (&r);
  r.frame = r.result_frame = i;
  r.timestamp = i * FRAME_NS;
  r.duration = FRAME_NS;
  r.top_class = (gint) (i % 4);
  r.label = labels[i % 4];
  r.top_score = 0.5 + (i % 7) / 100.0;
  r.top_k = 3;
  for (k = 0; k < 3; k++) {
    r.top_classes[k] = (gint) ((i + k) % 4);
    r.top_labels[k] = labels[(i + k) % 4];
    r.top_scores[k] = r.top_score / (k + 1);
  }
  r.budget_requested = 0.5;
  r.budget_used = 0.25 + (i % 3) / 10.0;
  r.gflops = 1.5 + i / 1000.0;
  r.latency_ns = 1000000 + i;
  r.latency_ms = r.latency_ns / 1e6;
  r.experts = 3;
  r.tokens = 12;
  r.tokens_per_expert[0] = 4;
  r.tokens_per_expert[1] = 4;
  r.tokens_per_expert[2] = 4;
  r.grid_width = 4;
  r.grid_height = 3;
  r.grid_slices = 1;
  for (k = 0; k < 12; k++)
    grid[k] = (k + i) % 3;
  r.expert_grid = grid;
  r.expert_grid_size = 12;
  r.scale_mode = "stretch";
  r.content_width = r.model_width = 28;
  r.content_height = r.model_height = 28;
  r.model_input_width = r.model_input_height = 28;
  s = gst_mone_classification_to_structure (&r);
  gst_buffer_add_mone_meta (buf, s);
  gst_structure_free (s);
  GST_BUFFER_PTS (buf) = i * FRAME_NS;
  GST_BUFFER_DURATION (buf) = FRAME_NS;
  return buf;
}

/* Checks one published object against the meta of the buffer it came from. */
static void
check_object_matches (JsonObject * o, GstBuffer * buf)
{
  MoneClassification r;
  JsonArray *a;
  guint k;

  fail_unless (gst_mone_meta_read (buf, &r), "test buffer has no meta");
  fail_unless (json_object_get_boolean_member (o, "classified"));
  fail_unless_equals_int64 (json_object_get_int_member (o, "pts"), GST_BUFFER_PTS (buf));
  fail_unless (json_object_get_null_member (o, "dts"));
  fail_unless_equals_int64 (json_object_get_int_member (o, "duration"), GST_BUFFER_DURATION (buf));
  fail_unless_equals_int64 (json_object_get_int_member (o, "meta-frame"), r.frame);
  fail_unless_equals_int (json_object_get_int_member (o, "class-id"), r.top_class);
  fail_unless_equals_string (json_object_get_string_member (o, "label"), r.label);
  fail_unless_equals_float (json_object_get_double_member (o, "score"), r.top_score);
  a = json_object_get_array_member (o, "top-k");
  fail_unless_equals_int (json_array_get_length (a), r.top_k);
  for (k = 0; k < r.top_k; k++) {
    JsonObject *e = json_array_get_object_element (a, k);
    fail_unless_equals_int (json_object_get_int_member (e, "class-id"), r.top_classes[k]);
    fail_unless_equals_string (json_object_get_string_member (e, "label"), r.top_labels[k]);
    fail_unless_equals_float (json_object_get_double_member (e, "score"), r.top_scores[k]);
  }
  fail_unless_equals_float (json_object_get_double_member (o, "budget-used"), r.budget_used);
  fail_unless_equals_float (json_object_get_double_member (o, "gflops"), r.gflops);
  fail_unless_equals_int64 (json_object_get_int_member (o, "latency-ns"), r.latency_ns);
  a = json_object_get_array_member (json_object_get_object_member (o, "grid"), "experts");
  fail_unless_equals_int (json_array_get_length (a), r.expert_grid_size);
  for (k = 0; k < r.expert_grid_size; k++)
    fail_unless_equals_int (json_array_get_int_element (a, k), r.expert_grid[k]);
}

static JsonObject *
parse_object (JsonParser * parser, const gchar * text, gssize len)
{
  GError *err = NULL;
  JsonNode *root;

  fail_unless (json_parser_load_from_data (parser, text, len, &err), "line does not parse: %s",
      err ? err->message : "");
  root = json_parser_get_root (parser);
  fail_unless (JSON_NODE_HOLDS_OBJECT (root));
  return json_node_get_object (root);
}

static gchar *
temp_path (void)
{
  gchar *path = NULL;
  gint fd = g_file_open_tmp ("monepublish-XXXXXX.jsonl", &path, NULL);
  fail_unless (fd >= 0);
  close (fd);
  g_unlink (path);
  return path;
}

static GstHarness *
file_harness (const gchar * path)
{
  gchar *desc = g_strdup_printf ("monepublish file-path=\"%s\"", path);
  GstHarness *h = gst_harness_new_parse (desc);
  g_free (desc);
  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=4,height=4,framerate=100/1");
  return h;
}

GST_START_TEST (test_lines_match_meta)
{
  gchar *path = temp_path ();
  GstHarness *h = file_harness (path);
  GPtrArray *sent = g_ptr_array_new_with_free_func ((GDestroyNotify) gst_buffer_unref);
  JsonParser *parser = json_parser_new ();
  gchar *contents, **lines;
  guint i, n = 200;

  for (i = 0; i < n; i++) {
    GstBuffer *buf = make_buffer (i);
    g_ptr_array_add (sent, gst_buffer_ref (buf));
    fail_unless_equals_int (gst_harness_push (h, buf), GST_FLOW_OK);
    gst_buffer_unref (gst_harness_pull (h));
  }
  gst_harness_teardown (h);

  fail_unless (g_file_get_contents (path, &contents, NULL, NULL));
  lines = g_strsplit (contents, "\n", -1);
  fail_unless_equals_int (g_strv_length (lines), n + 1);        /* last is after the final newline */
  for (i = 0; i < n; i++) {
    JsonObject *o = parse_object (parser, lines[i], -1);
    fail_unless_equals_int64 (json_object_get_int_member (o, "frame"), i);
    fail_unless (json_object_get_string_member (o, "stream-id") != NULL);
    check_object_matches (o, g_ptr_array_index (sent, i));
  }
  g_strfreev (lines);
  g_free (contents);
  g_object_unref (parser);
  g_ptr_array_unref (sent);
  g_unlink (path);
  g_free (path);
}

GST_END_TEST;

GST_START_TEST (test_unclassified_buffer)
{
  gchar *path = temp_path ();
  GstHarness *h = file_harness (path);
  JsonParser *parser = json_parser_new ();
  gchar *contents;
  JsonObject *o;

  gst_harness_push (h, gst_buffer_new_allocate (NULL, 16, NULL));
  gst_buffer_unref (gst_harness_pull (h));
  gst_harness_teardown (h);
  fail_unless (g_file_get_contents (path, &contents, NULL, NULL));
  o = parse_object (parser, contents, -1);
  fail_unless (!json_object_get_boolean_member (o, "classified"));
  fail_unless (!json_object_has_member (o, "label"));
  g_free (contents);
  g_object_unref (parser);
  g_unlink (path);
  g_free (path);
}

GST_END_TEST;

/* monefilter inference-region=roi-list upstream: a line lists every region result of its buffer,
 * each with its region and the same fields as the region's meta entry. */
GST_START_TEST (test_region_lines_match_meta)
{
  gchar *path = temp_path ();
  gchar *desc = g_strdup_printf ("monefilter model=\"%s\" threads=1 inference-region=roi-list "
      "! monepublish file-path=\"%s\"", g_getenv ("MONE_TEST_MODEL"), path);
  GstHarness *h = gst_harness_new_parse (desc);
  JsonParser *parser = json_parser_new ();
  GstBuffer *sent[3];
  gchar *contents, **lines;

  fail_unless (g_getenv ("MONE_TEST_MODEL") != NULL, "MONE_TEST_MODEL is not set");
  gst_harness_set_src_caps_str (h, "video/x-raw,format=GRAY8,width=64,height=48,framerate=30/1");
  for (guint i = 0; i < G_N_ELEMENTS (sent); i++) {
    GstBuffer *in = gst_buffer_new_allocate (NULL, 64 * 48, NULL);
    gst_buffer_memset (in, 0, (guint8) (40 * i), 64 * 48);
    GST_BUFFER_PTS (in) = i * FRAME_NS;
    for (guint k = 0; k <= i; k++)
      gst_buffer_add_video_region_of_interest_meta (in, "item", 10 * k, 5 * k, 30, 30)->id =
          (gint) k;
    fail_unless_equals_int (gst_harness_push (h, in), GST_FLOW_OK);
    sent[i] = gst_harness_pull (h);
  }
  gst_harness_teardown (h);

  fail_unless (g_file_get_contents (path, &contents, NULL, NULL));
  lines = g_strsplit (contents, "\n", -1);
  fail_unless_equals_int (g_strv_length (lines), G_N_ELEMENTS (sent) + 1);
  for (guint i = 0; i < G_N_ELEMENTS (sent); i++) {
    JsonObject *o = parse_object (parser, lines[i], -1);
    JsonArray *regions = json_object_get_array_member (o, "regions");

    fail_unless (json_object_get_boolean_member (o, "classified"));
    fail_unless_equals_string (json_object_get_string_member (o, "inference-region"), "roi-list");
    fail_unless_equals_int (json_array_get_length (regions),
        gst_mone_meta_get_region_count (sent[i]));
    fail_unless_equals_int (json_array_get_length (regions), i + 1);
    for (guint k = 0; k <= i; k++) {
      JsonObject *e = json_array_get_object_element (regions, k);
      JsonObject *box = json_object_get_object_member (e, "region");
      MoneClassification r;
      MoneRegion region;

      fail_unless (gst_mone_region_from_structure (gst_mone_meta_get_region (sent[i], k),
              &region, &r));
      fail_unless_equals_int (json_object_get_int_member (e, "region-id"), region.id);
      fail_unless_equals_string (json_object_get_string_member (e, "region-type"), "item");
      fail_unless_equals_float (json_object_get_double_member (box, "x"), region.x);
      fail_unless_equals_float (json_object_get_double_member (box, "width"), region.width);
      fail_unless_equals_string (json_object_get_string_member (e, "label"), r.label);
      fail_unless_equals_float (json_object_get_double_member (e, "score"), r.top_score);
      fail_unless_equals_float (json_object_get_double_member (e, "gflops"), r.gflops);
    }
    gst_buffer_unref (sent[i]);
  }
  g_strfreev (lines);
  g_free (contents);
  g_object_unref (parser);
  g_unlink (path);
  g_free (path);
  g_free (desc);
}

GST_END_TEST;

typedef struct
{
  GstHarness *h;
  guint n;
} Writer;

static gpointer
writer_thread (gpointer data)
{
  Writer *w = data;
  guint i;
  for (i = 0; i < w->n; i++) {
    gst_harness_push (w->h, make_buffer (i));
    gst_buffer_unref (gst_harness_pull (w->h));
  }
  return NULL;
}

/* Two tee branches (here two elements on two threads) appending to one file: no torn lines. */
GST_START_TEST (test_two_writers_one_file)
{
  gchar *path = temp_path ();
  Writer w[2];
  GThread *t[2];
  JsonParser *parser = json_parser_new ();
  gchar *contents, **lines;
  guint i, n = 3000, per_frame[3000] = { 0 };

  for (i = 0; i < 2; i++) {
    w[i].h = file_harness (path);
    w[i].n = n;
  }
  for (i = 0; i < 2; i++)
    t[i] = g_thread_new ("writer", writer_thread, &w[i]);
  for (i = 0; i < 2; i++) {
    g_thread_join (t[i]);
    gst_harness_teardown (w[i].h);
  }
  fail_unless (g_file_get_contents (path, &contents, NULL, NULL));
  lines = g_strsplit (contents, "\n", -1);
  fail_unless_equals_int (g_strv_length (lines), 2 * n + 1);
  for (i = 0; i < 2 * n; i++) {
    JsonObject *o = parse_object (parser, lines[i], -1);
    per_frame[json_object_get_int_member (o, "frame")]++;
  }
  for (i = 0; i < n; i++)
    fail_unless_equals_int (per_frame[i], 2);
  g_strfreev (lines);
  g_free (contents);
  g_object_unref (parser);
  g_unlink (path);
  g_free (path);
}

GST_END_TEST;

#ifdef HAVE_MOSQUITTO
/* ---- a real broker ---- */

typedef struct
{
  GPid pid;
  gint port;
  gchar *dir;
  gchar *conf;
} Broker;

static gint
free_port (void)
{
  struct sockaddr_in a = { 0 };
  socklen_t len = sizeof a;
  int fd = socket (AF_INET, SOCK_STREAM, 0);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  fail_unless (bind (fd, (struct sockaddr *) &a, sizeof a) == 0);
  fail_unless (getsockname (fd, (struct sockaddr *) &a, &len) == 0);
  close (fd);
  return ntohs (a.sin_port);
}

static gboolean
port_open (gint port)
{
  struct sockaddr_in a = { 0 };
  int fd = socket (AF_INET, SOCK_STREAM, 0);
  gboolean ok;
  a.sin_family = AF_INET;
  a.sin_port = htons (port);
  a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  ok = connect (fd, (struct sockaddr *) &a, sizeof a) == 0;
  close (fd);
  return ok;
}

static void
broker_start (Broker * b)
{
  const gchar *exe = g_getenv ("MOSQUITTO") ? g_getenv ("MOSQUITTO") : "/usr/sbin/mosquitto";
  gchar *argv[] = { (gchar *) exe, "-c", b->conf, NULL };
  GError *err = NULL;
  gint i;

  fail_unless (g_spawn_async (NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD |
          G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, &b->pid, &err),
      "cannot start %s: %s", exe, err ? err->message : "");
  for (i = 0; i < 500 && !port_open (b->port); i++)
    g_usleep (10000);
  fail_unless (port_open (b->port), "broker did not listen on %d", b->port);
}

static void
broker_stop (Broker * b)
{
  int status;
  /* SIGTERM: the broker saves its persistence file (the subscriber's queued messages) on exit */
  kill (b->pid, SIGTERM);
  waitpid (b->pid, &status, 0);
  g_spawn_close_pid (b->pid);
}

static void
broker_init (Broker * b)
{
  gchar *text;
  b->port = free_port ();
  b->dir = g_dir_make_tmp ("monepublish-broker-XXXXXX", NULL);
  b->conf = g_build_filename (b->dir, "mosquitto.conf", NULL);
  /* persistence + a non-clean subscriber session: messages published while the subscriber is
   * reconnecting after a restart wait for it, so any gap it sees is the publisher's doing */
  text = g_strdup_printf ("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\n"
      "persistence_location %s/\nautosave_interval 0\nmax_queued_messages 0\n"
      "max_inflight_messages 0\n", b->port, b->dir);
  fail_unless (g_file_set_contents (b->conf, text, -1, NULL));
  g_free (text);
}

static void
broker_clear (Broker * b)
{
  gchar *cmd = g_strdup_printf ("rm -rf '%s'", b->dir);
  if (system (cmd) != 0)
    GST_WARNING ("could not remove %s", b->dir);
  g_free (cmd);
  g_free (b->dir);
  g_free (b->conf);
}

typedef struct
{
  GMutex lock;
  GHashTable *frames;           /* frame -> 1 */
  guint messages;
  gboolean parse_failed;
  GPtrArray *sent;              /* the buffers, to check each message against its meta */
  gboolean subscribed;
} Received;

static void
sub_on_connect (struct mosquitto *mosq, void *obj, int rc)
{
  if (rc == 0)
    mosquitto_subscribe (mosq, NULL, "mone/test", 1);
}

static void
sub_on_subscribe (struct mosquitto *mosq, void *obj, int mid, int n, const int *granted)
{
  Received *r = obj;
  g_mutex_lock (&r->lock);
  r->subscribed = TRUE;
  g_mutex_unlock (&r->lock);
}

static void
sub_on_message (struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg)
{
  Received *r = obj;
  JsonParser *parser = json_parser_new ();
  GError *err = NULL;

  g_mutex_lock (&r->lock);
  r->messages++;
  if (json_parser_load_from_data (parser, msg->payload, msg->payloadlen, &err)) {
    JsonObject *o = json_node_get_object (json_parser_get_root (parser));
    guint64 frame = json_object_get_int_member (o, "frame");
    if (frame < r->sent->len) {
      /* the check's fail_unless would abort this network thread: compare on the label only here,
       * all fields in test_lines_match_meta, which shares the builder */
      MoneClassification m;
      if (!gst_mone_meta_read (g_ptr_array_index (r->sent, frame), &m)
          || g_strcmp0 (m.label, json_object_get_string_member (o, "label")) != 0
          || json_object_get_int_member (o, "meta-frame") != (gint64) m.frame)
        r->parse_failed = TRUE;
    }
    g_hash_table_add (r->frames, GSIZE_TO_POINTER (frame + 1));
  } else {
    r->parse_failed = TRUE;
    g_clear_error (&err);
  }
  g_mutex_unlock (&r->lock);
  g_object_unref (parser);
}

static struct mosquitto *
subscriber_new (Broker * b, Received * r)
{
  struct mosquitto *m = mosquitto_new ("monepublish-test-sub", false, r);
  gint i;
  gboolean ok = FALSE;

  mosquitto_connect_callback_set (m, sub_on_connect);
  mosquitto_subscribe_callback_set (m, sub_on_subscribe);
  mosquitto_message_callback_set (m, sub_on_message);
  mosquitto_reconnect_delay_set (m, 1, 1, false);
  fail_unless_equals_int (mosquitto_connect (m, "127.0.0.1", b->port, 10), MOSQ_ERR_SUCCESS);
  fail_unless_equals_int (mosquitto_loop_start (m), MOSQ_ERR_SUCCESS);
  for (i = 0; i < 500 && !ok; i++) {
    g_usleep (10000);
    g_mutex_lock (&r->lock);
    ok = r->subscribed;
    g_mutex_unlock (&r->lock);
  }
  fail_unless (ok, "subscriber not subscribed");
  return m;
}

static void
received_init (Received * r, guint n)
{
  guint i;
  g_mutex_init (&r->lock);
  r->frames = g_hash_table_new (NULL, NULL);
  r->sent = g_ptr_array_new_with_free_func ((GDestroyNotify) gst_buffer_unref);
  for (i = 0; i < n; i++)
    g_ptr_array_add (r->sent, make_buffer (i));
  r->messages = 0;
  r->parse_failed = FALSE;
  r->subscribed = FALSE;
}

static guint
received_unique (Received * r)
{
  guint n;
  g_mutex_lock (&r->lock);
  n = g_hash_table_size (r->frames);
  g_mutex_unlock (&r->lock);
  return n;
}

static guint
wait_for_unique (Received * r, guint want, gint64 timeout_us)
{
  gint64 end = g_get_monotonic_time () + timeout_us;
  while (received_unique (r) < want && g_get_monotonic_time () < end)
    g_usleep (20000);
  return received_unique (r);
}

static void
get_counts (GstHarness * h, guint64 * published, guint64 * dropped)
{
  GstElement *e = gst_harness_find_element (h, "monepublish");
  g_object_get (e, "published", published, "dropped", dropped, NULL);
  gst_object_unref (e);
}

static GstHarness *
mqtt_harness (Broker * b, guint max_queue)
{
  gchar *desc = g_strdup_printf ("monepublish method=mqtt host=127.0.0.1 port=%d "
      "topic=mone/test client-id=monepublish-test max-queue=%u", b->port, max_queue);
  GstHarness *h = gst_harness_new_parse (desc);
  g_free (desc);
  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=4,height=4,framerate=100/1");
  return h;
}

/* What an MQTT test started: the subscriber, the broker and what was received. */
static void
mqtt_test_clear (struct mosquitto *sub, Broker * b, Received * r)
{
  mosquitto_disconnect (sub);
  mosquitto_loop_stop (sub, false);
  mosquitto_destroy (sub);
  broker_stop (b);
  broker_clear (b);
  g_ptr_array_unref (r->sent);
  g_hash_table_unref (r->frames);
}

GST_START_TEST (test_mqtt_no_loss)
{
  Broker b;
  Received r;
  struct mosquitto *sub;
  GstHarness *h;
  guint i, n = 10000, got;
  guint64 published = 0, dropped = 0;

  broker_init (&b);
  broker_start (&b);
  received_init (&r, n);
  sub = subscriber_new (&b, &r);
  h = mqtt_harness (&b, 20000);
  for (i = 0; i < n; i++) {
    fail_unless_equals_int (gst_harness_push (h, gst_buffer_ref (g_ptr_array_index (r.sent, i))),
        GST_FLOW_OK);
    gst_buffer_unref (gst_harness_pull (h));
  }
  got = wait_for_unique (&r, n, 30 * G_USEC_PER_SEC);
  get_counts (h, &published, &dropped);
  GST_INFO ("mqtt no-loss: sent %u received %u unique (%u messages) published %" G_GUINT64_FORMAT
      " dropped %" G_GUINT64_FORMAT, n, got, r.messages, published, dropped);
  g_print ("mqtt no-loss: sent %u, received %u unique, lost %u, dropped %" G_GUINT64_FORMAT "\n",
      n, got, n - got, dropped);
  fail_unless_equals_int (got, n);
  fail_unless_equals_int64 (dropped, 0);
  fail_unless (!r.parse_failed, "a message did not parse or match its meta");
  gst_harness_teardown (h);
  mqtt_test_clear (sub, &b, &r);
}

GST_END_TEST;

GST_START_TEST (test_mqtt_broker_restart)
{
  Broker b;
  Received r;
  struct mosquitto *sub;
  GstHarness *h;
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  guint i, n = 1000, got, warnings = 0, recovered = 0, slow_pushes = 0;
  guint64 published = 0, dropped = 0, max_push_ns = 0, recovered_count = 0;
  gint64 start = g_get_monotonic_time ();

  broker_init (&b);
  broker_start (&b);
  received_init (&r, n);
  sub = subscriber_new (&b, &r);
  /* a queue of 50 frames (0.5 s) against a ~2 s outage: some results must drop */
  h = mqtt_harness (&b, 50);
  gst_element_set_bus (h->element, bus);
  for (i = 0; i < n; i++) {
    gint64 t0, due = start + (gint64) i * (FRAME_NS / 1000);
    guint64 push_ns;
    if (g_get_monotonic_time () < due)
      g_usleep (due - g_get_monotonic_time ());
    if (i == 150)
      broker_stop (&b);
    if (i == 300)
      broker_start (&b);
    t0 = g_get_monotonic_time ();
    fail_unless_equals_int (gst_harness_push (h, gst_buffer_ref (g_ptr_array_index (r.sent, i))),
        GST_FLOW_OK);
    push_ns = (guint64) (g_get_monotonic_time () - t0) * 1000;
    max_push_ns = MAX (max_push_ns, push_ns);
    slow_pushes += push_ns >= FRAME_NS * timing_slack ();
    gst_buffer_unref (gst_harness_pull (h));
  }
  get_counts (h, &published, &dropped);
  got = wait_for_unique (&r, n - (guint) dropped, 30 * G_USEC_PER_SEC);
  get_counts (h, &published, &dropped);
  while ((msg = gst_bus_pop (bus))) {
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_WARNING)
      warnings++;
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ELEMENT
        && gst_message_has_name (msg, "mone-publish-recovered")) {
      recovered++;
      gst_structure_get_uint64 (gst_message_get_structure (msg), "dropped", &recovered_count);
    }
    gst_message_unref (msg);
  }
  g_print ("mqtt restart: sent %u, received %u unique, gap %u, dropped %" G_GUINT64_FORMAT
      ", longest push %.3f ms (frame %.3f ms), pushes over a frame %u, warnings %u, recovered "
      "messages %u\n", n, got, n - got, dropped, max_push_ns / 1e6, FRAME_NS / 1e6, slow_pushes,
      warnings, recovered);
  fail_unless (dropped > 0, "the outage should have overflowed the queue");
  /* publishing resumed: the last frame, pushed seconds after the broker came back, arrived */
  g_mutex_lock (&r.lock);
  fail_unless (g_hash_table_contains (r.frames, GSIZE_TO_POINTER (n)), "last frame missing");
  g_mutex_unlock (&r.lock);
  fail_unless_equals_int64 (n - got, dropped);
  /* The streaming thread must not wait for the broker: a push that did (a connect or a write to
   * the dead socket) would take many frames, or every push of the outage would take one. A push
   * that loses the core to another process for a few ms on a busy machine is neither. */
  fail_unless (max_push_ns < 5 * FRAME_NS * timing_slack (), "a push blocked %" G_GUINT64_FORMAT
      " ns (bar %.0f ns)", max_push_ns, 5 * FRAME_NS * timing_slack ());
  fail_unless (slow_pushes <= n / 100, "%u of %u pushes took a frame or more", slow_pushes, n);
  fail_unless_equals_int (warnings, 1);
  fail_unless_equals_int (recovered, 1);
  fail_unless (!r.parse_failed, "a message did not parse or match its meta");
  gst_harness_teardown (h);
  gst_object_unref (bus);
  mqtt_test_clear (sub, &b, &r);
}

GST_END_TEST;

/* Pushes frames through h until a warning reaches bus, for at most 15 s: its text, or NULL. */
static gchar *
push_until_warning (GstHarness * h, GstBus * bus)
{
  gint64 deadline = g_get_monotonic_time () + 15 * G_USEC_PER_SEC;
  GstMessage *msg = NULL;
  GError *err = NULL;
  gchar *text;

  while (!msg && g_get_monotonic_time () < deadline) {
    fail_unless_equals_int (gst_harness_push (h, gst_buffer_new_allocate (NULL, 48, NULL)),
        GST_FLOW_OK);
    gst_buffer_unref (gst_harness_pull (h));
    msg = gst_bus_timed_pop_filtered (bus, 100 * GST_MSECOND, GST_MESSAGE_WARNING);
  }
  if (!msg)
    return NULL;
  gst_message_parse_warning (msg, &err, NULL);
  text = g_strdup (err->message);
  g_error_free (err);
  gst_message_unref (msg);
  return text;
}

/* No broker at all: a warning names the broker within seconds, frames still pass, EOS says how many
 * results were not delivered, and stopping does not wait for the client's connection attempts. */
GST_START_TEST (test_mqtt_no_broker)
{
  Broker b = { 0 };
  GstHarness *h;
  GstBus *bus = gst_bus_new ();
  GstMessage *msg = NULL;
  gchar *broker, *warning;
  gint64 t0;

  b.port = free_port ();
  broker = g_strdup_printf ("no connection to 127.0.0.1:%d", b.port);
  h = mqtt_harness (&b, 10);
  gst_element_set_bus (h->element, bus);
  warning = push_until_warning (h, bus);
  fail_unless (warning != NULL, "no warning 15 s after starting without a broker");
  fail_unless (strstr (warning, broker) != NULL, "unexpected warning: %s", warning);
  g_free (warning);
  /* The end of the stream says what was not delivered (a short file ends before the warning
   * above would come). */
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  msg = gst_bus_timed_pop_filtered (bus, 5 * GST_SECOND, GST_MESSAGE_WARNING);
  fail_unless (msg != NULL, "no warning at EOS with results undelivered");
  {
    GError *err = NULL;
    gchar *debug = NULL;

    gst_message_parse_warning (msg, &err, &debug);
    fail_unless (strstr (err->message, "results not delivered to the MQTT broker") != NULL,
        "unexpected warning: %s", err->message);
    g_error_free (err);
    g_free (debug);
  }
  gst_message_unref (msg);
  t0 = g_get_monotonic_time ();
  gst_harness_teardown (h);
  /* The stop's 2 s flush of queued results, not a wait on the client's connection attempts. */
  fail_unless (g_get_monotonic_time () - t0 < 4 * G_USEC_PER_SEC, "stopping took %.1f s",
      (g_get_monotonic_time () - t0) / 1e6);
  gst_object_unref (bus);
  g_free (broker);
}

GST_END_TEST;

/* Name lookups the tests control: this program's getaddrinfo (exported, so libmosquitto's calls
 * reach it) fails for two reserved names as a name server that cannot answer yet and one that
 * knows no such host would, and hands every other name to the C library's. */
#define HOST_LOOKUP_AGAIN "lookup-again.mone-test.invalid"
#define HOST_UNKNOWN "unknown.mone-test.invalid"

int
getaddrinfo (const char *node, const char *service, const struct addrinfo *hints,
    struct addrinfo **res)
{
  typedef int (*GetaddrinfoFunc) (const char *, const char *, const struct addrinfo *,
      struct addrinfo **);
  static GetaddrinfoFunc next;

  if (node && strcmp (node, HOST_LOOKUP_AGAIN) == 0)
    return EAI_AGAIN;
  if (node && strcmp (node, HOST_UNKNOWN) == 0)
    return EAI_NONAME;
  if (!next)
    next = (GetaddrinfoFunc) dlsym (RTLD_NEXT, "getaddrinfo");
  return next (node, service, hints, res);
}

/* A name server that cannot answer at start is a broker not reached yet: the element starts,
 * frames pass, and the warning names the broker and the failed lookup. */
GST_START_TEST (test_mqtt_lookup_again)
{
  GstHarness *h = gst_harness_new_parse ("monepublish method=mqtt host=" HOST_LOOKUP_AGAIN
      " port=1883 topic=mone/test");
  GstBus *bus = gst_bus_new ();
  gchar *warning;

  gst_harness_set_src_caps_str (h, "video/x-raw,format=RGB,width=4,height=4,framerate=100/1");
  gst_element_set_bus (h->element, bus);
  warning = push_until_warning (h, bus);
  fail_unless (warning != NULL, "no warning 15 s after a failed lookup");
  fail_unless (strstr (warning, "no connection to " HOST_LOOKUP_AGAIN ":1883") != NULL
      && strstr (warning, gai_strerror (EAI_AGAIN)) != NULL, "unexpected warning: %s", warning);
  g_free (warning);
  gst_harness_teardown (h);
  gst_object_unref (bus);
}

GST_END_TEST;

/* A host name that does not exist fails the start, naming the host and the lookup's answer. */
GST_START_TEST (test_mqtt_unknown_host)
{
  GstElement *publish = gst_element_factory_make ("monepublish", NULL);
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  GError *err = NULL;
  gchar *debug = NULL;

  fail_unless (publish != NULL);
  gst_util_set_object_arg (G_OBJECT (publish), "method", "mqtt");
  g_object_set (publish, "host", HOST_UNKNOWN, "topic", "mone/test", NULL);
  gst_element_set_bus (publish, bus);
  fail_unless_equals_int (gst_element_set_state (publish, GST_STATE_PAUSED),
      GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no error message for an unknown host");
  gst_message_parse_error (msg, &err, &debug);
  fail_unless (strstr (err->message, HOST_UNKNOWN ":1883") != NULL
      && strstr (err->message, gai_strerror (EAI_NONAME)) != NULL, "unexpected error: %s",
      err->message);
  g_error_free (err);
  g_free (debug);
  gst_message_unref (msg);
  gst_element_set_state (publish, GST_STATE_NULL);
  gst_object_unref (publish);
  gst_object_unref (bus);
}

GST_END_TEST;
#endif

static Suite *
monepublish_suite (void)
{
  Suite *s = suite_create ("monepublish");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 120);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_lines_match_meta);
  tcase_add_test (tc, test_unclassified_buffer);
  tcase_add_test (tc, test_region_lines_match_meta);
  tcase_add_test (tc, test_two_writers_one_file);
#ifdef HAVE_MOSQUITTO
  tcase_add_test (tc, test_mqtt_no_loss);
  tcase_add_test (tc, test_mqtt_broker_restart);
  tcase_add_test (tc, test_mqtt_no_broker);
  tcase_add_test (tc, test_mqtt_lookup_again);
  tcase_add_test (tc, test_mqtt_unknown_host);
#endif
  return s;
}

GST_CHECK_MAIN (monepublish);
