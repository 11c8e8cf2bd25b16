/* peers.c - prototypes upkeep, the node record in Redis, the global feature
 * table, routing.
 *
 * Two hiredis async connections on the daemon's libevent loop: one for
 * commands, one subscribed to the change channel (a subscribed connection
 * can do nothing else). They live and die together: if either fails, both
 * are dropped, the table is marked stale and a reconnect is scheduled with
 * exponential backoff and jitter. Each heartbeat writes this node's record
 * (MULTI: EXISTS, HSET, PEXPIRE, SADD, EXEC) and re-reads the table: SMEMBERS
 * of the node set, then every member's small `hdr`, and its `protos` only
 * when the sequence number moved. A refresh that completes removes the peers
 * it did not confirm, so the table holds exactly the nodes whose keys are
 * alive; a key that expired (a killed node) is gone from the next refresh.
 * Every reply callback tolerates a NULL reply (hiredis calls pending
 * callbacks with NULL when a connection dies or is freed).
 */
#include "noderec.h"
#include "peers.h"

#include <errno.h>
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "clock.h"
#include "log.h"
#include "mix64.h"
#include "prototypes.h"
#include "vec.h"

#define KEY_PREFIX "simcache:node:"
#define NODES_KEY "simcache:nodes"
#define CHANNEL "simcache:events"
#define PEERS_MAX 1024
#define TABLE_MAX_BYTES (512ull << 20)   /* decoded prototypes of all peers */
#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 10000u
#define CONNECT_TIMEOUT_MS 5000u
#define LEAVE_TIMEOUT_MS 300
#define KEY_MAX (sizeof KEY_PREFIX + NODEREC_MAX_ID)

enum { S_OFF, S_DOWN, S_CONNECTING, S_UP };

typedef struct {
    int is_unix;
    char host[256];
    int port;
    char path[108];
    int db;
    char user[128];
    char pass[256];
} redis_addr_t;

struct ns_cluster {
    proto_set_t *ps;
    uint8_t hash[NODEREC_HASH_LEN];
    uint32_t puts_since_refit;
    uint64_t changes;             /* adds and removes since the last refit */
    uint64_t last_refit_us;
    int refit_wanted;
};

typedef struct {
    noderec_hdr_t hdr;
    noderec_protos_t protos;
    int have_protos;
    uint64_t seen_us;             /* last confirmed alive (monotonic) */
    uint64_t epoch;               /* refresh that last confirmed it */
    uint64_t record_bytes;
    uint64_t bad_seq;             /* protos of this seq were refused: do not refetch */
} peer_t;

struct peers {
    daemon_t *d;
    char node_id[NODEREC_MAX_ID + 1];
    char advertise[NODEREC_MAX_ADDR + 1];
    char key[KEY_MAX];
    struct event *tick, *retry, *refit;
    uint64_t rng;
    /* load */
    uint64_t last_ops, last_rate_us;
    float rate;
    /* redis */
    redis_addr_t ra;
    char redis_desc[128];
    int state, closing, warned, ever_up, stale;
    redisAsyncContext *cmd, *sub;
    int cmd_up, sub_up;
    uint32_t backoff_ms;
    /* publishing */
    uint64_t seq;
    int protos_dirty, need_full, ever_published, warned_write;
    uint64_t record_bytes, publishes, reconnects, refits, records_ignored;
    /* the table */
    peer_t **peers;
    uint32_t n_peers;
    uint64_t table_bytes;         /* decoded prototypes held for peers */
    uint64_t epoch;
    uint32_t pending;
    int refreshing, refresh_failed;
    uint64_t refresh_started_us;
    uint64_t up_us;               /* when the connection last came up */
};

typedef struct {
    peers_t *p;
    uint64_t epoch;               /* 0: not part of a table refresh */
    char id[NODEREC_MAX_ID + 1];
} fetch_t;

static void arm_ms(struct event *ev, uint32_t ms)
{
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
    evtimer_add(ev, &tv);
}

/* ---- namespace state and prototypes upkeep ---- */

/* The namespace's name as published: HMAC-SHA256 keyed with fleet_key (or
 * plain SHA-256 when it is empty) of a canonical encoding, first 16 bytes.
 * Every node derives the same hash for the same namespace, and nobody
 * without the fleet key can test a guess of a (tenant) name against it. */
static int ns_hash(const config_t *cfg, const ns_t *ns, uint8_t out[NODEREC_HASH_LEN])
{
    proto_wr_t w;
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    char dim[16];
    proto_wr_init(&w);
    proto_wr_bytes(&w, "simcache-ns-v1", 15);
    proto_wr_str(&w, ns->model, strlen(ns->model));
    proto_wr_str(&w, ns->layout_fp, strlen(ns->layout_fp));
    snprintf(dim, sizeof dim, "%u", ns->dim);
    proto_wr_str(&w, dim, strlen(dim));
    proto_wr_str(&w, ns->tenant, strlen(ns->tenant));
    const uint8_t *ok = NULL;
    if (!w.err && cfg->fleet_key[0])
        ok = HMAC(EVP_sha256(), cfg->fleet_key, (int)strlen(cfg->fleet_key), w.buf, w.len, md,
                  &mdlen);
    else if (!w.err)
        ok = SHA256(w.buf, w.len, md);
    proto_wr_free(&w);
    if (!ok) return -1;
    memcpy(out, md, NODEREC_HASH_LEN);
    return 0;
}

static ns_cluster_t *cluster_of(daemon_t *d, ns_t *ns)
{
    if (ns->cluster) return ns->cluster;
    ns_cluster_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->ps = proto_set_new(ns->dim, d->cfg.prototypes_per_ns);
    if (!c->ps || ns_hash(&d->cfg, ns, c->hash)) {
        proto_set_free(c->ps);
        free(c);
        return NULL;
    }
    c->last_refit_us = mono_us();
    ns->cluster = c;
    return c;
}

void peers_ns_free(ns_cluster_t *c)
{
    if (!c) return;
    proto_set_free(c->ps);
    free(c);
}

