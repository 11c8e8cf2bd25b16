/* test_proto.c - the wire codec: frame headers, sticky bounded readers,
 * writers, and the shared bodies (hello, hello reply, layout, match,
 * embedding, route reply), including every way a hello's namespace strings
 * can be bad. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto.h"

/* ---- helpers ---- */

static void encode_hdr(uint8_t out[PROTO_HDR_SIZE], uint32_t magic, uint16_t version,
                       uint16_t opcode, uint64_t req_id, uint32_t len)
{
    proto_hdr_t h = { magic, version, opcode, req_id, len, 0 };
    proto_hdr_encode(&h, out);
}

static proto_hello_t hello_of(const char *model, size_t model_len, const char *fp,
                              size_t fp_len, const char *tenant, size_t tenant_len)
{
    proto_hello_t h = {
        .min_version = 1, .max_version = 1, .dim = 384, .flags = 0, .gpu_device = -1,
        .model = model, .model_len = (uint16_t)model_len,
        .layout_fp = fp, .layout_fp_len = (uint16_t)fp_len,
        .tenant = tenant, .tenant_len = (uint16_t)tenant_len,
    };
    return h;
}

/* Encode h, decode it back into *out; returns proto_rd_hello's code. */
static int hello_round_trip(const proto_hello_t *h, proto_hello_t *out, proto_wr_t *w)
{
    proto_rd_t r;
    proto_wr_init(w);
    proto_wr_hello(w, h);
    assert_int_equal(w->err, 0);
    proto_rd_init(&r, w->buf, w->len);
    return proto_rd_hello(&r, out);
}

static int decode_hello_model(const char *model, size_t len)
{
    proto_hello_t h = hello_of(model, len, "fp", 2, "", 0), out;
    proto_wr_t w;
    int rc = hello_round_trip(&h, &out, &w);
    proto_wr_free(&w);
    return rc;
}

static simcache_layout_t layout_of(uint32_t dtype, uint32_t parts, uint32_t layers,
                                   uint32_t kv_heads, uint32_t head_dim, uint32_t tokens)
{
    simcache_layout_t l = { dtype, parts, layers, kv_heads, head_dim, tokens };
    return l;
}

/* ---- header ---- */

static void header_round_trip_keeps_every_field(void **state)
{
    proto_hdr_t in = { PROTO_MAGIC, PROTO_VERSION, OP_LOOKUP | OP_REPLY, 0x0102030405060708ull,
                       4096, SIMCACHE_EDIM };
    proto_hdr_t out;
    uint8_t b[PROTO_HDR_SIZE];

    (void)state;
    proto_hdr_encode(&in, b);
    assert_int_equal(proto_hdr_decode(b, PROTO_DEFAULT_MAX_PAYLOAD, 0, &out), 0);
    assert_int_equal(out.magic, PROTO_MAGIC);
    assert_int_equal(out.version, PROTO_VERSION);
    assert_int_equal(out.opcode, OP_LOOKUP | OP_REPLY);
    assert_true(out.req_id == 0x0102030405060708ull);
    assert_int_equal(out.len, 4096);
    assert_int_equal(out.status, SIMCACHE_EDIM);
}

static void header_is_little_endian_with_magic_spelling_simc(void **state)
{
    uint8_t b[PROTO_HDR_SIZE];

    (void)state;
    encode_hdr(b, PROTO_MAGIC, 1, OP_PING, 0x1122334455667788ull, 0x01020304);
    assert_memory_equal(b, "SIMC", 4);
    assert_int_equal(b[4], 1);
    assert_int_equal(b[5], 0);
    assert_int_equal(b[6], OP_PING);
    assert_int_equal(b[8], 0x88);
    assert_int_equal(b[15], 0x11);
    assert_int_equal(b[16], 0x04);
    assert_int_equal(b[19], 0x01);
}

static void header_bad_magic_is_eproto_and_fills_req_id(void **state)
{
    uint8_t b[PROTO_HDR_SIZE];
    proto_hdr_t h;

    (void)state;
    encode_hdr(b, 0x50545448u /* "HTTP" */, 1, OP_GET, 77, 8);
    assert_int_equal(proto_hdr_decode(b, PROTO_DEFAULT_MAX_PAYLOAD, 0, &h), SIMCACHE_EPROTO);
    assert_true(h.req_id == 77);
    assert_int_equal(h.opcode, OP_GET);
}

static void header_bad_magic_wins_over_bad_version_and_size(void **state)
{
    uint8_t b[PROTO_HDR_SIZE];
    proto_hdr_t h;

    (void)state;
    encode_hdr(b, 0, 9, OP_GET, 5, UINT32_MAX);
    assert_int_equal(proto_hdr_decode(b, 16, 0, &h), SIMCACHE_EPROTO);
}

static void header_other_version_is_eversion_and_fills_req_id(void **state)
{
    uint8_t b[PROTO_HDR_SIZE];
    proto_hdr_t h;

    (void)state;
    encode_hdr(b, PROTO_MAGIC, PROTO_VERSION + 1, OP_HELLO, 99, 0);
    assert_int_equal(proto_hdr_decode(b, PROTO_DEFAULT_MAX_PAYLOAD, 0, &h), SIMCACHE_EVERSION);
    assert_true(h.req_id == 99);
    assert_int_equal(h.version, PROTO_VERSION + 1);
    encode_hdr(b, PROTO_MAGIC, 0, OP_HELLO, 100, 0);
    assert_int_equal(proto_hdr_decode(b, PROTO_DEFAULT_MAX_PAYLOAD, 0, &h), SIMCACHE_EVERSION);
    assert_true(h.req_id == 100);
}

static void header_any_version_accepts_other_versions(void **state)
{
    uint8_t b[PROTO_HDR_SIZE];
    proto_hdr_t h;

    (void)state;
    encode_hdr(b, PROTO_MAGIC, 7, OP_HELLO, 1, 0);
    assert_int_equal(proto_hdr_decode(b, PROTO_DEFAULT_MAX_PAYLOAD, 1, &h), 0);
    assert_int_equal(h.version, 7);
}

