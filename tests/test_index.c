/* test_index.c - the similarity index against brute force: exact path,
 * staged path, removal, interleaving, determinism, recall on clustered and
 * on flat data, and under churn that drifts (LRU eviction at capacity while
 * topics change, which re-centres the codes). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "index.h"
#include "simcache.h"
#include "vec.h"

/* ---- data ---- */

static uint64_t rs = 42;

static uint64_t rnd(void)
{
    uint64_t z = (rs += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double unif(void)
{
    return ((double)(rnd() >> 11) + 0.5) * 0x1p-53;
}

static double gauss(void)
{
    return sqrt(-2.0 * log(unif())) * cos(6.283185307179586 * unif());
}

static void unitize(float *v, uint32_t d)
{
    double s = 0;
    for (uint32_t i = 0; i < d; i++)
        s += (double)v[i] * v[i];
    s = 1.0 / sqrt(s);
    for (uint32_t i = 0; i < d; i++)
        v[i] = (float)(v[i] * s);
}

static void random_unit(float *v, uint32_t d)
{
    for (uint32_t i = 0; i < d; i++)
        v[i] = (float)gauss();
    unitize(v, d);
}

/* A unit vector at cosine s (to float rounding) to unit q, in direction dir
 * (any vector not parallel to q) made orthogonal to q. */
static void near_along(const float *q, const float *dir, double s, float *v, uint32_t d)
{
    double p = 0;
    for (uint32_t i = 0; i < d; i++)
        p += (double)dir[i] * q[i];
    for (uint32_t i = 0; i < d; i++)
        v[i] = (float)(dir[i] - p * q[i]);
    unitize(v, d);
    double c = sqrt(1.0 - s * s);
    for (uint32_t i = 0; i < d; i++)
        v[i] = (float)(s * q[i] + c * v[i]);
    unitize(v, d);
}

static void near(const float *q, double s, float *v, uint32_t d)
{
    float *dir = malloc(d * sizeof *dir);
    random_unit(dir, d);
    near_along(q, dir, s, v, d);
    free(dir);
}

/* Clustered, anisotropic embeddings: a shared direction with two outlier
 * dimensions (as LLM hidden states have), a cluster centre, and noise with a
 * decaying spectrum. Unrelated entries sit at cosine ~0.3-0.6. */
typedef struct {
    uint32_t dim, ncl;
    float *common, *spectrum, *centres, *aw;
} gen_t;

static void gen_noise(const gen_t *g, float *v)
{
    for (uint32_t i = 0; i < g->dim; i++)
        v[i] = (float)(g->spectrum[i] * gauss());
    unitize(v, g->dim);
}

static void gen_init(gen_t *g, uint32_t dim, uint32_t ncl)
{
    g->dim = dim;
    g->ncl = ncl;
    g->common = malloc(dim * sizeof(float));
    g->spectrum = malloc(dim * sizeof(float));
    g->centres = malloc((size_t)ncl * dim * sizeof(float));
    g->aw = malloc(ncl * sizeof(float));
    for (uint32_t i = 0; i < dim; i++)
        g->spectrum[i] = (float)(1.0 / sqrt(1.0 + i / 8.0));
    for (uint32_t i = 0; i < dim; i++)
        g->common[i] = (float)gauss();
    g->common[3 % dim] += 0.25f * sqrtf((float)dim);
    g->common[17 % dim] -= 0.15f * sqrtf((float)dim);
    unitize(g->common, dim);
    for (uint32_t k = 0; k < ncl; k++) {
        gen_noise(g, g->centres + (size_t)k * dim);
        g->aw[k] = (float)(0.55 + 0.2 * unif());
    }
}

static void gen_free(gen_t *g)
{
    free(g->common);
    free(g->spectrum);
    free(g->centres);
    free(g->aw);
}

static void gen_sample(const gen_t *g, float *v)
{
    uint32_t k = (uint32_t)(rnd() % g->ncl);
    float *n = malloc(g->dim * sizeof *n);
    const float *u = g->centres + (size_t)k * g->dim;
    gen_noise(g, n);
    for (uint32_t i = 0; i < g->dim; i++)
        v[i] = g->aw[k] * g->common[i] + 0.5f * u[i] + 0.62f * n[i];
    unitize(v, g->dim);
    free(n);
}

/* Near-duplicate of q off in a data-like (anisotropic) direction. */
static void gen_near(const gen_t *g, const float *q, double s, float *v)
{
    float *dir = malloc(g->dim * sizeof *dir);
    gen_noise(g, dir);
    near_along(q, dir, s, v, g->dim);
    free(dir);
}

/* ---- reference model: what the index should hold ---- */

typedef struct {
    uint32_t dim;
    size_t n, cap;
    uint64_t *ids;
    float *vecs;
} model_t;

static void model_init(model_t *m, uint32_t dim, size_t cap)
{
    m->dim = dim;
    m->n = 0;
    m->cap = cap;
    m->ids = malloc(cap * sizeof *m->ids);
    m->vecs = malloc(cap * dim * sizeof *m->vecs);
}

static void model_free(model_t *m)
{
    free(m->ids);
    free(m->vecs);
}

static void model_add(model_t *m, uint64_t id, const float *v)
{
    assert_true(m->n < m->cap);
    m->ids[m->n] = id;
    memcpy(m->vecs + m->n * m->dim, v, m->dim * sizeof *v);
    m->n++;
}

static void model_remove_at(model_t *m, size_t i)
{
    m->n--;
    m->ids[i] = m->ids[m->n];
    memcpy(m->vecs + i * m->dim, m->vecs + m->n * m->dim, m->dim * sizeof(float));
}

/* Best score over the model (scored exactly as the index scores), -2 if empty. */
static float model_best(const model_t *m, const float *q, uint64_t *id)
{
    float best = -2.0f;
    *id = 0;
    for (size_t i = 0; i < m->n; i++) {
        float d = vec_dot(m->vecs + i * m->dim, q, m->dim);
        if (d > best) {
            best = d;
            *id = m->ids[i];
        }
    }
    return best;
}

static int model_has(const model_t *m, uint64_t id)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->ids[i] == id)
            return 1;
    return 0;
}

/* The index accepts a cosine within float rounding of the threshold. */
#define SIM_SLACK 2e-6f

/* What a hit on a vector scoring d must report: d clamped to [thr, 1]. */
static float reported(float d, float thr)
{
    return d < thr ? thr : d > 1.0f ? 1.0f : d;
}

/* A search result must be a live entry whose exact score reaches the
 * threshold (within rounding slack) and is no better than the true best, and
 * the reported similarity never below the threshold. With `exhaustive`, it
 * must be the true best. */
