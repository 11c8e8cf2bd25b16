/* hugepool.h - tests that need 2 MiB hugetlb pages make room for them in the
 * kernel's pool (vm.nr_hugepages) and give it back afterwards.
 *
 * A machine that boots with no pool (the CI's, the default) has no hugetlb
 * page to give, so a test of the hugetlb arena grows the pool by what it
 * needs, as root, and shrinks it by as much when done. Tests run in
 * parallel, so every read-modify-write of the pool size holds an flock.
 * Without root, or when the kernel cannot find that many free 2 MiB pages,
 * hugepool_grow() says so and the test skips that part.
 */
#ifndef SIMCACHE_TEST_HUGEPOOL_H
#define SIMCACHE_TEST_HUGEPOOL_H

#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <unistd.h>

#define HUGEPOOL_DIR "/sys/kernel/mm/hugepages/hugepages-2048kB/"

static inline long hugepool_read(const char *name)
{
    char path[128];
    long v = -1;
    FILE *f;

    snprintf(path, sizeof path, HUGEPOOL_DIR "%s", name);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld", &v) != 1)
        v = -1;
    fclose(f);
    return v;
}

static inline int hugepool_write_total(long n)
{
    FILE *f = fopen(HUGEPOOL_DIR "nr_hugepages", "w");
    int ok;

    if (f == NULL)
        return -1;
    ok = fprintf(f, "%ld\n", n) > 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static inline int hugepool_lock(void)
{
    int fd = open("/tmp/simcache-test-hugepool.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);

    if (fd >= 0 && flock(fd, LOCK_EX) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Add `pages` to the pool. Returns the pages added (pages), or -1 when that
 * is not possible here (not root, no hugetlb, memory too fragmented); the
 * pool is left as it was then. */
static inline long hugepool_grow(long pages)
{
    int lk = hugepool_lock();
    long total, free_before, free_after;

    if (lk < 0)
        return -1;
    total = hugepool_read("nr_hugepages");
    free_before = hugepool_read("free_hugepages");
    if (total < 0 || free_before < 0 || hugepool_write_total(total + pages) != 0) {
        close(lk);
        return -1;
    }
    free_after = hugepool_read("free_hugepages");
    if (free_after < free_before + pages) {
        /* The kernel found fewer pages than asked: undo what it did add. */
        (void)hugepool_write_total(hugepool_read("nr_hugepages") - (free_after - free_before));
        close(lk);
        return -1;
    }
    close(lk);
    return pages;
}

/* Give back what hugepool_grow() added (a no-op for -1 or 0). */
static inline void hugepool_shrink(long pages)
{
    int lk;

    if (pages <= 0 || (lk = hugepool_lock()) < 0)
        return;
    (void)hugepool_write_total(hugepool_read("nr_hugepages") - pages);
    close(lk);
}

#endif
