/* test_badinput.c - malformed, oversized and out-of-order input, raw and
 * through the library.
 *
 * Each raw case sends a bad frame over its own socket and checks the reply
 * header (status, echoed opcode and request id) and message, then whether
 * the connection lives on (payload errors) or is closed (untrusted headers,
 * bad hello). After every case a well-behaved client in another process,
 * connected since the start, checks its entries and their bytes, and a
 * fresh connection does too: one bad client never harms the others.
 *
 * The library cases record which side refused: the daemon's request_errors
 * counter moves only when the daemon answered with an error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define DIM 64
#define MODEL "bad-model"
#define FP "bad-fp"
#define MAX_FRAME 65536u
#define MAX_CLIENTS 8
#define NGOOD 3
#define CAPACITY (16u << 20)

static it_daemon_t D;
static pid_t good_pid;
static int good_cmd = -1, good_res = -1;
static uint64_t good_ids[NGOOD];

static void good_emb(int k, float *e) { it_unit(10 + (uint64_t)k, e, DIM); }
static uint64_t good_bytes(int k) { return 4096u << k; }

/* ---- the well-behaved client, in its own process ---- */

static int good_check(simcache_t *h)
{
    int fails = 0;
    for (int k = 0; k < NGOOD; k++) {
        float e[DIM];
        good_emb(k, e);
        simcache_match_t m;
        int rc = simcache_lookup(h, e, -1, &m);
        IT_CHECK(fails, rc == 0);
        if (rc) continue;
        IT_CHECK(fails, m.id == good_ids[k] && m.size == good_bytes(k));
        IT_CHECK(fails, it_check(m.data, m.size, 20 + (uint64_t)k) == 0);
        IT_CHECK(fails, m.meta_len == 4 && memcmp(m.meta, "good", 4) == 0);
        IT_CHECK(fails, simcache_release(h, &m) == 0);
    }
    IT_CHECK(fails, simcache_ping(h) == 0);
    return fails;
}

static int good_proc(void *arg)
{
    int *fds = arg;   /* cmd read end, result write end */
    simcache_t *h = it_connect(D.sock, MODEL, FP, NULL, DIM);
    if (!h) return 1;
    for (;;) {
        uint64_t cmd;
        if (it_read_u64(fds[0], &cmd, 10 * 60 * 1000) || cmd == 0) break;
        it_write_u64(fds[1], (uint64_t)good_check(h));
    }
    simcache_close(h);
    return 0;
}

/* open_others: raw connections the test still holds open. */
static void check_good_with(uint64_t open_others)
{
    uint64_t fails = 99;
    assert_int_equal(it_write_u64(good_cmd, 1), 0);
    assert_int_equal(it_read_u64(good_res, &fails, IT_TIMEOUT_MS), 0);
    assert_int_equal(fails, 0);
    /* A fresh connection is accepted and sees the same. Slots may still be
     * held by sockets the test just closed: wait for the daemon to notice. */
    it_admin_wait_u64(&D, "stats", "clients", 1 + open_others);
    simcache_t *h = it_connect(D.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    for (int k = 0; k < NGOOD; k++) {
        simcache_match_t m;
        assert_int_equal(simcache_get(h, good_ids[k], &m), 0);
        assert_int_equal(it_check(m.data, m.size, 20 + (uint64_t)k), 0);
        assert_int_equal(simcache_release(h, &m), 0);
    }
    simcache_close(h);
    assert_false(it_daemon_exited(&D));
}

static void check_good(void) { check_good_with(0); }

static int group_setup(void **state)
{
    (void)state;
    char mf[16], mc[16];
    snprintf(mf, sizeof mf, "%u", MAX_FRAME);
    snprintf(mc, sizeof mc, "%u", MAX_CLIENTS);
    if (it_daemon_start(&D, "--max-frame", mf, "--max-clients", mc, "--host-capacity", "16m",
                        "--log-level", "debug", NULL))
        return -1;
    simcache_t *h = it_connect(D.sock, MODEL, FP, NULL, DIM);
    if (!h) return -1;
    for (int k = 0; k < NGOOD; k++) {
        float e[DIM];
        good_emb(k, e);
        good_ids[k] = it_put(h, e, good_bytes(k), 20 + (uint64_t)k, "good");
        if (!good_ids[k]) return -1;
    }
    simcache_close(h);
    int c[2], r[2];
    if (pipe(c) || pipe(r)) return -1;
    int fds[2] = { c[0], r[1] };
    good_pid = it_fork(good_proc, fds);
    close(c[0]);
    close(r[1]);
    good_cmd = c[1];
    good_res = r[0];
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    it_write_u64(good_cmd, 0);
    int g = it_wait_pid(good_pid, IT_TIMEOUT_MS);
    close(good_cmd);
    close(good_res);
    int rc = it_daemon_stop(&D);
    it_daemon_cleanup(&D);
    return (g == 0 && rc == 0) ? 0 : -1;
}

/* ---- raw helpers ---- */

static int hello_sock(void)
{
    int s = it_raw_connect(D.sock);
    assert_true(s >= 0);
    assert_int_equal(it_raw_hello(s, MODEL, FP, NULL, DIM, NULL, NULL), 0);
    return s;
}

static void send_hdr(int s, uint32_t magic, uint16_t ver, uint16_t op, uint64_t req, uint32_t len,
                     int32_t status, const void *payload, size_t plen)
{
    uint8_t hb[PROTO_HDR_SIZE];
    proto_hdr_t h = { magic, ver, op, req, len, status };
    proto_hdr_encode(&h, hb);
    assert_int_equal(it_send_all(s, hb, sizeof hb), 0);
    if (plen) assert_int_equal(it_send_all(s, payload, plen), 0);
}

static void send_req(int s, uint16_t op, uint64_t req, const proto_wr_t *w)
{
    assert_int_equal(it_send_frame(s, op, req, w ? w->buf : NULL, w ? w->len : 0), 0);
}

/* Receive one reply and check it; returns its payload frame to free. */
static void expect_frame(int s, uint16_t op, uint64_t req, int status, const char *sub,
                         it_frame_t *out)
{
    it_frame_t f;
    int rc = it_recv_frame(s, &f, IT_TIMEOUT_MS);
    if (rc) fail_msg("no reply to %s (req %llu): %s", proto_op_name(op), (unsigned long long)req,
                     rc > 0 ? "connection closed" : "timeout");
    char msg[PROTO_MAX_ERRMSG + 1];
    it_frame_msg(&f, msg, sizeof msg);
    if (f.h.status != status || (sub && !strstr(msg, sub)))
        fail_msg("%s: got status %d (%s) \"%s\", want %d (%s) with \"%s\"", proto_op_name(op),
                 f.h.status, simcache_strerror(f.h.status), msg, status, simcache_strerror(status),
                 sub ? sub : "");
    assert_int_equal(f.h.magic, PROTO_MAGIC);
    assert_int_equal(f.h.version, PROTO_VERSION);
    assert_int_equal(f.h.opcode, (uint16_t)(op | OP_REPLY));
    assert_int_equal(f.h.req_id, req);
    if (out) *out = f;
    else it_frame_free(&f);
}

static void expect(int s, uint16_t op, uint64_t req, int status, const char *sub)
{
    expect_frame(s, op, req, status, sub, NULL);
}

/* The connection still answers, in step. */
static void expect_alive(int s)
{
    send_req(s, OP_PING, 4242, NULL);
    expect(s, OP_PING, 4242, 0, NULL);
}

static void expect_closed(int s)
{
    assert_int_equal(it_wait_eof(s, IT_TIMEOUT_MS), 1);
}

static void wr_lookup(proto_wr_t *w, float threshold, const float *e, uint32_t dim)
{
    proto_wr_init(w);
    proto_wr_f32(w, threshold);
    proto_wr_u32(w, 0);
    proto_wr_embedding(w, e, dim);
}

static uint64_t stat_now(const char *key) { return it_admin_u64(&D, "stats", key); }

/* ---- untrusted headers: error reply, then the daemon hangs up ---- */

static void bad_magic_gets_eproto_and_close(void **state)
{
    (void)state;
    uint64_t perr = stat_now("protocol_errors");
    int s = hello_sock();
    send_hdr(s, 0xdeadbeefu, PROTO_VERSION, OP_PING, 77, 0, 0, NULL, 0);
    expect(s, OP_PING, 77, SIMCACHE_EPROTO, "bad magic");
    expect_closed(s);
    close(s);
    /* Also as the very first bytes of a connection (no hello). */
    s = it_raw_connect(D.sock);
    assert_true(s >= 0);
    const char *http = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";   /* >= one header */
    assert_int_equal(it_send_all(s, http, strlen(http)), 0);
    it_frame_t f;
    assert_int_equal(it_recv_frame(s, &f, IT_TIMEOUT_MS), 0);
    assert_int_equal(f.h.status, SIMCACHE_EPROTO);
    it_frame_free(&f);
    expect_closed(s);
    close(s);
    assert_int_equal(stat_now("protocol_errors"), perr + 2);
    check_good();
}

static void bad_version_gets_eversion_and_close(void **state)
{
    (void)state;
    const uint16_t versions[] = { 0, 2, 0xffff };
    for (size_t i = 0; i < 3; i++) {
        int s = hello_sock();
        send_hdr(s, PROTO_MAGIC, versions[i], OP_PING, 78, 0, 0, NULL, 0);
        expect(s, OP_PING, 78, SIMCACHE_EVERSION, "unsupported protocol version");
        expect_closed(s);
        close(s);
    }
    check_good();
}

static void frame_over_max_frame_gets_etoobig_and_close(void **state)
{
    (void)state;
    const uint32_t lens[] = { MAX_FRAME + 1, 0xffffffffu };
    for (size_t i = 0; i < 2; i++) {
        int s = hello_sock();
        send_hdr(s, PROTO_MAGIC, PROTO_VERSION, OP_LOOKUP, 79, lens[i], 0, NULL, 0);
        expect(s, OP_LOOKUP, 79, SIMCACHE_ETOOBIG, "max_frame");
        expect_closed(s);
        close(s);
    }
    /* Exactly max_frame is allowed: a ping echoes it whole. */
    int s = hello_sock();
    uint8_t *big = malloc(MAX_FRAME);
    assert_non_null(big);
    it_fill(big, MAX_FRAME, 5);
    send_hdr(s, PROTO_MAGIC, PROTO_VERSION, OP_PING, 80, MAX_FRAME, 0, big, MAX_FRAME);
    it_frame_t f;
    expect_frame(s, OP_PING, 80, 0, NULL, &f);
    assert_int_equal(f.h.len, MAX_FRAME);
    assert_memory_equal(f.payload, big, MAX_FRAME);
    it_frame_free(&f);
    free(big);
    expect_alive(s);
    close(s);
    check_good();
}

static void truncated_frames_are_dropped_with_their_client(void **state)
{
    (void)state;
    /* Half a header, then gone. */
    int s = hello_sock();
    uint8_t hb[PROTO_HDR_SIZE];
    proto_hdr_t h = { PROTO_MAGIC, PROTO_VERSION, OP_GET, 81, 8, 0 };
    proto_hdr_encode(&h, hb);
    assert_int_equal(it_send_all(s, hb, 10), 0);
    close(s);
    /* A header promising 100 bytes, 10 sent, then gone. */
    s = hello_sock();
    uint8_t part[10] = { 0 };
    send_hdr(s, PROTO_MAGIC, PROTO_VERSION, OP_LOOKUP, 82, 100, 0, part, sizeof part);
    close(s);
    /* One that stalls mid-frame does not stall anybody else. */
    s = hello_sock();
    send_hdr(s, PROTO_MAGIC, PROTO_VERSION, OP_LOOKUP, 83, 1000, 0, part, sizeof part);
    check_good_with(1);
    /* When the rest comes, it is read as one frame (here a malformed one). */
    uint8_t rest[990];
    memset(rest, 0, sizeof rest);
    assert_int_equal(it_send_all(s, rest, sizeof rest), 0);
    expect(s, OP_LOOKUP, 83, SIMCACHE_EDIM, NULL);
    expect_alive(s);
    close(s);
    check_good();
}

/* ---- payload errors: error reply, the connection goes on ---- */

static void stalled_half_frame_is_disconnected_after_frame_timeout(void **state)
{
    (void)state;
    char out[512];
    assert_int_equal(it_admin(&D, "config set frame_timeout_ms 300", out, sizeof out), 0);
    uint64_t before = it_admin_u64(&D, "stats", "protocol_errors");
    int s = hello_sock();
    uint8_t part[10] = { 0 };
    send_hdr(s, PROTO_MAGIC, PROTO_VERSION, OP_LOOKUP, 91, 1000, 0, part, sizeof part);
    /* The daemon hangs up on it (the wait is only a guard against hangs). */
    assert_int_equal(it_wait_eof(s, IT_TIMEOUT_MS), 1);
    close(s);
    assert_true(it_admin_u64(&D, "stats", "protocol_errors") > before);
    assert_int_equal(it_admin(&D, "config set frame_timeout_ms 30000", out, sizeof out), 0);
    check_good();
}

static void unknown_opcodes_get_eopcode(void **state)
{
    (void)state;
    int s = hello_sock();
    const uint16_t ops[] = { 0, OP_MAX_, 99, 0x7fff, OP_REPLY | OP_LOOKUP, 0xffff };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        send_req(s, ops[i], 100 + i, NULL);
        char want[64];
        snprintf(want, sizeof want, "unknown opcode %u", ops[i]);
        expect(s, ops[i], 100 + i, SIMCACHE_EOPCODE, want);
        expect_alive(s);
    }
    close(s);
    check_good();
}

