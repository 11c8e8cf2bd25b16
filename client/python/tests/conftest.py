"""Fixtures: a real simcached on a temporary directory, and clients of it.

The daemon is $SIMCACHE_DAEMON, else <repo>/build/cached/simcached; the C
library is $SIMCACHE_LIB, else <repo>/build/client/libsimcache-client.so when
it exists (so the tests exercise this checkout's build, not an installed copy).
No meson needed: build with `ninja -C build` and run
`/usr/bin/python3 -m pytest -q client/python/tests`.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
PYDIR = REPO / "client" / "python"
sys.path.insert(0, str(PYDIR))

_build_lib = REPO / "build" / "client" / "libsimcache-client.so"
if "SIMCACHE_LIB" not in os.environ and _build_lib.exists():
    os.environ["SIMCACHE_LIB"] = str(_build_lib)

import simcache  # noqa: E402

DIM = 64
MODEL = "pytest-model@rev1"
FINGERPRINT = "condensed-top/f16/parts2/layers1/kvh4/hd16"


def daemon_path():
    p = os.environ.get("SIMCACHE_DAEMON") or str(REPO / "build" / "cached" / "simcached")
    if not os.access(p, os.X_OK):
        pytest.fail(f"simcached not found at {p}: build it (ninja -C build) or set SIMCACHE_DAEMON")
    return p


class Daemon:
    """simcached in the foreground on its own temp dir; stop() is SIGTERM + wait."""

    def __init__(self, *flags):
        # Short path: a Unix socket path must fit in 108 bytes.
        self.dir = tempfile.mkdtemp(prefix="scpy-")
        self.socket = os.path.join(self.dir, "simcached.sock")
        self.log_path = os.path.join(self.dir, "simcached.log")
        cmd = [daemon_path(), "--socket", self.socket,
               "--admin-socket", os.path.join(self.dir, "admin.sock"),
               "--data-dir", os.path.join(self.dir, "data"),
               "--host-capacity", "64m", "--log-level", "warn", *flags]
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"simcached exited with {self.proc.returncode}:\n{self.logtext()}")
            if os.path.exists(self.socket):
                try:
                    with simcache.Client(self.socket, "probe", "probe", 4, timeout_ms=2000) as c:
                        c.ping()
                    return
                except simcache.SimcacheError:
                    pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"simcached not ready after {timeout}s:\n{self.logtext()}")

    def logtext(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        rc = self.proc.returncode
        text = self.logtext() if rc else ""
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc, text


@pytest.fixture
def daemon():
    d = Daemon()
    yield d
    rc, text = d.stop()
    assert rc == 0, f"simcached exited with {rc}:\n{text}"


@pytest.fixture
def client(daemon):
    with simcache.Client(daemon.socket, MODEL, FINGERPRINT, DIM) as c:
        yield c


def unit(seed, dim=DIM):
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def at_cosine(v, cos, seed):
    """A unit vector at exactly `cos` from unit vector v."""
    r = np.random.default_rng(seed + 10_000).standard_normal(v.size)
    r -= r.dot(v) * v
    r /= np.linalg.norm(r)
    return (cos * v + np.sqrt(1 - cos * cos) * r).astype(np.float32)


def kv_blob(seed, tokens=8, dtype=np.float16):
    """A condensed-layer KV blob: (parts 2, layers 1, kv_heads 4, tokens, head_dim 16)."""
    return np.random.default_rng(seed).standard_normal((2, 1, 4, tokens, 16)).astype(dtype)
