/* test_epoll_timeout_ns.c — on the epoll backend a scheduler that watches a descriptor
 * sleeps for the time left to its next deadline to the nanosecond, as on io_uring: it
 * gave epoll_wait whole milliseconds, rounded up, so a 200 µs sleep (a read's 50 µs
 * deadline) woke a millisecond late (session 43's sockets audit; failed before the fix:
 * a timeout of 1,000,000 ns reached the kernel).
 *
 * Built with -Wl,--wrap=syscall and -Wl,--wrap=epoll_wait: each notes the timeout it
 * passes to the kernel while the test's sleep runs. */
#define CHECK_WRAP_SYSCALL
#include "helpers.h"

#include <sys/epoll.h>
#include <linux/time_types.h>

#include "../src/poll.h"

int __real_epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout_ms);
int __wrap_epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout_ms);

static atomic_bool noting;          /* while the sleep runs */
static atomic_llong longest = -2;   /* the longest timeout noted, ns (-1: none; -2: no wait) */
static atomic_bool pwait2_refused;  /* the kernel has no epoll_pwait2 */

static void note(long long ns)
{
    if (!atomic_load(&noting))
        return;
    long long seen = atomic_load(&longest);
    if (seen == -1)
        return; /* a wait without a limit was noted: that stands */
    if (ns == -1 || ns > seen)
        atomic_store(&longest, ns);
}

static long wrapped_syscall(long n, const long a[6])
{
#ifdef SYS_epoll_pwait2
    if (n == SYS_epoll_pwait2) {
        const struct __kernel_timespec *ts = (const void *)a[3];
        note(ts ? (long long)ts->tv_sec * PLAIT_SEC + ts->tv_nsec : -1);
    }
#endif
    long r = real_syscall(n, a);
#ifdef SYS_epoll_pwait2
    if (n == SYS_epoll_pwait2 && r < 0 && (errno == ENOSYS || errno == EPERM))
        atomic_store(&pwait2_refused, true);
#endif
    return r;
}

int __wrap_epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout_ms)
{
    note(timeout_ms < 0 ? -1 : (long long)timeout_ms * PLAIT_MS);
    return __real_epoll_wait(epfd, evs, max, timeout_ms);
}

static int fds[2];

static void *reads_the_pipe(void *unused)
{
    (void)unused;
    char c;
    return PLAIT_FAIL((int)plait_read(fds[0], &c, 1, PLAIT_FOREVER)); /* cancelled */
}

static void *sleeps_beside_a_watch(void *unused)
{
    (void)unused;
    CHECK_EQ(strcmp(plait_io_backend(), "epoll"), 0);
    plait_task reader;
    CHECK_EQ(plait_spawn(&reader, reads_the_pipe, NULL), 0);
    CHECK_EQ(plait_yield(), 0); /* the reader waits on the pipe: the poller is busy */
    /* A sleep whose 200 µs had passed before the scheduler came to its wait (qemu-user,
     * a loaded machine: CI's aarch64 stage once) never reaches the kernel: tried again,
     * up to ten times, until one does. */
    for (int attempt = 0; attempt < 10 && atomic_load(&longest) == -2; attempt++) {
        atomic_store(&noting, true);
        int64_t start = plait_now();
        CHECK_EQ(plait_sleep(200 * PLAIT_US), 0);
        int64_t slept = plait_now() - start;
        atomic_store(&noting, false);
        CHECK(slept >= 200 * PLAIT_US);
    }
    plait_cancel(reader);
    CHECK_EQ(plait_join(reader, NULL, SOON()), -ECANCELED);
    return NULL;
}

TEST(a_sub_millisecond_sleep_reaches_the_kernel_as_such)
{
    if (CHECK_TSAN) { /* its signals need epoll_wait, intercepted (poll_epoll.c) */
        CHECK_SKIP("ThreadSanitizer's build sleeps in epoll_wait, in milliseconds");
        return;
    }
    CHECK_EQ(setenv("PLAIT_POLLER", "epoll", 1), 0); /* before any scheduler starts */
    CHECK_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    check_run(sleeps_beside_a_watch, NULL);
    close(fds[0]);
    close(fds[1]);
    if (atomic_load(&pwait2_refused)) {
        CHECK_SKIP("the kernel has no epoll_pwait2: epoll_wait's milliseconds it is");
        return;
    }
    long long ns = atomic_load(&longest);
    CHECK(ns != -2); /* the scheduler slept in the kernel */
    CHECK(ns >= 0 && ns <= 200 * PLAIT_US);
}

/* Where epoll_wait's milliseconds are used (ThreadSanitizer's build, a kernel without
 * epoll_pwait2) the time left is rounded up to them without overflow: a deadline a
 * little short of PLAIT_FOREVER, with the monotonic clock under a millisecond (a time
 * namespace's), overflowed the rounding's addition (undefined; wrapped, a wait that
 * ended at once or never). */
TEST(milliseconds_for_epoll_wait_round_up_and_saturate)
{
    CHECK_EQ(plait__poll_timeout_ms(-1), -1);
    CHECK_EQ(plait__poll_timeout_ms(0), 0);
    CHECK_EQ(plait__poll_timeout_ms(1), 1);
    CHECK_EQ(plait__poll_timeout_ms(PLAIT_MS), 1);
    CHECK_EQ(plait__poll_timeout_ms(PLAIT_MS + 1), 2);
    CHECK_EQ(plait__poll_timeout_ms((int64_t)INT32_MAX * PLAIT_MS), INT32_MAX);
    CHECK_EQ(plait__poll_timeout_ms((int64_t)INT32_MAX * PLAIT_MS + 1), INT32_MAX);
    CHECK_EQ(plait__poll_timeout_ms(INT64_MAX - PLAIT_MS / 2), INT32_MAX);
    CHECK_EQ(plait__poll_timeout_ms(INT64_MAX), INT32_MAX);
}

RUN_TESTS(CASE(a_sub_millisecond_sleep_reaches_the_kernel_as_such),
          CASE(milliseconds_for_epoll_wait_round_up_and_saturate))
