/*
 * bench_forkjoin.c — fork-join on a plait pool: recursive Fibonacci as pool tasks.
 *
 * Every call fib(n) is a pool task.  With n >= cutoff it submits both children to
 * the same pool (plait_pool_submit) and joins them (plait_join: inside a pool task
 * the join runs queued tasks meanwhile, and idle workers steal); below the cutoff
 * it computes fib(n) serially.  Two workloads:
 *
 *   fib30.cut20  fib(30), n < 20 serial: 465 tasks, 233 of them leaves of a few
 *                microseconds — coarse tasks, how the pool scales on real work;
 *   fib25.cut2   fib(25), one task per call (n < 2 is the leaf): 242,785 tasks
 *                that do nothing but fork and join — the per-task overhead.
 *
 * Each runs on a pool of 1 worker and of 2 workers (plait_pool_create .threads; a
 * second argument, `bench_forkjoin REPS MAX`, goes on doubling up to MAX workers, to
 * see the scaling on a bigger machine), two ways:
 *
 *   plaitN               the timing loop is itself a task of the pool: it submits
 *                        the root and joins it (a helping join, so its worker runs
 *                        the root), N threads compute and no other thread takes
 *                        part;
 *   plaitN-from-outside  the main thread, not one of the pool's, submits the root
 *                        and joins it: N workers compute, and every fib pays two
 *                        wake-ups between threads (a worker for the root, the main
 *                        thread for the result), tens of microseconds each on a
 *                        virtual machine.
 *
 * The figure is the mean wall time of one fib over `reps` computations (after one
 * untimed warm-up), its tasks/s (tasks = calls that were tasks, the root included),
 * and the N-worker speed-up over one worker (of plaitN).  The result is checked against the serial
 * fib every time.  One worker is also timed pinned to each CPU in turn, and the
 * speed-up is given a second time over the harmonic mean of those times: the
 * speed-up on CPUs of equal speed, which a virtual machine's CPUs need not be
 * (bench_cpus.h says why and how).
 *
 * Fair: the peers (peer_forkjoin_omp.c, peer_forkjoin_tbb.cpp, peer_forkjoin.go)
 * run the same recursion with the same cutoffs — both children are tasks, then a
 * wait — on 1 and 2 threads, and in each the thread that times the loop is one of
 * the N that compute (TBB's arena.execute gives the caller a slot, OpenMP's master
 * thread is in the team and runs `single`, Go's main goroutine is scheduled on the
 * same GOMAXPROCS threads): plaitN is the same arrangement.  The serial leaves are
 * the same C code for plait and OpenMP (gcc -O2), C++ for TBB (g++ -O2); Go's
 * compiler makes its own leaves, so the "serial" figure printed here (plain
 * recursion, no tasks) is the C baseline.  "serial-split" is the floor of one thread:
 * the same calls as the tasks (split down to the cutoff, the leaves serial) made as
 * plain calls, so plait1 over it is what the runtime adds, and the work that one
 * worker runs cannot take less (the compiler's recursion of a whole fib(30) is not the
 * same instructions as its 233 leaves).
 *
 * Usage: bench_forkjoin [reps]   (default 10: fib30.cut20 is computed 10 * reps times,
 *       fib25.cut2 reps times)
 * Prints, for W in fib30.cut20 and fib25.cut2:
 *   forkjoin.W serial ms <one serial fib, no tasks>
 *   forkjoin.W serial-split ms <one fib by the tasks' recursion and leaves, no tasks>
 *   forkjoin.W plait1 ms <wall>         forkjoin.W plait1 tasks_per_s <rate>
 *   forkjoin.W plait2 ms <wall>         forkjoin.W plait2 tasks_per_s <rate>
 *   forkjoin.W plait1-from-outside ms <wall>
 *   forkjoin.W plait2-from-outside ms <wall>
 *   forkjoin.W plait1-cpuK ms <wall, the one worker pinned to CPU K>   (each CPU K)
 *   forkjoin.W plait1 cpu_spread <slowest plait1-cpuK ms / fastest>
 *   forkjoin.W plait1-cpumean ms <harmonic mean of plait1-cpuK ms>
 *   forkjoin.W plait speedup_2v1 <plait1 ms / plait2 ms>
 *   forkjoin.W plait speedup_2v1_cpumean <harmonic mean of plait1-cpuK ms / plait2 ms>
 */
