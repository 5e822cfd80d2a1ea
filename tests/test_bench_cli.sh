#!/usr/bin/env bash
# test_bench_cli.sh PLAIT [SANITIZE] — `plait bench` as a user meets it: its help, its
# usage errors (exit 2), --list, a quick run of two short benchmarks and one with a peer
# (medians and a ratio), the programs missing (exit 1, naming where it looked), programs
# that fail or die of a signal (exit 1, the others still reported), and Ctrl-C (exit 130, the running
# benchmark stopped — also one that ignores SIGTERM — and nothing of it left behind; also
# while its results wait for a slow reader, and just before a write that would wait).
# The benchmark programs are the ones beside the tool in the build tree (bench/).
# SANITIZE is the build's PLAIT_SANITIZE: under ThreadSanitizer bench_spawn's quick
# count takes over a minute (a TSan fiber per coroutine), so the quick run leaves it out.
# Every wait is bounded.
set -euo pipefail
tool=${1:?usage: test_bench_cli.sh PATH_TO_PLAIT [SANITIZE]}
sanitize=${2:-}
tool="$(cd "$(dirname "$tool")" && pwd)/$(basename "$tool")"
benchdir="$(dirname "$tool")/bench"
tmp=$(mktemp -d)
sids=()
cleanup() {
    for s in "${sids[@]}"; do pkill -KILL -s "$s" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    for f in out err; do
        [ -s "$tmp/$f" ] && { echo "--- $f:" >&2; cat "$tmp/$f" >&2; }
    done
    exit 1
}
# run ARGS...: plait ARGS (2 minutes at most), its status in $rc, stdout and stderr in
# $tmp/out and $tmp/err
run() {
    rc=0
    timeout 120 "$tool" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
}
expect_rc() { [ "$rc" = "$1" ] || fail "plait $2: exit $rc, expected $1"; }
out_has() { grep -Eq -- "$1" "$tmp/out" || fail "plait $2: no '$1' on stdout"; }
err_has() { grep -Eq -- "$1" "$tmp/err" || fail "plait $2: no '$1' on stderr"; }
# wait_for SECONDS COMMAND...: poll COMMAND every 0.1 s until it succeeds; false after
wait_for() {
    local end=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.1
    done
}

# ---- help, usage errors, --list -------------------------------------------------------
run bench --help
expect_rc 0 "bench --help"
for word in --runs --quick --list PLAIT_BENCH_DIR run.sh "exit status" 130; do
    out_has "$word" "bench --help"
done
run bench -h
expect_rc 0 "bench -h"

for args in "--bogus" "--runs 0" "--runs x" "--runs 100" "--runs" "nosuchbench" \
            "spawn nosuchbench"; do
    # shellcheck disable=SC2086
    run bench $args
    expect_rc 2 "bench $args"
    [ -s "$tmp/err" ] || fail "plait bench $args: no message on stderr"
    [ ! -s "$tmp/out" ] || fail "plait bench $args: something on stdout"
done
run bench --bogus
err_has "--bogus" "bench --bogus"
run bench nosuchbench
err_has "nosuchbench" "bench nosuchbench"

run bench --list
expect_rc 0 "bench --list"
for name in context switch spawn chan memory forkjoin pool wakeup process queue offload; do
    out_has "^$name " "bench --list"
done

# ---- a quick run: benchmarks whose peers are not here (spawn, chan), one with (pool) --
names=(spawn chan pool)
[[ "$sanitize" == *thread* ]] && names=(chan pool)
run bench --quick "${names[@]}"
what="bench --quick ${names[*]}"
expect_rc 0 "$what"
out_has "^machine: [0-9]+ CPUs?, .*, Linux " "$what"
if [ "${names[0]}" = spawn ]; then
    out_has "^spawn +plait +ns_per_task +[0-9][0-9.]* " "$what"
    err_has "run 1 of 1: bench_spawn 100000" "$what"
fi
out_has "^chan +plait +ns_per_msg +[0-9][0-9.]* " "$what"
# the ratio plait/peer on plait's line, and the peer's own median
out_has "^pool\.noop +plait +tasks_per_s +[0-9][0-9.]* .* [0-9][0-9.e+-]* vs mutexq" "$what"
out_has "^pool\.noop +mutexq +tasks_per_s +[0-9]" "$what"
! grep -q "bench_switch\|bench_memory" "$tmp/err" || fail "$what ran benchmarks not asked for"

# ---- no programs where it looks ---------------------------------------------------------
mkdir "$tmp/empty"
rc=0
PLAIT_BENCH_DIR="$tmp/empty" timeout 60 "$tool" bench --quick spawn \
    >"$tmp/out" 2>"$tmp/err" || rc=$?
