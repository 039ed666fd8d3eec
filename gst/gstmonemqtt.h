/* gst-mone: a small MQTT publisher for monepublish. The streaming thread only enqueues into a
 * bounded queue; a sender thread hands messages to libmosquitto (QoS 1), whose own network thread
 * does the I/O and reconnects with a capped exponential backoff. Nothing here ever waits on the
 * network from the caller's thread.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef GST_MONE_MQTT_H
#define GST_MONE_MQTT_H

#include <glib.h>

G_BEGIN_DECLS

typedef struct _MoneMqtt MoneMqtt;

/* Called from the client's threads when the connection comes (reason NULL) or goes, is refused,
 * or has not come within a few seconds of the start (reason says which, naming the broker);
 * `dropped` is the total of messages dropped so far. Not called once stopping has begun. */
typedef void (*MoneMqttStateFunc) (gpointer user_data, gboolean connected, guint64 dropped,
    const gchar * reason);

/* Starts connecting in the background; returns NULL with *error set when the library refuses the
 * settings (the broker being down is not an error: messages queue and then drop). */
MoneMqtt *mone_mqtt_new (const gchar * host, gint port, const gchar * client_id,
    const gchar * topic, guint max_queue, MoneMqttStateFunc state_func, gpointer user_data,
    GError ** error);

/* Copies `payload` into the queue; when the queue is full the oldest message is dropped (the
 * newest result is worth more to a live consumer). Never blocks on the network. */
void mone_mqtt_enqueue (MoneMqtt * mqtt, const gchar * payload, gsize size);

/* Waits up to `timeout_us` for queued and in-flight messages to be acknowledged. TRUE when all
 * were. */
gboolean mone_mqtt_flush (MoneMqtt * mqtt, gint64 timeout_us);

guint64 mone_mqtt_get_published (MoneMqtt * mqtt);   /* acknowledged by the broker (PUBACK) */
guint mone_mqtt_get_pending (MoneMqtt * mqtt);       /* queued or in flight, not acknowledged */
const gchar *mone_mqtt_get_broker (MoneMqtt * mqtt); /* "host:port" */
guint64 mone_mqtt_get_dropped (MoneMqtt * mqtt);     /* dropped: queue full or lost in flight */

void mone_mqtt_free (MoneMqtt * mqtt);

G_END_DECLS

#endif /* GST_MONE_MQTT_H */
