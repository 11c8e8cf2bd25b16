/* test_threads.c - one client handle shared by several threads.
 *
 * simcache.h promises that a handle may be used from several threads (calls
 * are serialised inside it). Four threads hammer one handle with puts,
 * lookups, gets, releases and stats at once; every reply must belong to the
 * call that made it: the right entry, the right bytes, the right metadata.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define DIM 64
#define THREADS 4
#define ROUNDS 150

static it_daemon_t daemon_;

typedef struct {
    simcache_t *h;
    int t;
    int fails;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    float e[DIM], q[DIM];
    char meta[32];
    for (int i = 0; i < ROUNDS; i++) {
        uint64_t seed = (uint64_t)w->t * 100000u + (uint64_t)i + 1u;
        uint64_t bytes = 512u * (uint64_t)(1 + (i % 7));
        it_unit(seed, e, DIM);
        snprintf(meta, sizeof meta, "t%d-i%d", w->t, i);
        uint64_t id = it_put(w->h, e, bytes, seed, meta);
        if (!id) {
            w->fails++;
            continue;
        }
        /* A 0.97-similar query must come back to this very entry: the
         * other threads' entries are random, far below 0.8 from it. */
        it_similar(e, 0.97f, seed ^ 0x5555u, q, DIM);
        simcache_match_t m;
        int rc = simcache_lookup(w->h, q, -1, &m);
        if (rc != 0 || m.id != id || m.size != bytes || it_check(m.data, bytes, seed) ||
            m.meta_len != strlen(meta) || memcmp(m.meta, meta, m.meta_len)) {
            fprintf(stderr, "thread %d round %d: lookup rc %d id %llu (want %llu)\n", w->t, i, rc,
                    (unsigned long long)m.id, (unsigned long long)id);
            w->fails++;
        }
        if (rc == 0 && simcache_release(w->h, &m)) w->fails++;
        rc = simcache_get(w->h, id, &m);
        if (rc != 0 || m.id != id || it_check(m.data, bytes, seed)) w->fails++;
        if (rc == 0 && simcache_release(w->h, &m)) w->fails++;
        simcache_stats_t st;
        if (simcache_stats(w->h, &st)) w->fails++;
    }
    return NULL;
}

static void one_handle_serves_four_threads(void **state)
{
    (void)state;
    assert_int_equal(it_daemon_start(&daemon_, "--host-capacity", "256m", (char *)NULL), 0);
    simcache_t *h = it_connect(daemon_.sock, "threads-model", "fp", NULL, DIM);
    assert_non_null(h);
    pthread_t th[THREADS];
    worker_t w[THREADS];
    for (int t = 0; t < THREADS; t++) {
        w[t] = (worker_t){ h, t, 0 };
        assert_int_equal(pthread_create(&th[t], NULL, worker, &w[t]), 0);
    }
    int fails = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        fails += w[t].fails;
    }
    assert_int_equal(fails, 0);
    simcache_stats_t st;
    assert_int_equal(simcache_stats(h, &st), 0);
    assert_int_equal(st.ns_entries, THREADS * ROUNDS);
    assert_int_equal(st.leases_active, 0);
    assert_int_equal(st.hits, THREADS * ROUNDS);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&daemon_), 0);
}

static int teardown(void **state)
{
    (void)state;
    it_daemon_cleanup(&daemon_);
    return 0;
}

int main(int argc, char **argv)
{
    it_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(one_handle_serves_four_threads, teardown),
    };
    return cmocka_run_group_tests_name("integration: threads", tests, NULL, NULL);
}
