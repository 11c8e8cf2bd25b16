/* test_config.c - the settings table: defaults, sizes, bounds, run-time
 * refusal of restart-only keys, the config file parser and get/foreach,
 * and, over every key of the table, its class and config_diff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "config_change.h"
#include "log.h"

/* ---- helpers ---- */

static int set(config_t *c, const char *key, const char *value, char *err, size_t errlen)
{
    err[0] = 0;
    return config_set(c, key, value, 0, err, errlen);
}

/* key=value is accepted at start-up time. */
static void assert_accepts(const char *key, const char *value)
{
    config_t c;
    char err[256];

    config_defaults(&c);
    if (set(&c, key, value, err, sizeof err) != 0)
        fail_msg("%s = '%s' refused: %s", key, value, err);
}

/* key=value is refused, the message names the key, the value is unchanged. */
static void assert_refuses(const char *key, const char *value)
{
    config_t c;
    char err[256], before[512], after[512];

    config_defaults(&c);
    assert_int_equal(config_get(&c, key, before, sizeof before), 0);
    if (set(&c, key, value, err, sizeof err) == 0)
        fail_msg("%s = '%s' accepted", key, value);
    if (!strstr(err, key)) fail_msg("message for %s = '%s' does not name the key: %s", key, value, err);
    assert_int_equal(config_get(&c, key, after, sizeof after), 0);
    assert_string_equal(before, after);
}

static uint64_t size_of(const char *s)
{
    uint64_t v = 0;
    if (config_parse_size(s, &v) != 0) fail_msg("size '%s' refused", s);
    return v;
}

static int load(config_t *c, const char *text, char *err, size_t errlen)
{
    err[0] = 0;
    return config_load_text(c, text, strlen(text), "test.conf", err, errlen);
}

static void get(const config_t *c, const char *key, char *out, size_t n)
{
    assert_int_equal(config_get(c, key, out, n), 0);
}

/* ---- defaults ---- */

static void defaults_are_within_every_bound(void **state)
{
    config_t c;

    (void)state;
    config_defaults(&c);
    assert_true(c.socket[0] == '/');
    assert_true(c.admin_socket[0] == '/');
    assert_true(c.data_dir[0] == '/');
    assert_string_not_equal(c.socket, c.admin_socket);
    assert_int_equal(c.socket_mode, 0600);
    assert_true(c.host_capacity >= 1u << 20);
    assert_true(c.host_arena_size == 0);
    assert_true(c.max_entries == 0);
    assert_true(c.default_threshold > 0 && c.default_threshold <= 1);
    assert_true(c.max_clients >= 1);
    assert_true(c.max_frame >= 4096);
    assert_int_equal(c.log_level, LOG_INFO);
    assert_int_equal(c.allow_uids.n, 0);
}

/* Every default, printed and parsed again, is a value config_set accepts:
 * the embedded defaults obey the table's own bounds. */
static void each_default_passes_its_own_validation(void **state)
{
    const char *keys[] = { "socket", "admin_socket", "data_dir", "socket_mode", "host_capacity",
                           "host_arena_size", "max_entries", "default_threshold", "max_clients",
                           "max_frame", "max_leases_per_client", "max_puts_per_client",
                           "max_namespaces", "log_level", "index_exact_below",
                           "drain_timeout_ms" };
    config_t c;
    char v[512], err[256];

    (void)state;
    config_defaults(&c);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        get(&c, keys[i], v, sizeof v);
        if (set(&c, keys[i], v, err, sizeof err)) fail_msg("default %s = %s refused: %s", keys[i], v, err);
    }
}

static void defaults_put_sockets_under_xdg_runtime_dir(void **state)
{
    config_t c;
    char *old = getenv("XDG_RUNTIME_DIR") ? strdup(getenv("XDG_RUNTIME_DIR")) : NULL;

    (void)state;
    setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1);
    config_defaults(&c);
    assert_string_equal(c.socket, "/run/user/4242/simcache/simcached.sock");
    assert_string_equal(c.admin_socket, "/run/user/4242/simcache/admin.sock");
    /* A relative runtime dir is ignored. */
    setenv("XDG_RUNTIME_DIR", "run/user", 1);
    config_defaults(&c);
    assert_memory_equal(c.socket, "/tmp/simcache-", 14);
    if (old) setenv("XDG_RUNTIME_DIR", old, 1);
    else unsetenv("XDG_RUNTIME_DIR");
    free(old);
}

static void defaults_fall_back_to_tmp_when_runtime_dir_is_too_long(void **state)
{
    config_t c;
    char long_dir[200];
    char *old = getenv("XDG_RUNTIME_DIR") ? strdup(getenv("XDG_RUNTIME_DIR")) : NULL;

    (void)state;
    long_dir[0] = '/';
    memset(long_dir + 1, 'd', sizeof long_dir - 2);
    long_dir[sizeof long_dir - 1] = 0;
    setenv("XDG_RUNTIME_DIR", long_dir, 1);
    config_defaults(&c);
    assert_memory_equal(c.socket, "/tmp/simcache-", 14);
    assert_true(strlen(c.socket) < CONFIG_PATH_MAX);
    if (old) setenv("XDG_RUNTIME_DIR", old, 1);
    else unsetenv("XDG_RUNTIME_DIR");
    free(old);
}

/* ---- sizes ---- */

static void size_suffixes_are_powers_of_1024(void **state)
{
    (void)state;
    assert_true(size_of("0") == 0);
    assert_true(size_of("4096") == 4096);
    assert_true(size_of("1k") == 1024);
    assert_true(size_of("1K") == 1024);
    assert_true(size_of("2m") == 2ull << 20);
    assert_true(size_of("3g") == 3ull << 30);
    assert_true(size_of("1t") == 1ull << 40);
    assert_true(size_of("4kb") == 4096);
    assert_true(size_of("4KB") == 4096);
    assert_true(size_of("5mib") == 5ull << 20);
    assert_true(size_of("5MiB") == 5ull << 20);
    assert_true(size_of("6gib") == 6ull << 30);
    assert_true(size_of("7tb") == 7ull << 40);
    assert_true(size_of("12b") == 12);
}

