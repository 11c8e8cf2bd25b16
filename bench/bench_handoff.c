/* bench_handoff.c - host-tier hand-off: put and get of 256 KiB to 128 MiB
 * blobs through simcache, against SET/GET of the same bytes through a local
 * redis-server over a Unix socket, and against a plain memcpy of the size.
 *
 * The idea: a simcache get hands the reader a lease on bytes that are already
 * mapped into it, so it should cost two round trips (get, release) whatever
 * the size, while Redis moves every byte through the socket and memcpy is the
 * floor of anything that moves bytes. All three are driven from this one
 * process, on the same bytes, in the same run, taking turns (see
 * measure_group), and are printed as ratios. What was read is checked byte
 * for byte once per size (and every get+sum sample checks its sum), so a fast
 * figure cannot come from wrong bytes.
 *
 *   bench_handoff [SIMCACHED] [--simcached PATH] [--redis-server PATH]
 *                 [--no-redis] [--scale X]
 *
 * SIMCACHED defaults to $SIMCACHED, else ../cached/simcached next to this
 * binary (the build dir). --scale multiplies every repetition count (0.2 for
 * a quick look). Exits 0 whatever the targets say (it is a benchmark, not a
 * test); 1 only if it could not run or read wrong bytes.
 */
#include <hiredis.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "simcache.h"

#define DIM 64
#define PAGE 4096u

/* Repetitions per size: fewer where one sample takes long, so the whole run
 * stays near two minutes on a 2-core machine. */
typedef struct {
    uint64_t size;
    int put;      /* simcache put, zero-copy put */
    int redis;    /* redis SET, redis GET */
    int read;     /* get+sum, memcpy */
    int cold;     /* get+sum on a new handle */
} plan_t;

static const plan_t plans[] = {
    { 256u << 10, 400, 400, 400, 100 },
    { 2u << 20, 150, 100, 200, 50 },
    { 32u << 20, 25, 10, 40, 15 },
    { 128u << 20, 8, 5, 15, 8 },
};
#define NSIZES ((int)(sizeof plans / sizeof plans[0]))

/* get and get+touch cost microseconds at every size: they run round-robin
 * over the sizes, so a noisy moment of the machine hits every size alike
 * and "does not grow with size" is compared under the same conditions. */
#define GET_REPS 2000

enum {
    M_PUT, M_PUT_ZC, M_ZC_BEGIN, M_ZC_WRITE, M_ZC_COMMIT, M_SET, M_MEMCPY,
    M_GET, M_GET_TOUCH, M_GET_SUM, M_GET_COLD, M_REDIS_GET, M_PING, M_N
};

typedef struct {
    simcache_t *h;
    const char *sock;           /* simcached client socket (new handles) */
    redisContext *r;            /* NULL: Redis rows are n/a */
    uint8_t *src, *dst;         /* max size each, pre-faulted */
    uint64_t size;
    simcache_layout_t layout;
    uint64_t get_id;            /* the entry the get rows read */
    uint64_t ref_sum;           /* sum_words() of that entry's bytes */
    uint64_t ids[NSIZES];       /* get_id of each size, kept until the end */
    uint64_t sums[NSIZES];      /* ref_sum of each size */
    uint64_t seed;
    float emb[DIM];
    double phase[3];            /* zero-copy put of the last sample: begin, write, commit */
    char key[32];
    char err[512];
} ctx_t;

/* Keeps the compiler from dropping reads whose result nobody uses. */
static volatile uint64_t sink;

static bench_stats_t results[NSIZES][M_N];
static int have[NSIZES][M_N];

/* ---- bytes ---- */


/* Every byte read once, as 64-bit words (sizes here are multiples of 8 and
 * the arena hands out page-aligned extents). */
static uint64_t sum_words(const void *p, uint64_t n)
{
    const uint64_t *w = p;
    uint64_t a = 0, b = 0, c = 0, d = 0, k = n / 8, i = 0;
    for (; i + 4 <= k; i += 4) {
        a += w[i];
        b += w[i + 1];
        c += w[i + 2];
        d += w[i + 3];
    }
    for (; i < k; i++) a += w[i];
    return a + b + c + d;
}

