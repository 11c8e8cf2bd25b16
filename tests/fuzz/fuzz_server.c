/* fuzz_server.c - libFuzzer target: the bytes a client writes to simcached,
 * read by the real daemon.
 *
 * One real daemon (daemon_init: host tier of 1 MiB, disk tier on, the
 * emulated GPU tier, all under a temporary directory) runs in the fuzzer's
 * process. Each input is one client connection to its real socket: the
 * bytes go in as the client's stream, the daemon's own loop (server.c's
 * handlers, the tiers, the index) answers, and the connection ends. The
 * first input byte may put a valid hello (and a gpu_attach) in front, so
 * that short inputs reach every handler.
 *
 * Checked after every input, on top of ASan and UBSan: every reply is a
 * well-formed frame answering the request at its position (same request id
 * and opcode, in order; an error carries a bounded message), fds come only
 * with the replies that pass them, and once the connection is gone the
 * daemon holds nothing for it (no client, lease, pin, staging buffer or
 * promotion). The entries it made are then flushed and the id counters
 * reset, so an input behaves the same whatever ran before it; the daemon is
 * restarted every RESTART_NAMESPACES namespaces, which are never freed.
 * Each request payload is also checked against the codec's promises
 * (proto_utf8_valid against the Unicode table, layout sizes against checked
 * multiplication, hello and match records re-encoding to their bytes).
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cache.h"
#include "config.h"
#include "daemon.h"
#include "proto.h"
#include "store.h"
#include "tier.h"
#include "u64map.h"

#define DIM 4
#define RESTART_NAMESPACES 256
#define MAX_REQUESTS 4096     /* request frames checked per input; more are still sent */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static daemon_t d;
static int trace;             /* FUZZ_TRACE=1: print each reply (replaying a seed) */
static config_t saved_cfg;
static char dir[64];

static void must(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_server: invariant broken: %s\n", what);
        abort();
    }
}

static void set(config_t *c, const char *key, const char *value)
{
    char err[256];
    if (config_set(c, key, value, 0, err, sizeof err)) {
        fprintf(stderr, "fuzz_server: config %s: %s\n", key, err);
        exit(1);
    }
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void stop_daemon(void)
{
    daemon_fini(&d);
    memset(&d, 0, sizeof d);
}

static void start_daemon(void)
{
    memset(&d, 0, sizeof d);
    d.cfg = saved_cfg;
    if (daemon_init(&d)) {
        fprintf(stderr, "fuzz_server: daemon_init failed\n");
        exit(1);
    }
}

static void at_exit(void)
{
    stop_daemon();
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "%s/simcache-fuzz-server.XXXXXX",
             getenv("TMPDIR") && strlen(getenv("TMPDIR")) < 24 ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        perror("fuzz_server: mkdtemp");
        exit(1);
    }
    char path[128];
    config_defaults(&saved_cfg);
    snprintf(path, sizeof path, "%s/c.sock", dir);
    set(&saved_cfg, "socket", path);
    snprintf(path, sizeof path, "%s/a.sock", dir);
    set(&saved_cfg, "admin_socket", path);
    snprintf(path, sizeof path, "%s/data", dir);
    set(&saved_cfg, "data_dir", path);
    set(&saved_cfg, "log_level", "error");
    set(&saved_cfg, "host_capacity", "1M");
    set(&saved_cfg, "host_prefault", "0");
    set(&saved_cfg, "host_huge_pages", "off");
    set(&saved_cfg, "disk_capacity", "8M");
    set(&saved_cfg, "gpu_capacity", "2M");
    set(&saved_cfg, "max_namespaces", "1024");
    set(&saved_cfg, "max_leases_per_client", "64");
    set(&saved_cfg, "max_puts_per_client", "8");
    /* Small puts keep their staging buffer for the next, large ones do not. */
    set(&saved_cfg, "staging_keep_bytes", "64K");
    /* Large enough for any input (libFuzzer's -max_len), small enough that
     * the ETOOBIG path is reachable. */
    set(&saved_cfg, "max_frame", "64K");
    trace = getenv("FUZZ_TRACE") != NULL;
    if (trace) set(&saved_cfg, "log_level", "debug");
    start_daemon();
    atexit(at_exit);
    return 0;
}

/* ---- the codec, against references ---- */

/* Well-formed UTF-8 per Unicode 15, table 3-7, with NUL refused too. */
static int ref_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i], lo = 0x80, hi = 0xbf;
        size_t k;
        if (c == 0) return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) k = 1;
        else if (c == 0xe0) { k = 2; lo = 0xa0; }
        else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) k = 2;
        else if (c == 0xed) { k = 2; hi = 0x9f; }
        else if (c == 0xf0) { k = 3; lo = 0x90; }
        else if (c >= 0xf1 && c <= 0xf3) k = 3;
        else if (c == 0xf4) { k = 3; hi = 0x8f; }
        else return 0;
        if (n - i - 1 < k) return 0;
        if (s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (size_t j = 2; j <= k; j++)
            if (s[i + j] < 0x80 || s[i + j] > 0xbf) return 0;
        i += k + 1;
    }
    return 1;
}

