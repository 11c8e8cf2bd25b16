/* proto.c - wire codec: frame headers, bounded payload readers, growable
 * writers, and the message bodies both ends share.
 *
 * Every integer is little-endian and read byte by byte, so the codec needs no
 * alignment and behaves the same on any host. Readers are sticky: after the
 * first short read every later read returns zero and proto_rd_done() fails,
 * so a decoder can read all fields and check once.
 */
#include "proto.h"

#include <stdlib.h>
#include <string.h>

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32); }

void proto_hdr_encode(const proto_hdr_t *h, uint8_t out[PROTO_HDR_SIZE])
{
    put32(out, h->magic);
    put16(out + 4, h->version);
    put16(out + 6, h->opcode);
    put64(out + 8, h->req_id);
    put32(out + 16, h->len);
    put32(out + 20, (uint32_t)h->status);
}

int proto_hdr_decode(const uint8_t in[PROTO_HDR_SIZE], uint32_t max_payload, int any_version,
                     proto_hdr_t *h)
{
    h->magic = get32(in);
    h->version = get16(in + 4);
    h->opcode = get16(in + 6);
    h->req_id = get64(in + 8);
    h->len = get32(in + 16);
    h->status = (int32_t)get32(in + 20);
    if (h->magic != PROTO_MAGIC) return SIMCACHE_EPROTO;
    if (!any_version && h->version != PROTO_VERSION) return SIMCACHE_EVERSION;
    if (h->len > max_payload) return SIMCACHE_ETOOBIG;
    return 0;
}

const char *proto_op_name(uint32_t op)
{
    static const char *const names[OP_MAX_] = {
        [OP_HELLO] = "hello", [OP_PUT_BEGIN] = "put_begin", [OP_PUT_COMMIT] = "put_commit",
        [OP_PUT_ABORT] = "put_abort", [OP_LOOKUP] = "lookup", [OP_LOOKUP_BATCH] = "lookup_batch",
        [OP_GET] = "get", [OP_RELEASE] = "release", [OP_DELETE] = "delete",
        [OP_STATS] = "stats", [OP_PING] = "ping", [OP_ROUTE] = "route",
        [OP_GPU_ATTACH] = "gpu_attach",
    };
    op &= ~(uint32_t)OP_REPLY;
    if (op < OP_MAX_ && names[op]) return names[op];
    return "unknown";
}

/* ---- reader ---- */

void proto_rd_init(proto_rd_t *r, const void *buf, size_t len)
{
    r->p = buf;
    r->left = len;
    r->err = 0;
}

const void *proto_rd_bytes(proto_rd_t *r, size_t n)
{
    if (r->err || n > r->left) {
        r->err = 1;
        return NULL;
    }
    const void *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

uint16_t proto_rd_u16(proto_rd_t *r)
{
    const uint8_t *p = proto_rd_bytes(r, 2);
    return p ? get16(p) : 0;
}

uint32_t proto_rd_u32(proto_rd_t *r)
{
    const uint8_t *p = proto_rd_bytes(r, 4);
    return p ? get32(p) : 0;
}

uint64_t proto_rd_u64(proto_rd_t *r)
{
    const uint8_t *p = proto_rd_bytes(r, 8);
    return p ? get64(p) : 0;
}

float proto_rd_f32(proto_rd_t *r)
{
    uint32_t u = proto_rd_u32(r);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

const char *proto_rd_str(proto_rd_t *r, size_t max, uint16_t *len)
{
    uint16_t n = proto_rd_u16(r);
    *len = 0;
    if (r->err) return NULL;
    if (n > max) {
        r->err = 1;
        return NULL;
    }
    const char *s = proto_rd_bytes(r, n);
    if (s) *len = n;
    return s;
}

int proto_rd_done(const proto_rd_t *r)
{
    return (r->err || r->left) ? SIMCACHE_EPROTO : 0;
}

/* ---- writer ---- */

void proto_wr_init(proto_wr_t *w) { memset(w, 0, sizeof *w); }

void proto_wr_free(proto_wr_t *w)
{
    free(w->buf);
    memset(w, 0, sizeof *w);
}

void proto_wr_reset(proto_wr_t *w)
{
    w->len = 0;
    w->err = 0;
}

uint8_t *proto_wr_reserve(proto_wr_t *w, size_t n)
{
    if (w->err) return NULL;
    if (n > SIZE_MAX / 2 - w->len) {
        w->err = 1;
        return NULL;
    }
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n) cap *= 2;
        uint8_t *b = realloc(w->buf, cap);
        if (!b) {
            w->err = 1;
            return NULL;
        }
        w->buf = b;
        w->cap = cap;
    }
    uint8_t *p = w->buf + w->len;
    w->len += n;
    return p;
}

