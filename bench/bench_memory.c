/*
 * bench_memory.c — memory per suspended coroutine in plait.
 *
 * N coroutines are started and each blocks on one shared plait_event, so all N
 * are suspended at once; the figure is the growth of the process's resident set
 * (/proc/self/status VmRSS, and the peak VmHWM) divided by N.  Then the event is
 * set and every coroutine finishes, and the scheduler sits idle for IDLE_MS: a
 * scheduler hands the memory of free stacks it left unused for a second back to the
 * kernel, keeping 256 (src/stack.c), so the resident set falls back by then; the
 * figures say how much of the growth is still resident after the idle time, how long
 * after the last coroutine finished it first held less than half of it, and the CPU
 * time the scheduler's thread spent meanwhile (giving memory back costs a madvise per
 * stack).  It is measured with the default stack
 * (PLAIT_STACK_DEFAULT) and with the smallest (PLAIT_STACK_MIN): a stack costs the
 * pages it touched, so the two should differ by little more than page rounding.
 *
 * Each (N, stack) pair runs in a child process of its own: plait keeps stack slots
 * mapped for reuse, so a second measurement in the same process would find them
 * already resident, and VmHWM never goes down.
 *
 * Peer: peer_memory.go (N goroutines parked on a channel).
 *
 * Usage: bench_memory [N ...]   (default 100000 1000000)
 * Prints, per N and stack ("default", "min"):
 *   memory.<N>.<stack> plait bytes_per_task_rss <bytes>
 *   memory.<N>.<stack> plait bytes_per_task_hwm <bytes>
 *   memory.<N>.<stack> plait bytes_per_task_pte <bytes of page tables, not in RSS>
 *   memory.<N>.<stack> plait ns_per_park <ns to spawn a coroutine and see it block>
 *   memory.<N>.<stack> plait maps <memory maps of the process while all are parked>
 *   memory.<N>.<stack> plait bytes_per_task_rss_idle <still resident after IDLE_MS idle>
 *   memory.<N>.<stack> plait ms_to_half_back <till less than half the growth is resident; -1: never>
 *   memory.<N>.<stack> plait idle_cpu_ms <the scheduler thread's CPU time while idle,
 *                                         less its reads of /proc/self/status (measured)>
 */
#include "bench_common.h"

#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

enum { IDLE_MS = 3000, IDLE_STEP_MS = 20 };

typedef struct config {
    long long n;
    size_t stack;
    const char *stack_name;
} config;

typedef struct shared {
    plait_event *release;
    plait_waitgroup *done;
    long long parked;
} shared;

typedef struct mem_status {
    long long rss; /* VmRSS: resident now */
    long long hwm; /* VmHWM: the peak of VmRSS */
    long long pte; /* VmPTE: page tables, which VmRSS does not count */
} mem_status;

/* This process's memory figures from /proc/self/status, in bytes; exits when they
 * cannot be read (without /proc every figure was 0 bytes per coroutine, printed). */
static mem_status read_status(void)
{
    mem_status m = {-1, -1, -1};
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            m.rss = atoll(line + 6) * 1024;
        else if (strncmp(line, "VmHWM:", 6) == 0)
            m.hwm = atoll(line + 6) * 1024;
        else if (strncmp(line, "VmPTE:", 6) == 0)
            m.pte = atoll(line + 6) * 1024;
    }
    if (f)
        fclose(f);
    if (m.rss < 0 || m.hwm < 0 || m.pte < 0) {
        fprintf(stderr, "bench_memory: no VmRSS, VmHWM and VmPTE in /proc/self/status\n");
        exit(1);
    }
    return m;
}

/* The lines of /proc/self/maps; exits when it cannot be read. */
static long count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    long lines = 0;
    int c;
    if (!f) {
        perror("bench_memory: /proc/self/maps");
        exit(1);
    }
    while ((c = getc(f)) != EOF)
        lines += c == '\n';
    fclose(f);
    return lines;
}

/* The calling thread's CPU time: exact (getrusage's figure for the running thread
 * catches up only at a tick or a switch, so the reads' own time, bracketed by it, came
 * to a twentieth of what they took). */
static double thread_cpu_ms(void)
{
    struct timespec t;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t) != 0)
        return -1;
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void *parked(void *arg)
{
    shared *s = arg;
    s->parked++;
    BENCH_CHECK(plait_event_wait(s->release, PLAIT_FOREVER));
    BENCH_CHECK(plait_waitgroup_done(s->done));
    return NULL;
}

