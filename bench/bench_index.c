/* bench_index.c - the similarity index through the real socket: lookup
 * latency, batched throughput, recall and memory per entry, on synthetic
 * embeddings shaped like LLM hidden states (workload.h), against FAISS in
 * process on the same vectors (faiss_anchor.h).
 *
 * The idea: fill a fresh simcached over its socket the way clients would
 * (several handles in parallel), then ask it a mix of near-duplicate,
 * hard-negative and unrelated queries whose true best match is known by
 * exact search (FAISS IndexFlatIP on the same unit vectors), so every answer
 * is scored: recall of the true best match at or above the threshold, and
 * false hits (an answer below it, which must never happen). FAISS runs the
 * same queries in this process, exact (IndexFlatIP) and hashed (IndexLSH +
 * exact re-rank of its top 64), and simcache's figures are printed as ratios
 * to theirs. Memory comes from the daemon's own accounting (admin
 * `namespaces`) and its RSS.
 *
 *   bench_index [SIMCACHED] [--simcached PATH] [--sizes LIST] [--quick]
 *               [--queries N] [--fill-threads N] [--threshold T] [--seed N]
 *               [--lsh LIST] [--csv PATH] [--daemon-arg ARG]... [--in-process]
 *
 * LIST of sizes: N:DIM items separated by commas (10k:1024,1m:1024), or
 * "all" (the default: 10k and 100k at 1024, 2048 and 4096, and 1m:1024;
 * sizes that do not fit in the available memory are skipped with a note).
 * --quick: the 10k sizes with 2048 queries. --lsh: FAISS IndexLSH variants,
 * NBITS with a "t" suffix for trained thresholds (default 256t,1024t; "none"
 * to skip). --daemon-arg passes one more flag to simcached (repeat it, e.g.
 * --daemon-arg=--index-exact-below=4096). --csv: one line per size for the plots
 * (bench/plot_index.gp; default bench_index.csv in the current directory,
 * rewritten by each run). --in-process also runs the daemon's index code
 * (cached/index.c) in this process on the same data, to split a lookup into
 * socket and search and count the candidates of each re-rank stage. Exits 0
 * whatever the targets say (a benchmark, not a test); 1 only if it could not
 * run.
 */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "faiss_anchor.h"
#include "index.h"
#include "simcache.h"
#include "workload.h"

#define MODEL "bench-index"
#define LAYOUT_FP "bench/i8/1x1x1x512"
#define BLOB 512u                 /* smallest blob worth the name; the arena rounds to 4 KiB */
#define ARENA_PER_ENTRY 4096u
#define BATCH 64
#define LSH_RERANK 64             /* IndexLSH candidates re-ranked exactly */
#define SIM_TOL 1e-5              /* "same similarity" when scoring an answer */
#define MAX_CONFIGS 16
#define MAX_LSH 4
#define MAX_DAEMON_ARGS 16
#define SIM_BANDS 4               /* recall by exact best: [t, t+.02), [t+.02, t+.05), [t+.05, t+.1), above */

static const double band_edge[SIM_BANDS] = { 0.0, 0.02, 0.05, 0.10 };

static int sim_band(double sim, float thr)
{
    int b = 0;
    while (b + 1 < SIM_BANDS && sim >= (double)thr + band_edge[b + 1]) b++;
    return b;
}

typedef struct {
    uint64_t n;
    uint32_t dim;
} size_cfg_t;

typedef struct {
    int nbits;
    int trained;
} lsh_cfg_t;

typedef struct {
    const char *simcached;
    size_cfg_t sizes[MAX_CONFIGS];
    int nsizes;
    lsh_cfg_t lsh[MAX_LSH];
    int nlsh;
    uint64_t queries;       /* 0: chosen per size */
    int fill_threads;
    float threshold;
    uint64_t seed;
    const char *csv;
    const char *daemon_args[MAX_DAEMON_ARGS];
    int ndaemon_args;
    int in_process;         /* also run cached/index.c in this process */
} opts_t;

/* FAISS IndexLSH figures of one variant. */
typedef struct {
    lsh_cfg_t cfg;
    int ok;
    uint64_t nq, pos, correct, build_ns;
    bench_stats_t lat;
    double recall;
    uint64_t code_bytes;
} lsh_res_t;

/* Everything measured for one size. */
typedef struct {
    size_cfg_t cfg;
    int ok;
    uint64_t nq;
    double gen_fill_s, fill_rate, gt_s;
    /* simcache, single lookups */
    bench_stats_t lat, lat_hit, lat_miss, ping;
    double p999;
    int passes;
    double load_before, load_after;
    /* the same index code in this process (--in-process) */
    int inproc;
    bench_stats_t ip_lat;
    double ip_add_rate, ip_recall, ip_cand, ip_coded, ip_quant, ip_exact;
    uint64_t ip_bytes, ip_recentres;
    double ip_filtered;
    double ip_add_max, ip_add_p999;    /* slowest add and p99.9, thread CPU ns */
    uint64_t ip_add_max_at;
    double lat_kind_p50[WL_NKINDS], lat_kind_p99[WL_NKINDS];
    uint64_t kind_n[WL_NKINDS], kind_pos[WL_NKINDS], kind_correct[WL_NKINDS];
    uint64_t band_pos[SIM_BANDS], band_correct[SIM_BANDS];  /* by exact best similarity */
    uint64_t pos, correct, suboptimal, false_hits, gt_disagree, neg_hits;
    double recall, max_sim_err;
    /* simcache, batches of 64 */
    double batch_qps;
    bench_stats_t batch_lat;
    uint64_t batch_mismatch;
    /* daemon */
    uint64_t index_bytes, hashed, entries;
    double filtered; /* entries past the short sign code per search */
    uint64_t rss_anon, rss_shmem;
    uint32_t exact_below;
    /* FAISS */
    bench_stats_t flat_lat;
    double flat_batch_qps;
    int flat_threads;
    lsh_res_t lsh[MAX_LSH];
    int nlsh;
} result_t;

/* ---- small helpers ---- */

static double secs(uint64_t t0)
{
    return (double)(bench_now_ns() - t0) / 1e9;
}

static const char *fmt_count(uint64_t n, char *buf, size_t len)
{
    if (n >= 1000000 && n % 1000000 == 0) snprintf(buf, len, "%" PRIu64 "M", n / 1000000);
    else if (n >= 1000 && n % 1000 == 0) snprintf(buf, len, "%" PRIu64 "k", n / 1000);
    else snprintf(buf, len, "%" PRIu64, n);
    return buf;
}

static const char *fmt_us(double ns, char *buf, size_t len)
{
    snprintf(buf, len, "%.1f", ns / 1e3);
    return buf;
}

/* p99.9 by nearest rank of samples already sorted by bench_stats. */
static double p999_sorted(const double *sorted, size_t n)
{
    if (!n) return 0;
    size_t k = (size_t)ceil(0.999 * (double)n);
    if (k < 1) k = 1;
    return sorted[k - 1];
}

