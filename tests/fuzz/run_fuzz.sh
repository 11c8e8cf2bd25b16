#!/bin/sh
# run_fuzz.sh FUZZER SEED_DIR [DICT] - run one libFuzzer target briefly (meson
# test suite 'fuzz').
#
# Fuzzes for ${FUZZ_SECONDS:-20} seconds. New inputs go to an empty temporary
# directory; SEED_DIR is only read, so nothing is written into the source
# tree. Fails on any crash, sanitizer report, leak or timeout, and then keeps
# the temporary directory (its artifacts/ holds the input to replay with
# `FUZZER ARTIFACT`). Prints the number of inputs executed.
set -eu

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    echo "usage: $0 FUZZER SEED_DIR [DICT]" >&2
    exit 2
fi
fuzzer=$1
seeds=$2
dict=${3:-}
seconds=${FUZZ_SECONDS:-20}
name=$(basename "$fuzzer")

case $seconds in
    ''|*[!0-9]*) echo "$name: FUZZ_SECONDS must be a whole number, not '$seconds'" >&2; exit 2 ;;
esac
[ -x "$fuzzer" ] || { echo "$name: $fuzzer is not an executable" >&2; exit 2; }
[ -d "$seeds" ] || { echo "$name: seed directory $seeds missing" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/simcache-$name.XXXXXX")
mkdir "$work/corpus" "$work/artifacts"

# UBSan only reports and goes on unless told to stop; a report is a failure.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

set -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/"
if [ -n "$dict" ]; then
    set -- "$@" -dict="$dict"
fi

rc=0
"$fuzzer" "$@" "$work/corpus" "$seeds" >"$work/log" 2>&1 || rc=$?

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n 1)
new=$(find "$work/corpus" -type f | wc -l)
found=$(find "$work/artifacts" -type f | wc -l)

if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
    # Show what libFuzzer said: the sanitizer report and the artifact name.
    tail -n 80 "$work/log"
    echo "$name: FAILED (exit $rc) after ${execs:-?} executions; inputs and log kept in $work" >&2
    ls -l "$work/artifacts" >&2
    exit 1
fi

echo "$name: ${execs:-?} executions in ${seconds} s, $new new inputs, no crash, leak or timeout"
rm -rf "$work"
exit 0
