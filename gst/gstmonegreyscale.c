/* gst-mone: 8-bit luma scaled straight into a grey model's floats (see the header).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstmonegreyscale.h"

#include <string.h>

#include <gst/video/video.h>
#include <mone/mone.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX2_PATH 1
#define AVX2_FMA __attribute__((target ("avx2,fma")))
/* Inlined into each caller, so that its constant arguments specialise it. */
#define AVX2_FMA_INLINED __attribute__((always_inline, target ("avx2,fma")))
#define AVX512_BW __attribute__((target ("avx512f,avx512bw,avx512vl,avx2,fma")))
#define AVX512_BW_INLINED __attribute__((always_inline, \
        target ("avx512f,avx512bw,avx512vl,avx2,fma")))
#define AVX512_VBMI __attribute__((target ("avx512f,avx512bw,avx512vbmi,avx2,fma")))
#define AVX512_VBMI_INLINED __attribute__((always_inline, \
        target ("avx512f,avx512bw,avx512vbmi,avx2,fma")))
#endif

/* The converter's filter: GST_VIDEO_RESAMPLER_METHOD_LINEAR, this many taps
 * (gst_mone_scaler_converter_options). */
#define TAPS 4

/* The vertical passes read samples of `bytes` bytes (1, or 2: 16-bit little-endian words) `step`
 * bytes apart, and write their sums to out, or with `add` add them to it (mixed components). */
typedef void (*VerticalFunc) (const guint8 * src, gsize stride, gint step, gint bytes,
    const gfloat * weights, gboolean add, gfloat * out, gint n);
typedef void (*VerticalTapsFunc) (const guint8 * src, gsize stride, gint step, gint bytes,
    const gfloat * weights, const gint * columns, gboolean add, gfloat * out, gint n);

/* Components mixed into one output at most (RGB into grey). */
#define MAX_MIXED 3
typedef void (*HorizontalFunc) (const gfloat * row, const gint * offsets, const gfloat * weights,
    gint n, gfloat black, gfloat scale, gfloat * out);
/* The vertical passes of several components of the same pixels at once (below). */
typedef void (*VerticalPixelsFunc) (const guint8 * src, gsize stride, gint step,
    const gint * offsets, const guint8 (*picks)[32], const gfloat * weights, gint n_components,
    gboolean mixed, gfloat * out, gsize out_stride, gint n);
typedef void (*VerticalPixelsTapsFunc) (const guint8 * src, gsize stride, gint step,
    const gint * offsets, const guint8 (*picks)[32], const gfloat * weights, gint n_components,
    gboolean mixed, const gint * columns, gfloat * out, gsize out_stride, gint n);
/* The same sixteen pixels at a time (AVX-512 with VBMI's byte permutes). */
typedef void (*VerticalPixelsWideFunc) (const guint8 * src, gsize stride, gint step,
    const gint * offsets, const guint8 (*picks)[64], const gfloat * weights, gint n_components,
    gboolean mixed, gfloat * out, gsize out_stride, gint n);

struct _GstMoneGreyScaler
{
  gint src_width, src_height, step, sample_bytes;
  GstMoneScalerTarget target;
  gfloat black, scale;
  /* The sample read: sum_k mixed_weights[k] * the byte at mixed_offsets[k] from the first; or,
   * `apart`, each of those samples scaled on its own into its own output plane (weights 1) */
  gint n_mixed, mixed_offsets[MAX_MIXED];
  gfloat mixed_weights[MAX_MIXED];
  gboolean apart;
  gint *row_offsets;            /* (dest_height) first source row of each output row */
  gfloat *row_weights;          /* (dest_height, TAPS) */
  gint *column_offsets;         /* (dest_width) first source column of each output column */
  gfloat *column_weights;       /* (dest_width, TAPS) */
  /* One output row filtered vertically: every column of the rectangle (src_width), or, for large
   * reductions, only the TAPS columns each output reads (dest_width, TAPS); then horizontal
   * reads it at row_offsets_of_taps instead of column_offsets. */
  gfloat *row;                  /* (apart ? n_mixed : 1, row_length) */
  gsize row_length;
  gboolean taps_only;
  gint *taps_offsets;           /* (dest_width) TAPS * x */
  /* Steps the path does not read in place (beyond 2 for the portable one, beyond 4 for AVX2):
   * the TAPS source rows of an output row, their samples made contiguous, so that the vectorised
   * step-1 code reads them. NULL otherwise. */
  guint8 *gathered;             /* (TAPS, src_width, sample_bytes) */
  VerticalFunc vertical;
  VerticalTapsFunc vertical_taps;
  /* Two or three 8-bit samples 2 to 4 bytes apart, mixed or apart, on the AVX2 path: each load
   * of a row's pixels shuffled into every component (picks: the shuffles, for eight pixels in
   * place and for two outputs' taps), instead of one vertical pass per component reading the
   * pixels again. NULL otherwise. */
  VerticalPixelsFunc vertical_pixels;
  VerticalPixelsTapsFunc vertical_pixels_taps;
  guint8 eight_picks[MAX_MIXED][32], taps_picks[MAX_MIXED][32];
  /* With AVX-512 VBMI: one masked load of sixteen pixels per source row, each component's bytes
   * permuted into the low bytes of 32-bit lanes (sixteen_picks), in place of vertical_pixels. */
  VerticalPixelsWideFunc vertical_pixels_wide;
  guint8 sixteen_picks[MAX_MIXED][64];
  HorizontalFunc horizontal;
  const gchar *path_name;
};

/* ---- Portable C (vectorised by the compiler at -O3: gst/meson.build) ---- */

/* The 16-bit little-endian word at p. */
static inline gfloat
word_at (const guint8 * p)
{
  return (gfloat) (p[0] | p[1] << 8);
}

/* out[x] (+)= sum_t weights[t] * src[t * stride + x * step]: TAPS source rows into one row of
 * floats. */
static void
vertical_generic (const guint8 * src, gsize stride, gint step, gint bytes, const gfloat * weights,
    gboolean add, gfloat * out, gint n)
{
  const guint8 *restrict r0 = src, *restrict r1 = src + stride, *restrict r2 = src + 2 * stride,
      *restrict r3 = src + 3 * stride;
  const gfloat w0 = weights[0], w1 = weights[1], w2 = weights[2], w3 = weights[3];

  if (bytes == 2) {
    for (gint x = 0; x < n; x++) {
      const gsize i = (gsize) x * step;
      const gfloat sum = w0 * word_at (r0 + i) + w1 * word_at (r1 + i) + w2 * word_at (r2 + i)
          + w3 * word_at (r3 + i);
      out[x] = add ? out[x] + sum : sum;
    }
    return;
  }
  if (step == 1 && !add) {      /* the common case, in a loop the compiler vectorises */
    for (gint x = 0; x < n; x++)
      out[x] = w0 * r0[x] + w1 * r1[x] + w2 * r2[x] + w3 * r3[x];
    return;
  }
  if (step == 1) {
    for (gint x = 0; x < n; x++)
      out[x] += w0 * r0[x] + w1 * r1[x] + w2 * r2[x] + w3 * r3[x];
    return;
  }
  for (gint x = 0; x < n; x++) {
    const gsize i = (gsize) x * step;
    const gfloat sum = w0 * r0[i] + w1 * r1[i] + w2 * r2[i] + w3 * r3[i];
    out[x] = add ? out[x] + sum : sum;
  }
}