void proto_wr_u16(proto_wr_t *w, uint16_t v)
{
    uint8_t *p = proto_wr_reserve(w, 2);
    if (p) put16(p, v);
}

void proto_wr_u32(proto_wr_t *w, uint32_t v)
{
    uint8_t *p = proto_wr_reserve(w, 4);
    if (p) put32(p, v);
}

void proto_wr_u64(proto_wr_t *w, uint64_t v)
{
    uint8_t *p = proto_wr_reserve(w, 8);
    if (p) put64(p, v);
}

void proto_wr_f32(proto_wr_t *w, float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    proto_wr_u32(w, u);
}

void proto_wr_bytes(proto_wr_t *w, const void *src, size_t n)
{
    if (n == 0) return;
    uint8_t *p = proto_wr_reserve(w, n);
    if (p) memcpy(p, src, n);
}

void proto_wr_str(proto_wr_t *w, const char *s, size_t n)
{
    if (n > UINT16_MAX) {
        w->err = 1;
        return;
    }
    proto_wr_u16(w, (uint16_t)n);
    proto_wr_bytes(w, s, n);
}

size_t proto_wr_frame_begin(proto_wr_t *w, uint16_t opcode, uint64_t req_id, int32_t status)
{
    size_t off = w->len;
    uint8_t *p = proto_wr_reserve(w, PROTO_HDR_SIZE);
    if (p) {
        proto_hdr_t h = { PROTO_MAGIC, PROTO_VERSION, opcode, req_id, 0, status };
        proto_hdr_encode(&h, p);
    }
    return off;
}

void proto_wr_frame_end(proto_wr_t *w, size_t off)
{
    if (w->err) return;
    size_t len = w->len - off - PROTO_HDR_SIZE;
    if (len > UINT32_MAX) {
        w->err = 1;
        return;
    }
    put32(w->buf + off + 16, (uint32_t)len);
}

void proto_wr_frame(proto_wr_t *w, uint16_t opcode, uint64_t req_id, int32_t status,
                    const void *payload, size_t len)
{
    size_t off = proto_wr_frame_begin(w, opcode, req_id, status);
    proto_wr_bytes(w, payload, len);
    proto_wr_frame_end(w, off);
}

/* ---- shared bodies ---- */

void proto_wr_layout(proto_wr_t *w, const simcache_layout_t *l)
{
    proto_wr_u32(w, l->dtype);
    proto_wr_u32(w, l->parts);
    proto_wr_u32(w, l->layers);
    proto_wr_u32(w, l->kv_heads);
    proto_wr_u32(w, l->head_dim);
    proto_wr_u32(w, l->tokens);
}

void proto_rd_layout(proto_rd_t *r, simcache_layout_t *l)
{
    l->dtype = proto_rd_u32(r);
    l->parts = proto_rd_u32(r);
    l->layers = proto_rd_u32(r);
    l->kv_heads = proto_rd_u32(r);
    l->head_dim = proto_rd_u32(r);
    l->tokens = proto_rd_u32(r);
}

static uint32_t dtype_bytes(uint32_t dtype)
{
    switch (dtype) {
    case SIMCACHE_DTYPE_F32: return 4;
    case SIMCACHE_DTYPE_F16:
    case SIMCACHE_DTYPE_BF16: return 2;
    case SIMCACHE_DTYPE_F8E4M3:
    case SIMCACHE_DTYPE_F8E5M2:
    case SIMCACHE_DTYPE_I8: return 1;
    default: return 0;
    }
}

uint64_t proto_layout_bytes(const simcache_layout_t *l)
{
    if (!l) return 0;
    if (l->parts > 2) return 0;
    uint64_t n = dtype_bytes(l->dtype);
    const uint32_t f[5] = { l->parts, l->layers, l->kv_heads, l->head_dim, l->tokens };
    for (int i = 0; i < 5 && n; i++) {
        if (f[i] == 0 || n > UINT64_MAX / f[i]) return 0;
        n *= f[i];
    }
    return n;
}

int proto_layout_check(const simcache_layout_t *l, uint64_t size)
{
    uint64_t n = proto_layout_bytes(l);
    if (n == 0 || l->parts > 2) return SIMCACHE_ELAYOUT;
    if (size && n != size) return SIMCACHE_ELAYOUT;
    return 0;
}

