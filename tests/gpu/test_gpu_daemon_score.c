/* test_gpu_daemon_score.c - lookup batches scored on the GPU give the CPU
 * path's answers, through the real simcached.
 *
 * Two daemons get the same 3,000 entries (dim 256, so the CPU path searches
 * exactly: index_exact_below is 4096 there, and its answers are the true
 * best matches): A with gpu_score_min_batch 1 (every batch on the GPU), B
 * with 0 (every batch on the CPU). The same batches of 64 queries (exact
 * copies of entries, near-duplicates at 0.93, far ones at 0.5, unrelated
 * vectors) must give the same hits, ids and similarities (within 1e-5) on
 * both, and A's `info gpu_score_queries` must count them. Then again after
 * deletes (rows cleared), after new puts (freed rows reused), at threshold
 * 1, and after A restarts from its disk tier (the mirror rebuilt from the
 * loaded entries, every hit a promotion).
 *
 * Exits 77 (skip) when A finds no CUDA device. With --cpu-only it runs
 * anyway and checks instead that without a device nothing changes: A has
 * no scorer (gpu_score 0) and answers as B does (suite 'integration').
 * Given simcached-gpuemu (gpu_ipc/gpu_emu.c: one emulated device that
 * ranks on the host) it runs the whole daemon path without a GPU.
 * Takes the daemon's path as argv[1] (or $SIMCACHED).
 */
#include "harness.h"
#include "simcache.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIM 256
#define N_ENTRIES 3000
#define BATCH 64
#define BYTES 1024
#define MODEL "gpu-score-model"
#define FP "fp-gpu-score"

static int fails;

#define FAIL(...) do { fprintf(stderr, "FAIL: "); fprintf(stderr, __VA_ARGS__); \
        fprintf(stderr, "\n"); fails++; } while (0)

static uint64_t entry_seed(uint64_t i) { return 1000 + i; }

static float queries[BATCH * DIM];

/* Query i of round `round`: kinds by i % 4 around entry k. */
static void make_batch(uint64_t round, uint64_t n_seeds)
{
    float e[DIM];
    for (uint64_t i = 0; i < BATCH; i++) {
        float *q = queries + i * DIM;
        uint64_t k = (i * 7919 + round * 104729) % n_seeds;
        it_unit(entry_seed(k), e, DIM);
        switch (i % 4) {
        case 0: memcpy(q, e, sizeof e); break;
        case 1: it_similar(e, 0.93f, 77 + i + round * 1000, q, DIM); break;
        case 2: it_similar(e, 0.5f, 99 + i + round * 1000, q, DIM); break;
        default: it_unit(900000 + i + round * 1000, q, DIM); break;
        }
    }
}

static simcache_t *connect_to(const it_daemon_t *d)
{
    simcache_t *h = it_connect(d->sock, MODEL, FP, NULL, DIM);
    if (!h) FAIL("connect to %s", d->sock);
    return h;
}

/* The same batch on both; answers must agree. Returns the hits. */
static int compare(const char *what, simcache_t *a, simcache_t *b, float threshold)
{
    static simcache_match_t ma[BATCH], mb[BATCH];
    int ha = simcache_lookup_batch(a, queries, BATCH, threshold, ma);
    int hb = simcache_lookup_batch(b, queries, BATCH, threshold, mb);
    if (ha < 0 || hb < 0) {
        FAIL("%s: lookup_batch: A %d (%s), B %d (%s)", what, ha, simcache_last_error(a), hb,
             simcache_last_error(b));
        return 0;
    }
    int bad = 0;
    for (int i = 0; i < BATCH; i++) {
        int hit_a = ma[i].lease != 0, hit_b = mb[i].lease != 0;
        if (hit_a != hit_b || (hit_a && (ma[i].id != mb[i].id ||
                                         fabsf(ma[i].similarity - mb[i].similarity) > 1e-5f))) {
            if (bad++ < 8)
                fprintf(stderr, "%s: query %d (kind %d): A %s id %llu sim %.7f, B %s id %llu sim %.7f\n",
                        what, i, i % 4, hit_a ? "hit" : "miss", (unsigned long long)ma[i].id,
                        (double)ma[i].similarity, hit_b ? "hit" : "miss",
                        (unsigned long long)mb[i].id, (double)mb[i].similarity);
        }
    }
    for (int i = 0; i < BATCH; i++) {
        if (ma[i].lease) simcache_release(a, &ma[i]);
        if (mb[i].lease) simcache_release(b, &mb[i]);
    }
    if (bad) FAIL("%s: %d of %d answers differ", what, bad, BATCH);
    else printf("ok: %s: %d hits of %d, identical on both daemons\n", what, ha, BATCH);
    return ha;
}