expect_rc 1 "bench with PLAIT_BENCH_DIR empty"
err_has "$tmp/empty" "bench with PLAIT_BENCH_DIR empty"

# ---- programs that fail: the others still reported -------------------------------------
# (a copy of the real bench_chan; bench_spawn exits 3; bench_switch prints no figure;
# bench_memory dies of SIGSEGV; peer_ucontext_switch, which switch brings along, is
# missing)
mkdir "$tmp/fake"
cp "$benchdir/bench_chan" "$tmp/fake/"
printf '#!/bin/sh\necho "bench_spawn: broken on purpose" >&2\nexit 3\n' >"$tmp/fake/bench_spawn"
printf '#!/bin/sh\necho "no figures here"\n' >"$tmp/fake/bench_switch"
printf '#!/bin/sh\nkill -SEGV $$\n' >"$tmp/fake/bench_memory"
chmod +x "$tmp/fake/bench_spawn" "$tmp/fake/bench_switch" "$tmp/fake/bench_memory"
rc=0
PLAIT_BENCH_DIR="$tmp/fake" timeout 100 "$tool" bench --quick spawn chan switch memory \
    >"$tmp/out" 2>"$tmp/err" || rc=$?
what="bench with failing programs"
expect_rc 1 "$what"
err_has "bench_spawn.*status 3" "$what"
err_has "bench_switch.*no figure" "$what"
err_has "bench_memory.*killed by signal 11" "$what"
err_has "peer_ucontext_switch.*not there" "$what"
err_has "run 1 of 1: bench_chan" "$what"
out_has "^chan +plait +ns_per_msg +[0-9]" "$what"
# the same, its results unwritable: 3, as for every command (it exited 1)
if [ -e /dev/full ]; then
    rc=0
    PLAIT_BENCH_DIR="$tmp/fake" timeout 100 "$tool" bench --quick chan switch \
        >/dev/full 2>"$tmp/err" || rc=$?
    expect_rc 3 "bench with a failing program > /dev/full"
    err_has "cannot write" "bench with a failing program > /dev/full"
fi

# ---- a program that leaves a process holding its output: its figure counts at once -------
# (the tool once read until that process let go of the pipe, waited out its limit, 60 s,
# then called the program still running and dropped its figure)
mkdir "$tmp/leaves"
printf '#!/bin/sh\necho "switch plait-context ns_per_op 5.5"\nsleep 300 &\nexit 0\n' \
    >"$tmp/leaves/bench_context"
chmod +x "$tmp/leaves/bench_context"
rc=0
PLAIT_BENCH_DIR="$tmp/leaves" timeout 30 "$tool" bench --quick context \
    >"$tmp/out" 2>"$tmp/err" || rc=$?
what="bench with a program that leaves a process behind"
expect_rc 1 "$what" # its peer, peer_ucontext_switch, is not there
out_has "^switch +plait-context +ns_per_op +5.50" "$what"
grep -q "still running" "$tmp/err" && fail "$what: called still running"
# and one whose leftover keeps writing to it, every 10 ms: the tool read on until its
# limit, the look at whether the program had ended made only when the pipe was quiet
# (a helper's audit of session 63)
printf '#!/bin/sh\necho "switch plait-context ns_per_op 5.5"\n( while :; do echo "# noise"; sleep 0.01; done ) &\nexit 0\n' \
    >"$tmp/leaves/bench_context"
rc=0
PLAIT_BENCH_DIR="$tmp/leaves" timeout 30 "$tool" bench --quick context \
    >"$tmp/out" 2>"$tmp/err" || rc=$?
what="bench with a program that leaves a process writing to its output"
expect_rc 1 "$what" # its peer, peer_ucontext_switch, is not there
out_has "^switch +plait-context +ns_per_op +5.50" "$what"
grep -q "still running" "$tmp/err" && fail "$what: called still running"

# ---- a peer measured in fewer runs than plait: its ratio says so -------------------------
# (a ratio over the one run both measured was printed as if over all of plait's, and a
# peer that measured in no run of plait's was left out unsaid; a helper's audit of
# session 63: summarize.py says both)
mkdir "$tmp/fewer"
printf '#!/bin/sh\necho "switch plait-context ns_per_op 5"\n' >"$tmp/fewer/bench_context"
printf '#!/bin/sh\nif [ -e "%s/fewer/ran" ]; then exit 3; fi\n: >"%s/fewer/ran"\necho "switch ucontext ns_per_op 10"\n' \
    "$tmp" "$tmp" >"$tmp/fewer/peer_ucontext_switch"
chmod +x "$tmp/fewer/bench_context" "$tmp/fewer/peer_ucontext_switch"
rc=0
PLAIT_BENCH_DIR="$tmp/fewer" timeout 60 "$tool" bench --quick --runs 2 context \
    >"$tmp/out" 2>"$tmp/err" || rc=$?
