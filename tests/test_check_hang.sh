#!/usr/bin/env bash
# test_check_hang.sh PROBE — a test program that hangs ends by its alarm with status 2
# and prints the stacks of its threads (check.h), so that a hang in CI leaves them in
# the log; a child it forked that hangs too ends a few seconds later (its own alarm,
# check.h: no stacks), not holding ctest's output open for ever.  Skipped (77) where gdb is missing
# or may not attach (ptrace refused).
set -u
probe=$1
command -v gdb >/dev/null || { echo "skip: no gdb"; exit 77; }
pid_file=$(mktemp)
trap 'rm -f "$pid_file"' EXIT
out=$(PROBE_CHILD_PID_FILE=$pid_file PLAIT_TEST_TIMEOUT=2 timeout 120 "$probe" 2>&1)
rc=$?
child=$(cat "$pid_file")
fail() { echo "FAIL: $*"; printf '%s\n' "$out" | tail -40; exit 1; }
[ "$rc" = 2 ] || fail "exit status $rc, not 2"
grep -q "test timed out (hang)" <<<"$out" || fail "no time-out line"
if grep -q "ptrace: Operation not permitted" <<<"$out"; then
  echo "skip: ptrace refused here"
  exit 77
fi
grep -q "probe_waits_for_ever" <<<"$out" || fail "the hung frame is not in the stacks"
# the child: at most 5 s past the run's alarm (check.h), with a margin for a loaded
# machine (a zombie, which whoever adopted it has not reaped yet, has ended)
alive() { [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" ] &&
          [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
for _ in $(seq 300); do
  alive "$child" || break
  sleep 0.1
done
if alive "$child"; then
  kill -9 "$child"
  fail "the hung child $child was still there 30 s after the run ended"
fi
echo "ok: the hang ended with status 2 and its stacks, and its hung child soon after"
