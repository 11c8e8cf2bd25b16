/* index.c - similarity index of one namespace (see index.h).
 *
 * Slot i holds vecs[i*dim] and ids[i]; once the lists are on, also an int8
 * code and its place in one list. Removal moves the last slot into the
 * hole, so every per-slot array stays dense. The lists are an inverted file
 * (IVF): each has a centroid, and holds the sign code records of the
 * entries closest to it, contiguous in list order, so that a search reads
 * them sequentially. A search narrows down in stages, each cheaper per entry
 * than the next:
 *  1. score every centroid against the query and pick the nprobe nearest
 *     lists (Euclidean, so the namespace's common direction cancels out);
 *  2. scan their records and drop the entries whose CODE_BITS-bit sign code
 *     (of x - mean) is too far from the query's in Hamming distance to reach
 *     the threshold. The cut is where the binomial tail says a pair at the
 *     threshold is dropped with probability below CODE_DROP: calibrated,
 *     not proven, so it may cost recall, never a false hit;
 *  3. bound each survivor's cosine from its int8 code (residual from the
 *     mean): a proven bound, rounding included, that rules out all but a few;
 *  4. take the exact fp32 cosine of what is left. Only this decides a hit.
 * The lists grow with the namespace by splitting (2-means of one list's
 * members) the list an add makes too long, and every add re-checks one
 * older entry's list (a round-robin sweep), so no add pays for more than
 * one split: there is no global retraining pause.
 */
#include "index.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "simcache.h"
#include "vec.h"

#define DEF_PROBES 1u
/* List length: a list is split when an add takes it past 2 * LIST_K *
 * sqrt(count) entries (at least 2 * LIST_MIN), so lists hold LIST_K sqrt(n)
 * to twice that: about sqrt(n) / LIST_K / 1.4 lists, which balances
 * the centroid scoring (nlist * dim) against the scan (nprobe * n / nlist). */
#ifndef LIST_K
#define LIST_K 1.0
#endif
#ifndef LIST_MIN
#define LIST_MIN 32u
#endif
/* Lists probed per search (probes = 1, unless index_set_lists_probed):
 * sqrt(nlist) / 2, at least NPROBE_MIN. More lists need more probes for
 * the same recall: measured on the benchmark's workload (threshold 0.8),
 * 100k x 2048 (444 lists): 4 probes recall 0.987-0.997, 8 0.998; 1M x 1024
 * (1,033 lists): 8 probes 0.990, 12 0.992, 16 0.996. */
#define NPROBE_MIN 8u
#define MAX_NPROBE 1024u
/* Centroid scoring in two steps: all centroids on COARSE_DIMS coordinates
 * of the rotation the sign codes use (centred, so that the namespace's
 * common direction drops out), then the RESCORE * nprobe best of those
 * again exactly on all dim coordinates. */
#ifndef COARSE_DIMS
#define COARSE_DIMS 256u
#endif
#ifndef RESCORE
#define RESCORE 4u
#endif
/* Lloyd iterations of a split's 2-means. */
#define SPLIT_ITERS 4u
/* Exact while count * dim < 2^21 floats, within these bounds. Measured: an
 * exact scan of 1024 x 2048 takes ~0.18 ms against ~0.12 ms hashed, of 4096
 * x 256 ~0.1 ms against ~0.05 ms; exact has recall 1, and a centre taken
 * from more entries serves the codes better. */
#define EXACT_FLOATS (1u << 21)
#define EXACT_MIN 1024u
#define EXACT_MAX 4096u

/* Sign code: the first CODE_BITS signs of H D3 H D2 H D1 x (H Walsh-Hadamard,
 * Di random +-1 diagonals, x zero-padded to a power of two >= CODE_BITS), a
 * fast pseudo-random rotation. The three rounds spread even a one-hot vector
 * flat, so each bit behaves like the sign of a Gaussian projection:
 * P(bit differs) ~ angle/pi (checked on dense, sparse, one-hot and outlier
 * vectors: mean within 0.8 sd, spread below the binomial's). Below
 * CODE_MIN_DIM that approximation is poor, and there is no filter. */
#define CODE_BITS 960u
#define CODE_WORDS (CODE_BITS / 64u)
#define REC_WORDS 16u       /* a code record: the code, then mux and nx */
#define CODE_MIN_DIM 64u
/* Bound on P(drop a pair at the threshold), under the binomial model of
 * the code bits, with the threshold taken CODE_MARGIN lower; see
 * code_cut_for. At the threshold itself the bound is then at most 9.2e-3
 * per matching pair, whatever the threshold (the worst is near a centred
 * cosine of 0, where the binomial is widest): a best match sitting right
 * at the threshold is still found with probability >= 0.99, the recall the
 * index is held to. 3e-2 would allow 1.1e-2 there; 1e-2 (before) allowed
 * 3.2e-3 and scored 1.7x the int8 rows at the p99 of 1M x 1024
 * (docs/benchmarks.md, "fourth pass"). */
#ifndef CODE_DROP
#define CODE_DROP 2.5e-2
#endif
#define CODE_MARGIN 0.02    /* calibrate as if the threshold were this lower */
#define CODE_TAB 256u       /* cut table: thresholds -1 + k * 2/CODE_TAB */

/* Stage 3 bound: |x.y - (mean.y + scale * q8.y)| <= qerr * |y| (plus the
 * query's int16 rounding, see search_ivf), and every float rounding on the
 * way (mean.y and |y|, dot products of at most SIMCACHE_MAX_DIM terms, each
 * off by < 4e-4 there, and a few products; the integer dot product is
 * exact) fits in QUANT_SLACK. */
#define QUANT_SLACK 2e-3f

/* Slack on the threshold for float rounding of the exact cosine (see
 * index_search). */
#define SIM_EPS 2e-6f

#define EXACT_CHUNK 256u
#define SCAN_CHUNK 64u
/* Stage 3 goes best first, by a counting sort of the survivors' sign-code
 * floors into this many buckets: linear in the survivors (a comparison
 * sort of a few thousand cost more than the int8 stage it orders), and
 * within a bucket the order only matters for work, never for the answer. */
#define ORDER_BUCKETS 256u
/* int8 rows prefetched this many candidates ahead of stage 3. */
#ifndef PF_AHEAD
#define PF_AHEAD 3u
#endif
#define NO_SLOT UINT32_MAX


/* ---- deterministic PRNG: splitmix64 seeding xoshiro256** ---- */

typedef struct {
    uint64_t s[4];
} rng_t;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Independent streams of one seed: planes, code diagonals, hash salts. */
static void rng_init(rng_t *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ULL);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static uint64_t rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return out;
}

/* ---- private hash map: nonzero uint64 key -> uint32 value ----
 * Linear probing, backward-shift deletion, at most half full. The hash is
 * salted from the seed so chosen ids cannot pile into one run. */

struct slot_ent {
    uint64_t key;   /* 0 = empty */
    uint32_t val;
};

typedef struct {
    struct slot_ent *ents;
    size_t cap;     /* power of two, or 0 */
    size_t len;
    uint64_t salt;
} slotmap_t;