static void refit_ns(peers_t *p, ns_t *ns)
{
    ns_cluster_t *c = ns->cluster;
    if (!c) return;
    /* A refit runs on the event loop: keep its work (sample * dim * k per
     * Lloyd round) to a few milliseconds whatever the dimension. The sample
     * comes straight from the index's vectors (O(sample), not a walk over
     * every entry of every namespace: that cost 57% of the CPU of a 450k
     * fill). */
    size_t cap = ((size_t)1 << 20) / ns->dim;
    if (cap > PROTO_SAMPLE_MAX) cap = PROTO_SAMPLE_MAX;
    if (cap < 64) cap = 64;
    size_t count = index_count(ns->index);
    size_t want = count < cap ? count : cap;
    float *buf = want ? malloc(want * ns->dim * sizeof(float)) : NULL;
    if (want && !buf) return;
    size_t n = want ? index_sample(ns->index, want, splitmix64(&p->rng), buf) : 0;
    uint64_t t0 = mono_us();
    if (proto_refit(c->ps, buf, n, count, splitmix64(&p->rng)) == 0) {
        c->puts_since_refit = 0;
        c->changes = 0;
        c->refit_wanted = 0;
        c->last_refit_us = mono_us();
        p->protos_dirty = 1;
        p->refits++;
        log_debug("namespace %u: %u prototypes refitted on %zu of %zu entries in %" PRIu64 " us",
                  ns->id, proto_count(c->ps), n, count, mono_us() - t0);
    }
    free(buf);
}

static void on_refit(evutil_socket_t fd, short what, void *arg)
{
    peers_t *p = arg;
    (void)fd;
    (void)what;
    for (ns_t *ns = p->d->namespaces; ns; ns = ns->next)
        if (ns->cluster && ns->cluster->refit_wanted) refit_ns(p, ns);
}

void peers_entry_added(daemon_t *d, ns_t *ns, const float *unit)
{
    peers_t *p = d->peers;
    if (!p) return;
    ns_cluster_t *c = cluster_of(d, ns);
    if (!c) return;
    proto_add(c->ps, unit);
    c->changes++;
    p->protos_dirty = 1;
    /* A zero timeout runs after the current read callback, so a pipelined
     * batch of puts is refitted once, after its last put. */
    if (++c->puts_since_refit >= d->cfg.prototype_refresh_puts && !c->refit_wanted) {
        c->refit_wanted = 1;
        arm_ms(p->refit, 0);
    }
}

void peers_entry_removed(daemon_t *d, ns_t *ns, uint64_t id)
{
    ns_cluster_t *c = ns->cluster;
    if (!c || !d->peers) return;
    const float *v = index_vector(ns->index, id);
    if (!v) return;
    proto_remove(c->ps, v);
    c->changes++;
    d->peers->protos_dirty = 1;
}

/* ---- the table ---- */

static peer_t *find_peer(peers_t *p, const char *id, uint32_t *at)
{
    for (uint32_t i = 0; i < p->n_peers; i++) {
        if (strcmp(p->peers[i]->hdr.id, id) == 0) {
            if (at) *at = i;
            return p->peers[i];
        }
    }
    return NULL;
}

static uint64_t protos_bytes(const noderec_protos_t *np)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < np->n_ns; i++)
        n += (uint64_t)np->ns[i].k * (np->ns[i].dim + 1) * 4 + sizeof *np->ns;
    return n;
}

static void peer_free(peer_t *pe)
{
    noderec_protos_free(&pe->protos);
    free(pe);
}

static void remove_peer(peers_t *p, const char *id, const char *why)
{
    uint32_t i;
    peer_t *pe = find_peer(p, id, &i);
    if (!pe) return;
    log_info("node %s left the feature table (%s)", id, why);
    p->table_bytes -= protos_bytes(&pe->protos);
    peer_free(pe);
    p->peers[i] = p->peers[--p->n_peers];
}

static peer_t *add_peer(peers_t *p, const noderec_hdr_t *h)
{
    peer_t *pe = find_peer(p, h->id, NULL);
    if (pe) return pe;
    if (p->n_peers >= PEERS_MAX) return NULL;
    if (p->n_peers % 16 == 0) {
        peer_t **a = realloc(p->peers, (p->n_peers + 16) * sizeof *a);
        if (!a) return NULL;
        p->peers = a;
    }
    pe = calloc(1, sizeof *pe);
    if (!pe) return NULL;
    pe->hdr = *h;
    pe->epoch = p->epoch;
    p->peers[p->n_peers++] = pe;
    log_info("node %s (%s) joined the feature table", h->id, h->addr);
    return pe;
}

static void ignored(peers_t *p, const char *id, const char *why)
{
    p->records_ignored++;
    /* Once per node at warn level, so a foreign writer cannot flood the log. */
    if (p->records_ignored <= 16)
        log_warn("redis: ignoring the record of '%.64s': %s", id, why);
    else
        log_debug("redis: ignoring the record of '%.64s': %s", id, why);
}

/* ---- redis: connection ---- */

static void go_down(peers_t *p, const char *why);
static void publish(peers_t *p);
static void refresh(peers_t *p);

static void make_key(char *out, const char *id)
{
    snprintf(out, KEY_MAX, "%s%s", KEY_PREFIX, id);
}

static void on_setup_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    peers_t *p = priv;
    redisReply *r = reply;
    (void)ac;
    if (!r || p->closing) return;
    if (r->type == REDIS_REPLY_ERROR) {
        char why[200];
        snprintf(why, sizeof why, "AUTH/SELECT refused: %.150s", r->str);
        go_down(p, why);
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    peers_t *p = ac->data;
    int is_cmd = ac == p->cmd, is_sub = ac == p->sub;
    if (!is_cmd && !is_sub) return;
    if (status != REDIS_OK) {
        char why[200];
        snprintf(why, sizeof why, "%.150s", ac->errstr ? ac->errstr : "connect failed");
        /* hiredis frees this context when we return. */
        if (is_cmd) p->cmd = NULL;
        else p->sub = NULL;
        go_down(p, why);
        return;
    }
    if (is_cmd) p->cmd_up = 1;
    else p->sub_up = 1;
    if (!p->cmd_up || !p->sub_up) return;

    evtimer_del(p->retry);
    p->state = S_UP;
    p->up_us = mono_us();
    p->backoff_ms = BACKOFF_MIN_MS;
    p->warned = 0;
    if (p->ever_up) p->reconnects++;
    log_info("redis %s connected%s", p->redis_desc, p->ever_up ? ": publishing again" : "");
    p->ever_up = 1;
    p->need_full = 1;
    publish(p);
    refresh(p);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    peers_t *p = ac->data;
    int is_cmd = ac == p->cmd, is_sub = ac == p->sub;
    if (!is_cmd && !is_sub) return;   /* one we dropped ourselves */
    char why[200];
    snprintf(why, sizeof why, "%.150s",
             status == REDIS_OK ? "closed" : (ac->errstr ? ac->errstr : "error"));
    if (is_cmd) p->cmd = NULL;
    else p->sub = NULL;
    go_down(p, why);
}

static void on_message(redisAsyncContext *ac, void *reply, void *priv);

