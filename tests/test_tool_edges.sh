#!/usr/bin/env bash
# test_tool_edges.sh PLAIT [FAIL_PIPES_SO [SEGV_AS_ABORT_SO]] — cases a review of the
# `plait` tool found, each a defect that failed here first.  FAIL_PIPES_SO
# (tests/fail_pipes.c) makes every pipe fail, SEGV_AS_ABORT_SO (tests/segv_as_abort.c)
# turns a raised SIGSEGV into SIGABRT; without them those cases are left out.  Every
# wait is bounded (timeout); a failure says what differed.
#   bash tests/test_tool_edges.sh PLAIT_BINARY [FAIL_PIPES_SO [SEGV_AS_ABORT_SO]]
set -uo pipefail
tool=${1:?usage: test_tool_edges.sh PATH_TO_PLAIT [FAIL_PIPES_SO [SEGV_AS_ABORT_SO]]}
fail_pipes=${2:-}
segv_as_abort=${3:-}
tool="$(cd "$(dirname "$tool")" && pwd)/$(basename "$tool")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok   $*"; }

# ---- bench: a program's output beyond what the tool keeps (1 MiB) -----------------------
# The program prints one figure, 1000.  The tool kept the first 1 MiB (less a read),
# dropped the reads that did not fit, yet appended a later, smaller read (the last one)
# right after the cut: the cut figure line "... ns_per_op 1" and the tail "99\n" made a
# figure of 199, printed as measured.  Only whole lines of the output are figures.
mkdir "$tmp/big"
cat >"$tmp/big/bench_context" <<'PY'
#!/usr/bin/env python3
import sys
figure = "switch plait-context ns_per_op 1000\n"
cut = 255 * 4096                  # what the tool keeps of reads of 4096 bytes
pre = cut - 32                    # the figure line straddles the cut after its "1"
head = ("#" * 99 + "\n") * (pre // 100)
head += "#" * (pre - len(head) - 1) + "\n"
total = cut + 4 * 4096 + 3        # a last read of 3 bytes: "99\n"
tail_len = total - pre - len(figure)
out = head + figure + "#" + "x" * (tail_len - 5) + " 99\n"
assert len(out) == total
sys.stdout.write(out)
PY
chmod +x "$tmp/big/bench_context"
if command -v python3 >/dev/null; then
    PLAIT_BENCH_DIR="$tmp/big" timeout 60 "$tool" bench --quick context \
        >"$tmp/out" 2>"$tmp/err"
    # (exit 1: its peer, peer_ucontext_switch, is not there)
    what="bench, a program whose output passes 1 MiB"
    if grep -Eq '^switch +plait-context +ns_per_op +(199|1)\.' "$tmp/out"; then
        fail "$what: a figure it never printed: $(grep '^switch' "$tmp/out")"
    elif grep -Eq '^switch +plait-context +ns_per_op ' "$tmp/out" &&
         ! grep -Eq '^switch +plait-context +ns_per_op +1000 ' "$tmp/out"; then
        fail "$what: $(grep '^switch' "$tmp/out")"
    else
        ok "$what: no figure made of two lines"
    fi
fi

# ---- bench: a huge figure, and a huge ratio, are printed whole ----------------------------
# (their digits were cut to the 31 a buffer held: 1e40 printed as
# 1000000000000000030378602842700, ten orders of magnitude off)
mkdir "$tmp/huge"
printf '#!/bin/sh\necho "switch plait-context ns_per_op 1e40"\n' >"$tmp/huge/bench_context"
printf '#!/bin/sh\necho "switch ucontext ns_per_op 1"\n' >"$tmp/huge/peer_ucontext_switch"
chmod +x "$tmp/huge/bench_context" "$tmp/huge/peer_ucontext_switch"
PLAIT_BENCH_DIR="$tmp/huge" timeout 60 "$tool" bench --quick context >"$tmp/out" 2>"$tmp/err"
what="bench, a figure of 1e40 against a peer's 1"
median=$(awk '$1 == "switch" && $2 == "plait-context" { print $4 }' "$tmp/out")
ratio=$(awk '$1 == "switch" && $2 == "plait-context" && $(NF) == "ucontext" { print $(NF - 2) }' \
    "$tmp/out")
is_1e40() { python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) == 1e40 else 1)" "$1"; }
if ! command -v python3 >/dev/null; then
    :