static void size_largest_values_fit_and_one_more_overflows(void **state)
{
    uint64_t v;

    (void)state;
    assert_true(size_of("18446744073709551615") == UINT64_MAX);
    assert_int_equal(config_parse_size("18446744073709551616", &v), -1);
    assert_true(size_of("16777215t") == 16777215ull << 40);
    assert_int_equal(config_parse_size("16777216t", &v), -1);   /* 2^64 */
    assert_int_equal(config_parse_size("17179869184g", &v), -1);
}

static void size_malformed_text_is_refused(void **state)
{
    const char *bad[] = { "", "k", "kb", "-1", "+1", " 1", "1 ", "1 k", "1kk", "1x", "1.5g",
                          "1kbb", "1ib", "1kibb", "0x10", "1e3", "1p", "ten" };
    uint64_t v = 77;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (config_parse_size(bad[i], &v) == 0) fail_msg("size '%s' accepted", bad[i]);
    }
    assert_true(v == 77);
    assert_int_equal(config_parse_size(NULL, &v), -1);
}

static void size_keys_accept_suffixes(void **state)
{
    config_t c;
    char err[256];

    (void)state;
    config_defaults(&c);
    assert_int_equal(set(&c, "host_capacity", "8g", err, sizeof err), 0);
    assert_true(c.host_capacity == 8ull << 30);
    assert_int_equal(set(&c, "max_frame", "64MiB", err, sizeof err), 0);
    assert_int_equal(c.max_frame, 64u << 20);
    assert_int_equal(set(&c, "max_entries", "512", err, sizeof err), 0);
    assert_true(c.max_entries == 512);
}

/* ---- bounds ---- */

static void size_bounds_are_inclusive(void **state)
{
    (void)state;
    assert_accepts("host_capacity", "1m");
    assert_accepts("host_capacity", "64t");
    assert_refuses("host_capacity", "1048575");
    assert_refuses("host_capacity", "70368744177665");
    assert_refuses("host_capacity", "0");
    assert_accepts("gpu_capacity", "0");
    assert_accepts("gpu_capacity", "40g");
    assert_refuses("gpu_capacity", "70368744177665");
    assert_accepts("gpu_ipc", "legacy");
    assert_accepts("gpu_ipc", "auto");
    assert_refuses("gpu_ipc", "vmm");
    assert_accepts("host_huge_pages", "try");
    assert_accepts("host_huge_pages", "on");
    assert_accepts("host_huge_pages", "off");
    assert_refuses("host_huge_pages", "yes");
    assert_refuses("host_huge_pages", "");
    assert_refuses("host_huge_pages", "hugetlb");
    assert_refuses("gpu_device", "1024");
    assert_accepts("max_frame", "4k");
    assert_accepts("max_frame", "1g");
    assert_refuses("max_frame", "4095");
    assert_refuses("max_frame", "1073741825");
    /* Would wrap the 32-bit field if it were not checked first. */
    assert_refuses("max_frame", "4g");
    assert_accepts("host_arena_size", "0");
    assert_accepts("max_entries", "0");
    assert_accepts("max_entries", "1t");
    assert_refuses("max_entries", "1099511627777");
}

static void integer_bounds_are_inclusive(void **state)
{
    (void)state;
    assert_accepts("max_clients", "1");
    assert_accepts("max_clients", "65536");
    assert_refuses("max_clients", "0");
    assert_refuses("max_clients", "65537");
    assert_accepts("max_puts_per_client", "4096");
    assert_refuses("max_puts_per_client", "4097");
    assert_accepts("drain_timeout_ms", "0");
    assert_accepts("drain_timeout_ms", "600000");
    assert_refuses("drain_timeout_ms", "600001");
}

static void gpu_score_keys_default_on_and_change_at_run_time(void **state)
{
    config_t c;
    (void)state;
    config_defaults(&c);
    assert_int_equal(c.gpu_score_min_batch, 8);
    assert_int_equal(c.gpu_score_min_entries, 4096);
    assert_int_equal(config_key_runtime("gpu_score_min_batch"), 1);
    assert_int_equal(config_key_runtime("gpu_score_min_entries"), 1);
    assert_accepts("gpu_score_min_batch", "0");
    assert_accepts("gpu_score_min_batch", "65536");
    assert_refuses("gpu_score_min_batch", "65537");
    assert_accepts("gpu_score_min_entries", "0");
    assert_accepts("gpu_score_min_entries", "1073741824");
    assert_refuses("gpu_score_min_entries", "1073741825");
}

static void integers_refuse_signs_suffixes_and_overflow(void **state)
{
    (void)state;
    assert_refuses("max_clients", "");
    assert_refuses("max_clients", "-1");
    assert_refuses("max_clients", "+5");
    assert_refuses("max_clients", " 5");
    assert_refuses("max_clients", "5 ");
    assert_refuses("max_clients", "5k");
    assert_refuses("max_clients", "1.0");
    assert_refuses("max_clients", "0x10");
    assert_refuses("max_clients", "4294967297");            /* 2^32 + 1: not wrapped to 1 */
    assert_refuses("max_clients", "18446744073709551617");  /* past 2^64 */
}

static void threshold_accepts_minus_one_to_one_only(void **state)
{
    config_t c;
    char err[256];

    (void)state;
    assert_accepts("default_threshold", "-1");
    assert_accepts("default_threshold", "1");
    assert_accepts("default_threshold", "0.95");
    assert_refuses("default_threshold", "1.0001");
    assert_refuses("default_threshold", "-1.5");
    assert_refuses("default_threshold", "nan");
    assert_refuses("default_threshold", "inf");
    assert_refuses("default_threshold", "-inf");
    assert_refuses("default_threshold", "0.5x");
    assert_refuses("default_threshold", "");
    assert_refuses("default_threshold", "1e999");
    config_defaults(&c);
    assert_int_equal(set(&c, "default_threshold", "0.75", err, sizeof err), 0);
    assert_true(c.default_threshold == 0.75);
}