/* One inverted list: the records of its entries, contiguous. */
struct list {
    uint64_t *recs;     /* cap * code_words: sign code records, list order */
    uint32_t *slots;    /* cap: the slot of each record */
    uint32_t len, cap;
};

struct index {
    uint32_t dim, probes, exact_below;
    uint32_t nprobe;    /* lists probed; 0 = sqrt(nlist) / 2, at least NPROBE_MIN */
    uint64_t seed;

    size_t count, cap;
    float *vecs;        /* cap * dim, unit vectors */
    uint64_t *ids;      /* cap */
    slotmap_t idmap;    /* id -> slot */
    uint32_t *cands;    /* cap; search scratch */
    float *ubound;      /* cap; search scratch: stage 3 bounds */
    float *fstar;       /* cap; search scratch: stage 2 floors (see search_ivf) */
    uint32_t *order;    /* cap; search scratch: stage 3 order, then survivors */

    /* Lists, allocated when switched on (ivf). */
    bool ivf;
    uint32_t *lof, *lpos; /* cap: each slot's list and place in it */
    struct list *lists;
    uint32_t nlist, lcap;
    float *cent;        /* lcap * dim: centroids */
    float *chn;         /* lcap: |centroid|^2 / 2 */
    float *lscore;      /* lcap, scratch: centroid scores */
    uint32_t *lorder;   /* MAX_NPROBE, scratch: the lists probed */
    uint32_t cdims;     /* coarse scoring coordinates (0: exact only) */
    float *crot;        /* lcap * cdims: centroids - mean, rotated, scaled */
    float *chc;         /* lcap: |centroid - mean|^2 / 2 */
    uint32_t *rorder;   /* RESCORE * MAX_NPROBE, scratch */
    size_t sweep;       /* next slot the sweep re-checks */
    rng_t rng;          /* split seeds */
    float *mean;        /* dim */

    /* Sign codes (code_words == 0: no filter), REC_WORDS per record. */
    uint32_t code_words, dpad;
    float *code_diag;   /* 3 * dpad, +-1 */
    float *code_off;    /* dpad: the mean rotated */
    float *code_buf;    /* dpad, scratch */
    float mu2;          /* |mean|^2 */
    float cmax[CODE_BITS + 1]; /* see search_ivf */

    /* int8 residuals: x ~ mean + qscale[s] * q8[s*dim..], off by <= qerr[s]. */
    int8_t *q8;         /* cap * dim */
    float *qscale, *qerr; /* cap */
    int16_t *y16;       /* dim, search scratch: the query in int16 */
    float munorm;       /* |mean| */
    uint64_t qcode[REC_WORDS];
    uint64_t rec[REC_WORDS]; /* add scratch */
    uint16_t cut[CODE_TAB + 1];

    uint64_t searches, candidates, coded, quantized, exact, splits;
};

/* ---- allocation ----
 * Memory is accounted from the capacities (index_get_stats), not counted on
 * the fly, so a half-done growth cannot skew it. */

/* Arrays this large are read at random addresses (stage 3's int8 rows, the
 * exact stage's vectors): asking for transparent huge pages saves a TLB
 * miss per row where the kernel grants them (THP "madvise" mode). Pages
 * already there stay as they are; only an advice, so failure is ignored. */
#define HUGE_ADVISE_MIN (8u << 20)
#define HUGE_PAGE (2u << 20)

