/* test_disk.c - the disk tier through the real daemon: demotion and
 * promotion keep bytes exact, a restart serves what was on disk, sync puts
 * survive SIGKILL (also in a loop of kills under load), and a blob flipped
 * while the daemon was stopped is dropped, never served (a get of it
 * answers SIMCACHE_ECORRUPT, with and without io_uring). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "../hugepool.h"
#include "harness.h"
#include "simcache.h"

#define DIM 32
#define MODEL "disk-model"
#define FP "fp1"
#define BLOB (64 * 1024)

static char data_dir[64];

static int mk_data(void **state)
{
    (void)state;
    snprintf(data_dir, sizeof data_dir, "/tmp/scit-disk-XXXXXX");
    assert_non_null(mkdtemp(data_dir));
    return 0;
}

static int rm_data(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", data_dir);
    if (!getenv("IT_KEEP") && system(cmd)) {}
    return 0;
}

/* Start on the shared data dir (later flags win over the harness's). */
static int start(it_daemon_t *d, const char *durability, const char *host)
{
    const char *args[] = { "--data-dir", data_dir, "--disk-capacity", "32m", "--durability",
                           durability, "--host-capacity", host, NULL };
    return it_daemon_startv(d, args);
}

static void kill9(it_daemon_t *d)
{
    kill(d->pid, SIGKILL);
    it_wait_pid(d->pid, IT_TIMEOUT_MS);
    d->pid = 0;
}

/* Look up seed's embedding; 1 = hit with exact bytes, 0 = miss, -1 = an
 * error, -2 = wrong bytes or metadata served. */
static int lookup_seed(simcache_t *h, uint64_t seed)
{
    float e[DIM];
    it_unit(seed, e, DIM);
    simcache_match_t m;
    int rc = simcache_lookup(h, e, 0.999f, &m);
    if (rc == SIMCACHE_MISS) return 0;
    if (rc) return -1;
    char want[32];
    snprintf(want, sizeof want, "%llu", (unsigned long long)seed);
    int ok = m.size == BLOB && m.meta_len == strlen(want) && memcmp(m.meta, want, m.meta_len) == 0 &&
             it_check(m.data, m.size, seed) == 0;
    if (!ok) fprintf(stderr, "seed %llu: wrong bytes or metadata served\n", (unsigned long long)seed);
    simcache_release(h, &m);
    return ok ? 1 : -2;
}

static uint64_t put_seed(simcache_t *h, uint64_t seed)
{
    float e[DIM];
    char meta[32];
    it_unit(seed, e, DIM);
    snprintf(meta, sizeof meta, "%llu", (unsigned long long)seed);
    return it_put(h, e, BLOB, seed, meta);
}

static void demotion_and_promotion_keep_bytes_exact(void **state)
{
    (void)state;
    it_daemon_t d;
    assert_int_equal(start(&d, "async", "1m"), 0);
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    /* 40 x 64 KiB through a 1 MiB host tier: most go to disk. */
    for (uint64_t s = 1; s <= 40; s++) assert_true(put_seed(h, s) != 0);
    assert_true(it_admin_u64(&d, "info", "disk_demotions") >= 20);
    for (uint64_t s = 1; s <= 40; s++) assert_int_equal(lookup_seed(h, s), 1);
    assert_true(it_admin_u64(&d, "info", "disk_promotions") >= 20);
    /* io_uring is there on every machine we run on: promotions went through
     * the asynchronous path, not the synchronous fallback. */
    assert_int_equal(it_admin_u64(&d, "info", "disk_async_io"), 1);
    assert_true(it_admin_u64(&d, "info", "disk_promotions_async") >= 20);
    assert_int_equal(it_admin_u64(&d, "info", "disk_promotions_in_flight"), 0);
    assert_int_equal(it_admin_u64(&d, "info", "disk_checksum_failures"), 0);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);
}

/* With a disk tier the arena is pinned and registered with io_uring
 * (disk_register_arena, default on): promotions and demotions then go
 * through the registered buffers, bytes exact. Off, nothing is registered
 * and the same traffic takes the plain path. */
static void registered_arena_keeps_bytes_exact(void **state)
{
    (void)state;
    for (int reg = 1; reg >= 0; reg--) {
        it_daemon_t d;
        const char *args[] = { "--data-dir", data_dir, "--disk-capacity", "32m", "--durability",
                               "async", "--host-capacity", "1m", "--disk-register-arena",
                               reg ? "1" : "0", NULL };
        assert_int_equal(it_daemon_startv(&d, args), 0);
        uint64_t arena = it_admin_u64(&d, "info", "host_arena_bytes");
        assert_true(arena >= (1u << 20));
        uint64_t got = 0;
        for (int i = 0; i < 500; i++) {
            got = it_admin_u64(&d, "info", "disk_registered_bytes");
            if (!reg || got == arena) break;
            struct timespec ts = { 0, 10 * 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
        assert_int_equal(got, reg ? arena : 0);
        simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
        assert_non_null(h);
        for (uint64_t s = 1; s <= 40; s++) assert_true(put_seed(h, s) != 0);
        for (uint64_t s = 1; s <= 40; s++) assert_int_equal(lookup_seed(h, s), 1);
        assert_true(it_admin_u64(&d, "info", "disk_promotions_async") >= 20);
        uint64_t fixed = it_admin_u64(&d, "info", "disk_fixed_ios");
        if (reg) assert_true(fixed >= 20);
        else assert_int_equal(fixed, 0);
        assert_int_equal(it_admin_u64(&d, "info", "disk_checksum_failures"), 0);
        simcache_close(h);
        assert_int_equal(it_daemon_stop(&d), 0);
        it_daemon_cleanup(&d);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'/*", data_dir);
        if (system(cmd)) {}
    }
}

/* host_huge_pages on, with the pool grown for it: the arena is hugetlb
 * (info says so, every byte of it on 2 MiB pages), registered, and
 * demotions and promotions through it keep bytes exact, also across an
 * immediate restart. */
static void hugetlb_arena_keeps_bytes_exact(void **state)
{
    (void)state;
    long added = hugepool_grow(8);   /* the 16 MiB arena */
    if (added < 0) skip();           /* not root, or no free 2 MiB pages */
    it_daemon_t d;
    const char *args[] = { "--data-dir", data_dir, "--disk-capacity", "32m", "--durability",
                           "async", "--host-capacity", "1m", "--host-arena-size", "16m",
                           "--host-huge-pages", "on", NULL };
    int rc = it_daemon_startv(&d, args);
    if (rc) hugepool_shrink(added);
    assert_int_equal(rc, 0);
    char pages[32];
    assert_int_equal(it_admin_str(&d, "info", "host_arena_pages", pages, sizeof pages), 0);
    assert_string_equal(pages, "hugetlb");
    uint64_t arena = it_admin_u64(&d, "info", "host_arena_bytes");
    assert_int_equal(arena, 16u << 20);
    assert_int_equal(it_admin_u64(&d, "info", "host_huge_bytes"), arena);
    it_admin_wait_u64(&d, "info", "disk_registered_bytes", arena);
    assert_int_equal(it_admin_u64(&d, "info", "disk_registered_bytes"), arena);
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    for (uint64_t s = 1; s <= 40; s++) assert_true(put_seed(h, s) != 0);
    for (uint64_t s = 1; s <= 40; s++) assert_int_equal(lookup_seed(h, s), 1);
    assert_true(it_admin_u64(&d, "info", "disk_promotions_async") >= 20);
    assert_true(it_admin_u64(&d, "info", "disk_fixed_ios") >= 20);
    assert_int_equal(it_admin_u64(&d, "info", "disk_checksum_failures"), 0);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);
    /* Restarted at once, after a clean stop and after a SIGKILL, the next
     * daemon gets the same pages back and serves what was on disk. After the
     * SIGKILL the kernel frees the registered pages from a worker a moment
     * after the process is gone: the start waits for them. */
    rc = it_daemon_startv(&d, args);
    if (rc) hugepool_shrink(added);
    assert_int_equal(rc, 0);
    kill9(&d);
    it_daemon_cleanup(&d);
    rc = it_daemon_startv(&d, args);
    if (rc) hugepool_shrink(added);
    assert_int_equal(rc, 0);
    assert_int_equal(it_admin_str(&d, "info", "host_arena_pages", pages, sizeof pages), 0);
    assert_string_equal(pages, "hugetlb");
    h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    for (uint64_t s = 1; s <= 40; s++) assert_int_equal(lookup_seed(h, s), 1);
    assert_int_equal(it_admin_u64(&d, "info", "disk_checksum_failures"), 0);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);
    hugepool_shrink(added);
}