static void request_with_status_set_gets_eproto(void **state)
{
    (void)state;
    int s = hello_sock();
    send_hdr(s, PROTO_MAGIC, PROTO_VERSION, OP_PING, 84, 0, -5, NULL, 0);
    expect(s, OP_PING, 84, SIMCACHE_EPROTO, "nonzero status");
    expect_alive(s);
    close(s);
    check_good();
}

static void malformed_payloads_get_eproto(void **state)
{
    (void)state;
    int s = hello_sock();
    proto_wr_t w;
    /* get with 4 bytes instead of 8, then with trailing garbage */
    proto_wr_init(&w);
    proto_wr_u32(&w, 1);
    send_req(s, OP_GET, 85, &w);
    expect(s, OP_GET, 85, SIMCACHE_EPROTO, "malformed or truncated");
    proto_wr_reset(&w);
    proto_wr_u64(&w, good_ids[0]);
    proto_wr_u32(&w, 0xabcdef);
    send_req(s, OP_GET, 86, &w);
    expect(s, OP_GET, 86, SIMCACHE_EPROTO, "malformed or truncated");
    /* lookup whose embedding is shorter than its dim says */
    proto_wr_reset(&w);
    proto_wr_f32(&w, -1);
    proto_wr_u32(&w, 0);
    proto_wr_u32(&w, DIM);
    proto_wr_f32(&w, 1.0f);
    send_req(s, OP_LOOKUP, 87, &w);
    expect(s, OP_LOOKUP, 87, SIMCACHE_EPROTO, "truncated");
    /* stats and release with junk */
    proto_wr_reset(&w);
    proto_wr_u16(&w, 7);
    send_req(s, OP_STATS, 88, &w);
    expect(s, OP_STATS, 88, SIMCACHE_EPROTO, NULL);
    send_req(s, OP_RELEASE, 89, &w);
    expect(s, OP_RELEASE, 89, SIMCACHE_EPROTO, NULL);
    send_req(s, OP_DELETE, 90, NULL);
    expect(s, OP_DELETE, 90, SIMCACHE_EPROTO, NULL);
    proto_wr_free(&w);
    expect_alive(s);
    close(s);
    check_good();
}

static void embedding_of_wrong_dimension_gets_edim(void **state)
{
    (void)state;
    int s = hello_sock();
    float e[DIM * 2];
    it_unit(1, e, DIM * 2);
    proto_wr_t w;
    const uint32_t dims[] = { 3, DIM - 1, DIM + 1, DIM * 2 };
    for (size_t i = 0; i < 4; i++) {
        wr_lookup(&w, -1, e, dims[i]);
        send_req(s, OP_LOOKUP, 91, &w);
        char want[64];
        snprintf(want, sizeof want, "dimension %u, namespace has %u", dims[i], DIM);
        expect(s, OP_LOOKUP, 91, SIMCACHE_EDIM, want);
        proto_wr_free(&w);
    }
    /* dim 0, and a dim over the global limit without the floats */
    proto_wr_init(&w);
    proto_wr_f32(&w, -1);
    proto_wr_u32(&w, 0);
    proto_wr_u32(&w, 0);
    send_req(s, OP_LOOKUP, 92, &w);
    expect(s, OP_LOOKUP, 92, SIMCACHE_EDIM, NULL);
    proto_wr_reset(&w);
    proto_wr_f32(&w, -1);
    proto_wr_u32(&w, 0);
    proto_wr_u32(&w, SIMCACHE_MAX_DIM + 1);
    send_req(s, OP_LOOKUP, 93, &w);
    expect(s, OP_LOOKUP, 93, SIMCACHE_EDIM, "over the limit");
    proto_wr_free(&w);
    expect_alive(s);
    close(s);
    check_good();
}

