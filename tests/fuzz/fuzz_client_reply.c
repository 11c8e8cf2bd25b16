/* fuzz_client_reply.c - libFuzzer target: the bytes simcached sends back, as
 * libsimcache-client reads them.
 *
 * A client must survive a daemon that is buggy, old or not simcached at all.
 * The input is a stream of reply frames; each is decoded the way
 * client/client.c's roundtrip() and the reply readers do (error string,
 * hello reply, match records checked against the arena, batch and stats
 * replies), from an exact-size copy of its payload.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

#define ARENA_SIZE (64u << 20)   /* what the client learnt from its hello */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_client_reply: invariant broken: %s\n", what);
        abort();
    }
}

/* client.c read_match(): 0 with m filled, or -1. */
static int read_match(proto_rd_t *r, uint64_t arena_size, simcache_match_t *m)
{
    proto_match_t pm;
    proto_rd_match(r, &pm);
    if (r->err) return -1;
    if (pm.tier != SIMCACHE_TIER_HOST || pm.offset > arena_size || pm.size > arena_size - pm.offset)
        return -1;
    must(pm.meta_len <= sizeof m->meta, "match meta larger than simcache_match_t.meta");
    m->id = pm.id;
    m->lease = pm.lease;
    m->similarity = pm.similarity;
    m->tier = (simcache_tier_t)pm.tier;
    m->layout = pm.layout;
    m->size = pm.size;
    m->data = NULL;
    m->meta_len = pm.meta_len;
    if (pm.meta_len) memcpy(m->meta, pm.meta, pm.meta_len);
    return 0;
}

static void read_error(const uint16_t op, const uint8_t *p, size_t len)
{
    char msg[PROTO_MAX_ERRMSG + 64];
    proto_rd_t r;
    uint16_t n;
    proto_rd_init(&r, p, len);
    const char *s = proto_rd_str(&r, PROTO_MAX_ERRMSG, &n);
    must(s == NULL || n <= PROTO_MAX_ERRMSG, "error string over the limit");
    snprintf(msg, sizeof msg, "%s: %.*s", proto_op_name(op), s ? (int)n : 0, s ? s : "");
}

static void read_reply(uint16_t op, const uint8_t *p, size_t len)
{
    proto_rd_t r;
    simcache_match_t m;
    proto_rd_init(&r, p, len);
    switch (op) {
    case OP_HELLO: {
        proto_hello_reply_t hr;
        if (proto_rd_hello_reply(&r, &hr) == 0) {
            proto_wr_t w;
            proto_wr_init(&w);
            proto_wr_hello_reply(&w, &hr);
            must(!w.err && w.len == len && memcmp(w.buf, p, len) == 0,
                 "hello reply does not re-encode to its own bytes");
            proto_wr_free(&w);
        }
        break;
    }
    case OP_PUT_BEGIN:
    case OP_PUT_COMMIT:
        (void)proto_rd_u64(&r);
        (void)proto_rd_done(&r);
        break;
    case OP_LOOKUP:
        if (proto_rd_u32(&r) && read_match(&r, ARENA_SIZE, &m) == 0)
            must(m.size <= ARENA_SIZE, "match size past the arena");
        (void)proto_rd_done(&r);
        break;
    case OP_LOOKUP_BATCH: {
        uint32_t k = proto_rd_u32(&r);
        if (k == 0 || k > SIMCACHE_MAX_BATCH) break;   /* the client asked for 1..1024 */
        simcache_match_t *ms = calloc(k, sizeof *ms);
        must(ms != NULL, "out of memory");
        for (uint32_t i = 0; i < k; i++)
            if (proto_rd_u32(&r) && read_match(&r, ARENA_SIZE, &ms[i])) break;
        (void)proto_rd_done(&r);
        free(ms);
        break;
    }
    case OP_GET:
        if (read_match(&r, ARENA_SIZE, &m) == 0) (void)proto_rd_done(&r);
        break;
    case OP_STATS: {
        uint32_t n = proto_rd_u32(&r);
        uint64_t v[12] = { 0 };
        for (uint32_t i = 0; i < n && !r.err; i++) {
            uint64_t x = proto_rd_u64(&r);
            if (i < 12) v[i] = x;
        }
        (void)proto_rd_done(&r);
        (void)v;
        break;
    }
    case OP_ROUTE: {
        proto_route_reply_t rr;
        if (proto_rd_route_reply(&r, &rr) == 0) {
            must(rr.node_len >= 1 && rr.node_len <= SIMCACHE_MAX_NODE_ID &&
                 rr.addr_len <= SIMCACHE_MAX_ADDRESS, "route reply strings over the limit");
            proto_wr_t w;
            proto_wr_init(&w);
            proto_wr_route_reply(&w, &rr);
            must(!w.err && w.len == len && memcmp(w.buf, p, len) == 0,
                 "route reply does not re-encode to its own bytes");
            proto_wr_free(&w);
        }
        break;
    }
    case OP_GPU_ATTACH: {
        /* gpu_attach reply: one device region; it re-encodes to itself. */
        proto_gpu_region_t g;
        proto_rd_gpu_region(&r, &g);
        if (proto_rd_done(&r) == 0) {
            must(g.kind >= 1 && g.kind <= 2 && g.device >= 0 && g.bytes > 0,
                 "accepted GPU region out of range");
            proto_wr_t w;
            proto_wr_init(&w);
            proto_wr_gpu_region(&w, &g);
            must(!w.err && w.len == len && memcmp(w.buf, p, len) == 0,
                 "GPU region does not re-encode to its own bytes");
            proto_wr_free(&w);
        }
        break;
    }
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    while (size - pos >= PROTO_HDR_SIZE) {
        proto_hdr_t h;
        /* The client takes any length the daemon announces (UINT32_MAX). */
        if (proto_hdr_decode(data + pos, UINT32_MAX, 0, &h)) break;
        size_t need = PROTO_HDR_SIZE + (size_t)h.len;
        if (size - pos < need) break;
        uint8_t *payload = malloc(h.len ? h.len : 1);
        must(payload != NULL, "out of memory");
        memcpy(payload, data + pos + PROTO_HDR_SIZE, h.len);
        uint16_t op = (uint16_t)(h.opcode & ~OP_REPLY);
        if (h.status < 0) read_error(op, payload, h.len);
        else read_reply(op, payload, h.len);
        free(payload);
        pos += need;
    }
    return 0;
}
