/* admin.c - the operator's text protocol on the admin socket.
 *
 * memcached-style: one command per line; a reply is one line (OK ...,
 * ERROR ..., CLIENT_ERROR ..., SERVER_ERROR ...) or several lines ending with
 * END. `format json` switches the session to one JSON document per reply,
 * which is what `simcachectl --json` uses. Every handler fills records through
 * the small rep_* builder below, so text and JSON always say the same thing.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin.h"
#include "admin_parse.h"
#include "cache.h"
#include "catalog.h"
#include "clock.h"
#include "config.h"
#include "daemon.h"
#include "gpuscore.h"
#include "gputier.h"
#include "hosttier.h"
#include "lease.h"
#include "listener.h"
#include "log.h"
#include "peers.h"
#include "principal.h"
#include "proto.h"
#include "reload.h"
#include "server.h"
#include "tier.h"
#include "vec.h"


typedef struct admin_conn {
    struct admin_conn *prev, *next;   /* in d->admin_conns */
    daemon_t *d;
    struct bufferevent *bev;
    int json;
    int discarding;       /* skipping the rest of an over-long line */
    role_t role;          /* ROLE_ADMIN or ROLE_ADMIN_READ (principal.h) */
    uid_t uid;
} admin_conn_t;

/* ---- reply builder ---- */

typedef struct {
    struct evbuffer *out;
    int json, list, nrec, nkv;
} rep_t;

static void rep_begin(rep_t *r, admin_conn_t *a, int list)
{
    r->out = bufferevent_get_output(a->bev);
    r->json = a->json;
    r->list = list;
    r->nrec = r->nkv = 0;
    if (r->json && list) evbuffer_add(r->out, "[", 1);
}

static void rep_rec(rep_t *r)
{
    if (r->json) evbuffer_add_printf(r->out, "%s{", r->nrec ? "," : "");
    r->nrec++;
    r->nkv = 0;
}

static void rep_rec_end(rep_t *r)
{
    if (r->json) evbuffer_add(r->out, "}", 1);
    else if (r->list) evbuffer_add(r->out, "\n", 1);
}

static void rep_end(rep_t *r)
{
    if (r->json) evbuffer_add_printf(r->out, "%s\n", r->list ? "]" : "");
    else evbuffer_add(r->out, "END\n", 4);
}

static void put_key(rep_t *r, const char *k)
{
    if (r->json) evbuffer_add_printf(r->out, "%s\"%s\":", r->nkv ? "," : "", k);
    else if (r->list) evbuffer_add_printf(r->out, "%s%s=", r->nkv ? " " : "", k);
    else evbuffer_add_printf(r->out, "%s ", k);
    r->nkv++;
}

static void put_end(rep_t *r)
{
    if (!r->json && !r->list) evbuffer_add(r->out, "\n", 1);
}

static void rep_str(rep_t *r, const char *k, const char *v)
{
    put_key(r, k);
    int quote = r->json;
    for (const char *p = v; *p && !quote; p++)
        if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\') quote = 1;
    if (!*v && r->list) quote = 1;
    if (quote) evbuffer_add(r->out, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\') evbuffer_add_printf(r->out, "\\%c", *p);
        else if (*p < 0x20) evbuffer_add_printf(r->out, "\\u%04x", *p);
        else evbuffer_add(r->out, p, 1);
    }
    if (quote) evbuffer_add(r->out, "\"", 1);
    put_end(r);
}

static void rep_u64(rep_t *r, const char *k, uint64_t v)
{
    put_key(r, k);
    evbuffer_add_printf(r->out, "%" PRIu64, v);
    put_end(r);
}

static void rep_f64(rep_t *r, const char *k, double v)
{
    put_key(r, k);
    evbuffer_add_printf(r->out, "%.6g", isfinite(v) ? v : 0.0);
    put_end(r);
}

static void reply_line(admin_conn_t *a, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_line(admin_conn_t *a, const char *kind, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct evbuffer *out = bufferevent_get_output(a->bev);
    if (a->json) {
        rep_t r;
        rep_begin(&r, a, 0);
        rep_rec(&r);
        if (strcmp(kind, "OK") == 0 || strcmp(kind, "PONG") == 0) {
            put_key(&r, "ok");
            evbuffer_add(out, "true", 4);
        } else {
            rep_str(&r, "error", kind);
        }
        rep_str(&r, "message", msg);
        rep_rec_end(&r);
        rep_end(&r);
    } else {
        evbuffer_add_printf(out, "%s%s%s\n", kind, msg[0] ? " " : "", msg);
    }
}

#define CLIENT_ERROR(a, ...) reply_line(a, "CLIENT_ERROR", __VA_ARGS__)

/* ---- commands ---- */

/* read: admin-read may run it (principal.h); the rest need admin. `config`
 * is read for `get`, admin for `set` (run_command). */
static const struct {
    const char *name, *args, *help;
    int read;
} commands[] = {
    { "help", "", "this list", 1 },
    { "ping", "", "answer PONG", 1 },
    { "stats", "", "counters", 1 },
    { "info", "", "server, tiers, index and limits", 1 },
    { "config", "get KEY|all / set KEY VALUE", "read or change settings", 1 },
    { "namespaces", "", "namespaces with their counts", 1 },
    { "clients", "", "connected clients", 1 },
    { "list", "[NS] [LIMIT]", "entries, most recently used first (NS: id or name)", 1 },
    { "show", "ID", "one entry", 1 },
    { "flush", "[NS]", "delete every entry (of one namespace)", 0 },
    { "evict", "N", "evict the N least recently used unleased entries", 0 },
    { "format", "text|json", "reply format of this session", 1 },
    { "route", "NS V1,V2,...|b64:BASE64", "which node's prototypes are closest to an embedding", 1 },
    { "peers", "", "nodes of the feature table, this one first", 1 },
    { "prototypes", "[NS]", "prototypes of this node and its peers (of one namespace)", 1 },
    { "verify", "", "read every disk-tier blob and check its checksum (drops bad ones)", 0 },
    { "checkpoint", "", "write every host entry not yet on disk to the disk tier, then flush", 0 },
    { "shutdown", "", "drain and exit", 0 },
};

static int parse_u64(const char *s, uint64_t *v)
{
    if (!s || *s < '0' || *s > '9') return -1;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *v = x;
    return 0;
}

static void cmd_help(admin_conn_t *a)
{
    rep_t r;
    rep_begin(&r, a, 1);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        rep_rec(&r);
        rep_str(&r, "command", commands[i].name);
        rep_str(&r, "args", commands[i].args);
        rep_str(&r, "help", commands[i].help);
        rep_str(&r, "role", commands[i].read ? "admin-read" : "admin");
        rep_rec_end(&r);
    }
    rep_end(&r);
}

