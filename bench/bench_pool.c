/*
 * bench_pool.c — tiny tasks through a plait pool: submit N no-op tasks, then wait
 * for all of them; tasks per second.
 *
 * The pool has plait_cpu_count() workers (plait_pool_options .threads = 0, the
 * default), stated in the output.  The main thread, which is not a worker, submits
 * the N tasks (plait_pool_submit, each with a future) one after the other while the
 * workers already run them, then joins every future in order.  The figure is N over
 * the wall time from the first submit to the last join, so it covers a task's whole
 * life: the queue, the future, the run, the wake-up of the waiting thread, and the
 * join; ns_per_submit is the submitting part alone.  The figure is the second of
 * two rounds of N: the steady state, with the workers started and the memory of N
 * futures faulted in; the first round is printed too (tasks_per_s_cold).
 *
 * Fair: the peers do the same with the same worker count — submit N no-ops, then
 * wait for all: peer_threadpool.py (concurrent.futures.ThreadPoolExecutor, whose
 * submit also returns a future; the same N, as its rate per task falls as N grows)
 * and peer_mutex_queue.c (the textbook C pool:
 * one queue under a pthread mutex + condition variable, no futures at all, so the
 * floor of what a shared lock costs).
 *
 * Usage: bench_pool [tasks]   (default 1,000,000)
 * Prints:
 *   pool.noop plait workers <n>
 *   pool.noop plait tasks_per_s <rate>
 *   pool.noop plait tasks_per_s_cold <rate of the first round>
 *   pool.noop plait ns_per_submit <ns>
 */
#include "bench_common.h"

#include <string.h>

static plait_pool *pool;

static void *noop(void *arg)
{
    return arg;
}

/* Submit n no-ops and join them all; tasks/s.  *submit_ns gets the submit phase. */
static double measure(plait_task *tasks, long long n, double *submit_ns)
{
    long long t0 = bench_now();
    for (long long i = 0; i < n; i++)
        BENCH_CHECK(plait_pool_submit(pool, &tasks[i], noop, NULL));
    long long t1 = bench_now();
    for (long long i = 0; i < n; i++)
        BENCH_CHECK(plait_join(tasks[i], NULL, PLAIT_FOREVER));
    long long t2 = bench_now();
    *submit_ns = (double)(t1 - t0) / (double)n;
    return (double)n / ((double)(t2 - t0) / 1e9);
}

int main(int argc, char **argv)
{
    long long n = bench_count(argc, argv, 1000000LL, "tasks",
                              (long long)(PTRDIFF_MAX / sizeof(plait_task)));
    plait_task *tasks = malloc((size_t)n * sizeof *tasks);
    if (!tasks) {
        fprintf(stderr, "bench_pool: out of memory\n");
        return 1;
    }
    memset(tasks, 0, (size_t)n * sizeof *tasks); /* fault the handles' pages in now */
    plait_pool_options opt = {.threads = 0, .name = "bench"};
    BENCH_CHECK(plait_pool_create(&pool, &opt));
    double submit_ns;
    /* the first round warms up: workers up, the memory of n futures faulted in */
    double cold = measure(tasks, n, &submit_ns);
    double rate = measure(tasks, n, &submit_ns);
    printf("# pool.noop: %lld no-op tasks on a pool of %u workers (plait_cpu_count() = %d)\n",
           n, plait_pool_threads(pool), plait_cpu_count());
    printf("pool.noop plait workers %u\n", plait_pool_threads(pool));
    printf("pool.noop plait tasks_per_s %.0f\n", rate);
    printf("pool.noop plait tasks_per_s_cold %.0f\n", cold);
    printf("pool.noop plait ns_per_submit %.1f\n", submit_ns);
    BENCH_CHECK(plait_pool_destroy(pool));
    free(tasks);
    return 0;
}