/* For output x, out[TAPS x + t] (+)= sum_r weights[r] * src[r * stride + (columns[x] + t) *
 * step]: only the columns the horizontal taps read. */
static void
vertical_taps_generic (const guint8 * src, gsize stride, gint step, gint bytes,
    const gfloat * weights, const gint * columns, gboolean add, gfloat * out, gint n)
{
  const gfloat w0 = weights[0], w1 = weights[1], w2 = weights[2], w3 = weights[3];

  for (gint x = 0; x < n; x++)
    for (gint t = 0; t < TAPS; t++) {
      const guint8 *p = src + (gsize) (columns[x] + t) * step;
      const gfloat sum = bytes == 2
          ? w0 * word_at (p) + w1 * word_at (p + stride) + w2 * word_at (p + 2 * stride)
          + w3 * word_at (p + 3 * stride)
          : w0 * p[0] + w1 * p[stride] + w2 * p[2 * stride] + w3 * p[3 * stride];
      out[TAPS * x + t] = add ? out[TAPS * x + t] + sum : sum;
    }
}

static inline gfloat
map_value (gfloat v, gfloat black, gfloat scale)
{
  return CLAMP ((v - black) * scale, 0.0f, 1.0f);
}

/* out[x] = map (sum_t weights[x, t] * row[offsets[x] + t]) for n outputs. */
static void
horizontal_generic (const gfloat * row, const gint * offsets, const gfloat * weights, gint n,
    gfloat black, gfloat scale, gfloat * out)
{
  for (gint x = 0; x < n; x++) {
    const gfloat *p = row + offsets[x], *w = weights + TAPS * x;
    out[x] = map_value (w[0] * p[0] + w[1] * p[1] + w[2] * p[2] + w[3] * p[3], black, scale);
  }
}

/* ---- AVX2 + FMA ---- */

#ifdef HAVE_AVX2_PATH
/* Eight consecutive samples as floats. */
static inline __m256 AVX2_FMA
bytes_to_floats (const guint8 * p)
{
  return _mm256_cvtepi32_ps (_mm256_cvtepu8_epi32 (_mm_loadl_epi64 ((const __m128i *) p)));
}

/* Eight samples two bytes apart (the luma of YUY2 and the like) as floats: the 16 bytes from p
 * as 16-bit words, their first bytes kept. */
static inline __m256 AVX2_FMA
even_bytes_to_floats (const guint8 * p)
{
  const __m128i words = _mm_and_si128 (_mm_loadu_si128 ((const __m128i *) p),
      _mm_set1_epi16 (0xff));
  return _mm256_cvtepi32_ps (_mm256_cvtepu16_epi32 (words));
}

/* Eight samples four bytes apart (AYUV, and the chroma of YUY2 and the like) as floats: the 32
 * bytes from p as 32-bit words, their first bytes kept. */
static inline __m256 AVX2_FMA
fourth_bytes_to_floats (const guint8 * p)
{
  return _mm256_cvtepi32_ps (_mm256_and_si256 (_mm256_loadu_si256 ((const __m256i *) p),
          _mm256_set1_epi32 (0xff)));
}

/* Eight consecutive 16-bit words (formats of 9 to 16 bits) as floats. */
static inline __m256 AVX2_FMA
words_to_floats (const guint8 * p)
{
  return _mm256_cvtepi32_ps (_mm256_cvtepu16_epi32 (_mm_loadu_si128 ((const __m128i *) p)));
}

/* Eight words four bytes apart (P010's chroma) as floats: 32 bytes as 32-bit words, their first
 * 16 bits kept. */
static inline __m256 AVX2_FMA
every_other_word_to_floats (const guint8 * p)
{
  return _mm256_cvtepi32_ps (_mm256_and_si256 (_mm256_loadu_si256 ((const __m256i *) p),
          _mm256_set1_epi32 (0xffff)));
}

/* Eight samples three bytes apart (packed RGB's components) as floats: two 16-byte loads, at p
 * and p + 6, each shuffled to four 32-bit words; nothing read past the eighth sample. */
static inline __m256 AVX2_FMA
third_bytes_to_floats (const guint8 * p)
{
  const __m128i low = _mm_shuffle_epi8 (_mm_loadu_si128 ((const __m128i *) p),
      _mm_setr_epi8 (0, -1, -1, -1, 3, -1, -1, -1, 6, -1, -1, -1, 9, -1, -1, -1));
  const __m128i high = _mm_shuffle_epi8 (_mm_loadu_si128 ((const __m128i *) (p + 6)),
      _mm_setr_epi8 (6, -1, -1, -1, 9, -1, -1, -1, 12, -1, -1, -1, 15, -1, -1, -1));
  return _mm256_cvtepi32_ps (_mm256_set_m128i (high, low));
}

/* out[0:8] (+)= the vertical filter from the TAPS rows at p, each row's samples read by load. */
static inline void AVX2_FMA
filter_eight (__m256 (*load) (const guint8 *), const guint8 * p, gsize stride, const __m256 * w,
    gboolean add, gfloat * out)
{
  __m256 sum = add ? _mm256_fmadd_ps (load (p), w[0], _mm256_loadu_ps (out))
      : _mm256_mul_ps (load (p), w[0]);

  for (gint t = 1; t < TAPS; t++)
    sum = _mm256_fmadd_ps (load (p + t * stride), w[t], sum);
  _mm256_storeu_ps (out, sum);
}

static void AVX2_FMA
vertical_avx2 (const guint8 * src, gsize stride, gint step, gint bytes, const gfloat * weights,
    gboolean add, gfloat * out, gint n)
{
  const __m256 w[TAPS] = { _mm256_set1_ps (weights[0]), _mm256_set1_ps (weights[1]),
    _mm256_set1_ps (weights[2]), _mm256_set1_ps (weights[3])
  };
  gint x = 0;

  /* Steps 2 and 4 load 16 and 32 bytes, one and three past the eighth sample: their last eight
   * outputs stay scalar, so nothing is read beyond the rectangle's last sample (step 3 reads
   * nothing past it; words four bytes apart two bytes past, like step 4). */
  if (bytes == 2) {             /* other steps of words: all scalar */
    if (step == 2)
      for (; x + 8 <= n; x += 8)
        filter_eight (words_to_floats, src + 2 * (gsize) x, stride, w, add, out + x);
    else if (step == 4)
      for (; x + 8 < n; x += 8)
        filter_eight (every_other_word_to_floats, src + 4 * (gsize) x, stride, w, add, out + x);
  } else if (step == 1)
    for (; x + 8 <= n; x += 8)
      filter_eight (bytes_to_floats, src + x, stride, w, add, out + x);
  else if (step == 2)
    for (; x + 8 < n; x += 8)
      filter_eight (even_bytes_to_floats, src + 2 * (gsize) x, stride, w, add, out + x);
  else if (step == 3)
    for (; x + 8 <= n; x += 8)
      filter_eight (third_bytes_to_floats, src + 3 * (gsize) x, stride, w, add, out + x);
  else if (step == 4)
    for (; x + 8 < n; x += 8)
      filter_eight (fourth_bytes_to_floats, src + 4 * (gsize) x, stride, w, add, out + x);
  if (x < n)
    vertical_generic (src + (gsize) x * step, stride, step, bytes, weights, add, out + x, n - x);
}

/* ---- AVX-512: the vertical pass 16 samples wide ---- */

