/* test_arena.c - memfd arenas and their seals, checked for real.
 *
 * The seal tests fork a child that drops everything it inherited from the
 * owner, receives the fd over a Unix socket with SCM_RIGHTS (as a client
 * would), tries every way to write or resize it, and reports each errno back.
 * The child never calls CMocka: the parent asserts on its report. Skips (77)
 * when the kernel lacks F_SEAL_FUTURE_WRITE (Linux < 5.1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "arena.h"
#include "hugepool.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

#define PAGE 4096u
#define SIZE (4 * PAGE)

static const char BEFORE[] = "written before the fd was passed";
static const char AFTER[] = "written by the owner after sealing";

/* ---- helpers ----------------------------------------------------------- */

static int send_fd(int sock, int fd)
{
    char byte = 'F';
    struct iovec iov = { &byte, 1 };
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
    struct msghdr msg = { 0 };
    struct cmsghdr *c;

    memset(&u, 0, sizeof(u));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof(u.buf);
    c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
    char byte;
    struct iovec iov = { &byte, 1 };
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
    struct msghdr msg = { 0 };
    struct cmsghdr *c;
    int fd;

    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof(u.buf);
    if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1)
        return -1;
    c = CMSG_FIRSTHDR(&msg);
    if (c == NULL || c->cmsg_type != SCM_RIGHTS)
        return -1;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

static int put_byte(int sock, char b)
{
    return write(sock, &b, 1) == 1 ? 0 : -1;
}

static int get_byte(int sock)
{
    char b;

    return read(sock, &b, 1) == 1 ? b : -1;
}

/* errno of a call that returned rc, 0 if it succeeded. */
static int err_of(long rc)
{
    return rc < 0 ? errno : 0;
}

static int map_err(void *p)
{
    return p == MAP_FAILED ? errno : 0;
}

static int open_arena(arena_t *a, const char *name, uint64_t size)
{
    char err[256];
    int rc = arena_open(a, name, size, err, sizeof(err));

    if (rc == -EINVAL && strstr(err, "F_SEAL_FUTURE_WRITE") != NULL)
        return 77;
    assert_int_equal(rc, 0);
    return 0;
}

/* ---- the client's view of a sealed arena -------------------------------- */

/* The arena's page: 4 KiB, or 2 MiB for a hugetlb arena. The client test
 * works on an arena of 4 pages. */
static size_t unit = PAGE;

typedef struct {
    int got_fd;
    int write_err;          /* write(2) */
    int pwrite_err;         /* pwrite(2) */
    int mmap_rw_err;        /* mmap PROT_WRITE, MAP_SHARED */
    int mmap_ro_err;        /* mmap PROT_READ, MAP_SHARED (must work) */
    int saw_before;         /* read-only mapping shows the owner's bytes */
    int mprotect_err;       /* read-only mapping -> PROT_WRITE */
    int reopen_err;         /* open /proc/self/fd/N O_RDWR (may work) */
    int reopen_mmap_rw_err; /* mmap PROT_WRITE, MAP_SHARED of the reopened fd */
    int reopen_write_err;   /* write(2) on the reopened fd */
    int grow_err;           /* ftruncate larger */
    int shrink_err;         /* ftruncate smaller */
    int fallocate_err;      /* fallocate past the end */
    int punch_err;          /* fallocate PUNCH_HOLE */
    int add_seals_err;      /* F_ADD_SEALS */
    int private_write_ok;   /* MAP_PRIVATE writable mapping, written (COW) */
    int saw_after;          /* the owner's later write shows up */
    int size_after;         /* fstat size at the end */
} arena_report_t;