static void check_search(index_t *ix, const model_t *m, const float *q, float thr, int exhaustive)
{
    uint64_t id = 0, bid;
    float sim = 0;
    float best = model_best(m, q, &bid);
    int hit = index_search(ix, q, thr, &id, &sim);

    if (hit) {
        assert_true(model_has(m, id));
        float d = vec_dot(index_vector(ix, id), q, m->dim);
        assert_true(d >= thr - SIM_SLACK);
        assert_true(sim >= thr && sim <= 1.0f);
        assert_true(sim == reported(d, thr));
        assert_true(d <= best);
    }
    if (exhaustive) {
        assert_int_equal(hit, best >= thr - SIM_SLACK);
        if (hit)
            assert_true(vec_dot(index_vector(ix, id), q, m->dim) == best);
    }
}

/* ---- tests ---- */

static void new_rejects_bad_arguments(void **state)
{
    (void)state;
    assert_null(index_new(0, 1, NULL));
    assert_null(index_new(SIMCACHE_MAX_DIM + 1, 1, NULL));
    index_t *ix = index_new(SIMCACHE_MAX_DIM, 1, NULL);
    assert_non_null(ix);
    assert_int_equal(index_dim(ix), SIMCACHE_MAX_DIM);
    index_free(ix);
    index_free(NULL);
}

static void add_validates_input(void **state)
{
    (void)state;
    uint32_t d = 32;
    float v[32], w[32];
    index_t *ix = index_new(d, 7, NULL);
    random_unit(v, d);

    assert_int_equal(index_add(ix, 0, v), -EINVAL);
    assert_int_equal(index_add(ix, 1, NULL), -EINVAL);
    for (uint32_t i = 0; i < d; i++)
        w[i] = 2 * v[i];
    assert_int_equal(index_add(ix, 1, w), -EINVAL); /* not unit */
    memcpy(w, v, sizeof v);
    w[5] = NAN;
    assert_int_equal(index_add(ix, 1, w), -EINVAL);
    assert_int_equal(index_count(ix), 0);

    assert_int_equal(index_add(ix, 1, v), 0);
    assert_int_equal(index_add(ix, 1, v), -EEXIST);
    random_unit(w, d);
    assert_int_equal(index_add(ix, 1, w), -EEXIST);
    assert_int_equal(index_count(ix), 1);
    assert_memory_equal(index_vector(ix, 1), v, sizeof v);
    assert_null(index_vector(ix, 2));
    index_free(ix);
}

static void empty_index_misses(void **state)
{
    (void)state;
    float v[16];
    uint64_t id = 99;
    float sim = 99;
    index_t *ix = index_new(16, 7, NULL);
    random_unit(v, 16);
    assert_int_equal(index_search(ix, v, -1.0f, &id, &sim), 0);
    assert_true(id == 99 && sim == 99); /* untouched on a miss */
    index_free(ix);
}

static void exact_path_finds_true_best(void **state)
{
    (void)state;
    uint32_t d = 64, n = 2000;
    model_t m;
    float q[64], v[64];
    index_t *ix = index_new(d, 11, NULL);
    model_init(&m, d, n + 600);
    for (uint32_t i = 0; i < n; i++) {
        random_unit(v, d);
        assert_int_equal(index_add(ix, 1000 + i, v), 0);
        model_add(&m, 1000 + i, v);
    }
    for (int k = 0; k < 200; k++) {
        random_unit(q, d);
        /* Plant a few close ones so the best is near the threshold. */
        for (int j = 0; j < 3; j++) {
            near(q, 0.75 + 0.1 * unif(), v, d);
            uint64_t id = 100000 + (uint64_t)k * 3 + j;
            assert_int_equal(index_add(ix, id, v), 0);
            model_add(&m, id, v);
            if (m.n == m.cap)
                break;
        }
        check_search(ix, &m, q, 0.8f, 1);
        check_search(ix, &m, q, 0.0f, 1);
        if (m.n + 3 > m.cap)
            break;
    }
    index_stats_t st;
    index_get_stats(ix, &st);
    assert_int_equal(st.coded, 0);
    assert_true(st.drop_bound == 0.0); /* exact: nothing can be dropped */
    index_free(ix);
    model_free(&m);
}

/* Threshold 1 asks for the same direction: a stored vector must find itself
 * whatever rounding does to its cosine with itself, on both paths. */
static void identical_vector_hits_at_threshold_one(void **state)
{
    (void)state;
    for (int lsh = 0; lsh < 2; lsh++) {
        uint32_t d = 300;
        index_params_t p = { .exact_below = lsh ? 32 : 0 };
        index_t *ix = index_new(d, 8, &p);
        float *all = malloc((size_t)200 * d * sizeof *all);
        for (uint64_t id = 1; id <= 200; id++) {
            random_unit(all + (id - 1) * d, d);
            assert_int_equal(index_add(ix, id, all + (id - 1) * d), 0);
        }
        for (uint64_t id = 1; id <= 200; id++) {
            uint64_t got = 0;
            float sim = 0;
            assert_int_equal(index_search(ix, all + (id - 1) * d, 1.0f, &got, &sim), 1);
            assert_int_equal(got, id);
            assert_true(sim == 1.0f);
        }
        free(all);
        index_free(ix);
    }
}

static void search_below_threshold_misses(void **state)
{
    (void)state;
    for (int lsh = 0; lsh < 2; lsh++) {
        uint32_t d = 128;
        index_params_t p = { .exact_below = lsh ? 16 : 0 };
        index_t *ix = index_new(d, 5, &p);
        float q[128], v[128];
        random_unit(q, d);
        for (uint64_t id = 1; id <= 200; id++) {
            near(q, 0.60 + 0.19 * unif(), v, d); /* all below 0.8 */
            assert_int_equal(index_add(ix, id, v), 0);
        }
        uint64_t id;
        float sim;
        assert_int_equal(index_search(ix, q, 0.8f, &id, &sim), 0);
        assert_int_equal(index_search(ix, q, 0.99f, &id, &sim), 0);
        assert_int_equal(index_search(ix, q, 0.5f, &id, &sim), 1);
        assert_true(sim >= 0.5f && sim < 0.8f);
        index_free(ix);
    }
}

