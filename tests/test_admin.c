/* test_admin.c - the admin line tokenizer: words, tabs, quotes, control
 * bytes and its strict bounds (8 words, 4096 bytes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "admin_parse.h"

static int parse(const char *line, admin_args_t *a, char *err, size_t errlen)
{
    err[0] = 0;
    return admin_parse_line(line, strlen(line), a, err, errlen);
}

/* line parses into exactly the n words given. */
static void assert_words(const char *line, int n, ...)
{
    admin_args_t a;
    char err[128];
    va_list ap;

    if (parse(line, &a, err, sizeof err)) fail_msg("'%s' refused: %s", line, err);
    assert_int_equal(a.argc, n);
    va_start(ap, n);
    for (int i = 0; i < n; i++) assert_string_equal(a.argv[i], va_arg(ap, const char *));
    va_end(ap);
}

/* line is refused with a message containing why. */
static void assert_refused(const char *line, size_t len, const char *why)
{
    admin_args_t a;
    char err[128] = "";

    if (admin_parse_line(line, len, &a, err, sizeof err) == 0) fail_msg("'%.40s' accepted", line);
    if (!strstr(err, why)) fail_msg("message '%s' lacks '%s'", err, why);
}

static void single_word_is_one_argument(void **state)
{
    (void)state;
    assert_words("stats", 1, "stats");
}

static void words_split_on_spaces(void **state)
{
    (void)state;
    assert_words("config set log_level debug", 4, "config", "set", "log_level", "debug");
}

static void runs_of_spaces_and_tabs_separate_like_one(void **state)
{
    (void)state;
    assert_words("  list\t\t ns1   \t10  ", 3, "list", "ns1", "10");
    assert_words("\tshow\t42", 2, "show", "42");
}

static void empty_and_blank_lines_have_no_words(void **state)
{
    admin_args_t a;
    char err[128];

    (void)state;
    assert_int_equal(admin_parse_line("", 0, &a, err, sizeof err), 0);
    assert_int_equal(a.argc, 0);
    assert_int_equal(admin_parse_line(NULL, 0, &a, err, sizeof err), 0);
    assert_int_equal(a.argc, 0);
    assert_int_equal(parse(" \t \t ", &a, err, sizeof err), 0);
    assert_int_equal(a.argc, 0);
}

static void quoted_word_keeps_spaces_and_tabs(void **state)
{
    (void)state;
    assert_words("list \"llama 3/kv fp\" 5", 3, "list", "llama 3/kv fp", "5");
    assert_words("x \"a\tb\"", 2, "x", "a\tb");
}

static void empty_quoted_word_is_an_empty_argument(void **state)
{
    (void)state;
    assert_words("config set allow_uids \"\"", 4, "config", "set", "allow_uids", "");
    assert_words("\"\"", 1, "");
}

static void quoted_word_may_touch_end_of_line(void **state)
{
    (void)state;
    assert_words("flush \"ns\"", 2, "flush", "ns");
    assert_words("\"a\"\t\"b\"", 2, "a", "b");
}

static void unterminated_quote_is_refused(void **state)
{
    (void)state;
    assert_refused("flush \"ns", 9, "unterminated");
    assert_refused("\"", 1, "unterminated");
}

static void quote_inside_a_word_is_refused(void **state)
{
    (void)state;
    assert_refused("ab\"cd\"", 6, "quote");
    assert_refused("flush ns\"", 9, "quote");
}

static void text_glued_after_closing_quote_is_refused(void **state)
{
    (void)state;
    assert_refused("\"ab\"cd", 6, "quote must end");
    assert_refused("\"ab\"\"cd\"", 8, "quote must end");
}

static void control_bytes_are_refused(void **state)
{
    (void)state;
    assert_refused("stats\r", 6, "control byte 0x0d");
    assert_refused("a\x01" "b", 3, "control byte 0x01");
    assert_refused("a\x1b[2J", 5, "control byte 0x1b");
    assert_refused("ping\x7f", 5, "0x7f");
    assert_refused("a \"b\nc\"", 7, "control byte 0x0a");
}

static void nul_byte_is_refused(void **state)
{
    (void)state;
    assert_refused("stats\0evil", 10, "control byte 0x00");
    assert_refused("\"a\0b\"", 5, "control byte 0x00");
}

static void bytes_above_0x7f_pass_through(void **state)
{
    (void)state;
    assert_words("show caf\xc3\xa9", 2, "show", "caf\xc3\xa9");
    assert_words("\xff\x80", 1, "\xff\x80");
}

static void eight_words_are_accepted(void **state)
{
    (void)state;
    assert_words("a b c d e f g h", 8, "a", "b", "c", "d", "e", "f", "g", "h");
    assert_words("a b c d e f g h   ", 8, "a", "b", "c", "d", "e", "f", "g", "h");
}

static void nine_words_are_refused(void **state)
{
    (void)state;
    assert_refused("a b c d e f g h i", 17, "more than 8 words");
    assert_refused("a b c d e f g h \"\"", 18, "more than 8 words");
}

static void line_of_4096_bytes_is_accepted(void **state)
{
    char *line = malloc(ADMIN_MAX_LINE);
    admin_args_t a;
    char err[128];

    (void)state;
    assert_non_null(line);
    memset(line, 'x', ADMIN_MAX_LINE);
    assert_int_equal(admin_parse_line(line, ADMIN_MAX_LINE, &a, err, sizeof err), 0);
    assert_int_equal(a.argc, 1);
    assert_int_equal(strlen(a.argv[0]), ADMIN_MAX_LINE);
    free(line);
}

