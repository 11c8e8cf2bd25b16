/* principal.c - who is on the other end of a socket, and what they may do
 * (principal.h). */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "principal.h"

int principal_of(int fd, principal_t *p)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len)) return -1;
    if (len != sizeof cred || cred.pid <= 0) {
        /* A socket without a connected peer (or a kernel that filled in
         * nothing) reports pid 0: no identity, no entry. */
        errno = ENOTCONN;
        return -1;
    }
    p->pid = cred.pid;
    p->uid = cred.uid;
    p->gid = cred.gid;
    return 0;
}

int principal_is_client(const daemon_t *d, const principal_t *p)
{
    if (d->cfg.allow_uids.n == 0 || p->uid == getuid()) return 1;
    return config_uids_has(&d->cfg.allow_uids, p->uid);
}

role_t principal_admin_role(const daemon_t *d, const principal_t *p)
{
    if (p->uid == getuid() || p->uid == 0 || config_uids_has(&d->cfg.admin_uids, p->uid))
        return ROLE_ADMIN;
    if (config_uids_has(&d->cfg.admin_read_uids, p->uid)) return ROLE_ADMIN_READ;
    return ROLE_NONE;
}

const char *role_name(role_t r)
{
    switch (r) {
    case ROLE_ADMIN: return "admin";
    case ROLE_ADMIN_READ: return "admin-read";
    case ROLE_CLIENT: return "client";
    default: return "none";
    }
}