static void socket_mode_is_octal_and_keeps_owner_rw(void **state)
{
    config_t c;
    char err[256], v[32];

    (void)state;
    config_defaults(&c);
    assert_int_equal(set(&c, "socket_mode", "0660", err, sizeof err), 0);
    assert_int_equal(c.socket_mode, 0660);
    get(&c, "socket_mode", v, sizeof v);
    assert_string_equal(v, "0660");
    assert_accepts("socket_mode", "600");
    assert_accepts("socket_mode", "0777");
    assert_refuses("socket_mode", "0400");
    assert_refuses("socket_mode", "0200");
    assert_refuses("socket_mode", "0680");
    assert_refuses("socket_mode", "01777");
    assert_refuses("socket_mode", "rw");
    assert_refuses("socket_mode", "");
    assert_refuses("socket_mode", "-0600");
}

static void log_level_takes_names(void **state)
{
    config_t c;
    char err[256], v[32];

    (void)state;
    config_defaults(&c);
    assert_int_equal(set(&c, "log_level", "debug", err, sizeof err), 0);
    assert_int_equal(c.log_level, LOG_DEBUG);
    get(&c, "log_level", v, sizeof v);
    assert_string_equal(v, "debug");
    assert_accepts("log_level", "error");
    assert_accepts("log_level", "warn");
    assert_refuses("log_level", "verbose");
    assert_refuses("log_level", "DEBUG");
    assert_refuses("log_level", "3");
    assert_refuses("log_level", "");
}

static void paths_must_be_nonempty_and_fit(void **state)
{
    char p[CONFIG_PATH_MAX + 1];

    (void)state;
    memset(p, 'a', sizeof p);
    p[0] = '/';
    p[CONFIG_PATH_MAX - 1] = 0;             /* 107 bytes: fits sun_path */
    assert_accepts("socket", p);
    p[CONFIG_PATH_MAX - 1] = 'a';
    p[CONFIG_PATH_MAX] = 0;                 /* 108 bytes */
    assert_refuses("socket", p);
    assert_refuses("admin_socket", p);
    assert_refuses("socket", "");
    assert_refuses("data_dir", "");
}

static void unknown_key_is_refused_by_name(void **state)
{
    config_t c;
    char err[256];

    (void)state;
    config_defaults(&c);
    assert_int_equal(set(&c, "max_client", "5", err, sizeof err), -1);
    assert_non_null(strstr(err, "max_client"));
    assert_non_null(strstr(err, "unknown"));
    assert_int_equal(config_key_runtime("max_client"), -1);
}

static void refusal_with_no_error_buffer_does_not_crash(void **state)
{
    config_t c;

    (void)state;
    config_defaults(&c);
    assert_int_equal(config_set(&c, "max_clients", "0", 0, NULL, 0), -1);
    assert_int_equal(config_set(&c, "nope", "0", 0, NULL, 0), -1);
}

static void long_bad_value_is_cut_in_the_message(void **state)
{
    config_t c;
    char err[512], v[300];

    (void)state;
    memset(v, '9', sizeof v - 1);
    v[sizeof v - 1] = 0;
    config_defaults(&c);
    assert_int_equal(set(&c, "max_clients", v, err, sizeof err), -1);
    assert_true(strlen(err) < 200);
    assert_non_null(strstr(err, "max_clients"));
}

/* ---- run time ---- */

static void restart_only_keys_are_refused_at_run_time(void **state)
{
    const char *keys[][2] = { { "socket", "/tmp/x.sock" }, { "admin_socket", "/tmp/a.sock" },
                              { "data_dir", "/tmp/d" }, { "socket_mode", "0660" },
                              { "host_arena_size", "4g" }, { "index_exact_below", "100" } };
    config_t c;
    char err[256], before[512], after[512];

    (void)state;
    config_defaults(&c);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        assert_int_equal(config_key_runtime(keys[i][0]), 0);
        get(&c, keys[i][0], before, sizeof before);
        err[0] = 0;
        assert_int_equal(config_set(&c, keys[i][0], keys[i][1], 1, err, sizeof err), -1);
        assert_non_null(strstr(err, keys[i][0]));
        assert_non_null(strstr(err, "restart"));
        get(&c, keys[i][0], after, sizeof after);
        assert_string_equal(before, after);
        /* The same value is fine at start-up. */
        assert_int_equal(config_set(&c, keys[i][0], keys[i][1], 0, err, sizeof err), 0);
    }
}

static void runtime_keys_change_at_run_time(void **state)
{
    config_t c;
    char err[256];

    (void)state;
    config_defaults(&c);
    assert_int_equal(config_key_runtime("host_capacity"), 1);
    assert_int_equal(config_set(&c, "host_capacity", "2g", 1, err, sizeof err), 0);
    assert_true(c.host_capacity == 2ull << 30);
    assert_int_equal(config_set(&c, "log_level", "warn", 1, err, sizeof err), 0);
    assert_int_equal(config_set(&c, "allow_uids", "1000", 1, err, sizeof err), 0);
    assert_int_equal(config_set(&c, "default_threshold", "0.9", 1, err, sizeof err), 0);
    /* Still bounded at run time. */
    assert_int_equal(config_set(&c, "max_clients", "0", 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "max_clients"));
}

/* ---- allow_uids ---- */

static void allow_uids_parses_comma_list(void **state)
{
    config_t c;
    char err[256], v[512];

    (void)state;
    config_defaults(&c);
    assert_int_equal(set(&c, "allow_uids", "1000,0,4294967294", err, sizeof err), 0);
    assert_int_equal(c.allow_uids.n, 3);
    assert_int_equal(c.allow_uids.ids[0], 1000);
    assert_int_equal(c.allow_uids.ids[1], 0);
    assert_int_equal(c.allow_uids.ids[2], 4294967294u);
    get(&c, "allow_uids", v, sizeof v);
    assert_string_equal(v, "1000,0,4294967294");
    /* Empty clears the list: any uid that can open the socket. */
    assert_int_equal(set(&c, "allow_uids", "", err, sizeof err), 0);
    assert_int_equal(c.allow_uids.n, 0);
    get(&c, "allow_uids", v, sizeof v);
    assert_string_equal(v, "");
}

