/* gpu_cuda.c - gpu.h over the CUDA runtime, cuBLAS, and (for VMM arenas)
 * driver entry points fetched at run time.
 *
 * cudaGetDeviceCount is the probe: on a machine with the toolkit but no
 * driver it returns cudaErrorInsufficientDriver (or NoDevice), which is the
 * normal "no GPU" answer, not a failure. Where no driver shows at all (no
 * device node, no kernel module) the probe answers 0 without touching CUDA. The driver API (cuMemCreate and
 * friends) is reached through cudaGetDriverEntryPointByVersion, never linked,
 * so binaries load and answer -ENODEV where libcuda.so is absent.
 */
#include "gpu.h"
#include "gpu_internal.h"

#include <cuda.h>               /* types and enums only; no libcuda link */
#include <cuda_runtime_api.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Static_assert(sizeof(cudaIpcMemHandle_t) == GPU_IPC_HANDLE_BYTES, "IPC mem handle size");
_Static_assert(sizeof(cudaIpcEventHandle_t) == GPU_IPC_HANDLE_BYTES, "IPC event handle size");

/* ---- errors ------------------------------------------------------------ */

static int cuda_code(cudaError_t e)
{
    switch (e) {
    case cudaErrorInsufficientDriver:
    case cudaErrorNoDevice:
    case cudaErrorInvalidDevice:
    case cudaErrorDevicesUnavailable:
        return -ENODEV;
    case cudaErrorMemoryAllocation: return -ENOMEM;
    case cudaErrorInvalidValue: return -EINVAL;
    case cudaErrorNotSupported: return -EOPNOTSUPP;
    default: return -EIO;
    }
}

/* Record e as the thread's last error; clear CUDA's non-sticky error state
 * so the next unrelated call does not report it again. */
