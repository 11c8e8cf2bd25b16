/* test_gpu_score_best.c - the resident device matrix and gpu_score_best
 * against a CPU brute force: random unit rows with some cleared, growth
 * across capacity doublings (rows set far beyond the capacity too), single
 * queries and batches of 64, fp16 math, best_score, ties, the empty and
 * all-cleared matrix, and the argument checks. Exits 77 (skip) without a
 * CUDA device. */
#include "gpu.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond) do { if (!(cond)) { \
        fprintf(stderr, "%s:%d: CHECK failed: %s (%s)\n", __FILE__, __LINE__, #cond, gpu_last_error()); \
        failures++; } } while (0)

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static double gauss(void)
{
    /* sum of 4 uniforms, centred: plenty for directions */
    double s = 0;
    for (int i = 0; i < 4; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        s += (double)(rng >> 11) / (double)(1ull << 53) - 0.5;
    }
    return s;
}

static void random_unit(float *v, size_t dim)
{
    double n = 0;
    for (size_t k = 0; k < dim; k++) {
        v[k] = (float)gauss();
        n += (double)v[k] * v[k];
    }
    n = sqrt(n);
    for (size_t k = 0; k < dim; k++) v[k] = (float)(v[k] / n);
}

static double dot(const float *a, const float *b, size_t dim)
{
    double s = 0;
    for (size_t k = 0; k < dim; k++) s += (double)a[k] * b[k];
    return s;
}

/* A host copy of what the device matrix should hold. */
typedef struct {
    size_t dim, rows;          /* rows: high-water mark */
    float *v;                  /* rows x dim */
    unsigned char *live;
} shadow_t;

static void shadow_set(shadow_t *s, gpu_matrix_t *m, size_t row, const float *v)
{
    if (row >= s->rows) {
        s->v = realloc(s->v, (row + 1) * s->dim * sizeof *s->v);
        s->live = realloc(s->live, row + 1);
        if (!s->v || !s->live) abort();
        memset(s->live + s->rows, 0, row + 1 - s->rows);
        s->rows = row + 1;
    }
    memcpy(s->v + row * s->dim, v, s->dim * sizeof *v);
    s->live[row] = 1;
    CHECK(gpu_matrix_set_row(m, row, v) == 0);
}

static void shadow_clear(shadow_t *s, gpu_matrix_t *m, size_t row)
{
    if (row < s->rows) s->live[row] = 0;
    CHECK(gpu_matrix_clear_row(m, row) == 0);
}

/* Score n random queries (some of them near-copies of live rows, so there
 * are clear winners) and compare with the brute force: the device's row
 * must be live and its exact dot within tol of the best one; where the best
 * leads the runner-up by more than 2*tol it must be that row. */
static void check_batch(gpu_scorer_t *sc, gpu_matrix_t *m, shadow_t *s, size_t n, unsigned flags,
                        int want_score, const char *what)
{
    size_t dim = s->dim;
    double tol = flags & GPU_SCORE_FP16 ? 4e-3 : 2e-6 * sqrt((double)dim) + 1e-6;
    float *q = malloc(n * dim * sizeof *q);
    uint32_t *best = malloc(n * sizeof *best);
    float *score = malloc(n * sizeof *score);
    if (!q || !best || !score) abort();
    for (size_t i = 0; i < n; i++) {
        float *qi = q + i * dim;
        random_unit(qi, dim);
        if (i % 2 == 0 && s->rows) {
            /* 0.9 * a random row + noise, normalised: that row usually wins */
            size_t r = (size_t)(rng % s->rows);
            for (size_t k = 0; k < dim; k++) qi[k] = 0.9f * s->v[r * dim + k] + 0.1f * qi[k];
            double nn = sqrt(dot(qi, qi, dim));
            for (size_t k = 0; k < dim; k++) qi[k] = (float)(qi[k] / nn);
        }
    }
    int rc = gpu_score_best(sc, m, s->rows, q, n, best, want_score ? score : NULL, flags);
    CHECK(rc == 0);
    int bad = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        double top = -INFINITY, second = -INFINITY;
        size_t arg = SIZE_MAX;
        for (size_t r = 0; r < s->rows; r++) {
            if (!s->live[r]) continue;
            double d = dot(q + i * dim, s->v + r * dim, dim);
            if (d > top) {
                second = top;
                top = d;
                arg = r;
            } else if (d > second) {
                second = d;
            }
        }
        if (arg == SIZE_MAX) {
            if (best[i] != GPU_MATRIX_NO_ROW || (want_score && score[i] != -INFINITY)) bad++;
            continue;
        }
        if (best[i] == GPU_MATRIX_NO_ROW || best[i] >= s->rows || !s->live[best[i]]) {
            if (bad++ < 5) fprintf(stderr, "%s: query %zu got row %u (not live)\n", what, i, best[i]);
            continue;
        }
        double got = dot(q + i * dim, s->v + (size_t)best[i] * dim, dim);
        if (got < top - tol || (top - second > 2 * tol && best[i] != arg)) {
            if (bad++ < 5)
                fprintf(stderr, "%s: query %zu: device row %u (%.7f), brute force row %zu (%.7f)\n",
                        what, i, best[i], got, arg, top);
        }
        if (want_score && fabs((double)score[i] - got) > tol) {
            if (bad++ < 5)
                fprintf(stderr, "%s: query %zu: best_score %.7f, exact %.7f\n", what, i,
                        (double)score[i], got);
        }
    }
    if (bad) failures++;
    printf("%s %s: %zu queries, %zu rows (capacity %zu), flags %u\n", bad ? "FAIL" : "ok", what, n,
           s->rows, gpu_matrix_capacity(m), flags);
    free(q);
    free(best);
    free(score);
}

