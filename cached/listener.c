/* listener.c - the Unix stream listeners of the client and admin sockets
 * (listener.h). */
#include <errno.h>
#include <event2/listener.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"
#include "listener.h"
#include "log.h"

struct evconnlistener *listener_open(daemon_t *d, const char *path, evconnlistener_cb cb,
                                     void *arg, const char *who)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sun.sun_path) {
        log_error("socket path too long: %s", path);
        return NULL;
    }
    strcpy(sun.sun_path, path);
    /* A socket file nobody answers on is left over from a crash: replace it.
     * One that answers belongs to a running daemon: refuse to steal it. */
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0) {
        if (connect(probe, (struct sockaddr *)&sun, sizeof sun) == 0) {
            close(probe);
            log_error("%s: another simcached is listening there", path);
            return NULL;
        }
        close(probe);
    }
    /* Only ever replace a socket: a mistyped --socket must not delete a
     * regular file (or anything else) that happens to be there. */
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
        log_error("%s exists and is not a socket: refusing to replace it", path);
        return NULL;
    }
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error("socket: %s", strerror(errno));
        return NULL;
    }
    /* Create the file with the final mode: no window where it is wider. */
    mode_t old = umask(0777 & ~d->cfg.socket_mode);
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
    umask(old);
    if (rc || chmod(path, d->cfg.socket_mode)) {
        log_error("bind %s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    struct evconnlistener *l = evconnlistener_new(d->base, cb, arg,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 128, fd);
    if (!l) {
        log_error("listen %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return NULL;
    }
    log_info("listening for %s on %s", who, path);
    return l;
}

void listener_close(struct evconnlistener **l, const char *path)
{
    if (!*l) return;
    evconnlistener_free(*l);
    *l = NULL;
    unlink(path);
}
