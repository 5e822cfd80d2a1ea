#!/usr/bin/env bash
# test_bench_drivers.sh [BENCH_PROCESS [PLAIT [SANITIZE]]] — cases a review of the
# benchmarks and their drivers found (each failed first; each section below says what
# was wrong).  BENCH_PROCESS and PLAIT are the build's bench/bench_process and plait
# (the cases that need them are skipped without); SANITIZE is its PLAIT_SANITIZE: a
# sanitizer's runtime takes bench_process's deliberate SIGSEGV for its own and reads
# /proc itself, so those two cases are left out there.
#
# bench/io/run_io.sh and server_pairs.sh run here with stand-ins for the load
# generators and the servers (on PATH: wrk, go, gcc, nginx, dpkg, pkg-config, curl; the
# "servers" run_io.sh builds are a small Python listener that answers nothing, the
# clients print what the real ones would), so that what they do with a measurement that
# went wrong can be seen in seconds and without the real toolchains.  peer_mp.py runs
# with made-up pools and clock; bench_process at its smallest scale (about 2 s);
# summarize.py and `plait bench` on made-up figures.  Every wait is bounded.
set -euo pipefail
bench_process=${1:-} # the build's bench/bench_process
plait_tool=${2:-}    # the build's plait
sanitize=${3:-}      # the build's PLAIT_SANITIZE
benchdir="$(dirname "${bench_process:-.}")" # and the other benchmark programs beside it
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3
python="$(command -v "$python")"

# ---- the stand-ins --------------------------------------------------------------------
bin="$tmp/bin"
mkdir -p "$bin"
cat >"$tmp/server.py" <<'EOF'
# A "server": listens on 127.0.0.1:PORT (the last argument), accepts nothing, exits 0
# on SIGTERM.  With IDLE_UNSETTLED=FILE, once FILE exists (the idle client makes it)
# it opens 10,000 descriptors, as if it held the idle connections, and its memory
# grows by 256 KiB every 50 ms: it never settles.
import os, signal, socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[-1])))
s.listen(4096)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
trigger = os.environ.get("IDLE_UNSETTLED")
if trigger:
    while not os.path.exists(trigger):
        time.sleep(0.01)
    held = [os.open("/dev/null", os.O_RDONLY) for _ in range(10000)]
    while True:
        held.append(b"x" * 262144)
        time.sleep(0.05)
while True:
    signal.pause()
EOF
# make_program OUT: what a build of OUT's source makes here
cat >"$bin/make_program" <<EOF
#!/usr/bin/env bash
out="\$1"
case "\$(basename "\$out")" in
    echo_client) printf '#!/bin/sh\necho round_trips_per_s=1000\n[ -n "\$NO_COUNT" ] || echo round_trips=5000\n' >"\$out" ;;
    idle_client) printf '#!/bin/sh\n[ -z "\$IDLE_UNSETTLED" ] || touch "\$IDLE_UNSETTLED"\necho connected=\$3\ncat >/dev/null\n' >"\$out" ;;
    *) printf '#!/bin/sh\nexec %s %s "\$@"\n' "$python" "$tmp/server.py" >"\$out" ;;
esac
chmod +x "\$out"
EOF
# gcc and go: --version / version, else make the program named by -o
for tool in gcc go; do
    cat >"$bin/$tool" <<'EOF'
