/* gpu_cublas.c - batched scoring with cuBLAS (gpu.h "batched scoring").
 *
 * Apart from gpu_cuda.c so that only what scores links cuBLAS (hundreds of
 * MB): the client library needs copies and arenas, never GEMMs.
 *
 * Nothing here has run on a GPU yet (see docs/gpu.md).
 */
#include "gpu.h"
#include "gpu_internal.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#define cuda_fail(e, what) gpu_cuda_fail((int)(e), (what))
#define CUDA_TRY(call) do { cudaError_t e_ = (call); \
        if (e_ != cudaSuccess) return cuda_fail(e_, #call); } while (0)

static int blas_fail(cublasStatus_t st, const char *what)
{
    int code = st == CUBLAS_STATUS_ALLOC_FAILED ? -ENOMEM
             : st == CUBLAS_STATUS_INVALID_VALUE ? -EINVAL
             : st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_ARCH_MISMATCH ? -EOPNOTSUPP
             : st == CUBLAS_STATUS_NOT_INITIALIZED ? -ENODEV
             : -EIO;
    return gpu_fail(code, "%s: %s", what, cublasGetStatusString(st));
}

/* ---- scoring ----------------------------------------------------------- */

struct gpu_scorer {
    int device;
    cublasHandle_t blas;
    cudaStream_t stream;
    float *dq, *dc, *dout;              /* device scratch */
    size_t capq, capc, capout;          /* in floats */
};

int gpu_scorer_new(int device, gpu_scorer_t **out)
{
    if (!out) return gpu_fail(-EINVAL, "gpu_scorer_new: out is NULL");
    *out = NULL;
    int rc = gpu_set_device(device);
    if (rc < 0) return rc;
    gpu_scorer_t *sc = calloc(1, sizeof *sc);
    if (!sc) return gpu_fail(-ENOMEM, "gpu_scorer_new: out of host memory");
    sc->device = device;
    cudaError_t e = cudaStreamCreateWithFlags(&sc->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        free(sc);
        return cuda_fail(e, "cudaStreamCreateWithFlags");
    }
    cublasStatus_t st = cublasCreate(&sc->blas);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasSetStream(sc->blas, sc->stream);
    if (st != CUBLAS_STATUS_SUCCESS) {
        rc = blas_fail(st, "cublasCreate");
        if (sc->blas) cublasDestroy(sc->blas);
        (void)cudaStreamDestroy(sc->stream);
        free(sc);
        return rc;
    }
    *out = sc;
    gpu_clear_error();
    return 0;
}

void gpu_scorer_free(gpu_scorer_t *sc)
{
    if (!sc) return;
    (void)cudaSetDevice(sc->device);
    cublasDestroy(sc->blas);
    (void)cudaFree(sc->dq);
    (void)cudaFree(sc->dc);
    (void)cudaFree(sc->dout);
    (void)cudaStreamDestroy(sc->stream);
    (void)cudaGetLastError();
    free(sc);
}

/* Grow *buf to at least need floats. */
static int reserve(float **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    (void)cudaFree(*buf);
    *buf = NULL;
    *cap = 0;
    void *p = NULL;
    CUDA_TRY(cudaMalloc(&p, need * sizeof(float)));
    *buf = p;
    *cap = need;
    return 0;
}

int gpu_score_batch(gpu_scorer_t *sc, const float *queries, size_t n,
                    const float *candidates, size_t m, size_t dim,
                    float *out, unsigned flags)
{
    if (!sc) return gpu_score_cpu(queries, n, candidates, m, dim, out);
    if (!gpu_score_args_ok(queries, n, candidates, m, dim, out))
        return gpu_fail(-EINVAL, "gpu_score_batch: bad arguments (n=%zu m=%zu dim=%zu)", n, m, dim);
    if (n == 0 || m == 0) return 0;
    if (n > INT_MAX || m > INT_MAX || dim > INT_MAX)
        return gpu_fail(-EINVAL, "gpu_score_batch: dimension over INT_MAX");
    int rc = gpu_set_device(sc->device);
    if (rc < 0) return rc;
    if ((rc = reserve(&sc->dq, &sc->capq, n * dim)) < 0 ||
        (rc = reserve(&sc->dc, &sc->capc, m * dim)) < 0 ||
        (rc = reserve(&sc->dout, &sc->capout, n * m)) < 0)
        return rc;
    CUDA_TRY(cudaMemcpyAsync(sc->dq, queries, n * dim * sizeof(float), cudaMemcpyHostToDevice, sc->stream));
    CUDA_TRY(cudaMemcpyAsync(sc->dc, candidates, m * dim * sizeof(float), cudaMemcpyHostToDevice, sc->stream));
    /* Row-major out (n x m) is column-major out^T (m x n):
     * out^T = C * Q^T, where row-major C (m x dim) is column-major C^T
     * (dim x m, ld dim) and row-major Q likewise (dim x n, ld dim). */
    const float one = 1.0f, zero = 0.0f;
    int im = (int)m, in = (int)n, id = (int)dim;
    cublasStatus_t st;
    if (flags & GPU_SCORE_FP16)
        st = cublasGemmEx(sc->blas, CUBLAS_OP_T, CUBLAS_OP_N, im, in, id, &one,
                          sc->dc, CUDA_R_32F, id, sc->dq, CUDA_R_32F, id, &zero,
                          sc->dout, CUDA_R_32F, im, CUBLAS_COMPUTE_32F_FAST_16F,
                          CUBLAS_GEMM_DEFAULT);
    else
        st = cublasSgemm(sc->blas, CUBLAS_OP_T, CUBLAS_OP_N, im, in, id, &one,
                         sc->dc, id, sc->dq, id, &zero, sc->dout, im);
    if (st != CUBLAS_STATUS_SUCCESS) return blas_fail(st, "cublas gemm");
    CUDA_TRY(cudaMemcpyAsync(out, sc->dout, n * m * sizeof(float), cudaMemcpyDeviceToHost, sc->stream));
    CUDA_TRY(cudaStreamSynchronize(sc->stream));
    gpu_clear_error();
    return 0;
}
