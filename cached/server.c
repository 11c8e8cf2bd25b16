/* server.c - client connections: binary frames in, replies (and fds) out.
 *
 * Each connection is a non-blocking Unix socket watched by two libevent
 * events. Requests are decoded and answered in order, so pipelined requests
 * get their replies in the order sent, each echoing its request id. Replies
 * that carry a file descriptor (the arena at hello, a staging buffer at
 * put_begin) queue the fd against the reply's first byte and send it with
 * sendmsg(SCM_RIGHTS). A frame whose header cannot be trusted (bad magic,
 * version, length) gets an error reply and the connection closes after it; a
 * frame whose payload is wrong gets an error reply and the connection goes on.
 * Whatever a connection held (leases, unfinished puts) is released when it
 * closes, however it closes.
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "arena.h"
#include "cache.h"
#include "catalog.h"
#include "clock.h"
#include "daemon.h"
#include "gpu.h"
#include "gpuscore.h"
#include "gputier.h"
#include "lease.h"
#include "listener.h"
#include "log.h"
#include "peers.h"
#include "principal.h"
#include "proto.h"
#include "server.h"
#include "tier.h"
#include "vec.h"
#include "xxh.h"

#define READ_CHUNK (64u << 10)
#define OUT_HIGH_WATER (8u << 20)   /* stop reading a client that does not read its replies */

typedef struct {
    size_t off;   /* offset in the out buffer of the byte the fd rides on */
    int fd;
} out_fd_t;

typedef struct {
    uint64_t token;
    arena_t staging;     /* this client's write buffer for the put */
    uint64_t staging_id; /* names the buffer to the client, which maps it once */
    uint64_t size;       /* bytes of this put (the buffer may be larger) */
    int device;          /* staged in the client's device staging buffer (c->gstage) */
} put_t;

struct client {
    client_t *prev, *next;
    daemon_t *d;
    int fd;
    struct event *ev_read, *ev_write;
    struct event *ev_frame;        /* armed while a frame is half received */
    uint64_t id;
    pid_t pid;
    uid_t uid;
    ns_t *ns;                      /* set by hello */
    uint8_t *in;
    size_t in_start, in_len, in_cap;
    struct uid_use *use;           /* this uid's connections and input memory */
    uint64_t last_io_us;           /* mono_us of its last bytes in or out */
    proto_wr_t out;
    size_t out_sent;
    out_fd_t *fds;
    size_t nfds, fds_cap;
    lease_list_t leases;
    u64map_t puts;                 /* token -> put_t */
    uint64_t staging_bytes;
    /* The staging buffer of the last finished put, kept for the next one:
     * a fresh memfd per put costs a page fault per 4 KiB on both sides, which
     * dominated put time (docs/benchmarks.md). */
    arena_t spare;
    uint64_t spare_id;
    int closing;                   /* close once the out buffer is sent */
    int reading;
    uint64_t requests;
    /* A request that needs a disk entry waits for its promotion: the frame
     * stays in `in`, nothing else of this client is read or decoded, and the
     * frame replays once every promotion it waits for has completed. */
    uint32_t waits;                /* promotions not yet completed */
    uint32_t replays;              /* of the current frame */
    float *unit;                   /* ns->dim floats: the request's embedding */
    /* GPU tier (gpu_attach): the client maps the GPU arena read-only; its
     * device puts are staged in gstage, device memory only it is given
     * (one device put at a time). Replaced staging buffers stay allocated
     * until the client leaves: a legacy-IPC importer may still map them. */
    int gpu_attached, prefer_device;
    gpu_arena_t *gstage;
    uint64_t gstage_id;
    uint64_t gstage_token;         /* the device put using gstage, or 0 */
    gpu_arena_t **gretired;
    uint32_t n_gretired;
    uint64_t gstage_bytes;         /* gstage and gretired together */
};

/* What one uid's connections hold together (d->uid_use: uid -> uid_use_t):
 * max_clients_per_uid and frame_memory_per_uid bound them, so one uid's
 * flood of connections or half-sent frames leaves room for the others. */
typedef struct uid_use {
    uid_t uid;
    uint32_t conns;
    uint64_t in_bytes;             /* input buffers (partial frames) */
} uid_use_t;

static uid_use_t *uid_use_get(daemon_t *d, uid_t uid)
{
    uid_use_t *u = u64map_get(&d->uid_use, (uint64_t)uid + 1);
    if (u) return u;
    u = calloc(1, sizeof *u);
    if (!u) return NULL;
    u->uid = uid;
    if (u64map_put(&d->uid_use, (uint64_t)uid + 1, u)) {
        free(u);
        return NULL;
    }
    return u;
}

static void uid_use_put(daemon_t *d, uid_use_t *u)
{
    if (!u || --u->conns) return;
    u64map_del(&d->uid_use, (uint64_t)u->uid + 1);
    free(u);
}

/* Resize c's input buffer to cap bytes (0: free it), within the uid's
 * frame_memory_per_uid. 0, or -1 (over the budget or out of memory; the
 * buffer is unchanged). */
static int in_resize(client_t *c, size_t cap)
{
    uid_use_t *u = c->use;
    uint64_t budget = c->d->cfg.frame_memory_per_uid;
    if (cap > c->in_cap && budget && u->in_bytes - c->in_cap + cap > budget) return -1;
    uint8_t *b = NULL;
    if (cap) {
        b = realloc(c->in, cap);
        if (!b) return -1;
    } else {
        free(c->in);
    }
    u->in_bytes = u->in_bytes - c->in_cap + cap;
    c->d->in_bytes = c->d->in_bytes - c->in_cap + cap;
    c->in = b;
    c->in_cap = cap;
    return 0;
}

/* All clients' device staging buffers together stay under this many times
 * the GPU tier's size. */
#define GPU_STAGING_FACTOR 4u

/* After this many replays of one frame, promotions run synchronously: a
 * host tier too small for a batch's entries must not loop forever. */
#define MAX_REPLAYS 3u

/* ---- output ---- */

static void client_free(client_t *c);

static void put_free(put_t *p)
{
    arena_close(&p->staging);
    free(p);
}

/* A put ended (committed or aborted): keep its buffer as the client's spare
 * if it is not too big, dropping the previous spare. The client applies the
 * same rule when the reply says kept = 1. Returns kept. */
static uint32_t retire_put(client_t *c, put_t *p)
{
    uint32_t kept = 0;
    if (p->device) {
        c->gstage_token = 0;
        put_free(p);
        return 0;
    }
    if (p->staging.size <= c->d->cfg.staging_keep_bytes) {
        arena_close(&c->spare);
        c->spare = p->staging;
        c->spare_id = p->staging_id;
        p->staging.fd = -1;
        p->staging.base = NULL;
        p->staging.size = 0;
        kept = 1;
    }
    put_free(p);
    return kept;
}

static int queue_fd(client_t *c, size_t off, int fd)
{
    if (c->nfds == c->fds_cap) {
        size_t cap = c->fds_cap ? c->fds_cap * 2 : 4;
        out_fd_t *f = realloc(c->fds, cap * sizeof *f);
        if (!f) return -1;
        c->fds = f;
        c->fds_cap = cap;
    }
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) return -1;
    c->fds[c->nfds++] = (out_fd_t){ off, dup };
    return 0;
}

