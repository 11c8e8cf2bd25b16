/* test_vec.c - vec_normalize validation, dot products against a double
 * reference, and agreement of the AVX2 and plain C variants. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "simcache.h"
#include "vec.h"

static uint64_t rng_state = 12345;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static float rnd_f(void)
{
    return (float)((double)(rnd() >> 11) * 0x1p-52 - 1.0);
}

static void fill(float *v, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        v[i] = rnd_f();
}

/* Every test runs once per variant the machine has. */
static const int variants[] = { 0, 1 };

static void normalize_rejects_nan(void **state)
{
    (void)state;
    float v[5] = { 1, 2, NAN, 4, 5 }, out[5] = { 7, 7, 7, 7, 7 };
    assert_int_equal(vec_normalize(v, 5, out), SIMCACHE_EEMBED);
    assert_true(out[0] == 7.0f); /* untouched on error */
    v[2] = -NAN;
    assert_int_equal(vec_normalize(v, 5, out), SIMCACHE_EEMBED);
}

static void normalize_rejects_inf(void **state)
{
    (void)state;
    float v[3] = { 1, INFINITY, 0 }, out[3];
    assert_int_equal(vec_normalize(v, 3, out), SIMCACHE_EEMBED);
    v[1] = -INFINITY;
    assert_int_equal(vec_normalize(v, 3, out), SIMCACHE_EEMBED);
    v[1] = 0;
    v[2] = INFINITY; /* last element, past any SIMD block */
    assert_int_equal(vec_normalize(v, 3, out), SIMCACHE_EEMBED);
}

static void normalize_rejects_zero_vector(void **state)
{
    (void)state;
    float v[17] = { 0 }, out[17];
    assert_int_equal(vec_normalize(v, 17, out), SIMCACHE_EEMBED);
    v[3] = -0.0f;
    assert_int_equal(vec_normalize(v, 17, out), SIMCACHE_EEMBED);
    assert_int_equal(vec_normalize(v, 0, out), SIMCACHE_EEMBED);
}

static void normalize_rejects_denormal_only(void **state)
{
    (void)state;
    float v[64], out[64];
    for (int i = 0; i < 64; i++)
        v[i] = (i % 2 ? -1.0f : 1.0f) * FLT_MIN / 2.0f;
    assert_int_equal(vec_normalize(v, 64, out), SIMCACHE_EEMBED);
    memset(v, 0, sizeof v);
    v[10] = FLT_TRUE_MIN;
    assert_int_equal(vec_normalize(v, 64, out), SIMCACHE_EEMBED);
    /* One normal component is enough. */
    v[11] = FLT_MIN;
    assert_int_equal(vec_normalize(v, 64, out), 0);
    assert_float_equal(out[11], 1.0f, 1e-6);
    /* An output component that would be subnormal is written as 0. */
    v[11] = 1e30f;
    v[10] = 1e-10f;
    assert_int_equal(vec_normalize(v, 64, out), 0);
    assert_true(out[10] == 0.0f);
}

static void normalize_huge_values_do_not_overflow(void **state)
{
    (void)state;
    float v[4] = { FLT_MAX, -FLT_MAX, FLT_MAX, FLT_MAX }, out[4];
    assert_int_equal(vec_normalize(v, 4, out), 0);
    for (int i = 0; i < 4; i++)
        assert_float_equal(fabsf(out[i]), 0.5f, 1e-6);
    assert_true(out[1] < 0);

    /* Norm above FLT_MAX in a long vector, and mixed magnitudes. */
    uint32_t n = 16384;
    float *w = malloc(n * sizeof *w);
    for (uint32_t i = 0; i < n; i++)
        w[i] = i % 3 ? 3e38f : 1.0f;
    assert_int_equal(vec_normalize(w, n, w), 0); /* in place */
    double ss = 0;
    for (uint32_t i = 0; i < n; i++) {
        assert_true(isfinite(w[i]));
        ss += (double)w[i] * w[i];
    }
    assert_float_equal(ss, 1.0, 1e-5);
    free(w);
}

