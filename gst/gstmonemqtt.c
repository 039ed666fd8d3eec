/* gst-mone: bounded-queue MQTT publisher (see gstmonemqtt.h).
 *
 * Why a sender thread: mosquitto_publish() takes the client's locks, which its network thread holds
 * while writing to a slow socket; the streaming thread must not wait on that. So the streaming
 * thread only touches our queue (one mutex, held for a pointer push), and this thread publishes.
 *
 * Accounting: a message counts as published when the broker acknowledges it (PUBACK, QoS 1). A
 * message left unacknowledged when the connection drops stays in flight: libmosquitto resends it
 * after the reconnect (at least once, so a consumer may see it twice). Drops happen only when the
 * bounded queue overflows or libmosquitto refuses a message, so
 * published + dropped + queued + in flight == enqueued at all times.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "gstmonemqtt.h"

#include <errno.h>
#include <mosquitto.h>
#include <netdb.h>
#include <pthread.h>
#include <string.h>

#define MQTT_KEEPALIVE_S 10
#define MQTT_RECONNECT_MIN_S 1  /* libmosquitto takes whole seconds; backoff doubles to the cap */
#define MQTT_RECONNECT_MAX_S 5
/* Messages handed to libmosquitto but not yet acknowledged; beyond this the sender waits, which
 * makes the bounded queue (not libmosquitto's unbounded one) absorb a slow broker. */
#define MQTT_MAX_INFLIGHT 256
/* A broker not reached this long after start is reported, as a lost connection is (libmosquitto
 * calls no callback for a failed attempt). */
#define MQTT_FIRST_CONNECT_S 3

struct _MoneMqtt
{
  struct mosquitto *mosq;
  gchar *broker;                /* "host:port", for reports */
  gchar *topic;
  guint max_queue;
  MoneMqttStateFunc state_func;
  gpointer user_data;

  /* The streaming thread takes only `lock`, and only for a queue push: it never waits for
   * libmosquitto, whose calls happen under `send_lock`. */
  GMutex lock;
  GCond cond;
  GQueue queue;                 /* GBytes, oldest first */
  gboolean connected;
  gboolean ever_connected;
  gboolean unreachable_reported;        /* never connected, and said so */
  gchar *first_failure;         /* " (why the first attempt failed)" when worth saying, else "" */
  gint stopping;                /* atomic; set under lock too, for the cond */
  guint64 dropped;

  GMutex send_lock;
  GCond send_cond;
  GHashTable *inflight;         /* mid -> 1: handed to libmosquitto, no PUBACK yet */
  guint64 published;
  GThread *sender;
};

/* Stopping cancels libmosquitto's network thread when it is not connected (it may then be blocked
 * in connect() to an unreachable broker for minutes, or retry forever); the callbacks below run
 * with cancellation disabled, so it never stops inside them or inside GStreamer, which they
 * call. */
static int
callback_begin (void)
{
  int state;
  pthread_setcancelstate (PTHREAD_CANCEL_DISABLE, &state);
  return state;
}

static void
callback_end (int state)
{
  pthread_setcancelstate (state, NULL);
}

static void
report_state (MoneMqtt * m, gboolean connected, const gchar * reason)
{
  guint64 dropped;

  g_mutex_lock (&m->lock);
  dropped = m->dropped;
  g_mutex_unlock (&m->lock);
  if (m->state_func && !g_atomic_int_get (&m->stopping))
    m->state_func (m->user_data, connected, dropped, reason);
}

static void
on_connect (struct mosquitto *mosq, void *obj, int rc)
{
  MoneMqtt *m = obj;
  const int cancel_state = callback_begin ();

  if (rc != 0) {
    /* The broker answered and refused us (credentials, client id): as bad as no broker. */
    gchar *reason = g_strdup_printf ("%s refused the connection: %s", m->broker,
        mosquitto_connack_string (rc));
    report_state (m, FALSE, reason);
    g_free (reason);
  } else {
    g_mutex_lock (&m->lock);
    m->connected = m->ever_connected = TRUE;
    g_cond_broadcast (&m->cond);
    g_mutex_unlock (&m->lock);
    report_state (m, TRUE, NULL);
  }
  callback_end (cancel_state);
}

static void
on_disconnect (struct mosquitto *mosq, void *obj, int rc)
{
  MoneMqtt *m = obj;
  const int cancel_state = callback_begin ();
  gboolean was_connected;

  g_mutex_lock (&m->lock);
  was_connected = m->connected;
  m->connected = FALSE;
  g_cond_broadcast (&m->cond);
  g_mutex_unlock (&m->lock);
  if (was_connected) {
    gchar *reason = g_strdup_printf ("lost the connection to %s", m->broker);
    report_state (m, FALSE, reason);
    g_free (reason);
  }
  callback_end (cancel_state);
}