static uint64_t ref_layout_bytes(const simcache_layout_t *l)
{
    uint64_t n;
    switch (l->dtype) {
    case SIMCACHE_DTYPE_F32: n = 4; break;
    case SIMCACHE_DTYPE_F16:
    case SIMCACHE_DTYPE_BF16: n = 2; break;
    case SIMCACHE_DTYPE_F8E4M3:
    case SIMCACHE_DTYPE_F8E5M2:
    case SIMCACHE_DTYPE_I8: n = 1; break;
    default: return 0;
    }
    if (l->parts > 2) return 0;   /* K and V, or one latent: nothing else is a layout */
    const uint32_t f[5] = { l->parts, l->layers, l->kv_heads, l->head_dim, l->tokens };
    for (int i = 0; i < 5; i++)
        if (f[i] == 0 || __builtin_mul_overflow(n, (uint64_t)f[i], &n)) return 0;
    return n;
}

static void check_layout(const simcache_layout_t *l)
{
    uint64_t want = ref_layout_bytes(l);
    must(proto_layout_bytes(l) == want, "proto_layout_bytes disagrees with checked product");
    must((proto_layout_check(l, 0) == 0) == (want != 0),
         "proto_layout_check(size 0) disagrees with the layout rules");
    if (want) {
        must(proto_layout_check(l, want) == 0, "proto_layout_check refuses its own size");
        must(proto_layout_check(l, want + 1) == SIMCACHE_ELAYOUT, "proto_layout_check ignores size");
    }
}

/* A hello the daemon reads: strings checked by the rules, and a fully read
 * one re-encodes to its own bytes. */
static void check_hello(const uint8_t *p, size_t len)
{
    proto_rd_t r;
    proto_hello_t h;
    proto_rd_init(&r, p, len);
    int rc = proto_rd_hello(&r, &h);
    if (rc == SIMCACHE_EPROTO) return;
    must(rc == 0 || rc == SIMCACHE_ENAMESPACE, "hello: unexpected code");
    int ok = h.model_len >= 1 && h.model_len <= SIMCACHE_MAX_NAME && h.layout_fp_len >= 1 &&
             h.layout_fp_len <= SIMCACHE_MAX_NAME && h.tenant_len <= SIMCACHE_MAX_NAME &&
             ref_utf8_valid((const uint8_t *)h.model, h.model_len) &&
             ref_utf8_valid((const uint8_t *)h.layout_fp, h.layout_fp_len) &&
             ref_utf8_valid((const uint8_t *)h.tenant, h.tenant_len);
    must(ok == (rc == 0), "hello: ENAMESPACE does not match the namespace rules");
    proto_wr_t w;
    proto_wr_init(&w);
    proto_wr_hello(&w, &h);
    must(!w.err && w.len == len && memcmp(w.buf, p, len) == 0,
         "hello does not re-encode to its own bytes");
    proto_wr_free(&w);
}

/* Codec properties on any payload, from an exact-size copy (a read past it
 * is an ASan report). */
static void check_codec(const uint8_t *payload, size_t len, uint16_t op)
{
    uint8_t *p = malloc(len ? len : 1);
    must(p != NULL, "out of memory");
    memcpy(p, payload, len);
    must(proto_utf8_valid((const char *)p, len) == ref_utf8_valid(p, len),
         "proto_utf8_valid disagrees with the Unicode table");
    if (op == OP_HELLO) check_hello(p, len);

    proto_rd_t r;
    simcache_layout_t l;
    proto_rd_init(&r, p, len);
    proto_rd_layout(&r, &l);
    if (!r.err) check_layout(&l);

    /* A match record that reads to the end re-encodes to its own bytes. */
    proto_match_t m;
    proto_rd_init(&r, p, len);
    proto_rd_match(&r, &m);
    must(m.meta_len <= SIMCACHE_MAX_META, "match meta over the limit");
    if (proto_rd_done(&r) == 0) {
        proto_wr_t w;
        proto_wr_init(&w);
        proto_wr_match(&w, &m);
        must(!w.err && w.len == len && memcmp(w.buf, p, len) == 0,
             "match does not re-encode to its own bytes");
        proto_wr_free(&w);
    }
    free(p);
}

/* ---- the client side ---- */

typedef struct {
    uint16_t op;
    uint64_t req_id;
} sent_t;

/* The requests in the stream, cut as the daemon cuts them: whole frames up
 * to the first header it refuses (answered, then the connection closes).
 * Each payload also goes through the codec checks. */
