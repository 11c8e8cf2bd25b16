/* vec.c - embedding arithmetic: validation, normalisation, dot products.
 *
 * Every hot loop exists twice: plain C, and AVX2+FMA intrinsics compiled
 * through a target attribute, so the rest of the build needs no -mavx2. The
 * variant is picked once from __builtin_cpu_supports. vec_dot_many runs the
 * same kernel as vec_dot row by row, so both give bit-identical results for a
 * row: the index relies on that to score an entry the same way on every path.
 */
#include "vec.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "simcache.h"

#if defined(__x86_64__) || defined(__i386__)
#define VEC_X86 1
#include <immintrin.h>
#endif

enum { IMPL_UNKNOWN = 0, IMPL_SCALAR = 1, IMPL_AVX2 = 2 };

/* Written once, racy-but-idempotent: every thread computes the same value. */
static int impl_level = IMPL_UNKNOWN;
/* AVX-512 extensions used on top of IMPL_AVX2 (same rules): VPOPCNTDQ for
 * vec_hamming, BW for vec_dot_i8_i16, VL (with VPOPCNTDQ) for vec_code_filter.
 * EXT_KNOWN once probed. */
enum { EXT_KNOWN = 1, EXT_VPOPCNT = 2, EXT_AVX512BW = 4, EXT_AVX512VL = 8 };
static int ext_flags = 0;

static int impl_detect(void)
{
#ifdef VEC_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("popcnt"))
        return IMPL_AVX2;
#endif
    return IMPL_SCALAR;
}

static int impl_get(void)
{
    int l = __atomic_load_n(&impl_level, __ATOMIC_RELAXED);
    if (l == IMPL_UNKNOWN) {
        l = impl_detect();
        __atomic_store_n(&impl_level, l, __ATOMIC_RELAXED);
    }
    return l;
}

static int ext_get(void)
{
    int v = __atomic_load_n(&ext_flags, __ATOMIC_RELAXED);
    if (!v) {
        v = EXT_KNOWN;
#ifdef VEC_X86
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq"))
            v |= EXT_VPOPCNT;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
            v |= EXT_AVX512BW;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
            v |= EXT_AVX512VL;
#endif
        __atomic_store_n(&ext_flags, v, __ATOMIC_RELAXED);
    }
    return v;
}

void vec_force_scalar(int on)
{
    __atomic_store_n(&impl_level, on ? IMPL_SCALAR : impl_detect(), __ATOMIC_RELAXED);
}

const char *vec_impl(void)
{
    return impl_get() == IMPL_AVX2 ? "avx2" : "scalar";
}

int vec_normalize(const float *in, uint32_t dim, float *out)
{
    double ss = 0.0;
    float maxabs = 0.0f;

    if (dim == 0)
        return SIMCACHE_EEMBED;
    /* Squares summed in double: FLT_MAX^2 * SIMCACHE_MAX_DIM is far inside
     * double's range, so huge floats normalise exactly instead of to Inf. */
    for (uint32_t i = 0; i < dim; i++) {
        float v = in[i];
        if (!isfinite(v))
            return SIMCACHE_EEMBED;
        if (fabsf(v) > maxabs)
            maxabs = fabsf(v);
        ss += (double)v * (double)v;
    }
    /* Only zeros and subnormals: that is the zero vector on any hardware that
     * flushes denormals (GPUs, -ffast-math producers), so its direction is
     * noise. Refuse it rather than blow it up to unit length. */
    if (maxabs < FLT_MIN)
        return SIMCACHE_EEMBED;
    double norm = sqrt(ss);
    if (!isfinite(norm) || norm <= 0.0)
        return SIMCACHE_EEMBED;
    double inv = 1.0 / norm;
    for (uint32_t i = 0; i < dim; i++) {
        float f = (float)((double)in[i] * inv);
        /* Subnormal components carry nothing at unit scale and slow down
         * every later dot product on some CPUs. */
        out[i] = fabsf(f) < FLT_MIN ? 0.0f : f;
    }
    return 0;
}

/* ---- plain C ---- */