/* Send as much as the socket takes. Returns 0, or -1 if the peer is gone. */
static int flush_out(client_t *c)
{
    while (c->out_sent < c->out.len) {
        size_t end = c->out.len;
        int with_fd = c->nfds && c->fds[0].off == c->out_sent;
        /* An fd rides on the first byte of its frame: stop before the next one. */
        size_t next = with_fd ? 1 : 0;
        if (c->nfds > next && c->fds[next].off < end) end = c->fds[next].off;
        struct iovec iov = { c->out.buf + c->out_sent, end - c->out_sent };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } u;
        if (with_fd) {
            memset(&u, 0, sizeof u);
            msg.msg_control = u.buf;
            msg.msg_controllen = sizeof u.buf;
            struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(cm), &c->fds[0].fd, sizeof(int));
        }
        ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (errno == EINTR) continue;
            return -1;
        }
        if (with_fd) {
            close(c->fds[0].fd);
            memmove(c->fds, c->fds + 1, (c->nfds - 1) * sizeof *c->fds);
            c->nfds--;
        }
        c->out_sent += (size_t)n;
    }
    if (c->out_sent == c->out.len) {
        proto_wr_reset(&c->out);
        c->out_sent = 0;
        event_del(c->ev_write);
    } else {
        event_add(c->ev_write, NULL);
    }
    return 0;
}

uint64_t server_pending_output(const daemon_t *d)
{
    uint64_t n = 0;
    for (const client_t *c = d->clients; c; c = c->next) n += c->out.len - c->out_sent;
    return n;
}

