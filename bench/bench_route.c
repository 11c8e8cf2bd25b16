/* bench_route.c - routing across a fleet: simcache_route() latency, the size
 * of a node's published record, and what route_load_weight does to a
 * flooded node.
 *
 * Starts a redis-server on a private Unix socket and four simcached nodes
 * (own sockets and data directories), fills each with its own topic
 * clusters, waits until every feature table holds all four, then:
 *   1. times simcache_route() from one node against simcache_ping() (the
 *      round trip every call pays) and a missing simcache_lookup();
 *   2. reads each node's record size from Redis (HSTRLEN of hdr and protos)
 *      and prints the formula for other dimensions and k;
 *   3. replicates one "hot" topic on two nodes (the second copy centred a
 *      little off, so its prototype is slightly less similar), floods the
 *      first node with lookups from a background thread, and routes the same
 *      queries with route_load_weight 0 and above: the share of queries sent
 *      to the most loaded node, and how many still land on a node that holds
 *      their topic.
 *
 *   bench_route [SIMCACHED] [--simcached PATH] [--redis-server PATH]
 *               [--dim N] [--scale X]
 *
 * Uses bench_util for the daemon path only. Prints; never asserts. Exits 0 unless it
 * could not run (1), or 77 when redis-server is missing.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <hiredis.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "simcache.h"

#define NODES 4
#define TOPICS_PER_NODE 4
#define PER_TOPIC 64
#define BLOB 4096
#define MODEL "bench-route-model"
#define FP "bench-route/f16"
#define WAIT_MS 120000

static uint32_t dim = 1024;
static double scale = 1.0;
static char tmpdir[64];
static char redis_sock[128];

/* ---- small utilities ---- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double gauss(uint64_t *s)
{
    double u = ((double)(mix(s) >> 11) + 0.5) * 0x1p-53, v = (double)(mix(s) >> 11) * 0x1p-53;
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

static void normalize(float *v)
{
    double nn = 0;
    for (uint32_t i = 0; i < dim; i++) nn += (double)v[i] * v[i];
    for (uint32_t i = 0; i < dim; i++) v[i] = (float)(v[i] / sqrt(nn));
}

static void rand_unit(uint64_t seed, float *v)
{
    uint64_t s = seed;
    for (uint32_t i = 0; i < dim; i++) v[i] = (float)gauss(&s);
    normalize(v);
}

/* cos * c + sqrt(1 - cos^2) * (unit noise orthogonal to c). */
static void near(const float *c, float cos, uint64_t seed, float *out)
{
    rand_unit(seed, out);
    double d = 0;
    for (uint32_t i = 0; i < dim; i++) d += (double)out[i] * c[i];
    for (uint32_t i = 0; i < dim; i++) out[i] -= (float)(d * c[i]);
    normalize(out);
    float s = sqrtf(1 - cos * cos);
    for (uint32_t i = 0; i < dim; i++) out[i] = cos * c[i] + s * out[i];
    normalize(out);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    double p50, p99, mean;
} stats_t;

static stats_t stats(double *v, size_t n)
{
    stats_t s = { 0, 0, 0 };
    if (!n) return s;
    qsort(v, n, sizeof *v, cmp_double);
    for (size_t i = 0; i < n; i++) s.mean += v[i];
    s.mean /= (double)n;
    s.p50 = v[n / 2];
    s.p99 = v[(size_t)((double)(n - 1) * 0.99)];
    return s;
}

/* ---- processes ---- */

typedef struct {
    pid_t pid;
    char sock[128], admin[128], data[128], log[128];
    char id[80];
} node_t;

static pid_t spawn(const char *log, char *const argv[])
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        for (int i = 3; i < 1024; i++) close(i);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static void stop(pid_t *pid)
{
    if (*pid <= 0) return;
    kill(*pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        if (waitpid(*pid, NULL, WNOHANG) == *pid) {
            *pid = 0;
            return;
        }
        sleep_ms(10);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = 0;
}

static int unix_connect(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    size_t n = strlen(path);
    if (n >= sizeof sun.sun_path) return -1;
    memcpy(sun.sun_path, path, n + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun)) {
        close(fd);
        return -1;
    }
    return fd;
}

static int wait_socket(const char *path)
{
    for (int i = 0; i < WAIT_MS / 10; i++) {
        int fd = unix_connect(path);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        sleep_ms(10);
    }
    return -1;
}

