/* bench_disk.c - disk-tier promotion: how fast simcached brings 2 MiB and
 * 32 MiB blobs back from its disk tier, against fio (O_DIRECT, io_uring),
 * plain buffered pread and an LMDB copy reading the same bytes from the
 * same directory, measured in the same run and printed as ratios.
 *
 * The idea: a get of an entry held only on disk is a promotion (an O_DIRECT
 * read through io_uring into the host arena, an XXH3 check, a commit into
 * the host tier), so its floor is what the disk gives one reader. Entries
 * get onto disk the way they do in service: put into a daemon, written out
 * by the checkpoint of a clean shutdown, found on disk by the next daemon on
 * the same data_dir (its arena has never been touched: "fresh arena"); after
 * that, the admin command `evict N` demotes them again (their disk copy is
 * kept, nothing is rewritten) and the next gets promote them into arena
 * pages already in memory ("warm arena", the steady state and the figure the
 * target is read on). Every read of every method is checked against the
 * XXH3 of what was written (untimed); the page cache is dropped before each
 * timed pass. A breakdown (in-process io_uring reads, XXH3, first touch of a
 * memfd, a host-tier get, the daemon's CPU time and faults) says where a
 * promotion's time goes.
 *
 * Huge pages: as root the benchmark grows the kernel's hugetlb pool by what
 * the arena and fio's buffer need (and shrinks it back at exit), so the
 * daemon, as shipped (host_huge_pages try), puts its arena on 2 MiB pages,
 * as docs/operations.md recommends. Two anchors show what that is worth:
 * fio reading into huge pages too (--mem=shmhuge), and the daemon restarted
 * with host_huge_pages off (4 KiB pages) for a few passes paired with fio.
 *
 *   bench_disk [SIMCACHED] [--simcached PATH] [--fio PATH] [--no-fio]
 *              [--dir PARENT] [--volume BYTES] [--rounds N] [--no-drop-caches]
 *              [--no-huge-pages]
 *
 * SIMCACHED defaults to $SIMCACHED, else ../cached/simcached next to this
 * binary. --dir is where the temporary directory goes (default /var/tmp: it
 * must be a real disk, not tmpfs). --volume is the bytes read per size and
 * method in one pass (default 512m; 2 blobs at least), --rounds the timed
 * passes of each method (default 5; medians are printed). Without root the
 * page cache is only dropped for the anchor files (POSIX_FADV_DONTNEED).
 * Exits 0 whatever the target says; 1 only if it could not run or read
 * wrong bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <liburing.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tests/hugepool.h"
#include "bench_util.h"
#include "simcache.h"
#include "xxh.h"

#define DIM 64
#define PAGE 4096u
#define MIB (1024.0 * 1024.0)
#define MAX_ROUNDS 9
#define HUGE_PAGE (2u << 20)  /* the hugetlb page the arena and fio huge use */

static const uint64_t sizes[] = { 2u << 20, 32u << 20 };
#define NSIZES ((int)(sizeof sizes / sizeof sizes[0]))

/* Timed passes. The first four take turns in every round; the rest run once
 * per size. */
enum {
    M_SC,           /* simcache promotion, warm arena */
    M_FIO,          /* fio, io_uring, O_DIRECT, iodepth 1 */
    M_FIO_HUGE,     /* ... reading into a buffer of 2 MiB huge pages (--mem=shmhuge) */
    M_PREAD,        /* buffered pread, cold page cache */
    M_LMDB,         /* mdb_get + copy out, cold page cache */
    M_URING,        /* this process: io_uring O_DIRECT, one request per blob */
    M_SC_COLD,      /* simcache promotion, fresh arena (after a restart) */
    M_FIO8,         /* fio, iodepth 8 */
    M_URING_MEMFD,  /* M_URING into a memfd mapping never touched before */
    M_SC_PAR,       /* simcache promotion, PAR clients each with a get in flight */
    M_SC_4K,        /* M_SC with the arena on 4 KiB pages (host_huge_pages off) */
    M_FIO_4K,       /* M_FIO, in the rounds of M_SC_4K */
    M_N
};
#define PAR 8           /* gets in flight for M_SC_PAR, as fio's iodepth 8 */
#define M_ROTATING 6
#define ROUNDS_4K 3     /* pairs of M_SC_4K and M_FIO_4K */

typedef struct {
    double mibs[MAX_ROUNDS];    /* MiB/s of each pass */
    int n;
} series_t;

/* Per-blob costs for the breakdown, milliseconds (p50 where sampled). */
typedef struct {
    double sc_p50, sc_p99;      /* promotion get, warm arena */
    double cold_p50;            /* promotion, fresh arena */
    double noreg_p50;           /* promotion, warm arena not registered (disk_register_arena=0) */
    double noreg_mibs;          /* ... its throughput, MiB/s */
    double xxh;                 /* XXH3-64 of the blob, in cache or DRAM */
    double touch;               /* first write to every page of a fresh memfd */
    double hostget;             /* get of a host-resident entry */
    double release;             /* release of a lease */
    double ping;                /* one round trip */
    double fio_p50;             /* fio iodepth 1: completion latency p50 (median over passes) */
    /* The daemon during the promotion passes, per blob. */
    double utime, stime, minflt;             /* warm arena */
    double cold_utime, cold_stime, cold_minflt;
} breakdown_t;

typedef struct {
    const char *simcached;
    const char *fio;            /* NULL: no fio anchor */
    char dir[96];               /* this run's temporary directory */
    uint64_t volume;
    int rounds;
    int drop;                   /* try /proc/sys/vm/drop_caches */
    int dropped, not_dropped;   /* drop_caches writes that worked, did not */
    int direct_io;              /* the daemon's disk_direct_io */
    int huge;                   /* 0: --no-huge-pages: the daemon's arena on 4 KiB pages */
    long huge_added;            /* 2 MiB pages this run added to the hugetlb pool */
    int fio_huge;               /* fio --mem=shmhuge can run (the pool has room) */
    char pages[16];             /* the daemon's host_arena_pages in the main rounds */
    uint8_t *buf;               /* largest size, 4096-aligned, faulted in */
    uint64_t seed;
    float emb[DIM];
    char err[512];

    /* the size being measured */
    uint64_t size;
    uint64_t n;                 /* blobs */
    char sub[128];              /* per-size directory: daemon dir and anchors */
    char ref[160];              /* the blobs, back to back (fio, pread, io_uring) */
    char lmdb[160];             /* LMDB environment directory */
    char admin[160];
    uint64_t *ids, *hashes;
    double *samples;            /* per-blob ms of one simcache pass: the gets */
    double *rel_samples;        /* ... and the releases */
    simcache_t *h;
    simcache_t *par[PAR];       /* more connections, for M_SC_PAR */
    bench_proc_t daemon;

    series_t res[NSIZES][M_N];
    breakdown_t bd[NSIZES];
} ctx_t;

static volatile uint64_t sink;

/* ---- bytes ---- */


static void next_embedding(ctx_t *x)
{
    for (int i = 0; i < DIM; i++)
        x->emb[i] = (float)((double)(bench_mix(&x->seed) >> 11) / 9007199254740992.0 - 0.5);
    x->emb[0] += 1.0f;
}

/* F16, K and V, one layer, 8 heads of 128: 4096 bytes per token. */
static simcache_layout_t layout_for(uint64_t size)
{
    simcache_layout_t l = { SIMCACHE_DTYPE_F16, 2, 1, 8, 128, (uint32_t)(size / 4096u) };
    return l;
}

static double mibs(uint64_t bytes, uint64_t ns)
{
    return ns ? (double)bytes / MIB / ((double)ns / 1e9) : 0;
}

static int fail(ctx_t *x, const char *fmt, const char *a, int e)
{
    snprintf(x->err, sizeof x->err, fmt, a, strerror(e));
    return -1;
}

static int check_hash(ctx_t *x, const char *who, uint64_t i, const void *p)
{
    if (XXH3_64bits(p, x->size) == x->hashes[i]) return 0;
    snprintf(x->err, sizeof x->err, "%s: blob %" PRIu64 ": bytes differ from what was written",
             who, i);
    return -1;
}

