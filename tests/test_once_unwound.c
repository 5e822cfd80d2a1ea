/* test_once_unwound.c — a once's initialiser that never returns because it ends its
 * thread (pthread_exit, or a pthread_cancel acted on inside it).
 *
 * The once stayed "running" for good: every later caller, and every caller already
 * waiting, waited for an initialiser that no thread would finish (a caller with a
 * deadline got -ETIMEDOUT, one without waited for ever).  An initialiser that is
 * unwound is one that failed: the once is left undone, its waiters are woken, and the
 * next caller runs it again, as pthread_once does when its init routine is cancelled.
 *
 *   initialiser_ends_its_thread: a plain thread's initialiser calls pthread_exit; a
 *       caller afterwards runs its own initialiser and gets 0.
 *   initialiser_cancelled_while_another_calls: the initialiser acts on a pthread_cancel
 *       while the main thread calls (waiting on it, or coming after): the main thread's
 *       initialiser runs once, and its call gets 0.
 *   initialiser_in_a_coroutine_ends_its_thread: the initialiser runs in a coroutine,
 *       whose pthread_exit unwinds the coroutine's stack first, then the scheduler's
 *       thread (in a forked child: ThreadSanitizer refuses pthread_exit from a fiber).
 *
 * A fork ends, in the child, every run of the parent's other threads: a once that
 * another thread was running at the fork stayed "running" in the child for good, every
 * caller there waiting for ever (or getting -ETIMEDOUT).  The child now runs it again,
 * as glibc's pthread_once does; a run of the forking thread itself goes on in the child
 * and is not run twice.
 *
 *   another_threads_run_is_run_again_in_the_child: a plain thread is inside the
 *       initialiser at the fork; in the child a call runs its own initialiser and gets
 *       0 (the parent's thread finishes its own afterwards, in the parent).
 *   a_coroutine_waiting_for_another_threads_run_is_woken_in_the_child: a coroutine of
 *       the forking thread's scheduler waits for that once at the fork; in the child it
 *       is woken, runs the initialiser and gets 0.
 *   the_forking_schedulers_run_goes_on_in_the_child: a coroutine of the forking
 *       thread's scheduler is inside the initialiser (waiting on an event) at the fork;
 *       in the child it finishes it, a second caller waits for it and gets 0, and the
 *       initialiser has run once there, not twice.
 *   a_run_whose_init_returned_as_the_fork_began_is_done_in_the_child: the other
 *       thread's initialiser has returned, its run's end waiting for the lock that
 *       plait's fork handler holds: in the child the once is done, not run again.
 */
#include "fork_child.h"

#include "../src/internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

static atomic_int inits;         /* the initialisers that ran to their end */
static atomic_int inside, leave; /* init_held: entered; may return */

static int init_counted(void *arg)
{
    (void)arg;
    atomic_fetch_add(&inits, 1);
    return 0;
}

static int init_exits(void *arg)
{
    (void)arg;
    pthread_exit(NULL);
}

static void *calls_once(void *once)
{
    plait_once_call(once, init_exits, NULL, PLAIT_FOREVER);
    return (void *)1; /* not reached: the initialiser ends the thread */
}

TEST(initialiser_ends_its_thread)
{
    static plait_once once = PLAIT_ONCE_INIT;
    atomic_store(&inits, 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, calls_once, &once), 0);
    void *v = NULL;
    CHECK_EQ(pthread_join(t, &v), 0);
    CHECK(v == NULL);
    CHECK_EQ(plait_once_call(&once, init_counted, NULL, plait_deadline_in(5 * PLAIT_SEC)), 0);
    CHECK_EQ(atomic_load(&inits), 1);
    CHECK_EQ(plait_once_call(&once, init_counted, NULL, 0), 0); /* done: not run again */
    CHECK_EQ(atomic_load(&inits), 1);
}

static atomic_int started, go;

static int init_cancelled(void *arg)
{
    (void)arg;
    atomic_store(&started, 1);
    while (!atomic_load(&go))
        sched_yield();
    pthread_cancel(pthread_self());
    pthread_testcancel();
    return 0; /* not reached */
}

static void *calls_once_cancelled(void *once)
{
    plait_once_call(once, init_cancelled, NULL, PLAIT_FOREVER);
    return (void *)1;
}

TEST(initialiser_cancelled_while_another_calls)
{
    static plait_once once = PLAIT_ONCE_INIT;
    atomic_store(&inits, 0);
    atomic_store(&started, 0);
    atomic_store(&go, 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, calls_once_cancelled, &once), 0);
    while (!atomic_load(&started))
        sched_yield();
    atomic_store(&go, 1); /* the initialiser ends its thread while this call waits, or
                           * before it comes: either way this call runs its own */
    CHECK_EQ(plait_once_call(&once, init_counted, NULL, plait_deadline_in(5 * PLAIT_SEC)), 0);
    CHECK_EQ(atomic_load(&inits), 1);
    void *v = NULL;
    CHECK_EQ(pthread_join(t, &v), 0);
    CHECK(v == PTHREAD_CANCELED);
}

