/* harness.h - what every integration test needs: a real simcached on a
 * private temp dir, raw frames over its socket, admin commands, child
 * processes, and deterministic embeddings and blobs.
 *
 * The one idea: tests drive the daemon only from outside, the way a real
 * client or operator would (sockets, signals, /proc), so a test passes only
 * if the shipped binary behaves. Nothing here links the daemon's code.
 * Every wait has a generous timeout so a broken daemon fails a test instead
 * of hanging it; no test asserts on timing.
 */
#ifndef SIMCACHE_IT_HARNESS_H
#define SIMCACHE_IT_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"
#include "simcache.h"

#define IT_TIMEOUT_MS 30000      /* any single wait; only there to avoid hangs */

/* ---- the daemon ---- */

typedef struct {
    char dir[64];                /* private temp dir, removed by it_daemon_cleanup */
    char sock[108];
    char admin[108];
    char data[160];
    char log[160];
    pid_t pid;                   /* 0 when not running */
    int status;                  /* wait status once it exited */
} it_daemon_t;

/* Path of simcached (argv[1] of the test, or $SIMCACHED). */
extern const char *it_simcached;
/* Take the daemon path from argv[1] / $SIMCACHED; exits 77 (skip) if none. */
void it_init(int argc, char **argv);

/* Make a temp dir and start simcached on it with --socket, --admin-socket and
 * --data-dir there, plus the extra flags (NULL-terminated list), then wait
 * until both sockets answer. Returns 0, or -1 (the log is printed). */
int it_daemon_start(it_daemon_t *d, ...) __attribute__((sentinel));
/* Same with an argv-style array of extra flags (may be NULL). */
int it_daemon_startv(it_daemon_t *d, const char *const *extra);
/* Start simcached with exactly these extra args and no path flags of our
 * own; returns its pid (for "refuses to start" tests). */
pid_t it_spawn(const char *log_path, const char *const *args);
/* Wait up to timeout_ms for pid to exit. Returns its exit code, 128+signal
 * if it was killed, or -1 on timeout (the process is left running). */
int it_wait_pid(pid_t pid, int timeout_ms);
/* SIGTERM, wait, return the exit code as it_wait_pid (SIGKILL after the
 * timeout, then -1). A daemon that already exited gives its status. */
int it_daemon_stop(it_daemon_t *d);
/* Has the daemon exited? Collects the status if so. */
int it_daemon_exited(it_daemon_t *d);
/* Stop if running (SIGKILL), remove the temp dir. */
void it_daemon_cleanup(it_daemon_t *d);
/* Print the daemon's log to stderr (for failures). */
void it_daemon_dump_log(const it_daemon_t *d);

/* ---- admin socket ---- */

typedef struct {
    int fd;
    char buf[16384];
    size_t len, pos;
} it_admin_t;

int it_admin_open(it_admin_t *a, const char *path);   /* 0 or -1 */
void it_admin_close(it_admin_t *a);
int it_admin_send(it_admin_t *a, const char *text);   /* raw bytes, no newline added */
/* One line without its "\n"; 0, or -1 on EOF/timeout. */
int it_admin_line(it_admin_t *a, char *line, size_t n);
/* One text-mode reply: a single final line (OK, ERROR, CLIENT_ERROR,
 * SERVER_ERROR, NOT_FOUND, PONG) or lines up to END (END not included).
 * Lines are joined with "\n". Returns 0 or -1. */
int it_admin_reply(it_admin_t *a, char *out, size_t n);
/* Connect, send cmd + "\n", read the text reply, close. */
int it_admin(const it_daemon_t *d, const char *cmd, char *out, size_t n);
/* The value of "key value" in a key/value reply (stats, info, show), as an
 * integer. Returns 0 or -1 (no such key). */
int it_kv_u64(const char *reply, const char *key, uint64_t *v);
/* Run cmd (e.g. "stats") and read key; aborts the value to UINT64_MAX on error. */
uint64_t it_admin_u64(const it_daemon_t *d, const char *cmd, const char *key);
/* Run cmd and copy key's value (the rest of its line) to out. 0 or -1. */
int it_admin_str(const it_daemon_t *d, const char *cmd, const char *key, char *out, size_t n);
/* Poll cmd/key until it equals want or the timeout passes; returns the last value. */
uint64_t it_admin_wait_u64(const it_daemon_t *d, const char *cmd, const char *key, uint64_t want);

