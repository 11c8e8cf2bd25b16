/* fuzz_client_reply.c - libFuzzer target: the bytes simcached sends back, as
 * the real libsimcache-client (client/client.c, over the emulated GPU
 * backend) reads them.
 *
 * A client must survive a daemon that is buggy, old or not simcached at all.
 * Each input is one session: simcache_connect to a stand-in daemon (one
 * thread for the run, on a temporary socket), then a few API calls the input picks, covering
 * every reply the client parses: hello, gpu_attach, put_begin (host and
 * device), put_commit, put_abort, lookup, lookup_batch, get, release,
 * delete, stats, route, ping. The stand-in sends the input's reply stream.
 *
 * Input: byte 0 picks the connect options (bit 0: gpu_device 0, else none;
 * bit 1: SIMCACHE_PREFER_DEVICE); byte 1 (low 4 bits) says how many call
 * bytes follow, each picking one call (see run_call). The rest is chunks:
 * u8 flags, u16 length (little-endian), that many bytes, each sent with one
 * sendmsg. Flags: 1 an fd (a 64 MiB memfd) rides on the chunk's first
 * byte; 2 when the client has a whole reply and has not sent a request
 * since, wait for its next request and write that request's id into the
 * chunk's header; 4 also its opcode (with OP_REPLY). After the last chunk
 * the stand-in shuts its end.
 *
 * Checked on top of ASan and UBSan: results within the API's contract
 * (matches inside their arrays, strings terminated, batch counts), and no fd
 * leaked by the library once the handle is closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto.h"
#include "simcache.h"

#define DIM 4
#define BLOB 256      /* bytes of the layout below */
#define MAX_CALLS 15

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], sock_path[128];
static int listen_fd = -1;
static int trace;             /* FUZZ_TRACE=1: print each call's result (replaying a seed) */

typedef struct {
    const uint8_t *p;
    size_t n;
} stream_t;

static sem_t go, done;        /* the stand-in's turn; its session is over */
static stream_t session;      /* the replies it sends */
static void *stand_in(void *arg);
static int memfd = -1;

static void must(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_client_reply: invariant broken: %s\n", what);
        abort();
    }
}

