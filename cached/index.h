/* index.h - similarity index of one namespace: embeddings -> entry ids.
 *
 * Random-hyperplane LSH (several tables, multi-probe) over unit vectors,
 * centred on the namespace's mean once it has enough entries (real embeddings
 * are anisotropic), then an exact cosine re-rank of the candidates. Only the
 * exact score decides a hit, so a returned match is always >= the threshold.
 * Small namespaces are searched exactly (cheaper than hashing). Hyperplanes
 * derive from a secret 64-bit seed, so the same seed gives the same buckets
 * after a restart. The index never sees blob bytes or tiers.
 */
#ifndef SIMCACHE_INDEX_H
#define SIMCACHE_INDEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct index index_t;

typedef struct {
    uint32_t tables;        /* LSH tables; 0 = default */
    uint32_t bits;          /* bits per table key (<= 24); 0 = default */
    uint32_t probes;        /* multi-probe: 0 = exact key only, 1 = also every 1-bit flip */
    uint32_t exact_below;   /* search exactly while count < this; 0 = default */
} index_params_t;

typedef struct {
    uint64_t count;
    uint64_t lsh_active;    /* 1 once hashing is in use */
    uint64_t searches;
    uint64_t candidates;    /* total candidates re-ranked */
    uint64_t max_bucket;    /* largest bucket over all tables */
    uint64_t buckets;       /* non-empty buckets over all tables */
    uint64_t bytes;         /* memory held by the index, embeddings included */
} index_stats_t;

/* New empty index for dim-float vectors. p may be NULL for defaults. Returns
 * NULL on bad dim (0 or > SIMCACHE_MAX_DIM) or out of memory. */
index_t *index_new(uint32_t dim, uint64_t seed, const index_params_t *p);
void index_free(index_t *ix);

/* Add a unit vector (already normalised: vec_normalize) under a nonzero id.
 * Copies the vector. Returns 0, -EEXIST, -EINVAL, -ENOMEM. */
int index_add(index_t *ix, uint64_t id, const float *unit);
/* Remove an id. Returns 0 or -ENOENT. */
int index_remove(index_t *ix, uint64_t id);

/* Best entry with cosine >= threshold. Returns 1 with *id and *sim set, 0 on
 * a miss. Thread-compatible: concurrent searches on one index are not safe. */
int index_search(index_t *ix, const float *unit, float threshold, uint64_t *id, float *sim);

/* The stored unit vector of id (owned by the index, valid until it changes),
 * or NULL. */
const float *index_vector(const index_t *ix, uint64_t id);

uint32_t index_dim(const index_t *ix);
size_t index_count(const index_t *ix);
void index_get_stats(const index_t *ix, index_stats_t *st);

/* Work of the staged re-rank since index_new, for benchmarks: candidates
 * whose compact code was compared (*coded) and exact dot products taken
 * (*exact; the exact path counts every entry). Either pointer may be NULL. */
void index_get_rerank_counts(const index_t *ix, uint64_t *coded, uint64_t *exact);

#endif
