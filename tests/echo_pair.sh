#!/usr/bin/env bash
# tests/echo_pair.sh SERVER CLIENT — the echo example server and client together: 50
# connections x 200 messages, each checked byte for byte by the client (by name,
# "localhost", so resolution is on the way), then a graceful stop on SIGTERM.
set -uo pipefail
server="${1:?usage: echo_pair.sh SERVER CLIENT}" client="${2:?usage: echo_pair.sh SERVER CLIENT}"
tmp=$(mktemp -d)
trap 'kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
timeout 120 "$server" 0 >"$tmp/out" 2>&1 &
pid=$!
for _ in $(seq 200); do
    grep -q "listening on" "$tmp/out" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/out")
[ -n "$port" ] || { cat "$tmp/out"; echo "FAIL the server never listened"; exit 1; }
status=0
if timeout 60 "$client" localhost "$port" 50 200; then
    echo "ok   50 connections x 200 messages echoed"
else
    echo "FAIL the client"; status=1
fi
kill -TERM "$pid"
if timeout 10 tail --pid="$pid" -f /dev/null && wait "$pid" && grep -q "stopped" "$tmp/out"; then
    echo "ok   SIGTERM: stopped, status 0"
else
    echo "FAIL SIGTERM"; cat "$tmp/out"; status=1
fi
exit $status
