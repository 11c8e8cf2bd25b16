/* gen_seeds.c - writes the binary seed corpora of fuzz_server and
 * fuzz_client_reply.
 *
 * fuzz_server: one valid request of every opcode after a hello (the first
 * byte, fuzz_server.c's mode, puts the hello in front), whole sessions with
 * the ids the fuzzer's daemon gives (puts, hits, leases, deletes), a put
 * that evicts to disk and a lookup that promotes it back, device puts into
 * the emulated GPU tier, and frames the daemon must refuse.
 *
 * fuzz_client_reply: for every API call the library has, a session whose
 * stand-in daemon answers it correctly (and, for some, with an error), in
 * fuzz_client_reply.c's input format.
 *
 * Run once and commit the output; rerun after a wire format change:
 *   cc -Iproto -Iclient tests/fuzz/gen_seeds.c proto/proto.c -o /tmp/gen_seeds
 *   /tmp/gen_seeds tests/fuzz/corpus
 * (the fuzz build also builds it as tests/fuzz/gen_seeds).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proto.h"

#define DIM 4   /* the namespace dimension of both targets' hellos */

static const char *root;

static void save(const char *target, const char *name, const proto_wr_t *w)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, target);
    if (mkdir(path, 0755) && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || w->err || fwrite(w->buf, 1, w->len, f) != w->len || fclose(f)) {
        perror(path);
        exit(1);
    }
}

static const float emb[DIM] = { 0.25f, -1.5f, 3.0f, 0.125f };
static const simcache_layout_t layout = { SIMCACHE_DTYPE_BF16, 2, 1, 2, 4, 8 };   /* 256 bytes */
static const char meta[] = "prompt=sha256:3f2a";

/* ---- request bodies (what the daemon reads) ---- */

static void hello(proto_wr_t *w, const char *model, const char *fp, const char *tenant)
{
    proto_hello_t h = {
        .min_version = PROTO_VERSION_MIN, .max_version = PROTO_VERSION, .dim = DIM,
        .gpu_device = -1, .model = model, .model_len = (uint16_t)strlen(model),
        .layout_fp = fp, .layout_fp_len = (uint16_t)strlen(fp),
        .tenant = tenant, .tenant_len = (uint16_t)strlen(tenant),
    };
    size_t off = proto_wr_frame_begin(w, OP_HELLO, 1, 0);
    proto_wr_hello(w, &h);
    proto_wr_frame_end(w, off);
}

static void put_begin_sized(proto_wr_t *w, uint64_t size, uint32_t flags)
{
    size_t off = proto_wr_frame_begin(w, OP_PUT_BEGIN, 2, 0);
    proto_wr_u64(w, size);
    proto_wr_u32(w, flags);
    proto_wr_frame_end(w, off);
}

static void put_begin(proto_wr_t *w) { put_begin_sized(w, proto_layout_bytes(&layout), 0); }

static void put_commit_of(proto_wr_t *w, uint64_t token, const simcache_layout_t *l,
                          const float *e, int with_meta)
{
    size_t off = proto_wr_frame_begin(w, OP_PUT_COMMIT, 3, 0);
    proto_wr_u64(w, token);
    proto_wr_u32(w, 0);                     /* flags */
    proto_wr_layout(w, l);
    proto_wr_u32(w, with_meta ? (uint32_t)strlen(meta) : 0);
    if (with_meta) proto_wr_bytes(w, meta, strlen(meta));
    proto_wr_embedding(w, e, DIM);
    proto_wr_frame_end(w, off);
}

/* fuzz_server's daemon numbers from 1 in every input: the first put_begin
 * gets token 1 (its fresh staging buffer id 2). */
static void put_commit(proto_wr_t *w, int with_meta) { put_commit_of(w, 1, &layout, emb, with_meta); }

static void u64_request(proto_wr_t *w, uint16_t op, uint64_t v)
{
    size_t off = proto_wr_frame_begin(w, op, 4, 0);
    proto_wr_u64(w, v);
    proto_wr_frame_end(w, off);
}

