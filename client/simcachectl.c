/* simcachectl - command-line client of simcached's admin socket.
 *
 * Sends one admin command (the words given on the command line) and prints
 * the reply: human text by default, one JSON document with --json. Exit
 * status: 0 success, 1 the daemon refused the command, 2 no daemon or bad
 * usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: simcachectl [-s ADMIN_SOCKET] [--json] COMMAND [ARGS...]\n"
            "  -s, --socket PATH   admin socket (default: $SIMCACHE_ADMIN_SOCKET, else the\n"
            "                      daemon's default under $XDG_RUNTIME_DIR or /tmp)\n"
            "  --json              print the reply as JSON\n"
            "commands: help, ping, stats, info, config get KEY|all, config set KEY VALUE,\n"
            "          namespaces, clients, list [NS] [LIMIT], show ID, flush [NS], evict N,\n"
            "          route NS V1,V2,...|b64:BASE64, peers, prototypes [NS], shutdown\n");
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

static int is_error(const char *l)
{
    return strncmp(l, "ERROR", 5) == 0 || strncmp(l, "CLIENT_ERROR", 12) == 0 ||
           strncmp(l, "SERVER_ERROR", 12) == 0 || strncmp(l, "NOT_FOUND", 9) == 0 ||
           strncmp(l, "{\"error\"", 8) == 0;
}

int main(int argc, char **argv)
{
    char path[108];
    int json = 0, i = 1;
    path[0] = 0;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--json") == 0) json = 1;
        else if ((strcmp(argv[i], "-s") == 0 || strcmp(argv[i], "--socket") == 0) && i + 1 < argc)
            snprintf(path, sizeof path, "%s", argv[++i]);
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (i == argc) {
        usage(stderr);
        return 2;
    }
    if (!path[0]) default_socket(path, sizeof path);
    char cmd[4200];
    size_t used = 0;
    for (int k = i; k < argc; k++) {
        int quote = strchr(argv[k], ' ') != NULL || argv[k][0] == 0;
        int n = snprintf(cmd + used, sizeof cmd - used, "%s%s%s%s", k > i ? " " : "",
                         quote ? "\"" : "", argv[k], quote ? "\"" : "");
        if (n < 0 || (size_t)n >= sizeof cmd - used) {
            fprintf(stderr, "simcachectl: command too long\n");
            return 2;
        }
        used += (size_t)n;
    }
    snprintf(cmd + used, sizeof cmd - used, "\n");

    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun)) {
        fprintf(stderr, "simcachectl: cannot connect to %s: %s (is simcached running?)\n", path,
                strerror(errno));
        return 2;
    }
    static reader_t r;
    r.fd = fd;
    static char line[1 << 20];
    if (json) {
        if (send_line(fd, "format json\n") || read_line(&r, line, sizeof line)) goto lost;
    }
    if (send_line(fd, cmd)) goto lost;
    int rc = 0;
    if (json) {
        if (read_line(&r, line, sizeof line)) goto lost;
        puts(line);
        rc = is_error(line);
    } else {
        for (;;) {
            if (read_line(&r, line, sizeof line)) goto lost;
            if (strcmp(line, "END") == 0) break;
            if (is_final(line)) {
                rc = is_error(line);
                (rc ? fprintf(stderr, "%s\n", line) : printf("%s\n", line));
                break;
            }
            puts(line);
        }
    }
    close(fd);
    return rc;
lost:
    fprintf(stderr, "simcachectl: connection to %s lost\n", path);
    return 2;
}
