/* server.h - client connections: the binary protocol over the client socket.
 *
 * The server owns each connection (client_t): its buffers, its unfinished
 * puts and their staging memory, its leases (lease.h) and its request
 * waiting for a promotion (tier.h's wake).
 */
#ifndef SIMCACHE_SERVER_H
#define SIMCACHE_SERVER_H

#include <stdint.h>

typedef struct daemon daemon_t;
typedef struct client client_t;

/* Listen on cfg.socket. 0 or -1 (logged). */
int server_listen(daemon_t *d);
/* Stop accepting (drain); removes the socket file. */
void server_close_listener(daemon_t *d);
/* Close every client (drain done or shutdown). */
void server_close_all(daemon_t *d);
/* Bytes still waiting to go out to clients. */
uint64_t server_pending_output(const daemon_t *d);
/* The disk tier's wake (tier_open): waiter is the client_t whose request
 * waited for one promotion; after its last, the request replays. */
void server_wake(void *waiter);
/* Per-client figures for admin `clients`. */
void server_foreach_client(daemon_t *d,
                           void (*fn)(void *arg, uint64_t id, int pid, unsigned uid, const char *ns,
                                      uint32_t leases, uint32_t puts, uint64_t requests),
                           void *arg);

#endif