static void search_never_returns_below_threshold(void **state)
{
    (void)state;
    const float thrs[] = { -0.5f, 0.0f, 0.3f, 0.5f, 0.7f, 0.8f, 0.9f, 0.99f, 1.0f };
    for (int lsh = 0; lsh < 2; lsh++) {
        uint32_t d = 80, n = 3000;
        index_params_t p = { .exact_below = lsh ? 100 : 0 };
        index_t *ix = index_new(d, 3, &p);
        model_t m;
        float *v = malloc(d * sizeof *v), *q = malloc(d * sizeof *q);
        model_init(&m, d, n);
        for (uint32_t i = 0; i < n; i++) {
            if (i > 0 && i % 3 == 0)
                near(m.vecs + (size_t)(rnd() % m.n) * d, 0.6 + 0.4 * unif(), v, d);
            else
                random_unit(v, d);
            assert_int_equal(index_add(ix, i + 1, v), 0);
            model_add(&m, i + 1, v);
        }
        for (int k = 0; k < 300; k++) {
            near(m.vecs + (size_t)(rnd() % m.n) * d, 0.5 + 0.5 * unif(), q, d);
            check_search(ix, &m, q, thrs[k % 9], 0);
        }
        index_stats_t st;
        index_get_stats(ix, &st);
        assert_int_equal(st.coded, lsh);
        model_free(&m);
        free(v);
        free(q);
        index_free(ix);
    }
}

static void remove_takes_entry_out(void **state)
{
    (void)state;
    for (int lsh = 0; lsh < 2; lsh++) {
        uint32_t d = 96, n = 500;
        index_params_t p = { .exact_below = lsh ? 50 : 0 };
        index_t *ix = index_new(d, 9, &p);
        float *all = malloc((size_t)n * d * sizeof *all);
        for (uint32_t i = 0; i < n; i++) {
            random_unit(all + (size_t)i * d, d);
            assert_int_equal(index_add(ix, i + 1, all + (size_t)i * d), 0);
        }
        for (uint32_t i = 0; i < n; i += 2)
            assert_int_equal(index_remove(ix, i + 1), 0);
        assert_int_equal(index_count(ix), n / 2);
        for (uint32_t i = 0; i < n; i++) {
            uint64_t id = 0;
            float sim = 0;
            int hit = index_search(ix, all + (size_t)i * d, 0.999f, &id, &sim);
            if (i % 2 == 0) {
                assert_int_equal(index_remove(ix, i + 1), -ENOENT);
                assert_null(index_vector(ix, i + 1));
                assert_int_equal(hit, 0);
            } else {
                assert_int_equal(hit, 1);
                assert_int_equal(id, i + 1);
                assert_memory_equal(index_vector(ix, i + 1), all + (size_t)i * d,
                                    d * sizeof(float));
            }
        }
        assert_int_equal(index_remove(ix, 0), -ENOENT);
        assert_int_equal(index_remove(ix, 123456), -ENOENT);
        /* Empty it completely, then use it again. */
        for (uint32_t i = 1; i < n; i += 2)
            assert_int_equal(index_remove(ix, i + 1), 0);
        assert_int_equal(index_count(ix), 0);
        uint64_t id;
        float sim;
        assert_int_equal(index_search(ix, all, -1.0f, &id, &sim), 0);
        assert_int_equal(index_add(ix, 7, all), 0);
        assert_int_equal(index_search(ix, all, 0.9f, &id, &sim), 1);
        assert_int_equal(id, 7);
        free(all);
        index_free(ix);
    }
}

static void readd_after_remove_uses_new_vector(void **state)
{
    (void)state;
    for (int lsh = 0; lsh < 2; lsh++) {
        uint32_t d = 64;
        index_params_t p = { .exact_below = lsh ? 8 : 0 };
        index_t *ix = index_new(d, 4, &p);
        float a[64], b[64], v[64];
        random_unit(a, d);
        random_unit(b, d);
        for (uint64_t id = 1; id <= 20; id++) {
            random_unit(v, d);
            assert_int_equal(index_add(ix, id, v), 0);
        }
        assert_int_equal(index_add(ix, 100, a), 0);
        assert_int_equal(index_remove(ix, 100), 0);
        assert_int_equal(index_add(ix, 100, b), 0);
        assert_memory_equal(index_vector(ix, 100), b, sizeof b);
        uint64_t id = 0;
        float sim;
        assert_int_equal(index_search(ix, b, 0.99f, &id, &sim), 1);
        assert_int_equal(id, 100);
        assert_int_equal(index_search(ix, a, 0.99f, &id, &sim), 0);
        index_free(ix);
    }
}

/* Random adds, removes and searches against the model: the staged path
 * must agree with brute force exactly (its only loss, the sign-code cut,
 * is rare enough to show in no search of this fixed run), which checks
 * the per-slot codes across swap-removes and that the int8 stages never
 * drop the true best. Mode 1 starts from a centre far from the data, so
 * that re-centring runs (two generations of codes searched side by side)
 * while the entries move. */
static void interleaved_ops_match_model(void **state)
{
    (void)state;
    const uint32_t dims[] = { 16, 96, 300 };
    for (size_t k = 0; k < 3; k++) {
        for (int mode = 0; mode < 2; mode++) {
            uint32_t d = dims[k];
            index_params_t p = { .exact_below = 64 };
            index_t *ix = index_new(d, 77 + k, &p);
            model_t m;
            float *v = malloc(d * sizeof *v);
            uint64_t next_id = 1;
            model_init(&m, d, 4000);
            if (mode == 1) {
                float *c = calloc(d, sizeof *c);
                c[0] = 0.9f;
                assert_int_equal(index_set_center(ix, c), 0);
                free(c);
            }
            int saw_recentring = 0;
            for (int op = 0; op < 4500; op++) {
                uint64_t r = rnd() % 100;
                /* Grow, shrink below exact_below (hashing stays on, the
                 * exact path serves), then grow again. */
                int grow = op < 1500 || op > 3000;
                if (r < (grow ? 55u : 10u) && m.n < m.cap) {
                    if (m.n && rnd() % 2)
                        near(m.vecs + (size_t)(rnd() % m.n) * d, 0.7 + 0.3 * unif(), v, d);
                    else
                        random_unit(v, d);
                    assert_int_equal(index_add(ix, next_id, v), 0);
                    model_add(&m, next_id++, v);
                } else if (r < 80 && m.n) {
                    size_t i = rnd() % m.n;
                    assert_int_equal(index_remove(ix, m.ids[i]), 0);
                    model_remove_at(&m, i);
                } else if (m.n) {
                    near(m.vecs + (size_t)(rnd() % m.n) * d, 0.75 + 0.25 * unif(), v, d);
                    check_search(ix, &m, v, 0.8f, 1);
                    index_stats_t sr;
                    index_get_stats(ix, &sr);
                    saw_recentring |= sr.recentring != 0;
                }
                assert_int_equal(index_count(ix), m.n);
                if (op == 3000)
                    assert_true(m.n < 64);
            }
            index_stats_t st;
            index_get_stats(ix, &st);
            assert_int_equal(st.coded, 1);
            assert_int_equal(st.count, m.n);
            if (mode == 1)
                assert_true(saw_recentring && st.recentres >= 1);
            for (size_t i = 0; i < m.n; i++)
                assert_memory_equal(index_vector(ix, m.ids[i]), m.vecs + i * d, d * sizeof(float));
            free(v);
            model_free(&m);
            index_free(ix);
        }
    }
}

