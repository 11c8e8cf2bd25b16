/* gpu_cpu.c - the parts of gpu.h that need no device, in every build: the
 * thread's last-error buffer and the CPU scoring GEMM.
 *
 * The GEMM is a plain blocked loop (candidates in tiles so a tile stays in
 * cache while every query passes over it); it is the reference the cuBLAS
 * path is checked against and the fallback when there is no device.
 */
#include "gpu.h"
#include "gpu_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

static _Thread_local char last_error[256];

const char *gpu_last_error(void) { return last_error; }

void gpu_clear_error(void) { last_error[0] = '\0'; }

int gpu_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

int gpu_score_args_ok(const float *q, size_t n, const float *c, size_t m,
                      size_t dim, const float *out)
{
    if (n == 0 || m == 0) return 1;   /* nothing to do, pointers unused */
    if (!q || !c || !out || dim == 0) return 0;
    /* every element count must fit in size_t bytes (and in int for cuBLAS,
     * checked by the CUDA backend) */
    if (n > SIZE_MAX / sizeof(float) / dim || m > SIZE_MAX / sizeof(float) / dim ||
        n > SIZE_MAX / sizeof(float) / m)
        return 0;
    return 1;
}

enum { TILE = 64 };   /* candidates per tile */

int gpu_score_cpu(const float *queries, size_t n, const float *candidates,
                  size_t m, size_t dim, float *out)
{
    if (!gpu_score_args_ok(queries, n, candidates, m, dim, out))
        return gpu_fail(-EINVAL, "gpu_score_cpu: bad arguments (n=%zu m=%zu dim=%zu)", n, m, dim);
    gpu_clear_error();
    for (size_t j0 = 0; j0 < m; j0 += TILE) {
        size_t j1 = j0 + TILE < m ? j0 + TILE : m;
        for (size_t i = 0; i < n; i++) {
            const float *q = queries + i * dim;
            for (size_t j = j0; j < j1; j++) {
                const float *c = candidates + j * dim;
                float s = 0.0f;
                for (size_t k = 0; k < dim; k++) s += q[k] * c[k];
                out[i * m + j] = s;
            }
        }
    }
    return 0;
}
