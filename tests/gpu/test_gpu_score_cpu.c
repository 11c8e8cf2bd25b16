/* test_gpu_score_cpu.c - the CPU scoring GEMM (gpu_score_cpu) against a
 * double-precision reference, plus its argument checks. Runs everywhere. */
#include "gpu.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int failures;

#define CHECK(cond) do { if (!(cond)) { \
        fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        failures++; } } while (0)

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float frand(void)   /* uniform in [-1, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

static float *random_rows(size_t rows, size_t dim)
{
    float *v = malloc(rows * dim * sizeof *v);
    if (!v) abort();
    for (size_t i = 0; i < rows * dim; i++) v[i] = frand();
    return v;
}

/* out[i*m+j] agrees with the double dot product within float rounding of a
 * dim-term sum: |err| <= dim * 2^-23 * sum |q_k c_k| (+ a tiny absolute). */
static void scores_match_double_reference(size_t n, size_t m, size_t dim)
{
    float *q = random_rows(n, dim), *c = random_rows(m, dim);
    float *out = malloc(n * m * sizeof *out);
    if (!out) abort();
    CHECK(gpu_score_cpu(q, n, c, m, dim, out) == 0);
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < m; j++) {
            double ref = 0, mag = 0;
            for (size_t k = 0; k < dim; k++) {
                ref += (double)q[i * dim + k] * (double)c[j * dim + k];
                mag += fabs((double)q[i * dim + k] * (double)c[j * dim + k]);
            }
            double err = fabs((double)out[i * m + j] - ref);
            double tol = (double)dim * ldexp(1.0, -23) * mag + 1e-7;
            if (err > tol && failures < 10) {
                fprintf(stderr, "n=%zu m=%zu dim=%zu [%zu,%zu]: got %.9g want %.9g (tol %.3g)\n",
                        n, m, dim, i, j, (double)out[i * m + j], ref, tol);
                failures++;
            }
            if (err > worst) worst = err;
        }
    printf("ok n=%zu m=%zu dim=%zu max abs err %.3g\n", n, m, dim, worst);
    free(q);
    free(c);
    free(out);
}

static void unit_vectors_score_their_cosine(void)
{
    /* identical unit rows score 1, orthogonal rows 0, opposite rows -1 */
    float q[2 * 3] = {1, 0, 0, 0, 0.6f, 0.8f};
    float c[3 * 3] = {1, 0, 0, 0, 0.6f, 0.8f, -1, 0, 0};
    float out[6];
    CHECK(gpu_score_cpu(q, 2, c, 3, 3, out) == 0);
    CHECK(fabsf(out[0] - 1.0f) < 1e-6f && fabsf(out[1]) < 1e-6f && fabsf(out[2] + 1.0f) < 1e-6f);
    CHECK(fabsf(out[3]) < 1e-6f && fabsf(out[4] - 1.0f) < 1e-6f && fabsf(out[5]) < 1e-6f);
}

static void bad_arguments_are_einval(void)
{
    float x[4] = {0}, out[4];
    CHECK(gpu_score_cpu(NULL, 1, x, 1, 4, out) == -EINVAL);
    CHECK(gpu_last_error()[0] != '\0');
    CHECK(gpu_score_cpu(x, 1, NULL, 1, 4, out) == -EINVAL);
    CHECK(gpu_score_cpu(x, 1, x, 1, 4, NULL) == -EINVAL);
    CHECK(gpu_score_cpu(x, 1, x, 1, 0, out) == -EINVAL);
    CHECK(gpu_score_cpu(x, SIZE_MAX / 2, x, 1, 4, out) == -EINVAL);
    CHECK(gpu_score_cpu(x, 2, x, SIZE_MAX / 4, 1, out) == -EINVAL);
    /* empty batches are a no-op, NULL pointers allowed */
    CHECK(gpu_score_cpu(NULL, 0, NULL, 5, 4, NULL) == 0);
    CHECK(gpu_score_cpu(NULL, 5, NULL, 0, 4, NULL) == 0);
    CHECK(gpu_last_error()[0] == '\0');
}

int main(void)
{
    unit_vectors_score_their_cosine();
    bad_arguments_are_einval();
    scores_match_double_reference(1, 1, 1);
    scores_match_double_reference(3, 130, 7);     /* m crosses a tile edge */
    scores_match_double_reference(17, 64, 128);
    scores_match_double_reference(5, 200, 2048);  /* the paper's dim */
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    return 0;
}
