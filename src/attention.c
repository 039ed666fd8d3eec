/* One head's softmax attention for a block of queries (attention.h), compiled once per
 * instruction set (simd.h).
 *
 * Why transposed scores: q k^T as (queries, keys) would need k transposed, a strided scalar copy of
 * all N keys for every block; (keys, queries) needs only the strip's queries transposed
 * (head_dim x STRIP, scaled by 1/sqrt(head_dim) on the way), the keys are broadcast straight from
 * the interleaved q | k | v rows, and the softmax over keys becomes element-wise maxima and sums
 * of whole vectors. softmax x V then broadcasts one probability per (key, query) against V's rows,
 * which are contiguous, so nothing else is copied. */
#include "simd.h"

#include <stdbool.h>

/* Queries per strip: two vectors of query columns in the (keys, queries) score block. */
#define STRIP (2 * LANES)

/* Register blocking. SCORE_KEYS keys x 2 query vectors of accumulators for the scores;
 * PV_ACCUMULATORS accumulators for softmax x V, spent as (queries x head_dim vectors) with at most
 * PV_VECTORS head_dim vectors, within 32 vector registers (AVX-512) or 16 (AVX2, and the generic
 * build's SSE2 baseline). */
#if defined(MONE_KERNEL_BUILD_AVX512)
#define SCORE_KEYS 12
#define PV_ACCUMULATORS 16
#elif defined(MONE_KERNEL_BUILD_AVX2)
#define SCORE_KEYS 6
#define PV_ACCUMULATORS 12
#else
#define SCORE_KEYS 4
#define PV_ACCUMULATORS 8
#endif
/* head_dim vectors per softmax x V tile at most: strip_times_v takes chunks of 4, 2 and 1. */
#define PV_VECTORS 4
#ifndef PV_KEY_BLOCK
#define PV_KEY_BLOCK 64
#endif

#if defined(MONE_KERNEL_BUILD_AVX2) || defined(MONE_KERNEL_BUILD_AVX512)
/* t[r] lane j <- t[j] lane r: an 8 x 8 block of floats transposed in registers (every loop here
 * unrolled: otherwise -O2 keeps the arrays on the stack and each shuffle goes through memory). */
ALWAYS_INLINE void
transpose8 (__m256 t[8])
{
  __m256 lo[4], hi[4], q[8];
#pragma GCC unroll 8
  for (int i = 0; i < 4; i++) { /* rows 2i, 2i + 1 interleaved */
    lo[i] = _mm256_unpacklo_ps (t[2 * i], t[2 * i + 1]);
    hi[i] = _mm256_unpackhi_ps (t[2 * i], t[2 * i + 1]);
  }
#pragma GCC unroll 8
  for (int i = 0; i < 2; i++) { /* four rows' columns 0, 1 (4, 5) and 2, 3 (6, 7) per lane half */
    q[4 * i] = _mm256_shuffle_ps (lo[2 * i], lo[2 * i + 1], _MM_SHUFFLE (1, 0, 1, 0));
    q[4 * i + 1] = _mm256_shuffle_ps (lo[2 * i], lo[2 * i + 1], _MM_SHUFFLE (3, 2, 3, 2));
    q[4 * i + 2] = _mm256_shuffle_ps (hi[2 * i], hi[2 * i + 1], _MM_SHUFFLE (1, 0, 1, 0));
    q[4 * i + 3] = _mm256_shuffle_ps (hi[2 * i], hi[2 * i + 1], _MM_SHUFFLE (3, 2, 3, 2));
  }
#pragma GCC unroll 8
  for (int j = 0; j < 4; j++) { /* rows 0-3 with rows 4-7: the low halves, then the high */
    t[j] = _mm256_permute2f128_ps (q[j], q[4 + j], 0x20);
    t[j + 4] = _mm256_permute2f128_ps (q[j], q[4 + j], 0x31);
  }
}

/* t[j] lane r = rows[r * ld_q + d + j] for r, j < 8: eight rows by eight channels, transposed. */
ALWAYS_INLINE void
load_transposed8 (const float *rows, int ld_q, int d, __m256 t[8])
{
#pragma GCC unroll 8
  for (int r = 0; r < 8; r++)
    t[r] = _mm256_loadu_ps (rows + (size_t) r * ld_q + d);
  transpose8 (t);
}
#endif

/* qt (head_dim, STRIP) = scale * q^T for the strip's n_queries rows of q (ld_q), zero columns after
 * them up to the strip's n_vectors vectors (their scores are computed and never used). */
