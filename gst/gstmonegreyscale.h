/* gst-mone: 8-bit luma scaled straight into a grey model's floats.
 *
 * The same filter as the element's GstVideoConverter (linear, four taps per output in each
 * direction, the taps and weights GstVideoScaler computes), run in floats: vertical first over
 * contiguous rows, then four-tap dot products along each row, then the bytes' range mapping,
 * written into the model's input with the letterbox border. It replaces the converter and the
 * bytes-to-floats step for grey models' frames and regions, and for each colour component of YUV
 * and RGB frames (gstmonecolourscale.h): they were most of the element's cost beyond the engine's
 * (docs/engine.md, "Into the model"). AVX2+FMA or portable C, chosen once
 * with the engine's kernels (MONE_ISA=generic forces the portable path).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef __GST_MONE_GREY_SCALE_H__
#define __GST_MONE_GREY_SCALE_H__

#include <gst/video/video.h>

G_BEGIN_DECLS

typedef struct _GstMoneGreyScaler GstMoneGreyScaler;

typedef enum
{
  GST_MONE_GREY_SCALER_GENERIC,
  GST_MONE_GREY_SCALER_AVX2,
  GST_MONE_GREY_SCALER_AVX512,  /* the AVX2 path, its vertical passes 16 samples wide */
  GST_MONE_GREY_SCALER_BEST,    /* the engine's kernels' set: AVX-512, AVX2, else portable */
} GstMoneGreyScalerPath;

/* Where a scaler writes: the rectangle x, y, width x height of an out_width x out_height input. */
typedef struct
{
  gint x, y, width, height;
  gint out_width, out_height;
} GstMoneScalerTarget;

/* GstVideoConverter's options for the filter these scalers run (linear, TAPS taps each way, the
 * frame's rectangle src_x, src_y, src_width x src_height into `target`'s rectangle, a black
 * border, no dithering), with `threads` threads: what the element converts with where a scaler
 * does not apply, and what the tests hold the scalers to. */
GstStructure *gst_mone_scaler_converter_options (gint src_x, gint src_y, gint src_width,
    gint src_height, const GstMoneScalerTarget * target, guint threads);

/* Whether frames of in_info have a luma, whole-resolution, that a grey model can read through
 * this scaler (YUV or grey, samples as gst_mone_grey_scaler_sample_bytes takes them, progressive,
 * not tiled or otherwise complex). */
gboolean gst_mone_grey_scaler_usable (const GstVideoInfo * in_info);

/* How many bytes a sample of the component takes as this scaler reads it: 1 for 8 bits, 2 for
 * 9 to 16 bits in little-endian words (I420_10LE, P010_10LE, GRAY16_LE); 0 for what it cannot
 * read (bit fields, big-endian words, no fixed step). */
gint gst_mone_grey_scaler_sample_bytes (const GstVideoFormatInfo * finfo, guint component);

/* black and scale mapping the component's samples to [0, 1]: full range, or limited (16-235 at
 * 8 bits, scaled to the component's depth: what decoders and cameras deliver). */
void gst_mone_grey_scaler_sample_range (const GstVideoFormatInfo * finfo, guint component,
    gboolean limited, gfloat * black, gfloat * scale);

/* A scaler of a src_width x src_height rectangle of samples of sample_bytes bytes (1, or 2 for
 * 16-bit little-endian words: formats of 9 to 16 bits), `step` bytes apart in a row, into
 * `target`, everything else 0. On the AVX2 and AVX-512 paths bytes 1 to 4 apart (planar, the luma
 * of YUY2, packed RGB, AYUV) and words 2 or 4 apart (I420_10LE, P010's chroma) are read in place;
 * on the portable one contiguous samples and bytes two apart; others row by row through a copy. A
 * sample v becomes CLAMP ((v - black) * scale, 0, 1). NULL when the rectangle has fewer than four
 * rows or columns (the filter's taps) or the target does not fit. */
GstMoneGreyScaler *gst_mone_grey_scaler_new (gint src_width, gint src_height, gint step,
    gint sample_bytes, const GstMoneScalerTarget * target, gfloat black, gfloat scale,
    GstMoneGreyScalerPath path);
/* The same with each sample a mix of up to three samples of a packed pixel (RGB into grey):
 * v = sum_k weights[k] * the sample offsets[k] bytes after the first (its bytes within the
 * step), filtered as one; the filter being linear, mixing after each one's vertical pass gives
 * the same. */
GstMoneGreyScaler *gst_mone_grey_scaler_new_mixed (gint src_width, gint src_height, gint step,
    gint sample_bytes, gint n_mixed, const gint * offsets, const gfloat * weights,
    const GstMoneScalerTarget * target, gfloat black, gfloat scale, GstMoneGreyScalerPath path);
/* Two or three samples of a packed pixel (offsets as above), each scaled on its own, as
 * gst_mone_grey_scaler_new would, into its own plane of the output (out_height x out_width floats
 * apart): one pass over the pixels for all of them (packed RGB into RGB models, YUY2's chroma). */
GstMoneGreyScaler *gst_mone_grey_scaler_new_components (gint src_width, gint src_height,
    gint step, gint sample_bytes, gint n_components, const gint * offsets,
    const GstMoneScalerTarget * target, gfloat black, gfloat scale, GstMoneGreyScalerPath path);
void gst_mone_grey_scaler_free (GstMoneGreyScaler * scaler);
const gchar *gst_mone_grey_scaler_path_name (const GstMoneGreyScaler * scaler);

/* src: the rectangle's first sample, rows `stride` bytes apart; dest: out_height x out_width (for
 * each component of gst_mone_grey_scaler_new_components). */
void gst_mone_grey_scaler_run (GstMoneGreyScaler * scaler, const guint8 * src, gsize stride,
    gfloat * dest);
/* The same on component `component` of a frame, the rectangle starting at its sample x, y. */
void gst_mone_grey_scaler_run_frame (GstMoneGreyScaler * scaler, const GstVideoFrame * frame,
    guint component, gint x, gint y, gfloat * dest);

G_END_DECLS
#endif /* __GST_MONE_GREY_SCALE_H__ */