/* ---- files and the page cache ---- */

static void evict_file(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return;
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

/* Before a timed pass: nothing it reads is in the page cache. The anchor
 * files are dropped by name (works without root); drop_caches clears the
 * rest (LMDB's and the daemon's metadata too). */
static void drop_caches(ctx_t *x)
{
    char p[192];
    sync();
    evict_file(x->ref);
    snprintf(p, sizeof p, "%s/data.mdb", x->lmdb);
    evict_file(p);
    if (!x->drop) return;
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd >= 0 && write(fd, "3\n", 2) == 2) x->dropped++;
    else x->not_dropped++;
    if (fd >= 0) close(fd);
}

static const char *fs_name(long type)
{
    switch ((unsigned long)type) {
    case 0xEF53: return "ext4/ext3/ext2";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x01021994: return "tmpfs";
    case 0x794c7630: return "overlayfs";
    case 0x2fc12fc1: return "zfs";
    case 0x6969: return "nfs";
    case 0xF2F52010: return "f2fs";
    default: return "other";
    }
}

/* ---- the admin socket ---- */

/* Send one command line, read its whole reply (a status line, or a record
 * block ending in END) into out. Returns 0 or -1 with x->err. */
static int admin(ctx_t *x, const char *line, char *out, size_t n)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (strlen(x->admin) >= sizeof sun.sun_path) return fail(x, "%s: %s", x->admin, ENAMETOOLONG);
    memcpy(sun.sun_path, x->admin, strlen(x->admin) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun)) {
        if (fd >= 0) close(fd);
        return fail(x, "admin socket %s: %s", x->admin, errno);
    }
    size_t len = strlen(line), got = 0;
    int rc = write(fd, line, len) == (ssize_t)len && write(fd, "\n", 1) == 1 ? 0 : -1;
    while (rc == 0 && got + 1 < n) {
        ssize_t k = read(fd, out + got, n - 1 - got);
        if (k <= 0) {
            rc = -1;
            break;
        }
        got += (size_t)k;
        out[got] = 0;
        if (out[got - 1] != '\n') continue;
        if (strncmp(out, "END\n", 4) == 0 || strstr(out, "\nEND\n")) break;
        if (!strncmp(out, "OK", 2) || !strncmp(out, "ERROR", 5) ||
            !strncmp(out, "CLIENT_ERROR", 12) || !strncmp(out, "NOT_FOUND", 9))
            break;
    }
    close(fd);
    if (rc) snprintf(x->err, sizeof x->err, "admin '%s': no reply", line);
    return rc;
}

/* The value of a key of the `info` block (the rest of its line), or -1. */
static int info_str(ctx_t *x, const char *key, char *out, size_t n)
{
    char rep[8192], pat[64];
    if (admin(x, "info", rep, sizeof rep)) return -1;
    snprintf(pat, sizeof pat, "\n%s ", key);
    const char *p = strstr(rep, pat);
    if (!p) return -1;
    p += strlen(pat);
    snprintf(out, n, "%.*s", (int)strcspn(p, "\r\n"), p);
    return 0;
}

/* A counter of the `info` block, or -1. */
static int64_t info_u64(ctx_t *x, const char *key)
{
    char v[32];
    return info_str(x, key, v, sizeof v) ? -1 : (int64_t)strtoll(v, NULL, 10);
}

/* ---- the daemon's CPU time and faults ---- */

typedef struct {
    double utime, stime;    /* seconds */
    double minflt;
} pstat_t;

static pstat_t proc_stat(pid_t pid)
{
    pstat_t s = { 0, 0, 0 };
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return s;
    if (fgets(line, sizeof line, f)) {
        /* Fields after the command name: 3 state ... 10 minflt, 14 utime, 15 stime. */
        const char *p = strrchr(line, ')');
        unsigned long v[13] = { 0 };
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %lu %*u %lu %*u %lu %lu", &v[0],
                        &v[1], &v[2], &v[3]) == 4) {
            double tck = (double)sysconf(_SC_CLK_TCK);
            s.minflt = (double)v[0];
            s.utime = (double)v[2] / tck;
            s.stime = (double)v[3] / tck;
        }
    }
    fclose(f);
    return s;
}

/* ---- simcache ---- */

static int sc_fail(ctx_t *x, const char *what, int rc)
{
    snprintf(x->err, sizeof x->err, "%s: %s (%s)", what, simcache_strerror(rc),
             simcache_last_error(x->h));
    return -1;
}

/* reg: disk_register_arena (pin the arena and register it with io_uring);
 * with it, wait until the whole arena is registered, so the timed passes
 * measure the steady state and not the background thread's progress. */
static int start_daemon_pages(ctx_t *x, int reg, const char *huge)
{
    char host[32], disk[32], sock[160];
    /* Room for every blob in both tiers, so promotion never has to demote
     * (and write) another entry to make room. */
    uint64_t bytes = x->n * x->size;
    snprintf(host, sizeof host, "%" PRIu64, bytes + (64u << 20));
    snprintf(disk, sizeof disk, "%" PRIu64, bytes + (64u << 20));
    const char *flags[] = { "--host-capacity", host, "--disk-capacity", disk,
                            "--durability", "async", "--log-level", "warn",
                            "--disk-register-arena", reg ? "1" : "0",
                            "--host-huge-pages", huge, NULL };
    if (bench_simcached_start(&x->daemon, x->simcached, x->sub, flags, sock, sizeof sock)) {
        snprintf(x->err, sizeof x->err, "simcached did not start");
        return -1;
    }
    snprintf(x->admin, sizeof x->admin, "%s/admin.sock", x->sub);
    simcache_opts_t o;
    simcache_opts_init(&o);
    o.socket_path = sock;
    o.model = "bench-disk";
    o.layout_fingerprint = "f16/2x1x8x128";
    o.dim = DIM;
    o.timeout_ms = 120000;
    int rc = simcache_connect(&o, &x->h);
    if (rc) return sc_fail(x, "simcache_connect", rc);
    for (int t = 0; t < PAR; t++) {
        rc = simcache_connect(&o, &x->par[t]);
        if (rc) return sc_fail(x, "simcache_connect", rc);
    }
    if (!reg) return 0;
    int64_t arena = info_u64(x, "host_arena_bytes"), got = -1;
    for (int i = 0; i < 12000 && got != arena; i++) {
        got = info_u64(x, "disk_registered_bytes");
        if (got != arena) usleep(10000);
    }
    if (arena <= 0 || got != arena) {
        snprintf(x->err, sizeof x->err, "%" PRId64 " of %" PRId64 " arena bytes registered after "
                 "120 s (the daemon's log says why)", got, arena);
        return -1;
    }
    return 0;
}

/* The daemon as shipped (host_huge_pages try), unless --no-huge-pages. */
static int start_daemon(ctx_t *x, int reg)
{
    return start_daemon_pages(x, reg, x->huge ? "try" : "off");
}

static int stop_daemon(ctx_t *x)
{
    simcache_close(x->h);
    x->h = NULL;
    for (int t = 0; t < PAR; t++) {
        simcache_close(x->par[t]);
        x->par[t] = NULL;
    }
    int code = bench_proc_stop(&x->daemon);
    if (code) {
        snprintf(x->err, sizeof x->err, "simcached exited with status %d", code);
        bench_proc_dump_log(&x->daemon);
        return -1;
    }
    return 0;
}

/* A get of every blob, in put order, back to back as fio's reads are; then
 * the check of every blob's bytes and its release. Timed: each get (the
 * daemon's read, check and commit, and a round trip), and apart from it each
 * release (x->rel_samples). The leases are held until all gets are done, so
 * nothing else runs between two reads. promote: every get must have been a
 * promotion (the daemon's disk_promotions counter says so). */
