/* gst-mone: the classification meta monefilter attaches to every buffer.
 *
 * Library: libgstmonemeta-1.0 (pkg-config gstmonemeta-1.0). It depends on GStreamer core only, not on
 * the inference engine; <mone/mone.h> is included just for MONE_MAX_EXPERTS.
 *
 * The meta is a GstCustomMeta registered under GST_MONE_META_NAME ("GstMoneMeta"). Its GstStructure
 * carries the fields below; as for every GstCustomMeta the structure is named like the meta
 * ("GstMoneMeta", which gst_custom_meta_has_name() checks). monefilter's element message (property
 * message=true) carries the same fields in a structure named GST_MONE_CLASSIFICATION_NAME
 * ("mone-classification"). The readers below accept either name.
 *
 * From C:      MoneClassification r; if (gst_mone_meta_read (buffer, &r)) use r.label, r.top_score...
 * From Python: meta = buffer.get_custom_meta ("GstMoneMeta")
 *              s = meta.get_structure (); s.get_value ("label"), s.get_value ("budget-used") ...
 *              Scalars and the expert grid (GLib.Bytes) need only python3-gi; the GstValueArray
 *              fields (top-ids, top-labels, top-scores, tokens-per-expert) need GStreamer's
 *              Python overrides (Debian: python3-gst-1.0), which make them Gst.ValueArray lists.
 *
 * Fields of the structure (name: GType, meaning):
 *   frame:             guint64   index of this buffer among those monefilter saw since start (0, 1, ...)
 *   result-frame:      guint64   index of the frame the result was computed on (== frame unless reused)
 *   reused:            gboolean  TRUE when the result was computed on an earlier frame (interval > 1)
 *   timestamp:         guint64   buffer PTS in ns (GST_CLOCK_TIME_NONE when unknown)
 *   stream-time:       guint64   stream time of the buffer in ns (or NONE)
 *   running-time:      guint64   running time of the buffer in ns (or NONE)
 *   duration:          guint64   buffer duration in ns (or NONE)
 *   class-id:          gint      top-1 class index (0..classes-1)
 *   label:             gchararray top-1 class label
 *   score:             gdouble   top-1 softmax probability in [0, 1]
 *   top-ids:           GstValueArray of gint        the k best classes, best first
 *   top-labels:        GstValueArray of gchararray  their labels
 *   top-scores:        GstValueArray of gdouble     their probabilities
 *   budget-mode:       gchararray "fixed" or "auto"
 *   budget-requested:  gdouble   the budget asked for: the property (fixed) or the controller's pick (auto)
 *   budget-used:       gdouble   the budget the model ran at after clamping to [min-budget, 1]
 *   gflops:            gdouble   GFLOPs (1e9 floating-point operations, multiply-add = 2) spent
 *   latency:           guint64   inference latency in ns (conversion + forward pass)
 *   latency-ms:        gdouble   the same in milliseconds, for convenience
 *   experts:           gint      number of nested experts E (expert 0 is the smallest)
 *   tokens:            gint      number of tokens N = grid-slices * grid-height * grid-width
 *   tokens-per-expert: GstValueArray of gint (E entries) tokens each expert processed
 *   grid-width:        gint      tokens per row of one time slice
 *   grid-height:       gint      tokens per column of one time slice
 *   grid-slices:       gint      time slices (1 for image models; frames / tubelet for video models)
 *   expert-grid:       GBytes    N bytes, the expert index of each token in (slice, row, column)
 *                                order; row 0 is the top of the picture region the model saw
 *   scale-mode:        gchararray how the frame was fitted to the model: "stretch", "letterbox", "crop"
 *   content-x, content-y, content-width, content-height: gdouble
 *                                the part of the frame the model saw, in frame pixels (stretch and
 *                                letterbox: the whole frame; crop: the centred crop)
 *   model-x, model-y, model-width, model-height: gdouble
 *                                where that content lies in the model input, in model pixels
 *                                (letterbox leaves bars; the expert grid covers the whole model input)
 *   model-input-width, model-input-height: gint  the model's input size in pixels
 *
 * Fields monefilter adds to the structure that MoneClassification does not hold (read them with
 * gst_structure_get_int on gst_buffer_get_mone_structure()):
 *   frame-width, frame-height: gint  size of the frame monefilter classified, the pixels content-*
 *                                are in. The meta has no tags, so elements that copy metas keep it
 *                                whatever they do to the picture (videocrop, videobox or alpha
 *                                would drop a meta tagged "size"). Behind one that scales it
 *                                (videoscale), content-* scale by the new width / frame-width and
 *                                height / frame-height (moneoverlay does so); crops, added borders
 *                                and flips are not reflected.
 *   window-frames:     gint      frames T per model input (1 for image models); the window holds the
 *                                latest T frames, oldest first, ending with result-frame
 *   frames-per-slice:  gint      frames per time slice of the expert grid (the model's tubelet):
 *                                slice s covers window frames s * frames-per-slice onwards
 *   window-filled:     gint      frames of the stream in the window when the result was computed:
 *                                less than window-frames while the window fills after the start, a
 *                                flush, a discontinuity, a gap, a new stream or a caps change (the
 *                                older slots then repeat the first frame)
 *   valid:             gboolean  FALSE when the model's logits were NaN or infinite (weights that
 *                                overflow): then class-id is -1, label "", score 0 and the top-k
 *                                lists are empty; monefilter warns once per stream and counts
 *                                such frames in its invalid-frames property
 *
 * Regions (monefilter inference-region=roi-list). The meta then describes the frame and lists one
 * result per region of interest (GstVideoRegionOfInterestMeta) that was classified on it or
 * carries an earlier result; its structure has no class of its own (gst_mone_meta_read returns
 * FALSE), only:
 *   frame, timestamp, stream-time, running-time, duration   as above
 *   inference-region:  gchararray "roi-list"
 *   regions:           GstValueArray of GstStructure, one per region in the order of the buffer's
 *                                region metas (types filtered by object-class; regions with no
 *                                area inside the frame left out); each is named
 *                                "mone-classification" and has every field above (content-* is
 *                                the part of the region the model saw, in frame pixels, on the
 *                                frame the result was computed on; reused and result-frame as for
 *                                whole frames, counted per region id), plus region-id (gint, the
 *                                region meta's id), region-type (gchararray, its roi_type) and
 *                                region-x, region-y, region-width, region-height (gint, the region
 *                                on this frame, clipped to it, also when its result is carried)
 *   regions-classified: guint    regions run on this frame (the others carried earlier results)
 *   regions-skipped:   guint     regions left out: nothing of them inside the frame
 *   gflops:            gdouble   GFLOPs spent on this frame, all regions
 *   latency, latency-ms          conversion and inference of all regions on this frame
 * Each region's structure is also added to its GstVideoRegionOfInterestMeta as a parameter
 * (gst_video_region_of_interest_meta_get_param (roi, "mone-classification")), in place of one an
 * earlier monefilter put there.
 */