static float dot_scalar(const float *a, const float *b, uint32_t dim)
{
    /* Eight independent sums: shorter rounding chains, and the compiler may
     * turn them into SSE lanes. */
    float s[8] = { 0 };
    uint32_t i = 0;

    for (; i + 8 <= dim; i += 8)
        for (uint32_t k = 0; k < 8; k++)
            s[k] += a[i + k] * b[i + k];
    float t = 0.0f;
    for (; i < dim; i++)
        t += a[i] * b[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + t;
}

static void fwht_scalar(float *x, const float *diag, uint32_t n)
{
    if (diag != NULL)
        for (uint32_t i = 0; i < n; i++)
            x[i] *= diag[i];
    for (uint32_t h = 1; h < n; h *= 2)
        for (uint32_t i = 0; i < n; i += 2 * h)
            for (uint32_t j = i; j < i + h; j++) {
                float a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
}

static void sign_bits_scalar(const float *x, uint32_t n, uint64_t *bits)
{
    for (uint32_t w = 0; w < n / 64; w++) {
        uint64_t b = 0;
        for (uint32_t i = 0; i < 64; i++)
            b |= (uint64_t)(x[w * 64 + i] > 0.0f) << i;
        bits[w] = b;
    }
}

static uint32_t hamming_scalar(const uint64_t *a, const uint64_t *b, size_t words)
{
    uint32_t h = 0;
    for (size_t i = 0; i < words; i++)
        h += (uint32_t)__builtin_popcountll(a[i] ^ b[i]);
    return h;
}

static int64_t dot_i8_i16_scalar(const int8_t *a, const int16_t *b, uint32_t dim)
{
    int64_t r = 0;
    for (uint32_t i = 0; i < dim; i++)
        r += (int32_t)a[i] * b[i];
    return r;
}

/* out[i] = y[i] * inv rounded to nearest and clamped to +-16383, i < n. */
static void quant_i16_scalar(const float *y, uint32_t n, float inv, int16_t *out)
{
    for (uint32_t i = 0; i < n; i++) {
        float t = y[i] * inv;
        t = t > 16383.0f ? 16383.0f : t < -16383.0f ? -16383.0f : t;
        out[i] = (int16_t)(int)(t >= 0.0f ? t + 0.5f : t - 0.5f);
    }
}

/* max(mx, max |y[i]|) over i < n, or INFINITY if any y[i] is not finite. */
static float absmax_scalar(const float *y, uint32_t n, float mx)
{
    for (uint32_t i = 0; i < n; i++) {
        if (!(fabsf(y[i]) < INFINITY))
            return INFINITY;
        mx = fabsf(y[i]) > mx ? fabsf(y[i]) : mx;
    }
    return mx;
}

/* ---- AVX2 + FMA (and POPCNT, which every AVX2 CPU has) ---- */

#ifdef VEC_X86
/* Horizontal sum of four accumulators, in a fixed order. */
__attribute__((target("avx2,fma")))
static inline float hsum4_avx2(__m256 s0, __m256 s1, __m256 s2, __m256 s3)
{
    s0 = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* r + a*b with one rounding, explicitly, so every kernel rounds alike. */
__attribute__((target("avx2,fma")))
static inline float fma1_avx2(float a, float b, float r)
{
    return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(r)));
}

/* Four accumulators over 32-float blocks, 8-float blocks into the first,
 * reduce in a fixed order, scalar tail. */
__attribute__((target("avx2,fma")))
static inline float dot_avx2_kernel(const float *a, const float *b, uint32_t dim)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    uint32_t i = 0;

    for (; i + 32 <= dim; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= dim; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float r = hsum4_avx2(s0, s1, s2, s3);
    for (; i < dim; i++)
        r = fma1_avx2(a[i], b[i], r);
    return r;
}

__attribute__((target("avx2,fma")))
static float dot_avx2(const float *a, const float *b, uint32_t dim)
{
    return dot_avx2_kernel(a, b, dim);
}

__attribute__((target("avx2,fma")))
static void fwht_avx2(float *x, const float *diag, uint32_t n)
{
    uint32_t h = 1;
    if (n >= 8) {
        /* The diagonal and the strides 1, 2 and 4 (inside one register)
         * in one pass, in the scalar variant's order, so both round alike:
         * each stage adds the partner lane (a permutation of v) where the
         * lane is the lower of a pair, and subtracts v from it where upper. */
        for (uint32_t i = 0; i < n; i += 8) {
            __m256 v = _mm256_loadu_ps(x + i), t;
            if (diag != NULL)
                v = _mm256_mul_ps(v, _mm256_loadu_ps(diag + i));
            t = _mm256_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1));
            v = _mm256_blend_ps(_mm256_add_ps(v, t), _mm256_sub_ps(t, v), 0xAA);
            t = _mm256_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2));
            v = _mm256_blend_ps(_mm256_add_ps(v, t), _mm256_sub_ps(t, v), 0xCC);
            t = _mm256_permute2f128_ps(v, v, 0x01);
            v = _mm256_blend_ps(_mm256_add_ps(v, t), _mm256_sub_ps(t, v), 0xF0);
            _mm256_storeu_ps(x + i, v);
        }
        h = 8;
    } else if (diag != NULL) {
        for (uint32_t i = 0; i < n; i++)
            x[i] *= diag[i];
    }
    /* n below one register: plain butterflies. */
    for (; h < n && h < 8; h *= 2)
        for (uint32_t i = 0; i < n; i += 2 * h)
            for (uint32_t j = i; j < i + h; j++) {
                float a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
    for (; h < n; h *= 2)
        for (uint32_t i = 0; i < n; i += 2 * h)
            for (uint32_t j = i; j < i + h; j += 8) {
                __m256 a = _mm256_loadu_ps(x + j), b = _mm256_loadu_ps(x + j + h);
                _mm256_storeu_ps(x + j, _mm256_add_ps(a, b));
                _mm256_storeu_ps(x + j + h, _mm256_sub_ps(a, b));
            }
}

