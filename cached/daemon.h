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
} counters_t;

struct daemon {
    config_t cfg;
    char config_path[256];
    struct event_base *base;
    struct evconnlistener *listener, *admin_listener;
    struct event *sig_term, *sig_int, *sig_hup, *drain_timer;
    store_t *store;
    uint64_t seed;
    ns_t *namespaces;
    uint32_t n_namespaces, next_ns_id;
    u64map_t leases;              /* lease id -> lease_t */
    uint64_t next_entry_id, next_lease_id, next_put_token, next_client_id;
    struct client *clients;       /* server.c's connections */
    void *admin_conns;            /* admin.c's list of connections */
    uint32_t n_clients;
    int gpu_devices;
    /* GPU tier (gputier.c): gstore is NULL when there is none. gstore only
     * places, ages and pins extents (leases pin it as the host store); the
     * bytes are in the tier's device arena. */
    store_t *gstore;
    struct gtier *gtier;          /* the rest of its state (gputier.c) */
    uint64_t gstage_bytes;        /* clients' device staging buffers (server.c) */
    struct gpuscore *gpuscore;    /* cuBLAS scorer of lookup batches (gpuscore.c), or NULL */
    /* host_prefault: a thread populating the arena (daemon.c) */
    pthread_t prefault_th;
    int prefault_all;                      /* host_prefault at start (the thread's copy) */
    int prefault_running, prefault_stop;   /* stop: __atomic */
    uint64_t prefault_bytes;               /* done so far: __atomic */
    uint64_t prefault_step;                /* bytes per step (a registered piece) */
    int fixed_pieces;                      /* disk_register_arena: pieces to register (0: off) */
    char gpu_desc[160];
    int draining;
    uint64_t drain_deadline_us;
    uint64_t started_us;
    uint64_t last_request_us;     /* when a client's bytes last came in (poll_us) */
    counters_t stats;
    struct peers *peers;          /* prototypes, Redis, feature table (peers.c) */
    struct tier *tier;            /* the disk tier's state (tier.c) */
    /* Calls that reach up, set by daemon.c (see the top of this file). */
    void (*shutdown)(daemon_t *d, const char *why);         /* admin.c -> daemon.c */
    /* The others are given to the part that calls them: tier_open's wake
     * (tier.c -> server.c), gtier_open's moved_to_host (gputier.c -> tier.c). */
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
