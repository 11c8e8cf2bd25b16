/* test_diskfull.c - the disk tier's faults on real, small filesystems: a
 * blob file larger than the free space, a filesystem filled under a running
 * daemon (durability sync and async), a data directory that cannot be
 * created or written (as uid nobody, and on a read-only mount), a filesystem
 * without O_DIRECT, and a blob file truncated while the daemon was stopped.
 *
 * The filesystems are real mounts: a loop-mounted ext4 image (tmpfs where
 * mkfs.ext4 or loop devices are missing) and ramfs (no O_DIRECT). The test
 * runs in a mount namespace of its own, so a mount it fails to remove (a
 * crash, a timeout) dies with it; it also unmounts each one itself. Without
 * the right to mount (not root, no CAP_SYS_ADMIN) it runs the cases that
 * need no mount and exits 77 (skip), saying why.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "simcache.h"

/* A 4 KiB embedding makes each LMDB record larger than a page (overflow
 * pages), so every put needs fresh LMDB pages: on a full filesystem the
 * first put that cannot reuse freed pages fails. */
#define DIM 1024
#define MODEL "diskfull-model"
#define FP "fp1"
#define BLOB (64 * 1024)
#define NOBODY 65534

static char top[64];          /* /tmp/scit-df-XXXXXX: images, mount points, logs */
static char mnts[8][128];     /* mounted now, for cleanup */
static int n_mnts;
static int can_mount;
static char no_mount_why[256];
static pid_t live_pid;        /* a daemon to kill if the test is killed */

/* ---- small helpers ---- */

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

static int file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[2048];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

static uint64_t free_bytes(const char *dir)
{
    struct statvfs sv;
    if (statvfs(dir, &sv)) return 0;
    return (uint64_t)sv.f_bavail * sv.f_frsize;
}

static int64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) ? -1 : (int64_t)st.st_size;
}

/* ---- mounts ---- */

static void umount_all(void)
{
    while (n_mnts > 0) {
        n_mnts--;
        if (umount2(mnts[n_mnts], 0) && umount2(mnts[n_mnts], MNT_DETACH))
            fprintf(stderr, "umount %s: %s\n", mnts[n_mnts], strerror(errno));
    }
}

static void umount_one(const char *dir)
{
    for (int i = 0; i < n_mnts; i++) {
        if (strcmp(mnts[i], dir)) continue;
        if (umount2(dir, 0) && umount2(dir, MNT_DETACH))
            fprintf(stderr, "umount %s: %s\n", dir, strerror(errno));
        memmove(mnts[i], mnts[i + 1], sizeof mnts[0] * (size_t)(n_mnts - i - 1));
        n_mnts--;
        return;
    }
}

static void remember_mount(const char *dir)
{
    if (n_mnts < (int)(sizeof mnts / sizeof mnts[0]))
        snprintf(mnts[n_mnts++], sizeof mnts[0], "%s", dir);
}

static void on_fatal_signal(int sig)
{
    if (live_pid > 0) kill(live_pid, SIGKILL);
    for (int i = n_mnts - 1; i >= 0; i--) umount2(mnts[i], MNT_DETACH);
    _exit(128 + sig);
}

static void cleanup_at_exit(void)
{
    if (live_pid > 0) kill(live_pid, SIGKILL);
    umount_all();
    if (top[0] && !getenv("IT_KEEP")) sh("rm -rf '%s'", top);
}

/* Mount a tmpfs of mib MiB at top/name (out gets the mount point): it
 * allocates page by page, so a write can run out halfway. The filesystem's
 * name, or NULL. */
static const char *mount_tmpfs(const char *name, unsigned mib, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", top, name);
    if (mkdir(out, 0755) && errno != EEXIST) return NULL;
    char opt[32];
    snprintf(opt, sizeof opt, "size=%um,mode=0755", mib);
    if (mount("tmpfs", out, "tmpfs", 0, opt)) return NULL;
    remember_mount(out);
    return "tmpfs";
}

/* Mount a small filesystem of mib MiB at top/name; out gets the mount
 * point. ext4 on a loop device (takes O_DIRECT) where it works, else tmpfs.
 * Returns the filesystem's name, or NULL. */
