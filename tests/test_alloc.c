/* test_alloc.c - the extent allocator: alignment, best fit, coalescing, the
 * movable limit, speed with many holes, and a random model check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "alloc.h"

#define A 4096u   /* alignment used by most tests */

static uint64_t take(alloc_t *a, uint64_t size)
{
    uint64_t off = UINT64_MAX;

    assert_int_equal(alloc_reserve(a, size, &off), 0);
    return off;
}

static alloc_stats_t stats_of(const alloc_t *a)
{
    alloc_stats_t st;

    alloc_get_stats(a, &st);
    return st;
}

static void new_refuses_bad_alignment_and_empty_capacity(void **state)
{
    (void)state;
    assert_null(alloc_new(1 << 20, 0));
    assert_null(alloc_new(1 << 20, 3000));
    assert_null(alloc_new(A - 1, A));
    assert_null(alloc_new(0, 1));
}

static void new_allocator_is_one_free_hole(void **state)
{
    alloc_t *a = alloc_new(10 * A + 100, A);
    alloc_stats_t st;

    (void)state;
    assert_non_null(a);
    st = stats_of(a);
    assert_int_equal(st.capacity, 10 * A);   /* the partial unit is dropped */
    assert_int_equal(st.limit, 10 * A);
    assert_int_equal(st.align, A);
    assert_int_equal(st.free_bytes, 10 * A);
    assert_int_equal(st.free_extents, 1);
    assert_int_equal(st.largest_free, 10 * A);
    assert_int_equal(st.reserved, 0);
    alloc_free(a);
    alloc_free(NULL);
}

static void reserve_rounds_size_up_to_alignment(void **state)
{
    alloc_t *a = alloc_new(10 * A, A);
    uint64_t o1, o2;

    (void)state;
    assert_int_equal(alloc_round(a, 1), A);
    assert_int_equal(alloc_round(a, A), A);
    assert_int_equal(alloc_round(a, A + 1), 2 * A);
    assert_int_equal(alloc_round(a, 0), 0);
    assert_int_equal(alloc_round(a, UINT64_MAX), 0);
    o1 = take(a, 1);
    o2 = take(a, A + 1);
    assert_int_equal(o1 % A, 0);
    assert_int_equal(o2 % A, 0);
    assert_int_equal(o2 - o1, A);
    assert_int_equal(stats_of(a).free_bytes, 7 * A);
    alloc_free(a);
}

static void reserve_refuses_zero_and_unroundable_sizes(void **state)
{
    alloc_t *a = alloc_new(10 * A, A);
    uint64_t off;

    (void)state;
    assert_int_equal(alloc_reserve(a, 0, &off), -EINVAL);
    assert_int_equal(alloc_reserve(a, UINT64_MAX, &off), -EINVAL);
    alloc_free(a);
}

static void reserve_fills_capacity_then_reports_enospc(void **state)
{
    alloc_t *a = alloc_new(4 * A, A);
    uint64_t off;

    (void)state;
    for (int i = 0; i < 4; i++)
        assert_int_equal(take(a, A), (uint64_t)i * A);
    assert_int_equal(alloc_reserve(a, 1, &off), -ENOSPC);
    assert_int_equal(stats_of(a).free_extents, 0);
    assert_int_equal(stats_of(a).largest_free, 0);
    assert_int_equal(alloc_release(a, 2 * A, A), 0);
    assert_int_equal(take(a, 1), 2 * A);
    alloc_free(a);
}

static void release_coalesces_with_both_neighbours(void **state)
{
    alloc_t *a = alloc_new(8 * A, A);
    uint64_t o[4];

    (void)state;
    for (int i = 0; i < 4; i++)
        o[i] = take(a, 2 * A);
    assert_int_equal(alloc_release(a, o[0], 2 * A), 0);
    assert_int_equal(alloc_release(a, o[2], 2 * A), 0);
    assert_int_equal(stats_of(a).free_extents, 2);
    assert_int_equal(stats_of(a).largest_free, 2 * A);
    /* o[1] sits between two holes: all three become one. */
    assert_int_equal(alloc_release(a, o[1], 2 * A), 0);
    assert_int_equal(stats_of(a).free_extents, 1);
    assert_int_equal(stats_of(a).largest_free, 6 * A);
    assert_int_equal(alloc_release(a, o[3], 2 * A), 0);
    assert_int_equal(stats_of(a).free_extents, 1);
    assert_int_equal(stats_of(a).largest_free, 8 * A);
    assert_int_equal(stats_of(a).reserved, 0);
    assert_int_equal(take(a, 8 * A), 0);
    alloc_free(a);
}