/* host_huge_pages on and no room in the pool: the start fails, and the log
 * says how many pages and which sysctl. try on the same arena starts on 4 KiB
 * pages and says why. */
static void huge_pages_on_without_room_refuses_to_start(void **state)
{
    (void)state;
    int lk = hugepool_lock();   /* nobody grows the pool meanwhile */
    long free_pages = hugepool_read("free_hugepages");
    char size[32];
    snprintf(size, sizeof size, "%ldm", 2 * (free_pages > 0 ? free_pages + 1 : 1));
    it_daemon_t d;
    const char *on[] = { "--data-dir", data_dir, "--host-capacity", "1m", "--host-arena-size",
                         size, "--host-huge-pages", "on", NULL };
    assert_int_not_equal(it_daemon_startv(&d, on), 0);
    char grep[512];
    snprintf(grep, sizeof grep, "grep 'host_huge_pages=on' %s | grep -q 'vm.nr_hugepages'", d.log);
    assert_int_equal(system(grep), 0);
    it_daemon_cleanup(&d);
    const char *try[] = { "--data-dir", data_dir, "--host-capacity", "1m", "--host-arena-size",
                          size, "--host-huge-pages", "try", "--log-level", "info", NULL };
    assert_int_equal(it_daemon_startv(&d, try), 0);
    if (lk >= 0) close(lk);
    char pages[32];
    assert_int_equal(it_admin_str(&d, "info", "host_arena_pages", pages, sizeof pages), 0);
    assert_true(strcmp(pages, "4k") == 0 || strcmp(pages, "thp") == 0);
    if (strcmp(pages, "4k") == 0) {
        snprintf(grep, sizeof grep, "grep -q 'vm.nr_hugepages' %s", d.log);
        assert_int_equal(system(grep), 0);
    }
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    assert_true(put_seed(h, 1) != 0);
    assert_int_equal(lookup_seed(h, 1), 1);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);
}

/* try with no room in the hugetlb pool, on a kernel that gives shmem
 * transparent huge pages where asked (shmem_enabled advise, set here for
 * the test as root and put back): the arena is advised MADV_HUGEPAGE, info
 * says thp, and once the arena is faulted in (registration) smaps counts
 * huge pages in it. */
static void thp_arena_counts_its_huge_pages(void **state)
{
    (void)state;
    const char *knob = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";
    char was[128] = "", word[32] = "";
    FILE *f = fopen(knob, "r");
    if (!f) skip();
    if (!fgets(was, sizeof was, f)) was[0] = 0;
    fclose(f);
    const char *l = strchr(was, '['), *r = l ? strchr(l, ']') : NULL;
    if (!r) skip();
    snprintf(word, sizeof word, "%.*s", (int)(r - l - 1), l + 1);
    int lk = hugepool_lock();   /* the pool stays as small as it is */
    f = fopen(knob, "w");
    if (!f || fputs("advise", f) < 0 || fclose(f) != 0) {
        if (lk >= 0) close(lk);
        skip();   /* not root */
    }
    long total = hugepool_read("nr_hugepages");
    char size[32];
    /* More than the whole pool: hugetlb is out of the question at once. */
    snprintf(size, sizeof size, "%ldm", 2 * ((total > 0 ? total : 0) + 32));
    it_daemon_t d;
    const char *args[] = { "--data-dir", data_dir, "--disk-capacity", "32m", "--host-capacity",
                           "1m", "--host-arena-size", size, "--host-huge-pages", "try", NULL };
    int rc = it_daemon_startv(&d, args);
    char pages[32] = "";
    uint64_t arena = 0, huge = 0;
    if (rc == 0) {
        it_admin_str(&d, "info", "host_arena_pages", pages, sizeof pages);
        arena = it_admin_u64(&d, "info", "host_arena_bytes");
        it_admin_wait_u64(&d, "info", "disk_registered_bytes", arena);
        huge = it_admin_u64(&d, "info", "host_huge_bytes");
    }
    f = fopen(knob, "w");
    if (f) {
        fputs(word, f);
        fclose(f);
    }
    if (lk >= 0) close(lk);
    assert_int_equal(rc, 0);
    assert_string_equal(pages, "thp");
    assert_true(huge > 0 && huge <= arena);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);
}

