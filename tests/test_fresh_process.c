/*
 * test_fresh_process.c — what must hold when a coroutine is the first to reach a code
 * path in the whole process (a process of its own: the other test binaries have warmed
 * everything up by the time they get there).
 *
 * Regression: a detached coroutine frees its own future as it ends, on its own stack.
 * The first such free in a process used to set up the thread's future cache through
 * pthread_once/pthread_setspecific, whose lazily bound symbols made the dynamic linker
 * run on a 2 KiB stack and overflow it (bench_memory aborted).
 */
#include "helpers.h"

static void *tiny_detached(void *p)
{
    plait_waitgroup_done(p);
    return NULL;
}

static void *tiny_main(void *p)
{
    (void)p;
    plait_waitgroup *wg;
    CHECK_EQ(plait_waitgroup_create(&wg), 0);
    plait_spawn_options small = {.stack_size = CHECK_SMALL_STACK};
    for (int i = 0; i < 100; i++) {
        CHECK_EQ(plait_waitgroup_add(wg, 1), 0);
        CHECK_EQ(plait_spawn_opts(NULL, tiny_detached, wg, &small), 0);
    }
    CHECK_EQ(plait_waitgroup_wait(wg, SOON()), 0);
    settle(); /* let them finish and free their futures */
    CHECK_EQ(plait_waitgroup_destroy(wg), 0);
    return NULL;
}

TEST(small_stack_detached_first_in_process) { check_run(tiny_main, NULL); }

RUN_TESTS(CASE(small_stack_detached_first_in_process))
