/* test_store.c - the host tier: entry life, LRU order, eviction, pins,
 * deletes, the entry cap, capacity changes, callbacks, and a random stress
 * run checked against a model after every operation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store.h"

#define PG 4096u

/* ---- callback recorder ------------------------------------------------- */

enum { MAX_DROPS = 4096 };

typedef struct {
    uint64_t id;
    void *user;
    store_drop_reason_t why;
} drop_t;

typedef struct {
    drop_t drops[MAX_DROPS];
    int n;
} recorder_t;

static void record_drop(void *ctx, uint64_t id, void *user, store_drop_reason_t why)
{
    recorder_t *r = ctx;

    assert_true(r->n < MAX_DROPS);
    r->drops[r->n].id = id;
    r->drops[r->n].user = user;
    r->drops[r->n].why = why;
    r->n++;
}

/* How many times id was dropped, and the last reason. */
static int drops_of(const recorder_t *r, uint64_t id, store_drop_reason_t *why)
{
    int count = 0;

    for (int i = 0; i < r->n; i++) {
        if (r->drops[i].id == id) {
            count++;
            if (why != NULL)
                *why = r->drops[i].why;
        }
    }
    return count;
}

static void *user_of(uint64_t id)
{
    return (void *)(uintptr_t)(0x1000 + id);
}

static store_t *new_store(recorder_t *r, uint64_t capacity, uint64_t max_entries)
{
    store_config_t cfg = { 0 };
    char err[256] = "";
    store_t *s;

    memset(r, 0, sizeof(*r));
    cfg.capacity = capacity;
    cfg.max_entries = max_entries;
    cfg.name = "test-store";
    cfg.on_drop = record_drop;
    cfg.ctx = r;
    s = store_new(&cfg, err, sizeof(err));
    if (s == NULL)
        fail_msg("store_new: %s", err);
    return s;
}

/* Alloc, fill with a byte pattern, commit. Returns the offset. */
static uint64_t put(store_t *s, uint64_t id, uint64_t size, uint8_t fill)
{
    uint64_t off = UINT64_MAX;

    assert_int_equal(store_alloc(s, id, size, user_of(id), &off), 0);
    memset(store_base(s) + off, fill, size);
    assert_int_equal(store_commit(s, id), 0);
    return off;
}

static store_stats_t stats_of(const store_t *s)
{
    store_stats_t st;

    store_get_stats(s, &st);
    return st;
}

typedef struct {
    uint64_t ids[256];
    uint64_t offs[256];
    uint32_t pins[256];
    int n;
    int stop_after;
} seen_t;

static int collect(void *arg, uint64_t id, void *user, uint64_t off, uint64_t size,
                   uint32_t pins)
{
    seen_t *v = arg;

    (void)size;
    assert_ptr_equal(user, user_of(id));
    assert_true(v->n < 256);
    v->ids[v->n] = id;
    v->offs[v->n] = off;
    v->pins[v->n] = pins;
    v->n++;
    return v->stop_after != 0 && v->n >= v->stop_after;
}

static seen_t order_of(const store_t *s)
{
    seen_t v;

    memset(&v, 0, sizeof(v));
    store_foreach(s, collect, &v);
    return v;
}

static void assert_order(const store_t *s, const uint64_t *ids, int n)
{
    seen_t v = order_of(s);

    assert_int_equal(v.n, n);
    for (int i = 0; i < n; i++)
        assert_int_equal(v.ids[i], ids[i]);
}

static int all_bytes(const uint8_t *p, uint64_t n, uint8_t b)
{
    for (uint64_t i = 0; i < n; i++) {
        if (p[i] != b)
            return 0;
    }
    return 1;
}

/* ---- construction ------------------------------------------------------ */

static void new_store_rounds_capacity_to_pages_and_starts_empty(void **state)
{
    recorder_t r;
    store_t *s = new_store(&r, 10000, 0);
    store_stats_t st = stats_of(s);

    (void)state;
    assert_int_equal(st.capacity, 3 * PG);
    assert_int_equal(st.arena_size, 3 * PG);
    assert_int_equal(store_arena_size(s), 3 * PG);
    assert_true(store_arena_fd(s) >= 0);
    assert_non_null(store_base(s));
    assert_int_equal(st.bytes_used, 0);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.free_extents, 1);
    assert_int_equal(st.largest_free, 3 * PG);
    store_free(s);
    store_free(NULL);
}

static void new_store_refuses_bad_config_with_a_message(void **state)
{
    store_config_t cfg = { 0 };
    char err[256] = "";

    (void)state;
    assert_null(store_new(&cfg, err, sizeof(err)));
    assert_true(err[0] != '\0');
    cfg.capacity = PG;
    cfg.align = 3000;
    err[0] = '\0';
    assert_null(store_new(&cfg, err, sizeof(err)));
    assert_true(err[0] != '\0');
    assert_null(store_new(&cfg, NULL, 0));
}

static void large_alignment_rounds_arena_to_alignment(void **state)
{
    store_config_t cfg = { 0 };
    store_t *s;
    uint64_t off;

    (void)state;
    cfg.capacity = 5 * PG;
    cfg.align = 4 * PG;
    s = store_new(&cfg, NULL, 0);
    assert_non_null(s);
    assert_int_equal(store_arena_size(s), 8 * PG);
    assert_int_equal(store_alloc(s, 1, 1, NULL, &off), 0);
    assert_int_equal(store_alloc(s, 2, 1, NULL, &off), 0);
    assert_int_equal(off, 4 * PG);
    assert_int_equal(stats_of(s).bytes_used, 8 * PG);
    store_free(s);
}

/* ---- entry life -------------------------------------------------------- */

static void pending_entry_is_invisible_until_commit(void **state)
{
    recorder_t r;
    store_t *s = new_store(&r, 8 * PG, 0);
    uint64_t off, o2, sz;

    (void)state;
    assert_int_equal(store_alloc(s, 7, 100, user_of(7), &off), 0);
    assert_int_equal(off % PG, 0);
    assert_false(store_is_live(s, 7));
    assert_ptr_equal(store_user(s, 7), user_of(7));
    assert_int_equal(store_pin(s, 7, &o2, &sz), -ENOENT);
    assert_int_equal(store_touch(s, 7), -ENOENT);
    assert_int_equal(store_delete(s, 7), -ENOENT);
    assert_int_equal(order_of(s).n, 0);
    assert_int_equal(stats_of(s).pending, 1);
    assert_int_equal(stats_of(s).entries, 0);
    assert_int_equal(stats_of(s).bytes_used, PG);

    assert_int_equal(store_commit(s, 7), 0);
    assert_int_equal(store_commit(s, 7), -ENOENT);
    assert_true(store_is_live(s, 7));
    assert_int_equal(stats_of(s).pending, 0);
    assert_int_equal(stats_of(s).entries, 1);
    assert_int_equal(store_pin(s, 7, &o2, &sz), 0);
    assert_int_equal(o2, off);
    assert_int_equal(sz, 100);
    assert_int_equal(r.n, 0);
    store_free(s);
}

