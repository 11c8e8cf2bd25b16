"""The ctypes mirror of simcache.h and the library search."""
import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PYDIR, REPO
import simcache
from simcache import _native as N


def layout_dump(tmp_path):
    """The layout_dump program: $SIMCACHE_LAYOUT_DUMP (meson builds it as
    build/client/simcache-layout-dump), else that build's, else compiled here
    from tests/layout_dump.c with $CC (default cc)."""
    env = os.environ.get("SIMCACHE_LAYOUT_DUMP")
    if env:
        return env
    built = REPO / "build" / "client" / "simcache-layout-dump"
    if built.exists():
        return str(built)
    exe = tmp_path / "layout_dump"
    cc = os.environ.get("CC", "cc")
    src = Path(__file__).with_name("layout_dump.c")
    r = subprocess.run([cc, "-std=c11", "-I", str(REPO / "client"), "-o", str(exe), str(src)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"cannot build {src} with {cc} (set SIMCACHE_LAYOUT_DUMP): {r.stderr}")
    return str(exe)


def c_layout(tmp_path):
    """{struct: (size, {field: (offset, size)})} as the C compiler lays them out."""
    out = subprocess.run([layout_dump(tmp_path)], capture_output=True, text=True, check=True).stdout
    structs = {}
    for line in out.splitlines():
        kind, name, *nums = line.split()
        if kind == "struct":
            structs[name] = (int(nums[0]), {})
        else:
            struct, field = name.split(".")
            structs[struct][1][field] = (int(nums[0]), int(nums[1]))
    return structs


def mirrored_structs():
    return {name: cls for name, cls in vars(N).items()
            if isinstance(cls, type) and issubclass(cls, ctypes.Structure)
            and name.startswith("simcache_")}


def test_every_mirrored_struct_is_checked_against_c(tmp_path):
    assert set(mirrored_structs()) == set(c_layout(tmp_path))


def test_struct_layouts_match_the_c_compiler(tmp_path):
    mirrors = mirrored_structs()
    for name, (size, fields) in c_layout(tmp_path).items():
        cls = mirrors[name]
        assert [f[0] for f in cls._fields_] == sorted(fields, key=lambda f: fields[f][0]), name
        for field, (offset, fsize) in fields.items():
            d = getattr(cls, field)
            assert (d.offset, d.size) == (offset, fsize), f"{name}.{field}"
        assert ctypes.sizeof(cls) == size, name


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
