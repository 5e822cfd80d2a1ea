/*
 * test_procpool_one_cpu.c — a process pool whose parent and workers all run on one CPU
 * (the process pins itself before anything starts: every thread and worker takes its
 * mask).  There a joiner whose workers all took their last task on its own CPU sleeps
 * at once instead of looking again first (procpool.c, workers_elsewhere), so that the
 * worker wakes it rather than the manager thread: the path every join takes here.  No
 * result may be lost or mixed up on it — joins from a thread and from coroutines,
 * tasks left to the manager (detached, gathered by an as-completed set), one worker and
 * several.  (How fast it is, is bench_process's "samecpu" figure, not a test's.)
 */
#include "helpers.h"

#include <sched.h>

enum { ROUND_TRIPS = 3000, SET = 64 };


/* Submit v, join it, check v * v. */
static void round_trip(plait_procpool *pool, int64_t v)
{
    plait_task t;
    void *r = NULL;
    CHECK_EQ(plait_procpool_submit(pool, &t, proc_square, &v, sizeof v), 0);
    CHECK_EQ(plait_join(t, &r, SOON()), 0);
    plait_bytes *b = r;
    CHECK(b != NULL && b->len == sizeof v);
    if (b && b->len == sizeof v) {
        int64_t got;
        memcpy(&got, b->data, sizeof got);
        CHECK_EQ(got, v * v);
    }
    free(b);
}

typedef struct coro_joins {
    plait_procpool *pool;
    int64_t first;
} coro_joins;

static void *joiner(void *arg)
{
    coro_joins *c = arg;
    for (int64_t i = 0; i < ROUND_TRIPS / 10; i++)
        round_trip(c->pool, c->first + i);
    return NULL;
}

static void *two_coroutines(void *arg)
{
    plait_procpool *pool = arg;
    coro_joins a = {pool, 1}, b = {pool, 100000};
    plait_task ta, tb;
    CHECK_EQ(plait_spawn(&ta, joiner, &a), 0);
    CHECK_EQ(plait_spawn(&tb, joiner, &b), 0);
    CHECK_EQ(plait_join(ta, NULL, SOON()), 0);
    CHECK_EQ(plait_join(tb, NULL, SOON()), 0);
    return NULL;
}

static void on_one_cpu(unsigned workers)
{
    plait_procpool *pool;
    CHECK_EQ(plait_procpool_create(&pool, &(plait_procpool_options){.processes = workers}), 0);
    /* a thread's joins: the workers' hints say this CPU from the first task on */
    for (int64_t i = 0; i < ROUND_TRIPS; i++)
        round_trip(pool, i - ROUND_TRIPS / 2);
    /* coroutines' joins (collected by the manager) beside the thread's */
    check_run(two_coroutines, pool);
    /* tasks nobody helps: an as-completed set gets each once */
    plait_completed *set;
    CHECK_EQ(plait_completed_create(&set), 0);
    plait_task t[SET];
    int64_t sum = 0;
    for (int64_t i = 0; i < SET; i++) {
        CHECK_EQ(plait_procpool_submit(pool, &t[i], proc_square, &i, sizeof i), 0);
        CHECK_EQ(plait_completed_add(set, t[i]), 0);
        sum += i * i;
    }
    for (int i = 0; i < SET; i++) {
        plait_task done;
        void *r = NULL;
        CHECK_EQ(plait_completed_next(set, &done, SOON()), 0);
        CHECK_EQ(plait_join(done, &r, SOON()), 0);
        plait_bytes *b = r;
        if (b && b->len == sizeof sum) {
            int64_t got;
            memcpy(&got, b->data, sizeof got);
            sum -= got;
        }
        free(b);
    }
    CHECK_EQ(sum, 0);
    plait_task none;
    CHECK_EQ(plait_completed_next(set, &none, 0), -EPIPE);
    CHECK_EQ(plait_completed_destroy(set), 0);
    CHECK_EQ(plait_procpool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_procpool_destroy(pool), 0);
}

TEST(one_worker_on_one_cpu) { on_one_cpu(1); }
TEST(three_workers_on_one_cpu) { on_one_cpu(3); }

int main(void)
{
    /* first: every thread and process made from now on takes this mask */
    CHECK_EQ(pin_to_one_cpu(), 0);
    CHECK_EQ(plait_cpu_count(), 1);
    static const check_case cases[] = {CASE(one_worker_on_one_cpu),
                                       CASE(three_workers_on_one_cpu)};
    return check_main(cases, sizeof cases / sizeof cases[0]);
}
