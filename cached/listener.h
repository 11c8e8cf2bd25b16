/* listener.h - the Unix stream listeners of the client and admin sockets. */
#ifndef SIMCACHE_LISTENER_H
#define SIMCACHE_LISTENER_H

#include <event2/listener.h>

typedef struct daemon daemon_t;

/* Bind a Unix stream listener at path with cfg.socket_mode on d's loop,
 * replacing a stale socket file but never one a live daemon answers on, nor
 * anything that is not a socket. cb(arg) gets each accepted fd. NULL on
 * failure (logged). The caller frees it with evconnlistener_free. */
struct evconnlistener *listener_open(daemon_t *d, const char *path, evconnlistener_cb cb,
                                     void *arg);

#endif