/* The first n bits. */
static inline guint64
first_bits (gint n)
{
  return n >= 64 ? ~(guint64) 0 : ((guint64) 1 << n) - 1;
}

/* The first m (1 to 16) of sixteen samples `bytes` bytes wide, `step` bytes apart, from p, as
 * floats. Whole runs of bytes or words come through a plain load (quicker); the rest through a
 * byte mask that takes exactly the samples' bytes, so that nothing between or past them is read
 * (no tail is left to a narrower pass) and the bytes between them arrive as zeros (no mask to
 * apply after the load). Inlined with constant step, bytes and, for whole runs, m. */
static inline __m512 AVX512_BW_INLINED
sixteen_samples (const guint8 * p, gint step, gint bytes, gint m)
{
  if (step == 1) {
    const __m128i samples = m == 16 ? _mm_loadu_si128 ((const __m128i *) p)
        : _mm_maskz_loadu_epi8 ((__mmask16) first_bits (m), p);
    return _mm512_cvtepi32_ps (_mm512_cvtepu8_epi32 (samples));
  }
  if (step == 2) {              /* words, or the low bytes of words */
    const __m256i words = bytes == 2 && m == 16 ? _mm256_loadu_si256 ((const __m256i *) p)
        : _mm256_maskz_loadu_epi8 ((__mmask32) ((bytes == 2 ? 0xffffffffu : 0x55555555u)
            & first_bits (2 * m)), p);
    return _mm512_cvtepi32_ps (_mm512_cvtepu16_epi32 (words));
  }
  /* step 4: the low word or byte of 32-bit words */
  const guint64 picked = bytes == 2 ? 0x3333333333333333ull : 0x1111111111111111ull;
  return _mm512_cvtepi32_ps (_mm512_maskz_loadu_epi8 (picked & first_bits (4 * m), p));
}

/* out[0:m] (+)= the vertical filter from the TAPS rows at p. */
static inline void AVX512_BW_INLINED
filter_sixteen (const guint8 * p, gsize stride, gint step, gint bytes, const __m512 * w,
    gboolean add, gfloat * out, gint m)
{
  const __mmask16 lanes = (__mmask16) first_bits (m);
  const __m512 first = sixteen_samples (p, step, bytes, m);
  __m512 sum = !add ? _mm512_mul_ps (first, w[0]) : _mm512_fmadd_ps (first, w[0],
      m == 16 ? _mm512_loadu_ps (out) : _mm512_maskz_loadu_ps (lanes, out));

  for (gint t = 1; t < TAPS; t++)
    sum = _mm512_fmadd_ps (sixteen_samples (p + t * stride, step, bytes, m), w[t], sum);
  if (m == 16)
    _mm512_storeu_ps (out, sum);
  else
    _mm512_mask_storeu_ps (out, lanes, sum);
}

/* Every sample of the row, sixteen at a time (their masks constant once inlined), then the last
 * ones through narrower masks. */
static inline void AVX512_BW_INLINED
vertical_sixteen (const guint8 * src, gsize stride, gint step, gint bytes, const __m512 * w,
    gboolean add, gfloat * out, gint n)
{
  gint x = 0;

  for (; x + 16 <= n; x += 16)
    filter_sixteen (src + (gsize) step * x, stride, step, bytes, w, add, out + x, 16);
  if (x < n)
    filter_sixteen (src + (gsize) step * x, stride, step, bytes, w, add, out + x, n - x);
}

/* vertical_avx2 sixteen samples at a time for the steps it reads in place but three bytes (packed
 * RGB's components, whose single passes stay on AVX2; mixed or apart they take the pixels
 * passes). Twice the samples per instruction, which pays on cores with 512-bit units (AMD Zen 5;
 * docs/engine.md, "Into the model"). */
static void AVX512_BW
vertical_avx512 (const guint8 * src, gsize stride, gint step, gint bytes, const gfloat * weights,
    gboolean add, gfloat * out, gint n)
{
  const __m512 w[TAPS] = { _mm512_set1_ps (weights[0]), _mm512_set1_ps (weights[1]),
    _mm512_set1_ps (weights[2]), _mm512_set1_ps (weights[3])
  };

  if (bytes == 1 && step == 1)
    vertical_sixteen (src, stride, 1, 1, w, add, out, n);
  else if (bytes == 1 && step == 2)
    vertical_sixteen (src, stride, 2, 1, w, add, out, n);
  else if (bytes == 1 && step == 4)
    vertical_sixteen (src, stride, 4, 1, w, add, out, n);
  else if (bytes == 2 && step == 2)
    vertical_sixteen (src, stride, 2, 2, w, add, out, n);
  else if (bytes == 2 && step == 4)
    vertical_sixteen (src, stride, 4, 2, w, add, out, n);
  else
    vertical_avx2 (src, stride, step, bytes, weights, add, out, n);
}

/* The TAPS samples of outputs x and x + 1 in one source row, as floats. */
static inline __m256 AVX2_FMA
two_outputs_samples (const guint8 * row, gint step, gint bytes, const gint * columns, gint x)
{
  if (bytes == 2 && step == 2) {        /* four words: 8 bytes each */
    gint64 a, b;
    memcpy (&a, row + 2 * (gsize) columns[x], 8);
    memcpy (&b, row + 2 * (gsize) columns[x + 1], 8);
    return _mm256_cvtepi32_ps (_mm256_cvtepu16_epi32 (_mm_set_epi64x (b, a)));
  } else if (bytes == 2) {      /* words four bytes apart: the first 16 bits of 32-bit words */
    const __m128i a = _mm_loadu_si128 ((const __m128i *) (row + 4 * (gsize) columns[x]));
    const __m128i b = _mm_loadu_si128 ((const __m128i *) (row + 4 * (gsize) columns[x + 1]));
    return _mm256_cvtepi32_ps (_mm256_and_si256 (_mm256_set_m128i (b, a),
            _mm256_set1_epi32 (0xffff)));
  } else if (step == 1) {
    gint32 a, b;
    memcpy (&a, row + columns[x], 4);
    memcpy (&b, row + columns[x + 1], 4);
    return _mm256_cvtepi32_ps (_mm256_cvtepu8_epi32 (_mm_setr_epi32 (a, b, 0, 0)));
  } else if (step == 2) {       /* each sample the first byte of a 16-bit word */
    gint64 a, b;
    memcpy (&a, row + 2 * (gsize) columns[x], 8);
    memcpy (&b, row + 2 * (gsize) columns[x + 1], 8);
    return _mm256_cvtepi32_ps (_mm256_cvtepu16_epi32 (_mm_and_si128 (_mm_set_epi64x (b, a),
                _mm_set1_epi16 (0xff))));
  } else if (step == 3) {       /* 16 bytes from each output's first sample, shuffled */
    const __m128i pick = _mm_setr_epi8 (0, -1, -1, -1, 3, -1, -1, -1, 6, -1, -1, -1, 9, -1, -1,
        -1);
    const __m128i a = _mm_loadu_si128 ((const __m128i *) (row + 3 * (gsize) columns[x]));
    const __m128i b = _mm_loadu_si128 ((const __m128i *) (row + 3 * (gsize) columns[x + 1]));
    return _mm256_cvtepi32_ps (_mm256_set_m128i (_mm_shuffle_epi8 (b, pick),
            _mm_shuffle_epi8 (a, pick)));
  } else {                      /* 4: each sample the first byte of a 32-bit word */
    const __m128i a = _mm_loadu_si128 ((const __m128i *) (row + 4 * (gsize) columns[x]));
    const __m128i b = _mm_loadu_si128 ((const __m128i *) (row + 4 * (gsize) columns[x + 1]));
    return _mm256_cvtepi32_ps (_mm256_and_si256 (_mm256_set_m128i (b, a),
            _mm256_set1_epi32 (0xff)));
  }
}

