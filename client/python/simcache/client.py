"""client.py - the Python face of libsimcache-client (ctypes, no C extension).

A Client is one C handle: one connection to simcached, one namespace (model,
layout fingerprint, embedding dimension, tenant). A hit comes back as a Match
holding a lease; its bytes are read in place from the daemon's read-only
shared mapping (Match.numpy() / Match.torch() are views, not copies) until the
lease ends. Puts write the caller's array straight into this client's staging
buffer (put_begin / put_commit): one copy, which for a CUDA tensor is the
device-to-host copy itself.

Threads: calls on one Client are serialized by one lock (as the C handle is by
its mutex), which also keeps each failure's message with its own call. Use one
Client per thread for parallel requests.
"""
import ctypes
import sys
import threading
import warnings
from dataclasses import dataclass

import numpy as np

from . import _native as N

_lib = None
_lib_lock = threading.Lock()


def library(path=None):
    """The loaded libsimcache-client (loaded on first use; see _native.load)."""
    global _lib
    with _lib_lock:
        if _lib is None or path is not None:
            _lib = N.load(path)
        return _lib


def strerror(code):
    """simcache_strerror(): "SIMCACHE_EDIM: wrong embedding dimension"."""
    return library().simcache_strerror(int(code)).decode("utf-8", "replace")


class SimcacheError(Exception):
    """A failed call. .code is the SIMCACHE_E* number (negative), .name its
    symbol ("SIMCACHE_EDIM"), .detail the message from simcache_last_error()
    (or from the binding's own check)."""

    def __init__(self, code, detail=""):
        self.code = int(code)
        text = strerror(self.code)
        self.name = text.split(":", 1)[0]
        self.detail = detail
        super().__init__(f"{text}: {detail}" if detail else text)


# ---- dtypes and layouts -------------------------------------------------------

# name -> (C code, bytes per element, numpy dtype or None, torch dtype attribute)
_DTYPES = {
    "float32": (N.DTYPE_F32, 4, np.float32, "float32"),
    "float16": (N.DTYPE_F16, 2, np.float16, "float16"),
    "bfloat16": (N.DTYPE_BF16, 2, None, "bfloat16"),
    "float8_e4m3fn": (N.DTYPE_F8E4M3, 1, None, "float8_e4m3fn"),
    "float8_e5m2": (N.DTYPE_F8E5M2, 1, None, "float8_e5m2"),
    "int8": (N.DTYPE_I8, 1, np.int8, "int8"),
}
_BY_CODE = {v[0]: k for k, v in _DTYPES.items()}
_ALIASES = {"f32": "float32", "fp32": "float32", "float": "float32", "f16": "float16",
            "fp16": "float16", "half": "float16", "bf16": "bfloat16", "f8e4m3": "float8_e4m3fn",
            "float8_e4m3": "float8_e4m3fn", "f8e5m2": "float8_e5m2", "i8": "int8"}


def _dtype_name(dtype):
    """Normalize a dtype given as a name, an int code, a numpy or a torch dtype."""
    if isinstance(dtype, int):
        if dtype not in _BY_CODE:
            raise ValueError(f"unknown simcache dtype code {dtype}")
        return _BY_CODE[dtype]
    if isinstance(dtype, str):
        s = dtype
    elif str(dtype).startswith("torch."):
        s = str(dtype)[len("torch."):]
    else:
        try:
            s = np.dtype(dtype).name
        except TypeError:
            s = str(dtype)
    s = _ALIASES.get(s, s)
    if s not in _DTYPES:
        raise ValueError(f"dtype {dtype!r} has no simcache equivalent "
                         f"(one of {', '.join(_DTYPES)})")
    return s


def _is_torch(x):
    t = sys.modules.get("torch")
    return t is not None and isinstance(x, t.Tensor)


