/* proto.h - wire codec shared by simcached and libsimcache-client.
 *
 * A frame is a fixed 24-byte little-endian header followed by `len` payload
 * bytes. Pure functions over byte buffers: no sockets, no event loop, no
 * storage. Readers never read past the buffer; every decode reports a
 * malformed field as SIMCACHE_EPROTO. The byte layout of every message is in
 * docs/protocol.md.
 */
#ifndef SIMCACHE_PROTO_H
#define SIMCACHE_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "simcache.h"

#define PROTO_MAGIC 0x434d4953u       /* "SIMC" as little-endian bytes */
#define PROTO_VERSION 1
#define PROTO_VERSION_MIN 1
#define PROTO_HDR_SIZE 24
#define PROTO_DEFAULT_MAX_PAYLOAD (16u << 20)
#define PROTO_MAX_ERRMSG 512u
/* The longest reply payload a client accepts. The longest a daemon sends is
 * a lookup_batch reply of SIMCACHE_MAX_BATCH hits with full metadata, about
 * 1.1 MiB; the limit leaves room for that to grow. A longer one is refused
 * (SIMCACHE_EPROTO) before anything is allocated for it. */
#define PROTO_MAX_REPLY (16u << 20)

typedef enum {
    OP_HELLO = 1,
    OP_PUT_BEGIN = 2,
    OP_PUT_COMMIT = 3,
    OP_PUT_ABORT = 4,
    OP_LOOKUP = 5,
    OP_LOOKUP_BATCH = 6,
    OP_GET = 7,
    OP_RELEASE = 8,
    OP_DELETE = 9,
    OP_STATS = 10,
    OP_PING = 11,
    OP_ROUTE = 12,
    OP_GPU_ATTACH = 13,
    OP_MAX_ = 14,
} proto_op_t;

/* Replies carry the opcode of their request with this bit set. */
#define OP_REPLY 0x8000u

typedef struct {
    uint32_t magic;
    uint16_t version;
    uint16_t opcode;
    uint64_t req_id;
    uint32_t len;       /* payload bytes after the header */
    int32_t status;     /* requests: 0; replies: 0 or a SIMCACHE_E* code */
} proto_hdr_t;

/* Encode h into 24 bytes at out. */
void proto_hdr_encode(const proto_hdr_t *h, uint8_t out[PROTO_HDR_SIZE]);

/* Decode 24 bytes and check magic, version (== PROTO_VERSION unless
 * any_version), and len <= max_payload. Returns 0, SIMCACHE_EPROTO (bad
 * magic), SIMCACHE_EVERSION or SIMCACHE_ETOOBIG; *h is filled in every case so
 * the caller can echo req_id in its error reply. */
int proto_hdr_decode(const uint8_t in[PROTO_HDR_SIZE], uint32_t max_payload, int any_version,
                     proto_hdr_t *h);

/* Name of an opcode ("lookup"), or "unknown". */
const char *proto_op_name(uint32_t op);

/* ---- reading a payload ---- */

typedef struct {
    const uint8_t *p;
    size_t left;
    int err;            /* sticky: set on the first short read */
} proto_rd_t;

void proto_rd_init(proto_rd_t *r, const void *buf, size_t len);
uint16_t proto_rd_u16(proto_rd_t *r);
uint32_t proto_rd_u32(proto_rd_t *r);
uint64_t proto_rd_u64(proto_rd_t *r);
float proto_rd_f32(proto_rd_t *r);
/* Pointer to the next n bytes (not copied), or NULL and err set. */
const void *proto_rd_bytes(proto_rd_t *r, size_t n);
/* A u16-length-prefixed string of at most max bytes; *len gets its length.
 * Not NUL-terminated. */
const char *proto_rd_str(proto_rd_t *r, size_t max, uint16_t *len);
/* 0 if every read succeeded and nothing is left, else SIMCACHE_EPROTO. */
int proto_rd_done(const proto_rd_t *r);

/* ---- writing a payload ---- */

typedef struct {
    uint8_t *buf;       /* owned; free with proto_wr_free */
    size_t len;
    size_t cap;
    int err;            /* sticky: set on allocation failure */
} proto_wr_t;

void proto_wr_init(proto_wr_t *w);
void proto_wr_free(proto_wr_t *w);
/* Drop the contents, keep the buffer. */
void proto_wr_reset(proto_wr_t *w);
/* Reserve n bytes and return a pointer to them (NULL and err on failure). */
uint8_t *proto_wr_reserve(proto_wr_t *w, size_t n);
void proto_wr_u16(proto_wr_t *w, uint16_t v);
void proto_wr_u32(proto_wr_t *w, uint32_t v);
void proto_wr_u64(proto_wr_t *w, uint64_t v);
void proto_wr_f32(proto_wr_t *w, float v);
void proto_wr_bytes(proto_wr_t *w, const void *p, size_t n);
/* u16 length + bytes; n must be <= 65535. */
void proto_wr_str(proto_wr_t *w, const char *s, size_t n);

/* Append a whole frame: header (len filled in) + payload. */
void proto_wr_frame(proto_wr_t *w, uint16_t opcode, uint64_t req_id, int32_t status,
                    const void *payload, size_t len);
/* Start a frame whose payload is written next; returns the header's offset
 * for proto_wr_frame_end. */
size_t proto_wr_frame_begin(proto_wr_t *w, uint16_t opcode, uint64_t req_id, int32_t status);
/* Patch the length of the frame started at off. */
void proto_wr_frame_end(proto_wr_t *w, size_t off);

