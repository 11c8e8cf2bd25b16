"""_native.py - finding libsimcache-client and declaring its C API for ctypes.

The structs below mirror client/simcache.h field for field (ctypes lays them
out with the same alignment rules as the C compiler; tests/test_native.py
checks every size and field offset against what the C compiler gives, from
tests/layout_dump.c). Nothing here talks to the daemon; client.py builds the
Python API on top.

Where the library is found, first match wins:
  1. $SIMCACHE_LIB (a path to libsimcache-client.so)
  2. the installed library (ctypes.util.find_library("simcache-client"))
  3. the meson build dir of this checkout: <repo>/build/client/libsimcache-client.so
     ($SIMCACHE_BUILD_DIR overrides <repo>/build)
"""
import ctypes
import ctypes.util
import os
from pathlib import Path

# Result codes (simcache.h; shared with the wire protocol).
OK = 0
MISS = 1
EINVAL = -1
EPROTO = -2
EVERSION = -3
ETOOBIG = -4
EOPCODE = -5
EDIM = -6
EEMBED = -7
ELAYOUT = -8
ENOPUT = -9
ELEASE = -10
EPERM = -11
ENOSPC = -12
ENAMESPACE = -13
EBUSY = -14
ENOTFOUND = -15
EIO = -16
ENOMEM = -17
ECLOSED = -18
ESTATE = -19
ELIMIT = -20
ESHUTDOWN = -21
ENODEV = -22
ECORRUPT = -23

MAX_DIM = 16384
MAX_NAME = 255
MAX_META = 1024
MAX_BATCH = 1024
MAX_NODE_ID = 64
MAX_ADDRESS = 255
ROUTE_LOCAL = 1
ROUTE_STALE = 2
ROUTE_NONE = 4
DEFAULT_THRESHOLD = 0.8

DTYPE_F32 = 1
DTYPE_F16 = 2
DTYPE_BF16 = 3
DTYPE_F8E4M3 = 4
DTYPE_F8E5M2 = 5
DTYPE_I8 = 6

HOST_MEMORY = 0
DEVICE_MEMORY = 1

PREFER_DEVICE = 1                 # simcache_opts_t.flags
TIER_GPU = 0
TIER_HOST = 1
TIER_DISK = 2


class simcache_opts_t(ctypes.Structure):
    _fields_ = [
        ("socket_path", ctypes.c_char_p),
        ("model", ctypes.c_char_p),
        ("layout_fingerprint", ctypes.c_char_p),
        ("tenant", ctypes.c_char_p),
        ("dim", ctypes.c_uint32),
        ("gpu_device", ctypes.c_int),
        ("timeout_ms", ctypes.c_int),
        ("flags", ctypes.c_uint32),
    ]


class simcache_layout_t(ctypes.Structure):
    _fields_ = [
        ("dtype", ctypes.c_uint32),
        ("parts", ctypes.c_uint32),
        ("layers", ctypes.c_uint32),
        ("kv_heads", ctypes.c_uint32),
        ("head_dim", ctypes.c_uint32),
        ("tokens", ctypes.c_uint32),
    ]


class simcache_match_t(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_uint64),
        ("lease", ctypes.c_uint64),
        ("similarity", ctypes.c_float),
        ("tier", ctypes.c_int),          # simcache_tier_t (a C enum: int-sized)
        ("layout", simcache_layout_t),
        ("size", ctypes.c_uint64),
        ("data", ctypes.c_void_p),
        ("device_ptr", ctypes.c_void_p),
        ("meta_len", ctypes.c_uint32),
        ("meta", ctypes.c_uint8 * MAX_META),
    ]


