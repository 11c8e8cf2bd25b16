/* bench_gpu.c - lookup batches scored on the GPU (cuBLAS) against the CPU
 * path, through the real daemon, and the raw scoring calls in process.
 *
 * 1. simcached with gpu_score_min_batch 1 is filled with N entries (default
 *    100,000 of dim 2048, workload.h's LLM-like embeddings), then the same
 *    batches of 64 queries are looked up with GPU scoring on and off
 *    (`config set gpu_score_min_batch 0` on the admin socket): batch latency
 *    of each, the ratio (target: >= 10x), whether the answers agree, and
 *    `info gpu_score_queries` to show the GPU path answered.
 * 2. In process: gpu_score_best (the resident matrix, 64 queries) against
 *    gpu_score_cpu (the CPU GEMM of gpu_ipc/, plus an argmax) and
 *    gpu_score_batch (cuBLAS, but uploading the candidates every call).
 *
 * Without a CUDA device it prints why and exits 77 (meson: skipped). The
 * daemon runs first, before this process touches CUDA (CUDA must not be
 * used in a child forked after it was initialised; the daemon is exec'd).
 * Never a test: it prints, it does not assert.
 *
 *   bench_gpu [SIMCACHED] [--entries N] [--dim D] [--batches B] [--threads T]
 *
 * --cpu-only runs part 1 without a device (both rows are then the CPU path):
 * a check of this program on machines without a GPU, not a measurement.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "gpu.h"
#include "simcache.h"
#include "workload.h"

#define MODEL "bench-gpu"
#define LAYOUT_FP "bench-gpu-layout"
#define BATCH 64
#define BLOB 256
#define THRESHOLD 0.8f

typedef struct {
    const char *simcached;
    uint64_t entries;
    uint32_t dim;
    int batches;
    int threads;
    int cpu_only;    /* no device needed: checks this program's daemon part */
} opts_t;

/* ---- the admin socket ---- */

static int admin(const char *path, const char *line, char *out, size_t n)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sun.sun_path) return -1;
    memcpy(sun.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun)) {
        if (fd >= 0) close(fd);
        return -1;
    }
    size_t len = strlen(line), got = 0;
    int rc = write(fd, line, len) == (ssize_t)len && write(fd, "\n", 1) == 1 ? 0 : -1;
    out[0] = 0;
    while (rc == 0 && got + 1 < n) {
        ssize_t k = read(fd, out + got, n - 1 - got);
        if (k <= 0) break;
        got += (size_t)k;
        out[got] = 0;
        if (out[got - 1] != '\n') continue;
        if (strstr(out, "END\n") || !strncmp(out, "OK", 2) || strstr(out, "ERROR")) break;
    }
    close(fd);
    return rc;
}

static int64_t info_u64(const char *path, const char *key)
{
    static char rep[16384];
    char pat[64];
    if (admin(path, "info", rep, sizeof rep)) return -1;
    snprintf(pat, sizeof pat, "\n%s ", key);
    const char *p = strstr(rep, pat);
    return p ? (int64_t)strtoll(p + strlen(pat), NULL, 10) : -1;
}

/* ---- fill ---- */

typedef struct {
    const char *sock;
    const wl_t *wl;
    uint32_t dim;
    uint64_t n;
    atomic_uint_fast64_t next;
    atomic_int failed;
} fill_t;

static simcache_t *open_handle(const char *sock, uint32_t dim)
{
    simcache_opts_t o;
    simcache_opts_init(&o);
    o.socket_path = sock;
    o.model = MODEL;
    o.layout_fingerprint = LAYOUT_FP;
    o.dim = dim;
    o.timeout_ms = 300000;
    simcache_t *h = NULL;
    int rc = simcache_connect(&o, &h);
    if (rc) {
        fprintf(stderr, "bench_gpu: simcache_connect: %s (%s)\n", simcache_strerror(rc),
                simcache_last_error(h));
        simcache_close(h);
        return NULL;
    }
    return h;
}

