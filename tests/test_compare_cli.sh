#!/usr/bin/env bash
# `plait compare` as a script sees it: help, usage errors, an unwritable report path, a
# FIFO for the report (with and without a reader),
# a quick run whose JSON holds every figure, a machine with one CPU (taskset), few open
# files (a smaller run, or a step skipped and said so), an address-space limit, and
# Ctrl-C / SIGTERM in the middle of a run (exit 130, no report, no child left behind);
# and SIGTERM in the middle of `plait tour`, or SIGINT while its output waits for a
# reader (exit 130 too).
#   bash tests/test_compare_cli.sh PLAIT_BINARY [SANITIZER]
# Under ThreadSanitizer (SANITIZER "thread"), where one quick comparison takes about a
# minute (20 s alone here, and the whole script took 596 s of its 600 in a CI run), the
# runs that test what the tool does on one thread are left to the plain and ASan
# builds: a report written after a whole run (a FIFO, a full device, a dangling link, a
# closed output...), the text table, and 150 open files (the run fitted to that limit:
# a sanitizer build runs few enough units that nothing is cut, so under TSan it was one
# more whole run that tested nothing new).  The runs whose threads and processes differ
# (a quick run, one CPU, a step that fails for want of descriptors, interrupted) stay.
# Every wait is bounded; a failure says what differed and exits 1.
set -uo pipefail
plait=${1:?usage: test_compare_cli.sh PLAIT_BINARY [SANITIZER]}
sanitizer=${2:-}
one_thread_runs=true
[ "$sanitizer" = thread ] && one_thread_runs=false
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/stacks.sh"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

# stacks_when_stuck PID: while the run under timeout PID goes on, if its progress (its
# stderr, $tmp/err: "[k/N] step" lines; a --quiet run has none and is not watched)
# stands still for STUCK_S seconds, print the stacks of every process of the run
# (tests/stacks.sh; timeout makes the run a process group of its own), and watch on.
# A step whose unit hangs fails at its wait's deadline, 60 s, and the unit is killed
# then, its state lost: a ThreadSanitizer build's "processes: 64-byte messages" failed
# so twice in CI ("deadline passed"), and did not here in 44 runs under load.  A step
# may take this long without hanging on a loaded machine (coroutines: creation, 13 s
# under TSan alone): then the stacks are printed to no harm, seen only if the test fails.
STUCK_S=40
stacks_when_stuck() {
    local run=$1 last="" now still=0 pid
    while kill -0 "$run" 2>/dev/null; do
        sleep 0.2 # (a fifth of a second: most runs end at once, and are waited for)
        grep -q '^plait compare: \[' "$tmp/err" 2>/dev/null || continue
        now=$(stat -c %s "$tmp/err")
        if [ "$now" = "$last" ]; then still=$((still + 1)); else still=0 last=$now; fi
        [ "$still" -ge $((STUCK_S * 5)) ] || continue
        echo "note: no progress for $STUCK_S s after '$(tail -n 1 "$tmp/err")'; the run's processes:"
        for pid in $(pgrep -g "$run"); do [ "$pid" = "$run" ] || print_stacks "$pid"; done
        still=0
    done
}

# expect_exit CODE DESCRIPTION COMMAND...: the command's exit status is CODE
expect_exit() {
    local want=$1 what=$2; shift 2
    rm -f "$tmp/err" # (the last run's, until this run's redirection is made)
    timeout 300 "$@" >"$tmp/out" 2>"$tmp/err" &
    local run=$! watcher
    stacks_when_stuck "$run" >"$tmp/stacks" 2>&1 &
    watcher=$!
    wait "$run"
    local got=$?
    wait "$watcher"
    [ -s "$tmp/stacks" ] && cat "$tmp/stacks" >&2
    if [ "$got" = "$want" ]; then ok "$what (exit $got)"; else
        fail "$what: exit $got, expected $want"
        # what went wrong, without the progress lines (a failed step says why)
        grep -v '^plait compare: \[' "$tmp/err" | sed 's/^/  stderr: /' | tail -20 >&2; fi
}

# ---- help and usage errors --------------------------------------------------------------
expect_exit 0 "compare --help" "$plait" compare --help
grep -q -- "--quick" "$tmp/out" && grep -q -- "--json" "$tmp/out" && grep -q -- "--html FILE" "$tmp/out" &&
    grep -q "exit status" "$tmp/out" || fail "compare --help does not describe the options and exit codes"
cp "$tmp/out" "$tmp/help1"
expect_exit 0 "help compare" "$plait" help compare
cmp -s "$tmp/out" "$tmp/help1" || fail "'plait help compare' differs from 'plait compare --help'"
expect_exit 2 "unknown option" "$plait" compare --frobnicate
grep -q "unknown option '--frobnicate'" "$tmp/err" || fail "no message naming the unknown option"
expect_exit 2 "--html without a file" "$plait" compare --html
grep -q -- "--html needs a file name" "$tmp/err" || fail "no message for --html without a file"
# an option is no file name (it was taken for one, and the run was a full one)
expect_exit 2 "--html followed by an option" "$plait" compare --html --quick
grep -q -- "--html needs a file name" "$tmp/err" || fail "no message for --html --quick"
expect_exit 2 "help for an unknown command" "$plait" help frobnicate
expect_exit 2 "help with two commands" "$plait" help compare tour

