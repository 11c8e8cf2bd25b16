/* test_disk.c - the disk tier: round trips, restart recovery, corrupt and
 * truncated blob files, eviction when full, LMDB records and meta values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <xxhash.h>

#include "disk.h"

typedef struct {
    char dir[128];
    uint64_t dropped[64];
    disk_drop_reason_t why[64];
    int n;
} fx_t;

static void on_drop(void *ctx, uint64_t id, disk_drop_reason_t why)
{
    fx_t *f = ctx;
    if (f->n < 64) {
        f->dropped[f->n] = id;
        f->why[f->n] = why;
    }
    f->n++;
}

static disk_t *open_disk(fx_t *f, uint64_t cap, int sync)
{
    disk_config_t c = { .dir = f->dir, .capacity = cap, .sync = sync, .on_drop = on_drop,
                        .ctx = f };
    char err[256];
    disk_t *d = disk_open(&c, err, sizeof err);
    if (!d) fprintf(stderr, "disk_open: %s\n", err);
    return d;
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/simcache-test-disk-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd)) {}
    free(f);
    return 0;
}

/* An aligned buffer of len bytes (padded) filled from seed. */
static uint8_t *blob(uint64_t len, unsigned seed)
{
    void *p = NULL;
    assert_int_equal(posix_memalign(&p, DISK_ALIGN, disk_padded(len)), 0);
    uint8_t *b = p;
    for (uint64_t i = 0; i < disk_padded(len); i++) b[i] = (uint8_t)(seed * 31u + i * 7u);
    return b;
}

static void put_blob(disk_t *d, uint64_t id, uint64_t len, unsigned seed)
{
    uint8_t *b = blob(len, seed);
    char rec[32];
    snprintf(rec, sizeof rec, "rec-%llu", (unsigned long long)id);
    assert_int_equal(disk_put(d, id, b, len, XXH3_64bits(b, len), rec, (uint32_t)strlen(rec)), 0);
    free(b);
}

static int check_blob(disk_t *d, uint64_t id, uint64_t len, unsigned seed)
{
    uint8_t *want = blob(len, seed), *got = blob(len, 0);
    uint64_t glen = 0;
    int rc = disk_get(d, id, got, &glen);
    if (rc == 0) {
        assert_int_equal(glen, len);
        assert_memory_equal(got, want, len);
    }
    free(want);
    free(got);
    return rc;
}

static void put_get_round_trip(void **state)
{
    fx_t *f = *state;
    disk_t *d = open_disk(f, 1 << 20, 0);
    assert_non_null(d);
    put_blob(d, 1, 5000, 1);
    put_blob(d, 2, 4096, 2);
    put_blob(d, 3, 1, 3);
    assert_int_equal(check_blob(d, 1, 5000, 1), 0);
    assert_int_equal(check_blob(d, 2, 4096, 2), 0);
    assert_int_equal(check_blob(d, 3, 1, 3), 0);
    disk_stats_t st;
    disk_get_stats(d, &st);
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.bytes_used, 8192 + 4096 + 4096);
    assert_int_equal(disk_delete(d, 2), 0);
    assert_int_equal(check_blob(d, 2, 4096, 2), -ENOENT);
    assert_int_equal(disk_delete(d, 2), -ENOENT);
    disk_get_stats(d, &st);
    assert_int_equal(st.entries, 2);
    assert_int_equal(f->n, 0);
    disk_close(d);
}

static void misaligned_buffer_refused(void **state)
{
    fx_t *f = *state;
    disk_t *d = open_disk(f, 1 << 20, 0);
    uint8_t *b = blob(8192, 1);
    assert_int_equal(disk_put(d, 1, b + 8, 100, 0, "", 0), -EINVAL);
    assert_int_equal(disk_put(d, 0, b, 100, 0, "", 0), -EINVAL);
    assert_int_equal(disk_put(d, 1, b, 2 << 20, 0, "", 0), -EFBIG);
    free(b);
    disk_close(d);
}

typedef struct {
    int n;
    uint64_t ids[16];
    char recs[16][32];
} seen_t;

