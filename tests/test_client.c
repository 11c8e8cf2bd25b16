/* test_client.c - libsimcache-client without a daemon: result code names,
 * layout sizes, argument checks, a missing socket, and reply handling
 * against a tiny scripted stand-in for simcached on a temporary socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "proto.h"
#include "simcache.h"

#define DIM 4
#define ARENA_SIZE (1u << 20)

/* ---- result codes ---- */

static void strerror_names_every_code(void **state)
{
    static const struct { int code; const char *name; } codes[] = {
        { SIMCACHE_OK, "SIMCACHE_OK" }, { SIMCACHE_MISS, "SIMCACHE_MISS" },
        { SIMCACHE_EINVAL, "SIMCACHE_EINVAL" }, { SIMCACHE_EPROTO, "SIMCACHE_EPROTO" },
        { SIMCACHE_EVERSION, "SIMCACHE_EVERSION" }, { SIMCACHE_ETOOBIG, "SIMCACHE_ETOOBIG" },
        { SIMCACHE_EOPCODE, "SIMCACHE_EOPCODE" }, { SIMCACHE_EDIM, "SIMCACHE_EDIM" },
        { SIMCACHE_EEMBED, "SIMCACHE_EEMBED" }, { SIMCACHE_ELAYOUT, "SIMCACHE_ELAYOUT" },
        { SIMCACHE_ENOPUT, "SIMCACHE_ENOPUT" }, { SIMCACHE_ELEASE, "SIMCACHE_ELEASE" },
        { SIMCACHE_EPERM, "SIMCACHE_EPERM" }, { SIMCACHE_ENOSPC, "SIMCACHE_ENOSPC" },
        { SIMCACHE_ENAMESPACE, "SIMCACHE_ENAMESPACE" }, { SIMCACHE_EBUSY, "SIMCACHE_EBUSY" },
        { SIMCACHE_ENOTFOUND, "SIMCACHE_ENOTFOUND" }, { SIMCACHE_EIO, "SIMCACHE_EIO" },
        { SIMCACHE_ENOMEM, "SIMCACHE_ENOMEM" }, { SIMCACHE_ECLOSED, "SIMCACHE_ECLOSED" },
        { SIMCACHE_ESTATE, "SIMCACHE_ESTATE" }, { SIMCACHE_ELIMIT, "SIMCACHE_ELIMIT" },
        { SIMCACHE_ESHUTDOWN, "SIMCACHE_ESHUTDOWN" }, { SIMCACHE_ENODEV, "SIMCACHE_ENODEV" },
        { SIMCACHE_ECORRUPT, "SIMCACHE_ECORRUPT" },
    };
    size_t n = sizeof codes / sizeof codes[0];

    (void)state;
    for (size_t i = 0; i < n; i++) {
        const char *s = simcache_strerror(codes[i].code);
        assert_non_null(s);
        size_t k = strlen(codes[i].name);
        if (strncmp(s, codes[i].name, k) != 0 || s[k] != ':')
            fail_msg("code %d is named '%s', expected '%s: ...'", codes[i].code, s, codes[i].name);
        assert_true(strlen(s) > k + 3);   /* a description follows the name */
    }
}

static void strerror_of_unknown_code_is_never_null(void **state)
{
    const int unknown[] = { 2, 77, -24, -1000, INT_MAX, INT_MIN + 1, INT_MIN };

    (void)state;
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *s = simcache_strerror(unknown[i]);
        assert_non_null(s);
        assert_non_null(strstr(s, "unknown"));
    }
}

/* ---- layouts ---- */

static void layout_bytes_of_a_real_model(void **state)
{
    /* Llama-3-8B, bf16, K and V, 32 layers, 8 KV heads of 128, 1000 tokens. */
    simcache_layout_t l = { SIMCACHE_DTYPE_BF16, 2, 32, 8, 128, 1000 };

    (void)state;
    assert_true(simcache_layout_bytes(&l) == 2ull * 2 * 32 * 8 * 128 * 1000);
}

static void layout_bytes_of_null_or_invalid_is_zero(void **state)
{
    simcache_layout_t l = { SIMCACHE_DTYPE_F16, 2, 1, 1, 1, 1 };

    (void)state;
    assert_true(simcache_layout_bytes(NULL) == 0);
    l.dtype = 0;
    assert_true(simcache_layout_bytes(&l) == 0);
    l.dtype = 99;
    assert_true(simcache_layout_bytes(&l) == 0);
    l.dtype = SIMCACHE_DTYPE_F16;
    l.tokens = 0;
    assert_true(simcache_layout_bytes(&l) == 0);
    l.tokens = 1;
    l.parts = 0;
    assert_true(simcache_layout_bytes(&l) == 0);
}

static void layout_bytes_overflow_is_zero(void **state)
{
    simcache_layout_t l = { SIMCACHE_DTYPE_F32, 2, UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX };

    (void)state;
    assert_true(simcache_layout_bytes(&l) == 0);
    simcache_layout_t edge = { SIMCACHE_DTYPE_F16, 2, 1u << 31, 1u << 31, 1, 1 };   /* 2^64 */
    assert_true(simcache_layout_bytes(&edge) == 0);
    edge.parts = 1;                                                               /* 2^63 */
    assert_true(simcache_layout_bytes(&edge) == 1ull << 63);
}

/* ---- options and connect ---- */

static void opts_init_gives_no_gpu_no_timeout_no_tenant(void **state)
{
    simcache_opts_t o;

    (void)state;
    memset(&o, 0x5a, sizeof o);
    simcache_opts_init(&o);
    assert_null(o.socket_path);
    assert_null(o.model);
    assert_null(o.layout_fingerprint);
    assert_null(o.tenant);
    assert_int_equal(o.dim, 0);
    assert_int_equal(o.gpu_device, -1);
    assert_int_equal(o.timeout_ms, 0);
}

static simcache_opts_t opts_for(const char *path)
{
    simcache_opts_t o;
    simcache_opts_init(&o);
    o.socket_path = path;
    o.model = "test-model";
    o.layout_fingerprint = "kv:f32:1x1x1x4";
    o.dim = DIM;
    o.timeout_ms = 5000;
    return o;
}

