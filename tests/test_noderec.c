/* test_noderec.c - the node record codec: round trips, fp16 conversion, and
 * refusal of every malformed or foreign value (truncated, trailing bytes,
 * wrong magic or version, bounds, non-unit or non-finite centroids,
 * duplicate namespaces, bad ids and addresses). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "noderec.h"
#include "simcache.h"
#include "vec.h"

static noderec_hdr_t sample_hdr(void)
{
    noderec_hdr_t h = { .seq = 12345, .time_ms = 1700000000000ull, .entries = 42,
                        .bytes = 1u << 20, .capacity = 1u << 30, .rate = 17.5f };
    strcpy(h.id, "host-a.example:7");
    strcpy(h.addr, "10.0.0.7:9000 (rack 3)");
    return h;
}

static void hdr_round_trips(void **state)
{
    (void)state;
    noderec_hdr_t h = sample_hdr(), g;
    proto_wr_t w;
    proto_wr_init(&w);
    noderec_hdr_encode(&w, &h);
    assert_false(w.err);
    assert_int_equal(noderec_hdr_decode(w.buf, w.len, &g), 0);
    assert_string_equal(g.id, h.id);
    assert_string_equal(g.addr, h.addr);
    assert_true(g.seq == h.seq && g.time_ms == h.time_ms && g.entries == h.entries &&
                g.bytes == h.bytes && g.capacity == h.capacity && g.rate == h.rate);
    /* Every strict prefix and one extra byte are refused. */
    for (size_t n = 0; n < w.len; n++) assert_int_equal(noderec_hdr_decode(w.buf, n, &g), -1);
    proto_wr_u16(&w, 0);
    assert_int_equal(noderec_hdr_decode(w.buf, w.len - 1, &g), -1);
    proto_wr_free(&w);
}

static void hdr_refuses_foreign_values(void **state)
{
    (void)state;
    noderec_hdr_t h = sample_hdr(), g;
    proto_wr_t w;
    proto_wr_init(&w);
    noderec_hdr_encode(&w, &h);
    uint8_t *b = malloc(w.len);
    const size_t flip[] = { 0, 3, 4, 6 };   /* magic, version, flags */
    for (size_t i = 0; i < sizeof flip / sizeof flip[0]; i++) {
        memcpy(b, w.buf, w.len);
        b[flip[i]] ^= 0x40;
        assert_int_equal(noderec_hdr_decode(b, w.len, &g), -1);
    }
    free(b);
    proto_wr_free(&w);

    const char *bad_ids[] = { "", "has space", "slash/no", "nul\x01", "ü" };
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        h = sample_hdr();
        strcpy(h.id, bad_ids[i]);
        proto_wr_init(&w);
        noderec_hdr_encode(&w, &h);
        assert_int_equal(noderec_hdr_decode(w.buf, w.len, &g), -1);
        proto_wr_free(&w);
    }
    h = sample_hdr();
    strcpy(h.addr, "tab\there");
    proto_wr_init(&w);
    noderec_hdr_encode(&w, &h);
    assert_int_equal(noderec_hdr_decode(w.buf, w.len, &g), -1);
    proto_wr_free(&w);
    h = sample_hdr();
    h.rate = NAN;
    proto_wr_init(&w);
    noderec_hdr_encode(&w, &h);
    assert_int_equal(noderec_hdr_decode(w.buf, w.len, &g), -1);
    proto_wr_free(&w);
}

static void id_alphabet_and_length(void **state)
{
    (void)state;
    char id[NODEREC_MAX_ID + 2];
    memset(id, 'a', sizeof id);
    assert_true(noderec_id_valid(id, NODEREC_MAX_ID));
    assert_false(noderec_id_valid(id, NODEREC_MAX_ID + 1));
    assert_false(noderec_id_valid(id, 0));
    assert_true(noderec_id_valid("A-z_0.9:x", 9));
    assert_false(noderec_id_valid("a b", 3));
    assert_false(noderec_id_valid("a\0b", 3));
}