/* Over RLIMIT_MEMLOCK (no CAP_IPC_LOCK: dropped from the bounding set when
 * the test runs as root), registration fails: the daemon says so, stops
 * faulting the arena in (host_prefault is off), and promotions take the
 * plain path, bytes exact. */
static void registration_over_memlock_falls_back(void **state)
{
    (void)state;
    const char *drop = geteuid() == 0 ? "setpriv --bounding-set -ipc_lock --inh-caps -ipc_lock " : "";
    char probe[256];
    snprintf(probe, sizeof probe, "%sprlimit --memlock=4194304 true 2>/dev/null", drop);
    if (system(probe) != 0) skip();   /* no setpriv/prlimit, or no right to drop caps */
    char wrap[96], cmd[1024];
    snprintf(wrap, sizeof wrap, "%s/simcached-memlock.sh", data_dir);
    snprintf(cmd, sizeof cmd, "printf '#!/bin/sh\\nexec %sprlimit --memlock=4194304 %s \"$@\"\\n' > %s "
             "&& chmod +x %s", drop, it_simcached, wrap, wrap);
    assert_int_equal(system(cmd), 0);
    const char *real = it_simcached;
    it_simcached = wrap;
    it_daemon_t d;
    const char *args[] = { "--data-dir", data_dir, "--disk-capacity", "32m", "--durability",
                           "async", "--host-capacity", "1m", "--host-arena-size", "256m", NULL };
    int rc = it_daemon_startv(&d, args);
    it_simcached = real;
    assert_int_equal(rc, 0);
    char grep[256];
    snprintf(grep, sizeof grep, "grep -q RLIMIT_MEMLOCK %s", d.log);
    for (int i = 0; i < 500 && system(grep) != 0; i++) it_sleep_ms(10);
    assert_int_equal(system(grep), 0);
    assert_int_equal(it_admin_u64(&d, "info", "disk_registered_bytes"), 0);
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    for (uint64_t s = 1; s <= 40; s++) assert_true(put_seed(h, s) != 0);
    for (uint64_t s = 1; s <= 40; s++) assert_int_equal(lookup_seed(h, s), 1);
    assert_true(it_admin_u64(&d, "info", "disk_promotions_async") >= 20);
    assert_int_equal(it_admin_u64(&d, "info", "disk_fixed_ios"), 0);
    /* Had the thread gone on, it would fault the rest in within a second
     * or two (about 15 us per 4 KiB on the slowest VM we run on). */
    for (int i = 0; i < 300; i++) {
        assert_true(it_admin_u64(&d, "info", "host_prefaulted_bytes") <= (64u << 20));
        it_sleep_ms(10);
    }
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);
}

static void full_disk_drops_lru_and_keeps_serving(void **state)
{
    (void)state;
    it_daemon_t d;
    const char *args[] = { "--data-dir", data_dir, "--disk-capacity", "1m", "--durability",
                           "sync", "--host-capacity", "1m", NULL };
    assert_int_equal(it_daemon_startv(&d, args), 0);
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    for (uint64_t s = 1; s <= 60; s++) assert_true(put_seed(h, s) != 0);
    assert_true(it_admin_u64(&d, "info", "disk_evictions") > 0);
    int hits = 0;
    for (uint64_t s = 1; s <= 60; s++) {
        int r = lookup_seed(h, s);
        assert_true(r == 0 || r == 1);   /* a miss is fine, wrong bytes never */
        hits += r;
    }
    assert_true(hits >= 16);
    assert_int_equal(lookup_seed(h, 60), 1);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);
}

static void restart_serves_what_was_on_disk(void **state)
{
    (void)state;
    it_daemon_t d;
    assert_int_equal(start(&d, "async", "4m"), 0);
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    for (uint64_t s = 100; s < 110; s++) assert_true(put_seed(h, s) != 0);
    char out[256];
    assert_int_equal(it_admin(&d, "checkpoint", out, sizeof out), 0);
    assert_non_null(strstr(out, "OK"));
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);

    assert_int_equal(start(&d, "async", "4m"), 0);
    /* The start says what it restores (and, for long scans, how far it got). */
    FILE *lf = fopen(d.log, "r");
    assert_non_null(lf);
    static char logbuf[1 << 16];
    size_t ln = fread(logbuf, 1, sizeof logbuf - 1, lf);
    logbuf[ln] = 0;
    fclose(lf);
    assert_non_null(strstr(logbuf, "restoring 10 entries"));
    assert_non_null(strstr(logbuf, "10 entries restored"));
    char list[8192];
    assert_int_equal(it_admin(&d, "list", list, sizeof list), 0);
    assert_non_null(strstr(list, "tier=disk"));
    assert_int_equal(it_admin_u64(&d, "info", "disk_only_entries"), 10);
    h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    for (uint64_t s = 100; s < 110; s++) assert_int_equal(lookup_seed(h, s), 1);
    assert_int_equal(it_admin_u64(&d, "info", "disk_only_entries"), 0);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);
}

/* Records acknowledged in namespaces the daemon would no longer create
 * (max_namespaces lowered before a restart) are restored, not deleted: a
 * limit on new namespaces must not cost data. */
static void lowered_max_namespaces_keeps_restored_records(void **state)
{
    (void)state;
    it_daemon_t d;
    static const char *const models[] = { "ns-a", "ns-b", "ns-c" };
    assert_int_equal(start(&d, "sync", "4m"), 0);
    for (int k = 0; k < 3; k++) {
        simcache_t *h = it_connect(d.sock, models[k], FP, NULL, DIM);
        for (uint64_t s = 0; s < 4; s++) assert_true(put_seed(h, 300 + 10 * k + s) != 0);
        simcache_close(h);
    }
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);

    const char *args[] = { "--data-dir", data_dir, "--disk-capacity", "32m", "--durability",
                           "sync", "--host-capacity", "4m", "--max-namespaces", "1", NULL };
    for (int round = 0; round < 2; round++) {
        /* Twice: the first start must not have deleted anything either. */
        assert_int_equal(it_daemon_startv(&d, args), 0);
        assert_int_equal(it_admin_u64(&d, "info", "disk_only_entries"), 12);
        for (int k = 0; k < 3; k++) {
            simcache_t *h = it_connect(d.sock, models[k], FP, NULL, DIM);
            assert_non_null(h);
            for (uint64_t s = 0; s < 4; s++)
                assert_int_equal(lookup_seed(h, 300 + 10 * k + s), 1);
            simcache_close(h);
        }
        /* A namespace that was never stored is still held to the limit. */
        simcache_t *h = it_connect(d.sock, "ns-new", FP, NULL, DIM);
        assert_null(h);
        assert_int_equal(it_daemon_stop(&d), 0);
        it_daemon_cleanup(&d);
    }
}