static void connect_with_bad_options_is_einval_without_handle(void **state)
{
    simcache_opts_t o = opts_for("/nonexistent/simcache.sock");
    simcache_t *h = (simcache_t *)&h;

    (void)state;
    assert_int_equal(simcache_connect(NULL, &h), SIMCACHE_EINVAL);
    assert_null(h);
    o.model = NULL;
    assert_int_equal(simcache_connect(&o, &h), SIMCACHE_EINVAL);
    assert_null(h);
    o = opts_for("/nonexistent/simcache.sock");
    o.layout_fingerprint = NULL;
    assert_int_equal(simcache_connect(&o, &h), SIMCACHE_EINVAL);
    assert_null(h);
    o = opts_for("/nonexistent/simcache.sock");
    o.dim = 0;
    assert_int_equal(simcache_connect(&o, &h), SIMCACHE_EINVAL);
    assert_null(h);
    o.dim = SIMCACHE_MAX_DIM + 1;
    assert_int_equal(simcache_connect(&o, &h), SIMCACHE_EINVAL);
    assert_null(h);
}

static void connect_with_name_over_wire_limit_is_enamespace(void **state)
{
    simcache_opts_t o = opts_for("/nonexistent/simcache.sock");
    simcache_t *h = NULL;
    char *big = malloc(70000);

    (void)state;
    assert_non_null(big);
    memset(big, 'm', 69999);
    big[69999] = 0;
    o.model = big;
    assert_int_equal(simcache_connect(&o, &h), SIMCACHE_ENAMESPACE);
    assert_null(h);
    o = opts_for("/nonexistent/simcache.sock");
    o.tenant = big;
    assert_int_equal(simcache_connect(&o, &h), SIMCACHE_ENAMESPACE);
    assert_null(h);
    free(big);
}

/* A NULL result pointer is a bad argument like every other NULL the API
 * refuses; it must not be written through. Run in a child: today it crashes. */
static void connect_with_null_out_is_einval(void **state)
{
    (void)state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Die of the signal here rather than return into the test runner. */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        simcache_opts_t o = opts_for("/nonexistent/simcache.sock");
        _exit(simcache_connect(&o, NULL) == SIMCACHE_EINVAL ? 0 : 1);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("simcache_connect(opts, NULL) %s (want SIMCACHE_EINVAL)",
                 WIFSIGNALED(st) ? "crashed" : "did not return SIMCACHE_EINVAL");
}

static void connect_to_missing_socket_is_eio_with_useful_message(void **state)
{
    const char *path = "/nonexistent-simcache-dir/simcached.sock";
    simcache_opts_t o = opts_for(path);
    simcache_t *h = NULL;

    (void)state;
    assert_int_equal(simcache_connect(&o, &h), SIMCACHE_EIO);
    /* The handle stays so that simcache_last_error() can explain. */
    assert_non_null(h);
    const char *e = simcache_last_error(h);
    assert_non_null(strstr(e, path));
    assert_non_null(strstr(e, "No such file"));
    assert_non_null(strstr(e, "simcached running"));
    /* The handle is closed: requests fail without touching a socket. */
    assert_int_equal(simcache_ping(h), SIMCACHE_ECLOSED);
    simcache_close(h);
}

static void connect_uses_simcache_socket_from_environment(void **state)
{
    const char *path = "/nonexistent-simcache-env/from-env.sock";
    simcache_opts_t o = opts_for(NULL);
    simcache_t *h = NULL;
    char *old = getenv("SIMCACHE_SOCKET") ? strdup(getenv("SIMCACHE_SOCKET")) : NULL;

    (void)state;
    setenv("SIMCACHE_SOCKET", path, 1);
    assert_int_equal(simcache_connect(&o, &h), SIMCACHE_EIO);
    assert_non_null(strstr(simcache_last_error(h), path));
    simcache_close(h);
    if (old) setenv("SIMCACHE_SOCKET", old, 1);
    else unsetenv("SIMCACHE_SOCKET");
    free(old);
}

static void connect_with_too_long_socket_path_is_einval(void **state)
{
    char path[200];
    simcache_opts_t o;
    simcache_t *h = NULL;

    (void)state;
    path[0] = '/';
    memset(path + 1, 'p', sizeof path - 2);
    path[sizeof path - 1] = 0;
    o = opts_for(path);
    assert_int_equal(simcache_connect(&o, &h), SIMCACHE_EINVAL);
    assert_non_null(h);
    assert_non_null(strstr(simcache_last_error(h), "too long"));
    simcache_close(h);
}

static void last_error_and_close_accept_null(void **state)
{
    (void)state;
    assert_non_null(simcache_last_error(NULL));
    simcache_close(NULL);
}

/* ---- argument checks on a handle whose connection failed ---- */

static simcache_t *closed_handle(void)
{
    simcache_opts_t o = opts_for("/nonexistent-simcache-dir/simcached.sock");
    simcache_t *h = NULL;
    assert_int_equal(simcache_connect(&o, &h), SIMCACHE_EIO);
    assert_non_null(h);
    return h;
}

static void calls_without_handle_are_einval(void **state)
{
    float e[DIM] = { 1, 0, 0, 0 };
    simcache_layout_t l = { SIMCACHE_DTYPE_F32, 1, 1, 1, 1, 1 };
    simcache_match_t m;
    simcache_stats_t st;
    uint64_t id, token;
    void *buf;

    (void)state;
    assert_int_equal(simcache_put(NULL, e, &l, e, 4, SIMCACHE_HOST_MEMORY, &id), SIMCACHE_EINVAL);
    assert_int_equal(simcache_put_ex(NULL, e, &l, e, 4, SIMCACHE_HOST_MEMORY, NULL, &id),
                     SIMCACHE_EINVAL);
    assert_int_equal(simcache_put_begin(NULL, 4, &buf, &token), SIMCACHE_EINVAL);
    assert_int_equal(simcache_put_commit(NULL, 1, e, &l, NULL, &id), SIMCACHE_EINVAL);
    assert_int_equal(simcache_put_abort(NULL, 1), SIMCACHE_EINVAL);
    assert_int_equal(simcache_lookup(NULL, e, 0.8f, &m), SIMCACHE_EINVAL);
    assert_int_equal(simcache_lookup_batch(NULL, e, 1, 0.8f, &m), SIMCACHE_EINVAL);
    assert_int_equal(simcache_get(NULL, 1, &m), SIMCACHE_EINVAL);
    assert_int_equal(simcache_release(NULL, &m), SIMCACHE_EINVAL);
    assert_int_equal(simcache_release_lease(NULL, 1), SIMCACHE_EINVAL);
    assert_int_equal(simcache_delete(NULL, 1), SIMCACHE_EINVAL);
    assert_int_equal(simcache_stats(NULL, &st), SIMCACHE_EINVAL);
    assert_int_equal(simcache_ping(NULL), SIMCACHE_EINVAL);
}

