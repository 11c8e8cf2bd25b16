/* disk.c - the disk tier: a preallocated blob file written through io_uring
 * (O_DIRECT where the filesystem allows), LMDB records, LRU eviction.
 *
 * Order is the whole crash story: bytes first (flushed when sync is on),
 * then the LMDB commit that names them. An extent is freed in memory only
 * after the record that named it is gone from LMDB, so a crash never leaves
 * two live records on the same bytes. Reads always check the checksum.
 */
#include "disk.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <liburing.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "u64map.h"
#include "xxh.h"

#define DISK_MAGIC 0x534d4344u   /* "SMCD" */

/* The value of an "entries" record; the caller's record follows it. */
typedef struct {
    uint32_t magic;
    uint32_t rec_len;
    uint64_t off, len, checksum, created_us;
} disk_hdr_t;

typedef struct drec {
    uint64_t id, off, len, checksum;
    struct drec *prev, *next;     /* LRU: head is most recent */
    uint32_t busy;                /* asynchronous reads in flight */
    uint8_t dropped;              /* gone from LMDB and the map; freed when not busy */
    uint8_t keep_extent;          /* ...but its extent stays reserved (LMDB kept it) */
} drec_t;

/* Asynchronous reads: a blob is read in chunks of ACHUNK bytes, up to
 * ARING_DEPTH of them in flight over all reads; the rest wait in a queue.
 * Each request costs the VM a doorbell and the device a turn: a 2 MiB blob
 * read as one request promoted at 0.78-0.82 of fio against 0.52-0.63 as two
 * of 1 MiB (docs/benchmarks.md, disk run 12); larger chunks only delay the
 * checksum of the last one, which overlaps nothing. */
#define ARING_DEPTH 128u
#define ACHUNK (2u << 20)

typedef struct aread aread_t;

typedef struct achunk {
    aread_t *rd;
    uint64_t off;                 /* within the blob */
    uint32_t len, done;
    int complete;
    struct achunk *qnext;         /* in the submission queue */
} achunk_t;

/* An asynchronous read (into dst) or write (from dst, disk_write_async): the
 * same chunked I/O. A write's record r is not in the map, the LRU or LMDB
 * until its last chunk is written; then it is committed, unless cancelled. */
struct aread {
    drec_t *r;
    int write;
    int cancelled;                /* write: disk_put/disk_delete of its id meanwhile */
    uint8_t *rec;                 /* write: the caller's record, copied */
    uint32_t rec_len;
    uint64_t id;
    uint8_t *dst;
    disk_read_cb cb;
    void *arg;
    uint32_t left;                /* chunks not yet complete */
    uint32_t nchunks, hashed;     /* chunks [0, hashed) are in the checksum */
    XXH3_state_t *xs;             /* checksum, fed in order while later chunks read */
    int err;
    struct aread *prev, *next;    /* reads in flight */
    achunk_t chunks[];
};

struct disk {
    disk_config_t cfg;
    int fd;
    int direct;
    int uring;
    struct io_uring ring;         /* synchronous I/O: submit and wait */
    int async;                    /* aring + efd ready */
    struct io_uring aring;        /* asynchronous reads, completions signal efd */
    int efd;
    uint32_t a_inflight;          /* SQEs submitted, not yet reaped */
    achunk_t *q_head, *q_tail;    /* chunks waiting for a free SQE */
    aread_t *reads;               /* reads and writes in flight */
    u64map_t wpend;               /* id -> aread_t: asynchronous writes in flight */
    MDB_env *env;
    MDB_dbi db_entries, db_meta;
    uint64_t map_size;
    alloc_t *alloc;
    u64map_t recs;
    drec_t *head, *tail;
    disk_stats_t st;
    uint8_t *fx_base;             /* registered-buffer region (disk_fixed_init) */
    uint64_t fx_len;
    unsigned fx_shift;            /* log2 of the piece size */
    uint32_t fx_n;
    uint8_t *fx_ready;            /* per piece: 1 once registered (atomic) */
    uint64_t fx_bytes;            /* registered bytes (atomic: another thread adds) */
    char err[768];
};

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t disk_padded(uint64_t len)
{
    return (len + DISK_ALIGN - 1) & ~(uint64_t)(DISK_ALIGN - 1);
}

/* ---- LRU ---- */

static void lru_unlink(disk_t *d, drec_t *r)
{
    if (r->prev) r->prev->next = r->next;
    else d->head = r->next;
    if (r->next) r->next->prev = r->prev;
    else d->tail = r->prev;
    r->prev = r->next = NULL;
}

static void lru_front(disk_t *d, drec_t *r)
{
    r->prev = NULL;
    r->next = d->head;
    if (d->head) d->head->prev = r;
    d->head = r;
    if (!d->tail) d->tail = r;
}

/* ---- I/O ---- */

/* The most one request moves: an io_uring read or write takes an unsigned
 * length (a 4 GiB blob cast to it became a 0-byte request), and the
 * kernel stops a single read or write at 0x7ffff000 bytes anyway. A
 * multiple of DISK_ALIGN, as O_DIRECT needs. */
#define IO_MAX (1u << 30)

static int do_io(disk_t *d, int write, void *buf, uint64_t len, uint64_t off)
{
    uint64_t done = 0;
    while (done < len) {
        ssize_t n;
        size_t chunk = len - done < IO_MAX ? (size_t)(len - done) : IO_MAX;
        if (d->uring) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&d->ring);
            if (!sqe) return -EIO;
            if (write)
                io_uring_prep_write(sqe, d->fd, (char *)buf + done, (unsigned)chunk, off + done);
            else
                io_uring_prep_read(sqe, d->fd, (char *)buf + done, (unsigned)chunk, off + done);
            int rc = io_uring_submit_and_wait(&d->ring, 1);
            if (rc < 0) return rc;
            struct io_uring_cqe *cqe;
            rc = io_uring_wait_cqe(&d->ring, &cqe);
            if (rc < 0) return rc;
            n = cqe->res;
            io_uring_cqe_seen(&d->ring, cqe);
            if (n == -EINTR || n == -EAGAIN) continue;
            if (n < 0) return (int)n;
        } else {
            n = write ? pwrite(d->fd, (char *)buf + done, chunk, (off_t)(off + done))
                      : pread(d->fd, (char *)buf + done, chunk, (off_t)(off + done));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return -errno;
        }
        if (n == 0) return write ? -EIO : -ENODATA;
        done += (uint64_t)n;
    }
    return 0;
}

/* ---- LMDB ---- */

static int lmdb_err(disk_t *d, const char *what, int rc)
{
    snprintf(d->err, sizeof d->err, "%s: %s", what, mdb_strerror(rc));
    /* A full map, or a full filesystem under data.mdb: both are "full". */
    if (rc == MDB_MAP_FULL || rc == ENOSPC || rc == EDQUOT) return -ENOSPC;
    if (rc == ENOMEM) return -ENOMEM;
    return -EIO;
}

/* Double the map, up to the limit. 0 if it grew. */
static int grow_map(disk_t *d)
{
    uint64_t lim = d->cfg.max_map_size ? d->cfg.max_map_size : (64ull << 30);
    if (d->map_size >= lim) return -ENOSPC;
    uint64_t next = d->map_size * 2 > lim ? lim : d->map_size * 2;
    int rc = mdb_env_set_mapsize(d->env, (size_t)next);
    if (rc) return lmdb_err(d, "mdb_env_set_mapsize", rc);
    d->map_size = next;
    d->st.map_size = next;
    return 0;
}

/* Is the filesystem under data.mdb too full for a commit of about `need`
 * bytes (its pages, and a margin for the tree's and the free list's)? */
static int fs_full(disk_t *d, uint64_t need)
{
    int fd;
    struct statvfs sv;
    if (mdb_env_get_fd(d->env, &fd) || fstatvfs(fd, &sv)) return 0;
    return (uint64_t)sv.f_bavail * sv.f_frsize < need + (256u << 10);
}

