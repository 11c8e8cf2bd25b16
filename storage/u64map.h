/* u64map.h - open-addressing hash map from nonzero 64-bit keys to pointers.
 *
 * Used for entry ids, lease ids and put tokens. Linear probing with
 * backward-shift deletion (no tombstones), grows at 70% load. Key 0 is
 * reserved as "empty" and is refused. The map never owns the values.
 */
#ifndef SIMCACHE_U64MAP_H
#define SIMCACHE_U64MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t *keys;
    void **vals;
    size_t cap;   /* power of two, or 0 */
    size_t len;
} u64map_t;

/* Zero-initialised u64map_t is a valid empty map. */
void u64map_init(u64map_t *m);
/* Free the table (not the values). */
void u64map_clear(u64map_t *m);
/* Insert or replace. Returns 0, -1 on key 0 or out of memory. */
int u64map_put(u64map_t *m, uint64_t key, void *val);
/* Value for key, or NULL. */
void *u64map_get(const u64map_t *m, uint64_t key);
/* Remove key; returns its value or NULL if absent. */
void *u64map_del(u64map_t *m, uint64_t key);
static inline size_t u64map_len(const u64map_t *m) { return m->len; }
/* Iterate: start with *pos = 0; returns 1 with key/val set, 0 at the end.
 * The map must not change during iteration. */
int u64map_next(const u64map_t *m, size_t *pos, uint64_t *key, void **val);

#endif
