/* test_pool_cancel_batch.c — a cancelling shutdown while a worker carries a batch of
 * tasks from the injection queue to its deque (inject_grab, pool.c): the batch has left
 * the queue the shutdown drains and is not yet on the deque it sweeps.  plait.h,
 * PLAIT_POOL_CANCEL: queued tasks complete as cancelled, their futures at once even
 * while every worker is held.  Here both are: H2 runs on, and H1, whose helping join
 * took the batch, goes on once it has run the batch's first task; the rest of the
 * batch stayed pending for as long as H1 ran (session 50's thread pool audit).
 *
 * Built with -Wl,--wrap=plait__inject_blocks_free, which, once armed, holds the worker
 * that calls it from inject_grab (between its take and its pushes) until the test lets
 * it go; the shutdown's own drain calls it too, on the test's thread, which it lets by. */
#include "helpers.h"

#include "../src/inject.h"

#include <pthread.h>
#include <sched.h>

void __real_plait__inject_blocks_free(plait__inject_block *list);
void __wrap_plait__inject_blocks_free(plait__inject_block *list);

static pthread_t test_thread;
static atomic_int hold_armed, held, let_go;

void __wrap_plait__inject_blocks_free(plait__inject_block *list)
{
    if (!pthread_equal(pthread_self(), test_thread) && atomic_load(&hold_armed) &&
        atomic_exchange(&hold_armed, 0)) {
        atomic_store(&held, 1);
        while (!atomic_load(&let_go))
            sched_yield();
    }
    __real_plait__inject_blocks_free(list);
}

static atomic_int h2_running, h1_started, xs_queued, h1_join_ended, stop_holding;
static plait_event *t_may_end;

/* Holds its worker until told, cancelled or not. */
static void *h2_holds(void *unused)
{
    (void)unused;
    atomic_store(&h2_running, 1);
    while (!atomic_load(&stop_holding))
        sched_yield();
    return NULL;
}

static void *waits_for_the_event(void *unused)
{
    (void)unused;
    return PLAIT_FAIL(plait_event_wait(t_may_end, SOON()));
}

/* Joins a plait thread (a helping wait: its worker takes queued work meanwhile), then,
 * its wait ended by the shutdown's cancellation, holds its worker too, joining nothing
 * (a join would help, and run what its worker holds); the test joins the thread. */
static plait_task t;
static void *h1_helps_then_holds(void *unused)
{
    (void)unused;
    CHECK_EQ(plait_thread_start(&t, waits_for_the_event, NULL, NULL), 0);
    /* the tasks are queued while both workers are busy: the join takes a batch of them */
    atomic_store(&h1_started, 1);
    int64_t give_up = SOON();
    while (!atomic_load(&xs_queued) && plait_now() < give_up)
        sched_yield();
    CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
    atomic_store(&h1_join_ended, 1);
    while (!atomic_load(&stop_holding))
        sched_yield();
    return NULL;
}

static void *nothing(void *unused) { return unused; }

enum { X = 10 };

TEST(a_batch_on_its_way_to_a_deque_is_cancelled_too)
{
    test_thread = pthread_self();
    CHECK_EQ(plait_event_create(&t_may_end), 0);
    plait_pool *pool;
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 2}), 0);
    plait_task h1, h2, x[X];
    CHECK_EQ(plait_pool_submit(pool, &h2, h2_holds, NULL), 0);
    CHECK_EQ(plait_pool_submit(pool, &h1, h1_helps_then_holds, NULL), 0);
    int64_t give_up = SOON();
    while ((!atomic_load(&h2_running) || !atomic_load(&h1_started)) && plait_now() < give_up)
        sched_yield();
    CHECK(atomic_load(&h2_running) && atomic_load(&h1_started));
    atomic_store(&hold_armed, 1);
    for (int i = 0; i < X; i++)
        CHECK_EQ(plait_pool_submit(pool, &x[i], nothing, NULL), 0);
    atomic_store(&xs_queued, 1);
    while (!atomic_load(&held) && plait_now() < give_up)
        sched_yield(); /* H1's worker has taken a batch, not yet pushed it */
    CHECK(atomic_load(&held));
    CHECK_EQ(plait_pool_shutdown(pool, PLAIT_POOL_CANCEL, plait_deadline_in(100 * PLAIT_MS)),
             -ETIMEDOUT); /* H1 and H2 hold their workers */
    atomic_store(&let_go, 1);
    /* every queued task completes as cancelled, promptly, though no worker is free */
    int64_t start = plait_now();
    for (int i = 0; i < X; i++) {
        int r = plait_join(x[i], NULL, plait_deadline_in(2 * PLAIT_SEC));
        CHECK(r == -ECANCELED || r == 0); /* (the first may have run: it was taken) */
    }
    CHECK_PROMPT(start);
    /* H1's join ends by the cancellation, not by T: T may end only once it has (were
     * both the test and H1 joining T, one would find the handle spent, -ESRCH) */
    give_up = SOON();
    while (!atomic_load(&h1_join_ended) && plait_now() < give_up)
        sched_yield();
    CHECK(atomic_load(&h1_join_ended));
    atomic_store(&stop_holding, 1);
    CHECK_EQ(plait_event_set(t_may_end), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(plait_join(h1, NULL, SOON()), -ECANCELED);
    CHECK_EQ(plait_join(h2, NULL, SOON()), -ECANCELED);
    CHECK_EQ(plait_pool_shutdown(pool, PLAIT_POOL_CANCEL, SOON()), 0); /* workers ending */
    CHECK_EQ(plait_pool_destroy(pool), 0);
    CHECK_EQ(plait_event_destroy(t_may_end), 0);
}

RUN_TESTS(CASE(a_batch_on_its_way_to_a_deque_is_cancelled_too))