static void alloc_refuses_bad_arguments(void **state)
{
    recorder_t r;
    store_t *s = new_store(&r, 8 * PG, 0);
    uint64_t off;

    (void)state;
    assert_int_equal(store_alloc(s, 0, 10, NULL, &off), -EINVAL);
    assert_int_equal(store_alloc(s, 1, 0, NULL, &off), -EINVAL);
    assert_int_equal(store_alloc(s, 1, 10, NULL, &off), 0);
    assert_int_equal(store_alloc(s, 1, 10, NULL, &off), -EEXIST);   /* pending */
    assert_int_equal(store_commit(s, 1), 0);
    assert_int_equal(store_alloc(s, 1, 10, NULL, &off), -EEXIST);   /* live */
    assert_int_equal(store_alloc(s, 2, 8 * PG + 1, NULL, &off), -EFBIG);
    assert_int_equal(store_alloc(s, 2, UINT64_MAX, NULL, &off), -EFBIG);
    assert_int_equal(stats_of(s).alloc_failures, 2);
    assert_int_equal(store_alloc(s, 2, 7 * PG, NULL, &off), 0);
    assert_int_equal(r.n, 0);
    store_free(s);
}

static void abort_drops_pending_entry_with_reason_aborted(void **state)
{
    recorder_t r;
    store_t *s = new_store(&r, 2 * PG, 0);
    uint64_t off;
    store_drop_reason_t why;

    (void)state;
    assert_int_equal(store_alloc(s, 5, 2 * PG, user_of(5), &off), 0);
    assert_int_equal(store_abort(s, 5), 0);
    assert_int_equal(drops_of(&r, 5, &why), 1);
    assert_int_equal(why, STORE_DROP_ABORTED);
    assert_ptr_equal(r.drops[0].user, user_of(5));
    assert_int_equal(stats_of(s).bytes_used, 0);
    assert_int_equal(stats_of(s).pending, 0);
    assert_int_equal(store_abort(s, 5), -ENOENT);
    assert_int_equal(store_commit(s, 5), -ENOENT);
    assert_null(store_user(s, 5));
    /* The bytes and the id are free again. */
    assert_int_equal(store_alloc(s, 5, 2 * PG, NULL, &off), 0);
    assert_int_equal(store_commit(s, 5), 0);
    assert_int_equal(store_abort(s, 5), -ENOENT);   /* live, not pending */
    assert_int_equal(r.n, 1);
    store_free(s);
}

/* ---- LRU --------------------------------------------------------------- */

static void foreach_lists_live_entries_most_recent_first(void **state)
{
    recorder_t r;
    store_t *s = new_store(&r, 8 * PG, 0);
    uint64_t off, sz;
    seen_t v;

    (void)state;
    put(s, 1, 10, 1);
    put(s, 2, 10, 2);
    put(s, 3, 10, 3);
    assert_order(s, (uint64_t[]){ 3, 2, 1 }, 3);
    assert_int_equal(store_touch(s, 1), 0);
    assert_order(s, (uint64_t[]){ 1, 3, 2 }, 3);
    assert_int_equal(store_pin(s, 2, &off, &sz), 0);
    assert_order(s, (uint64_t[]){ 2, 1, 3 }, 3);
    assert_int_equal(store_touch(s, 3), 0);
    assert_order(s, (uint64_t[]){ 3, 2, 1 }, 3);
    v = order_of(s);
    assert_int_equal(v.pins[1], 1);
    assert_int_equal(v.pins[0], 0);
    /* The last unpin counts as a use. */
    assert_int_equal(store_unpin(s, 2), 0);
    assert_order(s, (uint64_t[]){ 2, 3, 1 }, 3);
    memset(&v, 0, sizeof(v));
    v.stop_after = 2;
    store_foreach(s, collect, &v);
    assert_int_equal(v.n, 2);
    assert_int_equal(store_touch(s, 99), -ENOENT);
    store_free(s);
}

static void full_store_evicts_least_recently_used(void **state)
{
    recorder_t r;
    store_t *s = new_store(&r, 4 * PG, 0);
    store_drop_reason_t why;

    (void)state;
    for (uint64_t id = 1; id <= 4; id++)
        put(s, id, PG, (uint8_t)id);
    assert_int_equal(store_touch(s, 1), 0);
    put(s, 5, PG, 5);                       /* 2 is the LRU */
    assert_int_equal(r.n, 1);
    assert_int_equal(drops_of(&r, 2, &why), 1);
    assert_int_equal(why, STORE_DROP_EVICTED);
    assert_ptr_equal(r.drops[0].user, user_of(2));
    assert_false(store_is_live(s, 2));
    put(s, 6, 2 * PG, 6);                   /* then 3 and 4 */
    assert_int_equal(r.n, 3);
    assert_int_equal(r.drops[1].id, 3);
    assert_int_equal(r.drops[2].id, 4);
    assert_order(s, (uint64_t[]){ 6, 5, 1 }, 3);
    assert_int_equal(stats_of(s).evictions, 3);
    assert_int_equal(stats_of(s).bytes_used, 4 * PG);
    store_free(s);
}

static void store_evict_takes_n_from_the_lru_end(void **state)
{
    recorder_t r;
    store_t *s = new_store(&r, 8 * PG, 0);
    uint64_t off, sz;

    (void)state;
    for (uint64_t id = 1; id <= 5; id++)
        put(s, id, 100, 0);
    assert_int_equal(store_pin(s, 1, &off, &sz), 0);
    assert_int_equal(store_evict(s, 2), 2);
    assert_int_equal(r.drops[0].id, 2);
    assert_int_equal(r.drops[1].id, 3);
    assert_int_equal(store_evict(s, 100), 2);   /* 4, 5; 1 is pinned */
    assert_int_equal(store_evict(s, 1), 0);
    assert_true(store_is_live(s, 1));
    assert_int_equal(stats_of(s).evictions, 4);
    store_free(s);
}