static int see(void *arg, uint64_t id, uint64_t len, uint64_t checksum, uint64_t created_us,
               const void *rec, uint32_t rec_len)
{
    seen_t *s = arg;
    (void)len;
    (void)checksum;
    assert_true(created_us > 0);
    s->ids[s->n] = id;
    memcpy(s->recs[s->n], rec, rec_len);
    s->recs[s->n][rec_len] = 0;
    s->n++;
    return 0;
}

static void restart_recovers_records_and_free_space(void **state)
{
    fx_t *f = *state;
    disk_t *d = open_disk(f, 64 * 1024, 1);
    for (uint64_t id = 1; id <= 8; id++) put_blob(d, id, 4096, (unsigned)id);
    assert_int_equal(disk_delete(d, 4), 0);
    assert_int_equal(disk_meta_put(d, "seed", "12345678", 8), 0);
    disk_close(d);

    d = open_disk(f, 64 * 1024, 1);
    assert_non_null(d);
    disk_stats_t st;
    disk_get_stats(d, &st);
    assert_int_equal(st.entries, 7);
    assert_int_equal(st.bytes_used, 7 * 4096);
    seen_t s = { 0 };
    disk_foreach(d, see, &s);
    assert_int_equal(s.n, 7);
    for (int i = 0; i < s.n; i++) {
        char want[32];
        snprintf(want, sizeof want, "rec-%llu", (unsigned long long)s.ids[i]);
        assert_string_equal(s.recs[i], want);
        assert_int_equal(check_blob(d, s.ids[i], 4096, (unsigned)s.ids[i]), 0);
    }
    char seed[8];
    assert_int_equal(disk_meta_get(d, "seed", seed, sizeof seed), 8);
    assert_memory_equal(seed, "12345678", 8);
    assert_int_equal(disk_meta_get(d, "nope", seed, sizeof seed), -ENOENT);
    /* Free space was rebuilt: the 9 free pages fill without evicting. */
    for (uint64_t id = 10; id < 19; id++) put_blob(d, id, 4096, (unsigned)id);
    assert_int_equal(f->n, 0);
    for (uint64_t id = 1; id <= 8; id++)
        if (id != 4) assert_int_equal(check_blob(d, id, 4096, (unsigned)id), 0);
    disk_close(d);
}

static void full_disk_evicts_lru(void **state)
{
    fx_t *f = *state;
    disk_t *d = open_disk(f, 4 * 4096, 0);
    for (uint64_t id = 1; id <= 4; id++) put_blob(d, id, 4096, (unsigned)id);
    assert_int_equal(check_blob(d, 1, 4096, 1), 0);  /* 1 is now the most recent */
    put_blob(d, 5, 8192, 5);
    assert_int_equal(f->n, 2);
    assert_int_equal(f->dropped[0], 2);
    assert_int_equal(f->dropped[1], 3);
    assert_int_equal(f->why[0], DISK_DROP_EVICTED);
    assert_false(disk_has(d, 2));
    assert_int_equal(check_blob(d, 1, 4096, 1), 0);
    assert_int_equal(check_blob(d, 5, 8192, 5), 0);
    disk_stats_t st;
    disk_get_stats(d, &st);
    assert_int_equal(st.evictions, 2);
    disk_close(d);
}

static void flip_byte(const char *dir, uint64_t off)
{
    char path[256];
    snprintf(path, sizeof path, "%s/blobs.dat", dir);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t c;
    assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
    c ^= 0x10;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
    close(fd);
}

static void bit_flip_detected_and_dropped(void **state)
{
    fx_t *f = *state;
    disk_t *d = open_disk(f, 64 * 1024, 1);
    put_blob(d, 1, 4096, 1);   /* first fit: offset 0 */
    put_blob(d, 2, 4096, 2);
    disk_close(d);
    flip_byte(f->dir, 100);
    d = open_disk(f, 64 * 1024, 1);
    assert_int_equal(check_blob(d, 1, 4096, 1), -EBADMSG);
    assert_int_equal(f->n, 1);
    assert_int_equal(f->dropped[0], 1);
    assert_int_equal(f->why[0], DISK_DROP_CORRUPT);
    assert_false(disk_has(d, 1));
    assert_int_equal(check_blob(d, 2, 4096, 2), 0);
    disk_stats_t st;
    disk_get_stats(d, &st);
    assert_int_equal(st.checksum_failures, 1);
    disk_close(d);
    /* The drop is durable. */
    d = open_disk(f, 64 * 1024, 1);
    assert_false(disk_has(d, 1));
    disk_close(d);
}