/* Integer dot products: each madd lane adds two products of at most
 * 127 * 16383 in magnitude, so an int32 lane holds 256 madds (2^31 / 2^22
 * per pair, halved for margin) before it is flushed into int64. */
#define I16_BLOCK 256u

__attribute__((target("avx2")))
static int64_t dot_i8_i16_avx2(const int8_t *a, const int16_t *b, uint32_t dim)
{
    int64_t r = 0;
    uint32_t i = 0;
    while (i + 16 <= dim) {
        __m256i acc = _mm256_setzero_si256();
        for (uint32_t k = 0; k < I16_BLOCK && i + 16 <= dim; k++, i += 16) {
            __m256i x = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a + i)));
            __m256i y = _mm256_loadu_si256((const __m256i *)(b + i));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(x, y));
        }
        int32_t lane[8];
        _mm256_storeu_si256((__m256i *)lane, acc);
        for (int l = 0; l < 8; l++)
            r += lane[l];
    }
    return r + dot_i8_i16_scalar(a + i, b + i, dim - i);
}

__attribute__((target("avx512f,avx512bw")))
static int64_t dot_i8_i16_avx512(const int8_t *a, const int16_t *b, uint32_t dim)
{
    int64_t r = 0;
    uint32_t i = 0;
    while (i + 32 <= dim) {
        __m512i acc = _mm512_setzero_si512();
        for (uint32_t k = 0; k < I16_BLOCK && i + 32 <= dim; k++, i += 32) {
            __m512i x = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(a + i)));
            __m512i y = _mm512_loadu_si512((const void *)(b + i));
            acc = _mm512_add_epi32(acc, _mm512_madd_epi16(x, y));
        }
        /* Widen before the sum: 16 lanes of up to 2^30 could overflow int32. */
        r += _mm512_reduce_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(acc)));
        r += _mm512_reduce_add_epi64(_mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(acc, 1)));
    }
    return r + dot_i8_i16_scalar(a + i, b + i, dim - i);
}

/* Max |y[i]| (INFINITY if any y[i] is not finite), and y / sc rounded to int16 (ties to even: within 0.5 all
 * the same, which is all vec_quant_i16 promises). */
__attribute__((target("avx2,fma")))
static float absmax_avx2(const float *y, uint32_t dim)
{
    const __m256 nosign = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 inf = _mm256_set1_ps(INFINITY);
    __m256 m = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
    uint32_t i = 0;
    for (; i + 8 <= dim; i += 8) {
        __m256 a = _mm256_and_ps(_mm256_loadu_ps(y + i), nosign);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, inf, _CMP_NLT_UQ)); /* Inf, NaN */
        m = _mm256_max_ps(m, a);
    }
    if (_mm256_movemask_ps(bad))
        return INFINITY;
    float lane[8], mx = 0.0f;
    _mm256_storeu_ps(lane, m);
    for (int l = 0; l < 8; l++)
        mx = lane[l] > mx ? lane[l] : mx;
    return absmax_scalar(y + i, dim - i, mx);
}

