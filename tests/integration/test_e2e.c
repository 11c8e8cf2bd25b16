/* test_e2e.c - the reuse loop across real processes against a real simcached.
 *
 * A writer process puts KV blobs (a few bytes to a few MiB) with embeddings;
 * separate reader processes find them by similar embeddings and by id and
 * check every byte, the metadata and the similarity. Then thresholds,
 * batches, namespace isolation, LRU eviction by bytes and by entry count,
 * and the counters that report all of it.
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
#define MODEL "it-model-7b"
#define FP "it-layout/f16/2x64"
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

/* ---- several processes: put, then find by similarity and by id ---- */

static const uint64_t sizes[] = { 512, 4096, 65536 + 512, MIB, 3 * MIB, 4 * MIB + 512 };
#define NBLOBS (sizeof sizes / sizeof sizes[0])

static void meta_of(size_t k, char *out, size_t n)
{
    snprintf(out, n, "task-%zu:%llu-bytes", k, (unsigned long long)sizes[k]);
}

typedef struct {
    int pipe_w;
    uint64_t ids[NBLOBS];
    uint64_t seed;          /* reader's noise seed */
} e2e_arg_t;

static int writer_proc(void *arg)
{
    e2e_arg_t *a = arg;
    simcache_t *h = conn();
    if (!h) return 1;
    float e[DIM];
    int fails = 0;
    for (size_t k = 0; k < NBLOBS; k++) {
        char meta[64];
        meta_of(k, meta, sizeof meta);
        emb(100 + k, e);
        uint64_t id = it_put(h, e, sizes[k], 1000 + k, meta);
        IT_CHECK(fails, id != 0);
        IT_CHECK(fails, it_write_u64(a->pipe_w, id) == 0);
    }
    simcache_close(h);
    return fails;
}

static int reader_proc(void *arg)
{
    e2e_arg_t *a = arg;
    simcache_t *h = conn();
    if (!h) return 1;
    int fails = 0;
    float e[DIM], q[DIM];
    for (size_t k = 0; k < NBLOBS; k++) {
        char meta[64];
        meta_of(k, meta, sizeof meta);
        emb(100 + k, e);
        it_similar(e, 0.9f, a->seed + k, q, DIM);
        simcache_match_t m;
        int rc = simcache_lookup(h, q, -1, &m);
        IT_CHECK(fails, rc == 0);
        if (rc == 0) {
            simcache_layout_t l = it_layout(sizes[k]);
            IT_CHECK(fails, m.id == a->ids[k]);
            IT_CHECK(fails, m.lease != 0);
            IT_CHECK(fails, m.similarity >= SIMCACHE_DEFAULT_THRESHOLD);
            IT_CHECK(fails, fabsf(m.similarity - 0.9f) < 0.01f);
            IT_CHECK(fails, m.tier == SIMCACHE_TIER_HOST);
            IT_CHECK(fails, m.size == sizes[k]);
            IT_CHECK(fails, memcmp(&m.layout, &l, sizeof l) == 0);
            IT_CHECK(fails, m.meta_len == strlen(meta) && memcmp(m.meta, meta, m.meta_len) == 0);
            IT_CHECK(fails, m.data != NULL && it_check(m.data, m.size, 1000 + k) == 0);
        }
        /* By id: the same bytes, similarity 1, a lease of its own. */
        simcache_match_t g;
        rc = simcache_get(h, a->ids[k], &g);
        IT_CHECK(fails, rc == 0);
        if (rc == 0) {
            IT_CHECK(fails, g.id == a->ids[k] && g.size == sizes[k]);
            IT_CHECK(fails, g.similarity == 1.0f);
            IT_CHECK(fails, g.lease != 0 && g.lease != m.lease);
            IT_CHECK(fails, g.meta_len == strlen(meta) && memcmp(g.meta, meta, g.meta_len) == 0);
            IT_CHECK(fails, it_check(g.data, g.size, 1000 + k) == 0);
            IT_CHECK(fails, simcache_release(h, &g) == 0);
        }
        if (m.lease) IT_CHECK(fails, simcache_release(h, &m) == 0);
        /* An unrelated task misses and holds nothing. */
        emb(50000 + a->seed * 100 + k, q);
        rc = simcache_lookup(h, q, -1, &m);
        IT_CHECK(fails, rc == SIMCACHE_MISS);
        IT_CHECK(fails, m.lease == 0 && m.data == NULL);
    }
    simcache_close(h);
    return fails;
}