static void *xrealloc(void *p, size_t n, size_t size)
{
    if (n == 0 || n > SIZE_MAX / size)
        return NULL;
    void *q = realloc(p, n * size);
#ifdef MADV_HUGEPAGE
    if (q != NULL && n * size >= HUGE_ADVISE_MIN) {
        uintptr_t a = ((uintptr_t)q + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
        uintptr_t e = ((uintptr_t)q + n * size) & ~(uintptr_t)(HUGE_PAGE - 1);
        if (e > a)
            (void)madvise((void *)a, e - a, MADV_HUGEPAGE);
    }
#endif
    return q;
}

/* ---- slotmap ---- */

static size_t map_home(const slotmap_t *m, uint64_t key)
{
    uint64_t x = key ^ m->salt;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return (size_t)x & (m->cap - 1);
}

/* Position of key, or SIZE_MAX. */
static size_t map_find(const slotmap_t *m, uint64_t key)
{
    if (m->cap == 0)
        return SIZE_MAX;
    for (size_t i = map_home(m, key);; i = (i + 1) & (m->cap - 1)) {
        if (m->ents[i].key == key)
            return i;
        if (m->ents[i].key == 0)
            return SIZE_MAX;
    }
}

static void map_insert_new(slotmap_t *m, uint64_t key, uint32_t val)
{
    size_t i = map_home(m, key);
    while (m->ents[i].key != 0)
        i = (i + 1) & (m->cap - 1);
    m->ents[i].key = key;
    m->ents[i].val = val;
    m->len++;
}

/* Make room for one more key. Returns 0 or -ENOMEM (map unchanged). */
static int map_reserve(slotmap_t *m)
{
    if ((m->len + 1) * 2 <= m->cap)
        return 0;
    size_t ncap = m->cap ? m->cap * 2 : 16;
    struct slot_ent *ents = calloc(ncap, sizeof *ents);
    if (ents == NULL)
        return -ENOMEM;
    slotmap_t n = { ents, ncap, 0, m->salt };
    for (size_t i = 0; i < m->cap; i++)
        if (m->ents[i].key != 0)
            map_insert_new(&n, m->ents[i].key, m->ents[i].val);
    free(m->ents);
    *m = n;
    return 0;
}

static void map_delete_at(slotmap_t *m, size_t i)
{
    size_t mask = m->cap - 1;
    /* Backward shift: pull later entries of the run into the hole when the
     * hole lies between their home and where they sit. */
    for (size_t j = (i + 1) & mask; m->ents[j].key != 0; j = (j + 1) & mask) {
        size_t h = map_home(m, m->ents[j].key);
        if (((j - h) & mask) >= ((j - i) & mask)) {
            m->ents[i] = m->ents[j];
            i = j;
        }
    }
    m->ents[i].key = 0;
    m->len--;
}

static void map_clear(slotmap_t *m)
{
    free(m->ents);
    m->ents = NULL;
    m->cap = m->len = 0;
}

/* ---- compact codes ---- */

/* Code record of v: the sign code of v - mean, then mean.v and |v - mean|
 * as floats in the last word. raw: the rotation of v alone into code_buf. */
static void code_compute(index_t *ix, const float *v, uint64_t *rec, bool raw)
{
    float *buf = ix->code_buf;

    memcpy(buf, v, ix->dim * sizeof *buf);
    memset(buf + ix->dim, 0, (ix->dpad - ix->dim) * sizeof *buf);
    for (uint32_t r = 0; r < 3; r++)
        vec_fwht(buf, ix->code_diag + (size_t)r * ix->dpad, ix->dpad);
    if (raw)
        return;
    for (uint32_t i = 0; i < CODE_BITS; i++)
        buf[i] -= ix->code_off[i];
    vec_sign_bits(buf, CODE_BITS, rec);
    double mv = 0.0, n2 = 0.0;
    for (uint32_t i = 0; i < ix->dim; i++) {
        double r = (double)v[i] - ix->mean[i];
        mv += (double)ix->mean[i] * v[i];
        n2 += r * r;
    }
    float f[2] = { (float)mv, (float)sqrt(n2) };
    memcpy(&rec[CODE_WORDS], f, sizeof f);
}

/* Largest Hamming distance a pair at centred cosine >= t keeps with
 * probability >= 1 - CODE_DROP, t taken CODE_MARGIN lower: the smallest c
 * with P(H > c) <= CODE_DROP for H ~ Bin(CODE_BITS, acos(t) / pi), the
 * binomial tail summed exactly (in logs, from the top down). */
static uint32_t code_cut_for(double t)
{
    const uint32_t m = CODE_BITS;

    t -= CODE_MARGIN;
    if (!(t > -1.0))
        return m;
    if (t >= 1.0)
        return 0;
    double p = acos(t) / 3.141592653589793;
    double lp = log(p), lodds = log1p(-p) - lp;
    double lpmf = m * lp, tail = 0.0; /* log P(H = c), P(H > c) */
    for (uint32_t c = m; c > 0; c--) {
        double pm = exp(lpmf);
        if (tail + pm > CODE_DROP)
            return c;
        tail += pm;
        /* P(H = c-1) / P(H = c) = c / (m - c + 1) * (1 - p) / p */
        lpmf += log((double)c / (m - c + 1)) + lodds;
    }
    return 0;
}

/* ---- capacity ---- */

static int grow_slots(index_t *ix, size_t need)
{
    if (need <= ix->cap)
        return 0;
    if (need > (size_t)UINT32_MAX - 1)
        return -ENOMEM;
    /* x1.5: the vectors dominate memory, doubling would waste up to half. */
    size_t ncap = ix->cap ? ix->cap + ix->cap / 2 : 64;
    if (ncap < need)
        ncap = need;
    if (ncap > (size_t)UINT32_MAX - 1)
        ncap = (size_t)UINT32_MAX - 1;
    size_t d = ix->dim;
    void *p;

    /* Each array grows on its own; one failing leaves the others larger,
     * which is harmless (cap only moves once all have grown). */
    if ((p = xrealloc(ix->vecs, ncap * d, sizeof(float))) == NULL)
        return -ENOMEM;
    ix->vecs = p;
    if ((p = xrealloc(ix->ids, ncap, sizeof(uint64_t))) == NULL)
        return -ENOMEM;
    ix->ids = p;
    if ((p = xrealloc(ix->cands, ncap, sizeof(uint32_t))) == NULL)
        return -ENOMEM;
    ix->cands = p;
    if ((p = xrealloc(ix->ubound, ncap, sizeof(float))) == NULL)
        return -ENOMEM;
    ix->ubound = p;
    if ((p = xrealloc(ix->fstar, ncap, sizeof(float))) == NULL)
        return -ENOMEM;
    ix->fstar = p;
    if ((p = xrealloc(ix->order, ncap, sizeof(uint32_t))) == NULL)
        return -ENOMEM;
    ix->order = p;
    if (ix->ivf) {
        if ((p = xrealloc(ix->lof, ncap, sizeof(uint32_t))) == NULL)
            return -ENOMEM;
        ix->lof = p;
        if ((p = xrealloc(ix->lpos, ncap, sizeof(uint32_t))) == NULL)
            return -ENOMEM;
        ix->lpos = p;
        if ((p = xrealloc(ix->q8, ncap * d, sizeof(int8_t))) == NULL)
            return -ENOMEM;
        ix->q8 = p;
        if ((p = xrealloc(ix->qscale, ncap, sizeof(float))) == NULL)
            return -ENOMEM;
        ix->qscale = p;
        if ((p = xrealloc(ix->qerr, ncap, sizeof(float))) == NULL)
            return -ENOMEM;
        ix->qerr = p;
    }
    ix->cap = ncap;
    return 0;
}

/* int8 code of slot s: its residual from the mean on a per-vector scale,
 * and how far (Euclidean) the code is from the vector, rounded up. */
static void quant_compute(index_t *ix, uint32_t s)
{
    const float *v = ix->vecs + (size_t)s * ix->dim, *mu = ix->mean;
    int8_t *q = ix->q8 + (size_t)s * ix->dim;
    float mx = 0.0f;

    for (uint32_t i = 0; i < ix->dim; i++)
        if (fabsf(v[i] - mu[i]) > mx)
            mx = fabsf(v[i] - mu[i]);
    float sc = mx / 127.0f, inv = sc > 0.0f ? 1.0f / sc : 0.0f;
    double e2 = 0.0;
    /* Any rounding will do: qerr measures the code actually stored. */
    for (uint32_t i = 0; i < ix->dim; i++) {
        float t = (v[i] - mu[i]) * inv;
        int k = (int)(t >= 0.0f ? t + 0.5f : t - 0.5f);
        k = k > 127 ? 127 : k < -127 ? -127 : k;
        q[i] = (int8_t)k;
        double r = (double)v[i] - (double)mu[i] - (double)sc * (double)k;
        e2 += r * r;
    }
    ix->qscale[s] = sc;
    ix->qerr[s] = nextafterf((float)sqrt(e2), INFINITY);
}

/* ---- lists ---- */

/* Room for `room` more entries in list l. Returns 0 or -ENOMEM (unchanged). */
static int list_reserve(index_t *ix, struct list *l, uint32_t room)
{
    if (l->cap - l->len >= room)
        return 0;
    /* x1.5 (records are 128 bytes an entry: doubling would waste more). */
    uint32_t ncap = l->cap < 16 ? 16 : l->cap + l->cap / 2;
    if (ncap - l->len < room)
        ncap = l->len + room;
    void *p;
    if (ix->code_words) {
        if ((p = xrealloc(l->recs, ncap, ix->code_words * sizeof(uint64_t))) == NULL)
            return -ENOMEM;
        l->recs = p;
    }
    if ((p = xrealloc(l->slots, ncap, sizeof(uint32_t))) == NULL)
        return -ENOMEM;
    l->slots = p;
    l->cap = ncap;
    return 0;
}

/* Room for one more list. Returns 0 or -ENOMEM (unchanged). */
static int lists_reserve(index_t *ix)
{
    if (ix->nlist < ix->lcap)
        return 0;
    uint32_t ncap = ix->lcap ? ix->lcap * 2 : 16;
    void *p;
    if ((p = xrealloc(ix->lists, ncap, sizeof *ix->lists)) == NULL)
        return -ENOMEM;
    ix->lists = p;
    if ((p = xrealloc(ix->cent, (size_t)ncap * ix->dim, sizeof(float))) == NULL)
        return -ENOMEM;
    ix->cent = p;
    if ((p = xrealloc(ix->chn, ncap, sizeof(float))) == NULL)
        return -ENOMEM;
    ix->chn = p;
    if ((p = xrealloc(ix->lscore, ncap, sizeof(float))) == NULL)
        return -ENOMEM;
    ix->lscore = p;
    if ((p = xrealloc(ix->chc, ncap, sizeof(float))) == NULL)
        return -ENOMEM;
    ix->chc = p;
    if (ix->cdims && (p = xrealloc(ix->crot, (size_t)ncap * ix->cdims, sizeof(float))) == NULL)
        return -ENOMEM;
    if (ix->cdims)
        ix->crot = p;
    ix->lcap = ncap;
    return 0;
}

/* The first cdims coordinates of the code rotation of v - mean into
 * code_buf (scaled as the rotation leaves them). */
static void rotate_centred(index_t *ix, const float *v)
{
    code_compute(ix, v, NULL, true);
    for (uint32_t i = 0; i < ix->cdims; i++)
        ix->code_buf[i] -= ix->code_off[i];
}

static void set_centroid(index_t *ix, uint32_t k, const float *c)
{
    float *dst = ix->cent + (size_t)k * ix->dim;
    double c2 = 0.0;

    memcpy(dst, c, ix->dim * sizeof *dst);
    ix->chn[k] = 0.5f * vec_dot(dst, dst, ix->dim);
    for (uint32_t i = 0; i < ix->dim; i++)
        c2 += ((double)c[i] - ix->mean[i]) * ((double)c[i] - ix->mean[i]);
    ix->chc[k] = (float)(0.5 * c2);
    if (ix->cdims == 0)
        return;
    /* Each of the three Walsh-Hadamard rounds scales by sqrt(dpad), so a
     * dot product of two rotations is dpad^3 times the true one; cdims of
     * dpad coordinates hold cdims / dpad of it on average. */
    rotate_centred(ix, c);
    double sc = (double)ix->dpad / ix->cdims / ((double)ix->dpad * ix->dpad * ix->dpad);
    float *r = ix->crot + (size_t)k * ix->cdims;
    for (uint32_t i = 0; i < ix->cdims; i++)
        r[i] = (float)(ix->code_buf[i] * sc);
}

/* Append slot s with record rec (code_words words, ignored without codes) to
 * list k, which has room. */
static void list_push(index_t *ix, uint32_t k, uint32_t s, const uint64_t *rec)
{
    struct list *l = &ix->lists[k];
    uint32_t w = ix->code_words;

    if (w)
        memcpy(l->recs + (size_t)l->len * w, rec, w * sizeof *rec);
    l->slots[l->len] = s;
    ix->lof[s] = k;
    ix->lpos[s] = l->len++;
}

/* Drop empty list k (not the only one): the last list takes its number. */
static void list_drop(index_t *ix, uint32_t k)
{
    uint32_t last = ix->nlist - 1;

    free(ix->lists[k].recs);
    free(ix->lists[k].slots);
    if (k != last) {
        ix->lists[k] = ix->lists[last];
        memcpy(ix->cent + (size_t)k * ix->dim, ix->cent + (size_t)last * ix->dim,
               ix->dim * sizeof(float));
        ix->chn[k] = ix->chn[last];
        for (uint32_t i = 0; i < ix->lists[k].len; i++)
            ix->lof[ix->lists[k].slots[i]] = k;
    }
    ix->nlist--;
}

/* Take the record at position p out of list k (the list's last record
 * fills the hole); an emptied list is dropped unless it is the only one. */
static void list_take(index_t *ix, uint32_t k, uint32_t p)
{
    struct list *l = &ix->lists[k];
    uint32_t w = ix->code_words, last = --l->len;

    if (p != last) {
        if (w)
            memcpy(l->recs + (size_t)p * w, l->recs + (size_t)last * w, w * sizeof(uint64_t));
        l->slots[p] = l->slots[last];
        ix->lpos[l->slots[p]] = p;
    }
    if (l->len == 0 && ix->nlist > 1)
        list_drop(ix, k);
}

/* The (up to) want highest of sc[idx[i]] (idx NULL: sc[i]), i < n, into
 * out as indices into sc, highest first. Returns how many. */
static uint32_t top_k(const float *sc, const uint32_t *idx, uint32_t n, uint32_t want,
                      uint32_t *out)
{
    uint32_t m = 0;

    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = idx ? idx[i] : i;
        if (m == want && sc[k] <= sc[out[want - 1]])
            continue;
        uint32_t j = m < want ? m++ : want - 1;
        while (j > 0 && sc[out[j - 1]] < sc[k]) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = k;
    }
    return m;
}