static void reply_error(client_t *c, uint16_t op, uint64_t req_id, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void reply_error(client_t *c, uint16_t op, uint64_t req_id, int code, const char *fmt, ...)
{
    char msg[PROTO_MAX_ERRMSG];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
    size_t off = proto_wr_frame_begin(&c->out, (uint16_t)(op | OP_REPLY), req_id, code);
    proto_wr_str(&c->out, msg, (size_t)n);
    proto_wr_frame_end(&c->out, off);
    c->d->stats.request_errors++;
    log_debug("client %" PRIu64 ": %s -> %s: %s", c->id, proto_op_name(op), proto_strerror(code),
              msg);
}

/* A frame we cannot trust: answer and hang up once the answer is out. */
static void fatal_frame(client_t *c, uint16_t op, uint64_t req_id, int code, const char *what)
{
    reply_error(c, op, req_id, code, "%s; closing connection", what);
    c->d->stats.protocol_errors++;
    c->closing = 1;
}

/* ---- requests ---- */

typedef struct {
    client_t *c;
    uint16_t op;
    uint64_t req_id;
    proto_rd_t rd;
} req_t;

static size_t begin_ok(req_t *r)
{
    return proto_wr_frame_begin(&r->c->out, (uint16_t)(r->op | OP_REPLY), r->req_id, 0);
}

/* Read and normalise an embedding of the client's namespace into out. */
static int read_embedding(req_t *r, float *out)
{
    uint32_t dim;
    if (r->rd.err) {
        reply_error(r->c, r->op, r->req_id, SIMCACHE_EPROTO, "%s payload truncated",
                    proto_op_name(r->op));
        return -1;
    }
    const void *raw = proto_rd_embedding(&r->rd, SIMCACHE_MAX_DIM, &dim);
    if (!raw) {
        if (dim != r->c->ns->dim && dim <= SIMCACHE_MAX_DIM)
            reply_error(r->c, r->op, r->req_id, SIMCACHE_EDIM,
                        "embedding has dimension %" PRIu32 ", namespace has %" PRIu32, dim,
                        r->c->ns->dim);
        else if (dim > SIMCACHE_MAX_DIM)
            reply_error(r->c, r->op, r->req_id, SIMCACHE_EDIM,
                        "embedding dimension %" PRIu32 " over the limit %u", dim, SIMCACHE_MAX_DIM);
        else
            reply_error(r->c, r->op, r->req_id, SIMCACHE_EPROTO, "embedding truncated");
        return -1;
    }
    if (dim != r->c->ns->dim) {
        reply_error(r->c, r->op, r->req_id, SIMCACHE_EDIM,
                    "embedding has dimension %" PRIu32 ", namespace has %" PRIu32, dim,
                    r->c->ns->dim);
        return -1;
    }
    memcpy(out, raw, (size_t)dim * sizeof(float));
    if (vec_normalize(out, dim, out)) {
        reply_error(r->c, r->op, r->req_id, SIMCACHE_EEMBED,
                    "embedding holds NaN or Inf, or is the zero vector");
        return -1;
    }
    return 0;
}


static int check_done(req_t *r)
{
    if (proto_rd_done(&r->rd)) {
        reply_error(r->c, r->op, r->req_id, SIMCACHE_EPROTO, "%s payload malformed or truncated",
                    proto_op_name(r->op));
        return -1;
    }
    return 0;
}

/* The request's embedding, normalised, in the client's scratch buffer (one
 * per connection, valid until the next request), with the rest of the
 * payload checked; NULL once an error reply went out. */
static float *take_embedding(req_t *r)
{
    client_t *c = r->c;
    if (!c->unit && !(c->unit = malloc((size_t)c->ns->dim * sizeof(float)))) {
        reply_error(c, r->op, r->req_id, SIMCACHE_ENOMEM, "out of memory");
        return NULL;
    }
    if (read_embedding(r, c->unit) || check_done(r)) return NULL;
    return c->unit;
}

static void do_hello(req_t *r)
{
    client_t *c = r->c;
    daemon_t *d = c->d;
    proto_hello_t h;
    int rc = proto_rd_hello(&r->rd, &h);
    if (rc == SIMCACHE_EPROTO) {
        fatal_frame(c, r->op, r->req_id, rc, "hello payload malformed");
        return;
    }
    if (rc) {
        fatal_frame(c, r->op, r->req_id, rc,
                    "namespace strings must be 1..255 bytes of UTF-8 without NUL (tenant may be empty)");
        return;
    }
    if (h.flags) {
        char what[64];
        snprintf(what, sizeof what, "hello flags 0x%" PRIx32 " are reserved (send 0)", h.flags);
        fatal_frame(c, r->op, r->req_id, SIMCACHE_EINVAL, what);
        return;
    }
    if (h.min_version > PROTO_VERSION || h.max_version < PROTO_VERSION_MIN ||
        h.min_version > h.max_version) {
        char why[96];
        snprintf(why, sizeof why, "no protocol version in common (server speaks %u to %u)",
                 PROTO_VERSION_MIN, PROTO_VERSION);
        fatal_frame(c, r->op, r->req_id, SIMCACHE_EVERSION, why);
        return;
    }
    if (h.dim == 0 || h.dim > SIMCACHE_MAX_DIM) {
        fatal_frame(c, r->op, r->req_id, SIMCACHE_EDIM, "dimension must be 1..16384");
        return;
    }
    int code;
    ns_t *ns = catalog_ns_get(d, h.model, h.model_len, h.layout_fp, h.layout_fp_len, h.tenant,
                             h.tenant_len, h.dim, CATALOG_NS_CLIENT, &code);
    if (!ns) {
        fatal_frame(c, r->op, r->req_id, code,
                    code == SIMCACHE_ELIMIT ? "too many namespaces" : "cannot create namespace");
        return;
    }
    c->ns = ns;
    ns->clients++;
    proto_hello_reply_t hr = {
        .version = PROTO_VERSION,
        .tiers = (uint16_t)(1 | (d->gstore ? 2 : 0) | (tier_on(d) ? 4 : 0)),
        .max_payload = d->cfg.max_frame,
        .client_id = c->id,
        .arena_size = store_arena_size(d->store),
        .default_threshold = (float)d->cfg.default_threshold,
        .max_batch = SIMCACHE_MAX_BATCH,
    };
    size_t off = begin_ok(r);
    proto_wr_hello_reply(&c->out, &hr);
    proto_wr_frame_end(&c->out, off);
    if (queue_fd(c, off, store_arena_fd(d->store))) c->closing = 1;
    log_info("client %" PRIu64 " (pid %d uid %u) joined namespace %s", c->id, (int)c->pid,
             (unsigned)c->uid, ns->name);
}

/* Describe region a (device memory of this daemon) to the client; for a
 * VMM region its fd rides on the frame. 0, or -1 when the fd could not be
 * made or queued (the client is then closed). */
static int send_gpu_region(client_t *c, size_t frame_off, const gpu_arena_t *a)
{
    gpu_arena_handle_t h;
    gpu_arena_export(a, &h);
    proto_gpu_region_t g = { .kind = h.kind, .device = h.device, .bytes = h.bytes };
    memcpy(g.ipc, h.ipc, sizeof g.ipc);
    proto_wr_gpu_region(&c->out, &g);
    if (h.kind != GPU_ARENA_VMM) return 0;
    int fd = gpu_arena_export_fd(a);
    int rc = fd < 0 ? -1 : queue_fd(c, frame_off, fd);
    if (fd >= 0) close(fd);
    if (rc) log_warn("client %" PRIu64 ": cannot pass a GPU memory fd: %s", c->id, gpu_last_error());
    return rc;
}

static void do_gpu_attach(req_t *r)
{
    client_t *c = r->c;
    daemon_t *d = c->d;
    int32_t device = (int32_t)proto_rd_u32(&r->rd);
    uint32_t flags = proto_rd_u32(&r->rd);
    if (check_done(r)) return;
    if (!d->gstore) {
        reply_error(c, r->op, r->req_id, SIMCACHE_ENODEV, "the daemon has no GPU tier (%s)",
                    d->gpu_devices > 0 ? "gpu_capacity 0 or it could not be created"
                                       : d->gpu_desc);
        return;
    }
    if (device != (int32_t)d->cfg.gpu_device) {
        reply_error(c, r->op, r->req_id, SIMCACHE_ENODEV,
                    "the GPU tier is on device %" PRIu32 ", not %" PRId32, d->cfg.gpu_device, device);
        return;
    }
    if (flags & ~(uint32_t)PROTO_ATTACH_PREFER_DEVICE) {
        reply_error(c, r->op, r->req_id, SIMCACHE_EINVAL, "unknown gpu_attach flags 0x%" PRIx32, flags);
        return;
    }
    size_t off = begin_ok(r);
    int rc = send_gpu_region(c, off, gtier_arena(d));
    proto_wr_frame_end(&c->out, off);
    if (rc) {
        c->closing = 1;
        return;
    }
    c->gpu_attached = 1;
    c->prefer_device = (flags & PROTO_ATTACH_PREFER_DEVICE) != 0;
    log_info("client %" PRIu64 " mapped the GPU tier (%s IPC)%s", c->id, gtier_ipc_kind(d),
             c->prefer_device ? ", hits placed on the GPU" : "");
}

/* A device put: reserve the client's device staging buffer (growing it when
 * too small) and reply with it. */
static void put_begin_device(req_t *r, uint64_t size)
{
    client_t *c = r->c;
    daemon_t *d = c->d;
    store_stats_t st;
    if (!c->gpu_attached) {
        reply_error(c, r->op, r->req_id, SIMCACHE_ESTATE, "device put before gpu_attach");
        return;
    }
    store_get_stats(d->gstore, &st);
    if (size > st.capacity) {
        reply_error(c, r->op, r->req_id, SIMCACHE_ETOOBIG,
                    "put of %" PRIu64 " bytes is larger than the GPU tier (%" PRIu64 " bytes)",
                    size, st.capacity);
        return;
    }
    if (c->gstage_token) {
        reply_error(c, r->op, r->req_id, SIMCACHE_ELIMIT,
                    "device put %" PRIu64 " still unfinished (one at a time)", c->gstage_token);
        return;
    }
    int fresh = !c->gstage || gpu_arena_size(c->gstage) < size;
    if (fresh) {
        /* Replaced buffers stay allocated until the client leaves (a legacy
         * importer may still map them), so growth doubles, which keeps one
         * client's buffers under twice the tier; and all clients' together
         * stay under GPU_STAGING_FACTOR tiers. */
        uint64_t want = size;
        if (c->gstage && want < 2 * gpu_arena_size(c->gstage))
            want = 2 * gpu_arena_size(c->gstage) < st.capacity ? 2 * gpu_arena_size(c->gstage)
                                                                : st.capacity;
        if (want < size) want = size;
        if (c->gstage_bytes + want > 2 * st.capacity) {
            reply_error(c, r->op, r->req_id, SIMCACHE_ELIMIT,
                        "this client's device staging buffers would exceed twice the GPU tier "
                        "(%" PRIu64 " bytes held); reconnect to release them",
                        c->gstage_bytes);
            return;
        }
        if (d->gstage_bytes + want > GPU_STAGING_FACTOR * st.capacity) {
            reply_error(c, r->op, r->req_id, SIMCACHE_ENOSPC,
                        "device staging buffers of all clients would exceed %u times the GPU "
                        "tier (%" PRIu64 " bytes held); retry, or use host puts",
                        GPU_STAGING_FACTOR, d->gstage_bytes);
            return;
        }
        gpu_arena_t *a = NULL;
        unsigned fl = strcmp(d->cfg.gpu_ipc, "legacy") == 0 ? GPU_ARENA_FORCE_LEGACY
                                                              : GPU_ARENA_PREFER_VMM;
        gpu_arena_t **ret = c->gstage ? realloc(c->gretired, (c->n_gretired + 1) * sizeof *ret)
                                      : c->gretired;
        if (c->gstage && !ret) {
            reply_error(c, r->op, r->req_id, SIMCACHE_ENOMEM, "out of memory");
            return;
        }
        c->gretired = ret;
        if (gpu_arena_new((int)d->cfg.gpu_device, want, fl, &a)) {
            reply_error(c, r->op, r->req_id, SIMCACHE_ENOMEM, "device staging buffer: %s",
                        gpu_last_error());
            return;
        }
        if (c->gstage) c->gretired[c->n_gretired++] = c->gstage;
        c->gstage = a;
        c->gstage_bytes += gpu_arena_size(a);
        d->gstage_bytes += gpu_arena_size(a);
        c->gstage_id = ++d->next_put_token;
    }
    put_t *p = calloc(1, sizeof *p);
    if (!p) {
        reply_error(c, r->op, r->req_id, SIMCACHE_ENOMEM, "out of memory");
        return;
    }
    p->staging.fd = -1;
    p->token = ++d->next_put_token;
    p->size = size;
    p->device = 1;
    p->staging_id = c->gstage_id;
    if (u64map_put(&c->puts, p->token, p)) {
        free(p);
        reply_error(c, r->op, r->req_id, SIMCACHE_ENOMEM, "out of memory");
        return;
    }
    c->gstage_token = p->token;
    size_t off = begin_ok(r);
    proto_wr_u64(&c->out, p->token);
    proto_wr_u64(&c->out, p->staging_id);
    proto_wr_u64(&c->out, gpu_arena_size(c->gstage));
    proto_wr_u32(&c->out, (uint32_t)fresh);
    if (fresh && send_gpu_region(c, off, c->gstage)) c->closing = 1;
    proto_wr_frame_end(&c->out, off);
}

static void do_put_begin(req_t *r)
{
    client_t *c = r->c;
    daemon_t *d = c->d;
    uint64_t size = proto_rd_u64(&r->rd);
    uint32_t flags = proto_rd_u32(&r->rd);
    if (check_done(r)) return;
    if (flags & ~(uint32_t)PROTO_PUT_DEVICE) {
        reply_error(c, r->op, r->req_id, SIMCACHE_EINVAL, "unknown put_begin flags 0x%" PRIx32, flags);
        return;
    }
    if ((flags & PROTO_PUT_DEVICE) && size && u64map_len(&c->puts) < d->cfg.max_puts_per_client) {
        put_begin_device(r, size);
        return;
    }
    store_stats_t st;
    store_get_stats(d->store, &st);
    if (size == 0) {
        reply_error(c, r->op, r->req_id, SIMCACHE_EINVAL, "put of 0 bytes");
        return;
    }
    if (size > st.capacity) {
        reply_error(c, r->op, r->req_id, SIMCACHE_ETOOBIG,
                    "put of %" PRIu64 " bytes is larger than the host tier (%" PRIu64 " bytes)",
                    size, st.capacity);
        return;
    }
    if (u64map_len(&c->puts) >= d->cfg.max_puts_per_client) {
        reply_error(c, r->op, r->req_id, SIMCACHE_ELIMIT,
                    "%zu unfinished puts already (max_puts_per_client)", u64map_len(&c->puts));
        return;
    }
    if (c->staging_bytes + size > st.capacity) {
        reply_error(c, r->op, r->req_id, SIMCACHE_ELIMIT,
                    "unfinished puts of this client would exceed the host tier size");
        return;
    }
    put_t *p = calloc(1, sizeof *p);
    if (!p) {
        reply_error(c, r->op, r->req_id, SIMCACHE_ENOMEM, "out of memory");
        return;
    }
    char err[128];
    p->token = ++d->next_put_token;
    p->size = size;
    int fresh = !(c->spare.fd >= 0 && c->spare.size >= size);
    if (!fresh) {
        p->staging = c->spare;
        p->staging_id = c->spare_id;
        c->spare.fd = -1;
        c->spare.base = NULL;
        c->spare.size = 0;
    } else if (arena_open_staging(&p->staging, "simcache-staging", size, err, sizeof err)) {
        free(p);
        reply_error(c, r->op, r->req_id, SIMCACHE_ENOMEM, "staging buffer: %s", err);
        return;
    } else {
        p->staging_id = ++d->next_put_token;
    }
    if (u64map_put(&c->puts, p->token, p)) {
        put_free(p);
        reply_error(c, r->op, r->req_id, SIMCACHE_ENOMEM, "out of memory");
        return;
    }
    c->staging_bytes += size;
    size_t off = begin_ok(r);
    proto_wr_u64(&c->out, p->token);
    proto_wr_u64(&c->out, p->staging_id);
    proto_wr_u64(&c->out, p->staging.size);
    proto_wr_u32(&c->out, (uint32_t)fresh);
    proto_wr_frame_end(&c->out, off);
    if (fresh && queue_fd(c, off, p->staging.fd)) c->closing = 1;
}

static put_t *take_put(client_t *c, uint64_t token)
{
    put_t *p = u64map_del(&c->puts, token);
    if (p && !p->device) c->staging_bytes -= p->size;
    return p;
}

static void do_put_abort(req_t *r)
{
    uint64_t token = proto_rd_u64(&r->rd);
    if (check_done(r)) return;
    put_t *p = take_put(r->c, token);
    if (!p) {
        reply_error(r->c, r->op, r->req_id, SIMCACHE_ENOPUT, "no unfinished put %" PRIu64, token);
        return;
    }
    uint32_t kept = retire_put(r->c, p);
    size_t off = begin_ok(r);
    proto_wr_u32(&r->c->out, kept);
    proto_wr_frame_end(&r->c->out, off);
}

static void commit_entry(req_t *r, put_t *p, entry_t *e, const float *unit, store_t *st);

static void do_put_commit(req_t *r)
{
    client_t *c = r->c;
    daemon_t *d = c->d;
    uint64_t token = proto_rd_u64(&r->rd);
    uint32_t flags = proto_rd_u32(&r->rd);
    if (!r->rd.err && flags) {
        reply_error(c, r->op, r->req_id, SIMCACHE_EINVAL,
                    "put_commit flags 0x%" PRIx32 " are reserved (send 0)", flags);
        return;
    }
    simcache_layout_t layout;
    proto_rd_layout(&r->rd, &layout);
    uint32_t meta_len = proto_rd_u32(&r->rd);
    if (!r->rd.err && meta_len > SIMCACHE_MAX_META) {
        reply_error(c, r->op, r->req_id, SIMCACHE_ETOOBIG, "metadata of %" PRIu32 " bytes (max %u)",
                    meta_len, SIMCACHE_MAX_META);
        return;
    }
    const void *meta = proto_rd_bytes(&r->rd, meta_len);
    put_t *p = u64map_get(&c->puts, token);
    if (r->rd.err) {
        reply_error(c, r->op, r->req_id, SIMCACHE_EPROTO, "put_commit payload truncated");
        return;
    }
    if (!p) {
        reply_error(c, r->op, r->req_id, SIMCACHE_ENOPUT,
                    "commit of put %" PRIu64 " that was never begun (or already ended)", token);
        return;
    }
    const float *unit = take_embedding(r);
    if (!unit) return;
    if (proto_layout_check(&layout, p->size)) {
        reply_error(c, r->op, r->req_id, SIMCACHE_ELAYOUT,
                    "layout (dtype %" PRIu32 ", %" PRIu32 " parts x %" PRIu32 " layers x %" PRIu32
                    " heads x %" PRIu32 " dim x %" PRIu32 " tokens) does not describe the %" PRIu64
                    "-byte blob",
                    layout.dtype, layout.parts, layout.layers, layout.kv_heads, layout.head_dim,
                    layout.tokens, p->size);
        return;
    }
    entry_t *e = calloc(1, sizeof *e);
    uint8_t *meta_copy = meta_len ? malloc(meta_len) : NULL;
    if (!e || (meta_len && !meta_copy)) {
        free(e);
        free(meta_copy);
        reply_error(c, r->op, r->req_id, SIMCACHE_ENOMEM, "out of memory");
        return;
    }
    e->id = ++d->next_entry_id;
    e->ns = c->ns;
    e->layout = layout;
    e->size = p->size;
    e->meta_len = meta_len;
    e->meta = meta_copy;
    if (meta_len) memcpy(meta_copy, meta, meta_len);
    e->created_us = now_us();
    if (p->device) {
        /* Device to device, from the client's staging buffer. */
        int grc = gtier_put(d, e, gpu_arena_ptr(c->gstage));
        if (grc) {
            free(e->meta);
            free(e);
            reply_error(c, r->op, r->req_id, grc, "%s",
                        grc == SIMCACHE_ENOSPC ? "GPU tier full of leased entries"
                        : grc == SIMCACHE_EIO  ? "device copy into the GPU tier failed"
                                               : "cannot reserve GPU tier space");
            return;
        }
        commit_entry(r, p, e, unit, d->gstore);
        return;
    }
    uint64_t off;
    int rc = store_alloc(d->store, e->id, p->size, e, &off);
    if (rc) {
        free(e->meta);
        free(e);
        if (rc == -EFBIG)
            reply_error(c, r->op, r->req_id, SIMCACHE_ETOOBIG, "blob larger than the host tier");
        else if (rc == -ENOSPC)
            reply_error(c, r->op, r->req_id, SIMCACHE_ENOSPC,
                        "host tier full of leased entries; release leases or raise host_capacity");
        else
            reply_error(c, r->op, r->req_id, SIMCACHE_ENOMEM, "cannot reserve space: %s",
                        strerror(-rc));
        return;
    }
    e->host_off = off;
    uint8_t *dst = store_base(d->store) + off;
    memcpy(dst, p->staging.base, p->size);
    e->checksum = XXH3_64bits(dst, p->size);
    commit_entry(r, p, e, unit, d->store);
}

/* Index the reserved and filled entry e (PENDING in st), make it live,
 * persist it when durability is sync, and reply. */
static void commit_entry(req_t *r, put_t *p, entry_t *e, const float *unit, store_t *st)
{
    client_t *c = r->c;
    daemon_t *d = c->d;
    uint64_t token = p->token;
    if (catalog_entry_index(d, e, unit)) {
        store_abort(st, e->id);   /* on_drop frees e */
        reply_error(c, r->op, r->req_id, SIMCACHE_ENOMEM, "cannot index the entry");
        return;
    }
    store_commit(st, e->id);
    if (st == d->store) tier_note_dirty(d, e->id);
    c->ns->puts++;
    d->stats.puts++;
    d->stats.put_bytes += e->size;
    if (tier_on(d) && strcmp(d->cfg.durability, "sync") == 0) {
        /* sync durability: acknowledged only once the blob and its record are on disk. */
        int prc = tier_persist(d, e);
        if (prc) {
            /* The put stays open, as for every commit error: the client
             * aborts it (and learns then whether its buffer is kept). */
            cache_delete(d, e->id);
            reply_error(c, r->op, r->req_id, prc, "put not made durable: disk tier %s",
                        prc == SIMCACHE_ENOSPC ? "full" : "write failed");
            return;
        }
    }
    uint32_t kept = retire_put(c, take_put(c, token));
    size_t roff = begin_ok(r);
    proto_wr_u64(&c->out, e->id);
    proto_wr_u32(&c->out, kept);
    proto_wr_frame_end(&c->out, roff);
}

static void write_match(client_t *c, entry_t *e, lease_t *l, float sim)
{
    proto_match_t m = {
        .id = e->id, .lease = l->id, .similarity = sim,
        .tier = l->gpu ? SIMCACHE_TIER_GPU : SIMCACHE_TIER_HOST,
        .offset = l->off, .size = l->size, .layout = e->layout, .meta_len = e->meta_len, .meta = e->meta,
    };
    proto_wr_match(&c->out, &m);
}

/* Put a found entry where client c reads it: a client that has not mapped
 * the GPU arena gets GPU entries moved to the host tier (NULL if that
 * fails); a client that asked for device placement gets host entries moved
 * to the GPU tier (when that fails it reads them in the host tier). */
static void place(client_t *c, entry_t **e)
{
    daemon_t *d = c->d;
    if (!*e) return;
    if ((*e)->on_gpu && !c->gpu_attached) {
        if (gtier_to_host(d, *e)) *e = NULL;
    } else if (!(*e)->on_gpu && c->prefer_device) {
        gtier_promote(d, *e);
    }
}

/* Entry id of namespace ns (NULL: any) brought into a memory tier (tier.h):
 * 0 with *e (NULL if absent), SIMCACHE_ECORRUPT (its disk copy failed its
 * checksum and was dropped), SIMCACHE_ENOSPC (no host room to bring it
 * back), or 1 when c's request waits for its promotion
 * (server_wake resumes it). */
static int fetch(client_t *c, uint64_t id, ns_t *ns, int may_wait, entry_t **e)
{
    int rc = tier_fetch(c->d, id, ns, c, may_wait, e);
    if (rc != -EINPROGRESS) return rc;
    c->waits++;
    return 1;
}

/* Returned when the request must wait for a promotion (c->waits > 0). */
#define WAIT 2

/* Entry id (0: none) brought where c reads it: 0 with *e (NULL if it is
 * gone), or WAIT. A disk hit comes back to the host tier; one whose blob
 * failed its checksum has just been dropped: a miss (a lookup answers from
 * the live entries; after a wait its replay finds the next best). */
static int fetch_hit(client_t *c, uint64_t id, entry_t **e)
{
    *e = NULL;
    if (!id) return 0;
    if (fetch(c, id, NULL, c->replays < MAX_REPLAYS, e) > 0) return WAIT;
    place(c, e);
    return 0;
}

/* The best entry for one unit embedding, brought into the host tier: 0 with
 * *id, *sim and *e (NULL on a miss), or WAIT. */
static int search_one(client_t *c, const float *unit, float threshold, uint64_t *id, float *sim,
                      entry_t **e)
{
    *e = NULL;
    if (index_search(c->ns->index, unit, threshold, id, sim) != 1) return 0;
    return fetch_hit(c, *id, e);
}

/* Count a lookup and, on a hit (e not NULL), lease the entry. */
static int lease_hit(client_t *c, entry_t *e, lease_t **l_out)
{
    daemon_t *d = c->d;
    d->stats.lookups++;
    c->ns->lookups++;
    if (!e) {
        d->stats.misses++;
        return SIMCACHE_MISS;
    }
    int rc = lease_new(d, &c->leases, e->id, l_out);
    if (rc) {
        d->stats.misses++;
        return rc;
    }
    e->hits++;
    e->last_hit_us = now_us();
    c->ns->hits++;
    d->stats.hits++;
    return 0;
}

static int read_threshold(req_t *r, float *t)
{
    float v = proto_rd_f32(&r->rd);
    uint32_t flags = proto_rd_u32(&r->rd);
    if (!r->rd.err && flags) {
        reply_error(r->c, r->op, r->req_id, SIMCACHE_EINVAL,
                    "%s flags 0x%" PRIx32 " are reserved (send 0)", proto_op_name(r->op), flags);
        return -1;
    }
    if (isnan(v) || v < 0) v = (float)r->c->d->cfg.default_threshold;
    if (v > 1.0f) {
        reply_error(r->c, r->op, r->req_id, SIMCACHE_EINVAL, "threshold %g above 1", (double)v);
        return -1;
    }
    *t = v;
    return 0;
}

static void do_lookup(req_t *r)
{
    client_t *c = r->c;
    float threshold, sim = 0;
    if (read_threshold(r, &threshold)) return;
    const float *unit = take_embedding(r);
    if (!unit) return;
    entry_t *e = NULL;
    lease_t *l = NULL;
    uint64_t id;
    int rc = search_one(c, unit, threshold, &id, &sim, &e);
    if (rc == WAIT) return;
    rc = lease_hit(c, e, &l);
    if (rc < 0) {
        reply_error(c, r->op, r->req_id, rc, "%s", rc == SIMCACHE_ELIMIT
                    ? "lease limit reached (max_leases_per_client); release some"
                    : "cannot lease the match");
        return;
    }
    size_t off = begin_ok(r);
    proto_wr_u32(&c->out, rc == 0);
    if (rc == 0) write_match(c, e, l, sim);
    proto_wr_frame_end(&c->out, off);
}

static void do_lookup_batch(req_t *r)
{
    client_t *c = r->c;
    daemon_t *d = c->d;
    float threshold;
    if (read_threshold(r, &threshold)) return;
    uint32_t n = proto_rd_u32(&r->rd);
    uint32_t dim = proto_rd_u32(&r->rd);
    if (r->rd.err) {
        reply_error(c, r->op, r->req_id, SIMCACHE_EPROTO, "lookup_batch payload truncated");
        return;
    }
    if (n == 0 || n > SIMCACHE_MAX_BATCH) {
        reply_error(c, r->op, r->req_id, n ? SIMCACHE_ETOOBIG : SIMCACHE_EINVAL,
                    "batch of %" PRIu32 " embeddings (1..%u)", n, SIMCACHE_MAX_BATCH);
        return;
    }
    if (dim != c->ns->dim) {
        reply_error(c, r->op, r->req_id, SIMCACHE_EDIM,
                    "embeddings have dimension %" PRIu32 ", namespace has %" PRIu32, dim, c->ns->dim);
        return;
    }
    const void *raw = proto_rd_bytes(&r->rd, (size_t)n * dim * sizeof(float));
    if (check_done(r)) return;
    if (c->leases.n + n > d->cfg.max_leases_per_client) {
        reply_error(c, r->op, r->req_id, SIMCACHE_ELIMIT,
                    "batch of %" PRIu32 " could exceed the lease limit (%" PRIu32 " held)", n,
                    c->leases.n);
        return;
    }
    float *units = malloc((size_t)n * dim * sizeof(float));
    if (!units) {
        reply_error(c, r->op, r->req_id, SIMCACHE_ENOMEM, "out of memory");
        return;
    }
    memcpy(units, raw, (size_t)n * dim * sizeof(float));
    for (uint32_t i = 0; i < n; i++) {
        if (vec_normalize(units + (size_t)i * dim, dim, units + (size_t)i * dim)) {
            reply_error(c, r->op, r->req_id, SIMCACHE_EEMBED,
                        "embedding %" PRIu32 " holds NaN or Inf, or is the zero vector", i);
            free(units);
            return;
        }
    }
    /* Search all first: every disk hit starts its promotion now (they run
     * together) and the batch replays once all are in. */
    uint64_t *ids = malloc((size_t)n * sizeof *ids);
    float *sims = malloc((size_t)n * sizeof *sims);
    entry_t **es = malloc((size_t)n * sizeof *es);
    if (!ids || !sims || !es) {
        reply_error(c, r->op, r->req_id, SIMCACHE_ENOMEM, "out of memory");
        goto out;
    }
    int wait = 0;
    /* gpuscore.c answers the whole batch on the GPU where that applies;
     * else the index searches the batch together (each chunk of its codes
     * read once for all the queries). ids[i] 0: a miss. */
    if (!gpuscore_batch(d, c->ns, units, n, threshold, ids, sims))
        index_search_batch(c->ns->index, units, n, threshold, ids, sims);
    for (uint32_t i = 0; i < n; i++)
        if (fetch_hit(c, ids[i], &es[i]) == WAIT)
            wait = 1;
    if (wait) goto out;
    size_t off = begin_ok(r);
    proto_wr_u32(&c->out, n);
    for (uint32_t i = 0; i < n; i++) {
        /* A synchronous promotion for a later item may have evicted an
         * earlier one: look again (synchronously) before leasing. */
        entry_t *e = es[i];
        if (e) {
            fetch(c, ids[i], NULL, 0, &e);
            place(c, &e);
        }
        lease_t *l = NULL;
        int rc = lease_hit(c, e, &l);
        proto_wr_u32(&c->out, rc == 0);
        if (rc == 0) write_match(c, e, l, sims[i]);
    }
    proto_wr_frame_end(&c->out, off);
out:
    free(ids);
    free(sims);
    free(es);
    free(units);
}

static void do_get(req_t *r)
{
    client_t *c = r->c;
    uint64_t id = proto_rd_u64(&r->rd);
    if (check_done(r)) return;
    /* Ids of other namespaces are not revealed: they read as absent. */
    entry_t *e = NULL;
    int frc = fetch(c, id, c->ns, c->replays < MAX_REPLAYS, &e);
    if (frc > 0) return;
    place(c, &e);
    c->d->stats.gets++;
    if (frc == SIMCACHE_ENOSPC) {
        reply_error(c, r->op, r->req_id, SIMCACHE_ENOSPC,
                    "entry %" PRIu64 " is on disk and the host tier is full of leased entries; "
                    "release leases or raise host_capacity", id);
        return;
    }
    if (frc == SIMCACHE_ECORRUPT) {
        /* The entry named existed; its disk copy failed its checksum and
         * was dropped (a second get reads it as absent). */
        reply_error(c, r->op, r->req_id, SIMCACHE_ECORRUPT,
                    "entry %" PRIu64 " failed its checksum on disk and was dropped", id);
        return;
    }
    if (!e) {
        reply_error(c, r->op, r->req_id, SIMCACHE_ENOTFOUND, "no entry %" PRIu64 " in this namespace", id);
        return;
    }
    lease_t *l;
    int rc = lease_new(c->d, &c->leases, id, &l);
    if (rc) {
        reply_error(c, r->op, r->req_id, rc, "cannot lease entry %" PRIu64, id);
        return;
    }
    size_t off = begin_ok(r);
    write_match(c, e, l, 1.0f);
    proto_wr_frame_end(&c->out, off);
}

static void do_release(req_t *r)
{
    client_t *c = r->c;
    daemon_t *d = c->d;
    uint64_t lid = proto_rd_u64(&r->rd);
    if (check_done(r)) return;
    lease_t *l = lease_find(d, lid);
    if (!l) {
        if (lid && lid <= d->next_lease_id)
            reply_error(c, r->op, r->req_id, SIMCACHE_ELEASE, "lease %" PRIu64 " already released", lid);
        else
            reply_error(c, r->op, r->req_id, SIMCACHE_ELEASE, "no lease %" PRIu64, lid);
        return;
    }
    if (l->owner != &c->leases) {
        reply_error(c, r->op, r->req_id, SIMCACHE_EPERM, "lease %" PRIu64 " belongs to another client", lid);
        return;
    }
    lease_end(d, l);
    d->stats.releases++;
    size_t off = begin_ok(r);
    proto_wr_frame_end(&c->out, off);
}

/* Is id an entry of c's namespace, in any tier (never moving it)? Ids of
 * other namespaces read as absent. */
static int own_entry(client_t *c, uint64_t id)
{
    daemon_t *d = c->d;
    entry_t *e = cache_mem_entry(d, id);
    if (!e) e = tier_disk_entry(d, id);
    return e && e->ns == c->ns && e->indexed;
}

static void do_delete(req_t *r)
{
    client_t *c = r->c;
    uint64_t id = proto_rd_u64(&r->rd);
    if (check_done(r)) return;
    if (!own_entry(c, id)) {
        reply_error(c, r->op, r->req_id, SIMCACHE_ENOTFOUND, "no entry %" PRIu64 " in this namespace", id);
        return;
    }
    cache_delete(c->d, id);
    size_t off = begin_ok(r);
    proto_wr_frame_end(&c->out, off);
}

static void do_stats(req_t *r)
{
    client_t *c = r->c;
    daemon_t *d = c->d;
    if (check_done(r)) return;
    store_stats_t st, gs = { 0 };
    store_get_stats(d->store, &st);
    if (d->gstore) store_get_stats(d->gstore, &gs);
    const uint64_t v[] = {
        st.entries + gs.entries, c->ns->entries, st.bytes_used, st.capacity, d->stats.lookups, d->stats.hits,
        d->stats.misses, d->stats.puts, st.evictions, u64map_len(&d->leases), d->n_clients,
        d->n_namespaces,
    };
    size_t off = begin_ok(r);
    proto_wr_u32(&c->out, (uint32_t)(sizeof v / sizeof v[0]));
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) proto_wr_u64(&c->out, v[i]);
    proto_wr_frame_end(&c->out, off);
}

