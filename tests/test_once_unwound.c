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
 */
#include "fork_child.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

static atomic_int inits; /* the initialisers that ran to their end */

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

RUN_TESTS(CASE(initialiser_ends_its_thread), CASE(initialiser_cancelled_while_another_calls),
          CASE(initialiser_in_a_coroutine_ends_its_thread))
