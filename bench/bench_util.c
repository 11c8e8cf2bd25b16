/* bench_util.c - clock, temp dirs, child daemons, percentiles and tables
 * for the benchmarks.
 *
 * Daemons are started with fork/exec and PR_SET_PDEATHSIG, and "ready" means
 * their Unix socket accepts a connection: the same outside view a user has.
 */
#include "bench_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

/* ---- temp dirs ---- */

int bench_tmpdir(char *out, size_t n)
{
    if (n < 32) return -1;
    snprintf(out, n, "/tmp/simcache-bench-XXXXXX");
    if (!mkdtemp(out)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

static void rm_tree(const char *path)
{
    DIR *dir = opendir(path);
    if (dir) {
        struct dirent *de;
        while ((de = readdir(dir))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            char p[512];
            snprintf(p, sizeof p, "%s/%s", path, de->d_name);
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) rm_tree(p);
            else unlink(p);
        }
        closedir(dir);
    }
    rmdir(path);
}

void bench_rm_rf(const char *path)
{
    if (!path || !path[0]) return;
    if (getenv("BENCH_KEEP")) {
        fprintf(stderr, "BENCH_KEEP: leaving %s\n", path);
        return;
    }
    rm_tree(path);
}

/* ---- child processes ---- */

int bench_proc_start(bench_proc_t *p, const char *name, const char *log, char *const argv[])
{
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->log, sizeof p->log, "%s", log);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* Die with the benchmark, and close the race where it already died. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    p->pid = pid;
    return 0;
}

static int decode(int st)
{
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

/* 1 and the status if p exited (collected), else 0. */
static int exited(bench_proc_t *p, int *code)
{
    int st;
    if (!p->pid) return 1;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
        p->pid = 0;
        *code = decode(st);
        return 1;
    }
    return 0;
}

int bench_proc_stop(bench_proc_t *p)
{
    if (!p->pid) return 0;
    int code = -1;
    kill(p->pid, SIGTERM);
    for (int i = 0; i < 1000; i++) {
        if (exited(p, &code)) return code;
        sleep_ms(10);
    }
    fprintf(stderr, "%s ignored SIGTERM for 10 s; killing it\n", p->name);
    kill(p->pid, SIGKILL);
    int st;
    waitpid(p->pid, &st, 0);
    p->pid = 0;
    return -1;
}

void bench_proc_dump_log(const bench_proc_t *p)
{
    FILE *f = fopen(p->log, "r");
    if (!f) return;
    char line[1024];
    fprintf(stderr, "---- %s (%s) ----\n", p->log, p->name);
    while (fgets(line, sizeof line, f)) fputs(line, stderr);
    fprintf(stderr, "---- end of log ----\n");
    fclose(f);
}

static int socket_answers(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sun.sun_path) return 0;
    strcpy(sun.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    int ok = connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0;
    close(fd);
    return ok;
}

int bench_wait_socket(bench_proc_t *p, const char *path, int timeout_ms)
{
    uint64_t end = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (bench_now_ns() < end) {
        int code = -1;
        if (exited(p, &code)) {
            fprintf(stderr, "%s exited during start (status %d)\n", p->name, code);
            return -1;
        }
        if (socket_answers(path)) return 0;
        sleep_ms(5);
    }
    fprintf(stderr, "%s did not listen on %s within %d ms\n", p->name, path, timeout_ms);
    return -1;
}

int bench_simcached_start(bench_proc_t *p, const char *exe, const char *dir,
                          const char *const *extra, char *sock, size_t socklen)
{
    char admin[200], data[200], log[256];
    snprintf(sock, socklen, "%s/simcached.sock", dir);
    snprintf(admin, sizeof admin, "%s/admin.sock", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(log, sizeof log, "%s/simcached.log", dir);
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)exe;
    argv[n++] = "--socket";
    argv[n++] = sock;
    argv[n++] = "--admin-socket";
    argv[n++] = admin;
    argv[n++] = "--data-dir";
    argv[n++] = data;
    for (int i = 0; extra && extra[i] && n < 63; i++) argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    if (bench_proc_start(p, "simcached", log, argv)) return -1;
    if (bench_wait_socket(p, sock, 30000) || bench_wait_socket(p, admin, 30000)) {
        bench_proc_dump_log(p);
        bench_proc_stop(p);
        return -1;
    }
    return 0;
}