static void do_route(req_t *r)
{
    client_t *c = r->c;
    uint32_t flags = proto_rd_u32(&r->rd);
    if (!r->rd.err && flags) {
        reply_error(c, r->op, r->req_id, SIMCACHE_EINVAL,
                    "route flags 0x%" PRIx32 " are reserved (send 0)", flags);
        return;
    }
    const float *unit = take_embedding(r);
    if (!unit) return;
    route_t rt;
    peers_route(c->d, c->ns, unit, &rt);
    proto_route_reply_t rr = { rt.node_id, (uint16_t)strlen(rt.node_id), rt.addr,
                               (uint16_t)strlen(rt.addr), rt.similarity, rt.flags, rt.load };
    size_t off = begin_ok(r);
    proto_wr_route_reply(&c->out, &rr);
    proto_wr_frame_end(&c->out, off);
}

static void do_ping(req_t *r)
{
    size_t off = begin_ok(r);
    proto_wr_bytes(&r->c->out, r->rd.p, r->rd.left);
    proto_wr_frame_end(&r->c->out, off);
}

static void dispatch(client_t *c, const proto_hdr_t *h, const uint8_t *payload)
{
    req_t r = { .c = c, .op = h->opcode, .req_id = h->req_id };
    proto_rd_init(&r.rd, payload, h->len);
    c->requests++;
    if (h->status != 0) {
        reply_error(c, h->opcode, h->req_id, SIMCACHE_EPROTO, "request with nonzero status field");
        return;
    }
    if (h->opcode == 0 || h->opcode >= OP_MAX_) {
        reply_error(c, h->opcode, h->req_id, SIMCACHE_EOPCODE, "unknown opcode %u", h->opcode);
        return;
    }
    if (h->opcode == OP_HELLO) {
        if (c->d->draining) {
            fatal_frame(c, h->opcode, h->req_id, SIMCACHE_ESHUTDOWN, "daemon is shutting down");
            return;
        }
        if (c->ns) {
            reply_error(c, h->opcode, h->req_id, SIMCACHE_ESTATE, "hello sent twice");
            return;
        }
        do_hello(&r);
        return;
    }
    if (!c->ns && h->opcode != OP_PING) {
        reply_error(c, h->opcode, h->req_id, SIMCACHE_ESTATE, "%s before hello",
                    proto_op_name(h->opcode));
        return;
    }
    if (c->d->draining && h->opcode != OP_RELEASE && h->opcode != OP_PING) {
        reply_error(c, h->opcode, h->req_id, SIMCACHE_ESHUTDOWN, "daemon is shutting down");
        return;
    }
    switch (h->opcode) {
    case OP_PUT_BEGIN: do_put_begin(&r); break;
    case OP_PUT_COMMIT: do_put_commit(&r); break;
    case OP_PUT_ABORT: do_put_abort(&r); break;
    case OP_LOOKUP: do_lookup(&r); break;
    case OP_LOOKUP_BATCH: do_lookup_batch(&r); break;
    case OP_GET: do_get(&r); break;
    case OP_RELEASE: do_release(&r); break;
    case OP_DELETE: do_delete(&r); break;
    case OP_STATS: do_stats(&r); break;
    case OP_PING: do_ping(&r); break;
    case OP_ROUTE: do_route(&r); break;
    case OP_GPU_ATTACH: do_gpu_attach(&r); break;
    default: break;
    }
}

