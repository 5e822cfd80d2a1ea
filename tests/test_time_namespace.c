/*
 * test_time_namespace.c — a timed wait ends on time in a time namespace whose
 * CLOCK_MONOTONIC is offset from the host's (CRIU's restore, `unshare --time
 * --monotonic`), while the scheduler's poller is busy.  The kernel takes an io_uring
 * absolute timeout on the host's clock: the ring's timeout request fired 5 s late here
 * (a sleep of 200 ms took 5.2 s), or at once and again for a negative offset (a spin),
 * where epoll was right (session 51's audit).  Run on both pollers (PLAIT_IO_TESTS).
 *
 * A child makes the namespaces (a user namespace, to be allowed to); its own child is
 * the first process inside the time namespace.  Where the system refuses them (no user
 * namespaces for this user, a kernel without time namespaces) the case is skipped.
 */
#include "helpers.h"

#include <sched.h>
#include <sys/wait.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

static int wake[2];

static void *waits_on_the_pipe(void *unused)
{
    (void)unused;
    return PLAIT_FAIL(plait_wait_fd(wake[0], PLAIT_READABLE, SOON()));
}

/* In the namespace: a sleep of 200 ms beside a coroutine waiting on a descriptor. */
static void *sleeps_beside_a_wait(void *unused)
{
    (void)unused;
    plait_task waiter;
    if (pipe2(wake, O_CLOEXEC) != 0 || plait_spawn(&waiter, waits_on_the_pipe, NULL) != 0)
        return PLAIT_FAIL(-EIO);
    plait_yield(); /* the waiter waits on the poller now */
    int64_t start = plait_now();
    int r = plait_sleep(200 * PLAIT_MS);
    int64_t took = plait_now() - start;
    if (write(wake[1], "x", 1) != 1)
        r = -EIO;
    int w = plait_join(waiter, NULL, SOON());
    if (r == 0 && took > 2 * PLAIT_SEC) {
        fprintf(stderr, "  a sleep of 200 ms took %.3f s on %s\n", (double)took / PLAIT_SEC,
                plait_io_backend());
        r = -ETIMEDOUT;
    }
    return r < 0 ? PLAIT_FAIL(r) : w < 0 ? PLAIT_FAIL(w) : NULL;
}

static int in_the_namespace(void)
{
    if (unshare(CLONE_NEWUSER | CLONE_NEWTIME) != 0)
        return 77; /* refused here */
    int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return 77;
    static const char offset[] = "monotonic 5 0\n";
    bool set = write(fd, offset, sizeof offset - 1) == (ssize_t)(sizeof offset - 1);
    close(fd);
    if (!set)
        return 77;
    pid_t pid = fork(); /* the first process of the namespace */
    if (pid == 0)
        _exit(plait_run(sleeps_beside_a_wait, NULL, NULL) == 0 ? 0 : 1);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return 2;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 3;
}

TEST(a_sleep_ends_on_time_in_a_time_namespace_with_an_offset)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(in_the_namespace());
    CHECK(pid > 0);
    int status = reap_within(pid, 30);
    CHECK(WIFEXITED(status));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
        CHECK_SKIP("no user or time namespaces to be had here");
        return;
    }
    CHECK_EQ(WEXITSTATUS(status), 0);
}

RUN_TESTS(CASE(a_sleep_ends_on_time_in_a_time_namespace_with_an_offset))
