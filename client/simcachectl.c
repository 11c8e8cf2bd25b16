/* simcachectl - command-line client of simcached's admin socket.
 *
 * Sends one admin command (the words given on the command line) and prints
 * the reply: human text by default, one JSON document with --json (before or
 * after the command). `wait` is the one command of its own: it retries until
 * the daemon answers `ping`. Exit status: 0 success, 1 the daemon refused the
 * command (or `wait` timed out), 2 no daemon or bad usage.
 */
#include "simcache.h"           /* SIMCACHE_VERSION_STRING */

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: simcachectl [-s ADMIN_SOCKET] [--json] COMMAND [ARGS...]\n"
            "       simcachectl [-s ADMIN_SOCKET] wait [--timeout SECONDS]\n"
            "  -s, --socket PATH   admin socket (default: $SIMCACHE_ADMIN_SOCKET, else the\n"
            "                      daemon's default under $XDG_RUNTIME_DIR or /tmp)\n"
            "  --json              print the reply as JSON (anywhere on the line)\n"
            "  -V, --version       print the version\n"
            "  -h, --help          print this help\n"
            "commands: help, ping, stats, info, config get KEY|all, config set KEY VALUE,\n"
            "          namespaces, clients, list [NS] [LIMIT], show ID, flush [NS], evict N,\n"
            "          route NS V1,V2,...|b64:BASE64, peers, prototypes [NS], verify,\n"
            "          checkpoint, shutdown (the daemon's `help` lists them all)\n"
            "  wait [--timeout SECONDS]  wait until the daemon answers ping (default 30 s;\n"
            "                      retries every 50 ms); exit 0 ready, 1 timed out\n");
}

static void default_socket(char *out, size_t n)
{
    const char *env = getenv("SIMCACHE_ADMIN_SOCKET");
    const char *x = getenv("XDG_RUNTIME_DIR");
    if (env && *env) snprintf(out, n, "%s", env);
    else if (x && x[0] == '/' && strlen(x) < 64) snprintf(out, n, "%s/simcache/admin.sock", x);
    else snprintf(out, n, "/tmp/simcache-%u/admin.sock", (unsigned)getuid());
}

/* Buffered line reader over the socket. */
typedef struct {
    int fd;
    char buf[65536];
    size_t len, pos;
} reader_t;

static int read_line(reader_t *r, char *line, size_t max)
{
    size_t n = 0;
    for (;;) {
        if (r->pos == r->len) {
            ssize_t k = read(r->fd, r->buf, sizeof r->buf);
            if (k <= 0) return -1;
            r->len = (size_t)k;
            r->pos = 0;
        }
        char c = r->buf[r->pos++];
        if (c == '\n') break;
        if (n + 1 < max) line[n++] = c;
    }
    line[n] = 0;
    return 0;
}

static int send_line(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        s += k;
        n -= (size_t)k;
    }
    return 0;
}

static int is_final(const char *l)
{
    if (l[0] == '{' || l[0] == '[') return 1;   /* a JSON reply (after `format json`) */
    static const char *const words[] = { "OK", "ERROR", "CLIENT_ERROR", "SERVER_ERROR",
                                         "NOT_FOUND", "PONG" };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t n = strlen(words[i]);
        if (strncmp(l, words[i], n) == 0 && (l[n] == 0 || l[n] == ' ')) return 1;
    }
    return 0;
}

static int is_json(const char *l) { return l[0] == '{' || l[0] == '['; }

static int is_error(const char *l)
{
    return strncmp(l, "ERROR", 5) == 0 || strncmp(l, "CLIENT_ERROR", 12) == 0 ||
           strncmp(l, "SERVER_ERROR", 12) == 0 || strncmp(l, "NOT_FOUND", 9) == 0 ||
           strncmp(l, "{\"error\"", 8) == 0;
}

/* After a failed connect to path (err: its errno): a line naming the likely
 * cause, when there is one to name. */