static int cuda_fail(cudaError_t e, const char *what)
{
    (void)cudaGetLastError();
    return gpu_fail(cuda_code(e), "%s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

int gpu_cuda_fail(int cuda_error, const char *what)
{
    return cuda_fail((cudaError_t)cuda_error, what);
}

static int cu_fail(CUresult r, const char *what)
{
    int code = r == CUDA_ERROR_OUT_OF_MEMORY ? -ENOMEM
             : r == CUDA_ERROR_INVALID_VALUE ? -EINVAL
             : r == CUDA_ERROR_NOT_SUPPORTED ? -EOPNOTSUPP
             : r == CUDA_ERROR_NO_DEVICE || r == CUDA_ERROR_NOT_INITIALIZED ? -ENODEV
             : -EIO;
    return gpu_fail(code, "%s: CUresult %d", what, (int)r);
}

#define CUDA_TRY(call) do { cudaError_t e_ = (call); \
        if (e_ != cudaSuccess) return cuda_fail(e_, #call); } while (0)

/* ---- probe, device, streams -------------------------------------------- */

/* 1 if this machine shows a GPU driver: a device node (/dev/nvidia*, also
 * what a container given a GPU sees; /dev/dxg under WSL2; /dev/nvhost-* or
 * /dev/nvmap on Jetson), or the loaded kernel module (/proc/driver/nvidia:
 * the driver may still create its nodes). 1 too when /dev cannot be read:
 * then CUDA decides. */
static int driver_present(void)
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

int gpu_probe(char *why, size_t whylen)
{
    /* cudaGetDeviceCount loads and starts the driver library, which can
     * take seconds on a machine without a GPU (issue 21 saw a 1.4-2.2 s
     * start) and which the daemon's start waits for: with no driver to be
     * seen there is no device, so answer at once. */
    if (!driver_present()) {
        if (why && whylen)
            snprintf(why, whylen, "no CUDA device: no GPU driver (no /dev/nvidia* device node, "
                     "no /proc/driver/nvidia)");
        return 0;
    }
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
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

int gpu_set_device(int device)
{
    if (device < 0) return gpu_fail(-EINVAL, "gpu_set_device: negative device %d", device);
    CUDA_TRY(cudaSetDevice(device));
    /* make the primary context current for the driver API calls below too */
    CUDA_TRY(cudaFree(NULL));
    gpu_clear_error();
    return 0;
}

static cudaStream_t to_stream(gpu_stream_t *s) { return (cudaStream_t)(void *)s; }

int gpu_stream_new(gpu_stream_t **out)
{
    if (!out) return gpu_fail(-EINVAL, "gpu_stream_new: out is NULL");
    *out = NULL;
    cudaStream_t st;
    CUDA_TRY(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    *out = (gpu_stream_t *)(void *)st;
    gpu_clear_error();
    return 0;
}

void gpu_stream_free(gpu_stream_t *s)
{
    if (s) (void)cudaStreamDestroy(to_stream(s));
}

int gpu_stream_sync(gpu_stream_t *s)
{
    CUDA_TRY(cudaStreamSynchronize(to_stream(s)));
    return 0;
}

/* ---- driver entry points (VMM) ----------------------------------------- */

typedef CUresult (*pfn_granularity)(size_t *, const CUmemAllocationProp *, CUmemAllocationGranularity_flags);
typedef CUresult (*pfn_create)(CUmemGenericAllocationHandle *, size_t, const CUmemAllocationProp *, unsigned long long);
typedef CUresult (*pfn_release)(CUmemGenericAllocationHandle);
typedef CUresult (*pfn_reserve)(CUdeviceptr *, size_t, size_t, CUdeviceptr, unsigned long long);
typedef CUresult (*pfn_addr_free)(CUdeviceptr, size_t);
typedef CUresult (*pfn_map)(CUdeviceptr, size_t, size_t, CUmemGenericAllocationHandle, unsigned long long);
typedef CUresult (*pfn_unmap)(CUdeviceptr, size_t);
typedef CUresult (*pfn_set_access)(CUdeviceptr, size_t, const CUmemAccessDesc *, size_t);
typedef CUresult (*pfn_export)(void *, CUmemGenericAllocationHandle, CUmemAllocationHandleType, unsigned long long);
typedef CUresult (*pfn_import)(CUmemGenericAllocationHandle *, void *, CUmemAllocationHandleType);
typedef CUresult (*pfn_dev_attr)(int *, CUdevice_attribute, CUdevice);

static struct {
    int ok;
    pfn_granularity granularity;
    pfn_create create;
    pfn_release release;
    pfn_reserve reserve;
    pfn_addr_free addr_free;
    pfn_map map;
    pfn_unmap unmap;
    pfn_set_access set_access;
    pfn_export export_fd;
    pfn_import import_fd;
    pfn_dev_attr dev_attr;
} drv;
static pthread_once_t drv_once = PTHREAD_ONCE_INIT;

static int drv_sym(const char *name, void **fn)
{
    enum cudaDriverEntryPointQueryResult q;
    cudaError_t e = cudaGetDriverEntryPointByVersion(name, fn, 12000, cudaEnableDefault, &q);
    if (e != cudaSuccess || q != cudaDriverEntryPointSuccess || !*fn) {
        (void)cudaGetLastError();
        *fn = NULL;
        return 0;
    }
    return 1;
}

static void drv_load(void)
{
    void *p[11] = {0};
    static const char *const names[11] = {
        "cuMemGetAllocationGranularity", "cuMemCreate", "cuMemRelease",
        "cuMemAddressReserve", "cuMemAddressFree", "cuMemMap", "cuMemUnmap",
        "cuMemSetAccess", "cuMemExportToShareableHandle",
        "cuMemImportFromShareableHandle", "cuDeviceGetAttribute",
    };
    int ok = 1;
    for (int i = 0; i < 11; i++) ok &= drv_sym(names[i], &p[i]);
    /* object pointer -> function pointer: POSIX guarantees it (dlsym) */
    drv.granularity = (pfn_granularity)p[0];
    drv.create = (pfn_create)p[1];
    drv.release = (pfn_release)p[2];
    drv.reserve = (pfn_reserve)p[3];
    drv.addr_free = (pfn_addr_free)p[4];
    drv.map = (pfn_map)p[5];
    drv.unmap = (pfn_unmap)p[6];
    drv.set_access = (pfn_set_access)p[7];
    drv.export_fd = (pfn_export)p[8];
    drv.import_fd = (pfn_import)p[9];
    drv.dev_attr = (pfn_dev_attr)p[10];
    drv.ok = ok;
}

/* 1 if device can make VMM allocations exportable as POSIX fds. */
static int vmm_supported(int device)
{
    pthread_once(&drv_once, drv_load);
    if (!drv.ok) return 0;
    int vmm = 0, fd = 0;
    if (drv.dev_attr(&vmm, CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, device) != CUDA_SUCCESS)
        return 0;
    if (drv.dev_attr(&fd, CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED, device) != CUDA_SUCCESS)
        return 0;
    return vmm && fd;
}

/* ---- arenas ------------------------------------------------------------ */

struct gpu_arena {
    int kind;                 /* enum gpu_arena_kind */
    int owner;                /* 1: created here; 0: opened from a handle */
    int device;
    int read_only;
    size_t bytes;
    void *ptr;
    CUmemGenericAllocationHandle vmm;   /* VMM only */
    cudaIpcMemHandle_t ipc;             /* legacy, owner only */
};

static void vmm_prop(CUmemAllocationProp *prop, int device)
{
    memset(prop, 0, sizeof *prop);
    prop->type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop->location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop->location.id = device;
    prop->requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
}

/* Reserve a VA range, map handle a->vmm into it, grant access; undoes its
 * own steps on failure. */
static int vmm_map(gpu_arena_t *a, int prot)
{
    CUdeviceptr va = 0;
    CUresult r = drv.reserve(&va, a->bytes, 0, 0, 0);
    if (r != CUDA_SUCCESS) return cu_fail(r, "cuMemAddressReserve");
    r = drv.map(va, a->bytes, 0, a->vmm, 0);
    if (r != CUDA_SUCCESS) {
        drv.addr_free(va, a->bytes);
        return cu_fail(r, "cuMemMap");
    }
    CUmemAccessDesc acc;
    memset(&acc, 0, sizeof acc);
    acc.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    acc.location.id = a->device;
    acc.flags = (CUmemAccess_flags)prot;
    r = drv.set_access(va, a->bytes, &acc, 1);
    if (r != CUDA_SUCCESS) {
        drv.unmap(va, a->bytes);
        drv.addr_free(va, a->bytes);
        return cu_fail(r, "cuMemSetAccess");
    }
    a->ptr = (void *)(uintptr_t)va;
    return 0;
}

static int arena_new_vmm(gpu_arena_t *a, size_t bytes)
{
    CUmemAllocationProp prop;
    vmm_prop(&prop, a->device);
    size_t gran = 0;
    CUresult r = drv.granularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED);
    if (r != CUDA_SUCCESS || gran == 0) return cu_fail(r, "cuMemGetAllocationGranularity");
    if (bytes > SIZE_MAX - gran) return gpu_fail(-EINVAL, "gpu_arena_new: size overflow");
    a->bytes = (bytes + gran - 1) / gran * gran;
    r = drv.create(&a->vmm, a->bytes, &prop, 0);
    if (r != CUDA_SUCCESS) return cu_fail(r, "cuMemCreate");
    int rc = vmm_map(a, CU_MEM_ACCESS_FLAGS_PROT_READWRITE);
    if (rc < 0) {
        drv.release(a->vmm);
        return rc;
    }
    a->kind = GPU_ARENA_VMM;
    return 0;
}

static int arena_new_legacy(gpu_arena_t *a, size_t bytes)
{
    /* cudaMalloc rounds to 2 MiB pages internally; keep the caller's size
     * but round to 256 B so every handle describes an aligned range */
    if (bytes > SIZE_MAX - 255) return gpu_fail(-EINVAL, "gpu_arena_new: size overflow");
    a->bytes = (bytes + 255) & ~(size_t)255;
    CUDA_TRY(cudaMalloc(&a->ptr, a->bytes));
    cudaError_t e = cudaIpcGetMemHandle(&a->ipc, a->ptr);
    if (e != cudaSuccess) {
        int rc = cuda_fail(e, "cudaIpcGetMemHandle");
        (void)cudaFree(a->ptr);
        return rc;
    }
    a->kind = GPU_ARENA_LEGACY_IPC;
    return 0;
}

int gpu_arena_new(int device, size_t bytes, unsigned flags, gpu_arena_t **out)
{
    if (!out) return gpu_fail(-EINVAL, "gpu_arena_new: out is NULL");
    *out = NULL;
    if (bytes == 0) return gpu_fail(-EINVAL, "gpu_arena_new: zero bytes");
    int rc = gpu_set_device(device);
    if (rc < 0) return rc;
    gpu_arena_t *a = calloc(1, sizeof *a);
    if (!a) return gpu_fail(-ENOMEM, "gpu_arena_new: out of host memory");
    a->owner = 1;
    a->device = device;
    if (!(flags & GPU_ARENA_FORCE_LEGACY) && vmm_supported(device))
        rc = arena_new_vmm(a, bytes);
    else
        rc = arena_new_legacy(a, bytes);
    if (rc < 0) {
        free(a);
        return rc;
    }
    *out = a;
    gpu_clear_error();
    return 0;
}

int gpu_arena_export(const gpu_arena_t *a, gpu_arena_handle_t *h)
{
    if (!a || !h || !a->owner) return gpu_fail(-EINVAL, "gpu_arena_export: not an owned arena");
    memset(h, 0, sizeof *h);
    h->kind = (uint32_t)a->kind;
    h->device = a->device;
    h->bytes = a->bytes;
    if (a->kind == GPU_ARENA_LEGACY_IPC) memcpy(h->ipc, &a->ipc, GPU_IPC_HANDLE_BYTES);
    return 0;
}

int gpu_arena_export_fd(const gpu_arena_t *a)
{
    if (!a || !a->owner) return gpu_fail(-EINVAL, "gpu_arena_export_fd: not an owned arena");
    if (a->kind != GPU_ARENA_VMM) return gpu_fail(-EOPNOTSUPP, "gpu_arena_export_fd: legacy IPC arena has no fd");
    int fd = -1;
    CUresult r = drv.export_fd(&fd, a->vmm, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0);
    if (r != CUDA_SUCCESS) return cu_fail(r, "cuMemExportToShareableHandle");
    return fd;
}

int gpu_arena_open(const gpu_arena_handle_t *h, int fd, int read_only, gpu_arena_t **out)
{
    if (!out) return gpu_fail(-EINVAL, "gpu_arena_open: out is NULL");
    *out = NULL;
    if (!h || h->bytes == 0 || h->bytes > SIZE_MAX || h->device < 0)
        return gpu_fail(-EINVAL, "gpu_arena_open: bad handle");
    if (h->kind != GPU_ARENA_VMM && h->kind != GPU_ARENA_LEGACY_IPC)
        return gpu_fail(-EINVAL, "gpu_arena_open: unknown kind %u", h->kind);
    if (h->kind == GPU_ARENA_VMM && fd < 0)
        return gpu_fail(-EINVAL, "gpu_arena_open: VMM arena needs its fd");
    int rc = gpu_set_device(h->device);
    if (rc < 0) return rc;
    gpu_arena_t *a = calloc(1, sizeof *a);
    if (!a) return gpu_fail(-ENOMEM, "gpu_arena_open: out of host memory");
    a->kind = (int)h->kind;
    a->device = h->device;
    a->bytes = (size_t)h->bytes;
    if (h->kind == GPU_ARENA_VMM) {
        pthread_once(&drv_once, drv_load);
        if (!drv.ok) {
            free(a);
            return gpu_fail(-EOPNOTSUPP, "gpu_arena_open: driver lacks the VMM entry points");
        }
        CUresult r = drv.import_fd(&a->vmm, (void *)(uintptr_t)fd, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR);
        if (r != CUDA_SUCCESS) {
            free(a);
            return cu_fail(r, "cuMemImportFromShareableHandle");
        }
        rc = -1;
        if (read_only) {
            rc = vmm_map(a, CU_MEM_ACCESS_FLAGS_PROT_READ);
            a->read_only = rc == 0;
        }
        /* not every device accepts read-only device mappings; fall back to
         * read-write and say so through gpu_arena_read_only() */
        if (rc < 0) rc = vmm_map(a, CU_MEM_ACCESS_FLAGS_PROT_READWRITE);
        if (rc < 0) {
            drv.release(a->vmm);
            free(a);
            return rc;
        }
    } else {
        cudaIpcMemHandle_t ipc;
        memcpy(&ipc, h->ipc, GPU_IPC_HANDLE_BYTES);
        cudaError_t e = cudaIpcOpenMemHandle(&a->ptr, ipc, cudaIpcMemLazyEnablePeerAccess);
        if (e != cudaSuccess) {
            free(a);
            return cuda_fail(e, "cudaIpcOpenMemHandle");
        }
    }
    *out = a;
    gpu_clear_error();
    return 0;
}

void *gpu_arena_ptr(const gpu_arena_t *a) { return a ? a->ptr : NULL; }
size_t gpu_arena_size(const gpu_arena_t *a) { return a ? a->bytes : 0; }
int gpu_arena_kind(const gpu_arena_t *a) { return a ? a->kind : 0; }
int gpu_arena_read_only(const gpu_arena_t *a) { return a ? a->read_only : 0; }

void gpu_arena_free(gpu_arena_t *a)
{
    if (!a) return;
    (void)cudaSetDevice(a->device);
    if (a->kind == GPU_ARENA_VMM) {
        /* the physical memory lives on while another process maps it: the
         * driver refcounts the allocation across processes */
        CUdeviceptr va = (CUdeviceptr)(uintptr_t)a->ptr;
        drv.unmap(va, a->bytes);
        drv.addr_free(va, a->bytes);
        drv.release(a->vmm);
    } else if (a->owner) {
        (void)cudaFree(a->ptr);
    } else {
        (void)cudaIpcCloseMemHandle(a->ptr);
    }
    (void)cudaGetLastError();
    free(a);
}

void gpu_arena_close(gpu_arena_t *a) { gpu_arena_free(a); }

/* ---- copies ------------------------------------------------------------ */

static int copy(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind,
                gpu_stream_t *s, const char *what)
{
    if (n == 0) return 0;
    if (!dst || !src) return gpu_fail(-EINVAL, "%s: NULL pointer", what);
    cudaError_t e = cudaMemcpyAsync(dst, src, n, kind, to_stream(s));
    if (e != cudaSuccess) return cuda_fail(e, what);
    return 0;
}

int gpu_copy_h2d(void *dst, const void *src, size_t n, gpu_stream_t *s)
{
    return copy(dst, src, n, cudaMemcpyHostToDevice, s, "gpu_copy_h2d");
}

int gpu_copy_d2h(void *dst, const void *src, size_t n, gpu_stream_t *s)
{
    return copy(dst, src, n, cudaMemcpyDeviceToHost, s, "gpu_copy_d2h");
}

int gpu_copy_d2d(void *dst, const void *src, size_t n, gpu_stream_t *s)
{
    return copy(dst, src, n, cudaMemcpyDeviceToDevice, s, "gpu_copy_d2d");
}

int gpu_memset_zero(void *dst, size_t n, gpu_stream_t *s)
{
    if (n == 0) return 0;
    if (!dst) return gpu_fail(-EINVAL, "gpu_memset_zero: NULL pointer");
    cudaError_t e = cudaMemsetAsync(dst, 0, n, to_stream(s));
    if (e != cudaSuccess) return cuda_fail(e, "gpu_memset_zero");
    return 0;
}

/* ---- events ------------------------------------------------------------ */

struct gpu_event {
    cudaEvent_t ev;
};

int gpu_event_new(gpu_event_t **out, unsigned char handle[GPU_IPC_HANDLE_BYTES])
{
    if (!out || !handle) return gpu_fail(-EINVAL, "gpu_event_new: NULL argument");
    *out = NULL;
    gpu_event_t *e = calloc(1, sizeof *e);
    if (!e) return gpu_fail(-ENOMEM, "gpu_event_new: out of host memory");
    cudaError_t ce = cudaEventCreateWithFlags(&e->ev, cudaEventInterprocess | cudaEventDisableTiming);
    if (ce != cudaSuccess) {
        free(e);
        return cuda_fail(ce, "cudaEventCreateWithFlags(interprocess)");
    }
    cudaIpcEventHandle_t h;
    ce = cudaIpcGetEventHandle(&h, e->ev);
    if (ce != cudaSuccess) {
        (void)cudaEventDestroy(e->ev);
        free(e);
        return cuda_fail(ce, "cudaIpcGetEventHandle");
    }
    memcpy(handle, &h, GPU_IPC_HANDLE_BYTES);
    *out = e;
    gpu_clear_error();
    return 0;
}

int gpu_event_open(const unsigned char handle[GPU_IPC_HANDLE_BYTES], gpu_event_t **out)
{
    if (!out || !handle) return gpu_fail(-EINVAL, "gpu_event_open: NULL argument");
    *out = NULL;
    gpu_event_t *e = calloc(1, sizeof *e);
    if (!e) return gpu_fail(-ENOMEM, "gpu_event_open: out of host memory");
    cudaIpcEventHandle_t h;
    memcpy(&h, handle, GPU_IPC_HANDLE_BYTES);
    cudaError_t ce = cudaIpcOpenEventHandle(&e->ev, h);
    if (ce != cudaSuccess) {
        free(e);
        return cuda_fail(ce, "cudaIpcOpenEventHandle");
    }
    *out = e;
    gpu_clear_error();
    return 0;
}

int gpu_event_record(gpu_event_t *e, gpu_stream_t *s)
{
    if (!e) return gpu_fail(-EINVAL, "gpu_event_record: NULL event");
    CUDA_TRY(cudaEventRecord(e->ev, to_stream(s)));
    return 0;
}

int gpu_event_wait(gpu_event_t *e, gpu_stream_t *s)
{
    if (!e) return gpu_fail(-EINVAL, "gpu_event_wait: NULL event");
    CUDA_TRY(cudaStreamWaitEvent(to_stream(s), e->ev, 0));
    return 0;
}

int gpu_event_sync(gpu_event_t *e)
{
    if (!e) return gpu_fail(-EINVAL, "gpu_event_sync: NULL event");
    CUDA_TRY(cudaEventSynchronize(e->ev));
    return 0;
}

void gpu_event_free(gpu_event_t *e)
{
    if (!e) return;
    (void)cudaEventDestroy(e->ev);
    free(e);
}

void gpu_event_close(gpu_event_t *e) { gpu_event_free(e); }

/* ---- host memory and pointers ------------------------------------------ */

int gpu_host_register(void *ptr, size_t bytes, int read_only)
{
    if (!ptr || bytes == 0) return gpu_fail(-EINVAL, "gpu_host_register: empty range");
    unsigned flags = cudaHostRegisterPortable | cudaHostRegisterMapped;
    if (read_only) {
        int dev = 0, ok = 0;
        CUDA_TRY(cudaGetDevice(&dev));
        CUDA_TRY(cudaDeviceGetAttribute(&ok, cudaDevAttrHostRegisterReadOnlySupported, dev));
        if (!ok) return gpu_fail(-EOPNOTSUPP, "gpu_host_register: device %d cannot register read-only memory", dev);
        flags |= cudaHostRegisterReadOnly;
    }
    CUDA_TRY(cudaHostRegister(ptr, bytes, flags));
    gpu_clear_error();
    return 0;
}

int gpu_host_unregister(void *ptr)
{
    if (!ptr) return gpu_fail(-EINVAL, "gpu_host_unregister: NULL");
    CUDA_TRY(cudaHostUnregister(ptr));
    return 0;
}

int gpu_pointer_is_device(const void *ptr)
{
    if (!ptr) return 0;
    struct cudaPointerAttributes at;
    memset(&at, 0, sizeof at);
    cudaError_t e = cudaPointerGetAttributes(&at, ptr);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return at.type == cudaMemoryTypeDevice || at.type == cudaMemoryTypeManaged;
}