#include "bench_common.h"
#include "bench_cpus.h"

#include <stdint.h>

static plait_pool *pool;
static long cutoff;
static bench_cpus cpus;

static long fib_serial(long n)
{
    return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2);
}

/* fib(n) by the tasks' recursion, with no task: the calls with n >= cut add their two
 * halves, those below compute serially.  What one thread must do at the least to run
 * the tasks' work in their shape, without any runtime. */
static long fib_split(long n, long cut)
{
    return n < cut ? fib_serial(n) : fib_split(n - 1, cut) + fib_split(n - 2, cut);
}

/* How many calls of fib(n) are tasks: every call with n >= cutoff, and the calls
 * it makes (leaves included). */
static long long task_count(long n, long cut)
{
    return n < cut ? 1 : 1 + task_count(n - 1, cut) + task_count(n - 2, cut);
}

static void *fib_task(void *arg)
{
    long n = (long)(intptr_t)arg;
    if (n < cutoff)
        return (void *)(intptr_t)fib_serial(n);
    plait_task a, b;
    BENCH_CHECK(plait_pool_submit(pool, &a, fib_task, (void *)(intptr_t)(n - 1)));
    BENCH_CHECK(plait_pool_submit(pool, &b, fib_task, (void *)(intptr_t)(n - 2)));
    void *x, *y;
    BENCH_CHECK(plait_join(a, &x, PLAIT_FOREVER));
    BENCH_CHECK(plait_join(b, &y, PLAIT_FOREVER));
    return (void *)((intptr_t)x + (intptr_t)y);
}

/* One fib(n) on the pool, checked; wall ns. */
static long long fib_once(long n, long expect)
{
    long long t0 = bench_now();
    plait_task root;
    void *r;
    BENCH_CHECK(plait_pool_submit(pool, &root, fib_task, (void *)(intptr_t)n));
    BENCH_CHECK(plait_join(root, &r, PLAIT_FOREVER));
    long long t = bench_now() - t0;
    if ((long)(intptr_t)r != expect) {
        fprintf(stderr, "bench_forkjoin: fib(%ld) gave %ld, not %ld\n", n,
                (long)(intptr_t)r, expect);
        exit(1);
    }
    return t;
}

typedef struct timing_loop {
    long n, expect;
    long long reps;
    long long ns; /* out: the total of the timed reps */
} timing_loop;

/* Compute fib(n) reps times (after a warm-up: workers started, deques and futures
 * allocated) and time it; run on the main thread or as a task of the pool. */
static void *run_timing_loop(void *arg)
{
    timing_loop *t = arg;
    fib_once(t->n, t->expect);
    t->ns = 0;
    for (long long i = 0; i < t->reps; i++)
        t->ns += fib_once(t->n, t->expect);
    return NULL;
}

/* Mean ms of one fib(n) with the given cutoff on a pool of `threads` workers, timed
 * from a task of the pool (inside) or from the main thread. */
static double measure(long n, long cut, unsigned threads, long long reps, long expect,
                      int inside)
{
    plait_pool_options opt = {.threads = threads, .name = "fj"};
    BENCH_CHECK(plait_pool_create(&pool, &opt));
    if (plait_pool_threads(pool) != threads) {
        fprintf(stderr, "bench_forkjoin: asked for %u workers, got %u\n", threads,
                plait_pool_threads(pool));
        exit(1);
    }
    cutoff = cut;
    timing_loop t = {.n = n, .expect = expect, .reps = reps};
    if (inside) {
        plait_task loop;
        BENCH_CHECK(plait_pool_submit(pool, &loop, run_timing_loop, &t));
        BENCH_CHECK(plait_join(loop, NULL, PLAIT_FOREVER));
    } else {
        run_timing_loop(&t);
    }
    BENCH_CHECK(plait_pool_destroy(pool));
    pool = NULL;
    return (double)t.ns / (double)reps / 1e6;
}

