/* gpu_cublas.c - batched scoring with cuBLAS (gpu.h "batched scoring" and
 * "resident matrices").
 *
 * Apart from gpu_cuda.c so that only what scores links cuBLAS (hundreds of
 * MB): the client library needs copies and arenas, never GEMMs. The best
 * match of a batch needs no kernel of our own: scores are shifted to be
 * positive (an extra column), so SGEMM then cublasIsamax per query find it.
 *
 * Nothing here has run on a GPU yet (see docs/gpu.md).
 */
#include "gpu.h"
#include "gpu_internal.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    int *didx;                          /* gpu_score_best: Isamax results */
    size_t capidx;                      /* in ints */
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
    (void)cudaFree(sc->didx);
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

/* ---- resident matrices ------------------------------------------------- */

/* The shift that makes every live score positive (gpu.h): row extra column
 * times query extra column. Both are exact in fp16 too. */
#define ROW_EXTRA 1.0f
#define QUERY_EXTRA 2.0f
#define SHIFT (ROW_EXTRA * QUERY_EXTRA)
/* A shifted score below this is a cleared row's 0 (live rows score >= ~1). */
#define LIVE_MIN 0.5f
#define MAX_DIM ((size_t)1 << 20)
/* Floats of score scratch one chunk of queries aims at (128 MiB). */
#define SCORE_SCRATCH ((size_t)1 << 25)

struct gpu_matrix {
    gpu_scorer_t *sc;               /* borrowed */
    size_t dim, ld;                 /* ld = dim + 1: the extra column */
    size_t cap;                     /* rows held by d */
    float *d;                       /* cap x ld, row-major, device */
    uint64_t *live;                 /* host bitmap of set rows, cap bits */
    float *row;                     /* host staging of one row (ld floats) */
    float *dq;                      /* queries on the device, qcap x ld */
    size_t qcap;
};

int gpu_matrix_new(gpu_scorer_t *sc, size_t dim, gpu_matrix_t **out)
{
    if (!out) return gpu_fail(-EINVAL, "gpu_matrix_new: out is NULL");
    *out = NULL;
    if (!sc) return gpu_fail(-EINVAL, "gpu_matrix_new: no scorer");
    if (dim == 0 || dim > MAX_DIM) return gpu_fail(-EINVAL, "gpu_matrix_new: dim %zu", dim);
    int rc = gpu_set_device(sc->device);
    if (rc < 0) return rc;
    gpu_matrix_t *m = calloc(1, sizeof *m);
    size_t cap = GPU_MATRIX_MIN_ROWS;
    if (m) {
        m->live = calloc(cap / 64, sizeof *m->live);
        m->row = malloc((dim + 1) * sizeof *m->row);
    }
    if (!m || !m->live || !m->row) {
        if (m) {
            free(m->live);
            free(m->row);
        }
        free(m);
        return gpu_fail(-ENOMEM, "gpu_matrix_new: out of host memory");
    }
    m->sc = sc;
    m->dim = dim;
    m->ld = dim + 1;
    m->cap = cap;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, cap * m->ld * sizeof(float));
    if (e == cudaSuccess) {
        m->d = p;
        e = cudaMemsetAsync(m->d, 0, cap * m->ld * sizeof(float), sc->stream);
    }
    if (e != cudaSuccess) {
        rc = cuda_fail(e, "gpu_matrix_new");
        gpu_matrix_free(m);
        return rc;
    }
    *out = m;
    gpu_clear_error();
    return 0;
}

void gpu_matrix_free(gpu_matrix_t *m)
{
    if (!m) return;
    (void)cudaSetDevice(m->sc->device);
    /* Work queued on the stream may still read these. */
    (void)cudaStreamSynchronize(m->sc->stream);
    (void)cudaFree(m->d);
    (void)cudaFree(m->dq);
    (void)cudaGetLastError();
    free(m->live);
    free(m->row);
    free(m);
}

size_t gpu_matrix_capacity(const gpu_matrix_t *m) { return m ? m->cap : 0; }
size_t gpu_matrix_dim(const gpu_matrix_t *m) { return m ? m->dim : 0; }

