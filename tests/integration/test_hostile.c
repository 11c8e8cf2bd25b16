/* test_hostile.c - local clients that are not the operator, as other uids
 * (the test runs as root and forks children that drop to uid 4242 and
 * 4343): what the daemon lets them do.
 *
 *  - a uid allowed on the client socket is not an admin: the admin socket
 *    refuses it;
 *  - an admin-read uid (admin_read_uids) reads stats, info, config and
 *    lists, and is refused every write (config set, flush, evict, verify,
 *    checkpoint, shutdown), so the data and the daemon are untouched;
 *  - an admin uid (admin_uids) may write;
 *  - a third uid in no list is refused on both sockets;
 *  - deleted and flushed entries leave no byte readable in the arena any
 *    client maps (host_clear_freed).
 *
 * Skips (77) when not root: only root can become another uid.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "simcache.h"

#define DIM 16
#define SECOND 4242u
#define THIRD 4343u

static it_daemon_t D;

/* Start the daemon with extra flags, its sockets reachable by every uid
 * (the socket mode and the directory's); the access checks left are the
 * daemon's own. */
static void start(const char *const *extra)
{
    const char *args[24] = { "--socket-mode", "0666" };
    size_t n = 2;
    while (extra && *extra && n < 22) args[n++] = *extra++;
    args[n] = NULL;
    assert_int_equal(it_daemon_startv(&D, args), 0);
    assert_int_equal(chmod(D.dir, 0755), 0);
}

static int teardown(void **state)
{
    (void)state;
    it_daemon_cleanup(&D);
    return 0;
}

/* Run fn(arg) in a child as uid; returns its exit code (0: all as expected). */
static int as_uid(uid_t uid, int (*fn)(const void *arg), const void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (setgroups(0, NULL) || setgid(uid) || setuid(uid)) {
            fprintf(stderr, "cannot become uid %u: %s\n", (unsigned)uid, strerror(errno));
            _exit(126);
        }
        _exit(fn(arg));
    }
    return it_wait_pid(pid, IT_TIMEOUT_MS);
}

/* One admin command; its reply in out (lines up to END). 0, or -1 when the
 * connection failed or closed without a reply. */
static int admin1(const char *cmd, char *out, size_t n)
{
    if (it_admin(&D, cmd, out, n)) {
        out[0] = 0;
        return -1;
    }
    return 0;
}

static int starts_with(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* The admin socket refuses this uid before any command runs. */
static int admin_refused(const void *arg)
{
    (void)arg;
    it_admin_t a;
    if (it_admin_open(&a, D.admin)) return 0;   /* refused at connect: fine */
    char line[256];
    int rc = it_admin_line(&a, line, sizeof line);
    int bad = rc == 0 && !starts_with(line, "SERVER_ERROR");
    if (!bad && it_admin_send(&a, "stats\n") == 0 && it_admin_line(&a, line, sizeof line) == 0 &&
        !starts_with(line, "SERVER_ERROR"))
        bad = 1;
    it_admin_close(&a);
    if (bad) fprintf(stderr, "uid %u: the admin socket answered: %s\n", (unsigned)getuid(), line);
    return bad;
}

static int client_connects(const void *arg)
{
    (void)arg;
    simcache_t *h = it_connect(D.sock, "hostile-model", "fp", NULL, DIM);
    if (!h) return 1;
    simcache_close(h);
    return 0;
}

static int client_refused(const void *arg)
{
    (void)arg;
    simcache_t *h = it_connect(D.sock, "hostile-model", "fp", NULL, DIM);
    if (h) {
        fprintf(stderr, "uid %u connected as a client\n", (unsigned)getuid());
        simcache_close(h);
        return 1;
    }
    return 0;
}

static const char *const writes[] = {
    "config set max_clients 7", "config set admin_uids 4242", "config set allow_uids \"\"",
    "flush", "evict 100", "verify", "checkpoint", "shutdown",
};

static int reads_and_is_refused_writes(const void *arg)
{
    (void)arg;
    int bad = 0;
    char out[16384];
    static const char *const reads[] = { "stats", "info", "namespaces", "clients", "list",
                                         "config get all", "config get max_clients", "peers" };
    for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++) {
        if (admin1(reads[i], out, sizeof out) || starts_with(out, "ERROR") || starts_with(out, "SERVER_ERROR") ||
            starts_with(out, "CLIENT_ERROR")) {
            fprintf(stderr, "admin-read '%s' got: %.200s\n", reads[i], out);
            bad++;
        }
    }
    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
        admin1(writes[i], out, sizeof out);
        if (!strstr(out, "permission denied") || !strstr(out, "admin role")) {
            fprintf(stderr, "admin-read '%s' was not refused: %.200s\n", writes[i], out);
            bad++;
        }
    }
    return bad;
}