/* Sparse, one-hot and outlier-heavy vectors are where the fast rotation
 * behind the sign codes is weakest: the result must still be the true
 * best. */
static void peaky_vectors_are_not_dropped(void **state)
{
    (void)state;
    const uint32_t dims[] = { 64, 100, 1024 };
    for (size_t k = 0; k < 3; k++) {
        uint32_t d = dims[k];
        index_params_t p = { .exact_below = 32 };
        index_t *ix = index_new(d, 1234, &p);
        model_t m;
        float *v = malloc(d * sizeof *v), *q = malloc(d * sizeof *q);
        model_init(&m, d, 1500);
        for (uint64_t id = 1; id <= 1000; id++) {
            memset(v, 0, d * sizeof *v);
            switch (id % 3) {
            case 0: /* one-hot plus a little */
                v[rnd() % d] = 1.0f;
                v[rnd() % d] += 0.2f;
                break;
            case 1: /* 4-sparse */
                for (int j = 0; j < 4; j++)
                    v[rnd() % d] = (float)gauss();
                v[0] += 0.01f;
                break;
            default: /* dense with two huge outlier dimensions */
                for (uint32_t i = 0; i < d; i++)
                    v[i] = (float)gauss();
                v[1] = 40.0f;
                v[d - 1] = -30.0f;
            }
            unitize(v, d);
            assert_int_equal(index_add(ix, id, v), 0);
            model_add(&m, id, v);
        }
        int found = 0;
        for (int t = 0; t < 400; t++) {
            const float *base = m.vecs + (size_t)(rnd() % m.n) * d;
            /* Perturb within the support when the base is sparse. */
            memcpy(v, base, d * sizeof *v);
            for (uint32_t i = 0; i < d; i++)
                if (v[i] != 0.0f || t % 2)
                    v[i] += (float)(0.05 * gauss());
            unitize(v, d);
            double c = vec_dot(v, base, d);
            if (c < 0.8)
                near(base, 0.8 + 0.05 * unif(), v, d);
            memcpy(q, v, d * sizeof *q);
            check_search(ix, &m, q, 0.8f, 1);
            found++;
        }
        assert_int_equal(found, 400);
        free(v);
        free(q);
        model_free(&m);
        index_free(ix);
    }
}

static void same_seed_gives_same_answers(void **state)
{
    (void)state;
    uint32_t d = 128, n = 3000;
    index_params_t p = { .exact_below = 500 };
    index_t *a = index_new(d, 0xabcdef, &p), *b = index_new(d, 0xabcdef, &p);
    index_t *c = index_new(d, 0x123456, &p);
    gen_t g;
    float *all = malloc((size_t)n * d * sizeof *all), *q = malloc(d * sizeof *q);
    gen_init(&g, d, 16);
    for (uint32_t i = 0; i < n; i++) {
        gen_sample(&g, all + (size_t)i * d);
        assert_int_equal(index_add(a, i + 1, all + (size_t)i * d), 0);
        assert_int_equal(index_add(b, i + 1, all + (size_t)i * d), 0);
        assert_int_equal(index_add(c, i + 1, all + (size_t)i * d), 0);
    }
    int hits = 0;
    for (int k = 0; k < 300; k++) {
        gen_near(&g, all + (size_t)(rnd() % n) * d, 0.78 + 0.2 * unif(), q);
        uint64_t ia = 0, ib = 0, ic = 0;
        float sa = 0, sb = 0, sc = 0;
        int ha = index_search(a, q, 0.8f, &ia, &sa);
        int hb = index_search(b, q, 0.8f, &ib, &sb);
        int hc = index_search(c, q, 0.8f, &ic, &sc);
        assert_int_equal(ha, hb);
        assert_int_equal(ia, ib);
        assert_true(sa == sb);
        hits += ha;
        if (hc)
            assert_true(sc >= 0.8f);
    }
    assert_true(hits > 0);
    index_stats_t sa, sb, sc;
    index_get_stats(a, &sa);
    index_get_stats(b, &sb);
    index_get_stats(c, &sc);
    assert_int_equal(sa.filtered, sb.filtered);
    assert_int_equal(sa.candidates, sb.candidates);
    assert_int_equal(sa.bytes, sb.bytes);
    /* Another seed: another rotation, so other codes (the stage 1 totals
     * of 300 searches coinciding would be a remarkable accident). */
    assert_true(sa.filtered != sc.filtered);
    gen_free(&g);
    free(all);
    free(q);
    index_free(a);
    index_free(b);
    index_free(c);
}

/* A restart re-adds entries in another order: with the saved seed and
 * centre the codes are the same, and searches find the planted
 * near-duplicates as well, without false hits. */
static void restored_center_keeps_answers(void **state)
{
    (void)state;
    uint32_t d = 128, n = 2000;
    index_params_t p = { .exact_below = 300 };
    index_t *a = index_new(d, 0x77, &p), *b = index_new(d, 0x77, &p);
    gen_t g;
    float *all = malloc((size_t)n * d * sizeof *all), *q = malloc(d * sizeof *q);
    model_t m;
    gen_init(&g, d, 16);
    model_init(&m, d, n);
    assert_null(index_center(a));
    for (uint32_t i = 0; i < n; i++) {
        gen_sample(&g, all + (size_t)i * d);
        assert_int_equal(index_add(a, i + 1, all + (size_t)i * d), 0);
        model_add(&m, i + 1, all + (size_t)i * d);
    }
    const float *c = index_center(a);
    assert_non_null(c);
    assert_int_equal(index_set_center(b, c), 0); /* before any entry */
    assert_memory_equal(index_center(b), c, d * sizeof(float));
    for (uint32_t i = n; i > 0; i--)
        assert_int_equal(index_add(b, i, all + (size_t)(i - 1) * d), 0);
    assert_memory_equal(index_center(b), index_center(a), d * sizeof(float));
    uint32_t have = 0, fa = 0, fb = 0;
    for (int k = 0; k < 200; k++) {
        gen_near(&g, all + (size_t)(rnd() % n) * d, 0.80 + 0.19 * unif(), q);
        check_search(a, &m, q, 0.8f, 0);
        check_search(b, &m, q, 0.8f, 0);
        uint64_t ia = 0, ib = 0, bid;
        float best = model_best(&m, q, &bid);
        int ha = index_search(a, q, 0.8f, &ia, NULL), hb = index_search(b, q, 0.8f, &ib, NULL);
        if (best >= 0.8f) {
            have++;
            fa += ha && vec_dot(index_vector(a, ia), q, d) == best;
            fb += hb && vec_dot(index_vector(b, ib), q, d) == best;
        }
    }
    print_message("found %u and %u of %u\n", fa, fb, have);
    assert_true(have >= 190);
    assert_true(fa >= have * 97 / 100 && fb >= have * 97 / 100);

    /* Re-centring on the current mean rebuilds; a bad centre is refused. */
    assert_int_equal(index_set_center(a, NULL), 0);
    q[3] = NAN;
    assert_int_equal(index_set_center(a, q), -EINVAL);
    for (uint32_t i = 0; i < d; i++)
        q[i] = 1.0f; /* length sqrt(d): not a mean of unit vectors */
    assert_int_equal(index_set_center(a, q), -EINVAL);
    assert_non_null(index_center(a));
    for (int k = 0; k < 100; k++) {
        gen_near(&g, all + (size_t)(rnd() % n) * d, 0.75 + 0.24 * unif(), q);
        check_search(a, &m, q, 0.8f, 0);
    }
    model_free(&m);
    gen_free(&g);
    free(all);
    free(q);
    index_free(a);
    index_free(b);
}

