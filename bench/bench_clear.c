/* bench_clear.c - what clearing freed bytes (host_clear_freed) costs a put
 * and a delete, through the real daemon.
 *
 * Two simcached runs on the same machine, host_clear_freed 0 and 1, each:
 * put N blobs of S bytes (simcache_put: client staging copy, daemon copy
 * into the arena, checksum, index), then delete them (each delete zeroes S
 * bytes when clearing is on). Anchor: memcpy of S bytes in this process,
 * measured in the same run. Printed per size: put and delete medians with
 * clearing off and on, and the added delete time over one memcpy of S.
 *
 * usage: bench_clear [SIMCACHED] [--rounds R]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "simcache.h"

#define DIM 32
#define N 64

static double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void unit(uint64_t seed, float *e)
{
    double ss = 0;
    for (int i = 0; i < DIM; i++) {
        e[i] = (float)((double)(bench_mix(&seed) >> 11) * 0x1p-53 - 0.5);
        ss += (double)e[i] * e[i];
    }
    for (int i = 0; i < DIM; i++) e[i] = (float)(e[i] / __builtin_sqrt(ss));
}

/* Median microseconds of a put and of a delete of size bytes. */
static int run(const char *exe, int clear, uint64_t size, double *put_us, double *del_us)
{
    char dir[256], sock[300];
    if (bench_tmpdir(dir, sizeof dir)) return -1;
    bench_proc_t p = { 0 };
    const char *extra[] = { "--host-capacity", "512m", "--host-clear-freed", clear ? "1" : "0",
                            "--host-prefault", "1", NULL };
    if (bench_simcached_start(&p, exe, dir, extra, sock, sizeof sock)) return -1;
    simcache_opts_t o;
    simcache_opts_init(&o);
    o.socket_path = sock;
    o.model = "bench-clear";
    o.layout_fingerprint = "fp";
    o.dim = DIM;
    simcache_t *h = NULL;
    if (simcache_connect(&o, &h)) {
        bench_proc_stop(&p);
        return -1;
    }
    uint8_t *blob = malloc(size);
    bench_fill(blob, size, 7);
    simcache_layout_t l = { SIMCACHE_DTYPE_I8, 1, 1, 1, (uint32_t)(size / 256), 256 };
    double puts[N], dels[N];
    uint64_t ids[N];
    for (int round = 0; round < 2; round++) {   /* the first round warms the arena */
        for (int i = 0; i < N; i++) {
            float e[DIM];
            unit((uint64_t)round * N + (uint64_t)i + 1, e);
            uint64_t t0 = bench_now_ns();
            if (simcache_put(h, e, &l, blob, size, 0, &ids[i])) {
                fprintf(stderr, "put: %s\n", simcache_last_error(h));
                return -1;
            }
            puts[i] = (double)(bench_now_ns() - t0) / 1e3;
        }
        for (int i = 0; i < N; i++) {
            uint64_t t0 = bench_now_ns();
            if (simcache_delete(h, ids[i])) return -1;
            dels[i] = (double)(bench_now_ns() - t0) / 1e3;
        }
    }
    *put_us = median(puts, N);
    *del_us = median(dels, N);
    free(blob);
    simcache_close(h);
    bench_proc_stop(&p);
    bench_rm_rf(dir);
    return 0;
}

static double memcpy_us(uint64_t size)
{
    uint8_t *a = malloc(size), *b = malloc(size);
    bench_fill(a, size, 1);
    memset(b, 0, size);
    double t[N];
    for (int i = 0; i < N; i++) {
        uint64_t t0 = bench_now_ns();
        memcpy(b, a, size);
        __asm__ volatile("" : : "r"(b) : "memory");
        t[i] = (double)(bench_now_ns() - t0) / 1e3;
    }
    free(a);
    free(b);
    return median(t, N);
}

int main(int argc, char **argv)
{
    char exe[512];
    bench_default_simcached(exe, sizeof exe);
    int rounds = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) rounds = atoi(argv[++i]);
        else snprintf(exe, sizeof exe, "%s", argv[i]);
    }
    static const uint64_t sizes[] = { 64u << 10, 1u << 20, 4u << 20 };
    printf("| blob | memcpy (anchor) | put, clear off | put, clear on | delete, clear off | "
           "delete, clear on | delete added / memcpy |\n|---|---|---|---|---|---|---|\n");
    for (int r = 0; r < rounds; r++)
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            double p0, d0, p1, d1;
            if (run(exe, 0, sizes[k], &p0, &d0) || run(exe, 1, sizes[k], &p1, &d1)) return 1;
            double mc = memcpy_us(sizes[k]);
            printf("| %llu KiB | %.1f us | %.1f us | %.1f us | %.1f us | %.1f us | %.2f |\n",
                   (unsigned long long)(sizes[k] >> 10), mc, p0, p1, d0, d1, (d1 - d0) / mc);
            fflush(stdout);
        }
    return 0;
}
