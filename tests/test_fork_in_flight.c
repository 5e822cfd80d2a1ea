/*
 * test_fork_in_flight.c — what was in flight when a plain fork() came (review 117): a
 * wake-up another thread had decided but not yet posted (the child's coroutine waited
 * for ever, past its deadline), a read in the parent's io_uring ring in a child that
 * gets no ring (-EBADF on an open descriptor), a seccomp trap inside the fork handlers
 * (SIGSYS blocked: the child was killed), wake-ups queued in the scheduler's inbox.
 * Each child reports through its exit status and is reaped within a limit.  And a
 * wait the child's poller refused to take again
 * (told -EBADF, not the refusal); reads in the parent's ring that the child's took
 * inside fork(), the parent's bytes lost.
 */
#define CHECK_WRAP_SYSCALL
#include "fork_child.h"

#include "../src/internal.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/io_uring.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <ucontext.h>
#include <unistd.h>

/* io_uring_setup refused (ENOMEM, as past RLIMIT_MEMLOCK) in a child of ring_parent. */
static atomic_int ring_parent;

static long wrapped_syscall(long n, const long a[6])
{
    if (n == __NR_io_uring_setup) {
        int parent = atomic_load(&ring_parent);
        if (parent && getpid() != parent) {
            errno = ENOMEM;
            return -1;
        }
    }
    return real_syscall(n, a);
}

void __real_plait__wakeups_deliver(plait__wakeups *w);
void __wrap_plait__wakeups_deliver(plait__wakeups *w);

/* Where a thread that hands an element over stops, until released: just before it
 * delivers the wake-ups it owes (the waiters claimed, their outcome written, the locks
 * let go), or in its copy of the element (an int; under the channel's lock, after its
 * claim of the receiver's wait, before the outcome is written). */
enum { PARK_NOWHERE, PARK_IN_DELIVERY, PARK_IN_COPY };
static _Thread_local int park_at;
static atomic_int parked, released;

static void wait_flag(atomic_int *flag)
{
    int64_t end = plait_deadline_in(20 * PLAIT_SEC);
    while (!atomic_load(flag) && plait_now() < end)
        sched_yield();
    CHECK(atomic_load(flag));
}

static void park(void)
{
    park_at = PARK_NOWHERE;
    atomic_store(&parked, 1);
    wait_flag(&released);
}

void __wrap_plait__wakeups_deliver(plait__wakeups *w)
{
    if (park_at == PARK_IN_DELIVERY && w->n > 0)
        park();
    __real_plait__wakeups_deliver(w);
}

void *__real_memcpy(void *dst, const void *src, size_t n);
void *__wrap_memcpy(void *dst, const void *src, size_t n);
void *__wrap_memcpy(void *dst, const void *src, size_t n)
{
    if (park_at == PARK_IN_COPY && n == sizeof(int))
        park();
    return __real_memcpy(dst, src, n);
}
CHECK_WRAP_ASAN_MEMCPY

/* ---- a fork from a coroutine whose siblings wait on I/O, a timer, a channel ---- */

static int pipe_fds[2];
static plait_chan *chan;
static atomic_int siblings_done;

static void *read_sibling(void *arg)
{
    (void)arg;
    char c = 0;
    CHECK_EQ(plait_read(pipe_fds[0], &c, 1, SOON()), 1);
    atomic_fetch_add(&siblings_done, 1);
    return NULL;
}

static void *sleep_sibling(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_sleep(100 * PLAIT_MS), 0);
    atomic_fetch_add(&siblings_done, 1);
    return NULL;
}

static void *chan_sibling(void *arg)
{
    (void)arg;
    int v = 0;
    CHECK_EQ(plait_chan_recv(chan, &v, SOON()), 0);
    CHECK_EQ(v, (int)getpid());
    atomic_fetch_add(&siblings_done, 1);
    return NULL;
}

static void feed_and_join(plait_task *t, int n)
{
    char c = (char)(getpid() & 0x7f);
    CHECK_EQ(plait_write(pipe_fds[1], &c, 1, SOON()), 1);
    int v = (int)getpid();
    CHECK_EQ(plait_chan_send(chan, &v, SOON()), 0);
    for (int i = 0; i < n; i++)
        CHECK_EQ(plait_join(t[i], NULL, SOON()), 0);
    CHECK_EQ(atomic_load(&siblings_done), n);
}

