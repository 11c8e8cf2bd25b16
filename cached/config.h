/* config.h - simcached settings: embedded defaults, config file, flags.
 *
 * One table describes every key (type, bounds, class, help). The class says
 * whether a key changes while the daemon runs (config set, SIGHUP) or only
 * at the next start; reload compares two configs with config_diff() and
 * takes each key's class from the table, so no list of keys lives elsewhere. The same parser serves the config file ("key = value" lines,
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

/* A list of uids (allow_uids, admin_uids, admin_read_uids). */
typedef struct {
    uint32_t ids[CONFIG_MAX_UIDS];
    uint32_t n;
} config_uids_t;

/* Is uid in the list? */
int config_uids_has(const config_uids_t *u, uint32_t uid);

typedef struct {
    char socket[CONFIG_PATH_MAX];
    char admin_socket[CONFIG_PATH_MAX];
    char data_dir[256];
    uint32_t socket_mode;
    uint64_t host_capacity;
    uint64_t host_arena_size;     /* 0: same as host_capacity at start */
    uint64_t max_entries;
    uint32_t host_prefault;       /* 1: populate the arena at start (background) */
    uint32_t host_clear_freed;    /* 1: zero freed host extents (store_set_clear_freed) */
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
    uint32_t max_clients_per_uid; /* 0: only max_clients */
    uint32_t idle_timeout_ms;     /* 0: never */
    uint64_t frame_memory_per_uid;   /* 0: no limit */
    uint32_t max_frame;
    uint32_t max_leases_per_client;
    uint32_t max_puts_per_client;
    uint32_t max_namespaces;
    uint32_t log_level;
    uint32_t index_exact_below;
    uint32_t gpu_score_min_batch;   /* score lookup batches this large on the GPU; 0: off */
    uint32_t gpu_score_min_entries; /* ... in namespaces this large */
    uint32_t drain_timeout_ms;
    uint32_t frame_timeout_ms;
    uint64_t staging_keep_bytes;
    config_uids_t allow_uids;     /* client role; empty: any uid that can open the socket */
    config_uids_t admin_uids;     /* admin role, beside the daemon's own uid and root */
    config_uids_t admin_read_uids;   /* admin-read role: stats, info, namespaces, config get */
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

/* When a key's value takes effect. Every key of the table has one; 0 is
 * no class (a table row that forgot it, which test_config refuses). */
typedef enum {
    CONFIG_CLASS_NONE = 0,
    CONFIG_RUNTIME = 1,          /* applied by config set and SIGHUP */
    CONFIG_RESTART = 2,          /* read at start only: a change waits for a restart */
} config_class_t;

/* The value types of the table. */
typedef enum {
    CONFIG_T_PATH,               /* non-empty path that fits its buffer */
    CONFIG_T_SIZE,               /* bytes, with k, m, g, t suffixes; min..max */
    CONFIG_T_U32,                /* decimal integer, min..max */
    CONFIG_T_DOUBLE,             /* number, min..max */
    CONFIG_T_MODE,               /* octal file mode with owner rw */
    CONFIG_T_LEVEL,              /* log level name */
    CONFIG_T_UIDS,               /* comma-separated uids, at most CONFIG_MAX_UIDS */
    CONFIG_T_STR,                /* printable text; one of choices when the key has them */
    CONFIG_T_SECRET,             /* text shown as "(secret)" */
} config_type_t;

/* What the table says about one key (config_key_info). */
typedef struct {
    const char *name;            /* static; owned by the table */
    config_type_t type;
    config_class_t cls;
    double min, max;             /* CONFIG_T_SIZE, _U32, _DOUBLE: inclusive bounds */
    size_t len;                  /* bytes of the field (text: buffer size, NUL included) */
    const char *choices;         /* CONFIG_T_STR: "a|b|c" when only these are valid; else NULL */
    const char *help;            /* static */
} config_key_info_t;

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

/* Is key changeable at run time (class CONFIG_RUNTIME)? -1 if unknown. */
int config_key_runtime(const char *key);

/* The class of key; -1 if unknown. */
int config_key_class(const char *key);

/* Fill *out with what the table says about key. Returns 0 or -1 (unknown). */
int config_key_info(const char *key, config_key_info_t *out);

/* Called by config_diff for one key whose value differs: its class, and its
 * value in the first and in the second config as config_get prints it
 * (secrets read "(secret)"). The strings live only during the call. */
typedef void (*config_diff_fn)(void *arg, const char *key, config_class_t cls,
                               const char *from, const char *to);

/* Compare a and b key by key, in table order, and call fn (may be NULL) for
 * every key whose stored value differs (secrets by their real value).
 * Returns the number of keys that differ. */
int config_diff(const config_t *a, const config_t *b, config_diff_fn fn, void *arg);

/* Copy key's value from src into dst exactly (no text round trip). Returns 0
 * or -1 (unknown key). */
int config_copy_key(config_t *dst, const config_t *src, const char *key);

#endif
