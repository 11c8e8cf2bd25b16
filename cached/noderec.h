/* noderec.h - the node record simcached publishes to Redis, as bytes.
 *
 * Two binary values of the node's Redis hash (docs/cluster.md has the byte
 * layout): `hdr`, small and rewritten every heartbeat (identity, address,
 * load figures, the sequence number of the prototypes), and `protos`,
 * rewritten only when the prototypes change (per namespace: a keyed hash of
 * the namespace, dimension, and k prototypes as counts plus fp16 unit
 * centroids). Little-endian, versioned, every size bounded. Decoders accept
 * exactly one well-formed encoding: anything else (truncated, trailing bytes,
 * unknown magic or version, a bound exceeded, a non-finite or non-unit
 * centroid, a duplicate namespace) is refused, so a record that another
 * program or version wrote is ignored, never half-read.
 * Pure functions over byte buffers: no Redis, no clock.
 */
#ifndef SIMCACHE_NODEREC_H
#define SIMCACHE_NODEREC_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define NODEREC_HDR_MAGIC 0x314e4353u    /* "SCN1" */
#define NODEREC_PROTOS_MAGIC 0x31504353u /* "SCP1" */
#define NODEREC_VERSION 1
#define NODEREC_MAX_ID 64                /* node id: [A-Za-z0-9._:-], 1..64 bytes */
#define NODEREC_MAX_ADDR 255             /* advertised address: printable UTF-8 */
#define NODEREC_MAX_NS 256               /* namespaces in one record */
#define NODEREC_MAX_K 64                 /* prototypes per namespace */
#define NODEREC_MAX_BYTES (16u << 20)    /* a protos value */
#define NODEREC_HASH_LEN 16              /* namespace hash bytes */

typedef struct {
    char id[NODEREC_MAX_ID + 1];
    char addr[NODEREC_MAX_ADDR + 1];
    uint64_t seq;         /* sequence number of the protos value it goes with */
    uint64_t time_ms;     /* writer's wall clock (informational) */
    uint64_t entries;     /* load figures of the writer */
    uint64_t bytes;
    uint64_t capacity;
    float rate;           /* client requests per second, recent */
} noderec_hdr_t;

/* Append the encoded header to w (w->err on failure). */
void noderec_hdr_encode(proto_wr_t *w, const noderec_hdr_t *h);
/* Decode exactly len bytes. Returns 0, or -1 with *h unspecified. */
int noderec_hdr_decode(const void *buf, size_t len, noderec_hdr_t *h);

/* One namespace's prototypes (decoded: centroids as unit fp32). */
typedef struct {
    uint8_t hash[NODEREC_HASH_LEN];
    uint32_t dim, k;
    uint32_t *counts;     /* k */
    float *centroids;     /* k*dim, row-major, renormalised to unit length */
} noderec_ns_t;

typedef struct {
    uint64_t seq;
    uint32_t n_ns;
    noderec_ns_t *ns;     /* n_ns, owned: free with noderec_protos_free */
} noderec_protos_t;

/* Start a protos value announcing n_ns namespaces, then add each with
 * noderec_protos_add_ns (counts: k values; centroids: k*dim unit floats,
 * written as fp16). The caller keeps to the bounds above. */
void noderec_protos_begin(proto_wr_t *w, uint64_t seq, uint32_t n_ns);
void noderec_protos_add_ns(proto_wr_t *w, const uint8_t hash[NODEREC_HASH_LEN], uint32_t dim,
                           uint32_t k, const uint32_t *counts, const float *centroids);
/* Decode exactly len bytes into *out (allocated; free with
 * noderec_protos_free, also after a failure). Returns 0, -1 (malformed) or
 * -2 (out of memory). */
int noderec_protos_decode(const void *buf, size_t len, noderec_protos_t *out);
void noderec_protos_free(noderec_protos_t *p);
/* Bytes noderec_protos_add_ns writes for one namespace. */
size_t noderec_ns_bytes(uint32_t dim, uint32_t k);

/* Is s[0..n) a valid node id? */
int noderec_id_valid(const char *s, size_t n);

/* IEEE 754 binary16 conversions (round to nearest even; subnormals kept;
 * overflow to infinity). */
uint16_t noderec_f16(float f);
float noderec_f32(uint16_t h);

#endif
