/*
 * test_fork_handles.c — the handle of a task of the parent's other threads, in a child
 * forked while another thread of the parent held its lock.
 *
 * plait_cancel of a coroutine of another scheduler holds the task's lock while it
 * posts the cancellation to that scheduler's inbox.  This test is linked with
 * --wrap=plait__coro_cancel, whose wrapper parks the canceller inside that window on
 * demand; the main thread forks meanwhile.  The child got the lock held for ever: its
 * own calls on the handle spun in it (and the child never ended).  They must answer
 * -EPERM, as for any task that is not the child's, without touching the lock.  The
 * tasks of the forking thread's own scheduler are the child's: there the fork must wait
 * for such a holder to let the lock go (the last four cases).
 */
#include "fork_child.h"

#include "../src/internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

void __real_plait__coro_cancel(void *coro);
void __wrap_plait__coro_cancel(void *coro);
static atomic_int park_next_cancel; /* the next plait__coro_cancel parks until released */
static atomic_int parked, released;

void __wrap_plait__coro_cancel(void *coro)
{
    if (atomic_exchange(&park_next_cancel, 0)) {
        atomic_store(&parked, 1);
        wait_for(&released);
    }
    __real_plait__coro_cancel(coro);
}

static plait_task target;       /* a coroutine of another thread's scheduler */
static atomic_int target_ready;

static void *wait_to_be_cancelled(void *arg)
{
    (void)arg;
    return PLAIT_FAIL(plait_sleep_until(PLAIT_FOREVER));
}

/* Main of the other thread's scheduler: spawns the target and waits for its end. */
static void *run_target(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_spawn(&target, wait_to_be_cancelled, NULL), 0);
    atomic_store(&target_ready, 1);
    CHECK_EQ(plait_join(target, NULL, PLAIT_FOREVER), -ECANCELED);
    return NULL;
}

static void *cancel_target(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_cancel(target), 0);
    return NULL;
}

/* In the child: every call on the parent's task is refused, at once. */
static void calls_on_the_parent_s_task(void)
{
    int64_t start = plait_now();
    CHECK_EQ(plait_cancel(target), -EPERM);
    CHECK_EQ(plait_join(target, NULL, plait_deadline_in(100 * PLAIT_MS)), -EPERM);
    CHECK_EQ(plait_wait_any(&target, 1, plait_deadline_in(100 * PLAIT_MS)), -EPERM);
    int err = 1;
    CHECK_EQ(plait_wait_all(&target, 1, NULL, &err, plait_deadline_in(100 * PLAIT_MS)),
             -EPERM);
    CHECK_EQ(err, 1); /* the call's own failure: nothing written */
    CHECK_EQ(plait_detach(target), -EPERM);
    CHECK_PROMPT(start);
}

/* A thread cancels a coroutine of another thread's scheduler and is parked while it
 * holds the task's lock; the main thread forks.  The child's calls on the task answer
 * -EPERM (they spun for ever on the lock); in the parent the cancellation goes on. */
TEST(a_cancel_in_flight_at_a_fork_leaves_the_child_s_calls_answering)
{
    sched_thread st;
    sched_thread_start(&st, run_target, NULL);
    wait_for(&target_ready);
    atomic_store(&park_next_cancel, 1);
    pthread_t canceller;
    thread_start(&canceller, cancel_target, NULL);
    wait_for(&parked);
    pid_t pid = fork_child(true);
    if (pid == 0) {
        calls_on_the_parent_s_task();
        child_exit();
    }
    reap_ok(pid, 5);
    atomic_store(&released, 1);
    thread_join(canceller);
    sched_thread_join(&st);
}

static void *forty_two(void *arg)
{
    (void)arg;
    return ARG(42);
}

/* The rule holds for a task of another thread that had finished before the fork: its
 * handle is the parent's (whose threads may have been joining it), not the child's.
 * A task the child starts itself is its own. */