static plait_once coroutine_once = PLAIT_ONCE_INIT;

static void *coroutine_calls_once(void *arg)
{
    (void)arg;
    plait_once_call(&coroutine_once, init_exits, NULL, PLAIT_FOREVER);
    return NULL;
}

static void *runs_a_scheduler(void *arg)
{
    (void)arg;
    plait_run(coroutine_calls_once, NULL, NULL);
    return (void *)1; /* not reached */
}

static void coroutine_ends_the_thread_in_child(void)
{
    atomic_store(&inits, 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, runs_a_scheduler, NULL), 0);
    void *v = (void *)2;
    CHECK_EQ(pthread_join(t, &v), 0);
    CHECK(v == NULL);
    CHECK_EQ(plait_once_call(&coroutine_once, init_counted, NULL, plait_deadline_in(5 * PLAIT_SEC)),
             0);
    CHECK_EQ(atomic_load(&inits), 1);
}

TEST(initialiser_in_a_coroutine_ends_its_thread)
{
    exiting_fiber_in_a_child(coroutine_ends_the_thread_in_child);
}

/* Held by the parent's other thread until the parent lets it go. */
static _Thread_local bool returning; /* this thread's init_held is returning */

static int init_held(void *arg)
{
    (void)arg;
    atomic_store(&inside, 1);
    while (!atomic_load(&leave))
        sched_yield();
    returning = true;
    return 0;
}

/* Linked with --wrap=plait__spin_lock_contended (tests/CMakeLists.txt): the end of an
 * init_held run that waits for its bucket's lock says so. */
static atomic_int end_waits;

void __real_plait__spin_lock_contended(plait__spinlock *lock);
void __wrap_plait__spin_lock_contended(plait__spinlock *lock);
void __wrap_plait__spin_lock_contended(plait__spinlock *lock)
{
    if (returning) {
        returning = false;
        atomic_store(&end_waits, 1);
    }
    __real_plait__spin_lock_contended(lock);
}

/* A fork handler that runs after plait's (registered before them: prepare handlers run
 * in the reverse order), which hold the onces' bucket locks: armed, it lets the held
 * run return and waits until its end waits for its bucket's lock. */
static atomic_int hold_the_fork;

static void hold_fork_until_the_end_waits(void)
{
    if (!atomic_load(&hold_the_fork))
        return;
    atomic_store(&leave, 1);
    while (!atomic_load(&end_waits))
        sched_yield();
}

__attribute__((constructor)) static void before_plaits_fork_handlers(void)
{
    pthread_atfork(hold_fork_until_the_end_waits, NULL, NULL);
}

typedef struct held_run {
    plait_once *once;
    pthread_t thread;
    int result;
} held_run;

static void *runs_held(void *arg)
{
    held_run *h = arg;
    h->result = plait_once_call(h->once, init_held, NULL, PLAIT_FOREVER);
    return NULL;
}

/* Start a thread that is inside init_held on h->once when this returns. */
static void start_held_run(held_run *h)
{
    atomic_store(&inside, 0);
    atomic_store(&leave, 0);
    h->result = -1;
    CHECK_EQ(pthread_create(&h->thread, NULL, runs_held, h), 0);
    while (!atomic_load(&inside))
        sched_yield();
}

/* Let it finish in the parent: its run there is the parent's, which the child's did
 * not touch. */
static void finish_held_run(held_run *h)
{
    atomic_store(&leave, 1);
    CHECK_EQ(pthread_join(h->thread, NULL), 0);
    CHECK_EQ(h->result, 0);
    CHECK_EQ(plait_once_call(h->once, init_counted, NULL, 0), 0); /* done */
}

TEST(another_threads_run_is_run_again_in_the_child)
{
    static plait_once once = PLAIT_ONCE_INIT;
    atomic_store(&inits, 0);
    held_run h = {.once = &once};
    start_held_run(&h);
    pid_t pid = fork_child(true);
    if (pid == 0) {
        CHECK_EQ(plait_once_call(&once, init_counted, NULL, plait_deadline_in(2 * PLAIT_SEC)), 0);
        CHECK_EQ(atomic_load(&inits), 1);
        CHECK_EQ(plait_once_call(&once, init_counted, NULL, 0), 0); /* done: not again */
        CHECK_EQ(atomic_load(&inits), 1);
        child_exit();
    }
    if (pid > 0)
        reap_ok(pid, 30);
    finish_held_run(&h);
    CHECK_EQ(atomic_load(&inits), 0);
}

static plait_once waited_once = PLAIT_ONCE_INIT;

static void *waits_for_the_once(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)plait_once_call(&waited_once, init_counted, NULL,
                                             plait_deadline_in(60 * PLAIT_SEC));
}

