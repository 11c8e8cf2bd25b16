/* config.c - the settings table and its one parser.
 *
 * Each key is a row: name, type, offset into config_t, bounds, class (run
 * time or restart), the choices of a fixed-word key, and a help line. File,
 * flags, admin `config set` and SIGHUP all go through config_set(), so every
 * value is checked in one place; SIGHUP finds what changed, and whether it
 * may, with config_diff() over the same rows.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

typedef struct {
    const char *name;
    config_type_t type;
    size_t off;
    size_t len;              /* bytes of the field */
    double min, max;
    config_class_t cls;      /* every row names one: reload and config set go by it */
    const char *choices;     /* CONFIG_T_STR: "a|b" when only these are valid; else NULL */
    const char *help;
} key_t_;

#define F(field) offsetof(config_t, field), sizeof(((config_t *)0)->field)

static const key_t_ keys[] = {
    { "socket", CONFIG_T_PATH, F(socket), 0, 0, CONFIG_RESTART, NULL,
      "client Unix socket path" },
    { "admin_socket", CONFIG_T_PATH, F(admin_socket), 0, 0, CONFIG_RESTART, NULL,
      "admin Unix socket path" },
    { "data_dir", CONFIG_T_PATH, F(data_dir), 0, 0, CONFIG_RESTART, NULL,
      "data directory (index seed)" },
    { "socket_mode", CONFIG_T_MODE, F(socket_mode), 0, 0777, CONFIG_RESTART, NULL,
      "permissions of both sockets (octal)" },
    { "host_capacity", CONFIG_T_SIZE, F(host_capacity), 1 << 20, 1ull << 46, CONFIG_RUNTIME, NULL,
      "bytes of KV the host tier holds" },
    { "host_arena_size", CONFIG_T_SIZE, F(host_arena_size), 0, 1ull << 46, CONFIG_RESTART, NULL,
      "size of the shared memfd arena (0: host_capacity); host_capacity may grow up to it" },
    { "host_clear_freed", CONFIG_T_U32, F(host_clear_freed), 0, 1, CONFIG_RUNTIME, NULL,
      "1: zero the bytes of every entry that leaves the host arena or the GPU tier (deleted, "
      "flushed, evicted), so no client reads them after; 0: leave them until reused" },
    { "host_prefault", CONFIG_T_U32, F(host_prefault), 0, 1, CONFIG_RESTART, NULL,
      "1: fault the whole host arena in at start, in a background thread (commits its memory)" },
    { "host_huge_pages", CONFIG_T_STR, F(host_huge_pages), 0, 0, CONFIG_RESTART, "try|on|off",
      "try: back the host arena with 2 MiB hugetlb pages when the pool (vm.nr_hugepages) holds "
      "it, else 4 KiB pages advised for THP; on: hugetlb or refuse to start; off: 4 KiB pages" },
    { "gpu_capacity", CONFIG_T_SIZE, F(gpu_capacity), 0, 1ull << 46, CONFIG_RESTART, NULL,
      "bytes of device memory for the GPU tier when a CUDA device is found (0: no GPU tier)" },
    { "gpu_device", CONFIG_T_U32, F(gpu_device), 0, 1023, CONFIG_RESTART, NULL,
      "CUDA device ordinal of the GPU tier" },
    { "gpu_ipc", CONFIG_T_STR, F(gpu_ipc), 0, 0, CONFIG_RESTART, "auto|legacy",
      "auto: share the GPU arena through VMM POSIX fds where the device can, else legacy CUDA IPC; legacy: always legacy" },
    { "disk_capacity", CONFIG_T_SIZE, F(disk_capacity), 0, 1ull << 50, CONFIG_RESTART, NULL,
      "bytes of the disk tier's blob file in data_dir (0: no disk tier)" },
    { "disk_lmdb_max_size", CONFIG_T_SIZE, F(disk_lmdb_max_size), 0, 1ull << 46,
      CONFIG_RESTART, NULL,
      "largest the disk tier's LMDB map may grow to, 0 for 64 GiB (at the limit puts to disk are refused)" },
    { "disk_flush_ms", CONFIG_T_U32, F(disk_flush_ms), 0, 60000, CONFIG_RESTART, NULL,
      "async durability: write host entries to disk in the background every N ms, oldest first (0: only on demotion, checkpoint and shutdown)" },
    { "disk_register_arena", CONFIG_T_U32, F(disk_register_arena), 0, 1, CONFIG_RESTART, NULL,
      "1: with a disk tier, pin the host arena and register it with io_uring (commits its memory)" },
    { "cpu_affinity", CONFIG_T_STR, F(cpu_affinity), 0, 0, CONFIG_RESTART, NULL,
      "CPUs the daemon runs on, e.g. 2 or 2-3 (empty: any); keep them apart from the inference threads" },
    { "poll_us", CONFIG_T_U32, F(poll_us), 0, 100000, CONFIG_RUNTIME, NULL,
      "after a client request the event loop keeps polling, without sleeping, this many "
      "microseconds: a request that comes within it skips the wake-up of an idle CPU (40-50 us "
      "on a VM); it spends that CPU, so give the daemon a core of its own (cpu_affinity); 0: off" },
    { "durability", CONFIG_T_STR, F(durability), 0, 0, CONFIG_RESTART, "async|sync",
      "async: a put is acknowledged in the host tier; sync: only once it is on disk" },
    { "max_entries", CONFIG_T_SIZE, F(max_entries), 0, 1ull << 40, CONFIG_RUNTIME, NULL,
      "entry cap over all namespaces, 0 for none (512: the paper's setting)" },
    { "default_threshold", CONFIG_T_DOUBLE, F(default_threshold), -1, 1, CONFIG_RUNTIME, NULL,
      "cosine similarity a lookup needs when the request gives none" },
    { "max_clients", CONFIG_T_U32, F(max_clients), 1, 65536, CONFIG_RUNTIME, NULL,
      "concurrent client connections" },
    { "max_clients_per_uid", CONFIG_T_U32, F(max_clients_per_uid), 0, 65536, CONFIG_RUNTIME, NULL,
      "client connections one uid may hold (0: only max_clients): one uid's flood leaves room "
      "for the others" },
    { "idle_timeout_ms", CONFIG_T_U32, F(idle_timeout_ms), 0, 86400000, CONFIG_RUNTIME, NULL,
      "close a client connection that holds nothing (no lease, put or partial frame) and sent "
      "nothing for this long (0: never)" },
    { "frame_memory_per_uid", CONFIG_T_SIZE, F(frame_memory_per_uid), 0, 1ull << 40,
      CONFIG_RUNTIME, NULL,
      "memory the partly received frames of one uid's connections may take together (0: no "
      "limit beyond max_frame per connection)" },
    { "max_frame", CONFIG_T_SIZE, F(max_frame), 4096, 1u << 30, CONFIG_RUNTIME, NULL,
      "largest request payload in bytes" },
    { "max_leases_per_client", CONFIG_T_U32, F(max_leases_per_client), 1, 1u << 24,
      CONFIG_RUNTIME, NULL,
      "leases one connection may hold" },
    { "max_puts_per_client", CONFIG_T_U32, F(max_puts_per_client), 1, 4096, CONFIG_RUNTIME, NULL,
      "unfinished puts one connection may hold" },
    { "max_namespaces", CONFIG_T_U32, F(max_namespaces), 1, 1u << 20, CONFIG_RUNTIME, NULL,
      "namespaces the daemon keeps" },
    { "log_level", CONFIG_T_LEVEL, F(log_level), 0, 3, CONFIG_RUNTIME, NULL,
      "error, warn, info or debug" },
    { "index_exact_below", CONFIG_T_U32, F(index_exact_below), 0, 1u << 24, CONFIG_RESTART, NULL,
      "search exactly (no codes) while a namespace has fewer entries (0: by dimension, 1024..4096)" },
    { "gpu_score_min_batch", CONFIG_T_U32, F(gpu_score_min_batch), 0, 65536, CONFIG_RUNTIME, NULL,
      "lookup batches of at least this many queries are scored on the GPU (cuBLAS) when one "
      "was found; 0: off (0 at start: no GPU scoring until a restart)" },
    { "gpu_score_min_entries", CONFIG_T_U32, F(gpu_score_min_entries), 0, 1u << 30,
      CONFIG_RUNTIME, NULL,
      "... in namespaces of at least this many entries" },
    { "staging_keep_bytes", CONFIG_T_SIZE, F(staging_keep_bytes), 0, 1ull << 40,
      CONFIG_RUNTIME, NULL,
      "largest staging buffer a client keeps between puts (0: a fresh one per put)" },
    { "frame_timeout_ms", CONFIG_T_U32, F(frame_timeout_ms), 100, 3600000, CONFIG_RUNTIME, NULL,
      "a client that leaves a frame unfinished this long is disconnected" },
    { "drain_timeout_ms", CONFIG_T_U32, F(drain_timeout_ms), 0, 600000, CONFIG_RUNTIME, NULL,
      "how long SIGTERM waits for replies to reach clients" },
    { "allow_uids", CONFIG_T_UIDS, F(allow_uids), 0, 0, CONFIG_RUNTIME, NULL,
      "comma-separated uids allowed to connect as clients (SO_PEERCRED); empty: any" },
    { "admin_uids", CONFIG_T_UIDS, F(admin_uids), 0, 0, CONFIG_RUNTIME, NULL,
      "uids with the admin role on the admin socket (every command), beside the daemon's own "
      "uid and root" },
    { "admin_read_uids", CONFIG_T_UIDS, F(admin_read_uids), 0, 0, CONFIG_RUNTIME, NULL,
      "uids with the admin-read role (stats, info, namespaces, clients, list, show, peers, "
      "prototypes, config get): monitoring" },
    { "redis_url", CONFIG_T_STR, F(redis_url), 0, 0, CONFIG_RESTART, NULL,
      "global feature table: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or unix:///PATH[?db=N]; "
      "empty: single node" },
    { "node_id", CONFIG_T_STR, F(node_id), 0, 0, CONFIG_RESTART, NULL,
      "this node's id in the feature table ([A-Za-z0-9._:-]); empty: HOSTNAME-HASH(socket)" },
    { "advertise", CONFIG_T_STR, F(advertise), 0, 0, CONFIG_RUNTIME, NULL,
      "address route answers give for this node; empty: HOSTNAME:SOCKET" },
    { "heartbeat_ms", CONFIG_T_U32, F(heartbeat_ms), 50, 600000, CONFIG_RUNTIME, NULL,
      "how often the node record is rewritten and the feature table re-read" },
    { "node_ttl_ms", CONFIG_T_U32, F(node_ttl_ms), 100, 3600000, CONFIG_RUNTIME, NULL,
      "TTL of the node record: a node silent this long leaves every table" },
    { "prototypes_per_ns", CONFIG_T_U32, F(prototypes_per_ns), 1, 64, CONFIG_RESTART, NULL,
      "prototypes (centroids of the cached embeddings) kept per namespace" },
    { "prototype_refresh_puts", CONFIG_T_U32, F(prototype_refresh_puts), 1, 1u << 24,
      CONFIG_RUNTIME, NULL,
      "refit a namespace's prototypes after this many puts (at the end of the batch)" },
    { "prototype_refresh_ms", CONFIG_T_U32, F(prototype_refresh_ms), 100, 86400000,
      CONFIG_RUNTIME, NULL,
      "... or this long after the last refit if anything changed" },
    { "route_load_weight", CONFIG_T_DOUBLE, F(route_load_weight), 0, 10, CONFIG_RUNTIME, NULL,
      "route score = similarity - weight * load (load: request rate relative to the busiest node)" },
    { "fleet_key", CONFIG_T_SECRET, F(fleet_key), 0, 0, CONFIG_RESTART, NULL,
      "key of the namespace hashes published to Redis, the same on every node; empty: plain "
      "SHA-256 (shown as (secret) when set)" },
};

