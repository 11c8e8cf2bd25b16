/* test_pipeline.c - requests written back to back, before any reply is read.
 *
 * The daemon must answer in the order sent, echo each request id, attach a
 * staging fd to exactly the reply it belongs to, reassemble frames split
 * across writes, stop at the first frame it cannot trust, and keep a client
 * that reads slowly from growing its buffers without bound (back-pressure)
 * while still answering everything in order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define DIM 32
#define MODEL "pipe-model"
#define FP "pipe-fp"

static it_daemon_t D;
static uint64_t entry_id;
static float entry_emb[DIM];

static int group_setup(void **state)
{
    (void)state;
    if (it_daemon_start(&D, NULL)) return -1;
    simcache_t *h = it_connect(D.sock, MODEL, FP, NULL, DIM);
    if (!h) return -1;
    it_unit(3, entry_emb, DIM);
    entry_id = it_put(h, entry_emb, 8192, 33, "pipelined");
    simcache_close(h);
    return entry_id ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = it_daemon_stop(&D);
    it_daemon_cleanup(&D);
    return rc;
}

static int hello_sock(void)
{
    int s = it_raw_connect(D.sock);
    assert_true(s >= 0);
    assert_int_equal(it_raw_hello(s, MODEL, FP, NULL, DIM, NULL, NULL), 0);
    return s;
}

/* Append one request frame to w. */
static void add(proto_wr_t *w, uint16_t op, uint64_t req, const proto_wr_t *payload)
{
    proto_wr_frame(w, op, req, 0, payload ? payload->buf : NULL, payload ? payload->len : 0);
}

static void add_lookup(proto_wr_t *w, uint64_t req, const float *e)
{
    proto_wr_t p;
    proto_wr_init(&p);
    proto_wr_f32(&p, -1);
    proto_wr_u32(&p, 0);
    proto_wr_embedding(&p, e, DIM);
    add(w, OP_LOOKUP, req, &p);
    proto_wr_free(&p);
}

static void add_u64(proto_wr_t *w, uint16_t op, uint64_t req, uint64_t v)
{
    proto_wr_t p;
    proto_wr_init(&p);
    proto_wr_u64(&p, v);
    add(w, op, req, &p);
    proto_wr_free(&p);
}

typedef struct {
    uint16_t op;
    uint64_t req;
    int status;
} want_t;

static void recv_expect(int s, const want_t *w, it_frame_t *f)
{
    int rc = it_recv_frame(s, f, IT_TIMEOUT_MS);
    if (rc) fail_msg("no reply for req %llu (%s)", (unsigned long long)w->req, proto_op_name(w->op));
    if (f->h.req_id != w->req || f->h.opcode != (uint16_t)(w->op | OP_REPLY) ||
        f->h.status != w->status)
        fail_msg("reply out of order: got req %llu op 0x%x status %d, want req %llu op 0x%x status %d",
                 (unsigned long long)f->h.req_id, f->h.opcode, f->h.status,
                 (unsigned long long)w->req, (unsigned)(w->op | OP_REPLY), w->status);
}

static uint64_t match_lease(const it_frame_t *f, uint64_t want_id)
{
    proto_rd_t r;
    proto_rd_init(&r, f->payload, f->h.len);
    assert_int_equal(proto_rd_u32(&r), 1);
    proto_match_t m;
    proto_rd_match(&r, &m);
    assert_int_equal(proto_rd_done(&r), 0);
    assert_int_equal(m.id, want_id);
    assert_true(m.lease != 0);
    return m.lease;
}