static void e2e_blobs_found_by_other_processes_byte_exact(void **state)
{
    (void)state;
    assert_int_equal(it_daemon_start(&D, "--host-capacity", "64m", NULL), 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    e2e_arg_t a = { .pipe_w = p[1] };
    pid_t w = it_fork(writer_proc, &a);
    close(p[1]);
    for (size_t k = 0; k < NBLOBS; k++) assert_int_equal(it_read_u64(p[0], &a.ids[k], IT_TIMEOUT_MS), 0);
    close(p[0]);
    assert_int_equal(it_wait_pid(w, IT_TIMEOUT_MS), 0);

    /* Two reader processes at once, each with its own noise. */
    a.seed = 7;
    pid_t b = it_fork(reader_proc, &a);
    a.seed = 8;
    pid_t c = it_fork(reader_proc, &a);
    assert_int_equal(it_wait_pid(b, IT_TIMEOUT_MS), 0);
    assert_int_equal(it_wait_pid(c, IT_TIMEOUT_MS), 0);

    char buf[8192];
    assert_int_equal(it_admin(&D, "stats", buf, sizeof buf), 0);
    uint64_t v;
    assert_int_equal(it_kv_u64(buf, "puts", &v), 0);
    assert_int_equal(v, NBLOBS);
    assert_int_equal(it_kv_u64(buf, "entries", &v), 0);
    assert_int_equal(v, NBLOBS);
    assert_int_equal(it_kv_u64(buf, "lookups", &v), 0);
    assert_int_equal(v, 4 * NBLOBS);
    assert_int_equal(it_kv_u64(buf, "hits", &v), 0);
    assert_int_equal(v, 2 * NBLOBS);
    assert_int_equal(it_kv_u64(buf, "misses", &v), 0);
    assert_int_equal(v, 2 * NBLOBS);
    assert_int_equal(it_kv_u64(buf, "gets", &v), 0);
    assert_int_equal(v, 2 * NBLOBS);
    assert_int_equal(it_kv_u64(buf, "leases_active", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(it_daemon_stop(&D), 0);
}

/* ---- thresholds ---- */

static void lookup_threshold_per_request_overrides_default(void **state)
{
    (void)state;
    assert_int_equal(it_daemon_start(&D, NULL), 0);
    simcache_t *h = conn();
    assert_non_null(h);
    float e[DIM], q[DIM];
    emb(1, e);
    uint64_t id = it_put(h, e, 4096, 11, NULL);
    assert_true(id != 0);
    it_similar(e, 0.9f, 3, q, DIM);
    simcache_match_t m;
    assert_int_equal(simcache_lookup(h, q, 0.95f, &m), SIMCACHE_MISS);
    assert_int_equal(m.lease, 0);
    assert_int_equal(simcache_lookup(h, q, 0.85f, &m), 0);
    assert_int_equal(m.id, id);
    assert_true(m.similarity >= 0.85f && m.similarity < 0.95f);
    assert_int_equal(simcache_release(h, &m), 0);
    /* Default (0.8) when the request gives a negative threshold. */
    assert_int_equal(simcache_lookup(h, q, -1, &m), 0);
    assert_int_equal(simcache_release(h, &m), 0);
    /* Below the default: 0.7-similar misses by default, hits with 0.65. */
    it_similar(e, 0.7f, 4, q, DIM);
    assert_int_equal(simcache_lookup(h, q, -1, &m), SIMCACHE_MISS);
    assert_int_equal(simcache_lookup(h, q, 0.65f, &m), 0);
    assert_int_equal(m.id, id);
    assert_int_equal(simcache_release(h, &m), 0);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&D), 0);
}

static void lookup_default_threshold_follows_config(void **state)
{
    (void)state;
    assert_int_equal(it_daemon_start(&D, "--default-threshold", "0.95", NULL), 0);
    simcache_t *h = conn();
    assert_non_null(h);
    float e[DIM], q[DIM];
    emb(2, e);
    uint64_t id = it_put(h, e, 4096, 12, NULL);
    assert_true(id != 0);
    it_similar(e, 0.9f, 5, q, DIM);
    simcache_match_t m;
    assert_int_equal(simcache_lookup(h, q, -1, &m), SIMCACHE_MISS);
    assert_int_equal(simcache_lookup(h, q, 0.85f, &m), 0);
    assert_int_equal(m.id, id);
    assert_int_equal(simcache_release(h, &m), 0);
    /* Changed at run time on the admin socket. */
    char buf[512];
    assert_int_equal(it_admin(&D, "config set default_threshold 0.8", buf, sizeof buf), 0);
    assert_true(strncmp(buf, "OK", 2) == 0);
    assert_int_equal(simcache_lookup(h, q, -1, &m), 0);
    assert_int_equal(simcache_release(h, &m), 0);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&D), 0);
}

