/*
 * plait — the command-line tool.
 *
 *   plait compare  coroutines, threads and processes measured on this machine (compare.c)
 *   plait tour     the classic examples, each with its interleaving and total time
 *   plait bench    plait's microbenchmarks, with the C peers that need no toolchain (bench.c)
 *   plait version  the library version
 *
 * Exit codes (tool.h): 0 success, 1 a measurement or example failed, 2 a usage error,
 * 3 a report could not be written, 130 interrupted.
 */
#include "../examples/example.h"
#include "tool.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio_ext.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: plait <command> [options]\n"
            "\n"
            "commands:\n"
            "  compare   measure coroutines, threads and processes on this machine and say\n"
            "            what suits which work (--quick, --json, --html FILE)\n"
            "  tour      run the classic concurrency examples and time them\n"
            "  bench     run plait's microbenchmarks with their C peers (--quick, --runs N)\n"
            "  version   print the version\n"
            "  help      this text; `plait help COMMAND` or `plait COMMAND --help` for one\n"
            "\n"
            "exit status: 0 success, 1 a measurement or example failed, 2 usage error,\n"
            "3 a report could not be written, 130 interrupted\n");
}

static void tour_usage(FILE *out)
{
    fprintf(out,
            "usage: plait tour\n"
            "\n"
            "Run the classic examples of every strand in one guided run: coroutines (sleepers,\n"
            "tasks of 2 s and 1 s, a channel's producer and consumers), threads (sleepers, a\n"
            "shared counter with and without a lock, CPU-bound speed-up), processes (sleepers,\n"
            "CPU-bound work, a crash that fails one task only, what fork shares) and I/O (one\n"
            "job as coroutines, threads and processes; a fan-out to as many connections as the\n"
            "descriptors allow, up to thousands).  Each prints its interleaving and its total\n"
            "time.\n"
            "\n"
            "Ctrl-C (or SIGTERM, SIGHUP) lets the example running finish and starts no other.\n"
            "\n"
            "exit status: 0 every example worked, 1 an example failed, 2 usage error,\n"
            "3 the output could not be written, 130 interrupted\n");
}

typedef struct tour_stop {
    const char *title;
    const char *expect;
    int (*run)(void);
} tour_stop;

static int tour(void)
{
    static const tour_stop stops[] = {
        {"coroutines: three sleepers", "three coroutines sleep 1 s each: about 1 s, not 3",
         example_sleepers},
        {"coroutines: tasks of 2 s and 1 s", "the total is the longest task: about 2 s",
         example_two_tasks},
        {"coroutines: producer and consumers over a channel",
         "the producer waits when the buffer of 2 is full; close ends the consumers",
         example_producer_consumer},
        {"threads: three sleepers", "three threads sleep 1 s each: about 1 s, not 3",
         example_thread_sleepers},
        {"threads: a shared counter, without and with a lock",
         "2 threads x 1,000,000 increments may lose updates; with a plait_mutex the total is "
         "exact",
         example_counter_race},
        {"threads: CPU-bound work on a pool of 1 thread, then of one per CPU",
         "the same chunks on more threads finish sooner, up to one thread per CPU",
         example_cpu_speedup},
        {"processes: three sleepers", "three processes sleep 1 s each: about 1 s, not 3",
         example_process_sleepers},
        {"processes: CPU-bound work on processes against threads",
         "both use every core; processes pay a copy and a hop per chunk for isolation",
         example_cpu_processes},
        {"processes: a task that crashes its process",
         "the crash fails that task only; the program and the other tasks go on",
         example_crash_isolation},
        {"processes: state shared and not shared after fork",
         "memory is copied (changes stay in the child); shared regions and queues are shared",
         example_fork_sharing},
        {"I/O: the same I/O-bound job as coroutines, threads and processes",
         "200 clients (fewer if descriptors are short) x 10 requests of 5 ms, 10 s one by "
         "one: all three overlap the waits; processes pay a fork each",
         example_io_models},
        {"I/O: a fan-out to many connections from one thread",
         "up to thousands of connections, as the descriptors allow, each answered after "
         "200 ms: about 200 ms plus connecting, not one after another",
         example_fanout},
    };
    int failed = 0;
    int64_t start = plait_now();
    /* Ctrl-C or SIGTERM: the example running ends (and is printed), no other starts */
    tool_catch_interrupts(false);
    size_t ran = 0, all = sizeof stops / sizeof stops[0];
    for (; ran < all && !tool_interrupted; ran++) {
        printf("\n== %s\n   (%s)\n", stops[ran].title, stops[ran].expect);
        fflush(stdout);
        if (stops[ran].run() != 0)
            failed++;
        /* nobody reads: start no other.  A signal that cut a blocked write short left
         * an error on stdout too: that is an interrupted tour (130), not lost output. */
        if (tool_stdout_status() == TOOL_OUTPUT) {
            fprintf(stderr, "plait tour: cannot write the output: %s; stopped after %zu of "
                            "%zu examples\n", strerror(errno), ran + 1, all);
            return TOOL_OUTPUT;
        }
    }
    if (!tool_interrupted) {
        printf("\ntour: %zu examples, %d failed, %.3f s in total\n", all, failed,
               (double)(plait_now() - start) / PLAIT_SEC);
        if (tool_stdout_status() == TOOL_OUTPUT) {
            fprintf(stderr, "plait tour: cannot write the output: %s\n", strerror(errno));
            return TOOL_OUTPUT;
        }
    }
    if (tool_interrupted) { /* as late as the summary's write: the tour is not complete */
        fprintf(stderr, "plait tour: interrupted after %zu of %zu examples\n", ran, all);
        return TOOL_INTERRUPTED;
    }
    return failed ? TOOL_FAILED : TOOL_OK;
}

