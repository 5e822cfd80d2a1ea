/*
 * fork_child.h — forking in the fork tests (test_fork*.c): a child runs its checks and
 * ends with _exit, its status saying whether they held; the parent reaps it in bounded
 * time and checks that status.
 */
#ifndef PLAIT_TEST_FORK_CHILD_H
#define PLAIT_TEST_FORK_CHILD_H

#include "helpers.h"

#include <stdbool.h>

/* End a child: 0 when every check held, else 1 (stdio flushed: _exit does not). */
static inline _Noreturn void child_exit(void)
{
    fflush(NULL);
    _exit(check_failures == 0 ? 0 : 1);
}

/* fork(), stdio flushed first.  Unless tsan_checks_child, under ThreadSanitizer the
 * child ends at once: TSan loses the coroutine switches' order in a child forked from a
 * coroutine (it reports the scheduler's own handover as a race), and stops a child
 * that starts threads after a fork beside other threads; the plain and ASan builds
 * test those children.  The case then reports itself skipped (the parent says so: the
 * child's status, 0, cannot), unless a check of its parent failed. */
static inline pid_t fork_child(bool tsan_checks_child)
{
    fflush(NULL);
    pid_t pid = fork();
#if defined(__SANITIZE_THREAD__)
    if (pid == 0 && !tsan_checks_child)
        child_exit();
    if (pid > 0 && !tsan_checks_child)
        CHECK_SKIP("the forked child's checks do not run under ThreadSanitizer");
#else
    (void)tsan_checks_child;
#endif
    CHECK(pid >= 0);
    return pid;
}

/* Reap the child within `seconds` and check that its checks held. */
static inline void reap_ok(pid_t pid, int seconds)
{
    int status = reap_within(pid, seconds);
    if (WIFSIGNALED(status))
        fprintf(stderr, "  the child was killed by signal %d\n", WTERMSIG(status));
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
}

/* body, which ends a thread from a coroutine (pthread_exit), in a forked child: a crash
 * is the child's and not the suite's.  Skipped under ThreadSanitizer, which refuses
 * pthread_exit from a fiber. */
static inline void exiting_fiber_in_a_child(void (*body)(void))
{
    if (CHECK_TSAN) {
        CHECK_SKIP("ThreadSanitizer refuses pthread_exit from a fiber");
        return;
    }
    pid_t child = fork_child(true);
    if (child == 0) {
        body();
        child_exit();
    }
    reap_ok(child, 20);
}

#endif