static void
on_publish (struct mosquitto *mosq, void *obj, int mid)
{
  MoneMqtt *m = obj;
  const int cancel_state = callback_begin ();

  g_mutex_lock (&m->send_lock);
  if (g_hash_table_remove (m->inflight, GINT_TO_POINTER (mid)))
    m->published++;
  g_cond_broadcast (&m->send_cond);
  g_mutex_unlock (&m->send_lock);
  callback_end (cancel_state);
}

static gpointer
sender_thread (gpointer data)
{
  MoneMqtt *m = data;
  const gint64 first_connect_deadline = g_get_monotonic_time ()
      + MQTT_FIRST_CONNECT_S * G_USEC_PER_SEC;

  while (TRUE) {
    GBytes *msg;
    int mid = 0, rc;
    gsize size;
    gconstpointer payload;

    g_mutex_lock (&m->lock);
    while (!m->stopping && (g_queue_is_empty (&m->queue) || !m->connected)) {
      if (m->unreachable_reported || m->ever_connected) {
        g_cond_wait (&m->cond, &m->lock);
      } else if (!g_cond_wait_until (&m->cond, &m->lock, first_connect_deadline)
          && !m->ever_connected && !m->unreachable_reported && !m->stopping) {
        /* Still trying (a connect() to an unreachable host blocks): otherwise nothing would say
         * so. */
        gchar *reason = g_strdup_printf ("no connection to %s within %d s%s", m->broker,
            MQTT_FIRST_CONNECT_S, m->first_failure);
        m->unreachable_reported = TRUE;
        g_mutex_unlock (&m->lock);
        report_state (m, FALSE, reason);
        g_free (reason);
        g_mutex_lock (&m->lock);
      }
    }
    if (m->stopping) {
      g_mutex_unlock (&m->lock);
      break;
    }
    msg = g_queue_pop_head (&m->queue);
    g_mutex_unlock (&m->lock);

    payload = g_bytes_get_data (msg, &size);
    g_mutex_lock (&m->send_lock);
    /* A bounded window of unacknowledged messages keeps the backlog in our bounded queue, not in
     * libmosquitto's unbounded one. Re-checked every 100 ms so stopping is never held up. */
    while (g_hash_table_size (m->inflight) >= MQTT_MAX_INFLIGHT && !g_atomic_int_get (&m->stopping))
      g_cond_wait_until (&m->send_cond, &m->send_lock, g_get_monotonic_time () + 100000);
    /* Held across the call: on_publish may run on the network thread before mosquitto_publish
     * returns, and must find the mid recorded. */
    rc = mosquitto_publish (m->mosq, &mid, m->topic, (int) size, payload, 1, false);
    if (rc == MOSQ_ERR_SUCCESS)
      g_hash_table_add (m->inflight, GINT_TO_POINTER (mid));
    g_mutex_unlock (&m->send_lock);
    if (rc != MOSQ_ERR_SUCCESS) {
      g_mutex_lock (&m->lock);
      m->dropped++;
      g_mutex_unlock (&m->lock);
    }
    g_bytes_unref (msg);
  }
  return NULL;
}

MoneMqtt *
mone_mqtt_new (const gchar * host, gint port, const gchar * client_id, const gchar * topic,
    guint max_queue, MoneMqttStateFunc state_func, gpointer user_data, GError ** error)
{
  static gsize lib_init = 0;
  MoneMqtt *m;
  int rc, lookup_status;

  if (g_once_init_enter (&lib_init)) {
    mosquitto_lib_init ();
    g_once_init_leave (&lib_init, 1);
  }

  m = g_new0 (MoneMqtt, 1);
  g_mutex_init (&m->lock);
  g_cond_init (&m->cond);
  g_queue_init (&m->queue);
  g_mutex_init (&m->send_lock);
  g_cond_init (&m->send_cond);
  m->inflight = g_hash_table_new (NULL, NULL);
  m->broker = g_strdup_printf ("%s:%d", host, port);
  m->topic = g_strdup (topic);
  m->max_queue = MAX (max_queue, 1);
  m->state_func = state_func;
  m->user_data = user_data;

  /* clean session: a restarted broker holds nothing for us, and we resend nothing old */
  m->mosq = mosquitto_new (client_id && *client_id ? client_id : NULL, true, m);
  if (!m->mosq) {
    g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "mosquitto_new failed (client-id '%s')",
        client_id ? client_id : "");
    goto error;
  }
  mosquitto_connect_callback_set (m->mosq, on_connect);
  mosquitto_disconnect_callback_set (m->mosq, on_disconnect);
  mosquitto_publish_callback_set (m->mosq, on_publish);
  mosquitto_reconnect_delay_set (m->mosq, MQTT_RECONNECT_MIN_S, MQTT_RECONNECT_MAX_S, true);
  mosquitto_int_option (m->mosq, MOSQ_OPT_SEND_MAXIMUM, MQTT_MAX_INFLIGHT);

  errno = 0;
  rc = mosquitto_connect_async (m->mosq, host, port, MQTT_KEEPALIVE_S);
  lookup_status = errno;        /* libmosquitto leaves getaddrinfo's code there with MOSQ_ERR_EAI */
  /* A broker that is down yet is fine: the network thread keeps retrying, looking the name up
   * again each time, so a name server that cannot answer yet is too. A bad host name is not. */
  if (rc == MOSQ_ERR_EAI && lookup_status == EAI_AGAIN) {
    m->first_failure = g_strdup_printf (" (looking up %s: %s)", host, gai_strerror (lookup_status));
  } else if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_ERRNO && rc != MOSQ_ERR_CONN_REFUSED) {
    g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "cannot connect to %s:%d: %s", host,
        port, rc == MOSQ_ERR_EAI && lookup_status ? gai_strerror (lookup_status) :
        mosquitto_strerror (rc));
    goto error;
  }
  if (!m->first_failure)
    m->first_failure = g_strdup ("");
  rc = mosquitto_loop_start (m->mosq);
  if (rc != MOSQ_ERR_SUCCESS) {
    g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "mosquitto_loop_start: %s",
        mosquitto_strerror (rc));
    goto error;
  }
  m->sender = g_thread_new ("mone-mqtt-send", sender_thread, m);
  return m;

