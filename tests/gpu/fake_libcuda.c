/* fake_libcuda.c - a stand-in libcuda.so.1 for test_gpu_probe_nodriver: it
 * exports nothing of the driver API and, when loaded, creates the file named
 * by $SIMCACHE_FAKE_CUDA_MARK, so the test can tell whether CUDA was
 * initialised (the runtime loads libcuda.so.1 on its first call). */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((constructor)) static void fake_libcuda_loaded(void)
{
    const char *mark = getenv("SIMCACHE_FAKE_CUDA_MARK");
    if (!mark || !*mark) return;
    int fd = open(mark, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0) close(fd);
}