static void header_len_over_max_is_etoobig_and_fills_req_id(void **state)
{
    uint8_t b[PROTO_HDR_SIZE];
    proto_hdr_t h;

    (void)state;
    encode_hdr(b, PROTO_MAGIC, 1, OP_PUT_COMMIT, 1234, 4097);
    assert_int_equal(proto_hdr_decode(b, 4096, 0, &h), SIMCACHE_ETOOBIG);
    assert_true(h.req_id == 1234);
    assert_int_equal(h.len, 4097);
    assert_int_equal(h.opcode, OP_PUT_COMMIT);
}

static void header_len_equal_to_max_is_accepted(void **state)
{
    uint8_t b[PROTO_HDR_SIZE];
    proto_hdr_t h;

    (void)state;
    encode_hdr(b, PROTO_MAGIC, 1, OP_PUT_COMMIT, 1, 4096);
    assert_int_equal(proto_hdr_decode(b, 4096, 0, &h), 0);
    encode_hdr(b, PROTO_MAGIC, 1, OP_PUT_COMMIT, 1, UINT32_MAX);
    assert_int_equal(proto_hdr_decode(b, UINT32_MAX, 0, &h), 0);
}

static void op_names_ignore_reply_bit_and_unknown_is_named(void **state)
{
    (void)state;
    assert_string_equal(proto_op_name(OP_HELLO), "hello");
    assert_string_equal(proto_op_name(OP_LOOKUP_BATCH), "lookup_batch");
    assert_string_equal(proto_op_name(OP_PING | OP_REPLY), "ping");
    assert_string_equal(proto_op_name(0), "unknown");
    assert_string_equal(proto_op_name(OP_MAX_), "unknown");
    assert_string_equal(proto_op_name(0xffffffffu), "unknown");
}

/* ---- reader ---- */

static void reader_reads_little_endian_integers_and_floats(void **state)
{
    const uint8_t b[] = { 0x01, 0x02, 0x01, 0x02, 0x03, 0x04, 1, 2, 3, 4, 5, 6, 7, 8,
                          0x00, 0x00, 0x80, 0x3f };
    proto_rd_t r;

    (void)state;
    proto_rd_init(&r, b, sizeof b);
    assert_int_equal(proto_rd_u16(&r), 0x0201);
    assert_int_equal(proto_rd_u32(&r), 0x04030201);
    assert_true(proto_rd_u64(&r) == 0x0807060504030201ull);
    assert_true(proto_rd_f32(&r) == 1.0f);
    assert_int_equal(proto_rd_done(&r), 0);
}

static void reader_short_read_is_sticky_for_every_later_read(void **state)
{
    const uint8_t b[] = { 1, 2, 3 };
    proto_rd_t r;

    (void)state;
    proto_rd_init(&r, b, sizeof b);
    assert_int_equal(proto_rd_u32(&r), 0);
    assert_int_equal(r.err, 1);
    /* Three bytes are still there, but an earlier read failed. */
    assert_int_equal(r.left, 3);
    assert_int_equal(proto_rd_u16(&r), 0);
    assert_null(proto_rd_bytes(&r, 1));
    assert_null(proto_rd_bytes(&r, 0));
    assert_int_equal(proto_rd_done(&r), SIMCACHE_EPROTO);
}

static void reader_u64_from_seven_bytes_fails(void **state)
{
    const uint8_t b[7] = { 0 };
    proto_rd_t r;

    (void)state;
    proto_rd_init(&r, b, sizeof b);
    assert_true(proto_rd_u64(&r) == 0);
    assert_int_equal(proto_rd_done(&r), SIMCACHE_EPROTO);
}

static void reader_done_fails_on_leftover_bytes(void **state)
{
    const uint8_t b[5] = { 0 };
    proto_rd_t r;

    (void)state;
    proto_rd_init(&r, b, sizeof b);
    proto_rd_u32(&r);
    assert_int_equal(r.err, 0);
    assert_int_equal(proto_rd_done(&r), SIMCACHE_EPROTO);
    proto_rd_bytes(&r, 1);
    assert_int_equal(proto_rd_done(&r), 0);
}

static void reader_bytes_point_into_buffer_and_reject_overrun(void **state)
{
    const uint8_t b[4] = { 9, 8, 7, 6 };
    proto_rd_t r;

    (void)state;
    proto_rd_init(&r, b, sizeof b);
    assert_ptr_equal(proto_rd_bytes(&r, 0), b);
    assert_ptr_equal(proto_rd_bytes(&r, 3), b);
    assert_null(proto_rd_bytes(&r, 2));
    assert_int_equal(r.err, 1);
    proto_rd_init(&r, b, sizeof b);
    assert_null(proto_rd_bytes(&r, SIZE_MAX));
}

static void reader_on_empty_buffer_fails_first_read(void **state)
{
    proto_rd_t r;

    (void)state;
    proto_rd_init(&r, NULL, 0);
    assert_int_equal(proto_rd_done(&r), 0);
    assert_int_equal(proto_rd_u16(&r), 0);
    assert_int_equal(proto_rd_done(&r), SIMCACHE_EPROTO);
}

static void rd_str_returns_string_within_max(void **state)
{
    const uint8_t b[] = { 3, 0, 'a', 'b', 'c' };
    proto_rd_t r;
    uint16_t n = 99;

    (void)state;
    proto_rd_init(&r, b, sizeof b);
    const char *s = proto_rd_str(&r, 3, &n);
    assert_ptr_equal(s, b + 2);
    assert_int_equal(n, 3);
    assert_int_equal(proto_rd_done(&r), 0);
}

static void rd_str_over_max_fails_with_zero_length(void **state)
{
    const uint8_t b[] = { 3, 0, 'a', 'b', 'c' };
    proto_rd_t r;
    uint16_t n = 99;

    (void)state;
    proto_rd_init(&r, b, sizeof b);
    assert_null(proto_rd_str(&r, 2, &n));
    assert_int_equal(n, 0);
    assert_int_equal(proto_rd_done(&r), SIMCACHE_EPROTO);
}