/* Put or delete one key in one transaction, growing the map when full. */
static int txn_write(disk_t *d, MDB_dbi dbi, const void *key, size_t klen, const void *v1,
                     size_t l1, const void *v2, size_t l2, int del)
{
    for (;;) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(d->env, NULL, 0, &txn);
        if (rc) return lmdb_err(d, "mdb_txn_begin", rc);
        MDB_val k = { klen, (void *)key };
        if (del) {
            rc = mdb_del(txn, dbi, &k, NULL);
            if (rc == MDB_NOTFOUND) rc = 0;
        } else {
            MDB_val v = { l1 + l2, NULL };
            rc = mdb_put(txn, dbi, &k, &v, MDB_RESERVE);
            if (rc == 0) {
                memcpy(v.mv_data, v1, l1);
                if (l2) memcpy((char *)v.mv_data + l1, v2, l2);
            }
        }
        if (rc == 0) rc = mdb_txn_commit(txn);
        else mdb_txn_abort(txn);
        if (rc == MDB_MAP_FULL && grow_map(d) == 0) continue;
        if (rc == MDB_MAP_FULL) {
            snprintf(d->err, sizeof d->err, "LMDB map full at its limit (%llu bytes)",
                     (unsigned long long)d->map_size);
            return -ENOSPC;
        }
        if (rc == EIO && fs_full(d, l1 + l2)) {
            /* LMDB reports a short write (the filesystem ran out halfway
             * through its pages) as EIO; the caller must hear "full". */
            snprintf(d->err, sizeof d->err, "%s: short write: no space left on the filesystem "
                     "of data.mdb", del ? "mdb_del" : "mdb_put");
            return -ENOSPC;
        }
        if (rc) return lmdb_err(d, del ? "mdb_del" : "mdb_put", rc);
        return 0;
    }
}

/* ---- records ---- */

/* Free a record that left LMDB and the map. One being read is only marked:
 * its extent stays reserved (so no new blob lands under the read) until the
 * last read completes (aread_finish). */
static void rec_release(disk_t *d, drec_t *r)
{
    if (r->busy) {
        r->dropped = 1;
        return;
    }
    if (!r->keep_extent) alloc_release(d->alloc, r->off, disk_padded(r->len));
    free(r);
}

static void rec_forget(disk_t *d, drec_t *r)
{
    u64map_del(&d->recs, r->id);
    lru_unlink(d, r);
    d->st.bytes_used -= disk_padded(r->len);
    d->st.entries--;
    rec_release(d, r);
}

static int rec_drop(disk_t *d, drec_t *r)
{
    int rc = txn_write(d, d->db_entries, &r->id, sizeof r->id, NULL, 0, NULL, 0, 1);
    /* If LMDB refused the delete, keep the extent reserved: the record still
     * names it, and reusing it could serve other bytes under that record
     * (the checksum would catch it, but better not). Forget the record. */
    if (rc) {
        u64map_del(&d->recs, r->id);
        lru_unlink(d, r);
        d->st.entries--;
        r->keep_extent = 1;
        rec_release(d, r);
        return rc;
    }
    rec_forget(d, r);
    return 0;
}

static int open_fail(disk_t *d, char *err, size_t errlen)
{
    if (err) snprintf(err, errlen, "%s", d->err);
    disk_close(d);
    return 0;
}

/* A read-only transaction and a cursor over "entries"; close both with
 * mdb_cursor_close + mdb_txn_abort. 0 or a negative errno (logged in err). */
static int entries_cursor(disk_t *d, MDB_txn **txn, MDB_cursor **cur)
{
    int rc = mdb_txn_begin(d->env, NULL, MDB_RDONLY, txn);
    if (rc) return lmdb_err(d, "mdb_txn_begin", rc);
    rc = mdb_cursor_open(*txn, d->db_entries, cur);
    if (rc) {
        mdb_txn_abort(*txn);
        return lmdb_err(d, "mdb_cursor_open", rc);
    }
    return 0;
}

static int load_records(disk_t *d, uint64_t file_size)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = entries_cursor(d, &txn, &cur);
    if (rc) return rc;
    uint64_t *bad = NULL;
    size_t nbad = 0, capbad = 0;
    MDB_val k, v;
    int ret = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint64_t id = 0;
        disk_hdr_t h;
        int ok = k.mv_size == sizeof id && v.mv_size >= sizeof h;
        if (ok) {
            memcpy(&id, k.mv_data, sizeof id);
            memcpy(&h, v.mv_data, sizeof h);
            ok = id != 0 && h.magic == DISK_MAGIC && v.mv_size == sizeof h + h.rec_len &&
                 h.len > 0 && h.len <= d->st.capacity &&
                 h.off + disk_padded(h.len) <= d->st.capacity &&
                 h.off + disk_padded(h.len) <= file_size;
        }
        drec_t *r = NULL;
        if (ok) ok = (r = calloc(1, sizeof *r)) != NULL;
        if (ok && alloc_reserve_at(d->alloc, h.off, disk_padded(h.len))) {
            free(r);
            ok = 0;
        }
        if (ok && u64map_put(&d->recs, id, r)) {
            alloc_release(d->alloc, h.off, disk_padded(h.len));
            free(r);
            ok = 0;
        }
        if (!ok) {
            if (nbad == capbad) {
                capbad = capbad ? capbad * 2 : 16;
                uint64_t *nb = realloc(bad, capbad * sizeof *nb);
                if (!nb) {
                    ret = -ENOMEM;
                    break;
                }
                bad = nb;
            }
            bad[nbad++] = id;
            continue;
        }
        r->id = id;
        r->off = h.off;
        r->len = h.len;
        r->checksum = h.checksum;
        /* No access times on disk: recovered entries start in key order. */
        lru_front(d, r);
        d->st.entries++;
        d->st.bytes_used += disk_padded(h.len);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    for (size_t i = 0; i < nbad && ret == 0; i++) {
        txn_write(d, d->db_entries, &bad[i], sizeof bad[i], NULL, 0, NULL, 0, 1);
        d->st.checksum_failures++;
    }
    free(bad);
    return ret;
}

/* ---- checking data.mdb before trusting it ----
 *
 * LMDB has no checksums and trusts its pages: a flipped page number or node
 * offset makes it read (or write) outside the map, and the process dies by
 * SIGSEGV or SIGBUS. So an existing data.mdb is first walked in a child
 * process: every page of every database is read, every byte of every key
 * and value touched, LMDB's counts compared with what the walk found, and
 * every record deleted (then aborted: nothing is written) so that the write
 * path runs over every page too. A bad page kills only the child; the
 * daemon refuses to start and says how to recover (disk_recover). */

#define CHECK_ALARM_S 600u   /* a walk that loops is killed, not waited for */

static void say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(int fd, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0 && write(fd, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1) < 0) {}
}

static uint64_t touch(const MDB_val *v)
{
    uint64_t sum = 0;
    const volatile uint8_t *p = v->mv_data;
    for (size_t i = 0; i < v->mv_size; i++) sum += p[i];
    return sum;
}

/* Walk one database, touching every byte; with ids, collect its 8-byte
 * keys. free_list: values are LMDB's page lists (a count, then that many
 * page numbers, each below npages). Returns 0 or a message in fd. */
static int walk_db(int fd, MDB_txn *txn, MDB_dbi dbi, const char *name, int free_list,
                   uint64_t npages, uint64_t **ids, size_t *nids)
{
    MDB_stat st;
    MDB_cursor *cur;
    int rc = mdb_stat(txn, dbi, &st);
    if (rc == 0) rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc) {
        say(fd, "%s: %s", name, mdb_strerror(rc));
        return -1;
    }
    size_t cap = 0, seen = 0;
    volatile uint64_t sum = 0;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (++seen > st.ms_entries) break;
        sum += touch(&k) + touch(&v);
        if (free_list) {
            size_t n = 0;
            if (v.mv_size >= sizeof n) memcpy(&n, v.mv_data, sizeof n);
            if (v.mv_size != (n + 1) * sizeof n) {
                say(fd, "free page list of %zu bytes says %zu pages", v.mv_size, n);
                mdb_cursor_close(cur);
                return -1;
            }
            for (size_t i = 1; i <= n; i++) {
                size_t pg;
                memcpy(&pg, (const char *)v.mv_data + i * sizeof pg, sizeof pg);
                if (pg < 2 || pg >= npages) {
                    say(fd, "free page list names page %zu of %llu", pg, (unsigned long long)npages);
                    mdb_cursor_close(cur);
                    return -1;
                }
            }
        }
        if (ids && k.mv_size == sizeof(uint64_t)) {
            if (*nids == cap) {
                cap = cap ? cap * 2 : 1024;
                uint64_t *n = realloc(*ids, cap * sizeof *n);
                if (!n) {
                    say(fd, "out of memory");
                    mdb_cursor_close(cur);
                    return -1;
                }
                *ids = n;
            }
            memcpy(&(*ids)[(*nids)++], k.mv_data, sizeof(uint64_t));
        }
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND && rc != 0) {
        say(fd, "%s: %s", name, mdb_strerror(rc));
        return -1;
    }
    if (seen != st.ms_entries) {
        say(fd, "%s: LMDB counts %llu records, the walk found %s%zu", name,
            (unsigned long long)st.ms_entries, rc == 0 ? "more than " : "", seen);
        return -1;
    }
    return 0;
}

