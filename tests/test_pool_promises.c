/* test_pool_promises.c — thread pools and offloading (review 120): submit, map, shutdown,
 * destroy, to_thread, as-completed sets, wait_all/wait_any and joins of pool tasks
 * at their edges (bad input, duplicates, deadlines, cancellation, shutdown). */
#include "helpers.h"

#include "../src/internal.h"

#include <sched.h>
#include <string.h>

static void *ret_arg(void *arg) { return arg; }
static void *fail_with(void *arg) { return PLAIT_FAIL(INT(arg)); }

static void *blocks_until_cancelled(void *p)
{
    (void)p;
    return PLAIT_FAIL(plait_sleep_until(PLAIT_FOREVER));
}

static plait_pool *make_pool(unsigned threads, const char *name)
{
    plait_pool *pool = NULL;
    plait_pool_options o = {.threads = threads, .name = name};
    CHECK_EQ(plait_pool_create(&pool, &o), 0);
    return pool;
}

/* ---- bad input: nulls, zero counts, duplicates, stale handles ---- */

TEST(bad_input_is_refused_and_touches_nothing)
{
    plait_pool *pool = make_pool(2, "bad");
    plait_task t = {0}, keep = {(void *)1, 7};
    CHECK_EQ(plait_pool_submit(NULL, &t, ret_arg, NULL), -EINVAL);
    keep = (plait_task){(void *)1, 7};
    CHECK_EQ(plait_pool_submit(pool, &keep, NULL, NULL), -EINVAL);
    CHECK(keep.future == (void *)1 && keep.generation == 7);
    void *args[1] = {ARG(1)}, *results[1] = {ARG(9)};
    int errors[1] = {5};
    CHECK_EQ(plait_pool_map(pool, ret_arg, args, 0, results, errors, SOON()), -EINVAL);
    CHECK_EQ(plait_pool_map(pool, ret_arg, NULL, 1, results, errors, SOON()), -EINVAL);
    CHECK_EQ(plait_pool_map(pool, ret_arg, args, 1, NULL, errors, SOON()), -EINVAL);
    CHECK_EQ(plait_pool_map(pool, NULL, args, 1, results, errors, SOON()), -EINVAL);
    CHECK_EQ(plait_pool_map(NULL, ret_arg, args, 1, results, errors, SOON()), -EINVAL);
    CHECK_EQ(plait_pool_map(pool, ret_arg, args, SIZE_MAX, results, errors, SOON()), -EINVAL);
    CHECK_EQ(INT(results[0]), 9);
    CHECK_EQ(errors[0], 5);
    CHECK_EQ(plait_pool_shutdown(pool, 2, SOON()), -EINVAL);
    CHECK_EQ(plait_pool_shutdown(pool, -1, SOON()), -EINVAL);
    CHECK_EQ(plait_pool_shutdown(NULL, 0, SOON()), -EINVAL);
    CHECK_EQ(plait_pool_destroy(NULL), -EINVAL);
    CHECK_EQ(plait_pool_threads(NULL), 0u);
    CHECK_EQ(plait_pool_threads(pool), 2u);
    plait_pool_options too_many = {.threads = PLAIT_POOL_THREADS_MAX + 1};
    plait_pool *none = NULL;
    CHECK_EQ(plait_pool_create(&none, &too_many), -EINVAL);
    CHECK_EQ(plait_pool_create(NULL, NULL), -EINVAL);
    CHECK(none == NULL);

    plait_task tasks[3];
    CHECK_EQ(plait_pool_submit(pool, &tasks[0], ret_arg, ARG(1)), 0);
    CHECK_EQ(plait_pool_submit(pool, &tasks[1], ret_arg, ARG(2)), 0);
    tasks[2] = tasks[0];
    CHECK_EQ(plait_wait_all(tasks, 0, NULL, NULL, SOON()), -EINVAL);
    CHECK_EQ(plait_wait_all(NULL, 1, NULL, NULL, SOON()), -EINVAL);
    CHECK_EQ(plait_wait_all(tasks, 3, NULL, NULL, SOON()), -EINVAL); /* a duplicate */
    plait_task with_null[2] = {tasks[0], {0}};
    CHECK_EQ(plait_wait_all(with_null, 2, NULL, NULL, SOON()), -EINVAL);
    CHECK_EQ(plait_wait_any(tasks, 0, SOON()), -EINVAL);
    CHECK_EQ(plait_wait_any(NULL, 1, SOON()), -EINVAL);
    /* a duplicate is fine for wait_any: it consumes nothing */
    int i = plait_wait_any(tasks, 3, SOON());
    CHECK(i >= 0 && i < 3);
    /* none consumed by the refusals: all joinable */
    void *r;
    CHECK_EQ(plait_join(tasks[0], &r, SOON()), 0);
    CHECK_EQ(INT(r), 1);
    CHECK_EQ(plait_join(tasks[0], &r, SOON()), -ESRCH);        /* join twice */
    CHECK_EQ(plait_wait_any(&tasks[0], 1, 0), -ESRCH);
    CHECK_EQ(plait_wait_all(tasks, 2, NULL, NULL, SOON()), -ESRCH); /* one stale */
    CHECK_EQ(plait_join(tasks[1], &r, SOON()), 0);              /* not consumed */
    CHECK_EQ(INT(r), 2);
    CHECK_EQ(plait_cancel(tasks[1]), -ESRCH);
    CHECK_EQ(plait_detach(tasks[1]), -ESRCH);
    CHECK_EQ(plait_join((plait_task){0}, NULL, 0), -EINVAL);
    CHECK_EQ(plait_pool_destroy(pool), 0);
}

/* wait_any refuses a bad handle (a null one, a stale one) wherever it is in the list.
 * It stopped looking at the list at the first finished task, so a bad handle after one
 * passed, and the same call answered -EINVAL or an index depending on whether that task
 * had finished yet.  (wait_all checks every handle before it waits.) */