/* ---- message bodies shared by both ends ---- */

/* Layout on the wire: 6 x u32 in simcache_layout_t order. */
void proto_wr_layout(proto_wr_t *w, const simcache_layout_t *l);
void proto_rd_layout(proto_rd_t *r, simcache_layout_t *l);
/* Validate a layout (known dtype, nonzero fields, no overflow) and, if
 * size != 0, that it describes exactly size bytes. 0 or SIMCACHE_ELAYOUT. */
int proto_layout_check(const simcache_layout_t *l, uint64_t size);
/* Bytes a layout describes (0 if invalid or overflowing): the library's
 * simcache_layout_bytes and the daemon's checks both use it. */
uint64_t proto_layout_bytes(const simcache_layout_t *l);
/* "SIMCACHE_E...: what it means" for a code (simcache_strerror). */
const char *proto_strerror(int code);

/* Hello request. Strings point into the payload (not NUL-terminated). */
typedef struct {
    uint16_t min_version, max_version;
    uint32_t dim;
    uint32_t flags;
    int32_t gpu_device;
    const char *model; uint16_t model_len;
    const char *layout_fp; uint16_t layout_fp_len;
    const char *tenant; uint16_t tenant_len;
} proto_hello_t;

void proto_wr_hello(proto_wr_t *w, const proto_hello_t *h);
/* Decode and check the strings: model and layout_fp nonempty, all three at
 * most SIMCACHE_MAX_NAME bytes of valid UTF-8 without NUL. Returns 0,
 * SIMCACHE_EPROTO or SIMCACHE_ENAMESPACE. */
int proto_rd_hello(proto_rd_t *r, proto_hello_t *h);

/* Hello reply: the arena travels as an SCM_RIGHTS fd with this frame. */
typedef struct {
    uint16_t version;
    uint16_t tiers;         /* bit 0 host, bit 1 gpu, bit 2 disk */
    uint32_t max_payload;
    uint64_t client_id;
    uint64_t arena_size;
    float default_threshold;
    uint32_t max_batch;
} proto_hello_reply_t;

void proto_wr_hello_reply(proto_wr_t *w, const proto_hello_reply_t *h);
int proto_rd_hello_reply(proto_rd_t *r, proto_hello_reply_t *h);

/* A match record (lookup, batch and get replies). meta points into the
 * payload when read. */
typedef struct {
    uint64_t id;
    uint64_t lease;
    float similarity;
    uint32_t tier;
    uint64_t offset;        /* in the host arena */
    uint64_t size;
    simcache_layout_t layout;
    uint32_t meta_len;
    const void *meta;
} proto_match_t;

void proto_wr_match(proto_wr_t *w, const proto_match_t *m);
void proto_rd_match(proto_rd_t *r, proto_match_t *m);

/* Embedding: u32 dim + dim f32. Returns the floats (unaligned pointer into
 * the payload: copy before use) or NULL. */
const void *proto_rd_embedding(proto_rd_t *r, uint32_t max_dim, uint32_t *dim);
void proto_wr_embedding(proto_wr_t *w, const float *v, uint32_t dim);

/* Route reply: which node holds the closest prototypes. Strings point into
 * the payload when read (not NUL-terminated); node 1..SIMCACHE_MAX_NODE_ID
 * bytes, address at most SIMCACHE_MAX_ADDRESS, both valid UTF-8. */
typedef struct {
    const char *node; uint16_t node_len;
    const char *addr; uint16_t addr_len;
    float similarity;
    uint32_t flags;         /* SIMCACHE_ROUTE_* (bit 0: the answering node itself) */
    float load;
} proto_route_reply_t;

void proto_wr_route_reply(proto_wr_t *w, const proto_route_reply_t *rr);
/* 0, or SIMCACHE_EPROTO (truncated, trailing bytes, bad string, similarity
 * or load not finite). */
int proto_rd_route_reply(proto_rd_t *r, proto_route_reply_t *rr);

/* Flags of put_begin. */
#define PROTO_PUT_DEVICE 1u        /* stage in device memory, store in the GPU tier */
/* Flags of gpu_attach. */
#define PROTO_ATTACH_PREFER_DEVICE 1u  /* place this client's hits in the GPU tier */

/* A device memory region shared through CUDA IPC (the GPU tier's arena, a
 * device staging buffer): what gpu_ipc's gpu_arena_handle_t holds, on the
 * wire as u32 kind, i32 device, u64 bytes, 64 handle bytes (88 bytes).
 * kind 1 (VMM): a POSIX fd travels with the frame (SCM_RIGHTS); kind 2
 * (legacy cudaIpcMemHandle_t): the 64 bytes are the handle. */
#define PROTO_GPU_HANDLE_BYTES 64
typedef struct {
    uint32_t kind;
    int32_t device;
    uint64_t bytes;
    uint8_t ipc[PROTO_GPU_HANDLE_BYTES];
} proto_gpu_region_t;

void proto_wr_gpu_region(proto_wr_t *w, const proto_gpu_region_t *g);
/* Sets the reader's error (SIMCACHE_EPROTO at proto_rd_done) on a short
 * read, a kind other than 1 or 2, a negative device or 0 bytes. */
void proto_rd_gpu_region(proto_rd_t *r, proto_gpu_region_t *g);

/* Is s[0..n) valid UTF-8 with no NUL byte? */
int proto_utf8_valid(const char *s, size_t n);

#endif
