#!/usr/bin/env bash
# bench/io/server_pairs.sh A B [ROUNDS [CONNS [SECONDS]]] — two HTTP "hello" servers in
# interleaved rounds, for a before/after or a server-against-peer check: A and B are
# commands that take the port as their last argument; each round runs A then B, each on
# CPU 0 with wrk on CPU 1 (taskset) for SECONDS (3) at CONNS connections (50), and prints
# each server's CPU time per request in µs (utime + stime from /proc, over wrk's run)
# and the ratio A/B.  Needs wrk, curl, taskset and python3 (Debian).
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
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$2/" && break; sleep 0.05; done
    local t0 t1 out requests
    t0=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat")
    out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$2/" 2>&1)
    t1=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat")
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    python3 -c "print('%.3f' % (($t1 - $t0) * 1e6 / $ticks / $requests))"
}

port=9100
for _ in $(seq "$rounds"); do
    port=$((port + 1)); a=$(cpu_us_per_request "$A" $port)
    port=$((port + 1)); b=$(cpu_us_per_request "$B" $port)
    echo "$a $b $(python3 -c "print('%.3f' % ($a / $b))")"
done