#define NKEYS (sizeof keys / sizeof keys[0])
#define SECRET_SHOWN "(secret)"

static void fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const key_t_ *find_key(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0) return &keys[i];
    return NULL;
}

int config_key_runtime(const char *key)
{
    const key_t_ *k = find_key(key);
    return k ? k->cls == CONFIG_RUNTIME : -1;
}

int config_key_class(const char *key)
{
    const key_t_ *k = find_key(key);
    return k ? (int)k->cls : -1;
}

int config_key_info(const char *key, config_key_info_t *out)
{
    const key_t_ *k = find_key(key);
    if (!k) return -1;
    *out = (config_key_info_t){ .name = k->name, .type = k->type, .cls = k->cls, .min = k->min,
                                .max = k->max, .len = k->len, .choices = k->choices,
                                .help = k->help };
    return 0;
}

/* Is value one of the '|'-separated words of choices? */
static int is_choice(const char *choices, const char *value)
{
    size_t n = strlen(value);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && memcmp(p, value, n) == 0) return 1;
        p += len + (bar != NULL);
    }
    return 0;
}

static void runtime_dir(char *out, size_t n)
{
    const char *x = getenv("XDG_RUNTIME_DIR");
    if (x && x[0] == '/' && strlen(x) < 64)
        snprintf(out, n, "%s/simcache", x);
    else
        snprintf(out, n, "/tmp/simcache-%u", (unsigned)getuid());
}