/* One byte per page: makes the mapping present without reading the bytes. */
static uint64_t touch_pages(const uint8_t *p, uint64_t n)
{
    uint64_t s = 0;
    for (uint64_t i = 0; i < n; i += PAGE) s += p[i];
    return s + p[n - 1];
}

static void next_embedding(ctx_t *x)
{
    for (int i = 0; i < DIM; i++)
        x->emb[i] = (float)((double)(bench_mix(&x->seed) >> 11) / 9007199254740992.0 - 0.5);
    x->emb[0] += 1.0f;   /* never the zero vector */
}

/* F16, K and V, one layer, 8 heads of 128: 4096 bytes per token. */
static simcache_layout_t layout_for(uint64_t size)
{
    simcache_layout_t l = { SIMCACHE_DTYPE_F16, 2, 1, 8, 128, (uint32_t)(size / 4096u) };
    return l;
}

static double sc_fail(ctx_t *x, const char *what, int rc)
{
    snprintf(x->err, sizeof x->err, "%s: %s (%s)", what, simcache_strerror(rc),
             simcache_last_error(x->h));
    return -1;
}

/* ---- one sample of each operation: returns its ns, or -1 with x->err ---- */

typedef double (*op_fn)(ctx_t *x);

static double op_put(ctx_t *x)
{
    uint64_t id;
    next_embedding(x);
    uint64_t t0 = bench_now_ns();
    int rc = simcache_put(x->h, x->emb, &x->layout, x->src, x->size, SIMCACHE_HOST_MEMORY, &id);
    uint64_t t1 = bench_now_ns();
    if (rc) return sc_fail(x, "simcache_put", rc);
    /* Untimed: keep the tier from filling, so no sample pays an eviction. */
    if ((rc = simcache_delete(x->h, id))) return sc_fail(x, "simcache_delete", rc);
    return (double)(t1 - t0);
}

static double op_put_zc(ctx_t *x)
{
    uint64_t token, id;
    void *buf;
    next_embedding(x);
    uint64_t t0 = bench_now_ns();
    int rc = simcache_put_begin(x->h, x->size, &buf, &token);
    if (rc) return sc_fail(x, "simcache_put_begin", rc);
    uint64_t t1 = bench_now_ns();
    memcpy(buf, x->src, x->size);   /* stands for the producer computing the KV in place */
    uint64_t t2 = bench_now_ns();
    rc = simcache_put_commit(x->h, token, x->emb, &x->layout, NULL, &id);
    uint64_t t3 = bench_now_ns();
    if (rc) return sc_fail(x, "simcache_put_commit", rc);
    if ((rc = simcache_delete(x->h, id))) return sc_fail(x, "simcache_delete", rc);
    x->phase[0] = (double)(t1 - t0);
    x->phase[1] = (double)(t2 - t1);
    x->phase[2] = (double)(t3 - t2);
    return (double)(t3 - t0);
}

static double op_memcpy(ctx_t *x)
{
    uint64_t t0 = bench_now_ns();
    memcpy(x->dst, x->src, x->size);
    uint64_t t1 = bench_now_ns();
    sink += x->dst[x->size - 1];
    return (double)(t1 - t0);
}

static double op_ping(ctx_t *x)
{
    uint64_t t0 = bench_now_ns();
    int rc = simcache_ping(x->h);
    uint64_t t1 = bench_now_ns();
    return rc ? sc_fail(x, "simcache_ping", rc) : (double)(t1 - t0);
}

enum { READ_NONE, READ_TOUCH, READ_SUM };