/* Resident shared memory of pid, in bytes (RssShmem of /proc/PID/status). */
static uint64_t rss_shmem(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    uint64_t kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "RssShmem: %" SCNu64, &kb) == 1) break;
    if (f) fclose(f);
    return kb * 1024;
}

/* host_prefault 1: a thread faults the whole arena in after start (the
 * arena's pages become resident in the daemon), while it serves; without
 * it, nothing is prefaulted and the arena stays mostly unbacked. */
static void host_prefault_populates_the_arena(void **state)
{
    (void)state;
    assert_int_equal(it_daemon_start(&D, "--host-capacity", "96m", "--host-prefault", "1", NULL), 0);
    simcache_t *h = conn();
    assert_non_null(h);
    float e[DIM];
    emb(77, e);
    uint64_t id = it_put(h, e, 1 * MIB, 77, NULL);   /* served while the thread runs */
    assert_true(id != 0);
    uint64_t done = 0;
    for (int i = 0; i < 3000 && done < 96ull * MIB; i++) {
        done = it_admin_u64(&D, "info", "host_prefaulted_bytes");
        if (done < 96ull * MIB) it_sleep_ms(10);
    }
    assert_int_equal(done, 96ull * MIB);
    assert_true(rss_shmem(D.pid) >= 96ull * MIB);
    simcache_match_t m;
    assert_int_equal(simcache_get(h, id, &m), 0);
    assert_int_equal(it_check(m.data, m.size, 77), 0);
    assert_int_equal(simcache_release(h, &m), 0);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&D), 0);
    it_daemon_cleanup(&D);

    assert_int_equal(it_daemon_start(&D, "--host-capacity", "96m", NULL), 0);
    assert_int_equal(it_admin_u64(&D, "info", "host_prefaulted_bytes"), 0);
    assert_true(rss_shmem(D.pid) < 32ull * MIB);
    assert_int_equal(it_daemon_stop(&D), 0);
}

/* Cpus_allowed_list of every thread of pid, joined by spaces. */
static void threads_cpus(pid_t pid, char *out, size_t n)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd,
             "grep -h Cpus_allowed_list /proc/%d/task/*/status | awk '{print $2}' | sort -u | "
             "tr '\\n' ' '", (int)pid);
    FILE *f = popen(cmd, "r");
    out[0] = 0;
    if (f) {
        if (!fgets(out, (int)n, f)) out[0] = 0;
        pclose(f);
    }
}

/* cpu_affinity pins the daemon and the threads it starts (here the
 * prefault thread); a CPU that is not there stops the start with a clear
 * error. */
