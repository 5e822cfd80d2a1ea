#!/usr/bin/env python3
"""summarize.py — medians and ratios from the raw lines bench/run.sh collects.

Input lines: `<run> <bench> <impl> <unit> <value>` (run numbers from 1), and the notes
run.sh writes of what did not run: `# FAILED <program> run <i>: <reason>` and
`# SKIPPED <bench>: <why>` (a bench, or a bench's prefix, not measured on purpose).

Output, in order:
  - the notes, under "FAILED OR SKIPPED", when there are any;
  - one line per figure with its median over the runs (and min..max, runs);
  - one line per comparison: plait's median, each peer's median, and the ratio
    plait/peer, which is the median of the per-run ratios: plait and the peer were
    measured side by side in each run, so the machine's mood of the moment cancels.
    Where the peer was measured in only k of plait's n runs the ratio says "(k of n
    runs)"; where the ratio of the two medians differs from it by more than 5% it is
    printed beside it ("of the medians ...").  A side that has no figure is said to be
    "not measured".  Where the issue set a goal against a peer, the line ends with
    whether the median ratio meets it, or "NOT CHECKED" and why;
  - a WARNING for every run in which plait's pool and a peer's had different worker
    counts (plait_cpu_count() counts the affinity mask and the cgroup's CPU quota, the
    peers the affinity mask only): their figures do not compare;
  - a last line: complete, or INCOMPLETE and what is missing.

Exit status: 0 when everything was measured; 1 (after printing everything) when a
program failed, a figure, peer or goal was not measured, or worker counts differed.  A
part skipped on purpose (a SKIPPED note, which gives why) is reported, not counted.

Usage: summarize.py RESULTS_FILE
"""
import collections
import math
import statistics
import sys

# Figures whose negative value says "never" (bench_memory's ms_to_half_back: -1 when the
# memory did not come back within the idle time): later than any time, not earlier.
NEVER_IF_NEGATIVE = {"ms_to_half_back"}


def read_note(line):
    """('FAILED' or 'SKIPPED', the rest of the line) for a note run.sh or run_io.sh
    wrote of what did not run, else None."""
    for kind in ("FAILED", "SKIPPED"):
        if line.startswith(f"# {kind} "):
            return kind, line[len(kind) + 3:].strip()
    return None


def skipped_why(notes, name):
    """Why `name` (a bench or a figure) was skipped, by a `SKIPPED <name or a prefix of
    it>: <why>` note; None when it was not."""
    for kind, text in notes:
        what, _, why = text.partition(":")
        if kind == "SKIPPED" and (name == what or name.startswith(what + ".")):
            return why.strip()
    return None


def print_notes(notes):
    if notes:
        print("FAILED OR SKIPPED:")
        for kind, text in notes:
            print(f"  {kind} {text}")
        print()


def load(path):
    runs = collections.defaultdict(dict)  # (bench, impl, unit) -> {run: value}
    notes = []  # (kind, text), in the order written
    with open(path) as f:
        for line in f:
            note = read_note(line)
            if note:
                notes.append(note)
                continue
            parts = line.split()
            if len(parts) != 5:
                continue
            run, bench, impl, unit, value = parts
            try:
                v = float(value)
                if unit in NEVER_IF_NEGATIVE and v < 0:
                    v = math.inf
                runs[(bench, impl, unit)][int(run)] = v
            except ValueError:
                continue
    return runs, notes


def fmt_ratio(r):
    return f"{r:.2f}" if r >= 0.1 else f"{r:.2g}"


def fmt(v):
    if v == math.inf:
        return "never"
    if v >= 1000:
        return f"{v:.0f}"
    if v >= 100:
        return f"{v:.1f}"
    return f"{v:.2f}"


