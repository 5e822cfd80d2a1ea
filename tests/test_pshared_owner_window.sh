#!/usr/bin/env bash
# test_pshared_owner_window.sh PROGRAM PSYNC_C SANITIZE — a process mutex taken over from a
# dead holder, looked at from the taker's process at the moment the taker has claimed
# the lock word and not yet written which of its threads holds it
# (tests/pshared_owner_window.c says how the dead holder comes to share an identity
# with the main thread).  gdb (scripts/test.sh installs it) stops the taker at psync.c's
# line that records the holder's identity, found in PSYNC_C by its text, and calls the
# program's probes on the main thread with only that thread running: a lock that does
# not wait must be -ETIMEDOUT (-110), not -EDEADLK (-35), and an unlock -EPERM (-1), not
# 0 (which freed the taker's lock).  Then the program runs on to its end.  Not under
# ThreadSanitizer (its runtime does not take gdb's calls on a stopped process well) nor
# under an emulator (gdb attaches to the native process); skipped (77) where ptrace is
# refused.
set -u
program=$1 psync=$2 sanitize=${3:-}
fail() { echo "FAIL: $*"; printf '%s\n' "${out:-}" | tail -40; exit 1; }
command -v gdb >/dev/null || fail "gdb is missing (scripts/test.sh installs it)"
[ "$sanitize" != thread ] || { echo "skip: ThreadSanitizer"; exit 77; }
line=$(grep -n 'atomic_store_explicit(&st->owner_id, self' "$psync" | cut -d: -f1)
[ "$(wc -l <<<"$line")" = 1 ] && [ -n "$line" ] ||
  fail "psync.c's store of the holder's identity is not one line: '$line'"
rc=0
out=$(ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" timeout 120 \
  gdb -q -batch -nx -ex 'set breakpoint pending on' -ex 'set confirm off' \
  -ex 'break taker_starts' -ex run -ex "break psync.c:$line" -ex continue \
  -ex 'info threads' -ex 'thread 1' -ex 'set scheduler-locking on' \
  -ex 'print (int)probe_lock()' -ex 'print (int)probe_unlock()' \
  -ex 'set scheduler-locking off' -ex 'delete' -ex continue "$program" 2>&1) || rc=$?
if grep -q "ptrace: Operation not permitted" <<<"$out"; then
  echo "skip: ptrace refused here"
  exit 77
fi
[ "$rc" = 0 ] || fail "gdb exit $rc (124: the program or gdb hung)"
grep -Eq "^Breakpoint 2(\.[0-9]+)?, .*pmutex_lock|psync\.c:$line" <<<"$out" ||
  fail "never stopped at psync.c:$line"
grep -q '^\$1 = -110$' <<<"$out" || fail "the main thread's lock in the window: not -ETIMEDOUT"
grep -q '^\$2 = -1$' <<<"$out" || fail "the main thread's unlock in the window: not -EPERM"
grep -q "pshared_owner_window: done" <<<"$out" || fail "the program did not finish"
grep -q "exited normally" <<<"$out" || fail "the program did not exit 0"
echo "test_pshared_owner_window: ok"
