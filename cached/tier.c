/* tier.c - the disk tier under the host tier: demotion, promotion, durable
 * puts, checkpoints and the rebuild of entries at start.
 *
 * An entry record (entry_t) lives once, whichever tier holds its bytes: the
 * store's user pointer while the bytes are in the host tier (maybe with a
 * disk copy too), d->tier->disk_entries while they are only on disk. The index
 * keeps the id across moves. storage/disk.c knows only ids and opaque
 * records; the record format (namespace, embedding, layout, metadata) is
 * this file's.
 *
 * Promotion is asynchronous: tier_fetch reserves the host bytes (a PENDING
 * store entry), starts the disk read and parks the asking client; the
 * completion (disk eventfd -> on_disk_event -> promo_done) commits the entry
 * and resumes every client that waited for it, which then replays its
 * request. Other clients' requests keep flowing meanwhile.
 *
 * Writes: with async durability, a write-behind (disk_flush_ms) writes host
 * entries to disk in the background, oldest first, with asynchronous
 * io_uring writes (at most FLUSH_INFLIGHT bytes in flight), so that an
 * eviction usually finds its entry on disk already and only records the
 * move. An entry evicted before its write-behind still writes synchronously
 * inside the store's eviction (the bytes are reused right after); that also
 * cancels the background write, as every release of host bytes does
 * (hosttier.c on_drop).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "catalog.h"
#include "clock.h"
#include "daemon.h"
#include "disk.h"
#include "gputier.h"
#include "log.h"
#include "proto.h"
#include "tier.h"

#define REC_VERSION 1u
#define FLUSH_INFLIGHT (64u << 20)   /* write-behind bytes in flight at most */

/* A promotion in flight: the entry is PENDING in the host store, out of
 * disk_entries, still indexed; its bytes are being read. Requests that need
 * it wait (tier_fetch returned -EINPROGRESS) and are woken when it completes. */
typedef struct promo {
    daemon_t *d;
    uint64_t id;
    entry_t *e;
    void **waiters;
    uint32_t nwait, capwait;
} promo_t;

/* The disk tier's state (d->tier; disk NULL when disk_capacity is 0). */
struct tier {
    struct disk *disk;
    tier_wake_fn tier_wake;
    u64map_t disk_entries;        /* id -> entry_t of entries only on disk */
    u64map_t promos;              /* id -> promo_t: promotions in flight */
    /* While a read whose blob failed its checksum wakes its waiters: that id
     * and its namespace (0, NULL otherwise). A waiter's replayed get of it
     * answers SIMCACHE_ECORRUPT (tier_fetch). */
    uint64_t corrupt_id;
    ns_t *corrupt_ns;
    struct event *disk_ev;        /* the disk's completion eventfd */
    uint64_t demotions, promotions, disk_write_failures;
    uint64_t promotions_async, promotion_waits;
    /* write-behind: host entries not yet on disk, oldest first */
    struct event *flush_ev;
    uint64_t *dirty;
    size_t dirty_head, dirty_n, dirty_cap;
    uint64_t flush_inflight;      /* bytes of asynchronous writes in flight */
    uint64_t flushes, flush_failures;
};

static int is_sync(const daemon_t *d)
{
    return strcmp(d->cfg.durability, "sync") == 0;
}

/* ---- the record: what re-creates an entry after a restart ---- */

/* Written and read with the wire codec's little-endian helpers; the layout,
 * creation time and embedding are copied as the host lays them out (the
 * data directory is not moved between architectures). */
static void wr_blob(proto_wr_t *w, const void *b, uint32_t n)
{
    proto_wr_u32(w, n);
    proto_wr_bytes(w, b, n);
}

