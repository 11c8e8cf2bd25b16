/* test_prototypes.c - online and batch spherical k-means of a namespace's
 * prototypes: planted clusters are found, counts follow adds and removes,
 * a sample's counts scale to all members, and bad arguments are refused. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "prototypes.h"
#include "simcache.h"
#include "vec.h"

#define DIM 64

static uint64_t rng_state = 777;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double gauss(void)
{
    double u = ((double)(rnd() >> 11) + 0.5) * 0x1p-53, v = (double)(rnd() >> 11) * 0x1p-53;
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

static void unit(float *v, uint32_t dim)
{
    for (uint32_t i = 0; i < dim; i++) v[i] = (float)gauss();
    assert_int_equal(vec_normalize(v, dim, v), 0);
}

/* A unit vector with cosine about cos to centre c. */
static void near(const float *c, float cos, float *out, uint32_t dim)
{
    float noise[DIM];
    unit(noise, dim);
    float d = vec_dot(noise, c, dim);
    for (uint32_t i = 0; i < dim; i++) noise[i] -= d * c[i];
    assert_int_equal(vec_normalize(noise, dim, noise), 0);
    float s = sqrtf(1 - cos * cos);
    for (uint32_t i = 0; i < dim; i++) out[i] = cos * c[i] + s * noise[i];
    assert_int_equal(vec_normalize(out, dim, out), 0);
}

/* Planted clusters: `k` centres, `per` members each at cosine ~0.9. */
typedef struct {
    float centres[8][DIM];
    float *members;
    size_t n;
} planted_t;

static void plant(planted_t *p, int k, int per)
{
    p->n = (size_t)k * per;
    p->members = malloc(p->n * DIM * sizeof(float));
    assert_non_null(p->members);
    for (int c = 0; c < k; c++) {
        unit(p->centres[c], DIM);
        for (int i = 0; i < per; i++) near(p->centres[c], 0.9f, p->members + ((size_t)c * per + i) * DIM, DIM);
    }
}

static void new_refuses_bad_arguments(void **state)
{
    (void)state;
    assert_null(proto_set_new(0, 8));
    assert_null(proto_set_new(SIMCACHE_MAX_DIM + 1, 8));
    assert_null(proto_set_new(DIM, 0));
    assert_null(proto_set_new(DIM, PROTO_MAX_K + 1));
    proto_set_t *ps = proto_set_new(DIM, PROTO_MAX_K);
    assert_non_null(ps);
    assert_int_equal(proto_k(ps), PROTO_MAX_K);
    assert_int_equal(proto_dim(ps), DIM);
    assert_int_equal(proto_count(ps), 0);
    proto_set_free(ps);
    proto_set_free(NULL);
}

static void empty_set_has_no_best(void **state)
{
    (void)state;
    proto_set_t *ps = proto_set_new(DIM, 4);
    float v[DIM];
    unit(v, DIM);
    uint32_t which = 99;
    assert_true(proto_best(ps, v, &which) < -1.5f);
    assert_int_equal(which, 99);
    proto_remove(ps, v);   /* no-op */
    assert_int_equal(proto_count(ps), 0);
    assert_null(proto_centroid(ps, 0));
    assert_int_equal(proto_weight(ps, 0), 0);
    proto_set_free(ps);
}

static void adds_open_one_prototype_per_distinct_cluster(void **state)
{
    (void)state;
    planted_t p;
    plant(&p, 4, 30);
    proto_set_t *ps = proto_set_new(DIM, 8);
    /* Interleaved arrival, as a real workload would have it. */
    for (int i = 0; i < 30; i++)
        for (int c = 0; c < 4; c++) proto_add(ps, p.members + ((size_t)c * 30 + i) * DIM);
    assert_int_equal(proto_members(ps), 120);
    /* Members of one cluster are at cosine ~0.81 of each other, below the
     * opening threshold at times, so a cluster may open more than one; but
     * every prototype sits on a planted centre. */
    assert_true(proto_count(ps) >= 4);
    for (uint32_t i = 0; i < proto_count(ps); i++) {
        float best = -2;
        for (int c = 0; c < 4; c++) {
            float s = vec_dot(proto_centroid(ps, i), p.centres[c], DIM);
            if (s > best) best = s;
        }
        assert_true(best > 0.85f);
    }
    proto_set_free(ps);
    free(p.members);
}

static void add_then_remove_everything_empties_the_set(void **state)
{
    (void)state;
    planted_t p;
    plant(&p, 3, 20);
    proto_set_t *ps = proto_set_new(DIM, 8);
    uint64_t v0 = proto_version(ps);
    for (size_t i = 0; i < p.n; i++) proto_add(ps, p.members + i * DIM);
    assert_true(proto_version(ps) > v0);
    assert_int_equal(proto_members(ps), p.n);
    for (size_t i = 0; i < p.n; i++) {
        proto_remove(ps, p.members + i * DIM);
        assert_int_equal(proto_members(ps), p.n - i - 1);
    }
    assert_int_equal(proto_count(ps), 0);
    proto_set_free(ps);
    free(p.members);
}