/* Every stored vector, searched for at threshold 1, must come back as
 * itself: its codes sit under its current slot. */
static void assert_codes_consistent(index_t *ix, const model_t *m)
{
    for (size_t i = 0; i < m->n; i++) {
        uint64_t id = 0;
        float sim = 0;
        assert_int_equal(index_search(ix, m->vecs + i * m->dim, 1.0f, &id, &sim), 1);
        assert_int_equal(id, m->ids[i]);
    }
}

/* Removals move the last slot's codes into the hole: after removing every
 * other entry, then all but ten, every entry still finds itself. */
static void removals_keep_codes_consistent(void **state)
{
    (void)state;
    const uint32_t d = 128, n = 6000;
    index_params_t p = { .exact_below = 500 };
    index_t *a = index_new(d, 0x99, &p);
    gen_t g;
    float *v = malloc(d * sizeof *v);
    index_stats_t st;
    model_t m;

    rs = 99;
    gen_init(&g, d, 16);
    model_init(&m, d, n);
    for (uint32_t i = 0; i < n; i++) {
        gen_sample(&g, v);
        assert_int_equal(index_add(a, i + 1, v), 0);
        model_add(&m, i + 1, v);
    }
    index_get_stats(a, &st);
    assert_int_equal(st.coded, 1);
    assert_codes_consistent(a, &m);
    for (size_t i = 0; i < m.n; i++) {
        assert_int_equal(index_remove(a, m.ids[i]), 0);
        model_remove_at(&m, i);
    }
    assert_int_equal(index_count(a), m.n);
    assert_codes_consistent(a, &m);
    while (m.n > 10) {
        size_t i = rnd() % m.n;
        assert_int_equal(index_remove(a, m.ids[i]), 0);
        model_remove_at(&m, i);
    }
    assert_codes_consistent(a, &m);
    for (size_t i = 0; i < m.n; i++)
        assert_memory_equal(index_vector(a, m.ids[i]), m.vecs + i * d, d * sizeof(float));
    model_free(&m);
    gen_free(&g);
    free(v);
    index_free(a);
}

/* Adds and removals interleaved with searches: never a false hit, and
 * planted near-duplicates are found. */
static void search_while_entries_churn(void **state)
{
    (void)state;
    const uint32_t d = 128, n = 6000;
    index_params_t p = { .exact_below = 500 };
    index_t *a = index_new(d, 0x77, &p);
    gen_t g;
    float *q = malloc(d * sizeof *q), *v = malloc(d * sizeof *v);
    model_t m;
    uint32_t have = 0, found = 0;
    uint64_t next = 1;

    rs = 77;
    gen_init(&g, d, 16);
    model_init(&m, d, n);
    while (next <= n) {
        gen_sample(&g, v);
        assert_int_equal(index_add(a, next, v), 0);
        model_add(&m, next++, v);
        if (next % 4 == 0) {
            size_t i = rnd() % m.n;
            assert_int_equal(index_remove(a, m.ids[i]), 0);
            model_remove_at(&m, i);
        }
        if (next % 20 != 0 || m.n < 600)
            continue;
        gen_near(&g, m.vecs + (rnd() % m.n) * d, 0.80 + 0.19 * unif(), q);
        check_search(a, &m, q, 0.8f, 0);
        uint64_t id = 0, bid;
        int hit = index_search(a, q, 0.8f, &id, NULL);
        if (model_best(&m, q, &bid) >= 0.8f) {
            have++;
            found += hit && vec_dot(index_vector(a, id), q, d) == model_best(&m, q, &bid);
        }
    }
    print_message("found %u/%u under churn\n", found, have);
    assert_int_equal(index_count(a), m.n);
    assert_true(have >= 200);
    assert_true(found >= have * 97 / 100);
    model_free(&m);
    gen_free(&g);
    free(q);
    free(v);
    index_free(a);
}

/* index_sample: everything when small, else `want` distinct stored
 * vectors, the same for the same seed. */
static void sample_is_distinct_and_deterministic(void **state)
{
    (void)state;
    const uint32_t d = 16, n = 3000;
    index_t *ix = index_new(d, 5, NULL);
    float v[16];
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t j = 0; j < d; j++) v[j] = (float)((i * 31u + j * 7u) % 97) - 48.0f + (j == i % d ? 500.0f : 0.0f);
        v[(i / d) % d] += 0.37f * (float)i;   /* no two alike */
        assert_int_equal(vec_normalize(v, d, v), 0);
        assert_int_equal(index_add(ix, i + 1, v), 0);
    }
    float *a = malloc((size_t)n * d * sizeof *a), *b = malloc((size_t)n * d * sizeof *b);
    assert_int_equal(index_sample(ix, n + 10, 1, a), n);
    assert_int_equal(index_sample(ix, 200, 42, a), 200);
    assert_int_equal(index_sample(ix, 200, 42, b), 200);
    assert_memory_equal(a, b, 200u * d * sizeof *a);
    assert_int_equal(index_sample(ix, 200, 43, b), 200);
    assert_memory_not_equal(a, b, 200u * d * sizeof *a);
    /* Each sampled vector is stored, and no two are the same slot. */
    for (uint32_t i = 0; i < 200; i++) {
        int stored = 0;
        for (uint32_t id = 1; id <= n && !stored; id++)
            stored = memcmp(index_vector(ix, id), a + (size_t)i * d, d * sizeof *a) == 0;
        assert_true(stored);
        for (uint32_t j = 0; j < i; j++)
            assert_memory_not_equal(a + (size_t)i * d, a + (size_t)j * d, d * sizeof *a);
    }
    free(a);
    free(b);
    index_free(ix);
}

