/* gst-mone: monefilter's regions of interest (inference-region=roi-list). Finds the regions an
 * upstream detector put on a buffer (GstVideoRegionOfInterestMeta, and on GStreamer >= 1.24 the
 * object detections, GstAnalyticsODMtd, of its analytics relation meta), keeps those of the wanted
 * types, clips them to the frame, and remembers each tracked region's latest result so that a
 * region is classified only every `interval` frames of its own.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_MONE_REGIONS_H__
#define __GST_MONE_REGIONS_H__

#include <gst/video/video.h>

G_BEGIN_DECLS

/* One region of the current frame. */
typedef struct
{
  /* Where it came from: a region meta on the buffer, a detection (GstAnalyticsODMtd) of the
   * buffer's analytics relation meta, or both when they have the same box and type. */
  GstVideoRegionOfInterestMeta *roi;    /* or NULL */
  gint od_id;                   /* the detection's id in the relation meta, or -1 */
  gint id;                      /* the region meta's id, else the detection's */
  GQuark type;
  gint x, y, width, height;     /* clipped to the frame, at least 1x1 */
  /* Classify it on this frame; else it carries `last`. */
  gboolean due;
  /* Its latest result (owned by the tracker) or NULL. */
  const GstStructure *last;
  /* Its id is its own on this frame, so the result is kept for the frames that follow. Regions
   * that share an id (a detector that numbers nothing leaves every id at 0), and from then on
   * every region with that id, are classified on every frame, and so are detections without a
   * region meta: their ids number one buffer's metadata, not objects across frames. */
  gboolean tracked;
} GstMoneRegion;

typedef struct _GstMoneRegions GstMoneRegions;

GstMoneRegions *gst_mone_regions_new (void);
void gst_mone_regions_free (GstMoneRegions * regions);
/* Forgets every region (new stream, flush, discontinuity). */
void gst_mone_regions_reset (GstMoneRegions * regions);

/* The regions of `buffer` whose type is in `types` (NULL or empty: every type), the region metas
 * in their order, then the detections that match none of them, clipped to frame_width x
 * frame_height; those left with no area (outside the frame, zero-sized) are left out and counted
 * in *skipped. A region is due when it has no result yet or
 * its last classification was `interval` or more frames ago. The array and its entries belong to
 * `regions` and stay valid until the next call. */
GArray *gst_mone_regions_collect (GstMoneRegions * regions, GstBuffer * buffer,
    gint frame_width, gint frame_height, const GQuark * types, guint n_types, guint interval,
    guint * skipped);
/* Region i of the last collect was classified: its result (taken) becomes its `last`, kept for
 * the frames that follow when the region is tracked, else until the end of this frame. */
void gst_mone_regions_classified (GstMoneRegions * regions, guint i, GstStructure * result);
/* After the frame (once its results are attached): regions that did not appear on it are
 * forgotten. */
void gst_mone_regions_end_frame (GstMoneRegions * regions);

G_END_DECLS

#endif /* __GST_MONE_REGIONS_H__ */
