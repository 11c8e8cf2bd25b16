/* admin_parse.h - tokenizer for admin command lines (pure, fuzzed).
 *
 * A line is words separated by spaces or tabs, ending at "\n" or "\r\n"
 * (the caller strips the terminator). Words are printable bytes; a word may
 * be double-quoted to hold spaces (no escapes inside quotes). Strict bounds:
 * at most ADMIN_MAX_ARGS words of at most ADMIN_MAX_LINE bytes in all.
 */
#ifndef SIMCACHE_ADMIN_PARSE_H
#define SIMCACHE_ADMIN_PARSE_H

#include <stddef.h>

#define ADMIN_MAX_LINE 4096
#define ADMIN_MAX_ARGS 8

typedef struct {
    int argc;
    char *argv[ADMIN_MAX_ARGS];
    char buf[ADMIN_MAX_LINE + ADMIN_MAX_ARGS];   /* argv points here: words + NULs */
} admin_args_t;

/* Split line[0..len) into a. Returns 0, or -1 with a one-line reason in err
 * (line too long, control or NUL byte, unterminated quote, too many words). */
int admin_parse_line(const char *line, size_t len, admin_args_t *a, char *err, size_t errlen);

#endif