# ---- an unwritable report path is refused before anything is measured --------------------
: >"$tmp/a-file"
# (a directory was refused only after the whole run, when the report was renamed over it)
# (a name longer than the file system takes was refused only at the end of the run)
for path in "$tmp/a-file/report.html" "$tmp/no-such-dir/report.html" "$tmp" \
            "$tmp/$(printf 'n%.0s' $(seq 300)).html"; do
    expect_exit 3 "report at $path" "$plait" compare --quick --html "$path"
    grep -q "cannot write the report" "$tmp/err" || fail "no message for the unwritable report $path"
    if grep -q "\[1/" "$tmp/err"; then fail "measured before refusing $path"; fi
done

# A path to a standard descriptor that was closed names no file: refused before anything
# is measured, as the descriptor itself is (it reopened what held the number, /dev/null,
# for writing: the run measured everything, wrote the report into nothing and exited 0;
# session 51's audit of the tool).  The table is printed only after the run.
"$plait" compare --quick --quiet --html /dev/stderr >"$tmp/out" 2>&-; rc=$?
[ "$rc" = 3 ] && ! grep -q "What suits which work" "$tmp/out" \
    && ok "report at /dev/stderr, closed: exit 3 before measuring" \
    || fail "report at /dev/stderr, closed: exit $rc; $(head -c 200 "$tmp/out")"
"$plait" compare --quick --quiet --html /dev/stdin >"$tmp/out" 2>"$tmp/err" <&-; rc=$?
[ "$rc" = 3 ] && ! grep -q "What suits which work" "$tmp/out" && grep -q "cannot write the report" "$tmp/err" \
    && ok "report at /dev/stdin, closed: exit 3 before measuring" \
    || fail "report at /dev/stdin, closed: exit $rc; $(head -c 200 "$tmp/err")"

if $one_thread_runs; then
# A FIFO is written in place: without a reader it is refused at once (not waited for),
# with one the reader gets the whole report.
mkfifo "$tmp/report.fifo"
expect_exit 3 "report into a FIFO without a reader" "$plait" compare --quick --html "$tmp/report.fifo"
grep -q "cannot write the report" "$tmp/err" || fail "no message for a FIFO without a reader"
if grep -q "\[1/" "$tmp/err"; then fail "measured before refusing a FIFO without a reader"; fi
# (the reader: this shell holds the FIFO open, read and write, before the run begins, and
# a sed reads through it until the report's end, as the shell's end keeps EOF away)
exec 5<>"$tmp/report.fifo"
timeout 300 sed '/<\/html>/q' <&5 >"$tmp/fifo.html" &
reader=$!
expect_exit 0 "report into a FIFO with a reader" "$plait" compare --quick --quiet --html "$tmp/report.fifo"
wait "$reader" || fail "the FIFO's reader: exit $?"
exec 5<&-
grep -q "<html" "$tmp/fifo.html" && grep -q "</html>" "$tmp/fifo.html" ||
    fail "the FIFO's reader did not get the whole report ($(wc -c <"$tmp/fifo.html") bytes)"
# The same run's text table names every model and every row, and says what suits which
# work; --quiet showed no progress.
for word in coroutines threads processes "creation cost" "I/O-bound job" "CPU-bound speed-up" \
            "crash spares the others" "What suits which work"; do
    grep -q "$word" "$tmp/out" || fail "the table has no '$word'"
done
grep -q "\[1/" "$tmp/err" && fail "--quiet still shows the progress: $(head -3 "$tmp/err")"
# The rows come in the table's order, whatever order the steps ran in (the processes'
# and threads' memory steps run first: the memory row led the table).
rows=$(grep -E "^(creation cost|hand-off between two units|64-byte message|64 KiB messages|I/O-bound job|CPU-bound speed-up|memory per unit|crash spares the others) " "$tmp/out" |
       sed -E 's/ {2,}.*//' | tr '\n' '|')
[ "$rows" = "creation cost|hand-off between two units|64-byte message|64 KiB messages|I/O-bound job|CPU-bound speed-up|memory per unit|crash spares the others|" ] ||
    fail "the table's rows in this order: $rows"

# A report whose writing fails after the run (a full device): exit 3, saying so.
if [ -e /dev/full ]; then
    expect_exit 3 "report into /dev/full" "$plait" compare --quick --quiet --html /dev/full
    grep -q "cannot write the report /dev/full" "$tmp/err" || fail "no message for a report into /dev/full"
fi

fi

# A read-only report file is refused too (the rename at the end replaced it).  Root may
# write it, so as root the check runs without the capability that lets it (setpriv).
echo old >"$tmp/read-only.html"
chmod 444 "$tmp/read-only.html"
as_user=()
if [ "$(id -u)" = 0 ]; then
    as_user=(setpriv --bounding-set=-dac_override)
    "${as_user[@]}" true 2>/dev/null ||
        { as_user=(); echo "note: root, and setpriv cannot drop CAP_DAC_OVERRIDE: read-only report not checked"; }