static void connect_hint(const char *path, int err)
{
    if (err == EACCES || err == EPERM)
        fprintf(stderr, "simcachectl: uid %u may not open the socket: its mode (socket_mode, "
                "default 0600) or its directory's permissions keep this user out; run as the "
                "daemon's user or root, or widen socket_mode and add the uid to admin_uids "
                "(admin_read_uids to read only; docs/admin.md)\n", (unsigned)getuid());
    else if (err == ENOENT || err == ECONNREFUSED || err == ENOTDIR)
        fprintf(stderr, "simcachectl: no simcached is running at %s (%s); start it, or give "
                "its admin_socket with -s or $SIMCACHE_ADMIN_SOCKET\n", path,
                err == ECONNREFUSED ? "a socket file is there but nothing accepts on it"
                                    : "no such socket");
}

/* After a refusal line from the daemon: which setting decides. */
static void refusal_hint(const char *line)
{
    if (strstr(line, "uid not allowed"))
        fprintf(stderr, "simcachectl: uid %u has no admin role: add it to admin_uids (or "
                "admin_read_uids to read only) in the daemon's config, or run as the daemon's "
                "user or root\n", (unsigned)getuid());
}

/* Connect to path; the socket fd or -errno. nonblock: for `wait`, where a
 * full backlog must not block past the deadline. */
static int connect_admin(const char *path, int nonblock)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) return -errno;
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun)) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One try of `wait`: connect, ping, read one line before the deadline.
 * 1 ready, 0 not yet (*err: the errno of what failed), -1 the daemon
 * answered with a refusal (copied into line). */
static int ping_once(const char *path, double deadline, int *err, char *line, size_t max)
{
    int fd = connect_admin(path, 1);
    if (fd < 0) {
        *err = -fd;
        return 0;
    }
    int rc = 0;
    size_t n = 0;
    /* Sending may fail if a refused uid's connection is already closed; the
     * refusal line is still there to read. */
    ssize_t w = send(fd, "ping\n", 5, MSG_NOSIGNAL);
    if (w != 5) *err = errno;
    for (;;) {
        int ms = (int)((deadline - now_s()) * 1000);
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (ms <= 0 || poll(&p, 1, ms) <= 0) {
            *err = ETIMEDOUT;
            break;
        }
        char c;
        ssize_t k = read(fd, &c, 1);
        if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (k <= 0) {
            *err = k < 0 ? errno : ECONNRESET;
            break;
        }
        if (c != '\n') {
            if (n + 1 < max) line[n++] = c;
            continue;
        }
        line[n] = 0;
        if (strcmp(line, "PONG") == 0) rc = 1;
        else if (is_error(line)) rc = -1;
        else *err = EPROTO;
        break;
    }
    close(fd);
    return rc;
}

