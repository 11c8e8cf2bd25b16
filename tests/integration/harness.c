/* harness.c - start/stop a real simcached, speak its two protocols raw, fork
 * client processes, make deterministic embeddings and blobs.
 *
 * Everything waits with a poll() timeout (IT_TIMEOUT_MS) so a daemon that
 * stops answering fails the test instead of hanging meson.
 */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *it_simcached;

void it_init(int argc, char **argv)
{
    it_simcached = argc > 1 ? argv[1] : getenv("SIMCACHED");
    if (!it_simcached || !*it_simcached) {
        fprintf(stderr, "usage: %s PATH-TO-SIMCACHED (or set $SIMCACHED); skipping\n", argv[0]);
        exit(77);
    }
    /* A test that writes to a daemon that just died must fail, not die. */
    signal(SIGPIPE, SIG_IGN);
}

void it_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- daemon ---- */

pid_t it_spawn(const char *log_path, const char *const *args)
{
    size_t n = 0;
    while (args && args[n]) n++;
    char **argv = calloc(n + 2, sizeof *argv);
    if (!argv) return -1;
    argv[0] = (char *)it_simcached;
    for (size_t i = 0; i < n; i++) argv[i + 1] = (char *)args[i];
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        /* The daemon must not hold the test's sockets and pipes. */
        for (int i = 3; i < 1024; i++) close(i);
        signal(SIGPIPE, SIG_DFL);
        execv(it_simcached, argv);
        fprintf(stderr, "exec %s: %s\n", it_simcached, strerror(errno));
        _exit(127);
    }
    free(argv);
    return pid;
}

static int decode_status(int st)
{
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

int it_wait_pid(pid_t pid, int timeout_ms)
{
    uint64_t end = mono_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return decode_status(st);
        if (r < 0 && errno != EINTR) return -2;
        if (mono_ms() >= end) return -1;
        it_sleep_ms(5);
    }
}

static int socket_answers(const char *path)
{
    int fd = it_raw_connect(path);
    if (fd < 0) return 0;
    close(fd);
    return 1;
}

int it_daemon_exited(it_daemon_t *d)
{
    if (!d->pid) return 1;
    int st;
    pid_t r = waitpid(d->pid, &st, WNOHANG);
    if (r == d->pid) {
        d->status = st;
        d->pid = 0;
        return 1;
    }
    return 0;
}

int it_daemon_startv(it_daemon_t *d, const char *const *extra)
{
    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "/tmp/scit-XXXXXX");
    if (!mkdtemp(d->dir)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    snprintf(d->sock, sizeof d->sock, "%s/client.sock", d->dir);
    snprintf(d->admin, sizeof d->admin, "%s/admin.sock", d->dir);
    snprintf(d->data, sizeof d->data, "%s/data", d->dir);
    snprintf(d->log, sizeof d->log, "%s/daemon.log", d->dir);
    const char *args[64];
    size_t n = 0;
    args[n++] = "--socket";
    args[n++] = d->sock;
    args[n++] = "--admin-socket";
    args[n++] = d->admin;
    args[n++] = "--data-dir";
    args[n++] = d->data;
    /* 4 KiB arena pages unless a test asks: the hugetlb pool is one for all
     * the tests running in parallel, and the tests of huge pages count on
     * the pages they added to it (a later flag wins). */
    args[n++] = "--host-huge-pages";
    args[n++] = "off";
    for (size_t i = 0; extra && extra[i] && n < 62; i++) args[n++] = extra[i];
    args[n] = NULL;
    d->pid = it_spawn(d->log, args);
    if (d->pid < 0) {
        d->pid = 0;
        return -1;
    }
    uint64_t end = mono_ms() + IT_TIMEOUT_MS;
    while (mono_ms() < end) {
        if (it_daemon_exited(d)) {
            fprintf(stderr, "simcached exited during start (status %d)\n", decode_status(d->status));
            it_daemon_dump_log(d);
            return -1;
        }
        if (socket_answers(d->sock) && socket_answers(d->admin)) {
            /* The probe may still hold a client slot (max_clients) until the
             * daemon has seen it close. */
            it_admin_wait_u64(d, "stats", "clients", 0);
            return 0;
        }
        it_sleep_ms(5);
    }
    fprintf(stderr, "simcached did not start listening in time\n");
    it_daemon_dump_log(d);
    return -1;
}