@dataclass(frozen=True)
class Layout:
    """Shape of a KV blob (simcache_layout_t). Its bytes are exactly
    parts * layers * kv_heads * head_dim * tokens * itemsize. The Python
    binding's element order is `shape`: (parts, layers, kv_heads, tokens,
    head_dim), parts 2 for separate K and V; writers and readers of one
    namespace must agree on it (put it in the layout fingerprint)."""
    dtype: str
    parts: int
    layers: int
    kv_heads: int
    head_dim: int
    tokens: int

    def __post_init__(self):
        object.__setattr__(self, "dtype", _dtype_name(self.dtype))
        for f in ("parts", "layers", "kv_heads", "head_dim", "tokens"):
            v = getattr(self, f)
            if int(v) != v or v < 1 or v > 0xFFFFFFFF:
                raise ValueError(f"Layout.{f} must be a positive 32-bit integer, not {v!r}")
            object.__setattr__(self, f, int(v))

    @property
    def itemsize(self):
        return _DTYPES[self.dtype][1]

    @property
    def shape(self):
        return (self.parts, self.layers, self.kv_heads, self.tokens, self.head_dim)

    @property
    def nbytes(self):
        return self.parts * self.layers * self.kv_heads * self.tokens * self.head_dim * self.itemsize

    @classmethod
    def from_tensor(cls, kv):
        """Layout of a torch tensor or numpy array shaped (parts, layers,
        kv_heads, tokens, head_dim), or (parts, kv_heads, tokens, head_dim)
        for one layer (the condensed top layer)."""
        shape = tuple(kv.shape)
        if len(shape) == 4:
            shape = (shape[0], 1) + shape[1:]
        if len(shape) != 5:
            raise ValueError(f"KV of shape {tuple(kv.shape)}: expected (parts, layers, kv_heads, "
                             "tokens, head_dim) or (parts, kv_heads, tokens, head_dim)")
        p, l, h, t, d = shape
        return cls(kv.dtype, p, l, h, d, t)

    def _c(self):
        return N.simcache_layout_t(_DTYPES[self.dtype][0], self.parts, self.layers,
                                   self.kv_heads, self.head_dim, self.tokens)

    @classmethod
    def _from_c(cls, c):
        if c.dtype not in _BY_CODE:
            raise SimcacheError(N.EPROTO, f"layout with unknown dtype code {c.dtype}")
        return cls(_BY_CODE[c.dtype], c.parts, c.layers, c.kv_heads, c.head_dim, c.tokens)


@dataclass(frozen=True)
class Stats:
    """simcache_stats_t: daemon-wide counters plus this namespace's entries."""
    entries: int
    ns_entries: int
    host_bytes_used: int
    host_bytes_capacity: int
    lookups: int
    hits: int
    misses: int
    puts: int
    evictions: int
    leases_active: int
    clients: int
    namespaces: int


@dataclass(frozen=True)
class Node:
    """simcache_node_t: where a task would best run. stale: that daemon could
    not refresh its feature table lately; no_prototypes: no node has
    prototypes of this namespace yet (the answer is the local daemon)."""
    node_id: str
    address: str
    similarity: float
    load: float
    local: bool
    stale: bool
    no_prototypes: bool
    flags: int


def _f32p(arr):
    return arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


def _to_f32(x):
    if _is_torch(x):
        x = x.detach().to("cpu")
        x = x.float().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def _put_opts(meta):
    meta = bytes(meta or b"")
    if len(meta) > N.MAX_META:
        raise SimcacheError(N.ETOOBIG, f"metadata of {len(meta)} bytes, limit {N.MAX_META}")
    po = N.simcache_put_opts_t(None, len(meta), 0)
    keep = ctypes.create_string_buffer(meta, len(meta)) if meta else None
    if keep is not None:
        po.meta = ctypes.cast(keep, ctypes.c_void_p)
    return po, keep


def _raw(addr, nbytes, owner=None):
    """A ctypes byte array over nbytes at addr; owner rides along so the memory's
    owner outlives every view built on the array."""
    raw = (ctypes.c_uint8 * nbytes).from_address(addr)
    raw._simcache_owner = owner
    return raw


def _copy_into(addr, nbytes, kv):
    """Copy kv (numpy array, torch tensor on any device, or bytes-like) into
    nbytes of writable memory at addr: the one copy of a put."""
    raw = _raw(addr, nbytes)
    if _is_torch(kv):
        import torch
        dst = torch.frombuffer(raw, dtype=kv.dtype, count=kv.numel()).view(kv.shape)
        dst.copy_(kv.detach())
    elif isinstance(kv, np.ndarray):
        dst = np.frombuffer(raw, dtype=kv.dtype, count=kv.size).reshape(kv.shape)
        np.copyto(dst, kv, casting="no")
    else:
        np.copyto(np.frombuffer(raw, np.uint8), np.frombuffer(kv, np.uint8))