/* get by id, read the bytes as asked, release: one whole hand-off. */
static double get_read(ctx_t *x, simcache_t *h, int how)
{
    simcache_match_t m;
    uint64_t s = 0;
    uint64_t t0 = bench_now_ns();
    int rc = simcache_get(h, x->get_id, &m);
    if (rc) return sc_fail(x, "simcache_get", rc);
    if (how == READ_TOUCH) s = touch_pages(m.data, m.size);
    else if (how == READ_SUM) s = sum_words(m.data, m.size);
    uint64_t size = m.size;
    rc = simcache_release(h, &m);
    uint64_t t1 = bench_now_ns();
    if (rc) return sc_fail(x, "simcache_release", rc);
    if (size != x->size) {
        snprintf(x->err, sizeof x->err, "get returned %" PRIu64 " bytes, not %" PRIu64, size, x->size);
        return -1;
    }
    if (how == READ_SUM && s != x->ref_sum) {
        snprintf(x->err, sizeof x->err, "get+sum: bytes differ from what was put");
        return -1;
    }
    sink += s;
    return (double)(t1 - t0);
}

static double op_get(ctx_t *x) { return get_read(x, x->h, READ_NONE); }
static double op_get_touch(ctx_t *x) { return get_read(x, x->h, READ_TOUCH); }
static double op_get_sum(ctx_t *x) { return get_read(x, x->h, READ_SUM); }

static simcache_t *open_handle(const char *sock, char *err, size_t errlen)
{
    simcache_opts_t o;
    simcache_opts_init(&o);
    o.socket_path = sock;
    o.model = "bench-handoff";
    o.layout_fingerprint = "f16/2x1x8x128";
    o.dim = DIM;
    o.timeout_ms = 60000;
    simcache_t *h;
    int rc = simcache_connect(&o, &h);
    if (rc) {
        snprintf(err, errlen, "simcache_connect %s: %s (%s)", sock, simcache_strerror(rc),
                 simcache_last_error(h));
        simcache_close(h);
        return NULL;
    }
    return h;
}

/* A reader process that just connected: its mapping of the arena has no page
 * of the entry yet. Connecting and closing are not timed. */
static double op_get_cold(ctx_t *x)
{
    simcache_t *h = open_handle(x->sock, x->err, sizeof x->err);
    if (!h) return -1;
    double ns = get_read(x, h, READ_SUM);
    simcache_close(h);
    return ns;
}

static double op_redis_set(ctx_t *x)
{
    /* Untimed: SET then does not pay for freeing the previous value. */
    redisReply *rep = redisCommand(x->r, "DEL %s", x->key);
    if (rep) freeReplyObject(rep);
    uint64_t t0 = bench_now_ns();
    rep = redisCommand(x->r, "SET %s %b", x->key, x->src, (size_t)x->size);
    int ok = rep && rep->type == REDIS_REPLY_STATUS;
    if (rep) freeReplyObject(rep);
    uint64_t t1 = bench_now_ns();
    if (!ok) {
        snprintf(x->err, sizeof x->err, "redis SET: %s", rep ? "unexpected reply" : x->r->errstr);
        return -1;
    }
    return (double)(t1 - t0);
}

static double op_redis_get(ctx_t *x)
{
    uint64_t t0 = bench_now_ns();
    redisReply *rep = redisCommand(x->r, "GET %s", x->key);
    int ok = rep && rep->type == REDIS_REPLY_STRING && rep->len == x->size;
    if (ok) sink += (uint8_t)rep->str[rep->len - 1];
    if (rep) freeReplyObject(rep);
    uint64_t t1 = bench_now_ns();
    if (!ok) {
        snprintf(x->err, sizeof x->err, "redis GET: %s", rep ? "wrong reply" : x->r->errstr);
        return -1;
    }
    return (double)(t1 - t0);
}

/* ---- measuring ---- */

static int scaled(int reps, double scale)
{
    int n = (int)((double)reps * scale + 0.5);
    return n < 3 ? 3 : n;
}

typedef struct {
    int m;          /* M_* row the samples go to */
    op_fn fn;
    int reps;
} op_t;

#define MAX_GROUP 8

#define ROUNDS 10