TEST(wait_any_refuses_a_bad_handle_after_a_finished_task)
{
    plait_pool *pool = make_pool(1, "badany");
    plait_task done, consumed, blocked;
    CHECK_EQ(plait_pool_submit(pool, &done, ret_arg, ARG(1)), 0);
    CHECK_EQ(plait_pool_submit(pool, &consumed, ret_arg, ARG(2)), 0);
    CHECK_EQ(plait_join(consumed, NULL, SOON()), 0);
    CHECK_EQ(plait_wait_any(&done, 1, SOON()), 0); /* finished, not consumed */
    CHECK_EQ(plait_pool_submit(pool, &blocked, blocks_until_cancelled, NULL), 0);
    /* with the bad one first, or behind a task still running: refused */
    plait_task null_first[2] = {{0}, done}, null_behind_running[2] = {blocked, {0}};
    CHECK_EQ(plait_wait_any(null_first, 2, 0), -EINVAL);
    CHECK_EQ(plait_wait_any(null_behind_running, 2, 0), -EINVAL);
    /* behind a finished task: refused the same */
    plait_task null_behind_done[2] = {done, {0}}, stale_behind_done[3] = {done, blocked, consumed};
    CHECK_EQ(plait_wait_any(null_behind_done, 2, SOON()), -EINVAL);
    CHECK_EQ(plait_wait_any(stale_behind_done, 3, SOON()), -ESRCH);
    plait_task many[10];
    for (int i = 0; i < 10; i++)
        many[i] = i == 9 ? consumed : done;
    CHECK_EQ(plait_wait_any(many, 10, 0), -ESRCH);
    /* a good list still answers, and nothing was consumed or left linked */
    plait_task good[2] = {blocked, done};
    CHECK_EQ(plait_wait_any(good, 2, 0), 1);
    CHECK_EQ(plait_join(done, NULL, 0), 0);
    CHECK_EQ(plait_cancel(blocked), 0);
    CHECK_EQ(plait_join(blocked, NULL, SOON()), -ECANCELED);
    CHECK_EQ(plait_pool_destroy(pool), 0);
}

/* ---- a failure reaches whoever waits, by every way of waiting ---- */

TEST(failures_reach_join_wait_all_map_and_completed)
{
    plait_pool *pool = make_pool(3, "fail");
    plait_task a, b, c;
    CHECK_EQ(plait_pool_submit(pool, &a, fail_with, ARG(-EIO)), 0);
    CHECK_EQ(plait_pool_submit(pool, &b, ret_arg, ARG(5)), 0);
    CHECK_EQ(plait_pool_submit(pool, &c, fail_with, ARG(-EPROTO)), 0);
    plait_task all[3] = {b, c, a};
    void *results[3];
    int errors[3];
    CHECK_EQ(plait_wait_all(all, 3, results, errors, SOON()), -EPROTO);
    CHECK_EQ(errors[0], 0);
    CHECK_EQ(INT(results[0]), 5);
    CHECK_EQ(errors[1], -EPROTO);
    CHECK_EQ(errors[2], -EIO);
    CHECK(results[1] == NULL && results[2] == NULL);

    void *args[100], *res[100];
    int errs[100];
    for (int i = 0; i < 100; i++)
        args[i] = ARG(1000 + i);
    CHECK_EQ(plait_pool_map(pool, ret_arg, args, 100, res, errs, SOON()), 0);
    CHECK_EQ(INT(res[99]), 1099);
    for (int i = 0; i < 100; i++)
        args[i] = ARG(i == 37 ? -ENOSPC : i == 80 ? -EIO : 1000 + i);
    /* fail_with on every item: the first failure in index order is returned */
    CHECK_EQ(plait_pool_map(pool, fail_with, args, 100, res, errs, SOON()), -ENOSPC);
    CHECK_EQ(errs[37], -ENOSPC);
    CHECK_EQ(errs[80], -EIO);
    CHECK(res[37] == NULL);

    plait_completed *set;
    CHECK_EQ(plait_completed_create(&set), 0);
    CHECK_EQ(plait_pool_submit(pool, &a, fail_with, ARG(-EXDEV)), 0);
    CHECK_EQ(plait_completed_add(set, a), 0);
    plait_task done;
    CHECK_EQ(plait_completed_next(set, &done, SOON()), 0);
    CHECK(done.future == a.future && done.generation == a.generation);
    CHECK_EQ(plait_join(done, NULL, 0), -EXDEV);
    CHECK_EQ(plait_completed_next(set, &done, 0), -EPIPE);
    CHECK_EQ(plait_completed_destroy(set), 0);
    CHECK_EQ(plait_pool_destroy(pool), 0);
}

/* ---- joining oneself ---- */

typedef struct {
    plait_task self;
    atomic_int ready;
    int join_r, any_r, all_r, all2_r;
    plait_task other;
} self_join;

static void *joins_itself(void *p)
{
    self_join *s = p;
    while (!atomic_load(&s->ready))
        sched_yield();
    s->join_r = plait_join(s->self, NULL, SOON());
    s->any_r = plait_wait_any(&s->self, 1, SOON());
    s->all_r = plait_wait_all(&s->self, 1, NULL, NULL, SOON());
    plait_task two[2] = {s->other, s->self};
    s->all2_r = plait_wait_all(two, 2, NULL, NULL, SOON());
    return ARG(42);
}

TEST(a_pool_task_joining_itself_is_told_edeadlk)
{
    plait_pool *pool = make_pool(1, "self");
    static self_join s;
    memset(&s, 0, sizeof s);
    plait_pool *other = make_pool(1, "oth");
    CHECK_EQ(plait_pool_submit(other, &s.other, blocks_until_cancelled, NULL), 0);
    CHECK_EQ(plait_pool_submit(pool, &s.self, joins_itself, &s), 0);
    atomic_store(&s.ready, 1);
    void *r;
    int64_t start = plait_now();
    CHECK_EQ(plait_join(s.self, &r, SOON()), 0);
    CHECK_PROMPT(start);
    CHECK_EQ(INT(r), 42);
    CHECK_EQ(s.join_r, -EDEADLK);
    CHECK_EQ(s.any_r, -EDEADLK);
    CHECK_EQ(s.all_r, -EDEADLK);
    CHECK_EQ(s.all2_r, -EDEADLK);
    CHECK_EQ(plait_cancel(s.other), 0);
    CHECK_EQ(plait_join(s.other, NULL, SOON()), -ECANCELED);
    CHECK_EQ(plait_pool_destroy(pool), 0);
    CHECK_EQ(plait_pool_destroy(other), 0);
}