/* A get of an entry that is only on disk while the host tier is full of
 * leased entries answers SIMCACHE_ENOSPC (not "no such entry"); once the
 * leases end it is served, byte-exact. */
static void get_with_host_full_of_leases_is_enospc(void **state)
{
    (void)state;
    it_daemon_t d;
    assert_int_equal(start(&d, "sync", "1m"), 0);
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    uint64_t a = put_seed(h, 500);
    assert_true(a != 0);
    simcache_match_t held[16];
    for (uint64_t s = 0; s < 16; s++) assert_true(put_seed(h, 600 + s) != 0);
    for (uint64_t s = 0; s < 16; s++) {
        float e[DIM];
        it_unit(600 + s, e, DIM);
        assert_int_equal(simcache_lookup(h, e, 0.999f, &held[s]), 0);
    }
    assert_true(it_admin_u64(&d, "info", "disk_only_entries") >= 1);
    simcache_match_t m;
    assert_int_equal(simcache_get(h, a, &m), SIMCACHE_ENOSPC);
    assert_non_null(strstr(simcache_last_error(h), "full of leased entries"));
    for (int s = 0; s < 16; s++) assert_int_equal(simcache_release(h, &held[s]), 0);
    assert_int_equal(simcache_get(h, a, &m), 0);
    assert_int_equal(it_check(m.data, m.size, 500), 0);
    simcache_release(h, &m);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);
}

static void sync_puts_survive_sigkill(void **state)
{
    (void)state;
    it_daemon_t d;
    assert_int_equal(start(&d, "sync", "4m"), 0);
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    for (uint64_t s = 200; s < 220; s++) assert_true(put_seed(h, s) != 0);
    simcache_close(h);
    kill9(&d);
    it_daemon_cleanup(&d);

    assert_int_equal(start(&d, "sync", "4m"), 0);
    h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    for (uint64_t s = 200; s < 220; s++) assert_int_equal(lookup_seed(h, s), 1);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);
}

/* async durability with the write-behind: entries still in the host tier
 * reach the disk on their own (disk_flushes), so a SIGKILL after that loses
 * none, and evicting them later writes nothing more (disk_writes stays). */
static void write_behind_persists_async_puts(void **state)
{
    (void)state;
    it_daemon_t d;
    assert_int_equal(start(&d, "async", "4m"), 0);
    if (it_admin_u64(&d, "info", "disk_async_io") != 1) {
        it_daemon_stop(&d);
        it_daemon_cleanup(&d);
        skip();   /* no io_uring: only demotion and checkpoint write */
    }
    assert_int_equal(it_admin_u64(&d, "info", "disk_flush_ms"), 100);
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    for (uint64_t s = 300; s < 320; s++) assert_true(put_seed(h, s) != 0);
    assert_int_equal(it_admin_wait_u64(&d, "info", "disk_flushes", 20), 20);
    assert_int_equal(it_admin_u64(&d, "info", "disk_entries"), 20);
    assert_int_equal(it_admin_u64(&d, "info", "host_entries"), 20);
    assert_int_equal(it_admin_u64(&d, "info", "disk_demotions"), 0);
    assert_int_equal(it_admin_u64(&d, "info", "disk_flush_queue"), 0);
    uint64_t writes = it_admin_u64(&d, "info", "disk_writes");
    /* Push them out of the 4 MiB host tier: demotions record, write nothing. */
    char out[256];
    assert_int_equal(it_admin(&d, "evict 20", out, sizeof out), 0);
    assert_int_equal(it_admin_u64(&d, "info", "disk_demotions"), 20);
    assert_int_equal(it_admin_u64(&d, "info", "disk_writes"), writes);
    simcache_close(h);
    kill9(&d);
    it_daemon_cleanup(&d);

    assert_int_equal(start(&d, "async", "4m"), 0);
    h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    for (uint64_t s = 300; s < 320; s++) assert_int_equal(lookup_seed(h, s), 1);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);
}

/* Child: put and look up until the daemon dies; report every acknowledged
 * seed on the pipe; exit 1 if wrong bytes were ever served. */
typedef struct {
    const char *sock;
    int fd;
    uint64_t first;
} load_arg_t;

static int load_child(void *p)
{
    load_arg_t *a = p;
    simcache_t *h = it_connect(a->sock, MODEL, FP, NULL, DIM);
    if (!h) return 0;
    signal(SIGPIPE, SIG_IGN);
    /* At most 15 puts a round, so 20 rounds stay below the disk capacity
     * and nothing acknowledged is evicted; then lookups only. */
    for (uint64_t s = a->first, i = 0;; i++) {
        if (i < 15) {
            if (put_seed(h, s) == 0) break;
            if (it_write_u64(a->fd, s)) break;
            s++;
        }
        if (s == a->first) continue;
        int r = lookup_seed(h, a->first + (i * 7) % (s - a->first));
        if (r == -2) return 1;   /* wrong bytes: never acceptable */
        if (r == -1) break;      /* the daemon died */
    }
    simcache_close(h);
    return 0;
}

static void kill_loop_under_load_serves_no_corrupt_blob(void **state)
{
    (void)state;
    enum { ROUNDS = 20, MAXSEEDS = 20000 };
    static uint64_t acked[MAXSEEDS];
    size_t nacked = 0;
    srand(1234);
    for (int round = 0; round < ROUNDS; round++) {
        it_daemon_t d;
        assert_int_equal(start(&d, "sync", "1m"), 0);
        /* Everything acknowledged in earlier rounds is still served. */
        simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
        assert_non_null(h);
        for (size_t i = 0; i < nacked; i++) {
            int r = lookup_seed(h, acked[i]);
            if (r != 1) fprintf(stderr, "round %d: acked seed %llu: %d\n", round,
                                (unsigned long long)acked[i], r);
            assert_int_equal(r, 1);
        }
        simcache_close(h);
        int pfd[2];
        assert_int_equal(pipe(pfd), 0);
        load_arg_t a = { d.sock, pfd[1], 1000000ull * (uint64_t)(round + 1) };
        pid_t child = it_fork(load_child, &a);
        close(pfd[1]);
        it_sleep_ms(30 + rand() % 120);
        kill9(&d);
        uint64_t s;
        while (it_read_u64(pfd[0], &s, IT_TIMEOUT_MS) == 0)
            if (nacked < MAXSEEDS) acked[nacked++] = s;
        close(pfd[0]);
        assert_int_equal(it_wait_pid(child, IT_TIMEOUT_MS), 0);
        it_daemon_cleanup(&d);
    }
    assert_true(nacked > 0);
    /* The disk (32 MiB) may have evicted old entries to take new ones: the
     * check above holds because 20 rounds stay well below it. */
}

