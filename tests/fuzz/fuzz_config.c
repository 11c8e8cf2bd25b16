/* fuzz_config.c - libFuzzer target: config file text (simcached -c FILE and
 * SIGHUP reloads).
 *
 * Each input is applied with config_load_text() over fresh embedded
 * defaults, from an exact-size copy. Besides memory safety the target checks
 * that a refusal names the file and line, and that whatever a file was
 * allowed to set is within the table's bounds: every value, printed by
 * config_foreach(), is accepted again by config_set() on a fresh config.
 * config_parse_size() is also compared with a reference on the first line.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_config: invariant broken: %s\n", what);
        abort();
    }
}

typedef struct {
    config_t fresh;
    int refused;
    char why[320];
} replay_t;

static void replay_key(void *arg, const char *key, const char *value, int runtime,
                       const char *help)
{
    replay_t *x = arg;
    char err[256];
    (void)runtime;
    (void)help;
    if (config_set(&x->fresh, key, value, 0, err, sizeof err) && !x->refused) {
        x->refused = 1;
        snprintf(x->why, sizeof x->why, "%s = '%.64s': %s", key, value, err);
    }
}

/* Digits, optional k/m/g/t, then optional "b" or "ib" (only after a suffix). */
static int ref_parse_size(const char *s, uint64_t *out)
{
    uint64_t v = 0, mul = 1;
    size_t i = 0;
    if (!isdigit((unsigned char)s[0])) return -1;
    for (; isdigit((unsigned char)s[i]); i++)
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
            return -1;
    switch (tolower((unsigned char)s[i])) {
    case 'k': mul = 1ull << 10; i++; break;
    case 'm': mul = 1ull << 20; i++; break;
    case 'g': mul = 1ull << 30; i++; break;
    case 't': mul = 1ull << 40; i++; break;
    default: break;
    }
    if (mul > 1 && tolower((unsigned char)s[i]) == 'i') i++;
    if (tolower((unsigned char)s[i]) == 'b') i++;
    if (s[i]) return -1;
    if (__builtin_mul_overflow(v, mul, out)) return -1;
    return 0;
}

static void check_parse_size(const uint8_t *data, size_t size)
{
    char s[64];
    size_t n = 0;
    while (n < size && n < sizeof s - 1 && data[n] != '\n' && data[n] != 0) {
        s[n] = (char)data[n];
        n++;
    }
    s[n] = 0;
    uint64_t a = 0, b = 0;
    int ra = config_parse_size(s, &a), rb = ref_parse_size(s, &b);
    must(ra == rb, "config_parse_size accepts differently from the reference");
    must(ra != 0 || a == b, "config_parse_size value differs from the reference");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    config_t c;
    char err[512];
    must(text != NULL, "out of memory");
    memcpy(text, data, size);
    config_defaults(&c);
    memset(err, 0, sizeof err);
    int rc = config_load_text(&c, text, size, "fuzz.conf", err, sizeof err);
    if (rc) {
        must(rc == -1, "unexpected return code");
        must(strncmp(err, "fuzz.conf:", 10) == 0, "refusal does not name file and line");
    } else {
        replay_t x = { .refused = 0 };
        config_defaults(&x.fresh);
        config_foreach(&c, replay_key, &x);
        if (x.refused) {
            fprintf(stderr, "fuzz_config: loaded value refused on replay: %s\n", x.why);
            abort();
        }
        must(c.allow_uids.n <= CONFIG_MAX_UIDS, "too many uids");
        must(memchr(c.socket, 0, sizeof c.socket) && memchr(c.admin_socket, 0, sizeof c.admin_socket) &&
             memchr(c.data_dir, 0, sizeof c.data_dir), "path not terminated");
    }
    check_parse_size(data, size);
    free(text);
    return 0;
}
