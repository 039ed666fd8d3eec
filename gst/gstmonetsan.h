/* gst-mone: make GStreamer's object lock visible to ThreadSanitizer.
 *
 * GLib's GMutex is built on futexes, which TSan does not intercept, so every field guarded by
 * GST_OBJECT_LOCK would look racy in a -fsanitize=thread build. There the lock macros also tell
 * TSan that the lock was taken and released. Other builds use GStreamer's macros unchanged.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_MONE_TSAN_H__
#define __GST_MONE_TSAN_H__

#include <gst/gst.h>

#if defined(__SANITIZE_THREAD__)
void __tsan_acquire (void *addr);
void __tsan_release (void *addr);
#undef GST_OBJECT_LOCK
#undef GST_OBJECT_UNLOCK
#define GST_OBJECT_LOCK(obj) \
  (g_mutex_lock (GST_OBJECT_GET_LOCK (obj)), __tsan_acquire (GST_OBJECT_GET_LOCK (obj)))
#define GST_OBJECT_UNLOCK(obj) \
  (__tsan_release (GST_OBJECT_GET_LOCK (obj)), g_mutex_unlock (GST_OBJECT_GET_LOCK (obj)))
#endif

#endif /* __GST_MONE_TSAN_H__ */