static void nan_inf_and_zero_embeddings_get_eembed(void **state)
{
    (void)state;
    int s = hello_sock();
    proto_wr_t w;
    const float bad[] = { NAN, INFINITY, -INFINITY };
    for (int i = 0; i < 4; i++) {
        float e[DIM];
        it_unit(10, e, DIM);    /* good_ids[0]'s own embedding, but spoiled */
        if (i < 3) e[DIM / 2] = bad[i];
        else memset(e, 0, sizeof e);
        wr_lookup(&w, -1, e, DIM);
        send_req(s, OP_LOOKUP, 94 + (uint64_t)i, &w);
        expect(s, OP_LOOKUP, 94 + (uint64_t)i, SIMCACHE_EEMBED, "NaN or Inf, or is the zero vector");
        proto_wr_free(&w);
    }
    /* Only subnormals: the zero vector on hardware that flushes them. */
    float sub[DIM];
    for (int i = 0; i < DIM; i++) sub[i] = 1e-42f;
    wr_lookup(&w, -1, sub, DIM);
    send_req(s, OP_LOOKUP, 98, &w);
    expect(s, OP_LOOKUP, 98, SIMCACHE_EEMBED, NULL);
    proto_wr_free(&w);
    /* Huge but finite is fine: direction is what counts. */
    float huge[DIM];
    it_unit(10, huge, DIM);
    for (int i = 0; i < DIM; i++) huge[i] *= 3e38f;
    wr_lookup(&w, -1, huge, DIM);
    send_req(s, OP_LOOKUP, 99, &w);
    it_frame_t f;
    expect_frame(s, OP_LOOKUP, 99, 0, NULL, &f);
    proto_rd_t r;
    proto_rd_init(&r, f.payload, f.h.len);
    assert_int_equal(proto_rd_u32(&r), 1);
    proto_match_t m;
    proto_rd_match(&r, &m);
    assert_int_equal(m.id, good_ids[0]);
    assert_true(m.similarity > 0.999f);
    it_frame_free(&f);
    proto_wr_free(&w);
    expect_alive(s);
    close(s);   /* the lease goes with the connection */
    check_good();
}

static uint64_t raw_put_begin(int s, uint64_t size, uint64_t req)
{
    proto_wr_t w;
    proto_wr_init(&w);
    proto_wr_u64(&w, size);
    proto_wr_u32(&w, 0);
    send_req(s, OP_PUT_BEGIN, req, &w);
    proto_wr_free(&w);
    it_frame_t f;
    expect_frame(s, OP_PUT_BEGIN, req, 0, NULL, &f);
    proto_rd_t r;
    proto_rd_init(&r, f.payload, f.h.len);
    uint64_t token = proto_rd_u64(&r);
    (void)proto_rd_u64(&r);                  /* staging id */
    assert_true(proto_rd_u64(&r) >= size);   /* staging buffer size */
    uint32_t fresh = proto_rd_u32(&r);
    assert_int_equal(proto_rd_done(&r), 0);
    /* An fd comes exactly with a new buffer (a finished put's is reused). */
    assert_int_equal(fresh, f.fd >= 0);
    it_frame_free(&f);
    return token;
}

static void wr_commit(proto_wr_t *w, uint64_t token, const simcache_layout_t *l, uint32_t meta_len,
                      const void *meta, const float *e, uint32_t dim)
{
    proto_wr_init(w);
    proto_wr_u64(w, token);
    proto_wr_u32(w, 0);
    proto_wr_layout(w, l);
    proto_wr_u32(w, meta_len);
    proto_wr_bytes(w, meta, meta_len);
    proto_wr_embedding(w, e, dim);
}

/* A set bit in a reserved flags field is refused (SIMCACHE_EINVAL) in
 * every request that has one, and the connection goes on; in hello the
 * connection closes, as after any failed hello. */
static void reserved_flag_bits_get_einval(void **state)
{
    (void)state;
    int s = hello_sock();
    float e[DIM];
    good_emb(0, e);
    proto_wr_t w;

    /* lookup */
    proto_wr_init(&w);
    proto_wr_f32(&w, 0.8f);
    proto_wr_u32(&w, 1);
    proto_wr_embedding(&w, e, DIM);
    send_req(s, OP_LOOKUP, 301, &w);
    expect(s, OP_LOOKUP, 301, SIMCACHE_EINVAL, "flags 0x1 are reserved");
    proto_wr_free(&w);
    /* lookup_batch */
    proto_wr_init(&w);
    proto_wr_f32(&w, 0.8f);
    proto_wr_u32(&w, 0x80000000u);
    proto_wr_u32(&w, 1);
    proto_wr_u32(&w, DIM);
    proto_wr_bytes(&w, e, sizeof e);
    send_req(s, OP_LOOKUP_BATCH, 302, &w);
    expect(s, OP_LOOKUP_BATCH, 302, SIMCACHE_EINVAL, "reserved");
    proto_wr_free(&w);
    /* route */
    proto_wr_init(&w);
    proto_wr_u32(&w, 4);
    proto_wr_embedding(&w, e, DIM);
    send_req(s, OP_ROUTE, 303, &w);
    expect(s, OP_ROUTE, 303, SIMCACHE_EINVAL, "route flags 0x4 are reserved");
    proto_wr_free(&w);
    /* put_commit of a begun put: refused, and the put can still commit */
    uint64_t token = raw_put_begin(s, 4096, 304);
    simcache_layout_t l = it_layout(4096);
    wr_commit(&w, token, &l, 0, NULL, e, DIM);
    memset(w.buf + 8, 0xff, 4); /* the flags word, after the token */
    send_req(s, OP_PUT_COMMIT, 305, &w);
    expect(s, OP_PUT_COMMIT, 305, SIMCACHE_EINVAL, "put_commit flags");
    proto_wr_free(&w);
    wr_commit(&w, token, &l, 0, NULL, e, DIM);
    send_req(s, OP_PUT_COMMIT, 306, &w);
    expect(s, OP_PUT_COMMIT, 306, 0, NULL);
    proto_wr_free(&w);
    expect_alive(s);
    close(s);

    /* hello */
    s = it_raw_connect(D.sock);
    assert_true(s >= 0);
    proto_hello_t h = { 1, 1, DIM, 2, -1, MODEL, (uint16_t)strlen(MODEL), FP,
                        (uint16_t)strlen(FP), "", 0 };
    proto_wr_init(&w);
    proto_wr_hello(&w, &h);
    send_req(s, OP_HELLO, 307, &w);
    expect(s, OP_HELLO, 307, SIMCACHE_EINVAL, "hello flags 0x2 are reserved");
    proto_wr_free(&w);
    expect_closed(s);
    close(s);
    check_good();
}

