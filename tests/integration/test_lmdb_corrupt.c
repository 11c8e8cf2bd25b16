/* test_lmdb_corrupt.c - a damaged or foreign data.mdb never crashes the
 * start: 20 corruptions of the disk tier's LMDB (flipped bytes at seeded
 * positions, truncations, zeroed meta pages, a data.mdb from another data
 * directory, a garbage file). Each start either refuses (an exit code, not
 * a signal, and one log line naming data.mdb and --recover) or starts and
 * serves only exact bytes. Then `simcached --recover` on the same directory
 * starts, and serves byte-exact every entry whose record it kept (and
 * nothing with wrong bytes).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "simcache.h"

/* 1 KiB embeddings: records of about 1.1 KiB, a few to an LMDB page, so
 * the 60 entries spread over a tree of many leaf pages. */
#define DIM 256
#define MODEL "corrupt-model"
#define FP "fp1"
#define BLOB (16 * 1024)
#define NSEEDS 60
#define PAGE 4096

static char top[64];          /* /tmp/scit-mdb-XXXXXX */
static char pristine[128];    /* a data dir with seeds 1..NSEEDS */
static char other[128];       /* another one, seeds 1001..1000+NSEEDS */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    fflush(NULL);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int start(it_daemon_t *d, const char *data, int recover)
{
    const char *args[] = { "--data-dir", data, "--disk-capacity", "8m", "--durability", "sync",
                           "--host-capacity", "1m", recover ? "--recover" : NULL, NULL };
    return it_daemon_startv(d, args);
}

static uint64_t put_seed(simcache_t *h, uint64_t seed)
{
    float e[DIM];
    char meta[32];
    it_unit(seed, e, DIM);
    snprintf(meta, sizeof meta, "%llu", (unsigned long long)seed);
    return it_put(h, e, BLOB, seed, meta);
}

static uint64_t ids[NSEEDS + 1];   /* pristine's entry ids, by seed */
static int meta_changed;            /* lookups whose metadata was not the seed's */

/* The record (embedding, metadata) is not covered by the blob's checksum: a
 * flipped embedding moves or hides an entry, flipped metadata is counted.
 * The blob bytes are what must never be wrong. 1 = hit with exact bytes,
 * 0 = miss, -1 = an error, -2 = wrong bytes. */
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
    if (m.meta_len != strlen(want) || memcmp(m.meta, want, m.meta_len)) meta_changed++;
    int ok = m.size == BLOB && it_check(m.data, m.size, seed) == 0;
    if (!ok) fprintf(stderr, "seed %llu: wrong bytes served\n", (unsigned long long)seed);
    simcache_release(h, &m);
    return ok ? 1 : -2;
}

/* Same by id: 1 exact, 0 not found, -1 an error, -2 wrong bytes, -3
 * SIMCACHE_ECORRUPT (a record that names other bytes, caught by the
 * checksum when read). */
static int get_seed(simcache_t *h, uint64_t id, uint64_t seed)
{
    simcache_match_t m;
    int rc = simcache_get(h, id, &m);
    if (rc == SIMCACHE_ENOTFOUND) return 0;
    if (rc == SIMCACHE_ECORRUPT) return -3;
    if (rc) {
        fprintf(stderr, "get %llu: %s\n", (unsigned long long)id, simcache_strerror(rc));
        return -1;
    }
    int ok = m.size == BLOB && it_check(m.data, m.size, seed) == 0;
    if (!ok) fprintf(stderr, "id %llu: wrong bytes served\n", (unsigned long long)id);
    simcache_release(h, &m);
    return ok ? 1 : -2;
}

static void populate(const char *data, uint64_t first, uint64_t *out)
{
    it_daemon_t d;
    assert_int_equal(start(&d, data, 0), 0);
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    for (uint64_t s = first; s < first + NSEEDS; s++) {
        uint64_t id = put_seed(h, s);
        assert_true(id != 0);
        if (out) out[s - first + 1] = id;
    }
    simcache_close(h);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);
}

/* The line of the log holding needle, in line (or "" and 0). */
static int log_line(const char *log, const char *needle, char *line, size_t n)
{
    FILE *f = fopen(log, "r");
    line[0] = 0;
    if (!f) return 0;
    int found = 0;
    while (!found && fgets(line, (int)n, f)) found = strstr(line, needle) != NULL;
    fclose(f);
    if (!found) line[0] = 0;
    return found;
}

/* Serve check: how many of pristine's entries a get by id finds with
 * exact bytes; lookups of every seed find exact bytes or miss. Wrong bytes
 * or an error fail the test; so does SIMCACHE_ECORRUPT unless corrupt_ok
 * (a start on an unrecovered data.mdb: its records were never verified). */
