/*
 * bench.c — `plait bench`: plait's microbenchmarks (docs/BENCHMARKS.md), runnable by a
 * user of the tool.
 *
 * What it runs: the benchmark programs bench/bench_*.c (plait's side) and the peers
 * of theirs that need only libc and pthreads (bench/peer_ucontext_switch.c,
 * peer_mutex_queue.c, peer_futex_pingpong.c, peer_process_start.c,
 * peer_shm_pingpong.c, peer_pipe.c), with the counts bench/run.sh gives them, in
 * run.sh's order: within a run each plait benchmark runs just before its peers.  It
 * does that N times, reads the `<bench> <impl> <unit> <value>` lines every program
 * prints (bench/bench_common.h), and prints the median of every figure and, for
 * plait's figures, the ratio plait/peer paired as bench/summarize.py pairs them: the
 * median over the runs of the ratio within a run.
 *
 * Why programs rather than the benchmarks linked in: there is one copy of each
 * benchmark, the one bench/run.sh runs, so `plait bench` and run.sh give the same
 * numbers; each measurement starts in a fresh process, as run.sh's do (bench_memory
 * measures a process's resident set, bench_process forks, a pool's threads would
 * otherwise outlive their benchmark); and a benchmark that crashes or hangs costs
 * its own figures, not the tool.  The peers that need other toolchains (Go, Python,
 * Boost.Context, oneTBB, OpenMP) stay with run.sh.
 *
 * The programs are found beside the tool: bench/ in the build tree (build/plait,
 * build/bench/...), PLAIT_BENCH_LIBEXEC from the tool's bin directory once installed
 * (PREFIX/bin/plait, PREFIX/libexec/plait/...); PLAIT_BENCH_DIR overrides both.
 *
 * Each child runs in a process group of its own with stdout into a pipe (stderr is
 * the tool's, so its complaints reach the user; stdin is /dev/null).  Its own group:
 * a terminal's Ctrl-C reaches the tool alone, which stops the child, and the child's
 * own children (bench_memory's, a process pool's workers) go with it.  SIGINT and
 * SIGTERM are blocked except inside ppoll(), so an interrupt cannot slip in between a
 * check and a wait: the running child's group then gets SIGTERM, SIGKILL 2 s later,
 * and the child is reaped.  Whatever else is left of a child's group is killed before
 * the child is reaped (while its process group id cannot be reused).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "tool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Where the programs are installed, relative to the tool's directory (CMake). */
#ifndef PLAIT_BENCH_LIBEXEC
#define PLAIT_BENCH_LIBEXEC "../libexec/plait"
#endif

extern char **environ;

enum { MAX_RUNS = 99, DEFAULT_RUNS = 3, LIMIT_FULL_S = 300, LIMIT_QUICK_S = 60 };
#define MAX_OUTPUT (1 << 20) /* what is kept of a program's stdout */

/* ---- what it runs ------------------------------------------------------------------ */

/* The names a user picks from, each a plait benchmark with the peers it is compared
 * with here. */
typedef struct bench_name {
    const char *name;
    const char *what;
} bench_name;

static const bench_name names[] = {
    {"context", "plait's bare context switch, ns per one-way switch"},
    {"switch", "plait_yield between two coroutines, ns per switch"},
    {"spawn", "spawn + run + join of an empty coroutine, ns per task"},
    {"chan", "ping-pong over unbuffered channels, ns per message"},
    {"memory", "bytes per parked coroutine"},
    {"forkjoin", "fork-join fib on pools of 1 and 2 threads, ms"},
    {"pool", "no-op pool tasks per second"},
    {"wakeup", "coroutine <-> thread wake-up round trips, us"},
    {"process", "process start+join, process pool round trip, map, crash recovery"},
    {"queue", "64 B and 64 KiB messages between processes over a plait_queue"},
    {"offload", "plait_to_thread from a coroutine in a pool task, us per call"},
};
enum { N_NAMES = sizeof names / sizeof names[0] };

/* The programs in bench/run.sh's order, with the names they run under and their
 * arguments (run.sh's counts, full and --quick).  bench_memory measures a million
 * coroutines too in the first full run only: the bytes per coroutine do not vary,
 * and a million take tens of seconds of page faults. */
typedef struct program {
    const char *file;
    const char *runs_under; /* names, space-separated */
    const char *full;       /* arguments, space-separated */
    const char *quick;
    const char *full_first; /* the first full run's arguments, where they differ */
} program;

