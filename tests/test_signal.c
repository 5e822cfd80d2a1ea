/* test_signal.c — signals delivered to waiting coroutines and threads: every watcher
 * sees every delivery, counts are kept, deadlines and cancellation, bad input, the
 * old disposition given back, SIGCHLD beside plait's processes, and a forked child
 * that still dies of a signal its parent watches.
 *
 * raise() delivers to the calling thread before it returns, so a delivery is counted
 * before the test goes on; the hand-off to watchers is then the dispatcher's, which
 * the waits (with SOON deadlines) wait for. */
#include "helpers.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Reap the forked child pid: it must exit with status 0 (its own code says which check
 * failed, a negative one the signal that killed it). */
static void check_child_exits_0(pid_t pid)
{
    CHECK(pid > 0);
    int status = -1;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status), 0);
}

TEST(bad_input)
{
    plait_signals *w = NULL;
    int usr1 = SIGUSR1;
    CHECK_EQ(plait_signals_create(NULL, &usr1, 1), -EINVAL);
    CHECK_EQ(plait_signals_create(&w, NULL, 1), -EINVAL);
    CHECK_EQ(plait_signals_create(&w, &usr1, 0), -EINVAL);
    int bad[] = {0, -1, SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL, 65, 1000};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int two[] = {SIGUSR1, bad[i]};
        CHECK_EQ(plait_signals_create(&w, two, 2), -EINVAL);
    }
    CHECK(w == NULL);
    CHECK_EQ(plait_signals_wait(NULL, 0), -EINVAL);
    CHECK_EQ(plait_signals_destroy(NULL), -EINVAL);
    /* nothing was installed by the failed calls */
    struct sigaction now;
    CHECK_EQ(sigaction(SIGUSR1, NULL, &now), 0);
    CHECK(now.sa_handler == SIG_DFL);
}

TEST(every_watcher_sees_every_delivery)
{
    plait_signals *a, *b, *c;
    int usr1 = SIGUSR1, usr2 = SIGUSR2, both[] = {SIGUSR2, SIGUSR1};
    CHECK_EQ(plait_signals_create(&a, &usr1, 1), 0);
    CHECK_EQ(plait_signals_create(&b, both, 2), 0);
    CHECK_EQ(plait_signals_create(&c, &usr2, 1), 0);
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(raise(SIGUSR2), 0);
    CHECK_EQ(plait_signals_wait(a, SOON()), SIGUSR1);
    CHECK_EQ(plait_signals_wait(a, SOON()), SIGUSR1);
    CHECK_EQ(plait_signals_wait(a, 0), -ETIMEDOUT);
    /* lowest number first: SIGUSR1 (10) twice, then SIGUSR2 (12) */
    int got[3];
    for (int i = 0; i < 3; i++)
        got[i] = plait_signals_wait(b, SOON());
    CHECK_EQ(got[0], SIGUSR1 < SIGUSR2 ? SIGUSR1 : SIGUSR2);
    CHECK_EQ(got[0] + got[1] + got[2], 2 * SIGUSR1 + SIGUSR2);
    CHECK_EQ(plait_signals_wait(b, 0), -ETIMEDOUT);
    CHECK_EQ(plait_signals_wait(c, SOON()), SIGUSR2);
    CHECK_EQ(plait_signals_wait(c, 0), -ETIMEDOUT);
    CHECK_EQ(plait_signals_destroy(a), 0);
    CHECK_EQ(plait_signals_destroy(b), 0);
    CHECK_EQ(plait_signals_destroy(c), 0);
}

typedef struct {
    plait_signals *w;
    int64_t deadline;
    int result;
} waiter_ctx;

static void *signal_waiter(void *p)
{
    waiter_ctx *c = p;
    c->result = plait_signals_wait(c->w, c->deadline);
    return NULL;
}