static redisAsyncContext *open_ctx(peers_t *p, char *why, size_t n)
{
    redisAsyncContext *ac = p->ra.is_unix ? redisAsyncConnectUnix(p->ra.path)
                                          : redisAsyncConnect(p->ra.host, p->ra.port);
    if (!ac) {
        snprintf(why, n, "out of memory");
        return NULL;
    }
    if (ac->err) {
        snprintf(why, n, "%.150s", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = p;
    if (redisLibeventAttach(ac, p->d->base) != REDIS_OK) {
        snprintf(why, n, "cannot attach to the event loop");
        redisAsyncFree(ac);
        return NULL;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (p->ra.pass[0]) {
        int rc = p->ra.user[0]
                     ? redisAsyncCommand(ac, on_setup_reply, p, "AUTH %s %s", p->ra.user, p->ra.pass)
                     : redisAsyncCommand(ac, on_setup_reply, p, "AUTH %s", p->ra.pass);
        /* On a fresh context only out of memory refuses a command; without
         * AUTH every later command would be refused, so this try fails. */
        if (rc != REDIS_OK) {
            snprintf(why, n, "cannot queue AUTH (out of memory)");
            redisAsyncFree(ac);
            return NULL;
        }
    }
    return ac;
}

static void start_connect(peers_t *p)
{
    char why[200] = "";
    p->state = S_CONNECTING;
    p->cmd_up = p->sub_up = 0;
    p->cmd = open_ctx(p, why, sizeof why);
    if (p->cmd) p->sub = open_ctx(p, why, sizeof why);
    if (!p->cmd || !p->sub) {
        go_down(p, why);
        return;
    }
    /* Without SELECT the record would land in another database, without
     * SUBSCRIBE no change event would arrive: a try missing either fails
     * (only out of memory refuses a command on a fresh context). Not inside
     * a hiredis callback here, so go_down may free both contexts. */
    if (p->ra.db &&
        redisAsyncCommand(p->cmd, on_setup_reply, p, "SELECT %d", p->ra.db) != REDIS_OK) {
        go_down(p, "cannot queue SELECT (out of memory)");
        return;
    }
    /* The channel callback stays registered for the life of the context. */
    if (redisAsyncCommand(p->sub, on_message, p, "SUBSCRIBE %s", CHANNEL) != REDIS_OK) {
        go_down(p, "cannot queue SUBSCRIBE (out of memory)");
        return;
    }
    arm_ms(p->retry, CONNECT_TIMEOUT_MS);
}

static void drop_contexts(peers_t *p)
{
    redisAsyncContext *c = p->cmd, *s = p->sub;
    p->cmd = p->sub = NULL;
    p->cmd_up = p->sub_up = 0;
    if (c) redisAsyncFree(c);
    if (s) redisAsyncFree(s);
}

static void go_down(peers_t *p, const char *why)
{
    int was_up = p->state == S_UP;
    p->state = S_DOWN;
    p->stale = 1;
    p->refreshing = 0;
    p->epoch++;                       /* replies still in flight are void */
    drop_contexts(p);
    if (p->closing) return;
    if (was_up)
        log_warn("redis %s lost (%s): local service goes on, feature table marked stale; "
                 "reconnecting with backoff", p->redis_desc, why);
    else if (!p->warned)
        log_warn("redis %s unreachable (%s): local service goes on; retrying with backoff",
                 p->redis_desc, why);
    else
        log_debug("redis %s still unreachable (%s)", p->redis_desc, why);
    p->warned = 1;
    /* Exponential backoff with jitter (75%..125%), so a fleet that lost
     * Redis together does not reconnect in lockstep. */
    uint32_t ms = p->backoff_ms;
    ms = ms * 3 / 4 + (uint32_t)(splitmix64(&p->rng) % (ms / 2 + 1));
    p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff_ms * 2;
    evtimer_del(p->retry);
    arm_ms(p->retry, ms);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    peers_t *p = arg;
    (void)fd;
    (void)what;
    if (p->state == S_CONNECTING) go_down(p, "connect timed out");
    else if (p->state == S_DOWN) start_connect(p);
    else if (p->state == S_UP) go_down(p, "a command could not be queued");   /* see publish */
}

/* ---- redis: publishing ---- */

static uint32_t clamp_u32(uint64_t v) { return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v; }

/* Encode this node's protos value. Namespaces beyond the record's bounds
 * are left out (logged once). */
static void encode_protos(peers_t *p, proto_wr_t *w)
{
    daemon_t *d = p->d;
    uint32_t n = 0;
    size_t bytes = 20;
    for (ns_t *ns = d->namespaces; ns; ns = ns->next) {
        if (!ns->cluster || !proto_count(ns->cluster->ps)) continue;
        size_t b = noderec_ns_bytes(ns->dim, proto_count(ns->cluster->ps));
        if (n == NODEREC_MAX_NS || bytes + b > NODEREC_MAX_BYTES) continue;
        n++;
        bytes += b;
    }
    noderec_protos_begin(w, p->seq, n);
    uint32_t done = 0;
    size_t written = 20;
    for (ns_t *ns = d->namespaces; ns && done < n; ns = ns->next) {
        if (!ns->cluster || !proto_count(ns->cluster->ps)) continue;
        const proto_set_t *ps = ns->cluster->ps;
        uint32_t k = proto_count(ps);
        size_t b = noderec_ns_bytes(ns->dim, k);
        if (written + b > NODEREC_MAX_BYTES) continue;
        uint32_t counts[PROTO_MAX_K];
        for (uint32_t i = 0; i < k; i++) {
            counts[i] = clamp_u32(proto_weight(ps, i));
            if (!counts[i]) counts[i] = 1;
        }
        /* Centroids are contiguous rows in the set. */
        noderec_protos_add_ns(w, ns->cluster->hash, ns->dim, k, counts, proto_centroid(ps, 0));
        written += b;
        done++;
    }
    if (done < n && !w->err) w->err = 1;   /* namespaces changed under us: impossible */
}

/* Reply to the EXEC of a heartbeat; full: the write carried the protos. */
static void published(peers_t *p, const redisReply *r, int full)
{
    if (!r || p->closing || p->state != S_UP) return;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_INTEGER) {
        p->warned_write = 0;
        /* The key was gone (it expired, or Redis lost it) and this write
         * carried only the hdr: write the whole record now. */
        if (r->element[0]->integer == 0 && !full) {
            p->need_full = 1;
            publish(p);
        }
        return;
    }
    if (!p->warned_write)
        log_warn("redis: writing the node record failed: %.200s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    p->warned_write = 1;
    p->need_full = 1;
}

static void on_published(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    published(priv, reply, 0);
}

static void on_published_full(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    published(priv, reply, 1);
}

static void publish(peers_t *p)
{
    if (p->state != S_UP || !p->cmd) return;
    daemon_t *d = p->d;
    int full = p->need_full || p->protos_dirty;
    if (p->protos_dirty) {
        p->seq++;
        p->protos_dirty = 0;
    }
    store_stats_t st;
    store_get_stats(d->store, &st);
    noderec_hdr_t h = { .seq = p->seq, .time_ms = now_us() / 1000u, .entries = st.entries,
                        .bytes = st.bytes_used, .capacity = st.capacity, .rate = p->rate };
    snprintf(h.id, sizeof h.id, "%s", p->node_id);
    snprintf(h.addr, sizeof h.addr, "%s", p->advertise);
    proto_wr_t hw, pw;
    proto_wr_init(&hw);
    proto_wr_init(&pw);
    noderec_hdr_encode(&hw, &h);
    if (full) encode_protos(p, &pw);
    if (hw.err || pw.err) {
        log_warn("redis: cannot encode the node record (out of memory)");
        p->need_full = 1;
        goto out;
    }
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%u", d->cfg.node_ttl_ms);
    const char *hset[] = { "HSET", p->key, "v", "1", "hdr", (const char *)hw.buf, "protos",
                           (const char *)pw.buf };
    size_t hlen[] = { 4, strlen(p->key), 1, 1, 3, hw.len, 6, pw.len };
    /* hiredis refuses a command only when out of memory or when the context
     * is already going away. Either way the connection may now hold an
     * open MULTI or half a record: drop it and reconnect. Not from here
     * (publish runs inside hiredis's connect callback, where the context
     * must not be freed): the retry timer does it on the next loop turn. */
    int ok = redisAsyncCommand(p->cmd, NULL, NULL, "MULTI") == REDIS_OK &&
             redisAsyncCommand(p->cmd, NULL, NULL, "EXISTS %s", p->key) == REDIS_OK &&
             redisAsyncCommandArgv(p->cmd, NULL, NULL, full ? 8 : 6, hset, hlen) == REDIS_OK &&
             redisAsyncCommand(p->cmd, NULL, NULL, "PEXPIRE %s %s", p->key, ttl) == REDIS_OK &&
             redisAsyncCommand(p->cmd, NULL, NULL, "SADD %s %s", NODES_KEY, p->node_id) == REDIS_OK &&
             redisAsyncCommand(p->cmd, full ? on_published_full : on_published, p, "EXEC") == REDIS_OK;
    if (ok && full) {
        char msg[NODEREC_MAX_ID + 32];
        snprintf(msg, sizeof msg, "up:%s:%" PRIu64, p->node_id, p->seq);
        ok = redisAsyncCommand(p->cmd, NULL, NULL, "PUBLISH %s %s", CHANNEL, msg) == REDIS_OK;
    }
    if (!ok) {
        log_warn("redis %s: cannot queue the node record write (seq %" PRIu64 "); reconnecting",
                 p->redis_desc, p->seq);
        p->need_full = 1;
        arm_ms(p->retry, 0);
        goto out;
    }
    p->publishes++;
    p->ever_published = 1;
    if (full) {
        p->need_full = 0;
        p->record_bytes = hw.len + pw.len;
    }
out:
    proto_wr_free(&hw);
    proto_wr_free(&pw);
}

/* ---- redis: reading the table ---- */

static fetch_t *new_fetch(peers_t *p, const char *id, uint64_t epoch)
{
    fetch_t *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->p = p;
    f->epoch = epoch;
    snprintf(f->id, sizeof f->id, "%s", id);
    return f;
}

static int is_str(const redisReply *r) { return r->type == REDIS_REPLY_STRING; }
static int is_nil(const redisReply *r) { return r->type == REDIS_REPLY_NIL; }

/* Check v and hdr of a record read for id; 0 with *h filled, 1 if the key is
 * gone, -1 if it is malformed or foreign (counted). */
static int check_hdr(peers_t *p, const char *id, const redisReply *v, const redisReply *hdr,
                     noderec_hdr_t *h)
{
    if (is_nil(v) && is_nil(hdr)) return 1;
    if (!is_str(v) || v->len != 1 || v->str[0] != '1') {
        ignored(p, id, "unknown record version (field v)");
        return -1;
    }
    if (!is_str(hdr) || noderec_hdr_decode(hdr->str, hdr->len, h)) {
        ignored(p, id, "malformed hdr");
        return -1;
    }
    if (strcmp(h->id, id) != 0) {
        ignored(p, id, "hdr names another node");
        return -1;
    }
    return 0;
}

static void key_gone(peers_t *p, const char *id)
{
    remove_peer(p, id, "its key expired");
    /* The node set is only an index of keys: prune it for everyone. */
    if (p->cmd) redisAsyncCommand(p->cmd, NULL, NULL, "SREM %s %s", NODES_KEY, id);
}

static void on_protos(redisAsyncContext *ac, void *reply, void *priv)
{
    fetch_t *f = priv;
    peers_t *p = f->p;
    redisReply *r = reply;
    (void)ac;
    if (!r || p->closing || p->state != S_UP) goto out;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        ignored(p, f->id, r->type == REDIS_REPLY_ERROR ? r->str : "not a hash");
        goto out;
    }
    noderec_hdr_t h;
    int rc = check_hdr(p, f->id, r->element[0], r->element[1], &h);
    if (rc == 1) key_gone(p, f->id);
    if (rc) goto out;
    const redisReply *pr = r->element[2];
    if (is_nil(pr)) goto out;             /* hdr written before protos: next time */
    noderec_protos_t np;
    int drc = is_str(pr) ? noderec_protos_decode(pr->str, pr->len, &np) : -1;
    if (drc || np.seq != h.seq) {
        if (drc != -2) {
            ignored(p, f->id, drc ? "malformed protos" : "protos out of step with hdr");
            peer_t *bad = find_peer(p, f->id, NULL);
            if (bad) bad->bad_seq = h.seq;
        }
        noderec_protos_free(&np);
        goto out;
    }
    peer_t *pe = add_peer(p, &h);
    if (!pe) {
        ignored(p, f->id, "feature table full (or out of memory)");
        noderec_protos_free(&np);
        goto out;
    }
    uint64_t had = protos_bytes(&pe->protos), has = protos_bytes(&np);
    if (p->table_bytes - had + has > TABLE_MAX_BYTES) {
        ignored(p, f->id, "feature table over its memory bound");
        noderec_protos_free(&np);
        goto out;
    }
    p->table_bytes = p->table_bytes - had + has;
    noderec_protos_free(&pe->protos);
    pe->protos = np;
    pe->have_protos = 1;
    pe->hdr = h;
    pe->seen_us = mono_us();
    pe->record_bytes = r->element[1]->len + pr->len;
    log_debug("node %s: prototypes seq %" PRIu64 " (%u namespaces, %zu bytes)", h.id, h.seq,
              np.n_ns, (size_t)pr->len);
out:
    free(f);
}

static void fetch_protos(peers_t *p, const char *id)
{
    char key[KEY_MAX];
    fetch_t *f = new_fetch(p, id, 0);
    if (!f || !p->cmd) {
        free(f);
        return;
    }
    make_key(key, id);
    if (redisAsyncCommand(p->cmd, on_protos, f, "HMGET %s v hdr protos", key) != REDIS_OK)
        free(f);
}

static void finish_refresh(peers_t *p)
{
    p->refreshing = 0;
    if (p->refresh_failed) return;
    /* For one TTL after a (re)connect, a peer missing from the node set may
     * just not have written again yet (a restarted Redis starts empty): keep
     * it, so the table does not flap. After that, missing means gone. */
    int grace = mono_us() - p->up_us < (uint64_t)p->d->cfg.node_ttl_ms * 1000u;
    for (uint32_t i = 0; i < p->n_peers && !grace;) {
        if (p->peers[i]->epoch != p->epoch) {
            /* Not in the node set, or its key is gone or unreadable. */
            char id[NODEREC_MAX_ID + 1];
            snprintf(id, sizeof id, "%s", p->peers[i]->hdr.id);
            remove_peer(p, id, "no live record");
        } else {
            i++;
        }
    }
    if (p->stale) log_info("feature table up to date: %u other nodes", p->n_peers);
    p->stale = 0;
}

static void on_hdr(redisAsyncContext *ac, void *reply, void *priv)
{
    fetch_t *f = priv;
    peers_t *p = f->p;
    redisReply *r = reply;
    (void)ac;
    if (r && !p->closing && p->state == S_UP) {
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            ignored(p, f->id, r->type == REDIS_REPLY_ERROR ? r->str : "not a hash");
        } else {
            noderec_hdr_t h;
            int rc = check_hdr(p, f->id, r->element[0], r->element[1], &h);
            if (rc == 1) key_gone(p, f->id);
            peer_t *pe = rc == 0 ? add_peer(p, &h) : NULL;
            if (rc == 0 && !pe) ignored(p, f->id, "feature table full (or out of memory)");
            if (pe) {
                pe->hdr = h;
                pe->seen_us = mono_us();
                if (f->epoch) pe->epoch = f->epoch;
                if ((!pe->have_protos || pe->protos.seq != h.seq) && pe->bad_seq != h.seq)
                    fetch_protos(p, f->id);
            }
        }
    }
    if (f->epoch && f->epoch == p->epoch && p->refreshing) {
        if (!r) p->refresh_failed = 1;
        if (--p->pending == 0) finish_refresh(p);
    }
    free(f);
}

static void fetch_hdr(peers_t *p, const char *id, uint64_t epoch)
{
    char key[KEY_MAX];
    fetch_t *f = new_fetch(p, id, epoch);
    if (!f || !p->cmd) {
        if (epoch) p->refresh_failed = 1;
        free(f);
        return;
    }
    make_key(key, id);
    if (redisAsyncCommand(p->cmd, on_hdr, f, "HMGET %s v hdr", key) != REDIS_OK) {
        if (epoch) p->refresh_failed = 1;
        free(f);
        return;
    }
    if (epoch) p->pending++;
}

static void on_members(redisAsyncContext *ac, void *reply, void *priv)
{
    fetch_t *f = priv;
    peers_t *p = f->p;
    redisReply *r = reply;
    (void)ac;
    if (!r || p->closing || p->state != S_UP || f->epoch != p->epoch || !p->refreshing) goto out;
    if (r->type != REDIS_REPLY_ARRAY) {
        ignored(p, NODES_KEY, r->type == REDIS_REPLY_ERROR ? r->str : "not a set");
        p->refreshing = 0;
        goto out;
    }
    p->pending = 1;                       /* held until every fetch is sent */
    p->refresh_failed = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *m = r->element[i];
        if (!is_str(m)) continue;
        if (!noderec_id_valid(m->str, m->len)) {
            char shown[NODEREC_MAX_ID + 1];
            snprintf(shown, sizeof shown, "%.*s", (int)(m->len < NODEREC_MAX_ID ? m->len : NODEREC_MAX_ID), m->str);
            ignored(p, shown, "not a node id");
            continue;
        }
        if (m->len == strlen(p->node_id) && memcmp(m->str, p->node_id, m->len) == 0) continue;
        char id[NODEREC_MAX_ID + 1];
        memcpy(id, m->str, m->len);
        id[m->len] = 0;
        fetch_hdr(p, id, f->epoch);
    }
    if (--p->pending == 0) finish_refresh(p);
out:
    free(f);
}

