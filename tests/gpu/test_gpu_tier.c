/* test_gpu_tier.c - the daemon's GPU tier across processes, against the real
 * simcached (GPU tier 32 MiB over a 64 MiB host tier):
 *
 *  - process A puts a pattern from its device memory: it lands in the GPU
 *    tier (admin info gpu_entries), A's get returns a device pointer whose
 *    bytes (read back device to host) are the pattern;
 *  - process B (another process, its own CUDA context) looks it up: a
 *    GPU-tier match, read byte-exact through its CUDA IPC mapping, and
 *    copied to its own device memory with simcache_copy_to_device;
 *  - process C without a device looks it up: the entry moves to the host
 *    tier (gpu_moves_to_host), its bytes exact;
 *  - process D with SIMCACHE_PREFER_DEVICE looks it up: promoted back into
 *    the GPU tier (gpu_promotions), bytes exact;
 *  - A writes 8 more 6 MiB entries (the first through the zero-copy
 *    simcache_put_begin_device) while B reads others in a loop: the GPU
 *    tier overflows, LRU entries demote to the host tier (gpu_demotions), and
 *    every read of every entry, in whichever tier, is byte-exact;
 *  - B' holds a GPU lease and is SIGKILLed: the lease and the GPU pin are
 *    reclaimed;
 *  - E begins and aborts 40 device puts of growing sizes: the daemon's
 *    device staging for it stays under twice the GPU tier (growth doubles;
 *    replaced buffers are kept while it is connected), and is given back
 *    when it leaves.
 *
 * The top process never calls CUDA (a process that touched CUDA must not use
 * it in a forked child). Exits 77 (skip) without a CUDA device. Takes the
 * daemon's path as argv[1] (or $SIMCACHED). Not yet run on a GPU.
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
#define MODEL "gpu-tier-model"
#define FP "fp-gpu-tier"
#define BYTES (6u << 20)
#define FIRST_SEED 9100u
#define MORE 8

#define FAIL(...) do { fprintf(stderr, "[%d] ", (int)getpid()); fprintf(stderr, __VA_ARGS__); \
        fprintf(stderr, " (lib: %s; gpu: %s)\n", h ? simcache_last_error(h) : "-",           \
                gpu_last_error()); _exit(1); } while (0)

static const char *sock_path;
static const it_daemon_t *daemon_of_test;

static simcache_t *connect_as(int device, uint32_t flags)
{
    simcache_opts_t o;
    simcache_opts_init(&o);
    o.socket_path = sock_path;
    o.model = MODEL;
    o.layout_fingerprint = FP;
    o.dim = DIM;
    o.gpu_device = device;
    o.flags = flags;
    o.timeout_ms = IT_TIMEOUT_MS;
    simcache_t *h = NULL;
    if (simcache_connect(&o, &h)) {
        fprintf(stderr, "connect: %s\n", h ? simcache_last_error(h) : "?");
        _exit(1);
    }
    return h;
}

/* The match's bytes, wherever they are, against the pattern of seed. */
static int match_ok(simcache_t *h, const simcache_match_t *m, uint64_t seed, uint8_t *scratch)
{
    if (m->size != BYTES) return 0;
    if (m->tier == SIMCACHE_TIER_GPU) {
        if (!m->device_ptr || m->data) return 0;
        if (gpu_copy_d2h(scratch, m->device_ptr, BYTES, NULL) || gpu_stream_sync(NULL)) return 0;
        return it_check(scratch, BYTES, seed) == 0;
    }
    (void)h;
    return m->data && !m->device_ptr && it_check(m->data, BYTES, seed) == 0;
}

static uint64_t put_from_device(simcache_t *h, uint64_t seed, gpu_arena_t *dev, uint8_t *host)
{
    it_fill(host, BYTES, seed);
    if (gpu_copy_h2d(gpu_arena_ptr(dev), host, BYTES, NULL) || gpu_stream_sync(NULL))
        FAIL("fill device memory");
    memset(host, 0, BYTES);   /* the put must take the device bytes */
    float e[DIM];
    it_unit(seed, e, DIM);
    simcache_layout_t l = it_layout(BYTES);
    uint64_t id = 0;
    if (simcache_put(h, e, &l, gpu_arena_ptr(dev), BYTES, SIMCACHE_DEVICE_MEMORY, &id))
        FAIL("device-memory put of seed %llu", (unsigned long long)seed);
    return id;
}