static void *forks_beside_waits(void *arg)
{
    int depth = INT(arg);
    CHECK_EQ(pipe2(pipe_fds, O_NONBLOCK), 0);
    CHECK_EQ(plait_chan_create(&chan, sizeof(int), 0), 0);
    atomic_store(&siblings_done, 0);
    plait_task t[3];
    CHECK_EQ(plait_spawn(&t[0], read_sibling, NULL), 0);
    CHECK_EQ(plait_spawn(&t[1], sleep_sibling, NULL), 0);
    CHECK_EQ(plait_spawn(&t[2], chan_sibling, NULL), 0);
    CHECK_EQ(plait_yield(), 0);
    CHECK_EQ(plait_yield(), 0);
    pid_t pid = fork_child(false);
    if (pid == 0) {
        if (depth > 0) { /* the child forks again, from the same coroutine */
            pid_t g = fork_child(false);
            if (g == 0) {
                feed_and_join(t, 3);
                child_exit();
            }
            reap_ok(g, 20);
            /* the pipe's byte went to the grandchild's reader, or to ours: give ours one */
        }
        feed_and_join(t, 3);
        child_exit();
    }
    reap_ok(pid, 20);
    feed_and_join(t, 3);
    plait_chan_destroy(chan);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return NULL;
}

TEST(fork_beside_io_timer_and_channel_waits)
{
    CHECK_EQ(plait_run(forks_beside_waits, ARG(0), NULL), 0);
}

TEST(grandchild_beside_io_timer_and_channel_waits)
{
    CHECK_EQ(plait_run(forks_beside_waits, ARG(1), NULL), 0);
}

/* ---- a fork while another thread hands an element to a coroutine ---- */

static plait_chan *handoff;

/* What a wait that ended at its deadline returns (a value: a code would be a failure,
 * which a join reports as its own -ETIMEDOUT would be). */
enum { ENDED_AT_ITS_DEADLINE = 1000 };

/* t's join: its failure, or the int it returned. */
static int joined(plait_task t, int64_t deadline)
{
    void *v = NULL;
    int r = plait_join(t, &v, deadline);
    return r < 0 ? r : INT(v);
}

/* Fork while the other thread is parked: the child joins t and checks that it returned
 * in_child.  Then the parent lets the thread go on and joins t: what it returned here. */
static int fork_then_let_go(plait_task t, int in_child)
{
    pid_t pid = fork_child(false);
    if (pid == 0) {
        CHECK_EQ(joined(t, plait_deadline_in(5 * PLAIT_SEC)), in_child);
        child_exit();
    }
    reap_ok(pid, 20);
    atomic_store(&released, 1);
    return joined(t, SOON());
}

static void *receive_or_report(void *arg)
{
    (void)arg;
    int v = 0;
    int r = plait_chan_recv(handoff, &v, plait_deadline_in(200 * PLAIT_MS));
    return ARG(r == 0 ? v : r == -ETIMEDOUT ? ENDED_AT_ITS_DEADLINE : r);
}

static void *send_parked(void *arg)
{
    park_at = INT(arg);
    int v = 42;
    CHECK_EQ(plait_chan_send(handoff, &v, SOON()), 0);
    return NULL;
}

/* A coroutine waits to receive; a thread sends, and stops where arg says; a sibling of
 * the receiver forks meanwhile. */
enum { FORK_PAST_THE_DEADLINE = 0x100 }; /* with a place: the receiver's timer has fired */

static void *fork_during_a_hand_over(void *arg)
{
    int where = INT(arg) & ~FORK_PAST_THE_DEADLINE;
    atomic_store(&parked, 0);
    atomic_store(&released, 0);
    CHECK_EQ(plait_chan_create(&handoff, sizeof(int), 0), 0);
    plait_task receiver;
    CHECK_EQ(plait_spawn(&receiver, receive_or_report, NULL), 0);
    CHECK_EQ(plait_yield(), 0); /* it waits in the channel */
    pthread_t sender;
    CHECK_EQ(pthread_create(&sender, NULL, send_parked, ARG(where)), 0);
    wait_flag(&parked);
    if (INT(arg) & FORK_PAST_THE_DEADLINE) /* its timer found it claimed, and was dropped */
        CHECK_EQ(plait_sleep(300 * PLAIT_MS), 0);
    /* PARK_IN_DELIVERY: decided before the fork, its wake-up not sent in the child, the
     * receive must still end there, with the element both processes have.
     * PARK_IN_COPY: the channel was in use by another thread at the fork (its lock held
     * for ever in the child): the receive ends at its deadline there, saying it
     * received nothing, and the scheduler goes on. */
    CHECK_EQ(fork_then_let_go(receiver, where == PARK_IN_DELIVERY ? 42 : ENDED_AT_ITS_DEADLINE),
             42);
    pthread_join(sender, NULL);
    CHECK_EQ(plait_chan_destroy(handoff), 0);
    return NULL;
}

