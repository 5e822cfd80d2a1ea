#!/usr/bin/env python3
"""peer_mp.py — Python's process tools, for bench_process.c's figures, measured the
way bench_process measures plait:

  process.start_join mp-fork / mp-spawn   multiprocessing.Process(target=noop)
                                          .start() + .join(), microseconds each, with
                                          the fork and the spawn start methods;
  procpool.roundtrip.free python-pool / python-ppe
                                          Pool(1).apply(noop) and
                                          ProcessPoolExecutor(1).submit(noop).result(),
                                          microseconds per round trip;
  procpool.map python-pool / python-ppe / python-ppe-chunked
                                          Pool().map(square, range(n)) (its default
                                          chunking), ProcessPoolExecutor().map with its
                                          default chunksize of 1 (on a tenth of n: it is
                                          a rate) and with chunks of n/(4 x workers) as
                                          Pool picks; items per second.  One worker per
                                          CPU of the affinity mask (not every CPU of the
                                          machine), each says its count (`workers`):
                                          plait's pool has plait_cpu_count(), which also
                                          heeds a cgroup's CPU quota, and
                                          bench/summarize.py warns where the counts
                                          differ; the best of three
                                          maps after a warm-up, as bench_process takes
                                          plait's (the chunksize-1 map is timed once: at
                                          some 6,000 items/s three would add half a
                                          minute to a run).

Usage: peer_mp.py [scale]   (default 1)
"""
import concurrent.futures as cf
import multiprocessing as mp
import os
import sys
import time


def noop(*args):
    return None


def square(x):
    return x * x


def start_join(method, n):
    ctx = mp.get_context(method)
    for _ in range(max(1, n // 10)):
        p = ctx.Process(target=noop)
        p.start()
        p.join()
    t0 = time.perf_counter()
    for _ in range(n):
        p = ctx.Process(target=noop)
        p.start()
        p.join()
    return (time.perf_counter() - t0) / n * 1e6


def round_trip(call, n):
    for _ in range(n // 10 + 1):
        call()
    t0 = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - t0) / n * 1e6


def best_rate(run_map, n, tries=3):
    """Items per second of the fastest of `tries` maps of n squares (bench_process takes
    plait's map as the best of three); each map's results are checked."""
    best = None
    for _ in range(tries):
        t0 = time.perf_counter()
        out = run_map()
        took = time.perf_counter() - t0
        if list(out) != [i * i for i in range(n)]:  # every item, as bench_process checks
            sys.exit(f"peer_mp.py: a map of {n} items gave wrong results")
        best = took if best is None or took < best else best
    return n / best


def main():
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    if scale <= 0:
        sys.exit(__doc__)
    mp.set_start_method("fork")
    print(f"process.start_join mp-fork us_per_proc {start_join('fork', 200 * scale):.1f}")
    print(f"process.start_join mp-spawn us_per_proc {start_join('spawn', 20 * scale):.1f}")
    n_rt = 2000 * scale
    with mp.Pool(1) as pool:
        us = round_trip(lambda: pool.apply(noop), n_rt)
    print(f"procpool.roundtrip.free python-pool us_per_rt {us:.1f}")
    with cf.ProcessPoolExecutor(1) as ex:
        us = round_trip(lambda: ex.submit(noop).result(), n_rt)
    print(f"procpool.roundtrip.free python-ppe us_per_rt {us:.1f}")
    n = 1000000
    # the CPUs of the affinity mask (os.cpu_count() counts every CPU of the machine,
    # taskset or a cpuset aside); plait_cpu_count() heeds a cgroup's quota too: each
    # says its count, and summarize.py warns where they differ
    workers = len(os.sched_getaffinity(0))
    for impl in ("python-pool", "python-ppe", "python-ppe-chunked"):
        print(f"procpool.map {impl} workers {workers}")
    with mp.Pool(workers) as pool:
        pool.map(square, range(1000))
        rate = best_rate(lambda: pool.map(square, range(n)), n)
    print(f"procpool.map python-pool items_per_s {rate:.0f}")
    with cf.ProcessPoolExecutor(workers) as ex:
        list(ex.map(square, range(100)))
        rate = best_rate(lambda: list(ex.map(square, range(n // 10))), n // 10, tries=1)
        chunked = best_rate(lambda: list(ex.map(square, range(n), chunksize=n // (4 * workers))), n)
    print(f"procpool.map python-ppe items_per_s {rate:.0f}")
    print(f"procpool.map python-ppe-chunked items_per_s {chunked:.0f}")


if __name__ == "__main__":
    main()
