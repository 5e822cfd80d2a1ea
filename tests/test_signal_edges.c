/* test_signal_edges.c — signal watchers at their edges: a delivery made before a wait
 * with a past deadline, queued real-time signals counted one by one, a watcher per
 * scheduler, SIGCHLD beside a process pool whose workers crash, a cancelled plait
 * thread's wait, watchers made and destroyed while signals stream in, a set refused
 * part-way (its handlers given back), a signal the program's threads all block, a
 * signal sent to a vfork() child (not the parent's). */
#define _GNU_SOURCE 1
#include "fork_child.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/wait.h>

/* raise() has run plait's handler when it returns: the delivery is counted, so a wait
 * that does not block (deadline 0: "completes if it can right away") must take it. */
TEST(a_delivery_before_a_past_deadline_wait)
{
    int usr1 = SIGUSR1;
    int missed = 0;
    for (int round = 0; round < 200; round++) {
        plait_signals *w;
        CHECK_EQ(plait_signals_create(&w, &usr1, 1), 0);
        CHECK_EQ(raise(SIGUSR1), 0);
        int r = plait_signals_wait(w, 0);
        if (r != SIGUSR1) {
            missed++;
            CHECK_EQ(plait_signals_wait(w, SOON()), SIGUSR1);
        }
        CHECK_EQ(plait_signals_destroy(w), 0);
    }
    if (missed)
        fprintf(stderr, "  wait(0) after raise(): -ETIMEDOUT in %d of 200 rounds\n", missed);
    CHECK_EQ(missed, 0);
}

static void *coroutine_sees_it_at_once(void *arg)
{
    (void)arg;
    int usr2 = SIGUSR2, missed = 0;
    for (int round = 0; round < 100; round++) {
        plait_signals *w;
        CHECK_EQ(plait_signals_create(&w, &usr2, 1), 0);
        CHECK_EQ(raise(SIGUSR2), 0);
        if (plait_signals_wait(w, plait_now() - 1) != SIGUSR2) {
            missed++;
            CHECK_EQ(plait_signals_wait(w, SOON()), SIGUSR2);
        }
        CHECK_EQ(plait_signals_destroy(w), 0);
    }
    CHECK_EQ(missed, 0);
    return NULL;
}

TEST(a_delivery_before_a_past_deadline_wait_coroutine)
{
    check_run(coroutine_sees_it_at_once, NULL);
}

/* Real-time signals are queued by the kernel, not merged: each is one delivery. */
TEST(queued_realtime_signals_each_count)
{
    /* ThreadSanitizer defers a signal to its handler as one pending bit per signal:
     * queued real-time signals reach plait's handler once (it counted 1 of 300) */
    if (CHECK_TSAN) {
        CHECK_SKIP("ThreadSanitizer delivers queued real-time signals once");
        return;
    }
    int rt = SIGRTMIN + 1;
    plait_signals *w;
    CHECK_EQ(plait_signals_create(&w, &rt, 1), 0);
    const int n = 300;
    for (int i = 0; i < n; i++)
        CHECK_EQ(sigqueue(getpid(), rt, (union sigval){.sival_int = i}), 0);
    int got = 0;
    while (plait_signals_wait(w, plait_deadline_in(200 * PLAIT_MS)) == rt)
        got++;
    CHECK_EQ(got, n);
    CHECK_EQ(plait_signals_destroy(w), 0);
}

/* Each scheduler's own watcher of one signal sees the one delivery. */
static atomic_int waiting_now;

static void *sched_watch(void *arg)
{
    (void)arg;
    plait_signals *w;
    int usr1 = SIGUSR1;
    CHECK_EQ(plait_signals_create(&w, &usr1, 1), 0);
    atomic_fetch_add(&waiting_now, 1);
    int r = plait_signals_wait(w, SOON());
    CHECK_EQ(plait_signals_destroy(w), 0);
    return ARG(r);
}

static void *sched_main(void *arg)
{
    void *r = NULL;
    plait_task t;
    CHECK_EQ(plait_spawn(&t, sched_watch, arg), 0);
    CHECK_EQ(plait_join(t, &r, PLAIT_FOREVER), 0);
    CHECK_EQ(INT(r), SIGUSR1);
    return NULL;
}

TEST(a_watcher_per_scheduler)
{
    atomic_store(&waiting_now, 0);
    sched_thread s[3];
    for (int i = 0; i < 3; i++)
        sched_thread_start(&s[i], sched_main, NULL);
    while (atomic_load(&waiting_now) < 3)
        sched_yield();
    struct timespec ms = {0, 20 * PLAIT_MS};
    nanosleep(&ms, NULL);
    CHECK_EQ(kill(getpid(), SIGUSR1), 0);
    for (int i = 0; i < 3; i++)
        sched_thread_join(&s[i]);
}