void config_defaults(config_t *c)
{
    char dir[80];
    memset(c, 0, sizeof *c);
    runtime_dir(dir, sizeof dir);
    snprintf(c->socket, sizeof c->socket, "%s/simcached.sock", dir);
    snprintf(c->admin_socket, sizeof c->admin_socket, "%s/admin.sock", dir);
    snprintf(c->data_dir, sizeof c->data_dir, "%s/data", dir);
    c->socket_mode = 0600;
    c->host_capacity = 1ull << 30;
    c->host_arena_size = 0;
    c->max_entries = 0;
    c->host_prefault = 0;
    c->host_clear_freed = 1;
    c->gpu_capacity = 1ull << 30;
    c->gpu_device = 0;
    snprintf(c->gpu_ipc, sizeof c->gpu_ipc, "auto");
    c->disk_capacity = 0;
    c->disk_lmdb_max_size = 0;
    c->disk_flush_ms = 100;
    c->disk_register_arena = 1;
    snprintf(c->durability, sizeof c->durability, "async");
    snprintf(c->host_huge_pages, sizeof c->host_huge_pages, "try");
    c->default_threshold = 0.8;
    c->max_clients = 256;
    c->max_clients_per_uid = 128;
    c->idle_timeout_ms = 300000;
    c->frame_memory_per_uid = 256ull << 20;
    c->max_frame = 16u << 20;
    c->max_leases_per_client = 65536;
    c->max_puts_per_client = 64;
    c->max_namespaces = 1024;
    c->log_level = LOG_INFO;
    /* Measured on the benchmark's workload at threshold 0.8 (cached/index.c,
     * docs/benchmarks.md): 64 tables with automatic key length. */
    c->index_exact_below = 0;
    c->gpu_score_min_batch = 8;
    c->gpu_score_min_entries = 4096;
    c->drain_timeout_ms = 5000;
    c->frame_timeout_ms = 30000;
    c->poll_us = 0;
    c->staging_keep_bytes = 256ull << 20;
    c->heartbeat_ms = 1000;
    c->node_ttl_ms = 5000;
    c->prototypes_per_ns = 8;
    c->prototype_refresh_puts = 256;
    c->prototype_refresh_ms = 10000;
    c->route_load_weight = 0.0;
}

