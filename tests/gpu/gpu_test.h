/* gpu_test.h - shared by the multi-process gpu-suite tests. */
#ifndef SIMCACHE_GPU_TEST_H
#define SIMCACHE_GPU_TEST_H

#include <stdio.h>
#include <unistd.h>

#include "gpu.h"
#include "harness.h"

/* Is there a CUDA device? Asked in a child: the calling process must not
 * touch CUDA, since its forked children use it. Prints the skip line and
 * returns 0 when there is none (the test then exits 77). */
static inline int gpu_device_present(void)
{
    pid_t p = fork();
    if (p == 0) {
        char why[160];
        _exit(gpu_probe(why, sizeof why) > 0 ? 0 : 77);
    }
    if (it_wait_pid(p, IT_TIMEOUT_MS) != 0) {
        printf("no CUDA device: skipping\n");
        return 0;
    }
    return 1;
}

#endif