static void put_commit_input_errors(void **state)
{
    (void)state;
    int s = hello_sock();
    uint64_t token = raw_put_begin(s, 4096, 100);
    float e[DIM];
    it_unit(4000, e, DIM);
    proto_wr_t w;
    struct {
        simcache_layout_t l;
        const char *why;
    } bad[] = {
        { it_layout(8192), "does not describe the 4096-byte blob" },
        { { 99, 2, 1, 2, 64, 8 }, "dtype 99" },
        { { 0, 2, 1, 2, 64, 8 }, NULL },
        { { SIMCACHE_DTYPE_F16, 3, 1, 2, 64, 8 }, NULL },
        { { SIMCACHE_DTYPE_F16, 2, 0, 2, 64, 8 }, NULL },
        { { SIMCACHE_DTYPE_F16, 2, 1, 2, 64, 0 }, NULL },
        { { SIMCACHE_DTYPE_F32, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu }, NULL },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wr_commit(&w, token, &bad[i].l, 0, NULL, e, DIM);
        send_req(s, OP_PUT_COMMIT, 101, &w);
        expect(s, OP_PUT_COMMIT, 101, SIMCACHE_ELAYOUT, bad[i].why);
        proto_wr_free(&w);
    }
    simcache_layout_t l = it_layout(4096);
    /* bad embeddings on commit */
    float nan_e[DIM];
    memcpy(nan_e, e, sizeof e);
    nan_e[0] = NAN;
    wr_commit(&w, token, &l, 0, NULL, nan_e, DIM);
    send_req(s, OP_PUT_COMMIT, 102, &w);
    expect(s, OP_PUT_COMMIT, 102, SIMCACHE_EEMBED, NULL);
    proto_wr_free(&w);
    wr_commit(&w, token, &l, 0, NULL, e, DIM - 1);
    send_req(s, OP_PUT_COMMIT, 103, &w);
    expect(s, OP_PUT_COMMIT, 103, SIMCACHE_EDIM, NULL);
    proto_wr_free(&w);
    /* metadata over 1024 bytes; exactly 1024 is fine */
    uint8_t meta[SIMCACHE_MAX_META + 1];
    it_fill(meta, sizeof meta, 9);
    wr_commit(&w, token, &l, SIMCACHE_MAX_META + 1, meta, e, DIM);
    send_req(s, OP_PUT_COMMIT, 104, &w);
    expect(s, OP_PUT_COMMIT, 104, SIMCACHE_ETOOBIG, "metadata of 1025 bytes (max 1024)");
    proto_wr_free(&w);
    /* commit of a token never begun, and abort of one */
    wr_commit(&w, token + 1000, &l, 0, NULL, e, DIM);
    send_req(s, OP_PUT_COMMIT, 105, &w);
    expect(s, OP_PUT_COMMIT, 105, SIMCACHE_ENOPUT, "never begun");
    proto_wr_free(&w);
    proto_wr_init(&w);
    proto_wr_u64(&w, 0);
    send_req(s, OP_PUT_ABORT, 106, &w);
    expect(s, OP_PUT_ABORT, 106, SIMCACHE_ENOPUT, NULL);
    proto_wr_free(&w);
    /* Another client cannot commit (or abort) this client's put. */
    int s2 = hello_sock();
    wr_commit(&w, token, &l, 0, NULL, e, DIM);
    send_req(s2, OP_PUT_COMMIT, 107, &w);
    expect(s2, OP_PUT_COMMIT, 107, SIMCACHE_ENOPUT, NULL);
    proto_wr_free(&w);
    proto_wr_init(&w);
    proto_wr_u64(&w, token);
    send_req(s2, OP_PUT_ABORT, 108, &w);
    expect(s2, OP_PUT_ABORT, 108, SIMCACHE_ENOPUT, NULL);
    proto_wr_free(&w);
    close(s2);
    /* After all that the put is still open: a right commit works, with
     * 1024 bytes of metadata. */
    wr_commit(&w, token, &l, SIMCACHE_MAX_META, meta, e, DIM);
    send_req(s, OP_PUT_COMMIT, 109, &w);
    it_frame_t f;
    expect_frame(s, OP_PUT_COMMIT, 109, 0, NULL, &f);
    proto_rd_t r;
    proto_rd_init(&r, f.payload, f.h.len);
    uint64_t id = proto_rd_u64(&r);
    it_frame_free(&f);
    proto_wr_free(&w);
    simcache_t *h = it_connect(D.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    simcache_match_t m;
    assert_int_equal(simcache_get(h, id, &m), 0);
    assert_int_equal(m.meta_len, SIMCACHE_MAX_META);
    assert_memory_equal(m.meta, meta, SIMCACHE_MAX_META);
    assert_int_equal(simcache_release(h, &m), 0);
    assert_int_equal(simcache_delete(h, id), 0);
    simcache_close(h);
    /* ...and then it is spent. */
    wr_commit(&w, token, &l, 0, NULL, e, DIM);
    send_req(s, OP_PUT_COMMIT, 110, &w);
    expect(s, OP_PUT_COMMIT, 110, SIMCACHE_ENOPUT, NULL);
    proto_wr_free(&w);
    expect_alive(s);
    close(s);
    check_good();
}

static void put_begin_size_errors(void **state)
{
    (void)state;
    int s = hello_sock();
    proto_wr_t w;
    const uint64_t sizes[] = { CAPACITY + 1, UINT64_MAX, 0 };
    const int codes[] = { SIMCACHE_ETOOBIG, SIMCACHE_ETOOBIG, SIMCACHE_EINVAL };
    const char *const why[] = { "larger than the host tier", "larger than the host tier", "0 bytes" };
    for (int i = 0; i < 3; i++) {
        proto_wr_init(&w);
        proto_wr_u64(&w, sizes[i]);
        proto_wr_u32(&w, 0);
        send_req(s, OP_PUT_BEGIN, 111, &w);
        it_frame_t f;
        expect_frame(s, OP_PUT_BEGIN, 111, codes[i], why[i], &f);
        assert_int_equal(f.fd, -1);
        it_frame_free(&f);
        proto_wr_free(&w);
    }
    expect_alive(s);
    close(s);
    check_good();
}

static uint64_t raw_lookup_lease(int s, int k, uint64_t req)
{
    float e[DIM];
    good_emb(k, e);
    proto_wr_t w;
    wr_lookup(&w, -1, e, DIM);
    send_req(s, OP_LOOKUP, req, &w);
    proto_wr_free(&w);
    it_frame_t f;
    expect_frame(s, OP_LOOKUP, req, 0, NULL, &f);
    proto_rd_t r;
    proto_rd_init(&r, f.payload, f.h.len);
    assert_int_equal(proto_rd_u32(&r), 1);
    proto_match_t m;
    proto_rd_match(&r, &m);
    assert_int_equal(proto_rd_done(&r), 0);
    it_frame_free(&f);
    assert_int_equal(m.id, good_ids[k]);
    return m.lease;
}

static void send_release(int s, uint64_t lease, uint64_t req)
{
    proto_wr_t w;
    proto_wr_init(&w);
    proto_wr_u64(&w, lease);
    send_req(s, OP_RELEASE, req, &w);
    proto_wr_free(&w);
}

static void release_errors(void **state)
{
    (void)state;
    int a = hello_sock(), b = hello_sock();
    uint64_t la = raw_lookup_lease(a, 0, 120);
    uint64_t active = stat_now("leases_active");
    /* b may not release a's lease; a still holds it afterwards */
    send_release(b, la, 121);
    expect(b, OP_RELEASE, 121, SIMCACHE_EPERM, "belongs to another client");
    assert_int_equal(stat_now("leases_active"), active);
    send_release(a, la, 122);
    expect(a, OP_RELEASE, 122, 0, NULL);
    /* twice */
    send_release(a, la, 123);
    expect(a, OP_RELEASE, 123, SIMCACHE_ELEASE, "already released");
    /* by b after it ended, lease 0, and one never handed out */
    send_release(b, la, 124);
    expect(b, OP_RELEASE, 124, SIMCACHE_ELEASE, NULL);
    send_release(a, 0, 125);
    expect(a, OP_RELEASE, 125, SIMCACHE_ELEASE, "no lease 0");
    send_release(a, UINT64_MAX, 126);
    expect(a, OP_RELEASE, 126, SIMCACHE_ELEASE, "no lease");
    assert_int_equal(stat_now("leases_active"), active - 1);
    expect_alive(a);
    expect_alive(b);
    close(a);
    close(b);
    check_good();
}

static void threshold_above_one_gets_einval(void **state)
{
    (void)state;
    int s = hello_sock();
    float e[DIM];
    good_emb(1, e);
    proto_wr_t w;
    const float bad[] = { 1.5f, 1.0001f, INFINITY };
    for (int i = 0; i < 3; i++) {
        wr_lookup(&w, bad[i], e, DIM);
        send_req(s, OP_LOOKUP, 130, &w);
        expect(s, OP_LOOKUP, 130, SIMCACHE_EINVAL, "above 1");
        proto_wr_free(&w);
    }
    /* NaN and negative thresholds mean "the daemon's default": a hit. */
    const float dflt[] = { NAN, -1.0f, -INFINITY };
    for (int i = 0; i < 3; i++) {
        wr_lookup(&w, dflt[i], e, DIM);
        send_req(s, OP_LOOKUP, 131, &w);
        it_frame_t f;
        expect_frame(s, OP_LOOKUP, 131, 0, NULL, &f);
        assert_int_equal(f.payload[0], 1);
        it_frame_free(&f);
        proto_wr_free(&w);
    }
    /* batch too */
    proto_wr_init(&w);
    proto_wr_f32(&w, 2.0f);
    proto_wr_u32(&w, 0);
    proto_wr_u32(&w, 1);
    proto_wr_u32(&w, DIM);
    proto_wr_bytes(&w, e, sizeof e);
    send_req(s, OP_LOOKUP_BATCH, 132, &w);
    expect(s, OP_LOOKUP_BATCH, 132, SIMCACHE_EINVAL, "above 1");
    proto_wr_free(&w);
    expect_alive(s);
    close(s);
    check_good();
}

static void wr_batch(proto_wr_t *w, uint32_t n, uint32_t dim, const float *e, size_t nfloats)
{
    proto_wr_init(w);
    proto_wr_f32(w, -1);
    proto_wr_u32(w, 0);
    proto_wr_u32(w, n);
    proto_wr_u32(w, dim);
    proto_wr_bytes(w, e, nfloats * sizeof(float));
}

static void batch_errors(void **state)
{
    (void)state;
    int s = hello_sock();
    float e[3 * DIM];
    for (int k = 0; k < 3; k++) good_emb(k, e + k * DIM);
    proto_wr_t w;
    wr_batch(&w, 0, DIM, NULL, 0);
    send_req(s, OP_LOOKUP_BATCH, 140, &w);
    expect(s, OP_LOOKUP_BATCH, 140, SIMCACHE_EINVAL, "batch of 0");
    proto_wr_free(&w);
    wr_batch(&w, SIMCACHE_MAX_BATCH + 1, DIM, NULL, 0);
    send_req(s, OP_LOOKUP_BATCH, 141, &w);
    expect(s, OP_LOOKUP_BATCH, 141, SIMCACHE_ETOOBIG, "batch of 1025");
    proto_wr_free(&w);
    wr_batch(&w, 3, DIM + 1, e, 3 * DIM);
    send_req(s, OP_LOOKUP_BATCH, 142, &w);
    expect(s, OP_LOOKUP_BATCH, 142, SIMCACHE_EDIM, NULL);
    proto_wr_free(&w);
    wr_batch(&w, 3, DIM, e, 2 * DIM);   /* one embedding short */
    send_req(s, OP_LOOKUP_BATCH, 143, &w);
    expect(s, OP_LOOKUP_BATCH, 143, SIMCACHE_EPROTO, NULL);
    proto_wr_free(&w);
    float spoiled[3 * DIM];
    memcpy(spoiled, e, sizeof e);
    spoiled[DIM + 5] = NAN;
    wr_batch(&w, 3, DIM, spoiled, 3 * DIM);
    send_req(s, OP_LOOKUP_BATCH, 144, &w);
    expect(s, OP_LOOKUP_BATCH, 144, SIMCACHE_EEMBED, "embedding 1 ");
    proto_wr_free(&w);
    /* None of those leased anything; a good batch of 3 does. */
    uint64_t active = stat_now("leases_active");
    wr_batch(&w, 3, DIM, e, 3 * DIM);
    send_req(s, OP_LOOKUP_BATCH, 145, &w);
    it_frame_t f;
    expect_frame(s, OP_LOOKUP_BATCH, 145, 0, NULL, &f);
    proto_rd_t r;
    proto_rd_init(&r, f.payload, f.h.len);
    assert_int_equal(proto_rd_u32(&r), 3);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(proto_rd_u32(&r), 1);
        proto_match_t m;
        proto_rd_match(&r, &m);
        assert_int_equal(m.id, good_ids[k]);
    }
    assert_int_equal(proto_rd_done(&r), 0);
    it_frame_free(&f);
    proto_wr_free(&w);
    assert_int_equal(stat_now("leases_active"), active + 3);
    expect_alive(s);
    close(s);
    assert_int_equal(it_admin_wait_u64(&D, "stats", "leases_active", active), active);
    check_good();
}