/* Make holes of the given unit sizes, each separated by a 1-unit extent that
 * stays reserved. Returns the holes' offsets in offs. */
static alloc_t *with_holes(const uint64_t *units, int n, uint64_t *offs)
{
    uint64_t total = 0;
    alloc_t *a;

    for (int i = 0; i < n; i++)
        total += units[i] + 1;
    a = alloc_new(total * A, A);
    assert_non_null(a);
    for (int i = 0; i < n; i++) {
        offs[i] = take(a, units[i] * A);
        take(a, A);
    }
    for (int i = 0; i < n; i++)
        assert_int_equal(alloc_release(a, offs[i], units[i] * A), 0);
    return a;
}

static void reserve_picks_smallest_hole_that_fits(void **state)
{
    const uint64_t units[] = { 5, 3, 8, 4 };
    uint64_t offs[4];
    alloc_t *a = with_holes(units, 4, offs);

    (void)state;
    assert_int_equal(stats_of(a).free_extents, 4);
    assert_int_equal(stats_of(a).largest_free, 8 * A);
    assert_int_equal(take(a, 3 * A), offs[1]);
    assert_int_equal(take(a, 4 * A), offs[3]);
    assert_int_equal(take(a, 2 * A), offs[0]);     /* 5-hole, 2 taken from its start */
    assert_int_equal(take(a, 3 * A), offs[0] + 2 * A);
    assert_int_equal(take(a, 7 * A), offs[2]);
    alloc_free(a);
}

static void equal_holes_go_lowest_address_first(void **state)
{
    const uint64_t units[] = { 2, 2, 2 };
    uint64_t offs[3];
    alloc_t *a = with_holes(units, 3, offs);

    (void)state;
    assert_int_equal(take(a, 2 * A), offs[0]);
    assert_int_equal(take(a, 2 * A), offs[1]);
    assert_int_equal(take(a, 2 * A), offs[2]);
    alloc_free(a);
}

static void invalid_release_is_refused_and_changes_nothing(void **state)
{
    alloc_t *a = alloc_new(8 * A, A);
    uint64_t o1, o2;
    alloc_stats_t before;

    (void)state;
    o1 = take(a, 2 * A);
    o2 = take(a, 2 * A);
    before = stats_of(a);
    assert_int_equal(alloc_release(a, o1 + 1, A), -EINVAL);         /* misaligned */
    assert_int_equal(alloc_release(a, o1, 0), -EINVAL);             /* empty */
    assert_int_equal(alloc_release(a, 8 * A, A), -EINVAL);          /* past the end */
    assert_int_equal(alloc_release(a, 7 * A, 2 * A), -EINVAL);      /* runs off the end */
    assert_int_equal(alloc_release(a, 4 * A, A), -EINVAL);          /* already free */
    assert_int_equal(alloc_release(a, o2, 3 * A), -EINVAL);         /* overlaps free */
    assert_int_equal(stats_of(a).free_bytes, before.free_bytes);
    assert_int_equal(stats_of(a).reserved, 2);
    assert_int_equal(alloc_release(a, o1, 2 * A), 0);
    assert_int_equal(alloc_release(a, o1, 2 * A), -EINVAL);         /* double release */
    assert_int_equal(stats_of(a).reserved, 1);
    alloc_free(a);
}