/* A reader child dies of a bad page: it exits 128 + the signal instead of
 * dumping core or leaving a sanitizer's report (an expected death, which
 * the parent reports in one line). */
static void child_fault(int sig)
{
    _exit(128 + sig);
}

/* In a reader child: whatever LMDB prints on a bad page is not the daemon's
 * log (the parent writes the one line), a fault exits quietly, and a hang
 * ends after CHECK_ALARM_S. */
static void quiet_child(void)
{
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, 1);
        dup2(null, 2);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = child_fault;
    sigemptyset(&sa.sa_mask);
    static const int faults[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE };
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) sigaction(faults[i], &sa, NULL);
    signal(SIGALRM, SIG_DFL);
    alarm(CHECK_ALARM_S);
}

/* The child's side: 0 when data.mdb in dir is sound ("OK" in fd). */
static int check_child(const char *dir, uint64_t size, int fd)
{
    MDB_env *env;
    int rc = mdb_env_create(&env);
    if (rc == 0) rc = mdb_env_set_maxdbs(env, 4);
    uint64_t map = size > (64ull << 20) ? size : (64ull << 20);
    if (rc == 0) rc = mdb_env_set_mapsize(env, (size_t)((map + 0xfffff) & ~0xfffffull));
    /* No lock file (the blob file's lock already keeps others out); not
     * read-only, for the write path below, but nothing is committed. */
    if (rc == 0) rc = mdb_env_open(env, dir, MDB_NOLOCK | MDB_NOTLS, 0600);
    if (rc) {
        say(fd, "%s", mdb_strerror(rc));
        return -1;
    }
    MDB_envinfo info;
    MDB_stat est;
    if ((rc = mdb_env_info(env, &info)) || (rc = mdb_env_stat(env, &est))) {
        say(fd, "%s", mdb_strerror(rc));
        return -1;
    }
    uint64_t npages = (uint64_t)info.me_last_pgno + 1;
    if (est.ms_psize < 512 || npages > size / est.ms_psize) {
        say(fd, "its last page (%llu of %u bytes) lies past its end (%llu bytes)",
            (unsigned long long)info.me_last_pgno, est.ms_psize, (unsigned long long)size);
        return -1;
    }
    MDB_txn *txn;
    MDB_dbi dbe = 0, dbm = 0, main_db;
    uint64_t *ids = NULL;
    size_t nids = 0;
    rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    if (rc) {
        say(fd, "%s", mdb_strerror(rc));
        return -1;
    }
    if (walk_db(fd, txn, 0, "free page list", 1, npages, NULL, NULL)) return -1;
    if ((rc = mdb_dbi_open(txn, NULL, 0, &main_db))) {
        say(fd, "main database: %s", mdb_strerror(rc));
        return -1;
    }
    if (walk_db(fd, txn, main_db, "main database", 0, npages, NULL, NULL)) return -1;
    int has_e = (rc = mdb_dbi_open(txn, "entries", MDB_INTEGERKEY, &dbe)) == 0;
    if (rc && rc != MDB_NOTFOUND) {
        say(fd, "entries: %s", mdb_strerror(rc));
        return -1;
    }
    int has_m = (rc = mdb_dbi_open(txn, "meta", 0, &dbm)) == 0;
    if (rc && rc != MDB_NOTFOUND) {
        say(fd, "meta: %s", mdb_strerror(rc));
        return -1;
    }
    if (has_e && walk_db(fd, txn, dbe, "entries", 0, npages, &ids, &nids)) return -1;
    if (has_m && walk_db(fd, txn, dbm, "meta", 0, npages, NULL, NULL)) return -1;
    mdb_txn_abort(txn);
    /* The write path, over every page: delete every record, 256 to a
     * transaction, and abort (dirty pages stay in memory, nothing spills). */
    uint64_t big[1024] = { 0 };
    for (size_t i = 0; has_e && i <= nids; i += 256) {
        if ((rc = mdb_txn_begin(env, NULL, 0, &txn))) break;
        rc = mdb_dbi_open(txn, "entries", MDB_INTEGERKEY, &dbe);
        for (size_t j = i; rc == 0 && j < nids && j < i + 256; j++) {
            MDB_val k = { sizeof ids[j], &ids[j] };
            rc = mdb_del(txn, dbe, &k, NULL);
        }
        if (rc == 0 && i + 256 > nids) {
            /* ...and a new record of a few pages, as a put would. */
            uint64_t id = UINT64_MAX;
            MDB_val k = { sizeof id, &id }, v = { sizeof big, big };
            rc = mdb_put(txn, dbe, &k, &v, 0);
        }
        mdb_txn_abort(txn);
        if (rc) break;
    }
    free(ids);
    if (rc) {
        say(fd, "a trial write: %s", mdb_strerror(rc));
        return -1;
    }
    say(fd, "OK");
    return 0;
}

/* Run check_child in a child process and wait. 0, or -EBADMSG with the
 * reason in d->err. */
static int lmdb_check(disk_t *d, const char *dir, uint64_t size)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC)) return 0;   /* cannot check: open as before */
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return 0;
    }
    if (pid == 0) {
        close(p[0]);
        quiet_child();
        _exit(check_child(dir, size, p[1]) ? 1 : 0);
    }
    close(p[1]);
    char msg[256];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(p[0], msg + len, sizeof msg - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
        if (len == sizeof msg - 1) break;
    }
    msg[len] = 0;
    close(p[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && strcmp(msg, "OK") == 0) return 0;
    if (!len && WIFSIGNALED(st))
        snprintf(msg, sizeof msg, "reading it died by signal %d", WTERMSIG(st));
    else if (!len && WIFEXITED(st) && WEXITSTATUS(st) > 128)
        snprintf(msg, sizeof msg, "reading it died by signal %d", WEXITSTATUS(st) - 128);
    else if (!len)
        snprintf(msg, sizeof msg, "reading it failed (status %d)", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    snprintf(d->err, sizeof d->err,
             "%s/data.mdb is damaged (%s); not started: run simcached --recover to keep the "
             "records that verify and drop the rest", dir, msg);
    return -EBADMSG;
}

/* Does data.mdb belong to this blob file? A record names an extent and its
 * checksum; a data.mdb copied from another data directory names bytes that
 * are not there. A few of the smallest records are read (at most 64 MiB):
 * when at least two were read and none verifies, the pair is refused. A
 * blob flipped here and there is the read path's business, not this. */
#define MATCH_SAMPLE 8u

static int blobs_match(disk_t *d)
{
    drec_t *pick[MATCH_SAMPLE];
    uint32_t n = 0;
    size_t pos = 0;
    uint64_t key;
    void *val;
    while (u64map_next(&d->recs, &pos, &key, &val)) {
        drec_t *r = val;
        uint32_t i = n < MATCH_SAMPLE ? n++ : MATCH_SAMPLE;
        if (i == MATCH_SAMPLE) {
            uint32_t worst = 0;
            for (uint32_t j = 1; j < n; j++)
                if (pick[j]->len > pick[worst]->len) worst = j;
            if (r->len >= pick[worst]->len) continue;
            i = worst;
        }
        pick[i] = r;
    }
    uint64_t budget = 64u << 20, maxlen = 0;
    uint32_t use = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (disk_padded(pick[i]->len) > budget) continue;
        budget -= disk_padded(pick[i]->len);
        if (pick[i]->len > maxlen) maxlen = pick[i]->len;
        pick[use++] = pick[i];
    }
    if (use < 2) return 0;
    void *buf;
    if (posix_memalign(&buf, DISK_ALIGN, disk_padded(maxlen))) return 0;
    uint32_t ok = 0;
    for (uint32_t i = 0; i < use && !ok; i++)
        ok = do_io(d, 0, buf, disk_padded(pick[i]->len), pick[i]->off) == 0 &&
             XXH3_64bits(buf, pick[i]->len) == pick[i]->checksum;
    free(buf);
    if (ok) return 0;
    snprintf(d->err, sizeof d->err,
             "%s/disk.lmdb/data.mdb does not match %s/blobs.dat (none of %u records read "
             "verifies); not started: run simcached --recover to keep the records that verify "
             "and drop the rest", d->cfg.dir, d->cfg.dir, use);
    return -EBADMSG;
}