static void rd_str_length_past_buffer_fails(void **state)
{
    const uint8_t b[] = { 0xff, 0xff, 'a', 'b' };
    proto_rd_t r;
    uint16_t n = 99;

    (void)state;
    proto_rd_init(&r, b, sizeof b);
    assert_null(proto_rd_str(&r, UINT16_MAX, &n));
    assert_int_equal(n, 0);
    assert_int_equal(r.err, 1);
}

static void rd_str_missing_length_prefix_fails(void **state)
{
    const uint8_t b[] = { 1 };
    proto_rd_t r;
    uint16_t n = 99;

    (void)state;
    proto_rd_init(&r, b, sizeof b);
    assert_null(proto_rd_str(&r, 10, &n));
    assert_int_equal(n, 0);
    assert_int_equal(r.err, 1);
}

static void rd_str_empty_string_is_a_valid_pointer(void **state)
{
    const uint8_t b[] = { 0, 0 };
    proto_rd_t r;
    uint16_t n = 99;

    (void)state;
    proto_rd_init(&r, b, sizeof b);
    assert_non_null(proto_rd_str(&r, 0, &n));
    assert_int_equal(n, 0);
    assert_int_equal(proto_rd_done(&r), 0);
}

/* ---- writer ---- */

static void writer_grows_and_keeps_earlier_bytes(void **state)
{
    proto_wr_t w;

    (void)state;
    proto_wr_init(&w);
    for (uint32_t i = 0; i < 10000; i++) proto_wr_u32(&w, i);
    assert_int_equal(w.err, 0);
    assert_int_equal(w.len, 40000);
    proto_rd_t r;
    proto_rd_init(&r, w.buf, w.len);
    for (uint32_t i = 0; i < 10000; i++) assert_int_equal(proto_rd_u32(&r), i);
    assert_int_equal(proto_rd_done(&r), 0);
    proto_wr_reset(&w);
    assert_int_equal(w.len, 0);
    assert_true(w.cap >= 40000);
    proto_wr_free(&w);
    assert_null(w.buf);
}

static void writer_refuses_string_over_65535_bytes(void **state)
{
    proto_wr_t w;
    char *big = calloc(1, 65536);

    (void)state;
    assert_non_null(big);
    proto_wr_init(&w);
    proto_wr_str(&w, big, 65535);
    assert_int_equal(w.err, 0);
    proto_wr_str(&w, big, 65536);
    assert_int_equal(w.err, 1);
    /* Sticky: later writes do nothing. */
    size_t len = w.len;
    proto_wr_u32(&w, 1);
    assert_int_equal(w.len, len);
    assert_null(proto_wr_reserve(&w, 1));
    proto_wr_free(&w);
    free(big);
}

static void writer_refuses_absurd_reservation(void **state)
{
    proto_wr_t w;

    (void)state;
    proto_wr_init(&w);
    assert_null(proto_wr_reserve(&w, SIZE_MAX));
    assert_int_equal(w.err, 1);
    proto_wr_free(&w);
}

static void frame_end_patches_payload_length(void **state)
{
    proto_wr_t w;
    proto_hdr_t h;

    (void)state;
    proto_wr_init(&w);
    proto_wr_frame(&w, OP_PING, 5, 0, "abc", 3);
    size_t off = proto_wr_frame_begin(&w, OP_GET | OP_REPLY, 6, SIMCACHE_ENOTFOUND);
    assert_int_equal(off, PROTO_HDR_SIZE + 3);
    proto_wr_u64(&w, 42);
    proto_wr_frame_end(&w, off);
    assert_int_equal(w.err, 0);
    assert_int_equal(w.len, 2 * PROTO_HDR_SIZE + 3 + 8);

    assert_int_equal(proto_hdr_decode(w.buf, 1024, 0, &h), 0);
    assert_int_equal(h.opcode, OP_PING);
    assert_int_equal(h.len, 3);
    assert_memory_equal(w.buf + PROTO_HDR_SIZE, "abc", 3);
    assert_int_equal(proto_hdr_decode(w.buf + off, 1024, 0, &h), 0);
    assert_int_equal(h.opcode, OP_GET | OP_REPLY);
    assert_true(h.req_id == 6);
    assert_int_equal(h.len, 8);
    assert_int_equal(h.status, SIMCACHE_ENOTFOUND);
    proto_wr_free(&w);
}

/* ---- hello ---- */

static void hello_round_trip_keeps_every_field(void **state)
{
    proto_hello_t h = hello_of("llama-3-8b", 10, "kv:32x8x128:bf16", 16, "team-a", 6), out;
    proto_wr_t w;

    (void)state;
    h.min_version = 1;
    h.max_version = 3;
    h.dim = 1024;
    h.flags = 0xa5;
    h.gpu_device = 2;
    assert_int_equal(hello_round_trip(&h, &out, &w), 0);
    assert_int_equal(out.min_version, 1);
    assert_int_equal(out.max_version, 3);
    assert_int_equal(out.dim, 1024);
    assert_int_equal(out.flags, 0xa5);
    assert_int_equal(out.gpu_device, 2);
    assert_int_equal(out.model_len, 10);
    assert_memory_equal(out.model, "llama-3-8b", 10);
    assert_int_equal(out.layout_fp_len, 16);
    assert_memory_equal(out.layout_fp, "kv:32x8x128:bf16", 16);
    assert_int_equal(out.tenant_len, 6);
    assert_memory_equal(out.tenant, "team-a", 6);
    /* Strings point into the payload, not into copies. */
    assert_true((const uint8_t *)out.model >= w.buf && (const uint8_t *)out.model < w.buf + w.len);
    proto_wr_free(&w);
}

static void hello_negative_gpu_device_survives(void **state)
{
    proto_hello_t h = hello_of("m", 1, "f", 1, "", 0), out;
    proto_wr_t w;

    (void)state;
    h.gpu_device = -1;
    assert_int_equal(hello_round_trip(&h, &out, &w), 0);
    assert_int_equal(out.gpu_device, -1);
    assert_int_equal(out.tenant_len, 0);
    proto_wr_free(&w);
}

static void hello_empty_model_is_enamespace(void **state)
{
    (void)state;
    assert_int_equal(decode_hello_model("", 0), SIMCACHE_ENAMESPACE);
}

