/*
 * test_fork.c — what a child forked (plain fork()) from inside plait's own contexts
 * finds: it must be able to use all of plait, without running or waiting for what
 * belongs to its parent.  (And one case that forks only for a fresh default pool of
 * one worker.)
 *
 * Each case forks; the child reports through its exit status (0: all its checks held)
 * and is reaped within a limit, so a hang in the child is a failure here, not a stall.
 */
#include "fork_child.h"

#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Fork; in the child run fn(arg) then exit; in the parent reap the child (within 20 s)
 * and check that it exited with 0. */
static void in_child(void (*fn)(void *), void *arg)
{
    pid_t pid = fork_child(true);
    if (pid == 0) {
        fn(arg);
        child_exit();
    }
    reap_ok(pid, 20);
}

/* ---- the harness: a child's status is its own checks' ---- */

/* A child inherited the parent's count of failed checks: after one failed case, every
 * child of every later case ended with status 1 and its case failed too (a CI run once
 * had five of ten cases fail for one). */
TEST(a_child_s_status_speaks_for_its_own_checks)
{
    int before = check_failures;
    check_failures = before + 5; /* as if checks had failed before the fork */
    pid_t pid = fork_child(true);
    if (pid == 0)
        child_exit(); /* no check of its own failed */
    int status = reap_within(pid, 20);
    check_failures = before;
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
}

/* ---- fork inside a pool task ---- */

static pid_t *ran_in; /* shared: the pid the parent's queued task ran in */

static void *note_pid(void *arg)
{
    *ran_in = getpid();
    return arg;
}

static void *own_task(void *arg) { return arg; }

static void child_uses_its_own_pool(void *arg)
{
    (void)arg;
    plait_pool *mine;
    CHECK_EQ(plait_pool_create(&mine, &(plait_pool_options){.threads = 1}), 0);
    plait_task t;
    void *v = NULL;
    CHECK_EQ(plait_pool_submit(mine, &t, own_task, ARG(7)), 0);
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    CHECK_EQ(INT(v), 7);
    CHECK_EQ(plait_pool_destroy(mine), 0);
    CHECK_EQ(*ran_in, 0); /* the parent's task did not run here */
}

static void *fork_in_task(void *arg)
{
    plait_pool *pool = arg;
    plait_task queued;
    CHECK_EQ(plait_pool_submit(pool, &queued, note_pid, NULL), 0);
    in_child(child_uses_its_own_pool, NULL);
    CHECK_EQ(plait_join(queued, NULL, SOON()), 0);
    CHECK_EQ(*ran_in, getpid());
    return NULL;
}

/* A task of a one-worker pool queues another, then forks; the child makes a pool of
 * its own and joins a task of it.  The child's thread still counted as a worker of the
 * parent's pool: its join helped by running the parent's queued task (which the parent
 * then ran too). */
TEST(fork_in_a_pool_task_leaves_the_parent_s_tasks)
{
    ran_in = mmap(NULL, sizeof *ran_in, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                  -1, 0);
    CHECK(ran_in != MAP_FAILED);
    *ran_in = 0;
    plait_pool *pool;
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 1}), 0);
    plait_task t;
    CHECK_EQ(plait_pool_submit(pool, &t, fork_in_task, pool), 0);
    CHECK_EQ(plait_join(t, NULL, plait_deadline_in(60 * PLAIT_SEC)), 0);
    CHECK_EQ(plait_pool_destroy(pool), 0);
    munmap(ran_in, sizeof *ran_in);
}

/* ---- fork inside a coroutine, with the slow-coroutine watchdog on ---- */

