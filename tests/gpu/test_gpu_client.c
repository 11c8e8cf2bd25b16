/* test_gpu_client.c - the client library's device paths against the real
 * simcached, across processes:
 *
 *  - process A connects with gpu_device 0, writes a pattern into device
 *    memory and puts it with SIMCACHE_DEVICE_MEMORY (device to host, straight
 *    into the staging buffer);
 *  - process B (another process) looks it up by embedding, copies the hit to
 *    its own device memory with simcache_copy_to_device on its own stream
 *    (whole entry, then a slice at an offset), copies back and compares
 *    byte for byte; it also reports whether the arena mapping got pinned
 *    (simcache_gpu_status 2) or not (1: copies staged by CUDA);
 *  - B is SIGKILLed while holding the lease, and the daemon must reclaim it.
 *
 * CUDA must not be touched before fork(): the top process never calls CUDA;
 * a child probes. Exits 77 (skip) without a CUDA device. Takes the daemon's
 * path as argv[1] (or $SIMCACHED).
 */
#include "gpu.h"
#include "gpu_test.h"
#include "harness.h"
#include "simcache.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define DIM 64
#define MODEL "gpu-client-model"
#define FP "fp-gpu"
#define BYTES (6u << 20)
#define SEED 4711u

#define FAIL(...) do { fprintf(stderr, "[%d] ", (int)getpid()); fprintf(stderr, __VA_ARGS__); \
        fprintf(stderr, " (lib: %s; gpu: %s)\n", h ? simcache_last_error(h) : "-",           \
                gpu_last_error()); _exit(1); } while (0)

static const char *sock_path;

static simcache_t *connect_gpu(void)
{
    simcache_opts_t o;
    simcache_opts_init(&o);
    o.socket_path = sock_path;
    o.model = MODEL;
    o.layout_fingerprint = FP;
    o.dim = DIM;
    o.gpu_device = 0;
    o.timeout_ms = IT_TIMEOUT_MS;
    simcache_t *h = NULL;
    if (simcache_connect(&o, &h)) {
        fprintf(stderr, "connect: %s\n", h ? simcache_last_error(h) : "?");
        _exit(1);
    }
    return h;
}

/* A: device memory -> put. Exits 0 and writes the id to fd. */
static void writer(int fd)
{
    simcache_t *h = connect_gpu();
    char why[160];
    if (simcache_gpu_status(h, why, sizeof why) == 0) FAIL("writer: no GPU on the handle: %s", why);
    gpu_arena_t *a = NULL;
    if (gpu_arena_new(0, BYTES, GPU_ARENA_PREFER_VMM, &a)) FAIL("writer: device memory");
    uint8_t *host = malloc(BYTES);
    it_fill(host, BYTES, SEED);
    if (gpu_copy_h2d(gpu_arena_ptr(a), host, BYTES, NULL) || gpu_stream_sync(NULL))
        FAIL("writer: fill device memory");
    /* Scribble on the host copy: the put must take the device bytes. */
    memset(host, 0, BYTES);
    float e[DIM];
    it_unit(SEED, e, DIM);
    simcache_layout_t l = it_layout(BYTES);
    uint64_t id = 0;
    if (simcache_put(h, e, &l, gpu_arena_ptr(a), BYTES, SIMCACHE_DEVICE_MEMORY, &id))
        FAIL("writer: device-memory put");
    /* The host-tier bytes equal the device bytes. */
    simcache_match_t m;
    if (simcache_get(h, id, &m)) FAIL("writer: get");
    if (it_check(m.data, m.size, SEED)) FAIL("writer: host tier holds other bytes than the device");
    simcache_release(h, &m);
    if (it_write_u64(fd, id)) FAIL("writer: pipe");
    gpu_arena_free(a);
    free(host);
    simcache_close(h);
    _exit(0);
}

/* B: lookup -> copy to its device -> compare; then hold the lease and wait
 * to be killed (if hold). */