static void lowering_limit_fences_free_space(void **state)
{
    alloc_t *a = alloc_new(10 * A, A);
    uint64_t off;

    (void)state;
    take(a, 2 * A);
    assert_int_equal(alloc_set_limit(a, 6 * A + 123), 0);  /* rounds down */
    assert_int_equal(stats_of(a).limit, 6 * A);
    assert_int_equal(stats_of(a).free_bytes, 4 * A);
    assert_int_equal(stats_of(a).largest_free, 4 * A);
    assert_int_equal(alloc_reserve(a, 5 * A, &off), -ENOSPC);
    assert_int_equal(take(a, 4 * A), 2 * A);
    assert_int_equal(alloc_reserve(a, 1, &off), -ENOSPC);
    alloc_free(a);
}

static void extent_past_limit_stays_fenced_after_release(void **state)
{
    alloc_t *a = alloc_new(10 * A, A);
    uint64_t off, o;

    (void)state;
    take(a, 4 * A);
    o = take(a, 4 * A);                 /* [4, 8) straddles the new limit 6 */
    assert_int_equal(alloc_set_limit(a, 6 * A), 0);
    assert_int_equal(stats_of(a).free_bytes, 0);
    assert_int_equal(alloc_release(a, o, 4 * A), 0);
    /* Only the part below the limit comes back. */
    assert_int_equal(stats_of(a).free_bytes, 2 * A);
    assert_int_equal(stats_of(a).free_extents, 1);
    assert_int_equal(alloc_reserve(a, 3 * A, &off), -ENOSPC);
    assert_int_equal(take(a, 2 * A), 4 * A);
    alloc_free(a);
}

static void raising_limit_restores_and_coalesces(void **state)
{
    alloc_t *a = alloc_new(10 * A, A);
    uint64_t o;

    (void)state;
    o = take(a, 3 * A);
    take(a, 3 * A);
    assert_int_equal(alloc_set_limit(a, 5 * A), 0);
    assert_int_equal(alloc_release(a, o, 3 * A), 0);
    assert_int_equal(alloc_set_limit(a, 2 * A), 0);
    assert_int_equal(stats_of(a).free_bytes, 2 * A);
    assert_int_equal(alloc_set_limit(a, 10 * A), 0);
    assert_int_equal(stats_of(a).free_bytes, 7 * A);
    assert_int_equal(stats_of(a).free_extents, 2);     /* [0,3) and [6,10) */
    assert_int_equal(stats_of(a).largest_free, 4 * A);
    assert_int_equal(alloc_release(a, 3 * A, 3 * A), 0);
    assert_int_equal(stats_of(a).free_extents, 1);
    assert_int_equal(stats_of(a).largest_free, 10 * A);
    alloc_free(a);
}

static void limit_over_capacity_is_refused(void **state)
{
    alloc_t *a = alloc_new(10 * A, A);

    (void)state;
    assert_int_equal(alloc_set_limit(a, 10 * A + A), -EINVAL);
    assert_int_equal(alloc_set_limit(a, 10 * A + 1), -EINVAL);
    assert_int_equal(stats_of(a).limit, 10 * A);
    assert_int_equal(alloc_set_limit(a, 0), 0);
    assert_int_equal(stats_of(a).free_bytes, 0);
    assert_int_equal(stats_of(a).free_extents, 0);
    assert_int_equal(alloc_set_limit(a, 10 * A), 0);
    assert_int_equal(stats_of(a).free_extents, 1);
    assert_int_equal(stats_of(a).largest_free, 10 * A);
    alloc_free(a);
}

static void many_holes_refill_exactly(void **state)
{
    /* 100k one-unit holes: failing requests must not disturb them, and
     * refilling them gives back exactly the holes' offsets. (Speed is for
     * benchmarks; a linear-scan allocator would still make this crawl.) */
    enum { N = 200000 };
    alloc_t *a = alloc_new((uint64_t)N * 64, 64);
    uint64_t off;
    (void)state;
    for (uint64_t i = 0; i < N; i++)
        assert_int_equal(take(a, 64), i * 64);
    for (uint64_t i = 0; i < N; i += 2)
        assert_int_equal(alloc_release(a, i * 64, 64), 0);
    assert_int_equal(stats_of(a).free_extents, N / 2);
    for (int i = 0; i < N / 2; i++)
        assert_int_equal(alloc_reserve(a, 128, &off), -ENOSPC);
    for (uint64_t i = 0; i < N; i += 2)
        assert_int_equal(take(a, 64), i * 64);
    assert_int_equal(stats_of(a).free_extents, 0);
    alloc_free(a);
}