static uint64_t meminfo_kib(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    uint64_t v = 0;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            v = strtoull(line + kl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* ---- admin socket ---- */

/* ---- filling the daemon ---- */

typedef struct {
    const wl_t *wl;
    const char *sock;
    float *rows;            /* n * dim: the base vectors, written here */
    uint64_t n;
    uint32_t dim;
    uint32_t *row_of_id;    /* id -> row + 1 (0: none), ids 1..id_cap */
    uint64_t id_cap;
    atomic_uint_fast64_t next;
    atomic_uint_fast64_t done;
    atomic_int failed;
    char err[512];
    pthread_mutex_t err_lock;
} fill_t;

#define FILL_CHUNK 256

static simcache_t *open_handle(const char *sock, uint32_t dim, char *err, size_t errlen)
{
    simcache_opts_t o;
    simcache_opts_init(&o);
    o.socket_path = sock;
    o.model = MODEL;
    o.layout_fingerprint = LAYOUT_FP;
    o.dim = dim;
    o.timeout_ms = 120000;
    simcache_t *h = NULL;
    int rc = simcache_connect(&o, &h);
    if (rc) {
        snprintf(err, errlen, "simcache_connect: %s (%s)", simcache_strerror(rc),
                 simcache_last_error(h));
        simcache_close(h);
        return NULL;
    }
    return h;
}

static void fill_fail(fill_t *f, const char *msg)
{
    pthread_mutex_lock(&f->err_lock);
    if (!atomic_load(&f->failed)) snprintf(f->err, sizeof f->err, "%s", msg);
    atomic_store(&f->failed, 1);
    pthread_mutex_unlock(&f->err_lock);
}

static void *fill_thread(void *arg)
{
    fill_t *f = arg;
    char err[512];
    simcache_t *h = open_handle(f->sock, f->dim, err, sizeof err);
    if (!h) {
        fill_fail(f, err);
        return NULL;
    }
    static const uint8_t blob[BLOB];
    const simcache_layout_t layout = { SIMCACHE_DTYPE_I8, 1, 1, 1, BLOB, 1 };
    while (!atomic_load(&f->failed)) {
        uint64_t i0 = atomic_fetch_add(&f->next, FILL_CHUNK);
        if (i0 >= f->n) break;
        uint64_t i1 = i0 + FILL_CHUNK < f->n ? i0 + FILL_CHUNK : f->n;
        for (uint64_t i = i0; i < i1; i++) {
            float *row = f->rows + i * f->dim;
            wl_base(f->wl, i, row);
            uint64_t id = 0;
            int rc = simcache_put(h, row, &layout, blob, BLOB, SIMCACHE_HOST_MEMORY, &id);
            if (rc) {
                snprintf(err, sizeof err, "simcache_put of entry %" PRIu64 ": %s (%s)", i,
                         simcache_strerror(rc), simcache_last_error(h));
                fill_fail(f, err);
                break;
            }
            if (id == 0 || id > f->id_cap) {
                snprintf(err, sizeof err, "id %" PRIu64 " out of the expected range 1..%" PRIu64,
                         id, f->id_cap);
                fill_fail(f, err);
                break;
            }
            f->row_of_id[id] = (uint32_t)(i + 1);
        }
        atomic_fetch_add(&f->done, i1 - i0);
    }
    simcache_close(h);
    return NULL;
}

/* ---- scoring ---- */

typedef struct {
    const float *rows;
    uint32_t dim;
    const uint32_t *row_of_id;
    uint64_t id_cap;
    float thr;
} scorer_t;

typedef enum { A_MISS, A_CORRECT, A_SUBOPT, A_FALSE, A_BADID } answer_t;

/* Score one answer against the exact best (gt_row, gt_sim: exact cosine).
 * *exact gets the exact cosine of the returned entry. */
static answer_t score(const scorer_t *s, const float *q, int hit, uint64_t id, float sim,
                      int64_t gt_row, double gt_sim, double *exact)
{
    *exact = 0;
    if (!hit) return A_MISS;
    if (id == 0 || id > s->id_cap || !s->row_of_id[id]) return A_BADID;
    uint64_t r = s->row_of_id[id] - 1;
    *exact = wl_dot(s->rows + r * s->dim, q, s->dim);
    if (sim < s->thr || *exact < (double)s->thr - SIM_TOL) return A_FALSE;
    if ((int64_t)r == gt_row || *exact >= gt_sim - SIM_TOL) return A_CORRECT;
    return A_SUBOPT;
}

/* ---- one size ---- */

static uint64_t choose_queries(const opts_t *o, const size_cfg_t *c)
{
    if (o->queries) return (o->queries + BATCH - 1) / BATCH * BATCH;
    /* Ground truth costs nq*n*dim multiply-adds (about 4e12 takes a minute
     * here with OpenBLAS); at least 4096 queries for the tail percentiles. */
    double nq = 4e12 / ((double)c->n * c->dim);
    if (nq > 10000) nq = 10000;
    if (nq < 4096) nq = 4096;
    return (uint64_t)nq / BATCH * BATCH;
}

/* 95% Wilson interval of a proportion k/n. */
static void wilson(uint64_t k, uint64_t n, double *lo, double *hi)
{
    if (!n) {
        *lo = 0;
        *hi = 1;
        return;
    }
    double z = 1.96, p = (double)k / (double)n, nn = (double)n;
    double c = (p + z * z / (2 * nn)) / (1 + z * z / nn);
    double h = z * sqrt(p * (1 - p) / nn + z * z / (4 * nn * nn)) / (1 + z * z / nn);
    *lo = c - h;
    *hi = c + h;
}

static double clampd(double x, double lo, double hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

/* The daemon's index code (cached/index.c) in this process, with the
 * daemon's parameters, on the same vectors and queries: what a search costs
 * without the socket, and how many candidates each stage of the re-rank
 * sees, which the daemon does not report. A diagnosis, not a replacement for
 * the socket figures: its seed (so its hyperplanes) differs from the
 * daemon's. */
static void in_process(result_t *res, const float *rows, uint64_t n, uint32_t d, const float *Q,
                       uint64_t nq, const int64_t *gt_row, const double *gt_sim, float thr)
{
    index_params_t ip = { .exact_below = res->exact_below };
    index_t *ix = index_new(d, 0x5eed0000u + d, &ip);
    if (!ix) {
        fprintf(stderr, "bench_index: index_new failed\n");
        return;
    }
    /* Each add timed in thread CPU time: the pause it costs the daemon's
     * thread, without the other jobs of a shared machine preempting it. */
    double *addt = bench_xmalloc(n * sizeof *addt);
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
        int rc = index_add(ix, i + 1, rows + i * d);
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
        if (rc) {
            fprintf(stderr, "bench_index: index_add of row %" PRIu64 " failed\n", i);
            free(addt);
            index_free(ix);
            return;
        }
        addt[i] = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
        if (addt[i] > res->ip_add_max) {
            res->ip_add_max = addt[i];
            res->ip_add_max_at = i + 1;
        }
    }
    res->ip_add_rate = (double)n / secs(t0);
    bench_stats_t as;
    bench_stats(addt, n, &as);  /* sorts addt */
    res->ip_add_p999 = p999_sorted(addt, n);
    free(addt);
    index_stats_t st0, st1;
    uint64_t c0, q0, e0, c1, q1, e1;
    index_get_stats(ix, &st0);
    index_get_rerank_counts(ix, &c0, &q0, &e0);
    double *lat = bench_xmalloc(nq * sizeof *lat);
    uint64_t pos = 0, correct = 0;
    for (uint64_t q = 0; q < nq; q++) {
        uint64_t id = 0;
        float sim = 0;
        uint64_t a = bench_now_ns();
        int hit = index_search(ix, Q + q * d, thr, &id, &sim);
        lat[q] = (double)(bench_now_ns() - a);
        if (gt_sim[q] >= (double)thr) {
            pos++;
            if (hit == 1 && ((int64_t)id - 1 == gt_row[q] ||
                             wl_dot(rows + (id - 1) * d, Q + q * d, d) >= gt_sim[q] - SIM_TOL))
                correct++;
        }
    }
    index_get_stats(ix, &st1);
    index_get_rerank_counts(ix, &c1, &q1, &e1);
    double ns = (double)(st1.searches - st0.searches);
    res->ip_cand = ns ? (double)(st1.candidates - st0.candidates) / ns : 0;
    res->ip_coded = ns ? (double)(c1 - c0) / ns : 0;
    res->ip_quant = ns ? (double)(q1 - q0) / ns : 0;
    res->ip_exact = ns ? (double)(e1 - e0) / ns : 0;
    res->ip_bytes = st1.bytes;
    res->ip_filtered = ns ? (double)(st1.filtered - st0.filtered) / ns : 0;
    res->ip_recentres = st1.recentres;
    res->ip_recall = pos ? (double)correct / (double)pos : 1.0;
    bench_stats(lat, nq, &res->ip_lat);
    res->inproc = 1;
    free(lat);
    index_free(ix);
    fprintf(stderr, "  in process: p50 %.1f us, p99 %.1f us, recall %.4f, %.0f candidates/query\n",
            res->ip_lat.p50 / 1e3, res->ip_lat.p99 / 1e3, res->ip_recall, res->ip_cand);
}

static int run_size(const opts_t *o, const size_cfg_t *c, result_t *res)
{
    char nb[32];
    const uint64_t n = c->n;
    const uint32_t d = c->dim;
    const float thr = o->threshold;
    memset(res, 0, sizeof *res);
    res->cfg = *c;
    fprintf(stderr, "\n== %s x %u: generating, filling simcached ==\n", fmt_count(n, nb, sizeof nb), d);

    wl_params_t wp;
    wl_params_default(&wp, d, o->seed);
    wl_t *wl = wl_new(&wp);
    if (!wl) {
        fprintf(stderr, "bench_index: out of memory (workload)\n");
        exit(1);
    }
    fa_flat_t *flat = fa_flat_new(d, n);
    if (!flat) {
        fprintf(stderr, "bench_index: %s\n", fa_last_error());
        wl_free(wl);
        return -1;
    }
    float *rows = fa_flat_rows(flat);

    /* The daemon: a fresh one per size, an arena big enough for every
     * entry's 4 KiB extent. */
    char dir[64], sock[200], cap[32];
    if (bench_tmpdir(dir, sizeof dir)) return -1;
    snprintf(cap, sizeof cap, "%" PRIu64 "m",
             (n * ARENA_PER_ENTRY + n * ARENA_PER_ENTRY / 8) / (1u << 20) + 256);
    const char *flags[12 + MAX_DAEMON_ARGS];
    int nf = 0;
    flags[nf++] = "--host-capacity";
    flags[nf++] = cap;
    flags[nf++] = "--log-level";
    flags[nf++] = "warn";
    /* No prototype refits: each one walks every entry of the store (peers.c),
     * which is not the index's cost and would stall lookups at random. */
    flags[nf++] = "--prototype-refresh-puts";
    flags[nf++] = "16777216";
    flags[nf++] = "--prototype-refresh-ms";
    flags[nf++] = "86400000";
    for (int i = 0; i < o->ndaemon_args; i++) flags[nf++] = o->daemon_args[i];
    flags[nf] = NULL;
    bench_proc_t daemon;
    if (bench_simcached_start(&daemon, o->simcached, dir, flags, sock, sizeof sock)) {
        bench_rm_rf(dir);
        fa_flat_free(flat);
        wl_free(wl);
        return -1;
    }
    int rc = -1;
    simcache_t *h = NULL;
    uint32_t *row_of_id = NULL;
    float *Q = NULL, *gt_sim_f = NULL;
    int64_t *gt_row = NULL;
    double *gt_sim = NULL;
    wl_kind_t *kind = NULL;
    char err[512];

    /* Fill: threads with a handle each; every thread makes its entries'
     * vectors straight into the FAISS rows, so generation overlaps puts. */
    fill_t f = { .wl = wl, .sock = sock, .rows = rows, .n = n, .dim = d, .id_cap = n + 16 };
    f.row_of_id = row_of_id = bench_xcalloc(n + 17, sizeof *row_of_id);
    pthread_mutex_init(&f.err_lock, NULL);
    int nt = o->fill_threads;
    pthread_t th[64];
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < nt; i++)
        if (pthread_create(&th[i], NULL, fill_thread, &f)) {
            fill_fail(&f, "pthread_create failed");
            nt = i;
            break;
        }
    uint64_t last_report = t0;
    while (atomic_load(&f.done) < n && !atomic_load(&f.failed)) {
        usleep(50000);
        if (bench_now_ns() - last_report > 10000000000ull) {
            last_report = bench_now_ns();
            uint64_t dn = atomic_load(&f.done);
            fprintf(stderr, "  filled %" PRIu64 " / %" PRIu64 " (%.0f puts/s)\n", dn, n,
                    (double)dn / secs(t0));
        }
    }
    for (int i = 0; i < nt; i++) pthread_join(th[i], NULL);
    pthread_mutex_destroy(&f.err_lock);
    if (atomic_load(&f.failed)) {
        fprintf(stderr, "bench_index: fill failed: %s\n", f.err);
        bench_proc_dump_log(&daemon);
        goto out;
    }
    res->gen_fill_s = secs(t0);
    res->fill_rate = (double)n / res->gen_fill_s;
    fprintf(stderr, "  filled %" PRIu64 " entries in %.1f s (%.0f puts/s, %d client threads)\n", n,
            res->gen_fill_s, res->fill_rate, nt);

    /* What the daemon says about its index. */
    {
        char buf[8192];
        if (bench_admin(dir, "namespaces", buf, sizeof buf) == 0) {
            res->entries = bench_field_u64(buf, "entries");
            res->index_bytes = bench_field_u64(buf, "index_bytes");
            uint64_t se = bench_field_u64(buf, "index_searches");
            res->filtered = se ? (double)bench_field_u64(buf, "index_filtered") / (double)se : 0.0;
            res->hashed = bench_field_u64(buf, "index_coded");
        }
        res->exact_below = (uint32_t)bench_config_u64(dir, "index_exact_below");
        bench_proc_rss(daemon.pid, &res->rss_anon, &res->rss_shmem);
        if (res->entries != n)
            fprintf(stderr, "bench_index: admin says %" PRIu64 " entries, expected %" PRIu64 "\n",
                    res->entries, n);
    }

    res->load_before = bench_loadavg();

    /* Queries and their exact answers. */
    uint64_t nq = choose_queries(o, c);
    res->nq = nq;
    Q = bench_xmalloc((size_t)nq * d * sizeof(float));
    kind = bench_xmalloc(nq * sizeof *kind);
    {
        float *scratch = bench_xmalloc(d * sizeof(float));
        for (uint64_t q = 0; q < nq; q++) {
            wl_query_info_t inf;
            wl_query(wl, n, q, Q + q * d, scratch, &inf);
            kind[q] = inf.kind;
        }
        free(scratch);
    }
    gt_row = bench_xmalloc(nq * sizeof *gt_row);
    gt_sim_f = bench_xmalloc(nq * sizeof *gt_sim_f);
    gt_sim = bench_xmalloc(nq * sizeof *gt_sim);
    fa_set_threads(fa_max_threads());
    t0 = bench_now_ns();
    if (fa_flat_search(flat, Q, nq, gt_row, gt_sim_f)) {
        fprintf(stderr, "bench_index: ground truth: %s\n", fa_last_error());
        goto out;
    }
    res->gt_s = secs(t0);
    for (uint64_t q = 0; q < nq; q++)
        gt_sim[q] = gt_row[q] >= 0 ? wl_dot(rows + (uint64_t)gt_row[q] * d, Q + q * d, d) : -2;
    fprintf(stderr, "  %" PRIu64 " queries, exact best by FAISS IndexFlatIP in %.1f s\n", nq, res->gt_s);

    scorer_t sc = { rows, d, row_of_id, n + 16, thr };

    /* simcache: single lookups. The first pass is scored; more passes over
     * the same queries (answers checked to match) give >= 10000 samples. */
    h = open_handle(sock, d, err, sizeof err);
    if (!h) {
        fprintf(stderr, "bench_index: %s\n", err);
        goto out;
    }
    {
        simcache_match_t m;
        for (uint64_t q = 0; q < 200 && q < nq; q++)   /* warm-up */
            if (simcache_lookup(h, Q + q * d, thr, &m) == 0) simcache_release(h, &m);
        int passes = (int)((10000 + nq - 1) / nq);
        size_t ns = 0, np = 0;
        double *ping = bench_xmalloc(nq * sizeof *ping);
        double *lat = bench_xmalloc(nq * passes * sizeof *lat);
        double *lat_k[WL_NKINDS], *lat_hit = bench_xmalloc(nq * passes * sizeof(double)),
               *lat_miss = bench_xmalloc(nq * passes * sizeof(double));
        size_t nk[WL_NKINDS] = { 0 }, nh = 0, nm = 0;
        for (int k = 0; k < WL_NKINDS; k++) lat_k[k] = bench_xmalloc(nq * passes * sizeof(double));
        uint64_t *first_id = bench_xcalloc(nq, sizeof *first_id);
        uint64_t t_pass = bench_now_ns();
        for (int pass = 0; pass < passes; pass++) {
            /* Passes after the first only add tail samples: not worth more
             * than about 30 s when lookups are slow. */
            if (pass == 1 && secs(t_pass) * (passes - 1) > 30) passes = 1;
            if (pass >= passes) break;
            for (uint64_t q = 0; q < nq; q++) {
                const float *qv = Q + q * d;
                if (pass == 0) {
                    /* A ping next to every lookup: the socket round trip
                     * under the same machine load, the floor of a lookup. */
                    uint64_t p0 = bench_now_ns();
                    if (simcache_ping(h) == 0) ping[np++] = (double)(bench_now_ns() - p0);
                }
                uint64_t a = bench_now_ns();
                int r = simcache_lookup(h, qv, thr, &m);
                uint64_t b = bench_now_ns();
                if (r < 0) {
                    fprintf(stderr, "bench_index: simcache_lookup: %s (%s)\n", simcache_strerror(r),
                            simcache_last_error(h));
                    goto lookup_fail;
                }
                double t = (double)(b - a);
                lat[ns++] = t;
                lat_k[kind[q]][nk[kind[q]]++] = t;
                if (r == 0) lat_hit[nh++] = t;
                else lat_miss[nm++] = t;
                uint64_t id = r == 0 ? m.id : 0;
                float sim = m.similarity;
                if (r == 0) simcache_release(h, &m);
                if (pass > 0) {
                    if (id != first_id[q]) res->batch_mismatch++;  /* counted with batches */
                    continue;
                }
                first_id[q] = id;
                double ex;
                answer_t ans = score(&sc, qv, r == 0, id, sim, gt_row[q], gt_sim[q], &ex);
                int pos = gt_sim[q] >= (double)thr;
                res->kind_n[kind[q]]++;
                if (pos) {
                    res->pos++;
                    res->kind_pos[kind[q]]++;
                    res->band_pos[sim_band(gt_sim[q], thr)]++;
                }
                if (r == 0 && fabs(ex - sim) > res->max_sim_err && ans != A_BADID)
                    res->max_sim_err = fabs(ex - sim);
                switch (ans) {
                case A_CORRECT:
                    if (pos) {
                        res->correct++;
                        res->kind_correct[kind[q]]++;
                        res->band_correct[sim_band(gt_sim[q], thr)]++;
                    } else {
                        res->gt_disagree++;
                    }
                    break;
                case A_SUBOPT: res->suboptimal++; break;
                case A_FALSE: res->false_hits++; break;
                case A_BADID:
                    fprintf(stderr, "bench_index: lookup returned unknown id %" PRIu64 "\n", id);
                    res->false_hits++;
                    break;
                case A_MISS: break;
                }
                if (r == 0 && !pos) res->neg_hits++;
            }
        }
        res->passes = passes;
        bench_stats(ping, np, &res->ping);
        bench_stats(lat, ns, &res->lat);
        res->p999 = p999_sorted(lat, ns);
        bench_stats(lat_hit, nh, &res->lat_hit);
        bench_stats(lat_miss, nm, &res->lat_miss);
        for (int k = 0; k < WL_NKINDS; k++) {
            bench_stats_t s;
            bench_stats(lat_k[k], nk[k], &s);
            res->lat_kind_p50[k] = s.p50;
            res->lat_kind_p99[k] = s.p99;
        }
        res->recall = res->pos ? (double)res->correct / (double)res->pos : 1.0;

        /* Batches of 64: the lookups are timed, the releases of the hits
         * (one round trip each) are not. */
        simcache_match_t *mb = bench_xmalloc(BATCH * sizeof *mb);
        size_t nb_ = nq / BATCH;
        double *blat = bench_xmalloc(nb_ * sizeof *blat);
        uint64_t tsum = 0;
        for (size_t b = 0; b < nb_; b++) {
            uint64_t a = bench_now_ns();
            int r = simcache_lookup_batch(h, Q + b * BATCH * d, BATCH, thr, mb);
            uint64_t e = bench_now_ns();
            if (r < 0) {
                fprintf(stderr, "bench_index: simcache_lookup_batch: %s (%s)\n",
                        simcache_strerror(r), simcache_last_error(h));
                free(mb);
                free(blat);
                goto lookup_fail;
            }
            tsum += e - a;
            blat[b] = (double)(e - a);
            for (int i = 0; i < BATCH; i++) {
                uint64_t id = mb[i].lease ? mb[i].id : 0;
                if (id != first_id[b * BATCH + i]) res->batch_mismatch++;
                if (mb[i].lease) simcache_release(h, &mb[i]);
            }
        }
        res->batch_qps = tsum ? (double)(nb_ * BATCH) / ((double)tsum / 1e9) : 0;
        bench_stats(blat, nb_, &res->batch_lat);
        free(mb);
        free(blat);
        res->ok = 1;
    lookup_fail:
        free(ping);
        free(lat);
        free(lat_hit);
        free(lat_miss);
        for (int k = 0; k < WL_NKINDS; k++) free(lat_k[k]);
        free(first_id);
    }
    if (!res->ok) goto out;
    fprintf(stderr, "  simcache: p50 %.1f us, p99 %.1f us, recall %.4f, batch %.0f lookups/s\n",
            res->lat.p50 / 1e3, res->lat.p99 / 1e3, res->recall, res->batch_qps);

    /* The daemon is no longer needed: stop it before FAISS builds its
     * indexes, so both never hold their memory at once. */
    simcache_close(h);
    h = NULL;
    bench_proc_stop(&daemon);

    if (o->in_process) in_process(res, rows, n, d, Q, nq, gt_row, gt_sim, thr);

    /* FAISS IndexFlatIP: single queries on one thread (a single query is one
     * scan in FAISS anyway), batches of 64 on every core (BLAS). */
    {
        size_t nf1 = (size_t)clampd(1e10 / ((double)n * d), 20, 500);
        if (nf1 > nq) nf1 = nq;
        double *lat = bench_xmalloc(nf1 * sizeof *lat);
        int64_t b1;
        float s1;
        fa_set_threads(1);
        fa_flat_search(flat, Q, 1, &b1, &s1);   /* warm-up */
        size_t differ = 0;
        for (size_t q = 0; q < nf1; q++) {
            uint64_t a = bench_now_ns();
            fa_flat_search(flat, Q + q * d, 1, &b1, &s1);
            lat[q] = (double)(bench_now_ns() - a);
            differ += b1 != gt_row[q] && fabs(s1 - gt_sim[q]) > SIM_TOL;
        }
        if (differ)
            fprintf(stderr, "  note: FAISS single-query and batched answers differ on %zu queries\n",
                    differ);
        bench_stats(lat, nf1, &res->flat_lat);
        free(lat);
        fa_set_threads(fa_max_threads());
        res->flat_threads = fa_max_threads();
        size_t nfb = (size_t)clampd(1.5e11 / (64.0 * n * d), 3, 50);
        if (nfb > nq / BATCH) nfb = nq / BATCH;
        int64_t bb[BATCH];
        float sb[BATCH];
        uint64_t a = bench_now_ns();
        for (size_t b = 0; b < nfb; b++) fa_flat_search(flat, Q + b * BATCH * d, BATCH, bb, sb);
        res->flat_batch_qps = (double)(nfb * BATCH) / secs(a);
        fprintf(stderr, "  FAISS IndexFlatIP: p50 %.2f ms (%zu single queries), batch %.0f q/s\n",
                res->flat_lat.p50 / 1e6, nf1, res->flat_batch_qps);
    }

    /* FAISS IndexLSH + exact re-rank of its top 64, one thread. */
    res->nlsh = o->nlsh;
    for (int v = 0; v < o->nlsh; v++) {
        lsh_res_t *L = &res->lsh[v];
        L->cfg = o->lsh[v];
        fa_set_threads(fa_max_threads());
        uint64_t a = bench_now_ns();
        fa_lsh_t *lsh = fa_lsh_new(flat, L->cfg.nbits, L->cfg.trained, 20000);
        if (!lsh) {
            fprintf(stderr, "bench_index: IndexLSH %d: %s\n", L->cfg.nbits, fa_last_error());
            continue;
        }
        L->build_ns = bench_now_ns() - a;
        L->code_bytes = fa_lsh_code_bytes(lsh);
        fa_set_threads(1);
        size_t nl = (size_t)clampd(2e10 / ((double)n * L->cfg.nbits), 200, (double)nq);
        double *lat = bench_xmalloc(nl * sizeof *lat);
        int64_t b1;
        float s1;
        fa_lsh_best(lsh, Q, LSH_RERANK, &b1, &s1);   /* warm-up */
        for (size_t q = 0; q < nl; q++) {
            uint64_t t = bench_now_ns();
            fa_lsh_best(lsh, Q + q * d, LSH_RERANK, &b1, &s1);
            lat[q] = (double)(bench_now_ns() - t);
            if (gt_sim[q] >= (double)thr) {
                L->pos++;
                if (b1 >= 0 && s1 >= thr &&
                    (b1 == gt_row[q] || wl_dot(rows + (uint64_t)b1 * d, Q + q * d, d) >= gt_sim[q] - SIM_TOL))
                    L->correct++;
            }
        }
        L->nq = nl;
        bench_stats(lat, nl, &L->lat);
        free(lat);
        L->recall = L->pos ? (double)L->correct / (double)L->pos : 1.0;
        L->ok = 1;
        fa_lsh_free(lsh);
        fprintf(stderr, "  FAISS IndexLSH %d%s: p50 %.2f ms, recall %.4f (%zu queries, built in %.1f s)\n",
                L->cfg.nbits, L->cfg.trained ? "t" : "", L->lat.p50 / 1e6, L->recall, nl,
                (double)L->build_ns / 1e9);
    }
    fa_set_threads(fa_max_threads());
    res->load_after = bench_loadavg();
    rc = 0;
out:
    if (h) simcache_close(h);
    bench_proc_stop(&daemon);
    bench_rm_rf(dir);
    free(row_of_id);
    free(Q);
    free(kind);
    free(gt_row);
    free(gt_sim_f);
    free(gt_sim);
    fa_flat_free(flat);
    wl_free(wl);
    return rc;
}

/* ---- printing ---- */

static const char *lsh_name(const lsh_cfg_t *l, char *buf, size_t n)
{
    snprintf(buf, n, "IndexLSH %d%s", l->nbits, l->trained ? " (trained thresholds)" : "");
    return buf;
}

static void print_size(FILE *o, const opts_t *op, const result_t *r)
{
    char a[64], b[64], c[64], e[64], g[64], nb[32];
    const uint64_t n = r->cfg.n;
    const uint32_t d = r->cfg.dim;
    fprintf(o, "\n### %s entries x dim %u\n\n", fmt_count(n, nb, sizeof nb), d);
    fprintf(o, "filled over the socket in %.1f s (%.0f puts/s, %d client threads); %" PRIu64
            " queries (%" PRIu64 " near-dup, %" PRIu64 " hard-neg, %" PRIu64 " unrelated), %" PRIu64
            " with an exact best >= %.2f; ground truth %.1f s\n",
            r->gen_fill_s, r->fill_rate, op->fill_threads, r->nq, r->kind_n[WL_NEAR],
            r->kind_n[WL_HARD], r->kind_n[WL_UNRELATED], r->pos, (double)op->threshold, r->gt_s);
    char eb[32];
    if (r->exact_below) snprintf(eb, sizeof eb, "%u entries", r->exact_below);
    else snprintf(eb, sizeof eb, "the default");
    fprintf(o, "index (daemon config): staged scan of compact codes, exact below %s, "
            "codes on %" PRIu64 "\n\n", eb, r->hashed);

    static const bench_col_t cols[] = {
        { "what", 40, 0 }, { "p50 us", 9, 1 }, { "p99 us", 9, 1 }, { "p99.9 us", 9, 1 },
        { "batch-64 q/s", 12, 1 }, { "recall", 7, 1 }, { "queries", 7, 1 },
        { "p50 vs simcache", 15, 1 },
    };
    bench_table_head(o, cols, 8);
    char q1[32];
    snprintf(q1, sizeof q1, "%.0f", r->batch_qps);
    snprintf(a, sizeof a, "%.4f", r->recall);
    snprintf(b, sizeof b, "%" PRIu64, r->nq);
    const char *row[8] = { "simcache lookup over the socket", fmt_us(r->lat.p50, c, sizeof c),
                           fmt_us(r->lat.p99, e, sizeof e), fmt_us(r->p999, g, sizeof g), q1, a, b,
                           "1.00x" };
    bench_table_row(o, cols, 8, row);
    char fl1[32], fl2[32], fl3[32], fq[32], fr[32], fn[32];
    snprintf(fq, sizeof fq, "%.0f", r->flat_batch_qps);
    snprintf(fn, sizeof fn, "%zu", r->flat_lat.n);
    bench_fmt_ratio(r->flat_lat.p50 / r->lat.p50, fr, sizeof fr);
    const char *row2[8] = { "FAISS IndexFlatIP (exact), in process", fmt_us(r->flat_lat.p50, fl1, sizeof fl1),
                            fmt_us(r->flat_lat.p99, fl2, sizeof fl2), "-", fq, "1 (exact)", fn, fr };
    (void)fl3;
    bench_table_row(o, cols, 8, row2);
    for (int v = 0; v < r->nlsh; v++) {
        const lsh_res_t *L = &r->lsh[v];
        if (!L->ok) continue;
        char nm[96], l1[32], l2[32], rc_[32], nn[32], rr[32];
        snprintf(nm, sizeof nm, "FAISS %s + top-%d re-rank", lsh_name(&L->cfg, a, sizeof a), LSH_RERANK);
        snprintf(rc_, sizeof rc_, "%.4f", L->recall);
        snprintf(nn, sizeof nn, "%" PRIu64, L->nq);
        bench_fmt_ratio(L->lat.p50 / r->lat.p50, rr, sizeof rr);
        const char *row3[8] = { nm, fmt_us(L->lat.p50, l1, sizeof l1), fmt_us(L->lat.p99, l2, sizeof l2),
                                "-", "-", rc_, nn, rr };
        bench_table_row(o, cols, 8, row3);
    }
    fprintf(o, "\nsimcache by query kind (p50 / p99 us, recall): ");
    for (int k = 0; k < WL_NKINDS; k++) {
        double rk = r->kind_pos[k] ? (double)r->kind_correct[k] / (double)r->kind_pos[k] : NAN;
        fprintf(o, "%s%s %.1f / %.1f", k ? "; " : "", wl_kind_name((wl_kind_t)k),
                r->lat_kind_p50[k] / 1e3, r->lat_kind_p99[k] / 1e3);
        if (r->kind_pos[k]) fprintf(o, ", %.4f of %" PRIu64, rk, r->kind_pos[k]);
    }
    fprintf(o, "\nhits p50/p99 %.1f/%.1f us, misses %.1f/%.1f us; batch of 64: p50 %.2f ms; "
            "%d pass%s over the queries\n",
            r->lat_hit.p50 / 1e3, r->lat_hit.p99 / 1e3, r->lat_miss.p50 / 1e3, r->lat_miss.p99 / 1e3,
            r->batch_lat.p50 / 1e6, r->passes, r->passes == 1 ? "" : "es");
    fprintf(o, "socket floor: ping p50/p99 %.1f/%.1f us (one next to each lookup of the first pass); "
            "load average %.2f before this size, %.2f after\n",
            r->ping.p50 / 1e3, r->ping.p99 / 1e3, r->load_before, r->load_after);
    if (r->inproc)
        fprintf(o, "in process (cached/index.c, no socket): p50/p99 %.1f/%.1f us, recall %.4f; per "
                "query %.0f entries scanned by their short code, %.0f past it, %.0f int8 scores, "
                "%.1f exact dot products; index_add "
                "%.0f/s, p99.9 %.2f ms, slowest %.1f ms (add %" PRIu64 ", thread CPU time); %" PRIu64
                " re-centrings\n",
                r->ip_lat.p50 / 1e3, r->ip_lat.p99 / 1e3, r->ip_recall, r->ip_coded, r->ip_filtered,
                r->ip_quant, r->ip_exact, r->ip_add_rate, r->ip_add_p999 / 1e6, r->ip_add_max / 1e6,
                r->ip_add_max_at, r->ip_recentres);
    double rlo, rhi;
    wilson(r->correct, r->pos, &rlo, &rhi);
    fprintf(o, "recall 95%% interval %.4f to %.4f; by the exact best similarity:", rlo, rhi);
    for (int k = 0; k < SIM_BANDS; k++) {
        double lo = (double)op->threshold + band_edge[k];
        if (k + 1 < SIM_BANDS)
            fprintf(o, "%s [%.2f, %.2f) %.4f of %" PRIu64, k ? ";" : "", lo,
                    (double)op->threshold + band_edge[k + 1],
                    r->band_pos[k] ? (double)r->band_correct[k] / (double)r->band_pos[k] : NAN,
                    r->band_pos[k]);
        else
            fprintf(o, "; >= %.2f %.4f of %" PRIu64, lo,
                    r->band_pos[k] ? (double)r->band_correct[k] / (double)r->band_pos[k] : NAN,
                    r->band_pos[k]);
    }
    fprintf(o, "\n");
    fprintf(o, "answers: %" PRIu64 " correct of %" PRIu64 ", %" PRIu64 " worse-than-best hits, %" PRIu64
            " false hits (below the threshold), max |returned - exact| similarity %.2g; "
            "%" PRIu64 " answers differed between passes or in batches\n",
            r->correct, r->pos, r->suboptimal, r->false_hits, r->max_sim_err, r->batch_mismatch);
    if (r->gt_disagree)
        fprintf(o, "note: %" PRIu64 " hits on queries FAISS scored below the threshold (rounding at the edge)\n",
                r->gt_disagree);
    double per = n ? (double)r->index_bytes / (double)n : 0;
    fprintf(o, "memory: index %.0f B/entry (%.0f B beyond the 4*dim = %u B embedding); daemon RSS "
            "%.2f GiB anon + %.2f GiB arena; %.0f entries past the short code per search\n",
            per, per - 4.0 * d, 4 * d, (double)r->rss_anon / (1ull << 30),
            (double)r->rss_shmem / (1ull << 30), r->filtered);
    fprintf(o, "FAISS: single queries on 1 thread, batches on %d; IndexLSH builds %s\n", r->flat_threads,
            r->nlsh && r->lsh[0].ok ? "" : "(none)");
    for (int v = 0; v < r->nlsh; v++)
        if (r->lsh[v].ok)
            fprintf(o, "  %s: %.1f s, %" PRIu64 " B/entry of codes\n",
                    lsh_name(&r->lsh[v].cfg, a, sizeof a), (double)r->lsh[v].build_ns / 1e9,
                    r->lsh[v].code_bytes);
}

typedef struct {
    uint64_t n;
    uint32_t dim;
    double p99_max_us, ratio_min, recall_min, extra_kib_max;
} target_t;

static const target_t targets[] = {
    { 100000, 2048, 150, 20, 0.99, 0 },
    { 1000000, 1024, 500, 0, 0.99, 2.5 },
};

static int print_targets(FILE *o, const result_t *rs, int nr)
{
    int any = 0;
    for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
        const target_t *tg = &targets[t];
        for (int i = 0; i < nr; i++) {
            const result_t *r = &rs[i];
            if (!r->ok || r->cfg.n != tg->n || r->cfg.dim != tg->dim) continue;
            char nb[32];
            if (!any) fprintf(o, "\n**Targets** (from this run):\n\n");
            any = 1;
            const char *sz = fmt_count(r->cfg.n, nb, sizeof nb);
            fprintf(o, "- %s x %u: lookup p99 %.1f us (<= %.0f): %s\n", sz, r->cfg.dim, r->lat.p99 / 1e3,
                    tg->p99_max_us, r->lat.p99 / 1e3 <= tg->p99_max_us ? "PASS" : "FAIL");
            if (tg->ratio_min > 0) {
                double ratio = r->flat_lat.p50 / r->lat.p99;
                fprintf(o, "- %s x %u: FAISS IndexFlatIP p50 / simcache p99 = %.0fx (>= %.0fx): %s"
                        "   [p50/p50 %.0fx]\n", sz, r->cfg.dim, ratio, tg->ratio_min,
                        ratio >= tg->ratio_min ? "PASS" : "FAIL", r->flat_lat.p50 / r->lat.p50);
            }
            double lo, hi;
            wilson(r->correct, r->pos, &lo, &hi);
            fprintf(o, "- %s x %u: recall %.4f (>= %.2f): %s   [95%% interval %.4f to %.4f, %" PRIu64
                    " queries with a match]\n", sz, r->cfg.dim, r->recall, tg->recall_min,
                    r->recall >= tg->recall_min ? "PASS" : "FAIL", lo, hi, r->pos);
            fprintf(o, "- %s x %u: false hits %" PRIu64 " (= 0): %s\n", sz, r->cfg.dim, r->false_hits,
                    r->false_hits == 0 ? "PASS" : "FAIL");
            if (tg->extra_kib_max > 0) {
                double extra = ((double)r->index_bytes / (double)r->cfg.n - 4.0 * r->cfg.dim) / 1024.0;
                fprintf(o, "- %s x %u: index memory beyond the embedding %.2f KiB/entry (<= %.1f): %s\n",
                        sz, r->cfg.dim, extra, tg->extra_kib_max,
                        extra <= tg->extra_kib_max ? "PASS" : "FAIL");
            }
        }
    }
    return any;
}