__attribute__((target("avx2,fma")))
static void quant_i16_avx2(const float *y, uint32_t dim, float inv, int16_t *out)
{
    const __m256 vinv = _mm256_set1_ps(inv), hi = _mm256_set1_ps(16383.0f),
                 lo = _mm256_set1_ps(-16383.0f);
    uint32_t i = 0;
    for (; i + 16 <= dim; i += 16) {
        __m256 a = _mm256_mul_ps(_mm256_loadu_ps(y + i), vinv);
        __m256 b = _mm256_mul_ps(_mm256_loadu_ps(y + i + 8), vinv);
        a = _mm256_max_ps(_mm256_min_ps(a, hi), lo);
        b = _mm256_max_ps(_mm256_min_ps(b, hi), lo);
        __m256i p = _mm256_packs_epi32(_mm256_cvtps_epi32(a), _mm256_cvtps_epi32(b));
        p = _mm256_permute4x64_epi64(p, _MM_SHUFFLE(3, 1, 2, 0));
        _mm256_storeu_si256((__m256i *)(out + i), p);
    }
    quant_i16_scalar(y + i, dim - i, inv, out + i);
}

__attribute__((target("avx2,fma")))
static void sign_bits_avx2(const float *x, uint32_t n, uint64_t *bits)
{
    const __m256 zero = _mm256_setzero_ps();
    for (uint32_t w = 0; w < n / 64; w++) {
        uint64_t b = 0;
        for (uint32_t k = 0; k < 8; k++) {
            __m256 v = _mm256_loadu_ps(x + w * 64 + k * 8);
            uint32_t m = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_GT_OQ));
            b |= (uint64_t)m << (k * 8);
        }
        bits[w] = b;
    }
}

__attribute__((target("popcnt")))
static uint32_t hamming_popcnt(const uint64_t *a, const uint64_t *b, size_t words)
{
    uint32_t h = 0;
    for (size_t i = 0; i < words; i++)
        h += (uint32_t)__builtin_popcountll(a[i] ^ b[i]);
    return h;
}

/* Eight words per step: XOR, VPOPCNTQ, add; the tail masked. */
__attribute__((target("avx512f,avx512vpopcntdq")))
static uint32_t hamming_avx512(const uint64_t *a, const uint64_t *b, size_t words)
{
    __m512i acc = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 8 <= words; i += 8) {
        __m512i x = _mm512_xor_si512(_mm512_loadu_si512(a + i), _mm512_loadu_si512(b + i));
        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(x));
    }
    if (i < words) {
        __mmask8 m = (__mmask8)((1u << (words - i)) - 1u);
        __m512i x = _mm512_xor_si512(_mm512_maskz_loadu_epi64(m, a + i),
                                     _mm512_maskz_loadu_epi64(m, b + i));
        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(x));
    }
    return (uint32_t)_mm512_reduce_add_epi64(acc);
}

/* Up to 16 words of code: q in two registers for the whole run. */
__attribute__((target("avx512f,avx512vpopcntdq")))
static void hamming_many_avx512(const uint64_t *recs, size_t stride, size_t n, const uint64_t *q,
                                size_t words, uint32_t *out)
{
    __mmask8 m0 = (__mmask8)(words >= 8 ? 0xffu : (1u << words) - 1u);
    __mmask8 m1 = (__mmask8)(words >= 16 ? 0xffu : words > 8 ? (1u << (words - 8)) - 1u : 0u);
    __m512i q0 = _mm512_maskz_loadu_epi64(m0, q), q1 = _mm512_maskz_loadu_epi64(m1, q + 8);
    for (size_t r = 0; r < n; r++) {
        const uint64_t *a = recs + r * stride;
        __m512i x0 = _mm512_xor_si512(_mm512_maskz_loadu_epi64(m0, a), q0);
        __m512i x1 = _mm512_xor_si512(_mm512_maskz_loadu_epi64(m1, a + 8), q1);
        __m512i c = _mm512_add_epi64(_mm512_popcnt_epi64(x0), _mm512_popcnt_epi64(x1));
        out[r] = (uint32_t)_mm512_reduce_add_epi64(c);
    }
}

__attribute__((target("avx2,fma")))
static void dot_many_avx2(const float *rows, size_t n, const float *x, uint32_t dim, float *out)
{
    /* Row by row with the vec_dot kernel: bit-identical results, and two rows
     * at a time (eight chains, x loaded once) measured slower here: the rows
     * stream from L3 or memory, not from registers. */
    for (size_t r = 0; r < n; r++)
        out[r] = dot_avx2_kernel(rows + r * dim, x, dim);
}
#endif

