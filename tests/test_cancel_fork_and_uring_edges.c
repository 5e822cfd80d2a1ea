/*
 * test_cancel_fork_and_uring_edges.c — review 138 of session 28's work (its cgroup case
 * is in test_cgroup_memory.c): the pthread_cancel rule (no plait call, nor plait code
 * run inside a libc call, is a cancellation point: internal.h's plait__cancel_off;
 * ARCHITECTURE "Cancellation").
 *
 *   fork_with_a_cancellation_pending: a thread with a pthread_cancel pending (deferred)
 *   that called fork() itself, in a process where plait holds descriptors the child
 *   must not keep (the process manager's, once a process was started) — fork() is no
 *   cancellation point, yet plait's child handler (fork.c, run inside fork() in the
 *   child) closes them with close(2), one: the child's only thread
 *   unwound inside fork() there, never returning from it, and the child ended with
 *   status 0 (the last thread gone) whatever it was to do, plait's locks left held
 *   (failed first: status 0, not 42).
 *
 *   thread_ending_with_a_cancellation_pending: a plain thread that waited on a
 *   descriptor (plait gave it a wake-up eventfd, closed by a key destructor as it ends)
 *   and returned with a pthread_cancel pending, no cancellation point of its own after
 *   it: the destructor's close(2) acted on it, the eventfd left open and the thread's
 *   returned value replaced by PTHREAD_CANCELED (failed first: both).
 *
 *   close_after_a_replaced_multishot_watch_given_up_closes (adversarial, passed as
 *   found; run on both pollers): io_uring's removal waits (ASYNC_CANCEL) after a watch
 *   made multishot by an unasked POLLRDHUP, replaced by a reader's, given up by a
 *   cancellation, then closed: no wait for a removal sleeps for ever, and the peer
 *   sees the hang-up as plait_close returns.
 *
 *   closes_on_the_smallest_stack_with_many_removals_due (review 29's io_uring items;
 *   run on both pollers): a coroutine on the smallest stack closes many sockets whose
 *   multishot watches all have an answer due.  On io_uring each answer taken while the
 *   close waited for a removal took its own watch back and waited for that removal
 *   inside the first wait, one wait nested in the other per socket: the coroutine's
 *   stack overflowed (failed first: the child killed by SIGSEGV).
 */
#include "check.h"
#include "fork_child.h"
#include "helpers.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>

/* ---- fork() from a thread with a cancellation pending ---- */

static atomic_int forked_pid;

/* In the child: plait is usable (a plain thread's wait on a descriptor, which makes the
 * child its own wake-up eventfd), then the exit code the parent checks. */
static void child_of_a_cancelled_thread(void)
{
    int fds[2];
    if (pipe(fds) != 0)
        _exit(3);
    int r = plait_wait_fd(fds[0], PLAIT_READABLE, plait_deadline_in(PLAIT_MS));
    _exit(r == -ETIMEDOUT ? 42 : 4);
}

static ssize_t proc_nothing(const void *arg, size_t arg_len, void *out, size_t out_cap)
{
    (void)arg, (void)arg_len, (void)out, (void)out_cap;
    return 0;
}

static void *fork_cancelled(void *unused)
{
    (void)unused;
    CHECK_EQ(pthread_cancel(pthread_self()), 0); /* deferred: acted on at a cancellation point */
    pid_t pid = fork();
    if (pid == 0)
        child_of_a_cancelled_thread();
    /* the parent's thread is left to act on it at its own next cancellation point */
    atomic_store(&forked_pid, pid);
    pthread_testcancel();
    return NULL;
}