static void flip_byte(uint64_t off)
{
    char path[128];
    snprintf(path, sizeof path, "%s/blobs.dat", data_dir);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t c;
    assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
    c ^= 0x01;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
    close(fd);
}

static void bit_flip_while_stopped_is_dropped(void **state)
{
    (void)state;
    it_daemon_t d;
    assert_int_equal(start(&d, "sync", "4m"), 0);
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_true(put_seed(h, 7) != 0);   /* first blob of an empty file: offset 0 */
    assert_true(put_seed(h, 8) != 0);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);
    flip_byte(1000);

    assert_int_equal(start(&d, "sync", "4m"), 0);
    h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_int_equal(lookup_seed(h, 7), 0);
    assert_int_equal(lookup_seed(h, 8), 1);
    assert_int_equal(it_admin_u64(&d, "info", "disk_checksum_failures"), 1);
    char out[256];
    assert_int_equal(it_admin(&d, "verify", out, sizeof out), 0);
    assert_non_null(strstr(out, "bad 0"));
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);
}

/* Put seeds 7 and 8 (sync), flip a byte of 7's blob while stopped, restart:
 * a get of 7 answers SIMCACHE_ECORRUPT and drops it (the next get reads it
 * as absent), 8 is served exact. async_io: the promotion path the daemon
 * must report (1: io_uring read and replay, 0: synchronous read). No
 * cmocka asserts (it also runs in a forked child): NULL, or what failed. */
static const char *get_of_flipped_blob(int async_io)
{
    static char why[256];
    const char *bad = NULL;
    it_daemon_t d;
    simcache_t *h = NULL;
    if (start(&d, "sync", "4m")) return "first start failed";
    h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    uint64_t id7 = h ? put_seed(h, 7) : 0;   /* first blob of an empty file: offset 0 */
    uint64_t id8 = h ? put_seed(h, 8) : 0;
    if (h) simcache_close(h);
    h = NULL;
    int stopped = it_daemon_stop(&d);
    it_daemon_cleanup(&d);
    if (!id7 || !id8 || stopped) return "puts or the first stop failed";
    flip_byte(1000);

    if (start(&d, "sync", "4m")) return "restart failed";
    simcache_match_t m;
    int rc;
    uint64_t v = it_admin_u64(&d, "info", "disk_async_io");
    if (v != (uint64_t)async_io) {
        snprintf(why, sizeof why, "disk_async_io %llu, want %d", (unsigned long long)v, async_io);
        bad = why;
    } else if (!(h = it_connect(d.sock, MODEL, FP, NULL, DIM))) {
        bad = "connect failed";
    } else if ((rc = simcache_get(h, id7, &m)) != SIMCACHE_ECORRUPT) {
        snprintf(why, sizeof why, "first get of the flipped entry: %s (%s), want SIMCACHE_ECORRUPT",
                 simcache_strerror(rc), simcache_last_error(h));
        bad = why;
    } else if (!strstr(simcache_last_error(h), "checksum")) {
        snprintf(why, sizeof why, "ECORRUPT message does not say why: %s", simcache_last_error(h));
        bad = why;
    } else if ((rc = simcache_get(h, id7, &m)) != SIMCACHE_ENOTFOUND) {
        snprintf(why, sizeof why, "second get of the flipped entry: %s, want SIMCACHE_ENOTFOUND",
                 simcache_strerror(rc));
        bad = why;
    } else if ((rc = simcache_get(h, id8, &m)) != 0) {
        snprintf(why, sizeof why, "get of the intact entry: %s", simcache_strerror(rc));
        bad = why;
    } else {
        if (m.size != BLOB || it_check(m.data, m.size, 8)) bad = "intact entry served wrong bytes";
        simcache_release(h, &m);
        if (!bad && (v = it_admin_u64(&d, "info", "disk_checksum_failures")) != 1) {
            snprintf(why, sizeof why, "disk_checksum_failures %llu, want 1", (unsigned long long)v);
            bad = why;
        }
    }
    if (h) simcache_close(h);
    if (bad) it_daemon_dump_log(&d);
    if (it_daemon_stop(&d) && !bad) bad = "the daemon did not stop cleanly";
    it_daemon_cleanup(&d);
    return bad;
}

static void get_of_flipped_blob_answers_ecorrupt(void **state)
{
    (void)state;
    const char *bad = get_of_flipped_blob(1);
    if (bad) fail_msg("%s", bad);
}

/* As a container's default seccomp profile does (Docker refuses io_uring
 * with EPERM), then the same scenario: promotions read synchronously. */
static int no_io_uring_child(void *arg)
{
    (void)arg;
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { sizeof f / sizeof f[0], f };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
        perror("seccomp");
        return 77;
    }
    const char *bad = get_of_flipped_blob(0);
    if (bad) fprintf(stderr, "without io_uring: %s\n", bad);
    return bad ? 1 : 0;
}

static void get_of_flipped_blob_answers_ecorrupt_without_io_uring(void **state)
{
    (void)state;
#if defined(__x86_64__)
    pid_t pid = it_fork(no_io_uring_child, NULL);
    assert_true(pid > 0);
    int rc = it_wait_pid(pid, 4 * IT_TIMEOUT_MS);
    if (rc == 77) skip();
    assert_int_equal(rc, 0);
#else
    skip();   /* the filter above names x86-64's syscall number */
#endif
}

/* A batch whose matches are on disk promotes them together and answers
 * once all are in; a batch larger than the host tier still answers (some
 * misses), never with wrong bytes. */
