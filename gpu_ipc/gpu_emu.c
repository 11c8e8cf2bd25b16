/* gpu_emu.c - gpu.h over host memory, for tests of the code above it on
 * machines without a GPU. Never in an installed binary: meson builds it
 * only into simcached-gpuemu and the tests that drive it.
 *
 * One emulated device. "Device memory" is a memfd mapping; an arena exported
 * as GPU_ARENA_VMM passes that memfd (importers map it read-only when they
 * ask, so a stray write faults as a real read-only VMM mapping would); one
 * forced to GPU_ARENA_LEGACY_IPC carries "pid fd" in its 64 handle bytes and
 * importers open /proc/PID/fd/FD read-write (the legacy API has no read-only
 * open either). Copies are memcpy, streams and events do nothing (every
 * copy is finished when it returns).
 *
 * What it checks that CUDA would: every copy's device side must lie inside
 * an arena mapped in this process, its host side outside every one (a
 * host pointer passed as a device pointer, or the reverse, is -EINVAL).
 * What it cannot check: real IPC, driver limits, asynchrony. The gpu suite
 * on a GPU machine covers those (docs/gpu.md).
 */
#include "gpu.h"
#include "gpu_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct gpu_arena {
    int fd;                 /* owner: the memfd; importer: -1 */
    uint8_t *ptr;
    size_t bytes;
    int kind, read_only, owner;
};

struct gpu_stream { int unused; };
struct gpu_event { int unused; };
struct gpu_scorer { int unused; };

#define MAX_MAPPED 256
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static const gpu_arena_t *mapped[MAX_MAPPED];

static int reg_add(const gpu_arena_t *a)
{
    int rc = -1;
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < MAX_MAPPED; i++)
        if (!mapped[i]) {
            mapped[i] = a;
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

static void reg_del(const gpu_arena_t *a)
{
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < MAX_MAPPED; i++)
        if (mapped[i] == a) mapped[i] = NULL;
    pthread_mutex_unlock(&reg_lock);
}

/* 1 if [p, p+n) lies inside one mapped arena, 0 if it touches none, -1 if
 * it straddles an edge. */
static int on_device(const void *p, size_t n)
{
    const uint8_t *b = p;
    int rc = 0;
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < MAX_MAPPED && rc == 0; i++) {
        const gpu_arena_t *a = mapped[i];
        if (!a) continue;
        const uint8_t *lo = a->ptr, *hi = a->ptr + a->bytes;
        if (b >= lo && b + n <= hi) rc = 1;
        else if (b < hi && b + n > lo) rc = -1;
    }
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

int gpu_probe(char *why, size_t whylen)
{
    if (why && whylen) snprintf(why, whylen, "1 emulated device (host memory; tests only)");
    return 1;
}

int gpu_compiled(void) { return 1; }

int gpu_set_device(int device)
{
    if (device != 0) return gpu_fail(-ENODEV, "emulated: no device %d", device);
    return 0;
}

int gpu_stream_new(gpu_stream_t **out)
{
    if (!out) return gpu_fail(-EINVAL, "gpu_stream_new: NULL out");
    *out = calloc(1, sizeof **out);
    return *out ? 0 : gpu_fail(-ENOMEM, "gpu_stream_new: out of memory");
}
void gpu_stream_free(gpu_stream_t *s) { free(s); }
int gpu_stream_sync(gpu_stream_t *s) { (void)s; return 0; }