static size_t cut_requests(const uint8_t *s, size_t n, sent_t *out, size_t max)
{
    size_t pos = 0, k = 0;
    while (n - pos >= PROTO_HDR_SIZE && k < max) {
        proto_hdr_t h;
        int rc = proto_hdr_decode(s + pos, d.cfg.max_frame, 0, &h);
        out[k++] = (sent_t){ h.opcode, h.req_id };
        if (rc) break;
        if (n - pos - PROTO_HDR_SIZE < h.len) {
            k--;   /* unfinished: never answered */
            break;
        }
        check_codec(s + pos + PROTO_HDR_SIZE, h.len, h.opcode);
        pos += PROTO_HDR_SIZE + h.len;
    }
    return k;
}

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    size_t fds;                   /* fds received */
} replies_t;

/* Read what the daemon sent, closing any fd that came with it. */
static void drain(int fd, replies_t *r)
{
    for (;;) {
        if (r->cap - r->len < 65536) {
            r->cap = r->cap * 2 + 65536;
            r->buf = realloc(r->buf, r->cap);
            must(r->buf != NULL, "out of memory");
        }
        struct iovec iov = { r->buf + r->len, r->cap - r->len };
        union {
            char buf[CMSG_SPACE(8 * sizeof(int))];
            struct cmsghdr align;
        } u;
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                              .msg_controllen = sizeof u.buf };
        ssize_t k = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        for (struct cmsghdr *cm = k >= 0 ? CMSG_FIRSTHDR(&msg) : NULL; cm;
             cm = CMSG_NXTHDR(&msg, cm)) {
            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
            size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < nfd; i++) {
                int x;
                memcpy(&x, CMSG_DATA(cm) + i * sizeof(int), sizeof x);
                close(x);
                r->fds++;
            }
        }
        must(k < 0 || !(msg.msg_flags & MSG_CTRUNC), "more fds on one reply than expected");
        if (k <= 0) return;
        r->len += (size_t)k;
    }
}

/* Every reply is a frame the client accepts, answering the request at its
 * position. */
static void check_replies(const replies_t *r, const sent_t *req, size_t nreq)
{
    size_t pos = 0, k = 0, fd_replies = 0;
    while (pos < r->len) {
        must(r->len - pos >= PROTO_HDR_SIZE, "reply stream ends inside a header");
        proto_hdr_t h;
        must(proto_hdr_decode(r->buf + pos, PROTO_MAX_REPLY, 0, &h) == 0,
             "reply header refused by proto_hdr_decode");
        must(r->len - pos - PROTO_HDR_SIZE >= h.len, "reply stream ends inside a payload");
        must(h.opcode & OP_REPLY, "reply without OP_REPLY");
        must(h.status <= 0, "reply with a positive status");
        if (k < nreq) {
            must(h.req_id == req[k].req_id, "reply does not echo its request's id");
            must(h.opcode == (uint16_t)(req[k].op | OP_REPLY), "reply opcode is not its request's");
        }
        k++;
        if (trace)
            fprintf(stderr, "  reply %s id %llu: %s\n", proto_op_name(h.opcode & ~OP_REPLY),
                    (unsigned long long)h.req_id, h.status ? proto_strerror(h.status) : "ok");
        const uint8_t *p = r->buf + pos + PROTO_HDR_SIZE;
        if (h.status < 0) {
            proto_rd_t rd;
            uint16_t n;
            proto_rd_init(&rd, p, h.len);
            must(proto_rd_str(&rd, PROTO_MAX_ERRMSG, &n) != NULL && proto_rd_done(&rd) == 0,
                 "error reply without a bounded message");
            must(proto_strerror(h.status) != NULL, "error code without a name");
        } else {
            uint16_t op = (uint16_t)(h.opcode & ~OP_REPLY);
            if (op == OP_HELLO || op == OP_PUT_BEGIN || op == OP_GPU_ATTACH) fd_replies++;
        }
        pos += PROTO_HDR_SIZE + h.len;
    }
    must(nreq >= MAX_REQUESTS || k <= nreq, "more replies than requests");
    must(r->fds <= fd_replies, "an fd came with a reply that passes none");
}

/* Run the daemon's loop until the connection is gone and nothing is in
 * flight. The daemon's end sees EOF once it has read everything. */
static void settle(int fd, replies_t *r)
{
    for (;;) {
        if (fd >= 0) drain(fd, r);
        tier_stats_t ts = { 0 };
        tier_get_stats(&d, &ts);
        if (d.n_clients == 0 && ts.promotions_in_flight == 0 && ts.flush_inflight == 0 &&
            (fd < 0 || d.stats.connections > 0))
            return;
        must(event_base_loop(d.base, EVLOOP_ONCE) >= 0, "event loop failed");
    }
}

