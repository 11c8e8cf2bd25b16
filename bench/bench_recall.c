/* bench_recall.c - recall of the similarity index on real-text embeddings,
 * through the real socket, against FAISS in the same run; at rest and under
 * turnover.
 *
 * The idea: an index tuned on synthetic vectors can be flattered by them, so
 * this benchmark replays embedding sets made from real documentation
 * (bench/realtext/make_sets.py: base and held-out query vectors as .fvecs
 * files) and scores every answer against the exact best (brute force in
 * double, fvecs.h), never against another index. A fresh simcached is filled
 * over its socket by several clients, then every query is asked at each
 * threshold T and its answer scored: best-recall (the returned entry is as
 * close as the exact best, among the queries whose exact best reaches T),
 * hit-recall (any hit among them), false hits (a hit whose exact cosine is
 * below T) and wrong blobs (a hit whose bytes are not the ones put under
 * that id: every entry's 512-byte blob is its row number repeated, checked
 * through the match's pointer on every hit). FAISS IndexFlatIP (exact),
 * IndexLSH (1024 trained bits, exact re-rank of its top 64) and
 * IndexHNSWFlat (inner product) answer the same queries in this process, one
 * OpenMP thread per query, and are scored the same way.
 *
 * --churn CAP replays the base vectors in file order through a daemon capped
 * at CAP entries (max_entries), turnover x CAP puts past the first fill, and
 * every few puts looks up the task that comes next in the stream (the row
 * about to be put) at T = 0.8. The answer is scored against the
 * exact best over what the daemon still holds, known from a mirror of its
 * eviction policy kept here: simcached evicts the least recently used
 * unleased entry of its host tier (one LRU over every namespace) when a put
 * would pass max_entries; a put, a hit (its lease taken and released) and a
 * get make an entry the most recently used, a miss changes nothing. The
 * mirror is an LRU list over ids touched on the same events, and is checked
 * at the end with simcache_get on ids it says are evicted and live.
 *
 *   bench_recall [SIMCACHED] --set DIR [--set DIR]... [--thresholds LIST]
 *                [--daemon-arg ARG]... [--fill-threads N] [--queries N]
 *                [--no-faiss] [--hnsw-m M] [--hnsw-ef EF] [--csv PATH]
 *                [--churn CAP]... [--turnover X] [--churn-only]
 *
 * DIR holds base.fvecs, query.fvecs and meta.txt. The exact truth is cached
 * in DIR/truth-N.bin (N base vectors: int64 best rows, then double cosines,
 * one each per query of query.fvecs), recomputed on a few queries before it
 * is trusted. --queries: the first N queries only. --thresholds: comma list
 * (default 0.7,0.8,0.9). --daemon-arg passes one more flag to simcached
 * (repeat it). --churn (repeatable) adds a turnover run per set and CAP;
 * --churn-only skips the runs at rest. --csv: one line per set, threshold
 * and method, and one per churn run (default bench_recall.csv in the current
 * directory, rewritten by each run). With no --set it says how to make sets
 * and exits 0. Exits 0 whatever the figures say (a benchmark, not a test);
 * 1 only if it could not run.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench_util.h"
#include "faiss_anchor.h"
#include "fvecs.h"
#include "simcache.h"

#define MODEL_PREFIX "bench-recall/"
#define LAYOUT_FP "bench/i8/1x1x1x512"
#define BLOB 512u                 /* the row number, repeated */
#define BLOB_WORDS (BLOB / 4)
#define ARENA_PER_ENTRY 4096u     /* the arena rounds a blob up to 4 KiB */
#define BATCH 64
#define SIM_TOL 1e-5              /* "same similarity" when scoring an answer */
#define TRUTH_THREADS 2
#define LSH_BITS 1024
#define LSH_RERANK 64
#define LSH_TRAIN 20000
#define HNSW_EFC 40
#define FA_BUDGET_NS 15000000000ull   /* single FAISS queries: at most ~15 s per method */
#define FA_MIN_QUERIES 100
#define CHURN_THR 0.8f
#define CHURN_LOOKUPS 2000        /* lookups over a churn run, about */
#define CHECK_EDGE 100            /* mirror check: the last evicted, the LRU end */
#define CHECK_RANDOM 400          /* ... and this many more at random */
#define MAX_SETS 16
#define MAX_THR 8
#define MAX_CHURN 8
#define MAX_DAEMON_ARGS 16
#define CELL 160                  /* bytes of a table cell */

typedef struct {
    const char *simcached;
    const char *sets[MAX_SETS];
    int nsets;
    float thr[MAX_THR];
    int nthr;
    const char *daemon_args[MAX_DAEMON_ARGS];
    int ndaemon_args;
    int fill_threads;
    uint64_t queries;       /* 0: all of query.fvecs */
    int no_faiss;
    int hnsw_m, hnsw_ef;
    const char *csv;
    uint64_t churn[MAX_CHURN];
    int nchurn;
    double turnover;
    int churn_only;
} opts_t;

/* One embedding set, loaded. */
typedef struct {
    const char *dir;
    char name[128];
    char meta[512];         /* meta.txt on one line */
    uint64_t n, nq;
    uint32_t dim;
    fa_flat_t *flat;        /* owns the base rows */
    const float *rows;      /* n x dim, unit length */
    float *Q;               /* nq x dim, unit length */
    int64_t *gt_row;        /* exact best over the whole base */
    double *gt_sim;
    double mean2;           /* |mean of the base|^2 */
    double truth_s;
    int truth_cached;
} set_t;

/* Scored answers of one method at one threshold. */
typedef struct {
    uint64_t nq, pos, best, hit, false_hits, wrong_blob, bad_id, edge_hits;
} tally_t;

/* simcache at one threshold. */
typedef struct {
    float thr;
    tally_t t;
    bench_stats_t lat;
    double batch_qps;
    uint64_t batch_lookups, batch_mismatch, batch_wrong_blob;
    int batch_passes;
    double filtered;        /* entries past the first stage per search */
} sc_res_t;

typedef enum { FA_FLAT, FA_LSH, FA_HNSW, FA_N } fa_kind_t;

/* One FAISS anchor: its answers to the first nq queries. */
typedef struct {
    int ok;
    char label[96];
    uint64_t nq;
    int64_t *row;
    float *sim;
    bench_stats_t lat;
    double build_s;
} fa_res_t;

/* Everything measured on one set at rest. */
typedef struct {
    int ok;
    double fill_s, fill_rate;
    uint64_t entries, index_bytes;
    uint64_t rss_anon, rss_shmem;
    sc_res_t sc[MAX_THR];
    fa_res_t fa[FA_N];
    int faiss_threads;
} static_res_t;

/* One churn run. */
typedef struct {
    int ok;
    uint64_t cap, puts, k, lookups;
    double turnover, secs, put_rate;
    tally_t t;
    bench_stats_t lat;
    uint64_t ev_daemon, ev_mirror, ns_entries, mirror_live;
    uint64_t hits_on_evicted;           /* the mirror was wrong there */
    uint64_t chk_ev, chk_ev_found, chk_live, chk_live_missing, chk_live_blob;
    uint64_t recentres;
    double filtered;
    uint64_t disk_capacity;
} churn_res_t;

/* ---- small helpers ---- */

static double secs(uint64_t t0)
{
    return (double)(bench_now_ns() - t0) / 1e9;
}

static const char *fmt_us(double ns, char *buf, size_t len)
{
    snprintf(buf, len, "%.1f", ns / 1e3);
    return buf;
}

static const char *fmt_frac(uint64_t k, uint64_t n, char *buf, size_t len)
{
    if (n) snprintf(buf, len, "%.4f", (double)k / (double)n);
    else snprintf(buf, len, "-");
    return buf;
}

/* ---- admin socket ---- */

/* The fields of the daemon's `namespaces` line this benchmark reports (one
 * namespace per daemon here). */
typedef struct {
    int ok;
    uint64_t entries, index_bytes, searches, filtered, recentres;
} ns_info_t;

static void ns_info(const char *dir, ns_info_t *ni)
{
    char buf[8192];
    memset(ni, 0, sizeof *ni);
    if (bench_admin(dir, "namespaces", buf, sizeof buf)) return;
    ni->ok = 1;
    ni->entries = bench_field_u64(buf, "entries");
    ni->index_bytes = bench_field_u64(buf, "index_bytes");
    ni->searches = bench_field_u64(buf, "index_searches");
    ni->filtered = bench_field_u64(buf, "index_filtered");
    ni->recentres = bench_field_u64(buf, "index_recentres");
}

/* ---- the daemon ---- */