static void *fill_thread(void *arg)
{
    fill_t *f = arg;
    simcache_t *h = open_handle(f->sock, f->dim);
    float *row = malloc(f->dim * sizeof *row);
    if (!h || !row) {
        atomic_store(&f->failed, 1);
        simcache_close(h);
        free(row);
        return NULL;
    }
    static const uint8_t blob[BLOB];
    const simcache_layout_t layout = { SIMCACHE_DTYPE_I8, 1, 1, 1, BLOB, 1 };
    for (;;) {
        uint64_t i = atomic_fetch_add(&f->next, 1);
        if (i >= f->n || atomic_load(&f->failed)) break;
        wl_base(f->wl, i, row);
        uint64_t id;
        int rc = simcache_put(h, row, &layout, blob, BLOB, SIMCACHE_HOST_MEMORY, &id);
        if (rc) {
            fprintf(stderr, "bench_gpu: put of entry %" PRIu64 ": %s (%s)\n", i,
                    simcache_strerror(rc), simcache_last_error(h));
            atomic_store(&f->failed, 1);
            break;
        }
    }
    free(row);
    simcache_close(h);
    return NULL;
}

/* ---- 1: through the daemon ---- */

/* Look every batch up once; ns[b] gets its latency; ids (batches x BATCH)
 * the answers (0: miss). */
static int run_batches(simcache_t *h, const float *q, int batches, uint32_t dim, double *ns,
                       uint64_t *ids)
{
    static simcache_match_t m[BATCH];
    for (int b = 0; b < batches; b++) {
        uint64_t t0 = bench_now_ns();
        int rc = simcache_lookup_batch(h, q + (size_t)b * BATCH * dim, BATCH, THRESHOLD, m);
        ns[b] = (double)(bench_now_ns() - t0);
        if (rc < 0) {
            fprintf(stderr, "bench_gpu: lookup_batch: %s (%s)\n", simcache_strerror(rc),
                    simcache_last_error(h));
            return -1;
        }
        for (int i = 0; i < BATCH; i++) {
            ids[(size_t)b * BATCH + i] = m[i].lease ? m[i].id : 0;
            if (m[i].lease) simcache_release(h, &m[i]);
        }
    }
    return 0;
}

