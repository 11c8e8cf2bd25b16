/* store.c - the host tier: one sealed arena, an extent allocator, LRU, pins.
 *
 * Every entry is in the id map. LIVE entries also sit on one of two recency
 * lists, most recently used at the head: `lru` holds the unpinned ones (the
 * only evictable entries, so eviction pops its tail and never steps over a
 * pinned entry), `pinned` the pinned ones. A recency stamp on each entry lets
 * store_foreach() interleave the two lists in true MRU -> LRU order. PENDING
 * entries and deleted-but-pinned ones are on no list.
 */
#include "store.h"

#include "alloc.h"
#include "arena.h"
#include "u64map.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STORE_DEFAULT_ALIGN 4096

typedef enum {
    ENTRY_PENDING,   /* reserved, being filled; invisible */
    ENTRY_LIVE,      /* committed, visible */
    ENTRY_DELETED,   /* deleted while pinned; freed at the last unpin */
} entry_state_t;

typedef struct entry {
    uint64_t id;
    uint64_t off;
    uint64_t size;               /* as requested */
    uint64_t asize;              /* as taken from the allocator */
    uint64_t stamp;              /* recency clock at the last use */
    void *user;
    uint32_t pins;
    entry_state_t state;
    struct entry *prev, *next;   /* on lru or pinned, LIVE only */
} entry_t;

typedef struct {
    entry_t *head, *tail;        /* head = most recently used */
    uint64_t count;
    uint64_t bytes;              /* sum of asize */
} list_t;

struct store {
    arena_t arena;
    alloc_t *alloc;
    u64map_t map;                /* id -> entry_t *, every entry */
    list_t lru;                  /* LIVE, unpinned */
    list_t pinned;               /* LIVE, pinned */
    uint64_t clock;
    uint64_t capacity;
    uint64_t max_entries;
    uint64_t align;
    store_drop_cb on_drop;
    void *ctx;

    uint64_t bytes_used;
    uint64_t bytes_pinned;
    uint64_t live;
    uint64_t pending;
    uint64_t pinned_entries;
    uint64_t pins;
    uint64_t evictions;
    uint64_t deletes;
    uint64_t alloc_failures;
    int clear_freed;             /* zero an extent's bytes when it is freed */
    store_clear_cb clear;        /* how, for a store without an arena (or NULL) */
    void *clear_ctx;
    uint64_t cleared_bytes;
};

/* ---- recency lists ----------------------------------------------------- */

static void list_push_head(list_t *l, entry_t *e)
{
    e->prev = NULL;
    e->next = l->head;
    if (l->head != NULL)
        l->head->prev = e;
    else
        l->tail = e;
    l->head = e;
    l->count++;
    l->bytes += e->asize;
}

static void list_unlink(list_t *l, entry_t *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
    l->count--;
    l->bytes -= e->asize;
}

/* The list a LIVE entry is on. */
static list_t *list_of(store_t *s, const entry_t *e)
{
    return e->pins > 0 ? &s->pinned : &s->lru;
}

/* Make a LIVE entry (already off its list) the most recently used. */
static void make_mru(store_t *s, entry_t *e)
{
    e->stamp = ++s->clock;
    list_push_head(list_of(s, e), e);
}

/* ---- leaving ----------------------------------------------------------- */

/* Release an entry that is on no list, then tell the owner. */
static void drop(store_t *s, entry_t *e, store_drop_reason_t why)
{
    uint64_t id = e->id;
    void *user = e->user;

    uint64_t off = e->off, asize = e->asize;

    u64map_del(&s->map, id);
    /* Cannot fail: the extent is exactly what alloc_reserve() gave. */
    (void)alloc_release(s->alloc, off, asize);
    s->bytes_used -= asize;
    if (why == STORE_DROP_EVICTED)
        s->evictions++;
    else if (why == STORE_DROP_DELETED)
        s->deletes++;
    free(e);
    /* The callback may still read the bytes (a demotion writes them to
     * disk); it cannot reuse the extent, so clearing after it is in time:
     * no later reader of the arena (another tenant's client, a client
     * without a lease) sees what was there. */
    if (s->on_drop != NULL)
        s->on_drop(s->ctx, id, user, why);
    if (s->clear_freed && s->arena.base != NULL) {
        memset((uint8_t *)s->arena.base + off, 0, asize);
        s->cleared_bytes += asize;
    } else if (s->clear_freed && s->clear != NULL) {
        s->clear(s->clear_ctx, off, asize);
        s->cleared_bytes += asize;
    }
}