/* A coroutine whose scheduler runs in a pool task joining that task: -EDEADLK at once
 * (the task cannot return while its scheduler's coroutine waits); shutdown and destroy
 * of the pool from there: -EDEADLK too. */
typedef struct {
    plait_pool *pool;
    plait_task self;
    atomic_int ready;
    int join_r, all_r, shutdown_r, destroy_r;
} coro_in_task;

static void *coro_joins_its_task(void *p)
{
    coro_in_task *c = p;
    c->join_r = plait_join(c->self, NULL, SOON());
    c->all_r = plait_wait_all(&c->self, 1, NULL, NULL, SOON());
    c->shutdown_r = plait_pool_shutdown(c->pool, PLAIT_POOL_DRAIN, SOON());
    c->destroy_r = plait_pool_destroy(c->pool);
    return NULL;
}

static void *runs_a_scheduler(void *p)
{
    coro_in_task *c = p;
    while (!atomic_load(&c->ready))
        sched_yield();
    int r = plait_run(coro_joins_its_task, c, NULL);
    return r < 0 ? PLAIT_FAIL(r) : ARG(5);
}

TEST(a_coroutine_joining_the_pool_task_its_scheduler_runs_in_is_told_edeadlk)
{
    static coro_in_task c;
    memset(&c, 0, sizeof c);
    c.pool = make_pool(1, "cit");
    CHECK_EQ(plait_pool_submit(c.pool, &c.self, runs_a_scheduler, &c), 0);
    atomic_store(&c.ready, 1);
    void *r;
    int64_t start = plait_now();
    CHECK_EQ(plait_join(c.self, &r, SOON()), 0);
    CHECK_PROMPT(start);
    CHECK_EQ(INT(r), 5);
    CHECK_EQ(c.join_r, -EDEADLK);
    CHECK_EQ(c.all_r, -EDEADLK);
    CHECK_EQ(c.shutdown_r, -EDEADLK);
    CHECK_EQ(c.destroy_r, -EDEADLK);
    CHECK_EQ(plait_pool_destroy(c.pool), 0);
}

/* ---- submit to a shut pool; shutdown with a deadline and cancel ---- */

