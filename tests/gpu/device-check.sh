#!/bin/bash
# device-check.sh - every GPU check of the project in one command, for the
# rare session that is lent a GPU machine (device time is short: one call).
#
# Here, once:   ../shared/device/fetch-debs.sh      (fills .device/, git-ignored)
# On the GPU machine (device tool, carry [".device"]):
#   bash tests/gpu/device-check.sh
#
# It builds build-gpu with CUDA, runs the unit and gpu suites (the gpu tests
# print what they found: arena kind, read-only mapping, pinned arena), the
# integration suite against the same build, the PyTorch example with --device
# cuda when torch sees a GPU, and writes every log under $OUT (or ./device-out)
# so the session can read them. Exit status: that of the gpu suite.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
out=${OUT:-$root/device-out}
mkdir -p "$out"
log() { echo "== $*" | tee -a "$out/summary.txt"; }

[ -f .device/setup.sh ] && source .device/setup.sh
log "host: $(uname -r), $(nproc) cores"
nvidia-smi -L 2>&1 | tee -a "$out/summary.txt"
command -v nvcc >/dev/null && nvcc --version | tail -1 | tee -a "$out/summary.txt"

if ! { meson setup build-gpu -Dgpu=enabled >"$out/setup.txt" 2>&1 &&
       ninja -C build-gpu >"$out/build.txt" 2>&1; }; then
    log "build failed (see setup.txt, build.txt)"
    tail -40 "$out/build.txt" "$out/setup.txt"
    exit 1
fi
log "built build-gpu"

meson test -C build-gpu --suite gpu --print-errorlogs --verbose >"$out/gpu-suite.txt" 2>&1
gpu_rc=$?
log "gpu suite: exit $gpu_rc"
grep -E "^ *[0-9]+/[0-9]+ |^Ok:|^Fail:|^Skipped:" "$out/gpu-suite.txt" | grep -v RUNNING | tee -a "$out/summary.txt"

meson test -C build-gpu --suite unit --suite integration --print-errorlogs >"$out/other-suites.txt" 2>&1
log "unit + integration: exit $?"
grep -E "^Ok:|^Fail:|^Skipped:" "$out/other-suites.txt" | tee -a "$out/summary.txt"

# The GPU tier's benchmark (bench_gpu_ipc) and, when built, the batched
# scoring benchmark: figures for docs/benchmarks.md.
timeout 300 ./build-gpu/bench/bench_gpu_ipc build-gpu/cached/simcached >"$out/bench-gpu-ipc.txt" 2>&1
log "bench_gpu_ipc: exit $?"
grep -E "^\| " "$out/bench-gpu-ipc.txt" | tee -a "$out/summary.txt"
if [ -x build-gpu/bench/bench_gpu ]; then
    timeout 300 ./build-gpu/bench/bench_gpu build-gpu/cached/simcached >"$out/bench-gpu.txt" 2>&1
    log "bench_gpu: exit $?"
    tail -30 "$out/bench-gpu.txt" | tee -a "$out/summary.txt"
fi

py=$(command -v python3 || true)
if [ -n "$py" ] && "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    SIMCACHE_LIB=build-gpu/client/libsimcache-client.so SIMCACHE_DAEMON=build-gpu/cached/simcached \
        "$py" -m pytest -q -p no:cacheprovider client/python/tests >"$out/pytest.txt" 2>&1
    log "pytest (torch with CUDA): exit $?"
    tail -3 "$out/pytest.txt" | tee -a "$out/summary.txt"
    PYTHON=$py SIMCACHE_DAEMON=$root/build-gpu/cached/simcached \
        SIMCACHE_LIB=$root/build-gpu/client/libsimcache-client.so \
        sh examples/pytorch/run.sh --device cuda >"$out/pytorch-cuda.txt" 2>&1
    log "PyTorch example --device cuda: exit $?"
    grep -E "GPU path|hit rate|tokens/s|prefill" "$out/pytorch-cuda.txt" | tee -a "$out/summary.txt"
else
    log "PyTorch example skipped: no python3 with a CUDA-enabled torch on this machine"
fi
exit $gpu_rc
