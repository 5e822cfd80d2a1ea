/* test_pool_sandboxed.c — a pool whose process refuses membarrier(2) after the pool
 * was made, as a program that sandboxes itself after start-up does.
 *
 * Shutdown with PLAIT_POOL_CANCEL reaches running tasks through the running chains'
 * handshake, whose rare side is membarrier (src/pool.c, src/fence.c).  Refused, it
 * cannot walk the chains safely: the running tasks are left to finish or to the
 * deadline, and queued tasks still complete as cancelled without running.  Where the
 * pool never relied on membarrier (missing from the start, or not x86-64) it cancels
 * running tasks as always.  Workers going to sleep use the heavy fence too (their
 * handshake with a push): refused, they sleep a millisecond at a time.  A file of
 * its own: the filter stays for the life of the process. */
#include "helpers.h"
#include "push_wakes_sleeper.h"
#include "workers_sleeping.h"
#include "refuse_membarrier.h"

#include <linux/membarrier.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

static plait_event *gate, *started;
static atomic_int gate_result = 1, queued_ran;

/* Holds the pool's only worker in a cancellable wait until the gate opens. */
static void *blocker(void *arg)
{
    CHECK_EQ(plait_event_set(started), 0);
    atomic_store(&gate_result, plait_event_wait(gate, SOON()));
    return arg;
}

static void *queued(void *arg)
{
    atomic_fetch_add(&queued_ran, 1);
    return arg;
}

TEST(cancel_after_membarrier_refused)
{
    /* what the pool found when it was made: the answer is the process's, on the
     * architectures where plait uses it (src/fence.c: x86-64) */
    bool asymmetric = false;
#if defined(__x86_64__)
    asymmetric = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#endif
    CHECK_EQ(plait_event_create(&gate), 0);
    CHECK_EQ(plait_event_create(&started), 0);
    plait_pool *pool = NULL;
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 1, .name = "sandboxed"}), 0);
    plait_task held, waiting;
    CHECK_EQ(plait_pool_submit(pool, &held, blocker, ARG(7)), 0);
    CHECK_EQ(plait_event_wait(started, SOON()), 0);
    CHECK_EQ(plait_pool_submit(pool, &waiting, queued, ARG(8)), 0);

    CHECK_EQ(refuse_membarrier(), 0);
    CHECK_EQ(syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0), -1);
    CHECK_EQ(errno, ENOSYS);

    int r = plait_pool_shutdown(pool, PLAIT_POOL_CANCEL, plait_deadline_in(200 * PLAIT_MS));
    void *v = NULL;
    if (asymmetric) {
        /* the running task was left alone: it is still in its wait, and finishes */
        CHECK_EQ(r, -ETIMEDOUT);
        CHECK_EQ(atomic_load(&gate_result), 1);
        CHECK_EQ(plait_pool_destroy(pool), -EBUSY);
        CHECK_EQ(plait_event_set(gate), 0);
        CHECK_EQ(plait_join(held, &v, SOON()), 0);
        CHECK_EQ(INT(v), 7);
        CHECK_EQ(atomic_load(&gate_result), 0);
        CHECK_EQ(plait_pool_shutdown(pool, PLAIT_POOL_CANCEL, SOON()), 0);
    } else {
        CHECK_EQ(r, 0);
        CHECK_EQ(plait_join(held, NULL, SOON()), -ECANCELED);
        CHECK_EQ(atomic_load(&gate_result), -ECANCELED);
    }
    /* either way the queued task never ran */
    CHECK_EQ(plait_join(waiting, NULL, SOON()), -ECANCELED);
    CHECK_EQ(atomic_load(&queued_ran), 0);
    CHECK_EQ(plait_pool_destroy(pool), 0);
    CHECK_EQ(plait_event_destroy(gate), 0);
    CHECK_EQ(plait_event_destroy(started), 0);
}

/* The heavy fence fails where the pool sleeps too (membarrier refused since the
 * first test; this pool still counts on it, as the process registered before): a
 * sleeping worker then looks again every millisecond, so a push never waits longer
 * for it.  See push_wakes_sleeper.h.  Unlike test_pool's rounds, these did not fail
 * with that bound taken out (6 runs): the refused system call delays the worker's
 * last look by a microsecond or so, past the instant the handshake guards. */
TEST(push_wakes_sleeper_after_membarrier_refused)
{
    CHECK_EQ(syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0), -1);
    CHECK_EQ(push_wakes_sleeper_rounds(CHECK_SANITIZED ? 400 : 4000), 0);
}

static int64_t process_cpu_ns(void)
{
    struct timespec t;
    CHECK_EQ(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t), 0);
    return (int64_t)t.tv_sec * PLAIT_SEC + t.tv_nsec;
}

static void *nothing(void *arg) { return arg; }

/* Where the heavy fence is refused, an idle pool still sleeps: its pushes fence
 * themselves from the first refusal on, and its workers look again only every
 * STRAGGLER_SLEEP_NS (pool.c).  Before, every sleep of such a pool ended after a
 * millisecond, and two idle workers used 82–89 ms of CPU in these 500 ms (this test
 * failed so); now 0–1 ms. */
TEST(idle_pool_sleeps_after_membarrier_refused)
{
    plait_pool *pool = NULL;
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 2, .name = "idle"}), 0);
    plait_task t;
    CHECK_EQ(plait_pool_submit(pool, &t, nothing, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    /* the test is about an idle stretch of time: both workers asleep, then 500 ms */
    int64_t until = plait_deadline_in(10 * PLAIT_SEC);
    while (workers_sleeping("idle") < 2 && plait_now() < until)
        sched_yield();
    CHECK_EQ(workers_sleeping("idle"), 2);
    int64_t before = process_cpu_ns();
    CHECK_EQ(plait_sleep(500 * PLAIT_MS), 0);
    int64_t used = process_cpu_ns() - before;
    if (used >= 20 * PLAIT_MS)
        fprintf(stderr, "  the idle pool used %lld ms of CPU in 500 ms\n", (long long)(used / PLAIT_MS));
    CHECK(used < 20 * PLAIT_MS);
    CHECK_EQ(plait_pool_destroy(pool), 0);
}

RUN_TESTS(CASE(cancel_after_membarrier_refused), CASE(push_wakes_sleeper_after_membarrier_refused),
          CASE(idle_pool_sleeps_after_membarrier_refused))
