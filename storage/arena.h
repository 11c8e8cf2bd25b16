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

#define ARENA_HUGE_PAGE (2u << 20)

/* What an arena asks for (arena_open_huge). */
typedef enum {
    ARENA_HUGE_OFF = 0,   /* 4 KiB pages, nothing asked */
    ARENA_HUGE_TRY,       /* hugetlb if the pool holds it, else 4 KiB pages with MADV_HUGEPAGE */
    ARENA_HUGE_ON,        /* hugetlb or fail */
} arena_huge_t;

/* What it got. */
typedef enum {
    ARENA_PAGES_4K = 0,   /* shmem, 4 KiB pages */
    ARENA_PAGES_THP,      /* shmem advised MADV_HUGEPAGE, and the kernel's shmem_enabled
                             honours that: 2 MiB pages where the kernel finds them */
    ARENA_PAGES_HUGETLB,  /* hugetlb, 2 MiB pages reserved for the whole arena */
} arena_pages_t;

typedef struct {
    int fd;               /* the memfd, owned by the arena; -1 when closed */
    uint8_t *base;        /* owner's shared read-write mapping of [0, size) */
    uint64_t size;        /* bytes; fixed for the arena's life (sealed) */
    arena_pages_t pages;  /* what backs it */
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

/* arena_open() with huge pages. Huge pages make a 2 MiB O_DIRECT read one
 * device request instead of three (the block layer splits a request at 254
 * segments on virtio, and 4 KiB pages rarely sit next to each other), and
 * cost the kernel 512 times fewer pages to pin and map (docs/storage.md).
 * ARENA_HUGE_TRY and ARENA_HUGE_ON first try a memfd of 2 MiB hugetlb pages
 * (MFD_HUGETLB | MFD_HUGE_2MB): the mapping reserves every page up front, so
 * it fails at once when the pool (vm.nr_hugepages) is too small, never with
 * a SIGBUS later. Only a `size` that is a multiple of ARENA_HUGE_PAGE can be
 * hugetlb. Where that fails, TRY falls back to the plain memfd advised
 * MADV_HUGEPAGE (a->pages says ARENA_PAGES_THP when the kernel's shmem THP
 * setting honours the advice), and ON fails with -ENOMEM (or -EINVAL for a
 * size that is not a multiple), err naming the pool's free pages and the
 * sysctl. Seals, errors and ownership as for arena_open(). */
int arena_open_huge(arena_t *a, const char *name, uint64_t size, arena_huge_t huge,
                    char *err, size_t errlen);

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
