/* client.c - libsimcache-client: the socket, the codec and the mappings.
 *
 * One request is in flight per handle at a time (a mutex serialises calls),
 * so each reply is read right after its request and matched by request id.
 * The host arena arrives once, with the hello reply, and is mapped read-only
 * for the life of the handle: a hit is an offset into it, so the read path
 * copies nothing. Puts go through a staging memfd the daemon creates for this
 * client alone; the client writes the KV there and commits.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "gpu.h"
#include "proto.h"
#include "simcache.h"

#define MAX_STAGED 64

typedef struct {
    uint64_t token;
    uint64_t id;        /* the daemon's staging buffer id */
    void *map;
    uint64_t size;      /* bytes mapped (the buffer's size) */
} staged_t;

/* How long a request waits for its reply awake before it sleeps (us). */
#define DEFAULT_SPIN_US 200

struct simcache {
    pthread_mutex_t lock;
    int fd;
    uint32_t dim;
    int timeout_ms;
    int spin_us;                 /* wait for a reply this long awake (see wait_fd) */
    uint64_t next_req;
    const uint8_t *arena;
    uint64_t arena_size;
    uint32_t max_payload;
    float default_threshold;
    proto_wr_t out;
    uint8_t *in;
    size_t in_cap;
    int pending_fd;              /* an fd that came with the last reply, or -1 */
    staged_t staged[MAX_STAGED];
    staged_t spare;              /* buffer of the last finished put (token 0; id 0: none) */
    int spare_fd;                /* the spare's memfd while it is not mapped (a failed
                                  * mmap, retried when a put reuses it), else -1 */
    /* GPU (opts.gpu_device >= 0): device copies work when gpu_ok; the arena
     * mapping is pinned (registered read-only) when arena_pinned. */
    int gpu_device;
    int gpu_ok;
    int arena_pinned;
    char gpu_why[160];           /* why device calls fail, when !gpu_ok */
    /* The daemon's GPU tier (gpu_attach): its arena mapped read-only, and
     * the device staging buffer of this handle's device puts. */
    gpu_arena_t *garena;
    gpu_arena_t *gstage;
    uint64_t gstage_id;
    /* The device staging buffer the daemon gave last while it is not mapped
     * here (its open failed): its region, and fd for VMM, to open when the
     * next device put reuses it. gpending_id 0: none. */
    proto_gpu_region_t gpending;
    int gpending_fd;
    uint64_t gpending_id;
    char gtier_why[PROTO_MAX_ERRMSG + 64]; /* why there is no GPU tier, when !garena */
};

/* The detail of the last failure lives in a thread-local slot, like errno:
 * threads sharing a handle never read each other's messages. */
static __thread char last_err[PROTO_MAX_ERRMSG + 64];

const char *simcache_last_error(const simcache_t *h)
{
    (void)h;
    return last_err;
}

static int fail(simcache_t *h, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(simcache_t *h, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)h;
    vsnprintf(last_err, sizeof last_err, fmt, ap);
    va_end(ap);
    return code;
}

void simcache_opts_init(simcache_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->gpu_device = -1;
}

static void default_socket(char *out, size_t n)
{
    const char *env = getenv("SIMCACHE_SOCKET");
    const char *x = getenv("XDG_RUNTIME_DIR");
    if (env && *env) snprintf(out, n, "%s", env);
    else if (x && x[0] == '/' && strlen(x) < 64) snprintf(out, n, "%s/simcache/simcached.sock", x);
    else snprintf(out, n, "/tmp/simcache-%u/simcached.sock", (unsigned)getuid());
}

/* ---- raw I/O ---- */

static uint64_t mono_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* Wait until the socket is ready for ev. A reply usually comes within tens
 * of microseconds; a thread that sleeps for it pays a wake-up on top, which
 * on a virtual machine whose CPU went idle costs as much again. So a reply
 * is first waited for awake, polling without sleeping, for up to spin_us
 * (SIMCACHE_SPIN_US, default DEFAULT_SPIN_US; 0 turns this off), giving
 * the CPU up between polls to whatever else is runnable. */
static int wait_fd(simcache_t *h, short ev)
{
    struct pollfd p = { h->fd, ev, 0 };
    int rc;
    if (ev == POLLIN && h->spin_us > 0) {
        uint64_t until = mono_us() + (uint64_t)h->spin_us;
        do {
            rc = poll(&p, 1, 0);
            if (rc > 0) return 0;
            sched_yield(); /* the daemon may be waiting for this CPU */
        } while (mono_us() < until);
    }
    if (h->timeout_ms <= 0) return 0;
    do rc = poll(&p, 1, h->timeout_ms);
    while (rc < 0 && errno == EINTR);
    if (rc == 0) return fail(h, SIMCACHE_EIO, "timed out after %d ms", h->timeout_ms);
    if (rc < 0) return fail(h, SIMCACHE_EIO, "poll: %s", strerror(errno));
    return 0;
}