static void cmd_stats(admin_conn_t *a)
{
    daemon_t *d = a->d;
    store_stats_t st;
    store_get_stats(d->store, &st);
    const counters_t *s = &d->stats;
    rep_t r;
    rep_begin(&r, a, 0);
    rep_rec(&r);
    rep_u64(&r, "uptime_s", (mono_us() - d->started_us) / 1000000u);
    rep_u64(&r, "clients", d->n_clients);
    rep_u64(&r, "connections_total", s->connections);
    rep_u64(&r, "connections_rejected", s->rejected_connections);
    rep_u64(&r, "namespaces", d->n_namespaces);
    store_stats_t gs = { 0 };
    if (d->gstore) store_get_stats(d->gstore, &gs);
    rep_u64(&r, "entries", st.entries + gs.entries);
    rep_u64(&r, "host_bytes_used", st.bytes_used);
    rep_u64(&r, "host_bytes_capacity", st.capacity);
    rep_u64(&r, "leases_active", lease_count(d));
    rep_u64(&r, "lookups", s->lookups);
    rep_u64(&r, "hits", s->hits);
    rep_u64(&r, "misses", s->misses);
    rep_f64(&r, "hit_ratio", s->lookups ? (double)s->hits / (double)s->lookups : 0.0);
    rep_u64(&r, "puts", s->puts);
    rep_u64(&r, "put_bytes", s->put_bytes);
    rep_u64(&r, "gets", s->gets);
    rep_u64(&r, "releases", s->releases);
    rep_u64(&r, "deletes", s->deletes);
    rep_u64(&r, "evictions", st.evictions);
    rep_u64(&r, "protocol_errors", s->protocol_errors);
    rep_u64(&r, "request_errors", s->request_errors);
    rep_u64(&r, "admin_commands", s->admin_commands);
    rep_u64(&r, "frame_buffer_bytes", d->in_bytes);
    rep_u64(&r, "idle_closed", s->idle_closed);
    rep_u64(&r, "frames_rejected", s->rejected_frames);
    rep_u64(&r, "admin_rejected", s->admin_rejected);
    rep_rec_end(&r);
    rep_end(&r);
}