/* Decode whole frames from the input buffer. */
static void process_input(client_t *c)
{
    while (!c->closing && !c->waits && c->in_len - c->in_start >= PROTO_HDR_SIZE) {
        proto_hdr_t h;
        int rc = proto_hdr_decode(c->in + c->in_start, c->d->cfg.max_frame, 0, &h);
        if (rc) {
            if (rc == SIMCACHE_ETOOBIG)
                fatal_frame(c, h.opcode, h.req_id, rc, "frame payload over max_frame");
            else if (rc == SIMCACHE_EVERSION)
                fatal_frame(c, h.opcode, h.req_id, rc, "unsupported protocol version");
            else
                fatal_frame(c, h.opcode, h.req_id, rc, "bad magic");
            return;
        }
        size_t need = PROTO_HDR_SIZE + (size_t)h.len;
        if (c->in_len - c->in_start < need) return;
        dispatch(c, &h, c->in + c->in_start + PROTO_HDR_SIZE);
        if (c->waits) {
            c->replays++;
            return;
        }
        c->replays = 0;
        c->in_start += need;
        if (c->out.err) {
            log_warn("client %" PRIu64 ": out of memory for replies; closing", c->id);
            c->closing = 1;
        }
    }
}

/* A client that starts a frame and never finishes it would hold its slot
 * (and its buffer) forever: give it frame_timeout_ms. */