static void *coroutine_main(void *p)
{
    (void)p;
    plait_signals *w;
    int term = SIGTERM;
    CHECK_EQ(plait_signals_create(&w, &term, 1), 0);
    waiter_ctx c = {.w = w, .deadline = SOON(), .result = 1};
    plait_task t;
    CHECK_EQ(plait_spawn(&t, signal_waiter, &c), 0);
    settle(); /* it waits; the scheduler runs us meanwhile */
    CHECK_EQ(c.result, 1);
    CHECK_EQ(plait_signals_destroy(w), -EBUSY);
    CHECK_EQ(kill(getpid(), SIGTERM), 0); /* would end the process without the watcher */
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(c.result, SIGTERM);

    /* a deadline */
    int64_t start = plait_now();
    CHECK_EQ(plait_signals_wait(w, start + 30 * PLAIT_MS), -ETIMEDOUT);
    CHECK_TOOK(start, 30 * PLAIT_MS);
    /* a cancellation */
    c = (waiter_ctx){.w = w, .deadline = PLAIT_FOREVER, .result = 1};
    CHECK_EQ(plait_spawn(&t, signal_waiter, &c), 0);
    settle();
    CHECK_EQ(plait_cancel(t), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
    CHECK_EQ(c.result, -ECANCELED);
    CHECK_EQ(plait_signals_destroy(w), 0);
    return NULL;
}

TEST(coroutine_waits_deadline_and_cancel) { check_run(coroutine_main, NULL); }

TEST(plain_thread_waits)
{
    plait_signals *w;
    int hup = SIGHUP;
    CHECK_EQ(plait_signals_create(&w, &hup, 1), 0);
    waiter_ctx c = {.w = w, .deadline = SOON(), .result = 1};
    pthread_t th;
    thread_start(&th, signal_waiter, &c);
    CHECK_EQ(kill(getpid(), SIGHUP), 0);
    thread_join(th);
    CHECK_EQ(c.result, SIGHUP);
    CHECK_EQ(plait_signals_destroy(w), 0);
}

/* Under ThreadSanitizer, a signal that comes to a thread outside a blocking call it
 * intercepts is queued, and its handler runs as the thread leaves its next intercepted
 * call or atomic operation; each coroutine is a fiber with a queue of its own (sched.c,
 * "Signals").  These two cases send signals (tgkill, which the runtime does not see)
 * to where that held plait's handler back, or lost it.  Without ThreadSanitizer the
 * handler runs at once, and they pass as they must. */

/* Deliveries to a thread whose coroutines switch away and stay suspended: under
 * ThreadSanitizer, one that came as a coroutine switched away, after its last
 * intercepted call or atomic operation and before the switch, was queued on its fiber,
 * and its handler ran only when that coroutine next ran.  Here the coroutines suspended
 * in a round stay so until its delivery has reached the watcher (a signal queued on
 * one of them never did, within 2 s). */
enum { SWITCH_ROUNDS = 300 };

typedef struct {
    plait_event *gates[SWITCH_ROUNDS]; /* each round's suspenders wait on its own */
    atomic_int round;                  /* SWITCH_ROUNDS: the end */
    atomic_int tid;                    /* the scheduler's thread, once it runs */
} switching_away;

static void *suspend_at_the_gate(void *gate)
{
    CHECK_EQ(plait_event_wait(gate, PLAIT_FOREVER), 0);
    return NULL;
}

static void *switch_away_again_and_again(void *p)
{
    switching_away *sw = p;
    plait_group *suspenders;
    CHECK_EQ(plait_group_create(&suspenders), 0);
    plait_spawn_options in_the_group = {.group = suspenders};
    atomic_store(&sw->tid, (int)syscall(SYS_gettid));
    int spawned = 0, of_round = 0;
    for (int r; (r = atomic_load(&sw->round)) < SWITCH_ROUNDS;) {
        if (r != of_round)
            spawned = 0, of_round = r;
        if (spawned < 16) { /* (while a delivery is lost, no more) */
            spawned++;
            CHECK_EQ(plait_spawn_opts(NULL, suspend_at_the_gate, sw->gates[r], &in_the_group), 0);
        }
        plait_yield();
    }
    /* (the last round's, let go, may not have run yet: they would be cancelled) */
    CHECK_EQ(plait_group_wait(suspenders, SOON()), 0);
    CHECK_EQ(plait_group_destroy(suspenders), 0);
    return NULL;
}

TEST(signals_to_a_thread_whose_coroutines_switch_away_are_handled)
{
    plait_signals *w;
    int usr2 = SIGUSR2;
    CHECK_EQ(plait_signals_create(&w, &usr2, 1), 0);
    static switching_away sw;
    atomic_init(&sw.round, 0);
    atomic_init(&sw.tid, 0);
    for (int r = 0; r < SWITCH_ROUNDS; r++)
        CHECK_EQ(plait_event_create(&sw.gates[r]), 0);
    sched_thread st;
    sched_thread_start(&st, switch_away_again_and_again, &sw);
    int64_t give_up = SOON();
    while (!atomic_load(&sw.tid) && plait_now() < give_up)
        sched_yield();
    int tid = atomic_load(&sw.tid), handled = 0;
    for (int r = 0; r < SWITCH_ROUNDS; r++) {
        if (tid && syscall(SYS_tgkill, syscall(SYS_getpid), tid, SIGUSR2) == 0 &&
            plait_signals_wait(w, plait_deadline_in(2 * PLAIT_SEC)) == SIGUSR2)
            handled++;
        else
            tid = 0; /* (the rest only let the suspenders go) */
        atomic_store(&sw.round, r + 1);
        CHECK_EQ(plait_event_set(sw.gates[r]), 0);
    }
    CHECK_EQ(handled, SWITCH_ROUNDS);
    sched_thread_join(&st);
    for (int r = 0; r < SWITCH_ROUNDS; r++)
        CHECK_EQ(plait_event_destroy(sw.gates[r]), 0);
    CHECK_EQ(plait_signals_destroy(w), 0);
}

/* The system call thread tid sleeps in, or -1 (running, or not found). */
static long asleep_in(pid_t tid)
{
    char path[64], stat[512], call[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    first_line_of(path, stat, sizeof stat);
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    first_line_of(path, call, sizeof call);
    const char *state = strrchr(stat, ')'); /* "pid (comm) S ..." */
    bool sleeping = state && state[1] == ' ' && state[2] == 'S';
    return sleeping && call[0] >= '0' && call[0] <= '9' ? atol(call) : -1;
}

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif

/* tgkill the thread named `name` with SIGUSR2 once it sleeps in a system call that
 * `in_futex` says (a futex wait, or another); watcher w must then get it. */
static void signal_once_asleep(plait_signals *w, const char *name, bool in_futex)
{
    pid_t tid = -1;
    long call = -1;
    for (int64_t give_up = SOON(); plait_now() < give_up; sched_yield()) {
        tid = thread_named(name);
        call = tid > 0 ? asleep_in(tid) : -1;
        if (call >= 0 && (call == SYS_futex || call == SYS_futex_waitv) == in_futex)
            break;
    }
    CHECK(call >= 0 && (call == SYS_futex || call == SYS_futex_waitv) == in_futex);
    if (call >= 0)
        CHECK_EQ(syscall(SYS_tgkill, syscall(SYS_getpid), tid, SIGUSR2), 0);
    CHECK_EQ(plait_signals_wait(w, plait_deadline_in(5 * PLAIT_SEC)), SIGUSR2);
}

/* The delivery comes to the signal thread asleep in its wait for the pipe: asleep in
 * read(), the handler was queued and the read restarted, waiting for the byte that
 * handler was to write (a server's SIGTERM went unanswered). */
TEST(a_signal_to_the_signal_thread_asleep_is_handled)
{
    plait_signals *w;
    int usr2 = SIGUSR2;
    CHECK_EQ(plait_signals_create(&w, &usr2, 1), 0);
    signal_once_asleep(w, "plait-signals", false);
    CHECK_EQ(plait_signals_destroy(w), 0);
}

/* The delivery comes to an idle pool worker, asleep on its futex: under
 * ThreadSanitizer the handler was queued and the wait restarted (SA_RESTART), so the
 * delivery waited for the worker's next task. */
TEST(a_signal_to_an_idle_pool_worker_is_handled)
{
    plait_signals *w;
    int usr2 = SIGUSR2;
    CHECK_EQ(plait_signals_create(&w, &usr2, 1), 0);
    plait_pool *pool;
    plait_pool_options options = {.threads = 1, .name = "idler"};
    CHECK_EQ(plait_pool_create(&pool, &options), 0);
    signal_once_asleep(w, "idler-0", true);
    CHECK_EQ(plait_pool_destroy(pool), 0);
    CHECK_EQ(plait_signals_destroy(w), 0);
}

/* The same for a plain thread asleep on a process-shared word (futex_waitv), which
 * every process-shared wait ends each PLAIT__SHARED_RECHECK_NS to look for dead
 * holders: that look runs the handler queued. */
static void *acquires(void *sem)
{
    return PLAIT_FAIL(plait_psem_acquire(sem, plait_deadline_in(30 * PLAIT_SEC)));
}

TEST(a_signal_to_a_thread_asleep_on_a_process_shared_word_is_handled)
{
    plait_signals *w;
    int usr2 = SIGUSR2;
    CHECK_EQ(plait_signals_create(&w, &usr2, 1), 0);
    plait_psem *sem;
    CHECK_EQ(plait_psem_create(&sem, 0), 0);
    plait_task t;
    plait_thread_options options = {.name = "acquirer"};
    CHECK_EQ(plait_thread_start(&t, acquires, sem, &options), 0);
    signal_once_asleep(w, "acquirer", true);
    CHECK_EQ(plait_psem_release(sem), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(plait_psem_destroy(sem), 0);
    CHECK_EQ(plait_signals_destroy(w), 0);
}

TEST(old_disposition_comes_back)
{
    struct sigaction ign = {.sa_handler = SIG_IGN}, now;
    CHECK_EQ(sigaction(SIGUSR2, &ign, NULL), 0);
    plait_signals *a, *b;
    int usr2 = SIGUSR2;
    CHECK_EQ(plait_signals_create(&a, &usr2, 1), 0);
    CHECK_EQ(plait_signals_create(&b, &usr2, 1), 0);
    CHECK_EQ(sigaction(SIGUSR2, NULL, &now), 0);
    CHECK(now.sa_handler != SIG_IGN);
    CHECK_EQ(plait_signals_destroy(a), 0);
    CHECK_EQ(sigaction(SIGUSR2, NULL, &now), 0);
    CHECK(now.sa_handler != SIG_IGN); /* b still watches */
    CHECK_EQ(raise(SIGUSR2), 0);
    CHECK_EQ(plait_signals_wait(b, SOON()), SIGUSR2);
    CHECK_EQ(plait_signals_destroy(b), 0);
    CHECK_EQ(sigaction(SIGUSR2, NULL, &now), 0);
    CHECK(now.sa_handler == SIG_IGN);
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    CHECK_EQ(sigaction(SIGUSR2, &dfl, NULL), 0);
}

static ssize_t seven(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg;
    (void)len;
    (void)cap;
    memcpy(out, "7", 1);
    return 1;
}

static ssize_t sleeper(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg;
    (void)len;
    (void)out;
    (void)cap;
    pause(); /* until the signal that kills it */
    return -EINTR;
}

TEST(sigchld_and_processes)
{
    plait_signals *w;
    int sigs[] = {SIGCHLD, SIGTERM};
    CHECK_EQ(plait_signals_create(&w, sigs, 2), 0);
    /* plait's processes are still joined with their results */
    plait_task t;
    CHECK_EQ(plait_process_start(&t, seven, NULL, 0, NULL, NULL), 0);
    void *v = NULL;
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    CHECK(v && ((plait_bytes *)v)->len == 1 && ((plait_bytes *)v)->data[0] == '7');
    free(v);
    CHECK_EQ(plait_signals_wait(w, SOON()), SIGCHLD);
    /* a child forked to run a function still dies of SIGTERM, watched here */
    CHECK_EQ(plait_process_start(&t, sleeper, NULL, 0, NULL, NULL), 0);
    CHECK_EQ(plait_process_kill(t, SIGTERM), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), PLAIT_KILLED(SIGTERM));
    CHECK_EQ(plait_signals_destroy(w), 0);
}

TEST(plain_fork_child_gets_old_disposition)
{
    plait_signals *w;
    int term = SIGTERM;
    CHECK_EQ(plait_signals_create(&w, &term, 1), 0);
    pid_t pid = fork();
    if (pid == 0) {
        struct sigaction now;
        sigaction(SIGTERM, NULL, &now);
        _exit(now.sa_handler == SIG_DFL ? 0 : 1);
    }
    check_child_exits_0(pid);
    CHECK_EQ(plait_signals_destroy(w), 0);
}

/* A destroy from another thread while plait_signals_wait is between taking its
 * delivery and taking it off the watcher is refused (-EBUSY), not a free of the watcher
 * the wait is about to read: the semaphore no longer counted the wait as waiting, and
 * the watcher went (AddressSanitizer saw the use after free).  The waiter is a plain
 * thread, asleep in the semaphore's futex wait (read from /proc) before the signal
 * comes: asleep alone is not enough, as on its way in it may sleep on the registry's
 * lock, which the dispatcher holds a moment after a create (then the destroy came
 * first, and freed the watcher the wait went on to use).  Then destroy is tried until
 * it succeeds. */
typedef struct destroy_race {
    plait_signals *w;
    atomic_int tid; /* set just before the wait */
    int result;
} destroy_race;

static void *race_waiter(void *arg)
{
    destroy_race *d = arg;
    atomic_store(&d->tid, (int)gettid());
    d->result = plait_signals_wait(d->w, SOON());
    return NULL;
}

/* A thread that waits on d->w, asleep in the wait when this returns (wait_asleep: not
 * on the registry's lock on its way in, as stop 35's CI saw). */
static void start_race_waiter(destroy_race *d, pthread_t *t)
{
    CHECK_EQ(pthread_create(t, NULL, race_waiter, d), 0);
    wait_asleep(&d->tid);
}

TEST(destroy_racing_a_wait_is_refused)
{
    int usr2 = SIGUSR2;
    for (int round = 0; round < 100; round++) {
        destroy_race d = {.result = 1};
        CHECK_EQ(plait_signals_create(&d.w, &usr2, 1), 0);
        pthread_t t;
        start_race_waiter(&d, &t);
        CHECK_EQ(plait_signals_destroy(d.w), -EBUSY);
        CHECK_EQ(kill(getpid(), SIGUSR2), 0);
        int64_t give_up = SOON();
        int r;
        while ((r = plait_signals_destroy(d.w)) == -EBUSY && plait_now() < give_up)
            ;
        CHECK_EQ(r, 0);
        CHECK_EQ(pthread_join(t, NULL), 0);
        CHECK_EQ(d.result, SIGUSR2);
    }
}

/* The tests below that say SKIP_UNDER_TSAN fork beside the parent's dispatcher thread,
 * and some start one in the child, whose thread id can be that of the parent's
 * dispatcher (the child has none, and glibc reuses its stack); ThreadSanitizer, which
 * keeps the parent's threads in its books after a fork, then stops the child ("dup
 * thread with used id", in every run here).  They run in the plain and
 * AddressSanitizer builds only, and are reported skipped under ThreadSanitizer. */
#if defined(__SANITIZE_THREAD__)
#define SKIP_UNDER_TSAN()                                                                \
    do {                                                                                 \
        CHECK_SKIP("a child forked beside the signal thread: ThreadSanitizer stops it"); \
        return;                                                                          \
    } while (0)
#else
#define SKIP_UNDER_TSAN() (void)0
#endif

/* A forked child may destroy the watchers it inherited (copies nobody serves): that
 * frees them, and leaves alone a watcher the child made itself of the same signal. */
static int child_destroys_inherited(plait_signals *inherited)
{
    plait_signals *own;
    int usr1 = SIGUSR1;
    if (plait_signals_create(&own, &usr1, 1) != 0)
        return 1;
    if (plait_signals_destroy(inherited) != 0)
        return 2;
    if (raise(SIGUSR1) != 0 || plait_signals_wait(own, SOON()) != SIGUSR1)
        return 3;
    return plait_signals_destroy(own) == 0 ? 0 : 4;
}

/* A watcher of SIGUSR1. */
static plait_signals *watch_usr1(void)
{
    plait_signals *w = NULL;
    int usr1 = SIGUSR1;
    CHECK_EQ(plait_signals_create(&w, &usr1, 1), 0);
    return w;
}

TEST(forked_child_destroys_an_inherited_watcher)
{
    SKIP_UNDER_TSAN();
    plait_signals *w = watch_usr1();
    pid_t pid = fork();
    if (pid == 0)
        _exit(child_destroys_inherited(w));
    check_child_exits_0(pid);
    CHECK_EQ(plait_signals_destroy(w), 0);
}

/* A watcher another thread of the parent waits on at the fork: that thread is not in
 * the child, so the child's copy can be destroyed (it was refused -EBUSY for ever, and
 * leaked).  A coroutine of the thread that forked is in the child, and its wait on the
 * copy still refuses the destroy there. */
static void *coroutine_waits(void *arg)
{
    return ARG(plait_signals_wait(arg, SOON()));
}

static void *fork_beside_own_waiter(void *arg)
{
    plait_signals *w = arg;
    plait_task t;
    CHECK_EQ(plait_spawn(&t, coroutine_waits, w), 0);
    CHECK_EQ(plait_yield(), 0); /* it waits on w */
    CHECK_EQ(plait_signals_destroy(w), -EBUSY);
    pid_t pid = fork();
    if (pid == 0)
        _exit(plait_signals_destroy(w) == -EBUSY ? 0 : 1);
    check_child_exits_0(pid);
    CHECK_EQ(kill(getpid(), SIGUSR2), 0);
    void *r;
    CHECK_EQ(plait_join(t, &r, SOON()), 0);
    CHECK_EQ(INT(r), SIGUSR2);
    return NULL;
}

TEST(forked_child_destroys_a_watcher_another_thread_waited_on)
{
    SKIP_UNDER_TSAN();
    int usr2 = SIGUSR2;
    destroy_race d = {.result = 1};
    CHECK_EQ(plait_signals_create(&d.w, &usr2, 1), 0);
    pthread_t t;
    start_race_waiter(&d, &t);
    CHECK_EQ(plait_signals_destroy(d.w), -EBUSY); /* the thread is inside its wait */
    pid_t pid = fork();
    if (pid == 0)
        _exit(plait_signals_destroy(d.w) == 0 ? 0 : 1);
    check_child_exits_0(pid);
    CHECK_EQ(kill(getpid(), SIGUSR2), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    CHECK_EQ(d.result, SIGUSR2);
    check_run(fork_beside_own_waiter, d.w);
    CHECK_EQ(plait_signals_destroy(d.w), 0);
}

/* A delivery to the parent in the instant of a fork is the parent's: a watcher the
 * child makes afterwards does not see it.  The delivery is counted at once and handed
 * to the watchers by the dispatcher, which cannot while the fork holds plait's locks;
 * a fork handler of this test raises it then (registered before plait's, it runs
 * after them). */
static volatile sig_atomic_t raise_in_fork;

static void fork_prepare_raise(void)
{
    if (raise_in_fork)
        raise(SIGUSR1);
}

__attribute__((constructor)) static void register_fork_prepare_raise(void)
{
    pthread_atfork(fork_prepare_raise, NULL, NULL);
}

static int child_counts_its_own(void)
{
    plait_signals *own;
    int usr1 = SIGUSR1;
    if (plait_signals_create(&own, &usr1, 1) != 0)
        return 1;
    if (raise(SIGUSR1) != 0 || plait_signals_wait(own, SOON()) != SIGUSR1)
        return 2;
    /* a count left from the parent would have been handed over with the child's own */
    if (plait_signals_wait(own, 0) != -ETIMEDOUT)
        return 3;
    return plait_signals_destroy(own) == 0 ? 0 : 4;
}

TEST(forked_child_does_not_see_the_parents_deliveries)
{
    SKIP_UNDER_TSAN();
    plait_signals *w;
    int usr1 = SIGUSR1;
    CHECK_EQ(plait_signals_create(&w, &usr1, 1), 0);
    raise_in_fork = 1;
    pid_t pid = fork();
    raise_in_fork = 0;
    if (pid == 0)
        _exit(child_counts_its_own());
    check_child_exits_0(pid);
    CHECK_EQ(plait_signals_wait(w, SOON()), SIGUSR1); /* the parent's */
    CHECK_EQ(plait_signals_wait(w, 0), -ETIMEDOUT);
    CHECK_EQ(plait_signals_destroy(w), 0);
}

/* Nor those the parent's dispatcher had handed to a watcher already (they were kept: a
 * function child waiting on an inherited watcher for SIGTERM stopped for the
 * parent's).  Making another watcher hands the counted delivery on, no sleep needed. */
TEST(forked_child_does_not_see_deliveries_handed_to_its_watchers)
{
    SKIP_UNDER_TSAN();
    plait_signals *w, *other;
    int usr1 = SIGUSR1, usr2 = SIGUSR2;
    CHECK_EQ(plait_signals_create(&w, &usr1, 1), 0);
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(plait_signals_create(&other, &usr2, 1), 0); /* hands it to w */
    pid_t pid = fork();
    if (pid == 0)
        _exit(plait_signals_wait(w, 0) == -ETIMEDOUT &&
                      plait_signals_wait(w, plait_deadline_in(20 * PLAIT_MS)) == -ETIMEDOUT
                  ? 0
                  : 1);
    check_child_exits_0(pid);
    CHECK_EQ(plait_signals_wait(w, SOON()), SIGUSR1); /* the parent's own, still there */
    CHECK_EQ(plait_signals_destroy(other), 0);
    CHECK_EQ(plait_signals_destroy(w), 0);
}

/* The same for a delivery handed to a coroutine of the forking thread, woken but not yet
 * run at the fork: its semaphore permit was never counted (the wake-up took it), so the
 * child's drain left it, and the wait, finding nothing pending, took "signal 65" off
 * the end of the counts (a write past them, over the watcher's semaphore).  It waits on
 * in the child, as for a delivery it never had. */
static plait_signals *handed_watcher;

static void *wait_for_usr1(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)plait_signals_wait(handed_watcher, plait_deadline_in(300 * PLAIT_MS));
}

static void *fork_with_a_delivery_handed_to_a_waiter(void *arg)
{
    (void)arg;
    plait_task waiter;
    CHECK_EQ(plait_spawn(&waiter, wait_for_usr1, NULL), 0);
    CHECK_EQ(plait_yield(), 0); /* it waits */
    CHECK_EQ(raise(SIGUSR1), 0);
    plait_signals *other;
    int usr2 = SIGUSR2;
    CHECK_EQ(plait_signals_create(&other, &usr2, 1), 0); /* hands it to the waiter */
    pid_t pid = fork();
    void *got = NULL;
    int joined = plait_join(waiter, &got, SOON());
    if (pid == 0)
        /* (a wait's -ETIMEDOUT, returned by the task, is its failure: the join's) */
        _exit(joined != -ETIMEDOUT ? 1 : plait_signals_destroy(other) != 0 ? 2 : 0);
    check_child_exits_0(pid);
    CHECK_EQ(joined, 0);
    CHECK_EQ((int)(intptr_t)got, SIGUSR1);
    CHECK_EQ(plait_signals_destroy(other), 0);
    return NULL;
}

TEST(forked_child_does_not_see_a_delivery_handed_to_a_waiter)
{
    SKIP_UNDER_TSAN();
    int usr1 = SIGUSR1;
    CHECK_EQ(plait_signals_create(&handed_watcher, &usr1, 1), 0);
    check_run(fork_with_a_delivery_handed_to_a_waiter, NULL);
    CHECK_EQ(plait_signals_destroy(handed_watcher), 0);
}

/* A child made by _Fork(), which runs no fork handlers, keeps its parent's watchers as
 * they were but has no dispatcher thread: destroying the last watcher of a signal there
 * waited for that thread's word for ever. */
TEST(a_child_made_without_fork_handlers_destroys_its_watchers)
{
    SKIP_UNDER_TSAN();
    plait_signals *w = watch_usr1();
    if (CHECK_SANITIZED) /* (_Fork runs no sanitizer's fork handler: its locks free first) */
        others_asleep_before_fork();
    pid_t pid = _Fork();
    if (pid == 0) {
        alarm(3); /* (a destroy that waits for ever: the child dies of SIGALRM) */
        _exit(plait_signals_destroy(w) == 0 ? 0 : 1);
    }
    check_child_exits_0(pid);
    CHECK_EQ(plait_signals_destroy(w), 0);
}

/* A child made by _Fork() that watches a signal is served: its handler wrote into the
 * pipe it shares with its parent, whose dispatcher took the byte, and the child, which
 * looked started but had no dispatcher of its own, never woke its waiter (failed
 * first: the wait answered -ETIMEDOUT at its deadline, 5 s, with SIGALRM delivered at
 * 1 s; session 53's audit).  The watcher it inherited is served too, and its own new
 * watchers are nothing of the parent's: the parent's watcher sees no delivery. */
static int fork_child_waits(plait_signals *inherited)
{
    int alrm = SIGALRM;
    plait_signals *mine;
    if (plait_signals_create(&mine, &alrm, 1) != 0)
        return 1;
    alarm(1);
    if (plait_signals_wait(mine, plait_deadline_in(5 * PLAIT_SEC)) != SIGALRM)
        return 2;
    if (kill(getpid(), SIGUSR1) != 0 ||
        plait_signals_wait(inherited, plait_deadline_in(5 * PLAIT_SEC)) != SIGUSR1)
        return 3;
    return plait_signals_destroy(mine) == 0 && plait_signals_destroy(inherited) == 0 ? 0 : 4;
}

TEST(a_child_made_without_fork_handlers_is_served)
{
    SKIP_UNDER_TSAN();
    plait_signals *w = watch_usr1();
    if (CHECK_SANITIZED) /* (_Fork runs no sanitizer's fork handler: its locks free first) */
        others_asleep_before_fork();
    pid_t pid = _Fork();
    if (pid == 0)
        _exit(fork_child_waits(w));
    check_child_exits_0(pid);
    CHECK_EQ(plait_signals_wait(w, plait_now()), -ETIMEDOUT);
    CHECK_EQ(plait_signals_destroy(w), 0);
}

/* A program that blocks a signal in all its threads (it sigwait()s for it) and watched
 * it a while: once the last watcher is destroyed, a delivery stays pending for the
 * program.  The dispatcher thread, which takes the watched signals, blocked it again
 * only when it next woke, after the destroy had given the old disposition back: a
 * signal sent in between was delivered to it under SIG_DFL, and the process died (in
 * some hundreds of rounds).  In a child of its own, so that every thread blocks it. */
static int watch_then_sigwait(void)
{
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);
    int sig = SIGUSR1;
    int64_t end = plait_deadline_in(3 * PLAIT_SEC);
    for (int round = 0; round < 5000 && plait_now() < end; round++) {
        plait_signals *w;
        if (plait_signals_create(&w, &sig, 1) != 0 || plait_signals_destroy(w) != 0)
            return 1;
        if (kill(getpid(), SIGUSR1) != 0)
            return 2;
        struct timespec soon = {.tv_sec = 10};
        if (sigtimedwait(&usr1, NULL, &soon) != SIGUSR1)
            return 3; /* not pending: taken by another thread */
    }
    return 0;
}

TEST(a_signal_after_the_last_watcher_stays_pending_where_all_threads_block_it)
{
    SKIP_UNDER_TSAN();
    pid_t pid = fork();
    if (pid == 0)
        _exit(watch_then_sigwait());
    check_child_exits_0(pid);
}

/* A watcher counts the deliveries from its creation on, and those not taken when it
 * is destroyed are dropped: none passes to a watcher made later.  The hand-off used to
 * wait for the dispatcher, which then gave whatever was counted to the watchers of
 * that moment (a later watcher got an earlier delivery in most rounds). */
TEST(deliveries_stay_with_the_watchers_of_their_time)
{
    int sig = SIGUSR1;
    for (int round = 0; round < 20; round++) {
        plait_signals *before, *after;
        CHECK_EQ(plait_signals_create(&before, &sig, 1), 0);
        CHECK_EQ(raise(SIGUSR1), 0);
        CHECK_EQ(plait_signals_destroy(before), 0); /* its delivery goes with it */
        CHECK_EQ(plait_signals_create(&after, &sig, 1), 0);
        CHECK_EQ(plait_signals_wait(after, plait_deadline_in(20 * PLAIT_MS)), -ETIMEDOUT);
        /* one counted while `before` watches, before `after` was made: `before`'s only */
        CHECK_EQ(plait_signals_create(&before, &sig, 1), 0);
        plait_signals *later;
        CHECK_EQ(raise(SIGUSR1), 0);
        CHECK_EQ(plait_signals_create(&later, &sig, 1), 0);
        CHECK_EQ(plait_signals_wait(before, SOON()), SIGUSR1);
        CHECK_EQ(plait_signals_wait(after, SOON()), SIGUSR1);
        CHECK_EQ(plait_signals_wait(later, plait_deadline_in(20 * PLAIT_MS)), -ETIMEDOUT);
        CHECK_EQ(plait_signals_destroy(before), 0);
        CHECK_EQ(plait_signals_destroy(after), 0);
        CHECK_EQ(plait_signals_destroy(later), 0);
    }
}

RUN_TESTS(CASE(bad_input), CASE(a_child_made_without_fork_handlers_is_served), CASE(every_watcher_sees_every_delivery),
          CASE(signals_to_a_thread_whose_coroutines_switch_away_are_handled),
          CASE(a_signal_to_the_signal_thread_asleep_is_handled),
          CASE(a_signal_to_an_idle_pool_worker_is_handled),
          CASE(a_signal_to_a_thread_asleep_on_a_process_shared_word_is_handled),
          CASE(deliveries_stay_with_the_watchers_of_their_time),
          CASE(coroutine_waits_deadline_and_cancel), CASE(plain_thread_waits),
          CASE(old_disposition_comes_back), CASE(sigchld_and_processes),
          CASE(plain_fork_child_gets_old_disposition), CASE(destroy_racing_a_wait_is_refused),
          CASE(forked_child_destroys_an_inherited_watcher),
          CASE(forked_child_destroys_a_watcher_another_thread_waited_on),
          CASE(forked_child_does_not_see_the_parents_deliveries),
          CASE(forked_child_does_not_see_deliveries_handed_to_its_watchers),
          CASE(forked_child_does_not_see_a_delivery_handed_to_a_waiter),
          CASE(a_child_made_without_fork_handlers_destroys_its_watchers),
          CASE(a_signal_after_the_last_watcher_stays_pending_where_all_threads_block_it))