static void AVX2_FMA
vertical_taps_avx2 (const guint8 * src, gsize stride, gint step, gint bytes,
    const gfloat * weights, const gint * columns, gboolean add, gfloat * out, gint n)
{
  const __m256 w0 = _mm256_set1_ps (weights[0]), w1 = _mm256_set1_ps (weights[1]),
      w2 = _mm256_set1_ps (weights[2]), w3 = _mm256_set1_ps (weights[3]);
  gint x = 0;

  /* With a step of 2, 3 or 4 the loads reach up to six bytes past an output's last sample (less
   * than the gap to the next output's, at the reductions beyond 8x that take this path): the last
   * output stays scalar, so nothing is read beyond the rectangle. */
  if (bytes == 1 ? step >= 1 && step <= 4 : step == 2 || step == 4)
    for (; x + 2 < n || (step == 1 && x + 2 <= n); x += 2) {
      const __m256 first = two_outputs_samples (src, step, bytes, columns, x);
      __m256 sum = add ? _mm256_fmadd_ps (first, w0, _mm256_loadu_ps (out + TAPS * x))
          : _mm256_mul_ps (first, w0);
      sum = _mm256_fmadd_ps (two_outputs_samples (src + stride, step, bytes, columns, x), w1, sum);
      sum = _mm256_fmadd_ps (two_outputs_samples (src + 2 * stride, step, bytes, columns, x), w2,
          sum);
      sum = _mm256_fmadd_ps (two_outputs_samples (src + 3 * stride, step, bytes, columns, x), w3,
          sum);
      _mm256_storeu_ps (out + TAPS * x, sum);
    }
  if (x < n)
    vertical_taps_generic (src, stride, step, bytes, weights, columns + x, add, out + TAPS * x,
        n - x);
}

/* Several components of the same pixels (n of them, 8-bit, 2 to 4 bytes apart) filtered from one
 * load per source row: picks[k] shuffles component k's bytes out of it, weights (TAPS, MAX_MIXED)
 * tap-major. With `mixed` their weighted sum goes to out (RGB into grey); else component k's to
 * out + k * out_stride (packed RGB into RGB models, YUY2's chroma). Inlined with constant n and
 * mixed, so that the sums stay in registers. */

/* add_components for one pixel at p, for the scalar tails: sums[0] (mixed) or sums[k] plus each
 * component k times its weight. */
static inline void
add_pixel (const guint8 * p, const gint * offsets, const gfloat * weights, gint n,
    gboolean mixed, gfloat * sums)
{
  for (gint k = 0; k < n; k++)
    sums[mixed ? 0 : k] += weights[k] * p[offsets[k]];
}

static inline void AVX2_FMA
add_components (__m256i pixels, const __m256i * picks, const __m256 * weights, gint n,
    gboolean mixed, __m256 * sums)
{
  for (gint k = 0; k < n; k++)
    sums[mixed ? 0 : k] = _mm256_fmadd_ps (_mm256_cvtepi32_ps (_mm256_shuffle_epi8 (pixels,
                picks[k])), weights[k], sums[mixed ? 0 : k]);
}

static inline void AVX2_FMA
load_weights (const guint8 (*picks)[32], const gfloat * weights, gint n, __m256i * pick,
    __m256 (*w)[MAX_MIXED])
{
  for (gint k = 0; k < n; k++)
    pick[k] = _mm256_loadu_si256 ((const __m256i *) picks[k]);
  for (gint t = 0; t < TAPS; t++)
    for (gint k = 0; k < n; k++)
      w[t][k] = _mm256_set1_ps (weights[MAX_MIXED * t + k]);
}

/* Every pixel of the row in place, eight at a time. */
static inline void AVX2_FMA_INLINED
pixels_in_place (const guint8 * src, gsize stride, gint step, const gint * offsets,
    const guint8 (*picks)[32], const gfloat * weights, gint n_components, gboolean mixed,
    gfloat * out, gsize out_stride, gint n)
{
  const gint n_sums = mixed ? 1 : n_components;
  __m256i pick[MAX_MIXED];
  __m256 w[TAPS][MAX_MIXED];
  gint max_offset = 0, x = 0;

  load_weights (picks, weights, n_components, pick, w);
  for (gint k = 0; k < n_components; k++)
    max_offset = MAX (max_offset, offsets[k]);
  /* Eight pixels from the first component's byte: two bytes a pixel in one 16-byte load (in both
   * lanes), three in two 16-byte loads 8 bytes apart, four in one of 32. Bytes past the eighth
   * pixel's last component are the next pixel's: then the last eight outputs stay scalar. */
  const gboolean reads_past = max_offset < step - 1;
  for (; reads_past ? x + 8 < n : x + 8 <= n; x += 8) {
    __m256 sums[MAX_MIXED];
    for (gint k = 0; k < n_sums; k++)
      sums[k] = _mm256_setzero_ps ();
    for (gint t = 0; t < TAPS; t++) {
      const guint8 *p = src + t * stride + (gsize) step * x;
      const __m256i pixels = step == 2
          ? _mm256_broadcastsi128_si256 (_mm_loadu_si128 ((const __m128i *) p))
          : step == 3 ? _mm256_set_m128i (_mm_loadu_si128 ((const __m128i *) (p + 8)),
          _mm_loadu_si128 ((const __m128i *) p))
          : _mm256_loadu_si256 ((const __m256i *) p);
      add_components (pixels, pick, w[t], n_components, mixed, sums);
    }
    for (gint k = 0; k < n_sums; k++)
      _mm256_storeu_ps (out + k * out_stride + x, sums[k]);
  }
  for (; x < n; x++) {
    gfloat sums[MAX_MIXED] = { 0 };
    for (gint t = 0; t < TAPS; t++)
      add_pixel (src + t * stride + (gsize) step * x, offsets, weights + MAX_MIXED * t,
          n_components, mixed, sums);
    for (gint k = 0; k < n_sums; k++)
      out[k * out_stride + x] = sums[k];
  }
}