/* ---- raw binary protocol ---- */

typedef struct {
    proto_hdr_t h;
    uint8_t *payload;            /* malloc'd, h.len bytes (NULL if 0) */
    int fd;                      /* SCM_RIGHTS fd that came with it, or -1 */
} it_frame_t;

int it_raw_connect(const char *path);                  /* fd or -1 */
int it_send_all(int fd, const void *p, size_t n);      /* 0 or -1 */
/* Receive one frame. 0; 1 if the peer closed before a whole frame
 * (clean EOF); -1 on timeout or error. */
int it_recv_frame(int fd, it_frame_t *f, int timeout_ms);
void it_frame_free(it_frame_t *f);
/* The message of an error reply (copied, NUL-terminated) or "". */
const char *it_frame_msg(const it_frame_t *f, char *buf, size_t n);
/* 1 if the peer closes the connection (EOF) within timeout_ms, else 0.
 * Reads and drops anything before the EOF. */
int it_wait_eof(int fd, int timeout_ms);

/* Send one frame (header + payload) with the given header fields. */
int it_send_frame(int fd, uint16_t op, uint64_t req_id, const void *payload, size_t len);
/* Send a frame and receive its reply. Returns the reply status (0 or a
 * SIMCACHE_E* code), or 100 if no reply came (closed/timeout). */
int it_call(int fd, uint16_t op, uint64_t req_id, const proto_wr_t *payload, it_frame_t *reply);
/* Hello over a raw socket. Returns the reply status; on success *hr is
 * filled and *arena_fd (if not NULL) holds the arena fd (else closed). */
int it_raw_hello(int fd, const char *model, const char *layout_fp, const char *tenant,
                 uint32_t dim, proto_hello_reply_t *hr, int *arena_fd);
/* Hello with explicit (possibly invalid) lengths and bytes. */
int it_raw_hello_n(int fd, const char *model, size_t model_len, const char *fp, size_t fp_len,
                   const char *tenant, size_t tenant_len, uint32_t dim, uint16_t vmin,
                   uint16_t vmax, proto_hello_reply_t *hr, int *arena_fd);

/* ---- client library ---- */

/* Connect with the library (timeout IT_TIMEOUT_MS); NULL on failure (logged). */
simcache_t *it_connect(const char *sock, const char *model, const char *fp, const char *tenant,
                       uint32_t dim);

/* ---- embeddings and blobs ---- */

/* Deterministic Gaussian unit vector for seed. */
void it_unit(uint64_t seed, float *v, uint32_t dim);
/* A unit vector whose cosine with unit u is exactly cos (up to rounding):
 * cos*u + sqrt(1-cos^2)*w with w a unit vector orthogonal to u. */
void it_similar(const float *u, float cos, uint64_t seed, float *out, uint32_t dim);
float it_cosine(const float *a, const float *b, uint32_t dim);
/* Deterministic blob bytes for a seed; it_check counts mismatches. */
void it_fill(uint8_t *p, uint64_t n, uint64_t seed);
uint64_t it_check(const uint8_t *p, uint64_t n, uint64_t seed);
/* A valid layout of exactly bytes (bytes must be a multiple of 2*2*64). */
simcache_layout_t it_layout(uint64_t bytes);
/* Put a blob of bytes with it_fill(seed) under embedding e; returns the id or 0. */
uint64_t it_put(simcache_t *h, const float *e, uint64_t bytes, uint64_t seed, const char *meta);

/* ---- child processes ---- */

/* Fork; the child runs fn(arg) and _exits with its return value. */
pid_t it_fork(int (*fn)(void *), void *arg);
/* Child-side check: prints and counts a failure, never aborts. */
#define IT_CHECK(fails, cond)                                                              \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "[child %d] %s:%d: check failed: %s\n", (int)getpid(), __FILE__, \
                    __LINE__, #cond);                                                      \
            (fails)++;                                                                     \
        }                                                                                  \
    } while (0)
/* Pipes carrying u64s between processes (with timeout). */
int it_write_u64(int fd, uint64_t v);
int it_read_u64(int fd, uint64_t *v, int timeout_ms);

/* Count the fds of pid whose link target contains needle (e.g.
 * "simcache-staging"); -1 if /proc cannot be read. */
int it_count_fds(pid_t pid, const char *needle);

/* Sleep ms milliseconds (polling loops only). */
void it_sleep_ms(int ms);

#endif