static void allow_uids_refuses_malformed_lists(void **state)
{
    (void)state;
    assert_refuses("allow_uids", "4294967295");   /* (uid_t)-1 */
    assert_refuses("allow_uids", "99999999999");
    assert_refuses("allow_uids", "-1");
    assert_refuses("allow_uids", "1,,2");
    assert_refuses("allow_uids", ",1");
    assert_refuses("allow_uids", "1, 2");
    assert_refuses("allow_uids", "1;2");
    assert_refuses("allow_uids", "root");
    assert_refuses("allow_uids", "1000 ");
}

static void allow_uids_holds_at_most_32(void **state)
{
    config_t c;
    char err[256], list[512] = "", v[512];

    (void)state;
    for (int i = 0; i < CONFIG_MAX_UIDS; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%d", i ? "," : "", 1000 + i);
    config_defaults(&c);
    assert_int_equal(set(&c, "allow_uids", list, err, sizeof err), 0);
    assert_int_equal(c.allow_uids.n, CONFIG_MAX_UIDS);
    get(&c, "allow_uids", v, sizeof v);
    assert_string_equal(v, list);
    strcat(list, ",2000");
    assert_refuses("allow_uids", list);
}

static void allow_uids_refusal_keeps_previous_list(void **state)
{
    config_t c;
    char err[256];

    (void)state;
    config_defaults(&c);
    assert_int_equal(set(&c, "allow_uids", "5,6", err, sizeof err), 0);
    assert_int_equal(set(&c, "allow_uids", "7,x", err, sizeof err), -1);
    assert_int_equal(c.allow_uids.n, 2);
    assert_int_equal(c.allow_uids.ids[0], 5);
    assert_int_equal(c.allow_uids.ids[1], 6);
}

static void get_into_small_buffer_truncates_safely(void **state)
{
    config_t c;
    char err[256], v[8];

    (void)state;
    config_defaults(&c);
    assert_int_equal(set(&c, "allow_uids", "1000000,2000000,3000000", err, sizeof err), 0);
    memset(v, 'Z', sizeof v);
    get(&c, "allow_uids", v, 5);
    assert_true(strlen(v) < 5);
    assert_int_equal(v[5], 'Z');
    get(&c, "socket", v, 5);
    assert_true(strlen(v) == 4);
}

/* ---- config file ---- */

static void file_with_comments_blank_lines_and_whitespace_loads(void **state)
{
    const char *text =
        "# simcached.conf\n"
        "\n"
        "   \n"
        "\t# indented comment\n"
        "max_clients=12\n"
        "  host_capacity   =   2g   \n"
        "\tlog_level\t=\tdebug\t\n"
        "max_entries = 512 # the paper's setting\n"
        "drain_timeout_ms = 250";     /* no final newline */
    config_t c;
    char err[256];

    (void)state;
    config_defaults(&c);
    assert_int_equal(load(&c, text, err, sizeof err), 0);
    assert_int_equal(c.max_clients, 12);
    assert_true(c.host_capacity == 2ull << 30);
    assert_int_equal(c.log_level, LOG_DEBUG);
    assert_true(c.max_entries == 512);
    assert_int_equal(c.drain_timeout_ms, 250);
}

static void file_with_crlf_line_ends_loads(void **state)
{
    const char *text = "# windows\r\nmax_clients = 7\r\n\r\nlog_level = warn\r\n";
    config_t c;
    char err[256];

    (void)state;
    config_defaults(&c);
    assert_int_equal(load(&c, text, err, sizeof err), 0);
    assert_int_equal(c.max_clients, 7);
    assert_int_equal(c.log_level, LOG_WARN);
}

static void empty_file_changes_nothing(void **state)
{
    config_t a, b;
    char err[256];

    (void)state;
    config_defaults(&a);
    config_defaults(&b);
    assert_int_equal(config_load_text(&a, "", 0, "empty.conf", err, sizeof err), 0);
    assert_memory_equal(&a, &b, sizeof a);
    assert_int_equal(load(&a, "\n\n# only comments\n", err, sizeof err), 0);
    assert_memory_equal(&a, &b, sizeof a);
}

static void line_without_equals_is_refused_with_line_number(void **state)
{
    config_t c;
    char err[256];

    (void)state;
    config_defaults(&c);
    assert_int_equal(load(&c, "max_clients = 3\n\nmax_clients 4\n", err, sizeof err), -1);
    assert_non_null(strstr(err, "test.conf:3:"));
    assert_non_null(strstr(err, "key = value"));
}

static void unknown_key_in_file_names_file_line_and_key(void **state)
{
    config_t c;
    char err[256];

    (void)state;
    config_defaults(&c);
    assert_int_equal(load(&c, "# c\nmax_clients = 3\nbogus_key = 1\n", err, sizeof err), -1);
    assert_non_null(strstr(err, "test.conf:3:"));
    assert_non_null(strstr(err, "bogus_key"));
}

static void bad_value_in_file_names_line_and_key(void **state)
{
    config_t c;
    char err[256];

    (void)state;
    config_defaults(&c);
    assert_int_equal(load(&c, "durability = maybe\n", err, sizeof err), -1);
    assert_non_null(strstr(err, "test.conf:1:"));
    assert_non_null(strstr(err, "durability"));
    assert_int_equal(load(&c, "max_clients =\n", err, sizeof err), -1);
    assert_non_null(strstr(err, "max_clients"));
    assert_int_equal(load(&c, "= 5\n", err, sizeof err), -1);
    assert_non_null(strstr(err, "test.conf:1:"));
}

static void file_may_set_restart_only_keys(void **state)
{
    config_t c;
    char err[256];

    (void)state;
    config_defaults(&c);
    assert_int_equal(load(&c, "socket = /tmp/s.sock\nindex_exact_below = 16\n", err, sizeof err),
                     0);
    assert_string_equal(c.socket, "/tmp/s.sock");
    assert_int_equal(c.index_exact_below, 16);
}

/* The LSH keys of earlier versions: a file naming them still loads (and
 * they change nothing), a flag or `config set` is refused with why. */
static void obsolete_index_keys_load_from_files_and_are_refused_elsewhere(void **state)
{
    config_t c, d;
    char err[256];

    (void)state;
    config_defaults(&c);
    config_defaults(&d);
    assert_int_equal(load(&c, "index_tables = 64\nindex_bits = 12\nindex_probes = 1\n", err,
                          sizeof err),
                     0);
    assert_memory_equal(&c, &d, sizeof c);
    assert_int_equal(config_set(&c, "index_bits", "12", 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "obsolete"));
    assert_int_equal(config_set(&c, "index_tables", "8", 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "obsolete"));
}

static void line_of_1023_bytes_is_accepted_and_1024_refused(void **state)
{
    char text[CONFIG_LINE_MAX + 8];
    config_t c;
    char err[256];

    (void)state;
    /* "max_clients = 5" padded with trailing blanks to exactly 1023 bytes. */
    memset(text, ' ', sizeof text);
    memcpy(text, "max_clients = 5", 15);
    text[CONFIG_LINE_MAX - 1] = '\n';
    config_defaults(&c);
    assert_int_equal(config_load_text(&c, text, CONFIG_LINE_MAX, "t.conf", err, sizeof err), 0);
    assert_int_equal(c.max_clients, 5);
    text[CONFIG_LINE_MAX - 1] = ' ';
    text[CONFIG_LINE_MAX] = '\n';
    assert_int_equal(config_load_text(&c, text, CONFIG_LINE_MAX + 1, "t.conf", err, sizeof err), -1);
    assert_non_null(strstr(err, "t.conf:1:"));
    assert_non_null(strstr(err, "longer"));
}

static void long_line_after_good_lines_reports_its_number(void **state)
{
    size_t n = 20 + 5000;
    char *text = malloc(n + 1);
    config_t c;
    char err[256];

    (void)state;
    assert_non_null(text);
    memcpy(text, "# a\n# b\nmax_clients=1\n", 22);
    memset(text + 22, '#', n - 22);
    text[n] = 0;
    config_defaults(&c);
    assert_int_equal(config_load_text(&c, text, n, "t.conf", err, sizeof err), -1);
    assert_non_null(strstr(err, "t.conf:4:"));
    free(text);
}

static void nul_byte_in_line_is_refused(void **state)
{
    const char text[] = "max_clients = 5\nlog_level = info\0debug\n";
    config_t c;
    char err[256];

    (void)state;
    config_defaults(&c);
    assert_int_equal(config_load_text(&c, text, sizeof text - 1, "t.conf", err, sizeof err), -1);
    assert_non_null(strstr(err, "t.conf:2:"));
    assert_non_null(strstr(err, "NUL"));
}

static void nul_byte_inside_comment_is_still_refused(void **state)
{
    const char text[] = "# comment \0 here\n";
    config_t c;
    char err[256];

    (void)state;
    config_defaults(&c);
    assert_int_equal(config_load_text(&c, text, sizeof text - 1, "t.conf", err, sizeof err), -1);
}

static void text_is_read_only_up_to_len(void **state)
{
    /* The text is not NUL-terminated after len: the parser must stop there. */
    char *text = malloc(15);
    config_t c;
    char err[256];

    (void)state;
    assert_non_null(text);
    memcpy(text, "max_clients = 9", 15);
    config_defaults(&c);
    assert_int_equal(config_load_text(&c, text, 15, "t.conf", err, sizeof err), 0);
    assert_int_equal(c.max_clients, 9);
    free(text);
}

static void load_file_reads_a_real_file(void **state)
{
    char path[] = "/tmp/simcache-test-config-XXXXXX";
    int fd = mkstemp(path);
    config_t c;
    char err[256];

    (void)state;
    assert_true(fd >= 0);
    const char body[] = "max_clients = 33\nhost_capacity = 3g\n";
    assert_int_equal(write(fd, body, sizeof body - 1), (ssize_t)(sizeof body - 1));
    close(fd);
    config_defaults(&c);
    assert_int_equal(config_load_file(&c, path, err, sizeof err), 0);
    assert_int_equal(c.max_clients, 33);
    assert_true(c.host_capacity == 3ull << 30);
    unlink(path);
}

static void load_file_missing_names_the_path(void **state)
{
    config_t c;
    char err[256];

    (void)state;
    config_defaults(&c);
    assert_int_equal(config_load_file(&c, "/nonexistent/simcache.conf", err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/simcache.conf"));
}

static void load_file_over_1_mib_is_refused(void **state)
{
    char path[] = "/tmp/simcache-test-config-XXXXXX";
    int fd = mkstemp(path);
    config_t c;
    char err[256];
    char *blank = malloc(1 << 16);

    (void)state;
    assert_true(fd >= 0);
    assert_non_null(blank);
    memset(blank, '\n', 1 << 16);
    for (int i = 0; i < 17; i++) assert_int_equal(write(fd, blank, 1 << 16), 1 << 16);
    close(fd);
    config_defaults(&c);
    assert_int_equal(config_load_file(&c, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "1 MiB"));
    unlink(path);
    free(blank);
}

/* ---- get / foreach ---- */

typedef struct {
    config_t *into;
    int count, failures, runtime_keys;
} copy_ctx_t;

static void copy_key(void *arg, const char *key, const char *value, int runtime, const char *help)
{
    copy_ctx_t *x = arg;
    char err[256];

    x->count++;
    x->runtime_keys += runtime;
    if (!help || !*help) x->failures++;
    if (config_key_runtime(key) != runtime) x->failures++;
    if (config_set(x->into, key, value, 0, err, sizeof err)) {
        print_error("round trip of %s = '%s' failed: %s\n", key, value, err);
        x->failures++;
    }
}

static void foreach_values_round_trip_through_set(void **state)
{
    config_t a, b;
    char err[256], va[512], vb[512];
    const char *changes =
        "socket = /tmp/rt/s.sock\nadmin_socket = /tmp/rt/a.sock\ndata_dir = /tmp/rt/data\n"
        "socket_mode = 0660\nhost_capacity = 3g\nhost_arena_size = 8g\nmax_entries = 512\n"
        "default_threshold = 0.9\nmax_clients = 9\nmax_frame = 1m\n"
        "max_leases_per_client = 77\nmax_puts_per_client = 5\nmax_namespaces = 3\n"
        "log_level = error\nindex_exact_below = 10\ndrain_timeout_ms = 1\nallow_uids = 1,2,3\n"
        "disk_register_arena = 0\ncpu_affinity = 0-1,3\nhost_huge_pages = off\npoll_us = 40\n";

    (void)state;
    config_defaults(&a);
    assert_int_equal(load(&a, changes, err, sizeof err), 0);
    config_defaults(&b);
    copy_ctx_t x = { .into = &b };
    config_foreach(&a, copy_key, &x);
    assert_int_equal(x.failures, 0);
    assert_int_equal(x.count, 49);
    assert_true(x.runtime_keys > 0 && x.runtime_keys < x.count);
    const char *keys[] = { "socket", "socket_mode", "host_capacity", "host_arena_size",
                           "default_threshold", "max_frame", "log_level", "allow_uids",
                           "drain_timeout_ms", "disk_register_arena",
                           "cpu_affinity", "host_huge_pages", "poll_us" };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        get(&a, keys[i], va, sizeof va);
        get(&b, keys[i], vb, sizeof vb);
        assert_string_equal(va, vb);
    }
    assert_true(b.host_arena_size == 8ull << 30);
    assert_int_equal(b.allow_uids.n, 3);
    assert_int_equal(b.disk_register_arena, 0);
}

/* fleet_key is shown as "(secret)"; giving that back keeps the value. */
static void secret_is_masked_and_survives_its_mask(void **state)
{
    config_t c;
    char v[64], err[256];

    (void)state;
    config_defaults(&c);
    get(&c, "fleet_key", v, sizeof v);
    assert_string_equal(v, "");
    assert_int_equal(config_set(&c, "fleet_key", "k3y with spaces", 0, err, sizeof err), 0);
    get(&c, "fleet_key", v, sizeof v);
    assert_string_equal(v, "(secret)");
    assert_int_equal(config_set(&c, "fleet_key", "(secret)", 0, err, sizeof err), 0);
    assert_string_equal(c.fleet_key, "k3y with spaces");
    assert_int_equal(config_set(&c, "fleet_key", "x", 1, err, sizeof err), -1); /* restart only */
    assert_int_equal(config_set(&c, "redis_url", "", 0, err, sizeof err), 0);    /* may be empty */
    assert_int_equal(config_set(&c, "advertise", "10.0.0.7:9000 rack 3", 1, err, sizeof err), 0);
    char ctl[] = "ctl?x";
    ctl[3] = 0x01;
    assert_int_equal(config_set(&c, "advertise", ctl, 1, err, sizeof err), -1);
    assert_int_equal(config_set(&c, "route_load_weight", "0.25", 1, err, sizeof err), 0);
    assert_true(c.route_load_weight == 0.25);
    assert_int_equal(config_set(&c, "heartbeat_ms", "10", 1, err, sizeof err), -1); /* below 50 */
}

/* CPU lists: numbers and ranges, comma separated; anything else refused,
 * at parse and through config_set. */
static void cpu_lists_parse_and_refuse(void **state)
{
    (void)state;
    uint64_t m[CONFIG_MAX_CPUS / 64];
    assert_int_equal(config_parse_cpus("", m), 0);
    for (size_t i = 0; i < CONFIG_MAX_CPUS / 64; i++) assert_true(m[i] == 0);
    assert_int_equal(config_parse_cpus("1,4-5,1023", m), 0);
    assert_true(m[0] == ((1ull << 1) | (1ull << 4) | (1ull << 5)));
    assert_true(m[15] == 1ull << 63);
    assert_int_equal(config_parse_cpus("0-130", m), 0);
    assert_true(m[0] == UINT64_MAX && m[1] == UINT64_MAX && m[2] == 7);
    assert_int_equal(config_parse_cpus("3,3", NULL), 0);
    const char *bad[] = { "a", "1-", "-1", "3-1", "1,", ",1", "1,,2", "1024", "0-1024",
                          "1 2", " 1", "1-2-3", "99999999999999999999", "+1", "0x1" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(config_parse_cpus(bad[i], m), -1);
        config_t c;
        char err[256];
        config_defaults(&c);
        assert_int_equal(config_set(&c, "cpu_affinity", bad[i], 0, err, sizeof err), -1);
        assert_non_null(strstr(err, "not a CPU list"));
    }
    assert_int_equal(config_parse_cpus(NULL, m), -1);
}

static void get_of_unknown_key_fails(void **state)
{
    config_t c;
    char v[64];

    (void)state;
    config_defaults(&c);
    assert_int_equal(config_get(&c, "nope", v, sizeof v), -1);
    assert_int_equal(config_get(&c, "", v, sizeof v), -1);
}

static void get_prints_sizes_as_plain_bytes(void **state)
{
    config_t c;
    char err[256], v[64];

    (void)state;
    config_defaults(&c);
    assert_int_equal(set(&c, "host_capacity", "1g", err, sizeof err), 0);
    get(&c, "host_capacity", v, sizeof v);
    assert_string_equal(v, "1073741824");
    assert_int_equal(set(&c, "max_frame", "4k", err, sizeof err), 0);
    get(&c, "max_frame", v, sizeof v);
    assert_string_equal(v, "4096");
}

/* ---- every key: class and diff ---- */

#define MAX_KEYS 128

typedef struct {
    char name[MAX_KEYS][64];
    int runtime[MAX_KEYS];
    int n;
} key_list_t;

static void list_key(void *arg, const char *key, const char *value, int runtime, const char *help)
{
    key_list_t *l = arg;

    (void)value;
    (void)help;
    assert_true(l->n < MAX_KEYS);
    snprintf(l->name[l->n], sizeof l->name[0], "%s", key);
    l->runtime[l->n++] = runtime;
}

/* The keys of the table, in its order, through config_foreach. */
static void list_keys(key_list_t *l)
{
    config_t c;

    config_defaults(&c);
    l->n = 0;
    config_foreach(&c, list_key, l);
    assert_true(l->n > 0);
}

typedef struct {
    int count;
    char key[64], from[512], to[512];
    config_class_t cls;
} diff_seen_t;

static void note_diff(void *arg, const char *key, config_class_t cls, const char *from,
                      const char *to)
{
    diff_seen_t *x = arg;

    x->count++;
    snprintf(x->key, sizeof x->key, "%s", key);
    snprintf(x->from, sizeof x->from, "%s", from);
    snprintf(x->to, sizeof x->to, "%s", to);
    x->cls = cls;
}

/* A row added without a class has CONFIG_CLASS_NONE and fails here. */
static void every_key_has_a_class(void **state)
{
    key_list_t l;
    int runtime = 0, restart = 0;

    (void)state;
    list_keys(&l);
    for (int i = 0; i < l.n; i++) {
        config_key_info_t k;
        int cls = config_key_class(l.name[i]);
        if (cls != CONFIG_RUNTIME && cls != CONFIG_RESTART)
            fail_msg("%s has no class (runtime or restart)", l.name[i]);
        assert_int_equal(config_key_info(l.name[i], &k), 0);
        assert_string_equal(k.name, l.name[i]);
        assert_int_equal(k.cls, cls);
        assert_true(k.help && *k.help);
        assert_int_equal(l.runtime[i], cls == CONFIG_RUNTIME);
        assert_int_equal(config_key_runtime(l.name[i]), cls == CONFIG_RUNTIME);
        runtime += cls == CONFIG_RUNTIME;
        restart += cls == CONFIG_RESTART;
    }
    assert_true(runtime > 0 && restart > 0);
    assert_int_equal(config_key_class("no_such_key"), -1);
}

/* For each key: a changed valid value is reported by config_diff as that
 * key alone, with the table's class and both values as config_get prints
 * them; copying the key back leaves no difference. */
static void changing_any_key_is_reported_with_its_class(void **state)
{
    key_list_t l;

    (void)state;
    list_keys(&l);
    for (int i = 0; i < l.n; i++) {
        const char *key = l.name[i];
        config_t a, b;
        char alt[512], err[256], va[512], vb[512];
        diff_seen_t x = { 0 };

        config_defaults(&a);
        if (config_change_value(&a, key, alt, sizeof alt))
            fail_msg("%s: no valid changed value (last tried '%s')", key, alt);
        b = a;
        if (config_set(&b, key, alt, 0, err, sizeof err)) fail_msg("%s = '%s': %s", key, alt, err);
        assert_int_equal(config_diff(&a, &b, note_diff, &x), 1);
        assert_int_equal(x.count, 1);
        assert_string_equal(x.key, key);
        if ((int)x.cls != config_key_class(key)) fail_msg("%s reported with class %d", key, x.cls);
        get(&a, key, va, sizeof va);
        get(&b, key, vb, sizeof vb);
        assert_string_equal(x.from, va);
        assert_string_equal(x.to, vb);
        assert_int_equal(config_copy_key(&a, &b, key), 0);
        assert_int_equal(config_diff(&a, &b, NULL, NULL), 0);
    }
}

/* `config set` at run time takes exactly the keys of class runtime. */
static void only_runtime_keys_change_at_run_time(void **state)
{
    key_list_t l;

    (void)state;
    list_keys(&l);
    for (int i = 0; i < l.n; i++) {
        config_t c;
        char alt[512], err[256];

        config_defaults(&c);
        assert_int_equal(config_change_value(&c, l.name[i], alt, sizeof alt), 0);
        err[0] = 0;
        int rc = config_set(&c, l.name[i], alt, 1, err, sizeof err);
        if ((rc == 0) != (config_key_class(l.name[i]) == CONFIG_RUNTIME))
            fail_msg("config set %s %s at run time: rc %d (%s)", l.name[i], alt, rc, err);
    }
}

/* A file that changes every key (what SIGHUP reads) is seen key by key. */
static void file_changing_every_key_differs_in_every_key(void **state)
{
    key_list_t l;
    config_t a, b;
    char text[16384], alt[512], err[256];
    size_t used = 0;

    (void)state;
    list_keys(&l);
    config_defaults(&a);
    for (int i = 0; i < l.n; i++) {
        assert_int_equal(config_change_value(&a, l.name[i], alt, sizeof alt), 0);
        used += (size_t)snprintf(text + used, sizeof text - used, "%s = %s\n", l.name[i], alt);
        assert_true(used < sizeof text);
    }
    b = a;
    assert_int_equal(load(&b, text, err, sizeof err), 0);
    assert_int_equal(config_diff(&a, &b, NULL, NULL), l.n);
    assert_int_equal(config_diff(&b, &b, NULL, NULL), 0);
}

/* Text compares up to its NUL; allow_uids up to its count. */
static void diff_ignores_bytes_past_the_value(void **state)
{
    config_t a, b;
    char err[256];

    (void)state;
    config_defaults(&a);
    assert_int_equal(config_set(&a, "allow_uids", "7", 0, err, sizeof err), 0);
    b = a;
    memset(b.socket + strlen(b.socket) + 1, 'z', sizeof b.socket - strlen(b.socket) - 1);
    b.allow_uids.ids[5] = 99;
    assert_int_equal(config_diff(&a, &b, NULL, NULL), 0);
    b.allow_uids.ids[0] = 8;
    assert_int_equal(config_diff(&a, &b, NULL, NULL), 1);
}

/* A changed fleet_key is a difference, though both read "(secret)". */
static void diff_sees_a_changed_secret_without_showing_it(void **state)
{
    config_t a, b;
    char err[256];
    diff_seen_t x = { 0 };

    (void)state;
    config_defaults(&a);
    assert_int_equal(config_set(&a, "fleet_key", "one", 0, err, sizeof err), 0);
    b = a;
    assert_int_equal(config_set(&b, "fleet_key", "two", 0, err, sizeof err), 0);
    assert_int_equal(config_diff(&a, &b, note_diff, &x), 1);
    assert_string_equal(x.key, "fleet_key");
    assert_int_equal(x.cls, CONFIG_RESTART);
    assert_string_equal(x.from, "(secret)");
    assert_string_equal(x.to, "(secret)");
}

/* config_copy_key copies the stored value, not its printed text. */
static void copy_key_is_exact(void **state)
{
    config_t a, b;
    char err[256];

    (void)state;
    config_defaults(&a);
    config_defaults(&b);
    assert_int_equal(config_set(&b, "default_threshold", "0.123456789012345", 0, err, sizeof err), 0);
    assert_int_equal(config_set(&b, "allow_uids", "1,2,3", 0, err, sizeof err), 0);
    assert_int_equal(config_copy_key(&a, &b, "default_threshold"), 0);
    assert_int_equal(config_copy_key(&a, &b, "allow_uids"), 0);
    assert_true(a.default_threshold == b.default_threshold);
    assert_int_equal(a.allow_uids.n, 3);
    assert_int_equal(a.allow_uids.ids[2], 3);
    assert_int_equal(config_copy_key(&a, &b, "no_such_key"), -1);
}

/* Keys of fixed words take each of their words and nothing else. */
static void fixed_word_keys_take_only_their_choices(void **state)
{
    key_list_t l;
    int with_choices = 0;

    (void)state;
    list_keys(&l);
    for (int i = 0; i < l.n; i++) {
        config_key_info_t k;
        config_t c;
        char word[64], bad[80], err[256];

        assert_int_equal(config_key_info(l.name[i], &k), 0);
        if (!k.choices) continue;
        with_choices++;
        config_defaults(&c);
        for (const char *p = k.choices; *p;) {
            size_t len = strcspn(p, "|");
            snprintf(word, sizeof word, "%.*s", (int)len, p);
            assert_int_equal(config_set(&c, l.name[i], word, 0, err, sizeof err), 0);
            snprintf(bad, sizeof bad, "%sx", word);
            assert_int_equal(config_set(&c, l.name[i], bad, 0, err, sizeof err), -1);
            assert_non_null(strstr(err, k.choices));
            snprintf(bad, sizeof bad, "%.*s", (int)len - 1, p);
            assert_int_equal(config_set(&c, l.name[i], bad, 0, err, sizeof err), -1);
            p += len + (p[len] == '|');
        }
        assert_int_equal(config_set(&c, l.name[i], k.choices, 0, err, sizeof err), -1);
    }
    assert_true(with_choices >= 3);   /* durability, host_huge_pages, gpu_ipc */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_are_within_every_bound),
        cmocka_unit_test(each_default_passes_its_own_validation),
        cmocka_unit_test(defaults_put_sockets_under_xdg_runtime_dir),
        cmocka_unit_test(defaults_fall_back_to_tmp_when_runtime_dir_is_too_long),
        cmocka_unit_test(size_suffixes_are_powers_of_1024),
        cmocka_unit_test(size_largest_values_fit_and_one_more_overflows),
        cmocka_unit_test(size_malformed_text_is_refused),
        cmocka_unit_test(size_keys_accept_suffixes),
        cmocka_unit_test(size_bounds_are_inclusive),
        cmocka_unit_test(integer_bounds_are_inclusive),
        cmocka_unit_test(gpu_score_keys_default_on_and_change_at_run_time),
        cmocka_unit_test(integers_refuse_signs_suffixes_and_overflow),
        cmocka_unit_test(threshold_accepts_minus_one_to_one_only),
        cmocka_unit_test(socket_mode_is_octal_and_keeps_owner_rw),
        cmocka_unit_test(log_level_takes_names),
        cmocka_unit_test(paths_must_be_nonempty_and_fit),
        cmocka_unit_test(unknown_key_is_refused_by_name),
        cmocka_unit_test(refusal_with_no_error_buffer_does_not_crash),
        cmocka_unit_test(long_bad_value_is_cut_in_the_message),
        cmocka_unit_test(restart_only_keys_are_refused_at_run_time),
        cmocka_unit_test(runtime_keys_change_at_run_time),
        cmocka_unit_test(allow_uids_parses_comma_list),
        cmocka_unit_test(allow_uids_refuses_malformed_lists),
        cmocka_unit_test(allow_uids_holds_at_most_32),
        cmocka_unit_test(allow_uids_refusal_keeps_previous_list),
        cmocka_unit_test(get_into_small_buffer_truncates_safely),
        cmocka_unit_test(file_with_comments_blank_lines_and_whitespace_loads),
        cmocka_unit_test(file_with_crlf_line_ends_loads),
        cmocka_unit_test(empty_file_changes_nothing),
        cmocka_unit_test(line_without_equals_is_refused_with_line_number),
        cmocka_unit_test(unknown_key_in_file_names_file_line_and_key),
        cmocka_unit_test(bad_value_in_file_names_line_and_key),
        cmocka_unit_test(file_may_set_restart_only_keys),
        cmocka_unit_test(obsolete_index_keys_load_from_files_and_are_refused_elsewhere),
        cmocka_unit_test(line_of_1023_bytes_is_accepted_and_1024_refused),
        cmocka_unit_test(long_line_after_good_lines_reports_its_number),
        cmocka_unit_test(nul_byte_in_line_is_refused),
        cmocka_unit_test(nul_byte_inside_comment_is_still_refused),
        cmocka_unit_test(text_is_read_only_up_to_len),
        cmocka_unit_test(load_file_reads_a_real_file),
        cmocka_unit_test(load_file_missing_names_the_path),
        cmocka_unit_test(load_file_over_1_mib_is_refused),
        cmocka_unit_test(foreach_values_round_trip_through_set),
        cmocka_unit_test(get_of_unknown_key_fails),
        cmocka_unit_test(cpu_lists_parse_and_refuse),
        cmocka_unit_test(secret_is_masked_and_survives_its_mask),
        cmocka_unit_test(get_prints_sizes_as_plain_bytes),
        cmocka_unit_test(every_key_has_a_class),
        cmocka_unit_test(changing_any_key_is_reported_with_its_class),
        cmocka_unit_test(only_runtime_keys_change_at_run_time),
        cmocka_unit_test(file_changing_every_key_differs_in_every_key),
        cmocka_unit_test(diff_ignores_bytes_past_the_value),
        cmocka_unit_test(diff_sees_a_changed_secret_without_showing_it),
        cmocka_unit_test(copy_key_is_exact),
        cmocka_unit_test(fixed_word_keys_take_only_their_choices),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
