/* gpu.h - the daemon's and client's only view of CUDA.
 *
 * Everything that includes a CUDA header lives in gpu_ipc/. Without CUDA at
 * build time (gpu=disabled, or no toolkit) the CPU fallback in gpu_none.c
 * answers "no device" (-ENODEV) for every device call and still scores on the
 * CPU; with it, gpu_cuda.c asks the runtime, and a machine with the toolkit but
 * no driver or no GPU also answers "no device" instead of failing.
 *
 * Conventions (liburing style):
 *  - every int-returning call returns 0 (or a count) on success and a negative
 *    errno on failure: -ENODEV (no CUDA device / driver / build), -EINVAL (bad
 *    argument), -ENOMEM (host or device allocation failed), -EOPNOTSUPP (the
 *    device lacks the feature), -EIO (any other CUDA error);
 *  - the detail of the last failure of the calling thread is kept in a
 *    thread-local message buffer read with gpu_last_error(); the library never
 *    prints;
 *  - CUDA and fork(): a process that has touched CUDA must not use CUDA in a
 *    child it forks. Fork first, then call into this module.
 *
 * Nothing here has run on a GPU yet (see docs/gpu.md).
 */
#ifndef SIMCACHE_GPU_H
#define SIMCACHE_GPU_H

#include <stddef.h>
#include <stdint.h>

/* Number of usable CUDA devices (0 when none, or no driver, or no CUDA in
 * this build). why gets a one-line explanation either way. Never crashes. */
int gpu_probe(char *why, size_t whylen);

/* 1 if this build has CUDA compiled in. */
int gpu_compiled(void);

/* The message of the calling thread's last failure ("" if none). The string
 * is owned by this module and valid until the thread's next gpu_ call. */
const char *gpu_last_error(void);

/* ---- streams ----------------------------------------------------------- */

/* Opaque CUDA stream (a cudaStream_t). NULL means the legacy default stream
 * and is accepted everywhere a stream is. */
typedef struct gpu_stream gpu_stream_t;

/* Create a non-blocking stream on the current device. *out is owned by the
 * caller; free with gpu_stream_free. -ENODEV, -EIO. */
int gpu_stream_new(gpu_stream_t **out);
void gpu_stream_free(gpu_stream_t *s);          /* NULL is a no-op */
/* Block the host until all work queued on s is done. -EIO on a CUDA error
 * raised by that work. */
int gpu_stream_sync(gpu_stream_t *s);

/* Make device the calling thread's current device. -ENODEV, -EINVAL. */
int gpu_set_device(int device);

/* ---- device arenas ----------------------------------------------------- */

#define GPU_IPC_HANDLE_BYTES 64   /* sizeof(cudaIpcMemHandle_t / EventHandle) */

/* How an arena is shared. */
enum gpu_arena_kind {
    /* cuMemCreate + cuMemExportToShareableHandle(POSIX fd): the fd travels
     * with SCM_RIGHTS, importers may map it read-only (cuMemSetAccess with
     * PROT_READ). Preferred when the device supports it. */
    GPU_ARENA_VMM = 1,
    /* cudaMalloc + cudaIpcGetMemHandle: 64 opaque bytes, no fd; importers
     * always get a read-write mapping (the legacy API has no read-only
     * open), so "no client scribbles" is a protocol rule, not enforced. */
    GPU_ARENA_LEGACY_IPC = 2,
};

/* Flags for gpu_arena_new. */
#define GPU_ARENA_PREFER_VMM   0x1u   /* try VMM, fall back to legacy IPC */
#define GPU_ARENA_FORCE_LEGACY 0x2u   /* legacy IPC only */

/* What an exporter sends to an importer (in a protocol frame; plain bytes,
 * little-endian host order is assumed: both ends are on one machine). For
 * GPU_ARENA_VMM the fd from gpu_arena_export_fd travels next to it with
 * SCM_RIGHTS; ipc[] is unused. */
typedef struct gpu_arena_handle {
    uint32_t kind;                       /* enum gpu_arena_kind */
    int32_t device;                      /* exporter's device ordinal */
    uint64_t bytes;                      /* mapped size (granularity-rounded) */
    unsigned char ipc[GPU_IPC_HANDLE_BYTES]; /* cudaIpcMemHandle_t (legacy) */
} gpu_arena_handle_t;

