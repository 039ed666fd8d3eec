/* A gst-rtsp-server on 127.0.0.1 at a free port, running in its own thread, for the pipeline
 * tests: it serves one media (a gst-launch description ending in a payloader named pay0) at
 * rtsp://127.0.0.1:PORT/test. */
#ifndef MONE_TEST_RTSP_SERVER_H
#define MONE_TEST_RTSP_SERVER_H

#include <glib.h>

typedef struct TestRtspServer TestRtspServer;

/* launch: e.g. "( videotestsrc ! vp8enc ! rtpvp8pay name=pay0 pt=96 )". NULL on failure. */
TestRtspServer *test_rtsp_server_start (const char *launch, GError **error);
/* The URL clients connect to; owned by the server. */
const char *test_rtsp_server_url (TestRtspServer *server);
/* Disconnects every client, stops the thread and frees everything. */
void test_rtsp_server_stop (TestRtspServer *server);

#endif