static const program programs[] = {
    {"bench_context", "context", "20000000", "2000000", NULL},
    {"bench_switch", "switch", "10000000", "1000000", NULL},
    {"peer_ucontext_switch", "context switch", "300000", "100000", NULL},
    {"bench_spawn", "spawn", "1000000", "100000", NULL},
    {"bench_chan", "chan", "1000000", "100000", NULL},
    {"bench_memory", "memory", "100000", "100000", "100000 1000000"},
    {"bench_forkjoin", "forkjoin", "10", "2", NULL},
    {"bench_pool", "pool", "1000000", "100000", NULL},
    {"peer_mutex_queue", "pool", "1000000", "100000", NULL},
    {"bench_wakeup", "wakeup", "20000", "2000", NULL},
    {"peer_futex_pingpong", "wakeup", "20000", "2000", NULL},
    {"bench_process", "process", "1", "1", NULL},
    {"peer_process_start", "process", "1", "1", NULL},
    {"peer_shm_pingpong", "process", "1", "1", NULL},
    {"bench_queue", "queue", "1", "1", NULL},
    {"peer_pipe", "queue", "1", "1", NULL},
    {"bench_offload", "offload", "5000", "500", NULL},
};
enum { N_PROGRAMS = sizeof programs / sizeof programs[0] };

/* Which peer figures a plait figure is compared with: bench/summarize.py's pairs,
 * each plait figure (bench, impl, unit) against (bench, peer, unit).  Peers that only
 * bench/run.sh runs (Boost, Go, Python, OpenMP, oneTBB) are listed as summarize.py
 * lists them and simply never found here; memory's only peer is Go's (and a figure of
 * another bench), so it has no line. */
typedef struct pairing {
    const char *bench, *impl, *unit;
    const char *peers; /* space-separated */
} pairing;

static const pairing pairings[] = {
    {"switch", "plait-context", "ns_per_op", "boost ucontext"},
    {"switch", "plait", "ns_per_op", "boost ucontext asyncio"},
    {"spawn", "plait", "ns_per_task", "go1 go asyncio"},
    {"chan", "plait", "ns_per_msg", "go1"},
    {"forkjoin.fib30.cut20", "plait1", "ms", "omp1 tbb1 go1"},
    {"forkjoin.fib30.cut20", "plait2", "ms", "omp2 tbb2 go2"},
    {"forkjoin.fib30.cut20", "plait1-cpumean", "ms", "omp1-cpumean tbb1-cpumean"},
    {"forkjoin.fib30.cut20", "plait", "speedup_2v1", "omp tbb go"},
    {"forkjoin.fib30.cut20", "plait", "speedup_2v1_cpumean", "omp tbb"},
    {"forkjoin.fib25.cut2", "plait1", "ms", "omp1 tbb1 go1"},
    {"forkjoin.fib25.cut2", "plait2", "ms", "omp2 tbb2 go2"},
    {"forkjoin.fib25.cut2", "plait1-cpumean", "ms", "omp1-cpumean tbb1-cpumean"},
    {"forkjoin.fib25.cut2", "plait", "speedup_2v1", "omp tbb go"},
    {"forkjoin.fib25.cut2", "plait", "speedup_2v1_cpumean", "omp tbb"},
    {"pool.noop", "plait", "tasks_per_s", "python mutexq"},
    {"wakeup.samecpu", "plait-coro-thread", "us_per_rt", "futex futex-look"},
    {"wakeup.samecpu", "plait-coro-coro", "us_per_rt", "futex futex-look"},
    {"wakeup.twocpu", "plait-coro-thread", "us_per_rt", "futex futex-look"},
    {"wakeup.twocpu", "plait-coro-coro", "us_per_rt", "futex futex-look"},
    {"wakeup.samecpu", "plait-thread-thread", "us_per_rt", "futex futex-look"},
    {"wakeup.twocpu", "plait-thread-thread", "us_per_rt", "futex futex-look"},
    {"process.start_join", "plait", "us_per_proc", "fork fork-here posix_spawn mp-fork mp-spawn"},
    {"procpool.roundtrip.free", "plait", "us_per_rt", "shmfutex shmfutex-look python-pool python-ppe"},
    {"procpool.roundtrip.samecpu", "plait", "us_per_rt", "shmfutex shmfutex-look python-pool python-ppe"},
    {"procpool.map", "plait", "items_per_s", "python-pool python-ppe python-ppe-chunked"},
    {"queue.small", "plait", "msgs_per_s", "pipe pipe1m"},
    {"queue.large", "plait", "mb_per_s", "pipe pipe1m"},
    {"offload", "stand-in", "us_per_call", "worker thread-per-call"},
};