static void *forks_while_a_coroutine_waits(void *arg)
{
    (void)arg;
    plait_task waiter;
    CHECK_EQ(plait_spawn(&waiter, waits_for_the_once, NULL), 0);
    /* the waiter runs until its call waits (the other thread runs the initialiser) */
    CHECK_EQ(plait_yield(), 0);
    pid_t pid = fork_child(false);
    if (pid == 0) {
        void *r = (void *)1;
        CHECK_EQ(plait_join(waiter, &r, plait_deadline_in(10 * PLAIT_SEC)), 0);
        CHECK_EQ((intptr_t)r, 0);
        CHECK_EQ(atomic_load(&inits), 1);
        child_exit();
    }
    if (pid > 0)
        reap_ok(pid, 30);
    /* in the parent the waiter gets the held run's 0 once it ends */
    atomic_store(&leave, 1);
    void *r = (void *)1;
    CHECK_EQ(plait_join(waiter, &r, plait_deadline_in(10 * PLAIT_SEC)), 0);
    CHECK_EQ((intptr_t)r, 0);
    CHECK_EQ(atomic_load(&inits), 0);
    return NULL;
}

TEST(a_coroutine_waiting_for_another_threads_run_is_woken_in_the_child)
{
    atomic_store(&inits, 0);
    held_run h = {.once = &waited_once};
    start_held_run(&h);
    CHECK_EQ(plait_run(forks_while_a_coroutine_waits, NULL, NULL), 0);
    finish_held_run(&h);
}

static plait_once own_once = PLAIT_ONCE_INIT;
static plait_event *let_go;
static atomic_int own_runs;

/* Run by a coroutine of the forking scheduler: it waits on an event in its run. */
static int init_waits(void *arg)
{
    (void)arg;
    atomic_fetch_add(&own_runs, 1);
    int r = plait_event_wait(let_go, plait_deadline_in(10 * PLAIT_SEC));
    return r < 0 ? r : 0;
}

static void *runs_own_once(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)plait_once_call(&own_once, init_waits, NULL, PLAIT_FOREVER);
}

static void *forks_while_a_coroutine_runs_it(void *arg)
{
    (void)arg;
    plait_task runner;
    CHECK_EQ(plait_spawn(&runner, runs_own_once, NULL), 0);
    CHECK_EQ(plait_yield(), 0); /* the runner is inside init_waits, waiting */
    CHECK_EQ(atomic_load(&own_runs), 1);
    pid_t pid = fork_child(false);
    CHECK_EQ(plait_event_set(let_go), 0);
    /* parent and child alike: this call waits for the runner's run, which ends now */
    CHECK_EQ(plait_once_call(&own_once, init_counted, NULL, plait_deadline_in(10 * PLAIT_SEC)), 0);
    CHECK_EQ(atomic_load(&inits), 0);
    CHECK_EQ(atomic_load(&own_runs), 1);
    void *r = (void *)1;
    CHECK_EQ(plait_join(runner, &r, plait_deadline_in(10 * PLAIT_SEC)), 0);
    CHECK_EQ((intptr_t)r, 0);
    if (pid == 0)
        child_exit();
    if (pid > 0)
        reap_ok(pid, 30);
    return NULL;
}

TEST(the_forking_schedulers_run_goes_on_in_the_child)
{
    atomic_store(&inits, 0);
    atomic_store(&own_runs, 0);
    CHECK_EQ(plait_event_create(&let_go), 0);
    CHECK_EQ(plait_run(forks_while_a_coroutine_runs_it, NULL, NULL), 0);
    CHECK_EQ(plait_event_destroy(let_go), 0);
}

/* The other thread's init has returned as the fork begins, its run's end waiting for
 * the bucket's lock that plait's fork handler holds: in the child the once is done (it
 * was undone, and the child ran init a second time over the first one's work). */
TEST(a_run_whose_init_returned_as_the_fork_began_is_done_in_the_child)
{
    static plait_once once = PLAIT_ONCE_INIT;
    atomic_store(&inits, 0);
    atomic_store(&end_waits, 0);
    held_run h = {.once = &once};
    start_held_run(&h);
    atomic_store(&hold_the_fork, 1);
    pid_t pid = fork_child(true);
    atomic_store(&hold_the_fork, 0);
    if (pid == 0) {
        CHECK_EQ(plait_once_call(&once, init_counted, NULL, plait_deadline_in(10 * PLAIT_SEC)), 0);
        CHECK_EQ(atomic_load(&inits), 0);
        child_exit();
    }
    if (pid > 0)
        reap_ok(pid, 30);
    finish_held_run(&h);
    CHECK_EQ(atomic_load(&inits), 0);
}

RUN_TESTS(CASE(initialiser_ends_its_thread), CASE(initialiser_cancelled_while_another_calls),
          CASE(initialiser_in_a_coroutine_ends_its_thread),
          CASE(another_threads_run_is_run_again_in_the_child),
          CASE(a_coroutine_waiting_for_another_threads_run_is_woken_in_the_child),
          CASE(the_forking_schedulers_run_goes_on_in_the_child),
          CASE(a_run_whose_init_returned_as_the_fork_began_is_done_in_the_child))
