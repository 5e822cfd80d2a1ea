/*
 * test_procpool_no_timer.c — a process pool with a task_timeout whose workers cannot
 * make the timer that keeps it (timer_create refused: RLIMIT_SIGPENDING at 0, which
 * binds root too).
 *
 * A worker that could not make its timer exited at once, as an idle worker that had
 * simply ended: the manager forked a replacement at once, which did the same, some
 * 6,000 forks a second, and no task ever ran (its join ended at its deadline; with
 * none, never) (a fault-injection audit).  Now it counts as a fork refused: create
 * waiting for an initialiser fails with -EAGAIN, and a pool left with no worker fails
 * what waits and refuses submits with -EAGAIN while it tries again every 50 ms; once
 * the shortage has passed (RLIMIT_SIGPENDING is shared by the user's processes: it
 * passes), its tasks run again.
 */
#include "helpers.h"

#include <string.h>
#include <sys/resource.h>

static ssize_t say_ok(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len;
    if (cap < 2)
        return -EMSGSIZE;
    memcpy(out, "ok", 2);
    return 2;
}

static struct rlimit saved;

static void no_signal_room(void)
{
    CHECK_EQ(getrlimit(RLIMIT_SIGPENDING, &saved), 0);
    struct rlimit none = {0, saved.rlim_max};
    CHECK_EQ(setrlimit(RLIMIT_SIGPENDING, &none), 0);
}

static void signal_room_back(void) { CHECK_EQ(setrlimit(RLIMIT_SIGPENDING, &saved), 0); }

/* A task of the pool runs and says "ok". */
static void runs_a_task(plait_procpool *pool)
{
    plait_task t;
    CHECK_EQ(plait_procpool_submit(pool, &t, say_ok, NULL, 0), 0);
    void *res = NULL;
    CHECK_EQ(plait_join(t, &res, SOON()), 0);
    plait_bytes *b = res;
    CHECK(b && b->len == 2 && memcmp(b->data, "ok", 2) == 0);
    free(b);
}

static void close_pool(plait_procpool *pool)
{
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_CANCEL, SOON()), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
}

/* A task submitted while the pool has no worker able to start fails with -EAGAIN (at
 * submit, or at its join once the last worker has gone). */
static void refused_for_want_of_a_timer(plait_procpool *pool)
{
    plait_task t;
    int r = plait_procpool_submit(pool, &t, say_ok, NULL, 0);
    if (r == 0)
        r = plait_join(t, NULL, SOON());
    CHECK_EQ(r, -EAGAIN);
}

/* Once the room is back, the pool's retry forks a worker that starts: a submit is
 * refused (-EAGAIN) only until then, and its task runs. */
static void runs_again(plait_procpool *pool)
{
    int64_t give_up = SOON();
    int r;
    plait_task t;
    while ((r = plait_procpool_submit(pool, &t, say_ok, NULL, 0)) == -EAGAIN &&
           plait_now() < give_up)
        plait_sleep(10 * PLAIT_MS);
    CHECK_EQ(r, 0);
    if (r < 0)
        return;
    void *res = NULL;
    CHECK_EQ(plait_join(t, &res, SOON()), 0);
    plait_bytes *b = res;
    CHECK(b && b->len == 2 && memcmp(b->data, "ok", 2) == 0);
    free(b);
}

TEST(a_pool_whose_workers_cannot_make_their_timers_refuses_then_recovers)
{
    plait_procpool_options o = {.processes = 2, .task_timeout = 10 * PLAIT_SEC};
    plait_procpool *pool = NULL;
    no_signal_room();
    CHECK_EQ(plait_procpool_create(&pool, &o), 0);
    if (!pool) {
        signal_room_back();
        return;
    }
    refused_for_want_of_a_timer(pool);
    signal_room_back();
    runs_again(pool);
    runs_a_task(pool);
    close_pool(pool);
}

static int init_ok(void *arg)
{
    (void)arg;
    return 0;
}

/* create waits for the workers' initialisers: a worker that cannot make its timer (made
 * before) fails it, as a fork refused would (create used to go on once the initialiser
 * had returned, the timer refused after it) */
TEST(create_with_an_initialiser_fails_when_a_worker_cannot_make_its_timer)
{
    plait_procpool_options o = {.processes = 1, .task_timeout = 10 * PLAIT_SEC,
                                .init = init_ok};
    plait_procpool *pool = NULL;
    no_signal_room();
    CHECK_EQ(plait_procpool_create(&pool, &o), -EAGAIN);
    signal_room_back();
}

TEST(a_replacement_that_cannot_make_its_timer_is_tried_again)
{
    /* max_tasks 1: the worker is replaced after its first task, the replacement forked
     * with the room taken away */
    plait_procpool_options o = {.processes = 1, .task_timeout = 10 * PLAIT_SEC,
                                .max_tasks = 1};
    plait_procpool *pool = NULL;
    CHECK_EQ(plait_procpool_create(&pool, &o), 0);
    if (!pool)
        return;
    no_signal_room();
    runs_a_task(pool);
    refused_for_want_of_a_timer(pool);
    signal_room_back();
    runs_again(pool);
    runs_again(pool);
    close_pool(pool);
}

RUN_TESTS(CASE(a_pool_whose_workers_cannot_make_their_timers_refuses_then_recovers),
          CASE(create_with_an_initialiser_fails_when_a_worker_cannot_make_its_timer),
          CASE(a_replacement_that_cannot_make_its_timer_is_tried_again))
