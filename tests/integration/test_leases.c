/* test_leases.c - leases across processes: what a client has mapped is never
 * moved, reused or freed under it, and whatever a client held (leases,
 * unfinished puts) comes back when it dies, even by SIGKILL.
 *
 * Reader processes hold leases while the test process deletes and overwrites
 * the tier around them; the daemon's own view is read on the admin socket
 * and in /proc/PID/fd.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define DIM 128
#define MODEL "lease-model"
#define FP "lease-fp"
#define MIB (1024u * 1024u)

static it_daemon_t D;

static int teardown(void **state)
{
    (void)state;
    it_daemon_cleanup(&D);
    return 0;
}

static simcache_t *conn(void) { return it_connect(D.sock, MODEL, FP, NULL, DIM); }

static void emb(uint64_t seed, float *v) { it_unit(seed, v, DIM); }

/* A reader process: lease entry `id` (by a similar lookup, or by get), tell
 * the test, wait for its go, check the bytes again, release, exit. */
typedef struct {
    int to_test, from_test;      /* pipe ends */
    uint64_t id, blob_seed, emb_seed;
    uint64_t bytes;
    int by_get;
} holder_t;

static int holder_proc(void *arg)
{
    holder_t *a = arg;
    int fails = 0;
    simcache_t *h = conn();
    if (!h) return 1;
    simcache_match_t m;
    int rc;
    if (a->by_get) {
        rc = simcache_get(h, a->id, &m);
    } else {
        float e[DIM], q[DIM];
        emb(a->emb_seed, e);
        it_similar(e, 0.9f, 99, q, DIM);
        rc = simcache_lookup(h, q, -1, &m);
    }
    IT_CHECK(fails, rc == 0);
    if (rc) return 1;
    IT_CHECK(fails, m.id == a->id && m.size == a->bytes);
    IT_CHECK(fails, it_check(m.data, m.size, a->blob_seed) == 0);
    it_write_u64(a->to_test, m.lease);
    uint64_t go;
    IT_CHECK(fails, it_read_u64(a->from_test, &go, IT_TIMEOUT_MS) == 0);
    /* The tier was churned and the entry maybe deleted: bytes unchanged. */
    IT_CHECK(fails, it_check(m.data, m.size, a->blob_seed) == 0);
    IT_CHECK(fails, simcache_release(h, &m) == 0);
    simcache_close(h);
    return fails;
}

typedef struct {
    pid_t pid;
    int rd, wr;
    uint64_t lease;
} holder_run_t;

static void holder_start(holder_run_t *r, holder_t *a)
{
    int up[2], down[2];
    assert_int_equal(pipe(up), 0);
    assert_int_equal(pipe(down), 0);
    a->to_test = up[1];
    a->from_test = down[0];
    r->pid = it_fork(holder_proc, a);
    assert_true(r->pid > 0);
    close(up[1]);
    close(down[0]);
    r->rd = up[0];
    r->wr = down[1];
    assert_int_equal(it_read_u64(r->rd, &r->lease, IT_TIMEOUT_MS), 0);
    assert_true(r->lease != 0);
}

static int holder_finish(holder_run_t *r)
{
    it_write_u64(r->wr, 1);
    int rc = it_wait_pid(r->pid, IT_TIMEOUT_MS);
    close(r->rd);
    close(r->wr);
    return rc;
}