what="bench with a peer measured in 1 of 2 runs"
expect_rc 1 "$what" # its second run failed
out_has "^switch +plait-context +ns_per_op .*0\.50 \(1 of 2 runs\) vs ucontext" "$what"
# plait's figure in run 1 only, the peer's in run 2 only
printf '#!/bin/sh\nif [ -e "%s/fewer/plait_ran" ]; then exit 3; fi\n: >"%s/fewer/plait_ran"\necho "switch plait-context ns_per_op 5"\n' \
    "$tmp" "$tmp" >"$tmp/fewer/bench_context"
printf '#!/bin/sh\nif [ ! -e "%s/fewer/peer_ran" ]; then : >"%s/fewer/peer_ran"; exit 3; fi\necho "switch ucontext ns_per_op 10"\n' \
    "$tmp" "$tmp" >"$tmp/fewer/peer_ucontext_switch"
rc=0
PLAIT_BENCH_DIR="$tmp/fewer" timeout 60 "$tool" bench --quick --runs 2 context \
    >"$tmp/out" 2>"$tmp/err" || rc=$?
what="bench with a peer measured in no run of plait's"
expect_rc 1 "$what"
out_has "^switch +plait-context +ns_per_op .*no run measured both vs ucontext" "$what"

# ---- pools of different sizes: their ratio is not given -----------------------------------
# (plait's pool has plait_cpu_count() workers, which heeds a cgroup's CPU quota; a peer may
# count the affinity mask only: in a container of 2 CPUs on a larger host the tool printed
# the ratio of 2 workers against 16, exit 0, where bench/summarize.py warns and fails)
mkdir "$tmp/sizes"
printf '#!/bin/sh\necho "pool.noop plait workers 2"\necho "pool.noop plait tasks_per_s 1000"\n' \
    >"$tmp/sizes/bench_pool"
printf '#!/bin/sh\necho "pool.noop mutexq workers 16"\necho "pool.noop mutexq tasks_per_s 500"\n' \
    >"$tmp/sizes/peer_mutex_queue"
chmod +x "$tmp/sizes/bench_pool" "$tmp/sizes/peer_mutex_queue"
rc=0
PLAIT_BENCH_DIR="$tmp/sizes" timeout 30 "$tool" bench --quick pool >"$tmp/out" 2>"$tmp/err" || rc=$?
what="bench with pools of different sizes"
expect_rc 1 "$what"
out_has "^pool.noop +plait +tasks_per_s .*\(2 workers, 16\) vs mutexq" "$what"
grep -q "2.00 vs mutexq" "$tmp/out" && fail "$what: the ratio given"
err_has "different numbers of workers" "$what"
# the same sizes: the ratio, exit 0
sed -i 's/workers 16/workers 2/' "$tmp/sizes/peer_mutex_queue"
rc=0
PLAIT_BENCH_DIR="$tmp/sizes" timeout 30 "$tool" bench --quick pool >"$tmp/out" 2>"$tmp/err" || rc=$?
expect_rc 0 "bench with pools of one size"
out_has "^pool.noop +plait +tasks_per_s .*2.00 vs mutexq" "bench with pools of one size"

# ---- Ctrl-C -------------------------------------------------------------------------------
# interrupt WHAT MARKER [ENV=VALUE...]: start `plait bench --quick` in a session of its
# own (setsid; job control on, so that SIGINT is not ignored in the background job),
# wait until it started a program (its progress on stderr, or the file MARKER that a
# fake one creates), send SIGINT, then check it exits 130 within 10 s, prints no
# results and leaves no process of its session behind.  (The three helpers read the
# job and pid of interrupt().)
tool_started() { pid=$(pgrep -P "$job"); }
job_ended() { ! kill -0 "$job" 2>/dev/null; }
session_empty() { ! pgrep -s "$pid" >/dev/null; }
interrupt() {
    local what=$1 marker=$2
    shift 2
    : >"$tmp/out"
    : >"$tmp/err"
    set -m
    env "$@" setsid -w "$tool" bench --quick >"$tmp/out" 2>"$tmp/err" &
    local job=$!
    set +m
    local pid=""
    wait_for 10 tool_started || fail "$what: the tool did not start"
    sids+=("$pid") # setsid: the tool leads a session of its own, SID = its pid
    if [ -n "$marker" ]; then
        wait_for 30 test -e "$marker" || fail "$what: the program did not start in 30 s"
    else
        wait_for 30 grep -q "run 1 of 1: " "$tmp/err" || fail "$what: no program started in 30 s"
    fi
    kill -INT "$pid"
    wait_for 10 job_ended || fail "$what: still running 10 s after SIGINT"
    rc=0
    wait "$job" || rc=$?
    expect_rc 130 "$what"
    [ ! -s "$tmp/out" ] || fail "$what: printed results after SIGINT"
    wait_for 5 session_empty ||
        fail "$what: processes of its session left: $(pgrep -a -s "$pid")"
}
interrupt "bench --quick, SIGINT" ""