float vec_dot(const float *a, const float *b, uint32_t dim)
{
#ifdef VEC_X86
    if (impl_get() == IMPL_AVX2)
        return dot_avx2(a, b, dim);
#endif
    return dot_scalar(a, b, dim);
}

void vec_dot_many(const float *rows, size_t n, const float *x, uint32_t dim, float *out)
{
#ifdef VEC_X86
    if (impl_get() == IMPL_AVX2) {
        dot_many_avx2(rows, n, x, dim, out);
        return;
    }
#endif
    for (size_t r = 0; r < n; r++)
        out[r] = dot_scalar(rows + r * dim, x, dim);
}

void vec_fwht(float *x, const float *diag, uint32_t n)
{
#ifdef VEC_X86
    if (impl_get() == IMPL_AVX2) {
        fwht_avx2(x, diag, n);
        return;
    }
#endif
    fwht_scalar(x, diag, n);
}

void vec_sign_bits(const float *x, uint32_t n, uint64_t *bits)
{
#ifdef VEC_X86
    if (impl_get() == IMPL_AVX2) {
        sign_bits_avx2(x, n, bits);
        return;
    }
#endif
    sign_bits_scalar(x, n, bits);
}

uint32_t vec_hamming(const uint64_t *a, const uint64_t *b, size_t words)
{
#ifdef VEC_X86
    if (impl_get() == IMPL_AVX2)
        return (ext_get() & EXT_VPOPCNT) ? hamming_avx512(a, b, words) : hamming_popcnt(a, b, words);
#endif
    return hamming_scalar(a, b, words);
}

void vec_hamming_many(const uint64_t *recs, size_t stride, size_t n, const uint64_t *q,
                      size_t words, uint32_t *out)
{
#ifdef VEC_X86
    if (impl_get() == IMPL_AVX2 && (ext_get() & EXT_VPOPCNT) && words <= 16) {
        hamming_many_avx512(recs, stride, n, q, words, out);
        return;
    }
#endif
    for (size_t r = 0; r < n; r++)
        out[r] = vec_hamming(recs + r * stride, q, words);
}

/* ---- scattered Hamming distances ---- */

#define SEL_AHEAD 8u

static void hamming_sel_scalar(const uint64_t *recs, size_t stride, const uint32_t *slots,
                               size_t n, const uint64_t *q, size_t words, uint32_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = vec_hamming(recs + (size_t)slots[i] * stride, q, words);
}

#ifdef VEC_X86
__attribute__((target("avx512f,avx512vpopcntdq")))
static void hamming_sel_avx512(const uint64_t *recs, size_t stride, const uint32_t *slots,
                               size_t n, const uint64_t *q, size_t words, uint32_t *out)
{
    __mmask8 m0 = (__mmask8)(words >= 8 ? 0xffu : (1u << words) - 1u);
    __mmask8 m1 = (__mmask8)(words >= 16 ? 0xffu : words > 8 ? (1u << (words - 8)) - 1u : 0u);
    __m512i q0 = _mm512_maskz_loadu_epi64(m0, q), q1 = _mm512_maskz_loadu_epi64(m1, q + 8);
    for (size_t i = 0; i < n; i++) {
        if (i + SEL_AHEAD < n) {
            const char *p = (const char *)(recs + (size_t)slots[i + SEL_AHEAD] * stride);
            for (size_t off = 0; off < words * sizeof(uint64_t); off += 64)
                __builtin_prefetch(p + off);
        }
        const uint64_t *a = recs + (size_t)slots[i] * stride;
        __m512i x0 = _mm512_xor_si512(_mm512_maskz_loadu_epi64(m0, a), q0);
        __m512i x1 = _mm512_xor_si512(_mm512_maskz_loadu_epi64(m1, a + 8), q1);
        __m512i c = _mm512_add_epi64(_mm512_popcnt_epi64(x0), _mm512_popcnt_epi64(x1));
        out[i] = (uint32_t)_mm512_reduce_add_epi64(c);
    }
}
#endif