#if defined(__SANITIZE_THREAD__)
/* The tool forks children from a threaded program, and some of them start threads (the
 * crash drill's, a process pool's workers); ThreadSanitizer's runtime would make those
 * children die at once ("starting new threads after multi-threaded fork").  plait's own
 * fork handlers keep such children sound, as the test suite checks (tests/check.h). */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "die_after_fork=0";
}
#endif

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
} command;

static int run_tour(int argc, char **argv)
{
    bool help = false;
    int r = tool_parse_plain("tour", argc, argv, &help);
    if (r != 0 || help) {
        tour_usage(r == 0 ? stdout : stderr);
        return r;
    }
    return tour();
}

static void version_usage(FILE *out)
{
    fprintf(out, "usage: plait version\n\nPrint the version of plait.\n");
}

static int run_version(int argc, char **argv)
{
    bool help = false;
    int r = tool_parse_plain("version", argc, argv, &help);
    if (r != 0 || help) {
        version_usage(r == 0 ? stdout : stderr);
        return r;
    }
    printf("plait %d.%d.%d\n", PLAIT_VERSION_MAJOR, PLAIT_VERSION_MINOR, PLAIT_VERSION_PATCH);
    return TOOL_OK;
}

static const command commands[] = {
    {"compare", tool_compare},
    {"tour", run_tour},
    {"bench", tool_bench},
    {"version", run_version},
};

static bool is_help(const char *a)
{
    return !strcmp(a, "help") || !strcmp(a, "--help") || !strcmp(a, "-h");
}

static int unknown_command(const char *name)
{
    fprintf(stderr, "plait: unknown command '%s'\n", name);
    usage(stderr);
    return TOOL_USAGE;
}

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i].name))
            return &commands[i];
    return NULL;
}

/* `plait help [--] [COMMAND [ARG...]]`, argv[0] being help, --help or -h: the list of
 * commands, or `plait COMMAND --help [ARG...]`, which checks the ARGs itself. */
static int run_help(int argc, char **argv)
{
    int i = argc > 1 && !strcmp(argv[1], "--") ? 2 : 1; /* the COMMAND, if any */
    /* after `--` a COMMAND "--help" or "-h" is an argument, not the option (it printed
     * the list of commands): only "help" names help itself there */
    if (i < argc && (i == 2 ? strcmp(argv[i], "help") != 0 : !is_help(argv[i]))) {
        const command *c = find_command(argv[i]);
        if (!c)
            return unknown_command(argv[i]);
        argv[i - 1] = argv[i]; /* argv[i - 1..] becomes COMMAND --help ARG... */
        argv[i] = "--help";
        return c->run(argc - i + 1, argv + i - 1);
    }
    /* `plait help`, `plait --help`, `plait help help`: what follows is help's own */
    bool help = false;
    int r = i < argc ? tool_parse_plain("help", argc - i, argv + i, &help) : 0;
    usage(r == 0 ? stdout : stderr);
    return r;
}

static int run_command(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return TOOL_USAGE;
    }
    if (is_help(argv[1]))
        return run_help(argc - 1, argv + 1);
    const command *c = find_command(argv[1]);
    return c ? c->run(argc - 1, argv + 1) : unknown_command(argv[1]);
}

int main(int argc, char **argv)
{
    /* A reader that goes away (`plait compare 2>&1 | head -1`) makes a write fail with
     * EPIPE rather than kill the tool: a signal death would leave the report's temporary
     * file behind and exit 141, none of the exit codes above.  The programs bench.c
     * starts get SIGPIPE's default back; the processes the others fork run no program. */
    signal(SIGPIPE, SIG_IGN);
    tool_hold_closed_streams();
    int r = run_command(argc, argv);
    /* An interrupted command may leave output that a reader which stopped reading never
     * took (the table of a compare run cut short): dropped, not waited for again. */
    if (r == TOOL_INTERRUPTED) {
        __fpurge(stdout);
        clearerr(stdout);
    }
    /* what a command printed and could not write (a full disk, a closed pipe) is a
     * failure, whatever the command made of it; a command that said so already
     * (TOOL_OUTPUT) is not said twice */
    if ((fflush(stdout) != 0 || ferror(stdout)) && r != TOOL_OUTPUT) {
        fprintf(stderr, "plait: cannot write the output: %s\n", strerror(errno));
        /* as compare and tour do: output lost is 3, whether or not something also
         * failed (bench with a failed program exited 1, its results unwritten) */
        if (r == TOOL_OK || r == TOOL_FAILED)
            r = TOOL_OUTPUT;
    }
    return r;
}