static void refresh(peers_t *p)
{
    if (p->state != S_UP || !p->cmd || p->refreshing) return;
    fetch_t *f = new_fetch(p, "", ++p->epoch);
    if (!f) return;
    p->refreshing = 1;
    p->refresh_started_us = mono_us();
    if (redisAsyncCommand(p->cmd, on_members, f, "SMEMBERS %s", NODES_KEY) != REDIS_OK) {
        p->refreshing = 0;
        free(f);
    }
}

/* Channel messages: "up:NODE:SEQ" (record changed) and "down:NODE" (left). */
static void on_message(redisAsyncContext *ac, void *reply, void *priv)
{
    peers_t *p = priv;
    redisReply *r = reply;
    (void)ac;
    if (!r || p->closing || r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
    const redisReply *kind = r->element[0], *msg = r->element[2];
    if (!is_str(kind) || strcmp(kind->str, "message") != 0) return;
    if (p->state != S_UP) return;
    char buf[128], *colon, *end;
    if (!is_str(msg) || msg->len >= sizeof buf || memchr(msg->str, 0, msg->len)) goto bad;
    memcpy(buf, msg->str, msg->len);
    buf[msg->len] = 0;
    if (strncmp(buf, "up:", 3) == 0 && (colon = strchr(buf + 3, ':'))) {
        *colon = 0;
        const char *id = buf + 3;
        errno = 0;
        unsigned long long seq = strtoull(colon + 1, &end, 10);
        if (!noderec_id_valid(id, strlen(id)) || *end || errno || colon[1] < '0' || colon[1] > '9')
            goto bad;
        if (strcmp(id, p->node_id) == 0) return;
        peer_t *pe = find_peer(p, id, NULL);
        if (!pe) fetch_hdr(p, id, 0);
        else if ((!pe->have_protos || pe->protos.seq != seq) && pe->bad_seq != seq)
            fetch_protos(p, id);
        return;
    }
    if (strncmp(buf, "down:", 5) == 0 && noderec_id_valid(buf + 5, strlen(buf + 5))) {
        if (strcmp(buf + 5, p->node_id)) remove_peer(p, buf + 5, "it announced its shutdown");
        return;
    }
bad:
    p->records_ignored++;
    log_debug("redis: ignoring a message on %s that is not ours", CHANNEL);
}

/* ---- heartbeat ---- */

static void update_rate(peers_t *p, uint64_t now)
{
    const counters_t *s = &p->d->stats;
    uint64_t ops = s->lookups + s->puts + s->gets;
    if (p->last_rate_us && now > p->last_rate_us) {
        double inst = (double)(ops - p->last_ops) * 1e6 / (double)(now - p->last_rate_us);
        p->rate = (float)(0.5 * p->rate + 0.5 * inst);
    }
    p->last_ops = ops;
    p->last_rate_us = now;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    peers_t *p = arg;
    daemon_t *d = p->d;
    (void)fd;
    (void)what;
    uint64_t now = mono_us();
    update_rate(p, now);
    for (ns_t *ns = d->namespaces; ns; ns = ns->next) {
        ns_cluster_t *c = ns->cluster;
        if (c && c->changes && now - c->last_refit_us >= (uint64_t)d->cfg.prototype_refresh_ms * 1000u)
            refit_ns(p, ns);
    }
    /* A Redis that accepts but never answers (stopped, wedged) is as good
     * as gone once a whole TTL passed without a reply. */
    if (p->state == S_UP && p->refreshing &&
        now - p->refresh_started_us > (uint64_t)d->cfg.node_ttl_ms * 1000u)
        go_down(p, "no reply within node_ttl_ms");
    if (p->state == S_UP) {
        publish(p);
        refresh(p);
    }
    arm_ms(p->tick, d->cfg.heartbeat_ms);
}

/* ---- configuration ---- */

/* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or unix:///PATH[?db=N]. */
static int parse_url(const char *url, redis_addr_t *a, char *err, size_t n)
{
    memset(a, 0, sizeof *a);
    a->port = 6379;
    char *end;
    if (strncmp(url, "unix://", 7) == 0) {
        const char *path = url + 7, *q = strchr(path, '?');
        size_t len = q ? (size_t)(q - path) : strlen(path);
        if (path[0] != '/' || len == 0 || len >= sizeof a->path) {
            snprintf(err, n, "unix:// needs an absolute socket path under %zu bytes", sizeof a->path);
            return -1;
        }
        memcpy(a->path, path, len);
        a->is_unix = 1;
        if (q) {
            if (strncmp(q, "?db=", 4) != 0 || q[4] < '0' || q[4] > '9') goto bad_db;
            long db = strtol(q + 4, &end, 10);
            if (*end || db < 0 || db > 1000000) goto bad_db;
            a->db = (int)db;
        }
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, n, "redis_url must start with redis:// or unix://");
        return -1;
    }
    const char *s = url + 8, *at = strrchr(s, '@');
    if (at) {
        const char *colon = memchr(s, ':', (size_t)(at - s));
        if (!colon || (size_t)(colon - s) >= sizeof a->user ||
            (size_t)(at - colon - 1) >= sizeof a->pass) {
            snprintf(err, n, "redis_url credentials must be [USER]:PASSWORD@");
            return -1;
        }
        memcpy(a->user, s, (size_t)(colon - s));
        memcpy(a->pass, colon + 1, (size_t)(at - colon - 1));
        s = at + 1;
    }
    const char *hs = s, *he;
    if (*s == '[') {
        he = strchr(s, ']');
        if (!he) {
            snprintf(err, n, "redis_url: unterminated [IPv6 address]");
            return -1;
        }
        hs = s + 1;
        s = he + 1;
    } else {
        he = s + strcspn(s, ":/");
        s = he;
    }
    if (he == hs || (size_t)(he - hs) >= sizeof a->host) {
        snprintf(err, n, "redis_url: missing or over-long host");
        return -1;
    }
    memcpy(a->host, hs, (size_t)(he - hs));
    if (*s == ':') {
        long port = strtol(s + 1, &end, 10);
        if (end == s + 1 || port < 1 || port > 65535 || (*end && *end != '/')) {
            snprintf(err, n, "redis_url: port must be 1..65535");
            return -1;
        }
        a->port = (int)port;
        s = end;
    }
    if (*s == '/' && s[1]) {
        if (s[1] < '0' || s[1] > '9') goto bad_db;
        long db = strtol(s + 1, &end, 10);
        if (*end || db < 0 || db > 1000000) goto bad_db;
        a->db = (int)db;
    } else if (*s && strcmp(s, "/") != 0) {
        snprintf(err, n, "redis_url: unexpected '%.32s'", s);
        return -1;
    }
    return 0;
bad_db:
    snprintf(err, n, "redis_url: database must be a number");
    return -1;
}

