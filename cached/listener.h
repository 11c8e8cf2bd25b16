/* listener.h - the Unix stream listeners of the client and admin sockets. */
#ifndef SIMCACHE_LISTENER_H
#define SIMCACHE_LISTENER_H

#include <event2/listener.h>

typedef struct daemon daemon_t;

/* Bind a Unix stream listener at path with cfg.socket_mode on d's loop,
 * replacing a stale socket file but never one a live daemon answers on, nor
 * anything that is not a socket. cb(arg) gets each accepted fd; `who` names
 * the peers in the log ("clients"). NULL on failure (logged). The caller
 * ends it with listener_close. */
struct evconnlistener *listener_open(daemon_t *d, const char *path, evconnlistener_cb cb,
                                     void *arg, const char *who);

/* Free *l (if any) and remove its socket file at path; *l becomes NULL. */
void listener_close(struct evconnlistener **l, const char *path);

#endif