disk_t *disk_open(const disk_config_t *cfg, char *err, size_t errlen)
{
    disk_t *d = calloc(1, sizeof *d);
    if (!d) {
        if (err) snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->cfg = *cfg;
    d->fd = -1;
    d->st.capacity = cfg->capacity & ~(uint64_t)(DISK_ALIGN - 1);
    if (!cfg->dir || d->st.capacity == 0) {
        snprintf(d->err, sizeof d->err, "disk tier: no directory or capacity below 4096");
        open_fail(d, err, errlen);
        return NULL;
    }
    char path[320];
    snprintf(path, sizeof path, "%s/disk.lmdb", cfg->dir);
    if (mkdir(path, 0700) && errno != EEXIST) {
        snprintf(d->err, sizeof d->err, "%s: %s", path, strerror(errno));
        open_fail(d, err, errlen);
        return NULL;
    }
    if (access(path, W_OK)) {
        snprintf(d->err, sizeof d->err, "%s: not writable: %s", path, strerror(errno));
        open_fail(d, err, errlen);
        return NULL;
    }

    /* Blob file: O_DIRECT if the filesystem takes it. */
    snprintf(path, sizeof path, "%s/blobs.dat", cfg->dir);
    d->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_DIRECT, 0600);
    d->direct = d->fd >= 0;
    if (d->fd < 0 && errno == EINVAL)
        d->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (d->fd < 0) {
        snprintf(d->err, sizeof d->err, "%s: %s", path, strerror(errno));
        open_fail(d, err, errlen);
        return NULL;
    }
    /* One process per data directory: LMDB allows one writer, and two
     * allocators over one blob file would hand out the same bytes. The lock
     * goes with the process, also on SIGKILL, but not at once: the kernel
     * tears down a killed process's io_uring (which holds the file while
     * requests are in flight) after the process is reaped. A restart right
     * after a crash therefore waits up to 3 s for the lock. */
    int locked = flock(d->fd, LOCK_EX | LOCK_NB);
    for (int i = 0; locked && errno == EWOULDBLOCK && i < 60; i++) {
        struct timespec ts = { 0, 50 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        locked = flock(d->fd, LOCK_EX | LOCK_NB);
    }
    if (locked) {
        snprintf(d->err, sizeof d->err, "%s: %s", path,
                 errno == EWOULDBLOCK ? "in use by another process" : strerror(errno));
        open_fail(d, err, errlen);
        return NULL;
    }
    struct stat sb;
    if (fstat(d->fd, &sb)) {
        snprintf(d->err, sizeof d->err, "%s: %s", path, strerror(errno));
        open_fail(d, err, errlen);
        return NULL;
    }
    uint64_t file_size = (uint64_t)sb.st_size;
    d->st.direct = d->direct;

    d->uring = io_uring_queue_init(8, &d->ring, 0) == 0;
    d->st.uring = d->uring;
    d->efd = -1;
    if (d->uring && io_uring_queue_init(ARING_DEPTH, &d->aring, 0) == 0) {
        d->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (d->efd >= 0 && io_uring_register_eventfd(&d->aring, d->efd) == 0) {
            d->async = 1;
        } else {
            if (d->efd >= 0) close(d->efd);
            d->efd = -1;
            io_uring_queue_exit(&d->aring);
        }
    }
    d->st.async = d->async;

    snprintf(path, sizeof path, "%s/disk.lmdb/data.mdb", cfg->dir);
    if (stat(path, &sb) == 0 && sb.st_size > 0) {
        snprintf(path, sizeof path, "%s/disk.lmdb", cfg->dir);
        if (lmdb_check(d, path, (uint64_t)sb.st_size)) {
            open_fail(d, err, errlen);
            return NULL;
        }
    }

    int rc = mdb_env_create(&d->env);
    if (rc) {
        lmdb_err(d, "mdb_env_create", rc);
        d->env = NULL;
        open_fail(d, err, errlen);
        return NULL;
    }
    d->map_size = cfg->map_size ? cfg->map_size : (64ull << 20);
    if (cfg->max_map_size && d->map_size > cfg->max_map_size) d->map_size = cfg->max_map_size;
    /* Before mdb_env_open LMDB only records these (they fail with EINVAL
     * on an open environment): checked so that a refusal names its call
     * instead of surfacing later as MDB_DBS_FULL or a wrong map size. */
    rc = mdb_env_set_mapsize(d->env, (size_t)d->map_size);
    if (rc) {
        lmdb_err(d, "mdb_env_set_mapsize", rc);
        open_fail(d, err, errlen);
        return NULL;
    }
    rc = mdb_env_set_maxdbs(d->env, 4);
    if (rc) {
        lmdb_err(d, "mdb_env_set_maxdbs", rc);
        open_fail(d, err, errlen);
        return NULL;
    }
    snprintf(path, sizeof path, "%s/disk.lmdb", cfg->dir);
    /* Without sync, commits reach the page cache only (a process crash loses
     * nothing, a power cut may lose the last ones); disk_sync() flushes. */
    unsigned flags = MDB_NOTLS | (cfg->sync ? 0 : MDB_NOSYNC | MDB_NOMETASYNC);
    rc = mdb_env_open(d->env, path, flags, 0600);
    if (rc) {
        lmdb_err(d, path, rc);
        open_fail(d, err, errlen);
        return NULL;
    }
    MDB_envinfo info;
    if (mdb_env_info(d->env, &info) == 0 && info.me_mapsize > d->map_size)
        d->map_size = info.me_mapsize;
    d->st.map_size = d->map_size;
    int dead = 0;
    mdb_reader_check(d->env, &dead);

    MDB_txn *txn;
    rc = mdb_txn_begin(d->env, NULL, 0, &txn);
    if (rc == 0) rc = mdb_dbi_open(txn, "entries", MDB_CREATE | MDB_INTEGERKEY, &d->db_entries);
    if (rc == 0) rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &d->db_meta);
    if (rc == 0) {
        MDB_val k = { 6, "format" }, v;
        uint32_t fmt = DISK_FORMAT;
        rc = mdb_get(txn, d->db_meta, &k, &v);
        if (rc == MDB_NOTFOUND) {
            v.mv_size = sizeof fmt;
            v.mv_data = &fmt;
            rc = mdb_put(txn, d->db_meta, &k, &v, 0);
        } else if (rc == 0) {
            uint32_t have = 0;
            if (v.mv_size == sizeof have) memcpy(&have, v.mv_data, sizeof have);
            if (have != DISK_FORMAT) {
                mdb_txn_abort(txn);
                snprintf(d->err, sizeof d->err, "disk tier format %u, this build reads %u", have,
                         DISK_FORMAT);
                open_fail(d, err, errlen);
                return NULL;
            }
        }
    }
    if (rc == 0) rc = mdb_txn_commit(txn);
    else mdb_txn_abort(txn);
    if (rc) {
        lmdb_err(d, "LMDB databases", rc);
        open_fail(d, err, errlen);
        return NULL;
    }

    d->alloc = alloc_new(d->st.capacity, DISK_ALIGN);
    if (!d->alloc) {
        snprintf(d->err, sizeof d->err, "out of memory");
        open_fail(d, err, errlen);
        return NULL;
    }
    /* Records past the end of a truncated file are dropped before the file
     * is extended again (the zeros would fail their checksum anyway). */
    if (load_records(d, file_size) || blobs_match(d)) {
        open_fail(d, err, errlen);
        return NULL;
    }
    if (file_size < d->st.capacity) {
        rc = posix_fallocate(d->fd, 0, (off_t)d->st.capacity);
        if (rc == EOPNOTSUPP || rc == EINVAL) rc = ftruncate(d->fd, (off_t)d->st.capacity) ? errno : 0;
        if (rc) {
            /* Give back what the attempt took: a partly extended file would
             * leave the filesystem full for the next start too. */
            if (ftruncate(d->fd, (off_t)file_size)) {}
            snprintf(d->err, sizeof d->err, "blob file: cannot allocate %llu bytes: %s",
                     (unsigned long long)d->st.capacity, strerror(rc));
            open_fail(d, err, errlen);
            return NULL;
        }
    }
    return d;
}

/* ---- recovery: a new data.mdb from the records that verify ---- */

/* What a salvage child sends per record: id, then the value's length and
 * bytes (a record that verified), or SALVAGE_BAD (one that did not). id 0
 * carries the "seed" meta value; SALVAGE_END after id 0 ends the walk. */
#define SALVAGE_BAD 0xffffffffu
#define SALVAGE_END 0xfffffffeu

static int put_all(int fd, const void *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p = (const char *)p + w;
        n -= (size_t)w;
    }
    return 0;
}

static int get_all(int fd, void *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p = (char *)p + r;
        n -= (size_t)r;
    }
    return 0;
}