/* The record of e (malloc'd, *len bytes), or NULL without memory. */
static uint8_t *rec_build(const entry_t *e, const float *unit, uint32_t *len)
{
    const ns_t *ns = e->ns;
    proto_wr_t w;
    proto_wr_init(&w);
    proto_wr_u32(&w, REC_VERSION);
    wr_blob(&w, ns->model, (uint32_t)strlen(ns->model));
    wr_blob(&w, ns->layout_fp, (uint32_t)strlen(ns->layout_fp));
    wr_blob(&w, ns->tenant, (uint32_t)strlen(ns->tenant));
    proto_wr_u32(&w, ns->dim);
    proto_wr_bytes(&w, &e->layout, sizeof e->layout);
    proto_wr_bytes(&w, &e->created_us, 8);
    wr_blob(&w, e->meta, e->meta_len);
    proto_wr_bytes(&w, unit, (size_t)ns->dim * sizeof(float));
    if (w.err) {
        proto_wr_free(&w);
        return NULL;
    }
    *len = (uint32_t)w.len;
    return w.buf;
}

/* ---- disk drops ---- */

static void on_disk_drop(void *ctx, uint64_t id, disk_drop_reason_t why)
{
    daemon_t *d = ctx;
    if (why == DISK_DROP_CORRUPT) log_warn("disk tier: entry %" PRIu64 " failed its checksum; dropped", id);
    else log_debug("disk tier: evicted entry %" PRIu64, id);
    /* Entries also in the host tier (or being promoted) only lose their copy. */
    entry_t *e = u64map_del(&d->tier->disk_entries, id);
    if (e) catalog_entry_free(d, e);
}

/* ---- start ---- */

typedef struct {
    daemon_t *d;
    uint64_t *bad;
    size_t nbad, cap;
    uint64_t loaded, seen, total, skipped;
    uint64_t last_log_us;
} load_t;

/* A long restore says how far it got, about once every 2 s. */
static void load_progress(load_t *l)
{
    if (++l->seen % 1024) return;
    uint64_t now = mono_us();
    if (now - l->last_log_us < 2000000) return;
    l->last_log_us = now;
    log_info("disk tier: restoring: %" PRIu64 " of %" PRIu64 " entries (%" PRIu64 "%%)", l->seen,
             l->total, l->total ? l->seen * 100 / l->total : 100);
}

static void load_bad(load_t *l, uint64_t id)
{
    if (l->nbad == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        uint64_t *b = realloc(l->bad, cap * sizeof *b);
        if (!b) return;
        l->bad = b;
        l->cap = cap;
    }
    l->bad[l->nbad++] = id;
}

static int load_one(void *arg, uint64_t id, uint64_t len, uint64_t checksum, uint64_t created_us,
                    const void *rec, uint32_t rec_len)
{
    load_t *l = arg;
    daemon_t *d = l->d;
    load_progress(l);
    proto_rd_t r;
    proto_rd_init(&r, rec, rec_len);
    (void)created_us;
    uint32_t ver = proto_rd_u32(&r);
    uint32_t ml = proto_rd_u32(&r);
    const char *model = proto_rd_bytes(&r, ml);
    uint32_t ll = proto_rd_u32(&r);
    const char *lfp = proto_rd_bytes(&r, ll);
    uint32_t tl = proto_rd_u32(&r);
    const char *tenant = proto_rd_bytes(&r, tl);
    uint32_t dim = proto_rd_u32(&r);
    const void *layout = proto_rd_bytes(&r, sizeof(simcache_layout_t));
    const void *created = proto_rd_bytes(&r, 8);
    uint32_t meta_len = proto_rd_u32(&r);
    const void *meta = proto_rd_bytes(&r, meta_len);
    const float *unit = proto_rd_bytes(&r, (size_t)dim * sizeof(float));
    if (proto_rd_done(&r) || ver != REC_VERSION || dim == 0 || dim > SIMCACHE_MAX_DIM ||
        meta_len > SIMCACHE_MAX_META) {
        log_warn("disk tier: entry %" PRIu64 " has an unreadable record; dropped", id);
        load_bad(l, id);
        return 0;
    }
    int code = 0;
    ns_t *ns = catalog_ns_get(d, model, ml, lfp, ll, tenant, tl, dim, CATALOG_NS_RESTORE, &code);
    entry_t *e = ns ? calloc(1, sizeof *e) : NULL;
    uint8_t *mc = meta_len ? malloc(meta_len) : NULL;
    /* The record's floats may be unaligned inside LMDB's page. */
    float *u = malloc((size_t)dim * sizeof(float));
    if (!e || (meta_len && !mc) || !u) {
        /* Acknowledged data is not deleted for want of memory: the record
         * stays on disk (unfindable) for the next start. */
        log_warn("disk tier: entry %" PRIu64 " cannot be restored (out of memory); left on disk",
                 id);
        free(e);
        free(mc);
        free(u);
        l->skipped++;
        return 0;
    }
    memcpy(u, unit, (size_t)dim * sizeof(float));
    e->id = id;
    e->ns = ns;
    memcpy(&e->layout, layout, sizeof e->layout);
    memcpy(&e->created_us, created, 8);
    e->size = len;
    e->checksum = checksum;
    e->meta_len = meta_len;
    e->meta = mc;
    if (meta_len) memcpy(mc, meta, meta_len);
    int rc = catalog_entry_index(d, e, u);
    free(u);
    if (rc || u64map_put(&d->tier->disk_entries, id, e)) {
        log_warn("disk tier: entry %" PRIu64 " cannot be restored (out of memory); left on disk",
                 id);
        catalog_entry_free(d, e);
        l->skipped++;
        return 0;
    }
    if (id > d->next_entry_id) d->next_entry_id = id;
    l->loaded++;
    return 0;
}

