/*
 * test_poll_edges.c — the pollers at the edges: numbers reused behind them, sandboxes
 * that refuse io_uring half-way (each case failed before its fix; review 104).
 *
 * A descriptor closed with close(2) while nobody waits on it, whose file stays open
 * elsewhere (a dup), and whose number a new file takes: the epoll backend kept the old
 * file's registration under that number, and a wait on the new file trusted it without
 * a system call.  The old file's readiness then answered every wait on the new one
 * (plait_wait_fd said readable while nothing was there, and a read spun), for ever: a
 * report reset the check that would have found the registration stale.  The same
 * after a plait_close on another thread (the file open elsewhere): this scheduler's
 * registration of the old file stayed in its set beside the new file's, and answered
 * too.  io_uring polls the file the number names.
 *
 * A sandbox that lets io_uring_setup through but refuses io_uring_enter (a seccomp
 * filter): the choice of backend only set a ring up, so the scheduler's first wait on a
 * descriptor aborted the process ("io_uring_enter refused the scheduler's ring")
 * rather than fall back to epoll.
 */
#include "fork_child.h"
#include "refuse_syscall.h"

#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Two pipes, a and b; a wait on a[0] (x, returned), so that epoll registers the number
 * and keeps it; and a[0]'s file kept open elsewhere too (*kept, a dup). */
static int waited_on_and_kept(int a[2], int b[2], int *kept)
{
    CHECK_EQ(pipe2(a, O_NONBLOCK | O_CLOEXEC), 0);
    CHECK_EQ(pipe2(b, O_NONBLOCK | O_CLOEXEC), 0);
    int x = a[0];
    char c;
    CHECK_EQ(write(a[1], "a", 1), 1);
    CHECK_EQ(plait_wait_fd(x, PLAIT_READABLE, SOON()), PLAIT_READABLE);
    CHECK_EQ(read(x, &c, 1), 1);
    *kept = dup(x);
    CHECK(*kept >= 0);
    return x;
}

/* Waits on the new file at x, back to back (spacing 0) or spacing ns apart (a
 * coroutine that looks at its socket now and then: each such wait began a new stretch
 * of trust, trust() in poll_epoll.c, which the old file's report answered at once,
 * before the stretch was old enough to be checked — readable for ever; review 112). */
static void *wait_on_a_reused_number(void *arg)
{
    int64_t spacing = (int64_t)(intptr_t)arg;
    int a[2], b[2], kept;
    int x = waited_on_and_kept(a, b, &kept);
    char c;
    /* its number is closed with close(2), nobody waiting, and the new file (b's read
     * end, empty) takes it */
    CHECK_EQ(close(x), 0);
    CHECK_EQ(dup2(b[0], x), x);
    CHECK_EQ(close(b[0]), 0);
    CHECK_EQ(write(a[1], "a", 1), 1); /* the old file is readable, the new one not */
    /* x is not readable: the wait times out (at most a short spell of stale answers:
     * 1 s of them for ever, or 120 spaced waits, 3 s at least) */
    int64_t start = plait_now();
    int r, stale = 0;
    while ((r = plait_wait_fd(x, PLAIT_READABLE, plait_deadline_in(50 * PLAIT_MS))) ==
               PLAIT_READABLE &&
           (spacing ? stale < 120 : plait_now() - start < PLAIT_SEC)) {
        CHECK_EQ(read(x, &c, 1), -1); /* nothing there: a stale answer */
        stale++;
        if (spacing)
            CHECK_EQ(plait_sleep(spacing), 0);
    }
    fprintf(stderr, "  %d stale answers, then %d\n", stale, r);
    CHECK_EQ(r, -ETIMEDOUT);
    /* and a byte for the new file is seen */
    CHECK_EQ(write(b[1], "b", 1), 1);
    CHECK_EQ(plait_read(x, &c, 1, SOON()), 1);
    CHECK_EQ(c, 'b');
    CHECK_EQ(plait_close(x), 0);
    CHECK_EQ(plait_close(kept), 0);
    CHECK_EQ(plait_close(a[1]), 0);
    CHECK_EQ(plait_close(b[1]), 0);
    return NULL;
}

TEST(a_wait_on_a_number_reused_after_close_is_not_answered_by_the_old_file)
{
    check_run(wait_on_a_reused_number, (void *)(intptr_t)0);
}

TEST(spaced_waits_on_a_reused_number_are_not_answered_by_the_old_file_for_ever)
{
    check_run(wait_on_a_reused_number, (void *)(intptr_t)(25 * PLAIT_MS));
}

static int closing = -1;

static void *close_it(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_close(closing), 0);
    return NULL;
}

/* The same after a plait_close on another thread: this scheduler's registration of the
 * old file is out of its reach (the file is open elsewhere), and the wait registers the
 * new file beside it; the old file's readiness must not answer it either. */