/* Opaque: one arena, either created here (owner) or opened from a handle
 * (importer). */
typedef struct gpu_arena gpu_arena_t;

/* Owner side. Allocate at least bytes of device memory on device, shareable
 * with other processes. The size is rounded up to the allocation granularity
 * (gpu_arena_size tells it). flags: GPU_ARENA_PREFER_VMM (default when 0) or
 * GPU_ARENA_FORCE_LEGACY. *out is owned by the caller; gpu_arena_free.
 * Makes device current on the calling thread.
 * -ENODEV, -EINVAL (bytes 0), -ENOMEM, -EIO. */
int gpu_arena_new(int device, size_t bytes, unsigned flags, gpu_arena_t **out);

/* Fill *h for sending to importers. Cheap, may be called any number of times.
 * -EINVAL on an imported arena. */
int gpu_arena_export(const gpu_arena_t *a, gpu_arena_handle_t *h);

/* VMM arenas only: a new file descriptor for the allocation, to pass with
 * SCM_RIGHTS. The caller owns it and closes it after sending. Each call makes
 * a new fd. -EOPNOTSUPP on a legacy arena, -EIO. */
int gpu_arena_export_fd(const gpu_arena_t *a);

/* Importer side. Map the arena described by h (and fd, for VMM; pass -1 for
 * legacy) into this process on h->device. read_only asks for a read-only
 * mapping; it is honoured for VMM only (gpu_arena_read_only tells what was
 * obtained). The fd is not consumed: the caller closes it after this returns.
 * Open each arena once per process and cache the gpu_arena_t (opening the
 * same legacy handle twice in one process fails in CUDA).
 * *out is owned by the caller; gpu_arena_close. -ENODEV, -EINVAL, -EIO. */
int gpu_arena_open(const gpu_arena_handle_t *h, int fd, int read_only,
                   gpu_arena_t **out);

/* Device pointer of the arena's first byte in this process's address space;
 * valid until gpu_arena_free / gpu_arena_close. */
void *gpu_arena_ptr(const gpu_arena_t *a);
size_t gpu_arena_size(const gpu_arena_t *a);
int gpu_arena_kind(const gpu_arena_t *a);       /* enum gpu_arena_kind */
int gpu_arena_read_only(const gpu_arena_t *a);  /* 1 if mapped read-only */

/* Owner: free the device memory. Importers that still map it keep their
 * mapping valid until they close (VMM); for legacy IPC the owner must not
 * free while importers map it. NULL is a no-op. */
void gpu_arena_free(gpu_arena_t *a);
/* Importer: unmap. NULL is a no-op. (Same function as gpu_arena_free; both
 * names exist so each _new/_open has its pair.) */
void gpu_arena_close(gpu_arena_t *a);

/* ---- copies ------------------------------------------------------------ */

/* Queue a copy of n bytes on stream s (NULL: default stream) and return;
 * the copy is done when the stream is synced or an event recorded after it
 * has fired. Host memory should be pinned (gpu_host_register) for the copy
 * to be asynchronous; pageable memory works but is staged by CUDA.
 * -ENODEV, -EINVAL, -EIO. */
int gpu_copy_h2d(void *dst_dev, const void *src_host, size_t n, gpu_stream_t *s);
int gpu_copy_d2h(void *dst_host, const void *src_dev, size_t n, gpu_stream_t *s);
int gpu_copy_d2d(void *dst_dev, const void *src_dev, size_t n, gpu_stream_t *s);
/* Queue zeroing n bytes of device memory at dst_dev on stream s (done as a
 * copy is). -ENODEV, -EINVAL, -EIO. */
int gpu_memset_zero(void *dst_dev, size_t n, gpu_stream_t *s);

/* ---- cross-process events ---------------------------------------------- */

/* Opaque: a cudaEvent_t created with cudaEventInterprocess |
 * cudaEventDisableTiming, owned here or opened from a handle. */
typedef struct gpu_event gpu_event_t;

