/* test_pshared_without_waitv.c — process-shared objects on a kernel without
 * futex_waitv (before Linux 5.16, a sandbox that refuses calls it does not know,
 * qemu-user): here a seccomp filter refuses it (ENOSYS) for the whole process, from the
 * first test on.  Waits work and sleep: a thread's on the shared word, looking at its
 * own cancellation word every 10 ms; a coroutine's through a watcher that looks at its
 * words every millisecond.  (A thread's wait spun at full CPU until its deadline, and a
 * coroutine's watcher spun for the rest of the process; review 94.) */
#include "helpers.h"
#include "refuse_syscall.h"

#include <time.h>

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif

static int64_t cpu_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * PLAIT_SEC + ts.tv_nsec;
}

enum { WAIT_MS = 300 };

TEST(a_threads_wait_sleeps_and_is_woken)
{
    CHECK_EQ(refuse_syscall(SYS_futex_waitv), 0); /* first: for the whole process */
    errno = 0;
    CHECK_EQ(syscall(SYS_futex_waitv, NULL, 0, 0, NULL, CLOCK_MONOTONIC), -1);
    CHECK_EQ(errno, ENOSYS);
    plait_psem *s;
    CHECK_EQ(plait_psem_create(&s, 0), 0);
    /* a wait that times out: it sleeps meanwhile */
    int64_t cpu = cpu_ns(CLOCK_THREAD_CPUTIME_ID), start = plait_now();
    CHECK_EQ(plait_psem_acquire(s, plait_deadline_in(WAIT_MS * PLAIT_MS)), -ETIMEDOUT);
    CHECK(plait_now() - start >= WAIT_MS * PLAIT_MS);
    CHECK(cpu_ns(CLOCK_THREAD_CPUTIME_ID) - cpu < WAIT_MS * PLAIT_MS / 3);
    /* and one that a release ends */
    CHECK_EQ(plait_psem_release(s), 0);
    CHECK_EQ(plait_psem_acquire(s, SOON()), 0);
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, 8, 1), 0);
    CHECK_EQ(plait_queue_send(q, "x", 1, SOON()), 0);
    char c;
    CHECK_EQ(plait_queue_recv(q, &c, 1, SOON()), 1);
    CHECK_EQ(plait_queue_recv(q, &c, 1, plait_deadline_in(20 * PLAIT_MS)), -ETIMEDOUT);
    CHECK_EQ(plait_queue_destroy(q), 0);
    CHECK_EQ(plait_psem_destroy(s), 0);
}

static atomic_int waiter_tid;

static void *acquire_forever(void *arg)
{
    atomic_store(&waiter_tid, gettid_());
    return ARG(plait_psem_acquire(arg, PLAIT_FOREVER));
}

/* Until the thread that published its id in waiter_tid sleeps (in its wait: it does
 * nothing else after; a fixed sleep here once left the path that sleeps untested when
 * the thread came late). */
static void until_the_waiter_sleeps(void)
{
    CHECK(wait_for_flag(&waiter_tid));
    int64_t give_up = SOON();
    while (!thread_asleep(atomic_load(&waiter_tid)) && plait_now() < give_up)
        nanosleep(&(struct timespec){0, PLAIT_MS}, NULL);
    CHECK(thread_asleep(atomic_load(&waiter_tid)));
    atomic_store(&waiter_tid, 0);
}

TEST(a_plait_threads_wait_is_woken_by_a_release_and_by_a_cancellation)
{
    plait_psem *s;
    CHECK_EQ(plait_psem_create(&s, 0), 0);
    plait_task t;
    void *v = ARG(1);
    CHECK_EQ(plait_thread_start(&t, acquire_forever, s, NULL), 0);
    until_the_waiter_sleeps();
    CHECK_EQ(plait_psem_release(s), 0);
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    CHECK_EQ(INT(v), 0);
    CHECK_EQ(plait_thread_start(&t, acquire_forever, s, NULL), 0);
    until_the_waiter_sleeps();
    int64_t start = plait_now();
    CHECK_EQ(plait_cancel(t), 0);
    CHECK_EQ(plait_join(t, &v, SOON()), -ECANCELED);
    CHECK_PROMPT(start);
    CHECK_EQ(plait_psem_destroy(s), 0);
}

/* Once the coroutine's scheduler (its thread's id in waiter_tid) sleeps: the coroutine
 * waits then, its watcher looking at the word. */
static void *release_soon(void *arg)
{
    until_the_waiter_sleeps();
    CHECK_EQ(plait_psem_release(arg), 0);
    return NULL;
}

static void *coroutine_waits(void *arg)
{
    plait_psem *s = arg;
    /* one that times out: the watcher sleeps meanwhile, a millisecond at a time */
    int64_t cpu = cpu_ns(CLOCK_PROCESS_CPUTIME_ID), start = plait_now();
    CHECK_EQ(plait_psem_acquire(s, plait_deadline_in(WAIT_MS * PLAIT_MS)), -ETIMEDOUT);
    CHECK(plait_now() - start >= WAIT_MS * PLAIT_MS);
    CHECK(cpu_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu < WAIT_MS * PLAIT_MS / 3);
    /* one that a release from another thread ends */
    atomic_store(&waiter_tid, gettid_());
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, release_soon, s), 0);
    CHECK_EQ(plait_psem_acquire(s, SOON()), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    return NULL;
}

TEST(a_coroutines_wait_works_and_nothing_spins_after_it)
{
    plait_psem *s;
    CHECK_EQ(plait_psem_create(&s, 0), 0);
    check_run(coroutine_waits, s);
    int64_t cpu = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
    plait_sleep(WAIT_MS * PLAIT_MS);
    CHECK(cpu_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu < WAIT_MS * PLAIT_MS / 3);
    CHECK_EQ(plait_psem_destroy(s), 0);
}

RUN_TESTS(CASE(a_threads_wait_sleeps_and_is_woken),
          CASE(a_plait_threads_wait_is_woken_by_a_release_and_by_a_cancellation),
          CASE(a_coroutines_wait_works_and_nothing_spins_after_it))
