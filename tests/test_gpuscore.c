/* test_gpuscore.c - the CPU side of cached/gpuscore.c, without a GPU.
 *
 * The id <-> row map and the check that decides a GPU winner are tested
 * directly. The daemon hooks (gpuscore_open/add/remove/batch) run against a
 * fake device: this file defines the gpu.h calls gpuscore.c uses with a
 * host brute force that keeps gpu_score_best's contract (highest dot
 * product, ties to the lower row, GPU_MATRIX_NO_ROW when no live row), so
 * the mirror's bookkeeping is checked against index_search on every batch.
 * The real cuBLAS path is tests/gpu/test_gpu_score_best.c (needs a GPU).
 */
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

#include "config.h"
#include "daemon.h"
#include "gpu.h"
#include "gpuscore.h"
#include "index.h"
#include "vec.h"

/* ---- a fake device (host memory) behind gpu.h ---- */

struct gpu_scorer { int dummy; };

struct gpu_matrix {
    size_t dim, cap;
    float *v;                      /* cap x dim */
    unsigned char *live;
};

static int fake_fail_set_row;      /* next set_row fails with -EIO */
static int fake_fail_score;        /* next score_best fails with -EIO */
static int fake_scorers;           /* alive */

const char *gpu_last_error(void) { return "fake device"; }

int gpu_scorer_new(int device, gpu_scorer_t **out)
{
    (void)device;
    *out = calloc(1, sizeof **out);
    fake_scorers++;
    return 0;
}

void gpu_scorer_free(gpu_scorer_t *sc)
{
    if (sc) fake_scorers--;
    free(sc);
}

int gpu_matrix_new(gpu_scorer_t *sc, size_t dim, gpu_matrix_t **out)
{
    (void)sc;
    gpu_matrix_t *m = calloc(1, sizeof *m);
    m->dim = dim;
    m->cap = GPU_MATRIX_MIN_ROWS;
    m->v = calloc(m->cap * dim, sizeof *m->v);
    m->live = calloc(m->cap, 1);
    *out = m;
    return 0;
}

void gpu_matrix_free(gpu_matrix_t *m)
{
    if (!m) return;
    free(m->v);
    free(m->live);
    free(m);
}

int gpu_matrix_set_row(gpu_matrix_t *m, size_t row, const float *v)
{
    if (fake_fail_set_row) {
        fake_fail_set_row = 0;
        return -EIO;
    }
    if (row >= m->cap) {
        size_t cap = m->cap;
        while (cap <= row) cap *= 2;
        m->v = realloc(m->v, cap * m->dim * sizeof *m->v);
        m->live = realloc(m->live, cap);
        memset(m->v + m->cap * m->dim, 0, (cap - m->cap) * m->dim * sizeof *m->v);
        memset(m->live + m->cap, 0, cap - m->cap);
        m->cap = cap;
    }
    memcpy(m->v + row * m->dim, v, m->dim * sizeof *v);
    m->live[row] = 1;
    return 0;
}

int gpu_matrix_clear_row(gpu_matrix_t *m, size_t row)
{
    if (row < m->cap) {
        memset(m->v + row * m->dim, 0, m->dim * sizeof *m->v);
        m->live[row] = 0;
    }
    return 0;
}

size_t gpu_matrix_capacity(const gpu_matrix_t *m) { return m ? m->cap : 0; }
size_t gpu_matrix_dim(const gpu_matrix_t *m) { return m ? m->dim : 0; }

int gpu_score_best(gpu_scorer_t *sc, gpu_matrix_t *m, size_t rows, const float *queries,
                   size_t n, uint32_t *best_row, float *best_score, unsigned flags)
{
    (void)sc;
    (void)flags;
    if (fake_fail_score) {
        fake_fail_score = 0;
        return -EIO;
    }
    assert_true(rows <= m->cap);
    for (size_t i = 0; i < n; i++) {
        double top = -INFINITY;
        uint32_t arg = GPU_MATRIX_NO_ROW;
        for (size_t r = 0; r < rows; r++) {
            if (!m->live[r]) continue;
            double d = 0;
            for (size_t k = 0; k < m->dim; k++)
                d += (double)queries[i * m->dim + k] * m->v[r * m->dim + k];
            if (d > top) {
                top = d;
                arg = (uint32_t)r;
            }
        }
        best_row[i] = arg;
        if (best_score) best_score[i] = (float)top;
    }
    return 0;
}

