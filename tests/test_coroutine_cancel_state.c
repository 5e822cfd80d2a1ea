/*
 * test_coroutine_cancel_state.c — a coroutine's own pthread cancel state, and a
 * coroutine that ends its scheduler's thread (ended_by_a_coroutine, sched.c) and what
 * that may meet.
 *
 *   cancel_acted_on_after_the_plait_call: a coroutine turns the thread's cancellation
 *       back on (a pthread_cancel is pending) and waits on an event while another
 *       coroutine waits on a descriptor (the scheduler sleeps in its poller), until
 *       another thread sets it (a post to the inbox: the eventfd).  No plait call is a
 *       cancellation point (plait.h, API.md): the wait returns 0, and the cancellation
 *       is acted on at the coroutine's own next cancellation point.  The loop ran with
 *       the coroutine's cancel state, and its epoll_wait (epoll) or eventfd read
 *       (io_uring) acted on it: the cleanup handler for a coroutine that ends the
 *       thread took the loop for that coroutine and restarted it on a stack it has not
 *       (SIGSEGV, on both pollers).
 *   each_coroutine_keeps_its_cancel_state: coroutine A turns cancellation back on (a
 *       pthread_cancel pending) and waits; B, resumed in its plait_read meanwhile, ran
 *       plait's code with A's state (on epoll its wait ended by the cancellation, inside
 *       plait), and its call's restore of the state it saved as it began turned A's off
 *       (A's own pthread_testcancel then did nothing, and the thread ran on).  The state
 *       is each coroutine's own across switches (switch_to).
 *   every_wait_wound_down: a coroutine ends its plait thread after a stall the watchdog
 *       notes, while others wait on a mutex, a channel, a join, a descriptor, a sleep.
 *   scheduler_ends_with_cancellation_left_on: main turns cancellation on and returns;
 *       the scheduler's end (its poller's close(2)) ran with main's state and acted on
 *       a pending pthread_cancel inside plait_run, which never returned (the scheduler
 *       half freed, its descriptors open).  Fixed with each_coroutine_keeps_its_...
 *   queue_tries_in_a_loop_look_seldom: a receive that tries in a loop on an empty queue
 *       whose sender lives made a kill(2) per try (and took the lock twice): at most
 *       one look every 10 ms now; a sender gone unreported is still found.
 *   plain_thread_and_main_thread: the same wind-down from a coroutine of a scheduler on
 *       a plain pthread, and on a process's main thread (the process then goes on as
 *       after pthread_exit from main: another thread still runs, and it exits 0).
 */
#include "fork_child.h"

#include <poll.h>
#include <pthread.h>
#include <sys/wait.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

static int go_pipe[2], hold_pipe[2];
static _Atomic int slept_through, reader_result = 1, waiter_result = 1, main_tid;
static plait_task reader;
static plait_event *go_on;

static void *reads_hold(void *arg)
{
    (void)arg;
    char c;
    reader_result = (int)plait_read(hold_pipe[0], &c, 1, PLAIT_FOREVER);
    return NULL;
}

/* keeps the poller busy (the loop sleeps in it), and never wakes before it ends */
static void *watches_hold(void *arg)
{
    (void)arg;
    reader_result = plait_wait_fd(hold_pipe[0], POLLIN, PLAIT_FOREVER);
    return NULL;
}

static void *main_turns_cancel_on(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_spawn(&reader, watches_hold, NULL), 0);
    char c;
    /* the test has sent the pthread_cancel when this returns */
    CHECK_EQ(plait_read(go_pipe[0], &c, 1, plait_deadline_in(5 * PLAIT_SEC)), 1);
    CHECK_EQ(plait_yield(), 0); /* the watcher is in the poller */
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
    main_tid = gettid_();
    /* the loop sleeps in its poller until the test posts to its inbox (the eventfd) */
    waiter_result = plait_event_wait(go_on, plait_deadline_in(5 * PLAIT_SEC));
    slept_through = 1;
    pthread_testcancel(); /* acted on here, in the coroutine's own code */
    slept_through = 2;    /* not reached */
    return NULL;
}