/* The operations of one size, in ROUNDS rounds: each round runs a block of
 * about reps/ROUNDS consecutive samples of every operation, and the first
 * operation of a round rotates. Consecutive samples keep each method in its
 * own steady state (caches, malloc's heap), as a loop of that one call would
 * be; the rounds make a busy moment of this shared machine slow simcache,
 * Redis and memcpy alike, so their ratios hold even when the absolute
 * figures do not. Where reps >= 50 (small blobs, where that state matters)
 * each block starts with one untimed sample, after 5 untimed ones at the
 * start; otherwise there is one untimed sample at the start. Fills
 * results[si][m] (and the zero-copy phases for M_PUT_ZC). Returns 0, or -1
 * with x->err. */
static int measure_group(ctx_t *x, int si, const op_t *ops, int nops)
{
    double *ns[MAX_GROUP] = { NULL }, *ph[3] = { NULL, NULL, NULL };
    int done[MAX_GROUP] = { 0 }, rc = -1;
    for (int k = 0; k < nops; k++) {
        ns[k] = malloc((size_t)ops[k].reps * sizeof(double));
        if (!ns[k]) goto oom;
        if (ops[k].m == M_PUT_ZC)
            for (int j = 0; j < 3; j++)
                if (!(ph[j] = malloc((size_t)ops[k].reps * sizeof(double)))) goto oom;
    }
    for (int k = 0; k < nops; k++)
        for (int i = 0; i < (ops[k].reps >= 50 ? 5 : 1); i++)
            if (ops[k].fn(x) < 0) goto out;
    for (int round = 0; round < ROUNDS; round++) {
        for (int j = 0; j < nops; j++) {
            int k = (round + j) % nops;
            /* Spread reps over the rounds: block ends at reps*(round+1)/ROUNDS. */
            int until = (int)(((long)ops[k].reps * (round + 1)) / ROUNDS);
            if (done[k] >= until) continue;
            if (ops[k].reps >= 50 && ops[k].fn(x) < 0) goto out;
            for (; done[k] < until; done[k]++) {
                double t = ops[k].fn(x);
                if (t < 0) goto out;
                ns[k][done[k]] = t;
                if (ops[k].m == M_PUT_ZC)
                    for (int q = 0; q < 3; q++) ph[q][done[k]] = x->phase[q];
            }
        }
    }
    for (int k = 0; k < nops; k++) {
        bench_stats(ns[k], (size_t)ops[k].reps, &results[si][ops[k].m]);
        have[si][ops[k].m] = 1;
        if (ops[k].m == M_PUT_ZC)
            for (int q = 0; q < 3; q++) {
                bench_stats(ph[q], (size_t)ops[k].reps, &results[si][M_ZC_BEGIN + q]);
                have[si][M_ZC_BEGIN + q] = 1;
            }
    }
    rc = 0;
    goto out;
oom:
    snprintf(x->err, sizeof x->err, "out of memory");
out:
    for (int k = 0; k < nops; k++) free(ns[k]);
    for (int q = 0; q < 3; q++) free(ph[q]);
    return rc;
}

/* Once per size, before timing: every path hands back exactly what went in.
 * Leaves the entry the get rows read in x->get_id. */