/* A thread hands an element to a coroutine waiting in a channel: it claims the
 * coroutine's wait under the channel's lock, lets the lock go, then posts the wake-up
 * to the coroutine's scheduler.  A fork from another coroutine of that scheduler in
 * between gives the child a coroutine whose wait is decided but whose wake-up never
 * comes there: its own deadline's timer finds it claimed and leaves it, so it waited
 * for ever, though API.md says such a wait ends at its deadline at the latest. */
TEST(fork_while_a_wake_up_is_on_its_way)
{
    CHECK_EQ(plait_run(fork_during_a_hand_over, ARG(PARK_IN_DELIVERY), NULL), 0);
}

/* The fork comes between the sender's claim of the receiver's wait and its writing of
 * the outcome (the element's copy, under the channel's lock).  The child made every
 * claimed waiter of the forking scheduler ready, and the receiver spun for ever on the
 * channel's lock as it unlinked its wait, the child's scheduler with it.  Only a waiter
 * whose outcome was written (its signal made) is made ready now; this one's claim,
 * whose maker is gone, is given back, and its deadline ends it without the channel's
 * lock (it once waited past its deadline, for ever). */
TEST(fork_while_a_claim_is_undecided)
{
    CHECK_EQ(plait_run(fork_during_a_hand_over, ARG(PARK_IN_COPY), NULL), 0);
}

/* The same once the receiver's deadline has passed in the parent: its timer, finding
 * the wait claimed, was dropped, so the claim given back in the child ends the wait at
 * once, as that timer would have (a review's reproducer waited for ever). */
TEST(fork_while_a_claim_is_undecided_past_its_deadline)
{
    CHECK_EQ(plait_run(fork_during_a_hand_over, ARG(PARK_IN_COPY | FORK_PAST_THE_DEADLINE), NULL),
             0);
}

/* A coroutine waits to send on a full channel; a thread receives from it and stops in
 * its copy of the buffered element, under the channel's lock, before it takes the
 * sender's wait; a sibling forks meanwhile.  In the child that lock is held for ever:
 * as the sender's wait ended it spun on it to unlink its node, and the child's
 * scheduler with it (an audit of session 61: an event's waiter beside a thread asking
 * whether it was set hung 72 children in 100).  Its wait ends without that lock
 * instead, leaving the channel as it was (a copy the child must not use): still waiting
 * at the fork (a send, a select), or already decided there but not yet run (cancelled,
 * timed out, a select woken through its other channel: a review's reproducers). */
enum held_wait { SENDS, SELECTS, SEND_CANCELLED, SEND_TIMED_OUT, SELECT_WOKEN_ELSEWHERE };
enum { SENT_ELSEWHERE = 5 };
static plait_chan *quiet; /* a select's second case */

static void *send_or_report(void *how)
{
    int v = 7, got = 0, r;
    int64_t deadline = plait_deadline_in((INT(how) == SEND_TIMED_OUT ? 20 : 200) * PLAIT_MS);
    if (INT(how) == SELECTS || INT(how) == SELECT_WOKEN_ELSEWHERE) {
        plait_select_case cases[2] = {{handoff, PLAIT_SEND, &v, 0}, {quiet, PLAIT_RECV, &got, 0}};
        r = plait_select(cases, 2, deadline);
        r = r == 0 ? cases[0].result : r == 1 ? 100 + got : r;
    } else {
        r = plait_chan_send(handoff, &v, deadline);
    }
    return r == -ETIMEDOUT ? ARG(ENDED_AT_ITS_DEADLINE) : r < 0 ? PLAIT_FAIL(r) : ARG(r);
}

static void *receive_parked(void *arg)
{
    (void)arg;
    park_at = PARK_IN_COPY;
    int v = 0;
    CHECK_EQ(plait_chan_recv(handoff, &v, SOON()), 0);
    CHECK_EQ(v, 1);
    return NULL;
}