#ifndef GST_MONE_META_H
#define GST_MONE_META_H

#include <gst/gst.h>
#include <mone/mone.h>

G_BEGIN_DECLS

#define GST_MONE_META_NAME "GstMoneMeta"
#define GST_MONE_CLASSIFICATION_NAME "mone-classification"
/* Most top-k entries MoneClassification holds (monefilter's top-k property has the same limit). */
#define GST_MONE_META_MAX_TOP_K 16

/* The meta's fields as C values. Strings and the expert grid point into the structure they were
 * read from: valid while that structure (the buffer holding the meta) is alive and unchanged. */
typedef struct {
  guint64 frame;
  guint64 result_frame;
  gboolean reused;
  GstClockTime timestamp, stream_time, running_time, duration;

  gint top_class;
  const gchar *label;
  gdouble top_score;
  guint top_k; /* valid entries in the three arrays below */
  gint top_classes[GST_MONE_META_MAX_TOP_K];
  const gchar *top_labels[GST_MONE_META_MAX_TOP_K];
  gdouble top_scores[GST_MONE_META_MAX_TOP_K];

  gboolean budget_auto; /* budget-mode == "auto" */
  gdouble budget_requested;
  gdouble budget_used;
  gdouble gflops;
  guint64 latency_ns;
  gdouble latency_ms;

  gint experts;
  gint tokens;
  gint tokens_per_expert[MONE_MAX_EXPERTS];
  gint grid_width, grid_height, grid_slices;
  const guint8 *expert_grid; /* (grid_slices, grid_height, grid_width) expert indices */
  gsize expert_grid_size;    /* bytes in expert_grid (== tokens) */

  const gchar *scale_mode;
  gdouble content_x, content_y, content_width, content_height;
  gdouble model_x, model_y, model_width, model_height;
  gint model_input_width, model_input_height;
} MoneClassification;

/* Registers the custom meta (once, thread-safe) and returns its info. */
const GstMetaInfo *gst_mone_meta_get_info (void);

/* Zeroes *result and sets the times to GST_CLOCK_TIME_NONE. */
void gst_mone_classification_init (MoneClassification *result);

/* A new structure named "mone-classification" with every field of MoneClassification (expert_grid copied into a
 * GBytes; top-k arrays of result->top_k entries). Free with gst_structure_free. */
GstStructure *gst_mone_classification_to_structure (const MoneClassification *result);

/* Reads the fields back from a meta's or a message's structure. Returns FALSE (leaving *result
 * initialised but partial) when the structure has another name or lacks class-id, label, score, budget-used or expert-grid, or
 * when the grid size disagrees with the token count. */
gboolean gst_mone_classification_from_structure (const GstStructure *structure,
    MoneClassification *result);

/* Attaches (or overwrites: one meta per buffer) the meta with a copy of the fields of `fields`
 * (named "mone-classification" or "GstMoneMeta"). The buffer must be writable. Returns the meta. */
GstCustomMeta *gst_buffer_add_mone_meta (GstBuffer *buffer, const GstStructure *fields);

/* The buffer's meta, or NULL. */
GstCustomMeta *gst_buffer_get_mone_meta (GstBuffer *buffer);

/* The meta's structure (owned by the buffer), or NULL when the buffer has no meta. */
const GstStructure *gst_buffer_get_mone_structure (GstBuffer *buffer);

/* Shortcut: gst_mone_classification_from_structure on the buffer's meta. FALSE without meta. */
gboolean gst_mone_meta_read (GstBuffer *buffer, MoneClassification *result);

/* A region's identity in a region result (inference-region=roi-list). type points into the
 * structure it was read from. */
typedef struct {
  gint id;
  const gchar *type;
  gint x, y, width, height; /* frame pixels, clipped to the frame */
} MoneRegion;

/* Region results in the buffer's meta: 0 without meta or for a whole-frame result. */
guint gst_mone_meta_get_region_count (GstBuffer *buffer);
/* The index-th region result (owned by the buffer), or NULL. */
const GstStructure *gst_mone_meta_get_region (GstBuffer *buffer, guint index);
/* Reads a region result (from the meta's regions or a region meta's parameter): FALSE when it is
 * not one (no region-id or box) or its classification fields are incomplete. */
gboolean gst_mone_region_from_structure (const GstStructure *structure, MoneRegion *region,
    MoneClassification *result);

G_END_DECLS

#endif /* GST_MONE_META_H */