static int verify(ctx_t *x)
{
    simcache_match_t m;
    uint64_t id, token;
    void *buf;
    next_embedding(x);
    int rc = simcache_put(x->h, x->emb, &x->layout, x->src, x->size, SIMCACHE_HOST_MEMORY, &id);
    if (rc) return (int)sc_fail(x, "verify: simcache_put", rc);
    if ((rc = simcache_get(x->h, id, &m))) return (int)sc_fail(x, "verify: simcache_get", rc);
    int same = m.size == x->size && memcmp(m.data, x->src, x->size) == 0;
    simcache_release(x->h, &m);
    if (!same) {
        snprintf(x->err, sizeof x->err, "verify: simcache get after put: bytes differ");
        return -1;
    }
    x->get_id = id;

    next_embedding(x);
    if ((rc = simcache_put_begin(x->h, x->size, &buf, &token)))
        return (int)sc_fail(x, "verify: simcache_put_begin", rc);
    memcpy(buf, x->src, x->size);
    if ((rc = simcache_put_commit(x->h, token, x->emb, &x->layout, NULL, &id)))
        return (int)sc_fail(x, "verify: simcache_put_commit", rc);
    if ((rc = simcache_get(x->h, id, &m))) return (int)sc_fail(x, "verify: simcache_get", rc);
    same = m.size == x->size && memcmp(m.data, x->src, x->size) == 0;
    simcache_release(x->h, &m);
    simcache_delete(x->h, id);
    if (!same) {
        snprintf(x->err, sizeof x->err, "verify: simcache get after zero-copy put: bytes differ");
        return -1;
    }

    memcpy(x->dst, x->src, x->size);
    if (memcmp(x->dst, x->src, x->size)) {
        snprintf(x->err, sizeof x->err, "verify: memcpy: bytes differ");
        return -1;
    }

    if (x->r) {
        redisReply *rep = redisCommand(x->r, "SET %s %b", x->key, x->src, (size_t)x->size);
        int ok = rep && rep->type == REDIS_REPLY_STATUS;
        if (rep) freeReplyObject(rep);
        rep = ok ? redisCommand(x->r, "GET %s", x->key) : NULL;
        ok = rep && rep->type == REDIS_REPLY_STRING && rep->len == x->size &&
             memcmp(rep->str, x->src, x->size) == 0;
        if (rep) freeReplyObject(rep);
        if (!ok) {
            snprintf(x->err, sizeof x->err, "verify: redis GET after SET: %s",
                     x->r->err ? x->r->errstr : "bytes differ");
            return -1;
        }
    }
    return 0;
}

/* Make size si the one the operations work on. */
static void select_size(ctx_t *x, int si)
{
    x->size = plans[si].size;
    x->layout = layout_for(x->size);
    x->get_id = x->ids[si];
    x->ref_sum = x->sums[si];
    snprintf(x->key, sizeof x->key, "bench:%d", si);
}

/* get-type operation m round-robin over the sizes, reps samples of each
 * after 5 warm-up rounds; the first size of a round rotates. With
 * with_ping, each round also takes a ping sample (the round-trip floor, in
 * results[0][M_PING]) under the same conditions. */
static int measure_interleaved(ctx_t *x, int m, op_fn fn, int reps, int with_ping)
{
    double *ns[NSIZES + 1];
    int rc = -1;
    for (int si = 0; si <= NSIZES; si++) ns[si] = malloc((size_t)reps * sizeof(double));
    for (int si = 0; si <= NSIZES; si++)
        if (!ns[si]) {
            snprintf(x->err, sizeof x->err, "out of memory");
            goto out;
        }
    for (int i = -5; i < reps; i++) {
        for (int k = 0; k < NSIZES + with_ping; k++) {
            int si = (i + 5 + k) % (NSIZES + with_ping);
            double t;
            if (si == NSIZES) {
                t = op_ping(x);
            } else {
                select_size(x, si);
                t = fn(x);
            }
            if (t < 0) goto out;
            if (i >= 0) ns[si][i] = t;
        }
    }
    for (int si = 0; si < NSIZES; si++) {
        bench_stats(ns[si], (size_t)reps, &results[si][m]);
        have[si][m] = 1;
    }
    if (with_ping) {
        bench_stats(ns[NSIZES], (size_t)reps, &results[0][M_PING]);
        have[0][M_PING] = 1;
    }
    rc = 0;
out:
    for (int si = 0; si <= NSIZES; si++) free(ns[si]);
    return rc;
}

/* Everything of size si but the interleaved gets. Leaves the entry those
 * read in x->ids[si]. */
