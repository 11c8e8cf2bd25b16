/* test_cluster.c - four simcached nodes and a real redis-server: the global
 * feature table, routing, and the faults it must survive.
 *
 * One scenario, in the order an operator would meet it: the nodes start
 * while Redis is still down (local service works, the table is stale), each
 * is filled with its own topic clusters of a generated workload, Redis
 * comes up and every table converges to all four nodes; routing sends the
 * queries of a cluster to the node that holds it; malformed and foreign
 * records in Redis are ignored and counted; a killed node leaves the other
 * tables once its key's TTL runs out; Redis stops and restarts without any
 * node losing local data, and the table rebuilds. Waits poll with a
 * generous deadline only to avoid hangs; nothing asserts on timing.
 *
 * argv: SIMCACHED REDIS-SERVER (exits 77, skip, if REDIS-SERVER is empty
 * or not executable).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define NODES 4
#define TOPICS_PER_NODE 4
#define TOPICS (NODES * TOPICS_PER_NODE)
#define PER_TOPIC 40
#define DIM 64
#define BLOB 4096
#define MODEL "cluster-model"
#define FP "cluster-layout/f16"
#define WAIT_MS 90000          /* a deadline against hangs, not a timing claim */
#define QUERIES_PER_NODE 100

static const char *redis_bin;

/* ---- redis-server on a private Unix socket ---- */

typedef struct {
    char dir[64];
    char sock[108];
    char url[128];
    pid_t pid;
} redis_t;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int redis_start(redis_t *r)
{
    char log[128];
    snprintf(log, sizeof log, "%s/redis.log", r->dir);
    fflush(NULL);
    r->pid = fork();
    if (r->pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        for (int i = 3; i < 1024; i++) close(i);
        /* No TCP, no persistence: a restart really starts empty. */
        execl(redis_bin, redis_bin, "--port", "0", "--unixsocket", r->sock, "--unixsocketperm",
              "700", "--save", "", "--appendonly", "no", "--dir", r->dir, (char *)NULL);
        _exit(127);
    }
    if (r->pid < 0) return -1;
    uint64_t end = mono_ms() + WAIT_MS;
    while (mono_ms() < end) {
        struct timeval tv = { 1, 0 };
        redisContext *c = redisConnectUnixWithTimeout(r->sock, tv);
        if (c && !c->err) {
            redisReply *rep = redisCommand(c, "PING");
            int ok = rep && rep->type == REDIS_REPLY_STATUS;
            freeReplyObject(rep);
            redisFree(c);
            if (ok) return 0;
        } else if (c) {
            redisFree(c);
        }
        it_sleep_ms(20);
    }
    return -1;
}

static void redis_stop(redis_t *r)
{
    if (r->pid <= 0) return;
    kill(r->pid, SIGTERM);
    if (it_wait_pid(r->pid, IT_TIMEOUT_MS) == -1) {
        kill(r->pid, SIGKILL);
        it_wait_pid(r->pid, IT_TIMEOUT_MS);
    }
    r->pid = 0;
    unlink(r->sock);
}

/* One command on a short-lived connection; the reply must not be an error. */
static void redis_do(const redis_t *r, const char *fmt, ...)
{
    struct timeval tv = { 5, 0 };
    redisContext *c = redisConnectUnixWithTimeout(r->sock, tv);
    assert_true(c && !c->err);
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(rep);
    if (rep->type == REDIS_REPLY_ERROR) fprintf(stderr, "redis: %s\n", rep->str);
    assert_int_not_equal(rep->type, REDIS_REPLY_ERROR);
    freeReplyObject(rep);
    redisFree(c);
}

/* A well-formed hdr value (docs/cluster.md) for a made-up node. */
static void fake_hdr(proto_wr_t *w, const char *id, uint64_t seq)
{
    proto_wr_init(w);
    proto_wr_u32(w, 0x314e4353u);
    proto_wr_u16(w, 1);
    proto_wr_u16(w, 0);
    proto_wr_str(w, id, strlen(id));
    proto_wr_str(w, "nowhere:0", 9);
    proto_wr_u64(w, seq);
    proto_wr_u64(w, 0);
    proto_wr_u64(w, 0);
    proto_wr_u64(w, 0);
    proto_wr_u64(w, 0);
    proto_wr_f32(w, 0);
    assert_false(w->err);
}