int proto_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c == 0) return 0;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xe0) == 0xc0) { k = 1; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { k = 2; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { k = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (k > n - i - 1) return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        /* Overlong forms, UTF-16 surrogates and values past U+10FFFF are not UTF-8. */
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += k + 1;
    }
    return 1;
}

void proto_wr_hello(proto_wr_t *w, const proto_hello_t *h)
{
    proto_wr_u16(w, h->min_version);
    proto_wr_u16(w, h->max_version);
    proto_wr_u32(w, h->dim);
    proto_wr_u32(w, h->flags);
    proto_wr_u32(w, (uint32_t)h->gpu_device);
    proto_wr_str(w, h->model, h->model_len);
    proto_wr_str(w, h->layout_fp, h->layout_fp_len);
    proto_wr_str(w, h->tenant, h->tenant_len);
}

int proto_rd_hello(proto_rd_t *r, proto_hello_t *h)
{
    memset(h, 0, sizeof *h);
    h->min_version = proto_rd_u16(r);
    h->max_version = proto_rd_u16(r);
    h->dim = proto_rd_u32(r);
    h->flags = proto_rd_u32(r);
    h->gpu_device = (int32_t)proto_rd_u32(r);
    /* Read with the wire's own bound so an over-long name is reported as a
     * namespace error, not as a malformed frame. */
    h->model = proto_rd_str(r, UINT16_MAX, &h->model_len);
    h->layout_fp = proto_rd_str(r, UINT16_MAX, &h->layout_fp_len);
    h->tenant = proto_rd_str(r, UINT16_MAX, &h->tenant_len);
    if (proto_rd_done(r)) return SIMCACHE_EPROTO;
    if (h->model_len == 0 || h->layout_fp_len == 0) return SIMCACHE_ENAMESPACE;
    if (h->model_len > SIMCACHE_MAX_NAME || h->layout_fp_len > SIMCACHE_MAX_NAME ||
        h->tenant_len > SIMCACHE_MAX_NAME)
        return SIMCACHE_ENAMESPACE;
    if (!proto_utf8_valid(h->model, h->model_len) ||
        !proto_utf8_valid(h->layout_fp, h->layout_fp_len) ||
        !proto_utf8_valid(h->tenant, h->tenant_len))
        return SIMCACHE_ENAMESPACE;
    return 0;
}

void proto_wr_hello_reply(proto_wr_t *w, const proto_hello_reply_t *h)
{
    proto_wr_u16(w, h->version);
    proto_wr_u16(w, h->tiers);
    proto_wr_u32(w, h->max_payload);
    proto_wr_u64(w, h->client_id);
    proto_wr_u64(w, h->arena_size);
    proto_wr_f32(w, h->default_threshold);
    proto_wr_u32(w, h->max_batch);
}

int proto_rd_hello_reply(proto_rd_t *r, proto_hello_reply_t *h)
{
    h->version = proto_rd_u16(r);
    h->tiers = proto_rd_u16(r);
    h->max_payload = proto_rd_u32(r);
    h->client_id = proto_rd_u64(r);
    h->arena_size = proto_rd_u64(r);
    h->default_threshold = proto_rd_f32(r);
    h->max_batch = proto_rd_u32(r);
    return proto_rd_done(r);
}

void proto_wr_match(proto_wr_t *w, const proto_match_t *m)
{
    proto_wr_u64(w, m->id);
    proto_wr_u64(w, m->lease);
    proto_wr_f32(w, m->similarity);
    proto_wr_u32(w, m->tier);
    proto_wr_u64(w, m->offset);
    proto_wr_u64(w, m->size);
    proto_wr_layout(w, &m->layout);
    proto_wr_u32(w, m->meta_len);
    proto_wr_bytes(w, m->meta, m->meta_len);
}

void proto_rd_match(proto_rd_t *r, proto_match_t *m)
{
    m->id = proto_rd_u64(r);
    m->lease = proto_rd_u64(r);
    m->similarity = proto_rd_f32(r);
    m->tier = proto_rd_u32(r);
    m->offset = proto_rd_u64(r);
    m->size = proto_rd_u64(r);
    proto_rd_layout(r, &m->layout);
    m->meta_len = proto_rd_u32(r);
    if (m->meta_len > SIMCACHE_MAX_META) {
        r->err = 1;
        m->meta_len = 0;
    }
    m->meta = proto_rd_bytes(r, m->meta_len);
}

const void *proto_rd_embedding(proto_rd_t *r, uint32_t max_dim, uint32_t *dim)
{
    *dim = proto_rd_u32(r);
    if (r->err) return NULL;
    if (*dim == 0 || *dim > max_dim) {
        r->err = 1;
        return NULL;
    }
    return proto_rd_bytes(r, (size_t)*dim * 4);
}

void proto_wr_embedding(proto_wr_t *w, const float *v, uint32_t dim)
{
    proto_wr_u32(w, dim);
    proto_wr_bytes(w, v, (size_t)dim * 4);
}

void proto_wr_route_reply(proto_wr_t *w, const proto_route_reply_t *rr)
{
    proto_wr_str(w, rr->node, rr->node_len);
    proto_wr_str(w, rr->addr, rr->addr_len);
    proto_wr_f32(w, rr->similarity);
    proto_wr_u32(w, rr->flags);
    proto_wr_f32(w, rr->load);
}

int proto_rd_route_reply(proto_rd_t *r, proto_route_reply_t *rr)
{
    rr->node = proto_rd_str(r, SIMCACHE_MAX_NODE_ID, &rr->node_len);
    rr->addr = proto_rd_str(r, SIMCACHE_MAX_ADDRESS, &rr->addr_len);
    rr->similarity = proto_rd_f32(r);
    rr->flags = proto_rd_u32(r);
    rr->load = proto_rd_f32(r);
    if (proto_rd_done(r) || rr->node_len == 0) return SIMCACHE_EPROTO;
    if (!proto_utf8_valid(rr->node, rr->node_len) || !proto_utf8_valid(rr->addr, rr->addr_len))
        return SIMCACHE_EPROTO;
    /* Comparisons written so that NaN fails them. */
    if (!(rr->similarity >= -1.5f && rr->similarity <= 1.5f) || !(rr->load >= 0 && rr->load <= 1))
        return SIMCACHE_EPROTO;
    return 0;
}

/* ---- names of result codes (public API, shared with the daemon's logs) ---- */

static const char *const names[] = {
    "SIMCACHE_OK: success",
    "SIMCACHE_EINVAL: bad argument",
    "SIMCACHE_EPROTO: malformed frame",
    "SIMCACHE_EVERSION: no protocol version in common",
    "SIMCACHE_ETOOBIG: over a size limit",
    "SIMCACHE_EOPCODE: unknown opcode",
    "SIMCACHE_EDIM: wrong embedding dimension",
    "SIMCACHE_EEMBED: embedding has NaN/Inf or is zero",
    "SIMCACHE_ELAYOUT: layout invalid or does not match the size",
    "SIMCACHE_ENOPUT: no such unfinished put",
    "SIMCACHE_ELEASE: unknown or already released lease",
    "SIMCACHE_EPERM: not permitted",
    "SIMCACHE_ENOSPC: tier full",
    "SIMCACHE_ENAMESPACE: bad namespace string",
    "SIMCACHE_EBUSY: too many connections",
    "SIMCACHE_ENOTFOUND: no such entry",
    "SIMCACHE_EIO: I/O error",
    "SIMCACHE_ENOMEM: out of memory",
    "SIMCACHE_ECLOSED: connection closed",
    "SIMCACHE_ESTATE: request out of order",
    "SIMCACHE_ELIMIT: client limit reached",
    "SIMCACHE_ESHUTDOWN: daemon shutting down",
    "SIMCACHE_ENODEV: no GPU tier",
    "SIMCACHE_ECORRUPT: checksum failure",
};

const char *proto_strerror(int code)
{
    if (code == SIMCACHE_MISS) return "SIMCACHE_MISS: no match at or above the threshold";
    if (code <= 0 && code > -(int)(sizeof names / sizeof names[0])) return names[-code];
    return "SIMCACHE_E?: unknown code";
}

void proto_wr_gpu_region(proto_wr_t *w, const proto_gpu_region_t *g)
{
    proto_wr_u32(w, g->kind);
    proto_wr_u32(w, (uint32_t)g->device);
    proto_wr_u64(w, g->bytes);
    proto_wr_bytes(w, g->ipc, sizeof g->ipc);
}

void proto_rd_gpu_region(proto_rd_t *r, proto_gpu_region_t *g)
{
    g->kind = proto_rd_u32(r);
    g->device = (int32_t)proto_rd_u32(r);
    g->bytes = proto_rd_u64(r);
    const void *ipc = proto_rd_bytes(r, sizeof g->ipc);
    if (ipc) memcpy(g->ipc, ipc, sizeof g->ipc);
    else memset(g->ipc, 0, sizeof g->ipc);
    if (!r->err && (g->kind < 1 || g->kind > 2 || g->device < 0 || g->bytes == 0)) r->err = 1;
}