/* The `want` lists whose centroids are nearest v (Euclidean: the largest
 * v.c - |c|^2/2) into out, nearest first; vrot: code_buf holds
 * rotate_centred(v). Returns how many (min(want, nlist)). */
static uint32_t nearest_lists(index_t *ix, const float *v, uint32_t want, uint32_t *out)
{
    float *sc = ix->lscore;
    uint32_t nl = ix->nlist, r = want * RESCORE;

    if (ix->cdims == 0 || nl <= r) {
        vec_dot_many(ix->cent, nl, v, ix->dim, sc);
        for (uint32_t k = 0; k < nl; k++)
            sc[k] -= ix->chn[k];
        return top_k(sc, NULL, nl, want, out);
    }
    /* Coarse: q'.c' - |c'|^2/2 ranks as q.c - |c|^2/2 (c' = c - mean). */
    vec_dot_many(ix->crot, nl, ix->code_buf, ix->cdims, sc);
    for (uint32_t k = 0; k < nl; k++)
        sc[k] -= ix->chc[k];
    r = top_k(sc, NULL, nl, r, ix->rorder);
    for (uint32_t i = 0; i < r; i++) {
        uint32_t k = ix->rorder[i];
        sc[k] = vec_dot(ix->cent + (size_t)k * ix->dim, v, ix->dim) - ix->chn[k];
    }
    return top_k(sc, ix->rorder, r, want, out);
}

static uint32_t nearest_list(index_t *ix, const float *v)
{
    uint32_t k = 0;

    if (ix->cdims)
        rotate_centred(ix, v);
    nearest_lists(ix, v, 1, &k);
    return k;
}

/* Entries a list may hold before an add splits it. */
static uint32_t split_at(size_t n)
{
    double t = LIST_K * sqrt((double)n);
    return 2u * (t > LIST_MIN ? (uint32_t)t : LIST_MIN);
}

/* Split list k in two by 2-means over its members (SPLIT_ITERS Lloyd
 * rounds from two random members): cost (SPLIT_ITERS + 1) * len * 2 dot
 * products, about 1 ms at 2,000 x 1024. The second half becomes a new list.
 * Returns 0, or -ENOMEM with nothing changed. */
