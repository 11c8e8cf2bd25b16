/* admin.h - operator connections: the text protocol over the admin socket
 * (docs/admin.md). */
#ifndef SIMCACHE_ADMIN_H
#define SIMCACHE_ADMIN_H

typedef struct daemon daemon_t;

/* Listen on cfg.admin_socket. 0 or -1 (logged). */
int admin_listen(daemon_t *d);
/* Stop accepting (drain); removes the socket file. */
void admin_close_listener(daemon_t *d);
/* Close every admin connection (shutdown). */
void admin_close_all(daemon_t *d);

#endif