/* SIGCHLD watched while a process pool's workers crash and are replaced, and function
 * and program children run: every task still gets its outcome. */
static ssize_t crash_or_echo(const void *arg, size_t len, void *out, size_t cap)
{
    (void)cap;
    if (len && *(const char *)arg == 'k')
        raise(SIGKILL);
    memcpy(out, arg, len);
    return (ssize_t)len;
}

TEST(sigchld_watched_beside_a_crashing_pool)
{
    plait_signals *w;
    int chld = SIGCHLD;
    CHECK_EQ(plait_signals_create(&w, &chld, 1), 0);
    plait_procpool *pp;
    CHECK_EQ(plait_procpool_create(&pp, &(plait_procpool_options){.processes = 2}), 0);
    for (int i = 0; i < 10; i++) {
        plait_task a, b, c;
        CHECK_EQ(plait_procpool_submit(pp, &a, crash_or_echo, "k", 1), 0);
        CHECK_EQ(plait_procpool_submit(pp, &b, crash_or_echo, "e", 1), 0);
        char *argv[] = {"true", NULL};
        CHECK_EQ(plait_process_exec(&c, "true", argv, NULL, NULL), 0);
        void *v = NULL;
        CHECK_EQ(plait_join(a, NULL, SOON()), PLAIT_KILLED(SIGKILL));
        CHECK_EQ(plait_join(b, &v, SOON()), 0);
        free(v);
        CHECK_EQ(plait_join(c, NULL, SOON()), 0);
    }
    CHECK_EQ(plait_procpool_destroy(pp), 0);
    CHECK_EQ(plait_signals_wait(w, SOON()), SIGCHLD);
    CHECK_EQ(plait_signals_destroy(w), 0);
}

/* A plait thread cancelled in its wait.  The destroy is -EBUSY only once the thread is
 * in the wait: asleep there, not after a 30 ms pause (a thread that had not got there
 * yet let the destroy free the watcher it was about to wait on). */
static plait_signals *waited_on;
static atomic_int waiter_tid;
static void *thread_waits(void *arg)
{
    (void)arg;
    atomic_store(&waiter_tid, (int)gettid());
    return ARG(plait_signals_wait(waited_on, PLAIT_FOREVER));
}

TEST(a_cancelled_plait_thread_wait)
{
    plait_signals *w;
    int hup = SIGHUP;
    CHECK_EQ(plait_signals_create(&w, &hup, 1), 0);
    waited_on = w;
    atomic_store(&waiter_tid, 0);
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, thread_waits, NULL, NULL), 0);
    wait_asleep(&waiter_tid);
    CHECK_EQ(plait_signals_destroy(w), -EBUSY);
    CHECK_EQ(plait_cancel(t), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
    CHECK_EQ(plait_signals_destroy(w), 0);
}

/* Watchers come and go while a thread streams signals at the process. */
static atomic_int streaming, streamed;
static void *stream(void *arg)
{
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    while (atomic_load(&streaming)) {
        kill(getpid(), SIGUSR1);
        atomic_fetch_add(&streamed, 1);
    }
    return NULL;
}

TEST(watchers_churn_while_signals_stream)
{
    int usr1 = SIGUSR1;
    plait_signals *keep;
    CHECK_EQ(plait_signals_create(&keep, &usr1, 1), 0); /* the process never dies of it */
    atomic_store(&streaming, 1);
    pthread_t th;
    thread_start(&th, stream, NULL);
    for (int i = 0; i < 2000 || atomic_load(&streamed) < 1000; i++) {
        plait_signals *w;
        CHECK_EQ(plait_signals_create(&w, &usr1, 1), 0);
        (void)plait_signals_wait(w, 0);
        CHECK_EQ(plait_signals_destroy(w), 0);
    }
    atomic_store(&streaming, 0);
    thread_join(th);
    int n = 0, r;
    while ((r = plait_signals_wait(keep, plait_deadline_in(50 * PLAIT_MS))) == SIGUSR1)
        n++;
    if (n == 0)
        fprintf(stderr, "  keep: %d\n", r);
    CHECK(n > 0);
    CHECK_EQ(plait_signals_destroy(keep), 0);
}

static void first_handler(int sig) { (void)sig; }

/* A set the kernel refuses part of (glibc keeps signal 32 for itself: its sigaction
 * says EINVAL) is refused whole: the handlers it had put in before that one are taken
 * out again, the program's own back, and a later watcher of them works. */
