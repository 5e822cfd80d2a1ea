/*
 * test_mutex_destroy_spinner.c — plait_mutex_destroy while a plain thread spins in its
 * lock (a thread spins a few microseconds before it sleeps): -EBUSY, as for a waiter
 * that sleeps, and the same for a plait_cond_wait's relock, which plait.h names.  (Failed
 * first: the spinner was counted nowhere, the condition waiter's count was taken off at
 * its relock's first look, and the destroy freed the mutex under the thread, which then
 * locked the freed memory: heap corruption or a hang; session 51's audit.)
 *
 * Linked with --wrap=plait__held_beneath, which the lock calls at its first look when
 * another holds the mutex: from then on this thread is inside the lock and spins.
 */
#include "helpers.h"

#include <pthread.h>
#include <sched.h>

bool __real_plait__held_beneath(uint64_t owner);
bool __wrap_plait__held_beneath(uint64_t owner);

static _Thread_local bool is_locker;
static atomic_int locker_saw_it_held;

bool __wrap_plait__held_beneath(uint64_t owner)
{
    if (is_locker)
        atomic_store(&locker_saw_it_held, 1);
    return __real_plait__held_beneath(owner);
}

static plait_mutex *m;
static plait_cond *c;
static atomic_int may_unlock, cond_waiting;

static void *locks_then_waits_to_unlock(void *unused)
{
    (void)unused;
    is_locker = true;
    CHECK_EQ(plait_mutex_lock(m, SOON()), 0);
    while (!atomic_load(&may_unlock))
        sched_yield();
    CHECK_EQ(plait_mutex_unlock(m), 0);
    return NULL;
}

static void *cond_waits_then_waits_to_unlock(void *unused)
{
    (void)unused;
    CHECK_EQ(plait_mutex_lock(m, SOON()), 0);
    is_locker = true; /* (from the relock on: its lock above found the mutex free) */
    atomic_store(&cond_waiting, 1); /* as it waits: the test's lock comes after */
    CHECK_EQ(plait_cond_wait(c, m, SOON()), 0);
    while (!atomic_load(&may_unlock))
        sched_yield();
    CHECK_EQ(plait_mutex_unlock(m), 0);
    return NULL;
}

enum { ROUNDS = 100 };

/* The holder lets go and destroys it at once: the locker is spinning, or has it. */
static void unlock_then_destroy_is_busy(pthread_t locker)
{
    int64_t give_up = SOON();
    while (!atomic_load(&locker_saw_it_held) && plait_now() < give_up)
        ; /* (no yield: the spin it looks for lasts microseconds) */
    CHECK(atomic_load(&locker_saw_it_held));
    CHECK_EQ(plait_mutex_unlock(m), 0);
    CHECK_EQ(plait_mutex_destroy(m), -EBUSY);
    atomic_store(&may_unlock, 1);
    CHECK_EQ(pthread_join(locker, NULL), 0);
    CHECK_EQ(plait_mutex_destroy(m), 0);
}

TEST(destroy_while_a_thread_spins_in_its_lock_is_busy)
{
    for (int i = 0; i < ROUNDS && !check_failures; i++) {
        CHECK_EQ(plait_mutex_create(&m), 0);
        atomic_store(&locker_saw_it_held, 0);
        atomic_store(&may_unlock, 0);
        CHECK_EQ(plait_mutex_lock(m, SOON()), 0);
        pthread_t locker;
        thread_start(&locker, locks_then_waits_to_unlock, NULL);
        unlock_then_destroy_is_busy(locker);
    }
}

TEST(destroy_while_a_condition_waiter_spins_in_its_relock_is_busy)
{
    CHECK_EQ(plait_cond_create(&c), 0);
    for (int i = 0; i < ROUNDS && !check_failures; i++) {
        CHECK_EQ(plait_mutex_create(&m), 0);
        atomic_store(&locker_saw_it_held, 0);
        atomic_store(&may_unlock, 0);
        atomic_store(&cond_waiting, 0);
        pthread_t locker;
        thread_start(&locker, cond_waits_then_waits_to_unlock, NULL);
        CHECK(wait_for_flag(&cond_waiting));
        CHECK_EQ(plait_mutex_lock(m, SOON()), 0); /* once the waiter has let it go */
        CHECK_EQ(plait_cond_signal(c), 0);
        unlock_then_destroy_is_busy(locker);
    }
    CHECK_EQ(plait_cond_destroy(c), 0);
}

RUN_TESTS(CASE(destroy_while_a_thread_spins_in_its_lock_is_busy),
          CASE(destroy_while_a_condition_waiter_spins_in_its_relock_is_busy))
