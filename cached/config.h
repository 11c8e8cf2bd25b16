/* config.h - simcached settings: embedded defaults, config file, flags.
 *
 * One table describes every key (type, bounds, whether it can change at run
 * time, help). The same parser serves the config file ("key = value" lines,
 * '#' comments), command-line flags (--key-name VALUE or --key-name=VALUE),
 * `config set` on the admin socket and SIGHUP reloads, so a value is checked
 * the same way wherever it comes from.
 */
#ifndef SIMCACHE_CONFIG_H
#define SIMCACHE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CONFIG_PATH_MAX 108   /* sun_path */
#define CONFIG_LINE_MAX 1024
#define CONFIG_MAX_UIDS 32

typedef struct {
    char socket[CONFIG_PATH_MAX];
    char admin_socket[CONFIG_PATH_MAX];
    char data_dir[256];
    uint32_t socket_mode;
    uint64_t host_capacity;
    uint64_t host_arena_size;     /* 0: same as host_capacity at start */
    uint64_t max_entries;
    uint32_t host_prefault;       /* 1: populate the arena at start (background) */
    char host_huge_pages[8];      /* "try", "on" or "off": 2 MiB pages for the arena */
    uint64_t gpu_capacity;        /* GPU tier bytes when a device is found; 0: none */
    uint32_t gpu_device;          /* CUDA ordinal of the GPU tier */
    char gpu_ipc[8];              /* "auto" (VMM, else legacy) or "legacy" */
    uint64_t disk_capacity;       /* 0: no disk tier */
    uint64_t disk_lmdb_max_size;  /* LMDB map growth limit; 0: 64 GiB */
    uint32_t disk_flush_ms;       /* write-behind of host entries every N ms; 0: off */
    uint32_t disk_register_arena; /* 1: pin the host arena and register it with io_uring */
    char cpu_affinity[128];       /* CPU list the daemon's threads run on; "": any */
    uint32_t poll_us;             /* keep polling this long after a request (0: sleep at once) */
    char durability[8];           /* "async" or "sync" */
    double default_threshold;
    uint32_t max_clients;
    uint32_t max_frame;
    uint32_t max_leases_per_client;
    uint32_t max_puts_per_client;
    uint32_t max_namespaces;
    uint32_t log_level;
    uint32_t index_tables;
    uint32_t index_bits;
    uint32_t index_probes;
    uint32_t index_exact_below;
    uint32_t gpu_score_min_batch;   /* score lookup batches this large on the GPU; 0: off */
    uint32_t gpu_score_min_entries; /* ... in namespaces this large */
    uint32_t drain_timeout_ms;
    uint32_t frame_timeout_ms;
    uint64_t staging_keep_bytes;
    uint32_t allow_uids[CONFIG_MAX_UIDS];
    uint32_t n_allow_uids;        /* 0: any uid that can open the socket */
    /* cluster: prototypes, the feature table in Redis, routing (docs/cluster.md) */
    char redis_url[256];          /* empty: single node */
    char node_id[65];             /* empty: hostname-hash(socket) */
    char advertise[256];          /* empty: hostname:socket */
    char fleet_key[256];          /* key of the published namespace hash */
    uint32_t heartbeat_ms;
    uint32_t node_ttl_ms;
    uint32_t prototypes_per_ns;
    uint32_t prototype_refresh_puts;
    uint32_t prototype_refresh_ms;
    double route_load_weight;
} config_t;

/* Embedded defaults; socket paths under $XDG_RUNTIME_DIR/simcache or
 * /tmp/simcache-$UID. */
void config_defaults(config_t *c);

/* Set one key from text. runtime != 0 refuses keys that need a restart.
 * Returns 0 or -1 with a message in err. */
int config_set(config_t *c, const char *key, const char *value, int runtime,
               char *err, size_t errlen);

/* Value of key as text. Returns 0 or -1 (unknown key). */
int config_get(const config_t *c, const char *key, char *out, size_t outlen);

/* Visit every key: fn(arg, key, value-as-text, runtime-changeable, help). */
void config_foreach(const config_t *c,
                    void (*fn)(void *arg, const char *key, const char *value, int runtime,
                               const char *help),
                    void *arg);

/* Apply a config file over c. Errors name the file and line. */
int config_load_file(config_t *c, const char *path, char *err, size_t errlen);

/* Parse a whole config text (what config_load_file reads); name labels errors. */
int config_load_text(config_t *c, const char *text, size_t len, const char *name,
                     char *err, size_t errlen);

/* Parse a size: digits with optional k, m, g, t suffix (powers of 1024,
 * optional trailing 'b' or 'ib'). Returns 0 or -1. */
int config_parse_size(const char *s, uint64_t *out);

/* Parse a CPU list ("2", "0-3", "1,4-5"; "" is the empty list): ascending
 * or not, each number below CONFIG_MAX_CPUS. Sets bit k of mask (which may
 * be NULL, to validate only) for every CPU k named. Returns 0 or -1. */
#define CONFIG_MAX_CPUS 1024u
int config_parse_cpus(const char *s, uint64_t *mask);

/* Is key changeable at run time? -1 if unknown. */
int config_key_runtime(const char *key);

#endif
