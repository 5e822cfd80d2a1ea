/*
 * peer_forkjoin_omp.c — OpenMP peer of bench_forkjoin.c: the same recursive fib,
 * each call with n >= cutoff making both children `#pragma omp task`s and waiting
 * with `#pragma omp taskwait`; below the cutoff, the same serial C fib.
 *
 * The team is 1 or 2 threads (a parallel region with num_threads(t), the way
 * OMP_NUM_THREADS=1/2 would set it); one thread of the team starts the root in an
 * `omp single` and the others take tasks.  Everything else is gcc's libgomp as it
 * comes (default wait policy).  Built with gcc -O2 -fopenmp, as plait is with -O2.
 *
 * Expect a poor 2-thread speed-up: in libgomp a thread waiting in taskwait runs only
 * the waiting task's own children, never a grandchild, so once the other thread has
 * taken a child it sleeps until that whole subtree is done; and all tasks go through
 * one team-wide queue under a lock, which the one-task-per-call fib25 hammers.
 * That is how the standard OpenMP fib behaves with gcc, not a flaw of this peer.
 *
 * Usage: peer_forkjoin_omp [reps]   (default 10: fib30.cut20 is computed 10 * reps times,
 *       fib25.cut2 reps times)
 * Prints, for W in fib30.cut20 and fib25.cut2:
 *   forkjoin.W omp1 ms <wall>   forkjoin.W omp1 tasks_per_s <rate>
 *   forkjoin.W omp2 ms <wall>   forkjoin.W omp2 tasks_per_s <rate>
 *   forkjoin.W omp1-cpuK ms <wall, the team of one pinned to CPU K>   (each CPU K)
 *   forkjoin.W omp1 cpu_spread <slowest omp1-cpuK ms / fastest>
 *   forkjoin.W omp1-cpumean ms <harmonic mean of omp1-cpuK ms>
 *   forkjoin.W omp speedup_2v1 <omp1 ms / omp2 ms>
 *   forkjoin.W omp speedup_2v1_cpumean <harmonic mean of omp1-cpuK ms / omp2 ms>
 * (bench_cpus.h: the speed-up on CPUs of equal speed).  The pinned teams of one run
 * before any team of two, so libgomp's pooled thread starts unpinned.
 */
#define _GNU_SOURCE
#include "bench_cpus.h"

#include <omp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long cutoff;
static bench_cpus cpus;

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long fib_serial(long n)
{
    return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2);
}

static long long task_count(long n, long cut)
{
    return n < cut ? 1 : 1 + task_count(n - 1, cut) + task_count(n - 2, cut);
}

static long fib_task(long n)
{
    if (n < cutoff)
        return fib_serial(n);
    long x, y;
#pragma omp task shared(x)
    x = fib_task(n - 1);
#pragma omp task shared(y)
    y = fib_task(n - 2);
#pragma omp taskwait
    return x + y;
}

/* One fib(n) as a task on a team of `threads`, checked; wall ns. */
static long long fib_once(long n, int threads, long expect)
{
    long r = 0;
    int team = 0;
    long long t0 = now_ns();
#pragma omp parallel num_threads(threads)
#pragma omp single
    {
        team = omp_get_num_threads();
#pragma omp task shared(r)
        r = fib_task(n);
#pragma omp taskwait
    }
    long long t = now_ns() - t0;
    if (team != threads) { /* (OMP_THREAD_LIMIT, OMP_DYNAMIC: a figure for another size) */
        fprintf(stderr, "peer_forkjoin_omp: a team of %d threads ran, not %d\n", team,
                threads);
        exit(1);
    }
    if (r != expect) {
        fprintf(stderr, "peer_forkjoin_omp: fib(%ld) gave %ld, not %ld\n", n, r, expect);
        exit(1);
    }
    return t;
}

/* Mean ms of one fib(n) on a team of `threads` over reps computations. */
static double mean_ms(long n, int threads, long long reps, long expect)
{
    fib_once(n, threads, expect); /* warm up: the team's threads exist */
    long long total = 0;
    for (long long i = 0; i < reps; i++)
        total += fib_once(n, threads, expect);
    return (double)total / (double)reps / 1e6;
}

static void workload(long n, long cut, long long reps)
{
    char name[64];
    snprintf(name, sizeof name, "forkjoin.fib%ld.cut%ld", n, cut);
    long expect = fib_serial(n);
    double tasks = (double)task_count(n, cut);
    double ms[3];
    cutoff = cut;
    bench_cpu_times per_cpu = {0};
    for (int threads = 1; threads <= 2; threads++) {
        ms[threads] = mean_ms(n, threads, reps, expect);
        printf("%s omp%d ms %.3f\n", name, threads, ms[threads]);
        printf("%s omp%d tasks_per_s %.0f\n", name, threads, tasks / ms[threads] * 1e3);
        for (int i = 0; threads == 1 && i < cpus.count; i++) {
            bench_cpus_pin(&cpus, i);
            double cpu_ms = mean_ms(n, 1, reps, expect);
            bench_cpus_pin(&cpus, -1);
            printf("%s omp1-cpu%d ms %.3f\n", name, cpus.list[i], cpu_ms);
            bench_cpu_times_add(&per_cpu, cpu_ms);
        }
    }
    printf("%s omp1 cpu_spread %.2f\n", name, per_cpu.slowest / per_cpu.fastest);
    printf("%s omp1-cpumean ms %.3f\n", name, bench_cpu_times_mean(&per_cpu));
    printf("%s omp speedup_2v1 %.2f\n", name, ms[1] / ms[2]);
    printf("%s omp speedup_2v1_cpumean %.2f\n", name, bench_cpu_times_mean(&per_cpu) / ms[2]);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    long long reps = argc > 1 ? atoll(argv[1]) : 10;
    if (reps <= 0 || reps > LLONG_MAX / 10) { /* 10 * reps: no overflow */
        fprintf(stderr, "usage: %s [reps]\n", argv[0]);
        return 2;
    }
    omp_set_dynamic(0);
    bench_cpus_init(&cpus);
    workload(30, 20, 10 * reps);
    workload(25, 2, reps);
    return 0;
}