static void hello_empty_layout_fingerprint_is_enamespace(void **state)
{
    proto_hello_t h = hello_of("m", 1, "", 0, "t", 1), out;
    proto_wr_t w;

    (void)state;
    assert_int_equal(hello_round_trip(&h, &out, &w), SIMCACHE_ENAMESPACE);
    proto_wr_free(&w);
}

static void hello_name_of_255_bytes_is_accepted(void **state)
{
    char name[255];

    (void)state;
    memset(name, 'x', sizeof name);
    assert_int_equal(decode_hello_model(name, sizeof name), 0);
}

static void hello_name_of_256_bytes_is_enamespace_not_eproto(void **state)
{
    char name[256];

    (void)state;
    memset(name, 'x', sizeof name);
    assert_int_equal(decode_hello_model(name, sizeof name), SIMCACHE_ENAMESPACE);
}

static void hello_long_layout_or_tenant_is_enamespace(void **state)
{
    char name[256];
    proto_wr_t w;
    proto_hello_t out;

    (void)state;
    memset(name, 'y', sizeof name);
    proto_hello_t a = hello_of("m", 1, name, sizeof name, "", 0);
    assert_int_equal(hello_round_trip(&a, &out, &w), SIMCACHE_ENAMESPACE);
    proto_wr_free(&w);
    proto_hello_t b = hello_of("m", 1, "f", 1, name, sizeof name);
    assert_int_equal(hello_round_trip(&b, &out, &w), SIMCACHE_ENAMESPACE);
    proto_wr_free(&w);
}

static void hello_rejects_overlong_utf8(void **state)
{
    (void)state;
    assert_int_equal(decode_hello_model("\xc0\xaf", 2), SIMCACHE_ENAMESPACE);         /* '/' */
    assert_int_equal(decode_hello_model("\xc1\xbf", 2), SIMCACHE_ENAMESPACE);
    assert_int_equal(decode_hello_model("\xe0\x80\xaf", 3), SIMCACHE_ENAMESPACE);
    assert_int_equal(decode_hello_model("\xe0\x9f\xbf", 3), SIMCACHE_ENAMESPACE);     /* U+07FF */
    assert_int_equal(decode_hello_model("\xf0\x80\x80\xaf", 4), SIMCACHE_ENAMESPACE);
    assert_int_equal(decode_hello_model("\xf0\x8f\xbf\xbf", 4), SIMCACHE_ENAMESPACE); /* U+FFFF */
    assert_int_equal(decode_hello_model("\xc0\x80", 2), SIMCACHE_ENAMESPACE);         /* NUL */
}

static void hello_rejects_utf16_surrogates(void **state)
{
    (void)state;
    assert_int_equal(decode_hello_model("\xed\xa0\x80", 3), SIMCACHE_ENAMESPACE);     /* D800 */
    assert_int_equal(decode_hello_model("\xed\xbf\xbf", 3), SIMCACHE_ENAMESPACE);     /* DFFF */
    assert_int_equal(decode_hello_model("\xed\xa0\xbd\xed\xb8\x80", 6), SIMCACHE_ENAMESPACE);
}

static void hello_rejects_code_points_past_u10ffff(void **state)
{
    (void)state;
    assert_int_equal(decode_hello_model("\xf4\x90\x80\x80", 4), SIMCACHE_ENAMESPACE); /* 110000 */
    assert_int_equal(decode_hello_model("\xf7\xbf\xbf\xbf", 4), SIMCACHE_ENAMESPACE);
    assert_int_equal(decode_hello_model("\xf8\x88\x80\x80\x80", 5), SIMCACHE_ENAMESPACE);
    assert_int_equal(decode_hello_model("\xfc\x84\x80\x80\x80\x80", 6), SIMCACHE_ENAMESPACE);
    assert_int_equal(decode_hello_model("\xfe", 1), SIMCACHE_ENAMESPACE);
    assert_int_equal(decode_hello_model("\xff", 1), SIMCACHE_ENAMESPACE);
}

static void hello_rejects_truncated_sequences(void **state)
{
    (void)state;
    assert_int_equal(decode_hello_model("\xc3", 1), SIMCACHE_ENAMESPACE);
    assert_int_equal(decode_hello_model("ab\xe2\x82", 4), SIMCACHE_ENAMESPACE);
    assert_int_equal(decode_hello_model("\xf0\x9f\x98", 3), SIMCACHE_ENAMESPACE);
    /* Lead byte followed by a non-continuation byte. */
    assert_int_equal(decode_hello_model("\xe2\x28\xa1", 3), SIMCACHE_ENAMESPACE);
    /* Continuation byte with no lead. */
    assert_int_equal(decode_hello_model("\x80", 1), SIMCACHE_ENAMESPACE);
    assert_int_equal(decode_hello_model("a\xbf" "b", 3), SIMCACHE_ENAMESPACE);
}

static void hello_rejects_nul_byte_in_names(void **state)
{
    proto_wr_t w;
    proto_hello_t out;

    (void)state;
    assert_int_equal(decode_hello_model("a\0b", 3), SIMCACHE_ENAMESPACE);
    assert_int_equal(decode_hello_model("\0", 1), SIMCACHE_ENAMESPACE);
    proto_hello_t t = hello_of("m", 1, "f", 1, "ten\0", 4);
    assert_int_equal(hello_round_trip(&t, &out, &w), SIMCACHE_ENAMESPACE);
    proto_wr_free(&w);
}

static void hello_accepts_valid_multibyte_utf8(void **state)
{
    (void)state;
    assert_int_equal(decode_hello_model("caf\xc3\xa9", 5), 0);                /* é */
    assert_int_equal(decode_hello_model("\xe2\x82\xac", 3), 0);              /* € */
    assert_int_equal(decode_hello_model("\xf0\x9d\x84\x9e", 4), 0);          /* U+1D11E */
    assert_int_equal(decode_hello_model("\xc2\x80", 2), 0);                  /* U+0080 */
    assert_int_equal(decode_hello_model("\xe0\xa0\x80", 3), 0);              /* U+0800 */
    assert_int_equal(decode_hello_model("\xed\x9f\xbf", 3), 0);              /* U+D7FF */
    assert_int_equal(decode_hello_model("\xee\x80\x80", 3), 0);              /* U+E000 */
    assert_int_equal(decode_hello_model("\xef\xbf\xbf", 3), 0);              /* U+FFFF */
    assert_int_equal(decode_hello_model("\xf0\x90\x80\x80", 4), 0);          /* U+10000 */
    assert_int_equal(decode_hello_model("\xf4\x8f\xbf\xbf", 4), 0);          /* U+10FFFF */
    assert_int_equal(decode_hello_model("\x7f", 1), 0);
}