static void update_frame_timer(client_t *c)
{
    int partial = c->in_len > c->in_start && !c->closing && !c->waits;
    if (partial && !evtimer_pending(c->ev_frame, NULL)) {
        uint32_t ms = c->d->cfg.frame_timeout_ms;
        struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
        evtimer_add(c->ev_frame, &tv);
    } else if (!partial) {
        evtimer_del(c->ev_frame);
    }
}

static void on_frame_timeout(evutil_socket_t fd, short what, void *arg)
{
    client_t *c = arg;
    (void)fd;
    (void)what;
    c->d->stats.protocol_errors++;
    log_warn("client %" PRIu64 ": frame unfinished for %u ms; disconnecting", c->id,
             c->d->cfg.frame_timeout_ms);
    client_free(c);
}

static void update_reading(client_t *c)
{
    int want = !c->closing && !c->waits && (c->out.len - c->out_sent) < OUT_HIGH_WATER;
    if (want && !c->reading) event_add(c->ev_read, NULL);
    if (!want && c->reading) event_del(c->ev_read);
    c->reading = want;
}

static void after_io(client_t *c)
{
    if (flush_out(c)) {
        client_free(c);
        return;
    }
    /* A drained input buffer goes back to its usual size: a connection that
     * once sent a large put must not keep its frame's memory (counted in
     * frame_memory_per_uid) while idle. */
    if (c->in_start == c->in_len && c->in_cap > 2 * READ_CHUNK && !c->waits) {
        c->in_start = c->in_len = 0;
        in_resize(c, 0);
    }
    if (c->closing && c->out_sent == c->out.len) {
        client_free(c);
        return;
    }
    update_reading(c);
    update_frame_timer(c);
}

