/* alloc.h - extent allocator over the byte range [0, capacity).
 *
 * Hands out aligned extents (offset, size) of one arena; it never touches the
 * arena's bytes. Free extents sit in two treaps: by (size, offset) for
 * best fit (smallest hole that fits, lowest address among equals) and by
 * offset for coalescing, so reserve and release stay O(log holes) with tens
 * of thousands of holes. A movable limit fences off the top of the range
 * (used when a store's capacity shrinks below its arena size).
 *
 * Not thread-safe: one owner at a time.
 */
#ifndef SIMCACHE_ALLOC_H
#define SIMCACHE_ALLOC_H

#include <stdint.h>

typedef struct alloc alloc_t;

typedef struct {
    uint64_t capacity;      /* bytes managed: whole units, capacity rounded down to align */
    uint64_t limit;         /* bytes below which extents are handed out (<= capacity) */
    uint64_t align;         /* unit size in bytes */
    uint64_t free_bytes;    /* free bytes below the limit */
    uint64_t free_extents;  /* free holes below the limit */
    uint64_t largest_free;  /* biggest free hole below the limit, bytes */
    uint64_t reserved;      /* extents currently reserved */
} alloc_stats_t;

/* New allocator over [0, capacity) with everything free; the limit starts at
 * capacity. align must be a power of two (>= 1); a capacity that is not a
 * multiple of align loses its tail. Returns NULL if align is not a power of
 * two, if capacity holds no whole unit, or out of memory. Free with
 * alloc_free(). */
alloc_t *alloc_new(uint64_t capacity, uint32_t align);

/* Free the allocator. Outstanding extents simply cease to exist. NULL is a
 * no-op. */
void alloc_free(alloc_t *a);

/* Bytes actually taken by a request of `size` bytes: size rounded up to the
 * alignment. Returns 0 if size is 0 or the rounding overflows. */
uint64_t alloc_round(const alloc_t *a, uint64_t size);

/* Reserve alloc_round(size) bytes below the limit, best fit. On success
 * *off is the extent's offset (a multiple of align).
 * Errors: -EINVAL (size 0 or too big to round), -ENOSPC (no free hole large
 * enough; nothing changed), -ENOMEM (nothing changed). */
int alloc_reserve(alloc_t *a, uint64_t size, uint64_t *off);

/* Reserve exactly [off, off + alloc_round(size)) (used to rebuild the map
 * of a store whose extents were recorded elsewhere, e.g. after a restart).
 * Errors: -EINVAL (size 0, misaligned or out of range), -EBUSY (not all of it
 * is free below the limit; nothing changed), -ENOMEM (nothing changed). */
int alloc_reserve_at(alloc_t *a, uint64_t off, uint64_t size);

/* Give back an extent: off and size exactly as reserved (size is rounded the
 * same way). It coalesces with free neighbours. The part of it at or past the
 * limit stays fenced (free, but not handed out) until the limit rises again.
 * Never allocates memory, so it cannot fail on a valid extent.
 * Errors: -EINVAL (misaligned, out of range, or overlapping free space, e.g. a
 * double release; nothing changed). */
int alloc_release(alloc_t *a, uint64_t off, uint64_t size);

/* Move the limit to `limit` bytes (rounded down to align). Lowering it fences
 * free space at or past it; reserved extents there stay valid until released.
 * Raising it makes the fenced free space usable again. O(holes moved x log).
 * Errors: -EINVAL (limit over the capacity; nothing changed). */
int alloc_set_limit(alloc_t *a, uint64_t limit);

/* Fill *st. O(log holes). */
void alloc_get_stats(const alloc_t *a, alloc_stats_t *st);

/* Visit the free extents (offset order; fenced ones too, flagged), stopping
 * when fn returns nonzero. fn must not change the allocator. For tests and
 * diagnostics: O(holes). */
void alloc_foreach_free(const alloc_t *a,
                        int (*fn)(void *arg, uint64_t off, uint64_t size, int fenced),
                        void *arg);

#endif
