/* index.c - similarity index of one namespace (see index.h).
 *
 * Slot i holds vecs[i*dim] and ids[i]; once the codes are on, also its
 * compact codes. Removal moves the last slot into the hole, so every
 * per-slot array stays dense and a scan reads it sequentially. A search is
 * a threshold query answered in stages, each cheaper per entry than the
 * next and each a filter that may only drop what cannot (or, for the sign
 * codes, almost surely cannot) reach the threshold:
 *  1. every entry's PRE_BITS-bit sign code (of x - centre, under a secret
 *     random rotation) against the query's, in one sequential scan: an
 *     entry goes on only if its Hamming distance still allows a cosine >=
 *     the threshold, with a cut calibrated so that a pair AT the threshold
 *     is dropped with probability <= DROP_A under the binomial model of the
 *     bits. The rotation is drawn from the seed, not from the data, so the
 *     bound holds for any data;
 *  2. the same test on the whole CODE_BITS-bit code (probability <= DROP_B);
 *  3. bounds of each survivor's cosine from its int8 code: proven, rounding
 *     included, so no loss;
 *  4. the exact fp32 cosine of what is left, which alone decides a hit.
 * There is no partition to choose: recall does not depend on where the
 * data lies, only on stages 1 and 2, whose worst case at the threshold
 * index_get_stats reports (drop_bound). Why partitions were given up:
 * docs/benchmarks.md, "Index", "Why not partitions".
 *
 * The centre of the codes is the namespace's mean when they switch on. A
 * stream that drifts moves the mean away: answers stay right (every floor
 * is computed from the entry's own offsets to the centre in use), only the
 * filters pass more. The index keeps the live sum, and once the live mean is
 * far from the centre (RECENTRE_FRAC of the spread) it re-codes every entry
 * on a new centre a few slots per add or remove (RECODE_STEP), searching
 * the two generations side by side meanwhile: no pause.
 */
#include "index.h"
#include "mix64.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "simcache.h"
#include "vec.h"

/* Exact while count * dim < 2^21 floats, within these bounds: an exact
 * scan then costs about what the staged search does, and has recall 1. */
#define EXACT_FLOATS (1u << 21)
#define EXACT_MIN 1024u
#define EXACT_MAX 4096u

/* Sign code: the first CODE_BITS signs of H D3 H D2 H D1 (x - centre) (H
 * Walsh-Hadamard, Di random +-1 diagonals, x zero-padded to a power of two
 * >= CODE_BITS), a fast pseudo-random rotation. The three rounds spread even
 * a one-hot vector flat, so each bit behaves like the sign of a Gaussian
 * projection: P(bit differs) ~ angle/pi (checked on dense, sparse, one-hot
 * and outlier vectors: mean within 0.8 sd, spread below the binomial's).
 * Below CODE_MIN_DIM that approximation is poor, and there is no filter:
 * every entry goes to the int8 stage. Stage 1 reads the first PRE_WORDS
 * words of the code (a prefix of the same bits). */
#define CODE_BITS 960u
#define CODE_WORDS (CODE_BITS / 64u)
/* A stage 2 record: the code, then mux and nx as floats: 128 bytes, two
 * cache lines (the array is 64-byte aligned). */
#define REC_WORDS 16u
#ifndef PRE_WORDS
#define PRE_WORDS 2u
#endif
#define PRE_BITS (PRE_WORDS * 64u)
#define CODE_MIN_DIM 64u
/* The cuts: the smallest Hamming distance c with P(H > c) <= DROP for H ~
 * Bin(bits, acos(t - MARGIN) / pi), at thresholds t on a grid of CODE_TAB.
 * At the threshold itself (the worst over the grid, summed over both
 * stages: drop_bound) that is at most 9.0e-3 per matching pair with these
 * values (128 + 960 bits): a best match sitting right at the threshold is
 * still found with probability >= 0.99, and one above it more surely. */
#ifndef DROP_A
#define DROP_A 2e-3
#endif
#define MARGIN_A 0.0
#ifndef DROP_B
#define DROP_B 2e-2
#endif
#define MARGIN_B 0.02
#define CODE_TAB 256u       /* cut table: centred cosines -1 + k * 2/CODE_TAB */

/* Stage 3 bound: |x.y - (c.y + scale * q8.y)| <= qerr * |y| (plus the
 * query's int16 rounding, see rerank), and every float rounding on the way
 * fits in QUANT_SLACK: the rotations (three rounds of at most 12 butterfly
 * levels: a relative error below 36 * 6e-8 on vectors of norm <= 2, so
 * under 1.5e-5 on the product), c.y and |y| (summed in double), the integer
 * dot product (exact) and the few float products and sums that combine
 * them (1e-6). 1e-4 leaves a margin of five. */
#define QUANT_SLACK 1e-4f

/* Slack on the threshold for float rounding of the exact cosine (see
 * index_search). */
#define SIM_EPS 2e-6f
/* "The best" is the best to within BEST_TOL: stage 4 stops at an upper
 * bound within it of the best found, so that a group of duplicates of the
 * query (all at 1.0) costs one exact score, not one each. The exact scores
 * themselves are float dot products, rounded by up to ~1e-5 at the largest
 * dimensions. NORM_SLACK covers the rounding of a float dot product beyond
 * |x| |y| (blocked sums of at most SIMCACHE_MAX_DIM / 8 terms). */
#define BEST_TOL 1e-5f
#define NORM_SLACK 4e-6f

#define EXACT_CHUNK 256u
/* Stage 1 scans this many slots a call (its output space is the chunk);
 * the first chunk of a search is smaller, so that a hit raises the
 * threshold early (measured: 15% less work on anisotropic text, no change
 * on isotropic). Chunks go from the newest slots to the oldest: in a
 * stream, the tasks stored last are likeliest to be like the next one. */
#define SCAN_CHUNK 4096u
#define FIRST_CHUNK 1024u
/* Stage 3 goes best first, by a counting sort of the survivors' floors
 * into this many buckets: linear in the survivors, and within a bucket the
 * order only matters for work, never for the answer. */
#define ORDER_BUCKETS 256u
/* int8 rows prefetched this many candidates ahead of stage 3. */
#ifndef PF_AHEAD
#define PF_AHEAD 3u
#endif

/* Re-centring: checked every max(RECENTRE_CHECK, count / 8) adds and
 * removals, started when |live mean - centre|^2 > RECENTRE_FRAC *
 * (1 - |centre|^2) (the spread around the centre, for unit vectors), and
 * done RECODE_STEP slots per add or remove. */
#define RECENTRE_CHECK 256u
#define RECENTRE_FRAC 0.05
#define RECODE_STEP 8u

/* ---- deterministic PRNG: splitmix64 seeding xoshiro256** ---- */

typedef struct {
    uint64_t s[4];
} rng_t;


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

/* The codes of one centre: the centre and its rotations, and per slot the
 * sign codes, the offsets and the int8 codes. */
