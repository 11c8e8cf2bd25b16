/* gpuscore.c - lookup batches scored on the GPU with cuBLAS (gpuscore.h).
 *
 * Each namespace's mirror is an id <-> row map and a gpu_matrix_t whose row r
 * holds the unit vector of the entry in row r. The device only ranks: the
 * winner of each query is checked on the CPU against the index's own fp32
 * vector, so the daemon's decision (hit or miss, and the similarity
 * reported) is the one index_search would make for that entry.
 */
#include "gpuscore.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpu.h"
#include "log.h"
#include "vec.h"

/* index.c's slack on the threshold for float rounding (SIM_EPS there). */
#define SIM_EPS 2e-6f

/* ---- id <-> row map ---- */

int gpuscore_rows_add(gpuscore_rows_t *r, uint64_t id, size_t *row)
{
    if (id == 0) return -EINVAL;
    if (u64map_get(&r->ids, id)) return -EEXIST;
    size_t at;
    if (r->nfree) {
        at = r->free_rows[r->nfree - 1];
    } else {
        if (r->rows >= GPU_MATRIX_MAX_ROWS) return -ENOMEM;
        if (r->rows == r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 1024;
            uint64_t *p = realloc(r->row_id, cap * sizeof *p);
            if (!p) return -ENOMEM;
            r->row_id = p;
            r->cap = cap;
        }
        at = r->rows;
    }
    if (u64map_put(&r->ids, id, (void *)(uintptr_t)(at + 1))) return -ENOMEM;
    if (r->nfree) r->nfree--;
    else r->rows++;
    r->row_id[at] = id;
    if (row) *row = at;
    return 0;
}

int gpuscore_rows_remove(gpuscore_rows_t *r, uint64_t id, size_t *row)
{
    void *v = id ? u64map_get(&r->ids, id) : NULL;
    if (!v) return -ENOENT;
    size_t at = (size_t)(uintptr_t)v - 1;
    u64map_del(&r->ids, id);
    r->row_id[at] = 0;
    if (row) *row = at;
    if (u64map_len(&r->ids) == 0) {
        /* Empty again: start over from row 0 (every row is clear on the
         * device, each removal cleared its own). */
        r->rows = 0;
        r->nfree = 0;
        return 0;
    }
    if (r->nfree == r->capfree) {
        size_t cap = r->capfree ? r->capfree * 2 : 256;
        uint32_t *p = realloc(r->free_rows, cap * sizeof *p);
        /* Out of memory: the row stays out of use (clear on the device,
         * never handed out again until the map empties); the removal
         * itself must not fail, the index has already let the entry go. */
        if (!p) return 0;
        r->free_rows = p;
        r->capfree = cap;
    }
    /* Rows are below GPU_MATRIX_MAX_ROWS (2^30): they fit in uint32_t. */
    r->free_rows[r->nfree++] = (uint32_t)at;
    return 0;
}

uint64_t gpuscore_rows_id(const gpuscore_rows_t *r, size_t row)
{
    return row < r->rows ? r->row_id[row] : 0;
}

size_t gpuscore_rows_count(const gpuscore_rows_t *r) { return u64map_len(&r->ids); }

void gpuscore_rows_clear(gpuscore_rows_t *r)
{
    u64map_clear(&r->ids);
    free(r->row_id);
    free(r->free_rows);
    memset(r, 0, sizeof *r);
}

/* ---- the CPU decision ---- */

int gpuscore_check(const index_t *ix, uint64_t id, const float *unit, float threshold,
                   float *sim)
{
    const float *v = index_vector(ix, id);
    if (!v) return -ENOENT;
    /* Same operands, same order as index.c's exact stage, so the same bits. */
    float s = vec_dot(v, unit, index_dim(ix));
    if (!(s >= threshold - SIM_EPS)) return 0;
    if (s < threshold) s = threshold;
    if (s > 1.0f) s = 1.0f;
    if (sim) *sim = s;
    return 1;
}

/* ---- the daemon's side ---- */

struct gpuscore {
    gpu_scorer_t *sc;
    uint64_t batches, queries, errors;
    uint32_t *best;          /* per batch: winning rows */
    size_t capbest;
};

struct gpuscore_ns {
    gpuscore_rows_t rows;
    gpu_matrix_t *m;
    int off;                 /* a device call failed: the CPU answers this namespace */
};

void gpuscore_open(daemon_t *d)
{
    d->gpuscore = NULL;
    if (d->gpu_devices <= 0) return;
    if (d->cfg.gpu_score_min_batch == 0) {
        log_info("GPU scoring of lookup batches off (gpu_score_min_batch 0)");
        return;
    }
    gpuscore_t *g = calloc(1, sizeof *g);
    if (!g) {
        log_warn("GPU scoring: out of memory; lookups stay on the CPU");
        return;
    }
    int dev = (int)d->cfg.gpu_device;
    int rc = gpu_scorer_new(dev, &g->sc);
    if (rc < 0) {
        log_warn("GPU scoring: no cuBLAS scorer on device %d (%s); lookups stay on the CPU", dev,
                 gpu_last_error());
        free(g);
        return;
    }
    d->gpuscore = g;
    log_info("GPU scoring of lookup batches on device %d: batches of >= %" PRIu32
             " queries in namespaces of >= %" PRIu32 " entries (untested on a GPU: docs/gpu.md)",
             dev, d->cfg.gpu_score_min_batch, d->cfg.gpu_score_min_entries);
}

