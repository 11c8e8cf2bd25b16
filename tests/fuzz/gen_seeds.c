/* gen_seeds.c - writes the binary seed corpora of fuzz_frame and
 * fuzz_client_reply: one valid frame of every opcode (requests and replies),
 * a whole session, and a few frames the daemon must refuse.
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

#define DIM 4   /* fuzz_frame's namespace dimension when no hello came first */

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

static void put_begin(proto_wr_t *w)
{
    size_t off = proto_wr_frame_begin(w, OP_PUT_BEGIN, 2, 0);
    proto_wr_u64(w, proto_layout_bytes(&layout));
    proto_wr_u32(w, 0);
    proto_wr_frame_end(w, off);
}

static void put_commit(proto_wr_t *w, int with_meta)
{
    size_t off = proto_wr_frame_begin(w, OP_PUT_COMMIT, 3, 0);
    proto_wr_u64(w, 1);                     /* token */
    proto_wr_u32(w, 0);                     /* flags */
    proto_wr_layout(w, &layout);
    proto_wr_u32(w, with_meta ? (uint32_t)strlen(meta) : 0);
    if (with_meta) proto_wr_bytes(w, meta, strlen(meta));
    proto_wr_embedding(w, emb, DIM);
    proto_wr_frame_end(w, off);
}

static void u64_request(proto_wr_t *w, uint16_t op, uint64_t v)
{
    size_t off = proto_wr_frame_begin(w, op, 4, 0);
    proto_wr_u64(w, v);
    proto_wr_frame_end(w, off);
}