static int through_daemon(const opts_t *o, const wl_t *wl, const float *q)
{
    char dir[256], sock[256], adm[300], cap[32], rep[512], buf[3][32];
    if (bench_tmpdir(dir, sizeof dir)) return -1;
    snprintf(adm, sizeof adm, "%s/admin.sock", dir);
    snprintf(cap, sizeof cap, "%" PRIu64 "m", o->entries * 4096 / (1u << 20) + 256);
    const char *flags[] = { "--host-capacity", cap, "--log-level", "warn",
                            "--gpu-score-min-batch", "1", "--gpu-score-min-entries", "1",
                            "--prototype-refresh-puts", "16777216",
                            "--prototype-refresh-ms", "86400000", NULL };
    bench_proc_t d;
    if (bench_simcached_start(&d, o->simcached, dir, flags, sock, sizeof sock)) {
        bench_rm_rf(dir);
        return -1;
    }
    int rc = -1;
    simcache_t *h = NULL;
    double *ns_gpu = malloc((size_t)o->batches * sizeof(double));
    double *ns_cpu = malloc((size_t)o->batches * sizeof(double));
    uint64_t *id_gpu = malloc((size_t)o->batches * BATCH * sizeof(uint64_t));
    uint64_t *id_cpu = malloc((size_t)o->batches * BATCH * sizeof(uint64_t));
    if (!ns_gpu || !ns_cpu || !id_gpu || !id_cpu) goto out;

    if (!o->cpu_only && info_u64(adm, "gpu_score") != 1) {
        fprintf(stderr, "bench_gpu: the daemon has no GPU scorer (info gpu_score %" PRId64
                "); see its log\n", info_u64(adm, "gpu_score"));
        bench_proc_dump_log(&d);
        goto out;
    }
    fill_t f = { .sock = sock, .wl = wl, .dim = o->dim, .n = o->entries };
    uint64_t t0 = bench_now_ns();
    pthread_t th[16];
    int nth = o->threads < 1 ? 1 : o->threads > 16 ? 16 : o->threads;
    for (int i = 0; i < nth; i++) pthread_create(&th[i], NULL, fill_thread, &f);
    for (int i = 0; i < nth; i++) pthread_join(th[i], NULL);
    if (atomic_load(&f.failed)) goto out;
    printf("filled %" PRIu64 " entries of dim %u in %.1f s (%d threads); GPU mirror %" PRId64
           " rows, %" PRId64 " bytes on the device\n",
           o->entries, o->dim, (double)(bench_now_ns() - t0) / 1e9, nth,
           info_u64(adm, "gpu_score_rows"), info_u64(adm, "gpu_score_bytes"));

    h = open_handle(sock, o->dim);
    if (!h) goto out;
    /* Warm up both paths once (cuBLAS handle, scratch, page faults). */
    int64_t q0 = info_u64(adm, "gpu_score_queries");
    if (run_batches(h, q, 1, o->dim, ns_gpu, id_gpu)) goto out;
    if (run_batches(h, q, o->batches, o->dim, ns_gpu, id_gpu)) goto out;
    int64_t q1 = info_u64(adm, "gpu_score_queries");
    if (admin(adm, "config set gpu_score_min_batch 0", rep, sizeof rep) || strncmp(rep, "OK", 2)) {
        fprintf(stderr, "bench_gpu: config set gpu_score_min_batch 0: %s\n", rep);
        goto out;
    }
    if (run_batches(h, q, 1, o->dim, ns_cpu, id_cpu)) goto out;
    if (run_batches(h, q, o->batches, o->dim, ns_cpu, id_cpu)) goto out;
    int64_t q2 = info_u64(adm, "gpu_score_queries");

    size_t total = (size_t)o->batches * BATCH, same = 0, hits_gpu = 0, hits_cpu = 0;
    for (size_t i = 0; i < total; i++) {
        same += id_gpu[i] == id_cpu[i];
        hits_gpu += id_gpu[i] != 0;
        hits_cpu += id_cpu[i] != 0;
    }
    bench_stats_t sg, scs;
    bench_stats(ns_gpu, (size_t)o->batches, &sg);
    bench_stats(ns_cpu, (size_t)o->batches, &scs);
    printf("\n### Batch of %d lookups through simcached (%" PRIu64 " entries, dim %u, threshold %.2f)\n\n",
           BATCH, o->entries, o->dim, (double)THRESHOLD);
    bench_col_t cols[] = { { "path", 26, 0 }, { "p50 per batch", 14, 1 }, { "p99", 12, 1 },
                           { "hits", 8, 1 } };
    bench_table_head(stdout, cols, 4);
    char hg[32], hc[32];
    snprintf(hg, sizeof hg, "%zu/%zu", hits_gpu, total);
    snprintf(hc, sizeof hc, "%zu/%zu", hits_cpu, total);
    const char *r1[] = { "GPU (gpuscore, cuBLAS)", bench_fmt_ns(sg.p50, buf[0], 32),
                         bench_fmt_ns(sg.p99, buf[1], 32), hg };
    bench_table_row(stdout, cols, 4, r1);
    const char *r2[] = { "CPU (LSH + staged re-rank)", bench_fmt_ns(scs.p50, buf[0], 32),
                         bench_fmt_ns(scs.p99, buf[1], 32), hc };
    bench_table_row(stdout, cols, 4, r2);
    printf("\nGPU speed-up (CPU p50 / GPU p50): %s (target >= 10x)\n",
           bench_fmt_ratio(scs.p50 / sg.p50, buf[2], 32));
    printf("answers identical: %zu of %zu (the GPU searches exactly: where LSH misses the best\n"
           "match it may find one the CPU does not)\n", same, total);
    printf("queries scored on the GPU: %" PRId64 " with it on, %" PRId64 " with it off\n",
           q1 - q0, q2 - q1);
    if (o->cpu_only) printf("(--cpu-only: no device, both rows are the CPU path)\n");
    rc = 0;
out:
    simcache_close(h);
    int st = bench_proc_stop(&d);
    if (rc == 0 && st != 0) fprintf(stderr, "bench_gpu: simcached exited with %d\n", st);
    bench_rm_rf(dir);
    free(ns_gpu);
    free(ns_cpu);
    free(id_gpu);
    free(id_cpu);
    return rc;
}

