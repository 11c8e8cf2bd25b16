/* hosttier.c - the host tier: the memfd arena clients map, and its store
 * (hosttier.h).
 *
 * The store owns bytes; the catalog owns their meaning. The store's on_drop
 * callback is the one place a host entry's record leaves the host tier,
 * whatever removed it (eviction, delete after the last lease, flush): it
 * moves to the disk tier or is freed, so the index and the namespace counts
 * never disagree with the bytes.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "catalog.h"
#include "clock.h"
#include "daemon.h"
#include "hosttier.h"
#include "log.h"
#include "tier.h"

/* The host tier's own state beside its store (d->host). */
struct host {
    /* host_prefault, disk_register_arena: a thread populating the arena */
    pthread_t prefault_th;
    int prefault_all;             /* host_prefault at start (the thread's copy) */
    int prefault_running, prefault_stop;   /* stop: __atomic */
    uint64_t prefault_bytes;      /* done so far: __atomic */
    uint64_t prefault_step;       /* bytes per step (a registered piece) */
    int fixed_pieces;             /* disk_register_arena: pieces to register (0: off) */
};

static void on_drop(void *ctx, uint64_t id, void *user, store_drop_reason_t why)
{
    daemon_t *d = ctx;
    entry_t *e = user;
    /* These bytes are about to be reused: a write-behind of them must not
     * record what lands there next. */
    tier_cancel_write(d, id);
    if (!e) return;
    /* With a disk tier, an evicted entry moves there and stays findable. */
    if (why == STORE_DROP_EVICTED && e->indexed && tier_demote(d, e) == 0) return;
    if (why == STORE_DROP_EVICTED) log_debug("evicted entry %" PRIu64, e->id);
    catalog_entry_free(d, e);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define PREFAULT_STEP (64u << 20)

/* host_prefault, and disk_register_arena with a disk tier: a thread walks
 * the arena once, off the event loop. Each step is faulted in, so puts and
 * promotions never pay a first-touch fault (about 15 us per 4 KiB on a PVM
 * guest; docs/benchmarks.md); MADV_POPULATE_WRITE (Linux 5.14) populates
 * without writing, so it is safe beside the loop's writes. For the disk tier
 * the step is then registered with its io_uring (disk_fixed_add), so that
 * promotions into it and demotions from it skip pinning the pages on every
 * request. */
static void *prefault_main(void *arg)
{
    daemon_t *d = arg;
    uint8_t *base = store_base(d->store);
    uint64_t size = store_arena_size(d->store), t0 = mono_us(), step = d->host->prefault_step;
    int reg = d->host->fixed_pieces > 0;
    uint32_t piece = 0;
    for (uint64_t off = 0; off < size && !__atomic_load_n(&d->host->prefault_stop, __ATOMIC_RELAXED);
         off += step, piece++) {
        uint64_t n = size - off < step ? size - off : step;
        if (madvise(base + off, n, MADV_POPULATE_WRITE)) {
            log_warn("host_prefault: madvise(MADV_POPULATE_WRITE): %s; stopped at %" PRIu64
                     " of %" PRIu64 " bytes", strerror(errno), off, size);
            return NULL;
        }
        __atomic_store_n(&d->host->prefault_bytes, off + n, __ATOMIC_RELAXED);
        int rc = reg ? tier_fixed_add(d, piece) : 0;
        if (rc) {
            log_warn("disk_register_arena: cannot register arena bytes %" PRIu64 "..%" PRIu64
                     " with io_uring: %s%s; reads into the rest pin their pages per request",
                     off, size, strerror(-rc),
                     rc == -ENOMEM ? " (over RLIMIT_MEMLOCK: raise it, e.g. systemd's "
                                     "LimitMEMLOCK=infinity, or grant CAP_IPC_LOCK)" : "");
            reg = 0;
            /* Only registration asked for the pages: leave the rest lazy. */
            if (!d->host->prefault_all) break;
        }
    }
    if (__atomic_load_n(&d->host->prefault_bytes, __ATOMIC_RELAXED) == size)
        log_info("host arena: %" PRIu64 " bytes in memory%s after %.1f s", size,
                 reg ? " and registered with io_uring" : "", (double)(mono_us() - t0) / 1e6);
    return NULL;
}

/* After tier_open: the disk tier decides whether there is anything to
 * register. */
void host_prefault_start(daemon_t *d)
{
    d->host->prefault_step = PREFAULT_STEP;
    if (tier_on(d) && d->cfg.disk_register_arena) {
        uint64_t piece;
        int n = tier_fixed_init(d, store_base(d->store), store_arena_size(d->store), &piece);
        if (n > 0) {
            d->host->fixed_pieces = n;
            d->host->prefault_step = piece;
        } else if (n != -EOPNOTSUPP) {
            log_warn("disk_register_arena: io_uring cannot register buffers (%s); promotions "
                     "pin their pages per request", strerror(-n));
        }
    }
    /* The thread reads its own copy: the loop may replace d->cfg meanwhile
     * (config set, SIGHUP). */
    d->host->prefault_all = d->cfg.host_prefault;
    if (!d->host->prefault_all && !d->host->fixed_pieces) return;
    int rc = pthread_create(&d->host->prefault_th, NULL, prefault_main, d);
    if (rc) {
        log_warn("host_prefault: cannot start its thread: %s; the arena is faulted in on use",
                 strerror(rc));
        return;
    }
    d->host->prefault_running = 1;
}

void host_prefault_stop(daemon_t *d)
{
    if (!d->host || !d->host->prefault_running) return;
    __atomic_store_n(&d->host->prefault_stop, 1, __ATOMIC_RELAXED);
    pthread_join(d->host->prefault_th, NULL);
    d->host->prefault_running = 0;
}

const char *host_arena_pages(const daemon_t *d)
{
    switch (store_arena_pages(d->store)) {
    case ARENA_PAGES_HUGETLB: return "hugetlb";
    case ARENA_PAGES_THP: return "thp";
    default: return "4k";
    }
}

/* Bytes of the arena backed by 2 MiB pages now: all of it with hugetlb;
 * with THP, what /proc/self/smaps says is mapped by huge pages (the kernel
 * may give some, all or none of the advised range). */
uint64_t host_huge_bytes(const daemon_t *d)
{
    arena_pages_t p = store_arena_pages(d->store);
    if (p == ARENA_PAGES_HUGETLB) return store_arena_size(d->store);
    if (p != ARENA_PAGES_THP) return 0;
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return 0;
    char line[512], head[40];
    snprintf(head, sizeof head, "%lx-", (unsigned long)(uintptr_t)store_base(d->store));
    uint64_t kib = 0;
    int in = 0;
    while (fgets(line, sizeof line, f)) {
        if (strchr(line, '-') && isxdigit((unsigned char)line[0]) && strchr(line, ' ') >
            strchr(line, '-')) {
            if (in) break;
            in = strncmp(line, head, strlen(head)) == 0;
        } else if (in && sscanf(line, "ShmemPmdMapped: %" SCNu64, &kib) == 1) {
            break;
        }
    }
    fclose(f);
    return kib * 1024;
}

/* Say what backs the arena, and how to get huge pages where it has none. */
static void log_huge_pages(const daemon_t *d, arena_huge_t asked)
{
    uint64_t pages = store_arena_size(d->store) / ARENA_HUGE_PAGE;
    switch (store_arena_pages(d->store)) {
    case ARENA_PAGES_HUGETLB:
        log_info("host arena: %" PRIu64 " hugetlb pages of 2 MiB", pages);
        break;
    case ARENA_PAGES_THP:
        log_info("host arena: 4 KiB pages advised for transparent huge pages (the kernel's "
                 "shmem_enabled honours it)");
        break;
    default:
        if (asked == ARENA_HUGE_TRY)
            log_info("host arena: 4 KiB pages (the hugetlb pool has no room for it: %" PRIu64
                     " more 2 MiB pages in vm.nr_hugepages put it on huge pages, and disk-tier "
                     "promotions about a fifth faster; docs/operations.md)", pages);
        break;
    }
}

int host_open(daemon_t *d)
{
    char err[256];
    d->host = calloc(1, sizeof *d->host);
    if (!d->host) {
        log_error("host tier: out of memory");
        return -1;
    }
    store_config_t sc = {
        .capacity = d->cfg.host_arena_size, .max_entries = d->cfg.max_entries, .align = 4096,
        .name = "simcache-host", .on_drop = on_drop, .ctx = d,
        .huge = strcmp(d->cfg.host_huge_pages, "on") == 0    ? ARENA_HUGE_ON
                : strcmp(d->cfg.host_huge_pages, "off") == 0 ? ARENA_HUGE_OFF
                                                             : ARENA_HUGE_TRY,
    };
    d->store = store_new(&sc, err, sizeof err);
    if (!d->store) {
        log_error("host tier: %s", err);
        return -1;
    }
    store_set_capacity(d->store, d->cfg.host_capacity);
    store_set_clear_freed(d->store, (int)d->cfg.host_clear_freed);
    log_huge_pages(d, sc.huge);
    return 0;
}

void host_apply_config(daemon_t *d)
{
    int rc = store_set_capacity(d->store, d->cfg.host_capacity);
    if (rc == -EBUSY) log_warn("host_capacity lowered; leased bytes still above it");
    store_set_max_entries(d->store, d->cfg.max_entries);
    store_set_clear_freed(d->store, (int)d->cfg.host_clear_freed);
}

static int free_record(void *arg, uint64_t id, void *user, uint64_t off, uint64_t size,
                       uint32_t pins)
{
    entry_t *e = user;
    (void)arg;
    (void)id;
    (void)off;
    (void)size;
    (void)pins;
    if (e) {
        free(e->meta);
        free(e);
    }
    return 0;
}

uint64_t host_prefaulted_bytes(const daemon_t *d)
{
    return d->host ? __atomic_load_n(&d->host->prefault_bytes, __ATOMIC_RELAXED) : 0;
}

void host_close(daemon_t *d)
{
    free(d->host);
    d->host = NULL;
    if (!d->store) return;
    /* store_free() runs no callbacks: free the entry records it points to
     * (the namespaces and their indexes go after, all at once). */
    store_foreach(d->store, free_record, NULL);
    store_free(d->store);
    d->store = NULL;
}