TEST(fork_with_a_cancellation_pending)
{
    /* a process started and ended: the process manager runs, its epoll set and control
     * eventfd open, which a child's fork handler closes (the child's copies) */
    plait_task t;
    CHECK_EQ(plait_process_start(&t, proc_nothing, NULL, 0, NULL, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    atomic_store(&forked_pid, 0);
    pthread_t th;
    thread_start(&th, fork_cancelled, NULL);
    void *ended = NULL;
    CHECK_EQ(pthread_join(th, &ended), 0);
    CHECK(ended == PTHREAD_CANCELED);
    pid_t pid = atomic_load(&forked_pid);
    CHECK(pid > 0);
    if (pid <= 0)
        return;
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 42); /* 0: it unwound inside fork() */
}



/* ---- a thread that ends with a cancellation pending ---- */

static int open_descriptors(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            n++;
    return n;
}

static void *wait_then_end_cancelled(void *unused)
{
    (void)unused;
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    /* a plain thread's wait on a descriptor: plait gives the thread a wake-up eventfd,
     * closed as the thread ends (a key's destructor) */
    CHECK_EQ(plait_wait_fd(fds[0], PLAIT_READABLE, plait_deadline_in(PLAIT_MS)), -ETIMEDOUT);
    close(fds[0]);
    close(fds[1]);
    CHECK_EQ(pthread_cancel(pthread_self()), 0); /* pending: no point of its own follows */
    return (void *)1;
}

TEST(thread_ending_with_a_cancellation_pending)
{
    int before = open_descriptors();
    pthread_t th;
    thread_start(&th, wait_then_end_cancelled, NULL);
    void *ended = NULL;
    CHECK_EQ(pthread_join(th, &ended), 0);
    CHECK(ended == (void *)1); /* it returned: no point of its own after the cancel */
    CHECK_EQ(open_descriptors(), before); /* its eventfd closed */
}

/* ---- io_uring: a multishot watch replaced, then given up, then the close ---- */

static int shut_fd = -1;

static void *wait_for_room(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)plait_wait_fd(shut_fd, PLAIT_WRITABLE, SOON());
}

static void *wait_to_read(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)plait_wait_fd(shut_fd, PLAIT_READABLE, SOON());
}

/* A writer waits for room on a socket whose own reading side is shut (the kernel's
 * poll answers POLLRDHUP, which it did not ask for: on io_uring its watch becomes a
 * multishot request); a reader comes (the watch is replaced: both directions), is
 * answered (end of file), and the writer is cancelled (the watch given up).  Then
 * plait_close: the peer must see the hang-up as it returns (the file let go), and no
 * step may sleep for ever waiting for a removal's completion. */
static void *replaced_multishot_main(void *arg)
{
    (void)arg;
    int pair[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair), 0);
    shut_fd = pair[0];
    char junk[4096] = {0};
    while (write(pair[0], junk, sizeof junk) > 0) { /* no room left */
    }
    CHECK_EQ(shutdown(pair[0], SHUT_RD), 0); /* POLLIN | POLLRDHUP, not POLLOUT */
    plait_task w, r;
    CHECK_EQ(plait_spawn(&w, wait_for_room, NULL), 0);
    for (int k = 0; k < 20; k++)
        CHECK_EQ(plait_yield(), 0); /* the writer's watch made and answered, unasked */
    CHECK_EQ(plait_sleep(2 * PLAIT_MS), 0); /* the loop in the kernel */
    CHECK_EQ(plait_spawn(&r, wait_to_read, NULL), 0);
    void *got = NULL;
    CHECK_EQ(plait_join(r, &got, SOON()), 0);
    CHECK((intptr_t)got > 0 && ((intptr_t)got & PLAIT_READABLE));
    CHECK_EQ(plait_cancel(w), 0);
    CHECK_EQ(plait_join(w, NULL, SOON()), -ECANCELED); /* a cancelled task's outcome */
    CHECK_EQ(plait_close(pair[0]), 0);
    struct pollfd pfd = {.fd = pair[1], .events = POLLIN};
    CHECK_EQ(poll(&pfd, 1, 0), 1);
    CHECK(pfd.revents & POLLHUP); /* the file was let go: its peer sees it gone */
    CHECK_EQ(close(pair[1]), 0);
    return NULL;
}

