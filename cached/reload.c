/* reload.c - a changed configuration, applied to the running parts: the
 * admin `config set` and SIGHUP's re-read of the config file (reload.h).
 */
#include <inttypes.h>
#include <string.h>

#include "config.h"
#include "daemon.h"
#include "hosttier.h"
#include "log.h"
#include "peers.h"
#include "reload.h"

void reload_apply(daemon_t *d)
{
    log_set_level((log_level_t)d->cfg.log_level);
    host_apply_config(d);
    peers_apply_config(d);
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
    /* Apply what may change at run time; name what needs a restart. */
    char now[512], want[512];
    config_t next = d->cfg;
    static const char *const runtime_keys[] = {
        "host_capacity", "max_entries", "default_threshold", "max_clients", "max_frame",
        "max_leases_per_client", "max_puts_per_client", "max_namespaces", "log_level",
        "drain_timeout_ms", "allow_uids", "advertise", "heartbeat_ms", "node_ttl_ms",
        "prototype_refresh_puts", "prototype_refresh_ms", "route_load_weight",
        "gpu_score_min_batch", "gpu_score_min_entries", "poll_us",
    };
    for (size_t i = 0; i < sizeof runtime_keys / sizeof runtime_keys[0]; i++) {
        config_get(&fresh, runtime_keys[i], want, sizeof want);
        config_get(&d->cfg, runtime_keys[i], now, sizeof now);
        if (strcmp(now, want) && config_set(&next, runtime_keys[i], want, 1, err, sizeof err) == 0)
            log_info("SIGHUP: %s %s -> %s", runtime_keys[i], now, want);
    }
    static const char *const static_keys[] = {
        "socket", "admin_socket", "data_dir", "socket_mode", "host_arena_size",
        "index_tables", "index_bits", "index_probes", "index_exact_below",
        "redis_url", "node_id", "prototypes_per_ns", "disk_capacity", "durability",
        "host_huge_pages",
    };
    for (size_t i = 0; i < sizeof static_keys / sizeof static_keys[0]; i++) {
        config_get(&fresh, static_keys[i], want, sizeof want);
        config_get(&d->cfg, static_keys[i], now, sizeof now);
        /* host_arena_size 0 means "host_capacity at start": not a change. */
        if (strcmp(static_keys[i], "host_arena_size") == 0 && fresh.host_arena_size == 0) continue;
        if (strcmp(now, want))
            log_warn("SIGHUP: %s changed in the file but needs a restart", static_keys[i]);
    }
    if (next.host_capacity > store_arena_size(d->store)) {
        log_warn("SIGHUP: host_capacity above the arena (%" PRIu64 " bytes); capped",
                 store_arena_size(d->store));
        next.host_capacity = store_arena_size(d->store);
    }
    d->cfg = next;
    reload_apply(d);
}

