/* daemon.c - what the client and admin protocols share: namespaces, entries,
 * leases, the host tier, signals, draining and reloads.
 *
 * The store owns bytes; this file owns their meaning. The store's on_drop
 * callback is the one place an entry's record dies, whatever removed it
 * (eviction, delete after the last lease, flush), so the index and the
 * namespace counts never disagree with the bytes.
 */
#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "daemon.h"
#include "disk.h"
#include "gpu.h"
#include "gpuscore.h"
#include "log.h"
#include "peers.h"
#include "vec.h"

void client_lease_link(client_t *c, lease_t *l);
void client_lease_unlink(client_t *c, lease_t *l);
uint32_t client_lease_limit(const client_t *c);

int daemon_run(daemon_t *d)
{
    for (;;) {
        /* Within poll_us of the last request: look without sleeping, so
         * that the next one (a client's lookup after its put, the next
         * lookup of a batch loop) does not pay for waking an idle CPU. */
        uint32_t poll = d->cfg.poll_us;
        int busy = poll && now_us() - d->last_request_us < poll;
        int rc = event_base_loop(d->base, busy ? EVLOOP_NONBLOCK : EVLOOP_ONCE);
        if (rc < 0)
            return -1;
        if (rc == 1 || event_base_got_exit(d->base) || event_base_got_break(d->base))
            return 0;
    }
}

uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- entries ---- */

void daemon_entry_free(daemon_t *d, entry_t *e)
{
    /* A deleted entry left its index and counts at delete time; an aborted
     * put never entered them. */
    if (e->indexed) {
        peers_entry_removed(d, e->ns, e->id);
        index_remove(e->ns->index, e->id);
        gpuscore_remove(d, e->ns, e->id);
        e->indexed = 0;
        e->ns->entries--;
        e->ns->bytes -= e->size;
    }
    free(e->meta);
    free(e);
}

static void on_drop(void *ctx, uint64_t id, void *user, store_drop_reason_t why)
{
    daemon_t *d = ctx;
    entry_t *e = user;
    /* These bytes are about to be reused: a write-behind of them must not
     * record what lands there next. */
    if (d->disk) disk_cancel_write(d->disk, id);
    if (!e) return;
    /* With a disk tier, an evicted entry moves there and stays findable. */
    if (why == STORE_DROP_EVICTED && e->indexed && tier_demote(d, e)) return;
    if (why == STORE_DROP_EVICTED) log_debug("evicted entry %" PRIu64, e->id);
    daemon_entry_free(d, e);
}

entry_t *daemon_mem_entry(daemon_t *d, uint64_t id)
{
    entry_t *e = d->gstore ? store_user(d->gstore, id) : NULL;
    return e ? e : store_user(d->store, id);
}

int daemon_entry_delete(daemon_t *d, uint64_t id)
{
    entry_t *e = daemon_mem_entry(d, id);
    if (!e && (e = tier_disk_entry(d, id)) && e->indexed) {
        tier_forget(d, id);
        d->stats.deletes++;
        return 0;
    }
    if (!e || !e->indexed) return SIMCACHE_ENOTFOUND;
    tier_forget(d, id);   /* its disk copy, if any */
    /* Unfindable at once; the bytes stay while leases hold them. */
    peers_entry_removed(d, e->ns, e->id);
    index_remove(e->ns->index, e->id);
    gpuscore_remove(d, e->ns, e->id);
    e->indexed = 0;
    e->ns->entries--;
    e->ns->bytes -= e->size;
    store_delete(e->on_gpu ? d->gstore : d->store, id);
    d->stats.deletes++;
    return 0;
}

typedef struct {
    ns_t *ns;
    uint64_t *ids;
    size_t n, cap;
} collect_t;

static int collect(void *arg, uint64_t id, void *user, uint64_t off, uint64_t size, uint32_t pins)
{
    collect_t *c = arg;
    entry_t *e = user;
    (void)off;
    (void)size;
    (void)pins;
    if (c->ns && e->ns != c->ns) return 0;
    if (!e->indexed) return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        uint64_t *ids = realloc(c->ids, cap * sizeof *ids);
        if (!ids) return 1;
        c->ids = ids;
        c->cap = cap;
    }
    c->ids[c->n++] = id;
    return 0;
}