TEST(close_after_a_replaced_multishot_watch_given_up_closes)
{
    check_run(replaced_multishot_main, NULL);
}

/* ---- io_uring: many removals due, taken on the smallest stack ---- */

enum { SHUT_SOCKETS = 200 };
static int shut_pairs[SHUT_SOCKETS][2];
static int room_waits[SHUT_SOCKETS]; /* each writer's plait_wait_fd */

static void *wait_for_room_on(void *arg)
{
    int i = INT(arg);
    room_waits[i] = plait_wait_fd(shut_pairs[i][0], PLAIT_WRITABLE, SOON());
    return NULL;
}

/* Make room on every socket (its peer reads what fills it), so that each writer's
 * multishot watch has an answer due, then close the sockets. */
static void *drain_then_close(void *arg)
{
    (void)arg;
    static char junk[4096]; /* not on the small stack */
    for (int i = 0; i < SHUT_SOCKETS; i++)
        while (read(shut_pairs[i][1], junk, sizeof junk) > 0) {
        }
    for (int i = 0; i < SHUT_SOCKETS; i++)
        CHECK_EQ(plait_close(shut_pairs[i][0]), 0);
    return NULL;
}

/* SHUT_SOCKETS writers wait for room on full sockets whose reading side is shut (their
 * watches made multishot, as in replaced_multishot_main); a coroutine on the smallest
 * stack makes room on all of them and closes them. */
static void *many_removals_main(void *arg)
{
    (void)arg;
    static char junk[4096];
    plait_task writers[SHUT_SOCKETS];
    for (int i = 0; i < SHUT_SOCKETS; i++) {
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                            shut_pairs[i]),
                 0);
        while (write(shut_pairs[i][0], junk, sizeof junk) > 0) { /* no room left */
        }
        CHECK_EQ(shutdown(shut_pairs[i][0], SHUT_RD), 0);
        CHECK_EQ(plait_spawn(&writers[i], wait_for_room_on, ARG(i)), 0);
    }
    for (int k = 0; k < 20; k++)
        CHECK_EQ(plait_yield(), 0); /* the watches made and answered, unasked */
    CHECK_EQ(plait_sleep(2 * PLAIT_MS), 0); /* the loop in the kernel */
    plait_task closer;
    plait_spawn_options small = {.stack_size = CHECK_SMALL_STACK};
    CHECK_EQ(plait_spawn_opts(&closer, drain_then_close, NULL, &small), 0);
    CHECK_EQ(plait_join(closer, NULL, SOON()), 0);
    for (int i = 0; i < SHUT_SOCKETS; i++) {
        CHECK_EQ(plait_join(writers[i], NULL, SOON()), 0);
        /* answered, or woken by the close */
        CHECK(room_waits[i] == -EBADF || (room_waits[i] > 0 && (room_waits[i] & PLAIT_WRITABLE)));
        struct pollfd pfd = {.fd = shut_pairs[i][1], .events = POLLIN};
        CHECK_EQ(poll(&pfd, 1, 0), 1);
        CHECK(pfd.revents & POLLHUP); /* let go by the close */
        CHECK_EQ(close(shut_pairs[i][1]), 0);
    }
    return NULL;
}

/* In a child: a stack overflow is a crash, the child's and not the suite's. */
TEST(closes_on_the_smallest_stack_with_many_removals_due)
{
    pid_t pid = fork_child(true);
    if (pid == 0) {
        check_run(many_removals_main, NULL);
        child_exit();
    }
    reap_ok(pid, 30);
}

RUN_TESTS(CASE(fork_with_a_cancellation_pending), CASE(thread_ending_with_a_cancellation_pending),
          CASE(close_after_a_replaced_multishot_watch_given_up_closes),
          CASE(closes_on_the_smallest_stack_with_many_removals_due))