TEST(a_finished_task_of_another_thread_is_not_the_child_s)
{
    plait_task done;
    CHECK_EQ(plait_thread_start(&done, forty_two, NULL, NULL), 0);
    CHECK_EQ(plait_wait_any(&done, 1, SOON()), 0);
    pid_t pid = fork_child(true);
    if (pid == 0) {
        CHECK_EQ(plait_join(done, NULL, SOON()), -EPERM);
        plait_task own;
        void *value = NULL;
        CHECK_EQ(plait_thread_start(&own, forty_two, NULL, NULL), 0);
        CHECK_EQ(plait_join(own, &value, SOON()), 0);
        CHECK_EQ(INT(value), 42);
        child_exit();
    }
    reap_ok(pid, 5);
    void *value = NULL;
    CHECK_EQ(plait_join(done, &value, SOON()), 0);
    CHECK_EQ(INT(value), 42);
}

/* ---- a coroutine of the forking thread's scheduler joining a parent's task ---- */

static atomic_int joiner_linked;

/* A coroutine that waits for the other scheduler's task until a deadline (a wait that
 * consumes nothing: that task's scheduler joins it). */
static void *join_other_for_a_while(void *arg)
{
    (void)arg;
    atomic_store(&joiner_linked, 1);
    int r = plait_wait_any(&target, 1, plait_deadline_in(300 * PLAIT_MS));
    return r < 0 ? PLAIT_FAIL(r) : ARG(r);
}

static void *fork_while_the_lock_is_held(void *arg)
{
    (void)arg;
    plait_task joiner;
    CHECK_EQ(plait_spawn(&joiner, join_other_for_a_while, NULL), 0);
    while (!atomic_load(&joiner_linked))
        CHECK_EQ(plait_yield(), 0);
    settle(); /* the joiner is linked to the task and asleep */
    atomic_store(&park_next_cancel, 1);
    pthread_t canceller;
    thread_start(&canceller, cancel_target, NULL);
    wait_for(&parked);
    pid_t pid = fork_child(false);
    if (pid == 0) {
        /* the joiner's wait ends at its deadline, and its node is given up: that must
         * not take the parent's task's lock, held for ever here */
        int64_t start = plait_now();
        CHECK_EQ(plait_join(joiner, NULL, SOON()), -ETIMEDOUT);
        CHECK_PROMPT(start);
        child_exit();
    }
    reap_ok(pid, 5);
    atomic_store(&released, 1);
    thread_join(canceller);
    int r = plait_join(joiner, NULL, SOON()); /* its deadline, or the task's end */
    if (r != 0)
        CHECK_EQ(r, -ETIMEDOUT);
    return NULL;
}

/* A coroutine of the forking thread's scheduler was joining, with a deadline, a task of
 * another thread's scheduler whose lock a canceller held at the fork.  In the child its
 * wait ends at the deadline (its task is not the child's: a new join would be -EPERM);
 * giving up its node took that lock, held for ever: the child's scheduler spun. */
TEST(a_timed_join_in_flight_at_a_fork_ends_in_the_child)
{
    atomic_store(&parked, 0);
    atomic_store(&released, 0);
    sched_thread st;
    atomic_store(&target_ready, 0);
    sched_thread_start(&st, run_target, NULL);
    wait_for(&target_ready);
    check_run(fork_while_the_lock_is_held, NULL);
    sched_thread_join(&st);
}

/* ---- a pool task of the child joining a parent's task ---- */

static plait_task parents; /* a plait thread of the parent, running */
static atomic_int second_queued;
static atomic_int join_result, join_slow;

static void *sleep_long(void *arg)
{
    (void)arg;
    struct timespec t = {1, 500 * 1000 * 1000};
    nanosleep(&t, NULL);
    return NULL;
}

static void *join_the_parent_s(void *arg)
{
    (void)arg;
    wait_for(&second_queued);
    int64_t start = plait_now();
    atomic_store(&join_result, plait_join(parents, NULL, SOON()));
    atomic_store(&join_slow, plait_now() - start >= 500 * PLAIT_MS);
    return NULL;
}

/* In a child, a pool task's join of a parent's task is -EPERM at once: it ran the
 * pool's queued tasks first, as a join of a task that may yet finish does (for ever
 * while the queue has work, with no deadline). */