int bench_redis_start(bench_proc_t *p, const char *exe, const char *dir, char *sock,
                      size_t socklen)
{
    char log[256];
    snprintf(sock, socklen, "%s/redis.sock", dir);
    snprintf(log, sizeof log, "%s/redis.log", dir);
    char *argv[] = {
        (char *)(exe ? exe : "redis-server"),
        "--port", "0",
        "--unixsocket", sock,
        "--unixsocketperm", "700",
        "--dir", (char *)dir,
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--protected-mode", "no",
        "--proto-max-bulk-len", "512mb",
        "--client-query-buffer-limit", "2gb",
        NULL,
    };
    if (bench_proc_start(p, "redis-server", log, argv)) return -1;
    if (bench_wait_socket(p, sock, 30000)) {
        bench_proc_dump_log(p);
        bench_proc_stop(p);
        return -1;
    }
    return 0;
}

/* ---- statistics ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least q of the samples at or
 * below it. */
static double rank(const double *sorted, size_t n, double q)
{
    size_t k = (size_t)ceil(q * (double)n);
    if (k < 1) k = 1;
    if (k > n) k = n;
    return sorted[k - 1];
}

void bench_stats(double *ns, size_t n, bench_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (n == 0) return;
    qsort(ns, n, sizeof *ns, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += ns[i];
    out->n = n;
    out->p50 = rank(ns, n, 0.50);
    out->p99 = rank(ns, n, 0.99);
    out->min = ns[0];
    out->max = ns[n - 1];
    out->mean = sum / (double)n;
}

/* ---- formatting ---- */

const char *bench_fmt_ns(double ns, char *buf, size_t n)
{
    if (ns < 1e3) snprintf(buf, n, "%.0f ns", ns);
    else if (ns < 1e6) snprintf(buf, n, "%.1f us", ns / 1e3);
    else if (ns < 1e9) snprintf(buf, n, "%.2f ms", ns / 1e6);
    else snprintf(buf, n, "%.3f s", ns / 1e9);
    return buf;
}

const char *bench_fmt_size(uint64_t b, char *buf, size_t n)
{
    if (b >= (1ull << 30) && b % (1ull << 30) == 0) snprintf(buf, n, "%llu GiB", (unsigned long long)(b >> 30));
    else if (b >= (1ull << 20) && b % (1ull << 20) == 0) snprintf(buf, n, "%llu MiB", (unsigned long long)(b >> 20));
    else if (b >= 1024 && b % 1024 == 0) snprintf(buf, n, "%llu KiB", (unsigned long long)(b >> 10));
    else snprintf(buf, n, "%llu B", (unsigned long long)b);
    return buf;
}

const char *bench_fmt_ratio(double r, char *buf, size_t n)
{
    if (!(r > 0) || !isfinite(r)) snprintf(buf, n, "-");
    else if (r < 0.1) snprintf(buf, n, "%.2gx", r);
    else if (r < 10) snprintf(buf, n, "%.2fx", r);
    else if (r < 100) snprintf(buf, n, "%.1fx", r);
    else snprintf(buf, n, "%.0fx", r);
    return buf;
}

const char *bench_fmt_gbps(uint64_t bytes, double ns, char *buf, size_t n)
{
    if (!(ns > 0)) snprintf(buf, n, "-");
    else {
        double g = (double)bytes / ns;   /* bytes per ns = GB/s */
        if (g < 100) snprintf(buf, n, "%.1f", g);
        else snprintf(buf, n, "%.0f", g);
    }
    return buf;
}

/* ---- tables ---- */

static void cell(FILE *f, const bench_col_t *c, const char *s)
{
    if (c->right) fprintf(f, " %*s |", c->width, s);
    else fprintf(f, " %-*s |", c->width, s);
}

void bench_table_head(FILE *f, const bench_col_t *cols, int ncols)
{
    fputc('|', f);
    for (int i = 0; i < ncols; i++) cell(f, &cols[i], cols[i].title);
    fputs("\n|", f);
    for (int i = 0; i < ncols; i++) {
        int w = cols[i].width;
        int tw = (int)strlen(cols[i].title);
        if (tw > w) w = tw;
        fputc(' ', f);
        for (int k = 0; k < w - 1; k++) fputc('-', f);
        fputs(cols[i].right ? ":" : "-", f);
        fputs(" |", f);
    }
    fputc('\n', f);
}

void bench_table_row(FILE *f, const bench_col_t *cols, int ncols, const char *const *cells)
{
    fputc('|', f);
    for (int i = 0; i < ncols; i++) cell(f, &cols[i], cells[i] ? cells[i] : "");
    fputc('\n', f);
}

/* ---- machine ---- */

void bench_print_machine(FILE *f)
{
    char model[256] = "unknown";
    FILE *c = fopen("/proc/cpuinfo", "r");
    if (c) {
        char line[512];
        while (fgets(line, sizeof line, c)) {
            if (strncmp(line, "model name", 10) == 0) {
                char *v = strchr(line, ':');
                if (v) {
                    v++;
                    while (*v == ' ' || *v == '\t') v++;
                    v[strcspn(v, "\n")] = 0;
                    snprintf(model, sizeof model, "%s", v);
                }
                break;
            }
        }
        fclose(c);
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    struct utsname u;
    if (uname(&u)) strcpy(u.release, "unknown");
    fprintf(f, "machine: %s, %ld cores online, %.1f GiB RAM, Linux %s\n", model, cores,
            (double)pages * (double)psz / (double)(1ull << 30), u.release);
}

double bench_loadavg(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return -1;
    if (fscanf(f, "%lf", &l) != 1) l = -1;
    fclose(f);
    return l;
}

void bench_default_simcached(char *out, size_t n)
{
    const char *env = getenv("SIMCACHED");
    if (env && *env) {
        snprintf(out, n, "%s", env);
        return;
    }
    char self[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    if (k <= 0) {
        snprintf(out, n, "simcached");
        return;
    }
    self[k] = 0;
    char guess[PATH_MAX + 32], real[PATH_MAX];
    snprintf(guess, sizeof guess, "%s/../cached/simcached", dirname(self));
    const char *best = realpath(guess, real) ? real : guess;
    size_t len = strlen(best);
    if (len >= n) len = n - 1;
    memcpy(out, best, len);
    out[len] = 0;
}

uint64_t bench_mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void bench_fill(uint8_t *p, uint64_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (uint64_t i = 0; i + 8 <= n; i += 8) {
        uint64_t v = bench_mix(&s);
        memcpy(p + i, &v, 8);
    }
}

/* ---- a running simcached, from outside ---- */

/* Send one command line, read the reply up to END (or a single status line)
 * into buf. Returns 0 or -1. */
int bench_admin(const char *dir, const char *cmd, char *buf, size_t len)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s/admin.sock", dir);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun)) {
        close(fd);
        return -1;
    }
    char line[512];
    int n = snprintf(line, sizeof line, "%s\n", cmd);
    if (write(fd, line, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    buf[0] = 0;
    while (got + 1 < len) {
        ssize_t k = read(fd, buf + got, len - 1 - got);
        if (k <= 0) break;
        got += (size_t)k;
        buf[got] = 0;
        if (strstr(buf, "END\n") || (strchr(buf, '\n') && strncmp(buf, "END", 3) &&
                                     (!strncmp(buf, "OK", 2) || !strncmp(buf, "ERROR", 5) ||
                                      !strncmp(buf, "CLIENT_ERROR", 12))))
            break;
    }
    close(fd);
    return got ? 0 : -1;
}

/* Value of key in "key=value" (list records) or "key value" (one record)
 * text; 0 if absent. */
uint64_t bench_field_u64(const char *text, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = text; (p = strstr(p, key)); p += kl) {
        if (p != text && p[-1] != ' ' && p[-1] != '\n') continue;
        if (p[kl] == '=' || p[kl] == ' ') return strtoull(p + kl + 1, NULL, 10);
    }
    return 0;
}

uint64_t bench_config_u64(const char *dir, const char *key)
{
    char cmd[128], buf[1024];
    snprintf(cmd, sizeof cmd, "config get %s", key);
    if (bench_admin(dir, cmd, buf, sizeof buf)) return 0;
    return bench_field_u64(buf, key);
}

/* RssAnon and RssShmem of a process, bytes. */
void bench_proc_rss(pid_t pid, uint64_t *anon, uint64_t *shmem)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    *anon = *shmem = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "RssAnon:", 8)) *anon = strtoull(line + 8, NULL, 10) << 10;
        if (!strncmp(line, "RssShmem:", 9)) *shmem = strtoull(line + 9, NULL, 10) << 10;
    }
    fclose(f);
}

void *bench_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "benchmark: out of memory\n");
        exit(1);
    }
    return p;
}

void *bench_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "benchmark: out of memory\n");
        exit(1);
    }
    return p;
}