/* A: the first device put; its get is a GPU-tier match. */
static void writer_first(int fd, int unused)
{
    (void)unused;
    simcache_t *h = connect_as(0, 0);
    char why[600];
    if (!simcache_gpu_tier(h, why, sizeof why)) FAIL("writer: GPU tier not mapped: %s", why);
    gpu_arena_t *dev = NULL;
    if (gpu_arena_new(0, BYTES, GPU_ARENA_PREFER_VMM, &dev)) FAIL("writer: device memory");
    uint8_t *host = malloc(BYTES);
    uint64_t id = put_from_device(h, FIRST_SEED, dev, host);
    simcache_match_t m;
    if (simcache_get(h, id, &m)) FAIL("writer: get");
    if (m.tier != SIMCACHE_TIER_GPU) FAIL("writer: get answered tier %d, not GPU", (int)m.tier);
    if (!match_ok(h, &m, FIRST_SEED, host)) FAIL("writer: GPU tier holds other bytes");
    simcache_release(h, &m);
    if (it_write_u64(fd, id)) FAIL("writer: pipe");
    gpu_arena_free(dev);
    free(host);
    simcache_close(h);
    _exit(0);
}

/* B (hold 0) reads the first entry in the GPU tier through IPC and copies it
 * to its own device; B' (hold 1) then waits, lease held, to be killed. */
static void reader(int fd, int hold)
{
    /* B' asks for device placement: by then the entry may sit in the host tier. */
    simcache_t *h = connect_as(0, hold ? SIMCACHE_PREFER_DEVICE : 0);
    char why[600];
    if (!simcache_gpu_tier(h, why, sizeof why)) FAIL("reader: GPU tier not mapped: %s", why);
    float e[DIM];
    it_unit(FIRST_SEED, e, DIM);
    uint8_t *host = malloc(BYTES);
    simcache_match_t m;
    if (simcache_lookup(h, e, 0.99f, &m)) FAIL("reader: lookup");
    if (m.tier != SIMCACHE_TIER_GPU) FAIL("reader: tier %d, not GPU", (int)m.tier);
    if (!match_ok(h, &m, FIRST_SEED, host)) FAIL("reader: bytes through IPC differ");
    gpu_arena_t *dev = NULL;
    if (gpu_arena_new(0, BYTES, GPU_ARENA_PREFER_VMM, &dev)) FAIL("reader: device memory");
    if (simcache_copy_to_device(h, &m, 0, gpu_arena_ptr(dev), BYTES, NULL) ||
        gpu_stream_sync(NULL) || gpu_copy_d2h(host, gpu_arena_ptr(dev), BYTES, NULL) ||
        gpu_stream_sync(NULL))
        FAIL("reader: copy_to_device");
    if (it_check(host, BYTES, FIRST_SEED)) FAIL("reader: copied bytes differ");
    if (it_write_u64(fd, m.lease)) FAIL("reader: pipe");
    if (hold) pause();
    simcache_release(h, &m);
    gpu_arena_free(dev);
    free(host);
    simcache_close(h);
    _exit(0);
}

/* C (no device): the first entry comes to the host tier. D (prefer device):
 * it goes back to the GPU tier. */
static void mover(int fd, int prefer)
{
    simcache_t *h = prefer ? connect_as(0, SIMCACHE_PREFER_DEVICE) : connect_as(-1, 0);
    float e[DIM];
    it_unit(FIRST_SEED, e, DIM);
    uint8_t *host = malloc(BYTES);
    simcache_match_t m;
    if (simcache_lookup(h, e, 0.99f, &m)) FAIL("mover: lookup");
    simcache_tier_t want = prefer ? SIMCACHE_TIER_GPU : SIMCACHE_TIER_HOST;
    if (m.tier != want) FAIL("mover: tier %d, wanted %d", (int)m.tier, (int)want);
    if (!match_ok(h, &m, FIRST_SEED, host)) FAIL("mover: bytes differ after the move");
    simcache_release(h, &m);
    if (it_write_u64(fd, m.id)) FAIL("mover: pipe");
    free(host);
    simcache_close(h);
    _exit(0);
}

/* A again: MORE device puts (seeds FIRST_SEED+1..). */
static void writer_more(int fd, int unused)
{
    (void)unused;
    simcache_t *h = connect_as(0, 0);
    gpu_arena_t *dev = NULL;
    if (gpu_arena_new(0, BYTES, GPU_ARENA_PREFER_VMM, &dev)) FAIL("writer: device memory");
    uint8_t *host = malloc(BYTES);
    /* The first through the zero-copy device put: written straight into the
     * staging buffer; a second device put meanwhile is refused. */
    void *buf = NULL;
    uint64_t token = 0, token2 = 0, id = 0;
    void *buf2 = NULL;
    if (simcache_put_begin_device(h, BYTES, &buf, &token) || !buf) FAIL("writer: put_begin_device");
    if (simcache_put_begin_device(h, BYTES, &buf2, &token2) != SIMCACHE_ELIMIT)
        FAIL("writer: a second device put at once was not refused");
    it_fill(host, BYTES, FIRST_SEED + 1);
    if (gpu_copy_h2d(buf, host, BYTES, NULL) || gpu_stream_sync(NULL)) FAIL("writer: fill staging");
    float e[DIM];
    it_unit(FIRST_SEED + 1, e, DIM);
    simcache_layout_t l = it_layout(BYTES);
    if (simcache_put_commit(h, token, e, &l, NULL, &id)) FAIL("writer: put_commit of a device put");
    for (uint64_t i = 2; i <= MORE; i++) put_from_device(h, FIRST_SEED + i, dev, host);
    if (it_write_u64(fd, MORE)) FAIL("writer: pipe");
    gpu_arena_free(dev);
    free(host);
    simcache_close(h);
    _exit(0);
}

