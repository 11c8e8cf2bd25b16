/* prototypes.c - online and batch spherical k-means over unit vectors.
 *
 * A prototype keeps the sum of its members in double (adds and removes over
 * a long life would drift in float) and its centroid, the normalised sum, in
 * float for the dot products. The batch refit seeds with k-means++ on cosine
 * distance and runs Lloyd iterations until no assignment changes (at most
 * REFIT_ITERS); a sample stands for all members by scaling its counts.
 */
#include "prototypes.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mix64.h"
#include "simcache.h"
#include "vec.h"

#define REFIT_ITERS 12

struct proto_set {
    uint32_t dim, k, count;
    uint64_t version;
    float *cent;        /* k rows of dim floats: unit centroids */
    double *sums;       /* k rows of dim doubles: member sums */
    uint64_t *counts;   /* k */
    float *sims;        /* k: scratch for dot products */
};

proto_set_t *proto_set_new(uint32_t dim, uint32_t k)
{
    if (dim == 0 || dim > SIMCACHE_MAX_DIM || k == 0 || k > PROTO_MAX_K) return NULL;
    proto_set_t *ps = calloc(1, sizeof *ps);
    if (!ps) return NULL;
    ps->dim = dim;
    ps->k = k;
    ps->cent = calloc((size_t)k * dim, sizeof *ps->cent);
    ps->sums = calloc((size_t)k * dim, sizeof *ps->sums);
    ps->counts = calloc(k, sizeof *ps->counts);
    ps->sims = calloc(k, sizeof *ps->sims);
    if (!ps->cent || !ps->sums || !ps->counts || !ps->sims) {
        proto_set_free(ps);
        return NULL;
    }
    return ps;
}

void proto_set_free(proto_set_t *ps)
{
    if (!ps) return;
    free(ps->cent);
    free(ps->sums);
    free(ps->counts);
    free(ps->sims);
    free(ps);
}

uint32_t proto_dim(const proto_set_t *ps) { return ps->dim; }
uint32_t proto_k(const proto_set_t *ps) { return ps->k; }
uint32_t proto_count(const proto_set_t *ps) { return ps->count; }
uint64_t proto_version(const proto_set_t *ps) { return ps->version; }

uint64_t proto_members(const proto_set_t *ps)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < ps->count; i++) n += ps->counts[i];
    return n;
}

const float *proto_centroid(const proto_set_t *ps, uint32_t i)
{
    return i < ps->count ? ps->cent + (size_t)i * ps->dim : NULL;
}

uint64_t proto_weight(const proto_set_t *ps, uint32_t i)
{
    return i < ps->count ? ps->counts[i] : 0;
}

float proto_best(const proto_set_t *ps, const float *unit, uint32_t *which)
{
    if (ps->count == 0) return -2.0f;
    vec_dot_many(ps->cent, ps->count, unit, ps->dim, ps->sims);
    uint32_t b = 0;
    for (uint32_t i = 1; i < ps->count; i++)
        if (ps->sims[i] > ps->sims[b]) b = i;
    if (which) *which = b;
    return ps->sims[b];
}

/* Centroid i from its sum; a sum that cancelled to (nearly) nothing keeps
 * the old direction rather than dividing by zero. */
static void renorm(proto_set_t *ps, uint32_t i)
{
    const double *s = ps->sums + (size_t)i * ps->dim;
    double nn = 0;
    for (uint32_t j = 0; j < ps->dim; j++) nn += s[j] * s[j];
    if (!(nn > 1e-18)) return;
    double inv = 1.0 / sqrt(nn);
    float *c = ps->cent + (size_t)i * ps->dim;
    for (uint32_t j = 0; j < ps->dim; j++) c[j] = (float)(s[j] * inv);
}

static void drop(proto_set_t *ps, uint32_t i)
{
    uint32_t last = ps->count - 1;
    if (i != last) {
        memcpy(ps->cent + (size_t)i * ps->dim, ps->cent + (size_t)last * ps->dim,
               ps->dim * sizeof *ps->cent);
        memcpy(ps->sums + (size_t)i * ps->dim, ps->sums + (size_t)last * ps->dim,
               ps->dim * sizeof *ps->sums);
        ps->counts[i] = ps->counts[last];
    }
    ps->count = last;
}