static int send_rec(int fd, uint64_t id, uint32_t len, const void *v)
{
    if (put_all(fd, &id, sizeof id) || put_all(fd, &len, sizeof len)) return -1;
    return len < SALVAGE_END && len ? put_all(fd, v, len) : 0;
}

/* The child's side: read every record of the data.mdb file at path (in key
 * order, or backwards), check its header against blobs.dat (bfd, bsize
 * bytes) and its blob's checksum, and send it. */
static int salvage_child(const char *path, uint64_t size, int bfd, uint64_t bsize, uint64_t cap,
                         int backwards, int fd)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbe, dbm;
    MDB_cursor *cur;
    uint64_t map = size > (64ull << 20) ? size : (64ull << 20);
    int rc = mdb_env_create(&env);
    if (rc == 0) rc = mdb_env_set_maxdbs(env, 4);
    if (rc == 0) rc = mdb_env_set_mapsize(env, (size_t)((map + 0xfffff) & ~0xfffffull));
    if (rc == 0) rc = mdb_env_open(env, path, MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS, 0600);
    if (rc == 0) rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    if (rc) return -1;
    MDB_val k = { 4, "seed" }, v;
    if (mdb_dbi_open(txn, "meta", 0, &dbm) == 0 && mdb_get(txn, dbm, &k, &v) == 0 &&
        v.mv_size == sizeof(uint64_t) && !backwards)
        send_rec(fd, 0, (uint32_t)v.mv_size, v.mv_data);
    if (mdb_dbi_open(txn, "entries", MDB_INTEGERKEY, &dbe) ||
        mdb_cursor_open(txn, dbe, &cur))
        return send_rec(fd, 0, SALVAGE_END, NULL);   /* no records: nothing to keep */
    uint8_t *buf = NULL;
    size_t bcap = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, backwards ? MDB_LAST : MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, backwards ? MDB_PREV : MDB_NEXT)) {
        uint64_t id = 0;
        disk_hdr_t h;
        int ok = k.mv_size == sizeof id && v.mv_size >= sizeof h && v.mv_size < SALVAGE_END;
        if (k.mv_size == sizeof id) memcpy(&id, k.mv_data, sizeof id);
        if (ok) {
            memcpy(&h, v.mv_data, sizeof h);
            ok = id != 0 && h.magic == DISK_MAGIC && v.mv_size == sizeof h + h.rec_len &&
                 h.len > 0 && h.len <= cap && h.off <= cap - disk_padded(h.len) &&
                 h.off + h.len <= bsize && bfd >= 0;
        }
        if (ok && h.len > bcap) {
            free(buf);
            bcap = (size_t)h.len;
            if (!(buf = malloc(bcap))) bcap = 0;
        }
        ok = ok && buf && pread(bfd, buf, (size_t)h.len, (off_t)h.off) == (ssize_t)h.len &&
             XXH3_64bits(buf, (size_t)h.len) == h.checksum;
        if (id == 0) continue;
        if (send_rec(fd, id, ok ? (uint32_t)v.mv_size : SALVAGE_BAD, v.mv_data)) return -1;
    }
    free(buf);
    return send_rec(fd, 0, SALVAGE_END, NULL);
}

typedef struct {
    u64map_t keep;     /* id -> malloc'd value: [u32 length][value] */
    u64map_t bad;      /* id -> (void *)1 */
    uint64_t seed;
    int has_seed;
} salvage_t;

/* One salvage pass in a child. 1: the walk reached the end; 0: it died
 * (what came before is kept); -ENOMEM. */
static int salvage_pass(salvage_t *sv, const char *path, uint64_t size, int bfd, uint64_t bsize,
                        uint64_t cap, int backwards)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC)) return -errno;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -errno;
    }
    if (pid == 0) {
        close(p[0]);
        quiet_child();
        _exit(salvage_child(path, size, bfd, bsize, cap, backwards, p[1]) ? 1 : 0);
    }
    close(p[1]);
    int done = 0, ret = 0;
    for (;;) {
        uint64_t id;
        uint32_t len;
        if (get_all(p[0], &id, sizeof id) || get_all(p[0], &len, sizeof len)) break;
        if (id == 0 && len == SALVAGE_END) {
            done = 1;
            break;
        }
        if (len == SALVAGE_BAD) {
            if (!u64map_get(&sv->keep, id) && u64map_put(&sv->bad, id, (void *)1)) ret = -ENOMEM;
            if (ret) break;
            continue;
        }
        uint8_t *v = len ? malloc(sizeof len + len) : NULL;
        if (!v) {
            ret = -ENOMEM;
            break;
        }
        memcpy(v, &len, sizeof len);
        if (get_all(p[0], v + sizeof len, len)) {
            free(v);
            break;
        }
        if (id == 0) {
            if (len == sizeof sv->seed) memcpy(&sv->seed, v + sizeof len, sizeof sv->seed);
            sv->has_seed = len == sizeof sv->seed;
            free(v);
            continue;
        }
        void *old = u64map_get(&sv->keep, id);
        if (old) {
            free(v);
            continue;
        }
        u64map_del(&sv->bad, id);
        if (u64map_put(&sv->keep, id, v)) {
            free(v);
            ret = -ENOMEM;
            break;
        }
    }
    close(p[0]);
    if (ret) kill(pid, SIGKILL);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    return ret ? ret : done;
}

static void salvage_free(salvage_t *sv)
{
    size_t pos = 0;
    uint64_t key;
    void *val;
    while (u64map_next(&sv->keep, &pos, &key, &val)) free(val);
    u64map_clear(&sv->keep);
    u64map_clear(&sv->bad);
}

/* Write the salvaged records into the fresh disk tier d, 1024 to a commit. */
static int salvage_write(disk_t *d, salvage_t *sv)
{
    size_t pos = 0;
    uint64_t key;
    void *val;
    int rc = 0;
    if (sv->has_seed) rc = txn_write(d, d->db_meta, "seed", 4, &sv->seed, sizeof sv->seed, NULL, 0, 0);
    while (rc == 0) {
        size_t start = pos;
        MDB_txn *txn;
        rc = mdb_txn_begin(d->env, NULL, 0, &txn);
        if (rc) return lmdb_err(d, "mdb_txn_begin", rc);
        int n = 0, more = 0;
        while (rc == 0 && n < 1024 && (more = u64map_next(&sv->keep, &pos, &key, &val))) {
            uint32_t len;
            memcpy(&len, val, sizeof len);
            MDB_val k = { sizeof key, &key }, v = { len, (uint8_t *)val + sizeof len };
            rc = mdb_put(txn, d->db_entries, &k, &v, 0);
            n++;
        }
        if (rc == 0) rc = mdb_txn_commit(txn);
        else mdb_txn_abort(txn);
        if (rc == MDB_MAP_FULL && grow_map(d) == 0) {
            pos = start;   /* the batch again, in a larger map */
            rc = 0;
            continue;
        }
        if (rc) return lmdb_err(d, "writing the recovered records", rc);
        if (!more) break;
    }
    return rc;
}

int disk_recover(const disk_config_t *cfg, disk_recover_stats_t *st, char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    char mdb[300], blobs[300], aside[340], lock[300];
    snprintf(mdb, sizeof mdb, "%s/disk.lmdb/data.mdb", cfg->dir);
    snprintf(lock, sizeof lock, "%s/disk.lmdb/lock.mdb", cfg->dir);
    snprintf(blobs, sizeof blobs, "%s/blobs.dat", cfg->dir);
    struct stat sb;
    if (stat(mdb, &sb) || sb.st_size == 0) return 0;   /* nothing to recover */
    uint64_t size = (uint64_t)sb.st_size;
    uint64_t cap = cfg->capacity & ~(uint64_t)(DISK_ALIGN - 1);
    int bfd = open(blobs, O_RDONLY | O_CLOEXEC);
    uint64_t bsize = bfd >= 0 && fstat(bfd, &sb) == 0 ? (uint64_t)sb.st_size : 0;
    /* A running daemon holds this lock: never rebuild under it. */
    if (bfd >= 0 && flock(bfd, LOCK_EX | LOCK_NB)) {
        snprintf(err, errlen, "%s: %s", blobs,
                 errno == EWOULDBLOCK ? "in use by another process" : strerror(errno));
        close(bfd);
        return -EBUSY;
    }
    salvage_t sv;
    memset(&sv, 0, sizeof sv);
    int rc = salvage_pass(&sv, mdb, size, bfd, bsize, cap, 0);
    if (rc == 0) {
        /* The walk died on a bad page: the records past it, from the other end. */
        st->walk_died = 1;
        rc = salvage_pass(&sv, mdb, size, bfd, bsize, cap, 1);
    }
    if (bfd >= 0) close(bfd);   /* the lock goes with it: disk_open takes it again */
    if (rc < 0) {
        snprintf(err, errlen, "reading %s: %s", mdb, strerror(-rc));
        salvage_free(&sv);
        return rc;
    }
    st->kept = u64map_len(&sv.keep);
    st->dropped = u64map_len(&sv.bad);
    st->records = st->kept + st->dropped;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(aside, sizeof aside, "%s.corrupt-%s", mdb, ts);
    if (rename(mdb, aside)) {
        snprintf(err, errlen, "moving %s aside: %s", mdb, strerror(errno));
        salvage_free(&sv);
        return -errno;
    }
    unlink(lock);
    snprintf(st->moved_to, sizeof st->moved_to, "%s", aside);
    disk_config_t c = *cfg;
    c.sync = 0;   /* one flush at disk_close */
    c.on_drop = NULL;
    disk_t *d = disk_open(&c, err, errlen);
    if (!d) {
        salvage_free(&sv);
        return -EIO;
    }
    rc = salvage_write(d, &sv);
    if (rc) snprintf(err, errlen, "%s", d->err);
    salvage_free(&sv);
    disk_close(d);
    return rc;
}

