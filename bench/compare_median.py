#!/usr/bin/env python3
"""Run `plait compare --json` several times and print the median of every figure.

    python3 bench/compare_median.py PLAIT [--runs N] [--quick]

One run of `plait compare` takes each figure as the median of a few batches; on a
shared machine the figures still move from run to run, so docs/BENCHMARKS.md quotes
the medians over several runs that this prints, with their range, and the median
length of a run (for --quick: the "under 10 s" of issue 6).

A run that fails (a status other than 0, as `plait compare` ends when a step failed;
no JSON; no end within 900 s) is named on standard error with its status and the
tool's messages, and left out: its figures are not counted.  The medians are those of
the runs that succeeded, as long as they are more than half of the runs asked for
(the header says how many, and which failed); with fewer nothing is printed and the
status is 1.
"""
import argparse
import collections
import json
import statistics
import subprocess
import sys

TIMEOUT_S = 900


def run_once(cmd):
    """One run of `plait compare`: (its JSON, None), or (None, why it failed)."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None, "no end within %d s" % TIMEOUT_S
    except OSError as e:
        return None, str(e)
    if done.returncode != 0:
        messages = "; ".join(line for line in done.stderr.splitlines() if line.strip())
        return None, "status %d: %s" % (done.returncode, messages or "no message")
    try:
        return json.loads(done.stdout), None
    except ValueError as e:
        return None, "its output is no JSON (%s)" % e


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("plait")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs wants a positive number")
    cmd = [args.plait, "compare", "--json", "--quiet"] + (["--quick"] if args.quick else [])
    runs, failed = [], []
    for i in range(args.runs):
        result, why = run_once(cmd)
        if result is None:
            failed.append(str(i + 1))
            print("run %d of %d failed: %s" % (i + 1, args.runs, why), file=sys.stderr)
        else:
            runs.append(result)
            print("run %d of %d: %.1f s" % (i + 1, args.runs, result["elapsed_s"]), file=sys.stderr)
    failures = "run%s %s failed" % ("s" if len(failed) > 1 else "", ", ".join(failed))
    if 2 * len(runs) <= args.runs:
        sys.exit("compare_median.py: %s: too few for a median (more than half of the %d must succeed)"
                 % (failures, args.runs))
    first = runs[0]
    m = first["machine"]
    print("machine: %d CPUs, %s, Linux %s, poller %s; %d of %d %s runs%s, each %.1f s (median; %.1f-%.1f)"
          % (m["cpus"], m["cpu_model"], m["kernel"], m["io_backend"], len(runs), args.runs,
             "quick" if args.quick else "full", " (%s)" % failures if failed else "",
             statistics.median(r["elapsed_s"] for r in runs),
             min(r["elapsed_s"] for r in runs), max(r["elapsed_s"] for r in runs)))
    models = [x["id"] for x in first["models"]]
    print("%-28s %-6s " % ("figure", "unit") + " ".join("%-24s" % x for x in models))
    for k, metric in enumerate(first["metrics"]):
        cells = []
        series = [(model, lambda r, model=model: r["metrics"][k]["values"][model]) for model in models]
        # A metric's extra figures by label, from every run: a run whose step failed has
        # none ("not measured"), so the j-th extra of one run need not be the j-th of
        # another, nor of the first run (its absence there hid it; a later run without it
        # ended the script with an IndexError, every run's figures lost).
        labels = []
        for r in runs:
            labels += [e["label"] for e in r["metrics"][k]["extra"] if e["label"] not in labels]
        series += [(label, lambda r, label=label: next(
                       (e["value"] for e in r["metrics"][k]["extra"] if e["label"] == label), None))
                   for label in labels]
        for label, get in series:
            vals = [get(r) for r in runs if get(r) is not None]
            cells.append(("%.4g (%.3g-%.3g)" % (statistics.median(vals), min(vals), max(vals))
                          + ("" if len(vals) == len(runs) else " [%d of %d runs]" % (len(vals), len(runs))))
                         if vals else "not measured")
        n = len(models)
        print("%-28s %-6s " % (metric["id"], metric["unit"]) + " ".join("%-24s" % c for c in cells[:n]))
        for (label, _), cell in zip(series[n:], cells[n:]):
            print("%-28s %-6s %s: %s" % ("", "", label, cell))
    for k, fact in enumerate(first["facts"]):
        cells = []
        for model in models:
            answer, times = collections.Counter(r["facts"][k]["values"][model] for r in runs).most_common(1)[0]
            cells.append(answer if times == len(runs) else "%s (%d of %d)" % (answer, times, len(runs)))
        print("%-28s        " % fact["id"] + " ".join("%-24s" % c for c in cells))


if __name__ == "__main__":
    main()
