/*
 * test_procpool_no_timer.c — a process pool with a task_timeout whose workers cannot
 * make the timer that keeps it (timer_create refused: RLIMIT_SIGPENDING at 0, which
 * binds root too).
 *
 * A worker that could not make its timer exited at once, as an idle worker that had
 * simply ended: create said 0, the manager forked a replacement at once, which did the
 * same, some 6,000 forks a second, and no task ever ran (its join ended at its
 * deadline; with none, never) (a fault-injection audit).  Now the timer is part of the
 * worker's start, as its initialiser is: create fails with -EAGAIN, and a replacement
 * that cannot make one breaks the pool with -EAGAIN (the task waiting and every later
 * submit fail with it).
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

TEST(create_fails_when_a_worker_cannot_make_its_timer)
{
    plait_procpool_options o = {.processes = 2, .task_timeout = 10 * PLAIT_SEC};
    plait_procpool *pool = NULL;
    no_signal_room();
    CHECK_EQ(plait_procpool_create(&pool, &o), -EAGAIN);
    signal_room_back();
    /* with room, the same pool starts and runs */
    CHECK_EQ(plait_procpool_create(&pool, &o), 0);
    if (!pool)
        return;
    runs_a_task(pool);
    close_pool(pool);
}

static int init_ok(void *arg)
{
    (void)arg;
    return 0;
}

/* (its initialiser returned 0: create used to go on as soon as it had) */
TEST(create_with_an_initialiser_fails_the_same_way)
{
    plait_procpool_options o = {.processes = 1, .task_timeout = 10 * PLAIT_SEC,
                                .init = init_ok};
    plait_procpool *pool = NULL;
    no_signal_room();
    CHECK_EQ(plait_procpool_create(&pool, &o), -EAGAIN);
    signal_room_back();
}

TEST(a_replacement_that_cannot_make_its_timer_breaks_the_pool)
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
    /* the next task waits for the replacement, or finds the pool broken */
    plait_task t;
    int r = plait_procpool_submit(pool, &t, say_ok, NULL, 0);
    if (r == 0)
        r = plait_join(t, NULL, SOON());
    CHECK_EQ(r, -EAGAIN);
    CHECK_EQ(plait_procpool_submit(pool, &t, say_ok, NULL, 0), -EAGAIN);
    signal_room_back();
    close_pool(pool);
}

RUN_TESTS(CASE(create_fails_when_a_worker_cannot_make_its_timer),
          CASE(create_with_an_initialiser_fails_the_same_way),
          CASE(a_replacement_that_cannot_make_its_timer_breaks_the_pool))
