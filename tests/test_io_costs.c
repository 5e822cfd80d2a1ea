/*
 * test_io_costs.c — I/O waits that must not cost what they need not: no pause after
 * races lost, no epoll_ctl for spaced waits (each case failed first; review 110).
 *
 * accept_that_lost_races_does_not_pause: plait__wait_to_retry (fdio.c) pauses, 50 µs
 * doubling to 10 ms, before each wait past eight in one call, to stop a spin on a
 * descriptor that polls ready while its call says EAGAIN.  An accept that loses races
 * to other acceptors (the wait slept until a connection came, another acceptor took it)
 * counted those too: past eight lost races every further wait began with a pause, and
 * a connection that came then waited up to 10 ms for an idle acceptor.  The lost races
 * are made with --wrap=accept4 (the wrapper takes the connection first, as the other
 * acceptor would, and answers EAGAIN); the pauses are counted with
 * --wrap=plait__fd_call_pause, the waits with --wrap=plait__wait_fd_in_call.  Each new
 * connection comes only once the acceptor waits for it, so each of its waits sleeps.
 *
 * spaced_short_waits_make_no_epoll_ctl: the epoll backend checks a registration that
 * waits have trusted unchecked for VERIFY_NS (20 ms) with EPOLL_CTL_MOD when a report
 * answers it (trusted_since).  The time was kept from the first such wait after the
 * last system call, across the time nobody waited: a socket waited on for a moment
 * every 30 ms (a request, its answer soon after) paid an epoll_ctl on every other wait,
 * none before.  Counted with --wrap=epoll_ctl.
 *
 * a_look_that_sees_events_makes_one_enter: an io_uring scheduler about to sleep looks
 * first (ur_look, poll_uring.c).  It handed the kernel its queued requests with an
 * io_uring_enter that waits for nothing, then saw events already due (DEFER_TASKRUN's
 * flag: a read's data had come) and took them with a second enter, where one does
 * both; under load most looks are so.  Counted with --wrap=syscall, in a child (the
 * poller is chosen once per process, and spaced_short_waits_make_no_epoll_ctl asks for
 * epoll: this case runs first).  It tells the two apart only on a DEFER_TASKRUN ring
 * (Linux 6.1 on): on a plain one the kernel posts the completion as the write returns,
 * and the old look's wait, finding nothing else to hand over, made no second enter.
 *
 * a_look_with_a_queued_read_whose_data_is_there_makes_one_enter: the same look with a
 * receive queued whose data came before it went to the kernel.  The look handed it over
 * with an enter that waits for nothing (its poll fires as it is armed: work due), saw
 * that work due and took it with a second enter; now it leaves the queued requests to
 * the wait's one enter, which runs the work due they make at once.  The same child,
 * the same caveat (on a plain ring the work runs as the first enter returns).
 */
#define CHECK_WRAP_SYSCALL
#include "fork_child.h"
#include "helpers.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum { STEALS = 20 };

static atomic_int listen_fd = -1;
static atomic_int steals_left, steals, waits_entered, pauses;
static _Thread_local bool on_acceptor;

int __real_accept4(int fd, struct sockaddr *a, socklen_t *len, int flags);
int __wrap_accept4(int fd, struct sockaddr *a, socklen_t *len, int flags);
int __wrap_accept4(int fd, struct sockaddr *a, socklen_t *len, int flags)
{
    int c = __real_accept4(fd, a, len, flags);
    if (c >= 0 && fd == atomic_load(&listen_fd) && atomic_load(&steals_left) > 0) {
        /* another acceptor took it first */
        close(c);
        atomic_fetch_sub(&steals_left, 1);
        atomic_fetch_add(&steals, 1);
        errno = EAGAIN;
        return -1;
    }
    return c;
}

struct plait__fd_call;
int __real_plait__wait_fd_in_call(const struct plait__fd_call *call, int events,
                                  int64_t deadline, bool tried);
int __wrap_plait__wait_fd_in_call(const struct plait__fd_call *call, int events,
                                  int64_t deadline, bool tried);
int __wrap_plait__wait_fd_in_call(const struct plait__fd_call *call, int events,
                                  int64_t deadline, bool tried)
{
    if (on_acceptor)
        atomic_fetch_add(&waits_entered, 1);
    return __real_plait__wait_fd_in_call(call, events, deadline, tried);
}

int __real_plait__fd_call_pause(const struct plait__fd_call *call, int64_t until);
int __wrap_plait__fd_call_pause(const struct plait__fd_call *call, int64_t until);
int __wrap_plait__fd_call_pause(const struct plait__fd_call *call, int64_t until)
{
    if (on_acceptor)
        atomic_fetch_add(&pauses, 1);
    return __real_plait__fd_call_pause(call, until);
}

