/* reload.c - a changed configuration, applied to the running parts: the
 * admin `config set` and SIGHUP's re-read of the config file (reload.h).
 */
#include <inttypes.h>
#include <string.h>

#include "config.h"
#include "daemon.h"
#include "gputier.h"
#include "hosttier.h"
#include "log.h"
#include "peers.h"
#include "reload.h"

void reload_apply(daemon_t *d)
{
    log_set_level((log_level_t)d->cfg.log_level);
    host_apply_config(d);
    gtier_apply_config(d);
    peers_apply_config(d);
}

typedef struct {
    config_t *next;             /* the running config plus the runtime keys of fresh */
    const config_t *fresh;      /* the running config with the file loaded over it */
    int applied, restart;
} reload_t;

/* One key that differs between the running config and the file: the
 * table's class says whether it is applied or waits for a restart. */
static void reload_key(void *arg, const char *key, config_class_t cls, const char *now,
                       const char *want)
{
    reload_t *r = arg;
    if (cls == CONFIG_RUNTIME) {
        config_copy_key(r->next, r->fresh, key);
        log_info("SIGHUP: %s %s -> %s", key, now, want);
        r->applied++;
    } else {
        log_warn("SIGHUP: %s changed in the file but needs a restart; keeping '%s'", key, now);
        r->restart++;
    }
}

void reload_file(daemon_t *d)
{
    if (!d->config_path[0]) {
        log_info("SIGHUP: no config file to reload");
        return;
    }
    config_t fresh = d->cfg;
    char err[512];
    if (config_load_file(&fresh, d->config_path, err, sizeof err)) {
        log_error("SIGHUP: %s; keeping the running config", err);
        return;
    }
    /* host_arena_size 0 means "host_capacity at start": not a change. */
    if (fresh.host_arena_size == 0) fresh.host_arena_size = d->cfg.host_arena_size;
    config_t next = d->cfg;
    reload_t r = { .next = &next, .fresh = &fresh };
    config_diff(&d->cfg, &fresh, reload_key, &r);
    if (next.host_capacity > store_arena_size(d->store)) {
        log_warn("SIGHUP: host_capacity above the arena (%" PRIu64 " bytes); capped",
                 store_arena_size(d->store));
        next.host_capacity = store_arena_size(d->store);
    }
    d->cfg = next;
    reload_apply(d);
    log_info("SIGHUP: reloaded %s: %d keys applied, %d need a restart", d->config_path,
             r.applied, r.restart);
}