static void *fork_in_coroutine(void *arg)
{
    /* The fork waits until the watchdog thread runs its own code: under
     * AddressSanitizer a fork while that thread is still starting (ASan's start-up
     * allocates) could leave the child's allocator locked for good (gcc 12's libasan
     * takes no allocator lock around fork), and the child then hung in its first
     * malloc from a new thread. */
    int64_t until = plait_deadline_in(10 * PLAIT_SEC);
    while (threads_named("plait-watchdog", NULL) == 0 && plait_now() < until)
        CHECK_EQ(plait_sleep(PLAIT_MS), 0);
    CHECK_EQ(threads_named("plait-watchdog", NULL), 1);
    pid_t pid = fork_child(false); /* under TSan the child stops there: see fork_child */
    if (pid == 0) { /* a thread made here may reuse the watchdog's thread descriptor */
        void *v = NULL;
        CHECK_EQ(plait_to_thread(own_task, ARG(3), &v, SOON()), 0);
        CHECK_EQ(INT(v), 3);
        return NULL;
    }
    *(pid_t *)arg = pid;
    return NULL;
}

/* The scheduler's watchdog thread is not in the child, whose scheduler still named it:
 * when plait_run ended there it joined a thread that was not its own (glibc had reused
 * the descriptor for a default-pool worker) and waited for ever. */
TEST(fork_in_a_coroutine_with_the_watchdog_on)
{
    CHECK_EQ(plait_set_slow_warning(60 * PLAIT_SEC), 0);
    pid_t me = getpid(), pid = 0;
    fflush(NULL);
    CHECK_EQ(plait_run(fork_in_coroutine, &pid, NULL), 0);
    if (getpid() != me)
        child_exit();
    CHECK_EQ(plait_set_slow_warning(0), 0);
    CHECK(pid > 0);
    int status = reap_within(pid, 20);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
}

/* A scheduler keeps the threshold it started with (plait.h: a change applies to the
 * schedulers started after it), in a child forked from one of its coroutines too: the
 * child's watchdog, started afresh, took the threshold of the moment, 0 here, and the
 * child's stalls went unsaid (session 52's audit). */
static void *fork_then_stall(void *arg)
{
    (void)arg;
    int64_t until = plait_deadline_in(10 * PLAIT_SEC);
    while (threads_named("plait-watchdog", NULL) == 0 && plait_now() < until)
        CHECK_EQ(plait_sleep(PLAIT_MS), 0); /* (see fork_in_coroutine: ASan, a new thread) */
    CHECK_EQ(plait_set_slow_warning(0), 0); /* for schedulers started from now on */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *said = tmpfile();
        if (!said || dup2(fileno(said), STDERR_FILENO) < 0)
            _exit(2);
        int64_t stall_until = plait_now() + 500 * PLAIT_MS; /* 10 thresholds */
        while (plait_now() < stall_until)
            ;
        char buf[512] = {0};
        ssize_t n = pread(fileno(said), buf, sizeof buf - 1, 0);
        _exit(n > 0 && strstr(buf, "without yielding") ? 0 : 1);
    }
    CHECK(pid > 0);
    int status = reap_within(pid, 20);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0); /* 1: no warning */
    return NULL;
}

TEST(slow_warning_threshold_kept_in_a_forked_child)
{
    CHECK_EQ(plait_set_slow_warning(50 * PLAIT_MS), 0);
    check_run(fork_then_stall, NULL);
    CHECK_EQ(plait_set_slow_warning(0), 0);
}

/* ---- fork inside a coroutine while another waits on a process-shared object ---- */

static plait_psem *psem;

static void *acquire_psem(void *arg)
{
    (void)arg;
    return PLAIT_FAIL(plait_psem_acquire(psem, SOON()));
}

/* One round: fork while a coroutine waits on psem; the child's copy of the wait must
 * end with the parent's release (if child_waits: else the child leaves at once), and
 * the parent's with its cancel. */