static void lookup_of(proto_wr_t *w, float threshold, const float *e)
{
    size_t off = proto_wr_frame_begin(w, OP_LOOKUP, 5, 0);
    proto_wr_f32(w, threshold);
    proto_wr_u32(w, 0);
    proto_wr_embedding(w, e, DIM);
    proto_wr_frame_end(w, off);
}

static void lookup(proto_wr_t *w, float threshold) { lookup_of(w, threshold, emb); }

static void route(proto_wr_t *w)
{
    size_t off = proto_wr_frame_begin(w, OP_ROUTE, 14, 0);
    proto_wr_u32(w, 0);
    proto_wr_embedding(w, emb, DIM);
    proto_wr_frame_end(w, off);
}

static void lookup_batch(proto_wr_t *w, uint32_t n)
{
    size_t off = proto_wr_frame_begin(w, OP_LOOKUP_BATCH, 6, 0);
    proto_wr_f32(w, 0.8f);
    proto_wr_u32(w, 0);
    proto_wr_u32(w, n);
    proto_wr_u32(w, DIM);
    for (uint32_t i = 0; i < n; i++) proto_wr_bytes(w, emb, sizeof emb);
    proto_wr_frame_end(w, off);
}

static void empty_request(proto_wr_t *w, uint16_t op, const char *payload)
{
    proto_wr_frame(w, op, 7, 0, payload, payload ? strlen(payload) : 0);
}

static void rq_hello(proto_wr_t *w) { hello(w, "llama-3-8b-instruct", "kv:bf16:2x32x8x128", ""); }
static void rq_hello_utf8(proto_wr_t *w)
{
    hello(w, "mod\xc3\xa8le-\xe2\x82\xac", "fp", "t\xf0\x9f\x98\x80");
}
/* fuzz_server's first byte: 0 the stream as is; 1 a hello in front; 3 a
 * hello and a gpu_attach; 7 the gpu_attach asks for device placement. */
#define RAW 0
#define HELLO 1
#define GPU 3
#define GPU_PREFER 7

static const float emb2[DIM] = { -2.0f, 0.5f, 0.25f, 1.0f };
/* 600,000 bytes: two of them do not fit the fuzzer's 1 MiB host tier. */
static const simcache_layout_t big = { SIMCACHE_DTYPE_I8, 1, 1, 1, 600, 1000 };

static void rq_put(proto_wr_t *w)
{
    put_begin(w);          /* token 1 */
    put_commit(w, 1);      /* entry 1 */
}
static void rq_put_commit_no_meta(proto_wr_t *w)
{
    put_begin(w);
    put_commit(w, 0);
}
static void rq_put_commit_unbegun(proto_wr_t *w) { put_commit_of(w, 77, &layout, emb, 1); }
static void rq_put_abort(proto_wr_t *w)
{
    put_begin(w);
    u64_request(w, OP_PUT_ABORT, 1);
    put_begin(w);          /* reuses the kept buffer: token 3 */
    u64_request(w, OP_PUT_ABORT, 3);
}
static void rq_lookup(proto_wr_t *w) { lookup(w, 0.9f); }
static void rq_lookup_default(proto_wr_t *w) { lookup(w, -1.0f); }
static void rq_lookup_batch(proto_wr_t *w) { lookup_batch(w, 3); }
static void rq_get(proto_wr_t *w) { u64_request(w, OP_GET, 1); }
static void rq_release(proto_wr_t *w) { u64_request(w, OP_RELEASE, 1); }
static void rq_delete(proto_wr_t *w) { u64_request(w, OP_DELETE, 1); }
static void rq_stats(proto_wr_t *w) { empty_request(w, OP_STATS, NULL); }
static void rq_ping(proto_wr_t *w) { empty_request(w, OP_PING, "are you there"); }
static void rq_route(proto_wr_t *w) { route(w); }
/* Every opcode, in the order a client uses them, with the ids it gets. */
static void rq_session(proto_wr_t *w)
{
    hello(w, "m", "fp", "tenant");
    put_begin(w);                       /* token 1 */
    put_commit(w, 1);                   /* entry 1 */
    lookup(w, 0.8f);                    /* hit: lease 1 */
    lookup_batch(w, 2);                 /* leases 2, 3 */
    u64_request(w, OP_GET, 1);          /* lease 4 */
    u64_request(w, OP_RELEASE, 1);
    u64_request(w, OP_RELEASE, 1);      /* already released */
    route(w);
    u64_request(w, OP_DELETE, 1);
    lookup(w, 0.8f);                    /* miss */
    empty_request(w, OP_STATS, NULL);
    empty_request(w, OP_PING, NULL);
}
/* A second put evicts the first to disk; a lookup of it waits for its
 * promotion back into the host tier and replays; a get of the other finds no
 * room while the first is leased, then comes back once it is released. */
