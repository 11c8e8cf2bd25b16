#!/bin/sh
# check_version.sh - one version everywhere: the meson project, the C
# header's SIMCACHE_VERSION_STRING and the Python package must agree.
# usage: check_version.sh PROJECT_VERSION SOURCE_ROOT
set -eu
want=$1
root=$2
bad=0
hdr=$(sed -n 's/^#define SIMCACHE_VERSION_STRING "\(.*\)"/\1/p' "$root/client/simcache.h")
toml=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/client/python/pyproject.toml")
py=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$root/client/python/simcache/__init__.py")
for pair in "client/simcache.h:$hdr" "client/python/pyproject.toml:$toml" \
            "client/python/simcache/__init__.py:$py"; do
    v=${pair#*:}
    if [ "$v" != "$want" ]; then
        echo "${pair%%:*} says version '$v', meson.build says '$want'"
        bad=1
    fi
done
[ $bad = 0 ] && echo "version $want everywhere"
exit $bad