static int map_arena(gpu_arena_t *a, int fd, int prot)
{
    void *p = mmap(NULL, a->bytes, prot, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return gpu_fail(-ENOMEM, "emulated arena: mmap: %s", strerror(errno));
    a->ptr = p;
    if (reg_add(a)) {
        munmap(p, a->bytes);
        return gpu_fail(-ENOMEM, "emulated: over %d arenas mapped", MAX_MAPPED);
    }
    return 0;
}

int gpu_arena_new(int device, size_t bytes, unsigned flags, gpu_arena_t **out)
{
    if (!out) return gpu_fail(-EINVAL, "gpu_arena_new: NULL out");
    *out = NULL;
    if (device != 0) return gpu_fail(-ENODEV, "emulated: no device %d", device);
    if (bytes == 0) return gpu_fail(-EINVAL, "gpu_arena_new: 0 bytes");
    gpu_arena_t *a = calloc(1, sizeof *a);
    if (!a) return gpu_fail(-ENOMEM, "gpu_arena_new: out of memory");
    a->bytes = (bytes + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1);   /* VMM granularity */
    a->kind = flags & GPU_ARENA_FORCE_LEGACY ? GPU_ARENA_LEGACY_IPC : GPU_ARENA_VMM;
    a->owner = 1;
    a->fd = memfd_create("simcache-gpu-emu", MFD_CLOEXEC);
    if (a->fd < 0 || ftruncate(a->fd, (off_t)a->bytes)) {
        int e = errno;
        if (a->fd >= 0) close(a->fd);
        free(a);
        return gpu_fail(-ENOMEM, "emulated arena: %s", strerror(e));
    }
    int rc = map_arena(a, a->fd, PROT_READ | PROT_WRITE);
    if (rc) {
        close(a->fd);
        free(a);
        return rc;
    }
    *out = a;
    return 0;
}

int gpu_arena_export(const gpu_arena_t *a, gpu_arena_handle_t *h)
{
    if (!a || !h) return gpu_fail(-EINVAL, "gpu_arena_export: NULL argument");
    if (!a->owner) return gpu_fail(-EINVAL, "gpu_arena_export: an imported arena");
    memset(h, 0, sizeof *h);
    h->kind = (uint32_t)a->kind;
    h->device = 0;
    h->bytes = a->bytes;
    if (a->kind == GPU_ARENA_LEGACY_IPC)
        snprintf((char *)h->ipc, sizeof h->ipc, "%d %d", (int)getpid(), a->fd);
    return 0;
}

int gpu_arena_export_fd(const gpu_arena_t *a)
{
    if (!a || !a->owner) return gpu_fail(-EINVAL, "gpu_arena_export_fd: not an owned arena");
    if (a->kind != GPU_ARENA_VMM) return gpu_fail(-EOPNOTSUPP, "gpu_arena_export_fd: legacy arena");
    int fd = fcntl(a->fd, F_DUPFD_CLOEXEC, 0);
    return fd >= 0 ? fd : gpu_fail(-EIO, "gpu_arena_export_fd: %s", strerror(errno));
}

int gpu_arena_open(const gpu_arena_handle_t *h, int fd, int read_only, gpu_arena_t **out)
{
    if (!out) return gpu_fail(-EINVAL, "gpu_arena_open: NULL out");
    *out = NULL;
    if (!h || h->bytes == 0) return gpu_fail(-EINVAL, "gpu_arena_open: bad handle");
    if (h->device != 0) return gpu_fail(-ENODEV, "emulated: no device %d", h->device);
    gpu_arena_t *a = calloc(1, sizeof *a);
    if (!a) return gpu_fail(-ENOMEM, "gpu_arena_open: out of memory");
    a->fd = -1;
    a->bytes = h->bytes;
    a->kind = (int)h->kind;
    int mfd = -1, rc;
    if (h->kind == GPU_ARENA_VMM) {
        if (fd < 0) {
            free(a);
            return gpu_fail(-EINVAL, "gpu_arena_open: VMM handle without an fd");
        }
        a->read_only = read_only != 0;
        rc = map_arena(a, fd, a->read_only ? PROT_READ : PROT_READ | PROT_WRITE);
    } else if (h->kind == GPU_ARENA_LEGACY_IPC) {
        int pid = 0, ofd = -1;
        char path[64], ipc[GPU_IPC_HANDLE_BYTES + 1];
        memcpy(ipc, h->ipc, GPU_IPC_HANDLE_BYTES);
        ipc[GPU_IPC_HANDLE_BYTES] = 0;
        if (sscanf(ipc, "%d %d", &pid, &ofd) != 2) {
            free(a);
            return gpu_fail(-EINVAL, "gpu_arena_open: bad legacy handle");
        }
        snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, ofd);
        mfd = open(path, O_RDWR | O_CLOEXEC);
        if (mfd < 0) {
            free(a);
            return gpu_fail(-EIO, "gpu_arena_open: %s: %s", path, strerror(errno));
        }
        rc = map_arena(a, mfd, PROT_READ | PROT_WRITE);
        close(mfd);
    } else {
        free(a);
        return gpu_fail(-EINVAL, "gpu_arena_open: unknown kind %u", h->kind);
    }
    if (rc) {
        free(a);
        return rc;
    }
    *out = a;
    return 0;
}

void *gpu_arena_ptr(const gpu_arena_t *a) { return a ? a->ptr : NULL; }
size_t gpu_arena_size(const gpu_arena_t *a) { return a ? a->bytes : 0; }
int gpu_arena_kind(const gpu_arena_t *a) { return a ? a->kind : 0; }
int gpu_arena_read_only(const gpu_arena_t *a) { return a ? a->read_only : 0; }

