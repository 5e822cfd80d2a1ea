/* test_pidfd_without_waitid.c — a kernel with pidfds but without waitid(P_PIDFD), as
 * Linux 5.3 was: here waitid refuses P_PIDFD with EINVAL (-Wl,--wrap=waitid,
 * tests/CMakeLists.txt).  plait reaps its children through their pidfds, so starting a
 * function child, a program or a process pool answers -ENOSYS, at once, and leaves no
 * child behind.  (On 5.3 the manager thread, woken by a pidfd it could not reap
 * through, spun for ever, and the join never came.) */
#include "helpers.h"

#include <sys/wait.h>

int __real_waitid(idtype_t type, id_t id, siginfo_t *info, int options);
int __wrap_waitid(idtype_t type, id_t id, siginfo_t *info, int options);
int __wrap_waitid(idtype_t type, id_t id, siginfo_t *info, int options)
{
    if (type == P_PIDFD) {
        errno = EINVAL;
        return -1;
    }
    return __real_waitid(type, id, info, options);
}

static ssize_t nothing(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)out, (void)cap;
    return 0;
}

/* No child of this process is left, reaped or not. */
static void no_child_left(void)
{
    errno = 0;
    CHECK_EQ(waitpid(-1, NULL, WNOHANG), -1);
    CHECK_EQ(errno, ECHILD);
}

/* What a start answered, or its task's outcome when the start was taken. */
static int outcome(int started, plait_task t)
{
    return started < 0 ? started : plait_join(t, NULL, SOON());
}

TEST(a_function_child_is_enosys)
{
    plait_task t;
    int64_t start = plait_now();
    CHECK_EQ(outcome(plait_process_start(&t, nothing, NULL, 0, NULL, NULL), t), -ENOSYS);
    CHECK_PROMPT(start);
    no_child_left();
}

TEST(a_program_is_enosys)
{
    plait_task t;
    char *argv[] = {"true", NULL};
    int64_t start = plait_now();
    CHECK_EQ(outcome(plait_process_exec(&t, "true", argv, NULL, NULL), t), -ENOSYS);
    CHECK_PROMPT(start);
    no_child_left();
}

TEST(a_process_pool_is_enosys)
{
    plait_procpool *pool = NULL;
    int64_t start = plait_now();
    CHECK_EQ(plait_procpool_create(&pool, &(plait_procpool_options){.processes = 2}), -ENOSYS);
    CHECK(pool == NULL);
    CHECK_PROMPT(start);
    no_child_left();
}

RUN_TESTS(CASE(a_function_child_is_enosys), CASE(a_program_is_enosys),
          CASE(a_process_pool_is_enosys))