static struct sockaddr_un addr;
static socklen_t addr_len;

static int listener(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    int n = snprintf(addr.sun_path + 1, sizeof addr.sun_path - 1, "plait-review-110-%d",
                     (int)getpid());
    addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    CHECK_EQ(bind(fd, (struct sockaddr *)&addr, addr_len), 0);
    CHECK_EQ(listen(fd, 64), 0);
    return fd;
}

static void connect_one(void)
{
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(c >= 0);
    CHECK_EQ(connect(c, (struct sockaddr *)&addr, addr_len), 0);
    close(c);
}

static void wait_until(atomic_int *v, int at_least)
{
    int64_t give_up = SOON();
    while (atomic_load(v) < at_least && plait_now() < give_up)
        usleep(200);
    CHECK(atomic_load(v) >= at_least);
}

static atomic_int accepted;
static atomic_long accept_took;

static void *acceptor(void *arg)
{
    (void)arg;
    on_acceptor = true;
    int64_t start = plait_now();
    int c = plait_accept(atomic_load(&listen_fd), NULL, SOON());
    atomic_store(&accept_took, (long)(plait_now() - start));
    on_acceptor = false;
    atomic_store(&accepted, c);
    return NULL;
}

static void lose_races(void *(*run)(void *))
{
    int fd = listener();
    atomic_store(&steals_left, STEALS);
    atomic_store(&steals, 0);
    atomic_store(&waits_entered, 0);
    atomic_store(&pauses, 0);
    atomic_store(&accepted, -1);
    atomic_store(&listen_fd, fd);
    pthread_t th;
    thread_start(&th, run, NULL);
    for (int i = 0; i < STEALS; i++) {
        wait_until(&waits_entered, i + 1); /* it waits: the connection wakes it */
        connect_one();
        wait_until(&steals, i + 1); /* and another acceptor took it */
    }
    wait_until(&waits_entered, STEALS + 1);
    connect_one(); /* this one is its */
    thread_join(th);
    fprintf(stderr, "  accept after %d lost races: %d pauses, %.1f ms in all\n", STEALS,
            atomic_load(&pauses), (double)atomic_load(&accept_took) / PLAIT_MS);
    int c = atomic_load(&accepted);
    CHECK(c >= 0);
    if (c >= 0)
        close(c);
    CHECK_EQ(atomic_load(&pauses), 0);
    atomic_store(&listen_fd, -1);
    close(fd);
}

TEST(accept_that_lost_races_does_not_pause_thread) { lose_races(acceptor); }

static void *acceptor_coroutine(void *arg)
{
    (void)arg;
    check_run(acceptor, NULL);
    return NULL;
}

TEST(accept_that_lost_races_does_not_pause_coroutine) { lose_races(acceptor_coroutine); }

/* ---- epoll: spaced short waits ---- */

static atomic_int counted_fd = -1, ctls;

int __real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);
int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);
static atomic_int refuse_mod_of = -1; /* the next EPOLL_CTL_MOD of it: ENOMEM */

int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    if (fd == atomic_load(&counted_fd))
        atomic_fetch_add(&ctls, 1);
    int refused = fd;
    if (op == EPOLL_CTL_MOD && atomic_compare_exchange_strong(&refuse_mod_of, &refused, -1)) {
        errno = ENOMEM;
        return -1;
    }
    return __real_epoll_ctl(epfd, op, fd, event);
}

/* Short waits to count, and the rounds that may be spent finding them: a round this
 * machine held up past 10 ms is not counted, and beside the rest of a sanitizer suite
 * on two CPUs all eight rounds of a fixed ten once were.  A registration trusted for a
 * second is checked once at its next report however short the wait (RECHECK_NS in
 * poll_epoll.c): one epoll_ctl per whole second the rounds took is the design (a slow
 * ThreadSanitizer run took past a second once, and met it). */
enum { SPACED_COUNTED = 8, SPACED_ROUNDS_MAX = 200 };

/* Runs once the reader waits (one scheduler: the reader has suspended). */
static void *write_a_byte(void *arg)
{
    CHECK_EQ(write(INT(arg), "x", 1), 1);
    return NULL;
}

