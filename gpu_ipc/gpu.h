/* gpu.h - the daemon's and client's only view of CUDA.
 *
 * Everything that includes a CUDA header lives in gpu_ipc/. Without CUDA at
 * build time (gpu=disabled, or no toolkit) the CPU fallback in gpu_none.c
 * answers "no device"; with it, gpu_cuda.c asks the runtime, and a machine
 * with the toolkit but no driver or no GPU also answers "no device" instead
 * of failing. The GPU tier itself (CUDA IPC arenas, cuBLAS scoring) builds on
 * this interface.
 */
#ifndef SIMCACHE_GPU_H
#define SIMCACHE_GPU_H

#include <stddef.h>

/* Number of usable CUDA devices (0 when none, or no driver, or no CUDA in
 * this build). why gets a one-line explanation either way. Never crashes. */
int gpu_probe(char *why, size_t whylen);

/* 1 if this build has CUDA compiled in. */
int gpu_compiled(void);

#endif
