/* monepublish: a passthrough element that writes each buffer's classification (GstMoneMeta) as one
 * JSON object per line to a file or stdout, or publishes it to an MQTT broker. */
#ifndef GST_MONE_PUBLISH_H
#define GST_MONE_PUBLISH_H

#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS

typedef enum
{
  GST_MONE_PUBLISH_METHOD_FILE,
  GST_MONE_PUBLISH_METHOD_MQTT,
} GstMonePublishMethod;

#define GST_TYPE_MONE_PUBLISH (gst_mone_publish_get_type ())
G_DECLARE_FINAL_TYPE (GstMonePublish, gst_mone_publish, GST, MONE_PUBLISH, GstBaseTransform)

typedef struct _MoneMqtt MoneMqtt;

struct _GstMonePublish
{
  GstBaseTransform parent;

  /* properties, under the object lock */
  GstMonePublishMethod method;
  gchar *file_path;
  gchar *host;
  gint port;
  gchar *topic;
  gchar *client_id;
  guint max_queue;
  gboolean skip_unclassified;

  /* from start() to stop() */
  int fd;                       /* file method: opened O_APPEND, one write() per line */
  gboolean own_fd;              /* FALSE for stdout */
  MoneMqtt *mqtt;
  guint64 frames;               /* buffers seen since start (streaming thread) */
  gchar *stream_id;             /* from STREAM_START, under the object lock */
  guint64 file_written;         /* lines written (file method), under the object lock */
  guint64 file_dropped;         /* lines whose write failed, under the object lock */
  gboolean outage;              /* MQTT: warned for the current outage, under the object lock */
};

GST_ELEMENT_REGISTER_DECLARE (monepublish);

G_END_DECLS

#endif /* GST_MONE_PUBLISH_H */
