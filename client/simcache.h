/* simcache.h - client library for simcached, the inter-task KV cache sidecar.
 *
 * An inference process connects once per namespace (model, embedding
 * dimension, KV layout fingerprint, optional tenant salt), puts the KV of tasks
 * it computed, and looks up the KV of the most similar earlier task. A hit is a
 * lease on bytes mapped read-only into this process: nothing is copied on the
 * read path. Release the lease when done; closing the handle (or the process
 * dying) releases every lease it holds.
 *
 * Every call returns 0 (or a documented positive value) on success and a
 * negative SIMCACHE_E* code on failure; simcache_strerror() names the code and
 * simcache_last_error() gives the detail of the calling thread's last failure.
 *
 * Threads: a handle may be used from several threads; calls on one handle are
 * serialized by a mutex inside it (one request in flight per handle). Use one
 * handle per thread for parallel requests. The error detail is per thread
 * (like errno), so threads sharing a handle never see each other's messages.
 * The library never logs.
 *
 * Embeddings are passed as `dim` floats (the dim given at connect): the
 * library cannot see the length of your array, so a shorter one is read past
 * its end. Bindings that know the length check it (SIMCACHE_EDIM).
 */
#ifndef SIMCACHE_H
#define SIMCACHE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SIMCACHE_VERSION_STRING "0.1.0"

/* Result codes. Shared with the wire protocol (docs/protocol.md). */
enum {
    SIMCACHE_OK = 0,
    SIMCACHE_MISS = 1,          /* lookup: nothing at or above the threshold */
    SIMCACHE_EINVAL = -1,       /* bad argument */
    SIMCACHE_EPROTO = -2,       /* malformed frame: bad magic, truncated, bad field */
    SIMCACHE_EVERSION = -3,     /* no protocol version in common */
    SIMCACHE_ETOOBIG = -4,      /* frame, blob or batch over a limit */
    SIMCACHE_EOPCODE = -5,      /* unknown opcode */
    SIMCACHE_EDIM = -6,         /* embedding dimension differs from the namespace's */
    SIMCACHE_EEMBED = -7,       /* embedding holds NaN or Inf, or is the zero vector */
    SIMCACHE_ELAYOUT = -8,      /* layout invalid or does not match the blob size */
    SIMCACHE_ENOPUT = -9,       /* commit or abort of a put that was never begun */
    SIMCACHE_ELEASE = -10,      /* unknown or already released lease */
    SIMCACHE_EPERM = -11,       /* not yours (lease of another client) or not allowed */
    SIMCACHE_ENOSPC = -12,      /* tier full of leased or pending bytes */
    SIMCACHE_ENAMESPACE = -13,  /* namespace string empty, too long or not UTF-8 */
    SIMCACHE_EBUSY = -14,       /* too many connections */
    SIMCACHE_ENOTFOUND = -15,   /* no entry with that id */
    SIMCACHE_EIO = -16,         /* socket or system error */
    SIMCACHE_ENOMEM = -17,      /* out of memory */
    SIMCACHE_ECLOSED = -18,     /* connection closed by the daemon */
    SIMCACHE_ESTATE = -19,      /* request out of order (before hello, hello twice) */
    SIMCACHE_ELIMIT = -20,      /* too many leases or puts held by this client */
    SIMCACHE_ESHUTDOWN = -21,   /* daemon is draining */
    SIMCACHE_ENODEV = -22,      /* GPU placement asked for, no GPU tier */
    SIMCACHE_ECORRUPT = -23,    /* stored bytes failed their checksum */
};

/* Limits shared by daemon and client. */
#define SIMCACHE_MAX_DIM 16384u          /* embedding dimension */
#define SIMCACHE_MAX_NAME 255u           /* model id, layout fingerprint, tenant */
#define SIMCACHE_MAX_META 1024u          /* opaque per-entry metadata */
#define SIMCACHE_MAX_BATCH 1024u         /* embeddings in one lookup_batch */
#define SIMCACHE_DEFAULT_THRESHOLD 0.8f  /* cosine; the paper's stringent value */
#define SIMCACHE_MAX_NODE_ID 64u         /* node id in route answers */
#define SIMCACHE_MAX_ADDRESS 255u        /* advertised node address */

typedef struct simcache simcache_t;     /* opaque handle */

