/* test_u64map.c - the id hash map: put/get/del, growth, backward-shift
 * deletion against a reference model, iteration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "u64map.h"

static void *val_of(uint64_t k)
{
    return (void *)(uintptr_t)(k * 2 + 1);
}

static void zero_initialised_map_is_empty(void **state)
{
    u64map_t m = { 0 };
    size_t pos = 0;
    uint64_t k;
    void *v;

    (void)state;
    assert_int_equal(u64map_len(&m), 0);
    assert_null(u64map_get(&m, 1));
    assert_null(u64map_del(&m, 1));
    assert_int_equal(u64map_next(&m, &pos, &k, &v), 0);
    u64map_clear(&m);
}

static void put_then_get_returns_value(void **state)
{
    u64map_t m;

    (void)state;
    u64map_init(&m);
    assert_int_equal(u64map_put(&m, 42, val_of(42)), 0);
    assert_ptr_equal(u64map_get(&m, 42), val_of(42));
    assert_null(u64map_get(&m, 43));
    assert_int_equal(u64map_len(&m), 1);
    u64map_clear(&m);
}

static void put_existing_key_replaces_without_growing_len(void **state)
{
    u64map_t m;

    (void)state;
    u64map_init(&m);
    assert_int_equal(u64map_put(&m, 7, val_of(1)), 0);
    assert_int_equal(u64map_put(&m, 7, val_of(2)), 0);
    assert_ptr_equal(u64map_get(&m, 7), val_of(2));
    assert_int_equal(u64map_len(&m), 1);
    u64map_clear(&m);
}

static void key_zero_is_refused(void **state)
{
    u64map_t m;

    (void)state;
    u64map_init(&m);
    assert_int_equal(u64map_put(&m, 0, val_of(0)), -1);
    assert_null(u64map_get(&m, 0));
    assert_null(u64map_del(&m, 0));
    assert_int_equal(u64map_len(&m), 0);
    u64map_clear(&m);
}

static void del_returns_value_and_removes_key(void **state)
{
    u64map_t m;

    (void)state;
    u64map_init(&m);
    u64map_put(&m, 5, val_of(5));
    assert_ptr_equal(u64map_del(&m, 5), val_of(5));
    assert_null(u64map_get(&m, 5));
    assert_null(u64map_del(&m, 5));
    assert_int_equal(u64map_len(&m), 0);
    u64map_clear(&m);
}

static void growth_keeps_every_key_and_load_at_most_70_percent(void **state)
{
    u64map_t m;
    const uint64_t n = 100000;

    (void)state;
    u64map_init(&m);
    for (uint64_t k = 1; k <= n; k++) {
        assert_int_equal(u64map_put(&m, k, val_of(k)), 0);
        assert_true(m.len * 10 <= m.cap * 7);
        assert_int_equal(m.cap & (m.cap - 1), 0);
    }
    assert_int_equal(u64map_len(&m), n);
    for (uint64_t k = 1; k <= n; k++)
        assert_ptr_equal(u64map_get(&m, k), val_of(k));
    assert_null(u64map_get(&m, n + 1));
    u64map_clear(&m);
    assert_int_equal(m.cap, 0);
    assert_null(m.keys);
}

static void delete_inside_probe_runs_keeps_others_reachable(void **state)
{
    /* Many keys in a small table make long runs; deleting every third one
     * exercises the backward shift across wrapped runs. */
    u64map_t m;

    (void)state;
    u64map_init(&m);
    for (uint64_t k = 1; k <= 11; k++)
        u64map_put(&m, k * 0x100000000ULL, val_of(k));
    for (uint64_t k = 1; k <= 11; k += 3)
        assert_ptr_equal(u64map_del(&m, k * 0x100000000ULL), val_of(k));
    for (uint64_t k = 1; k <= 11; k++) {
        if ((k - 1) % 3 == 0)
            assert_null(u64map_get(&m, k * 0x100000000ULL));
        else
            assert_ptr_equal(u64map_get(&m, k * 0x100000000ULL), val_of(k));
    }
    u64map_clear(&m);
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static void random_ops_match_reference_model(void **state)
{
    /* Keys from a small universe so puts, replaces and deletes collide. */
    enum { UNIVERSE = 4096, OPS = 400000 };
    void **model = calloc(UNIVERSE + 1, sizeof(*model));
    u64map_t m;
    uint64_t seed = 0x1234567887654321ULL;
    size_t live = 0;

    (void)state;
    assert_non_null(model);
    u64map_init(&m);
    for (int i = 0; i < OPS; i++) {
        uint64_t r = rng_next(&seed);
        uint64_t k = 1 + (r >> 8) % UNIVERSE;
        void *v = (void *)(uintptr_t)(r | 1);

        switch (r % 3) {
        case 0:
        case 1:
            if (model[k] == NULL)
                live++;
            model[k] = v;
            assert_int_equal(u64map_put(&m, k, v), 0);
            break;
        default:
            assert_ptr_equal(u64map_del(&m, k), model[k]);
            if (model[k] != NULL)
                live--;
            model[k] = NULL;
            break;
        }
        if (i % 10000 == 0) {
            for (uint64_t j = 1; j <= UNIVERSE; j++)
                assert_ptr_equal(u64map_get(&m, j), model[j]);
        }
        assert_int_equal(u64map_len(&m), live);
    }
    u64map_clear(&m);
    free(model);
}

static void iteration_visits_each_key_once(void **state)
{
    enum { N = 1000 };
    unsigned char *seen = calloc(N + 1, 1);
    u64map_t m;
    size_t pos = 0, count = 0;
    uint64_t k;
    void *v;

    (void)state;
    assert_non_null(seen);
    u64map_init(&m);
    for (uint64_t i = 1; i <= N; i++)
        u64map_put(&m, i * 977, val_of(i * 977));
    while (u64map_next(&m, &pos, &k, &v)) {
        assert_int_equal(k % 977, 0);
        assert_ptr_equal(v, val_of(k));
        assert_int_equal(seen[k / 977], 0);
        seen[k / 977] = 1;
        count++;
    }
    assert_int_equal(count, N);
    /* At the end it keeps saying so. */
    assert_int_equal(u64map_next(&m, &pos, &k, &v), 0);
    u64map_clear(&m);
    free(seen);
}

static void map_is_reusable_after_clear(void **state)
{
    u64map_t m;

    (void)state;
    u64map_init(&m);
    u64map_put(&m, 1, val_of(1));
    u64map_clear(&m);
    assert_int_equal(u64map_len(&m), 0);
    assert_int_equal(u64map_put(&m, 2, val_of(2)), 0);
    assert_ptr_equal(u64map_get(&m, 2), val_of(2));
    assert_null(u64map_get(&m, 1));
    u64map_clear(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(zero_initialised_map_is_empty),
        cmocka_unit_test(put_then_get_returns_value),
        cmocka_unit_test(put_existing_key_replaces_without_growing_len),
        cmocka_unit_test(key_zero_is_refused),
        cmocka_unit_test(del_returns_value_and_removes_key),
        cmocka_unit_test(growth_keeps_every_key_and_load_at_most_70_percent),
        cmocka_unit_test(delete_inside_probe_runs_keeps_others_reachable),
        cmocka_unit_test(random_ops_match_reference_model),
        cmocka_unit_test(iteration_visits_each_key_once),
        cmocka_unit_test(map_is_reusable_after_clear),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
