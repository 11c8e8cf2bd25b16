/* layout_dump.c - the C side of the Python binding's layout check.
 *
 * Prints, as the C compiler lays them out, the size of every public struct
 * of simcache.h that simcache/_native.py mirrors and the offset and size of
 * each of its fields, one line each:
 *
 *   struct simcache_match_t 1104
 *   field simcache_match_t.tier 20 4
 *
 * test_native.py runs it (meson builds it; Makefile's test-python passes its
 * path as SIMCACHE_LAYOUT_DUMP) and compares every line with ctypes.
 */
#include <stddef.h>
#include <stdio.h>

#include "simcache.h"

#define STRUCT(t) printf("struct %s %zu\n", #t, sizeof(t))
#define FIELD(t, f) printf("field %s.%s %zu %zu\n", #t, #f, offsetof(t, f), sizeof(((t *)0)->f))

int main(void)
{
    STRUCT(simcache_opts_t);
    FIELD(simcache_opts_t, socket_path);
    FIELD(simcache_opts_t, model);
    FIELD(simcache_opts_t, layout_fingerprint);
    FIELD(simcache_opts_t, tenant);
    FIELD(simcache_opts_t, dim);
    FIELD(simcache_opts_t, gpu_device);
    FIELD(simcache_opts_t, timeout_ms);
    FIELD(simcache_opts_t, flags);

    STRUCT(simcache_layout_t);
    FIELD(simcache_layout_t, dtype);
    FIELD(simcache_layout_t, parts);
    FIELD(simcache_layout_t, layers);
    FIELD(simcache_layout_t, kv_heads);
    FIELD(simcache_layout_t, head_dim);
    FIELD(simcache_layout_t, tokens);

    STRUCT(simcache_match_t);
    FIELD(simcache_match_t, id);
    FIELD(simcache_match_t, lease);
    FIELD(simcache_match_t, similarity);
    FIELD(simcache_match_t, tier);
    FIELD(simcache_match_t, layout);
    FIELD(simcache_match_t, size);
    FIELD(simcache_match_t, data);
    FIELD(simcache_match_t, device_ptr);
    FIELD(simcache_match_t, meta_len);
    FIELD(simcache_match_t, meta);

    STRUCT(simcache_put_opts_t);
    FIELD(simcache_put_opts_t, meta);
    FIELD(simcache_put_opts_t, meta_len);
    FIELD(simcache_put_opts_t, flags);

    STRUCT(simcache_stats_t);
    FIELD(simcache_stats_t, entries);
    FIELD(simcache_stats_t, ns_entries);
    FIELD(simcache_stats_t, host_bytes_used);
    FIELD(simcache_stats_t, host_bytes_capacity);
    FIELD(simcache_stats_t, lookups);
    FIELD(simcache_stats_t, hits);
    FIELD(simcache_stats_t, misses);
    FIELD(simcache_stats_t, puts);
    FIELD(simcache_stats_t, evictions);
    FIELD(simcache_stats_t, leases_active);
    FIELD(simcache_stats_t, clients);
    FIELD(simcache_stats_t, namespaces);

    STRUCT(simcache_node_t);
    FIELD(simcache_node_t, node_id);
    FIELD(simcache_node_t, address);
    FIELD(simcache_node_t, similarity);
    FIELD(simcache_node_t, load);
    FIELD(simcache_node_t, local);
    FIELD(simcache_node_t, flags);
    return 0;
}
