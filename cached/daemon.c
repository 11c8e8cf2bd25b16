/* daemon.c - the top of simcached: it opens the parts in order (seed,
 * tiers, listeners, peers), wires their callbacks, runs the loop, and
 * handles signals and draining. Nothing calls up into this file.
 */
#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "admin.h"
#include "catalog.h"
#include "clock.h"
#include "config.h"
#include "daemon.h"
#include "gpu.h"
#include "gpuscore.h"
#include "gputier.h"
#include "hosttier.h"
#include "lease.h"
#include "log.h"
#include "peers.h"
#include "reload.h"
#include "server.h"
#include "tier.h"
#include "vec.h"

int daemon_run(daemon_t *d)
{
    for (;;) {
        /* Within poll_us of the last request: look without sleeping, so
         * that the next one (a client's lookup after its put, the next
         * lookup of a batch loop) does not pay for waking an idle CPU. */
        uint32_t poll = d->cfg.poll_us;
        int busy = poll && mono_us() - d->last_request_us < poll;
        int rc = event_base_loop(d->base, busy ? EVLOOP_NONBLOCK : EVLOOP_ONCE);
        if (rc < 0)
            return -1;
        if (rc == 1 || event_base_got_exit(d->base) || event_base_got_break(d->base))
            return 0;
    }
}

/* ---- seed ---- */

static int mkdir_p(const char *path, mode_t mode)
{
    char buf[256];
    size_t n = strlen(path);
    if (n >= sizeof buf) return -1;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, mode) && errno != EEXIST) return -1;
            buf[i] = c;
        }
    }
    return 0;
}

/* Create the socket's directory (0700) if missing, and refuse one that
 * another user owns: under a shared /tmp, someone could have made it first
 * to plant a socket of their own. */