void gpu_arena_free(gpu_arena_t *a)
{
    if (!a) return;
    reg_del(a);
    munmap(a->ptr, a->bytes);
    if (a->fd >= 0) close(a->fd);
    free(a);
}
void gpu_arena_close(gpu_arena_t *a) { gpu_arena_free(a); }

static int copy(void *dst, int dst_dev, const void *src, int src_dev, size_t n, const char *what)
{
    if (!dst || !src) return gpu_fail(-EINVAL, "%s: NULL pointer", what);
    if (n == 0) return 0;
    if (on_device(dst, n) != dst_dev)
        return gpu_fail(-EINVAL, "%s: destination %p is %s", what, dst,
                        dst_dev ? "not inside one device arena" : "device memory");
    if (on_device(src, n) != src_dev)
        return gpu_fail(-EINVAL, "%s: source %p is %s", what, src,
                        src_dev ? "not inside one device arena" : "device memory");
    memmove(dst, src, n);
    return 0;
}

int gpu_copy_h2d(void *dst, const void *src, size_t n, gpu_stream_t *s)
{
    (void)s;
    return copy(dst, 1, src, 0, n, "gpu_copy_h2d");
}
int gpu_copy_d2h(void *dst, const void *src, size_t n, gpu_stream_t *s)
{
    (void)s;
    return copy(dst, 0, src, 1, n, "gpu_copy_d2h");
}
int gpu_copy_d2d(void *dst, const void *src, size_t n, gpu_stream_t *s)
{
    (void)s;
    return copy(dst, 1, src, 1, n, "gpu_copy_d2d");
}

int gpu_memset_zero(void *dst, size_t n, gpu_stream_t *s)
{
    (void)s;
    if (!dst) return gpu_fail(-EINVAL, "gpu_memset_zero: NULL pointer");
    if (n == 0) return 0;
    if (!on_device(dst, n))
        return gpu_fail(-EINVAL, "gpu_memset_zero: %p is not inside one device arena", dst);
    memset(dst, 0, n);
    return 0;
}

int gpu_event_new(gpu_event_t **out, unsigned char handle[GPU_IPC_HANDLE_BYTES])
{
    if (!out || !handle) return gpu_fail(-EINVAL, "gpu_event_new: NULL argument");
    memset(handle, 0, GPU_IPC_HANDLE_BYTES);
    *out = calloc(1, sizeof **out);
    return *out ? 0 : gpu_fail(-ENOMEM, "gpu_event_new: out of memory");
}
int gpu_event_open(const unsigned char handle[GPU_IPC_HANDLE_BYTES], gpu_event_t **out)
{
    if (!out || !handle) return gpu_fail(-EINVAL, "gpu_event_open: NULL argument");
    *out = calloc(1, sizeof **out);
    return *out ? 0 : gpu_fail(-ENOMEM, "gpu_event_open: out of memory");
}
int gpu_event_record(gpu_event_t *e, gpu_stream_t *s) { (void)s; return e ? 0 : -EINVAL; }
int gpu_event_wait(gpu_event_t *e, gpu_stream_t *s) { (void)s; return e ? 0 : -EINVAL; }
int gpu_event_sync(gpu_event_t *e) { return e ? 0 : -EINVAL; }
void gpu_event_free(gpu_event_t *e) { free(e); }
void gpu_event_close(gpu_event_t *e) { free(e); }

int gpu_host_register(void *ptr, size_t bytes, int read_only)
{
    (void)read_only;
    if (!ptr || bytes == 0) return gpu_fail(-EINVAL, "gpu_host_register: NULL or empty range");
    if (on_device(ptr, bytes)) return gpu_fail(-EINVAL, "gpu_host_register: device memory");
    return 0;
}
int gpu_host_unregister(void *ptr) { return ptr ? 0 : gpu_fail(-EINVAL, "gpu_host_unregister: NULL"); }
int gpu_pointer_is_device(const void *ptr) { return ptr && on_device(ptr, 1) == 1; }

int gpu_scorer_new(int device, gpu_scorer_t **out)
{
    if (!out) return gpu_fail(-EINVAL, "gpu_scorer_new: NULL out");
    *out = NULL;
    (void)device;
    /* The emulated device scores on the CPU (gpu_score_batch, and the
     * resident matrices below, so the daemon's batched scoring runs). */
    *out = calloc(1, sizeof **out);
    return *out ? 0 : gpu_fail(-ENOMEM, "gpu_scorer_new: out of memory");
}
void gpu_scorer_free(gpu_scorer_t *sc) { free(sc); }