static int list_split(index_t *ix, uint32_t k)
{
    const uint32_t d = ix->dim, n = ix->lists[k].len;
    float *c = malloc(2 * (size_t)d * sizeof *c);
    /* float sums: a few thousand unit vectors, vectorised; a centroid only
     * steers which list an entry joins, so its rounding is harmless. */
    float *acc = malloc(2 * (size_t)d * sizeof *acc);
    uint8_t *side = malloc(n ? n : 1);
    int rc = -ENOMEM;

    if (n < 2 || c == NULL || acc == NULL || side == NULL || lists_reserve(ix) < 0)
        goto out;
    const uint32_t *sl = ix->lists[k].slots;
    uint32_t i0 = (uint32_t)(rng_next(&ix->rng) % n);
    uint32_t i1 = (i0 + 1 + (uint32_t)(rng_next(&ix->rng) % (n - 1))) % n;
    memcpy(c, ix->vecs + (size_t)sl[i0] * d, d * sizeof *c);
    memcpy(c + d, ix->vecs + (size_t)sl[i1] * d, d * sizeof *c);
    uint32_t nb = 0;
    for (uint32_t it = 0; it <= SPLIT_ITERS; it++) {
        float h0 = 0.5f * vec_dot(c, c, d), h1 = 0.5f * vec_dot(c + d, c + d, d);
        nb = 0;
        memset(acc, 0, 2 * (size_t)d * sizeof *acc);
        for (uint32_t i = 0; i < n; i++) {
            const float *x = ix->vecs + (size_t)sl[i] * d;
            side[i] = vec_dot(x, c + d, d) - h1 > vec_dot(x, c, d) - h0;
            nb += side[i];
            float *a = acc + (size_t)side[i] * d;
            for (uint32_t j = 0; j < d; j++)
                a[j] += x[j];
        }
        if (nb == 0 || nb == n) {
            /* Identical members: any halving will do, around one centroid. */
            for (uint32_t i = 0; i < n; i++)
                side[i] = i & 1;
            nb = n / 2;
            for (uint32_t j = 0; j < d; j++)
                c[j] = c[d + j] = (acc[j] + acc[d + j]) / (float)n;
            break;
        }
        /* The last round only assigns: members sit with their nearest. */
        if (it == SPLIT_ITERS)
            break;
        for (uint32_t j = 0; j < d; j++) {
            c[j] = acc[j] / (float)(n - nb);
            c[d + j] = acc[d + j] / (float)nb;
        }
    }
    uint32_t b = ix->nlist;
    ix->lists[b] = (struct list){ NULL, NULL, 0, 0 };
    if (list_reserve(ix, &ix->lists[b], nb) < 0) {
        free(ix->lists[b].recs);
        goto out;
    }
    ix->nlist++;
    set_centroid(ix, k, c);
    set_centroid(ix, b, c + d);
    /* Downwards: the record that fills a hole comes from a position
     * already visited (kept), so side[] still describes what is left. */
    uint32_t w = ix->code_words;
    for (uint32_t i = n; i-- > 0;) {
        if (!side[i])
            continue;
        struct list *l = &ix->lists[k];
        list_push(ix, b, l->slots[i], w ? l->recs + (size_t)i * w : NULL);
        list_take(ix, k, i);
    }
    ix->splits++;
    rc = 0;
out:
    free(c);
    free(acc);
    free(side);
    return rc;
}

/* Sign code record and int8 code of slot s (vector stored) into list
 * `to`, or its nearest if to is NO_SLOT. Returns 0 or -ENOMEM (s in no
 * list). */
static int ivf_insert(index_t *ix, uint32_t s, uint32_t to)
{
    const float *v = ix->vecs + (size_t)s * ix->dim;
    uint32_t k = to != NO_SLOT ? to : nearest_list(ix, v);

    if (list_reserve(ix, &ix->lists[k], 1) < 0)
        return -ENOMEM;
    if (ix->code_words)
        code_compute(ix, v, ix->rec, false);
    quant_compute(ix, s);
    list_push(ix, k, s, ix->rec);
    return 0;
}

/* Move the sweep on by one slot: if the nearest list of that entry is no
 * longer its own (splits made centroids since it was placed), move its
 * record there. Returns the list it is in. */
static uint32_t sweep_step(index_t *ix)
{
    uint32_t s = (uint32_t)(ix->sweep++ % ix->count);
    uint32_t from = ix->lof[s], p = ix->lpos[s];
    uint32_t to = nearest_list(ix, ix->vecs + (size_t)s * ix->dim);

    if (to == from || list_reserve(ix, &ix->lists[to], 1) < 0)
        return from;
    uint32_t w = ix->code_words;
    list_push(ix, to, s, w ? ix->lists[from].recs + (size_t)p * w : NULL);
    list_take(ix, from, p);
    return ix->lof[s];
}

static void ivf_off(index_t *ix)
{
    for (uint32_t k = 0; k < ix->nlist; k++) {
        free(ix->lists[k].recs);
        free(ix->lists[k].slots);
    }
    free(ix->lists);
    free(ix->cent);
    free(ix->chn);
    free(ix->lscore);
    free(ix->lorder);
    free(ix->crot);
    free(ix->chc);
    free(ix->rorder);
    free(ix->lof);
    free(ix->lpos);
    free(ix->mean);
    free(ix->code_diag);
    free(ix->code_off);
    free(ix->code_buf);
    free(ix->q8);
    free(ix->qscale);
    free(ix->qerr);
    free(ix->y16);
    ix->y16 = NULL;
    ix->lists = NULL;
    ix->nlist = ix->lcap = 0;
    ix->cent = ix->chn = ix->lscore = ix->mean = ix->crot = ix->chc = NULL;
    ix->lorder = ix->lof = ix->lpos = ix->rorder = NULL;
    ix->code_diag = ix->code_off = ix->code_buf = NULL;
    ix->q8 = NULL;
    ix->qscale = ix->qerr = NULL;
    ix->ivf = false;
}

static void *alloc_n(size_t n, size_t size, bool *ok)
{
    if (n == 0)
        return NULL; /* no slots yet: grow_slots allocates them */
    void *p = xrealloc(NULL, n, size);
    if (p == NULL)
        *ok = false;
    return p;
}

/* Switch the lists on: centre on `center` (NULL: the mean of the entries),
 * one list of every entry, split until none is too long (a pause of about
 * (SPLIT_ITERS + 1) * 2 * log2(n / LIST_MIN) dot products per entry).
 * Returns 0 or -ENOMEM (lists stay off, nothing else changes). */