uint64_t daemon_flush(daemon_t *d, ns_t *ns)
{
    collect_t c = { .ns = ns };
    store_foreach(d->store, collect, &c);
    if (d->gstore) store_foreach(d->gstore, collect, &c);
    size_t pos = 0;
    uint64_t key;
    void *val;
    while (u64map_next(&d->disk_entries, &pos, &key, &val))
        collect(&c, key, val, 0, 0, 0);
    pos = 0;
    while (u64map_next(&d->promos, &pos, &key, &val))
        collect(&c, key, ((promo_t *)val)->e, 0, 0, 0);
    uint64_t n = 0;
    for (size_t i = 0; i < c.n; i++)
        if (daemon_entry_delete(d, c.ids[i]) == 0) n++;
    free(c.ids);
    return n;
}

/* ---- leases ---- */

int daemon_lease_new(daemon_t *d, client_t *owner, uint64_t entry_id, lease_t **out)
{
    if (client_lease_count(owner) >= client_lease_limit(owner)) return SIMCACHE_ELIMIT;
    lease_t *l = calloc(1, sizeof *l);
    if (!l) return SIMCACHE_ENOMEM;
    l->gpu = d->gstore && store_is_live(d->gstore, entry_id);
    store_t *st = l->gpu ? d->gstore : d->store;
    if (store_pin(st, entry_id, &l->off, &l->size)) {
        free(l);
        return SIMCACHE_ENOTFOUND;
    }
    l->id = ++d->next_lease_id;
    l->entry_id = entry_id;
    l->owner = owner;
    if (u64map_put(&d->leases, l->id, l)) {
        store_unpin(st, entry_id);
        free(l);
        return SIMCACHE_ENOMEM;
    }
    client_lease_link(owner, l);
    *out = l;
    return 0;
}

void daemon_lease_end(daemon_t *d, lease_t *l)
{
    u64map_del(&d->leases, l->id);
    client_lease_unlink(l->owner, l);
    store_unpin(l->gpu ? d->gstore : d->store, l->entry_id);
    free(l);
}

/* ---- namespaces ---- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t hash_bytes(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) h = mix64(h ^ (unsigned char)s[i]);
    return mix64(h ^ n);
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static void ns_free(ns_t *ns)
{
    index_free(ns->index);
    gpuscore_ns_free(ns);
    peers_ns_free(ns->cluster);
    free(ns->model);
    free(ns->layout_fp);
    free(ns->tenant);
    free(ns->name);
    free(ns);
}

ns_t *daemon_ns_get(daemon_t *d, const char *model, size_t model_len, const char *layout_fp,
                    size_t layout_fp_len, const char *tenant, size_t tenant_len, uint32_t dim,
                    int *code)
{
    for (ns_t *ns = d->namespaces; ns; ns = ns->next) {
        if (ns->dim == dim && strlen(ns->model) == model_len &&
            memcmp(ns->model, model, model_len) == 0 && strlen(ns->layout_fp) == layout_fp_len &&
            memcmp(ns->layout_fp, layout_fp, layout_fp_len) == 0 &&
            strlen(ns->tenant) == tenant_len && memcmp(ns->tenant, tenant, tenant_len) == 0)
            return ns;
    }
    if (d->n_namespaces >= d->cfg.max_namespaces) {
        *code = SIMCACHE_ELIMIT;
        return NULL;
    }
    ns_t *ns = calloc(1, sizeof *ns);
    *code = SIMCACHE_ENOMEM;
    if (!ns) return NULL;
    ns->dim = dim;
    ns->model = dup_n(model, model_len);
    ns->layout_fp = dup_n(layout_fp, layout_fp_len);
    ns->tenant = dup_n(tenant ? tenant : "", tenant_len);
    size_t nl = model_len + layout_fp_len + tenant_len + 32;
    ns->name = malloc(nl);
    /* Each namespace hashes with its own hyperplanes, derived from the
     * secret daemon seed, so tenants cannot learn each other's buckets. */
    uint64_t seed = hash_bytes(d->seed, model, model_len);
    seed = hash_bytes(seed, layout_fp, layout_fp_len);
    seed = hash_bytes(seed, tenant ? tenant : "", tenant_len);
    seed = mix64(seed ^ dim);
    index_params_t p = { d->cfg.index_tables, d->cfg.index_bits, d->cfg.index_probes,
                         d->cfg.index_exact_below };
    ns->index = index_new(dim, seed, &p);
    if (!ns->model || !ns->layout_fp || !ns->tenant || !ns->name || !ns->index) {
        ns_free(ns);
        return NULL;
    }
    /* Names are printable UTF-8 (checked by the codec) but may hold spaces;
     * the display name joins the parts with '|'. */
    if (tenant_len)
        snprintf(ns->name, nl, "%s|%s|%u|%s", ns->model, ns->layout_fp, dim, ns->tenant);
    else
        snprintf(ns->name, nl, "%s|%s|%u", ns->model, ns->layout_fp, dim);
    ns->id = ++d->next_ns_id;
    ns->next = d->namespaces;
    d->namespaces = ns;
    d->n_namespaces++;
    log_info("namespace %u created: %s", ns->id, ns->name);
    return ns;
}