def ratio(mine, theirs):
    """(ratio, text) of plait's figures `mine` to a peer's `theirs` ({run: value}): the
    median of the per-run ratios; the text adds "k of n runs" when the peer has a figure
    in only k of plait's n runs, and the ratio of the two medians where it differs from
    the median ratio by more than 5%.  (None, None) when no run has both."""
    same = [r for r in mine if r in theirs and theirs[r] > 0]
    if not same:
        return None, None
    r = statistics.median(mine[x] / theirs[x] for x in same)
    asides = []
    if len(same) < len(mine):
        asides.append(f"{len(same)} of {len(mine)} runs")
    their_median = statistics.median(theirs.values())
    if their_median > 0:
        of_medians = statistics.median(mine.values()) / their_median
        if abs(of_medians - r) > 0.05 * abs(r):
            asides.append(f"of the medians {fmt_ratio(of_medians)}")
    return r, fmt_ratio(r) + (f" ({'; '.join(asides)})" if asides else "")


def comparisons(keys):
    """(label, unit word, plait key, [(peer name, peer key)], goal) for what run.sh
    measures (a key without a figure is "not measured"); goal is None or (peer name,
    "<=" or ">=", ratio plait/peer)."""
    out = [
        ("switch (bare context)", "ns", ("switch", "plait-context", "ns_per_op"),
         [("boost", ("switch", "boost", "ns_per_op")),
          ("ucontext", ("switch", "ucontext", "ns_per_op"))]),
        ("switch", "ns", ("switch", "plait", "ns_per_op"),
         [("boost", ("switch", "boost", "ns_per_op")),
          ("ucontext", ("switch", "ucontext", "ns_per_op")),
          ("asyncio", ("switch", "asyncio", "ns_per_op"))]),
        ("spawn", "ns", ("spawn", "plait", "ns_per_task"),
         [("go1", ("spawn", "go1", "ns_per_task")),
          ("go", ("spawn", "go", "ns_per_task")),
          ("asyncio", ("spawn", "asyncio", "ns_per_task"))]),
        ("chan", "ns", ("chan", "plait", "ns_per_msg"),
         [("go1", ("chan", "go1", "ns_per_msg"))]),
    ]
    out = [c + (None,) for c in out]
    # The thread strand.  Fork-join: wall ms of one fib on 1 and 2 threads, and the
    # 2-thread speed-up (higher is better, so a ratio above 1 favours plait).
    for work in ("fib30.cut20", "fib25.cut2"):
        bench = f"forkjoin.{work}"
        for t in (1, 2):
            out.append((f"forkjoin {work} {t} thread{'s' if t > 1 else ''}", "ms",
                        (bench, f"plait{t}", "ms"),
                        [(p, (bench, f"{p}{t}", "ms")) for p in ("omp", "tbb", "go")],
                        None))
        # one thread on an average CPU: each runtime's one thread pinned to each CPU
        # in turn, where unpinned they need not run on the same CPU (plait's on a
        # worker it starts, the peers' on the calling thread)
        out.append((f"forkjoin {work} 1 thread on CPUs of equal speed", "ms",
                    (bench, "plait1-cpumean", "ms"),
                    [(p, (bench, f"{p}1-cpumean", "ms")) for p in ("omp", "tbb")],
                    None))
        out.append((f"forkjoin {work} speed-up 2/1 (higher is better)", "x",
                    (bench, "plait", "speedup_2v1"),
                    [(p, (bench, p, "speedup_2v1")) for p in ("omp", "tbb", "go")],
                    None))
        # over the one-thread time on an average CPU (bench/bench_cpus.h); Go has none
        out.append((f"forkjoin {work} speed-up 2/1 on CPUs of equal speed (higher is better)",
                    "x", (bench, "plait", "speedup_2v1_cpumean"),
                    [(p, (bench, p, "speedup_2v1_cpumean")) for p in ("omp", "tbb")],
                    None))
    # Python runs as many tasks as plait and the mutex+condvar pool (run.sh): its rate
    # per task falls as N grows (peer_threadpool.py)
    out.append(("pool no-op tasks/s (higher is better)", "/s",
                ("pool.noop", "plait", "tasks_per_s"),
                [("python", ("pool.noop", "python", "tasks_per_s")),
                 ("mutexq", ("pool.noop", "mutexq", "tasks_per_s"))],
                ("python", ">=", 100)))
    # futex: the floor, no looking before a sleep (the goal's peer); futex-look: plait's
    # own policy by hand, 20 us of looking before a sleep (peer_futex_pingpong.c)
    # (thread-thread: the channels' hand-off without a scheduler, for reading the other
    # two; the goal is set for a coroutine's wake-ups)
    for place in ("samecpu", "twocpu"):
        for variant in ("coro-thread", "coro-coro", "thread-thread"):
            out.append((f"wakeup {place} {variant} round trip", "us",
                        (f"wakeup.{place}", f"plait-{variant}", "us_per_rt"),
                        [(p, (f"wakeup.{place}", p, "us_per_rt")) for p in ("futex", "futex-look")],
                        ("futex", "<=", 1.5) if variant != "thread-thread" else None))
    # The process strand.
    out.append(("process start+join", "us", ("process.start_join", "plait", "us_per_proc"),
                [(p, ("process.start_join", p, "us_per_proc"))
                 for p in ("fork", "fork-here", "posix_spawn", "mp-fork", "mp-spawn")], None))
    # shmfutex: the floor (the goal's peer); shmfutex-look: 50 us of looking before a
    # sleep, as plait's process pool does (peer_shm_pingpong.c); Python's pools
    # (peer_mp.py) only unpinned
    for place, python in (("free", ["python-pool", "python-ppe"]), ("samecpu", [])):
        bench = f"procpool.roundtrip.{place}"
        out.append((f"process pool round trip ({place})", "us", (bench, "plait", "us_per_rt"),
                    [(p, (bench, p, "us_per_rt")) for p in ["shmfutex", "shmfutex-look"] + python],
                    ("shmfutex", "<=", 2)))
    out.append(("process pool map items/s (higher is better)", "/s",
                ("procpool.map", "plait", "items_per_s"),
                [(p, ("procpool.map", p, "items_per_s"))
                 for p in ("python-pool", "python-ppe", "python-ppe-chunked")],
                ("python-pool", ">=", 100)))
    out.append(("process pool crash recovery", "us", ("procpool.recovery", "plait", "us"), [], None))
    out.append(("queue 64 B messages/s (higher is better)", "/s",
                ("queue.small", "plait", "msgs_per_s"),
                [(p, ("queue.small", p, "msgs_per_s")) for p in ("pipe", "pipe1m")],
                ("pipe", ">=", 1)))
    # bench_queue's 16 x 64 KiB queue holds 1 MiB in flight, as the 1 MiB pipe does: the
    # goal is against that one; the default pipe (64 KiB) is an extra column
    out.append(("queue 64 KiB MB/s (higher is better)", "MB/s",
                ("queue.large", "plait", "mb_per_s"),
                [(p, ("queue.large", p, "mb_per_s")) for p in ("pipe1m", "pipe")],
                ("pipe1m", ">=", 1)))
    # an offload from a coroutine whose scheduler runs in a pool task (a stand-in
    # thread, kept idle between calls) against one that a worker runs and against a
    # thread started and joined per call: no goal, the cost of that path
    out.append(("offload from a coroutine in a pool task (us per call)", "us",
                ("offload", "stand-in", "us_per_call"),
                [(p, ("offload", p, "us_per_call")) for p in ("worker", "thread-per-call")],
                None))
    counts = sorted({int(b.split(".")[1]) for b, i, u in keys
                     if b.startswith("memory.") and i == "plait"})
    for n in counts:
        for stack in ("default", "min"):
            out.append((f"memory {n} {stack}-stack", "B",
                        (f"memory.{n}.{stack}", "plait", "bytes_per_task_rss"),
                        [("go", (f"memory.{n}", "go", "bytes_per_task_rss"))], None))
    return out


