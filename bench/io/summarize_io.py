#!/usr/bin/env python3
"""summarize_io.py — medians and ratios from the raw lines bench/io/run_io.sh collects.

Input: `# servers http <server>...` and `# servers echo <server>...` (the servers run_io.sh
ran for the HTTP figures and for the echo figures), `# run N` lines, each followed by
that run's `<figure> <server> <value>` lines, and the notes run_io.sh writes of what did
not run: `# FAILED <server> <step> run <i>: <reason>` and `# SKIPPED <figure>: <why>`.
Output: the notes, under "FAILED OR SKIPPED", when there are any; one line per figure
and server with its median over the runs (and min..max); then one line per figure:
every server's median ("not measured" for a server it ran that has none) and, where
plait was measured, the ratio plait/peer for each peer, which is the median of the
per-run ratios: plait and the peer were measured moments apart in each run, so the
machine's mood of the moment cancels.  A ratio over only k of plait's n runs says
"(k of n runs)", and one that differs by more than 5% from the ratio of the two
medians has that beside it.  Whether a ratio above 1 favours plait depends on the
figure, and the line says which way is better.  A last line says whether everything
was measured.

Exit status: 0 when everything was measured; 1 (after printing everything) when a
step failed or a figure of a server it ran is missing.  A figure skipped on purpose
(a SKIPPED note, which gives why) is reported, not counted.

Usage: summarize_io.py RESULTS_FILE
"""
import collections
import os
import statistics
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
# bench/summarize.py's formats, ratios, notes and last line
from summarize import fmt, print_notes, ratio, read_note, skipped_why, verdict  # noqa: E402

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
    notes = []  # (kind, text), in the order written
    servers = {}  # "http" or "echo" -> the servers run_io.sh ran for those figures
    run = 1
    with open(path) as f:
        for line in f:
            note = read_note(line)
            if note:
                notes.append(note)
                continue
            parts = line.split()
            if len(parts) == 3 and parts[:2] == ["#", "run"]:
                run = int(parts[2])
                continue
            if len(parts) >= 3 and parts[:2] == ["#", "servers"]:
                servers[parts[2]] = parts[3:]
                continue
            if len(parts) != 3 or parts[0].startswith("#"):
                continue
            figure, server, value = parts
            try:
                runs[(figure, server)][run] = float(value)
            except ValueError:
                continue
    return runs, notes, servers


def order(server):
    return (SERVERS.index(server) if server in SERVERS else len(SERVERS), server)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    runs, notes, servers = load(sys.argv[1])
    figures = list(FIGURES) + sorted({f for f, _ in runs} - set(FIGURES))
    print_notes(notes)
    print(f"{'figure':36} {'median':>9}  (min..max, runs)")
    for figure in figures:
        for server in sorted({s for f, s in runs if f == figure}, key=order):
            vals = list(runs[(figure, server)].values())
            name = f"{figure} {server}"
            print(f"{name:36} {fmt(statistics.median(vals)):>9}  "
                  f"({fmt(min(vals))}..{fmt(max(vals))}, {len(vals)})")
    print()
    missing = []  # what was not measured and not skipped on purpose
    for figure in figures:
        measured = {s for f, s in runs if f == figure}
        # the servers run for this figure (results without the `# servers` lines: those
        # that have it)
        ran = servers.get("echo" if figure.startswith("echo") else "http", [])
        listed = sorted(measured | set(ran), key=order)
        if not listed:
            continue
        label, unit, higher = FIGURES.get(figure, (figure, "", True))
        better = "higher" if higher else "lower"
        why = skipped_why(notes, figure)
        if why is not None and not measured:
            print(f"{label}: skipped: {why}")
            continue
        parts = []
        for s in listed:
            if s in measured:
                parts.append(f"{s} {fmt(statistics.median(runs[(figure, s)].values()))}")
            else:
                parts.append(f"{s}: not measured")
                missing.append(f"{figure} {s}")
        ratios = []
        for me in ("plait", "plait-epoll"):
            mine = runs.get((figure, me))
            for s in listed:
                if s.startswith("plait") or not mine or s not in measured:
                    continue
                _, text = ratio(mine, runs[(figure, s)])
                if text is None:
                    ratios.append(f"{me}/{s}: no run measured both")
                    missing.append(f"{figure} {me}/{s}")
                else:
                    ratios.append(f"{me}/{s} {text}")
        line = f"{label} ({unit}, {better} is better): " + ", ".join(parts)
        if ratios:
            line += "; ratio " + ", ".join(ratios)
        print(line)
    sys.exit(verdict(notes, missing))


if __name__ == "__main__":
    main()