static void null_or_empty_arguments_are_einval(void **state)
{
    simcache_t *h = closed_handle();
    float e[DIM] = { 1, 0, 0, 0 };
    simcache_layout_t l = { SIMCACHE_DTYPE_F32, 1, 1, 1, 1, 1 };
    simcache_match_t m[2];
    uint64_t id, token;
    void *buf;

    (void)state;
    assert_int_equal(simcache_put(h, NULL, &l, e, 4, SIMCACHE_HOST_MEMORY, &id), SIMCACHE_EINVAL);
    assert_int_equal(simcache_put(h, e, NULL, e, 4, SIMCACHE_HOST_MEMORY, &id), SIMCACHE_EINVAL);
    assert_int_equal(simcache_put(h, e, &l, NULL, 4, SIMCACHE_HOST_MEMORY, &id), SIMCACHE_EINVAL);
    assert_int_equal(simcache_put(h, e, &l, e, 0, SIMCACHE_HOST_MEMORY, &id), SIMCACHE_EINVAL);
    assert_int_equal(simcache_put_begin(h, 0, &buf, &token), SIMCACHE_EINVAL);
    assert_int_equal(simcache_put_begin(h, 4, NULL, &token), SIMCACHE_EINVAL);
    assert_int_equal(simcache_put_begin(h, 4, &buf, NULL), SIMCACHE_EINVAL);
    assert_int_equal(simcache_put_commit(h, 1, NULL, &l, NULL, &id), SIMCACHE_EINVAL);
    assert_int_equal(simcache_put_commit(h, 1, e, NULL, NULL, &id), SIMCACHE_EINVAL);
    assert_int_equal(simcache_lookup(h, NULL, 0.8f, m), SIMCACHE_EINVAL);
    assert_int_equal(simcache_lookup(h, e, 0.8f, NULL), SIMCACHE_EINVAL);
    assert_int_equal(simcache_lookup_batch(h, NULL, 1, 0.8f, m), SIMCACHE_EINVAL);
    assert_int_equal(simcache_lookup_batch(h, e, 1, 0.8f, NULL), SIMCACHE_EINVAL);
    assert_int_equal(simcache_lookup_batch(h, e, 0, 0.8f, m), SIMCACHE_EINVAL);
    assert_int_equal(simcache_get(h, 1, NULL), SIMCACHE_EINVAL);
    assert_int_equal(simcache_release(h, NULL), SIMCACHE_EINVAL);
    assert_int_equal(simcache_stats(h, NULL), SIMCACHE_EINVAL);
    simcache_close(h);
}

static void put_checks_location_and_layout_before_sending(void **state)
{
    simcache_t *h = closed_handle();
    float e[DIM] = { 1, 0, 0, 0 };
    simcache_layout_t l = { SIMCACHE_DTYPE_F32, 1, 1, 1, 1, 2 };   /* 8 bytes */
    uint8_t kv[16] = { 0 };
    uint64_t id = 0;

    (void)state;
    assert_int_equal(simcache_put(h, e, &l, kv, 8, SIMCACHE_DEVICE_MEMORY, &id), SIMCACHE_ENODEV);
    assert_non_null(strstr(simcache_last_error(h), "GPU"));
    assert_int_equal(simcache_put(h, e, &l, kv, 8, (simcache_location_t)7, &id), SIMCACHE_EINVAL);
    assert_non_null(strstr(simcache_last_error(h), "kv_location"));
    assert_int_equal(simcache_put(h, e, &l, kv, 16, SIMCACHE_HOST_MEMORY, &id), SIMCACHE_ELAYOUT);
    assert_non_null(strstr(simcache_last_error(h), "8 bytes"));
    assert_non_null(strstr(simcache_last_error(h), "16"));
    simcache_layout_t three = { SIMCACHE_DTYPE_F32, 3, 1, 1, 1, 1 };
    assert_int_equal(simcache_put(h, e, &three, kv, 12, SIMCACHE_HOST_MEMORY, &id), SIMCACHE_ELAYOUT);
    /* A valid put reaches the (closed) connection. */
    assert_int_equal(simcache_put(h, e, &l, kv, 8, SIMCACHE_HOST_MEMORY, &id), SIMCACHE_ECLOSED);
    simcache_close(h);
}

static void batch_over_limit_is_etoobig(void **state)
{
    simcache_t *h = closed_handle();
    float e[DIM] = { 1, 0, 0, 0 };
    simcache_match_t m;

    (void)state;
    assert_int_equal(simcache_lookup_batch(h, e, SIMCACHE_MAX_BATCH + 1, 0.8f, &m), SIMCACHE_ETOOBIG);
    assert_non_null(strstr(simcache_last_error(h), "1024"));
    simcache_close(h);
}

static void commit_or_abort_of_unknown_put_is_enoput(void **state)
{
    simcache_t *h = closed_handle();
    float e[DIM] = { 1, 0, 0, 0 };
    simcache_layout_t l = { SIMCACHE_DTYPE_F32, 1, 1, 1, 1, 1 };
    uint64_t id;

    (void)state;
    assert_int_equal(simcache_put_commit(h, 12345, e, &l, NULL, &id), SIMCACHE_ENOPUT);
    assert_non_null(strstr(simcache_last_error(h), "12345"));
    /* Token 0 is never a put, even though free slots hold token 0. */
    assert_int_equal(simcache_put_commit(h, 0, e, &l, NULL, &id), SIMCACHE_ENOPUT);
    assert_int_equal(simcache_put_abort(h, 0), SIMCACHE_ENOPUT);
    assert_int_equal(simcache_put_abort(h, 777), SIMCACHE_ENOPUT);
    simcache_close(h);
}

static void release_of_match_without_lease_is_einval(void **state)
{
    simcache_t *h = closed_handle();
    simcache_match_t m;

    (void)state;
    memset(&m, 0, sizeof m);
    assert_int_equal(simcache_release(h, &m), SIMCACHE_EINVAL);
    assert_non_null(strstr(simcache_last_error(h), "no lease"));
    simcache_close(h);
}

static void requests_on_closed_handle_are_eclosed_and_clear_the_match(void **state)
{
    simcache_t *h = closed_handle();
    float e[DIM] = { 1, 0, 0, 0 };
    simcache_match_t m;
    simcache_stats_t st;
    uint64_t token;
    void *buf;

    (void)state;
    memset(&m, 0x5a, sizeof m);
    assert_int_equal(simcache_lookup(h, e, 0.8f, &m), SIMCACHE_ECLOSED);
    assert_true(m.lease == 0);
    assert_null(m.data);
    assert_int_equal(m.meta_len, 0);
    assert_int_equal(simcache_get(h, 1, &m), SIMCACHE_ECLOSED);
    assert_int_equal(simcache_delete(h, 1), SIMCACHE_ECLOSED);
    assert_int_equal(simcache_release_lease(h, 1), SIMCACHE_ECLOSED);
    assert_int_equal(simcache_stats(h, &st), SIMCACHE_ECLOSED);
    assert_int_equal(simcache_put_begin(h, 64, &buf, &token), SIMCACHE_ECLOSED);
    assert_non_null(strstr(simcache_last_error(h), "closed"));
    simcache_close(h);
}

