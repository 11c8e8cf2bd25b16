/* test_single.c - one simcached without Redis: it is a single node whose
 * `route` answers itself, its prototypes follow its entries, and bad cluster
 * settings stop it at start. Needs no redis-server.
 *
 * argv: SIMCACHED.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define DIM 32
#define MODEL "single-model"
#define FP "single-layout"

static it_daemon_t D;

static int teardown(void **state)
{
    (void)state;
    it_daemon_cleanup(&D);
    return 0;
}

static void without_redis_route_answers_this_node(void **state)
{
    (void)state;
    assert_int_equal(it_daemon_start(&D, "--node-id", "solo-1", "--advertise", "10.1.2.3:7000",
                                     "--prototypes-per-ns", "4", NULL),
                     0);
    char buf[16384];
    assert_int_equal(it_admin(&D, "info", buf, sizeof buf), 0);
    uint64_t v;
    assert_int_equal(it_kv_u64(buf, "redis_connected", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(it_kv_u64(buf, "table_stale", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(it_kv_u64(buf, "peers", &v), 0);
    assert_int_equal(v, 0);
    assert_non_null(strstr(buf, "node_id solo-1\n"));
    assert_non_null(strstr(buf, "redis \"(none: single node)\"\n"));

    simcache_t *h = it_connect(D.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    float e[DIM];
    simcache_node_t nd;
    /* Before any entry: this node, with no prototypes anywhere. */
    it_unit(1, e, DIM);
    assert_int_equal(simcache_route(h, e, &nd), 0);
    assert_string_equal(nd.node_id, "solo-1");
    assert_string_equal(nd.address, "10.1.2.3:7000");
    assert_true(nd.local);
    assert_int_equal(nd.flags, SIMCACHE_ROUTE_LOCAL | SIMCACHE_ROUTE_NONE);

    /* Two topics: prototypes appear and route still answers this node. */
    float c0[DIM], c1[DIM];
    it_unit(10, c0, DIM);
    it_unit(11, c1, DIM);
    for (int i = 0; i < 30; i++) {
        it_similar(i % 2 ? c1 : c0, 0.95f, 100 + (uint64_t)i, e, DIM);
        assert_true(it_put(h, e, 512, (uint64_t)i, NULL) != 0);
    }
    it_similar(c0, 0.95f, 999, e, DIM);
    assert_int_equal(simcache_route(h, e, &nd), 0);
    assert_string_equal(nd.node_id, "solo-1");
    assert_int_equal(nd.flags, SIMCACHE_ROUTE_LOCAL);
    assert_true(nd.similarity > 0.8f && nd.similarity <= 1.0f);
    assert_true(nd.load >= 0 && nd.load <= 1);

    /* Bad embeddings are refused like a lookup's. */
    float bad[DIM] = { 0 };
    assert_int_equal(simcache_route(h, bad, &nd), SIMCACHE_EEMBED);
    bad[3] = NAN;
    assert_int_equal(simcache_route(h, bad, &nd), SIMCACHE_EEMBED);
    assert_int_equal(simcache_ping(h), 0);   /* the connection survives */

    uint64_t protos = it_admin_u64(&D, "info", "prototypes");
    assert_true(protos >= 2 && protos <= 4);
    assert_int_equal(it_admin(&D, "prototypes", buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "node=solo-1 self=1"));
    assert_int_equal(it_admin(&D, "peers", buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "node=solo-1 address=10.1.2.3:7000 self=1 entries=30"));

    /* Admin route: comma-separated floats and base64 of f32 agree. */
    char cmd[1024], out[4096];
    int n = snprintf(cmd, sizeof cmd, "route 1 ");
    for (int i = 0; i < DIM; i++) n += snprintf(cmd + n, sizeof cmd - (size_t)n, "%s%.8g", i ? "," : "", (double)e[i]);
    assert_int_equal(it_admin(&D, cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "node solo-1\n"));
    assert_non_null(strstr(out, "local 1\n"));
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *raw = (const uint8_t *)e;
    n = snprintf(cmd, sizeof cmd, "route \"%s|%s|%d\" b64:", MODEL, FP, DIM);
    for (size_t i = 0; i < sizeof e; i += 3) {
        uint32_t x = (uint32_t)raw[i] << 16 | (i + 1 < sizeof e ? (uint32_t)raw[i + 1] << 8 : 0) |
                     (i + 2 < sizeof e ? raw[i + 2] : 0);
        cmd[n++] = b64[(x >> 18) & 63];
        cmd[n++] = b64[(x >> 12) & 63];
        cmd[n++] = i + 1 < sizeof e ? b64[(x >> 6) & 63] : '=';
        cmd[n++] = i + 2 < sizeof e ? b64[x & 63] : '=';
    }
    cmd[n] = 0;
    char out2[4096];
    assert_int_equal(it_admin(&D, cmd, out2, sizeof out2), 0);
    assert_string_equal(out, out2);
    assert_int_equal(it_admin(&D, "route 1 1,2,3", out, sizeof out), 0);
    assert_non_null(strstr(out, "CLIENT_ERROR"));
    assert_int_equal(it_admin(&D, "route 1 b64:AAAA", out, sizeof out), 0);
    assert_non_null(strstr(out, "CLIENT_ERROR"));
    assert_int_equal(it_admin(&D, "route nosuchns 1", out, sizeof out), 0);
    assert_non_null(strstr(out, "CLIENT_ERROR"));

    /* Runtime settings of the cluster keys. */
    assert_int_equal(it_admin(&D, "config set route_load_weight 0.5", out, sizeof out), 0);
    assert_non_null(strstr(out, "OK"));
    assert_int_equal(it_admin(&D, "config set redis_url redis://x", out, sizeof out), 0);
    assert_non_null(strstr(out, "CLIENT_ERROR"));

    /* Flushing the entries takes the prototypes with them. */
    assert_int_equal(it_admin(&D, "flush", out, sizeof out), 0);
    assert_int_equal(it_admin_u64(&D, "info", "prototypes"), 0);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&D), 0);
}

