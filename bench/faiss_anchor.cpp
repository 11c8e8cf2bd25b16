/* faiss_anchor.cpp - FAISS IndexFlatIP, IndexLSH and IndexHNSWFlat behind
 * faiss_anchor.h.
 *
 * Exceptions stop here: each entry point catches and turns them into -1 or
 * NULL with a message for fa_last_error().
 */
#include "faiss_anchor.h"

#include <faiss/Index.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexLSH.h>
#include <faiss/utils/distances.h>
#include <omp.h>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

using idx_t = faiss::Index::idx_t;

struct fa_flat {
    faiss::IndexFlatIP index;
    explicit fa_flat(uint32_t d) : index(d) {}
};

struct fa_lsh {
    faiss::IndexLSH index;
    const fa_flat *flat;
    std::vector<float> dist;
    std::vector<idx_t> labels;
    fa_lsh(uint32_t d, int nbits, bool thr, const fa_flat *f)
        : index(d, nbits, true, thr), flat(f) {}
};

struct fa_hnsw {
    faiss::IndexHNSWFlat index;
    fa_hnsw(uint32_t d, int m) : index((int)d, m, faiss::METRIC_INNER_PRODUCT) {}
};

static thread_local std::string last_error;

static void fail(const char *where, const std::exception &e)
{
    last_error = std::string(where) + ": " + e.what();
}

extern "C" {

const char *fa_version(void)
{
    static char v[32];
    std::snprintf(v, sizeof v, "%d.%d.%d", FAISS_VERSION_MAJOR, FAISS_VERSION_MINOR,
                  FAISS_VERSION_PATCH);
    return v;
}

const char *fa_last_error(void)
{
    return last_error.c_str();
}

void fa_set_threads(int n)
{
    omp_set_num_threads(n);
}

int fa_max_threads(void)
{
    return omp_get_num_procs();
}

fa_flat_t *fa_flat_new(uint32_t dim, uint64_t n)
{
    try {
        fa_flat_t *f = new fa_flat_t(dim);
        f->index.codes.resize((size_t)n * dim * sizeof(float));
        f->index.ntotal = (idx_t)n;
        return f;
    } catch (const std::exception &e) {
        fail("fa_flat_new", e);
        return nullptr;
    }
}

float *fa_flat_rows(fa_flat_t *f)
{
    return f->index.get_xb();
}

void fa_flat_free(fa_flat_t *f)
{
    delete f;
}

int fa_flat_search(fa_flat_t *f, const float *q, size_t nq, int64_t *best, float *sim)
{
    try {
        f->index.search((idx_t)nq, q, 1, sim, reinterpret_cast<idx_t *>(best));
        return 0;
    } catch (const std::exception &e) {
        fail("fa_flat_search", e);
        return -1;
    }
}

fa_lsh_t *fa_lsh_new(const fa_flat_t *flat, int nbits, int train_thresholds, size_t ntrain)
{
    fa_lsh_t *l = nullptr;
    try {
        const faiss::IndexFlatIP &fi = flat->index;
        const float *x = fi.get_xb();
        size_t n = (size_t)fi.ntotal, d = (size_t)fi.d;
        l = new fa_lsh_t((uint32_t)d, nbits, train_thresholds != 0, flat);
        /* train() sets the per-bit thresholds (the median of each
         * projection) when train_thresholds; otherwise it only marks the
         * index trained. */
        l->index.train((idx_t)(ntrain < n ? ntrain : n), x);
        /* In chunks: add() rotates its input into a temporary n x nbits. */
        for (size_t i = 0; i < n; i += 65536) {
            size_t m = n - i < 65536 ? n - i : 65536;
            l->index.add((idx_t)m, x + i * d);
        }
        return l;
    } catch (const std::exception &e) {
        fail("fa_lsh_new", e);
        delete l;
        return nullptr;
    }
}

void fa_lsh_free(fa_lsh_t *l)
{
    delete l;
}

uint64_t fa_lsh_code_bytes(const fa_lsh_t *l)
{
    return l->index.code_size;
}

int fa_lsh_best(fa_lsh_t *l, const float *q, int k, int64_t *best, float *sim)
{
    try {
        l->dist.resize((size_t)k);
        l->labels.resize((size_t)k);
        l->index.search(1, q, k, l->dist.data(), l->labels.data());
        const faiss::IndexFlatIP &fi = l->flat->index;
        const float *rows = fi.get_xb();
        size_t d = (size_t)fi.d;
        int64_t b = -1;
        float s = -2.0f;
        for (int i = 0; i < k; i++) {
            idx_t r = l->labels[(size_t)i];
            if (r < 0) continue;
            float v = faiss::fvec_inner_product(rows + (size_t)r * d, q, d);
            if (v > s || (v == s && r < b)) {
                s = v;
                b = r;
            }
        }
        *best = b;
        *sim = s;
        return 0;
    } catch (const std::exception &e) {
        fail("fa_lsh_best", e);
        return -1;
    }
}

fa_hnsw_t *fa_hnsw_new(const fa_flat_t *flat, int m, int ef_construction, int ef_search)
{
    fa_hnsw_t *h = nullptr;
    try {
        const faiss::IndexFlatIP &fi = flat->index;
        h = new fa_hnsw_t((uint32_t)fi.d, m);
        h->index.hnsw.efConstruction = ef_construction;
        h->index.hnsw.efSearch = ef_search;
        /* One add of every row: HNSW inserts them in parallel (OpenMP). */
        h->index.add(fi.ntotal, fi.get_xb());
        return h;
    } catch (const std::exception &e) {
        fail("fa_hnsw_new", e);
        delete h;
        return nullptr;
    }
}

void fa_hnsw_free(fa_hnsw_t *h)
{
    delete h;
}

int fa_hnsw_best(fa_hnsw_t *h, const float *q, int64_t *best, float *sim)
{
    try {
        idx_t label = -1;
        float d = 0.0f;
        h->index.search(1, q, 1, &d, &label);
        *best = label;
        *sim = d;
        return 0;
    } catch (const std::exception &e) {
        fail("fa_hnsw_best", e);
        return -1;
    }
}

float fa_dot(const float *a, const float *b, uint32_t dim)
{
    return faiss::fvec_inner_product(a, b, dim);
}

}  // extern "C"
