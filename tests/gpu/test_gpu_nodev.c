/* test_gpu_nodev.c - without a usable device (no GPU, no driver, or a build
 * without CUDA) every device call fails cleanly with -ENODEV and a message,
 * NULL-outs its result, and scoring still works through the CPU path.
 * Exits 77 (skip) when a device is present: test_gpu_* cover that case. */
#include "gpu.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int failures;

#define CHECK(cond) do { if (!(cond)) { \
        fprintf(stderr, "%s:%d: CHECK failed: %s (%s)\n", __FILE__, __LINE__, #cond, gpu_last_error()); \
        failures++; } } while (0)

#define NODEV(call) do { int rc_ = (call); \
        if (rc_ != -ENODEV) fprintf(stderr, "%s returned %d\n", #call, rc_); \
        CHECK(rc_ == -ENODEV); \
        CHECK(gpu_last_error()[0] != '\0'); } while (0)

int main(void)
{
    char why[256];
    if (gpu_probe(why, sizeof why) > 0) {
        printf("SKIP: a device is present (%s)\n", why);
        return 77;
    }
    printf("%s (compiled with CUDA: %d)\n", why, gpu_compiled());

    gpu_arena_t *a = (gpu_arena_t *)&failures;
    NODEV(gpu_arena_new(0, 1 << 20, 0, &a));
    CHECK(a == NULL);
    gpu_arena_handle_t h;
    memset(&h, 0, sizeof h);
    h.kind = GPU_ARENA_LEGACY_IPC;
    h.bytes = 1 << 20;
    a = (gpu_arena_t *)&failures;
    NODEV(gpu_arena_open(&h, -1, 1, &a));
    CHECK(a == NULL);
    NODEV(gpu_set_device(0));

    gpu_stream_t *s = (gpu_stream_t *)&failures;
    NODEV(gpu_stream_new(&s));
    CHECK(s == NULL);

    gpu_event_t *e = (gpu_event_t *)&failures;
    unsigned char eh[GPU_IPC_HANDLE_BYTES] = {0};
    CHECK(gpu_event_new(&e, eh) < 0);
    CHECK(e == NULL);

    char buf[64];
    CHECK(gpu_host_register(buf, sizeof buf, 0) < 0);
    CHECK(gpu_pointer_is_device(buf) == 0);

    gpu_scorer_t *sc = (gpu_scorer_t *)&failures;
    NODEV(gpu_scorer_new(0, &sc));
    CHECK(sc == NULL);
    float q[2] = {1, 2}, c[4] = {3, 4, 5, 6}, out[2];
    CHECK(gpu_score_batch(NULL, q, 1, c, 2, 2, out, 0) == 0);
    CHECK(out[0] == 11.0f && out[1] == 17.0f);

    /* No scorer, so no resident matrix and no best match. */
    gpu_matrix_t *m = (gpu_matrix_t *)&failures;
    CHECK(gpu_matrix_new(sc, 4, &m) < 0);
    CHECK(m == NULL);
    CHECK(gpu_matrix_new(NULL, 4, &m) < 0);
    CHECK(m == NULL);
    uint32_t best = 0;
    CHECK(gpu_score_best(NULL, NULL, 1, q, 1, &best, NULL, 0) < 0);
    CHECK(gpu_last_error()[0] != '\0');
    CHECK(gpu_matrix_capacity(NULL) == 0);

    /* the frees accept NULL */
    gpu_arena_free(NULL);
    gpu_arena_close(NULL);
    gpu_stream_free(NULL);
    gpu_event_free(NULL);
    gpu_event_close(NULL);
    gpu_scorer_free(NULL);
    gpu_matrix_free(NULL);

    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    return 0;
}