fi
if [ "$(id -u)" != 0 ] || [ "${#as_user[@]}" -gt 0 ]; then
    expect_exit 3 "report at a read-only file" ${as_user[@]+"${as_user[@]}"} \
        "$plait" compare --quick --html "$tmp/read-only.html"
    grep -q "cannot write the report" "$tmp/err" || fail "no message for the read-only report"
    if grep -q "\[1/" "$tmp/err"; then fail "measured before refusing the read-only report"; fi
    [ "$(cat "$tmp/read-only.html")" = old ] && [ "$(stat -c %a "$tmp/read-only.html")" = 444 ] ||
        fail "the read-only report file was replaced"
fi

# A path the kernel will not stat (here a chain of links past its limit of 40 hops, as
# a link it will not follow for this user under fs.protected_symlinks) is refused with
# that error before anything is measured: the tool followed such a chain by hand, took
# its end for a new file, and replaced it, read-only as it was (session 53's audit).
mkdir "$tmp/loop"
ln -s . "$tmp/loop/d"
for i in $(seq 0 19); do ln -s "d/L$((i + 1))" "$tmp/loop/L$i"; done
ln -s d/target "$tmp/loop/L20"
echo old >"$tmp/loop/target"
chmod 444 "$tmp/loop/target"
expect_exit 3 "report through links the kernel will not follow" \
    "$plait" compare --quick --json --html "$tmp/loop/L0"
grep -q "cannot write the report .*: Too many levels of symbolic links" "$tmp/err" ||
    fail "no message for the links the kernel will not follow"
if grep -q "\[1/" "$tmp/err"; then fail "measured before refusing the links"; fi
[ "$(cat "$tmp/loop/target")" = old ] && [ "$(stat -c %a "$tmp/loop/target")" = 444 ] ||
    fail "the file at the end of the links was replaced"

# ---- a quick run: every figure measured, the report written, nothing left over -----------
# The report path is a symbolic link, given as --html=FILE: the report goes to its target,
# and the link stays (it was replaced by a file, the target left as it was).  The
# target's name is as long as a name may be, less a little (a temporary name made from
# it was once too long).
mkdir "$tmp/report"
target=$(printf 'r%.0s' $(seq 245)).html
echo old >"$tmp/report/$target"
chmod 600 "$tmp/report/$target"
ln -s "$target" "$tmp/report/link.html"
expect_exit 0 "compare --quick --json --html=FILE" "$plait" compare --quick --json --html="$tmp/report/link.html"
[ -L "$tmp/report/link.html" ] || fail "the report replaced the symbolic link it was given"
# the report replacing a file keeps its permissions (a private one became 0644)
[ "$(stat -c %a "$tmp/report/$target")" = 600 ] ||
    fail "the report did not keep the permissions of the file it replaced: $(stat -c %a "$tmp/report/$target")"
grep -q "^old$" "$tmp/report/$target" && fail "the report did not reach the link's target"
cp "$tmp/out" "$tmp/quick.json"
python3 - "$tmp/quick.json" <<'EOF' || fail "the JSON of a quick run"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["format"] == "plait-compare/1" and d["quick"] is True, "format or quick flag"
assert [m["id"] for m in d["models"]] == ["coroutine", "thread", "process"], "models"
ids = [m["id"] for m in d["metrics"]]
for want in ["create", "handoff", "memory", "msg_small", "msg_large", "io_job", "cpu_speedup"]:
    assert want in ids, "metric %s missing" % want
for m in d["metrics"]:
    for model, v in m["values"].items():
        assert isinstance(v, (int, float)) and v > 0, "%s/%s not measured: %r" % (m["id"], model, v)
# the I/O-bound job is one run, and says so (TOOL.md)
io = [m for m in d["metrics"] if m["id"] == "io_job"][0]
assert io["how"].endswith("one run"), io["how"]
facts = {f["id"]: f["values"] for f in d["facts"]}
# The experiments, whose answers do not depend on the machine:
assert facts["crash_isolated"]["process"].startswith("yes"), facts["crash_isolated"]
assert facts["crash_isolated"]["coroutine"].startswith("no"), facts["crash_isolated"]
assert facts["crash_isolated"]["thread"].startswith("no"), facts["crash_isolated"]
assert facts["shared_memory"] == {"coroutine": "yes: write seen", "thread": "yes: write seen",
                                  "process": "no: write not seen"}, facts["shared_memory"]
works = [r["work"] for r in d["recommendations"]]
assert len(works) >= 5, works
for r in d["recommendations"]:
    assert r["why"] and (r["model"] is None or r["model"] in ("coroutine", "thread", "process"))
crash = [r for r in d["recommendations"] if r["work"].startswith("code that may crash")]
assert crash and crash[0]["model"] == "process", crash
print("ok: quick JSON: %d metrics, %d facts, %d recommendations" %
      (len(d["metrics"]), len(d["facts"]), len(d["recommendations"])))
EOF
grep -q "</html>" "$tmp/report/$target" || fail "no whole HTML report written"
leftover=$(find "$tmp/report" -name '.plait-report-*')
[ -z "$leftover" ] || fail "temporary report files left: $leftover"