/* ---- data ---- */

static uint64_t rs = 7;

static double gauss(void)
{
    double s = 0;
    for (int i = 0; i < 4; i++) {
        uint64_t z = (rs += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        s += (double)((z ^ (z >> 31)) >> 11) * 0x1p-53 - 0.5;
    }
    return s;
}

static void unit(float *v, uint32_t dim)
{
    for (uint32_t k = 0; k < dim; k++) v[k] = (float)gauss();
    assert_int_equal(vec_normalize(v, dim, v), 0);
}

/* v scaled by c plus noise, normalised: cosine about c to v. */
static void near(const float *v, float c, float *out, uint32_t dim)
{
    unit(out, dim);
    for (uint32_t k = 0; k < dim; k++) out[k] = c * v[k] + (1 - c) * out[k];
    assert_int_equal(vec_normalize(out, dim, out), 0);
}

/* ---- the id <-> row map ---- */

static void rows_are_given_in_order(void **state)
{
    (void)state;
    gpuscore_rows_t r = { 0 };
    size_t row;
    for (uint64_t id = 1; id <= 3000; id++) {
        assert_int_equal(gpuscore_rows_add(&r, id * 10, &row), 0);
        assert_int_equal(row, id - 1);
    }
    assert_int_equal(gpuscore_rows_count(&r), 3000);
    assert_int_equal(r.rows, 3000);
    assert_true(gpuscore_rows_id(&r, 0) == 10);
    assert_true(gpuscore_rows_id(&r, 2999) == 30000);
    assert_true(gpuscore_rows_id(&r, 3000) == 0);
    gpuscore_rows_clear(&r);
    assert_int_equal(gpuscore_rows_count(&r), 0);
}

static void freed_rows_are_reused_last_first(void **state)
{
    (void)state;
    gpuscore_rows_t r = { 0 };
    size_t row;
    for (uint64_t id = 1; id <= 10; id++) assert_int_equal(gpuscore_rows_add(&r, id, NULL), 0);
    assert_int_equal(gpuscore_rows_remove(&r, 3, &row), 0);
    assert_int_equal(row, 2);
    assert_int_equal(gpuscore_rows_remove(&r, 7, &row), 0);
    assert_int_equal(row, 6);
    assert_true(gpuscore_rows_id(&r, 2) == 0);
    assert_int_equal(gpuscore_rows_add(&r, 100, &row), 0);
    assert_int_equal(row, 6);
    assert_int_equal(gpuscore_rows_add(&r, 101, &row), 0);
    assert_int_equal(row, 2);
    assert_int_equal(gpuscore_rows_add(&r, 102, &row), 0);
    assert_int_equal(row, 10);   /* no freed row left: above the mark */
    assert_true(gpuscore_rows_id(&r, 6) == 100);
    assert_int_equal(gpuscore_rows_count(&r), 11);
    gpuscore_rows_clear(&r);
}

static void emptied_map_starts_over_at_row_0(void **state)
{
    (void)state;
    gpuscore_rows_t r = { 0 };
    size_t row;
    for (uint64_t id = 1; id <= 600; id++) assert_int_equal(gpuscore_rows_add(&r, id, NULL), 0);
    for (uint64_t id = 1; id <= 600; id++) assert_int_equal(gpuscore_rows_remove(&r, id, NULL), 0);
    assert_int_equal(r.rows, 0);
    assert_int_equal(r.nfree, 0);
    assert_int_equal(gpuscore_rows_add(&r, 5, &row), 0);
    assert_int_equal(row, 0);
    gpuscore_rows_clear(&r);
}

static void bad_ids_are_refused(void **state)
{
    (void)state;
    gpuscore_rows_t r = { 0 };
    assert_int_equal(gpuscore_rows_add(&r, 0, NULL), -EINVAL);
    assert_int_equal(gpuscore_rows_add(&r, 9, NULL), 0);
    assert_int_equal(gpuscore_rows_add(&r, 9, NULL), -EEXIST);
    assert_int_equal(gpuscore_rows_remove(&r, 8, NULL), -ENOENT);
    assert_int_equal(gpuscore_rows_remove(&r, 0, NULL), -ENOENT);
    assert_int_equal(gpuscore_rows_count(&r), 1);
    gpuscore_rows_clear(&r);
}

/* ---- the check ---- */

static void check_gives_index_search_answer(void **state)
{
    (void)state;
    enum { DIM = 96, N = 300 };
    index_t *ix = index_new(DIM, 1, NULL);
    assert_non_null(ix);
    static float v[N][DIM];
    for (int i = 0; i < N; i++) {
        unit(v[i], DIM);
        assert_int_equal(index_add(ix, (uint64_t)i + 1, v[i]), 0);
    }
    float q[DIM];
    for (int t = 0; t < 100; t++) {
        float c = t % 2 ? 0.95f : 0.7f;
        near(v[t], c, q, DIM);
        uint64_t id = 0;
        float s1 = -2, s2 = -2;
        int hit = index_search(ix, q, 0.8f, &id, &s1);
        if (hit) {
            assert_int_equal(gpuscore_check(ix, id, q, 0.8f, &s2), 1);
            assert_memory_equal(&s1, &s2, sizeof s1);   /* the same bits */
        } else {
            assert_int_equal(gpuscore_check(ix, (uint64_t)t + 1, q, 0.8f, &s2), 0);
        }
    }
    /* An exact copy hits at threshold 1, reported as 1. */
    float s = 0;
    assert_int_equal(gpuscore_check(ix, 5, v[4], 1.0f, &s), 1);
    assert_true(s == 1.0f);
    /* Unknown id: the mirror is out of step. */
    assert_int_equal(gpuscore_check(ix, 999999, v[4], 0.8f, &s), -ENOENT);
    index_free(ix);
}

/* ---- the hooks against the fake device ---- */

typedef struct {
    daemon_t d;
    ns_t ns;
} world_t;

static void world_init(world_t *w, uint32_t dim, int devices)
{
    memset(w, 0, sizeof *w);
    config_defaults(&w->d.cfg);
    w->d.gpu_devices = devices;
    w->ns.dim = dim;
    w->ns.name = (char *)"test|fp|dim";
    index_params_t p = { .exact_below = 200 };   /* hashed beyond: the GPU's exact search may beat LSH */
    w->ns.index = index_new(dim, 3, &p);
    assert_non_null(w->ns.index);
    w->d.namespaces = &w->ns;
    gpuscore_open(&w->d);
}

static void world_free(world_t *w)
{
    gpuscore_ns_free(&w->ns);
    index_free(w->ns.index);
    gpuscore_close(&w->d);
    assert_int_equal(fake_scorers, 0);
}

static void add(world_t *w, uint64_t id, const float *u)
{
    assert_int_equal(index_add(w->ns.index, id, u), 0);
    gpuscore_add(&w->d, &w->ns, id, u);
}

static void del(world_t *w, uint64_t id)
{
    assert_int_equal(index_remove(w->ns.index, id), 0);
    gpuscore_remove(&w->d, &w->ns, id);
}

/* The batch answered by gpuscore_batch and by index_search query by query:
 * every GPU hit is a real hit (the cosine reaches the threshold), and where
 * index_search finds a match the GPU finds the same one or one at least as
 * good (exact search versus LSH). Returns how many were identical. */
static int batch_agrees(world_t *w, const float *q, uint32_t n, float thr)
{
    uint32_t dim = w->ns.dim;
    uint64_t *ids = calloc(n, sizeof *ids);
    float *sims = calloc(n, sizeof *sims);
    assert_int_equal(gpuscore_batch(&w->d, &w->ns, q, n, thr, ids, sims), 1);
    int same = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t id = 0;
        float s = 0;
        int hit = index_search(w->ns.index, q + (size_t)i * dim, thr, &id, &s);
        if (ids[i]) {
            const float *v = index_vector(w->ns.index, ids[i]);
            assert_non_null(v);
            assert_true(vec_dot(v, q + (size_t)i * dim, dim) >= thr - 2e-6f);
        }
        if (hit) {
            assert_true(ids[i] != 0);
            assert_true(sims[i] >= s);
        }
        if (hit == (ids[i] != 0) && (!hit || (id == ids[i] && s == sims[i]))) same++;
    }
    free(ids);
    free(sims);
    return same;
}

