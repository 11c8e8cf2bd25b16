/* clock.h - the daemon's two clocks.
 *
 * Wall time (now_us) stamps what people read: an entry's creation and last
 * hit, a node record's time. Everything that measures a duration or waits
 * for a deadline (drain, polling, progress logs, uptime) uses mono_us, which
 * a clock step (NTP, an operator's `date`) cannot move.
 */
#ifndef SIMCACHE_CLOCK_H
#define SIMCACHE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Microseconds since the epoch (CLOCK_REALTIME). */
static inline uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Microseconds since an arbitrary start (CLOCK_MONOTONIC): durations only. */
static inline uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

#endif
