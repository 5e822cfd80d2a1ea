/*
 * test_wait_asleep.c — the tests' own judge of "this thread sleeps in the wait under
 * test" (helpers.h thread_asleep_in_wait, behind wait_asleep and its 40-odd uses).
 *
 * A test that checks what a call does to a waiter (a destroy refused, a close that
 * wakes it, a wake-up that must reach it) first waits until the waiter sleeps in that
 * wait.  State S of /proc/ID/stat alone also holds for a thread that sleeps on a lock
 * of libc's or of a sanitizer's runtime on its way into the wait: stop 35's CI failed
 * so (test_signal: the destroy ran while the waiter was blocked on the signal
 * registry's mutex, before it had registered).  A lock's sleep is a futex FUTEX_WAIT
 * (or a priority-inheritance lock), which plait's own waits never are.
 *
 * Under qemu-user /proc/ID/syscall gives the host's call numbers, so the lock is not
 * seen there (native builds only, tests/CMakeLists.txt).
 */
#include "helpers.h"

#include <pthread.h>

typedef struct waiter {
    atomic_int tid;
    pthread_mutex_t *lock; /* blocked on, case 1 */
    plait_event *event;    /* waited on, case 2 */
    int result;
} waiter;

static void *lock_then_unlock(void *arg)
{
    waiter *w = arg;
    atomic_store(&w->tid, (int)gettid());
    w->result = pthread_mutex_lock(w->lock);
    if (w->result == 0)
        w->result = pthread_mutex_unlock(w->lock);
    return NULL;
}

/* Whether thread id sleeps in a futex call on word. */
static bool in_futex_on(int id, const void *word)
{
    long nr;
    unsigned long args[2];
    return thread_state(id) == 'S' && thread_syscall(id, &nr, args) && nr == SYS_futex &&
           args[0] == (unsigned long)(uintptr_t)word;
}

TEST(a_thread_blocked_on_a_mutex_is_not_asleep_in_its_wait)
{
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    CHECK_EQ(pthread_mutex_lock(&lock), 0);
    waiter w = {.lock = &lock, .result = -1};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, lock_then_unlock, &w), 0);
    wait_for(&w.tid);
    int id = atomic_load(&w.tid);
    /* glibc's mutex sleeps on its first word */
    int64_t give_up = SOON();
    struct timespec ms = {0, PLAIT_MS};
    bool blocked;
    while (!(blocked = in_futex_on(id, &lock)) && plait_now() < give_up)
        nanosleep(&ms, NULL);
    CHECK(blocked);
    CHECK(thread_in_lock_wait(id));
    CHECK(!thread_asleep_in_wait(id));
    CHECK_EQ(pthread_mutex_unlock(&lock), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(w.result, 0);
}

static void *wait_event(void *arg)
{
    waiter *w = arg;
    atomic_store(&w->tid, (int)gettid());
    w->result = plait_event_wait(w->event, SOON());
    return NULL;
}

TEST(a_thread_in_a_plait_wait_is_asleep_in_it)
{
    waiter w = {.result = 1};
    CHECK_EQ(plait_event_create(&w.event), 0);
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, wait_event, &w), 0);
    wait_asleep(&w.tid);
    CHECK(!thread_in_lock_wait(atomic_load(&w.tid)));
    /* it was in the wait: the event's destroy is refused while it is */
    CHECK_EQ(plait_event_destroy(w.event), -EBUSY);
    CHECK_EQ(plait_event_set(w.event), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(w.result, 0);
    CHECK_EQ(plait_event_destroy(w.event), 0);
}

TEST(a_running_or_missing_thread_is_in_no_lock_wait)
{
    CHECK(!thread_in_lock_wait((int)gettid())); /* /proc says "running" */
    long nr;
    unsigned long args[2];
    CHECK(!thread_syscall(-1, &nr, args));
    CHECK(!thread_in_lock_wait(-1));
    CHECK(!thread_asleep_in_wait(-1));
}

RUN_TESTS(CASE(a_thread_blocked_on_a_mutex_is_not_asleep_in_its_wait),
          CASE(a_thread_in_a_plait_wait_is_asleep_in_it),
          CASE(a_running_or_missing_thread_is_in_no_lock_wait))