static const char *mount_small(const char *name, unsigned mib, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", top, name);
    if (mkdir(out, 0755) && errno != EEXIST) return NULL;
    char img[160];
    snprintf(img, sizeof img, "%s/%s.img", top, name);
    if (sh("truncate -s %um '%s' && mkfs.ext4 -q -F -m 0 '%s' >/dev/null 2>&1 && "
           "mount -o loop '%s' '%s' 2>/dev/null",
           mib, img, img, img, out) == 0) {
        remember_mount(out);
        unlink(img);   /* the loop device holds it; gone at umount */
        return "ext4";
    }
    unlink(img);
    return mount_tmpfs(name, mib, out, n);
}

/* Without mount rights (or outside a namespace of our own) the mount cases
 * skip: a mount left in the host's namespace would outlive a crash. */
static void probe_mounts(void)
{
    char probe[128];
    snprintf(probe, sizeof probe, "%s/probe", top);
    if (geteuid() != 0) {
        snprintf(no_mount_why, sizeof no_mount_why, "not root (euid %u): cannot mount",
                 (unsigned)geteuid());
    } else if (unshare(CLONE_NEWNS)) {
        snprintf(no_mount_why, sizeof no_mount_why, "unshare(CLONE_NEWNS): %s", strerror(errno));
    } else if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL)) {
        snprintf(no_mount_why, sizeof no_mount_why, "making / private: %s", strerror(errno));
    } else if (mkdir(probe, 0755) || mount("tmpfs", probe, "tmpfs", 0, "size=1m")) {
        snprintf(no_mount_why, sizeof no_mount_why, "mount -t tmpfs: %s", strerror(errno));
    } else {
        umount2(probe, 0);
        can_mount = 1;
    }
    rmdir(probe);
}

#define NEED_MOUNT()                                                   \
    do {                                                               \
        if (!can_mount) {                                              \
            fprintf(stderr, "skipped: %s\n", no_mount_why);            \
            skip();                                                    \
        }                                                              \
    } while (0)

/* ---- the daemon ---- */

static int start(it_daemon_t *d, const char *data, const char *disk, const char *durability,
                 const char *host)
{
    /* Later flags win over the harness's own --data-dir. */
    const char *args[] = { "--data-dir", data, "--disk-capacity", disk, "--durability",
                           durability, "--host-capacity", host, NULL };
    int rc = it_daemon_startv(d, args);
    live_pid = d->pid;
    return rc;
}

static void stop_ok(it_daemon_t *d)
{
    assert_int_equal(it_daemon_stop(d), 0);
    live_pid = 0;
    it_daemon_cleanup(d);
}

/* Run simcached with these args (as uid, when uid is not 0) and wait for it
 * to exit: it is expected to refuse to start. Returns the exit code. */
