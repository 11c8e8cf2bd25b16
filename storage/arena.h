/* arena.h - memfd arenas: shared memory the daemon writes and clients map.
 *
 * A memfd passed with SCM_RIGHTS is always open read-write, so read-only
 * access must be enforced by seals, not by how the client maps it:
 *
 * - an arena (arena_open) is mapped read-write by its owner first, then
 *   sealed F_SEAL_FUTURE_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL.
 *   The owner's mapping keeps writing; anyone holding the fd (a client, or
 *   the owner itself through a new mapping) can no longer write(2) it, map it
 *   shared-writable, mprotect a read-only mapping to writable, nor resize it.
 *   Needs Linux >= 5.1.
 * - a staging memfd (arena_open_staging) is one client's write buffer for a
 *   put: sealed F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL only, so its holder
 *   may write it but never resize it (shrinking would SIGBUS the owner's
 *   mapping; growing would let a client consume memory).
 *
 * Both are created MFD_CLOEXEC | MFD_ALLOW_SEALING, plus MFD_NOEXEC_SEAL where
 * the kernel knows it (Linux >= 6.3; without it newer kernels warn, or refuse
 * when vm.memfd_noexec = 2).
 */
#ifndef SIMCACHE_ARENA_H
#define SIMCACHE_ARENA_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int fd;           /* the memfd, owned by the arena; -1 when closed */
    uint8_t *base;    /* owner's shared read-write mapping of [0, size) */
    uint64_t size;    /* bytes; fixed for the arena's life (sealed) */
} arena_t;

/* Create a sealed arena of `size` bytes (> 0; the caller rounds it to the
 * page size if it cares: the kernel maps whole pages either way). `name`
 * shows in /proc/PID/fd and /proc/PID/maps as "memfd:NAME"; NULL gives
 * "simcache-arena" (names longer than 249 bytes are cut). The bytes start
 * zeroed. On success *a holds the fd and mapping; close with arena_close().
 * On failure *a is closed (fd -1) and err (may be NULL) gets a one-line
 * message. Errors: -EINVAL (size 0 or past the address space, or a kernel
 * without F_SEAL_FUTURE_WRITE), -EMFILE, -ENOMEM, or another -errno from
 * memfd_create, ftruncate, mmap or fcntl. */
int arena_open(arena_t *a, const char *name, uint64_t size, char *err, size_t errlen);

/* Create a staging memfd of `size` bytes (> 0), mapped read-write by the
 * owner and sealed F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL: its size is
 * fixed, its bytes are not. Whoever holds the fd may change the bytes at any
 * moment, also while the owner reads them: copy first, then validate the
 * copy. NULL name gives "simcache-staging". Ownership, errors and err as for
 * arena_open(). */
int arena_open_staging(arena_t *a, const char *name, uint64_t size,
                       char *err, size_t errlen);

/* Unmap and close, and leave *a closed (fd -1, base NULL, size 0). Safe to
 * call again, and after a failed arena_open*() (which leaves *a closed); not
 * on a merely zero-filled arena_t, whose fd 0 is someone else's. Copies of
 * the fd held elsewhere (dup, SCM_RIGHTS) keep the memory alive. */
void arena_close(arena_t *a);

/* The seals on fd (F_SEAL_* bits), or a negative errno (e.g. -EINVAL if fd
 * is not a memfd). For checks and tests. */
int arena_seals(int fd);

#endif