static void cpu_affinity_pins_every_thread(void **state)
{
    (void)state;
    assert_int_equal(it_daemon_start(&D, "--cpu-affinity", "0", "--host-capacity", "64m",
                                     "--host-prefault", "1", NULL), 0);
    char cpus[256];
    threads_cpus(D.pid, cpus, sizeof cpus);
    assert_string_equal(cpus, "0 ");
    simcache_t *h = conn();
    assert_non_null(h);
    assert_int_equal(simcache_ping(h), 0);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&D), 0);
    it_daemon_cleanup(&D);

    if (sysconf(_SC_NPROCESSORS_CONF) < 1000) {
        assert_int_not_equal(it_daemon_start(&D, "--cpu-affinity", "1000-1001", NULL), 0);
        char cmd[200];
        snprintf(cmd, sizeof cmd, "grep -q \"cpu_affinity '1000-1001'\" %s", D.log);
        assert_int_equal(system(cmd), 0);
        it_daemon_cleanup(&D);
    }
}


/* Threshold 1 asks for the same direction: an identical embedding (and a
 * scaled copy) must hit, whatever float rounding does to its cosine. */
static void identical_embedding_hits_at_threshold_one(void **state)
{
    (void)state;
    assert_int_equal(it_daemon_start(&D, NULL), 0);
    simcache_t *h = conn();
    assert_non_null(h);
    int missed = 0;
    for (int k = 0; k < 40; k++) {
        float e[DIM];
        emb(900 + k, e);
        for (int i = 0; i < DIM; i++) e[i] *= 0.37f * (float)(k + 1);
        uint64_t id = it_put(h, e, 4096, 901, NULL);
        assert_true(id != 0);
        simcache_match_t m;
        int rc = simcache_lookup(h, e, 1.0f, &m);
        if (rc == 0) {
            assert_int_equal(m.id, id);
            assert_true(m.similarity <= 1.0f);
            assert_int_equal(simcache_release(h, &m), 0);
        } else {
            assert_int_equal(rc, SIMCACHE_MISS);
            /* what it scores just below */
            assert_int_equal(simcache_lookup(h, e, 0.999f, &m), 0);
            fprintf(stderr, "identical embedding %d scored %.9g: missed at threshold 1\n", k,
                    (double)m.similarity);
            assert_int_equal(simcache_release(h, &m), 0);
            missed++;
        }
        assert_int_equal(simcache_delete(h, id), 0);
    }
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&D), 0);
    assert_int_equal(missed, 0);
}

/* ---- batches ---- */

static void lookup_batch_mixes_hits_and_misses_in_order(void **state)
{
    (void)state;
    assert_int_equal(it_daemon_start(&D, NULL), 0);
    simcache_t *h = conn();
    assert_non_null(h);
    float e[4][DIM];
    uint64_t ids[4];
    for (int k = 0; k < 4; k++) {
        emb(200 + k, e[k]);
        ids[k] = it_put(h, e[k], 8192 * (k + 1), 300 + k, NULL);
        assert_true(ids[k] != 0);
    }
    /* slot -> entry index, or -1 for an unrelated embedding */
    const int want[8] = { 0, -1, 2, -1, 1, 3, -1, 0 };
    float *q = malloc(8 * DIM * sizeof(float));
    assert_non_null(q);
    for (int s = 0; s < 8; s++) {
        if (want[s] < 0) emb(9000 + s, q + s * DIM);
        else if (s == 7) memcpy(q + s * DIM, e[0], sizeof e[0]);
        else it_similar(e[want[s]], 0.9f, 40 + s, q + s * DIM, DIM);
    }
    simcache_match_t *m = calloc(8, sizeof *m);
    assert_non_null(m);
    assert_int_equal(simcache_lookup_batch(h, q, 8, -1, m), 5);
    for (int s = 0; s < 8; s++) {
        if (want[s] < 0) {
            assert_int_equal(m[s].lease, 0);
            assert_null(m[s].data);
            continue;
        }
        assert_int_equal(m[s].id, ids[want[s]]);
        assert_true(m[s].lease != 0);
        assert_int_equal(m[s].size, 8192u * (want[s] + 1));
        assert_int_equal(it_check(m[s].data, m[s].size, 300 + want[s]), 0);
        assert_true(m[s].similarity >= (s == 7 ? 0.999f : 0.89f));
    }
    assert_int_equal(it_admin_u64(&D, "stats", "leases_active"), 5);
    for (int s = 0; s < 8; s++)
        if (m[s].lease) assert_int_equal(simcache_release(h, &m[s]), 0);
    /* A stricter threshold keeps only the exact one. */
    assert_int_equal(simcache_lookup_batch(h, q, 8, 0.95f, m), 1);
    assert_int_equal(m[7].id, ids[0]);
    assert_int_equal(simcache_release(h, &m[7]), 0);
    assert_int_equal(it_admin_u64(&D, "stats", "leases_active"), 0);
    simcache_stats_t st;
    assert_int_equal(simcache_stats(h, &st), 0);
    assert_int_equal(st.lookups, 16);
    assert_int_equal(st.hits, 6);
    assert_int_equal(st.misses, 10);
    free(m);
    free(q);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&D), 0);
}

