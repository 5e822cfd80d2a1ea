#!/usr/bin/env bash
# What the tour's examples print is what happened on this run (each failed first):
#  - fanout, its fan-out failed part-way (too little address space for every
#    coroutine's stack): it said "all answered in 0.013 s" beside the failure;
#  - crash_isolation with its output a pipe: the worker's "task 3 ... crashes" came
#    before the parent's "workers before:" line, still in the parent's buffer;
#  - cpu_processes on one CPU: "1 threads:", "1 processes:";
#  - fanout with no room for a connection waited 120 s; with 3, "one after another: 1 s";
#  - fanout 100 ignored its argument.
# Every run is bounded by `timeout`; a failure prints what was seen.
#   bash tests/examples_say_what_ran.sh FANOUT CRASH_ISOLATION CPU_PROCESSES [SANITIZER]
set -uo pipefail
fanout=${1:?usage: examples_say_what_ran.sh FANOUT CRASH_ISOLATION CPU_PROCESSES [SANITIZER]}
crash=${2:?usage} cpu=${3:?usage} sanitizer=${4:-}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
failures=0
fail() { echo "FAIL $*"; tail -4 "$out"; failures=$((failures + 1)); }
ok() { echo "ok   $*"; }

# (a sanitizer's runtime reserves more address space than this limit allows)
if [ -z "$sanitizer" ]; then
    (ulimit -v 100000 && timeout 60 "$fanout") >"$out" 2>&1
    rc=$?
    if [ $rc = 1 ] && ! grep -q "all answered" "$out" &&
        grep -Eq "^  [0-9]+ of [0-9]+ connections answered \([0-9]+ started\)" "$out"; then
        ok "fanout short of memory says how many were answered: $(grep -o '[0-9]* of [0-9]* connections answered' "$out")"
    else
        fail "fanout short of memory: exit $rc"
    fi
fi

# fanout where the descriptor limit leaves no room for a connection says so and fails at
# once: it made one all the same, which waited for the service's accept (out of
# descriptors, retrying) until the fan-out's 120 s deadline
start=$SECONDS
(ulimit -n 30 && timeout 60 "$fanout") >"$out" 2>&1
rc=$? took=$((SECONDS - start))
if [ $rc = 1 ] && [ $took -lt 30 ] && grep -q "leaves no room for a connection" "$out"; then
    ok "fanout with 30 descriptors: no room for a connection, said in ${took} s"
else
    fail "fanout with 30 descriptors: exit $rc after ${took} s"
fi

# fanout with room for 3 connections gives the time one after another in tenths of a
# second (0.6 s); it said "1 s", and for one connection "0 s" beside 0.201 s measured
(ulimit -n 70 && timeout 60 "$fanout") >"$out" 2>&1
rc=$?
if [ $rc = 0 ] && grep -q "^  3 connections at once.*(one after another: 0\.6 s)" "$out"; then
    ok "fanout with 70 descriptors: 3 connections, one after another 0.6 s"
else
    fail "fanout with 70 descriptors: exit $rc"
fi

# an argument, which no such example takes, is refused, not ignored (`example_fanout 100`
# fanned out to 5,000)
timeout 10 "$fanout" 100 >"$out" 2>&1
rc=$?
if [ $rc = 2 ] && grep -q "usage: .*no arguments" "$out"; then
    ok "fanout 100: refused, status 2"
else
    fail "fanout 100: exit $rc"
fi

timeout 60 "$crash" | cat >"$out" 2>&1
before=$(grep -n "workers before:" "$out" | cut -d: -f1)
crashes=$(grep -n "task 3 (pid .*) crashes" "$out" | cut -d: -f1)
if [ -n "$before" ] && [ -n "$crashes" ] && [ "$before" -lt "$crashes" ]; then
    ok "crash_isolation into a pipe: the workers first, then the crash"
else
    fail "crash_isolation into a pipe: 'workers before' on line ${before:-none}, the crash on ${crashes:-none}"
fi

if command -v taskset >/dev/null && taskset -c 0 true 2>/dev/null; then
    taskset -c 0 timeout 120 "$cpu" >"$out" 2>&1
    rc=$?
    if [ $rc = 0 ] && grep -q " 1 thread: " "$out" && grep -q " 1 process: " "$out"; then
        ok "cpu_processes on one CPU: 1 thread, 1 process"
    else
        fail "cpu_processes on one CPU: exit $rc"
    fi
fi
[ $failures = 0 ]
