/* test_pool_wake_past_deadline.c — a wake-up meant for a push is not spent on a helping join
 * whose deadline has passed.  Built with -Wl,--wrap=plait__futex_wait, which holds the
 * helping worker H right after its park's futex wait has timed out (before it takes
 * itself off the sleepers), while the busy task P pushes a task T.  The push's
 * wake-up falls on H (the wake cursor is steered: see the order of submits), whose
 * join then returns -ETIMEDOUT without looking for work: unless H passes the wake-up
 * on, the third worker sleeps on and T waits on P's deque while P waits for it
 * (review 96; failed before the fix). */
#include "helpers.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

int __real_plait__futex_wait(atomic_uint *word, unsigned expected, int64_t deadline);

static _Thread_local int tls_in_h;
static atomic_int h_held, h_release;

int __wrap_plait__futex_wait(atomic_uint *word, unsigned expected, int64_t deadline);
int __wrap_plait__futex_wait(atomic_uint *word, unsigned expected, int64_t deadline)
{
    int r = __real_plait__futex_wait(word, expected, deadline);
    if (tls_in_h && r == -ETIMEDOUT && !atomic_load(&h_held)) {
        atomic_store(&h_held, 1);
        while (!atomic_load(&h_release))
            sched_yield();
    }
    return r;
}

static void wait_sleeping(int n)
{
    int64_t until = plait_deadline_in(10 * PLAIT_SEC);
    int seen;
    while ((seen = pool_workers_sleeping("dl")) < n && plait_now() < until)
        sched_yield();
    CHECK_EQ(seen, n);
}

static struct {
    plait_pool *pool;
    plait_task x;
    atomic_int p_running, h_running, push, pushed, t_ran, p_done, x_go;
    int h_join;
} dl;

static void *dl_x(void *p) /* a plait thread H joins: it ends only when told */
{
    while (!atomic_load(&dl.x_go))
        sched_yield();
    return p;
}

static void *dl_t(void *p)
{
    atomic_store(&dl.t_ran, 1);
    return p;
}

static void *dl_p(void *p)
{
    (void)p;
    atomic_store(&dl.p_running, 1);
    while (!atomic_load(&dl.push)) /* busy, not asleep in the pool */
        sched_yield();
    plait_task t;
    CHECK_EQ(plait_pool_submit(dl.pool, &t, dl_t, NULL), 0);
    atomic_store(&dl.pushed, 1);
    int64_t until = plait_deadline_in(3 * PLAIT_SEC); /* busy: only another worker runs T */
    while (!atomic_load(&dl.t_ran) && plait_now() < until)
        sched_yield();
    int ran = atomic_load(&dl.t_ran);
    atomic_store(&dl.p_done, 1);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    return ran ? NULL : PLAIT_FAIL(-ETIMEDOUT);
}

static void *dl_h(void *p)
{
    tls_in_h = 1;
    atomic_store(&dl.h_running, 1);
    /* far enough off for the test to see H asleep twice and the no-op run, on a
     * stalled machine too: H held past its deadline does not look asleep */
    dl.h_join = plait_join(dl.x, NULL, plait_deadline_in(PLAIT_SEC));
    tls_in_h = 0;
    while (!atomic_load(&dl.p_done)) /* busy, not helping, until P is done */
        sched_yield();
    return p;
}

static atomic_int no_op_ran;
static void *no_op(void *p)
{
    atomic_store(&no_op_ran, 1);
    return p;
}

TEST(push_wake_not_spent_on_helper_past_its_deadline)
{
    CHECK_EQ(plait_pool_create(&dl.pool, &(plait_pool_options){.threads = 3, .name = "dl"}), 0);
    wait_sleeping(3);
    /* the wake cursor counts wake-ups from 0: P goes to worker 0, H to worker 1, the
     * no-op to worker 2, and the push's wake-up then looks at worker 0 (busy), then 1 */
    plait_task p, h;
    CHECK_EQ(plait_pool_submit(dl.pool, &p, dl_p, NULL), 0);
    while (!atomic_load(&dl.p_running))
        sched_yield();
    CHECK_EQ(plait_thread_start(&dl.x, dl_x, NULL, NULL), 0);
    CHECK_EQ(plait_pool_submit(dl.pool, &h, dl_h, NULL), 0);
    int64_t until = SOON(); /* (two seen asleep before H's worker woke would be stale) */
    while (!atomic_load(&dl.h_running) && plait_now() < until)
        sched_yield();
    CHECK(atomic_load(&dl.h_running));
    wait_sleeping(2); /* H asleep in its helping join, the third worker idle */
    CHECK_EQ(plait_pool_submit(dl.pool, NULL, no_op, NULL), 0);
    /* (the two may still be seen asleep before the no-op's worker wakes: once it ran,
     * its worker is back asleep beside H) */
    until = SOON();
    while (!atomic_load(&no_op_ran) && plait_now() < until)
        sched_yield();
    CHECK(atomic_load(&no_op_ran));
    wait_sleeping(2);
    until = SOON();
    while (!atomic_load(&h_held) && plait_now() < until) /* H's deadline passes in its sleep */
        sched_yield();
    CHECK(atomic_load(&h_held));
    atomic_store(&dl.push, 1);
    while (!atomic_load(&dl.pushed))
        sched_yield();
    atomic_store(&h_release, 1);
    int pr = plait_join(p, NULL, SOON());
    CHECK_EQ(plait_join(h, NULL, SOON()), 0);
    CHECK_EQ(dl.h_join, -ETIMEDOUT);
    CHECK_EQ(pr, 0); /* T ran while P waited: the idle worker was woken */
    atomic_store(&dl.x_go, 1);
    CHECK_EQ(plait_join(dl.x, NULL, SOON()), 0);
    CHECK_EQ(plait_pool_destroy(dl.pool), 0);
}

RUN_TESTS(CASE(push_wake_not_spent_on_helper_past_its_deadline))