static void on_disk_event(evutil_socket_t fd, short what, void *arg)
{
    daemon_t *d = arg;
    (void)fd;
    (void)what;
    disk_reap(d->tier->disk);
}

/* ---- write-behind ---- */

typedef struct {
    daemon_t *d;
    uint64_t size;
} flush_t;

void tier_note_dirty(daemon_t *d, uint64_t id)
{
    if (!d->tier || !d->tier->flush_ev) return;
    if (d->tier->dirty_n == d->tier->dirty_cap) {
        if (d->tier->dirty_head) {
            memmove(d->tier->dirty, d->tier->dirty + d->tier->dirty_head,
                    (d->tier->dirty_n - d->tier->dirty_head) * sizeof *d->tier->dirty);
            d->tier->dirty_n -= d->tier->dirty_head;
            d->tier->dirty_head = 0;
        }
        if (d->tier->dirty_n == d->tier->dirty_cap) {
            size_t cap = d->tier->dirty_cap ? d->tier->dirty_cap * 2 : 1024;
            uint64_t *q = realloc(d->tier->dirty, cap * sizeof *q);
            if (!q) return;   /* it will be written on demotion instead */
            d->tier->dirty = q;
            d->tier->dirty_cap = cap;
        }
    }
    d->tier->dirty[d->tier->dirty_n++] = id;
}

static void flush_done(void *arg, uint64_t id, int rc)
{
    flush_t *f = arg;
    daemon_t *d = f->d;
    d->tier->flush_inflight -= f->size;
    if (rc == 0) d->tier->flushes++;
    else if (rc != -ECANCELED) {
        d->tier->flush_failures++;
        log_debug("disk tier: write-behind of entry %" PRIu64 " failed: %s", id, strerror(-rc));
    }
    free(f);
}

/* Start background writes of the oldest host entries not on disk. */
static void on_flush_tick(evutil_socket_t fd, short what, void *arg)
{
    daemon_t *d = arg;
    (void)fd;
    (void)what;
    while (d->tier->flush_inflight < FLUSH_INFLIGHT && d->tier->dirty_head < d->tier->dirty_n) {
        uint64_t id = d->tier->dirty[d->tier->dirty_head++];
        entry_t *e = store_is_live(d->store, id) ? store_user(d->store, id) : NULL;
        if (!e || !e->indexed || e->on_gpu || disk_has(d->tier->disk, id)) continue;
        const float *v = index_vector(e->ns->index, id);
        uint32_t rl;
        uint8_t *rec = v ? rec_build(e, v, &rl) : NULL;
        flush_t *f = rec ? malloc(sizeof *f) : NULL;
        int rc = f ? disk_write_async(d->tier->disk, id, store_base(d->store) + e->host_off, e->size,
                                      e->checksum, rec, rl, flush_done, f)
                   : -ENOMEM;
        free(rec);
        if (rc) {
            free(f);
            if (rc != -EEXIST && rc != -EBUSY) d->tier->flush_failures++;
            continue;
        }
        f->d = d;
        f->size = e->size;
        d->tier->flush_inflight += e->size;
    }
    if (d->tier->dirty_head == d->tier->dirty_n) d->tier->dirty_head = d->tier->dirty_n = 0;
}