static void rq_evict_promote(proto_wr_t *w)
{
    put_begin_sized(w, proto_layout_bytes(&big), 0);   /* token 1, buffer 2 (not kept) */
    put_commit_of(w, 1, &big, emb, 0);                  /* entry 1 */
    put_begin_sized(w, proto_layout_bytes(&big), 0);   /* token 3 */
    put_commit_of(w, 3, &big, emb2, 1);                 /* entry 2: entry 1 goes to disk */
    lookup_of(w, 0.99f, emb);                           /* entry 1 comes back: lease 1 */
    u64_request(w, OP_GET, 2);                          /* no room: entry 1 is leased */
    u64_request(w, OP_RELEASE, 1);
    u64_request(w, OP_GET, 2);                          /* entry 2 comes back: lease 2 */
    lookup_batch(w, 2);
    u64_request(w, OP_DELETE, 2);
    empty_request(w, OP_STATS, NULL);
}
static void rq_gpu_attach(proto_wr_t *w)
{
    size_t off = proto_wr_frame_begin(w, OP_GPU_ATTACH, 12, 0);
    proto_wr_u32(w, 0);
    proto_wr_u32(w, PROTO_ATTACH_PREFER_DEVICE);
    proto_wr_frame_end(w, off);
}
/* After the mode's gpu_attach: a device put (its buffer is id 1, the put
 * token 2), found and read from the GPU tier, then a host put. */
static void rq_device_put(proto_wr_t *w)
{
    put_begin_sized(w, proto_layout_bytes(&layout), PROTO_PUT_DEVICE);
    put_commit_of(w, 2, &layout, emb, 1);
    lookup(w, 0.9f);
    u64_request(w, OP_GET, 1);
    put_begin_sized(w, proto_layout_bytes(&layout), PROTO_PUT_DEVICE);   /* reused: token 3 */
    u64_request(w, OP_PUT_ABORT, 3);
    put_begin(w);
    put_commit_of(w, 4, &layout, emb2, 0);
    lookup_of(w, 0.9f, emb2);
    empty_request(w, OP_STATS, NULL);
}
static void rq_put_begin_device(proto_wr_t *w)
{
    put_begin_sized(w, 1u << 20, PROTO_PUT_DEVICE);
}
/* Refused: unknown opcode, nonzero status, namespace errors, bad header. */
static void rq_unknown_opcode(proto_wr_t *w) { empty_request(w, 99, "x"); }
static void rq_nonzero_status(proto_wr_t *w) { proto_wr_frame(w, OP_PING, 8, SIMCACHE_EIO, NULL, 0); }
static void rq_hello_surrogate(proto_wr_t *w) { hello(w, "\xed\xa0\x80", "fp", ""); }
static void rq_hello_empty_model(proto_wr_t *w) { hello(w, "", "fp", ""); }
static void rq_bad_version(proto_wr_t *w)
{
    proto_wr_frame(w, OP_PING, 9, 0, NULL, 0);
    w->buf[4] = PROTO_VERSION + 1;
}
static void rq_bad_magic(proto_wr_t *w)
{
    const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    proto_wr_bytes(w, http, sizeof http - 1);
}
static void rq_too_big(proto_wr_t *w)
{
    proto_wr_frame(w, OP_PING, 10, 0, NULL, 0);
    w->buf[16] = 0xff;   /* length 255 + ...: over the fuzzer's max_frame */
    w->buf[18] = 0x10;
}

typedef struct {
    const char *name;
    void (*write)(proto_wr_t *w);
    uint8_t mode;
} seed_t;