/* ---- pins -------------------------------------------------------------- */

static void pinned_entries_are_never_evicted_nor_overwritten(void **state)
{
    recorder_t r;
    store_t *s = new_store(&r, 16 * PG, 0);
    uint64_t poff[3], off, sz;
    const uint64_t pinned[3] = { 2, 9, 15 };

    (void)state;
    for (uint64_t id = 1; id <= 16; id++)
        put(s, id, PG, (uint8_t)(0x40 + id));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(store_pin(s, pinned[i], &poff[i], &sz), 0);
        assert_int_equal(sz, PG);
    }
    /* Churn the rest many times over. */
    for (uint64_t id = 100; id < 400; id++) {
        uint64_t size = (id % 3 + 1) * PG;
        assert_int_equal(store_alloc(s, id, size, user_of(id), &off), 0);
        for (int i = 0; i < 3; i++)
            assert_true(off + size <= poff[i] || poff[i] + PG <= off);
        memset(store_base(s) + off, 0xAA, size);
        assert_int_equal(store_commit(s, id), 0);
    }
    for (int i = 0; i < 3; i++) {
        assert_true(store_is_live(s, pinned[i]));
        assert_int_equal(drops_of(&r, pinned[i], NULL), 0);
        assert_true(all_bytes(store_base(s) + poff[i], PG, (uint8_t)(0x40 + pinned[i])));
    }
    assert_int_equal(stats_of(s).pinned_entries, 3);
    assert_int_equal(stats_of(s).bytes_pinned, 3 * PG);
    store_free(s);
}

static void all_entries_pinned_gives_enospc_and_evicts_nothing(void **state)
{
    recorder_t r;
    store_t *s = new_store(&r, 4 * PG, 0);
    uint64_t off, sz;

    (void)state;
    for (uint64_t id = 1; id <= 4; id++) {
        put(s, id, PG, 0);
        assert_int_equal(store_pin(s, id, &off, &sz), 0);
    }
    assert_int_equal(store_alloc(s, 9, 1, NULL, &off), -ENOSPC);
    assert_int_equal(r.n, 0);
    assert_int_equal(stats_of(s).alloc_failures, 1);
    assert_int_equal(store_evict(s, 10), 0);
    assert_int_equal(store_unpin(s, 3), 0);
    assert_int_equal(store_alloc(s, 9, 1, NULL, &off), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.drops[0].id, 3);
    store_free(s);
}

static void pins_nest_and_each_needs_an_unpin(void **state)
{
    recorder_t r;
    store_t *s = new_store(&r, 4 * PG, 0);
    uint64_t off, sz;

    (void)state;
    put(s, 1, PG, 0);
    assert_int_equal(store_pin(s, 1, &off, &sz), 0);
    assert_int_equal(store_pin(s, 1, &off, &sz), 0);
    assert_int_equal(stats_of(s).pins, 2);
    assert_int_equal(stats_of(s).pinned_entries, 1);
    assert_int_equal(store_unpin(s, 1), 0);
    assert_int_equal(store_evict(s, 1), 0);
    assert_int_equal(store_unpin(s, 1), 0);
    assert_int_equal(stats_of(s).pins, 0);
    assert_int_equal(stats_of(s).bytes_pinned, 0);
    assert_int_equal(store_unpin(s, 1), -EINVAL);
    assert_int_equal(store_unpin(s, 42), -ENOENT);
    assert_int_equal(store_evict(s, 1), 1);
    store_free(s);
}

static void delete_while_pinned_frees_after_last_unpin(void **state)
{
    recorder_t r;
    store_t *s = new_store(&r, 4 * PG, 0);
    uint64_t off, o2, sz;
    store_drop_reason_t why;

    (void)state;
    off = put(s, 1, PG, 0x5A);
    assert_int_equal(store_pin(s, 1, &o2, &sz), 0);
    assert_int_equal(store_pin(s, 1, &o2, &sz), 0);
    assert_int_equal(store_delete(s, 1), 0);
    assert_int_equal(r.n, 0);
    assert_false(store_is_live(s, 1));
    assert_null(store_user(s, 1));
    assert_int_equal(store_pin(s, 1, &o2, &sz), -ENOENT);
    assert_int_equal(store_touch(s, 1), -ENOENT);
    assert_int_equal(store_delete(s, 1), -ENOENT);
    assert_int_equal(store_alloc(s, 1, 1, NULL, &o2), -EEXIST);
    assert_int_equal(order_of(s).n, 0);
    assert_int_equal(stats_of(s).entries, 0);
    assert_int_equal(stats_of(s).bytes_used, PG);
    assert_int_equal(stats_of(s).bytes_pinned, PG);

    /* Its bytes stay put while the lease lasts, even under pressure. */
    for (uint64_t id = 10; id < 20; id++) {
        assert_int_equal(store_alloc(s, id, 3 * PG, NULL, &o2), 0);
        assert_true(o2 + 3 * PG <= off || off + PG <= o2);
        memset(store_base(s) + o2, 0xEE, 3 * PG);
        assert_int_equal(store_commit(s, id), 0);
    }
    assert_true(all_bytes(store_base(s) + off, PG, 0x5A));

    assert_int_equal(store_unpin(s, 1), 0);
    assert_int_equal(drops_of(&r, 1, NULL), 0);
    assert_int_equal(store_unpin(s, 1), 0);
    assert_int_equal(drops_of(&r, 1, &why), 1);
    assert_int_equal(why, STORE_DROP_DELETED);
    assert_int_equal(stats_of(s).deletes, 1);
    assert_int_equal(stats_of(s).pins, 0);
    assert_int_equal(stats_of(s).bytes_used, 3 * PG);
    assert_int_equal(store_unpin(s, 1), -ENOENT);
    assert_int_equal(store_alloc(s, 1, PG, NULL, &o2), 0);   /* id free again */
    store_free(s);
}

/* With clearing on, every way out of the store leaves zeros behind: delete
 * (after the last unpin, not before), abort, eviction. The drop callback
 * still sees the bytes (a demotion writes them to disk from there). */
typedef struct {
    recorder_t r;
    store_t *s;
    uint64_t off, size;
    int saw_bytes;
} seen_drop_t;