int it_daemon_start(it_daemon_t *d, ...)
{
    const char *extra[48];
    size_t n = 0;
    va_list ap;
    va_start(ap, d);
    const char *s;
    while ((s = va_arg(ap, const char *)) != NULL && n < 47) extra[n++] = s;
    va_end(ap);
    extra[n] = NULL;
    return it_daemon_startv(d, extra);
}

int it_daemon_stop(it_daemon_t *d)
{
    if (!d->pid) return decode_status(d->status);
    kill(d->pid, SIGTERM);
    int rc = it_wait_pid(d->pid, IT_TIMEOUT_MS);
    if (rc == -1) {
        fprintf(stderr, "simcached ignored SIGTERM; killing it\n");
        kill(d->pid, SIGKILL);
        it_wait_pid(d->pid, IT_TIMEOUT_MS);
    }
    d->pid = 0;
    if (rc != 0) {
        fprintf(stderr, "simcached exit status %d\n", rc);
        it_daemon_dump_log(d);
    }
    return rc;
}

static void rm_rf(const char *path)
{
    DIR *dir = opendir(path);
    if (dir) {
        struct dirent *de;
        while ((de = readdir(dir))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            char p[512];
            snprintf(p, sizeof p, "%s/%s", path, de->d_name);
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) rm_rf(p);
            else unlink(p);
        }
        closedir(dir);
    }
    rmdir(path);
}

void it_daemon_cleanup(it_daemon_t *d)
{
    if (d->pid) {
        kill(d->pid, SIGKILL);
        it_wait_pid(d->pid, IT_TIMEOUT_MS);
        d->pid = 0;
    }
    if (d->dir[0] && !getenv("IT_KEEP")) rm_rf(d->dir);
}

void it_daemon_dump_log(const it_daemon_t *d)
{
    FILE *f = fopen(d->log, "r");
    if (!f) return;
    char line[1024];
    fprintf(stderr, "---- %s ----\n", d->log);
    while (fgets(line, sizeof line, f)) fputs(line, stderr);
    fprintf(stderr, "---- end of log ----\n");
    fclose(f);
}

/* ---- sockets ---- */

int it_raw_connect(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sun.sun_path) return -1;
    strcpy(sun.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun)) {
        close(fd);
        return -1;
    }
    return fd;
}

static int wait_io(int fd, short ev, int timeout_ms)
{
    struct pollfd p = { fd, ev, 0 };
    int rc;
    do rc = poll(&p, 1, timeout_ms);
    while (rc < 0 && errno == EINTR);
    return rc > 0 ? 0 : -1;
}

int it_send_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n) {
        if (wait_io(fd, POLLOUT, IT_TIMEOUT_MS)) return -1;
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Read exactly n bytes, keeping the first fd that rides along in *fd_out.
 * 0, 1 on EOF before n bytes, -1 on timeout/error. */
static int recv_exact(int fd, uint8_t *p, size_t n, int *fd_out, int timeout_ms)
{
    while (n) {
        if (wait_io(fd, POLLIN, timeout_ms)) return -1;
        struct iovec iov = { p, n };
        union {
            char buf[CMSG_SPACE(8 * sizeof(int))];
            struct cmsghdr align;
        } u;
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                              .msg_controllen = sizeof u.buf };
        ssize_t k = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
        if (k < 0) {
            if (errno == EINTR) continue;
            return errno == ECONNRESET ? 1 : -1;
        }
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
            size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < nfd; i++) {
                int got;
                memcpy(&got, CMSG_DATA(cm) + i * sizeof(int), sizeof got);
                if (*fd_out < 0) *fd_out = got;
                else close(got);
            }
        }
        if (k == 0) return 1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int it_recv_frame(int fd, it_frame_t *f, int timeout_ms)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    uint8_t hb[PROTO_HDR_SIZE];
    int rc = recv_exact(fd, hb, sizeof hb, &f->fd, timeout_ms);
    if (rc) return rc;
    proto_hdr_decode(hb, UINT32_MAX, 1, &f->h);
    if (f->h.len) {
        f->payload = malloc(f->h.len);
        if (!f->payload) return -1;
        rc = recv_exact(fd, f->payload, f->h.len, &f->fd, timeout_ms);
        if (rc) {
            it_frame_free(f);
            return rc;
        }
    }
    return 0;
}

void it_frame_free(it_frame_t *f)
{
    free(f->payload);
    f->payload = NULL;
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
}

const char *it_frame_msg(const it_frame_t *f, char *buf, size_t n)
{
    buf[0] = 0;
    if (f->h.status >= 0 || !f->payload) return buf;
    proto_rd_t r;
    uint16_t len;
    proto_rd_init(&r, f->payload, f->h.len);
    const char *m = proto_rd_str(&r, PROTO_MAX_ERRMSG, &len);
    if (m) snprintf(buf, n, "%.*s", (int)len, m);
    return buf;
}

