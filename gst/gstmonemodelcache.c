/* gst-mone: the process-wide cache of loaded models that monefilter instances share.
 *
 * Several elements playing the same file (a tee into two monefilters, a bank of camera pipelines)
 * would otherwise each read and validate the file and hold their own copy of the weights.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmonemodelcache.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <gst/gst.h>

/* The element's category: "loaded model file" lines belong to the element that asked. */
GST_DEBUG_CATEGORY_EXTERN (gst_mone_filter_debug);
#define GST_CAT_DEFAULT gst_mone_filter_debug

typedef struct
{
  MoneModel *model;
  guint users;
} GstMoneSharedModel;

static GMutex cache_lock;
static GHashTable *cache;       /* key (owned) -> GstMoneSharedModel* (owned) */

/* Canonical path plus the file's identity (device, inode, size, modification time), so a file
 * replaced on disk is loaded afresh rather than served stale; *canonical (free()) is the path the
 * key names, which the caller loads: a symlink switched after this call cannot put another file's
 * weights under the key. NULL when the file cannot be stat()ed as a regular file; the loader then
 * reports why. */
static gchar *
gst_mone_model_cache_key (const gchar * path, char **canonical)
{
  struct stat st;
  gchar *key = NULL;

  *canonical = realpath (path, NULL);
  if (*canonical && stat (*canonical, &st) == 0 && S_ISREG (st.st_mode))
    key = g_strdup_printf ("%s|%ju:%ju:%jd:%jd.%09ld", *canonical, (uintmax_t) st.st_dev,
        (uintmax_t) st.st_ino, (intmax_t) st.st_size, (intmax_t) st.st_mtim.tv_sec,
        (long) st.st_mtim.tv_nsec);
  return key;
}

MoneModel *
gst_mone_model_cache_acquire (const gchar * path, gchar ** key_out, GError ** error)
{
  GstMoneSharedModel *shared;
  MoneModel *model;
  char *canonical = NULL;
  gchar *key;

  *key_out = NULL;
  /* The key is taken under the lock, just before the load it names: waiting for the lock (another
   * element loading a large model) between the two would let the file change in between. */
  g_mutex_lock (&cache_lock);
  if (!(key = gst_mone_model_cache_key (path, &canonical))) {
    g_mutex_unlock (&cache_lock);
    free (canonical);
    return mone_model_load_file (path, error);
  }
  if (!cache)
    cache = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  shared = g_hash_table_lookup (cache, key);
  if (shared) {
    shared->users++;
    model = mone_model_ref (shared->model);
  } else {
    /* Loading under the lock keeps two instances starting together from loading twice. */
    model = mone_model_load_file (canonical, error);
    if (model) {
      GST_INFO ("loaded model file %s", key);
      shared = g_new0 (GstMoneSharedModel, 1);
      shared->model = mone_model_ref (model);
      shared->users = 1;
      g_hash_table_insert (cache, g_strdup (key), shared);
    }
  }
  g_mutex_unlock (&cache_lock);
  free (canonical);
  if (model)
    *key_out = key;
  else
    g_free (key);
  return model;
}

void
gst_mone_model_cache_release (MoneModel * model, gchar * key)
{
  if (key) {
    GstMoneSharedModel *shared;

    g_mutex_lock (&cache_lock);
    shared = cache ? g_hash_table_lookup (cache, key) : NULL;
    if (shared && --shared->users == 0) {
      mone_model_unref (shared->model);
      g_hash_table_remove (cache, key);
      if (g_hash_table_size (cache) == 0)
        g_clear_pointer (&cache, g_hash_table_unref);
    }
    g_mutex_unlock (&cache_lock);
  }
  mone_model_unref (model);
  g_free (key);
}