static int run_refused(const char *log, uid_t uid, const char *const *args)
{
    size_t n = 0;
    while (args[n]) n++;
    const char *argv[32] = { it_simcached };
    for (size_t i = 0; i < n && i < 30; i++) argv[i + 1] = args[i];
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (uid && (setgroups(0, NULL) || setgid(uid) || setuid(uid))) {
            fprintf(stderr, "cannot become uid %u: %s\n", (unsigned)uid, strerror(errno));
            _exit(126);
        }
        execv(it_simcached, (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", it_simcached, strerror(errno));
        _exit(127);
    }
    live_pid = pid;
    int rc = it_wait_pid(pid, IT_TIMEOUT_MS);
    if (rc == -1) {
        kill(pid, SIGKILL);
        it_wait_pid(pid, IT_TIMEOUT_MS);
    }
    live_pid = 0;
    return rc;
}

static void dump(const char *log)
{
    FILE *f = fopen(log, "r");
    if (!f) return;
    char line[1024];
    fprintf(stderr, "---- %s ----\n", log);
    while (fgets(line, sizeof line, f)) fputs(line, stderr);
    fprintf(stderr, "---- end ----\n");
    fclose(f);
}

/* ---- entries ---- */

static int put_seed_rc(simcache_t *h, uint64_t seed, uint64_t *id)
{
    float e[DIM];
    char meta[32];
    it_unit(seed, e, DIM);
    snprintf(meta, sizeof meta, "%llu", (unsigned long long)seed);
    uint8_t *kv = malloc(BLOB);
    assert_non_null(kv);
    it_fill(kv, BLOB, seed);
    simcache_layout_t l = it_layout(BLOB);
    simcache_put_opts_t po = { meta, (uint32_t)strlen(meta), 0 };
    *id = 0;
    int rc = simcache_put_ex(h, e, &l, kv, BLOB, SIMCACHE_HOST_MEMORY, &po, id);
    free(kv);
    return rc;
}

static uint64_t put_seed(simcache_t *h, uint64_t seed)
{
    uint64_t id;
    int rc = put_seed_rc(h, seed, &id);
    if (rc) fprintf(stderr, "put seed %llu: %s: %s\n", (unsigned long long)seed,
                    simcache_strerror(rc), simcache_last_error(h));
    return rc ? 0 : id;
}

static int match_ok(const simcache_match_t *m, uint64_t seed)
{
    char want[32];
    snprintf(want, sizeof want, "%llu", (unsigned long long)seed);
    int ok = m->size == BLOB && m->meta_len == strlen(want) &&
             memcmp(m->meta, want, m->meta_len) == 0 && it_check(m->data, m->size, seed) == 0;
    if (!ok) fprintf(stderr, "seed %llu: wrong bytes or metadata served\n", (unsigned long long)seed);
    return ok;
}

/* 1 = hit with exact bytes, 0 = miss, -1 = an error, -2 = wrong bytes. */
static int lookup_seed(simcache_t *h, uint64_t seed)
{
    float e[DIM];
    it_unit(seed, e, DIM);
    simcache_match_t m;
    int rc = simcache_lookup(h, e, 0.999f, &m);
    if (rc == SIMCACHE_MISS) return 0;
    if (rc) {
        fprintf(stderr, "lookup seed %llu: %s: %s\n", (unsigned long long)seed,
                simcache_strerror(rc), simcache_last_error(h));
        return -1;
    }
    int ok = match_ok(&m, seed);
    simcache_release(h, &m);
    return ok ? 1 : -2;
}

/* Same by id (simcache_get): 1, 0 (not found), -1, -2. */
static int get_seed(simcache_t *h, uint64_t id, uint64_t seed)
{
    simcache_match_t m;
    int rc = simcache_get(h, id, &m);
    if (rc == SIMCACHE_ENOTFOUND) return 0;
    if (rc) return -1;
    int ok = match_ok(&m, seed);
    simcache_release(h, &m);
    return ok ? 1 : -2;
}

/* A put on a connection whose last put the daemon refused behaves like any
 * put (a refused commit leaves the put open; the library aborts it, and the
 * staging buffer's fate comes with that reply). */
static int put_after_refusal(simcache_t **h, const char *sock, uint64_t seed, uint64_t *id)
{
    (void)sock;
    return put_seed_rc(*h, seed, id);
}

/* Write zeros to dir/filler until the filesystem says ENOSPC. */
static void fill_fs(const char *dir, char *filler, size_t n)
{
    snprintf(filler, n, "%s/filler", dir);
    int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    static char zeros[1 << 20];
    size_t chunk = sizeof zeros;
    while (chunk >= 4096) {
        ssize_t w = write(fd, zeros, chunk);
        if (w < 0 && errno == ENOSPC) chunk /= 2;
        else assert_true(w > 0);
    }
    fsync(fd);
    close(fd);
    sync();
    assert_true(free_bytes(dir) < 64 * 1024);
}

static void unfill_fs(const char *filler)
{
    assert_int_equal(unlink(filler), 0);
    sync();
}

/* Another client process: every seed in [first, last] is found byte-exact. */
typedef struct {
    const char *sock;
    uint64_t first, last;
} reader_arg_t;

static int reader_child(void *p)
{
    reader_arg_t *a = p;
    simcache_t *h = it_connect(a->sock, MODEL, FP, NULL, DIM);
    if (!h) return 2;
    int fails = 0;
    IT_CHECK(fails, simcache_ping(h) == 0);
    for (uint64_t s = a->first; s <= a->last; s++) IT_CHECK(fails, lookup_seed(h, s) == 1);
    simcache_close(h);
    return fails ? 1 : 0;
}

/* ---- the cases ---- */

/* disk_capacity above the free space: the start is refused, naming the size
 * and ENOSPC, and the refused start leaves the free space as it was. */
static void capacity_above_free_space_is_refused(void **state)
{
    (void)state;
    NEED_MOUNT();
    char mnt[128], data[160], log[160], sock[160], adm[160], blobs[200];
    const char *fs = mount_small("cap", 64, mnt, sizeof mnt);
    assert_non_null(fs);
    snprintf(data, sizeof data, "%s/data", mnt);
    snprintf(log, sizeof log, "%s/cap.log", top);
    snprintf(sock, sizeof sock, "%s/cap.sock", top);
    snprintf(adm, sizeof adm, "%s/cap-admin.sock", top);
    snprintf(blobs, sizeof blobs, "%s/blobs.dat", data);
    uint64_t before = free_bytes(mnt);
    assert_true(before > 32u << 20 && before < 128u << 20);

    const char *args[] = { "--socket", sock, "--admin-socket", adm, "--data-dir", data,
                           "--disk-capacity", "128m", NULL };
    int rc = run_refused(log, 0, args);
    if (rc != 1) dump(log);
    assert_int_equal(rc, 1);
    assert_true(file_has(log, "blob file: cannot allocate 134217728 bytes: No space left on device"));
    assert_true(file_has(log, "disk tier in "));
    assert_false(file_has(log, "ready"));

    /* What the refused start left behind: index.seed and LMDB's few pages
     * are fine; a blob file eating the free space is not. */
    uint64_t after = free_bytes(mnt);
    int64_t left = file_size(blobs);
    fprintf(stderr, "%s: free %llu before, %llu after the refused start; blobs.dat %lld bytes\n",
            fs, (unsigned long long)before, (unsigned long long)after, (long long)left);
    /* The refused start gave the space back (blobs.dat truncated again). */
    assert_true(after + (1u << 20) >= before);
    assert_true(left <= 0 || left < (1 << 20));

    /* A capacity that fits starts, with that capacity, on the same directory. */
    it_daemon_t d;
    assert_int_equal(start(&d, data, "16m", "sync", "1m"), 0);
    assert_int_equal(it_admin_u64(&d, "info", "disk_capacity"), 16u << 20);
    assert_int_equal(file_size(blobs), 16 << 20);
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    assert_true(put_seed(h, 1) != 0);
    assert_int_equal(lookup_seed(h, 1), 1);
    simcache_close(h);
    stop_ok(&d);
    umount_one(mnt);
}

/* durability sync on a filesystem that fills up under the daemon: puts fail
 * with SIMCACHE_ENOSPC and a message, nothing half-made is served, earlier
 * entries stay byte-exact for every client; freeing space heals it. */
static void filled_fs_fails_sync_puts_and_keeps_serving(void **state)
{
    (void)state;
    NEED_MOUNT();
    char mnt[128], data[160], filler[160];
    const char *fs = mount_small("sync", 64, mnt, sizeof mnt);
    assert_non_null(fs);
    snprintf(data, sizeof data, "%s/data", mnt);
    it_daemon_t d;
    assert_int_equal(start(&d, data, "16m", "sync", "1m"), 0);
    if (!strcmp(fs, "ext4")) assert_int_equal(it_admin_u64(&d, "info", "disk_direct_io"), 1);
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    /* 24 x 64 KiB through a 1 MiB host tier: every one on disk, 8+ on disk only. */
    uint64_t ids[25] = { 0 };
    for (uint64_t s = 1; s <= 24; s++) assert_true((ids[s] = put_seed(h, s)) != 0);
    assert_true(it_admin_u64(&d, "info", "disk_only_entries") >= 8);
    assert_int_equal(it_admin_u64(&d, "info", "disk_write_failures"), 0);

    fill_fs(mnt, filler, sizeof filler);
    int nfail = 0, nok = 0;
    uint64_t failed[64], acked[64];
    for (uint64_t s = 100; s < 164 && nfail < 4; s++) {
        uint64_t id;
        int rc = put_after_refusal(&h, d.sock, s, &id);
        if (rc == 0) {
            acked[nok++] = s;
            continue;
        }
        const char *msg = simcache_last_error(h);
        fprintf(stderr, "put on a full %s: %s: %s\n", fs, simcache_strerror(rc), msg);
        assert_int_equal(rc, SIMCACHE_ENOSPC);
        assert_non_null(strstr(msg, "put not made durable: disk tier full"));
        failed[nfail++] = s;
    }
    fprintf(stderr, "full %s: %d puts acknowledged, %d refused\n", fs, nok, nfail);
    assert_true(nfail > 0);
    assert_int_equal(it_admin_u64(&d, "info", "disk_write_failures"), (uint64_t)nfail);
    assert_true(file_has(d.log, "disk tier: cannot write entry"));
    assert_true(file_has(d.log, "No space left on device"));

    /* The daemon keeps serving: nothing refused is findable, everything
     * acknowledged is byte-exact (promotions read from the full disk),
     * by lookup and by id, for this client and another process. */
    assert_int_equal(simcache_ping(h), 0);
    for (int i = 0; i < nfail; i++) assert_int_equal(lookup_seed(h, failed[i]), 0);
    for (uint64_t s = 1; s <= 24; s++) assert_int_equal(lookup_seed(h, s), 1);
    for (uint64_t s = 1; s <= 24; s += 5) assert_int_equal(get_seed(h, ids[s], s), 1);
    for (int i = 0; i < nok; i++) assert_int_equal(lookup_seed(h, acked[i]), 1);
    reader_arg_t ra = { d.sock, 1, 24 };
    assert_int_equal(it_wait_pid(it_fork(reader_child, &ra), IT_TIMEOUT_MS), 0);
    assert_int_equal(it_admin_u64(&d, "info", "disk_checksum_failures"), 0);

    /* Space again: puts reach the disk again. */
    unfill_fs(filler);
    for (uint64_t s = 200; s < 204; s++) {
        uint64_t id;
        assert_int_equal(put_after_refusal(&h, d.sock, s, &id), 0);
    }
    for (uint64_t s = 200; s < 204; s++) assert_int_equal(lookup_seed(h, s), 1);
    assert_int_equal(it_admin_u64(&d, "info", "disk_write_failures"), (uint64_t)nfail);
    simcache_close(h);
    stop_ok(&d);

    /* A restart serves exactly what was acknowledged. */
    assert_int_equal(start(&d, data, "16m", "sync", "1m"), 0);
    assert_int_equal(it_admin_u64(&d, "info", "disk_entries"), 24u + (uint64_t)nok + 4u);
    h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    for (uint64_t s = 1; s <= 24; s++) assert_int_equal(lookup_seed(h, s), 1);
    for (int i = 0; i < nfail; i++) assert_int_equal(lookup_seed(h, failed[i]), 0);
    for (uint64_t s = 200; s < 204; s++) assert_int_equal(lookup_seed(h, s), 1);
    simcache_close(h);
    stop_ok(&d);
    umount_one(mnt);
}

/* durability async on a filesystem that fills up: puts are acknowledged in
 * the host tier, demotions that cannot be written are counted and their
 * entries dropped (a miss, never wrong bytes); freeing space heals it. */
static void filled_fs_counts_failed_demotions_and_keeps_serving(void **state)
{
    (void)state;
    NEED_MOUNT();
    char mnt[128], data[160], filler[160];
    const char *fs = mount_small("async", 64, mnt, sizeof mnt);
    assert_non_null(fs);
    snprintf(data, sizeof data, "%s/data", mnt);
    it_daemon_t d;
    assert_int_equal(start(&d, data, "16m", "async", "1m"), 0);
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    for (uint64_t s = 1; s <= 24; s++) assert_true(put_seed(h, s) != 0);
    uint64_t on_disk = it_admin_u64(&d, "info", "disk_only_entries");
    assert_true(on_disk >= 8);   /* seeds 1..on_disk, demoted in put order */

    fill_fs(mnt, filler, sizeof filler);
    for (uint64_t s = 100; s < 164; s++) assert_true(put_seed(h, s) != 0);
    uint64_t wf = it_admin_u64(&d, "info", "disk_write_failures");
    fprintf(stderr, "full %s: 64 async puts acknowledged, %llu demotions failed\n", fs,
            (unsigned long long)wf);
    assert_true(wf > 0);
    assert_true(file_has(d.log, "disk tier: cannot write entry"));
    assert_true(file_has(d.log, "No space left on device"));
    assert_int_equal(simcache_ping(h), 0);
    /* Newest first (still in the host tier), then what reached the disk
     * before it filled; everything else may be a miss, never wrong bytes. */
    for (uint64_t s = 163; s >= 156; s--) assert_int_equal(lookup_seed(h, s), 1);
    for (uint64_t s = 1; s <= on_disk; s++) assert_int_equal(lookup_seed(h, s), 1);
    int hits = 0;
    for (uint64_t s = 100; s < 156; s++) {
        int r = lookup_seed(h, s);
        assert_true(r == 0 || r == 1);
        hits += r;
    }
    fprintf(stderr, "full %s: %d of 56 older async puts still found\n", fs, hits);
    assert_int_equal(it_admin_u64(&d, "info", "disk_checksum_failures"), 0);
    reader_arg_t ra = { d.sock, 1, on_disk };
    assert_int_equal(it_wait_pid(it_fork(reader_child, &ra), IT_TIMEOUT_MS), 0);

    /* Space again: demotions are written again. */
    unfill_fs(filler);
    wf = it_admin_u64(&d, "info", "disk_write_failures");
    uint64_t demoted = it_admin_u64(&d, "info", "disk_demotions");
    for (uint64_t s = 300; s < 340; s++) assert_true(put_seed(h, s) != 0);
    assert_int_equal(it_admin_u64(&d, "info", "disk_write_failures"), wf);
    assert_true(it_admin_u64(&d, "info", "disk_demotions") >= demoted + 24);
    for (uint64_t s = 300; s < 340; s++) assert_int_equal(lookup_seed(h, s), 1);
    simcache_close(h);
    stop_ok(&d);
    umount_one(mnt);
}

/* A missing data_dir, parents included, is created (0700) and used. */
static void missing_data_dir_is_created(void **state)
{
    (void)state;
    char data[160], path[200];
    snprintf(data, sizeof data, "%s/missing/a/b/data", top);
    it_daemon_t d;
    assert_int_equal(start(&d, data, "8m", "sync", "1m"), 0);
    struct stat st;
    assert_int_equal(stat(data, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof path, "%s/blobs.dat", data);
    assert_int_equal(file_size(path), 8 << 20);
    assert_int_equal(it_admin_u64(&d, "info", "disk_tier"), 1);
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    assert_true(put_seed(h, 5) != 0);
    assert_int_equal(lookup_seed(h, 5), 1);
    simcache_close(h);
    stop_ok(&d);
}

/* As uid nobody (root would bypass the modes): a data_dir that cannot be
 * created, and one that exists but is not writable, refuse the start. */
static void unwritable_data_dir_is_refused_as_nobody(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        fprintf(stderr, "skipped: not root, cannot switch to uid nobody\n");
        skip();
    }
    char parent[128], data[160], log[160], sock[160], adm[160], seed[200];
    /* top is 0700 (mkdtemp): nobody must be able to reach what is inside. */
    assert_int_equal(chmod(top, 0755), 0);
    snprintf(parent, sizeof parent, "%s/rootonly", top);
    assert_int_equal(mkdir(parent, 0755), 0);
    snprintf(sock, sizeof sock, "%s/nb.sock", top);
    snprintf(adm, sizeof adm, "%s/nb-admin.sock", top);
    snprintf(log, sizeof log, "%s/nobody.log", top);

    /* Cannot be created: the parent belongs to root, 0755. */
    snprintf(data, sizeof data, "%s/data", parent);
    const char *args[] = { "--socket", sock, "--admin-socket", adm, "--data-dir", data,
                           "--disk-capacity", "8m", NULL };
    int rc = run_refused(log, NOBODY, args);
    if (rc != 1) dump(log);
    assert_int_equal(rc, 1);
    char want[512];
    snprintf(want, sizeof want, "data_dir %s: Permission denied", data);
    assert_true(file_has(log, want));
    assert_false(file_has(log, "ready"));
    assert_int_equal(access(data, F_OK), -1);

    /* Exists, seed readable, but not writable: the disk tier says so. */
    assert_int_equal(mkdir(data, 0755), 0);
    snprintf(seed, sizeof seed, "%s/index.seed", data);
    assert_int_equal(sh("head -c 8 /dev/urandom > '%s' && chmod 0644 '%s'", seed, seed), 0);
    rc = run_refused(log, NOBODY, args);
    if (rc != 1) dump(log);
    assert_int_equal(rc, 1);
    snprintf(want, sizeof want, "disk tier in %s: %s/disk.lmdb: Permission denied", data, data);
    assert_true(file_has(log, want));
    assert_false(file_has(log, "ready"));
    char blobs[200];
    snprintf(blobs, sizeof blobs, "%s/blobs.dat", data);
    assert_int_equal(access(blobs, F_OK), -1);
}

/* A data_dir whose filesystem went read-only between two runs (root too):
 * the start is refused and says so; nothing is served from it. */
static void read_only_filesystem_is_refused(void **state)
{
    (void)state;
    NEED_MOUNT();
    char mnt[128], data[160], log[160], sock[160], adm[160];
    const char *fs = mount_small("ro", 32, mnt, sizeof mnt);
    assert_non_null(fs);
    snprintf(data, sizeof data, "%s/data", mnt);
    it_daemon_t d;
    assert_int_equal(start(&d, data, "8m", "sync", "1m"), 0);
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    assert_true(put_seed(h, 9) != 0);
    simcache_close(h);
    stop_ok(&d);

    assert_int_equal(mount(NULL, mnt, NULL, MS_REMOUNT | MS_RDONLY, NULL), 0);
    snprintf(log, sizeof log, "%s/ro.log", top);
    snprintf(sock, sizeof sock, "%s/ro.sock", top);
    snprintf(adm, sizeof adm, "%s/ro-admin.sock", top);
    const char *args[] = { "--socket", sock, "--admin-socket", adm, "--data-dir", data,
                           "--disk-capacity", "8m", NULL };
    int rc = run_refused(log, 0, args);
    if (rc != 1) dump(log);
    assert_int_equal(rc, 1);
    char want[512];
    snprintf(want, sizeof want, "disk tier in %s: %s/disk.lmdb: not writable: Read-only file system",
             data, data);
    assert_true(file_has(log, want));
    assert_false(file_has(log, "ready"));
    umount_one(mnt);
}

/* ramfs refuses O_DIRECT: buffered I/O, said at start and in info; bytes
 * stay exact through demotion, promotion and a restart. */
static void no_o_direct_falls_back_and_says_so(void **state)
{
    (void)state;
    NEED_MOUNT();
    char mnt[128], data[160];
    snprintf(mnt, sizeof mnt, "%s/ramfs", top);
    assert_int_equal(mkdir(mnt, 0755), 0);
    assert_int_equal(mount("ramfs", mnt, "ramfs", 0, "mode=0755"), 0);
    remember_mount(mnt);
    snprintf(data, sizeof data, "%s/data", mnt);
    it_daemon_t d;
    assert_int_equal(start(&d, data, "8m", "async", "1m"), 0);
    assert_int_equal(it_admin_u64(&d, "info", "disk_direct_io"), 0);
    assert_true(file_has(d.log, "blobs.dat does not take O_DIRECT; using buffered I/O"));
    assert_true(file_has(d.log, ", buffered I/O"));
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    for (uint64_t s = 1; s <= 24; s++) assert_true(put_seed(h, s) != 0);
    assert_true(it_admin_u64(&d, "info", "disk_demotions") >= 8);
    for (uint64_t s = 1; s <= 24; s++) assert_int_equal(lookup_seed(h, s), 1);
    simcache_close(h);
    stop_ok(&d);

    assert_int_equal(start(&d, data, "8m", "async", "1m"), 0);
    assert_int_equal(it_admin_u64(&d, "info", "disk_only_entries"), 24);
    h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    for (uint64_t s = 1; s <= 24; s++) assert_int_equal(lookup_seed(h, s), 1);
    assert_int_equal(it_admin_u64(&d, "info", "disk_checksum_failures"), 0);
    simcache_close(h);
    stop_ok(&d);
    umount_one(mnt);
}

/* blobs.dat cut short while stopped: the records past its end are dropped
 * at open and counted, never served; the file is extended back to
 * disk_capacity and takes new blobs. */
static void truncated_blob_file_drops_entries_at_open(void **state)
{
    (void)state;
    char data[160], blobs[200];
    snprintf(data, sizeof data, "%s/trunc-data", top);
    snprintf(blobs, sizeof blobs, "%s/blobs.dat", data);
    it_daemon_t d;
    assert_int_equal(start(&d, data, "8m", "sync", "4m"), 0);
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    /* An empty blob file hands out extents in order: seed s at (s-1)*64 KiB. */
    for (uint64_t s = 1; s <= 6; s++) assert_true(put_seed(h, s) != 0);
    simcache_close(h);
    stop_ok(&d);
    assert_int_equal(truncate(blobs, 2 * BLOB), 0);

    assert_int_equal(start(&d, data, "8m", "sync", "4m"), 0);
    assert_true(file_has(d.log, "2 entries restored (131072 bytes), 4 dropped at open"));
    assert_int_equal(it_admin_u64(&d, "info", "disk_checksum_failures"), 4);
    assert_int_equal(it_admin_u64(&d, "info", "disk_entries"), 2);
    assert_int_equal(file_size(blobs), 8 << 20);
    h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    assert_int_equal(lookup_seed(h, 1), 1);
    assert_int_equal(lookup_seed(h, 2), 1);
    for (uint64_t s = 3; s <= 6; s++) assert_int_equal(lookup_seed(h, s), 0);
    for (uint64_t s = 7; s <= 10; s++) assert_true(put_seed(h, s) != 0);
    for (uint64_t s = 7; s <= 10; s++) assert_int_equal(lookup_seed(h, s), 1);
    simcache_close(h);
    stop_ok(&d);
}

/* A filesystem with a few blocks left, not none: the put that crosses the
 * edge gets a short write from LMDB (which it reports as EIO, "short write,
 * filesystem full?"). Every refused sync put still answers SIMCACHE_ENOSPC,
 * never SIMCACHE_EIO, whatever the number of blocks left. */
static void nearly_full(int tmpfs)
{
    NEED_MOUNT();
    char mnt[128], data[160], filler[160];
    const char *fs = tmpfs ? mount_tmpfs("edge-tmpfs", 64, mnt, sizeof mnt)
                           : mount_small("edge", 64, mnt, sizeof mnt);
    assert_non_null(fs);
    snprintf(data, sizeof data, "%s/data", mnt);
    it_daemon_t d;
    assert_int_equal(start(&d, data, "16m", "sync", "1m"), 0);
    simcache_t *h = it_connect(d.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    for (uint64_t s = 1; s <= 4; s++) assert_true(put_seed(h, s) != 0);
    fill_fs(mnt, filler, sizeof filler);
    int64_t fsize = file_size(filler);
    int nfail = 0, neio = 0;
    uint64_t seed = 1000;
    /* Give back 3, 6, 9, ... blocks at a time; the puts eat them up. */
    for (int k = 1; k <= 12; k++) {
        fsize -= (int64_t)k * 3 * 4096;
        assert_int_equal(truncate(filler, fsize), 0);
        sync();
        for (int i = 0; i < 8; i++) {
            uint64_t id;
            int rc = put_after_refusal(&h, d.sock, seed++, &id);
            if (rc == 0) continue;
            fprintf(stderr, "%s, %d x 3 blocks given back: %s: %s\n", fs, k, simcache_strerror(rc),
                    simcache_last_error(h));
            nfail++;
            if (rc == SIMCACHE_EIO) neio++;
            else assert_int_equal(rc, SIMCACHE_ENOSPC);
            break;
        }
    }
    fprintf(stderr, "nearly full %s: %d puts refused, %d of them SIMCACHE_EIO\n", fs, nfail, neio);
    assert_true(nfail > 0);
    assert_int_equal(neio, 0);
    /* Still serving what it acknowledged before. */
    for (uint64_t s = 1; s <= 4; s++) assert_int_equal(lookup_seed(h, s), 1);
    unfill_fs(filler);
    uint64_t id;
    assert_int_equal(put_after_refusal(&h, d.sock, 5000, &id), 0);
    assert_int_equal(lookup_seed(h, 5000), 1);
    simcache_close(h);
    stop_ok(&d);
    umount_one(mnt);
}

static void nearly_full_fs_answers_enospc_not_eio(void **state)
{
    (void)state;
    nearly_full(0);
}

static void nearly_full_tmpfs_answers_enospc_not_eio(void **state)
{
    (void)state;
    nearly_full(1);
}

/* After each case, also a failed one: no daemon left running, no mount. */
static int teardown(void **state)
{
    (void)state;
    if (live_pid > 0) {
        kill(live_pid, SIGKILL);
        it_wait_pid(live_pid, IT_TIMEOUT_MS);
        live_pid = 0;
    }
    umount_all();
    return 0;
}

int main(int argc, char **argv)
{
    it_init(argc, argv);
    snprintf(top, sizeof top, "/tmp/scit-df-XXXXXX");
    if (!mkdtemp(top)) {
        perror("mkdtemp");
        return 1;
    }
    atexit(cleanup_at_exit);
    signal(SIGTERM, on_fatal_signal);
    signal(SIGINT, on_fatal_signal);
    signal(SIGALRM, on_fatal_signal);
    probe_mounts();
    if (!can_mount) fprintf(stderr, "mount cases will skip: %s\n", no_mount_why);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(truncated_blob_file_drops_entries_at_open, teardown),
        cmocka_unit_test_teardown(missing_data_dir_is_created, teardown),
        cmocka_unit_test_teardown(unwritable_data_dir_is_refused_as_nobody, teardown),
        cmocka_unit_test_teardown(read_only_filesystem_is_refused, teardown),
        cmocka_unit_test_teardown(no_o_direct_falls_back_and_says_so, teardown),
        cmocka_unit_test_teardown(filled_fs_fails_sync_puts_and_keeps_serving, teardown),
        cmocka_unit_test_teardown(filled_fs_counts_failed_demotions_and_keeps_serving, teardown),
        cmocka_unit_test_teardown(nearly_full_fs_answers_enospc_not_eio, teardown),
        cmocka_unit_test_teardown(nearly_full_tmpfs_answers_enospc_not_eio, teardown),
        cmocka_unit_test_teardown(capacity_above_free_space_is_refused, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (failed == 0 && !can_mount) {
        fprintf(stderr, "SKIP: the filesystem cases need mounts: %s\n", no_mount_why);
        return 77;
    }
    return failed;
}