static void *thread_runs(void *arg)
{
    (void)arg;
    plait_run(main_turns_cancel_on, NULL, NULL);
    return (void *)7;
}

/* Start fn (a plait_run) on a new thread with a pthread_cancel pending, and let its
 * main go on (go_pipe). */
static pthread_t start_cancelled(void *(*fn)(void *))
{
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, fn, NULL), 0);
    CHECK_EQ(pthread_cancel(t), 0);
    CHECK_EQ(write(go_pipe[1], "g", 1), 1);
    return t;
}

/* t ended, within 5 s, by its cancellation. */
static void joined_cancelled(pthread_t t)
{
    void *v = NULL;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    CHECK_EQ(pthread_timedjoin_np(t, &v, &until), 0);
    CHECK(v == PTHREAD_CANCELED);
}


static void cancel_acted_on_in_child(void)
{
    CHECK_EQ(pipe2(go_pipe, O_NONBLOCK), 0);
    CHECK_EQ(pipe2(hold_pipe, O_NONBLOCK), 0);
    CHECK_EQ(plait_event_create(&go_on), 0);
    pthread_t t = start_cancelled(thread_runs);
    wait_asleep(&main_tid);
    CHECK_EQ(plait_event_set(go_on), 0);
    joined_cancelled(t);
    CHECK_EQ(waiter_result, 0);
    CHECK_EQ(slept_through, 1);
    CHECK_EQ(reader_result, -ECANCELED);
}

TEST(cancel_acted_on_after_the_plait_call) { exiting_fiber_in_a_child(cancel_acted_on_in_child); }

/* ---- each coroutine's own cancel state ---- */

static int b_pipe[2];
static _Atomic int b_result = 1, b_sleep_result = 1, a_tid, a_woke = 1, a_after;
static plait_task b_task;

static void *b_reads(void *arg)
{
    (void)arg;
    char c;
    b_result = (int)plait_read(b_pipe[0], &c, 1, plait_deadline_in(5 * PLAIT_SEC));
    CHECK_EQ(plait_event_set(go_on), 0); /* A's wait ends after this read */
    b_sleep_result = plait_sleep_until(PLAIT_FOREVER);
    return NULL;
}

static void *a_turns_cancel_on(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_spawn(&b_task, b_reads, NULL), 0);
    char c;
    CHECK_EQ(plait_read(go_pipe[0], &c, 1, plait_deadline_in(5 * PLAIT_SEC)), 1);
    CHECK_EQ(plait_yield(), 0); /* B waits in plait_read */
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
    a_tid = gettid_();
    a_woke = plait_event_wait(go_on, plait_deadline_in(5 * PLAIT_SEC));
    a_after = 1;
    pthread_testcancel(); /* acted on here, in A's own code */
    a_after = 2;          /* not reached */
    return NULL;
}

static void *thread_runs_a(void *arg)
{
    (void)arg;
    plait_run(a_turns_cancel_on, NULL, NULL);
    return (void *)7;
}

/* A turns the thread's cancellation on (a pthread_cancel pending) and waits; B, resumed
 * in its plait_read meanwhile, ran plait's code with A's state (its read(2) acted on
 * the cancellation inside plait_read, epoll), and left its own, saved as its call
 * began, to A (A's own cancellation point then did nothing: io_uring).  Each coroutine
 * keeps its own state across the switches. */
static void each_keeps_its_state_in_child(void)
{
    CHECK_EQ(pipe2(go_pipe, O_NONBLOCK), 0);
    CHECK_EQ(pipe2(b_pipe, O_NONBLOCK), 0);
    CHECK_EQ(plait_event_create(&go_on), 0);
    pthread_t t = start_cancelled(thread_runs_a);
    wait_asleep(&a_tid);
    CHECK_EQ(write(b_pipe[1], "b", 1), 1);
    joined_cancelled(t);
    CHECK_EQ(b_result, 1);
    CHECK_EQ(b_sleep_result, -ECANCELED);
    CHECK_EQ(a_woke, 0);
    CHECK_EQ(a_after, 1);
}

TEST(each_coroutine_keeps_its_cancel_state) { exiting_fiber_in_a_child(each_keeps_its_state_in_child); }

