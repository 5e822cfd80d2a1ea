#!/usr/bin/env bash
# tests/echo_pair.sh SERVER CLIENT — the echo example server and client together: 50
# connections x 200 messages, each checked byte for byte by the client (by name,
# "localhost", so resolution is on the way), then a graceful stop on SIGTERM.
set -uo pipefail
server="${1:?usage: echo_pair.sh SERVER CLIENT}" client="${2:?usage: echo_pair.sh SERVER CLIENT}"
. "$(dirname "$0")/start_server.sh"
start_server "$server"
check_poller_asked_for
status=0
if timeout 60 "$client" localhost "$port" 50 200; then
    echo "ok   50 connections x 200 messages echoed"
else
    echo "FAIL the client"; status=1
fi
if stop_server "stopped"; then
    echo "ok   SIGTERM: stopped, status 0"
else
    echo "FAIL SIGTERM"; status=1
fi
# PLAIT_TEST_SERVER_SAYS: a line the server must have said (accept_faults.c's refusals)
if [ -n "${PLAIT_TEST_SERVER_SAYS:-}" ]; then
    if grep -qF -- "$PLAIT_TEST_SERVER_SAYS" "$tmp/out"; then
        echo "ok   the server said: $PLAIT_TEST_SERVER_SAYS"
    else
        cat "$tmp/out"; echo "FAIL the server did not say: $PLAIT_TEST_SERVER_SAYS"; status=1
    fi
fi
exit $status