static void f16_conversion(void **state)
{
    (void)state;
    assert_int_equal(noderec_f16(0.0f), 0x0000);
    assert_int_equal(noderec_f16(-0.0f), 0x8000);
    assert_int_equal(noderec_f16(1.0f), 0x3c00);
    assert_int_equal(noderec_f16(-2.0f), 0xc000);
    assert_int_equal(noderec_f16(65504.0f), 0x7bff);
    assert_int_equal(noderec_f16(65520.0f), 0x7c00);       /* rounds to infinity */
    assert_int_equal(noderec_f16(INFINITY), 0x7c00);
    assert_true((noderec_f16(NAN) & 0x7c00) == 0x7c00 && (noderec_f16(NAN) & 0x3ff));
    assert_int_equal(noderec_f16(0x1p-24f), 0x0001);       /* smallest subnormal */
    assert_int_equal(noderec_f16(0x1p-25f), 0x0000);       /* ties to even: 0 */
    assert_int_equal(noderec_f16(0x1.8p-24f), 0x0002);     /* 1.5 ulp -> 2 (even) */
    assert_int_equal(noderec_f16(0x1p-14f), 0x0400);       /* smallest normal */
    assert_int_equal(noderec_f16(1.0f + 0x1p-11f), 0x3c00); /* tie to even */
    assert_int_equal(noderec_f16(1.0f + 0x1.8p-11f), 0x3c01);
    /* Every finite half converts to float and back unchanged. */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if (((h >> 10) & 0x1f) == 0x1f) continue;
        assert_int_equal(noderec_f16(noderec_f32((uint16_t)h)), h);
    }
    assert_true(isinf(noderec_f32(0x7c00)) && isnan(noderec_f32(0x7e00)));
    /* Relative error of a normal value is within half an ulp (2^-11). */
    for (float f = 0.001f; f < 1.0f; f *= 1.37f)
        assert_true(fabsf(noderec_f32(noderec_f16(f)) - f) <= f * 0x1p-11f);
}

#define DIM 48

static void unit_rows(float *v, uint32_t k, uint32_t dim, uint32_t seed)
{
    for (uint32_t i = 0; i < k * dim; i++) v[i] = sinf((float)(i * 7 + seed * 13 + 1));
    for (uint32_t c = 0; c < k; c++) assert_int_equal(vec_normalize(v + c * dim, dim, v + c * dim), 0);
}

static void encode_two(proto_wr_t *w, uint8_t second_hash_byte)
{
    float c[3 * DIM];
    uint32_t counts[3] = { 5, 1, 99 };
    uint8_t h1[NODEREC_HASH_LEN], h2[NODEREC_HASH_LEN];
    memset(h1, 0x11, sizeof h1);
    memset(h2, 0x11, sizeof h2);
    h2[0] = second_hash_byte;
    noderec_protos_begin(w, 777, 2);
    unit_rows(c, 3, DIM, 1);
    noderec_protos_add_ns(w, h1, DIM, 3, counts, c);
    unit_rows(c, 1, 7, 2);
    noderec_protos_add_ns(w, h2, 7, 1, counts, c);
}

static void protos_round_trip(void **state)
{
    (void)state;
    proto_wr_t w;
    proto_wr_init(&w);
    encode_two(&w, 0x22);
    assert_false(w.err);
    assert_int_equal(w.len, 20 + noderec_ns_bytes(DIM, 3) + noderec_ns_bytes(7, 1));
    noderec_protos_t p;
    assert_int_equal(noderec_protos_decode(w.buf, w.len, &p), 0);
    assert_true(p.seq == 777 && p.n_ns == 2);
    assert_int_equal(p.ns[0].dim, DIM);
    assert_int_equal(p.ns[0].k, 3);
    assert_int_equal(p.ns[0].counts[2], 99);
    assert_int_equal(p.ns[1].dim, 7);
    assert_int_equal(p.ns[1].hash[0], 0x22);
    float c[3 * DIM];
    unit_rows(c, 3, DIM, 1);
    for (uint32_t i = 0; i < 3; i++) {
        const float *row = p.ns[0].centroids + i * DIM;
        assert_true(fabsf(vec_dot(row, row, DIM) - 1.0f) < 1e-5f);
        assert_true(vec_dot(row, c + i * DIM, DIM) > 0.9999f);
    }
    noderec_protos_free(&p);
    /* Prefixes and a trailing byte are refused, and leak nothing. */
    for (size_t n = 0; n < w.len; n += 7) {
        assert_int_equal(noderec_protos_decode(w.buf, n, &p), -1);
        noderec_protos_free(&p);
    }
    proto_wr_u16(&w, 0);
    assert_int_equal(noderec_protos_decode(w.buf, w.len - 1, &p), -1);
    noderec_protos_free(&p);
    proto_wr_free(&w);
}

