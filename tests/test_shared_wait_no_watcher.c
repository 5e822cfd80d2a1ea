/* test_shared_wait_no_watcher.c — a coroutine's wait on a process-shared object (a
 * queue, a process mutex, a semaphore) when no watcher thread can be had for it: the
 * watchers' table is full (64 threads of 127 words: over 8,000 coroutines waiting at
 * once on distinct objects) or the system refuses a thread.  The wait must still be
 * a wait, with its deadline and its cancellation, that ends when the object is ready,
 * and the scheduler's other coroutines must run meanwhile.  Before the fix the call
 * answered -EAGAIN at once, an error its contract does not list (session 50's audit:
 * 172 of 8,300 queue receives), and a wait for a queue's own lock blocked the thread.
 *
 * plait__thread_create is wrapped (-Wl,--wrap): while `refusing` is set it refuses
 * every thread, as a full table would, and counts its refusals, which tell the other
 * side that the coroutine has tried its watcher and is waiting. */
#include "helpers.h"

#include <pthread.h>

static atomic_bool refusing;
static atomic_int refusals;

int __real_plait__thread_create(pthread_t *thread, const pthread_attr_t *attr,
                                void *(*fn)(void *), void *arg);
int __wrap_plait__thread_create(pthread_t *thread, const pthread_attr_t *attr,
                                void *(*fn)(void *), void *arg);
int __wrap_plait__thread_create(pthread_t *thread, const pthread_attr_t *attr,
                                void *(*fn)(void *), void *arg)
{
    if (atomic_load(&refusing)) {
        atomic_fetch_add(&refusals, 1);
        return EAGAIN;
    }
    return __real_plait__thread_create(thread, attr, fn, arg);
}

/* Once the coroutine has been refused its watcher: a plain thread's move. */
static void wait_for_a_refusal(void)
{
    int64_t give_up = SOON();
    while (atomic_load(&refusals) == 0 && plait_now() < give_up)
        sched_yield();
    CHECK(atomic_load(&refusals) > 0);
}

static plait_queue *queue;

static void *sends_once_refused(void *unused)
{
    (void)unused;
    wait_for_a_refusal();
    CHECK_EQ(plait_queue_send(queue, "hello", 5, SOON()), 0);
    return NULL;
}

static atomic_int beside_ran; /* turns of a coroutine beside the waiting one */
static atomic_bool waiter_done;

static void *runs_beside(void *unused)
{
    (void)unused;
    while (!atomic_load(&waiter_done)) {
        atomic_fetch_add(&beside_ran, 1);
        CHECK_EQ(plait_sleep(PLAIT_MS), 0);
    }
    return NULL;
}

static void *receives(void *unused)
{
    (void)unused;
    char buf[8];
    int64_t start = plait_now();
    CHECK_EQ(plait_queue_recv(queue, buf, sizeof buf, plait_deadline_in(30 * PLAIT_SEC)), 5);
    CHECK(memcmp(buf, "hello", 5) == 0);
    CHECK(plait_now() - start < 20 * PLAIT_SEC); /* the send ended it, not the deadline */
    atomic_store(&waiter_done, true);
    return NULL;
}

/* waiter_fn in a coroutine, and beside it one that counts its turns until it is done */
static plait_fn waiter_fn;
static void *waits_beside_another(void *unused)
{
    (void)unused;
    plait_task waiter, beside;
    CHECK_EQ(plait_spawn(&waiter, waiter_fn, NULL), 0);
    CHECK_EQ(plait_spawn(&beside, runs_beside, NULL), 0);
    CHECK_EQ(plait_join(waiter, NULL, SOON()), 0);
    CHECK_EQ(plait_join(beside, NULL, SOON()), 0);
    return NULL;
}

TEST(a_queue_receive_waits_for_its_message)
{
    CHECK_EQ(plait_queue_create(&queue, 8, 4), 0);
    atomic_store(&refusals, 0);
    atomic_store(&beside_ran, 0);
    atomic_store(&waiter_done, false);
    atomic_store(&refusing, true);
    pthread_t sender;
    CHECK_EQ(pthread_create(&sender, NULL, sends_once_refused, NULL), 0);
    waiter_fn = receives;
    CHECK_EQ(plait_run(waits_beside_another, NULL, NULL), 0);
    CHECK_EQ(pthread_join(sender, NULL), 0);
    atomic_store(&refusing, false);
    CHECK(atomic_load(&beside_ran) > 0); /* the scheduler ran another meanwhile */
    CHECK_EQ(plait_queue_destroy(queue), 0);
}