def _kv_nbytes(kv):
    if _is_torch(kv):
        return kv.numel() * kv.element_size()
    if isinstance(kv, np.ndarray):
        return kv.nbytes
    return memoryview(kv).nbytes


# ---- the client ------------------------------------------------------------------

class Client:
    """One connection to simcached in one namespace.

    Client(socket, model, layout_fingerprint, dim, tenant=None, timeout_ms=10000)

    socket None means $SIMCACHE_SOCKET, else the daemon's default path. Raises
    SimcacheError when the daemon is not there or refuses the namespace.
    Close it with close() or use it as a context manager.
    """

    def __init__(self, socket, model, layout_fingerprint, dim, tenant=None, timeout_ms=10000,
                 gpu_device=-1, library_path=None, prefer_device=False):
        self._lib = library(library_path) if library_path else library()
        self._h = None
        self._lock = threading.Lock()
        self._orphans = []          # leases of Matches collected without release()
        self.dim = int(dim)
        self.model = model
        self.layout_fingerprint = layout_fingerprint
        self.tenant = tenant
        if not 1 <= self.dim <= N.MAX_DIM:
            raise SimcacheError(N.EINVAL, f"dim {dim} outside 1..{N.MAX_DIM}")
        opts = N.simcache_opts_t()
        self._lib.simcache_opts_init(ctypes.byref(opts))
        enc = (lambda s: None if s is None else str(s).encode("utf-8"))
        opts.socket_path = enc(socket)
        opts.model = enc(model)
        opts.layout_fingerprint = enc(layout_fingerprint)
        opts.tenant = enc(tenant)
        opts.dim = self.dim
        opts.gpu_device = int(gpu_device)
        opts.timeout_ms = int(timeout_ms)
        opts.flags = N.PREFER_DEVICE if prefer_device else 0
        h = ctypes.c_void_p()
        rc = self._lib.simcache_connect(ctypes.byref(opts), ctypes.byref(h))
        if rc != 0:
            detail = self._lib.simcache_last_error(h).decode("utf-8", "replace") if h else ""
            self._lib.simcache_close(h)
            raise SimcacheError(rc, detail or "connect refused before trying "
                                "(model, layout_fingerprint, tenant or dim invalid)")
        self._h = h

    def gpu_status(self):
        """(level, why): level 0 no usable GPU on this handle (why says
        what), 1 the gpu_device given at connect is usable, 2 usable and the
        host arena is pinned for it (hit copies are DMA)."""
        buf = ctypes.create_string_buffer(200)
        with self._lock:
            if self._h is None:
                raise SimcacheError(N.ECLOSED, "client is closed")
            level = self._lib.simcache_gpu_status(self._h, buf, len(buf))
        return level, buf.value.decode("utf-8", "replace")

    def gpu_tier(self):
        """(mapped, why): mapped True when this handle mapped the daemon's
        GPU tier (CUDA IPC): device puts land there, and hits may come as
        GPU-tier matches (always with prefer_device=True). why says why not."""
        buf = ctypes.create_string_buffer(600)
        with self._lock:
            if self._h is None:
                raise SimcacheError(N.ECLOSED, "client is closed")
            mapped = self._lib.simcache_gpu_tier(self._h, buf, len(buf))
        return bool(mapped), buf.value.decode("utf-8", "replace")

    # -- plumbing

    def _call(self, name, *args):
        """Call simcache_<name>(handle, *args) under the lock; raise on < 0."""
        fn = getattr(self._lib, "simcache_" + name)
        with self._lock:
            if self._h is None:
                raise SimcacheError(N.ECLOSED, "client is closed")
            self._drain_orphans()
            rc = fn(self._h, *args)
            if rc < 0:
                detail = self._lib.simcache_last_error(self._h).decode("utf-8", "replace")
                raise SimcacheError(rc, detail)
        return rc

    def _drain_orphans(self):
        while self._orphans:
            self._lib.simcache_release_lease(self._h, self._orphans.pop())

    def _embedding(self, embedding):
        e = _to_f32(embedding).reshape(-1)
        if e.size != self.dim:
            # The C API takes dim floats with no length; a short array would be read past its end.
            raise SimcacheError(N.EDIM, f"embedding has {e.size} floats, namespace dim is {self.dim}")
        return e

    @property
    def closed(self):
        return self._h is None

    def close(self):
        """Close the connection. The daemon ends every lease of this client;
        zero-copy views of its matches must not be read afterwards (the mapping
        is gone)."""
        with self._lock:
            if self._h is not None:
                self._lib.simcache_close(self._h)
                self._h = None
                self._orphans.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        state = "closed" if self._h is None else "open"
        return f"<simcache.Client {self.model!r} dim={self.dim} {state}>"

    # -- puts

    def put(self, embedding, kv, layout=None, meta=b""):
        """Store kv under embedding; returns the new entry id.

        kv: numpy array, torch tensor (CPU, or CUDA: copied device-to-host
        straight into the staging buffer) or bytes-like (then layout is
        required). layout: a Layout; None derives it with Layout.from_tensor.
        meta: up to 1024 opaque bytes returned with every match.
        """
        if layout is None:
            if not hasattr(kv, "shape"):
                raise SimcacheError(N.EINVAL, "layout is required for bytes-like kv")
            layout = Layout.from_tensor(kv)
        nbytes = _kv_nbytes(kv)
        if nbytes != layout.nbytes or nbytes == 0:
            raise SimcacheError(N.ELAYOUT, f"layout describes {layout.nbytes} bytes, kv has {nbytes}")
        buf = self.begin_put(layout)
        try:
            _copy_into(buf.address, nbytes, kv)
            return buf.commit(embedding, meta)
        except BaseException:
            try:
                buf.abort()
            except SimcacheError:
                pass        # the first error is the one to report
            raise

    def begin_put(self, layout):
        """Start a zero-copy put: a PutBuffer whose .numpy() / .torch() views
        are this client's staging memory; compute the KV into it, then
        .commit(embedding, meta). Uncommitted buffers abort on close or at the
        end of a `with` block."""
        if not isinstance(layout, Layout):
            raise TypeError("begin_put needs a simcache.Layout")
        buf = ctypes.c_void_p()
        token = ctypes.c_uint64()
        self._call("put_begin", layout.nbytes, ctypes.byref(buf), ctypes.byref(token))
        return PutBuffer(self, layout, buf.value, token.value)

    # -- lookups

    def lookup(self, embedding, threshold=None):
        """The best entry with cosine >= threshold (None: the daemon's default,
        0.8) as a Match holding a lease, or None on a miss."""
        e = self._embedding(embedding)
        m = N.simcache_match_t()
        th = -1.0 if threshold is None else float(threshold)
        rc = self._call("lookup", _f32p(e), th, ctypes.byref(m))
        return None if rc == N.MISS else Match(self, m)

    def lookup_batch(self, embeddings, threshold=None):
        """Look up n embeddings (an (n, dim) array or a list of vectors) in one
        round trip; returns a list of n items, each a Match or None."""
        if _is_torch(embeddings) or isinstance(embeddings, np.ndarray):
            arr = _to_f32(embeddings)
        else:
            arr = np.stack([_to_f32(e).reshape(-1) for e in embeddings]) if len(embeddings) \
                else np.zeros((0, self.dim), np.float32)
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise SimcacheError(N.EDIM, f"embeddings of shape {arr.shape}, need (n, {self.dim})")
        n = arr.shape[0]
        if n == 0:
            return []
        arr = np.ascontiguousarray(arr)
        ms = (N.simcache_match_t * n)()
        th = -1.0 if threshold is None else float(threshold)
        try:
            self._call("lookup_batch", _f32p(arr), n, th, ms)
        except SimcacheError:
            self._orphans.extend(m.lease for m in ms if m.lease)
            raise
        return [Match(self, N.simcache_match_t.from_buffer_copy(m)) if m.lease else None
                for m in ms]

    def get(self, entry_id):
        """The entry with this id as a Match holding a lease (similarity 1).
        SimcacheError ENOTFOUND if it is gone."""
        m = N.simcache_match_t()
        self._call("get", int(entry_id), ctypes.byref(m))
        return Match(self, m)

    def release(self, match):
        """End a match's lease (same as match.release())."""
        match.release()

    def delete(self, entry):
        """Delete an entry (an id or a Match): it stops matching at once; its
        bytes go when the last lease on it ends."""
        self._call("delete", int(entry.id if isinstance(entry, Match) else entry))

    def stats(self):
        st = N.simcache_stats_t()
        self._call("stats", ctypes.byref(st))
        return Stats(*(getattr(st, f) for f in N.STATS_FIELDS))

    def ping(self):
        """A round trip with no effect; raises if the daemon is gone."""
        self._call("ping")

    def route(self, embedding):
        """Which node holds the prototypes closest to embedding (docs/cluster.md)
        as a Node. Without Redis configured the daemon answers itself (local).
        Raises NotImplementedError when the loaded libsimcache-client predates
        simcache_route(), rather than guess "local"."""
        if not hasattr(self._lib, "simcache_route"):
            raise NotImplementedError("simcache.Client.route: the loaded libsimcache-client "
                                      f"({getattr(self._lib, '_simcache_path', '?')}) has no "
                                      "simcache_route(); rebuild it or treat every task as local")
        e = self._embedding(embedding)
        node = N.simcache_node_t()
        self._call("route", _f32p(e), ctypes.byref(node))
        return Node(node.node_id.decode("utf-8", "replace"), node.address.decode("utf-8", "replace"),
                    node.similarity, node.load, bool(node.local),
                    bool(node.flags & N.ROUTE_STALE), bool(node.flags & N.ROUTE_NONE), node.flags)