static void refit_finds_planted_clusters_with_exact_counts(void **state)
{
    (void)state;
    planted_t p;
    plant(&p, 4, 100);
    proto_set_t *ps = proto_set_new(DIM, 4);
    assert_int_equal(proto_refit(ps, p.members, p.n, p.n, 42), 0);
    assert_int_equal(proto_count(ps), 4);
    int seen[4] = { 0 };
    for (uint32_t i = 0; i < 4; i++) {
        int best_c = -1;
        float best = -2;
        for (int c = 0; c < 4; c++) {
            float s = vec_dot(proto_centroid(ps, i), p.centres[c], DIM);
            if (s > best) {
                best = s;
                best_c = c;
            }
        }
        /* The mean of 100 members at 0.9 is within a hair of the centre. */
        assert_true(best > 0.98f);
        seen[best_c]++;
        assert_int_equal(proto_weight(ps, i), 100);
    }
    for (int c = 0; c < 4; c++) assert_int_equal(seen[c], 1);
    /* A fresh member of cluster 2 is closest to cluster 2's prototype. */
    float q[DIM];
    near(p.centres[2], 0.9f, q, DIM);
    uint32_t which;
    float sim = proto_best(ps, q, &which);
    assert_true(vec_dot(proto_centroid(ps, which), p.centres[2], DIM) > 0.98f);
    assert_true(sim > 0.85f);
    proto_set_free(ps);
    free(p.members);
}

static void refit_on_a_sample_scales_counts_to_all_members(void **state)
{
    (void)state;
    planted_t p;
    plant(&p, 2, 50);
    proto_set_t *ps = proto_set_new(DIM, 2);
    assert_int_equal(proto_refit(ps, p.members, p.n, 1001, 7), 0);
    assert_int_equal(proto_count(ps), 2);
    assert_int_equal(proto_members(ps), 1001);
    assert_true(proto_weight(ps, 0) >= 500 && proto_weight(ps, 1) >= 500);
    /* Online updates go on from the scaled mass: one more member moves the
     * count by one. */
    proto_add(ps, p.members);
    assert_int_equal(proto_members(ps), 1002);
    proto_set_free(ps);
    free(p.members);
}

static void refit_with_fewer_vectors_than_k_keeps_what_there_is(void **state)
{
    (void)state;
    float v[3][DIM];
    for (int i = 0; i < 3; i++) unit(v[i], DIM);
    proto_set_t *ps = proto_set_new(DIM, 8);
    assert_int_equal(proto_refit(ps, &v[0][0], 3, 3, 1), 0);
    assert_int_equal(proto_count(ps), 3);
    /* Identical vectors give one prototype, not k copies. */
    float same[4][DIM];
    for (int i = 0; i < 4; i++) memcpy(same[i], v[0], sizeof v[0]);
    assert_int_equal(proto_refit(ps, &same[0][0], 4, 4, 1), 0);
    assert_int_equal(proto_count(ps), 1);
    assert_int_equal(proto_weight(ps, 0), 4);
    assert_int_equal(proto_refit(ps, NULL, 0, 0, 1), 0);
    assert_int_equal(proto_count(ps), 0);
    proto_set_free(ps);
}

static void refit_is_reproducible_for_a_seed(void **state)
{
    (void)state;
    planted_t p;
    plant(&p, 5, 40);
    proto_set_t *a = proto_set_new(DIM, 5), *b = proto_set_new(DIM, 5);
    assert_int_equal(proto_refit(a, p.members, p.n, p.n, 99), 0);
    assert_int_equal(proto_refit(b, p.members, p.n, p.n, 99), 0);
    assert_int_equal(proto_count(a), proto_count(b));
    for (uint32_t i = 0; i < proto_count(a); i++) {
        assert_memory_equal(proto_centroid(a, i), proto_centroid(b, i), DIM * sizeof(float));
        assert_int_equal(proto_weight(a, i), proto_weight(b, i));
    }
    proto_set_free(a);
    proto_set_free(b);
    free(p.members);
}

static void centroids_stay_unit_length_through_churn(void **state)
{
    (void)state;
    planted_t p;
    plant(&p, 3, 60);
    proto_set_t *ps = proto_set_new(DIM, 3);
    for (size_t i = 0; i < p.n; i++) proto_add(ps, p.members + i * DIM);
    for (size_t i = 0; i < p.n; i += 2) proto_remove(ps, p.members + i * DIM);
    for (uint32_t i = 0; i < proto_count(ps); i++) {
        const float *c = proto_centroid(ps, i);
        assert_true(fabsf(vec_dot(c, c, DIM) - 1.0f) < 1e-4f);
    }
    assert_int_equal(proto_members(ps), p.n / 2);
    proto_set_free(ps);
    free(p.members);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(new_refuses_bad_arguments),
        cmocka_unit_test(empty_set_has_no_best),
        cmocka_unit_test(adds_open_one_prototype_per_distinct_cluster),
        cmocka_unit_test(add_then_remove_everything_empties_the_set),
        cmocka_unit_test(refit_finds_planted_clusters_with_exact_counts),
        cmocka_unit_test(refit_on_a_sample_scales_counts_to_all_members),
        cmocka_unit_test(refit_with_fewer_vectors_than_k_keeps_what_there_is),
        cmocka_unit_test(refit_is_reproducible_for_a_seed),
        cmocka_unit_test(centroids_stay_unit_length_through_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