/* ---- usage ------------------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: plait bench [--quick] [--runs N] [NAME...]\n"
            "\n"
            "Runs plait's microbenchmarks (docs/BENCHMARKS.md) and the peers they are\n"
            "compared with that need only libc and pthreads (glibc swapcontext, a pthread\n"
            "mutex+condvar queue, a raw futex, fork and posix_spawn, a shared-memory futex,\n"
            "pipes), each a program of its own, with the counts bench/run.sh uses.  Within\n"
            "a run every plait benchmark runs just before its peers; the whole set runs N\n"
            "times.  Progress goes to stderr; the results to stdout: the machine, then per\n"
            "figure (bench, impl, unit) its median over the runs, min..max and the number\n"
            "of runs, and for plait's figures the ratio plait/peer to each peer measured in\n"
            "the same runs: the median of the per-run ratios, so both sides of a ratio were\n"
            "measured moments apart.  Below 1, plait is faster or smaller where the unit is\n"
            "a time or a size; above 1 where it is a rate (_per_s) or a speed-up.\n"
            "\n"
            "names (all of them by default):\n"
            "  ");
    for (int i = 0; i < N_NAMES; i++)
        fprintf(out, "%s%s", names[i].name, i + 1 < N_NAMES ? " " : "\n");
    fprintf(out,
            "\n"
            "options:\n"
            "  --runs N    run every program N times (1..%d, default %d)\n"
            "  --quick     small counts and one run (unless --runs says otherwise): a smoke\n"
            "              test of a few seconds, not figures to quote\n"
            "  --list      the names, what each measures and the programs it runs\n"
            "  -h, --help  this text\n"
            "\n"
            "The programs: bench/ beside the plait executable in a build tree,\n"
            "PREFIX/libexec/plait once installed; the environment variable PLAIT_BENCH_DIR\n"
            "names another directory.  Each program gets %d s (--quick: %d s); one that\n"
            "fails, is killed or prints no figure is reported and the others still run.\n"
            "\n"
            "The peers that need other toolchains (Go goroutines and channels, Python\n"
            "asyncio, ThreadPoolExecutor and multiprocessing, Boost.Context, OpenMP,\n"
            "oneTBB) are not here: bench/run.sh in plait's source tree builds and runs\n"
            "them all, and bench/io/run_io.sh the I/O servers.\n"
            "\n"
            "exit status: 0 every program ran, 1 a program failed or was not found,\n"
            "2 usage error, 3 the results could not be written, 130 interrupted (SIGINT,\n"
            "SIGTERM or SIGHUP: the running program is stopped, no results are printed;\n"
            "or, while they are written, they are cut short where a reader was slow)\n",
            MAX_RUNS, DEFAULT_RUNS, LIMIT_FULL_S, LIMIT_QUICK_S);
}

/* Whether word is one of the space-separated words of list. */
static bool has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, " ");
        if (len == n && strncmp(p, word, n) == 0)
            return true;
        p += len;
        p += strspn(p, " ");
    }
    return false;
}

static void list_names(void)
{
    for (int i = 0; i < N_NAMES; i++) {
        printf("%-9s %-64s", names[i].name, names[i].what);
        for (int j = 0; j < N_PROGRAMS; j++)
            if (has_word(programs[j].runs_under, names[i].name))
                printf(" %s", programs[j].file);
        printf("\n");
    }
}

/* ---- figures ----------------------------------------------------------------------- */

typedef struct figure {
    char *bench, *impl, *unit; /* bench points at one allocation holding all three */
    double value[MAX_RUNS];
    bool have[MAX_RUNS];
} figure;

typedef struct figures {
    figure *at;
    size_t n, cap;
} figures;

static figure *find_figure(const figures *f, const char *bench, const char *impl,
                           const char *unit)
{
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->at[i].bench, bench) && !strcmp(f->at[i].impl, impl) &&
            !strcmp(f->at[i].unit, unit))
            return &f->at[i];
    return NULL;
}

/* Record a figure of run (0-based); false when out of memory. */
static bool add_figure(figures *f, const char *bench, const char *impl, const char *unit,
                       int run, double value)
{
    figure *fig = find_figure(f, bench, impl, unit);
    if (!fig) {
        if (f->n == f->cap) {
            size_t cap = f->cap ? 2 * f->cap : 32;
            figure *at = realloc(f->at, cap * sizeof *at);
            if (!at)
                return false;
            f->at = at;
            f->cap = cap;
        }
        size_t lb = strlen(bench) + 1, li = strlen(impl) + 1, lu = strlen(unit) + 1;
        char *s = malloc(lb + li + lu);
        if (!s)
            return false;
        fig = &f->at[f->n++];
        memset(fig, 0, sizeof *fig);
        fig->bench = memcpy(s, bench, lb);
        fig->impl = memcpy(s + lb, impl, li);
        fig->unit = memcpy(s + lb + li, unit, lu);
    }
    fig->value[run] = value;
    fig->have[run] = true;
    return true;
}

static void free_figures(figures *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->at[i].bench);
    free(f->at);
}

