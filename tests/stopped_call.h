/*
 * stopped_call.h — what test_pool_map_stop.c and test_procpool_map_stop.c share: a call
 * made from a thread-pool task (the "caller") is cut short by its deadline while work
 * of its own still runs elsewhere, and must wait for that work alone.  An unrelated
 * task queued on the caller's pool once the deadline has passed must not run inside
 * the call's wait (a helping wait once ran it, and the call returned only when it
 * ended).  Each test defines decide(), which lets the call's work end once the caller's
 * thread has shown what its wait does (blocked, or running the unrelated task).
 */
#ifndef PLAIT_TEST_STOPPED_CALL_H
#define PLAIT_TEST_STOPPED_CALL_H

#include "helpers.h"

#include <stdatomic.h>
#include <stdbool.h>

static int64_t deadline;                  /* the call's */
static atomic_int caller_tid;             /* the thread of the task that makes the call */
static atomic_bool call_returned;
static int call_result;
static int64_t call_end;                  /* when the call returned */
static atomic_bool unrelated_inside_call; /* the unrelated task ran in the call's wait */
static plait_event *release;              /* the unrelated task may end */

static void decide(void);

static void call_begins(void)
{
    atomic_store(&caller_tid, gettid_());
}

static void call_returns(int r)
{
    call_result = r;
    call_end = plait_now();
    atomic_store(&call_returned, true);
}

static void *unrelated(void *unused)
{
    (void)unused;
    if (gettid_() == atomic_load(&caller_tid) && !atomic_load(&call_returned))
        atomic_store(&unrelated_inside_call, true);
    decide();
    /* long, as far as the call can tell: it ends after the call returned (bounded, so
     * that the defect shows as a failure rather than a hang) */
    CHECK_EQ(plait_event_wait(release, SOON()), 0);
    return NULL;
}

/* Before a case: nothing called yet; the deadline one 2 s ahead, far enough for the
 * call's work to start elsewhere first on a loaded machine or an emulator. */
static void stopped_call_start(void)
{
    atomic_store(&caller_tid, 0);
    atomic_store(&call_returned, false);
    atomic_store(&unrelated_inside_call, false);
    call_result = 1;
    CHECK_EQ(plait_event_create(&release), 0);
    deadline = plait_deadline_in(2 * PLAIT_SEC);
}

/* Once the call's work runs elsewhere: queue the unrelated task on pool past the
 * deadline (when the call's wait may start no task), join the caller, and check that
 * the call said -ETIMEDOUT about at its deadline, without the unrelated task. */
static void stopped_call_finish(plait_pool *pool, plait_task caller)
{
    plait_task other;
    CHECK_EQ(plait_sleep_until(deadline), 0);
    CHECK_EQ(plait_pool_submit(pool, &other, unrelated, NULL), 0);
    CHECK_EQ(plait_join(caller, NULL, PLAIT_FOREVER), 0);
    CHECK_EQ(call_result, -ETIMEDOUT);
    CHECK(call_end - deadline < 5 * PLAIT_SEC); /* not held by the unrelated task */
    CHECK(!atomic_load(&unrelated_inside_call));
    CHECK_EQ(plait_event_set(release), 0);
    CHECK_EQ(plait_join(other, NULL, PLAIT_FOREVER), 0);
    plait_event_destroy(release);
}

#endif
