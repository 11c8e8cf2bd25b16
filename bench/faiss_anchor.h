/* faiss_anchor.h - the FAISS anchors of the index benchmarks, behind a small
 * C interface (Debian's libfaiss.a has no C API symbols, so this is C++).
 *
 * IndexFlatIP is exact search: on unit vectors its inner product is the
 * cosine, so it gives the ground truth and the "exact, in process" anchor.
 * IndexLSH is FAISS's random-projection sign hashing: a flat Hamming scan of
 * every code, whose top k are then re-ranked by exact cosine (what
 * IndexRefineFlat does; done here on the flat index's rows, so the vectors
 * are stored once). IndexHNSWFlat with the inner-product metric is the
 * graph anchor: approximate, fast, its own copy of the vectors. Every call
 * returns 0 or -1 (NULL) with fa_last_error() set;
 * none throws. Objects are not thread-safe; FAISS itself uses OpenMP inside
 * a call (fa_set_threads).
 */
#ifndef SIMCACHE_BENCH_FAISS_ANCHOR_H
#define SIMCACHE_BENCH_FAISS_ANCHOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fa_flat fa_flat_t;
typedef struct fa_lsh fa_lsh_t;
typedef struct fa_hnsw fa_hnsw_t;

/* "1.7.3". */
const char *fa_version(void);
/* Detail of the last failure on this thread ("" if none). */
const char *fa_last_error(void);
/* OpenMP threads FAISS and OpenBLAS may use in the next calls. */
void fa_set_threads(int n);
int fa_max_threads(void);   /* what OpenMP would use by default (the cores) */

/* IndexFlatIP for dim, holding n rows that the caller writes through
 * fa_flat_rows (n * dim floats, zero at first, owned by the index). Freed by
 * fa_flat_free. NULL on failure. */
fa_flat_t *fa_flat_new(uint32_t dim, uint64_t n);
float *fa_flat_rows(fa_flat_t *f);
void fa_flat_free(fa_flat_t *f);
/* Best row (k = 1) of each of nq queries: row into best, inner product into
 * sim. FAISS uses BLAS from 20 queries up and a scan below. */
int fa_flat_search(fa_flat_t *f, const float *q, size_t nq, int64_t *best, float *sim);

/* IndexLSH(dim, nbits, rotate_data = true, train_thresholds); trained on
 * ntrain rows of x when train_thresholds (the per-bit median, which centres
 * anisotropic data), then every row of flat added. NULL on failure. */
fa_lsh_t *fa_lsh_new(const fa_flat_t *flat, int nbits, int train_thresholds, size_t ntrain);
void fa_lsh_free(fa_lsh_t *l);
uint64_t fa_lsh_code_bytes(const fa_lsh_t *l);  /* per entry */
/* One query: the top k rows by Hamming distance, re-ranked by exact inner
 * product on the flat rows; *best (-1 if none) and *sim get the highest. */
int fa_lsh_best(fa_lsh_t *l, const float *q, int k, int64_t *best, float *sim);

/* IndexHNSWFlat(dim, m, METRIC_INNER_PRODUCT) with efConstruction
 * ef_construction and efSearch ef_search, holding a copy of every row of
 * flat (added with the OpenMP threads set by fa_set_threads). NULL on
 * failure. */
fa_hnsw_t *fa_hnsw_new(const fa_flat_t *flat, int m, int ef_construction, int ef_search);
void fa_hnsw_free(fa_hnsw_t *h);
/* One query, k = 1: *best (-1 if none) and *sim (its inner product). */
int fa_hnsw_best(fa_hnsw_t *h, const float *q, int64_t *best, float *sim);

/* Inner product (FAISS's SIMD kernel). */
float fa_dot(const float *a, const float *b, uint32_t dim);

#ifdef __cplusplus
}
#endif
#endif