typedef struct {
    float *mean;        /* dim: the centre */
    float *off;         /* dpad: the centre rotated (sign codes) */
    float *qoff;        /* qdim: the centre rotated and scaled (int8 codes) */
    float munorm;       /* |centre|, rounded up */
    float mu2;          /* |centre|^2 */
    uint64_t *pre;      /* cap * PRE_WORDS: stage 1 codes */
    uint64_t *recs;     /* cap * REC_WORDS: stage 2 records, page-aligned (map_grow) */
    size_t recs_bytes;  /* the mapping's size */
    float *mux, *nx;    /* cap: centre.x and |x - centre| */
    float mux_max, nx_min, nx_max; /* bounds over the slots coded here (widened
                         * by each code; made exact again from time to time) */
    int8_t *q8;         /* cap * qdim: R (x - centre) ~ qscale q8, off by <= qerr */
    float *qscale, *qerr; /* cap */
    int8_t *q8b;        /* cap * qdim: the second level, R (x - centre) ~
                         * qscale q8 + qscale2 q8b, off by <= qerr2 */
    float *qscale2, *qerr2; /* cap */
} gen_t;

struct index {
    uint32_t dim, exact_below;
    uint64_t seed;

    size_t count, cap;
    float *vecs;        /* cap * dim, unit vectors */
    uint64_t *ids;      /* cap */
    float *xnorm;       /* cap: |x| rounded up (1 to within rounding) */
    slotmap_t idmap;    /* id -> slot */

    /* Codes, once on. g[cur] codes slots [0, count) when no re-centring
     * runs; during one, g[1 - cur] (the new centre) codes [0, recoded) and
     * g[cur] the rest. */
    bool on;
    gen_t g[2];
    int cur;
    bool recentring;
    size_t recoded;
    uint32_t code_words, dpad; /* code_words 0: no sign codes (dim < CODE_MIN_DIM) */
    float *code_diag;   /* 3 * dpad, +-1 */
    float *code_buf;    /* dpad, scratch */
    float *qrot;        /* CODE_BITS, search scratch: the query's sign-code rotation */
    uint32_t qdim;      /* int8 codes: a power of two >= dim */
    float *qdiag;       /* 3 * qdim, +-1 (code_diag when qdim == dpad) */
    float *qbuf;        /* qdim, scratch */
    float *qres;        /* qdim, scratch: what the first int8 level leaves */
    int16_t *y16;       /* qdim, search scratch: the query in int16 */
    uint32_t *cands;    /* SCAN_CHUNK, search scratch: slots past stages 1-2 */
    float *fstar;       /* SCAN_CHUNK, search scratch: their floors */
    float *ubound;      /* SCAN_CHUNK, search scratch: stage 3 bounds */
    float *approx;      /* SCAN_CHUNK, search scratch: stage 3 estimates */
    uint32_t *order;    /* SCAN_CHUNK, search scratch: stage 3 order, then survivors */
    double *sum;        /* dim: sum of the live vectors */
    uint64_t since_check;