elif [ -n "$median" ] && is_1e40 "$median" && [ -n "$ratio" ] && is_1e40 "$ratio"; then
    ok "$what: printed as $median, ratio $ratio"
else
    fail "$what: printed as '$median', ratio '$ratio'"
fi

# ---- compare: a process message step whose pipe fails ------------------------------------
# The step measures plait's queue, then a pipe for comparison.  With the pipe failing, the
# step was reported failed (exit 1), yet the queue's figure stood in the row and the
# recommendation "moving much data" was drawn from it: a failed step is "not measured"
# (null in the JSON), never a number (docs/TOOL.md).
# A quick `plait compare --json` run with the library $1 preloaded, into $tmp/out and
# $tmp/err; its exit status in $rc.
quick_compare_preloaded() {
    # a sanitizer's runtime must come first among the libraries loaded
    local runtime
    runtime=$(ldd "$tool" 2>/dev/null | awk '/lib[at]san\.so/ { print $3; exit }')
    rc=0
    LD_PRELOAD="${runtime:+$runtime:}$1" timeout 300 "$tool" compare --quick --quiet \
        --json >"$tmp/out" 2>"$tmp/err" || rc=$?
}
# Whether the JSON in $tmp/out shows a failed step's figures as not measured: the Python
# expression $1 lists what it shows wrong (d: the JSON), and no recommendation whose
# work starts with $2 may be drawn from them.  Says what is wrong.
not_measured_in_json() {
    python3 - "$tmp/out" "$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
bad = eval(sys.argv[2])
bad += ["recommended from a failed step: %s" % r["why"] for r in d["recommendations"]
        if r["work"].startswith(sys.argv[3])]
for b in bad:
    print("  " + b)
sys.exit(1 if bad else 0)
PY
}
if [ -n "$fail_pipes" ] && command -v python3 >/dev/null; then
    quick_compare_preloaded "$fail_pipes"
    what="compare, the pipes failing"
    [ "$rc" = 1 ] || fail "$what: exit $rc, expected 1"
    grep -q "processes: 64-byte messages failed" "$tmp/err" ||
        fail "$what: the failed step is not reported: $(cat "$tmp/err")"
    if not_measured_in_json '["%s: processes %r after the step failed" % (m["id"], m["values"]["process"])
                             for m in d["metrics"] if m["id"] in ("msg_small", "msg_large")
                             and m["values"]["process"] is not None]' "moving much data"; then
        ok "$what: the failed steps are not measured"
    else
        fail "$what"
    fi
fi

# ---- compare: a crash drill ended by another signal than its own SIGSEGV ----------------
# The drill's crasher raises SIGSEGV; a process of the drill ended by anything else (the
# OOM killer's SIGKILL, someone's kill, here SIGABRT) did not crash of its own fault, and
# the step fails: "not measured" (docs/TOOL.md).  It answered "no: SIGABRT ended all 3",
# as measured (session 51's audit of the tool).
if [ -n "$segv_as_abort" ] && command -v python3 >/dev/null; then
    quick_compare_preloaded "$segv_as_abort"
    what="compare, the drill's crash a SIGABRT"
    [ "$rc" = 1 ] || fail "$what: exit $rc, expected 1"
    for model in coroutines threads processes; do
        grep -q "$model: crash isolation failed: .*SIGABRT" "$tmp/err" ||
            fail "$what: the failed step of the $model is not reported: $(cat "$tmp/err")"
    done
    grep -q '"crash_isolated"' "$tmp/out" || fail "$what: no crash_isolated row"
    if not_measured_in_json '["%s: %r" % (m, v) for f in d["facts"] if f["id"] == "crash_isolated"
                             for m, v in f["values"].items() if v != "not measured"]' \
                            "code that may crash"; then
        ok "$what: the drill's row is not measured"
    else
        fail "$what"
    fi
fi

