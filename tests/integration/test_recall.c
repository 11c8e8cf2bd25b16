/* test_recall.c - lookup recall through the real daemon under churn that
 * drifts.
 *
 * The paper's setting: an entry cap of 512 (max_entries), LRU eviction, and
 * a stream whose topics change (ordered data: new topics replace old ones,
 * and the common direction of the embeddings turns), for ten turnovers of
 * the cap. Every 25 puts once full, a near-duplicate (cosine 0.80 to 0.99)
 * of a live entry is looked up at 0.8, and the answer is scored against an
 * exact search over what the daemon really holds at that moment (admin
 * `list`): the best entry must come back (>= 99% of the queries), never an
 * entry below the threshold, and always with its own bytes. The index must
 * have re-centred its codes on the way (the drift moves the mean). The index
 * is made to use its codes from 128 entries on (index_exact_below), as a
 * namespace of the paper's size would with 2048-dim embeddings.
 *
 * Also the lookup loop's latency option, poll_us: answers unchanged, and
 * the event loop back to sleep once the requests stop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define DIM 256
#define CAP 512
#define TURNOVERS 10
#define BLOB 4096u
#define MODEL "it-recall"
#define FP "it-layout/f16/2x64"

static it_daemon_t D;

static int teardown(void **state)
{
    (void)state;
    it_daemon_cleanup(&D);
    return 0;
}

static double dot(const float *a, const float *b)
{
    double s = 0;
    for (uint32_t i = 0; i < DIM; i++)
        s += (double)a[i] * b[i];
    return s;
}

static void unitize(float *v)
{
    double n = sqrt(dot(v, v));
    for (uint32_t i = 0; i < DIM; i++)
        v[i] = (float)(v[i] / n);
}

/* Position of id among the first n put ids (ascending), or -1. */
static long find_id(const uint64_t *ids, long n, uint64_t id)
{
    long lo = 0, hi = n - 1;
    while (lo <= hi) {
        long mid = (lo + hi) / 2;
        if (ids[mid] == id)
            return mid;
        if (ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* The live ids of namespace 1 (admin `list`) into live; returns how many. */
static size_t live_ids(uint64_t *live, size_t max)
{
    static char reply[1 << 20];
    char cmd[64];
    size_t n = 0;

    snprintf(cmd, sizeof cmd, "list 1 %d", 4 * CAP);
    assert_int_equal(it_admin(&D, cmd, reply, sizeof reply), 0);
    for (char *p = reply; p && *p && n < max;) {
        if (strncmp(p, "id=", 3) == 0)
            live[n++] = strtoull(p + 3, NULL, 10);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return n;
}

static void recall_under_drifting_churn(void **state)
{
    (void)state;
    const long total = (long)(TURNOVERS + 1) * CAP;
    float *vecs = malloc((size_t)total * DIM * sizeof *vecs);
    uint64_t *ids = malloc((size_t)total * sizeof *ids), *live = malloc(4 * CAP * sizeof *live);
    float m0[DIM], m1[DIM], topic[DIM], q[DIM], noise[DIM];
    char cap[16];

    snprintf(cap, sizeof cap, "%d", CAP);
    assert_int_equal(it_daemon_start(&D, "--max-entries", cap, "--index-exact-below", "128",
                                     "--host-capacity", "64m", NULL),
                     0);
    simcache_t *h = it_connect(D.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    it_unit(1, m0, DIM);
    it_unit(2, m1, DIM);

    uint32_t have = 0, found = 0, false_hits = 0, wrong_bytes = 0;
    for (long t = 0; t < total; t++) {
        /* A new topic every CAP / 8 puts; the common direction turns by 90
         * degrees over the stream. */
        if (t % (CAP / 8) == 0)
            it_unit(1000 + (uint64_t)t, topic, DIM);
        double a = 1.5707963 * (double)t / (double)total;
        float *v = vecs + (size_t)t * DIM;
        it_unit(5000000 + (uint64_t)t, noise, DIM);
        for (uint32_t i = 0; i < DIM; i++)
            v[i] = (float)(0.75 * (cos(a) * m0[i] + sin(a) * m1[i]) + 0.45 * topic[i] +
                           0.5 * noise[i]);
        unitize(v);
        ids[t] = it_put(h, v, BLOB, (uint64_t)t + 1, NULL);
        assert_true(ids[t] != 0);
        assert_true(t == 0 || ids[t] > ids[t - 1]);
        if (t < CAP || t % 25 != 0)
            continue;

        size_t nl = live_ids(live, 4 * CAP);
        assert_int_equal(nl, CAP);
        /* A near-duplicate of a live entry, then the exact best over the
         * live set. */
        long src = find_id(ids, t + 1, live[(size_t)t % nl]);
        assert_true(src >= 0);
        it_similar(vecs + (size_t)src * DIM, (float)(0.80 + 0.19 * ((t * 7919) % 1000) / 1000.0),
                   (uint64_t)t, q, DIM);
        double best = -2.0;
        for (size_t i = 0; i < nl; i++) {
            long k = find_id(ids, t + 1, live[i]);
            assert_true(k >= 0);
            double c = dot(vecs + (size_t)k * DIM, q);
            best = c > best ? c : best;
        }
        simcache_match_t m;
        int rc = simcache_lookup(h, q, 0.8f, &m);
        assert_true(rc == SIMCACHE_OK || rc == SIMCACHE_MISS);
        if (rc == SIMCACHE_OK) {
            long k = find_id(ids, t + 1, m.id);
            assert_true(k >= 0);
            double c = dot(vecs + (size_t)k * DIM, q);
            if (c < 0.8 - 1e-5)
                false_hits++;
            if (m.size != BLOB || m.data == NULL || it_check(m.data, BLOB, (uint64_t)k + 1) != 0)
                wrong_bytes++;
            if (best >= 0.8)
                found += c >= best - 1e-5;
            assert_int_equal(simcache_release(h, &m), 0);
        }
        have += best >= 0.8;
    }
    char ns[4096];
    uint64_t recentres = 0;
    assert_int_equal(it_admin(&D, "namespaces", ns, sizeof ns), 0);
    char *p = strstr(ns, "index_recentres=");
    assert_non_null(p);
    recentres = strtoull(p + strlen("index_recentres="), NULL, 10);
    print_message("max_entries %d, %d turnovers: %u of %u best found, %u false hits, %u wrong "
                  "blobs, %" PRIu64 " re-centrings\n",
                  CAP, TURNOVERS, found, have, false_hits, wrong_bytes, recentres);
    assert_true(have >= 180);
    assert_int_equal(false_hits, 0);
    assert_int_equal(wrong_bytes, 0);
    assert_true(found >= have - have / 100);
    assert_true(recentres >= 1);
    simcache_close(h);
    free(vecs);
    free(ids);
    free(live);
}

/* CPU time (user + system, clock ticks) of process pid so far. */
static uint64_t cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* Fields 14 and 15, after the ")" that ends the command name. */
    char *p = strrchr(buf, ')');
    assert_non_null(p);
    unsigned long ut = 0, st = 0;
    assert_int_equal(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st), 2);
    return (uint64_t)ut + st;
}

/* poll_us: the loop polls after requests instead of sleeping, answers as
 * usual, stops polling once the requests stop (an idle daemon uses no CPU),
 * and still drains and exits cleanly on SIGTERM. */
static void poll_us_serves_then_sleeps(void **state)
{
    (void)state;
    float v[DIM], q[DIM];
    assert_int_equal(it_daemon_start(&D, "--poll-us", "5000", "--host-capacity", "64m", NULL), 0);
    simcache_t *h = it_connect(D.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    uint64_t ids[50];
    for (int i = 0; i < 50; i++) {
        it_unit(77000 + (uint64_t)i, v, DIM);
        ids[i] = it_put(h, v, BLOB, (uint64_t)i + 1, NULL);
        assert_true(ids[i] != 0);
    }
    for (int i = 0; i < 50; i++) {
        it_unit(77000 + (uint64_t)i, v, DIM);
        it_similar(v, 0.95f, (uint64_t)i, q, DIM);
        simcache_match_t m;
        assert_int_equal(simcache_lookup(h, q, 0.9f, &m), SIMCACHE_OK);
        assert_int_equal(m.id, ids[i]);
        assert_int_equal(it_check(m.data, BLOB, (uint64_t)i + 1), 0);
        assert_int_equal(simcache_release(h, &m), 0);
    }
    /* Idle: after the 5 ms of polling the loop sleeps. Over a second of
     * silence the daemon may use a few ticks (timers), not the second. */
    uint64_t t0 = cpu_ticks(D.pid);
    usleep(1000000);
    uint64_t used = cpu_ticks(D.pid) - t0;
    print_message("idle second with poll_us 5000: %llu ticks of CPU\n", (unsigned long long)used);
    assert_true(used < 20);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&D), 0);
}

int main(int argc, char **argv)
{
    it_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(recall_under_drifting_churn, teardown),
        cmocka_unit_test_teardown(poll_us_serves_then_sleeps, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