static void normalize_gives_unit_length(void **state)
{
    (void)state;
    for (uint32_t dim = 1; dim < 300; dim += 7) {
        float *v = malloc(dim * sizeof *v), *o = malloc(dim * sizeof *o);
        fill(v, dim);
        v[0] = 0.5f; /* never all zero */
        for (uint32_t i = 0; i < dim; i++)
            v[i] *= 1e-30f; /* tiny but normal: still fine */
        assert_int_equal(vec_normalize(v, dim, o), 0);
        double ss = 0;
        for (uint32_t i = 0; i < dim; i++)
            ss += (double)o[i] * o[i];
        assert_float_equal(ss, 1.0, 1e-6);
        free(v);
        free(o);
    }
}

static double ref_dot(const float *a, const float *b, uint32_t n, double *mag)
{
    double s = 0, m = 0;
    for (uint32_t i = 0; i < n; i++) {
        s += (double)a[i] * b[i];
        m += fabs((double)a[i] * b[i]);
    }
    *mag = m;
    return s;
}

static void dot_matches_double_reference(void **state)
{
    (void)state;
    const uint32_t maxd = 4099;
    float *a = malloc(maxd * sizeof *a), *b = malloc(maxd * sizeof *b);
    fill(a, maxd);
    fill(b, maxd);
    for (size_t v = 0; v < 2; v++) {
        vec_force_scalar(variants[v]);
        for (uint32_t dim = 1; dim <= maxd; dim++) {
            /* Fresh offsets so alignment varies too. */
            uint32_t off = dim % 5;
            uint32_t n = dim - (dim > off ? off : 0);
            double mag, ref = ref_dot(a + (dim - n), b, n, &mag);
            float got = vec_dot(a + (dim - n), b, n);
            /* Worst-case float summation error for the deepest chain the
             * kernels build (n/8 terms per lane plus the reductions). */
            double tol = (n / 8.0 + 16.0) * FLT_EPSILON * mag + 1e-30;
            if (fabs(got - ref) > tol)
                fail_msg("%s dim %u: got %.9g want %.9g (tol %.3g)", vec_impl(), n, got,
                         ref, tol);
        }
    }
    vec_force_scalar(0);
    free(a);
    free(b);
}

static void dot_many_agrees_with_dot(void **state)
{
    (void)state;
    const uint32_t dims[] = { 1, 7, 8, 9, 31, 32, 33, 255, 256, 384, 1000, 2048, 4099 };
    for (size_t v = 0; v < 2; v++) {
        vec_force_scalar(variants[v]);
        for (size_t k = 0; k < sizeof dims / sizeof dims[0]; k++) {
            uint32_t dim = dims[k];
            size_t n = 37;
            float *rows = malloc(n * dim * sizeof *rows), *x = malloc(dim * sizeof *x);
            float *out = malloc(n * sizeof *out);
            fill(rows, (uint32_t)(n * dim));
            fill(x, dim);
            vec_dot_many(rows, n, x, dim, out);
            for (size_t i = 0; i < n; i++)
                assert_true(out[i] == vec_dot(rows + i * dim, x, dim)); /* bit-identical */
            vec_dot_many(rows, 0, x, dim, out); /* n = 0 is a no-op */
            free(rows);
            free(x);
            free(out);
        }
    }
    vec_force_scalar(0);
}

static void variants_agree(void **state)
{
    (void)state;
    uint32_t dim = 2053;
    float *a = malloc(dim * sizeof *a), *b = malloc(dim * sizeof *b);
    fill(a, dim);
    fill(b, dim);
    vec_force_scalar(1);
    float s = vec_dot(a, b, dim);
    assert_string_equal(vec_impl(), "scalar");
    vec_force_scalar(0);
    float f = vec_dot(a, b, dim);
    double mag;
    ref_dot(a, b, dim, &mag);
    assert_true(fabs((double)s - f) <= 1e-5 * mag);
    free(a);
    free(b);
}