static void workload(long n, long cut, long long reps, unsigned max_threads)
{
    char name[64];
    snprintf(name, sizeof name, "forkjoin.fib%ld.cut%ld", n, cut);
    long expect = fib_serial(n); /* warm up, and the answer to check against */
    volatile long vn = n;        /* so the compiler cannot fold the repetitions */
    long long t0 = bench_now();
    for (long long i = 0; i < reps; i++)
        if (fib_serial(vn) != expect)
            exit(1);
    double serial_ms = (double)(bench_now() - t0) / (double)reps / 1e6;
    t0 = bench_now();
    for (long long i = 0; i < reps; i++)
        if (fib_split(vn, cut) != expect)
            exit(1);
    double split_ms = (double)(bench_now() - t0) / (double)reps / 1e6;
    double tasks = (double)task_count(n, cut);
    printf("# %s: fib(%ld), calls with n < %ld computed serially, %.0f tasks per fib\n",
           name, n, cut, tasks);
    printf("%s serial ms %.3f\n", name, serial_ms);
    printf("%s serial-split ms %.3f\n", name, split_ms);
    double one = 0;
    bench_cpu_times per_cpu = {0};
    for (unsigned threads = 1; threads <= max_threads; threads *= 2) {
        double ms = measure(n, cut, threads, reps, expect, 1);
        printf("%s plait%u ms %.3f\n", name, threads, ms);
        printf("%s plait%u tasks_per_s %.0f\n", name, threads, tasks / ms * 1e3);
        printf("%s plait%u-from-outside ms %.3f\n", name, threads,
               measure(n, cut, threads, reps, expect, 0));
        if (threads == 1) {
            one = ms;
            /* one worker on each CPU (bench_cpus.h): it starts from the pinned thread */
            for (int i = 0; i < cpus.count; i++) {
                bench_cpus_pin(&cpus, i);
                double cpu_ms = measure(n, cut, 1, reps, expect, 1);
                bench_cpus_pin(&cpus, -1);
                printf("%s plait1-cpu%d ms %.3f\n", name, cpus.list[i], cpu_ms);
                bench_cpu_times_add(&per_cpu, cpu_ms);
            }
            printf("%s plait1 cpu_spread %.2f\n", name, per_cpu.slowest / per_cpu.fastest);
            printf("%s plait1-cpumean ms %.3f\n", name, bench_cpu_times_mean(&per_cpu));
        } else {
            printf("%s plait speedup_%uv1 %.2f\n", name, threads, one / ms);
            printf("%s plait speedup_%uv1_cpumean %.2f\n", name, threads,
                   bench_cpu_times_mean(&per_cpu) / ms);
        }
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    long long reps = bench_count(argc, argv, 10, "reps [max-threads]", LLONG_MAX / 10);
    /* 1, 2, 4, ... workers up to argv[2] (2 by default: the peers' 1 and 2) */
    unsigned max_threads = 2;
    if (argc > 2) {
        char *end;
        long m = strtol(argv[2], &end, 10);
        if (*end != '\0' || m < 1 || m > PLAIT_POOL_THREADS_MAX) {
            fprintf(stderr, "usage: %s [reps [max-threads]]\n", argv[0]);
            return 2;
        }
        max_threads = (unsigned)m;
    }
    bench_cpus_init(&cpus);
    workload(30, 20, 10 * reps, max_threads);
    workload(25, 2, reps, max_threads);
    return 0;
}
