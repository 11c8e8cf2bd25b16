/* lease.h - leases: one client's pin on one entry's bytes.
 *
 * A lease pins the extent it was given (host or GPU arena) in that tier's
 * store, so the bytes a client reads stay valid however the entry moves or
 * is deleted meanwhile; lease_end unpins, and the store frees an extent
 * whose record is gone at its last unpin. Each lease is on its owner's
 * list (lease_list_t, embedded in the connection) and in the daemon's table
 * by id.
 */
#ifndef SIMCACHE_LEASE_H
#define SIMCACHE_LEASE_H

#include <stdint.h>

typedef struct daemon daemon_t;
typedef struct lease_list lease_list_t;

typedef struct lease {
    uint64_t id;
    uint64_t entry_id;
    uint64_t off, size;           /* where the pinned bytes are */
    int gpu;                      /* 1: in the GPU arena (d->gstore), 0: host arena */
    lease_list_t *owner;          /* the owner's list */
    struct lease *prev, *next;    /* in the owner's list */
} lease_t;

/* One owner's leases (a client connection embeds one). Zero-initialised is empty. */
struct lease_list {
    lease_t *head;
    uint32_t n;
};

/* Pin entry_id (in whichever memory tier holds it live) for owner. 0 with
 * *out (owned by the lease table until lease_end), or SIMCACHE_ELIMIT
 * (max_leases_per_client), SIMCACHE_ENOTFOUND (not live in a memory tier),
 * SIMCACHE_ENOMEM. */
int lease_new(daemon_t *d, lease_list_t *owner, uint64_t entry_id, lease_t **out);
/* The lease with this id, or NULL. */
lease_t *lease_find(daemon_t *d, uint64_t id);
/* End a lease: unpin its bytes, take it off its owner's list, free it. */
void lease_end(daemon_t *d, lease_t *l);
/* End every lease of owner (its connection closes). */
void lease_end_all(daemon_t *d, lease_list_t *owner);
/* Leases held now, by everyone. */
uint64_t lease_count(const daemon_t *d);
/* Free the table at exit (no unpinning: the stores go too). */
void lease_table_free(daemon_t *d);

#endif
