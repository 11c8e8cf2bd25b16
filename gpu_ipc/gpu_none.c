/* gpu_none.c - gpu.h for builds without CUDA: every device call answers
 * -ENODEV ("no device"), scoring runs on the CPU (gpu_cpu.c). */
#include "gpu.h"
#include "gpu_internal.h"

#include <errno.h>
#include <stdio.h>

#define NODEV() gpu_fail(-ENODEV, "%s: built without CUDA", __func__)

int gpu_probe(char *why, size_t whylen)
{
    if (why && whylen) snprintf(why, whylen, "built without CUDA (meson -Dgpu=enabled to add it)");
    return 0;
}

int gpu_compiled(void) { return 0; }

int gpu_set_device(int device) { return NODEV(); }

int gpu_stream_new(gpu_stream_t **out) { if (out) *out = NULL; return NODEV(); }
void gpu_stream_free(gpu_stream_t *s) { }
int gpu_stream_sync(gpu_stream_t *s) { return NODEV(); }

int gpu_arena_new(int device, size_t bytes, unsigned flags, gpu_arena_t **out)
{
    if (out) *out = NULL;
    return NODEV();
}
int gpu_arena_export(const gpu_arena_t *a, gpu_arena_handle_t *h) { return NODEV(); }
int gpu_arena_export_fd(const gpu_arena_t *a) { return NODEV(); }
int gpu_arena_open(const gpu_arena_handle_t *h, int fd, int read_only, gpu_arena_t **out)
{
    if (out) *out = NULL;
    return NODEV();
}
void *gpu_arena_ptr(const gpu_arena_t *a) { return NULL; }
size_t gpu_arena_size(const gpu_arena_t *a) { return 0; }
int gpu_arena_kind(const gpu_arena_t *a) { return 0; }
int gpu_arena_read_only(const gpu_arena_t *a) { return 0; }
void gpu_arena_free(gpu_arena_t *a) { }
void gpu_arena_close(gpu_arena_t *a) { }

int gpu_copy_h2d(void *dst, const void *src, size_t n, gpu_stream_t *s) { return NODEV(); }
int gpu_copy_d2h(void *dst, const void *src, size_t n, gpu_stream_t *s) { return NODEV(); }
int gpu_copy_d2d(void *dst, const void *src, size_t n, gpu_stream_t *s) { return NODEV(); }
int gpu_memset_zero(void *dst, size_t n, gpu_stream_t *s) { return NODEV(); }

int gpu_event_new(gpu_event_t **out, unsigned char handle[GPU_IPC_HANDLE_BYTES])
{
    if (out) *out = NULL;
    return NODEV();
}
int gpu_event_open(const unsigned char handle[GPU_IPC_HANDLE_BYTES], gpu_event_t **out)
{
    if (out) *out = NULL;
    return NODEV();
}
int gpu_event_record(gpu_event_t *e, gpu_stream_t *s) { return NODEV(); }
int gpu_event_wait(gpu_event_t *e, gpu_stream_t *s) { return NODEV(); }
int gpu_event_sync(gpu_event_t *e) { return NODEV(); }
void gpu_event_free(gpu_event_t *e) { }
void gpu_event_close(gpu_event_t *e) { }

int gpu_host_register(void *ptr, size_t bytes, int read_only) { return NODEV(); }
int gpu_host_unregister(void *ptr) { return NODEV(); }
int gpu_pointer_is_device(const void *ptr) { return 0; }

int gpu_scorer_new(int device, gpu_scorer_t **out)
{
    if (out) *out = NULL;
    return NODEV();
}
void gpu_scorer_free(gpu_scorer_t *sc) { }

int gpu_score_batch(gpu_scorer_t *sc, const float *queries, size_t n,
                    const float *candidates, size_t m, size_t dim,
                    float *out, unsigned flags)
{
    return gpu_score_cpu(queries, n, candidates, m, dim, out);
}

int gpu_matrix_new(gpu_scorer_t *sc, size_t dim, gpu_matrix_t **out)
{
    if (out) *out = NULL;
    return NODEV();
}
int gpu_matrix_set_row(gpu_matrix_t *m, size_t row, const float *v) { return NODEV(); }
int gpu_matrix_clear_row(gpu_matrix_t *m, size_t row) { return NODEV(); }
size_t gpu_matrix_capacity(const gpu_matrix_t *m) { return 0; }
size_t gpu_matrix_dim(const gpu_matrix_t *m) { return 0; }
void gpu_matrix_free(gpu_matrix_t *m) { }

int gpu_score_best(gpu_scorer_t *sc, gpu_matrix_t *m, size_t rows, const float *queries,
                   size_t n, uint32_t *best_row, float *best_score, unsigned flags)
{
    return NODEV();
}