int config_parse_size(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s)) return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return -1;
    uint64_t mul = 1;
    switch (tolower((unsigned char)*end)) {
    case 'k': mul = 1ull << 10; end++; break;
    case 'm': mul = 1ull << 20; end++; break;
    case 'g': mul = 1ull << 30; end++; break;
    case 't': mul = 1ull << 40; end++; break;
    default: break;
    }
    if (mul > 1 && tolower((unsigned char)*end) == 'i') end++;
    if (tolower((unsigned char)*end) == 'b') end++;
    if (*end) return -1;
    if (v > UINT64_MAX / mul) return -1;
    *out = v * mul;
    return 0;
}

/* One CPU number: digits, below CONFIG_MAX_CPUS. */
static int parse_cpu(const char **s, uint32_t *out)
{
    if (!isdigit((unsigned char)**s)) return -1;
    uint32_t v = 0;
    while (isdigit((unsigned char)**s)) {
        v = v * 10 + (uint32_t)(**s - '0');
        if (v >= CONFIG_MAX_CPUS) return -1;
        (*s)++;
    }
    *out = v;
    return 0;
}

int config_parse_cpus(const char *s, uint64_t *mask)
{
    if (!s) return -1;
    if (mask) memset(mask, 0, CONFIG_MAX_CPUS / 8);
    while (*s) {
        uint32_t lo, hi;
        if (parse_cpu(&s, &lo)) return -1;
        hi = lo;
        if (*s == '-') {
            s++;
            if (parse_cpu(&s, &hi) || hi < lo) return -1;
        }
        for (uint32_t k = lo; mask && k <= hi; k++) mask[k / 64] |= 1ull << (k % 64);
        if (*s == ',' && s[1]) s++;
        else if (*s) return -1;
    }
    return 0;
}