/* ---- against a scripted stand-in for the daemon ----
 *
 * The stand-in writes its frames with its own little encoder, not with the
 * codec: it needs nothing from the library but its public API, and it checks
 * the client against the byte layout of docs/protocol.md independently. */

typedef struct {
    uint8_t b[2048];
    size_t n;
} msg_t;

static void put_le(msg_t *m, uint64_t v, int bytes)
{
    assert_true(m->n + (size_t)bytes <= sizeof m->b);
    for (int i = 0; i < bytes; i++) m->b[m->n++] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put_f32(msg_t *m, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    put_le(m, u, 4);
}

static void put_str(msg_t *m, const char *s)
{
    size_t n = strlen(s);
    put_le(m, n, 2);
    assert_true(m->n + n <= sizeof m->b);
    memcpy(m->b + m->n, s, n);
    m->n += n;
}

typedef struct {
    uint64_t id, lease, offset, size;
    float similarity;
    uint32_t tier;
    simcache_layout_t layout;
    const char *meta;
} fake_match_t;

static void put_match(msg_t *m, const fake_match_t *x)
{
    size_t meta_len = x->meta ? strlen(x->meta) : 0;
    put_le(m, x->id, 8);
    put_le(m, x->lease, 8);
    put_f32(m, x->similarity);
    put_le(m, x->tier, 4);
    put_le(m, x->offset, 8);
    put_le(m, x->size, 8);
    put_le(m, x->layout.dtype, 4);
    put_le(m, x->layout.parts, 4);
    put_le(m, x->layout.layers, 4);
    put_le(m, x->layout.kv_heads, 4);
    put_le(m, x->layout.head_dim, 4);
    put_le(m, x->layout.tokens, 4);
    put_le(m, meta_len, 4);
    memcpy(m->b + m->n, x->meta ? x->meta : "", meta_len);
    m->n += meta_len;
}

typedef struct {
    uint16_t opcode;
    uint64_t req_id;
    uint32_t len;
} fake_req_t;

typedef struct fake fake_t;
/* Answer one request; return 0 to keep going, -1 to hang up. */
typedef int (*fake_answer_fn)(fake_t *f, int fd, const fake_req_t *req);

struct fake {
    char dir[64];
    char path[sizeof ((struct sockaddr_un *)0)->sun_path];
    int lfd;
    pthread_t thread;
    fake_answer_fn answer;
    int arena_fd;
    int requests;
    uint16_t last_op;
    uint64_t last_u64;      /* first 8 payload bytes of the last request */
    uint8_t head[16];       /* first 16 payload bytes of the last request (0-padded) */
};

static int read_n(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n) {
        ssize_t k = read(fd, b, n);
        if (k <= 0) return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Send header + payload in one sendmsg, with pass_fd (if >= 0) attached. */
static int send_frame(int fd, uint16_t op, uint64_t req_id, int32_t status, const msg_t *payload,
                      int pass_fd)
{
    msg_t w = { .n = 0 };
    size_t len = payload ? payload->n : 0;
    put_le(&w, PROTO_MAGIC, 4);
    put_le(&w, PROTO_VERSION, 2);
    put_le(&w, op, 2);
    put_le(&w, req_id, 8);
    put_le(&w, len, 4);
    put_le(&w, (uint32_t)status, 4);
    assert_true(w.n + len <= sizeof w.b);
    if (len) memcpy(w.b + w.n, payload->b, len);
    w.n += len;
    struct iovec iov = { w.b, w.n };
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (pass_fd >= 0) {
        memset(&u, 0, sizeof u);
        msg.msg_control = u.buf;
        msg.msg_controllen = sizeof u.buf;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &pass_fd, sizeof pass_fd);
    }
    return sendmsg(fd, &msg, MSG_NOSIGNAL) == (ssize_t)w.n ? 0 : -1;
}

static int send_error(int fd, const fake_req_t *req, int32_t code, const char *text)
{
    msg_t m = { .n = 0 };
    put_str(&m, text);
    return send_frame(fd, req->opcode | OP_REPLY, req->req_id, code, &m, -1);
}

static int send_hello_ok(fake_t *f, int fd, uint64_t req_id, int with_arena)
{
    msg_t m = { .n = 0 };
    put_le(&m, PROTO_VERSION, 2);
    put_le(&m, 1, 2);                       /* tiers: host */
    put_le(&m, 1u << 20, 4);                /* max_payload */
    put_le(&m, 7, 8);                       /* client_id */
    put_le(&m, ARENA_SIZE, 8);
    put_f32(&m, 0.8f);
    put_le(&m, SIMCACHE_MAX_BATCH, 4);
    return send_frame(fd, OP_HELLO | OP_REPLY, req_id, 0, &m, with_arena ? f->arena_fd : -1);
}

static void *fake_main(void *arg)
{
    fake_t *f = arg;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0) return NULL;
    uint8_t hb[PROTO_HDR_SIZE];
    uint8_t *payload = malloc(1 << 20);
    while (payload && read_n(fd, hb, sizeof hb) == 0) {
        fake_req_t req = { (uint16_t)get_le(hb + 6, 2), get_le(hb + 8, 8),
                           (uint32_t)get_le(hb + 16, 4) };
        if (get_le(hb, 4) != PROTO_MAGIC || req.len > (1u << 20)) break;
        if (read_n(fd, payload, req.len)) break;
        f->requests++;
        f->last_op = req.opcode;
        if (req.len >= 8) f->last_u64 = get_le(payload, 8);
        memset(f->head, 0, sizeof f->head);
        memcpy(f->head, payload, req.len < sizeof f->head ? req.len : sizeof f->head);
        if (f->answer(f, fd, &req)) break;
    }
    free(payload);
    close(fd);
    return NULL;
}

static void fake_start(fake_t *f, fake_answer_fn answer)
{
    memset(f, 0, sizeof *f);
    f->answer = answer;
    snprintf(f->dir, sizeof f->dir, "/tmp/simcache-test-client-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/fake.sock", f->dir);
    f->arena_fd = memfd_create("test-arena", MFD_CLOEXEC);
    assert_true(f->arena_fd >= 0);
    assert_int_equal(ftruncate(f->arena_fd, ARENA_SIZE), 0);
    f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f->lfd >= 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    memcpy(sun.sun_path, f->path, sizeof sun.sun_path);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&sun, sizeof sun), 0);
    assert_int_equal(listen(f->lfd, 1), 0);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(fake_t *f)
{
    /* The client has closed its end, so the thread sees EOF and returns. */
    pthread_join(f->thread, NULL);
    close(f->lfd);
    close(f->arena_fd);
    unlink(f->path);
    rmdir(f->dir);
}

