/* store.h - the host tier: KV bytes in one sealed memfd arena, LRU, leases.
 *
 * The store owns bytes and their lifetime; it knows nothing of sockets,
 * clients, embeddings or namespaces. The daemon maps the arena read-write;
 * clients get the arena fd (sealed: F_SEAL_FUTURE_WRITE | F_SEAL_GROW |
 * F_SEAL_SHRINK | F_SEAL_SEAL) and can only map it read-only.
 *
 * Entry life: store_alloc() reserves space (state PENDING: invisible, never
 * evicted), the caller copies the bytes into it, store_commit() makes it LIVE
 * and most recently used. A LIVE entry with no pins is evictable in LRU order;
 * eviction and final deletion call the on_drop callback with the entry's user
 * pointer so the caller can drop its index record and metadata. A pinned
 * entry's bytes never move nor get reused until the last store_unpin().
 *
 * Not thread-safe: one thread (the daemon's loop) drives a store. Every
 * holder of the arena fd can read the whole arena: all entries and pending
 * bytes, and the bytes of dropped entries unless store_set_clear_freed is
 * on. Isolation between tenants therefore needs separate stores, not
 * separate ids.
 */
#ifndef SIMCACHE_STORE_H
#define SIMCACHE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"

typedef struct store store_t;

/* Why an entry left the store. */
typedef enum {
    STORE_DROP_EVICTED = 1,   /* LRU eviction to make room or by store_evict() */
    STORE_DROP_DELETED = 2,   /* store_delete(), after the last pin ended */
    STORE_DROP_ABORTED = 3,   /* store_abort() of a pending entry */
} store_drop_reason_t;

/* Called once per entry that leaves the store (never from store_free()).
 * The entry's bytes are already released when it runs, and its id is free
 * again. It runs inside store_alloc, store_abort, store_unpin, store_delete,
 * store_evict, store_set_capacity and store_set_max_entries; it may read the
 * store (store_user, store_is_live, store_get_stats) but must not change it. */
typedef void (*store_drop_cb)(void *ctx, uint64_t id, void *user, store_drop_reason_t why);

typedef struct {
    uint64_t capacity;        /* arena bytes; rounded up to the page size (2 MiB
                               * unless huge is ARENA_HUGE_OFF) */
    uint64_t max_entries;     /* 0 = no cap */
    uint32_t align;           /* allocation alignment, power of two; 0 = 4096 */
    const char *name;         /* memfd name, for /proc; may be NULL */
    int no_arena;             /* 1: no memfd: the store only places and ages
                               * extents of memory owned elsewhere (the GPU
                               * tier); store_arena_fd is -1, store_base NULL */
    arena_huge_t huge;        /* huge pages for the memfd (arena_open_huge) */
    store_drop_cb on_drop;
    void *ctx;
} store_config_t;

/* Entries deleted while pinned count in bytes_used, bytes_pinned,
 * pinned_entries and pins (their bytes are still held), not in entries. */
typedef struct {
    uint64_t capacity;        /* usable bytes (may be below the arena size after a shrink) */
    uint64_t arena_size;      /* bytes of the memfd */
    uint64_t bytes_used;      /* live + pending, aligned sizes */
    uint64_t bytes_pinned;
    uint64_t entries;         /* live */
    uint64_t pending;
    uint64_t pinned_entries;
    uint64_t pins;            /* sum of pin counts */
    uint64_t evictions;       /* entries dropped with STORE_DROP_EVICTED */
    uint64_t deletes;         /* entries dropped with STORE_DROP_DELETED */
    uint64_t alloc_failures;  /* store_alloc() refusals: -EFBIG, -ENOSPC */
    uint64_t cleared_bytes;   /* freed bytes zeroed (store_set_clear_freed) */
    uint64_t free_extents;    /* fragmentation: number of free holes below capacity */
    uint64_t largest_free;    /* biggest free hole below capacity, bytes */
} store_stats_t;

/* Create the arena and the store. The arena size is cfg->capacity rounded up
 * to the page size, or to align where align is larger; capacity starts equal
 * to it. cfg is copied (name is only used here). Returns NULL and fills err
 * (may be NULL) on failure: zero capacity, align not a power of two, no
 * memory, or the memfd could not be created, mapped or sealed. Free with
 * store_free(). */
store_t *store_new(const store_config_t *cfg, char *err, size_t errlen);
/* Unmap and close everything; no callbacks. NULL is a no-op. */
void store_free(store_t *s);

/* The sealed memfd (owned by the store; dup it to keep it) and its size.
 * The size never changes, also not with store_set_capacity(). */
int store_arena_fd(const store_t *s);
uint64_t store_arena_size(const store_t *s);
/* Base of the daemon's writable mapping. */
uint8_t *store_base(const store_t *s);
/* What backs the memfd (ARENA_PAGES_4K with no_arena). */
arena_pages_t store_arena_pages(const store_t *s);

