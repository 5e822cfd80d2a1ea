#!/usr/bin/env python3
"""peer_threadpool.py — Python peer of bench_pool.c: submit N no-op calls to a
concurrent.futures.ThreadPoolExecutor, then wait for all their futures; tasks/s.

Workers = the CPUs this process may run on (len(os.sched_getaffinity(0))), as
plait's default pool has.  N is smaller than plait's (100,000 by default against
plait's 1,000,000) because each Python task costs about 20 microseconds; the
figure is a rate per task, so the two compare fairly all the same (measured once
on the 2-core test machine: 1,000,000 tasks ran at 58,000/s, 100,000 at about
50,000/s; only a much smaller N runs faster per task: 10,000 at about 120,000/s,
so the --quick run of bench/run.sh flatters Python).

Usage: peer_threadpool.py [tasks]   (default 100,000)
Prints: pool.noop python workers <n>
        pool.noop python tasks_per_s <rate>
        pool.noop python ns_per_submit <ns>
"""
import concurrent.futures
import os
import sys
import time


def noop():
    return None


def measure(ex, n):
    t0 = time.perf_counter_ns()
    futures = [ex.submit(noop) for _ in range(n)]
    t1 = time.perf_counter_ns()
    concurrent.futures.wait(futures)
    t2 = time.perf_counter_ns()
    return n / ((t2 - t0) / 1e9), (t1 - t0) / n


def main(n):
    workers = len(os.sched_getaffinity(0))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as ex:
        measure(ex, max(1, n // 10))  # warm up: the workers are started lazily
        rate, submit_ns = measure(ex, n)
    print(f"# pool.noop: {n} no-op tasks on {workers} workers (compare rates per task)")
    print(f"pool.noop python workers {workers}")
    print(f"pool.noop python tasks_per_s {rate:.0f}")
    print(f"pool.noop python ns_per_submit {submit_ns:.1f}")


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    if n <= 0:
        sys.exit(f"usage: {sys.argv[0]} [tasks]")
    main(n)
