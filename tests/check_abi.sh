#!/bin/sh
# check_abi.sh LIB LIST - the symbols LIB exports (defined, dynamic) must be
# exactly the names in LIST, one per line: an internal function that leaks
# out of libsimcache-client.so, or an API function that disappears, fails
# the test with the difference. Update LIST on purpose when the API grows.
set -eu
lib=$1
list=$2
command -v nm >/dev/null 2>&1 || { echo "check_abi: nm not found (binutils)"; exit 77; }
got=$(mktemp)
trap 'rm -f "$got"' EXIT
nm -D --defined-only "$lib" | awk '$2 != "A" {print $3}' | sed 's/@.*//' | sort -u > "$got"
if ! diff -u "$list" "$got"; then
    echo "check_abi: $lib exports a different set of symbols than $list (- listed, + exported)"
    exit 1
fi
echo "check_abi: $(wc -l < "$got") symbols, as listed"