/* The figure lines of a program's output (as run.sh and summarize.py take them: four
 * fields, not a comment, a number last); how many, or -1 when out of memory. */
static int parse_output(figures *f, char *text, int run)
{
    int found = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *field[5];
        int n = 0;
        for (char *s2 = NULL, *w = strtok_r(line, " \t\r", &s2); w && n < 5;
             w = strtok_r(NULL, " \t\r", &s2))
            field[n++] = w;
        if (n != 4 || field[0][0] == '#')
            continue;
        char *end;
        errno = 0;
        double v = strtod(field[3], &end);
        if (*end != '\0' || end == field[3] || !isfinite(v))
            continue;
        /* bench_memory's ms_to_half_back is -1 when the memory never came back within
         * the idle time: later than any time (as summarize.py takes it), not earlier */
        if (v < 0 && !strcmp(field[2], "ms_to_half_back"))
            v = INFINITY;
        if (!add_figure(f, field[0], field[1], field[2], run, v))
            return -1;
        found++;
    }
    return found;
}

/* summarize.py's number formats. */
static void fmt(char *buf, size_t size, double v)
{
    if (isinf(v) && v > 0)
        snprintf(buf, size, "never"); /* ms_to_half_back's -1 (parse_output) */
    else
        snprintf(buf, size, v >= 1000 ? "%.0f" : v >= 100 ? "%.1f" : "%.2f", v);
}

static void fmt_ratio(char *buf, size_t size, double r)
{
    snprintf(buf, size, r >= 0.1 ? "%.2f" : "%.2g", r);
}

/* Whether plait's figure and peer's of bench ran pools of different sizes in one run
 * (their `workers` lines): plait_cpu_count() heeds a cgroup's CPU quota, a peer may
 * count the affinity mask only, and such figures do not compare (summarize.py's
 * worker_warnings).  *mine and *theirs: the counts of the first such run. */
static bool workers_differ(const figures *f, const char *bench, const char *peer, double *mine,
                           double *theirs)
{
    const figure *a = find_figure(f, bench, "plait", "workers");
    const figure *b = find_figure(f, bench, peer, "workers");
    for (int i = 0; a && b && i < MAX_RUNS; i++)
        if (a->have[i] && b->have[i] && a->value[i] != b->value[i]) {
            *mine = a->value[i];
            *theirs = b->value[i];
            return true;
        }
    return false;
}

/* The ratio column of a figure: "0.98 vs boost, 0.021 vs ucontext", or ""; a peer
 * whose pool had another size than plait's is named, not compared, and *mismatched
 * set. */
static void ratios(const figures *f, const figure *mine, char *out, size_t size,
                   bool *mismatched)
{
    out[0] = '\0';
    for (size_t p = 0; p < sizeof pairings / sizeof pairings[0]; p++) {
        const pairing *pr = &pairings[p];
        if (strcmp(pr->bench, mine->bench) || strcmp(pr->impl, mine->impl) ||
            strcmp(pr->unit, mine->unit))
            continue;
        for (const char *w = pr->peers; *w;) {
            char peer[64];
            size_t len = strcspn(w, " ");
            snprintf(peer, sizeof peer, "%.*s", (int)len, w);
            w += len;
            w += strspn(w, " ");
            const figure *theirs = find_figure(f, mine->bench, peer, mine->unit);
            if (!theirs)
                continue;
            double r[MAX_RUNS];
            int n = 0, runs = 0; /* runs: plait's */
            for (int i = 0; i < MAX_RUNS; i++) {
                runs += mine->have[i];
                if (mine->have[i] && theirs->have[i] && theirs->value[i] > 0)
                    r[n++] = mine->value[i] / theirs->value[i];
            }
            char num[320];
            double workers_mine, workers_theirs;
            if (n == 0) { /* (said, as summarize.py says it: it was left out) */
                snprintf(num, sizeof num, "no run measured both");
            } else if (workers_differ(f, mine->bench, peer, &workers_mine, &workers_theirs)) {
                snprintf(num, sizeof num, "(%g workers, %g)", workers_mine, workers_theirs);
                *mismatched = true;
            } else {
                fmt_ratio(num, sizeof num, tool_median(r, n));
                if (n < runs) /* the median of fewer runs than plait's figure */
                    snprintf(num + strlen(num), sizeof num - strlen(num), " (%d of %d runs)", n,
                             runs);
            }
            size_t used = strlen(out);
            snprintf(out + used, size - used, "%s%s vs %s", used ? ", " : "", num, peer);
        }
    }
}

/* Print the table: every figure in the order the programs printed them.  true when a
 * ratio was left out as its pools' sizes differed (workers_differ). */