static int may_flush(const void *arg)
{
    (void)arg;
    char out[1024];
    admin1("flush", out, sizeof out);
    if (!starts_with(out, "OK")) {
        fprintf(stderr, "admin uid: flush got %s\n", out);
        return 1;
    }
    return 0;
}

static void put_some(int n)
{
    simcache_t *h = it_connect(D.sock, "hostile-model", "fp", NULL, DIM);
    assert_non_null(h);
    for (int i = 0; i < n; i++) {
        float e[DIM];
        it_unit(700 + (uint64_t)i, e, DIM);
        assert_true(it_put(h, e, 4096, 700 + (uint64_t)i, NULL) != 0);
    }
    simcache_close(h);
}

static void skip_unless_root(void)
{
    if (geteuid() != 0) {
        print_message("not root: cannot become other uids\n");
        skip();
    }
}

static void client_uid_is_not_an_admin(void **state)
{
    (void)state;
    skip_unless_root();
    const char *const args[] = { "--allow-uids", "4242", NULL };
    start(args);
    assert_int_equal(as_uid(SECOND, client_connects, NULL), 0);
    assert_int_equal(as_uid(SECOND, admin_refused, NULL), 0);
    /* The refusal is counted and logged with the uid. */
    assert_true(it_admin_u64(&D, "stats", "admin_rejected") >= 1);
}

static void admin_read_uid_is_refused_every_write(void **state)
{
    (void)state;
    skip_unless_root();
    const char *const args[] = { "--allow-uids", "4242", "--admin-read-uids", "4242", NULL };
    start(args);
    put_some(5);
    assert_int_equal(as_uid(SECOND, reads_and_is_refused_writes, NULL), 0);
    /* Nothing changed: the entries, the limits, and the daemon itself. */
    assert_false(it_daemon_exited(&D));
    char v[64];
    assert_int_equal(it_admin(&D, "config get max_clients", v, sizeof v), 0);
    assert_null(strstr(v, " 7"));
    assert_int_equal(it_admin_u64(&D, "info", "host_entries"), 5);
}

static void admin_uid_may_write(void **state)
{
    (void)state;
    skip_unless_root();
    const char *const args[] = { "--admin-uids", "4242", NULL };
    start(args);
    put_some(3);
    assert_int_equal(as_uid(SECOND, may_flush, NULL), 0);
    assert_int_equal(it_admin_u64(&D, "info", "host_entries"), 0);
}

static void third_uid_is_refused_on_both_sockets(void **state)
{
    (void)state;
    skip_unless_root();
    const char *const args[] = { "--allow-uids", "4242", "--admin-read-uids", "4242", NULL };
    start(args);
    assert_int_equal(as_uid(THIRD, client_refused, NULL), 0);
    assert_int_equal(as_uid(THIRD, admin_refused, NULL), 0);
}

/* How many of the blobs of seeds [first, first + n) have their first 512
 * bytes anywhere in the arena, as a client that maps it sees it. */
static int blobs_in_arena(uint64_t first, int n)
{
    int fd = it_raw_connect(D.sock);
    assert_true(fd >= 0);
    proto_hello_reply_t hr;
    int afd = -1;
    assert_int_equal(it_raw_hello(fd, "scanner", "fp", NULL, DIM, &hr, &afd), 0);
    uint8_t *map = mmap(NULL, hr.arena_size, PROT_READ, MAP_SHARED, afd, 0);
    assert_true(map != MAP_FAILED);
    int found = 0;
    uint8_t want[512];
    for (int i = 0; i < n; i++) {
        it_fill(want, sizeof want, first + (uint64_t)i);
        found += memmem(map, hr.arena_size, want, sizeof want) != NULL;
    }
    munmap(map, hr.arena_size);
    close(afd);
    close(fd);
    return found;
}

/* Deleted and flushed entries leave nothing readable in the arena. */
static void deleted_and_flushed_bytes_are_not_readable(void **state)
{
    (void)state;
    const char *const args[] = { NULL };
    start(args);
    simcache_t *h = it_connect(D.sock, "hostile-model", "fp", NULL, DIM);
    assert_non_null(h);
    uint64_t ids[40];
    for (int i = 0; i < 40; i++) {
        float e[DIM];
        it_unit(900 + (uint64_t)i, e, DIM);
        ids[i] = it_put(h, e, 64 << 10, 900 + (uint64_t)i, NULL);
        assert_true(ids[i] != 0);
    }
    assert_int_equal(blobs_in_arena(900, 40), 40);   /* the scan finds live ones */
    for (int i = 0; i < 20; i++) assert_int_equal(simcache_delete(h, ids[i]), 0);
    simcache_close(h);
    char out[256];
    assert_int_equal(it_admin(&D, "flush", out, sizeof out), 0);
    assert_int_equal(blobs_in_arena(900, 40), 0);
    assert_true(it_admin_u64(&D, "info", "host_cleared_bytes") >= 40u * (64 << 10));
}