static void *fork_while_a_waits_object_is_held(void *how_arg)
{
    enum held_wait how = INT(how_arg);
    atomic_store(&parked, 0);
    atomic_store(&released, 0);
    CHECK_EQ(plait_chan_create(&handoff, sizeof(int), 1), 0);
    CHECK_EQ(plait_chan_create(&quiet, sizeof(int), 0), 0);
    int one = 1;
    CHECK_EQ(plait_chan_send(handoff, &one, SOON()), 0); /* full */
    plait_task sender;
    CHECK_EQ(plait_spawn(&sender, send_or_report, how_arg), 0);
    int64_t spawned = plait_now();
    CHECK_EQ(plait_yield(), 0); /* it waits in the channel */
    pthread_t receiver;
    CHECK_EQ(pthread_create(&receiver, NULL, receive_parked, NULL), 0);
    wait_flag(&parked);
    int in_child = ENDED_AT_ITS_DEADLINE;
    if (how == SEND_CANCELLED) {
        CHECK_EQ(plait_cancel(sender), 0); /* decided here: the sender is ready */
        in_child = -ECANCELED;
    } else if (how == SEND_TIMED_OUT) {
        while (plait_now() < spawned + 40 * PLAIT_MS) {
        }
        CHECK_EQ(plait_yield(), 0); /* its timer fires: ready behind this coroutine */
    } else if (how == SELECT_WOKEN_ELSEWHERE) {
        int five = SENT_ELSEWHERE;
        CHECK_EQ(plait_chan_send(quiet, &five, SOON()), 0); /* to the waiting select */
        in_child = 100 + SENT_ELSEWHERE;
    }
    int sent = fork_then_let_go(sender, in_child);
    if (how == SENDS || how == SELECTS)
        CHECK(sent == 0 || sent == ENDED_AT_ITS_DEADLINE); /* taken, or too late */
    else
        CHECK_EQ(sent, in_child);
    pthread_join(receiver, NULL);
    int left = 0;
    if (sent == 0)
        CHECK_EQ(plait_chan_recv(handoff, &left, SOON()), 0);
    CHECK_EQ(plait_chan_destroy(handoff), 0);
    CHECK_EQ(plait_chan_destroy(quiet), 0);
    return NULL;
}

TEST(fork_while_another_thread_holds_a_waits_object)
{
    for (int how = SENDS; how <= SELECT_WOKEN_ELSEWHERE; how++)
        CHECK_EQ(plait_run(fork_while_a_waits_object_is_held, ARG(how), NULL), 0);
}

/* The child's look at the locks of its waits comes after plait's own handlers have let
 * go of what they took: a wait on a group or a once (whose locks the fork's prepare
 * takes) is not stranded, as its lock is free once the handlers are done.  Marked
 * stranded, its end by deadline would have left its node linked in the group or the
 * once's bucket, for their next wake-up to find on a stack no longer its. */
static plait_group *held_group;
static plait_once held_once = PLAIT_ONCE_INIT;

static void *sleeps_a_while(void *arg)
{
    (void)arg;
    return PLAIT_FAIL(plait_sleep(300 * PLAIT_MS));
}

static int initialisations;

static int initialises_slowly(void *arg)
{
    (void)arg;
    initialisations++;
    return plait_sleep(300 * PLAIT_MS);
}

static void *waits_for_the_group(void *arg)
{
    (void)arg;
    return PLAIT_FAIL(plait_group_wait(held_group, SOON()));
}

static void *calls_the_once(void *arg)
{
    (void)arg;
    return PLAIT_FAIL(plait_once_call(&held_once, initialises_slowly, NULL, SOON()));
}

static bool stranded(plait_task t)
{
    plait__waiter *w = t.future->coro ? t.future->coro->waiter : NULL;
    return w && w->node.same_next == PLAIT__STRANDED;
}

static void *fork_beside_waits_on_locks_plait_takes(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_group_create(&held_group), 0);
    CHECK_EQ(plait_group_spawn(held_group, NULL, sleeps_a_while, NULL), 0);
    plait_task group_waiter, initialiser, once_waiter;
    CHECK_EQ(plait_spawn(&group_waiter, waits_for_the_group, NULL), 0);
    CHECK_EQ(plait_spawn(&initialiser, calls_the_once, NULL), 0);
    CHECK_EQ(plait_spawn(&once_waiter, calls_the_once, NULL), 0);
    CHECK_EQ(plait_yield(), 0); /* each waits, or sleeps in the once's initialiser */
    pid_t pid = fork_child(false);
    if (pid == 0) {
        CHECK(!stranded(group_waiter));
        CHECK(!stranded(once_waiter));
        CHECK_EQ(plait_join(group_waiter, NULL, SOON()), 0);
        CHECK_EQ(plait_join(initialiser, NULL, SOON()), 0);
        CHECK_EQ(plait_join(once_waiter, NULL, SOON()), 0);
        CHECK_EQ(initialisations, 1); /* the forking scheduler's, gone on with */
        CHECK_EQ(plait_group_destroy(held_group), 0);
        child_exit();
    }
    reap_ok(pid, 20);
    CHECK_EQ(plait_join(group_waiter, NULL, SOON()), 0);
    CHECK_EQ(plait_join(initialiser, NULL, SOON()), 0);
    CHECK_EQ(plait_join(once_waiter, NULL, SOON()), 0);
    CHECK_EQ(initialisations, 1);
    CHECK_EQ(plait_group_destroy(held_group), 0);
    return NULL;
}

