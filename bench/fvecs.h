/* fvecs.h - embedding sets on disk, and their exact truth, for the recall
 * benchmarks.
 *
 * The one idea: recall is only as good as its truth, so the truth is exact
 * (every stored vector scored against every query, in double) and computed
 * here, never taken from the tool that made the vectors. Files are in the
 * .fvecs format of FAISS and TEXMEX: per vector a little-endian int32
 * dimension, then that many float32 (bench/realtext/make_sets.py writes
 * them).
 */
#ifndef SIMCACHE_BENCH_FVECS_H
#define SIMCACHE_BENCH_FVECS_H

#include <stddef.h>
#include <stdint.h>

/* Read every vector of path (at most max_n, 0 = all) into a new array of
 * *n x *dim floats, each normalised to unit length (a zero or non-finite
 * vector fails). The caller frees it. Returns NULL with a message in err
 * on failure. */
float *fv_read(const char *path, uint64_t max_n, uint64_t *n, uint32_t *dim, char *err,
               size_t errlen);

/* Exact best of each query among the rows for which live (may be NULL: all)
 * is nonzero: row into best (-1 if no row), cosine into sim (in double, from
 * float vectors). Uses `threads` threads. */
void fv_exact_best(const float *rows, uint64_t n, const uint8_t *live, uint32_t dim,
                   const float *q, uint64_t nq, int threads, int64_t *best, double *sim);

/* Cosine in double of two dim-float vectors. */
double fv_dot(const float *a, const float *b, uint32_t dim);

#endif
