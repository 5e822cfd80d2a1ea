#!/usr/bin/env python3
"""peer_threadpool.py — Python peer of bench_pool.c: submit N no-op calls to a
concurrent.futures.ThreadPoolExecutor, then wait for all their futures; tasks/s.

Workers = the CPUs this process may run on (len(os.sched_getaffinity(0))).  plait's
default pool has plait_cpu_count() workers, which also counts a cgroup's CPU quota:
under a quota the two can differ, and bench/summarize.py then warns that the figures
do not compare.

N is plait's (1,000,000 by default, as bench_pool's; bench/run.sh gives both the
same N): Python's rate per task falls as N grows, so a smaller N would flatter it.
Measured on the 2-core test machine, at different loads: 10,000 tasks at
120,000-130,000/s, 100,000 at 66,000-98,000/s, 1,000,000 at 54,000-77,000/s; the
1,000,000 futures take some 1.8 GB of memory, the run about 20 s.

Usage: peer_threadpool.py [tasks]   (default 1,000,000)
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
    print(f"# pool.noop: {n} no-op tasks on {workers} workers")
    print(f"pool.noop python workers {workers}")
    print(f"pool.noop python tasks_per_s {rate:.0f}")
    print(f"pool.noop python ns_per_submit {submit_ns:.1f}")


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
    if n <= 0:
        sys.exit(f"usage: {sys.argv[0]} [tasks]")
    main(n)