TEST(fork_beside_waits_on_locks_plait_takes_strands_none)
{
    CHECK_EQ(plait_run(fork_beside_waits_on_locks_plait_takes, NULL, NULL), 0);
}

/* ---- a fork with several wake-ups waiting in the scheduler's inbox ---- */

enum { QUEUED = 3 };
static atomic_int all_sent;

static void *send_queued(void *arg)
{
    (void)arg;
    for (int i = 1; i <= QUEUED; i++)
        CHECK_EQ(plait_chan_send(handoff, &i, SOON()), 0);
    atomic_store(&all_sent, 1);
    return NULL;
}

/* The receivers each got one of 1..QUEUED, none twice. */
static void join_queued(plait_task *t)
{
    int seen = 0;
    for (int i = 0; i < QUEUED; i++) {
        void *v = NULL;
        CHECK_EQ(plait_join(t[i], &v, plait_deadline_in(5 * PLAIT_SEC)), 0);
        CHECK(INT(v) >= 1 && INT(v) <= QUEUED);
        seen |= 1 << INT(v);
    }
    CHECK_EQ(seen, ((1 << QUEUED) - 1) << 1);
}

/* Coroutines wait to receive; a thread hands each an element while their scheduler is
 * busy in this coroutine, which does not yield, so the wake-ups wait in the inbox, linked
 * through the waiters (sched.c); then this coroutine forks.  The child's fork handling
 * walks that list (plait__sched_after_fork), and both processes' drains take all of it. */
static void *queue_wake_ups_then_fork(void *arg)
{
    (void)arg;
    atomic_store(&all_sent, 0);
    CHECK_EQ(plait_chan_create(&handoff, sizeof(int), 0), 0);
    plait_task receivers[QUEUED];
    for (int i = 0; i < QUEUED; i++)
        CHECK_EQ(plait_spawn(&receivers[i], receive_or_report, NULL), 0);
    CHECK_EQ(plait_yield(), 0); /* they wait in the channel */
    pthread_t sender;
    CHECK_EQ(pthread_create(&sender, NULL, send_queued, NULL), 0);
    wait_flag(&all_sent); /* no yield: nothing is drained meanwhile */
    plait__sched *s = plait__tls_sched;
    int queued = 0;
    plait__spin_lock(&s->inbox.lock);
    for (plait__waiter *w = s->inbox.wake_head; w; w = w->inbox_next)
        queued++;
    plait__spin_unlock(&s->inbox.lock);
    CHECK_EQ(queued, QUEUED);
    pid_t pid = fork_child(false);
    if (pid == 0) {
        join_queued(receivers);
        child_exit();
    }
    reap_ok(pid, 20);
    join_queued(receivers);
    pthread_join(sender, NULL);
    CHECK_EQ(plait_chan_destroy(handoff), 0);
    return NULL;
}

TEST(fork_with_wake_ups_in_the_inbox)
{
    CHECK_EQ(plait_run(queue_wake_ups_then_fork, NULL, NULL), 0);
}

/* ---- a read in the kernel's ring at a fork, in a child that cannot have a ring ---- */

static int ring_pipe[2];

static void *read_one(void *arg)
{
    (void)arg;
    char c = 0;
    ssize_t n = plait_read(ring_pipe[0], &c, 1, SOON());
    CHECK_EQ(n, 1);
    CHECK_EQ(c, 'x');
    return ARG(n);
}