/* Nothing of the connection is left; then flush the entries it made. */
static void check_and_reset(void)
{
    store_stats_t st;
    must(d.clients == NULL && d.n_clients == 0, "client still there after it closed");
    must(u64map_len(&d.leases) == 0, "lease left after its client closed");
    must(d.gstage_bytes == 0, "device staging bytes left after the client closed");
    store_get_stats(d.store, &st);
    must(st.bytes_pinned == 0 && st.pinned_entries == 0, "host extent pinned with no lease");
    must(st.pending == 0, "host extent pending with no put or promotion");
    if (d.gstore) {
        store_get_stats(d.gstore, &st);
        must(st.bytes_pinned == 0 && st.pinned_entries == 0, "GPU extent pinned with no lease");
        must(st.pending == 0, "GPU extent pending with no put");
    }
    for (ns_t *ns = d.namespaces; ns; ns = ns->next)
        must(ns->clients == 0, "namespace counts a client that is gone");

    if (trace) {
        tier_stats_t ts = { 0 };
        tier_get_stats(&d, &ts);
        store_get_stats(d.store, &st);
        fprintf(stderr, "  host: %llu entries, %llu evictions; disk: %llu only there, "
                "%llu demotions, %llu promotions (%llu waited for)\n",
                (unsigned long long)st.entries, (unsigned long long)st.evictions,
                (unsigned long long)ts.only_entries, (unsigned long long)ts.demotions,
                (unsigned long long)ts.promotions, (unsigned long long)ts.promotions_async);
    }
    cache_flush(&d, NULL);
    settle(-1, NULL);
    store_get_stats(d.store, &st);
    must(st.entries == 0 && st.bytes_used == 0, "host entries left after flush");
    if (d.gstore) {
        store_get_stats(d.gstore, &st);
        must(st.entries == 0 && st.bytes_used == 0, "GPU entries left after flush");
    }
    tier_stats_t ts;
    if (tier_get_stats(&d, &ts) == 0) must(ts.only_entries == 0, "disk entries left after flush");
    for (ns_t *ns = d.namespaces; ns; ns = ns->next)
        must(ns->entries == 0 && ns->bytes == 0, "namespace counts entries after flush");

    /* Nothing holds an id now: the next input numbers from 1 again. */
    d.next_put_token = 0;
    d.next_lease_id = 0;
    d.next_entry_id = 0;
    d.stats.connections = 0;
    if (d.n_namespaces >= RESTART_NAMESPACES) {
        stop_daemon();
        start_daemon();
    }
}

/* A valid hello (dim DIM), and a gpu_attach, written in front of the input. */
static void preamble(proto_wr_t *w, uint8_t mode)
{
    if (!(mode & 1)) return;
    proto_hello_t h = {
        .min_version = PROTO_VERSION_MIN, .max_version = PROTO_VERSION, .dim = DIM,
        .gpu_device = (mode & 2) ? 0 : -1, .model = "m", .model_len = 1,
        .layout_fp = "fp", .layout_fp_len = 2, .tenant = "", .tenant_len = 0,
    };
    size_t off = proto_wr_frame_begin(w, OP_HELLO, 0x7001, 0);
    proto_wr_hello(w, &h);
    proto_wr_frame_end(w, off);
    if (!(mode & 2)) return;
    off = proto_wr_frame_begin(w, OP_GPU_ATTACH, 0x7002, 0);
    proto_wr_u32(w, 0);
    proto_wr_u32(w, (mode & 4) ? PROTO_ATTACH_PREFER_DEVICE : 0);
    proto_wr_frame_end(w, off);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    proto_wr_t w;
    proto_wr_init(&w);
    preamble(&w, data[0]);
    proto_wr_bytes(&w, data + 1, size - 1);
    must(!w.err, "out of memory");

    static sent_t req[MAX_REQUESTS];
    size_t nreq = cut_requests(w.buf, w.len, req, MAX_REQUESTS);

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", d.cfg.socket);
    must(fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0, "cannot connect");

    replies_t r = { 0 };
    size_t sent = 0;
    while (sent < w.len) {
        ssize_t k = send(fd, w.buf + sent, w.len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k > 0) {
            sent += (size_t)k;
            continue;
        }
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK) break;   /* the daemon hung up */
        /* The socket is full: let the daemon read (and answer) some. */
        drain(fd, &r);
        must(event_base_loop(d.base, EVLOOP_ONCE) >= 0, "event loop failed");
    }
    shutdown(fd, SHUT_WR);
    settle(fd, &r);
    drain(fd, &r);
    close(fd);
    check_replies(&r, req, nreq);
    check_and_reset();
    free(r.buf);
    proto_wr_free(&w);
    return 0;
}
