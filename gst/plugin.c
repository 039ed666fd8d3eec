/* gst-mone: the `mone` plugin. Registers its elements and nothing else.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/gst.h>

#include "gstmonefilter.h"
#include "gstmoneoverlay.h"
#include "gstmonepublish.h"

static gboolean
plugin_init (GstPlugin * plugin)
{
  gboolean ret = FALSE;

  ret |= GST_ELEMENT_REGISTER (monefilter, plugin);
  ret |= GST_ELEMENT_REGISTER (moneoverlay, plugin);
  ret |= GST_ELEMENT_REGISTER (monepublish, plugin);
  return ret;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, mone,
    "Mixture of Nested Experts video classification with a run-time compute budget",
    plugin_init, VERSION, GST_LICENSE, GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