# Another user's file that may be written, in a sticky directory (/tmp's mode), cannot
# be renamed over (EPERM): the finished report is copied into it, as into a file that
# is a mount point (the whole run was measured, then refused; session 53's audit).  As
# two users other than root (setpriv), so only where this runs as root.
as_daemon=(setpriv --reuid=daemon --regid=daemon --clear-groups)
if ! $one_thread_runs; then :
elif [ "$(id -u)" != 0 ] || ! "${as_daemon[@]}" true 2>/dev/null || ! id nobody >/dev/null 2>&1; then
    echo "note: not root, or no users daemon and nobody: a report into another user's file not checked"
else
    mkdir -m 1777 "$tmp/sticky"
    chmod o+x "$tmp"
    echo old >"$tmp/sticky/r.html"
    chown nobody "$tmp/sticky/r.html"
    chmod 666 "$tmp/sticky/r.html"
    expect_exit 0 "report into another user's file in a sticky directory" \
        "${as_daemon[@]}" "$plait" compare --quick --quiet --html "$tmp/sticky/r.html"
    grep -q "</html>" "$tmp/sticky/r.html" || fail "no report in the other user's file"
    [ "$(stat -c %U "$tmp/sticky/r.html")" = nobody ] || fail "the other user's file was replaced"
    leftover=$(find "$tmp/sticky" -name '.plait-report-*')
    [ -z "$leftover" ] || fail "temporary report files left: $leftover"
fi

# A FILE this user may write in a directory it may not (a report made for it beside
# root's files): the report is made in $TMPDIR and copied into FILE at the end (it was
# refused before anything was measured: its temporary file could not be made beside
# FILE).  As a user other than root (setpriv), so only where this runs as root.
as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
if ! $one_thread_runs; then :
elif [ "$(id -u)" != 0 ] || ! "${as_nobody[@]}" true 2>/dev/null; then
    echo "note: not root, or no user nobody: a report into a file in a directory it may not write not checked"
else
    mkdir -m 755 "$tmp/rodir"
    mkdir -m 1777 "$tmp/anyone"
    chmod o+x "$tmp"
    echo old >"$tmp/rodir/r.html"
    chmod 666 "$tmp/rodir/r.html"
    expect_exit 0 "report into a writable file in a directory this user may not write" \
        "${as_nobody[@]}" env TMPDIR="$tmp/anyone" "$plait" compare --quick --quiet --html "$tmp/rodir/r.html"
    grep -q "</html>" "$tmp/rodir/r.html" || fail "no report in the writable file"
    leftover=$(find "$tmp/rodir" "$tmp/anyone" -name '.plait-report-*')
    [ -z "$leftover" ] || fail "temporary report files left: $leftover"
fi

# An append-only FILE (chattr +a) passes access(W_OK) but can be neither renamed over nor
# truncated: refused before anything is measured (the whole run was measured, then
# refused).  Where the file system takes the attribute.
echo old >"$tmp/append-only.html"
if chattr +a "$tmp/append-only.html" 2>/dev/null; then
    expect_exit 3 "an append-only report file" "$plait" compare --quick --quiet --html "$tmp/append-only.html"
    [ ! -s "$tmp/out" ] || fail "an append-only report file was refused only after the run"
    grep -q "Operation not permitted" "$tmp/err" || fail "an append-only report file: $(cat "$tmp/err")"
    chattr -a "$tmp/append-only.html"
else
    echo "note: the file system takes no append-only attribute here: not checked"
fi

# ---- one CPU: no model may claim a CPU-bound speed-up ------------------------------------
# (not --quiet: its progress lets stacks_when_stuck print where a stuck step stood; this
# run's "I/O-bound job failed: deadline passed" was seen once under ASan in CI)
if command -v taskset >/dev/null; then
    expect_exit 0 "compare --quick on one CPU" taskset -c 0 "$plait" compare --quick --json
    python3 - "$tmp/out" <<'EOF' || fail "the one-CPU run"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["machine"]["cpus"] == 1, d["machine"]
cpu = [r for r in d["recommendations"] if r["work"] == "CPU-bound work"]
assert cpu and cpu[0]["model"] is None and "1 CPU" in cpu[0]["why"], cpu
parallel = {f["id"]: f["values"] for f in d["facts"]}["parallel"]
assert all(v.startswith("no") for v in parallel.values()), parallel
print("ok: one CPU: no CPU-bound recommendation, nothing runs in parallel")
EOF
else
    fail "taskset (util-linux) is missing: the one-CPU case cannot run"
fi

# ---- few descriptors: the run fits itself to the limit, or says which step it skips -----
# (ulimit in a subshell sets the hard limit too: the tool cannot raise it back)
if $one_thread_runs; then
expect_exit 0 "compare --quick with 150 open files" \
    bash -c 'ulimit -n 150 && exec "$0" compare --quick --json --quiet' "$plait"
# (a sanitizer build runs 10 units, which 150 files allow: nothing to cut there)
grep -q "built with a sanitizer" "$tmp/err" || grep -q "fewer units than usual" "$tmp/err" ||
    fail "150 open files: no word of the smaller run"