void server_wake(void *waiter)
{
    client_t *c = waiter;
    if (c->waits == 0 || --c->waits) return;
    process_input(c);
    after_io(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    client_t *c = arg;
    (void)what;
    c->last_io_us = mono_us();
    if (c->d->cfg.poll_us)
        c->d->last_request_us = c->last_io_us; /* only daemon_run's polling reads it */
    for (int rounds = 0; rounds < 16 && !c->closing; rounds++) {
        /* Compact, then make room for at least the rest of the current frame. */
        if (c->in_start) {
            memmove(c->in, c->in + c->in_start, c->in_len - c->in_start);
            c->in_len -= c->in_start;
            c->in_start = 0;
        }
        size_t want = READ_CHUNK;
        if (c->in_len >= PROTO_HDR_SIZE) {
            proto_hdr_t h;
            if (proto_hdr_decode(c->in, c->d->cfg.max_frame, 0, &h) == 0 &&
                PROTO_HDR_SIZE + (size_t)h.len > c->in_len + want)
                want = PROTO_HDR_SIZE + (size_t)h.len - c->in_len;
        }
        if (c->in_cap - c->in_len < want && in_resize(c, c->in_len + want)) {
            uint64_t budget = c->d->cfg.frame_memory_per_uid;
            if (budget && c->use->in_bytes - c->in_cap + c->in_len + want > budget) {
                c->d->stats.rejected_frames++;
                log_warn("client %" PRIu64 " (uid %u): unfinished frames of this uid would "
                         "take over frame_memory_per_uid (%" PRIu64 " bytes); closing",
                         c->id, (unsigned)c->uid, budget);
                fatal_frame(c, 0, 0, SIMCACHE_EBUSY,
                            "unfinished frames of this uid over frame_memory_per_uid");
                after_io(c);
            } else {
                log_warn("client %" PRIu64 ": out of memory for input; closing", c->id);
                client_free(c);
            }
            return;
        }
        ssize_t n = read(fd, c->in + c->in_len, c->in_cap - c->in_len);
        if (n == 0) {
            if (c->in_len > c->in_start)
                log_debug("client %" PRIu64 ": closed mid-frame (%zu bytes pending)", c->id,
                          c->in_len - c->in_start);
            client_free(c);
            return;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            client_free(c);
            return;
        }
        c->in_len += (size_t)n;
        process_input(c);
        if ((c->out.len - c->out_sent) >= OUT_HIGH_WATER) break;
        if ((size_t)n < c->in_cap - c->in_len + (size_t)n) break; /* socket drained */
    }
    after_io(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    client_t *c = arg;
    /* A client paused for back-pressure may have whole frames buffered. */
    if (flush_out(c) == 0 && c->out.len - c->out_sent < OUT_HIGH_WATER) process_input(c);
    after_io(c);
}

static void client_free(client_t *c)
{
    daemon_t *d = c->d;
    uint32_t leases = c->leases.n;
    if (c->waits) tier_waiter_gone(d, c);
    free(c->unit);
    lease_end_all(d, &c->leases);
    size_t pos = 0;
    uint64_t key;
    void *val;
    size_t puts = u64map_len(&c->puts);
    while (u64map_next(&c->puts, &pos, &key, &val)) put_free(val);
    u64map_clear(&c->puts);
    arena_close(&c->spare);
    d->gstage_bytes -= c->gstage_bytes;
    gpu_arena_free(c->gstage);
    for (uint32_t i = 0; i < c->n_gretired; i++) gpu_arena_free(c->gretired[i]);
    free(c->gretired);
    for (size_t i = 0; i < c->nfds; i++) close(c->fds[i].fd);
    free(c->fds);
    if (c->ns) c->ns->clients--;
    event_free(c->ev_read);
    event_free(c->ev_write);
    event_free(c->ev_frame);
    close(c->fd);
    if (c->prev) c->prev->next = c->next;
    else d->clients = c->next;
    if (c->next) c->next->prev = c->prev;
    d->n_clients--;
    log_info("client %" PRIu64 " left (%" PRIu64 " requests; reclaimed %" PRIu32
             " leases, %zu unfinished puts)", c->id, c->requests, leases, puts);
    proto_wr_free(&c->out);
    in_resize(c, 0);
    uid_use_put(d, c->use);
    free(c);
}

/* Refuse a connection with one error frame, best effort. */
static void refuse(int fd, int code, const char *msg)
{
    proto_wr_t w;
    proto_wr_init(&w);
    size_t off = proto_wr_frame_begin(&w, OP_HELLO | OP_REPLY, 0, code);
    proto_wr_str(&w, msg, strlen(msg));
    proto_wr_frame_end(&w, off);
    if (!w.err) {
        ssize_t n = send(fd, w.buf, w.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)n;
    }
    proto_wr_free(&w);
    close(fd);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    (void)l;
    (void)sa;
    (void)len;
    daemon_t *d = arg;
    principal_t cred;
    if (principal_of(fd, &cred)) {
        d->stats.rejected_connections++;
        log_warn("refused a connection: no peer credentials (SO_PEERCRED: %s)", strerror(errno));
        refuse(fd, SIMCACHE_EPERM, "no peer credentials");
        return;
    }
    if (d->draining) {
        refuse(fd, SIMCACHE_ESHUTDOWN, "daemon is shutting down");
        return;
    }
    if (!principal_is_client(d, &cred)) {
        d->stats.rejected_connections++;
        log_warn("refused pid %d uid %u: not in allow_uids", (int)cred.pid, (unsigned)cred.uid);
        refuse(fd, SIMCACHE_EPERM, "uid not allowed (allow_uids)");
        return;
    }
    if (d->n_clients >= d->cfg.max_clients) {
        d->stats.rejected_connections++;
        log_warn("refused pid %d: %u clients (max_clients)", (int)cred.pid, d->n_clients);
        refuse(fd, SIMCACHE_EBUSY, "too many connections (max_clients)");
        return;
    }
    uid_use_t *use = uid_use_get(d, cred.uid);
    if (use && d->cfg.max_clients_per_uid && use->conns >= d->cfg.max_clients_per_uid) {
        d->stats.rejected_connections++;
        /* A flood is logged once per hundred refusals, not per connection. */
        if (d->stats.rejected_connections % 100 == 1)
            log_warn("refused pid %d uid %u: %u connections of this uid (max_clients_per_uid)",
                     (int)cred.pid, (unsigned)cred.uid, use->conns);
        refuse(fd, SIMCACHE_EBUSY, "too many connections of this uid (max_clients_per_uid)");
        return;
    }
    client_t *c = use ? calloc(1, sizeof *c) : NULL;
    if (!c) {
        if (use && use->conns == 0) {
            use->conns = 1;
            uid_use_put(d, use);
        }
        refuse(fd, SIMCACHE_ENOMEM, "out of memory");
        return;
    }
    use->conns++;
    c->use = use;
    c->last_io_us = mono_us();
    c->d = d;
    c->fd = fd;
    c->id = ++d->next_client_id;
    c->pid = cred.pid;
    c->uid = cred.uid;
    c->spare.fd = -1;
    proto_wr_init(&c->out);
    c->ev_read = event_new(d->base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->ev_write = event_new(d->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    c->ev_frame = evtimer_new(d->base, on_frame_timeout, c);
    if (!c->ev_read || !c->ev_write || !c->ev_frame) {
        if (c->ev_read) event_free(c->ev_read);
        if (c->ev_write) event_free(c->ev_write);
        if (c->ev_frame) event_free(c->ev_frame);
        uid_use_put(d, c->use);
        free(c);
        refuse(fd, SIMCACHE_ENOMEM, "out of memory");
        return;
    }
    c->next = d->clients;
    if (d->clients) d->clients->prev = c;
    d->clients = c;
    d->n_clients++;
    d->stats.connections++;
    event_add(c->ev_read, NULL);
    c->reading = 1;
    log_debug("client %" PRIu64 " connected (pid %d uid %u)", c->id, (int)cred.pid, (unsigned)cred.uid);
}

/* Once a second: close connections idle for idle_timeout_ms that hold
 * nothing (no lease, no unfinished put, no partial frame, no request
 * waiting). A connection with a lease is never idle: its client may be
 * reading the bytes. */
static void on_idle_sweep(evutil_socket_t fd, short what, void *arg)
{
    daemon_t *d = arg;
    (void)fd;
    (void)what;
    uint64_t limit = (uint64_t)d->cfg.idle_timeout_ms * 1000u, now = mono_us();
    if (!limit) return;
    client_t *next;
    for (client_t *c = d->clients; c; c = next) {
        next = c->next;
        if (c->leases.n || u64map_len(&c->puts) || c->in_len > c->in_start || c->waits ||
            c->out_sent < c->out.len || now - c->last_io_us < limit)
            continue;
        d->stats.idle_closed++;
        log_debug("client %" PRIu64 " (uid %u): idle for %" PRIu32 " ms; closing", c->id,
                  (unsigned)c->uid, d->cfg.idle_timeout_ms);
        client_free(c);
    }
}

int server_listen(daemon_t *d)
{
    d->listener = listener_open(d, d->cfg.socket, on_accept, d, "clients");
    if (!d->listener) return -1;
    struct timeval tv = { 1, 0 };
    d->idle_sweep = event_new(d->base, -1, EV_PERSIST, on_idle_sweep, d);
    if (!d->idle_sweep || event_add(d->idle_sweep, &tv)) {
        log_error("cannot start the idle-connection timer");
        return -1;
    }
    return 0;
}

void server_close_listener(daemon_t *d)
{
    listener_close(&d->listener, d->cfg.socket);
}

void server_close_all(daemon_t *d)
{
    if (d->idle_sweep) event_free(d->idle_sweep);
    d->idle_sweep = NULL;
    while (d->clients) client_free(d->clients);
    u64map_clear(&d->uid_use);   /* empty by now: its table */
}

void server_foreach_client(daemon_t *d,
                           void (*fn)(void *arg, uint64_t id, int pid, unsigned uid, const char *ns,
                                      uint32_t leases, uint32_t puts, uint64_t requests),
                           void *arg)
{
    for (client_t *c = d->clients; c; c = c->next)
        fn(arg, c->id, (int)c->pid, (unsigned)c->uid, c->ns ? c->ns->name : "(no hello)",
           c->leases.n, (uint32_t)u64map_len(&c->puts), c->requests);
}