static void *fork_with_a_read_in_the_ring(void *arg)
{
    (void)arg;
    CHECK_EQ(pipe2(ring_pipe, O_NONBLOCK | O_CLOEXEC), 0);
    plait_task reader;
    CHECK_EQ(plait_spawn(&reader, read_one, NULL), 0);
    CHECK_EQ(plait_yield(), 0); /* its read is in the ring (or waits on the poller) */
    CHECK_EQ(plait_yield(), 0);
    atomic_store(&ring_parent, getpid());
    pid_t pid = fork_child(false);
    if (pid == 0) {
        /* the child's poller is epoll (no ring to be had): the read goes on there */
        CHECK_EQ(write(ring_pipe[1], "x", 1), 1);
        void *v = NULL;
        CHECK_EQ(plait_join(reader, &v, SOON()), 0);
        CHECK_EQ(INT(v), 1);
        child_exit();
    }
    reap_ok(pid, 20);
    atomic_store(&ring_parent, 0);
    CHECK_EQ(write(ring_pipe[1], "x", 1), 1);
    CHECK_EQ(plait_join(reader, NULL, SOON()), 0);
    close(ring_pipe[0]);
    close(ring_pipe[1]);
    return NULL;
}

/* A coroutine's plait_read of a pipe is a read in the scheduler's io_uring ring.  A
 * fork from another coroutine of the scheduler makes the child a poller of its own;
 * where the child gets no ring (io_uring_setup refused: past RLIMIT_MEMLOCK, which the
 * parent's rings count against too before Linux 5.12) it falls back to epoll, which
 * takes no reads, and the read in flight ended with -EBADF on an open descriptor, a
 * code plait_read does not give for one. */
TEST(a_read_in_the_ring_at_a_fork_whose_child_gets_no_ring)
{
    CHECK_EQ(plait_run(fork_with_a_read_in_the_ring, NULL, NULL), 0);
    check_on_io_uring(); /* or no read was in a ring at the fork */
}

/* ---- reads in the parent's ring at a fork stay the parent's ---- */

/* More reads than the child's ring holds (512 requests): re-made there, they went to
 * the kernel from inside fork() as the ring filled, and took the bytes. */
enum { RING_READERS = 600 };
static int ring_pipes[RING_READERS][2];
static atomic_int ring_readers_waiting;

static void *read_one_byte_of_its_pipe(void *arg)
{
    int i = INT(arg);
    char c[4] = {0};
    /* nothing there: the next read waits (on io_uring, a read in the ring) */
    CHECK_EQ(plait_read(ring_pipes[i][0], c, 1, plait_deadline_in(0)), -ETIMEDOUT);
    atomic_fetch_add(&ring_readers_waiting, 1);
    ssize_t n = plait_read(ring_pipes[i][0], c, sizeof c, SOON());
    return ARG(n == 1 && c[0] == 'x');
}

static void *fork_with_many_reads_in_the_ring(void *arg)
{
    (void)arg;
    plait_task readers[RING_READERS];
    plait_spawn_options opts = {.stack_size = 16 * 1024};
    for (int i = 0; i < RING_READERS; i++)
        CHECK_EQ(plait_spawn_opts(&readers[i], read_one_byte_of_its_pipe, ARG(i), &opts), 0);
    int64_t until = SOON();
    while (atomic_load(&ring_readers_waiting) < RING_READERS && plait_now() < until)
        CHECK_EQ(plait_yield(), 0);
    CHECK_EQ(plait_yield(), 0); /* every second read made */
    for (int i = 0; i < RING_READERS; i++)
        CHECK_EQ(write(ring_pipes[i][1], "x", 1), 1);
    pid_t pid = fork_child(false);
    if (pid == 0)
        child_exit(); /* as a fork-then-exec: the child reads nothing */
    reap_ok(pid, 20);
    int got = 0;
    for (int i = 0; i < RING_READERS; i++) {
        void *v = NULL;
        CHECK_EQ(plait_join(readers[i], &v, SOON()), 0);
        got += INT(v);
    }
    CHECK_EQ(got, RING_READERS);
    return NULL;
}

TEST(reads_in_the_ring_at_a_fork_stay_the_parents)
{
    struct rlimit rl;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rlim_t want = 2 * RING_READERS + 200;
    if (rl.rlim_cur < want && rl.rlim_max >= want) {
        rl.rlim_cur = want;
        CHECK_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    if (rl.rlim_cur < want) {
        CHECK_SKIP("RLIMIT_NOFILE's hard limit is below 1,400 descriptors");
        return;
    }
    for (int i = 0; i < RING_READERS; i++)
        CHECK_EQ(pipe2(ring_pipes[i], O_NONBLOCK | O_CLOEXEC), 0);
    CHECK_EQ(plait_run(fork_with_many_reads_in_the_ring, NULL, NULL), 0);
    for (int i = 0; i < RING_READERS; i++) {
        close(ring_pipes[i][0]);
        close(ring_pipes[i][1]);
    }
    check_on_io_uring(); /* or no read was in a ring at the fork */
}

/* ---- a wait the child's poller cannot take again ---- */

int __real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);
int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);