/* Owner side: new interprocess event on the current device; *handle (64
 * bytes) is what importers pass to gpu_event_open. *out owned by caller;
 * gpu_event_free. -ENODEV, -EOPNOTSUPP, -EIO. */
int gpu_event_new(gpu_event_t **out, unsigned char handle[GPU_IPC_HANDLE_BYTES]);
/* Importer side: open an event from its handle. gpu_event_close. */
int gpu_event_open(const unsigned char handle[GPU_IPC_HANDLE_BYTES], gpu_event_t **out);
/* Writer: record after the copy on s. Then tell the reader (socket message). */
int gpu_event_record(gpu_event_t *e, gpu_stream_t *s);
/* Reader: make s wait on the record the writer made before its message
 * (GPU-side wait, the host does not block). */
int gpu_event_wait(gpu_event_t *e, gpu_stream_t *s);
/* Block the host until the event's last record has completed. */
int gpu_event_sync(gpu_event_t *e);
void gpu_event_free(gpu_event_t *e);            /* NULL is a no-op */
void gpu_event_close(gpu_event_t *e);           /* same, for opened events */

/* ---- host memory and pointers ------------------------------------------ */

/* Pin [ptr, ptr+bytes) for the device (cudaHostRegister, portable + mapped).
 * read_only: the range is mapped PROT_READ in this process (a client's view
 * of a memfd arena); uses cudaHostRegisterReadOnly, -EOPNOTSUPP when the
 * device lacks it. The memory stays owned by the caller, who must
 * gpu_host_unregister before unmapping it. -ENODEV, -EINVAL, -EIO. */
int gpu_host_register(void *ptr, size_t bytes, int read_only);
int gpu_host_unregister(void *ptr);

/* 1 if ptr is device (or managed) memory of this process's CUDA context, 0
 * for host memory (pinned or not), unknown pointers, or no CUDA. */
int gpu_pointer_is_device(const void *ptr);

/* ---- batched scoring ---------------------------------------------------- */

/* Opaque: a cuBLAS handle plus device scratch that grows on demand. */
typedef struct gpu_scorer gpu_scorer_t;

#define GPU_SCORE_FP16 0x1u  /* cublasGemmEx with CUBLAS_COMPUTE_32F_FAST_16F:
                                fp32 in and out, fp16 tensor-core math */

/* New scorer on device. *out owned by caller; gpu_scorer_free.
 * -ENODEV (then use gpu_score_batch with a NULL scorer), -ENOMEM, -EIO. */
int gpu_scorer_new(int device, gpu_scorer_t **out);
void gpu_scorer_free(gpu_scorer_t *sc);         /* NULL is a no-op */

/* out[i*m + j] = dot(queries[i*dim ...], candidates[j*dim ...]) for i < n,
 * j < m: row-major host arrays, n x dim, m x dim, n x m. Cosine similarity
 * when the rows are unit vectors. With a scorer: cuBLAS SGEMM (or GemmEx
 * with GPU_SCORE_FP16), synchronous. With sc == NULL: the CPU GEMM below.
 * Buffers are caller-owned. -EINVAL, -ENOMEM, -EIO. */
int gpu_score_batch(gpu_scorer_t *sc, const float *queries, size_t n,
                    const float *candidates, size_t m, size_t dim,
                    float *out, unsigned flags);

/* The CPU fallback, present in every build: same contract, no device. */
int gpu_score_cpu(const float *queries, size_t n, const float *candidates,
                  size_t m, size_t dim, float *out);

/* ---- resident matrices and batched best match -------------------------- */