static void print_summary(FILE *o, const result_t *rs, int nr)
{
    static const bench_col_t cols[] = {
        { "entries", 7, 1 }, { "dim", 4, 1 }, { "p50 us", 7, 1 }, { "p99 us", 7, 1 },
        { "p99.9 us", 8, 1 }, { "batch q/s", 9, 1 }, { "recall", 6, 1 }, { "false hits", 10, 1 },
        { "B/entry", 7, 1 }, { "past stage 1", 12, 1 }, { "Flat p50 ms", 11, 1 },
        { "Flat/p99", 8, 1 }, { "LSH p50 ms", 10, 1 }, { "LSH recall", 10, 1 }, { "LSH/p50", 7, 1 },
    };
    fprintf(o, "\n### Summary\n\n(LSH: the first IndexLSH variant; B/entry: the daemon's index "
            "bytes per entry, embedding included)\n\n");
    bench_table_head(o, cols, 15);
    for (int i = 0; i < nr; i++) {
        const result_t *r = &rs[i];
        if (!r->ok) continue;
        char c[15][32];
        fmt_count(r->cfg.n, c[0], 32);
        snprintf(c[1], 32, "%u", r->cfg.dim);
        fmt_us(r->lat.p50, c[2], 32);
        fmt_us(r->lat.p99, c[3], 32);
        fmt_us(r->p999, c[4], 32);
        snprintf(c[5], 32, "%.0f", r->batch_qps);
        snprintf(c[6], 32, "%.4f", r->recall);
        snprintf(c[7], 32, "%" PRIu64, r->false_hits);
        snprintf(c[8], 32, "%.0f", (double)r->index_bytes / (double)r->cfg.n);
        snprintf(c[9], 32, "%.0f", r->filtered);
        snprintf(c[10], 32, "%.2f", r->flat_lat.p50 / 1e6);
        bench_fmt_ratio(r->flat_lat.p50 / r->lat.p99, c[11], 32);
        const lsh_res_t *L = r->nlsh && r->lsh[0].ok ? &r->lsh[0] : NULL;
        snprintf(c[12], 32, "%s", "-");
        snprintf(c[13], 32, "%s", "-");
        snprintf(c[14], 32, "%s", "-");
        if (L) {
            snprintf(c[12], 32, "%.3f", L->lat.p50 / 1e6);
            snprintf(c[13], 32, "%.4f", L->recall);
            bench_fmt_ratio(L->lat.p50 / r->lat.p50, c[14], 32);
        }
        const char *cells[15];
        for (int k = 0; k < 15; k++) cells[k] = c[k];
        bench_table_row(o, cols, 15, cells);
    }
}