static void check_bytes_at_drop(void *ctx, uint64_t id, void *user, store_drop_reason_t why)
{
    seen_drop_t *x = ctx;
    record_drop(&x->r, id, user, why);
    if (id == 1) x->saw_bytes = all_bytes(store_base(x->s) + x->off, x->size, 0x5A);
}

static void freed_bytes_are_cleared_after_the_drop_callback(void **state)
{
    seen_drop_t x;
    store_config_t cfg = { .capacity = 4 * PG, .name = "clear", .on_drop = check_bytes_at_drop };
    uint64_t o2, sz;

    (void)state;
    memset(&x, 0, sizeof x);
    cfg.ctx = &x;
    x.s = store_new(&cfg, NULL, 0);
    assert_non_null(x.s);
    store_set_clear_freed(x.s, 1);
    /* delete under a pin: readable while pinned, zero after the unpin */
    x.off = put(x.s, 1, PG, 0x5A);
    x.size = PG;
    assert_int_equal(store_pin(x.s, 1, &o2, &sz), 0);
    assert_int_equal(store_delete(x.s, 1), 0);
    assert_true(all_bytes(store_base(x.s) + x.off, PG, 0x5A));
    assert_int_equal(store_unpin(x.s, 1), 0);
    assert_true(x.saw_bytes);
    assert_true(all_bytes(store_base(x.s) + x.off, PG, 0));
    assert_int_equal(stats_of(x.s).cleared_bytes, PG);
    /* abort of a pending put */
    assert_int_equal(store_alloc(x.s, 2, PG, NULL, &o2), 0);
    memset(store_base(x.s) + o2, 0x77, PG);
    assert_int_equal(store_abort(x.s, 2), 0);
    assert_true(all_bytes(store_base(x.s) + o2, PG, 0));
    /* eviction: the evicted extent is zero when the new owner gets it */
    uint64_t first = put(x.s, 3, 4 * PG, 0x33);
    assert_int_equal(store_alloc(x.s, 4, 4 * PG, NULL, &o2), 0);
    assert_int_equal(o2, first);
    assert_true(all_bytes(store_base(x.s) + o2, 4 * PG, 0));
    store_free(x.s);
}

/* A store without an arena (the GPU tier's) clears through its callback,
 * with the extent's offset and size, after on_drop. */
typedef struct {
    uint64_t off[8], size[8];
    int n;
} clears_t;

static void record_clear(void *ctx, uint64_t off, uint64_t size)
{
    clears_t *c = ctx;
    c->off[c->n] = off;
    c->size[c->n] = size;
    c->n++;
}

static void store_without_arena_clears_through_its_callback(void **state)
{
    recorder_t r;
    clears_t c = { .n = 0 };
    store_config_t cfg = { .capacity = 4 * PG, .no_arena = 1, .on_drop = record_drop, .ctx = &r };
    uint64_t off;

    (void)state;
    memset(&r, 0, sizeof r);
    store_t *s = store_new(&cfg, NULL, 0);
    assert_non_null(s);
    store_set_clear_fn(s, record_clear, &c);
    assert_int_equal(store_alloc(s, 1, PG, NULL, &off), 0);
    assert_int_equal(store_commit(s, 1), 0);
    assert_int_equal(store_delete(s, 1), 0);
    assert_int_equal(c.n, 0);                 /* clearing off: nothing */
    store_set_clear_freed(s, 1);
    assert_int_equal(store_alloc(s, 2, 2 * PG, NULL, &off), 0);
    assert_int_equal(store_commit(s, 2), 0);
    assert_int_equal(store_delete(s, 2), 0);
    assert_int_equal(c.n, 1);
    assert_true(c.off[0] == off && c.size[0] == 2 * PG);
    assert_int_equal(stats_of(s).cleared_bytes, 2 * PG);
    store_free(s);
}

/* Off (the store's default), the bytes stay until reused. */
static void freed_bytes_stay_when_clearing_is_off(void **state)
{
    recorder_t r;
    store_t *s = new_store(&r, 4 * PG, 0);

    (void)state;
    uint64_t off = put(s, 1, PG, 0x5A);
    assert_int_equal(store_delete(s, 1), 0);
    assert_true(all_bytes(store_base(s) + off, PG, 0x5A));
    assert_int_equal(stats_of(s).cleared_bytes, 0);
    store_free(s);
}

/* A bookkeeping-only store (the GPU tier's): same placement, LRU, pins and
 * drops, but no memfd: base NULL, fd -1, arena_size = the rounded capacity. */
static void store_without_arena_places_and_ages_extents(void **state)
{
    recorder_t r;
    store_config_t cfg = { .capacity = 4 * PG + 1, .name = "nothing", .no_arena = 1,
                           .on_drop = record_drop, .ctx = &r };
    char err[128] = "";
    uint64_t off[5], o2, sz;

    (void)state;
    memset(&r, 0, sizeof r);
    store_t *s = store_new(&cfg, err, sizeof err);
    if (s == NULL)
        fail_msg("store_new: %s", err);
    assert_null(store_base(s));
    assert_int_equal(store_arena_fd(s), -1);
    assert_int_equal(store_arena_size(s), 5 * PG);
    for (uint64_t id = 1; id <= 5; id++) {
        assert_int_equal(store_alloc(s, id, PG, user_of(id), &off[id - 1]), 0);
        assert_true(off[id - 1] + PG <= 5 * PG);
        assert_int_equal(store_commit(s, id), 0);
    }
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++)
            assert_true(off[i] + PG <= off[j] || off[j] + PG <= off[i]);
    assert_int_equal(store_pin(s, 1, &o2, &sz), 0);
    assert_int_equal(o2, off[0]);
    /* Full: the LRU unpinned entry (2) goes, its extent is reused. */
    assert_int_equal(store_alloc(s, 6, PG, user_of(6), &o2), 0);
    assert_int_equal(drops_of(&r, 2, NULL), 1);
    assert_int_equal(o2, off[1]);
    assert_int_equal(store_unpin(s, 1), 0);
    store_free(s);
}

/* store_set_user hands an entry's record elsewhere: the later drop (here at
 * the last unpin of a deleted entry) reports the new user. */
