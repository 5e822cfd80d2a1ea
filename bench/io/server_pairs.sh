#!/usr/bin/env bash
# bench/io/server_pairs.sh A B [ROUNDS [CONNS [SECONDS]]] — two HTTP "hello" servers in
# interleaved rounds, for a before/after or a server-against-peer check: A and B are
# commands that take the port as their last argument; each round runs A then B (B then
# A in even rounds), each on CPU 0 with wrk on CPU 1 (taskset) for SECONDS (3) at CONNS
# connections (50), and prints each server's CPU time per request in µs (utime + stime
# from /proc, over wrk's run) and the ratio A/B, and at the end the median of the
# rounds' ratios.  Needs wrk, curl, taskset and python3 (Debian).  A round whose wrk
# run fails, reports socket errors or non-2xx answers, or counts no request, or whose
# server is gone before its CPU time is read, stops the script with a message and
# status 1: it prints no figure for it.
#
# The servers run with PLAIT_POLLER set to the poller asked for (PLAIT_POLLER from the
# environment, io_uring when unset; the peers ignore it).  plait's servers print the
# poller they run on ("(poller: X)"): a server that prints another one (plait asked for
# io_uring where the kernel refuses it runs on epoll), or a program named plait* that
# prints none, stops the script likewise.  The rounds use the ports 9101 and up, one per
# server run: one that something already listens on (whose answers would be taken for
# the server's) stops the script, before the first round or before that server starts.
set -uo pipefail
A=${1:?usage: server_pairs.sh A B [ROUNDS [CONNS [SECONDS]]]}
B=${2:?usage: server_pairs.sh A B [ROUNDS [CONNS [SECONDS]]]}
rounds=${3:-8} conns=${4:-50} secs=${5:-3}
poller=${PLAIT_POLLER:-io_uring}
ticks=$(getconf CLK_TCK)
log=$(mktemp "${TMPDIR:-/tmp}/server_pairs.XXXXXX")
trap 'rm -f "$log"' EXIT

port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
# port_free PORT: whether nothing listens on it, else a message
port_free() {
    port_open "$1" || return 0
    echo "server_pairs.sh: port $1 is in use (something listens on it): the rounds need 9101..$((9100 + 2 * rounds)) free" >&2
    return 1
}

# cpu_us_per_request COMMAND PORT
cpu_us_per_request() {
    port_free "$2" || return 1
    # shellcheck disable=SC2086
    taskset -c 0 env PLAIT_POLLER="$poller" $1 "$2" >"$log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do curl -s -m 1 -o /dev/null "http://127.0.0.1:$2/" && break; sleep 0.05; done
    local t0 t1 out requests st=0 ran program
    t0=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null)
    out=$(timeout $((secs + 30)) taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$2/" 2>&1) || st=$?
    t1=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null)
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    # the poller it printed just after it listened, seconds before wrk ended
    ran=$(grep -m1 -o 'poller: [a-z_]*' "$log")
    program=$(basename "${1%% *}")
    if { [ -n "$ran" ] || [[ "$program" == plait* ]]; } && [ "$ran" != "poller: $poller" ]; then
        echo "server_pairs.sh: '$1' on port $2 runs on ${ran:-an unknown poller (none printed)}, not $poller (PLAIT_POLLER=$poller): no figure of it" >&2
        return 1
    fi
    # a run that went wrong has no figure: an error answered at full speed costs little
    # CPU, and no request at all would divide by zero
    if [ "$st" != 0 ] || [ -z "$t0" ] || [ -z "$t1" ] || [ -z "$requests" ] ||
        [ "$requests" = 0 ] || grep -Eq 'Socket errors|Non-2xx' <<<"$out"; then
        echo "server_pairs.sh: '$1' on port $2: wrk exit $st, ${requests:-no} requests, server CPU ticks '$t0'..'$t1':" >&2
        printf '%s\n' "$out" | grep -E 'requests in|Socket errors|Non-2xx|rror' >&2
        return 1
    fi
    python3 -c "print('%.3f' % (($t1 - $t0) * 1e6 / $ticks / $requests))"
}

for port in $(seq 9101 $((9100 + 2 * rounds))); do
    port_free "$port" || exit 1
done
port=9100
ratios=()
for round in $(seq "$rounds"); do
    # A first in odd rounds, B first in even ones: whatever the second of a pair meets
    # (a warmer cache, a host busier by then) does not lean every ratio one way
    if [ $((round % 2)) = 1 ]; then
        port=$((port + 1)); a=$(cpu_us_per_request "$A" $port) || exit 1
        port=$((port + 1)); b=$(cpu_us_per_request "$B" $port) || exit 1
    else
        port=$((port + 1)); b=$(cpu_us_per_request "$B" $port) || exit 1
        port=$((port + 1)); a=$(cpu_us_per_request "$A" $port) || exit 1
    fi
    # a server that spent no CPU tick over the run: no ratio to it
    ratio=$(python3 -c "print('%.3f' % ($a / $b) if $b > 0 else 'n/a')")
    [ "$ratio" = n/a ] || ratios+=("$ratio")
    echo "$a $b $ratio"
done
if [ ${#ratios[@]} -gt 0 ]; then
    echo "median A/B: $(python3 -c "import statistics, sys; print('%.3f' % statistics.median(map(float, sys.argv[1:])))" "${ratios[@]}") (${#ratios[@]} rounds)"
fi
