/* test_poller_look.c — a scheduler that waits on descriptors looks before it sleeps in
 * its poller where the poller's events are seen in memory (io_uring: a completion, or
 * DEFER_TASKRUN's flag for work due): an event that comes during the look is taken
 * without a sleep in the kernel (sched.c park, poll_uring.c ur_look).  On epoll, whose
 * readiness takes a system call to see, the scheduler sleeps in its poller at once.
 * (Failed first on io_uring: the scheduler slept in the ring at once, and the byte
 * that came meanwhile woke it through the kernel, tens of microseconds on a VM.)
 *
 * Built with -Wl,--wrap=plait__spin_yield and -Wl,--wrap=plait__poller_poll: the look's
 * first yield writes the byte the scheduler's one coroutine waits for, from the
 * scheduler's own thread, so every step is deterministic; the poller's waits that may
 * sleep (any deadline but a past one) are counted. */
#include "helpers.h"

#include "../src/internal.h"

#include <sys/socket.h>
#include <unistd.h>

bool __real_plait__spin_yield(plait__spin *spin);
bool __wrap_plait__spin_yield(plait__spin *spin);
void __real_plait__poller_poll(plait__sched *s, int64_t deadline, int64_t now);
void __wrap_plait__poller_poll(plait__sched *s, int64_t deadline, int64_t now);

enum { OFF, ARMED, WRITTEN };

static struct {
    atomic_int state;   /* OFF, then ARMED around the read, WRITTEN once the look wrote */
    int write_fd;       /* the byte goes in here */
    atomic_int sleeps;  /* poller waits that may sleep, while armed */
} pl;

bool __wrap_plait__spin_yield(plait__spin *spin)
{
    int armed = ARMED;
    if (atomic_compare_exchange_strong(&pl.state, &armed, WRITTEN))
        CHECK_EQ(write(pl.write_fd, "x", 1), 1);
    return __real_plait__spin_yield(spin);
}

void __wrap_plait__poller_poll(plait__sched *s, int64_t deadline, int64_t now)
{
    if (atomic_load(&pl.state) != OFF && deadline != 0)
        atomic_fetch_add(&pl.sleeps, 1);
    __real_plait__poller_poll(s, deadline, now);
}

static void *read_one_main(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    pl.write_fd = sv[1];
    atomic_store(&pl.sleeps, 0);
    bool uring = strcmp(plait_io_backend(), "io_uring") == 0;
    char c = 0;
    atomic_store(&pl.state, ARMED);
    /* io_uring: the byte comes during the look, and is read at once; epoll: nothing
     * looks, so nothing comes, and the read sleeps to its deadline (one far enough off
     * that a stall before the wait, the poller's making included, does not pass it: a
     * read past its deadline ends without sleeping) */
    ssize_t n = plait_read(sv[0], &c, 1, plait_deadline_in((uring ? 2000 : 500) * PLAIT_MS));
    int state = atomic_exchange(&pl.state, OFF);
    if (uring) {
        CHECK_EQ(n, 1);
        CHECK_EQ(c, 'x');
        CHECK_EQ(state, WRITTEN);
        CHECK_EQ(atomic_load(&pl.sleeps), 0);
    } else {
        CHECK_EQ(n, -ETIMEDOUT);
        CHECK_EQ(state, ARMED);
        CHECK(atomic_load(&pl.sleeps) >= 1);
    }
    CHECK_EQ(plait_close(sv[0]), 0);
    CHECK_EQ(plait_close(sv[1]), 0);
    return NULL;
}

TEST(an_event_during_the_look_is_taken_without_a_sleep)
{
    printf("  poller: %s\n", plait_io_backend());
    check_run(read_one_main, NULL);
}

RUN_TESTS(CASE(an_event_during_the_look_is_taken_without_a_sleep))