static void set_user_changes_what_the_drop_reports(void **state)
{
    recorder_t r;
    store_t *s = new_store(&r, 4 * PG, 0);
    uint64_t o2, sz;

    (void)state;
    put(s, 1, PG, 0x11);
    assert_int_equal(store_set_user(s, 1, user_of(77)), 0);
    assert_ptr_equal(store_user(s, 1), user_of(77));
    assert_int_equal(store_pin(s, 1, &o2, &sz), 0);
    assert_int_equal(store_delete(s, 1), 0);
    assert_int_equal(store_set_user(s, 1, NULL), 0);   /* deleted but pinned: still there */
    assert_int_equal(store_unpin(s, 1), 0);
    assert_int_equal(drops_of(&r, 1, NULL), 1);
    assert_null(r.drops[r.n - 1].user);
    assert_int_equal(store_set_user(s, 1, user_of(1)), -ENOENT);
    assert_int_equal(store_set_user(s, 99, NULL), -ENOENT);
    /* pending entries too */
    assert_int_equal(store_alloc(s, 2, PG, user_of(2), &o2), 0);
    assert_int_equal(store_set_user(s, 2, user_of(3)), 0);
    assert_int_equal(store_abort(s, 2), 0);
    assert_ptr_equal(r.drops[r.n - 1].user, user_of(3));
    store_free(s);
}

static void delete_unpinned_drops_at_once(void **state)
{
    recorder_t r;
    store_t *s = new_store(&r, 4 * PG, 0);
    store_drop_reason_t why;

    (void)state;
    put(s, 1, PG, 0);
    put(s, 2, PG, 0);
    assert_int_equal(store_delete(s, 1), 0);
    assert_int_equal(drops_of(&r, 1, &why), 1);
    assert_int_equal(why, STORE_DROP_DELETED);
    assert_ptr_equal(r.drops[0].user, user_of(1));
    assert_int_equal(store_delete(s, 1), -ENOENT);
    assert_int_equal(stats_of(s).bytes_used, PG);
    assert_int_equal(stats_of(s).deletes, 1);
    assert_int_equal(stats_of(s).evictions, 0);
    assert_order(s, (uint64_t[]){ 2 }, 1);
    store_free(s);
}

/* ---- the entry cap ----------------------------------------------------- */

static void max_entries_cap_evicts_lru_to_make_room(void **state)
{
    recorder_t r;
    store_t *s = new_store(&r, 16 * PG, 3);
    uint64_t off, sz;

    (void)state;
    put(s, 1, 10, 0);
    put(s, 2, 10, 0);
    put(s, 3, 10, 0);
    put(s, 4, 10, 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.drops[0].id, 1);
    assert_int_equal(stats_of(s).entries, 3);
    /* Pending entries count toward the cap. */
    assert_int_equal(store_alloc(s, 5, 10, NULL, &off), 0);
    assert_int_equal(r.drops[1].id, 2);
    assert_int_equal(stats_of(s).entries + stats_of(s).pending, 3);
    assert_int_equal(store_commit(s, 5), 0);
    store_free(s);

    /* Every live entry pinned: -ENOSPC, nothing evicted. */
    s = new_store(&r, 16 * PG, 2);
    put(s, 1, 10, 0);
    put(s, 2, 10, 0);
    assert_int_equal(store_pin(s, 1, &off, &sz), 0);
    assert_int_equal(store_pin(s, 2, &off, &sz), 0);
    assert_int_equal(store_alloc(s, 3, 10, NULL, &off), -ENOSPC);
    assert_int_equal(r.n, 0);
    store_free(s);
}

static void lowering_max_entries_evicts_and_reports_busy(void **state)
{
    recorder_t r;
    store_t *s = new_store(&r, 16 * PG, 0);
    uint64_t off, sz;

    (void)state;
    for (uint64_t id = 1; id <= 6; id++)
        put(s, id, 10, 0);
    assert_int_equal(store_pin(s, 1, &off, &sz), 0);
    assert_int_equal(store_pin(s, 2, &off, &sz), 0);
    assert_int_equal(store_set_max_entries(s, 4), 0);
    assert_int_equal(stats_of(s).entries, 4);
    assert_int_equal(r.drops[0].id, 3);
    assert_int_equal(r.drops[1].id, 4);
    assert_int_equal(store_set_max_entries(s, 1), -EBUSY);
    assert_int_equal(stats_of(s).entries, 2);          /* the pinned two */
    assert_int_equal(store_alloc(s, 9, 10, NULL, &off), -ENOSPC);
    assert_int_equal(store_set_max_entries(s, 0), 0);
    assert_int_equal(store_alloc(s, 9, 10, NULL, &off), 0);
    store_free(s);
}

/* ---- capacity ---------------------------------------------------------- */

static void capacity_shrink_evicts_past_limit_and_reports_pinned(void **state)
{
    recorder_t r;
    store_t *s = new_store(&r, 16 * PG, 0);
    uint64_t off, sz, poff;

    (void)state;
    for (uint64_t id = 1; id <= 16; id++)
        put(s, id, PG, (uint8_t)id);
    assert_int_equal(store_pin(s, 13, &poff, &sz), 0);   /* at 12 pages */
    assert_int_equal(poff, 12 * PG);
    assert_int_equal(store_touch(s, 15), 0);

    assert_int_equal(store_set_capacity(s, 8 * PG), -EBUSY);
    assert_int_equal(stats_of(s).capacity, 8 * PG);
    assert_int_equal(stats_of(s).arena_size, 16 * PG);
    assert_int_equal(r.n, 7);                          /* 9..16 less the pinned 13 */
    assert_int_equal(drops_of(&r, 15, NULL), 1);
    assert_int_equal(drops_of(&r, 13, NULL), 0);
    assert_int_equal(drops_of(&r, 8, NULL), 0);
    assert_true(all_bytes(store_base(s) + poff, PG, 13));

    /* Nothing new goes past the limit; the pinned bytes stay. */
    for (uint64_t id = 100; id < 120; id++) {
        assert_int_equal(store_alloc(s, id, 2 * PG, NULL, &off), 0);
        assert_true(off + 2 * PG <= 8 * PG);
        assert_int_equal(store_commit(s, id), 0);
    }
    assert_int_equal(store_alloc(s, 200, 9 * PG, NULL, &off), -EFBIG);
    assert_true(all_bytes(store_base(s) + poff, PG, 13));

    /* Unpinned, it stays until the capacity is set again. */
    assert_int_equal(store_unpin(s, 13), 0);
    assert_true(store_is_live(s, 13));
    assert_int_equal(store_set_capacity(s, 8 * PG), 0);
    assert_false(store_is_live(s, 13));
    assert_true(stats_of(s).bytes_used <= 8 * PG);

    /* Raising it again makes the whole arena usable. */
    assert_int_equal(store_set_capacity(s, 17 * PG), -EINVAL);
    assert_int_equal(store_set_capacity(s, 16 * PG), 0);
    assert_int_equal(store_alloc(s, 300, 8 * PG, NULL, &off), 0);
    assert_int_equal(off, 8 * PG);
    store_free(s);
}

