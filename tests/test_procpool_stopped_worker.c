/* test_procpool_stopped_worker.c — a process pool's shutdown and destroy end though a
 * worker with no task is stopped (SIGSTOP: a debugger, job control) and never exits.
 * Such a worker is "only exiting": it holds no task and its slots are free, so it is
 * waited for past the deadline, but a second at most (procpool.c, EXIT_GRACE_NS), then
 * killed.  (Failed first: each call waited for it for ever — until the guard below
 * let the worker go on, 10 s; session 53's audit.)
 *
 * A guard thread sends SIGCONT to the stopped worker if the call under test has not
 * returned in 10 s, so that a regression fails rather than hangs. */
#include "helpers.h"

#include <stdlib.h>

typedef struct guard {
    plait_event *done;
    int pid;
    atomic_bool fired;
    pthread_t th;
} guard;

static void *guard_body(void *arg)
{
    guard *g = arg;
    if (plait_event_wait(g->done, plait_deadline_in(10 * PLAIT_SEC)) == -ETIMEDOUT) {
        atomic_store(&g->fired, true);
        kill(g->pid, SIGCONT);
    }
    return NULL;
}

static ssize_t quick(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)out, (void)cap;
    return 0;
}

/* A pool of two workers that has run a task, one of them stopped (and its guard
 * started); its pid. */
static plait_procpool *pool_with_a_stopped_worker(guard *g)
{
    plait_procpool *pool;
    CHECK_EQ(plait_procpool_create(&pool, &(plait_procpool_options){.processes = 2}), 0);
    plait_task t;
    CHECK_EQ(plait_procpool_submit(pool, &t, quick, NULL, 0), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    int pids[2];
    CHECK_EQ(plait_procpool_pids(pool, pids, 2), 2);
    g->pid = pids[0];
    CHECK_EQ(kill(g->pid, SIGSTOP), 0);
    int64_t give_up = SOON();
    while (thread_state(g->pid) != 'T' && plait_now() < give_up)
        sched_yield();
    CHECK_EQ(thread_state(g->pid), 'T');
    CHECK_EQ(plait_event_create(&g->done), 0);
    atomic_store(&g->fired, false);
    thread_start(&g->th, guard_body, g);
    return pool;
}

/* The call returned (in `took`): in time, without the guard, and the worker is gone. */
static void check_ended(guard *g, int64_t took)
{
    CHECK_EQ(plait_event_set(g->done), 0);
    thread_join(g->th);
    CHECK(!atomic_load(&g->fired));
    CHECK(took < 5 * PLAIT_SEC);
    CHECK_EQ(plait_event_destroy(g->done), 0);
    fprintf(stderr, "  returned after %lld ms\n", (long long)(took / PLAIT_MS));
}

static void shutdown_with_a_deadline(int how)
{
    guard g;
    plait_procpool *pool = pool_with_a_stopped_worker(&g);
    int64_t start = plait_now();
    CHECK_EQ(plait_procpool_shutdown(pool, how, plait_deadline_in(200 * PLAIT_MS)), 0);
    check_ended(&g, plait_now() - start);
    CHECK(kill(g.pid, 0) < 0 && errno == ESRCH); /* killed and reaped */
    CHECK_EQ(plait_procpool_destroy(pool), 0);
}

TEST(cancel_with_a_deadline_ends) { shutdown_with_a_deadline(PLAIT_POOL_CANCEL); }

TEST(drain_with_a_deadline_ends) { shutdown_with_a_deadline(PLAIT_POOL_DRAIN); }

TEST(drain_with_a_past_deadline_ends) /* a try: waits past it, as for any exiting worker */
{
    guard g;
    plait_procpool *pool = pool_with_a_stopped_worker(&g);
    int64_t start = plait_now();
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, plait_now()), 0);
    check_ended(&g, plait_now() - start);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
}

TEST(destroy_ends)
{
    guard g;
    plait_procpool *pool = pool_with_a_stopped_worker(&g);
    int64_t start = plait_now();
    CHECK_EQ(plait_procpool_destroy(pool), 0);
    check_ended(&g, plait_now() - start);
}

RUN_TESTS(CASE(cancel_with_a_deadline_ends), CASE(drain_with_a_deadline_ends),
          CASE(drain_with_a_past_deadline_ends), CASE(destroy_ends))
