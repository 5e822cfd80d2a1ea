/*
 * test_shared_fork_window.c — a process-shared object made on one thread while plait
 * forks a child on another, in the instant after fork() returned in the parent and
 * before the parent registered the child with its objects (review of shared.c): the
 * child never had the object, so the object must not count it among its holders.
 *
 * It did: the fork number that says "made before this child" was only taken when the
 * parent registered the child, after the registry's lock had been let go, so a queue
 * made in between was told of the child too.  A receiver whose senders had all died
 * then waited for the child (-ETIMEDOUT) instead of getting -EPIPE, and a handle
 * destroyed meanwhile stayed mapped for the child's life.  fork() is wrapped (-Wl,
 * --wrap=fork): the wrapper makes the queue in that instant, which a preemption of the
 * forking thread there makes possible for any other thread.
 */
#include "helpers.h"

#include <signal.h>
#include <unistd.h>

pid_t __real_fork(void);
pid_t __wrap_fork(void);

static plait_queue *made_in_window;
static bool make_one;

pid_t __wrap_fork(void)
{
    pid_t pid = __real_fork();
    if (pid > 0 && make_one)
        CHECK_EQ(plait_queue_create(&made_in_window, 8, 1), 0);
    return pid;
}

static ssize_t sleeps(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)out, (void)cap;
    pause(); /* until killed */
    return 0;
}

static plait_queue *made_before;

/* The quitter: a sender of both queues, once each, which then ends. */
static ssize_t sends_and_returns(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)out, (void)cap;
    int a = plait_queue_send(made_before, "b", 1, 0);
    int b = plait_queue_send(made_in_window, "w", 1, 0);
    return a < 0 ? a : b;
}

TEST(an_object_made_as_a_child_is_forked_is_not_the_child_s)
{
    CHECK_EQ(plait_queue_create(&made_before, 8, 1), 0);
    plait_task sleeper, quitter;
    make_one = true;
    CHECK_EQ(plait_process_start(&sleeper, sleeps, NULL, 0, NULL, NULL), 0);
    make_one = false;
    CHECK(made_in_window != NULL);
    /* a child forked after both, which holds both, sends once to each and ends: each
     * queue's one sender gone, which ends its sending side */
    CHECK_EQ(plait_process_start(&quitter, sends_and_returns, NULL, 0, NULL, NULL), 0);
    CHECK_EQ(plait_join(quitter, NULL, SOON()), 0);
    char c = 0;
    CHECK_EQ(plait_queue_recv(made_before, &c, 1, 0), 1);
    CHECK_EQ(c, 'b');
    CHECK_EQ(plait_queue_recv(made_in_window, &c, 1, 0), 1);
    CHECK_EQ(c, 'w');
    /* the sleeper holds the queue made before it (undecided: it may still send) ... */
    CHECK_EQ(plait_queue_recv(made_before, NULL, 0, 0), -ETIMEDOUT);
    /* ... but not the one it never had */
    CHECK_EQ(plait_queue_recv(made_in_window, NULL, 0, plait_deadline_in(100 * PLAIT_MS)), -EPIPE);
    CHECK_EQ(plait_process_kill(sleeper, SIGKILL), 0);
    CHECK(plait_join(sleeper, NULL, SOON()) != -ETIMEDOUT);
    CHECK_EQ(plait_queue_recv(made_before, NULL, 0, plait_deadline_in(100 * PLAIT_MS)), -EPIPE);
    CHECK_EQ(plait_queue_destroy(made_in_window), 0);
    CHECK_EQ(plait_queue_destroy(made_before), 0);
}

RUN_TESTS(CASE(an_object_made_as_a_child_is_forked_is_not_the_child_s))
