/* test_gpu_scoring.c - cuBLAS scoring (SGEMM and fp16 GemmEx) agrees with the
 * CPU fallback on random data. Exits 77 (skip) without a CUDA device. */
#include "gpu.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int failures;

#define CHECK(cond) do { if (!(cond)) { \
        fprintf(stderr, "%s:%d: CHECK failed: %s (%s)\n", __FILE__, __LINE__, #cond, gpu_last_error()); \
        failures++; } } while (0)

static uint64_t rng = 0x2545f4914f6cdd1dull;

static float frand(void)
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

/* Allowed error per unit of sum |q_k c_k|: each fp32 sum of dim terms is
 * within dim * 2^-23 of exact whatever its order (CPU loop vs cuBLAS tree),
 * so two of them differ by at most twice that; fp16 inputs carry 2^-11
 * relative rounding each, so products ~1e-3, allowed 4e-3. */
static void gpu_agrees_with_cpu(gpu_scorer_t *sc, size_t n, size_t m, size_t dim,
                                unsigned flags)
{
    double rel = flags & GPU_SCORE_FP16 ? 4e-3 : 2.0 * (double)dim * ldexp(1.0, -23);
    float *q = random_rows(n, dim), *c = random_rows(m, dim);
    float *want = malloc(n * m * sizeof *want), *got = malloc(n * m * sizeof *got);
    if (!want || !got) abort();
    CHECK(gpu_score_cpu(q, n, c, m, dim, want) == 0);
    CHECK(gpu_score_batch(sc, q, n, c, m, dim, got, flags) == 0);
    double worst = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < m; j++) {
            double mag = 0;
            for (size_t k = 0; k < dim; k++) mag += fabs((double)q[i * dim + k] * c[j * dim + k]);
            double err = fabs((double)got[i * m + j] - want[i * m + j]);
            if (err > rel * mag + 1e-6 && bad++ < 5)
                fprintf(stderr, "flags=%u n=%zu m=%zu dim=%zu [%zu,%zu]: gpu %.7g cpu %.7g\n",
                        flags, n, m, dim, i, j, (double)got[i * m + j], (double)want[i * m + j]);
            if (err > worst) worst = err;
        }
    if (bad) failures++;
    printf("%s n=%zu m=%zu dim=%zu flags=%u max abs diff %.3g\n", bad ? "FAIL" : "ok",
           n, m, dim, flags, worst);
    free(q);
    free(c);
    free(want);
    free(got);
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
    gpu_agrees_with_cpu(sc, 1, 1, 1, 0);
    gpu_agrees_with_cpu(sc, 37, 1000, 256, 0);
    gpu_agrees_with_cpu(sc, 8, 512, 2048, 0);      /* scratch grows */
    gpu_agrees_with_cpu(sc, 3, 5, 7, 0);           /* and is reused */
    gpu_agrees_with_cpu(sc, 37, 1000, 256, GPU_SCORE_FP16);
    gpu_agrees_with_cpu(sc, 64, 512, 2048, GPU_SCORE_FP16);

    /* argument checks and the empty batch */
    float x[4] = {0}, out[4];
    CHECK(gpu_score_batch(sc, NULL, 1, x, 1, 4, out, 0) == -EINVAL);
    CHECK(gpu_score_batch(sc, NULL, 0, NULL, 0, 4, NULL, 0) == 0);
    /* a NULL scorer is the CPU path */
    gpu_agrees_with_cpu(NULL, 4, 9, 33, 0);
    gpu_scorer_free(sc);

    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    return 0;
}