static void host_name(char *out, size_t n)
{
    char h[256] = "";
    if (gethostname(h, sizeof h - 1) || !h[0]) snprintf(h, sizeof h, "localhost");
    h[sizeof h - 1] = 0;
    snprintf(out, n, "%s", h);
}

/* Default id: the host name (characters outside the id alphabet become '-',
 * at most 40 of them) and a hash of the client socket path, so two daemons
 * on one host differ and a restarted daemon keeps its id. */
static void default_node_id(const config_t *cfg, char *out, size_t n)
{
    char h[256];
    host_name(h, sizeof h);
    h[40] = 0;
    for (char *c = h; *c; c++)
        if (!noderec_id_valid(c, 1)) *c = '-';
    snprintf(out, n, "%.40s-%08x", h, (unsigned)XXH64(cfg->socket, strlen(cfg->socket), 0));
}

static int set_advertise(peers_t *p, const config_t *cfg)
{
    char a[NODEREC_MAX_ADDR + 1];
    if (cfg->advertise[0]) {
        snprintf(a, sizeof a, "%s", cfg->advertise);
    } else {
        char h[256];
        host_name(h, sizeof h);
        snprintf(a, sizeof a, "%.100s:%s", h, cfg->socket);
    }
    /* The hdr decoder's rule, checked here so our own record is valid. */
    noderec_hdr_t probe = { .rate = 0 };
    proto_wr_t w;
    snprintf(probe.id, sizeof probe.id, "%s", p->node_id);
    snprintf(probe.addr, sizeof probe.addr, "%s", a);
    proto_wr_init(&w);
    noderec_hdr_encode(&w, &probe);
    int ok = !w.err && noderec_hdr_decode(w.buf, w.len, &probe) == 0;
    proto_wr_free(&w);
    if (!ok) {
        log_error("advertise '%.64s': must be at most %d bytes of printable UTF-8", a,
                  NODEREC_MAX_ADDR);
        return -1;
    }
    memcpy(p->advertise, a, sizeof a);
    return 0;
}

