/* mix64.h - the 64-bit mixer and splitmix64 generator every part that
 * needs a deterministic hash or seed stream uses (namespace seeds, the
 * index's rotations, prototype sampling, reconnect jitter).
 */
#ifndef SIMCACHE_MIX64_H
#define SIMCACHE_MIX64_H

#include <stdint.h>

/* splitmix64's finaliser: a bijection that spreads every input bit. */
static inline uint64_t mix64(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The next value of the splitmix64 stream whose state is *st. */
static inline uint64_t splitmix64(uint64_t *st)
{
    return mix64(*st += 0x9e3779b97f4a7c15ull);
}

#endif
