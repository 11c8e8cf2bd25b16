/* u64map.c - open-addressing hash map from nonzero 64-bit keys to pointers.
 *
 * Keys are scrambled with the splitmix64 finalizer (ids are often sequential,
 * which would cluster badly under linear probing otherwise). Deletion shifts
 * later members of the probe run back into the hole, so there are no
 * tombstones and lookups stay short however many deletes happen.
 */
#include "u64map.h"

#include <stdlib.h>

#define U64MAP_MIN_CAP 16

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static size_t home_slot(const u64map_t *m, uint64_t key)
{
    return (size_t)mix64(key) & (m->cap - 1);
}

/* Slot holding key, or the empty slot where it would go. cap must be > 0. */
static size_t find_slot(const u64map_t *m, uint64_t key)
{
    size_t mask = m->cap - 1;
    size_t i = home_slot(m, key);

    while (m->keys[i] != 0 && m->keys[i] != key)
        i = (i + 1) & mask;
    return i;
}

void u64map_init(u64map_t *m)
{
    m->keys = NULL;
    m->vals = NULL;
    m->cap = 0;
    m->len = 0;
}

void u64map_clear(u64map_t *m)
{
    free(m->keys);
    free(m->vals);
    u64map_init(m);
}

static int resize(u64map_t *m, size_t cap)
{
    uint64_t *keys = calloc(cap, sizeof(*keys));
    void **vals = calloc(cap, sizeof(*vals));
    u64map_t grown = { keys, vals, cap, m->len };

    if (keys == NULL || vals == NULL) {
        free(keys);
        free(vals);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] != 0) {
            size_t j = find_slot(&grown, m->keys[i]);
            keys[j] = m->keys[i];
            vals[j] = m->vals[i];
        }
    }
    free(m->keys);
    free(m->vals);
    *m = grown;
    return 0;
}

int u64map_put(u64map_t *m, uint64_t key, void *val)
{
    size_t i;

    if (key == 0)
        return -1;
    if (m->cap > 0) {
        i = find_slot(m, key);
        if (m->keys[i] == key) {
            m->vals[i] = val;
            return 0;
        }
    }
    /* Keep the load at or below 70%: (len + 1) / cap <= 0.7. */
    if ((m->len + 1) * 10 > m->cap * 7) {
        size_t cap = m->cap ? m->cap * 2 : U64MAP_MIN_CAP;
        if (cap < m->cap || resize(m, cap) != 0)
            return -1;
    }
    i = find_slot(m, key);
    m->keys[i] = key;
    m->vals[i] = val;
    m->len++;
    return 0;
}

void *u64map_get(const u64map_t *m, uint64_t key)
{
    size_t i;

    if (key == 0 || m->cap == 0)
        return NULL;
    i = find_slot(m, key);
    return m->keys[i] == key ? m->vals[i] : NULL;
}

void *u64map_del(u64map_t *m, uint64_t key)
{
    size_t mask, hole, i;
    void *val;

    if (key == 0 || m->cap == 0)
        return NULL;
    mask = m->cap - 1;
    hole = find_slot(m, key);
    if (m->keys[hole] != key)
        return NULL;
    val = m->vals[hole];

    /* Backward shift: walk the rest of the run; a member may move into the
     * hole unless its home slot lies cyclically in (hole, i], where moving it
     * back would put it before its home and make it unreachable. */
    i = hole;
    for (;;) {
        size_t home;

        i = (i + 1) & mask;
        if (m->keys[i] == 0)
            break;
        home = home_slot(m, m->keys[i]);
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            m->keys[hole] = m->keys[i];
            m->vals[hole] = m->vals[i];
            hole = i;
        }
    }
    m->keys[hole] = 0;
    m->vals[hole] = NULL;
    m->len--;
    return val;
}

int u64map_next(const u64map_t *m, size_t *pos, uint64_t *key, void **val)
{
    for (size_t i = *pos; i < m->cap; i++) {
        if (m->keys[i] != 0) {
            *key = m->keys[i];
            *val = m->vals[i];
            *pos = i + 1;
            return 1;
        }
    }
    *pos = m->cap;
    return 0;
}
