/* peers.h - the cluster side of simcached: each namespace's prototypes, the
 * node record in Redis, the global feature table, and routing.
 *
 * Every namespace keeps prototypes (prototypes.h), updated as entries come
 * and go and refitted after a batch of puts or when prototype_refresh_ms has
 * passed since a change. With redis_url set, a heartbeat writes this node's
 * record (noderec.h) under a key with a TTL, announces changes on a pub/sub
 * channel, and re-reads the other nodes' records into the feature table; the
 * table is exactly the nodes whose keys are alive. Redis is never on the path
 * of a lookup or a put: when it is unreachable the table is kept but marked
 * stale, the connection is retried with backoff, and the record is published
 * again on reconnect. Without redis_url the node is alone and routes to
 * itself. docs/cluster.md has the key layout, TTLs and channel.
 */
#ifndef SIMCACHE_PEERS_H
#define SIMCACHE_PEERS_H

#include <stdint.h>

#include "daemon.h"
#include "noderec.h"

typedef struct peers peers_t;
typedef struct ns_cluster ns_cluster_t;

/* Set up prototypes upkeep and, with redis_url, start connecting (never
 * waits for Redis). Call after the listeners are up. Returns 0, or -1 on a
 * bad node_id, advertise or redis_url (logged). */
int peers_init(daemon_t *d);
/* Leave the table (delete this node's key and announce it, best effort,
 * bounded by a short timeout), close Redis, free the table. Safe after a
 * failed or missing peers_init. */
void peers_free(daemon_t *d);
/* Take runtime config changes (heartbeat_ms, node_ttl_ms, advertise, refresh
 * settings, route_load_weight) into account. */
void peers_apply_config(daemon_t *d);

/* An entry was indexed under unit (dim floats, unit length). */
void peers_entry_added(daemon_t *d, ns_t *ns, const float *unit);
/* Entry id of ns is about to leave the index (call before index_remove: its
 * vector is read from the index). */
void peers_entry_removed(daemon_t *d, ns_t *ns, uint64_t id);
/* Free a namespace's cluster state (ns_t.cluster); NULL is a no-op. */
void peers_ns_free(ns_cluster_t *c);

typedef struct {
    char node_id[NODEREC_MAX_ID + 1];
    char addr[NODEREC_MAX_ADDR + 1];
    float similarity;         /* best prototype cosine on that node (0 with ROUTE_NONE) */
    float load;               /* that node's load, 0..1 (request rate / highest rate) */
    float score;              /* similarity - route_load_weight * load */
    uint32_t flags;           /* SIMCACHE_ROUTE_* (simcache.h) */
} route_t;

/* Which node holds the prototype closest to unit (a unit vector of ns's
 * dimension): the highest score wins, this node on ties. */
void peers_route(daemon_t *d, ns_t *ns, const float *unit, route_t *out);

/* ---- for admin ---- */

typedef struct {
    int redis_configured, redis_connected, table_stale;
    uint32_t peers;                 /* other live nodes in the table */
    uint64_t records_ignored;       /* malformed or foreign records and messages */
    uint64_t reconnects, publishes, refits;
    uint64_t record_bytes;          /* hdr + protos of the last full publish */
    uint32_t prototypes;            /* this node's, all namespaces */
    const char *node_id, *advertise;
    char redis[128];                /* redis_url without its password */
} peers_info_t;

void peers_get_info(const daemon_t *d, peers_info_t *info);

typedef struct {
    const char *node_id, *addr;
    int self;
    uint64_t entries, bytes, capacity;
    float rate, load;
    uint32_t namespaces, prototypes;
    uint64_t seq, age_ms, record_bytes;
} peer_view_t;

/* This node first, then every peer of the table. */
void peers_foreach_node(daemon_t *d, void (*fn)(void *arg, const peer_view_t *v), void *arg);

typedef struct {
    const char *node_id;
    int self;
    const char *ns_name;            /* a local namespace with this hash, or "" */
    char ns_hash[2 * NODEREC_HASH_LEN + 1];
    uint32_t dim, index;
    uint64_t count;
    const float *centroid;          /* dim floats */
} proto_view_t;

/* Every prototype in the table, this node's first; only_ns limits it to one
 * local namespace (and the peers' prototypes of the same namespace). */
void peers_foreach_prototype(daemon_t *d, const ns_t *only_ns,
                             void (*fn)(void *arg, const proto_view_t *v), void *arg);

#endif