static void *spaced_waits(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    char buf[64];
    atomic_store(&counted_fd, sv[0]);
    int extra = 0, counted = 0;
    int64_t began = plait_now();
    for (int round = 0; round < SPACED_ROUNDS_MAX && counted < SPACED_COUNTED; round++) {
        if (round >= 2) /* registered (round 1's wait): from now on, trusted */
            CHECK_EQ(plait_sleep(30 * PLAIT_MS), 0); /* nobody waits meanwhile */
        int before = atomic_load(&ctls);
        int64_t start = plait_now();
        plait_task writer;
        CHECK_EQ(plait_spawn(&writer, write_a_byte, ARG(sv[1])), 0);
        /* nothing there yet: it waits, and the report of the byte answers it */
        CHECK_EQ(plait_read(sv[0], buf, sizeof buf, SOON()), 1);
        CHECK_EQ(plait_join(writer, NULL, SOON()), 0);
        /* a wait this machine held up for VERIFY_NS may be checked: not counted */
        if (round >= 2 && plait_now() - start < 10 * PLAIT_MS) {
            extra += atomic_load(&ctls) - before;
            counted++;
        }
    }
    int rechecks = (int)((plait_now() - began) / PLAIT_SEC);
    fprintf(stderr, "  %d short waits 30 ms apart: %d epoll_ctl (%d allowed: a second's check)\n",
            counted, extra, rechecks);
    CHECK(counted >= SPACED_COUNTED);
    CHECK(extra <= rechecks);
    atomic_store(&counted_fd, -1);
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

/* Run main on a scheduler waiting on epoll (asked for before the first scheduler);
 * skipped where PLAIT_POLLER names another. */
static void run_on_epoll(plait_fn main)
{
    const char *poller = getenv("PLAIT_POLLER");
    if (poller && strcmp(poller, "epoll") != 0) {
        CHECK_SKIP("epoll only (PLAIT_POLLER names another)");
        return;
    }
    CHECK_EQ(setenv("PLAIT_POLLER", "epoll", 1), 0);
    check_run(main, NULL);
}

TEST(spaced_short_waits_make_no_epoll_ctl) { run_on_epoll(spaced_waits); }

/* A reader and a writer of one scheduler wait on one socket, whose registration a
 * plait_close in its stripe of numbers has put in doubt; the reader's event comes, and
 * the watch left for the writer is refused as it is made again (EPOLL_CTL_MOD:
 * ENOMEM).  The writer's wait was left asleep, unwatched, until its deadline (a helper's
 * audit of session 63, reasoned): a refused watch is its waiter's outcome, as for a wait
 * refused as it begins. */
static int rearm_pair[2];
static int wait_outcome[2]; /* the writer's, the reader's */

static void *wait_on_rearm_pair(void *events)
{
    wait_outcome[INT(events) == PLAIT_READABLE] =
        plait_wait_fd(rearm_pair[0], INT(events), plait_deadline_in(5 * PLAIT_SEC));
    return NULL;
}

static void *refused_rearm(void *unused)
{
    (void)unused;
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, rearm_pair), 0);
    static char fill[4096];
    while (write(rearm_pair[0], fill, sizeof fill) > 0) /* no room left to write */
        ;
    plait_task writer, reader;
    CHECK_EQ(plait_spawn(&writer, wait_on_rearm_pair, ARG(PLAIT_WRITABLE)), 0);
    CHECK_EQ(plait_spawn(&reader, wait_on_rearm_pair, ARG(PLAIT_READABLE)), 0);
    CHECK_EQ(plait_yield(), 0); /* (one scheduler: both wait now) */
    /* a plait_close of a number in the socket's stripe: its registration may be gone,
     * so the watch left for the writer is made again (the refused EPOLL_CTL_MOD) */
    int same_stripe = dup3(rearm_pair[1], rearm_pair[0] + 64, O_CLOEXEC);
    CHECK(same_stripe >= 0);
    CHECK_EQ(plait_close(same_stripe), 0);
    atomic_store(&refuse_mod_of, rearm_pair[0]);
    CHECK_EQ(write(rearm_pair[1], "x", 1), 1);
    int64_t start = plait_now();
    CHECK_EQ(plait_join(reader, NULL, SOON()), 0);
    CHECK_EQ(wait_outcome[1], PLAIT_READABLE);
    CHECK_EQ(plait_join(writer, NULL, SOON()), 0);
    CHECK_EQ(wait_outcome[0], -ENOMEM);
    CHECK(plait_now() - start < 4 * PLAIT_SEC); /* not its deadline's 5 s */
    CHECK_EQ(atomic_load(&refuse_mod_of), -1); /* the refusal was met */
    atomic_store(&refuse_mod_of, -1);
    close(rearm_pair[0]);
    close(rearm_pair[1]);
    return NULL;
}