/* Element types of a KV blob. */
typedef enum {
    SIMCACHE_DTYPE_F32 = 1,
    SIMCACHE_DTYPE_F16 = 2,
    SIMCACHE_DTYPE_BF16 = 3,
    SIMCACHE_DTYPE_F8E4M3 = 4,
    SIMCACHE_DTYPE_F8E5M2 = 5,
    SIMCACHE_DTYPE_I8 = 6,
} simcache_dtype_t;

/* Shape of a KV blob. Its size in bytes must be exactly
 * parts * layers * kv_heads * head_dim * tokens * sizeof(dtype);
 * parts is 2 for separate K and V, 1 for a single latent. */
typedef struct {
    uint32_t dtype;     /* simcache_dtype_t */
    uint32_t parts;
    uint32_t layers;    /* layers stored (1 for the condensed top layer) */
    uint32_t kv_heads;
    uint32_t head_dim;
    uint32_t tokens;
} simcache_layout_t;

typedef enum {
    SIMCACHE_HOST_MEMORY = 0,
    SIMCACHE_DEVICE_MEMORY = 1,
} simcache_location_t;

typedef enum {
    SIMCACHE_TIER_GPU = 0,
    SIMCACHE_TIER_HOST = 1,
    SIMCACHE_TIER_DISK = 2,
} simcache_tier_t;

typedef struct {
    const char *socket_path;        /* NULL: $SIMCACHE_SOCKET, else the daemon default */
    const char *model;              /* model identity, required */
    const char *layout_fingerprint; /* KV layout fingerprint, required */
    const char *tenant;             /* tenant salt; NULL or "" for none */
    uint32_t dim;                   /* embedding dimension, required */
    int gpu_device;                 /* CUDA device ordinal, or -1 for none */
    int timeout_ms;                 /* per request; 0 = wait forever (a reply is first
                                     * waited for awake, $SIMCACHE_SPIN_US, default 200 us) */
    uint32_t flags;                 /* SIMCACHE_PREFER_DEVICE, or 0 */
} simcache_opts_t;

/* opts.flags: place this handle's hits in the daemon's GPU tier (moving them
 * there from the host tier) and return them as device pointers. Needs a
 * usable gpu_device that is the daemon's GPU tier device. */
#define SIMCACHE_PREFER_DEVICE 1u

/* A hit (or a get). Valid until simcache_release(); `data` points into a
 * read-only shared mapping owned by the handle. */
typedef struct {
    uint64_t id;
    uint64_t lease;                 /* 0 when the match holds no lease (a miss) */
    float similarity;               /* cosine, in [-1, 1]; 1 for get */
    simcache_tier_t tier;
    simcache_layout_t layout;
    uint64_t size;
    const void *data;               /* host tier: read-only pointer, else NULL */
    void *device_ptr;               /* GPU tier: pointer in this process's context */
    uint32_t meta_len;
    uint8_t meta[SIMCACHE_MAX_META];
} simcache_match_t;

typedef struct {
    const void *meta;               /* opaque metadata, up to SIMCACHE_MAX_META */
    uint32_t meta_len;
    uint32_t flags;                 /* reserved, 0 */
} simcache_put_opts_t;

typedef struct {
    uint64_t entries;               /* in this daemon, all namespaces, memory tiers (GPU + host) */
    uint64_t ns_entries;            /* in this handle's namespace */
    uint64_t host_bytes_used;
    uint64_t host_bytes_capacity;
    uint64_t lookups;
    uint64_t hits;
    uint64_t misses;
    uint64_t puts;
    uint64_t evictions;
    uint64_t leases_active;         /* all clients */
    uint64_t clients;
    uint64_t namespaces;
} simcache_stats_t;

/* Route answer flags. */
#define SIMCACHE_ROUTE_LOCAL 1u  /* the node is the daemon this handle talks to */
#define SIMCACHE_ROUTE_STALE 2u  /* that daemon could not refresh its feature table lately */
#define SIMCACHE_ROUTE_NONE 4u   /* no node has prototypes of this namespace yet: the
                                  * answer is the local daemon, similarity 0 */

/* Where a task would best run: the node whose prototypes (centroids of its
 * cached embeddings of this namespace) are closest to the task's embedding.
 * docs/cluster.md says how a scheduler uses it. */
