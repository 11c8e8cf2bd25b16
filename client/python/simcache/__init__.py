"""simcache - Python binding of libsimcache-client (ctypes).

    import simcache
    with simcache.Client("/run/simcache/simcached.sock", "my-model@rev",
                         "condensed-top/f16/8x64", dim=2048) as c:
        m = c.lookup(embedding)                  # Match or None (a miss)
        if m is None:
            kv = run_prefill(...)                # (2, 1, kv_heads, tokens, head_dim)
            c.put(embedding, kv, meta=b"tokens=512")
        else:
            with m:                              # lease released on exit
                kv = m.torch()                   # zero-copy, read-only

See docs/integration.md. The C library is found through $SIMCACHE_LIB, the
installed libsimcache-client, or this checkout's build/ (see _native.py).
"""
from ._native import (  # noqa: F401  (re-exported result codes and limits)
    OK, MISS, EINVAL, EPROTO, EVERSION, ETOOBIG, EOPCODE, EDIM, EEMBED, ELAYOUT, ENOPUT,
    ELEASE, EPERM, ENOSPC, ENAMESPACE, EBUSY, ENOTFOUND, EIO, ENOMEM, ECLOSED, ESTATE,
    ELIMIT, ESHUTDOWN, ENODEV, ECORRUPT, MAX_DIM, MAX_NAME, MAX_META, MAX_BATCH,
    DEFAULT_THRESHOLD, TIER_GPU, TIER_HOST, TIER_DISK, ROUTE_LOCAL, ROUTE_STALE, ROUTE_NONE,
)
from .client import (  # noqa: F401
    Client, Layout, Match, Node, PutBuffer, SimcacheError, Stats, library, strerror,
)

__version__ = "0.1.0"
__all__ = ["Client", "Layout", "Match", "Node", "PutBuffer", "SimcacheError", "Stats", "library",
           "strerror"]