/* ---- 2: the raw calls ---- */

static int raw_calls(const opts_t *o, const wl_t *wl, const float *q)
{
    size_t n = (size_t)o->entries, dim = o->dim;
    float *rows = malloc(n * dim * sizeof *rows);
    float *out = malloc((size_t)BATCH * n * sizeof *out);
    uint32_t *best = malloc(BATCH * sizeof *best);
    if (!rows || !out || !best) {
        fprintf(stderr, "bench_gpu: out of memory for the raw comparison\n");
        free(rows);
        free(out);
        free(best);
        return -1;
    }
    for (size_t i = 0; i < n; i++) wl_base(wl, i, rows + i * dim);
    gpu_scorer_t *sc = NULL;
    gpu_matrix_t *m = NULL;
    int rc = -1;
    char buf[4][32];
    if (gpu_scorer_new(0, &sc) || gpu_matrix_new(sc, dim, &m)) {
        fprintf(stderr, "bench_gpu: scorer or matrix: %s\n", gpu_last_error());
        goto out;
    }
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++)
        if (gpu_matrix_set_row(m, i, rows + i * dim)) {
            fprintf(stderr, "bench_gpu: gpu_matrix_set_row: %s\n", gpu_last_error());
            goto out;
        }
    uint32_t b0;
    gpu_score_best(sc, m, n, q, 1, &b0, NULL, 0);   /* waits for the uploads */
    double t_up = (double)(bench_now_ns() - t0);

    enum { REPS = 20 };
    double best_ns[REPS], fp16_ns[REPS], batch_ns = 0, cpu_ns;
    gpu_score_best(sc, m, n, q, BATCH, best, NULL, 0);   /* warm-up */
    for (int r = 0; r < REPS; r++) {
        uint64_t t = bench_now_ns();
        if (gpu_score_best(sc, m, n, q, BATCH, best, NULL, 0)) {
            fprintf(stderr, "bench_gpu: gpu_score_best: %s\n", gpu_last_error());
            goto out;
        }
        best_ns[r] = (double)(bench_now_ns() - t);
    }
    uint32_t best16[BATCH];
    gpu_score_best(sc, m, n, q, BATCH, best16, NULL, GPU_SCORE_FP16);
    for (int r = 0; r < REPS; r++) {
        uint64_t t = bench_now_ns();
        gpu_score_best(sc, m, n, q, BATCH, best16, NULL, GPU_SCORE_FP16);
        fp16_ns[r] = (double)(bench_now_ns() - t);
    }
    {
        uint64_t t = bench_now_ns();
        if (gpu_score_batch(sc, q, BATCH, rows, n, dim, out, 0) == 0)
            batch_ns = (double)(bench_now_ns() - t);
    }
    /* The CPU reference, once (it takes seconds): GEMM then argmax. */
    uint64_t t = bench_now_ns();
    gpu_score_cpu(q, BATCH, rows, n, dim, out);
    size_t agree = 0, agree16 = 0;
    for (size_t i = 0; i < BATCH; i++) {
        size_t arg = 0;
        for (size_t j = 1; j < n; j++)
            if (out[i * n + j] > out[i * n + arg]) arg = j;
        agree += best[i] == arg;
        agree16 += best16[i] == arg;
    }
    cpu_ns = (double)(bench_now_ns() - t);
    bench_stats_t sb, s16;
    bench_stats(best_ns, REPS, &sb);
    bench_stats(fp16_ns, REPS, &s16);
    printf("\n### In process: the best row of %d queries among %zu rows of dim %zu\n\n", BATCH, n, dim);
    printf("matrix upload (%zu rows, one h2d copy each): %s\n\n", n, bench_fmt_ns(t_up, buf[0], 32));
    bench_col_t cols[] = { { "call", 44, 0 }, { "p50", 12, 1 }, { "vs CPU", 10, 1 },
                           { "same row as CPU", 16, 1 } };
    bench_table_head(stdout, cols, 4);
    char a1[32], a2[32];
    snprintf(a1, sizeof a1, "%zu/%d", agree, BATCH);
    snprintf(a2, sizeof a2, "%zu/%d", agree16, BATCH);
    const char *r1[] = { "gpu_score_best (resident matrix, fp32)", bench_fmt_ns(sb.p50, buf[0], 32),
                         bench_fmt_ratio(cpu_ns / sb.p50, buf[1], 32), a1 };
    bench_table_row(stdout, cols, 4, r1);
    const char *r2[] = { "gpu_score_best (GPU_SCORE_FP16)", bench_fmt_ns(s16.p50, buf[0], 32),
                         bench_fmt_ratio(cpu_ns / s16.p50, buf[2], 32), a2 };
    bench_table_row(stdout, cols, 4, r2);
    const char *r3[] = { "gpu_score_batch (uploads the rows each call)",
                         batch_ns > 0 ? bench_fmt_ns(batch_ns, buf[0], 32) : "failed",
                         batch_ns > 0 ? bench_fmt_ratio(cpu_ns / batch_ns, buf[1], 32) : "-", "-" };
    bench_table_row(stdout, cols, 4, r3);
    const char *r4[] = { "gpu_score_cpu + argmax (one thread)", bench_fmt_ns(cpu_ns, buf[3], 32),
                         "1x", "-" };
    bench_table_row(stdout, cols, 4, r4);
    rc = 0;
