/* gputier.c - the GPU tier: device memory above the host tier.
 *
 * One device arena (gpu_ipc/: VMM with POSIX fds where the device allows,
 * else legacy CUDA IPC) holds the bytes; a bookkeeping store (store_t with
 * no memfd) places, ages and pins its extents exactly as the host store does
 * for the memfd, so leases, LRU and deletes-under-lease are the same code.
 *
 * An entry's bytes live in one tier at a time. Moving an entry allocates in
 * the other store, copies, commits there, and leaves the old extent to its
 * pins (user pointer NULL, deleted: freed at the last unpin), so a reader
 * holding a lease keeps valid bytes while others already use the new place.
 *
 * Ordering: every copy into or out of the arena runs on one stream and has
 * finished (gpu_stream_sync) before the entry is published or its old place
 * given up. A client that learns of an entry from a reply therefore finds its
 * bytes complete, on whatever stream it reads. The price is that the loop
 * waits for each copy: microseconds device to device, about 40 us per MiB
 * host to device at PCIe 4 speed.
 *
 * Eviction of an unpinned LRU entry from the GPU tier moves it to the host
 * tier (which may in turn demote to disk); if the host tier cannot take it,
 * it is dropped. Nothing here has run on a GPU yet (docs/gpu.md).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "daemon.h"
#include "gpu.h"
#include "gputier.h"
#include "log.h"
#include "xxh.h"

#define GPU_ALIGN 4096u   /* extent alignment in the arena (CUDA wants 256) */

/* The GPU tier's state (d->gtier, NULL when there is none); its store is
 * d->gstore, which leases pin like the host store. */
struct gtier {
    struct gpu_arena *garena;     /* the device memory holding the bytes */
    struct gpu_stream *gstream;   /* every copy in or out runs here */
    int host_pinned;              /* host arena registered with CUDA */
    char gpu_kind[8];             /* "vmm" or "legacy" */
    uint64_t gpu_demotions, gpu_promotions, gpu_to_host, gpu_move_failures;
    gtier_moved_fn gtier_moved;
};

static uint8_t *gbase(const daemon_t *d)
{
    return gpu_arena_ptr(d->gtier->garena);
}

enum copy_dir { H2D, D2H, D2D };

/* Copy on the tier's stream and wait for it. 0 or -1 (logged). */
static int copy_sync(daemon_t *d, enum copy_dir dir, void *dst, const void *src, size_t n)
{
    int rc = dir == H2D   ? gpu_copy_h2d(dst, src, n, d->gtier->gstream)
             : dir == D2H ? gpu_copy_d2h(dst, src, n, d->gtier->gstream)
                          : gpu_copy_d2d(dst, src, n, d->gtier->gstream);
    if (rc == 0) rc = gpu_stream_sync(d->gtier->gstream);
    if (rc) {
        log_warn("GPU tier: copy of %zu bytes failed: %s", n, gpu_last_error());
        return -1;
    }
    return 0;
}

static void sum_if_pending(entry_t *e, const void *host)
{
    if (!e->sum_pending) return;
    e->checksum = XXH3_64bits(host, e->size);
    e->sum_pending = 0;
}

/* Copy GPU entry e into a new live host extent and make the host tier its
 * owner (e->on_gpu 0). Its GPU extent is left to the caller. 0 or -1 (e
 * unchanged, nothing reserved). */
static int copy_to_host(daemon_t *d, entry_t *e)
{
    uint64_t off;
    if (store_alloc(d->store, e->id, e->size, e, &off)) return -1;
    if (gtier_read(d, e, store_base(d->store) + off)) {
        store_set_user(d->store, e->id, NULL);
        store_abort(d->store, e->id);
        return -1;
    }
    e->on_gpu = 0;
    e->host_off = off;
    store_commit(d->store, e->id);
    if (d->gtier->gtier_moved) d->gtier->gtier_moved(d, e->id);
    return 0;
}

/* Bring evicted GPU entry e into the host tier. Its device bytes are intact:
 * the allocation that evicted it has not copied anything yet. 0 or -1. */
static int demote(daemon_t *d, entry_t *e)
{
    if (copy_to_host(d, e)) return -1;
    d->gtier->gpu_demotions++;
    return 0;
}