class PutBuffer:
    """A begun put: writable staging memory of layout.nbytes bytes, owned by
    the client until commit() or abort(). Views from numpy()/torch() must not
    be used after either (the staging mapping is unmapped)."""

    def __init__(self, client, layout, address, token):
        self.client = client
        self.layout = layout
        self.address = address
        self.token = token
        self.done = False

    def numpy(self):
        np_dtype = _DTYPES[self.layout.dtype][2]
        if np_dtype is None:
            raise TypeError(f"no numpy dtype for {self.layout.dtype}: use .torch()")
        raw = _raw(self.address, self.layout.nbytes, self)
        return np.frombuffer(raw, dtype=np_dtype).reshape(self.layout.shape)

    def torch(self):
        import torch
        raw = _raw(self.address, self.layout.nbytes, self)
        t = torch.frombuffer(raw, dtype=getattr(torch, _DTYPES[self.layout.dtype][3]))
        return t.view(self.layout.shape)

    def commit(self, embedding, meta=b""):
        """Publish the bytes under embedding; returns the entry id."""
        if self.done:
            raise SimcacheError(N.ENOPUT, f"put {self.token} already committed or aborted")
        e = self.client._embedding(embedding)
        po, keep = _put_opts(meta)
        lay = self.layout._c()
        out = ctypes.c_uint64()
        self.client._call("put_commit", self.token, _f32p(e), ctypes.byref(lay),
                          ctypes.byref(po), ctypes.byref(out))
        del keep
        self.done = True
        return out.value

    def abort(self):
        """Drop the put (no-op once committed, aborted, or the client closed)."""
        if self.done or self.client.closed:
            self.done = True
            return
        self.done = True
        self.client._call("put_abort", self.token)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.abort()


