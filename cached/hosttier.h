/* hosttier.h - the host tier: the memfd arena clients map, and its store.
 *
 * The host tier owns d->store (placement, LRU, pins of the shared arena),
 * what happens to an entry its store evicts (moved to the disk tier when
 * there is one, else dropped), and the thread that faults the arena in
 * ahead of use (host_prefault, disk_register_arena).
 */
#ifndef SIMCACHE_HOSTTIER_H
#define SIMCACHE_HOSTTIER_H

#include <stdint.h>

typedef struct daemon daemon_t;

/* Create the host store from d->cfg (host_arena_size, host_capacity,
 * max_entries, host_huge_pages). 0 or -1 (logged). */
int host_open(daemon_t *d);
/* Start the prefault thread (after tier_open: the disk tier decides whether
 * arena pieces are registered with its ring). A failure to start is logged;
 * the arena is then faulted in on use. */
void host_prefault_start(daemon_t *d);
/* Stop and join the prefault thread (before the disk tier closes). */
void host_prefault_stop(daemon_t *d);
/* Free the store and the records of the entries in it (exit). */
void host_close(daemon_t *d);
/* Apply host_capacity and max_entries from d->cfg (reload, config set). */
void host_apply_config(daemon_t *d);
/* Arena bytes the prefault thread has populated so far (info). */
uint64_t host_prefaulted_bytes(const daemon_t *d);
/* What backs the arena: "hugetlb", "thp" or "4k". */
const char *host_arena_pages(const daemon_t *d);
/* Bytes of the arena on 2 MiB pages now. */
uint64_t host_huge_bytes(const daemon_t *d);

#endif
