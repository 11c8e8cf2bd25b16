/* config_change.c - see config_change.h. Candidates by type, checked by
 * config_set and config_diff themselves, so a wrong guess is skipped
 * rather than trusted. */
#include "config_change.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define MAX_CANDIDATES 6

/* Does value set key to something valid that differs from c in key alone? */
static int changes_only(const config_t *c, const char *key, const char *value)
{
    config_t next = *c;
    char err[256];
    if (config_set(&next, key, value, 0, err, sizeof err)) return 0;
    if (config_diff(c, &next, NULL, NULL) != 1) return 0;
    /* The one difference is key's: copying key back leaves none. */
    config_copy_key(&next, c, key);
    return config_diff(c, &next, NULL, NULL) == 0;
}

int config_change_value(const config_t *c, const char *key, char *out, size_t n)
{
    config_key_info_t k;
    char cur[512], cand[MAX_CANDIDATES][512];
    int nc = 0;
    if (config_key_info(key, &k) || config_get(c, key, cur, sizeof cur)) return -1;
    switch (k.type) {
    case CONFIG_T_SIZE:
    case CONFIG_T_U32: {
        uint64_t v = strtoull(cur, NULL, 10);
        if ((double)(v / 2) >= k.min) snprintf(cand[nc++], sizeof cand[0], "%" PRIu64, v / 2);
        if ((double)(v + 1) <= k.max) snprintf(cand[nc++], sizeof cand[0], "%" PRIu64, v + 1);
        if (v > 0 && (double)(v - 1) >= k.min)
            snprintf(cand[nc++], sizeof cand[0], "%" PRIu64, v - 1);
        break;
    }
    case CONFIG_T_DOUBLE: {
        double v = strtod(cur, NULL);
        snprintf(cand[nc++], sizeof cand[0], "%g", (v + k.min) / 2);
        snprintf(cand[nc++], sizeof cand[0], "%g", (v + k.max) / 2);
        break;
    }
    case CONFIG_T_MODE: {
        unsigned long m = strtoul(cur, NULL, 8);
        snprintf(cand[nc++], sizeof cand[0], "0%03lo", m ^ 0060);
        snprintf(cand[nc++], sizeof cand[0], "0%03lo", m ^ 0006);
        break;
    }
    case CONFIG_T_LEVEL: {
        int l = log_level_parse(cur);
        for (int i = 1; i <= 3; i++)
            snprintf(cand[nc++], sizeof cand[0], "%s", log_level_name((log_level_t)((l + i) % 4)));
        break;
    }
    case CONFIG_T_UIDS:
        snprintf(cand[nc++], sizeof cand[0], "%s", cur[0] ? "" : "4242");
        snprintf(cand[nc++], sizeof cand[0], "4242,4243");
        break;
    case CONFIG_T_PATH:
        snprintf(cand[nc++], sizeof cand[0], "%.500sx", cur);
        if (strlen(cur) > 1) snprintf(cand[nc++], sizeof cand[0], "%.*s", (int)strlen(cur) - 1, cur);
        break;
    case CONFIG_T_STR:
        if (k.choices) {
            /* Each word of "a|b|c" in turn. */
            const char *p = k.choices;
            while (*p && nc < MAX_CANDIDATES) {
                size_t len = strcspn(p, "|");
                snprintf(cand[nc++], sizeof cand[0], "%.*s", (int)len, p);
                p += len + (p[len] == '|');
            }
            break;
        }
        snprintf(cand[nc++], sizeof cand[0], "%.500sx", cur);
        snprintf(cand[nc++], sizeof cand[0], "x");
        snprintf(cand[nc++], sizeof cand[0], "0");   /* a CPU list */
        snprintf(cand[nc++], sizeof cand[0], "%s", "");
        break;
    case CONFIG_T_SECRET:
        snprintf(cand[nc++], sizeof cand[0], "test-key-1");
        snprintf(cand[nc++], sizeof cand[0], "test-key-2");
        break;
    }
    for (int i = 0; i < nc; i++) {
        snprintf(out, n, "%s", cand[i]);
        if (changes_only(c, key, cand[i])) return 0;
    }
    return -1;
}