TEST(submit_after_shutdown_is_epipe_and_writes_no_handle)
{
    plait_pool *pool = make_pool(2, "shut");
    CHECK_EQ(plait_pool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
    plait_task t = {(void *)1, 3};
    CHECK_EQ(plait_pool_submit(pool, &t, ret_arg, NULL), -EPIPE);
    CHECK(t.future == (void *)1 && t.generation == 3);
    CHECK_EQ(plait_pool_submit(pool, NULL, ret_arg, NULL), -EPIPE);
    void *args[3] = {0}, *results[3] = {ARG(1), ARG(1), ARG(1)};
    int errors[3] = {0};
    CHECK_EQ(plait_pool_map(pool, ret_arg, args, 3, results, errors, SOON()), -EPIPE);
    for (int i = 0; i < 3; i++) {
        CHECK(results[i] == NULL);
        CHECK_EQ(errors[i], -EPIPE);
    }
    CHECK_EQ(plait_pool_shutdown(pool, PLAIT_POOL_CANCEL, 0), 0); /* again: fine */
    CHECK_EQ(plait_pool_destroy(pool), 0);
}

typedef struct {
    plait_pool *pool;
    atomic_int started, ran;
    plait_event *go;
} spawner;

static void *leaf(void *p)
{
    spawner *s = p;
    atomic_fetch_add(&s->ran, 1);
    return NULL;
}

/* waits until the shutdown has begun, then spawns children (detached) and joins one,
 * and maps over four items (a task of the pool: its submits and maps run, plait.h) */
enum { SPAWNED = 51, MAPPED = 4 };
static void *spawns_during_shutdown(void *p)
{
    spawner *s = p;
    atomic_fetch_add(&s->started, 1);
    if (plait_event_wait(s->go, SOON()) != 0)
        return PLAIT_FAIL(-ETIMEDOUT);
    plait_task t;
    int r = plait_pool_submit(s->pool, &t, leaf, s);
    if (r < 0)
        return PLAIT_FAIL(r);
    for (int i = 1; i < SPAWNED; i++)
        if ((r = plait_pool_submit(s->pool, NULL, leaf, s)) < 0)
            return PLAIT_FAIL(r);
    if ((r = plait_join(t, NULL, SOON())) < 0)
        return PLAIT_FAIL(r);
    void *args[MAPPED] = {s, s, s, s}, *results[MAPPED];
    r = plait_pool_map(s->pool, leaf, args, MAPPED, results, NULL, SOON());
    return r < 0 ? PLAIT_FAIL(r) : NULL;
}

typedef struct {
    plait_pool *pool;
    int how;
    int r;
} shutter;

static void *shut_thread(void *p)
{
    shutter *s = p;
    s->r = plait_pool_shutdown(s->pool, s->how, SOON());
    return NULL;
}

TEST(tasks_spawned_during_a_draining_shutdown_all_run)
{
    static spawner s;
    memset(&s, 0, sizeof s);
    s.pool = make_pool(2, "spawn");
    CHECK_EQ(plait_event_create(&s.go), 0);
    plait_task t[2];
    CHECK_EQ(plait_pool_submit(s.pool, &t[0], spawns_during_shutdown, &s), 0);
    CHECK_EQ(plait_pool_submit(s.pool, &t[1], spawns_during_shutdown, &s), 0);
    while (atomic_load(&s.started) < 2)
        sched_yield();
    shutter sh = {.pool = s.pool, .how = PLAIT_POOL_DRAIN};
    pthread_t th;
    thread_start(&th, shut_thread, &sh);
    /* the pool is shut once submit from outside says so */
    while (plait_pool_submit(s.pool, NULL, ret_arg, NULL) == 0)
        sched_yield();
    int before = atomic_load(&s.ran);
    CHECK_EQ(before, 0);
    plait_event_set(s.go);
    thread_join(th);
    CHECK_EQ(sh.r, 0);
    CHECK_EQ(plait_join(t[0], NULL, SOON()), 0);
    CHECK_EQ(plait_join(t[1], NULL, SOON()), 0);
    CHECK_EQ(atomic_load(&s.ran) - before, 2 * (SPAWNED + MAPPED));
    CHECK_EQ(plait_pool_destroy(s.pool), 0);
    CHECK_EQ(plait_event_destroy(s.go), 0);
}

static atomic_int spinning_stop;
static void *spins(void *p)
{
    atomic_int *started = p;
    atomic_store(started, 1);
    while (!atomic_load(&spinning_stop))
        sched_yield();
    return ARG(7);
}

/* A cancelling shutdown completes the queued tasks as cancelled itself.  It left them
 * on their queues for a worker to come across, and with every worker held by a task
 * that does not return (nor block where the cancellation reaches it), their futures said
 * nothing: a join of one waited as long as that task ran, for ever for one that never
 * returns.  First the tasks from outside, on the injection queue (one worker, held). */
TEST(a_cancelling_shutdown_completes_queued_tasks_while_every_worker_is_held)
{
    plait_pool *pool = make_pool(1, "never");
    atomic_int started = 0;
    atomic_store(&spinning_stop, 0);
    plait_task running, queued[10];
    CHECK_EQ(plait_pool_submit(pool, &running, spins, &started), 0);
    wait_for(&started); /* the worker holds it: the next ones stay on the queue */
    for (int i = 0; i < 10; i++)
        CHECK_EQ(plait_pool_submit(pool, &queued[i], ret_arg, ARG(i)), 0);
    int64_t start = plait_now();
    CHECK_EQ(plait_pool_shutdown(pool, PLAIT_POOL_DRAIN, plait_deadline_in(50 * PLAIT_MS)),
             -ETIMEDOUT);
    CHECK(plait_now() - start >= 50 * PLAIT_MS);
    CHECK_EQ(plait_pool_destroy(pool), -EBUSY);
    CHECK_EQ(plait_wait_any(queued, 10, 0), -ETIMEDOUT); /* draining: still queued */
    CHECK_EQ(plait_pool_shutdown(pool, PLAIT_POOL_CANCEL, 0), -ETIMEDOUT); /* still spins */
    CHECK_EQ(plait_pool_destroy(pool), -EBUSY);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(plait_join(queued[i], NULL, 0), -ECANCELED);
    atomic_store(&spinning_stop, 1);
    CHECK_EQ(plait_join(running, NULL, SOON()), -ECANCELED); /* cancelled while running */
    CHECK_EQ(plait_pool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_pool_destroy(pool), 0);
}

/* The same for tasks on the workers' deques: the children a held task queued on its own
 * worker, which no other worker is free to steal. */
enum { HELD_CHILDREN = 300 }; /* past a deque's first array */

typedef struct {
    plait_pool *pool;
    atomic_int started, queued;
    plait_task children[HELD_CHILDREN];
    int submit_r;
} held_parent;

static void *queues_children_then_spins(void *p)
{
    held_parent *h = p;
    for (int i = 0; i < HELD_CHILDREN && h->submit_r == 0; i++)
        h->submit_r = plait_pool_submit(h->pool, &h->children[i], ret_arg, ARG(i));
    atomic_store(&h->queued, 1);
    while (!atomic_load(&spinning_stop))
        sched_yield();
    return NULL;
}

TEST(a_cancelling_shutdown_completes_the_children_a_held_task_queued)
{
    static held_parent h;
    memset(&h, 0, sizeof h);
    h.pool = make_pool(2, "held");
    atomic_store(&spinning_stop, 0);
    atomic_int started = 0;
    plait_task spinner, parent;
    CHECK_EQ(plait_pool_submit(h.pool, &spinner, spins, &started), 0);
    wait_for(&started); /* one worker held: the other runs the parent */
    CHECK_EQ(plait_pool_submit(h.pool, &parent, queues_children_then_spins, &h), 0);
    wait_for(&h.queued);
    CHECK_EQ(h.submit_r, 0);
    CHECK_EQ(plait_wait_any(h.children, HELD_CHILDREN, 0), -ETIMEDOUT); /* none ran */
    CHECK_EQ(plait_pool_shutdown(h.pool, PLAIT_POOL_CANCEL, 0), -ETIMEDOUT);
    int cancelled = 0;
    for (int i = 0; i < HELD_CHILDREN; i++)
        cancelled += plait_join(h.children[i], NULL, 0) == -ECANCELED;
    CHECK_EQ(cancelled, HELD_CHILDREN);
    atomic_store(&spinning_stop, 1);
    CHECK_EQ(plait_join(spinner, NULL, SOON()), -ECANCELED);
    CHECK_EQ(plait_join(parent, NULL, SOON()), -ECANCELED);
    for (int i = 0; i < HELD_CHILDREN; i++) /* those left: once their worker was free */
        plait_join(h.children[i], NULL, SOON());
    CHECK_EQ(plait_pool_shutdown(h.pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_pool_destroy(h.pool), 0);
}

/* A cancelling shutdown amid fork-join: it steals children off deques whose owners run
 * and join them, as idle workers do.  Every future still completes once (ran, or
 * -ECANCELED), the parents' joins see the children's ends, and the shutdown returns. */
typedef struct {
    plait_pool *pool;
    atomic_int leaves, started;
} fj_state;
static fj_state fj;

static void *fj_task(void *depth_p)
{
    int depth = INT(depth_p);
    atomic_fetch_add(&fj.started, 1);
    if (depth == 0) {
        atomic_fetch_add(&fj.leaves, 1);
        int r = plait_sleep(100 * PLAIT_US); /* 100 us: a shutdown comes mid-way */
        return r < 0 ? PLAIT_FAIL(r) : ARG(1);
    }
    plait_task kids[2];
    int n = 0;
    for (; n < 2; n++)
        if (plait_pool_submit(fj.pool, &kids[n], fj_task, ARG(depth - 1)) < 0)
            break;
    long sum = 0;
    int failed = 0;
    for (int i = 0; i < n; i++) {
        void *v;
        int r = plait_join(kids[i], &v, PLAIT_FOREVER);
        if (r == -ECANCELED && plait_wait_any(&kids[i], 1, 0) != -ESRCH)
            plait_detach(kids[i]); /* our own cancellation: the child's is dropped */
        if (r < 0)
            failed = r;
        else
            sum += (long)(intptr_t)v;
    }
    return failed ? PLAIT_FAIL(failed) : ARG(sum);
}

TEST(a_cancelling_shutdown_amid_fork_join_completes_every_task_once)
{
    for (int round = 0; round < 12; round++) {
        memset(&fj, 0, sizeof fj);
        fj.pool = make_pool(3, "fj");
        enum { TOP = 8, DEPTH = 6 };
        plait_task top[TOP];
        for (int i = 0; i < TOP; i++)
            CHECK_EQ(plait_pool_submit(fj.pool, &top[i], fj_task, ARG(DEPTH)), 0);
        int64_t until = SOON();
        while (atomic_load(&fj.started) < 80 * round && plait_now() < until)
            sched_yield();
        CHECK_EQ(plait_pool_shutdown(fj.pool, PLAIT_POOL_CANCEL, SOON()), 0);
        int ok = 0;
        for (int i = 0; i < TOP; i++) {
            void *v;
            int r = plait_join(top[i], &v, 0);
            CHECK(r == 0 || r == -ECANCELED);
            if (r == 0) {
                CHECK_EQ((long)(intptr_t)v, 1L << DEPTH);
                ok++;
            }
        }
        CHECK(atomic_load(&fj.leaves) <= TOP << DEPTH);
        if (getenv("FJ_VERBOSE"))
            printf("  round %d: %d of %d whole, %d leaves\n", round, ok, TOP, atomic_load(&fj.leaves));
        CHECK_EQ(plait_pool_destroy(fj.pool), 0);
    }
}

/* A cancelling shutdown from a coroutine on a small stack, with tasks to take off the
 * queues: the shutdown's own frames fit. */
typedef struct {
    plait_pool *pool;
    int r;
} small_shut;

static void *shuts_on_a_small_stack(void *p)
{
    small_shut *s = p;
    s->r = plait_pool_shutdown(s->pool, PLAIT_POOL_CANCEL, plait_deadline_in(20 * PLAIT_MS));
    return NULL;
}

static void *spawns_small_shutter(void *p)
{
    plait_spawn_options o = {.name = "small", .stack_size = 8192};
    plait_task t;
    CHECK_EQ(plait_spawn_opts(&t, shuts_on_a_small_stack, p, &o), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    return NULL;
}

TEST(a_cancelling_shutdown_from_a_coroutine_on_a_small_stack)
{
    static small_shut s;
    s.pool = make_pool(2, "small");
    atomic_int started = 0;
    atomic_store(&spinning_stop, 0);
    plait_task a, b, queued[40];
    CHECK_EQ(plait_pool_submit(s.pool, &a, spins, &started), 0);
    wait_for(&started);
    atomic_store(&started, 0);
    CHECK_EQ(plait_pool_submit(s.pool, &b, spins, &started), 0);
    wait_for(&started);
    for (int i = 0; i < 40; i++)
        CHECK_EQ(plait_pool_submit(s.pool, &queued[i], ret_arg, NULL), 0);
    check_run(spawns_small_shutter, &s);
    CHECK_EQ(s.r, -ETIMEDOUT);
    for (int i = 0; i < 40; i++)
        CHECK_EQ(plait_join(queued[i], NULL, 0), -ECANCELED);
    atomic_store(&spinning_stop, 1);
    CHECK_EQ(plait_join(a, NULL, SOON()), -ECANCELED);
    CHECK_EQ(plait_join(b, NULL, SOON()), -ECANCELED);
    CHECK_EQ(plait_pool_destroy(s.pool), 0);
}

/* A map stopped by its deadline (past, or mid-way) from outside and from a task of its
 * pool: -ETIMEDOUT, each item either ran (0, its result) or was skipped (-ECANCELED,
 * NULL), and none runs after the call returned. */
static atomic_int map_items_running, map_items_after;
static atomic_int map_returned;

static void *slow_item(void *arg)
{
    atomic_fetch_add(&map_items_running, 1);
    if (atomic_load(&map_returned))
        atomic_fetch_add(&map_items_after, 1);
    struct timespec ms = {0, PLAIT_MS};
    nanosleep(&ms, NULL);
    if (atomic_load(&map_returned))
        atomic_fetch_add(&map_items_after, 1);
    return arg;
}

enum { SLOW_N = 300 };

static int check_stopped_map(plait_pool *pool, int64_t deadline)
{
    static void *args[SLOW_N], *results[SLOW_N];
    static int errors[SLOW_N];
    for (int i = 0; i < SLOW_N; i++) {
        args[i] = ARG(i + 1);
        results[i] = ARG(-1);
        errors[i] = 1;
    }
    atomic_store(&map_returned, 0);
    int r = plait_pool_map(pool, slow_item, args, SLOW_N, results, errors, deadline);
    atomic_store(&map_returned, 1);
    int bad = 0, ran = 0;
    for (int i = 0; i < SLOW_N; i++) {
        if (errors[i] == 0 && results[i] == args[i])
            ran++;
        else if (!(errors[i] == -ECANCELED && results[i] == NULL))
            bad++;
    }
    CHECK_EQ(bad, 0);
    CHECK(ran < SLOW_N);
    return r;
}

static void *maps_in_a_task(void *p)
{
    return PLAIT_FAIL(check_stopped_map(p, plait_deadline_in(20 * PLAIT_MS)));
}

TEST(a_map_stopped_by_its_deadline_answers_for_every_item)
{
    plait_pool *pool = make_pool(2, "mapd");
    atomic_store(&map_items_after, 0);
    CHECK_EQ(check_stopped_map(pool, 0), -ETIMEDOUT);
    CHECK_EQ(check_stopped_map(pool, plait_deadline_in(20 * PLAIT_MS)), -ETIMEDOUT);
    plait_task t;
    CHECK_EQ(plait_pool_submit(pool, &t, maps_in_a_task, pool), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), -ETIMEDOUT);
    CHECK_EQ(atomic_load(&map_items_after), 0);
    CHECK_EQ(plait_pool_destroy(pool), 0);
}

/* ---- as completed ---- */

typedef struct {
    plait_completed *set;
    int r;
    atomic_int in;
    plait_task got;
} next_waiter;

static void *waits_next(void *p)
{
    next_waiter *n = p;
    atomic_store(&n->in, gettid_()); /* then asleep only in next() (wait_asleep) */
    n->r = plait_completed_next(n->set, &n->got, SOON());
    return NULL;
}

TEST(completed_sets_at_their_edges)
{
    plait_pool *p1 = make_pool(1, "c1"), *p2 = make_pool(2, "c2");
    plait_completed *set, *other;
    CHECK_EQ(plait_completed_create(&set), 0);
    CHECK_EQ(plait_completed_create(&other), 0);
    CHECK_EQ(plait_completed_create(NULL), -EINVAL);
    plait_task d;
    CHECK_EQ(plait_completed_next(set, &d, 0), -EPIPE); /* nothing watched */
    CHECK_EQ(plait_completed_next(set, NULL, 0), -EINVAL);
    CHECK_EQ(plait_completed_next(NULL, &d, 0), -EINVAL);
    CHECK_EQ(plait_completed_add(NULL, d), -EINVAL);
    CHECK_EQ(plait_completed_add(set, (plait_task){0}), -EINVAL);

    plait_task blocked, quick[2];
    CHECK_EQ(plait_pool_submit(p1, &blocked, blocks_until_cancelled, NULL), 0);
    CHECK_EQ(plait_pool_submit(p2, &quick[0], ret_arg, ARG(1)), 0);
    CHECK_EQ(plait_pool_submit(p2, &quick[1], ret_arg, ARG(2)), 0);
    CHECK_EQ(plait_completed_add(set, blocked), 0);
    CHECK_EQ(plait_completed_add(set, blocked), -EBUSY);  /* twice */
    CHECK_EQ(plait_completed_add(other, blocked), -EBUSY); /* another set */
    CHECK_EQ(plait_completed_add(set, quick[0]), 0);
    CHECK_EQ(plait_completed_add(set, quick[1]), 0);
    int seen = 0;
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(plait_completed_next(set, &d, SOON()), 0);
        void *r;
        CHECK_EQ(plait_join(d, &r, SOON()), 0);
        seen |= INT(r);
    }
    CHECK_EQ(seen, 3);
    CHECK_EQ(plait_completed_next(set, &d, 0), -ETIMEDOUT); /* blocked still runs */
    /* destroy while a waiter waits: refused */
    static next_waiter w;
    memset(&w, 0, sizeof w);
    w.set = set;
    pthread_t th;
    thread_start(&th, waits_next, &w);
    wait_asleep(&w.in); /* inside next(), waiting */
    CHECK_EQ(plait_completed_destroy(set), -EBUSY);
    CHECK_EQ(plait_cancel(blocked), 0);
    thread_join(th);
    CHECK_EQ(w.r, 0);
    CHECK(w.got.future == blocked.future);
    CHECK_EQ(plait_join(blocked, NULL, SOON()), -ECANCELED);
    CHECK_EQ(plait_completed_next(set, &d, SOON()), -EPIPE);
    CHECK_EQ(plait_completed_destroy(set), 0);
    CHECK_EQ(plait_completed_destroy(other), 0);
    CHECK_EQ(plait_pool_destroy(p1), 0);
    CHECK_EQ(plait_pool_destroy(p2), 0);
}

/* A pool task of a one-worker pool gathers its own children through an as-completed set
 * and a map: its waits run them (the only worker is the waiter's). */
static void *gathers_children(void *p)
{
    plait_pool *pool = p;
    plait_completed *set;
    if (plait_completed_create(&set) < 0)
        return PLAIT_FAIL(-ENOMEM);
    plait_task kids[5];
    long sum = 0;
    int bad = 0;
    for (int i = 0; i < 5; i++) {
        bad |= plait_pool_submit(pool, &kids[i], ret_arg, ARG(i + 1)) != 0;
        bad |= plait_completed_add(set, kids[i]) != 0;
    }
    plait_task d;
    int got = 0, r;
    while ((r = plait_completed_next(set, &d, SOON())) == 0) {
        void *v;
        bad |= plait_join(d, &v, 0) != 0;
        sum += INT(v);
        got++;
    }
    bad |= r != -EPIPE || got != 5;
    bad |= plait_completed_destroy(set) != 0;
    void *args[50], *results[50];
    for (int i = 0; i < 50; i++)
        args[i] = ARG(i);
    bad |= plait_pool_map(pool, ret_arg, args, 50, results, NULL, SOON()) != 0;
    for (int i = 0; i < 50; i++)
        sum += INT(results[i]);
    return bad ? PLAIT_FAIL(-EPROTO) : ARG(sum);
}

TEST(a_one_worker_pool_task_gathers_its_children_through_a_set_and_a_map)
{
    plait_pool *pool = make_pool(1, "gath");
    plait_task t;
    CHECK_EQ(plait_pool_submit(pool, &t, gathers_children, pool), 0);
    void *v;
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    CHECK_EQ(INT(v), 15 + 49 * 50 / 2);
    CHECK_EQ(plait_pool_destroy(pool), 0);
}

TEST(a_set_destroyed_while_its_task_runs_lets_it_join_another)
{
    plait_pool *pool = make_pool(1, "cd");
    plait_completed *set, *other;
    CHECK_EQ(plait_completed_create(&set), 0);
    CHECK_EQ(plait_completed_create(&other), 0);
    plait_task blocked, quick;
    CHECK_EQ(plait_pool_submit(pool, &blocked, blocks_until_cancelled, NULL), 0);
    CHECK_EQ(plait_completed_add(set, blocked), 0);
    CHECK_EQ(plait_completed_destroy(set), 0);
    CHECK_EQ(plait_completed_add(other, blocked), 0);
    CHECK_EQ(plait_pool_submit(pool, &quick, ret_arg, ARG(3)), 0);
    CHECK_EQ(plait_completed_add(other, quick), 0);
    CHECK_EQ(plait_cancel(blocked), 0);
    plait_task d;
    CHECK_EQ(plait_completed_next(other, &d, SOON()), 0);
    CHECK(d.future == blocked.future);
    CHECK_EQ(plait_completed_next(other, &d, SOON()), 0);
    CHECK(d.future == quick.future);
    CHECK_EQ(plait_completed_next(other, &d, SOON()), -EPIPE);
    CHECK_EQ(plait_join(blocked, NULL, SOON()), -ECANCELED);
    CHECK_EQ(plait_join(quick, NULL, SOON()), 0);
    CHECK_EQ(plait_completed_destroy(other), 0);
    CHECK_EQ(plait_pool_destroy(pool), 0);
}

/* ---- wait_any / wait_all at their deadlines ---- */

TEST(waits_with_a_past_deadline_do_not_block)
{
    plait_pool *pool = make_pool(1, "past");
    plait_task blocked, done;
    CHECK_EQ(plait_pool_submit(pool, &blocked, blocks_until_cancelled, NULL), 0);
    CHECK_EQ(plait_pool_submit(pool, &done, ret_arg, ARG(1)), 0);
    /* blocked holds the only worker: done stays queued */
    plait_task both[2] = {blocked, done};
    int64_t start = plait_now();
    CHECK_EQ(plait_wait_any(both, 2, 0), -ETIMEDOUT);
    CHECK_EQ(plait_wait_all(both, 2, NULL, NULL, 0), -ETIMEDOUT);
    CHECK_EQ(plait_join(done, NULL, 0), -ETIMEDOUT);
    CHECK_PROMPT(start);
    CHECK_EQ(plait_cancel(done), 0); /* queued: never runs */
    CHECK_EQ(plait_wait_any(both, 2, 0), 1);
    CHECK_EQ(plait_join(done, NULL, 0), -ECANCELED);
    CHECK_EQ(plait_cancel(blocked), 0);
    CHECK_EQ(plait_join(blocked, NULL, SOON()), -ECANCELED);
    CHECK_EQ(plait_pool_destroy(pool), 0);
}

/* wait_any on a list of more than 8 (its nodes allocated), every entry the same running
 * task, from a pool task (whose wait helps) and from a plain thread; the task ends while
 * they wait: each sees it once, and a second set of waiters on a completed set, racing
 * for its only task, gets the task once and -EPIPE once. */
typedef struct {
    plait_task same[12];
    int any_r;
    atomic_int waiting;
} dup_wait;

static void *waits_on_duplicates(void *p)
{
    dup_wait *d = p;
    atomic_fetch_add(&d->waiting, 1);
    d->any_r = plait_wait_any(d->same, 12, SOON());
    return NULL;
}

static void *cancels_after(void *p)
{
    plait_task *t = p;
    plait_cancel(*t);
    return NULL;
}

TEST(duplicates_and_racing_waiters_see_one_end)
{
    plait_pool *pool = make_pool(2, "dup"), *side = make_pool(1, "side");
    static dup_wait d;
    memset(&d, 0, sizeof d);
    plait_task blocked;
    CHECK_EQ(plait_pool_submit(side, &blocked, blocks_until_cancelled, NULL), 0);
    for (int i = 0; i < 12; i++)
        d.same[i] = blocked;
    plait_task in_pool;
    CHECK_EQ(plait_pool_submit(pool, &in_pool, waits_on_duplicates, &d), 0);
    while (atomic_load(&d.waiting) < 1)
        sched_yield();
    static dup_wait d2;
    memset(&d2, 0, sizeof d2);
    memcpy(d2.same, d.same, sizeof d.same);
    pthread_t th;
    thread_start(&th, waits_on_duplicates, &d2);
    plait_completed *set;
    CHECK_EQ(plait_completed_create(&set), 0);
    CHECK_EQ(plait_completed_add(set, blocked), 0);
    static next_waiter w1, w2;
    memset(&w1, 0, sizeof w1);
    memset(&w2, 0, sizeof w2);
    w1.set = w2.set = set;
    pthread_t n1, n2, c;
    thread_start(&n1, waits_next, &w1);
    thread_start(&n2, waits_next, &w2);
    wait_for(&w1.in);
    wait_for(&w2.in);
    thread_start(&c, cancels_after, &blocked);
    thread_join(c);
    thread_join(n1);
    thread_join(n2);
    thread_join(th);
    CHECK_EQ(plait_join(in_pool, NULL, SOON()), 0);
    CHECK(d.any_r >= 0 && d.any_r < 12);
    CHECK(d2.any_r >= 0 && d2.any_r < 12);
    CHECK((w1.r == 0 && w2.r == -EPIPE) || (w1.r == -EPIPE && w2.r == 0));
    CHECK_EQ(plait_join(blocked, NULL, SOON()), -ECANCELED);
    CHECK_EQ(plait_completed_destroy(set), 0);
    CHECK_EQ(plait_pool_destroy(pool), 0);
    CHECK_EQ(plait_pool_destroy(side), 0);
}

/* ---- to_thread ---- */

static atomic_int offloaded_ran;
static void *offloaded(void *p)
{
    atomic_fetch_add(&offloaded_ran, 1);
    return p;
}

static void *to_thread_when_cancelled(void *p)
{
    (void)p;
    plait_cancel((plait_task){0}); /* nothing */
    return NULL;
}

static void *cancelled_coroutine(void *p)
{
    int *r = p;
    while (!plait_cancelled())
        plait_yield();
    void *res = ARG(99);
    r[0] = plait_to_thread(offloaded, ARG(1), &res, SOON());
    r[1] = INT(res);
    return NULL;
}

static void *to_thread_main(void *p)
{
    int *r = p;
    void *res = NULL;
    r[2] = plait_to_thread(offloaded, ARG(5), &res, SOON());
    r[3] = INT(res);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, cancelled_coroutine, r), 0);
    plait_yield();
    CHECK_EQ(plait_cancel(t), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
    r[4] = plait_to_thread(NULL, NULL, NULL, SOON());
    (void)to_thread_when_cancelled;
    return NULL;
}