void proto_add(proto_set_t *ps, const float *unit)
{
    uint32_t b = 0;
    float best = proto_best(ps, unit, &b);
    ps->version++;
    if (ps->count < ps->k && best < PROTO_OPEN_COS) {
        b = ps->count++;
        double *s = ps->sums + (size_t)b * ps->dim;
        for (uint32_t j = 0; j < ps->dim; j++) s[j] = unit[j];
        memcpy(ps->cent + (size_t)b * ps->dim, unit, ps->dim * sizeof *unit);
        ps->counts[b] = 1;
        return;
    }
    double *s = ps->sums + (size_t)b * ps->dim;
    for (uint32_t j = 0; j < ps->dim; j++) s[j] += unit[j];
    ps->counts[b]++;
    renorm(ps, b);
}

void proto_remove(proto_set_t *ps, const float *unit)
{
    uint32_t b = 0;
    if (proto_best(ps, unit, &b) < -1.5f) return;
    ps->version++;
    if (ps->counts[b] <= 1) {
        drop(ps, b);
        return;
    }
    double *s = ps->sums + (size_t)b * ps->dim;
    for (uint32_t j = 0; j < ps->dim; j++) s[j] -= unit[j];
    ps->counts[b]--;
    renorm(ps, b);
}

/* ---- batch refit ---- */

static double rand01(uint64_t *st) { return (double)(splitmix64(st) >> 11) * 0x1p-53; }

typedef struct {
    uint32_t dim, k;
    float *cent;        /* k*dim */
    double *sum;        /* k*dim */
    uint64_t *cnt;      /* k */
    uint32_t *assign;   /* n */
    float *best;        /* n: cosine to the assigned centroid */
    float *sims;        /* k */
} fit_t;

static void fit_free(fit_t *f)
{
    free(f->cent);
    free(f->sum);
    free(f->cnt);
    free(f->assign);
    free(f->best);
    free(f->sims);
}

/* Greedy k-means++ on cosine distance (1 - cos): each next seed is the best
 * of a few candidates drawn with probability proportional to their squared
 * distance to the nearest seed so far (the best lowers that potential most),
 * which rarely puts two seeds in one cluster. Returns how many seeds were
 * found (fewer than k when the vectors hold fewer distinct directions). */
static uint32_t seed_centres(fit_t *f, const float *units, size_t n, uint64_t *rng)
{
    uint32_t trials = 2;
    for (uint32_t k = f->k; k > 1; k /= 2) trials++;   /* 2 + log2 k */
    size_t first = (size_t)(splitmix64(rng) % n);
    memcpy(f->cent, units + first * f->dim, f->dim * sizeof(float));
    for (size_t i = 0; i < n; i++) f->best[i] = vec_dot(units + i * f->dim, f->cent, f->dim);
    uint32_t have = 1;
    while (have < f->k) {
        double total = 0;
        for (size_t i = 0; i < n; i++) {
            double d = 1.0 - f->best[i];
            if (d > 0) total += d * d;
        }
        if (!(total > 1e-12)) break;
        double best_pot = INFINITY;
        size_t best_pick = 0;
        for (uint32_t t = 0; t < trials; t++) {
            double r = rand01(rng) * total;
            size_t pick = n - 1;
            for (size_t i = 0; i < n; i++) {
                double d = 1.0 - f->best[i];
                if (d <= 0) continue;
                r -= d * d;
                if (r <= 0) {
                    pick = i;
                    break;
                }
            }
            double pot = 0;
            const float *c = units + pick * f->dim;
            for (size_t i = 0; i < n; i++) {
                float s = vec_dot(units + i * f->dim, c, f->dim);
                double d = 1.0 - (s > f->best[i] ? s : f->best[i]);
                if (d > 0) pot += d * d;
            }
            if (pot < best_pot) {
                best_pot = pot;
                best_pick = pick;
            }
        }
        float *c = f->cent + (size_t)have * f->dim;
        memcpy(c, units + best_pick * f->dim, f->dim * sizeof(float));
        have++;
        for (size_t i = 0; i < n; i++) {
            float s = vec_dot(units + i * f->dim, c, f->dim);
            if (s > f->best[i]) f->best[i] = s;
        }
    }
    return have;
}

/* One Lloyd round: assign every vector, then recompute sums and centroids.
 * Returns how many assignments changed. */
