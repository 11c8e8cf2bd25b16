#!/usr/bin/env bash
# test_readme.sh - the README's quick start works when pasted as one block.
# Takes the first ```sh block under "## Quick start" from README.md as it
# stands (no copy here) and runs it in a scratch directory whose build/ is
# this build and whose `make` does nothing (the build is meson's, already
# done); each line must succeed (set -e), put_and_find must find every task,
# stats must show them, and the daemon must exit 0.
#
#   test_readme.sh README.md BUILD_DIR
#
# Exits 0 when it worked, 1 otherwise (with the block's output).
set -u
README=$1
BUILD=$(cd "$2" && pwd)

W=$(mktemp -d /tmp/scit-readme-XXXXXX)
trap 'rm -rf "$W"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# The first code block of the README is still `make run` / `make test`.
FIRST=$(awk '/^```/ { if (inside) exit; inside = 1; next } inside' "$README")
printf '%s\n' "$FIRST" | sed -n 1p | grep -q '^make run ' &&
    printf '%s\n' "$FIRST" | sed -n 2p | grep -q '^make test ' ||
    fail "README.md's first block is no longer 'make run' then 'make test': $FIRST"

BLOCK=$(awk '/^## Quick start/ { q = 1; next }
             q && /^```sh/ { inside = 1; next }
             inside && /^```/ { exit }
             inside' "$README")
[ -n "$BLOCK" ] || fail "no \`\`\`sh block under '## Quick start' in $README"
printf '%s\n' "$BLOCK" | grep -q 'simcachectl.* wait' || fail "the quick start does not wait for the daemon"

ln -s "$BUILD" "$W/build"
mkdir "$W/bin" "$W/tmp"
printf '#!/bin/sh\necho "(make: skipped by test_readme.sh, meson built %s)"\n' "$BUILD" >"$W/bin/make"
chmod +x "$W/bin/make"

# set -e: any failing line fails the block; on the way out, whatever the
# block left running in the background is stopped.
(cd "$W" && PATH="$W/bin:$PATH" TMPDIR="$W/tmp" bash -c \
    'set -e; trap '\''rc=$?; kill $(jobs -p) 2>/dev/null || :; exit $rc'\'' EXIT
'"$BLOCK") >"$W/out" 2>&1
RC=$?
cat "$W/out"
[ "$RC" -eq 0 ] || fail "the quick-start block exited $RC"
grep -q '^OK: every similar task found' "$W/out" || fail "put_and_find did not find every task"
grep -qx 'entries 4' "$W/out" || fail "stats does not show the 4 entries"
echo "test_readme.sh: the quick start ran as pasted"
