/* Vector primitives for the kernels that are compiled once per instruction set (vector-kernels.c,
 * attention.c; see kernels.h).
 *
 * The build compiles those files three times with different flags and one of
 * MONE_KERNEL_BUILD_{AVX512,AVX2,GENERIC} defined. The kernels are written once against `vf`
 * (LANES floats) and the few operations below; only the partial loads and stores at the ends of
 * rows need instructions of their own (AVX-512 and AVX2 have masked moves, generic C copies
 * through a small buffer). Include only from those files: every function here is static. */
#ifndef MONE_SIMD_H
#define MONE_SIMD_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(MONE_KERNEL_BUILD_AVX512)
#if !defined(__AVX512F__) || !defined(__FMA__)
#error "the avx512 kernel build needs -mavx512f -mfma"
#endif
#include <immintrin.h>
#define LANES 16
#define KERNEL(name) name##_avx512
#elif defined(MONE_KERNEL_BUILD_AVX2)
#if !defined(__AVX2__) || !defined(__FMA__)
#error "the avx2 kernel build needs -mavx2 -mfma"
#endif
#include <immintrin.h>
#define LANES 8
#define KERNEL(name) name##_avx2
#elif defined(MONE_KERNEL_BUILD_GENERIC)
/* 4 floats: one register on every SIMD target (SSE2, NEON, ...); wider generic vectors are split
 * by the compiler and their arrays end up on the stack. */
#define LANES 4
#define KERNEL(name) name##_generic
#else
#error "define one of MONE_KERNEL_BUILD_AVX512, _AVX2, _GENERIC"
#endif

/* Vectors never cross a non-inlined call except as pointers; the ABI note does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"
/* -std=c11 turns off a * b + c -> fma contraction; the kernels want it (fewer instructions,
 * shorter dependency chains, one rounding instead of two). */
#if defined(__clang__)
#pragma clang fp contract(fast)
#else
#pragma GCC optimize("fp-contract=fast")
#endif

#define ALWAYS_INLINE static inline __attribute__ ((always_inline))

typedef float vf __attribute__ ((vector_size (LANES * sizeof (float))));
typedef int32_t vi __attribute__ ((vector_size (LANES * sizeof (int32_t))));

ALWAYS_INLINE vf
vload (const float *p)
{
  vf v;
  memcpy (&v, p, sizeof v); /* unaligned; one vector load */
  return v;
}

ALWAYS_INLINE void
vstore (float *p, vf v)
{
  memcpy (p, &v, sizeof v);
}

ALWAYS_INLINE vf
splat (float x)
{
  return x - (vf){ 0 }; /* scalar - vector broadcasts the scalar */
}

