#!/usr/bin/env python3
"""Put latency with the host tier full and a disk tier under it, with the
write-behind off (disk_flush_ms 0: every eviction writes its entry inside
the put) and on (100 ms: evictions find their entries written). 600 puts of
2 MiB, 2 ms apart, into a 64 MiB host tier over a 2 GiB disk tier in
/var/tmp; the first 100 are not counted (the host tier is filling).

    SIMCACHE_LIB=build/client/libsimcache-client.so \
        python3 bench/bench_write_behind.py build/cached/simcached
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "client", "python"))
import simcache  # noqa: E402


def run(exe, flush_ms):
    d = tempfile.mkdtemp(prefix="simcache-wb-", dir="/var/tmp")
    sock = d + "/s.sock"
    p = subprocess.Popen([exe, "--socket", sock, "--admin-socket", d + "/a.sock",
                          "--data-dir", d + "/data", "--host-capacity", "64m",
                          "--disk-capacity", "2g", "--disk-flush-ms", str(flush_ms)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        time.sleep(0.2)
        c = simcache.Client(sock, "m", "fp", 64)
        kv = np.random.default_rng(1).standard_normal((2, 1, 8, 512, 128)).astype(np.float16)
        rng = np.random.default_rng(2)
        lat = []
        for _ in range(600):
            e = rng.standard_normal(64).astype(np.float32)
            t = time.perf_counter()
            c.put(e, kv)
            lat.append(time.perf_counter() - t)
            time.sleep(0.002)
        c.close()
    finally:
        p.terminate()
        p.wait()
        subprocess.run(["rm", "-rf", d])
    lat = np.array(lat[100:]) * 1e6
    return np.percentile(lat, 50), np.percentile(lat, 99), lat.max()


def main():
    exe = sys.argv[1] if len(sys.argv) > 1 else "build/cached/simcached"
    print("| disk_flush_ms | put 2 MiB p50 | p99 | max |")
    print("|---:|---:|---:|---:|")
    for f in (0, 100, 0, 100):
        p50, p99, mx = run(exe, f)
        print(f"| {f} | {p50:.0f} us | {p99:.0f} us | {mx:.0f} us |", flush=True)


if __name__ == "__main__":
    main()