static void bad_cluster_settings_stop_the_start(void **state)
{
    (void)state;
    const char *cases[][2] = {
        { "--redis-url", "http://example" },
        { "--redis-url", "redis://host:99999" },
        { "--redis-url", "unix://relative/path" },
        { "--node-id", "has space" },
        { "--node-id", "slash/no" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir[] = "/tmp/scsingle-XXXXXX";
        assert_non_null(mkdtemp(dir));
        char sock[128], admin[128], data[128], log[128];
        snprintf(sock, sizeof sock, "%s/c.sock", dir);
        snprintf(admin, sizeof admin, "%s/a.sock", dir);
        snprintf(data, sizeof data, "%s/data", dir);
        snprintf(log, sizeof log, "%s/log", dir);
        const char *args[] = { "--socket", sock, "--admin-socket", admin, "--data-dir", data,
                               cases[i][0], cases[i][1], NULL };
        pid_t pid = it_spawn(log, args);
        assert_true(pid > 0);
        int rc = it_wait_pid(pid, IT_TIMEOUT_MS);
        if (rc != 1) fprintf(stderr, "%s %s: exit %d\n", cases[i][0], cases[i][1], rc);
        assert_int_equal(rc, 1);
        unlink(log);
        char seed[160];
        snprintf(seed, sizeof seed, "%s/index.seed", data);
        unlink(seed);
        rmdir(data);
        rmdir(dir);
    }
}

int main(int argc, char **argv)
{
    it_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(without_redis_route_answers_this_node, teardown),
        cmocka_unit_test(bad_cluster_settings_stop_the_start),
    };
    return cmocka_run_group_tests_name("cluster: single node", tests, NULL, NULL);
}