static const seed_t request_seeds[] = {
    { "hello", rq_hello, RAW }, { "hello_tenant_utf8", rq_hello_utf8, RAW },
    { "put_begin", put_begin, HELLO }, { "put", rq_put, HELLO },
    { "put_commit_no_meta", rq_put_commit_no_meta, HELLO },
    { "put_commit_unbegun", rq_put_commit_unbegun, HELLO }, { "put_abort", rq_put_abort, HELLO },
    { "lookup", rq_lookup, HELLO }, { "lookup_default_threshold", rq_lookup_default, HELLO },
    { "lookup_batch", rq_lookup_batch, HELLO }, { "get", rq_get, HELLO },
    { "release", rq_release, HELLO }, { "delete", rq_delete, HELLO }, { "stats", rq_stats, HELLO },
    { "ping", rq_ping, RAW }, { "route", rq_route, HELLO }, { "session", rq_session, RAW },
    { "evict_promote", rq_evict_promote, HELLO }, { "gpu_attach", rq_gpu_attach, HELLO },
    { "device_put", rq_device_put, GPU }, { "device_put_prefer", rq_device_put, GPU_PREFER },
    { "put_begin_device", rq_put_begin_device, GPU },
    { "put_begin_device_unattached", rq_put_begin_device, HELLO },
    { "lookup_before_hello", rq_lookup, RAW }, { "unknown_opcode", rq_unknown_opcode, HELLO },
    { "nonzero_status", rq_nonzero_status, RAW }, { "hello_bad_utf8", rq_hello_surrogate, RAW },
    { "hello_empty_model", rq_hello_empty_model, RAW }, { "hello_twice", rq_hello, HELLO },
    { "bad_version", rq_bad_version, HELLO }, { "bad_magic", rq_bad_magic, RAW },
    { "too_big", rq_too_big, HELLO },
};

static void save_requests(void)
{
    proto_wr_t w;
    proto_wr_init(&w);
    for (size_t i = 0; i < sizeof request_seeds / sizeof request_seeds[0]; i++) {
        proto_wr_reset(&w);
        proto_wr_bytes(&w, &request_seeds[i].mode, 1);
        request_seeds[i].write(&w);
        save("fuzz_server", request_seeds[i].name, &w);
    }
    proto_wr_free(&w);
}

/* ---- replies (what the client reads) ---- */

/* fuzz_client_reply's chunk flags: an fd rides on it; wait for the next
 * request and answer it (its id and opcode written into the header). */
#define FD 1
#define ANSWER 6

static proto_match_t a_match(uint32_t tier)
{
    proto_match_t m = {
        .id = 17, .lease = 3, .similarity = 0.93f, .tier = tier,
        .offset = tier == SIMCACHE_TIER_HOST ? 4096 : 0, .size = proto_layout_bytes(&layout),
        .layout = layout, .meta_len = (uint32_t)strlen(meta), .meta = meta,
    };
    return m;
}

static proto_wr_t frame;   /* the reply being built */

static size_t rp_begin(uint16_t op) { return proto_wr_frame_begin(&frame, op | OP_REPLY, 1, 0); }

/* Append the reply in `frame` to session s as one chunk. */
static void chunk(proto_wr_t *s, uint8_t flags)
{
    uint8_t h[3] = { flags, (uint8_t)frame.len, (uint8_t)(frame.len >> 8) };
    proto_wr_bytes(s, h, 3);
    proto_wr_bytes(s, frame.buf, frame.len);
    proto_wr_reset(&frame);
}

static void rp_hello(proto_wr_t *s, uint16_t tiers)
{
    proto_hello_reply_t hr = { PROTO_VERSION, tiers, PROTO_DEFAULT_MAX_PAYLOAD, 7, 1u << 20, 0.8f,
                               SIMCACHE_MAX_BATCH };
    size_t off = rp_begin(OP_HELLO);
    proto_wr_hello_reply(&frame, &hr);
    proto_wr_frame_end(&frame, off);
    chunk(s, ANSWER | FD);
}
static void region(uint64_t bytes)
{
    proto_gpu_region_t g = { .kind = 1, .device = 0, .bytes = bytes };
    proto_wr_gpu_region(&frame, &g);
}
static void rp_gpu_attach(proto_wr_t *s)
{
    size_t off = rp_begin(OP_GPU_ATTACH);
    region(2u << 20);
    proto_wr_frame_end(&frame, off);
    chunk(s, ANSWER | FD);
}
/* put_begin: token, staging buffer id and size, fresh (then the fd, and
 * for a device put the buffer's region, come with it). */