/* Only the pixels the horizontal taps read, two outputs' four at a time. */
static inline void AVX2_FMA_INLINED
pixels_of_taps (const guint8 * src, gsize stride, gint step, const gint * offsets,
    const guint8 (*picks)[32], const gfloat * weights, gint n_components, gboolean mixed,
    const gint * columns, gfloat * out, gsize out_stride, gint n)
{
  const gint n_sums = mixed ? 1 : n_components;
  __m256i pick[MAX_MIXED];
  __m256 w[TAPS][MAX_MIXED];
  gint x = 0;

  load_weights (picks, weights, n_components, pick, w);
  /* 16 bytes from each output's first tap pixel: up to eight past its last (two bytes a pixel),
   * inside the next output's pixels at the reductions beyond 8x that take this path, so the last
   * stays scalar. */
  for (; x + 2 < n; x += 2) {
    __m256 sums[MAX_MIXED];
    for (gint k = 0; k < n_sums; k++)
      sums[k] = _mm256_setzero_ps ();
    for (gint t = 0; t < TAPS; t++) {
      const guint8 *row = src + t * stride;
      const __m256i pixels = _mm256_set_m128i (_mm_loadu_si128 ((const __m128i *) (row +
                  (gsize) step * columns[x + 1])),
          _mm_loadu_si128 ((const __m128i *) (row + (gsize) step * columns[x])));
      add_components (pixels, pick, w[t], n_components, mixed, sums);
    }
    for (gint k = 0; k < n_sums; k++)
      _mm256_storeu_ps (out + k * out_stride + TAPS * x, sums[k]);
  }
  for (; x < n; x++)
    for (gint c = 0; c < TAPS; c++) {
      gfloat sums[MAX_MIXED] = { 0 };
      for (gint t = 0; t < TAPS; t++)
        add_pixel (src + t * stride + (gsize) step * (columns[x] + c), offsets,
            weights + MAX_MIXED * t, n_components, mixed, sums);
      for (gint k = 0; k < n_sums; k++)
        out[k * out_stride + TAPS * x + c] = sums[k];
    }
}

/* Every pixel of the row in place, sixteen at a time: a masked load of their bytes up to the last
 * pixel's last component (nothing is read past it, and no tail stays scalar), each component's
 * bytes permuted into 32-bit lanes with the others' zeroed, converted and filtered. */
static inline void AVX512_VBMI_INLINED
pixels_in_place_wide (const guint8 * src, gsize stride, gint step, const gint * offsets,
    const guint8 (*picks)[64], const gfloat * weights, gint n_components, gboolean mixed,
    gfloat * out, gsize out_stride, gint n)
{
  const gint n_sums = mixed ? 1 : n_components;
  const __mmask64 lane_low_bytes = 0x1111111111111111ull;
  __m512i pick[MAX_MIXED];
  __m512 w[TAPS][MAX_MIXED];
  gint max_offset = 0;

  for (gint k = 0; k < n_components; k++) {
    pick[k] = _mm512_loadu_si512 (picks[k]);
    max_offset = MAX (max_offset, offsets[k]);
  }
  for (gint t = 0; t < TAPS; t++)
    for (gint k = 0; k < n_components; k++)
      w[t][k] = _mm512_set1_ps (weights[MAX_MIXED * t + k]);
  for (gint x = 0; x < n; x += 16) {
    const gint m = MIN (16, n - x);
    const __mmask64 bytes = first_bits ((m - 1) * step + max_offset + 1);
    __m512 sums[MAX_MIXED];

    for (gint k = 0; k < n_sums; k++)
      sums[k] = _mm512_setzero_ps ();
    for (gint t = 0; t < TAPS; t++) {
      const __m512i pixels = _mm512_maskz_loadu_epi8 (bytes, src + t * stride + (gsize) step * x);
      for (gint k = 0; k < n_components; k++)
        sums[mixed ? 0 : k] = _mm512_fmadd_ps (_mm512_cvtepi32_ps (_mm512_maskz_permutexvar_epi8
                (lane_low_bytes, pick[k], pixels)), w[t][k], sums[mixed ? 0 : k]);
    }
    for (gint k = 0; k < n_sums; k++)
      _mm512_mask_storeu_ps (out + k * out_stride + x, (__mmask16) first_bits (m), sums[k]);
  }
}

static void AVX512_VBMI
vertical_pixels_wide (const guint8 * src, gsize stride, gint step, const gint * offsets,
    const guint8 (*picks)[64], const gfloat * weights, gint n_components, gboolean mixed,
    gfloat * out, gsize out_stride, gint n)
{
  if (n_components == 2 && mixed)
    pixels_in_place_wide (src, stride, step, offsets, picks, weights, 2, TRUE, out, 0, n);
  else if (n_components == 2)
    pixels_in_place_wide (src, stride, step, offsets, picks, weights, 2, FALSE, out, out_stride, n);
  else if (mixed)
    pixels_in_place_wide (src, stride, step, offsets, picks, weights, 3, TRUE, out, 0, n);
  else
    pixels_in_place_wide (src, stride, step, offsets, picks, weights, 3, FALSE, out, out_stride, n);
}

/* The two kernels above for each of their four cases, compiled apart. */
static void AVX2_FMA
vertical_pixels_avx2 (const guint8 * src, gsize stride, gint step, const gint * offsets,
    const guint8 (*picks)[32], const gfloat * weights, gint n_components, gboolean mixed,
    gfloat * out, gsize out_stride, gint n)
{
  if (n_components == 2 && mixed)
    pixels_in_place (src, stride, step, offsets, picks, weights, 2, TRUE, out, 0, n);
  else if (n_components == 2)
    pixels_in_place (src, stride, step, offsets, picks, weights, 2, FALSE, out, out_stride, n);
  else if (mixed)
    pixels_in_place (src, stride, step, offsets, picks, weights, 3, TRUE, out, 0, n);
  else
    pixels_in_place (src, stride, step, offsets, picks, weights, 3, FALSE, out, out_stride, n);
}

static void AVX2_FMA
vertical_pixels_taps_avx2 (const guint8 * src, gsize stride, gint step, const gint * offsets,
    const guint8 (*picks)[32], const gfloat * weights, gint n_components, gboolean mixed,
    const gint * columns, gfloat * out, gsize out_stride, gint n)
{
  if (n_components == 2 && mixed)
    pixels_of_taps (src, stride, step, offsets, picks, weights, 2, TRUE, columns, out, 0, n);
  else if (n_components == 2)
    pixels_of_taps (src, stride, step, offsets, picks, weights, 2, FALSE, columns, out,
        out_stride, n);
  else if (mixed)
    pixels_of_taps (src, stride, step, offsets, picks, weights, 3, TRUE, columns, out, 0, n);
  else
    pixels_of_taps (src, stride, step, offsets, picks, weights, 3, FALSE, columns, out,
        out_stride, n);
}

/* The shuffle that puts byte `offset` of each of four pixels `step` bytes apart into the low
 * byte of a 32-bit lane (the rest zero), in both 128-bit lanes; the upper lane's pixels start
 * upper_start bytes into it. */
static void
set_picks (guint8 pick[32], gint step, gint offset, gint upper_start)
{
  memset (pick, 0x80, 32);
  for (gint i = 0; i < 4; i++) {
    pick[4 * i] = (guint8) (step * i + offset);
    pick[16 + 4 * i] = (guint8) (upper_start + step * i + offset);
  }
}

/* The taps of outputs x and x + 1 (four floats each, anywhere in the row) times their weights. */
static inline __m256 AVX2_FMA
two_outputs_taps (const gfloat * row, const gint * offsets, const gfloat * weights, gint x)
{
  const __m256 taps = _mm256_insertf128_ps (_mm256_castps128_ps256 (_mm_loadu_ps (row +
              offsets[x])), _mm_loadu_ps (row + offsets[x + 1]), 1);
  return _mm256_mul_ps (taps, _mm256_loadu_ps (weights + TAPS * x));
}