static void delete_while_leased_stops_matching_but_keeps_bytes(void **state)
{
    (void)state;
    assert_int_equal(it_daemon_start(&D, "--host-capacity", "8m", NULL), 0);
    simcache_t *h = conn();
    assert_non_null(h);
    float e[DIM];
    emb(1, e);
    uint64_t id = it_put(h, e, MIB, 11, "victim");
    assert_true(id != 0);

    holder_t a = { .id = id, .blob_seed = 11, .emb_seed = 1, .bytes = MIB };
    holder_run_t r;
    holder_start(&r, &a);

    assert_int_equal(simcache_delete(h, id), 0);
    /* Gone at once for everyone... */
    simcache_match_t m;
    assert_int_equal(simcache_lookup(h, e, -1, &m), SIMCACHE_MISS);
    assert_int_equal(simcache_get(h, id, &m), SIMCACHE_ENOTFOUND);
    assert_int_equal(simcache_delete(h, id), SIMCACHE_ENOTFOUND);
    simcache_t *other = conn();
    assert_non_null(other);
    assert_int_equal(simcache_lookup(other, e, 0.5f, &m), SIMCACHE_MISS);
    simcache_close(other);
    char buf[4096];
    assert_int_equal(it_admin(&D, "show 1", buf, sizeof buf), 0);
    assert_true(strncmp(buf, "NOT_FOUND", 9) == 0);
    assert_int_equal(it_admin_u64(&D, "stats", "entries"), 0);
    assert_int_equal(it_admin_u64(&D, "stats", "leases_active"), 1);
    /* ...but its bytes stay where the holder maps them: fill the tier twice
     * over; if the extent were reused the holder would see other bytes. */
    for (int k = 0; k < 16; k++) {
        float f[DIM];
        emb(100 + k, f);
        assert_true(it_put(h, f, MIB, 200 + k, NULL) != 0);
    }
    assert_int_equal(it_admin_u64(&D, "info", "host_bytes_used"), 8 * MIB);
    assert_int_equal(it_admin_u64(&D, "stats", "entries"), 7);
    assert_int_equal(holder_finish(&r), 0);
    /* After the last release the bytes are free: 7 entries, 7 MiB. */
    assert_int_equal(it_admin_wait_u64(&D, "stats", "leases_active", 0), 0);
    assert_int_equal(it_admin_u64(&D, "info", "host_bytes_used"), 7 * MIB);
    assert_int_equal(it_admin_u64(&D, "stats", "deletes"), 1);
    assert_int_equal(simcache_get(h, id, &m), SIMCACHE_ENOTFOUND);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&D), 0);
}

static void leased_entries_are_never_evicted(void **state)
{
    (void)state;
    assert_int_equal(it_daemon_start(&D, "--host-capacity", "8m", NULL), 0);
    simcache_t *h = conn();
    assert_non_null(h);
    float e[DIM];
    emb(1, e);
    uint64_t id = it_put(h, e, MIB, 21, NULL);
    assert_true(id != 0);
    holder_t a = { .id = id, .blob_seed = 21, .bytes = MIB, .by_get = 1 };
    holder_run_t r;
    holder_start(&r, &a);
    for (int k = 0; k < 20; k++) {
        float f[DIM];
        emb(300 + k, f);
        assert_true(it_put(h, f, MIB, 400 + k, NULL) != 0);
    }
    simcache_stats_t st;
    assert_int_equal(simcache_stats(h, &st), 0);
    assert_int_equal(st.entries, 8);
    assert_int_equal(st.evictions, 13);
    assert_int_equal(st.leases_active, 1);
    /* Still live and findable, by others too, with its bytes. */
    simcache_match_t m;
    assert_int_equal(simcache_lookup(h, e, -1, &m), 0);
    assert_int_equal(m.id, id);
    assert_int_equal(it_check(m.data, m.size, 21), 0);
    assert_int_equal(simcache_release(h, &m), 0);
    /* Operator eviction skips it as well. */
    char buf[256];
    assert_int_equal(it_admin(&D, "evict 100", buf, sizeof buf), 0);
    assert_string_equal(buf, "OK evicted 7");
    assert_int_equal(it_admin_u64(&D, "stats", "entries"), 1);
    assert_int_equal(holder_finish(&r), 0);
    assert_int_equal(it_admin(&D, "evict 100", buf, sizeof buf), 0);
    assert_string_equal(buf, "OK evicted 1");
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&D), 0);
}

