/* main.c - simcached: flags, config, then the event loop until drained.
 *
 * Order of precedence: embedded defaults < config file (-c) < flags. Any key
 * of the config file is also a flag: --host-capacity 4g or
 * --host-capacity=4g. --check-config validates and prints the result.
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "disk.h"
#include "log.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: simcached [-c FILE] [--KEY VALUE ...] [--check-config] [-h] [-V]\n"
            "  -c, --config FILE   config file (key = value lines)\n"
            "  --KEY VALUE         any config key, '_' written as '-' (e.g. --host-capacity 4g)\n"
            "  --check-config      print the resulting settings and exit\n"
            "  --recover           rebuild a damaged disk tier LMDB (data.mdb) from the records\n"
            "                      that verify, drop the rest, then start\n"
            "  -V, --version       print the version\n"
            "Keys (simcachectl config get all shows the running values):\n");
}

static void print_key(void *arg, const char *key, const char *value, int runtime, const char *help)
{
    FILE *f = arg;
    fprintf(f, "  %-22s %-28s %s%s\n", key, value, help, runtime ? "" : " [restart]");
}

/* --recover: keep what verifies in the disk tier's LMDB, drop the rest. */
static int recover_disk(const config_t *cfg)
{
    if (cfg->disk_capacity == 0) {
        log_error("--recover: no disk tier (disk_capacity is 0)");
        return -1;
    }
    char err[512];
    disk_config_t dc = { .dir = cfg->data_dir, .capacity = cfg->disk_capacity,
                         .max_map_size = cfg->disk_lmdb_max_size };
    disk_recover_stats_t st;
    if (disk_recover(&dc, &st, err, sizeof err)) {
        log_error("--recover in %s: %s", cfg->data_dir, err);
        return -1;
    }
    if (!st.moved_to[0]) {
        log_info("--recover: no %s/disk.lmdb/data.mdb; nothing to recover", cfg->data_dir);
        return 0;
    }
    log_warn("--recover: %llu of %llu disk records kept, %llu dropped%s; the old data.mdb is %s",
             (unsigned long long)st.kept, (unsigned long long)st.records,
             (unsigned long long)st.dropped, st.walk_died ? " (a bad page stopped the walk; "
             "read from both ends)" : "", st.moved_to);
    return 0;
}

int main(int argc, char **argv)
{
    static daemon_t d;
    config_defaults(&d.cfg);
    char err[512];
    int check = 0, recover = 0;
    /* The config file first, so flags override it wherever they stand. */
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            snprintf(d.config_path, sizeof d.config_path, "%s", argv[i + 1]);
            if (config_load_file(&d.cfg, argv[i + 1], err, sizeof err)) {
                fprintf(stderr, "simcached: %s\n", err);
                return 2;
            }
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            i++;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            config_foreach(&d.cfg, print_key, stdout);
            return 0;
        }
        if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            printf("simcached %s (protocol 1)\n", SIMCACHE_VERSION_STRING);
            return 0;
        }
        if (strcmp(a, "--check-config") == 0) {
            check = 1;
            continue;
        }
        if (strcmp(a, "--recover") == 0) {
            recover = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || !a[2]) {
            fprintf(stderr, "simcached: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
        char key[64];
        const char *value;
        const char *eq = strchr(a, '=');
        size_t klen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (klen >= sizeof key) {
            fprintf(stderr, "simcached: unknown option '%s'\n", a);
            return 2;
        }
        memcpy(key, a + 2, klen);
        key[klen] = 0;
        for (char *p = key; *p; p++)
            if (*p == '-') *p = '_';
        if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            fprintf(stderr, "simcached: option '%s' needs a value\n", a);
            return 2;
        }
        if (config_set(&d.cfg, key, value, 0, err, sizeof err)) {
            fprintf(stderr, "simcached: %s\n", err);
            return 2;
        }
    }
    if (d.cfg.host_arena_size && d.cfg.host_capacity > d.cfg.host_arena_size) {
        fprintf(stderr, "simcached: host_capacity (%llu) above host_arena_size (%llu)\n",
                (unsigned long long)d.cfg.host_capacity, (unsigned long long)d.cfg.host_arena_size);
        return 2;
    }
    if (check) {
        config_foreach(&d.cfg, print_key, stdout);
        return 0;
    }
    if (recover && recover_disk(&d.cfg)) return 1;
    int rc = daemon_init(&d);
    if (rc == 0) rc = daemon_run(&d) < 0 ? 1 : 0;
    else rc = 1;
    daemon_fini(&d);
    if (rc == 0) log_info("bye");
    return rc;
}