static void csv_head(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bench_index: cannot write %s: %s\n", path, strerror(errno));
        return;
    }
    fprintf(f, "n,dim,queries,positives,p50_us,p99_us,p999_us,batch_qps,recall,false_hits,"
            "suboptimal,index_bytes_per_entry,index_extra_per_entry,filtered_per_search,"
            "fill_puts_per_s,flat_p50_us,flat_p99_us,flat_batch_qps,"
            "lsh1_bits,lsh1_p50_us,lsh1_recall,lsh2_bits,lsh2_p50_us,lsh2_recall,"
            "ping_p50_us,ping_p99_us,inproc_p50_us,inproc_p99_us,inproc_candidates\n");
    fclose(f);
}

/* One line per size, appended as soon as the size is done, so an
 * interrupted run keeps what it measured. */
static void csv_row(const char *path, const result_t *r)
{
    FILE *f = fopen(path, "a");
    if (!f) return;
    double per = (double)r->index_bytes / (double)r->cfg.n;
    fprintf(f, "%" PRIu64 ",%u,%" PRIu64 ",%" PRIu64 ",%.2f,%.2f,%.2f,%.0f,%.5f,%" PRIu64 ",%" PRIu64
            ",%.0f,%.0f,%.1f,%.0f,%.2f,%.2f,%.1f",
            r->cfg.n, r->cfg.dim, r->nq, r->pos, r->lat.p50 / 1e3, r->lat.p99 / 1e3, r->p999 / 1e3,
            r->batch_qps, r->recall, r->false_hits, r->suboptimal, per, per - 4.0 * r->cfg.dim,
            r->filtered, r->fill_rate, r->flat_lat.p50 / 1e3,
            r->flat_lat.p99 / 1e3, r->flat_batch_qps);
    for (int v = 0; v < 2; v++) {
        if (v < r->nlsh && r->lsh[v].ok)
            fprintf(f, ",%d,%.2f,%.5f", r->lsh[v].cfg.nbits, r->lsh[v].lat.p50 / 1e3, r->lsh[v].recall);
        else
            fprintf(f, ",0,,");
    }
    fprintf(f, ",%.2f,%.2f", r->ping.p50 / 1e3, r->ping.p99 / 1e3);
    if (r->inproc)
        fprintf(f, ",%.2f,%.2f,%.0f\n", r->ip_lat.p50 / 1e3, r->ip_lat.p99 / 1e3, r->ip_cand);
    else
        fprintf(f, ",,,\n");
    fclose(f);
}

