/* test_gpu_host_register.c - pinning host memory: a writable buffer (the
 * daemon's host arena) and a read-only shared mapping of a memfd (a client's
 * view), copies through both, and gpu_pointer_is_device on each kind of
 * pointer. Exits 77 (skip) without a CUDA device. */
#include "gpu.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define BYTES (4u << 20)

static int failures;

#define CHECK(cond) do { if (!(cond)) { \
        fprintf(stderr, "%s:%d: CHECK failed: %s (%s)\n", __FILE__, __LINE__, #cond, gpu_last_error()); \
        failures++; } } while (0)

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)((i * 31u + seed) & 0xff);
}

/* h2d from src, d2h into a fresh buffer, compare. */
static void round_trip(void *dev, const unsigned char *src, size_t n)
{
    unsigned char *back = malloc(n);
    if (!back) abort();
    memset(back, 0, n);
    gpu_stream_t *s = NULL;
    CHECK(gpu_stream_new(&s) == 0);
    CHECK(gpu_copy_h2d(dev, src, n, s) == 0);
    CHECK(gpu_copy_d2h(back, dev, n, s) == 0);
    CHECK(gpu_stream_sync(s) == 0);
    CHECK(memcmp(back, src, n) == 0);
    gpu_stream_free(s);
    free(back);
}

int main(void)
{
    char why[256];
    if (gpu_probe(why, sizeof why) <= 0) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    printf("%s\n", why);
    CHECK(gpu_set_device(0) == 0);

    gpu_arena_t *a = NULL;
    CHECK(gpu_arena_new(0, BYTES, 0, &a) == 0);
    if (!a) return 1;
    void *dev = gpu_arena_ptr(a);
    CHECK(gpu_pointer_is_device(dev) == 1);

    /* writable host memory, registered read-write */
    unsigned char *rw = NULL;
    CHECK(posix_memalign((void **)&rw, 4096, BYTES) == 0);
    fill(rw, BYTES, 1);
    CHECK(gpu_pointer_is_device(rw) == 0);
    CHECK(gpu_host_register(rw, BYTES, 0) == 0);
    CHECK(gpu_pointer_is_device(rw) == 0);   /* pinned host is still host */
    round_trip(dev, rw, BYTES);
    CHECK(gpu_host_unregister(rw) == 0);
    free(rw);

    /* a memfd mapped read-only and shared, as a client maps a host arena */
    int fd = memfd_create("gpu-test", MFD_CLOEXEC);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, BYTES) == 0);
    unsigned char *w = mmap(NULL, BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    unsigned char *ro = mmap(NULL, BYTES, PROT_READ, MAP_SHARED, fd, 0);
    CHECK(w != MAP_FAILED && ro != MAP_FAILED);
    if (w == MAP_FAILED || ro == MAP_FAILED) return 1;
    fill(w, BYTES, 2);
    int rc = gpu_host_register(ro, BYTES, 1);
    if (rc == -EOPNOTSUPP) {
        printf("read-only registration unsupported on this device: %s\n", gpu_last_error());
    } else {
        CHECK(rc == 0);
        if (rc == 0) {
            round_trip(dev, ro, BYTES);
            CHECK(gpu_host_unregister(ro) == 0);
        }
    }
    munmap(ro, BYTES);
    munmap(w, BYTES);
    close(fd);

    /* argument checks */
    CHECK(gpu_host_register(NULL, BYTES, 0) == -EINVAL);
    CHECK(gpu_host_register(dev, 0, 0) == -EINVAL);
    CHECK(gpu_pointer_is_device(NULL) == 0);

    gpu_arena_free(a);
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    return 0;
}