/* simcachectl wait [--timeout SECONDS]: args are the words after `wait`. */
static int cmd_wait(const char *path, int argc, char **argv)
{
    double timeout = 30;
    for (int i = 0; i < argc; i++) {
        const char *v = NULL;
        if (strcmp(argv[i], "--timeout") == 0 || strcmp(argv[i], "-t") == 0) {
            if (i + 1 == argc) {
                fprintf(stderr, "simcachectl: wait: option '%s' needs an argument (SECONDS)\n",
                        argv[i]);
                return 2;
            }
            v = argv[++i];
        } else if (strncmp(argv[i], "--timeout=", 10) == 0) {
            v = argv[i] + 10;
        } else {
            fprintf(stderr, "simcachectl: wait: unknown option '%s' (usage: wait [--timeout "
                    "SECONDS])\n", argv[i]);
            return 2;
        }
        char *end;
        errno = 0;
        timeout = strtod(v, &end);
        if (errno || end == v || *end || !(timeout >= 0 && timeout <= 86400)) {
            fprintf(stderr, "simcachectl: wait: --timeout '%s': not a number of seconds "
                    "(0 to 86400)\n", v);
            return 2;
        }
    }
    double deadline = now_s() + timeout;
    char line[512];
    int err = 0;
    for (;;) {
        int r = ping_once(path, deadline, &err, line, sizeof line);
        if (r > 0) return 0;
        if (r < 0) {
            fprintf(stderr, "%s\n", line);
            refusal_hint(line);
            return 1;
        }
        double left = deadline - now_s();
        if (left <= 0) break;
        struct timespec ts = { 0, (long)((left < 0.05 ? left : 0.05) * 1e9) };
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "simcachectl: simcached not ready at %s after %g s: %s\n", path, timeout,
            strerror(err));
    connect_hint(path, err);
    return 1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "socket", required_argument, NULL, 's' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    char path[108];
    int json = 0, c;
    path[0] = 0;
    opterr = 0;
    /* "+": options stop at the command, so its words (`show -5`, a route
     * vector starting with '-') go to the daemon as they are. */
    while ((c = getopt_long(argc, argv, "+:s:hV", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            snprintf(path, sizeof path, "%s", optarg);
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("simcachectl %s\n", SIMCACHE_VERSION_STRING);
            return 0;
        case ':':
            fprintf(stderr, "simcachectl: option '%s' needs an argument\n", argv[optind - 1]);
            fprintf(stderr, "try 'simcachectl --help'\n");
            return 2;
        default: {
            const char *bad = argv[optind - 1];
            if (optopt && strncmp(bad, "--", 2) == 0)     /* --json=1 */
                fprintf(stderr, "simcachectl: option '%.*s' takes no argument\n",
                        (int)strcspn(bad, "="), bad);
            else if (optopt) fprintf(stderr, "simcachectl: unknown option '-%c'\n", optopt);
            else fprintf(stderr, "simcachectl: unknown option '%.*s'\n",
                         (int)strcspn(bad, "="), bad);
            fprintf(stderr, "try 'simcachectl --help'\n");
            return 2;
        }
        }
    }
    /* --json may also come after the command (`simcachectl stats --json`):
     * take it out of the command's words. */
    int words = 0;
    for (int k = optind; k < argc; k++) {
        if (strcmp(argv[k], "--json") == 0) json = 1;
        else argv[optind + words++] = argv[k];
    }
    if (words == 0) {
        usage(stderr);
        return 2;
    }
    if (!path[0]) default_socket(path, sizeof path);
    char **w = argv + optind;
    if (strcmp(w[0], "wait") == 0) return cmd_wait(path, words - 1, w + 1);

    char cmd[4200];
    size_t used = 0;
    for (int k = 0; k < words; k++) {
        int quote = strchr(w[k], ' ') != NULL || w[k][0] == 0;
        int n = snprintf(cmd + used, sizeof cmd - used, "%s%s%s%s", k > 0 ? " " : "",
                         quote ? "\"" : "", w[k], quote ? "\"" : "");
        if (n < 0 || (size_t)n >= sizeof cmd - used) {
            fprintf(stderr, "simcachectl: command too long\n");
            return 2;
        }
        used += (size_t)n;
    }
    snprintf(cmd + used, sizeof cmd - used, "\n");

    int fd = connect_admin(path, 0);
    if (fd < 0) {
        fprintf(stderr, "simcachectl: cannot connect to %s: %s\n", path, strerror(-fd));
        connect_hint(path, -fd);
        return 2;
    }
    static reader_t r;
    r.fd = fd;
    static char line[1 << 20];
    /* A refused uid's connection gets one SERVER_ERROR line and is closed,
     * so a send may fail with EPIPE: read what the daemon said before
     * calling the connection lost. */
    int sent = 1;
    if (json) {
        sent = send_line(fd, "format json\n") == 0;
        if (read_line(&r, line, sizeof line)) goto lost;
        if (is_error(line) && !is_json(line)) goto refused;
    }
    if (sent && send_line(fd, cmd)) sent = 0;
    int rc = 0;
    if (json) {
        if (read_line(&r, line, sizeof line)) goto lost;
        if (is_error(line) && !is_json(line)) goto refused;
        puts(line);
        rc = is_error(line);
    } else {
        for (;;) {
            if (read_line(&r, line, sizeof line)) goto lost;
            if (strcmp(line, "END") == 0) break;
            if (is_final(line)) {
                rc = is_error(line);
                (rc ? fprintf(stderr, "%s\n", line) : printf("%s\n", line));
                if (rc) refusal_hint(line);
                break;
            }
            puts(line);
        }
    }
    close(fd);
    return rc;
refused:
    fprintf(stderr, "%s\n", line);
    refusal_hint(line);
    close(fd);
    return 1;
lost:
    fprintf(stderr, "simcachectl: connection to %s lost%s\n", path,
            sent ? "" : " (the daemon closed it before the command was sent)");
    return 2;
}
