/*
 * plait — the command-line tool.
 *
 *   plait tour     the classic examples, each with its interleaving and total time
 *   plait version  the library version
 *
 * Exit codes: 0 success, 1 an example failed, 2 a usage error.
 */
#include "../examples/example.h"

#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: plait <command>\n"
            "\n"
            "commands:\n"
            "  tour      run the classic concurrency examples and time them\n"
            "  version   print the version\n"
            "  help      this text\n"
            "\n"
            "exit status: 0 success, 1 an example failed, 2 usage error\n");
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
         "2 threads x 1,000,000 increments lose updates; with a plait_mutex the total is exact",
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
         "200 clients x 10 requests of 5 ms, 10 s one by one: all three overlap the waits; "
         "processes pay a fork each",
         example_io_models},
        {"I/O: a fan-out to thousands of connections from one thread",
         "thousands of connections each answered after 200 ms: about 200 ms plus "
         "connecting, not one after another",
         example_fanout},
    };
    int failed = 0;
    int64_t start = plait_now();
    for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++) {
        printf("\n== %s\n   (%s)\n", stops[i].title, stops[i].expect);
        fflush(stdout);
        if (stops[i].run() != 0)
            failed++;
        fflush(stdout);
    }
    printf("\ntour: %zu examples, %d failed, %.3f s in total\n", sizeof stops / sizeof stops[0],
           failed, (double)(plait_now() - start) / PLAIT_SEC);
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "tour") && argc == 2)
        return tour();
    if (!strcmp(argv[1], "version") && argc == 2) {
        printf("plait %d.%d.%d\n", PLAIT_VERSION_MAJOR, PLAIT_VERSION_MINOR, PLAIT_VERSION_PATCH);
        return 0;
    }
    if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "plait: unknown command or option '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