static void on_gpu_drop(void *ctx, uint64_t id, void *user, store_drop_reason_t why)
{
    daemon_t *d = ctx;
    entry_t *e = user;
    (void)id;
    if (!e) return;
    if (why == STORE_DROP_EVICTED && e->indexed) {
        if (demote(d, e) == 0) return;
        d->gtier->gpu_move_failures++;
        log_debug("GPU tier: entry %" PRIu64 " evicted and dropped (host tier full)", e->id);
    }
    catalog_entry_free(d, e);
}

/* A freed GPU extent is zeroed on the tier's stream, and waited for as every
 * copy is: no client that maps the arena reads a dropped entry's bytes. */
static void clear_extent(void *ctx, uint64_t off, uint64_t size)
{
    daemon_t *d = ctx;
    if (gpu_memset_zero(gbase(d) + off, size, d->gtier->gstream) ||
        gpu_stream_sync(d->gtier->gstream))
        log_warn("GPU tier: cannot clear %" PRIu64 " freed bytes: %s", size, gpu_last_error());
}

void gtier_apply_config(daemon_t *d)
{
    if (d->gstore) store_set_clear_freed(d->gstore, (int)d->cfg.host_clear_freed);
}

void gtier_open(daemon_t *d, gtier_moved_fn moved_to_host)
{
    const config_t *cfg = &d->cfg;
    if (d->gpu_devices <= 0) return;
    if (cfg->gpu_capacity == 0) {
        log_info("GPU tier: off (gpu_capacity 0)");
        return;
    }
    int dev = (int)cfg->gpu_device;
    if (dev >= d->gpu_devices) {
        log_warn("GPU tier: gpu_device %d, but %d device(s) found; host tier only", dev,
                 d->gpu_devices);
        return;
    }
    unsigned flags = strcmp(cfg->gpu_ipc, "legacy") == 0 ? GPU_ARENA_FORCE_LEGACY
                                                          : GPU_ARENA_PREFER_VMM;
    d->gtier = calloc(1, sizeof *d->gtier);
    if (!d->gtier) {
        log_warn("GPU tier: out of memory; host tier only");
        return;
    }
    d->gtier->gtier_moved = moved_to_host;
    if (gpu_set_device(dev) || gpu_stream_new(&d->gtier->gstream) ||
        gpu_arena_new(dev, cfg->gpu_capacity, flags, &d->gtier->garena)) {
        log_warn("GPU tier: cannot create %" PRIu64 " bytes on device %d: %s; host tier only",
                 cfg->gpu_capacity, dev, gpu_last_error());
        gtier_close(d);
        return;
    }
    char err[160];
    store_config_t sc = {
        .capacity = gpu_arena_size(d->gtier->garena) & ~(uint64_t)(GPU_ALIGN - 1),
        .align = GPU_ALIGN, .name = "simcache-gpu", .no_arena = 1,
        .on_drop = on_gpu_drop, .ctx = d,
    };
    d->gstore = store_new(&sc, err, sizeof err);
    if (!d->gstore) {
        log_warn("GPU tier: %s; host tier only", err);
        gtier_close(d);
        return;
    }
    store_set_clear_fn(d->gstore, clear_extent, d);
    gtier_apply_config(d);
    snprintf(d->gtier->gpu_kind, sizeof d->gtier->gpu_kind, "%s",
             gpu_arena_kind(d->gtier->garena) == GPU_ARENA_VMM ? "vmm" : "legacy");
    /* Pinned host arena: demotions and promotions are DMA at full speed. */
    d->gtier->host_pinned = gpu_host_register(store_base(d->store), store_arena_size(d->store), 0) == 0;
    if (!d->gtier->host_pinned)
        log_warn("GPU tier: host arena not pinned (%s); copies go through CUDA's staging",
                 gpu_last_error());
    log_info("GPU tier: %" PRIu64 " bytes on device %d, shared through %s IPC, host arena %s",
             store_arena_size(d->gstore), dev, d->gtier->gpu_kind, d->gtier->host_pinned ? "pinned" : "pageable");
}

typedef struct {
    uint64_t *ids;
    size_t n, cap;
} ids_t;

static int collect_id(void *arg, uint64_t id, void *user, uint64_t off, uint64_t size,
                      uint32_t pins)
{
    ids_t *c = arg;
    (void)user;
    (void)off;
    (void)size;
    (void)pins;
    if (c->n == c->cap) return 1;
    c->ids[c->n++] = id;
    return 0;
}

