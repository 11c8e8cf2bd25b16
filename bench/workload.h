/* workload.h - synthetic task embeddings shaped like mean-pooled LLM hidden
 * states, for the index benchmark.
 *
 * The one idea: every vector is a*m + b*t + c*z, normalised, where m is one
 * global mean direction shared by everything (anisotropy: unrelated items
 * still have cosine 0.3 to 0.6), t the centre of the item's topic (topics
 * nest in super-topics and have skewed sizes), and z noise whose variance
 * decays over the coordinates (a low effective rank, as in real hidden
 * states). On top: base entries that are near-duplicates of earlier ones, and
 * queries built at an exact cosine to a chosen base entry (near-duplicates at
 * 0.80 to 0.99, hard negatives at 0.70 to 0.79) or unrelated. Everything is a
 * pure function of (seed, index), so threads can generate slices in any
 * order and get the same vectors. Which entry is really the best match of a
 * query is decided only by exact search (wl_exact_best or FAISS), never by
 * the construction.
 */
#ifndef SIMCACHE_BENCH_WORKLOAD_H
#define SIMCACHE_BENCH_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t dim;
    uint64_t seed;
    uint32_t n_super;       /* super-topics */
    uint32_t n_topics;      /* topics, each in one super-topic */
    float mean_lo, mean_hi; /* a^2 of an item, uniform in [lo, hi] */
    float topic_lo, topic_hi; /* b^2 of an item, uniform in [lo, hi]; c^2 = rest */
    float super_share;      /* share (squared) of a topic centre that is its
                             * super-topic's direction */
    float twin_frac;        /* base entries that are near-duplicates of an earlier one */
    float near_lo, near_hi; /* cosine of near-duplicates (base twins, WL_NEAR queries) */
    float hard_lo, hard_hi; /* cosine of hard negatives (WL_HARD queries) */
} wl_params_t;

typedef enum {
    WL_NEAR = 0,        /* near-duplicate of a base entry */
    WL_HARD = 1,        /* hard negative: just below the threshold to a base entry */
    WL_UNRELATED = 2,   /* a fresh item of a random topic */
    WL_NKINDS = 3,
} wl_kind_t;

/* What a query was built from (the exact best match may still be another
 * entry: only exact search says). */
typedef struct {
    wl_kind_t kind;
    uint64_t base;      /* the base entry it was built from (WL_UNRELATED: none, 0) */
    float target;       /* cosine to that entry by construction (WL_UNRELATED: 0) */
} wl_query_info_t;

typedef struct workload wl_t;

/* Defaults tuned for threshold 0.8 (see workload.c): 32 super-topics, 1024
 * topics, a^2 in [0.30, 0.45], b^2 in [0.15, 0.30], super share 0.35, 5%
 * twins, near 0.80-0.99, hard 0.70-0.79. */
void wl_params_default(wl_params_t *p, uint32_t dim, uint64_t seed);

/* Draw the mean direction and the topic centres. Returns NULL on bad
 * parameters (dim 0, no topics, shares that do not fit in 1) or out of
 * memory. Free with wl_free. A workload is read-only after wl_new: any number
 * of threads may call the generators below at once. */
wl_t *wl_new(const wl_params_t *p);
void wl_free(wl_t *w);
uint32_t wl_dim(const wl_t *w);

/* Base entry i (unit vector, dim floats) into out. Entry i depends only on
 * (seed, i): entries of a run with n base entries are entries 0..n-1 of one
 * run with more. A twin's source is an earlier non-twin entry. */
void wl_base(const wl_t *w, uint64_t i, float *out);
/* 1 if base entry i is a near-duplicate of an earlier one (*src, may be NULL,
 * gets that entry), else 0. */
int wl_base_is_twin(const wl_t *w, uint64_t i, uint64_t *src);
/* Topic of base entry i (of its source, for a twin). */
uint32_t wl_base_topic(const wl_t *w, uint64_t i);

/* Query q of a run with n_base base entries (unit vector into out; info may
 * be NULL). Its kind is wl_query_kind(q); it depends only on (seed, q,
 * n_base). scratch: dim floats. */
void wl_query(const wl_t *w, uint64_t n_base, uint64_t q, float *out, float *scratch,
              wl_query_info_t *info);
/* Kind of query q: a fixed shuffle with 50% near-duplicates, 25% hard
 * negatives, 25% unrelated. */
wl_kind_t wl_query_kind(const wl_t *w, uint64_t q);
const char *wl_kind_name(wl_kind_t k);

/* Exact search, for ground truth: for each of the nq unit queries, the base
 * row (of n rows of dim floats) with the highest dot product into best[i]
 * and that dot product into sim[i]; ties go to the lower row. Blocked, single
 * thread; fine up to ~10^10 multiply-adds (the benchmark uses FAISS beyond). */
void wl_exact_best(const float *base, uint64_t n, uint32_t dim, const float *queries, size_t nq,
                   int64_t *best, float *sim);

/* Dot product in double (to check a returned similarity). */
double wl_dot(const float *a, const float *b, uint32_t dim);

#endif
