/* index.h - similarity index of one namespace: embeddings -> entry ids.
 *
 * An inverted file (IVF) over unit vectors: entries are grouped in lists,
 * each around a centroid, and a search scans the lists whose centroids are
 * nearest the query, then re-ranks exactly. Only the exact score decides a
 * hit, so a returned match is always >= the threshold. Small namespaces are
 * searched exactly (cheaper than the lists). The lists grow with the
 * namespace by splitting one list at a time (2-means of its members), so no
 * add retrains everything; each add also re-checks one older entry's list.
 * The code rotation (random signs and Walsh-Hadamard transforms) and the
 * split seeds come from a secret 64-bit seed; the sign codes are centred on
 * the namespace's mean (index_center, index_set_center), anisotropic
 * embeddings being far from centred. The index never sees blob bytes or
 * tiers.
 *
 * The re-rank is staged so that few entries cost a full fp32 dot product:
 * a 960-bit sign code of each entry's offset from the centre, stored in list
 * order so that the scan is sequential (Hamming distance, a cut calibrated
 * to drop a pair at the threshold with probability < 1e-5), then an int8
 * code whose error bound is proven, then the exact cosine. Recall is that of
 * the list choice (measured: see tests/test_index.c and docs/benchmarks.md);
 * false hits cannot happen.
 *
 * Threads: none inside. An index is thread-compatible: any call on one index,
 * index_search included (it uses scratch space and counters in the index),
 * must not run concurrently with another on the same index.
 *
 * Memory per entry once the lists are on: about 5*dim + 200 bytes (fp32
 * vector, int8 code, 128-byte sign code record and its slot number in a
 * list, list and position of each slot, id map, search scratch); lists and
 * slot arrays grow by 1.5x, so just after a growth that part is up to 1.5
 * times larger: 1,688 B beyond the fp32 vector at 1M x 1024, measured. Per namespace: the centroids (dim + 260 floats each, about
 * sqrt(count) / 1.4 of them), the mean and 5 floats per padded dimension of
 * rotation and scratch. Before the lists (count < exact_below): 4*dim + ~40.
 */
#ifndef SIMCACHE_INDEX_H
#define SIMCACHE_INDEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct index index_t;

typedef struct {
    uint32_t tables;        /* <= 64; ignored (the LSH tables of earlier versions:
                             * kept so that configurations stay valid) */
    uint32_t bits;          /* <= 24; ignored, as tables */
    uint32_t probes;        /* 0 = scan the nearest list only, 1 = the nearest
                             * few (sqrt(lists) / 2, at least 8; see
                             * index_set_lists_probed) */
    uint32_t exact_below;   /* search exactly while count < this; 0 = default:
                             * 2^21/dim clamped to [1024, 4096], where an exact
                             * scan costs about what a list search does */
} index_params_t;

typedef struct {
    uint64_t count;
    uint64_t lsh_active;    /* 1 once the lists are in use */
    uint64_t searches;
    uint64_t candidates;    /* total candidates re-ranked: entries of the probed
                             * lists (each goes through the staged re-rank), or
                             * every entry for an exact search */
    uint64_t max_bucket;    /* entries of the longest list */
    uint64_t buckets;       /* lists */
    uint64_t bytes;         /* memory held by the index, embeddings included */
    uint64_t splits;        /* list splits since index_new */
} index_stats_t;

/* New empty index for dim-float vectors. p may be NULL for defaults (then
 * probes = 1); with p, fields at 0 take their defaults except probes, where
 * 0 means the nearest list only. Returns NULL on bad dim (0 or >
 * SIMCACHE_MAX_DIM), tables > 64, bits > 24, probes > 1, or out of memory.
 * Free with index_free. The lists switch on (the mean taken, every entry
 * coded, lists split down to size: a pause of a few tens of microseconds
 * per entry) when an add brings count to exact_below; they then stay on.
 * From then on an add costs its codes, two nearest-centroid searches (its
 * own list, and the sweep's re-check of an older entry) and, when it makes a
 * list longer than 2 sqrt(count), that list's split: about
 * 5 * 2 * 2 sqrt(count) dot products (~1 ms at 1M x 1024). */
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

/* The centre the codes use (dim floats, owned by the index, valid until
 * index_set_center or index_free), or NULL while the lists are off. Keep it
 * with the seed: after a restart, the same centre gives the same codes. */
const float *index_center(const index_t *ix);

/* Switch the lists on now (or rebuild them) centred on `center` (dim
 * floats, copied), or on the mean of the current entries if center is NULL.
 * Recodes every entry and splits the lists anew (the same pause as switching
 * on: seconds at 1M entries). Use it to restore a saved centre after a
 * restart, or to re-centre a namespace that drifted. Returns 0, -EINVAL (a
 * value NaN or Inf, or length above 1: it must be a mean of unit vectors),
 * or -ENOMEM (the lists are then off, and switch on again at the next add
 * that finds count >= exact_below). */
int index_set_center(index_t *ix, const float *center);

/* Lists scanned per search from now on (1 to 1024; probes = 0 at
 * index_new means 1). More lists: better recall, slower searches.
 * Returns 0 or -EINVAL. */
int index_set_lists_probed(index_t *ix, uint32_t n);

/* Work of the staged re-rank since index_new, for benchmarks: candidates
 * whose sign code was compared (*coded), whose int8 code was scored
 * (*quantized), and exact dot products taken (*exact; the exact path counts
 * every entry). Any pointer may be NULL. */
void index_get_rerank_counts(const index_t *ix, uint64_t *coded, uint64_t *quantized,
                             uint64_t *exact);

#endif
