/* bench_gpu_ipc.c - the GPU tier's hand-off, against plain CUDA copies in
 * the same run (issue 5's benchmark; batched cuBLAS scoring is elsewhere):
 *
 *  1. hit latency: lookup + release of a GPU-tier entry after the arena is
 *     open (the device pointer is valid in this process, nothing copied),
 *     next to the same for a host-tier entry and a ping;
 *  2. device put bandwidth: simcache_put from device memory (two device to
 *     device copies: to the staging buffer, then into the arena) and the
 *     zero-copy simcache_put_begin_device + commit (one copy), against one
 *     plain device-to-device copy of the same size (cudaMemcpyAsync + sync);
 *  3. host-tier hit to device: simcache_copy_to_device of a host-tier match
 *     (the client's read-only pinned view of the shared arena) against a
 *     plain host-to-device copy from a pinned buffer of the same size.
 *
 * Targets (issue 5): put and host-to-device >= 80% of the plain copy.
 * Prints Markdown tables; asserts nothing. Needs a CUDA device; without one
 * it says so and exits 0. Also built over the emulated device
 * (bench_gpu_ipc_emu) to check the code runs: its figures are memcpy's and
 * mean nothing for a GPU.
 *
 * The daemon is started (fork + exec) before this process touches CUDA.
 * Usage: bench_gpu_ipc [SIMCACHED]
 */
#include "bench_util.h"
#include "gpu.h"
#include "simcache.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIM 128

static const uint64_t sizes[] = { 2u << 20, 32u << 20, 128u << 20 };
#define NSIZES (sizeof sizes / sizeof sizes[0])

static simcache_t *connect_to(const char *sock, int device, uint32_t flags)
{
    simcache_opts_t o;
    simcache_opts_init(&o);
    o.socket_path = sock;
    o.model = "bench-gpu";
    o.layout_fingerprint = "fp-bench-gpu";
    o.dim = DIM;
    o.gpu_device = device;
    o.flags = flags;
    o.timeout_ms = 60000;
    simcache_t *h = NULL;
    if (simcache_connect(&o, &h)) {
        fprintf(stderr, "connect: %s\n", h ? simcache_last_error(h) : "?");
        simcache_close(h);
        return NULL;
    }
    return h;
}

static void unit_vec(uint64_t seed, float *v)
{
    double n = 0;
    for (int i = 0; i < DIM; i++) {
        v[i] = (float)((double)(bench_mix(&seed) >> 11) / 9007199254740992.0 - 0.5);
        n += (double)v[i] * v[i];
    }
    for (int i = 0; i < DIM; i++) v[i] = (float)(v[i] / sqrt(n));
}

static simcache_layout_t layout_of(uint64_t bytes)
{
    simcache_layout_t l = { SIMCACHE_DTYPE_I8, 1, 1, 1, 1024, (uint32_t)(bytes / 1024) };
    return l;
}

static int reps_for(uint64_t size) { return size <= (2u << 20) ? 50 : size <= (32u << 20) ? 20 : 8; }

static void row(const char *what, uint64_t size, const bench_stats_t *st, const bench_stats_t *anchor)
{
    static const bench_col_t cols[] = {
        { "size", 8, 1 }, { "what", 38, 0 }, { "n", 4, 1 }, { "p50", 10, 1 }, { "p99", 10, 1 },
        { "GB/s", 7, 1 }, { "vs plain copy", 13, 1 },
    };
    char a[32], b[32], c[32], d[32], e[32], f[32];
    const char *cells[] = {
        bench_fmt_size(size, a, sizeof a), what, (snprintf(f, sizeof f, "%zu", st->n), f),
        bench_fmt_ns(st->p50, b, sizeof b), bench_fmt_ns(st->p99, c, sizeof c),
        bench_fmt_gbps(size, st->p50, d, sizeof d),
        anchor ? bench_fmt_ratio(anchor->p50 / st->p50, e, sizeof e) : "1x",
    };
    bench_table_row(stdout, cols, 7, cells);
}

static void head(void)
{
    static const bench_col_t cols[] = {
        { "size", 8, 1 }, { "what", 38, 0 }, { "n", 4, 1 }, { "p50", 10, 1 }, { "p99", 10, 1 },
        { "GB/s", 7, 1 }, { "vs plain copy", 13, 1 },
    };
    bench_table_head(stdout, cols, 7);
}