/* ---- limits ---- */

static long rss_anon_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "RssAnon: %ld kB", &kib) == 1) break;
    if (f) fclose(f);
    return kib;
}

/* A proto header announcing a frame of len payload bytes. */
static void header(uint8_t *h, uint32_t len)
{
    proto_hdr_t hd = { .magic = PROTO_MAGIC, .version = PROTO_VERSION, .opcode = OP_LOOKUP,
                       .req_id = 1, .len = len };
    proto_hdr_encode(&hd, h);
}

typedef struct {
    int n;              /* connections to open */
    int partial;        /* of them, how many send half a frame header */
    int hold_fd;        /* write 1 byte here once open, then wait to be killed */
} flood_t;

/* Open n connections as this uid and hold them (idle, or slowloris: a few
 * bytes of a header, then nothing). */
static int flood(const void *arg)
{
    const flood_t *f = arg;
    int opened = 0;
    for (int i = 0; i < f->n; i++) {
        int fd = it_raw_connect(D.sock);
        if (fd < 0) continue;
        opened++;
        if (i < f->partial) {
            uint8_t h[PROTO_HDR_SIZE];
            header(h, 64);
            if (it_send_all(fd, h, 10)) {}
        }
    }
    char one = 1;
    if (write(f->hold_fd, &one, 1) != 1) return 1;
    pause();
    return opened ? 0 : 1;
}

static double p99(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
}

static int lookups_served(const void *arg)
{
    (void)arg;
    simcache_t *h = it_connect(D.sock, "hostile-model", "fp", NULL, DIM);
    if (!h) return 1;
    double lat[200];
    int bad = 0;
    for (int i = 0; i < 200; i++) {
        float e[DIM];
        it_unit(700 + (uint64_t)(i % 5), e, DIM);
        simcache_match_t m;
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        int rc = simcache_lookup(h, e, 0.99f, &m);
        clock_gettime(CLOCK_MONOTONIC, &b);
        lat[i] = (double)(b.tv_sec - a.tv_sec) * 1e6 + (double)(b.tv_nsec - a.tv_nsec) / 1e3;
        if (rc) bad++;
        else simcache_release(h, &m);
    }
    simcache_close(h);
    printf("uid %u: 200 lookups beside the flood, p99 %.0f us, %d failed\n", (unsigned)getuid(),
           p99(lat, 200), bad);
    fflush(stdout);
    return bad;
}

/* 1,000 idle and slowloris connections of one uid do not keep another uid
 * out: max_clients_per_uid leaves it room. */
static void one_uids_flood_leaves_room_for_another(void **state)
{
    (void)state;
    skip_unless_root();
    struct rlimit rl = { 4096, 4096 };
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    const char *const args[] = { "--allow-uids", "4242,4343", NULL };
    start(args);
    put_some(5);
    int pf[2];
    assert_int_equal(pipe(pf), 0);
    flood_t f = { .n = 1000, .partial = 500, .hold_fd = pf[1] };
    fflush(NULL);
    pid_t flooder = fork();
    if (flooder == 0) {
        if (setgroups(0, NULL) || setgid(SECOND) || setuid(SECOND)) _exit(126);
        _exit(flood(&f));
    }
    char one = 0;
    ssize_t got = read(pf[0], &one, 1);
    uint64_t rejected = it_admin_u64(&D, "stats", "connections_rejected");
    int served = as_uid(THIRD, lookups_served, NULL);
    kill(flooder, SIGKILL);   /* before any assert: a failed test leaves no flooder */
    it_wait_pid(flooder, IT_TIMEOUT_MS);
    close(pf[0]);
    close(pf[1]);
    assert_int_equal(got, 1);
    assert_true(rejected > 0 && rejected != UINT64_MAX);
    assert_int_equal(served, 0);
}

static int big_partial_frames(const void *arg)
{
    (void)arg;
    /* 8 connections, each half of a 16 MiB frame: 64 MiB if unbounded. */
    static uint8_t chunk[1 << 20];
    int fds[8], closed = 0;
    long before = rss_anon_kib(D.pid);
    for (int i = 0; i < 8; i++) {
        fds[i] = it_raw_connect(D.sock);
        if (fds[i] < 0) return 1;
        uint8_t h[PROTO_HDR_SIZE];
        header(h, 16u << 20);
        if (it_send_all(fds[i], h, sizeof h)) return 1;
        for (int k = 0; k < 8; k++)
            if (it_send_all(fds[i], chunk, sizeof chunk)) {
                closed++;   /* the daemon closed it: over the budget */
                break;
            }
    }
    it_sleep_ms(200);
    /* Measured while this uid still holds every connection it could keep:
     * the daemon's input buffers (its own account, asserted) and its
     * anonymous memory (printed: a sanitizer's shadow inflates it). */
    long grew = rss_anon_kib(D.pid) - before;
    uint64_t held = it_admin_u64(&D, "stats", "frame_buffer_bytes");
    printf("%d of 8 connections closed while sending; input buffers %llu bytes, daemon RssAnon "
           "grew %ld KiB while held\n", closed, (unsigned long long)held, grew);
    fflush(stdout);
    /* Within the 24 MiB budget, never the 64 MiB of 8 half frames. */
    return held == UINT64_MAX || held > (24u << 20) || closed < 1;
}