void disk_close(disk_t *d)
{
    if (!d) return;
    disk_drain(d);
    if (d->async) {
        /* Unpin the registered arena now: the ring's own teardown frees it
         * later, from a kernel worker, and a daemon restarted at once would
         * find its hugetlb pages still held (host_huge_pages). */
        if (d->fx_base) io_uring_unregister_buffers(&d->aring);
        io_uring_queue_exit(&d->aring);
        close(d->efd);
    }
    if (d->env) {
        mdb_env_sync(d->env, 1);
        mdb_env_close(d->env);
    }
    if (d->uring) io_uring_queue_exit(&d->ring);
    if (d->fd >= 0) {
        fdatasync(d->fd);
        close(d->fd);
    }
    size_t pos = 0;
    uint64_t key;
    void *val;
    while (u64map_next(&d->recs, &pos, &key, &val)) free(val);
    u64map_clear(&d->recs);
    u64map_clear(&d->wpend);
    alloc_free(d->alloc);
    free(d->fx_ready);
    free(d);
}

/* An asynchronous write of id in flight stops counting: its completion
 * releases its extent and reports -ECANCELED. */
static void cancel_write(disk_t *d, uint64_t id)
{
    aread_t *w = u64map_del(&d->wpend, id);
    if (w) w->cancelled = 1;
}

/* Reserve plen bytes of the blob file, evicting LRU blobs (not those being
 * read) to make room. 0, -ENOSPC, or an LMDB error of an eviction. */
static int reserve_extent(disk_t *d, uint64_t plen, uint64_t *off)
{
    int rc;
    drec_t *victim = d->tail;
    while ((rc = alloc_reserve(d->alloc, plen, off)) == -ENOSPC) {
        /* A blob being read is not evicted under its read. */
        while (victim && victim->busy) victim = victim->prev;
        if (!victim) break;
        uint64_t vid = victim->id;
        drec_t *before = victim->prev;
        rc = rec_drop(d, victim);
        d->st.evictions++;
        if (d->cfg.on_drop) d->cfg.on_drop(d->cfg.ctx, vid, DISK_DROP_EVICTED);
        if (rc) return rc;
        victim = before;
    }
    return rc;
}

int disk_put(disk_t *d, uint64_t id, const void *buf, uint64_t len, uint64_t checksum,
             const void *rec, uint32_t rec_len)
{
    if (id == 0 || len == 0 || ((uintptr_t)buf & (DISK_ALIGN - 1))) return -EINVAL;
    cancel_write(d, id);
    uint64_t plen = disk_padded(len);
    if (plen > d->st.capacity) return -EFBIG;
    drec_t *old = u64map_get(&d->recs, id);
    if (old) {
        int rc = rec_drop(d, old);
        if (rc) return rc;
    }
    uint64_t off;
    int rc = reserve_extent(d, plen, &off);
    if (rc) return rc;
    drec_t *r = calloc(1, sizeof *r);
    if (!r) {
        alloc_release(d->alloc, off, plen);
        return -ENOMEM;
    }
    rc = do_io(d, 1, (void *)buf, plen, off);
    if (rc == 0 && d->cfg.sync && fdatasync(d->fd)) rc = -errno;
    if (rc) {
        snprintf(d->err, sizeof d->err, "blob write at %llu: %s", (unsigned long long)off,
                 strerror(-rc));
        d->st.write_errors++;
        alloc_release(d->alloc, off, plen);
        free(r);
        return rc == -ENOSPC ? -ENOSPC : -EIO;
    }
    disk_hdr_t h = { DISK_MAGIC, rec_len, off, len, checksum, wall_us() };
    rc = txn_write(d, d->db_entries, &id, sizeof id, &h, sizeof h, rec, rec_len, 0);
    if (rc) {
        d->st.write_errors++;
        alloc_release(d->alloc, off, plen);
        free(r);
        return rc;
    }
    r->id = id;
    r->off = off;
    r->len = len;
    r->checksum = checksum;
    if (u64map_put(&d->recs, id, r)) {
        /* Keep LMDB and memory in step: without the map entry, undo. */
        txn_write(d, d->db_entries, &id, sizeof id, NULL, 0, NULL, 0, 1);
        alloc_release(d->alloc, off, plen);
        free(r);
        return -ENOMEM;
    }
    lru_front(d, r);
    d->st.entries++;
    d->st.bytes_used += plen;
    d->st.writes++;
    return 0;
}

static int read_check(disk_t *d, drec_t *r, void *dst)
{
    int rc = do_io(d, 0, dst, disk_padded(r->len), r->off);
    if (rc == -ENODATA) rc = -EBADMSG;   /* short file: the blob is not all there */
    if (rc == 0 && XXH3_64bits(dst, r->len) != r->checksum) rc = -EBADMSG;
    if (rc == -EBADMSG) {
        uint64_t id = r->id;
        d->st.checksum_failures++;
        rec_drop(d, r);
        if (d->cfg.on_drop) d->cfg.on_drop(d->cfg.ctx, id, DISK_DROP_CORRUPT);
    } else if (rc) {
        snprintf(d->err, sizeof d->err, "blob read at %llu: %s", (unsigned long long)r->off,
                 strerror(-rc));
        rc = -EIO;
    }
    return rc;
}

int disk_get(disk_t *d, uint64_t id, void *dst, uint64_t *len)
{
    if ((uintptr_t)dst & (DISK_ALIGN - 1)) return -EINVAL;
    drec_t *r = u64map_get(&d->recs, id);
    if (!r) return -ENOENT;
    if (len) *len = r->len;
    int rc = read_check(d, r, dst);
    if (rc) return rc;
    lru_unlink(d, r);
    lru_front(d, r);
    d->st.reads++;
    return 0;
}

int disk_info(const disk_t *d, uint64_t id, uint64_t *len, uint64_t *checksum)
{
    drec_t *r = u64map_get(&d->recs, id);
    if (!r) return -ENOENT;
    if (len) *len = r->len;
    if (checksum) *checksum = r->checksum;
    return 0;
}

int disk_has(const disk_t *d, uint64_t id)
{
    return u64map_get(&d->recs, id) != NULL;
}

void disk_cancel_write(disk_t *d, uint64_t id)
{
    cancel_write(d, id);
}

int disk_delete(disk_t *d, uint64_t id)
{
    cancel_write(d, id);
    drec_t *r = u64map_get(&d->recs, id);
    if (!r) return -ENOENT;
    return rec_drop(d, r);
}

int disk_foreach(disk_t *d,
                 int (*fn)(void *arg, uint64_t id, uint64_t len, uint64_t checksum,
                           uint64_t created_us, const void *rec, uint32_t rec_len),
                 void *arg)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = entries_cursor(d, &txn, &cur);
    if (rc) return rc;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint64_t id;
        disk_hdr_t h;
        if (k.mv_size != sizeof id || v.mv_size < sizeof h) continue;
        memcpy(&id, k.mv_data, sizeof id);
        memcpy(&h, v.mv_data, sizeof h);
        if (!u64map_get(&d->recs, id)) continue;
        if (fn(arg, id, h.len, h.checksum, h.created_us, (const char *)v.mv_data + sizeof h,
               h.rec_len))
            break;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return 0;
}

