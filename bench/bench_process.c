/*
 * bench_process.c — the process strand's costs:
 *
 *   process.start_join  start a process that runs an empty function and join it,
 *                       microseconds each (plait_process_start + plait_join, from the
 *                       main thread: the fork happens on plait's manager thread, the
 *                       exit is seen through the child's pidfd); and, as a yardstick,
 *                       fork + waitpid by hand from this same process ("fork-here":
 *                       a threaded process, whose forks cost more than the
 *                       single-threaded peer's);
 *   procpool.roundtrip  submit a no-op task to a process pool of one worker and join
 *                       it, microseconds per round trip, with every thread and
 *                       process pinned to one CPU ("samecpu") and left to the kernel
 *                       ("free");
 *   procpool.map        plait_procpool_map of a squaring function over 1,000,000
 *                       8-byte items on one worker per CPU, items per second (the
 *                       first map of a pool touches its shared memory for the first
 *                       time: it is a warm-up, not timed);
 *   procpool.recovery   a worker's crash to its replacement taking work: a pool of
 *                       one worker runs a task that notes the time and raises
 *                       SIGSEGV, then a task that notes when it starts; microseconds
 *                       between the two notes, the median of 20 (CLOCK_MONOTONIC is
 *                       one clock for all processes).
 *
 * Peers (bench/run.sh runs them in the same run): peer_process_start.c (fork+waitpid
 * by hand, posix_spawn of /bin/true), peer_mp.py (Python multiprocessing and
 * concurrent.futures), peer_shm_pingpong.c (the raw floor of a round trip: two
 * processes, one futex word in shared memory; one side sleeping at once, the other
 * looking first for as long as plait's pool does).
 *
 * Usage: bench_process [scale]   (default 1: 2,000 starts, 20,000 round trips, 20 crashes)
 */
#include "bench_common.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static ssize_t nothing(const void *a, size_t l, void *o, size_t c)
{
    (void)a;
    (void)l;
    (void)o;
    (void)c;
    return 0;
}

static ssize_t square(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len;
    (void)cap;
    long v;
    memcpy(&v, arg, sizeof v);
    v *= v;
    memcpy(out, &v, sizeof v);
    return sizeof v;
}

static plait_shm *notes; /* [0]: when the crash happened, [1]: when the next task began */

static ssize_t crash(const void *a, size_t l, void *o, size_t c)
{
    (void)a;
    (void)l;
    (void)o;
    (void)c;
    ((long long *)plait_shm_data(notes))[0] = bench_now();
    raise(SIGSEGV);
    return 0;
}

static ssize_t note_start(const void *a, size_t l, void *o, size_t c)
{
    (void)a;
    (void)l;
    (void)o;
    (void)c;
    ((long long *)plait_shm_data(notes))[1] = bench_now();
    return 0;
}

/* fork + _exit + waitpid by hand, from this process: once plait's manager thread runs,
 * this process is threaded, and a fork costs more (the kernel write-protects its pages
 * on every CPU its threads ran on) than in the single-threaded peer program. */
static void fork_here(long long n)
{
    long long t0 = bench_now();
    for (long long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        if (pid < 0 || waitpid(pid, NULL, 0) != pid) {
            perror("bench_process: fork");
            exit(1);
        }
    }
    printf("process.start_join fork-here us_per_proc %.2f\n", (bench_now() - t0) / 1e3 / n);
}

static void start_join(long long n)
{
    for (long long i = 0; i < n / 10; i++) { /* warm-up: the manager thread, the caches */
        plait_task t;
        BENCH_CHECK(plait_process_start(&t, nothing, NULL, 0, NULL, NULL));
        BENCH_CHECK(plait_join(t, NULL, PLAIT_FOREVER));
    }
    long long t0 = bench_now();
    for (long long i = 0; i < n; i++) {
        plait_task t;
        BENCH_CHECK(plait_process_start(&t, nothing, NULL, 0, NULL, NULL));
        BENCH_CHECK(plait_join(t, NULL, PLAIT_FOREVER));
    }
    printf("process.start_join plait us_per_proc %.2f\n", (bench_now() - t0) / 1e3 / n);
}