typedef struct {
    char node_id[SIMCACHE_MAX_NODE_ID + 1];   /* NUL-terminated */
    char address[SIMCACHE_MAX_ADDRESS + 1];   /* as the node advertises it */
    float similarity;               /* cosine with that node's closest prototype */
    float load;                     /* that node's load, 0..1 (request rate relative
                                     * to the busiest node in the table) */
    int local;                      /* 1 if it is the daemon of this handle */
    uint32_t flags;                 /* SIMCACHE_ROUTE_* */
} simcache_node_t;

/* Fill opts with defaults (no GPU, no timeout, no tenant). */
void simcache_opts_init(simcache_opts_t *opts);

/* Connect and declare the namespace. On success *out is a new handle, freed by
 * simcache_close(). On failure *out is NULL when the arguments were refused
 * before anything was tried (SIMCACHE_EINVAL, SIMCACHE_ENAMESPACE, or out of
 * memory); otherwise it is a closed handle kept so that simcache_last_error()
 * can explain (no daemon, refused, bad reply): simcache_close() it too. */
int simcache_connect(const simcache_opts_t *opts, simcache_t **out);

/* Close the connection, unmap everything and free the handle. The daemon
 * releases every lease and unfinished put of the handle. NULL is a no-op. */
void simcache_close(simcache_t *h);

/* Store `size` bytes of KV described by `layout` under `embedding` (dim
 * floats, need not be normalized). Copies the bytes once into a staging area
 * of this client; the daemon commits them into the shared host tier.
 * kv_location SIMCACHE_DEVICE_MEMORY: kv is a device pointer of this
 * process (connect with gpu_device >= 0). When the handle mapped the
 * daemon's GPU tier (simcache_gpu_tier), the bytes are copied device to
 * device into a staging buffer only this handle can write and land in the
 * GPU tier; otherwise they are copied device to host into the staging area
 * and land in the host tier. SIMCACHE_ENODEV when the handle has no usable
 * device.
 * *id receives the new entry id. */
int simcache_put(simcache_t *h, const float *embedding, const simcache_layout_t *layout,
                 const void *kv, uint64_t size, simcache_location_t kv_location,
                 uint64_t *id);

/* simcache_put with metadata (opts may be NULL). */
int simcache_put_ex(simcache_t *h, const float *embedding, const simcache_layout_t *layout,
                    const void *kv, uint64_t size, simcache_location_t kv_location,
                    const simcache_put_opts_t *opts, uint64_t *id);

/* Zero-copy put in two steps: begin gives a writable staging buffer of `size`
 * bytes (owned by the handle, valid until commit or abort) to compute the KV
 * into; commit publishes it. *token names the put. When begin fails after
 * the daemon began the put (SIMCACHE_EIO: the buffer cannot be mapped;
 * SIMCACHE_EPROTO: a bad reply) the library has aborted it there: nothing
 * stays reserved, and a later begin maps a reused buffer again. */
int simcache_put_begin(simcache_t *h, uint64_t size, void **buf, uint64_t *token);
int simcache_put_commit(simcache_t *h, uint64_t token, const float *embedding,
                        const simcache_layout_t *layout, const simcache_put_opts_t *opts,
                        uint64_t *id);
int simcache_put_abort(simcache_t *h, uint64_t token);

/* The same in device memory: dev_buf gets a pointer (in this process's CUDA
 * context, on gpu_device) to a staging buffer of at least size bytes in the
 * daemon's device memory, writable by this handle only, to compute the KV
 * into; finish every write to it (synchronise the stream) before
 * simcache_put_commit, which copies it device to device into the GPU tier.
 * One device put at a time per handle (SIMCACHE_ELIMIT otherwise); the
 * buffer is reused by the next one. SIMCACHE_ENODEV without the GPU tier
 * (simcache_gpu_tier says why). A buffer that cannot be mapped here
 * (SIMCACHE_EIO or SIMCACHE_ENODEV) ends the put on the daemon too, and the
 * next call tries to map it again. */
int simcache_put_begin_device(simcache_t *h, uint64_t size, void **dev_buf, uint64_t *token);

/* Best entry of this namespace with cosine >= threshold (threshold < 0: the
 * daemon's default). Returns 0 with *match filled and a lease held, or
 * SIMCACHE_MISS with match->lease == 0. */
int simcache_lookup(simcache_t *h, const float *embedding, float threshold,
                    simcache_match_t *match);

