#!/usr/bin/env bash
# test_check_hang.sh PROBE — a test program that hangs ends by its alarm with status 2
# and prints the stacks of its threads (check.h), so that a hang in CI leaves them in
# the log; a child it forked that hangs too ends a few seconds later (its own alarm,
# check.h: no stacks), not holding ctest's output open for ever (but for a run with no
# alarm).  Skipped (77) where gdb is missing or may not attach (ptrace refused).
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
# machine.  It is known by its pid and start time (field 22: once it is gone and
# reaped, its pid may be another process's); a zombie, which whoever adopted it has
# not reaped yet, has ended.
started() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null; }
alive() { local s
          s=$(awk '{print $3 " " $22}' "/proc/$1/stat" 2>/dev/null)
          [ -n "$s" ] && [ "${s% *}" != Z ] && [ "${s#* }" = "$2" ]; }
child_start=$(started "$child")
for _ in $(seq 300); do
  alive "$child" "$child_start" || break
  sleep 0.1
done
if alive "$child" "$child_start"; then
  kill -9 "$child"
  fail "the hung child $child was still there 30 s after the run ended"
fi
# without an alarm for the run (PLAIT_TEST_TIMEOUT=0: under a debugger) a child is not
# cut short: one that sleeps past the children's grace ends well (it was killed)
out=$(PLAIT_TEST_ONLY=a_slow_child_without_an_alarm PLAIT_TEST_TIMEOUT=0 timeout 60 "$probe" 2>&1) ||
  fail "a slow child without an alarm: status $?"
echo "ok: the hang ended with status 2 and its stacks, and its hung child soon after; a slow child without an alarm was left alone"