static void AVX2_FMA
horizontal_avx2 (const gfloat * row, const gint * offsets, const gfloat * weights, gint n,
    gfloat black, gfloat scale, gfloat * out)
{
  /* After three pairwise additions the 128-bit halves hold outputs 0 2 4 6 and 1 3 5 7. */
  const __m256i order = _mm256_setr_epi32 (0, 4, 1, 5, 2, 6, 3, 7);
  const __m256 vblack = _mm256_set1_ps (black), vscale = _mm256_set1_ps (scale);
  const __m256 zero = _mm256_setzero_ps (), one = _mm256_set1_ps (1.0f);
  gint x = 0;

  for (; x + 8 <= n; x += 8) {
    const __m256 p01 = two_outputs_taps (row, offsets, weights, x);
    const __m256 p23 = two_outputs_taps (row, offsets, weights, x + 2);
    const __m256 p45 = two_outputs_taps (row, offsets, weights, x + 4);
    const __m256 p67 = two_outputs_taps (row, offsets, weights, x + 6);
    __m256 sums = _mm256_hadd_ps (_mm256_hadd_ps (p01, p23), _mm256_hadd_ps (p45, p67));
    sums = _mm256_permutevar8x32_ps (sums, order);
    sums = _mm256_mul_ps (_mm256_sub_ps (sums, vblack), vscale);
    _mm256_storeu_ps (out + x, _mm256_min_ps (_mm256_max_ps (sums, zero), one));
  }
  if (x < n)
    horizontal_generic (row, offsets + x, weights + TAPS * x, n - x, black, scale, out + x);
}
#endif

/* ---- Setup ---- */

/* GstVideoScaler's taps for in_size -> out_size as the converter uses them; FALSE when an output
 * has other than TAPS taps or they reach outside the input. The converter leaves a direction of
 * equal sizes unscaled (the scaler's taps would blur it): each output takes its one input. */
static gboolean
axis_taps (gint in_size, gint out_size, gint * offsets, gfloat * weights)
{
  GstVideoScaler *scaler;
  gboolean ok;

  if (in_size == out_size) {
    for (gint o = 0; o < out_size; o++) {
      offsets[o] = MIN (o, in_size - TAPS);
      for (gint t = 0; t < TAPS; t++)
        weights[TAPS * o + t] = offsets[o] + t == o ? 1.0f : 0.0f;
    }
    return TRUE;
  }
  scaler = gst_video_scaler_new (GST_VIDEO_RESAMPLER_METHOD_LINEAR, GST_VIDEO_SCALER_FLAG_NONE,
      TAPS, in_size, out_size, NULL);
  ok = scaler != NULL;

  for (gint o = 0; ok && o < out_size; o++) {
    guint offset, n_taps;
    const gdouble *coeff = gst_video_scaler_get_coeff (scaler, o, &offset, &n_taps);

    ok = coeff && n_taps == TAPS && offset + TAPS <= (guint) in_size;
    for (gint t = 0; ok && t < TAPS; t++)
      weights[TAPS * o + t] = (gfloat) coeff[t];
    offsets[o] = (gint) offset;
  }
  if (scaler)
    gst_video_scaler_free (scaler);
  return ok;
}

GstStructure *
gst_mone_scaler_converter_options (gint src_x, gint src_y, gint src_width, gint src_height,
    const GstMoneScalerTarget * target, guint threads)
{
  return gst_structure_new ("GstVideoConverter",
      GST_VIDEO_CONVERTER_OPT_SRC_X, G_TYPE_INT, src_x,
      GST_VIDEO_CONVERTER_OPT_SRC_Y, G_TYPE_INT, src_y,
      GST_VIDEO_CONVERTER_OPT_SRC_WIDTH, G_TYPE_INT, src_width,
      GST_VIDEO_CONVERTER_OPT_SRC_HEIGHT, G_TYPE_INT, src_height,
      GST_VIDEO_CONVERTER_OPT_DEST_X, G_TYPE_INT, target->x,
      GST_VIDEO_CONVERTER_OPT_DEST_Y, G_TYPE_INT, target->y,
      GST_VIDEO_CONVERTER_OPT_DEST_WIDTH, G_TYPE_INT, target->width,
      GST_VIDEO_CONVERTER_OPT_DEST_HEIGHT, G_TYPE_INT, target->height,
      GST_VIDEO_CONVERTER_OPT_FILL_BORDER, G_TYPE_BOOLEAN, TRUE,
      GST_VIDEO_CONVERTER_OPT_BORDER_ARGB, G_TYPE_UINT, 0xff000000u,
      GST_VIDEO_CONVERTER_OPT_DITHER_METHOD, GST_TYPE_VIDEO_DITHER_METHOD, GST_VIDEO_DITHER_NONE,
      /* Bilinear (widened for downscaling) costs about 2/3 of the default cubic and is all a
       * classifier needs. */
      GST_VIDEO_CONVERTER_OPT_RESAMPLER_METHOD, GST_TYPE_VIDEO_RESAMPLER_METHOD,
      GST_VIDEO_RESAMPLER_METHOD_LINEAR,
      /* Fixed taps: the default widens the filter with the scale factor and blurs a large
       * downscale far beyond the plain resize the models are trained on (cost 2 points of
       * end-to-end accuracy, tests/pipelines/test-accuracy.c), and is 10x slower. */
      GST_VIDEO_CONVERTER_OPT_RESAMPLER_TAPS, G_TYPE_UINT, TAPS,
      GST_VIDEO_CONVERTER_OPT_CHROMA_RESAMPLER_METHOD, GST_TYPE_VIDEO_RESAMPLER_METHOD,
      GST_VIDEO_RESAMPLER_METHOD_LINEAR,
      GST_VIDEO_CONVERTER_OPT_THREADS, G_TYPE_UINT, threads, NULL);
}

gint
gst_mone_grey_scaler_sample_bytes (const GstVideoFormatInfo * finfo, guint component)
{
  const guint depth = GST_VIDEO_FORMAT_INFO_DEPTH (finfo, component);

  if (GST_VIDEO_FORMAT_INFO_PSTRIDE (finfo, component) < 1)
    return 0;
  if (depth == 8 && GST_VIDEO_FORMAT_INFO_BITS (finfo) == 8)
    return 1;
  if (depth <= 8 || depth + GST_VIDEO_FORMAT_INFO_SHIFT (finfo, component) > 16
      || (GST_VIDEO_FORMAT_INFO_BITS (finfo) != depth && GST_VIDEO_FORMAT_INFO_BITS (finfo) != 16)
      || !GST_VIDEO_FORMAT_INFO_IS_LE (finfo)
      || G_BYTE_ORDER != G_LITTLE_ENDIAN || GST_VIDEO_FORMAT_INFO_PSTRIDE (finfo, component) % 2)
    return 0;
  /* a word of its own: no other component's bits in it (as in RGB10A2's shared words; GStreamer
   * 1.22 also describes P010's V one byte after U, which this refuses) */
  for (guint c = 0; c < GST_VIDEO_FORMAT_INFO_N_COMPONENTS (finfo); c++)
    if (c != component
        && GST_VIDEO_FORMAT_INFO_PLANE (finfo, c) == GST_VIDEO_FORMAT_INFO_PLANE (finfo, component)
        && ABS ((gint) GST_VIDEO_FORMAT_INFO_POFFSET (finfo, c)
            - (gint) GST_VIDEO_FORMAT_INFO_POFFSET (finfo, component)) < 2)
      return 0;
  return 2;
}

