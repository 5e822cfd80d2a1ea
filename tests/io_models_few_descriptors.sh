#!/usr/bin/env bash
# The I/O-bound example (the tour's and `plait compare`'s job) with too few descriptors
# for its clients: it fails at once and says why (its server's accept loop ended at the
# first EMFILE, and every later client waited out its 60 s deadline: three minutes).
#   bash tests/io_models_few_descriptors.sh EXAMPLE_IO_MODELS
set -uo pipefail
example=${1:?usage: io_models_few_descriptors.sh EXAMPLE_IO_MODELS}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$SECONDS
(ulimit -n 256 && timeout 100 "$example") >"$out" 2>&1
rc=$?
took=$((SECONDS - start))
# (under 50 s: a client that waited out its 60 s deadline is the failure this catches;
# the whole run takes about 5 s, 31 s once under ThreadSanitizer on a loaded machine)
if [ "$rc" = 1 ] && [ "$took" -lt 50 ] && grep -q "Too many open files" "$out"; then
    echo "ok: io_models with 256 descriptors: exit 1 in ${took} s, said why"
    exit 0
fi
echo "FAIL: io_models with 256 descriptors: exit $rc after ${took} s" >&2
tail -5 "$out" >&2
exit 1