static void hello_of_255_multibyte_bytes_counts_bytes_not_characters(void **state)
{
    char name[256];

    (void)state;
    /* 85 x "€" = 255 bytes: fine; one more byte ("a") = 256: too long. */
    for (int i = 0; i < 85; i++) memcpy(name + 3 * i, "\xe2\x82\xac", 3);
    assert_int_equal(decode_hello_model(name, 255), 0);
    name[255] = 'a';
    assert_int_equal(decode_hello_model(name, 256), SIMCACHE_ENAMESPACE);
}

static void hello_truncated_is_eproto(void **state)
{
    proto_hello_t h = hello_of("model", 5, "fp", 2, "t", 1), out;
    proto_wr_t w;
    proto_rd_t r;

    (void)state;
    proto_wr_init(&w);
    proto_wr_hello(&w, &h);
    for (size_t n = 0; n < w.len; n++) {
        proto_rd_init(&r, w.buf, n);
        assert_int_equal(proto_rd_hello(&r, &out), SIMCACHE_EPROTO);
    }
    proto_wr_free(&w);
}

static void hello_with_trailing_bytes_is_eproto(void **state)
{
    proto_hello_t h = hello_of("model", 5, "fp", 2, "", 0), out;
    proto_wr_t w;
    proto_rd_t r;

    (void)state;
    proto_wr_init(&w);
    proto_wr_hello(&w, &h);
    proto_wr_u32(&w, 0);
    proto_rd_init(&r, w.buf, w.len);
    assert_int_equal(proto_rd_hello(&r, &out), SIMCACHE_EPROTO);
    proto_wr_free(&w);
}

static void utf8_check_handles_empty_and_ascii(void **state)
{
    (void)state;
    assert_true(proto_utf8_valid("", 0));
    assert_true(proto_utf8_valid(NULL, 0));
    assert_true(proto_utf8_valid("hello world", 11));
    /* Only the first n bytes are looked at. */
    assert_true(proto_utf8_valid("ok\xff", 2));
    assert_false(proto_utf8_valid("ok\xff", 3));
}

/* ---- hello reply ---- */

static void hello_reply_round_trip_keeps_every_field(void **state)
{
    proto_hello_reply_t in = { 1, 5, 16u << 20, 0xdeadbeefcafeull, 1ull << 34, 0.85f, 1024 }, out;
    proto_wr_t w;
    proto_rd_t r;

    (void)state;
    proto_wr_init(&w);
    proto_wr_hello_reply(&w, &in);
    assert_int_equal(w.len, 32);
    proto_rd_init(&r, w.buf, w.len);
    assert_int_equal(proto_rd_hello_reply(&r, &out), 0);
    assert_int_equal(out.version, 1);
    assert_int_equal(out.tiers, 5);
    assert_int_equal(out.max_payload, 16u << 20);
    assert_true(out.client_id == 0xdeadbeefcafeull);
    assert_true(out.arena_size == 1ull << 34);
    assert_true(out.default_threshold == 0.85f);
    assert_int_equal(out.max_batch, 1024);

    proto_rd_init(&r, w.buf, w.len - 1);
    assert_int_equal(proto_rd_hello_reply(&r, &out), SIMCACHE_EPROTO);
    proto_wr_free(&w);
}

/* ---- layout ---- */

static void layout_bytes_multiplies_every_field_by_dtype_size(void **state)
{
    simcache_layout_t l = layout_of(SIMCACHE_DTYPE_BF16, 2, 32, 8, 128, 100);

    (void)state;
    assert_true(proto_layout_bytes(&l) == 2ull * 2 * 32 * 8 * 128 * 100);
    l.dtype = SIMCACHE_DTYPE_F32;
    assert_true(proto_layout_bytes(&l) == 4ull * 2 * 32 * 8 * 128 * 100);
    l.dtype = SIMCACHE_DTYPE_F16;
    assert_true(proto_layout_bytes(&l) == 2ull * 2 * 32 * 8 * 128 * 100);
    l.dtype = SIMCACHE_DTYPE_F8E4M3;
    assert_true(proto_layout_bytes(&l) == 1ull * 2 * 32 * 8 * 128 * 100);
    l.dtype = SIMCACHE_DTYPE_F8E5M2;
    assert_true(proto_layout_bytes(&l) == 1ull * 2 * 32 * 8 * 128 * 100);
    l.dtype = SIMCACHE_DTYPE_I8;
    assert_true(proto_layout_bytes(&l) == 1ull * 2 * 32 * 8 * 128 * 100);
}

static void layout_check_accepts_matching_size_and_size_zero(void **state)
{
    simcache_layout_t l = layout_of(SIMCACHE_DTYPE_F16, 2, 1, 8, 64, 10);

    (void)state;
    assert_int_equal(proto_layout_check(&l, 2 * 2 * 8 * 64 * 10), 0);
    assert_int_equal(proto_layout_check(&l, 0), 0);
    l.parts = 1;
    assert_int_equal(proto_layout_check(&l, 2 * 8 * 64 * 10), 0);
}

static void layout_check_rejects_size_mismatch(void **state)
{
    simcache_layout_t l = layout_of(SIMCACHE_DTYPE_F16, 2, 1, 8, 64, 10);

    (void)state;
    assert_int_equal(proto_layout_check(&l, 2 * 2 * 8 * 64 * 10 + 1), SIMCACHE_ELAYOUT);
    assert_int_equal(proto_layout_check(&l, 2 * 2 * 8 * 64 * 10 - 2), SIMCACHE_ELAYOUT);
}