static size_t lloyd(fit_t *f, const float *units, size_t n, uint32_t k, int first)
{
    size_t changed = 0;
    for (size_t i = 0; i < n; i++) {
        vec_dot_many(f->cent, k, units + i * f->dim, f->dim, f->sims);
        uint32_t b = 0;
        for (uint32_t c = 1; c < k; c++)
            if (f->sims[c] > f->sims[b]) b = c;
        if (first || f->assign[i] != b) changed++;
        f->assign[i] = b;
        f->best[i] = f->sims[b];
    }
    memset(f->sum, 0, (size_t)k * f->dim * sizeof *f->sum);
    memset(f->cnt, 0, k * sizeof *f->cnt);
    for (size_t i = 0; i < n; i++) {
        double *s = f->sum + (size_t)f->assign[i] * f->dim;
        const float *u = units + i * f->dim;
        for (uint32_t j = 0; j < f->dim; j++) s[j] += u[j];
        f->cnt[f->assign[i]]++;
    }
    for (uint32_t c = 0; c < k; c++) {
        if (f->cnt[c] == 0) {
            /* An empty cluster takes the vector its centroid explains worst,
             * which then leaves its old cluster. */
            size_t worst = 0;
            for (size_t i = 1; i < n; i++)
                if (f->best[i] < f->best[worst]) worst = i;
            if (f->cnt[f->assign[worst]] <= 1) continue;
            const float *u = units + worst * f->dim;
            double *from = f->sum + (size_t)f->assign[worst] * f->dim;
            double *to = f->sum + (size_t)c * f->dim;
            for (uint32_t j = 0; j < f->dim; j++) {
                from[j] -= u[j];
                to[j] = u[j];
            }
            f->cnt[f->assign[worst]]--;
            f->cnt[c] = 1;
            f->assign[worst] = c;
            f->best[worst] = 1.0f;
            changed++;
        }
    }
    for (uint32_t c = 0; c < k; c++) {
        if (f->cnt[c] == 0) continue;
        const double *s = f->sum + (size_t)c * f->dim;
        double nn = 0;
        for (uint32_t j = 0; j < f->dim; j++) nn += s[j] * s[j];
        if (!(nn > 1e-18)) continue;
        double inv = 1.0 / sqrt(nn);
        float *cc = f->cent + (size_t)c * f->dim;
        for (uint32_t j = 0; j < f->dim; j++) cc[j] = (float)(s[j] * inv);
    }
    return changed;
}

int proto_refit(proto_set_t *ps, const float *units, size_t n, uint64_t total, uint64_t seed)
{
    if (n == 0) {
        ps->count = 0;
        ps->version++;
        return 0;
    }
    if (total < n) total = n;
    fit_t f = { .dim = ps->dim, .k = ps->k < n ? ps->k : (uint32_t)n };
    f.cent = malloc((size_t)f.k * f.dim * sizeof *f.cent);
    f.sum = malloc((size_t)f.k * f.dim * sizeof *f.sum);
    f.cnt = malloc(f.k * sizeof *f.cnt);
    f.assign = malloc(n * sizeof *f.assign);
    f.best = malloc(n * sizeof *f.best);
    f.sims = malloc(f.k * sizeof *f.sims);
    if (!f.cent || !f.sum || !f.cnt || !f.assign || !f.best || !f.sims) {
        fit_free(&f);
        return -ENOMEM;
    }
    uint64_t rng = seed;
    uint32_t k = seed_centres(&f, units, n, &rng);
    for (int it = 0; it < REFIT_ITERS; it++)
        if (lloyd(&f, units, n, k, it == 0) == 0 && it > 0) break;

    /* Counts scaled from the sample to all members: floor of the share, the
     * rounding remainder to the largest cluster, never below 1. */
    uint64_t given = 0;
    uint32_t largest = 0, out = 0;
    for (uint32_t c = 0; c < k; c++) {
        if (f.cnt[c] == 0) continue;
        uint64_t scaled = f.cnt[c] * total / n;
        if (scaled == 0) scaled = 1;
        const double *s = f.sum + (size_t)c * f.dim;
        double *dst = ps->sums + (size_t)out * ps->dim;
        /* Mean member times the scaled count estimates the true sum, so later
         * online adds and removes weigh against the right mass. */
        double scale = (double)scaled / (double)f.cnt[c];
        for (uint32_t j = 0; j < f.dim; j++) dst[j] = s[j] * scale;
        memcpy(ps->cent + (size_t)out * ps->dim, f.cent + (size_t)c * f.dim, f.dim * sizeof(float));
        ps->counts[out] = scaled;
        if (scaled > ps->counts[largest]) largest = out;
        given += scaled;
        out++;
    }
    if (given < total && out) ps->counts[largest] += total - given;
    ps->count = out;
    ps->version++;
    fit_free(&f);
    return 0;
}