static int sc_pass(ctx_t *x, int promote, uint64_t *ns_out)
{
    int64_t before = promote ? info_u64(x, "disk_promotions") : 0;
    simcache_match_t *m = calloc(x->n, sizeof *m);
    if (!m) return fail(x, "calloc%s: %s", "", ENOMEM);
    uint64_t total = 0, got = 0;
    int rc = 0, err = 0;
    for (; got < x->n; got++) {
        uint64_t t0 = bench_now_ns();
        rc = simcache_get(x->h, x->ids[got], &m[got]);
        uint64_t t1 = bench_now_ns();
        if (rc) {
            err = sc_fail(x, "simcache_get", rc);
            break;
        }
        x->samples[got] = (double)(t1 - t0) / 1e6;
        total += t1 - t0;
    }
    for (uint64_t i = 0; i < got; i++) {
        if (!err && (m[i].size != x->size || !m[i].data)) {
            snprintf(x->err, sizeof x->err, "simcache_get: %" PRIu64 " bytes, not %" PRIu64,
                     m[i].size, x->size);
            err = -1;
        }
        if (!err && check_hash(x, "simcache get", i, m[i].data)) err = -1;
        uint64_t t0 = bench_now_ns();
        rc = simcache_release(x->h, &m[i]);
        x->rel_samples[i] = (double)(bench_now_ns() - t0) / 1e6;
        if (rc && !err) err = sc_fail(x, "simcache_release", rc);
    }
    free(m);
    if (err) return -1;
    if (promote) {
        int64_t after = info_u64(x, "disk_promotions");
        if (before < 0 || after - before != (int64_t)x->n) {
            snprintf(x->err, sizeof x->err, "%" PRId64 " of %" PRIu64 " gets were promotions",
                     after - before, x->n);
            return -1;
        }
    }
    *ns_out = total;
    return 0;
}

/* One promotion pass: demote every entry (`evict`: they keep their disk
 * copy, nothing is written), drop the page cache, promote them all. */
/* A promotion pass, page cache dropped first; *used: what the daemon spent
 * on it (CPU, faults). */
static int timed_pass(ctx_t *x, uint64_t *ns, pstat_t *used)
{
    drop_caches(x);
    pstat_t a = proc_stat(x->daemon.pid);
    if (sc_pass(x, 1, ns)) return -1;
    pstat_t b = proc_stat(x->daemon.pid);
    *used = (pstat_t){ b.utime - a.utime, b.stime - a.stime, b.minflt - a.minflt };
    return 0;
}

static int run_sc(ctx_t *x, uint64_t *ns, pstat_t *used)
{
    char rep[256], want[64], cmd[64];
    snprintf(cmd, sizeof cmd, "evict %" PRIu64, x->n);
    if (admin(x, cmd, rep, sizeof rep)) return -1;
    snprintf(want, sizeof want, "OK evicted %" PRIu64, x->n);
    if (strncmp(rep, want, strlen(want))) {
        snprintf(x->err, sizeof x->err, "admin '%s': %s", cmd, rep);
        return -1;
    }
    if (info_u64(x, "disk_only_entries") != (int64_t)x->n) {
        snprintf(x->err, sizeof x->err, "after evict, not every entry is on disk only");
        return -1;
    }
    return timed_pass(x, ns, used);
}

typedef struct {
    ctx_t *x;
    int t;
    int rc;
    const char *what;
    char detail[200];
    simcache_match_t *m;        /* this worker's matches, held until checked */
    uint64_t got;
} par_arg_t;

/* Connection t gets blobs t, t + PAR, ...: PAR promotions in flight. The
 * leases are held until every worker is done, so the byte check (XXH3 on 8
 * threads of a 2-core machine) stays out of the timed part. */
static void *par_worker(void *p)
{
    par_arg_t *a = p;
    ctx_t *x = a->x;
    simcache_t *h = x->par[a->t];
    for (uint64_t i = (uint64_t)a->t; i < x->n; i += PAR) {
        int rc = simcache_get(h, x->ids[i], &a->m[i / PAR]);
        if (rc) {
            a->rc = rc;
            a->what = "get";
            snprintf(a->detail, sizeof a->detail, "%s", simcache_last_error(h));
            return NULL;
        }
        a->got++;
    }
    return NULL;
}

static int par_check(ctx_t *x, par_arg_t *a)
{
    int rc = 0;
    for (uint64_t k = 0; k < a->got; k++) {
        uint64_t i = (uint64_t)a->t + k * PAR;
        simcache_match_t *m = &a->m[k];
        if (!rc && (m->size != x->size || !m->data || XXH3_64bits(m->data, m->size) != x->hashes[i])) {
            snprintf(x->err, sizeof x->err, "parallel get of blob %" PRIu64 ": wrong bytes", i);
            rc = -1;
        }
        if (simcache_release(x->par[a->t], m) && !rc) rc = sc_fail(x, "simcache_release", -1);
    }
    free(a->m);
    return rc;
}

/* Like run_sc, with PAR connections each keeping one get in flight: the
 * daemon reads PAR blobs at once (its promotions are asynchronous). Timed:
 * the gets; the releases and the byte check come after. */
static int run_sc_par(ctx_t *x, uint64_t *ns)
{
    char rep[256], cmd[64];
    snprintf(cmd, sizeof cmd, "evict %" PRIu64, x->n);
    if (admin(x, cmd, rep, sizeof rep)) return -1;
    if (info_u64(x, "disk_only_entries") != (int64_t)x->n) {
        snprintf(x->err, sizeof x->err, "after evict, not every entry is on disk only");
        return -1;
    }
    drop_caches(x);
    int64_t before = info_u64(x, "disk_promotions");
    pthread_t th[PAR];
    par_arg_t args[PAR];
    for (int t = 0; t < PAR; t++) {
        args[t] = (par_arg_t){ .x = x, .t = t };
        args[t].m = calloc(x->n / PAR + 1, sizeof *args[t].m);
        if (!args[t].m) return fail(x, "calloc%s: %s", "", ENOMEM);
    }
    uint64_t t0 = bench_now_ns();
    for (int t = 0; t < PAR; t++)
        if (pthread_create(&th[t], NULL, par_worker, &args[t]))
            return fail(x, "pthread_create%s: %s", "", errno);
    for (int t = 0; t < PAR; t++) pthread_join(th[t], NULL);
    *ns = bench_now_ns() - t0;
    int bad = 0;
    for (int t = 0; t < PAR; t++) {
        if (args[t].rc && !bad) {
            snprintf(x->err, sizeof x->err, "parallel %s: %s (%s)", args[t].what,
                     simcache_strerror(args[t].rc), args[t].detail);
            bad = 1;
        }
        if (par_check(x, &args[t])) bad = 1;
    }
    if (bad) return -1;
    int64_t after = info_u64(x, "disk_promotions");
    if (after - before != (int64_t)x->n) {
        snprintf(x->err, sizeof x->err, "%" PRId64 " of %" PRIu64 " parallel gets were promotions",
                 after - before, x->n);
        return -1;
    }
    return 0;
}

/* ---- anchors ---- */

static int run_pread(ctx_t *x, uint64_t *ns)
{
    drop_caches(x);
    int fd = open(x->ref, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(x, "%s: %s", x->ref, errno);
    uint64_t total = 0;
    for (uint64_t i = 0; i < x->n; i++) {
        uint64_t done = 0, t0 = bench_now_ns();
        while (done < x->size) {
            ssize_t k = pread(fd, x->buf + done, x->size - done, (off_t)(i * x->size + done));
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) {
                close(fd);
                return fail(x, "pread %s: %s", x->ref, k < 0 ? errno : EIO);
            }
            done += (uint64_t)k;
        }
        total += bench_now_ns() - t0;
        if (check_hash(x, "pread", i, x->buf)) {
            close(fd);
            return -1;
        }
    }
    close(fd);
    *ns = total;
    return 0;
}

/* io_uring, O_DIRECT, one request per blob and wait for it: what the
 * daemon's disk tier does, without the daemon. into_memfd: the destination
 * is a fresh memfd mapping per blob, never touched before (as the arena of
 * a daemon that just started). */
