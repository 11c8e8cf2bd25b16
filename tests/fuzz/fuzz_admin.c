/* fuzz_admin.c - libFuzzer target: lines sent to the admin socket.
 *
 * The input is cut into lines the way cached/admin.c's on_admin_read() does
 * (LF ends a line, a CR before it is dropped, lines over the limit are
 * refused before parsing), and each line goes through admin_parse_line()
 * from an exact-size copy. Besides memory safety the target checks the
 * tokenizer's contract: at most 8 words, all inside the word buffer, no
 * control bytes, and words written back (quoted where needed) parse to the
 * same words again. The whole input is also parsed as one line, which
 * exercises the length limit.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_admin: invariant broken: %s\n", what);
        abort();
    }
}

static void check_words(const admin_args_t *a, size_t len)
{
    size_t total = 0;
    must(a->argc >= 0 && a->argc <= ADMIN_MAX_ARGS, "argc out of range");
    for (int i = 0; i < a->argc; i++) {
        const char *w = a->argv[i];
        must(w >= a->buf && w < a->buf + sizeof a->buf, "word outside the buffer");
        size_t room = (size_t)(a->buf + sizeof a->buf - w);
        size_t n = strnlen(w, room);
        must(n < room, "word not terminated inside the buffer");
        for (size_t j = 0; j < n; j++) {
            unsigned char c = (unsigned char)w[j];
            must(c >= 0x20 || c == '\t', "control byte in a word");
            must(c != 0x7f && c != '"', "DEL or quote in a word");
        }
        total += n;
    }
    must(total <= len, "words longer than the line");
}

/* Write the words back as a line (quoting words with blanks, and empty
 * words) and parse that: the same words must come back. */
static void check_round_trip(const admin_args_t *a)
{
    char line[2 * ADMIN_MAX_LINE];
    size_t o = 0;
    for (int i = 0; i < a->argc; i++) {
        const char *w = a->argv[i];
        int quote = w[0] == 0 || strpbrk(w, " \t") != NULL;
        size_t n = strlen(w);
        if (i) line[o++] = ' ';
        if (quote) line[o++] = '"';
        memcpy(line + o, w, n);
        o += n;
        if (quote) line[o++] = '"';
    }
    admin_args_t b;
    char err[128];
    /* Quotes and separators can make the line longer than the original. */
    int rc = admin_parse_line(line, o, &b, err, sizeof err);
    if (o > ADMIN_MAX_LINE) {
        must(rc == -1, "over-long line accepted");
        return;
    }
    must(rc == 0, "written-back words refused");
    must(b.argc == a->argc, "written-back words: count differs");
    for (int i = 0; i < a->argc; i++)
        must(strcmp(a->argv[i], b.argv[i]) == 0, "written-back words differ");
}

static void parse_one(const uint8_t *p, size_t len)
{
    char *line = malloc(len ? len : 1);
    admin_args_t a;
    char err[128];
    must(line != NULL, "out of memory");
    memcpy(line, p, len);
    memset(err, 0, sizeof err);
    int rc = admin_parse_line(line, len, &a, err, sizeof err);
    if (rc == 0) {
        check_words(&a, len);
        check_round_trip(&a);
    } else {
        must(rc == -1, "unexpected return code");
        must(err[0] != 0 && memchr(err, 0, sizeof err) != NULL, "refusal without a message");
    }
    free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    while (pos < size) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        if (!nl) break;   /* the daemon waits for the rest of the line */
        size_t len = (size_t)(nl - (data + pos));
        if (len <= ADMIN_MAX_LINE + 1) {
            size_t n = len;
            if (n && data[pos + n - 1] == '\r') n--;
            parse_one(data + pos, n);
        }
        pos += len + 1;
    }
    parse_one(data, size);
    return 0;
}