void vec_hamming_sel(const uint64_t *recs, size_t stride, const uint32_t *slots, size_t n,
                     const uint64_t *q, size_t words, uint32_t *out)
{
#ifdef VEC_X86
    if (impl_get() == IMPL_AVX2 && (ext_get() & EXT_VPOPCNT) && words <= 16) {
        hamming_sel_avx512(recs, stride, slots, n, q, words, out);
        return;
    }
#endif
    hamming_sel_scalar(recs, stride, slots, n, q, words, out);
}

/* ---- the index's first filter ---- */

static size_t code_filter_scalar(const uint64_t *codes, size_t words, const float *mux,
                                 const float *nx, size_t n, const uint64_t *q, uint32_t hmax,
                                 const float *cmax, float ny, float base, float thr,
                                 uint32_t first, uint32_t *idx, float *fl)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t h = hamming_scalar(codes + i * words, q, words);
        if (h > hmax)
            continue;
        float f = cmax[h] * (nx[i] * ny) + mux[i] + base;
        /* Written always, counted only when kept: no branch to mispredict. */
        idx[k] = first + (uint32_t)i;
        fl[k] = f;
        k += f >= thr;
    }
    return k;
}

#ifdef VEC_X86
__attribute__((target("popcnt")))
static size_t code_filter_popcnt(const uint64_t *codes, size_t words, const float *mux,
                                 const float *nx, size_t n, const uint64_t *q, uint32_t hmax,
                                 const float *cmax, float ny, float base, float thr,
                                 uint32_t first, uint32_t *idx, float *fl)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const uint64_t *c = codes + i * words;
        uint32_t h = 0;
        for (size_t w = 0; w < words; w++)
            h += (uint32_t)__builtin_popcountll(c[w] ^ q[w]);
        if (h > hmax)
            continue;
        float f = cmax[h] * (nx[i] * ny) + mux[i] + base;
        idx[k] = first + (uint32_t)i;
        fl[k] = f;
        k += f >= thr;
    }
    return k;
}

/* Eight entries a step: popcounts of the XORed words, summed per entry
 * with two-source permutes; a step whose eight distances all pass hmax
 * ends there (the common case), the others get their floors from a gather
 * of cmax, and the kept ones are compressed out. words is 1, 2 or 4. */
__attribute__((target("avx512f,avx512vl,avx512vpopcntdq")))
static size_t code_filter_avx512(const uint64_t *codes, size_t words, const float *mux,
                                 const float *nx, size_t n, const uint64_t *q, uint32_t hmax,
                                 const float *cmax, float ny, float base, float thr,
                                 uint32_t first, uint32_t *idx, float *fl)
{
    const __m512i vh = _mm512_set1_epi64((long long)hmax);
    const __m512i ev = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i od = _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1);
    __m512i qv;
    if (words == 1)
        qv = _mm512_set1_epi64((long long)q[0]);
    else if (words == 2)
        qv = _mm512_set_epi64((long long)q[1], (long long)q[0], (long long)q[1], (long long)q[0],
                              (long long)q[1], (long long)q[0], (long long)q[1], (long long)q[0]);
    else
        qv = _mm512_set_epi64((long long)q[3], (long long)q[2], (long long)q[1], (long long)q[0],
                              (long long)q[3], (long long)q[2], (long long)q[1], (long long)q[0]);
    const __m256 vny = _mm256_set1_ps(ny), vb = _mm256_set1_ps(base), vt = _mm256_set1_ps(thr);
    __m256i lane = _mm256_add_epi32(_mm256_set1_epi32((int)first),
                                    _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0));
    const __m256i eight = _mm256_set1_epi32(8);
    size_t k = 0, i = 0;

    for (; i + 8 <= n; i += 8) {
        const uint64_t *c = codes + i * words;
        __m512i h;
        if (words == 1) {
            h = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(c), qv));
        } else if (words == 2) {
            __m512i a = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(c), qv));
            __m512i b = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(c + 8), qv));
            h = _mm512_add_epi64(_mm512_permutex2var_epi64(a, ev, b),
                                 _mm512_permutex2var_epi64(a, od, b));
        } else {
            __m512i a = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(c), qv));
            __m512i b = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(c + 8), qv));
            __m512i d = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(c + 16), qv));
            __m512i e = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(c + 24), qv));
            __m512i ab = _mm512_add_epi64(_mm512_permutex2var_epi64(a, ev, b),
                                          _mm512_permutex2var_epi64(a, od, b));
            __m512i de = _mm512_add_epi64(_mm512_permutex2var_epi64(d, ev, e),
                                          _mm512_permutex2var_epi64(d, od, e));
            h = _mm512_add_epi64(_mm512_permutex2var_epi64(ab, ev, de),
                                 _mm512_permutex2var_epi64(ab, od, de));
        }
        __mmask8 near = _mm512_cmple_epu64_mask(h, vh);
        if (near == 0) {
            lane = _mm256_add_epi32(lane, eight);
            continue;
        }
        __m256 cm = _mm256_mmask_i32gather_ps(_mm256_set1_ps(-4.0f), near,
                                              _mm512_cvtepi64_epi32(h), cmax, 4);
        __m256 f = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(cm, _mm256_mul_ps(_mm256_loadu_ps(nx + i), vny)),
                                               _mm256_loadu_ps(mux + i)), vb);
        __mmask8 m = _mm256_mask_cmp_ps_mask(near, f, vt, _CMP_GE_OQ);
        _mm256_mask_compressstoreu_epi32(idx + k, m, lane);
        _mm256_mask_compressstoreu_ps(fl + k, m, f);
        k += (size_t)__builtin_popcount(m);
        lane = _mm256_add_epi32(lane, eight);
    }
    return k + code_filter_popcnt(codes + i * words, words, mux + i, nx + i, n - i, q, hmax, cmax,
                                  ny, base, thr, first + (uint32_t)i, idx + k, fl + k);
}
#endif

