# tests/start_server.sh — sourced by the example tests: start_server SERVER [ARG...]
# runs `SERVER 0 ARG...` in the background (under timeout), waits until it prints "listening on
# 127.0.0.1:PORT", and sets $pid, $port and $tmp (a scratch directory removed at
# exit, with the server killed if still there).  Exits the test if it never listens.
. "$(dirname "${BASH_SOURCE[0]}")/stacks.sh"
start_server() {
    tmp=${tmp:-$(mktemp -d)} # the same scratch directory for a second server
    trap 'kill_server; rm -rf "$tmp"' EXIT
    # --foreground: a SIGTERM to timeout reaches the server once.  Without it timeout
    # also signals its whole process group, the server got SIGTERM twice, and the
    # second could come after its watcher had handled the first and restored the
    # default action, killing it mid-exit (echo_pair_epoll failed so in CI).
    # The last server's output goes first: the redirection below is made after `&` has
    # returned, and its "listening on" line was taken for this server's (whose output
    # then was empty: "never listened"; echo_client_timeout failed so under ASan).
    rm -f "$tmp/out"
    timeout --foreground 120 "$1" 0 "${@:2}" >"$tmp/out" 2>&1 &
    pid=$!
    for _ in $(seq 200); do
        grep -q "listening on" "$tmp/out" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/out" 2>/dev/null)
    [ -n "$port" ] || { cat "$tmp/out" 2>/dev/null; echo "FAIL the server never listened"; exit 1; }
}

# kill_server: the server started last killed at once, if still there ($pid is that of
# its timeout, which the server would outlive; once waited for, it may be another's).
kill_server() {
    jobs -pr | grep -qx "$pid" || return 0
    { pkill -9 -P "$pid"; kill -9 "$pid"; wait "$pid"; } 2>/dev/null
}

# dump_stuck_server: what a server that does not stop printed, and where each of its
# threads is (tests/stacks.sh), for the log of a run that failed so.
dump_stuck_server() {
    local server_pid
    server_pid=$(pgrep -P "$pid" | head -1)
    echo "--- its output:"; cat "$tmp/out"
    [ -z "$server_pid" ] || print_stacks "$server_pid"
    return 0
}

# stop_server MESSAGE: SIGTERM, then the server must exit with status 0 within 10 s
# having printed MESSAGE; returns 0 if so.
stop_server() {
    kill -TERM "$pid"
    timeout 10 tail --pid="$pid" -f /dev/null ||
        { echo "still running 10 s after SIGTERM"; dump_stuck_server; return 1; }
    wait "$pid" || { echo "exit status $?"; cat "$tmp/out"; return 1; }
    grep -q "$1" "$tmp/out" || { cat "$tmp/out"; return 1; }
}

# check_poller_asked_for: after start_server, where PLAIT_POLLER (ctest's run of each
# poller) names another poller than the one the server says it waits on: exits 77
# (skipped) for a reason outside plait, which $PLAIT_IO_URING_REFUSED (the program
# io_uring_refused.c) names: a ThreadSanitizer build, a kernel that refuses io_uring.
# Anything else is a fault of plait's own setup, and fails.
check_poller_asked_for() {
    local poller why
    poller=$(sed -n 's/^listening on .*(poller: \([a-z_]*\))$/\1/p' "$tmp/out")
    [ -n "${PLAIT_POLLER:-}" ] && [ "$poller" != "$PLAIT_POLLER" ] || return 0
    [ -n "$poller" ] || { cat "$tmp/out"; echo "FAIL the server named no poller"; exit 1; }
    if [ "$PLAIT_POLLER" = io_uring ] && why=$("${PLAIT_IO_URING_REFUSED:?the program io_uring_refused}"); then
        echo "io_uring asked for, $poller is what runs here ($why): every step skipped"; exit 77
    fi
    cat "$tmp/out"
    echo "FAIL $PLAIT_POLLER asked for, where nothing here refuses it, but the server waits on $poller"
    exit 1
}