out:
    gpu_matrix_free(m);
    gpu_scorer_free(sc);
    free(rows);
    free(out);
    free(best);
    return rc;
}

int main(int argc, char **argv)
{
    static char exe[512];
    opts_t o = { .entries = 100000, .dim = 2048, .batches = 20, .threads = 4 };
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--entries") && i + 1 < argc) o.entries = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--dim") && i + 1 < argc) o.dim = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc) o.batches = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) o.threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cpu-only")) o.cpu_only = 1;
        else if (argv[i][0] != '-') o.simcached = argv[i];
        else {
            fprintf(stderr, "usage: %s [SIMCACHED] [--entries N] [--dim D] [--batches B] [--threads T] [--cpu-only]\n",
                    argv[0]);
            return 2;
        }
    }
    if (o.entries == 0 || o.dim == 0 || o.batches < 1) return 2;
    if (!o.simcached) {
        bench_default_simcached(exe, sizeof exe);
        o.simcached = exe;
    }
    /* Probe in a child: this process must not touch CUDA before the daemon
     * is started (a fork after CUDA's initialisation may not use it). */
    fflush(NULL);
    pid_t p = fork();
    if (p == 0) {
        char why[256];
        int devs = gpu_probe(why, sizeof why);
        printf("%s\n", why);
        fflush(stdout);
        _exit(devs > 0 ? 0 : 77);
    }
    int st = 0;
    int have_gpu = p > 0 && waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!have_gpu && !o.cpu_only) {
        printf("SKIP: no CUDA device here (bench_gpu compares the GPU and CPU paths: it needs one)\n");
        return 77;
    }
    bench_print_machine(stdout);
    printf("load average at start: %.2f\n", bench_loadavg());
    wl_params_t wp;
    wl_params_default(&wp, o.dim, 42);
    wl_t *wl = wl_new(&wp);
    float *q = malloc((size_t)o.batches * BATCH * o.dim * sizeof *q);
    float *scratch = malloc(o.dim * sizeof *scratch);
    if (!wl || !q || !scratch) return 1;
    for (size_t i = 0; i < (size_t)o.batches * BATCH; i++)
        wl_query(wl, o.entries, i, q + i * o.dim, scratch, NULL);
    int rc = through_daemon(&o, wl, q);
    if (!o.cpu_only && raw_calls(&o, wl, q)) rc = -1;
    printf("\nload average at end: %.2f\n", bench_loadavg());
    wl_free(wl);
    free(q);
    free(scratch);
    return rc ? 1 : 0;
}