/* One admin command; the reply up to END (or its one line) into out. */
static int admin(const node_t *n, const char *cmd, char *out, size_t cap)
{
    int fd = unix_connect(n->admin);
    if (fd < 0) return -1;
    size_t len = strlen(cmd);
    if (write(fd, cmd, len) != (ssize_t)len || write(fd, "\n", 1) != 1) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    out[0] = 0;
    for (;;) {
        ssize_t k = read(fd, out + got, cap - 1 - got);
        if (k <= 0) break;
        got += (size_t)k;
        out[got] = 0;
        int one_line = strncmp(out, "OK", 2) == 0 || strstr(out, "ERROR") == out ||
                       strncmp(out, "CLIENT_ERROR", 12) == 0 || strncmp(out, "SERVER_ERROR", 12) == 0;
        if (strstr(out, "END\n") || (one_line && strchr(out, '\n'))) break;
        if (got + 1 >= cap) break;
    }
    close(fd);
    return 0;
}

static uint64_t info_u64(const node_t *n, const char *key)
{
    char buf[8192], pat[64];
    if (admin(n, "info", buf, sizeof buf)) return UINT64_MAX;
    snprintf(pat, sizeof pat, "\n%s ", key);
    const char *p = strstr(buf, pat);
    return p ? strtoull(p + strlen(pat), NULL, 10) : UINT64_MAX;
}

static int start_node(node_t *n, int i, const char *simcached)
{
    snprintf(n->sock, sizeof n->sock, "%s/n%d.sock", tmpdir, i);
    snprintf(n->admin, sizeof n->admin, "%s/n%d.admin", tmpdir, i);
    snprintf(n->data, sizeof n->data, "%s/n%d.data", tmpdir, i);
    snprintf(n->log, sizeof n->log, "%s/n%d.log", tmpdir, i);
    snprintf(n->id, sizeof n->id, "bench-node-%d", i);
    char url[160];
    snprintf(url, sizeof url, "unix://%s", redis_sock);
    char *argv[] = { (char *)simcached, "--socket", n->sock, "--admin-socket", n->admin,
                     "--data-dir", n->data, "--node-id", n->id, "--redis-url", url,
                     "--heartbeat-ms", "200", "--node-ttl-ms", "2000",
                     "--prototype-refresh-ms", "300", "--host-capacity", "256m",
                     "--log-level", "warn", NULL };
    n->pid = spawn(n->log, argv);
    if (n->pid < 0 || wait_socket(n->sock) || wait_socket(n->admin)) return -1;
    return 0;
}

/* ---- the workload ---- */

static float *centres;     /* NODES * TOPICS_PER_NODE + 1 (the hot copy) rows */
#define HOT_TOPIC 0        /* node 0's first topic, also held by node 1 */
#define HOT_COPY (NODES * TOPICS_PER_NODE)

static float *centre(int t) { return centres + (size_t)t * dim; }

static void make_topics(void)
{
    float *g = malloc(dim * sizeof *g), *r = malloc(dim * sizeof *r);
    rand_unit(1, g);
    for (int t = 0; t < NODES * TOPICS_PER_NODE; t++) {
        rand_unit(100 + (uint64_t)t, r);
        for (uint32_t i = 0; i < dim; i++) centre(t)[i] = 0.6f * g[i] + 0.8f * r[i];
        normalize(centre(t));
    }
    /* The replica of the hot topic on node 1 sits at cosine 0.97 to it. */
    near(centre(HOT_TOPIC), 0.97f, 999, centre(HOT_COPY));
    free(g);
    free(r);
}

static int put_topic(simcache_t *h, int t, int n, uint64_t salt)
{
    static uint8_t blob[BLOB];
    simcache_layout_t l = { SIMCACHE_DTYPE_F16, 2, 1, 1, BLOB / 4, 1 };
    float *e = malloc(dim * sizeof *e);
    int rc = 0;
    for (int k = 0; k < n && rc == 0; k++) {
        near(centre(t), 0.9f, salt + (uint64_t)k, e);
        rc = simcache_put(h, e, &l, blob, BLOB, SIMCACHE_HOST_MEMORY, NULL);
    }
    free(e);
    return rc;
}

