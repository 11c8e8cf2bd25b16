/* test_reload.c - SIGHUP reload over every key of the config table.
 *
 * For each key the config file gets a changed valid value (made from the
 * key's row by config_change_value), the daemon gets SIGHUP, and `config
 * get` on the admin socket must show the new value for a runtime key, and
 * the old one, with a warning naming the key in the log, for a restart key.
 * Then the file puts the old value back. This test links the config table
 * (cached/config.c) to know the keys, their classes and valid values; the
 * daemon is still driven only from outside.
 *
 * A reload runs whole in one callback of the daemon's loop, so each file
 * also moves a "fence" key to a value not used before: once `config get`
 * shows the fence's new value, the reload that carried it is over.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "config_change.h"
#include "harness.h"

static it_daemon_t D;
static char conf_dir[64], conf_path[128];
static unsigned fence_next = 1000;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Replace the config file whole (rename), so a reload never reads half. */
static void write_conf(const char *text)
{
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", conf_path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, conf_path), 0);
}

static int get_value(const char *key, char *out, size_t n)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "config get %s", key);
    return it_admin_str(&D, cmd, key, out, n);
}

static long log_size(void)
{
    struct stat st;
    return stat(D.log, &st) == 0 ? (long)st.st_size : 0;
}

/* Does the daemon's log, from byte from on, contain needle? */
static int log_has_since(long from, const char *needle)
{
    FILE *f = fopen(D.log, "r");
    if (!f) return 0;
    char line[2048];
    int found = 0;
    if (fseek(f, from, SEEK_SET) == 0)
        while (!found && fgets(line, sizeof line, f)) found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* Write body plus a fresh value of the fence key, SIGHUP, and wait until
 * the daemon shows that fence value: the reload is then complete. */
static void reload_with(const char *body, const char *fence)
{
    char text[2048], want[32], got[64] = "";
    unsigned v = fence_next++;
    snprintf(text, sizeof text, "%s%s = %u\n", body, fence, v);
    snprintf(want, sizeof want, "%u", v);
    write_conf(text);
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    uint64_t end = now_ms() + IT_TIMEOUT_MS;
    while (now_ms() < end) {
        if (get_value(fence, got, sizeof got) == 0 && strcmp(got, want) == 0) return;
        it_sleep_ms(5);
    }
    it_daemon_dump_log(&D);
    fail_msg("reload of '%s' not seen: %s is '%s', not %s", body, fence, got, want);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(conf_dir, sizeof conf_dir, "/tmp/screload-XXXXXX");
    if (!mkdtemp(conf_dir)) return -1;
    snprintf(conf_path, sizeof conf_path, "%s/simcached.conf", conf_dir);
    FILE *f = fopen(conf_path, "w");
    if (!f) return -1;
    fputs("# written by it_reload\nlog_level = info\n", f);
    fclose(f);
    return it_daemon_start(&D, "--config", conf_path, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = D.pid ? it_daemon_stop(&D) : 0;
    it_daemon_cleanup(&D);
    unlink(conf_path);
    rmdir(conf_dir);
    return rc == 0 ? 0 : -1;
}

typedef struct {
    char name[128][64];
    int n;
} keys_t;

static void list_key(void *arg, const char *key, const char *value, int runtime, const char *help)
{
    keys_t *k = arg;
    (void)value;
    (void)runtime;
    (void)help;
    if (k->n < 128) snprintf(k->name[k->n++], sizeof k->name[0], "%s", key);
}

/* Every key of the table, through SIGHUP: runtime keys take the file's
 * value, restart keys keep theirs and are named in a warning. Every key is
 * tried; the ones that misbehave are listed together at the end. */
static void every_key_reloads_by_its_class(void **state)
{
    (void)state;
    config_t defaults;
    keys_t keys = { .n = 0 };
    config_defaults(&defaults);
    config_foreach(&defaults, list_key, &keys);
    assert_true(keys.n > 0 && keys.n < 128);

    char failed[4096] = "";
    int n_failed = 0, n_runtime = 0, n_restart = 0;
    for (int i = 0; i < keys.n; i++) {
        const char *key = keys.name[i];
        const char *fence = strcmp(key, "max_entries") ? "max_entries" : "max_clients";
        int cls = config_key_class(key);
        char old[512], alt[512], want[512], now[512], body[1200], err[256];

        /* The daemon's value, then a changed one from the key's row. */
        assert_int_equal(get_value(key, old, sizeof old), 0);
        config_t c = defaults, next;
        if (config_set(&c, key, old, 0, err, sizeof err))
            fail_msg("%s: the daemon's value '%s' does not parse: %s", key, old, err);
        if (config_change_value(&c, key, alt, sizeof alt))
            fail_msg("%s: no valid changed value (last tried '%s')", key, alt);
        next = c;
        assert_int_equal(config_set(&next, key, alt, 0, err, sizeof err), 0);
        assert_int_equal(config_get(&next, key, want, sizeof want), 0);

        long from = log_size();
        snprintf(body, sizeof body, "%s = %s\n", key, alt);
        reload_with(body, fence);
        assert_int_equal(get_value(key, now, sizeof now), 0);

        char warning[128];
        snprintf(warning, sizeof warning, "SIGHUP: %s changed in the file but needs a restart", key);
        int ok;
        if (cls == CONFIG_RUNTIME) {
            n_runtime++;
            ok = strcmp(now, want) == 0;
            if (!ok)
                fprintf(stderr, "runtime key %s: file has '%s', daemon still shows '%s'\n", key, alt,
                        now);
        } else {
            n_restart++;
            int warned = log_has_since(from, warning);
            ok = strcmp(now, old) == 0 && warned;
            if (!ok)
                fprintf(stderr, "restart key %s: file has '%s', daemon shows '%s' (was '%s'), %s\n",
                        key, alt, now, old, warned ? "warned" : "no warning in the log");
        }
        if (!ok) {
            n_failed++;
            size_t used = strlen(failed);
            snprintf(failed + used, sizeof failed - used, " %s", key);
        }

        /* Put the old value back for the keys that follow. */
        snprintf(body, sizeof body, "%s = %s\n", key, old);
        reload_with(body, fence);
        assert_int_equal(get_value(key, now, sizeof now), 0);
        if (strcmp(now, old)) fail_msg("%s: not back to '%s' after reload (shows '%s')", key, old, now);
    }
    print_message("%d keys: %d runtime, %d restart\n", keys.n, n_runtime, n_restart);
    assert_int_equal(it_daemon_exited(&D), 0);
    if (n_failed) fail_msg("%d keys not reloaded by their class:%s", n_failed, failed);
}

/* host_arena_size 0 means "host_capacity at start": a file saying 0 is not
 * a change of the arena, which is host_capacity's size by now. */
static void arena_size_zero_in_the_file_is_not_a_change(void **state)
{
    (void)state;
    char before[64], after[64];
    assert_int_equal(get_value("host_arena_size", before, sizeof before), 0);
    assert_string_not_equal(before, "0");
    long from = log_size();
    reload_with("host_arena_size = 0\n", "max_entries");
    assert_int_equal(get_value("host_arena_size", after, sizeof after), 0);
    assert_string_equal(before, after);
    assert_false(log_has_since(from, "host_arena_size changed"));
}

/* host_prefault runs a thread beside the loop; it logs when it is done,
 * and reloads rewrite the config and the log level under it. Under
 * ThreadSanitizer (make test-tsan) a race there makes the daemon exit 66
 * instead of 0. */
static void reload_beside_the_prefault_thread(void **state)
{
    (void)state;
    it_daemon_t d2;
    char conf2[160], level[32] = "";
    snprintf(conf2, sizeof conf2, "%s/prefault.conf", conf_dir);
    FILE *f = fopen(conf2, "w");
    assert_non_null(f);
    fputs("host_prefault = 1\nhost_capacity = 16m\n", f);
    fclose(f);
    assert_int_equal(it_daemon_start(&d2, "--config", conf2, NULL), 0);
    uint64_t end = now_ms() + IT_TIMEOUT_MS;
    while (it_admin_u64(&d2, "info", "host_prefaulted_bytes") < (16u << 20) && now_ms() < end)
        it_sleep_ms(10);
    assert_true(it_admin_u64(&d2, "info", "host_prefaulted_bytes") == (16u << 20));
    f = fopen(conf2, "w");
    assert_non_null(f);
    fputs("host_prefault = 1\nhost_capacity = 16m\nlog_level = debug\n", f);
    fclose(f);
    assert_int_equal(kill(d2.pid, SIGHUP), 0);
    while (strcmp(level, "debug") && now_ms() < end) {
        it_admin_str(&d2, "config get log_level", "log_level", level, sizeof level);
        it_sleep_ms(5);
    }
    assert_string_equal(level, "debug");
    int rc = it_daemon_stop(&d2);
    if (rc) it_daemon_dump_log(&d2);
    it_daemon_cleanup(&d2);
    unlink(conf2);
    assert_int_equal(rc, 0);
}

int main(int argc, char **argv)
{
    it_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_key_reloads_by_its_class),
        cmocka_unit_test(arena_size_zero_in_the_file_is_not_a_change),
        cmocka_unit_test(reload_beside_the_prefault_thread),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
