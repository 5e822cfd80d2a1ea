/* test_pool_create_faults.c — a thread pool whose creation fails part-way, when the
 * system refuses one of its worker threads (RLIMIT_NPROC, a cgroup's pids.max): create
 * says -EAGAIN, and the workers started before are stopped and joined, nothing leaked
 * (ASan); the next create, with threads to be had, works.  So too for the default
 * pool, made by the first call that needs it: that call gets the refusal's -EAGAIN
 * (not -ENOMEM), and a later call makes the pool.  pthread_create is wrapped
 * (-Wl,--wrap) to refuse the Nth thread the test asks for, or to hold the next one
 * before it begins. */
#include "helpers.h"

#include <pthread.h>

static atomic_int refuse_at; /* 0: refuse none; n: the nth call from now */
static atomic_int calls;

int __real_pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg);
/* hold_next: the next thread made waits, before its own function, until released
 * (2 s at most), then says it has ended (held_done) */
static atomic_int hold_next, released, held_done;
static void *(*held_fn)(void *);
static void *held_arg;

static void *held_start(void *arg)
{
    (void)arg;
    for (int64_t end = plait_now() + 2 * PLAIT_SEC; !atomic_load(&released) &&
                                                     plait_now() < end;)
        poll(NULL, 0, 1);
    void *v = held_fn(held_arg);
    atomic_store(&held_done, 1);
    return v;
}

int __wrap_pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg)
{
    int at = atomic_load(&refuse_at);
    if (at && atomic_fetch_add(&calls, 1) + 1 >= at)
        return EAGAIN;
    if (atomic_exchange(&hold_next, 0)) {
        held_fn = fn;
        held_arg = arg;
        return __real_pthread_create(thread, attr, held_start, NULL);
    }
    return __real_pthread_create(thread, attr, fn, arg);
}

static void *twice(void *arg) { return ARG(2 * INT(arg)); }

TEST(a_worker_refused_part_way)
{
    for (int at = 1; at <= 4; at++) {
        atomic_store(&calls, 0);
        atomic_store(&refuse_at, at);
        plait_pool *pool = NULL;
        CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 4}), -EAGAIN);
        CHECK(pool == NULL);
        CHECK_EQ(atomic_load(&calls), at); /* no thread asked for after the refusal */
    }
    atomic_store(&refuse_at, 0);
    plait_pool *pool;
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 4}), 0);
    plait_task t;
    void *v = NULL;
    CHECK_EQ(plait_pool_submit(pool, &t, twice, ARG(21)), 0);
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    CHECK_EQ(INT(v), 42);
    CHECK_EQ(plait_pool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_pool_destroy(pool), 0);
}

/* first: nothing before it may have made the default pool */
TEST(the_default_pool_refused)
{
    atomic_store(&calls, 0);
    atomic_store(&refuse_at, 1);
    void *v = NULL;
    CHECK_EQ(plait_to_thread(twice, ARG(1), &v, SOON()), -EAGAIN);
    CHECK(plait_pool_default() == NULL);
    CHECK(v == NULL);
    atomic_store(&refuse_at, 0);
    CHECK_EQ(plait_to_thread(twice, ARG(21), &v, SOON()), 0);
    CHECK_EQ(INT(v), 42);
    CHECK(plait_pool_default() != NULL);
}

/* A coroutine whose scheduler runs in a task of the default pool offloads a call: it
 * runs on a thread of its own (the workers may all be taken: pool.c,
 * plait__pool_submit_reachable), joined and cancelled like a pool task.  An offload
 * past its deadline (0) whose thread has not begun is withdrawn: its function never
 * runs.  It ran (a plait thread's function always runs, however early its cancel), its
 * result dropped, the caller told -ETIMEDOUT all the same (a thread pool review).  The
 * offload's thread is held before it begins until the call has returned. */
static atomic_int offloaded_runs;
static int offload_said;

static void *count_a_run(void *arg)
{
    atomic_fetch_add(&offloaded_runs, 1);
    return arg;
}

static void *offload_past_its_deadline(void *arg)
{
    (void)arg;
    void *v = NULL;
    atomic_store(&hold_next, 1); /* the offload's thread */
    offload_said = plait_to_thread(count_a_run, ARG(1), &v, 0);
    atomic_store(&hold_next, 0);
    return NULL;
}

static void *a_scheduler_in_a_task(void *arg)
{
    (void)arg;
    int r = plait_run(offload_past_its_deadline, NULL, NULL);
    return r == 0 ? NULL : PLAIT_FAIL(r);
}

TEST(an_offload_past_its_deadline_in_a_pool_task_never_runs)
{
    void *v = NULL;
    CHECK_EQ(plait_to_thread(twice, ARG(1), &v, SOON()), 0); /* the default pool is made */
    CHECK_EQ(plait_to_thread(a_scheduler_in_a_task, NULL, &v, SOON()), 0);
    CHECK_EQ(offload_said, -ETIMEDOUT);
    atomic_store(&released, 1);
    for (int64_t end = plait_now() + 10 * PLAIT_SEC; !atomic_load(&held_done) &&
                                                      plait_now() < end;)
        poll(NULL, 0, 1);
    CHECK(atomic_load(&held_done));
    CHECK_EQ(atomic_load(&offloaded_runs), 0);
}

RUN_TESTS(CASE(the_default_pool_refused), CASE(a_worker_refused_part_way),
          CASE(an_offload_past_its_deadline_in_a_pool_task_never_runs))
