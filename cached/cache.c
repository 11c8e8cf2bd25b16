/* cache.c - an entry whichever tier holds it: finding, deleting, flushing
 * (cache.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "catalog.h"
#include "daemon.h"
#include "log.h"
#include "tier.h"

entry_t *cache_mem_entry(daemon_t *d, uint64_t id)
{
    entry_t *e = d->gstore ? store_user(d->gstore, id) : NULL;
    return e ? e : store_user(d->store, id);
}

int cache_delete(daemon_t *d, uint64_t id)
{
    entry_t *e = cache_mem_entry(d, id);
    if (!e && (e = tier_disk_entry(d, id)) && e->indexed) {
        tier_forget(d, id);   /* frees the disk-only record */
        d->stats.deletes++;
        return 0;
    }
    if (!e || !e->indexed) return SIMCACHE_ENOTFOUND;
    tier_forget(d, id);       /* its disk copy, if any */
    /* Unfindable at once; the bytes stay while leases hold them. */
    catalog_entry_unindex(d, e);
    /* -ENOENT is a pending entry, a promotion in flight: its completion
     * finds the record unindexed and gives the bytes back (tier.c). */
    int rc = store_delete(e->on_gpu ? d->gstore : d->store, id);
    if (rc && rc != -ENOENT) log_warn("delete of entry %" PRIu64 ": %s", id, strerror(-rc));
    d->stats.deletes++;
    return 0;
}

typedef struct {
    ns_t *ns;
    uint64_t *ids;
    size_t n, cap;
    int failed;
} collect_t;

static int collect(void *arg, uint64_t id, void *user, uint64_t off, uint64_t size, uint32_t pins)
{
    collect_t *c = arg;
    entry_t *e = user;
    (void)off;
    (void)size;
    (void)pins;
    if (!e || !e->indexed || (c->ns && e->ns != c->ns)) return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        uint64_t *ids = realloc(c->ids, cap * sizeof *ids);
        if (!ids) {
            c->failed = 1;
            return 1;
        }
        c->ids = ids;
        c->cap = cap;
    }
    c->ids[c->n++] = id;
    return 0;
}

uint64_t cache_flush(daemon_t *d, ns_t *ns)
{
    collect_t c = { .ns = ns };
    store_foreach(d->store, collect, &c);
    if (d->gstore) store_foreach(d->gstore, collect, &c);
    tier_foreach_entry(d, 1, collect, &c);
    uint64_t n = 0;
    for (size_t i = 0; i < c.n; i++)
        if (cache_delete(d, c.ids[i]) == 0) n++;
    free(c.ids);
    return n;
}