/* A fresh simcached on a new temp dir: room for `entries` blobs in the
 * host tier, max_entries cap (0: none), no GPU tier when no_gpu, then
 * --daemon-arg flags. Returns 0, or -1 (dir removed). */
static int daemon_start(const opts_t *o, uint64_t entries, uint64_t cap, int no_gpu,
                        bench_proc_t *p, char *dir, size_t dirlen, char *sock, size_t socklen)
{
    if (bench_tmpdir(dir, dirlen)) return -1;
    char host[32], maxe[32];
    /* 4 KiB per entry plus an eighth and 64 MiB of slack: bytes never bind,
     * only max_entries does. */
    snprintf(host, sizeof host, "%" PRIu64 "m",
             (entries * ARENA_PER_ENTRY + entries * ARENA_PER_ENTRY / 8) / (1u << 20) + 64);
    snprintf(maxe, sizeof maxe, "%" PRIu64, cap);
    const char *flags[16 + MAX_DAEMON_ARGS];
    int nf = 0;
    flags[nf++] = "--host-capacity";
    flags[nf++] = host;
    flags[nf++] = "--host-arena-size";
    flags[nf++] = host;
    flags[nf++] = "--max-entries";
    flags[nf++] = maxe;
    flags[nf++] = "--log-level";
    flags[nf++] = "warn";
    /* No prototype refits: each walks every entry of the store and would
     * stall lookups at random; routing is not measured here. */
    flags[nf++] = "--prototype-refresh-puts";
    flags[nf++] = "16777216";
    flags[nf++] = "--prototype-refresh-ms";
    flags[nf++] = "86400000";
    if (no_gpu) {
        flags[nf++] = "--gpu-capacity";
        flags[nf++] = "0";
    }
    for (int i = 0; i < o->ndaemon_args; i++) flags[nf++] = o->daemon_args[i];
    flags[nf] = NULL;
    if (bench_simcached_start(p, o->simcached, dir, flags, sock, socklen)) {
        bench_rm_rf(dir);
        return -1;
    }
    return 0;
}

static simcache_t *open_handle(const char *sock, const set_t *s, char *err, size_t errlen)
{
    char model[160];
    snprintf(model, sizeof model, MODEL_PREFIX "%s", s->name);
    simcache_opts_t op;
    simcache_opts_init(&op);
    op.socket_path = sock;
    op.model = model;
    op.layout_fingerprint = LAYOUT_FP;
    op.dim = s->dim;
    op.timeout_ms = 120000;
    simcache_t *h = NULL;
    int rc = simcache_connect(&op, &h);
    if (rc) {
        snprintf(err, errlen, "simcache_connect: %s (%s)", simcache_strerror(rc),
                 simcache_last_error(h));
        simcache_close(h);
        return NULL;
    }
    return h;
}

static const simcache_layout_t blob_layout = { SIMCACHE_DTYPE_I8, 1, 1, 1, BLOB, 1 };

static void blob_make(uint32_t *w, uint32_t row)
{
    for (uint32_t i = 0; i < BLOB_WORDS; i++) w[i] = row;
}

/* 1 if a match's bytes, read through its host pointer, are row's blob. */
static int blob_ok(const simcache_match_t *m, uint32_t row)
{
    if (!m->data || m->size != BLOB) return 0;
    const uint32_t *w = m->data;
    for (uint32_t i = 0; i < BLOB_WORDS; i++)
        if (w[i] != row) return 0;
    return 1;
}

/* ---- the set ---- */

/* meta.txt on one line: "key value; key value". */
static void read_meta(const char *dir, char *out, size_t len)
{
    char path[PATH_MAX], line[256];
    snprintf(path, sizeof path, "%s/meta.txt", dir);
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(out, len, "(no meta.txt)");
        return;
    }
    size_t used = 0;
    while (fgets(line, sizeof line, f) && used + 1 < len) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0]) continue;
        int k = snprintf(out + used, len - used, "%s%s", used ? "; " : "", line);
        if (k < 0) break;
        used += (size_t)k < len - used ? (size_t)k : len - used - 1;
    }
    fclose(f);
}

static double mean_norm2(const float *rows, uint64_t n, uint32_t d)
{
    double *m = bench_xcalloc(d, sizeof *m);
    for (uint64_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < d; j++) m[j] += rows[i * d + j];
    double s = 0;
    for (uint32_t j = 0; j < d; j++) {
        double v = m[j] / (double)n;
        s += v * v;
    }
    free(m);
    return s;
}

/* Queries in DIR/query.fvecs, from its size (0 if unknown). */
static uint64_t query_file_count(const char *dir, uint32_t d)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/query.fvecs", dir);
    if (stat(path, &st)) return 0;
    return (uint64_t)st.st_size / (4 + 4ull * d);
}

/* The cached truth, if it is there, covers the queries and agrees with a
 * fresh exact search on four of them. Returns 0 or -1. */
static int truth_load(set_t *s, const char *path, uint64_t mfile)
{
    struct stat st;
    if (!mfile || stat(path, &st) || (uint64_t)st.st_size != mfile * 16 || mfile < s->nq) return -1;
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    int ok = fread(s->gt_row, sizeof(int64_t), s->nq, f) == s->nq &&
             fseek(f, (long)(mfile * 8), SEEK_SET) == 0 &&
             fread(s->gt_sim, sizeof(double), s->nq, f) == s->nq;
    fclose(f);
    if (!ok) return -1;
    for (uint64_t q = 0; q < s->nq; q++)
        if (s->gt_row[q] < 0 || (uint64_t)s->gt_row[q] >= s->n || !(s->gt_sim[q] <= 1.0 + 1e-6))
            return -1;
    for (int k = 0; k < 4; k++) {
        uint64_t q = s->nq * (uint64_t)k / 4;
        int64_t b;
        double sim;
        fv_exact_best(s->rows, s->n, NULL, s->dim, s->Q + q * s->dim, 1, TRUTH_THREADS, &b, &sim);
        if (fabs(sim - s->gt_sim[q]) > 1e-9) return -1;
    }
    return 0;
}

static void truth_save(const set_t *s, const char *path)
{
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return;
    int ok = fwrite(s->gt_row, sizeof(int64_t), s->nq, f) == s->nq &&
             fwrite(s->gt_sim, sizeof(double), s->nq, f) == s->nq;
    if (fclose(f) || !ok || rename(tmp, path)) {
        fprintf(stderr, "bench_recall: cannot write %s (truth not cached)\n", path);
        unlink(tmp);
    }
}

static void truth(set_t *s)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/truth-%" PRIu64 ".bin", s->dir, s->n);
    uint64_t mfile = query_file_count(s->dir, s->dim);
    uint64_t t0 = bench_now_ns();
    if (truth_load(s, path, mfile) == 0) {
        s->truth_cached = 1;
        s->truth_s = secs(t0);
        return;
    }
    fprintf(stderr, "  exact truth of %" PRIu64 " queries over %" PRIu64 " rows (%d threads)...\n",
            s->nq, s->n, TRUTH_THREADS);
    t0 = bench_now_ns();
    fv_exact_best(s->rows, s->n, NULL, s->dim, s->Q, s->nq, TRUTH_THREADS, s->gt_row, s->gt_sim);
    s->truth_s = secs(t0);
    if (s->nq == mfile) truth_save(s, path);
}

static void set_free(set_t *s)
{
    if (s->flat) fa_flat_free(s->flat);
    free(s->Q);
    free(s->gt_row);
    free(s->gt_sim);
    memset(s, 0, sizeof *s);
}