static void unfinished_puts_are_limited(void **state)
{
    (void)state;
    int s = hello_sock();
    uint64_t tokens[64];
    for (int i = 0; i < 64; i++) tokens[i] = raw_put_begin(s, 4096, 170);
    proto_wr_t w;
    proto_wr_init(&w);
    proto_wr_u64(&w, 4096);
    proto_wr_u32(&w, 0);
    send_req(s, OP_PUT_BEGIN, 171, &w);
    expect(s, OP_PUT_BEGIN, 171, SIMCACHE_ELIMIT, "unfinished puts");
    proto_wr_free(&w);
    proto_wr_init(&w);
    proto_wr_u64(&w, tokens[10]);
    send_req(s, OP_PUT_ABORT, 172, &w);
    expect(s, OP_PUT_ABORT, 172, 0, NULL);
    proto_wr_free(&w);
    (void)raw_put_begin(s, 4096, 173);
    close(s);
    /* staged bytes of one client stay within the tier size */
    s = hello_sock();
    (void)raw_put_begin(s, CAPACITY / 2 + 4096, 174);
    proto_wr_init(&w);
    proto_wr_u64(&w, CAPACITY / 2 + 4096);
    proto_wr_u32(&w, 0);
    send_req(s, OP_PUT_BEGIN, 175, &w);
    expect(s, OP_PUT_BEGIN, 175, SIMCACHE_ELIMIT, "exceed the host tier size");
    proto_wr_free(&w);
    close(s);
    assert_int_equal(it_admin_wait_u64(&D, "stats", "clients", 1), 1);
    assert_int_equal(it_count_fds(D.pid, "simcache-staging"), 0);
    check_good();
}

/* ---- hello and connection state ---- */

static void request_before_hello_gets_estate(void **state)
{
    (void)state;
    int s = it_raw_connect(D.sock);
    assert_true(s >= 0);
    float e[DIM];
    good_emb(0, e);
    proto_wr_t w;
    wr_lookup(&w, -1, e, DIM);
    send_req(s, OP_LOOKUP, 150, &w);
    expect(s, OP_LOOKUP, 150, SIMCACHE_ESTATE, "lookup before hello");
    proto_wr_free(&w);
    proto_wr_init(&w);
    proto_wr_u64(&w, good_ids[0]);
    send_req(s, OP_GET, 151, &w);
    expect(s, OP_GET, 151, SIMCACHE_ESTATE, "before hello");
    proto_wr_free(&w);
    send_req(s, OP_STATS, 152, NULL);
    expect(s, OP_STATS, 152, SIMCACHE_ESTATE, NULL);
    expect_alive(s);   /* ping needs no hello */
    /* hello now works; a second one does not */
    assert_int_equal(it_raw_hello(s, MODEL, FP, NULL, DIM, NULL, NULL), 0);
    assert_int_equal(it_raw_hello(s, MODEL, FP, NULL, DIM, NULL, NULL), SIMCACHE_ESTATE);
    assert_int_equal(it_raw_hello(s, "other", FP, NULL, DIM, NULL, NULL), SIMCACHE_ESTATE);
    expect_alive(s);
    (void)raw_lookup_lease(s, 0, 153);   /* still in the first namespace */
    close(s);
    check_good();
}

/* Hello refused: error reply, then closed. */
static void expect_hello_refused(const char *model, size_t ml, const char *fp, size_t fl,
                                 const char *tenant, size_t tl, uint32_t dim, uint16_t vmin,
                                 uint16_t vmax, int code)
{
    int s = it_raw_connect(D.sock);
    assert_true(s >= 0);
    int rc = it_raw_hello_n(s, model, ml, fp, fl, tenant, tl, dim, vmin, vmax, NULL, NULL);
    if (rc != code)
        fail_msg("hello '%.*s' '%.*s' '%.*s' dim %u v%u-%u: got %d, want %d", (int)(ml > 40 ? 40 : ml),
                 model, (int)(fl > 40 ? 40 : fl), fp, (int)(tl > 40 ? 40 : tl), tenant, dim, vmin,
                 vmax, rc, code);
    expect_closed(s);
    close(s);
}

static void expect_hello_ok(const char *model, size_t ml, const char *fp, size_t fl,
                            const char *tenant, size_t tl)
{
    int s = it_raw_connect(D.sock);
    assert_true(s >= 0);
    assert_int_equal(it_raw_hello_n(s, model, ml, fp, fl, tenant, tl, DIM, 1, 1, NULL, NULL), 0);
    expect_alive(s);
    close(s);
}