int peers_init(daemon_t *d)
{
    peers_t *p = calloc(1, sizeof *p);
    if (!p) return -1;
    p->d = d;
    d->peers = p;
    p->rng = d->seed ^ now_us() ^ ((uint64_t)getpid() << 32);
    p->seq = now_us() / 1000u;        /* a restarted node never reuses a sequence */
    p->backoff_ms = BACKOFF_MIN_MS;
    if (d->cfg.node_id[0]) {
        if (!noderec_id_valid(d->cfg.node_id, strlen(d->cfg.node_id))) {
            log_error("node_id '%.64s': 1..%d characters of [A-Za-z0-9._:-]", d->cfg.node_id,
                      NODEREC_MAX_ID);
            return -1;
        }
        snprintf(p->node_id, sizeof p->node_id, "%s", d->cfg.node_id);
    } else {
        default_node_id(&d->cfg, p->node_id, sizeof p->node_id);
    }
    make_key(p->key, p->node_id);
    if (set_advertise(p, &d->cfg)) return -1;
    p->tick = evtimer_new(d->base, on_tick, p);
    p->retry = evtimer_new(d->base, on_retry, p);
    p->refit = evtimer_new(d->base, on_refit, p);
    if (!p->tick || !p->retry || !p->refit) return -1;
    arm_ms(p->tick, d->cfg.heartbeat_ms);
    if (d->cfg.node_ttl_ms < 2 * d->cfg.heartbeat_ms)
        log_warn("node_ttl_ms %u is under two heartbeats (%u ms): a busy node may drop out of "
                 "the table", d->cfg.node_ttl_ms, 2 * d->cfg.heartbeat_ms);
    if (!d->cfg.redis_url[0]) {
        p->state = S_OFF;
        log_info("node %s: no redis_url, single node (route answers this node)", p->node_id);
        return 0;
    }
    char err[200];
    if (parse_url(d->cfg.redis_url, &p->ra, err, sizeof err)) {
        log_error("%s", err);
        return -1;
    }
    if (p->ra.is_unix)
        snprintf(p->redis_desc, sizeof p->redis_desc, "unix://%.100s%s", p->ra.path,
                 p->ra.db ? " (db set)" : "");
    else
        snprintf(p->redis_desc, sizeof p->redis_desc, "redis://%s%.80s:%d/%d",
                 p->ra.pass[0] ? "***@" : "", p->ra.host, p->ra.port, p->ra.db);
    p->stale = 1;
    log_info("node %s (%s): feature table in %s, heartbeat %u ms, ttl %u ms", p->node_id,
             p->advertise, p->redis_desc, d->cfg.heartbeat_ms, d->cfg.node_ttl_ms);
    start_connect(p);
    return 0;
}