static void put_into_a_tier_full_of_leases_is_enospc(void **state)
{
    (void)state;
    assert_int_equal(it_daemon_start(&D, "--host-capacity", "4m", "--max-entries", "3", NULL), 0);
    simcache_t *h = conn();
    assert_non_null(h);
    float e[4][DIM];
    uint64_t id[4];
    simcache_match_t m[3];
    for (int k = 0; k < 3; k++) {
        emb(10 + k, e[k]);
        id[k] = it_put(h, e[k], MIB, 20 + k, NULL);
        assert_true(id[k] != 0);
        assert_int_equal(simcache_get(h, id[k], &m[k]), 0);
    }
    /* Entry cap reached and every entry leased. */
    emb(13, e[3]);
    uint8_t *kv = malloc(MIB);
    assert_non_null(kv);
    it_fill(kv, MIB, 23);
    simcache_layout_t l = it_layout(MIB);
    assert_int_equal(simcache_put(h, e[3], &l, kv, MIB, SIMCACHE_HOST_MEMORY, &id[3]),
                     SIMCACHE_ENOSPC);
    /* No entry cap, but bytes: 3 MiB leased of 4, a 2 MiB put cannot fit. */
    uint8_t *kv2 = malloc(2 * MIB);
    assert_non_null(kv2);
    it_fill(kv2, 2 * MIB, 24);
    simcache_layout_t l2 = it_layout(2 * MIB);
    char buf[256];
    assert_int_equal(it_admin(&D, "config set max_entries 0", buf, sizeof buf), 0);
    assert_int_equal(simcache_put(h, e[3], &l2, kv2, 2 * MIB, SIMCACHE_HOST_MEMORY, &id[3]),
                     SIMCACHE_ENOSPC);
    for (int k = 0; k < 3; k++) assert_int_equal(it_check(m[k].data, m[k].size, 20 + k), 0);
    /* Cap again: one release makes room (that entry is evicted for the new one). */
    assert_int_equal(it_admin(&D, "config set max_entries 3", buf, sizeof buf), 0);
    assert_int_equal(simcache_put(h, e[3], &l, kv, MIB, SIMCACHE_HOST_MEMORY, &id[3]),
                     SIMCACHE_ENOSPC);
    assert_int_equal(simcache_release(h, &m[0]), 0);
    assert_int_equal(simcache_put(h, e[3], &l, kv, MIB, SIMCACHE_HOST_MEMORY, &id[3]), 0);
    assert_int_equal(simcache_get(h, id[0], &m[0]), SIMCACHE_ENOTFOUND);
    simcache_match_t n;
    assert_int_equal(simcache_get(h, id[3], &n), 0);
    assert_int_equal(it_check(n.data, n.size, 23), 0);
    assert_int_equal(simcache_release(h, &n), 0);
    for (int k = 1; k < 3; k++) {
        assert_int_equal(it_check(m[k].data, m[k].size, 20 + k), 0);
        assert_int_equal(simcache_release(h, &m[k]), 0);
    }
    free(kv);
    free(kv2);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&D), 0);
}

/* ---- a client killed with leases and unfinished puts ---- */

typedef struct {
    int to_test;
    uint64_t ids[3];
} victim_t;

static int victim_proc(void *arg)
{
    victim_t *a = arg;
    simcache_t *h = conn();
    if (!h) return 1;
    int fails = 0;
    simcache_match_t m[4];
    for (int k = 0; k < 3; k++) {
        float e[DIM];
        emb(30 + k, e);
        IT_CHECK(fails, simcache_lookup(h, e, -1, &m[k]) == 0);
    }
    IT_CHECK(fails, simcache_get(h, a->ids[0], &m[3]) == 0);   /* a second lease on one */
    void *buf;
    uint64_t tok;
    for (int k = 0; k < 2; k++) {
        IT_CHECK(fails, simcache_put_begin(h, 256 * 1024, &buf, &tok) == 0);
        if (!fails) memset(buf, 0xab, 256 * 1024);
    }
    it_write_u64(a->to_test, (uint64_t)fails);
    for (;;) pause();   /* until SIGKILL */
}

