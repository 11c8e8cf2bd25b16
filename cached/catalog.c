/* catalog.c - namespaces and entry records, and the one path in and out of
 * a namespace's index (catalog.h).
 *
 * Each namespace hashes with its own rotation, derived from the secret
 * daemon seed and the namespace's name, so tenants cannot learn each
 * other's codes and the same data directory gives the same codes after a
 * restart.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "daemon.h"
#include "gpuscore.h"
#include "log.h"
#include "mix64.h"
#include "peers.h"

static uint64_t hash_bytes(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) h = mix64(h ^ (unsigned char)s[i]);
    return mix64(h ^ n);
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        if (n) memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static void ns_free(ns_t *ns)
{
    index_free(ns->index);
    gpuscore_ns_free(ns);
    peers_ns_free(ns->cluster);
    free(ns->model);
    free(ns->layout_fp);
    free(ns->tenant);
    free(ns->name);
    free(ns);
}

static int same(const char *have, const char *s, size_t n)
{
    return strlen(have) == n && memcmp(have, s, n) == 0;
}

ns_t *catalog_ns_get(daemon_t *d, const char *model, size_t model_len, const char *layout_fp,
                     size_t layout_fp_len, const char *tenant, size_t tenant_len, uint32_t dim,
                     catalog_ns_why_t why, int *code)
{
    if (!tenant) tenant = "";
    for (ns_t *ns = d->namespaces; ns; ns = ns->next)
        if (ns->dim == dim && same(ns->model, model, model_len) &&
            same(ns->layout_fp, layout_fp, layout_fp_len) && same(ns->tenant, tenant, tenant_len))
            return ns;
    if (why == CATALOG_NS_CLIENT && d->n_namespaces >= d->cfg.max_namespaces) {
        *code = SIMCACHE_ELIMIT;
        return NULL;
    }
    *code = SIMCACHE_ENOMEM;
    ns_t *ns = calloc(1, sizeof *ns);
    if (!ns) return NULL;
    ns->dim = dim;
    ns->model = dup_n(model, model_len);
    ns->layout_fp = dup_n(layout_fp, layout_fp_len);
    ns->tenant = dup_n(tenant, tenant_len);
    size_t nl = model_len + layout_fp_len + tenant_len + 32;
    ns->name = malloc(nl);
    uint64_t seed = hash_bytes(d->seed, model, model_len);
    seed = hash_bytes(seed, layout_fp, layout_fp_len);
    seed = hash_bytes(seed, tenant, tenant_len);
    seed = mix64(seed ^ dim);
    index_params_t p = { .exact_below = d->cfg.index_exact_below };
    ns->index = index_new(dim, seed, &p);
    if (!ns->model || !ns->layout_fp || !ns->tenant || !ns->name || !ns->index) {
        ns_free(ns);
        return NULL;
    }
    /* Names are printable UTF-8 (checked by the codec) but may hold spaces;
     * the display name joins the parts with '|'. */
    if (tenant_len)
        snprintf(ns->name, nl, "%s|%s|%u|%s", ns->model, ns->layout_fp, dim, ns->tenant);
    else
        snprintf(ns->name, nl, "%s|%s|%u", ns->model, ns->layout_fp, dim);
    ns->id = ++d->next_ns_id;
    ns->next = d->namespaces;
    d->namespaces = ns;
    d->n_namespaces++;
    if (why == CATALOG_NS_RESTORE && d->n_namespaces > d->cfg.max_namespaces)
        log_warn("namespace %u restored from the disk tier beyond max_namespaces (%u): %s", ns->id,
                 d->cfg.max_namespaces, ns->name);
    else
        log_info("namespace %u created: %s", ns->id, ns->name);
    return ns;
}

ns_t *catalog_ns_find(daemon_t *d, const char *name)
{
    char *end;
    unsigned long id = strtoul(name, &end, 10);
    for (ns_t *ns = d->namespaces; ns; ns = ns->next) {
        if (strcmp(ns->name, name) == 0) return ns;
        if (*name && !*end && ns->id == id) return ns;
    }
    return NULL;
}

void catalog_ns_settle(daemon_t *d)
{
    for (ns_t *ns = d->namespaces; ns; ns = ns->next) {
        index_stats_t st;
        index_get_stats(ns->index, &st);
        if (!st.coded) continue;   /* still exact: no codes to centre */
        int rc = index_set_center(ns->index, NULL);
        if (rc)
            log_warn("namespace %u: cannot re-centre its codes after the restore (%s); the "
                     "background re-centring will", ns->id, strerror(-rc));
    }
}

void catalog_ns_free_all(daemon_t *d)
{
    while (d->namespaces) {
        ns_t *ns = d->namespaces;
        d->namespaces = ns->next;
        ns_free(ns);
    }
    d->n_namespaces = 0;
}

int catalog_entry_index(daemon_t *d, entry_t *e, const float *unit)
{
    ns_t *ns = e->ns;
    if (e->indexed) return 0;
    if (index_add(ns->index, e->id, unit)) return -1;
    e->indexed = 1;
    ns->entries++;
    ns->bytes += e->size;
    peers_entry_added(d, ns, unit);
    gpuscore_add(d, ns, e->id, unit);
    return 0;
}

void catalog_entry_unindex(daemon_t *d, entry_t *e)
{
    if (!e->indexed) return;
    ns_t *ns = e->ns;
    peers_entry_removed(d, ns, e->id);
    index_remove(ns->index, e->id);
    gpuscore_remove(d, ns, e->id);
    e->indexed = 0;
    ns->entries--;
    ns->bytes -= e->size;
}

void catalog_entry_free(daemon_t *d, entry_t *e)
{
    catalog_entry_unindex(d, e);
    free(e->meta);
    free(e);
}
