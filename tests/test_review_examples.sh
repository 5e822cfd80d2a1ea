#!/usr/bin/env bash
# tests/test_review_examples.sh HTTP_SERVER ECHO_SERVER ECHO_CLIENT — the I/O examples
# against clients that misbehave (review of the examples):
#  - one greedy HTTP client (pipelined requests sent and read as fast as it can) must
#    not keep the server from the others (below);
# Every step is bounded by `timeout`; a failure prints what was seen.
set -uo pipefail
http="${1:?usage: test_review_examples.sh HTTP_SERVER ECHO_SERVER ECHO_CLIENT}"
echo_server="${2:?usage}" echo_client="${3:?usage}"
for tool in curl python3 timeout; do
    command -v "$tool" >/dev/null || { echo "SKIP $tool is missing"; exit 77; }
done
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
ok() { echo "ok   $*"; }
tmp=$(mktemp -d)
. "$(dirname "$0")/start_server.sh"

# A greedy HTTP client: pipelined requests sent by one `cat` as fast as it can while
# another reads the answers, for 3 s.  Each read finds the 16 KiB it asks for, each
# write finds room, so the connection's coroutine never waited: it ran for seconds
# without letting the acceptor or any other connection run (PLAIT_SLOW_MS makes the
# scheduler say so), and a second client waited as long.
python3 -c 'import sys; sys.stdout.buffer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 40000)' \
    >"$tmp/pipelined"
export PLAIT_SLOW_MS=300
start_server "$http"
unset PLAIT_SLOW_MS
exec 3<>"/dev/tcp/127.0.0.1/$port"
(while cat "$tmp/pipelined"; do :; done >&3 2>/dev/null) &
sender=$!
(cat <&3 >/dev/null) &
reader=$!
sleep 0.3
worst=0 trips=0 end=$((SECONDS + 3))
while [ $SECONDS -lt $end ]; do
    t=$(date +%s%N)
    got=$(timeout 10 curl -s --max-time 8 "http://127.0.0.1:$port/")
    [ "$got" = "Hello, world!" ] || { worst=99999; break; }
    t=$(( ($(date +%s%N) - t) / 1000000 ))
    [ $t -gt $worst ] && worst=$t
    trips=$((trips + 1))
done
kill $sender $reader 2>/dev/null; wait $sender $reader 2>/dev/null
exec 3<&-
if [ $worst -lt 2000 ] && ! grep -q "without yielding" "$tmp/out"; then
    ok "a greedy pipelining client does not hold the others up ($trips requests beside it, the slowest $worst ms)"
else
    fail "beside a greedy pipelining client: $trips requests, the slowest $worst ms"
    grep "without yielding" "$tmp/out" | head -3
fi
stop_server "stopped accepting" || fail "SIGTERM after the greedy client"

echo "test_review_examples: $failures failed"
[ $failures = 0 ]
