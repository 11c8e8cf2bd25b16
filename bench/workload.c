/* workload.c - synthetic task embeddings (see workload.h).
 *
 * Why these shares: with a^2 in [0.30, 0.45] two items of different
 * super-topics have cosine ~ a_i a_j, 0.30 to 0.45; of one super-topic
 * (centres share 0.35 of their direction) ~ 0.35 to 0.55; of one topic
 * (+ b_i b_j, b^2 in [0.15, 0.30]) ~ 0.45 to 0.75, so ordinary neighbours
 * stay below a threshold of 0.8 while hard negatives (0.70-0.79) sit among
 * the closest of them. The mean direction holds a few "massive activation"
 * coordinates, as LLM hidden states do, and the content directions (topic
 * centres, noise) have a variance that decays over the coordinates.
 *
 * Randomness: splitmix64 keyed by (seed, stream, index), so any vector can be
 * made on its own. Normal variates are the sum of four 16-bit uniforms,
 * rescaled (Irwin-Hall): close enough to Gaussian for projections and cheap
 * enough for 10^9 values.
 */
#include "workload.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N_SPIKES 8          /* massive-activation coordinates of the mean */
#define SPIKE_SHARE 0.5     /* share of the mean's energy in them */

enum {
    S_MEAN = 1, S_SUPER, S_TOPIC, S_ITEM, S_NOISE, S_TWIN, S_TWIN_NOISE,
    S_QUERY, S_QUERY_NOISE, S_QUERY_ITEM, S_SPIKE,
};

struct workload {
    wl_params_t p;
    float *prof;        /* dim: noise scale of each coordinate */
    float *mean;        /* dim, unit */
    float *topics;      /* n_topics * dim, unit, orthogonal to mean */
};

/* ---- randomness ---- */

typedef struct {
    uint64_t x;
} rng_t;