static void fwht_matches_naive_hadamard(void **state)
{
    (void)state;
    for (size_t v = 0; v < 2; v++) {
        vec_force_scalar(variants[v]);
        for (uint32_t n = 1; n <= 512; n *= 2) {
            float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
            float *dg = malloc(n * sizeof *dg);
            fill(x, n);
            fill(dg, n);
            for (int withdiag = 0; withdiag < 2; withdiag++) {
                memcpy(y, x, n * sizeof *x);
                vec_fwht(y, withdiag ? dg : NULL, n);
                for (uint32_t i = 0; i < n; i++) {
                    double s = 0;
                    for (uint32_t j = 0; j < n; j++)
                        s += (__builtin_popcount(i & j) % 2 ? -1.0 : 1.0) * x[j] *
                             (withdiag ? dg[j] : 1.0f);
                    assert_float_equal(y[i], s, 1e-4 * (1 + sqrt(n)));
                }
            }
            free(dg);
            free(x);
            free(y);
        }
    }
    vec_force_scalar(0);
}

/* Both variants run the butterflies in the same order, so their outputs
 * are bit-identical: sign codes do not depend on the CPU. */
static void fwht_variants_agree_bitwise(void **state)
{
    (void)state;
    for (uint32_t n = 1; n <= 4096; n *= 2) {
        float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *z = malloc(n * sizeof *z);
        float *dg = malloc(n * sizeof *dg);
        fill(x, n);
        for (uint32_t i = 0; i < n; i++)
            dg[i] = (i * 7919u) % 3u ? 1.0f : -1.0f;
        for (int withdiag = 0; withdiag < 2; withdiag++) {
            memcpy(y, x, n * sizeof *x);
            memcpy(z, x, n * sizeof *x);
            vec_force_scalar(1);
            vec_fwht(y, withdiag ? dg : NULL, n);
            vec_force_scalar(0);
            vec_fwht(z, withdiag ? dg : NULL, n);
            assert_memory_equal(y, z, n * sizeof *y);
        }
        free(dg);
        free(x);
        free(y);
        free(z);
    }
}

/* The int16 query code: within the promised bound of y on every variant,
 * for odd lengths, tiny and huge scales; zero and non-finite go to zeros. */
static void quant_i16_is_within_its_bound(void **state)
{
    (void)state;
    static const uint32_t dims[] = { 1, 7, 16, 33, 1024, 2047, 16384 };
    static const float scales[] = { 1.0f, 1e-20f, 3e20f };
    for (size_t v = 0; v < 2; v++) {
        vec_force_scalar(variants[v]);
        for (size_t di = 0; di < sizeof dims / sizeof *dims; di++)
            for (size_t si = 0; si < sizeof scales / sizeof *scales; si++) {
                uint32_t n = dims[di];
                float *y = malloc(n * sizeof *y);
                int16_t *q = malloc(n * sizeof *q);
                fill(y, n);
                for (uint32_t i = 0; i < n; i++)
                    y[i] *= scales[si];
                float err = -1.0f, sc = vec_quant_i16(y, n, q, &err);
                assert_true(sc > 0.0f);
                double e2 = 0.0;
                int top = 0;
                for (uint32_t i = 0; i < n; i++) {
                    assert_true(q[i] >= -16383 && q[i] <= 16383);
                    top |= q[i] == 16383 || q[i] == -16383;
                    double r = (double)y[i] - (double)sc * q[i];
                    e2 += r * r;
                }
                assert_true(top); /* the largest |y[i]| uses the full range */
                assert_true(sqrt(e2) <= err);
                free(y);
                free(q);
            }
        int16_t q[9];
        float err = -1.0f, y[9] = { 0 };
        assert_true(vec_quant_i16(y, 9, q, &err) == 0.0f);
        assert_true(err == 0.0f);
        y[3] = NAN;
        assert_true(vec_quant_i16(y, 9, q, &err) == 0.0f);
        assert_true(err == INFINITY);
        y[3] = INFINITY;
        assert_true(vec_quant_i16(y, 9, q, &err) == 0.0f);
        assert_true(err == INFINITY);
        for (int i = 0; i < 9; i++)
            assert_int_equal(q[i], 0);
    }
    vec_force_scalar(0);
}