static void verify_scans_every_blob(void **state)
{
    fx_t *f = *state;
    disk_t *d = open_disk(f, 64 * 1024, 1);
    for (uint64_t id = 1; id <= 4; id++) put_blob(d, id, 4096, (unsigned)id);
    disk_close(d);
    flip_byte(f->dir, 4096 + 7);
    flip_byte(f->dir, 3 * 4096 + 4000);
    d = open_disk(f, 64 * 1024, 1);
    uint64_t checked = 0;
    assert_int_equal(disk_verify(d, &checked), 2);
    assert_int_equal(checked, 4);
    assert_int_equal(f->n, 2);
    disk_stats_t st;
    disk_get_stats(d, &st);
    assert_int_equal(st.entries, 2);
    assert_int_equal(disk_verify(d, &checked), 0);
    disk_close(d);
}

static void truncated_file_drops_entries_past_the_end(void **state)
{
    fx_t *f = *state;
    disk_t *d = open_disk(f, 64 * 1024, 1);
    for (uint64_t id = 1; id <= 4; id++) put_blob(d, id, 4096, (unsigned)id);
    disk_close(d);
    char path[256];
    snprintf(path, sizeof path, "%s/blobs.dat", f->dir);
    assert_int_equal(truncate(path, 2 * 4096), 0);
    d = open_disk(f, 64 * 1024, 1);
    assert_non_null(d);
    disk_stats_t st;
    disk_get_stats(d, &st);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.checksum_failures, 2);
    assert_int_equal(check_blob(d, 1, 4096, 1), 0);
    assert_int_equal(check_blob(d, 2, 4096, 2), 0);
    assert_int_equal(check_blob(d, 3, 4096, 3), -ENOENT);
    /* The file is whole again and usable. */
    put_blob(d, 9, 8192, 9);
    assert_int_equal(check_blob(d, 9, 8192, 9), 0);
    disk_close(d);
}

static void replace_keeps_one_record(void **state)
{
    fx_t *f = *state;
    disk_t *d = open_disk(f, 64 * 1024, 0);
    put_blob(d, 1, 4096, 1);
    put_blob(d, 1, 9000, 2);
    assert_int_equal(check_blob(d, 1, 9000, 2), 0);
    disk_stats_t st;
    disk_get_stats(d, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.bytes_used, 3 * 4096);
    disk_close(d);
}

static void map_grows_when_full(void **state)
{
    fx_t *f = *state;
    disk_config_t c = { .dir = f->dir, .capacity = 64 << 20, .map_size = 64 * 1024 };
    char err[256];
    disk_t *d = disk_open(&c, err, sizeof err);
    assert_non_null(d);
    uint8_t *b = blob(4096, 1);
    static char rec[2000];
    memset(rec, 'x', sizeof rec);
    for (uint64_t id = 1; id <= 200; id++)
        assert_int_equal(disk_put(d, id, b, 10, XXH3_64bits(b, 10), rec, sizeof rec), 0);
    disk_stats_t st;
    disk_get_stats(d, &st);
    assert_true(st.map_size > 64 * 1024);
    disk_close(d);
    /* A hard limit refuses with -ENOSPC and a clear message. */
    c.max_map_size = st.map_size;
    d = disk_open(&c, err, sizeof err);
    assert_non_null(d);
    int rc = 0;
    for (uint64_t id = 1000; id <= 3000 && rc == 0; id++)
        rc = disk_put(d, id, b, 10, XXH3_64bits(b, 10), rec, sizeof rec);
    assert_int_equal(rc, -ENOSPC);
    assert_non_null(strstr(disk_errstr(d), "map full"));
    free(b);
    disk_close(d);
}