/* In a child of ring_parent, adding refuse_fd to an epoll set fails with ENOSPC (past
 * fs.epoll.max_user_watches). */
static atomic_int refuse_fd = -1;

int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    int parent = atomic_load(&ring_parent);
    if (op == EPOLL_CTL_ADD && fd == atomic_load(&refuse_fd) && parent &&
        getpid() != parent) {
        errno = ENOSPC;
        return -1;
    }
    return __real_epoll_ctl(epfd, op, fd, event);
}

static void *wait_readable(void *arg)
{
    (void)arg;
    return ARG(plait_wait_fd(ring_pipe[0], PLAIT_READABLE, SOON()));
}

static void *fork_with_a_wait_the_child_cannot_arm(void *arg)
{
    (void)arg;
    CHECK_EQ(pipe2(ring_pipe, O_NONBLOCK | O_CLOEXEC), 0);
    plait_task waiter;
    CHECK_EQ(plait_spawn(&waiter, wait_readable, NULL), 0);
    CHECK_EQ(plait_yield(), 0); /* it waits on the poller */
    atomic_store(&refuse_fd, ring_pipe[0]);
    atomic_store(&ring_parent, getpid()); /* the child gets no ring: epoll there */
    pid_t pid = fork_child(false);
    if (pid == 0) {
        CHECK_EQ(plait_join(waiter, NULL, SOON()), -ENOSPC); /* the wait's outcome */
        child_exit();
    }
    reap_ok(pid, 20);
    atomic_store(&ring_parent, 0);
    atomic_store(&refuse_fd, -1);
    CHECK_EQ(write(ring_pipe[1], "x", 1), 1);
    void *v = NULL;
    CHECK_EQ(plait_join(waiter, &v, SOON()), 0);
    CHECK(INT(v) > 0 && (INT(v) & PLAIT_READABLE));
    close(ring_pipe[0]);
    close(ring_pipe[1]);
    return NULL;
}

/* The child's poller takes again the waits the parent's had.  Where one is refused
 * (no room for another watch: ENOSPC, ENOMEM), its waiter was told -EBADF, a code that
 * says the descriptor was not open; it gets the refusal's own code now, as a wait
 * refused in the parent does. */
TEST(a_wait_the_child_s_poller_refuses)
{
    CHECK_EQ(plait_run(fork_with_a_wait_the_child_cannot_arm, NULL, NULL), 0);
}

/* ---- a sandbox that traps a system call (SIGSYS) the child's fork handler makes ---- */

#if defined(__x86_64__)
/* The handler of the trap: the call fails with ENOSYS, as a sandbox that emulates or
 * refuses calls through SECCOMP_RET_TRAP has it. */
static void refuse_trapped(int sig, siginfo_t *info, void *uc)
{
    (void)sig;
    (void)info;
    ((ucontext_t *)uc)->uc_mcontext.gregs[REG_RAX] = -ENOSYS;
}

/* Trap io_uring_setup on the calling thread (and in its forked children). */
static int trap_ring_setup(void)
{
    struct sigaction sa = {.sa_sigaction = refuse_trapped, .sa_flags = SA_SIGINFO};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) != 0)
        return -errno;
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
        return -errno;
    return 0;
}

static void *fork_under_the_trap(void *arg)
{
    (void)arg;
    CHECK_EQ(pipe2(ring_pipe, O_NONBLOCK | O_CLOEXEC), 0);
    plait_task reader;
    CHECK_EQ(plait_spawn(&reader, read_one, NULL), 0);
    CHECK_EQ(plait_yield(), 0); /* the scheduler has its poller (a ring, where allowed) */
    CHECK_EQ(plait_yield(), 0);
    CHECK_EQ(trap_ring_setup(), 0);
    pid_t pid = fork_child(false);
    if (pid == 0) {
        CHECK_EQ(write(ring_pipe[1], "x", 1), 1);
        CHECK_EQ(plait_join(reader, NULL, SOON()), 0);
        child_exit();
    }
    int status = reap_within(pid, 20);
    /* not killed by the SIGSYS its own handler would have answered */
    CHECK_EQ(WIFSIGNALED(status) ? WTERMSIG(status) : 0, 0);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_EQ(write(ring_pipe[1], "x", 1), 1);
    CHECK_EQ(plait_join(reader, NULL, SOON()), 0);
    return NULL;
}
#endif

