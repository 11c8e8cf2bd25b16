/* config_change.h - a valid new value for any config key, for the tests
 * that go over every key of the table (test_config.c, the SIGHUP reload
 * integration test).
 *
 * The value comes from the key's row (type, bounds, choices), never from a
 * list of keys kept here, so a key added to the table is covered at once.
 */
#ifndef SIMCACHE_TEST_CONFIG_CHANGE_H
#define SIMCACHE_TEST_CONFIG_CHANGE_H

#include <stddef.h>

#include "config.h"

/* Write to out (n bytes) a value of key that config_set accepts and that
 * makes config_diff see key, and key only, differ from c. Numbers move
 * down (half) where their bounds allow, so capacities stay below what the
 * daemon has; the log level moves to the next, more verbose one. Returns 0,
 * or -1 when key is unknown or no candidate qualifies (out then holds the
 * last candidate tried). */
int config_change_value(const config_t *c, const char *key, char *out, size_t n);

#endif