/* ---- namespaces ---- */

static void expect_isolated(simcache_t *h, const float *q, uint64_t foreign_id)
{
    simcache_match_t m;
    assert_int_equal(simcache_lookup(h, q, -1, &m), SIMCACHE_MISS);
    assert_int_equal(simcache_lookup(h, q, 0.0f, &m), SIMCACHE_MISS);
    assert_int_equal(simcache_get(h, foreign_id, &m), SIMCACHE_ENOTFOUND);
    assert_int_equal(simcache_delete(h, foreign_id), SIMCACHE_ENOTFOUND);
    assert_int_equal(simcache_ping(h), 0);
}

static void namespaces_never_match_each_other(void **state)
{
    (void)state;
    assert_int_equal(it_daemon_start(&D, NULL), 0);
    float e[128] = { 0 };
    it_unit(77, e, 64);
    simcache_t *a = it_connect(D.sock, "m", "f", NULL, 64);
    assert_non_null(a);
    uint64_t id = it_put(a, e, 4096, 1, "a");
    assert_true(id != 0);

    simcache_t *other_model = it_connect(D.sock, "m2", "f", NULL, 64);
    simcache_t *other_fp = it_connect(D.sock, "m", "f2", NULL, 64);
    simcache_t *other_dim = it_connect(D.sock, "m", "f", NULL, 128);   /* e padded with zeros */
    simcache_t *tenant1 = it_connect(D.sock, "m", "f", "tenant-1", 64);
    assert_non_null(other_model);
    assert_non_null(other_fp);
    assert_non_null(other_dim);
    assert_non_null(tenant1);
    expect_isolated(other_model, e, id);
    expect_isolated(other_fp, e, id);
    expect_isolated(other_dim, e, id);
    expect_isolated(tenant1, e, id);

    /* Another tenant stores the very same embedding: each sees its own. */
    simcache_t *tenant2 = it_connect(D.sock, "m", "f", "tenant-2", 64);
    assert_non_null(tenant2);
    uint64_t id2 = it_put(tenant2, e, 4096, 2, "t2");
    assert_true(id2 != 0 && id2 != id);
    expect_isolated(tenant1, e, id2);
    simcache_match_t m;
    assert_int_equal(simcache_lookup(a, e, -1, &m), 0);
    assert_int_equal(m.id, id);
    assert_int_equal(it_check(m.data, m.size, 1), 0);
    assert_int_equal(simcache_release(a, &m), 0);
    assert_int_equal(simcache_lookup(tenant2, e, -1, &m), 0);
    assert_int_equal(m.id, id2);
    assert_int_equal(it_check(m.data, m.size, 2), 0);
    assert_int_equal(simcache_release(tenant2, &m), 0);
    assert_int_equal(simcache_get(a, id2, &m), SIMCACHE_ENOTFOUND);
    /* The same namespace from another connection does see it. */
    simcache_t *a2 = it_connect(D.sock, "m", "f", "", 64);
    assert_non_null(a2);
    assert_int_equal(simcache_get(a2, id, &m), 0);
    assert_int_equal(simcache_release(a2, &m), 0);

    simcache_stats_t st;
    assert_int_equal(simcache_stats(a, &st), 0);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.ns_entries, 1);
    assert_int_equal(st.namespaces, 6);
    assert_int_equal(simcache_stats(tenant1, &st), 0);
    assert_int_equal(st.ns_entries, 0);
    simcache_close(a);
    simcache_close(a2);
    simcache_close(other_model);
    simcache_close(other_fp);
    simcache_close(other_dim);
    simcache_close(tenant1);
    simcache_close(tenant2);
    assert_int_equal(it_daemon_stop(&D), 0);
}

