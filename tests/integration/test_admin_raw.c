/* test_admin_raw.c - the admin text protocol over a raw socket.
 *
 * memcached-style lines in, one-line or END-terminated replies out. Every
 * command is tried against a daemon holding entries of two namespaces;
 * malformed lines (too long, control bytes, bad quotes, too many words) get
 * a one-line CLIENT_ERROR and the session goes on. Socket modes and
 * `shutdown` run on daemons of their own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define DIM 32
#define NS_A "admin model|fp-a|32"          /* model with a space */
#define NS_B "m-b|fp-b|32|tenant-b"

static it_daemon_t D;
static simcache_t *ha, *hb;
static uint64_t ids_a[3], ids_b[2];
static char reply[1 << 16];

static int group_setup(void **state)
{
    (void)state;
    if (it_daemon_start(&D, "--host-capacity", "8m", NULL)) return -1;
    ha = it_connect(D.sock, "admin model", "fp-a", NULL, DIM);
    hb = it_connect(D.sock, "m-b", "fp-b", "tenant-b", DIM);
    if (!ha || !hb) return -1;
    float e[DIM];
    for (int k = 0; k < 3; k++) {
        it_unit(100 + (uint64_t)k, e, DIM);
        ids_a[k] = it_put(ha, e, 4096 * (uint64_t)(k + 1), (uint64_t)k, k == 0 ? "meta\x01\xff" : NULL);
        if (!ids_a[k]) return -1;
    }
    for (int k = 0; k < 2; k++) {
        it_unit(200 + (uint64_t)k, e, DIM);
        ids_b[k] = it_put(hb, e, 8192, 10 + (uint64_t)k, "b");
        if (!ids_b[k]) return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    simcache_close(ha);
    simcache_close(hb);
    int rc = it_daemon_stop(&D);
    it_daemon_cleanup(&D);
    return rc;
}

static const char *cmd(const char *c)
{
    if (it_admin(&D, c, reply, sizeof reply)) fail_msg("admin '%s': no reply", c);
    return reply;
}

static int count_lines(const char *s, const char *prefix)
{
    int n = 0;
    size_t pl = strlen(prefix);
    for (const char *p = s; p && *p;) {
        if (strncmp(p, prefix, pl) == 0) n++;
        p = strchr(p, '\n');
        if (p) p++;
    }
    return n;
}

static void expect_prefix(const char *c, const char *prefix)
{
    const char *r = cmd(c);
    if (strncmp(r, prefix, strlen(prefix)) != 0)
        fail_msg("admin '%s': got \"%s\", want a reply starting \"%s\"", c, r, prefix);
}

static void help_ping_stats_info(void **state)
{
    (void)state;
    const char *r = cmd("help");
    const char *const names[] = { "help", "ping", "stats", "info", "config", "namespaces",
                                  "clients", "list", "show", "flush", "evict", "format",
                                  "shutdown" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "command=%s ", names[i]);
        if (!strstr(r, want)) fail_msg("help lacks %s: %s", names[i], r);
    }
    assert_string_equal(cmd("ping"), "PONG");
    r = cmd("stats");
    const char *const skeys[] = { "uptime_s", "clients", "namespaces", "entries", "host_bytes_used",
                                  "host_bytes_capacity", "leases_active", "lookups", "hits",
                                  "misses", "puts", "evictions", "protocol_errors",
                                  "request_errors" };
    uint64_t v;
    for (size_t i = 0; i < sizeof skeys / sizeof skeys[0]; i++)
        if (it_kv_u64(r, skeys[i], &v)) fail_msg("stats lacks %s", skeys[i]);
    assert_int_equal(it_kv_u64(r, "entries", &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(it_kv_u64(r, "puts", &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(it_kv_u64(r, "namespaces", &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(it_kv_u64(r, "host_bytes_capacity", &v), 0);
    assert_int_equal(v, 8u << 20);
    r = cmd("info");
    assert_int_equal(it_kv_u64(r, "pid", &v), 0);
    assert_int_equal(v, (uint64_t)D.pid);
    char want[256];
    snprintf(want, sizeof want, "\nsocket %s\n", D.sock);
    assert_non_null(strstr(r, want));
    snprintf(want, sizeof want, "\nadmin_socket %s\n", D.admin);
    assert_non_null(strstr(r, want));
    snprintf(want, sizeof want, "\ndata_dir %s\n", D.data);
    assert_non_null(strstr(r, want));
    assert_int_equal(it_kv_u64(r, "host_capacity", &v), 0);
    assert_int_equal(v, 8u << 20);
    assert_int_equal(it_kv_u64(r, "protocol_version", &v), 0);
    assert_int_equal(v, 1);
}

static void config_get_set(void **state)
{
    (void)state;
    const char *r = cmd("config get all");
    const char *const keys[] = { "socket", "admin_socket", "data_dir", "socket_mode",
                                 "host_capacity", "max_entries", "default_threshold",
                                 "max_clients", "max_frame", "log_level", "drain_timeout_ms" };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "key=%s ", keys[i]);
        if (!strstr(r, want)) fail_msg("config get all lacks %s", keys[i]);
    }
    assert_non_null(strstr(r, "key=max_entries value=0 runtime=1"));
    assert_non_null(strstr(r, "key=data_dir"));
    assert_true(strstr(r, "key=socket_mode value=0600 runtime=0") != NULL);
    assert_string_equal(cmd("config get max_entries"), "max_entries 0");
    /* runtime key: set and read back, also in info */
    assert_string_equal(cmd("config set max_entries 100"), "OK max_entries = 100");
    assert_string_equal(cmd("config get max_entries"), "max_entries 100");
    assert_int_equal(it_admin_u64(&D, "info", "max_entries"), 100);
    assert_string_equal(cmd("config set host_capacity 4m"), "OK host_capacity = 4194304");
    assert_int_equal(it_admin_u64(&D, "stats", "host_bytes_capacity"), 4u << 20);
    assert_string_equal(cmd("config set host_capacity 8m"), "OK host_capacity = 8388608");
    /* static keys are refused, values stay */
    expect_prefix("config set socket /tmp/elsewhere.sock", "CLIENT_ERROR 'socket' cannot change at run time");
    expect_prefix("config set host_arena_size 1g", "CLIENT_ERROR");
    expect_prefix("config set data_dir /tmp", "CLIENT_ERROR");
    expect_prefix("config set index_bits 8", "CLIENT_ERROR");
    char want[200];
    snprintf(want, sizeof want, "socket %s", D.sock);
    assert_string_equal(cmd("config get socket"), want);
    /* bad values are refused, values stay */
    expect_prefix("config set max_entries abc", "CLIENT_ERROR max_entries:");
    expect_prefix("config set max_entries -1", "CLIENT_ERROR");
    expect_prefix("config set max_clients 0", "CLIENT_ERROR");
    expect_prefix("config set default_threshold 1.5", "CLIENT_ERROR");
    expect_prefix("config set default_threshold nan", "CLIENT_ERROR");
    expect_prefix("config set log_level loud", "CLIENT_ERROR");
    expect_prefix("config set max_frame 100", "CLIENT_ERROR");
    expect_prefix("config set host_capacity 9m", "CLIENT_ERROR host_capacity: at most the arena size");
    expect_prefix("config set allow_uids x,y", "CLIENT_ERROR");
    assert_string_equal(cmd("config get max_entries"), "max_entries 100");
    assert_int_equal(it_admin_u64(&D, "stats", "host_bytes_capacity"), 8u << 20);
    /* unknown keys and usage */
    expect_prefix("config get no_such_key", "CLIENT_ERROR unknown key 'no_such_key'");
    expect_prefix("config set no_such_key 1", "CLIENT_ERROR unknown key");
    expect_prefix("config", "CLIENT_ERROR usage");
    expect_prefix("config get", "CLIENT_ERROR usage");
    expect_prefix("config set max_entries", "CLIENT_ERROR usage");
    assert_string_equal(cmd("config set max_entries 0"), "OK max_entries = 0");
}

static void list_show_namespaces_clients(void **state)
{
    (void)state;
    const char *r = cmd("list");
    assert_int_equal(count_lines(r, "id="), 5);
    /* most recently used first: b's last put */
    char want[128];
    snprintf(want, sizeof want, "id=%llu ", (unsigned long long)ids_b[1]);
    assert_true(strncmp(r, want, strlen(want)) == 0);
    assert_int_equal(count_lines(cmd("list 4"), "id="), 4);   /* no namespace 4 */
    assert_int_equal(count_lines(cmd("list \"" NS_A "\""), "id="), 3);
    assert_int_equal(count_lines(cmd("list " NS_B), "id="), 2);
    assert_int_equal(count_lines(cmd("list " NS_B " 1"), "id="), 1);
    assert_int_equal(count_lines(cmd("list 0"), "id="), 0);
    expect_prefix("list no-such-ns", "CLIENT_ERROR no namespace");
    expect_prefix("list " NS_B " x", "CLIENT_ERROR usage");
    expect_prefix("list " NS_B " 1 2", "CLIENT_ERROR usage");

    char c[64];
    snprintf(c, sizeof c, "show %llu", (unsigned long long)ids_a[0]);
    r = cmd(c);
    uint64_t v;
    assert_int_equal(it_kv_u64(r, "id", &v), 0);
    assert_int_equal(v, ids_a[0]);
    assert_int_equal(it_kv_u64(r, "size", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(it_kv_u64(r, "dtype", &v), 0);
    assert_int_equal(v, SIMCACHE_DTYPE_F16);
    assert_int_equal(it_kv_u64(r, "tokens", &v), 0);
    assert_int_equal(v, 8);
    assert_int_equal(it_kv_u64(r, "meta_len", &v), 0);
    assert_int_equal(v, 6);
    assert_non_null(strstr(r, "\nmeta_hex 6d65746101ff"));
    assert_non_null(strstr(r, "\nnamespace \"" NS_A "\"\n"));
    assert_non_null(strstr(r, "\ntier host\n"));
    assert_non_null(strstr(r, "\nxxh3 "));
    assert_int_equal(it_kv_u64(r, "leases", &v), 0);
    assert_int_equal(v, 0);
    expect_prefix("show 999999", "NOT_FOUND");
    expect_prefix("show abc", "CLIENT_ERROR usage");
    expect_prefix("show", "CLIENT_ERROR usage");
    expect_prefix("show 1 2", "CLIENT_ERROR usage");

    {   /* one lookup in NS_A, an exact search over its 3 entries; of a[2],
         * since flush_and_evict needs a[0] least recently used */
        float e[DIM];
        simcache_match_t hit;
        it_unit(102, e, DIM);
        assert_int_equal(simcache_lookup(ha, e, 0.99f, &hit), 0);
        assert_int_equal(simcache_release(ha, &hit), 0);
    }
    r = cmd("namespaces");
    assert_int_equal(count_lines(r, "id="), 2);
    {
        const char *a = strstr(r, "model=\"admin model\"");
        assert_non_null(a);
        const char *sv = strstr(a, "index_searches="), *cv = strstr(a, "index_candidates=");
        assert_non_null(sv);
        assert_non_null(cv);
        unsigned long long ns = strtoull(sv + 15, NULL, 10), nc = strtoull(cv + 17, NULL, 10);
        assert_true(ns >= 1);
        assert_true(nc >= 3 && nc <= 3 * ns);
    }
    assert_non_null(strstr(r, "model=\"admin model\" layout=fp-a dim=32 tenant=\"\" entries=3"));
    assert_non_null(strstr(r, "model=m-b layout=fp-b dim=32 tenant=tenant-b entries=2"));

    r = cmd("clients");
    assert_int_equal(count_lines(r, "id="), 2);
    snprintf(want, sizeof want, "pid=%d ", (int)getpid());
    assert_non_null(strstr(r, want));
    assert_non_null(strstr(r, "namespace=" NS_B " "));
    /* a lease shows up in clients and show */
    simcache_match_t m;
    assert_int_equal(simcache_get(hb, ids_b[0], &m), 0);
    assert_non_null(strstr(cmd("clients"), "leases=1 "));
    snprintf(c, sizeof c, "show %llu", (unsigned long long)ids_b[0]);
    assert_int_equal(it_kv_u64(cmd(c), "leases", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(simcache_release(hb, &m), 0);
}

static void flush_and_evict(void **state)
{
    (void)state;
    expect_prefix("flush no-such-ns", "CLIENT_ERROR no namespace");
    expect_prefix("flush a b", "CLIENT_ERROR usage");
    expect_prefix("evict", "CLIENT_ERROR usage");
    expect_prefix("evict -3", "CLIENT_ERROR usage");
    expect_prefix("evict x", "CLIENT_ERROR usage");
    assert_string_equal(cmd("flush " NS_B), "OK flushed 2");
    assert_int_equal(it_admin_u64(&D, "stats", "entries"), 3);
    simcache_match_t m, x;
    assert_int_equal(simcache_get(hb, ids_b[0], &x), SIMCACHE_ENOTFOUND);
    /* a[2] leased; a[0] is the least recently used of the others */
    assert_int_equal(simcache_get(ha, ids_a[2], &m), 0);
    assert_string_equal(cmd("evict 0"), "OK evicted 0");
    assert_string_equal(cmd("evict 1"), "OK evicted 1");
    assert_int_equal(simcache_get(ha, ids_a[0], &x), SIMCACHE_ENOTFOUND);
    assert_string_equal(cmd("evict 100"), "OK evicted 1");
    assert_int_equal(simcache_get(ha, ids_a[1], &x), SIMCACHE_ENOTFOUND);
    assert_int_equal(it_admin_u64(&D, "stats", "entries"), 1);
    assert_int_equal(it_admin_u64(&D, "stats", "evictions"), 2);
    /* flush takes leased entries too: they stop matching, the holder keeps
     * its bytes until it releases */
    assert_string_equal(cmd("flush"), "OK flushed 1");
    assert_int_equal(it_admin_u64(&D, "stats", "entries"), 0);
    assert_int_equal(it_admin_u64(&D, "stats", "leases_active"), 1);
    assert_int_equal(simcache_get(ha, ids_a[2], &x), SIMCACHE_ENOTFOUND);
    assert_int_equal(it_check(m.data, m.size, 2), 0);
    assert_int_equal(simcache_release(ha, &m), 0);
    assert_int_equal(it_admin_u64(&D, "stats", "host_bytes_used"), 0);
    assert_string_equal(cmd("flush"), "OK flushed 0");
    /* flush by namespace id (a's namespace was created first: id 1) */
    float e[DIM];
    it_unit(300, e, DIM);
    assert_true(it_put(ha, e, 4096, 3, NULL) != 0);
    assert_true(it_put(hb, e, 4096, 4, NULL) != 0);
    assert_string_equal(cmd("flush 1"), "OK flushed 1");
    assert_int_equal(it_admin_u64(&D, "stats", "entries"), 1);
    assert_int_equal(simcache_lookup(hb, e, -1, &x), 0);
    assert_int_equal(simcache_release(hb, &x), 0);
}

static void format_json_and_back(void **state)
{
    (void)state;
    it_admin_t a;
    assert_int_equal(it_admin_open(&a, D.admin), 0);
    char line[1 << 15];
    assert_int_equal(it_admin_send(&a, "format json\n"), 0);
    assert_int_equal(it_admin_line(&a, line, sizeof line), 0);
    assert_string_equal(line, "{\"ok\":true,\"message\":\"format json\"}");
    const char *const cmds[] = { "stats", "info", "help", "config get all", "config get max_entries",
                                 "namespaces", "clients", "list", "show 999", "bogus",
                                 "config set socket x", "ping" };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char c[64];
        snprintf(c, sizeof c, "%s\n", cmds[i]);
        assert_int_equal(it_admin_send(&a, c), 0);
        assert_int_equal(it_admin_line(&a, line, sizeof line), 0);
        size_t n = strlen(line);
        /* one line, one document (full validation is in test_admin.sh) */
        assert_true(n >= 2);
        assert_true((line[0] == '{' && line[n - 1] == '}') || (line[0] == '[' && line[n - 1] == ']'));
    }
    assert_int_equal(it_admin_send(&a, "format text\nping\n"), 0);
    assert_int_equal(it_admin_line(&a, line, sizeof line), 0);
    assert_string_equal(line, "OK format text");
    assert_int_equal(it_admin_line(&a, line, sizeof line), 0);
    assert_string_equal(line, "PONG");
    assert_int_equal(it_admin_send(&a, "format yaml\n"), 0);
    assert_int_equal(it_admin_line(&a, line, sizeof line), 0);
    assert_string_equal(line, "CLIENT_ERROR usage: format text|json");
    it_admin_close(&a);
}

static void send_and_expect(it_admin_t *a, const char *text, const char *const *lines, size_t n)
{
    assert_int_equal(it_send_all(a->fd, text, strlen(text)), 0);
    for (size_t i = 0; i < n; i++) {
        char line[8192];
        if (it_admin_line(a, line, sizeof line)) fail_msg("no line %zu (want \"%s\")", i, lines[i]);
        if (strncmp(line, lines[i], strlen(lines[i])) != 0)
            fail_msg("line %zu: got \"%s\", want \"%s...\"", i, line, lines[i]);
    }
}

static void bad_lines_get_client_error_and_session_goes_on(void **state)
{
    (void)state;
    it_admin_t a;
    assert_int_equal(it_admin_open(&a, D.admin), 0);
    /* unknown command */
    const char *const unk[] = { "ERROR unknown command 'frobnicate' (try help)", "PONG" };
    send_and_expect(&a, "frobnicate now\nping\n", unk, 2);
    /* over 4096 bytes, with its newline in the same write */
    char *big = malloc(6000);
    assert_non_null(big);
    memset(big, 'x', 5000);
    strcpy(big + 5000, "\nping\n");
    const char *const toolong[] = { "CLIENT_ERROR line longer than 4096 bytes", "PONG" };
    send_and_expect(&a, big, toolong, 2);
    /* over 4096 bytes arriving without a newline, then the rest later */
    big[5000] = 0;
    assert_int_equal(it_send_all(a.fd, big, 5000), 0);
    const char *const one[] = { "CLIENT_ERROR line longer than 4096 bytes" };
    send_and_expect(&a, "", one, 1);
    const char *const pong[] = { "PONG" };
    send_and_expect(&a, "yyyy more of it\nping\n", pong, 1);
    /* exactly 4096 bytes is a line; 4097 is not */
    memcpy(big, "ping", 4);
    memset(big + 4, ' ', 4092);
    strcpy(big + 4096, "\n");
    send_and_expect(&a, big, pong, 1);
    memset(big + 4, ' ', 4093);
    strcpy(big + 4097, "\n");
    const char *const over[] = { "CLIENT_ERROR line longer than 4096 bytes" };
    send_and_expect(&a, big, over, 1);
    free(big);
    /* CRLF, empty lines, tabs */
    send_and_expect(&a, "\n\r\n  \t \nping\r\n", pong, 1);
    /* tokenizer errors */
    const char *const ctl[] = { "CLIENT_ERROR control byte 0x01" };
    send_and_expect(&a, "ping \x01\n", ctl, 1);
    const char *const del[] = { "CLIENT_ERROR control byte 0x7f" };
    send_and_expect(&a, "stats\x7f\n", del, 1);
    const char *const quote[] = { "CLIENT_ERROR unterminated quote" };
    send_and_expect(&a, "list \"abc\n", quote, 1);
    const char *const words[] = { "CLIENT_ERROR more than 8 words" };
    send_and_expect(&a, "a b c d e f g h i\n", words, 1);
    const char *const nul[] = { "CLIENT_ERROR control byte 0x00" };
    assert_int_equal(it_send_all(a.fd, "ping\0x\n", 7), 0);
    send_and_expect(&a, "", nul, 1);
    /* still the same session */
    send_and_expect(&a, "ping\n", pong, 1);
    it_admin_close(&a);
    assert_int_equal(it_admin_u64(&D, "stats", "clients"), 2);
    assert_false(it_daemon_exited(&D));
}

static void pipelined_admin_commands_answer_in_order(void **state)
{
    (void)state;
    it_admin_t a;
    assert_int_equal(it_admin_open(&a, D.admin), 0);
    const char *const lines[] = { "PONG", "max_entries 0", "END", "ERROR unknown command 'nope'",
                                  "CLIENT_ERROR usage: show ID", "PONG" };
    send_and_expect(&a, "ping\nconfig get max_entries\nnope\nshow\nping\n", lines, 1);
    char line[256];
    for (size_t i = 1; i < sizeof lines / sizeof lines[0]; i++) {
        assert_int_equal(it_admin_line(&a, line, sizeof line), 0);
        if (strncmp(line, lines[i], strlen(lines[i])) != 0)
            fail_msg("line %zu: got \"%s\", want \"%s\"", i, line, lines[i]);
    }
    it_admin_close(&a);
}

/* "list [NS] [LIMIT]" (docs/admin.md): a single number is a namespace id
 * when such a namespace exists, else a limit; both given: NS then LIMIT. */
static void list_single_number_is_namespace_else_limit(void **state)
{
    (void)state;
    assert_int_equal(count_lines(cmd("list 3"), "id="), 3);    /* no namespace 3: limit */
    const char *r = cmd("list 1");                           /* namespace 1 exists */
    assert_int_equal(count_lines(r, "id="), 3);
    assert_null(strstr(r, " ns=2 "));
    assert_int_equal(count_lines(cmd("list 1 1"), "id="), 1);
    assert_int_equal(count_lines(cmd("list 2 100"), "id="), 2);
}

/* ---- daemons of their own ---- */

static it_daemon_t D2;

static int teardown2(void **state)
{
    (void)state;
    it_daemon_cleanup(&D2);
    return 0;
}

static unsigned mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    return (unsigned)(st.st_mode & 07777);
}

static void read_log(const it_daemon_t *d, char *out, size_t n)
{
    FILE *f = fopen(d->log, "r");
    size_t k = f ? fread(out, 1, n - 1, f) : 0;
    out[k] = 0;
    if (f) fclose(f);
}

/* Log lines carry the pid; under systemd (JOURNAL_STREAM) they start with
 * the syslog priority and leave the timestamp to the journal. */
static void log_lines_carry_pid_and_journal_priority(void **state)
{
    (void)state;
    static char text[65536];
    char want[64];
    assert_int_equal(it_daemon_start(&D2, NULL), 0);
    snprintf(want, sizeof want, "Z simcached[%d] info: ", (int)D2.pid);
    assert_int_equal(it_daemon_stop(&D2), 0);
    read_log(&D2, text, sizeof text);
    it_daemon_cleanup(&D2);
    assert_non_null(strstr(text, want));
    setenv("JOURNAL_STREAM", "8:4242", 1);
    int rc = it_daemon_start(&D2, NULL);
    unsetenv("JOURNAL_STREAM");
    assert_int_equal(rc, 0);
    int pid = (int)D2.pid;
    assert_int_equal(it_daemon_stop(&D2), 0);
    static char journal[65536];
    read_log(&D2, journal, sizeof journal);
    char jwant[64], jwarn[64];
    snprintf(jwant, sizeof jwant, "<6>simcached[%d] info: ", pid);
    snprintf(jwarn, sizeof jwarn, "\n<6>simcached[%d] info: bye", pid);
    assert_non_null(strstr(journal, jwant));
    assert_non_null(strstr(journal, jwarn));
    assert_null(strstr(journal, "Z simcached"));
}

static void sockets_are_private_by_default(void **state)
{
    (void)state;
    assert_int_equal(mode_of(D.sock), 0600);
    assert_int_equal(mode_of(D.admin), 0600);
    assert_int_equal(it_daemon_start(&D2, "--socket-mode", "0660", NULL), 0);
    assert_int_equal(mode_of(D2.sock), 0660);
    assert_int_equal(mode_of(D2.admin), 0660);
    assert_int_equal(it_daemon_stop(&D2), 0);
    /* modes that lock out the owner, or are not octal, are refused */
    char log[160];
    snprintf(log, sizeof log, "%s/refused.log", D2.dir);
    const char *const bad[][3] = { { "--socket-mode", "0400", NULL }, { "--socket-mode", "999", NULL } };
    for (int i = 0; i < 2; i++) {
        pid_t p = it_spawn(log, bad[i]);
        assert_int_equal(it_wait_pid(p, IT_TIMEOUT_MS), 2);
    }
}

/* A mistyped --socket that names a regular file must not delete it: the
 * daemon refuses to start and the file keeps its bytes. */
static void socket_path_on_a_regular_file_is_refused_not_deleted(void **state)
{
    (void)state;
    char dir[] = "/tmp/scit-notsock-XXXXXX", file[96], admin[96], data[96], log[96];
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof file, "%s/precious.txt", dir);
    snprintf(admin, sizeof admin, "%s/admin.sock", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(log, sizeof log, "%s/daemon.log", dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs("keep me\n", f);
    fclose(f);
    const char *const args[] = { "--socket", file, "--admin-socket", admin, "--data-dir", data,
                                 NULL };
    pid_t p = it_spawn(log, args);
    assert_int_not_equal(it_wait_pid(p, IT_TIMEOUT_MS), 0);
    char buf[32] = { 0 };
    f = fopen(file, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    assert_string_equal(buf, "keep me\n");
    char text[4096] = { 0 };
    f = fopen(log, "r");
    assert_non_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    assert_non_null(strstr(text, "not a socket"));
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* An operator session left open (a monitoring tool, a forgotten
 * simcachectl) must not keep the daemon from exiting cleanly. */
static void sigterm_with_open_admin_session_exits_zero(void **state)
{
    (void)state;
    assert_int_equal(it_daemon_start(&D2, NULL), 0);
    it_admin_t a;
    assert_int_equal(it_admin_open(&a, D2.admin), 0);
    char line[256];
    assert_int_equal(it_admin_send(&a, "ping\n"), 0);
    assert_int_equal(it_admin_line(&a, line, sizeof line), 0);
    assert_string_equal(line, "PONG");
    assert_int_equal(it_daemon_stop(&D2), 0);
    assert_int_equal(it_wait_eof(a.fd, IT_TIMEOUT_MS), 1);
    it_admin_close(&a);
    assert_int_equal(access(D2.sock, F_OK), -1);
    assert_int_equal(access(D2.admin, F_OK), -1);
}

/* A client that never reads its replies: the drain gives up after
 * drain_timeout_ms and the daemon still exits 0. */
static void sigterm_with_a_client_that_never_reads_still_exits(void **state)
{
    (void)state;
    assert_int_equal(it_daemon_start(&D2, "--drain-timeout-ms", "300", NULL), 0);
    int s = it_raw_connect(D2.sock);
    assert_true(s >= 0);
    assert_int_equal(it_raw_hello(s, "m", "f", NULL, DIM, NULL, NULL), 0);
    proto_wr_t w;
    proto_wr_init(&w);
    uint8_t *payload = calloc(1, 60000);
    assert_non_null(payload);
    proto_wr_frame(&w, OP_PING, 1, 0, payload, 60000);
    /* Write a stream of pings until the daemon stops taking them (its reply
     * buffer for us is full: back-pressure), at most 64 MiB. */
    uint64_t sent = 0;
    size_t off = 0;
    int idle = 0;
    for (;;) {
        struct pollfd p = { s, POLLOUT, 0 };
        if (poll(&p, 1, 1000) <= 0) {
            /* Not writable for a second after more than the daemon's 8 MiB
             * reply budget: it is pushing back. */
            if (sent >= (8u << 20)) break;
            if (++idle > 30) fail_msg("the daemon stopped reading after %llu bytes",
                                      (unsigned long long)sent);
            continue;
        }
        ssize_t k = send(s, w.buf + off, w.len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k < 0) {
            assert_true(errno == EAGAIN || errno == EINTR);
            continue;
        }
        sent += (uint64_t)k;
        off = (off + (size_t)k) % w.len;
        if (sent > (64u << 20)) fail_msg("the daemon took 64 MiB without pushing back");
    }
    assert_int_equal(it_daemon_stop(&D2), 0);
    FILE *f = fopen(D2.log, "r");
    assert_non_null(f);
    char line[512];
    int timed_out = 0;
    while (fgets(line, sizeof line, f)) timed_out |= strstr(line, "drain timeout") != NULL;
    fclose(f);
    assert_true(timed_out);
    free(payload);
    proto_wr_free(&w);
    close(s);
}

static void shutdown_command_drains_and_exits_zero(void **state)
{
    (void)state;
    assert_int_equal(it_daemon_start(&D2, NULL), 0);
    simcache_t *h = it_connect(D2.sock, "m", "f", NULL, DIM);
    assert_non_null(h);
    float e[DIM];
    it_unit(1, e, DIM);
    assert_true(it_put(h, e, 4096, 1, NULL) != 0);
    simcache_match_t m;
    assert_int_equal(simcache_lookup(h, e, -1, &m), 0);
    it_admin_t a;
    assert_int_equal(it_admin_open(&a, D2.admin), 0);
    assert_int_equal(it_admin_send(&a, "shutdown\n"), 0);
    char line[256];
    assert_int_equal(it_admin_line(&a, line, sizeof line), 0);
    assert_string_equal(line, "OK shutting down");
    it_admin_close(&a);
    assert_int_equal(it_wait_pid(D2.pid, IT_TIMEOUT_MS), 0);
    D2.pid = 0;
    /* socket files gone; the client's next request fails cleanly */
    assert_int_equal(access(D2.sock, F_OK), -1);
    assert_int_equal(access(D2.admin, F_OK), -1);
    int rc = simcache_ping(h);
    assert_true(rc == SIMCACHE_ECLOSED || rc == SIMCACHE_EIO || rc == SIMCACHE_ESHUTDOWN);
    simcache_close(h);
}

int main(int argc, char **argv)
{
    it_init(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(help_ping_stats_info),
        cmocka_unit_test(config_get_set),
        cmocka_unit_test(list_show_namespaces_clients),
        cmocka_unit_test(format_json_and_back),
        cmocka_unit_test(bad_lines_get_client_error_and_session_goes_on),
        cmocka_unit_test(pipelined_admin_commands_answer_in_order),
        cmocka_unit_test(list_single_number_is_namespace_else_limit),
        cmocka_unit_test(flush_and_evict),
        cmocka_unit_test_teardown(log_lines_carry_pid_and_journal_priority, teardown2),
        cmocka_unit_test_teardown(sockets_are_private_by_default, teardown2),
        cmocka_unit_test(socket_path_on_a_regular_file_is_refused_not_deleted),
        cmocka_unit_test_teardown(shutdown_command_drains_and_exits_zero, teardown2),
        cmocka_unit_test_teardown(sigterm_with_open_admin_session_exits_zero, teardown2),
        cmocka_unit_test_teardown(sigterm_with_a_client_that_never_reads_still_exits, teardown2),
    };
    return cmocka_run_group_tests_name("integration: admin protocol", tests, group_setup,
                                       group_teardown);
}
