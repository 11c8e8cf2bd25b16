/* test_gpu_ipc.c - a device arena and an interprocess event shared between
 * processes, for each arena kind the device supports.
 *
 * CUDA must not be touched before fork(), so the top process never calls
 * CUDA itself: a child probes, and one "owner" process per kind forks its
 * reader and victim before it initialises CUDA. The owner writes a pattern,
 * records the event and says so over a socketpair; the reader waits on the
 * event on its own stream, copies back and checks. The victim maps the arena
 * and is SIGKILLed; the owner's arena must still work afterwards.
 * Exits 77 (skip) without a CUDA device.
 */
#include "gpu.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define ARENA_BYTES (8u << 20)

#define FAIL(...) do { fprintf(stderr, "[%d] ", (int)getpid()); fprintf(stderr, __VA_ARGS__); \
        fprintf(stderr, " (%s)\n", gpu_last_error()); _exit(1); } while (0)

struct share_msg {
    gpu_arena_handle_t arena;
    unsigned char event[GPU_IPC_HANDLE_BYTES];
    uint64_t pattern_bytes;
};

static unsigned char pattern_byte(size_t i, unsigned seed) { return (unsigned char)((i * 131u + seed) & 0xff); }

/* One datagram, with fd (if >= 0) attached by SCM_RIGHTS. */
static int send_msg(int sock, const void *buf, size_t len, int fd)
{
    struct iovec iov = {(void *)buf, len};
    union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } ctl;
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    memset(&ctl, 0, sizeof ctl);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (fd >= 0) {
        mh.msg_control = ctl.b;
        mh.msg_controllen = sizeof ctl.b;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    }
    return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

static int recv_msg(int sock, void *buf, size_t len, int *fd)
{
    struct iovec iov = {buf, len};
    union { char b[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } ctl;
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.b;
    mh.msg_controllen = sizeof ctl.b;
    if (fd) *fd = -1;
    ssize_t r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    if (r != (ssize_t)len) return -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && fd)
            memcpy(fd, CMSG_DATA(cm), sizeof *fd);
    return 0;
}

static gpu_arena_t *open_shared(int sock, struct share_msg *m, gpu_event_t **ev)
{
    int fd = -1;
    if (recv_msg(sock, m, sizeof *m, &fd) < 0) FAIL("recv share_msg");
    gpu_arena_t *a = NULL;
    if (gpu_arena_open(&m->arena, fd, 1, &a) < 0) FAIL("gpu_arena_open kind %u", m->arena.kind);
    if (fd >= 0) close(fd);
    if (ev && gpu_event_open(m->event, ev) < 0) FAIL("gpu_event_open");
    return a;
}

/* Reader: open, wait for "recorded", GPU-wait on the event, copy back. */
static void reader(int sock)
{
    alarm(60);
    struct share_msg m;
    gpu_event_t *ev = NULL;
    gpu_arena_t *a = open_shared(sock, &m, &ev);
    printf("reader: opened kind %d, read-only mapping: %s\n", gpu_arena_kind(a),
           gpu_arena_read_only(a) ? "yes" : "no");
    char go;
    if (send_msg(sock, "o", 1, -1) < 0 || recv_msg(sock, &go, 1, NULL) < 0) FAIL("handshake");
    gpu_stream_t *s = NULL;
    if (gpu_stream_new(&s) < 0) FAIL("gpu_stream_new");
    if (gpu_event_wait(ev, s) < 0) FAIL("gpu_event_wait");
    unsigned char *buf = malloc(m.pattern_bytes);
    if (!buf) FAIL("malloc");
    if (gpu_copy_d2h(buf, gpu_arena_ptr(a), m.pattern_bytes, s) < 0) FAIL("gpu_copy_d2h");
    if (gpu_stream_sync(s) < 0) FAIL("gpu_stream_sync");
    for (size_t i = 0; i < m.pattern_bytes; i++)
        if (buf[i] != pattern_byte(i, 7)) FAIL("byte %zu: got %u want %u", i, buf[i], pattern_byte(i, 7));
    free(buf);
    gpu_stream_free(s);
    gpu_event_close(ev);
    gpu_arena_close(a);
    _exit(0);
}

/* Victim: map the arena, say so, then wait to be killed. */
static void victim(int sock)
{
    alarm(60);
    struct share_msg m;
    gpu_arena_t *a = open_shared(sock, &m, NULL);
    (void)a;
    if (send_msg(sock, "m", 1, -1) < 0) FAIL("send mapped");
    for (;;) pause();
}

static void share(int sock, gpu_arena_t *a, const unsigned char evh[GPU_IPC_HANDLE_BYTES])
{
    struct share_msg m;
    memset(&m, 0, sizeof m);
    if (gpu_arena_export(a, &m.arena) < 0) FAIL("gpu_arena_export");
    memcpy(m.event, evh, GPU_IPC_HANDLE_BYTES);
    m.pattern_bytes = ARENA_BYTES;
    int fd = gpu_arena_kind(a) == GPU_ARENA_VMM ? gpu_arena_export_fd(a) : -1;
    if (gpu_arena_kind(a) == GPU_ARENA_VMM && fd < 0) FAIL("gpu_arena_export_fd");
    if (send_msg(sock, &m, sizeof m, fd) < 0) FAIL("send share_msg");
    if (fd >= 0) close(fd);
}