int it_wait_eof(int fd, int timeout_ms)
{
    uint64_t end = mono_ms() + (uint64_t)timeout_ms;
    char buf[4096];
    for (;;) {
        uint64_t now = mono_ms();
        if (now >= end) return 0;
        if (wait_io(fd, POLLIN, (int)(end - now))) return 0;
        ssize_t k = recv(fd, buf, sizeof buf, 0);
        if (k == 0) return 1;
        if (k < 0 && errno == ECONNRESET) return 1;
        if (k < 0 && errno != EINTR && errno != EAGAIN) return 0;
    }
}

int it_send_frame(int fd, uint16_t op, uint64_t req_id, const void *payload, size_t len)
{
    proto_wr_t w;
    proto_wr_init(&w);
    proto_wr_frame(&w, op, req_id, 0, payload, len);
    int rc = w.err ? -1 : it_send_all(fd, w.buf, w.len);
    proto_wr_free(&w);
    return rc;
}

int it_call(int fd, uint16_t op, uint64_t req_id, const proto_wr_t *payload, it_frame_t *reply)
{
    if (it_send_frame(fd, op, req_id, payload ? payload->buf : NULL, payload ? payload->len : 0))
        return 100;
    if (it_recv_frame(fd, reply, IT_TIMEOUT_MS)) return 100;
    return reply->h.status;
}

int it_raw_hello_n(int fd, const char *model, size_t model_len, const char *fp, size_t fp_len,
                   const char *tenant, size_t tenant_len, uint32_t dim, uint16_t vmin,
                   uint16_t vmax, proto_hello_reply_t *hr, int *arena_fd)
{
    proto_wr_t w;
    proto_wr_init(&w);
    proto_wr_u16(&w, vmin);
    proto_wr_u16(&w, vmax);
    proto_wr_u32(&w, dim);
    proto_wr_u32(&w, 0);
    proto_wr_u32(&w, (uint32_t)-1);
    proto_wr_str(&w, model, model_len);
    proto_wr_str(&w, fp, fp_len);
    proto_wr_str(&w, tenant, tenant_len);
    it_frame_t f;
    int rc = it_call(fd, OP_HELLO, 1, &w, &f);
    proto_wr_free(&w);
    if (arena_fd) *arena_fd = -1;
    if (rc == 0) {
        proto_rd_t r;
        proto_hello_reply_t tmp;
        proto_rd_init(&r, f.payload, f.h.len);
        if (proto_rd_hello_reply(&r, hr ? hr : &tmp) || f.fd < 0) rc = 101;
        if (arena_fd && rc == 0) {
            *arena_fd = f.fd;
            f.fd = -1;
        }
    }
    if (rc != 100) it_frame_free(&f);
    return rc;
}

int it_raw_hello(int fd, const char *model, const char *layout_fp, const char *tenant,
                 uint32_t dim, proto_hello_reply_t *hr, int *arena_fd)
{
    tenant = tenant ? tenant : "";
    return it_raw_hello_n(fd, model, strlen(model), layout_fp, strlen(layout_fp), tenant,
                          strlen(tenant), dim, PROTO_VERSION_MIN, PROTO_VERSION, hr, arena_fd);
}

/* ---- admin ---- */

int it_admin_open(it_admin_t *a, const char *path)
{
    a->len = a->pos = 0;
    a->fd = it_raw_connect(path);
    return a->fd < 0 ? -1 : 0;
}

void it_admin_close(it_admin_t *a)
{
    if (a->fd >= 0) close(a->fd);
    a->fd = -1;
}

int it_admin_send(it_admin_t *a, const char *text)
{
    return it_send_all(a->fd, text, strlen(text));
}

int it_admin_line(it_admin_t *a, char *line, size_t n)
{
    size_t k = 0;
    for (;;) {
        if (a->pos == a->len) {
            if (wait_io(a->fd, POLLIN, IT_TIMEOUT_MS)) return -1;
            ssize_t r = recv(a->fd, a->buf, sizeof a->buf, 0);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) return -1;
            a->len = (size_t)r;
            a->pos = 0;
        }
        char c = a->buf[a->pos++];
        if (c == '\n') break;
        if (k + 1 < n) line[k++] = c;
    }
    line[k] = 0;
    return 0;
}