static void pending_entry_past_new_capacity_reports_busy(void **state)
{
    recorder_t r;
    store_t *s = new_store(&r, 4 * PG, 0);
    uint64_t off;

    (void)state;
    assert_int_equal(store_alloc(s, 1, 3 * PG, NULL, &off), 0);
    assert_int_equal(store_set_capacity(s, 2 * PG), -EBUSY);
    assert_int_equal(store_abort(s, 1), 0);
    assert_int_equal(stats_of(s).largest_free, 2 * PG);
    assert_int_equal(store_set_capacity(s, 2 * PG), 0);
    store_free(s);
}

/* ---- failure leaves a consistent store ---------------------------------- */

static void unsatisfiable_alloc_is_refused_before_evicting(void **state)
{
    recorder_t r;
    store_t *s = new_store(&r, 8 * PG, 0);
    uint64_t off, sz;

    (void)state;
    for (uint64_t id = 1; id <= 8; id++)
        put(s, id, PG, 0);
    for (uint64_t id = 1; id <= 6; id++)
        assert_int_equal(store_pin(s, id, &off, &sz), 0);
    /* 2 pages evictable, 3 asked: refused with nothing evicted. */
    assert_int_equal(store_alloc(s, 20, 3 * PG, NULL, &off), -ENOSPC);
    assert_int_equal(r.n, 0);
    assert_int_equal(stats_of(s).entries, 8);
    store_free(s);
}

static void fragmented_alloc_fails_consistently_after_evicting(void **state)
{
    /* Pinned pages at 0, 2, 4, 6 leave 1-page holes: 4 pages would be
     * free after evicting, but no 2 of them are adjacent. */
    recorder_t r;
    store_t *s = new_store(&r, 8 * PG, 0);
    uint64_t off, sz;
    store_stats_t st;

    (void)state;
    for (uint64_t id = 1; id <= 8; id++)
        put(s, id, PG, 0);
    for (uint64_t id = 1; id <= 8; id += 2)
        assert_int_equal(store_pin(s, id, &off, &sz), 0);
    assert_int_equal(store_alloc(s, 20, 2 * PG, NULL, &off), -ENOSPC);
    st = stats_of(s);
    assert_int_equal(r.n, 4);               /* everything evictable went */
    for (int i = 0; i < r.n; i++)
        assert_int_equal(r.drops[i].why, STORE_DROP_EVICTED);
    assert_int_equal(st.entries, 4);
    assert_int_equal(st.bytes_used, 4 * PG);
    assert_int_equal(st.free_extents, 4);
    assert_int_equal(st.largest_free, PG);
    assert_int_equal(st.alloc_failures, 1);
    assert_false(store_is_live(s, 20));
    assert_null(store_user(s, 20));
    assert_int_equal(store_alloc(s, 20, PG, NULL, &off), 0);
    store_free(s);
}

static void store_free_runs_no_callbacks(void **state)
{
    recorder_t r;
    store_t *s = new_store(&r, 8 * PG, 0);
    uint64_t off, sz;

    (void)state;
    put(s, 1, PG, 0);
    put(s, 2, PG, 0);
    assert_int_equal(store_pin(s, 2, &off, &sz), 0);
    assert_int_equal(store_alloc(s, 3, PG, NULL, &off), 0);
    assert_int_equal(store_pin(s, 1, &off, &sz), 0);
    assert_int_equal(store_delete(s, 1), 0);
    store_free(s);
    assert_int_equal(r.n, 0);
}

static void pinned_tail_is_never_evicted(void **state)
{
    /* 20k pinned entries at the LRU end, then 200k allocations cycling
     * through the other 10k slots (the capacity is a whole number of pages). Rescanning the pinned ones per eviction
     * would be ~4 * 10^9 steps. */
    enum { PINNED = 20480, FREE_SLOTS = 10240, ROUNDS = 200000 };
    store_config_t cfg = { 0 };
    store_t *s;
    uint64_t off, sz;
    (void)state;
    cfg.capacity = (uint64_t)(PINNED + FREE_SLOTS) * 64;
    cfg.align = 64;
    s = store_new(&cfg, NULL, 0);
    assert_non_null(s);
    for (uint64_t id = 1; id <= PINNED; id++) {
        assert_int_equal(store_alloc(s, id, 64, NULL, &off), 0);
        assert_int_equal(store_commit(s, id), 0);
        assert_int_equal(store_pin(s, id, &off, &sz), 0);
    }
    for (uint64_t id = PINNED + 1; id <= PINNED + ROUNDS; id++) {
        assert_int_equal(store_alloc(s, id, 64, NULL, &off), 0);
        assert_int_equal(store_commit(s, id), 0);
    }
    assert_int_equal(stats_of(s).evictions, ROUNDS - FREE_SLOTS);
    assert_int_equal(stats_of(s).pinned_entries, PINNED);
    store_free(s);
}

/* ---- random stress against a model ------------------------------------- */

enum { S_IDS = 3000, S_ALIGN = 64, S_CAP = 64 * 1024 };

typedef enum { M_ABSENT, M_PENDING, M_LIVE, M_DELETED } mstate_t;

typedef struct {
    mstate_t state;
    uint64_t off, size, asize, stamp;
    uint32_t pins;
    uint8_t fill;
    int dropped;
} mentry_t;

typedef struct {
    store_t *s;
    mentry_t e[S_IDS + 1];
    uint64_t clock;
    int lru_checks;         /* evictions must take the model's LRU entry */
    int evicted_in_op;
    uint64_t capacity;
} model_t;

static uint64_t asize_of(uint64_t size)
{
    return (size + S_ALIGN - 1) / S_ALIGN * S_ALIGN;
}

