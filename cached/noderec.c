/* noderec.c - encode and strictly decode the node record (hdr, protos).
 *
 * Decoders check every bound before they allocate, so a hostile length can
 * neither make them read past the value nor allocate more than the value's
 * own size implies.
 */
#include "noderec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "simcache.h"

/* ---- fp16 ---- */

uint16_t noderec_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t exp = (x >> 23) & 0xffu, man = x & 0x7fffffu;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) {
        /* Subnormal half: the 24-bit significand shifted into m * 2^-24. */
        int shift = 14 - e;
        if (shift > 24) return sign;
        uint32_t m24 = man | 0x800000u;
        uint32_t m = m24 >> shift, rem = m24 & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (m & 1))) m++;
        return (uint16_t)(sign | m);
    }
    uint32_t h = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fffu;
    /* A carry out of the mantissa bumps the exponent: still the right value. */
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

float noderec_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    float f;
    if (exp == 0) {
        f = ldexpf((float)man, -24);
        return sign ? -f : f;
    }
    uint32_t x = exp == 31 ? (sign | 0x7f800000u | (man << 13))
                           : (sign | ((exp + 112) << 23) | (man << 13));
    memcpy(&f, &x, sizeof f);
    return f;
}

/* ---- names ---- */

int noderec_id_valid(const char *s, size_t n)
{
    if (n == 0 || n > NODEREC_MAX_ID) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return 0;
    }
    return 1;
}

static int addr_valid(const char *s, size_t n)
{
    if (n > NODEREC_MAX_ADDR || !proto_utf8_valid(s, n)) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 0;
    return 1;
}

/* ---- hdr ---- */

void noderec_hdr_encode(proto_wr_t *w, const noderec_hdr_t *h)
{
    proto_wr_u32(w, NODEREC_HDR_MAGIC);
    proto_wr_u16(w, NODEREC_VERSION);
    proto_wr_u16(w, 0);
    proto_wr_str(w, h->id, strlen(h->id));
    proto_wr_str(w, h->addr, strlen(h->addr));
    proto_wr_u64(w, h->seq);
    proto_wr_u64(w, h->time_ms);
    proto_wr_u64(w, h->entries);
    proto_wr_u64(w, h->bytes);
    proto_wr_u64(w, h->capacity);
    proto_wr_f32(w, h->rate);
}

int noderec_hdr_decode(const void *buf, size_t len, noderec_hdr_t *h)
{
    proto_rd_t r;
    uint16_t idn, an;
    memset(h, 0, sizeof *h);
    proto_rd_init(&r, buf, len);
    uint32_t magic = proto_rd_u32(&r);
    uint16_t version = proto_rd_u16(&r), flags = proto_rd_u16(&r);
    const char *id = proto_rd_str(&r, NODEREC_MAX_ID, &idn);
    const char *addr = proto_rd_str(&r, NODEREC_MAX_ADDR, &an);
    h->seq = proto_rd_u64(&r);
    h->time_ms = proto_rd_u64(&r);
    h->entries = proto_rd_u64(&r);
    h->bytes = proto_rd_u64(&r);
    h->capacity = proto_rd_u64(&r);
    h->rate = proto_rd_f32(&r);
    if (proto_rd_done(&r) || magic != NODEREC_HDR_MAGIC || version != NODEREC_VERSION || flags)
        return -1;
    if (!noderec_id_valid(id, idn) || !addr_valid(addr, an)) return -1;
    if (!isfinite(h->rate) || h->rate < 0) return -1;
    memcpy(h->id, id, idn);
    h->id[idn] = 0;
    if (an) memcpy(h->addr, addr, an);
    h->addr[an] = 0;
    return 0;
}

/* ---- protos ---- */

size_t noderec_ns_bytes(uint32_t dim, uint32_t k)
{
    return NODEREC_HASH_LEN + 8 + (size_t)k * 4 + (size_t)k * dim * 2;
}

void noderec_protos_begin(proto_wr_t *w, uint64_t seq, uint32_t n_ns)
{
    proto_wr_u32(w, NODEREC_PROTOS_MAGIC);
    proto_wr_u16(w, NODEREC_VERSION);
    proto_wr_u16(w, 0);
    proto_wr_u64(w, seq);
    proto_wr_u32(w, n_ns);
}