static void fork_beside_a_psem_wait_once(int64_t child_deadline, bool child_waits)
{
    plait_task waiter;
    CHECK_EQ(plait_spawn(&waiter, acquire_psem, NULL), 0);
    settle(); /* it waits, through a watcher thread of this process */
    int ready[2];
    CHECK_EQ(pipe(ready), 0);
    pid_t pid = fork();
    if (pid == 0) {
        if (!child_waits)
            child_exit(); /* its end of ready closes: the parent reads end of file */
        /* the wait goes on here: it looks at the count again and sleeps anew, counted
         * among the semaphore's waiters while the parent's copy of it takes itself off
         * (the fork made two of one wait: each once counted only once, so the release
         * below saw no waiter to wake) */
        settle();
        CHECK_EQ(write(ready[1], "r", 1), 1);
        CHECK_EQ(plait_join(waiter, NULL, child_deadline), 0); /* the parent's release */
        child_exit();
    }
    CHECK(pid > 0);
    CHECK_EQ(close(ready[1]), 0);
    CHECK_EQ(plait_cancel(waiter), 0);
    CHECK_EQ(plait_join(waiter, NULL, SOON()), -ECANCELED);
    char c;
    /* (a blocking read: nothing else runs here) */
    CHECK_EQ(read(ready[0], &c, 1), child_waits ? 1 : 0);
    CHECK_EQ(close(ready[0]), 0);
    CHECK_EQ(plait_psem_release(psem), 0);
    int status = reap_within(pid, 20);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_EQ(plait_psem_value(psem), child_waits ? 0 : 1); /* the child took it */
    if (!child_waits)
        CHECK_EQ(plait_psem_acquire(psem, 0), 0);
}

static void *fork_beside_a_psem_wait(void *arg)
{
    (void)arg;
#if defined(__SANITIZE_THREAD__)
    fork_beside_a_psem_wait_once(SOON(), false); /* (see fork_child) */
    CHECK_SKIP("the child's copy of the wait does not run under ThreadSanitizer");
#else
    fork_beside_a_psem_wait_once(SOON(), true);
#endif
    return NULL;
}

/* A coroutine waits on a process semaphore when its scheduler's thread forks.  In the
 * child its wait sat in a watcher thread that is not there, and the parent's release
 * was missed: the wait ran out its deadline with the count at 1. */
TEST(fork_beside_a_coroutine_waiting_on_a_process_semaphore)
{
    CHECK_EQ(plait_psem_create(&psem, 0), 0);
    check_run(fork_beside_a_psem_wait, NULL);
    CHECK_EQ(plait_psem_destroy(psem), 0);
}

/* Keeps the watcher at work: a wait of 50 µs on another semaphore, again and again,
 * each one a new word for the watcher to add to its list and then drop. */
static plait_psem *poked;
static atomic_bool stop_poking;

static void *poke_watcher(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_poking))
        CHECK_EQ(plait_psem_acquire(poked, plait_deadline_in(50 * PLAIT_US)), -ETIMEDOUT);
    return NULL;
}

static void *poker(void *arg)
{
    check_run(poke_watcher, arg);
    return NULL;
}

static void *forks_beside_psem_waits(void *arg)
{
    (void)arg;
    /* Under a sanitizer the child cannot wait: its wait needs a new watcher thread,
     * which the runtime may never run in a child forked while another thread works
     * (see child_calls_a_pool_of_the_parent); the plain build tests it. */
    for (int round = 0; round < 100 && !check_failures; round++)
        fork_beside_a_psem_wait_once(plait_deadline_in(5 * PLAIT_SEC), !CHECK_SANITIZED);
    return NULL;
}

/* The same, forking while the watcher works: a fork that found its lock held (by the
 * watcher, or by another thread adding a wait) once left the child's coroutine asleep
 * for ever, and one that came between the watcher's claim of a waiter and its wake-up
 * lost that wake-up.  A stress: the watcher is at work most of the time. */
TEST(forks_while_the_watcher_works)
{
    CHECK_EQ(plait_psem_create(&psem, 0), 0);
    CHECK_EQ(plait_psem_create(&poked, 0), 0);
    pthread_t th;
    thread_start(&th, poker, NULL);
    check_run(forks_beside_psem_waits, NULL);
    atomic_store(&stop_poking, true);
    thread_join(th);
    CHECK_EQ(plait_psem_destroy(poked), 0);
    CHECK_EQ(plait_psem_destroy(psem), 0);
}