static void batch_matches_index_search_through_adds_and_removes(void **state)
{
    (void)state;
    enum { DIM = 64, N = 1500, B = 40 };
    world_t w;
    world_init(&w, DIM, 1);
    w.d.cfg.gpu_score_min_batch = 1;
    w.d.cfg.gpu_score_min_entries = 1;
    assert_non_null(w.d.gpuscore);
    static float v[N + 300][DIM];
    for (int i = 0; i < N; i++) {
        unit(v[i], DIM);
        add(&w, (uint64_t)i + 1, v[i]);
    }
    static float q[B * DIM];
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < B; i++) {
            int k = (i * 37 + round * 101) % N;
            if (i % 3 == 0) memcpy(q + i * DIM, v[k], sizeof v[k]);
            else near(v[k], i % 3 == 1 ? 0.95f : 0.6f, q + i * DIM, DIM);
        }
        /* near-duplicates of live entries: LSH finds them too */
        int same = batch_agrees(&w, q, B, 0.8f);
        assert_true(same >= B - 2);
        /* Remove a third of the entries queried, add new ones in their rows. */
        for (int i = 0; i < B; i += 3) {
            int k = (i * 37 + round * 101) % N;
            if (index_vector(w.ns.index, (uint64_t)k + 1)) del(&w, (uint64_t)k + 1);
        }
        batch_agrees(&w, q, B, 0.8f);
        for (int i = 0; i < 20; i++) {
            uint64_t id = (uint64_t)N + 1000 + (uint64_t)round * 20 + (uint64_t)i;
            float *nv = v[N + round * 20 + i];
            unit(nv, DIM);
            add(&w, id, nv);
        }
    }
    gpuscore_stats_t st;
    gpuscore_get_stats(&w.d, &st);
    assert_true(st.enabled == 1 && st.mirrors == 1 && st.errors == 0);
    assert_true(st.rows == index_count(w.ns.index));
    assert_true(st.batches == 8 && st.queries == 8 * B);
    assert_true(st.bytes >= st.rows * (DIM + 1) * sizeof(float));
    world_free(&w);
}