static void at_exit(void)
{
    if (listen_fd >= 0) close(listen_fd);
    unlink(sock_path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* A reply is waited for asleep: the stand-in is another thread here. */
    setenv("SIMCACHE_SPIN_US", "0", 1);
    trace = getenv("FUZZ_TRACE") != NULL;
    snprintf(dir, sizeof dir, "%s/simcache-fuzz-client.XXXXXX",
             getenv("TMPDIR") && strlen(getenv("TMPDIR")) < 24 ? getenv("TMPDIR") : "/tmp");
    must(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(sock_path, sizeof sock_path, "%s/s.sock", dir);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", sock_path);
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    must(listen_fd >= 0 && bind(listen_fd, (struct sockaddr *)&sun, sizeof sun) == 0 &&
         listen(listen_fd, 4) == 0, "cannot listen");
    /* What every passed fd is: sparse, so any arena or staging size the
     * input names up to 64 MiB maps and writes without faulting. */
    memfd = memfd_create("fuzz-client-reply", MFD_CLOEXEC);
    must(memfd >= 0 && ftruncate(memfd, 64 << 20) == 0, "memfd");
    pthread_t t;
    must(sem_init(&go, 0, 0) == 0 && sem_init(&done, 0, 0) == 0, "sem_init");
    must(pthread_create(&t, NULL, stand_in, NULL) == 0, "stand-in thread");
    pthread_detach(t);
    atexit(at_exit);
    return 0;
}

/* ---- the stand-in daemon ---- */

/* The reply stream as the client cuts it: are we between replies? */
typedef struct {
    uint8_t hdr[PROTO_HDR_SIZE];
    size_t have;      /* header bytes of the current reply */
    uint64_t left;    /* payload bytes still to come */
    int dead;         /* a header the client refuses: it hangs up */
} cut_t;

static int at_boundary(const cut_t *c)
{
    return !c->dead && c->have == 0 && c->left == 0;
}

/* Feed n bytes sent; returns how many replies they completed. */
static int cut_feed(cut_t *c, const uint8_t *p, size_t n)
{
    int whole = 0;
    while (n && !c->dead) {
        if (c->have < PROTO_HDR_SIZE) {
            size_t k = PROTO_HDR_SIZE - c->have < n ? PROTO_HDR_SIZE - c->have : n;
            memcpy(c->hdr + c->have, p, k);
            c->have += k;
            p += k;
            n -= k;
            if (c->have == PROTO_HDR_SIZE) {
                proto_hdr_t h;
                if (proto_hdr_decode(c->hdr, PROTO_MAX_REPLY, 0, &h)) c->dead = 1;
                c->left = h.len;
                if (c->left == 0 && !c->dead) {
                    c->have = 0;
                    whole++;
                }
            }
            continue;
        }
        size_t k = c->left < n ? (size_t)c->left : n;
        c->left -= k;
        p += k;
        n -= k;
        if (c->left == 0) {
            c->have = 0;
            whole++;
        }
    }
    return whole;
}

static int read_full(int fd, void *buf, size_t n)
{
    uint8_t *b = buf;
    while (n) {
        ssize_t k = recv(fd, b, n, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Read one request frame: 0 with its header, or -1 (the client hung up). */
static int read_request(int fd, proto_hdr_t *h)
{
    uint8_t hb[PROTO_HDR_SIZE], junk[4096];
    if (read_full(fd, hb, sizeof hb)) return -1;
    must(proto_hdr_decode(hb, PROTO_DEFAULT_MAX_PAYLOAD, 0, h) == 0, "client sent a bad header");
    must(h->status == 0 && h->opcode > 0 && h->opcode < OP_MAX_, "client sent a bad request");
    for (uint32_t left = h->len; left;) {
        uint32_t k = left < sizeof junk ? left : (uint32_t)sizeof junk;
        if (read_full(fd, junk, k)) return -1;
        left -= k;
    }
    return 0;
}

static int send_chunk(int fd, const uint8_t *p, size_t n, int with_fd)
{
    while (n || with_fd) {
        struct iovec iov = { (void *)p, n };
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } u;
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (with_fd) {
            memset(&u, 0, sizeof u);
            msg.msg_control = u.buf;
            msg.msg_controllen = sizeof u.buf;
            struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(cm), &memfd, sizeof(int));
            if (n == 0) return 0;   /* an fd needs a byte to ride on */
        }
        ssize_t k = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        with_fd = 0;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void serve(stream_t *s)
{
    struct pollfd pl = { listen_fd, POLLIN, 0 };
    if (poll(&pl, 1, 2000) != 1) return;   /* the client never connected */
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    must(fd >= 0, "accept");
    cut_t cut = { 0 };
    int owed = 0;     /* a request was read and its reply is not complete yet */
    size_t pos = 0;
    uint8_t buf[65536 + PROTO_HDR_SIZE];
    while (s->n - pos >= 3) {
        uint8_t flags = s->p[pos];
        size_t len = (size_t)s->p[pos + 1] | (size_t)s->p[pos + 2] << 8;
        pos += 3;
        if (len > s->n - pos) len = s->n - pos;
        memcpy(buf, s->p + pos, len);
        pos += len;
        if ((flags & 2) && at_boundary(&cut) && !owed) {
            proto_hdr_t rq;
            if (read_request(fd, &rq)) break;
            owed = 1;
            for (size_t i = 0; i < 8 && 8 + i < len; i++) buf[8 + i] = (uint8_t)(rq.req_id >> (8 * i));
            if ((flags & 4) && len >= 8) {
                uint16_t op = (uint16_t)(rq.opcode | OP_REPLY);
                buf[6] = (uint8_t)op;
                buf[7] = (uint8_t)(op >> 8);
            }
        }
        if (send_chunk(fd, buf, len, flags & 1)) break;
        if (cut_feed(&cut, buf, len)) owed = 0;
    }
    shutdown(fd, SHUT_WR);
    /* Read whatever else the client sends until it closes. */
    uint8_t junk[4096];
    while (recv(fd, junk, sizeof junk, 0) > 0) {
    }
    close(fd);
}

/* One stand-in thread for the whole run (a thread per input grows the
 * sanitizers' bookkeeping): it serves one session per post of `go`. */
static void *stand_in(void *arg)
{
    (void)arg;
    for (;;) {
        while (sem_wait(&go) && errno == EINTR) {
        }
        serve(&session);
        sem_post(&done);
    }
    return NULL;
}

/* ---- the client side ---- */

static const float emb[DIM] = { 0.25f, -1.5f, 3.0f, 0.125f };
static const float embs[3 * DIM] = { 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0 };
static const simcache_layout_t layout = { SIMCACHE_DTYPE_BF16, 2, 1, 2, 4, 8 };   /* 256 bytes */

/* A match the library filled: a pointer into exactly the tier it names; a
 * miss holds neither a lease nor a pointer. */
static void check_match(const simcache_match_t *m, int rc)
{
    must(m->meta_len <= SIMCACHE_MAX_META, "match meta over SIMCACHE_MAX_META");
    if (m->data || m->device_ptr)
        must(m->tier == SIMCACHE_TIER_HOST ? m->data != NULL && m->device_ptr == NULL
                                           : m->data == NULL && m->device_ptr != NULL,
             "match points into the wrong tier");
    if (rc == SIMCACHE_MISS)
        must(m->lease == 0 && m->data == NULL && m->device_ptr == NULL,
             "a miss holds a lease or a pointer");
}

typedef struct {
    simcache_match_t m;           /* the last match (released by call 6) */
} session_t;

static void run_call(simcache_t *h, session_t *s, uint8_t call)
{
    uint8_t kv[BLOB];
    memset(kv, 0x5a, sizeof kv);
    void *buf;
    uint64_t token, id;
    int rc;
    switch (call % 16) {
    case 0:
        rc = simcache_lookup(h, emb, 0.8f, &s->m);
        must(rc <= SIMCACHE_MISS, "lookup returned a positive code");
        check_match(&s->m, rc);
        break;
    case 1: {
        simcache_match_t ms[3];
        rc = simcache_lookup_batch(h, embs, 3, 0.8f, ms);
        must(rc <= 3, "lookup_batch reports more hits than queries");
        int hits = 0;
        for (int i = 0; i < 3; i++) {
            check_match(&ms[i], 0);
            hits += ms[i].data != NULL || ms[i].device_ptr != NULL;
        }
        if (rc >= 0) must(hits <= rc, "lookup_batch leases more than it counts");
        break;
    }
    case 2:
        rc = simcache_get(h, 17, &s->m);
        must(rc <= 0, "get returned a positive code");
        check_match(&s->m, rc);
        break;
    case 3:
        rc = simcache_put(h, emb, &layout, kv, BLOB, SIMCACHE_HOST_MEMORY, &id);
        must(rc <= 0, "put returned a positive code");
        break;
    case 4:
        if (simcache_put_begin(h, BLOB, &buf, &token) == 0) {
            memcpy(buf, kv, BLOB);
            simcache_put_commit(h, token, emb, &layout, NULL, &id);
        }
        break;
    case 5:
        if (simcache_put_begin(h, BLOB, &buf, &token) == 0) simcache_put_abort(h, token);
        break;
    case 6:
        if (s->m.lease) simcache_release(h, &s->m);
        break;
    case 7:
        simcache_release_lease(h, 3);
        break;
    case 8:
        simcache_delete(h, 17);
        break;
    case 9: {
        simcache_stats_t st;
        simcache_stats(h, &st);
        break;
    }
    case 10: {
        simcache_node_t node;
        rc = simcache_route(h, emb, &node);
        must(memchr(node.node_id, 0, sizeof node.node_id) != NULL &&
             memchr(node.address, 0, sizeof node.address) != NULL, "route strings not terminated");
        break;
    }
    case 11:
        simcache_ping(h);
        break;
    case 12:
        if (simcache_put_begin_device(h, BLOB, &buf, &token) == 0) {
            must(buf != NULL, "device put without a buffer");
            simcache_put_commit(h, token, emb, &layout, NULL, &id);
        }
        break;
    case 13:
        if (simcache_put_begin_device(h, BLOB, &buf, &token) == 0) simcache_put_abort(h, token);
        break;
    case 14: {
        /* Two puts open at once, ended in the other order. */
        void *b2;
        uint64_t t2;
        if (simcache_put_begin(h, BLOB, &buf, &token)) break;
        if (simcache_put_begin(h, BLOB, &b2, &t2) == 0) simcache_put_abort(h, t2);
        simcache_put_abort(h, token);
        break;
    }
    default: {
        char why[128];
        simcache_gpu_tier(h, why, sizeof why);
        simcache_gpu_status(h, why, sizeof why);
        break;
    }
    }
}

static int lowest_free_fd(void)
{
    int fd = dup(0);
    if (fd >= 0) close(fd);
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    uint8_t mode = data[0];
    size_t ncalls = data[1] & 15;
    if (ncalls > size - 2) ncalls = size - 2;
    const uint8_t *calls = data + 2;
    session = (stream_t){ data + 2 + ncalls, size - 2 - ncalls };

    int fd0 = lowest_free_fd();
    sem_post(&go);

    simcache_opts_t o;
    simcache_opts_init(&o);
    o.socket_path = sock_path;
    o.model = "m";
    o.layout_fingerprint = "fp";
    o.dim = DIM;
    o.gpu_device = (mode & 1) ? 0 : -1;
    o.flags = (mode & 2) ? SIMCACHE_PREFER_DEVICE : 0;
    simcache_t *h = NULL;
    int rc = simcache_connect(&o, &h);
    must(rc <= 0, "connect returned a positive code");
    must(h != NULL || rc == SIMCACHE_EINVAL, "connect gave no handle");
    if (trace) fprintf(stderr, "  connect: %d %s\n", rc, simcache_last_error(h));
    if (rc == 0) {
        session_t sess;
        memset(&sess, 0, sizeof sess);
        for (size_t i = 0; i < ncalls; i++) {
            run_call(h, &sess, calls[i]);
            if (trace) fprintf(stderr, "  call %u: %s\n", calls[i] % 16, simcache_last_error(h));
        }
    }
    simcache_close(h);
    while (sem_wait(&done) && errno == EINTR) {
    }
    must(lowest_free_fd() == fd0, "fd leaked by the client library");
    return 0;
}
