/* reload.h - a changed configuration, applied to the running parts. */
#ifndef SIMCACHE_RELOAD_H
#define SIMCACHE_RELOAD_H

typedef struct daemon daemon_t;

/* Apply d->cfg (already changed in runtime keys) to the running parts: log
 * level, host tier limits, peers. */
void reload_apply(daemon_t *d);
/* Re-read the config file (SIGHUP): apply changed runtime keys, warn about
 * changed restart-only keys and keep their running values. A file that
 * does not parse changes nothing (logged). */
void reload_file(daemon_t *d);

#endif