static void unwritable_dir_is_a_clear_error(void **state)
{
    fx_t *f = *state;
    if (geteuid() == 0) skip();
    char sub[200];
    snprintf(sub, sizeof sub, "%s/ro", f->dir);
    assert_int_equal(mkdir(sub, 0500), 0);
    disk_config_t c = { .dir = sub, .capacity = 1 << 20 };
    char err[256] = "";
    assert_null(disk_open(&c, err, sizeof err));
    assert_non_null(strstr(err, sub));
}

static void second_open_of_a_directory_is_refused(void **state)
{
    fx_t *f = *state;
    disk_t *d = open_disk(f, 1 << 20, 0);
    assert_non_null(d);
    disk_config_t c = { .dir = f->dir, .capacity = 1 << 20 };
    char err[256] = "";
    assert_null(disk_open(&c, err, sizeof err));
    assert_non_null(strstr(err, "in use"));
    disk_close(d);
    d = open_disk(f, 1 << 20, 0);
    assert_non_null(d);
    disk_close(d);
}

/* tmpfs refuses O_DIRECT: the tier falls back to buffered I/O and says so. */
static void buffered_fallback_without_o_direct(void **state)
{
    (void)state;
    char dir[64];
    snprintf(dir, sizeof dir, "/dev/shm/simcache-test-disk-XXXXXX");
    if (!mkdtemp(dir)) skip();
    fx_t f = { 0 };
    snprintf(f.dir, sizeof f.dir, "%s", dir);
    disk_t *d = open_disk(&f, 1 << 20, 1);
    assert_non_null(d);
    disk_stats_t st;
    disk_get_stats(d, &st);
    put_blob(d, 1, 10000, 1);
    assert_int_equal(check_blob(d, 1, 10000, 1), 0);
    disk_close(d);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {}
    if (st.direct) skip();   /* this tmpfs took O_DIRECT after all */
}

/* ---- asynchronous reads ---- */

typedef struct {
    int calls;
    int rc;
    uint64_t id;
} done_t;

static void on_read_done(void *arg, uint64_t id, int rc)
{
    done_t *t = arg;
    t->calls++;
    t->rc = rc;
    t->id = id;
}

/* Reap until every read and write has called back (eventfd-driven, as in
 * the daemon). */
static void reap_all(disk_t *d)
{
    disk_stats_t st;
    for (int i = 0; i < 10000; i++) {
        disk_get_stats(d, &st);
        if (st.reads_inflight == 0 && st.writes_inflight == 0) return;
        struct timespec ts = { 0, 100000 };
        nanosleep(&ts, NULL);
        disk_reap(d);
    }
    fail_msg("asynchronous I/O never completed");
}

static void async_read_round_trip(void **state)
{
    fx_t *f = *state;
    disk_t *d = open_disk(f, 16 << 20, 0);
    assert_non_null(d);
    disk_stats_t st;
    disk_get_stats(d, &st);
    if (!st.async) skip();   /* no io_uring here: disk_get is the path */
    assert_true(disk_event_fd(d) >= 0);
    /* 3.5 MiB: more than one chunk, the last one short. */
    uint64_t len = (7u << 19) + 123;
    put_blob(d, 1, len, 9);
    put_blob(d, 2, 5000, 3);
    uint8_t *got1 = blob(len, 0), *got2 = blob(5000, 0);
    done_t t1 = { 0 }, t2 = { 0 };
    assert_int_equal(disk_read_async(d, 1, got1, on_read_done, &t1), 0);
    assert_int_equal(disk_read_async(d, 2, got2, on_read_done, &t2), 0);
    assert_int_equal(t1.calls + t2.calls, 0);   /* callbacks only from disk_reap */
    reap_all(d);
    assert_int_equal(t1.calls, 1);
    assert_int_equal(t1.rc, 0);
    assert_int_equal(t1.id, 1);
    assert_int_equal(t2.calls, 1);
    assert_int_equal(t2.rc, 0);
    uint8_t *want = blob(len, 9);
    assert_memory_equal(got1, want, len);
    free(want);
    want = blob(5000, 3);
    assert_memory_equal(got2, want, 5000);
    free(want);
    assert_int_equal(disk_read_async(d, 77, got2, on_read_done, &t2), -ENOENT);
    assert_int_equal(disk_read_async(d, 2, got2 + 1, on_read_done, &t2), -EINVAL);
    disk_get_stats(d, &st);
    assert_int_equal(st.async_reads, 2);
    assert_int_equal(st.reads_inflight, 0);
    free(got1);
    free(got2);
    disk_close(d);
}

