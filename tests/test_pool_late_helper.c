/* test_pool_late_helper.c — a helping wait whose deadline has passed starts no task, even
 * when a waker claimed the wait just before (its signal on its way).  Built with
 * -Wl,--wrap=plait__waiter_signal, which holds the waker of an as-completed wait (a
 * finishing task's completed_push, future.c) between its claim and its signal.  The
 * pool task H waits in plait_completed_next with a deadline; the task it watches ends
 * just before that deadline and its claim is held; past the deadline a long task L is
 * submitted.  plait.h: "Such a join starts no task after its deadline"; H's wait ran L
 * (on the pool's only worker) before returning (review 96; failed before the fix). */
#include "helpers.h"

#include "../src/internal.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>

void __real_plait__waiter_signal(plait__waiter *w, int status, int index, plait__wakeups *later);
void __wrap_plait__waiter_signal(plait__waiter *w, int status, int index, plait__wakeups *later);

static atomic_int hold_armed, held, release;

void __wrap_plait__waiter_signal(plait__waiter *w, int status, int index, plait__wakeups *later)
{
    if (atomic_load(&hold_armed) && w->what && strcmp(w->what, "completed") == 0 &&
        atomic_exchange(&hold_armed, 0)) {
        atomic_store(&held, 1);
        while (!atomic_load(&release))
            sched_yield();
    }
    __real_plait__waiter_signal(w, status, index, later);
}

static struct {
    plait_pool *pool;
    atomic_int x_go, h_in_next, h_returned, l_started, l_saw_h_waiting;
    int64_t deadline;
    int next_r;
} lt;

static void *lt_x(void *p)
{
    while (!atomic_load(&lt.x_go))
        sched_yield();
    return p;
}

static void *lt_l(void *p)
{
    atomic_store(&lt.l_saw_h_waiting, !atomic_load(&lt.h_returned));
    atomic_store(&lt.l_started, 1);
    return p;
}

static void *lt_h(void *p)
{
    plait_completed *set;
    CHECK_EQ(plait_completed_create(&set), 0);
    plait_task x, got;
    CHECK_EQ(plait_thread_start(&x, lt_x, NULL, NULL), 0);
    CHECK_EQ(plait_completed_add(set, x), 0);
    atomic_store(&lt.h_in_next, 1);
    lt.next_r = plait_completed_next(set, &got, lt.deadline);
    atomic_store(&lt.h_returned, 1);
    if (lt.next_r == 0)
        CHECK_EQ(plait_join(got, NULL, SOON()), 0);
    CHECK_EQ(plait_completed_destroy(set), 0);
    return p;
}

TEST(helping_wait_past_its_deadline_starts_no_task)
{
    CHECK_EQ(plait_pool_create(&lt.pool, &(plait_pool_options){.threads = 1, .name = "lt"}), 0);
    /* far enough off for two thread starts and X's claim on a stalled machine (a wait
     * timed out first is claimed by no completion: nothing would be held) */
    lt.deadline = plait_deadline_in(PLAIT_SEC);
    plait_task h, l;
    CHECK_EQ(plait_pool_submit(lt.pool, &h, lt_h, NULL), 0);
    while (!atomic_load(&lt.h_in_next))
        sched_yield();
    atomic_store(&hold_armed, 1);
    atomic_store(&lt.x_go, 1); /* X ends: its completion claims H's wait, and is held */
    int64_t bound = SOON();
    while (!atomic_load(&held) && plait_now() < bound)
        sched_yield();
    CHECK(atomic_load(&held)); /* else H's wait had timed out before X ended */
    while (plait_now() <= lt.deadline) /* H's deadline passes with its outcome claimed */
        sched_yield();
    CHECK_EQ(plait_pool_submit(lt.pool, &l, lt_l, NULL), 0);
    /* give H's worker the chance to start L (it does at once on the old code) */
    int64_t until = plait_deadline_in(300 * PLAIT_MS);
    while (!atomic_load(&lt.l_started) && plait_now() < until)
        sched_yield();
    atomic_store(&release, 1);
    CHECK_EQ(plait_join(h, NULL, SOON()), 0);
    CHECK_EQ(plait_join(l, NULL, SOON()), 0);
    CHECK_EQ(lt.next_r, 0); /* the task it watched had ended: claimed before the deadline */
    CHECK_EQ(atomic_load(&lt.l_saw_h_waiting), 0); /* no task started inside the wait */
    CHECK_EQ(plait_pool_destroy(lt.pool), 0);
}

RUN_TESTS(CASE(helping_wait_past_its_deadline_starts_no_task))