static void
pack_queries (int n_queries, int n_vectors, int head_dim, const float *q, int ld_q, float scale,
    float *qt)
{
  const vf vscale = splat (scale);
  for (int c = 0; c < n_vectors; c++) {
    const int lanes = n_queries - c * LANES < LANES ? n_queries - c * LANES : LANES;
    const float *rows = q + (size_t) c * LANES * ld_q;
    int d = 0;
#if defined(MONE_KERNEL_BUILD_AVX2)
    /* Eight whole rows by eight channels at a time, transposed in registers: on AMD's Zen 3
     * the AVX2 gathers cost more than the loads and shuffles (docs/engine.md, Attention). */
    if (lanes == LANES)
      for (; d + 8 <= head_dim; d += 8) {
        __m256 t[8];
        load_transposed8 (rows, ld_q, d, t);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
          vstore (qt + (d + j) * STRIP + c * LANES, (vf) t[j] * vscale);
      }
#elif defined(MONE_KERNEL_BUILD_AVX512)
    /* The same 8 x 8 transposes, one per half of the vector's 16 queries: faster than its
     * 16-lane gathers on Zen 5 (docs/engine.md, Attention). */
    if (lanes == LANES)
      for (; d + 8 <= head_dim; d += 8) {
        __m256 low[8], high[8];
        load_transposed8 (rows, ld_q, d, low);
        load_transposed8 (rows + (size_t) 8 * ld_q, ld_q, d, high);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
          vstore (qt + (d + j) * STRIP + c * LANES,
              (vf) _mm512_insertf32x8 (_mm512_castps256_ps512 (low[j]), high[j], 1) * vscale);
      }
#endif
    for (; d < head_dim; d++)
      vstore (qt + d * STRIP + c * LANES, vgather_column (rows + d, ld_q, lanes) * vscale);
  }
}

/* st rows (keys, STRIP) for `keys` consecutive keys: st[j, i] = k[j, :] . qt[:, i], for the first
 * n_vectors vectors of query columns; max[c] <- lane-wise maximum of max[c] and the tile's column
 * vector c (the softmax's maxima, taken while the scores are still in registers). */