void
gst_mone_grey_scaler_sample_range (const GstVideoFormatInfo * finfo, guint component,
    gboolean limited, gfloat * black, gfloat * scale)
{
  const guint depth = GST_VIDEO_FORMAT_INFO_DEPTH (finfo, component);
  const guint shift = GST_VIDEO_FORMAT_INFO_SHIFT (finfo, component);
  /* the sample of d-bit value v is v << shift; limited range is 16-235 scaled to d bits */
  const gdouble unit = (gdouble) (1u << shift);

  *black = limited ? (gfloat) (16.0 * (1u << (depth - 8)) * unit) : 0.0f;
  *scale = (gfloat) (1.0 / ((limited ? 219.0 * (1u << (depth - 8)) : (1u << depth) - 1.0) * unit));
}

gboolean
gst_mone_grey_scaler_usable (const GstVideoInfo * in_info)
{
  const GstVideoFormatInfo *finfo = in_info->finfo;

  return (GST_VIDEO_FORMAT_INFO_IS_YUV (finfo) || GST_VIDEO_FORMAT_INFO_IS_GRAY (finfo))
      && gst_mone_grey_scaler_sample_bytes (finfo, 0) != 0
      && GST_VIDEO_FORMAT_INFO_W_SUB (finfo, 0) == 0 && GST_VIDEO_FORMAT_INFO_H_SUB (finfo, 0) == 0
      && !GST_VIDEO_FORMAT_INFO_IS_COMPLEX (finfo) && !GST_VIDEO_FORMAT_INFO_IS_TILED (finfo)
      && !GST_VIDEO_FORMAT_INFO_HAS_PALETTE (finfo)
      && GST_VIDEO_INFO_INTERLACE_MODE (in_info) == GST_VIDEO_INTERLACE_MODE_PROGRESSIVE;
}

GstMoneGreyScaler *
gst_mone_grey_scaler_new (gint src_width, gint src_height, gint step, gint sample_bytes,
    const GstMoneScalerTarget * target, gfloat black, gfloat scale, GstMoneGreyScalerPath path)
{
  const gint offset = 0;
  const gfloat weight = 1.0f;

  return gst_mone_grey_scaler_new_mixed (src_width, src_height, step, sample_bytes, 1, &offset,
      &weight, target, black, scale, path);
}

static GstMoneGreyScaler *
scaler_new (gint src_width, gint src_height, gint step, gint sample_bytes, gint n_mixed,
    const gint * offsets, const gfloat * weights, gboolean apart,
    const GstMoneScalerTarget * target, gfloat black, gfloat scale, GstMoneGreyScalerPath path)
{
  const gint dest_width = target->width, dest_height = target->height;
  GstMoneGreyScaler *s;
  gboolean reads_in_place;

  if ((sample_bytes != 1 && sample_bytes != 2) || step < sample_bytes || n_mixed < 1
      || n_mixed > MAX_MIXED)
    return NULL;
  for (gint k = 0; k < n_mixed; k++)
    if (offsets[k] < 0 || offsets[k] + sample_bytes > step)
      return NULL;
  if (step < 1 || src_width < TAPS || src_height < TAPS || dest_width < 1 || dest_height < 1
      || target->x < 0 || target->y < 0 || target->x + dest_width > target->out_width
      || target->y + dest_height > target->out_height)
    return NULL;
  s = g_new0 (GstMoneGreyScaler, 1);
  s->src_width = src_width;
  s->src_height = src_height;
  s->step = step;
  s->sample_bytes = sample_bytes;
  s->target = *target;
  s->black = black;
  s->scale = scale;
  s->n_mixed = n_mixed;
  s->apart = apart;
  for (gint k = 0; k < n_mixed; k++) {
    s->mixed_offsets[k] = offsets[k];
    s->mixed_weights[k] = apart ? 1.0f : weights[k];
  }
  s->row_offsets = g_new (gint, dest_height);
  s->row_weights = g_new (gfloat, (gsize) TAPS * dest_height);
  s->column_offsets = g_new (gint, dest_width);
  s->column_weights = g_new (gfloat, (gsize) TAPS * dest_width);
  s->row_length = MAX (src_width, TAPS * dest_width);
  s->row = g_new (gfloat, (apart ? n_mixed : 1) * s->row_length);
  s->taps_offsets = g_new (gint, dest_width);
  for (gint x = 0; x < dest_width; x++)
    s->taps_offsets[x] = TAPS * x;
  if (!axis_taps (src_height, dest_height, s->row_offsets, s->row_weights)
      || !axis_taps (src_width, dest_width, s->column_offsets, s->column_weights)) {
    gst_mone_grey_scaler_free (s);
    return NULL;
  }

  s->vertical = vertical_generic;
  s->vertical_taps = vertical_taps_generic;
  s->horizontal = horizontal_generic;
  s->path_name = "generic";
  reads_in_place = sample_bytes == 1 ? step <= 2 : step == 2;
#ifndef HAVE_AVX2_PATH
  (void) path;
#else
  if (path == GST_MONE_GREY_SCALER_BEST) {
    const gchar *kernels = mone_default_kernels ();
    if (g_str_equal (kernels, "avx512"))
      path = GST_MONE_GREY_SCALER_AVX512;
    else if (g_str_equal (kernels, "avx2"))
      path = GST_MONE_GREY_SCALER_AVX2;
  }
  if (path == GST_MONE_GREY_SCALER_AVX512 && !(__builtin_cpu_supports ("avx512f")
          && __builtin_cpu_supports ("avx512bw") && __builtin_cpu_supports ("avx512vl")))
    path = GST_MONE_GREY_SCALER_AVX2;
  if ((path == GST_MONE_GREY_SCALER_AVX2 || path == GST_MONE_GREY_SCALER_AVX512)
      && __builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma")) {
    const gboolean avx512 = path == GST_MONE_GREY_SCALER_AVX512;
    s->vertical = avx512 ? vertical_avx512 : vertical_avx2;
    s->vertical_taps = vertical_taps_avx2;
    s->horizontal = horizontal_avx2;
    s->path_name = avx512 ? "avx512" : "avx2";
    /* Filtering only the columns the taps read costs about eight times as much per column there
     * (short gathers instead of contiguous runs): it pays for reductions beyond that. The
     * portable path's gathers are scalar: it always filters every column. */
    s->taps_only = src_width > 8 * dest_width;
    reads_in_place = sample_bytes == 1 ? step <= 4 : step == 2 || step == 4;
    /* One load for every component pays among the taps, where the separate passes load each
     * output's taps again for each, and in place for components scaled apart and for three
     * bytes a pixel mixed; four mixed in place (BGRx into grey) take one load, a mask and a
     * conversion per component either way, and two are never mixed. */
    if (n_mixed > 1 && sample_bytes == 1 && step >= 2 && step <= 4) {
      for (gint k = 0; k < n_mixed; k++) {
        set_picks (s->eight_picks[k], step, offsets[k], step == 2 ? 8 : step == 3 ? 4 : 0);
        set_picks (s->taps_picks[k], step, offsets[k], 0);
      }
      if (s->taps_only)
        s->vertical_pixels_taps = vertical_pixels_taps_avx2;
      else if (step == 3 || apart)
        s->vertical_pixels = vertical_pixels_avx2;
      /* Sixteen pixels a load where the AVX2 path takes eight in place (docs/engine.md, "Into
       * the model"). BGRx into grey keeps its passes per component, sixteen wide already: one
       * pass measured no faster. */
      if (avx512 && !s->taps_only && (step == 3 || apart)
          && __builtin_cpu_supports ("avx512vbmi")) {
        for (gint k = 0; k < n_mixed; k++) {
          memset (s->sixteen_picks[k], 0, 64);
          for (gint i = 0; i < 16; i++)
            s->sixteen_picks[k][4 * i] = (guint8) (step * i + offsets[k]);
        }
        s->vertical_pixels_wide = vertical_pixels_wide;
      }
    }
  }
#endif
  if (!reads_in_place)
    s->gathered = g_new (guint8, (gsize) TAPS * src_width * sample_bytes);
  return s;
}