static int parse_uids(const char *s, uint32_t *uids, uint32_t *n)
{
    uint32_t k = 0;
    while (*s) {
        if (!isdigit((unsigned char)*s)) return -1;
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || v > UINT32_MAX - 1 || k == CONFIG_MAX_UIDS) return -1;
        uids[k++] = (uint32_t)v;
        if (*end == ',') end++;
        else if (*end) return -1;
        s = end;
    }
    *n = k;
    return 0;
}

/* Keys of earlier versions that no longer mean anything (the LSH tables
 * and inverted lists the index had before it scanned compact codes): a
 * config file that still names them loads, with a warning; a flag or
 * `config set` is refused. */
static int is_obsolete(const char *key)
{
    static const char *const obsolete[] = { "index_tables", "index_bits", "index_probes" };
    for (size_t i = 0; i < sizeof obsolete / sizeof obsolete[0]; i++)
        if (strcmp(key, obsolete[i]) == 0) return 1;
    return 0;
}

#define OBSOLETE_WHY "the index has no LSH tables or lists to tune since 0.1"

int config_set(config_t *c, const char *key, const char *value, int runtime,
               char *err, size_t errlen)
{
    const key_t_ *k = find_key(key);
    if (!k) {
        if (is_obsolete(key))
            fail(err, errlen, "'%s' is obsolete: " OBSOLETE_WHY, key);
        else
            fail(err, errlen, "unknown key '%.64s'", key);
        return -1;
    }
    if (runtime && k->cls != CONFIG_RUNTIME) {
        fail(err, errlen, "'%s' cannot change at run time (restart needed)", key);
        return -1;
    }
    char *field = (char *)c + k->off;
    char *end;
    switch (k->type) {
    case CONFIG_T_PATH: {
        size_t n = strlen(value);
        if (n == 0 || n >= k->len) {
            fail(err, errlen, "%s: path empty or longer than %zu bytes", key, k->len - 1);
            return -1;
        }
        memcpy(field, value, n + 1);
        return 0;
    }
    case CONFIG_T_STR:
    case CONFIG_T_SECRET: {
        size_t n = strlen(value);
        /* Shown secrets read "(secret)": giving that back keeps the value. */
        if (k->type == CONFIG_T_SECRET && strcmp(value, SECRET_SHOWN) == 0) return 0;
        if (n >= k->len) {
            fail(err, errlen, "%s: longer than %zu bytes", key, k->len - 1);
            return -1;
        }
        if (k->choices && !is_choice(k->choices, value)) {
            fail(err, errlen, "%s: '%.64s' is not one of %s", key, value, k->choices);
            return -1;
        }
        if (k->off == offsetof(config_t, cpu_affinity) && config_parse_cpus(value, NULL)) {
            fail(err, errlen, "%s: '%.64s' is not a CPU list (e.g. 2, 0-3 or 1,4-5; each below %u)",
                 key, value, CONFIG_MAX_CPUS);
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f) {
                fail(err, errlen, "%s: control byte in value", key);
                return -1;
            }
        }
        memcpy(field, value, n + 1);
        return 0;
    }
    case CONFIG_T_SIZE: {
        uint64_t v;
        if (config_parse_size(value, &v) || (double)v < k->min || (double)v > k->max) {
            fail(err, errlen, "%s: '%.64s' is not a size between %.0f and %.0f (suffix k, m, g, t)",
                 key, value, k->min, k->max);
            return -1;
        }
        if (k->len == sizeof(uint32_t)) *(uint32_t *)field = (uint32_t)v;
        else *(uint64_t *)field = v;
        return 0;
    }
    case CONFIG_T_U32: {
        errno = 0;
        unsigned long long v = strtoull(value, &end, 10);
        if (!isdigit((unsigned char)*value) || *end || errno || (double)v < k->min ||
            (double)v > k->max) {
            fail(err, errlen, "%s: '%.64s' is not an integer between %.0f and %.0f", key, value,
                 k->min, k->max);
            return -1;
        }
        *(uint32_t *)field = (uint32_t)v;
        return 0;
    }
    case CONFIG_T_DOUBLE: {
        errno = 0;
        double v = strtod(value, &end);
        if (end == value || *end || errno || !isfinite(v) || v < k->min || v > k->max) {
            fail(err, errlen, "%s: '%.64s' is not a number between %g and %g", key, value, k->min,
                 k->max);
            return -1;
        }
        *(double *)field = v;
        return 0;
    }
    case CONFIG_T_MODE: {
        errno = 0;
        unsigned long v = strtoul(value, &end, 8);
        if (!isdigit((unsigned char)*value) || *end || errno || v > 0777 || (v & 0600) != 0600) {
            fail(err, errlen, "%s: '%.64s' is not an octal mode giving the owner rw (e.g. 0600, 0660)",
                 key, value);
            return -1;
        }
        *(uint32_t *)field = (uint32_t)v;
        return 0;
    }
    case CONFIG_T_LEVEL: {
        int l = log_level_parse(value);
        if (l < 0) {
            fail(err, errlen, "%s: '%.64s' is not one of error, warn, info, debug", key, value);
            return -1;
        }
        *(uint32_t *)field = (uint32_t)l;
        return 0;
    }
    case CONFIG_T_UIDS: {
        uint32_t uids[CONFIG_MAX_UIDS], n;
        if (parse_uids(value, uids, &n)) {
            fail(err, errlen, "%s: '%.64s' is not a comma-separated list of at most %d uids",
                 key, value, CONFIG_MAX_UIDS);
            return -1;
        }
        config_uids_t *u = (config_uids_t *)field;
        memcpy(u->ids, uids, n * sizeof uids[0]);
        u->n = n;
        return 0;
    }
    }
    return -1;
}