static void arena_client(int sock, arena_report_t *r)
{
    const size_t size = 4 * unit;
    int fd = recv_fd(sock), fd2;
    char path[64];
    uint8_t *ro, *p;

    r->got_fd = fd >= 0;
    if (fd < 0)
        return;
    r->write_err = err_of(write(fd, "x", 1));
    r->pwrite_err = err_of(pwrite(fd, "x", 1, 10));
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    r->mmap_rw_err = map_err(p);
    if (p != MAP_FAILED)
        munmap(p, size);
    ro = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    r->mmap_ro_err = map_err(ro);
    if (ro == MAP_FAILED)
        return;
    r->saw_before = memcmp(ro, BEFORE, sizeof(BEFORE)) == 0;
    r->mprotect_err = err_of(mprotect(ro, size, PROT_READ | PROT_WRITE));

    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    fd2 = open(path, O_RDWR | O_CLOEXEC);
    r->reopen_err = err_of(fd2);
    if (fd2 >= 0) {
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
        r->reopen_mmap_rw_err = map_err(p);
        if (p != MAP_FAILED)
            munmap(p, size);
        r->reopen_write_err = err_of(pwrite(fd2, "x", 1, 0));
        close(fd2);
    }
    r->grow_err = err_of(ftruncate(fd, 2 * size));
    r->shrink_err = err_of(ftruncate(fd, unit));
    r->fallocate_err = err_of(fallocate(fd, 0, size, unit));
    r->punch_err = err_of(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, unit));
    r->add_seals_err = err_of(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));

    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) {
        memset(p + unit, 'P', unit);   /* lands in a private copy */
        r->private_write_ok = 1;
        munmap(p, size);
    }

    /* Ready: the owner may write now. */
    if (put_byte(sock, 'R') == 0 && get_byte(sock) == 'W')
        r->saw_after = memcmp(ro + 2 * unit, AFTER, sizeof(AFTER)) == 0;
    {
        struct stat st;
        r->size_after = fstat(fd, &st) == 0 ? (int)st.st_size : -1;
    }
}

/* Fork a child that drops the inherited arena, receives its fd over sock
 * and runs client(). The parent side runs between(sock) while the child is
 * waiting, then collects the report. */
