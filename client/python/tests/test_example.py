"""Smoke test of examples/pytorch/reuse.py on a tiny configuration."""
import json
import os
import subprocess
import sys

import pytest

from conftest import PYDIR, REPO

pytest.importorskip("torch")


def test_reuse_example_runs_and_hits(daemon, tmp_path):
    out = tmp_path / "figures.json"
    cmd = [sys.executable, str(REPO / "examples" / "pytorch" / "reuse.py"), "--socket", daemon.socket,
           "--tasks", "24", "--batch-size", "4", "--prompt-len", "48", "--gen-tokens", "4",
           "--d-model", "64", "--heads", "2", "--kv-heads", "1", "--topics", "3", "--json", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(PYDIR)})
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(out.read_text())
    assert res["hits"] > 0 and res["misses"] > 0 and res["hits"] + res["misses"] == 24
    assert res["daemon"]["puts"] == res["misses"]
    assert res["miss_token_agreement"] == 1.0       # a miss runs exactly the baseline computation
    assert res["kv_bytes_per_task"]["condensed_stored"] * 10 == res["kv_bytes_per_task"]["full_all_layers"]