static int served(const it_daemon_t *d, int corrupt_ok)
{
    simcache_t *h = it_connect(d->sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    int hits = 0;
    for (uint64_t s = 1; s <= NSEEDS; s++) {
        int r = get_seed(h, ids[s], s);
        if (r == -3 && corrupt_ok) r = 0;
        assert_true(r == 0 || r == 1);
        hits += r;
        r = lookup_seed(h, s);
        assert_true(r == 0 || r == 1);
    }
    simcache_close(h);
    return hits;
}

/* ---- the corruptions ---- */

static uint64_t rng;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void flip_at(int fd, off_t at)
{
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, at), 1);
    b ^= (uint8_t)(1u << (next_rand() % 8)) | (uint8_t)(next_rand() & 0xf0);
    if (!b) b = 0x5a;
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
}

/* Flip n bytes at seeded positions in [from, end of file). */
static void flips(const char *mdb, uint64_t seed, int n, off_t from)
{
    int fd = open(mdb, O_RDWR);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_true(st.st_size > from);
    rng = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int i = 0; i < n; i++) flip_at(fd, from + (off_t)(next_rand() % (uint64_t)(st.st_size - from)));
    close(fd);
}

static void zero_range(const char *mdb, off_t at, size_t n)
{
    int fd = open(mdb, O_RDWR);
    assert_true(fd >= 0);
    static const uint8_t zeros[PAGE * 2];
    assert_true(n <= sizeof zeros);
    assert_int_equal(pwrite(fd, zeros, n, at), (ssize_t)n);
    close(fd);
}

enum { REFUSE, EITHER };

/* Damage case i of the copy's data.mdb; what its start must do. */
static int corrupt(int i, const char *mdb)
{
    struct stat st;
    assert_int_equal(stat(mdb, &st), 0);
    switch (i) {
    case 0: case 1: case 2: case 3: case 4: case 5: case 6: case 7:
        flips(mdb, (uint64_t)i + 1, 1 << (i % 5), 0);   /* 1..16 bytes anywhere */
        return EITHER;
    case 8: case 9: case 10: case 11: case 12:
        flips(mdb, (uint64_t)i + 100, 8 + 8 * (i - 8), 2 * PAGE);   /* in the tree's pages */
        return EITHER;
    case 13:
        assert_int_equal(truncate(mdb, (st.st_size / 2) & ~(off_t)(PAGE - 1)), 0);
        return REFUSE;
    case 14:
        assert_int_equal(truncate(mdb, PAGE + 100), 0);
        return REFUSE;
    case 15:
        assert_int_equal(truncate(mdb, st.st_size - 100), 0);   /* last page torn */
        return EITHER;
    case 16:
        zero_range(mdb, 0, 2 * PAGE);   /* both meta pages */
        return REFUSE;
    case 17:
        zero_range(mdb, 0, PAGE);       /* one meta page: LMDB may use the other */
        return EITHER;
    case 18: {                          /* mismatched: another data dir's data.mdb */
        assert_int_equal(sh("cp '%s/disk.lmdb/data.mdb' '%s'", other, mdb), 0);
        return REFUSE;
    }
    default: {                          /* not LMDB at all */
        int fd = open(mdb, O_WRONLY | O_TRUNC);
        assert_true(fd >= 0);
        rng = 4242;
        for (int k = 0; k < 16 * PAGE / 8; k++) {
            uint64_t v = next_rand();
            assert_int_equal(write(fd, &v, sizeof v), (ssize_t)sizeof v);
        }
        close(fd);
        return REFUSE;
    }
    }
}

