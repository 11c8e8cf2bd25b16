/* vec.h - embedding arithmetic: validation, normalisation, dot products.
 *
 * The hot loops (dot products, projections) have an AVX2+FMA variant chosen
 * at run time where the CPU has it, and a plain C variant otherwise; both give
 * the same answers to within float rounding.
 */
#ifndef SIMCACHE_VEC_H
#define SIMCACHE_VEC_H

#include <stddef.h>
#include <stdint.h>

/* Copy `in` (dim floats) to `out` scaled to unit length.
 * Returns 0, or SIMCACHE_EEMBED if any value is NaN or Inf, the vector is zero,
 * or its norm overflows. in and out may alias.
 * The norm is computed in double, so vectors of huge (finite) floats normalise
 * correctly and the overflow case cannot arise below SIMCACHE_MAX_DIM. A
 * vector whose components are all zero or subnormal counts as the zero vector
 * (it is zero wherever denormals are flushed). Output components that would
 * be subnormal are written as 0. On error `out` is left unchanged. */
int vec_normalize(const float *in, uint32_t dim, float *out);

/* Dot product of two dim-float vectors. */
float vec_dot(const float *a, const float *b, uint32_t dim);

/* out[i] = dot(rows + i*dim, x) for i < n (rows is n*dim floats, row-major).
 * Each out[i] is bit-identical to vec_dot(rows + i*dim, x, dim). */
void vec_dot_many(const float *rows, size_t n, const float *x, uint32_t dim, float *out);

/* out[i] = y[i] / s rounded to nearest (ties either way), s = max |y[i]| /
 * 16383, so that y ~ s * out; *err >= |y - s * out| (Euclidean: a bound,
 * 0.51 s sqrt(dim), not a measurement). Returns s; 0 (out all zero, *err =
 * |y| rounded up) if y is zero, below 1e-30 everywhere, or not finite. */
float vec_quant_i16(const float *y, uint32_t dim, int16_t *out, float *err);

/* Exact integer dot product of dim int8 and dim int16 values, |b[i]| <=
 * 16383 (AVX-512BW or AVX2 madd, int32 lanes widened before they could
 * overflow; plain C otherwise): the same answer on every path. */
int64_t vec_dot_i8_i16(const int8_t *a, const int16_t *b, uint32_t dim);

/* x = H (diag .* x) in place: the Walsh-Hadamard transform of n floats (n a
 * power of two), without the 1/sqrt(n) scaling, so it multiplies norms by
 * sqrt(n); diag (n floats) is applied elementwise first, or skipped if NULL. */
void vec_fwht(float *x, const float *diag, uint32_t n);

/* Bit i of bits (n/64 words, n a multiple of 64) = x[i] > 0. */
void vec_sign_bits(const float *x, uint32_t n, uint64_t *bits);

/* Number of differing bits between two codes of `words` 64-bit words
 * (AVX-512 VPOPCNTQ where the CPU has it, else POPCNT or plain C). */
uint32_t vec_hamming(const uint64_t *a, const uint64_t *b, size_t words);

/* out[r] = vec_hamming(recs + r * stride, q, words) for r < n: a run of
 * code records (stride >= words 64-bit words apart) against one code, with
 * q kept in registers where words <= 16. */
void vec_hamming_many(const uint64_t *recs, size_t stride, size_t n, const uint64_t *q,
                      size_t words, uint32_t *out);

/* out[i] = vec_hamming(recs + slots[i] * stride, q, words) for i < n: a
 * scattered selection of code records, fetched ahead of use. */
void vec_hamming_sel(const uint64_t *recs, size_t stride, const uint32_t *slots, size_t n,
                     const uint64_t *q, size_t words, uint32_t *out);

/* The index's first filter (see index.c, stage 1): for i < n, with h the
 * Hamming distance between codes + i * words and q (words <= 4 64-bit
 * words), entries with h > hmax are dropped at once; for the others the
 * floor f = cmax[h] * (nx[i] * ny) + mux[i] + base is computed, and every i
 * with f >= thr goes to idx (as first + i) and f to fl, in order. cmax has
 * words * 64 + 1 entries. Returns how many. The SIMD variants may round f
 * differently in the last place (contracted multiply-adds). */
size_t vec_code_filter(const uint64_t *codes, size_t words, const float *mux, const float *nx,
                       size_t n, const uint64_t *q, uint32_t hmax, const float *cmax, float ny,
                       float base, float thr, uint32_t first, uint32_t *idx, float *fl);

/* Name of the variant in use ("avx2", "scalar"). */
const char *vec_impl(void);

/* Test and benchmark hook: on != 0 selects the plain C variant from now on,
 * 0 goes back to the best one the CPU has. Do not call while other threads
 * are inside vec_ functions. */
void vec_force_scalar(int on);

#endif
