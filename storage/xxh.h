/* xxh.h - XXH3 from libxxhash at the widest vectors the CPU has.
 *
 * Debian's libxxhash builds XXH3_64bits for the x86-64 baseline (SSE2). The
 * same library also exports *_dispatch entry points that pick AVX2 or
 * AVX-512 at run time; xxh_x86dispatch.h maps the usual names onto them.
 * Same hash values (on disk and on the wire nothing changes), 2.7x faster:
 * 40 against 110 us for 2 MiB on the Zen 5 VM (docs/benchmarks.md, disk run
 * 12). Every checksum the daemon computes or verifies goes through here.
 */
#ifndef SIMCACHE_XXH_H
#define SIMCACHE_XXH_H

#include <xxhash.h>

#if (defined(__x86_64__) || defined(__i386__)) && defined(__has_include)
#if __has_include(<xxh_x86dispatch.h>)
#include <xxh_x86dispatch.h>
#endif
#endif

#endif