TEST(a_pool_task_s_join_of_a_parent_s_task_is_refused_at_once)
{
    CHECK_EQ(plait_thread_start(&parents, wait_to_be_cancelled, NULL, NULL), 0);
    pid_t pid = fork_child(false);
    if (pid == 0) {
        plait_pool *pool;
        CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 1}), 0);
        plait_task first, second;
        CHECK_EQ(plait_pool_submit(pool, &first, join_the_parent_s, NULL), 0);
        CHECK_EQ(plait_pool_submit(pool, &second, sleep_long, NULL), 0);
        atomic_store(&second_queued, 1);
        CHECK_EQ(plait_join(first, NULL, SOON()), 0);
        CHECK_EQ(atomic_load(&join_result), -EPERM);
        CHECK_EQ(atomic_load(&join_slow), 0);
        CHECK_EQ(plait_join(second, NULL, SOON()), 0);
        CHECK_EQ(plait_pool_destroy(pool), 0);
        child_exit();
    }
    reap_ok(pid, 10);
    CHECK_EQ(plait_cancel(parents), 0);
    CHECK_EQ(plait_join(parents, NULL, SOON()), -ECANCELED);
}

/* ---- the end in the child of a task a parent's coroutine was waiting for ---- */

static plait_task ending;       /* a coroutine of the forking thread's scheduler */
static atomic_int ending_ready;
static atomic_int other_tid;    /* the other scheduler's thread, as its wait begins */
static int busy_pipe[2];        /* the other scheduler waits on its read end */

static void *wait_on_the_pipe(void *arg)
{
    (void)arg;
    CHECK(plait_wait_fd(busy_pipe[0], POLLIN, SOON()) > 0);
    return NULL;
}

/* Main of the other thread's scheduler: waits for the forking scheduler's task while its
 * poller is busy (so it sleeps in it, woken through its eventfd). */
static void *wait_for_the_ending_task(void *arg)
{
    (void)arg;
    plait_task poller;
    CHECK_EQ(plait_spawn(&poller, wait_on_the_pipe, NULL), 0);
    while (!atomic_load(&ending_ready))
        CHECK_EQ(plait_sleep(PLAIT_MS), 0);
    atomic_store(&other_tid, gettid_());
    CHECK_EQ(plait_wait_any(&ending, 1, SOON()), 0);
    CHECK_EQ(plait_join(poller, NULL, SOON()), 0);
    return NULL;
}

/* The child's own descriptors where the parent's eventfds were: a pipe's write end in
 * place of every eventfd copy; its read end (non-blocking), or -1. */
static int eventfds_to_a_pipe(void)
{
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0)
        return -1;
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[300], link[64];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n < 0)
            continue;
        link[n] = '\0';
        if (strstr(link, "eventfd"))
            CHECK(dup2(p[1], atoi(e->d_name)) >= 0);
    }
    if (d)
        closedir(d);
    return p[0];
}

static void *fork_before_the_end(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_spawn(&ending, wait_to_be_cancelled, NULL), 0);
    atomic_store(&ending_ready, 1);
    wait_asleep(&other_tid); /* the other is linked, asleep in its poller */
    pid_t pid = fork_child(false);
    if (pid == 0) {
        int seen = eventfds_to_a_pipe();
        CHECK(seen >= 0);
        CHECK_EQ(plait_cancel(ending), 0); /* it ends here, the child's */
        CHECK_EQ(plait_join(ending, NULL, SOON()), -ECANCELED);
        char buf[16];
        CHECK_EQ(read(seen, buf, sizeof buf), -1); /* nothing written there */
        child_exit();
    }
    reap_ok(pid, 5);
    CHECK_EQ(plait_cancel(ending), 0);
    CHECK_EQ(plait_join(ending, NULL, SOON()), -ECANCELED);
    CHECK_EQ(write(busy_pipe[1], "x", 1), 1);
    return NULL;
}

/* A coroutine of another thread's scheduler waits for a task of the forking thread's
 * scheduler, which ends in the child.  Its end there woke the copy of that waiter: it
 * posted to the other scheduler's inbox (whose lock a parent thread may have held at
 * the fork) and wrote that scheduler's wake-up eventfd, the parent's (or whatever the
 * child had put at that number). */
TEST(a_task_s_end_in_the_child_leaves_the_parent_s_waiters_alone)
{
    CHECK_EQ(pipe2(busy_pipe, O_NONBLOCK | O_CLOEXEC), 0);
    sched_thread st;
    sched_thread_start(&st, wait_for_the_ending_task, NULL);
    check_run(fork_before_the_end, NULL);
    sched_thread_join(&st);
    close(busy_pipe[0]);
    close(busy_pipe[1]);
}