static void cmd_info(admin_conn_t *a)
{
    daemon_t *d = a->d;
    store_stats_t st;
    store_get_stats(d->store, &st);
    uint64_t index_bytes = 0, coded = 0;
    double drop_bound = 0.0;
    for (ns_t *ns = d->namespaces; ns; ns = ns->next) {
        index_stats_t is;
        index_get_stats(ns->index, &is);
        index_bytes += is.bytes;
        coded += is.coded;
        if (is.drop_bound > drop_bound)
            drop_bound = is.drop_bound;
    }
    rep_t r;
    rep_begin(&r, a, 0);
    rep_rec(&r);
    rep_str(&r, "version", SIMCACHE_VERSION_STRING);
    rep_u64(&r, "pid", (uint64_t)getpid());
    rep_u64(&r, "uptime_s", (mono_us() - d->started_us) / 1000000u);
    rep_str(&r, "socket", d->cfg.socket);
    rep_str(&r, "admin_socket", d->cfg.admin_socket);
    rep_str(&r, "data_dir", d->cfg.data_dir);
    rep_str(&r, "config_file", d->config_path[0] ? d->config_path : "(embedded defaults)");
    rep_u64(&r, "protocol_version", PROTO_VERSION);
    rep_str(&r, "vector_impl", vec_impl());
    rep_str(&r, "tiers", d->gstore ? (tier_on(d) ? "gpu,host,disk" : "gpu,host")
                                    : (tier_on(d) ? "host,disk" : "host"));
    rep_u64(&r, "gpu_tier", d->gstore != NULL);
    rep_u64(&r, "gpu_devices", (uint64_t)d->gpu_devices);
    rep_str(&r, "gpu", d->gpu_desc);
    if (d->gstore) {
        store_stats_t gs;
        store_get_stats(d->gstore, &gs);
        rep_u64(&r, "gpu_device", d->cfg.gpu_device);
        rep_str(&r, "gpu_ipc", gtier_ipc_kind(d));
        rep_u64(&r, "gpu_capacity", gs.capacity);
        rep_u64(&r, "gpu_bytes_used", gs.bytes_used);
        rep_u64(&r, "gpu_bytes_pinned", gs.bytes_pinned);
        rep_u64(&r, "gpu_entries", gs.entries);
        rep_u64(&r, "gpu_staging_bytes", d->gstage_bytes);
        rep_u64(&r, "gpu_cleared_bytes", gs.cleared_bytes);
        rep_u64(&r, "gpu_pinned_entries", gs.pinned_entries);
        rep_u64(&r, "gpu_evictions", gs.evictions);
        gtier_stats_t gt = { 0 };
        gtier_get_stats(d, &gt);
        rep_u64(&r, "gpu_demotions", gt.demotions);
        rep_u64(&r, "gpu_promotions", gt.promotions);
        rep_u64(&r, "gpu_moves_to_host", gt.to_host);
        rep_u64(&r, "gpu_move_failures", gt.move_failures);
        rep_u64(&r, "gpu_host_arena_pinned", (uint64_t)gt.host_pinned);
    }
    rep_u64(&r, "disk_tier", (uint64_t)tier_on(d));
    rep_u64(&r, "host_arena_bytes", st.arena_size);
    rep_str(&r, "host_arena_pages", host_arena_pages(d));
    rep_u64(&r, "host_huge_bytes", host_huge_bytes(d));
    rep_u64(&r, "host_capacity", st.capacity);
    rep_u64(&r, "host_bytes_used", st.bytes_used);
    rep_u64(&r, "host_bytes_pinned", st.bytes_pinned);
    rep_u64(&r, "host_entries", st.entries);
    rep_u64(&r, "host_pending_puts", st.pending);
    rep_u64(&r, "host_pinned_entries", st.pinned_entries);
    rep_u64(&r, "host_cleared_bytes", st.cleared_bytes);
    rep_u64(&r, "host_evictions", st.evictions);
    rep_u64(&r, "host_alloc_failures", st.alloc_failures);
    rep_u64(&r, "host_free_extents", st.free_extents);
    rep_u64(&r, "host_largest_free", st.largest_free);
    rep_u64(&r, "host_prefaulted_bytes", host_prefaulted_bytes(d));
    tier_stats_t ts;
    if (tier_get_stats(d, &ts) == 0) {
        const disk_stats_t *ds = &ts.disk;
        rep_str(&r, "disk_durability", d->cfg.durability);
        rep_u64(&r, "disk_capacity", ds->capacity);
        rep_u64(&r, "disk_bytes_used", ds->bytes_used);
        rep_u64(&r, "disk_entries", ds->entries);
        rep_u64(&r, "disk_only_entries", ts.only_entries);
        rep_u64(&r, "disk_demotions", ts.demotions);
        rep_u64(&r, "disk_promotions", ts.promotions);
        rep_u64(&r, "disk_promotions_async", ts.promotions_async);
        rep_u64(&r, "disk_promotions_in_flight", ts.promotions_in_flight);
        rep_u64(&r, "disk_promotion_waits", ts.promotion_waits);
        rep_u64(&r, "disk_evictions", ds->evictions);
        rep_u64(&r, "disk_checksum_failures", ds->checksum_failures);
        rep_u64(&r, "disk_write_failures", ts.write_failures);
        rep_u64(&r, "disk_flush_ms", ts.flush_ms);
        rep_u64(&r, "disk_flushes", ts.flushes);
        rep_u64(&r, "disk_flush_failures", ts.flush_failures);
        rep_u64(&r, "disk_flush_queue", ts.flush_queue);
        rep_u64(&r, "disk_flush_inflight_bytes", ts.flush_inflight);
        rep_u64(&r, "disk_writes", ds->writes);
        rep_u64(&r, "disk_reads", ds->reads);
        rep_u64(&r, "disk_direct_io", (uint64_t)ds->direct);
        rep_u64(&r, "disk_async_io", (uint64_t)ds->async);
        rep_u64(&r, "disk_registered_bytes", ds->fixed_bytes);
        rep_u64(&r, "disk_fixed_ios", ds->fixed_ios);
        rep_u64(&r, "disk_lmdb_map_bytes", ds->map_size);
    }
    rep_u64(&r, "max_entries", d->cfg.max_entries);
    rep_f64(&r, "default_threshold", d->cfg.default_threshold);
    rep_u64(&r, "namespaces", d->n_namespaces);
    rep_u64(&r, "namespaces_coded", coded);
    /* The index's one loss, stated: the most a search can drop a match
     * sitting exactly at its threshold (the same in every namespace with
     * codes; 0 when none has them). */
    rep_f64(&r, "index_drop_bound", drop_bound);
    rep_u64(&r, "index_bytes", index_bytes);
    gpuscore_stats_t gs;
    gpuscore_get_stats(d, &gs);
    rep_u64(&r, "gpu_score", gs.enabled);
    rep_u64(&r, "gpu_score_batches", gs.batches);
    rep_u64(&r, "gpu_score_queries", gs.queries);
    rep_u64(&r, "gpu_score_errors", gs.errors);
    rep_u64(&r, "gpu_score_rows", gs.rows);
    rep_u64(&r, "gpu_score_bytes", gs.bytes);
    rep_u64(&r, "clients", d->n_clients);
    rep_u64(&r, "max_clients", d->cfg.max_clients);
    rep_u64(&r, "leases_active", lease_count(d));
    rep_u64(&r, "draining", (uint64_t)d->draining);
    peers_info_t pi;
    peers_get_info(d, &pi);
    rep_str(&r, "node_id", pi.node_id ? pi.node_id : "");
    rep_str(&r, "advertise", pi.advertise ? pi.advertise : "");
    rep_str(&r, "redis", pi.redis_configured ? pi.redis : "(none: single node)");
    rep_u64(&r, "redis_connected", (uint64_t)pi.redis_connected);
    rep_u64(&r, "redis_reconnects", pi.reconnects);
    rep_u64(&r, "table_stale", (uint64_t)pi.table_stale);
    rep_u64(&r, "peers", pi.peers);
    rep_u64(&r, "records_ignored", pi.records_ignored);
    rep_u64(&r, "record_bytes", pi.record_bytes);
    rep_u64(&r, "record_publishes", pi.publishes);
    rep_u64(&r, "prototypes", pi.prototypes);
    rep_u64(&r, "prototype_refits", pi.refits);
    rep_rec_end(&r);
    rep_end(&r);
}

