/* principal.h - who is on the other end of a socket, and what they may do.
 *
 * A connection's principal is what the kernel says (SO_PEERCRED: pid, uid,
 * gid), never what the client says. When the kernel does not say, the
 * connection is refused: identity fails closed. Roles come from the config:
 *
 *   client      the client socket: allow_uids (empty: any uid that can open
 *               the socket; the socket's mode and directory decide who can)
 *   admin-read  the admin socket, read-only commands: admin_read_uids
 *   admin       the admin socket, every command: the daemon's own uid, root,
 *               and admin_uids
 *
 * Being allowed on the client socket gives no admin role.
 */
#ifndef SIMCACHE_PRINCIPAL_H
#define SIMCACHE_PRINCIPAL_H

#include <sys/types.h>

typedef struct daemon daemon_t;

typedef struct {
    pid_t pid;
    uid_t uid;
    gid_t gid;
} principal_t;

typedef enum {
    ROLE_NONE = 0,     /* refused */
    ROLE_CLIENT,
    ROLE_ADMIN_READ,
    ROLE_ADMIN,
} role_t;

/* The peer of connected Unix socket fd. 0, or -1 with errno set when the
 * kernel gave no credentials (the caller refuses the connection). */
int principal_of(int fd, principal_t *p);
/* May p connect to the client socket? 1 or 0. */
int principal_is_client(const daemon_t *d, const principal_t *p);
/* p's role on the admin socket (ROLE_NONE: refused). */
role_t principal_admin_role(const daemon_t *d, const principal_t *p);
/* "admin", "admin-read", "client" or "none". */
const char *role_name(role_t r);

#endif