/* ---- forks beside other threads inside plait's locks ---- */

/* The forks of these stresses: enough that a lock another thread takes for an instant
 * is held at some fork (each old bug hung 1 child in 30 to 200). */
#define STRESS_FORKS (CHECK_SANITIZED ? 100 : 1500)

static atomic_bool stress_done;
static int children_hung, children_failed;

/* In a stress's child: killed if still there in 3 s (not the test's own alarm
 * handler, which would report the whole test as hung). */
static void child_alarm(void)
{
    signal(SIGALRM, SIG_DFL);
    alarm(3);
}

/* Reap a stress's child: one killed by its alarm hung. */
static void count_child(pid_t pid)
{
    int status = reap_within(pid, 20);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
        children_hung++;
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        children_failed++;
}

static void check_children(void)
{
    CHECK_EQ(children_hung, 0);
    CHECK_EQ(children_failed, 0);
    children_hung = children_failed = 0;
    atomic_store(&stress_done, false);
}

/* A signal watcher's semaphore is taken by any thread's wait without the registry's
 * lock: a child forked while another thread was inside it spun for ever in its own
 * wait on the watcher it inherits. */
static plait_signals *stress_watcher;

static void *poll_the_watcher(void *arg)
{
    (void)arg;
    while (!atomic_load(&stress_done))
        CHECK_EQ(plait_signals_wait(stress_watcher, plait_now()), -ETIMEDOUT);
    return NULL;
}

TEST(fork_beside_threads_polling_a_signal_watcher)
{
    int sigs[] = {SIGUSR2};
    CHECK_EQ(plait_signals_create(&stress_watcher, sigs, 1), 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        thread_start(&th[i], poll_the_watcher, NULL);
    for (int i = 0; i < STRESS_FORKS && !children_hung; i++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            child_alarm();
            _exit(plait_signals_wait(stress_watcher, plait_deadline_in(PLAIT_MS)) == -ETIMEDOUT &&
                          plait_signals_destroy(stress_watcher) == 0
                      ? 0
                      : 1);
        }
        CHECK(pid > 0);
        count_child(pid);
    }
    atomic_store(&stress_done, true);
    for (int i = 0; i < 2; i++)
        thread_join(th[i]);
    check_children();
    CHECK_EQ(plait_signals_destroy(stress_watcher), 0);
}

/* Other threads poll a task's future (each poll takes its lock for an instant) while
 * the task's code forks, and the child returns: from a scheduler's main coroutine run
 * in a pool task (plait_run then took the parent task's lock as main ended), from a
 * plait thread's function (the thread completed the parent's future), and from a pool
 * task (the worker completed it, ran the parent's queued tasks again, and parked for
 * ever): the child hung, or did the parent's work twice.  A child that returns from a
 * task or a plait thread's function ends there (_exit(0)). */
static plait_task stress_task;
static atomic_int *queued_runs; /* shared: in how many processes the queued task ran */

static atomic_int polls_that_joined;

static void *poll_the_task(void *arg)
{
    (void)arg;
    while (!atomic_load(&stress_done)) {
        int r = plait_join(stress_task, NULL, plait_now());
        if (r == 0)
            atomic_fetch_add(&polls_that_joined, 1);
        if (r != -ETIMEDOUT)
            break; /* joined (by this poll or the other's: -ESRCH) */
    }
    return NULL;
}

/* Fork STRESS_FORKS times; each child returns from the caller (ending how its caller
 * ends), the parent counts them.  Returns in the child with true. */
static bool forks_returning_in_the_child(void)
{
    for (int i = 0; i < STRESS_FORKS && !children_hung; i++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            child_alarm();
            return true;
        }
        CHECK(pid > 0);
        count_child(pid);
    }
    atomic_store(&stress_done, true);
    return false;
}