TEST(to_thread_from_a_thread_and_a_cancelled_coroutine)
{
    atomic_store(&offloaded_ran, 0);
    void *res = NULL;
    CHECK_EQ(plait_to_thread(offloaded, ARG(3), &res, SOON()), 0); /* plain thread */
    CHECK_EQ(INT(res), 3);
    int r[5] = {1, 1, 1, 1, 1};
    check_run(to_thread_main, r);
    CHECK_EQ(r[0], -ECANCELED);
    CHECK_EQ(r[1], 99); /* untouched */
    CHECK_EQ(r[2], 0);
    CHECK_EQ(r[3], 5);
    CHECK_EQ(r[4], -EINVAL);
    CHECK_EQ(atomic_load(&offloaded_ran), 2);
}

/* ---- to_thread: an outcome reached before the cancellation is the task's own ----
 * plait_to_thread's wait ends at its deadline; the task is cancelled, then waited for.
 * A task that finished in between keeps its outcome (plait.h), its own failure too; but
 * an outcome of -ECANCELED was taken for the cancellation's, and the call said
 * -ETIMEDOUT: the task's own failure was lost.  The wrap below holds the call, once its
 * wait has timed out (plait__waiter_block) and before the cancellation, until the task
 * has finished. */
int __real_plait__waiter_block(plait__waiter *w, int64_t deadline);
int __wrap_plait__waiter_block(plait__waiter *w, int64_t deadline);
static _Thread_local int cut_short_armed;
static atomic_int own_failure_go;
static plait_task own_task; /* the offloaded task's handle, as it saw it */