TEST(a_set_refused_part_way_gives_back_what_it_took)
{
    struct sigaction mine = {.sa_handler = first_handler}, now;
    sigemptyset(&mine.sa_mask);
    CHECK_EQ(sigaction(SIGUSR2, &mine, NULL), 0);
    plait_signals *w = NULL;
    int set[] = {SIGUSR2, 32};
    CHECK_EQ(plait_signals_create(&w, set, 2), -EINVAL);
    CHECK(w == NULL);
    CHECK_EQ(sigaction(SIGUSR2, NULL, &now), 0);
    CHECK(now.sa_handler == first_handler);
    CHECK_EQ(plait_signals_create(&w, set, 1), 0);
    CHECK_EQ(raise(SIGUSR2), 0);
    CHECK_EQ(plait_signals_wait(w, 0), SIGUSR2);
    CHECK_EQ(plait_signals_destroy(w), 0);
    CHECK_EQ(sigaction(SIGUSR2, NULL, &now), 0);
    CHECK(now.sa_handler == first_handler);
    signal(SIGUSR2, SIG_DFL);
}

/* A signal every thread of the program blocks (a mask inherited through exec, or set
 * by the program for its own reasons) still reaches a watcher of it: plait's dispatcher
 * thread takes the watched signals.  Sent to the process before the watcher was made
 * (pending) and after.  In a child of a single thread, whose mask is the only one. */
TEST(a_signal_every_thread_blocks)
{
    pid_t pid = fork_child(false); /* (ThreadSanitizer stops a child that starts threads) */
    if (pid == 0) {
        sigset_t usr1;
        sigemptyset(&usr1);
        sigaddset(&usr1, SIGUSR1);
        CHECK_EQ(pthread_sigmask(SIG_BLOCK, &usr1, NULL), 0);
        CHECK_EQ(kill(getpid(), SIGUSR1), 0); /* pending: nobody takes it yet */
        plait_signals *w;
        int sig = SIGUSR1;
        CHECK_EQ(plait_signals_create(&w, &sig, 1), 0);
        CHECK_EQ(plait_signals_wait(w, SOON()), SIGUSR1);
        CHECK_EQ(kill(getpid(), SIGUSR1), 0);
        CHECK_EQ(plait_signals_wait(w, SOON()), SIGUSR1);
        CHECK_EQ(plait_signals_wait(w, 0), -ETIMEDOUT); /* each delivery once */
        CHECK_EQ(plait_signals_destroy(w), 0);
        /* the disposition is the program's again, and the signal blocked as before */
        sigset_t now;
        CHECK_EQ(pthread_sigmask(SIG_BLOCK, NULL, &now), 0);
        CHECK(sigismember(&now, SIGUSR1));
        child_exit();
    }
    reap_ok(pid, 30);
}

/* A vfork() child shares its parent's memory until it execs: a signal sent to it ran
 * plait's handler there, on the parent's counts, and the parent's watchers saw a
 * delivery the parent never had (SIGUSR1 here, taken first as the lower number). */
TEST(a_signal_to_a_vfork_child_is_not_the_parents)
{
#if defined(__SANITIZE_THREAD__)
    CHECK_SKIP("ThreadSanitizer makes vfork() a fork(), whose child has memory of its own");
    return;
#endif
    int sigs[] = {SIGUSR1, SIGUSR2};
    plait_signals *w;
    CHECK_EQ(plait_signals_create(&w, sigs, 2), 0);
    fflush(NULL);
    pid_t pid = vfork();
    if (pid == 0) {
        raise(SIGUSR1); /* (the child's handler: plait's, as the parent's) */
        _exit(0);
    }
    CHECK(pid > 0);
    int status = -1;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(raise(SIGUSR2), 0); /* the dispatcher hands over what was counted */
    CHECK_EQ(plait_signals_wait(w, SOON()), SIGUSR2);
    CHECK_EQ(plait_signals_wait(w, plait_deadline_in(50 * PLAIT_MS)), -ETIMEDOUT);
    CHECK_EQ(plait_signals_destroy(w), 0);
}

RUN_TESTS(CASE(a_delivery_before_a_past_deadline_wait),
          CASE(a_delivery_before_a_past_deadline_wait_coroutine),
          CASE(queued_realtime_signals_each_count), CASE(a_watcher_per_scheduler),
          CASE(sigchld_watched_beside_a_crashing_pool), CASE(a_cancelled_plait_thread_wait),
          CASE(watchers_churn_while_signals_stream),
          CASE(a_set_refused_part_way_gives_back_what_it_took),
          CASE(a_signal_every_thread_blocks), CASE(a_signal_to_a_vfork_child_is_not_the_parents))