static int is_final(const char *l)
{
    static const char *const words[] = { "OK", "ERROR", "CLIENT_ERROR", "SERVER_ERROR",
                                         "NOT_FOUND", "PONG" };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t n = strlen(words[i]);
        if (strncmp(l, words[i], n) == 0 && (l[n] == 0 || l[n] == ' ')) return 1;
    }
    return 0;
}

int it_admin_reply(it_admin_t *a, char *out, size_t n)
{
    size_t used = 0;
    char line[8192];
    out[0] = 0;
    for (int first = 1;; first = 0) {
        if (it_admin_line(a, line, sizeof line)) return -1;
        if (strcmp(line, "END") == 0) return 0;
        int k = snprintf(out + used, n - used, "%s%s", used ? "\n" : "", line);
        if (k > 0) used += (size_t)k < n - used ? (size_t)k : n - used - 1;
        if (first && is_final(line)) return 0;
    }
}

int it_admin(const it_daemon_t *d, const char *cmd, char *out, size_t n)
{
    it_admin_t a;
    out[0] = 0;
    if (it_admin_open(&a, d->admin)) return -1;
    char line[4200];
    snprintf(line, sizeof line, "%s\n", cmd);
    int rc = it_admin_send(&a, line);
    if (rc == 0) rc = it_admin_reply(&a, out, n);
    it_admin_close(&a);
    return rc;
}

/* The value of "key value" in a key/value reply (what follows the space),
 * or NULL. */
static const char *kv_find(const char *reply, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = reply; p && *p;) {
        if (strncmp(p, key, kl) == 0 && p[kl] == ' ') return p + kl + 1;
        p = strchr(p, '\n');
        if (p) p++;
    }
    return NULL;
}

int it_kv_u64(const char *reply, const char *key, uint64_t *v)
{
    const char *val = kv_find(reply, key);
    if (!val) return -1;
    char *end;
    unsigned long long x = strtoull(val, &end, 10);
    if (end == val) return -1;
    *v = x;
    return 0;
}

uint64_t it_admin_u64(const it_daemon_t *d, const char *cmd, const char *key)
{
    static char buf[65536];
    uint64_t v;
    if (it_admin(d, cmd, buf, sizeof buf) || it_kv_u64(buf, key, &v)) {
        fprintf(stderr, "admin '%s': no '%s' in reply: %s\n", cmd, key, buf);
        return UINT64_MAX;
    }
    return v;
}

int it_admin_str(const it_daemon_t *d, const char *cmd, const char *key, char *out, size_t n)
{
    static char buf[65536];
    if (it_admin(d, cmd, buf, sizeof buf)) return -1;
    const char *val = kv_find(buf, key);
    if (!val) {
        fprintf(stderr, "admin '%s': no '%s' in reply: %s\n", cmd, key, buf);
        return -1;
    }
    snprintf(out, n, "%.*s", (int)strcspn(val, "\n"), val);
    return 0;
}

uint64_t it_admin_wait_u64(const it_daemon_t *d, const char *cmd, const char *key, uint64_t want)
{
    uint64_t end = mono_ms() + IT_TIMEOUT_MS, v;
    do {
        v = it_admin_u64(d, cmd, key);
        if (v == want) return v;
        it_sleep_ms(10);
    } while (mono_ms() < end);
    return v;
}

/* ---- library ---- */

simcache_t *it_connect(const char *sock, const char *model, const char *fp, const char *tenant,
                       uint32_t dim)
{
    simcache_opts_t o;
    simcache_opts_init(&o);
    o.socket_path = sock;
    o.model = model;
    o.layout_fingerprint = fp;
    o.tenant = tenant;
    o.dim = dim;
    o.timeout_ms = IT_TIMEOUT_MS;
    simcache_t *h = NULL;
    int rc = simcache_connect(&o, &h);
    if (rc) {
        fprintf(stderr, "simcache_connect(%s): %s: %s\n", sock, simcache_strerror(rc),
                simcache_last_error(h));
        simcache_close(h);
        return NULL;
    }
    return h;
}