int tier_open(daemon_t *d, tier_wake_fn wake)
{
    d->tier = calloc(1, sizeof *d->tier);
    if (!d->tier) {
        log_error("disk tier: out of memory");
        return -1;
    }
    d->tier->tier_wake = wake;
    if (d->cfg.disk_capacity == 0) return 0;
    if (strcmp(d->cfg.durability, "async") && strcmp(d->cfg.durability, "sync")) {
        log_error("durability '%s': not async or sync", d->cfg.durability);
        return -1;
    }
    if (d->cfg.disk_lmdb_max_size && d->cfg.disk_lmdb_max_size < (1u << 20)) {
        log_error("disk_lmdb_max_size %" PRIu64 ": below 1 MiB (0 means 64 GiB)",
                  d->cfg.disk_lmdb_max_size);
        return -1;
    }
    char err[300];
    disk_config_t dc = {
        .dir = d->cfg.data_dir, .capacity = d->cfg.disk_capacity, .sync = is_sync(d),
        .max_map_size = d->cfg.disk_lmdb_max_size, .on_drop = on_disk_drop, .ctx = d,
    };
    d->tier->disk = disk_open(&dc, err, sizeof err);
    if (!d->tier->disk) {
        log_error("disk tier in %s: %s", d->cfg.data_dir, err);
        return -1;
    }
    disk_stats_t st;
    disk_get_stats(d->tier->disk, &st);
    if (!st.direct)
        log_warn("disk tier: %s/blobs.dat does not take O_DIRECT; using buffered I/O",
                 d->cfg.data_dir);
    if (!st.uring) log_warn("disk tier: io_uring unavailable; using pread/pwrite");
    /* The index seed lives in LMDB too: the records' buckets depend on it. */
    uint64_t seed;
    if (disk_meta_get(d->tier->disk, "seed", &seed, sizeof seed) == (int)sizeof seed) {
        if (seed != d->seed) log_warn("disk tier: index seed differs from index.seed; using LMDB's");
        d->seed = seed;
    } else if (disk_meta_put(d->tier->disk, "seed", &d->seed, sizeof d->seed)) {
        log_error("disk tier: cannot record the index seed: %s", disk_errstr(d->tier->disk));
        return -1;
    }
    if (disk_event_fd(d->tier->disk) >= 0) {
        d->tier->disk_ev = event_new(d->base, disk_event_fd(d->tier->disk), EV_READ | EV_PERSIST,
                               on_disk_event, d);
        if (!d->tier->disk_ev || event_add(d->tier->disk_ev, NULL)) {
            log_error("disk tier: cannot watch the completion eventfd");
            return -1;
        }
    } else {
        log_warn("disk tier: no asynchronous I/O; promotions and writes block the event loop");
    }
    if (d->tier->disk_ev && is_sync(d) == 0 && d->cfg.disk_flush_ms) {
        struct timeval tv = { d->cfg.disk_flush_ms / 1000, (d->cfg.disk_flush_ms % 1000) * 1000 };
        d->tier->flush_ev = event_new(d->base, -1, EV_PERSIST, on_flush_tick, d);
        if (!d->tier->flush_ev || event_add(d->tier->flush_ev, &tv)) {
            log_error("disk tier: cannot start the write-behind timer");
            return -1;
        }
    }
    load_t l = { .d = d, .total = st.entries, .last_log_us = mono_us() };
    if (l.total)
        log_info("disk tier: restoring %" PRIu64 " entries from %s", l.total, d->cfg.data_dir);
    disk_foreach(d->tier->disk, load_one, &l);
    if (l.loaded) catalog_ns_settle(d);
    for (size_t i = 0; i < l.nbad; i++) disk_delete(d->tier->disk, l.bad[i]);
    free(l.bad);
    disk_get_stats(d->tier->disk, &st);
    log_info("disk tier: %" PRIu64 " bytes in %s, durability %s, %" PRIu64
             " entries restored (%" PRIu64 " bytes), %" PRIu64 " dropped at open%s",
             st.capacity, d->cfg.data_dir, d->cfg.durability, l.loaded, st.bytes_used,
             st.checksum_failures + l.nbad, st.direct ? "" : ", buffered I/O");
    if (l.skipped)
        log_warn("disk tier: %" PRIu64 " entries left on disk unrestored (out of memory)",
                 l.skipped);
    return 0;
}

