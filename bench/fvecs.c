/* fvecs.c - embedding sets on disk and their exact truth (see fvecs.h). */
#include "fvecs.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double fv_dot(const float *a, const float *b, uint32_t dim)
{
    double s = 0.0;
    for (uint32_t i = 0; i < dim; i++)
        s += (double)a[i] * b[i];
    return s;
}

float *fv_read(const char *path, uint64_t max_n, uint64_t *n, uint32_t *dim, char *err,
               size_t errlen)
{
    FILE *f = fopen(path, "rb");
    int32_t d32;
    float *out = NULL;

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fread(&d32, sizeof d32, 1, f) != 1 || d32 <= 0 || d32 > 65536) {
        snprintf(err, errlen, "%s: not an .fvecs file (first dimension)", path);
        goto fail;
    }
    if (fseek(f, 0, SEEK_END) != 0)
        goto io;
    long size = ftell(f);
    rewind(f);
    size_t rec = sizeof(int32_t) + (size_t)d32 * sizeof(float);
    if (size <= 0 || (size_t)size % rec != 0) {
        snprintf(err, errlen, "%s: size %ld is not a multiple of %zu-byte records", path, size,
                 rec);
        goto fail;
    }
    uint64_t cnt = (uint64_t)size / rec;
    if (max_n && cnt > max_n)
        cnt = max_n;
    out = malloc(cnt * (size_t)d32 * sizeof(float));
    if (out == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    for (uint64_t i = 0; i < cnt; i++) {
        float *v = out + i * (size_t)d32;
        int32_t di;
        if (fread(&di, sizeof di, 1, f) != 1 || fread(v, sizeof(float), (size_t)d32, f) !=
                                                      (size_t)d32)
            goto io;
        if (di != d32) {
            snprintf(err, errlen, "%s: vector %llu has dimension %d, not %d", path,
                     (unsigned long long)i, di, d32);
            goto fail;
        }
        double ss = 0.0;
        for (int32_t j = 0; j < d32; j++) {
            if (!isfinite(v[j])) {
                snprintf(err, errlen, "%s: vector %llu is not finite", path,
                         (unsigned long long)i);
                goto fail;
            }
            ss += (double)v[j] * v[j];
        }
        if (ss <= 0.0) {
            snprintf(err, errlen, "%s: vector %llu is zero", path, (unsigned long long)i);
            goto fail;
        }
        double inv = 1.0 / sqrt(ss);
        for (int32_t j = 0; j < d32; j++)
            v[j] = (float)(v[j] * inv);
    }
    fclose(f);
    *n = cnt;
    *dim = (uint32_t)d32;
    return out;
io:
    snprintf(err, errlen, "%s: read error", path);
fail:
    free(out);
    fclose(f);
    return NULL;
}

typedef struct {
    const float *rows, *q;
    const uint8_t *live;
    uint64_t n, q0, q1;
    uint32_t dim;
    int64_t *best;
    double *sim;
} job_t;

static void *exact_job(void *arg)
{
    job_t *j = arg;
    for (uint64_t k = j->q0; k < j->q1; k++) {
        const float *y = j->q + k * j->dim;
        int64_t b = -1;
        double bs = -2.0;
        /* float first (fast), then double for the rows that could be best:
         * float rounding is far below 1e-4 for unit vectors. */
        for (uint64_t i = 0; i < j->n; i++) {
            if (j->live && !j->live[i])
                continue;
            const float *x = j->rows + i * j->dim;
            float acc[16] = { 0 }, s = 0.0f;
            uint32_t t = 0;
            /* Sixteen partial sums, so that the compiler can use vector lanes. */
            for (; t + 16 <= j->dim; t += 16)
                for (uint32_t u = 0; u < 16; u++)
                    acc[u] += x[t + u] * y[t + u];
            for (; t < j->dim; t++)
                s += x[t] * y[t];
            for (uint32_t u = 0; u < 16; u++)
                s += acc[u];
            if ((double)s < bs - 1e-4)
                continue;
            double ds = fv_dot(x, y, j->dim);
            if (ds > bs) {
                bs = ds;
                b = (int64_t)i;
            }
        }
        j->best[k] = b;
        j->sim[k] = bs;
    }
    return NULL;
}

void fv_exact_best(const float *rows, uint64_t n, const uint8_t *live, uint32_t dim,
                   const float *q, uint64_t nq, int threads, int64_t *best, double *sim)
{
    enum { MAXT = 64 };
    pthread_t th[MAXT];
    job_t jobs[MAXT];

    if (threads < 1)
        threads = 1;
    if (threads > MAXT)
        threads = MAXT;
    int started[MAXT] = { 0 };
    for (int t = 0; t < threads; t++) {
        jobs[t] = (job_t){ rows, q, live, n, nq * t / threads, nq * (t + 1) / threads, dim,
                           best, sim };
        /* The last slice runs here, and so does any whose thread failed. */
        if (t + 1 < threads && pthread_create(&th[t], NULL, exact_job, &jobs[t]) == 0)
            started[t] = 1;
        else
            exact_job(&jobs[t]);
    }
    for (int t = 0; t < threads; t++)
        if (started[t])
            pthread_join(th[t], NULL);
}
