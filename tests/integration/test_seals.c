/* test_seals.c - "read-only for real": a client holding the arena memfd (got
 * over a raw socket with the hello reply, exactly as the library gets it)
 * tries every way to write or resize it, and each must fail; the daemon's
 * bytes are checked intact afterwards by another client. The staging memfd
 * of a put is the opposite: writable by its client, never resizable, and
 * copied at commit so later writes do not reach readers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

#define DIM 64
#define MODEL "seal-model"
#define FP "seal-fp"
#define BLOB (1024u * 1024u)
#define BLOB_SEED 4242

static it_daemon_t D;
static uint64_t entry_id, entry_off;
static char entry_xxh3[64];
static float entry_emb[DIM];
static long page;

static int show_entry(uint64_t *off, char *xxh3, size_t n)
{
    char cmd[64], buf[4096];
    snprintf(cmd, sizeof cmd, "show %llu", (unsigned long long)entry_id);
    if (it_admin(&D, cmd, buf, sizeof buf) || it_kv_u64(buf, "offset", off)) return -1;
    const char *p = strstr(buf, "xxh3 ");
    if (!p) return -1;
    snprintf(xxh3, n, "%.16s", p + 5);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    page = sysconf(_SC_PAGESIZE);
    if (it_daemon_start(&D, "--host-capacity", "16m", NULL)) return -1;
    simcache_t *h = it_connect(D.sock, MODEL, FP, NULL, DIM);
    if (!h) return -1;
    it_unit(1, entry_emb, DIM);
    entry_id = it_put(h, entry_emb, BLOB, BLOB_SEED, "sealed");
    simcache_close(h);
    if (!entry_id) return -1;
    return show_entry(&entry_off, entry_xxh3, sizeof entry_xxh3);
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = it_daemon_stop(&D);
    it_daemon_cleanup(&D);
    return rc;
}

/* Another client, fresh connection: the entry and its checksum unchanged. */
static void expect_intact(void)
{
    simcache_t *h = it_connect(D.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    simcache_match_t m;
    assert_int_equal(simcache_lookup(h, entry_emb, -1, &m), 0);
    assert_int_equal(m.id, entry_id);
    assert_int_equal(it_check(m.data, m.size, BLOB_SEED), 0);
    assert_int_equal(simcache_release(h, &m), 0);
    simcache_close(h);
    uint64_t off;
    char x[64];
    assert_int_equal(show_entry(&off, x, sizeof x), 0);
    assert_int_equal(off, entry_off);
    assert_string_equal(x, entry_xxh3);
}

/* A raw client's view: connection + arena fd + its size. */
typedef struct {
    int sock, fd;
    uint64_t size;
} raw_t;

static void raw_open(raw_t *r)
{
    r->sock = it_raw_connect(D.sock);
    assert_true(r->sock >= 0);
    proto_hello_reply_t hr;
    assert_int_equal(it_raw_hello(r->sock, MODEL, FP, NULL, DIM, &hr, &r->fd), 0);
    assert_true(r->fd >= 0);
    r->size = hr.arena_size;
    struct stat st;
    assert_int_equal(fstat(r->fd, &st), 0);
    assert_int_equal((uint64_t)st.st_size, r->size);
    assert_true(entry_off + BLOB <= r->size);
}

static void raw_close(raw_t *r)
{
    close(r->fd);
    close(r->sock);
}

static void arena_fd_carries_all_seals(void **state)
{
    (void)state;
    raw_t r;
    raw_open(&r);
    int seals = fcntl(r.fd, F_GET_SEALS);
    assert_true(seals >= 0);
    assert_true(seals & F_SEAL_FUTURE_WRITE);
    assert_true(seals & F_SEAL_GROW);
    assert_true(seals & F_SEAL_SHRINK);
    assert_true(seals & F_SEAL_SEAL);
    /* F_SEAL_SEAL: no seal can be added (or the set changed) by a client. */
    assert_int_equal(fcntl(r.fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
    assert_int_equal(errno, EPERM);
    /* The fd came open read-write: that is why seals are needed at all. */
    int fl = fcntl(r.fd, F_GETFL);
    assert_true(fl >= 0);
    raw_close(&r);
    expect_intact();
}

static void arena_write_and_pwrite_fail(void **state)
{
    (void)state;
    raw_t r;
    raw_open(&r);
    uint8_t junk[4096];
    memset(junk, 0x5a, sizeof junk);
    assert_true(lseek(r.fd, (off_t)entry_off, SEEK_SET) == (off_t)entry_off);
    errno = 0;
    assert_int_equal(write(r.fd, junk, sizeof junk), -1);
    assert_int_equal(errno, EPERM);
    errno = 0;
    assert_int_equal(pwrite(r.fd, junk, sizeof junk, (off_t)entry_off), -1);
    assert_int_equal(errno, EPERM);
    errno = 0;
    assert_int_equal(pwrite(r.fd, junk, 1, 0), -1);
    assert_int_equal(errno, EPERM);
    raw_close(&r);
    expect_intact();
}

static void arena_shared_writable_mmap_fails(void **state)
{
    (void)state;
    raw_t r;
    raw_open(&r);
    errno = 0;
    void *p = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 0);
    assert_true(p == MAP_FAILED);
    assert_int_equal(errno, EPERM);
    p = mmap(NULL, (size_t)page, PROT_WRITE, MAP_SHARED, r.fd, (off_t)entry_off);
    assert_true(p == MAP_FAILED);
    raw_close(&r);
    expect_intact();
}

static void arena_mprotect_to_writable_fails(void **state)
{
    (void)state;
    raw_t r;
    raw_open(&r);
    uint8_t *p = mmap(NULL, r.size, PROT_READ, MAP_SHARED, r.fd, 0);
    assert_true(p != MAP_FAILED);
    assert_int_equal(it_check(p + entry_off, BLOB, BLOB_SEED), 0);
    errno = 0;
    assert_int_equal(mprotect(p, r.size, PROT_READ | PROT_WRITE), -1);
    assert_int_equal(errno, EACCES);
    errno = 0;
    assert_int_equal(mprotect(p + entry_off, (size_t)page, PROT_WRITE), -1);
    assert_int_equal(errno, EACCES);
    /* MADV_REMOVE would punch the pages out from under every reader. */
    assert_int_equal(madvise(p + entry_off, (size_t)page, MADV_REMOVE), -1);
    /* /proc/self/mem writes force through page protections, but not into a
     * shared mapping that may never become writable. */
    int mem = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
    if (mem >= 0) {
        uint8_t junk[64];
        memset(junk, 0xee, sizeof junk);
        assert_int_equal(pwrite(mem, junk, sizeof junk, (off_t)(uintptr_t)(p + entry_off)), -1);
        close(mem);
    }
    assert_int_equal(it_check(p + entry_off, BLOB, BLOB_SEED), 0);
    munmap(p, r.size);
    raw_close(&r);
    expect_intact();
}

static void arena_reopened_read_write_still_cannot_write(void **state)
{
    (void)state;
    raw_t r;
    raw_open(&r);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", r.fd);
    int fd2 = open(path, O_RDWR | O_CLOEXEC);
    /* The open itself may succeed (the memfd is O_RDWR); using it must not. */
    if (fd2 >= 0) {
        errno = 0;
        void *p = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
        assert_true(p == MAP_FAILED);
        assert_int_equal(errno, EPERM);
        uint8_t junk[16] = { 1, 2, 3 };
        assert_int_equal(pwrite(fd2, junk, sizeof junk, (off_t)entry_off), -1);
        assert_int_equal(ftruncate(fd2, 0), -1);
        close(fd2);
    }
    raw_close(&r);
    expect_intact();
}

static void arena_cannot_be_resized_or_punched(void **state)
{
    (void)state;
    raw_t r;
    raw_open(&r);
    errno = 0;
    assert_int_equal(ftruncate(r.fd, 0), -1);
    assert_int_equal(errno, EPERM);
    errno = 0;
    assert_int_equal(ftruncate(r.fd, (off_t)(r.size / 2)), -1);
    assert_int_equal(errno, EPERM);
    errno = 0;
    assert_int_equal(ftruncate(r.fd, (off_t)(r.size * 2)), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(fallocate(r.fd, 0, (off_t)r.size, page), -1);
    assert_int_equal(fallocate(r.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)entry_off,
                               page),
                     -1);
    struct stat st;
    assert_int_equal(fstat(r.fd, &st), 0);
    assert_int_equal((uint64_t)st.st_size, r.size);
    raw_close(&r);
    expect_intact();
}

static void arena_private_writable_mapping_stays_private(void **state)
{
    (void)state;
    raw_t r;
    raw_open(&r);
    /* Copy-on-write is allowed: it changes only this process's copy. */
    uint8_t *p = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_PRIVATE, r.fd, 0);
    assert_true(p != MAP_FAILED);
    memset(p + entry_off, 0x77, BLOB);
    assert_true(it_check(p + entry_off, BLOB, BLOB_SEED) != 0);
    munmap(p, r.size);
    raw_close(&r);
    expect_intact();
}

/* The library's own mapping: a store through the hit's pointer faults. */
static int scribble_proc(void *arg)
{
    (void)arg;
    simcache_t *h = it_connect(D.sock, MODEL, FP, NULL, DIM);
    if (!h) return 1;
    simcache_match_t m;
    if (simcache_lookup(h, entry_emb, -1, &m) != 0) return 2;
    uintptr_t pg = (uintptr_t)m.data & ~(uintptr_t)(page - 1);
    if (mprotect((void *)pg, (size_t)page, PROT_READ | PROT_WRITE) == 0) return 3;
    /* Die by the plain signal, also under a sanitizer's handler. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    *(volatile uint8_t *)m.data = 0x42;
    return 4;   /* the store went through */
}

static void write_through_hit_pointer_faults(void **state)
{
    (void)state;
    pid_t pid = it_fork(scribble_proc, NULL);
    assert_int_equal(it_wait_pid(pid, IT_TIMEOUT_MS), 128 + SIGSEGV);
    expect_intact();
}

/* ---- staging ---- */

static int raw_put_begin(int sock, uint64_t size, uint64_t *token, int *fd)
{
    proto_wr_t w;
    proto_wr_init(&w);
    proto_wr_u64(&w, size);
    proto_wr_u32(&w, 0);
    it_frame_t f;
    int rc = it_call(sock, OP_PUT_BEGIN, 2, &w, &f);
    proto_wr_free(&w);
    if (rc == 0) {
        proto_rd_t r;
        proto_rd_init(&r, f.payload, f.h.len);
        *token = proto_rd_u64(&r);
        (void)proto_rd_u64(&r);              /* staging id */
        uint64_t ssize = proto_rd_u64(&r);   /* staging buffer size */
        uint32_t fresh = proto_rd_u32(&r);   /* a new buffer: fd attached */
        *fd = f.fd;
        f.fd = -1;
        if (proto_rd_done(&r) || *fd < 0 || !fresh || ssize < size) rc = 101;
    }
    if (rc != 100) it_frame_free(&f);
    return rc;
}

static int raw_commit(int sock, uint64_t token, uint64_t size, const float *e, uint64_t *id)
{
    proto_wr_t w;
    proto_wr_init(&w);
    proto_wr_u64(&w, token);
    proto_wr_u32(&w, 0);
    simcache_layout_t l = it_layout(size);
    proto_wr_layout(&w, &l);
    proto_wr_u32(&w, 0);
    proto_wr_embedding(&w, e, DIM);
    it_frame_t f;
    int rc = it_call(sock, OP_PUT_COMMIT, 3, &w, &f);
    proto_wr_free(&w);
    if (rc == 0) {
        proto_rd_t r;
        proto_rd_init(&r, f.payload, f.h.len);
        *id = proto_rd_u64(&r);
    }
    if (rc != 100) it_frame_free(&f);
    return rc;
}

static void staging_fd_is_writable_but_not_resizable(void **state)
{
    (void)state;
    raw_t r;
    raw_open(&r);
    const uint64_t size = 64 * 1024;
    uint64_t token = 0;
    int sfd = -1;
    assert_int_equal(raw_put_begin(r.sock, size, &token, &sfd), 0);
    assert_true(token != 0);
    assert_true(sfd != r.fd);
    int seals = fcntl(sfd, F_GET_SEALS);
    assert_true(seals >= 0);
    assert_false(seals & F_SEAL_FUTURE_WRITE);
    assert_true(seals & F_SEAL_GROW);
    assert_true(seals & F_SEAL_SHRINK);
    assert_true(seals & F_SEAL_SEAL);
    struct stat st;
    assert_int_equal(fstat(sfd, &st), 0);
    assert_int_equal((uint64_t)st.st_size, size);
    /* A fresh staging buffer holds nothing of anyone else's. */
    uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
    assert_true(p != MAP_FAILED);
    for (uint64_t i = 0; i < size; i++)
        if (p[i]) fail_msg("staging byte %llu is %u", (unsigned long long)i, p[i]);
    /* Writable, through the mapping and through pwrite... */
    it_fill(p, size, 777);
    uint8_t head[512];
    memcpy(head, p, sizeof head);
    assert_int_equal(pwrite(sfd, head, sizeof head, 0), (ssize_t)sizeof head);
    /* ...never resizable (shrinking would fault the daemon's copy). */
    errno = 0;
    assert_int_equal(ftruncate(sfd, 0), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(ftruncate(sfd, (off_t)size / 2), -1);
    assert_int_equal(ftruncate(sfd, (off_t)size * 2), -1);
    assert_int_equal(fallocate(sfd, 0, (off_t)size, page), -1);
    assert_int_equal(fcntl(sfd, F_ADD_SEALS, F_SEAL_WRITE), -1);
    assert_int_equal(fstat(sfd, &st), 0);
    assert_int_equal((uint64_t)st.st_size, size);

    float e[DIM];
    it_unit(555, e, DIM);
    uint64_t id;
    assert_int_equal(raw_commit(r.sock, token, size, e, &id), 0);
    /* Scribbling on the staging buffer after commit reaches no reader. */
    memset(p, 0xcc, size);
    simcache_t *h = it_connect(D.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    simcache_match_t m;
    assert_int_equal(simcache_get(h, id, &m), 0);
    assert_int_equal(m.size, size);
    assert_int_equal(it_check(m.data, m.size, 777), 0);
    assert_int_equal(simcache_release(h, &m), 0);
    /* And the token is spent. */
    uint64_t id2;
    assert_int_equal(raw_commit(r.sock, token, size, e, &id2), SIMCACHE_ENOPUT);
    assert_int_equal(simcache_delete(h, id), 0);
    simcache_close(h);
    munmap(p, size);
    close(sfd);
    raw_close(&r);
    expect_intact();
}

int main(int argc, char **argv)
{
    it_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(arena_fd_carries_all_seals),
        cmocka_unit_test(arena_write_and_pwrite_fail),
        cmocka_unit_test(arena_shared_writable_mmap_fails),
        cmocka_unit_test(arena_mprotect_to_writable_fails),
        cmocka_unit_test(arena_reopened_read_write_still_cannot_write),
        cmocka_unit_test(arena_cannot_be_resized_or_punched),
        cmocka_unit_test(arena_private_writable_mapping_stays_private),
        cmocka_unit_test(write_through_hit_pointer_faults),
        cmocka_unit_test(staging_fd_is_writable_but_not_resizable),
    };
    return cmocka_run_group_tests_name("integration: seals", tests, group_setup, group_teardown);
}
