/* test_gpu_probe_nodriver.c - where no GPU driver shows (no /dev/nvidia*
 * node, no /proc/driver/nvidia), gpu_probe answers 0 at once without
 * initialising CUDA: a daemon's start must not wait for the runtime to load
 * and start the driver library (issue 21 saw 1.4-2.2 s on machines without a
 * GPU). meson puts a fake libcuda.so.1 (fake_libcuda.c) first on
 * LD_LIBRARY_PATH; it creates a mark file when loaded, and the probe must
 * not load it. Exits 77 (skip) where a driver shows: then CUDA decides. */
#include "gpu.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int driver_shows(void)
{
    if (access("/proc/driver/nvidia", F_OK) == 0) return 1;
    DIR *dev = opendir("/dev");
    if (!dev) return 1;
    int found = 0;
    const struct dirent *e;
    while (!found && (e = readdir(dev)) != NULL)
        found = strncmp(e->d_name, "nvidia", 6) == 0 || strcmp(e->d_name, "dxg") == 0 ||
                strncmp(e->d_name, "nvhost", 6) == 0 || strcmp(e->d_name, "nvmap") == 0;
    closedir(dev);
    return found;
}

int main(void)
{
    if (!gpu_compiled()) {
        printf("SKIP: built without CUDA\n");
        return 77;
    }
    if (driver_shows()) {
        printf("SKIP: a GPU driver shows on this machine\n");
        return 77;
    }
    char mark[] = "/tmp/simcache-fakecuda-XXXXXX";
    int fd = mkstemp(mark);
    if (fd < 0) {
        perror("mkstemp");
        return 1;
    }
    close(fd);
    unlink(mark);
    setenv("SIMCACHE_FAKE_CUDA_MARK", mark, 1);

    int failures = 0;
    char why[256];
    int n = gpu_probe(why, sizeof why);
    printf("gpu_probe: %d (%s)\n", n, why);
    if (n != 0) {
        fprintf(stderr, "FAIL: gpu_probe found %d device(s) without a driver\n", n);
        failures++;
    }
    if (access(mark, F_OK) == 0) {
        fprintf(stderr, "FAIL: gpu_probe loaded libcuda.so.1 (initialised CUDA) without a "
                "driver to be seen\n");
        failures++;
    }
    if (!strstr(why, "no GPU driver")) {
        fprintf(stderr, "FAIL: the reason does not say that no driver shows: %s\n", why);
        failures++;
    }
    /* The check means something only if CUDA would have found the fake. */
    unlink(mark);
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h || access(mark, F_OK) != 0) {
        fprintf(stderr, "FAIL: the fake libcuda.so.1 is not what CUDA would load (%s): "
                "check LD_LIBRARY_PATH\n", h ? "no mark" : dlerror());
        failures++;
    }
    unlink(mark);
    return failures ? 1 : 0;
}