# ---- tour: Ctrl-C while the processes sleep --------------------------------------------
# A terminal's Ctrl-C reaches the whole process group: the tool, and the children of the
# example running, which inherit the tool's handler.  Their nanosleep ended at once, and
# the example "finished" as if it had shown something: "three 1 s sleeps in processes took
# 0.012 s in total (ok) ... the sleeps overlapped".  The example running finishes as it is
# (docs/TOOL.md): its sleeps last their second.
# (SIGINT at its default: a background job of this script starts with it ignored, which
# the tool leaves so)
in_sleep() { grep -q "process c (pid [0-9]*) sleeps for 1 s" "$tmp/out"; }
: >"$tmp/out"
env --default-signal=INT setsid "$tool" tour >"$tmp/out" 2>"$tmp/err" &
job=$!
end=$((SECONDS + 60))
until in_sleep || [ "$SECONDS" -ge "$end" ] || ! kill -0 "$job" 2>/dev/null; do sleep 0.05; done
what="tour, SIGINT to its process group while the processes sleep"
if in_sleep; then
    pgid=$(ps -o pgid= -p "$job" | tr -d ' ')
    kill -INT -- "-${pgid:-$job}"
    end=$((SECONDS + 30))
    while kill -0 "$job" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.1; done
    kill -KILL -- "-${pgid:-$job}" 2>/dev/null
    rc=0
    wait "$job" || rc=$?
    took=$(sed -n 's/^  three 1 s sleeps in processes took \([0-9.]*\) s.*/\1/p' "$tmp/out")
    if [ "$rc" != 130 ]; then
        fail "$what: exit $rc, expected 130"
    elif [ -z "$took" ] || awk -v t="$took" 'BEGIN { exit !(t < 0.9) }'; then
        fail "$what: the 1 s sleeps took '$took' s: $(grep -A9 'processes: three sleepers' "$tmp/out")"
    else
        ok "$what: the sleeps took $took s, exit 130"
    fi
else
    kill -KILL "$job" 2>/dev/null
    wait "$job" 2>/dev/null
    fail "$what: the example did not start in 60 s"
fi

# ---- bench: started with SIGINT ignored -----------------------------------------------
# A background job of a non-interactive shell (`plait bench &` in a script) starts with
# SIGINT ignored, so that a Ctrl-C meant for the script's foreground command spares it
# (as nohup leaves SIGHUP ignored).  The tool put its own handler in place regardless:
# that Ctrl-C stopped the run, exit 130, no results.  An ignored SIGINT stays ignored
# (as sh and Python leave it).  The program waits for the file "go", made only after
# the SIGINT was sent, so the signal comes while the tool waits for it.
mkdir "$tmp/ignored"
cat >"$tmp/ignored/bench_context" <<SH
#!/bin/sh
: >"$tmp/ignored/started"
for i in \$(seq 600); do [ -e "$tmp/ignored/go" ] && break; sleep 0.05; done
echo "switch plait-context ns_per_op 1000"
SH
printf '#!/bin/sh\necho "switch ucontext ns_per_op 500"\n' >"$tmp/ignored/peer_ucontext_switch"
chmod +x "$tmp/ignored/bench_context" "$tmp/ignored/peer_ucontext_switch"
(trap '' INT; PLAIT_BENCH_DIR="$tmp/ignored" exec "$tool" bench --quick context \
    >"$tmp/out" 2>"$tmp/err") &
job=$!
what="bench started with SIGINT ignored, sent SIGINT"
end=$((SECONDS + 30))
until [ -e "$tmp/ignored/started" ] || [ "$SECONDS" -ge "$end" ]; do sleep 0.05; done
kill -INT "$job"
: >"$tmp/ignored/go"
end=$((SECONDS + 30))
while kill -0 "$job" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.05; done
kill -KILL "$job" 2>/dev/null
rc=0
wait "$job" || rc=$?
if [ "$rc" != 0 ]; then
    fail "$what: exit $rc, expected 0; stderr: $(cat "$tmp/err")"
elif ! grep -Eq '^switch +plait-context +ns_per_op +1000' "$tmp/out"; then
    fail "$what: no results: $(cat "$tmp/out")"
else
    ok "$what: the run went on, exit 0, results printed"
fi

[ "$failures" = 0 ] && echo "test_tool_edges: ok"
exit $((failures > 0))
