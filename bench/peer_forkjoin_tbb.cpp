// peer_forkjoin_tbb.cpp — oneTBB peer of bench_forkjoin.c: the same recursive fib,
// each call with n >= cutoff running both children in a tbb::task_group and
// waiting for it; below the cutoff, the same serial fib.
//
// The thread count is fixed with a tbb::task_arena of 1 or 2 slots (the calling
// thread takes one, so 1 means TBB runs everything on the caller and 2 adds one
// worker), plus tbb::global_control so TBB's worker pool is no bigger than that.
// Built with g++ -O2, as plait is with -O2.
//
// Usage: peer_forkjoin_tbb [reps]   (default 10: fib30.cut20 is computed 10 * reps times, fib25.cut2 reps times)
// Prints, for W in fib30.cut20 and fib25.cut2:
//   forkjoin.W tbb1 ms <wall>   forkjoin.W tbb1 tasks_per_s <rate>
//   forkjoin.W tbb2 ms <wall>   forkjoin.W tbb2 tasks_per_s <rate>
//   forkjoin.W tbb1-cpuK ms <wall, the arena of one pinned to CPU K>   (each CPU K)
//   forkjoin.W tbb1 cpu_spread <slowest tbb1-cpuK ms / fastest>
//   forkjoin.W tbb1-cpumean ms <harmonic mean of tbb1-cpuK ms>
//   forkjoin.W tbb speedup_2v1 <tbb1 ms / tbb2 ms>
//   forkjoin.W tbb speedup_2v1_cpumean <harmonic mean of tbb1-cpuK ms / tbb2 ms>
// (bench_cpus.h: the speed-up on CPUs of equal speed).  An arena of one runs on the
// calling thread alone, so pinning that thread pins it.
#include "bench_cpus.h"

#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <ctime>

static long cutoff;
static bench_cpus cpus;

static long long now_ns()
{
    timespec ts;
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
    tbb::task_group g;
    g.run([&] { x = fib_task(n - 1); });
    g.run([&] { y = fib_task(n - 2); });
    g.wait();
    return x + y;
}

// One fib(n) as a task in the arena, checked; wall ns.
static long long fib_once(tbb::task_arena &arena, long n, long expect)
{
    long r = 0;
    long long t0 = now_ns();
    arena.execute([&] {
        tbb::task_group g;
        g.run([&] { r = fib_task(n); });
        g.wait();
    });
    long long t = now_ns() - t0;
    if (r != expect) {
        std::fprintf(stderr, "peer_forkjoin_tbb: fib(%ld) gave %ld, not %ld\n", n, r, expect);
        std::exit(1);
    }
    return t;
}

// Mean ms of one fib(n) on an arena of `threads` over reps computations.
static double mean_ms(long n, int threads, long long reps, long expect)
{
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
    tbb::task_arena arena(threads);
    fib_once(arena, n, expect); // warm up: the arena's worker joins
    long long total = 0;
    for (long long i = 0; i < reps; i++)
        total += fib_once(arena, n, expect);
    return (double)total / (double)reps / 1e6;
}

static void workload(long n, long cut, long long reps)
{
    char name[64];
    std::snprintf(name, sizeof name, "forkjoin.fib%ld.cut%ld", n, cut);
    long expect = fib_serial(n);
    double tasks = (double)task_count(n, cut);
    double ms[3];
    cutoff = cut;
    bench_cpu_times per_cpu = {};
    for (int threads = 1; threads <= 2; threads++) {
        ms[threads] = mean_ms(n, threads, reps, expect);
        std::printf("%s tbb%d ms %.3f\n", name, threads, ms[threads]);
        std::printf("%s tbb%d tasks_per_s %.0f\n", name, threads, tasks / ms[threads] * 1e3);
        for (int i = 0; threads == 1 && i < cpus.count; i++) {
            bench_cpus_pin(&cpus, i);
            double cpu_ms = mean_ms(n, 1, reps, expect);
            bench_cpus_pin(&cpus, -1);
            std::printf("%s tbb1-cpu%d ms %.3f\n", name, cpus.list[i], cpu_ms);
            bench_cpu_times_add(&per_cpu, cpu_ms);
        }
    }
    std::printf("%s tbb1 cpu_spread %.2f\n", name, per_cpu.slowest / per_cpu.fastest);
    std::printf("%s tbb1-cpumean ms %.3f\n", name, bench_cpu_times_mean(&per_cpu));
    std::printf("%s tbb speedup_2v1 %.2f\n", name, ms[1] / ms[2]);
    std::printf("%s tbb speedup_2v1_cpumean %.2f\n", name,
                bench_cpu_times_mean(&per_cpu) / ms[2]);
    std::fflush(stdout);
}

int main(int argc, char **argv)
{
    long long reps = argc > 1 ? std::atoll(argv[1]) : 10;
    if (reps <= 0 || reps > LLONG_MAX / 10) { // 10 * reps: no overflow
        std::fprintf(stderr, "usage: %s [reps]\n", argv[0]);
        return 2;
    }
    bench_cpus_init(&cpus);
    workload(30, 20, 10 * reps);
    workload(25, 2, reps);
    return 0;
}