typedef struct {
    rep_t *r;
} cfg_ctx_t;

static void cfg_one(void *arg, const char *key, const char *value, int runtime, const char *help)
{
    rep_t *r = ((cfg_ctx_t *)arg)->r;
    rep_rec(r);
    rep_str(r, "key", key);
    rep_str(r, "value", value);
    rep_u64(r, "runtime", (uint64_t)runtime);
    rep_str(r, "help", help);
    rep_rec_end(r);
}

static void cmd_config(admin_conn_t *a, admin_args_t *args)
{
    daemon_t *d = a->d;
    char buf[512], err[256];
    if (args->argc == 3 && strcmp(args->argv[1], "get") == 0) {
        rep_t r;
        if (strcmp(args->argv[2], "all") == 0 || strcmp(args->argv[2], "*") == 0) {
            cfg_ctx_t ctx = { &r };
            rep_begin(&r, a, 1);
            config_foreach(&d->cfg, cfg_one, &ctx);
            rep_end(&r);
            return;
        }
        if (config_get(&d->cfg, args->argv[2], buf, sizeof buf)) {
            CLIENT_ERROR(a, "unknown key '%.64s' (config get all lists them)", args->argv[2]);
            return;
        }
        rep_begin(&r, a, 0);
        rep_rec(&r);
        rep_str(&r, args->argv[2], buf);
        rep_rec_end(&r);
        rep_end(&r);
        return;
    }
    if (args->argc == 4 && strcmp(args->argv[1], "set") == 0) {
        config_t next = d->cfg;
        if (config_set(&next, args->argv[2], args->argv[3], 1, err, sizeof err)) {
            CLIENT_ERROR(a, "%s", err);
            return;
        }
        if (next.host_capacity > store_arena_size(d->store)) {
            CLIENT_ERROR(a, "host_capacity: at most the arena size, %" PRIu64 " bytes",
                         store_arena_size(d->store));
            return;
        }
        d->cfg = next;
        reload_apply(d);
        config_get(&d->cfg, args->argv[2], buf, sizeof buf);
        log_info("admin: config set %s %s", args->argv[2], buf);
        reply_line(a, "OK", "%s = %s", args->argv[2], buf);
        return;
    }
    CLIENT_ERROR(a, "usage: config get KEY|all, config set KEY VALUE");
}

static void cmd_namespaces(admin_conn_t *a)
{
    rep_t r;
    rep_begin(&r, a, 1);
    for (ns_t *ns = a->d->namespaces; ns; ns = ns->next) {
        index_stats_t is;
        index_get_stats(ns->index, &is);
        rep_rec(&r);
        rep_u64(&r, "id", ns->id);
        rep_str(&r, "model", ns->model);
        rep_str(&r, "layout", ns->layout_fp);
        rep_u64(&r, "dim", ns->dim);
        rep_str(&r, "tenant", ns->tenant);
        rep_u64(&r, "entries", ns->entries);
        rep_u64(&r, "bytes", ns->bytes);
        rep_u64(&r, "lookups", ns->lookups);
        rep_u64(&r, "hits", ns->hits);
        rep_u64(&r, "puts", ns->puts);
        rep_u64(&r, "clients", ns->clients);
        rep_u64(&r, "index_coded", is.coded);
        rep_u64(&r, "index_searches", is.searches);
        rep_u64(&r, "index_candidates", is.candidates);
        rep_u64(&r, "index_filtered", is.filtered);
        rep_u64(&r, "index_recentres", is.recentres);
        rep_u64(&r, "index_bytes", is.bytes);
        rep_rec_end(&r);
    }
    rep_end(&r);
}

typedef struct {
    rep_t *r;
    ns_t *ns;
    uint64_t limit, n, now;
} list_ctx_t;

static void entry_fields(rep_t *r, const entry_t *e, const char *tier, uint64_t off,
                         uint64_t size, uint32_t pins, uint64_t now)
{
    rep_u64(r, "id", e->id);
    rep_u64(r, "ns", e->ns->id);
    rep_str(r, "tier", tier);
    rep_u64(r, "size", size);
    rep_u64(r, "offset", off);
    rep_u64(r, "hits", e->hits);
    rep_u64(r, "leases", pins);
    rep_u64(r, "age_s", (now - e->created_us) / 1000000u);
    rep_u64(r, "idle_s", (now - (e->last_hit_us ? e->last_hit_us : e->created_us)) / 1000000u);
}