void gtier_close(daemon_t *d)
{
    if (!d->gtier) return;
    if (d->gstore) {
        /* store_free runs no callbacks: free the records it points to. */
        store_stats_t st;
        store_get_stats(d->gstore, &st);
        ids_t c = { malloc((st.entries + 1) * sizeof(uint64_t)), 0, st.entries };
        if (c.ids) store_foreach(d->gstore, collect_id, &c);
        for (size_t i = 0; i < c.n; i++) {
            entry_t *e = store_user(d->gstore, c.ids[i]);
            if (e) catalog_entry_free(d, e);
        }
        free(c.ids);
        store_free(d->gstore);
        d->gstore = NULL;
    }
    if (d->gtier->host_pinned) gpu_host_unregister(store_base(d->store));
    d->gtier->host_pinned = 0;
    gpu_arena_free(d->gtier->garena);
    d->gtier->garena = NULL;
    gpu_stream_free(d->gtier->gstream);
    free(d->gtier);
    d->gtier = NULL;
}

const char *gtier_ipc_kind(const daemon_t *d)
{
    return d->gtier ? d->gtier->gpu_kind : "none";
}

struct gpu_arena *gtier_arena(const daemon_t *d)
{
    return d->gtier ? d->gtier->garena : NULL;
}

int gtier_get_stats(const daemon_t *d, gtier_stats_t *st)
{
    if (!d->gtier || !d->gstore) return -1;
    const struct gtier *g = d->gtier;
    st->demotions = g->gpu_demotions;
    st->promotions = g->gpu_promotions;
    st->to_host = g->gpu_to_host;
    st->move_failures = g->gpu_move_failures;
    st->host_pinned = g->host_pinned;
    return 0;
}

int gtier_put(daemon_t *d, entry_t *e, const void *src_dev)
{
    uint64_t off;
    int rc = store_alloc(d->gstore, e->id, e->size, e, &off);
    if (rc)
        return rc == -EFBIG ? SIMCACHE_ETOOBIG : rc == -ENOSPC ? SIMCACHE_ENOSPC : SIMCACHE_ENOMEM;
    if (copy_sync(d, D2D, gbase(d) + off, src_dev, e->size)) {
        store_set_user(d->gstore, e->id, NULL);
        store_abort(d->gstore, e->id);
        return SIMCACHE_EIO;
    }
    e->on_gpu = 1;
    e->gpu_off = off;
    e->sum_pending = 1;
    return 0;
}

int gtier_promote(daemon_t *d, entry_t *e)
{
    if (!d->gstore || e->on_gpu || !e->indexed) return -1;
    uint64_t hoff, hsize, goff;
    /* Pinned, the host copy survives whatever making room in the GPU tier
     * demotes into the host tier. */
    if (store_pin(d->store, e->id, &hoff, &hsize)) return -1;
    if (store_alloc(d->gstore, e->id, e->size, e, &goff)) {
        store_unpin(d->store, e->id);
        d->gtier->gpu_move_failures++;
        return -1;
    }
    if (copy_sync(d, H2D, gbase(d) + goff, store_base(d->store) + hoff, e->size)) {
        store_set_user(d->gstore, e->id, NULL);
        store_abort(d->gstore, e->id);
        store_unpin(d->store, e->id);
        d->gtier->gpu_move_failures++;
        return -1;
    }
    e->on_gpu = 1;
    e->gpu_off = goff;
    store_commit(d->gstore, e->id);
    /* The host extent goes once its leases end (at once if none). */
    store_set_user(d->store, e->id, NULL);
    store_unpin(d->store, e->id);
    store_delete(d->store, e->id);
    d->gtier->gpu_promotions++;
    return 0;
}

int gtier_to_host(daemon_t *d, entry_t *e)
{
    if (!e->on_gpu) return 0;
    if (copy_to_host(d, e)) {
        d->gtier->gpu_move_failures++;
        return -1;
    }
    store_set_user(d->gstore, e->id, NULL);
    store_delete(d->gstore, e->id);
    d->gtier->gpu_to_host++;
    return 0;
}

int gtier_read(daemon_t *d, entry_t *e, void *dst)
{
    if (!e->on_gpu || copy_sync(d, D2H, dst, gbase(d) + e->gpu_off, e->size)) return -1;
    sum_if_pending(e, dst);
    return 0;
}