static void namespace_strings_are_checked(void **state)
{
    (void)state;
    char longs[300];
    memset(longs, 'a', sizeof longs);
    /* 255 bytes is the limit, 256 is over, for each of the three */
    expect_hello_ok(longs, 255, longs, 255, longs, 255);
    expect_hello_refused(longs, 256, FP, 2, "", 0, DIM, 1, 1, SIMCACHE_ENAMESPACE);
    expect_hello_refused(MODEL, 9, longs, 256, "", 0, DIM, 1, 1, SIMCACHE_ENAMESPACE);
    expect_hello_refused(MODEL, 9, FP, 6, longs, 256, DIM, 1, 1, SIMCACHE_ENAMESPACE);
    expect_hello_refused(longs, 300, FP, 6, "", 0, DIM, 1, 1, SIMCACHE_ENAMESPACE);
    /* empty model or fingerprint */
    expect_hello_refused("", 0, FP, 6, "", 0, DIM, 1, 1, SIMCACHE_ENAMESPACE);
    expect_hello_refused(MODEL, 9, "", 0, "", 0, DIM, 1, 1, SIMCACHE_ENAMESPACE);
    /* not UTF-8: stray byte, overlong, surrogate, cut sequence, NUL, > U+10FFFF */
    const char *const bad[] = { "m\xff", "\xc0\xaf", "\xed\xa0\x80", "ab\xe2\x82", "a\0b",
                                "\xf4\x90\x80\x80" };
    const size_t badlen[] = { 2, 2, 3, 4, 3, 4 };
    for (int i = 0; i < 6; i++) {
        expect_hello_refused(bad[i], badlen[i], FP, 6, "", 0, DIM, 1, 1, SIMCACHE_ENAMESPACE);
        expect_hello_refused(MODEL, 9, bad[i], badlen[i], "", 0, DIM, 1, 1, SIMCACHE_ENAMESPACE);
        expect_hello_refused(MODEL, 9, FP, 6, bad[i], badlen[i], DIM, 1, 1, SIMCACHE_ENAMESPACE);
    }
    /* real UTF-8 is fine */
    const char *u = "\xe6\xa8\xa1\xe5\x9e\x8b-\xc3\xbc-\xf0\x9f\x99\x82";
    expect_hello_ok(u, strlen(u), u, strlen(u), u, strlen(u));
    check_good();
}

static void hello_version_and_dim_are_checked(void **state)
{
    (void)state;
    expect_hello_refused(MODEL, 9, FP, 6, "", 0, DIM, 2, 5, SIMCACHE_EVERSION);
    expect_hello_refused(MODEL, 9, FP, 6, "", 0, DIM, 0, 0, SIMCACHE_EVERSION);
    expect_hello_refused(MODEL, 9, FP, 6, "", 0, DIM, 1, 0, SIMCACHE_EVERSION);
    expect_hello_refused(MODEL, 9, FP, 6, "", 0, 0, 1, 1, SIMCACHE_EDIM);
    expect_hello_refused(MODEL, 9, FP, 6, "", 0, SIMCACHE_MAX_DIM + 1, 1, 1, SIMCACHE_EDIM);
    /* a range that includes 1 is fine */
    int s = it_raw_connect(D.sock);
    assert_true(s >= 0);
    proto_hello_reply_t hr;
    assert_int_equal(it_raw_hello_n(s, MODEL, 9, FP, 6, "", 0, DIM, 0, 9, &hr, NULL), 0);
    assert_int_equal(hr.version, 1);
    assert_int_equal(hr.max_payload, MAX_FRAME);
    assert_int_equal(hr.max_batch, SIMCACHE_MAX_BATCH);
    close(s);
    /* truncated hello payload */
    s = it_raw_connect(D.sock);
    assert_true(s >= 0);
    uint8_t half[6] = { 1, 0, 1, 0, DIM, 0 };
    send_hdr(s, PROTO_MAGIC, PROTO_VERSION, OP_HELLO, 160, sizeof half, 0, half, sizeof half);
    expect(s, OP_HELLO, 160, SIMCACHE_EPROTO, "hello payload malformed");
    expect_closed(s);
    close(s);
    check_good();
}

static void too_many_connections_get_ebusy(void **state)
{
    (void)state;
    assert_int_equal(it_admin_wait_u64(&D, "stats", "clients", 1), 1);   /* the good client */
    uint64_t rejected = stat_now("connections_rejected");
    int s[MAX_CLIENTS];
    for (int i = 0; i < MAX_CLIENTS - 1; i++) s[i] = hello_sock();
    assert_int_equal(stat_now("clients"), MAX_CLIENTS);
    /* The next one is refused at once, before it says anything. */
    int x = it_raw_connect(D.sock);
    assert_true(x >= 0);
    it_frame_t f;
    assert_int_equal(it_recv_frame(x, &f, IT_TIMEOUT_MS), 0);
    char msg[256];
    assert_int_equal(f.h.status, SIMCACHE_EBUSY);
    assert_int_equal(f.h.req_id, 0);
    assert_int_equal(f.h.opcode, OP_HELLO | OP_REPLY);
    assert_non_null(strstr(it_frame_msg(&f, msg, sizeof msg), "too many connections"));
    it_frame_free(&f);
    expect_closed(x);
    close(x);
    /* The library reports it as EBUSY with the daemon's message. */
    simcache_opts_t o;
    simcache_opts_init(&o);
    o.socket_path = D.sock;
    o.model = MODEL;
    o.layout_fingerprint = FP;
    o.dim = DIM;
    o.timeout_ms = IT_TIMEOUT_MS;
    simcache_t *h = NULL;
    int rc = simcache_connect(&o, &h);
    if (rc != SIMCACHE_EBUSY)
        fail_msg("library connect past max_clients: %s (%s), want SIMCACHE_EBUSY",
                 simcache_strerror(rc), simcache_last_error(h));
    assert_non_null(strstr(simcache_last_error(h), "too many connections"));
    simcache_close(h);
    assert_int_equal(stat_now("connections_rejected"), rejected + 2);
    /* Those inside keep working. */
    for (int i = 0; i < MAX_CLIENTS - 1; i++) expect_alive(s[i]);
    for (int i = 0; i < MAX_CLIENTS - 1; i++) close(s[i]);
    check_good();
}

/* ---- the same mistakes through the library ---- */