/* n lookups in one round trip: embeddings is n*dim floats, matches has n
 * slots. Returns the number of hits (>= 0); misses have lease == 0. A batch
 * whose request exceeds the daemon's max_frame is SIMCACHE_ETOOBIG (checked
 * here, before sending). */
int simcache_lookup_batch(simcache_t *h, const float *embeddings, size_t n,
                          float threshold, simcache_match_t *matches);

/* Entry by id, with a lease. SIMCACHE_ENOTFOUND if gone. SIMCACHE_ECORRUPT
 * if it was only on disk and its bytes failed their checksum when this get
 * read them: the daemon dropped it (the next get is SIMCACHE_ENOTFOUND). */
int simcache_get(simcache_t *h, uint64_t id, simcache_match_t *match);

/* End the lease of a match (its data pointer is no longer valid) and clear
 * match->lease, so releasing the same match again is SIMCACHE_EINVAL; a lease
 * id the daemon already ended (a copy of the match, or release_lease twice)
 * is SIMCACHE_ELEASE. */
int simcache_release(simcache_t *h, simcache_match_t *match);

/* Release by lease id (for leases passed between threads). */
int simcache_release_lease(simcache_t *h, uint64_t lease);

/* Delete an entry; it stops matching at once, its bytes go when the last
 * lease on it ends. */
int simcache_delete(simcache_t *h, uint64_t id);

int simcache_stats(simcache_t *h, simcache_stats_t *stats);

/* Which node holds the prototypes closest to embedding (dim floats, need
 * not be normalized): highest similarity minus route_load_weight times the
 * node's load, the local daemon on ties. Without Redis configured the answer
 * is always the local daemon. Nothing is leased. Returns 0 with *node
 * filled, SIMCACHE_EEMBED or SIMCACHE_EDIM for a bad embedding, or a
 * transport error. */
int simcache_route(simcache_t *h, const float *embedding, simcache_node_t *node);

/* Round trip with no effect. */
int simcache_ping(simcache_t *h);

/* Copy n bytes at offset of a leased match into device memory dst
 * of this process, queued on cuda_stream (a cudaStream_t; NULL: the default
 * stream) and returned at once: synchronise the stream before reading dst,
 * and keep the lease until then. The handle's view of the host arena is
 * registered with CUDA (read-only) at connect where the device allows, so
 * the copy is a DMA at PCIe speed. A GPU-tier match (device_ptr set) is a
 * device-to-device copy. SIMCACHE_EINVAL (no lease, range outside
 * the entry), SIMCACHE_ENODEV (handle connected without a usable gpu_device;
 * simcache_last_error says why), SIMCACHE_EIO (CUDA refused). */
int simcache_copy_to_device(simcache_t *h, const simcache_match_t *match, uint64_t offset,
                            void *dst, uint64_t n, void *cuda_stream);

/* GPU state of the handle: 0 no usable device (why, if not NULL, gets the
 * reason), 1 device usable, 2 device usable and the host arena pinned for it.
 * A handle whose gpu_device could not be used still works on the host tier. */
int simcache_gpu_status(const simcache_t *h, char *why, size_t len);

/* 1 if the handle mapped the daemon's GPU tier (CUDA IPC, read-only): hits
 * may then come as GPU-tier matches (device_ptr set, data NULL; only with
 * SIMCACHE_PREFER_DEVICE or for entries already in the GPU tier) and
 * device-memory puts land in the GPU tier. 0 otherwise (why gets the
 * reason: no device, the daemon has no GPU tier, another device, ...).
 * A GPU-tier match's bytes are complete when the reply arrives: the daemon
 * finishes every copy into its arena before it publishes an entry. */
int simcache_gpu_tier(const simcache_t *h, char *why, size_t len);

/* Bytes a layout describes, or 0 if it is invalid or overflows. */
uint64_t simcache_layout_bytes(const simcache_layout_t *layout);

/* Static name of a code ("SIMCACHE_EDIM: ..."); never NULL. */
const char *simcache_strerror(int code);

/* Detail of the calling thread's last failed simcache call (thread-local
 * storage owned by the library, valid until this thread's next call; "" if
 * none). h is accepted for symmetry and may be NULL. */
const char *simcache_last_error(const simcache_t *h);

#ifdef __cplusplus
}
#endif
#endif