int64_t disk_verify(disk_t *d, uint64_t *checked)
{
    uint64_t n = u64map_len(&d->recs), got = 0, maxlen = 0;
    uint64_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) return -ENOMEM;
    size_t pos = 0;
    uint64_t key;
    void *val;
    while (u64map_next(&d->recs, &pos, &key, &val)) {
        ids[got++] = key;
        drec_t *r = val;
        if (r->len > maxlen) maxlen = r->len;
    }
    void *buf = NULL;
    if (got && posix_memalign(&buf, DISK_ALIGN, disk_padded(maxlen))) {
        free(ids);
        return -ENOMEM;
    }
    int64_t bad = 0;
    uint64_t done = 0;
    for (uint64_t i = 0; i < got; i++) {
        drec_t *r = u64map_get(&d->recs, ids[i]);
        if (!r) continue;
        int rc = read_check(d, r, buf);
        done++;
        if (rc == -EBADMSG) bad++;
    }
    free(buf);
    free(ids);
    if (checked) *checked = done;
    return bad;
}

int disk_sync(disk_t *d)
{
    int rc = 0;
    if (fdatasync(d->fd)) rc = -EIO;
    int mrc = mdb_env_sync(d->env, 1);
    if (mrc) rc = lmdb_err(d, "mdb_env_sync", mrc);
    return rc;
}

int disk_meta_put(disk_t *d, const char *key, const void *val, uint32_t len)
{
    size_t kl = strlen(key);
    if (kl == 0 || kl > 64) return -EINVAL;
    return txn_write(d, d->db_meta, key, kl, val, len, NULL, 0, 0);
}

int disk_meta_get(disk_t *d, const char *key, void *val, uint32_t cap)
{
    size_t kl = strlen(key);
    if (kl == 0 || kl > 64) return -EINVAL;
    MDB_txn *txn;
    int rc = mdb_txn_begin(d->env, NULL, MDB_RDONLY, &txn);
    if (rc) return lmdb_err(d, "mdb_txn_begin", rc);
    MDB_val k = { kl, (void *)key }, v;
    rc = mdb_get(txn, d->db_meta, &k, &v);
    int ret;
    if (rc == MDB_NOTFOUND) ret = -ENOENT;
    else if (rc) ret = lmdb_err(d, "mdb_get", rc);
    else {
        memcpy(val, v.mv_data, v.mv_size < cap ? v.mv_size : cap);
        ret = (int)v.mv_size;
    }
    mdb_txn_abort(txn);
    return ret;
}

void disk_get_stats(const disk_t *d, disk_stats_t *st)
{
    *st = d->st;
    st->fixed_bytes = __atomic_load_n(&d->fx_bytes, __ATOMIC_RELAXED);
}

const char *disk_errstr(const disk_t *d)
{
    return d->err;
}

/* ---- asynchronous reads ---- */

int disk_event_fd(const disk_t *d)
{
    return d->async ? d->efd : -1;
}

static void queue_chunk(disk_t *d, achunk_t *c)
{
    c->qnext = NULL;
    if (d->q_tail) d->q_tail->qnext = c;
    else d->q_head = c;
    d->q_tail = c;
}

/* ---- registered buffers ---- */

#define FIXED_MAX_PIECES 16384u   /* IORING_MAX_REG_BUFFERS */
#define FIXED_MIN_SHIFT 26u       /* 64 MiB */
#define FIXED_MAX_SHIFT 30u       /* 1 GiB: the kernel's limit for one buffer */

int disk_fixed_init(disk_t *d, void *base, uint64_t len, uint64_t *piece)
{
    if (!d->async) return -EOPNOTSUPP;
    if (d->fx_base) return -EBUSY;
    if (!base || !len || ((uintptr_t)base & (DISK_ALIGN - 1))) return -EINVAL;
    unsigned shift = FIXED_MIN_SHIFT;
    while (shift < FIXED_MAX_SHIFT && ((len - 1) >> shift) + 1 > FIXED_MAX_PIECES) shift++;
    uint64_t n = ((len - 1) >> shift) + 1;
    if (n > FIXED_MAX_PIECES) return -E2BIG;
    uint8_t *ready = calloc((size_t)n, 1);
    if (!ready) return -ENOMEM;
    /* An empty table of n slots (Linux 5.19); pieces fill it one by one. */
    int rc = io_uring_register_buffers_sparse(&d->aring, (unsigned)n);
    if (rc) {
        free(ready);
        return rc < 0 ? rc : -EINVAL;
    }
    d->fx_base = base;
    d->fx_len = len;
    d->fx_shift = shift;
    d->fx_n = (uint32_t)n;
    d->fx_ready = ready;
    *piece = 1ull << shift;
    return (int)n;
}

int disk_fixed_add(disk_t *d, uint32_t i)
{
    if (!d->fx_base || i >= d->fx_n) return -EINVAL;
    if (__atomic_load_n(&d->fx_ready[i], __ATOMIC_ACQUIRE)) return 0;
    uint64_t off = (uint64_t)i << d->fx_shift;
    uint64_t n = d->fx_len - off < (1ull << d->fx_shift) ? d->fx_len - off : 1ull << d->fx_shift;
    struct iovec iov = { d->fx_base + off, (size_t)n };
    __u64 tag = 0;
    /* io_uring_register serialises with submission in the kernel (the
     * ring's lock): safe beside the thread that drives d. */
    int rc = io_uring_register_buffers_update_tag(&d->aring, i, &iov, &tag, 1);
    if (rc < 0) return rc;
    if (rc != 1) return -EIO;
    __atomic_add_fetch(&d->fx_bytes, n, __ATOMIC_RELAXED);
    __atomic_store_n(&d->fx_ready[i], 1, __ATOMIC_RELEASE);
    return 0;
}

/* The registered piece holding all of [buf, buf + len), or -1. */
static int fixed_index(const disk_t *d, const uint8_t *buf, unsigned len)
{
    if (!d->fx_base || buf < d->fx_base) return -1;
    uint64_t a = (uint64_t)(buf - d->fx_base);
    if (a + len > d->fx_len) return -1;
    uint64_t i = a >> d->fx_shift;
    if (((a + len - 1) >> d->fx_shift) != i) return -1;
    return __atomic_load_n(&d->fx_ready[i], __ATOMIC_ACQUIRE) ? (int)i : -1;
}

/* Hand queued chunks to the kernel while SQEs are free. */
static void submit_queued(disk_t *d)
{
    unsigned n = 0;
    while (d->q_head && d->a_inflight < ARING_DEPTH) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&d->aring);
        if (!sqe) break;
        achunk_t *c = d->q_head;
        d->q_head = c->qnext;
        if (!d->q_head) d->q_tail = NULL;
        uint8_t *buf = c->rd->dst + c->off + c->done;
        unsigned len = c->len - c->done;
        uint64_t at = c->rd->r->off + c->off + c->done;
        int fx = fixed_index(d, buf, len);
        if (fx >= 0) {
            d->st.fixed_ios++;
            if (c->rd->write) io_uring_prep_write_fixed(sqe, d->fd, buf, len, at, fx);
            else io_uring_prep_read_fixed(sqe, d->fd, buf, len, at, fx);
        } else if (c->rd->write) {
            io_uring_prep_write(sqe, d->fd, buf, len, at);
        } else {
            io_uring_prep_read(sqe, d->fd, buf, len, at);
        }
        io_uring_sqe_set_data(sqe, c);
        d->a_inflight++;
        n++;
    }
    if (n) io_uring_submit(&d->aring);
}

static void aio_unlink(disk_t *d, aread_t *rd);

/* Cut rd's plen bytes into its n chunks, queue them, and list rd as in
 * flight (aio_unlink undoes the listing); the caller submits. */
static void aio_queue(disk_t *d, aread_t *rd, uint32_t n, uint64_t plen)
{
    rd->left = n;
    rd->nchunks = n;
    for (uint32_t i = 0; i < n; i++) {
        achunk_t *c = &rd->chunks[i];
        c->rd = rd;
        c->off = (uint64_t)i * ACHUNK;
        c->len = (uint32_t)(plen - c->off < ACHUNK ? plen - c->off : ACHUNK);
        queue_chunk(d, c);
    }
    rd->next = d->reads;
    if (d->reads) d->reads->prev = rd;
    d->reads = rd;
}