error:
  if (m->mosq)
    mosquitto_destroy (m->mosq);
  m->mosq = NULL;
  mone_mqtt_free (m);
  return NULL;
}

void
mone_mqtt_enqueue (MoneMqtt * m, const gchar * payload, gsize size)
{
  GBytes *msg = g_bytes_new (payload, size);

  g_mutex_lock (&m->lock);
  if (g_queue_get_length (&m->queue) >= m->max_queue) {
    g_bytes_unref (g_queue_pop_head (&m->queue));
    m->dropped++;
  }
  g_queue_push_tail (&m->queue, msg);
  g_cond_broadcast (&m->cond);
  g_mutex_unlock (&m->lock);
}

gboolean
mone_mqtt_flush (MoneMqtt * m, gint64 timeout_us)
{
  gint64 end = g_get_monotonic_time () + timeout_us;

  /* polled: the queue and the in-flight set are under different locks */
  while (mone_mqtt_get_pending (m) > 0) {
    if (g_get_monotonic_time () >= end)
      return FALSE;
    g_usleep (10000);
  }
  return TRUE;
}

guint64
mone_mqtt_get_published (MoneMqtt * m)
{
  guint64 v;
  g_mutex_lock (&m->send_lock);
  v = m->published;
  g_mutex_unlock (&m->send_lock);
  return v;
}

guint
mone_mqtt_get_pending (MoneMqtt * m)
{
  guint queued, inflight;
  g_mutex_lock (&m->lock);
  queued = g_queue_get_length (&m->queue);
  g_mutex_unlock (&m->lock);
  g_mutex_lock (&m->send_lock);
  inflight = g_hash_table_size (m->inflight);
  g_mutex_unlock (&m->send_lock);
  return queued + inflight;
}

const gchar *
mone_mqtt_get_broker (MoneMqtt * m)
{
  return m->broker;
}

guint64
mone_mqtt_get_dropped (MoneMqtt * m)
{
  guint64 v;
  g_mutex_lock (&m->lock);
  v = m->dropped;
  g_mutex_unlock (&m->lock);
  return v;
}

void
mone_mqtt_free (MoneMqtt * m)
{
  if (!m)
    return;
  g_mutex_lock (&m->lock);
  g_atomic_int_set (&m->stopping, TRUE);
  g_cond_broadcast (&m->cond);
  g_mutex_unlock (&m->lock);
  if (m->sender)
    g_thread_join (m->sender);
  if (m->mosq) {
    gboolean connected;

    g_mutex_lock (&m->lock);
    connected = m->connected;
    g_mutex_unlock (&m->lock);
    mosquitto_disconnect (m->mosq);
    /* Connected, the network thread sends the DISCONNECT and ends; otherwise it may be blocked in
     * connect() or sleeping between attempts, and is cancelled (see callback_begin). */
    mosquitto_loop_stop (m->mosq, !connected);
    mosquitto_destroy (m->mosq);
  }
  g_queue_clear_full (&m->queue, (GDestroyNotify) g_bytes_unref);
  g_hash_table_unref (m->inflight);
  g_free (m->topic);
  g_free (m->broker);
  g_free (m->first_failure);
  g_mutex_clear (&m->lock);
  g_cond_clear (&m->cond);
  g_mutex_clear (&m->send_lock);
  g_cond_clear (&m->send_cond);
  g_free (m);
}