/* ---- a coroutine that leaves cancellation on as it returns ---- */

static _Atomic int r_returned, r_fds_after = -2;

static void *main_leaves_cancel_on(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_spawn(&reader, watches_hold, NULL), 0); /* the poller is made */
    char c;
    CHECK_EQ(plait_read(go_pipe[0], &c, 1, plait_deadline_in(5 * PLAIT_SEC)), 1);
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
    return NULL; /* no cancellation point of its own after this */
}

static void *thread_runs_r(void *arg)
{
    (void)arg;
    int r = plait_run(main_leaves_cancel_on, NULL, NULL);
    r_returned = r == 0 ? 1 : r;
    r_fds_after = count_fds();
    pthread_testcancel(); /* the thread's own cancellation point */
    return (void *)7;
}

/* main turns the thread's cancellation on (a pthread_cancel pending) and returns: the
 * scheduler's end (its poller's close(2)) ran with main's state and acted on it inside
 * plait_run, which never returned, the scheduler half freed.  plait_run returns, and
 * the thread acts on it at its own next cancellation point. */
static void left_on_in_child(void)
{
    CHECK_EQ(pipe2(go_pipe, O_NONBLOCK), 0);
    CHECK_EQ(pipe2(hold_pipe, O_NONBLOCK), 0);
    int fds = count_fds();
    joined_cancelled(start_cancelled(thread_runs_r));
    CHECK_EQ(r_returned, 1);
    CHECK_EQ(r_fds_after, fds);
    CHECK_EQ(reader_result, -ECANCELED);
#if defined(__SANITIZE_ADDRESS__)
    CHECK_EQ(__lsan_do_recoverable_leak_check(), 0);
#endif
}

TEST(scheduler_ends_with_cancellation_left_on) { exiting_fiber_in_a_child(left_on_in_child); }

/* ---- every kind of wait wound down, the watchdog on ---- */

static plait_mutex *w_mutex;
static plait_chan *w_chan;
static int w_pipe[2];
static plait_task w_holder, w_locker, w_joiner, w_fd, w_sleeper, w_exiter;
static _Atomic int w_recv = 1, w_lock = 1, w_join = 1, w_wait_fd = 1, w_sleep = 1,
                   w_unlock = 1;

static void *w_holds(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_mutex_lock(w_mutex, PLAIT_FOREVER), 0);
    int x;
    w_recv = plait_chan_recv(w_chan, &x, PLAIT_FOREVER);
    w_unlock = plait_mutex_unlock(w_mutex);
    return NULL;
}

static void *w_locks(void *arg)
{
    (void)arg;
    w_lock = plait_mutex_lock(w_mutex, PLAIT_FOREVER);
    if (w_lock == 0)
        plait_mutex_unlock(w_mutex);
    return NULL;
}

static void *w_sleeps(void *arg)
{
    (void)arg;
    w_sleep = plait_sleep(10 * PLAIT_SEC);
    return NULL;
}

static void *w_joins(void *arg)
{
    (void)arg;
    w_join = plait_join(w_sleeper, NULL, PLAIT_FOREVER);
    return NULL;
}

static void *w_waits_fd(void *arg)
{
    (void)arg;
    w_wait_fd = plait_wait_fd(w_pipe[0], POLLIN, PLAIT_FOREVER);
    return NULL;
}

static void *w_exits(void *arg)
{
    (void)arg;
    /* runs 30 ms without yielding: the watchdog notes the stall */
    int64_t until = plait_now() + 30 * PLAIT_MS;
    while (plait_now() < until)
        ;
    pthread_exit(NULL);
}

static void *w_main(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_spawn(&w_holder, w_holds, NULL), 0);
    CHECK_EQ(plait_yield(), 0); /* the holder has the mutex */
    CHECK_EQ(plait_spawn(&w_locker, w_locks, NULL), 0);
    CHECK_EQ(plait_spawn(&w_sleeper, w_sleeps, NULL), 0);
    CHECK_EQ(plait_spawn(&w_joiner, w_joins, NULL), 0);
    CHECK_EQ(plait_spawn(&w_fd, w_waits_fd, NULL), 0);
    CHECK_EQ(plait_yield(), 0); /* every one waits */
    CHECK_EQ(plait_spawn(&w_exiter, w_exits, NULL), 0);
    return ARG(plait_sleep_until(PLAIT_FOREVER));
}