static void batch_of_disk_hits_promotes_together(void **state)
{
    (void)state;
    it_daemon_t d;
    assert_int_equal(start(&d, "async", "1m"), 0);
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    for (uint64_t s = 1; s <= 40; s++) assert_true(put_seed(h, s) != 0);
    assert_true(it_admin_u64(&d, "info", "disk_only_entries") >= 24);
    enum { N = 40 };
    static float emb[N * DIM];
    simcache_match_t m[N];
    for (uint64_t i = 0; i < N; i++) it_unit(i + 1, emb + i * DIM, DIM);
    /* Seeds 1..12 (768 KiB) were the first to leave the 1 MiB host tier. */
    assert_int_equal(simcache_lookup_batch(h, emb, 12, 0.999f, m), 12);
    for (uint64_t i = 0; i < 12; i++) {
        assert_int_equal(m[i].size, BLOB);
        assert_int_equal(it_check(m[i].data, m[i].size, i + 1), 0);
        simcache_release(h, &m[i]);
    }
    uint64_t waits = it_admin_u64(&d, "info", "disk_promotion_waits");
    assert_true(waits >= 1);
    assert_true(it_admin_u64(&d, "info", "disk_promotions_async") >= 12);
    /* All 40 cannot be leased at once in 1 MiB: misses, but right bytes. */
    int hits = simcache_lookup_batch(h, emb, N, 0.999f, m);
    assert_true(hits >= 12 && hits <= N);
    for (uint64_t i = 0; i < N; i++) {
        if (!m[i].lease) continue;
        assert_int_equal(it_check(m[i].data, m[i].size, i + 1), 0);
        simcache_release(h, &m[i]);
    }
    assert_int_equal(it_admin_u64(&d, "info", "disk_promotions_in_flight"), 0);
    assert_int_equal(simcache_ping(h), 0);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);
}

#define BIG (128ull << 20)

typedef struct {
    const char *sock;
    uint64_t id;
} big_arg_t;

static int get_big_child(void *p)
{
    big_arg_t *a = p;
    int fails = 0;
    simcache_t *h = it_connect(a->sock, MODEL, FP, NULL, DIM);
    if (!h) return 1;
    simcache_match_t m;
    int rc = simcache_get(h, a->id, &m);
    IT_CHECK(fails, rc == 0);
    if (rc == 0) {
        IT_CHECK(fails, m.size == BIG);
        IT_CHECK(fails, it_check(m.data, m.size, 777) == 0);
        simcache_release(h, &m);
    }
    simcache_close(h);
    return fails;
}

/* While one client's 128 MiB promotion is being read, the loop serves the
 * admin socket and other clients. Seen from outside: `info` reports the
 * promotion in flight, a ping from another client comes back, and `info`
 * still reports it in flight. Timing decides whether a probe lands inside
 * the read, so the probe is tried on several promotions; one sighting is
 * the proof (a blocking read could never show it). */
static void other_clients_flow_during_a_large_promotion(void **state)
{
    (void)state;
    it_daemon_t d;
    const char *args[] = { "--data-dir", data_dir, "--disk-capacity", "300m", "--durability",
                           "async", "--host-capacity", "200m", NULL };
    assert_int_equal(it_daemon_startv(&d, args), 0);
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    float e[DIM];
    it_unit(4242, e, DIM);
    uint64_t id = it_put(h, e, BIG, 777, "big");
    assert_true(id != 0);
    char out[4096];
    int seen = 0;
    for (int attempt = 0; attempt < 20 && !seen; attempt++) {
        assert_int_equal(it_admin(&d, "checkpoint", out, sizeof out), 0);
        assert_int_equal(it_admin(&d, "evict 1", out, sizeof out), 0);
        assert_int_equal(it_admin_u64(&d, "info", "disk_only_entries"), 1);
        big_arg_t a = { d.sock, id };
        pid_t child = it_fork(get_big_child, &a);
        int status = 0;
        pid_t done = 0;
        for (int polls = 0; polls < 200000 && (done = waitpid(child, &status, WNOHANG)) == 0;
             polls++) {
            if (it_admin_u64(&d, "info", "disk_promotions_in_flight") != 1) continue;
            assert_int_equal(simcache_ping(h), 0);
            if (it_admin_u64(&d, "info", "disk_promotions_in_flight") == 1) seen = 1;
        }
        if (done == 0) done = waitpid(child, &status, 0);
        assert_int_equal(done, child);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    fprintf(stderr, "promotion in flight seen from outside: %s\n", seen ? "yes" : "no");
    assert_true(seen);
    assert_true(it_admin_u64(&d, "info", "disk_promotions_async") >= 1);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);
}

/* ---- races with a promotion in flight ---- */

/* A get of a BIG entry: exit 0 with the right bytes, 2 for
 * SIMCACHE_ENOTFOUND, 1 for anything else (wrong bytes above all). */
static int get_big_or_gone_child(void *p)
{
    big_arg_t *a = p;
    simcache_t *h = it_connect(a->sock, MODEL, FP, NULL, DIM);
    if (!h) return 1;
    simcache_match_t m;
    int rc = simcache_get(h, a->id, &m), ret = 1;
    if (rc == SIMCACHE_ENOTFOUND) ret = 2;
    if (rc == 0) {
        ret = m.size == BIG && it_check(m.data, m.size, 777) == 0 ? 0 : 1;
        simcache_release(h, &m);
    }
    simcache_close(h);
    return ret;
}

static void start_big_daemon(it_daemon_t *d)
{
    const char *args[] = { "--data-dir", data_dir, "--disk-capacity", "300m", "--durability",
                           "async", "--host-capacity", "200m", NULL };
    assert_int_equal(it_daemon_startv(d, args), 0);
}

static uint64_t put_big(simcache_t *h, uint64_t seed)
{
    float e[DIM];
    it_unit(seed, e, DIM);
    uint64_t id = it_put(h, e, BIG, 777, "big");
    assert_true(id != 0);
    return id;
}

/* Put the entry on disk only. */
static void to_disk(it_daemon_t *d)
{
    char out[512];
    assert_int_equal(it_admin(d, "checkpoint", out, sizeof out), 0);
    assert_int_equal(it_admin(d, "evict 1000", out, sizeof out), 0);
}

/* Wait until a promotion is in flight or the child is done; 1 if in flight. */
static int wait_in_flight(it_daemon_t *d, pid_t child)
{
    for (int i = 0; i < 20000; i++) {
        if (it_admin_u64(d, "info", "disk_promotions_in_flight") > 0) return 1;
        if (waitpid(child, NULL, WNOHANG) == child) return -1;   /* reaped: caller must not wait */
    }
    return 0;
}