static void layout_check_rejects_unknown_dtype(void **state)
{
    simcache_layout_t l = layout_of(0, 1, 1, 1, 1, 1);

    (void)state;
    assert_int_equal(proto_layout_check(&l, 0), SIMCACHE_ELAYOUT);
    assert_true(proto_layout_bytes(&l) == 0);
    l.dtype = SIMCACHE_DTYPE_I8 + 1;
    assert_int_equal(proto_layout_check(&l, 0), SIMCACHE_ELAYOUT);
    l.dtype = UINT32_MAX;
    assert_int_equal(proto_layout_check(&l, 0), SIMCACHE_ELAYOUT);
}

static void layout_check_rejects_each_zero_field(void **state)
{
    (void)state;
    for (int i = 0; i < 5; i++) {
        uint32_t f[5] = { 2, 4, 8, 64, 16 };
        f[i] = 0;
        simcache_layout_t l = layout_of(SIMCACHE_DTYPE_F32, f[0], f[1], f[2], f[3], f[4]);
        assert_true(proto_layout_bytes(&l) == 0);
        assert_int_equal(proto_layout_check(&l, 0), SIMCACHE_ELAYOUT);
    }
}

static void layout_check_rejects_more_than_two_parts(void **state)
{
    simcache_layout_t l = layout_of(SIMCACHE_DTYPE_F32, 3, 1, 1, 1, 1);

    (void)state;
    assert_true(proto_layout_bytes(&l) == 0);
    assert_int_equal(proto_layout_check(&l, 12), SIMCACHE_ELAYOUT);
}

static void layout_bytes_overflow_is_zero_not_wrapped(void **state)
{
    simcache_layout_t l = layout_of(SIMCACHE_DTYPE_F32, 2, UINT32_MAX, UINT32_MAX, UINT32_MAX,
                                    UINT32_MAX);

    (void)state;
    assert_true(proto_layout_bytes(&l) == 0);
    assert_int_equal(proto_layout_check(&l, 0), SIMCACHE_ELAYOUT);
    /* 4 * 2^31 * 2^31 = 2^64: one past the edge. */
    l = layout_of(SIMCACHE_DTYPE_F32, 1, 1u << 31, 1u << 31, 1, 1);
    assert_true(proto_layout_bytes(&l) == 0);
    assert_int_equal(proto_layout_check(&l, 0), SIMCACHE_ELAYOUT);
    /* 4 * 2^31 * 2^30 = 2^63: still fits. */
    l = layout_of(SIMCACHE_DTYPE_F32, 1, 1u << 31, 1u << 30, 1, 1);
    assert_true(proto_layout_bytes(&l) == 1ull << 63);
    assert_int_equal(proto_layout_check(&l, 1ull << 63), 0);
    /* A product that wraps to exactly a small size must not match it. */
    l = layout_of(SIMCACHE_DTYPE_I8, 2, 1u << 31, 1u << 31, 1u << 31, 4);
    assert_int_equal(proto_layout_check(&l, 0), SIMCACHE_ELAYOUT);
}

static void layout_wire_round_trip_keeps_field_order(void **state)
{
    simcache_layout_t in = layout_of(3, 2, 32, 8, 128, 77), out;
    proto_wr_t w;
    proto_rd_t r;

    (void)state;
    proto_wr_init(&w);
    proto_wr_layout(&w, &in);
    assert_int_equal(w.len, 24);
    assert_int_equal(w.buf[0], 3);
    assert_int_equal(w.buf[20], 77);
    proto_rd_init(&r, w.buf, w.len);
    proto_rd_layout(&r, &out);
    assert_int_equal(proto_rd_done(&r), 0);
    assert_memory_equal(&in, &out, sizeof in);
    proto_wr_free(&w);
}

/* ---- match ---- */

static void match_round_trip_keeps_fields_and_meta(void **state)
{
    const char meta[] = "prompt-hash:1234";
    proto_match_t in = {
        .id = 17, .lease = 99, .similarity = 0.93f, .tier = SIMCACHE_TIER_HOST,
        .offset = 4096, .size = 65536, .layout = { 2, 2, 1, 8, 64, 32 },
        .meta_len = sizeof meta - 1, .meta = meta,
    }, out;
    proto_wr_t w;
    proto_rd_t r;

    (void)state;
    proto_wr_init(&w);
    proto_wr_match(&w, &in);
    proto_rd_init(&r, w.buf, w.len);
    proto_rd_match(&r, &out);
    assert_int_equal(proto_rd_done(&r), 0);
    assert_true(out.id == 17);
    assert_true(out.lease == 99);
    assert_true(out.similarity == 0.93f);
    assert_int_equal(out.tier, SIMCACHE_TIER_HOST);
    assert_true(out.offset == 4096);
    assert_true(out.size == 65536);
    assert_memory_equal(&out.layout, &in.layout, sizeof in.layout);
    assert_int_equal(out.meta_len, sizeof meta - 1);
    assert_memory_equal(out.meta, meta, sizeof meta - 1);
    proto_wr_free(&w);
}

static void match_without_meta_round_trips(void **state)
{
    proto_match_t in = { .id = 1, .lease = 2, .similarity = 1.0f, .layout = { 1, 1, 1, 1, 1, 1 } };
    proto_match_t out;
    proto_wr_t w;
    proto_rd_t r;

    (void)state;
    proto_wr_init(&w);
    proto_wr_match(&w, &in);
    assert_int_equal(w.len, 8 + 8 + 4 + 4 + 8 + 8 + 24 + 4);
    proto_rd_init(&r, w.buf, w.len);
    proto_rd_match(&r, &out);
    assert_int_equal(proto_rd_done(&r), 0);
    assert_int_equal(out.meta_len, 0);
    proto_wr_free(&w);
}

static void match_meta_over_limit_fails_without_reading_it(void **state)
{
    uint8_t *meta = calloc(1, SIMCACHE_MAX_META + 1);
    proto_match_t in = { .id = 1, .meta_len = SIMCACHE_MAX_META + 1, .meta = meta }, out;
    proto_wr_t w;
    proto_rd_t r;

    (void)state;
    assert_non_null(meta);
    proto_wr_init(&w);
    proto_wr_match(&w, &in);
    proto_rd_init(&r, w.buf, w.len);
    proto_rd_match(&r, &out);
    assert_int_equal(r.err, 1);
    assert_int_equal(out.meta_len, 0);
    assert_null(out.meta);
    proto_wr_free(&w);
    free(meta);
}