class simcache_put_opts_t(ctypes.Structure):
    _fields_ = [
        ("meta", ctypes.c_void_p),
        ("meta_len", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
    ]


class simcache_node_t(ctypes.Structure):
    _fields_ = [
        ("node_id", ctypes.c_char * (MAX_NODE_ID + 1)),
        ("address", ctypes.c_char * (MAX_ADDRESS + 1)),
        ("similarity", ctypes.c_float),
        ("load", ctypes.c_float),
        ("local", ctypes.c_int),
        ("flags", ctypes.c_uint32),
    ]


STATS_FIELDS = (
    "entries", "ns_entries", "host_bytes_used", "host_bytes_capacity", "lookups", "hits",
    "misses", "puts", "evictions", "leases_active", "clients", "namespaces",
)


class simcache_stats_t(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in STATS_FIELDS]


_h = ctypes.c_void_p
_P = ctypes.POINTER
_f32p = _P(ctypes.c_float)

# name: (restype, argtypes)
_PROTOTYPES = {
    "simcache_opts_init": (None, [_P(simcache_opts_t)]),
    "simcache_connect": (ctypes.c_int, [_P(simcache_opts_t), _P(_h)]),
    "simcache_close": (None, [_h]),
    "simcache_put": (ctypes.c_int, [_h, _f32p, _P(simcache_layout_t), ctypes.c_void_p,
                                    ctypes.c_uint64, ctypes.c_int, _P(ctypes.c_uint64)]),
    "simcache_put_ex": (ctypes.c_int, [_h, _f32p, _P(simcache_layout_t), ctypes.c_void_p,
                                       ctypes.c_uint64, ctypes.c_int, _P(simcache_put_opts_t),
                                       _P(ctypes.c_uint64)]),
    "simcache_put_begin": (ctypes.c_int, [_h, ctypes.c_uint64, _P(ctypes.c_void_p),
                                          _P(ctypes.c_uint64)]),
    "simcache_put_commit": (ctypes.c_int, [_h, ctypes.c_uint64, _f32p, _P(simcache_layout_t),
                                           _P(simcache_put_opts_t), _P(ctypes.c_uint64)]),
    "simcache_put_abort": (ctypes.c_int, [_h, ctypes.c_uint64]),
    "simcache_lookup": (ctypes.c_int, [_h, _f32p, ctypes.c_float, _P(simcache_match_t)]),
    "simcache_lookup_batch": (ctypes.c_int, [_h, _f32p, ctypes.c_size_t, ctypes.c_float,
                                             _P(simcache_match_t)]),
    "simcache_get": (ctypes.c_int, [_h, ctypes.c_uint64, _P(simcache_match_t)]),
    "simcache_release": (ctypes.c_int, [_h, _P(simcache_match_t)]),
    "simcache_release_lease": (ctypes.c_int, [_h, ctypes.c_uint64]),
    "simcache_delete": (ctypes.c_int, [_h, ctypes.c_uint64]),
    "simcache_stats": (ctypes.c_int, [_h, _P(simcache_stats_t)]),
    "simcache_ping": (ctypes.c_int, [_h]),
    "simcache_route": (ctypes.c_int, [_h, _f32p, _P(simcache_node_t)]),
    "simcache_copy_to_device": (ctypes.c_int, [_h, _P(simcache_match_t), ctypes.c_uint64,
                                               ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p]),
    "simcache_gpu_status": (ctypes.c_int, [_h, ctypes.c_char_p, ctypes.c_size_t]),
    "simcache_gpu_tier": (ctypes.c_int, [_h, ctypes.c_char_p, ctypes.c_size_t]),
    "simcache_layout_bytes": (ctypes.c_uint64, [_P(simcache_layout_t)]),
    "simcache_strerror": (ctypes.c_char_p, [ctypes.c_int]),
    "simcache_last_error": (ctypes.c_char_p, [_h]),
}

LIB_NAME = "libsimcache-client.so"


def repo_root():
    """The checkout this package sits in (client/python/simcache/ -> repo)."""
    return Path(__file__).resolve().parents[3]


def candidate_paths():
    """Where load() looks, in order, as (how, path-or-name) pairs."""
    out = []
    env = os.environ.get("SIMCACHE_LIB")
    if env:
        out.append(("$SIMCACHE_LIB", env))
    found = ctypes.util.find_library("simcache-client")
    if found:
        out.append(("installed", found))
    build = os.environ.get("SIMCACHE_BUILD_DIR") or str(repo_root() / "build")
    out.append(("build dir", str(Path(build) / "client" / LIB_NAME)))
    return out


def load(path=None):
    """Load libsimcache-client (path, else the search above) and declare its API."""
    tried = []
    cands = [("argument", path)] if path else candidate_paths()
    for how, cand in cands:
        # $SIMCACHE_LIB and an explicit path are binding: a wrong one is an
        # error, not a reason to fall through to another copy of the library.
        strict = how in ("argument", "$SIMCACHE_LIB")
        if how == "build dir" and not os.path.exists(cand):
            tried.append(f"{how}: {cand} (missing)")
            continue
        try:
            lib = ctypes.CDLL(cand)
        except OSError as e:
            if strict:
                raise OSError(f"simcache: cannot load {cand} ({how}): {e}") from e
            tried.append(f"{how}: {cand} ({e})")
            continue
        _declare(lib)
        lib._simcache_path = cand
        return lib
    raise OSError("simcache: libsimcache-client not found; build it (ninja -C build) or set "
                  "SIMCACHE_LIB=/path/to/libsimcache-client.so. Tried: " + "; ".join(tried))


# Symbols a library may lack (older builds); the binding reports them as not available.
OPTIONAL = {"simcache_route"}


def _declare(lib):
    for name, (restype, argtypes) in _PROTOTYPES.items():
        if name in OPTIONAL and not hasattr(lib, name):
            continue
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
