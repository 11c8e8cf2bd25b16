/* catalog.h - namespaces and entry records, and the one path in and out of
 * a namespace's index.
 *
 * The catalog owns what an entry means: its namespace, layout, checksum,
 * metadata, and whether it is findable. Tiers own where its bytes are and
 * call catalog_entry_free when an entry leaves the last tier holding it.
 * Indexing an entry (catalog_entry_index) and unindexing it
 * (catalog_entry_unindex) are the only places that touch a namespace's
 * index, its counts, the GPU scorer's mirror and the peers' prototypes, so
 * those never disagree.
 */
#ifndef SIMCACHE_CATALOG_H
#define SIMCACHE_CATALOG_H

#include <stdint.h>

#include "index.h"
#include "simcache.h"

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

/* The record of one entry (a store's user pointer, or the disk tier's map
 * value while only on disk). */
typedef struct entry {
    uint64_t id;
    ns_t *ns;
    simcache_layout_t layout;
    uint64_t size;
    uint64_t checksum;            /* XXH3-64 of the blob */
    uint64_t created_us, last_hit_us;
    uint64_t hits;
    uint32_t meta_len;
    uint8_t *meta;                /* owned by the record */
    int indexed;                  /* findable (catalog_entry_index, not yet unindexed) */
    int on_gpu;                   /* its bytes are in the GPU tier (d->gstore owns it) */
    int sum_pending;              /* checksum not computed yet (put into the GPU tier) */
    uint64_t host_off;            /* offset in the host arena while there */
    uint64_t gpu_off;             /* offset in the GPU arena while there */
} entry_t;

/* Why a namespace is wanted: a client's hello is held to max_namespaces; a
 * namespace restored from the disk tier is not, since its records were
 * acknowledged before the limit was lowered. */
typedef enum { CATALOG_NS_CLIENT, CATALOG_NS_RESTORE } catalog_ns_why_t;

/* Find or create the namespace. Returns it, or NULL with *code set to
 * SIMCACHE_ELIMIT (max_namespaces, CATALOG_NS_CLIENT only) or
 * SIMCACHE_ENOMEM. The catalog owns the namespace until daemon exit. */
ns_t *catalog_ns_get(daemon_t *d, const char *model, size_t model_len, const char *layout_fp,
                     size_t layout_fp_len, const char *tenant, size_t tenant_len, uint32_t dim,
                     catalog_ns_why_t why, int *code);
/* The namespace with this display name or id number (as text); NULL if none. */
ns_t *catalog_ns_find(daemon_t *d, const char *name);
/* After a bulk restore (the disk tier at start): centre each namespace's
 * codes on the mean of its entries now, rather than on its first entries
 * with the background re-centring catching up over the first requests. */
void catalog_ns_settle(daemon_t *d);
/* Free every namespace (daemon exit, after every entry record is gone). */
void catalog_ns_free_all(daemon_t *d);

/* Make e (e->ns set) findable under unit embedding `unit` (e->ns->dim
 * floats, unit length): its index, counts, GPU mirror and prototypes. 0, or
 * -1 when the index has no memory (e is left unindexed). */
int catalog_entry_index(daemon_t *d, entry_t *e, const float *unit);
/* Make e unfindable at once (delete, eviction); its bytes and record stay
 * with whoever holds them. No-op when e is not indexed. */
void catalog_entry_unindex(daemon_t *d, entry_t *e);
/* An entry leaves the last tier holding it: unindex it if still indexed,
 * and free the record (e is invalid afterwards). */
void catalog_entry_free(daemon_t *d, entry_t *e);

#endif
