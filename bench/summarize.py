#!/usr/bin/env python3
"""summarize.py — medians and ratios from the raw lines bench/run.sh collects.

Input lines: `<run> <bench> <impl> <unit> <value>` (run numbers from 1).
Output: one line per figure with its median over the runs (and min..max), then
one line per comparison: plait's median, each peer's median, and the ratio
plait/peer, which is the median of the per-run ratios: plait and the peer were
measured side by side in each run, so the machine's mood of the moment cancels.
Where the issue set a goal against a peer, the line ends with whether the median
ratio meets it.

Usage: summarize.py RESULTS_FILE
"""
import collections
import math
import statistics
import sys

# Figures whose negative value says "never" (bench_memory's ms_to_half_back: -1 when the
# memory did not come back within the idle time): later than any time, not earlier.
NEVER_IF_NEGATIVE = {"ms_to_half_back"}


def load(path):
    runs = collections.defaultdict(dict)  # (bench, impl, unit) -> {run: value}
    with open(path) as f:
        for line in f:
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
    return runs


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


def comparisons(keys):
    """(label, unit word, plait key, [(peer name, peer key)], goal) for what was
    measured; goal is None or (peer name, "<=" or ">=", ratio plait/peer)."""
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
    out.append(("pool no-op tasks/s (higher is better)", "/s",
                ("pool.noop", "plait", "tasks_per_s"),
                [("python", ("pool.noop", "python", "tasks_per_s")),
                 ("mutexq", ("pool.noop", "mutexq", "tasks_per_s"))],
                ("python", ">=", 100)))
    for place in ("samecpu", "twocpu"):
        for variant in ("coro-thread", "coro-coro"):
            out.append((f"wakeup {place} {variant} round trip", "us",
                        (f"wakeup.{place}", f"plait-{variant}", "us_per_rt"),
                        [("futex", (f"wakeup.{place}", "futex", "us_per_rt"))],
                        ("futex", "<=", 1.5)))
    # The process strand.
    out.append(("process start+join", "us", ("process.start_join", "plait", "us_per_proc"),
                [(p, ("process.start_join", p, "us_per_proc"))
                 for p in ("fork", "fork-here", "posix_spawn", "mp-fork", "mp-spawn")], None))
    for place in ("free", "samecpu"):
        bench = f"procpool.roundtrip.{place}"
        out.append((f"process pool round trip ({place})", "us", (bench, "plait", "us_per_rt"),
                    [(p, (bench, p, "us_per_rt")) for p in ("shmfutex", "python-pool", "python-ppe")],
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
    out.append(("queue 64 KiB MB/s (higher is better)", "MB/s",
                ("queue.large", "plait", "mb_per_s"),
                [(p, ("queue.large", p, "mb_per_s")) for p in ("pipe", "pipe1m")],
                ("pipe", ">=", 1)))
    counts = sorted({int(b.split(".")[1]) for b, i, u in keys
                     if b.startswith("memory.") and i == "plait"})
    for n in counts:
        for stack in ("default", "min"):
            out.append((f"memory {n} {stack}-stack", "B",
                        (f"memory.{n}.{stack}", "plait", "bytes_per_task_rss"),
                        [("go", (f"memory.{n}", "go", "bytes_per_task_rss"))], None))
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    runs = load(sys.argv[1])
    print(f"{'figure':48} {'median':>7}  (min..max, runs)")
    for key in sorted(runs):
        vals = list(runs[key].values())
        name = " ".join(key)
        print(f"{name:48} {fmt(statistics.median(vals)):>7}  "
              f"({fmt(min(vals))}..{fmt(max(vals))}, {len(vals)})")
    print()
    for label, unit, pk, peers, goal in comparisons(runs.keys()):
        if pk not in runs:
            continue
        mine = runs[pk]
        parts = [f"plait {fmt(statistics.median(mine.values()))} {unit}"]
        ratios = []
        found = {}
        for name, key in peers:
            if key not in runs:
                continue
            theirs = runs[key]
            parts.append(f"{name} {fmt(statistics.median(theirs.values()))} {unit}")
            same = [r for r in mine if r in theirs and theirs[r] > 0]
            if same:
                ratio = statistics.median(mine[r] / theirs[r] for r in same)
                found[name] = ratio
                ratios.append(f"ratio plait/{name} {fmt_ratio(ratio)}")
        if goal and goal[0] in found:
            name, op, bound = goal
            met = found[name] <= bound if op == "<=" else found[name] >= bound
            ratios.append(f"goal plait/{name} {op} {bound}: {'met' if met else 'NOT met'}")
        print(f"{label}: " + ", ".join(parts + ratios))


if __name__ == "__main__":
    main()