    uint64_t searches, candidates, coded, filtered, quantized, exact, recentres;
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

/* Grow a page-aligned anonymous mapping from old_bytes to bytes (p NULL:
 * a new one): mremap moves pages instead of copying them, and page
 * alignment gives the 64-byte alignment realloc cannot promise. NULL (p
 * untouched) on failure. Free with map_free. */
static size_t page_round(size_t n)
{
    return (n + 4095) & ~(size_t)4095;
}

static void *map_grow(void *p, size_t old_bytes, size_t bytes)
{
    void *q;

    if (bytes == 0)
        return NULL;
    if (p == NULL)
        q = mmap(NULL, page_round(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                 0);
    else
        q = mremap(p, page_round(old_bytes), page_round(bytes), MREMAP_MAYMOVE);
    if (q == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (bytes >= HUGE_ADVISE_MIN)
        (void)madvise(q, page_round(bytes), MADV_HUGEPAGE);
#endif
    return q;
}

static void map_free(void *p, size_t bytes)
{
    if (p != NULL)
        munmap(p, page_round(bytes));
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

/* H D3 H D2 H D1 v (v zero-padded to n) into buf: n^1.5 times a rotation. */
static void rotate_n(const float *v, uint32_t dim, uint32_t n, const float *diag, float *buf)
{
    memcpy(buf, v, dim * sizeof *buf);
    memset(buf + dim, 0, (n - dim) * sizeof *buf);
    for (uint32_t r = 0; r < 3; r++)
        vec_fwht(buf, diag + (size_t)r * n, n);
}

/* The sign codes' rotation of v into code_buf (dpad floats). */
static void rotate(index_t *ix, const float *v)
{
    rotate_n(v, ix->dim, ix->dpad, ix->code_diag, ix->code_buf);
}

/* The int8 codes' rotation of v into qbuf (qdim floats), scaled to be a
 * rotation (norms kept, to float rounding). raw_ok: code_buf already holds
 * rotate(ix, v), reused when the two rotations are one. */
static void rotate_q(index_t *ix, const float *v, bool raw_ok)
{
    const float sc = (float)pow((double)ix->qdim, -1.5);

    if (raw_ok && ix->qdiag == ix->code_diag)
        memcpy(ix->qbuf, ix->code_buf, ix->qdim * sizeof *ix->qbuf);
    else
        rotate_n(v, ix->dim, ix->qdim, ix->qdiag, ix->qbuf);
    for (uint32_t i = 0; i < ix->qdim; i++)
        ix->qbuf[i] *= sc;
}

/* The bounds of stage 1's quick test over no slot, then widened by one. */
static void bounds_clear(gen_t *g)
{
    g->mux_max = -INFINITY;
    g->nx_min = INFINITY;
    g->nx_max = 0.0f;
}

static void bounds_widen(gen_t *g, float mux, float nx)
{
    g->mux_max = mux > g->mux_max ? mux : g->mux_max;
    g->nx_min = nx < g->nx_min ? nx : g->nx_min;
    g->nx_max = nx > g->nx_max ? nx : g->nx_max;
}

/* n values of x to int8 on one scale (max |x| / 127, rounded to nearest):
 * x ~ scale * q. Returns the scale. */
static float quant_i8(const float *x, uint32_t n, int8_t *q)
{
    float mx = 0.0f;
    for (uint32_t i = 0; i < n; i++)
        if (fabsf(x[i]) > mx)
            mx = fabsf(x[i]);
    float sc = mx / 127.0f, inv = sc > 0.0f ? 1.0f / sc : 0.0f;
    for (uint32_t i = 0; i < n; i++) {
        float t = x[i] * inv;
        int k = (int)(t >= 0.0f ? t + 0.5f : t - 0.5f);
        q[i] = (int8_t)(k > 127 ? 127 : k < -127 ? -127 : k);
    }
    return sc;
}

/* Every code of slot s (vector stored) under generation g. */
static void code_slot(index_t *ix, gen_t *g, size_t s)
{
    const uint32_t d = ix->dim, qd = ix->qdim;
    const float *v = ix->vecs + s * d, *mu = g->mean;
    double mv = 0.0, n2 = 0.0;

    for (uint32_t i = 0; i < d; i++) {
        double r = (double)v[i] - mu[i];
        mv += (double)mu[i] * v[i];
        n2 += r * r;
    }
    g->mux[s] = (float)mv;
    g->nx[s] = (float)sqrt(n2);
    bounds_widen(g, g->mux[s], g->nx[s]);
    if (ix->code_words)
        rotate(ix, v);
    /* int8 codes of the rotated residual r = R (x - c): the rotation spreads
     * a residual evenly over the coordinates, so a per-vector scale wastes
     * little range on one large coordinate (a spiky embedding's int8 error
     * drops several times). The second level codes what the first left
     * (each coordinate within qscale / 2), about 127 times finer: stage 4
     * reads it for the candidates whose first-level bounds cannot tell them
     * apart (near-duplicates of each other). qerr and qerr2 are how far
     * (Euclidean) each level's code is from r as computed, rounded up: any
     * rounding of the codes will do, the errors measure the codes stored. */
    rotate_q(ix, v, ix->code_words != 0);
    float *r = ix->qbuf, *left = ix->qres;
    for (uint32_t i = 0; i < qd; i++)
        r[i] -= g->qoff[i];
    int8_t *q = g->q8 + s * qd, *q2 = g->q8b + s * qd;
    float sc = quant_i8(r, qd, q);
    for (uint32_t i = 0; i < qd; i++)
        left[i] = r[i] - sc * (float)q[i];
    float sc2 = quant_i8(left, qd, q2);
    double e1 = 0.0, e2 = 0.0;
    for (uint32_t i = 0; i < qd; i++) {
        double e = (double)r[i] - (double)sc * q[i];
        e1 += e * e;
        e -= (double)sc2 * q2[i];
        e2 += e * e;
    }
    g->qscale[s] = sc;
    g->qerr[s] = nextafterf((float)sqrt(e1), INFINITY);
    g->qscale2[s] = sc2;
    g->qerr2[s] = nextafterf((float)sqrt(e2), INFINITY);
    if (ix->code_words) {
        uint64_t rec[CODE_WORDS];
        for (uint32_t i = 0; i < CODE_BITS; i++)
            ix->code_buf[i] -= g->off[i];
        vec_sign_bits(ix->code_buf, CODE_BITS, rec);
        float f[2] = { g->mux[s], g->nx[s] };
        memcpy(g->recs + s * REC_WORDS, rec, sizeof rec);
        memcpy(g->recs + s * REC_WORDS + CODE_WORDS, f, sizeof f);
        memcpy(g->pre + s * PRE_WORDS, rec, PRE_WORDS * sizeof *rec);
    }
}

/* Copy slot `from`'s codes of generation g to slot `to`. */
static void move_codes(index_t *ix, gen_t *g, size_t to, size_t from)
{
    if (ix->code_words) {
        memcpy(g->pre + to * PRE_WORDS, g->pre + from * PRE_WORDS, PRE_WORDS * sizeof(uint64_t));
        memcpy(g->recs + to * REC_WORDS, g->recs + from * REC_WORDS,
               REC_WORDS * sizeof(uint64_t));
    }
    g->mux[to] = g->mux[from];
    g->nx[to] = g->nx[from];
    memcpy(g->q8 + to * ix->qdim, g->q8 + from * ix->qdim, ix->qdim);
    memcpy(g->q8b + to * ix->qdim, g->q8b + from * ix->qdim, ix->qdim);
    g->qscale2[to] = g->qscale2[from];
    g->qerr2[to] = g->qerr2[from];
    g->qscale[to] = g->qscale[from];
    g->qerr[to] = g->qerr[from];
}

/* P(H > c) for H ~ Bin(m, p): the upper tail summed exactly, from the
 * top down in logs (P(H = h-1) / P(H = h) = h / (m - h + 1) * (1 - p) / p). */
static double binom_above(uint32_t m, uint32_t c, double p)
{
    if (c >= m || p <= 0.0)
        return 0.0;
    if (p >= 1.0)
        return 1.0;
    double lodds = log1p(-p) - log(p), lpmf = m * log(p), s = 0.0;
    for (uint32_t h = m; h > c; h--) {
        s += exp(lpmf);
        lpmf += log((double)h / (m - h + 1)) + lodds;
    }
    return s > 1.0 ? 1.0 : s;
}

/* Largest Hamming distance (of m bits) that a pair at centred cosine >= t
 * keeps with probability >= 1 - drop, t taken `margin` lower: the smallest
 * c with P(H > c) <= drop for H ~ Bin(m, acos(t) / pi). */
static uint32_t code_cut_for(uint32_t m, double t, double drop, double margin)
{
    t -= margin;
    if (!(t > -1.0))
        return m;
    if (t >= 1.0)
        return 0;
    double p = acos(t) / 3.141592653589793;
    double lodds = log1p(-p) - log(p), lpmf = m * log(p), tail = 0.0;
    for (uint32_t c = m; c > 0; c--) {
        double pm = exp(lpmf);
        if (tail + pm > drop)
            return c;
        tail += pm;
        lpmf += log((double)c / (m - c + 1)) + lodds;
    }
    return 0;
}

/* cmax[h] for h <= m from the cut table: a centred cosine below cmax[h]
 * keeps Hamming distance h, that is cut[k] >= h for k = floor((c + 1) *
 * CODE_TAB / 2); 2 (above any cosine) where every table entry keeps h. */
static void cut_table(uint32_t m, double drop, double margin, uint16_t *cut, float *cmax)
{
    for (uint32_t k = 0; k <= CODE_TAB; k++)
        cut[k] = (uint16_t)code_cut_for(m, -1.0 + 2.0 * k / CODE_TAB, drop, margin);
    uint32_t k = CODE_TAB;
    for (uint32_t h = 0; h <= m; h++) {
        while (k > 0 && cut[k] < h)
            k--;
        cmax[h] = k == CODE_TAB ? 2.0f : (float)(-1.0 + 2.0 * (k + 1) / CODE_TAB);
    }
}

/* The cut tables and the bound on dropping a pair at the threshold: a
 * pair whose centred cosine c* is at the threshold's (x.y = thr) falls in
 * bucket k = floor((c* + 1) CODE_TAB / 2) and is dropped when its distance
 * passes cut[k] in either stage; within the bucket that is likeliest at
 * its lower edge. So the bound is the worst over k of the two tails there
 * (a union bound: the stages share bits, so the truth is lower). */
static struct {
    float cmax_a[PRE_BITS + 1], cmax_b[CODE_BITS + 1];
    double drop_bound;
} cuts;
static pthread_once_t cuts_once = PTHREAD_ONCE_INIT;

/* The same for every index (they depend on constants only): made once. */
static void cut_tables(void)
{
    uint16_t ca[CODE_TAB + 1], cb[CODE_TAB + 1];

    cut_table(PRE_BITS, DROP_A, MARGIN_A, ca, cuts.cmax_a);
    cut_table(CODE_BITS, DROP_B, MARGIN_B, cb, cuts.cmax_b);
    cuts.drop_bound = 0.0;
    for (uint32_t k = 1; k < CODE_TAB; k++) {
        double p = acos(-1.0 + 2.0 * k / CODE_TAB) / 3.141592653589793;
        double b = binom_above(PRE_BITS, ca[k], p) + binom_above(CODE_BITS, cb[k], p);
        if (b > cuts.drop_bound)
            cuts.drop_bound = b;
    }
}

/* ---- capacity ---- */

static void gen_free(gen_t *g)
{
    free(g->mean);
    free(g->off);
    free(g->qoff);
    free(g->pre);
    map_free(g->recs, g->recs_bytes);
    free(g->mux);
    free(g->nx);
    free(g->q8);
    free(g->qscale);
    free(g->qerr);
    free(g->q8b);
    free(g->qscale2);
    free(g->qerr2);
    memset(g, 0, sizeof *g);
}

/* Per-slot arrays of generation g for ncap slots. Returns 0 or -ENOMEM
 * (arrays that grew stay grown: harmless). */
static int gen_grow(index_t *ix, gen_t *g, size_t ncap)
{
    void *p;

    if (ix->code_words) {
        if ((p = xrealloc(g->pre, ncap * PRE_WORDS, sizeof(uint64_t))) == NULL)
            return -ENOMEM;
        g->pre = p;
        size_t rb = ncap * REC_WORDS * sizeof(uint64_t);
        if ((p = map_grow(g->recs, g->recs_bytes, rb)) == NULL)
            return -ENOMEM;
        g->recs = p;
        g->recs_bytes = rb;
    }
    if ((p = xrealloc(g->mux, ncap, sizeof(float))) == NULL)
        return -ENOMEM;
    g->mux = p;
    if ((p = xrealloc(g->nx, ncap, sizeof(float))) == NULL)
        return -ENOMEM;
    g->nx = p;
    if ((p = xrealloc(g->q8, ncap * ix->qdim, sizeof(int8_t))) == NULL)
        return -ENOMEM;
    g->q8 = p;
    if ((p = xrealloc(g->qscale, ncap, sizeof(float))) == NULL)
        return -ENOMEM;
    g->qscale = p;
    if ((p = xrealloc(g->qerr, ncap, sizeof(float))) == NULL)
        return -ENOMEM;
    g->qerr = p;
    if ((p = xrealloc(g->q8b, ncap * ix->qdim, sizeof(int8_t))) == NULL)
        return -ENOMEM;
    g->q8b = p;
    if ((p = xrealloc(g->qscale2, ncap, sizeof(float))) == NULL)
        return -ENOMEM;
    g->qscale2 = p;
    if ((p = xrealloc(g->qerr2, ncap, sizeof(float))) == NULL)
        return -ENOMEM;
    g->qerr2 = p;
    return 0;
}

/* A new generation centred on c (dim floats), its per-slot arrays sized
 * for the index's cap. Returns 0 or -ENOMEM (g freed). */
static int gen_init(index_t *ix, gen_t *g, const float *c)
{
    size_t d = ix->dim;
    double mn2 = 0.0;

    memset(g, 0, sizeof *g);
    g->mean = malloc(d * sizeof *g->mean);
    g->qoff = malloc(ix->qdim * sizeof *g->qoff);
    if (ix->code_words)
        g->off = malloc(ix->dpad * sizeof *g->off);
    if (g->mean == NULL || g->qoff == NULL || (ix->code_words && g->off == NULL) ||
        (ix->cap && gen_grow(ix, g, ix->cap) < 0)) {
        gen_free(g);
        return -ENOMEM;
    }
    memcpy(g->mean, c, d * sizeof *c);
    bounds_clear(g);
    for (size_t i = 0; i < d; i++)
        mn2 += (double)c[i] * c[i];
    g->mu2 = (float)mn2;
    g->munorm = nextafterf((float)sqrt(mn2), INFINITY);
    if (ix->code_words) {
        rotate(ix, c);
        memcpy(g->off, ix->code_buf, ix->dpad * sizeof(float));
    }
    rotate_q(ix, c, ix->code_words != 0);
    memcpy(g->qoff, ix->qbuf, ix->qdim * sizeof(float));
    return 0;
}

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
    if ((p = xrealloc(ix->xnorm, ncap, sizeof(float))) == NULL)
        return -ENOMEM;
    ix->xnorm = p;
    for (int k = 0; k < 2; k++)
        if (ix->g[k].mean != NULL && gen_grow(ix, &ix->g[k], ncap) < 0)
            return -ENOMEM;
    ix->cap = ncap;
    return 0;
}

/* The generation that codes slot s. */
static gen_t *gen_of(index_t *ix, size_t s)
{
    return ix->recentring && s < ix->recoded ? &ix->g[1 - ix->cur] : &ix->g[ix->cur];
}

/* ---- switching the codes on, re-centring ---- */

static void codes_off(index_t *ix)
{
    gen_free(&ix->g[0]);
    gen_free(&ix->g[1]);
    free(ix->code_diag);
    free(ix->code_buf);
    free(ix->qrot);
    ix->qrot = NULL;
    if (ix->qdiag != ix->code_diag)
        free(ix->qdiag);
    free(ix->qbuf);
    free(ix->qres);
    free(ix->y16);
    free(ix->sum);
    free(ix->cands);
    free(ix->fstar);
    free(ix->ubound);
    free(ix->approx);
    free(ix->order);
    ix->cands = ix->order = NULL;
    ix->fstar = ix->ubound = ix->approx = NULL;
    ix->code_diag = ix->code_buf = ix->qdiag = ix->qbuf = ix->qres = NULL;
    ix->y16 = NULL;
    ix->sum = NULL;
    ix->on = ix->recentring = false;
    ix->cur = 0;
}

/* The live mean into out (dim floats); 0 entries give the origin. */
static void live_mean(const index_t *ix, float *out)
{
    for (uint32_t i = 0; i < ix->dim; i++)
        out[i] = ix->count ? (float)(ix->sum[i] / (double)ix->count) : 0.0f;
}

/* n random +-1 floats from stream `stream` of seed. */
static void random_signs(float *out, size_t n, uint64_t seed, uint64_t stream)
{
    rng_t r;

    rng_init(&r, seed, stream);
    for (size_t i = 0; i < n; i += 64) {
        uint64_t bits = rng_next(&r);
        for (size_t j = i; j < n && j < i + 64; j++)
            out[j] = (bits >> (j - i)) & 1 ? 1.0f : -1.0f;
    }
}

/* Switch the codes on, centred on `center` (NULL: the mean of the
 * entries): code every entry (a pause of one code per entry: about 10 us
 * at 1024 dims). Returns 0 or -ENOMEM (codes stay off). */
static int codes_on(index_t *ix, const float *center)
{
    size_t d = ix->dim;

    ix->on = true; /* so that failures go through codes_off */
    ix->y16 = malloc(ix->qdim * sizeof *ix->y16);
    ix->qbuf = malloc(ix->qdim * sizeof *ix->qbuf);
    ix->qres = malloc(ix->qdim * sizeof *ix->qres);
    ix->sum = calloc(d, sizeof *ix->sum);
    ix->cands = malloc(SCAN_CHUNK * sizeof *ix->cands);
    ix->fstar = malloc(SCAN_CHUNK * sizeof *ix->fstar);
    ix->ubound = malloc(SCAN_CHUNK * sizeof *ix->ubound);
    ix->approx = malloc(SCAN_CHUNK * sizeof *ix->approx);
    ix->order = malloc(SCAN_CHUNK * sizeof *ix->order);
    float *c = malloc(d * sizeof *c);
    if (ix->code_words) {
        ix->code_diag = malloc((size_t)3 * ix->dpad * sizeof *ix->code_diag);
        ix->code_buf = malloc(ix->dpad * sizeof *ix->code_buf);
        ix->qrot = malloc(CODE_BITS * sizeof *ix->qrot);
    }
    if (ix->y16 == NULL || ix->qbuf == NULL || ix->qres == NULL || ix->sum == NULL || c == NULL || ix->cands == NULL ||
        ix->fstar == NULL || ix->ubound == NULL || ix->approx == NULL || ix->order == NULL ||
        (ix->code_words && (ix->code_diag == NULL || ix->code_buf == NULL || ix->qrot == NULL))) {
        free(c);
        codes_off(ix);
        return -ENOMEM;
    }
    for (size_t s = 0; s < ix->count; s++)
        for (size_t i = 0; i < d; i++)
            ix->sum[i] += ix->vecs[s * d + i];
    if (center != NULL)
        memcpy(c, center, d * sizeof *c);
    else
        live_mean(ix, c);
    if (ix->code_words)
        random_signs(ix->code_diag, (size_t)3 * ix->dpad, ix->seed, 2);
    if (ix->code_words && ix->qdim == ix->dpad) {
        ix->qdiag = ix->code_diag; /* one rotation serves both codes */
    } else {
        ix->qdiag = malloc((size_t)3 * ix->qdim * sizeof *ix->qdiag);
        if (ix->qdiag == NULL) {
            free(c);
            codes_off(ix);
            return -ENOMEM;
        }
        random_signs(ix->qdiag, (size_t)3 * ix->qdim, ix->seed, 6);
    }
    ix->cur = 0;
    int rc = gen_init(ix, &ix->g[0], c);
    free(c);
    if (rc < 0) {
        codes_off(ix);
        return rc;
    }
    for (size_t s = 0; s < ix->count; s++)
        code_slot(ix, &ix->g[0], s);
    ix->since_check = 0;
    return 0;
}

/* Start re-centring on the live mean when it has moved far from the
 * centre in use (see RECENTRE_FRAC). A failed allocation only leaves the
 * old centre in use, which is right, just less selective. */
static void recentre_check(index_t *ix)
{
    if (ix->recentring || ++ix->since_check < RECENTRE_CHECK ||
        ix->since_check < ix->count / 8)
        return;
    ix->since_check = 0;
    gen_t *g = &ix->g[ix->cur];
    /* Removals leave the bounds of stage 1's quick test wider than the
     * entries: make them exact again (two float arrays, sequential). */
    bounds_clear(g);
    for (size_t s = 0; s < ix->count; s++)
        bounds_widen(g, g->mux[s], g->nx[s]);
    double d2 = 0.0, inv = ix->count ? 1.0 / (double)ix->count : 0.0;
    for (uint32_t i = 0; i < ix->dim; i++) {
        double t = ix->sum[i] * inv - g->mean[i];
        d2 += t * t;
    }
    if (d2 <= RECENTRE_FRAC * (1.0 - g->mu2))
        return;
    float *c = malloc(ix->dim * sizeof *c);
    if (c == NULL)
        return;
    live_mean(ix, c);
    gen_t *n = &ix->g[1 - ix->cur];
    if (gen_init(ix, n, c) == 0) {
        ix->recentring = true;
        ix->recoded = 0;
    }
    free(c);
}

/* Re-code up to `step` more slots on the new centre; when every slot is,
 * the new centre becomes the one in use. */
static void recode_step(index_t *ix, size_t step)
{
    if (!ix->recentring)
        return;
    gen_t *n = &ix->g[1 - ix->cur];
    while (step-- > 0 && ix->recoded < ix->count)
        code_slot(ix, n, ix->recoded++);
    if (ix->recoded < ix->count)
        return;
    gen_free(&ix->g[ix->cur]);
    ix->cur = 1 - ix->cur;
    ix->recentring = false;
    ix->recentres++;
}

/* ---- public ---- */

index_t *index_new(uint32_t dim, uint64_t seed, const index_params_t *p)
{
    index_params_t d = { .exact_below = 0 };

    if (p != NULL)
        d = *p;
    if (dim == 0 || dim > SIMCACHE_MAX_DIM)
        return NULL;
    if (d.exact_below == 0) {
        d.exact_below = EXACT_FLOATS / dim;
        d.exact_below = d.exact_below < EXACT_MIN ? EXACT_MIN : d.exact_below;
        d.exact_below = d.exact_below > EXACT_MAX ? EXACT_MAX : d.exact_below;
    }
    index_t *ix = calloc(1, sizeof *ix);
    if (ix == NULL)
        return NULL;
    ix->dim = dim;
    ix->seed = seed;
    ix->exact_below = d.exact_below;
    ix->qdim = 16;
    while (ix->qdim < dim)
        ix->qdim *= 2;

    rng_t r;
    rng_init(&r, seed, 3);
    ix->idmap.salt = rng_next(&r);
    if (dim >= CODE_MIN_DIM) {
        uint32_t dp = 1024; /* a power of two >= CODE_BITS */
        while (dp < dim)
            dp *= 2;
        ix->dpad = dp;
        ix->code_words = CODE_WORDS;
        pthread_once(&cuts_once, cut_tables);
    }
    return ix;
}

void index_free(index_t *ix)
{
    if (ix == NULL)
        return;
    codes_off(ix);
    free(ix->vecs);
    free(ix->ids);
    free(ix->xnorm);
    free(ix->idmap.ents);
    free(ix);
}

/* Accept only what vec_normalize can produce: finite, length 1. *norm
 * gets the length, rounded up. */
static bool is_unit(const float *v, uint32_t dim, float *norm)
{
    double ss = 0.0;
    for (uint32_t i = 0; i < dim; i++) {
        if (!isfinite(v[i]))
            return false;
        ss += (double)v[i] * v[i];
    }
    *norm = nextafterf((float)sqrt(ss), INFINITY);
    return fabs(ss - 1.0) <= 1e-3;
}

int index_add(index_t *ix, uint64_t id, const float *unit)
{
    float norm = 0.0f;

    if (ix == NULL || id == 0 || unit == NULL || !is_unit(unit, ix->dim, &norm))
        return -EINVAL;
    if (map_find(&ix->idmap, id) != SIZE_MAX)
        return -EEXIST;
    if (grow_slots(ix, ix->count + 1) < 0 || map_reserve(&ix->idmap) < 0)
        return -ENOMEM;

    size_t s = ix->count;
    memcpy(ix->vecs + s * ix->dim, unit, ix->dim * sizeof(float));
    ix->ids[s] = id;
    ix->xnorm[s] = norm;
    map_insert_new(&ix->idmap, id, (uint32_t)s);
    ix->count++;
    if (ix->on) {
        /* A new slot is past the re-coded part: the centre in use codes it
         * (and the re-centring re-codes it when it gets there). */
        code_slot(ix, &ix->g[ix->cur], s);
        for (uint32_t i = 0; i < ix->dim; i++)
            ix->sum[i] += unit[i];
        recentre_check(ix);
        recode_step(ix, RECODE_STEP);
    } else if (ix->count >= ix->exact_below) {
        (void)codes_on(ix, NULL);
    }
    return 0;
}

int index_remove(index_t *ix, uint64_t id)
{
    size_t at = ix == NULL || id == 0 ? SIZE_MAX : map_find(&ix->idmap, id);

    if (at == SIZE_MAX)
        return -ENOENT;
    size_t s = ix->idmap.ents[at].val, last = ix->count - 1, d = ix->dim;
    map_delete_at(&ix->idmap, at);
    if (ix->on)
        for (uint32_t i = 0; i < d; i++)
            ix->sum[i] -= ix->vecs[s * d + i];
    if (s != last) {
        memcpy(ix->vecs + s * d, ix->vecs + last * d, d * sizeof(float));
        ix->ids[s] = ix->ids[last];
        ix->xnorm[s] = ix->xnorm[last];
        ix->idmap.ents[map_find(&ix->idmap, ix->ids[s])].val = (uint32_t)s;
        if (ix->on) {
            gen_t *to = gen_of(ix, s), *from = gen_of(ix, last);
            /* Slots below `recoded` need only their new codes, the others
             * only the old ones: a slot moving from the old part into the
             * new one is coded anew. */
            if (to == from)
                move_codes(ix, to, s, last);
            else
                code_slot(ix, to, s);
        }
    }
    ix->count--;
    if (ix->on) {
        if (ix->recentring && ix->recoded > ix->count)
            ix->recoded = ix->count;
        recentre_check(ix);
        recode_step(ix, RECODE_STEP);
    }
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

/* What a search needs of the query for one generation: its sign code and
 * offsets to that generation's centre. */
typedef struct {
    const gen_t *g;
    uint64_t qc[CODE_WORDS];
    float ny, base, muy, efix;
} qgen_t;

/* The query against generation g. ey: the query's int16 rounding (see
 * rerank). */
static void query_for(index_t *ix, const gen_t *g, const float *q, float ey, qgen_t *out)
{
    double n2 = 0.0, mq = 0.0;

    for (uint32_t i = 0; i < ix->dim; i++) {
        double r = (double)q[i] - g->mean[i];
        n2 += r * r;
        mq += (double)g->mean[i] * q[i];
    }
    out->g = g;
    out->ny = (float)sqrt(n2);
    out->base = (float)mq - g->mu2;
    out->muy = (float)mq;
    out->efix = (1.001f + g->munorm) * ey + QUANT_SLACK;
    if (ix->code_words) {
        /* R (q - c) = R q - R c: the rotation of q (query_setup) serves
         * every centre. */
        for (uint32_t i = 0; i < CODE_BITS; i++)
            ix->code_buf[i] = ix->qrot[i] - g->off[i];
        vec_sign_bits(ix->code_buf, CODE_BITS, out->qc);
    }
}

/* The largest Hamming distance (stage 1) that any entry of g can keep at
 * thr: every entry's floor at distance h is at most bound(h) = cmax[h] *
 * (nx' ny) + mux_max + base, nx' the largest nx where cmax[h] >= 0 and the
 * smallest where it is negative, and bound falls as h grows (float
 * rounding is monotone, and the test below is taken 1e-6 lower for a
 * fused multiply-add's different rounding). So entries further than that
 * are dropped by one comparison, without their floor. */
static uint32_t hmax_for(const gen_t *g, const qgen_t *qg, float thr)
{
    uint32_t lo = 0, hi = PRE_BITS + 1; /* bound(lo) >= thr or lo = 0; bound(hi) < thr */
    thr -= 1e-6f;
    if (!(g->nx_max >= g->nx_min))
        return PRE_BITS; /* nothing coded yet: no quick test */
    while (hi - lo > 1) {
        uint32_t h = (lo + hi) / 2;
        float c = cuts.cmax_a[h];
        float b = c * ((c >= 0.0f ? g->nx_max : g->nx_min) * qg->ny) + g->mux_max + qg->base;
        if (b >= thr)
            lo = h;
        else
            hi = h;
    }
    return lo;
}

/* Stages 1 and 2 over slots [s0, s0 + m), all of generation qg->g: the
 * survivors into cands/fstar. Returns how many.
 *
 * Codes are of x' = x - c (c the centre), and x.y = x'.y' + c.x + c.y -
 * |c|^2, so x.y >= f needs cos(x', y') >= (f - mux - muy + mu2) / (nx ny)
 * (mux = c.x, nx = |x'|). A pair whose centred cosine is at least that
 * keeps Hamming distance h unless it is >= cmax[h] (the cut), so the
 * candidate can only reach a floor f <= fstar = cmax[h] nx ny + mux + muy -
 * mu2: one multiply-add per candidate. (With nx ny = 0, x'.y' = 0 and fstar
 * = x.y exactly.) */
static size_t filter_codes(index_t *ix, const qgen_t *qg, size_t s0, size_t m, float thr)
{
    const gen_t *g = qg->g;

    if (!ix->code_words) {
        for (size_t i = 0; i < m; i++) {
            ix->cands[i] = (uint32_t)(s0 + i);
            ix->fstar[i] = 2.0f;
        }
        return m;
    }
    /* Stage 1, sequential over the prefix codes. */
    size_t n1 = vec_code_filter(g->pre + s0 * PRE_WORDS, PRE_WORDS, g->mux + s0, g->nx + s0, m,
                                qg->qc, hmax_for(g, qg, thr), cuts.cmax_a, qg->ny, qg->base, thr,
                                (uint32_t)s0, ix->cands, ix->fstar);
    ix->coded += m;
    ix->filtered += n1;
    /* Stage 2, the whole code of each survivor; the lower floor stands. */
    size_t ns = 0;
    uint32_t *hd = ix->order; /* free until stage 3 */
    vec_hamming_sel(g->recs, REC_WORDS, ix->cands, n1, qg->qc, CODE_WORDS, hd);
    for (size_t i = 0; i < n1; i++) {
        uint32_t s = ix->cands[i];
        float f[2];
        memcpy(f, g->recs + (size_t)s * REC_WORDS + CODE_WORDS, sizeof f);
        float fs = cuts.cmax_b[hd[i]] * (f[1] * qg->ny) + f[0] + qg->base;
        if (fs < thr)
            continue;
        ix->cands[ns] = s;
        ix->fstar[ns++] = fs < ix->fstar[i] ? fs : ix->fstar[i];
    }
    return ns;
}

/* Sort n (slot, bound, value) triples by decreasing bound: insertion sort,
 * as n is a few (the stage 3 survivors), and a heap sort past SORT_SMALL. */
#define SORT_SMALL 32u
static void swap3(uint32_t *slot, float *b, float *v, size_t i, size_t j)
{
    uint32_t ts = slot[i];
    float tb = b[i], tv = v[i];
    slot[i] = slot[j];
    b[i] = b[j];
    v[i] = v[j];
    slot[j] = ts;
    b[j] = tb;
    v[j] = tv;
}

static void sift_down(uint32_t *slot, float *b, float *v, size_t i, size_t n)
{
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            return;
        if (c + 1 < n && b[c + 1] < b[c])
            c++;
        if (b[i] <= b[c])
            return;
        swap3(slot, b, v, i, c);
        i = c;
    }
}

static void sort_by_bound(uint32_t *slot, float *b, float *v, size_t n)
{
    if (n <= SORT_SMALL) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = i; j > 0 && b[j - 1] < b[j]; j--)
                swap3(slot, b, v, j - 1, j);
        return;
    }
    /* A min-heap, then the minimum swapped to the end each round: the
     * array ends in decreasing order. */
    for (size_t i = n / 2; i-- > 0;)
        sift_down(slot, b, v, i, n);
    for (size_t e = n; e-- > 1;) {
        swap3(slot, b, v, 0, e);
        sift_down(slot, b, v, 0, e);
    }
}

/* Stages 3 and 4 for the ns candidates in cands/fstar (every fstar >=
 * thr), all of generation qg->g: *best and *best_s improve when one of them
 * beats *best (or when !*found) at >= thr.
 *
 * Stage 3: bounds of each candidate's cosine from its int8 code. Keep those
 * whose upper bound reaches thr. The best lower bound so far is a floor
 * under the answer: it tightens the cut for the rest, so the likeliest
 * (highest fstar) go first and raise it early. The query is in int16 too,
 * rotated (y' = R y, x.y = c.y + R (x - c) . y' for the rotation R) and
 * in int16, y' = sy y16 + ey, so that each row costs one exact integer dot
 * product: with R (x - c) = qs q8 + ex,
 *   x.y = c.y + qs sy (q8.y16) + ex.y' + qs q8.ey,
 * |ex.y'| <= qerr |y| and |qs q8| <= |x - c| + qerr <= 1.001 + |c| + qerr
 * (an entry's norm is within 1e-3 of 1, see is_unit), so the bound's
 * half-width is qerr (|y| + |ey|) + (1.001 + |c|) |ey|, plus QUANT_SLACK
 * for the float rounding of the rest (the rotations' included: three
 * rounds of log2(qdim) butterflies, a few 1e-6 at most).
 * Stage 4: the exact cosine, which alone decides, of the few left. The
 * entry that set the floor is among them (its upper bound is above it), so
 * afterwards *best >= that floor: stage 4 stops only at a bound <= *best. */
static void rerank(index_t *ix, const qgen_t *qg, const float *q, const int16_t *y16, size_t ns,
                   float thr, float sy, float ewide, float ynorm, int *found, uint32_t *best_s,
                   float *best)
{
    const gen_t *g = qg->g;
    uint32_t *ord = ix->order;
    const size_t qb = ix->qdim;
    float floor_lb = thr;
    size_t nu = 0;

    order_by_fstar(ix->fstar, ns, thr, ord);
    /* The survivors go to ord[nu] as slots: nu <= i, so ord[i] was read. */
    for (size_t i = 0; i < ns; i++) {
        uint32_t at = ord[i];
        if (ix->fstar[at] < floor_lb)
            continue;
        if (i + PF_AHEAD < ns) {
            uint32_t t = ix->cands[ord[i + PF_AHEAD]];
            const char *nx = (const char *)(g->q8 + (size_t)t * qb);
            for (size_t off = 0; off < qb; off += 64)
                __builtin_prefetch(nx + off);
            __builtin_prefetch(&g->qscale[t]);
            __builtin_prefetch(&g->qerr[t]);
        }
        uint32_t s = ix->cands[at];
        int64_t dq = vec_dot_i8_i16(g->q8 + (size_t)s * qb, y16, ix->qdim);
        float approx = qg->muy + g->qscale[s] * sy * (float)dq;
        float err = g->qerr[s] * ewide + qg->efix;
        ix->quantized++;
        if (approx + err < floor_lb)
            continue;
        ord[nu] = s;
        ix->ubound[nu] = approx + err;
        ix->approx[nu] = approx;
        nu++;
        if (approx - err > floor_lb)
            floor_lb = approx - err;
    }
    /* Stage 4 in decreasing upper bound, so that it stops at the first
     * bound the best found beats (near-duplicates of the query come in
     * groups whose int8 bounds overlap; each of them is a 4-byte-per-
     * dimension row from memory, so the rows are fetched ahead). */
    size_t ne = 0;
    for (size_t i = 0; i < nu; i++)
        if (ix->ubound[i] >= floor_lb) {
            /* |x| |y| bounds the cosine too, and far tighter for a
             * duplicate of the query (the int8 bound can pass 1.04). */
            float nb = ix->xnorm[ord[i]] * ynorm * (1.0f + NORM_SLACK);
            ord[ne] = ord[i];
            ix->approx[ne] = ix->approx[i];
            ix->ubound[ne++] = ix->ubound[i] < nb ? ix->ubound[i] : nb;
        }
    sort_by_bound(ord, ix->ubound, ix->approx, ne);
    for (size_t i = 0; i < ne; i++) {
        if (*found && ix->ubound[i] <= *best + BEST_TOL)
            break;
        /* The second int8 level first, when a best is there to beat: it
         * rules out most of a group of near-duplicates at a quarter of the
         * bytes of the exact row. */
        uint32_t s2 = ord[i];
        if (*found) {
            int64_t dq2 = vec_dot_i8_i16(g->q8b + (size_t)s2 * qb, y16, ix->qdim);
            float a2 = ix->approx[i] + g->qscale2[s2] * sy * (float)dq2;
            if (a2 + g->qerr2[s2] * ewide + qg->efix <= *best + BEST_TOL)
                continue;
        }
        if (i + 1 < ne) {
            const char *nx = (const char *)(ix->vecs + (size_t)ord[i + 1] * ix->dim);
            for (size_t off = 0; off < ix->dim * sizeof(float); off += 64)
                __builtin_prefetch(nx + off);
        }
        uint32_t s = ord[i];
        ix->exact++;
        float d = vec_dot(ix->vecs + (size_t)s * ix->dim, q, ix->dim);
        if (d >= thr && (!*found || d > *best)) {
            *found = 1;
            *best = d;
            *best_s = s;
        }
    }
}

/* One query's search in progress: what it needs of the query for each
 * generation, its int16 form, and the best found so far. */
typedef struct {
    const float *q;
    qgen_t qg[2];       /* [0]: the new generation while re-centring, [1]: the current */
    int16_t *y16;       /* qdim */
    float sy, ewide, ynorm, floor, best;
    uint32_t best_s;
    int found;
} qstate_t;

/* Prepare query q (thr its threshold) for the parts lo/hi of the slots. */
static void query_setup(index_t *ix, const float *q, float thr, const size_t *lo, const size_t *hi,
                        int16_t *y16, qstate_t *st)
{
    const gen_t *parts[2] = { &ix->g[1 - ix->cur], &ix->g[ix->cur] };
    double yy = 0.0;
    for (uint32_t i = 0; i < ix->dim; i++)
        yy += (double)q[i] * q[i];
    float ey = 0.0f;
    st->q = q;
    st->y16 = y16;
    st->ynorm = nextafterf((float)sqrt(yy), INFINITY);
    /* The query in the sign codes' rotation (kept for query_for) and in
     * the int8 codes' (the same one where the sizes agree), to int16. */
    if (ix->code_words) {
        rotate(ix, q);
        memcpy(ix->qrot, ix->code_buf, CODE_BITS * sizeof *ix->qrot);
    }
    rotate_q(ix, q, ix->code_words != 0);
    st->sy = vec_quant_i16(ix->qbuf, ix->qdim, y16, &ey);
    /* ey, measured: vec_quant_i16 gives the worst case (every coordinate
     * half a step off), several times what the rounding really left. */
    double e2 = 0.0;
    for (uint32_t i = 0; i < ix->qdim; i++) {
        double e = (double)ix->qbuf[i] - (double)st->sy * y16[i];
        e2 += e * e;
    }
    if (st->sy > 0.0f)
        ey = nextafterf((float)(sqrt(e2) * (1.0 + 1e-6)), INFINITY);
    st->ewide = st->ynorm * 1.0001f + ey;
    st->floor = thr;
    st->found = 0;
    st->best = 0.0f;
    st->best_s = 0;
    for (int p = 0; p < 2; p++)
        if (lo[p] < hi[p])
            query_for(ix, parts[p], q, ey, &st->qg[p]);
}

/* Slots [s0, s0 + m) of part p for one query: stages 1 to 4, then the
 * query's threshold rises to the best found (the best can only be above
 * it). A pair at or above that raised threshold is dropped with no more
 * probability than at the original one, so the bound on missing the best
 * stands. */
static void scan_chunk(index_t *ix, qstate_t *st, int p, size_t s0, size_t m)
{
    size_t ns = filter_codes(ix, &st->qg[p], s0, m, st->floor);
    if (ns == 0)
        return;
    rerank(ix, &st->qg[p], st->q, st->y16, ns, st->floor, st->sy, st->ewide, st->ynorm,
           &st->found, &st->best_s, &st->best);
    if (st->found && st->best > st->floor)
        st->floor = st->best;
}

/* The staged search of every query in st[0..n), a chunk of slots at a
 * time (FIRST_CHUNK, then SCAN_CHUNK; newest first: the current
 * generation's part, then the re-coded one), so that a hit in one chunk
 * tightens every stage in the chunks after it. With several queries, each
 * chunk of codes is read from memory once and stays in cache while every
 * query scans it. */
static void scan_all(index_t *ix, qstate_t *st, size_t n, const size_t *lo, const size_t *hi)
{
    ix->candidates += ix->count * n;
    for (int p = 1; p >= 0; p--)
        for (size_t e = hi[p], m = FIRST_CHUNK, s0; e > lo[p]; e = s0, m = SCAN_CHUNK) {
            s0 = e - lo[p] > m ? e - m : lo[p];
            for (size_t j = 0; j < n; j++)
                scan_chunk(ix, &st[j], p, s0, e - s0);
        }
}

/* The parts of the slots each generation codes: [lo[0], hi[0]) the new one
 * while re-centring (empty otherwise), [lo[1], hi[1]) the current one. */
static void parts_of(const index_t *ix, size_t *lo, size_t *hi)
{
    size_t split = ix->recentring ? ix->recoded : 0;
    lo[0] = 0;
    hi[0] = split;
    lo[1] = split;
    hi[1] = ix->count;
}

/* A search's answer as index_search gives it: 1 with *id and *sim (the
 * cosine clamped to [threshold, 1]), or 0. Float rounding: the cosine of a
 * unit vector with itself can come out as 0.99999994, so a lookup of the
 * exact stored embedding at threshold 1 would miss; searches compare with
 * SIM_EPS of slack and report the similarity clamped: within rounding, it
 * met the threshold. */
static int answer(const index_t *ix, int found, uint32_t s, float best, float threshold,
                  uint64_t *id, float *sim)
{
    if (!found)
        return 0;
    if (id)
        *id = ix->ids[s];
    if (sim)
        *sim = best < threshold ? threshold : best > 1.0f ? 1.0f : best;
    return 1;
}

static int coded(const index_t *ix)
{
    return ix->on && ix->count >= ix->exact_below;
}

int index_search(index_t *ix, const float *unit, float threshold, uint64_t *id, float *sim)
{
    if (ix == NULL || unit == NULL)
        return 0;
    ix->searches++;
    if (ix->count == 0 || isnan(threshold))
        return 0;
    float thr = threshold - SIM_EPS;
    if (!coded(ix)) {
        uint32_t s = 0;
        float best = 0.0f;
        int found = search_exact(ix, unit, thr, &s, &best);
        return answer(ix, found, s, best, threshold, id, sim);
    }
    size_t lo[2], hi[2];
    qstate_t st;
    parts_of(ix, lo, hi);
    query_setup(ix, unit, thr, lo, hi, ix->y16, &st);
    scan_all(ix, &st, 1, lo, hi);
    return answer(ix, st.found, st.best_s, st.best, threshold, id, sim);
}

int index_search_batch(index_t *ix, const float *units, size_t n, float threshold, uint64_t *ids,
                       float *sims)
{
    qstate_t *st = NULL;
    int16_t *y16 = NULL;
    int hits = 0;

    if (ix == NULL || units == NULL || ids == NULL || sims == NULL)
        return 0;
    for (size_t j = 0; j < n; j++)
        ids[j] = 0;
    if (coded(ix) && n >= 2 && !isnan(threshold)) {
        st = malloc(n * sizeof *st);
        y16 = malloc(n * ix->qdim * sizeof *y16);
    }
    if (st == NULL || y16 == NULL) {
        /* Exact search, a batch of one, or no memory for the batch's
         * state: one query at a time. */
        for (size_t j = 0; j < n; j++)
            hits += index_search(ix, units + j * ix->dim, threshold, &ids[j], &sims[j]);
        free(st);
        free(y16);
        return hits;
    }
    size_t lo[2], hi[2];
    float thr = threshold - SIM_EPS;
    parts_of(ix, lo, hi);
    for (size_t j = 0; j < n; j++)
        query_setup(ix, units + j * ix->dim, thr, lo, hi, y16 + j * ix->qdim, &st[j]);
    scan_all(ix, st, n, lo, hi);
    ix->searches += n;
    for (size_t j = 0; j < n; j++)
        hits += answer(ix, st[j].found, st[j].best_s, st[j].best, threshold, &ids[j], &sims[j]);
    free(st);
    free(y16);
    return hits;
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

static uint64_t gen_bytes(const index_t *ix, const gen_t *g)
{
    if (g->mean == NULL)
        return 0;
    /* q8, q8b, mux, nx, qscale, qerr, qscale2, qerr2 */
    uint64_t per = 2 * (uint64_t)ix->qdim + 6 * sizeof(float);
    if (ix->code_words)
        per += (PRE_WORDS + REC_WORDS) * sizeof(uint64_t);
    return ix->cap * per + (uint64_t)(ix->dim + ix->qdim) * sizeof(float) +
           (ix->code_words ? (uint64_t)ix->dpad * sizeof(float) : 0);
}

void index_get_stats(const index_t *ix, index_stats_t *st)
{
    memset(st, 0, sizeof *st);
    st->count = ix->count;
    st->coded = ix->on;
    st->searches = ix->searches;
    st->candidates = ix->candidates;
    st->filtered = ix->filtered;
    st->recentres = ix->recentres;
    st->recentring = ix->recentring;
    /* An exact search drops nothing: only a search through the codes has
     * the sign-code stages' loss. */
    st->drop_bound = coded(ix) && ix->code_words ? cuts.drop_bound : 0.0;
    uint64_t c = ix->cap, by = sizeof *ix;
    by += c * ((uint64_t)ix->dim * sizeof(float) + sizeof *ix->ids + sizeof *ix->xnorm);
    by += ix->idmap.cap * sizeof *ix->idmap.ents;
    if (ix->on) {
        by += gen_bytes(ix, &ix->g[0]) + gen_bytes(ix, &ix->g[1]);
        by += (uint64_t)ix->dim * sizeof(double);                  /* sum */
        by += (uint64_t)ix->qdim * (sizeof(int16_t) + 2 * sizeof(float)); /* y16, qbuf, qres */
        if (ix->qdiag != ix->code_diag)
            by += (uint64_t)3 * ix->qdim * sizeof(float);
        by += (uint64_t)SCAN_CHUNK * 5 * sizeof(uint32_t); /* search scratch */
        if (ix->code_words)
            by += ((uint64_t)4 * ix->dpad + CODE_BITS) * sizeof(float); /* diagonals, scratch */
    }
    st->bytes = by;
}

const float *index_center(const index_t *ix)
{
    return ix->on ? ix->g[ix->cur].mean : NULL;
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
    if (ix->on)
        codes_off(ix);
    return codes_on(ix, center);
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
