#!/bin/sh
# run.sh - the PyTorch reuse example in one command: start a simcached from the
# build dir on a temporary directory, run reuse.py against it, stop the daemon.
#
#   examples/pytorch/run.sh [reuse.py flags...]      e.g. --device cuda
#
# Needs the build (ninja -C build) and a python3 with torch + numpy:
# $PYTHON, else /usr/bin/python3 (Debian's python3-torch), else python3 on PATH.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DAEMON=${SIMCACHE_DAEMON:-$ROOT/build/cached/simcached}
LIB=${SIMCACHE_LIB:-$ROOT/build/client/libsimcache-client.so}
ENTRIES=${SIMCACHE_MAX_ENTRIES:-16}

[ -x "$DAEMON" ] || { echo "run.sh: no simcached at $DAEMON: build first (ninja -C build)" >&2; exit 1; }
[ -f "$LIB" ] || { echo "run.sh: no client library at $LIB: build first (ninja -C build)" >&2; exit 1; }

if [ -z "${PYTHON:-}" ]; then
    for p in /usr/bin/python3 python3; do
        if "$p" -c 'import torch, numpy' 2>/dev/null; then PYTHON=$p; break; fi
    done
fi
[ -n "${PYTHON:-}" ] || { echo "run.sh: no python3 with torch and numpy (apt-get install python3-torch python3-numpy)" >&2; exit 1; }

DIR=$(mktemp -d /tmp/simcache-example.XXXXXX)
"$DAEMON" --socket "$DIR/simcached.sock" --admin-socket "$DIR/admin.sock" --data-dir "$DIR/data" \
    --host-capacity 256m --max-entries "$ENTRIES" --log-level warn >"$DIR/simcached.log" 2>&1 &
PID=$!
cleanup() {
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

i=0
while [ ! -S "$DIR/simcached.sock" ]; do
    if ! kill -0 "$PID" 2>/dev/null || [ $i -ge 100 ]; then
        echo "run.sh: simcached did not start:" >&2
        cat "$DIR/simcached.log" >&2
        exit 1
    fi
    i=$((i + 1))
    sleep 0.1
done

SIMCACHE_LIB=$LIB "$PYTHON" "$ROOT/examples/pytorch/reuse.py" --socket "$DIR/simcached.sock" \
    --cache-entries "$ENTRIES" "$@"