static int socket_dir_ok(const char *sock)
{
    char dir[CONFIG_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", sock);
    char *slash = strrchr(dir, '/');
    if (!slash) return 0;            /* relative name in the working directory */
    if (slash == dir) return 0;      /* in / */
    *slash = 0;
    if (mkdir_p(dir, 0700)) {
        log_error("socket directory %s: %s", dir, strerror(errno));
        return -1;
    }
    struct stat st;
    if (stat(dir, &st)) {
        log_error("socket directory %s: %s", dir, strerror(errno));
        return -1;
    }
    if (st.st_uid != geteuid() && st.st_uid != 0) {
        log_error("socket directory %s belongs to uid %u, not to us (uid %u): refusing it", dir,
                  (unsigned)st.st_uid, (unsigned)geteuid());
        return -1;
    }
    return 0;
}

/* The hyperplane seed is secret and kept with the data, so the same data
 * directory gives the same buckets after a restart. */
static int load_seed(daemon_t *d)
{
    char path[300];
    if (mkdir_p(d->cfg.data_dir, 0700)) {
        log_error("data_dir %s: %s", d->cfg.data_dir, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/index.seed", d->cfg.data_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, &d->seed, sizeof d->seed);
        close(fd);
        if (n == (ssize_t)sizeof d->seed) return 0;
        log_warn("%s: short, making a new seed", path);
    }
    if (getrandom(&d->seed, sizeof d->seed, 0) != (ssize_t)sizeof d->seed) {
        log_error("getrandom: %s", strerror(errno));
        return -1;
    }
    char tmp[310];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, &d->seed, sizeof d->seed) != (ssize_t)sizeof d->seed ||
        fsync(fd) || rename(tmp, path)) {
        log_error("%s: cannot write the index seed: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    log_info("new index seed written to %s", path);
    return 0;
}

/* ---- signals, drain, reload ---- */

static void finish(daemon_t *d)
{
    server_close_all(d);
    event_base_loopexit(d->base, NULL);
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    daemon_t *d = arg;
    (void)fd;
    (void)what;
    uint64_t left = server_pending_output(d);
    if (left == 0 || mono_us() >= d->drain_deadline_us) {
        if (left) log_warn("drain timeout: %" PRIu64 " reply bytes not delivered", left);
        log_info("drained; exiting");
        finish(d);
        return;
    }
    struct timeval tv = { 0, 20000 };
    if (evtimer_add(d->drain_timer, &tv)) {
        log_warn("drain: cannot re-arm its timer; exiting with %" PRIu64 " reply bytes left", left);
        finish(d);
    }
}

void daemon_begin_drain(daemon_t *d, const char *why)
{
    if (d->draining) return;
    d->draining = 1;
    d->drain_deadline_us = mono_us() + (uint64_t)d->cfg.drain_timeout_ms * 1000u;
    log_info("%s: draining (no new connections, replies flushed, then exit)", why);
    server_close_listener(d);
    admin_close_listener(d);
    struct timeval tv = { 0, 0 };
    if (evtimer_add(d->drain_timer, &tv)) {
        log_warn("drain: cannot arm its timer; exiting now");
        finish(d);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    daemon_t *d = arg;
    (void)what;
    if (sig == SIGHUP) reload_file(d);
    else daemon_begin_drain(d, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* cpu_affinity: before any thread starts, so that every one (prefault,
 * peers, GPU) inherits it. A client and the daemon that migrate across the
 * same cores wait on each other's wake-ups: on the 2-core test VM, the
 * daemon on one core and the client on the other took the 100k x 2048
 * lookup p99 from 133-161 us to 118-119 (docs/benchmarks.md). */
static int apply_cpu_affinity(daemon_t *d)
{
    if (!d->cfg.cpu_affinity[0]) return 0;
    uint64_t mask[CONFIG_MAX_CPUS / 64];
    if (config_parse_cpus(d->cfg.cpu_affinity, mask)) {
        log_error("cpu_affinity '%s': not a CPU list", d->cfg.cpu_affinity);
        return -1;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    for (uint32_t k = 0; k < CONFIG_MAX_CPUS && k < CPU_SETSIZE; k++)
        if (mask[k / 64] & (1ull << (k % 64))) CPU_SET(k, &set);
    if (sched_setaffinity(0, sizeof set, &set)) {
        log_error("cpu_affinity '%s': %s (none of these CPUs is online and allowed to "
                  "this process?)", d->cfg.cpu_affinity, strerror(errno));
        return -1;
    }
    log_info("running on CPUs %s", d->cfg.cpu_affinity);
    return 0;
}

int daemon_init(daemon_t *d)
{
    d->started_us = mono_us();
    log_set_level((log_level_t)d->cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
    if (apply_cpu_affinity(d)) return -1;
    d->base = event_base_new();
    if (!d->base) {
        log_error("event_base_new failed");
        return -1;
    }
    if (load_seed(d) || socket_dir_ok(d->cfg.socket) || socket_dir_ok(d->cfg.admin_socket))
        return -1;
    d->gpu_devices = gpu_probe(d->gpu_desc, sizeof d->gpu_desc);
    log_info("GPU: %s", d->gpu_desc);
    gpuscore_open(d);
    if (d->cfg.host_arena_size == 0) d->cfg.host_arena_size = d->cfg.host_capacity;
    if (d->cfg.host_capacity > d->cfg.host_arena_size) {
        log_error("host_capacity (%" PRIu64 ") above host_arena_size (%" PRIu64 ")",
                  d->cfg.host_capacity, d->cfg.host_arena_size);
        return -1;
    }
    if (host_open(d)) return -1;
    gtier_open(d, tier_note_dirty);
    if (tier_open(d, server_wake)) return -1;
    host_prefault_start(d);
    d->shutdown = daemon_begin_drain;
    d->sig_term = evsignal_new(d->base, SIGTERM, on_signal, d);
    d->sig_int = evsignal_new(d->base, SIGINT, on_signal, d);
    d->sig_hup = evsignal_new(d->base, SIGHUP, on_signal, d);
    d->drain_timer = evtimer_new(d->base, on_drain_tick, d);
    if (!d->sig_term || !d->sig_int || !d->sig_hup || !d->drain_timer ||
        event_add(d->sig_term, NULL) || event_add(d->sig_int, NULL) ||
        event_add(d->sig_hup, NULL)) {
        log_error("cannot watch signals (SIGTERM, SIGINT, SIGHUP)");
        return -1;
    }
    if (server_listen(d) || admin_listen(d) || peers_init(d)) return -1;
    log_info("simcached %s ready: host tier %" PRIu64 " bytes (arena %" PRIu64
             "), max_entries %" PRIu64 ", threshold %.2f, vectors %s, pid %d",
             SIMCACHE_VERSION_STRING, d->cfg.host_capacity, store_arena_size(d->store),
             d->cfg.max_entries, d->cfg.default_threshold, vec_impl(), (int)getpid());
    return 0;
}

void daemon_fini(daemon_t *d)
{
    peers_free(d);
    admin_close_all(d);
    server_close_all(d);
    server_close_listener(d);
    admin_close_listener(d);
    lease_table_free(d);
    /* The thread registers arena pieces with the disk tier's ring: stop it
     * before the ring goes. */
    host_prefault_stop(d);
    tier_close(d);
    gtier_close(d);
    host_close(d);
    catalog_ns_free_all(d);
    gpuscore_close(d);
    if (d->sig_term) event_free(d->sig_term);
    if (d->sig_int) event_free(d->sig_int);
    if (d->sig_hup) event_free(d->sig_hup);
    if (d->drain_timer) event_free(d->drain_timer);
    if (d->base) event_base_free(d->base);
}