python3 - "$tmp/out" <<'EOF' || fail "the run with 150 open files"
import json, re, sys
d = json.load(open(sys.argv[1]))
io = [m for m in d["metrics"] if m["id"] == "io_job"][0]
assert all(isinstance(v, (int, float)) and v > 0 for v in io["values"].values()), io["values"]
units = int(re.match(r"(\d+) units", io["how"]).group(1))
assert 10 <= units <= (150 - 64) // 3, io["how"]
print("ok: 150 open files: the I/O-bound job ran with %d units" % units)
EOF
fi
expect_exit 1 "compare --quick with 40 open files" \
    bash -c 'ulimit -n 40 && exec "$0" compare --quick --json --quiet' "$plait"
grep -q "too few for the I/O-bound job" "$tmp/err" || fail "40 open files: no word of the skipped job"
cp "$tmp/err" "$tmp/err40"
python3 - "$tmp/out" "$tmp/err40" <<'EOF' || fail "the run with 40 open files"
import json, sys
d = json.load(open(sys.argv[1]))
err = open(sys.argv[2]).read()
io = [m for m in d["metrics"] if m["id"] == "io_job"][0]
assert all(v is None for v in io["values"].values()), io["values"]
# a skipped job is described as skipped, not by the counts of a run that did not happen
assert io["how"].startswith("skipped") and "0 units" not in io["how"], io["how"]
names = {"coroutine": "coroutines", "thread": "threads", "process": "processes"}
for m in d["metrics"]:
    for model, v in m["values"].items():
        assert v is None or (isinstance(v, (int, float)) and v > 0), (m["id"], model, v)
        if v is None:  # a step that failed says so, by name
            assert "%s: " % names[model] in err and "failed" in err, (m["id"], model, err)
waits = [r for r in d["recommendations"] if r["work"].startswith("many concurrent waits")]
assert not waits, "a recommendation drawn from an I/O-bound job that did not run"
print("ok: 40 open files: the I/O-bound job is not measured, and said so; no figure is 0")
EOF

# Descriptors the tool inherited count against the limit: 85 left open by its parent
# under a limit of 200 (the run sized its job from the limit alone, 45 units, and its
# threads and processes failed "Too many open files"; a helper's audit of session 63).
if $one_thread_runs; then
expect_exit 0 "compare --quick with 200 open files, 85 of them inherited" \
    bash -c 'ulimit -n 200 && for _ in $(seq 85); do exec {fd}</dev/null; done &&
             exec "$0" compare --quick --json --quiet' "$plait"
python3 - "$tmp/out" <<'EOF' || fail "the run with 85 descriptors inherited"
import json, re, sys
d = json.load(open(sys.argv[1]))
io = [m for m in d["metrics"] if m["id"] == "io_job"][0]
assert all(isinstance(v, (int, float)) and v > 0 for v in io["values"].values()), io["values"]
units = int(re.match(r"(\d+) units", io["how"]).group(1))
assert 10 <= units <= (200 - 85 - 64) // 3, io["how"]
print("ok: 85 descriptors inherited: the I/O-bound job ran with %d units" % units)
EOF
fi

# An address-space limit: the stacks are reserved whole (5,000 coroutines of 256 KiB),
# and glibc's malloc arenas took 64 MiB each; under `ulimit -v 700000` the memory steps
# and the threads' I/O-bound job failed (a helper's audit of session 63).  Not in a
# sanitizer build, whose shadow memory needs terabytes of address space.
if [ -z "$sanitizer" ]; then
expect_exit 0 "compare --quick under an address-space limit of 700 MB" \
    bash -c 'ulimit -v 700000 && exec "$0" compare --quick --json --quiet' "$plait"
grep -q "of address space left" "$tmp/err" || fail "700 MB of address space: no word of the smaller run"
python3 - "$tmp/out" <<'EOF' || fail "the run under an address-space limit"
import json, sys
d = json.load(open(sys.argv[1]))
for m in d["metrics"]:
    assert all(isinstance(v, (int, float)) and v > 0 for v in m["values"].values()), (m["id"], m["values"])
print("ok: 700 MB of address space: every figure measured")
EOF
fi