static bool print_table(const figures *f)
{
    bool mismatched = false;
    typedef struct row {
        const char *bench, *impl, *unit;
        /* a figure printed whole: %.0f of the largest double takes 309 digits */
        char median[320], range[648], runs[16], ratio[2048]; /* up to 5 peers */
    } row;
    row *rows = calloc(f->n + 1, sizeof *rows);
    if (!rows) {
        fprintf(stderr, "plait bench: out of memory\n");
        return false;
    }
    rows[0] = (row){.bench = "bench", .impl = "impl", .unit = "unit"};
    strcpy(rows[0].median, "median");
    strcpy(rows[0].range, "min..max");
    strcpy(rows[0].runs, "runs");
    strcpy(rows[0].ratio, "ratio plait/peer");
    int w[6] = {0};
    for (size_t i = 0; i <= f->n; i++) {
        row *r = &rows[i];
        if (i > 0) {
            const figure *fig = &f->at[i - 1];
            double v[MAX_RUNS];
            int n = 0;
            for (int k = 0; k < MAX_RUNS; k++)
                if (fig->have[k])
                    v[n++] = fig->value[k];
            r->bench = fig->bench;
            r->impl = fig->impl;
            r->unit = fig->unit;
            char lo[320], hi[320];
            fmt(r->median, sizeof r->median, tool_median(v, n)); /* sorts v */
            fmt(lo, sizeof lo, v[0]);
            fmt(hi, sizeof hi, v[n - 1]);
            snprintf(r->range, sizeof r->range, "%s..%s", lo, hi);
            snprintf(r->runs, sizeof r->runs, "%d", n);
            ratios(f, fig, r->ratio, sizeof r->ratio, &mismatched);
        }
        const char *col[5] = {r->bench, r->impl, r->unit, r->median, r->range};
        for (int c = 0; c < 5; c++)
            if ((int)strlen(col[c]) > w[c])
                w[c] = (int)strlen(col[c]);
        if ((int)strlen(r->runs) > w[5])
            w[5] = (int)strlen(r->runs);
    }
    for (size_t i = 0; i <= f->n && !tool_interrupted; i++) { /* a signal: no more writes */
        const row *r = &rows[i];
        printf("%-*s  %-*s  %-*s  %*s  %-*s  %*s%s%s\n", w[0], r->bench, w[1], r->impl, w[2],
               r->unit, w[3], r->median, w[4], r->range, w[5], r->runs, r->ratio[0] ? "  " : "",
               r->ratio);
    }
    free(rows);
    return mismatched;
}

/* "machine: 2 CPUs, <model name>, Linux <release>", as run.sh prints it. */
static void print_machine(void)
{
    tool_machine m;
    tool_describe_machine(&m);
    printf("machine: %d CPU%s, %s, Linux %s\n", m.cpus, m.cpus == 1 ? "" : "s",
           m.cpu_model[0] ? m.cpu_model : "unknown CPU", m.kernel[0] ? m.kernel : "?");
}

/* ---- running a program ------------------------------------------------------------- */

/* out = a/b; false if that does not fit. */
static bool join(char out[PATH_MAX], const char *a, const char *b)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", a, b);
    return n >= 0 && n < PATH_MAX;
}

static sigset_t wait_mask; /* the mask while waiting: SIGINT and SIGTERM let through */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleep up to s seconds, or less if a signal comes (which is delivered then). */
static void pause_for(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    ppoll(NULL, 0, &ts, &wait_mask);
}

/* Whether SIGINT or SIGTERM came; lets a pending one in first. */
static bool interrupted(void)
{
    if (!tool_interrupted)
        pause_for(0);
    return tool_interrupted != 0;
}

/* Whether child pid has ended, without reaping it (so its process group id stays
 * taken and can be signalled safely). */