void noderec_protos_add_ns(proto_wr_t *w, const uint8_t hash[NODEREC_HASH_LEN], uint32_t dim,
                           uint32_t k, const uint32_t *counts, const float *centroids)
{
    proto_wr_bytes(w, hash, NODEREC_HASH_LEN);
    proto_wr_u32(w, dim);
    proto_wr_u32(w, k);
    for (uint32_t i = 0; i < k; i++) proto_wr_u32(w, counts[i]);
    uint8_t *p = proto_wr_reserve(w, (size_t)k * dim * 2);
    if (!p) return;
    for (size_t i = 0; i < (size_t)k * dim; i++) {
        uint16_t v = noderec_f16(centroids[i]);
        p[2 * i] = (uint8_t)v;
        p[2 * i + 1] = (uint8_t)(v >> 8);
    }
}

void noderec_protos_free(noderec_protos_t *p)
{
    if (!p) return;
    for (uint32_t i = 0; i < p->n_ns && p->ns; i++) {
        free(p->ns[i].counts);
        free(p->ns[i].centroids);
    }
    free(p->ns);
    p->ns = NULL;
    p->n_ns = 0;
}

/* Read k fp16 rows of dim values into unit fp32 rows; -1 unless every value
 * is finite and every row has length 1 within fp16 rounding. */
static int read_centroids(proto_rd_t *r, uint32_t dim, uint32_t k, float *out)
{
    const uint8_t *p = proto_rd_bytes(r, (size_t)k * dim * 2);
    if (!p) return -1;
    for (uint32_t c = 0; c < k; c++) {
        float *row = out + (size_t)c * dim;
        double nn = 0;
        for (uint32_t j = 0; j < dim; j++) {
            size_t i = (size_t)c * dim + j;
            uint16_t h = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
            if (((h >> 10) & 0x1f) == 31) return -1;
            row[j] = noderec_f32(h);
            nn += (double)row[j] * row[j];
        }
        if (nn < 0.9 || nn > 1.1) return -1;
        float inv = (float)(1.0 / sqrt(nn));
        for (uint32_t j = 0; j < dim; j++) row[j] *= inv;
    }
    return 0;
}

int noderec_protos_decode(const void *buf, size_t len, noderec_protos_t *out)
{
    proto_rd_t r;
    memset(out, 0, sizeof *out);
    if (len > NODEREC_MAX_BYTES) return -1;
    proto_rd_init(&r, buf, len);
    uint32_t magic = proto_rd_u32(&r);
    uint16_t version = proto_rd_u16(&r), flags = proto_rd_u16(&r);
    out->seq = proto_rd_u64(&r);
    uint32_t n = proto_rd_u32(&r);
    if (r.err || magic != NODEREC_PROTOS_MAGIC || version != NODEREC_VERSION || flags ||
        n > NODEREC_MAX_NS)
        return -1;
    if (n) {
        out->ns = calloc(n, sizeof *out->ns);
        if (!out->ns) return -2;
    }
    for (uint32_t i = 0; i < n; i++) {
        noderec_ns_t *ns = &out->ns[i];
        const uint8_t *hash = proto_rd_bytes(&r, NODEREC_HASH_LEN);
        ns->dim = proto_rd_u32(&r);
        ns->k = proto_rd_u32(&r);
        if (r.err || ns->dim == 0 || ns->dim > SIMCACHE_MAX_DIM || ns->k == 0 ||
            ns->k > NODEREC_MAX_K)
            return -1;
        /* Sizes are bounded above, so this cannot overflow; checking what is
         * left before allocating keeps allocations within the value's size. */
        if (r.left < (size_t)ns->k * 4 + (size_t)ns->k * ns->dim * 2) return -1;
        memcpy(ns->hash, hash, NODEREC_HASH_LEN);
        out->n_ns = i + 1;   /* from here on noderec_protos_free frees this one */
        for (uint32_t j = 0; j < i; j++)
            if (memcmp(out->ns[j].hash, ns->hash, NODEREC_HASH_LEN) == 0) return -1;
        ns->counts = malloc(ns->k * sizeof *ns->counts);
        ns->centroids = malloc((size_t)ns->k * ns->dim * sizeof *ns->centroids);
        if (!ns->counts || !ns->centroids) return -2;
        for (uint32_t c = 0; c < ns->k; c++) {
            ns->counts[c] = proto_rd_u32(&r);
            if (ns->counts[c] == 0) return -1;
        }
        if (read_centroids(&r, ns->dim, ns->k, ns->centroids)) return -1;
    }
    return proto_rd_done(&r) ? -1 : 0;
}