int __wrap_plait__waiter_block(plait__waiter *w, int64_t deadline)
{
    int r = __real_plait__waiter_block(w, deadline);
    if (r == -ETIMEDOUT && cut_short_armed) {
        cut_short_armed = 0;
        atomic_store(&own_failure_go, 1);
        int64_t until = SOON();
        while (plait_wait_any(&own_task, 1, 0) != 0 && plait_now() < until)
            sched_yield();
    }
    return r;
}

static void *finishes_after_the_deadline(void *code)
{
    own_task = (plait_task){plait__tls_work, atomic_load(&plait__tls_work->generation)};
    int64_t deadline = SOON();
    while (!atomic_load(&own_failure_go) && plait_now() < deadline)
        sched_yield();
    return INT(code) ? PLAIT_FAIL(INT(code)) : ARG(77);
}

static int offload_past_deadline(int code, void **result)
{
    atomic_store(&own_failure_go, 0);
    cut_short_armed = 1;
    /* a deadline the call reaches its wait well before, stalled or not (one past at
     * the wait ends it without blocking, and the wrap never holds it) */
    int r = plait_to_thread(finishes_after_the_deadline, ARG(code), result,
                            plait_deadline_in(500 * PLAIT_MS));
    CHECK_EQ(cut_short_armed, 0); /* the wait was cut short */
    return r;
}