static bool ended(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

/* Kill what is left of the child's process group, then reap the child. */
static int reap(pid_t pid)
{
    int status = 0;
    kill(-pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

/* Stop the child's group: SIGTERM, SIGKILL 2 s later if the child is still there. */
static int stop(pid_t pid)
{
    kill(-pid, SIGTERM);
    for (double end = now_s() + 2; !ended(pid) && now_s() < end;)
        pause_for(0.02);
    return reap(pid);
}

typedef enum { RUN_OK, RUN_FAILED, RUN_INTERRUPTED } run_result;

/* Split the arguments into argv[1..]; argv[0] is path.  At most 7 arguments. */
static void make_argv(char *path, char *args, char *argv[9])
{
    int n = 0;
    argv[n++] = path;
    for (char *save = NULL, *w = strtok_r(args, " ", &save); w && n < 8;
         w = strtok_r(NULL, " ", &save))
        argv[n++] = w;
    argv[n] = NULL;
}

/* Run one program once and record its figures as run `run` (0-based). */
static run_result run_program(const char *dir, const char *file, const char *args_text, int run,
                              int limit_s, figures *f)
{
    char path[PATH_MAX], args[128], *argv[9];
    if (!join(path, dir, file) ||
        snprintf(args, sizeof args, "%s", args_text) >= (int)sizeof args) {
        fprintf(stderr, "plait bench: %s/%s: path too long\n", dir, file);
        return RUN_FAILED;
    }
    make_argv(path, args, argv);

    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        fprintf(stderr, "plait bench: pipe: %s\n", strerror(errno));
        return RUN_FAILED;
    }
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGINT);
    sigaddset(&dfl, SIGTERM);
    sigaddset(&dfl, SIGPIPE);
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &dfl);
    pid_t pid;
    int rc = posix_spawn(&pid, path, &actions, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        fprintf(stderr, "plait bench: cannot run %s: %s\n", path, strerror(rc));
        return RUN_FAILED;
    }

    /* Read its output to the end, then wait for it to end; within the time limit.  The
     * end of its output is the end of the pipe, or, once the program itself has ended,
     * the moment nothing more is there, or a pipe's worth read since (all it wrote was
     * in the pipe as it ended): a process it left behind may hold the pipe open (the
     * tool once waited for that one, then called the program still running), and
     * write to it (it was read until the time limit, at every look the pipe had
     * something). */
    int pipe_size = fcntl(fds[0], F_GETPIPE_SZ);
    size_t after_end = 0, after_end_most = pipe_size > 0 ? (size_t)pipe_size : 1 << 20;
    size_t len = 0, cap = 4096;
    char *out = malloc(cap);
    double deadline = now_s() + limit_s;
    bool reading = true, timed_out = false, nomem = out == NULL, program_ended = false;
    bool cut = false; /* output past MAX_OUTPUT was dropped: its last line is cut short */
    int status = 0;
    for (;;) {
        if (tool_interrupted) {
            stop(pid);
            close(fds[0]);
            free(out);
            return RUN_INTERRUPTED;
        }
        double left = deadline - now_s();
        if (left <= 0) {
            timed_out = true;
            status = stop(pid);
            break;
        }
        if (!reading) {
            if (ended(pid)) {
                status = reap(pid);
                break;
            }
            pause_for(left < 0.02 ? left : 0.02);
            continue;
        }
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        double slice = program_ended ? 0 : left < 0.05 ? left : 0.05;
        struct timespec ts = {.tv_sec = (time_t)slice,
                              .tv_nsec = (long)((slice - (double)(time_t)slice) * 1e9)};
        int ready = ppoll(&pfd, 1, &ts, &wait_mask);
        if (ready == 0 && program_ended)
            reading = false; /* it has ended, and all it wrote is read */
        else if (ready == 0)
            program_ended = ended(pid); /* then one more look for what it wrote last */
        if (ready <= 0)
            continue; /* a signal, or the time is up: both looked at above */
        char buf[4096];
        ssize_t got = read(fds[0], buf, sizeof buf);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            reading = false;
            continue;
        }
        if (!program_ended)
            program_ended = ended(pid);
        else if ((after_end += (size_t)got) > after_end_most)
            reading = false; /* (what is kept has all it wrote) */
        if (!nomem && len + (size_t)got + 1 > MAX_OUTPUT)
            cut = true; /* keep no more, not even a later read that would fit */
        if (nomem || cut)
            continue; /* keep draining; what is kept is enough for any benchmark */
        if (len + (size_t)got + 1 > cap) {
            while (len + (size_t)got + 1 > cap)
                cap *= 2;
            char *more = realloc(out, cap);
            if (!more) {
                nomem = true;
                continue;
            }
            out = more;
        }
        memcpy(out + len, buf, (size_t)got);
        len += (size_t)got;
    }
    close(fds[0]);

    const char *what = NULL;
    char why[96];
    if (timed_out) {
        snprintf(why, sizeof why, "still running after %d s: stopped", limit_s);
        what = why;
    } else if (WIFSIGNALED(status)) {
        snprintf(why, sizeof why, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
        what = why;
    } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        snprintf(why, sizeof why, "exited with status %d", WEXITSTATUS(status));
        what = why;
    } else if (nomem) {
        what = "out of memory reading its output";
    } else {
        if (cut) { /* a line cut short is no figure: "... 1000" kept as "... 1" */
            char *nl = memrchr(out, '\n', len);
            len = nl ? (size_t)(nl - out) + 1 : 0;
        }
        out[len] = '\0';
        int found = parse_output(f, out, run);
        if (found < 0)
            what = "out of memory reading its output";
        else if (found == 0)
            what = "printed no figure lines";
    }
    free(out);
    if (what) {
        fprintf(stderr, "plait bench: %s %s (run %d): %s\n", file, args_text, run + 1, what);
        return RUN_FAILED;
    }
    return RUN_OK;
}

