/* fuzz_noderec.c - libFuzzer target for the node record decoders: what a
 * peer (or anything else with write access to Redis) puts in `hdr` and
 * `protos`.
 *
 * The first input byte picks the decoder, the rest is the value. Properties:
 * no crash, leak or sanitizer report; an accepted hdr re-encodes to exactly
 * its bytes; an accepted protos value keeps every bound, has unit centroids,
 * and re-encodes to a value that decodes again to the same shape.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "noderec.h"
#include "simcache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_noderec: %s\n", what);
        abort();
    }
}

static void check_hdr(const uint8_t *p, size_t n)
{
    noderec_hdr_t h;
    if (noderec_hdr_decode(p, n, &h)) return;
    must(noderec_id_valid(h.id, strlen(h.id)), "accepted hdr has a bad id");
    must(isfinite(h.rate) && h.rate >= 0, "accepted hdr has a bad rate");
    proto_wr_t w;
    proto_wr_init(&w);
    noderec_hdr_encode(&w, &h);
    must(!w.err && w.len == n && memcmp(w.buf, p, n) == 0, "hdr does not re-encode to its bytes");
    proto_wr_free(&w);
}

static void check_protos(const uint8_t *p, size_t n)
{
    noderec_protos_t a, b;
    int rc = noderec_protos_decode(p, n, &a);
    if (rc) {
        noderec_protos_free(&a);
        return;
    }
    must(a.n_ns <= NODEREC_MAX_NS, "too many namespaces");
    proto_wr_t w;
    proto_wr_init(&w);
    noderec_protos_begin(&w, a.seq, a.n_ns);
    for (uint32_t i = 0; i < a.n_ns; i++) {
        const noderec_ns_t *ns = &a.ns[i];
        must(ns->dim >= 1 && ns->dim <= SIMCACHE_MAX_DIM && ns->k >= 1 && ns->k <= NODEREC_MAX_K,
             "namespace bounds");
        for (uint32_t c = 0; c < ns->k; c++) {
            double nn = 0;
            for (uint32_t j = 0; j < ns->dim; j++) {
                float v = ns->centroids[(size_t)c * ns->dim + j];
                must(isfinite(v), "non-finite centroid");
                nn += (double)v * v;
            }
            must(fabs(nn - 1) < 1e-3, "centroid not unit length");
            must(ns->counts[c] >= 1, "empty prototype");
        }
        noderec_protos_add_ns(&w, ns->hash, ns->dim, ns->k, ns->counts, ns->centroids);
    }
    must(!w.err && w.len == n, "protos re-encode to another size");
    /* Renormalising may move an fp16 value by an ulp, so compare shapes. */
    int rc2 = noderec_protos_decode(w.buf, w.len, &b);
    must(rc2 == 0 && b.n_ns == a.n_ns && b.seq == a.seq, "re-encoded protos not accepted");
    noderec_protos_free(&b);
    proto_wr_free(&w);
    noderec_protos_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    uint8_t *copy = malloc(size - 1 ? size - 1 : 1);   /* exact: ASan sees any overread */
    must(copy != NULL, "out of memory");
    memcpy(copy, data + 1, size - 1);
    if (data[0] & 1) check_protos(copy, size - 1);
    else check_hdr(copy, size - 1);
    free(copy);
    return 0;
}
