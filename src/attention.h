/* Softmax attention of one head for a block of queries: the core of the forward pass's attention
 * phase, which runs at full width over all N tokens at every budget.
 *
 * Computed in strips of queries (2 vectors wide): the strip's scores for all keys are built
 * transposed, (keys, queries), in L1-sized scratch, so the softmax runs down the columns with no
 * horizontal reductions; then the strip's rows of softmax x V are accumulated in registers and the
 * normalisation is applied to that (queries, head_dim) product instead of the (queries, N) scores.
 * Every output row is written by the call that owns its query, with a fixed order of operations. */
#ifndef MONE_ATTENTION_H
#define MONE_ATTENTION_H

#include <stddef.h>

/* Floats of scratch one mone_attention_block call needs (any instruction set). */
size_t mone_attention_scratch_floats (int n_keys, int head_dim);

/* out[i, :] = sum_j softmax_j(q[i, :] . k[j, :] / sqrt(head_dim)) v[j, :] for i < n_queries,
 * j < n_keys. q (n_queries, head_dim), k and v (n_keys, head_dim) all with row stride ld_qkv (the
 * engine's interleaved (N, 3D) q | k | v rows); out (n_queries, head_dim) with row stride ld_out.
 * scratch: mone_attention_scratch_floats(n_keys, head_dim) floats, owned by the caller's thread. */
void mone_attention_block (int n_queries, int n_keys, int head_dim, const float *q, const float *k,
    const float *v, int ld_qkv, float *out, int ld_out, float *scratch);

/* Query count that blocks passed to mone_attention_block should be multiples of (except the last
 * block of a head): the strips compute whole vectors of queries, so a block of 49 queries costs as
 * much as one of 64 with 16-float vectors. */
int mone_attention_query_granule (void);

#endif
