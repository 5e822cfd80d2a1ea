/*
 * test_review_badin.c — answers of the public API to bad or borderline input that
 * differed from what plait.h promises (a systematic sweep of include/plait.h).
 *
 * plait_procpool_shutdown: plait.h says "0; -ETIMEDOUT when a task still runs at the
 * deadline".  On a pool with no task left (none queued, none running) the workers are
 * only exiting, yet a past deadline (0, as "do not block" is spelt) gave -ETIMEDOUT:
 * the call did not wait for the workers to notice the stop and end.  The thread pool
 * had the same answer and was made to wait for such workers (commit 1a3959f); the
 * process pool now does too.  A worker still in its initialiser is not only exiting:
 * a past deadline still gives -ETIMEDOUT then, at once.
 */
#include "helpers.h"

#include <stdatomic.h>
#include <string.h>

static ssize_t nothing(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    (void)arg, (void)arg_len, (void)out, (void)out_cap;
    return 0;
}

static void idle_pool_shutdown(int how, int64_t deadline)
{
    plait_procpool *pool;
    plait_procpool_options o = {.processes = 2};
    CHECK_EQ(plait_procpool_create(&pool, &o), 0);
    if (!pool)
        return;
    plait_task t;
    void *v = NULL;
    CHECK_EQ(plait_procpool_submit(pool, &t, nothing, NULL, 0), 0);
    CHECK_EQ(plait_join(t, &v, SOON()), 0); /* a worker has run a task: the pool is idle */
    free(v);
    CHECK_EQ(plait_procpool_shutdown(pool, how, deadline), 0);
    int pids[2];
    CHECK_EQ(plait_procpool_pids(pool, pids, 2), 0); /* the workers have ended */
    CHECK_EQ(plait_procpool_shutdown(pool, how, deadline), 0); /* again: done */
    CHECK_EQ(plait_procpool_destroy(pool), 0);
}

TEST(procpool_idle_shutdown_with_a_past_deadline_returns_0)
{
    idle_pool_shutdown(PLAIT_POOL_DRAIN, 0);
    idle_pool_shutdown(PLAIT_POOL_DRAIN, INT64_MIN);
    idle_pool_shutdown(PLAIT_POOL_CANCEL, 0);
    idle_pool_shutdown(PLAIT_POOL_CANCEL, -1);
}

static void *idle_shutdown_main(void *arg)
{
    (void)arg;
    idle_pool_shutdown(PLAIT_POOL_DRAIN, 0);
    return NULL;
}

TEST(procpool_idle_shutdown_with_a_past_deadline_returns_0_from_a_coroutine)
{
    check_run(idle_shutdown_main, NULL);
}

/* A replacement worker (max_tasks 1) blocked in its initialiser: no task runs, but the
 * worker is not only exiting, so a past deadline still answers -ETIMEDOUT, at once. */
static plait_shm *inits;       /* int: initialisers begun, in every process */
static plait_psem *in_init;    /* released by an initialiser that then waits */
static plait_pevent *let_init; /* what such an initialiser waits for */

static int gated_init(void *arg)
{
    (void)arg;
    atomic_int *n = plait_shm_data(inits);
    if (atomic_fetch_add(n, 1) == 0)
        return 0; /* the first worker's, at create */
    plait_psem_release(in_init);
    return plait_pevent_wait(let_init, SOON()) == 0 ? 0 : -EIO;
}

TEST(procpool_shutdown_with_a_worker_in_its_initialiser_still_times_out)
{
    CHECK_EQ(plait_shm_create(&inits, sizeof(atomic_int)), 0);
    CHECK_EQ(plait_psem_create(&in_init, 0), 0);
    CHECK_EQ(plait_pevent_create(&let_init), 0);
    plait_procpool *pool;
    plait_procpool_options o = {.processes = 1, .max_tasks = 1, .init = gated_init};
    CHECK_EQ(plait_procpool_create(&pool, &o), 0);
    if (!pool)
        return;
    plait_task t;
    void *v = NULL;
    CHECK_EQ(plait_procpool_submit(pool, &t, nothing, NULL, 0), 0);
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    free(v);
    CHECK_EQ(plait_psem_acquire(in_init, SOON()), 0); /* the replacement is in init */
    int64_t before = plait_now();
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, 0), -ETIMEDOUT);
    CHECK(plait_now() - before < 2 * PLAIT_SEC); /* it did not wait for the init */
    CHECK_EQ(plait_pevent_set(let_init), 0);
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    CHECK_EQ(plait_pevent_destroy(let_init), 0);
    CHECK_EQ(plait_psem_destroy(in_init), 0);
    CHECK_EQ(plait_shm_destroy(inits), 0);
}

RUN_TESTS(CASE(procpool_idle_shutdown_with_a_past_deadline_returns_0),
          CASE(procpool_idle_shutdown_with_a_past_deadline_returns_0_from_a_coroutine),
          CASE(procpool_shutdown_with_a_worker_in_its_initialiser_still_times_out))