static int answer_hello_refused(fake_t *f, int fd, const fake_req_t *req)
{
    (void)f;
    send_error(fd, req, SIMCACHE_ENAMESPACE, "namespace strings must be UTF-8");
    return -1;
}

static void daemon_refusal_keeps_handle_with_daemon_message(void **state)
{
    fake_t f;
    simcache_t *h = NULL;

    (void)state;
    fake_start(&f, answer_hello_refused);
    simcache_opts_t o = opts_for(f.path);
    assert_int_equal(simcache_connect(&o, &h), SIMCACHE_ENAMESPACE);
    assert_non_null(h);
    assert_non_null(strstr(simcache_last_error(h), "hello: namespace strings must be UTF-8"));
    simcache_close(h);
    fake_stop(&f);
    assert_int_equal(f.requests, 1);
    assert_int_equal(f.last_op, OP_HELLO);
}

static int answer_hello_without_arena(fake_t *f, int fd, const fake_req_t *req)
{
    send_hello_ok(f, fd, req->req_id, 0);
    return 0;
}

static void hello_reply_without_arena_is_eproto(void **state)
{
    fake_t f;
    simcache_t *h = NULL;

    (void)state;
    fake_start(&f, answer_hello_without_arena);
    simcache_opts_t o = opts_for(f.path);
    assert_int_equal(simcache_connect(&o, &h), SIMCACHE_EPROTO);
    assert_non_null(strstr(simcache_last_error(h), "no arena"));
    simcache_close(h);
    fake_stop(&f);
}

static int answer_bad_magic(fake_t *f, int fd, const fake_req_t *req)
{
    uint8_t junk[PROTO_HDR_SIZE];
    (void)f;
    (void)req;
    memset(junk, 'J', sizeof junk);
    ssize_t k = write(fd, junk, sizeof junk);
    (void)k;
    return 0;
}

static void reply_with_bad_magic_is_eproto(void **state)
{
    fake_t f;
    simcache_t *h = NULL;

    (void)state;
    fake_start(&f, answer_bad_magic);
    simcache_opts_t o = opts_for(f.path);
    assert_int_equal(simcache_connect(&o, &h), SIMCACHE_EPROTO);
    assert_non_null(strstr(simcache_last_error(h), "bad reply header"));
    simcache_close(h);
    fake_stop(&f);
}

static int answer_wrong_req_id(fake_t *f, int fd, const fake_req_t *req)
{
    send_hello_ok(f, fd, req->req_id + 100, 1);
    return 0;
}

static void reply_to_another_request_is_eproto(void **state)
{
    fake_t f;
    simcache_t *h = NULL;

    (void)state;
    fake_start(&f, answer_wrong_req_id);
    simcache_opts_t o = opts_for(f.path);
    assert_int_equal(simcache_connect(&o, &h), SIMCACHE_EPROTO);
    assert_non_null(strstr(simcache_last_error(h), "out of step"));
    simcache_close(h);
    fake_stop(&f);
}

/* A session: hello, then lookups answered by the match in match_reply. */
static fake_match_t match_reply;
static int match_found;

static int match_trailing;   /* bytes after the match: a malformed reply */

static int answer_session(fake_t *f, int fd, const fake_req_t *req)
{
    msg_t m = { .n = 0 };
    switch (req->opcode) {
    case OP_HELLO:
        return send_hello_ok(f, fd, req->req_id, 1);
    case OP_LOOKUP:
        put_le(&m, (uint32_t)match_found, 4);
        if (match_found) put_match(&m, &match_reply);
        for (int i = 0; i < match_trailing; i++) put_le(&m, 0, 1);
        return send_frame(fd, OP_LOOKUP | OP_REPLY, req->req_id, 0, &m, -1);
    case OP_RELEASE:
    case OP_PING:
        return send_frame(fd, req->opcode | OP_REPLY, req->req_id, 0, NULL, -1);
    default:
        return send_error(fd, req, SIMCACHE_EOPCODE, "not in this script");
    }
}

static simcache_t *session(fake_t *f)
{
    simcache_t *h = NULL;
    fake_start(f, answer_session);
    simcache_opts_t o = opts_for(f->path);
    if (simcache_connect(&o, &h) != 0) fail_msg("connect: %s", simcache_last_error(h));
    return h;
}

static void lookup_hit_points_into_the_arena_and_release_sends_lease(void **state)
{
    fake_t f;
    float e[DIM] = { 1, 0, 0, 0 };
    simcache_match_t m;
    const char meta[] = "tokens=1000";

    (void)state;
    match_found = 1;
    match_reply = (fake_match_t){ .id = 5, .lease = 9, .similarity = 0.97f,
                                  .tier = SIMCACHE_TIER_HOST, .offset = 4096, .size = 16,
                                  .layout = { SIMCACHE_DTYPE_F32, 1, 1, 1, 1, 4 }, .meta = meta };
    simcache_t *h = session(&f);
    assert_int_equal(simcache_ping(h), 0);
    assert_int_equal(simcache_lookup(h, e, 0.9f, &m), 0);
    assert_true(m.id == 5);
    assert_true(m.lease == 9);
    assert_true(m.similarity == 0.97f);
    assert_true(m.size == 16);
    assert_int_equal(m.layout.tokens, 4);
    assert_non_null(m.data);
    assert_int_equal(((const uint8_t *)m.data)[0], 0);   /* readable: inside the mapping */
    assert_int_equal(m.meta_len, sizeof meta - 1);
    assert_memory_equal(m.meta, meta, sizeof meta - 1);
    assert_int_equal(simcache_release(h, &m), 0);
    assert_true(m.lease == 0);
    assert_null(m.data);
    simcache_close(h);
    fake_stop(&f);
    assert_int_equal(f.last_op, OP_RELEASE);
    assert_true(f.last_u64 == 9);
}

/* A hit followed by stray bytes: EPROTO, and the caller holds nothing (no
 * lease it would never release); the connection is closed so the daemon
 * ends the lease itself. */
