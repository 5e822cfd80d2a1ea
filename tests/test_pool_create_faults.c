/* test_pool_create_faults.c — a thread pool whose creation fails part-way, when the
 * system refuses one of its worker threads (RLIMIT_NPROC, a cgroup's pids.max): create
 * says -EAGAIN, and the workers started before are stopped and joined, nothing leaked
 * (ASan); the next create, with threads to be had, works.  So too for the default
 * pool, made by the first call that needs it: that call gets the refusal's -EAGAIN
 * (not -ENOMEM), and a later call makes the pool.  pthread_create is wrapped
 * (-Wl,--wrap) to refuse the Nth thread the test asks for. */
#include "helpers.h"

#include <pthread.h>

static atomic_int refuse_at; /* 0: refuse none; n: the nth call from now */
static atomic_int calls;

int __real_pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg)
{
    int at = atomic_load(&refuse_at);
    if (at && atomic_fetch_add(&calls, 1) + 1 >= at)
        return EAGAIN;
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

RUN_TESTS(CASE(the_default_pool_refused), CASE(a_worker_refused_part_way))
