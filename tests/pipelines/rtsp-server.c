/* See rtsp-server.h. The server's sources are attached to a private GMainContext so that it runs
 * beside whatever the test does on the default context. */
#include "rtsp-server.h"

#include <gst/rtsp-server/rtsp-server.h>

struct TestRtspServer
{
  GMainContext *context;
  GMainLoop *loop;
  GThread *thread;
  GstRTSPServer *server;
  guint source_id;
  char *url;
};

static gpointer
run_server_loop (gpointer data)
{
  TestRtspServer *self = data;

  g_main_context_push_thread_default (self->context);
  g_main_loop_run (self->loop);
  g_main_context_pop_thread_default (self->context);
  return NULL;
}

TestRtspServer *
test_rtsp_server_start (const char *launch, GError ** error)
{
  TestRtspServer *self = g_new0 (TestRtspServer, 1);
  GstRTSPMountPoints *mounts;
  GstRTSPMediaFactory *factory;
  int port;

  self->server = gst_rtsp_server_new ();
  gst_rtsp_server_set_address (self->server, "127.0.0.1");
  gst_rtsp_server_set_service (self->server, "0");      /* the kernel picks a free port */

  factory = gst_rtsp_media_factory_new ();
  gst_rtsp_media_factory_set_launch (factory, launch);
  gst_rtsp_media_factory_set_shared (factory, TRUE);
  mounts = gst_rtsp_server_get_mount_points (self->server);
  gst_rtsp_mount_points_add_factory (mounts, "/test", factory);
  g_object_unref (mounts);

  self->context = g_main_context_new ();
  self->source_id = gst_rtsp_server_attach (self->server, self->context);
  if (self->source_id == 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "gst-rtsp-server could not listen on "
        "127.0.0.1");
    g_main_context_unref (self->context);
    g_object_unref (self->server);
    g_free (self);
    return NULL;
  }
  port = gst_rtsp_server_get_bound_port (self->server);
  self->url = g_strdup_printf ("rtsp://127.0.0.1:%d/test", port);
  self->loop = g_main_loop_new (self->context, FALSE);
  self->thread = g_thread_new ("rtsp-server", run_server_loop, self);
  return self;
}

const char *
test_rtsp_server_url (TestRtspServer * self)
{
  return self->url;
}

static GstRTSPFilterResult
remove_client (GstRTSPServer * server, GstRTSPClient * client, gpointer user_data)
{
  return GST_RTSP_FILTER_REMOVE;
}

static gboolean
quit_loop (gpointer data)
{
  TestRtspServer *self = data;

  gst_rtsp_server_client_filter (self->server, remove_client, NULL);
  g_main_loop_quit (self->loop);
  return G_SOURCE_REMOVE;
}

void
test_rtsp_server_stop (TestRtspServer * self)
{
  GSource *source;

  if (!self)
    return;
  /* clients are removed from the server's own thread, which owns them */
  source = g_idle_source_new ();
  g_source_set_callback (source, quit_loop, self, NULL);
  g_source_attach (source, self->context);
  g_source_unref (source);
  g_thread_join (self->thread);

  source = g_main_context_find_source_by_id (self->context, self->source_id);
  if (source)
    g_source_destroy (source);
  g_main_loop_unref (self->loop);
  g_object_unref (self->server);
  g_main_context_unref (self->context);
  g_free (self->url);
  g_free (self);
}