/* Opaque: an embedding matrix kept on the device of a scorer, one row per
 * entry, so a batch of queries is scored against it without copying it
 * again. Row r lives at a fixed place until gpu_matrix_free; rows are set
 * and cleared one at a time. Capacity starts at GPU_MATRIX_MIN_ROWS and
 * doubles (a device-to-device copy) when a row beyond it is set.
 *
 * Scores are shifted so that cuBLAS's Isamax (max |x|) finds the highest
 * dot product: each row is stored with one extra column (1.0) and each
 * query gets one extra column (2.0), so a live row scores dot + 2 and a
 * cleared or never-set row (all zero, extra column included) scores 0.
 * Hence rows and queries should be finite unit vectors (any vectors with
 * every dot product above -2 give the exact argmax): a cleared row then
 * never wins over a live one. The matrix also keeps a host bitmap of its
 * live rows, so a cleared winner is reported as "no row".
 *
 * Device memory: capacity * (dim + 1) floats, plus the scorer's scratch
 * while gpu_score_best runs (see there). All work runs on the scorer's
 * stream; a matrix must only be used with the scorer that made it, and
 * neither is thread-safe: one thread at a time per scorer. */
typedef struct gpu_matrix gpu_matrix_t;

#define GPU_MATRIX_MIN_ROWS 256u
#define GPU_MATRIX_MAX_ROWS ((size_t)1 << 30)
#define GPU_MATRIX_NO_ROW UINT32_MAX   /* best_row when no live row */

/* New empty matrix of dim-float rows on sc's device (capacity
 * GPU_MATRIX_MIN_ROWS, all rows cleared). sc is borrowed and must outlive
 * the matrix. *out owned by the caller; gpu_matrix_free.
 * -ENODEV (no device or no CUDA build), -EINVAL (sc or out NULL, dim 0 or
 * above 1 << 20), -ENOMEM, -EIO. */
int gpu_matrix_new(gpu_scorer_t *sc, size_t dim, gpu_matrix_t **out);

/* Copy v (dim floats, caller-owned; may be reused as soon as this returns)
 * into row `row`, growing the capacity by doubling until it holds the row
 * (rows between the old capacity and `row` stay cleared). Asynchronous on
 * the scorer's stream: later gpu_score_best calls see the row.
 * -EINVAL (NULL, row >= GPU_MATRIX_MAX_ROWS), -ENOMEM (growth failed: the
 * matrix is unchanged), -EIO. */
int gpu_matrix_set_row(gpu_matrix_t *m, size_t row, const float *v);

/* Zero row `row` (extra column included): it never wins again until set.
 * A row at or beyond the capacity is already clear (0, nothing done).
 * -EINVAL (m NULL), -EIO. */
int gpu_matrix_clear_row(gpu_matrix_t *m, size_t row);

/* Rows the device memory holds now (a power of two >= GPU_MATRIX_MIN_ROWS);
 * 0 for NULL. */
size_t gpu_matrix_capacity(const gpu_matrix_t *m);
size_t gpu_matrix_dim(const gpu_matrix_t *m);

/* Frees the device memory. NULL is a no-op. */
void gpu_matrix_free(gpu_matrix_t *m);

/* For each of the n queries (row-major host array, n x dim floats, the
 * matrix's dim) the row among [0, rows) with the highest dot product:
 * best_row[i] gets it, and best_score[i] (if best_score is not NULL) its
 * dot product as the device computed it. A query whose best is a cleared
 * row (all of [0, rows) cleared, or rows == 0) gets GPU_MATRIX_NO_ROW and
 * -INFINITY. Ties go to the lower row. Everything is computed on the device:
 * the queries go up once, one SGEMM per chunk of queries into an
 * (rows x chunk) score matrix (chunks keep it near 2^25 floats, 128 MiB
 * of scratch), one cublasIsamax per query with its result left on the
 * device, and the winners come back in one copy. best_score costs one more
 * small copy per query (and a stream sync per chunk): pass NULL when the
 * caller recomputes the score itself. A chunk has at least one query, so
 * the scratch is at least rows floats. Synchronous: returns when the answers
 * are in the caller's arrays (caller-owned, n elements each).
 * flags: 0 for fp32 SGEMM, GPU_SCORE_FP16 for fp16 tensor-core math (a
 * near-tie may then pick a slightly worse row).
 * -EINVAL (NULL where n > 0, rows above the capacity, a matrix of another
 * scorer), -ENODEV, -ENOMEM (scratch), -EIO. */
int gpu_score_best(gpu_scorer_t *sc, gpu_matrix_t *m, size_t rows, const float *queries,
                   size_t n, uint32_t *best_row, float *best_score, unsigned flags);

#endif