#if !defined(__SANITIZE_THREAD__)
static void *forking_main(void *arg)
{
    (void)arg;
    forks_returning_in_the_child();
    return NULL;
}

static void *task_running_a_forking_scheduler(void *arg)
{
    (void)arg;
    pid_t me = getpid();
    CHECK_EQ(plait_run(forking_main, NULL, NULL), 0);
    if (getpid() != me)
        _exit(0); /* the child: its plait_run returned */
    return NULL;
}
#endif

static void *thread_returning_in_the_child(void *arg)
{
    (void)arg;
    forks_returning_in_the_child();
    return NULL;
}

static void *count_a_run(void *arg)
{
    atomic_fetch_add(queued_runs, 1);
    return arg;
}

static void *task_returning_in_the_child(void *arg)
{
    plait_task queued;
    CHECK_EQ(plait_pool_submit(arg, &queued, count_a_run, NULL), 0);
    if (!forks_returning_in_the_child())
        CHECK_EQ(plait_join(queued, NULL, SOON()), 0);
    return NULL;
}

static void poll_while_it_forks(void)
{
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        thread_start(&th[i], poll_the_task, NULL);
    for (int i = 0; i < 2; i++)
        thread_join(th[i]);
    if (atomic_exchange(&polls_that_joined, 0) != 1)
        CHECK_EQ(plait_join(stress_task, NULL, SOON()), 0);
    check_children();
}

TEST(children_returning_from_tasks_and_threads_end_there)
{
    plait_pool *pool;
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 1}), 0);
#if !defined(__SANITIZE_THREAD__) /* (a child forked in a coroutine: see fork_child) */
    CHECK_EQ(plait_pool_submit(pool, &stress_task, task_running_a_forking_scheduler, NULL), 0);
    poll_while_it_forks();
#else
    check_part_not_run("a scheduler's fork in a pool task",
                       "a child forked in a coroutine stops at once under ThreadSanitizer");
#endif
    CHECK_EQ(plait_thread_start(&stress_task, thread_returning_in_the_child, NULL, NULL), 0);
    poll_while_it_forks();
    queued_runs = mmap(NULL, sizeof *queued_runs, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(queued_runs != MAP_FAILED);
    atomic_init(queued_runs, 0);
    CHECK_EQ(plait_pool_submit(pool, &stress_task, task_returning_in_the_child, pool), 0);
    poll_while_it_forks();
    CHECK_EQ(atomic_load(queued_runs), 1); /* in the parent only */
    CHECK_EQ(munmap(queued_runs, sizeof *queued_runs), 0);
    CHECK_EQ(plait_pool_destroy(pool), 0);
}

/* A map's item forks and the child returns from it too: the child went on as the
 * map's runner, and ran the map's other items a second time (session 50's pool
 * audit).  It ends as the item returns in it, as a task's child does.  Each item counts
 * its runs in shared memory; item 0's parent waits for its child. */
enum { FORK_MAP_ITEMS = 8 };
static atomic_int *item_runs; /* shared: FORK_MAP_ITEMS counts */

static void *item_forking_at_zero(void *arg)
{
    int i = INT(arg);
    atomic_fetch_add(&item_runs[i], 1);
    if (i != 0)
        return NULL;
    fflush(NULL);
    pid_t child = fork();
    if (child > 0)
        count_child(child);
    return child < 0 ? PLAIT_FAIL(-EAGAIN) : NULL;
}

static void map_with_an_item_that_forks(plait_pool *pool)
{
    void *args[FORK_MAP_ITEMS], *results[FORK_MAP_ITEMS];
    for (int i = 0; i < FORK_MAP_ITEMS; i++) {
        args[i] = ARG(i);
        atomic_init(&item_runs[i], 0);
    }
    CHECK_EQ(plait_pool_map(pool, item_forking_at_zero, args, FORK_MAP_ITEMS, results, NULL,
                            SOON()),
             0);
    for (int i = 0; i < FORK_MAP_ITEMS; i++)
        CHECK_EQ(atomic_load(&item_runs[i]), 1);
}