static void random_rows_with_cleared(gpu_scorer_t *sc, size_t dim)
{
    gpu_matrix_t *m = NULL;
    CHECK(gpu_matrix_new(sc, dim, &m) == 0);
    if (!m) return;
    CHECK(gpu_matrix_capacity(m) == GPU_MATRIX_MIN_ROWS);
    CHECK(gpu_matrix_dim(m) == dim);
    shadow_t s = { .dim = dim };
    float *v = malloc(dim * sizeof *v);
    if (!v) abort();
    /* Empty matrix: no row for anyone. */
    check_batch(sc, m, &s, 3, 0, 1, "empty");
    /* 1000 rows: capacity doubles twice (256 -> 512 -> 1024). */
    for (size_t r = 0; r < 1000; r++) {
        random_unit(v, dim);
        shadow_set(&s, m, r, v);
    }
    CHECK(gpu_matrix_capacity(m) == 1024);
    for (size_t r = 0; r < 1000; r += 7) shadow_clear(&s, m, r);
    check_batch(sc, m, &s, 1, 0, 1, "n=1");
    check_batch(sc, m, &s, 64, 0, 1, "n=64");
    check_batch(sc, m, &s, 64, 0, 0, "n=64 no best_score");
    check_batch(sc, m, &s, 64, GPU_SCORE_FP16, 1, "n=64 fp16");
    /* A row far beyond the capacity: several doublings in one call, rows
     * in between stay cleared, the old rows survive the copy. */
    random_unit(v, dim);
    shadow_set(&s, m, 5000, v);
    CHECK(gpu_matrix_capacity(m) == 8192);
    check_batch(sc, m, &s, 64, 0, 1, "after growth to 8192");
    /* Reuse a cleared row. */
    random_unit(v, dim);
    shadow_set(&s, m, 7, v);
    check_batch(sc, m, &s, 33, 0, 1, "cleared row set again");
    /* Clearing beyond the capacity is a no-op. */
    CHECK(gpu_matrix_clear_row(m, 1u << 20) == 0);
    /* All cleared: no row. */
    for (size_t r = 0; r < s.rows; r++)
        if (s.live[r]) shadow_clear(&s, m, r);
    check_batch(sc, m, &s, 5, 0, 1, "all cleared");
    /* Fewer rows than the mark: only [0, rows) counts. */
    random_unit(v, dim);
    shadow_set(&s, m, 3, v);
    uint32_t b = 0;
    float sc3 = 0;
    CHECK(gpu_score_best(sc, m, 3, v, 1, &b, &sc3, 0) == 0);
    CHECK(b == GPU_MATRIX_NO_ROW);
    CHECK(gpu_score_best(sc, m, 4, v, 1, &b, &sc3, 0) == 0);
    CHECK(b == 3 && fabsf(sc3 - 1.0f) < 1e-5f);
    free(v);
    free(s.v);
    free(s.live);
    gpu_matrix_free(m);
}