static void *w_thread(void *arg)
{
    (void)arg;
    plait_run(w_main, NULL, NULL);
    return ARG(4);
}

static void every_wait_in_child(void)
{
    CHECK_EQ(plait_set_slow_warning(5 * PLAIT_MS), 0);
    CHECK_EQ(pipe2(w_pipe, O_NONBLOCK), 0);
    CHECK_EQ(plait_mutex_create(&w_mutex), 0);
    CHECK_EQ(plait_chan_create(&w_chan, sizeof(int), 0), 0);
    int fds = count_fds();
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, w_thread, NULL, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, plait_deadline_in(5 * PLAIT_SEC)), -ECANCELED);
    plait_task *all[] = {&w_holder, &w_locker, &w_joiner, &w_fd, &w_sleeper, &w_exiter};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        CHECK_EQ(plait_join(*all[i], NULL, 0), -ECANCELED);
    CHECK_EQ(w_recv, -ECANCELED);
    CHECK_EQ(w_unlock, 0);
    CHECK_EQ(w_lock, -ECANCELED);
    CHECK_EQ(w_join, -ECANCELED);
    CHECK_EQ(w_wait_fd, -ECANCELED);
    CHECK_EQ(w_sleep, -ECANCELED);
    CHECK_EQ(count_fds(), fds);
    CHECK_EQ(plait_mutex_destroy(w_mutex), 0);
    CHECK_EQ(plait_chan_destroy(w_chan), 0);
#if defined(__SANITIZE_ADDRESS__)
    CHECK_EQ(__lsan_do_recoverable_leak_check(), 0);
#endif
}

TEST(every_wait_wound_down) { exiting_fiber_in_a_child(every_wait_in_child); }

/* ---- a queue's tries ---- */

/* kill(pid, 0) calls (the looks for holders gone): the test links with --wrap=kill */
static atomic_int kill_looks;
int __real_kill(pid_t pid, int sig);
int __wrap_kill(pid_t pid, int sig);
int __wrap_kill(pid_t pid, int sig)
{
    if (sig == 0)
        atomic_fetch_add(&kill_looks, 1);
    return __real_kill(pid, sig);
}

/* A receive that tries (deadline 0) on an empty queue whose sender lives, in a loop:
 * each try looked for the sender gone unreported (a kill(2), and the lock again), five
 * times the cost of a try before (a system call per try of a polling loop).  A try
 * looks at most every 10 ms now; a gone sender is still found by a later try. */
TEST(queue_tries_in_a_loop_look_seldom)
{
    plait_queue *q;
    char c;
    CHECK_EQ(plait_queue_create(&q, 1, 1), 0);
    int hold[2];
    CHECK_EQ(pipe(hold), 0);
    pid_t sender = fork_child(true);
    if (sender == 0) {
        close(hold[1]);
        int r = plait_queue_send(q, "a", 1, 0);
        _exit(r == 0 && read(hold[0], &c, 1) == 0 ? 0 : 1); /* until the pipe closes */
    }
    close(hold[0]);
    CHECK_EQ(plait_queue_recv(q, &c, 1, SOON()), 1); /* the sender holds its side */
    int before = atomic_load(&kill_looks), timed_out = 0;
    int64_t start = plait_now();
    for (int i = 0; i < 20000; i++)
        timed_out += plait_queue_recv(q, &c, 1, 0) == -ETIMEDOUT;
    int64_t took = plait_now() - start;
    int looks = atomic_load(&kill_looks) - before;
    CHECK_EQ(timed_out, 20000);
    CHECK(looks <= 2 + (int)(took / (10 * PLAIT_MS)));
    /* the sender gone unreported (reaped here): a try finds it, within 10 ms of tries */
    close(hold[1]);
    reap_ok(sender, 10);
    ssize_t r = -ETIMEDOUT;
    int64_t until = SOON();
    while (r == -ETIMEDOUT && plait_now() < until)
        r = plait_queue_recv(q, &c, 1, 0);
    CHECK_EQ(r, -EPIPE);
    CHECK_EQ(plait_queue_destroy(q), 0);
}