static void rp_put_begin(proto_wr_t *s, uint64_t token, uint64_t sid, uint64_t size, int fresh,
                         int device)
{
    size_t off = rp_begin(OP_PUT_BEGIN);
    proto_wr_u64(&frame, token);
    proto_wr_u64(&frame, sid);
    proto_wr_u64(&frame, size);
    proto_wr_u32(&frame, (uint32_t)fresh);
    if (device && fresh) region(size);
    proto_wr_frame_end(&frame, off);
    chunk(s, ANSWER | (fresh ? FD : 0));
}
static void rp_put_commit(proto_wr_t *s, uint64_t id, uint32_t kept)
{
    size_t off = rp_begin(OP_PUT_COMMIT);
    proto_wr_u64(&frame, id);
    proto_wr_u32(&frame, kept);
    proto_wr_frame_end(&frame, off);
    chunk(s, ANSWER);
}
static void rp_put_abort(proto_wr_t *s, uint32_t kept)
{
    size_t off = rp_begin(OP_PUT_ABORT);
    proto_wr_u32(&frame, kept);
    proto_wr_frame_end(&frame, off);
    chunk(s, ANSWER);
}
static void rp_lookup(proto_wr_t *s, int hit, uint32_t tier)
{
    proto_match_t m = a_match(tier);
    size_t off = rp_begin(OP_LOOKUP);
    proto_wr_u32(&frame, hit != 0);
    if (hit) proto_wr_match(&frame, &m);
    proto_wr_frame_end(&frame, off);
    chunk(s, ANSWER);
}
static void rp_lookup_batch(proto_wr_t *s)
{
    proto_match_t m = a_match(SIMCACHE_TIER_HOST);
    size_t off = rp_begin(OP_LOOKUP_BATCH);
    proto_wr_u32(&frame, 3);
    proto_wr_u32(&frame, 1);
    proto_wr_match(&frame, &m);
    proto_wr_u32(&frame, 0);
    proto_wr_u32(&frame, 1);
    proto_wr_match(&frame, &m);
    proto_wr_frame_end(&frame, off);
    chunk(s, ANSWER);
}
static void rp_get(proto_wr_t *s)
{
    proto_match_t m = a_match(SIMCACHE_TIER_HOST);
    size_t off = rp_begin(OP_GET);
    proto_wr_match(&frame, &m);
    proto_wr_frame_end(&frame, off);
    chunk(s, ANSWER);
}
static void rp_empty(proto_wr_t *s, uint16_t op)
{
    proto_wr_frame(&frame, op | OP_REPLY, 1, 0, NULL, 0);
    chunk(s, ANSWER);
}
static void rp_stats(proto_wr_t *s)
{
    size_t off = rp_begin(OP_STATS);
    proto_wr_u32(&frame, 12);
    for (uint64_t i = 0; i < 12; i++) proto_wr_u64(&frame, i * 1000);
    proto_wr_frame_end(&frame, off);
    chunk(s, ANSWER);
}
static void rp_route(proto_wr_t *s)
{
    proto_route_reply_t rr = { "node-a", 6, "10.0.0.7:7070", 13, 0.91f, 1, 0.25f };
    size_t off = rp_begin(OP_ROUTE);
    proto_wr_route_reply(&frame, &rr);
    proto_wr_frame_end(&frame, off);
    chunk(s, ANSWER);
}
static void rp_error(proto_wr_t *s, uint16_t op, int32_t code, const char *msg, uint8_t flags)
{
    size_t off = proto_wr_frame_begin(&frame, op | OP_REPLY, 0, code);
    proto_wr_str(&frame, msg, strlen(msg));
    proto_wr_frame_end(&frame, off);
    chunk(s, flags);
}