/* The integer dot product is exact on every variant, at the extremes of
 * both ranges (where int32 lanes would overflow without widening) and for
 * lengths that leave a tail. */
static void dot_i8_i16_is_exact(void **state)
{
    (void)state;
    static const uint32_t dims[] = { 1, 15, 16, 31, 32, 33, 1000, 4096, 8200, 16384 };
    for (size_t v = 0; v < 2; v++) {
        vec_force_scalar(variants[v]);
        for (size_t di = 0; di < sizeof dims / sizeof *dims; di++) {
            uint32_t n = dims[di];
            int8_t *a = malloc(n);
            int16_t *b = malloc(n * sizeof *b);
            for (int pat = 0; pat < 3; pat++) {
                int64_t want = 0;
                for (uint32_t i = 0; i < n; i++) {
                    if (pat == 0) {         /* all at the extreme, same sign */
                        a[i] = -127;
                        b[i] = -16383;
                    } else if (pat == 1) {  /* extreme, alternating */
                        a[i] = 127;
                        b[i] = i % 2 ? 16383 : -16383;
                    } else {                /* pseudo-random */
                        a[i] = (int8_t)((int)((i * 2654435761u) >> 24) - 128);
                        if (a[i] == -128)
                            a[i] = -127;
                        b[i] = (int16_t)((int)((i * 40503u) % 32767u) - 16383);
                    }
                    want += (int64_t)a[i] * b[i];
                }
                assert_true(vec_dot_i8_i16(a, b, n) == want);
            }
            free(a);
            free(b);
        }
    }
    vec_force_scalar(0);
}

static void sign_bits_mark_positives(void **state)
{
    (void)state;
    float x[256];
    uint64_t bits[4];
    fill(x, 256);
    x[5] = 0.0f;
    x[6] = -0.0f;
    x[70] = NAN;
    for (size_t v = 0; v < 2; v++) {
        vec_force_scalar(variants[v]);
        vec_sign_bits(x, 256, bits);
        for (uint32_t i = 0; i < 256; i++)
            assert_int_equal((bits[i / 64] >> (i % 64)) & 1, x[i] > 0.0f);
    }
    vec_force_scalar(0);
}

static void hamming_counts_differing_bits(void **state)
{
    (void)state;
    uint64_t a[17], b[17];
    for (int i = 0; i < 17; i++) {
        a[i] = rnd();
        b[i] = rnd();
    }
    for (size_t v = 0; v < 2; v++) {
        vec_force_scalar(variants[v]);
        for (size_t w = 0; w <= 17; w++) {
            uint32_t want = 0;
            for (size_t i = 0; i < w; i++)
                for (int k = 0; k < 64; k++)
                    want += ((a[i] ^ b[i]) >> k) & 1;
            assert_int_equal(vec_hamming(a, b, w), want);
        }
    }
    vec_force_scalar(0);
}

/* The index's first filter, on every variant, against a plain reference:
 * the same entries kept in the same order with the same floors (to a
 * rounding), whatever the code width, hmax and tail length. */