static int ivf_on(index_t *ix, const float *center)
{
    size_t c = ix->cap, d = ix->dim;
    bool ok = true;

    ix->ivf = true; /* so that failures go through ivf_off */
    ix->lof = alloc_n(c, sizeof(uint32_t), &ok);
    ix->lpos = alloc_n(c, sizeof(uint32_t), &ok);
    ix->lorder = alloc_n(MAX_NPROBE, sizeof(uint32_t), &ok);
    ix->rorder = alloc_n(RESCORE * MAX_NPROBE, sizeof(uint32_t), &ok);
    ix->y16 = alloc_n(d, sizeof(int16_t), &ok);
    ix->mean = alloc_n(d, sizeof(float), &ok);
    if (ix->code_words) {
        ix->code_diag = alloc_n((size_t)3 * ix->dpad, sizeof(float), &ok);
        ix->code_off = alloc_n(ix->dpad, sizeof(float), &ok);
        ix->code_buf = alloc_n(ix->dpad, sizeof(float), &ok);
    }
    ix->q8 = alloc_n(c * d, sizeof(int8_t), &ok);
    ix->qscale = alloc_n(c, sizeof(float), &ok);
    ix->qerr = alloc_n(c, sizeof(float), &ok);
    double *acc = calloc(d, sizeof *acc);
    if (!ok || acc == NULL || lists_reserve(ix) < 0) {
        free(acc);
        ivf_off(ix);
        return -ENOMEM;
    }

    if (center != NULL) {
        memcpy(ix->mean, center, d * sizeof *ix->mean);
    } else {
        for (size_t s = 0; s < ix->count; s++)
            for (size_t i = 0; i < d; i++)
                acc[i] += ix->vecs[s * d + i];
        for (size_t i = 0; i < d; i++)
            ix->mean[i] = ix->count ? (float)(acc[i] / (double)ix->count) : 0.0f;
    }
    free(acc);
    double mn2 = 0.0;
    for (size_t i = 0; i < d; i++)
        mn2 += (double)ix->mean[i] * ix->mean[i];
    ix->munorm = nextafterf((float)sqrt(mn2), INFINITY);

    rng_t r;
    if (ix->code_words) {
        for (uint32_t k = 0; k <= CODE_TAB; k++)
            ix->cut[k] = (uint16_t)code_cut_for(-1.0 + 2.0 * k / CODE_TAB);
        rng_init(&r, ix->seed, 2);
        size_t n = (size_t)3 * ix->dpad;
        for (size_t i = 0; i < n; i += 64) {
            uint64_t bits = rng_next(&r);
            for (size_t j = i; j < n && j < i + 64; j++)
                ix->code_diag[j] = (bits >> (j - i)) & 1 ? 1.0f : -1.0f;
        }
        code_compute(ix, ix->mean, NULL, true);
        memcpy(ix->code_off, ix->code_buf, ix->dpad * sizeof(float));
        ix->mu2 = (float)mn2;
        /* cmax[h]: a centred cosine below it keeps Hamming distance h, that
         * is cut[k] >= h for k = floor((c + 1) * CODE_TAB / 2). 2 (above
         * any cosine) where every table entry keeps h. */
        uint32_t k = CODE_TAB;
        for (uint32_t h = 0; h <= CODE_BITS; h++) {
            while (k > 0 && ix->cut[k] < h)
                k--;
            ix->cmax[h] = k == CODE_TAB ? 2.0f : (float)(-1.0 + 2.0 * (k + 1) / CODE_TAB);
        }
    }

    rng_init(&ix->rng, ix->seed, 5);
    ix->lists[0] = (struct list){ NULL, NULL, 0, 0 };
    ix->nlist = 1;
    set_centroid(ix, 0, ix->mean);
    ix->sweep = 0;
    if (list_reserve(ix, &ix->lists[0], ix->count ? (uint32_t)ix->count : 1) < 0) {
        ivf_off(ix);
        return -ENOMEM;
    }
    for (size_t s = 0; s < ix->count; s++)
        (void)ivf_insert(ix, (uint32_t)s, 0); /* room reserved: cannot fail */
    uint32_t lim = split_at(ix->count);
    for (uint32_t k = 0; k < ix->nlist; k++)
        while (ix->lists[k].len > lim)
            if (list_split(ix, k) < 0) {
                ivf_off(ix);
                return -ENOMEM;
            }
    return 0;
}

/* ---- public ---- */

index_t *index_new(uint32_t dim, uint64_t seed, const index_params_t *p)
{
    index_params_t d = { 0, 0, 0, 0 };

    if (p != NULL)
        d = *p;
    if (dim == 0 || dim > SIMCACHE_MAX_DIM)
        return NULL;
    if (p == NULL)
        d.probes = DEF_PROBES;
    if (d.exact_below == 0) {
        d.exact_below = EXACT_FLOATS / dim;
        d.exact_below = d.exact_below < EXACT_MIN ? EXACT_MIN : d.exact_below;
        d.exact_below = d.exact_below > EXACT_MAX ? EXACT_MAX : d.exact_below;
    }
    if (d.tables > 64 || d.bits > 24 || d.probes > 1)
        return NULL;

    index_t *ix = calloc(1, sizeof *ix);
    if (ix == NULL)
        return NULL;
    ix->dim = dim;
    ix->seed = seed;
    ix->probes = d.probes;
    ix->nprobe = !d.probes ? 1 : 0;
    ix->exact_below = d.exact_below;

    rng_t r;
    rng_init(&r, seed, 3);
    ix->idmap.salt = rng_next(&r);
    if (dim >= CODE_MIN_DIM) {
        uint32_t dp = 1024; /* a power of two >= CODE_BITS */
        while (dp < dim)
            dp *= 2;
        ix->dpad = dp;
        ix->code_words = REC_WORDS;
        ix->cdims = COARSE_DIMS;
    }
    return ix;
}

void index_free(index_t *ix)
{
    if (ix == NULL)
        return;
    if (ix->ivf)
        ivf_off(ix);
    free(ix->vecs);
    free(ix->ids);
    free(ix->cands);
    free(ix->ubound);
    free(ix->fstar);
    free(ix->order);
    free(ix->idmap.ents);
    free(ix);
}

/* Accept only what vec_normalize can produce: finite, length 1. */
static bool is_unit(const float *v, uint32_t dim)
{
    double ss = 0.0;
    for (uint32_t i = 0; i < dim; i++) {
        if (!isfinite(v[i]))
            return false;
        ss += (double)v[i] * v[i];
    }
    return fabs(ss - 1.0) <= 1e-3;
}

int index_add(index_t *ix, uint64_t id, const float *unit)
{
    if (ix == NULL || id == 0 || unit == NULL || !is_unit(unit, ix->dim))
        return -EINVAL;
    if (map_find(&ix->idmap, id) != SIZE_MAX)
        return -EEXIST;
    if (grow_slots(ix, ix->count + 1) < 0 || map_reserve(&ix->idmap) < 0)
        return -ENOMEM;

    uint32_t s = (uint32_t)ix->count;
    memcpy(ix->vecs + (size_t)s * ix->dim, unit, ix->dim * sizeof(float));
    ix->ids[s] = id;
    if (ix->ivf && ivf_insert(ix, s, NO_SLOT) < 0)
        return -ENOMEM;
    map_insert_new(&ix->idmap, id, s);
    ix->count++;
    if (ix->ivf) {
        /* At most one split per add: the list this add or the sweep made
         * too long. A failed split (no memory) only leaves it long. */
        uint32_t lim = split_at(ix->count), k2 = sweep_step(ix), k = ix->lof[s];
        if (ix->lists[k].len <= lim)
            k = k2;
        if (ix->lists[k].len > lim)
            (void)list_split(ix, k);
    }
    if (!ix->ivf && ix->count >= ix->exact_below)
        (void)ivf_on(ix, NULL);
    return 0;
}

