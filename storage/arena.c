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
#include <inttypes.h>
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
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21U << 26)
#endif
#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
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

static int create_memfd(const char *name, unsigned extra)
{
    char nm[ARENA_NAME_MAX + 1];
    int fd;

    snprintf(nm, sizeof(nm), "%s", name);
    fd = memfd_create(nm, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL | extra);
    /* Kernels before 6.3 do not know MFD_NOEXEC_SEAL and say EINVAL. */
    if (fd < 0 && errno == EINVAL)
        fd = memfd_create(nm, MFD_CLOEXEC | MFD_ALLOW_SEALING | extra);
    return fd;
}

/* A count of the 2 MiB hugetlb pool ("nr_hugepages", "free_hugepages");
 * -1 if unknown. */
static long hugetlb_pool_pages(const char *what)
{
    char path[96];
    FILE *f;
    long n = -1;

    snprintf(path, sizeof path, "/sys/kernel/mm/hugepages/hugepages-2048kB/%s", what);
    f = fopen(path, "r");
    if (f != NULL) {
        if (fscanf(f, "%ld", &n) != 1)
            n = -1;
        fclose(f);
    }
    return n;
}

/* The bracketed word of a sysfs THP setting ("always [advise] never"). */
static int thp_setting(const char *path, char *out, size_t n)
{
    char line[160], *l, *r;
    FILE *f = fopen(path, "r");

    if (f == NULL)
        return -1;
    l = fgets(line, sizeof line, f);
    fclose(f);
    if (l == NULL || (l = strchr(line, '[')) == NULL || (r = strchr(l, ']')) == NULL)
        return -1;
    snprintf(out, n, "%.*s", (int)(r - l - 1), l + 1);
    return 0;
}

/* Whether the kernel gives shmem (so a memfd) transparent huge pages where
 * MADV_HUGEPAGE asks: the 2 MiB size's own setting where the kernel has one
 * (6.11+) and it is not "inherit", else the global one. */
static int shmem_thp_allowed(void)
{
    char v[32];

    if (thp_setting("/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/shmem_enabled",
                    v, sizeof v) != 0 || strcmp(v, "inherit") == 0) {
        if (thp_setting("/sys/kernel/mm/transparent_hugepage/shmem_enabled", v, sizeof v) != 0)
            return 0;
    }
    return strcmp(v, "always") == 0 || strcmp(v, "within_size") == 0 ||
           strcmp(v, "advise") == 0 || strcmp(v, "force") == 0;
}

/* A hugetlb memfd of `size` bytes (a multiple of 2 MiB), mapped. A shared
 * hugetlb mapping reserves its pages when it is made, so a pool too small
 * fails here (ENOMEM), never later with SIGBUS on a first touch. */
static int map_hugetlb(arena_t *a, const char *name, uint64_t size)
{
    void *p;
    int e;

    a->fd = create_memfd(name, MFD_HUGETLB | MFD_HUGE_2MB);
    if (a->fd < 0)
        return -errno;
    if (ftruncate(a->fd, (off_t)size) != 0) {
        e = errno;
        close(a->fd);
        a->fd = -1;
        return -e;
    }
    /* ENOMEM while the pool as a whole is big enough: another process holds
     * the pages, or held them a moment ago (a daemon just stopped; a ring
     * that had them registered frees them from a kernel worker after the
     * process is gone). Wait up to 2 s for them to come back. */
    for (int tries = 0;; tries++) {
        p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, a->fd, 0);
        e = p == MAP_FAILED ? errno : 0;
        if (e != ENOMEM || tries == 40 ||
            hugetlb_pool_pages("nr_hugepages") < (long)(size / ARENA_HUGE_PAGE))
            break;
        usleep(50 * 1000);
    }
    if (e != 0) {
        close(a->fd);
        a->fd = -1;
        return -e;
    }
    a->base = p;
    return 0;
}

static int open_sealed(arena_t *a, const char *name, uint64_t size, int seals,
                       arena_huge_t huge, char *err, size_t errlen)
{
    void *p;

    a->fd = -1;
    a->base = NULL;
    a->size = 0;
    a->pages = ARENA_PAGES_4K;
    if (size == 0 || size > (uint64_t)INT64_MAX || (uint64_t)(size_t)size != size)
        return fail(a, EINVAL, err, errlen, "arena", "size must be > 0 and mappable");

    if (huge != ARENA_HUGE_OFF && size % ARENA_HUGE_PAGE == 0) {
        int rc = map_hugetlb(a, name, size);
        if (rc == 0) {
            a->pages = ARENA_PAGES_HUGETLB;
        } else if (huge == ARENA_HUGE_ON) {
            char why[200];
            long free_pages = hugetlb_pool_pages("free_hugepages");
            snprintf(why, sizeof why, "cannot reserve %" PRIu64 " huge pages of 2 MiB (%s; %ld "
                     "free in the pool: reserve more with sysctl vm.nr_hugepages)",
                     size / ARENA_HUGE_PAGE, strerror(-rc), free_pages);
            return fail(a, -rc, err, errlen, "host_huge_pages=on", why);
        }
    } else if (huge == ARENA_HUGE_ON) {
        return fail(a, EINVAL, err, errlen, "host_huge_pages=on",
                    "the arena size is not a multiple of 2 MiB");
    }
    if (a->pages != ARENA_PAGES_HUGETLB) {
        a->fd = create_memfd(name, 0);
        if (a->fd < 0)
            return fail(a, errno, err, errlen, "memfd_create", NULL);
        if (ftruncate(a->fd, (off_t)size) != 0)
            return fail(a, errno, err, errlen, "ftruncate", NULL);
        p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, a->fd, 0);
        if (p == MAP_FAILED)
            return fail(a, errno, err, errlen, "mmap", NULL);
        a->base = p;
        /* Transparent huge pages for shmem, where the kernel allows them
         * (shmem_enabled advise, within_size or always); a no-op elsewhere. */
        if (huge == ARENA_HUGE_TRY && madvise(p, (size_t)size, MADV_HUGEPAGE) == 0 &&
            shmem_thp_allowed())
            a->pages = ARENA_PAGES_THP;
    }
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
                       ARENA_HUGE_OFF, err, errlen);
}

int arena_open_huge(arena_t *a, const char *name, uint64_t size, arena_huge_t huge,
                    char *err, size_t errlen)
{
    return open_sealed(a, name != NULL ? name : "simcache-arena", size, ARENA_SEALS,
                       huge, err, errlen);
}

int arena_open_staging(arena_t *a, const char *name, uint64_t size,
                       char *err, size_t errlen)
{
    return open_sealed(a, name != NULL ? name : "simcache-staging", size, STAGING_SEALS,
                       ARENA_HUGE_OFF, err, errlen);
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
    a->pages = ARENA_PAGES_4K;
}

int arena_seals(int fd)
{
    int seals = fcntl(fd, F_GET_SEALS);

    return seals < 0 ? -errno : seals;
}
