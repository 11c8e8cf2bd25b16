/* tier.h - the disk tier under the host tier: demotion, promotion, durable
 * puts, the write-behind, checkpoints and the rebuild of entries at start.
 *
 * The disk tier owns the records of entries whose bytes are only on disk
 * and the promotions in flight. It never calls into connections: a request
 * that must wait for a promotion gets -EINPROGRESS from tier_fetch, and the
 * tier calls the wake function given to tier_open once per waiter when the
 * promotion completed, whatever its outcome.
 */
#ifndef SIMCACHE_TIER_H
#define SIMCACHE_TIER_H

#include <stdint.h>

#include "catalog.h"
#include "disk.h"
#include "store.h"

typedef struct daemon daemon_t;

/* Called once per wait (tier_fetch returned -EINPROGRESS) when that
 * promotion completed; the waiter then replays its request. */
typedef void (*tier_wake_fn)(void *waiter);

/* Open the disk tier (if disk_capacity > 0) and re-create the entries it
 * holds (indexed, on disk only). Records whose namespace cannot be made
 * (memory) stay on disk for the next start; only unreadable records are
 * deleted. 0 or -1 (logged). */
int tier_open(daemon_t *d, tier_wake_fn wake);
/* Checkpoint (async durability) and close. */
void tier_close(daemon_t *d);
/* Store eviction of a live, indexed entry: write it to disk (unless there
 * already) and keep its record there. 0, or -1 when it must be dropped
 * (no disk tier, write failed). */
int tier_demote(daemon_t *d, entry_t *e);
/* An entry only on disk, brought back into the host tier (synchronous read,
 * checksum checked). NULL if id is not on disk or could not be promoted. */
entry_t *tier_promote(daemon_t *d, uint64_t id);
/* Bring entry id (of namespace ns; NULL: any) into a memory tier for a
 * request of `waiter`. Returns 0 with *e set to the live entry, or NULL when
 * id is in no tier or could not be read. Returns -EINPROGRESS when the read
 * runs in the background: wake(waiter) follows once it completed. Returns
 * SIMCACHE_ECORRUPT (*e NULL) when id's blob failed its checksum on this
 * read (synchronous) or on the read the waiter waited for (its replay): the
 * entry is dropped, so a later fetch finds nothing. Returns SIMCACHE_ENOSPC
 * (*e NULL) when the host tier has no room for it (full of leased entries;
 * the entry stays on disk). With may_wait 0 (or no asynchronous reads) it
 * promotes synchronously. */
int tier_fetch(daemon_t *d, uint64_t id, ns_t *ns, void *waiter, int may_wait, entry_t **e);
/* A waiter is going away: take it off every promotion's waiters. */
void tier_waiter_gone(daemon_t *d, void *waiter);
/* A host entry not on disk yet: the write-behind will write it (async
 * durability with disk_flush_ms). */
void tier_note_dirty(daemon_t *d, uint64_t id);
/* Write a host entry to disk now (sync puts, checkpoint). 0 or a SIMCACHE_E*. */
int tier_persist(daemon_t *d, entry_t *e);
/* Is the entry only on disk? Its record then, else NULL. */
entry_t *tier_disk_entry(daemon_t *d, uint64_t id);
/* Delete an entry's disk copy and, if it lives only on disk, its record. */
void tier_forget(daemon_t *d, uint64_t id);
/* Call fn(arg, id, record, 0, 0, 0) for every entry whose record the disk
 * tier holds: only on disk, and (with_promotions) being promoted. Stops
 * when fn returns nonzero. */
void tier_foreach_entry(daemon_t *d, int with_promotions, store_foreach_fn fn, void *arg);
/* Write every host entry not yet on disk, then flush. Returns how many were
 * written, or -1 if the disk tier is off. */
int64_t tier_checkpoint(daemon_t *d);

/* Is there a disk tier? */
int tier_on(const daemon_t *d);
/* Host bytes of entry id are about to be reused: cancel a write-behind of
 * them that has not started (a no-op without a disk tier). */
void tier_cancel_write(daemon_t *d, uint64_t id);
/* disk_register_arena: register the host arena with the disk's ring in
 * pieces (disk_fixed_init, disk_fixed_add); -EOPNOTSUPP without a disk tier. */
int tier_fixed_init(daemon_t *d, void *base, uint64_t size, uint64_t *piece);
int tier_fixed_add(daemon_t *d, uint32_t piece);
/* Re-read every blob on disk against its checksum (admin verify): how many
 * failed (dropped), -ENODEV without a disk tier, or another negative errno;
 * *checked how many were read. */
int64_t tier_verify(daemon_t *d, uint64_t *checked);

typedef struct {
    disk_stats_t disk;            /* the storage's own figures */
    uint64_t only_entries;        /* records held only on disk */
    uint64_t demotions, promotions, promotions_async, promotions_in_flight, promotion_waits;
    uint64_t write_failures;
    uint32_t flush_ms;            /* the write-behind's period (0: off) */
    uint64_t flushes, flush_failures, flush_queue, flush_inflight;
} tier_stats_t;

/* Fill *st; -1 (st untouched) without a disk tier. */
int tier_get_stats(daemon_t *d, tier_stats_t *st);

#endif
