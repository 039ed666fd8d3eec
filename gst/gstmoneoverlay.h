/* moneoverlay: draws monefilter's classification (label, score, budget, GFLOPs) and the per-patch
 * expert map onto the video with Cairo/Pango. */
#ifndef GST_MONE_OVERLAY_H
#define GST_MONE_OVERLAY_H

#include <gst/gst.h>
#include <gst/video/video.h>
#include <gst/video/gstvideofilter.h>
#include <cairo.h>
#include <pango/pangocairo.h>

G_BEGIN_DECLS

#define GST_TYPE_MONE_OVERLAY (gst_mone_overlay_get_type ())
G_DECLARE_FINAL_TYPE (GstMoneOverlay, gst_mone_overlay, GST, MONE_OVERLAY, GstVideoFilter)

struct _GstMoneOverlay
{
  GstVideoFilter parent;

  /* properties, under the object lock */
  gboolean show_map;
  gboolean show_text;
  gboolean show_legend;
  gdouble map_alpha;

  /* from set_info (streaming thread) */
  cairo_format_t cairo_format;
  gboolean has_alpha;        /* straight alpha: drawn on a transparent layer, then blended */
  int font_px;               /* text height, scaled to the frame */

  /* from start() to stop() */
  PangoFontMap *font_map;
  PangoContext *pango_context;
  PangoLayout *layout;
  /* Frames whose stride Cairo cannot take are drawn in this copy; allocated on the first such
   * frame and reused. */
  guint8 *scratch;           /* a copy of an unaligned frame, or the layer for alpha frames */
  gsize scratch_size;
};

GST_ELEMENT_REGISTER_DECLARE (moneoverlay);

G_END_DECLS

#endif /* GST_MONE_OVERLAY_H */