ALWAYS_INLINE void
scores_tile (const int keys, const int n_vectors, int head_dim, const float *k, int ld_k,
    const float *qt, float *st, vf max[2])
{
  vf acc[SCORE_KEYS][2];
#pragma GCC unroll 16
  for (int r = 0; r < keys; r++)
    acc[r][0] = acc[r][1] = splat (0);
  for (int d = 0; d < head_dim; d++) {
    const vf q0 = vload (qt + d * STRIP);
    const vf q1 = n_vectors == 2 ? vload (qt + d * STRIP + LANES) : q0;
#pragma GCC unroll 16
    for (int r = 0; r < keys; r++) {
      const vf key = splat (k[(size_t) r * ld_k + d]);
      acc[r][0] += key * q0;
      if (n_vectors == 2)
        acc[r][1] += key * q1;
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < keys; r++) {
    vstore (st + r * STRIP, acc[r][0]);
    max[0] = vmax (max[0], acc[r][0]);
    if (n_vectors == 2) {
      vstore (st + r * STRIP + LANES, acc[r][1]);
      max[1] = vmax (max[1], acc[r][1]);
    }
  }
}

ALWAYS_INLINE void
strip_scores_of_width (const int n_vectors, int n_keys, int head_dim, const float *k, int ld_k,
    const float *qt, float *st, vf max[2])
{
  int j = 0;
  for (; j + SCORE_KEYS <= n_keys; j += SCORE_KEYS)
    scores_tile (SCORE_KEYS, n_vectors, head_dim, k + (size_t) j * ld_k, ld_k, qt, st + j * STRIP,
        max);
  /* Keys left over (4 of 64 and of 196 with 12-key tiles): four at a time, whose eight chains hide
   * the FMA latency that a single key's dependent chain of head_dim FMAs waits on. */
  for (; SCORE_KEYS > 4 && j + 4 <= n_keys; j += 4)
    scores_tile (4, n_vectors, head_dim, k + (size_t) j * ld_k, ld_k, qt, st + j * STRIP, max);
  for (; j < n_keys; j++)
    scores_tile (1, n_vectors, head_dim, k + (size_t) j * ld_k, ld_k, qt, st + j * STRIP, max);
}

/* st (n_keys, STRIP) = k qt over all keys; max[c] = maximum of column vector c over the keys. */
static void
strip_scores (int n_vectors, int n_keys, int head_dim, const float *k, int ld_k, const float *qt,
    float *st, vf max[2])
{
  /* The maxima in a local array: through the caller's pointer, which might alias st, every tile
   * would reload and store them, a chain through memory that short tiles cannot hide. */
  vf column_max[2] = { splat (-INFINITY), splat (-INFINITY) };
  if (n_vectors == 2)
    strip_scores_of_width (2, n_keys, head_dim, k, ld_k, qt, st, column_max);
  else
    strip_scores_of_width (1, n_keys, head_dim, k, ld_k, qt, st, column_max);
  max[0] = column_max[0];
  max[1] = column_max[1];
}

/* Each query column of st (n_keys, STRIP) <- exp(column - its max), unnormalised;
 * inverse_sums[i] = 1 / sum of column i. */
static void
strip_softmax (int n_vectors, int n_keys, const vf max[2], float *st, float *inverse_sums)
{
  enum { WAYS = 4 };
  for (int c = 0; c < n_vectors; c++) {
    float *column = st + c * LANES;
    vf sum = splat (0);
    int j = 0;
    for (; j + WAYS <= n_keys; j += WAYS) {
      vf e[WAYS];
#pragma GCC unroll 4
      for (int i = 0; i < WAYS; i++)
        e[i] = vload (column + (j + i) * STRIP) - max[c];
      vexp2_ways (WAYS, e);
#pragma GCC unroll 4
      for (int i = 0; i < WAYS; i++) {
        vstore (column + (j + i) * STRIP, e[i]);
        sum += e[i];
      }
    }
    for (; j < n_keys; j++) {
      vf e = vload (column + j * STRIP) - max[c];
      vexp2_ways (1, &e);
      vstore (column + j * STRIP, e);
      sum += e;
    }
    vstore (inverse_sums + c * LANES, splat (1.0f) / sum);
  }
}

/* out (queries, n_vectors vectors of head_dim) [+]= st^T v over n_keys keys for `queries` queries
 * starting at st's first column, adding to out unless `first`, times inverse_sums if `last`; the
 * last vector holds last_lanes values when ragged. */
ALWAYS_INLINE void
times_v_tile (const int queries, const int n_vectors, const bool ragged, int last_lanes, int n_keys,
    const float *st, const float *v, int ld_v, bool first, bool last, const float *inverse_sums,
    float *out, int ld_out)
{
  vf acc[PV_ACCUMULATORS][PV_VECTORS];
#pragma GCC unroll 16
  for (int r = 0; r < queries; r++)
#pragma GCC unroll 4
    for (int c = 0; c < n_vectors; c++) {
      const float *src = out + (size_t) r * ld_out + c * LANES;
      acc[r][c] = first                  ? splat (0)
          : ragged && c == n_vectors - 1 ? vload_first (src, last_lanes)
                                         : vload (src);
    }
  for (int j = 0; j < n_keys; j++) {
    const float *v_row = v + (size_t) j * ld_v;
    vf values[PV_VECTORS];
#pragma GCC unroll 4
    for (int c = 0; c < n_vectors; c++)
      values[c] = ragged && c == n_vectors - 1 ? vload_first (v_row + c * LANES, last_lanes)
                                               : vload (v_row + c * LANES);
    const float *p = st + j * STRIP;
#pragma GCC unroll 16
    for (int r = 0; r < queries; r++) {
      const vf weight = splat (p[r]);
#pragma GCC unroll 4
      for (int c = 0; c < n_vectors; c++)
        acc[r][c] += weight * values[c];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < queries; r++) {
    const vf inv = splat (last ? inverse_sums[r] : 1.0f);
    float *dst = out + (size_t) r * ld_out;
#pragma GCC unroll 4
    for (int c = 0; c < n_vectors; c++) {
      const vf value = last ? acc[r][c] * inv : acc[r][c];
      if (ragged && c == n_vectors - 1)
        vstore_first (dst + c * LANES, value, last_lanes);
      else
        vstore (dst + c * LANES, value);
    }
  }
}

/* All n_queries rows of the strip for n_vectors head_dim vectors: full register tiles of queries,
 * at most one half tile, then one query at a time. */
ALWAYS_INLINE void
times_v_columns (const int n_vectors, const bool ragged, int last_lanes, int n_queries, int n_keys,
    const float *st, const float *v, int ld_v, bool first, bool last, const float *inverse_sums,
    float *out, int ld_out)
{
  const int tile = PV_ACCUMULATORS / n_vectors;
  int i = 0;
  for (; i + tile <= n_queries; i += tile)
    times_v_tile (tile, n_vectors, ragged, last_lanes, n_keys, st + i, v, ld_v, first, last,
        inverse_sums + i, out + (size_t) i * ld_out, ld_out);
  if (tile >= 2 && i + tile / 2 <= n_queries) {
    times_v_tile (tile / 2, n_vectors, ragged, last_lanes, n_keys, st + i, v, ld_v, first, last,
        inverse_sums + i, out + (size_t) i * ld_out, ld_out);
    i += tile / 2;
  }
  for (; i < n_queries; i++)
    times_v_tile (1, n_vectors, ragged, last_lanes, n_keys, st + i, v, ld_v, first, last,
        inverse_sums + i, out + (size_t) i * ld_out, ld_out);
}

/* out (n_queries, head_dim) = normalised softmax x v for the strip, in column chunks of 4, 2 or 1
 * vectors. Keys go in blocks whose rows of v stay in L1 while every query tile of the strip reads
 * them; the partial sums wait in out between blocks. */
static void
strip_times_v (int n_queries, int n_keys, int head_dim, const float *st, const float *v, int ld_v,
    const float *inverse_sums, float *out, int ld_out)
{
  const int total_vectors = (head_dim + LANES - 1) / LANES;
  const int last_lanes = head_dim - (total_vectors - 1) * LANES;
  for (int j0 = 0; j0 < n_keys; j0 += PV_KEY_BLOCK) {
    const int block_keys = n_keys - j0 < PV_KEY_BLOCK ? n_keys - j0 : PV_KEY_BLOCK;
    const bool first = j0 == 0, last = j0 + block_keys == n_keys;
    const float *st_block = st + (size_t) j0 * STRIP, *v_block = v + (size_t) j0 * ld_v;
    for (int c0 = 0; c0 < total_vectors;) {
      const int left = total_vectors - c0;
      const int n_vectors = left >= 4 ? 4 : left >= 2 ? 2 : 1;
      const bool ragged = n_vectors == left && last_lanes < LANES;
      const float *v_chunk = v_block + c0 * LANES;
      float *out_chunk = out + c0 * LANES;
#define TIMES_V(nv, rag)                                                                           \
  times_v_columns (nv, rag, last_lanes, n_queries, block_keys, st_block, v_chunk, ld_v, first,     \
      last, inverse_sums, out_chunk, ld_out)
      /* Constant arguments, so each case compiles to its own fully unrolled register tile. */
      if (n_vectors == 4)
        ragged ? TIMES_V (4, true) : TIMES_V (4, false);
      else if (n_vectors == 2)
        ragged ? TIMES_V (2, true) : TIMES_V (2, false);
      else
        ragged ? TIMES_V (1, true) : TIMES_V (1, false);
#undef TIMES_V
      c0 += n_vectors;
    }
  }
}

void KERNEL (mone_attention_block) (int n_queries, int n_keys, int head_dim, const float *q,
    const float *k, const float *v, int ld_qkv, float *out, int ld_out, float *scratch);

void
KERNEL (mone_attention_block) (int n_queries, int n_keys, int head_dim, const float *q,
    const float *k, const float *v, int ld_qkv, float *out, int ld_out, float *scratch)
{
  float *qt = scratch;                                /* (head_dim, STRIP) */
  float *st = qt + (size_t) head_dim * STRIP;         /* (n_keys, STRIP) */
  float *inverse_sums = st + (size_t) n_keys * STRIP; /* (STRIP) */
  /* log2(e) folded into the queries' scale: the scores come out in base 2 and the softmax takes
   * 2^x, one product and one reduction step per score fewer than e^x. */
  const float scale = 1.44269504088896341f / sqrtf ((float) head_dim);
  for (int i0 = 0; i0 < n_queries; i0 += STRIP) {
    const int nq = n_queries - i0 < STRIP ? n_queries - i0 : STRIP;
    const int n_vectors = nq > LANES ? 2 : 1;
    pack_queries (nq, n_vectors, head_dim, q + (size_t) i0 * ld_qkv, ld_qkv, scale, qt);
    vf max[2];
    strip_scores (n_vectors, n_keys, head_dim, k, ld_qkv, qt, st, max);
    strip_softmax (n_vectors, n_keys, max, st, inverse_sums);
    strip_times_v (nq, n_keys, head_dim, st, v, ld_qkv, inverse_sums, out + (size_t) i0 * ld_out,
        ld_out);
  }
}