static void batch_declines_what_is_not_for_the_gpu(void **state)
{
    (void)state;
    enum { DIM = 32 };
    world_t w;
    world_init(&w, DIM, 1);
    float u[4 * DIM];
    uint64_t ids[4];
    float sims[4];
    for (int i = 0; i < 4; i++) unit(u + i * DIM, DIM);
    for (uint64_t id = 1; id <= 100; id++) {
        float e[DIM];
        unit(e, DIM);
        add(&w, id, e);
    }
    /* Defaults: batches of 8 in namespaces of 4096. */
    assert_int_equal(gpuscore_batch(&w.d, &w.ns, u, 4, 0.8f, ids, sims), 0);
    w.d.cfg.gpu_score_min_entries = 100;
    assert_int_equal(gpuscore_batch(&w.d, &w.ns, u, 4, 0.8f, ids, sims), 0);
    w.d.cfg.gpu_score_min_batch = 4;
    assert_int_equal(gpuscore_batch(&w.d, &w.ns, u, 4, 0.8f, ids, sims), 1);
    w.d.cfg.gpu_score_min_entries = 101;
    assert_int_equal(gpuscore_batch(&w.d, &w.ns, u, 4, 0.8f, ids, sims), 0);
    w.d.cfg.gpu_score_min_entries = 0;
    w.d.cfg.gpu_score_min_batch = 0;   /* off at run time */
    assert_int_equal(gpuscore_batch(&w.d, &w.ns, u, 4, 0.8f, ids, sims), 0);
    /* A failed batch falls back to the CPU and is counted; the next works. */
    w.d.cfg.gpu_score_min_batch = 1;
    fake_fail_score = 1;
    assert_int_equal(gpuscore_batch(&w.d, &w.ns, u, 4, 0.8f, ids, sims), 0);
    assert_int_equal(gpuscore_batch(&w.d, &w.ns, u, 4, 0.8f, ids, sims), 1);
    gpuscore_stats_t st;
    gpuscore_get_stats(&w.d, &st);
    assert_true(st.errors == 1 && st.batches == 2);
    world_free(&w);
}

