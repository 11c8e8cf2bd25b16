/* gpu_none.c - CPU fallback of gpu.h for builds without CUDA. */
#include "gpu.h"

#include <stdio.h>

int gpu_probe(char *why, size_t whylen)
{
    if (why && whylen) snprintf(why, whylen, "built without CUDA (meson -Dgpu=enabled to add it)");
    return 0;
}

int gpu_compiled(void) { return 0; }