static int set_load(const opts_t *o, const char *dir, set_t *s)
{
    char path[PATH_MAX], err[512];
    memset(s, 0, sizeof *s);
    s->dir = dir;
    /* The set's name: the last component of DIR. */
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", dir);
    size_t bl = strlen(buf);
    while (bl > 1 && buf[bl - 1] == '/') buf[--bl] = 0;
    const char *slash = strrchr(buf, '/');
    /* A name longer than the field is cut (it only labels the output). */
    snprintf(s->name, sizeof s->name, "%.127s", slash && slash[1] ? slash + 1 : buf);
    read_meta(dir, s->meta, sizeof s->meta);

    snprintf(path, sizeof path, "%s/base.fvecs", dir);
    uint64_t t0 = bench_now_ns();
    float *rows = fv_read(path, 0, &s->n, &s->dim, err, sizeof err);
    if (!rows) {
        fprintf(stderr, "bench_recall: %s\n", err);
        return -1;
    }
    s->flat = fa_flat_new(s->dim, s->n);
    if (!s->flat) {
        fprintf(stderr, "bench_recall: %s\n", fa_last_error());
        free(rows);
        return -1;
    }
    memcpy(fa_flat_rows(s->flat), rows, s->n * (size_t)s->dim * sizeof(float));
    free(rows);
    s->rows = fa_flat_rows(s->flat);

    snprintf(path, sizeof path, "%s/query.fvecs", dir);
    uint32_t qd = 0;
    s->Q = fv_read(path, o->queries, &s->nq, &qd, err, sizeof err);
    if (!s->Q || qd != s->dim) {
        if (s->Q) fprintf(stderr, "bench_recall: %s: dimension %u, base has %u\n", path, qd, s->dim);
        else fprintf(stderr, "bench_recall: %s\n", err);
        set_free(s);
        return -1;
    }
    fprintf(stderr, "  read %" PRIu64 " base and %" PRIu64 " query vectors of dim %u in %.1f s\n",
            s->n, s->nq, s->dim, secs(t0));
    s->mean2 = mean_norm2(s->rows, s->n, s->dim);
    /* Churn runs need no truth over the whole base: they compute theirs. */
    if (o->churn_only) return 0;
    s->gt_row = bench_xmalloc(s->nq * sizeof *s->gt_row);
    s->gt_sim = bench_xmalloc(s->nq * sizeof *s->gt_sim);
    truth(s);
    return 0;
}

static uint64_t positives(const set_t *s, float thr)
{
    uint64_t k = 0;
    for (uint64_t q = 0; q < s->nq; q++) k += s->gt_sim[q] >= (double)thr;
    return k;
}

/* ---- scoring ---- */

/* One answer: hit (any), row (-1: an id this benchmark never put), against
 * the exact best cosine gt. */
static void tally_answer(tally_t *t, const set_t *s, const float *q, double gt, float thr,
                         int hit, int64_t row)
{
    int pos = gt >= (double)thr;
    t->nq++;
    t->pos += pos;
    if (!hit) return;
    if (row < 0) {
        t->bad_id++;
        t->false_hits++;
        return;
    }
    double ex = fv_dot(s->rows + (uint64_t)row * s->dim, q, s->dim);
    if (pos) {
        t->hit++;
        t->best += ex >= gt - SIM_TOL;
    }
    if (ex < (double)thr - SIM_TOL) t->false_hits++;
    else if (!pos) t->edge_hits++;
}

/* ---- filling ---- */

typedef struct {
    const set_t *s;
    const char *sock;
    uint32_t *row_of_id;    /* id -> row + 1 (0: none), ids 1..id_cap */
    uint64_t id_cap;
    atomic_uint_fast64_t next;
    atomic_uint_fast64_t done;
    atomic_int failed;
    char err[512];
    pthread_mutex_t err_lock;
} fill_t;