class Match:
    """A hit (or a get) holding a lease on the entry's bytes.

    Fields: id, lease, similarity, tier, layout (Layout), size (bytes), meta
    (bytes). numpy() and torch() are zero-copy read-only views of the shared
    mapping, valid until release(). Use as a context manager to release on
    exit; a Match garbage-collected unreleased has its lease released on the
    client's next call.
    """

    def __init__(self, client, cm):
        self._client = client
        self._c = cm
        self.id = cm.id
        self.lease = cm.lease
        self.similarity = cm.similarity
        self.tier = cm.tier
        self.layout = Layout._from_c(cm.layout)
        self.size = cm.size
        self.meta = bytes(cm.meta[:cm.meta_len])
        self.released = False

    def __repr__(self):
        return (f"<simcache.Match id={self.id} similarity={self.similarity:.4f} size={self.size} "
                f"{'released' if self.released else 'leased'}>")

    def release(self):
        """End the lease. Releasing again raises SimcacheError ELEASE (the
        daemon's answer for a lease that is gone)."""
        c = self._client
        if not self.released:
            self.released = True
            c._call("release", ctypes.byref(self._c))
        else:
            c._call("release_lease", self.lease)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.released and not self._client.closed:
            self.release()

    def __del__(self):
        try:
            if not self.released and not self._client.closed:
                self._client._orphans.append(self.lease)
        except Exception:
            pass

    def _buffer(self):
        if self.released:
            raise SimcacheError(N.ELEASE, f"match {self.id}: lease already released")
        if self._client.closed:
            raise SimcacheError(N.ECLOSED, "client is closed")
        if self.tier != N.TIER_HOST or not self._c.data:
            raise NotImplementedError(f"match {self.id} is in the GPU tier: no host view "
                                      "(use .torch(device='cuda'), or .torch() for a host copy)")
        # Read-only at the buffer level: numpy cannot flip it back to writeable.
        return memoryview(_raw(self._c.data, self.size, self)).toreadonly()

    def _shape(self, itemsize, shape):
        if shape is not None:
            return tuple(shape)
        if self.layout.nbytes == self.size and itemsize == self.layout.itemsize:
            return self.layout.shape
        return (self.size // itemsize,)

    def numpy(self, dtype=None, shape=None):
        """Zero-copy READ-ONLY numpy view of the KV bytes (flags.writeable is
        False; writing raises). dtype None: the layout's (bfloat16 and fp8 have
        no numpy dtype: pass np.uint16 / np.uint8 for the raw bits, or use
        torch()). shape None: layout.shape."""
        if dtype is None:
            dtype = _DTYPES[self.layout.dtype][2]
            if dtype is None:
                raise TypeError(f"no numpy dtype for {self.layout.dtype}: pass dtype=np.uint16 or "
                                "np.uint8 for the raw bits, or use .torch()")
        dtype = np.dtype(dtype)
        arr = np.frombuffer(self._buffer(), dtype=dtype, count=self.size // dtype.itemsize)
        return arr.reshape(self._shape(dtype.itemsize, shape))

    def torch(self, dtype=None, shape=None, device=None):
        """The KV bytes as a torch tensor.

        device None or "cpu": a zero-copy view of read-only shared memory
        (torch.frombuffer; torch has no read-only tensors, so its "buffer is not
        writable" warning is silenced here). Writing it is undefined behaviour:
        in practice the process dies with SIGSEGV. Use .clone() for a writable
        copy. Other devices ("cuda", "cuda:1"): a copy on that device (host
        tier -> device), which stays valid after release(); on the client's
        gpu_device (Client(gpu_device=N)) it is simcache_copy_to_device, a DMA
        from the pinned shared arena.
        """
        import torch
        if dtype is None:
            name = _DTYPES[self.layout.dtype][3]
            if not hasattr(torch, name):
                raise TypeError(f"this torch ({torch.__version__}) has no {name}; pass dtype=torch.uint8")
            dtype = getattr(torch, name)
        itemsize = torch.empty((), dtype=dtype).element_size()
        if self.tier == N.TIER_GPU:
            # Device memory of the daemon's GPU tier: a device-to-device copy
            # onto the client's device, then wherever asked.
            dev = torch.device(device) if device is not None else torch.device("cpu")
            gdev = torch.device("cuda", torch.cuda.current_device()) if dev.type != "cuda" else dev
            out = self._copy_to_cuda(torch, gdev)
            return out.view(dtype).view(self._shape(itemsize, shape)).to(dev)
        buf = self._buffer()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given buffer is not writable")
            t = torch.frombuffer(buf, dtype=dtype, count=self.size // itemsize)
        shape = self._shape(itemsize, shape)
        t = t.view(shape)
        if device is None or torch.device(device).type == "cpu":
            return t
        dev = torch.device(device)
        if dev.type == "cuda" and self._client.gpu_status()[0] > 0:
            return self._copy_to_cuda(torch, dev).view(dtype).view(shape)
        return t.to(dev)

    def _copy_to_cuda(self, torch, dev):
        """simcache_copy_to_device into a new uint8 tensor on dev: one DMA
        from the pinned host arena, or device to device from the GPU tier,
        on the current stream, synchronised before returning (the lease may
        end right after)."""
        if self.released:
            raise SimcacheError(N.ELEASE, f"match {self.id}: lease already released")
        out = torch.empty(self.size, dtype=torch.uint8, device=dev)
        stream = torch.cuda.current_stream(dev)
        self._client._call("copy_to_device", ctypes.byref(self._c), 0,
                           ctypes.c_void_p(out.data_ptr()), self.size,
                           ctypes.c_void_p(stream.cuda_stream))
        stream.synchronize()
        return out