/* ---- the workload ---- */

static float centres[TOPICS][DIM];

/* Anisotropic like real embeddings: every topic shares a common direction,
 * so unrelated topics still have cosine ~0.35. */
static void make_topics(void)
{
    float g[DIM], r[DIM];
    it_unit(1000, g, DIM);
    for (int t = 0; t < TOPICS; t++) {
        it_unit(2000 + (uint64_t)t, r, DIM);
        double nn = 0;
        for (int i = 0; i < DIM; i++) {
            centres[t][i] = 0.6f * g[i] + 0.8f * r[i];
            nn += (double)centres[t][i] * centres[t][i];
        }
        for (int i = 0; i < DIM; i++) centres[t][i] /= (float)sqrt(nn);
    }
}

/* A task of topic t: cosine 0.9 with its centre. */
static void task(int t, uint64_t seed, float *out)
{
    it_similar(centres[t], 0.9f, seed, out, DIM);
}

static int owner_of(int topic) { return topic / TOPICS_PER_NODE; }

/* ---- the fleet ---- */

static redis_t R;
static it_daemon_t N[NODES];
static char node_id[NODES][80];
static uint64_t first_id[NODES];

static void start_node(int i)
{
    assert_int_equal(it_daemon_start(&N[i], "--redis-url", R.url, "--heartbeat-ms", "100",
                                     "--node-ttl-ms", "3000", "--prototype-refresh-ms", "200",
                                     "--prototype-refresh-puts", "64", "--host-capacity", "64m",
                                     NULL),
                     0);
    char info[8192];
    assert_int_equal(it_admin(&N[i], "info", info, sizeof info), 0);
    const char *p = strstr(info, "node_id ");
    assert_non_null(p);
    sscanf(p + 8, "%79s", node_id[i]);
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < NODES; i++) it_daemon_cleanup(&N[i]);
    redis_stop(&R);
    char log[128];
    snprintf(log, sizeof log, "%s/redis.log", R.dir);
    if (!getenv("IT_KEEP")) {
        unlink(log);
        rmdir(R.dir);
    }
    return 0;
}

/* Node ids (and their prototype counts) in a node's `peers` reply. */
static int peer_rows(int i, char ids[][80], uint64_t *protos, int max)
{
    char buf[16384];
    if (it_admin(&N[i], "peers", buf, sizeof buf)) return -1;
    int n = 0;
    for (char *line = buf; line && *line && n < max;) {
        char *next = strchr(line, '\n');
        if (next) *next++ = 0;
        const char *id = strstr(line, "node="), *pr = strstr(line, " prototypes=");
        if (id && pr) {
            sscanf(id + 5, "%79s", ids[n]);
            protos[n] = strtoull(pr + 12, NULL, 10);
            n++;
        }
        line = next;
    }
    return n;
}

/* Does node i's table hold exactly the nodes in `want` (bitmask), each with
 * prototypes? */
static int table_is(int i, unsigned want)
{
    char ids[NODES + 8][80];
    uint64_t protos[NODES + 8];
    int n = peer_rows(i, ids, protos, NODES + 8);
    if (n != __builtin_popcount(want)) return 0;
    for (int r = 0; r < n; r++) {
        int known = 0;
        for (int j = 0; j < NODES; j++)
            if ((want & (1u << j)) && strcmp(ids[r], node_id[j]) == 0 && protos[r] > 0) known = 1;
        if (!known) return 0;
    }
    return 1;
}

static void wait_tables(unsigned live, const char *what)
{
    uint64_t end = mono_ms() + WAIT_MS;
    for (;;) {
        int ok = 1;
        for (int i = 0; i < NODES && ok; i++)
            if (live & (1u << i)) ok = table_is(i, live);
        if (ok) return;
        if (mono_ms() > end) {
            char buf[16384];
            for (int i = 0; i < NODES; i++) {
                if (!(live & (1u << i))) continue;
                it_admin(&N[i], "peers", buf, sizeof buf);
                fprintf(stderr, "node %d peers:\n%s\n", i, buf);
            }
            fail_msg("tables did not converge (%s)", what);
        }
        it_sleep_ms(50);
    }
}

