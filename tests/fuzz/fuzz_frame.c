/* fuzz_frame.c - libFuzzer target: the bytes a client writes to simcached.
 *
 * The input is a byte stream cut into frames exactly as cached/server.c's
 * process_input() does, and each request body is read field by field in the
 * order the server's do_*() handlers read it. Every payload is copied into a
 * buffer of exactly its length, so ASan sees any read past the frame. On top
 * of "no crash", the target checks what the codec promises: a decoded hello
 * re-encodes to the same bytes, proto_utf8_valid() agrees with a reference
 * validator written from the Unicode tables, and proto_layout_bytes()
 * agrees with checked multiplication.
 *
 * Unlike the server, bodies are decoded even before a hello (which would be
 * refused with ESTATE) so that single-frame inputs reach every decoder; the
 * namespace dimension is that of the last good hello, else DEFAULT_DIM.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "vec.h"

#define DEFAULT_DIM 4
#define MAX_FRAME PROTO_DEFAULT_MAX_PAYLOAD   /* the daemon's default max_frame */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_frame: invariant broken: %s\n", what);
        abort();
    }
}

/* ---- references the codec is checked against ---- */

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

static void check_string(const char *s, size_t n)
{
    must(proto_utf8_valid(s, n) == ref_utf8_valid((const uint8_t *)s, n),
         "proto_utf8_valid disagrees with the Unicode table");
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

/* ---- the server's readers, in the server's order ---- */

typedef struct {
    proto_rd_t rd;
    const uint8_t *payload;
    size_t len;
    uint32_t ns_dim;
} req_t;

static int in_payload(const req_t *r, const void *p, size_t n)
{
    const uint8_t *b = p;
    return b >= r->payload && n <= r->len && (size_t)(b - r->payload) <= r->len - n;
}

/* read_embedding(): 0 with out filled (unit length), or -1. */
static int read_embedding(req_t *r, float *out)
{
    uint32_t dim;
    const void *raw = proto_rd_embedding(&r->rd, SIMCACHE_MAX_DIM, &dim);
    if (!raw) {
        must(r->rd.err, "embedding refused without a reader error");
        return -1;
    }
    must(dim >= 1 && dim <= SIMCACHE_MAX_DIM, "embedding dim out of range");
    must(in_payload(r, raw, (size_t)dim * 4), "embedding points outside the payload");
    if (dim != r->ns_dim) return -1;
    memcpy(out, raw, (size_t)dim * sizeof(float));
    if (vec_normalize(out, dim, out)) return -1;
    for (uint32_t i = 0; i < dim; i++) must(isfinite(out[i]), "normalised embedding not finite");
    return 0;
}

static void do_hello(req_t *r)
{
    proto_hello_t h;
    int rc = proto_rd_hello(&r->rd, &h);
    must(rc == 0 || rc == SIMCACHE_EPROTO || rc == SIMCACHE_ENAMESPACE, "hello: unexpected code");
    if (rc == SIMCACHE_EPROTO) return;
    /* The strings were read whole whatever their content. */
    must(in_payload(r, h.model, h.model_len) && in_payload(r, h.layout_fp, h.layout_fp_len) &&
         in_payload(r, h.tenant, h.tenant_len), "hello strings outside the payload");
    check_string(h.model, h.model_len);
    check_string(h.layout_fp, h.layout_fp_len);
    check_string(h.tenant, h.tenant_len);
    int ok = h.model_len >= 1 && h.model_len <= SIMCACHE_MAX_NAME && h.layout_fp_len >= 1 &&
             h.layout_fp_len <= SIMCACHE_MAX_NAME && h.tenant_len <= SIMCACHE_MAX_NAME &&
             ref_utf8_valid((const uint8_t *)h.model, h.model_len) &&
             ref_utf8_valid((const uint8_t *)h.layout_fp, h.layout_fp_len) &&
             ref_utf8_valid((const uint8_t *)h.tenant, h.tenant_len);
    must(ok == (rc == 0), "hello: ENAMESPACE does not match the namespace rules");

    /* A fully read hello re-encodes to exactly the bytes it came from. */
    proto_wr_t w;
    proto_wr_init(&w);
    proto_wr_hello(&w, &h);
    must(!w.err && w.len == r->len && memcmp(w.buf, r->payload, r->len) == 0,
         "hello does not re-encode to its own bytes");
    proto_wr_free(&w);
    if (rc) return;
    if (h.min_version > PROTO_VERSION || h.max_version < PROTO_VERSION_MIN ||
        h.min_version > h.max_version)
        return;
    if (h.dim == 0 || h.dim > SIMCACHE_MAX_DIM) return;
    r->ns_dim = h.dim;
}

static void do_put_begin(req_t *r)
{
    (void)proto_rd_u64(&r->rd);
    (void)proto_rd_u32(&r->rd);
    (void)proto_rd_done(&r->rd);
}

static void do_put_commit(req_t *r)
{
    (void)proto_rd_u64(&r->rd);   /* token */
    (void)proto_rd_u32(&r->rd);   /* flags */
    simcache_layout_t layout;
    proto_rd_layout(&r->rd, &layout);
    uint32_t meta_len = proto_rd_u32(&r->rd);
    if (!r->rd.err && meta_len > SIMCACHE_MAX_META) return;   /* ETOOBIG */
    const void *meta = proto_rd_bytes(&r->rd, meta_len);
    if (r->rd.err) return;                                     /* EPROTO */
    must(in_payload(r, meta, meta_len), "meta outside the payload");
    float *unit = malloc((size_t)r->ns_dim * sizeof(float));
    must(unit != NULL, "out of memory");
    if (read_embedding(r, unit) == 0 && proto_rd_done(&r->rd) == 0) {
        check_layout(&layout);
        uint8_t *meta_copy = meta_len ? malloc(meta_len) : NULL;
        if (meta_len) memcpy(meta_copy, meta, meta_len);
        free(meta_copy);
    }
    free(unit);
}

static int read_threshold(req_t *r, float *t)
{
    float v = proto_rd_f32(&r->rd);
    (void)proto_rd_u32(&r->rd);   /* flags */
    if (isnan(v) || v < 0) v = 0.8f;
    if (v > 1.0f) return -1;
    *t = v;
    return 0;
}

static void do_lookup(req_t *r)
{
    float threshold;
    if (read_threshold(r, &threshold)) return;
    must(threshold >= 0 && threshold <= 1, "threshold out of range");
    float *unit = malloc((size_t)r->ns_dim * sizeof(float));
    must(unit != NULL, "out of memory");
    if (read_embedding(r, unit) == 0) (void)proto_rd_done(&r->rd);
    free(unit);
}

static void do_lookup_batch(req_t *r)
{
    float threshold;
    if (read_threshold(r, &threshold)) return;
    uint32_t n = proto_rd_u32(&r->rd);
    uint32_t dim = proto_rd_u32(&r->rd);
    if (r->rd.err) return;
    if (n == 0 || n > SIMCACHE_MAX_BATCH) return;
    if (dim != r->ns_dim) return;
    const void *raw = proto_rd_bytes(&r->rd, (size_t)n * dim * sizeof(float));
    if (proto_rd_done(&r->rd)) return;
    must(in_payload(r, raw, (size_t)n * dim * sizeof(float)), "batch outside the payload");
    float *units = malloc((size_t)n * dim * sizeof(float));
    must(units != NULL, "out of memory");
    memcpy(units, raw, (size_t)n * dim * sizeof(float));
    for (uint32_t i = 0; i < n; i++)
        if (vec_normalize(units + (size_t)i * dim, dim, units + (size_t)i * dim)) break;
    free(units);
}

static void do_u64_only(req_t *r)
{
    (void)proto_rd_u64(&r->rd);
    (void)proto_rd_done(&r->rd);
}

static void do_ping(req_t *r)
{
    /* The reply echoes the payload. */
    proto_wr_t w;
    proto_wr_init(&w);
    size_t off = proto_wr_frame_begin(&w, OP_PING | OP_REPLY, 1, 0);
    proto_wr_bytes(&w, r->rd.p, r->rd.left);
    proto_wr_frame_end(&w, off);
    must(!w.err && w.len == PROTO_HDR_SIZE + r->len, "ping echo has the wrong length");
    proto_wr_free(&w);
}

static void dispatch(const proto_hdr_t *h, const uint8_t *payload, uint32_t *ns_dim)
{
    req_t r = { .payload = payload, .len = h->len, .ns_dim = *ns_dim };
    proto_rd_init(&r.rd, payload, h->len);
    if (h->status != 0) return;
    if (h->opcode == 0 || h->opcode >= OP_MAX_) return;
    switch (h->opcode) {
    case OP_HELLO: do_hello(&r); break;
    case OP_PUT_BEGIN: do_put_begin(&r); break;
    case OP_PUT_COMMIT: do_put_commit(&r); break;
    case OP_PUT_ABORT:
    case OP_GET:
    case OP_RELEASE:
    case OP_DELETE: do_u64_only(&r); break;
    case OP_LOOKUP: do_lookup(&r); break;
    case OP_LOOKUP_BATCH: do_lookup_batch(&r); break;
    case OP_STATS: (void)proto_rd_done(&r.rd); break;
    case OP_PING: do_ping(&r); break;
    case OP_GPU_ATTACH:
        /* i32 device, u32 flags: exactly 8 bytes, as simcached reads it. */
        (void)proto_rd_u32(&r.rd);
        (void)proto_rd_u32(&r.rd);
        must((proto_rd_done(&r.rd) == 0) == (h->len == 8), "gpu_attach length check");
        break;
    default: break;
    }
    *ns_dim = r.ns_dim;
}

/* Codec properties checked on any payload, whatever its opcode. */
static void check_codec(const uint8_t *payload, size_t len)
{
    check_string((const char *)payload, len);

    proto_rd_t r;
    simcache_layout_t l;
    proto_rd_init(&r, payload, len);
    proto_rd_layout(&r, &l);
    if (!r.err) check_layout(&l);

    /* A match record that reads to the end re-encodes to its own bytes. */
    proto_match_t m;
    proto_rd_init(&r, payload, len);
    proto_rd_match(&r, &m);
    must(m.meta_len <= SIMCACHE_MAX_META, "match meta over the limit");
    if (proto_rd_done(&r) == 0) {
        proto_wr_t w;
        proto_wr_init(&w);
        proto_wr_match(&w, &m);
        must(!w.err && w.len == len && memcmp(w.buf, payload, len) == 0,
             "match does not re-encode to its own bytes");
        proto_wr_free(&w);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t ns_dim = DEFAULT_DIM;
    size_t pos = 0;
    /* Cut frames the way process_input() does: stop at the first bad header
     * (the daemon answers and hangs up) or at an incomplete frame. */
    while (size - pos >= PROTO_HDR_SIZE) {
        proto_hdr_t h;
        int rc = proto_hdr_decode(data + pos, MAX_FRAME, 0, &h);
        if (rc) {
            must(rc == SIMCACHE_EPROTO || rc == SIMCACHE_EVERSION || rc == SIMCACHE_ETOOBIG,
                 "header: unexpected code");
            break;
        }
        must(h.magic == PROTO_MAGIC && h.version == PROTO_VERSION && h.len <= MAX_FRAME,
             "header accepted with bad fields");
        uint8_t enc[PROTO_HDR_SIZE];
        proto_hdr_encode(&h, enc);
        must(memcmp(enc, data + pos, PROTO_HDR_SIZE) == 0, "header does not re-encode");
        size_t need = PROTO_HDR_SIZE + (size_t)h.len;
        if (size - pos < need) break;
        /* An exact-size copy, so a read past the payload is an ASan report. */
        uint8_t *payload = malloc(h.len ? h.len : 1);
        must(payload != NULL, "out of memory");
        memcpy(payload, data + pos + PROTO_HDR_SIZE, h.len);
        dispatch(&h, payload, &ns_dim);
        check_codec(payload, h.len);
        free(payload);
        pos += need;
    }
    return 0;
}
