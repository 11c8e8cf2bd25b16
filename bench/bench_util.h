/* bench_util.h - what every simcache benchmark needs: a monotonic clock,
 * private temp dirs, simcached and redis-server started and stopped on them,
 * percentiles over samples, and plain tables printed as Markdown.
 *
 * The one idea: a benchmark measures the shipped binaries from outside, the
 * way a user would run them, and prints its anchors (memcpy, Redis) measured
 * in the same run, so every figure is read as a ratio on the same machine.
 * Nothing here links the daemon's code. None of this is a test: benchmarks
 * print figures and never assert on them.
 */
#ifndef SIMCACHE_BENCH_UTIL_H
#define SIMCACHE_BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* ---- time ---- */

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/* ---- temp dirs ---- */

/* Make a private dir /tmp/simcache-bench-XXXXXX; out gets its path.
 * Returns 0, or -1 (message on stderr). */
int bench_tmpdir(char *out, size_t n);

/* Remove a dir and everything below it (no symlinks followed). Keeps it when
 * $BENCH_KEEP is set, to read the logs. */
void bench_rm_rf(const char *path);

/* ---- child processes ---- */

typedef struct {
    pid_t pid;          /* 0 when not running */
    char name[32];      /* for messages: "simcached", "redis-server" */
    char log[256];      /* stdout and stderr of the child */
} bench_proc_t;

/* Start argv (argv[0] looked up in PATH when it has no '/') with stdout and
 * stderr appended to `log`. The child gets SIGKILL if the benchmark dies, so
 * a crashed run leaves no daemon behind. Returns 0, or -1 (message on
 * stderr). */
int bench_proc_start(bench_proc_t *p, const char *name, const char *log, char *const argv[]);

/* SIGTERM, wait up to 10 s, then SIGKILL. Returns the exit code, 128+signal,
 * or -1. A process that is not running gives 0. */
int bench_proc_stop(bench_proc_t *p);

/* Print the child's log to stderr (after a failure). */
void bench_proc_dump_log(const bench_proc_t *p);

/* Wait until a Unix stream socket at `path` accepts a connection, up to
 * timeout_ms, failing early if p exits. Returns 0 or -1. */
int bench_wait_socket(bench_proc_t *p, const char *path, int timeout_ms);

/* Start simcached (path exe) on dir: --socket DIR/simcached.sock,
 * --admin-socket DIR/admin.sock, --data-dir DIR/data, then the extra flags
 * (NULL-terminated, may be NULL), and wait for both sockets. sock gets the
 * client socket path. Returns 0, or -1 (the log is printed). */
/* splitmix64: the next value of the sequence in *s. */
uint64_t bench_mix(uint64_t *s);
/* n bytes of splitmix64 output from seed (a tail under 8 bytes is left as is). */
void bench_fill(uint8_t *p, uint64_t n, uint64_t seed);

/* The simcached to measure: $SIMCACHED, else ../cached/simcached next to
 * this executable (the build tree), else "simcached" on PATH. */
void bench_default_simcached(char *out, size_t n);

int bench_simcached_start(bench_proc_t *p, const char *exe, const char *dir,
                          const char *const *extra, char *sock, size_t socklen);

/* Start redis-server (path exe, or "redis-server" from PATH when NULL) on
 * dir with no TCP port, a Unix socket DIR/redis.sock, no persistence, and
 * limits raised for 512 MiB values (proto-max-bulk-len,
 * client-query-buffer-limit). sock gets the socket path. Returns 0, or -1
 * (the log is printed). */
int bench_redis_start(bench_proc_t *p, const char *exe, const char *dir, char *sock,
                      size_t socklen);

/* ---- a running simcached, from outside ---- */

/* Send one admin command line to DIR/admin.sock (the layout
 * bench_simcached_start makes) and read the reply, up to END or a single
 * status line, into buf. Returns 0 or -1. */
int bench_admin(const char *dir, const char *cmd, char *buf, size_t len);

/* The value of key in "key=value" (list records) or "key value" (one
 * record) admin text; 0 if absent. */
uint64_t bench_field_u64(const char *text, const char *key);

/* `config get KEY` of the daemon on DIR, as an integer; 0 on failure. */
uint64_t bench_config_u64(const char *dir, const char *key);

/* RssAnon and RssShmem of a process (/proc/PID/status), bytes; 0 if
 * unreadable. */
void bench_proc_rss(pid_t pid, uint64_t *anon, uint64_t *shmem);

/* malloc and calloc that end the benchmark (exit 1, a message) when out of
 * memory; a size of 0 is taken as 1. */
void *bench_xmalloc(size_t n);
void *bench_xcalloc(size_t n, size_t size);

/* ---- statistics ---- */

typedef struct {
    size_t n;
    double p50, p99;    /* nanoseconds, nearest rank; with n < 100, p99 is the max */
    double min, max, mean;
} bench_stats_t;

/* Summarize n samples (ns). Sorts the array in place. n == 0 gives zeros. */
void bench_stats(double *ns, size_t n, bench_stats_t *out);

/* ---- formatting and tables ---- */

/* "812 ns", "134.2 us", "6.41 ms", "1.203 s". Returns buf. */
const char *bench_fmt_ns(double ns, char *buf, size_t n);

/* "256 KiB", "128 MiB". Returns buf. */
const char *bench_fmt_size(uint64_t bytes, char *buf, size_t n);

/* A ratio: "0.42x", "3.1x", "1234x". Returns buf. */
const char *bench_fmt_ratio(double r, char *buf, size_t n);

/* Bytes per second as GB/s (10^9 bytes): "19.8". Returns buf. */
const char *bench_fmt_gbps(uint64_t bytes, double ns, char *buf, size_t n);

typedef struct {
    const char *title;
    int width;          /* minimum cell width */
    int right;          /* right-align (numbers) */
} bench_col_t;

/* A Markdown pipe table, padded so it also reads well in a terminal. */
void bench_table_head(FILE *f, const bench_col_t *cols, int ncols);
void bench_table_row(FILE *f, const bench_col_t *cols, int ncols, const char *const *cells);

/* One line per fact: CPU model, cores online, memory, kernel. */
void bench_print_machine(FILE *f);

/* The 1-minute load average (/proc/loadavg), or -1. Print it at the start
 * and end of a run: above the core count, other work shared the CPUs and
 * the figures are slower than the machine can do. */
double bench_loadavg(void);

#endif