static void *to_thread_in_coroutine(void *p)
{
    int *r = p;
    void *result = NULL;
    r[0] = offload_past_deadline(-ECANCELED, &result);
    r[1] = offload_past_deadline(0, &result);
    r[2] = INT(result);
    return NULL;
}

TEST(to_thread_keeps_a_task_s_own_ecanceled_reached_before_the_cancellation)
{
    void *result = NULL;
    CHECK_EQ(offload_past_deadline(-ECANCELED, &result), -ECANCELED);
    CHECK_EQ(offload_past_deadline(-EIO, &result), -EIO);
    int r[3] = {1, 1, 1};
    check_run(to_thread_in_coroutine, r);
    CHECK_EQ(r[0], -ECANCELED);
    CHECK_EQ(r[1], 0);
    CHECK_EQ(r[2], 77);
}

RUN_TESTS(CASE(bad_input_is_refused_and_touches_nothing),
          CASE(wait_any_refuses_a_bad_handle_after_a_finished_task),
          CASE(failures_reach_join_wait_all_map_and_completed),
          CASE(a_pool_task_joining_itself_is_told_edeadlk),
          CASE(a_coroutine_joining_the_pool_task_its_scheduler_runs_in_is_told_edeadlk),
          CASE(submit_after_shutdown_is_epipe_and_writes_no_handle),
          CASE(tasks_spawned_during_a_draining_shutdown_all_run),
          CASE(a_cancelling_shutdown_completes_queued_tasks_while_every_worker_is_held),
          CASE(a_cancelling_shutdown_completes_the_children_a_held_task_queued),
          CASE(a_cancelling_shutdown_amid_fork_join_completes_every_task_once),
          CASE(a_cancelling_shutdown_from_a_coroutine_on_a_small_stack),
          CASE(a_map_stopped_by_its_deadline_answers_for_every_item),
          CASE(completed_sets_at_their_edges),
          CASE(a_one_worker_pool_task_gathers_its_children_through_a_set_and_a_map),
          CASE(a_set_destroyed_while_its_task_runs_lets_it_join_another),
          CASE(waits_with_a_past_deadline_do_not_block),
          CASE(duplicates_and_racing_waiters_see_one_end),
          CASE(to_thread_from_a_thread_and_a_cancelled_coroutine),
          CASE(to_thread_keeps_a_task_s_own_ecanceled_reached_before_the_cancellation))
