/*
 * bench_cpus.h — the one-thread time on each CPU, for the fork-join speed-ups.
 *
 * Why.  A speed-up on two threads is the one-thread time over the two-thread time,
 * and the one thread runs on one CPU.  On a virtual machine the CPUs need not run at
 * the same speed: on the 2-CPU machine these figures were taken on, one vCPU ran the
 * serial fib at 0.55-0.6 of the other's speed for seconds at a time (a neighbour on
 * the host, it seems), then at par again.  A one-thread run that lands on the fast
 * CPU then caps the two-thread speed-up at 1 + 0.57 = 1.57x, one on the slow CPU
 * lifts it to 2.75x, and which it is, is chance.
 *
 * So the fork-join programs also time one thread pinned to each CPU in turn (the
 * calling thread pinned before the pool, team or arena starts, so that its one thread
 * runs there), and print the harmonic mean of those times — the one-thread time on an
 * average CPU of the machine — over the N-thread time: the speed-up on CPUs of equal
 * speed.  On a machine whose CPUs run alike it is the plain speed-up; N threads on
 * CPUs of mixed speed are measured as they run.  They print the spread (slowest
 * CPU's one-thread time over the fastest's) with it, which says how uneven the
 * machine was during the run.
 *
 * C and C++ (the oneTBB peer includes it too); Linux only, as the benchmarks are.
 */
#ifndef PLAIT_BENCH_CPUS_H
#define PLAIT_BENCH_CPUS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

enum { BENCH_CPUS_MAX = 64 }; /* one-thread runs on the first 64 CPUs at most */

typedef struct bench_cpus {
    cpu_set_t allowed; /* the process's CPUs, restored after each pinned run */
    int count;
    int list[BENCH_CPUS_MAX];
} bench_cpus;

static inline void bench_cpus_init(bench_cpus *c)
{
    if (sched_getaffinity(0, sizeof c->allowed, &c->allowed) != 0) {
        perror("sched_getaffinity");
        exit(1);
    }
    c->count = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && c->count < BENCH_CPUS_MAX; cpu++)
        if (CPU_ISSET(cpu, &c->allowed))
            c->list[c->count++] = cpu;
}

/* Pin the calling thread (and the threads it starts from now on) to the i-th CPU of
 * c, or (i < 0) give it back all of c's CPUs. */
static inline void bench_cpus_pin(const bench_cpus *c, int i)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    if (i >= 0)
        CPU_SET(c->list[i], &one);
    if (sched_setaffinity(0, sizeof one, i >= 0 ? &one : &c->allowed) != 0) {
        perror("sched_setaffinity");
        exit(1);
    }
}

/* Accumulates the per-CPU one-thread times of one workload. */
typedef struct bench_cpu_times {
    double inverse_sum; /* sum of 1 / ms */
    double fastest, slowest;
    int count;
} bench_cpu_times;

static inline void bench_cpu_times_add(bench_cpu_times *t, double ms)
{
    t->inverse_sum += 1.0 / ms;
    t->fastest = t->count == 0 || ms < t->fastest ? ms : t->fastest;
    t->slowest = t->count == 0 || ms > t->slowest ? ms : t->slowest;
    t->count++;
}

/* The one-thread time on an average CPU: the harmonic mean of the pinned times. */
static inline double bench_cpu_times_mean(const bench_cpu_times *t)
{
    return (double)t->count / t->inverse_sum;
}

#endif