/* Lane indices 0, 1, ..., LANES - 1. */
ALWAYS_INLINE vi
lane_index (void)
{
#if LANES == 16
  return (vi){ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
#elif LANES == 8
  return (vi){ 0, 1, 2, 3, 4, 5, 6, 7 };
#else
  return (vi){ 0, 1, 2, 3 };
#endif
}

/* where ? a : b, lane by lane (where: -1 or 0 per lane, as vector comparisons give). */
ALWAYS_INLINE vf
vselect (vi where, vf a, vf b)
{
  return (vf) ((where & (vi) a) | (~where & (vi) b));
}

/* Lane-wise maximum and minimum (for NaN lanes, which of the two comes out is unspecified). */
ALWAYS_INLINE vf
vmax (vf a, vf b)
{
#if defined(MONE_KERNEL_BUILD_AVX512)
  return (vf) _mm512_max_ps ((__m512) a, (__m512) b);
#elif defined(MONE_KERNEL_BUILD_AVX2)
  return (vf) _mm256_max_ps ((__m256) a, (__m256) b);
#else
  return vselect (a > b, a, b);
#endif
}

ALWAYS_INLINE vf
vmin (vf a, vf b)
{
#if defined(MONE_KERNEL_BUILD_AVX512)
  return (vf) _mm512_min_ps ((__m512) a, (__m512) b);
#elif defined(MONE_KERNEL_BUILD_AVX2)
  return (vf) _mm256_min_ps ((__m256) a, (__m256) b);
#else
  return vselect (a < b, a, b);
#endif
}

/* The first n (0..LANES) floats at p, zeros in the other lanes; reads nothing past p + n. */
ALWAYS_INLINE vf
vload_first (const float *p, int n)
{
#if defined(MONE_KERNEL_BUILD_AVX512)
  return (vf) _mm512_maskz_loadu_ps ((__mmask16) ((1u << n) - 1), p);
#elif defined(MONE_KERNEL_BUILD_AVX2)
  return (vf) _mm256_maskload_ps (p, (__m256i) (lane_index () < n));
#else
  vf v = { 0 };
  memcpy (&v, p, sizeof (float) * n);
  return v;
#endif
}

/* Writes the first n (0..LANES) lanes of v to p; touches nothing past p + n. */
ALWAYS_INLINE void
vstore_first (float *p, vf v, int n)
{
#if defined(MONE_KERNEL_BUILD_AVX512)
  _mm512_mask_storeu_ps (p, (__mmask16) ((1u << n) - 1), (__m512) v);
#elif defined(MONE_KERNEL_BUILD_AVX2)
  _mm256_maskstore_ps (p, (__m256i) (lane_index () < n), (__m256) v);
#else
  memcpy (p, &v, sizeof (float) * n);
#endif
}

/* Lane l (< n, which is 0..LANES) = p[l * stride], zeros after: one column of a row-major block. */
ALWAYS_INLINE vf
vgather_column (const float *p, int stride, int n)
{
#if defined(MONE_KERNEL_BUILD_AVX512)
  const __m512i offsets = (__m512i) (lane_index () * stride);
  return (vf) _mm512_mask_i32gather_ps (_mm512_setzero_ps (), (__mmask16) ((1u << n) - 1), offsets,
      p, sizeof (float));
#elif defined(MONE_KERNEL_BUILD_AVX2)
  const vi index = lane_index ();
  return (vf) _mm256_mask_i32gather_ps (_mm256_setzero_ps (), p, (__m256i) (index * stride),
      (__m256) (index < n), sizeof (float));
#else
  vf v = { 0 };
  for (int l = 0; l < n; l++)
    v[l] = p[(size_t) l * stride];
  return v;
#endif
}

/* Sum of the lanes in a fixed pairwise order, so results depend on nothing but the data. */
ALWAYS_INLINE float
hsum (vf v)
{
#if LANES == 16
  float a = ((v[0] + v[8]) + (v[4] + v[12])) + ((v[2] + v[10]) + (v[6] + v[14]));
  float b = ((v[1] + v[9]) + (v[5] + v[13])) + ((v[3] + v[11]) + (v[7] + v[15]));
#elif LANES == 8
  float a = (v[0] + v[4]) + (v[2] + v[6]);
  float b = (v[1] + v[5]) + (v[3] + v[7]);
#else
  float a = v[0] + v[2];
  float b = v[1] + v[3];
#endif
  return a + b;
}

ALWAYS_INLINE float
hmax (vf v)
{
  float m = v[0];
  for (int i = 1; i < LANES; i++)
    m = v[i] > m ? v[i] : m;
  return m;
}

/* The nearest integer to t (|t| < 2^22), as a float. */
ALWAYS_INLINE vf
vround (vf t)
{
#if defined(MONE_KERNEL_BUILD_AVX512)
  return (vf) _mm512_roundscale_ps ((__m512) t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#else
  const vf round_magic = splat (12582912.0f); /* 1.5 * 2^23: adding it rounds to an integer */
  return (t + round_magic) - round_magic;
#endif
}

/* p 2^n for an integer-valued n in [-126, 127]. */
ALWAYS_INLINE vf
vtimes_pow2 (vf p, vf n)
{
#if defined(MONE_KERNEL_BUILD_AVX512)
  return (vf) _mm512_scalef_ps ((__m512) p, (__m512) n);
#else
  return p * (vf) ((__builtin_convertvector(n, vi) + 127) << 23);
#endif
}

/* exp(x) = 2^n e^r with n = round(x / ln 2), |r| <= ln2 / 2, e^r by its Taylor polynomial to r^6
 * (truncation error < 2e-7 relative). Inputs are clamped to [-87, 88] so 2^n stays a normal float:
 * below, the result is ~1.6e-38 instead of a denormal, which no caller can tell from 0 (and
 * exp(-inf), a masked score, is ~1.6e-38 too).
 * vexp_ways computes `ways` (at most 8) independent exps step by step: each exp is a chain of some
 * twenty dependent operations, and issued one after another too few chains fit the out-of-order
 * window to keep the FMA pipes busy (docs/engine.md, Attention). Same results as vexp. */
ALWAYS_INLINE void
vexp_ways (const int ways, vf x[])
{
  vf n[8], r[8], p[8];
#define EACH_WAY _Pragma ("GCC unroll 8") for (int i = 0; i < ways; i++)
  EACH_WAY x[i] = vmin (vmax (x[i], splat (-87.0f)), splat (88.0f));
  EACH_WAY n[i] = vround (x[i] * splat (1.44269504088896341f));
  /* r = x - n ln2 in two steps (Cody-Waite) so the subtraction is exact for |n| < 2^8. */
  EACH_WAY r[i] = x[i] - n[i] * splat (0.693359375f);
  EACH_WAY r[i] = r[i] - n[i] * splat (-2.12194440e-4f);
  EACH_WAY p[i] = splat (1.0f / 720) * r[i] + splat (1.0f / 120);
  EACH_WAY p[i] = p[i] * r[i] + splat (1.0f / 24);
  EACH_WAY p[i] = p[i] * r[i] + splat (1.0f / 6);
  EACH_WAY p[i] = p[i] * r[i] + splat (0.5f);
  EACH_WAY p[i] = p[i] * r[i] + splat (1.0f);
  EACH_WAY p[i] = p[i] * r[i] + splat (1.0f);
  EACH_WAY x[i] = vtimes_pow2 (p[i], n[i]);
#undef EACH_WAY
}

/* 2^x = 2^n 2^r with n = round(x), |r| <= 1/2 (exact), 2^r by its Taylor polynomial to r^6
 * (truncation error < 1.2e-7 relative), for callers that can fold the log2(e) of exp into an
 * earlier multiply: no product and no two-step reduction per value. Inputs are clamped to
 * [-126, 127]. `ways` as in vexp_ways. */
ALWAYS_INLINE void
vexp2_ways (const int ways, vf x[])
{
  vf n[8], r[8], p[8];
#define EACH_WAY _Pragma ("GCC unroll 8") for (int i = 0; i < ways; i++)
  EACH_WAY x[i] = vmin (vmax (x[i], splat (-126.0f)), splat (127.0f));
  EACH_WAY n[i] = vround (x[i]);
  EACH_WAY r[i] = x[i] - n[i];
  EACH_WAY p[i] = splat (1.5403530393381606e-4f) * r[i] + splat (1.3333558146428443e-3f);
  EACH_WAY p[i] = p[i] * r[i] + splat (9.6181291076284772e-3f);
  EACH_WAY p[i] = p[i] * r[i] + splat (5.5504108664821580e-2f);
  EACH_WAY p[i] = p[i] * r[i] + splat (2.4022650695910071e-1f);
  EACH_WAY p[i] = p[i] * r[i] + splat (6.9314718055994531e-1f);
  EACH_WAY p[i] = p[i] * r[i] + splat (1.0f);
  EACH_WAY x[i] = vtimes_pow2 (p[i], n[i]);
#undef EACH_WAY
}

ALWAYS_INLINE vf
vexp (vf x)
{
  vexp_ways (1, &x);
  return x;
}

/* erf(x) = x P(x^2) / Q(x^2) on |x| < 3.925, exactly +-1 beyond (erf(3.925) = 1 - 7e-9 rounds to
 * 1 in float; the rational function there is 1 - 6e-8, and 1 + erf(x) would not reach 0 for large
 * negative x, making GELU(x) ~ 3e-8 x instead of 0). P and Q of degree 5:
 * a rational fit to erf made for this project (Sanathanan-Koerner iteration with Lawson weights on
 * Chebyshev nodes, coefficients rounded to float; max abs error 4.3e-8 before float rounding,
 * 2.9e-7 after). No exp and one division: GELU over N x F activations runs at every budget.
 * ErfRational holds the coefficients of erf(x / s) as a function of x, for a compile-time
 * constant s (ERF_RATIONAL): rescaled at compile time, where a multiply by 1 / s would cost one per
 * vector. */
typedef struct {
  float limit; /* |x| from which erf(x / s) is +-1 */
  float p[6];  /* P's coefficient of t^i, t = x^2 */
  float q[6];  /* Q's */
} ErfRational;

#define ERF_P_COEFF(i)                                                                             \
  ((const double[]){ 1.128378987e+00, 1.929705143e-01, 5.308407545e-02, 3.876237199e-03,           \
      2.874896745e-04, 2.030878932e-06 }[i])
#define ERF_Q_COEFF(i)                                                                             \
  ((const double[]){ 1.0, 5.043473244e-01, 1.151666045e-01, 1.518817712e-02, 1.189727336e-03,      \
      3.803141590e-05 }[i])
#define ERF_P(i, s) ((float) (ERF_P_COEFF (i) / (__builtin_pow ((s) * (s), (i)) * (s))))
#define ERF_Q(i, s) ((float) (ERF_Q_COEFF (i) / __builtin_pow ((s) * (s), (i))))
#define ERF_RATIONAL(s)                                                                            \
  ((ErfRational){ 3.925f * (s),                                                                    \
      { ERF_P (0, s), ERF_P (1, s), ERF_P (2, s), ERF_P (3, s), ERF_P (4, s), ERF_P (5, s) },      \
      { ERF_Q (0, s), ERF_Q (1, s), ERF_Q (2, s), ERF_Q (3, s), ERF_Q (4, s), ERF_Q (5, s) } })

/* c[5] t^5 + ... + c[0] by Horner's rule. */
ALWAYS_INLINE vf
vpoly5 (vf t, const float c[6])
{
  vf r = splat (c[5]);
  r = r * t + splat (c[4]);
  r = r * t + splat (c[3]);
  r = r * t + splat (c[2]);
  r = r * t + splat (c[1]);
  return r * t + splat (c[0]);
}

/* erf(x / s) for the coefficients of ERF_RATIONAL (s). */
ALWAYS_INLINE vf
verf_rational (vf x, const ErfRational c)
{
  /* Odd: evaluate at |x| (clamped), saturate, then put x's sign back. */
  const vi sign_bit = (vi) splat (-0.0f);
  const vf limit = splat (c.limit);
  const vf magnitude = (vf) ((vi) x & ~sign_bit);
  const vf a = vmin (magnitude, limit);
  const vf t = a * a;
  const vf y = vselect (magnitude >= limit, splat (1.0f), a * vpoly5 (t, c.p) / vpoly5 (t, c.q));
  return (vf) ((vi) y | ((vi) x & sign_bit));
}

ALWAYS_INLINE vf
verf (vf x)
{
  return verf_rational (x, ERF_RATIONAL (1.0));
}

#endif
