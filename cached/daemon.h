/* daemon.h - the state simcached wires together: loop, listeners, clients,
 * namespaces, the host tier and the counters.
 *
 * cached/ is the one part that knows every other part. server.c speaks the
 * binary protocol to clients, admin.c the text protocol to operators,
 * daemon.c owns namespaces, entries and leases (the operations both
 * protocols share), main.c parses flags and runs the loop.
 */
#ifndef SIMCACHE_DAEMON_H
#define SIMCACHE_DAEMON_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

struct sockaddr;

#include "config.h"
#include "index.h"
#include "simcache.h"
#include "store.h"
#include "u64map.h"

struct event_base;
struct event;
struct evconnlistener;
typedef struct client client_t;
typedef struct daemon daemon_t;

/* A namespace: what must match for reuse to be valid. */
typedef struct ns {
    struct ns *next;
    uint32_t id;                  /* small number, for display */
    uint32_t dim;
    char *model, *layout_fp, *tenant;
    char *name;                   /* "model|layout_fp|dim[|tenant]", printable */
    index_t *index;
    uint64_t entries, bytes;
    uint64_t lookups, hits, puts;
    uint32_t clients;
    struct ns_cluster *cluster;   /* prototypes and published hash (peers.c) */
    struct gpuscore_ns *gpu;      /* device mirror for batched scoring (gpuscore.c), or NULL */
} ns_t;

/* The record of one entry (the store's user pointer). */
typedef struct entry {
    uint64_t id;
    ns_t *ns;
    simcache_layout_t layout;
    uint64_t size;
    uint64_t checksum;            /* XXH3-64 of the blob */
    uint64_t created_us, last_hit_us;
    uint64_t hits;
    uint32_t meta_len;
    uint8_t *meta;
    int indexed;                  /* still findable (not deleted) */
    int on_gpu;                   /* its bytes are in the GPU tier (d->gstore owns it) */
    int sum_pending;              /* checksum not computed yet (put into the GPU tier) */
    uint64_t host_off;            /* offset in the host arena while there */
    uint64_t gpu_off;             /* offset in the GPU arena while there */
} entry_t;

/* A lease: one client's pin on one entry. */
typedef struct lease {
    uint64_t id;
    uint64_t entry_id;
    uint64_t off, size;           /* where the pinned bytes are */
    int gpu;                      /* 1: in the GPU arena (d->gstore), 0: host arena */
    client_t *owner;
    struct lease *prev, *next;    /* in the owner's list */
} lease_t;

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
    client_t *clients;
    void *admin_conns;            /* admin.c's list of connections */
    uint32_t n_clients;
    int gpu_devices;
    /* GPU tier (gputier.c): gstore is NULL when there is none. gstore only
     * places and ages extents; the bytes are in garena (device memory). */
    store_t *gstore;
    struct gpu_arena *garena;
    struct gpu_stream *gstream;
    int host_pinned;              /* host arena registered with CUDA */
    char gpu_kind[8];             /* "vmm" or "legacy" */
    uint64_t gpu_demotions, gpu_promotions, gpu_to_host, gpu_move_failures;
    struct gpuscore *gpuscore;    /* cuBLAS scorer of lookup batches (gpuscore.c), or NULL */
    /* host_prefault: a thread populating the arena (daemon.c) */
    pthread_t prefault_th;
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
    /* disk tier (tier.c): NULL when disk_capacity is 0 */
    struct disk *disk;
    u64map_t disk_entries;        /* id -> entry_t of entries only on disk */
    u64map_t promos;              /* id -> promo_t: promotions in flight */
    struct event *disk_ev;        /* the disk tier's completion eventfd */
    uint64_t demotions, promotions, disk_write_failures;
    uint64_t promotions_async, promotion_waits;
    /* write-behind (tier.c): host entries not yet on disk, oldest first */
    struct event *flush_ev;
    uint64_t *dirty;
    size_t dirty_head, dirty_n, dirty_cap;
    uint64_t flush_inflight;      /* bytes of asynchronous writes in flight */
    uint64_t flushes, flush_failures;
};