/* The measurement the defaults rest on, at test size: 20k entries, dim 256,
 * clustered and anisotropic; 400 queries with a planted near-duplicate
 * (0.80-0.99) and 100 without; hard negatives (0.70-0.79) around each. */
/* nq queries into q and n entries into x: for each query a match at cosine
 * lo + span * U (U uniform; none for every skip-th query, skip > 0), then
 * 0 to 2 hard negatives at 0.70-0.79 (one more where the match is skipped);
 * the rest of x unrelated samples. */
static void plant(const gen_t *g, float *q, uint32_t nq, float *x, uint32_t n, double lo,
                  double span, uint32_t skip)
{
    const uint32_t d = g->dim;
    uint32_t pos = 0;
    for (uint32_t k = 0; k < nq; k++) {
        float *qq = q + (size_t)k * d;
        int none = skip && k % skip == skip - 1;
        gen_sample(g, qq);
        if (!none)
            gen_near(g, qq, span > 0 ? lo + span * unif() : lo, x + (size_t)pos++ * d);
        for (uint64_t h = rnd() % 3 + (uint64_t)none; h > 0; h--)
            gen_near(g, qq, 0.70 + 0.09 * unif(), x + (size_t)pos++ * d);
    }
    for (; pos < n; pos++)
        gen_sample(g, x + (size_t)pos * d);
}

