/* gpu_internal.h - shared between gpu_cpu.c and the two backends; not for
 * callers outside gpu_ipc/. */
#ifndef SIMCACHE_GPU_INTERNAL_H
#define SIMCACHE_GPU_INTERNAL_H

/* Store a printf-style message as the thread's last error; returns code so
 * a call site can `return gpu_fail(-EINVAL, "...")`. */
int gpu_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Clear the thread's last error (start of a successful call path). */
void gpu_clear_error(void);

/* Bounds shared by both backends: n*dim etc. must not overflow size_t. */
int gpu_score_args_ok(const float *q, size_t n, const float *c, size_t m,
                      size_t dim, const float *out);

/* gpu_cuda.c: record a cudaError_t (as int) as the thread's last error;
 * returns the negative errno for it. For gpu_cublas.c. */
int gpu_cuda_fail(int cuda_error, const char *what);

#endif
