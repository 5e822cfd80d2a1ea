#!/usr/bin/env python3
"""peer_asyncio_spawn.py — Python asyncio peer of bench_spawn.c and bench_switch.c.

spawn:  create_task() of an empty coroutine in batches of 1000, then gather() the
        batch; ns per task.
switch: two tasks each awaiting asyncio.sleep(0) in turn; ns per switch (each
        sleep(0) hands the loop to the other task).

Usage: peer_asyncio_spawn.py [tasks]   (default 100,000; the switch test does
       the same number of sleeps per task)
Prints: spawn asyncio ns_per_task <ns>
        switch asyncio ns_per_op <ns>
"""
import asyncio
import sys
import time

BATCH = 1000


async def empty():
    return None


async def spawn(n):
    t0 = time.perf_counter_ns()
    for _ in range(n // BATCH):
        await asyncio.gather(*[asyncio.create_task(empty()) for _ in range(BATCH)])
    return (time.perf_counter_ns() - t0) / n


async def yielder(n):
    for _ in range(n):
        await asyncio.sleep(0)


async def switch(n):
    t0 = time.perf_counter_ns()
    await asyncio.gather(asyncio.create_task(yielder(n)), asyncio.create_task(yielder(n)))
    return (time.perf_counter_ns() - t0) / (2 * n)


async def main(n):
    await spawn(max(BATCH, n // 10))  # warm up
    print(f"spawn asyncio ns_per_task {await spawn(n):.1f}")
    await switch(max(1, n // 10))
    print(f"switch asyncio ns_per_op {await switch(n):.1f}")


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    if n <= 0:
        sys.exit(f"usage: {sys.argv[0]} [tasks]")
    n = (n + BATCH - 1) // BATCH * BATCH
    asyncio.run(main(n))