int index_remove(index_t *ix, uint64_t id)
{
    size_t at = ix == NULL || id == 0 ? SIZE_MAX : map_find(&ix->idmap, id);

    if (at == SIZE_MAX)
        return -ENOENT;
    uint32_t s = ix->idmap.ents[at].val;
    uint32_t last = (uint32_t)ix->count - 1;
    map_delete_at(&ix->idmap, at);
    if (ix->ivf)
        list_take(ix, ix->lof[s], ix->lpos[s]);
    if (s != last) {
        size_t d = ix->dim;
        memcpy(ix->vecs + s * d, ix->vecs + last * d, d * sizeof(float));
        ix->ids[s] = ix->ids[last];
        ix->idmap.ents[map_find(&ix->idmap, ix->ids[s])].val = s;
        if (ix->ivf) {
            ix->lof[s] = ix->lof[last];
            ix->lpos[s] = ix->lpos[last];
            ix->lists[ix->lof[s]].slots[ix->lpos[s]] = s;
            memcpy(ix->q8 + s * d, ix->q8 + last * d, d);
            ix->qscale[s] = ix->qscale[last];
            ix->qerr[s] = ix->qerr[last];
        }
    }
    ix->count--;
    return 0;
}

static int search_exact(index_t *ix, const float *q, float thr, uint32_t *best_s, float *best)
{
    float out[EXACT_CHUNK];
    int found = 0;

    for (size_t s0 = 0; s0 < ix->count; s0 += EXACT_CHUNK) {
        size_t n = ix->count - s0 < EXACT_CHUNK ? ix->count - s0 : EXACT_CHUNK;
        vec_dot_many(ix->vecs + s0 * ix->dim, n, q, ix->dim, out);
        for (size_t i = 0; i < n; i++)
            if (out[i] >= thr && (!found || out[i] > *best)) {
                found = 1;
                *best = out[i];
                *best_s = (uint32_t)(s0 + i);
            }
    }
    ix->candidates += ix->count;
    ix->exact += ix->count;
    return found;
}

/* order[0..n) = the positions 0..n-1 of fstar, highest fstar first to
 * within one of ORDER_BUCKETS buckets spanning [lo, max fstar]; every
 * fstar[i] >= lo. */
static void order_by_fstar(const float *fstar, size_t n, float lo, uint32_t *order)
{
    uint32_t start[ORDER_BUCKETS + 1];
    float hi = lo;

    memset(start, 0, sizeof start);
    for (size_t i = 0; i < n; i++)
        if (fstar[i] > hi)
            hi = fstar[i];
    float sc = hi > lo ? (float)(ORDER_BUCKETS - 1) / (hi - lo) : 0.0f;
#define BUCKET(f) ((uint32_t)fminf((hi - (f)) * sc, (float)(ORDER_BUCKETS - 1)))
    for (size_t i = 0; i < n; i++)
        start[BUCKET(fstar[i]) + 1]++;
    for (uint32_t k = 1; k <= ORDER_BUCKETS; k++)
        start[k] += start[k - 1];
    for (size_t i = 0; i < n; i++)
        order[start[BUCKET(fstar[i])]++] = (uint32_t)i;
#undef BUCKET
}

static int search_ivf(index_t *ix, const float *q, float thr, uint32_t *best_s, float *best)
{
    uint32_t w = ix->code_words, np = ix->nprobe;
    float muy = vec_dot(ix->mean, q, ix->dim);
    float qf[2] = { 0.0f, 0.0f };
    if (w) {
        code_compute(ix, q, ix->qcode, false);
        memcpy(qf, &ix->qcode[CODE_WORDS], sizeof qf);
    }
    if (np == 0) {
        np = (uint32_t)ceil(sqrt((double)ix->nlist) / 2.0);
        np = np < NPROBE_MIN ? NPROBE_MIN : np > MAX_NPROBE ? MAX_NPROBE : np;
    }
    np = nearest_lists(ix, q, np, ix->lorder);
    size_t n = 0, ns = 0, nu = 0;
    int found = 0;

    /* Stage 2: keep the entries whose sign code can reach thr. Codes are
     * of x' = x - mean, and x.y >= f implies x'.y' >= f - mux - muy + mu2
     * (mux = mean.x), so cos(x', y') >= c(f) = (f - mux - muy + mu2) / (nx ny)
     * (nx = |x'|). A pair whose centred cosine is at least c keeps Hamming
     * distance h unless c >= cmax[h], so the candidate can only reach a floor
     * f <= fstar = cmax[h] nx ny + mux + muy - mu2: one multiply-add per
     * candidate, and fstar still serves when the floor rises in stage 3.
     * (With nx ny = 0, x'.y' = 0 and fstar = x.y exactly.) */
    const float ny = qf[1], base = muy - ix->mu2;
    for (uint32_t j = 0; j < np; j++) {
        const struct list *l = &ix->lists[ix->lorder[j]];
        n += l->len;
        if (!w) {
            for (uint32_t i = 0; i < l->len; i++) {
                ix->cands[ns] = l->slots[i];
                ix->fstar[ns++] = 2.0f;
            }
            continue;
        }
        /* Sequential, in chunks: distances first (q in registers), then
         * the floors. */
        for (uint32_t i0 = 0; i0 < l->len; i0 += SCAN_CHUNK) {
            uint32_t h[SCAN_CHUNK], m = l->len - i0 < SCAN_CHUNK ? l->len - i0 : SCAN_CHUNK;
            const uint64_t *rec = l->recs + (size_t)i0 * w;
            vec_hamming_many(rec, w, m, ix->qcode, CODE_WORDS, h);
            for (uint32_t i = 0; i < m; i++) {
                float xf[2];
                memcpy(xf, &rec[(size_t)i * w + CODE_WORDS], sizeof xf);
                float fs = ix->cmax[h[i]] * xf[1] * ny + xf[0] + base;
                if (fs >= thr) {
                    ix->cands[ns] = l->slots[i0 + i];
                    ix->fstar[ns] = fs;
                    ns++;
                }
            }
        }
    }
    ix->candidates += n;
    if (w)
        ix->coded += n;

    /* Stage 3: bounds of each survivor's cosine from its int8 code. Keep
     * those whose upper bound reaches thr. The best lower bound so far is a
     * floor under the answer: it tightens the sign cut for the rest, so
     * the likeliest (highest fstar) go first and raise it early.
     * The query goes to int16 too, y = sy y16 + ey, so that each row costs
     * one exact integer dot product: with x = mean + qs q8 + ex,
     *   x.y = muy + qs sy (q8.y16) + ex.y + qs q8.ey,
     * |ex.y| <= qerr |y| and |qs q8| <= |x - mean| + qerr <= 1.001 + |mean| + qerr (an
     * entry's norm is within 1e-3 of 1, see is_unit),
     * so the bound's half-width is qerr (|y| + |ey|) + (1.001 + |mean|) |ey|,
     * plus QUANT_SLACK for the float rounding of the rest. */
    uint32_t *ord = ix->order;
    if (w)
        order_by_fstar(ix->fstar, ns, thr, ord);
    else
        for (size_t i = 0; i < ns; i++)
            ord[i] = (uint32_t)i;
    if (ns == 0)
        return 0;   /* no survivor: nothing to quantise the query for */
    float ynorm = sqrtf(vec_dot(q, q, ix->dim)) * 1.0001f, ey = 0.0f;
    float sy = vec_quant_i16(q, ix->dim, ix->y16, &ey);
    float ewide = ynorm + ey, efix = (1.001f + ix->munorm) * ey + QUANT_SLACK;
    float floor_lb = thr;
    size_t qb = ix->dim;
    /* The survivors go to ord[nu] as slots: nu <= i, so ord[i] was read. */
    for (size_t i = 0; i < ns; i++) {
        uint32_t at = ord[i];
        if (ix->fstar[at] < floor_lb)
            continue;
        if (i + PF_AHEAD < ns) {
            uint32_t t = ix->cands[ord[i + PF_AHEAD]];
            const char *nx = (const char *)(ix->q8 + (size_t)t * qb);
            for (size_t off = 0; off < qb; off += 64)
                __builtin_prefetch(nx + off);
            __builtin_prefetch(&ix->qscale[t]);
            __builtin_prefetch(&ix->qerr[t]);
        }
        uint32_t s = ix->cands[at];
        int64_t dq = vec_dot_i8_i16(ix->q8 + (size_t)s * qb, ix->y16, ix->dim);
        float approx = muy + ix->qscale[s] * sy * (float)dq;
        float err = ix->qerr[s] * ewide + efix;
        ix->quantized++;
        if (approx + err < floor_lb)
            continue;
        ord[nu] = s;
        ix->ubound[nu] = approx + err;
        nu++;
        if (approx - err > floor_lb)
            floor_lb = approx - err;
    }

    /* Stage 4: exact cosine, which alone decides, for the few left. */
    for (size_t i = 0; i < nu; i++) {
        uint32_t s = ord[i];
        if (ix->ubound[i] < floor_lb || (found && ix->ubound[i] <= *best))
            continue;
        ix->exact++;
        float d = vec_dot(ix->vecs + (size_t)s * ix->dim, q, ix->dim);
        if (d >= thr && (!found || d > *best)) {
            found = 1;
            *best = d;
            *best_s = s;
        }
    }
    return found;
}