/* Double the capacity until it holds row: new memory, the old rows copied
 * device to device, the rest zeroed. On failure the matrix is unchanged. */
static int matrix_grow(gpu_matrix_t *m, size_t row)
{
    size_t cap = m->cap;
    while (cap <= row) cap *= 2;
    uint64_t *live = calloc(cap / 64, sizeof *live);
    if (!live) return gpu_fail(-ENOMEM, "gpu_matrix_set_row: out of host memory");
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, cap * m->ld * sizeof(float));
    if (e != cudaSuccess) {
        free(live);
        return cuda_fail(e, "gpu_matrix_set_row: growing the matrix");
    }
    float *d = p;
    size_t old = m->cap * m->ld;
    e = cudaMemcpyAsync(d, m->d, old * sizeof(float), cudaMemcpyDeviceToDevice, m->sc->stream);
    if (e == cudaSuccess)
        e = cudaMemsetAsync(d + old, 0, (cap * m->ld - old) * sizeof(float), m->sc->stream);
    /* The old block may still be read by the copy: wait before freeing it
     * (growth is rare, a sync here costs nothing that matters). */
    if (e == cudaSuccess) e = cudaStreamSynchronize(m->sc->stream);
    if (e != cudaSuccess) {
        (void)cudaFree(d);
        free(live);
        return cuda_fail(e, "gpu_matrix_set_row: copying the matrix");
    }
    (void)cudaFree(m->d);
    memcpy(live, m->live, m->cap / 64 * sizeof *live);
    free(m->live);
    m->live = live;
    m->d = d;
    m->cap = cap;
    return 0;
}

int gpu_matrix_set_row(gpu_matrix_t *m, size_t row, const float *v)
{
    if (!m || !v) return gpu_fail(-EINVAL, "gpu_matrix_set_row: NULL argument");
    if (row >= GPU_MATRIX_MAX_ROWS) return gpu_fail(-EINVAL, "gpu_matrix_set_row: row %zu", row);
    int rc = gpu_set_device(m->sc->device);
    if (rc < 0) return rc;
    if (row >= m->cap && (rc = matrix_grow(m, row)) < 0) return rc;
    memcpy(m->row, v, m->dim * sizeof(float));
    m->row[m->dim] = ROW_EXTRA;
    /* m->row is pageable: an asynchronous copy from pageable memory returns
     * once the bytes are staged (CUDA's "API synchronization behavior"), so
     * the next call may overwrite m->row, and no stream sync is needed. */
    CUDA_TRY(cudaMemcpyAsync(m->d + row * m->ld, m->row, m->ld * sizeof(float),
                             cudaMemcpyHostToDevice, m->sc->stream));
    m->live[row / 64] |= 1ull << (row % 64);
    gpu_clear_error();
    return 0;
}

int gpu_matrix_clear_row(gpu_matrix_t *m, size_t row)
{
    if (!m) return gpu_fail(-EINVAL, "gpu_matrix_clear_row: matrix is NULL");
    if (row >= m->cap) return 0;
    int rc = gpu_set_device(m->sc->device);
    if (rc < 0) return rc;
    CUDA_TRY(cudaMemsetAsync(m->d + row * m->ld, 0, m->ld * sizeof(float), m->sc->stream));
    m->live[row / 64] &= ~(1ull << (row % 64));
    gpu_clear_error();
    return 0;
}

/* Room for n queries on the device, each with its extra column set. The
 * extra column is written once per allocation; uploads leave it alone. */
