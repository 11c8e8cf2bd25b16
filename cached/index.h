/* index.h - similarity index of one namespace: embeddings -> entry ids.
 *
 * Random-hyperplane LSH (several tables, multi-probe) over unit vectors,
 * centred on the namespace's mean once it has enough entries (real embeddings
 * are anisotropic), then an exact cosine re-rank of the candidates. Only the
 * exact score decides a hit, so a returned match is always >= the threshold.
 * Small namespaces are searched exactly (cheaper than hashing). The
 * hyperplanes are those of a fast pseudo-random rotation (random signs and
 * Walsh-Hadamard transforms) drawn from a secret 64-bit seed, so the same
 * seed gives the same buckets after a restart (given the same centre:
 * index_center, index_set_center, and the same count: with automatic key
 * length the keys grow by a bit each time the namespace doubles).
 * The index never sees blob bytes or tiers.
 *
 * The re-rank is staged so that few candidates cost a full fp32 dot product:
 * a 960-bit sign code of each entry's offset from the centre (Hamming
 * distance, a cut calibrated to drop a pair at the threshold with
 * probability < 1e-9), then an int8 code whose error bound is proven, then
 * the exact cosine. Recall is that of the hashing (measured: see
 * tests/test_index.c and docs/benchmarks.md); false hits cannot happen.
 *
 * Threads: none inside. An index is thread-compatible: any call on one index,
 * index_search included (it uses scratch space and counters in the index),
 * must not run concurrently with another on the same index.
 *
 * Memory per entry once hashing is on: about 5*dim + 1,300 bytes with the
 * default 64 tables (fp32 vector, int8 code, 128-byte sign code record,
 * tables*3 bytes of key bits, ~10 bytes per table of bucket slots and
 * bucket headers, id map): 2,408 B beyond the fp32 vector at 1M x 1024,
 * measured. Arrays grow by 1.5x, so just after a growth the per-entry part
 * is up to 1.5 times that. Per namespace once hashing is on: the mean and
 * 10 floats per padded dimension of rotations and scratch (~90 KB at dim
 * 2048). Before
 * hashing (count < exact_below): 4*dim + ~60.
 */
#ifndef SIMCACHE_INDEX_H
#define SIMCACHE_INDEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct index index_t;

typedef struct {
    uint32_t tables;        /* LSH tables (<= 64); 0 = default (64) */
    uint32_t bits;          /* bits per table key (<= 24); 0 = automatic (default):
                             * a mean bucket of 8 to 16 entries, one more bit
                             * (the tables rebuilt) each time count doubles */
    uint32_t probes;        /* multi-probe: 0 = exact key only, 1 = also the keys one
                             * bit away along the query's closest hyperplanes
                             * (4 per table up to 13-bit keys, 2 more per bit
                             * beyond, plus the 6 two-bit flips of the 4 closest) */
    uint32_t exact_below;   /* search exactly while count < this; 0 = default:
                             * 2^21/dim clamped to [1024, 4096], where an exact
                             * scan costs about what a hashed search does */
} index_params_t;

typedef struct {
    uint64_t count;
    uint64_t lsh_active;    /* 1 once hashing is in use */
    uint64_t searches;
    uint64_t candidates;    /* total candidates re-ranked: entries from the probed
                             * buckets (each goes through the staged re-rank), or
                             * every entry for an exact search */
    uint64_t max_bucket;    /* largest bucket over all tables */
    uint64_t buckets;       /* non-empty buckets over all tables */
    uint64_t bytes;         /* memory held by the index, embeddings included */
} index_stats_t;

/* New empty index for dim-float vectors. p may be NULL for defaults (then
 * probes = 1); with p, fields at 0 take their defaults except probes, where
 * 0 means exact key only. Returns NULL on bad dim (0 or > SIMCACHE_MAX_DIM),
 * tables > 64, bits > 24, probes > 1, or out of memory. Free with index_free.
 * Hashing switches on (rotations drawn, every entry hashed: a pause of tens
 * of microseconds per entry) when an add brings count to exact_below; it
 * then stays on. With automatic key length, the add that brings count to
 * 8 * 2^(bits+1) starts moving the tables to one more bit, from the stored
 * key bits (no projection), and it and the next tables - 1 adds each
 * re-bucket one table: a pause of about count bucket insertions per add
 * for those 64 adds (35-45 ms at 256k entries, dim 256, on the loaded 2-core
 * test VM; the first of them 180 ms) instead of one pause of count * tables
 * (1.9 s there). Searches meanwhile use each table at its own key length. */
index_t *index_new(uint32_t dim, uint64_t seed, const index_params_t *p);
/* Frees the index and every vector it holds. NULL is a no-op. */
void index_free(index_t *ix);

/* Add a unit vector (already normalised: vec_normalize) under a nonzero id.
 * Copies the vector. Returns 0, -EEXIST, -EINVAL (id 0, NULL, a value NaN or
 * Inf, or squared length off 1 by more than 1e-3), -ENOMEM (index unchanged). */
int index_add(index_t *ix, uint64_t id, const float *unit);
/* Remove an id. Returns 0 or -ENOENT. */
int index_remove(index_t *ix, uint64_t id);

/* Best entry with cosine >= threshold. Returns 1 with *id and *sim set, 0 on
 * a miss (*id and *sim untouched). id or sim may be NULL. Float rounding is
 * allowed for: the cosine (vec_dot(index_vector(ix, *id), unit, dim)) must
 * reach threshold - 2e-6, so an identical vector hits at threshold 1, and
 * *sim is that cosine clamped to [threshold, 1]. Thread-compatible:
 * concurrent searches on one index are not safe. */
int index_search(index_t *ix, const float *unit, float threshold, uint64_t *id, float *sim);

/* The stored unit vector of id (owned by the index), or NULL. Valid until the
 * next index_add, index_remove or index_set_center on this index (removal
 * moves another entry's vector into the freed place). */
const float *index_vector(const index_t *ix, uint64_t id);

uint32_t index_dim(const index_t *ix);
/* Copy up to `want` of the index's vectors into out (want * dim floats):
 * all of them when count <= want, else a uniform sample without
 * replacement (partial Fisher-Yates over slot numbers, from `seed`).
 * O(want * dim) whatever the count. Returns how many were copied. */
size_t index_sample(const index_t *ix, size_t want, uint64_t seed, float *out);
size_t index_count(const index_t *ix);
void index_get_stats(const index_t *ix, index_stats_t *st);

/* The centre hashing uses (dim floats, owned by the index, valid until
 * index_set_center or index_free), or NULL while hashing is off. Keep it with
 * the seed: hashing after a restart only lands in the same buckets if it is
 * centred on the same point (see index_set_center). */
const float *index_center(const index_t *ix);

/* Switch hashing on now (or rebuild it) centred on `center` (dim floats,
 * copied), or on the mean of the current entries if center is NULL. Rehashes
 * every entry (the same pause as switching on). Use it to restore a saved
 * centre after a restart, or to re-centre a namespace that drifted. Returns
 * 0, -EINVAL (a value NaN or Inf, or length above 1: it must be a mean of
 * unit vectors), or -ENOMEM (hashing is then off, and switches on again at
 * the next add that finds count >= exact_below). */
int index_set_center(index_t *ix, const float *center);

/* Work of the staged re-rank since index_new, for benchmarks: candidates
 * whose sign code was compared (*coded), whose int8 code was scored
 * (*quantized), and exact dot products taken (*exact; the exact path counts
 * every entry). Any pointer may be NULL. */
void index_get_rerank_counts(const index_t *ix, uint64_t *coded, uint64_t *quantized,
                             uint64_t *exact);

#endif