static void reader(int fd, int hold)
{
    simcache_t *h = connect_gpu();
    char why[160];
    int gs = simcache_gpu_status(h, why, sizeof why);
    if (gs == 0) FAIL("reader: no GPU on the handle: %s", why);
    fprintf(stderr, "reader: host arena %s for the device\n",
            gs == 2 ? "pinned (read-only registration)" : "NOT pinned (CUDA stages copies)");
    float e[DIM];
    it_unit(SEED, e, DIM);
    simcache_match_t m;
    if (simcache_lookup(h, e, 0.99f, &m)) FAIL("reader: lookup");
    gpu_arena_t *a = NULL;
    gpu_stream_t *s = NULL;
    if (gpu_arena_new(0, BYTES, GPU_ARENA_PREFER_VMM, &a) || gpu_stream_new(&s))
        FAIL("reader: device memory or stream");
    uint8_t *back = malloc(BYTES);
    if (simcache_copy_to_device(h, &m, 0, gpu_arena_ptr(a), BYTES, s)) FAIL("reader: copy");
    if (gpu_stream_sync(s) || gpu_copy_d2h(back, gpu_arena_ptr(a), BYTES, s) || gpu_stream_sync(s))
        FAIL("reader: copy back");
    if (it_check(back, BYTES, SEED)) FAIL("reader: device bytes differ from the entry");
    /* A slice at an offset lands at the start of dst. */
    uint64_t off = 12345, n = 1 << 20;
    if (simcache_copy_to_device(h, &m, off, gpu_arena_ptr(a), n, s) || gpu_stream_sync(s) ||
        gpu_copy_d2h(back, gpu_arena_ptr(a), n, s) || gpu_stream_sync(s))
        FAIL("reader: slice");
    if (memcmp(back, (const uint8_t *)m.data + off, n)) FAIL("reader: slice differs");
    if (simcache_copy_to_device(h, &m, BYTES - 1, gpu_arena_ptr(a), 2, s) != SIMCACHE_EINVAL)
        FAIL("reader: out-of-range copy accepted");
    if (it_write_u64(fd, m.lease)) FAIL("reader: pipe");
    if (hold) pause();
    simcache_release(h, &m);
    gpu_stream_free(s);
    gpu_arena_free(a);
    free(back);
    simcache_close(h);
    _exit(0);
}

static pid_t spawn(void (*fn)(int, int), int fd, int arg)
{
    pid_t p = fork();
    if (p == 0) fn(fd, arg);
    return p;
}

static void writer_main(int fd, int unused)
{
    (void)unused;
    writer(fd);
}

int main(int argc, char **argv)
{
    it_init(argc, argv);
    if (!gpu_device_present()) return 77;
    it_daemon_t d;
    /* No GPU tier: device puts are staged through the host (test_gpu_tier
     * covers the GPU tier). */
    if (it_daemon_start(&d, "--host-capacity", "64m", "--gpu-capacity", "0", NULL)) return 1;
    sock_path = d.sock;
    int fails = 0;
    int pf[2];
    uint64_t v = 0;

    if (pipe(pf)) return 1;
    pid_t a = spawn(writer_main, pf[1], 0);
    int rc = it_wait_pid(a, IT_TIMEOUT_MS);
    if (rc != 0 || it_read_u64(pf[0], &v, 1000)) {
        fprintf(stderr, "FAIL: device-memory put (writer exit %d)\n", rc);
        fails++;
    } else {
        printf("ok: device-memory put from process A (id %llu)\n", (unsigned long long)v);
    }

    /* B reads and exits; then B' reads, holds its lease and is killed. */
    pid_t b = spawn(reader, pf[1], 0);
    rc = it_wait_pid(b, IT_TIMEOUT_MS);
    if (rc != 0 || it_read_u64(pf[0], &v, 1000)) {
        fprintf(stderr, "FAIL: copy_to_device in process B (exit %d)\n", rc);
        fails++;
    } else {
        printf("ok: process B copied the hit to its GPU, byte-exact\n");
    }
    pid_t b2 = spawn(reader, pf[1], 1);
    if (it_read_u64(pf[0], &v, IT_TIMEOUT_MS) == 0) {
        uint64_t held = it_admin_u64(&d, "info", "leases_active");
        kill(b2, SIGKILL);
        it_wait_pid(b2, IT_TIMEOUT_MS);
        uint64_t after = held;
        for (int i = 0; i < 300 && after >= held; i++) {
            it_sleep_ms(10);
            after = it_admin_u64(&d, "info", "leases_active");
        }
        if (held < 1 || after != held - 1) {
            fprintf(stderr, "FAIL: lease of a SIGKILLed reader not reclaimed (%llu -> %llu)\n",
                    (unsigned long long)held, (unsigned long long)after);
            fails++;
        } else {
            printf("ok: SIGKILLed reader's lease reclaimed\n");
        }
    } else {
        kill(b2, SIGKILL);
        it_wait_pid(b2, IT_TIMEOUT_MS);
        fprintf(stderr, "FAIL: holding reader did not report\n");
        fails++;
    }
    close(pf[0]);
    close(pf[1]);
    if (it_daemon_stop(&d) != 0) fails++;
    it_daemon_cleanup(&d);
    return fails ? 1 : 0;
}
