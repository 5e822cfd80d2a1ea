/*
 * test_pool_fork_first.c — a thread pool that is plait's first object in the process,
 * forked before anything else of plait ran (a process of its own: no other call has
 * installed plait's fork handlers yet).  The child's copy must still know itself for
 * a copy: a submit there is -EPERM, not a task queued for workers that are not there.
 */
#include "helpers.h"

#include <unistd.h>

static void *ret_arg(void *arg) { return arg; }

TEST(pool_forked_before_its_first_task)
{
    plait_pool *pool;
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 1}), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        plait_task t;
        CHECK_EQ(plait_pool_submit(pool, &t, ret_arg, NULL), -EPERM);
        CHECK_EQ(plait_pool_destroy(pool), -EPERM);
        fflush(NULL);
        _exit(check_failures == 0 ? 0 : 1);
    }
    CHECK(pid > 0);
    int status = reap_within(pid, 20);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_EQ(plait_pool_destroy(pool), 0);
}

RUN_TESTS(CASE(pool_forked_before_its_first_task))