static void *receives_until_its_deadline(void *unused)
{
    (void)unused;
    char buf[8];
    int64_t start = plait_now();
    CHECK_EQ(plait_queue_recv(queue, buf, sizeof buf, plait_deadline_in(200 * PLAIT_MS)),
             -ETIMEDOUT);
    CHECK_TOOK(start, 200 * PLAIT_MS);
    return NULL;
}

static void *receives_for_ever(void *unused)
{
    (void)unused;
    char buf[8];
    return PLAIT_FAIL((int)plait_queue_recv(queue, buf, sizeof buf, PLAIT_FOREVER));
}

static void *cancels_a_receive(void *unused)
{
    (void)unused;
    plait_task t;
    CHECK_EQ(plait_spawn(&t, receives_for_ever, NULL), 0);
    int64_t give_up = SOON();
    while (atomic_load(&refusals) == 0 && plait_now() < give_up)
        CHECK_EQ(plait_yield(), 0);
    CHECK(atomic_load(&refusals) > 0);
    int64_t start = plait_now();
    CHECK_EQ(plait_cancel(t), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
    CHECK_PROMPT(start);
    return NULL;
}

TEST(a_queue_receive_keeps_its_deadline_and_cancellation)
{
    CHECK_EQ(plait_queue_create(&queue, 8, 4), 0);
    atomic_store(&refusals, 0);
    atomic_store(&refusing, true);
    CHECK_EQ(plait_run(receives_until_its_deadline, NULL, NULL), 0);
    CHECK(atomic_load(&refusals) > 0);
    CHECK_EQ(plait_run(cancels_a_receive, NULL, NULL), 0);
    atomic_store(&refusing, false);
    CHECK_EQ(plait_queue_destroy(queue), 0);
}

/* A process mutex held by a plain thread: the coroutine's lock waits (the other
 * coroutine runs) and takes it once the thread lets go. */
static plait_pmutex *pmutex;
static atomic_bool pmutex_held;

static void *holds_until_refused(void *unused)
{
    (void)unused;
    CHECK_EQ(plait_pmutex_lock(pmutex, SOON()), 0);
    atomic_store(&pmutex_held, true);
    wait_for_a_refusal();
    CHECK_EQ(plait_pmutex_unlock(pmutex), 0);
    return NULL;
}

static void *locks(void *unused)
{
    (void)unused;
    CHECK_EQ(plait_pmutex_lock(pmutex, plait_deadline_in(30 * PLAIT_SEC)), 0);
    CHECK_EQ(plait_pmutex_unlock(pmutex), 0);
    atomic_store(&waiter_done, true);
    return NULL;
}

TEST(a_process_mutex_lock_waits_for_its_holder)
{
    CHECK_EQ(plait_pmutex_create(&pmutex), 0);
    atomic_store(&refusals, 0);
    atomic_store(&beside_ran, 0);
    atomic_store(&waiter_done, false);
    atomic_store(&pmutex_held, false);
    pthread_t holder;
    CHECK_EQ(pthread_create(&holder, NULL, holds_until_refused, NULL), 0);
    int64_t give_up = SOON();
    while (!atomic_load(&pmutex_held) && plait_now() < give_up)
        sched_yield();
    CHECK(atomic_load(&pmutex_held));
    atomic_store(&refusing, true);
    waiter_fn = locks;
    CHECK_EQ(plait_run(waits_beside_another, NULL, NULL), 0);
    CHECK_EQ(pthread_join(holder, NULL), 0);
    atomic_store(&refusing, false);
    CHECK(atomic_load(&beside_ran) > 0);
    CHECK_EQ(plait_pmutex_destroy(pmutex), 0);
}

RUN_TESTS(CASE(a_queue_receive_waits_for_its_message),
          CASE(a_queue_receive_keeps_its_deadline_and_cancellation),
          CASE(a_process_mutex_lock_waits_for_its_holder))
