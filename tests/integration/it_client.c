/* it_client.c - a tiny real client process for test_admin.sh.
 *
 *   it_client put SOCKET N [MODEL [TENANT]]   put N entries, print their ids
 *   it_client hold SOCKET ID [MODEL [TENANT]] lease entry ID, print "ready",
 *                                             wait for stdin to close, then
 *                                             check the bytes and release;
 *                                             prints "released" or "closed"
 *                                             (daemon gone) and exits 0, or
 *                                             exits 1 if anything is wrong
 *   it_client ping SOCKET                     exit 0 if the daemon answers
 *
 * Entries: dim 32, layout fingerprint "cli-fp", 8 KiB of it_fill(id-order)
 * bytes, metadata "cli-K".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define DIM 32

static simcache_t *open_h(const char *sock, const char *model, const char *tenant)
{
    return it_connect(sock, model ? model : "cli-model", "cli-fp", tenant, DIM);
}

static int do_put(const char *sock, int n, const char *model, const char *tenant)
{
    simcache_t *h = open_h(sock, model, tenant);
    if (!h) return 1;
    for (int k = 0; k < n; k++) {
        float e[DIM];
        char meta[32];
        it_unit(1000 + (uint64_t)k, e, DIM);
        snprintf(meta, sizeof meta, "cli-%d", k);
        uint64_t id = it_put(h, e, 8192, (uint64_t)k, meta);
        if (!id) {
            simcache_close(h);
            return 1;
        }
        printf("%llu\n", (unsigned long long)id);
    }
    simcache_close(h);
    return 0;
}

static int do_hold(const char *sock, uint64_t id, const char *model, const char *tenant)
{
    simcache_t *h = open_h(sock, model, tenant);
    if (!h) return 1;
    simcache_match_t m;
    int rc = simcache_get(h, id, &m);
    if (rc) {
        fprintf(stderr, "get %llu: %s\n", (unsigned long long)id, simcache_strerror(rc));
        simcache_close(h);
        return 1;
    }
    printf("ready %llu\n", (unsigned long long)m.lease);
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) {}
    /* The mapping stays valid even if the daemon is gone. */
    char meta[32] = "";
    if (m.meta_len < sizeof meta) memcpy(meta, m.meta, m.meta_len);
    meta[m.meta_len < sizeof meta ? m.meta_len : 0] = 0;
    uint64_t seed = strncmp(meta, "cli-", 4) == 0 ? strtoull(meta + 4, NULL, 10) : 0;
    uint64_t bad = it_check(m.data, m.size, seed);
    rc = simcache_release(h, &m);
    if (rc == 0) printf("released\n");
    else if (rc == SIMCACHE_ECLOSED || rc == SIMCACHE_EIO || rc == SIMCACHE_ESHUTDOWN) printf("closed\n");
    else printf("release: %s\n", simcache_strerror(rc));
    simcache_close(h);
    if (bad) fprintf(stderr, "%llu bad words\n", (unsigned long long)bad);
    return bad != 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "put") == 0)
        return do_put(argv[2], atoi(argv[3]), argc > 4 ? argv[4] : NULL, argc > 5 ? argv[5] : NULL);
    if (argc >= 4 && strcmp(argv[1], "hold") == 0)
        return do_hold(argv[2], strtoull(argv[3], NULL, 10), argc > 4 ? argv[4] : NULL,
                       argc > 5 ? argv[5] : NULL);
    if (argc == 3 && strcmp(argv[1], "ping") == 0) {
        simcache_t *h = open_h(argv[2], NULL, NULL);
        int rc = h ? simcache_ping(h) : 1;
        simcache_close(h);
        return rc != 0;
    }
    fprintf(stderr, "usage: it_client put SOCKET N [MODEL [TENANT]] | hold SOCKET ID [MODEL [TENANT]] | ping SOCKET\n");
    return 2;
}