static void malformed_hit_reply_leaves_no_lease_with_the_caller(void **state)
{
    fake_t f;
    float e[DIM] = { 1, 0, 0, 0 };
    simcache_match_t m;

    (void)state;
    match_found = 1;
    match_trailing = 3;
    match_reply = (fake_match_t){ .id = 5, .lease = 9, .similarity = 0.97f,
                                  .tier = SIMCACHE_TIER_HOST, .offset = 4096, .size = 16,
                                  .layout = { SIMCACHE_DTYPE_F32, 1, 1, 1, 1, 4 } };
    simcache_t *h = session(&f);
    assert_int_equal(simcache_lookup(h, e, 0.9f, &m), SIMCACHE_EPROTO);
    match_trailing = 0;
    assert_true(m.lease == 0);
    assert_null(m.data);
    assert_non_null(strstr(simcache_last_error(h), "connection closed"));
    assert_int_equal(simcache_ping(h), SIMCACHE_ECLOSED);
    simcache_close(h);
    fake_stop(&f);
}

static void lookup_miss_returns_miss_without_lease(void **state)
{
    fake_t f;
    float e[DIM] = { 1, 0, 0, 0 };
    simcache_match_t m;

    (void)state;
    match_found = 0;
    simcache_t *h = session(&f);
    assert_int_equal(simcache_lookup(h, e, -1.0f, &m), SIMCACHE_MISS);
    assert_true(m.lease == 0);
    assert_null(m.data);
    simcache_close(h);
    fake_stop(&f);
}

static void match_outside_the_arena_is_eproto(void **state)
{
    fake_t f;
    float e[DIM] = { 1, 0, 0, 0 };
    simcache_match_t m;

    (void)state;
    match_found = 1;
    match_reply = (fake_match_t){ .id = 5, .lease = 9, .tier = SIMCACHE_TIER_HOST,
                                   .offset = ARENA_SIZE - 8, .size = 16 };
    simcache_t *h = session(&f);
    assert_int_equal(simcache_lookup(h, e, 0.9f, &m), SIMCACHE_EPROTO);
    assert_non_null(strstr(simcache_last_error(h), "outside the arena"));
    simcache_close(h);
    fake_stop(&f);
}

static void match_with_wrapping_offset_is_eproto(void **state)
{
    fake_t f;
    float e[DIM] = { 1, 0, 0, 0 };
    simcache_match_t m;

    (void)state;
    match_found = 1;
    match_reply = (fake_match_t){ .id = 5, .lease = 9, .tier = SIMCACHE_TIER_HOST,
                                   .offset = UINT64_MAX - 7, .size = 16 };
    simcache_t *h = session(&f);
    assert_int_equal(simcache_lookup(h, e, 0.9f, &m), SIMCACHE_EPROTO);
    simcache_close(h);
    fake_stop(&f);
}

static void daemon_error_reply_keeps_connection_usable(void **state)
{
    fake_t f;

    (void)state;
    simcache_t *h = session(&f);
    assert_int_equal(simcache_delete(h, 1), SIMCACHE_EOPCODE);
    assert_non_null(strstr(simcache_last_error(h), "delete: not in this script"));
    assert_int_equal(simcache_ping(h), 0);
    simcache_close(h);
    fake_stop(&f);
}

/* ---- puts the client cannot take up ----
 *
 * A stand-in that keeps the daemon's books of unfinished puts: a put this
 * side could not take up (its staging buffer cannot be mapped, the reply is
 * bad) must be aborted, or the daemon holds it until the connection closes.
 * Like the daemon, it refuses a second device put while one is unfinished,
 * and reuses a host buffer kept as the spare (fresh = 0, no fd). */

typedef struct {
    int first_fd;           /* fd sent with the first host put_begin, or -1 */
    uint64_t first_size;    /* staging_size of the first host put_begin */
    uint32_t keep_on_abort; /* a host abort reply's kept */
    int dev_fd;             /* fd number the device staging region names */
    int dev_memfd;          /* becomes dev_fd when the device put is aborted */
    int begins, aborts, open_puts, device_open;
    uint64_t aborted;       /* token of the last abort */
    uint64_t cur_id, cur_size;      /* buffer of the last host put begun */
    uint64_t spare_id, spare_size;  /* the stand-in's spare (id 0: none) */
} put_script_t;

static put_script_t ps;

static void put_script_init(void)
{
    memset(&ps, 0, sizeof ps);
    ps.first_fd = -1;
    ps.first_size = 4096;
    ps.dev_fd = -1;
    ps.dev_memfd = -1;
}