/* ---- a plain thread's scheduler, and the main thread's ---- */

static plait_task sleeper;
static _Atomic int sleeper_result = 1;

static void *sleeps(void *arg)
{
    (void)arg;
    sleeper_result = plait_sleep(10 * PLAIT_SEC);
    return NULL;
}

static void *main_exits(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_spawn(&sleeper, sleeps, NULL), 0);
    CHECK_EQ(plait_spawn(&reader, reads_hold, NULL), 0);
    CHECK_EQ(plait_yield(), 0);
    pthread_exit((void *)9);
}

static void *plain_thread_runs(void *arg)
{
    (void)arg;
    plait_run(main_exits, NULL, NULL);
    return (void *)7;
}

static int checker_fds;
static void *checks_after_main_left(void *arg)
{
#if defined(__clang__) && defined(__SANITIZE_ADDRESS__)
    /* clang's ASan refuses a join of the main thread ("Joining already joined thread",
     * and aborts): wait until it is a zombie instead, its exit value unseen */
    (void)arg;
    int64_t until = SOON();
    while (thread_state(getpid()) != 'Z' && plait_now() < until)
        sched_yield();
    CHECK_EQ(thread_state(getpid()), 'Z');
#else
    pthread_t main_thread = *(pthread_t *)arg;
    void *v = NULL;
    CHECK_EQ(pthread_join(main_thread, &v), 0);
    CHECK(v == (void *)9);
#endif
    CHECK_EQ(sleeper_result, -ECANCELED);
    CHECK_EQ(reader_result, -ECANCELED);
    CHECK_EQ(count_fds_in("/proc/thread-self/fd"), checker_fds);
#if defined(__SANITIZE_ADDRESS__)
    CHECK_EQ(__lsan_do_recoverable_leak_check(), 0);
#endif
    fflush(NULL);
    _exit(check_failures == 0 ? 42 : 1);
}

static void plain_thread_in_child(void)
{
    CHECK_EQ(pipe2(hold_pipe, O_NONBLOCK), 0);
    int fds = count_fds();
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, plain_thread_runs, NULL), 0);
    void *v = NULL;
    CHECK_EQ(pthread_join(t, &v), 0);
    CHECK(v == (void *)9);
    CHECK_EQ(sleeper_result, -ECANCELED);
    CHECK_EQ(reader_result, -ECANCELED);
    CHECK_EQ(count_fds(), fds);
}

TEST(plain_thread_and_main_thread)
{
    exiting_fiber_in_a_child(plain_thread_in_child);
    if (CHECK_TSAN)
        return; /* skipped (exiting_fiber_in_a_child) */
    /* on the main thread: another thread checks once it has gone, and exits 42 */
    pid_t child = fork_child(true);
    if (child == 0) {
        sleeper_result = reader_result = 1;
        CHECK_EQ(pipe2(hold_pipe, O_NONBLOCK), 0);
        /* this thread's view: /proc/self is the main thread's, which leaves */
        checker_fds = count_fds_in("/proc/thread-self/fd");
        static pthread_t self;
        self = pthread_self();
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, checks_after_main_left, &self), 0);
        plait_run(main_exits, NULL, NULL);
        _exit(3); /* plait_run does not return */
    }
    int status = 0;
    for (int i = 0; i < 1000 && waitpid(child, &status, WNOHANG) == 0; i++)
        usleep(10000);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 42);
    if (!WIFEXITED(status))
        kill(child, SIGKILL), waitpid(child, &status, 0);
}

RUN_TESTS(CASE(cancel_acted_on_after_the_plait_call), CASE(each_coroutine_keeps_its_cancel_state), CASE(every_wait_wound_down),
          CASE(scheduler_ends_with_cancellation_left_on),
          CASE(queue_tries_in_a_loop_look_seldom),
          CASE(plain_thread_and_main_thread))