static void run_client(arena_t *a, void (*client)(int, void *), void *report, size_t len,
                       void (*between)(arena_t *, int))
{
    int sv[2], status;
    pid_t pid;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* A client has only what it is sent: forget the owner's fd and mapping. */
        close(sv[0]);
        munmap(a->base, (size_t)a->size);
        close(a->fd);
        memset(report, 0, len);
        client(sv[1], report);
        if (write(sv[1], report, len) != (ssize_t)len)
            _exit(2);
        _exit(0);
    }
    close(sv[1]);
    assert_int_equal(send_fd(sv[0], a->fd), 0);
    if (between != NULL)
        between(a, sv[0]);
    assert_int_equal(read(sv[0], report, len), (ssize_t)len);
    close(sv[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void arena_client_cb(int sock, void *r)
{
    arena_client(sock, r);
}

static void owner_writes_when_ready(arena_t *a, int sock)
{
    assert_int_equal(get_byte(sock), 'R');
    memcpy(a->base + 2 * unit, AFTER, sizeof(AFTER));
    assert_int_equal(put_byte(sock, 'W'), 0);
}

static void sealed_arena_refuses_every_write_from_a_client(void **state)
{
    arena_t a;
    arena_report_t r;
    uint8_t zero[PAGE] = { 0 };

    (void)state;
    if (open_arena(&a, "test-arena", SIZE) == 77)
        skip();
    memcpy(a.base, BEFORE, sizeof(BEFORE));
    run_client(&a, arena_client_cb, &r, sizeof(r), owner_writes_when_ready);

    assert_true(r.got_fd);
    assert_int_equal(r.write_err, EPERM);
    assert_int_equal(r.pwrite_err, EPERM);
    assert_int_equal(r.mmap_rw_err, EPERM);
    assert_int_equal(r.mmap_ro_err, 0);
    assert_true(r.saw_before);
    assert_int_equal(r.mprotect_err, EACCES);
    if (r.reopen_err == 0) {
        assert_int_equal(r.reopen_mmap_rw_err, EPERM);
        assert_int_equal(r.reopen_write_err, EPERM);
    }
    assert_int_equal(r.grow_err, EPERM);
    assert_int_equal(r.shrink_err, EPERM);
    assert_int_equal(r.fallocate_err, EPERM);
    assert_int_equal(r.punch_err, EPERM);
    assert_int_equal(r.add_seals_err, EPERM);
    assert_true(r.saw_after);
    assert_int_equal(r.size_after, SIZE);

    /* Nothing the client tried reached the owner's bytes. */
    assert_memory_equal(a.base, BEFORE, sizeof(BEFORE));
    assert_memory_equal(a.base + PAGE, zero, PAGE);
    assert_int_equal(a.base[10], BEFORE[10]);
    arena_close(&a);
}

/* ---- huge pages ---------------------------------------------------------- */

#define HUGE ((size_t)ARENA_HUGE_PAGE)

/* A hugetlb arena is sealed as tightly as a 4 KiB one. hugetlbfs has no
 * write(2) at all (EINVAL before any seal is looked at); everything else is
 * refused by the seals, as for shmem. */
static void hugetlb_arena_is_sealed_like_any_other(void **state)
{
    arena_t a;
    arena_report_t r;
    char err[256] = "";
    long added;
    int rc;

    (void)state;
    added = hugepool_grow(4);
    if (added < 0)
        skip();
    rc = arena_open_huge(&a, "test-hugetlb", 4 * HUGE, ARENA_HUGE_ON, err, sizeof err);
    if (rc == -EINVAL && strstr(err, "F_SEAL_FUTURE_WRITE") != NULL) {
        hugepool_shrink(added);
        skip();
    }
    assert_int_equal(rc, 0);
    assert_int_equal(a.pages, ARENA_PAGES_HUGETLB);
    assert_int_equal(a.size, 4 * HUGE);
    {
        struct stat st;
        assert_int_equal(fstat(a.fd, &st), 0);
        assert_int_equal(st.st_blksize, HUGE);   /* hugetlbfs reports its page */
    }
    memcpy(a.base, BEFORE, sizeof(BEFORE));
    unit = HUGE;
    run_client(&a, arena_client_cb, &r, sizeof(r), owner_writes_when_ready);
    unit = PAGE;

    assert_true(r.got_fd);
    assert_true(r.write_err != 0);
    assert_true(r.pwrite_err != 0);
    assert_int_equal(r.mmap_rw_err, EPERM);
    assert_int_equal(r.mmap_ro_err, 0);
    assert_true(r.saw_before);
    assert_int_equal(r.mprotect_err, EACCES);
    if (r.reopen_err == 0) {
        assert_int_equal(r.reopen_mmap_rw_err, EPERM);
        assert_true(r.reopen_write_err != 0);
    }
    assert_int_equal(r.grow_err, EPERM);
    assert_int_equal(r.shrink_err, EPERM);
    assert_int_equal(r.fallocate_err, EPERM);
    assert_int_equal(r.punch_err, EPERM);
    assert_int_equal(r.add_seals_err, EPERM);
    assert_true(r.saw_after);
    assert_int_equal(r.size_after, 4 * HUGE);
    assert_memory_equal(a.base, BEFORE, sizeof(BEFORE));
    /* Every byte of the last page is the owner's to write. */
    memset(a.base + 3 * HUGE, 0x5a, HUGE);
    assert_int_equal(a.base[4 * HUGE - 1], 0x5a);
    arena_close(&a);
    hugepool_shrink(added);
}

/* Keep the pool from growing (hugepool_grow takes the same lock), and say
 * how many pages it has free (-1: no hugetlb) and a size one page past
 * that. Close the fd when done. */
static int hold_pool(long *free_pages, uint64_t *past_free)
{
    int lk = hugepool_lock();

    *free_pages = hugepool_read("free_hugepages");
    *past_free = (uint64_t)(*free_pages > 0 ? *free_pages + 1 : 1) * HUGE;
    return lk;
}

/* on with no room: a clear error that names the sysctl, and nothing left
 * open. The request is one page more than the pool has free. */
static void huge_on_without_room_fails_with_the_fix(void **state)
{
    arena_t a;
    char err[256] = "";
    long free_pages;
    uint64_t size;
    int lk = hold_pool(&free_pages, &size);
    int rc;

    (void)state;
    rc = arena_open_huge(&a, "test-noroom", size, ARENA_HUGE_ON, err, sizeof err);
    assert_true(rc < 0);
    assert_int_equal(a.fd, -1);
    assert_null(a.base);
    assert_non_null(strstr(err, "host_huge_pages=on"));
    if (free_pages >= 0) {
        assert_int_equal(rc, -ENOMEM);
        assert_non_null(strstr(err, "vm.nr_hugepages"));
    }
    if (lk >= 0) close(lk);
}

static void huge_on_refuses_a_size_off_the_huge_page(void **state)
{
    arena_t a;
    char err[256] = "";

    (void)state;
    assert_int_equal(arena_open_huge(&a, NULL, HUGE + PAGE, ARENA_HUGE_ON, err, sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "multiple of 2 MiB"));
    assert_int_equal(a.fd, -1);
}

/* try with no room falls back to a working 4 KiB (or THP-advised) arena. */
static void huge_try_without_room_falls_back(void **state)
{
    arena_t a;
    char err[256] = "";
    long free_pages;
    uint64_t size;
    int lk = hold_pool(&free_pages, &size);

    (void)state;
    assert_int_equal(arena_open_huge(&a, "test-fallback", size, ARENA_HUGE_TRY, err, sizeof err),
                     0);
    assert_true(a.pages == ARENA_PAGES_4K || a.pages == ARENA_PAGES_THP);
    assert_int_equal(a.size, size);
    a.base[size - 1] = 7;
    assert_int_equal(a.base[size - 1], 7);
    assert_int_equal(arena_seals(a.fd) & F_SEAL_FUTURE_WRITE, F_SEAL_FUTURE_WRITE);
    arena_close(&a);
    assert_int_equal(a.pages, ARENA_PAGES_4K);
    if (lk >= 0) close(lk);
}

static void huge_off_never_asks(void **state)
{
    arena_t a;

    (void)state;
    assert_int_equal(arena_open_huge(&a, NULL, 2 * HUGE, ARENA_HUGE_OFF, NULL, 0), 0);
    assert_int_equal(a.pages, ARENA_PAGES_4K);
    arena_close(&a);
}

static void reopening_proc_fd_read_write_cannot_map_writable(void **state)
{
    /* The same route, without the fork: even the owner gets no second
     * writable mapping once the arena is sealed. */
    arena_t a;
    char path[64];
    int fd2;
    void *p;

    (void)state;
    if (open_arena(&a, "test-reopen", SIZE) == 77)
        skip();
    snprintf(path, sizeof(path), "/proc/self/fd/%d", a.fd);
    fd2 = open(path, O_RDWR | O_CLOEXEC);
    assert_true(fd2 >= 0);
    p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
    assert_true(p == MAP_FAILED);
    assert_int_equal(errno, EPERM);
    close(fd2);
    arena_close(&a);
}

static void arena_carries_all_four_seals(void **state)
{
    const int want = F_SEAL_FUTURE_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL;
    arena_t a;
    int seals;

    (void)state;
    if (open_arena(&a, "test-seals", SIZE) == 77)
        skip();
    seals = arena_seals(a.fd);
    assert_true(seals >= 0);
    assert_int_equal(seals & want, want);
    assert_int_equal(seals & F_SEAL_WRITE, 0);  /* the owner's mapping must keep writing */
    arena_close(&a);
}

static void owner_mapping_still_writes_after_sealing(void **state)
{
    arena_t a;
    char buf[sizeof(AFTER)];

    (void)state;
    if (open_arena(&a, "test-owner", SIZE) == 77)
        skip();
    memcpy(a.base + SIZE - sizeof(AFTER), AFTER, sizeof(AFTER));
    assert_int_equal(pread(a.fd, buf, sizeof(buf), SIZE - sizeof(AFTER)), (ssize_t)sizeof(buf));
    assert_memory_equal(buf, AFTER, sizeof(AFTER));
    arena_close(&a);
}

static void new_arena_is_zeroed_named_and_close_on_exec(void **state)
{
    arena_t a;
    char path[64], link[256];
    ssize_t n;

    (void)state;
    if (open_arena(&a, "test-name", SIZE) == 77)
        skip();
    assert_int_equal(a.size, SIZE);
    for (uint64_t i = 0; i < SIZE; i++)
        assert_int_equal(a.base[i], 0);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", a.fd);
    n = readlink(path, link, sizeof(link) - 1);
    assert_true(n > 0);
    link[n] = '\0';
    assert_non_null(strstr(link, "memfd:test-name"));
    assert_true(fcntl(a.fd, F_GETFD) & FD_CLOEXEC);
    arena_close(&a);
}

static void zero_size_is_refused_with_a_message(void **state)
{
    arena_t a;
    char err[128] = "";

    (void)state;
    assert_int_equal(arena_open(&a, NULL, 0, err, sizeof(err)), -EINVAL);
    assert_true(err[0] != '\0');
    assert_int_equal(a.fd, -1);
    assert_null(a.base);
    assert_int_equal(arena_open_staging(&a, NULL, 0, NULL, 0), -EINVAL);
    arena_close(&a);
}

static void close_twice_is_harmless(void **state)
{
    arena_t a;

    (void)state;
    if (open_arena(&a, NULL, PAGE) == 77)
        skip();
    arena_close(&a);
    assert_int_equal(a.fd, -1);
    assert_null(a.base);
    arena_close(&a);
}

static void overlong_name_is_cut_not_refused(void **state)
{
    arena_t a;
    char name[600];

    (void)state;
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    if (open_arena(&a, name, PAGE) == 77)
        skip();
    arena_close(&a);
}

/* ---- the client's view of a staging memfd ------------------------------ */

static const char STAGED[] = "bytes the client put in its staging memfd";

typedef struct {
    int got_fd;
    int grow_err;
    int shrink_err;
    int fallocate_err;
    int add_seals_err;
    int pwrite_err;
    int mmap_rw_err;
    int size_after;
} staging_report_t;

static void staging_client(int sock, void *arg)
{
    staging_report_t *r = arg;
    int fd = recv_fd(sock);
    struct stat st;
    uint8_t *p;

    r->got_fd = fd >= 0;
    if (fd < 0)
        return;
    r->grow_err = err_of(ftruncate(fd, 2 * SIZE));
    r->shrink_err = err_of(ftruncate(fd, 0));
    r->fallocate_err = err_of(fallocate(fd, 0, SIZE, PAGE));
    r->add_seals_err = err_of(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
    r->pwrite_err = err_of(pwrite(fd, STAGED, sizeof(STAGED), 0));
    p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    r->mmap_rw_err = map_err(p);
    if (p != MAP_FAILED) {
        memcpy(p + SIZE - sizeof(STAGED), STAGED, sizeof(STAGED));
        munmap(p, SIZE);
    }
    r->size_after = fstat(fd, &st) == 0 ? (int)st.st_size : -1;
}

static void staging_memfd_is_writable_but_never_resizable(void **state)
{
    const int want = F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL;
    arena_t a;
    staging_report_t r;
    char err[256];

    (void)state;
    assert_int_equal(arena_open_staging(&a, "test-staging", SIZE, err, sizeof(err)), 0);
    assert_int_equal(arena_seals(a.fd) & (want | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE), want);
    run_client(&a, staging_client, &r, sizeof(r), NULL);

    assert_true(r.got_fd);
    assert_int_equal(r.grow_err, EPERM);
    assert_int_equal(r.shrink_err, EPERM);
    assert_int_equal(r.fallocate_err, EPERM);
    assert_int_equal(r.add_seals_err, EPERM);
    assert_int_equal(r.pwrite_err, 0);
    assert_int_equal(r.mmap_rw_err, 0);
    assert_int_equal(r.size_after, SIZE);
    /* The owner sees what the client wrote, through its own mapping. */
    assert_memory_equal(a.base, STAGED, sizeof(STAGED));
    assert_memory_equal(a.base + SIZE - sizeof(STAGED), STAGED, sizeof(STAGED));
    arena_close(&a);
}

static void seals_of_a_non_memfd_is_an_error(void **state)
{
    int fds[2];

    (void)state;
    assert_int_equal(pipe(fds), 0);
    assert_true(arena_seals(fds[0]) < 0);
    assert_true(arena_seals(-1) < 0);
    close(fds[0]);
    close(fds[1]);
}

/* 1 if this kernel can seal F_SEAL_FUTURE_WRITE. */
static int kernel_has_future_write_seal(void)
{
    arena_t a;

    if (open_arena(&a, "probe", PAGE) == 77)
        return 0;
    arena_close(&a);
    return 1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sealed_arena_refuses_every_write_from_a_client),
        cmocka_unit_test(reopening_proc_fd_read_write_cannot_map_writable),
        cmocka_unit_test(arena_carries_all_four_seals),
        cmocka_unit_test(owner_mapping_still_writes_after_sealing),
        cmocka_unit_test(new_arena_is_zeroed_named_and_close_on_exec),
        cmocka_unit_test(zero_size_is_refused_with_a_message),
        cmocka_unit_test(close_twice_is_harmless),
        cmocka_unit_test(overlong_name_is_cut_not_refused),
        cmocka_unit_test(staging_memfd_is_writable_but_never_resizable),
        cmocka_unit_test(seals_of_a_non_memfd_is_an_error),
        cmocka_unit_test(hugetlb_arena_is_sealed_like_any_other),
        cmocka_unit_test(huge_on_without_room_fails_with_the_fix),
        cmocka_unit_test(huge_on_refuses_a_size_off_the_huge_page),
        cmocka_unit_test(huge_try_without_room_falls_back),
        cmocka_unit_test(huge_off_never_asks),
    };

    if (!kernel_has_future_write_seal()) {
        printf("SKIP: kernel lacks F_SEAL_FUTURE_WRITE (Linux >= 5.1)\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