/* A program in a sandbox that traps some system calls (seccomp's SECCOMP_RET_TRAP: a
 * SIGSYS whose handler emulates or refuses the call) forks from a coroutine.  The
 * child's fork handler makes the scheduler's poller again: io_uring_setup, trapped.
 * plait blocks every signal across its fork handlers but the faults a thread causes
 * itself (SIGSEGV, SIGBUS, SIGFPE, SIGILL); SIGSYS from a trap is one too, and one
 * blocked kills the process at once, as a blocked SIGSEGV does: the child died of
 * SIGSYS inside fork(). */
TEST(a_system_call_a_sandbox_traps_in_the_child_s_fork_handler)
{
#if defined(__x86_64__)
    pid_t pid = fork_child(true); /* the filter and the handler stay with this process */
    if (pid == 0) {
        CHECK_EQ(plait_run(fork_under_the_trap, NULL, NULL), 0);
        child_exit();
    }
    reap_ok(pid, 30);
#endif
}

/* ---- a fork while another thread cancels a group of the forking scheduler ---- */

/* plait_group_cancel holds the group's lock over all its children; a fork from a
 * coroutine of theirs meanwhile left it held in the child, and the child's next use of
 * the group spun for ever (its children, finishing, too: plait_run never returned).
 * Failed first: the child did not end in time, in the first of the rounds (a review
 * found it, 4 hangs in 5 at this size). */
enum { GROUP_ROUNDS = 3 };
/* (ThreadSanitizer counts each coroutine, a fiber of its, against its 8,128 threads;
 * its children's checks do not run anyway: fork_child) */
#define GROUP_KIDS (CHECK_TSAN ? 2000 : 20000)
static plait_group *kids_group;
static atomic_int canceller_started;

static void *sleeps_for_ever(void *arg)
{
    (void)arg;
    plait_sleep_until(PLAIT_FOREVER);
    return NULL;
}

static void *cancels_the_group(void *arg)
{
    (void)arg;
    atomic_store(&canceller_started, 1);
    CHECK_EQ(plait_group_cancel(kids_group), 0);
    return NULL;
}

static void *fork_while_the_group_is_cancelled(void *arg)
{
    (void)arg;
    for (int round = 0; round < GROUP_ROUNDS; round++) {
        CHECK_EQ(plait_group_create(&kids_group), 0);
        for (int i = 0; i < GROUP_KIDS; i++)
            CHECK_EQ(plait_group_spawn(kids_group, NULL, sleeps_for_ever, NULL), 0);
        CHECK_EQ(plait_yield(), 0); /* they sleep */
        atomic_store(&canceller_started, 0);
        pthread_t canceller;
        CHECK_EQ(pthread_create(&canceller, NULL, cancels_the_group, NULL), 0);
        wait_flag(&canceller_started);
        pid_t pid = fork_child(false);
        if (pid == 0) {
            /* the children the parent's thread cancelled before the fork end; the rest
             * are cancelled here */
            CHECK_EQ(plait_group_cancel(kids_group), 0);
            CHECK_EQ(plait_group_wait(kids_group, plait_deadline_in(5 * PLAIT_SEC)), 0);
            CHECK_EQ(plait_group_destroy(kids_group), 0);
            child_exit();
        }
        reap_ok(pid, 20);
        CHECK_EQ(pthread_join(canceller, NULL), 0);
        CHECK_EQ(plait_group_wait(kids_group, SOON()), 0);
        CHECK_EQ(plait_group_destroy(kids_group), 0);
    }
    return NULL;
}

TEST(fork_while_another_thread_cancels_a_group)
{
    CHECK_EQ(plait_run(fork_while_the_group_is_cancelled, NULL, NULL), 0);
}

RUN_TESTS(CASE(fork_beside_io_timer_and_channel_waits),
          CASE(grandchild_beside_io_timer_and_channel_waits),
          CASE(fork_while_a_wake_up_is_on_its_way),
          CASE(fork_while_a_claim_is_undecided),
          CASE(fork_while_a_claim_is_undecided_past_its_deadline),
          CASE(fork_while_another_thread_holds_a_waits_object),
          CASE(fork_beside_waits_on_locks_plait_takes_strands_none),
          CASE(fork_with_wake_ups_in_the_inbox),
          CASE(a_read_in_the_ring_at_a_fork_whose_child_gets_no_ring),
          CASE(reads_in_the_ring_at_a_fork_stay_the_parents),
          CASE(a_wait_the_child_s_poller_refuses),
          CASE(a_system_call_a_sandbox_traps_in_the_child_s_fork_handler),
          CASE(fork_while_another_thread_cancels_a_group))