static void mixed_requests_in_one_write_reply_in_order(void **state)
{
    (void)state;
    int s = hello_sock();
    float miss[DIM];
    it_unit(999, miss, DIM);
    proto_wr_t w, p;
    proto_wr_init(&w);
    proto_wr_init(&p);
    proto_wr_bytes(&p, "first", 5);
    add(&w, OP_PING, 1000, &p);
    add(&w, OP_STATS, 7, NULL);
    add_lookup(&w, 999999999999ull, entry_emb);          /* hit */
    add_lookup(&w, 3, miss);                             /* miss */
    add_u64(&w, OP_GET, 42, entry_id + 1000);            /* error: not found */
    add(&w, 77, 43, NULL);                               /* error: unknown opcode */
    proto_wr_reset(&p);
    proto_wr_u64(&p, 8192);
    proto_wr_u32(&p, 0);
    add(&w, OP_PUT_BEGIN, 44, &p);                       /* reply carries an fd */
    add_u64(&w, OP_GET, 45, entry_id);                   /* hit by id */
    proto_wr_reset(&p);
    proto_wr_f32(&p, -1);
    proto_wr_u32(&p, 0);
    proto_wr_u32(&p, 2);
    proto_wr_u32(&p, DIM);
    proto_wr_bytes(&p, miss, sizeof miss);
    proto_wr_bytes(&p, entry_emb, sizeof entry_emb);
    add(&w, OP_LOOKUP_BATCH, UINT64_MAX, &p);            /* miss, hit */
    proto_wr_reset(&p);
    proto_wr_bytes(&p, "last", 4);
    add(&w, OP_PING, 0, &p);
    assert_int_equal(w.err, 0);
    /* one write(2) for all ten */
    assert_int_equal(write(s, w.buf, w.len), (ssize_t)w.len);

    const want_t want[] = {
        { OP_PING, 1000, 0 },
        { OP_STATS, 7, 0 },
        { OP_LOOKUP, 999999999999ull, 0 },
        { OP_LOOKUP, 3, 0 },
        { OP_GET, 42, SIMCACHE_ENOTFOUND },
        { 77, 43, SIMCACHE_EOPCODE },
        { OP_PUT_BEGIN, 44, 0 },
        { OP_GET, 45, 0 },
        { OP_LOOKUP_BATCH, UINT64_MAX, 0 },
        { OP_PING, 0, 0 },
    };
    uint64_t leases[3] = { 0 }, token = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        it_frame_t f;
        recv_expect(s, &want[i], &f);
        /* exactly the put_begin reply carries an fd */
        if (want[i].op == OP_PUT_BEGIN) assert_true(f.fd >= 0);
        else assert_int_equal(f.fd, -1);
        proto_rd_t r;
        proto_rd_init(&r, f.payload, f.h.len);
        switch (i) {
        case 0: assert_int_equal(f.h.len, 5); assert_memory_equal(f.payload, "first", 5); break;
        case 2: leases[0] = match_lease(&f, entry_id); break;
        case 3: assert_int_equal(proto_rd_u32(&r), 0); assert_int_equal(proto_rd_done(&r), 0); break;
        case 6: token = proto_rd_u64(&r); assert_true(token != 0); break;
        case 7: {
            proto_match_t m;
            proto_rd_match(&r, &m);
            assert_int_equal(m.id, entry_id);
            leases[1] = m.lease;
            break;
        }
        case 8: {
            assert_int_equal(proto_rd_u32(&r), 2);
            assert_int_equal(proto_rd_u32(&r), 0);
            assert_int_equal(proto_rd_u32(&r), 1);
            proto_match_t m;
            proto_rd_match(&r, &m);
            assert_int_equal(m.id, entry_id);
            leases[2] = m.lease;
            assert_int_equal(proto_rd_done(&r), 0);
            break;
        }
        case 9: assert_int_equal(f.h.len, 4); assert_memory_equal(f.payload, "last", 4); break;
        default: break;
        }
        it_frame_free(&f);
    }
    assert_true(leases[0] && leases[1] && leases[2]);
    assert_true(leases[0] != leases[1] && leases[1] != leases[2]);
    assert_int_equal(it_admin_u64(&D, "stats", "leases_active"), 3);

    /* Second burst: release all three (one twice), abort the put. */
    proto_wr_reset(&w);
    add_u64(&w, OP_RELEASE, 50, leases[2]);
    add_u64(&w, OP_RELEASE, 51, leases[0]);
    add_u64(&w, OP_RELEASE, 52, leases[0]);
    add_u64(&w, OP_PUT_ABORT, 53, token);
    add_u64(&w, OP_RELEASE, 54, leases[1]);
    assert_int_equal(write(s, w.buf, w.len), (ssize_t)w.len);
    const want_t want2[] = {
        { OP_RELEASE, 50, 0 },      { OP_RELEASE, 51, 0 }, { OP_RELEASE, 52, SIMCACHE_ELEASE },
        { OP_PUT_ABORT, 53, 0 },    { OP_RELEASE, 54, 0 },
    };
    for (size_t i = 0; i < sizeof want2 / sizeof want2[0]; i++) {
        it_frame_t f;
        recv_expect(s, &want2[i], &f);
        it_frame_free(&f);
    }
    assert_int_equal(it_admin_u64(&D, "stats", "leases_active"), 0);
    proto_wr_free(&p);
    proto_wr_free(&w);
    close(s);
}