/* Call numbers of fuzz_client_reply.c's run_call. */
enum { C_LOOKUP, C_BATCH, C_GET, C_PUT, C_PUT_COMMIT, C_PUT_ABORT, C_RELEASE, C_RELEASE_LEASE,
       C_DELETE, C_STATS, C_ROUTE, C_PING, C_DEV_COMMIT, C_DEV_ABORT, C_TWO_PUTS, C_GPU_STATUS };

#define HOST_TIERS 5   /* host and disk */
#define ALL_TIERS 7

static void cl_hello(proto_wr_t *s) { rp_hello(s, HOST_TIERS); }
static void cl_busy(proto_wr_t *s) { rp_error(s, OP_HELLO, SIMCACHE_EBUSY, "too many connections", 0); }
static void cl_lookup_hit(proto_wr_t *s)
{
    rp_hello(s, HOST_TIERS);
    rp_lookup(s, 1, SIMCACHE_TIER_HOST);
    rp_empty(s, OP_RELEASE);
}
static void cl_lookup_miss(proto_wr_t *s)
{
    rp_hello(s, HOST_TIERS);
    rp_lookup(s, 0, SIMCACHE_TIER_HOST);
}
static void cl_lookup_error(proto_wr_t *s)
{
    rp_hello(s, HOST_TIERS);
    rp_error(s, OP_LOOKUP, SIMCACHE_EDIM, "embedding has dimension 3, namespace has 4", ANSWER);
}
static void cl_batch(proto_wr_t *s)
{
    rp_hello(s, HOST_TIERS);
    rp_lookup_batch(s);
}
static void cl_get(proto_wr_t *s)
{
    rp_hello(s, HOST_TIERS);
    rp_get(s);
    rp_empty(s, OP_RELEASE);
}
static void cl_put(proto_wr_t *s)
{
    rp_hello(s, HOST_TIERS);
    rp_put_begin(s, 1, 2, 256, 1, 0);
    rp_put_commit(s, 17, 1);
}
static void cl_put_twice(proto_wr_t *s)
{
    rp_hello(s, HOST_TIERS);
    rp_put_begin(s, 1, 2, 4096, 1, 0);
    rp_put_commit(s, 17, 1);
    rp_put_begin(s, 3, 2, 4096, 0, 0);   /* the kept buffer */
    rp_put_commit(s, 18, 0);
}
static void cl_put_abort(proto_wr_t *s)
{
    rp_hello(s, HOST_TIERS);
    rp_put_begin(s, 1, 2, 256, 1, 0);
    rp_put_abort(s, 1);
}
static void cl_two_puts(proto_wr_t *s)
{
    rp_hello(s, HOST_TIERS);
    rp_put_begin(s, 1, 2, 256, 1, 0);
    rp_put_begin(s, 3, 4, 256, 1, 0);
    rp_put_abort(s, 0);
    rp_put_abort(s, 1);
}
static void cl_release_lease(proto_wr_t *s)
{
    rp_hello(s, HOST_TIERS);
    rp_empty(s, OP_RELEASE);
}
static void cl_delete(proto_wr_t *s)
{
    rp_hello(s, HOST_TIERS);
    rp_empty(s, OP_DELETE);
}
static void cl_delete_missing(proto_wr_t *s)
{
    rp_hello(s, HOST_TIERS);
    rp_error(s, OP_DELETE, SIMCACHE_ENOTFOUND, "no entry 17 in this namespace", ANSWER);
}
static void cl_stats(proto_wr_t *s)
{
    rp_hello(s, HOST_TIERS);
    rp_stats(s);
}
static void cl_route(proto_wr_t *s)
{
    rp_hello(s, HOST_TIERS);
    rp_route(s);
}
static void cl_ping(proto_wr_t *s)
{
    rp_hello(s, HOST_TIERS);
    rp_empty(s, OP_PING);
}
static void cl_gpu(proto_wr_t *s)
{
    rp_hello(s, ALL_TIERS);
    rp_gpu_attach(s);
    rp_put_begin(s, 1, 2, 2u << 20, 1, 1);
    rp_put_commit(s, 5, 0);
    rp_put_begin(s, 3, 2, 2u << 20, 0, 1);   /* the same device buffer */
    rp_put_abort(s, 0);
    rp_lookup(s, 1, SIMCACHE_TIER_GPU);
}
static void cl_gpu_lookup(proto_wr_t *s)
{
    rp_hello(s, ALL_TIERS);
    rp_gpu_attach(s);
    rp_lookup(s, 1, SIMCACHE_TIER_GPU);
    rp_empty(s, OP_RELEASE);
}
static void cl_gpu_attach_refused(proto_wr_t *s)
{
    rp_hello(s, ALL_TIERS);
    rp_error(s, OP_GPU_ATTACH, SIMCACHE_ENODEV, "the GPU tier is on device 1, not 0", ANSWER);
    rp_put_begin(s, 1, 2, 256, 1, 0);
    rp_put_commit(s, 17, 1);
}

