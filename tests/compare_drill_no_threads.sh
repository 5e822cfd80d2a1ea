#!/usr/bin/env bash
# tests/compare_drill_no_threads.sh PLAIT FAIL_THREADS_SO — `plait compare` whose thread
# crash drill cannot start its units (fail_threads.c, preloaded, makes pthread_create
# fail in the processes the tool forks): the drill fails, so its row is "not measured",
# the step is reported by name with the reason, the run exits 1, and the crash
# recommendation quotes the row as not measured.  Once with no unit started (the drill's
# process ended with EAGAIN, reported as "no: ... ended all 3"), once with the crasher
# alone missing (the two survivors finished, reported as "yes", and threads were
# recommended for code that may crash).
set -uo pipefail
plait=${1:?usage: compare_drill_no_threads.sh PLAIT FAIL_THREADS_SO}
shim=${2:?usage: compare_drill_no_threads.sh PLAIT FAIL_THREADS_SO}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# PLAIT_TEST_CHILD_THREADS=N: the Nth thread a forked process starts, and the later ones,
# fail.  The drill starts two survivors, then the crasher.
for n in 1 3; do
    PLAIT_TEST_CHILD_THREADS=$n LD_PRELOAD=$shim \
        timeout 300 "$plait" compare --quick --quiet --json >"$tmp/out" 2>"$tmp/err"
    status=$?
    sed "s/^/  [$n] stderr: /" "$tmp/err"
    if [ "$status" != 1 ]; then
        echo "FAIL [$n] exit $status, expected 1 (a step failed)"; failures=$((failures + 1))
    fi
    if ! grep -q "^plait compare: threads: crash isolation failed: Resource temporarily unavailable$" "$tmp/err"; then
        echo "FAIL [$n] the failed drill is not reported with its reason"; failures=$((failures + 1))
    fi
    python3 - "$tmp/out" "$n" <<'PY' || failures=$((failures + 1))
import json, sys
d, n = json.load(open(sys.argv[1])), sys.argv[2]
crash = next(f for f in d["facts"] if f["id"] == "crash_isolated")["values"]
rec = [r for r in d["recommendations"] if r["work"].startswith("code that may crash")]
print("  [%s] crash row: %s" % (n, crash))
print("  [%s] recommendation: %s" % (n, rec))
bad = []
if crash["thread"] != "not measured":
    bad.append("the threads' drill answered %r" % crash["thread"])
if not crash["coroutine"].startswith("no: SIGSEGV") or not crash["process"].startswith("yes"):
    bad.append("the other drills changed: %r" % crash)
if len(rec) != 1 or rec[0]["model"] != "process" or "threads: not measured;" not in rec[0]["why"]:
    bad.append("the recommendation does not stand on the measured drills alone")
for b in bad:
    print("FAIL [%s] %s" % (n, b))
if not bad:
    print("ok   [%s] the threads' drill is not measured, and not recommended from" % n)
sys.exit(1 if bad else 0)
PY
done
exit $((failures > 0))
