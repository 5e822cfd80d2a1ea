/* example.h — what the examples share: a clock that starts with the example, and the
 * convention that lets `plait tour` run them (each file has a main unless built into
 * the tool with PLAIT_TOUR). */
#ifndef PLAIT_EXAMPLE_H
#define PLAIT_EXAMPLE_H

#include <plait.h>
#include <errno.h>
#include <stdio.h>

static int64_t example_start;

/* Seconds since the example started, for its log lines. */
static inline double example_elapsed(void)
{
    return (double)(plait_now() - example_start) / PLAIT_SEC;
}

/* The end of an example whose units wait at once: `done` (what ended) and whether they
 * overlapped, which they did not if it took `limit` seconds (the sum of their waits)
 * or more; then the example fails (-EIO), whatever the waits returned. */
static inline void *example_overlap(const char *done, const char *units, double limit)
{
    double took = example_elapsed();
    printf("  %5.3f s  %s: the %s %s\n", took, done, units,
           took < limit ? "overlapped" : "did NOT overlap");
    return took < limit ? NULL : PLAIT_FAIL(-EIO);
}

/* Run fn as the main coroutine of a scheduler, timed from now, and report. */
static inline int example_run(plait_fn fn, const char *what)
{
    example_start = plait_now();
    int r = plait_run(fn, NULL, NULL);
    printf("  %s took %.3f s in total (%s)\n", what, example_elapsed(),
           r == 0 ? "ok" : plait_strerror(r));
    return r;
}

#ifdef PLAIT_TOUR
#define EXAMPLE_MAIN(fn)
#else
/* (they take no arguments: one given is refused, not ignored) */
#define EXAMPLE_MAIN(fn)                                                   \
    int main(int argc, char **argv)                                        \
    {                                                                      \
        if (argc > 1) {                                                    \
            fprintf(stderr, "usage: %s   (no arguments)\n", argv[0]);     \
            return 2;                                                      \
        }                                                                  \
        return fn() == 0 ? 0 : 1;                                          \
    }
#endif

int example_sleepers(void);
int example_two_tasks(void);
int example_producer_consumer(void);
int example_thread_sleepers(void);
int example_counter_race(void);
int example_cpu_speedup(void);
int example_process_sleepers(void);
int example_cpu_processes(void);
int example_crash_isolation(void);
int example_fork_sharing(void);
int example_io_models(void);
int example_fanout(void);

#endif
