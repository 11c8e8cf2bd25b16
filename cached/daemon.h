/* daemon.h - the state simcached wires together: loop, listeners, clients,
 * namespaces, tiers and counters, and daemon.c's own functions.
 *
 * Each part's functions are declared in its own header (catalog.h, lease.h,
 * hosttier.h, gputier.h, tier.h, cache.h, server.h, admin.h, reload.h,
 * listener.h; docs/architecture.md draws them). A part calls only parts
 * below it; what must reach up (a promotion's waiters, a GPU entry moved to
 * the host tier, an admin `shutdown`) goes through the function pointers
 * daemon.c sets here. tests/check_calls.py checks that in CI.
 */
#ifndef SIMCACHE_DAEMON_H
#define SIMCACHE_DAEMON_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

struct sockaddr;

#include "catalog.h"
#include "config.h"
#include "lease.h"
#include "simcache.h"
#include "store.h"
#include "u64map.h"

struct event_base;
struct event;
struct evconnlistener;
typedef struct daemon daemon_t;

typedef struct {
    uint64_t lookups, hits, misses, puts, put_bytes, gets, releases, deletes;
    uint64_t connections, rejected_connections, protocol_errors, request_errors;
    uint64_t admin_commands, admin_rejected;
    uint64_t idle_closed, rejected_frames;
} counters_t;

struct daemon {
    /* daemon.c: configuration, the loop, signals, draining */
    config_t cfg;
    char config_path[256];
    struct event_base *base;
    struct event *sig_term, *sig_int, *sig_hup, *drain_timer;
    int draining;
    uint64_t drain_deadline_us;
    uint64_t started_us;          /* mono_us at start */
    uint64_t last_request_us;     /* when a client's bytes last came in (poll_us; server.c sets) */
    uint64_t seed;                /* secret index seed (index.seed, or the disk tier's copy) */
    int gpu_devices;
    char gpu_desc[160];
    counters_t stats;             /* request counters, each part counts its own */

    /* catalog.c: namespaces and entry ids */
    ns_t *namespaces;
    uint32_t n_namespaces, next_ns_id;
    uint64_t next_entry_id;

    /* lease.c */
    u64map_t leases;              /* lease id -> lease_t */
    uint64_t next_lease_id;

    /* server.c: client connections */
    struct evconnlistener *listener;
    struct client *clients;
    uint32_t n_clients;
    uint64_t next_client_id, next_put_token;
    uint64_t gstage_bytes;        /* clients' device staging buffers */
    u64map_t uid_use;             /* uid + 1 -> what that uid's connections hold */
    uint64_t in_bytes;            /* all connections' input buffers */
    struct event *idle_sweep;     /* closes idle connections (idle_timeout_ms) */

    /* admin.c: operator connections */
    struct evconnlistener *admin_listener;
    void *admin_conns;

    /* The tiers. A store places, ages and pins extents; leases pin in
     * either memory store (lease.c), so both stores are shared here. */
    store_t *store;               /* host tier: the memfd arena (hosttier.c) */
    struct host *host;            /* host tier's own state (hosttier.c) */
    store_t *gstore;              /* GPU tier's extents, or NULL without one (gputier.c) */
    struct gtier *gtier;          /* GPU tier's own state (gputier.c) */
    struct tier *tier;            /* disk tier's state (tier.c) */

    struct gpuscore *gpuscore;    /* cuBLAS scorer of lookup batches (gpuscore.c), or NULL */
    struct peers *peers;          /* prototypes, Redis, feature table (peers.c) */

    /* The one call that reaches up through a pointer here, set by daemon.c:
     * admin `shutdown` drains. The others are given to the part that calls
     * them: tier_open's wake (tier.c -> server.c), gtier_open's
     * moved_to_host (gputier.c -> tier.c). */
    void (*shutdown)(daemon_t *d, const char *why);
};

/* ---- daemon.c: the top ---- */

/* Create everything from d->cfg (already filled). Returns 0 or -1 (logged). */
int daemon_init(daemon_t *d);
void daemon_fini(daemon_t *d);
/* Run the event loop until it is told to exit (drain, shutdown). With
 * cfg.poll_us, for that long after a client's bytes came in the loop polls
 * without sleeping. Returns 0, or -1 if the loop failed. */
int daemon_run(daemon_t *d);
/* Stop accepting, flush replies, leave the loop (SIGTERM; d->shutdown). */
void daemon_begin_drain(daemon_t *d, const char *why);

#endif