/* ---- finding the programs ---------------------------------------------------------- */

static bool is_program(const char *dir, const char *file)
{
    char path[PATH_MAX];
    return join(path, dir, file) && access(path, X_OK) == 0;
}

/* The first of the candidate directories holding any of the selected programs, into
 * dir; false (having said where it looked) if none. */
static bool find_dir(const bool *selected, char dir[PATH_MAX])
{
    char candidates[2][PATH_MAX];
    int n = 0;
    const char *env = getenv("PLAIT_BENCH_DIR");
    if (env && *env) {
        if (snprintf(candidates[n++], PATH_MAX, "%s", env) >= PATH_MAX) {
            fprintf(stderr, "plait bench: PLAIT_BENCH_DIR is too long\n");
            return false;
        }
    } else {
        char self[PATH_MAX];
        ssize_t got = readlink("/proc/self/exe", self, sizeof self - 1);
        if (got <= 0) {
            fprintf(stderr,
                    "plait bench: cannot find the tool's own directory (/proc/self/exe: %s); "
                    "set PLAIT_BENCH_DIR to where the benchmark programs are\n",
                    got < 0 ? strerror(errno) : "empty");
            return false;
        }
        self[got] = '\0';
        char *slash = strrchr(self, '/');
        if (slash)
            *slash = '\0';
        bool fits = join(candidates[n++], self, "bench");
        if (PLAIT_BENCH_LIBEXEC[0] == '/')
            fits &= snprintf(candidates[n++], PATH_MAX, "%s", PLAIT_BENCH_LIBEXEC) < PATH_MAX;
        else
            fits &= join(candidates[n++], self, PLAIT_BENCH_LIBEXEC);
        if (!fits) {
            fprintf(stderr, "plait bench: the tool's directory %s: path too long\n", self);
            return false;
        }
    }
    for (int c = 0; c < n; c++)
        for (int i = 0; i < N_PROGRAMS; i++)
            if (selected[i] && is_program(candidates[c], programs[i].file)) {
                if (!realpath(candidates[c], dir)) /* bin/../libexec/plait: say it plainly */
                    memcpy(dir, candidates[c], PATH_MAX);
                return true;
            }
    if (n == 1)
        fprintf(stderr,
                "plait bench: no benchmark programs (bench_*, peer_*) in %s (PLAIT_BENCH_DIR)\n",
                candidates[0]);
    else
        fprintf(stderr,
                "plait bench: the benchmark programs (bench_*, peer_*) are neither in %s nor "
                "in %s; build them with the tool (cmake --build BUILD --target plait_tool), "
                "install them, or set PLAIT_BENCH_DIR\n",
                candidates[0], candidates[1]);
    return false;
}

/* ---- the command ------------------------------------------------------------------- */

/* N of --runs N: 1..MAX_RUNS, digits only; -1 otherwise. */
static int parse_runs(const char *s)
{
    if (!*s || strspn(s, "0123456789") != strlen(s))
        return -1;
    s += strspn(s, "0"); /* 099 is 99 (it was refused as out of range) */
    if (strlen(s) > 2)
        return -1;
    int n = atoi(s);
    return n >= 1 && n <= MAX_RUNS ? n : -1;
}