static int send_all(simcache_t *h, const uint8_t *p, size_t n)
{
    while (n) {
        int rc = wait_fd(h, POLLOUT);
        if (rc) return rc;
        ssize_t k = send(h->fd, p, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR) continue;
            return fail(h, errno == EPIPE ? SIMCACHE_ECLOSED : SIMCACHE_EIO, "send: %s", strerror(errno));
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Read exactly n bytes, collecting any fd that rides along. */
static int recv_all(simcache_t *h, uint8_t *p, size_t n)
{
    while (n) {
        int rc = wait_fd(h, POLLIN);
        if (rc) return rc;
        struct iovec iov = { p, n };
        union {
            char buf[CMSG_SPACE(4 * sizeof(int))];
            struct cmsghdr align;
        } u;
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                              .msg_controllen = sizeof u.buf };
        ssize_t k = recvmsg(h->fd, &msg, MSG_CMSG_CLOEXEC);
        if (k < 0) {
            if (errno == EINTR) continue;
            return fail(h, SIMCACHE_EIO, "recv: %s", strerror(errno));
        }
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
            size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < nfd; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
                if (h->pending_fd < 0) h->pending_fd = fd;
                else close(fd);
            }
        }
        if (k == 0) return fail(h, SIMCACHE_ECLOSED, "daemon closed the connection");
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* The longest reply: a lookup_batch of SIMCACHE_MAX_BATCH hits, each a u32
 * flag and a match record (68 bytes) with full metadata. */
_Static_assert(4 + (uint64_t)SIMCACHE_MAX_BATCH * (4 + 68 + SIMCACHE_MAX_META) <= PROTO_MAX_REPLY,
               "PROTO_MAX_REPLY below the longest reply");

/* Send the frame built in h->out (opcode op) and read its reply into h->in.
 * On success *len is the payload length. A daemon error reply becomes the
 * return code with its message in the thread's error slot. */
static int roundtrip(simcache_t *h, uint16_t op, size_t *len)
{
    if (h->out.err) return fail(h, SIMCACHE_ENOMEM, "out of memory building the request");
    if (h->fd < 0) return fail(h, SIMCACHE_ECLOSED, "connection is closed");
    uint64_t req = ++h->next_req;
    /* Patch the request id in place: frames are built with id 0. */
    for (int i = 0; i < 8; i++) h->out.buf[8 + i] = (uint8_t)(req >> (8 * i));
    int rc = send_all(h, h->out.buf, h->out.len);
    proto_wr_reset(&h->out);
    uint8_t hb[PROTO_HDR_SIZE];
    if (rc) {
        /* A daemon that refuses the connection (busy, uid not allowed)
         * writes one error frame and closes, possibly before our request
         * went out: read that frame if it is there, it says why. */
        char keep[sizeof last_err];
        memcpy(keep, last_err, sizeof keep);
        int saved_timeout = h->timeout_ms;
        h->timeout_ms = 100;
        if (recv_all(h, hb, sizeof hb)) {
            h->timeout_ms = saved_timeout;
            memcpy(last_err, keep, sizeof keep);
            goto broken;
        }
        h->timeout_ms = saved_timeout;
    } else if ((rc = recv_all(h, hb, sizeof hb))) {
        goto broken;
    }
    proto_hdr_t hdr;
    rc = proto_hdr_decode(hb, PROTO_MAX_REPLY, 0, &hdr);
    if (rc == SIMCACHE_ETOOBIG) {
        rc = fail(h, SIMCACHE_EPROTO,
                  "%" PRIu32 "-byte reply from the daemon is over the protocol's limit (%u bytes)",
                  hdr.len, PROTO_MAX_REPLY);
        goto broken;
    }
    if (rc) {
        rc = fail(h, SIMCACHE_EPROTO, "bad reply header from the daemon");
        goto broken;
    }
    if (hdr.len > h->in_cap) {
        uint8_t *b = realloc(h->in, hdr.len);
        if (!b) {
            rc = fail(h, SIMCACHE_ENOMEM, "out of memory for a %" PRIu32 "-byte reply", hdr.len);
            goto broken;
        }
        h->in = b;
        h->in_cap = hdr.len;
    }
    if ((rc = recv_all(h, h->in, hdr.len))) goto broken;
    if (hdr.status < 0) {
        proto_rd_t r;
        uint16_t n;
        proto_rd_init(&r, h->in, hdr.len);
        const char *m = proto_rd_str(&r, PROTO_MAX_ERRMSG, &n);
        fail(h, hdr.status, "%s: %.*s", proto_op_name(op), m ? (int)n : 0, m ? m : "");
        /* A refusal of the connection itself (busy, not allowed) comes with
         * request id 0 whatever we sent. */
        if (hdr.req_id != req && hdr.req_id != 0) goto desync;
        return hdr.status;
    }
    if (hdr.req_id != req || hdr.opcode != (op | OP_REPLY)) goto desync;
    *len = hdr.len;
    return 0;
desync:
    rc = fail(h, SIMCACHE_EPROTO, "reply out of step with requests (got id %" PRIu64 ")", hdr.req_id);
broken:
    /* After a transport failure the stream position is unknown: close it. */
    close(h->fd);
    h->fd = -1;
    return rc;
}

static size_t begin(simcache_t *h, uint16_t op)
{
    proto_wr_reset(&h->out);
    return proto_wr_frame_begin(&h->out, op, 0, 0);
}

static int take_fd(simcache_t *h)
{
    int fd = h->pending_fd;
    h->pending_fd = -1;
    return fd;
}

/* Read the device region at r into *g; fd is the one that came with the
 * reply (a VMM region has one, a legacy one none). 0 or SIMCACHE_EPROTO. */
static int read_region(simcache_t *h, proto_rd_t *r, int fd, proto_gpu_region_t *g)
{
    proto_rd_gpu_region(r, g);
    if (r->err || (g->kind == GPU_ARENA_VMM) != (fd >= 0))
        return fail(h, SIMCACHE_EPROTO, "bad GPU region in reply");
    return 0;
}

/* Map device region g (fd: a VMM region's; the caller keeps it). */
static int open_region(simcache_t *h, const proto_gpu_region_t *g, int fd, int read_only,
                       gpu_arena_t **out)
{
    gpu_arena_handle_t gh = { .kind = g->kind, .device = g->device, .bytes = g->bytes };
    memcpy(gh.ipc, g->ipc, sizeof gh.ipc);
    int rc = gpu_arena_open(&gh, fd, read_only, out);
    if (rc) return fail(h, rc == -ENODEV ? SIMCACHE_ENODEV : SIMCACHE_EIO,
                        "cannot map the daemon's GPU memory: %s", gpu_last_error());
    return 0;
}

/* ---- connect / close ---- */

static void spare_drop(simcache_t *h);

/* With a device: make it current and pin the arena mapping for it, so
 * host-tier hits copy to the GPU by DMA. Without one the handle still works
 * on the host tier; device calls then fail with SIMCACHE_ENODEV and why. */
static void gpu_attach(simcache_t *h, int device)
{
    h->gpu_device = device;
    if (device < 0) {
        snprintf(h->gpu_why, sizeof h->gpu_why, "no gpu_device given at connect");
        return;
    }
    char why[128];
    int n = gpu_probe(why, sizeof why);
    if (n <= device) {
        snprintf(h->gpu_why, sizeof h->gpu_why, "device %d unavailable: %s", device, why);
        return;
    }
    if (gpu_set_device(device)) {
        snprintf(h->gpu_why, sizeof h->gpu_why, "device %d: %s", device, gpu_last_error());
        return;
    }
    h->gpu_ok = 1;
    /* Read-only registration fails on devices without it: copies then go
     * through CUDA's staging, slower but correct. */
    h->arena_pinned = gpu_host_register((void *)h->arena, h->arena_size, 1) == 0;
}

/* With a usable device: map the daemon's GPU tier, if it has one on this
 * device. Without it the handle works as before (device puts staged through
 * the host, host-tier hits); gtier_why says why. */
static void gtier_attach(simcache_t *h, uint32_t flags)
{
    if (!h->gpu_ok) {
        snprintf(h->gtier_why, sizeof h->gtier_why, "%s", h->gpu_why);
        return;
    }
    size_t off = begin(h, OP_GPU_ATTACH);
    proto_wr_u32(&h->out, (uint32_t)h->gpu_device);
    proto_wr_u32(&h->out, flags & SIMCACHE_PREFER_DEVICE ? PROTO_ATTACH_PREFER_DEVICE : 0);
    proto_wr_frame_end(&h->out, off);
    size_t len;
    int rc = roundtrip(h, OP_GPU_ATTACH, &len);
    int fd = take_fd(h);
    if (rc == 0) {
        proto_rd_t r;
        proto_gpu_region_t g;
        proto_rd_init(&r, h->in, len);
        rc = read_region(h, &r, fd, &g);
        if (rc == 0 && proto_rd_done(&r)) rc = fail(h, SIMCACHE_EPROTO, "bad gpu_attach reply");
        if (rc == 0) rc = open_region(h, &g, fd, 1, &h->garena);
    }
    if (fd >= 0) close(fd);
    if (rc) snprintf(h->gtier_why, sizeof h->gtier_why, "%s", last_err);
}

int simcache_connect(const simcache_opts_t *o, simcache_t **out)
{
    if (!out) return SIMCACHE_EINVAL;
    *out = NULL;
    if (!o || !o->model || !o->layout_fingerprint || o->dim == 0 || o->dim > SIMCACHE_MAX_DIM)
        return SIMCACHE_EINVAL;
    size_t ml = strlen(o->model), ll = strlen(o->layout_fingerprint);
    size_t tl = o->tenant ? strlen(o->tenant) : 0;
    if (ml > UINT16_MAX || ll > UINT16_MAX || tl > UINT16_MAX) return SIMCACHE_ENAMESPACE;
    simcache_t *h = calloc(1, sizeof *h);
    if (!h) return SIMCACHE_ENOMEM;
    pthread_mutex_init(&h->lock, NULL);
    h->fd = -1;
    h->pending_fd = -1;
    h->spare_fd = -1;
    h->gpending_fd = -1;
    h->dim = o->dim;
    h->timeout_ms = o->timeout_ms;
    h->spin_us = DEFAULT_SPIN_US;
    const char *spin = getenv("SIMCACHE_SPIN_US");
    if (spin && *spin) {
        char *end;
        long v = strtol(spin, &end, 10);
        if (*end == 0 && v >= 0 && v <= 100000) h->spin_us = (int)v;
    }
    proto_wr_init(&h->out);
    *out = h;

    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    char path[sizeof sun.sun_path + 1];
    if (o->socket_path) snprintf(path, sizeof path, "%s", o->socket_path);
    else default_socket(path, sizeof path);
    if (strlen(path) >= sizeof sun.sun_path) return fail(h, SIMCACHE_EINVAL, "socket path too long");
    strcpy(sun.sun_path, path);
    h->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (h->fd < 0) return fail(h, SIMCACHE_EIO, "socket: %s", strerror(errno));
    if (connect(h->fd, (struct sockaddr *)&sun, sizeof sun)) {
        int e = errno;
        close(h->fd);
        h->fd = -1;
        return fail(h, SIMCACHE_EIO, "connect %s: %s (is simcached running?)", path, strerror(e));
    }
    proto_hello_t hello = {
        .min_version = PROTO_VERSION_MIN, .max_version = PROTO_VERSION, .dim = o->dim,
        .gpu_device = o->gpu_device, .model = o->model, .model_len = (uint16_t)ml,
        .layout_fp = o->layout_fingerprint, .layout_fp_len = (uint16_t)ll,
        .tenant = o->tenant ? o->tenant : "", .tenant_len = (uint16_t)tl,
    };
    size_t off = begin(h, OP_HELLO);
    proto_wr_hello(&h->out, &hello);
    proto_wr_frame_end(&h->out, off);
    size_t len;
    int rc = roundtrip(h, OP_HELLO, &len);
    if (rc) {
        int fd = take_fd(h);
        if (fd >= 0) close(fd);
        if (h->fd >= 0) close(h->fd);
        h->fd = -1;
        return rc;
    }
    proto_hello_reply_t hr;
    proto_rd_t r;
    proto_rd_init(&r, h->in, len);
    int fd = take_fd(h);
    if (proto_rd_hello_reply(&r, &hr) || fd < 0) {
        if (fd >= 0) close(fd);
        close(h->fd);
        h->fd = -1;
        return fail(h, SIMCACHE_EPROTO, "bad hello reply (no arena)");
    }
    void *map = mmap(NULL, hr.arena_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        close(h->fd);
        h->fd = -1;
        return fail(h, SIMCACHE_EIO, "mmap arena: %s", strerror(errno));
    }
    h->arena = map;
    h->arena_size = hr.arena_size;
    h->max_payload = hr.max_payload;
    h->default_threshold = hr.default_threshold;
    gpu_attach(h, o->gpu_device);
    if (h->gpu_ok && (hr.tiers & 2)) gtier_attach(h, o->flags);
    else snprintf(h->gtier_why, sizeof h->gtier_why, "%s",
                  h->gpu_ok ? "the daemon has no GPU tier" : h->gpu_why);
    last_err[0] = 0;
    return 0;
}

void simcache_close(simcache_t *h)
{
    if (!h) return;
    /* Device mappings first: the daemon frees its staging buffers when the
     * connection ends, and a legacy-IPC importer must be gone by then. */
    gpu_arena_close(h->gstage);
    gpu_arena_close(h->garena);
    if (h->gpending_fd >= 0) close(h->gpending_fd);
    if (h->fd >= 0) close(h->fd);
    if (h->pending_fd >= 0) close(h->pending_fd);
    for (int i = 0; i < MAX_STAGED; i++)
        if (h->staged[i].token && h->staged[i].map) munmap(h->staged[i].map, h->staged[i].size);
    spare_drop(h);
    if (h->arena_pinned) gpu_host_unregister((void *)h->arena);
    if (h->arena) munmap((void *)h->arena, h->arena_size);
    proto_wr_free(&h->out);
    free(h->in);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* ---- puts ---- */

static staged_t *find_staged(simcache_t *h, uint64_t token)
{
    for (int i = 0; i < MAX_STAGED; i++)
        if (h->staged[i].token == token) return &h->staged[i];
    return NULL;
}

/* The put_begin round trip: on success *r is positioned after the reply's
 * four fields (a device reply's GPU region follows), *p holds them and *fd
 * the fd that came with the reply (or -1; the caller owns it). */
typedef struct {
    uint64_t token, staging_id, staging_size;
    uint32_t fresh;
} put_reply_t;

static int put_begin_request(simcache_t *h, uint64_t size, uint32_t flags, proto_rd_t *r,
                             put_reply_t *p, int *fd)
{
    size_t off = begin(h, OP_PUT_BEGIN);
    proto_wr_u64(&h->out, size);
    proto_wr_u32(&h->out, flags);
    proto_wr_frame_end(&h->out, off);
    size_t len;
    int rc = roundtrip(h, OP_PUT_BEGIN, &len);
    *fd = take_fd(h);
    if (rc) {
        if (*fd >= 0) close(*fd);
        *fd = -1;
        return rc;
    }
    proto_rd_init(r, h->in, len);
    p->token = proto_rd_u64(r);
    p->staging_id = proto_rd_u64(r);
    p->staging_size = proto_rd_u64(r);
    p->fresh = proto_rd_u32(r);
    return 0;
}

/* The daemon's spare is gone: drop ours (unmap it, or close the fd kept to
 * map it). */
static void spare_drop(simcache_t *h)
{
    if (h->spare.map) munmap(h->spare.map, h->spare.size);
    if (h->spare_fd >= 0) close(h->spare_fd);
    memset(&h->spare, 0, sizeof h->spare);
    h->spare_fd = -1;
}

/* The daemon kept buffer id as this connection's spare, dropping the
 * previous one: so do we. map NULL: not mapped here, fd (if >= 0, consumed)
 * is kept to map it when a put reuses it. */
static void spare_set(simcache_t *h, uint64_t id, void *map, uint64_t size, int fd)
{
    spare_drop(h);
    h->spare = (staged_t){ 0, id, map, size };
    h->spare_fd = fd;
}

/* The put_abort round trip: 0 with *kept from the reply, or an error. */
static int abort_request(simcache_t *h, uint64_t token, uint32_t *kept)
{
    *kept = 0;
    size_t off = begin(h, OP_PUT_ABORT);
    proto_wr_u64(&h->out, token);
    proto_wr_frame_end(&h->out, off);
    size_t len;
    int rc = roundtrip(h, OP_PUT_ABORT, &len);
    if (rc) return rc;
    proto_rd_t r;
    proto_rd_init(&r, h->in, len);
    *kept = proto_rd_u32(&r);
    if (proto_rd_done(&r)) {
        *kept = 0;
        return fail(h, SIMCACHE_EPROTO, "bad put_abort reply");
    }
    return 0;
}

/* The daemon began put `token` but this side cannot take it up (a bad
 * reply, a buffer it cannot map): abort it there, or the daemon holds it
 * until the connection closes. The error that got us here stays the one
 * reported. Returns the abort reply's kept (0 when the abort failed; a
 * failed transport closed the connection, which ends the put too). */
static uint32_t put_cancel(simcache_t *h, uint64_t token)
{
    char keep[sizeof last_err];
    memcpy(keep, last_err, sizeof keep);
    uint32_t kept;
    abort_request(h, token, &kept);
    memcpy(last_err, keep, sizeof keep);
    return kept;
}

/* Cancel host put t, begun in buffer sid of ssize bytes (fresh as its reply
 * said; fd, consumed, the memfd that came with it or was kept for it), and
 * follow the daemon's spare rule: with kept the buffer becomes the spare,
 * with its fd, so that a put that reuses it maps it then; without, a reused
 * spare is gone. */
static void put_begin_undo(simcache_t *h, uint64_t t, uint64_t sid, uint64_t ssize,
                           uint32_t fresh, int fd)
{
    if (put_cancel(h, t)) {
        spare_set(h, sid, NULL, ssize, fd);
        return;
    }
    if (fd >= 0) close(fd);
    if (!fresh) spare_drop(h);
}

/* A put_begin reply too short to name its put: the daemon may hold a put
 * this side cannot abort. Closing the connection ends it. */
static int put_reply_unnamed(simcache_t *h, int fd)
{
    if (fd >= 0) close(fd);
    close(h->fd);
    h->fd = -1;
    return fail(h, SIMCACHE_EPROTO, "bad put_begin reply (no token); connection closed");
}

static int put_begin_locked(simcache_t *h, uint64_t size, void **buf, uint64_t *token)
{
    staged_t *slot = find_staged(h, 0);
    if (!slot) return fail(h, SIMCACHE_ELIMIT, "%d puts already begun on this handle", MAX_STAGED);
    proto_rd_t r;
    put_reply_t p;
    int fd;
    int rc = put_begin_request(h, size, 0, &r, &p, &fd);
    if (rc) return rc;
    uint64_t t = p.token, sid = p.staging_id, ssize = p.staging_size;
    uint32_t fresh = p.fresh;
    if (r.err || t == 0) return put_reply_unnamed(h, fd);
    int have_spare = sid != 0 && h->spare.id == sid && h->spare.size == ssize &&
                     (h->spare.map || h->spare_fd >= 0);
    if (proto_rd_done(&r) || ssize < size || (fresh != 0) != (fd >= 0) || (!fresh && !have_spare)) {
        rc = fail(h, SIMCACHE_EPROTO, "bad put_begin reply");
        if (!fresh && fd >= 0) {
            close(fd);
            fd = -1;
        }
        put_begin_undo(h, t, sid, ssize, fresh, fd);
        return rc;
    }
    void *map = NULL;
    if (!fresh) {
        /* The daemon reused the buffer of our last put: mapped already, or
         * its fd kept from a failed mmap. */
        map = h->spare.map;
        fd = h->spare_fd;
        memset(&h->spare, 0, sizeof h->spare);
        h->spare_fd = -1;
    }
    if (!map) {
        map = mmap(NULL, ssize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) {
            rc = fail(h, SIMCACHE_EIO, "mmap staging: %s", strerror(errno));
            put_begin_undo(h, t, sid, ssize, fresh, fd);
            return rc;
        }
        close(fd);
    }
    *slot = (staged_t){ t, sid, map, ssize };
    *buf = map;
    *token = t;
    return 0;
}

/* A put ended. If the daemon kept its buffer for the next put, so do we (the
 * daemon drops its previous spare at the same moment); else unmap it. */
static void unstage(simcache_t *h, staged_t *s, uint32_t kept)
{
    if (!s->map) {
        /* A device put: its staging buffer is h->gstage, kept for the next. */
    } else if (kept) {
        spare_set(h, s->id, s->map, s->size, -1);
    } else {
        munmap(s->map, s->size);
    }
    memset(s, 0, sizeof *s);
}

static int put_commit_locked(simcache_t *h, uint64_t token, const float *emb,
                             const simcache_layout_t *layout, const simcache_put_opts_t *po,
                             uint64_t *id)
{
    staged_t *s = find_staged(h, token);
    if (!s || token == 0) return fail(h, SIMCACHE_ENOPUT, "no put %" PRIu64 " begun on this handle", token);
    uint32_t meta_len = po ? po->meta_len : 0;
    if (meta_len && !po->meta) return fail(h, SIMCACHE_EINVAL, "meta_len %u with no metadata", meta_len);
    if (meta_len > SIMCACHE_MAX_META) return fail(h, SIMCACHE_ETOOBIG, "metadata over %u bytes", SIMCACHE_MAX_META);
    size_t off = begin(h, OP_PUT_COMMIT);
    proto_wr_u64(&h->out, token);
    proto_wr_u32(&h->out, po ? po->flags : 0);
    proto_wr_layout(&h->out, layout);
    proto_wr_u32(&h->out, meta_len);
    proto_wr_bytes(&h->out, meta_len ? po->meta : NULL, meta_len);
    proto_wr_embedding(&h->out, emb, h->dim);
    proto_wr_frame_end(&h->out, off);
    size_t len;
    int rc = roundtrip(h, OP_PUT_COMMIT, &len);
    /* A rejected commit leaves the put open on the daemon: the caller may fix
     * the arguments and commit again, or abort. */
    if (rc) return rc;
    proto_rd_t r;
    proto_rd_init(&r, h->in, len);
    uint64_t v = proto_rd_u64(&r);
    uint32_t kept = proto_rd_u32(&r);
    unstage(h, s, kept && !r.err);
    if (proto_rd_done(&r)) return fail(h, SIMCACHE_EPROTO, "bad put_commit reply");
    if (id) *id = v;
    return 0;
}

static int put_abort_locked(simcache_t *h, uint64_t token)
{
    staged_t *s = find_staged(h, token);
    if (!s || token == 0) return fail(h, SIMCACHE_ENOPUT, "no put %" PRIu64 " begun on this handle", token);
    uint32_t kept;
    int rc = abort_request(h, token, &kept);
    unstage(h, s, kept);
    return rc;
}

int simcache_put_begin(simcache_t *h, uint64_t size, void **buf, uint64_t *token)
{
    if (!h) return SIMCACHE_EINVAL;
    if (!buf || !token || size == 0) return fail(h, SIMCACHE_EINVAL, "put_begin: NULL buf/token or size 0");
    pthread_mutex_lock(&h->lock);
    int rc = put_begin_locked(h, size, buf, token);
    pthread_mutex_unlock(&h->lock);
    return rc;
}

int simcache_put_commit(simcache_t *h, uint64_t token, const float *emb,
                        const simcache_layout_t *layout, const simcache_put_opts_t *opts,
                        uint64_t *id)
{
    if (!h) return SIMCACHE_EINVAL;
    if (!emb || !layout) return fail(h, SIMCACHE_EINVAL, "put_commit: NULL embedding or layout");
    pthread_mutex_lock(&h->lock);
    int rc = put_commit_locked(h, token, emb, layout, opts, id);
    pthread_mutex_unlock(&h->lock);
    return rc;
}

int simcache_put_abort(simcache_t *h, uint64_t token)
{
    if (!h) return SIMCACHE_EINVAL;
    pthread_mutex_lock(&h->lock);
    int rc = put_abort_locked(h, token);
    pthread_mutex_unlock(&h->lock);
    return rc;
}

/* The daemon's device staging buffer id (region g; fd, consumed, for VMM)
 * is not mapped here yet: keep what opening it takes. */
static void gpending_set(simcache_t *h, uint64_t id, const proto_gpu_region_t *g, int fd)
{
    if (h->gpending_fd >= 0) close(h->gpending_fd);
    h->gpending = *g;
    h->gpending_fd = fd;
    h->gpending_id = id;
}

static void gpending_clear(simcache_t *h)
{
    if (h->gpending_fd >= 0) close(h->gpending_fd);
    memset(&h->gpending, 0, sizeof h->gpending);
    h->gpending_fd = -1;
    h->gpending_id = 0;
}

/* Begin a device put: the daemon reserves this handle's device staging
 * buffer (mapped read-write here, once per buffer). *dev gets its pointer.
 * The daemon sends a buffer's region once (fresh = 1) and reuses the buffer
 * for the next device puts: a region that fails to open is kept, so the next
 * device put opens it again. */
static int put_begin_device_locked(simcache_t *h, uint64_t size, void **dev, uint64_t *token)
{
    staged_t *slot = find_staged(h, 0);
    if (!slot) return fail(h, SIMCACHE_ELIMIT, "%d puts already begun on this handle", MAX_STAGED);
    proto_rd_t r;
    put_reply_t p;
    int fd;
    int rc = put_begin_request(h, size, PROTO_PUT_DEVICE, &r, &p, &fd);
    if (rc) return rc;
    uint64_t t = p.token, sid = p.staging_id, ssize = p.staging_size;
    if (r.err || t == 0) return put_reply_unnamed(h, fd);
    int bad = ssize < size || sid == 0;
    if (p.fresh && !bad) {
        proto_gpu_region_t g;
        bad = read_region(h, &r, fd, &g) || proto_rd_done(&r) || g.bytes < size;
        if (!bad) {
            /* A new buffer: the daemon retired the one mapped here. */
            gpu_arena_close(h->gstage);
            h->gstage = NULL;
            h->gstage_id = 0;
            gpending_set(h, sid, &g, fd);
            fd = -1;
        }
    } else if (!p.fresh) {
        bad = bad || fd >= 0 || proto_rd_done(&r) ||
              !((h->gstage && h->gstage_id == sid) || h->gpending_id == sid);
    }
    if (bad) {
        if (fd >= 0) close(fd);
        rc = fail(h, SIMCACHE_EPROTO, "bad put_begin reply");
        put_cancel(h, t);
        return rc;
    }
    if (!h->gstage || h->gstage_id != sid) {
        gpu_arena_t *a = NULL;
        rc = open_region(h, &h->gpending, h->gpending_fd, 0, &a);
        if (rc == 0 && gpu_arena_size(a) < size) {
            gpu_arena_close(a);
            rc = fail(h, SIMCACHE_EPROTO, "bad put_begin reply");
        }
        if (rc) {
            put_cancel(h, t);
            return rc;
        }
        gpu_arena_close(h->gstage);
        h->gstage = a;
        h->gstage_id = sid;
        gpending_clear(h);
    }
    /* A slot with no host mapping: put_commit/abort find the token. */
    *slot = (staged_t){ t, sid, NULL, 0 };
    *dev = gpu_arena_ptr(h->gstage);
    *token = t;
    return 0;
}

/* A device put into the daemon's GPU tier: copy device to device into this
 * handle's device staging buffer (the daemon's memory, writable by this
 * process only), wait for the copy, commit; the daemon copies it into its
 * arena. */
static int put_device_locked(simcache_t *h, const float *emb, const simcache_layout_t *layout,
                             const void *kv, uint64_t size, const simcache_put_opts_t *po,
                             uint64_t *id)
{
    void *dev;
    uint64_t t;
    int rc = put_begin_device_locked(h, size, &dev, &t);
    if (rc) return rc;
    if (gpu_copy_d2d(dev, kv, size, NULL) || gpu_stream_sync(NULL))
        rc = fail(h, SIMCACHE_EIO, "device-memory put: copy to staging: %s", gpu_last_error());
    if (rc == 0) rc = put_commit_locked(h, t, emb, layout, po, id);
    if (rc && h->fd >= 0) {
        char keep[sizeof last_err];
        memcpy(keep, last_err, sizeof keep);
        put_abort_locked(h, t);
        memcpy(last_err, keep, sizeof keep);
    }
    return rc;
}

int simcache_put_begin_device(simcache_t *h, uint64_t size, void **dev_buf, uint64_t *token)
{
    if (!h) return SIMCACHE_EINVAL;
    if (!dev_buf || !token || size == 0)
        return fail(h, SIMCACHE_EINVAL, "put_begin_device: NULL dev_buf/token or size 0");
    if (!h->garena)
        return fail(h, SIMCACHE_ENODEV, "put_begin_device needs the daemon's GPU tier: %s",
                    h->gtier_why);
    pthread_mutex_lock(&h->lock);
    int rc = put_begin_device_locked(h, size, dev_buf, token);
    pthread_mutex_unlock(&h->lock);
    return rc;
}

int simcache_put_ex(simcache_t *h, const float *emb, const simcache_layout_t *layout,
                    const void *kv, uint64_t size, simcache_location_t loc,
                    const simcache_put_opts_t *opts, uint64_t *id)
{
    if (!h) return SIMCACHE_EINVAL;
    if (!emb || !layout || !kv || size == 0) return fail(h, SIMCACHE_EINVAL, "put: NULL embedding, layout or kv, or size 0");
    if (loc != SIMCACHE_HOST_MEMORY && loc != SIMCACHE_DEVICE_MEMORY)
        return fail(h, SIMCACHE_EINVAL, "unknown kv_location %d", (int)loc);
    if (proto_layout_check(layout, size))
        return fail(h, SIMCACHE_ELAYOUT, "layout describes %" PRIu64 " bytes, blob has %" PRIu64,
                    proto_layout_bytes(layout), size);
    if (loc == SIMCACHE_DEVICE_MEMORY && !h->gpu_ok)
        return fail(h, SIMCACHE_ENODEV, "device-memory put needs a GPU: %s", h->gpu_why);
    pthread_mutex_lock(&h->lock);
    if (loc == SIMCACHE_DEVICE_MEMORY && h->garena) {
        int rc = put_device_locked(h, emb, layout, kv, size, opts, id);
        pthread_mutex_unlock(&h->lock);
        return rc;
    }
    void *buf;
    uint64_t token;
    int rc = put_begin_locked(h, size, &buf, &token);
    if (rc == 0) {
        if (loc == SIMCACHE_HOST_MEMORY) {
            memcpy(buf, kv, size);
        } else if (gpu_copy_d2h(buf, kv, size, NULL) || gpu_stream_sync(NULL)) {
            /* The staging buffer is the daemon's memfd: the copy lands
             * straight in it, the daemon commits it as for a host put. */
            rc = fail(h, SIMCACHE_EIO, "device-memory put: copy to staging: %s", gpu_last_error());
        }
        if (rc == 0) rc = put_commit_locked(h, token, emb, layout, opts, id);
        if (rc && h->fd >= 0) {
            char keep[sizeof last_err];
            memcpy(keep, last_err, sizeof keep);
            put_abort_locked(h, token);
            memcpy(last_err, keep, sizeof keep);
        }
    }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

int simcache_put(simcache_t *h, const float *emb, const simcache_layout_t *layout, const void *kv,
                 uint64_t size, simcache_location_t loc, uint64_t *id)
{
    return simcache_put_ex(h, emb, layout, kv, size, loc, NULL, id);
}

/* ---- lookups ---- */

static int read_match(simcache_t *h, proto_rd_t *r, simcache_match_t *m)
{
    proto_match_t pm;
    proto_rd_match(r, &pm);
    if (r->err) return fail(h, SIMCACHE_EPROTO, "bad match record");
    uint64_t limit = pm.tier == SIMCACHE_TIER_GPU && h->garena ? gpu_arena_size(h->garena)
                     : pm.tier == SIMCACHE_TIER_HOST           ? h->arena_size
                                                               : 0;
    if (limit == 0 || pm.offset > limit || pm.size > limit - pm.offset)
        return fail(h, SIMCACHE_EPROTO, "match outside the arena");
    m->id = pm.id;
    m->lease = pm.lease;
    m->similarity = pm.similarity;
    m->tier = (simcache_tier_t)pm.tier;
    m->layout = pm.layout;
    m->size = pm.size;
    m->data = pm.tier == SIMCACHE_TIER_HOST ? h->arena + pm.offset : NULL;
    m->device_ptr = pm.tier == SIMCACHE_TIER_GPU ? (uint8_t *)gpu_arena_ptr(h->garena) + pm.offset
                                                 : NULL;
    m->meta_len = pm.meta_len;
    if (pm.meta_len) memcpy(m->meta, pm.meta, pm.meta_len);
    return 0;
}

static void clear_match(simcache_match_t *m);

/* A reply that went wrong after matches were read from it: the caller gets
 * no match (so it holds no lease it could forget to release) and the
 * connection closes, which makes the daemon end every lease it granted on
 * it. what NULL keeps the message already set (read_match's). Returns
 * SIMCACHE_EPROTO. */
static int bad_match_reply(simcache_t *h, simcache_match_t *ms, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) clear_match(&ms[i]);
    if (h->fd >= 0) {
        close(h->fd);
        h->fd = -1;
    }
    if (!what) return SIMCACHE_EPROTO;
    return fail(h, SIMCACHE_EPROTO, "%s; connection closed, so the daemon ends its leases", what);
}

static void clear_match(simcache_match_t *m)
{
    m->id = 0;
    m->lease = 0;
    m->similarity = 0;
    m->data = NULL;
    m->device_ptr = NULL;
    m->size = 0;
    m->meta_len = 0;
}

int simcache_lookup(simcache_t *h, const float *emb, float threshold, simcache_match_t *m)
{
    if (!h) return SIMCACHE_EINVAL;
    if (!emb || !m) return fail(h, SIMCACHE_EINVAL, "lookup: NULL embedding or match");
    clear_match(m);
    pthread_mutex_lock(&h->lock);
    size_t off = begin(h, OP_LOOKUP);
    proto_wr_f32(&h->out, threshold);
    proto_wr_u32(&h->out, 0);
    proto_wr_embedding(&h->out, emb, h->dim);
    proto_wr_frame_end(&h->out, off);
    size_t len;
    int rc = roundtrip(h, OP_LOOKUP, &len);
    if (rc == 0) {
        proto_rd_t r;
        proto_rd_init(&r, h->in, len);
        uint32_t found = proto_rd_u32(&r);
        if (found) rc = read_match(h, &r, m);
        else rc = SIMCACHE_MISS;
        if (rc >= 0 && proto_rd_done(&r)) rc = bad_match_reply(h, m, 1, "bad lookup reply");
    }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

int simcache_lookup_batch(simcache_t *h, const float *embs, size_t n, float threshold,
                          simcache_match_t *ms)
{
    if (!h) return SIMCACHE_EINVAL;
    if (!embs || !ms || n == 0) return fail(h, SIMCACHE_EINVAL, "lookup_batch: NULL embeddings or matches, or n 0");
    if (n > SIMCACHE_MAX_BATCH) return fail(h, SIMCACHE_ETOOBIG, "batch over %u", SIMCACHE_MAX_BATCH);
    for (size_t i = 0; i < n; i++) clear_match(&ms[i]);
    if (16 + (uint64_t)n * h->dim * sizeof(float) > h->max_payload)
        return fail(h, SIMCACHE_ETOOBIG,
                    "batch of %zu x %u floats exceeds the daemon's max_frame (%u bytes); split it",
                    n, h->dim, h->max_payload);
    pthread_mutex_lock(&h->lock);
    size_t off = begin(h, OP_LOOKUP_BATCH);
    proto_wr_f32(&h->out, threshold);
    proto_wr_u32(&h->out, 0);
    proto_wr_u32(&h->out, (uint32_t)n);
    proto_wr_u32(&h->out, h->dim);
    proto_wr_bytes(&h->out, embs, n * h->dim * sizeof(float));
    proto_wr_frame_end(&h->out, off);
    size_t len;
    int rc = roundtrip(h, OP_LOOKUP_BATCH, &len);
    if (rc == 0) {
        proto_rd_t r;
        proto_rd_init(&r, h->in, len);
        uint32_t k = proto_rd_u32(&r);
        int hits = 0;
        if (k != n) rc = fail(h, SIMCACHE_EPROTO, "batch reply has %" PRIu32 " results", k);
        for (uint32_t i = 0; rc == 0 && i < k; i++) {
            if (proto_rd_u32(&r)) {
                rc = read_match(h, &r, &ms[i]);
                hits++;
            }
        }
        if (rc == SIMCACHE_EPROTO && hits > 1) rc = bad_match_reply(h, ms, n, NULL);
        else if (rc == 0 && proto_rd_done(&r)) rc = bad_match_reply(h, ms, n, "bad batch reply");
        if (rc == 0) rc = hits;
    }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

int simcache_get(simcache_t *h, uint64_t id, simcache_match_t *m)
{
    if (!h) return SIMCACHE_EINVAL;
    if (!m) return fail(h, SIMCACHE_EINVAL, "get: NULL match");
    clear_match(m);
    pthread_mutex_lock(&h->lock);
    size_t off = begin(h, OP_GET);
    proto_wr_u64(&h->out, id);
    proto_wr_frame_end(&h->out, off);
    size_t len;
    int rc = roundtrip(h, OP_GET, &len);
    if (rc == 0) {
        proto_rd_t r;
        proto_rd_init(&r, h->in, len);
        rc = read_match(h, &r, m);
        if (rc == 0 && proto_rd_done(&r)) rc = bad_match_reply(h, m, 1, "bad get reply");
    }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

int simcache_copy_to_device(simcache_t *h, const simcache_match_t *m, uint64_t offset,
                            void *dst, uint64_t n, void *cuda_stream)
{
    if (!h) return SIMCACHE_EINVAL;
    if (!m || !dst) return fail(h, SIMCACHE_EINVAL, "copy_to_device: NULL match or destination");
    if (!m->lease || (!m->data && !m->device_ptr))
        return fail(h, SIMCACHE_EINVAL, "copy_to_device: the match holds no lease");
    if (offset > m->size || n > m->size - offset)
        return fail(h, SIMCACHE_EINVAL,
                    "copy_to_device: %" PRIu64 " bytes at %" PRIu64 " outside the %" PRIu64
                    "-byte entry", n, offset, m->size);
    if (!h->gpu_ok) return fail(h, SIMCACHE_ENODEV, "copy_to_device needs a GPU: %s", h->gpu_why);
    if (n == 0) return 0;
    int rc = m->device_ptr ? gpu_copy_d2d(dst, (const uint8_t *)m->device_ptr + offset, n,
                                          (gpu_stream_t *)cuda_stream)
                           : gpu_copy_h2d(dst, (const uint8_t *)m->data + offset, n,
                                          (gpu_stream_t *)cuda_stream);
    if (rc) return fail(h, SIMCACHE_EIO, "copy_to_device: %s", gpu_last_error());
    return 0;
}

int simcache_gpu_tier(const simcache_t *h, char *why, size_t len)
{
    if (!h) return SIMCACHE_EINVAL;
    if (why && len) snprintf(why, len, "%s", h->garena ? "" : h->gtier_why);
    return h->garena != NULL;
}

int simcache_gpu_status(const simcache_t *h, char *why, size_t len)
{
    if (!h) return SIMCACHE_EINVAL;
    if (why && len) snprintf(why, len, "%s", h->gpu_ok ? "" : h->gpu_why);
    if (!h->gpu_ok) return 0;
    return h->arena_pinned ? 2 : 1;
}

static int simple_u64(simcache_t *h, uint16_t op, uint64_t v)
{
    pthread_mutex_lock(&h->lock);
    size_t off = begin(h, op);
    proto_wr_u64(&h->out, v);
    proto_wr_frame_end(&h->out, off);
    size_t len;
    int rc = roundtrip(h, op, &len);
    pthread_mutex_unlock(&h->lock);
    return rc;
}

int simcache_release_lease(simcache_t *h, uint64_t lease)
{
    if (!h) return SIMCACHE_EINVAL;
    return simple_u64(h, OP_RELEASE, lease);
}

int simcache_release(simcache_t *h, simcache_match_t *m)
{
    if (!h) return SIMCACHE_EINVAL;
    if (!m) return fail(h, SIMCACHE_EINVAL, "release: NULL match");
    if (m->lease == 0) return fail(h, SIMCACHE_EINVAL, "match holds no lease");
    int rc = simple_u64(h, OP_RELEASE, m->lease);
    if (rc == 0) {
        m->lease = 0;
        m->data = NULL;
    }
    return rc;
}

int simcache_delete(simcache_t *h, uint64_t id)
{
    if (!h) return SIMCACHE_EINVAL;
    return simple_u64(h, OP_DELETE, id);
}

int simcache_stats(simcache_t *h, simcache_stats_t *st)
{
    if (!h) return SIMCACHE_EINVAL;
    if (!st) return fail(h, SIMCACHE_EINVAL, "stats: NULL stats");
    pthread_mutex_lock(&h->lock);
    size_t off = begin(h, OP_STATS);
    proto_wr_frame_end(&h->out, off);
    size_t len;
    int rc = roundtrip(h, OP_STATS, &len);
    if (rc == 0) {
        proto_rd_t r;
        proto_rd_init(&r, h->in, len);
        uint32_t n = proto_rd_u32(&r);
        uint64_t v[12] = { 0 };
        for (uint32_t i = 0; i < n && !r.err; i++) {
            uint64_t x = proto_rd_u64(&r);
            if (i < 12) v[i] = x;
        }
        if (proto_rd_done(&r)) {
            rc = fail(h, SIMCACHE_EPROTO, "bad stats reply");
        } else {
            *st = (simcache_stats_t){ v[0], v[1], v[2], v[3], v[4], v[5],
                                      v[6], v[7], v[8], v[9], v[10], v[11] };
        }
    }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

int simcache_route(simcache_t *h, const float *emb, simcache_node_t *node)
{
    if (!h) return SIMCACHE_EINVAL;
    if (!emb || !node) return fail(h, SIMCACHE_EINVAL, "route: NULL embedding or node");
    memset(node, 0, sizeof *node);
    pthread_mutex_lock(&h->lock);
    size_t off = begin(h, OP_ROUTE);
    proto_wr_u32(&h->out, 0);   /* flags, reserved */
    proto_wr_embedding(&h->out, emb, h->dim);
    proto_wr_frame_end(&h->out, off);
    size_t len;
    int rc = roundtrip(h, OP_ROUTE, &len);
    if (rc == 0) {
        proto_rd_t r;
        proto_route_reply_t rr;
        proto_rd_init(&r, h->in, len);
        if (proto_rd_route_reply(&r, &rr)) {
            rc = fail(h, SIMCACHE_EPROTO, "bad route reply");
        } else {
            memcpy(node->node_id, rr.node, rr.node_len);
            memcpy(node->address, rr.addr, rr.addr_len);
            node->similarity = rr.similarity;
            node->load = rr.load;
            node->flags = rr.flags;
            node->local = (rr.flags & SIMCACHE_ROUTE_LOCAL) != 0;
        }
    }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

int simcache_ping(simcache_t *h)
{
    if (!h) return SIMCACHE_EINVAL;
    pthread_mutex_lock(&h->lock);
    size_t off = begin(h, OP_PING);
    proto_wr_frame_end(&h->out, off);
    size_t len;
    int rc = roundtrip(h, OP_PING, &len);
    pthread_mutex_unlock(&h->lock);
    return rc;
}

/* ---- codec facts, public under the library's names ---- */

uint64_t simcache_layout_bytes(const simcache_layout_t *layout)
{
    return proto_layout_bytes(layout);
}

const char *simcache_strerror(int code)
{
    return proto_strerror(code);
}
