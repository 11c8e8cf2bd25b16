/* gputier.h - the GPU tier: device memory above the host tier.
 *
 * The GPU tier owns its device arena, its stream and the bookkeeping store
 * (d->gstore) that places and ages its extents. It knows the host store it
 * moves entries into, and reports each entry it moved there through the
 * callback given to gtier_open (the disk tier's write-behind takes it from
 * there); it never calls the disk tier or the connections.
 */
#ifndef SIMCACHE_GPUTIER_H
#define SIMCACHE_GPUTIER_H

#include <stdint.h>

#include "catalog.h"

typedef struct daemon daemon_t;

/* Called with the id of each entry the GPU tier moved into the host tier. */
typedef void (*gtier_moved_fn)(daemon_t *d, uint64_t id);

/* Create the GPU tier when a device is there and gpu_capacity > 0 (after the
 * host store exists). A failure is logged and leaves the daemon host-only. */
void gtier_open(daemon_t *d, gtier_moved_fn moved_to_host);
/* Apply host_clear_freed to the GPU tier too (reload, config set). */
void gtier_apply_config(daemon_t *d);
/* Free the tier and the records of the entries it holds. */
void gtier_close(daemon_t *d);
/* Move a live host entry into the GPU tier (host-to-device copy, finished
 * before this returns). 0, or -1 with e still in the host tier. */
int gtier_promote(daemon_t *d, entry_t *e);
/* Move a live GPU entry into the host tier (device-to-host copy). 0, or -1
 * with e still in the GPU tier. */
int gtier_to_host(daemon_t *d, entry_t *e);
/* Reserve GPU bytes for new entry e (PENDING in d->gstore, e->gpu_off set)
 * and copy size bytes from device pointer src (of this process) there; the
 * copy has finished when this returns. 0, or SIMCACHE_ETOOBIG / ENOSPC /
 * EIO / ENOMEM; nothing is left reserved on failure. */
int gtier_put(daemon_t *d, entry_t *e, const void *src_dev);
/* Copy a GPU entry's bytes into host memory dst (size bytes) and compute its
 * checksum if still pending. 0 or -1. */
int gtier_read(daemon_t *d, entry_t *e, void *dst);

/* "vmm" or "legacy": how clients map the arena ("none" without a tier). */
const char *gtier_ipc_kind(const daemon_t *d);
/* The device arena clients map (gpu_attach), or NULL without a tier. */
struct gpu_arena *gtier_arena(const daemon_t *d);

typedef struct {
    uint64_t demotions;      /* evicted to the host tier */
    uint64_t promotions;     /* host entries moved up for PREFER_DEVICE clients */
    uint64_t to_host;        /* moved down for clients without the GPU arena */
    uint64_t move_failures;
    int host_pinned;         /* the host arena is registered with CUDA */
} gtier_stats_t;

/* Fill *st; -1 without a GPU tier. */
int gtier_get_stats(const daemon_t *d, gtier_stats_t *st);

#endif
