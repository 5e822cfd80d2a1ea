/*
 * test_fork_handles.c — the handle of a task of the parent's other threads, in a child
 * forked while another thread of the parent held its lock.
 *
 * plait_cancel of a coroutine of another scheduler holds the task's lock while it
 * posts the cancellation to that scheduler's inbox.  This test is linked with
 * --wrap=plait__coro_cancel, whose wrapper parks the canceller inside that window on
 * demand; the main thread forks meanwhile.  The child got the lock held for ever: its
 * own calls on the handle spun in it (and the child never ended).  They must answer
 * -EPERM, as for any task that is not the child's, without touching the lock.
 */
#include "helpers.h"

#include <stdatomic.h>
#include <stdbool.h>

void __real_plait__coro_cancel(void *coro);
void __wrap_plait__coro_cancel(void *coro);
static atomic_int park_next_cancel; /* the next plait__coro_cancel parks until released */
static atomic_int parked, released;

/* Wait (bounded: a failure after SOON()) until *flag is set. */
static void wait_for(atomic_int *flag)
{
    int64_t deadline = SOON();
    struct timespec ms = {0, PLAIT_MS};
    while (!atomic_load(flag)) {
        if (plait_now() > deadline) {
            CHECK(!"the flag was never set");
            return;
        }
        nanosleep(&ms, NULL);
    }
}

void __wrap_plait__coro_cancel(void *coro)
{
    if (atomic_exchange(&park_next_cancel, 0)) {
        atomic_store(&parked, 1);
        wait_for(&released);
    }
    __real_plait__coro_cancel(coro);
}

static plait_task target;       /* a coroutine of another thread's scheduler */
static atomic_int target_ready;

static void *wait_to_be_cancelled(void *arg)
{
    (void)arg;
    return PLAIT_FAIL(plait_sleep_until(PLAIT_FOREVER));
}

/* Main of the other thread's scheduler: spawns the target and waits for its end. */
static void *run_target(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_spawn(&target, wait_to_be_cancelled, NULL), 0);
    atomic_store(&target_ready, 1);
    CHECK_EQ(plait_join(target, NULL, PLAIT_FOREVER), -ECANCELED);
    return NULL;
}

static void *cancel_target(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_cancel(target), 0);
    return NULL;
}

static _Noreturn void child_exit(void)
{
    fflush(NULL);
    _exit(check_failures == 0 ? 0 : 1);
}

/* In the child: every call on the parent's task is refused, at once. */
static void calls_on_the_parent_s_task(void)
{
    int64_t start = plait_now();
    CHECK_EQ(plait_cancel(target), -EPERM);
    CHECK_EQ(plait_join(target, NULL, plait_deadline_in(100 * PLAIT_MS)), -EPERM);
    CHECK_EQ(plait_wait_any(&target, 1, plait_deadline_in(100 * PLAIT_MS)), -EPERM);
    CHECK_EQ(plait_detach(target), -EPERM);
    CHECK_PROMPT(start);
}

/* A thread cancels a coroutine of another thread's scheduler and is parked while it
 * holds the task's lock; the main thread forks.  The child's calls on the task answer
 * -EPERM (they spun for ever on the lock); in the parent the cancellation goes on. */
TEST(a_cancel_in_flight_at_a_fork_leaves_the_child_s_calls_answering)
{
    sched_thread st;
    sched_thread_start(&st, run_target, NULL);
    wait_for(&target_ready);
    atomic_store(&park_next_cancel, 1);
    pthread_t canceller;
    thread_start(&canceller, cancel_target, NULL);
    wait_for(&parked);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        calls_on_the_parent_s_task();
        child_exit();
    }
    CHECK(pid > 0);
    int status = reap_within(pid, 5);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    atomic_store(&released, 1);
    thread_join(canceller);
    sched_thread_join(&st);
}

static void *forty_two(void *arg)
{
    (void)arg;
    return ARG(42);
}

/* The rule holds for a task of another thread that had finished before the fork: its
 * handle is the parent's (whose threads may have been joining it), not the child's.
 * A task the child starts itself is its own. */
TEST(a_finished_task_of_another_thread_is_not_the_child_s)
{
    plait_task done;
    CHECK_EQ(plait_thread_start(&done, forty_two, NULL, NULL), 0);
    CHECK_EQ(plait_wait_any(&done, 1, SOON()), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        CHECK_EQ(plait_join(done, NULL, SOON()), -EPERM);
        plait_task own;
        void *value = NULL;
        CHECK_EQ(plait_thread_start(&own, forty_two, NULL, NULL), 0);
        CHECK_EQ(plait_join(own, &value, SOON()), 0);
        CHECK_EQ(INT(value), 42);
        child_exit();
    }
    CHECK(pid > 0);
    int status = reap_within(pid, 5);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    void *value = NULL;
    CHECK_EQ(plait_join(done, &value, SOON()), 0);
    CHECK_EQ(INT(value), 42);
}

RUN_TESTS(CASE(a_cancel_in_flight_at_a_fork_leaves_the_child_s_calls_answering),
          CASE(a_finished_task_of_another_thread_is_not_the_child_s))