TEST(a_map_item_returning_in_the_child_ends_it)
{
    item_runs = mmap(NULL, FORK_MAP_ITEMS * sizeof *item_runs, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(item_runs != MAP_FAILED);
    plait_pool *pool;
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 1}), 0);
    map_with_an_item_that_forks(pool);
    CHECK_EQ(plait_pool_destroy(pool), 0);
    check_children();
    CHECK_EQ(munmap(item_runs, FORK_MAP_ITEMS * sizeof *item_runs), 0);
}

/* ---- a scheduler inside a task of the default pool (a child's, of one worker) ---- */

static void *add_one(void *arg) { return (void *)((intptr_t)arg + 1); }

/* The coroutine's calls that run on the default pool: a file, a lookup, to_thread. */
static void *offloads(void *arg)
{
    (void)arg;
    char path[] = "/tmp/plait-fork-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK_EQ(close(fd), 0);
    fd = plait_file_open(path, O_RDWR | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK_EQ(plait_file_write(fd, "in a pool task", 14, 0), 14);
    CHECK_EQ(close(fd), 0);
    CHECK_EQ(unlink(path), 0);
    plait_addr a;
    CHECK_EQ(plait_resolve("127.0.0.1", 80, PLAIT_STREAM, &a, 1, SOON()), 1);
    void *v = NULL;
    CHECK_EQ(plait_to_thread(add_one, ARG(41), &v, SOON()), 0);
    CHECK_EQ(INT(v), 42);
    return NULL;
}

static void *scheduler_in_task(void *arg)
{
    return PLAIT_FAIL(plait_run(offloads, arg, NULL));
}

/* Pinned to one CPU, the child's default pool (made on first use there) has one
 * worker, which runs the scheduler. */
static void scheduler_in_one_worker_default_pool(void *arg)
{
    (void)arg;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    CHECK_EQ(sched_setaffinity(0, sizeof one, &one), 0);
    CHECK_EQ(plait_cpu_count(), 1);
    CHECK_EQ(plait_to_thread(scheduler_in_task, NULL, NULL, PLAIT_FOREVER), 0);
}

/* A scheduler that runs inside a task of the default pool, whose coroutines use the
 * calls that run on that pool.  With one worker, busy with that very task, they
 * waited for ever (the child was reaped at its limit). */
TEST(scheduler_in_a_default_pool_task_offloads)
{
    in_child(scheduler_in_one_worker_default_pool, NULL);
}

/* ---- plait_close in a child, of a descriptor a parent's thread waits on ---- */

typedef struct {
    int fd;
    atomic_int tid;
    atomic_int result;
    int64_t took;
} fd_waiter;

static void *thread_waits_readable(void *p)
{
    fd_waiter *w = p;
    int64_t start = plait_now();
    atomic_store(&w->tid, gettid_());
    int r = plait_wait_fd(w->fd, PLAIT_READABLE, plait_deadline_in(300 * PLAIT_MS));
    w->took = plait_now() - start;
    atomic_store(&w->result, r);
    return NULL;
}

/* Wait (at most 5 s) for w's wait to end, then make its descriptor readable: that frees
 * a wait that missed its deadline, and the test goes on. */
static void free_after_its_deadline(fd_waiter *w, int write_end)
{
    int64_t give_up = plait_deadline_in(5 * PLAIT_SEC);
    struct timespec ms = {0, PLAIT_MS};
    while (atomic_load(&w->result) == 1 && plait_now() < give_up)
        nanosleep(&ms, NULL); /* polls for the outcome, with a limit */
    CHECK_EQ(write(write_end, "x", 1), 1);
}

static void close_inherited(void *arg) { CHECK_EQ(plait_close(*(int *)arg), 0); }

/* A child that closes, with plait_close, a descriptor it inherited wakes nobody in
 * its parent: the parent's waits are not the child's.  (The child once signalled the
 * parent's waiting thread through the copy of the table of waits by descriptor: the
 * thread's wake-up eventfd, shared with the child, stayed readable while its wait was
 * never decided, and the thread spun at full speed past its deadline.) */
TEST(plait_close_in_a_child_leaves_the_parent_s_waits_alone)
{
    int p[2];
    CHECK_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    fd_waiter w = {.fd = p[0]};
    atomic_init(&w.tid, 0);
    atomic_init(&w.result, 1);
    pthread_t th;
    thread_start(&th, thread_waits_readable, &w);
    wait_asleep(&w.tid);
    in_child(close_inherited, &p[0]);
    free_after_its_deadline(&w, p[1]);
    thread_join(th);
    CHECK_EQ(atomic_load(&w.result), -ETIMEDOUT);
    CHECK(w.took < 3 * PLAIT_SEC);
    close(p[0]);
    close(p[1]);
}

/* ---- plait_cancel in a child, of a task of the parent waiting on a descriptor ---- */

static plait_task parents_task;

static void cancel_the_parent_s_task(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_cancel(parents_task), -EPERM); /* not a task of this process */
}

