/* lease.c - leases: one client's pin on one entry's bytes (lease.h). */
#include <stdlib.h>

#include "daemon.h"
#include "lease.h"
#include "simcache.h"

static void link_owner(lease_list_t *o, lease_t *l)
{
    l->owner = o;
    l->prev = NULL;
    l->next = o->head;
    if (o->head) o->head->prev = l;
    o->head = l;
    o->n++;
}

static void unlink_owner(lease_t *l)
{
    lease_list_t *o = l->owner;
    if (l->prev) l->prev->next = l->next;
    else o->head = l->next;
    if (l->next) l->next->prev = l->prev;
    o->n--;
}

int lease_new(daemon_t *d, lease_list_t *owner, uint64_t entry_id, lease_t **out)
{
    if (owner->n >= d->cfg.max_leases_per_client) return SIMCACHE_ELIMIT;
    lease_t *l = calloc(1, sizeof *l);
    if (!l) return SIMCACHE_ENOMEM;
    l->gpu = d->gstore && store_is_live(d->gstore, entry_id);
    store_t *st = l->gpu ? d->gstore : d->store;
    if (store_pin(st, entry_id, &l->off, &l->size)) {
        free(l);
        return SIMCACHE_ENOTFOUND;
    }
    l->id = ++d->next_lease_id;
    l->entry_id = entry_id;
    if (u64map_put(&d->leases, l->id, l)) {
        store_unpin(st, entry_id);
        free(l);
        return SIMCACHE_ENOMEM;
    }
    link_owner(owner, l);
    *out = l;
    return 0;
}

lease_t *lease_find(daemon_t *d, uint64_t id)
{
    return u64map_get(&d->leases, id);
}

void lease_end(daemon_t *d, lease_t *l)
{
    u64map_del(&d->leases, l->id);
    unlink_owner(l);
    store_unpin(l->gpu ? d->gstore : d->store, l->entry_id);
    free(l);
}

void lease_end_all(daemon_t *d, lease_list_t *owner)
{
    while (owner->head) lease_end(d, owner->head);
}

uint64_t lease_count(const daemon_t *d)
{
    return u64map_len(&d->leases);
}

void lease_table_free(daemon_t *d)
{
    size_t pos = 0;
    uint64_t key;
    void *val;
    while (u64map_next(&d->leases, &pos, &key, &val)) free(val);
    u64map_clear(&d->leases);
}