/* ---- a finished task on a set's done list, its lock held at the fork ---- */

bool __real_plait__waiter_claim(void *w);
bool __wrap_plait__waiter_claim(void *w);
static _Thread_local bool park_my_claim; /* this thread's next claim parks */
static atomic_int claim_parked, claim_released;

/* plait_wait_any of a finished task claims its waiter under the task's lock: parked
 * there on demand. */
bool __wrap_plait__waiter_claim(void *w)
{
    if (park_my_claim) {
        park_my_claim = false;
        atomic_store(&claim_parked, 1);
        wait_for(&claim_released);
    }
    return __real_plait__waiter_claim(w);
}

static plait_task watched; /* a plait thread of the parent, finished, on the set */

static void *wait_for_the_finished_one(void *arg)
{
    (void)arg;
    park_my_claim = true;
    CHECK_EQ(plait_wait_any(&watched, 1, SOON()), 0);
    return NULL;
}

/* A thread of the parent finished, on a set's done list; another thread of the parent
 * waits for it and holds its lock at the fork.  In the child, the set hands it back (a
 * handle that is not the child's: -EPERM) or lets it go at its destroy, without that
 * lock (they spun in it for ever).  In the parent the set goes on. */
TEST(a_finished_task_on_a_set_whose_lock_is_held_at_a_fork)
{
    plait_completed *set;
    CHECK_EQ(plait_completed_create(&set), 0);
    CHECK_EQ(plait_thread_start(&watched, forty_two, NULL, NULL), 0);
    CHECK_EQ(plait_completed_add(set, watched), 0);
    CHECK_EQ(plait_wait_any(&watched, 1, SOON()), 0); /* finished: on the done list */
    pthread_t waiter;
    thread_start(&waiter, wait_for_the_finished_one, NULL);
    wait_for(&claim_parked);
    pid_t pid = fork_child(true);
    if (pid == 0) {
        int64_t start = plait_now();
        plait_task t = {0};
        CHECK_EQ(plait_completed_next(set, &t, SOON()), 0);
        CHECK(t.future == watched.future);
        CHECK_EQ(plait_join(t, NULL, SOON()), -EPERM);
        CHECK_EQ(plait_completed_destroy(set), 0);
        CHECK_PROMPT(start);
        child_exit();
    }
    reap_ok(pid, 5);
    pid = fork_child(true);
    if (pid == 0) {
        int64_t start = plait_now();
        CHECK_EQ(plait_completed_destroy(set), 0);
        CHECK_PROMPT(start);
        child_exit();
    }
    reap_ok(pid, 5);
    atomic_store(&claim_released, 1);
    thread_join(waiter);
    plait_task t = {0};
    void *value = NULL;
    CHECK_EQ(plait_completed_next(set, &t, SOON()), 0);
    CHECK_EQ(plait_join(t, &value, SOON()), 0);
    CHECK_EQ(INT(value), 42);
    CHECK_EQ(plait_completed_destroy(set), 0);
}

/* ---- a task of the forking thread's scheduler, its lock held by another thread ----
 *
 * The child goes on with the forking thread's coroutines and their tasks; another
 * thread inside a call on one of those tasks (or on a set watching one) held that lock
 * at the fork: held for ever in the child, where the task's end and the child's calls
 * on it spun.  The fork must wait until that thread has let it go.  The wrappers park
 * the other thread inside the call, holding the lock; the forking thread, finding a
 * lock held as it forks, lets it go on (plait__spin_pause, which pauses the waits for
 * a spin lock: the unchanged fork took no such lock and went on with it held). */

void __real_plait__spin_pause(unsigned spins);
void __wrap_plait__spin_pause(unsigned spins);
int __real_plait__wait_on_helping(void *q, void *lock, int64_t deadline, const char *what,
                                  const void *object);
int __wrap_plait__wait_on_helping(void *q, void *lock, int64_t deadline, const char *what,
                                  const void *object);
static _Thread_local bool forking; /* this thread is in fork_child() */
static _Thread_local bool park_my_set_wait; /* this thread's next set wait parks */
static atomic_int set_wait_parked, set_wait_released, forker_waited;