static void frames_split_across_writes_are_reassembled(void **state)
{
    (void)state;
    int s = hello_sock();
    proto_wr_t w;
    proto_wr_init(&w);
    const int n = 300;
    for (int i = 0; i < n; i++) {
        if (i % 3 == 0) {
            add_lookup(&w, (uint64_t)i, entry_emb);
        } else {
            proto_wr_t p;
            proto_wr_init(&p);
            proto_wr_u64(&p, (uint64_t)i * 7919);
            add(&w, OP_PING, (uint64_t)i, &p);
            proto_wr_free(&p);
        }
    }
    /* Odd-sized pieces, so headers and payloads are cut everywhere. */
    size_t off = 0, piece = 1;
    while (off < w.len) {
        size_t k = piece < w.len - off ? piece : w.len - off;
        assert_int_equal(it_send_all(s, w.buf + off, k), 0);
        off += k;
        piece = piece * 3 % 97 + 1;
    }
    uint64_t leases = 0;
    for (int i = 0; i < n; i++) {
        want_t want = { i % 3 == 0 ? OP_LOOKUP : OP_PING, (uint64_t)i, 0 };
        it_frame_t f;
        recv_expect(s, &want, &f);
        if (i % 3 == 0) {
            (void)match_lease(&f, entry_id);
            leases++;
        } else {
            uint64_t v;
            assert_int_equal(f.h.len, 8);
            memcpy(&v, f.payload, 8);
            assert_int_equal(v, (uint64_t)i * 7919);
        }
        it_frame_free(&f);
    }
    assert_int_equal(it_admin_u64(&D, "stats", "leases_active"), leases);
    proto_wr_free(&w);
    close(s);
    assert_int_equal(it_admin_wait_u64(&D, "stats", "leases_active", 0), 0);
}

static void pipeline_stops_at_an_untrusted_frame(void **state)
{
    (void)state;
    int s = hello_sock();
    proto_wr_t w;
    proto_wr_init(&w);
    add(&w, OP_PING, 1, NULL);
    add_lookup(&w, 2, entry_emb);
    size_t bad = w.len;
    add(&w, OP_PING, 3, NULL);
    w.buf[bad] ^= 0xff;   /* spoil frame 3's magic */
    add(&w, OP_PING, 4, NULL);
    add(&w, OP_STATS, 5, NULL);
    assert_int_equal(write(s, w.buf, w.len), (ssize_t)w.len);
    const want_t want[] = { { OP_PING, 1, 0 }, { OP_LOOKUP, 2, 0 }, { OP_PING, 3, SIMCACHE_EPROTO } };
    for (size_t i = 0; i < 3; i++) {
        it_frame_t f;
        recv_expect(s, &want[i], &f);
        it_frame_free(&f);
    }
    /* nothing for 4 and 5: the connection is closed, its lease released */
    assert_int_equal(it_wait_eof(s, IT_TIMEOUT_MS), 1);
    proto_wr_free(&w);
    close(s);
    assert_int_equal(it_admin_wait_u64(&D, "stats", "leases_active", 0), 0);
}

/* A client that writes far more than it reads: the daemon stops reading it
 * (instead of buffering without bound) and still answers all, in order. */
#define BP_COUNT 4000
#define BP_PAYLOAD 4096

typedef struct {
    int s;
    int err;
} bp_writer_t;

static void *bp_write(void *arg)
{
    bp_writer_t *b = arg;
    proto_wr_t w;
    proto_wr_init(&w);
    uint8_t *payload = malloc(BP_PAYLOAD);
    if (!payload) {
        b->err = 1;
        return NULL;
    }
    for (int i = 0; i < BP_COUNT; i++) {
        proto_wr_reset(&w);
        it_fill(payload, BP_PAYLOAD, (uint64_t)i);
        proto_wr_frame(&w, OP_PING, (uint64_t)i + 1, 0, payload, BP_PAYLOAD);
        if (w.err || it_send_all(b->s, w.buf, w.len)) {
            b->err = 1;
            break;
        }
    }
    free(payload);
    proto_wr_free(&w);
    return NULL;
}

static void slow_reader_gets_every_reply_in_order(void **state)
{
    (void)state;
    int s = hello_sock();
    bp_writer_t b = { s, 0 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, bp_write, &b), 0);
    /* Let the writer run ahead: 16 MiB of requests, replies not read yet. */
    it_sleep_ms(200);
    for (int i = 0; i < BP_COUNT; i++) {
        want_t want = { OP_PING, (uint64_t)i + 1, 0 };
        it_frame_t f;
        recv_expect(s, &want, &f);
        assert_int_equal(f.h.len, BP_PAYLOAD);
        assert_int_equal(it_check(f.payload, BP_PAYLOAD, (uint64_t)i), 0);
        it_frame_free(&f);
    }
    pthread_join(t, NULL);
    assert_int_equal(b.err, 0);
    close(s);
    /* others were served all along */
    simcache_t *h = it_connect(D.sock, MODEL, FP, NULL, DIM);
    assert_non_null(h);
    assert_int_equal(simcache_ping(h), 0);
    simcache_close(h);
}

int main(int argc, char **argv)
{
    it_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mixed_requests_in_one_write_reply_in_order),
        cmocka_unit_test(frames_split_across_writes_are_reassembled),
        cmocka_unit_test(pipeline_stops_at_an_untrusted_frame),
        cmocka_unit_test(slow_reader_gets_every_reply_in_order),
    };
    return cmocka_run_group_tests_name("integration: pipelining", tests, group_setup,
                                       group_teardown);
}
