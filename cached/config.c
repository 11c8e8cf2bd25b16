/* config.c - the settings table and its one parser.
 *
 * Each key is a row: name, type, offset into config_t, bounds, whether it can
 * change while the daemon runs, and a help line. File, flags, admin
 * `config set` and SIGHUP all go through config_set(), so every value is
 * checked in one place.
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

typedef enum { T_PATH, T_SIZE, T_U32, T_DOUBLE, T_MODE, T_LEVEL, T_UIDS, T_STR, T_SECRET } key_type_t;

typedef struct {
    const char *name;
    key_type_t type;
    size_t off;
    size_t len;          /* T_PATH: buffer size */
    double min, max;
    int runtime;
    const char *help;
} key_t_;

#define F(field) offsetof(config_t, field), sizeof(((config_t *)0)->field)

static const key_t_ keys[] = {
    { "socket", T_PATH, F(socket), 0, 0, 0, "client Unix socket path" },
    { "admin_socket", T_PATH, F(admin_socket), 0, 0, 0, "admin Unix socket path" },
    { "data_dir", T_PATH, F(data_dir), 0, 0, 0, "data directory (index seed)" },
    { "socket_mode", T_MODE, F(socket_mode), 0, 0777, 0, "permissions of both sockets (octal)" },
    { "host_capacity", T_SIZE, F(host_capacity), 1 << 20, 1ull << 46, 1,
      "bytes of KV the host tier holds" },
    { "host_arena_size", T_SIZE, F(host_arena_size), 0, 1ull << 46, 0,
      "size of the shared memfd arena (0: host_capacity); host_capacity may grow up to it" },
    { "host_prefault", T_U32, F(host_prefault), 0, 1, 0,
      "1: fault the whole host arena in at start, in a background thread (commits its memory)" },
    { "host_huge_pages", T_STR, F(host_huge_pages), 0, 0, 0,
      "try: back the host arena with 2 MiB hugetlb pages when the pool (vm.nr_hugepages) holds "
      "it, else 4 KiB pages advised for THP; on: hugetlb or refuse to start; off: 4 KiB pages" },
    { "gpu_capacity", T_SIZE, F(gpu_capacity), 0, 1ull << 46, 0,
      "bytes of device memory for the GPU tier when a CUDA device is found (0: no GPU tier)" },
    { "gpu_device", T_U32, F(gpu_device), 0, 1023, 0, "CUDA device ordinal of the GPU tier" },
    { "gpu_ipc", T_STR, F(gpu_ipc), 0, 0, 0,
      "auto: share the GPU arena through VMM POSIX fds where the device can, else legacy CUDA IPC; legacy: always legacy" },
    { "disk_capacity", T_SIZE, F(disk_capacity), 0, 1ull << 50, 0,
      "bytes of the disk tier's blob file in data_dir (0: no disk tier)" },
    { "disk_lmdb_max_size", T_SIZE, F(disk_lmdb_max_size), 0, 1ull << 46, 0,
      "largest the disk tier's LMDB map may grow to, 0 for 64 GiB (at the limit puts to disk are refused)" },
    { "disk_flush_ms", T_U32, F(disk_flush_ms), 0, 60000, 0,
      "async durability: write host entries to disk in the background every N ms, oldest first (0: only on demotion, checkpoint and shutdown)" },
    { "disk_register_arena", T_U32, F(disk_register_arena), 0, 1, 0,
      "1: with a disk tier, pin the host arena and register it with io_uring (commits its memory)" },
    { "cpu_affinity", T_STR, F(cpu_affinity), 0, 0, 0,
      "CPUs the daemon runs on, e.g. 2 or 2-3 (empty: any); keep them apart from the inference threads" },
    { "poll_us", T_U32, F(poll_us), 0, 100000, 1,
      "after a client request the event loop keeps polling, without sleeping, this many "
      "microseconds: a request that comes within it skips the wake-up of an idle CPU (40-50 us "
      "on a VM); it spends that CPU, so give the daemon a core of its own (cpu_affinity); 0: off" },
    { "durability", T_STR, F(durability), 0, 0, 0,
      "async: a put is acknowledged in the host tier; sync: only once it is on disk" },
    { "max_entries", T_SIZE, F(max_entries), 0, 1ull << 40, 1,
      "entry cap over all namespaces, 0 for none (512: the paper's setting)" },
    { "default_threshold", T_DOUBLE, F(default_threshold), -1, 1, 1,
      "cosine similarity a lookup needs when the request gives none" },
    { "max_clients", T_U32, F(max_clients), 1, 65536, 1, "concurrent client connections" },
    { "max_frame", T_SIZE, F(max_frame), 4096, 1u << 30, 1, "largest request payload in bytes" },
    { "max_leases_per_client", T_U32, F(max_leases_per_client), 1, 1u << 24, 1,
      "leases one connection may hold" },
    { "max_puts_per_client", T_U32, F(max_puts_per_client), 1, 4096, 1,
      "unfinished puts one connection may hold" },
    { "max_namespaces", T_U32, F(max_namespaces), 1, 1u << 20, 1, "namespaces the daemon keeps" },
    { "log_level", T_LEVEL, F(log_level), 0, 3, 1, "error, warn, info or debug" },
    { "index_tables", T_U32, F(index_tables), 1, 64, 0,
      "ignored (kept for old config files: the index scans compact codes, it has no LSH tables)" },
    { "index_bits", T_U32, F(index_bits), 0, 24, 0,
      "ignored (kept for old config files: the index scans compact codes, it has no LSH keys)" },
    { "index_probes", T_U32, F(index_probes), 0, 1, 0,
      "ignored (kept for old config files: the index has no lists to probe; every entry's "
      "code is scanned)" },
    { "index_exact_below", T_U32, F(index_exact_below), 0, 1u << 24, 0,
      "search exactly (no codes) while a namespace has fewer entries (0: by dimension, 1024..4096)" },
    { "gpu_score_min_batch", T_U32, F(gpu_score_min_batch), 0, 65536, 1,
      "lookup batches of at least this many queries are scored on the GPU (cuBLAS) when one "
      "was found; 0: off (0 at start: no GPU scoring until a restart)" },
    { "gpu_score_min_entries", T_U32, F(gpu_score_min_entries), 0, 1u << 30, 1,
      "... in namespaces of at least this many entries" },
    { "staging_keep_bytes", T_SIZE, F(staging_keep_bytes), 0, 1ull << 40, 1,
      "largest staging buffer a client keeps between puts (0: a fresh one per put)" },
    { "frame_timeout_ms", T_U32, F(frame_timeout_ms), 100, 3600000, 1,
      "a client that leaves a frame unfinished this long is disconnected" },
    { "drain_timeout_ms", T_U32, F(drain_timeout_ms), 0, 600000, 1,
      "how long SIGTERM waits for replies to reach clients" },
    { "allow_uids", T_UIDS, F(allow_uids), 0, 0, 1,
      "comma-separated uids allowed to connect (SO_PEERCRED); empty: any" },
    { "redis_url", T_STR, F(redis_url), 0, 0, 0,
      "global feature table: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or unix:///PATH[?db=N]; "
      "empty: single node" },
    { "node_id", T_STR, F(node_id), 0, 0, 0,
      "this node's id in the feature table ([A-Za-z0-9._:-]); empty: HOSTNAME-HASH(socket)" },
    { "advertise", T_STR, F(advertise), 0, 0, 1,
      "address route answers give for this node; empty: HOSTNAME:SOCKET" },
    { "heartbeat_ms", T_U32, F(heartbeat_ms), 50, 600000, 1,
      "how often the node record is rewritten and the feature table re-read" },
    { "node_ttl_ms", T_U32, F(node_ttl_ms), 100, 3600000, 1,
      "TTL of the node record: a node silent this long leaves every table" },
    { "prototypes_per_ns", T_U32, F(prototypes_per_ns), 1, 64, 0,
      "prototypes (centroids of the cached embeddings) kept per namespace" },
    { "prototype_refresh_puts", T_U32, F(prototype_refresh_puts), 1, 1u << 24, 1,
      "refit a namespace's prototypes after this many puts (at the end of the batch)" },
    { "prototype_refresh_ms", T_U32, F(prototype_refresh_ms), 100, 86400000, 1,
      "... or this long after the last refit if anything changed" },
    { "route_load_weight", T_DOUBLE, F(route_load_weight), 0, 10, 1,
      "route score = similarity - weight * load (load: request rate relative to the busiest node)" },
    { "fleet_key", T_SECRET, F(fleet_key), 0, 0, 0,
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
    return k ? k->runtime : -1;
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
    c->max_frame = 16u << 20;
    c->max_leases_per_client = 65536;
    c->max_puts_per_client = 64;
    c->max_namespaces = 1024;
    c->log_level = LOG_INFO;
    /* Measured on the benchmark's workload at threshold 0.8 (cached/index.c,
     * docs/benchmarks.md): 64 tables with automatic key length. */
    c->index_tables = 64;
    c->index_bits = 0;
    c->index_probes = 1;
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

int config_set(config_t *c, const char *key, const char *value, int runtime,
               char *err, size_t errlen)
{
    const key_t_ *k = find_key(key);
    if (!k) {
        fail(err, errlen, "unknown key '%.64s'", key);
        return -1;
    }
    if (runtime && !k->runtime) {
        fail(err, errlen, "'%s' cannot change at run time (restart needed)", key);
        return -1;
    }
    char *field = (char *)c + k->off;
    char *end;
    switch (k->type) {
    case T_PATH: {
        size_t n = strlen(value);
        if (n == 0 || n >= k->len) {
            fail(err, errlen, "%s: path empty or longer than %zu bytes", key, k->len - 1);
            return -1;
        }
        memcpy(field, value, n + 1);
        return 0;
    }
    case T_STR:
    case T_SECRET: {
        size_t n = strlen(value);
        /* Shown secrets read "(secret)": giving that back keeps the value. */
        if (k->type == T_SECRET && strcmp(value, SECRET_SHOWN) == 0) return 0;
        if (n >= k->len) {
            fail(err, errlen, "%s: longer than %zu bytes", key, k->len - 1);
            return -1;
        }
        if (k->off == offsetof(config_t, durability) && strcmp(value, "async") &&
            strcmp(value, "sync")) {
            fail(err, errlen, "%s: '%.64s' is not async or sync", key, value);
            return -1;
        }
        if (k->off == offsetof(config_t, cpu_affinity) && config_parse_cpus(value, NULL)) {
            fail(err, errlen, "%s: '%.64s' is not a CPU list (e.g. 2, 0-3 or 1,4-5; each below %u)",
                 key, value, CONFIG_MAX_CPUS);
            return -1;
        }
        if (k->off == offsetof(config_t, host_huge_pages) && strcmp(value, "try") &&
            strcmp(value, "on") && strcmp(value, "off")) {
            fail(err, errlen, "%s: '%.64s' is not try, on or off", key, value);
            return -1;
        }
        if (k->off == offsetof(config_t, gpu_ipc) && strcmp(value, "auto") &&
            strcmp(value, "legacy")) {
            fail(err, errlen, "%s: '%.64s' is not auto or legacy", key, value);
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
    case T_SIZE: {
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
    case T_U32: {
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
    case T_DOUBLE: {
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
    case T_MODE: {
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
    case T_LEVEL: {
        int l = log_level_parse(value);
        if (l < 0) {
            fail(err, errlen, "%s: '%.64s' is not one of error, warn, info, debug", key, value);
            return -1;
        }
        *(uint32_t *)field = (uint32_t)l;
        return 0;
    }
    case T_UIDS: {
        uint32_t uids[CONFIG_MAX_UIDS], n;
        if (parse_uids(value, uids, &n)) {
            fail(err, errlen, "%s: '%.64s' is not a comma-separated list of at most %d uids",
                 key, value, CONFIG_MAX_UIDS);
            return -1;
        }
        memcpy(c->allow_uids, uids, n * sizeof uids[0]);
        c->n_allow_uids = n;
        return 0;
    }
    }
    return -1;
}

static void format_value(const config_t *c, const key_t_ *k, char *out, size_t n)
{
    const char *field = (const char *)c + k->off;
    switch (k->type) {
    case T_PATH:
    case T_STR: snprintf(out, n, "%s", field); break;
    case T_SECRET: snprintf(out, n, "%s", field[0] ? SECRET_SHOWN : ""); break;
    case T_SIZE:
        if (k->len == sizeof(uint32_t)) snprintf(out, n, "%" PRIu32, *(const uint32_t *)field);
        else snprintf(out, n, "%" PRIu64, *(const uint64_t *)field);
        break;
    case T_U32: snprintf(out, n, "%" PRIu32, *(const uint32_t *)field); break;
    case T_DOUBLE: snprintf(out, n, "%g", *(const double *)field); break;
    case T_MODE: snprintf(out, n, "0%03o", (unsigned)*(const uint32_t *)field); break;
    case T_LEVEL: snprintf(out, n, "%s", log_level_name((log_level_t)*(const uint32_t *)field)); break;
    case T_UIDS: {
        size_t used = 0;
        out[0] = 0;
        for (uint32_t i = 0; i < c->n_allow_uids && used < n; i++)
            used += (size_t)snprintf(out + used, n - used, "%s%" PRIu32, i ? "," : "",
                                     c->allow_uids[i]);
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
        fn(arg, keys[i].name, buf, keys[i].runtime, keys[i].help);
    }
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
