/* push_wakes_sleeper.h — a task pushed on a worker's deque wakes a worker that is going
 * to sleep (test_pool.c, and test_pool_sandboxed.c where the heavy fence fails).
 *
 * The push and the sleeper's last look for work shake hands (src/pool.c, "Sleeping");
 * a lost wake-up leaves the task on the deque of a worker that cannot run it.  Each
 * round's task pushes a child and then blocks its worker in a wait that does not help
 * (an event), so only the other worker can run the child; that one has just finished
 * the round before and is looking for work or going to sleep.  The task spins a little
 * longer each round before it pushes, sweeping the push across the other worker's
 * 100 µs of looking and the moment it sleeps.  A lost wake-up fails the round at the
 * event's deadline (the child then runs in the task's own join).  With the sleeper's
 * fence taken out, this failed in 3 of 14 runs of 4,000 rounds. */
#ifndef PLAIT_TESTS_PUSH_WAKES_SLEEPER_H
#define PLAIT_TESTS_PUSH_WAKES_SLEEPER_H

#include "helpers.h"

static struct {
    plait_pool *pool;
    plait_event *child_ran;
} sleeper;

static void *sets_child_ran(void *p)
{
    CHECK_EQ(plait_event_set(sleeper.child_ran), 0);
    return p;
}

static void *pushes_then_blocks(void *p)
{
    int64_t until = plait_now() + INT(p);
    while (plait_now() < until)
        ;
    plait_task child;
    CHECK_EQ(plait_pool_submit(sleeper.pool, &child, sets_child_ran, NULL), 0);
    int r = plait_event_wait(sleeper.child_ran, SOON());
    CHECK_EQ(plait_join(child, NULL, SOON()), 0); /* runs it here if nobody did */
    return r ? PLAIT_FAIL(r) : NULL;
}

/* Runs `rounds` rounds on a new pool of two workers; 0, or the first round (from 1)
 * whose child waited on the deque until the deadline. */
static int push_wakes_sleeper_rounds(int rounds)
{
    sleeper.pool = NULL;
    CHECK_EQ(plait_pool_create(&sleeper.pool, &(plait_pool_options){.threads = 2, .name = "sleeper"}), 0);
    CHECK_EQ(plait_event_create(&sleeper.child_ran), 0);
    int missed = 0;
    for (int round = 0; round < rounds && !missed; round++) {
        CHECK_EQ(plait_event_reset(sleeper.child_ran), 0);
        int spin_ns = round * 7919 % 150000;
        plait_task task;
        CHECK_EQ(plait_pool_submit(sleeper.pool, &task, pushes_then_blocks, ARG(spin_ns)), 0);
        if (plait_join(task, NULL, plait_deadline_in(30 * PLAIT_SEC)) != 0)
            missed = round + 1;
    }
    CHECK_EQ(plait_pool_destroy(sleeper.pool), 0);
    CHECK_EQ(plait_event_destroy(sleeper.child_ran), 0);
    return missed;
}

#endif