/* A blob being read is not evicted; a record deleted under a read keeps its
 * extent until the read completes, and the read says -ENOENT. */
static void async_read_pins_its_extent(void **state)
{
    fx_t *f = *state;
    /* Room for exactly two 1 MiB blobs. */
    disk_t *d = open_disk(f, 2 << 20, 0);
    assert_non_null(d);
    disk_stats_t st;
    disk_get_stats(d, &st);
    if (!st.async) skip();
    put_blob(d, 1, 1 << 20, 1);
    put_blob(d, 2, 1 << 20, 2);
    uint8_t *got = blob(1 << 20, 0);
    done_t t = { 0 };
    assert_int_equal(disk_read_async(d, 1, got, on_read_done, &t), 0);
    /* 1 is the LRU tail, but busy: the new blob must evict 2. */
    f->n = 0;
    put_blob(d, 3, 1 << 20, 3);
    assert_int_equal(f->n, 1);
    assert_int_equal(f->dropped[0], 2);
    assert_int_equal(disk_has(d, 1), 1);
    /* Delete 1 under its read: the extent stays taken, so a new blob finds
     * no room except by evicting 3. */
    assert_int_equal(disk_delete(d, 1), 0);
    assert_int_equal(disk_has(d, 1), 0);
    f->n = 0;
    put_blob(d, 4, 1 << 20, 4);
    assert_int_equal(f->n, 1);
    assert_int_equal(f->dropped[0], 3);
    reap_all(d);
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.rc, -ENOENT);
    /* Now the extent is free again: 5 fits beside 4 without an eviction. */
    f->n = 0;
    put_blob(d, 5, 1 << 20, 5);
    assert_int_equal(f->n, 0);
    assert_int_equal(check_blob(d, 4, 1 << 20, 4), 0);
    assert_int_equal(check_blob(d, 5, 1 << 20, 5), 0);
    free(got);
    disk_close(d);
}

static void async_read_of_a_flipped_blob_is_dropped(void **state)
{
    fx_t *f = *state;
    disk_t *d = open_disk(f, 4 << 20, 0);
    assert_non_null(d);
    disk_stats_t st;
    disk_get_stats(d, &st);
    if (!st.async) skip();
    put_blob(d, 1, 100000, 1);
    disk_close(d);
    char path[200];
    snprintf(path, sizeof path, "%s/blobs.dat", f->dir);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, 4321), 1);
    b ^= 0x10;
    assert_int_equal(pwrite(fd, &b, 1, 4321), 1);
    close(fd);
    d = open_disk(f, 4 << 20, 0);
    assert_non_null(d);
    uint8_t *got = blob(100000, 0);
    done_t t = { 0 };
    f->n = 0;
    assert_int_equal(disk_read_async(d, 1, got, on_read_done, &t), 0);
    reap_all(d);
    assert_int_equal(t.rc, -EBADMSG);
    assert_int_equal(f->n, 1);
    assert_int_equal(f->why[0], DISK_DROP_CORRUPT);
    assert_int_equal(disk_has(d, 1), 0);
    disk_get_stats(d, &st);
    assert_int_equal(st.checksum_failures, 1);
    free(got);
    disk_close(d);
}