void __wrap_plait__spin_pause(unsigned spins)
{
    if (forking) {
        atomic_store(&forker_waited, 1);
        atomic_store(&released, 1);
        atomic_store(&claim_released, 1);
        atomic_store(&set_wait_released, 1);
    }
    __real_plait__spin_pause(spins);
}

/* plait_completed_next, finding nothing finished, waits under the set's lock, which
 * the wait lets go: parked before, on demand. */
int __wrap_plait__wait_on_helping(void *q, void *lock, int64_t deadline, const char *what,
                                  const void *object)
{
    if (park_my_set_wait) {
        park_my_set_wait = false;
        atomic_store(&set_wait_parked, 1);
        wait_for(&set_wait_released);
    }
    return __real_plait__wait_on_helping(q, lock, deadline, what, object);
}

/* Start holder (a thread that parks in a call, holding a lock, and sets
 * *holder_parked), fork once it has parked, and in the child run in_child(arg), which
 * must return promptly; then check that the fork waited for the lock, and let holder
 * go on.  The holder thread, for the caller to join. */
static pthread_t fork_while_held(void *(*holder)(void *), atomic_int *holder_parked,
                                 atomic_int *release, void (*in_child)(void *), void *arg)
{
    atomic_store(holder_parked, 0);
    atomic_store(release, 0);
    pthread_t th;
    thread_start(&th, holder, NULL);
    wait_for(holder_parked);
    atomic_store(&forker_waited, 0);
    forking = true;
    pid_t pid = fork_child(false);
    forking = false;
    if (pid == 0) {
        int64_t start = plait_now();
        in_child(arg);
        CHECK_PROMPT(start);
        child_exit();
    }
    reap_ok(pid, 5);
    CHECK_EQ(atomic_load(&forker_waited), 1);
    atomic_store(release, 1);
    return th;
}

static plait_task sleeper; /* a coroutine of the forking thread's scheduler */

static void *cancel_sleeper(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_cancel(sleeper), 0);
    return NULL;
}

/* In the child: cancel the sleeper too (when arg says so), and join it. */
static void join_the_cancelled_sleeper(void *arg)
{
    if (arg)
        CHECK_EQ(plait_cancel(sleeper), 0);
    CHECK_EQ(plait_join(sleeper, NULL, SOON()), -ECANCELED);
}

/* arg: whether the child cancels the task too */
static void *fork_while_a_canceller_holds_the_lock(void *arg)
{
    CHECK_EQ(plait_spawn(&sleeper, wait_to_be_cancelled, NULL), 0);
    settle(); /* asleep */
    atomic_store(&park_next_cancel, 1);
    thread_join(fork_while_held(cancel_sleeper, &parked, &released,
                                join_the_cancelled_sleeper, arg));
    CHECK_EQ(plait_join(sleeper, NULL, SOON()), -ECANCELED);
    return NULL;
}

/* Another thread cancels a coroutine of the forking thread's scheduler, holding its
 * task's lock at the fork.  The child joins the task (cancelled by then), and in a
 * second case cancels it first; in the parent the cancellation goes on. */
TEST(a_cancel_of_the_forking_scheduler_s_task_in_flight_at_a_fork)
{
    check_run(fork_while_a_canceller_holds_the_lock, NULL);
}

TEST(the_child_cancels_a_task_whose_cancel_was_in_flight_at_the_fork)
{
    check_run(fork_while_a_canceller_holds_the_lock, ARG(1));
}

static plait_task finished_here; /* a finished coroutine of the forking thread's */

static void *wait_for_the_finished_coroutine(void *arg)
{
    (void)arg;
    park_my_claim = true;
    CHECK_EQ(plait_wait_any(&finished_here, 1, SOON()), 0);
    return NULL;
}

/* Join the finished coroutine: its outcome, 42. */
static void join_the_finished_one(void *arg)
{
    (void)arg;
    void *value = NULL;
    CHECK_EQ(plait_join(finished_here, &value, SOON()), 0);
    CHECK_EQ(INT(value), 42);
}

static void *fork_while_a_waiter_holds_a_finished_task_s_lock(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_spawn(&finished_here, forty_two, NULL), 0);
    CHECK_EQ(plait_wait_any(&finished_here, 1, SOON()), 0);
    thread_join(fork_while_held(wait_for_the_finished_coroutine, &claim_parked,
                                &claim_released, join_the_finished_one, NULL));
    join_the_finished_one(NULL);
    return NULL;
}