/* ---- options ---- */

static int usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [SIMCACHED] [--simcached PATH] [--sizes all|N:DIM,...] [--quick]\n"
            "          [--queries N] [--fill-threads N] [--threshold T] [--seed N]\n"
            "          [--lsh none|NBITS[t],...] [--csv PATH] [--daemon-arg ARG]...\n"
            "          [--in-process]\n", argv0);
    return 1;
}

static const size_cfg_t all_sizes[] = {
    { 10000, 1024 }, { 10000, 2048 }, { 10000, 4096 },
    { 100000, 1024 }, { 100000, 2048 }, { 100000, 4096 },
    { 1000000, 1024 },
};

static int parse_sizes(opts_t *o, const char *s)
{
    o->nsizes = 0;
    if (!strcmp(s, "all")) {
        for (size_t i = 0; i < sizeof all_sizes / sizeof all_sizes[0]; i++) o->sizes[o->nsizes++] = all_sizes[i];
        return 0;
    }
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        double v = strtod(tok, &end);
        if (*end == 'k' || *end == 'K') v *= 1e3, end++;
        else if (*end == 'm' || *end == 'M') v *= 1e6, end++;
        if (*end != ':' || v < 1 || o->nsizes == MAX_CONFIGS) return -1;
        long dim = strtol(end + 1, &end, 10);
        if (*end || dim < 16 || dim > (long)SIMCACHE_MAX_DIM) return -1;
        o->sizes[o->nsizes++] = (size_cfg_t){ (uint64_t)v, (uint32_t)dim };
    }
    return o->nsizes ? 0 : -1;
}