/* A child that cancels a plait thread or a pool task of its parent is refused, and the
 * task's wait on a descriptor ends at its deadline.  (The child claimed the copy of the
 * task's wait and wrote the thread's wake-up eventfd, shared with the parent: there the
 * wait, never decided, found the eventfd readable on every look and spun at full speed
 * past its deadline until the descriptor became readable.) */
TEST(plait_cancel_in_a_child_leaves_the_parent_s_tasks_alone)
{
    plait_pool *pool;
    CHECK_EQ(plait_pool_create(&pool, &(plait_pool_options){.threads = 1}), 0);
    for (int in_pool = 0; in_pool < 2; in_pool++) {
        int p[2];
        CHECK_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
        fd_waiter w = {.fd = p[0]};
        atomic_init(&w.tid, 0);
        atomic_init(&w.result, 1);
        if (in_pool)
            CHECK_EQ(plait_pool_submit(pool, &parents_task, thread_waits_readable, &w), 0);
        else
            CHECK_EQ(plait_thread_start(&parents_task, thread_waits_readable, &w, NULL), 0);
        wait_asleep(&w.tid);
        in_child(cancel_the_parent_s_task, NULL);
        free_after_its_deadline(&w, p[1]);
        CHECK_EQ(plait_join(parents_task, NULL, SOON()), 0);
        CHECK_EQ(atomic_load(&w.result), -ETIMEDOUT);
        CHECK(w.took < 3 * PLAIT_SEC);
        close(p[0]);
        close(p[1]);
    }
    CHECK_EQ(plait_pool_destroy(pool), 0);
}

/* ---- a thread pool the parent made, called from a child ---- */

static plait_pool *parents_pool;
static plait_pool *parents_default;

static void *ret_arg(void *arg) { return arg; }

/* Every call on the parent's pool is -EPERM: its workers are not in the child, so
 * what it queued would never run (a join, a map, a shutdown or a destroy hung). */
