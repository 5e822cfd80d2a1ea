#!/usr/bin/env bash
# bench/io/server_pairs.sh A B [ROUNDS [CONNS [SECONDS]]] — two HTTP "hello" servers in
# interleaved rounds, for a before/after or a server-against-peer check: A and B are
# commands that take the port as their last argument; each round runs A then B, each on
# CPU 0 with wrk on CPU 1 (taskset) for SECONDS (3) at CONNS connections (50), and prints
# each server's CPU time per request in µs (utime + stime from /proc, over wrk's run)
# and the ratio A/B.  Needs wrk, curl, taskset and python3 (Debian).  A round whose wrk
# run fails, reports socket errors or non-2xx answers, or counts no request, or whose
# server is gone before its CPU time is read, stops the script with a message and
# status 1: it prints no figure for it.
set -uo pipefail
A=${1:?usage: server_pairs.sh A B [ROUNDS [CONNS [SECONDS]]]}
B=${2:?usage: server_pairs.sh A B [ROUNDS [CONNS [SECONDS]]]}
rounds=${3:-8} conns=${4:-50} secs=${5:-3}
ticks=$(getconf CLK_TCK)

# cpu_us_per_request COMMAND PORT
cpu_us_per_request() {
    # shellcheck disable=SC2086
    taskset -c 0 $1 "$2" >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 100); do curl -s -m 1 -o /dev/null "http://127.0.0.1:$2/" && break; sleep 0.05; done
    local t0 t1 out requests st=0
    t0=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null)
    out=$(timeout $((secs + 30)) taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$2/" 2>&1) || st=$?
    t1=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null)
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
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

port=9100
for _ in $(seq "$rounds"); do
    port=$((port + 1)); a=$(cpu_us_per_request "$A" $port) || exit 1
    port=$((port + 1)); b=$(cpu_us_per_request "$B" $port) || exit 1
    # a server that spent no CPU tick over the run: no ratio to it
    echo "$a $b $(python3 -c "print('%.3f' % ($a / $b) if $b > 0 else 'n/a')")"
done