static void partial_frames_of_one_uid_are_bounded(void **state)
{
    (void)state;
    skip_unless_root();
    const char *const args[] = { "--allow-uids", "4242", "--admin-read-uids", "4242",
                                 "--frame-memory-per-uid", "24m", NULL };
    start(args);
    assert_int_equal(as_uid(SECOND, big_partial_frames, NULL), 0);
    assert_true(it_admin_u64(&D, "stats", "frames_rejected") >= 1);
}

/* A connection that holds nothing is closed after idle_timeout_ms; one
 * that holds a lease is kept. */
static void idle_connections_are_closed_unless_they_hold_a_lease(void **state)
{
    (void)state;
    const char *const args[] = { "--idle-timeout-ms", "1000", NULL };
    start(args);
    put_some(1);
    int idle = it_raw_connect(D.sock);
    assert_true(idle >= 0);
    simcache_t *h = it_connect(D.sock, "hostile-model", "fp", NULL, DIM);
    assert_non_null(h);
    float e[DIM];
    it_unit(700, e, DIM);
    simcache_match_t m;
    assert_int_equal(simcache_lookup(h, e, 0.99f, &m), 0);
    assert_int_equal(it_wait_eof(idle, 5000), 1);
    it_sleep_ms(2500);
    /* The lease holder is still served. */
    simcache_match_t m2;
    assert_int_equal(simcache_lookup(h, e, 0.99f, &m2), 0);
    simcache_release(h, &m2);
    simcache_release(h, &m);
    simcache_close(h);
    close(idle);
    assert_true(it_admin_u64(&D, "stats", "idle_closed") >= 1);
}

/* A daemon that cannot start its prefault thread (RLIMIT_NPROC of its uid)
 * says why, with pthread_create's own error (it does not set errno), and
 * serves anyway. */
static void thread_start_failure_names_its_cause(void **state)
{
    (void)state;
    skip_unless_root();
    char dir[] = "/tmp/scit-nproc-XXXXXX", sock[96], admin[96], data[96], log[96];
    assert_non_null(mkdtemp(dir));
    assert_int_equal(chown(dir, SECOND, SECOND), 0);
    snprintf(sock, sizeof sock, "%s/c.sock", dir);
    snprintf(admin, sizeof admin, "%s/a.sock", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(log, sizeof log, "%s/daemon.log", dir);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        struct rlimit rl = { 1, 1 };
        if (setgroups(0, NULL) || setgid(SECOND) || setrlimit(RLIMIT_NPROC, &rl) ||
            setuid(SECOND))
            _exit(126);
        execl(it_simcached, it_simcached, "--socket", sock, "--admin-socket", admin,
              "--data-dir", data, "--host-capacity", "64m", "--host-prefault", "1", (char *)NULL);
        _exit(127);
    }
    int found = 0;
    char text[16384];
    for (int i = 0; i < 300 && !found; i++) {
        it_sleep_ms(20);
        FILE *f = fopen(log, "r");
        if (!f) continue;
        size_t n = fread(text, 1, sizeof text - 1, f);
        text[n] = 0;
        fclose(f);
        found = strstr(text, "cannot start its thread") != NULL;
    }
    kill(pid, SIGKILL);
    it_wait_pid(pid, IT_TIMEOUT_MS);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {}
    if (!found) fprintf(stderr, "log:\n%s\n", text);
    assert_true(found);
    assert_non_null(strstr(text, "Resource temporarily unavailable"));
}

int main(int argc, char **argv)
{
    it_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(client_uid_is_not_an_admin, teardown),
        cmocka_unit_test_teardown(admin_read_uid_is_refused_every_write, teardown),
        cmocka_unit_test_teardown(admin_uid_may_write, teardown),
        cmocka_unit_test_teardown(third_uid_is_refused_on_both_sockets, teardown),
        cmocka_unit_test_teardown(deleted_and_flushed_bytes_are_not_readable, teardown),
        cmocka_unit_test_teardown(one_uids_flood_leaves_room_for_another, teardown),
        cmocka_unit_test_teardown(partial_frames_of_one_uid_are_bounded, teardown),
        cmocka_unit_test_teardown(idle_connections_are_closed_unless_they_hold_a_lease, teardown),
        cmocka_unit_test(thread_start_failure_names_its_cause),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