static uint64_t wait_info(int i, const char *key, uint64_t want)
{
    uint64_t end = mono_ms() + WAIT_MS, v;
    do {
        v = it_admin_u64(&N[i], "info", key);
        if (v == want) return v;
        it_sleep_ms(50);
    } while (mono_ms() < end);
    return v;
}

static void fill(int i)
{
    simcache_t *h = it_connect(N[i].sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    float e[DIM];
    /* Interleaved topics, as a real stream of tasks would come. */
    for (int k = 0; k < PER_TOPIC; k++) {
        for (int t = 0; t < TOPICS_PER_NODE; t++) {
            int topic = i * TOPICS_PER_NODE + t;
            task(topic, 100000u * (uint64_t)topic + (uint64_t)k, e);
            uint64_t id = it_put(h, e, BLOB, (uint64_t)topic * 1000 + (uint64_t)k, NULL);
            assert_true(id != 0);
            if (k == 0 && t == 0) first_id[i] = id;
        }
    }
    simcache_close(h);
}

/* Route QUERIES_PER_NODE fresh tasks from each live node; returns the share
 * that went to the owner of their topic, and checks the local flag. */
static double route_share(unsigned live, uint64_t salt)
{
    int right = 0, total = 0;
    for (int i = 0; i < NODES; i++) {
        if (!(live & (1u << i))) continue;
        simcache_t *h = it_connect(N[i].sock, MODEL, FP, NULL, DIM);
        assert_non_null(h);
        for (int q = 0; q < QUERIES_PER_NODE; q++) {
            int topic = (q * 7 + i) % TOPICS;
            if (!(live & (1u << owner_of(topic)))) continue;
            float e[DIM];
            task(topic, salt + 7777777u * (uint64_t)(i + 1) + (uint64_t)q, e);
            simcache_node_t nd;
            assert_int_equal(simcache_route(h, e, &nd), 0);
            total++;
            if (strcmp(nd.node_id, node_id[owner_of(topic)]) == 0) right++;
            assert_int_equal(nd.local, strcmp(nd.node_id, node_id[i]) == 0);
            assert_int_equal((nd.flags & SIMCACHE_ROUTE_LOCAL) != 0, nd.local);
        }
        simcache_close(h);
    }
    assert_true(total > 0);
    return (double)right / total;
}

/* Lookups of each live node's first entry still hit it, byte for byte. */
static void local_data_intact(unsigned live)
{
    for (int i = 0; i < NODES; i++) {
        if (!(live & (1u << i))) continue;
        simcache_t *h = it_connect(N[i].sock, MODEL, FP, NULL, DIM);
        assert_non_null(h);
        float e[DIM];
        int topic = i * TOPICS_PER_NODE;
        task(topic, 100000u * (uint64_t)topic, e);
        simcache_match_t m;
        assert_int_equal(simcache_lookup(h, e, 0.99f, &m), 0);
        assert_true(m.id == first_id[i]);
        assert_int_equal(it_check(m.data, m.size, (uint64_t)topic * 1000), 0);
        assert_int_equal(simcache_release(h, &m), 0);
        simcache_close(h);
        assert_int_equal(it_admin_u64(&N[i], "stats", "entries"),
                         (uint64_t)PER_TOPIC * TOPICS_PER_NODE);
    }
}

static void fleet_converges_routes_and_survives_faults(void **state)
{
    (void)state;
    make_topics();
    snprintf(R.dir, sizeof R.dir, "/tmp/scredis-XXXXXX");
    assert_non_null(mkdtemp(R.dir));
    snprintf(R.sock, sizeof R.sock, "%s/redis.sock", R.dir);
    snprintf(R.url, sizeof R.url, "unix://%s", R.sock);

    /* 1. Redis is not there yet: the nodes start and serve anyway. */
    for (int i = 0; i < NODES; i++) start_node(i);
    for (int i = 0; i < NODES; i++) {
        assert_int_equal(it_admin_u64(&N[i], "info", "redis_connected"), 0);
        assert_int_equal(it_admin_u64(&N[i], "info", "table_stale"), 1);
        fill(i);
    }
    {
        simcache_t *h = it_connect(N[1].sock, MODEL, FP, NULL, DIM);
        float e[DIM];
        simcache_node_t nd;
        task(0, 5, e);   /* node 0's topic, but node 1 knows no peers */
        assert_int_equal(simcache_route(h, e, &nd), 0);
        assert_string_equal(nd.node_id, node_id[1]);
        assert_true(nd.local && (nd.flags & SIMCACHE_ROUTE_STALE));
        simcache_close(h);
    }
    for (int i = 0; i < NODES; i++)
        for (int j = i + 1; j < NODES; j++) assert_string_not_equal(node_id[i], node_id[j]);

    /* 2. Redis comes up: every table converges to all four nodes. */
    assert_int_equal(redis_start(&R), 0);
    wait_tables(0xf, "after redis started");
    for (int i = 0; i < NODES; i++) {
        assert_int_equal(wait_info(i, "table_stale", 0), 0);
        assert_int_equal(it_admin_u64(&N[i], "info", "redis_connected"), 1);
        assert_int_equal(it_admin_u64(&N[i], "info", "peers"), NODES - 1);
    }

    /* 3. Routing sends a topic's queries to the node that holds it. */
    double share = route_share(0xf, 1);
    print_message("routing: %.1f%% of %d queries to the node holding their topic\n",
                  100 * share, NODES * QUERIES_PER_NODE);
    assert_true(share >= 0.95);
    {
        /* The admin command agrees with the client call. */
        float e[DIM];
        char cmd[2048], buf[16384];
        task(9, 4242, e);   /* topic 9 lives on node 2 */
        int n = snprintf(cmd, sizeof cmd, "route 1 ");
        for (int i = 0; i < DIM; i++)
            n += snprintf(cmd + n, sizeof cmd - (size_t)n, "%s%.7g", i ? "," : "", (double)e[i]);
        assert_int_equal(it_admin(&N[0], cmd, buf, sizeof buf), 0);
        char want[128];
        snprintf(want, sizeof want, "node %.79s\n", node_id[2]);
        if (!strstr(buf, want)) fail_msg("admin route: %s", buf);
        assert_non_null(strstr(buf, "local 0"));
        assert_int_equal(it_admin(&N[0], "prototypes 1", buf, sizeof buf), 0);
        for (int i = 0; i < NODES; i++) {
            snprintf(want, sizeof want, "node=%.79s ", node_id[i]);
            assert_non_null(strstr(buf, want));
        }
    }

    /* 4. Malformed and foreign records are ignored and counted. */
    uint64_t ignored0 = it_admin_u64(&N[0], "info", "records_ignored");
    redis_do(&R, "HSET simcache:node:bogus v 1 hdr %b", "garbage", (size_t)7);
    redis_do(&R, "SET simcache:node:foreign %s", "not a hash");
    redis_do(&R, "HSET simcache:node:future v 9 hdr %s", "x");
    redis_do(&R, "SADD simcache:nodes bogus foreign future %s", "bad/id");
    redis_do(&R, "PUBLISH simcache:events %s", "hello from another program");
    uint64_t end = mono_ms() + WAIT_MS;
    while (it_admin_u64(&N[0], "info", "records_ignored") < ignored0 + 4 && mono_ms() < end)
        it_sleep_ms(50);
    assert_true(it_admin_u64(&N[0], "info", "records_ignored") >= ignored0 + 4);
    for (int i = 0; i < NODES; i++) assert_true(table_is(i, 0xf));
    assert_true(route_share(0xf, 2) >= 0.95);
    redis_do(&R, "DEL simcache:node:bogus simcache:node:foreign simcache:node:future");
    redis_do(&R, "SREM simcache:nodes %s", "bad/id");

    /* A node with a valid hdr but malformed prototypes joins the table
     * without prototypes and is never routed to; a hdr copied under another
     * key (an impostor) is refused. */
    proto_wr_t hw;
    fake_hdr(&hw, "halfbaked", 99);
    ignored0 = it_admin_u64(&N[0], "info", "records_ignored");
    redis_do(&R, "HSET simcache:node:halfbaked v 1 hdr %b protos %b", hw.buf, hw.len, "SCP1junk",
             (size_t)8);
    redis_do(&R, "PEXPIRE simcache:node:halfbaked 600000");
    proto_wr_free(&hw);
    fake_hdr(&hw, node_id[1], 1);
    redis_do(&R, "HSET simcache:node:impostor v 1 hdr %b", hw.buf, hw.len);
    proto_wr_free(&hw);
    redis_do(&R, "SADD simcache:nodes halfbaked impostor");
    end = mono_ms() + WAIT_MS;
    for (;;) {
        char ids[NODES + 8][80];
        uint64_t protos[NODES + 8];
        int n = peer_rows(0, ids, protos, NODES + 8), half = 0, imp = 0;
        for (int k = 0; k < n; k++) {
            half += strcmp(ids[k], "halfbaked") == 0 && protos[k] == 0;
            imp += strcmp(ids[k], "impostor") == 0;
        }
        if (half && !imp && n == NODES + 1 &&
            it_admin_u64(&N[0], "info", "records_ignored") >= ignored0 + 2)
            break;
        if (mono_ms() > end) fail_msg("half-baked node not seen as expected");
        it_sleep_ms(50);
    }
    assert_true(route_share(0xf, 5) >= 0.95);
    redis_do(&R, "DEL simcache:node:halfbaked simcache:node:impostor");
    wait_tables(0xf, "after the fake records went");

    /* 5. A killed node leaves every other table once its key expires. */
    kill(N[3].pid, SIGKILL);
    it_wait_pid(N[3].pid, IT_TIMEOUT_MS);
    N[3].pid = 0;
    wait_tables(0x7, "after node 3 was killed");
    assert_true(route_share(0x7, 3) >= 0.95);

    /* 6. Redis stops: local service goes on, tables are marked stale. */
    redis_stop(&R);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(wait_info(i, "redis_connected", 0), 0);
        assert_int_equal(it_admin_u64(&N[i], "info", "table_stale"), 1);
    }
    local_data_intact(0x7);
    {
        simcache_t *h = it_connect(N[0].sock, MODEL, FP, NULL, DIM);
        float e[DIM];
        task(1, 31337, e);
        assert_true(it_put(h, e, BLOB, 31337, NULL) != 0);
        simcache_node_t nd;
        assert_int_equal(simcache_route(h, e, &nd), 0);
        assert_true(nd.flags & SIMCACHE_ROUTE_STALE);
        simcache_match_t m;
        assert_int_equal(simcache_lookup(h, e, 0.99f, &m), 0);
        assert_int_equal(simcache_release(h, &m), 0);
        assert_int_equal(simcache_delete(h, m.id), 0);
        simcache_close(h);
    }

    /* 7. Redis restarts empty: the nodes reconnect, republish, and the
     * table rebuilds; nothing local was lost. */
    assert_int_equal(redis_start(&R), 0);
    wait_tables(0x7, "after redis restarted");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(wait_info(i, "table_stale", 0), 0);
        assert_true(it_admin_u64(&N[i], "info", "redis_reconnects") >= 1);
    }
    local_data_intact(0x7);
    assert_true(route_share(0x7, 4) >= 0.95);

    /* 8. A node that stops cleanly says so and exits 0 (no leaks under
     * ASan); the others drop it. */
    assert_int_equal(it_daemon_stop(&N[2]), 0);
    wait_tables(0x3, "after node 2 stopped");
    for (int i = 0; i < 2; i++) assert_int_equal(it_daemon_stop(&N[i]), 0);
}

int main(int argc, char **argv)
{
    it_init(argc, argv);
    redis_bin = argc > 2 ? argv[2] : getenv("REDIS_SERVER");
    if (!redis_bin || !*redis_bin || access(redis_bin, X_OK)) {
        fprintf(stderr, "redis-server not found (apt-get install redis-server); skipping\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(fleet_converges_routes_and_survives_faults, teardown),
    };
    return cmocka_run_group_tests_name("cluster: four nodes and redis", tests, NULL, NULL);
}