/* The number of CPUs the process pool worker that runs it may run on. */
static ssize_t worker_cpus(const void *a, size_t l, void *out, size_t cap)
{
    (void)a;
    (void)l;
    (void)cap;
    cpu_set_t set;
    int n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : -1;
    memcpy(out, &n, sizeof n);
    return sizeof n;
}

/* Pin every thread of this process to one CPU; the number of threads, or -1.  Not
 * sched_setaffinity(0, ...) alone: that pins the calling thread only, and the pool's
 * workers would then run on that CPU beside plait's own threads (the manager, started
 * by the first process of start_join, and the others) left on every CPU.  Threads and
 * processes made from now on take the pinning from the thread that makes them (a
 * pool's workers from its creator).  Passes until one finds every thread pinned
 * already (a thread may start meanwhile). */
/* The first CPU the process may run on, -1 when its set cannot be read. */
static int first_allowed_cpu(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return -1;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set))
            return c;
    return -1;
}

static int pin_all_threads(int cpu)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    for (int pass = 0; pass < 10; pass++) {
        DIR *d = opendir("/proc/self/task");
        if (!d)
            return -1;
        int threads = 0, moved = 0;
        for (struct dirent *e; (e = readdir(d));) {
            if (e->d_name[0] == '.')
                continue;
            pid_t tid = (pid_t)atoi(e->d_name);
            cpu_set_t now;
            if (sched_getaffinity(tid, sizeof now, &now) == 0 && CPU_EQUAL(&now, &one)) {
                threads++;
                continue;
            }
            if (sched_setaffinity(tid, sizeof one, &one) != 0 && errno != ESRCH) {
                closedir(d);
                return -1;
            }
            threads++;
            moved++;
        }
        closedir(d);
        if (!moved)
            return threads;
    }
    return -1;
}

/* Round trips to a pool of one worker; with want_cpus > 0, its worker must be
 * allowed exactly that many CPUs (the placement the figure is named after). */
static void round_trips(const char *placement, long long n, int want_cpus)
{
    plait_procpool *pool;
    BENCH_CHECK(plait_procpool_create(&pool, &(plait_procpool_options){.processes = 1}));
    if (want_cpus > 0) {
        plait_task t;
        plait_bytes *cpus = NULL;
        BENCH_CHECK(plait_procpool_submit(pool, &t, worker_cpus, NULL, 0));
        BENCH_CHECK(plait_join(t, (void **)&cpus, PLAIT_FOREVER));
        int got;
        memcpy(&got, cpus->data, sizeof got);
        free(cpus);
        if (got != want_cpus) {
            fprintf(stderr, "bench_process: procpool.roundtrip.%s: the worker may run on %d "
                            "CPUs, not %d\n", placement, got, want_cpus);
            exit(1);
        }
    }
    for (long long i = 0; i < n / 10 + 1; i++) {
        plait_task t;
        BENCH_CHECK(plait_procpool_submit(pool, &t, nothing, NULL, 0));
        BENCH_CHECK(plait_join(t, NULL, PLAIT_FOREVER));
    }
    long long t0 = bench_now();
    for (long long i = 0; i < n; i++) {
        plait_task t;
        BENCH_CHECK(plait_procpool_submit(pool, &t, nothing, NULL, 0));
        BENCH_CHECK(plait_join(t, NULL, PLAIT_FOREVER));
    }
    printf("procpool.roundtrip.%s plait us_per_rt %.2f\n", placement,
           (bench_now() - t0) / 1e3 / n);
    BENCH_CHECK(plait_procpool_destroy(pool));
}