typedef struct {
    const char *name;
    void (*write)(proto_wr_t *s);
    uint8_t mode;              /* bit 0 gpu_device 0, bit 1 SIMCACHE_PREFER_DEVICE */
    uint8_t ncalls;
    uint8_t calls[8];
} session_seed_t;

static const session_seed_t reply_seeds[] = {
    { "hello", cl_hello, 0, 0, { 0 } },
    { "busy_id_zero", cl_busy, 0, 0, { 0 } },
    { "lookup_hit", cl_lookup_hit, 0, 2, { C_LOOKUP, C_RELEASE } },
    { "lookup_miss", cl_lookup_miss, 0, 1, { C_LOOKUP } },
    { "lookup_error", cl_lookup_error, 0, 1, { C_LOOKUP } },
    { "lookup_batch", cl_batch, 0, 1, { C_BATCH } },
    { "get", cl_get, 0, 2, { C_GET, C_RELEASE } },
    { "put", cl_put, 0, 1, { C_PUT } },
    { "put_commit_twice", cl_put_twice, 0, 2, { C_PUT_COMMIT, C_PUT_COMMIT } },
    { "put_abort", cl_put_abort, 0, 1, { C_PUT_ABORT } },
    { "two_puts", cl_two_puts, 0, 1, { C_TWO_PUTS } },
    { "release", cl_release_lease, 0, 1, { C_RELEASE_LEASE } },
    { "delete", cl_delete, 0, 1, { C_DELETE } },
    { "delete_missing", cl_delete_missing, 0, 1, { C_DELETE } },
    { "stats", cl_stats, 0, 1, { C_STATS } },
    { "route", cl_route, 0, 1, { C_ROUTE } },
    { "ping", cl_ping, 0, 1, { C_PING } },
    { "gpu_device_put", cl_gpu, 1, 4, { C_DEV_COMMIT, C_DEV_ABORT, C_LOOKUP, C_GPU_STATUS } },
    { "gpu_prefer_lookup", cl_gpu_lookup, 3, 2, { C_LOOKUP, C_RELEASE } },
    { "gpu_attach_refused", cl_gpu_attach_refused, 1, 3, { C_DEV_COMMIT, C_PUT, C_GPU_STATUS } },
};

static void save_sessions(void)
{
    proto_wr_t w;
    proto_wr_init(&w);
    proto_wr_init(&frame);
    for (size_t i = 0; i < sizeof reply_seeds / sizeof reply_seeds[0]; i++) {
        const session_seed_t *x = &reply_seeds[i];
        proto_wr_reset(&w);
        uint8_t head[2] = { x->mode, x->ncalls };
        proto_wr_bytes(&w, head, 2);
        proto_wr_bytes(&w, x->calls, x->ncalls);
        x->write(&w);
        save("fuzz_client_reply", x->name, &w);
    }
    proto_wr_free(&frame);
    proto_wr_free(&w);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_ROOT (e.g. tests/fuzz/corpus)\n", argv[0]);
        return 2;
    }
    root = argv[1];
    if (mkdir(root, 0755) && errno != EEXIST) {
        perror(root);
        return 1;
    }
    save_requests();
    save_sessions();
    return 0;
}