GstMoneGreyScaler *
gst_mone_grey_scaler_new_mixed (gint src_width, gint src_height, gint step, gint sample_bytes,
    gint n_mixed, const gint * offsets, const gfloat * weights,
    const GstMoneScalerTarget * target, gfloat black, gfloat scale, GstMoneGreyScalerPath path)
{
  return scaler_new (src_width, src_height, step, sample_bytes, n_mixed, offsets, weights, FALSE,
      target, black, scale, path);
}

GstMoneGreyScaler *
gst_mone_grey_scaler_new_components (gint src_width, gint src_height, gint step,
    gint sample_bytes, gint n_components, const gint * offsets,
    const GstMoneScalerTarget * target, gfloat black, gfloat scale, GstMoneGreyScalerPath path)
{
  return scaler_new (src_width, src_height, step, sample_bytes, n_components, offsets, NULL, TRUE,
      target, black, scale, path);
}

void
gst_mone_grey_scaler_free (GstMoneGreyScaler * scaler)
{
  if (!scaler)
    return;
  g_free (scaler->row_offsets);
  g_free (scaler->row_weights);
  g_free (scaler->column_offsets);
  g_free (scaler->column_weights);
  g_free (scaler->row);
  g_free (scaler->taps_offsets);
  g_free (scaler->gathered);
  g_free (scaler);
}

const gchar *
gst_mone_grey_scaler_path_name (const GstMoneGreyScaler * scaler)
{
  return scaler->path_name;
}

/* n samples of `bytes` bytes, `step` bytes apart, made contiguous; AYUV's step of 4 spelled out,
 * so that the compiler vectorises it. */
static void
gather_samples (const guint8 * restrict row, gint step, gint bytes, guint8 * restrict out, gint n)
{
  if (bytes == 2) {
    for (gint x = 0; x < n; x++)
      memcpy (out + 2 * (gsize) x, row + (gsize) x * step, 2);
    return;
  }
  if (step == 4) {
    for (gint x = 0; x < n; x++)
      out[x] = row[4 * (gsize) x];
    return;
  }
  for (gint x = 0; x < n; x++)
    out[x] = row[(gsize) x * step];
}

/* Output row y's vertical pass into s->row: each component's, weighted by its share of the mix
 * and summed (for one component, just its own), or apart, each into its own row. */
static void
component_vertical_passes (GstMoneGreyScaler * s, gint y, const guint8 * first_rows, gsize stride)
{
  const gint bytes = s->sample_bytes;

  for (gint k = 0; k < s->n_mixed; k++) {
    const guint8 *rows = first_rows + s->mixed_offsets[k];
    const gboolean add = !s->apart && k > 0;
    gfloat *row = s->row + (s->apart ? k * s->row_length : 0);
    gsize rows_stride = stride;
    gint step = s->step;
    gfloat weights[TAPS];

    for (gint r = 0; r < TAPS; r++)
      weights[r] = s->row_weights[TAPS * y + r] * s->mixed_weights[k];
    if (s->gathered) {
      rows_stride = (gsize) s->src_width * bytes;
      for (gint r = 0; r < TAPS; r++)
        gather_samples (rows + r * stride, step, bytes, s->gathered + r * rows_stride,
            s->src_width);
      rows = s->gathered;
      step = bytes;
    }
    if (s->taps_only)
      s->vertical_taps (rows, rows_stride, step, bytes, weights, s->column_offsets, add, row,
          s->target.width);
    else
      s->vertical (rows, rows_stride, step, bytes, weights, add, row, s->src_width);
  }
}

/* The same with every component from each load (s->vertical_pixels, s->vertical_pixels_taps). */
static void
pixels_vertical_pass (GstMoneGreyScaler * s, gint y, const guint8 * first_rows, gsize stride)
{
  gfloat weights[TAPS * MAX_MIXED];

  for (gint r = 0; r < TAPS; r++)
    for (gint k = 0; k < s->n_mixed; k++)
      weights[MAX_MIXED * r + k] = s->row_weights[TAPS * y + r] * s->mixed_weights[k];
  if (s->taps_only)
    s->vertical_pixels_taps (first_rows, stride, s->step, s->mixed_offsets, s->taps_picks,
        weights, s->n_mixed, !s->apart, s->column_offsets, s->row, s->row_length, s->target.width);
  else if (s->vertical_pixels_wide)
    s->vertical_pixels_wide (first_rows, stride, s->step, s->mixed_offsets, s->sixteen_picks,
        weights, s->n_mixed, !s->apart, s->row, s->row_length, s->src_width);
  else
    s->vertical_pixels (first_rows, stride, s->step, s->mixed_offsets, s->eight_picks, weights,
        s->n_mixed, !s->apart, s->row, s->row_length, s->src_width);
}

void
gst_mone_grey_scaler_run (GstMoneGreyScaler * s, const guint8 * src, gsize stride, gfloat * dest)
{
  const GstMoneScalerTarget *t = &s->target;
  const gsize out_width = t->out_width, plane = out_width * t->out_height;
  const gint n_planes = s->apart ? s->n_mixed : 1;

  /* The border (letterbox bars): black, 0 after the range mapping. */
  for (gint k = 0; k < n_planes; k++)
    for (gint y = 0; y < t->out_height; y++) {
      gfloat *out = dest + k * plane + y * out_width;
      if (y < t->y || y >= t->y + t->height) {
        memset (out, 0, out_width * sizeof (gfloat));
        continue;
      }
      memset (out, 0, t->x * sizeof (gfloat));
      memset (out + t->x + t->width, 0, (out_width - t->x - t->width) * sizeof (gfloat));
    }
  for (gint y = 0; y < t->height; y++) {
    const guint8 *first_rows = src + (gsize) s->row_offsets[y] * stride;

    if (s->vertical_pixels || s->vertical_pixels_taps)
      pixels_vertical_pass (s, y, first_rows, stride);
    else
      component_vertical_passes (s, y, first_rows, stride);
    for (gint k = 0; k < n_planes; k++) {
      const gfloat *row = s->row + k * s->row_length;
      gfloat *out = dest + k * plane + (t->y + y) * out_width + t->x;

      if (s->taps_only)
        s->horizontal (row, s->taps_offsets, s->column_weights, t->width, s->black, s->scale, out);
      else
        s->horizontal (row, s->column_offsets, s->column_weights, t->width, s->black, s->scale,
            out);
    }
  }
}

void
gst_mone_grey_scaler_run_frame (GstMoneGreyScaler * scaler, const GstVideoFrame * frame,
    guint component, gint x, gint y, gfloat * dest)
{
  const gint stride = GST_VIDEO_FRAME_COMP_STRIDE (frame, component);
  const guint8 *first = (const guint8 *) GST_VIDEO_FRAME_COMP_DATA (frame, component)
      + (gsize) y * stride + (gsize) x * GST_VIDEO_FRAME_COMP_PSTRIDE (frame, component);

  gst_mone_grey_scaler_run (scaler, first, stride, dest);
}
