/* gst-mone: the process-wide cache of loaded models that monefilter instances share.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_MONE_MODEL_CACHE_H__
#define __GST_MONE_MODEL_CACHE_H__

#include <glib.h>

#include <mone/mone.h>

G_BEGIN_DECLS

/* A reference to the model in `path`, loaded once for every element that names the same file
 * (the weights are read-only; each element runs its own MoneContext on them). *key is what to
 * release the model with: NULL when the file could not be identified and the model was loaded
 * outside the cache. NULL with `error` set when the loader refuses the file. */
MoneModel *gst_mone_model_cache_acquire (const gchar * path, gchar ** key, GError ** error);

/* Gives back a model from gst_mone_model_cache_acquire() and frees `key`; the cache forgets the
 * file when its last user releases it, so a later start reads it again. */
void gst_mone_model_cache_release (MoneModel * model, gchar * key);

G_END_DECLS

#endif /* __GST_MONE_MODEL_CACHE_H__ */
