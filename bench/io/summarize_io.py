#!/usr/bin/env python3
"""summarize_io.py — medians and ratios from the raw lines bench/io/run_io.sh collects.

Input: `# run N` lines, each followed by that run's `<figure> <server> <value>` lines.
Output: one line per figure and server with its median over the runs (and
min..max), then one line per figure: every server's median and, where plait was
measured, the ratio plait/peer for each peer, which is the median of the per-run
ratios: plait and the peer were measured moments apart in each run, so the
machine's mood of the moment cancels.  Whether a ratio above 1 favours plait
depends on the figure, and the line says which way is better.

Usage: summarize_io.py RESULTS_FILE
"""
import collections
import os
import statistics
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from summarize import fmt, fmt_ratio  # noqa: E402  (bench/summarize.py's formats)

# figure -> (label, unit, higher is better), in the order they are printed
FIGURES = {
    "http50_rps": ("HTTP hello, 50 connections", "req/s", True),
    "http50_p99_us": ("HTTP hello, 50 connections, p99 latency", "us", False),
    "http50_cpu_us_per_req": ("HTTP hello, 50 connections, server CPU per request",
                              "us", False),
    "http1_rps": ("HTTP hello, 1 connection", "req/s", True),
    "http1_p99_us": ("HTTP hello, 1 connection, p99 latency", "us", False),
    "http1_cpu_us_per_req": ("HTTP hello, 1 connection, server CPU per request", "us", False),
    "echo100_rtps": ("echo, 100 connections x 64 B ping-pong", "round trips/s", True),
    "echo100_cpu_us_per_rt": ("echo, 100 connections, server CPU per round trip", "us", False),
    "idle10k_kib_per_conn": ("memory per idle connection (10,000)", "KiB", False),
}
SERVERS = ["plait", "plait-epoll", "epoll", "libuv", "go", "asyncio", "nginx"]


def load(path):
    runs = collections.defaultdict(dict)  # (figure, server) -> {run: value}
    run = 1
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[:2] == ["#", "run"]:
                run = int(parts[2])
                continue
            if len(parts) != 3 or parts[0].startswith("#"):
                continue
            figure, server, value = parts
            try:
                runs[(figure, server)][run] = float(value)
            except ValueError:
                continue
    return runs


def order(server):
    return (SERVERS.index(server) if server in SERVERS else len(SERVERS), server)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    runs = load(sys.argv[1])
    figures = list(FIGURES) + sorted({f for f, _ in runs} - set(FIGURES))
    print(f"{'figure':36} {'median':>9}  (min..max, runs)")
    for figure in figures:
        for server in sorted({s for f, s in runs if f == figure}, key=order):
            vals = list(runs[(figure, server)].values())
            name = f"{figure} {server}"
            print(f"{name:36} {fmt(statistics.median(vals)):>9}  "
                  f"({fmt(min(vals))}..{fmt(max(vals))}, {len(vals)})")
    print()
    for figure in figures:
        servers = sorted({s for f, s in runs if f == figure}, key=order)
        if not servers:
            continue
        label, unit, higher = FIGURES.get(figure, (figure, "", True))
        better = "higher" if higher else "lower"
        parts = [f"{s} {fmt(statistics.median(runs[(figure, s)].values()))}"
                 for s in servers]
        ratios = []
        for me in ("plait", "plait-epoll"):
            mine = runs.get((figure, me))
            for s in servers:
                if s.startswith("plait") or not mine:
                    continue
                theirs = runs[(figure, s)]
                same = [r for r in mine if r in theirs and theirs[r] > 0]
                if same:
                    ratio = statistics.median(mine[r] / theirs[r] for r in same)
                    ratios.append(f"{me}/{s} {fmt_ratio(ratio)}")
        line = f"{label} ({unit}, {better} is better): " + ", ".join(parts)
        if ratios:
            line += "; ratio " + ", ".join(ratios)
        print(line)


if __name__ == "__main__":
    main()
