/* test_workload.c - the index benchmark's embedding generator (bench/workload.c)
 * makes what the benchmark claims: deterministic unit vectors, anisotropic
 * (unrelated pairs at cosine 0.3 to 0.6), queries at their exact target
 * cosines, exact query proportions, and an exact search that agrees with a
 * plain double-precision scan. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../bench/workload.h"

#define DIM 1024

static wl_t *make(uint32_t dim, uint64_t seed)
{
    wl_params_t p;
    wl_params_default(&p, dim, seed);
    wl_t *w = wl_new(&p);
    assert_non_null(w);
    return w;
}

static void base_is_deterministic_and_order_independent(void **state)
{
    (void)state;
    wl_t *a = make(DIM, 7), *b = make(DIM, 7), *c = make(DIM, 8);
    float *x = malloc(DIM * sizeof(float)), *y = malloc(DIM * sizeof(float));
    /* b makes other entries first: entry 123 must not depend on that. */
    for (uint64_t i = 0; i < 50; i++) wl_base(b, i, y);
    wl_base(a, 123, x);
    wl_base(b, 123, y);
    assert_memory_equal(x, y, DIM * sizeof(float));
    wl_base(c, 123, y);
    assert_true(memcmp(x, y, DIM * sizeof(float)) != 0);
    free(x);
    free(y);
    wl_free(a);
    wl_free(b);
    wl_free(c);
}

static void base_vectors_are_unit(void **state)
{
    (void)state;
    wl_t *w = make(DIM, 1);
    float *x = malloc(DIM * sizeof(float));
    for (uint64_t i = 0; i < 300; i++) {
        wl_base(w, i, x);
        assert_true(fabs(wl_dot(x, x, DIM) - 1.0) < 1e-5);
    }
    free(x);
    wl_free(w);
}

static void unrelated_pairs_are_anisotropic(void **state)
{
    (void)state;
    const int n = 600;
    wl_t *w = make(DIM, 2);
    float *x = malloc((size_t)n * DIM * sizeof(float));
    for (int i = 0; i < n; i++) wl_base(w, (uint64_t)i, x + (size_t)i * DIM);
    int pairs = 0, in_band = 0;
    double sum = 0;
    for (int i = 0; i < n; i += 3)
        for (int j = i + 1; j < n; j += 7) {
            if (wl_base_topic(w, (uint64_t)i) == wl_base_topic(w, (uint64_t)j)) continue;
            double c = wl_dot(x + (size_t)i * DIM, x + (size_t)j * DIM, DIM);
            pairs++;
            sum += c;
            in_band += c >= 0.3 && c <= 0.6;
        }
    assert_true(pairs > 1000);
    double mean = sum / pairs;
    assert_true(mean > 0.35 && mean < 0.5);
    assert_true(in_band >= pairs * 9 / 10);
    free(x);
    wl_free(w);
}

static void twins_are_near_duplicates_of_their_source(void **state)
{
    (void)state;
    wl_t *w = make(DIM, 3);
    float *x = malloc(DIM * sizeof(float)), *y = malloc(DIM * sizeof(float));
    int twins = 0;
    for (uint64_t i = 1; i < 2000 && twins < 20; i++) {
        uint64_t src;
        if (!wl_base_is_twin(w, i, &src)) continue;
        twins++;
        assert_true(src < i);
        assert_false(wl_base_is_twin(w, src, NULL));
        wl_base(w, i, x);
        wl_base(w, src, y);
        double c = wl_dot(x, y, DIM);
        assert_true(c >= 0.80 - 1e-5 && c <= 0.99 + 1e-5);
    }
    assert_int_equal(twins, 20);
    free(x);
    free(y);
    wl_free(w);
}

static void queries_sit_at_their_target_cosine(void **state)
{
    (void)state;
    const uint64_t n_base = 5000;
    wl_t *w = make(DIM, 4);
    float *q = malloc(DIM * sizeof(float)), *s = malloc(DIM * sizeof(float)),
          *u = malloc(DIM * sizeof(float));
    for (uint64_t k = 0; k < 200; k++) {
        wl_query_info_t inf;
        wl_query(w, n_base, k, q, s, &inf);
        assert_int_equal(inf.kind, wl_query_kind(w, k));
        assert_true(fabs(wl_dot(q, q, DIM) - 1.0) < 1e-5);
        if (inf.kind == WL_UNRELATED) continue;
        assert_true(inf.base < n_base);
        if (inf.kind == WL_NEAR) assert_true(inf.target >= 0.80f && inf.target <= 0.99f);
        else assert_true(inf.target >= 0.70f && inf.target <= 0.79f);
        wl_base(w, inf.base, u);
        assert_true(fabs(wl_dot(q, u, DIM) - inf.target) < 1e-5);
    }
    free(q);
    free(s);
    free(u);
    wl_free(w);
}

static void query_kinds_have_exact_proportions(void **state)
{
    (void)state;
    wl_t *w = make(64, 5);
    int count[WL_NKINDS] = { 0 };
    for (uint64_t k = 0; k < 4000; k++) count[wl_query_kind(w, k)]++;
    assert_int_equal(count[WL_NEAR], 2000);
    assert_int_equal(count[WL_HARD], 1000);
    assert_int_equal(count[WL_UNRELATED], 1000);
    wl_free(w);
}

static void exact_best_agrees_with_a_double_scan(void **state)
{
    (void)state;
    const uint64_t n = 700;
    const size_t nq = 40;
    wl_t *w = make(256, 6);
    float *base = malloc(n * 256 * sizeof(float)), *q = malloc(nq * 256 * sizeof(float)),
          *s = malloc(256 * sizeof(float));
    for (uint64_t i = 0; i < n; i++) wl_base(w, i, base + i * 256);
    for (size_t k = 0; k < nq; k++) wl_query(w, n, k, q + k * 256, s, NULL);
    int64_t best[40];
    float sim[40];
    wl_exact_best(base, n, 256, q, nq, best, sim);
    for (size_t k = 0; k < nq; k++) {
        double top = -2;
        for (uint64_t i = 0; i < n; i++) {
            double c = wl_dot(base + i * 256, q + k * 256, 256);
            if (c > top) top = c;
        }
        assert_true(best[k] >= 0 && best[k] < (int64_t)n);
        /* The row found is the best, up to float rounding of near ties. */
        assert_true(wl_dot(base + (uint64_t)best[k] * 256, q + k * 256, 256) >= top - 1e-5);
        assert_true(fabs(sim[k] - top) < 1e-5);
    }
    free(base);
    free(q);
    free(s);
    wl_free(w);
}

static void bad_parameters_are_refused(void **state)
{
    (void)state;
    wl_params_t p;
    wl_params_default(&p, DIM, 1);
    p.mean_hi = 0.7f;
    p.topic_hi = 0.4f;      /* a^2 + b^2 could exceed 1 */
    assert_null(wl_new(&p));
    wl_params_default(&p, DIM, 1);
    p.n_topics = 0;
    assert_null(wl_new(&p));
    wl_params_default(&p, 8, 1);
    assert_null(wl_new(&p));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(base_is_deterministic_and_order_independent),
        cmocka_unit_test(base_vectors_are_unit),
        cmocka_unit_test(unrelated_pairs_are_anisotropic),
        cmocka_unit_test(twins_are_near_duplicates_of_their_source),
        cmocka_unit_test(queries_sit_at_their_target_cosine),
        cmocka_unit_test(query_kinds_have_exact_proportions),
        cmocka_unit_test(exact_best_agrees_with_a_double_scan),
        cmocka_unit_test(bad_parameters_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