static void code_filter_keeps_what_reaches_thr(void **state)
{
    (void)state;
    enum { N = 203, W = 4 };
    uint64_t codes[N * W], q[W];
    float mux[N], nx[N], cmax[W * 64 + 1], fl[N];
    uint32_t idx[N];
    for (size_t i = 0; i < N * W; i++)
        codes[i] = rnd() & rnd(); /* biased: distances spread over the range */
    for (size_t w = 0; w < W; w++)
        q[w] = rnd() & rnd();
    for (size_t i = 0; i < N; i++) {
        mux[i] = 0.5f * rnd_f();
        nx[i] = 0.5f + 0.5f * (rnd_f() + 1.0f) / 2.0f;
    }
    const size_t widths[] = { 1, 2, 4 };
    for (size_t wi = 0; wi < 3; wi++) {
        size_t words = widths[wi];
        for (uint32_t h = 0; h <= words * 64; h++)
            cmax[h] = 1.0f - 2.0f * (float)h / (float)(words * 64);
        const uint32_t hmaxes[] = { 0, (uint32_t)words * 20, (uint32_t)words * 64 };
        for (size_t hi = 0; hi < 3; hi++) {
            for (size_t v = 0; v < 2; v++) {
                vec_force_scalar(variants[v]);
                size_t k = vec_code_filter(codes, words, mux, nx, N, q, hmaxes[hi], cmax, 0.9f,
                                           0.05f, 0.1f, 1000, idx, fl);
                size_t want = 0;
                for (size_t i = 0; i < N; i++) {
                    uint32_t h = vec_hamming(codes + i * words, q, words);
                    float f = cmax[h] * (nx[i] * 0.9f) + mux[i] + 0.05f;
                    if (h > hmaxes[hi] || f < 0.1f)
                        continue;
                    assert_true(want < k);
                    assert_int_equal(idx[want], 1000 + i);
                    assert_float_equal(fl[want], f, 1e-6);
                    want++;
                }
                assert_int_equal(k, want);
            }
        }
    }
    vec_force_scalar(0);
}

/* Scattered Hamming distances equal vec_hamming on each selected record. */
static void hamming_sel_matches_hamming(void **state)
{
    (void)state;
    enum { N = 50, STRIDE = 16 };
    uint64_t recs[N * STRIDE], q[STRIDE];
    uint32_t slots[N], out[N];
    for (size_t i = 0; i < N * STRIDE; i++)
        recs[i] = rnd();
    for (size_t i = 0; i < STRIDE; i++)
        q[i] = rnd();
    for (size_t i = 0; i < N; i++)
        slots[i] = (uint32_t)(rnd() % N);
    for (size_t v = 0; v < 2; v++) {
        vec_force_scalar(variants[v]);
        for (size_t words = 1; words <= STRIDE; words += 7) {
            vec_hamming_sel(recs, STRIDE, slots, N, q, words, out);
            for (size_t i = 0; i < N; i++)
                assert_int_equal(out[i], vec_hamming(recs + (size_t)slots[i] * STRIDE, q, words));
        }
    }
    vec_force_scalar(0);
}

static void impl_names_the_variant(void **state)
{
    (void)state;
    const char *n = vec_impl();
    assert_true(strcmp(n, "avx2") == 0 || strcmp(n, "scalar") == 0);
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        assert_string_equal(n, "avx2");
#endif
    vec_force_scalar(1);
    assert_string_equal(vec_impl(), "scalar");
    vec_force_scalar(0);
    assert_string_equal(vec_impl(), n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(normalize_rejects_nan),
        cmocka_unit_test(code_filter_keeps_what_reaches_thr),
        cmocka_unit_test(hamming_sel_matches_hamming),
        cmocka_unit_test(normalize_rejects_inf),
        cmocka_unit_test(normalize_rejects_zero_vector),
        cmocka_unit_test(normalize_rejects_denormal_only),
        cmocka_unit_test(normalize_huge_values_do_not_overflow),
        cmocka_unit_test(normalize_gives_unit_length),
        cmocka_unit_test(dot_matches_double_reference),
        cmocka_unit_test(dot_many_agrees_with_dot),
        cmocka_unit_test(variants_agree),
        cmocka_unit_test(fwht_matches_naive_hadamard),
        cmocka_unit_test(fwht_variants_agree_bitwise),
        cmocka_unit_test(quant_i16_is_within_its_bound),
        cmocka_unit_test(dot_i8_i16_is_exact),
        cmocka_unit_test(sign_bits_mark_positives),
        cmocka_unit_test(hamming_counts_differing_bits),
        cmocka_unit_test(impl_names_the_variant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