int index_search(index_t *ix, const float *unit, float threshold, uint64_t *id, float *sim)
{
    uint32_t s = 0;
    float best = 0.0f;
    int found;

    if (ix == NULL || unit == NULL)
        return 0;
    ix->searches++;
    if (ix->count == 0 || isnan(threshold))
        return 0;
    /* Float rounding: the cosine of a unit vector with itself can come out
     * as 0.99999994, so a lookup of the exact stored embedding at threshold
     * 1 would miss. Compare with SIM_EPS of slack and report the similarity
     * clamped to [threshold, 1]: within rounding, it met the threshold. */
    float thr = threshold - SIM_EPS;
    if (!ix->ivf || ix->count < ix->exact_below)
        found = search_exact(ix, unit, thr, &s, &best);
    else
        found = search_ivf(ix, unit, thr, &s, &best);
    if (!found)
        return 0;
    if (best < threshold)
        best = threshold;
    if (best > 1.0f)
        best = 1.0f;
    if (id)
        *id = ix->ids[s];
    if (sim)
        *sim = best;
    return 1;
}

const float *index_vector(const index_t *ix, uint64_t id)
{
    size_t at = ix == NULL || id == 0 ? SIZE_MAX : map_find(&ix->idmap, id);
    return at == SIZE_MAX ? NULL : ix->vecs + (size_t)ix->idmap.ents[at].val * ix->dim;
}

size_t index_sample(const index_t *ix, size_t want, uint64_t seed, float *out)
{
    size_t n = ix->count, d = ix->dim;

    if (n <= want) {
        memcpy(out, ix->vecs, n * d * sizeof(float));
        return n;
    }
    /* Floyd's algorithm: want distinct slots in O(want) with a small set. */
    uint32_t *pick = malloc(want * sizeof *pick);
    slotmap_t seen = { 0 };
    rng_t r;
    size_t k = 0;

    if (pick == NULL)
        return 0;
    rng_init(&r, seed, 4);
    seen.salt = rng_next(&r);
    for (size_t j = n - want; j < n; j++) {
        size_t t = (size_t)(rng_next(&r) % (j + 1));
        if (map_reserve(&seen) < 0)
            break;
        if (map_find(&seen, t + 1) != SIZE_MAX)
            t = j;
        map_insert_new(&seen, t + 1, 0);
        pick[k++] = (uint32_t)t;
    }
    for (size_t i = 0; i < k; i++)
        memcpy(out + i * d, ix->vecs + (size_t)pick[i] * d, d * sizeof(float));
    map_clear(&seen);
    free(pick);
    return k;
}

uint32_t index_dim(const index_t *ix)
{
    return ix->dim;
}

size_t index_count(const index_t *ix)
{
    return ix->count;
}

void index_get_stats(const index_t *ix, index_stats_t *st)
{
    memset(st, 0, sizeof *st);
    st->count = ix->count;
    st->lsh_active = ix->ivf;
    st->searches = ix->searches;
    st->candidates = ix->candidates;
    st->splits = ix->splits;
    uint64_t c = ix->cap, by = sizeof *ix;
    by += c * ((uint64_t)ix->dim * sizeof(float) + sizeof *ix->ids + sizeof *ix->cands +
               sizeof *ix->ubound + sizeof *ix->fstar + sizeof *ix->order);
    by += ix->idmap.cap * sizeof *ix->idmap.ents;
    if (ix->ivf) {
        st->buckets = ix->nlist;
        for (uint32_t k = 0; k < ix->nlist; k++) {
            const struct list *l = &ix->lists[k];
            if (l->len > st->max_bucket)
                st->max_bucket = l->len;
            by += (uint64_t)l->cap * (ix->code_words * sizeof(uint64_t) + sizeof(uint32_t));
        }
        by += (uint64_t)ix->lcap * (sizeof *ix->lists + ((uint64_t)ix->dim + 2) * sizeof(float));
        by += MAX_NPROBE * sizeof(uint32_t);
        by += (uint64_t)ix->dim * (sizeof(float) + sizeof(int16_t)); /* mean, y16 */
        by += (uint64_t)5 * ix->dpad * sizeof(float);
        by += c * ((uint64_t)ix->dim + 4 * sizeof(uint32_t));
    }
    st->bytes = by;
}

const float *index_center(const index_t *ix)
{
    return ix->ivf ? ix->mean : NULL;
}

int index_set_center(index_t *ix, const float *center)
{
    /* A mean of unit vectors: finite, length <= 1. The int8 bounds rely on
     * the residuals from it staying small enough for float arithmetic. */
    if (center != NULL) {
        double ss = 0.0;
        for (uint32_t i = 0; i < ix->dim; i++) {
            if (!isfinite(center[i]))
                return -EINVAL;
            ss += (double)center[i] * center[i];
        }
        if (ss > 1.0 + 1e-3)
            return -EINVAL;
    }
    if (ix->ivf)
        ivf_off(ix);
    return ivf_on(ix, center);
}

int index_set_lists_probed(index_t *ix, uint32_t n)
{
    if (ix == NULL || n == 0 || n > MAX_NPROBE)
        return -EINVAL;
    ix->nprobe = n;
    return 0;
}

void index_get_rerank_counts(const index_t *ix, uint64_t *coded, uint64_t *quantized,
                             uint64_t *exact)
{
    if (coded)
        *coded = ix->coded;
    if (quantized)
        *quantized = ix->quantized;
    if (exact)
        *exact = ix->exact;
}