static void recall_on_clustered_set(void **state)
{
    (void)state;
    const uint32_t d = 256, n = 20000, nq = 500;
    gen_t g;
    float *x = malloc((size_t)n * d * sizeof *x), *q = malloc((size_t)nq * d * sizeof *q);

    rs = 2024;
    gen_init(&g, d, 64);
    plant(&g, q, nq, x, n, 0.80, 0.19, 5);

    /* Add in shuffled order, so planted entries spread over the slots. */
    uint32_t *perm = malloc(n * sizeof *perm);
    for (uint32_t i = 0; i < n; i++)
        perm[i] = i;
    for (uint32_t i = n - 1; i > 0; i--) {
        uint32_t j = (uint32_t)(rnd() % (i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    index_t *ix = index_new(d, 0x5eed, NULL);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(index_add(ix, perm[i] + 1, x + (size_t)perm[i] * d), 0);
    free(perm);

    uint32_t have = 0, found = 0, false_hits = 0, extra = 0;
    float *out = malloc(n * sizeof *out);
    for (uint32_t k = 0; k < nq; k++) {
        const float *qq = q + (size_t)k * d;
        float best = -2.0f;
        vec_dot_many(x, n, qq, d, out);
        for (uint32_t i = 0; i < n; i++)
            if (out[i] > best)
                best = out[i];
        uint64_t id = 0;
        float sim = 0;
        int hit = index_search(ix, qq, 0.8f, &id, &sim);
        if (best >= 0.8f)
            have++;
        if (hit) {
            float dd = out[id - 1];
            if (sim < 0.8f || dd < 0.8f - SIM_SLACK || sim != reported(dd, 0.8f) || dd > best)
                false_hits++;
            if (best >= 0.8f && dd == best)
                found++;
        } else if (best < 0.8f) {
            extra++; /* correct miss */
        }
    }
    double recall = (double)found / have;
    index_stats_t st;
    uint64_t coded, quant, exact;
    index_get_stats(ix, &st);
    index_get_rerank_counts(ix, &coded, &quant, &exact);
    print_message("recall %u/%u = %.4f, false hits %u, correct misses %u; per query: "
                  "%.0f past the short code, %.0f int8-scored, %.2f exact; "
                  "%.0f bytes/entry\n",
                  found, have, recall, false_hits, extra, (double)st.filtered / nq,
                  (double)quant / nq, (double)exact / nq, (double)st.bytes / n);
    assert_true(have >= 380);
    assert_int_equal(false_hits, 0);
    assert_true(recall >= 0.99);

    /* Stats: every entry looked at by its short code, few past it. */
    assert_int_equal(st.count, n);
    assert_int_equal(st.coded, 1);
    assert_int_equal(st.searches, nq);
    assert_true(st.candidates == (uint64_t)nq * n && coded == st.candidates);
    assert_true(st.filtered < (uint64_t)nq * n / 20);
    assert_true(st.bytes >= (uint64_t)n * d * sizeof(float));
    /* At 256 dims the codes weigh as much as the vector (index.h). */
    assert_true(st.bytes < (uint64_t)n * d * sizeof(float) * 3);
    assert_true(exact < quant && quant <= st.filtered);
    assert_true(st.drop_bound > 0.0 && st.drop_bound < 1e-2);

    free(out);
    free(x);
    free(q);
    gen_free(&g);
    index_free(ix);
}

/* The sign-code cuts are calibrated so that a match right at the threshold
 * is dropped with probability below 1e-2 (index.c, DROP_A and DROP_B,
 * drop_bound): plant 400 matches at cosine 0.801 among 20k clustered
 * entries, each query's only entry at or above 0.8, with hard negatives at
 * 0.70-0.79 around it, and count what the search finds: at least 98%. */
static void matches_at_the_threshold_are_found(void **state)
{
    (void)state;
    const uint32_t d = 256, n = 20000, nq = 400;
    gen_t g;
    float *x = malloc((size_t)n * d * sizeof *x), *q = malloc((size_t)nq * d * sizeof *q);

    rs = 4242;
    gen_init(&g, d, 64);
    plant(&g, q, nq, x, n, 0.801, 0.0, 0);
    index_t *ix = index_new(d, 0x5eed, NULL);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(index_add(ix, i + 1, x + (size_t)i * d), 0);

    uint32_t have = 0, found = 0;
    float *out = malloc(n * sizeof *out);
    for (uint32_t k = 0; k < nq; k++) {
        const float *qq = q + (size_t)k * d;
        vec_dot_many(x, n, qq, d, out);
        uint32_t above = 0, at = 0;
        for (uint32_t i = 0; i < n; i++)
            if (out[i] >= 0.8f) {
                above++;
                at = i;
            }
        if (above != 1)
            continue;   /* a sample landed on it too: not the case tested */
        have++;
        uint64_t id = 0;
        float sim = 0;
        if (index_search(ix, qq, 0.8f, &id, &sim) == 1 && id == at + 1)
            found++;
    }
    print_message("matches at the threshold found: %u of %u\n", found, have);
    assert_true(have >= 380);
    assert_true(found >= have - have / 50);   /* >= 0.98 */

    free(out);
    free(x);
    free(q);
    gen_free(&g);
    index_free(ix);
}

/* Flat data (no shared direction, no clusters) with isolated near-twin
 * pairs: where a partition of the entries loses recall (a query's twin in
 * one of hundreds of small lists, none of them favoured by the query), a
 * threshold-certain search must not. At each threshold T, 300 queries each
 * with one planted twin in [T, T + 0.1), among 20k entries. */
static void recall_on_flat_pairs(void **state)
{
    (void)state;
    const uint32_t d = 256, n = 20000, nq = 300;
    const float thr[] = { 0.7f, 0.8f, 0.9f };
    float *x = malloc((size_t)n * d * sizeof *x), *q = malloc((size_t)nq * d * sizeof *q);
    float *out = malloc(n * sizeof *out);

    for (int t = 0; t < 3; t++) {
        rs = 31337 + (uint64_t)t;
        for (uint32_t i = 0; i < n; i++)
            random_unit(x + (size_t)i * d, d);
        /* Twins at random places: query k's twin is entry k * (n / nq). */
        for (uint32_t k = 0; k < nq; k++)
            near(x + (size_t)k * (n / nq) * d, thr[t] + 0.1 * unif(), q + (size_t)k * d, d);
        index_t *ix = index_new(d, 0xf1a7, NULL);
        for (uint32_t i = 0; i < n; i++)
            assert_int_equal(index_add(ix, i + 1, x + (size_t)i * d), 0);
        uint32_t have = 0, found = 0, false_hits = 0;
        for (uint32_t k = 0; k < nq; k++) {
            const float *qq = q + (size_t)k * d;
            float best = -2.0f;
            vec_dot_many(x, n, qq, d, out);
            for (uint32_t i = 0; i < n; i++)
                best = out[i] > best ? out[i] : best;
            uint64_t id = 0;
            float sim = 0;
            int hit = index_search(ix, qq, thr[t], &id, &sim);
            if (hit && (out[id - 1] < thr[t] - SIM_SLACK || sim < thr[t]))
                false_hits++;
            if (best >= thr[t]) {
                have++;
                found += hit && out[id - 1] >= best - 1e-5f;
            }
        }
        print_message("flat pairs at T=%.1f: %u of %u\n", thr[t], found, have);
        assert_true(have >= nq - 5);
        assert_int_equal(false_hits, 0);
        assert_true(found >= have - have / 100);   /* >= 0.99 */
        index_free(ix);
    }
    free(out);
    free(x);
    free(q);
}

/* A stream whose topics and common direction drift (ordered data: new
 * topics replace old ones), through an index capped LRU-style at `cap`
 * entries (the oldest evicted per add once full), for ten turnovers of
 * the capacity. Every 25 adds once full: a near-duplicate query (0.80 to
 * 0.99) of a live entry, scored against brute force. The live mean moves
 * far from where the codes were centred, so the index re-centres, and
 * recall must hold through it. */
static void churn_run(uint32_t cap, uint32_t d, uint32_t *have, uint32_t *found,
                      uint32_t *false_hits, index_stats_t *st)
{
    index_params_t p = { .exact_below = 256 };
    index_t *ix = index_new(d, 0xc0ffee + cap, &p);
    model_t m;
    float *v = malloc(d * sizeof *v), *q = malloc(d * sizeof *q), *n = malloc(d * sizeof *n);
    float *m0 = malloc(d * sizeof *m0), *m1 = malloc(d * sizeof *m1);
    float *topics = malloc((size_t)64 * d * sizeof *topics);
    const uint64_t total = 11ull * cap;
    uint64_t oldest = 1;

    model_init(&m, d, cap + 1);
    random_unit(m0, d);
    random_unit(m1, d);
    *have = *found = *false_hits = 0;
    for (uint64_t t = 1; t <= total; t++) {
        /* A new topic every cap / 8 items; the common direction turns by
         * 90 degrees over the stream. */
        uint64_t topic = t / (cap / 8 + 1);
        float *u = topics + (topic % 64) * d;
        if (t == 1 || t % (cap / 8 + 1) == 0)
            random_unit(u, d);
        double a = 1.5707963 * (double)t / (double)total;
        random_unit(n, d);
        for (uint32_t i = 0; i < d; i++)
            v[i] = (float)(0.75 * (cos(a) * m0[i] + sin(a) * m1[i]) + 0.45 * u[i] + 0.5 * n[i]);
        unitize(v, d);
        if (m.n == cap) {
            /* Evict the oldest (ids are added in order: the smallest live). */
            size_t at = 0;
            while (m.ids[at] != oldest)
                at++;
            assert_int_equal(index_remove(ix, oldest), 0);
            model_remove_at(&m, at);
            oldest++;
        }
        assert_int_equal(index_add(ix, t, v), 0);
        model_add(&m, t, v);
        if (m.n < cap || t % 25 != 0)
            continue;
        near(m.vecs + (size_t)(rnd() % m.n) * d, 0.80 + 0.19 * unif(), q, d);
        uint64_t id = 0, bid;
        float sim = 0;
        float best = model_best(&m, q, &bid);
        int hit = index_search(ix, q, 0.8f, &id, &sim);
        if (hit && (!model_has(&m, id) || vec_dot(index_vector(ix, id), q, d) < 0.8f - SIM_SLACK))
            (*false_hits)++;
        if (best >= 0.8f) {
            (*have)++;
            *found += hit && vec_dot(index_vector(ix, id), q, d) >= best - 1e-5f;
        }
    }
    index_get_stats(ix, st);
    assert_int_equal(st->count, cap);
    /* After all that moving, every live entry still finds itself. */
    assert_codes_consistent(ix, &m);
    model_free(&m);
    free(v);
    free(q);
    free(n);
    free(m0);
    free(m1);
    free(topics);
    index_free(ix);
}

static void recall_holds_under_drifting_churn(void **state)
{
    (void)state;
    const uint32_t caps[] = { 512, 4000 };
    for (int k = 0; k < 2; k++) {
        uint32_t have, found, false_hits;
        index_stats_t st;
        rs = 515 + (uint64_t)k;
        churn_run(caps[k], 128, &have, &found, &false_hits, &st);
        print_message("cap %u, 10 turnovers: %u of %u found, %lu re-centrings, "
                      "%.0f past the short code per search\n",
                      caps[k], found, have, (unsigned long)st.recentres,
                      st.searches ? (double)st.filtered / (double)st.searches : 0.0);
        assert_true(have >= 180);
        assert_int_equal(false_hits, 0);
        assert_true(found >= have - have / 100);   /* >= 0.99 */
        assert_true(st.recentres >= 1);
    }
}

static void stats_track_exact_index(void **state)
{
    (void)state;
    uint32_t d = 32;
    float v[32];
    index_t *ix = index_new(d, 1, NULL);
    index_stats_t st0, st;
    index_get_stats(ix, &st0);
    for (uint64_t id = 1; id <= 100; id++) {
        random_unit(v, d);
        assert_int_equal(index_add(ix, id, v), 0);
    }
    for (int k = 0; k < 10; k++)
        index_search(ix, v, 0.8f, NULL, NULL);
    index_get_stats(ix, &st);
    assert_int_equal(st.count, 100);
    assert_int_equal(st.coded, 0);
    assert_int_equal(st.searches, 10);
    assert_int_equal(st.candidates, 1000);
    assert_true(st.bytes > st0.bytes + 100 * d * sizeof(float));
    for (uint64_t id = 1; id <= 100; id++)
        assert_int_equal(index_remove(ix, id), 0);
    index_get_stats(ix, &st);
    assert_int_equal(st.count, 0);
    index_free(ix);
}

/* A batch gives the answers of its queries searched one by one: on the
 * exact path, on the staged path, and while a re-centring runs (two
 * generations of codes side by side). */
static void batch_matches_single_searches(void **state)
{
    (void)state;
    const uint32_t d = 128, nq = 70;
    float *q = malloc((size_t)nq * d * sizeof *q), *v = malloc(d * sizeof *v);
    uint64_t ids[70], id1;
    float sims[70], s1;
    model_t m;
    gen_t g;

    rs = 808;
    gen_init(&g, d, 16);
    model_init(&m, d, 6000);
    index_params_t p = { .exact_below = 1000 };
    index_t *ix = index_new(d, 0xba7c4, &p);
    for (int phase = 0; phase < 3; phase++) {
        /* 0: 500 entries (exact); 1: 5000 (codes); 2: the same after a
         * centre far off, so that the index re-centres while we search. */
        if (phase < 2) {
            while (m.n < (phase == 0 ? 500u : 5000u)) {
                gen_sample(&g, v);
                assert_int_equal(index_add(ix, m.n + 1, v), 0);
                model_add(&m, m.n + 1, v);
            }
        } else {
            float *c = calloc(d, sizeof *c);
            c[5] = 0.95f;
            assert_int_equal(index_set_center(ix, c), 0);
            free(c);
            /* Enough changes to start re-centring (a check every count / 8
             * = 625 changes), not to finish it (8 slots per change). */
            for (int k = 0; k < 350; k++) {
                size_t i = rnd() % m.n;
                assert_int_equal(index_remove(ix, m.ids[i]), 0);
                memcpy(v, m.vecs + i * d, d * sizeof *v);
                uint64_t nid = m.ids[i] + 100000;
                model_remove_at(&m, i);
                assert_int_equal(index_add(ix, nid, v), 0);
                model_add(&m, nid, v);
            }
        }
        index_stats_t st;
        index_get_stats(ix, &st);
        if (phase == 2)
            assert_int_equal(st.recentring, 1);
        for (uint32_t k = 0; k < nq; k++)
            gen_near(&g, m.vecs + (size_t)(rnd() % m.n) * d, 0.75 + 0.24 * unif(), q + (size_t)k * d);
        int hits = index_search_batch(ix, q, nq, 0.8f, ids, sims);
        int want = 0;
        for (uint32_t k = 0; k < nq; k++) {
            int h = index_search(ix, q + (size_t)k * d, 0.8f, &id1, &s1);
            want += h;
            assert_int_equal(ids[k], h ? id1 : 0);
            if (h)
                assert_true(sims[k] == s1);
        }
        assert_int_equal(hits, want);
        assert_true(want > 0);
    }
    index_free(ix);
    model_free(&m);
    gen_free(&g);
    free(q);
    free(v);
}

/* What index_get_stats reports per entry stays within the ranges index.h
 * states (the capacities grow by steps, so a range), in both modes. */
static void memory_matches_the_header(void **state)
{
    (void)state;
    const uint32_t d = 256, q = 256;
    float v[256];
    index_stats_t st;

    for (int coded = 0; coded < 2; coded++) {
        index_params_t p = { .exact_below = coded ? 100 : 0 };
        index_t *ix = index_new(d, 8, &p);
        for (uint32_t n = 1; n <= 3000; n++) {
            random_unit(v, d);
            assert_int_equal(index_add(ix, n, v), 0);
            if (n % 250 != 0 || (coded && n < 1000))
                continue;
            index_get_stats(ix, &st);
            assert_int_equal(st.coded, coded);
            /* Per namespace: the index struct, and with codes the rotation
             * buffers and the search scratch (index.h). */
            double fixed = coded ? 200e3 : 1e3;
            double per = (double)st.bytes / n;
            double lo = coded ? 4.0 * d + 2.0 * q + 212 : 4.0 * d + 44;
            double hi = coded ? 1.5 * (4.0 * d + 12 + 2.0 * q + 168) + 64 : 6.0 * d + 82;
            if (per < lo || per > hi + fixed / n)
                fail_msg("%s, %u entries: %.0f B/entry, header says %.0f to %.0f",
                         coded ? "coded" : "exact", n, per, lo, hi);
        }
        index_free(ix);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(new_rejects_bad_arguments),
        cmocka_unit_test(add_validates_input),
        cmocka_unit_test(empty_index_misses),
        cmocka_unit_test(exact_path_finds_true_best),
        cmocka_unit_test(identical_vector_hits_at_threshold_one),
        cmocka_unit_test(search_below_threshold_misses),
        cmocka_unit_test(search_never_returns_below_threshold),
        cmocka_unit_test(remove_takes_entry_out),
        cmocka_unit_test(readd_after_remove_uses_new_vector),
        cmocka_unit_test(interleaved_ops_match_model),
        cmocka_unit_test(peaky_vectors_are_not_dropped),
        cmocka_unit_test(same_seed_gives_same_answers),
        cmocka_unit_test(restored_center_keeps_answers),
        cmocka_unit_test(removals_keep_codes_consistent),
        cmocka_unit_test(search_while_entries_churn),
        cmocka_unit_test(sample_is_distinct_and_deterministic),
        cmocka_unit_test(recall_on_clustered_set),
        cmocka_unit_test(recall_on_flat_pairs),
        cmocka_unit_test(recall_holds_under_drifting_churn),
        cmocka_unit_test(matches_at_the_threshold_are_found),
        cmocka_unit_test(stats_track_exact_index),
        cmocka_unit_test(memory_matches_the_header),
        cmocka_unit_test(batch_matches_single_searches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
