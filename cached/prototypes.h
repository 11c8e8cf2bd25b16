/* prototypes.h - task prototypes of one namespace: a few centroids of its
 * cached embeddings, with member counts.
 *
 * Spherical k-means over unit vectors, kept two ways. Online: each added
 * vector joins its closest prototype (or opens a new one while there is room
 * and nothing is close), each removed vector leaves the closest one, and the
 * prototype is the normalised sum of its members. Batch: proto_refit() reruns
 * k-means (k-means++ seeding, Lloyd iterations) on a sample of the current
 * members and replaces the prototypes, which undoes the drift the online
 * rules accumulate (a removal may leave a different prototype than the one
 * its vector joined). Pure computation: no I/O, no clock, no Redis; the
 * caller decides when to refit and supplies the sample.
 *
 * Threads: none inside; a set is thread-compatible.
 */
#ifndef SIMCACHE_PROTOTYPES_H
#define SIMCACHE_PROTOTYPES_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_MAX_K 64          /* prototypes per namespace */
#define PROTO_SAMPLE_MAX 1024   /* vectors a refit should be given at most */
#define PROTO_OPEN_COS 0.8f     /* an add below this cosine to every prototype
                                 * opens a new one while fewer than k exist */

typedef struct proto_set proto_set_t;

/* New empty set for dim-float unit vectors with at most k prototypes.
 * Returns NULL if dim is 0 or above SIMCACHE_MAX_DIM, k is 0 or above
 * PROTO_MAX_K, or memory runs out. Free with proto_set_free. */
proto_set_t *proto_set_new(uint32_t dim, uint32_t k);
/* NULL is a no-op. */
void proto_set_free(proto_set_t *ps);

/* A member arrives (unit: dim floats of unit length, not kept). */
void proto_add(proto_set_t *ps, const float *unit);
/* A member leaves: taken from the prototype closest to unit. A prototype
 * whose count reaches 0 is dropped. No-op on an empty set. */
void proto_remove(proto_set_t *ps, const float *unit);

/* Replace the prototypes by spherical k-means on units (n unit vectors,
 * row-major n*dim floats; n at most PROTO_SAMPLE_MAX is what it is sized
 * for) that stand for `total` members (total >= n; counts are scaled by
 * total/n). seed makes the k-means++ draws reproducible. k is min(k, n).
 * n == 0 empties the set. Returns 0 or -ENOMEM (set unchanged). */
int proto_refit(proto_set_t *ps, const float *units, size_t n, uint64_t total, uint64_t seed);

uint32_t proto_dim(const proto_set_t *ps);
uint32_t proto_k(const proto_set_t *ps);             /* the configured maximum */
uint32_t proto_count(const proto_set_t *ps);         /* prototypes now */
uint64_t proto_members(const proto_set_t *ps);       /* sum of the counts */
/* Prototype i (< proto_count): its unit centroid (dim floats, owned by the
 * set, valid until the next change) and its member count. */
const float *proto_centroid(const proto_set_t *ps, uint32_t i);
uint64_t proto_weight(const proto_set_t *ps, uint32_t i);
/* Highest cosine of unit with a prototype; *which (may be NULL) gets its
 * index. Returns -2 (below any cosine) when the set is empty. */
float proto_best(const proto_set_t *ps, const float *unit, uint32_t *which);
/* Bumped by every change (add, remove, refit): compare to see whether the
 * prototypes moved since last looked at. */
uint64_t proto_version(const proto_set_t *ps);

#endif