int gpu_score_batch(gpu_scorer_t *sc, const float *queries, size_t n, const float *candidates,
                    size_t m, size_t dim, float *out, unsigned flags)
{
    (void)sc;
    (void)flags;
    return gpu_score_cpu(queries, n, candidates, m, dim, out);
}

/* ---- resident matrices: host rows, a brute-force best match ---- */

struct gpu_matrix {
    gpu_scorer_t *sc;
    size_t dim, cap;
    float *v;                   /* cap x dim */
    unsigned char *live;
};

int gpu_matrix_new(gpu_scorer_t *sc, size_t dim, gpu_matrix_t **out)
{
    if (!out) return gpu_fail(-EINVAL, "gpu_matrix_new: out is NULL");
    *out = NULL;
    if (!sc || dim == 0 || dim > (1u << 20)) return gpu_fail(-EINVAL, "gpu_matrix_new: bad arguments");
    gpu_matrix_t *m = calloc(1, sizeof *m);
    if (m) {
        m->v = calloc(GPU_MATRIX_MIN_ROWS * dim, sizeof *m->v);
        m->live = calloc(GPU_MATRIX_MIN_ROWS, 1);
    }
    if (!m || !m->v || !m->live) {
        gpu_matrix_free(m);
        return gpu_fail(-ENOMEM, "gpu_matrix_new: out of memory");
    }
    m->sc = sc;
    m->dim = dim;
    m->cap = GPU_MATRIX_MIN_ROWS;
    *out = m;
    return 0;
}

void gpu_matrix_free(gpu_matrix_t *m)
{
    if (!m) return;
    free(m->v);
    free(m->live);
    free(m);
}

int gpu_matrix_set_row(gpu_matrix_t *m, size_t row, const float *v)
{
    if (!m || !v || row >= GPU_MATRIX_MAX_ROWS) return gpu_fail(-EINVAL, "gpu_matrix_set_row: bad arguments");
    if (row >= m->cap) {
        size_t cap = m->cap;
        while (cap <= row) cap *= 2;
        float *nv = calloc(cap * m->dim, sizeof *nv);
        unsigned char *nl = calloc(cap, 1);
        if (!nv || !nl) {
            free(nv);
            free(nl);
            return gpu_fail(-ENOMEM, "gpu_matrix_set_row: out of memory");
        }
        memcpy(nv, m->v, m->cap * m->dim * sizeof *nv);
        memcpy(nl, m->live, m->cap);
        free(m->v);
        free(m->live);
        m->v = nv;
        m->live = nl;
        m->cap = cap;
    }
    memcpy(m->v + row * m->dim, v, m->dim * sizeof *v);
    m->live[row] = 1;
    return 0;
}

int gpu_matrix_clear_row(gpu_matrix_t *m, size_t row)
{
    if (!m) return gpu_fail(-EINVAL, "gpu_matrix_clear_row: matrix is NULL");
    if (row < m->cap) {
        memset(m->v + row * m->dim, 0, m->dim * sizeof *m->v);
        m->live[row] = 0;
    }
    return 0;
}

size_t gpu_matrix_capacity(const gpu_matrix_t *m) { return m ? m->cap : 0; }
size_t gpu_matrix_dim(const gpu_matrix_t *m) { return m ? m->dim : 0; }

int gpu_score_best(gpu_scorer_t *sc, gpu_matrix_t *m, size_t rows, const float *queries,
                   size_t n, uint32_t *best_row, float *best_score, unsigned flags)
{
    (void)flags;
    if (!sc || !m || m->sc != sc) return gpu_fail(-EINVAL, "gpu_score_best: scorer or matrix");
    if (n == 0) return 0;
    if (!queries || !best_row || rows > m->cap) return gpu_fail(-EINVAL, "gpu_score_best: bad arguments");
    for (size_t i = 0; i < n; i++) {
        const float *q = queries + i * m->dim;
        float top = 0;
        uint32_t arg = GPU_MATRIX_NO_ROW;
        for (size_t r = 0; r < rows; r++) {
            if (!m->live[r]) continue;
            float d = 0;
            for (size_t k = 0; k < m->dim; k++) d += q[k] * m->v[r * m->dim + k];
            if (arg == GPU_MATRIX_NO_ROW || d > top) {
                top = d;
                arg = (uint32_t)r;
            }
        }
        best_row[i] = arg;
        if (best_score) best_score[i] = arg == GPU_MATRIX_NO_ROW ? -INFINITY : top;
    }
    return 0;
}
