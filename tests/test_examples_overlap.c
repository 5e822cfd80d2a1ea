/*
 * test_examples_overlap.c — the coroutine examples check their own total time, as the
 * thread and process sleepers do (each failed first).
 *
 * examples/sleepers.c and two_tasks.c are built into this file, their plait_sleep
 * wrapped (-Wl,--wrap=plait_sleep): in the cases below it blocks the thread instead of
 * suspending the coroutine, so the sleeps run one after the other, 3 s in all for
 * either example.  They still said "ok" and returned 0: nothing checked that the
 * sleeps had overlapped, the point of both examples.  Each must now say so and fail.
 * Unwrapped, they overlap and pass.
 *
 * examples/process_sleepers.c is built in too, with plait_spawn wrapped
 * (-Wl,--wrap=plait_spawn): armed, it fails as out of memory, leaving garbage in the
 * handle (as an uninitialised variable holds: plait.h sets none on failure).  The example
 * cancelled and joined its ticker's handle whether its spawn had worked or not: a
 * handle never set (session 51's examples audit).  It must report the failure alone.
 */
#include "check.h"

#include <stdbool.h>

#define PLAIT_TOUR /* the examples' own main is left out */
#define run sleepers_run
#include "../examples/sleepers.c"
#undef run
#define run two_tasks_run
#include "../examples/two_tasks.c"
#undef run
#define run process_sleepers_run
#define sleeper process_sleeper
#include "../examples/process_sleepers.c"
#undef sleeper
#undef run

int __real_plait_spawn(plait_task *task, plait_fn fn, void *arg);
int __wrap_plait_spawn(plait_task *task, plait_fn fn, void *arg);

static bool spawns_fail;

int __wrap_plait_spawn(plait_task *task, plait_fn fn, void *arg)
{
    if (!spawns_fail)
        return __real_plait_spawn(task, fn, arg);
    memset(task, 0xa5, sizeof *task); /* what an uninitialised variable may hold */
    return -ENOMEM;
}

int __real_plait_sleep(int64_t duration);
int __wrap_plait_sleep(int64_t duration);

static bool serial_sleeps; /* set: plait_sleep blocks the whole thread */

int __wrap_plait_sleep(int64_t duration)
{
    if (!serial_sleeps)
        return __real_plait_sleep(duration);
    struct timespec ts = {.tv_sec = duration / PLAIT_SEC, .tv_nsec = duration % PLAIT_SEC};
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR) {
    }
    return 0;
}

/* The example run with its sleeps one after the other (serial) or as they are. */
static int run_example(int (*example)(void), bool serial)
{
    serial_sleeps = serial;
    int r = example();
    serial_sleeps = false;
    return r;
}

TEST(sleepers_overlap) { CHECK_EQ(run_example(example_sleepers, false), 0); }
TEST(sleepers_one_after_another_fail) { CHECK_EQ(run_example(example_sleepers, true), -EIO); }
TEST(two_tasks_overlap) { CHECK_EQ(run_example(example_two_tasks, false), 0); }
TEST(two_tasks_one_after_another_fail) { CHECK_EQ(run_example(example_two_tasks, true), -EIO); }

/* Its ticker not spawned: the example fails with that code, joining nothing. */
TEST(process_sleepers_without_its_ticker_fail)
{
    spawns_fail = true;
    CHECK_EQ(example_process_sleepers(), -ENOMEM);
    spawns_fail = false;
}

RUN_TESTS(CASE(sleepers_overlap), CASE(sleepers_one_after_another_fail), CASE(two_tasks_overlap),
          CASE(two_tasks_one_after_another_fail), CASE(process_sleepers_without_its_ticker_fail))
