/* put_and_find.c - the reuse loop in miniature, across two processes.
 *
 * The writer process puts the KV of a few "tasks" (deterministic bytes and a
 * random embedding per task). The reader, a separate process started after
 * it, looks each task up with a *similar* embedding (the original plus
 * noise, cosine about 0.9), reads the KV in place from the shared mapping and
 * checks every byte, then shows that an unrelated embedding misses.
 *
 *   put_and_find [-s SOCKET] [-n TASKS] [--role writer|reader|both]
 *
 * With --role both (the default) it forks the reader itself.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "simcache.h"

#define DIM 256

static uint64_t rng_state;

static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float gauss(void)
{
    double u = ((double)(rng() >> 11) + 0.5) / 9007199254740992.0;
    double v = ((double)(rng() >> 11) + 0.5) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

/* Task t's embedding, or a noisy copy of it. */
static void embedding(int t, float noise, float *out)
{
    rng_state = 1000u + (uint64_t)t;
    for (int i = 0; i < DIM; i++) out[i] = gauss();
    rng_state = 77777u + (uint64_t)t * 31u;
    for (int i = 0; i < DIM; i++) out[i] += noise * gauss();
}

static simcache_layout_t layout_of(int t)
{
    simcache_layout_t l = { SIMCACHE_DTYPE_F16, 2, 1, 8, 64, (uint32_t)(64 + 32 * t) };
    return l;
}

static uint8_t kv_byte(int t, uint64_t i) { return (uint8_t)((i * 131u + (uint64_t)t * 17u) >> 3); }

static simcache_t *open_handle(const char *socket)
{
    simcache_opts_t o;
    simcache_opts_init(&o);
    o.socket_path = socket;
    o.model = "example-llama-7b";
    o.layout_fingerprint = "condensed-top-layer/f16/8x64";
    o.dim = DIM;
    o.timeout_ms = 10000;
    simcache_t *h;
    int rc = simcache_connect(&o, &h);
    if (rc) {
        fprintf(stderr, "connect: %s (%s)\n", simcache_strerror(rc), simcache_last_error(h));
        simcache_close(h);
        return NULL;
    }
    return h;
}

static int writer(const char *socket, int n)
{
    simcache_t *h = open_handle(socket);
    if (!h) return 1;
    float e[DIM];
    for (int t = 0; t < n; t++) {
        simcache_layout_t l = layout_of(t);
        uint64_t size = simcache_layout_bytes(&l);
        uint8_t *kv = malloc(size);
        for (uint64_t i = 0; i < size; i++) kv[i] = kv_byte(t, i);
        embedding(t, 0, e);
        uint64_t id;
        char meta[32];
        int ml = snprintf(meta, sizeof meta, "task-%d", t);
        simcache_put_opts_t po = { meta, (uint32_t)ml, 0 };
        int rc = simcache_put_ex(h, e, &l, kv, size, SIMCACHE_HOST_MEMORY, &po, &id);
        free(kv);
        if (rc) {
            fprintf(stderr, "put: %s (%s)\n", simcache_strerror(rc), simcache_last_error(h));
            simcache_close(h);
            return 1;
        }
        printf("writer: put task %d as entry %llu (%llu bytes of KV)\n", t, (unsigned long long)id,
               (unsigned long long)size);
    }
    simcache_close(h);
    return 0;
}

static int reader(const char *socket, int n)
{
    simcache_t *h = open_handle(socket);
    if (!h) return 1;
    float e[DIM];
    int bad = 0;
    for (int t = 0; t < n; t++) {
        embedding(t, 0.45f, e);   /* a similar task, not the same one */
        simcache_match_t m;
        int rc = simcache_lookup(h, e, -1, &m);
        if (rc != 0) {
            printf("reader: task %d: %s\n", t, rc == SIMCACHE_MISS ? "miss" : simcache_last_error(h));
            bad++;
            continue;
        }
        const uint8_t *kv = m.data;
        uint64_t wrong = 0;
        for (uint64_t i = 0; i < m.size; i++) wrong += kv[i] != kv_byte(t, i);
        printf("reader: task %d -> entry %llu (%.*s), similarity %.3f, %llu bytes checked, %llu wrong\n",
               t, (unsigned long long)m.id, (int)m.meta_len, (const char *)m.meta, m.similarity,
               (unsigned long long)m.size, (unsigned long long)wrong);
        bad += wrong != 0;
        simcache_release(h, &m);
    }
    embedding(9999, 0, e);
    simcache_match_t m;
    int rc = simcache_lookup(h, e, -1, &m);
    printf("reader: unrelated task -> %s\n", rc == SIMCACHE_MISS ? "miss (as it should)" : "HIT (wrong)");
    bad += rc != SIMCACHE_MISS;
    if (rc == 0) simcache_release(h, &m);
    simcache_close(h);
    printf("%s\n", bad ? "FAILED" : "OK: every similar task found, every byte right");
    return bad != 0;
}

int main(int argc, char **argv)
{
    const char *socket = NULL, *role = "both";
    int n = 4;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) socket = argv[++i];
        else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) n = atoi(argv[++i]);
        else if (strcmp(argv[i], "--role") == 0 && i + 1 < argc) role = argv[++i];
        else {
            fprintf(stderr, "usage: %s [-s SOCKET] [-n TASKS] [--role writer|reader|both]\n", argv[0]);
            return 2;
        }
    }
    if (n < 1 || n > 64) n = 4;
    if (strcmp(role, "writer") == 0) return writer(socket, n);
    if (strcmp(role, "reader") == 0) return reader(socket, n);
    if (writer(socket, n)) return 1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int rc = reader(socket, n);
        fflush(stdout);
        _exit(rc);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