# ---- interrupted: exit 130, no report, no process of the run left ------------------------
# interrupt SIGNAL STEP: start a run in a session of its own, wait (bounded) until its
# progress names STEP, send SIGNAL to the whole session (as a terminal's Ctrl-C does)
interrupt() {
    local sig=$1 step=$2
    # (int.err goes too: the run's redirection is made after `&` returns, and the last
    # run's file, which may name STEP, was taken for this one's: the signal went before
    # this run began, "kill: No such process", and the run went on to exit 0)
    rm -f "$tmp/int.html" "$tmp/int.err" "$tmp"/.plait-report-*
    # SIGINT at its default: a background job of this script starts with it ignored,
    # which the tool leaves so
    env --default-signal=INT setsid "$plait" compare --quick --html "$tmp/int.html" \
        >"$tmp/int.out" 2>"$tmp/int.err" &
    local pid=$! waited=0
    until grep -q "$step" "$tmp/int.err" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null || [ "$waited" -ge 600 ]; then
            fail "$sig: the run never reached '$step'"; kill -KILL -- -"$pid" 2>/dev/null
            wait "$pid" 2>/dev/null; return
        fi
        sleep 0.05; waited=$((waited + 1))
    done
    kill -"$sig" -- -"$pid"
    local rc waited=0
    while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 400 ]; do sleep 0.05; waited=$((waited + 1)); done
    if kill -0 "$pid" 2>/dev/null; then
        fail "$sig during '$step': still running 20 s later"; kill -KILL -- -"$pid"
    fi
    wait "$pid"; rc=$?
    if [ "$rc" = 130 ]; then
        ok "$sig during '$step': exit 130"
    else # (what it said: a sanitizer's report ends a run with 66, say)
        fail "$sig during '$step': exit $rc, expected 130; its stderr ends:"; tail -60 "$tmp/int.err"
    fi
    grep -q "interrupted" "$tmp/int.err" || fail "$sig: no 'interrupted' message"
    [ -e "$tmp/int.html" ] && fail "$sig: a report was written"
    ls "$tmp"/.plait-report-* >/dev/null 2>&1 && fail "$sig: a temporary report was left"
    # plait kills a parent's children when it exits; give them a bounded moment to go
    waited=0
    while pgrep -s "$pid" >/dev/null && [ "$waited" -lt 100 ]; do sleep 0.05; waited=$((waited + 1)); done
    if pgrep -s "$pid" >/dev/null; then
        fail "$sig: processes of the run are left: $(pgrep -s "$pid" | tr '\n' ' ')"
        pkill -KILL -s "$pid"
    else
        ok "$sig: no process of the run left"
    fi
}
interrupt INT "coroutines: hand-off"
interrupt INT "processes: I/O-bound job"
interrupt TERM "threads: CPU-bound job"
# (a hang-up, the terminal closed, killed the tool and left .plait-report-PID behind)
interrupt HUP "threads: 64-byte messages"

# ---- interrupted after the last step, while the results are written: exit 130, no report
# (the signal was not looked at after the last step: the run went on, exit 0, and put its
# report in place; one that cut short a blocked write of the table exited 3)
# The table goes into a pipe of one page that nobody reads, and the table is longer: once
# anything is in the pipe, the tool is writing the table and its report is not in place.
timeout 300 python3 - "$plait" "$tmp" <<'EOF' || fail "SIGINT while the table is written"
import fcntl, glob, os, signal, struct, subprocess, sys, termios, time
plait, tmp = sys.argv[1:3]
report = os.path.join(tmp, "late.html")
r, w = os.pipe()
fcntl.fcntl(w, getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)
with open(os.path.join(tmp, "late.err"), "w") as err:
    p = subprocess.Popen([plait, "compare", "--quick", "--quiet", "--html", report],
                         stdout=w, stderr=err, start_new_session=True)
os.close(w)
def queued():
    return struct.unpack("i", fcntl.ioctl(r, termios.FIONREAD, b"\0" * 4))[0]
while queued() == 0 and p.poll() is None:
    time.sleep(0.05)
if p.poll() is not None:
    print("note: the pipe held the whole table (pages bigger than 4 KiB?): not checked")
    sys.exit(0)
assert not os.path.exists(report), "the report was in place before the table was written"
os.killpg(p.pid, signal.SIGINT)
while os.read(r, 65536):  # read on: a run that goes on can finish
    pass
rc = p.wait()
said = open(os.path.join(tmp, "late.err")).read()
assert rc == 130, "exit %d, expected 130; stderr: %s" % (rc, said)
assert "interrupted" in said, said
assert not os.path.exists(report), "a report was written"
assert not glob.glob(os.path.join(tmp, ".plait-report-*")), "a temporary report was left"
print("ok: SIGINT while the table is written: exit 130, no report")
EOF

if $one_thread_runs; then
# ---- results that cannot be written: exit 3, said once (it was said twice) --------------
if [ -e /dev/full ]; then
    "$plait" compare --quick --quiet >/dev/full 2>"$tmp/full.err"; rc=$?
    [ "$rc" = 3 ] && [ "$(grep -c "cannot write" "$tmp/full.err")" = 1 ] \
        && ok "compare > /dev/full: exit 3, one message" \
        || fail "compare > /dev/full: exit $rc; $(cat "$tmp/full.err")"
fi

# ---- a stale .plait-report-PID --------------------------------------------------------
# (a temporary file left under the tool's process id by a killed run, as every run of a
# container's first process has the same id, refused the run: "File exists")
mkdir "$tmp/stale"
(cd "$tmp/stale" && exec bash -c ': >.plait-report-$$; exec "$0" compare --quick --quiet --html r.html' \
    "$(cd "$OLDPWD" && realpath "$plait")" >"$tmp/stale.out" 2>"$tmp/stale.err"); rc=$?
[ "$rc" = 0 ] && grep -qi "<html" "$tmp/stale/r.html" \
    && [ "$(find "$tmp/stale" -name '.plait-report-*' | wc -l)" = 1 ] \
    && ok "compare --html with a stale temporary file of its process id: exit 0, report made" \
    || fail "compare --html with a stale temporary file of its process id: exit $rc; $(cat "$tmp/stale.err")"