static int list_disk_one(void *arg, uint64_t id, void *user, uint64_t off, uint64_t size,
                         uint32_t pins)
{
    list_ctx_t *c = arg;
    entry_t *e = user;
    (void)id;
    (void)off;
    (void)size;
    (void)pins;
    if ((c->ns && e->ns != c->ns) || !e->indexed) return 0;
    if (c->n >= c->limit) return 1;
    rep_rec(c->r);
    entry_fields(c->r, e, "disk", 0, e->size, 0, c->now);
    rep_rec_end(c->r);
    c->n++;
    return 0;
}

static int list_one(void *arg, uint64_t id, void *user, uint64_t off, uint64_t size, uint32_t pins)
{
    list_ctx_t *c = arg;
    entry_t *e = user;
    (void)id;
    if (c->ns && e->ns != c->ns) return 0;
    if (c->n >= c->limit) return 1;
    rep_rec(c->r);
    entry_fields(c->r, e, e->on_gpu ? "gpu" : "host", off, size, pins, c->now);
    rep_rec_end(c->r);
    c->n++;
    return 0;
}

static void cmd_list(admin_conn_t *a, admin_args_t *args)
{
    list_ctx_t c = { .limit = 100, .now = now_us() };
    int i = 1;
    if (i < args->argc) {
        uint64_t v;
        /* A lone number is a limit; a namespace comes first when both are given. */
        if (args->argc == 2 && parse_u64(args->argv[1], &v) == 0 && !catalog_ns_find(a->d, args->argv[1])) {
            c.limit = v;
            i++;
        } else {
            c.ns = catalog_ns_find(a->d, args->argv[i]);
            if (!c.ns) {
                CLIENT_ERROR(a, "no namespace '%.128s' (see namespaces)", args->argv[i]);
                return;
            }
            i++;
        }
    }
    if (i < args->argc && parse_u64(args->argv[i++], &c.limit)) {
        CLIENT_ERROR(a, "usage: list [NS] [LIMIT]");
        return;
    }
    if (i < args->argc) {
        CLIENT_ERROR(a, "usage: list [NS] [LIMIT]");
        return;
    }
    rep_t r;
    c.r = &r;
    rep_begin(&r, a, 1);
    if (a->d->gstore) store_foreach(a->d->gstore, list_one, &c);
    store_foreach(a->d->store, list_one, &c);
    /* Then the entries held only on disk (offset: none in the arena). */
    tier_foreach_entry(a->d, 0, list_disk_one, &c);
    rep_end(&r);
}

typedef struct {
    uint64_t id, off, size;
    uint32_t pins;
    int found;
} find_ctx_t;

static int find_one(void *arg, uint64_t id, void *user, uint64_t off, uint64_t size, uint32_t pins)
{
    find_ctx_t *f = arg;
    (void)user;
    if (id != f->id) return 0;
    f->off = off;
    f->size = size;
    f->pins = pins;
    f->found = 1;
    return 1;
}

static void cmd_show(admin_conn_t *a, admin_args_t *args)
{
    uint64_t id;
    if (args->argc != 2 || parse_u64(args->argv[1], &id)) {
        CLIENT_ERROR(a, "usage: show ID");
        return;
    }
    store_t *st = a->d->gstore && store_is_live(a->d->gstore, id) ? a->d->gstore : a->d->store;
    entry_t *e = store_is_live(st, id) ? store_user(st, id) : NULL;
    find_ctx_t f = { .id = id };
    const char *tier = st == a->d->store ? "host" : "gpu";
    if (e) store_foreach(st, find_one, &f);
    else if ((e = tier_disk_entry(a->d, id)) && e->indexed) {
        tier = "disk";
        f.size = e->size;
        f.found = 1;
    }
    if (!e || !f.found) {
        reply_line(a, "NOT_FOUND", "no entry %" PRIu64, id);
        return;
    }
    rep_t r;
    char hex[2 * 64 + 1];
    rep_begin(&r, a, 0);
    rep_rec(&r);
    entry_fields(&r, e, tier, f.off, f.size, f.pins, now_us());
    rep_str(&r, "namespace", e->ns->name);
    rep_u64(&r, "dtype", e->layout.dtype);
    rep_u64(&r, "parts", e->layout.parts);
    rep_u64(&r, "layers", e->layout.layers);
    rep_u64(&r, "kv_heads", e->layout.kv_heads);
    rep_u64(&r, "head_dim", e->layout.head_dim);
    rep_u64(&r, "tokens", e->layout.tokens);
    snprintf(hex, sizeof hex, "%016" PRIx64, e->checksum);
    rep_str(&r, "xxh3", hex);
    uint32_t n = e->meta_len < 64 ? e->meta_len : 64;
    for (uint32_t i = 0; i < n; i++) snprintf(hex + 2 * i, 3, "%02x", e->meta[i]);
    hex[2 * n] = 0;
    rep_u64(&r, "meta_len", e->meta_len);
    rep_str(&r, "meta_hex", hex);
    rep_rec_end(&r);
    rep_end(&r);
}