static int run_uring(ctx_t *x, int into_memfd, uint64_t *ns)
{
    drop_caches(x);
    int fd = open(x->ref, O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (fd < 0) return fail(x, "%s (O_DIRECT): %s", x->ref, errno);
    struct io_uring ring;
    int rc = io_uring_queue_init(8, &ring, 0);
    if (rc) {
        close(fd);
        return fail(x, "io_uring_queue_init%s: %s", "", -rc);
    }
    uint64_t total = 0;
    for (uint64_t i = 0; i < x->n && rc == 0; i++) {
        uint8_t *dst = x->buf;
        int mfd = -1;
        if (into_memfd) {
            mfd = memfd_create("bench-disk", MFD_CLOEXEC);
            if (mfd < 0 || ftruncate(mfd, (off_t)x->size)) {
                rc = fail(x, "memfd%s: %s", "", errno);
                if (mfd >= 0) close(mfd);
                break;
            }
            dst = mmap(NULL, x->size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
            if (dst == MAP_FAILED) {
                rc = fail(x, "mmap%s: %s", "", errno);
                close(mfd);
                break;
            }
        }
        uint64_t done = 0, t0 = bench_now_ns();
        while (done < x->size) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            struct io_uring_cqe *cqe;
            io_uring_prep_read(sqe, fd, dst + done, (unsigned)(x->size - done),
                               i * x->size + done);
            int k = io_uring_submit_and_wait(&ring, 1);
            if (k >= 0) k = io_uring_wait_cqe(&ring, &cqe);
            if (k >= 0) {
                k = cqe->res;
                io_uring_cqe_seen(&ring, cqe);
            }
            if (k == -EINTR || k == -EAGAIN) continue;
            if (k <= 0) {
                rc = fail(x, "io_uring read %s: %s", x->ref, k < 0 ? -k : EIO);
                break;
            }
            done += (uint64_t)k;
        }
        total += bench_now_ns() - t0;
        if (rc == 0) rc = check_hash(x, "io_uring read", i, dst);
        if (into_memfd) {
            munmap(dst, x->size);
            close(mfd);
        }
    }
    io_uring_queue_exit(&ring);
    close(fd);
    *ns = total;
    return rc;
}

static int lmdb_fail(ctx_t *x, const char *what, int rc)
{
    snprintf(x->err, sizeof x->err, "LMDB %s: %s", what, mdb_strerror(rc));
    return -1;
}

static uint64_t lmdb_map_size(const ctx_t *x)
{
    /* A value is an overflow run of whole pages plus a header page. */
    return x->n * (x->size + 2 * PAGE) + (64u << 20);
}

/* mdb_get of every blob from a freshly opened environment, copied out into
 * a buffer (the caller owns its bytes, as after a promotion). */
static int run_lmdb(ctx_t *x, uint64_t *ns)
{
    drop_caches(x);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    int rc = mdb_env_create(&env);
    if (rc) return lmdb_fail(x, "mdb_env_create", rc);
    mdb_env_set_mapsize(env, (size_t)lmdb_map_size(x));
    if ((rc = mdb_env_open(env, x->lmdb, MDB_RDONLY, 0600)) ||
        (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))) {
        mdb_env_close(env);
        return lmdb_fail(x, "open", rc);
    }
    if ((rc = mdb_dbi_open(txn, NULL, 0, &dbi))) {
        mdb_txn_abort(txn);
        mdb_env_close(env);
        return lmdb_fail(x, "mdb_dbi_open", rc);
    }
    uint64_t total = 0;
    int err = 0;
    for (uint64_t i = 0; i < x->n && !err; i++) {
        MDB_val k = { sizeof i, &i }, v;
        uint64_t t0 = bench_now_ns();
        rc = mdb_get(txn, dbi, &k, &v);
        if (rc == 0 && v.mv_size == x->size) memcpy(x->buf, v.mv_data, x->size);
        total += bench_now_ns() - t0;
        if (rc) err = lmdb_fail(x, "mdb_get", rc);
        else if (v.mv_size != x->size) err = lmdb_fail(x, "mdb_get: wrong size", MDB_CORRUPTED);
        else err = check_hash(x, "LMDB", i, x->buf);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    *ns = total;
    return err;
}

static int find_fio(char *out, size_t n)
{
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    while (*path) {
        size_t k = strcspn(path, ":");
        snprintf(out, n, "%.*s/fio", (int)k, path);
        if (k && access(out, X_OK) == 0) return 0;
        path += k + (path[k] == ':');
    }
    return -1;
}

/* fio reading the reference file: sequential, bs = the blob size, O_DIRECT,
 * io_uring. bytes/s from its JSON report ("read" -> "bw_bytes"). */
static int run_fio(ctx_t *x, int iodepth, int huge, uint64_t *ns, double *p50_ms)
{
    drop_caches(x);
    char out[160], log[160], a_file[192], a_bs[48], a_size[48], a_depth[32];
    snprintf(out, sizeof out, "%s/fio.json", x->sub);
    snprintf(log, sizeof log, "%s/fio.log", x->sub);
    snprintf(a_file, sizeof a_file, "--filename=%s", x->ref);
    snprintf(a_bs, sizeof a_bs, "--bs=%" PRIu64, x->size);
    snprintf(a_size, sizeof a_size, "--size=%" PRIu64, x->n * x->size);
    snprintf(a_depth, sizeof a_depth, "--iodepth=%d", iodepth);
    unlink(out);
    char *argv[] = { (char *)x->fio, "--name=bench_disk", a_file, "--rw=read", a_bs, a_size,
                     "--direct=1", "--ioengine=io_uring", a_depth, "--invalidate=1",
                     "--output-format=json", "--output", out,
                     huge ? "--mem=shmhuge" : NULL, NULL };
    bench_proc_t p;
    if (bench_proc_start(&p, "fio", log, argv)) return fail(x, "fio%s: %s", "", EIO);
    int st;
    while (waitpid(p.pid, &st, 0) < 0 && errno == EINTR) {
    }
    FILE *f = fopen(out, "r");
    static char json[1 << 16];
    size_t len = f ? fread(json, 1, sizeof json - 1, f) : 0;
    if (f) fclose(f);
    json[len] = 0;
    const char *r = strstr(json, "\"read\"");
    const char *b = r ? strstr(r, "\"bw_bytes\"") : NULL;
    const char *c = b ? strchr(b, ':') : NULL;
    double bw = c ? strtod(c + 1, NULL) : 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) || !(bw > 0)) {
        bench_proc_dump_log(&p);
        snprintf(x->err, sizeof x->err, "fio failed (status %d, no read bandwidth in %s)", st,
                 out);
        return -1;
    }
    *ns = (uint64_t)((double)(x->n * x->size) / bw * 1e9);
    /* Completion latency p50 of one read ("clat_ns" -> "percentile"). */
    const char *q = strstr(r, "\"clat_ns\"");
    q = q ? strstr(q, "\"50.000000\"") : NULL;
    q = q ? strchr(q, ':') : NULL;
    if (p50_ms) *p50_ms = q ? strtod(q + 1, NULL) / 1e6 : -1;
    return 0;
}

/* ---- setup of one size ---- */

/* The same blobs three ways: put into simcached, written back to back into
 * the reference file, stored as LMDB values (one transaction each: a write
 * transaction holds at most 512 MiB of dirty pages). */