# ---- a dangling link: the report is made at its target, or nothing is ------------------
# (written in place, a run whose output failed, or an interrupted one, left an empty
# report at the target)
mkdir -p "$tmp/dangle/sub"
ln -s sub/../target.html "$tmp/dangle/link.html"
if [ -e /dev/full ]; then
    "$plait" compare --quick --quiet --html "$tmp/dangle/link.html" >/dev/full 2>"$tmp/dangle.err"; rc=$?
    [ "$rc" = 3 ] && [ ! -e "$tmp/dangle/target.html" ] \
        && ok "compare --html through a dangling link > /dev/full: exit 3, no report" \
        || fail "compare --html through a dangling link > /dev/full: exit $rc, target $(ls -l "$tmp/dangle/target.html" 2>&1)"
fi
"$plait" compare --quick --quiet --html "$tmp/dangle/link.html" >/dev/null 2>"$tmp/dangle.err"; rc=$?
[ "$rc" = 0 ] && [ -L "$tmp/dangle/link.html" ] && grep -qi "<html" "$tmp/dangle/target.html" \
    && [ -z "$(find "$tmp/dangle" -name '.plait-report-*')" ] \
    && ok "compare --html through a dangling link: exit 0, the report at its target, the link kept" \
    || fail "compare --html through a dangling link: exit $rc; $(cat "$tmp/dangle.err")"

# ---- standard output closed (`>&-`): exit 3, and the table went into no file ------------
# (the report took the free number 1, and the table was written into it: exit 0)
rm -f "$tmp/closed.html"
"$plait" compare --quick --quiet --html "$tmp/closed.html" >&- 2>"$tmp/closed.err"; rc=$?
[ "$rc" = 3 ] && [ ! -e "$tmp/closed.html" ] && grep -q "cannot write" "$tmp/closed.err" \
    && ok "compare with stdout closed: exit 3, no report" \
    || fail "compare with stdout closed: exit $rc; $(head -c 300 "$tmp/closed.err")"

# ---- --html /dev/stdout, stdout appending to a file: the report follows the table -------
# (the report was renamed over the file: what it held and the table were lost)
echo "kept line" >"$tmp/log"
"$plait" compare --quick --quiet --html /dev/stdout >>"$tmp/log" 2>"$tmp/log.err"; rc=$?
[ "$rc" = 0 ] && [ "$(head -1 "$tmp/log")" = "kept line" ] && grep -q "^plait compare:" "$tmp/log" &&
    grep -qi "<html" "$tmp/log" \
    && ok "compare --html /dev/stdout >> file: the line, the table and the report kept" \
    || fail "compare --html /dev/stdout >> file: exit $rc; $(head -c 200 "$tmp/log")"

# ---- a reader that has gone (`plait ... 2>&1 | head -1`): exit 3, no temporary report --
# (SIGPIPE killed the tool at its first progress line: exit 141, .plait-report-PID left)
{ sleep 0.3; "$plait" compare --quick --html "$tmp/pipe.html"; } 2>&1 | true
rc=${PIPESTATUS[0]}
[ "$rc" = 3 ] && ok "compare into a closed pipe: exit 3" || fail "compare into a closed pipe: exit $rc"
ls "$tmp"/.plait-report-* >/dev/null 2>&1 && fail "closed pipe: a temporary report was left"
[ -e "$tmp/pipe.html" ] && fail "closed pipe: a report was written"
fi
# the tour stops at the first example whose output nobody reads (it ran all twelve)
start=$SECONDS
{ sleep 0.3; timeout 120 "$plait" tour 2>"$tmp/tourpipe.err"; } | true
rc=${PIPESTATUS[0]}
[ "$rc" = 3 ] && [ $((SECONDS - start)) -lt 20 ] && grep -q "cannot write" "$tmp/tourpipe.err" \
    && ok "tour into a closed pipe: exit 3, stopped" \
    || fail "tour into a closed pipe: exit $rc after $((SECONDS - start)) s; $(cat "$tmp/tourpipe.err")"

# ---- the tour, interrupted: exit 130 like every command (SIGTERM once killed it: 143) --
setsid "$plait" tour >"$tmp/tour.out" 2>"$tmp/tour.err" &
pid=$! waited=0
until grep -q "^== " "$tmp/tour.out" 2>/dev/null || ! kill -0 "$pid" 2>/dev/null ||
      [ "$waited" -ge 600 ]; do sleep 0.05; waited=$((waited + 1)); done
kill -TERM -- -"$pid" 2>/dev/null
waited=0
while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 600 ]; do sleep 0.05; waited=$((waited + 1)); done
kill -0 "$pid" 2>/dev/null && { fail "tour: still running 30 s after SIGTERM"; kill -KILL -- -"$pid"; }
wait "$pid"; rc=$?
[ "$rc" = 130 ] && grep -q "plait tour: interrupted after [0-9]* of 12" "$tmp/tour.err" \
    && ok "SIGTERM during the tour: exit 130, interrupted after the example running" \
    || fail "SIGTERM during the tour: exit $rc; $(cat "$tmp/tour.err")"