static void cmd_flush(admin_conn_t *a, admin_args_t *args)
{
    ns_t *ns = NULL;
    if (args->argc > 2) {
        CLIENT_ERROR(a, "usage: flush [NS]");
        return;
    }
    if (args->argc == 2 && !(ns = catalog_ns_find(a->d, args->argv[1]))) {
        CLIENT_ERROR(a, "no namespace '%.128s' (see namespaces)", args->argv[1]);
        return;
    }
    uint64_t n = cache_flush(a->d, ns);
    log_info("admin: flush %s: %" PRIu64 " entries", ns ? ns->name : "all", n);
    reply_line(a, "OK", "flushed %" PRIu64, n);
}

static void cmd_evict(admin_conn_t *a, admin_args_t *args)
{
    uint64_t n;
    if (args->argc != 2 || parse_u64(args->argv[1], &n)) {
        CLIENT_ERROR(a, "usage: evict N");
        return;
    }
    uint64_t done = store_evict(a->d->store, n);
    reply_line(a, "OK", "evicted %" PRIu64, done);
}

static void cmd_verify(admin_conn_t *a)
{
    if (!tier_on(a->d)) {
        CLIENT_ERROR(a, "no disk tier (disk_capacity is 0)");
        return;
    }
    uint64_t checked = 0;
    int64_t bad = tier_verify(a->d, &checked);
    if (bad < 0) {
        reply_line(a, "SERVER_ERROR", "verify: %s", strerror((int)-bad));
        return;
    }
    log_info("admin: verify: %" PRIu64 " blobs checked, %" PRId64 " bad (dropped)", checked, bad);
    reply_line(a, "OK", "checked %" PRIu64 " bad %" PRId64, checked, bad);
}

static void cmd_checkpoint(admin_conn_t *a)
{
    int64_t n = tier_checkpoint(a->d);
    if (n < 0) {
        CLIENT_ERROR(a, "no disk tier (disk_capacity is 0)");
        return;
    }
    reply_line(a, "OK", "written %" PRId64, n);
}

static void cmd_clients(admin_conn_t *a);
static void cmd_route(admin_conn_t *a, admin_args_t *args);
static void cmd_peers(admin_conn_t *a);
static void cmd_prototypes(admin_conn_t *a, admin_args_t *args);

/* May this connection's role run the command? Unknown commands pass (they
 * get "unknown command"); an admin-read session is refused every write with
 * the role it would need. */
static int permitted(admin_conn_t *a, const admin_args_t *args)
{
    if (a->role == ROLE_ADMIN) return 1;
    const char *c = args->argv[0];
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(commands[i].name, c)) continue;
        int read = commands[i].read;
        if (strcmp(c, "config") == 0) read = args->argc >= 2 && strcmp(args->argv[1], "get") == 0;
        if (read) return 1;
        a->d->stats.admin_rejected++;
        log_warn("admin: uid %u (%s) refused '%s': needs the admin role", (unsigned)a->uid,
                 role_name(a->role), c);
        reply_line(a, "ERROR", "permission denied: '%s%s%s' needs the admin role (admin_uids); "
                   "uid %u has %s", c, strcmp(c, "config") ? "" : " ",
                   strcmp(c, "config") ? "" : (args->argc >= 2 ? args->argv[1] : ""),
                   (unsigned)a->uid, role_name(a->role));
        return 0;
    }
    return 1;
}

static void run_command(admin_conn_t *a, admin_args_t *args)
{
    const char *c = args->argv[0];
    if (!permitted(a, args)) return;
    a->d->stats.admin_commands++;
    if (strcmp(c, "help") == 0) cmd_help(a);
    else if (strcmp(c, "ping") == 0) reply_line(a, "PONG", "%s", "");
    else if (strcmp(c, "stats") == 0) cmd_stats(a);
    else if (strcmp(c, "info") == 0) cmd_info(a);
    else if (strcmp(c, "config") == 0) cmd_config(a, args);
    else if (strcmp(c, "namespaces") == 0) cmd_namespaces(a);
    else if (strcmp(c, "clients") == 0) cmd_clients(a);
    else if (strcmp(c, "list") == 0) cmd_list(a, args);
    else if (strcmp(c, "show") == 0) cmd_show(a, args);
    else if (strcmp(c, "flush") == 0) cmd_flush(a, args);
    else if (strcmp(c, "evict") == 0) cmd_evict(a, args);
    else if (strcmp(c, "route") == 0) cmd_route(a, args);
    else if (strcmp(c, "peers") == 0) cmd_peers(a);
    else if (strcmp(c, "prototypes") == 0) cmd_prototypes(a, args);
    else if (strcmp(c, "verify") == 0) cmd_verify(a);
    else if (strcmp(c, "checkpoint") == 0) cmd_checkpoint(a);
    else if (strcmp(c, "format") == 0) {
        if (args->argc == 2 && strcmp(args->argv[1], "json") == 0) a->json = 1;
        else if (args->argc == 2 && strcmp(args->argv[1], "text") == 0) a->json = 0;
        else {
            CLIENT_ERROR(a, "usage: format text|json");
            return;
        }
        reply_line(a, "OK", "format %s", a->json ? "json" : "text");
    } else if (strcmp(c, "shutdown") == 0) {
        reply_line(a, "OK", "shutting down");
        a->d->shutdown(a->d, "admin shutdown");
    } else {
        a->d->stats.admin_commands--;
        reply_line(a, "ERROR", "unknown command '%.64s' (try help)", c);
    }
}

/* ---- connections ---- */