void peers_apply_config(daemon_t *d)
{
    peers_t *p = d->peers;
    if (!p) return;
    if (set_advertise(p, &d->cfg)) log_warn("advertise unchanged: %s", p->advertise);
    evtimer_del(p->tick);
    arm_ms(p->tick, d->cfg.heartbeat_ms);
}

/* Delete our key and say so, over a short blocking connection: the event
 * loop is gone by now, and a node that cannot say goodbye just expires. */
static void leave(peers_t *p)
{
    struct timeval tv = { 0, LEAVE_TIMEOUT_MS * 1000 };
    redisContext *c = p->ra.is_unix ? redisConnectUnixWithTimeout(p->ra.path, tv)
                                    : redisConnectWithTimeout(p->ra.host, p->ra.port, tv);
    if (!c) return;
    if (c->err || redisSetTimeout(c, tv) != REDIS_OK) {
        redisFree(c);
        return;
    }
    int n = 0;
    if (p->ra.pass[0]) {
        if (p->ra.user[0]) redisAppendCommand(c, "AUTH %s %s", p->ra.user, p->ra.pass);
        else redisAppendCommand(c, "AUTH %s", p->ra.pass);
        n++;
    }
    if (p->ra.db) {
        redisAppendCommand(c, "SELECT %d", p->ra.db);
        n++;
    }
    redisAppendCommand(c, "DEL %s", p->key);
    redisAppendCommand(c, "SREM %s %s", NODES_KEY, p->node_id);
    redisAppendCommand(c, "PUBLISH %s down:%s", CHANNEL, p->node_id);
    n += 3;
    for (int i = 0; i < n; i++) {
        void *r = NULL;
        if (redisGetReply(c, &r) != REDIS_OK) break;
        freeReplyObject(r);
    }
    redisFree(c);
}

void peers_free(daemon_t *d)
{
    peers_t *p = d->peers;
    if (!p) return;
    p->closing = 1;
    drop_contexts(p);
    if (p->state != S_OFF && p->ever_published) leave(p);
    if (p->tick) event_free(p->tick);
    if (p->retry) event_free(p->retry);
    if (p->refit) event_free(p->refit);
    for (uint32_t i = 0; i < p->n_peers; i++) peer_free(p->peers[i]);
    free(p->peers);
    d->peers = NULL;
    free(p);
}

/* ---- routing ---- */

static float norm_load(float rate, float max_rate)
{
    /* Relative to the busiest node, and never from noise: below one request
     * a second nothing counts as load. */
    float m = max_rate > 1.0f ? max_rate : 1.0f;
    float l = rate / m;
    return l > 1.0f ? 1.0f : (l < 0 ? 0 : l);
}

static const noderec_ns_t *peer_ns(const peer_t *pe, const uint8_t *hash, uint32_t dim)
{
    if (!pe->have_protos) return NULL;
    for (uint32_t i = 0; i < pe->protos.n_ns; i++)
        if (pe->protos.ns[i].dim == dim && memcmp(pe->protos.ns[i].hash, hash, NODEREC_HASH_LEN) == 0)
            return &pe->protos.ns[i];
    return NULL;
}