void tier_close(daemon_t *d)
{
    if (!d->tier) return;
    if (!d->tier->disk) {
        free(d->tier);
        d->tier = NULL;
        return;
    }
    /* Reads in flight land in the host arena: finish them (and the
     * write-behind) first. */
    disk_drain(d->tier->disk);
    if (d->tier->disk_ev) event_free(d->tier->disk_ev);
    d->tier->disk_ev = NULL;
    if (d->tier->flush_ev) event_free(d->tier->flush_ev);
    d->tier->flush_ev = NULL;
    free(d->tier->dirty);
    d->tier->dirty = NULL;
    d->tier->dirty_head = d->tier->dirty_n = d->tier->dirty_cap = 0;
    u64map_clear(&d->tier->promos);
    if (d->store) {
        int64_t n = tier_checkpoint(d);
        if (n > 0) log_info("disk tier: %" PRId64 " host entries written at shutdown", n);
    }
    disk_close(d->tier->disk);
    d->tier->disk = NULL;
    size_t pos = 0;
    uint64_t key;
    void *val;
    while (u64map_next(&d->tier->disk_entries, &pos, &key, &val)) {
        entry_t *e = val;
        free(e->meta);
        free(e);
    }
    u64map_clear(&d->tier->disk_entries);
    free(d->tier);
    d->tier = NULL;
}

/* ---- movement ---- */

static int write_blob(daemon_t *d, entry_t *e)
{
    const float *v = index_vector(e->ns->index, e->id);
    if (!v) return SIMCACHE_ENOTFOUND;
    uint32_t rl;
    uint8_t *rec = rec_build(e, v, &rl);
    if (!rec) return SIMCACHE_ENOMEM;
    /* Host entries are 4096-aligned and their allocation is padded to 4096,
     * so the blob can go to disk straight from the arena. A GPU entry comes
     * through an aligned bounce buffer (which also computes its checksum). */
    const uint8_t *src = store_base(d->store) + e->host_off;
    void *bounce = NULL;
    if (e->on_gpu) {
        size_t n = (e->size + 4095) & ~(size_t)4095;
        if (posix_memalign(&bounce, 4096, n)) bounce = NULL;
        if (bounce) memset((uint8_t *)bounce + e->size, 0, n - e->size);
        if (!bounce || gtier_read(d, e, bounce)) {
            free(bounce);
            free(rec);
            d->tier->disk_write_failures++;
            return bounce ? SIMCACHE_EIO : SIMCACHE_ENOMEM;
        }
        src = bounce;
    }
    int rc = disk_put(d->tier->disk, e->id, src, e->size, e->checksum, rec, rl);
    free(bounce);
    free(rec);
    if (rc) {
        d->tier->disk_write_failures++;
        log_warn("disk tier: cannot write entry %" PRIu64 " (%" PRIu64 " bytes): %s%s%s", e->id,
                 e->size, strerror(-rc), disk_errstr(d->tier->disk)[0] ? ": " : "",
                 disk_errstr(d->tier->disk));
        return rc == -ENOSPC || rc == -EFBIG ? SIMCACHE_ENOSPC
               : rc == -ENOMEM               ? SIMCACHE_ENOMEM
                                             : SIMCACHE_EIO;
    }
    return 0;
}