static void aread_finish(disk_t *d, aread_t *rd)
{
    drec_t *r = rd->r;
    int rc = rd->err;
    r->busy--;
    if (rc == -ENODATA) rc = -EBADMSG;   /* short file: the blob is not all there */
    if (r->dropped) {
        /* Deleted, replaced or dropped while we read: the bytes are not its. */
        rc = -ENOENT;
        rec_release(d, r);
    } else if (rc == 0 && XXH3_64bits_digest(rd->xs) != r->checksum) {
        rc = -EBADMSG;
    }
    if (rc == -EBADMSG) {
        d->st.checksum_failures++;
        rec_drop(d, r);
        if (d->cfg.on_drop) d->cfg.on_drop(d->cfg.ctx, rd->id, DISK_DROP_CORRUPT);
    } else if (rc && rc != -ENOENT) {
        snprintf(d->err, sizeof d->err, "blob read at %llu: %s", (unsigned long long)r->off,
                 strerror(-rc));
        rc = -EIO;
    } else if (rc == 0) {
        lru_unlink(d, r);
        lru_front(d, r);
        d->st.reads++;
    }
    aio_unlink(d, rd);
    d->st.reads_inflight--;
    rd->cb(rd->arg, rd->id, rc);
    XXH3_freeState(rd->xs);
    free(rd);
}

/* Feed the checksum every chunk that is complete and in order: hashing
 * overlaps the reads still in flight. Padding past the blob is not hashed. */
static void hash_ready(aread_t *rd)
{
    while (rd->hashed < rd->nchunks && rd->chunks[rd->hashed].complete) {
        achunk_t *c = &rd->chunks[rd->hashed++];
        if (c->off >= rd->r->len) continue;
        uint64_t n = rd->r->len - c->off < c->len ? rd->r->len - c->off : c->len;
        XXH3_64bits_update(rd->xs, rd->dst + c->off, (size_t)n);
    }
}

int disk_read_async(disk_t *d, uint64_t id, void *dst, disk_read_cb cb, void *arg)
{
    if (!d->async) return -EOPNOTSUPP;
    if (!cb || ((uintptr_t)dst & (DISK_ALIGN - 1))) return -EINVAL;
    drec_t *r = u64map_get(&d->recs, id);
    if (!r) return -ENOENT;
    uint64_t plen = disk_padded(r->len);
    uint32_t n = (uint32_t)((plen + ACHUNK - 1) / ACHUNK);
    aread_t *rd = calloc(1, sizeof *rd + (size_t)n * sizeof(achunk_t));
    if (!rd) return -ENOMEM;
    rd->xs = XXH3_createState();
    if (!rd->xs || XXH3_64bits_reset(rd->xs) != XXH_OK) {
        XXH3_freeState(rd->xs);
        free(rd);
        return -ENOMEM;
    }
    rd->r = r;
    rd->id = id;
    rd->dst = dst;
    rd->cb = cb;
    rd->arg = arg;
    r->busy++;
    aio_queue(d, rd, n, plen);
    d->st.reads_inflight++;
    d->st.async_reads++;
    submit_queued(d);
    return 0;
}

static void aio_unlink(disk_t *d, aread_t *rd)
{
    if (rd->prev) rd->prev->next = rd->next;
    else d->reads = rd->next;
    if (rd->next) rd->next->prev = rd->prev;
}

/* The last chunk of a write is on disk (or failed): commit its record, or
 * give its extent back. */
static void awrite_finish(disk_t *d, aread_t *rd)
{
    drec_t *r = rd->r;
    int rc = rd->err;
    if (u64map_get(&d->wpend, rd->id) == rd) u64map_del(&d->wpend, rd->id);
    if (rd->cancelled) rc = -ECANCELED;
    else if (rc == 0 && d->cfg.sync && fdatasync(d->fd)) rc = -errno;
    if (rc && rc != -ECANCELED) {
        snprintf(d->err, sizeof d->err, "blob write at %llu: %s", (unsigned long long)r->off,
                 strerror(-rc));
        d->st.write_errors++;
        rc = rc == -ENOSPC ? -ENOSPC : -EIO;
    }
    if (rc == 0) {
        disk_hdr_t h = { DISK_MAGIC, rd->rec_len, r->off, r->len, r->checksum, wall_us() };
        rc = txn_write(d, d->db_entries, &r->id, sizeof r->id, &h, sizeof h, rd->rec, rd->rec_len, 0);
        if (rc) d->st.write_errors++;
    }
    if (rc == 0 && u64map_put(&d->recs, r->id, r)) {
        txn_write(d, d->db_entries, &r->id, sizeof r->id, NULL, 0, NULL, 0, 1);
        rc = -ENOMEM;
    }
    if (rc == 0) {
        lru_front(d, r);
        d->st.entries++;
        d->st.bytes_used += disk_padded(r->len);
        d->st.writes++;
    } else {
        alloc_release(d->alloc, r->off, disk_padded(r->len));
        free(r);
    }
    aio_unlink(d, rd);
    d->st.writes_inflight--;
    rd->cb(rd->arg, rd->id, rc);
    free(rd->rec);
    free(rd);
}

int disk_write_async(disk_t *d, uint64_t id, const void *buf, uint64_t len, uint64_t checksum,
                     const void *rec, uint32_t rec_len, disk_read_cb cb, void *arg)
{
    if (!d->async) return -EOPNOTSUPP;
    if (id == 0 || len == 0 || !cb || ((uintptr_t)buf & (DISK_ALIGN - 1))) return -EINVAL;
    if (u64map_get(&d->recs, id)) return -EEXIST;
    if (u64map_get(&d->wpend, id)) return -EBUSY;
    uint64_t plen = disk_padded(len);
    if (plen > d->st.capacity) return -EFBIG;
    uint32_t n = (uint32_t)((plen + ACHUNK - 1) / ACHUNK);
    aread_t *rd = calloc(1, sizeof *rd + (size_t)n * sizeof(achunk_t));
    drec_t *r = calloc(1, sizeof *r);
    uint8_t *rc_copy = rec_len ? malloc(rec_len) : NULL;
    if (!rd || !r || (rec_len && !rc_copy)) {
        free(rd);
        free(r);
        free(rc_copy);
        return -ENOMEM;
    }
    uint64_t off;
    int rc = reserve_extent(d, plen, &off);
    if (rc == 0 && u64map_put(&d->wpend, id, rd)) {
        alloc_release(d->alloc, off, plen);
        rc = -ENOMEM;
    }
    if (rc) {
        free(rd);
        free(r);
        free(rc_copy);
        return rc;
    }
    if (rec_len) memcpy(rc_copy, rec, rec_len);
    r->id = id;
    r->off = off;
    r->len = len;
    r->checksum = checksum;
    rd->r = r;
    rd->write = 1;
    rd->rec = rc_copy;
    rd->rec_len = rec_len;
    rd->id = id;
    rd->dst = (uint8_t *)buf;
    rd->cb = cb;
    rd->arg = arg;
    aio_queue(d, rd, n, plen);
    d->st.writes_inflight++;
    d->st.async_writes++;
    submit_queued(d);
    return 0;
}

/* Take one completion; a finished read runs its callback. */
static void reap_one(disk_t *d, struct io_uring_cqe *cqe)
{
    achunk_t *c = io_uring_cqe_get_data(cqe);
    int res = cqe->res;
    io_uring_cqe_seen(&d->aring, cqe);
    d->a_inflight--;
    aread_t *rd = c->rd;
    if (res == -EINTR || res == -EAGAIN) {
        queue_chunk(d, c);
        return;
    }
    if (res > 0) {
        c->done += (uint32_t)res;
        if (c->done < c->len) {
            queue_chunk(d, c);   /* short read: the rest */
            return;
        }
    } else if (rd->err == 0) {
        rd->err = res == 0 ? -ENODATA : res;
    }
    c->complete = 1;
    if (rd->err == 0 && !rd->write) hash_ready(rd);
    if (--rd->left == 0) {
        if (rd->write) awrite_finish(d, rd);
        else aread_finish(d, rd);
    }
}

int disk_reap(disk_t *d)
{
    if (!d->async) return 0;
    uint64_t v;
    ssize_t rn = read(d->efd, &v, sizeof v);   /* clear the signal */
    (void)rn;
    int n = 0;
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&d->aring, &cqe) == 0) {
        reap_one(d, cqe);
        n++;
    }
    submit_queued(d);
    return n;
}

void disk_drain(disk_t *d)
{
    if (!d->async) return;
    while (d->reads) {
        submit_queued(d);
        struct io_uring_cqe *cqe;
        int rc = io_uring_wait_cqe(&d->aring, &cqe);
        if (rc == -EINTR) continue;
        if (rc < 0) break;   /* cannot happen with reads in flight; do not spin */
        reap_one(d, cqe);
    }
}