static void map_items(void)
{
    enum { N = 1000000 };
    long *args = malloc(N * sizeof *args), *results = malloc(N * sizeof *results);
    if (!args || !results)
        exit(1);
    for (long i = 0; i < N; i++)
        args[i] = i;
    plait_procpool *pool;
    int workers = plait_cpu_count(); /* what a pool of processes = 0 has, said explicitly */
    BENCH_CHECK(plait_procpool_create(&pool, &(plait_procpool_options){.processes =
                                                                          (unsigned)workers}));
    /* (peer_mp.py says its own: bench/summarize.py warns where the two differ) */
    printf("procpool.map plait workers %d\n", workers);
    BENCH_CHECK(plait_procpool_map(pool, square, args, sizeof(long), N, results, sizeof(long),
                                   NULL, 0, PLAIT_FOREVER));
    long long best = 0;
    for (int rep = 0; rep < 3; rep++) { /* the best of three maps: it is a rate */
        memset(results, 0, N * sizeof *results); /* each map's own results are checked */
        long long t0 = bench_now();
        BENCH_CHECK(plait_procpool_map(pool, square, args, sizeof(long), N, results,
                                       sizeof(long), NULL, 0, PLAIT_FOREVER));
        long long ns = bench_now() - t0;
        if (!best || ns < best)
            best = ns;
        for (long i = 0; i < N; i++)
            if (results[i] != i * i) {
                fprintf(stderr, "bench_process: map result %ld is wrong\n", i);
                exit(1);
            }
    }
    printf("procpool.map plait items_per_s %.0f\n", N / (best / 1e9));
    BENCH_CHECK(plait_procpool_destroy(pool));
    free(args);
    free(results);
}

static int by_value(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static void recovery(int n)
{
    BENCH_CHECK(plait_shm_create(&notes, 2 * sizeof(long long)));
    plait_procpool *pool;
    BENCH_CHECK(plait_procpool_create(&pool, &(plait_procpool_options){.processes = 1}));
    long long *ns = malloc((size_t)n * sizeof *ns);
    for (int i = 0; i < n; i++) {
        plait_task c, next;
        BENCH_CHECK(plait_procpool_submit(pool, &c, crash, NULL, 0));
        BENCH_CHECK(plait_procpool_submit(pool, &next, note_start, NULL, 0));
        if (plait_join(c, NULL, PLAIT_FOREVER) != PLAIT_KILLED(SIGSEGV)) {
            fprintf(stderr, "bench_process: the crashing task did not report SIGSEGV\n");
            exit(1);
        }
        BENCH_CHECK(plait_join(next, NULL, PLAIT_FOREVER));
        long long *t = plait_shm_data(notes);
        ns[i] = t[1] - t[0];
    }
    qsort(ns, (size_t)n, sizeof *ns, by_value);
    double median = n % 2 ? (double)ns[n / 2] : (ns[n / 2 - 1] + ns[n / 2]) / 2.0;
    printf("procpool.recovery plait us %.1f\n", median / 1e3);
    free(ns);
    BENCH_CHECK(plait_procpool_destroy(pool));
    BENCH_CHECK(plait_shm_destroy(notes));
}

int main(int argc, char **argv)
{
    long long scale = bench_count(argc, argv, 1, "scale", INT_MAX / 20) /* recovery's int */;
    start_join(2000 * scale);
    fork_here(2000 * scale);
    round_trips("free", 20000 * scale, 0);
    map_items();
    recovery((int)(20 * scale));
    /* last: every thread of this process (and the threads and processes they make from
     * now on: the pool's worker) on one CPU, as peer_shm_pingpong's two processes */
    int cpu = first_allowed_cpu(); /* (CPU 0 may be outside the process's set) */
    int threads = cpu < 0 ? -1 : pin_all_threads(cpu);
    if (threads < 0) {
        fprintf(stderr, "bench_process: cannot pin this process's threads to CPU %d\n", cpu);
        return 1;
    }
    printf("# procpool.roundtrip.samecpu: the %d threads of this process and the pool's "
           "worker on CPU %d\n", threads, cpu);
    round_trips("samecpu", 20000 * scale, 1);
    return 0;
}
