/* test_pool_sandboxed.c — a pool whose process refuses membarrier(2) after the pool
 * was made, as a program that sandboxes itself after start-up does.
 *
 * Shutdown with PLAIT_POOL_CANCEL reaches running tasks through the running chains'
 * handshake, whose rare side is membarrier (src/pool.c, src/fence.c).  Refused, it
 * cannot walk the chains safely: the running tasks are left to finish or to the
 * deadline, and queued tasks still complete as cancelled without running.  Where the
 * pool never relied on membarrier (missing from the start, or not x86-64) it cancels
 * running tasks as always.  A file of its own: the filter stays for the life
 * of the process. */
#include "helpers.h"
#include "refuse_syscall.h"

#include <linux/membarrier.h>
#include <stdatomic.h>
#include <stdbool.h>
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

    CHECK_EQ(refuse_syscall(SYS_membarrier), 0);
    CHECK_EQ(syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0), -1);
    CHECK_EQ(errno, ENOSYS);

    /* left alone, the running task outlasts the deadline; cancelled, it ends at once
     * (a deadline no stall reaches: under qemu the cancellation takes its time) */
    int64_t by = asymmetric ? plait_deadline_in(200 * PLAIT_MS) : SOON();
    int r = plait_pool_shutdown(pool, PLAIT_POOL_CANCEL, by);
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

RUN_TESTS(CASE(cancel_after_membarrier_refused))