int tier_demote(daemon_t *d, entry_t *e)
{
    if (!d->tier->disk || !e->indexed) return -1;
    if (!disk_has(d->tier->disk, e->id) && write_blob(d, e)) return -1;
    if (u64map_put(&d->tier->disk_entries, e->id, e)) {
        disk_delete(d->tier->disk, e->id);
        return -1;
    }
    d->tier->demotions++;
    return 0;
}

int tier_persist(daemon_t *d, entry_t *e)
{
    if (!d->tier || !d->tier->disk) return 0;
    if (disk_has(d->tier->disk, e->id)) return 0;
    return write_blob(d, e);
}

entry_t *tier_disk_entry(daemon_t *d, uint64_t id)
{
    return d->tier && d->tier->disk ? u64map_get(&d->tier->disk_entries, id) : NULL;
}

/* Reserve host bytes (a PENDING store entry) for disk-only entry e, out of
 * the disk map. 0, or store_alloc's negative errno (-ENOSPC: the host tier
 * is full of leased entries) with e back in the disk map (or forgotten when
 * its disk copy went meanwhile). */
static int reserve_host(daemon_t *d, entry_t *e)
{
    /* Out of the disk map first: making room may demote others and evict
     * disk blobs, this one's copy included, and that must not free e. */
    u64map_del(&d->tier->disk_entries, e->id);
    int rc = store_alloc(d->store, e->id, e->size, e, &e->host_off);
    if (rc == 0) return 0;
    if (!(disk_has(d->tier->disk, e->id) && u64map_put(&d->tier->disk_entries, e->id, e) == 0))
        catalog_entry_free(d, e);
    return rc;
}

/* tier_promote, telling why it failed: 0 with *out, -ENOENT (not on disk,
 * or no host room), -EBADMSG (checksum failed or blob short: dropped) or
 * another negative errno from disk_get (logged). */
static int promote_sync(daemon_t *d, uint64_t id, entry_t **out)
{
    *out = NULL;
    if (!d->tier || !d->tier->disk) return -ENOENT;
    entry_t *e = u64map_get(&d->tier->disk_entries, id);
    if (!e || !e->indexed) return -ENOENT;
    int room = reserve_host(d, e);
    if (room) return room == -ENOSPC ? -ENOSPC : -ENOENT;
    int rc = disk_get(d->tier->disk, id, store_base(d->store) + e->host_off, NULL);
    if (rc) {
        if (rc != -EBADMSG)
            log_warn("disk tier: cannot read entry %" PRIu64 ": %s", id, disk_errstr(d->tier->disk));
        /* on_drop frees the record and takes it out of the index. */
        store_abort(d->store, id);
        return rc;
    }
    store_commit(d->store, id);
    d->tier->promotions++;
    *out = e;
    return 0;
}

entry_t *tier_promote(daemon_t *d, uint64_t id)
{
    entry_t *e;
    promote_sync(d, id, &e);
    return e;
}

/* ---- asynchronous promotion ---- */

static int promo_add_waiter(promo_t *p, void *waiter)
{
    if (p->nwait == p->capwait) {
        uint32_t cap = p->capwait ? p->capwait * 2 : 4;
        void **w = realloc(p->waiters, cap * sizeof *w);
        if (!w) return -1;
        p->waiters = w;
        p->capwait = cap;
    }
    p->waiters[p->nwait++] = waiter;
    p->d->tier->promotion_waits++;
    return 0;
}