static int run_size(ctx_t *x, int si, double scale)
{
    const plan_t *p = &plans[si];
    char sz[32];
    bench_fmt_size(p->size, sz, sizeof sz);
    fprintf(stderr, "%s: verifying, then measuring ...\n", sz);
    bench_fill(x->src, p->size, 0x5eed0000u + (uint64_t)si);
    x->sums[si] = sum_words(x->src, p->size);
    select_size(x, si);
    if (verify(x)) return -1;
    x->ids[si] = x->get_id;

    op_t ops[MAX_GROUP] = {
        { M_MEMCPY, op_memcpy, scaled(p->read, scale) },
        { M_PUT, op_put, scaled(p->put, scale) },
        { M_PUT_ZC, op_put_zc, scaled(p->put, scale) },
        { M_GET_SUM, op_get_sum, scaled(p->read, scale) },
        { M_GET_COLD, op_get_cold, scaled(p->cold, scale) },
    };
    int nops = 5;
    if (x->r) {
        ops[nops++] = (op_t){ M_SET, op_redis_set, scaled(p->redis, scale) };
        ops[nops++] = (op_t){ M_REDIS_GET, op_redis_get, scaled(p->redis, scale) };
    }
    if (measure_group(x, si, ops, nops)) return -1;
    if (x->r) {
        redisReply *rep = redisCommand(x->r, "DEL %s", x->key);
        if (rep) freeReplyObject(rep);
    }
    return 0;
}

/* After every size: the gets, interleaved, with the round-trip floor. */
static int run_gets(ctx_t *x, double scale)
{
    int reps = scaled(GET_REPS, scale);
    fprintf(stderr, "get, get+touch: all sizes round-robin ...\n");
    if (measure_interleaved(x, M_GET, op_get, reps, 1) ||
        measure_interleaved(x, M_GET_TOUCH, op_get_touch, reps, 0))
        return -1;
    return 0;
}

/* ---- report ---- */

static const bench_col_t cols[] = {
    { "size", 7, 1 }, { "method", 28, 0 }, { "n", 4, 1 }, { "p50", 9, 1 },
    { "p99", 9, 1 }, { "GB/s", 6, 1 }, { "redis/this", 10, 1 }, { "this/memcpy", 11, 1 },
};
#define NCOLS ((int)(sizeof cols / sizeof cols[0]))

/* One row; `redis_m` is the Redis method the row compares with. */
static void row(int si, int m, const char *name, int redis_m)
{
    char sz[16], n[16], p50[24], p99[24], gbps[16], vr[16], vm[16];
    const bench_stats_t *s = &results[si][m];
    bench_fmt_size(plans[si].size, sz, sizeof sz);
    if (!have[si][m]) {
        const char *cells[NCOLS] = { sz, name, "-", "n/a", "n/a", "-", "-", "-" };
        bench_table_row(stdout, cols, NCOLS, cells);
        return;
    }
    snprintf(n, sizeof n, "%zu", s->n);
    bench_fmt_ns(s->p50, p50, sizeof p50);
    bench_fmt_ns(s->p99, p99, sizeof p99);
    bench_fmt_gbps(plans[si].size, s->p50, gbps, sizeof gbps);
    bench_fmt_ratio(have[si][redis_m] ? results[si][redis_m].p50 / s->p50 : 0, vr, sizeof vr);
    bench_fmt_ratio(have[si][M_MEMCPY] ? s->p50 / results[si][M_MEMCPY].p50 : 0, vm, sizeof vm);
    const char *cells[NCOLS] = { sz, name, n, p50, p99, gbps, vr, vm };
    bench_table_row(stdout, cols, NCOLS, cells);
}

