/*
 * test_fork_set_free.c — a plait_completed set freed while a fork from a coroutine
 * holds the lock of a task the set has just handed back.
 *
 * plait_completed_next pops a finished task off the set's done list, counts it out of
 * `watched` and out of `inside`, unlocks the set, and only then takes the task's lock
 * to clear its `watch`.  Meanwhile the task still names the set, and a destroy on
 * another thread frees it (nothing counts the task any more).  A fork from a coroutine
 * of the task's scheduler holds the task's lock across that window
 * (plait__future_sched_atfork) and reads f->watch->fork_held, locks and unlocks the set,
 * and, in the child, walks its wait queue: all on freed memory.
 *
 * Linked with --wrap=plait__coro_cancel (a canceller parks holding another task's lock,
 * so that the fork's prepare pauses in plait__spin_pause), --wrap=plait__spin_pause
 * (the pause orchestrates: the set's next, then its destroy, then lets the canceller
 * go), --wrap=plait__wakeups_deliver (which next calls once it has popped the task and
 * unlocked the set, before it takes the task's lock: the taker says so there) and
 * --wrap=free (the set's memory is kept, filled with 0x01, instead of freed, and
 * checked afterwards).
 */
#include "fork_child.h"

#include "../src/internal.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

void __real_plait__coro_cancel(void *coro);
void __wrap_plait__coro_cancel(void *coro);
void __real_plait__spin_pause(unsigned spins);
void __wrap_plait__spin_pause(unsigned spins);
void __real_plait__wakeups_deliver(plait__wakeups *w);
void __wrap_plait__wakeups_deliver(plait__wakeups *w);
void __real_free(void *p);
void __wrap_free(void *p);

static atomic_int park_next_cancel, parked, released;
static _Thread_local bool forking, taking;
static atomic_int orchestrated, go_next, popped, go_destroy, destroyed, destroy_result;
static _Atomic(void *) quarantine;
static atomic_int quarantined;
static size_t quarantined_size;

void __wrap_free(void *p)
{
    if (p && p == atomic_load(&quarantine)) {
        quarantined_size = malloc_usable_size(p);
        memset(p, 1, quarantined_size);
        atomic_store(&quarantined, 1);
        return;
    }
    __real_free(p);
}

/* The taker's next has popped the task and unlocked the set (its first delivery of
 * wake-ups); it takes the task's lock next, which the fork holds. */
void __wrap_plait__wakeups_deliver(plait__wakeups *w)
{
    __real_plait__wakeups_deliver(w);
    if (taking) {
        taking = false;
        atomic_store(&popped, 1);
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

/* The fork's prepare found the parked canceller's task locked: the set's next, then
 * its destroy, happen now; then the canceller goes on. */
void __wrap_plait__spin_pause(unsigned spins)
{
    if (forking && !atomic_exchange(&orchestrated, 1)) {
        atomic_store(&go_next, 1);
        wait_for(&popped); /* the taker has popped the task and goes for its lock */
        atomic_store(&go_destroy, 1);
        wait_for(&destroyed);
        atomic_store(&released, 1);
    }
    __real_plait__spin_pause(spins);
}

static plait_completed *set;
static plait_task finished, sleeper;

static void *forty_two(void *arg)
{
    (void)arg;
    return ARG(42);
}

static void *wait_to_be_cancelled(void *arg)
{
    (void)arg;
    return PLAIT_FAIL(plait_sleep_until(PLAIT_FOREVER));
}

static void *cancel_sleeper(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_cancel(sleeper), 0);
    return NULL;
}

static void *take_next(void *arg)
{
    (void)arg;
    wait_for(&go_next);
    plait_task t = {0};
    taking = true;
    CHECK_EQ(plait_completed_next(set, &t, SOON()), 0);
    CHECK(t.future == finished.future);
    void *value = NULL;
    CHECK_EQ(plait_join(t, &value, SOON()), 0);
    CHECK_EQ(INT(value), 42);
    return NULL;
}

static void *destroy_set(void *arg)
{
    (void)arg;
    wait_for(&go_destroy);
    atomic_store(&destroy_result, plait_completed_destroy(set));
    atomic_store(&destroyed, 1);
    return NULL;
}

static void *fork_while_a_set_goes(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_spawn(&finished, forty_two, NULL), 0);
    CHECK_EQ(plait_spawn(&sleeper, wait_to_be_cancelled, NULL), 0);
    /* the fork's walk meets the finished task before the sleeper (one chunk, in order) */
    CHECK((char *)finished.future < (char *)sleeper.future);
    CHECK_EQ(plait_wait_any(&finished, 1, SOON()), 0);
    settle();
    CHECK_EQ(plait_completed_create(&set), 0);
    CHECK_EQ(plait_completed_add(set, finished), 0); /* on the done list */
    atomic_store(&quarantine, set);
    pthread_t taker, destroyer, canceller;
    thread_start(&taker, take_next, NULL);
    thread_start(&destroyer, destroy_set, NULL);
    atomic_store(&park_next_cancel, 1);
    thread_start(&canceller, cancel_sleeper, NULL);
    wait_for(&parked);
    forking = true;
    pid_t pid = fork_child(false);
    forking = false;
    if (pid == 0)
        child_exit();
    (void)reap_ok;
    int status = reap_within(pid, 5);
    printf("child: %s %d\n", WIFEXITED(status) ? "exit" : "signal",
           WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ(atomic_load(&orchestrated), 1);
    thread_join(taker);
    thread_join(destroyer);
    thread_join(canceller);
    printf("destroy during the fork: %d, set freed then: %d\n", atomic_load(&destroy_result),
           atomic_load(&quarantined));
    if (atomic_load(&destroy_result) == -EBUSY) /* the taker was still inside next */
        CHECK_EQ(plait_completed_destroy(set), 0);
    if (atomic_load(&quarantined)) {
        size_t touched = 0;
        for (size_t i = 0; i < quarantined_size; i++)
            touched += ((unsigned char *)set)[i] != 1;
        printf("bytes of the freed set written since its free: %zu\n", touched);
        CHECK_EQ(touched, 0);
    }
    CHECK_EQ(plait_join(sleeper, NULL, SOON()), -ECANCELED);
    return NULL;
}

/* A set's next hands a finished task of the forking thread's scheduler back and a
 * destroy frees the set, while the fork holds that task's lock: the fork must not
 * touch the freed set (it wrote to it, and the child walked its waiters). */
TEST(a_set_freed_while_a_fork_holds_a_task_it_handed_back)
{
    check_run(fork_while_a_set_goes, NULL);
}

RUN_TESTS(CASE(a_set_freed_while_a_fork_holds_a_task_it_handed_back))
