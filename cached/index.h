/* index.h - similarity index of one namespace: embeddings -> entry ids.
 *
 * A threshold query ("the best stored entry with cosine >= T") answered by
 * a scan of compact codes, so that recall does not depend on the data: every
 * entry's short sign code (under a secret random rotation, centred on the
 * namespace's mean) is tested against the query's, the survivors on a long
 * sign code, then on an int8 code whose bound is proven, then exactly. Only
 * the exact score decides a hit, so a returned match is always >= the
 * threshold; the only loss is the sign-code stages', whose probability of
 * dropping a pair at the threshold is bounded whatever the data
 * (index_stats_t.drop_bound: 9.0e-3). Small namespaces are searched exactly
 * (recall 1). The rotation comes from a secret 64-bit seed. A stream that
 * drifts moves the centre away from the live mean; the index re-centres in
 * the background, a few entries per call, without a pause. The index never
 * sees blob bytes or tiers.
 *
 * Threads: none inside. An index is thread-compatible: any call on one index,
 * index_search included (it uses scratch space and counters in the index),
 * must not run concurrently with another on the same index.
 *
 * Memory (what index_get_stats reports, computed from the capacities): per
 * slot of capacity 4*dim + 12 bytes (vector, id, norm), and once the codes
 * are on 2*qdim + 168 more (qdim = dim rounded up to a power of two: two
 * int8 levels, 16 bytes of short code, a 128-byte record, 24 of offsets
 * and scales); the id map adds 16 bytes per map slot (at most half full).
 * Slots grow by 1.5x and the map by 2x, so per entry that is, just after
 * and just before a growth, 4*dim + 44 to 6*dim + 82 bytes below
 * exact_below (8,236 to 12,370 at 2048 dims), and 4*dim + 2*qdim + 212 to
 * 1.5 times the per-slot part + 64 with codes (12,500 to 18,430 at 2048
 * dims, 6,356 to 9,350 at 1024). While a re-centring runs, the codes are
 * held twice. Per namespace: a few dpad-float rotation buffers and 80 KiB
 * of search scratch.
 */
#ifndef SIMCACHE_INDEX_H
#define SIMCACHE_INDEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct index index_t;

typedef struct {
    uint32_t exact_below;   /* search exactly while count < this; 0 = default:
                             * 2^21/dim clamped to [1024, 4096], where an exact
                             * scan costs about what the staged search does */
} index_params_t;

typedef struct {
    uint64_t count;
    uint64_t coded;         /* 1 once the compact codes are on (count reached
                             * exact_below; they then stay on) */
    uint64_t searches;
    uint64_t candidates;    /* entries looked at by searches: every entry, by
                             * its code or (exact path) its vector */
    uint64_t filtered;      /* of those, entries that the short sign code did
                             * not rule out (stage 1) */
    uint64_t bytes;         /* memory held by the index, embeddings included */
    uint64_t recentres;     /* re-centrings completed since index_new */
    uint64_t recentring;    /* 1 while one runs */
    double drop_bound;      /* bound on the probability that a search drops
                             * a pair exactly at its threshold (the sign-code
                             * stages, any data); 0 while searches are exact
                             * (below exact_below, or dim < 64) */
} index_stats_t;

/* New empty index for dim-float vectors. p may be NULL for defaults; with
 * p, exact_below at 0 takes its default. Returns NULL on bad dim (0 or >
 * SIMCACHE_MAX_DIM), tables > 64, bits > 24, probes > 1, or out of memory.
 * Free with index_free. The codes switch on (the mean taken, every entry
 * coded: a pause of about 10 us per entry at 1024 dims) when an add brings
 * count to exact_below; they then stay on. From then on an add costs its
 * codes (about 10 us at 1024 dims) plus, while a re-centring runs, eight
 * more entries' codes. A search costs a scan of 24 bytes per entry plus
 * the few survivors' int8 rows and exact scores. */
index_t *index_new(uint32_t dim, uint64_t seed, const index_params_t *p);
/* Frees the index and every vector it holds. NULL is a no-op. */
void index_free(index_t *ix);

/* Add a unit vector (already normalised: vec_normalize) under a nonzero id.
 * Copies the vector. Returns 0, -EEXIST, -EINVAL (id 0, NULL, a value NaN or
 * Inf, or squared length off 1 by more than 1e-3), -ENOMEM (index unchanged). */
int index_add(index_t *ix, uint64_t id, const float *unit);
/* Remove an id. Returns 0 or -ENOENT. No slack is left behind: the other
 * entries' codes stay exact (the last entry moves into the hole). */
int index_remove(index_t *ix, uint64_t id);

/* Best entry with cosine >= threshold. Returns 1 with *id and *sim set, 0 on
 * a miss (*id and *sim untouched). id or sim may be NULL. Float rounding is
 * allowed for: the cosine (vec_dot(index_vector(ix, *id), unit, dim)) must
 * reach threshold - 2e-6, so an identical vector hits at threshold 1, and
 * *sim is that cosine clamped to [threshold, 1]. Thread-compatible:
 * concurrent searches on one index are not safe. */
int index_search(index_t *ix, const float *unit, float threshold, uint64_t *id, float *sim);

/* index_search for n queries (units: n * dim floats) at one threshold, the
 * same answers as n calls: ids[j] the best entry's id, or 0 on a miss, and
 * sims[j] its similarity (untouched on a miss). Each chunk of codes is read
 * from memory once for the whole batch, so a batch costs less than its
 * queries one by one. Returns the number of hits. */
int index_search_batch(index_t *ix, const float *units, size_t n, float threshold, uint64_t *ids,
                       float *sims);

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

/* The centre the codes use (dim floats, owned by the index, valid until
 * the next index_add, index_remove, index_set_center or index_free: a
 * re-centring may replace it), or NULL while the codes are off. */
const float *index_center(const index_t *ix);

/* Switch the codes on now (or recode every entry) centred on `center` (dim
 * floats, copied), or on the mean of the current entries if center is NULL:
 * the same pause as switching on (seconds at 1M entries). Answers do not
 * depend on the centre, only the work does. Returns 0, -EINVAL (a value NaN
 * or Inf, or length above 1: it must be a mean of unit vectors), or -ENOMEM
 * (the codes are then off, and switch on again at the next add that finds
 * count >= exact_below). */
int index_set_center(index_t *ix, const float *center);

/* Work of the stages since index_new, for benchmarks: entries whose short
 * sign code was compared (*coded), whose int8 code was scored (*quantized),
 * and exact dot products taken (*exact; the exact path counts every entry).
 * Any pointer may be NULL. */
void index_get_rerank_counts(const index_t *ix, uint64_t *coded, uint64_t *quantized,
                             uint64_t *exact);

#endif