static void conn_free(admin_conn_t *a)
{
    if (a->prev) a->prev->next = a->next;
    else a->d->admin_conns = a->next;
    if (a->next) a->next->prev = a->prev;
    bufferevent_free(a->bev);
    free(a);
}

void admin_close_all(daemon_t *d)
{
    while (d->admin_conns) conn_free(d->admin_conns);
}

static void on_admin_read(struct bufferevent *bev, void *arg)
{
    admin_conn_t *a = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t eol_len = 0;
        struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
        if (p.pos < 0) {
            size_t have = evbuffer_get_length(in);
            if (have > ADMIN_MAX_LINE + 1) {
                if (!a->discarding)
                    CLIENT_ERROR(a, "line longer than %d bytes", ADMIN_MAX_LINE);
                a->discarding = 1;
                evbuffer_drain(in, have);
            }
            return;
        }
        size_t len = (size_t)p.pos;
        if (a->discarding) {
            evbuffer_drain(in, len + eol_len);
            a->discarding = 0;
            continue;
        }
        if (len > ADMIN_MAX_LINE + 1) {
            evbuffer_drain(in, len + eol_len);
            CLIENT_ERROR(a, "line longer than %d bytes", ADMIN_MAX_LINE);
            continue;
        }
        char line[ADMIN_MAX_LINE + 2];
        evbuffer_remove(in, line, len);
        evbuffer_drain(in, eol_len);
        if (len && line[len - 1] == '\r') len--;
        admin_args_t args;
        char err[128];
        if (admin_parse_line(line, len, &args, err, sizeof err)) {
            CLIENT_ERROR(a, "%s", err);
            continue;
        }
        if (args.argc == 0) continue;
        run_command(a, &args);
        if (strcmp(args.argv[0], "shutdown") == 0) return;
    }
}

static void on_admin_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) conn_free(arg);
}

static void on_admin_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                            int len, void *arg)
{
    (void)l;
    (void)sa;
    (void)len;
    daemon_t *d = arg;
    principal_t cred;
    role_t role = ROLE_NONE;
    const char *why = "no peer credentials";
    if (principal_of(fd, &cred)) {
        log_warn("admin: refused a connection: no peer credentials (SO_PEERCRED: %s)",
                 strerror(errno));
    } else if ((role = principal_admin_role(d, &cred)) == ROLE_NONE) {
        why = "uid not allowed (admin_uids, admin_read_uids)";
        log_warn("admin: refused pid %d uid %u: not in admin_uids or admin_read_uids",
                 (int)cred.pid, (unsigned)cred.uid);
    }
    if (role == ROLE_NONE) {
        d->stats.admin_rejected++;
        char msg[96];
        int n = snprintf(msg, sizeof msg, "SERVER_ERROR %s\n", why);
        ssize_t w = send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
        close(fd);
        return;
    }
    admin_conn_t *a = calloc(1, sizeof *a);
    if (!a) {
        close(fd);
        return;
    }
    a->d = d;
    a->role = role;
    a->uid = cred.uid;
    a->bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!a->bev) {
        free(a);
        close(fd);
        return;
    }
    a->next = d->admin_conns;
    if (a->next) a->next->prev = a;
    d->admin_conns = a;
    bufferevent_setcb(a->bev, on_admin_read, NULL, on_admin_event, a);
    bufferevent_enable(a->bev, EV_READ | EV_WRITE);
}

int admin_listen(daemon_t *d)
{
    d->admin_listener = listener_open(d, d->cfg.admin_socket, on_admin_accept, d, "operators");
    return d->admin_listener ? 0 : -1;
}

void admin_close_listener(daemon_t *d)
{
    listener_close(&d->admin_listener, d->cfg.admin_socket);
}

static void client_one(void *arg, uint64_t id, int pid, unsigned uid, const char *ns,
                       uint32_t leases, uint32_t puts, uint64_t requests)
{
    rep_t *r = arg;
    rep_rec(r);
    rep_u64(r, "id", id);
    rep_u64(r, "pid", (uint64_t)pid);
    rep_u64(r, "uid", uid);
    rep_str(r, "namespace", ns);
    rep_u64(r, "leases", leases);
    rep_u64(r, "puts", puts);
    rep_u64(r, "requests", requests);
    rep_rec_end(r);
}

static void cmd_clients(admin_conn_t *a)
{
    rep_t r;
    rep_begin(&r, a, 1);
    server_foreach_client(a->d, client_one, &r);
    rep_end(&r);
}

/* ---- cluster: route, peers, prototypes ---- */

/* Standard base64 (padding optional) into out; returns bytes or -1. */
static long b64_decode(const char *s, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (; *s && *s != '='; s++) {
        const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const char *p = strchr(alpha, *s);
        if (!p) return -1;
        acc = (acc << 6) | (uint32_t)(p - alpha);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == cap) return -1;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    while (*s == '=') s++;
    return *s ? -1 : (long)n;
}

/* An embedding of dim floats from "v1,v2,..." or "b64:" + base64 of
 * little-endian f32. Returns 0 or -1 with a reason. */