#define FILL_CHUNK 256

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
    const set_t *s = f->s;
    char err[512];
    simcache_t *h = open_handle(f->sock, s, err, sizeof err);
    if (!h) {
        fill_fail(f, err);
        return NULL;
    }
    uint32_t blob[BLOB_WORDS];
    while (!atomic_load(&f->failed)) {
        uint64_t i0 = atomic_fetch_add(&f->next, FILL_CHUNK);
        if (i0 >= s->n) break;
        uint64_t i1 = i0 + FILL_CHUNK < s->n ? i0 + FILL_CHUNK : s->n;
        for (uint64_t i = i0; i < i1; i++) {
            blob_make(blob, (uint32_t)i);
            uint64_t id = 0;
            int rc = simcache_put(h, s->rows + i * s->dim, &blob_layout, blob, BLOB,
                                  SIMCACHE_HOST_MEMORY, &id);
            if (rc) {
                snprintf(err, sizeof err, "simcache_put of row %" PRIu64 ": %s (%s)", i,
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

/* Put every base row with nt client threads. Returns 0 or -1. */
static int fill(const set_t *s, const char *sock, int nt, uint32_t *row_of_id, uint64_t id_cap,
                double *took)
{
    fill_t f = { .s = s, .sock = sock, .row_of_id = row_of_id, .id_cap = id_cap };
    pthread_mutex_init(&f.err_lock, NULL);
    pthread_t th[64];
    uint64_t t0 = bench_now_ns(), last = t0;
    for (int i = 0; i < nt; i++)
        if (pthread_create(&th[i], NULL, fill_thread, &f)) {
            fill_fail(&f, "pthread_create failed");
            nt = i;
            break;
        }
    while (atomic_load(&f.done) < s->n && !atomic_load(&f.failed)) {
        usleep(50000);
        if (bench_now_ns() - last > 10000000000ull) {
            last = bench_now_ns();
            fprintf(stderr, "  filled %" PRIu64 " / %" PRIu64 "\n", (uint64_t)atomic_load(&f.done),
                    s->n);
        }
    }
    for (int i = 0; i < nt; i++) pthread_join(th[i], NULL);
    pthread_mutex_destroy(&f.err_lock);
    *took = secs(t0);
    if (atomic_load(&f.failed)) {
        fprintf(stderr, "bench_recall: fill failed: %s\n", f.err);
        return -1;
    }
    return 0;
}

/* ---- simcache at one threshold ---- */

typedef struct {
    const uint32_t *row_of_id;
    uint64_t id_cap;
} idmap_t;

static int64_t row_of(const idmap_t *im, uint64_t id)
{
    if (id == 0 || id > im->id_cap || !im->row_of_id[id]) return -1;
    return (int64_t)im->row_of_id[id] - 1;
}

/* Every query once as a single lookup (scored, the call alone timed), then
 * batches of 64 over all queries until they have taken >= 1 s. */
static int sc_measure(simcache_t *h, const char *dir, const set_t *s, const idmap_t *im, float thr,
                      sc_res_t *r)
{
    const uint32_t d = s->dim;
    memset(r, 0, sizeof *r);
    r->thr = thr;
    uint64_t *first = bench_xcalloc(s->nq, sizeof *first);
    double *lat = bench_xmalloc(s->nq * sizeof *lat);
    simcache_match_t *mb = bench_xmalloc(BATCH * sizeof *mb);
    int rc = -1;
    ns_info_t n0, n1;
    ns_info(dir, &n0);
    for (uint64_t q = 0; q < s->nq; q++) {
        simcache_match_t m;
        const float *qv = s->Q + q * d;
        uint64_t a = bench_now_ns();
        int lr = simcache_lookup(h, qv, thr, &m);
        uint64_t b = bench_now_ns();
        if (lr < 0) {
            fprintf(stderr, "bench_recall: simcache_lookup: %s (%s)\n", simcache_strerror(lr),
                    simcache_last_error(h));
            goto out;
        }
        lat[q] = (double)(b - a);
        int64_t row = -1;
        if (lr == 0) {
            first[q] = m.id;
            row = row_of(im, m.id);
            if (row >= 0 && !blob_ok(&m, (uint32_t)row)) r->t.wrong_blob++;
            simcache_release(h, &m);
        }
        tally_answer(&r->t, s, qv, s->gt_sim[q], thr, lr == 0, row);
    }
    ns_info(dir, &n1);
    if (n1.searches > n0.searches)
        r->filtered = (double)(n1.filtered - n0.filtered) / (double)(n1.searches - n0.searches);
    bench_stats(lat, s->nq, &r->lat);

    /* Batches: the calls are timed, the releases of their hits are not. */
    uint64_t tsum = 0;
    for (int pass = 0; pass < 10000 && (pass == 0 || tsum < 1000000000ull); pass++) {
        for (uint64_t b0 = 0; b0 < s->nq; b0 += BATCH) {
            size_t nb = s->nq - b0 < BATCH ? (size_t)(s->nq - b0) : BATCH;
            uint64_t a = bench_now_ns();
            int br = simcache_lookup_batch(h, s->Q + b0 * d, nb, thr, mb);
            tsum += bench_now_ns() - a;
            if (br < 0) {
                fprintf(stderr, "bench_recall: simcache_lookup_batch: %s (%s)\n",
                        simcache_strerror(br), simcache_last_error(h));
                goto out;
            }
            r->batch_lookups += nb;
            for (size_t i = 0; i < nb; i++) {
                uint64_t id = mb[i].lease ? mb[i].id : 0;
                if (pass == 0 && id != first[b0 + i]) r->batch_mismatch++;
                if (!mb[i].lease) continue;
                int64_t row = row_of(im, id);
                if (row < 0 || !blob_ok(&mb[i], (uint32_t)row)) r->batch_wrong_blob++;
                simcache_release(h, &mb[i]);
            }
        }
        r->batch_passes = pass + 1;
    }
    r->batch_qps = tsum ? (double)r->batch_lookups / ((double)tsum / 1e9) : 0;
    rc = 0;
out:
    free(first);
    free(lat);
    free(mb);
    return rc;
}

/* ---- FAISS ---- */

static const char *fa_label(fa_kind_t k, const opts_t *o, char *buf, size_t len)
{
    switch (k) {
    case FA_FLAT: snprintf(buf, len, "FAISS IndexFlatIP (exact)"); break;
    case FA_LSH:
        snprintf(buf, len, "FAISS IndexLSH %dt + top-%d re-rank", LSH_BITS, LSH_RERANK);
        break;
    default:
        snprintf(buf, len, "FAISS IndexHNSWFlat M%d ef%d", o->hnsw_m, o->hnsw_ef);
        break;
    }
    return buf;
}

/* Build one anchor (all cores), then answer the queries one at a time on
 * one thread, in order, until all are done or about FA_BUDGET_NS has
 * passed (at least FA_MIN_QUERIES). Returns 0 or -1. */
static int fa_measure(fa_kind_t k, const opts_t *o, const set_t *s, fa_res_t *r)
{
    const uint32_t d = s->dim;
    memset(r, 0, sizeof *r);
    fa_label(k, o, r->label, sizeof r->label);
    fa_lsh_t *lsh = NULL;
    fa_hnsw_t *hnsw = NULL;
    fa_set_threads(fa_max_threads());
    uint64_t t0 = bench_now_ns();
    if (k == FA_LSH) {
        fprintf(stderr, "  building IndexLSH %d bits...\n", LSH_BITS);
        lsh = fa_lsh_new(s->flat, LSH_BITS, 1, LSH_TRAIN);
    } else if (k == FA_HNSW) {
        fprintf(stderr, "  building IndexHNSWFlat M %d, efConstruction %d...\n", o->hnsw_m, HNSW_EFC);
        hnsw = fa_hnsw_new(s->flat, o->hnsw_m, HNSW_EFC, o->hnsw_ef);
    }
    if ((k == FA_LSH && !lsh) || (k == FA_HNSW && !hnsw)) {
        fprintf(stderr, "bench_recall: %s: %s\n", r->label, fa_last_error());
        return -1;
    }
    r->build_s = secs(t0);
    fa_set_threads(1);
    r->row = bench_xmalloc(s->nq * sizeof *r->row);
    r->sim = bench_xmalloc(s->nq * sizeof *r->sim);
    double *lat = bench_xmalloc(s->nq * sizeof *lat);
    int rc = 0;
    uint64_t start = bench_now_ns();
    for (uint64_t q = 0; q <= s->nq && rc == 0; q++) {
        /* q == 0 twice: a warm-up first, not kept. */
        uint64_t qi = q ? q - 1 : 0;
        if (q > FA_MIN_QUERIES && bench_now_ns() - start > FA_BUDGET_NS) break;
        const float *qv = s->Q + qi * d;
        int64_t b = -1;
        float sim = 0;
        uint64_t a = bench_now_ns();
        if (k == FA_FLAT) rc = fa_flat_search(s->flat, qv, 1, &b, &sim);
        else if (k == FA_LSH) rc = fa_lsh_best(lsh, qv, LSH_RERANK, &b, &sim);
        else rc = fa_hnsw_best(hnsw, qv, &b, &sim);
        double t = (double)(bench_now_ns() - a);
        if (!q) continue;
        lat[qi] = t;
        r->row[qi] = b < (int64_t)s->n ? b : -1;
        r->sim[qi] = sim;
        r->nq = q;
    }
    if (rc) fprintf(stderr, "bench_recall: %s: %s\n", r->label, fa_last_error());
    bench_stats(lat, r->nq, &r->lat);
    free(lat);
    if (lsh) fa_lsh_free(lsh);
    if (hnsw) fa_hnsw_free(hnsw);
    fa_set_threads(fa_max_threads());
    r->ok = rc == 0 && r->nq > 0;
    fprintf(stderr, "  %s: %" PRIu64 " queries, p50 %.1f us, built in %.1f s\n", r->label, r->nq,
            r->lat.p50 / 1e3, r->build_s);
    return r->ok ? 0 : -1;
}

static void fa_res_free(fa_res_t *r)
{
    free(r->row);
    free(r->sim);
    r->row = NULL;
    r->sim = NULL;
}

/* A FAISS anchor's answers scored at thr: a hit when its similarity
 * reaches thr. */
static void fa_tally(const fa_res_t *r, const set_t *s, float thr, tally_t *t)
{
    memset(t, 0, sizeof *t);
    for (uint64_t q = 0; q < r->nq; q++) {
        int hit = r->row[q] >= 0 && r->sim[q] >= thr;
        tally_answer(t, s, s->Q + q * s->dim, s->gt_sim[q], thr, hit, r->row[q]);
    }
}

/* ---- one set at rest ---- */

static int run_static(const opts_t *o, const set_t *s, static_res_t *res)
{
    memset(res, 0, sizeof *res);
    char dir[64], sock[200], err[512];
    bench_proc_t daemon;
    fprintf(stderr, "  starting simcached, filling %" PRIu64 " entries (%d client threads)\n", s->n,
            o->fill_threads);
    if (daemon_start(o, s->n, 0, 0, &daemon, dir, sizeof dir, sock, sizeof sock)) return -1;
    int rc = -1;
    simcache_t *h = NULL;
    uint32_t *row_of_id = bench_xcalloc(s->n + 17, sizeof *row_of_id);
    idmap_t im = { row_of_id, s->n + 16 };
    if (fill(s, sock, o->fill_threads, row_of_id, im.id_cap, &res->fill_s)) {
        bench_proc_dump_log(&daemon);
        goto out;
    }
    res->fill_rate = (double)s->n / res->fill_s;
    ns_info_t ni;
    ns_info(dir, &ni);
    res->entries = ni.entries;
    res->index_bytes = ni.index_bytes;
    if (ni.entries != s->n)
        fprintf(stderr, "bench_recall: admin says %" PRIu64 " entries, expected %" PRIu64 "\n",
                ni.entries, s->n);

    h = open_handle(sock, s, err, sizeof err);
    if (!h) {
        fprintf(stderr, "bench_recall: %s\n", err);
        goto out;
    }
    {
        simcache_match_t m;   /* warm-up */
        for (uint64_t q = 0; q < 100 && q < s->nq; q++)
            if (simcache_lookup(h, s->Q + q * s->dim, o->thr[0], &m) == 0) simcache_release(h, &m);
    }
    for (int t = 0; t < o->nthr; t++) {
        if (sc_measure(h, dir, s, &im, o->thr[t], &res->sc[t])) goto out;
        const sc_res_t *r = &res->sc[t];
        fprintf(stderr, "  simcache T %.2f: best-recall %.4f, p50 %.1f us, p99 %.1f us, batch %.0f/s\n",
                (double)r->thr, r->t.pos ? (double)r->t.best / (double)r->t.pos : 1.0,
                r->lat.p50 / 1e3, r->lat.p99 / 1e3, r->batch_qps);
    }
    bench_proc_rss(daemon.pid, &res->rss_anon, &res->rss_shmem);
    /* Free the daemon's memory before FAISS builds its indexes. */
    simcache_close(h);
    h = NULL;
    bench_proc_stop(&daemon);

    res->faiss_threads = fa_max_threads();
    if (!o->no_faiss)
        for (int k = 0; k < FA_N; k++) fa_measure((fa_kind_t)k, o, s, &res->fa[k]);
    res->ok = 1;
    rc = 0;
out:
    if (h) simcache_close(h);
    bench_proc_stop(&daemon);
    bench_rm_rf(dir);
    free(row_of_id);
    return rc;
}

/* ---- churn: the mirror of the daemon's LRU ---- */

typedef struct {
    uint64_t cap, size, id_cap;
    uint64_t *prev, *next;      /* by id; 0: none. head = most recently used */
    uint64_t head, tail;
    uint32_t *row;              /* row of each id */
    uint8_t *state;             /* 0 never put, 1 live, 2 evicted */
    uint32_t *row_live;         /* live ids per row */
    uint8_t *live;              /* per row: row_live > 0 */
    uint64_t *evicted;          /* ids in eviction order */
    uint64_t nevicted;
} mirror_t;

enum { M_NONE, M_LIVE, M_EVICTED };

static void mirror_init(mirror_t *m, uint64_t cap, uint64_t id_cap, uint64_t nrows)
{
    memset(m, 0, sizeof *m);
    m->cap = cap;
    m->id_cap = id_cap;
    m->prev = bench_xcalloc(id_cap + 1, sizeof *m->prev);
    m->next = bench_xcalloc(id_cap + 1, sizeof *m->next);
    m->row = bench_xcalloc(id_cap + 1, sizeof *m->row);
    m->state = bench_xcalloc(id_cap + 1, 1);
    m->row_live = bench_xcalloc(nrows, sizeof *m->row_live);
    m->live = bench_xcalloc(nrows, 1);
    m->evicted = bench_xcalloc(id_cap + 1, sizeof *m->evicted);
}

static void mirror_free(mirror_t *m)
{
    free(m->prev);
    free(m->next);
    free(m->row);
    free(m->state);
    free(m->row_live);
    free(m->live);
    free(m->evicted);
}

static void mirror_unlink(mirror_t *m, uint64_t id)
{
    if (m->prev[id]) m->next[m->prev[id]] = m->next[id];
    else m->head = m->next[id];
    if (m->next[id]) m->prev[m->next[id]] = m->prev[id];
    else m->tail = m->prev[id];
    m->prev[id] = m->next[id] = 0;
}

static void mirror_push_head(mirror_t *m, uint64_t id)
{
    m->prev[id] = 0;
    m->next[id] = m->head;
    if (m->head) m->prev[m->head] = id;
    else m->tail = id;
    m->head = id;
}

/* A put: the daemon evicts LRU entries until a new one fits under the cap
 * (store_alloc), and the committed entry is the most recently used. */
static void mirror_put(mirror_t *m, uint64_t id, uint32_t row)
{
    while (m->size >= m->cap && m->tail) {
        uint64_t v = m->tail;
        mirror_unlink(m, v);
        m->state[v] = M_EVICTED;
        m->evicted[m->nevicted++] = v;
        if (--m->row_live[m->row[v]] == 0) m->live[m->row[v]] = 0;
        m->size--;
    }
    m->row[id] = row;
    m->state[id] = M_LIVE;
    m->row_live[row]++;
    m->live[row] = 1;
    mirror_push_head(m, id);
    m->size++;
}

/* A hit (pin at the lease, unpin at its release) or a get. */
static void mirror_touch(mirror_t *m, uint64_t id)
{
    mirror_unlink(m, id);
    mirror_push_head(m, id);
}

/* simcache_get of a sample of ids the mirror says are evicted (must be
 * ENOTFOUND) and live (must be there, with their blob). Gets make entries
 * the most recently used, so this runs after the last put. */
static void mirror_check(simcache_t *h, const mirror_t *m, churn_res_t *r)
{
    uint64_t seed = 0x5eedc0de;
    simcache_match_t g;
    uint64_t ne = m->nevicted;
    for (uint64_t i = 0; i < CHECK_EDGE + CHECK_RANDOM && i < ne; i++) {
        uint64_t id = i < CHECK_EDGE ? m->evicted[ne - 1 - i] : m->evicted[bench_mix(&seed) % ne];
        int rc = simcache_get(h, id, &g);
        r->chk_ev++;
        if (rc != SIMCACHE_ENOTFOUND) r->chk_ev_found++;
        if (rc == 0) simcache_release(h, &g);
    }
    /* Live: the LRU end first (the next to go), then random ones. Touching
     * them reorders the mirror's list, which is not used after this. */
    uint64_t id = m->tail;
    for (int i = 0; i < CHECK_EDGE && id; i++, id = m->prev[id]) {
        int rc = simcache_get(h, id, &g);
        r->chk_live++;
        if (rc) r->chk_live_missing++;
        else {
            if (!blob_ok(&g, m->row[id])) r->chk_live_blob++;
            simcache_release(h, &g);
        }
    }
    for (int i = 0, tries = 0; i < CHECK_RANDOM && tries < 100 * CHECK_RANDOM; tries++) {
        uint64_t v = 1 + bench_mix(&seed) % m->id_cap;
        if (m->state[v] != M_LIVE) continue;
        i++;
        int rc = simcache_get(h, v, &g);
        r->chk_live++;
        if (rc) r->chk_live_missing++;
        else {
            if (!blob_ok(&g, m->row[v])) r->chk_live_blob++;
            simcache_release(h, &g);
        }
    }
}

/* ---- one churn run ---- */

static int run_churn(const opts_t *o, const set_t *s, uint64_t cap, churn_res_t *r)
{
    memset(r, 0, sizeof *r);
    r->cap = cap;
    r->turnover = o->turnover;
    r->puts = cap + (uint64_t)llround(o->turnover * (double)cap);
    uint64_t after = r->puts - cap;
    r->k = after / CHURN_LOOKUPS ? after / CHURN_LOOKUPS : 1;
    const uint32_t d = s->dim;
    char dir[64], sock[200], err[512];
    bench_proc_t daemon;
    fprintf(stderr, "  churn: cap %" PRIu64 ", %" PRIu64 " puts, a lookup every %" PRIu64 " puts\n",
            cap, r->puts, r->k);
    if (daemon_start(o, cap, cap, 1, &daemon, dir, sizeof dir, sock, sizeof sock)) return -1;
    int rc = -1;
    mirror_t m;
    mirror_init(&m, cap, r->puts + 16, s->n);
    double *lat = bench_xmalloc((after / r->k + 1) * sizeof *lat);
    uint32_t blob[BLOB_WORDS];
    simcache_t *h = open_handle(sock, s, err, sizeof err);
    if (!h) {
        fprintf(stderr, "bench_recall: %s\n", err);
        goto out;
    }
    r->disk_capacity = bench_config_u64(dir, "disk_capacity");
    uint64_t t0 = bench_now_ns(), tput = 0, last = t0;
    for (uint64_t i = 0; i < r->puts; i++) {
        uint32_t row = (uint32_t)(i % s->n);
        blob_make(blob, row);
        uint64_t id = 0;
        uint64_t a = bench_now_ns();
        int pr = simcache_put(h, s->rows + (uint64_t)row * d, &blob_layout, blob, BLOB,
                              SIMCACHE_HOST_MEMORY, &id);
        tput += bench_now_ns() - a;
        if (pr) {
            fprintf(stderr, "bench_recall: simcache_put %" PRIu64 ": %s (%s)\n", i,
                    simcache_strerror(pr), simcache_last_error(h));
            goto out;
        }
        if (id == 0 || id > m.id_cap || m.state[id] != M_NONE) {
            fprintf(stderr, "bench_recall: put %" PRIu64 " got id %" PRIu64
                    " (expected a fresh one in 1..%" PRIu64 ")\n", i, id, m.id_cap);
            goto out;
        }
        mirror_put(&m, id, row);
        uint64_t done = i + 1;
        if (done <= cap || (done - cap) % r->k) continue;

        /* A lookup of the task that comes next in the stream (the row put
         * next: a new task is looked up before it is stored), then its
         * score against the mirror's live rows. With the set in document
         * order (make_sets.py --order topic), its neighbours in the stream
         * are its topic's. */
        const float *qv = s->rows + (uint64_t)((i + 1) % s->n) * d;
        simcache_match_t mt;
        a = bench_now_ns();
        int lr = simcache_lookup(h, qv, CHURN_THR, &mt);
        uint64_t b = bench_now_ns();
        if (lr < 0) {
            fprintf(stderr, "bench_recall: simcache_lookup: %s (%s)\n", simcache_strerror(lr),
                    simcache_last_error(h));
            goto out;
        }
        lat[r->lookups++] = (double)(b - a);
        int64_t hrow = -1;
        if (lr == 0) {
            uint64_t hid = mt.id;
            if (hid == 0 || hid > m.id_cap || m.state[hid] != M_LIVE) {
                /* The daemon holds what the mirror says it evicted: this
                 * query's truth is unknown; not scored. */
                r->hits_on_evicted++;
                simcache_release(h, &mt);
                continue;
            }
            hrow = m.row[hid];
            if (!blob_ok(&mt, m.row[hid])) r->t.wrong_blob++;
            simcache_release(h, &mt);
            mirror_touch(&m, hid);
        }
        int64_t gb;
        double gs;
        fv_exact_best(s->rows, s->n, m.live, d, qv, 1, TRUTH_THREADS, &gb, &gs);
        tally_answer(&r->t, s, qv, gs, CHURN_THR, lr == 0, hrow);
        if (bench_now_ns() - last > 10000000000ull) {
            last = bench_now_ns();
            fprintf(stderr, "  churn: %" PRIu64 " / %" PRIu64 " puts, %" PRIu64 " lookups\n", done,
                    r->puts, r->lookups);
        }
    }
    r->secs = secs(t0);
    r->put_rate = tput ? (double)r->puts / ((double)tput / 1e9) : 0;
    bench_stats(lat, r->lookups, &r->lat);

    simcache_stats_t st;
    if (simcache_stats(h, &st) == 0) {
        r->ev_daemon = st.evictions;
        r->ns_entries = st.ns_entries;
    }
    r->ev_mirror = m.nevicted;
    r->mirror_live = m.size;
    ns_info_t ni;
    ns_info(dir, &ni);
    r->recentres = ni.recentres;
    r->filtered = ni.searches ? (double)ni.filtered / (double)ni.searches : 0;
    mirror_check(h, &m, r);
    r->ok = 1;
    rc = 0;
out:
    if (h) simcache_close(h);
    if (rc) bench_proc_dump_log(&daemon);
    bench_proc_stop(&daemon);
    bench_rm_rf(dir);
    mirror_free(&m);
    free(lat);
    return rc;
}

/* ---- printing ---- */

static void print_set_head(FILE *f, const opts_t *o, const set_t *s)
{
    fprintf(f, "\n### %s: %" PRIu64 " x %u\n\n", s->name, s->n, s->dim);
    fprintf(f, "%s (%s)\n\n", s->dir, s->meta);
    fprintf(f, "n %" PRIu64 ", dim %u, |mean|^2 of the base %.4f (anisotropy: 0 isotropic, 1 all "
            "one direction); %" PRIu64 " queries", s->n, s->dim, s->mean2, s->nq);
    if (!s->gt_sim) {
        fprintf(f, "\n");
        return;
    }
    fprintf(f, "; exact best >= T:");
    for (int t = 0; t < o->nthr; t++)
        fprintf(f, "%s %.2f: %" PRIu64, t ? ";" : "", (double)o->thr[t], positives(s, o->thr[t]));
    fprintf(f, "; exact truth %s (%.1f s)\n", s->truth_cached ? "from the cache, spot-checked"
                                                              : "computed", s->truth_s);
}

static void print_static(FILE *f, const opts_t *o, const set_t *s, const static_res_t *r)
{
    char a[64], b[64];
    fprintf(f, "filled over the socket in %.1f s (%.0f puts/s, %d client threads); daemon: %" PRIu64
            " entries, index %.0f B/entry (the embedding alone is 4*dim = %u B), RSS %.2f GiB anon "
            "+ %.2f GiB arena\n",
            r->fill_s, r->fill_rate, o->fill_threads, r->entries,
            r->entries ? (double)r->index_bytes / (double)r->entries : 0.0, 4 * s->dim,
            (double)r->rss_anon / (1ull << 30), (double)r->rss_shmem / (1ull << 30));
    if (!o->no_faiss)
        fprintf(f, "FAISS %s: single queries on 1 OpenMP thread, in order until all or ~%.0f s; "
                "builds on %d threads: IndexLSH %.1f s, IndexHNSWFlat (M %d, efConstruction %d, "
                "efSearch %d) %.1f s\n",
                fa_version(), (double)FA_BUDGET_NS / 1e9, r->faiss_threads,
                r->fa[FA_LSH].build_s, o->hnsw_m, HNSW_EFC, o->hnsw_ef, r->fa[FA_HNSW].build_s);
    fprintf(f, "\n");
    static const bench_col_t cols[] = {
        { "T", 4, 1 }, { "method", 38, 0 }, { "queries", 7, 1 }, { "positives", 9, 1 },
        { "best-recall", 11, 1 }, { "hit-recall", 10, 1 }, { "false hits", 10, 1 },
        { "wrong blob", 10, 1 }, { "p50 us", 8, 1 }, { "p99 us", 8, 1 }, { "batch-64 q/s", 12, 1 },
    };
    enum { NC = sizeof cols / sizeof cols[0] };
    bench_table_head(f, cols, NC);
    for (int t = 0; t < o->nthr; t++) {
        const sc_res_t *sc = &r->sc[t];
        char c[NC][CELL];
        const char *cells[NC];
        for (int k = 0; k < NC; k++) cells[k] = c[k];
        snprintf(c[0], CELL, "%.2f", (double)sc->thr);
        snprintf(c[1], CELL, "simcache over the socket");
        snprintf(c[2], CELL, "%" PRIu64, sc->t.nq);
        snprintf(c[3], CELL, "%" PRIu64, sc->t.pos);
        fmt_frac(sc->t.best, sc->t.pos, c[4], CELL);
        fmt_frac(sc->t.hit, sc->t.pos, c[5], CELL);
        snprintf(c[6], CELL, "%" PRIu64, sc->t.false_hits);
        snprintf(c[7], CELL, "%" PRIu64, sc->t.wrong_blob + sc->batch_wrong_blob);
        fmt_us(sc->lat.p50, c[8], CELL);
        fmt_us(sc->lat.p99, c[9], CELL);
        snprintf(c[10], CELL, "%.0f", sc->batch_qps);
        bench_table_row(f, cols, NC, cells);
        for (int k = 0; k < FA_N; k++) {
            const fa_res_t *fr = &r->fa[k];
            if (!fr->ok) continue;
            tally_t ft;
            fa_tally(fr, s, sc->thr, &ft);
            snprintf(c[1], CELL, "%s", fr->label);
            snprintf(c[2], CELL, "%" PRIu64, ft.nq);
            snprintf(c[3], CELL, "%" PRIu64, ft.pos);
            fmt_frac(ft.best, ft.pos, c[4], CELL);
            fmt_frac(ft.hit, ft.pos, c[5], CELL);
            snprintf(c[6], CELL, "%" PRIu64, ft.false_hits);
            snprintf(c[7], CELL, "-");
            fmt_us(fr->lat.p50, c[8], CELL);
            fmt_us(fr->lat.p99, c[9], CELL);
            snprintf(c[10], CELL, "-");
            bench_table_row(f, cols, NC, cells);
        }
    }
    fprintf(f, "\n");
    for (int t = 0; t < o->nthr; t++) {
        const sc_res_t *sc = &r->sc[t];
        fprintf(f, "- T %.2f: %.0f entries past the first stage per search (index_filtered / "
                "index_searches)", (double)sc->thr, sc->filtered);
        if (r->fa[FA_HNSW].ok)
            fprintf(f, "; HNSW p99 / simcache p99 = %s (p50: %s)",
                    bench_fmt_ratio(r->fa[FA_HNSW].lat.p99 / sc->lat.p99, a, sizeof a),
                    bench_fmt_ratio(r->fa[FA_HNSW].lat.p50 / sc->lat.p50, b, sizeof b));
        fprintf(f, "; batches: %" PRIu64 " lookups in %d pass%s, %" PRIu64
                " answers differ from the single lookups'", sc->batch_lookups, sc->batch_passes,
                sc->batch_passes == 1 ? "" : "es", sc->batch_mismatch);
        if (sc->t.bad_id) fprintf(f, "; %" PRIu64 " hits on ids never put", sc->t.bad_id);
        if (sc->t.edge_hits)
            fprintf(f, "; %" PRIu64 " hits at the edge (exact best just under T, within 1e-5)",
                    sc->t.edge_hits);
        fprintf(f, "\n");
    }
}

static void print_churn(FILE *f, const set_t *s, const churn_res_t *r)
{
    fprintf(f, "\n#### churn on %s: max_entries %" PRIu64 ", turnover %.1f\n\n", s->name, r->cap,
            r->turnover);
    char wrap[160] = "";
    if (r->puts > s->n)
        snprintf(wrap, sizeof wrap, "; the file wraps %.1f times, a row put again gets a new id",
                 (double)r->puts / (double)s->n - 1);
    fprintf(f, "%" PRIu64 " puts of the base in file order (a first fill of %" PRIu64
            ", then %.1f x cap%s), one client; after the first fill a lookup at T %.2f every %"
            PRIu64 " puts (the queries in turn), scored against the exact best over the entries "
            "the mirror says are live; %.1f s, %.0f puts/s (the put calls alone)\n",
            r->puts, r->cap, r->turnover, wrap, (double)CHURN_THR, r->k, r->secs, r->put_rate);
    fprintf(f, "eviction: simcached evicts the least recently used unleased host-tier entry (one "
            "LRU over all namespaces) when a put would pass max_entries; puts, hits (lease taken "
            "and released) and gets make an entry the most recently used, misses do not. The "
            "mirror replays that on an LRU list of ids (no lease is held across a put here, so "
            "no entry is ever pinned when the daemon evicts). Bytes never bind: the host tier "
            "holds 4 KiB x cap and more.\n");
    fprintf(f, "mirror check: evictions daemon %" PRIu64 " / mirror %" PRIu64 "; entries daemon %"
            PRIu64 " / mirror %" PRIu64 "; simcache_get of %" PRIu64 " ids the mirror evicted: %"
            PRIu64 " still there; of %" PRIu64 " it holds: %" PRIu64 " missing, %" PRIu64
            " wrong blob; %" PRIu64 " hits on ids it evicted (not scored); index_recentres %"
            PRIu64 ", %.0f entries past the first stage per search\n",
            r->ev_daemon, r->ev_mirror, r->ns_entries, r->mirror_live, r->chk_ev, r->chk_ev_found,
            r->chk_live, r->chk_live_missing, r->chk_live_blob, r->hits_on_evicted, r->recentres,
            r->filtered);
    uint64_t mism = r->chk_ev_found + r->chk_live_missing + r->hits_on_evicted +
                    (r->ev_daemon != r->ev_mirror) + (r->ns_entries != r->mirror_live);
    if (mism || r->disk_capacity)
        fprintf(f, "note: the mirror is not exact (%" PRIu64 " mismatches%s); only the queries "
                "whose hit it knew are scored\n", mism,
                r->disk_capacity ? "; a disk tier keeps evicted entries findable" : "");
    fprintf(f, "\n");
    static const bench_col_t cols[] = {
        { "set", 20, 0 }, { "cap", 7, 1 }, { "puts", 8, 1 }, { "evictions", 9, 1 },
        { "lookups", 7, 1 }, { "positives", 9, 1 }, { "best-recall", 11, 1 },
        { "hit-recall", 10, 1 }, { "false hits", 10, 1 }, { "wrong blob", 10, 1 },
        { "p50 us", 8, 1 }, { "p99 us", 8, 1 }, { "recentres", 9, 1 },
    };
    enum { NC = sizeof cols / sizeof cols[0] };
    char c[NC][CELL];
    const char *cells[NC];
    for (int k = 0; k < NC; k++) cells[k] = c[k];
    snprintf(c[0], CELL, "%s", s->name);
    snprintf(c[1], CELL, "%" PRIu64, r->cap);
    snprintf(c[2], CELL, "%" PRIu64, r->puts);
    snprintf(c[3], CELL, "%" PRIu64, r->ev_daemon);
    snprintf(c[4], CELL, "%" PRIu64, r->lookups);
    snprintf(c[5], CELL, "%" PRIu64, r->t.pos);
    fmt_frac(r->t.best, r->t.pos, c[6], CELL);
    fmt_frac(r->t.hit, r->t.pos, c[7], CELL);
    snprintf(c[8], CELL, "%" PRIu64, r->t.false_hits);
    snprintf(c[9], CELL, "%" PRIu64, r->t.wrong_blob + r->chk_live_blob);
    fmt_us(r->lat.p50, c[10], CELL);
    fmt_us(r->lat.p99, c[11], CELL);
    snprintf(c[12], CELL, "%" PRIu64, r->recentres);
    bench_table_head(f, cols, NC);
    bench_table_row(f, cols, NC, cells);
}

/* One line per set and threshold: simcache's figures next to HNSW's. */
typedef struct {
    char name[128];
    uint64_t n;
    uint32_t dim;
    double mean2;
    float thr;
    tally_t sc, hn;
    double sc_p99, hn_p99, batch_qps;
    int has_hnsw;
} sum_row_t;

static void print_summary(FILE *f, const sum_row_t *rows, int nr)
{
    static const bench_col_t cols[] = {
        { "set", 20, 0 }, { "n", 6, 1 }, { "dim", 4, 1 }, { "mean norm^2", 12, 1 }, { "T", 4, 1 },
        { "positives", 9, 1 }, { "best-recall", 11, 1 }, { "hit-recall", 10, 1 },
        { "false hits", 10, 1 }, { "wrong blob", 10, 1 }, { "p99 us", 8, 1 },
        { "batch q/s", 9, 1 }, { "HNSW best-recall", 16, 1 }, { "HNSW p99 / p99", 14, 1 },
    };
    enum { NC = sizeof cols / sizeof cols[0] };
    fprintf(f, "\n### Summary (simcache over the socket; HNSW: FAISS IndexHNSWFlat in process)\n\n");
    bench_table_head(f, cols, NC);
    for (int i = 0; i < nr; i++) {
        const sum_row_t *r = &rows[i];
        char c[NC][CELL];
        const char *cells[NC];
        for (int k = 0; k < NC; k++) cells[k] = c[k];
        snprintf(c[0], CELL, "%s", r->name);
        snprintf(c[1], CELL, "%" PRIu64, r->n);
        snprintf(c[2], CELL, "%u", r->dim);
        snprintf(c[3], CELL, "%.3f", r->mean2);
        snprintf(c[4], CELL, "%.2f", (double)r->thr);
        snprintf(c[5], CELL, "%" PRIu64, r->sc.pos);
        fmt_frac(r->sc.best, r->sc.pos, c[6], CELL);
        fmt_frac(r->sc.hit, r->sc.pos, c[7], CELL);
        snprintf(c[8], CELL, "%" PRIu64, r->sc.false_hits);
        snprintf(c[9], CELL, "%" PRIu64, r->sc.wrong_blob);
        fmt_us(r->sc_p99, c[10], CELL);
        snprintf(c[11], CELL, "%.0f", r->batch_qps);
        if (r->has_hnsw) {
            fmt_frac(r->hn.best, r->hn.pos, c[12], CELL);
            bench_fmt_ratio(r->hn_p99 / r->sc_p99, c[13], CELL);
        } else {
            snprintf(c[12], CELL, "-");
            snprintf(c[13], CELL, "-");
        }
        bench_table_row(f, cols, NC, cells);
    }
}

/* ---- CSV ---- */

static void csv_head(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bench_recall: cannot write %s: %s\n", path, strerror(errno));
        return;
    }
    fprintf(f, "set,n,dim,T,method,positives,best_recall,hit_recall,false_hits,p50_us,p99_us,"
            "batch_qps,queries,wrong_blob,cap,turnover,puts,evictions,mirror_mismatches\n");
    fclose(f);
}

static void csv_line(const char *path, const set_t *s, float thr, const char *method,
                     const tally_t *t, const bench_stats_t *lat, double batch_qps,
                     const churn_res_t *ch)
{
    FILE *f = fopen(path, "a");
    if (!f) return;
    fprintf(f, "%s,%" PRIu64 ",%u,%.2f,%s,%" PRIu64 ",%.5f,%.5f,%" PRIu64 ",%.2f,%.2f,", s->name,
            s->n, s->dim, (double)thr, method, t->pos,
            t->pos ? (double)t->best / (double)t->pos : 1.0,
            t->pos ? (double)t->hit / (double)t->pos : 1.0, t->false_hits, lat->p50 / 1e3,
            lat->p99 / 1e3);
    if (batch_qps > 0) fprintf(f, "%.0f", batch_qps);
    fprintf(f, ",%" PRIu64 ",", t->nq);
    if (!strncmp(method, "simcache", 8)) fprintf(f, "%" PRIu64, t->wrong_blob);   /* FAISS has no blobs */
    fprintf(f, ",");
    if (ch)
        fprintf(f, "%" PRIu64 ",%.2f,%" PRIu64 ",%" PRIu64 ",%" PRIu64 "\n", ch->cap, ch->turnover,
                ch->puts, ch->ev_daemon,
                ch->chk_ev_found + ch->chk_live_missing + ch->hits_on_evicted);
    else
        fprintf(f, ",,,,\n");
    fclose(f);
}

static void csv_static(const char *path, const opts_t *o, const set_t *s, const static_res_t *r)
{
    for (int t = 0; t < o->nthr; t++) {
        const sc_res_t *sc = &r->sc[t];
        tally_t st = sc->t;
        st.wrong_blob += sc->batch_wrong_blob;
        csv_line(path, s, sc->thr, "simcache", &st, &sc->lat, sc->batch_qps, NULL);
        static const char *names[FA_N] = { "faiss_flat", "faiss_lsh1024", "faiss_hnsw" };
        for (int k = 0; k < FA_N; k++) {
            if (!r->fa[k].ok) continue;
            tally_t ft;
            fa_tally(&r->fa[k], s, sc->thr, &ft);
            csv_line(path, s, sc->thr, names[k], &ft, &r->fa[k].lat, 0, NULL);
        }
    }
}

/* ---- options ---- */

static int usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [SIMCACHED] --set DIR [--set DIR]... [--thresholds 0.7,0.8,0.9]\n"
            "          [--daemon-arg ARG]... [--fill-threads N] [--queries N] [--no-faiss]\n"
            "          [--hnsw-m 32] [--hnsw-ef 128] [--csv PATH] [--churn CAP]...\n"
            "          [--turnover X] [--churn-only]\n", argv0);
    return 1;
}

static void no_sets_note(void)
{
    printf("bench_recall: no embedding sets given (--set DIR), nothing to measure.\n\n"
           "A set is a directory with base.fvecs, query.fvecs and meta.txt, made from\n"
           "documentation installed on this machine by bench/realtext/make_sets.py, e.g.\n\n"
           "  python3 bench/realtext/make_sets.py --corpus man --embed srp --dim 1024 \\\n"
           "      --base 60000 --queries 2000 --seed 1 --out /tmp/sets/man-srp-1024\n"
           "  python3 bench/realtext/make_sets.py --corpus pydoc --embed srp --dim 1024 \\\n"
           "      --order topic --out /tmp/sets/pydoc-srp-1024-topic   # for --churn\n\n"
           "(corpora man, pydoc, debdoc; embeddings srp, lsa, wordmean; it needs python3-numpy),\n"
           "then run\n\n"
           "  ./build/bench/bench_recall --set /tmp/sets/man-srp-1024 [--set DIR]... "
           "[--churn 512]\n");
}

static int parse_thresholds(opts_t *o, const char *s)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    o->nthr = 0;
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        double v = strtod(tok, &end);
        if (*end || !(v > 0 && v <= 1) || o->nthr == MAX_THR) return -1;
        o->thr[o->nthr++] = (float)v;
    }
    return o->nthr ? 0 : -1;
}