/* A promotion in flight (tier.c): the entry is PENDING in the host store,
 * out of disk_entries, still indexed; its bytes are being read. Clients
 * whose request needs it wait (server_wait / server_resume). */
typedef struct promo {
    daemon_t *d;
    uint64_t id;
    entry_t *e;
    client_t **waiters;
    uint32_t nwait, capwait;
} promo_t;

uint64_t now_us(void);

/* ---- daemon.c: shared operations ---- */

/* Create everything from d->cfg (already filled). Returns 0 or -1 (logged). */
int daemon_init(daemon_t *d);
/* What backs the host arena: "hugetlb", "thp" or "4k" (info). */
const char *daemon_arena_pages(const daemon_t *d);
/* Bytes of the host arena on 2 MiB pages now (info). */
uint64_t daemon_huge_bytes(const daemon_t *d);
void daemon_fini(daemon_t *d);
/* Run the event loop until it is told to exit (drain, shutdown). With
 * cfg.poll_us, for that long after a client's bytes came in the loop polls
 * without sleeping. Returns 0, or -1 if the loop failed. */
int daemon_run(daemon_t *d);
/* Stop accepting, flush replies, leave the loop (SIGTERM, `shutdown`). */
void daemon_begin_drain(daemon_t *d, const char *why);
/* Apply a changed runtime config to the running parts. */
void daemon_apply_config(daemon_t *d);
/* Reload the config file (SIGHUP). */
void daemon_reload(daemon_t *d);

/* Find or create the namespace. Returns NULL with *code set on failure. */
ns_t *daemon_ns_get(daemon_t *d, const char *model, size_t model_len, const char *layout_fp,
                    size_t layout_fp_len, const char *tenant, size_t tenant_len, uint32_t dim,
                    int *code);
ns_t *daemon_ns_find(daemon_t *d, const char *name);

/* Pin entry for owner and create a lease. 0 or SIMCACHE_ENOTFOUND/ELIMIT/ENOMEM. */
int daemon_lease_new(daemon_t *d, client_t *owner, uint64_t entry_id, lease_t **out);
/* End a lease (unpins; may free a deleted entry). */
void daemon_lease_end(daemon_t *d, lease_t *l);
/* Take a record out of its namespace and index (if still indexed) and free
 * it: an entry that leaves the last tier holding it. */
void daemon_entry_free(daemon_t *d, entry_t *e);
/* The record of entry id, whichever memory tier (GPU or host) holds it,
 * live or pending (a put, a promotion); NULL if neither does. */
entry_t *daemon_mem_entry(daemon_t *d, uint64_t id);
/* Delete an entry: unfindable now, bytes freed after the last lease. */
int daemon_entry_delete(daemon_t *d, uint64_t id);
/* Delete every entry of ns (NULL: all). Returns how many. */
uint64_t daemon_flush(daemon_t *d, ns_t *ns);

/* ---- server.c: waiting for promotions ---- */

/* c's current request waits for one more promotion (tier.c). */
void server_wait(client_t *c);
/* One promotion c waited for completed; after the last, c's request replays. */
void server_resume(client_t *c);

/* ---- tier.c: the disk tier under the host tier ---- */

/* Open the disk tier (if disk_capacity > 0) and re-create the entries it
 * holds (indexed, on disk only). 0 or -1 (logged). */
int tier_open(daemon_t *d);
/* Checkpoint (async durability) and close. */
void tier_close(daemon_t *d);
/* Store eviction of a live, indexed entry: write it to disk and keep its
 * record (returns 1), or 0 when it must be dropped. */
int tier_demote(daemon_t *d, entry_t *e);
/* An entry only on disk, brought back into the host tier (synchronous read,
 * checksum checked). NULL if id is not on disk or could not be promoted. */