def worker_warnings(runs):
    """A WARNING line for every run in which plait's pool and a peer's had different
    worker counts (`<bench> <impl> workers <n>` lines)."""
    out = []
    for (bench, impl, unit), mine in sorted(runs.items()):
        if impl != "plait" or unit != "workers":
            continue
        for (b, peer, u), theirs in sorted(runs.items()):
            if b != bench or u != "workers" or peer == "plait":
                continue
            for r in sorted(mine):
                if r in theirs and theirs[r] != mine[r]:
                    out.append(f"WARNING: {bench} run {r}: plait ran {mine[r]:g} workers, "
                               f"{peer} {theirs[r]:g}: their figures do not compare "
                               "(plait_cpu_count() counts the affinity mask and the cgroup's "
                               "CPU quota, the peer the affinity mask only)")
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    runs, notes = load(sys.argv[1])
    print_notes(notes)
    print(f"{'figure':48} {'median':>7}  (min..max, runs)")
    for key in sorted(runs):
        vals = list(runs[key].values())
        name = " ".join(key)
        print(f"{name:48} {fmt(statistics.median(vals)):>7}  "
              f"({fmt(min(vals))}..{fmt(max(vals))}, {len(vals)})")
    print()
    missing = []  # what was not measured and not skipped on purpose
    for label, unit, pk, peers, goal in comparisons(runs.keys()):
        why = skipped_why(notes, pk[0])
        if why is not None and pk not in runs:
            unchecked = (f", goal plait/{goal[0]} {goal[1]} {goal[2]}: NOT CHECKED (skipped)"
                         if goal else "")
            print(f"{label}: skipped: {why}{unchecked}")
            continue
        mine = runs.get(pk)
        if mine:
            parts = [f"plait {fmt(statistics.median(mine.values()))} {unit}"]
        else:
            parts = ["plait: not measured"]
            missing.append(f"{label}: plait")
        ratios = []
        found = {}
        for name, key in peers:
            theirs = runs.get(key)
            if not theirs:
                parts.append(f"{name}: not measured")
                missing.append(f"{label}: {name}")
                continue
            parts.append(f"{name} {fmt(statistics.median(theirs.values()))} {unit}")
            if not mine:
                continue
            found[name], text = ratio(mine, theirs)
            if text is None:
                ratios.append(f"ratio plait/{name}: no run measured both")
                missing.append(f"{label}: ratio plait/{name}")
            else:
                ratios.append(f"ratio plait/{name} {text}")
        if goal:
            name, op, bound = goal
            r = found.get(name)
            if r is None:
                if not mine:
                    why = "plait not measured"
                elif not runs.get(dict(peers)[name]):
                    why = "peer not measured"
                else:
                    why = "no run measured both"
                ratios.append(f"goal plait/{name} {op} {bound}: NOT CHECKED ({why})")
                missing.append(f"{label}: goal plait/{name}")
            else:
                met = r <= bound if op == "<=" else r >= bound
                ratios.append(f"goal plait/{name} {op} {bound}: {'met' if met else 'NOT met'}")
        print(f"{label}: " + ", ".join(parts + ratios))
    warnings = worker_warnings(runs)
    if warnings:
        print()
        print("\n".join(warnings))
    sys.exit(verdict(notes, missing, warnings))


def verdict(notes, missing, warnings=()):
    """Print the last line: complete, or INCOMPLETE and what is missing; the exit
    status (1 when something failed, was missing or warned of)."""
    failed = [text for kind, text in notes if kind == "FAILED"]
    print()
    if failed or missing or warnings:
        print("INCOMPLETE: " + ", ".join(
            f"{len(what)} {name}" for what, name in
            ((failed, "failed (FAILED above)"),
             (missing, "not measured (figures, peers, ratios, goals)"),
             (warnings, "run(s) whose worker counts differ (WARNING above)")) if what))
        return 1
    print("complete: every figure, peer and goal measured"
          + (" (but for the parts skipped above)" if notes else ""))
    return 0

if __name__ == "__main__":
    main()