static int parse_embedding(const char *s, uint32_t dim, float *out, char *why, size_t n)
{
    if (strncmp(s, "b64:", 4) == 0) {
        size_t cap = (size_t)dim * 4;
        uint8_t *raw = malloc(cap + 3);
        long got = raw ? b64_decode(s + 4, raw, cap + 3) : -1;
        if (got != (long)cap) {
            snprintf(why, n, "b64: must hold exactly %u little-endian f32 (%zu bytes)", dim, cap);
            free(raw);
            return -1;
        }
        for (uint32_t i = 0; i < dim; i++) {
            uint32_t u = (uint32_t)raw[4 * i] | ((uint32_t)raw[4 * i + 1] << 8) |
                         ((uint32_t)raw[4 * i + 2] << 16) | ((uint32_t)raw[4 * i + 3] << 24);
            memcpy(&out[i], &u, sizeof u);
        }
        free(raw);
        return 0;
    }
    uint32_t i = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        float v = strtof(p, &end);
        if (end == p || errno == ERANGE || i == dim) {
            snprintf(why, n, "expected %u comma-separated numbers", dim);
            return -1;
        }
        out[i++] = v;
        if (*end == ',') end++;
        else if (*end) {
            snprintf(why, n, "expected %u comma-separated numbers", dim);
            return -1;
        }
        p = end;
    }
    if (i != dim) {
        snprintf(why, n, "%u numbers given, the namespace has dimension %u", i, dim);
        return -1;
    }
    return 0;
}

static void cmd_route(admin_conn_t *a, admin_args_t *args)
{
    if (args->argc != 3) {
        CLIENT_ERROR(a, "usage: route NS V1,V2,...|b64:BASE64");
        return;
    }
    ns_t *ns = catalog_ns_find(a->d, args->argv[1]);
    if (!ns) {
        CLIENT_ERROR(a, "no namespace '%.128s' (see namespaces)", args->argv[1]);
        return;
    }
    float *v = malloc((size_t)ns->dim * sizeof *v);
    char why[128];
    if (!v) {
        reply_line(a, "SERVER_ERROR", "out of memory");
        return;
    }
    if (parse_embedding(args->argv[2], ns->dim, v, why, sizeof why)) {
        CLIENT_ERROR(a, "%s", why);
        free(v);
        return;
    }
    if (vec_normalize(v, ns->dim, v)) {
        CLIENT_ERROR(a, "embedding holds NaN or Inf, or is the zero vector");
        free(v);
        return;
    }
    route_t rt;
    peers_route(a->d, ns, v, &rt);
    free(v);
    rep_t r;
    rep_begin(&r, a, 0);
    rep_rec(&r);
    rep_str(&r, "node", rt.node_id);
    rep_str(&r, "address", rt.addr);
    rep_u64(&r, "local", (rt.flags & SIMCACHE_ROUTE_LOCAL) != 0);
    rep_f64(&r, "similarity", rt.similarity);
    rep_f64(&r, "load", rt.load);
    rep_f64(&r, "score", rt.score);
    rep_u64(&r, "stale", (rt.flags & SIMCACHE_ROUTE_STALE) != 0);
    rep_u64(&r, "no_prototypes", (rt.flags & SIMCACHE_ROUTE_NONE) != 0);
    rep_rec_end(&r);
    rep_end(&r);
}

static void peer_one(void *arg, const peer_view_t *v)
{
    rep_t *r = arg;
    rep_rec(r);
    rep_str(r, "node", v->node_id);
    rep_str(r, "address", v->addr);
    rep_u64(r, "self", (uint64_t)v->self);
    rep_u64(r, "entries", v->entries);
    rep_u64(r, "bytes", v->bytes);
    rep_u64(r, "capacity", v->capacity);
    rep_f64(r, "rate", v->rate);
    rep_f64(r, "load", v->load);
    rep_u64(r, "namespaces", v->namespaces);
    rep_u64(r, "prototypes", v->prototypes);
    rep_u64(r, "seq", v->seq);
    rep_u64(r, "age_ms", v->age_ms);
    rep_u64(r, "record_bytes", v->record_bytes);
    rep_rec_end(r);
}

static void cmd_peers(admin_conn_t *a)
{
    rep_t r;
    rep_begin(&r, a, 1);
    peers_foreach_node(a->d, peer_one, &r);
    rep_end(&r);
}

static void proto_one(void *arg, const proto_view_t *v)
{
    rep_t *r = arg;
    char head[96];
    size_t used = 0;
    head[0] = 0;
    /* The first components, enough to tell prototypes apart by eye. */
    for (uint32_t i = 0; i < v->dim && i < 4 && used < sizeof head; i++)
        used += (size_t)snprintf(head + used, sizeof head - used, "%s%.4f", i ? "," : "",
                                 (double)v->centroid[i]);
    rep_rec(r);
    rep_str(r, "node", v->node_id);
    rep_u64(r, "self", (uint64_t)v->self);
    rep_str(r, "ns_hash", v->ns_hash);
    rep_str(r, "namespace", v->ns_name);
    rep_u64(r, "dim", v->dim);
    rep_u64(r, "index", v->index);
    rep_u64(r, "count", v->count);
    rep_str(r, "head", head);
    rep_rec_end(r);
}

static void cmd_prototypes(admin_conn_t *a, admin_args_t *args)
{
    const ns_t *ns = NULL;
    if (args->argc > 2) {
        CLIENT_ERROR(a, "usage: prototypes [NS]");
        return;
    }
    if (args->argc == 2 && !(ns = catalog_ns_find(a->d, args->argv[1]))) {
        CLIENT_ERROR(a, "no namespace '%.128s' (see namespaces)", args->argv[1]);
        return;
    }
    rep_t r;
    rep_begin(&r, a, 1);
    peers_foreach_prototype(a->d, ns, proto_one, &r);
    rep_end(&r);
}