static void lookup(proto_wr_t *w, float threshold)
{
    size_t off = proto_wr_frame_begin(w, OP_LOOKUP, 5, 0);
    proto_wr_f32(w, threshold);
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
static void rq_put_commit(proto_wr_t *w) { put_commit(w, 1); }
static void rq_put_commit_no_meta(proto_wr_t *w) { put_commit(w, 0); }
static void rq_put_abort(proto_wr_t *w) { u64_request(w, OP_PUT_ABORT, 1); }
static void rq_lookup(proto_wr_t *w) { lookup(w, 0.9f); }
static void rq_lookup_default(proto_wr_t *w) { lookup(w, -1.0f); }
static void rq_lookup_batch(proto_wr_t *w) { lookup_batch(w, 3); }
static void rq_get(proto_wr_t *w) { u64_request(w, OP_GET, 42); }
static void rq_release(proto_wr_t *w) { u64_request(w, OP_RELEASE, 9); }
static void rq_delete(proto_wr_t *w) { u64_request(w, OP_DELETE, 42); }
static void rq_stats(proto_wr_t *w) { empty_request(w, OP_STATS, NULL); }
static void rq_ping(proto_wr_t *w) { empty_request(w, OP_PING, "are you there"); }
static void rq_session(proto_wr_t *w)
{
    hello(w, "m", "fp", "tenant");
    put_begin(w);
    put_commit(w, 1);
    lookup(w, 0.8f);
    lookup_batch(w, 2);
    u64_request(w, OP_GET, 1);
    u64_request(w, OP_RELEASE, 1);
    u64_request(w, OP_DELETE, 1);
    empty_request(w, OP_STATS, NULL);
    empty_request(w, OP_PING, NULL);
}
/* Refused: unknown opcode, nonzero status, namespace errors, bad header. */
static void rq_gpu_attach(proto_wr_t *w)
{
    size_t off = proto_wr_frame_begin(w, OP_GPU_ATTACH, 12, 0);
    proto_wr_u32(w, 0);
    proto_wr_u32(w, PROTO_ATTACH_PREFER_DEVICE);
    proto_wr_frame_end(w, off);
}
static void rq_put_begin_device(proto_wr_t *w)
{
    size_t off = proto_wr_frame_begin(w, OP_PUT_BEGIN, 13, 0);
    proto_wr_u64(w, 1u << 20);
    proto_wr_u32(w, PROTO_PUT_DEVICE);
    proto_wr_frame_end(w, off);
}
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

typedef struct {
    const char *name;
    void (*write)(proto_wr_t *w);
} seed_t;

static const seed_t request_seeds[] = {
    { "hello", rq_hello }, { "hello_tenant_utf8", rq_hello_utf8 }, { "put_begin", put_begin },
    { "put_commit", rq_put_commit }, { "put_commit_no_meta", rq_put_commit_no_meta },
    { "put_abort", rq_put_abort }, { "lookup", rq_lookup },
    { "lookup_default_threshold", rq_lookup_default }, { "lookup_batch", rq_lookup_batch },
    { "get", rq_get }, { "release", rq_release }, { "delete", rq_delete }, { "stats", rq_stats },
    { "ping", rq_ping }, { "session", rq_session }, { "unknown_opcode", rq_unknown_opcode },
    { "nonzero_status", rq_nonzero_status }, { "hello_bad_utf8", rq_hello_surrogate },
    { "hello_empty_model", rq_hello_empty_model }, { "bad_version", rq_bad_version },
    { "bad_magic", rq_bad_magic }, { "gpu_attach", rq_gpu_attach },
    { "put_begin_device", rq_put_begin_device },
};

static void save_all(const char *target, const seed_t *seeds, size_t n)
{
    proto_wr_t w;
    proto_wr_init(&w);
    for (size_t i = 0; i < n; i++) {
        proto_wr_reset(&w);
        seeds[i].write(&w);
        save(target, seeds[i].name, &w);
    }
    proto_wr_free(&w);
}

/* ---- replies (what the client reads) ---- */

static proto_match_t a_match(void)
{
    proto_match_t m = {
        .id = 17, .lease = 3, .similarity = 0.93f, .tier = SIMCACHE_TIER_HOST,
        .offset = 4096, .size = proto_layout_bytes(&layout), .layout = layout,
        .meta_len = (uint32_t)strlen(meta), .meta = meta,
    };
    return m;
}

static void reply_u64(proto_wr_t *w, uint16_t op, uint64_t v)
{
    size_t off = proto_wr_frame_begin(w, op | OP_REPLY, 2, 0);
    proto_wr_u64(w, v);
    proto_wr_frame_end(w, off);
}

static void reply_error(proto_wr_t *w, uint16_t op, uint64_t req_id, int32_t code, const char *msg)
{
    size_t off = proto_wr_frame_begin(w, op | OP_REPLY, req_id, code);
    proto_wr_str(w, msg, strlen(msg));
    proto_wr_frame_end(w, off);
}

static void rp_hello(proto_wr_t *w)
{
    proto_hello_reply_t hr = { PROTO_VERSION, 1, PROTO_DEFAULT_MAX_PAYLOAD, 7, 1u << 30, 0.8f,
                               SIMCACHE_MAX_BATCH };
    size_t off = proto_wr_frame_begin(w, OP_HELLO | OP_REPLY, 1, 0);
    proto_wr_hello_reply(w, &hr);
    proto_wr_frame_end(w, off);
}
static void rp_put_begin(proto_wr_t *w) { reply_u64(w, OP_PUT_BEGIN, 1); }
static void rp_put_commit(proto_wr_t *w) { reply_u64(w, OP_PUT_COMMIT, 17); }
static void rp_lookup_hit(proto_wr_t *w)
{
    proto_match_t m = a_match();
    size_t off = proto_wr_frame_begin(w, OP_LOOKUP | OP_REPLY, 5, 0);
    proto_wr_u32(w, 1);
    proto_wr_match(w, &m);
    proto_wr_frame_end(w, off);
}
static void rp_lookup_miss(proto_wr_t *w)
{
    size_t off = proto_wr_frame_begin(w, OP_LOOKUP | OP_REPLY, 5, 0);
    proto_wr_u32(w, 0);
    proto_wr_frame_end(w, off);
}
static void rp_lookup_batch(proto_wr_t *w)
{
    proto_match_t m = a_match();
    size_t off = proto_wr_frame_begin(w, OP_LOOKUP_BATCH | OP_REPLY, 6, 0);
    proto_wr_u32(w, 3);
    proto_wr_u32(w, 1);
    proto_wr_match(w, &m);
    proto_wr_u32(w, 0);
    proto_wr_u32(w, 1);
    proto_wr_match(w, &m);
    proto_wr_frame_end(w, off);
}
static void rp_get(proto_wr_t *w)
{
    proto_match_t m = a_match();
    size_t off = proto_wr_frame_begin(w, OP_GET | OP_REPLY, 7, 0);
    proto_wr_match(w, &m);
    proto_wr_frame_end(w, off);
}
static void rp_release(proto_wr_t *w) { proto_wr_frame(w, OP_RELEASE | OP_REPLY, 8, 0, NULL, 0); }
static void rp_stats(proto_wr_t *w)
{
    size_t off = proto_wr_frame_begin(w, OP_STATS | OP_REPLY, 9, 0);
    proto_wr_u32(w, 12);
    for (uint64_t i = 0; i < 12; i++) proto_wr_u64(w, i * 1000);
    proto_wr_frame_end(w, off);
}
static void rp_ping(proto_wr_t *w) { proto_wr_frame(w, OP_PING | OP_REPLY, 10, 0, "echo", 4); }
static void rp_error(proto_wr_t *w)
{
    reply_error(w, OP_LOOKUP, 11, SIMCACHE_EDIM, "embedding has dimension 3, namespace has 4");
}
static void rp_gpu_attach(proto_wr_t *w)
{
    proto_gpu_region_t g = { .kind = 2, .device = 0, .bytes = 1u << 30 };
    for (size_t i = 0; i < sizeof g.ipc; i++) g.ipc[i] = (uint8_t)(i * 7);
    size_t off = proto_wr_frame_begin(w, OP_GPU_ATTACH | OP_REPLY, 12, 0);
    proto_wr_gpu_region(w, &g);
    proto_wr_frame_end(w, off);
}
static void rp_busy(proto_wr_t *w) { reply_error(w, OP_HELLO, 0, SIMCACHE_EBUSY, "too many connections"); }

static const seed_t reply_seeds[] = {
    { "hello", rp_hello }, { "put_begin", rp_put_begin }, { "put_commit", rp_put_commit },
    { "lookup_hit", rp_lookup_hit }, { "lookup_miss", rp_lookup_miss },
    { "lookup_batch", rp_lookup_batch }, { "get", rp_get }, { "release", rp_release },
    { "stats", rp_stats }, { "ping", rp_ping }, { "error", rp_error }, { "busy_id_zero", rp_busy },
    { "gpu_attach", rp_gpu_attach },
};

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
    save_all("fuzz_frame", request_seeds, sizeof request_seeds / sizeof request_seeds[0]);
    save_all("fuzz_client_reply", reply_seeds, sizeof reply_seeds / sizeof reply_seeds[0]);
    return 0;
}
