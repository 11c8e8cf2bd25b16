/* cache.h - an entry whichever tier holds it: finding, deleting, flushing.
 *
 * These are the operations the client and admin protocols share that cross
 * tiers: the catalog says what an entry is, the tiers where its bytes are;
 * this file asks each in turn.
 */
#ifndef SIMCACHE_CACHE_H
#define SIMCACHE_CACHE_H

#include <stdint.h>

#include "catalog.h"

typedef struct daemon daemon_t;

/* The record of entry id, whichever memory tier (GPU or host) holds it,
 * live or pending (a put, a promotion); NULL if neither does. */
entry_t *cache_mem_entry(daemon_t *d, uint64_t id);
/* Delete an entry: unfindable now, bytes freed after the last lease, disk
 * copy deleted. 0 or SIMCACHE_ENOTFOUND. */
int cache_delete(daemon_t *d, uint64_t id);
/* Delete every entry of ns (NULL: all). Returns how many. */
uint64_t cache_flush(daemon_t *d, ns_t *ns);

#endif
