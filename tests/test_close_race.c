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
 *
 * And a call that begins while a plait_close is between its look for waiters and its
 * close(2): the call's try finds the descriptor still open, and its wait, linked after
 * that look, was never woken (the close wakes no poll or epoll wait, and an io_uring
 * poll holds the file): it waited to its deadline.  This test is also linked with
 * --wrap=close, whose wrapper holds plait_close's close(2) until the call sleeps.
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

static int held = -1;           /* the descriptor whose close(2) waits for the call */
static atomic_bool closing;
static atomic_int caller_tid;

int __real_close(int fd);
int __wrap_close(int fd);
int __wrap_close(int fd)
{
    if (fd == held) {
        held = -1;
        atomic_store(&closing, true);
        wait_asleep(&caller_tid); /* the call has tried, linked its wait, and sleeps */
    }
    return __real_close(fd);
}

/* An accept on the listener that another thread's plait_close is closing; a coroutine's
 * or the thread's own, by arg.  Its result goes to accepted. */
static int accepted;
static int64_t accept_took;

static void *accept_while_closing(void *arg)
{
    (void)arg;
    while (!atomic_load(&closing))
        sched_yield();
    atomic_store(&caller_tid, gettid_());
    int64_t start = plait_now();
    accepted = plait_accept(watched, NULL, plait_deadline_in(5 * PLAIT_SEC));
    accept_took = plait_now() - start;
    return NULL;
}

static void *thread_accepting_while_closing(void *in_coroutine)
{
    if (!in_coroutine)
        return accept_while_closing(NULL);
    check_run(accept_while_closing, NULL);
    return NULL;
}

TEST(a_call_begun_during_a_close_is_woken_by_it)
{
    for (int in_coroutine = 0; in_coroutine < 2; in_coroutine++) {
        watched = plait_tcp_listen("127.0.0.1", 0, 1);
        CHECK(watched >= 0);
        atomic_store(&closing, false);
        atomic_store(&caller_tid, 0);
        held = watched;
        pthread_t th;
        thread_start(&th, thread_accepting_while_closing, in_coroutine ? &th : NULL);
        CHECK_EQ(plait_close(watched), 0);
        thread_join(th);
        /* not at the deadline: a wait the close never woke (a thread's ppoll finds the
         * number closed only as it times out, and says -EBADF then) */
        CHECK_EQ(accepted, -EBADF);
        CHECK(accept_took < 4 * PLAIT_SEC);
    }
}

RUN_TESTS(CASE(close_claiming_a_wait_being_armed_ends_that_wait),
          CASE(a_call_begun_during_a_close_is_woken_by_it))