static void evict(store_t *s, entry_t *e)
{
    list_unlink(&s->lru, e);
    s->live--;
    drop(s, e, STORE_DROP_EVICTED);
}

/* ---- lifecycle --------------------------------------------------------- */

static store_t *new_failed(store_t *s, char *err, size_t errlen, const char *msg)
{
    if (msg != NULL && err != NULL && errlen > 0)
        snprintf(err, errlen, "store: %s", msg);
    if (s != NULL) {
        alloc_free(s->alloc);
        free(s);
    }
    return NULL;
}

store_t *store_new(const store_config_t *cfg, char *err, size_t errlen)
{
    uint64_t align = cfg->align != 0 ? cfg->align : STORE_DEFAULT_ALIGN;
    long pagesize = sysconf(_SC_PAGESIZE);
    uint64_t page = pagesize > 0 ? (uint64_t)pagesize : 4096;
    uint64_t unit = align > page ? align : page;
    if (cfg->huge != ARENA_HUGE_OFF && !cfg->no_arena && unit < ARENA_HUGE_PAGE)
        unit = ARENA_HUGE_PAGE;
    uint64_t size;
    store_t *s;

    if ((align & (align - 1)) != 0)
        return new_failed(NULL, err, errlen, "align must be a power of two");
    if (cfg->capacity == 0)
        return new_failed(NULL, err, errlen, "capacity must be > 0");
    if (cfg->capacity > UINT64_MAX - (unit - 1))
        return new_failed(NULL, err, errlen, "capacity too large");
    size = (cfg->capacity + unit - 1) & ~(unit - 1);

    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return new_failed(NULL, err, errlen, "out of memory");
    s->arena.fd = -1;
    s->alloc = alloc_new(size, (uint32_t)align);
    if (s->alloc == NULL)
        return new_failed(s, err, errlen, "out of memory");
    if (cfg->no_arena)
        s->arena.size = size;   /* bookkeeping only: the bytes live elsewhere */
    else if (arena_open_huge(&s->arena, cfg->name, size, cfg->huge, err, errlen) != 0)
        return new_failed(s, err, errlen, NULL);
    u64map_init(&s->map);
    s->capacity = size;
    s->max_entries = cfg->max_entries;
    s->align = align;
    s->on_drop = cfg->on_drop;
    s->ctx = cfg->ctx;
    return s;
}

void store_free(store_t *s)
{
    size_t pos = 0;
    uint64_t id;
    void *val;

    if (s == NULL)
        return;
    while (u64map_next(&s->map, &pos, &id, &val))
        free(val);
    u64map_clear(&s->map);
    alloc_free(s->alloc);
    arena_close(&s->arena);
    free(s);
}

int store_arena_fd(const store_t *s)
{
    return s->arena.fd;
}

uint64_t store_arena_size(const store_t *s)
{
    return s->arena.size;
}

uint8_t *store_base(const store_t *s)
{
    return s->arena.base;
}

arena_pages_t store_arena_pages(const store_t *s)
{
    return s->arena.pages;
}

/* ---- entries ----------------------------------------------------------- */

static entry_t *find(const store_t *s, uint64_t id)
{
    return u64map_get(&s->map, id);
}

static int refuse(store_t *s, int err)
{
    s->alloc_failures++;
    return err;
}