TEST(a_watch_refused_as_it_is_made_again_answers_its_waiter) { run_on_epoll(refused_rearm); }

static atomic_bool counting;
static atomic_int enters;

static long wrapped_syscall(long n, const long a[6])
{
    if (n == __NR_io_uring_enter && atomic_load(&counting))
        atomic_fetch_add(&enters, 1);
    return real_syscall(n, a);
}

static int look_pair_a[2], look_pair_b[2];
static int enters_until_woken = -1;

static void *read_on_a(void *arg)
{
    (void)arg;
    char c;
    CHECK_EQ(plait_read(look_pair_a[0], &c, 1, SOON()), 1);
    atomic_store(&counting, false);
    enters_until_woken = atomic_load(&enters);
    CHECK_EQ(write(look_pair_b[1], "b", 1), 1); /* main's read ends */
    return NULL;
}

static void *look_with_events_due(void *arg)
{
    (void)arg;
    CHECK_EQ(strcmp(plait_io_backend(), "io_uring"), 0);
    plait_task reader;
    CHECK_EQ(plait_spawn(&reader, read_on_a, NULL), 0);
    /* main sleeps: the reader's receive goes to the kernel, which holds it */
    CHECK_EQ(plait_sleep(PLAIT_MS), 0);
    CHECK_EQ(write(look_pair_a[1], "a", 1), 1); /* its completion is due (task work) */
    atomic_store(&counting, true);
    char c;
    /* main's receive is queued, the reader's completion due: the scheduler looks */
    CHECK_EQ(plait_read(look_pair_b[0], &c, 1, SOON()), 1);
    CHECK_EQ(plait_join(reader, NULL, SOON()), 0);
    CHECK_EQ(enters_until_woken, 1);
    return NULL;
}

/* fn on a scheduler with an io_uring poller, in a child (see above); skipped where
 * the kernel gives no ring */
static void run_on_io_uring_in_a_child(void *(*fn)(void *))
{
    const char *why = check_no_io_uring_why();
    if (why) {
        CHECK_SKIP(why);
        return;
    }
    pid_t pid = fork_child(false);
    if (pid == 0) {
        CHECK_EQ(setenv("PLAIT_POLLER", "io_uring", 1), 0);
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, look_pair_a), 0);
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, look_pair_b), 0);
        check_run(fn, NULL);
        child_exit();
    }
    reap_ok(pid, 20);
}

TEST(a_look_that_sees_events_makes_one_enter)
{
    run_on_io_uring_in_a_child(look_with_events_due);
}

static int enters_until_read = -1;

static void *read_what_is_there(void *arg)
{
    (void)arg;
    char c[2];
    CHECK_EQ(write(look_pair_a[1], "x", 1), 1);
    /* the scheduler watches the socket, and a read empties it: the next read goes
     * straight to the ring */
    CHECK_EQ(plait_wait_fd(look_pair_a[0], PLAIT_READABLE, SOON()), PLAIT_READABLE);
    CHECK_EQ(plait_read(look_pair_a[0], c, 2, SOON()), 1);
    CHECK_EQ(write(look_pair_a[1], "a", 1), 1); /* there before the receive goes */
    atomic_store(&counting, true);
    /* its receive is queued, and nobody else is ready to run: the scheduler looks */
    CHECK_EQ(plait_read(look_pair_a[0], c, 1, SOON()), 1);
    atomic_store(&counting, false);
    enters_until_read = atomic_load(&enters);
    return NULL;
}

static void *look_with_a_queued_read_whose_data_is_there(void *arg)
{
    (void)arg;
    CHECK_EQ(strcmp(plait_io_backend(), "io_uring"), 0);
    plait_task reader;
    CHECK_EQ(plait_spawn(&reader, read_what_is_there, NULL), 0);
    CHECK_EQ(plait_join(reader, NULL, SOON()), 0);
    CHECK_EQ(enters_until_read, 1);
    return NULL;
}

TEST(a_look_with_a_queued_read_whose_data_is_there_makes_one_enter)
{
    run_on_io_uring_in_a_child(look_with_a_queued_read_whose_data_is_there);
}

RUN_TESTS(CASE(a_look_that_sees_events_makes_one_enter), /* (first: see above) */
          CASE(a_look_with_a_queued_read_whose_data_is_there_makes_one_enter), /* (as first) */
          CASE(spaced_short_waits_make_no_epoll_ctl),
          CASE(a_watch_refused_as_it_is_made_again_answers_its_waiter),
          CASE(accept_that_lost_races_does_not_pause_thread),
          CASE(accept_that_lost_races_does_not_pause_coroutine))