static void device_failure_takes_the_namespace_off_the_gpu(void **state)
{
    (void)state;
    enum { DIM = 32 };
    world_t w;
    world_init(&w, DIM, 1);
    w.d.cfg.gpu_score_min_batch = 1;
    w.d.cfg.gpu_score_min_entries = 1;
    float e[DIM];
    uint64_t ids[1];
    float sims[1];
    for (uint64_t id = 1; id <= 10; id++) {
        unit(e, DIM);
        add(&w, id, e);
    }
    assert_int_equal(gpuscore_batch(&w.d, &w.ns, e, 1, 0.8f, ids, sims), 1);
    assert_true(ids[0] == 10);
    fake_fail_set_row = 1;
    unit(e, DIM);
    add(&w, 11, e);   /* the index has it, the device does not */
    assert_int_equal(gpuscore_batch(&w.d, &w.ns, e, 1, 0.8f, ids, sims), 0);
    /* and it stays off, whatever comes next */
    unit(e, DIM);
    add(&w, 12, e);
    del(&w, 3);
    assert_int_equal(gpuscore_batch(&w.d, &w.ns, e, 1, 0.8f, ids, sims), 0);
    gpuscore_stats_t st;
    gpuscore_get_stats(&w.d, &st);
    assert_true(st.mirrors == 0 && st.errors == 1);
    world_free(&w);
}

static void without_a_device_nothing_exists(void **state)
{
    (void)state;
    enum { DIM = 16 };
    world_t w;
    world_init(&w, DIM, 0);
    w.d.cfg.gpu_score_min_batch = 1;
    w.d.cfg.gpu_score_min_entries = 1;
    assert_null(w.d.gpuscore);
    float e[DIM];
    uint64_t ids[1];
    float sims[1];
    unit(e, DIM);
    add(&w, 1, e);
    del(&w, 1);
    add(&w, 2, e);
    assert_null(w.ns.gpu);
    assert_int_equal(gpuscore_batch(&w.d, &w.ns, e, 1, 0.8f, ids, sims), 0);
    gpuscore_stats_t st;
    gpuscore_get_stats(&w.d, &st);
    assert_true(st.enabled == 0 && st.rows == 0);
    world_free(&w);
    /* gpu_score_min_batch 0 at start: no scorer either. */
    config_t c;
    config_defaults(&c);
    world_t w2;
    memset(&w2, 0, sizeof w2);
    w2.d.cfg = c;
    w2.d.cfg.gpu_score_min_batch = 0;
    w2.d.gpu_devices = 1;
    gpuscore_open(&w2.d);
    assert_null(w2.d.gpuscore);
    gpuscore_close(&w2.d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rows_are_given_in_order),
        cmocka_unit_test(freed_rows_are_reused_last_first),
        cmocka_unit_test(emptied_map_starts_over_at_row_0),
        cmocka_unit_test(bad_ids_are_refused),
        cmocka_unit_test(check_gives_index_search_answer),
        cmocka_unit_test(batch_matches_index_search_through_adds_and_removes),
        cmocka_unit_test(batch_declines_what_is_not_for_the_gpu),
        cmocka_unit_test(device_failure_takes_the_namespace_off_the_gpu),
        cmocka_unit_test(without_a_device_nothing_exists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