/* ---- embeddings and blobs ---- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double gauss(uint64_t *s)
{
    double u = ((double)(splitmix(s) >> 11) + 0.5) / 9007199254740992.0;
    double v = ((double)(splitmix(s) >> 11) + 0.5) / 9007199254740992.0;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static void normalize(double *v, uint32_t dim)
{
    double n = 0;
    for (uint32_t i = 0; i < dim; i++) n += v[i] * v[i];
    n = sqrt(n);
    for (uint32_t i = 0; i < dim; i++) v[i] /= n;
}

void it_unit(uint64_t seed, float *out, uint32_t dim)
{
    uint64_t s = seed * 0x2545f4914f6cdd1dull + 1;
    double *v = malloc(dim * sizeof *v);
    if (!v) abort();
    for (uint32_t i = 0; i < dim; i++) v[i] = gauss(&s);
    normalize(v, dim);
    for (uint32_t i = 0; i < dim; i++) out[i] = (float)v[i];
    free(v);
}

void it_similar(const float *u, float c, uint64_t seed, float *out, uint32_t dim)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 7;
    double *w = malloc(dim * sizeof *w), *uu = malloc(dim * sizeof *uu);
    if (!w || !uu) abort();
    for (uint32_t i = 0; i < dim; i++) uu[i] = u[i];
    normalize(uu, dim);
    for (uint32_t i = 0; i < dim; i++) w[i] = gauss(&s);
    double d = 0;
    for (uint32_t i = 0; i < dim; i++) d += w[i] * uu[i];
    for (uint32_t i = 0; i < dim; i++) w[i] -= d * uu[i];
    normalize(w, dim);
    double sn = sqrt(1.0 - (double)c * c);
    for (uint32_t i = 0; i < dim; i++) out[i] = (float)(c * uu[i] + sn * w[i]);
    free(w);
    free(uu);
}

float it_cosine(const float *a, const float *b, uint32_t dim)
{
    double ab = 0, aa = 0, bb = 0;
    for (uint32_t i = 0; i < dim; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return (float)(ab / sqrt(aa * bb));
}

void it_fill(uint8_t *p, uint64_t n, uint64_t seed)
{
    uint64_t s = seed ^ 0x5bd1e995u;
    uint64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x = splitmix(&s);
        memcpy(p + i, &x, 8);
    }
    uint64_t x = splitmix(&s);
    for (; i < n; i++, x >>= 8) p[i] = (uint8_t)x;
}

uint64_t it_check(const uint8_t *p, uint64_t n, uint64_t seed)
{
    uint64_t s = seed ^ 0x5bd1e995u, bad = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x = splitmix(&s);
        bad += memcmp(p + i, &x, 8) != 0;
    }
    uint64_t x = splitmix(&s);
    for (; i < n; i++, x >>= 8) bad += p[i] != (uint8_t)x;
    return bad;
}

simcache_layout_t it_layout(uint64_t bytes)
{
    /* f16, K and V, one condensed layer, 2 heads of 64: 512 bytes a token. */
    simcache_layout_t l = { SIMCACHE_DTYPE_F16, 2, 1, 2, 64, (uint32_t)(bytes / 512) };
    return l;
}

uint64_t it_put(simcache_t *h, const float *e, uint64_t bytes, uint64_t seed, const char *meta)
{
    uint8_t *kv = malloc(bytes);
    if (!kv) return 0;
    it_fill(kv, bytes, seed);
    simcache_layout_t l = it_layout(bytes);
    simcache_put_opts_t po = { meta, meta ? (uint32_t)strlen(meta) : 0, 0 };
    uint64_t id = 0;
    int rc = simcache_put_ex(h, e, &l, kv, bytes, SIMCACHE_HOST_MEMORY, &po, &id);
    free(kv);
    if (rc) {
        fprintf(stderr, "put of %llu bytes: %s: %s\n", (unsigned long long)bytes,
                simcache_strerror(rc), simcache_last_error(h));
        return 0;
    }
    return id;
}

/* ---- processes ---- */

pid_t it_fork(int (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int rc = fn(arg);
        fflush(NULL);
        _exit(rc > 255 ? 255 : rc);
    }
    return pid;
}

int it_write_u64(int fd, uint64_t v)
{
    return write(fd, &v, sizeof v) == (ssize_t)sizeof v ? 0 : -1;
}

int it_read_u64(int fd, uint64_t *v, int timeout_ms)
{
    uint8_t *p = (uint8_t *)v;
    size_t got = 0;
    while (got < sizeof *v) {
        if (wait_io(fd, POLLIN, timeout_ms)) return -1;
        ssize_t k = read(fd, p + got, sizeof *v - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        got += (size_t)k;
    }
    return 0;
}

int it_count_fds(pid_t pid, const char *needle)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *dp = opendir(dir);
    if (!dp) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (de->d_name[0] == '.') continue;
        char p[384], target[512];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        ssize_t k = readlink(p, target, sizeof target - 1);
        if (k <= 0) continue;
        target[k] = 0;
        if (strstr(target, needle)) n++;
    }
    closedir(dp);
    return n;
}