/* ---- random operations against a bitmap model -------------------------- */

enum { M_UNITS = 509, M_ALIGN = 8 };

typedef struct {
    uint64_t start, len;      /* units */
    int fenced;
} hole_t;

typedef struct {
    hole_t holes[M_UNITS];
    int n;
} holes_t;

static int collect(void *arg, uint64_t off, uint64_t size, int fenced)
{
    holes_t *h = arg;

    assert_true(h->n < M_UNITS);
    h->holes[h->n].start = off / M_ALIGN;
    h->holes[h->n].len = size / M_ALIGN;
    h->holes[h->n].fenced = fenced;
    h->n++;
    return 0;
}

/* Check the allocator's holes against the model: they cover exactly the
 * free units, are in order, maximal except across the limit, never straddle
 * it, are fenced exactly past it, and the stats agree. */
static void check_against_model(const alloc_t *a, const unsigned char *used,
                                uint64_t limit, holes_t *h)
{
    alloc_stats_t st;
    unsigned char freemap[M_UNITS] = { 0 };
    uint64_t free_units = 0, largest = 0, count = 0;

    h->n = 0;
    alloc_foreach_free(a, collect, h);
    for (int i = 0; i < h->n; i++) {
        const hole_t *x = &h->holes[i];
        assert_true(x->len > 0);
        assert_true(x->start + x->len <= M_UNITS);
        if (i > 0) {
            const hole_t *p = &h->holes[i - 1];
            assert_true(p->start + p->len <= x->start);
            if (p->start + p->len == x->start)
                assert_int_equal(x->start, limit);
        }
        assert_false(x->start < limit && x->start + x->len > limit);
        assert_int_equal(x->fenced, x->start >= limit);
        for (uint64_t u = x->start; u < x->start + x->len; u++)
            freemap[u] = 1;
        if (!x->fenced) {
            free_units += x->len;
            count++;
            if (x->len > largest)
                largest = x->len;
        }
    }
    for (int u = 0; u < M_UNITS; u++)
        assert_int_equal(freemap[u], !used[u]);
    alloc_get_stats(a, &st);
    assert_int_equal(st.limit, limit * M_ALIGN);
    assert_int_equal(st.free_bytes, free_units * M_ALIGN);
    assert_int_equal(st.free_extents, count);
    assert_int_equal(st.largest_free, largest * M_ALIGN);
}

static void random_ops_match_bitmap_model(void **state)
{
    struct { uint64_t off, size; } ext[M_UNITS];
    unsigned char used[M_UNITS] = { 0 };
    holes_t *h = malloc(sizeof(*h));
    alloc_t *a = alloc_new(M_UNITS * M_ALIGN + 5, M_ALIGN);
    uint64_t limit = M_UNITS, seed = 88172645463325252ULL;
    int n = 0;

    (void)state;
    assert_non_null(h);
    assert_non_null(a);
    check_against_model(a, used, limit, h);
    for (int step = 0; step < 60000; step++) {
        uint64_t r;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        r = seed;

        if (r % 100 < 2) {
            limit = (r >> 8) % (M_UNITS + 1);
            if (r % 4 == 0)
                limit = M_UNITS;
            assert_int_equal(alloc_set_limit(a, limit * M_ALIGN), 0);
        } else if (r % 100 < 52 && n < M_UNITS) {
            uint64_t size = 1 + (r >> 16) % (r % 7 == 0 ? 40 * M_ALIGN : 4 * M_ALIGN);
            uint64_t units = (size + M_ALIGN - 1) / M_ALIGN, off = 0;
            const hole_t *best = NULL;
            int rc;

            for (int i = 0; i < h->n; i++) {
                const hole_t *x = &h->holes[i];
                if (!x->fenced && x->len >= units && (best == NULL || x->len < best->len))
                    best = x;
            }
            rc = alloc_reserve(a, size, &off);
            if (best == NULL) {
                assert_int_equal(rc, -ENOSPC);
            } else {
                assert_int_equal(rc, 0);
                assert_int_equal(off, best->start * M_ALIGN);
                for (uint64_t u = off / M_ALIGN; u < off / M_ALIGN + units; u++) {
                    assert_int_equal(used[u], 0);
                    used[u] = 1;
                }
                ext[n].off = off;
                ext[n].size = size;
                n++;
            }
        } else if (n > 0) {
            int i = (int)((r >> 20) % (uint64_t)n);
            uint64_t units = (ext[i].size + M_ALIGN - 1) / M_ALIGN;

            assert_int_equal(alloc_release(a, ext[i].off, ext[i].size), 0);
            for (uint64_t u = ext[i].off / M_ALIGN; u < ext[i].off / M_ALIGN + units; u++)
                used[u] = 0;
            ext[i] = ext[--n];
        }
        check_against_model(a, used, limit, h);
        assert_int_equal(stats_of(a).reserved, (uint64_t)n);
    }
    alloc_free(a);
    free(h);
}

