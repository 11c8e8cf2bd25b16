"""The ctypes mirror of simcache.h and the library search."""
import ctypes
import os
import subprocess
import sys

from conftest import PYDIR, REPO
import simcache
from simcache import _native as N


def test_struct_sizes_match_the_header():
    for name, size in N.C_SIZES.items():
        assert ctypes.sizeof(getattr(N, name)) == size, name


def test_match_field_offsets_match_the_header():
    m = N.simcache_match_t
    assert (m.similarity.offset, m.tier.offset, m.layout.offset, m.size.offset, m.data.offset,
            m.meta_len.offset, m.meta.offset) == (16, 20, 24, 48, 56, 72, 76)


def test_strerror_names_codes():
    assert simcache.strerror(simcache.EDIM).startswith("SIMCACHE_EDIM")
    assert simcache.SimcacheError(simcache.EEMBED, "x").name == "SIMCACHE_EEMBED"


def test_bad_simcache_lib_is_an_error_not_a_fallback():
    env = dict(os.environ, SIMCACHE_LIB="/nonexistent/libsimcache-client.so", PYTHONPATH=str(PYDIR))
    r = subprocess.run([sys.executable, "-c", "import simcache; simcache.library()"],
                       env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "/nonexistent/libsimcache-client.so" in r.stderr


def test_build_dir_is_found_without_simcache_lib():
    env = {k: v for k, v in os.environ.items() if k != "SIMCACHE_LIB"}
    env["PYTHONPATH"] = str(PYDIR)
    env["SIMCACHE_BUILD_DIR"] = str(REPO / "build")
    r = subprocess.run([sys.executable, "-c", "import simcache; print(simcache.library()._simcache_path)"],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "libsimcache-client.so" in r.stdout