static void model_drop(void *ctx, uint64_t id, void *user, store_drop_reason_t why)
{
    model_t *m = ctx;
    mentry_t *e;

    assert_true(id >= 1 && id <= S_IDS);
    assert_ptr_equal(user, user_of(id));
    e = &m->e[id];
    assert_false(e->dropped);
    /* The id is already gone from the store when the callback runs. */
    assert_false(store_is_live(m->s, id));
    assert_null(store_user(m->s, id));
    switch (why) {
    case STORE_DROP_EVICTED:
        assert_int_equal(e->state, M_LIVE);
        assert_int_equal(e->pins, 0);
        if (m->lru_checks) {
            for (uint64_t j = 1; j <= S_IDS; j++) {
                const mentry_t *o = &m->e[j];
                if (o->state == M_LIVE && o->pins == 0)
                    assert_true(o->stamp >= e->stamp);
            }
        }
        m->evicted_in_op++;
        break;
    case STORE_DROP_DELETED:
        assert_true(e->state == M_DELETED || (e->state == M_LIVE && e->pins == 0));
        assert_int_equal(e->pins, 0);
        break;
    case STORE_DROP_ABORTED:
        assert_int_equal(e->state, M_PENDING);
        break;
    default:
        fail_msg("bad reason %d", (int)why);
    }
    e->state = M_ABSENT;
    e->dropped = 1;
}

typedef struct {
    const model_t *m;
    uint64_t last_stamp;
    int n;
} walk_t;

static int check_visit(void *arg, uint64_t id, void *user, uint64_t off, uint64_t size,
                       uint32_t pins)
{
    walk_t *w = arg;
    const mentry_t *e;

    assert_true(id >= 1 && id <= S_IDS);
    e = &w->m->e[id];
    assert_ptr_equal(user, user_of(id));
    assert_int_equal(e->state, M_LIVE);
    assert_int_equal(off, e->off);
    assert_int_equal(size, e->size);
    assert_int_equal(pins, e->pins);
    assert_true(e->stamp < w->last_stamp);
    w->last_stamp = e->stamp;
    w->n++;
    return 0;
}

typedef struct {
    uint64_t off, end;
} span_t;

static int by_off(const void *a, const void *b)
{
    const span_t *x = a, *y = b;

    return x->off < y->off ? -1 : x->off > y->off;
}