# A benchmark that ignores SIGTERM, with a child of its own: SIGKILL 2 s later, the
# whole process group.
mkdir "$tmp/stuck"
cat >"$tmp/stuck/bench_context" <<EOF
#!/bin/sh
trap '' TERM
sleep 600 &
touch "$tmp/stuck/started"
wait
EOF
chmod +x "$tmp/stuck/bench_context"
interrupt "bench --quick with a benchmark that ignores SIGTERM" "$tmp/stuck/started" \
    PLAIT_BENCH_DIR="$tmp/stuck"

# A signal while the results wait for a reader that stopped reading: the blocked write is
# cut short and the command exits 130 at once (it blocked the signal until its end, and
# printed everything, exit 0, once the reader went on).  A program with thousands of
# figures fills the pipe; the reader holds it open and reads nothing until the end.
mkdir "$tmp/many"
cat >"$tmp/many/bench_chan" <<'EOF2'
#!/bin/sh
i=0
while [ $i -lt 4000 ]; do echo "chan impl$i ns_per_msg 1.5"; i=$((i + 1)); done
EOF2
chmod +x "$tmp/many/bench_chan"
mkfifo "$tmp/fifo"
exec {hold}<>"$tmp/fifo" # a reader that reads nothing: the writer blocks once it is full
: >"$tmp/err"
set -m
PLAIT_BENCH_DIR="$tmp/many" setsid -w "$tool" bench --quick chan >"$tmp/fifo" 2>"$tmp/err" &
job=$!
set +m
pid=""
wait_for 10 tool_started || fail "bench with a slow reader: the tool did not start"
sids+=("$pid")
writing() { grep -q pipe "/proc/$pid/wchan" 2>/dev/null; }
wait_for 30 writing || fail "bench with a slow reader: never blocked writing its results"
kill -TERM "$pid"
wait_for 10 job_ended || fail "bench with a slow reader: still running 10 s after SIGTERM"
rc=0
wait "$job" || rc=$?
exec {hold}<&-
expect_rc 130 "bench with a slow reader, SIGTERM"

# The same signal a moment earlier: after the tool's last look at its flag, before the
# write that then blocks (it waited for the reader for ever).  gdb (scripts/test.sh
# installs it) stops the tool at its first write to standard output, into a FIFO that
# is full already, and delivers SIGTERM there: the handler runs, then the write.  Not
# under ThreadSanitizer, which runs a handler of an asynchronous signal only at the
# program's next call that it intercepts: here that is after the write (the window
# this closes is wider there, and stays).  Under AddressSanitizer without its leak
# check, which does not work under ptrace (the other cases have it).
signal_before_write() {
local first_arg
case "$(uname -m)" in
    x86_64) first_arg='$rdi' ;;
    aarch64) first_arg='$x0' ;;
    *) first_arg='' ;;
esac
command -v gdb >/dev/null || fail "gdb is missing (scripts/test.sh installs it)"
[ -n "$first_arg" ] || fail "no register for write's first argument on $(uname -m)"
rm -f "$tmp/fifo"
mkfifo "$tmp/fifo"
exec {hold}<>"$tmp/fifo"
python3 - "$tmp/fifo" <<'EOF2' || fail "could not fill the FIFO"
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_NONBLOCK)
for size in (4096, 1):
    try:
        while True:
            os.write(fd, b"x" * size)
    except BlockingIOError:
        pass
EOF2
rc=0
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
PLAIT_BENCH_DIR="$tmp/many" timeout 60 gdb -q -batch -nx -ex 'set breakpoint pending on' \
    -ex 'handle SIGTERM nostop noprint pass' -ex "tbreak write if $first_arg == 1" \
    -ex "set args bench --quick chan >$tmp/fifo 2>$tmp/err" -ex run -ex 'signal SIGTERM' \
    "$tool" >"$tmp/out" 2>&1 || rc=$?
exec {hold}<&-
[ "$rc" = 0 ] || fail "bench, a signal just before a write that blocks: gdb exit $rc (124: the tool waited for the reader)"
grep -Eq "Temporary breakpoint 1(\.[0-9]+)?, .*write" "$tmp/out" || fail "bench, a signal just before a write that blocks: never stopped at the write"
grep -q "exited with code 0202" "$tmp/out" || fail "bench, a signal just before a write that blocks: not exit 130"
}
[ "$sanitize" = thread ] || signal_before_write

echo "test_bench_cli: ok"