static void *bench_main(void *arg)
{
    const config *c = arg;
    shared s = {0};
    BENCH_CHECK(plait_event_create(&s.release));
    BENCH_CHECK(plait_waitgroup_create(&s.done));
    BENCH_CHECK(plait_waitgroup_add(s.done, (int)c->n));
    plait_spawn_options opts = {.name = "parked", .stack_size = c->stack};

    mem_status m0 = read_status();
    long long t0 = bench_now();
    for (long long i = 0; i < c->n; i++)
        BENCH_CHECK(plait_spawn_opts(NULL, parked, &s, &opts));
    while (s.parked < c->n) /* let every one of them run up to its wait */
        BENCH_CHECK(plait_yield());
    long long t1 = bench_now();
    mem_status m1 = read_status();
    long maps = count_maps();

    BENCH_CHECK(plait_event_set(s.release));
    BENCH_CHECK(plait_waitgroup_wait(s.done, PLAIT_FOREVER));
    BENCH_CHECK(plait_event_destroy(s.release));
    BENCH_CHECK(plait_waitgroup_destroy(s.done));

    /* idle: sleep in short steps, watching the resident set fall */
    long long t2 = bench_now(), half_back = -1;
    double cpu0 = thread_cpu_ms(), reading = 0; /* (the reads' own CPU, taken off) */
    mem_status m2 = m1;
    for (int ms = 0; ms < IDLE_MS; ms += IDLE_STEP_MS) {
        BENCH_CHECK(plait_sleep((int64_t)IDLE_STEP_MS * 1000000));
        double before = thread_cpu_ms();
        m2 = read_status();
        reading += thread_cpu_ms() - before;
        if (half_back < 0 && (m2.rss - m0.rss) * 2 < m1.rss - m0.rss)
            half_back = bench_now() - t2;
    }
    double idle_cpu = thread_cpu_ms() - cpu0 - reading;

    double n = (double)c->n;
    printf("memory.%lld.%s plait bytes_per_task_rss %.0f\n", c->n, c->stack_name,
           (double)(m1.rss - m0.rss) / n);
    printf("memory.%lld.%s plait bytes_per_task_hwm %.0f\n", c->n, c->stack_name,
           (double)(m1.hwm - m0.hwm) / n);
    printf("memory.%lld.%s plait bytes_per_task_pte %.0f\n", c->n, c->stack_name,
           (double)(m1.pte - m0.pte) / n);
    printf("memory.%lld.%s plait ns_per_park %.0f\n", c->n, c->stack_name,
           (double)(t1 - t0) / n);
    printf("memory.%lld.%s plait maps %ld\n", c->n, c->stack_name, maps);
    printf("memory.%lld.%s plait bytes_per_task_rss_idle %.0f\n", c->n, c->stack_name,
           (double)(m2.rss - m0.rss) / n);
    printf("memory.%lld.%s plait ms_to_half_back %.0f\n", c->n, c->stack_name,
           half_back < 0 ? -1.0 : (double)half_back / 1e6);
    printf("memory.%lld.%s plait idle_cpu_ms %.1f\n", c->n, c->stack_name, idle_cpu);
    return NULL;
}

static int run_child(const config *c)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        int rc = plait_run(bench_main, (void *)c, NULL);
        if (rc < 0)
            fprintf(stderr, "bench_memory: plait_run: %s\n", plait_strerror(rc));
        fflush(stdout);
        _exit(rc < 0 ? 1 : 0);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) {
        perror("waitpid");
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench_memory: N=%lld stack=%s failed (status %#x)\n", c->n,
                c->stack_name, status);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const long long defaults[] = {100000, 1000000};
    int counts = argc > 1 ? argc - 1 : 2;
    int failed = 0;
    for (int i = 0; i < counts; i++) {
        long long n = defaults[i % 2];
        if (argc > 1) {
            char *end;
            n = strtoll(argv[i + 1], &end, 10);
            if (*argv[i + 1] == '\0' || *end != '\0' || n <= 0 || n > 0x7fffffff) {
                fprintf(stderr, "usage: %s [N ...]\n", argv[0]);
                return 2;
            }
        }
        const config configs[] = {
            {n, PLAIT_STACK_DEFAULT, "default"},
            {n, PLAIT_STACK_MIN, "min"},
        };
        for (size_t k = 0; k < sizeof configs / sizeof configs[0]; k++)
            failed |= run_child(&configs[k]) != 0;
    }
    return failed;
}
