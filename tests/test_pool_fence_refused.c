/* test_pool_fence_refused.c — a pool of two workers whose process refuses
 * membarrier(2), in every thread, after the pool was made (a program that sandboxes
 * itself after start-up).  An idle worker fences with membarrier before it sleeps
 * beside a task that pushes work privately (src/pool.c, "Private pushes"); refused, the
 * pool stops trusting private pushes and publishes every push: a fork-join still
 * completes, with every result.  A file of its own: the filter stays for the life of
 * the process (test_pool_sandboxed: the cancellation side of the same). */
#include "helpers.h"
#include "refuse_syscall.h"

enum { FIB_N = 20, FIB_OF_N = 6765, FORK_JOINS = 20 };
static plait_pool *pool;

static void *fib_task(void *p)
{
    intptr_t n = (intptr_t)p;
    if (n < 2)
        return p;
    plait_task a, b;
    CHECK_EQ(plait_pool_submit(pool, &a, fib_task, (void *)(n - 1)), 0);
    CHECK_EQ(plait_pool_submit(pool, &b, fib_task, (void *)(n - 2)), 0);
    void *va = NULL, *vb = NULL;
    CHECK_EQ(plait_join(b, &vb, SOON()), 0);
    CHECK_EQ(plait_join(a, &va, SOON()), 0);
    return (void *)((intptr_t)va + (intptr_t)vb);
}

static void fork_joins(void)
{
    for (int i = 0; i < FORK_JOINS; i++) {
        plait_task t;
        void *v = NULL;
        CHECK_EQ(plait_pool_submit(pool, &t, fib_task, ARG(FIB_N)), 0);
        CHECK_EQ(plait_join(t, &v, SOON()), 0);
        CHECK_EQ(INT(v), FIB_OF_N);
    }
}

TEST(fork_join_after_membarrier_refused)
{
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 2, .name = "fj"}), 0);
    fork_joins();
    CHECK_EQ(refuse_syscall_in_every_thread(SYS_membarrier), 0);
    fork_joins();
    CHECK_EQ(plait_pool_shutdown(pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_pool_destroy(pool), 0);
}

RUN_TESTS(CASE(fork_join_after_membarrier_refused))