/* disk_close with reads in flight completes them (callbacks run). */
static void close_drains_reads_in_flight(void **state)
{
    fx_t *f = *state;
    disk_t *d = open_disk(f, 8 << 20, 0);
    assert_non_null(d);
    disk_stats_t st;
    disk_get_stats(d, &st);
    if (!st.async) skip();
    put_blob(d, 1, 4 << 20, 1);
    uint8_t *got = blob(4 << 20, 0);
    done_t t = { 0 };
    assert_int_equal(disk_read_async(d, 1, got, on_read_done, &t), 0);
    disk_close(d);
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.rc, 0);
    uint8_t *want = blob(4 << 20, 1);
    assert_memory_equal(got, want, 4 << 20);
    free(want);
    free(got);
}

/* A write in the background: not on disk until its callback, then read back
 * exact, and there after a restart; a second write of the same id while the
 * first flies is -EBUSY, of an id already on disk -EEXIST. */
static void async_write_round_trip_and_restart(void **state)
{
    fx_t *f = *state;
    disk_t *d = open_disk(f, 16 << 20, 0);
    assert_non_null(d);
    disk_stats_t st;
    disk_get_stats(d, &st);
    if (!st.async) skip();
    uint64_t len = (5u << 19) + 77;   /* more than one chunk, the last short */
    uint8_t *b = blob(len, 21);
    done_t t = { 0 }, t2 = { 0 };
    assert_int_equal(disk_write_async(d, 5, b, len, XXH3_64bits(b, len), "r5", 2, on_read_done, &t), 0);
    assert_int_equal(disk_has(d, 5), 0);
    assert_int_equal(disk_write_async(d, 5, b, len, 0, NULL, 0, on_read_done, &t2), -EBUSY);
    assert_int_equal(disk_write_async(d, 6, b + 1, len, 0, NULL, 0, on_read_done, &t2), -EINVAL);
    assert_int_equal(t.calls, 0);
    reap_all(d);
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.rc, 0);
    assert_int_equal(t.id, 5);
    assert_true(disk_has(d, 5));
    assert_int_equal(check_blob(d, 5, len, 21), 0);
    assert_int_equal(disk_write_async(d, 5, b, len, 0, NULL, 0, on_read_done, &t2), -EEXIST);
    assert_int_equal(t2.calls, 0);
    disk_get_stats(d, &st);
    assert_int_equal(st.async_writes, 1);
    assert_int_equal(st.entries, 1);
    disk_close(d);
    d = open_disk(f, 16 << 20, 0);
    assert_non_null(d);
    assert_int_equal(check_blob(d, 5, len, 21), 0);
    disk_close(d);
    free(b);
}

/* Read blob 1 asynchronously into dst (cleared first), check its len bytes
 * against want; returns the disk's fixed_ios count after it. */
static uint64_t read_exact(disk_t *d, uint8_t *dst, const uint8_t *want, uint64_t len)
{
    memset(dst, 0xee, disk_padded(len));
    done_t t = { 0 };
    assert_int_equal(disk_read_async(d, 1, dst, on_read_done, &t), 0);
    reap_all(d);
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.rc, 0);
    assert_memory_equal(dst, want, len);
    disk_stats_t st;
    disk_get_stats(d, &st);
    return st.fixed_ios;
}

/* Registered buffers: reads into a registered piece and writes from it go
 * through the fixed-buffer opcodes and keep the bytes exact; a chunk that
 * straddles two pieces, or lies in a piece not registered (yet), takes the
 * plain path and is just as exact. */