static int write_blobs(ctx_t *x)
{
    simcache_layout_t lay = layout_for(x->size);
    int fd = open(x->ref, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return fail(x, "%s: %s", x->ref, errno);
    MDB_env *env;
    int rc = mdb_env_create(&env);
    if (rc) {
        close(fd);
        return lmdb_fail(x, "mdb_env_create", rc);
    }
    mdb_env_set_mapsize(env, (size_t)lmdb_map_size(x));
    if (mkdir(x->lmdb, 0700) || (rc = mdb_env_open(env, x->lmdb, MDB_NOSYNC, 0600))) {
        mdb_env_close(env);
        close(fd);
        return rc ? lmdb_fail(x, "mdb_env_open", rc) : fail(x, "mkdir %s: %s", x->lmdb, errno);
    }
    int err = 0;
    for (uint64_t i = 0; i < x->n && !err; i++) {
        bench_fill(x->buf, x->size, 0xd15c0000u + x->size + i);
        x->hashes[i] = XXH3_64bits(x->buf, x->size);
        next_embedding(x);
        rc = simcache_put(x->h, x->emb, &lay, x->buf, x->size, SIMCACHE_HOST_MEMORY, &x->ids[i]);
        if (rc) {
            err = sc_fail(x, "simcache_put", rc);
            break;
        }
        if (write(fd, x->buf, x->size) != (ssize_t)x->size) {
            err = fail(x, "write %s: %s", x->ref, errno);
            break;
        }
        MDB_txn *txn;
        MDB_dbi dbi;
        MDB_val k = { sizeof i, &i }, v = { x->size, NULL };
        if ((rc = mdb_txn_begin(env, NULL, 0, &txn))) {
            err = lmdb_fail(x, "mdb_txn_begin", rc);
            break;
        }
        if ((rc = mdb_dbi_open(txn, NULL, 0, &dbi)) ||
            (rc = mdb_put(txn, dbi, &k, &v, MDB_RESERVE))) {
            mdb_txn_abort(txn);
            err = lmdb_fail(x, "mdb_put", rc);
            break;
        }
        memcpy(v.mv_data, x->buf, x->size);
        if ((rc = mdb_txn_commit(txn))) err = lmdb_fail(x, "mdb_txn_commit", rc);
    }
    if (!err && fsync(fd)) err = fail(x, "fsync %s: %s", x->ref, errno);
    if (!err && (rc = mdb_env_sync(env, 1))) err = lmdb_fail(x, "mdb_env_sync", rc);
    mdb_env_close(env);
    close(fd);
    return err;
}

static double median(double *v, int n)
{
    bench_stats_t s;
    double tmp[MAX_ROUNDS];
    if (n < 1) return 0;
    memcpy(tmp, v, (size_t)n * sizeof *v);
    bench_stats(tmp, (size_t)n, &s);
    if (n % 2) return s.p50;
    /* Even: the mean of the two middle values (tmp is sorted now). */
    return (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

static void add(ctx_t *x, int si, int m, uint64_t ns)
{
    series_t *s = &x->res[si][m];
    if (s->n < MAX_ROUNDS) s->mibs[s->n++] = mibs(x->n * x->size, ns);
}

static void per_blob_stats(ctx_t *x, double *p50, double *p99)
{
    bench_stats_t s;
    bench_stats(x->samples, (size_t)x->n, &s);
    *p50 = s.p50;
    *p99 = s.p99;
}

/* The breakdown's small parts: XXH3 of one blob, the first touch of a fresh
 * memfd of the blob's size, a get of an entry already in the host tier, a
 * round trip. */
static int measure_parts(ctx_t *x, int si)
{
    breakdown_t *d = &x->bd[si];
    double v[15];
    for (int r = 0; r < 15; r++) {
        uint64_t t0 = bench_now_ns();
        sink += XXH3_64bits(x->buf, x->size);
        v[r] = (double)(bench_now_ns() - t0) / 1e6;
    }
    bench_stats_t s;
    bench_stats(v, 15, &s);
    d->xxh = s.p50;
    for (int r = 0; r < 5; r++) {
        int mfd = memfd_create("bench-disk", MFD_CLOEXEC);
        if (mfd < 0 || ftruncate(mfd, (off_t)x->size)) {
            if (mfd >= 0) close(mfd);
            return fail(x, "memfd%s: %s", "", errno);
        }
        uint8_t *p = mmap(NULL, x->size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
        if (p == MAP_FAILED) {
            close(mfd);
            return fail(x, "mmap%s: %s", "", errno);
        }
        uint64_t t0 = bench_now_ns();
        for (uint64_t o = 0; o < x->size; o += PAGE) p[o] = 1;
        v[r] = (double)(bench_now_ns() - t0) / 1e6;
        munmap(p, x->size);
        close(mfd);
    }
    bench_stats(v, 5, &s);
    d->touch = s.p50;
    /* Every entry is in the host tier after the last promotion pass. */
    uint64_t ns;
    if (sc_pass(x, 0, &ns)) return -1;
    double p99;
    per_blob_stats(x, &d->hostget, &p99);
    bench_stats(x->rel_samples, (size_t)x->n, &s);
    d->release = s.p50;
    double *pings = malloc(200 * sizeof *pings);
    if (!pings) return fail(x, "malloc%s: %s", "", ENOMEM);
    for (int r = 0; r < 200; r++) {
        uint64_t t0 = bench_now_ns();
        int rc = simcache_ping(x->h);
        pings[r] = (double)(bench_now_ns() - t0) / 1e6;
        if (rc) {
            free(pings);
            return sc_fail(x, "simcache_ping", rc);
        }
    }
    bench_stats(pings, 200, &s);
    d->ping = s.p50;
    free(pings);
    return 0;
}

static int run_size(ctx_t *x, int si)
{
    char sz[16];
    x->size = sizes[si];
    x->n = x->volume / x->size;
    if (x->n < 2) x->n = 2;
    bench_fmt_size(x->size, sz, sizeof sz);
    snprintf(x->sub, sizeof x->sub, "%s/%s", x->dir, sz);
    for (char *p = x->sub + strlen(x->dir); *p; p++)
        if (*p == ' ') *p = '-';
    snprintf(x->ref, sizeof x->ref, "%s/ref.blobs", x->sub);
    snprintf(x->lmdb, sizeof x->lmdb, "%s/ref.lmdb", x->sub);
    if (mkdir(x->sub, 0700)) return fail(x, "mkdir %s: %s", x->sub, errno);
    x->ids = calloc(x->n, sizeof *x->ids);
    x->hashes = calloc(x->n, sizeof *x->hashes);
    x->samples = calloc(x->n, sizeof *x->samples);
    x->rel_samples = calloc(x->n, sizeof *x->rel_samples);
    if (!x->ids || !x->hashes || !x->samples || !x->rel_samples)
        return fail(x, "calloc%s: %s", "", ENOMEM);

    fprintf(stderr, "%s: writing %" PRIu64 " blobs (simcache, file, LMDB) ...\n", sz, x->n);
    if (start_daemon(x, 0) || write_blobs(x)) return -1;
    /* A clean stop checkpoints every host entry to disk; the next daemon on
     * the same data_dir finds them there and nowhere else. This one leaves
     * the arena as the kernel gives it (disk_register_arena=0). */
    if (stop_daemon(x) || start_daemon(x, 0)) return -1;
    if (info_u64(x, "disk_only_entries") != (int64_t)x->n) {
        snprintf(x->err, sizeof x->err, "after the restart, %" PRId64 " of %" PRIu64
                 " entries are on disk", info_u64(x, "disk_only_entries"), x->n);
        return -1;
    }
    x->direct_io = (int)info_u64(x, "disk_direct_io");

    fprintf(stderr, "%s: promotion into a fresh arena ...\n", sz);
    breakdown_t *d = &x->bd[si];
    uint64_t ns;
    pstat_t used;
    if (timed_pass(x, &ns, &used)) return -1;
    add(x, si, M_SC_COLD, ns);
    double p99;
    per_blob_stats(x, &d->cold_p50, &p99);
    d->cold_utime = used.utime * 1e3 / (double)x->n;
    d->cold_stime = used.stime * 1e3 / (double)x->n;
    d->cold_minflt = used.minflt / (double)x->n;

    /* The same arena warm, not registered: each read pins its pages. */
    fprintf(stderr, "%s: promotion into a warm arena, not registered ...\n", sz);
    if (run_sc(x, &ns, &used)) return -1;
    per_blob_stats(x, &d->noreg_p50, &p99);
    d->noreg_mibs = mibs(x->n * x->size, ns);

    /* The rest as shipped: the arena pinned and registered with io_uring. */
    fprintf(stderr, "%s: restart with the arena registered ...\n", sz);
    if (stop_daemon(x) || start_daemon(x, 1)) return -1;
    if (info_str(x, "host_arena_pages", x->pages, sizeof x->pages)) return -1;
    /* Untimed: every entry back in the host tier, as the rounds expect. */
    if (sc_pass(x, 1, &ns)) return -1;

    /* Rounds: each method once, the first of a round rotating, so a busy
     * moment of this shared machine falls on all of them alike. */
    double fio_p50[MAX_ROUNDS];
    int nfio = 0;
    double *sc_samples = calloc(x->n * (uint64_t)x->rounds, sizeof *sc_samples);
    if (!sc_samples) return fail(x, "calloc%s: %s", "", ENOMEM);
    for (int r = 0; r < x->rounds; r++) {
        fprintf(stderr, "%s: round %d of %d ...\n", sz, r + 1, x->rounds);
        for (int j = 0; j < M_ROTATING; j++) {
            int m = (r + j) % M_ROTATING, rc = 0;
            switch (m) {
            case M_SC:
                rc = run_sc(x, &ns, &used);
                if (rc) break;
                memcpy(sc_samples + (uint64_t)r * x->n, x->samples, x->n * sizeof(double));
                d->utime += used.utime;
                d->stime += used.stime;
                d->minflt += used.minflt;
                break;
            case M_FIO:
                if (!x->fio) continue;
                rc = run_fio(x, 1, 0, &ns, &fio_p50[r]);
                break;
            case M_FIO_HUGE:
                if (!x->fio || !x->fio_huge) continue;
                rc = run_fio(x, 1, 1, &ns, NULL);
                break;
            case M_PREAD: rc = run_pread(x, &ns); break;
            case M_LMDB: rc = run_lmdb(x, &ns); break;
            case M_URING: rc = run_uring(x, 0, &ns); break;
            }
            if (rc) {
                free(sc_samples);
                return -1;
            }
            add(x, si, m, ns);
            if (m == M_FIO) nfio++;
        }
    }
    d->fio_p50 = nfio ? median(fio_p50, nfio) : -1;
    bench_stats_t s;
    bench_stats(sc_samples, x->n * (uint64_t)x->rounds, &s);
    free(sc_samples);
    d->sc_p50 = s.p50;
    d->sc_p99 = s.p99;
    double passes = (double)x->n * x->rounds;
    d->utime = d->utime * 1e3 / passes;
    d->stime = d->stime * 1e3 / passes;
    d->minflt = d->minflt / passes;

    fprintf(stderr, "%s: %d in flight (fio iodepth %d, %d simcache clients), parts ...\n", sz,
            PAR, PAR, PAR);
    for (int r = 0; r < 3; r++) {
        if (x->fio) {
            if (run_fio(x, PAR, 0, &ns, NULL)) return -1;
            add(x, si, M_FIO8, ns);
        }
        if (run_sc_par(x, &ns)) return -1;
        add(x, si, M_SC_PAR, ns);
    }
    if (run_uring(x, 1, &ns)) return -1;
    add(x, si, M_URING_MEMFD, ns);
    if (measure_parts(x, si)) return -1;

    /* The same promotions with the arena on 4 KiB pages, paired with fio. */
    if (x->huge && strcmp(x->pages, "4k")) {
        fprintf(stderr, "%s: restart with the arena on 4 KiB pages ...\n", sz);
        if (stop_daemon(x) || start_daemon_pages(x, 1, "off") || sc_pass(x, 1, &ns)) return -1;
        for (int r = 0; r < ROUNDS_4K; r++) {
            if (run_sc(x, &ns, &used)) return -1;
            add(x, si, M_SC_4K, ns);
            if (x->fio) {
                if (run_fio(x, 1, 0, &ns, NULL)) return -1;
                add(x, si, M_FIO_4K, ns);
            }
        }
    }

    if (stop_daemon(x)) return -1;
    free(x->ids);
    free(x->hashes);
    free(x->samples);
    free(x->rel_samples);
    x->ids = x->hashes = NULL;
    x->samples = NULL;
    bench_rm_rf(x->sub);
    return 0;
}

/* ---- report ---- */

static double med(const ctx_t *x, int si, int m)
{
    const series_t *s = &x->res[si][m];
    double v[MAX_ROUNDS];
    memcpy(v, s->mibs, sizeof v);
    return s->n ? median(v, s->n) : 0;
}

static const char *fmt_mibs(const ctx_t *x, int si, int m, char *buf, size_t n)
{
    const series_t *s = &x->res[si][m];
    if (!s->n) {
        snprintf(buf, n, "n/a");
        return buf;
    }
    double lo = s->mibs[0], hi = s->mibs[0];
    for (int i = 1; i < s->n; i++) {
        if (s->mibs[i] < lo) lo = s->mibs[i];
        if (s->mibs[i] > hi) hi = s->mibs[i];
    }
    if (s->n > 1) snprintf(buf, n, "%.0f (%.0f-%.0f)", med(x, si, m), lo, hi);
    else snprintf(buf, n, "%.0f", med(x, si, m));
    return buf;
}

static const char *ratio(const ctx_t *x, int si, int m, int anchor, char *buf, size_t n)
{
    double a = med(x, si, anchor);
    return bench_fmt_ratio(a > 0 ? med(x, si, m) / a : 0, buf, n);
}

static void report(const ctx_t *x)
{
    static const bench_col_t cols[] = {
        { "size", 6, 1 }, { "blobs", 5, 1 }, { "simcache MiB/s", 18, 1 }, { "fio MiB/s", 18, 1 },
        { "pread MiB/s", 18, 1 }, { "LMDB MiB/s", 18, 1 }, { "simcache/fio", 12, 1 },
        { "simcache/pread", 14, 1 }, { "simcache/LMDB", 13, 1 },
        { "fio, huge pages MiB/s", 21, 1 }, { "simcache/fio huge", 17, 1 },
    };
    printf("\n### promotion throughput (median of %d passes, min-max in brackets)\n\n",
           x->rounds);
    bench_table_head(stdout, cols, 11);
    for (int si = 0; si < NSIZES; si++) {
        char c[11][40];
        bench_fmt_size(sizes[si], c[0], sizeof c[0]);
        snprintf(c[1], sizeof c[1], "%" PRIu64, x->volume / sizes[si] < 2 ? 2 : x->volume / sizes[si]);
        fmt_mibs(x, si, M_SC, c[2], sizeof c[2]);
        fmt_mibs(x, si, M_FIO, c[3], sizeof c[3]);
        fmt_mibs(x, si, M_PREAD, c[4], sizeof c[4]);
        fmt_mibs(x, si, M_LMDB, c[5], sizeof c[5]);
        ratio(x, si, M_SC, M_FIO, c[6], sizeof c[6]);
        ratio(x, si, M_SC, M_PREAD, c[7], sizeof c[7]);
        ratio(x, si, M_SC, M_LMDB, c[8], sizeof c[8]);
        fmt_mibs(x, si, M_FIO_HUGE, c[9], sizeof c[9]);
        if (med(x, si, M_FIO_HUGE) > 0) ratio(x, si, M_SC, M_FIO_HUGE, c[10], sizeof c[10]);
        else snprintf(c[10], sizeof c[10], "n/a");
        const char *cells[11] = { c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9],
                                  c[10] };
        bench_table_row(stdout, cols, 11, cells);
    }
    printf("\nsimcache: get of an entry held only on disk (a promotion: O_DIRECT "
           "io_uring read into the host arena, XXH3 check, commit), arena pages already in "
           "memory (entries demoted by `evict`), one get after the other with the leases "
           "held; the byte checks and releases come after the pass, untimed, as fio reads "
           "back to back. fio: --rw=read --bs=SIZE --direct=1 "
           "--ioengine=io_uring --iodepth=1 over a file of the same blobs (fio, huge pages: the "
           "same with --mem=shmhuge, its buffer on 2 MiB pages as the arena's). pread: buffered, "
           "cold. LMDB: mdb_get + memcpy out, environment opened cold. Same directory, same "
           "bytes; every read checked against its XXH3 (untimed).\n");

    static const bench_col_t more[] = {
        { "size", 6, 1 }, { "promotion, fresh arena", 22, 1 }, { "/fio", 6, 1 },
        { "io_uring QD1 (this process)", 27, 1 }, { "io_uring QD1 into fresh memfd", 29, 1 },
        { "fio iodepth 8", 16, 1 }, { "simcache, 8 in flight", 21, 1 }, { "/fio iodepth 8", 14, 1 },
        { "promotion, 4 KiB pages", 22, 1 }, { "/fio (same rounds)", 18, 1 },
    };
    printf("\n### the same reads in other conditions (MiB/s)\n\n");
    bench_table_head(stdout, more, 10);
    for (int si = 0; si < NSIZES; si++) {
        char c[10][40];
        bench_fmt_size(sizes[si], c[0], sizeof c[0]);
        fmt_mibs(x, si, M_SC_COLD, c[1], sizeof c[1]);
        ratio(x, si, M_SC_COLD, M_FIO, c[2], sizeof c[2]);
        fmt_mibs(x, si, M_URING, c[3], sizeof c[3]);
        fmt_mibs(x, si, M_URING_MEMFD, c[4], sizeof c[4]);
        fmt_mibs(x, si, M_FIO8, c[5], sizeof c[5]);
        fmt_mibs(x, si, M_SC_PAR, c[6], sizeof c[6]);
        ratio(x, si, M_SC_PAR, M_FIO8, c[7], sizeof c[7]);
        fmt_mibs(x, si, M_SC_4K, c[8], sizeof c[8]);
        if (med(x, si, M_FIO_4K) > 0) ratio(x, si, M_SC_4K, M_FIO_4K, c[9], sizeof c[9]);
        else snprintf(c[9], sizeof c[9], "n/a");
        const char *cells[10] = { c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9] };
        bench_table_row(stdout, more, 10, cells);
    }
    printf("\nfresh arena: the first gets after a restart with disk_register_arena=0, into "
           "arena pages the daemon has never touched (one page fault per 4 KiB); every other "
           "simcache figure is with the arena registered (the default). io_uring QD1: one O_DIRECT read request "
           "per blob and wait, without the daemon. 8 in flight: fio iodepth 8 against 8 simcache "
           "clients each keeping one get in flight (the daemon promotes them together); three "
           "passes each, alternating. 4 KiB pages: the daemon restarted with host_huge_pages off "
           "(registered), %d passes alternating with fio.\n", ROUNDS_4K);

    static const bench_col_t bcols[] = { { "per blob (ms)", 54, 0 }, { "2 MiB", 8, 1 },
                                         { "32 MiB", 8, 1 } };
    printf("\n### where a promotion's time goes (per blob, ms)\n\n");
    bench_table_head(stdout, bcols, 3);
    struct {
        const char *name;
        int kind;   /* 0: breakdown field, 1: from a throughput median */
        size_t off;
        int m;
    } rows[] = {
        { "promotion get, warm arena (p50)", 0, offsetof(breakdown_t, sc_p50), 0 },
        { "promotion get, warm arena (p99)", 0, offsetof(breakdown_t, sc_p99), 0 },
        { "promotion get, fresh arena (p50)", 0, offsetof(breakdown_t, cold_p50), 0 },
        { "promotion get, warm arena not registered (p50)", 0,
          offsetof(breakdown_t, noreg_p50), 0 },
        { "fio iodepth 1 (volume / bandwidth)", 1, 0, M_FIO },
        { "fio iodepth 1 read completion latency (p50)", 0, offsetof(breakdown_t, fio_p50), 0 },
        { "io_uring QD1 read, this process (volume / bw)", 1, 0, M_URING },
        { "io_uring QD1 read into a fresh memfd", 1, 0, M_URING_MEMFD },
        { "XXH3-64 of the blob", 0, offsetof(breakdown_t, xxh), 0 },
        { "first write to each page of a fresh memfd", 0, offsetof(breakdown_t, touch), 0 },
        { "get of a host-resident entry (p50)", 0, offsetof(breakdown_t, hostget), 0 },
        { "release of a lease (p50; not in the promotion)", 0, offsetof(breakdown_t, release), 0 },
        { "ping (one round trip, p50)", 0, offsetof(breakdown_t, ping), 0 },
        { "daemon user CPU per promotion, warm arena", 0, offsetof(breakdown_t, utime), 0 },
        { "daemon system CPU per promotion, warm arena", 0, offsetof(breakdown_t, stime), 0 },
        { "daemon user CPU per promotion, fresh arena", 0, offsetof(breakdown_t, cold_utime), 0 },
        { "daemon system CPU per promotion, fresh arena", 0, offsetof(breakdown_t, cold_stime), 0 },
        { "daemon minor faults per promotion, warm (count)", 0, offsetof(breakdown_t, minflt), 0 },
        { "daemon minor faults per promotion, fresh (count)", 0, offsetof(breakdown_t, cold_minflt), 0 },
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        char c[NSIZES][24];
        for (int si = 0; si < NSIZES; si++) {
            double v;
            if (rows[r].kind == 1) {
                double bw = med(x, si, rows[r].m);
                v = bw > 0 ? (double)sizes[si] / MIB / bw * 1e3 : -1;
            } else {
                v = *(const double *)((const char *)&x->bd[si] + rows[r].off);
            }
            if (v < 0) snprintf(c[si], sizeof c[si], "n/a");
            else if (strstr(rows[r].name, "count")) snprintf(c[si], sizeof c[si], "%.0f", v);
            else snprintf(c[si], sizeof c[si], v < 1 ? "%.3f" : "%.2f", v);
        }
        const char *cells[3] = { rows[r].name, c[0], c[1] };
        bench_table_row(stdout, bcols, 3, cells);
    }
    printf("\nDaemon CPU times come from /proc/PID/stat (10 ms ticks, summed over all passes "
           "and divided by the promotions).\n");

    printf("\n### target\n\n");
    for (int si = 0; si < NSIZES; si++) {
        char sz[16];
        bench_fmt_size(sizes[si], sz, sizeof sz);
        double f = med(x, si, M_FIO);
        if (!(f > 0)) {
            printf("- %s: promotion / fio: n/a (fio: not installed)\n", sz);
            continue;
        }
        double r = med(x, si, M_SC) / f;
        /* Paired: simcache over fio of the same round, which ran close in
         * time; steadier than the ratio of medians when the disk drifts. */
        const series_t *a = &x->res[si][M_SC], *b = &x->res[si][M_FIO];
        double pr[MAX_ROUNDS];
        int np = a->n < b->n ? a->n : b->n;
        for (int k = 0; k < np; k++) pr[k] = b->mibs[k] > 0 ? a->mibs[k] / b->mibs[k] : 0;
        printf("- %s: simcache promotion / fio = %.2f (>= 0.80): %s   [same round, median of %d: "
               "%.2f; arena not registered: %.2f; fresh arena: %.2f; per blob p50: promotion "
               "%.2f ms, fio read %.2f ms]\n", sz, r, r >= 0.80 ? "PASS" : "FAIL", np,
               median(pr, np), x->bd[si].noreg_mibs / f, med(x, si, M_SC_COLD) / f,
               x->bd[si].sc_p50, x->bd[si].fio_p50);
        double fh = med(x, si, M_FIO_HUGE), f4 = med(x, si, M_FIO_4K);
        if (fh > 0)
            printf("- %s: simcache promotion / fio into huge pages = %.2f (information: the "
                   "same memory on both sides)\n", sz, med(x, si, M_SC) / fh);
        if (f4 > 0)
            printf("- %s: with the arena on 4 KiB pages: simcache / fio = %.2f (information)\n",
                   sz, med(x, si, M_SC_4K) / f4);
        double f8 = med(x, si, M_FIO8), s8 = med(x, si, M_SC_PAR);
        if (f8 > 0 && s8 > 0)
            printf("- %s, 8 in flight: simcache promotion / fio iodepth 8 = %.2f (>= 0.80): %s\n",
                   sz, s8 / f8, s8 / f8 >= 0.80 ? "PASS" : "FAIL");
    }
}

/* ---- setup ---- */

/* "1g", "512m", "300000000". 0 when it does not parse. */
static uint64_t parse_size(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    switch (*end) {
    case 'k': case 'K': v <<= 10; end++; break;
    case 'm': case 'M': v <<= 20; end++; break;
    case 'g': case 'G': v <<= 30; end++; break;
    default: break;
    }
    return *end ? 0 : (uint64_t)v;
}

/* The daemon's arena on hugetlb pages, as recommended (docs/operations.md):
 * the pool grows by what the largest arena and fio's huge-page buffer need,
 * for this run only (given back at exit). Without root, or when the kernel
 * finds no such free memory, what free pages there are decide. */
static void grow_pool(ctx_t *x)
{
    uint64_t most = 0;
    for (int si = 0; si < NSIZES; si++) {
        uint64_t n = x->volume / sizes[si] < 2 ? 2 : x->volume / sizes[si];
        uint64_t arena = n * sizes[si] + (64u << 20);
        if (arena > most) most = arena;
    }
    long arena_pages = (long)((most + HUGE_PAGE - 1) / HUGE_PAGE);
    long fio_pages = (long)(sizes[NSIZES - 1] / HUGE_PAGE) + 2;
    long have = hugepool_read("free_hugepages");
    if (!x->huge) {
        printf("host arena: 4 KiB pages (--no-huge-pages)\n");
        return;
    }
    if (have < arena_pages + fio_pages) {
        x->huge_added = hugepool_grow(arena_pages + fio_pages - (have > 0 ? have : 0));
        if (x->huge_added < 0) x->huge_added = 0;
        have = hugepool_read("free_hugepages");
    }
    x->fio_huge = have >= arena_pages + fio_pages;
    if (have >= arena_pages)
        printf("host arena: 2 MiB hugetlb pages (host_huge_pages try; %ld free in the pool, %ld "
               "of them added for this run and given back at exit)%s\n", have, x->huge_added,
               x->fio_huge ? "; fio also reads into huge pages (--mem=shmhuge), a second anchor"
                           : "");
    else
        printf("host arena: 4 KiB pages (the hugetlb pool has %ld free pages, %ld needed, and "
               "could not grow: run as root)\n", have, arena_pages);
}

static int usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [SIMCACHED] [--simcached PATH] [--fio PATH] [--no-fio] "
                    "[--dir PARENT] [--volume BYTES] [--rounds N] [--no-drop-caches] [--no-huge-pages]\n",
            argv0);
    return 2;
}