static int parse_lsh(opts_t *o, const char *s)
{
    o->nlsh = 0;
    if (!strcmp(s, "none")) return 0;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        long b = strtol(tok, &end, 10);
        int t = *end == 't';
        if (t) end++;
        if (*end || b < 8 || b > 8192 || b % 8 || o->nlsh == MAX_LSH) return -1;
        o->lsh[o->nlsh++] = (lsh_cfg_t){ (int)b, t };
    }
    return 0;
}

/* Bytes a size needs here: the base vectors in this process, the daemon's
 * index (vectors, int8 codes, tables: ~1.4 x 4*dim with growth slack) and
 * its arena. */
static uint64_t mem_needed(const size_cfg_t *c)
{
    return c->n * (uint64_t)c->dim * 4 + c->n * (uint64_t)(c->dim * 6 + 1024) +
           c->n * (uint64_t)ARENA_PER_ENTRY;
}

int main(int argc, char **argv)
{
    static char simcached[PATH_MAX];
    static opts_t o;
    bench_default_simcached(simcached, sizeof simcached);
    o.simcached = simcached;
    o.fill_threads = 4;
    o.threshold = SIMCACHE_DEFAULT_THRESHOLD;
    o.seed = 20261124;
    o.csv = "bench_index.csv";
    parse_sizes(&o, "all");
    parse_lsh(&o, "256t,1024t");
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strncmp(a, "--daemon-arg=", 13)) {
            if (o.ndaemon_args == MAX_DAEMON_ARGS) return usage(argv[0]);
            o.daemon_args[o.ndaemon_args++] = a + 13;
        } else if (!strcmp(a, "--daemon-arg") && v) {
            if (o.ndaemon_args == MAX_DAEMON_ARGS) return usage(argv[0]);
            o.daemon_args[o.ndaemon_args++] = v;
            i++;
        } else if (!strcmp(a, "--simcached") && v) {
            snprintf(simcached, sizeof simcached, "%s", v);
            i++;
        } else if (!strcmp(a, "--sizes") && v) {
            if (parse_sizes(&o, v)) return usage(argv[0]);
            i++;
        } else if (!strcmp(a, "--quick")) {
            quick = 1;
        } else if (!strcmp(a, "--in-process")) {
            o.in_process = 1;
        } else if (!strcmp(a, "--queries") && v) {
            o.queries = strtoull(v, NULL, 10);
            if (o.queries < BATCH) return usage(argv[0]);
            i++;
        } else if (!strcmp(a, "--fill-threads") && v) {
            o.fill_threads = atoi(v);
            if (o.fill_threads < 1 || o.fill_threads > 64) return usage(argv[0]);
            i++;
        } else if (!strcmp(a, "--threshold") && v) {
            o.threshold = (float)atof(v);
            if (!(o.threshold > 0 && o.threshold < 1)) return usage(argv[0]);
            i++;
        } else if (!strcmp(a, "--seed") && v) {
            o.seed = strtoull(v, NULL, 0);
            i++;
        } else if (!strcmp(a, "--lsh") && v) {
            if (parse_lsh(&o, v)) return usage(argv[0]);
            i++;
        } else if (!strcmp(a, "--csv") && v) {
            o.csv = v;
            i++;
        } else if (a[0] != '-') {
            snprintf(simcached, sizeof simcached, "%s", a);
        } else {
            return usage(argv[0]);
        }
    }
    if (quick) {
        parse_sizes(&o, "10k:1024,10k:2048,10k:4096");
        if (!o.queries) o.queries = 2048;
    }
    if (access(simcached, X_OK)) {
        fprintf(stderr, "bench_index: no simcached at %s (pass its path)\n", simcached);
        return 1;
    }

    uint64_t t_start = bench_now_ns();
    printf("## Index: lookup latency, throughput and recall (bench_index)\n\n");
    bench_print_machine(stdout);
    printf("load average at start: %.2f; FAISS %s, OpenMP threads %d; threshold %.2f; seed %" PRIu64
           "; simcached %s", bench_loadavg(), fa_version(), fa_max_threads(), (double)o.threshold,
           o.seed, simcached);
    for (int i = 0; i < o.ndaemon_args; i++) printf(" %s", o.daemon_args[i]);
    printf("\n");
    fflush(stdout);

    csv_head(o.csv);
    result_t *rs = bench_xcalloc(o.nsizes, sizeof *rs);
    int nr = 0;
    for (int i = 0; i < o.nsizes; i++) {
        const size_cfg_t *c = &o.sizes[i];
        uint64_t avail = meminfo_kib("MemAvailable") << 10;
        char nb[32];
        if (avail && mem_needed(c) > avail - (avail >> 4)) {
            printf("\n### %s entries x dim %u: skipped (needs about %.1f GiB, %.1f GiB available)\n",
                   fmt_count(c->n, nb, sizeof nb), c->dim, (double)mem_needed(c) / (1ull << 30),
                   (double)avail / (1ull << 30));
            continue;
        }
        if (run_size(&o, c, &rs[nr]) == 0) {
            print_size(stdout, &o, &rs[nr]);
            csv_row(o.csv, &rs[nr]);
            nr++;
        } else {
            printf("\n### %s entries x dim %u: failed (see stderr)\n", fmt_count(c->n, nb, sizeof nb),
                   c->dim);
        }
        fflush(stdout);
    }
    print_summary(stdout, rs, nr);
    print_targets(stdout, rs, nr);
    printf("\nload average at end: %.2f; total %.0f s; CSV: %s\n", bench_loadavg(), secs(t_start), o.csv);
    free(rs);
    return 0;
}