ns_t *daemon_ns_find(daemon_t *d, const char *name)
{
    char *end;
    unsigned long id = strtoul(name, &end, 10);
    for (ns_t *ns = d->namespaces; ns; ns = ns->next) {
        if (strcmp(ns->name, name) == 0) return ns;
        if (*name && !*end && ns->id == id) return ns;
    }
    return NULL;
}

/* ---- seed ---- */

static int mkdir_p(const char *path, mode_t mode)
{
    char buf[256];
    size_t n = strlen(path);
    if (n >= sizeof buf) return -1;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, mode) && errno != EEXIST) return -1;
            buf[i] = c;
        }
    }
    return 0;
}

/* Create the socket's directory (0700) if missing, and refuse one that
 * another user owns: under a shared /tmp, someone could have made it first
 * to plant a socket of their own. */
static int socket_dir_ok(const char *sock)
{
    char dir[CONFIG_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", sock);
    char *slash = strrchr(dir, '/');
    if (!slash) return 0;            /* relative name in the working directory */
    if (slash == dir) return 0;      /* in / */
    *slash = 0;
    if (mkdir_p(dir, 0700)) {
        log_error("socket directory %s: %s", dir, strerror(errno));
        return -1;
    }
    struct stat st;
    if (stat(dir, &st)) {
        log_error("socket directory %s: %s", dir, strerror(errno));
        return -1;
    }
    if (st.st_uid != geteuid() && st.st_uid != 0) {
        log_error("socket directory %s belongs to uid %u, not to us (uid %u): refusing it", dir,
                  (unsigned)st.st_uid, (unsigned)geteuid());
        return -1;
    }
    return 0;
}

/* The hyperplane seed is secret and kept with the data, so the same data
 * directory gives the same buckets after a restart. */
static int load_seed(daemon_t *d)
{
    char path[300];
    if (mkdir_p(d->cfg.data_dir, 0700)) {
        log_error("data_dir %s: %s", d->cfg.data_dir, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/index.seed", d->cfg.data_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, &d->seed, sizeof d->seed);
        close(fd);
        if (n == (ssize_t)sizeof d->seed) return 0;
        log_warn("%s: short, making a new seed", path);
    }
    if (getrandom(&d->seed, sizeof d->seed, 0) != (ssize_t)sizeof d->seed) {
        log_error("getrandom: %s", strerror(errno));
        return -1;
    }
    char tmp[310];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, &d->seed, sizeof d->seed) != (ssize_t)sizeof d->seed ||
        fsync(fd) || rename(tmp, path)) {
        log_error("%s: cannot write the index seed: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    log_info("new index seed written to %s", path);
    return 0;
}

/* ---- signals, drain, reload ---- */

static void finish(daemon_t *d)
{
    server_close_all(d);
    event_base_loopexit(d->base, NULL);
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    daemon_t *d = arg;
    (void)fd;
    (void)what;
    uint64_t left = server_pending_output(d);
    if (left == 0 || now_us() >= d->drain_deadline_us) {
        if (left) log_warn("drain timeout: %" PRIu64 " reply bytes not delivered", left);
        log_info("drained; exiting");
        finish(d);
        return;
    }
    struct timeval tv = { 0, 20000 };
    evtimer_add(d->drain_timer, &tv);
}

void daemon_begin_drain(daemon_t *d, const char *why)
{
    if (d->draining) return;
    d->draining = 1;
    d->drain_deadline_us = now_us() + (uint64_t)d->cfg.drain_timeout_ms * 1000u;
    log_info("%s: draining (no new connections, replies flushed, then exit)", why);
    server_close_listener(d);
    admin_close_listener(d);
    struct timeval tv = { 0, 0 };
    evtimer_add(d->drain_timer, &tv);
}

void daemon_apply_config(daemon_t *d)
{
    log_set_level((log_level_t)d->cfg.log_level);
    int rc = store_set_capacity(d->store, d->cfg.host_capacity);
    if (rc == -EBUSY) log_warn("host_capacity lowered; leased bytes still above it");
    store_set_max_entries(d->store, d->cfg.max_entries);
    peers_apply_config(d);
}

void daemon_reload(daemon_t *d)
{
    if (!d->config_path[0]) {
        log_info("SIGHUP: no config file to reload");
        return;
    }
    config_t fresh = d->cfg;
    char err[512];
    if (config_load_file(&fresh, d->config_path, err, sizeof err)) {
        log_error("SIGHUP: %s; keeping the running config", err);
        return;
    }
    /* Apply what may change at run time; name what needs a restart. */
    char now[512], want[512];
    config_t next = d->cfg;
    static const char *const runtime_keys[] = {
        "host_capacity", "max_entries", "default_threshold", "max_clients", "max_frame",
        "max_leases_per_client", "max_puts_per_client", "max_namespaces", "log_level",
        "drain_timeout_ms", "allow_uids", "advertise", "heartbeat_ms", "node_ttl_ms",
        "prototype_refresh_puts", "prototype_refresh_ms", "route_load_weight",
        "gpu_score_min_batch", "gpu_score_min_entries", "poll_us",
    };
    for (size_t i = 0; i < sizeof runtime_keys / sizeof runtime_keys[0]; i++) {
        config_get(&fresh, runtime_keys[i], want, sizeof want);
        config_get(&d->cfg, runtime_keys[i], now, sizeof now);
        if (strcmp(now, want) && config_set(&next, runtime_keys[i], want, 1, err, sizeof err) == 0)
            log_info("SIGHUP: %s %s -> %s", runtime_keys[i], now, want);
    }
    static const char *const static_keys[] = {
        "socket", "admin_socket", "data_dir", "socket_mode", "host_arena_size",
        "index_tables", "index_bits", "index_probes", "index_exact_below",
        "redis_url", "node_id", "prototypes_per_ns", "disk_capacity", "durability",
        "host_huge_pages",
    };
    for (size_t i = 0; i < sizeof static_keys / sizeof static_keys[0]; i++) {
        config_get(&fresh, static_keys[i], want, sizeof want);
        config_get(&d->cfg, static_keys[i], now, sizeof now);
        /* host_arena_size 0 means "host_capacity at start": not a change. */
        if (strcmp(static_keys[i], "host_arena_size") == 0 && fresh.host_arena_size == 0) continue;
        if (strcmp(now, want))
            log_warn("SIGHUP: %s changed in the file but needs a restart", static_keys[i]);
    }
    if (next.host_capacity > store_arena_size(d->store)) {
        log_warn("SIGHUP: host_capacity above the arena (%" PRIu64 " bytes); capped",
                 store_arena_size(d->store));
        next.host_capacity = store_arena_size(d->store);
    }
    d->cfg = next;
    daemon_apply_config(d);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    daemon_t *d = arg;
    (void)what;
    if (sig == SIGHUP) daemon_reload(d);
    else daemon_begin_drain(d, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define PREFAULT_STEP (64u << 20)

/* cpu_affinity: before any thread starts, so that every one (prefault,
 * peers, GPU) inherits it. A client and the daemon that migrate across the
 * same cores wait on each other's wake-ups: on the 2-core test VM, the
 * daemon on one core and the client on the other took the 100k x 2048
 * lookup p99 from 133-161 us to 118-119 (docs/benchmarks.md). */
static int apply_cpu_affinity(daemon_t *d)
{
    if (!d->cfg.cpu_affinity[0]) return 0;
    uint64_t mask[CONFIG_MAX_CPUS / 64];
    if (config_parse_cpus(d->cfg.cpu_affinity, mask)) {
        log_error("cpu_affinity '%s': not a CPU list", d->cfg.cpu_affinity);
        return -1;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    for (uint32_t k = 0; k < CONFIG_MAX_CPUS && k < CPU_SETSIZE; k++)
        if (mask[k / 64] & (1ull << (k % 64))) CPU_SET(k, &set);
    if (sched_setaffinity(0, sizeof set, &set)) {
        log_error("cpu_affinity '%s': %s (none of these CPUs is online and allowed to "
                  "this process?)", d->cfg.cpu_affinity, strerror(errno));
        return -1;
    }
    log_info("running on CPUs %s", d->cfg.cpu_affinity);
    return 0;
}

/* host_prefault, and disk_register_arena with a disk tier: a thread walks
 * the arena once, off the event loop. Each step is faulted in, so puts and
 * promotions never pay a first-touch fault (about 15 us per 4 KiB on a PVM
 * guest; docs/benchmarks.md); MADV_POPULATE_WRITE (Linux 5.14) populates
 * without writing, so it is safe beside the loop's writes. For the disk tier
 * the step is then registered with its io_uring (disk_fixed_add), so that
 * promotions into it and demotions from it skip pinning the pages on every
 * request. */
static void *prefault_main(void *arg)
{
    daemon_t *d = arg;
    uint8_t *base = store_base(d->store);
    uint64_t size = store_arena_size(d->store), t0 = now_us(), step = d->prefault_step;
    int reg = d->fixed_pieces > 0;
    uint32_t piece = 0;
    for (uint64_t off = 0; off < size && !__atomic_load_n(&d->prefault_stop, __ATOMIC_RELAXED);
         off += step, piece++) {
        uint64_t n = size - off < step ? size - off : step;
        if (madvise(base + off, n, MADV_POPULATE_WRITE)) {
            log_warn("host_prefault: madvise(MADV_POPULATE_WRITE): %s; stopped at %" PRIu64
                     " of %" PRIu64 " bytes", strerror(errno), off, size);
            return NULL;
        }
        __atomic_store_n(&d->prefault_bytes, off + n, __ATOMIC_RELAXED);
        int rc = reg ? disk_fixed_add(d->disk, piece) : 0;
        if (rc) {
            log_warn("disk_register_arena: cannot register arena bytes %" PRIu64 "..%" PRIu64
                     " with io_uring: %s%s; reads into the rest pin their pages per request",
                     off, size, strerror(-rc),
                     rc == -ENOMEM ? " (over RLIMIT_MEMLOCK: raise it, e.g. systemd's "
                                     "LimitMEMLOCK=infinity, or grant CAP_IPC_LOCK)" : "");
            reg = 0;
            /* Only registration asked for the pages: leave the rest lazy. */
            if (!d->cfg.host_prefault) break;
        }
    }
    if (__atomic_load_n(&d->prefault_bytes, __ATOMIC_RELAXED) == size)
        log_info("host arena: %" PRIu64 " bytes in memory%s after %.1f s", size,
                 reg ? " and registered with io_uring" : "", (double)(now_us() - t0) / 1e6);
    return NULL;
}

/* After tier_open: the disk tier decides whether there is anything to
 * register. */
static void prefault_start(daemon_t *d)
{
    d->prefault_step = PREFAULT_STEP;
    if (d->disk && d->cfg.disk_register_arena) {
        uint64_t piece;
        int n = disk_fixed_init(d->disk, store_base(d->store), store_arena_size(d->store), &piece);
        if (n > 0) {
            d->fixed_pieces = n;
            d->prefault_step = piece;
        } else if (n != -EOPNOTSUPP) {
            log_warn("disk_register_arena: io_uring cannot register buffers (%s); promotions "
                     "pin their pages per request", strerror(-n));
        }
    }
    if (!d->cfg.host_prefault && !d->fixed_pieces) return;
    if (pthread_create(&d->prefault_th, NULL, prefault_main, d)) {
        log_warn("host_prefault: cannot start its thread: %s", strerror(errno));
        return;
    }
    d->prefault_running = 1;
}

static void prefault_stop(daemon_t *d)
{
    if (!d->prefault_running) return;
    __atomic_store_n(&d->prefault_stop, 1, __ATOMIC_RELAXED);
    pthread_join(d->prefault_th, NULL);
    d->prefault_running = 0;
}

const char *daemon_arena_pages(const daemon_t *d)
{
    switch (store_arena_pages(d->store)) {
    case ARENA_PAGES_HUGETLB: return "hugetlb";
    case ARENA_PAGES_THP: return "thp";
    default: return "4k";
    }
}

/* Bytes of the arena backed by 2 MiB pages now: all of it with hugetlb;
 * with THP, what /proc/self/smaps says is mapped by huge pages (the kernel
 * may give some, all or none of the advised range). */
uint64_t daemon_huge_bytes(const daemon_t *d)
{
    arena_pages_t p = store_arena_pages(d->store);
    if (p == ARENA_PAGES_HUGETLB) return store_arena_size(d->store);
    if (p != ARENA_PAGES_THP) return 0;
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return 0;
    char line[512], head[40];
    snprintf(head, sizeof head, "%lx-", (unsigned long)(uintptr_t)store_base(d->store));
    uint64_t kib = 0;
    int in = 0;
    while (fgets(line, sizeof line, f)) {
        if (strchr(line, '-') && isxdigit((unsigned char)line[0]) && strchr(line, ' ') >
            strchr(line, '-')) {
            if (in) break;
            in = strncmp(line, head, strlen(head)) == 0;
        } else if (in && sscanf(line, "ShmemPmdMapped: %" SCNu64, &kib) == 1) {
            break;
        }
    }
    fclose(f);
    return kib * 1024;
}

/* Say what backs the arena, and how to get huge pages where it has none. */
static void log_huge_pages(const daemon_t *d, arena_huge_t asked)
{
    uint64_t pages = store_arena_size(d->store) / ARENA_HUGE_PAGE;
    switch (store_arena_pages(d->store)) {
    case ARENA_PAGES_HUGETLB:
        log_info("host arena: %" PRIu64 " hugetlb pages of 2 MiB", pages);
        break;
    case ARENA_PAGES_THP:
        log_info("host arena: 4 KiB pages advised for transparent huge pages (the kernel's "
                 "shmem_enabled honours it)");
        break;
    default:
        if (asked == ARENA_HUGE_TRY)
            log_info("host arena: 4 KiB pages (the hugetlb pool has no room for it: %" PRIu64
                     " more 2 MiB pages in vm.nr_hugepages put it on huge pages, and disk-tier "
                     "promotions about a fifth faster; docs/operations.md)", pages);
        break;
    }
}

int daemon_init(daemon_t *d)
{
    d->started_us = now_us();
    log_set_level((log_level_t)d->cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
    if (apply_cpu_affinity(d)) return -1;
    d->base = event_base_new();
    if (!d->base) {
        log_error("event_base_new failed");
        return -1;
    }
    if (load_seed(d) || socket_dir_ok(d->cfg.socket) || socket_dir_ok(d->cfg.admin_socket))
        return -1;
    d->gpu_devices = gpu_probe(d->gpu_desc, sizeof d->gpu_desc);
    log_info("GPU: %s", d->gpu_desc);
    gpuscore_open(d);
    if (d->cfg.host_arena_size == 0) d->cfg.host_arena_size = d->cfg.host_capacity;
    if (d->cfg.host_capacity > d->cfg.host_arena_size) {
        log_error("host_capacity (%" PRIu64 ") above host_arena_size (%" PRIu64 ")",
                  d->cfg.host_capacity, d->cfg.host_arena_size);
        return -1;
    }
    char err[256];
    store_config_t sc = {
        .capacity = d->cfg.host_arena_size, .max_entries = d->cfg.max_entries, .align = 4096,
        .name = "simcache-host", .on_drop = on_drop, .ctx = d,
        .huge = strcmp(d->cfg.host_huge_pages, "on") == 0    ? ARENA_HUGE_ON
                : strcmp(d->cfg.host_huge_pages, "off") == 0 ? ARENA_HUGE_OFF
                                                             : ARENA_HUGE_TRY,
    };
    d->store = store_new(&sc, err, sizeof err);
    if (!d->store) {
        log_error("host tier: %s", err);
        return -1;
    }
    store_set_capacity(d->store, d->cfg.host_capacity);
    log_huge_pages(d, sc.huge);
    gtier_open(d);
    if (tier_open(d)) return -1;
    prefault_start(d);
    d->sig_term = evsignal_new(d->base, SIGTERM, on_signal, d);
    d->sig_int = evsignal_new(d->base, SIGINT, on_signal, d);
    d->sig_hup = evsignal_new(d->base, SIGHUP, on_signal, d);
    d->drain_timer = evtimer_new(d->base, on_drain_tick, d);
    if (!d->sig_term || !d->sig_int || !d->sig_hup || !d->drain_timer) return -1;
    event_add(d->sig_term, NULL);
    event_add(d->sig_int, NULL);
    event_add(d->sig_hup, NULL);
    if (server_listen(d) || admin_listen(d) || peers_init(d)) return -1;
    log_info("simcached %s ready: host tier %" PRIu64 " bytes (arena %" PRIu64
             "), max_entries %" PRIu64 ", threshold %.2f, vectors %s, pid %d",
             SIMCACHE_VERSION_STRING, d->cfg.host_capacity, store_arena_size(d->store),
             d->cfg.max_entries, d->cfg.default_threshold, vec_impl(), (int)getpid());
    return 0;
}

void daemon_fini(daemon_t *d)
{
    peers_free(d);
    admin_close_all(d);
    server_close_all(d);
    server_close_listener(d);
    admin_close_listener(d);
    size_t pos = 0;
    uint64_t key;
    void *val;
    while (u64map_next(&d->leases, &pos, &key, &val)) free(val);
    u64map_clear(&d->leases);
    /* The thread registers arena pieces with the disk tier's ring: stop it
     * before the ring goes. */
    prefault_stop(d);
    tier_close(d);
    gtier_close(d);
    /* store_free() runs no callbacks: free the entry records it points to. */
    if (d->store) {
        collect_t c = { 0 };
        store_foreach(d->store, collect, &c);
        for (size_t i = 0; i < c.n; i++) {
            entry_t *e = store_user(d->store, c.ids[i]);
            free(e->meta);
            free(e);
        }
        free(c.ids);
        store_free(d->store);
    }
    while (d->namespaces) {
        ns_t *ns = d->namespaces;
        d->namespaces = ns->next;
        ns_free(ns);
    }
    gpuscore_close(d);
    if (d->sig_term) event_free(d->sig_term);
    if (d->sig_int) event_free(d->sig_int);
    if (d->sig_hup) event_free(d->sig_hup);
    if (d->drain_timer) event_free(d->drain_timer);
    if (d->base) event_base_free(d->base);
}
