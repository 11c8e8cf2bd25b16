/* log.c - levelled logging to stderr: "TIMESTAMP simcached[PID] LEVEL: text".
 * Under systemd (JOURNAL_STREAM set), each line starts with its syslog
 * priority ("<6>") and carries no timestamp: the journal stamps and filters
 * by priority itself. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Set by the loop (config set, SIGHUP), read by every thread that logs
 * (the prefault thread too): relaxed atomics, since only the value matters. */
static int current = LOG_INFO;
static const char *const names[] = { "error", "warn", "info", "debug" };

void log_set_level(log_level_t level) { __atomic_store_n(&current, (int)level, __ATOMIC_RELAXED); }
log_level_t log_get_level(void) { return (log_level_t)__atomic_load_n(&current, __ATOMIC_RELAXED); }

int log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

const char *log_level_name(log_level_t level)
{
    return (level >= LOG_ERROR && level <= LOG_DEBUG) ? names[level] : "?";
}

void log_msg(log_level_t level, const char *fmt, ...)
{
    if ((int)level > __atomic_load_n(&current, __ATOMIC_RELAXED)) return;
    struct timeval tv;
    struct tm tm;
    char ts[32], line[1024];
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* One fprintf per line so concurrent writers do not interleave mid-line. */
    static const int prio[] = { 3, 4, 6, 7 };   /* LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */
    const char *journal = getenv("JOURNAL_STREAM");
    if (journal && *journal)
        fprintf(stderr, "<%d>simcached[%d] %s: %s\n", prio[level], (int)getpid(), names[level],
                line);
    else
        fprintf(stderr, "%s.%03dZ simcached[%d] %s: %s\n", ts, (int)(tv.tv_usec / 1000),
                (int)getpid(), names[level], line);
}