int store_alloc(store_t *s, uint64_t id, uint64_t size, void *user, uint64_t *off)
{
    uint64_t asize, count;
    alloc_stats_t as;
    entry_t *e;
    int r;

    if (id == 0 || size == 0)
        return -EINVAL;
    if (find(s, id) != NULL)
        return -EEXIST;
    asize = alloc_round(s->alloc, size);
    if (asize == 0 || asize > s->capacity)
        return refuse(s, -EFBIG);

    /* Refuse up front, evicting nothing, what eviction cannot fix: too few
     * evictable entries for the cap, or too few free plus evictable bytes. */
    count = s->live + s->pending;
    if (s->max_entries != 0 && count >= s->max_entries &&
        count - s->max_entries + 1 > s->lru.count)
        return refuse(s, -ENOSPC);
    alloc_get_stats(s->alloc, &as);
    if (as.free_bytes + s->lru.bytes < asize)
        return refuse(s, -ENOSPC);

    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return -ENOMEM;
    while (s->max_entries != 0 && s->live + s->pending >= s->max_entries)
        evict(s, s->lru.tail);
    /* Evict from the LRU end until a hole fits. Holes between pinned or
     * pending extents can still make this fail after the LRU list is empty;
     * the entries evicted on the way then stay evicted (see store.h). */
    for (;;) {
        r = alloc_reserve(s->alloc, size, &e->off);
        if (r != -ENOSPC || s->lru.tail == NULL)
            break;
        evict(s, s->lru.tail);
    }
    if (r != 0) {
        free(e);
        return r == -ENOSPC ? refuse(s, r) : r;
    }
    if (u64map_put(&s->map, id, e) != 0) {
        (void)alloc_release(s->alloc, e->off, asize);
        free(e);
        return -ENOMEM;
    }
    e->id = id;
    e->size = size;
    e->asize = asize;
    e->user = user;
    e->state = ENTRY_PENDING;
    s->pending++;
    s->bytes_used += asize;
    *off = e->off;
    return 0;
}

int store_commit(store_t *s, uint64_t id)
{
    entry_t *e = find(s, id);

    if (e == NULL || e->state != ENTRY_PENDING)
        return -ENOENT;
    e->state = ENTRY_LIVE;
    s->pending--;
    s->live++;
    make_mru(s, e);
    return 0;
}

int store_abort(store_t *s, uint64_t id)
{
    entry_t *e = find(s, id);

    if (e == NULL || e->state != ENTRY_PENDING)
        return -ENOENT;
    s->pending--;
    drop(s, e, STORE_DROP_ABORTED);
    return 0;
}

int store_pin(store_t *s, uint64_t id, uint64_t *off, uint64_t *size)
{
    entry_t *e = find(s, id);

    if (e == NULL || e->state != ENTRY_LIVE)
        return -ENOENT;
    if (e->pins == UINT32_MAX)
        return -EOVERFLOW;
    list_unlink(list_of(s, e), e);
    if (e->pins == 0) {
        s->pinned_entries++;
        s->bytes_pinned += e->asize;
    }
    e->pins++;
    s->pins++;
    make_mru(s, e);
    *off = e->off;
    *size = e->size;
    return 0;
}

int store_unpin(store_t *s, uint64_t id)
{
    entry_t *e = find(s, id);

    if (e == NULL)
        return -ENOENT;
    if (e->pins == 0)
        return -EINVAL;
    if (e->pins > 1) {
        e->pins--;
        s->pins--;
        return 0;
    }
    if (e->state == ENTRY_LIVE)
        list_unlink(&s->pinned, e);
    e->pins = 0;
    s->pins--;
    s->pinned_entries--;
    s->bytes_pinned -= e->asize;
    if (e->state == ENTRY_DELETED) {
        drop(s, e, STORE_DROP_DELETED);
        return 0;
    }
    /* The lease was a use: the entry goes back as the most recently used. */
    make_mru(s, e);
    return 0;
}

int store_touch(store_t *s, uint64_t id)
{
    entry_t *e = find(s, id);

    if (e == NULL || e->state != ENTRY_LIVE)
        return -ENOENT;
    list_unlink(list_of(s, e), e);
    make_mru(s, e);
    return 0;
}