void gpuscore_close(daemon_t *d)
{
    gpuscore_t *g = d->gpuscore;
    if (!g) return;
    gpu_scorer_free(g->sc);
    free(g->best);
    free(g);
    d->gpuscore = NULL;
}

void gpuscore_ns_free(ns_t *ns)
{
    gpuscore_ns_t *s = ns->gpu;
    if (!s) return;
    gpu_matrix_free(s->m);
    gpuscore_rows_clear(&s->rows);
    free(s);
    ns->gpu = NULL;
}

/* Take ns off the GPU: its mirror can no longer be trusted to match the
 * index. The rows stay allocated until the namespace goes (cheap: a flag). */
static void mirror_off(gpuscore_t *g, ns_t *ns, const char *what)
{
    gpuscore_ns_t *s = ns->gpu;
    if (!s || s->off) return;
    s->off = 1;
    g->errors++;
    log_warn("GPU scoring: %s for namespace %s (%s); its lookups stay on the CPU", what,
             ns->name, gpu_last_error());
    gpu_matrix_free(s->m);
    s->m = NULL;
}

void gpuscore_add(daemon_t *d, ns_t *ns, uint64_t id, const float *unit)
{
    gpuscore_t *g = d->gpuscore;
    if (!g) return;
    gpuscore_ns_t *s = ns->gpu;
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) {
            log_warn("GPU scoring: out of memory for namespace %s; its lookups stay on the CPU",
                     ns->name);
            return;   /* no mirror: gpuscore_batch declines */
        }
        ns->gpu = s;
        if (gpu_matrix_new(g->sc, ns->dim, &s->m) < 0) {
            mirror_off(g, ns, "cannot make the device matrix");
            return;
        }
    }
    if (s->off) return;
    size_t row;
    if (gpuscore_rows_add(&s->rows, id, &row)) {
        mirror_off(g, ns, "cannot map an entry to a row");
        return;
    }
    if (gpu_matrix_set_row(s->m, row, unit) < 0) mirror_off(g, ns, "cannot copy an entry to the device");
}

void gpuscore_remove(daemon_t *d, ns_t *ns, uint64_t id)
{
    gpuscore_t *g = d->gpuscore;
    gpuscore_ns_t *s = ns->gpu;
    if (!g || !s || s->off) return;
    size_t row;
    if (gpuscore_rows_remove(&s->rows, id, &row)) {
        mirror_off(g, ns, "an entry without a row left the index");
        return;
    }
    if (gpu_matrix_clear_row(s->m, row) < 0) mirror_off(g, ns, "cannot clear a row on the device");
}

int gpuscore_batch(daemon_t *d, ns_t *ns, const float *units, uint32_t n, float threshold,
                   uint64_t *ids, float *sims)
{
    gpuscore_t *g = d->gpuscore;
    gpuscore_ns_t *s = ns->gpu;
    uint32_t min_batch = d->cfg.gpu_score_min_batch;
    if (!g || !s || s->off || min_batch == 0 || n < min_batch) return 0;
    size_t count = index_count(ns->index);
    if (count < d->cfg.gpu_score_min_entries || count == 0) return 0;
    if (gpuscore_rows_count(&s->rows) != count) {
        mirror_off(g, ns, "the mirror does not hold the index's entries");
        return 0;
    }
    if (n > g->capbest) {
        uint32_t *p = realloc(g->best, (size_t)n * sizeof *p);
        if (!p) return 0;
        g->best = p;
        g->capbest = n;
    }
    /* The device ranks; best_score is not fetched: the CPU recomputes the
     * winner's cosine below, and that alone decides. */
    if (gpu_score_best(g->sc, s->m, s->rows.rows, units, n, g->best, NULL, 0) < 0) {
        g->errors++;
        log_warn("GPU scoring: batch of %" PRIu32 " in %s failed (%s); answered on the CPU", n,
                 ns->name, gpu_last_error());
        return 0;
    }
    for (uint32_t i = 0; i < n; i++) {
        ids[i] = 0;
        sims[i] = 0;
        if (g->best[i] == GPU_MATRIX_NO_ROW) continue;
        uint64_t id = gpuscore_rows_id(&s->rows, g->best[i]);
        int hit = id ? gpuscore_check(ns->index, id, units + (size_t)i * ns->dim, threshold,
                                      &sims[i])
                     : -ENOENT;
        if (hit < 0) {
            mirror_off(g, ns, "the device picked a row the index does not hold");
            return 0;
        }
        if (hit) ids[i] = id;
    }
    g->batches++;
    g->queries += n;
    return 1;
}

void gpuscore_get_stats(const daemon_t *d, gpuscore_stats_t *st)
{
    memset(st, 0, sizeof *st);
    const gpuscore_t *g = d->gpuscore;
    if (!g) return;
    st->enabled = 1;
    st->batches = g->batches;
    st->queries = g->queries;
    st->errors = g->errors;
    for (const ns_t *ns = d->namespaces; ns; ns = ns->next) {
        const gpuscore_ns_t *s = ns->gpu;
        if (!s || s->off) continue;
        st->mirrors++;
        st->rows += gpuscore_rows_count(&s->rows);
        st->bytes += (uint64_t)gpu_matrix_capacity(s->m) * (gpu_matrix_dim(s->m) + 1) * sizeof(float);
    }
}
