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
                                          Pool picks; items per second.

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
    workers = os.cpu_count() or 1
    with mp.Pool(workers) as pool:
        pool.map(square, range(1000))
        t0 = time.perf_counter()
        out = pool.map(square, range(n))
        rate = n / (time.perf_counter() - t0)
        assert out[999] == 998001
    print(f"procpool.map python-pool items_per_s {rate:.0f}")
    with cf.ProcessPoolExecutor(workers) as ex:
        list(ex.map(square, range(100)))
        t0 = time.perf_counter()
        out = list(ex.map(square, range(n // 10)))
        rate = (n // 10) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        out = list(ex.map(square, range(n), chunksize=n // (4 * workers)))
        chunked = n / (time.perf_counter() - t0)
        assert out[999] == 998001
    print(f"procpool.map python-ppe items_per_s {rate:.0f}")
    print(f"procpool.map python-ppe-chunked items_per_s {chunked:.0f}")


if __name__ == "__main__":
    main()