static int parse_args(opts_t *o, char *simcached, size_t len, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strncmp(a, "--daemon-arg=", 13)) {
            if (o->ndaemon_args == MAX_DAEMON_ARGS) return -1;
            o->daemon_args[o->ndaemon_args++] = a + 13;
        } else if (!strcmp(a, "--daemon-arg") && v) {
            if (o->ndaemon_args == MAX_DAEMON_ARGS) return -1;
            o->daemon_args[o->ndaemon_args++] = v;
            i++;
        } else if (!strcmp(a, "--set") && v) {
            if (o->nsets == MAX_SETS) return -1;
            o->sets[o->nsets++] = v;
            i++;
        } else if (!strcmp(a, "--thresholds") && v) {
            if (parse_thresholds(o, v)) return -1;
            i++;
        } else if (!strcmp(a, "--fill-threads") && v) {
            o->fill_threads = atoi(v);
            if (o->fill_threads < 1 || o->fill_threads > 64) return -1;
            i++;
        } else if (!strcmp(a, "--queries") && v) {
            o->queries = strtoull(v, NULL, 10);
            if (!o->queries) return -1;
            i++;
        } else if (!strcmp(a, "--no-faiss")) {
            o->no_faiss = 1;
        } else if (!strcmp(a, "--hnsw-m") && v) {
            o->hnsw_m = atoi(v);
            if (o->hnsw_m < 2 || o->hnsw_m > 512) return -1;
            i++;
        } else if (!strcmp(a, "--hnsw-ef") && v) {
            o->hnsw_ef = atoi(v);
            if (o->hnsw_ef < 1 || o->hnsw_ef > 65536) return -1;
            i++;
        } else if (!strcmp(a, "--csv") && v) {
            o->csv = v;
            i++;
        } else if (!strcmp(a, "--churn") && v) {
            if (o->nchurn == MAX_CHURN) return -1;
            o->churn[o->nchurn] = strtoull(v, NULL, 10);
            if (o->churn[o->nchurn] < 1 || o->churn[o->nchurn] > 100000000) return -1;
            o->nchurn++;
            i++;
        } else if (!strcmp(a, "--turnover") && v) {
            o->turnover = atof(v);
            if (!(o->turnover > 0 && o->turnover <= 1000)) return -1;
            i++;
        } else if (!strcmp(a, "--churn-only")) {
            o->churn_only = 1;
        } else if (!strcmp(a, "--simcached") && v) {
            snprintf(simcached, len, "%s", v);
            i++;
        } else if (a[0] != '-') {
            snprintf(simcached, len, "%s", a);
        } else {
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    static char simcached[PATH_MAX];
    static opts_t o;
    bench_default_simcached(simcached, sizeof simcached);
    o.simcached = simcached;
    o.fill_threads = 2;
    o.hnsw_m = 32;
    o.hnsw_ef = 128;
    o.turnover = 10;
    o.csv = "bench_recall.csv";
    parse_thresholds(&o, "0.7,0.8,0.9");
    if (parse_args(&o, simcached, sizeof simcached, argc, argv)) return usage(argv[0]);
    if (!o.nsets) {
        no_sets_note();
        return 0;
    }
    if (o.churn_only && !o.nchurn) return usage(argv[0]);
    if (access(simcached, X_OK)) {
        fprintf(stderr, "bench_recall: no simcached at %s (pass its path)\n", simcached);
        return 1;
    }

    uint64_t t_start = bench_now_ns();
    printf("## Recall on real-text embeddings (bench_recall)\n\n");
    bench_print_machine(stdout);
    printf("load average at start: %.2f; FAISS %s, OpenMP threads %d; thresholds", bench_loadavg(),
           fa_version(), fa_max_threads());
    for (int t = 0; t < o.nthr; t++) printf("%s %.2f", t ? "," : "", (double)o.thr[t]);
    printf("; simcached %s", simcached);
    for (int i = 0; i < o.ndaemon_args; i++) printf(" %s", o.daemon_args[i]);
    printf("\n\nbest-recall: among queries whose exact best cosine >= T, the share answered with "
           "an entry whose exact cosine >= exact best - 1e-5; hit-recall: the share with any hit; "
           "false hits: hits whose exact cosine < T - 1e-5 (must be 0); wrong blob: hits whose "
           "bytes are not what was put under that id (must be 0). p50/p99: single lookups, the "
           "call alone, the lease released after the timer stops; batch-64: lookups/s of "
           "simcache_lookup_batch with 64 queries, one client thread, passes over all queries "
           "until the calls (timed alone) add up to >= 1 s.\n");
    fflush(stdout);

    csv_head(o.csv);
    sum_row_t *sum = bench_xcalloc((size_t)o.nsets * o.nthr, sizeof *sum);
    int nsum = 0, measured = 0;
    for (int i = 0; i < o.nsets; i++) {
        set_t s;
        fprintf(stderr, "\n== %s ==\n", o.sets[i]);
        if (set_load(&o, o.sets[i], &s)) {
            printf("\n### %s: could not be read (see stderr)\n", o.sets[i]);
            continue;
        }
        print_set_head(stdout, &o, &s);
        fflush(stdout);
        if (!o.churn_only) {
            static_res_t *r = bench_xcalloc(1, sizeof *r);
            if (run_static(&o, &s, r) == 0) {
                print_static(stdout, &o, &s, r);
                csv_static(o.csv, &o, &s, r);
                for (int t = 0; t < o.nthr; t++) {
                    sum_row_t *sr = &sum[nsum++];
                    snprintf(sr->name, sizeof sr->name, "%s", s.name);
                    sr->n = s.n;
                    sr->dim = s.dim;
                    sr->mean2 = s.mean2;
                    sr->thr = r->sc[t].thr;
                    sr->sc = r->sc[t].t;
                    sr->sc.wrong_blob += r->sc[t].batch_wrong_blob;
                    sr->sc_p99 = r->sc[t].lat.p99;
                    sr->batch_qps = r->sc[t].batch_qps;
                    if (r->fa[FA_HNSW].ok) {
                        sr->has_hnsw = 1;
                        fa_tally(&r->fa[FA_HNSW], &s, r->sc[t].thr, &sr->hn);
                        sr->hn_p99 = r->fa[FA_HNSW].lat.p99;
                    }
                }
                measured++;
            } else {
                printf("\nthe run at rest failed (see stderr)\n");
            }
            for (int k = 0; k < FA_N; k++) fa_res_free(&r->fa[k]);
            free(r);
        }
        for (int c = 0; c < o.nchurn; c++) {
            churn_res_t cr;
            if (run_churn(&o, &s, o.churn[c], &cr) == 0) {
                print_churn(stdout, &s, &cr);
                char method[48];
                snprintf(method, sizeof method, "simcache_churn_%" PRIu64, cr.cap);
                csv_line(o.csv, &s, CHURN_THR, method, &cr.t, &cr.lat, 0, &cr);
                measured++;
            } else {
                printf("\nchurn with max_entries %" PRIu64 " failed (see stderr)\n", o.churn[c]);
            }
        }
        fflush(stdout);
        set_free(&s);
    }
    if (nsum > o.nthr) print_summary(stdout, sum, nsum);   /* more than one set */
    free(sum);
    printf("\nload average at end: %.2f; total %.0f s; CSV: %s\n", bench_loadavg(), secs(t_start),
           o.csv);
    return measured ? 0 : 1;
}