static uint64_t put_entry(simcache_t *h, uint64_t i)
{
    float e[DIM];
    it_unit(entry_seed(i), e, DIM);
    return it_put(h, e, BYTES, entry_seed(i), NULL);
}

static int start_a(it_daemon_t *d, const char *data_dir, int gpu)
{
    const char *args[] = { "--data-dir", data_dir, "--disk-capacity", "64m",
                           "--gpu-score-min-batch", gpu ? "1" : "0",
                           "--gpu-score-min-entries", "1", NULL };
    return it_daemon_startv(d, args);
}

/* Queries A answered on the GPU so far. */
static uint64_t gpu_queries(const it_daemon_t *d)
{
    return it_admin_u64(d, "info", "gpu_score_queries");
}

int main(int argc, char **argv)
{
    int cpu_only = argc > 2 && strcmp(argv[2], "--cpu-only") == 0;
    it_init(argc, argv);
    char data_dir[64];
    snprintf(data_dir, sizeof data_dir, "/tmp/scit-gscore-XXXXXX");
    if (!mkdtemp(data_dir)) return 1;
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf '%s'", data_dir);

    it_daemon_t a, b;
    if (start_a(&a, data_dir, 1)) return 1;
    uint64_t devices = it_admin_u64(&a, "info", "gpu_devices");
    uint64_t scoring = it_admin_u64(&a, "info", "gpu_score");
    if (devices == 0 && !cpu_only) {
        printf("SKIP: simcached found no CUDA device\n");
        it_daemon_stop(&a);
        it_daemon_cleanup(&a);
        if (system(rm)) {}
        return 77;
    }
    if (cpu_only && devices == 0 && scoring != 0) FAIL("no device, yet gpu_score is %llu",
                                                       (unsigned long long)scoring);
    if (devices > 0 && scoring != 1) {
        FAIL("%llu device(s) but no GPU scorer (gpu_score %llu)", (unsigned long long)devices,
             (unsigned long long)scoring);
        it_daemon_dump_log(&a);
    }
    int on_gpu = devices > 0 && scoring == 1;
    printf("daemon A: %llu device(s), GPU scoring %s\n", (unsigned long long)devices,
           on_gpu ? "on" : "off");
    const char *bargs[] = { "--gpu-score-min-batch", "0", NULL };
    if (it_daemon_startv(&b, bargs)) return 1;
    if (it_admin_u64(&b, "info", "gpu_score") != 0) FAIL("B has a scorer with gpu_score_min_batch 0");

    simcache_t *ha = connect_to(&a), *hb = connect_to(&b);
    if (!ha || !hb) return 1;
    for (uint64_t i = 0; i < N_ENTRIES; i++) {
        uint64_t ia = put_entry(ha, i), ib = put_entry(hb, i);
        if (!ia || ia != ib) {
            FAIL("put %llu: ids %llu and %llu", (unsigned long long)i, (unsigned long long)ia,
                 (unsigned long long)ib);
            break;
        }
    }
    if (on_gpu && it_admin_u64(&a, "info", "gpu_score_rows") != N_ENTRIES)
        FAIL("A mirrors %llu rows, want %d",
             (unsigned long long)it_admin_u64(&a, "info", "gpu_score_rows"), N_ENTRIES);

    uint64_t q0 = gpu_queries(&a);
    make_batch(0, N_ENTRIES);
    int hits = compare("fresh namespace", ha, hb, 0.8f);
    if (hits < BATCH / 2) FAIL("only %d hits: the batch should hit on every copy and near-duplicate", hits);
    compare("threshold 1", ha, hb, 1.0f);
    if (on_gpu && gpu_queries(&a) != q0 + 2 * BATCH)
        FAIL("A answered %llu queries on the GPU, want %d",
             (unsigned long long)(gpu_queries(&a) - q0), 2 * BATCH);
    if (it_admin_u64(&b, "info", "gpu_score_queries") != 0) FAIL("B scored on the GPU");

    /* Deletes clear rows: the deleted entries must stop matching on both. */
    make_batch(1, N_ENTRIES);
    for (int i = 0; i < BATCH; i += 4) {
        uint64_t k = ((uint64_t)i * 7919 + 1 * 104729) % N_ENTRIES;
        uint64_t id = k + 1;   /* ids are 1.. in put order on both */
        if (simcache_delete(ha, id) || simcache_delete(hb, id))
            FAIL("delete %llu", (unsigned long long)id);
    }
    compare("after deletes", ha, hb, 0.8f);

    /* New entries take the freed rows. */
    for (uint64_t i = N_ENTRIES; i < N_ENTRIES + 40; i++) {
        uint64_t ia = put_entry(ha, i), ib = put_entry(hb, i);
        if (!ia || ia != ib) FAIL("put %llu after deletes", (unsigned long long)i);
    }
    make_batch(2, N_ENTRIES + 40);
    for (int i = 0; i < BATCH; i += 2) {
        /* point half the queries at the new entries */
        float e[DIM];
        it_unit(entry_seed(N_ENTRIES + (uint64_t)i % 40), e, DIM);
        if (i % 4 == 0) memcpy(queries + (size_t)i * DIM, e, sizeof e);
    }
    compare("after new puts", ha, hb, 0.8f);

    /* Restart A from its disk tier: the mirror is rebuilt from the loaded
     * entries (tier.c), and every hit is a promotion. */
    char out[256];
    if (it_admin(&a, "checkpoint", out, sizeof out) || !strstr(out, "OK")) FAIL("checkpoint: %s", out);
    simcache_close(ha);
    if (it_daemon_stop(&a) != 0) FAIL("A did not stop cleanly");
    it_daemon_cleanup(&a);
    if (start_a(&a, data_dir, 1)) return 1;
    ha = connect_to(&a);
    if (!ha) return 1;
    uint64_t live = N_ENTRIES - BATCH / 4 + 40;
    if (on_gpu && it_admin_u64(&a, "info", "gpu_score_rows") != live)
        FAIL("A mirrors %llu rows after the restart",
             (unsigned long long)it_admin_u64(&a, "info", "gpu_score_rows"));
    q0 = gpu_queries(&a);
    make_batch(3, N_ENTRIES + 40);
    compare("after a restart from disk", ha, hb, 0.8f);
    if (on_gpu && gpu_queries(&a) < q0 + BATCH) FAIL("A did not score the batch on the GPU after the restart");

    simcache_close(ha);
    simcache_close(hb);
    if (it_daemon_stop(&a) != 0) fails++;
    if (it_daemon_stop(&b) != 0) fails++;
    if (fails) {
        it_daemon_dump_log(&a);
    }
    it_daemon_cleanup(&a);
    it_daemon_cleanup(&b);
    if (!getenv("IT_KEEP") && system(rm)) {}
    if (fails) fprintf(stderr, "%d failure(s)\n", fails);
    return fails ? 1 : 0;
}