static void ties_go_to_the_lower_row(gpu_scorer_t *sc)
{
    size_t dim = 64;
    gpu_matrix_t *m = NULL;
    CHECK(gpu_matrix_new(sc, dim, &m) == 0);
    if (!m) return;
    float v[64], w[64];
    random_unit(v, dim);
    random_unit(w, dim);
    CHECK(gpu_matrix_set_row(m, 0, w) == 0);
    CHECK(gpu_matrix_set_row(m, 5, v) == 0);
    CHECK(gpu_matrix_set_row(m, 9, v) == 0);
    uint32_t b = 0;
    CHECK(gpu_score_best(sc, m, 10, v, 1, &b, NULL, 0) == 0);
    CHECK(b == 5);
    /* A query opposite to every row still finds a live row (dot -1 + 2 = 1
     * beats a cleared row's 0). */
    float neg[64];
    for (size_t k = 0; k < dim; k++) neg[k] = -v[k];
    CHECK(gpu_matrix_clear_row(m, 0) == 0);
    float s = 0;
    CHECK(gpu_score_best(sc, m, 10, neg, 1, &b, &s, 0) == 0);
    CHECK(b == 5 && fabsf(s + 1.0f) < 1e-5f);
    gpu_matrix_free(m);
}

static void arguments_are_checked(gpu_scorer_t *sc)
{
    gpu_matrix_t *m = (gpu_matrix_t *)&failures;
    CHECK(gpu_matrix_new(sc, 0, &m) == -EINVAL);
    CHECK(m == NULL);
    CHECK(gpu_matrix_new(NULL, 8, &m) == -EINVAL);
    CHECK(gpu_matrix_new(sc, 8, NULL) == -EINVAL);
    CHECK(gpu_matrix_new(sc, 8, &m) == 0);
    float v[8] = {1};
    uint32_t b;
    CHECK(gpu_matrix_set_row(m, GPU_MATRIX_MAX_ROWS, v) == -EINVAL);
    CHECK(gpu_matrix_set_row(m, 0, NULL) == -EINVAL);
    CHECK(gpu_matrix_set_row(NULL, 0, v) == -EINVAL);
    CHECK(gpu_score_best(sc, m, GPU_MATRIX_MIN_ROWS + 1, v, 1, &b, NULL, 0) == -EINVAL);
    CHECK(gpu_score_best(sc, m, 1, NULL, 1, &b, NULL, 0) == -EINVAL);
    CHECK(gpu_score_best(sc, m, 1, v, 1, NULL, NULL, 0) == -EINVAL);
    CHECK(gpu_score_best(sc, NULL, 1, v, 1, &b, NULL, 0) == -EINVAL);
    CHECK(gpu_score_best(sc, m, 1, NULL, 0, NULL, NULL, 0) == 0);
    gpu_scorer_t *other = NULL;
    CHECK(gpu_scorer_new(0, &other) == 0);
    CHECK(gpu_score_best(other, m, 1, v, 1, &b, NULL, 0) == -EINVAL);
    gpu_scorer_free(other);
    gpu_matrix_free(m);
    gpu_matrix_free(NULL);
}

int main(void)
{
    char why[256];
    if (gpu_probe(why, sizeof why) <= 0) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    printf("%s\n", why);
    gpu_scorer_t *sc = NULL;
    CHECK(gpu_scorer_new(0, &sc) == 0);
    if (!sc) return 1;
    random_rows_with_cleared(sc, 256);
    random_rows_with_cleared(sc, 2048);
    ties_go_to_the_lower_row(sc);
    arguments_are_checked(sc);
    /* gpu_score_batch still works after gpu_score_best switched pointer
     * modes (it passes alpha and beta from the host). */
    float q[2] = {1, 2}, c[4] = {3, 4, 5, 6}, out[2] = {0};
    CHECK(gpu_score_batch(sc, q, 1, c, 2, 2, out, 0) == 0);
    CHECK(out[0] == 11.0f && out[1] == 17.0f);
    gpu_scorer_free(sc);
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    return 0;
}