int store_delete(store_t *s, uint64_t id)
{
    entry_t *e = find(s, id);

    if (e == NULL || e->state != ENTRY_LIVE)
        return -ENOENT;
    list_unlink(list_of(s, e), e);
    s->live--;
    if (e->pins == 0) {
        drop(s, e, STORE_DROP_DELETED);
        return 0;
    }
    e->state = ENTRY_DELETED;
    return 0;
}

int store_set_user(store_t *s, uint64_t id, void *user)
{
    entry_t *e = find(s, id);

    if (e == NULL)
        return -ENOENT;
    e->user = user;
    return 0;
}

void *store_user(const store_t *s, uint64_t id)
{
    const entry_t *e = find(s, id);

    return e != NULL && e->state != ENTRY_DELETED ? e->user : NULL;
}

int store_is_live(const store_t *s, uint64_t id)
{
    const entry_t *e = find(s, id);

    return e != NULL && e->state == ENTRY_LIVE;
}

/* ---- limits ------------------------------------------------------------ */

uint64_t store_evict(store_t *s, uint64_t n)
{
    uint64_t done = 0;

    while (done < n && s->lru.tail != NULL) {
        evict(s, s->lru.tail);
        done++;
    }
    return done;
}

int store_set_capacity(store_t *s, uint64_t capacity)
{
    uint64_t limit = capacity & ~(s->align - 1);
    size_t pos = 0;
    uint64_t id;
    void *val;
    entry_t *e, *prev;
    int r;

    if (capacity > s->arena.size)
        return -EINVAL;
    r = alloc_set_limit(s->alloc, limit);
    if (r != 0)
        return r;
    s->capacity = limit;

    for (e = s->lru.tail; e != NULL; e = prev) {
        prev = e->prev;
        if (e->off + e->asize > limit)
            evict(s, e);
    }
    /* What is left past the limit is pinned, pending or deleted-but-pinned.
     * A rare admin operation: a full scan is fine here. */
    while (u64map_next(&s->map, &pos, &id, &val)) {
        e = val;
        if (e->off + e->asize > limit)
            return -EBUSY;
    }
    return 0;
}

void store_set_clear_freed(store_t *s, int on)
{
    s->clear_freed = on != 0;
}

void store_set_clear_fn(store_t *s, store_clear_cb fn, void *ctx)
{
    s->clear = fn;
    s->clear_ctx = ctx;
}

int store_set_max_entries(store_t *s, uint64_t max_entries)
{
    s->max_entries = max_entries;
    if (max_entries == 0)
        return 0;
    while (s->live + s->pending > max_entries && s->lru.tail != NULL)
        evict(s, s->lru.tail);
    return s->live + s->pending > max_entries ? -EBUSY : 0;
}

void store_get_stats(const store_t *s, store_stats_t *st)
{
    alloc_stats_t as;

    alloc_get_stats(s->alloc, &as);
    st->capacity = s->capacity;
    st->arena_size = s->arena.size;
    st->bytes_used = s->bytes_used;
    st->bytes_pinned = s->bytes_pinned;
    st->entries = s->live;
    st->pending = s->pending;
    st->pinned_entries = s->pinned_entries;
    st->pins = s->pins;
    st->evictions = s->evictions;
    st->deletes = s->deletes;
    st->alloc_failures = s->alloc_failures;
    st->cleared_bytes = s->cleared_bytes;
    st->free_extents = as.free_extents;
    st->largest_free = as.largest_free;
}

void store_foreach(const store_t *s, store_foreach_fn fn, void *arg)
{
    const entry_t *a = s->lru.head, *b = s->pinned.head;

    /* Both lists run from high stamps to low: merge them. */
    while (a != NULL || b != NULL) {
        const entry_t *e;

        if (b == NULL || (a != NULL && a->stamp > b->stamp)) {
            e = a;
            a = a->next;
        } else {
            e = b;
            b = b->next;
        }
        if (fn(arg, e->id, e->user, e->off, e->size, e->pins))
            return;
    }
}