static void protos_refuse_duplicates_and_bounds(void **state)
{
    (void)state;
    noderec_protos_t p;
    proto_wr_t w;
    proto_wr_init(&w);
    encode_two(&w, 0x11);   /* both namespaces hash alike */
    assert_int_equal(noderec_protos_decode(w.buf, w.len, &p), -1);
    noderec_protos_free(&p);
    proto_wr_free(&w);

    /* Announced sizes that the value cannot hold: refused before allocating. */
    uint8_t hash[NODEREC_HASH_LEN] = { 0 };
    const uint32_t dims[] = { 0, SIMCACHE_MAX_DIM + 1, 8, 8 }, ks[] = { 1, 1, 0, NODEREC_MAX_K + 1 };
    for (int i = 0; i < 4; i++) {
        proto_wr_init(&w);
        noderec_protos_begin(&w, 1, 1);
        proto_wr_bytes(&w, hash, sizeof hash);
        proto_wr_u32(&w, dims[i]);
        proto_wr_u32(&w, ks[i]);
        assert_int_equal(noderec_protos_decode(w.buf, w.len, &p), -1);
        noderec_protos_free(&p);
        proto_wr_free(&w);
    }
    proto_wr_init(&w);
    noderec_protos_begin(&w, 1, NODEREC_MAX_NS + 1);
    assert_int_equal(noderec_protos_decode(w.buf, w.len, &p), -1);
    noderec_protos_free(&p);
    proto_wr_free(&w);
    proto_wr_init(&w);
    noderec_protos_begin(&w, 1, 0);   /* a node with no namespaces yet */
    assert_int_equal(noderec_protos_decode(w.buf, w.len, &p), 0);
    assert_int_equal(p.n_ns, 0);
    noderec_protos_free(&p);
    proto_wr_free(&w);
}

static void protos_refuse_bad_centroids(void **state)
{
    (void)state;
    uint8_t hash[NODEREC_HASH_LEN] = { 1 };
    uint32_t count = 3, zero = 0;
    float c[DIM];
    noderec_protos_t p;
    proto_wr_t w;
    /* Not unit length. */
    unit_rows(c, 1, DIM, 3);
    for (int i = 0; i < DIM; i++) c[i] *= 2;
    proto_wr_init(&w);
    noderec_protos_begin(&w, 1, 1);
    noderec_protos_add_ns(&w, hash, DIM, 1, &count, c);
    assert_int_equal(noderec_protos_decode(w.buf, w.len, &p), -1);
    noderec_protos_free(&p);
    proto_wr_free(&w);
    /* Infinity inside. */
    unit_rows(c, 1, DIM, 3);
    c[5] = INFINITY;
    proto_wr_init(&w);
    noderec_protos_begin(&w, 1, 1);
    noderec_protos_add_ns(&w, hash, DIM, 1, &count, c);
    assert_int_equal(noderec_protos_decode(w.buf, w.len, &p), -1);
    noderec_protos_free(&p);
    proto_wr_free(&w);
    /* A prototype with no members. */
    unit_rows(c, 1, DIM, 3);
    proto_wr_init(&w);
    noderec_protos_begin(&w, 1, 1);
    noderec_protos_add_ns(&w, hash, DIM, 1, &zero, c);
    assert_int_equal(noderec_protos_decode(w.buf, w.len, &p), -1);
    noderec_protos_free(&p);
    /* Wrong magic. */
    w.buf[0] ^= 1;
    assert_int_equal(noderec_protos_decode(w.buf, w.len, &p), -1);
    noderec_protos_free(&p);
    proto_wr_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hdr_round_trips),
        cmocka_unit_test(hdr_refuses_foreign_values),
        cmocka_unit_test(id_alphabet_and_length),
        cmocka_unit_test(f16_conversion),
        cmocka_unit_test(protos_round_trip),
        cmocka_unit_test(protos_refuse_duplicates_and_bounds),
        cmocka_unit_test(protos_refuse_bad_centroids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
