#!/usr/bin/env bash
# test_check_uring_refused.sh PROBE ECHO_PAIR SERVER CLIENT — an io_uring run
# (PLAIT_POLLER=io_uring) where plait's own ring setup fails but the kernel's would not
# must fail, not be skipped as a system without io_uring: a test program's (the
# harness, check.h: PROBE) and an example test script's (start_server.sh: ECHO_PAIR
# with a SERVER whose ring mapping is refused).  Where the kernel refuses the ring or
# lacks what plait requires, or in a ThreadSanitizer build (always epoll), both must
# skip, and so does this test (77).
set -u
probe=$1 echo_pair=$2 server=$3 client=$4
fail() { echo "FAIL: $*"; exit 1; }

out=$(PLAIT_POLLER=io_uring timeout 60 "$probe" 2>&1)
rc=$?
printf '%s\n' "$out"
outside_plait="(the kernel refuses|the kernel's io_uring lacks|a ThreadSanitizer build|this system has no)"
if [ "$rc" = 77 ]; then
  grep -Eq "epoll is what runs here: $outside_plait" <<<"$out" ||
    fail "skipped, and not for a reason outside plait"
  skipped=1
else
  [ "$rc" = 1 ] || fail "exit status $rc, not 1"
  grep -q "its own setup failed" <<<"$out" || fail "no line that says why"
  echo "ok   the harness fails the run"
  skipped=0
fi

out=$(PLAIT_POLLER=io_uring timeout 100 bash "$echo_pair" "$server" "$client" 2>&1)
rc=$?
printf '%s\n' "$out"
if [ "$skipped" = 1 ]; then
  [ "$rc" = 77 ] || fail "the echo pair's exit status $rc, not 77 (skipped) as the harness's"
  grep -Eq "epoll is what runs here \($outside_plait" <<<"$out" ||
    fail "the echo pair skipped, and not for a reason outside plait"
  exit 77
fi
[ "$rc" = 1 ] || fail "the echo pair's exit status $rc, not 1"
grep -q "where nothing here refuses it, but the server waits on epoll" <<<"$out" ||
  fail "the echo pair said no line why"
echo "ok   the example test's script fails the run"
