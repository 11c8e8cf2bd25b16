/* gpuscore.h - lookup batches scored on the GPU with cuBLAS.
 *
 * The one idea: each namespace keeps a mirror of its index's unit vectors as
 * rows of a device matrix (gpu_ipc's gpu_matrix_t), kept in step by a hook at
 * every index_add and index_remove. A batch of at least gpu_score_min_batch
 * queries in a namespace of at least gpu_score_min_entries entries is then
 * searched exactly on the device (SGEMM + Isamax: the best row of every
 * query, over every entry), and the CPU checks each winner with the same
 * fp32 cosine index_search uses, against the threshold. That check alone
 * decides a hit, so the GPU path never gives a false hit, and its answers are
 * those of the CPU path (up to near-ties: two entries within float rounding
 * of each other) except where LSH misses the best match and the exact
 * search does not.
 *
 * Without a GPU (or with gpu_score_min_batch 0 at start) nothing here exists:
 * no scorer, no mirror, every hook returns at once. Nothing here has run on
 * a GPU yet (docs/gpu.md).
 */
#ifndef SIMCACHE_GPUSCORE_H
#define SIMCACHE_GPUSCORE_H

#include <stddef.h>
#include <stdint.h>

#include "daemon.h"
#include "index.h"
#include "u64map.h"

/* ---- the id <-> row map of one mirror (no device: unit-tested alone) ---- */

/* Which matrix row holds which entry. Rows freed by a removal are reused
 * (last freed first), so the matrix only grows past its high-water mark
 * when no freed row is left; when the map empties, the mark goes back to 0.
 * A zero-filled gpuscore_rows_t is a valid empty map. */
typedef struct {
    u64map_t ids;          /* id -> (void *)(row + 1) */
    uint64_t *row_id;      /* row -> id, 0 for a free row; `rows` of them used */
    size_t rows;           /* high-water mark: rows [0, rows) were ever given */
    size_t cap;            /* allocated row_id slots */
    uint32_t *free_rows;   /* freed rows below `rows`, reused last first */
    size_t nfree, capfree;
} gpuscore_rows_t;

/* Give id (nonzero) a row: a freed one, or the next above the mark.
 * 0 with *row set; -EINVAL (id 0), -EEXIST (id has a row), -ENOMEM (map
 * unchanged). */
int gpuscore_rows_add(gpuscore_rows_t *r, uint64_t id, size_t *row);
/* Take id's row back (*row gets it, may be NULL). 0 or -ENOENT. */
int gpuscore_rows_remove(gpuscore_rows_t *r, uint64_t id, size_t *row);
/* The id in row, or 0 (free row, or at/above the mark). */
uint64_t gpuscore_rows_id(const gpuscore_rows_t *r, size_t row);
/* Ids with a row. */
size_t gpuscore_rows_count(const gpuscore_rows_t *r);
/* Free everything; the map is empty (and reusable) afterwards. */
void gpuscore_rows_clear(gpuscore_rows_t *r);

/* ---- the check that decides a GPU winner ---- */

/* Does entry id of ix answer unit at threshold? The same test and the same
 * similarity index_search gives for that entry: the fp32 cosine
 * vec_dot(index_vector(ix, id), unit) must reach threshold - 2e-6, and *sim
 * gets it clamped to [threshold, 1]. 1 on a hit, 0 on a miss, -ENOENT when
 * id is not in ix (the mirror is out of step). */
int gpuscore_check(const index_t *ix, uint64_t id, const float *unit, float threshold,
                   float *sim);

/* ---- the daemon's hooks ---- */

typedef struct gpuscore gpuscore_t;          /* daemon-wide: the cuBLAS scorer */
typedef struct gpuscore_ns gpuscore_ns_t;    /* one namespace's mirror */

/* After gpu_probe: with a device and gpu_score_min_batch > 0, make the
 * scorer (d->gpuscore) on gpu_device (the GPU tier's device). Never fails
 * the daemon: without a scorer (logged) lookups stay on the CPU. */
void gpuscore_open(daemon_t *d);
/* Free the scorer. Call after every namespace's gpuscore_ns_free. */
void gpuscore_close(daemon_t *d);

/* Entry id of ns was just indexed under unit (dim floats, unit length);
 * gpuscore_remove: it just left the index. No-ops without a scorer. A
 * device failure takes the namespace off the GPU for good (logged once):
 * its mirror would be out of step with the index. */
void gpuscore_add(daemon_t *d, ns_t *ns, uint64_t id, const float *unit);
void gpuscore_remove(daemon_t *d, ns_t *ns, uint64_t id);
/* The namespace is going away: free its mirror (ns->gpu). */
void gpuscore_ns_free(ns_t *ns);

/* Answer a lookup batch (n unit queries of ns->dim floats, row-major) on the
 * GPU when it applies: a scorer, gpu_score_min_batch > 0, n >= it, the
 * namespace has >= gpu_score_min_entries entries and a mirror in step. Then
 * returns 1 with ids[i] (0: a miss) and sims[i] set for every query;
 * otherwise 0 and the caller searches on the CPU (ids and sims untouched or
 * scribbled). */
int gpuscore_batch(daemon_t *d, ns_t *ns, const float *units, uint32_t n, float threshold,
                   uint64_t *ids, float *sims);

typedef struct {
    uint64_t enabled;      /* 1 with a scorer */
    uint64_t batches;      /* batches answered on the GPU */
    uint64_t queries;      /* their queries */
    uint64_t errors;       /* device calls that failed (the CPU answered) */
    uint64_t mirrors;      /* namespaces with a mirror on the device */
    uint64_t rows;         /* entries mirrored */
    uint64_t bytes;        /* device memory of the mirrors' matrices */
} gpuscore_stats_t;

void gpuscore_get_stats(const daemon_t *d, gpuscore_stats_t *st);

#endif