static int fill(node_t *n, int i)
{
    simcache_opts_t o;
    simcache_opts_init(&o);
    o.socket_path = n->sock;
    o.model = MODEL;
    o.layout_fingerprint = FP;
    o.dim = dim;
    simcache_t *h;
    if (simcache_connect(&o, &h)) {
        simcache_close(h);
        return -1;
    }
    int rc = 0;
    for (int t = 0; t < TOPICS_PER_NODE && rc == 0; t++) {
        int topic = i * TOPICS_PER_NODE + t;
        rc = put_topic(h, topic, PER_TOPIC, (uint64_t)topic << 20);
    }
    if (i == 1 && rc == 0) rc = put_topic(h, HOT_COPY, PER_TOPIC, 77u << 20);
    simcache_close(h);
    return rc;
}

static simcache_t *open_handle(const node_t *n)
{
    simcache_opts_t o;
    simcache_opts_init(&o);
    o.socket_path = n->sock;
    o.model = MODEL;
    o.layout_fingerprint = FP;
    o.dim = dim;
    simcache_t *h;
    if (simcache_connect(&o, &h)) {
        fprintf(stderr, "bench_route: connect %s: %s\n", n->sock, simcache_last_error(h));
        simcache_close(h);
        return NULL;
    }
    return h;
}

/* Every table holds all nodes, each with prototypes. */
static int converged(node_t *nodes)
{
    char buf[16384];
    for (int i = 0; i < NODES; i++) {
        if (info_u64(&nodes[i], "peers") != NODES - 1) return 0;
        if (admin(&nodes[i], "peers", buf, sizeof buf)) return 0;
        if (strstr(buf, " prototypes=0 ")) return 0;
    }
    return 1;
}

/* ---- the load generator ---- */

typedef struct {
    const node_t *node;
    volatile int stop;
    uint64_t ops;
} load_t;

static void *load_main(void *arg)
{
    load_t *l = arg;
    simcache_t *h = open_handle(l->node);
    if (!h) return NULL;
    float *e = malloc(dim * sizeof *e);
    rand_unit(4242, e);
    while (!l->stop) {
        simcache_match_t m;
        if (simcache_lookup(h, e, 0.999f, &m) == 0) simcache_release(h, &m);
        l->ops++;
    }
    free(e);
    simcache_close(h);
    return NULL;
}

/* ---- main ---- */

static uint64_t hstrlen(redisContext *r, const char *id, const char *field)
{
    redisReply *rep = redisCommand(r, "HSTRLEN simcache:node:%s %s", id, field);
    uint64_t v = rep && rep->type == REDIS_REPLY_INTEGER ? (uint64_t)rep->integer : 0;
    freeReplyObject(rep);
    return v;
}