int main(int argc, char **argv)
{
    char exe[512];
    if (argc > 1) snprintf(exe, sizeof exe, "%s", argv[1]);
    else bench_default_simcached(exe, sizeof exe);
    char dir[256], sock[300];
    if (bench_tmpdir(dir, sizeof dir)) return 1;
    bench_proc_t d = { 0 };
    const char *extra[] = { "--host-capacity", "1g", "--gpu-capacity", "2g", NULL };
    if (bench_simcached_start(&d, exe, dir, extra, sock, sizeof sock)) return 1;

    char why[600];
    if (gpu_probe(why, sizeof why) <= 0) {
        printf("bench_gpu_ipc: no CUDA device (%s): nothing to measure\n", why);
        bench_proc_stop(&d);
        bench_rm_rf(dir);
        return 0;
    }
    bench_print_machine(stdout);
    printf("- GPU: %s\n- load average at start: %.2f\n\n", why, bench_loadavg());
    simcache_t *g = connect_to(sock, 0, 0), *hh = connect_to(sock, -1, 0);
    if (!g || !hh || !simcache_gpu_tier(g, why, sizeof why)) {
        fprintf(stderr, "bench_gpu_ipc: no GPU tier on the handle: %s\n", g ? why : "no connection");
        return 1;
    }
    gpu_set_device(0);
    gpu_stream_t *s = NULL;
    gpu_arena_t *src = NULL, *dst = NULL;
    uint64_t maxsz = sizes[NSIZES - 1];
    uint8_t *host = NULL;
    if (gpu_stream_new(&s) || gpu_arena_new(0, maxsz, GPU_ARENA_FORCE_LEGACY, &src) ||
        gpu_arena_new(0, maxsz, GPU_ARENA_FORCE_LEGACY, &dst) || !(host = malloc(maxsz)) ||
        gpu_host_register(host, maxsz, 0)) {
        fprintf(stderr, "bench_gpu_ipc: device buffers: %s\n", gpu_last_error());
        return 1;
    }
    bench_fill(host, maxsz, 42);
    gpu_copy_h2d(gpu_arena_ptr(src), host, maxsz, s);
    gpu_stream_sync(s);
    double *ns = calloc(4096, sizeof *ns);
    bench_stats_t st, plain;
    float e[DIM];

    /* 1. hit latency */
    printf("## Hit latency (lookup + release, %d-dim embedding, 2 MiB entry)\n\n", DIM);
    uint64_t gid = 0, hid = 0;
    simcache_layout_t l2 = layout_of(2u << 20);
    unit_vec(1, e);
    int rc = simcache_put(g, e, &l2, gpu_arena_ptr(src), 2u << 20, SIMCACHE_DEVICE_MEMORY, &gid);
    float e2[DIM];
    unit_vec(2, e2);
    rc |= simcache_put(hh, e2, &l2, host, 2u << 20, SIMCACHE_HOST_MEMORY, &hid);
    if (rc) {
        fprintf(stderr, "bench_gpu_ipc: puts: %s / %s\n", simcache_last_error(g), simcache_last_error(hh));
        return 1;
    }
    {
        static const bench_col_t cols[] = {
            { "request", 34, 0 }, { "n", 5, 1 }, { "p50", 10, 1 }, { "p99", 10, 1 },
        };
        bench_table_head(stdout, cols, 4);
        const char *names[] = { "GPU-tier hit (device pointer)", "host-tier hit (host pointer)",
                                "ping" };
        for (int k = 0; k < 3; k++) {
            int n = 2000;
            for (int i = 0; i < n; i++) {
                simcache_match_t m;
                uint64_t t0 = bench_now_ns();
                if (k == 2) simcache_ping(g);
                else if (simcache_lookup(k == 0 ? g : hh, k == 0 ? e : e2, 0.99f, &m) == 0)
                    simcache_release(k == 0 ? g : hh, &m);
                ns[i] = (double)(bench_now_ns() - t0);
            }
            bench_stats(ns, (size_t)n, &st);
            char a[32], b[32], c[32];
            const char *cells[] = { names[k], (snprintf(c, sizeof c, "%d", n), c),
                                    bench_fmt_ns(st.p50, a, sizeof a), bench_fmt_ns(st.p99, b, sizeof b) };
            bench_table_row(stdout, cols, 4, cells);
        }
        simcache_match_t m;
        if (simcache_get(g, gid, &m) == 0) {
            printf("\nGPU-tier match: tier %d, device_ptr %s\n", (int)m.tier, m.device_ptr ? "set" : "NULL");
            simcache_release(g, &m);
        }
        simcache_delete(g, gid);
        simcache_delete(hh, hid);
    }

    /* 2. device put bandwidth */
    printf("\n## Device-memory put into the GPU tier, against one plain device-to-device copy\n\n");
    head();
    for (size_t z = 0; z < NSIZES; z++) {
        uint64_t size = sizes[z];
        int n = reps_for(size);
        simcache_layout_t l = layout_of(size);
        for (int i = 0; i < n; i++) {
            uint64_t t0 = bench_now_ns();
            gpu_copy_d2d(gpu_arena_ptr(dst), gpu_arena_ptr(src), size, s);
            gpu_stream_sync(s);
            ns[i] = (double)(bench_now_ns() - t0);
        }
        bench_stats(ns, (size_t)n, &plain);
        row("plain cudaMemcpyAsync D2D + sync", size, &plain, NULL);
        for (int i = 0; i < n; i++) {
            unit_vec(1000 + z * 100 + (uint64_t)i, e);
            uint64_t id, t0 = bench_now_ns();
            if (simcache_put(g, e, &l, gpu_arena_ptr(src), size, SIMCACHE_DEVICE_MEMORY, &id)) {
                fprintf(stderr, "put: %s\n", simcache_last_error(g));
                return 1;
            }
            ns[i] = (double)(bench_now_ns() - t0);
            simcache_delete(g, id);
        }
        bench_stats(ns, (size_t)n, &st);
        row("simcache_put (device memory)", size, &st, &plain);
        for (int i = 0; i < n; i++) {
            unit_vec(5000 + z * 100 + (uint64_t)i, e);
            void *buf;
            uint64_t token, id;
            if (simcache_put_begin_device(g, size, &buf, &token)) {
                fprintf(stderr, "put_begin_device: %s\n", simcache_last_error(g));
                return 1;
            }
            /* The KV is computed into buf: that write is the caller's, not
             * the put's, so it is not timed. */
            gpu_copy_d2d(buf, gpu_arena_ptr(src), size, s);
            gpu_stream_sync(s);
            uint64_t t0 = bench_now_ns();
            if (simcache_put_commit(g, token, e, &l, NULL, &id)) {
                fprintf(stderr, "put_commit: %s\n", simcache_last_error(g));
                return 1;
            }
            ns[i] = (double)(bench_now_ns() - t0);
            simcache_delete(g, id);
        }
        bench_stats(ns, (size_t)n, &st);
        row("put_begin_device + commit (commit)", size, &st, &plain);
    }

    /* 3. host-tier hit to device */
    printf("\n## Host-tier hit copied to the client's device, against a pinned host-to-device copy\n\n");
    head();
    for (size_t z = 0; z < NSIZES; z++) {
        uint64_t size = sizes[z], id;
        int n = reps_for(size);
        simcache_layout_t l = layout_of(size);
        unit_vec(9000 + z, e);
        if (simcache_put(hh, e, &l, host, size, SIMCACHE_HOST_MEMORY, &id)) {
            fprintf(stderr, "host put: %s\n", simcache_last_error(hh));
            return 1;
        }
        for (int i = 0; i < n; i++) {
            uint64_t t0 = bench_now_ns();
            gpu_copy_h2d(gpu_arena_ptr(dst), host, size, s);
            gpu_stream_sync(s);
            ns[i] = (double)(bench_now_ns() - t0);
        }
        bench_stats(ns, (size_t)n, &plain);
        row("plain pinned cudaMemcpyAsync H2D", size, &plain, NULL);
        simcache_match_t m;
        if (simcache_get(g, id, &m) || m.tier != SIMCACHE_TIER_HOST) {
            fprintf(stderr, "get: %s (tier %d)\n", simcache_last_error(g), (int)m.tier);
            return 1;
        }
        for (int i = 0; i < n; i++) {
            uint64_t t0 = bench_now_ns();
            simcache_copy_to_device(g, &m, 0, gpu_arena_ptr(dst), size, s);
            gpu_stream_sync(s);
            ns[i] = (double)(bench_now_ns() - t0);
        }
        simcache_release(g, &m);
        bench_stats(ns, (size_t)n, &st);
        row("simcache_copy_to_device (host tier)", size, &st, &plain);
        simcache_delete(hh, id);
    }
    char gs[80];
    printf("\nclient host arena: %s\n",
           simcache_gpu_status(g, gs, sizeof gs) == 2 ? "pinned (read-only registration)" : "not pinned");
    printf("load average at end: %.2f\n", bench_loadavg());
    simcache_close(g);
    simcache_close(hh);
    gpu_host_unregister(host);
    free(host);
    free(ns);
    gpu_arena_free(src);
    gpu_arena_free(dst);
    gpu_stream_free(s);
    bench_proc_stop(&d);
    bench_rm_rf(dir);
    return 0;
}