static simcache_t *lib(void)
{
    simcache_t *h = it_connect(D.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    return h;
}

/* Runs a library call and checks the code and which side refused it. */
#define EXPECT_LIB(call, code, daemon_side)                                            \
    do {                                                                               \
        uint64_t before_ = stat_now("request_errors");                                 \
        int rc_ = (call);                                                              \
        if (rc_ != (code))                                                             \
            fail_msg("%s: got %s, want %s", #call, simcache_strerror(rc_),             \
                     simcache_strerror(code));                                         \
        uint64_t after_ = stat_now("request_errors");                                  \
        if ((after_ != before_) != (daemon_side))                                      \
            fail_msg("%s: refused by the %s, expected the %s", #call,                  \
                     after_ != before_ ? "daemon" : "library",                         \
                     (daemon_side) ? "daemon" : "library");                            \
    } while (0)

static int lib_connect(const char *model, const char *fp, const char *tenant, uint32_t dim,
                       simcache_t **out, char *err, size_t errlen)
{
    simcache_opts_t o;
    simcache_opts_init(&o);
    o.socket_path = D.sock;
    o.model = model;
    o.layout_fingerprint = fp;
    o.tenant = tenant;
    o.dim = dim;
    o.timeout_ms = IT_TIMEOUT_MS;
    *out = NULL;
    int rc = simcache_connect(&o, out);
    snprintf(err, errlen, "%s", *out ? simcache_last_error(*out) : "");
    simcache_close(*out);
    *out = NULL;
    return rc;
}

static void library_connect_mistakes(void **state)
{
    (void)state;
    simcache_t *h;
    char err[1024], longs[300];
    memset(longs, 'm', sizeof longs - 1);
    longs[sizeof longs - 1] = 0;
    longs[256] = 0;   /* 256 bytes */
    /* daemon side: the library passes names up to 65535 bytes on */
    EXPECT_LIB(lib_connect(longs, FP, NULL, DIM, &h, err, sizeof err), SIMCACHE_ENAMESPACE, 1);
    assert_non_null(strstr(err, "namespace strings"));
    EXPECT_LIB(lib_connect(MODEL, FP, longs, DIM, &h, err, sizeof err), SIMCACHE_ENAMESPACE, 1);
    EXPECT_LIB(lib_connect("m\xff", FP, NULL, DIM, &h, err, sizeof err), SIMCACHE_ENAMESPACE, 1);
    EXPECT_LIB(lib_connect("", FP, NULL, DIM, &h, err, sizeof err), SIMCACHE_ENAMESPACE, 1);
    /* library side */
    EXPECT_LIB(lib_connect(NULL, FP, NULL, DIM, &h, err, sizeof err), SIMCACHE_EINVAL, 0);
    EXPECT_LIB(lib_connect(MODEL, NULL, NULL, DIM, &h, err, sizeof err), SIMCACHE_EINVAL, 0);
    EXPECT_LIB(lib_connect(MODEL, FP, NULL, 0, &h, err, sizeof err), SIMCACHE_EINVAL, 0);
    EXPECT_LIB(lib_connect(MODEL, FP, NULL, SIMCACHE_MAX_DIM + 1, &h, err, sizeof err),
               SIMCACHE_EINVAL, 0);
    check_good();
}

/* A handle asked for a GPU on a machine without a usable one: it connects
 * and serves the host tier; every device call says SIMCACHE_ENODEV and why.
 * Argument mistakes are SIMCACHE_EINVAL first, GPU or not. */
static void device_calls_without_a_gpu(void **state)
{
    (void)state;
    simcache_opts_t o;
    simcache_opts_init(&o);
    o.socket_path = D.sock;
    o.model = MODEL;
    o.layout_fingerprint = FP;
    o.dim = DIM;
    o.gpu_device = 0;
    o.timeout_ms = IT_TIMEOUT_MS;
    simcache_t *h = NULL;
    assert_int_equal(simcache_connect(&o, &h), 0);
    char why[200];
    int gs = simcache_gpu_status(h, why, sizeof why);
    float e[DIM];
    it_unit(5100, e, DIM);
    uint8_t kv[4096] = { 7 };
    simcache_layout_t l = it_layout(4096);
    uint64_t id;
    EXPECT_LIB(simcache_put(h, e, &l, kv, sizeof kv, SIMCACHE_HOST_MEMORY, &id), 0, 0);
    simcache_match_t m;
    assert_int_equal(simcache_get(h, id, &m), 0);
    /* range and lease checks come before the device */
    EXPECT_LIB(simcache_copy_to_device(h, &m, 1, kv, 4096, NULL), SIMCACHE_EINVAL, 0);
    assert_non_null(strstr(simcache_last_error(h), "outside"));
    EXPECT_LIB(simcache_copy_to_device(h, &m, 0, NULL, 16, NULL), SIMCACHE_EINVAL, 0);
    EXPECT_LIB(simcache_copy_to_device(h, NULL, 0, kv, 16, NULL), SIMCACHE_EINVAL, 0);
    if (gs == 0) {
        assert_non_null(strstr(why, "device 0 unavailable"));
        EXPECT_LIB(simcache_copy_to_device(h, &m, 0, kv, 16, NULL), SIMCACHE_ENODEV, 0);
        assert_non_null(strstr(simcache_last_error(h), "device 0 unavailable"));
        EXPECT_LIB(simcache_put(h, e, &l, kv, sizeof kv, SIMCACHE_DEVICE_MEMORY, &id),
                   SIMCACHE_ENODEV, 0);
        assert_non_null(strstr(simcache_last_error(h), "needs a GPU"));
    } else {
        /* On a GPU machine the gpu suite covers the device paths. */
        assert_true(gs == 1 || gs == 2);
        assert_string_equal(why, "");
    }
    assert_int_equal(simcache_release(h, &m), 0);
    EXPECT_LIB(simcache_copy_to_device(h, &m, 0, kv, 16, NULL), SIMCACHE_EINVAL, 0);
    assert_non_null(strstr(simcache_last_error(h), "no lease"));
    simcache_close(h);
}

/* The GPU tier's requests on a daemon without one (no device here, or
 * gpu_capacity 0): clear errors, the connection stays usable. */
static void gpu_tier_requests_without_one(void **state)
{
    (void)state;
    if (it_admin_u64(&D, "info", "gpu_tier") != 0) skip();
    int s = hello_sock();
    proto_wr_t w;
    proto_wr_init(&w);
    proto_wr_u32(&w, 0);
    proto_wr_u32(&w, 0);
    send_req(s, OP_GPU_ATTACH, 1, &w);
    expect(s, OP_GPU_ATTACH, 1, SIMCACHE_ENODEV, "no GPU tier");
    proto_wr_reset(&w);
    proto_wr_u32(&w, 0);   /* truncated: device only */
    send_req(s, OP_GPU_ATTACH, 2, &w);
    expect(s, OP_GPU_ATTACH, 2, SIMCACHE_EPROTO, NULL);
    /* a device put without gpu_attach, and unknown put flags */
    proto_wr_reset(&w);
    proto_wr_u64(&w, 4096);
    proto_wr_u32(&w, PROTO_PUT_DEVICE);
    send_req(s, OP_PUT_BEGIN, 3, &w);
    expect(s, OP_PUT_BEGIN, 3, SIMCACHE_ESTATE, "before gpu_attach");
    proto_wr_reset(&w);
    proto_wr_u64(&w, 4096);
    proto_wr_u32(&w, 0x80);
    send_req(s, OP_PUT_BEGIN, 4, &w);
    expect(s, OP_PUT_BEGIN, 4, SIMCACHE_EINVAL, "unknown put_begin flags");
    proto_wr_free(&w);
    expect_alive(s);
    close(s);

    /* The library: a handle with a device but no GPU tier says why. */
    simcache_opts_t o;
    simcache_opts_init(&o);
    o.socket_path = D.sock;
    o.model = MODEL;
    o.layout_fingerprint = FP;
    o.dim = DIM;
    o.gpu_device = 0;
    o.flags = SIMCACHE_PREFER_DEVICE;
    o.timeout_ms = IT_TIMEOUT_MS;
    simcache_t *h = NULL;
    assert_int_equal(simcache_connect(&o, &h), 0);
    char why[600];
    assert_int_equal(simcache_gpu_tier(h, why, sizeof why), 0);
    assert_true(strlen(why) > 0);
    assert_int_equal(simcache_gpu_tier(NULL, why, sizeof why), SIMCACHE_EINVAL);
    void *dev = NULL;
    uint64_t token = 0;
    EXPECT_LIB(simcache_put_begin_device(h, 4096, &dev, &token), SIMCACHE_ENODEV, 0);
    assert_non_null(strstr(simcache_last_error(h), "needs the daemon's GPU tier"));
    assert_null(dev);
    /* PREFER_DEVICE without a GPU tier: hits stay in the host tier. */
    float e[DIM];
    it_unit(5200, e, DIM);
    uint8_t kv[4096] = { 9 };
    simcache_layout_t l = it_layout(4096);
    uint64_t id;
    assert_int_equal(simcache_put(h, e, &l, kv, sizeof kv, SIMCACHE_HOST_MEMORY, &id), 0);
    simcache_match_t m;
    assert_int_equal(simcache_lookup(h, e, 0.99f, &m), 0);
    assert_int_equal(m.tier, SIMCACHE_TIER_HOST);
    assert_non_null(m.data);
    assert_null(m.device_ptr);
    assert_memory_equal(m.data, kv, sizeof kv);
    assert_int_equal(simcache_release(h, &m), 0);
    simcache_close(h);
}

static void library_put_mistakes(void **state)
{
    (void)state;
    simcache_t *h = lib();
    float e[DIM];
    it_unit(5000, e, DIM);
    uint8_t kv[4096] = { 1 };
    simcache_layout_t l = it_layout(4096), wrong = it_layout(8192);
    uint64_t id;
    /* layout that does not match the size: the library checks it */
    EXPECT_LIB(simcache_put(h, e, &wrong, kv, sizeof kv, SIMCACHE_HOST_MEMORY, &id), SIMCACHE_ELAYOUT, 0);
    assert_non_null(strstr(simcache_last_error(h), "layout describes"));
    /* device memory without a GPU tier: library */
    EXPECT_LIB(simcache_put(h, e, &l, kv, sizeof kv, SIMCACHE_DEVICE_MEMORY, &id), SIMCACHE_ENODEV, 0);
    /* metadata over 1024 bytes: library (begin and abort do reach the daemon) */
    uint8_t meta[SIMCACHE_MAX_META + 1] = { 0 };
    simcache_put_opts_t po = { meta, sizeof meta, 0 };
    EXPECT_LIB(simcache_put_ex(h, e, &l, kv, sizeof kv, SIMCACHE_HOST_MEMORY, &po, &id), SIMCACHE_ETOOBIG, 0);
    /* NaN / Inf / zero embeddings: the daemon */
    float bad[DIM];
    memcpy(bad, e, sizeof e);
    bad[3] = NAN;
    EXPECT_LIB(simcache_put(h, bad, &l, kv, sizeof kv, SIMCACHE_HOST_MEMORY, &id), SIMCACHE_EEMBED, 1);
    bad[3] = INFINITY;
    EXPECT_LIB(simcache_put(h, bad, &l, kv, sizeof kv, SIMCACHE_HOST_MEMORY, &id), SIMCACHE_EEMBED, 1);
    memset(bad, 0, sizeof bad);
    EXPECT_LIB(simcache_put(h, bad, &l, kv, sizeof kv, SIMCACHE_HOST_MEMORY, &id), SIMCACHE_EEMBED, 1);
    /* larger than the tier: the daemon, at put_begin */
    void *buf;
    uint64_t tok;
    EXPECT_LIB(simcache_put_begin(h, CAPACITY + 4096, &buf, &tok), SIMCACHE_ETOOBIG, 1);
    EXPECT_LIB(simcache_put_begin(h, 0, &buf, &tok), SIMCACHE_EINVAL, 0);
    /* two-step put: a wrong layout at commit is the daemon's to find, and
     * leaves the put open for a corrected commit */
    assert_int_equal(simcache_put_begin(h, 4096, &buf, &tok), 0);
    memcpy(buf, kv, sizeof kv);
    EXPECT_LIB(simcache_put_commit(h, tok, e, &wrong, NULL, &id), SIMCACHE_ELAYOUT, 1);
    assert_non_null(strstr(simcache_last_error(h), "does not describe"));
    /* commit of an unknown token: the library knows its own puts */
    EXPECT_LIB(simcache_put_commit(h, tok + 1, e, &l, NULL, &id), SIMCACHE_ENOPUT, 0);
    EXPECT_LIB(simcache_put_abort(h, tok + 1), SIMCACHE_ENOPUT, 0);
    assert_int_equal(simcache_put_commit(h, tok, e, &l, NULL, &id), 0);
    EXPECT_LIB(simcache_put_commit(h, tok, e, &l, NULL, &id), SIMCACHE_ENOPUT, 0);
    assert_int_equal(simcache_delete(h, id), 0);
    assert_int_equal(simcache_ping(h), 0);
    simcache_close(h);
    check_good();
}

static void library_lookup_and_lease_mistakes(void **state)
{
    (void)state;
    simcache_t *h = lib(), *h2 = lib();
    float e[DIM], bad[DIM];
    good_emb(0, e);
    simcache_match_t m, ms[2];
    memcpy(bad, e, sizeof e);
    bad[0] = NAN;
    EXPECT_LIB(simcache_lookup(h, bad, -1, &m), SIMCACHE_EEMBED, 1);
    bad[0] = -INFINITY;
    EXPECT_LIB(simcache_lookup(h, bad, -1, &m), SIMCACHE_EEMBED, 1);
    memset(bad, 0, sizeof bad);
    EXPECT_LIB(simcache_lookup(h, bad, -1, &m), SIMCACHE_EEMBED, 1);
    EXPECT_LIB(simcache_lookup(h, e, 1.5f, &m), SIMCACHE_EINVAL, 1);
    assert_int_equal(m.lease, 0);
    /* batches: the library checks the count */
    EXPECT_LIB(simcache_lookup_batch(h, e, 0, -1, ms), SIMCACHE_EINVAL, 0);
    EXPECT_LIB(simcache_lookup_batch(h, e, SIMCACHE_MAX_BATCH + 1, -1, ms), SIMCACHE_ETOOBIG, 0);
    EXPECT_LIB(simcache_lookup_batch(h, e, 1, 3.0f, ms), SIMCACHE_EINVAL, 1);
    /* gets of ids that are not there */
    EXPECT_LIB(simcache_get(h, 0, &m), SIMCACHE_ENOTFOUND, 1);
    EXPECT_LIB(simcache_get(h, UINT64_MAX, &m), SIMCACHE_ENOTFOUND, 1);
    /* release twice: the library clears the match, so the second is its own
     * EINVAL; by lease id, the daemon says ELEASE */
    assert_int_equal(simcache_lookup(h, e, -1, &m), 0);
    uint64_t lease = m.lease;
    assert_int_equal(simcache_release(h, &m), 0);
    EXPECT_LIB(simcache_release(h, &m), SIMCACHE_EINVAL, 0);
    EXPECT_LIB(simcache_release_lease(h, lease), SIMCACHE_ELEASE, 1);
    /* release of another client's lease: the daemon */
    assert_int_equal(simcache_lookup(h, e, -1, &m), 0);
    EXPECT_LIB(simcache_release_lease(h2, m.lease), SIMCACHE_EPERM, 1);
    assert_int_equal(it_check(m.data, m.size, 20), 0);
    assert_int_equal(simcache_release(h, &m), 0);
    /* wrong dimension cannot be expressed: the handle sends its own dim */
    assert_int_equal(simcache_ping(h), 0);
    assert_int_equal(simcache_ping(h2), 0);
    simcache_close(h);
    simcache_close(h2);
    check_good();
}

/* A batch whose frame would pass max_frame (the library learns it at hello):
 * the call fails, the handle does not. */
static void library_batch_over_max_frame_keeps_the_connection(void **state)
{
    (void)state;
    simcache_t *h = lib();
    const size_t n = 300;   /* 300 x 64 floats = 76800 bytes > 65536 */
    float *e = malloc(n * DIM * sizeof(float));
    simcache_match_t *m = calloc(n, sizeof *m);
    assert_non_null(e);
    assert_non_null(m);
    for (size_t i = 0; i < n; i++) good_emb((int)(i % NGOOD), e + i * DIM);
    int rc = simcache_lookup_batch(h, e, n, -1, m);
    assert_int_equal(rc, SIMCACHE_ETOOBIG);
    rc = simcache_ping(h);
    if (rc != 0)
        fail_msg("handle unusable after an over-size batch: %s (%s)", simcache_strerror(rc),
                 simcache_last_error(h));
    /* what does fit still works: 200 x 64 floats = 51200 bytes */
    assert_int_equal(simcache_lookup_batch(h, e, 200, -1, m), 200);
    for (size_t i = 0; i < 200; i++) assert_int_equal(simcache_release(h, &m[i]), 0);
    free(e);
    free(m);
    simcache_close(h);
    check_good();
}

int main(int argc, char **argv)
{
    it_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_magic_gets_eproto_and_close),
        cmocka_unit_test(bad_version_gets_eversion_and_close),
        cmocka_unit_test(frame_over_max_frame_gets_etoobig_and_close),
        cmocka_unit_test(truncated_frames_are_dropped_with_their_client),
        cmocka_unit_test(stalled_half_frame_is_disconnected_after_frame_timeout),
        cmocka_unit_test(unknown_opcodes_get_eopcode),
        cmocka_unit_test(request_with_status_set_gets_eproto),
        cmocka_unit_test(malformed_payloads_get_eproto),
        cmocka_unit_test(embedding_of_wrong_dimension_gets_edim),
        cmocka_unit_test(nan_inf_and_zero_embeddings_get_eembed),
        cmocka_unit_test(put_commit_input_errors),
        cmocka_unit_test(reserved_flag_bits_get_einval),
        cmocka_unit_test(put_begin_size_errors),
        cmocka_unit_test(release_errors),
        cmocka_unit_test(threshold_above_one_gets_einval),
        cmocka_unit_test(batch_errors),
        cmocka_unit_test(request_before_hello_gets_estate),
        cmocka_unit_test(namespace_strings_are_checked),
        cmocka_unit_test(hello_version_and_dim_are_checked),
        cmocka_unit_test(too_many_connections_get_ebusy),
        cmocka_unit_test(library_connect_mistakes),
        cmocka_unit_test(library_put_mistakes),
        cmocka_unit_test(device_calls_without_a_gpu),
        cmocka_unit_test(gpu_tier_requests_without_one),
        cmocka_unit_test(library_lookup_and_lease_mistakes),
        cmocka_unit_test(library_batch_over_max_frame_keeps_the_connection),
        cmocka_unit_test(unfinished_puts_are_limited),
    };
    return cmocka_run_group_tests_name("integration: bad input", tests, group_setup,
                                       group_teardown);
}