/* Reserve `size` bytes (size >= 1) for a new PENDING entry with id `id`
 * (nonzero, unused) and opaque `user`. Evicts LRU unpinned entries as needed,
 * also to respect max_entries. On success *off is the entry's offset in the
 * arena. Errors: -EINVAL (bad id or size), -EEXIST (id in use), -EFBIG (size
 * over the capacity), -ENOSPC (not enough evictable bytes), -ENOMEM.
 *
 * The size is rounded up to the alignment (bytes_used counts that). An id
 * deleted while pinned stays in use until its last pin ends. Pending entries
 * count toward max_entries. Eviction pops the LRU tail: O(evicted x log holes),
 * never a scan. On -ENOSPC when the cap cannot be met (every live entry
 * pinned) or free plus evictable bytes fall short, nothing was evicted. But
 * pinned and pending extents can split the space so that no hole fits even
 * when enough bytes would be free: then everything evictable has been
 * evicted (each with its on_drop) before -ENOSPC; the store stays consistent.
 * Entries evicted for the cap also stay evicted if the space then fails. */
int store_alloc(store_t *s, uint64_t id, uint64_t size, void *user, uint64_t *off);
/* PENDING -> LIVE (most recently used). -ENOENT if not pending. */
int store_commit(store_t *s, uint64_t id);
/* Drop a PENDING entry (on_drop with STORE_DROP_ABORTED). -ENOENT if not pending. */
int store_abort(store_t *s, uint64_t id);

/* Pin a LIVE entry (a lease) and mark it most recently used; returns its
 * offset/size (the size given to store_alloc). -ENOENT if absent, pending or
 * deleted; -EOVERFLOW at 2^32 - 1 pins. Pins nest: each needs an unpin. */
int store_pin(store_t *s, uint64_t id, uint64_t *off, uint64_t *size);
/* End one pin. If the entry was deleted and this was the last pin, its bytes
 * are freed (on_drop with STORE_DROP_DELETED). -ENOENT if absent, -EINVAL if
 * not pinned. The last unpin of a live entry makes it the most recently used
 * (the lease was a use) and evictable again. */
int store_unpin(store_t *s, uint64_t id);
/* Touch without pinning (LRU only). -ENOENT if absent, pending or deleted. */
int store_touch(store_t *s, uint64_t id);
/* Delete a LIVE entry: at once if unpinned, else when the last pin ends.
 * A deleted entry can no longer be pinned. -ENOENT if absent or deleted, and
 * for a pending entry (use store_abort()). */
int store_delete(store_t *s, uint64_t id);
/* Replace the user pointer of an entry in any state (also deleted but
 * pinned): later on_drop calls get the new one. -ENOENT if absent. Lets the
 * caller hand an entry's record to another tier and leave these bytes to
 * their pins (set NULL, then store_delete). */
int store_set_user(store_t *s, uint64_t id, void *user);
/* The user pointer of a live or pending entry, or NULL. */
void *store_user(const store_t *s, uint64_t id);
/* Is the entry LIVE and not deleted? */
int store_is_live(const store_t *s, uint64_t id);

/* Evict up to n LRU unpinned entries; returns how many went. */
uint64_t store_evict(store_t *s, uint64_t n);
/* Change limits at run time. Capacity may not exceed the arena size
 * (-EINVAL); shrinking evicts what it can and returns -EBUSY if pinned bytes
 * still sit past the limit (the new limit stays, nothing new goes there).
 *
 * The capacity is rounded down to the alignment. Pending entries past the
 * limit also give -EBUSY; entries left there are not evicted when they are
 * unpinned later: call again (same value) to evict what has become evictable.
 * The arena keeps its size and the kernel keeps its pages (sealed memfds
 * cannot punch holes): shrinking bounds placement, it returns no memory.
 * Raising the capacity again, up to the arena size, is allowed. */
int store_set_capacity(store_t *s, uint64_t capacity);
/* 0 = no cap. Lowering it evicts LRU entries until live + pending fit, and
 * returns -EBUSY if pinned or pending ones still exceed it (the cap stays;
 * allocations get -ENOSPC until it is met). */
int store_set_max_entries(store_t *s, uint64_t max_entries);
/* on: every freed extent (evicted, deleted after its last pin, aborted) is
 * zeroed right after on_drop, so no holder of the arena fd reads a dropped
 * entry's bytes. Off by default; a no-op for a store without an arena. */
void store_set_clear_freed(store_t *s, int on);
/* For a store without an arena (the GPU tier's): clearing calls fn(ctx,
 * off, size) for each freed extent, after on_drop, instead of memset. */
typedef void (*store_clear_cb)(void *ctx, uint64_t off, uint64_t size);
void store_set_clear_fn(store_t *s, store_clear_cb fn, void *ctx);

/* Fill *st. O(log free holes). */
void store_get_stats(const store_t *s, store_stats_t *st);

/* Visit live entries from most to least recently used; stop when fn returns
 * nonzero. fn must not change the store. Pinned entries are included (pins >
 * 0); pending and deleted ones are not. size is the requested size. */
typedef int (*store_foreach_fn)(void *arg, uint64_t id, void *user, uint64_t off, uint64_t size,
                                uint32_t pins);
void store_foreach(const store_t *s, store_foreach_fn fn, void *arg);

#endif