static void match_meta_at_limit_is_accepted(void **state)
{
    uint8_t *meta = calloc(1, SIMCACHE_MAX_META);
    proto_match_t in = { .id = 1, .meta_len = SIMCACHE_MAX_META, .meta = meta }, out;
    proto_wr_t w;
    proto_rd_t r;

    (void)state;
    assert_non_null(meta);
    proto_wr_init(&w);
    proto_wr_match(&w, &in);
    proto_rd_init(&r, w.buf, w.len);
    proto_rd_match(&r, &out);
    assert_int_equal(proto_rd_done(&r), 0);
    assert_int_equal(out.meta_len, SIMCACHE_MAX_META);
    proto_wr_free(&w);
    free(meta);
}

static void match_truncated_meta_fails(void **state)
{
    const char meta[] = "0123456789";
    proto_match_t in = { .id = 1, .meta_len = 10, .meta = meta }, out;
    proto_wr_t w;
    proto_rd_t r;

    (void)state;
    proto_wr_init(&w);
    proto_wr_match(&w, &in);
    proto_rd_init(&r, w.buf, w.len - 1);
    proto_rd_match(&r, &out);
    assert_int_equal(proto_rd_done(&r), SIMCACHE_EPROTO);
    assert_null(out.meta);
    proto_wr_free(&w);
}

/* ---- embedding ---- */

static void embedding_round_trip_keeps_values(void **state)
{
    const float v[4] = { 1.0f, -2.5f, 0.0f, 3.25f };
    float got[4];
    proto_wr_t w;
    proto_rd_t r;
    uint32_t dim = 0;

    (void)state;
    proto_wr_init(&w);
    proto_wr_embedding(&w, v, 4);
    assert_int_equal(w.len, 4 + 16);
    proto_rd_init(&r, w.buf, w.len);
    const void *raw = proto_rd_embedding(&r, SIMCACHE_MAX_DIM, &dim);
    assert_non_null(raw);
    assert_int_equal(dim, 4);
    memcpy(got, raw, sizeof got);
    assert_memory_equal(got, v, sizeof v);
    assert_int_equal(proto_rd_done(&r), 0);
    proto_wr_free(&w);
}

static void embedding_of_dim_zero_fails(void **state)
{
    const uint8_t b[] = { 0, 0, 0, 0 };
    proto_rd_t r;
    uint32_t dim = 99;

    (void)state;
    proto_rd_init(&r, b, sizeof b);
    assert_null(proto_rd_embedding(&r, SIMCACHE_MAX_DIM, &dim));
    assert_int_equal(dim, 0);
    assert_int_equal(proto_rd_done(&r), SIMCACHE_EPROTO);
}

static void embedding_over_max_dim_fails_and_reports_dim(void **state)
{
    float v[5] = { 1, 1, 1, 1, 1 };
    proto_wr_t w;
    proto_rd_t r;
    uint32_t dim = 0;

    (void)state;
    proto_wr_init(&w);
    proto_wr_embedding(&w, v, 5);
    proto_rd_init(&r, w.buf, w.len);
    assert_null(proto_rd_embedding(&r, 4, &dim));
    assert_int_equal(dim, 5);
    assert_int_equal(r.err, 1);
    proto_rd_init(&r, w.buf, w.len);
    assert_non_null(proto_rd_embedding(&r, 5, &dim));
    proto_wr_free(&w);
}

static void embedding_huge_dim_is_refused_before_reading(void **state)
{
    const uint8_t b[] = { 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0 };
    proto_rd_t r;
    uint32_t dim = 0;

    (void)state;
    proto_rd_init(&r, b, sizeof b);
    assert_null(proto_rd_embedding(&r, UINT32_MAX, &dim));
    assert_int_equal(dim, UINT32_MAX);
    assert_int_equal(r.err, 1);
}

static void embedding_with_missing_floats_fails(void **state)
{
    const uint8_t b[] = { 2, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0 };
    proto_rd_t r;
    uint32_t dim = 0;

    (void)state;
    proto_rd_init(&r, b, sizeof b);
    assert_null(proto_rd_embedding(&r, SIMCACHE_MAX_DIM, &dim));
    assert_int_equal(dim, 2);
    assert_int_equal(proto_rd_done(&r), SIMCACHE_EPROTO);
}

static void embedding_after_failed_read_reports_dim_zero(void **state)
{
    const uint8_t b[] = { 4, 0, 0, 0 };
    proto_rd_t r;
    uint32_t dim = 99;

    (void)state;
    proto_rd_init(&r, b, sizeof b);
    proto_rd_u64(&r);
    assert_null(proto_rd_embedding(&r, SIMCACHE_MAX_DIM, &dim));
    assert_int_equal(dim, 0);
}

/* ---- route reply ---- */

static int route_decode(const proto_route_reply_t *in, size_t cut, int extra)
{
    proto_wr_t w;
    proto_rd_t r;
    proto_route_reply_t out;
    proto_wr_init(&w);
    proto_wr_route_reply(&w, in);
    if (extra) proto_wr_u16(&w, 0);
    proto_rd_init(&r, w.buf, w.len - cut);
    int rc = proto_rd_route_reply(&r, &out);
    if (rc == 0) {
        assert_int_equal(out.node_len, in->node_len);
        assert_memory_equal(out.node, in->node, in->node_len);
        assert_int_equal(out.addr_len, in->addr_len);
        assert_true(out.similarity == in->similarity && out.load == in->load &&
                    out.flags == in->flags);
    }
    proto_wr_free(&w);
    return rc;
}