/* E: device puts of growing sizes, each aborted; writes the daemon's
 * gpu_staging_bytes while E is still connected. */
static void grower(int fd, int unused)
{
    (void)unused;
    simcache_t *h = connect_as(0, 0);
    for (uint64_t k = 1; k <= 40; k++) {
        void *buf = NULL;
        uint64_t token = 0;
        int rc = simcache_put_begin_device(h, k * (512u << 10), &buf, &token);
        if (rc) FAIL("grower: device put of %llu KiB: %d", (unsigned long long)k * 512, rc);
        if (simcache_put_abort(h, token)) FAIL("grower: abort");
    }
    uint64_t held = it_admin_u64(daemon_of_test, "info", "gpu_staging_bytes");
    if (it_write_u64(fd, held)) FAIL("grower: pipe");
    simcache_close(h);
    _exit(0);
}

/* B meanwhile (and after): every entry found so far reads exact, in either
 * tier. Writes the number of checked reads. */
static void checker(int fd, int rounds)
{
    simcache_t *h = connect_as(0, rounds < 0 ? SIMCACHE_PREFER_DEVICE : 0);
    uint8_t *host = malloc(BYTES);
    uint64_t reads = 0;
    int n = rounds < 0 ? -rounds : rounds;
    for (int r = 0; r < n; r++) {
        for (uint64_t i = 0; i <= MORE; i++) {
            float e[DIM];
            it_unit(FIRST_SEED + i, e, DIM);
            simcache_match_t m;
            int rc = simcache_lookup(h, e, 0.99f, &m);
            if (rc == SIMCACHE_MISS) continue;   /* not written yet */
            if (rc) FAIL("checker: lookup");
            if (!match_ok(h, &m, FIRST_SEED + i, host))
                FAIL("checker: entry %llu (tier %d) holds other bytes", (unsigned long long)m.id,
                     (int)m.tier);
            simcache_release(h, &m);
            reads++;
        }
    }
    if (it_write_u64(fd, reads)) FAIL("checker: pipe");
    free(host);
    simcache_close(h);
    _exit(0);
}

static pid_t spawn(void (*fn)(int, int), int fd, int arg)
{
    pid_t p = fork();
    if (p == 0) fn(fd, arg);
    return p;
}

static int run_child(void (*fn)(int, int), int arg, int pfd_r, int pfd_w, uint64_t *v,
                     const char *what)
{
    pid_t p = spawn(fn, pfd_w, arg);
    int rc = it_wait_pid(p, IT_TIMEOUT_MS);
    if (rc != 0 || it_read_u64(pfd_r, v, 1000)) {
        fprintf(stderr, "FAIL: %s (exit %d)\n", what, rc);
        return 1;
    }
    printf("ok: %s\n", what);
    return 0;
}

static int expect_info(const it_daemon_t *d, const char *key, uint64_t min)
{
    uint64_t v = it_admin_u64(d, "info", key);
    if (v == UINT64_MAX || v < min) {
        fprintf(stderr, "FAIL: info %s = %llu, wanted >= %llu\n", key, (unsigned long long)v,
                (unsigned long long)min);
        return 1;
    }
    printf("ok: info %s = %llu\n", key, (unsigned long long)v);
    return 0;
}