static void twenty_corruptions_refuse_or_start_and_recover_keeps_what_verifies(void **state)
{
    (void)state;
    int refused = 0, started = 0;
    uint64_t kept_total = 0, dropped_total = 0;
    for (int i = 0; i < 20; i++) {
        char data[160], mdb[200], line[1024];
        snprintf(data, sizeof data, "%s/case%02d", top, i);
        snprintf(mdb, sizeof mdb, "%s/disk.lmdb/data.mdb", data);
        assert_int_equal(sh("cp -a '%s' '%s'", pristine, data), 0);
        int want = corrupt(i, mdb);

        it_daemon_t d;
        int rc = start(&d, data, 0);
        const char *what;
        if (rc == 0) {
            assert_int_equal(want, EITHER);
            started++;
            served(&d, 1);
            assert_int_equal(it_daemon_stop(&d), 0);
            what = "started";
        } else {
            /* Refused: an exit code, never a signal, and one line that
             * names data.mdb and the way out. */
            assert_true(WIFEXITED(d.status));
            assert_true(WEXITSTATUS(d.status) != 0);
            assert_true(log_line(d.log, "data.mdb", line, sizeof line));
            assert_non_null(strstr(line, "--recover"));
            assert_non_null(strstr(line, "error"));
            if (i == 18) assert_non_null(strstr(line, "does not match"));
            refused++;
            what = "refused";
        }
        it_daemon_cleanup(&d);

        /* --recover starts, and serves exactly what it kept. */
        assert_int_equal(start(&d, data, 1), 0);
        unsigned long long kept = 0, total = 0, dropped = 0;
        if (log_line(d.log, "--recover: ", line, sizeof line)) {
            const char *p = strstr(line, "--recover: ");
            if (sscanf(p, "--recover: %llu of %llu disk records kept, %llu dropped", &kept, &total,
                       &dropped) != 3)
                kept = total = dropped = 0;
        }
        uint64_t entries = it_admin_u64(&d, "info", "disk_entries");
        int hits = served(&d, 0);
        fprintf(stderr, "case %2d: %s; --recover kept %llu of %llu records (%llu dropped), "
                "restored %llu, %d of %d served byte-exact by id\n", i, what, kept, total, dropped,
                (unsigned long long)entries, hits, NSEEDS);
        assert_int_equal(it_admin_u64(&d, "info", "disk_checksum_failures"), 0);
        /* A byte flipped inside a record (its id, namespace or embedding:
         * not under the blob's checksum) can move an entry where a get of
         * the old id does not find it; anything else must all be found. */
        assert_true((uint64_t)hits <= entries);
        if (i == 18) assert_int_equal(hits, 0);
        else if (want == REFUSE) assert_int_equal((uint64_t)hits, entries);
        if (total) assert_int_equal(entries, kept);
        kept_total += kept;
        dropped_total += dropped;
        assert_int_equal(it_daemon_stop(&d), 0);
        it_daemon_cleanup(&d);
        /* ...and a plain start after it is clean too. */
        assert_int_equal(start(&d, data, 0), 0);
        assert_int_equal(it_daemon_stop(&d), 0);
        it_daemon_cleanup(&d);
    }
    fprintf(stderr, "20 corruptions: %d refused, %d started; --recover kept %llu records, "
            "dropped %llu; %d lookups served changed metadata\n", refused, started,
            (unsigned long long)kept_total, (unsigned long long)dropped_total, meta_changed);
    assert_int_equal(refused + started, 20);
}

/* A sound data.mdb: --recover keeps every record, and moves the old file aside. */
static void recover_of_a_sound_lmdb_keeps_everything(void **state)
{
    (void)state;
    char data[160];
    snprintf(data, sizeof data, "%s/sound", top);
    assert_int_equal(sh("cp -a '%s' '%s'", pristine, data), 0);
    it_daemon_t d;
    assert_int_equal(start(&d, data, 1), 0);
    char line[1024];
    assert_true(log_line(d.log, "--recover: 60 of 60 disk records kept, 0 dropped", line,
                         sizeof line));
    assert_int_equal(served(&d, 0), NSEEDS);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);
    assert_int_equal(sh("ls '%s'/disk.lmdb/data.mdb.corrupt-* >/dev/null", data), 0);
}

/* --recover on a directory a running daemon holds is refused. */
static void recover_under_a_running_daemon_is_refused(void **state)
{
    (void)state;
    char data[160], log[200];
    snprintf(data, sizeof data, "%s/busy", top);
    snprintf(log, sizeof log, "%s/busy.log", top);
    assert_int_equal(sh("cp -a '%s' '%s'", pristine, data), 0);
    it_daemon_t d;
    assert_int_equal(start(&d, data, 0), 0);
    char sock[200], adm[200];
    snprintf(sock, sizeof sock, "%s/busy.sock", top);
    snprintf(adm, sizeof adm, "%s/busy-admin.sock", top);
    const char *args[] = { "--socket", sock, "--admin-socket", adm, "--data-dir", data,
                           "--disk-capacity", "8m", "--recover", NULL };
    pid_t pid = it_spawn(log, args);
    assert_true(pid > 0);
    assert_int_equal(it_wait_pid(pid, IT_TIMEOUT_MS), 1);
    char line[1024];
    assert_true(log_line(log, "in use by another process", line, sizeof line));
    assert_int_equal(served(&d, 0), NSEEDS);
    assert_int_equal(it_daemon_stop(&d), 0);
    it_daemon_cleanup(&d);
}

int main(int argc, char **argv)
{
    it_init(argc, argv);
    snprintf(top, sizeof top, "/tmp/scit-mdb-XXXXXX");
    if (!mkdtemp(top)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(pristine, sizeof pristine, "%s/pristine", top);
    snprintf(other, sizeof other, "%s/other", top);
    populate(pristine, 1, ids);
    populate(other, 1001, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(twenty_corruptions_refuse_or_start_and_recover_keeps_what_verifies),
        cmocka_unit_test(recover_of_a_sound_lmdb_keeps_everything),
        cmocka_unit_test(recover_under_a_running_daemon_is_refused),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (!getenv("IT_KEEP")) sh("rm -rf '%s'", top);
    return failed;
}