static void child_calls_the_parent_s_pool(void *arg)
{
    (void)arg;
    plait_task t;
    CHECK_EQ(plait_pool_submit(parents_pool, &t, ret_arg, ARG(1)), -EPERM);
    CHECK_EQ(plait_pool_submit(parents_pool, NULL, ret_arg, ARG(1)), -EPERM);
    void *args[4] = {ARG(1), ARG(2), ARG(3), ARG(4)}, *results[4];
    CHECK_EQ(plait_pool_map(parents_pool, ret_arg, args, 4, results, NULL, SOON()), -EPERM);
    CHECK_EQ(plait_pool_shutdown(parents_pool, PLAIT_POOL_DRAIN, SOON()), -EPERM);
    CHECK_EQ(plait_pool_shutdown(parents_pool, PLAIT_POOL_CANCEL, SOON()), -EPERM);
    CHECK_EQ(plait_pool_destroy(parents_pool), -EPERM);
    /* the old default pool too; the child's plait_pool_default() is its own */
    if (parents_default)
        CHECK_EQ(plait_pool_submit(parents_default, &t, ret_arg, ARG(1)), -EPERM);
    /* Under a sanitizer the child starts no thread: the runtimes' own locks are not
     * fork-safe (a parent thread just started, as the parent's default pool's are, can
     * leave ASan's thread registry locked in the child, and the child's new workers
     * never ran: their joins timed out, 1 run in 4 on a loaded machine). */
    if (CHECK_SANITIZED) {
        check_part_not_run("the child's own pool and threads",
                           "a sanitizer's locks are not fork-safe for threads a child starts");
        return;
    }
    plait_pool *mine = plait_pool_default();
    CHECK(mine != NULL && mine != parents_default);
    void *v = NULL;
    CHECK_EQ(plait_pool_submit(mine, &t, ret_arg, ARG(5)), 0);
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    CHECK_EQ(INT(v), 5);
    CHECK_EQ(plait_to_thread(ret_arg, ARG(6), &v, SOON()), 0);
    CHECK_EQ(INT(v), 6);
    CHECK_EQ(plait_pool_map(mine, ret_arg, args, 4, results, NULL, SOON()), 0);
    CHECK_EQ(INT(results[3]), 4);
}

static ssize_t process_child_calls_the_parent_s_pool(const void *arg, size_t arg_len,
                                                     void *out, size_t out_cap)
{
    (void)arg, (void)arg_len, (void)out, (void)out_cap;
    child_calls_the_parent_s_pool(NULL);
    return check_failures == 0 ? 0 : -EPROTO;
}

/* A pool made and forked before it ever ran a task; then again with the parent's
 * default pool made; then from a function child of plait_process_start. */
TEST(child_calls_a_pool_of_the_parent)
{
    CHECK_EQ(plait_pool_create(&parents_pool, &(plait_pool_options){.threads = 2}), 0);
    in_child(child_calls_the_parent_s_pool, NULL);
    parents_default = plait_pool_default();
    CHECK(parents_default != NULL);
    in_child(child_calls_the_parent_s_pool, NULL);
    plait_task t;
    CHECK_EQ(plait_process_start(&t, process_child_calls_the_parent_s_pool, NULL, 0, NULL,
                                 NULL),
             0);
    CHECK_EQ(plait_join(t, NULL, plait_deadline_in(30 * PLAIT_SEC)), 0);
    /* the parent's pool is untouched */
    void *v = NULL;
    CHECK_EQ(plait_pool_submit(parents_pool, &t, ret_arg, ARG(9)), 0);
    CHECK_EQ(plait_join(t, &v, SOON()), 0);
    CHECK_EQ(INT(v), 9);
    CHECK_EQ(plait_pool_destroy(parents_pool), 0);
}

RUN_TESTS(CASE(a_child_s_status_speaks_for_its_own_checks),
          CASE(scheduler_in_a_default_pool_task_offloads),
          CASE(fork_in_a_pool_task_leaves_the_parent_s_tasks),
          CASE(fork_in_a_coroutine_with_the_watchdog_on),
          CASE(slow_warning_threshold_kept_in_a_forked_child),
          CASE(fork_beside_a_coroutine_waiting_on_a_process_semaphore),
          CASE(forks_while_the_watcher_works),
          CASE(fork_beside_threads_polling_a_signal_watcher),
          CASE(children_returning_from_tasks_and_threads_end_there),
          CASE(a_map_item_returning_in_the_child_ends_it),
          CASE(plait_close_in_a_child_leaves_the_parent_s_waits_alone),
          CASE(plait_cancel_in_a_child_leaves_the_parent_s_tasks_alone),
          /* last: it leaves the parent's default pool running, whose threads TSan
           * would take for live ones of later children that start threads of their own
           * ("dup thread with used id") */
          CASE(child_calls_a_pool_of_the_parent))