int main(int argc, char **argv)
{
    it_init(argc, argv);
    if (!gpu_device_present()) return 77;
    it_daemon_t d;
    /* SIMCACHE_TEST_GPU_IPC=legacy: the daemon shares through legacy IPC. */
    const char *ipc = getenv("SIMCACHE_TEST_GPU_IPC");
    if (it_daemon_start(&d, "--host-capacity", "64m", "--gpu-capacity", "32m", "--gpu-ipc",
                        ipc && *ipc ? ipc : "auto", NULL))
        return 1;
    sock_path = d.sock;
    daemon_of_test = &d;
    char info[8192];
    if (it_admin(&d, "info", info, sizeof info) == 0) {
        char *k = strstr(info, "gpu_ipc");
        printf("daemon: %.*s\n", k ? (int)strcspn(k, "\r\n") : 20, k ? k : "(no gpu_ipc in info)");
        if (ipc && strcmp(ipc, "legacy") == 0 && (!k || strncmp(k, "gpu_ipc legacy", 14))) {
            fprintf(stderr, "FAIL: asked for legacy IPC, info says %.20s\n", k ? k : "nothing");
            return 1;
        }
    }
    int fails = 0, pf[2];
    uint64_t v = 0;
    if (pipe(pf)) return 1;

    fails += expect_info(&d, "gpu_tier", 1);
    fails += run_child(writer_first, 0, pf[0], pf[1], &v, "device put from A lands in the GPU tier");
    fails += expect_info(&d, "gpu_entries", 1);
    fails += run_child(reader, 0, pf[0], pf[1], &v, "B reads the GPU-tier hit through CUDA IPC, byte-exact");
    fails += run_child(mover, 0, pf[0], pf[1], &v, "C without a device gets it moved to the host tier");
    fails += expect_info(&d, "gpu_moves_to_host", 1);
    /* The extent it left on the GPU was zeroed (host_clear_freed). */
    fails += expect_info(&d, "gpu_cleared_bytes", BYTES);
    fails += run_child(mover, 1, pf[0], pf[1], &v, "D with PREFER_DEVICE gets it promoted to the GPU");
    fails += expect_info(&d, "gpu_promotions", 1);

    /* A writes while B reads; then a full check and a prefer-device pass
     * that promotes the demoted entries back. */
    pid_t w = spawn(writer_more, pf[1], 0);
    pid_t c = spawn(checker, pf[1], 20);
    int rw = it_wait_pid(w, IT_TIMEOUT_MS), rcheck = it_wait_pid(c, IT_TIMEOUT_MS);
    uint64_t v1 = 0, v2 = 0;
    if (rw || rcheck || it_read_u64(pf[0], &v1, 1000) || it_read_u64(pf[0], &v2, 1000)) {
        fprintf(stderr, "FAIL: concurrent writes and reads (writer %d, checker %d)\n", rw, rcheck);
        fails++;
    } else {
        printf("ok: A wrote %d entries while B made checked reads\n", MORE);
    }
    fails += expect_info(&d, "gpu_demotions", 1);
    fails += run_child(checker, 1, pf[0], pf[1], &v, "every entry reads exact after demotions");
    if (v != MORE + 1) {
        fprintf(stderr, "FAIL: %llu of %d entries found\n", (unsigned long long)v, MORE + 1);
        fails++;
    }
    fails += run_child(checker, -1, pf[0], pf[1], &v, "promotion back to the GPU keeps bytes exact");

    /* E grows its device staging buffer 40 times. */
    fails += run_child(grower, 0, pf[0], pf[1], &v, "E's growing device puts");
    if (v == UINT64_MAX || v > 2 * (32ull << 20)) {
        fprintf(stderr, "FAIL: device staging of one client %llu bytes, over twice the tier\n",
                (unsigned long long)v);
        fails++;
    } else {
        printf("ok: one client's device staging held at %llu bytes\n", (unsigned long long)v);
    }
    uint64_t left = it_admin_u64(&d, "info", "gpu_staging_bytes");
    for (int i = 0; i < 300 && left; i++) {
        it_sleep_ms(10);
        left = it_admin_u64(&d, "info", "gpu_staging_bytes");
    }
    if (left) {
        fprintf(stderr, "FAIL: %llu device staging bytes left after every client left\n",
                (unsigned long long)left);
        fails++;
    }

    /* B' holds a GPU lease and is killed. */
    pid_t b2 = spawn(reader, pf[1], 1);
    if (it_read_u64(pf[0], &v, IT_TIMEOUT_MS) == 0) {
        uint64_t held = it_admin_u64(&d, "info", "leases_active");
        uint64_t gpinned = it_admin_u64(&d, "info", "gpu_pinned_entries");
        kill(b2, SIGKILL);
        it_wait_pid(b2, IT_TIMEOUT_MS);
        uint64_t after = held, gafter = gpinned;
        for (int i = 0; i < 300 && (after >= held || gafter); i++) {
            it_sleep_ms(10);
            after = it_admin_u64(&d, "info", "leases_active");
            gafter = it_admin_u64(&d, "info", "gpu_pinned_entries");
        }
        if (held < 1 || gpinned < 1 || after != held - 1 || gafter != 0) {
            fprintf(stderr, "FAIL: GPU lease of a SIGKILLed reader not reclaimed (leases %llu -> %llu, "
                    "gpu pinned %llu -> %llu)\n", (unsigned long long)held,
                    (unsigned long long)after, (unsigned long long)gpinned, (unsigned long long)gafter);
            fails++;
        } else {
            printf("ok: SIGKILLed reader's GPU lease reclaimed\n");
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
    if (fails) it_daemon_dump_log(&d);
    it_daemon_cleanup(&d);
    return fails ? 1 : 0;
}