int main(int argc, char **argv)
{
    char simcached[PATH_MAX];
    const char *redis_exe = getenv("REDIS_SERVER");
    bench_default_simcached(simcached, sizeof simcached);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--simcached") == 0 && i + 1 < argc)
            snprintf(simcached, sizeof simcached, "%s", argv[++i]);
        else if (strcmp(argv[i], "--redis-server") == 0 && i + 1 < argc) redis_exe = argv[++i];
        else if (strcmp(argv[i], "--dim") == 0 && i + 1 < argc) dim = (uint32_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc) scale = atof(argv[++i]);
        else if (argv[i][0] != '-') snprintf(simcached, sizeof simcached, "%s", argv[i]);
        else {
            fprintf(stderr, "usage: bench_route [SIMCACHED] [--redis-server PATH] [--dim N] [--scale X]\n");
            return 1;
        }
    }
    if (!redis_exe) redis_exe = "/usr/bin/redis-server";
    if (access(redis_exe, X_OK)) {
        fprintf(stderr, "bench_route: no redis-server (%s); skipping\n", redis_exe);
        return 77;
    }
    if (access(simcached, X_OK) || dim < 8 || dim > SIMCACHE_MAX_DIM || !(scale > 0)) {
        fprintf(stderr, "bench_route: need simcached (%s), 8 <= dim <= %u, scale > 0\n", simcached,
                SIMCACHE_MAX_DIM);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/bench-route-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    snprintf(redis_sock, sizeof redis_sock, "%s/redis.sock", tmpdir);
    char rlog[128];
    snprintf(rlog, sizeof rlog, "%s/redis.log", tmpdir);
    char *rargv[] = { (char *)redis_exe, "--port", "0", "--unixsocket", redis_sock, "--save", "",
                      "--appendonly", "no", "--dir", tmpdir, NULL };
    pid_t redis_pid = spawn(rlog, rargv);
    node_t nodes[NODES];
    memset(nodes, 0, sizeof nodes);
    int rc = 1;
    centres = malloc((size_t)(NODES * TOPICS_PER_NODE + 1) * dim * sizeof(float));
    redisContext *r = NULL;
    if (redis_pid < 0 || wait_socket(redis_sock)) {
        fprintf(stderr, "bench_route: redis-server did not start\n");
        goto out;
    }
    r = redisConnectUnix(redis_sock);
    make_topics();
    for (int i = 0; i < NODES; i++) {
        if (start_node(&nodes[i], i, simcached) || fill(&nodes[i], i)) {
            fprintf(stderr, "bench_route: node %d did not start or fill (log %s)\n", i, nodes[i].log);
            goto out;
        }
    }
    uint64_t t0 = now_ns();
    while (!converged(nodes)) {
        if (now_ns() - t0 > (uint64_t)WAIT_MS * 1000000u) {
            fprintf(stderr, "bench_route: tables did not converge\n");
            goto out;
        }
        sleep_ms(50);
    }
    struct utsname u;
    uname(&u);
    printf("bench_route: %d nodes, dim %u, %d topics of %d entries per node (+1 replicated hot topic), "
           "k = 8 prototypes per namespace; %s %s, %ld cpus\n",
           NODES, dim, TOPICS_PER_NODE, PER_TOPIC, u.sysname, u.machine, sysconf(_SC_NPROCESSORS_ONLN));
    printf("  tables converged %.0f ms after the last node was filled (heartbeat 200 ms)\n\n",
           (double)(now_ns() - t0) / 1e6);

    /* 1. latency */
    simcache_t *h = open_handle(&nodes[3]);
    if (!h) goto out;
    int reps = (int)(20000 * scale);
    if (reps < 100) reps = 100;
    double *lat = malloc((size_t)reps * sizeof *lat);
    float *q = malloc((size_t)64 * dim * sizeof *q);
    for (int i = 0; i < 64; i++) near(centre(i % (NODES * TOPICS_PER_NODE)), 0.9f, 5000 + (uint64_t)i, q + (size_t)i * dim);
    const char *names[] = { "simcache_ping (round trip floor)", "simcache_lookup (miss, exact scan)",
                            "simcache_route (4 nodes x 8 prototypes)" };
    printf("  %-42s %10s %10s %10s\n", "call (from node 3, one handle)", "p50 us", "p99 us", "mean us");
    for (int which = 0; which < 3; which++) {
        for (int i = 0; i < reps; i++) {
            const float *e = q + (size_t)(i % 64) * dim;
            simcache_node_t nd;
            simcache_match_t m;
            uint64_t a = now_ns();
            if (which == 0) simcache_ping(h);
            else if (which == 1) {
                if (simcache_lookup(h, e, 0.9999f, &m) == 0) simcache_release(h, &m);
            } else simcache_route(h, e, &nd);
            lat[i] = (double)(now_ns() - a) / 1e3;
        }
        stats_t s = stats(lat, (size_t)reps);
        printf("  %-42s %10.1f %10.1f %10.1f\n", names[which], s.p50, s.p99, s.mean);
    }
    free(lat);

    /* Routing accuracy on fresh tasks, for the record. */
    int right = 0, nq = 0;
    for (int i = 0; i < 400; i++) {
        int t = 1 + i % (NODES * TOPICS_PER_NODE - 1);   /* not the replicated topic */
        float *e = q;
        near(centre(t), 0.9f, 900000 + (uint64_t)i, e);
        simcache_node_t nd;
        if (simcache_route(h, e, &nd) == 0) {
            nq++;
            right += strcmp(nd.node_id, nodes[t / TOPICS_PER_NODE].id) == 0;
        }
    }
    printf("  routing accuracy: %d of %d fresh tasks to the node holding their topic (%.1f%%)\n\n",
           right, nq, nq ? 100.0 * right / nq : 0.0);

    /* 2. record size */
    printf("  published record per node (HSTRLEN in Redis): hdr + protos\n");
    for (int i = 0; i < NODES; i++) {
        uint64_t hb = r ? hstrlen(r, nodes[i].id, "hdr") : 0, pb = r ? hstrlen(r, nodes[i].id, "protos") : 0;
        printf("    %-14s hdr %4" PRIu64 " B, protos %7" PRIu64 " B (%" PRIu64 " prototypes)\n",
               nodes[i].id, hb, pb, info_u64(&nodes[i], "prototypes"));
    }
    printf("  formula: protos = 20 + per namespace (24 + k * (4 + 2 * dim)) bytes; hdr ~ 70 B + id + address\n");
    const uint32_t dims[] = { 256, 1024, 4096 }, ks[] = { 8, 16 };
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 2; b++)
            printf("    dim %4u, k %2u: %7u B per namespace\n", dims[a], ks[b],
                   24 + ks[b] * (4 + 2 * dims[a]));
    printf("\n");

    /* 3. load weight: flood node 0, route hot-topic and other tasks from node 3. */
    load_t ld = { .node = &nodes[0] };
    pthread_t th;
    pthread_create(&th, NULL, load_main, &ld);
    /* Until node 3 sees node 0 as the busiest (its rate is published each
     * heartbeat). */
    char buf[16384];
    t0 = now_ns();
    for (;;) {
        admin(&nodes[3], "peers", buf, sizeof buf);
        const char *p = strstr(buf, "node=bench-node-0 ");
        const char *l = p ? strstr(p, " load=") : NULL;
        const char *rt = p ? strstr(p, " rate=") : NULL;
        if (l && rt && atof(l + 6) >= 0.99 && atof(rt + 6) > 100) break;
        if (now_ns() - t0 > (uint64_t)WAIT_MS * 1000000u) break;
        sleep_ms(100);
    }
    sleep_ms(1000);
    admin(&nodes[3], "peers", buf, sizeof buf);
    printf("  node 0 flooded with lookups by a background thread; node 3's table:\n");
    for (char *line = buf; *line && strncmp(line, "END", 3);) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        const char *id = strstr(line, "node="), *rate = strstr(line, " rate="), *load = strstr(line, " load=");
        if (id && rate && load)
            printf("    %.*s rate %8.0f/s  load %.2f\n", (int)strcspn(id, " "), id, atof(rate + 6),
                   atof(load + 6));
        if (!nl) break;
        line = nl + 1;
    }
    const double weights[] = { 0, 0.02, 0.05, 0.1, 0.2, 0.5 };
    int nw = (int)(sizeof weights / sizeof weights[0]);
    int per = (int)(400 * scale);
    if (per < 40) per = 40;
    printf("\n  %-8s %22s %22s %26s\n", "weight", "to node 0 (hot topic)", "to node 0 (all tasks)",
           "to a node holding topic");
    for (int w = 0; w < nw; w++) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "config set route_load_weight %g", weights[w]);
        admin(&nodes[3], cmd, buf, sizeof buf);
        int hot0 = 0, hot = 0, all0 = 0, all = 0, holder = 0;
        for (int i = 0; i < per; i++) {
            /* Half the tasks are of the hot topic, the rest spread evenly. */
            int t = i % 2 ? HOT_TOPIC : i / 2 % (NODES * TOPICS_PER_NODE);
            float *e = q;
            near(centre(t), 0.9f, 3000000 + (uint64_t)i, e);
            simcache_node_t nd;
            if (simcache_route(h, e, &nd)) continue;
            int to0 = strcmp(nd.node_id, nodes[0].id) == 0;
            all++;
            all0 += to0;
            if (t == HOT_TOPIC) {
                hot++;
                hot0 += to0;
                holder += to0 || strcmp(nd.node_id, nodes[1].id) == 0;
            } else {
                holder += strcmp(nd.node_id, nodes[t / TOPICS_PER_NODE].id) == 0;
            }
        }
        printf("  %-8g %21.1f%% %21.1f%% %25.1f%%\n", weights[w], 100.0 * hot0 / (hot ? hot : 1),
               100.0 * all0 / (all ? all : 1), 100.0 * holder / (all ? all : 1));
    }
    ld.stop = 1;
    pthread_join(th, NULL);
    printf("  (load thread: %" PRIu64 " lookups on node 0; the hot topic's replica on node 1 is "
           "centred at cosine 0.97 to the original)\n", ld.ops);
    simcache_close(h);
    free(q);
    rc = 0;
out:
    for (int i = 0; i < NODES; i++) stop(&nodes[i].pid);
    if (r) redisFree(r);
    stop(&redis_pid);
    free(centres);
    if (rc == 0 && !getenv("BENCH_KEEP")) {
        nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    } else {
        fprintf(stderr, "bench_route: logs kept in %s\n", tmpdir);
    }
    return rc;
}