static void format_value(const config_t *c, const key_t_ *k, char *out, size_t n)
{
    const char *field = (const char *)c + k->off;
    switch (k->type) {
    case CONFIG_T_PATH:
    case CONFIG_T_STR: snprintf(out, n, "%s", field); break;
    case CONFIG_T_SECRET: snprintf(out, n, "%s", field[0] ? SECRET_SHOWN : ""); break;
    case CONFIG_T_SIZE:
        if (k->len == sizeof(uint32_t)) snprintf(out, n, "%" PRIu32, *(const uint32_t *)field);
        else snprintf(out, n, "%" PRIu64, *(const uint64_t *)field);
        break;
    case CONFIG_T_U32: snprintf(out, n, "%" PRIu32, *(const uint32_t *)field); break;
    case CONFIG_T_DOUBLE: snprintf(out, n, "%g", *(const double *)field); break;
    case CONFIG_T_MODE: snprintf(out, n, "0%03o", (unsigned)*(const uint32_t *)field); break;
    case CONFIG_T_LEVEL: snprintf(out, n, "%s", log_level_name((log_level_t)*(const uint32_t *)field)); break;
    case CONFIG_T_UIDS: {
        size_t used = 0;
        out[0] = 0;
        const config_uids_t *u = (const config_uids_t *)field;
        for (uint32_t i = 0; i < u->n && used < n; i++)
            used += (size_t)snprintf(out + used, n - used, "%s%" PRIu32, i ? "," : "", u->ids[i]);
        break;
    }
    }
}

int config_get(const config_t *c, const char *key, char *out, size_t outlen)
{
    const key_t_ *k = find_key(key);
    if (!k) return -1;
    format_value(c, k, out, outlen);
    return 0;
}

