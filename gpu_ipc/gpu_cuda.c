/* gpu_cuda.c - gpu.h over the CUDA runtime.
 *
 * cudaGetDeviceCount is the probe: on a machine with the toolkit but no
 * driver it returns cudaErrorInsufficientDriver (or NoDevice), which is the
 * normal "no GPU" answer, not a failure.
 */
#include "gpu.h"

#include <cuda_runtime_api.h>
#include <stdio.h>

int gpu_probe(char *why, size_t whylen)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        if (why && whylen) snprintf(why, whylen, "no CUDA device: %s", cudaGetErrorString(e));
        return 0;
    }
    if (why && whylen) {
        struct cudaDeviceProp p;
        if (n > 0 && cudaGetDeviceProperties(&p, 0) == cudaSuccess)
            snprintf(why, whylen, "%d CUDA device(s); device 0: %s", n, p.name);
        else
            snprintf(why, whylen, "%d CUDA device(s)", n);
    }
    return n;
}

int gpu_compiled(void) { return 1; }