size_t vec_code_filter(const uint64_t *codes, size_t words, const float *mux, const float *nx,
                       size_t n, const uint64_t *q, uint32_t hmax, const float *cmax, float ny,
                       float base, float thr, uint32_t first, uint32_t *idx, float *fl)
{
#ifdef VEC_X86
    if (impl_get() == IMPL_AVX2) {
        if ((ext_get() & (EXT_VPOPCNT | EXT_AVX512VL)) == (EXT_VPOPCNT | EXT_AVX512VL) &&
            (words == 1 || words == 2 || words == 4))
            return code_filter_avx512(codes, words, mux, nx, n, q, hmax, cmax, ny, base, thr,
                                      first, idx, fl);
        return code_filter_popcnt(codes, words, mux, nx, n, q, hmax, cmax, ny, base, thr, first,
                                  idx, fl);
    }
#endif
    return code_filter_scalar(codes, words, mux, nx, n, q, hmax, cmax, ny, base, thr, first, idx,
                              fl);
}

float vec_quant_i16(const float *y, uint32_t dim, int16_t *out, float *err)
{
    float mx = 0.0f;
#ifdef VEC_X86
    if (impl_get() == IMPL_AVX2)
        mx = absmax_avx2(y, dim);
    else
#endif
        mx = absmax_scalar(y, dim, 0.0f);
    /* Zero, subnormal-small (where 1 / sc would overflow) or not finite:
     * all zeros, which is within |y| of y. */
    if (!(mx >= 1e-30f) || !isfinite(mx)) {
        double n2 = 0.0;
        for (uint32_t i = 0; i < dim; i++)
            n2 += (double)y[i] * y[i];
        memset(out, 0, dim * sizeof *out);
        *err = !(n2 < INFINITY) ? INFINITY
               : n2 > 0.0    ? nextafterf((float)sqrt(n2), INFINITY)
                             : 0.0f;
        return 0.0f;
    }
    float sc = mx / 16383.0f, inv = 1.0f / sc;
    /* y[i] * inv is y[i] / sc to within a few units in the last place of
     * 16383 (< 0.005), so out[i], rounded to nearest and clamped, is within
     * 0.51 of y[i] / sc: |y - sc out| <= 0.51 sc sqrt(dim), the float
     * rounding of that product covered by the 1.001. */
#ifdef VEC_X86
    if (impl_get() == IMPL_AVX2)
        quant_i16_avx2(y, dim, inv, out);
    else
#endif
        quant_i16_scalar(y, dim, inv, out);
    *err = 0.51f * 1.001f * sc * sqrtf((float)dim);
    return sc;
}

int64_t vec_dot_i8_i16(const int8_t *a, const int16_t *b, uint32_t dim)
{
#ifdef VEC_X86
    if (impl_get() == IMPL_AVX2)
        return (ext_get() & EXT_AVX512BW) ? dot_i8_i16_avx512(a, b, dim) : dot_i8_i16_avx2(a, b, dim);
#endif
    return dot_i8_i16_scalar(a, b, dim);
}