static int wait_child(pid_t pid)
{
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return st;
}

/* Owner for one arena kind. Returns via _exit: 0 ok, 1 failure. */
static void owner(unsigned flags)
{
    alarm(90);
    int rs[2], vs[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, rs) < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, vs) < 0)
        FAIL("socketpair");
    pid_t rpid = fork();
    if (rpid == 0) { close(rs[0]); close(vs[0]); close(vs[1]); reader(rs[1]); }
    pid_t vpid = fork();
    if (vpid == 0) { close(vs[0]); close(rs[0]); close(rs[1]); victim(vs[1]); }
    if (rpid < 0 || vpid < 0) FAIL("fork");
    close(rs[1]);
    close(vs[1]);

    /* CUDA from here on, in this process only */
    gpu_arena_t *a = NULL;
    if (gpu_arena_new(0, ARENA_BYTES, flags, &a) < 0) FAIL("gpu_arena_new flags %u", flags);
    printf("owner: flags %u -> kind %d, %zu bytes, ptr is device: %d\n", flags, gpu_arena_kind(a),
           gpu_arena_size(a), gpu_pointer_is_device(gpu_arena_ptr(a)));
    if (!gpu_pointer_is_device(gpu_arena_ptr(a))) FAIL("arena pointer not reported as device memory");
    gpu_event_t *ev = NULL;
    unsigned char evh[GPU_IPC_HANDLE_BYTES];
    if (gpu_event_new(&ev, evh) < 0) FAIL("gpu_event_new");

    unsigned char *pat = NULL, *back = malloc(ARENA_BYTES);
    if (posix_memalign((void **)&pat, 4096, ARENA_BYTES) != 0 || !back) FAIL("alloc");
    for (size_t i = 0; i < ARENA_BYTES; i++) pat[i] = pattern_byte(i, 7);
    if (gpu_host_register(pat, ARENA_BYTES, 0) < 0) FAIL("gpu_host_register");

    /* reader: open first, then write + record, then tell it */
    share(rs[0], a, evh);
    char c;
    if (recv_msg(rs[0], &c, 1, NULL) < 0) FAIL("reader did not open");
    gpu_stream_t *s = NULL;
    if (gpu_stream_new(&s) < 0) FAIL("gpu_stream_new");
    if (gpu_copy_h2d(gpu_arena_ptr(a), pat, ARENA_BYTES, s) < 0) FAIL("gpu_copy_h2d");
    if (gpu_event_record(ev, s) < 0) FAIL("gpu_event_record");
    if (send_msg(rs[0], "r", 1, -1) < 0) FAIL("send recorded");
    int st = wait_child(rpid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) FAIL("reader failed (status %#x)", st);

    /* victim: maps the arena and dies by SIGKILL while mapped */
    share(vs[0], a, evh);
    if (recv_msg(vs[0], &c, 1, NULL) < 0) FAIL("victim did not map");
    kill(vpid, SIGKILL);
    st = wait_child(vpid);
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) FAIL("victim status %#x", st);

    /* the owner's arena survives: read it back, rewrite, read again */
    if (gpu_copy_d2h(back, gpu_arena_ptr(a), ARENA_BYTES, s) < 0 || gpu_stream_sync(s) < 0)
        FAIL("d2h after victim died");
    if (memcmp(back, pat, ARENA_BYTES) != 0) FAIL("pattern changed after victim died");
    for (size_t i = 0; i < ARENA_BYTES; i++) pat[i] = pattern_byte(i, 99);
    if (gpu_copy_h2d(gpu_arena_ptr(a), pat, ARENA_BYTES, s) < 0 ||
        gpu_copy_d2h(back, gpu_arena_ptr(a), ARENA_BYTES, s) < 0 || gpu_stream_sync(s) < 0)
        FAIL("round trip after victim died");
    if (memcmp(back, pat, ARENA_BYTES) != 0) FAIL("round trip mismatch after victim died");

    gpu_stream_free(s);
    if (gpu_host_unregister(pat) < 0) FAIL("gpu_host_unregister");
    free(pat);
    free(back);
    gpu_event_free(ev);
    gpu_arena_free(a);
    printf("owner: flags %u ok\n", flags);
    _exit(0);
}

static int run_in_child(void (*fn)(unsigned), unsigned arg)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) fn(arg);
    int st = wait_child(pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static void probe(unsigned unused)
{
    char why[256];
    int n = gpu_probe(why, sizeof why);
    printf("%s\n", why);
    _exit(n > 0 ? 0 : 77);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = run_in_child(probe, 0);
    if (rc == 77) {
        printf("SKIP: no CUDA device\n");
        return 77;
    }
    if (rc != 0) return 1;
    int failed = 0;
    /* PREFER_VMM falls back to legacy where VMM fds are unsupported; the
     * second run always covers legacy IPC */
    if (run_in_child(owner, GPU_ARENA_PREFER_VMM) != 0) { fprintf(stderr, "PREFER_VMM failed\n"); failed = 1; }
    if (run_in_child(owner, GPU_ARENA_FORCE_LEGACY) != 0) { fprintf(stderr, "FORCE_LEGACY failed\n"); failed = 1; }
    return failed;
}