void peers_route(daemon_t *d, ns_t *ns, const float *unit, route_t *out)
{
    peers_t *p = d->peers;
    memset(out, 0, sizeof *out);
    out->flags = SIMCACHE_ROUTE_LOCAL;
    if (!p) return;
    snprintf(out->node_id, sizeof out->node_id, "%s", p->node_id);
    snprintf(out->addr, sizeof out->addr, "%s", p->advertise);
    if (p->state != S_OFF && p->stale) out->flags |= SIMCACHE_ROUTE_STALE;
    ns_cluster_t *c = cluster_of(d, ns);
    double w = d->cfg.route_load_weight;
    float max_rate = p->rate;
    for (uint32_t i = 0; i < p->n_peers; i++)
        if (p->peers[i]->hdr.rate > max_rate) max_rate = p->peers[i]->hdr.rate;

    int found = 0;
    float best_score = 0;
    if (c && proto_count(c->ps)) {
        out->similarity = proto_best(c->ps, unit, NULL);
        out->load = norm_load(p->rate, max_rate);
        out->score = (float)(out->similarity - w * out->load);
        best_score = out->score;
        found = 1;
    }
    if (!c) {
        out->flags |= SIMCACHE_ROUTE_NONE;
        return;
    }
    float sims[NODEREC_MAX_K];
    for (uint32_t i = 0; i < p->n_peers; i++) {
        const peer_t *pe = p->peers[i];
        const noderec_ns_t *pn = peer_ns(pe, c->hash, ns->dim);
        if (!pn) continue;
        vec_dot_many(pn->centroids, pn->k, unit, ns->dim, sims);
        float sim = sims[0];
        for (uint32_t j = 1; j < pn->k; j++)
            if (sims[j] > sim) sim = sims[j];
        float load = norm_load(pe->hdr.rate, max_rate);
        float score = (float)(sim - w * load);
        /* Strictly better only: this node wins ties. */
        if (!found || score > best_score) {
            found = 1;
            best_score = score;
            out->similarity = sim;
            out->load = load;
            out->score = score;
            out->flags &= ~SIMCACHE_ROUTE_LOCAL;
            snprintf(out->node_id, sizeof out->node_id, "%s", pe->hdr.id);
            snprintf(out->addr, sizeof out->addr, "%s", pe->hdr.addr);
        }
    }
    if (!found) out->flags |= SIMCACHE_ROUTE_NONE;
}

/* ---- admin views ---- */

void peers_get_info(const daemon_t *d, peers_info_t *info)
{
    const peers_t *p = d->peers;
    memset(info, 0, sizeof *info);
    if (!p) return;
    info->redis_configured = p->state != S_OFF;
    info->redis_connected = p->state == S_UP;
    info->table_stale = p->state != S_OFF && p->stale;
    info->peers = p->n_peers;
    info->records_ignored = p->records_ignored;
    info->reconnects = p->reconnects;
    info->publishes = p->publishes;
    info->refits = p->refits;
    info->record_bytes = p->record_bytes;
    info->node_id = p->node_id;
    info->advertise = p->advertise;
    snprintf(info->redis, sizeof info->redis, "%s", p->redis_desc);
    for (const ns_t *ns = d->namespaces; ns; ns = ns->next)
        if (ns->cluster) info->prototypes += proto_count(ns->cluster->ps);
}

void peers_foreach_node(daemon_t *d, void (*fn)(void *arg, const peer_view_t *v), void *arg)
{
    peers_t *p = d->peers;
    if (!p) return;
    float max_rate = p->rate;
    for (uint32_t i = 0; i < p->n_peers; i++)
        if (p->peers[i]->hdr.rate > max_rate) max_rate = p->peers[i]->hdr.rate;
    store_stats_t st;
    store_get_stats(d->store, &st);
    peer_view_t v = { .node_id = p->node_id, .addr = p->advertise, .self = 1,
                      .entries = st.entries, .bytes = st.bytes_used, .capacity = st.capacity,
                      .rate = p->rate, .load = norm_load(p->rate, max_rate), .seq = p->seq,
                      .record_bytes = p->record_bytes };
    for (const ns_t *ns = d->namespaces; ns; ns = ns->next) {
        if (!ns->cluster || !proto_count(ns->cluster->ps)) continue;
        v.namespaces++;
        v.prototypes += proto_count(ns->cluster->ps);
    }
    fn(arg, &v);
    uint64_t now = mono_us();
    for (uint32_t i = 0; i < p->n_peers; i++) {
        const peer_t *pe = p->peers[i];
        peer_view_t pv = { .node_id = pe->hdr.id, .addr = pe->hdr.addr, .entries = pe->hdr.entries,
                           .bytes = pe->hdr.bytes, .capacity = pe->hdr.capacity,
                           .rate = pe->hdr.rate, .load = norm_load(pe->hdr.rate, max_rate),
                           .seq = pe->hdr.seq, .age_ms = (now - pe->seen_us) / 1000u,
                           .record_bytes = pe->record_bytes };
        for (uint32_t j = 0; pe->have_protos && j < pe->protos.n_ns; j++) {
            pv.namespaces++;
            pv.prototypes += pe->protos.ns[j].k;
        }
        fn(arg, &pv);
    }
}

static void hex(char *out, const uint8_t *h)
{
    for (int i = 0; i < NODEREC_HASH_LEN; i++) snprintf(out + 2 * i, 3, "%02x", h[i]);
}

void peers_foreach_prototype(daemon_t *d, const ns_t *only_ns,
                             void (*fn)(void *arg, const proto_view_t *v), void *arg)
{
    peers_t *p = d->peers;
    if (!p) return;
    for (ns_t *ns = d->namespaces; ns; ns = ns->next) {
        if (only_ns && ns != only_ns) continue;
        ns_cluster_t *c = ns->cluster;
        if (!c) continue;
        proto_view_t v = { .node_id = p->node_id, .self = 1, .ns_name = ns->name, .dim = ns->dim };
        hex(v.ns_hash, c->hash);
        for (uint32_t i = 0; i < proto_count(c->ps); i++) {
            v.index = i;
            v.count = proto_weight(c->ps, i);
            v.centroid = proto_centroid(c->ps, i);
            fn(arg, &v);
        }
    }
    for (uint32_t i = 0; i < p->n_peers; i++) {
        const peer_t *pe = p->peers[i];
        for (uint32_t j = 0; pe->have_protos && j < pe->protos.n_ns; j++) {
            const noderec_ns_t *pn = &pe->protos.ns[j];
            const ns_t *local = NULL;
            for (const ns_t *ns = d->namespaces; ns && !local; ns = ns->next)
                if (ns->cluster && ns->dim == pn->dim &&
                    memcmp(ns->cluster->hash, pn->hash, NODEREC_HASH_LEN) == 0)
                    local = ns;
            if (only_ns && local != only_ns) continue;
            proto_view_t v = { .node_id = pe->hdr.id, .ns_name = local ? local->name : "",
                               .dim = pn->dim };
            hex(v.ns_hash, pn->hash);
            for (uint32_t k = 0; k < pn->k; k++) {
                v.index = k;
                v.count = pn->counts[k];
                v.centroid = pn->centroids + (size_t)k * pn->dim;
                fn(arg, &v);
            }
        }
    }
}