static uint64_t clients_field(const char *field)
{
    char buf[4096];
    if (it_admin(&D, "clients", buf, sizeof buf)) return UINT64_MAX;
    char key[64];
    snprintf(key, sizeof key, "%s=", field);
    const char *p = strstr(buf, key);
    return p ? strtoull(p + strlen(key), NULL, 10) : UINT64_MAX;
}

static void sigkilled_client_leases_and_puts_are_reclaimed(void **state)
{
    (void)state;
    assert_int_equal(it_daemon_start(&D, NULL), 0);
    simcache_t *h = conn();
    assert_non_null(h);
    victim_t a;
    for (int k = 0; k < 3; k++) {
        float e[DIM];
        emb(30 + k, e);
        a.ids[k] = it_put(h, e, 64 * 1024, 40 + k, NULL);
        assert_true(a.ids[k] != 0);
    }
    simcache_close(h);
    assert_int_equal(it_admin_wait_u64(&D, "stats", "clients", 0), 0);
    int staging_before = it_count_fds(D.pid, "simcache-staging");
    assert_int_equal(staging_before, 0);

    int p[2];
    assert_int_equal(pipe(p), 0);
    a.to_test = p[1];
    pid_t v = it_fork(victim_proc, &a);
    close(p[1]);
    uint64_t fails;
    assert_int_equal(it_read_u64(p[0], &fails, IT_TIMEOUT_MS), 0);
    close(p[0]);
    assert_int_equal(fails, 0);

    assert_int_equal(it_admin_u64(&D, "stats", "leases_active"), 4);
    assert_int_equal(it_admin_u64(&D, "info", "leases_active"), 4);
    assert_int_equal(clients_field("leases"), 4);
    assert_int_equal(clients_field("puts"), 2);
    assert_int_equal(clients_field("pid"), (uint64_t)v);
    assert_int_equal(it_count_fds(D.pid, "simcache-staging"), 2);
    char buf[256];
    assert_int_equal(it_admin(&D, "evict 10", buf, sizeof buf), 0);
    assert_string_equal(buf, "OK evicted 0");

    assert_int_equal(kill(v, SIGKILL), 0);
    assert_int_equal(it_wait_pid(v, IT_TIMEOUT_MS), 128 + SIGKILL);

    assert_int_equal(it_admin_wait_u64(&D, "stats", "clients", 0), 0);
    assert_int_equal(it_admin_u64(&D, "stats", "leases_active"), 0);
    assert_int_equal(it_admin_u64(&D, "info", "leases_active"), 0);
    assert_int_equal(it_admin_u64(&D, "info", "host_bytes_pinned"), 0);
    assert_int_equal(it_admin_u64(&D, "info", "host_pinned_entries"), 0);
    /* The staging memfds of the two unfinished puts are closed. */
    assert_int_equal(it_count_fds(D.pid, "simcache-staging"), 0);
    /* And the entries are evictable again. */
    assert_int_equal(it_admin(&D, "evict 10", buf, sizeof buf), 0);
    assert_string_equal(buf, "OK evicted 3");
    assert_int_equal(it_admin_u64(&D, "stats", "entries"), 0);
    assert_int_equal(it_daemon_stop(&D), 0);
}

/* Exiting without simcache_close (crash-like but clean EOF) and closing
 * with leases held both give everything back. */
static int exit_holding_proc(void *arg)
{
    (void)arg;
    simcache_t *h = conn();
    if (!h) return 1;
    float e[DIM];
    emb(50, e);
    simcache_match_t m;
    void *buf;
    uint64_t tok;
    if (simcache_lookup(h, e, -1, &m) != 0) return 2;
    if (simcache_put_begin(h, 4096, &buf, &tok) != 0) return 3;
    return 0;   /* _exit: no close, no release */
}

