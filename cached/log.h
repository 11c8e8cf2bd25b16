/* log.h - levelled logging of the daemon to stderr.
 *
 * One line per message: ISO time, level, text. The level can change at run
 * time (config set log_level). Only the daemon logs; libraries never do.
 */
#ifndef SIMCACHE_LOG_H
#define SIMCACHE_LOG_H

typedef enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 } log_level_t;

void log_set_level(log_level_t level);
log_level_t log_get_level(void);
/* Parse "error", "warn", "info", "debug"; -1 if unknown. */
int log_level_parse(const char *s);
const char *log_level_name(log_level_t level);
void log_msg(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