static void promo_done(void *arg, uint64_t id, int rc)
{
    promo_t *p = arg;
    daemon_t *d = p->d;
    entry_t *e = p->e;
    ns_t *ns = e->ns;                     /* e may be freed below */
    u64map_del(&d->tier->promos, id);
    if (rc == 0 && e->indexed) {
        store_commit(d->store, id);
        d->tier->promotions++;
    } else {
        if (rc && rc != -EBADMSG && rc != -ENOENT)
            log_warn("disk tier: cannot read entry %" PRIu64 ": %s", id, disk_errstr(d->tier->disk));
        /* Deleted meanwhile, or unreadable: the store's on_drop frees the
         * record (and takes it out of the index if still there). */
        store_abort(d->store, id);
    }
    /* p is out of the map: resumed clients that start other promotions or
     * leave do not touch its waiters. A waiter replays right inside its
     * wake; one that asked for this id by name (get) must learn that its
     * bytes were corrupt, not that it never existed: tier_fetch answers
     * SIMCACHE_ECORRUPT for it while corrupt_id is set (saved and restored,
     * should a replay complete another read). */
    uint64_t was_id = d->tier->corrupt_id;
    ns_t *was_ns = d->tier->corrupt_ns;
    if (rc == -EBADMSG) {
        d->tier->corrupt_id = id;
        d->tier->corrupt_ns = ns;
    }
    for (uint32_t i = 0; i < p->nwait; i++) d->tier->tier_wake(p->waiters[i]);
    d->tier->corrupt_id = was_id;
    d->tier->corrupt_ns = was_ns;
    free(p->waiters);
    free(p);
}

int tier_fetch(daemon_t *d, uint64_t id, ns_t *ns, void *waiter, int may_wait, entry_t **out)
{
    *out = NULL;
    if (d->gstore && store_is_live(d->gstore, id)) {
        entry_t *e = store_user(d->gstore, id);
        if (e && e->indexed && (!ns || e->ns == ns)) *out = e;
        return 0;
    }
    if (store_is_live(d->store, id)) {
        entry_t *e = store_user(d->store, id);
        if (e && e->indexed && (!ns || e->ns == ns)) *out = e;
        return 0;
    }
    if (!d->tier || !d->tier->disk) return 0;
    if (id && id == d->tier->corrupt_id && (!ns || ns == d->tier->corrupt_ns)) return SIMCACHE_ECORRUPT;
    promo_t *p = u64map_get(&d->tier->promos, id);
    if (p) {
        if (ns && p->e->ns != ns) return 0;
        /* Without a slot to wait in, answer as if it were absent. */
        return promo_add_waiter(p, waiter) ? 0 : -EINPROGRESS;
    }
    entry_t *e = u64map_get(&d->tier->disk_entries, id);
    if (!e || !e->indexed || (ns && e->ns != ns)) return 0;
    if (!may_wait || disk_event_fd(d->tier->disk) < 0) {
        int rc = promote_sync(d, id, out);
        return rc == -EBADMSG ? SIMCACHE_ECORRUPT : rc == -ENOSPC ? SIMCACHE_ENOSPC : 0;
    }
    p = calloc(1, sizeof *p);
    if (!p) return 0;
    p->d = d;
    p->id = id;
    p->e = e;
    int room = reserve_host(d, e);
    if (room) {
        free(p);
        return room == -ENOSPC ? SIMCACHE_ENOSPC : 0;
    }
    int rc = u64map_put(&d->tier->promos, id, p) ? -ENOMEM
             : disk_read_async(d->tier->disk, id, store_base(d->store) + e->host_off, promo_done, p);
    if (rc) {
        /* Not started: undo (on_drop forgets the record, as a failed read would). */
        log_warn("disk tier: cannot start reading entry %" PRIu64 ": %s", id, strerror(-rc));
        u64map_del(&d->tier->promos, id);
        free(p);
        store_abort(d->store, id);
        return 0;
    }
    /* The callback runs from the loop, never before this returns. */
    if (promo_add_waiter(p, waiter)) return 0;
    d->tier->promotions_async++;
    return -EINPROGRESS;
}

