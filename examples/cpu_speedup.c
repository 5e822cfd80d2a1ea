/* Work that only computes (counting primes by trial division) goes faster on more
 * threads, up to one per CPU: the same chunks, mapped over a pool of one thread and
 * then over a pool of one thread per CPU.  (Sleeping threads overlap on any machine;
 * computing threads overlap only on as many CPUs as there are.)  Python would say:
 *
 *     with ProcessPoolExecutor(n) as pool:     plait_pool_create(&pool,
 *         counts = pool.map(count_primes,          &(plait_pool_options){.threads = n});
 *                           ranges)            plait_pool_map(pool, count_primes, ranges,
 *     total = sum(counts)                                     CHUNKS, counts, NULL, ...);
 *
 * (a process pool there, because CPython's threads do not compute in parallel).
 */
#include "example.h"
#include "primes.h"

static void *count_primes(void *arg) { return (void *)(intptr_t)primes_in(arg); }

/* Count the primes over a pool of `threads`; 0 and *primes, *seconds, or the failure. */
static int count_on(unsigned threads, void *const *args, intptr_t *primes, double *seconds)
{
    plait_pool *pool;
    int r = plait_pool_create(&pool, &(plait_pool_options){.threads = threads, .name = "prime"});
    if (r < 0)
        return r;
    printf("  %5.3f s  %u thread%s: counting the primes below %d in %d chunks\n",
           example_elapsed(), threads, threads == 1 ? "" : "s", BOUND, CHUNKS);
    void *counts[CHUNKS];
    int64_t t0 = plait_now();
    r = plait_pool_map(pool, count_primes, args, CHUNKS, counts, NULL, PLAIT_FOREVER);
    *seconds = (double)(plait_now() - t0) / PLAIT_SEC;
    int d = plait_pool_destroy(pool);
    if (r < 0 || d < 0)
        return r < 0 ? r : d;
    *primes = 0;
    for (int i = 0; i < CHUNKS; i++)
        *primes += (intptr_t)counts[i];
    printf("  %5.3f s  %u thread%s: %ld primes in %.3f s\n", example_elapsed(), threads,
           threads == 1 ? "" : "s", (long)*primes, *seconds);
    return 0;
}

static void *run(void *arg)
{
    (void)arg;
    range ranges[CHUNKS];
    void *args[CHUNKS];
    primes_ranges(ranges, args);
    int cpus = plait_cpu_count();
    if (cpus > PLAIT_POOL_THREADS_MAX)
        cpus = PLAIT_POOL_THREADS_MAX;
    intptr_t one, many;
    double t1, tn;
    int r = count_on(1, args, &one, &t1);
    if (r == 0)
        r = count_on((unsigned)cpus, args, &many, &tn);
    if (r < 0)
        return PLAIT_FAIL(r);
    const char *s = cpus == 1 ? "" : "s";
    double speedup = t1 / tn;
    printf("             speed-up %.2fx with %d thread%s on %d CPU%s%s\n", speedup, cpus, s,
           plait_cpu_count(), s,
           cpus == 1                          ? " (one CPU: none to expect)"
           : speedup < 1 + (cpus - 1) * 0.5 ? " (less than expected: are the CPUs busy?)"
                                              : "");
    int right = one == PRIMES && many == PRIMES;
    printf("             answers: %s\n",
           right ? "the same, and right" : "WRONG (the two runs disagree or miss primes)");
    return right ? NULL : PLAIT_FAIL(-EIO);
}

int example_cpu_speedup(void) { return example_run(run, "primes on 1 thread, then on all"); }

EXAMPLE_MAIN(example_cpu_speedup)