static void exited_and_closed_clients_give_leases_back(void **state)
{
    (void)state;
    assert_int_equal(it_daemon_start(&D, NULL), 0);
    simcache_t *h = conn();
    assert_non_null(h);
    float e[DIM];
    emb(50, e);
    uint64_t id = it_put(h, e, 8192, 51, NULL);
    assert_true(id != 0);
    pid_t c = it_fork(exit_holding_proc, NULL);
    assert_int_equal(it_wait_pid(c, IT_TIMEOUT_MS), 0);
    assert_int_equal(it_admin_wait_u64(&D, "stats", "leases_active", 0), 0);
    assert_int_equal(it_admin_wait_u64(&D, "stats", "clients", 1), 1);
    /* Only h's staging buffer is left: the one kept from its put for the next. */
    assert_int_equal(it_count_fds(D.pid, "simcache-staging"), 1);

    simcache_t *h2 = conn();
    assert_non_null(h2);
    simcache_match_t m1, m2;
    assert_int_equal(simcache_lookup(h2, e, -1, &m1), 0);
    assert_int_equal(simcache_get(h2, id, &m2), 0);
    assert_int_equal(it_admin_u64(&D, "stats", "leases_active"), 2);
    simcache_close(h2);
    assert_int_equal(it_admin_wait_u64(&D, "stats", "leases_active", 0), 0);
    simcache_close(h);
    assert_int_equal(it_admin_wait_u64(&D, "stats", "clients", 0), 0);
    assert_int_equal(it_count_fds(D.pid, "simcache-staging"), 0);
    assert_int_equal(it_daemon_stop(&D), 0);
}

static void lease_limit_per_client_is_enforced(void **state)
{
    (void)state;
    assert_int_equal(it_daemon_start(&D, "--max-leases-per-client", "2", NULL), 0);
    simcache_t *h = conn();
    assert_non_null(h);
    float e[DIM];
    emb(60, e);
    uint64_t id = it_put(h, e, 4096, 61, NULL);
    assert_true(id != 0);
    simcache_match_t m[3];
    assert_int_equal(simcache_lookup(h, e, -1, &m[0]), 0);
    assert_int_equal(simcache_get(h, id, &m[1]), 0);
    assert_int_equal(simcache_lookup(h, e, -1, &m[2]), SIMCACHE_ELIMIT);
    assert_int_equal(simcache_get(h, id, &m[2]), SIMCACHE_ELIMIT);
    assert_int_equal(simcache_lookup_batch(h, e, 1, -1, &m[2]), SIMCACHE_ELIMIT);
    /* Another client has its own budget. */
    simcache_t *h2 = conn();
    assert_non_null(h2);
    assert_int_equal(simcache_get(h2, id, &m[2]), 0);
    assert_int_equal(simcache_release(h2, &m[2]), 0);
    assert_int_equal(simcache_release(h, &m[0]), 0);
    assert_int_equal(simcache_get(h, id, &m[2]), 0);
    assert_int_equal(simcache_release(h, &m[1]), 0);
    assert_int_equal(simcache_release(h, &m[2]), 0);
    simcache_close(h2);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&D), 0);
}

int main(int argc, char **argv)
{
    it_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(delete_while_leased_stops_matching_but_keeps_bytes, teardown),
        cmocka_unit_test_teardown(leased_entries_are_never_evicted, teardown),
        cmocka_unit_test_teardown(put_into_a_tier_full_of_leases_is_enospc, teardown),
        cmocka_unit_test_teardown(sigkilled_client_leases_and_puts_are_reclaimed, teardown),
        cmocka_unit_test_teardown(exited_and_closed_clients_give_leases_back, teardown),
        cmocka_unit_test_teardown(lease_limit_per_client_is_enforced, teardown),
    };
    return cmocka_run_group_tests_name("integration: leases", tests, NULL, NULL);
}