/* The race both removal tests share: put a BIG entry, move it to disk, have
 * a child get it, and when its promotion is in flight call remove(). An
 * attempt counts when remove() says it removed the entry and the promotion
 * was still in flight after it; then the waiting get must answer
 * SIMCACHE_ENOTFOUND. No attempt may serve wrong bytes. Retried (timing
 * decides where remove lands) up to 8 times; returns whether one counted. */
typedef int (*remove_fn)(it_daemon_t *d, simcache_t *h, uint64_t id);

static int remove_while_waiting(it_daemon_t *d, simcache_t *h, uint64_t seed0, remove_fn remove)
{
    int seen = 0;
    for (int attempt = 0; attempt < 20 && !seen; attempt++) {
        uint64_t id = put_big(h, seed0 + (uint64_t)attempt);
        to_disk(d);
        big_arg_t a = { d->sock, id };
        pid_t child = it_fork(get_big_or_gone_child, &a);
        int w = wait_in_flight(d, child);
        if (w == 1 && remove(d, h, id) &&
            it_admin_u64(d, "info", "disk_promotions_in_flight") > 0)
            seen = 1;
        if (w != -1) {
            int code = it_wait_pid(child, IT_TIMEOUT_MS);
            assert_true(code == 0 || code == 2);   /* never wrong bytes */
            if (seen) assert_int_equal(code, 2);
        }
        if (!seen) simcache_delete(h, id);
    }
    return seen;
}

static int remove_by_delete(it_daemon_t *d, simcache_t *h, uint64_t id)
{
    (void)d;
    int rc = simcache_delete(h, id);
    assert_true(rc == 0 || rc == SIMCACHE_ENOTFOUND);
    return rc == 0;
}

static int remove_by_flush(it_daemon_t *d, simcache_t *h, uint64_t id)
{
    (void)h;
    (void)id;
    char out[256];
    assert_int_equal(it_admin(d, "flush", out, sizeof out), 0);
    return strstr(out, "flushed 1") != NULL;
}

/* A client deletes an entry while another client's get waits for its
 * promotion: the waiting get answers SIMCACHE_ENOTFOUND (never bytes of a
 * deleted or reused extent), the daemon keeps serving, and the next entry
 * put where that one was reads back exact. */
static void delete_during_promotion(void **state)
{
    (void)state;
    it_daemon_t d;
    start_big_daemon(&d);
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    int seen = remove_while_waiting(&d, h, 9000, remove_by_delete);
    fprintf(stderr, "delete landed during the promotion: %s\n", seen ? "yes" : "no");
    assert_true(seen);
    assert_int_equal(it_admin_u64(&d, "info", "disk_promotions_in_flight"), 0);
    assert_int_equal(it_admin_u64(&d, "info", "disk_checksum_failures"), 0);
    /* The extent the read held is free again and is not shared. */
    uint64_t id = put_big(h, 9100);
    to_disk(&d);
    big_arg_t a = { d.sock, id };
    assert_int_equal(it_wait_pid(it_fork(get_big_or_gone_child, &a), IT_TIMEOUT_MS), 0);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);
}

/* Admin `flush` while a get waits for a promotion: the entry goes too
 * (flush counts it), the waiting get answers SIMCACHE_ENOTFOUND. */
static void flush_during_promotion(void **state)
{
    (void)state;
    it_daemon_t d;
    start_big_daemon(&d);
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    int seen = remove_while_waiting(&d, h, 9400, remove_by_flush);
    fprintf(stderr, "flush landed during the promotion: %s\n", seen ? "yes" : "no");
    assert_true(seen);
    assert_int_equal(it_admin_u64(&d, "info", "disk_only_entries"), 0);
    assert_int_equal(it_admin_u64(&d, "info", "host_entries"), 0);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);
}

/* A client killed while its get waits for a promotion: the promotion
 * completes for nobody, the entry is back in the host tier with the right
 * bytes, and no lease is left behind. */
static void client_killed_while_waiting(void **state)
{
    (void)state;
    it_daemon_t d;
    start_big_daemon(&d);
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    uint64_t id = put_big(h, 9200);
    int seen = 0;
    for (int attempt = 0; attempt < 20 && !seen; attempt++) {
        to_disk(&d);
        big_arg_t a = { d.sock, id };
        pid_t child = it_fork(get_big_or_gone_child, &a);
        int w = wait_in_flight(&d, child);
        if (w == 1) {
            kill(child, SIGKILL);
            seen = it_admin_u64(&d, "info", "disk_promotions_in_flight") > 0;
        }
        if (w != -1) it_wait_pid(child, IT_TIMEOUT_MS);
    }
    fprintf(stderr, "client killed during the promotion: %s\n", seen ? "yes" : "no");
    assert_true(seen);
    for (int i = 0; i < 500 && it_admin_u64(&d, "info", "disk_promotions_in_flight"); i++)
        it_sleep_ms(10);
    assert_int_equal(it_admin_u64(&d, "info", "disk_promotions_in_flight"), 0);
    for (int i = 0; i < 500 && it_admin_u64(&d, "info", "leases_active"); i++) it_sleep_ms(10);
    assert_int_equal(it_admin_u64(&d, "info", "leases_active"), 0);
    assert_int_equal(it_admin_u64(&d, "info", "disk_only_entries"), 0);
    simcache_match_t m;
    assert_int_equal(simcache_get(h, id, &m), 0);
    assert_int_equal(it_check(m.data, m.size, 777), 0);
    assert_int_equal(simcache_release(h, &m), 0);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);
}

/* Two clients that need the same disk entry at once share one read: one
 * asynchronous promotion, two parked requests, both answered exact. */
static void two_clients_share_one_read(void **state)
{
    (void)state;
    it_daemon_t d;
    start_big_daemon(&d);
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    uint64_t id = put_big(h, 9300);
    int seen = 0;
    for (int attempt = 0; attempt < 20 && !seen; attempt++) {
        to_disk(&d);
        uint64_t p0 = it_admin_u64(&d, "info", "disk_promotions_async");
        uint64_t w0 = it_admin_u64(&d, "info", "disk_promotion_waits");
        big_arg_t a = { d.sock, id };
        pid_t c1 = it_fork(get_big_or_gone_child, &a);
        int w = wait_in_flight(&d, c1);
        pid_t c2 = it_fork(get_big_or_gone_child, &a);
        if (w != -1) assert_int_equal(it_wait_pid(c1, IT_TIMEOUT_MS), 0);
        assert_int_equal(it_wait_pid(c2, IT_TIMEOUT_MS), 0);
        uint64_t p1 = it_admin_u64(&d, "info", "disk_promotions_async");
        uint64_t w1 = it_admin_u64(&d, "info", "disk_promotion_waits");
        assert_int_equal(p1 - p0, 1);   /* one read, whoever came when */
        seen = w1 - w0 == 2;            /* ...and both waited for it */
        simcache_match_t m;
        assert_int_equal(simcache_get(h, id, &m), 0);
        assert_int_equal(simcache_release(h, &m), 0);
    }
    fprintf(stderr, "two gets shared one promotion: %s\n", seen ? "yes" : "no");
    assert_true(seen);
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);
}