/* ---- LRU ---- */

static void expect_present(simcache_t *h, uint64_t id, uint64_t seed)
{
    simcache_match_t m;
    int rc = simcache_get(h, id, &m);
    if (rc) fprintf(stderr, "entry %llu: %s\n", (unsigned long long)id, simcache_strerror(rc));
    assert_int_equal(rc, 0);
    assert_int_equal(it_check(m.data, m.size, seed), 0);
    assert_int_equal(simcache_release(h, &m), 0);
}

static void expect_gone(simcache_t *h, uint64_t id, const float *e)
{
    simcache_match_t m;
    assert_int_equal(simcache_get(h, id, &m), SIMCACHE_ENOTFOUND);
    assert_int_equal(simcache_lookup(h, e, -1, &m), SIMCACHE_MISS);
}

static void lru_evicts_least_recently_used_under_host_capacity(void **state)
{
    (void)state;
    assert_int_equal(it_daemon_start(&D, "--host-capacity", "8m", NULL), 0);
    simcache_t *h = conn();
    assert_non_null(h);
    float e[16][DIM];
    uint64_t id[16];
    for (int k = 0; k < 8; k++) {
        emb(400 + k, e[k]);
        id[k] = it_put(h, e[k], MIB, 500 + k, NULL);
        assert_true(id[k] != 0);
    }
    assert_int_equal(it_admin_u64(&D, "stats", "entries"), 8);
    assert_int_equal(it_admin_u64(&D, "stats", "evictions"), 0);
    /* A hit makes entry 0 the most recently used: entry 1 goes next. */
    simcache_match_t m;
    assert_int_equal(simcache_lookup(h, e[0], -1, &m), 0);
    assert_int_equal(m.id, id[0]);
    assert_int_equal(simcache_release(h, &m), 0);
    emb(408, e[8]);
    id[8] = it_put(h, e[8], MIB, 508, NULL);
    assert_true(id[8] != 0);
    expect_gone(h, id[1], e[1]);
    assert_int_equal(it_admin_u64(&D, "stats", "evictions"), 1);
    assert_int_equal(it_admin_u64(&D, "stats", "entries"), 8);
    /* Order now, LRU first: 2..7, 0, 8. A 3 MiB blob takes 2, 3, 4. */
    emb(409, e[9]);
    id[9] = it_put(h, e[9], 3 * MIB, 509, NULL);
    assert_true(id[9] != 0);
    for (int k = 2; k <= 4; k++) expect_gone(h, id[k], e[k]);
    for (int k = 5; k <= 9; k++) expect_present(h, id[k], 500 + k);
    expect_present(h, id[0], 500);
    simcache_stats_t st;
    assert_int_equal(simcache_stats(h, &st), 0);
    assert_int_equal(st.evictions, 4);
    assert_int_equal(st.entries, 6);
    assert_true(st.host_bytes_used <= st.host_bytes_capacity);
    assert_int_equal(st.host_bytes_capacity, 8 * MIB);
    assert_int_equal(st.host_bytes_used, 8 * MIB);
    assert_int_equal(it_admin_u64(&D, "stats", "host_bytes_used"), 8 * MIB);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&D), 0);
}