static void reserve_at_takes_exactly_that_extent(void **state)
{
    (void)state;
    alloc_t *a = alloc_new(16 * A, A);
    uint64_t off;
    alloc_stats_t st;
    assert_int_equal(alloc_reserve_at(a, 4 * A, 2 * A), 0);      /* splits the hole */
    assert_int_equal(alloc_reserve_at(a, 0, A), 0);              /* front of a hole */
    assert_int_equal(alloc_reserve_at(a, 15 * A, 1), 0);         /* rounded, at the end */
    assert_int_equal(alloc_reserve_at(a, 5 * A, A), -EBUSY);     /* already taken */
    assert_int_equal(alloc_reserve_at(a, 3 * A, 2 * A), -EBUSY); /* overlaps */
    assert_int_equal(alloc_reserve_at(a, 100, A), -EINVAL);      /* misaligned */
    assert_int_equal(alloc_reserve_at(a, 16 * A, A), -EINVAL);   /* out of range */
    alloc_get_stats(a, &st);
    assert_int_equal(st.free_bytes, 12 * A);
    assert_int_equal(st.free_extents, 2);
    assert_int_equal(st.reserved, 3);
    assert_int_equal(alloc_reserve(a, 3 * A, &off), 0);          /* best fit: [1, 4) */
    assert_int_equal(off, A);
    assert_int_equal(alloc_release(a, 4 * A, 2 * A), 0);
    assert_int_equal(alloc_release(a, 0, A), 0);
    assert_int_equal(alloc_release(a, 15 * A, 1), 0);
    assert_int_equal(alloc_release(a, A, 3 * A), 0);
    alloc_get_stats(a, &st);
    assert_int_equal(st.free_bytes, 16 * A);
    assert_int_equal(st.free_extents, 1);
    assert_int_equal(alloc_set_limit(a, 8 * A), 0);
    assert_int_equal(alloc_reserve_at(a, 8 * A, A), -EBUSY);     /* fenced */
    alloc_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(new_refuses_bad_alignment_and_empty_capacity),
        cmocka_unit_test(new_allocator_is_one_free_hole),
        cmocka_unit_test(reserve_rounds_size_up_to_alignment),
        cmocka_unit_test(reserve_refuses_zero_and_unroundable_sizes),
        cmocka_unit_test(reserve_fills_capacity_then_reports_enospc),
        cmocka_unit_test(release_coalesces_with_both_neighbours),
        cmocka_unit_test(reserve_picks_smallest_hole_that_fits),
        cmocka_unit_test(equal_holes_go_lowest_address_first),
        cmocka_unit_test(invalid_release_is_refused_and_changes_nothing),
        cmocka_unit_test(lowering_limit_fences_free_space),
        cmocka_unit_test(extent_past_limit_stays_fenced_after_release),
        cmocka_unit_test(raising_limit_restores_and_coalesces),
        cmocka_unit_test(limit_over_capacity_is_refused),
        cmocka_unit_test(many_holes_refill_exactly),
        cmocka_unit_test(random_ops_match_bitmap_model),
        cmocka_unit_test(reserve_at_takes_exactly_that_extent),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