static void report(void)
{
    printf("\n### put (bytes in the caller's memory -> stored)\n\n");
    bench_table_head(stdout, cols, NCOLS);
    for (int si = 0; si < NSIZES; si++) {
        row(si, M_PUT, "simcache put", M_SET);
        row(si, M_PUT_ZC, "simcache put zero-copy", M_SET);
        row(si, M_SET, "redis SET", M_SET);
        row(si, M_MEMCPY, "memcpy", M_SET);
    }

    static const bench_col_t zc[] = {
        { "size", 7, 1 }, { "begin p50", 9, 1 }, { "write p50", 9, 1 }, { "commit p50", 10, 1 },
        { "total p50", 9, 1 }, { "total p99", 9, 1 }, { "memcpy p50", 10, 1 },
    };
    printf("\n### zero-copy put, by phase (begin: staging memfd + round trip + mmap; "
           "write: the caller fills the staging pages; commit: daemon copy + hash + index + unmap)\n\n");
    bench_table_head(stdout, zc, 7);
    for (int si = 0; si < NSIZES; si++) {
        char c[7][24];
        bench_fmt_size(plans[si].size, c[0], sizeof c[0]);
        int ms[6] = { M_ZC_BEGIN, M_ZC_WRITE, M_ZC_COMMIT, M_PUT_ZC, M_PUT_ZC, M_MEMCPY };
        for (int k = 0; k < 6; k++) {
            if (!have[si][ms[k]]) snprintf(c[k + 1], sizeof c[k + 1], "n/a");
            else bench_fmt_ns(k == 4 ? results[si][ms[k]].p99 : results[si][ms[k]].p50, c[k + 1],
                              sizeof c[k + 1]);
        }
        const char *cells[7] = { c[0], c[1], c[2], c[3], c[4], c[5], c[6] };
        bench_table_row(stdout, zc, 7, cells);
    }

    printf("\n### get (stored -> readable by the caller; simcache rows include the release)\n\n");
    bench_table_head(stdout, cols, NCOLS);
    for (int si = 0; si < NSIZES; si++) {
        row(si, M_GET, "simcache get", M_REDIS_GET);
        row(si, M_GET_TOUCH, "simcache get+touch pages", M_REDIS_GET);
        row(si, M_GET_SUM, "simcache get+sum", M_REDIS_GET);
        row(si, M_GET_COLD, "simcache get+sum, new handle", M_REDIS_GET);
        row(si, M_REDIS_GET, "redis GET", M_REDIS_GET);
        row(si, M_MEMCPY, "memcpy", M_REDIS_GET);
    }
    char a[24];
    printf("\nsimcache ping (one round trip, the floor of a get, which takes two): p50 %s",
           bench_fmt_ns(results[0][M_PING].p50, a, sizeof a));
    printf(", p99 %s\n", bench_fmt_ns(results[0][M_PING].p99, a, sizeof a));
    printf("redis/this: Redis p50 / this p50 (above 1: simcache faster). "
           "this/memcpy: this p50 / memcpy p50. GB/s: size / p50 (for get and get+touch no byte "
           "is read: it is the hand-off rate, not a copy rate). p99 is nearest rank; with n < 100 "
           "it is the slowest sample. get and get+touch (and ping) are timed in a later phase, all "
           "sizes round-robin, than the other rows, which take turns per size: on a busy machine "
           "compare rows within a phase.\n");

    int big = NSIZES - 1;
    printf("\n### targets\n\n");
    if (have[0][M_GET] && have[big][M_GET]) {
        double r = results[big][M_GET].p50 / results[0][M_GET].p50;
        double r99 = results[big][M_GET].p99 / results[0][M_GET].p99;
        printf("- get 128 MiB / get 256 KiB (p50) = %.2f (<= 2): %s   [p99 ratio %.2f]\n", r,
               r <= 2 ? "PASS" : "FAIL", r99);
    }
    if (have[big][M_REDIS_GET] && have[big][M_GET]) {
        double r = results[big][M_REDIS_GET].p50 / results[big][M_GET].p50;
        double rs = results[big][M_REDIS_GET].p50 / results[big][M_GET_SUM].p50;
        printf("- redis GET 128 MiB / simcache get 128 MiB (p50) = %.0f (>= 50): %s   "
               "[with every byte read (get+sum): %.1f]\n", r, r >= 50 ? "PASS" : "FAIL", rs);
    } else {
        printf("- redis GET 128 MiB / simcache get 128 MiB: n/a (no redis-server)\n");
    }
}

/* ---- setup ---- */

static int usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [SIMCACHED] [--simcached PATH] [--redis-server PATH] [--no-redis] "
                    "[--scale X]\n", argv0);
    return 2;
}

