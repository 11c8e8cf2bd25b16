/* arena.c - create, map and seal memfds.
 *
 * Order matters: the owner maps read-write *before* F_SEAL_FUTURE_WRITE goes
 * on, because that seal refuses new writable shared mappings but leaves
 * existing ones alone. F_SEAL_SEAL last, so nobody (holder or owner) can add
 * or remove anything afterwards.
 */
#include "arena.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Older headers (glibc 2.36 in Debian 12) lack the newer flags. */
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

/* memfd_create() refuses names over 249 bytes (NAME_MAX minus "memfd:"). */
#define ARENA_NAME_MAX 249

#define ARENA_SEALS   (F_SEAL_FUTURE_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)
#define STAGING_SEALS (F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)

static int fail(arena_t *a, int e, char *err, size_t errlen, const char *what,
                const char *why)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s: %s", what, why != NULL ? why : strerror(e));
    arena_close(a);
    return -e;
}

static int create_memfd(const char *name)
{
    char nm[ARENA_NAME_MAX + 1];
    int fd;

    snprintf(nm, sizeof(nm), "%s", name);
    fd = memfd_create(nm, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
    /* Kernels before 6.3 do not know MFD_NOEXEC_SEAL and say EINVAL. */
    if (fd < 0 && errno == EINVAL)
        fd = memfd_create(nm, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    return fd;
}

static int open_sealed(arena_t *a, const char *name, uint64_t size, int seals,
                       char *err, size_t errlen)
{
    void *p;

    a->fd = -1;
    a->base = NULL;
    a->size = 0;
    if (size == 0 || size > (uint64_t)INT64_MAX || (uint64_t)(size_t)size != size)
        return fail(a, EINVAL, err, errlen, "arena", "size must be > 0 and mappable");

    a->fd = create_memfd(name);
    if (a->fd < 0)
        return fail(a, errno, err, errlen, "memfd_create", NULL);
    if (ftruncate(a->fd, (off_t)size) != 0)
        return fail(a, errno, err, errlen, "ftruncate", NULL);
    p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, a->fd, 0);
    if (p == MAP_FAILED)
        return fail(a, errno, err, errlen, "mmap", NULL);
    a->base = p;
    a->size = size;
    if (fcntl(a->fd, F_ADD_SEALS, seals) != 0) {
        int e = errno;
        if (e == EINVAL && (seals & F_SEAL_FUTURE_WRITE))
            return fail(a, e, err, errlen, "fcntl(F_ADD_SEALS)",
                        "kernel lacks F_SEAL_FUTURE_WRITE (needs Linux >= 5.1)");
        return fail(a, e, err, errlen, "fcntl(F_ADD_SEALS)", NULL);
    }
    return 0;
}

int arena_open(arena_t *a, const char *name, uint64_t size, char *err, size_t errlen)
{
    return open_sealed(a, name != NULL ? name : "simcache-arena", size, ARENA_SEALS,
                       err, errlen);
}

int arena_open_staging(arena_t *a, const char *name, uint64_t size,
                       char *err, size_t errlen)
{
    return open_sealed(a, name != NULL ? name : "simcache-staging", size, STAGING_SEALS,
                       err, errlen);
}

void arena_close(arena_t *a)
{
    if (a->base != NULL)
        munmap(a->base, (size_t)a->size);
    if (a->fd >= 0)
        close(a->fd);
    a->fd = -1;
    a->base = NULL;
    a->size = 0;
}

int arena_seals(int fd)
{
    int seals = fcntl(fd, F_GET_SEALS);

    return seals < 0 ? -errno : seals;
}
