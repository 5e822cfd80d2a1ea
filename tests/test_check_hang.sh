#!/usr/bin/env bash
# test_check_hang.sh PROBE — a test program that hangs ends by its alarm with status 2
# and prints the stacks of its threads (check.h), so that a hang in CI leaves them in
# the log.  Skipped (77) where gdb is missing or may not attach (ptrace refused).
set -u
probe=$1
command -v gdb >/dev/null || { echo "skip: no gdb"; exit 77; }
out=$(PLAIT_TEST_TIMEOUT=2 timeout 120 "$probe" 2>&1)
rc=$?
fail() { echo "FAIL: $*"; printf '%s\n' "$out" | tail -40; exit 1; }
[ "$rc" = 2 ] || fail "exit status $rc, not 2"
grep -q "test timed out (hang)" <<<"$out" || fail "no time-out line"
if grep -q "ptrace: Operation not permitted" <<<"$out"; then
  echo "skip: ptrace refused here"
  exit 77
fi
grep -q "probe_waits_for_ever" <<<"$out" || fail "the hung frame is not in the stacks"
echo "ok: the hang ended with status 2 and its stacks"