/* LMDB map at its configured limit: a sync put is refused with
 * SIMCACHE_ENOSPC and says why, the refused put leaves the connection
 * usable (the next put is refused the same way, not EPROTO), and everything
 * stored before is still served. */
static void lmdb_map_limit_refuses_cleanly(void **state)
{
    (void)state;
    it_daemon_t d;
    const char *args[] = { "--data-dir", data_dir, "--disk-capacity", "64m", "--durability",
                           "sync", "--host-capacity", "64m", "--disk-lmdb-max-size", "1m", NULL };
    assert_int_equal(it_daemon_startv(&d, args), 0);
    enum { BIGDIM = 4096 };   /* 16 KiB records: the 1 MiB map fills in ~60 puts */
    simcache_t *h = it_connect(d.sock, MODEL, "fp-big", NULL, BIGDIM);
    assert_non_null(h);
    static float e[BIGDIM];
    uint64_t ids[400];
    int stored = 0, rc = 0;
    for (int i = 0; i < 400; i++) {
        it_unit(50000 + (uint64_t)i, e, BIGDIM);
        simcache_layout_t l = it_layout(BLOB);
        static uint8_t kv[BLOB];
        it_fill(kv, BLOB, 50000 + (uint64_t)i);
        rc = simcache_put(h, e, &l, kv, BLOB, SIMCACHE_HOST_MEMORY, &ids[i]);
        if (rc) break;
        stored++;
    }
    assert_int_equal(rc, SIMCACHE_ENOSPC);
    assert_non_null(strstr(simcache_last_error(h), "disk tier full"));
    assert_true(stored >= 10);
    /* The same connection: refused the same way again, not confused. */
    it_unit(99999, e, BIGDIM);
    simcache_layout_t l = it_layout(BLOB);
    static uint8_t kv2[BLOB];
    uint64_t id2;
    assert_int_equal(simcache_put(h, e, &l, kv2, BLOB, SIMCACHE_HOST_MEMORY, &id2),
                     SIMCACHE_ENOSPC);
    /* What was acknowledged is served, byte-exact. */
    for (int i = 0; i < stored; i++) {
        simcache_match_t m;
        assert_int_equal(simcache_get(h, ids[i], &m), 0);
        assert_int_equal(it_check(m.data, m.size, 50000 + (uint64_t)i), 0);
        simcache_release(h, &m);
    }
    assert_int_equal(simcache_ping(h), 0);
    assert_true(it_admin_u64(&d, "info", "disk_write_failures") >= 2);
    assert_int_equal(it_admin_u64(&d, "info", "disk_lmdb_map_bytes"), 1u << 20);
    FILE *lf = fopen(d.log, "r");
    assert_non_null(lf);
    static char logbuf[1 << 18];
    size_t ln = fread(logbuf, 1, sizeof logbuf - 1, lf);
    logbuf[ln] = 0;
    fclose(lf);
    assert_non_null(strstr(logbuf, "LMDB map full at its limit"));
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);
}

int main(int argc, char **argv)
{
    it_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(demotion_and_promotion_keep_bytes_exact, mk_data, rm_data),
        cmocka_unit_test_setup_teardown(registered_arena_keeps_bytes_exact, mk_data, rm_data),
        cmocka_unit_test_setup_teardown(registration_over_memlock_falls_back, mk_data, rm_data),
        cmocka_unit_test_setup_teardown(hugetlb_arena_keeps_bytes_exact, mk_data, rm_data),
        cmocka_unit_test_setup_teardown(huge_pages_on_without_room_refuses_to_start, mk_data,
                                        rm_data),
        cmocka_unit_test_setup_teardown(thp_arena_counts_its_huge_pages, mk_data, rm_data),
        cmocka_unit_test_setup_teardown(restart_serves_what_was_on_disk, mk_data, rm_data),
        cmocka_unit_test_setup_teardown(lowered_max_namespaces_keeps_restored_records, mk_data,
                                        rm_data),
        cmocka_unit_test_setup_teardown(get_with_host_full_of_leases_is_enospc, mk_data, rm_data),
        cmocka_unit_test_setup_teardown(batch_of_disk_hits_promotes_together, mk_data, rm_data),
        cmocka_unit_test_setup_teardown(lmdb_map_limit_refuses_cleanly, mk_data, rm_data),
        cmocka_unit_test_setup_teardown(delete_during_promotion, mk_data, rm_data),
        cmocka_unit_test_setup_teardown(flush_during_promotion, mk_data, rm_data),
        cmocka_unit_test_setup_teardown(client_killed_while_waiting, mk_data, rm_data),
        cmocka_unit_test_setup_teardown(two_clients_share_one_read, mk_data, rm_data),
        cmocka_unit_test_setup_teardown(other_clients_flow_during_a_large_promotion, mk_data,
                                        rm_data),
        cmocka_unit_test_setup_teardown(full_disk_drops_lru_and_keeps_serving, mk_data, rm_data),
        cmocka_unit_test_setup_teardown(sync_puts_survive_sigkill, mk_data, rm_data),
        cmocka_unit_test_setup_teardown(write_behind_persists_async_puts, mk_data, rm_data),
        cmocka_unit_test_setup_teardown(bit_flip_while_stopped_is_dropped, mk_data, rm_data),
        cmocka_unit_test_setup_teardown(get_of_flipped_blob_answers_ecorrupt, mk_data, rm_data),
        cmocka_unit_test_setup_teardown(get_of_flipped_blob_answers_ecorrupt_without_io_uring,
                                        mk_data, rm_data),
        cmocka_unit_test_setup_teardown(kill_loop_under_load_serves_no_corrupt_blob, mk_data,
                                        rm_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