static void lru_evicts_under_max_entries(void **state)
{
    (void)state;
    assert_int_equal(it_daemon_start(&D, "--max-entries", "4", NULL), 0);
    simcache_t *h = conn();
    assert_non_null(h);
    float e[6][DIM];
    uint64_t id[6];
    for (int k = 0; k < 6; k++) {
        emb(600 + k, e[k]);
        id[k] = it_put(h, e[k], 4096, 700 + k, NULL);
        assert_true(id[k] != 0);
    }
    simcache_stats_t st;
    assert_int_equal(simcache_stats(h, &st), 0);
    assert_int_equal(st.entries, 4);
    assert_int_equal(st.evictions, 2);
    expect_gone(h, id[0], e[0]);
    expect_gone(h, id[1], e[1]);
    for (int k = 2; k < 6; k++) expect_present(h, id[k], 700 + k);
    /* Lowered at run time: the two least recently used (2, 3) go. */
    char buf[256];
    assert_int_equal(it_admin(&D, "config set max_entries 2", buf, sizeof buf), 0);
    assert_true(strncmp(buf, "OK", 2) == 0);
    assert_int_equal(simcache_stats(h, &st), 0);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.evictions, 4);
    expect_gone(h, id[2], e[2]);
    expect_gone(h, id[3], e[3]);
    expect_present(h, id[4], 704);
    expect_present(h, id[5], 705);
    assert_int_equal(it_admin_u64(&D, "info", "max_entries"), 2);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&D), 0);
}

static void delete_then_lookup_misses_and_stats_count_it(void **state)
{
    (void)state;
    assert_int_equal(it_daemon_start(&D, NULL), 0);
    simcache_t *h = conn();
    assert_non_null(h);
    float e[DIM];
    emb(800, e);
    uint64_t id = it_put(h, e, 4096, 801, NULL);
    assert_true(id != 0);
    assert_int_equal(simcache_delete(h, id), 0);
    simcache_match_t m;
    assert_int_equal(simcache_lookup(h, e, -1, &m), SIMCACHE_MISS);
    assert_int_equal(simcache_get(h, id, &m), SIMCACHE_ENOTFOUND);
    assert_int_equal(simcache_delete(h, id), SIMCACHE_ENOTFOUND);
    assert_int_equal(it_admin_u64(&D, "stats", "deletes"), 1);
    assert_int_equal(it_admin_u64(&D, "stats", "entries"), 0);
    assert_int_equal(it_admin_u64(&D, "stats", "host_bytes_used"), 0);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&D), 0);
}

int main(int argc, char **argv)
{
    it_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(e2e_blobs_found_by_other_processes_byte_exact, teardown),
        cmocka_unit_test_teardown(lookup_threshold_per_request_overrides_default, teardown),
        cmocka_unit_test_teardown(lookup_default_threshold_follows_config, teardown),
        cmocka_unit_test_teardown(host_prefault_populates_the_arena, teardown),
        cmocka_unit_test_teardown(cpu_affinity_pins_every_thread, teardown),
        cmocka_unit_test_teardown(identical_embedding_hits_at_threshold_one, teardown),
        cmocka_unit_test_teardown(lookup_batch_mixes_hits_and_misses_in_order, teardown),
        cmocka_unit_test_teardown(namespaces_never_match_each_other, teardown),
        cmocka_unit_test_teardown(lru_evicts_least_recently_used_under_host_capacity, teardown),
        cmocka_unit_test_teardown(lru_evicts_under_max_entries, teardown),
        cmocka_unit_test_teardown(delete_then_lookup_misses_and_stats_count_it, teardown),
    };
    return cmocka_run_group_tests_name("integration: end to end", tests, NULL, NULL);
}