static int measure(bool *selected, int runs, bool quick)
{
    char dir[PATH_MAX];
    if (!find_dir(selected, dir))
        return TOOL_FAILED;
    bool failed = false;
    int chosen = 0;
    for (int i = 0; i < N_PROGRAMS; i++) {
        if (selected[i] && !is_program(dir, programs[i].file)) {
            fprintf(stderr, "plait bench: %s/%s: not there or not executable\n", dir,
                    programs[i].file);
            selected[i] = false;
            failed = true;
        }
        chosen += selected[i];
    }

    tool_catch_interrupts(true);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &old);
    wait_mask = old;
    sigdelset(&wait_mask, SIGINT);
    sigdelset(&wait_mask, SIGTERM);
    sigdelset(&wait_mask, SIGHUP);

    figures f = {0};
    int result = TOOL_OK;
    double start = now_s();
    fprintf(stderr, "plait bench: %d program%s from %s, %d run%s%s\n", chosen,
            chosen == 1 ? "" : "s", dir, runs, runs == 1 ? "" : "s",
            quick ? " (quick: small counts)" : "");
    for (int r = 0; r < runs && result == TOOL_OK; r++) {
        for (int i = 0; i < N_PROGRAMS; i++) {
            if (!selected[i])
                continue;
            if (interrupted()) {
                result = TOOL_INTERRUPTED;
                break;
            }
            const program *p = &programs[i];
            const char *args = quick ? p->quick : r == 0 && p->full_first ? p->full_first : p->full;
            fprintf(stderr, "plait bench: run %d of %d: %s %s\n", r + 1, runs, p->file, args);
            run_result rr =
                run_program(dir, p->file, args, r, quick ? LIMIT_QUICK_S : LIMIT_FULL_S, &f);
            if (rr == RUN_INTERRUPTED) {
                result = TOOL_INTERRUPTED;
                break;
            }
            failed |= rr == RUN_FAILED;
        }
    }
    if (result == TOOL_OK && interrupted())
        result = TOOL_INTERRUPTED;
    if (result == TOOL_OK) {
        /* The results' writes may wait for a reader that stopped reading: a signal then
         * cuts them short (no SA_RESTART) and stops the command, as compare's and tour's
         * (it was blocked until the command's end, and the results came out once the
         * reader went on, exit 0). */
        sigprocmask(SIG_SETMASK, &old, NULL);
        print_machine();
        double took = now_s() - start; /* (a quick run under a second said "0 s") */
        printf("runs: %d%s, %.*f s\n\n", runs, quick ? " (quick: small counts)" : "",
               took < 9.95 ? 1 : 0, took);
        bool mismatched = false;
        if (f.n > 0)
            mismatched = print_table(&f);
        else
            printf("no figures: no program gave any\n");
        if (!tool_interrupted)
            printf("\nratio plait/peer: the median of the per-run ratios; below 1 plait is "
                   "faster\nor smaller for times and sizes, above 1 it is faster for rates "
                   "(_per_s) and\nspeed-ups.  Peers on Go, Python, Boost, OpenMP and oneTBB: "
                   "bench/run.sh.\n");
        /* once interrupted, what is buffered is dropped (plait.c), not waited for */
        if (tool_interrupted || tool_stdout_status() == TOOL_INTERRUPTED) {
            result = TOOL_INTERRUPTED;
        } else if (failed) {
            fprintf(stderr, "plait bench: some programs failed (see above)\n");
            result = TOOL_FAILED;
        } else if (mismatched) {
            fprintf(stderr, "plait bench: plait's pool and a peer's ran different numbers of "
                            "workers (shown in the ratio column): those figures do not "
                            "compare (plait_cpu_count() heeds the cgroup's CPU quota, the "
                            "peer counts the affinity mask only)\n");
            result = TOOL_FAILED;
        }
    }
    free_figures(&f);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return result;
}

int tool_bench(int argc, char **argv)
{
    bool selected[N_PROGRAMS] = {false}, any = false, quick = false, list = false, help = false;
    int runs = -1;
    bool options = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options && a[0] == '-') {
            if (!strcmp(a, "--")) {
                options = false;
            } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
                help = true;
            } else if (!strcmp(a, "--quick")) {
                quick = true;
            } else if (!strcmp(a, "--list")) {
                list = true;
            } else if (!strcmp(a, "--runs") || !strncmp(a, "--runs=", 7)) {
                const char *v = a[6] == '=' ? a + 7 : i + 1 < argc ? argv[++i] : NULL;
                if (!v) {
                    fprintf(stderr, "plait bench: --runs needs a number (1..%d)\n", MAX_RUNS);
                    return TOOL_USAGE;
                }
                int n = parse_runs(v);
                if (n < 0) {
                    fprintf(stderr, "plait bench: --runs '%s': wants a number from 1 to %d\n", v,
                            MAX_RUNS);
                    return TOOL_USAGE;
                }
                /* two counts: the first was dropped without a word */
                if (runs >= 0 && n != runs) {
                    fprintf(stderr, "plait bench: --runs given twice ('%d', '%s')\n", runs, v);
                    return TOOL_USAGE;
                }
                runs = n;
            } else {
                fprintf(stderr, "plait bench: unknown option '%s' (plait bench --help)\n", a);
                return TOOL_USAGE;
            }
            continue;
        }
        int k = 0;
        while (k < N_NAMES && strcmp(names[k].name, a))
            k++;
        if (k == N_NAMES) {
            fprintf(stderr,
                    "plait bench: unknown benchmark '%s' (plait bench --list shows the names)\n",
                    a);
            return TOOL_USAGE;
        }
        for (int j = 0; j < N_PROGRAMS; j++)
            if (has_word(programs[j].runs_under, a))
                selected[j] = true;
        any = true;
    }
    if (help) {
        usage(stdout);
        return TOOL_OK;
    }
    if (list) {
        list_names();
        return TOOL_OK;
    }
    if (!any)
        for (int j = 0; j < N_PROGRAMS; j++)
            selected[j] = true;
    if (runs < 0)
        runs = quick ? 1 : DEFAULT_RUNS;
    return measure(selected, runs, quick);
}
