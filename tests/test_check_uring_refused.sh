#!/usr/bin/env bash
# test_check_uring_refused.sh PROBE — an io_uring run of a test (PLAIT_POLLER=io_uring)
# where plait's own ring setup fails but the kernel's would not must fail, not be
# skipped as a system without io_uring (check.h).  Where the kernel refuses the ring or
# lacks what plait requires, or in a ThreadSanitizer build (always epoll), the probe's
# skip is this test's (77).
set -u
probe=$1
out=$(PLAIT_POLLER=io_uring timeout 60 "$probe" 2>&1)
rc=$?
printf '%s\n' "$out"
fail() { echo "FAIL: $*"; exit 1; }
if [ "$rc" = 77 ]; then
  grep -Eq "epoll is what runs here: (the kernel refuses|the kernel's io_uring lacks|a ThreadSanitizer build|this system has no)" \
    <<<"$out" || fail "skipped, and not for a reason outside plait"
  exit 77
fi
[ "$rc" = 1 ] || fail "exit status $rc, not 1"
grep -q "its own setup failed" <<<"$out" || fail "no line that says why"
echo "ok"