static int reserve_queries(gpu_matrix_t *m, size_t n)
{
    if (n <= m->qcap) return 0;
    size_t cap = 64;
    while (cap < n) cap *= 2;
    float *ones = malloc(cap * sizeof *ones);
    if (!ones) return gpu_fail(-ENOMEM, "gpu_score_best: out of host memory");
    for (size_t i = 0; i < cap; i++) ones[i] = QUERY_EXTRA;
    /* The old scratch may still be read by queued work. */
    cudaError_t e = cudaStreamSynchronize(m->sc->stream);
    if (e == cudaSuccess) {
        (void)cudaFree(m->dq);
        m->dq = NULL;
        m->qcap = 0;
        void *p = NULL;
        e = cudaMalloc(&p, cap * m->ld * sizeof(float));
        if (e == cudaSuccess) m->dq = p;
    }
    if (e == cudaSuccess)
        e = cudaMemcpy2DAsync(m->dq + m->dim, m->ld * sizeof(float), ones, sizeof(float),
                              sizeof(float), cap, cudaMemcpyHostToDevice, m->sc->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(m->sc->stream);
    free(ones);
    if (e != cudaSuccess) {
        (void)cudaFree(m->dq);
        m->dq = NULL;
        return cuda_fail(e, "gpu_score_best: query scratch");
    }
    m->qcap = cap;
    return 0;
}

static int reserve_idx(gpu_scorer_t *sc, size_t n)
{
    if (n <= sc->capidx) return 0;
    (void)cudaFree(sc->didx);
    sc->didx = NULL;
    sc->capidx = 0;
    void *p = NULL;
    CUDA_TRY(cudaMalloc(&p, n * sizeof(int)));
    sc->didx = p;
    sc->capidx = n;
    return 0;
}

/* The part of gpu_score_best that queues work; the caller restores the
 * pointer mode whatever happens here. */
static int score_best(gpu_scorer_t *sc, gpu_matrix_t *m, size_t rows, const float *queries,
                      size_t n, uint32_t *best_row, float *best_score, unsigned flags)
{
    size_t chunk = SCORE_SCRATCH / rows;
    if (chunk == 0) chunk = 1;
    if (chunk > n) chunk = n;
    int rc;
    /* Scratch freed by reserve() may be in use by queued work. */
    CUDA_TRY(cudaStreamSynchronize(sc->stream));
    if ((rc = reserve_queries(m, n)) < 0 || (rc = reserve(&sc->dout, &sc->capout, chunk * rows)) < 0 ||
        (rc = reserve_idx(sc, n)) < 0)
        return rc;
    size_t ld = m->ld;
    CUDA_TRY(cudaMemcpy2DAsync(m->dq, ld * sizeof(float), queries, m->dim * sizeof(float),
                               m->dim * sizeof(float), n, cudaMemcpyHostToDevice, sc->stream));
    const float one = 1.0f, zero = 0.0f;
    int ir = (int)rows, ik = (int)ld;
    for (size_t c0 = 0; c0 < n; c0 += chunk) {
        int cn = (int)(n - c0 < chunk ? n - c0 : chunk);
        /* Column-major scores (rows x cn, ld rows) = M Q^T: the row-major
         * matrix (rows x ld) is column-major M^T, the row-major queries
         * column-major Q^T (ld x cn). Query i's scores are contiguous. */
        cublasStatus_t st = cublasSetPointerMode(sc->blas, CUBLAS_POINTER_MODE_HOST);
        if (st != CUBLAS_STATUS_SUCCESS) return blas_fail(st, "cublasSetPointerMode");
        const float *q = m->dq + c0 * ld;
        if (flags & GPU_SCORE_FP16)
            st = cublasGemmEx(sc->blas, CUBLAS_OP_T, CUBLAS_OP_N, ir, cn, ik, &one, m->d,
                              CUDA_R_32F, ik, q, CUDA_R_32F, ik, &zero, sc->dout, CUDA_R_32F, ir,
                              CUBLAS_COMPUTE_32F_FAST_16F, CUBLAS_GEMM_DEFAULT);
        else
            st = cublasSgemm(sc->blas, CUBLAS_OP_T, CUBLAS_OP_N, ir, cn, ik, &one, m->d, ik, q, ik,
                             &zero, sc->dout, ir);
        if (st != CUBLAS_STATUS_SUCCESS) return blas_fail(st, "cublas gemm");
        /* Every live score is >= 1 > 0, so max |x| is the max. The results
         * stay on the device (no sync per query). */
        st = cublasSetPointerMode(sc->blas, CUBLAS_POINTER_MODE_DEVICE);
        if (st != CUBLAS_STATUS_SUCCESS) return blas_fail(st, "cublasSetPointerMode");
        for (int i = 0; i < cn; i++) {
            st = cublasIsamax(sc->blas, ir, sc->dout + (size_t)i * rows, 1, sc->didx + c0 + i);
            if (st != CUBLAS_STATUS_SUCCESS) return blas_fail(st, "cublasIsamax");
        }
        if (!best_score) continue;
        /* The winners' scores: the score scratch is reused by the next
         * chunk, so fetch them now. */
        int idx[64];
        for (int i0 = 0; i0 < cn; i0 += 64) {
            int k = cn - i0 < 64 ? cn - i0 : 64;
            CUDA_TRY(cudaMemcpyAsync(idx, sc->didx + c0 + i0, (size_t)k * sizeof(int),
                                     cudaMemcpyDeviceToHost, sc->stream));
            CUDA_TRY(cudaStreamSynchronize(sc->stream));
            for (int i = 0; i < k; i++) {
                float *dst = &best_score[c0 + (size_t)(i0 + i)];
                if (idx[i] < 1 || idx[i] > ir) {
                    *dst = 0.0f;   /* Isamax failed to answer: counted as no row below */
                    continue;
                }
                CUDA_TRY(cudaMemcpyAsync(dst, sc->dout + (size_t)(i0 + i) * rows + (size_t)(idx[i] - 1),
                                         sizeof(float), cudaMemcpyDeviceToHost, sc->stream));
            }
        }
        CUDA_TRY(cudaStreamSynchronize(sc->stream));
    }
    /* One copy back of every winner (int and uint32_t have the same size;
     * converted in place below). */
    CUDA_TRY(cudaMemcpyAsync(best_row, sc->didx, n * sizeof(int), cudaMemcpyDeviceToHost, sc->stream));
    CUDA_TRY(cudaStreamSynchronize(sc->stream));
    for (size_t i = 0; i < n; i++) {
        int v;
        memcpy(&v, &best_row[i], sizeof v);
        /* Isamax is 1-based; a winner that is not a live row means none is. */
        size_t r = v >= 1 && (size_t)v <= rows ? (size_t)v - 1 : SIZE_MAX;
        int live = r != SIZE_MAX && (m->live[r / 64] >> (r % 64) & 1);
        if (best_score && live && best_score[i] < LIVE_MIN) live = 0;
        best_row[i] = live ? (uint32_t)r : GPU_MATRIX_NO_ROW;
        if (best_score) best_score[i] = live ? best_score[i] - SHIFT : -INFINITY;
    }
    return 0;
}

int gpu_score_best(gpu_scorer_t *sc, gpu_matrix_t *m, size_t rows, const float *queries,
                   size_t n, uint32_t *best_row, float *best_score, unsigned flags)
{
    _Static_assert(sizeof(int) == sizeof(uint32_t), "Isamax results are copied into best_row");
    if (!sc || !m) return gpu_fail(-EINVAL, "gpu_score_best: no scorer or no matrix");
    if (m->sc != sc) return gpu_fail(-EINVAL, "gpu_score_best: matrix of another scorer");
    if (n == 0) return 0;
    if (!queries || !best_row) return gpu_fail(-EINVAL, "gpu_score_best: NULL argument");
    if (rows > m->cap)
        return gpu_fail(-EINVAL, "gpu_score_best: %zu rows, capacity %zu", rows, m->cap);
    if (n > INT_MAX || n > SIZE_MAX / sizeof(float) / m->ld)
        return gpu_fail(-EINVAL, "gpu_score_best: %zu queries", n);
    if (rows == 0) {
        for (size_t i = 0; i < n; i++) {
            best_row[i] = GPU_MATRIX_NO_ROW;
            if (best_score) best_score[i] = -INFINITY;
        }
        gpu_clear_error();
        return 0;
    }
    int rc = gpu_set_device(sc->device);
    if (rc < 0) return rc;
    rc = score_best(sc, m, rows, queries, n, best_row, best_score, flags);
    /* gpu_score_batch passes alpha and beta from the host. */
    cublasStatus_t st = cublasSetPointerMode(sc->blas, CUBLAS_POINTER_MODE_HOST);
    if (rc < 0) return rc;
    if (st != CUBLAS_STATUS_SUCCESS) return blas_fail(st, "cublasSetPointerMode");
    gpu_clear_error();
    return 0;
}