entry_t *tier_promote(daemon_t *d, uint64_t id);
/* Bring entry id (of namespace ns; NULL: any) into the host tier for client
 * c. Returns 1 when c must wait: the read runs in the background and
 * server_resume(c) follows once it completed, whatever the outcome (c then
 * replays its request). Returns 0 with *e set to the live entry, or NULL
 * when id is not in the host tier, not on disk or could not be read. With
 * may_wait 0 (or no asynchronous reads) it promotes synchronously. */
int tier_fetch(daemon_t *d, uint64_t id, ns_t *ns, client_t *c, int may_wait, entry_t **e);
/* Client c is going away: take it off every promotion's waiters. */
void tier_client_gone(daemon_t *d, client_t *c);
/* A host entry not on disk yet: the write-behind will write it (async
 * durability with disk_flush_ms). */
void tier_note_dirty(daemon_t *d, uint64_t id);
/* Write a host entry to disk now (sync puts, checkpoint). 0 or a SIMCACHE_E*. */
int tier_persist(daemon_t *d, entry_t *e);
/* Is the entry only on disk? Its record then, else NULL. */
entry_t *tier_disk_entry(daemon_t *d, uint64_t id);
/* Delete an entry's disk copy and, if it lives only on disk, its record. */
void tier_forget(daemon_t *d, uint64_t id);
/* Write every host entry not yet on disk, then flush. Returns how many were
 * written, or -1 if the disk tier is off. */
int64_t tier_checkpoint(daemon_t *d);

/* ---- gputier.c: the GPU tier above the host tier ---- */

/* Create the GPU tier when a device is there and gpu_capacity > 0 (after the
 * host store exists). A failure is logged and leaves the daemon host-only. */
void gtier_open(daemon_t *d);
void gtier_close(daemon_t *d);
/* Move a live host entry into the GPU tier (host-to-device copy, finished
 * before this returns). 0, or -1 with e still in the host tier. */
int gtier_promote(daemon_t *d, entry_t *e);
/* Move a live GPU entry into the host tier (device-to-host copy). 0, or -1
 * with e still in the GPU tier. */
int gtier_to_host(daemon_t *d, entry_t *e);
/* Reserve GPU bytes for new entry e (PENDING in d->gstore, e->gpu_off set)
 * and copy size bytes from device pointer src (of this process) there; the
 * copy has finished when this returns. 0, or SIMCACHE_ETOOBIG / ENOSPC /
 * EIO / ENOMEM; nothing is left reserved on failure. */
int gtier_put(daemon_t *d, entry_t *e, const void *src_dev);
/* Copy a GPU entry's bytes into host memory dst (size bytes) and compute its
 * checksum if still pending. 0 or -1. */
int gtier_read(daemon_t *d, entry_t *e, void *dst);

/* ---- server.c: client connections ---- */

int server_listen(daemon_t *d);
void server_close_listener(daemon_t *d);
/* Close every client (drain done or shutdown). */
void server_close_all(daemon_t *d);
/* Bytes still waiting to go out to clients. */
uint64_t server_pending_output(const daemon_t *d);
/* Per-client figures for admin `clients`. */
uint32_t client_lease_count(const client_t *c);
void server_foreach_client(daemon_t *d,
                           void (*fn)(void *arg, uint64_t id, int pid, unsigned uid, const char *ns,
                                      uint32_t leases, uint32_t puts, uint64_t requests),
                           void *arg);
/* Bind a Unix stream listener at path with cfg.socket_mode, replacing a stale
 * socket file but never one a live daemon answers on. NULL on failure (logged). */
struct evconnlistener *listen_unix(daemon_t *d, const char *path,
                                   void (*cb)(struct evconnlistener *, int, struct sockaddr *,
                                              int, void *),
                                   void *arg);

/* ---- admin.c: operator connections ---- */

int admin_listen(daemon_t *d);
void admin_close_listener(daemon_t *d);
/* Close every admin connection (shutdown). */
void admin_close_all(daemon_t *d);

#endif