static uint64_t rng_next(rng_t *r)
{
    uint64_t z = (r->x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static rng_t rng_for(const wl_t *w, uint64_t stream, uint64_t index)
{
    rng_t r = { w->p.seed ^ (stream * 0xd1b54a32d192ed03ull) };
    r.x = rng_next(&r) ^ (index * 0x8cb92ba72f3d8dd7ull);
    (void)rng_next(&r);
    return r;
}

/* Uniform in [0, 1). */
static double rng_u01(rng_t *r)
{
    return (double)(rng_next(r) >> 11) * 0x1p-53;
}

/* Approximately standard normal: Irwin-Hall of 4 uniforms (variance 1/3). */
static float rng_gauss(rng_t *r)
{
    uint64_t x = rng_next(r);
    uint32_t s = (uint32_t)(x & 0xffff) + (uint32_t)((x >> 16) & 0xffff) +
                 (uint32_t)((x >> 32) & 0xffff) + (uint32_t)(x >> 48);
    return ((float)s * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
}

/* ---- vectors ---- */

double wl_dot(const float *a, const float *b, uint32_t dim)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    uint32_t i = 0;
    for (; i + 4 <= dim; i += 4) {
        s0 += (double)a[i] * b[i];
        s1 += (double)a[i + 1] * b[i + 1];
        s2 += (double)a[i + 2] * b[i + 2];
        s3 += (double)a[i + 3] * b[i + 3];
    }
    for (; i < dim; i++) s0 += (double)a[i] * b[i];
    return s0 + s1 + s2 + s3;
}

static void normalize(float *v, uint32_t dim)
{
    double n = sqrt(wl_dot(v, v, dim));
    float inv = n > 0 ? (float)(1.0 / n) : 0.0f;
    for (uint32_t i = 0; i < dim; i++) v[i] *= inv;
}

/* Noise shaped by the coordinate profile, unit length. */
static void shaped_noise(const wl_t *w, rng_t *r, float *out)
{
    for (uint32_t i = 0; i < w->p.dim; i++) out[i] = rng_gauss(r) * w->prof[i];
    normalize(out, w->p.dim);
}

/* v -= (v.u) u for unit u, then normalise. */
static void orthonormalize(float *v, const float *u, uint32_t dim)
{
    float c = (float)wl_dot(v, u, dim);
    for (uint32_t i = 0; i < dim; i++) v[i] -= c * u[i];
    normalize(v, dim);
}

void wl_params_default(wl_params_t *p, uint32_t dim, uint64_t seed)
{
    *p = (wl_params_t){
        .dim = dim, .seed = seed, .n_super = 32, .n_topics = 1024,
        .mean_lo = 0.33f, .mean_hi = 0.50f, .topic_lo = 0.12f, .topic_hi = 0.27f,
        .super_share = 0.35f, .twin_frac = 0.05f,
        .near_lo = 0.80f, .near_hi = 0.99f, .hard_lo = 0.70f, .hard_hi = 0.79f,
    };
}

wl_t *wl_new(const wl_params_t *p)
{
    if (!p || p->dim < 16 || p->n_topics == 0 || p->n_super == 0 ||
        p->mean_hi + p->topic_hi >= 1.0f || p->mean_lo < 0 || p->topic_lo < 0 ||
        p->mean_lo > p->mean_hi || p->topic_lo > p->topic_hi ||
        p->super_share < 0 || p->super_share > 1 || p->twin_frac < 0 || p->twin_frac >= 1)
        return NULL;
    wl_t *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->p = *p;
    uint32_t d = p->dim;
    w->prof = malloc(d * sizeof(float));
    w->mean = malloc(d * sizeof(float));
    w->topics = malloc((size_t)p->n_topics * d * sizeof(float));
    float *sup = malloc((size_t)p->n_super * d * sizeof(float));
    if (!w->prof || !w->mean || !w->topics || !sup) {
        free(sup);
        wl_free(w);
        return NULL;
    }
    /* Variance 1/(1 + k/k0): effective rank about half the dimension. */
    double k0 = d / 16.0;
    for (uint32_t k = 0; k < d; k++) w->prof[k] = (float)(1.0 / sqrt(1.0 + k / k0));

    rng_t r = rng_for(w, S_MEAN, 0);
    shaped_noise(w, &r, w->mean);
    rng_t rs = rng_for(w, S_SPIKE, 0);
    double spike = sqrt(SPIKE_SHARE / (1.0 - SPIKE_SHARE) / N_SPIKES);
    for (int k = 0; k < N_SPIKES; k++) {
        uint32_t at = (uint32_t)(rng_next(&rs) % d);
        w->mean[at] += (float)((rng_next(&rs) & 1 ? 1 : -1) * spike);
    }
    normalize(w->mean, d);

    for (uint32_t s = 0; s < p->n_super; s++) {
        r = rng_for(w, S_SUPER, s);
        shaped_noise(w, &r, sup + (size_t)s * d);
        orthonormalize(sup + (size_t)s * d, w->mean, d);
    }
    float a = sqrtf(p->super_share), b = sqrtf(1.0f - p->super_share);
    for (uint32_t t = 0; t < p->n_topics; t++) {
        float *c = w->topics + (size_t)t * d;
        r = rng_for(w, S_TOPIC, t);
        shaped_noise(w, &r, c);
        orthonormalize(c, w->mean, d);
        const float *sv = sup + (size_t)(t % p->n_super) * d;
        for (uint32_t i = 0; i < d; i++) c[i] = a * sv[i] + b * c[i];
        normalize(c, d);
    }
    free(sup);
    return w;
}

void wl_free(wl_t *w)
{
    if (!w) return;
    free(w->prof);
    free(w->mean);
    free(w->topics);
    free(w);
}

uint32_t wl_dim(const wl_t *w)
{
    return w->p.dim;
}

/* Skewed topic popularity: topic floor(T u^2), so topic 0 holds ~3% of the
 * items with 1024 topics, and the ten largest ~10%. */
static uint32_t draw_topic(const wl_t *w, rng_t *r)
{
    double u = rng_u01(r);
    uint32_t t = (uint32_t)(w->p.n_topics * u * u);
    return t < w->p.n_topics ? t : w->p.n_topics - 1;
}

/* An ordinary item of topic t: a m + b t + c z, normalised. */
static void item(const wl_t *w, rng_t *r, uint32_t topic, float *out)
{
    uint32_t d = w->p.dim;
    double a2 = w->p.mean_lo + (w->p.mean_hi - w->p.mean_lo) * rng_u01(r);
    double b2 = w->p.topic_lo + (w->p.topic_hi - w->p.topic_lo) * rng_u01(r);
    float a = (float)sqrt(a2), b = (float)sqrt(b2), c = (float)sqrt(1.0 - a2 - b2);
    shaped_noise(w, r, out);
    const float *t = w->topics + (size_t)topic * d;
    for (uint32_t i = 0; i < d; i++) out[i] = a * w->mean[i] + b * t[i] + c * out[i];
    normalize(out, d);
}

/* out = cos*u + sqrt(1-cos^2)*v', v' = the part of y orthogonal to u (unit).
 * cos(out, u) = cos exactly, up to float rounding. y is overwritten. */
static void at_cosine(const float *u, float *y, double cosv, float *out, uint32_t d)
{
    double uy = wl_dot(u, y, d), n2 = 0;
    for (uint32_t i = 0; i < d; i++) {
        y[i] = (float)((double)y[i] - uy * u[i]);
        n2 += (double)y[i] * y[i];
    }
    double s = sqrt(1.0 - cosv * cosv) / sqrt(n2);
    for (uint32_t i = 0; i < d; i++) out[i] = (float)(cosv * u[i] + s * y[i]);
    normalize(out, d);
}

static int is_twin(const wl_t *w, uint64_t i)
{
    if (i == 0 || w->p.twin_frac <= 0) return 0;
    rng_t r = rng_for(w, S_TWIN, i);
    return rng_u01(&r) < w->p.twin_frac;
}

int wl_base_is_twin(const wl_t *w, uint64_t i, uint64_t *src)
{
    if (!is_twin(w, i)) return 0;
    rng_t r = rng_for(w, S_TWIN, i);
    (void)rng_next(&r);
    uint64_t j = rng_next(&r) % i;
    while (is_twin(w, j)) j--;  /* entry 0 is never a twin */
    if (src) *src = j;
    return 1;
}

static uint32_t primary_topic(const wl_t *w, uint64_t i)
{
    rng_t r = rng_for(w, S_ITEM, i);
    return draw_topic(w, &r);
}

uint32_t wl_base_topic(const wl_t *w, uint64_t i)
{
    uint64_t src;
    return primary_topic(w, wl_base_is_twin(w, i, &src) ? src : i);
}

static void primary(const wl_t *w, uint64_t i, float *out)
{
    rng_t r = rng_for(w, S_ITEM, i);
    uint32_t t = draw_topic(w, &r);
    item(w, &r, t, out);
}

/* A near-duplicate or hard negative of u: the deviation is a fresh item of
 * u's topic (so the result still looks like an embedding of that topic),
 * made orthogonal to u. */
static void variant_of(const wl_t *w, const float *u, uint32_t topic, rng_t *r, double cosv,
                       float *out, float *scratch)
{
    item(w, r, topic, scratch);
    at_cosine(u, scratch, cosv, out, w->p.dim);
}

void wl_base(const wl_t *w, uint64_t i, float *out)
{
    uint64_t src;
    if (!wl_base_is_twin(w, i, &src)) {
        primary(w, i, out);
        return;
    }
    uint32_t d = w->p.dim;
    float *u = malloc(2 * (size_t)d * sizeof(float));
    if (!u) abort();
    primary(w, src, u);
    rng_t r = rng_for(w, S_TWIN_NOISE, i);
    double c = w->p.near_lo + (w->p.near_hi - w->p.near_lo) * rng_u01(&r);
    variant_of(w, u, primary_topic(w, src), &r, c, out, u + d);
    free(u);
}

wl_kind_t wl_query_kind(const wl_t *w, uint64_t q)
{
    /* Each block of 4 queries holds N, N, H, U in a random rotation and
     * order, so any prefix of 4k queries has exact proportions. */
    static const wl_kind_t pattern[4][4] = {
        { WL_NEAR, WL_NEAR, WL_HARD, WL_UNRELATED },
        { WL_NEAR, WL_HARD, WL_NEAR, WL_UNRELATED },
        { WL_HARD, WL_NEAR, WL_UNRELATED, WL_NEAR },
        { WL_UNRELATED, WL_NEAR, WL_HARD, WL_NEAR },
    };
    rng_t r = rng_for(w, S_QUERY, q / 4);
    uint64_t x = rng_next(&r);
    return pattern[x & 3][(q + (x >> 2)) & 3];
}

const char *wl_kind_name(wl_kind_t k)
{
    switch (k) {
    case WL_NEAR: return "near-dup";
    case WL_HARD: return "hard-neg";
    case WL_UNRELATED: return "unrelated";
    default: return "?";
    }
}

void wl_query(const wl_t *w, uint64_t n_base, uint64_t q, float *out, float *scratch,
              wl_query_info_t *info)
{
    wl_kind_t kind = wl_query_kind(w, q);
    wl_query_info_t inf = { kind, 0, 0.0f };
    rng_t r = rng_for(w, S_QUERY_NOISE, q);
    (void)rng_next(&r);

    if (kind == WL_UNRELATED || n_base == 0) {
        inf.kind = WL_UNRELATED;
        rng_t ri = rng_for(w, S_QUERY_ITEM, q);
        item(w, &ri, draw_topic(w, &ri), out);
    } else {
        uint64_t b = rng_next(&r) % n_base;
        double lo = kind == WL_NEAR ? w->p.near_lo : w->p.hard_lo;
        double hi = kind == WL_NEAR ? w->p.near_hi : w->p.hard_hi;
        double c = lo + (hi - lo) * rng_u01(&r);
        float *u = malloc((size_t)w->p.dim * sizeof(float));
        if (!u) abort();
        wl_base(w, b, u);
        variant_of(w, u, wl_base_topic(w, b), &r, c, out, scratch);
        free(u);
        inf.base = b;
        inf.target = (float)c;
    }
    if (info) *info = inf;
}

/* ---- exact search ---- */

#define QB 8        /* queries per block */
#define RB 64       /* base rows per block */

static float dot4(const float *a, const float *b, uint32_t d)
{
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    uint32_t i = 0;
    for (; i + 4 <= d; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < d; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

void wl_exact_best(const float *base, uint64_t n, uint32_t dim, const float *queries, size_t nq,
                   int64_t *best, float *sim)
{
    for (size_t i = 0; i < nq; i++) {
        best[i] = -1;
        sim[i] = -INFINITY;
    }
    /* Blocks of rows x queries keep a block of rows in cache for QB queries. */
    for (uint64_t r0 = 0; r0 < n; r0 += RB) {
        uint64_t r1 = r0 + RB < n ? r0 + RB : n;
        for (size_t q0 = 0; q0 < nq; q0 += QB) {
            size_t q1 = q0 + QB < nq ? q0 + QB : nq;
            for (uint64_t r = r0; r < r1; r++)
                for (size_t q = q0; q < q1; q++) {
                    float s = dot4(base + r * dim, queries + q * dim, dim);
                    if (s > sim[q]) {
                        sim[q] = s;
                        best[q] = (int64_t)r;
                    }
                }
        }
    }
}
