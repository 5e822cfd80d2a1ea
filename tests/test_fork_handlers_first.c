/*
 * test_fork_handlers_first.c — a program's own fork handlers, registered before plait
 * was first used, that call plait (a wrong-context audit).
 *
 * plait registered its pthread_atfork handlers when it first made global state, so
 * after such a program's.  POSIX runs prepare handlers in the reverse order of their
 * registration, parent and child handlers in that order: plait's prepare took its
 * locks first, and the program's prepare, parent and child handlers ran while plait
 * held them; a plait call there that needs one waited for ever (every fork of the
 * program hung).  plait's handlers are registered as the library loads now, so the
 * program's prepare runs before plait takes its locks, and its parent and child
 * handlers after plait has let them go.
 *
 * In a child process of its own, which registers its handlers before any plait call
 * and then forks; this process waits for it with a deadline (a hang is a failure).
 */
#include "helpers.h"

#include <poll.h>
#include <sys/syscall.h>

static atomic_int handlers_ran;

/* A call that takes plait's keys lock, which plait's prepare holds until its own
 * parent and child handlers let it go. */
static void calls_plait(void)
{
    plait_key key;
    if (plait_key_create(&key, NULL) == 0)
        atomic_fetch_add(&handlers_ran, 1);
}

static void *nothing(void *arg) { return arg; }

/* The child: its handlers first, then plait in use, then a fork. */
static int registers_then_forks(void)
{
    if (pthread_atfork(calls_plait, calls_plait, calls_plait) != 0)
        return 10;
    if (plait_run(nothing, NULL, NULL) != 0) /* plait makes its global state */
        return 11;
    pid_t pid = fork();
    if (pid < 0)
        return 12;
    if (pid == 0)
        _exit(atomic_load(&handlers_ran) == 2 ? 0 : 13); /* prepare and child ran */
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return 14;
    if (WEXITSTATUS(status) != 0)
        return WEXITSTATUS(status);
    return atomic_load(&handlers_ran) == 2 ? 0 : 15; /* prepare and parent ran */
}

TEST(program_fork_handlers_registered_first_may_call_plait)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        _exit(registers_then_forks());
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    CHECK(pidfd >= 0);
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    int ready = poll(&p, 1, 10000);
    CHECK_EQ(ready, 1); /* 0: its fork hung */
    if (ready != 1)
        kill(pid, SIGKILL);
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
    close(pidfd);
}

RUN_TESTS(CASE(program_fork_handlers_registered_first_may_call_plait))
