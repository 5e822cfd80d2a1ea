/*
 * test_shared_destroy_race.c — a process-shared object destroyed by its own process
 * right after a close/set/release woke a waiter of that process: destroy must either
 * answer -EBUSY or be safe, never unmap the state under the woken waiter.
 *
 * plait__shared_wait is wrapped (-Wl,--wrap) to hold the woken waiter for a moment
 * after the wait itself returned, as a preemption there would: the woken call still
 * has to look at the object's state (its lock, its counters) before it returns.
 */
#include "helpers.h"

#include <stdatomic.h>
#include <stdbool.h>

int __real_plait__shared_wait(void *obj, atomic_uint *word, unsigned expected,
                              atomic_uint *sleepers, int64_t deadline, const char *what);
int __wrap_plait__shared_wait(void *obj, atomic_uint *word, unsigned expected,
                              atomic_uint *sleepers, int64_t deadline, const char *what);
static atomic_int hold_after_wait;

int __wrap_plait__shared_wait(void *obj, atomic_uint *word, unsigned expected,
                              atomic_uint *sleepers, int64_t deadline, const char *what)
{
    int r = __real_plait__shared_wait(obj, word, expected, sleepers, deadline, what);
    if (atomic_load(&hold_after_wait))
        usleep(200 * 1000); /* preempted right after the wait returned */
    return r;
}

static atomic_int waiter_tid; /* the waiting thread's id, as it begins its call */

static void *queue_receiver(void *arg)
{
    plait_queue *q = arg;
    char buf[8];
    atomic_store(&waiter_tid, gettid_());
    return (void *)(intptr_t)plait_queue_recv(q, buf, sizeof buf, SOON());
}

static void *pevent_waiter(void *arg)
{
    atomic_store(&waiter_tid, gettid_());
    return (void *)(intptr_t)plait_pevent_wait(arg, SOON());
}

static void *psem_acquirer(void *arg)
{
    atomic_store(&waiter_tid, gettid_());
    return (void *)(intptr_t)plait_psem_acquire(arg, SOON());
}

static void *pmutex_locker(void *arg)
{
    atomic_store(&waiter_tid, gettid_());
    int r = plait_pmutex_lock(arg, SOON());
    if (r == 0)
        r = plait_pmutex_unlock(arg);
    return (void *)(intptr_t)r;
}

static int queue_close(void *q) { return plait_queue_close(q); }
static int queue_destroy(void *q) { return plait_queue_destroy(q); }
static int pevent_set(void *e) { return plait_pevent_set(e); }
static int pevent_destroy(void *e) { return plait_pevent_destroy(e); }
static int psem_release(void *s) { return plait_psem_release(s); }
static int psem_destroy(void *s) { return plait_psem_destroy(s); }
static int pmutex_unlock(void *m) { return plait_pmutex_unlock(m); }
static int pmutex_destroy(void *m) { return plait_pmutex_destroy(m); }

/* A thread waits on obj (waiter); this one wakes it (wake), which is then held just
 * after its wait, and destroys obj as a program that gets -EBUSY would, again and
 * again: the destroy must wait for the woken call to be done with obj (it once unmapped
 * the state under it: SIGSEGV), and the call ends with `expected`. */
static void wake_then_destroy(void *(*waiter)(void *), void *obj, int (*wake)(void *),
                              int (*destroy)(void *), intptr_t expected)
{
    atomic_store(&waiter_tid, 0);
    pthread_t th;
    thread_start(&th, waiter, obj);
    wait_asleep(&waiter_tid);
    atomic_store(&hold_after_wait, 1);
    CHECK_EQ(wake(obj), 0);
    int r;
    int64_t until = plait_deadline_in(5 * PLAIT_SEC);
    while ((r = destroy(obj)) == -EBUSY && plait_now() < until)
        ;
    CHECK_EQ(r, 0);
    void *res;
    CHECK_EQ(pthread_join(th, &res), 0);
    atomic_store(&hold_after_wait, 0);
    CHECK_EQ((intptr_t)res, expected);
}

TEST(queue_close_then_destroy_while_a_thread_receives)
{
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, 8, 2), 0);
    wake_then_destroy(queue_receiver, q, queue_close, queue_destroy, -EPIPE);
}

TEST(pevent_set_then_destroy_while_a_thread_waits)
{
    plait_pevent *e;
    CHECK_EQ(plait_pevent_create(&e), 0);
    wake_then_destroy(pevent_waiter, e, pevent_set, pevent_destroy, 0);
}

TEST(psem_release_then_destroy_while_a_thread_acquires)
{
    plait_psem *s;
    CHECK_EQ(plait_psem_create(&s, 0), 0);
    wake_then_destroy(psem_acquirer, s, psem_release, psem_destroy, 0);
}

TEST(pmutex_unlock_then_destroy_while_a_thread_locks)
{
    plait_pmutex *m;
    CHECK_EQ(plait_pmutex_create(&m), 0);
    CHECK_EQ(plait_pmutex_lock(m, SOON()), 0);
    wake_then_destroy(pmutex_locker, m, pmutex_unlock, pmutex_destroy, 0);
}

/* A receive that waits long looks every 100 ms whether the senders' processes still
 * exist (PLAIT__SHARED_RECHECK_NS), between two waits: it waits all the same, and a
 * destroy meanwhile must be refused, whether the receiver is held after a wait (hold)
 * or not (a destroy tried again and again meets the moment of a recheck). */
static void destroy_refused_across_rechecks(bool hold)
{
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, 8, 2), 0);
    atomic_store(&waiter_tid, 0);
    atomic_store(&hold_after_wait, hold);
    pthread_t th;
    thread_start(&th, queue_receiver, q);
    wait_asleep(&waiter_tid);
    int64_t until = plait_deadline_in(600 * PLAIT_MS); /* past several rechecks */
    int r;
    while ((r = plait_queue_destroy(q)) == -EBUSY && plait_now() < until)
        ;
    CHECK_EQ(r, -EBUSY);
    if (r == 0) { /* the receiver would touch the unmapped queue: stop here */
        fprintf(stderr, "  destroy succeeded while a thread waited in receive\n");
        fflush(stderr);
        _exit(1);
    }
    CHECK_EQ(plait_queue_close(q), 0);
    void *res;
    CHECK_EQ(pthread_join(th, &res), 0);
    atomic_store(&hold_after_wait, 0);
    CHECK_EQ((intptr_t)res, -EPIPE);
    CHECK_EQ(plait_queue_destroy(q), 0);
}

TEST(queue_destroy_refused_while_a_thread_receives_across_its_rechecks)
{
    destroy_refused_across_rechecks(true);
}

TEST(queue_destroy_refused_while_a_thread_receives_no_hold)
{
    destroy_refused_across_rechecks(false);
}

RUN_TESTS(CASE(queue_destroy_refused_while_a_thread_receives_no_hold),
          CASE(queue_close_then_destroy_while_a_thread_receives),
          CASE(queue_destroy_refused_while_a_thread_receives_across_its_rechecks),
          CASE(pevent_set_then_destroy_while_a_thread_waits),
          CASE(psem_release_then_destroy_while_a_thread_acquires),
          CASE(pmutex_unlock_then_destroy_while_a_thread_locks))