void tier_waiter_gone(daemon_t *d, void *waiter)
{
    if (!d->tier) return;
    size_t pos = 0;
    uint64_t key;
    void *val;
    while (u64map_next(&d->tier->promos, &pos, &key, &val)) {
        promo_t *p = val;
        uint32_t j = 0;
        for (uint32_t i = 0; i < p->nwait; i++)
            if (p->waiters[i] != waiter) p->waiters[j++] = p->waiters[i];
        p->nwait = j;
    }
}

void tier_forget(daemon_t *d, uint64_t id)
{
    if (!d->tier || !d->tier->disk) return;
    disk_delete(d->tier->disk, id);
    entry_t *e = u64map_del(&d->tier->disk_entries, id);
    if (e) catalog_entry_free(d, e);
}

void tier_foreach_entry(daemon_t *d, int with_promotions, store_foreach_fn fn, void *arg)
{
    if (!d->tier) return;
    size_t pos = 0;
    uint64_t key;
    void *val;
    while (u64map_next(&d->tier->disk_entries, &pos, &key, &val))
        if (fn(arg, key, val, 0, 0, 0)) return;
    if (!with_promotions) return;
    pos = 0;
    while (u64map_next(&d->tier->promos, &pos, &key, &val))
        if (fn(arg, key, ((promo_t *)val)->e, 0, 0, 0)) return;
}

typedef struct {
    daemon_t *d;
    int64_t written;
} ckpt_t;

static int ckpt_one(void *arg, uint64_t id, void *user, uint64_t off, uint64_t size, uint32_t pins)
{
    ckpt_t *c = arg;
    entry_t *e = user;
    (void)off;
    (void)size;
    (void)pins;
    if (e->indexed && !disk_has(c->d->tier->disk, id) && write_blob(c->d, e) == 0) c->written++;
    return 0;
}

int64_t tier_checkpoint(daemon_t *d)
{
    if (!d->tier || !d->tier->disk) return -1;
    ckpt_t c = { d, 0 };
    /* Writing can evict older disk blobs, but never touches the host store. */
    store_foreach(d->store, ckpt_one, &c);
    if (d->gstore) store_foreach(d->gstore, ckpt_one, &c);
    if (disk_sync(d->tier->disk)) log_warn("disk tier: flush failed: %s", disk_errstr(d->tier->disk));
    return c.written;
}

int tier_on(const daemon_t *d)
{
    return d->tier && d->tier->disk;
}

void tier_cancel_write(daemon_t *d, uint64_t id)
{
    if (tier_on(d)) disk_cancel_write(d->tier->disk, id);
}

int tier_fixed_init(daemon_t *d, void *base, uint64_t size, uint64_t *piece)
{
    return tier_on(d) ? disk_fixed_init(d->tier->disk, base, size, piece) : -EOPNOTSUPP;
}

int tier_fixed_add(daemon_t *d, uint32_t piece)
{
    return tier_on(d) ? disk_fixed_add(d->tier->disk, piece) : -EOPNOTSUPP;
}

int64_t tier_verify(daemon_t *d, uint64_t *checked)
{
    return tier_on(d) ? disk_verify(d->tier->disk, checked) : -ENODEV;
}

int tier_get_stats(daemon_t *d, tier_stats_t *st)
{
    if (!tier_on(d)) return -1;
    const struct tier *t = d->tier;
    memset(st, 0, sizeof *st);
    disk_get_stats(t->disk, &st->disk);
    st->only_entries = u64map_len(&t->disk_entries);
    st->demotions = t->demotions;
    st->promotions = t->promotions;
    st->promotions_async = t->promotions_async;
    st->promotions_in_flight = u64map_len(&t->promos);
    st->promotion_waits = t->promotion_waits;
    st->write_failures = t->disk_write_failures;
    st->flush_ms = t->flush_ev ? d->cfg.disk_flush_ms : 0;
    st->flushes = t->flushes;
    st->flush_failures = t->flush_failures;
    st->flush_queue = (uint64_t)(t->dirty_n - t->dirty_head);
    st->flush_inflight = t->flush_inflight;
    return 0;
}
