/* admin_parse.c - split an admin line into words, with strict bounds.
 *
 * Everything is copied into the caller's fixed buffer, so a line can never
 * make the parser allocate or read past its end.
 */
#include "admin_parse.h"

#include <stdio.h>
#include <string.h>

int admin_parse_line(const char *line, size_t len, admin_args_t *a, char *err, size_t errlen)
{
    a->argc = 0;
    if (len > ADMIN_MAX_LINE) {
        snprintf(err, errlen, "line longer than %d bytes", ADMIN_MAX_LINE);
        return -1;
    }
    size_t i = 0, o = 0;
    while (i < len) {
        unsigned char ch = (unsigned char)line[i];
        if (ch == ' ' || ch == '\t') {
            i++;
            continue;
        }
        if (a->argc == ADMIN_MAX_ARGS) {
            snprintf(err, errlen, "more than %d words", ADMIN_MAX_ARGS);
            return -1;
        }
        int quoted = ch == '"';
        if (quoted) i++;
        a->argv[a->argc++] = a->buf + o;
        for (;;) {
            if (i == len) {
                if (quoted) {
                    snprintf(err, errlen, "unterminated quote");
                    return -1;
                }
                break;
            }
            ch = (unsigned char)line[i];
            if (ch < 0x20 && ch != '\t') {
                snprintf(err, errlen, "control byte 0x%02x in line", ch);
                return -1;
            }
            if (ch == 0x7f) {
                snprintf(err, errlen, "control byte 0x7f in line");
                return -1;
            }
            if (quoted && ch == '"') {
                i++;
                if (i < len && line[i] != ' ' && line[i] != '\t') {
                    snprintf(err, errlen, "quote must end a word");
                    return -1;
                }
                break;
            }
            if (!quoted && (ch == ' ' || ch == '\t')) break;
            if (!quoted && ch == '"') {
                snprintf(err, errlen, "quote inside a word");
                return -1;
            }
            a->buf[o++] = (char)ch;
            i++;
        }
        a->buf[o++] = 0;   /* o <= len + argc: fits the buffer */
    }
    return 0;
}