void config_foreach(const config_t *c,
                    void (*fn)(void *arg, const char *key, const char *value, int runtime,
                               const char *help),
                    void *arg)
{
    char buf[512];
    for (size_t i = 0; i < NKEYS; i++) {
        format_value(c, &keys[i], buf, sizeof buf);
        fn(arg, keys[i].name, buf, keys[i].cls == CONFIG_RUNTIME, keys[i].help);
    }
}

/* Do a and b hold the same value of k? Text compares up to its NUL (bytes
 * after it are noise); a uid list only over its n entries. */
static int same_value(const config_t *a, const config_t *b, const key_t_ *k)
{
    const char *fa = (const char *)a + k->off, *fb = (const char *)b + k->off;
    switch (k->type) {
    case CONFIG_T_PATH:
    case CONFIG_T_STR:
    case CONFIG_T_SECRET: return strncmp(fa, fb, k->len) == 0;
    case CONFIG_T_DOUBLE: return *(const double *)fa == *(const double *)fb;
    case CONFIG_T_UIDS: {
        const config_uids_t *ua = (const config_uids_t *)fa, *ub = (const config_uids_t *)fb;
        return ua->n == ub->n && memcmp(ua->ids, ub->ids, ua->n * sizeof ua->ids[0]) == 0;
    }
    default: return memcmp(fa, fb, k->len) == 0;
    }
}

int config_diff(const config_t *a, const config_t *b, config_diff_fn fn, void *arg)
{
    char from[512], to[512];
    int n = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        if (same_value(a, b, &keys[i])) continue;
        n++;
        if (!fn) continue;
        format_value(a, &keys[i], from, sizeof from);
        format_value(b, &keys[i], to, sizeof to);
        fn(arg, keys[i].name, keys[i].cls, from, to);
    }
    return n;
}

int config_copy_key(config_t *dst, const config_t *src, const char *key)
{
    const key_t_ *k = find_key(key);
    if (!k) return -1;
    memcpy((char *)dst + k->off, (const char *)src + k->off, k->len);
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = 0;
    return s;
}

int config_load_text(config_t *c, const char *text, size_t len, const char *name,
                     char *err, size_t errlen)
{
    char line[CONFIG_LINE_MAX];
    size_t pos = 0;
    unsigned lineno = 0;
    while (pos < len) {
        size_t start = pos;
        while (pos < len && text[pos] != '\n') pos++;
        size_t n = pos - start;
        pos++;  /* past '\n' */
        lineno++;
        if (n >= sizeof line) {
            fail(err, errlen, "%s:%u: line longer than %d bytes", name, lineno, CONFIG_LINE_MAX - 1);
            return -1;
        }
        memcpy(line, text + start, n);
        line[n] = 0;
        if (memchr(line, 0, n)) {
            fail(err, errlen, "%s:%u: NUL byte in line", name, lineno);
            return -1;
        }
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char *s = trim(line);
        if (!*s) continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            fail(err, errlen, "%s:%u: expected 'key = value'", name, lineno);
            return -1;
        }
        *eq = 0;
        char *key = trim(s), *value = trim(eq + 1);
        if (is_obsolete(key)) {
            log_warn("%s:%u: '%s' is obsolete and ignored (" OBSOLETE_WHY "); remove it", name,
                     lineno, key);
            continue;
        }
        char why[256];
        if (config_set(c, key, value, 0, why, sizeof why)) {
            fail(err, errlen, "%s:%u: %s", name, lineno, why);
            return -1;
        }
    }
    return 0;
}

int config_load_file(config_t *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fail(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    /* Config files are small; refuse anything that is not. */
    char *buf = malloc(1 << 20);
    if (!buf) {
        fclose(f);
        fail(err, errlen, "out of memory");
        return -1;
    }
    size_t n = fread(buf, 1, 1 << 20, f);
    int rd_err = ferror(f), more = !feof(f);
    fclose(f);
    int rc = -1;
    if (rd_err) fail(err, errlen, "%s: read error", path);
    else if (more) fail(err, errlen, "%s: larger than 1 MiB", path);
    else rc = config_load_text(c, buf, n, path, err, errlen);
    free(buf);
    return rc;
}

int config_uids_has(const config_uids_t *u, uint32_t uid)
{
    for (uint32_t i = 0; i < u->n; i++)
        if (u->ids[i] == uid) return 1;
    return 0;
}