int main(int argc, char **argv)
{
    char simcached[PATH_MAX];
    const char *redis_exe = getenv("REDIS_SERVER");
    int no_redis = 0;
    double scale = 1.0;
    bench_default_simcached(simcached, sizeof simcached);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--simcached") == 0 && i + 1 < argc)
            snprintf(simcached, sizeof simcached, "%s", argv[++i]);
        else if (strcmp(argv[i], "--redis-server") == 0 && i + 1 < argc) redis_exe = argv[++i];
        else if (strcmp(argv[i], "--no-redis") == 0) no_redis = 1;
        else if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
            scale = atof(argv[++i]);
            if (!(scale > 0 && scale <= 100)) return usage(argv[0]);
        } else if (argv[i][0] != '-') snprintf(simcached, sizeof simcached, "%s", argv[i]);
        else return usage(argv[0]);
    }
    if (access(simcached, X_OK)) {
        fprintf(stderr, "bench_handoff: no simcached at %s (pass its path)\n", simcached);
        return 1;
    }

    uint64_t t_start = bench_now_ns();
    uint64_t max = plans[NSIZES - 1].size;
    static ctx_t x;
    x.seed = 42;
    x.src = malloc(max);
    x.dst = malloc(max);
    if (!x.src || !x.dst) {
        fprintf(stderr, "bench_handoff: out of memory\n");
        return 1;
    }
    /* Fault both in now, so memcpy measures copying, not first touch. */
    memset(x.src, 1, max);
    memset(x.dst, 2, max);

    char dir[64], sock[200], rsock[200];
    if (bench_tmpdir(dir, sizeof dir)) return 1;
    /* Room for the entry being read, one being put and its staging buffer. */
    const char *flags[] = { "--host-capacity", "1g", "--log-level", "warn", NULL };
    bench_proc_t daemon, redis = { 0 };
    if (bench_simcached_start(&daemon, simcached, dir, flags, sock, sizeof sock)) {
        bench_rm_rf(dir);
        return 1;
    }
    x.sock = sock;
    x.h = open_handle(sock, x.err, sizeof x.err);
    int rc = 1;
    if (!x.h) goto out;
    if (!no_redis) {
        if (bench_redis_start(&redis, redis_exe, dir, rsock, sizeof rsock) == 0) {
            x.r = redisConnectUnix(rsock);
            if (!x.r || x.r->err) {
                fprintf(stderr, "bench_handoff: hiredis connect %s: %s; Redis rows are n/a\n", rsock,
                        x.r ? x.r->errstr : "out of memory");
                if (x.r) redisFree(x.r);
                x.r = NULL;
            }
        } else {
            fprintf(stderr, "bench_handoff: redis-server did not start; Redis rows are n/a\n");
        }
    }

    printf("## bench_handoff: host-tier hand-off\n\n");
    bench_print_machine(stdout);
    double load0 = bench_loadavg();
    printf("simcached: %s (--host-capacity 1g); redis: %s (hiredis %d.%d); repetition scale "
           "%.2f\n", simcached, x.r ? "redis-server over a Unix socket" : "none", HIREDIS_MAJOR,
           HIREDIS_MINOR, scale);
    fflush(stdout);

    for (int si = 0; si < NSIZES; si++) {
        if (run_size(&x, si, scale)) {
            char sz[16];
            fprintf(stderr, "bench_handoff: %s: %s\n", bench_fmt_size(plans[si].size, sz, sizeof sz),
                    x.err);
            goto out;
        }
    }
    if (run_gets(&x, scale)) goto out;
    report();
    printf("\ntotal run time %.1f s; 1-minute load average %.2f at the start, %.2f at the end "
           "(%ld cores)\n", (double)(bench_now_ns() - t_start) / 1e9, load0, bench_loadavg(),
           sysconf(_SC_NPROCESSORS_ONLN));
    rc = 0;
out:
    if (rc && x.err[0] && !strstr(x.err, "verify")) bench_proc_dump_log(&daemon);
    if (rc) fprintf(stderr, "bench_handoff: %s\n", x.err[0] ? x.err : "failed");
    if (x.r) redisFree(x.r);
    simcache_close(x.h);
    bench_proc_stop(&redis);
    bench_proc_stop(&daemon);
    bench_rm_rf(dir);
    free(x.src);
    free(x.dst);
    return rc;
}