static void check_model(const model_t *m, int full_bytes)
{
    static span_t spans[S_IDS];
    uint64_t used = 0, pinned_bytes = 0, live = 0, pending = 0, pins = 0, pinned = 0;
    int n = 0;
    store_stats_t st;
    walk_t w = { m, UINT64_MAX, 0 };
    const uint8_t *base = store_base(m->s);

    for (uint64_t id = 1; id <= S_IDS; id++) {
        const mentry_t *e = &m->e[id];
        if (e->state == M_ABSENT) {
            assert_false(store_is_live(m->s, id));
            continue;
        }
        used += e->asize;
        spans[n].off = e->off;
        spans[n].end = e->off + e->asize;
        n++;
        live += e->state == M_LIVE;
        pending += e->state == M_PENDING;
        pins += e->pins;
        pinned += e->pins > 0;
        pinned_bytes += e->pins > 0 ? e->asize : 0;
        assert_int_equal(store_is_live(m->s, id), e->state == M_LIVE);
        /* Bytes never change under an allocated entry. */
        assert_int_equal(base[e->off], e->fill);
        assert_int_equal(base[e->off + e->size - 1], e->fill);
        if (full_bytes)
            assert_true(all_bytes(base + e->off, e->size, e->fill));
    }
    qsort(spans, (size_t)n, sizeof(spans[0]), by_off);
    for (int i = 0; i < n; i++) {
        assert_true(spans[i].end <= store_arena_size(m->s));
        if (i > 0)
            assert_true(spans[i - 1].end <= spans[i].off);
    }
    store_get_stats(m->s, &st);
    assert_int_equal(st.bytes_used, used);
    assert_int_equal(st.entries, live);
    assert_int_equal(st.pending, pending);
    assert_int_equal(st.pins, pins);
    assert_int_equal(st.pinned_entries, pinned);
    assert_int_equal(st.bytes_pinned, pinned_bytes);
    assert_int_equal(st.capacity, m->capacity);
    assert_true(st.largest_free <= st.capacity);
    store_foreach(m->s, check_visit, &w);
    assert_int_equal(w.n, live);
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* An id in the given model state, or 0 if a few random tries find none. */
static uint64_t pick(const model_t *m, uint64_t *seed, mstate_t st, int pinned)
{
    for (int t = 0; t < 64; t++) {
        uint64_t id = 1 + xorshift(seed) % S_IDS;
        const mentry_t *e = &m->e[id];
        if (e->state == st && (pinned < 0 || (e->pins > 0) == pinned))
            return id;
    }
    return 0;
}

static void random_ops_keep_every_invariant(void **state)
{
    model_t *m = calloc(1, sizeof(*m));
    store_config_t cfg = { 0 };
    uint64_t seed = 0x2545F4914F6CDD1DULL, next_id = 1;
    uint64_t max_entries = 0;

    (void)state;
    assert_non_null(m);
    cfg.capacity = S_CAP;
    cfg.align = S_ALIGN;
    cfg.on_drop = model_drop;
    cfg.ctx = m;
    m->s = store_new(&cfg, NULL, 0);
    assert_non_null(m->s);
    m->capacity = S_CAP;
    m->lru_checks = 1;

    for (int step = 0; step < 40000; step++) {
        uint64_t r = xorshift(&seed), id, off, sz;
        unsigned op = (unsigned)(r % 100);
        mentry_t *e;
        int rc;

        m->evicted_in_op = 0;
        if (op < 30 && next_id <= S_IDS) {
            store_stats_t before;
            uint64_t evictable = 0, count;
            int cap_hopeless;

            id = next_id++;
            e = &m->e[id];
            sz = 1 + (r >> 8) % (r % 13 == 0 ? 6000 : 700);
            store_get_stats(m->s, &before);
            for (uint64_t j = 1; j <= S_IDS; j++) {
                if (m->e[j].state == M_LIVE && m->e[j].pins == 0)
                    evictable++;
            }
            count = before.entries + before.pending;
            cap_hopeless = max_entries != 0 && count >= max_entries &&
                           count - max_entries + 1 > evictable;
            rc = store_alloc(m->s, id, sz, user_of(id), &off);
            if (rc == 0) {
                assert_int_equal(off % S_ALIGN, 0);
                assert_true(off + asize_of(sz) <= m->capacity);
                e->state = M_PENDING;
                e->off = off;
                e->size = sz;
                e->asize = asize_of(sz);
                e->fill = (uint8_t)(1 + id % 251);
                memset(store_base(m->s) + off, e->fill, sz);
            } else if (rc == -EFBIG) {
                assert_true(asize_of(sz) > m->capacity);
                assert_int_equal(m->evicted_in_op, 0);
            } else {
                assert_int_equal(rc, -ENOSPC);
                if (m->evicted_in_op == 0) {
                    /* Refused up front: never while a hole fits and the
                     * cap can be met. */
                    assert_true(cap_hopeless || before.largest_free < asize_of(sz));
                } else {
                    /* Evicted all it could before giving up. */
                    assert_false(cap_hopeless);
                    for (uint64_t j = 1; j <= S_IDS; j++) {
                        if (m->e[j].state == M_LIVE)
                            assert_true(m->e[j].pins > 0);
                    }
                }
            }
            if (max_entries != 0 && rc == 0)
                assert_true(stats_of(m->s).entries + stats_of(m->s).pending <= max_entries);
        } else if (op < 45) {
            id = pick(m, &seed, M_PENDING, -1);
            if (id != 0) {
                e = &m->e[id];
                if (r % 5 == 0) {
                    assert_int_equal(store_abort(m->s, id), 0);
                    assert_true(e->dropped);
                } else {
                    assert_int_equal(store_commit(m->s, id), 0);
                    e->state = M_LIVE;
                    e->stamp = ++m->clock;
                }
            }
        } else if (op < 60) {
            id = pick(m, &seed, M_LIVE, -1);
            if (id != 0) {
                e = &m->e[id];
                assert_int_equal(store_pin(m->s, id, &off, &sz), 0);
                assert_int_equal(off, e->off);
                assert_int_equal(sz, e->size);
                e->pins++;
                e->stamp = ++m->clock;
            }
        } else if (op < 75) {
            id = pick(m, &seed, (r & 1) ? M_LIVE : M_DELETED, 1);
            if (id != 0) {
                e = &m->e[id];
                mstate_t was = e->state;
                /* The model first: the callback checks against it. */
                e->pins--;
                if (e->pins == 0 && was == M_LIVE)
                    e->stamp = ++m->clock;
                assert_int_equal(store_unpin(m->s, id), 0);
                assert_int_equal(e->dropped, was == M_DELETED && e->pins == 0);
            }
        } else if (op < 82) {
            id = pick(m, &seed, M_LIVE, -1);
            if (id != 0) {
                e = &m->e[id];
                assert_int_equal(store_touch(m->s, id), 0);
                e->stamp = ++m->clock;
            }
        } else if (op < 90) {
            id = pick(m, &seed, M_LIVE, -1);
            if (id != 0) {
                e = &m->e[id];
                uint32_t pins = e->pins;
                if (pins > 0)
                    e->state = M_DELETED;
                assert_int_equal(store_delete(m->s, id), 0);
                assert_true(pins > 0 ? !e->dropped : e->dropped);
                assert_int_equal(store_delete(m->s, id), -ENOENT);
            }
        } else if (op < 95) {
            uint64_t n = (r >> 12) % 4, went = store_evict(m->s, n);
            assert_int_equal(went, (uint64_t)m->evicted_in_op);
            assert_true(went <= n);
        } else if (op < 97) {
            uint64_t cap = ((r >> 16) % (S_CAP / S_ALIGN + 1)) * S_ALIGN;
            if (r % 3 == 0)
                cap = S_CAP;
            m->lru_checks = 0;  /* shrinking evicts by position, not by age */
            rc = store_set_capacity(m->s, cap);
            m->lru_checks = 1;
            m->capacity = cap;
            assert_true(rc == 0 || rc == -EBUSY);
            for (uint64_t j = 1; j <= S_IDS; j++) {
                const mentry_t *o = &m->e[j];
                if (o->state == M_LIVE && o->pins == 0)
                    assert_true(o->off + o->asize <= cap);
            }
        } else {
            max_entries = (r >> 16) % 4 == 0 ? 0 : 1 + (r >> 20) % 200;
            rc = store_set_max_entries(m->s, max_entries);
            assert_true(rc == 0 || rc == -EBUSY);
            if (rc == 0 && max_entries != 0)
                assert_true(stats_of(m->s).entries + stats_of(m->s).pending <= max_entries);
        }
        check_model(m, step % 500 == 0);
    }
    store_free(m->s);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(new_store_rounds_capacity_to_pages_and_starts_empty),
        cmocka_unit_test(new_store_refuses_bad_config_with_a_message),
        cmocka_unit_test(large_alignment_rounds_arena_to_alignment),
        cmocka_unit_test(pending_entry_is_invisible_until_commit),
        cmocka_unit_test(alloc_refuses_bad_arguments),
        cmocka_unit_test(abort_drops_pending_entry_with_reason_aborted),
        cmocka_unit_test(foreach_lists_live_entries_most_recent_first),
        cmocka_unit_test(full_store_evicts_least_recently_used),
        cmocka_unit_test(store_evict_takes_n_from_the_lru_end),
        cmocka_unit_test(pinned_entries_are_never_evicted_nor_overwritten),
        cmocka_unit_test(all_entries_pinned_gives_enospc_and_evicts_nothing),
        cmocka_unit_test(pins_nest_and_each_needs_an_unpin),
        cmocka_unit_test(delete_while_pinned_frees_after_last_unpin),
        cmocka_unit_test(freed_bytes_are_cleared_after_the_drop_callback),
        cmocka_unit_test(freed_bytes_stay_when_clearing_is_off),
        cmocka_unit_test(store_without_arena_clears_through_its_callback),
        cmocka_unit_test(delete_unpinned_drops_at_once),
        cmocka_unit_test(max_entries_cap_evicts_lru_to_make_room),
        cmocka_unit_test(lowering_max_entries_evicts_and_reports_busy),
        cmocka_unit_test(capacity_shrink_evicts_past_limit_and_reports_pinned),
        cmocka_unit_test(pending_entry_past_new_capacity_reports_busy),
        cmocka_unit_test(unsatisfiable_alloc_is_refused_before_evicting),
        cmocka_unit_test(fragmented_alloc_fails_consistently_after_evicting),
        cmocka_unit_test(store_free_runs_no_callbacks),
        cmocka_unit_test(pinned_tail_is_never_evicted),
        cmocka_unit_test(random_ops_keep_every_invariant),
        cmocka_unit_test(store_without_arena_places_and_ages_extents),
        cmocka_unit_test(set_user_changes_what_the_drop_reports),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
