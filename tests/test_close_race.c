/*
 * test_close_race.c — a plait_close on another thread that claims a coroutine's wait on
 * a descriptor while the coroutine is still setting the wait up (after it was linked
 * where the close finds it, before it suspends).  The scheduler's arming then fails on
 * the closed number; the coroutine returned that failure without waiting, while the
 * close's wake-up was on its way to it: the wake-up later resumed it inside whatever it
 * waited on next (a sleep returned at once).
 *
 * The window is held open on demand: this test is linked with --wrap=epoll_ctl
 * (tests/CMakeLists.txt), and uses the epoll backend, so the library's arming passes
 * through the wrapper below, which lets the closing thread close the descriptor before
 * it makes the real call.
 */
#include "helpers.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

static int watched = -1;
static atomic_bool arming, closed;

int __real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);
int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);
int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    if (fd == watched && op != EPOLL_CTL_DEL && !atomic_load(&closed)) {
        atomic_store(&arming, true);
        while (!atomic_load(&closed)) /* the closer closes fd now (the test's alarm bounds it) */
            sched_yield();
    }
    return __real_epoll_ctl(epfd, op, fd, event);
}

static void *closer(void *arg)
{
    (void)arg;
    while (!atomic_load(&arming))
        sched_yield();
    CHECK_EQ(plait_close(watched), 0);
    atomic_store(&closed, true);
    return NULL;
}

static void *read_then_sleep(void *arg)
{
    (void)arg;
    char b[8];
    CHECK_EQ(plait_read(watched, b, sizeof b, SOON()), -EBADF);
    int64_t start = plait_now();
    CHECK_EQ(plait_sleep(100 * PLAIT_MS), 0);
    CHECK(plait_now() - start >= 100 * PLAIT_MS); /* not ended by the close's wake-up */
    return NULL;
}

TEST(close_claiming_a_wait_being_armed_ends_that_wait)
{
    CHECK_EQ(setenv("PLAIT_POLLER", "epoll", 1), 0); /* before the first scheduler */
    int p[2];
    CHECK_EQ(pipe(p), 0);
    CHECK_EQ(plait_fd_set_nonblock(p[0], 1), 0);
    watched = p[0];
    pthread_t th;
    thread_start(&th, closer, NULL);
    check_run(read_then_sleep, NULL);
    thread_join(th);
    CHECK_EQ(close(p[1]), 0);
}

RUN_TESTS(CASE(close_claiming_a_wait_being_armed_ends_that_wait))
