#!/usr/bin/env bash
# Runs the resolve_slow test program with /etc/resolv.conf naming a name server that never answers
# (127.0.0.2, served by the test itself), in a private mount namespace: the machine's
# own file is not touched.  Needs unshare(1) and the right to make a mount namespace
# (root, or a user namespace); where that is refused it says so and exits 77, which
# ctest reports as skipped, not passed.
#   bash tests/resolve_slow.sh RESOLVE_SLOW
set -uo pipefail
test_bin=${1:?usage: resolve_slow.sh RESOLVE_SLOW}
conf=$(mktemp)
trap 'rm -f "$conf"' EXIT
printf 'nameserver 127.0.0.2\noptions timeout:2 attempts:1\n' >"$conf"
if ! unshare -m true 2>/dev/null; then
    echo "resolve_slow: cannot make a mount namespace here (unshare -m refused): not run" >&2
    exit 77
fi
exec unshare -m bash -c 'mount --bind "$1" /etc/resolv.conf && exec "$2"' _ "$conf" "$test_bin"