static void registered_buffers_keep_bytes_exact(void **state)
{
    fx_t *f = *state;
    disk_t *d = open_disk(f, 64 << 20, 0);
    assert_non_null(d);
    disk_stats_t st;
    disk_get_stats(d, &st);
    if (!st.async) skip();
    const uint64_t region = 160ull << 20;   /* three pieces of 64 MiB, the last partial */
    uint8_t *base = mmap(NULL, region, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(base != MAP_FAILED);
    uint64_t piece = 0;
    assert_int_equal(disk_fixed_init(d, base + 1, region, &piece), -EINVAL);
    int n = disk_fixed_init(d, base, region, &piece);
    if (n == -EINVAL || n == -EOPNOTSUPP) {   /* kernel before 5.19: no sparse tables */
        munmap(base, region);
        disk_close(d);
        skip();
    }
    assert_int_equal(n, 3);
    assert_int_equal(piece, 64ull << 20);
    assert_int_equal(disk_fixed_init(d, base, region, &piece), -EBUSY);
    assert_int_equal(disk_fixed_add(d, 3), -EINVAL);
    int rc = disk_fixed_add(d, 0);
    if (rc == -ENOMEM) {   /* RLIMIT_MEMLOCK below 64 MiB and no CAP_IPC_LOCK */
        munmap(base, region);
        disk_close(d);
        skip();
    }
    assert_int_equal(rc, 0);
    assert_int_equal(disk_fixed_add(d, 0), 0);   /* twice: nothing more */
    disk_get_stats(d, &st);
    assert_int_equal(st.fixed_bytes, 64ull << 20);

    /* Write from piece 0: every chunk fixed (k of them). */
    uint64_t len = (5u << 20) + 77;
    uint8_t *src = blob(len, 41);
    memcpy(base, src, disk_padded(len));
    done_t t = { 0 };
    assert_int_equal(disk_write_async(d, 1, base, len, XXH3_64bits(src, len), NULL, 0,
                                      on_read_done, &t), 0);
    reap_all(d);
    assert_int_equal(t.rc, 0);
    disk_get_stats(d, &st);
    uint64_t k = st.fixed_ios;
    assert_true(k >= 2);
    assert_int_equal(check_blob(d, 1, len, 41), 0);

    /* Read into piece 0 at an offset: fixed, exact. */
    assert_int_equal(read_exact(d, base + (8u << 20), src, len), 2 * k);

    /* Straddling pieces 0 and 1 (1 unregistered), then wholly in piece 1:
     * plain reads, still exact. */
    uint8_t *in1 = base + (80u << 20);
    assert_int_equal(read_exact(d, base + (64u << 20) - (1u << 19), src, len), 2 * k);
    assert_int_equal(read_exact(d, in1, src, len), 2 * k);

    /* Piece 1 registered now: the same read goes fixed. */
    assert_int_equal(disk_fixed_add(d, 1), 0);
    assert_int_equal(read_exact(d, in1, src, len), 3 * k);
    disk_get_stats(d, &st);
    assert_int_equal(st.fixed_bytes, 128ull << 20);
    free(src);
    disk_close(d);
    munmap(base, region);
}

/* disk_delete or disk_put of the id while its write flies wins: the write
 * reports -ECANCELED, records nothing and gives its extent back. */
static void async_write_cancelled_by_delete_or_put(void **state)
{
    fx_t *f = *state;
    disk_t *d = open_disk(f, 8 << 20, 0);
    assert_non_null(d);
    disk_stats_t st;
    disk_get_stats(d, &st);
    if (!st.async) skip();
    uint8_t *b = blob(2 << 20, 4);
    done_t t1 = { 0 }, t2 = { 0 };
    assert_int_equal(disk_write_async(d, 1, b, 2 << 20, XXH3_64bits(b, 2 << 20), NULL, 0,
                                      on_read_done, &t1), 0);
    assert_int_equal(disk_delete(d, 1), -ENOENT);   /* nothing recorded yet, but cancelled */
    assert_int_equal(disk_write_async(d, 2, b, 2 << 20, XXH3_64bits(b, 2 << 20), NULL, 0,
                                      on_read_done, &t2), 0);
    put_blob(d, 2, 4096, 8);                        /* a newer synchronous put of 2 */
    reap_all(d);
    assert_int_equal(t1.rc, -ECANCELED);
    assert_int_equal(t2.rc, -ECANCELED);
    assert_int_equal(disk_has(d, 1), 0);
    assert_int_equal(check_blob(d, 2, 4096, 8), 0); /* the put's bytes, not the write's */
    disk_get_stats(d, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.bytes_used, disk_padded(4096));
    /* The extents came back: 7 MiB still fit. */
    put_blob(d, 3, 7 << 20, 9);
    assert_int_equal(check_blob(d, 3, 7 << 20, 9), 0);
    disk_close(d);
    free(b);
}

/* A blob over 4 GiB goes to disk whole and comes back whole: an io_uring
 * request takes an unsigned length, and a 4 GiB + 8 KiB write cast to it
 * became an 8 KiB one and then a 0-byte one (EIO). Needs 9 GiB of free
 * disk under /var/tmp and 9 GiB of memory; skipped (passes, with a note)
 * where there is less, or when SIMCACHE_TEST_SKIP_HUGE is set (make
 * test-tsan). The buffers are anonymous mappings: only the pages written to
 * (a few) and what the kernel faults in for the I/O are used. */
static void put_of_more_than_4_gib_is_whole(void **state)
{
    (void)state;
    const uint64_t len = (4ull << 30) + 8192;
    char dir[64] = "/var/tmp/simcache-test-4g-XXXXXX";
    /* make test-tsan: ThreadSanitizer would shadow the 9 GiB, and the test
     * has no thread for it to check. */
    if (getenv("SIMCACHE_TEST_SKIP_HUGE")) {
        print_message("skipped: SIMCACHE_TEST_SKIP_HUGE is set\n");
        return;
    }
    struct statvfs vs;
    long pages = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    if (mkdtemp(dir) == NULL || statvfs(dir, &vs) != 0 ||
        (uint64_t)vs.f_bavail * vs.f_frsize < 9ull << 30 || pages < 0 ||
        (uint64_t)pages * (uint64_t)psz < 9ull << 30) {
        print_message("skipped: needs 9 GiB of free disk in /var/tmp and of free memory\n");
        rmdir(dir);
        return;
    }
    fx_t f = { 0 };
    snprintf(f.dir, sizeof f.dir, "%s", dir);
    disk_t *d = open_disk(&f, len + (1u << 20), 0);
    assert_non_null(d);
    uint8_t *b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                      -1, 0);
    assert_true(b != MAP_FAILED);
    const uint64_t marks[] = { 0, 4095, (4ull << 30) - 1, 4ull << 30, len - 1 };
    for (size_t i = 0; i < 5; i++)
        b[marks[i]] = (uint8_t)(0x5a + i);
    assert_int_equal(disk_put(d, 7, b, len, XXH3_64bits(b, len), "big", 3), 0);
    munmap(b, len);
    uint8_t *g = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                      -1, 0);
    assert_true(g != MAP_FAILED);
    uint64_t glen = 0;
    /* disk_get checks the blob's checksum over all of it. */
    assert_int_equal(disk_get(d, 7, g, &glen), 0);
    assert_int_equal(glen, len);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(g[marks[i]], (uint8_t)(0x5a + i));
    munmap(g, len);
    disk_close(d);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {}
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(put_get_round_trip, setup, teardown),
        cmocka_unit_test(put_of_more_than_4_gib_is_whole),
        cmocka_unit_test_setup_teardown(misaligned_buffer_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(restart_recovers_records_and_free_space, setup, teardown),
        cmocka_unit_test_setup_teardown(full_disk_evicts_lru, setup, teardown),
        cmocka_unit_test_setup_teardown(bit_flip_detected_and_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(verify_scans_every_blob, setup, teardown),
        cmocka_unit_test_setup_teardown(truncated_file_drops_entries_past_the_end, setup, teardown),
        cmocka_unit_test_setup_teardown(replace_keeps_one_record, setup, teardown),
        cmocka_unit_test_setup_teardown(map_grows_when_full, setup, teardown),
        cmocka_unit_test_setup_teardown(unwritable_dir_is_a_clear_error, setup, teardown),
        cmocka_unit_test_setup_teardown(second_open_of_a_directory_is_refused, setup, teardown),
        cmocka_unit_test(buffered_fallback_without_o_direct),
        cmocka_unit_test_setup_teardown(async_read_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(async_read_pins_its_extent, setup, teardown),
        cmocka_unit_test_setup_teardown(async_read_of_a_flipped_blob_is_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(close_drains_reads_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(async_write_round_trip_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(async_write_cancelled_by_delete_or_put, setup, teardown),
        cmocka_unit_test_setup_teardown(registered_buffers_keep_bytes_exact, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