/* A coroutine of the forking thread's scheduler has finished; another thread waits
 * for it, holding its task's lock at the fork.  The child joins it: its outcome. */
TEST(a_wait_for_the_forking_scheduler_s_finished_task_in_flight_at_a_fork)
{
    check_run(fork_while_a_waiter_holds_a_finished_task_s_lock, NULL);
}

static plait_completed *watching; /* watches sleeper */

static void *next_of_the_set(void *arg)
{
    (void)arg;
    park_my_set_wait = true;
    plait_task t = {0};
    CHECK_EQ(plait_completed_next(watching, &t, SOON()), 0);
    CHECK(t.future == sleeper.future);
    return NULL;
}

static void *fork_while_a_set_s_lock_is_held(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_completed_create(&watching), 0);
    CHECK_EQ(plait_spawn(&sleeper, wait_to_be_cancelled, NULL), 0);
    CHECK_EQ(plait_completed_add(watching, sleeper), 0);
    /* in the child, the sleeper's end pushes it on the set: the lock the other thread
     * held at the fork */
    pthread_t next = fork_while_held(next_of_the_set, &set_wait_parked, &set_wait_released,
                                     join_the_cancelled_sleeper, ARG(1));
    CHECK_EQ(plait_cancel(sleeper), 0);
    CHECK_EQ(plait_join(sleeper, NULL, SOON()), -ECANCELED); /* its end wakes the next */
    thread_join(next);
    CHECK_EQ(plait_completed_destroy(watching), 0);
    return NULL;
}

/* A coroutine of the forking thread's scheduler is on a plait_completed set, whose
 * lock another thread, inside plait_completed_next, holds at the fork.  In the child
 * the task ends (pushed on that set) and is joined. */
TEST(a_set_watching_the_forking_scheduler_s_task_held_at_a_fork)
{
    check_run(fork_while_a_set_s_lock_is_held, NULL);
}

/* ---- a free future whose lock a parent thread held at the fork ----
 *
 * A call on a stale handle takes its future's lock to compare generations: a parent
 * thread inside one at the fork, on a future free in the forking thread's cache, left
 * that lock held in the child, whose next task then took that future and spun for ever
 * as it ended.  The hold is made here by the forking thread itself, just before the
 * fork (the child cannot tell whose it was). */

TEST(a_free_future_locked_at_the_fork_serves_the_child_s_next_task)
{
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, forty_two, NULL, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0); /* its future: first in this thread's cache */
    plait__future *f = t.future;
    plait__spin_lock(&f->lock); /* as a stale handle's check on another thread would */
    pid_t pid = fork_child(true);
    if (pid == 0) {
        plait_task again;
        void *r = NULL;
        CHECK_EQ(plait_thread_start(&again, forty_two, NULL, NULL), 0);
        CHECK(again.future == f); /* the same future, taken from the cache */
        CHECK_EQ(plait_join(again, &r, SOON()), 0);
        CHECK_EQ(INT(r), 42);
        child_exit();
    }
    plait__spin_unlock(&f->lock);
    reap_ok(pid, 5);
    CHECK_EQ(plait_join(t, NULL, SOON()), -ESRCH);
}

RUN_TESTS(CASE(a_cancel_in_flight_at_a_fork_leaves_the_child_s_calls_answering),
          CASE(a_finished_task_of_another_thread_is_not_the_child_s),
          CASE(a_timed_join_in_flight_at_a_fork_ends_in_the_child),
          CASE(a_pool_task_s_join_of_a_parent_s_task_is_refused_at_once),
          CASE(a_task_s_end_in_the_child_leaves_the_parent_s_waiters_alone),
          CASE(a_finished_task_on_a_set_whose_lock_is_held_at_a_fork),
          CASE(a_cancel_of_the_forking_scheduler_s_task_in_flight_at_a_fork),
          CASE(the_child_cancels_a_task_whose_cancel_was_in_flight_at_the_fork),
          CASE(a_wait_for_the_forking_scheduler_s_finished_task_in_flight_at_a_fork),
          CASE(a_set_watching_the_forking_scheduler_s_task_held_at_a_fork),
          CASE(a_free_future_locked_at_the_fork_serves_the_child_s_next_task))
