/*
 * bench_offload.c — what one plait_to_thread of a no-op costs a coroutine, one after
 * the other, in the two places it can run:
 *
 *   worker    the scheduler on the main thread: the default pool's workers run it;
 *   stand-in  the scheduler in a task of the default pool (plait_run inside a task),
 *             where each offload gets a thread of its own (a coroutine's wait runs no
 *             queued task): since session 62 an idle one kept from the last call.
 *
 * and, as the floor of what a thread per call costs, a pthread_create and pthread_join
 * of a no-op from a plain thread (`thread-per-call`): the stand-in path started and
 * ended a thread per call before session 62 (docs/BENCHMARKS.md has it measured).  Each figure is the median of 5
 * rounds of N calls after a warm-up round, in µs per call; `plait bench offload` and
 * bench/summarize.py give the stand-in's ratio to the two others.
 *
 * Usage: bench_offload [calls per round]   (default 20,000)
 * Prints:
 *   offload worker us_per_call <µs>
 *   offload stand-in us_per_call <µs>
 *   offload thread-per-call us_per_call <µs>
 */
#include "bench_common.h"

#include <pthread.h>

enum { ROUNDS = 5 };

static long long calls;

static void *noop(void *arg)
{
    return arg;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of ROUNDS rounds (after one not counted) of `calls` calls of one(), in µs
 * per call. */
static double median_us(void (*one)(void))
{
    double us[ROUNDS];
    for (int r = -1; r < ROUNDS; r++) {
        long long t0 = bench_now();
        for (long long i = 0; i < calls; i++)
            one();
        if (r >= 0)
            us[r] = (double)(bench_now() - t0) / 1e3 / (double)calls;
    }
    qsort(us, ROUNDS, sizeof us[0], by_value);
    return us[ROUNDS / 2];
}

static void offload_once(void)
{
    BENCH_CHECK(plait_to_thread(noop, NULL, NULL, PLAIT_FOREVER));
}

static void thread_once(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, noop, NULL) != 0 || pthread_join(t, NULL) != 0) {
        fprintf(stderr, "bench_offload: pthread_create failed\n");
        exit(1);
    }
}

static void *measure_offloads(void *out)
{
    *(double *)out = median_us(offload_once);
    return NULL;
}

static void *scheduler_in_a_task(void *out)
{
    BENCH_CHECK(plait_run(measure_offloads, out, NULL));
    return NULL;
}

int main(int argc, char **argv)
{
    calls = bench_count(argc, argv, 20000, "calls per round", LLONG_MAX / 1000);
    double worker, standin;
    BENCH_CHECK(plait_run(measure_offloads, &worker, NULL));
    plait_task task;
    BENCH_CHECK(plait_pool_submit(plait_pool_default(), &task, scheduler_in_a_task,
                                  &standin));
    BENCH_CHECK(plait_join(task, NULL, PLAIT_FOREVER));
    double thread = median_us(thread_once);
    printf("# offload: plait_to_thread of a no-op from a coroutine, %lld calls a round, "
           "median of %d rounds\n",
           calls, ROUNDS);
    printf("offload worker us_per_call %.2f\n", worker);
    printf("offload stand-in us_per_call %.2f\n", standin);
    printf("offload thread-per-call us_per_call %.2f\n", thread);
    return 0;
}