# ---- the tour, interrupted while its output waits for a reader: exit 130 too ----------
# (the write the signal cut short (EINTR) left an error on stdout, and the tour took it
# for output that could not be written: exit 3).  The pipe is full before the tour starts
# (one page, filled by the test), so its first write blocks; SIGINT comes once the tool
# is seen asleep in that write, and the test reads only once the tool has left it.
timeout 120 python3 - "$plait" "$tmp" <<'EOF' || fail "SIGINT while the tour's write is blocked"
import fcntl, os, platform, signal, subprocess, sys, time
plait, tmp = sys.argv[1:3]
r, w = os.pipe()
fcntl.fcntl(w, getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)
flags = fcntl.fcntl(w, fcntl.F_GETFL)
fcntl.fcntl(w, fcntl.F_SETFL, flags | os.O_NONBLOCK)
try:
    while True:
        os.write(w, b"x" * 512)
except BlockingIOError:
    pass
fcntl.fcntl(w, fcntl.F_SETFL, flags)
with open(os.path.join(tmp, "tourblocked.err"), "w") as err:
    p = subprocess.Popen([plait, "tour"], stdout=w, stderr=err, start_new_session=True)
os.close(w)
write_nr = {"x86_64": "1", "aarch64": "64"}.get(platform.machine())
def blocked_in():  # the system call the main thread sleeps in, "" while it runs
    try:
        with open("/proc/%d/syscall" % p.pid) as f:
            nr = f.read().split()[0]
        with open("/proc/%d/wchan" % p.pid) as f:
            wchan = f.read()
    except (OSError, IndexError):
        return ""
    if nr == "running" or nr == "-1":
        return ""
    return "write" if wchan.endswith("pipe_write") or nr == write_nr else nr
deadline = time.monotonic() + 60
while blocked_in() != "write":
    assert p.poll() is None, "the tour ended (exit %d) with its pipe full" % p.returncode
    assert time.monotonic() < deadline, "the tour never blocked in write"
    time.sleep(0.01)
os.killpg(p.pid, signal.SIGINT)
# Nothing reads yet, so the write can only end cut short (EINTR): wait until the tool
# sleeps in another call (the first example's timers) before reading.  (Read at once,
# the write could instead complete before the woken tool saw the signal.)
while blocked_in() in ("", "write"):
    assert p.poll() is None or p.returncode == 130, "exit %d before reading" % p.returncode
    if p.returncode is not None:
        break
    assert time.monotonic() < deadline, "the tour stayed in write after SIGINT"
    time.sleep(0.01)
out = b""
while True:  # read on: the example running finishes
    b = os.read(r, 65536)
    if not b:
        break
    out += b
rc = p.wait()
said = open(os.path.join(tmp, "tourblocked.err")).read()
assert rc == 130, "exit %d, expected 130; stderr: %s" % (rc, said)
assert "plait tour: interrupted after 1 of 12 examples" in said, said
assert "cannot write" not in said, said
assert b"== coroutines: tasks" not in out, "a second example started"
print("ok: SIGINT while the tour's write is blocked: exit 130, interrupted after 1 of 12")
EOF

# ---- interrupted while the report is written in place (/dev/stdout into a slow pipe):
# exit 130, and the message says the report may be cut short (it said "no report
# written" while its reader had the report's first part).  One more quick run: in the
# plain build only (the path is the tool's own code, no sanitizer's business).
if [ -z "$sanitizer" ]; then
timeout 300 python3 - "$plait" "$tmp" <<'EOF' || fail "SIGINT while a report is written in place"
import fcntl, os, signal, subprocess, sys, time
plait, tmp = sys.argv[1:3]
r, w = os.pipe()
fcntl.fcntl(w, getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)
with open(os.path.join(tmp, "inplace.err"), "w") as err:
    p = subprocess.Popen([plait, "compare", "--quick", "--quiet", "--json", "--html",
                          "/dev/stdout"], stdout=w, stderr=err, start_new_session=True)
os.close(w)
got = b""
while b"<!DOCTYPE" not in got:  # the JSON, then the report's start
    b = os.read(r, 1024)
    assert b, "the output ended before the report began"
    got += b
def blocked_writing():
    try:
        with open("/proc/%d/wchan" % p.pid) as f:
            return f.read().endswith("pipe_write")
    except OSError:
        return False
deadline = time.monotonic() + 60
while not blocked_writing():  # the report is longer than the pipe
    assert p.poll() is None, "the run ended (exit %d) with its pipe full" % p.returncode
    assert time.monotonic() < deadline, "the tool never blocked writing the report"
    time.sleep(0.01)
os.killpg(p.pid, signal.SIGINT)
while os.read(r, 65536):
    pass
rc = p.wait()
said = open(os.path.join(tmp, "inplace.err")).read()
assert rc == 130, "exit %d, expected 130; stderr: %s" % (rc, said)
assert "the report, written in place, may be cut short" in said, said
print("ok: SIGINT while the report is written in place: exit 130, said it may be cut short")
EOF
fi

if [ "$failures" -gt 0 ]; then
    echo "test_compare_cli: $failures failure(s)" >&2
    exit 1
fi
echo "test_compare_cli: all passed"
