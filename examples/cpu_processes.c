/* CPU-bound work on processes and on threads: the same primes, counted in the same
 * chunks on a pool of one thread per CPU and on a pool of one process per CPU.  Both
 * use every core (in C, unlike CPython, threads compute in parallel); the process pool
 * pays for its isolation with a copy of each argument and result through shared memory
 * and a hop to another process per chunk, which chunking makes small.
 */
#include "example.h"
#include "primes.h"

#include <string.h>

static void *on_thread(void *arg) { return (void *)(intptr_t)primes_in(arg); }

static ssize_t on_process(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len;
    (void)cap;
    long n = primes_in(arg);
    memcpy(out, &n, sizeof n);
    return sizeof n;
}

static void *run(void *arg)
{
    (void)arg;
    range ranges[CHUNKS];
    void *args[CHUNKS];
    primes_ranges(ranges, args);
    unsigned cpus = (unsigned)plait_cpu_count();
    if (cpus > PLAIT_PROCPOOL_MAX)
        cpus = PLAIT_PROCPOOL_MAX;

    plait_pool *threads;
    int r = plait_pool_create(&threads, &(plait_pool_options){.threads = cpus});
    if (r < 0)
        return PLAIT_FAIL(r);
    void *counts[CHUNKS];
    int64_t t0 = plait_now();
    r = plait_pool_map(threads, on_thread, args, CHUNKS, counts, NULL, PLAIT_FOREVER);
    double thread_s = (double)(plait_now() - t0) / PLAIT_SEC;
    plait_pool_destroy(threads);
    if (r < 0) /* (no figure: the count of a map that failed is not the primes') */
        return PLAIT_FAIL(r);
    long by_threads = 0;
    for (int i = 0; i < CHUNKS; i++)
        by_threads += (intptr_t)counts[i];
    printf("  %5.3f s  %u %-10s %ld primes in %.3f s\n", example_elapsed(), cpus,
           cpus == 1 ? "thread:" : "threads:", by_threads, thread_s);

    plait_procpool *procs;
    r = plait_procpool_create(&procs, &(plait_procpool_options){.processes = cpus});
    if (r < 0)
        return PLAIT_FAIL(r);
    long per_chunk[CHUNKS];
    t0 = plait_now();
    r = plait_procpool_map(procs, on_process, ranges, sizeof(range), CHUNKS, per_chunk,
                           sizeof(long), NULL, 1, PLAIT_FOREVER);
    double proc_s = (double)(plait_now() - t0) / PLAIT_SEC;
    plait_procpool_destroy(procs);
    if (r < 0)
        return PLAIT_FAIL(r);
    long by_procs = 0;
    for (int i = 0; i < CHUNKS; i++)
        by_procs += per_chunk[i];
    printf("  %5.3f s  %u %-10s %ld primes in %.3f s (%.2fx the time above)\n",
           example_elapsed(), cpus, cpus == 1 ? "process:" : "processes:", by_procs, proc_s,
           proc_s / thread_s);
    int right = by_threads == PRIMES && by_procs == PRIMES;
    printf("             answers: %s\n", right ? "the same, and right" : "WRONG");
    return right ? NULL : PLAIT_FAIL(-EIO);
}

int example_cpu_processes(void) { return example_run(run, "primes on threads and on processes"); }

EXAMPLE_MAIN(example_cpu_processes)