static void route_reply_round_trips_and_refuses_bad_fields(void **state)
{
    (void)state;
    proto_route_reply_t rr = { "node-b", 6, "10.0.0.2:9000", 13, 0.91f, 1, 0.25f };
    assert_int_equal(proto_op_name(OP_ROUTE | OP_REPLY)[0], 'r');
    assert_int_equal(route_decode(&rr, 0, 0), 0);
    assert_int_equal(route_decode(&rr, 1, 0), SIMCACHE_EPROTO);   /* truncated */
    assert_int_equal(route_decode(&rr, 0, 1), SIMCACHE_EPROTO);   /* trailing bytes */
    proto_route_reply_t bad = rr;
    bad.node_len = 0;
    assert_int_equal(route_decode(&bad, 0, 0), SIMCACHE_EPROTO);  /* empty node id */
    bad = rr;
    bad.similarity = NAN;
    assert_int_equal(route_decode(&bad, 0, 0), SIMCACHE_EPROTO);
    bad = rr;
    bad.load = 1.5f;
    assert_int_equal(route_decode(&bad, 0, 0), SIMCACHE_EPROTO);
    bad = rr;
    bad.addr = "\xff";
    bad.addr_len = 1;
    assert_int_equal(route_decode(&bad, 0, 0), SIMCACHE_EPROTO);  /* not UTF-8 */
    char longid[SIMCACHE_MAX_NODE_ID + 1];
    memset(longid, 'a', sizeof longid);
    bad = rr;
    bad.node = longid;
    bad.node_len = sizeof longid;
    assert_int_equal(route_decode(&bad, 0, 0), SIMCACHE_EPROTO);  /* over the limit */
    bad.node_len = SIMCACHE_MAX_NODE_ID;
    assert_int_equal(route_decode(&bad, 0, 0), 0);
    rr.addr_len = 0;                                              /* empty address is fine */
    assert_int_equal(route_decode(&rr, 0, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(header_round_trip_keeps_every_field),
        cmocka_unit_test(header_is_little_endian_with_magic_spelling_simc),
        cmocka_unit_test(header_bad_magic_is_eproto_and_fills_req_id),
        cmocka_unit_test(header_bad_magic_wins_over_bad_version_and_size),
        cmocka_unit_test(header_other_version_is_eversion_and_fills_req_id),
        cmocka_unit_test(header_any_version_accepts_other_versions),
        cmocka_unit_test(header_len_over_max_is_etoobig_and_fills_req_id),
        cmocka_unit_test(header_len_equal_to_max_is_accepted),
        cmocka_unit_test(op_names_ignore_reply_bit_and_unknown_is_named),
        cmocka_unit_test(reader_reads_little_endian_integers_and_floats),
        cmocka_unit_test(reader_short_read_is_sticky_for_every_later_read),
        cmocka_unit_test(reader_u64_from_seven_bytes_fails),
        cmocka_unit_test(reader_done_fails_on_leftover_bytes),
        cmocka_unit_test(reader_bytes_point_into_buffer_and_reject_overrun),
        cmocka_unit_test(reader_on_empty_buffer_fails_first_read),
        cmocka_unit_test(rd_str_returns_string_within_max),
        cmocka_unit_test(rd_str_over_max_fails_with_zero_length),
        cmocka_unit_test(rd_str_length_past_buffer_fails),
        cmocka_unit_test(rd_str_missing_length_prefix_fails),
        cmocka_unit_test(rd_str_empty_string_is_a_valid_pointer),
        cmocka_unit_test(writer_grows_and_keeps_earlier_bytes),
        cmocka_unit_test(writer_refuses_string_over_65535_bytes),
        cmocka_unit_test(writer_refuses_absurd_reservation),
        cmocka_unit_test(frame_end_patches_payload_length),
        cmocka_unit_test(hello_round_trip_keeps_every_field),
        cmocka_unit_test(hello_negative_gpu_device_survives),
        cmocka_unit_test(hello_empty_model_is_enamespace),
        cmocka_unit_test(hello_empty_layout_fingerprint_is_enamespace),
        cmocka_unit_test(hello_name_of_255_bytes_is_accepted),
        cmocka_unit_test(hello_name_of_256_bytes_is_enamespace_not_eproto),
        cmocka_unit_test(hello_long_layout_or_tenant_is_enamespace),
        cmocka_unit_test(hello_rejects_overlong_utf8),
        cmocka_unit_test(hello_rejects_utf16_surrogates),
        cmocka_unit_test(hello_rejects_code_points_past_u10ffff),
        cmocka_unit_test(hello_rejects_truncated_sequences),
        cmocka_unit_test(hello_rejects_nul_byte_in_names),
        cmocka_unit_test(hello_accepts_valid_multibyte_utf8),
        cmocka_unit_test(hello_of_255_multibyte_bytes_counts_bytes_not_characters),
        cmocka_unit_test(hello_truncated_is_eproto),
        cmocka_unit_test(hello_with_trailing_bytes_is_eproto),
        cmocka_unit_test(utf8_check_handles_empty_and_ascii),
        cmocka_unit_test(hello_reply_round_trip_keeps_every_field),
        cmocka_unit_test(layout_bytes_multiplies_every_field_by_dtype_size),
        cmocka_unit_test(layout_check_accepts_matching_size_and_size_zero),
        cmocka_unit_test(layout_check_rejects_size_mismatch),
        cmocka_unit_test(layout_check_rejects_unknown_dtype),
        cmocka_unit_test(layout_check_rejects_each_zero_field),
        cmocka_unit_test(layout_check_rejects_more_than_two_parts),
        cmocka_unit_test(layout_bytes_overflow_is_zero_not_wrapped),
        cmocka_unit_test(layout_wire_round_trip_keeps_field_order),
        cmocka_unit_test(match_round_trip_keeps_fields_and_meta),
        cmocka_unit_test(match_without_meta_round_trips),
        cmocka_unit_test(match_meta_over_limit_fails_without_reading_it),
        cmocka_unit_test(match_meta_at_limit_is_accepted),
        cmocka_unit_test(match_truncated_meta_fails),
        cmocka_unit_test(embedding_round_trip_keeps_values),
        cmocka_unit_test(embedding_of_dim_zero_fails),
        cmocka_unit_test(embedding_over_max_dim_fails_and_reports_dim),
        cmocka_unit_test(embedding_huge_dim_is_refused_before_reading),
        cmocka_unit_test(embedding_with_missing_floats_fails),
        cmocka_unit_test(embedding_after_failed_read_reports_dim_zero),
        cmocka_unit_test(route_reply_round_trips_and_refuses_bad_fields),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