static void *wait_on_a_number_closed_by_another_thread(void *arg)
{
    (void)arg;
    int a[2], b[2], kept;
    int x = waited_on_and_kept(a, b, &kept);
    char c;
    closing = x;
    pthread_t t;
    thread_start(&t, close_it, NULL);
    thread_join(t);
    CHECK_EQ(dup2(b[0], x), x);
    CHECK_EQ(close(b[0]), 0);
    CHECK_EQ(write(a[1], "a", 1), 1);
    CHECK_EQ(plait_wait_fd(x, PLAIT_READABLE, plait_deadline_in(50 * PLAIT_MS)), -ETIMEDOUT);
    CHECK_EQ(write(b[1], "b", 1), 1);
    CHECK_EQ(plait_read(x, &c, 1, SOON()), 1);
    CHECK_EQ(c, 'b');
    CHECK_EQ(plait_close(x), 0);
    CHECK_EQ(plait_close(kept), 0);
    CHECK_EQ(plait_close(a[1]), 0);
    CHECK_EQ(plait_close(b[1]), 0);
    return NULL;
}

TEST(a_wait_on_a_number_closed_by_another_thread_is_not_answered_by_the_old_file)
{
    check_run(wait_on_a_number_closed_by_another_thread, NULL);
}

static void *wait_on_a_pipe(void *arg)
{
    (void)arg;
    int a[2];
    char c;
    CHECK_EQ(pipe2(a, O_NONBLOCK | O_CLOEXEC), 0);
    CHECK_EQ(plait_read(a[0], &c, 1, plait_deadline_in(20 * PLAIT_MS)), -ETIMEDOUT);
    CHECK_EQ(plait_wait_fd(a[0], PLAIT_READABLE, plait_deadline_in(20 * PLAIT_MS)),
             -ETIMEDOUT);
    CHECK_EQ(write(a[1], "a", 1), 1);
    CHECK_EQ(plait_wait_fd(a[0], PLAIT_READABLE, SOON()), PLAIT_READABLE);
    CHECK_EQ(plait_read(a[0], &c, 1, SOON()), 1);
    CHECK_EQ(plait_close(a[0]), 0);
    CHECK_EQ(plait_close(a[1]), 0);
    return NULL;
}

TEST(a_sandbox_that_refuses_io_uring_enter_falls_back_to_epoll)
{
    pid_t pid = fork_child(true);
    if (pid == 0) {
        alarm(20);
        /* the child only: io_uring_setup still works, io_uring_enter does not (where
         * no seccomp filter can be installed, qemu-user's EINVAL, it says so: 77) */
        if (refuse_syscall(__NR_io_uring_enter) < 0)
            _exit(77);
        check_run(wait_on_a_pipe, NULL);
        child_exit();
    }
    int status = reap_within(pid, 20);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
        CHECK_SKIP("no seccomp filter can be installed here");
        return;
    }
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
}

/* An epoll set nested five deep (each set watches the one below, the lowest a ready
 * eventfd): the kernel refuses to add it to a sixth (ELOOP), so the epoll backend
 * cannot watch it, and a coroutine's wait says -ELOOP, as plait.h says (it was an
 * undocumented code; a helper's audit of session 63).  io_uring polls it: readable.
 * A plain thread's wait (ppoll) is readable on both. */
enum { NESTED_SETS = 5 };

static int nested_sets[NESTED_SETS + 1]; /* [0]: the eventfd */

static void *wait_on_the_top_set(void *unused)
{
    (void)unused;
    int top = nested_sets[NESTED_SETS];
    bool uring = strcmp(plait_io_backend(), "io_uring") == 0;
    CHECK_EQ(plait_wait_fd(top, PLAIT_READABLE, SOON()), uring ? PLAIT_READABLE : -ELOOP);
    /* a shallower set is watched on both */
    CHECK_EQ(plait_wait_fd(nested_sets[NESTED_SETS - 1], PLAIT_READABLE, SOON()),
             PLAIT_READABLE);
    return NULL;
}

TEST(an_epoll_set_nested_too_deep_for_the_epoll_backend)
{
    nested_sets[0] = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
    CHECK(nested_sets[0] >= 0);
    for (int i = 1; i <= NESTED_SETS; i++) {
        nested_sets[i] = epoll_create1(EPOLL_CLOEXEC);
        CHECK(nested_sets[i] >= 0);
        struct epoll_event e = {.events = EPOLLIN};
        CHECK_EQ(epoll_ctl(nested_sets[i], EPOLL_CTL_ADD, nested_sets[i - 1], &e), 0);
    }
    CHECK_EQ(plait_wait_fd(nested_sets[NESTED_SETS], PLAIT_READABLE, SOON()), PLAIT_READABLE);
    check_run(wait_on_the_top_set, NULL);
    for (int i = NESTED_SETS; i >= 0; i--)
        CHECK_EQ(close(nested_sets[i]), 0);
}

RUN_TESTS(CASE(a_wait_on_a_number_reused_after_close_is_not_answered_by_the_old_file),
          CASE(spaced_waits_on_a_reused_number_are_not_answered_by_the_old_file_for_ever),
          CASE(a_wait_on_a_number_closed_by_another_thread_is_not_answered_by_the_old_file),
          CASE(a_sandbox_that_refuses_io_uring_enter_falls_back_to_epoll),
          CASE(an_epoll_set_nested_too_deep_for_the_epoll_backend))