#!/usr/bin/env bash
case "${1:-}" in --version|version) echo "$(basename "$0") (stand-in) 1.0"; exit 0 ;; esac
while [ $# -gt 0 ]; do
    if [ "$1" = -o ]; then exec "$(dirname "$0")/make_program" "$2"; fi
    shift
done
exit 1
EOF
done
printf '#!/bin/sh\necho "nginx version: stand-in"\n' >"$bin/nginx"
printf '#!/bin/sh\nexit 0\n' >"$bin/dpkg"
printf '#!/bin/sh\n[ "$1" = --modversion ] && echo 1.0\nexit 0\n' >"$bin/pkg-config"
# wrk: its output for a run of 1,000 requests; with WRK_ERRORS=1, all of them non-2xx;
# with NO_COUNT set, without the count of requests (as echo_client's stand-in then
# leaves out its count of round trips)
cat >"$bin/wrk" <<'EOF'
#!/bin/sh
[ "$1" = -v ] && { echo "wrk 4.1.0 [stand-in]"; exit 1; }
cat <<OUT
Running 1s test @ http://127.0.0.1/
  1 threads and 50 connections
  Latency Distribution
     50%  100.00us
     99%  200.00us
OUT
[ -n "${NO_COUNT:-}" ] || echo "  1000 requests in 1.00s, 100.00KB read"
[ "${WRK_ERRORS:-0}" = 1 ] && echo "  Non-2xx or 3xx responses: 1000"
echo "Requests/sec:   1000.00"
echo "Transfer/sec:    100.00KB"
EOF
# cmake: configure does nothing; a build makes plait's servers (bench/io/plait_http,
# plait_echo in the build directory) as stand-ins that run on epoll whatever they are
# asked, as plait does where the kernel refuses io_uring
cat >"$bin/cmake" <<EOF
#!/usr/bin/env bash
[ "\$1" = --build ] || exit 0
mkdir -p "\$2/bench/io"
for s in plait_http plait_echo; do
    printf '#!/bin/sh\necho "listening on 127.0.0.1:\$1 (poller: epoll)"\nexec %s %s "\$@"\n' \\
        "$python" "$tmp/server.py" >"\$2/bench/io/\$s"
    chmod +x "\$2/bench/io/\$s"
done
EOF
chmod +x "$bin"/*

only=epoll
# run_io CASE NOFILE [VAR=VALUE...]: run_io.sh on the servers $only, one run of 1 s per
# load, RLIMIT_NOFILE at NOFILE (under 10,100 the idle test is skipped); $rc, and
# $tmp/CASE.out, $tmp/CASE.err, $tmp/CASE/io/results.txt
run_io() {
    local name="$1" nofile="$2"
    shift 2
    rc=0
    # (a hard limit under NOFILE: then under 10,100 too, which is what the cases ask)
    ({ ulimit -n "$nofile" 2>/dev/null || [ "$nofile" -lt 10100 ]; } &&
     env PATH="$bin:$PATH" BUILD_DIR="$tmp/$name" IO_PORT_BASE=$((10000 + RANDOM % 20000)) "$@" \
         timeout 120 bash "$root/bench/io/run_io.sh" --only "$only" --runs 1 --seconds 1) \
        >"$tmp/$name.out" 2>"$tmp/$name.err" || rc=$?
}
results_have() { grep -Eq "$1" "$tmp/$2/io/results.txt" 2>/dev/null; }
show() {
    echo "--- $1: exit $rc; stderr:" >&2
    cat "$tmp/$1.err" >&2
    echo "--- results.txt:" >&2
    cat "$tmp/$1/io/results.txt" >&2 || true
}

# ---- nothing goes wrong: the figures are there ------------------------------------------
run_io ok 4096
if [ "$rc" != 0 ] || ! results_have '^http50_rps epoll 1000$' ok ||
    ! results_have '^http1_p99_us epoll 200$' ok || ! results_have '^echo100_rtps epoll 1000$' ok; then
    fail "run_io.sh, nothing wrong: exit $rc, or a figure missing"
    show ok
fi

# ---- wrk reports failed requests: no figure of the run ----------------------------------
# (run_io.sh recorded the figures, and only then called the run failed: the summary took
# a server answering errors at full speed for a fast one)
run_io wrk_errors 4096 WRK_ERRORS=1
if [ "$rc" = 0 ] || results_have '^http(50|1)_' wrk_errors ||
    ! grep -q 'Non-2xx' "$tmp/wrk_errors.err"; then
    fail "run_io.sh, wrk's requests failed: exit $rc (expected 1), figures of the failed runs recorded, or no message"
    show wrk_errors
fi
results_have '^echo100_rtps epoll 1000$' wrk_errors ||
    fail "run_io.sh, wrk's requests failed: the echo figure (not wrk's) is missing"

# ---- the idle memory not measured: no memory figure --------------------------------------
# no_idle_figure CASE MESSAGE WHAT [VAR=VALUE...]: run_io.sh (RLIMIT_NOFILE at 10,100)
# fails, records no memory figure and says MESSAGE (a grep pattern); WHAT went wrong
no_idle_figure() {
    local name="$1" message="$2" what="$3"
    shift 3
    run_io "$name" 10100 "$@"
    if [ "$rc" = 0 ] || results_have '^idle10k_kib_per_conn ' "$name" ||
        ! grep -q "$message" "$tmp/$name.err"; then
        fail "run_io.sh, $what: exit $rc (expected 1), a memory figure recorded, or no message"
        show "$name"
    fi
}
if [ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge 10100 ]; then
    # (run_io.sh warned and recorded the growth of the connections the server held
    # divided by the 10,000 it did not all hold: too small a figure)
    no_idle_figure idle_short 'idle' "a server holding none of the idle connections"
    # (run_io.sh read the memory after 3 s whether or not it had stopped moving, and
    # recorded it as settled)
    no_idle_figure idle_unsettled "idle10k_kib_per_conn of epoll: the server's memory did not settle" \
        "a server whose memory keeps growing" IDLE_UNSETTLED="$tmp/idle_unsettled.started"
else
    echo "SKIP: the idle connections (RLIMIT_NOFILE's hard limit $(ulimit -Hn) < 10100)"
fi

# ---- no count of requests or round trips: no CPU figure, and a message -----------------
# The server's CPU time per request needs the load generator's count: without it
# run_io.sh recorded no figure and said nothing (the run counted as a success).
run_io no_count 4096 NO_COUNT=1
if [ "$rc" = 0 ] || results_have '^[a-z0-9_]+_cpu_us_per_' no_count || ! results_have '^http50_rps epoll 1000$' no_count ||
    ! grep -q "http50_cpu_us_per_req of epoll: no count of requests in wrk's output" "$tmp/no_count.err" ||
    ! grep -q "echo100_cpu_us_per_rt of epoll: no count of round trips in echo_client's output" "$tmp/no_count.err"; then
    fail "run_io.sh, no count of requests: exit $rc (expected 1), a CPU figure recorded, the rates missing, or no message naming the count"
    show no_count
fi

# ---- plait asked for io_uring runs on epoll: no figure under plait's name ----------------
# (run_io.sh did not look at the poller the server printed: where the kernel refuses
# io_uring, "plait" and "plait-epoll" both measured epoll, the first under io_uring's name)
only=plait,plait-epoll run_io poller 4096
if [ "$rc" = 0 ] || results_have '^[a-z0-9_]+ plait ' poller ||
    ! results_have '^http50_rps plait-epoll 1000$' poller ||
    ! grep -q 'plait (http) runs on poller: epoll, not io_uring' "$tmp/poller.err"; then
    fail "run_io.sh, plait on epoll when asked for io_uring: exit $rc (expected 1), figures under 'plait', plait-epoll's missing, or no message"
    show poller
fi

# ---- bench/io/server_pairs.sh: a round that went wrong has no figure ----------------------
# The "servers" are `sleep` (no CPU time once asleep: its CPU time per request is 0),
# wrk and curl stand-ins.  Its ratio divided by the second server's CPU time, and a wrk
# run whose requests all failed printed a figure with status 0.
# curl answers once the stand-in server on the URL's port (`sleep 1000 PORT`) sleeps:
# what starting it cost is then counted before the script's first reading of its CPU
# time (a clock tick charged to its start after that reading, on a loaded machine, was
# read as the server's: "0.000 10.000 0.000").
cat >"$bin/curl" <<'EOF'
#!/bin/sh
for arg; do url=$arg; done
port=${url##*:}
port=${port%%/*}
tries=0
while [ "$tries" -lt 1000 ]; do
    pid=$(pgrep -xf "sleep 1000 $port" | head -n 1)
    [ -n "$pid" ] && [ "$(cut -d ' ' -f 3 "/proc/$pid/stat" 2>/dev/null)" = S ] && exit 0
    tries=$((tries + 1))
    sleep 0.01
done
exit 1
EOF
chmod +x "$bin/curl"
# pairs CASE [VAR=VALUE...]: one round of 1 s; $rc, $tmp/CASE.out, $tmp/CASE.err
pairs() {
    local name="$1"
    shift
    rc=0
    env PATH="$bin:$PATH" "$@" timeout 60 bash "$root/bench/io/server_pairs.sh" \
        "sleep 1000" "sleep 1000" 1 50 1 \
        >"$tmp/$name.out" 2>"$tmp/$name.err" || rc=$?
}
if [ "$(taskset -c 0,1 true 2>&1 && echo ok)" = ok ]; then
    pairs pairs_ok
    if [ "$rc" != 0 ] || ! grep -Eqx '0\.000 0\.000 n/a' "$tmp/pairs_ok.out"; then
        fail "server_pairs.sh, two servers that spent no CPU: exit $rc, output '$(cat "$tmp/pairs_ok.out")' (expected '0.000 0.000 n/a'): $(cat "$tmp/pairs_ok.err")"
    fi
    pairs pairs_errors WRK_ERRORS=1
    if [ "$rc" = 0 ] || [ -s "$tmp/pairs_errors.out" ] || ! grep -q 'Non-2xx' "$tmp/pairs_errors.err"; then
        fail "server_pairs.sh, wrk's requests all failed: exit $rc (expected 1), output '$(cat "$tmp/pairs_errors.out")' (expected none): $(cat "$tmp/pairs_errors.err")"
    fi
else
    echo "SKIP: server_pairs.sh (it needs CPUs 0 and 1)"
fi

# ---- bench_process's "samecpu" round trips: every thread and the worker on CPU 0 ---------
# The process was pinned with sched_setaffinity(0, ...), which pins the calling thread
# alone: plait's manager thread, started by the first process, stayed on every CPU, and
# the pool's worker it forks with it, so "all on one CPU" ran on two (against a peer
# that does run on one).  Now it pins every thread, and checks from inside the worker.
if [ -n "$bench_process" ] && [ -z "$sanitize" ] &&
    grep -qE '^Cpus_allowed_list:[[:space:]]*0([,-]|$)' /proc/self/status; then
    rc=0
    timeout 120 "$bench_process" 1 >"$tmp/process.out" 2>"$tmp/process.err" || rc=$?
    if [ "$rc" != 0 ] ||
        ! grep -Eq "^# procpool.roundtrip.samecpu: the [0-9]+ threads of this process and the pool's worker on CPU 0$" "$tmp/process.out" ||
        ! grep -Eq '^procpool.roundtrip.samecpu plait us_per_rt [0-9.]+$' "$tmp/process.out"; then
        fail "bench_process 1: exit $rc, or the samecpu round trips not measured on one CPU: $(cat "$tmp/process.out" "$tmp/process.err")"
    fi
else
    echo "SKIP: bench_process (no program given, a sanitizer build, or CPU 0 not allowed)"
fi

# ---- counts whose arithmetic overflows: a usage error, not a figure -----------------------
# Each of these overflowed the benchmark's own arithmetic (a scale times the messages
# per unit, a warm-up added, the rounding to whole batches, an array's bytes, a count
# as an int) and ran no work, or work of another size, or none of the size asked:
# bench_queue 10000000000000 printed "queue.small plait msgs_per_s -134050319169540",
# bench_spawn 9223372036854775807 "spawn plait ns_per_task -0.0" (exit 0); a number
# past the range of long long was taken as LLONG_MAX.  Now: status 2, no figure.
if [ -n "$bench_process" ]; then
    for args in "bench_queue 10000000000000" "bench_spawn 9223372036854775807" \
                "bench_process 200000000" "bench_wakeup 9223372036854775807" \
                "bench_forkjoin 1000000000000000000" "bench_pool 9223372036854775807" \
                "bench_context 9223372036854775807" "bench_chan 99999999999999999999" \
                "bench_switch 99999999999999999999" \
                "peer_pipe 10000000000000" "peer_process_start 9223372036854775807" \
                "peer_shm_pingpong 9223372036854775807" "peer_mutex_queue 9223372036854775807"; do
        set -- $args
        [ -x "$benchdir/$1" ] || { fail "$benchdir/$1: not there"; continue; }
        rc=0
        timeout 10 "$benchdir/$1" "$2" >"$tmp/count.out" 2>"$tmp/count.err" || rc=$?
        if [ "$rc" != 2 ] || [ -s "$tmp/count.out" ]; then
            fail "$args: exit $rc (expected 2, a usage error), stdout '$(head -c 300 "$tmp/count.out")'"
        fi
    done
fi

# ---- bench_memory without /proc: a failure, not 0 bytes per coroutine ---------------------
# It read its memory from /proc/self/status and took a file it could not read for 0: with
# /proc hidden (a tmpfs over it, in a mount namespace of its own) it printed
# "bytes_per_task_rss 0" and "maps -1" for every case, with status 0.
if [ -n "$bench_process" ] && [ -z "$sanitize" ] && [ -x "$benchdir/bench_memory" ] &&
    timeout 10 unshare -m sh -c 'mount -t tmpfs none /proc' 2>/dev/null; then
    rc=0
    timeout 60 unshare -m sh -c 'mount -t tmpfs none /proc && exec "$0" 1000' \
        "$benchdir/bench_memory" >"$tmp/memory.out" 2>"$tmp/memory.err" || rc=$?
    if [ "$rc" != 1 ] || [ -s "$tmp/memory.out" ]; then
        fail "bench_memory without /proc: exit $rc (expected 1), stdout '$(head -c 300 "$tmp/memory.out")'"
    fi
else
    echo "SKIP: bench_memory without /proc (no program given, a sanitizer build, or no private mount namespace)"
fi

# ---- "never" is no time: bench_memory's ms_to_half_back of -1 ----------------------------
# -1 says the memory never came back within the idle time; summarize.py and `plait
# bench` took it for a time shorter than any, so that of -1, 40 and 60 ms the median
# was 40 (and of -1, -1, 40 "-1.00"): it sorts after every time now, printed "never".
printf '%s\n' "1 memory.100000.default plait ms_to_half_back -1" \
    "2 memory.100000.default plait ms_to_half_back 40" \
    "3 memory.100000.default plait ms_to_half_back 60" \
    "1 memory.100000.min plait ms_to_half_back -1" \
    "2 memory.100000.min plait ms_to_half_back 40" \
    "3 memory.100000.min plait ms_to_half_back -1" >"$tmp/never.txt"
out="$("$python" "$root/bench/summarize.py" "$tmp/never.txt" 2>&1)" || true
grep -Eq '^memory.100000.default plait ms_to_half_back +60.00  \(40.00..never, 3\)$' <<<"$out" ||
    fail "summarize.py, ms_to_half_back -1, 40, 60: not 60.00 (40.00..never, 3): $out"
grep -Eq '^memory.100000.min plait ms_to_half_back +never  \(40.00..never, 3\)$' <<<"$out" ||
    fail "summarize.py, ms_to_half_back -1, 40, -1: not never (40.00..never, 3): $out"

# ---- nothing missing goes unsaid: summarize.py ------------------------------------------
# A failed peer dropped out of the summary with its goal, and a ratio over fewer runs
# than plait's looked like one over all of them (audit of session 40).  Here the futex
# peer ran in one of plait's two runs, futex-look in none, and a program failed: the
# ratio says "1 of 2 runs", futex-look is "not measured", the failure is listed, and
# the summary exits 1.  A SKIPPED part is said, and the goal on it is not checked.
printf '%s\n' "1 wakeup.samecpu plait-coro-thread us_per_rt 2.0" \
    "2 wakeup.samecpu plait-coro-thread us_per_rt 2.2" \
    "1 wakeup.samecpu futex us_per_rt 2.0" \
    "# FAILED peer_futex_pingpong run 2: exit 1 (made up)" \
    "# SKIPPED wakeup.twocpu: made up" >"$tmp/missing.txt"
st=0
out="$("$python" "$root/bench/summarize.py" "$tmp/missing.txt" 2>&1)" || st=$?
[ "$st" = 1 ] || fail "summarize.py with a peer missing: exit $st, not 1: $out"
grep -q '^wakeup samecpu coro-thread round trip: .*futex-look: not measured' <<<"$out" ||
    fail "summarize.py: futex-look not said to be not measured: $out"
grep -qF 'ratio plait/futex 1.00 (1 of 2 runs' <<<"$out" ||
    fail "summarize.py: the ratio over 1 of 2 runs does not say so: $out"
grep -q '^  FAILED peer_futex_pingpong run 2: exit 1 (made up)$' <<<"$out" ||
    fail "summarize.py: the FAILED note is not listed: $out"
grep -q '^wakeup twocpu coro-thread round trip: skipped: made up, goal .*NOT CHECKED (skipped)' <<<"$out" ||
    fail "summarize.py: the skipped part is not said: $out"
# (a figure with no goal, skipped: its line once raised a TypeError)
grep -q '^wakeup twocpu thread-thread round trip: skipped: made up$' <<<"$out" ||
    fail "summarize.py: the skipped figure without a goal is not said: $out"
grep -q '^INCOMPLETE' <<<"$out" || fail "summarize.py: no INCOMPLETE line: $out"
if [ -n "$plait_tool" ]; then
    mkdir -p "$tmp/never"
    cat >"$tmp/never/bench_memory" <<EOF
#!/bin/sh
# a stand-in: -1, 40, 60 in turn
n=\$((\$(cat "$tmp/never/count" 2>/dev/null || echo 0) + 1))
echo "\$n" >"$tmp/never/count"
case \$n in 1) v=-1 ;; 2) v=40 ;; *) v=60 ;; esac
echo "memory.100000.default plait ms_to_half_back \$v"
EOF
    chmod +x "$tmp/never/bench_memory"
    out="$(PLAIT_BENCH_DIR="$tmp/never" timeout 60 "$plait_tool" bench --runs 3 memory 2>&1)" || true
    row="$(awk '$1 == "memory.100000.default" { print $4, $5, $6 }' <<<"$out")"
    [ "$row" = "60.00 40.00..never 3" ] ||
        fail "plait bench, ms_to_half_back -1, 40, 60: '$row', not '60.00 40.00..never 3': $out"
else
    echo "SKIP: plait bench (no tool given)"
fi

# ---- compare_median.py: a metric's extra figure missing from some runs --------------------
# `plait compare` gives the processes' message figures an extra (the pipe's) only when
# that step worked; compare_median.py took the extras of every run by their place in the
# first run's list: a later run without one ended it with an IndexError (every run
# lost), and one missing from the first run was never shown.  A stand-in `plait`
# prints three runs' JSON: msg_small's extra in runs 1 and 3, msg_large's in 2 and 3
# (its runs counted in COMPARE_COUNT; those in FAIL_RUNS end with status 1 after their
# JSON, as a run with a failed step does).
cat >"$tmp/plait_compare" <<EOF
#!/usr/bin/env python3
import json, os, sys
path = os.environ.get("COMPARE_COUNT", "$tmp/compare_count")
run = int(open(path).read()) + 1 if os.path.exists(path) else 1
open(path, "w").write(str(run))
def metric(id, extra):
    return {"id": id, "unit": "ns", "values": {"coroutines": 1.0, "threads": 2.0, "processes": 3.0},
            "extra": [{"label": "processes over a pipe", "value": 100.0 * run}] if extra else []}
print(json.dumps({"elapsed_s": 1.0,
                  "machine": {"cpus": 2, "cpu_model": "cpu", "kernel": "k", "io_backend": "epoll"},
                  "models": [{"id": m} for m in ("coroutines", "threads", "processes")],
                  "metrics": [metric("msg_small", run != 2), metric("msg_large", run != 1)],
                  "facts": []}))
if str(run) in os.environ.get("FAIL_RUNS", "").split():
    sys.exit("plait compare: step 'hand-off' failed")
EOF
chmod +x "$tmp/plait_compare"
out="$(timeout 60 "$python" "$root/bench/compare_median.py" "$tmp/plait_compare" --runs 3 2>&1)" || true
# msg_small: 100 and 300 (2 of 3 runs); msg_large: 200 and 300
[ "$(grep -c 'processes over a pipe: ' <<<"$out")" = 2 ] &&
    grep -q 'processes over a pipe: 200 (100-300) \[2 of 3 runs\]' <<<"$out" &&
    grep -q 'processes over a pipe: 250 (200-300) \[2 of 3 runs\]' <<<"$out" ||
    fail "compare_median.py, an extra figure missing from some runs: $out"

# ---- compare_median.py: a run of `plait compare` that fails ------------------------------
# One run's status 1 (a step failed) ended the script with a CalledProcessError: every
# other run's figures lost.  Now the failed run is named and left out; the medians come
# from the others while they are more than half of the runs asked, else status 1.
rc=0
out="$(COMPARE_COUNT="$tmp/count_fail1" FAIL_RUNS=2 timeout 60 "$python" \
       "$root/bench/compare_median.py" "$tmp/plait_compare" --runs 3 2>&1)" || rc=$?
# msg_small's extra: runs 1 and 3 (both left); msg_large's: run 3 (run 2 failed)
[ "$rc" = 0 ] &&
    grep -q "^run 2 of 3 failed: status 1: plait compare: step 'hand-off' failed$" <<<"$out" &&
    grep -q '2 of 3 full runs (run 2 failed)' <<<"$out" &&
    grep -q 'processes over a pipe: 200 (100-300)$' <<<"$out" &&
    grep -q 'processes over a pipe: 300 (300-300) \[1 of 2 runs\]' <<<"$out" ||
    fail "compare_median.py, run 2 of 3 failed: exit $rc (expected 0), or not the medians of runs 1 and 3: $out"
rc=0
out="$(COMPARE_COUNT="$tmp/count_fail2" FAIL_RUNS="1 3" timeout 60 "$python" \
       "$root/bench/compare_median.py" "$tmp/plait_compare" --runs 3 2>&1)" || rc=$?
[ "$rc" = 1 ] && grep -q 'runs 1, 3 failed: too few for a median' <<<"$out" &&
    ! grep -q '^msg_small' <<<"$out" ||
    fail "compare_median.py, runs 1 and 3 of 3 failed: exit $rc (expected 1), no message, or a table: $out"

# ---- peer_mp.py's maps: measured as bench_process measures plait's ---------------------
# With made-up processes, pools and clock (nothing is forked; a timed map of the
# 1,000,000 items takes 3 s of that clock, then 1 s, then 2 s): the figure is the best
# of three maps, as plait's is (bench_process.c; it was the first map alone), on one
# worker per CPU of the affinity mask, as plait_cpu_count() counts them (it was
# os.cpu_count(), every CPU of the machine).
cat >"$tmp/mp_case.py" <<'EOF'
import importlib.util, os, sys, types

spec = importlib.util.spec_from_file_location("peer_mp", sys.argv[1])
peer_mp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(peer_mp)

clock = [0.0]
timed = {"pool": [3.0, 1.0, 2.0], "chunked": [3.0, 1.0, 2.0]}
workers = []  # (kind, workers) of every pool made, in order


def take(kind):
    clock[0] += timed[kind].pop(0) if timed[kind] else 5.0


class Process:
    def __init__(self, target):
        self.target = target

    def start(self):
        self.target()

    def join(self):
        pass


class Pool:
    def __init__(self, n):
        workers.append(("Pool", n))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def apply(self, fn):
        return fn()

    def map(self, fn, items):
        if len(items) == 1000000:
            take("pool")
        return list(map(fn, items))


class Executor(Pool):
    def __init__(self, n):
        workers.append(("ProcessPoolExecutor", n))

    def submit(self, fn):
        return types.SimpleNamespace(result=fn)

    def map(self, fn, items, chunksize=1):
        if len(items) == 1000000 and chunksize > 1:
            take("chunked")
        elif len(items) == 100000:
            clock[0] += 1.0
        return map(fn, items)


peer_mp.mp = types.SimpleNamespace(set_start_method=lambda m: None, Pool=Pool,
                                   get_context=lambda m: types.SimpleNamespace(Process=Process))
peer_mp.cf = types.SimpleNamespace(ProcessPoolExecutor=Executor)
peer_mp.time = types.SimpleNamespace(perf_counter=lambda: clock[0])
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
sys.argv = ["peer_mp.py", "1"]
peer_mp.main()
print("pools:", workers)
if os.cpu_count() == 1:
    print("(one CPU: the worker count is not told apart)")
# the first two are the round trips' pools of one worker; then the maps'
sys.exit("; ".join(f"{kind}({n}) for the map on a process allowed one CPU"
                   for kind, n in workers[2:] if n != 1) or None)
EOF
if ! out="$(timeout 60 "$python" "$tmp/mp_case.py" "$root/bench/peer_mp.py" 2>&1)"; then
    fail "peer_mp.py's map pools: $out"
else
    for want in "procpool.map python-pool items_per_s 1000000" \
                "procpool.map python-ppe-chunked items_per_s 1000000" \
                "procpool.map python-ppe items_per_s 100000"; do
        grep -qx "$want" <<<"$out" || fail "peer_mp.py: no '$want' (the best of three maps) in: $out"
    done
fi

# ---- peer_shm_pingpong whose fork fails: a failure, not a wait for ever -----------------
# It did not look at fork's answer: with fork refused, the parent handed the turn to a
# child that did not exist and waited for it to come back, for ever.  Forks are refused
# by RLIMIT_NPROC at 1 (its user has that one process already; root, whom the limit
# does not bind, runs it as nobody).
no_fork=(prlimit --nproc=1 --)
[ "$(id -u)" != 0 ] || no_fork=(setpriv --reuid=65534 --regid=65534 --clear-groups "${no_fork[@]}")
# peer_pipe did not look either: it read end of file and said "message 0 lost".
if [ -n "$bench_process" ] && ! "${no_fork[@]}" sh -c 'true & wait' 2>/dev/null; then
    for peer in peer_shm_pingpong peer_pipe; do
        rc=0
        timeout 10 "${no_fork[@]}" "$benchdir/$peer" 1 >"$tmp/nofork.out" 2>"$tmp/nofork.err" || rc=$?
        if [ "$rc" != 1 ] || [ -s "$tmp/nofork.out" ] || ! grep -q "$peer: fork" "$tmp/nofork.err"; then
            fail "$peer with fork refused: exit $rc (expected 1), stdout '$(cat "$tmp/nofork.out")', stderr '$(cat "$tmp/nofork.err")'"
        fi
    done
else
    echo "SKIP: peer_shm_pingpong with fork refused (no program given, or RLIMIT_NPROC refuses no fork here)"
fi

# ---- bench_queue whose child stops sending: a failure, not a wait for ever ---------------
# The parent received with no deadline: a child that stopped sending without dying (here
# stopped by SIGSTOP) held it until run.sh's 300 s budget.  A dead child the queue
# reports itself (-EPIPE), but the parent said only "recv returned -32"; now it names
# how the child ended.  At a scale of 1000 the first transfer alone takes minutes: the
# child is stopped, or killed, in the middle of it, and no figure is printed.
# queue_child_gets SIGNAL: run bench_queue, send its child SIGNAL; $rc, $tmp/queue.*
queue_child_gets() {
    local parent="" child="" _
    rc=0
    timeout 60 "$benchdir/bench_queue" 1000 >"$tmp/queue.out" 2>"$tmp/queue.err" &
    local runner=$!
    for _ in $(seq 1 1000); do # bench_queue is timeout's child, the sender its own
        parent="$(pgrep -P "$runner" || true)"
        [ -z "$parent" ] || child="$(pgrep -P "$parent" || true)"
        [ -z "$child" ] || break
        sleep 0.01
    done
    [ -z "$child" ] || kill -"$1" "$child"
    wait "$runner" || rc=$?
}
if [ -n "$bench_process" ]; then
    queue_child_gets KILL
    if [ "$rc" != 1 ] || [ -s "$tmp/queue.out" ] ||
        ! grep -q 'the child: the process was killed by signal 9' "$tmp/queue.err"; then
        fail "bench_queue, its child killed: exit $rc (expected 1), stdout '$(cat "$tmp/queue.out")', stderr '$(cat "$tmp/queue.err")'"
    fi
    queue_child_gets STOP
    if [ "$rc" != 1 ] || [ -s "$tmp/queue.out" ] ||
        ! grep -q 'no message from the child for 10 s' "$tmp/queue.err"; then
        fail "bench_queue, its child stopped: exit $rc (expected 1), stdout '$(cat "$tmp/queue.out")', stderr '$(cat "$tmp/queue.err")'"
    fi
else
    echo "SKIP: bench_queue (no program given)"
fi

[ "$failures" = 0 ] || { echo "$failures case(s) failed" >&2; exit 1; }
echo "test_bench_drivers: all cases passed"
