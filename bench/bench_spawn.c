/*
 * bench_spawn.c — ns per task to spawn, run and join an empty coroutine.
 *
 * Tasks are started in batches of 1000 and then joined one by one, so the figure
 * is the whole life of a short task: plait_spawn (a stack slot from the cache and
 * a future), the first switch into it, its return, and plait_join taking its
 * outcome.  Each batch is in flight at once, as the Go and asyncio peers' batches
 * are, so stacks really are in use side by side and cannot all be one hot slot.
 *
 * Peers: peer_spawn.go (goroutine + sync.WaitGroup), peer_asyncio_spawn.py
 * (create_task + gather).
 *
 * Usage: bench_spawn [tasks]   (default 1,000,000, rounded up to whole batches)
 * Prints: spawn plait ns_per_task <ns>
 */
#include "bench_common.h"

#define BATCH 1000

static void *empty(void *arg)
{
    return arg;
}

static double measure(long long n)
{
    static plait_task tasks[BATCH];
    long long t0 = bench_now();
    for (long long done = 0; done < n; done += BATCH) {
        for (int i = 0; i < BATCH; i++)
            BENCH_CHECK(plait_spawn(&tasks[i], empty, NULL));
        for (int i = 0; i < BATCH; i++)
            BENCH_CHECK(plait_join(tasks[i], NULL, PLAIT_FOREVER));
    }
    return (double)(bench_now() - t0) / (double)n;
}

static void *bench_main(void *arg)
{
    long long n = *(long long *)arg;
    measure(n / 10 + BATCH); /* warm up: fill the scheduler's stack cache */
    printf("spawn plait ns_per_task %.1f\n", measure(n));
    return NULL;
}

int main(int argc, char **argv)
{
    long long n = bench_count(argc, argv, 1000000LL, "tasks", LLONG_MAX - (BATCH - 1));
    n = (n + BATCH - 1) / BATCH * BATCH;
    BENCH_CHECK(plait_run(bench_main, &n, NULL));
    return 0;
}