static void line_of_4097_bytes_is_refused(void **state)
{
    char *line = malloc(ADMIN_MAX_LINE + 1);

    (void)state;
    assert_non_null(line);
    memset(line, 'x', ADMIN_MAX_LINE + 1);
    assert_refused(line, ADMIN_MAX_LINE + 1, "longer than 4096");
    /* Blanks count too. */
    memset(line, ' ', ADMIN_MAX_LINE + 1);
    assert_refused(line, ADMIN_MAX_LINE + 1, "longer than 4096");
    free(line);
}

/* The worst case for the word buffer: 8 words filling 4096 bytes all need
 * their NUL terminators too. */
static void eight_words_filling_the_limit_fit_the_buffer(void **state)
{
    char *line = malloc(ADMIN_MAX_LINE);
    admin_args_t a;
    char err[128];
    size_t wlen = (ADMIN_MAX_LINE - 7) / 8;   /* 8 words, 7 separators */

    (void)state;
    assert_non_null(line);
    memset(line, 'w', ADMIN_MAX_LINE);
    for (int i = 1; i < 8; i++) line[i * (wlen + 1) - 1] = ' ';
    assert_int_equal(admin_parse_line(line, ADMIN_MAX_LINE, &a, err, sizeof err), 0);
    assert_int_equal(a.argc, 8);
    size_t total = 0;
    for (int i = 0; i < 8; i++) {
        total += strlen(a.argv[i]);
        assert_true(a.argv[i] >= a.buf && a.argv[i] < a.buf + sizeof a.buf);
    }
    assert_int_equal(total + 7, ADMIN_MAX_LINE);
    free(line);
}

static void quoted_word_of_4094_bytes_at_the_limit(void **state)
{
    char *line = malloc(ADMIN_MAX_LINE);
    admin_args_t a;
    char err[128];

    (void)state;
    assert_non_null(line);
    memset(line, 'q', ADMIN_MAX_LINE);
    line[0] = '"';
    line[ADMIN_MAX_LINE - 1] = '"';
    assert_int_equal(admin_parse_line(line, ADMIN_MAX_LINE, &a, err, sizeof err), 0);
    assert_int_equal(a.argc, 1);
    assert_int_equal(strlen(a.argv[0]), ADMIN_MAX_LINE - 2);
    free(line);
}

static void parse_reads_only_len_bytes(void **state)
{
    /* "stats" followed by bytes that would be refused, past len. */
    const char line[] = "stats\x01\x02";
    admin_args_t a;
    char err[128];

    (void)state;
    assert_int_equal(admin_parse_line(line, 5, &a, err, sizeof err), 0);
    assert_int_equal(a.argc, 1);
    assert_string_equal(a.argv[0], "stats");
}

static void small_error_buffer_is_not_overrun(void **state)
{
    admin_args_t a;
    char err[8];

    (void)state;
    memset(err, 'Z', sizeof err);
    assert_int_equal(admin_parse_line("\"open", 5, &a, err, 4), -1);
    assert_int_equal(strlen(err), 3);
    assert_int_equal(err[4], 'Z');
    assert_int_equal(admin_parse_line("\"open", 5, &a, NULL, 0), -1);
}

static void parser_state_does_not_leak_between_calls(void **state)
{
    admin_args_t a;
    char err[128];

    (void)state;
    assert_int_equal(parse("a b c d e f g h", &a, err, sizeof err), 0);
    assert_int_equal(parse("ping", &a, err, sizeof err), 0);
    assert_int_equal(a.argc, 1);
    assert_string_equal(a.argv[0], "ping");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(single_word_is_one_argument),
        cmocka_unit_test(words_split_on_spaces),
        cmocka_unit_test(runs_of_spaces_and_tabs_separate_like_one),
        cmocka_unit_test(empty_and_blank_lines_have_no_words),
        cmocka_unit_test(quoted_word_keeps_spaces_and_tabs),
        cmocka_unit_test(empty_quoted_word_is_an_empty_argument),
        cmocka_unit_test(quoted_word_may_touch_end_of_line),
        cmocka_unit_test(unterminated_quote_is_refused),
        cmocka_unit_test(quote_inside_a_word_is_refused),
        cmocka_unit_test(text_glued_after_closing_quote_is_refused),
        cmocka_unit_test(control_bytes_are_refused),
        cmocka_unit_test(nul_byte_is_refused),
        cmocka_unit_test(bytes_above_0x7f_pass_through),
        cmocka_unit_test(eight_words_are_accepted),
        cmocka_unit_test(nine_words_are_refused),
        cmocka_unit_test(line_of_4096_bytes_is_accepted),
        cmocka_unit_test(line_of_4097_bytes_is_refused),
        cmocka_unit_test(eight_words_filling_the_limit_fit_the_buffer),
        cmocka_unit_test(quoted_word_of_4094_bytes_at_the_limit),
        cmocka_unit_test(parse_reads_only_len_bytes),
        cmocka_unit_test(small_error_buffer_is_not_overrun),
        cmocka_unit_test(parser_state_does_not_leak_between_calls),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