static int staging_memfd(uint64_t size)
{
    int fd = memfd_create("test-staging", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    return fd;
}

/* A read-only fd of a memfd: mmap(PROT_WRITE, MAP_SHARED) of it fails. */
static int read_only_memfd(uint64_t size)
{
    int rw = staging_memfd(size);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", rw);
    int ro = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(ro >= 0);
    close(rw);
    return ro;
}

static int answer_device_put_begin(int fd, const fake_req_t *req, uint64_t token)
{
    msg_t m = { .n = 0 };
    if (ps.device_open) return send_error(fd, req, SIMCACHE_ELIMIT, "device put still unfinished");
    uint32_t fresh = ps.begins == 1;
    put_le(&m, token, 8);
    put_le(&m, 41, 8);                      /* staging_id: the one device buffer */
    put_le(&m, 2u << 20, 8);
    put_le(&m, fresh, 4);
    if (fresh) {                            /* a legacy region ("pid fd"), no fd attached */
        char ipc[PROTO_GPU_HANDLE_BYTES] = { 0 };
        snprintf(ipc, sizeof ipc, "%d %d", (int)getpid(), ps.dev_fd);
        put_le(&m, 2, 4);
        put_le(&m, 0, 4);
        put_le(&m, 2u << 20, 8);
        memcpy(m.b + m.n, ipc, sizeof ipc);
        m.n += sizeof ipc;
    }
    ps.device_open = 1;
    ps.open_puts++;
    return send_frame(fd, OP_PUT_BEGIN | OP_REPLY, req->req_id, 0, &m, -1);
}

static int answer_put_begin(fake_t *f, int fd, const fake_req_t *req)
{
    msg_t m = { .n = 0 };
    uint64_t size = get_le(f->head, 8);
    uint32_t flags = (uint32_t)get_le(f->head + 8, 4);
    uint64_t token = 100 + (uint64_t)++ps.begins;
    if (flags & PROTO_PUT_DEVICE) return answer_device_put_begin(fd, req, token);
    int fresh = !(ps.spare_id && ps.spare_size >= size);
    int pass = -1, made = 0;
    if (fresh) {
        ps.cur_id = 20 + (uint64_t)ps.begins;
        ps.cur_size = ps.begins == 1 ? ps.first_size : size;
        pass = ps.begins == 1 && ps.first_fd >= 0 ? ps.first_fd : staging_memfd(ps.cur_size);
        made = pass != ps.first_fd;
    } else {
        ps.cur_id = ps.spare_id;
        ps.cur_size = ps.spare_size;
        ps.spare_id = 0;
    }
    put_le(&m, token, 8);
    put_le(&m, ps.cur_id, 8);
    put_le(&m, ps.cur_size, 8);
    put_le(&m, (uint32_t)fresh, 4);
    ps.open_puts++;
    int rc = send_frame(fd, OP_PUT_BEGIN | OP_REPLY, req->req_id, 0, &m, pass);
    if (made) close(pass);
    return rc;
}

static int answer_puts(fake_t *f, int fd, const fake_req_t *req)
{
    msg_t m = { .n = 0 };
    uint8_t ipc[PROTO_GPU_HANDLE_BYTES] = { 0 };
    switch (req->opcode) {
    case OP_HELLO:
        put_le(&m, PROTO_VERSION, 2);
        put_le(&m, 3, 2);                   /* tiers: host and GPU */
        put_le(&m, 1u << 20, 4);
        put_le(&m, 7, 8);
        put_le(&m, ARENA_SIZE, 8);
        put_f32(&m, 0.8f);
        put_le(&m, SIMCACHE_MAX_BATCH, 4);
        return send_frame(fd, OP_HELLO | OP_REPLY, req->req_id, 0, &m, f->arena_fd);
    case OP_GPU_ATTACH:                     /* the GPU tier: a VMM region, the arena's memfd */
        put_le(&m, 1, 4);
        put_le(&m, 0, 4);
        put_le(&m, ARENA_SIZE, 8);
        memcpy(m.b + m.n, ipc, sizeof ipc);
        m.n += sizeof ipc;
        return send_frame(fd, OP_GPU_ATTACH | OP_REPLY, req->req_id, 0, &m, f->arena_fd);
    case OP_PUT_BEGIN:
        return answer_put_begin(f, fd, req);
    case OP_PUT_ABORT:
        ps.aborts++;
        ps.aborted = f->last_u64;
        ps.open_puts--;
        if (ps.device_open) {
            ps.device_open = 0;
            if (ps.dev_memfd >= 0) assert_int_equal(dup2(ps.dev_memfd, ps.dev_fd), ps.dev_fd);
            put_le(&m, 0, 4);
        } else {
            put_le(&m, ps.keep_on_abort, 4);
            if (ps.keep_on_abort) {
                ps.spare_id = ps.cur_id;
                ps.spare_size = ps.cur_size;
            }
        }
        return send_frame(fd, OP_PUT_ABORT | OP_REPLY, req->req_id, 0, &m, -1);
    case OP_PUT_COMMIT:
        ps.open_puts--;
        ps.device_open = 0;
        put_le(&m, 6, 8);                   /* id */
        put_le(&m, 0, 4);                   /* kept */
        return send_frame(fd, OP_PUT_COMMIT | OP_REPLY, req->req_id, 0, &m, -1);
    case OP_PING:
        return send_frame(fd, OP_PING | OP_REPLY, req->req_id, 0, NULL, -1);
    default:
        return send_error(fd, req, SIMCACHE_EOPCODE, "not in this script");
    }
}

static simcache_t *put_session(fake_t *f, int gpu_device)
{
    simcache_t *h = NULL;
    fake_start(f, answer_puts);
    simcache_opts_t o = opts_for(f->path);
    o.gpu_device = gpu_device;
    if (simcache_connect(&o, &h) != 0) fail_msg("connect: %s", simcache_last_error(h));
    return h;
}

static void put_begin_with_unmappable_staging_aborts_the_put(void **state)
{
    fake_t f;
    float e[DIM] = { 1, 0, 0, 0 };
    simcache_layout_t l = { SIMCACHE_DTYPE_F32, 1, 1, 1, 1, 1024 };
    void *buf;
    uint64_t token, id;

    (void)state;
    put_script_init();
    ps.first_fd = read_only_memfd(4096);
    simcache_t *h = put_session(&f, -1);
    assert_int_equal(simcache_put_begin(h, 4096, &buf, &token), SIMCACHE_EIO);
    assert_non_null(strstr(simcache_last_error(h), "mmap staging"));
    assert_int_equal(ps.aborts, 1);
    assert_true(ps.aborted == 101);
    assert_int_equal(ps.open_puts, 0);
    /* Not stuck: the next put gets a buffer it can map. */
    assert_int_equal(simcache_put_begin(h, 4096, &buf, &token), 0);
    memset(buf, 0x11, 4096);
    assert_int_equal(simcache_put_commit(h, token, e, &l, NULL, &id), 0);
    assert_int_equal(ps.open_puts, 0);
    simcache_close(h);
    fake_stop(&f);
    close(ps.first_fd);
}

/* The daemon keeps an aborted buffer as the connection's spare (kept = 1)
 * and hands it out again without an fd: the client maps the fd it kept then
 * (failing and aborting again here, the fd being read-only), instead of
 * calling the reply bad and leaving that put open. */
static void kept_unmappable_staging_is_mapped_again_when_reused(void **state)
{
    fake_t f;
    float e[DIM] = { 1, 0, 0, 0 };
    simcache_layout_t l = { SIMCACHE_DTYPE_F32, 1, 1, 1, 1, 2048 };
    void *buf;
    uint64_t token, id;

    (void)state;
    put_script_init();
    ps.first_fd = read_only_memfd(4096);
    ps.keep_on_abort = 1;
    simcache_t *h = put_session(&f, -1);
    assert_int_equal(simcache_put_begin(h, 4096, &buf, &token), SIMCACHE_EIO);
    assert_int_equal(ps.aborts, 1);
    assert_int_equal(simcache_put_begin(h, 4096, &buf, &token), SIMCACHE_EIO);
    assert_non_null(strstr(simcache_last_error(h), "mmap staging"));
    assert_int_equal(ps.aborts, 2);
    assert_true(ps.aborted == 102);
    assert_int_equal(ps.open_puts, 0);
    /* A put too large for that spare gets a fresh buffer and works. */
    assert_int_equal(simcache_put_begin(h, 8192, &buf, &token), 0);
    memset(buf, 0x22, 8192);
    assert_int_equal(simcache_put_commit(h, token, e, &l, NULL, &id), 0);
    assert_int_equal(ps.open_puts, 0);
    simcache_close(h);
    fake_stop(&f);
    close(ps.first_fd);
}

static void bad_put_begin_reply_aborts_the_put(void **state)
{
    fake_t f;
    void *buf;
    uint64_t token;

    (void)state;
    put_script_init();
    ps.first_size = 64;                     /* a buffer smaller than the put: a bad reply */
    simcache_t *h = put_session(&f, -1);
    assert_int_equal(simcache_put_begin(h, 4096, &buf, &token), SIMCACHE_EPROTO);
    assert_non_null(strstr(simcache_last_error(h), "bad put_begin reply"));
    assert_int_equal(ps.aborts, 1);
    assert_true(ps.aborted == 101);
    assert_int_equal(ps.open_puts, 0);
    assert_int_equal(simcache_ping(h), 0);
    simcache_close(h);
    fake_stop(&f);
}

/* A device put whose staging buffer cannot be opened is aborted (else the
 * daemon refuses every later device put: one at a time), and the next one,
 * handed the same buffer without its region (fresh = 0), opens it then.
 * Runs where the handle maps the stand-in's GPU tier, over the emulated
 * device (test client_gpuemu); skipped elsewhere. */
static void device_put_retries_the_staging_mapping_after_a_failed_open(void **state)
{
    fake_t f;
    float e[DIM] = { 1, 0, 0, 0 };
    simcache_layout_t l = { SIMCACHE_DTYPE_F32, 1, 1, 1, 1, 1024 };
    void *dev;
    uint64_t token, id;

    (void)state;
    put_script_init();
    ps.dev_fd = 900;
    while (fcntl(ps.dev_fd, F_GETFD) != -1) ps.dev_fd++;   /* a number nothing uses */
    ps.dev_memfd = staging_memfd(2u << 20);
    simcache_t *h = put_session(&f, 0);
    if (simcache_gpu_tier(h, NULL, 0) != 1) {
        simcache_close(h);
        fake_stop(&f);
        close(ps.dev_memfd);
        skip();
    }
    assert_int_equal(simcache_put_begin_device(h, 4096, &dev, &token), SIMCACHE_EIO);
    assert_non_null(strstr(simcache_last_error(h), "GPU memory"));
    assert_int_equal(ps.aborts, 1);
    assert_true(ps.aborted == 101);
    assert_int_equal(ps.open_puts, 0);
    /* The stand-in made the buffer openable when the put was aborted. */
    assert_int_equal(simcache_put_begin_device(h, 4096, &dev, &token), 0);
    assert_non_null(dev);
    assert_true(token == 102);
    assert_int_equal(simcache_put_commit(h, token, e, &l, NULL, &id), 0);
    assert_true(id == 6);
    assert_int_equal(ps.open_puts, 0);
    simcache_close(h);
    fake_stop(&f);
    close(ps.dev_fd);
    close(ps.dev_memfd);
}

/* ---- reply size ---- */

static uint32_t huge_len;

/* A reply header announcing huge_len payload bytes, then a hang-up. */
static int answer_huge_reply(fake_t *f, int fd, const fake_req_t *req)
{
    msg_t w = { .n = 0 };
    (void)f;
    put_le(&w, PROTO_MAGIC, 4);
    put_le(&w, PROTO_VERSION, 2);
    put_le(&w, req->opcode | OP_REPLY, 2);
    put_le(&w, req->req_id, 8);
    put_le(&w, huge_len, 4);
    put_le(&w, 0, 4);
    ssize_t k = write(fd, w.b, w.n);
    (void)k;
    return -1;
}

static void reply_over_the_size_limit_is_eproto(void **state)
{
    const uint32_t lens[] = { UINT32_MAX, PROTO_MAX_REPLY + 1 };

    (void)state;
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        fake_t f;
        simcache_t *h = NULL;
        huge_len = lens[i];
        fake_start(&f, answer_huge_reply);
        simcache_opts_t o = opts_for(f.path);
        assert_int_equal(simcache_connect(&o, &h), SIMCACHE_EPROTO);
        if (!strstr(simcache_last_error(h), "over the protocol's limit"))
            fail_msg("%" PRIu32 "-byte reply: '%s'", lens[i], simcache_last_error(h));
        simcache_close(h);
        fake_stop(&f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(strerror_names_every_code),
        cmocka_unit_test(strerror_of_unknown_code_is_never_null),
        cmocka_unit_test(layout_bytes_of_a_real_model),
        cmocka_unit_test(layout_bytes_of_null_or_invalid_is_zero),
        cmocka_unit_test(layout_bytes_overflow_is_zero),
        cmocka_unit_test(opts_init_gives_no_gpu_no_timeout_no_tenant),
        cmocka_unit_test(connect_with_bad_options_is_einval_without_handle),
        cmocka_unit_test(connect_with_name_over_wire_limit_is_enamespace),
        cmocka_unit_test(connect_with_null_out_is_einval),
        cmocka_unit_test(connect_to_missing_socket_is_eio_with_useful_message),
        cmocka_unit_test(connect_uses_simcache_socket_from_environment),
        cmocka_unit_test(connect_with_too_long_socket_path_is_einval),
        cmocka_unit_test(last_error_and_close_accept_null),
        cmocka_unit_test(calls_without_handle_are_einval),
        cmocka_unit_test(null_or_empty_arguments_are_einval),
        cmocka_unit_test(put_checks_location_and_layout_before_sending),
        cmocka_unit_test(batch_over_limit_is_etoobig),
        cmocka_unit_test(commit_or_abort_of_unknown_put_is_enoput),
        cmocka_unit_test(release_of_match_without_lease_is_einval),
        cmocka_unit_test(requests_on_closed_handle_are_eclosed_and_clear_the_match),
        cmocka_unit_test(daemon_refusal_keeps_handle_with_daemon_message),
        cmocka_unit_test(hello_reply_without_arena_is_eproto),
        cmocka_unit_test(reply_with_bad_magic_is_eproto),
        cmocka_unit_test(reply_to_another_request_is_eproto),
        cmocka_unit_test(lookup_hit_points_into_the_arena_and_release_sends_lease),
        cmocka_unit_test(malformed_hit_reply_leaves_no_lease_with_the_caller),
        cmocka_unit_test(lookup_miss_returns_miss_without_lease),
        cmocka_unit_test(match_outside_the_arena_is_eproto),
        cmocka_unit_test(match_with_wrapping_offset_is_eproto),
        cmocka_unit_test(daemon_error_reply_keeps_connection_usable),
        cmocka_unit_test(put_begin_with_unmappable_staging_aborts_the_put),
        cmocka_unit_test(kept_unmappable_staging_is_mapped_again_when_reused),
        cmocka_unit_test(bad_put_begin_reply_aborts_the_put),
        cmocka_unit_test(device_put_retries_the_staging_mapping_after_a_failed_open),
        cmocka_unit_test(reply_over_the_size_limit_is_eproto),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