int main(int argc, char **argv)
{
    static ctx_t x;
    char simcached[PATH_MAX], fio[PATH_MAX];
    const char *parent = "/var/tmp";
    int no_fio = 0;
    fio[0] = 0;
    x.volume = 512ull << 20;
    x.rounds = 5;
    x.drop = 1;
    x.huge = 1;
    x.seed = 7;
    bench_default_simcached(simcached, sizeof simcached);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--simcached") == 0 && i + 1 < argc)
            snprintf(simcached, sizeof simcached, "%s", argv[++i]);
        else if (strcmp(argv[i], "--fio") == 0 && i + 1 < argc)
            snprintf(fio, sizeof fio, "%s", argv[++i]);
        else if (strcmp(argv[i], "--no-fio") == 0) no_fio = 1;
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) parent = argv[++i];
        else if (strcmp(argv[i], "--volume") == 0 && i + 1 < argc) {
            x.volume = parse_size(argv[++i]);
            if (x.volume < (1u << 20)) return usage(argv[0]);
        } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            x.rounds = atoi(argv[++i]);
            if (x.rounds < 1 || x.rounds > MAX_ROUNDS) return usage(argv[0]);
        } else if (strcmp(argv[i], "--no-drop-caches") == 0) x.drop = 0;
        else if (strcmp(argv[i], "--no-huge-pages") == 0) x.huge = 0;
        else if (argv[i][0] != '-') snprintf(simcached, sizeof simcached, "%s", argv[i]);
        else return usage(argv[0]);
    }
    if (strlen(parent) > 56) {
        /* The socket paths below it must stay within sun_path (108 bytes). */
        fprintf(stderr, "bench_disk: --dir %s: at most 56 bytes\n", parent);
        return 2;
    }
    if (access(simcached, X_OK)) {
        fprintf(stderr, "bench_disk: no simcached at %s (pass its path)\n", simcached);
        return 1;
    }
    x.simcached = simcached;
    if (!no_fio && (fio[0] ? access(fio, X_OK) == 0 : find_fio(fio, sizeof fio) == 0)) x.fio = fio;

    snprintf(x.dir, sizeof x.dir, "%s/simcache-bench-disk-XXXXXX", parent);
    if (!mkdtemp(x.dir)) {
        fprintf(stderr, "bench_disk: mkdtemp %s: %s\n", x.dir, strerror(errno));
        return 1;
    }
    struct statfs sfs;
    long fstype = statfs(x.dir, &sfs) == 0 ? (long)sfs.f_type : 0;
    if (posix_memalign((void **)&x.buf, PAGE, sizes[NSIZES - 1])) {
        fprintf(stderr, "bench_disk: out of memory\n");
        bench_rm_rf(x.dir);
        return 1;
    }
    memset(x.buf, 1, sizes[NSIZES - 1]);

    uint64_t t_start = bench_now_ns();
    printf("## bench_disk: disk-tier promotion\n\n");
    bench_print_machine(stdout);
    double load0 = bench_loadavg();
    char vol[16];
    printf("directory: %s, filesystem %s (statfs type 0x%lx)%s\n", x.dir, fs_name(fstype),
           (unsigned long)fstype,
           fstype == 0x01021994 ? " - tmpfs: no disk is measured, pass --dir on a real disk" : "");
    printf("simcached: %s (durability async, host and disk capacity = the volume + 64 MiB); "
           "fio: %s; volume per size and pass %s; %d rounds\n", simcached,
           x.fio ? x.fio : (no_fio ? "skipped (--no-fio)" : "not installed"),
           bench_fmt_size(x.volume, vol, sizeof vol), x.rounds);
    if (!x.fio && !no_fio) printf("fio: not installed (apt-get install fio); fio columns are n/a\n");
    grow_pool(&x);
    fflush(stdout);

    int rc = 1;
    for (int si = 0; si < NSIZES; si++) {
        if (run_size(&x, si)) {
            char sz[16];
            fprintf(stderr, "bench_disk: %s: %s\n", bench_fmt_size(sizes[si], sz, sizeof sz),
                    x.err);
            goto out;
        }
    }
    printf("daemon disk I/O: %s\n", x.direct_io ? "O_DIRECT (disk_direct_io 1)"
                                                : "buffered (disk_direct_io 0: no O_DIRECT here)");
    printf("page cache before each timed pass: %s\n",
           x.dropped && !x.not_dropped ? "dropped (sync; echo 3 > /proc/sys/vm/drop_caches)"
           : x.dropped                 ? "dropped in some passes only (drop_caches failed in others)"
           : x.drop ? "anchor files evicted with POSIX_FADV_DONTNEED; drop_caches not permitted"
                    : "anchor files evicted with POSIX_FADV_DONTNEED (--no-drop-caches)");
    report(&x);
    printf("\ntotal run time %.1f s; 1-minute load average %.2f at the start, %.2f at the end "
           "(%ld cores)\n", (double)(bench_now_ns() - t_start) / 1e9, load0, bench_loadavg(),
           sysconf(_SC_NPROCESSORS_ONLN));
    rc = 0;
out:
    if (x.h) simcache_close(x.h);
    if (rc && x.daemon.pid) bench_proc_dump_log(&x.daemon);
    bench_proc_stop(&x.daemon);
    free(x.ids);
    free(x.hashes);
    free(x.samples);
    free(x.buf);
    bench_rm_rf(x.dir);
    hugepool_shrink(x.huge_added);
    return rc;
}
