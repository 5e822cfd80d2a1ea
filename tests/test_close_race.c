/*
 * test_close_race.c — a plait_close on another thread that claims a coroutine's wait on
 * a descriptor while the coroutine is still setting the wait up (after it was linked
 * where the close finds it, before it suspends).  The scheduler's arming then fails on
 * the closed number; the coroutine returned that failure without waiting, while the
 * close's wake-up was on its way to it: the wake-up later resumed it inside whatever it
 * waited on next (a sleep returned at once).
 *
 * The window is held open on demand: this test is linked with --wrap=epoll_ctl
 * (tests/CMakeLists.txt), and this case uses the epoll backend, so the library's arming passes
 * through the wrapper below, which lets the closing thread close the descriptor before
 * it makes the real call.
 *
 * And a call that begins while a plait_close is between its look for waiters and its
 * close(2): the call's try finds the descriptor still open, and its wait, linked after
 * that look, was never woken (the close wakes no poll or epoll wait, and an io_uring
 * poll holds the file): it waited to its deadline.  This test is also linked with
 * --wrap=close, whose wrapper holds plait_close's close(2) until the call sleeps; and,
 * the other way round, lets a new file take the closed number, and a call wait on it,
 * before plait_close's look after close(2), which must leave that wait alone.  These
 * two run on both backends (test_close_race, test_close_race_epoll).
 */
#include "helpers.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

static int watched = -1;
static int held_arming = -1; /* the descriptor whose arming waits for the close (case 1) */
static atomic_bool arming, closed;

int __real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);
int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);
int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    if (fd == held_arming && op != EPOLL_CTL_DEL && !atomic_load(&closed)) {
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
    const char *poller = getenv("PLAIT_POLLER");
    if (poller && strcmp(poller, "epoll") != 0) {
        CHECK_SKIP("its window is epoll_ctl's: test_close_race_epoll runs it");
        return;
    }
    CHECK_EQ(setenv("PLAIT_POLLER", "epoll", 1), 0); /* before the first scheduler */
    int p[2];
    CHECK_EQ(pipe(p), 0);
    CHECK_EQ(plait_fd_set_nonblock(p[0], 1), 0);
    watched = held_arming = p[0];
    pthread_t th;
    thread_start(&th, closer, NULL);
    check_run(read_then_sleep, NULL);
    thread_join(th);
    held_arming = -1; /* the later cases' waits arm freely (where epoll is their backend) */
    CHECK_EQ(close(p[1]), 0);
}

static int held = -1;           /* the descriptor whose close(2) waits for the call */
static atomic_bool closing;
static atomic_int caller_tid;

static int reused = -1;         /* the descriptor whose number is taken during its close */
static atomic_bool number_free;
static atomic_int reuser_tid;

int __real_close(int fd);
int __wrap_close(int fd);
int __wrap_close(int fd)
{
    if (fd == reused) { /* after close(2), before plait_close's second look */
        reused = -1;
        int r = __real_close(fd);
        atomic_store(&number_free, true);
        wait_asleep(&reuser_tid); /* a new file took the number, and a call waits on it */
        return r;
    }
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

/* A thread that calls fn(NULL) in a coroutine of its own scheduler or on itself. */
typedef struct {
    plait_fn fn;
    bool in_coroutine;
} thread_call;

static void *make_thread_call(void *arg)
{
    const thread_call *c = arg;
    if (!c->in_coroutine)
        return c->fn(NULL);
    check_run(c->fn, NULL);
    return NULL;
}

/* ThreadSanitizer reports the close racing the call on the descriptor as a race, which
 * it is (the scenario): the plain and ASan builds test the two cases below. */
#define RACES_UNDER_TSAN "the close races the call on purpose: ThreadSanitizer reports it"

TEST(a_call_begun_during_a_close_is_woken_by_it)
{
    if (CHECK_TSAN) {
        CHECK_SKIP(RACES_UNDER_TSAN);
        return;
    }
    for (int in_coroutine = 0; in_coroutine < 2; in_coroutine++) {
        watched = plait_tcp_listen("127.0.0.1", 0, 1);
        CHECK(watched >= 0);
        atomic_store(&closing, false);
        atomic_store(&caller_tid, 0);
        held = watched;
        pthread_t th;
        thread_start(&th, make_thread_call, &(thread_call){accept_while_closing, in_coroutine});
        CHECK_EQ(plait_close(watched), 0);
        thread_join(th);
        /* not at the deadline: a wait the close never woke (a thread's ppoll finds the
         * number closed only as it times out, and says -EBADF then) */
        CHECK_EQ(accepted, -EBADF);
        CHECK(accept_took < 4 * PLAIT_SEC);
    }
}

/* The number a plait_close has closed is taken by a new file at once (another thread's
 * listen), and a call waits on that file: the close's second look must leave that wait
 * alone, as it is no wait on the file closed. */
static atomic_bool reuser_ready;
static int reuser_fd, reuser_result;

static void *reuse_the_number(void *arg)
{
    (void)arg;
    /* what its wait needs (its poller, or its thread's wake-up descriptor) first */
    int warm = plait_tcp_listen("127.0.0.1", 0, 1);
    CHECK(warm >= 0);
    CHECK_EQ(plait_accept(warm, NULL, plait_deadline_in(PLAIT_MS)), -ETIMEDOUT);
    atomic_store(&reuser_ready, true);
    while (!atomic_load(&number_free))
        sched_yield();
    reuser_fd = plait_tcp_listen("127.0.0.1", 0, 1);
    atomic_store(&reuser_tid, gettid_());
    reuser_result = plait_accept(reuser_fd, NULL, plait_deadline_in(300 * PLAIT_MS));
    CHECK_EQ(plait_close(reuser_fd), 0);
    CHECK_EQ(plait_close(warm), 0);
    return NULL;
}

TEST(a_close_leaves_a_wait_on_a_new_file_of_its_number_alone)
{
    if (CHECK_TSAN) {
        CHECK_SKIP(RACES_UNDER_TSAN);
        return;
    }
    for (int in_coroutine = 0; in_coroutine < 2; in_coroutine++) {
        int old = plait_tcp_listen("127.0.0.1", 0, 1);
        CHECK(old >= 0);
        atomic_store(&reuser_ready, false);
        atomic_store(&number_free, false);
        atomic_store(&reuser_tid, 0);
        pthread_t th;
        thread_start(&th, make_thread_call, &(thread_call){reuse_the_number, in_coroutine});
        while (!atomic_load(&reuser_ready))
            sched_yield();
        reused = old;
        CHECK_EQ(plait_close(old), 0);
        thread_join(th);
        CHECK_EQ(reuser_fd, old); /* the lowest number free: the test's premise */
        CHECK_EQ(reuser_result, -ETIMEDOUT);
    }
}

RUN_TESTS(CASE(close_claiming_a_wait_being_armed_ends_that_wait),
          CASE(a_call_begun_during_a_close_is_woken_by_it),
          CASE(a_close_leaves_a_wait_on_a_new_file_of_its_number_alone))
