/*
 * test_standin.c — the threads that stand in for a pool's tasks (thread.c): a coroutine
 * whose scheduler runs in a task of a pool gets a thread of its own for each offload
 * or map runner on that pool, and a thread left idle by one is handed the next.
 *
 * Whether a thread is idle is read from /proc: asleep (S) in plait's futex wait for a
 * word to leave 0, which is the only such wait a stand-in makes between its task and
 * the next.
 */
#include "check.h"
#include "fork_child.h"
#include "helpers.h"

#include <dirent.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>

static void *own_tid(void *unused)
{
    (void)unused;
    return ARG(gettid_());
}

/* Whether thread tid of this process still exists. */
static bool thread_exists(int tid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d", tid);
    DIR *d = opendir(path);
    if (d)
        closedir(d);
    return d != NULL;
}

/* Whether thread tid sleeps in a wait of plait's futex.c for its word to leave 0 (a
 * private FUTEX_WAIT_BITSET with 0 expected), as an idle stand-in does; not in a lock
 * of glibc's, a plain FUTEX_WAIT (which it may meet in free(), say, on its way there). */
static bool asleep_as_idle(int tid)
{
    char path[64], call[128];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", tid);
    read_first_line(path, call, sizeof call);
    long number;
    unsigned long word, op, expected;
    return thread_state(tid) == 'S' &&
           sscanf(call, "%ld %lx %lx %lx", &number, &word, &op, &expected) == 4 &&
           number == SYS_futex && op == (FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG) &&
           expected == 0;
}

/* Wait until the stand-in tid is idle: false if it ended instead, or SOON() passed. */
static bool wait_until_idle(int tid)
{
    int64_t deadline = SOON();
    while (plait_now() < deadline) {
        if (!thread_exists(tid))
            return false;
        if (asleep_as_idle(tid))
            return true;
        plait_sleep(PLAIT_MS);
    }
    return false;
}

/* The thread that ran an offload (plait_to_thread): its tid, or a negative code. */
static int offload_tid(void)
{
    void *tid = NULL;
    int r = plait_to_thread(own_tid, NULL, &tid, SOON());
    return r < 0 ? r : INT(tid);
}

/* The thread that ran a one-item map on pool: its tid, or a negative code. */
static int map_tid(plait_pool *pool)
{
    void *arg = NULL, *tid = NULL;
    int error = 0;
    int r = plait_pool_map(pool, own_tid, &arg, 1, &tid, &error, SOON());
    return r < 0 ? r : error < 0 ? error : INT(tid);
}

/* A coroutine in a task of the default pool: an offload after the last one's thread
 * went idle runs on that thread. */
static void *offloads_twice(void *unused)
{
    (void)unused;
    int first = offload_tid();
    CHECK(first > 0);
    CHECK(first != gettid_()); /* a thread of its own, not the scheduler's */
    CHECK(wait_until_idle(first));
    CHECK_EQ(offload_tid(), first);
    return ARG(first);
}

static void *runs_a_scheduler(void *p)
{
    void *result = NULL;
    CHECK_EQ(plait_run((plait_fn)p, NULL, &result), 0);
    return result;
}

/* Run fn as the main coroutine of a scheduler in a task of pool: what fn returned. */
static void *in_a_task_of(plait_pool *pool, plait_fn fn)
{
    plait_task task;
    void *result = NULL;
    CHECK_EQ(plait_pool_submit(pool, &task, runs_a_scheduler, (void *)fn), 0);
    CHECK_EQ(plait_join(task, &result, SOON()), 0);
    return result;
}

TEST(an_offload_runs_on_the_stand_in_the_last_one_left_idle)
{
    int tid = INT(in_a_task_of(plait_pool_default(), offloads_twice));
    CHECK(tid > 0);
}

static plait_pool *pool_of_one;

static void *maps_twice(void *unused)
{
    (void)unused;
    int first = map_tid(pool_of_one);
    CHECK(first > 0);
    CHECK(wait_until_idle(first));
    CHECK_EQ(map_tid(pool_of_one), first);
    return NULL;
}

TEST(a_map_runner_runs_on_the_stand_in_the_last_one_left_idle)
{
    plait_pool_options o = {.threads = 1, .name = "one"};
    CHECK_EQ(plait_pool_create(&pool_of_one, &o), 0);
    in_a_task_of(pool_of_one, maps_twice);
    CHECK_EQ(plait_pool_destroy(pool_of_one), 0);
}

/* An idle stand-in ends when nothing comes for it (a couple of seconds): the threads a
 * burst of offloads made do not stay for ever. */
TEST(an_idle_stand_in_ends)
{
    int tid = INT(in_a_task_of(plait_pool_default(), offloads_twice));
    CHECK(tid > 0);
    int64_t deadline = plait_deadline_in(30 * PLAIT_SEC);
    while (thread_exists(tid) && plait_now() < deadline)
        plait_sleep(10 * PLAIT_MS);
    CHECK(!thread_exists(tid));
}

/* Offloads at once each get a thread, however few are idle: a function that waits for
 * the others (a barrier of all of them) returns. */
enum { AT_ONCE = 4 };

static void *meets_the_others(void *barrier)
{
    int r = plait_barrier_wait(barrier, SOON());
    return r < 0 ? PLAIT_FAIL(r) : NULL;
}

static void *offloads_to_meet(void *barrier)
{
    return ARG(plait_to_thread(meets_the_others, barrier, NULL, SOON()));
}

static void *offloads_at_once(void *unused)
{
    (void)unused;
    int first = offload_tid();
    CHECK(first > 0);
    CHECK(wait_until_idle(first)); /* one idle: the others are new */
    plait_barrier *barrier;
    CHECK_EQ(plait_barrier_create(&barrier, AT_ONCE), 0);
    plait_task tasks[AT_ONCE];
    for (int i = 0; i < AT_ONCE; i++)
        CHECK_EQ(plait_spawn(&tasks[i], offloads_to_meet, barrier), 0);
    for (int i = 0; i < AT_ONCE; i++) {
        void *r = ARG(-1);
        CHECK_EQ(plait_join(tasks[i], &r, SOON()), 0);
        CHECK_EQ(INT(r), 0);
    }
    CHECK_EQ(plait_barrier_destroy(barrier), 0);
    return NULL;
}

TEST(offloads_at_once_each_get_a_thread)
{
    in_a_task_of(plait_pool_default(), offloads_at_once);
}

/* A stand-in whose function ends its thread is not kept: its caller gets -ECANCELED,
 * and the next offload a thread that runs it. */
static void *ends_its_thread(void *unused)
{
    (void)unused;
    pthread_exit(NULL);
}

static void *offloads_one_that_ends_its_thread(void *unused)
{
    (void)unused;
    int first = offload_tid();
    CHECK(first > 0);
    CHECK(wait_until_idle(first));
    CHECK_EQ(plait_to_thread(ends_its_thread, NULL, NULL, SOON()), -ECANCELED);
    int64_t deadline = SOON();
    while (thread_exists(first) && plait_now() < deadline)
        plait_sleep(PLAIT_MS);
    CHECK(!thread_exists(first)); /* the idle one took it, and ended */
    int next = offload_tid();
    CHECK(next > 0 && next != first);
    return NULL;
}

TEST(a_stand_in_that_ends_its_thread_is_not_kept)
{
    in_a_task_of(plait_pool_default(), offloads_one_that_ends_its_thread);
}

/* A child forked while the parent has an idle stand-in hands its own stand-ins' tasks
 * to threads of its own (the parent's are not in it): they run. */
static void *offloads_once(void *unused)
{
    (void)unused;
    CHECK(offload_tid() > 0);
    return NULL;
}

static void *leaves_one_idle(void *unused)
{
    (void)unused;
    int first = offload_tid();
    CHECK(first > 0);
    CHECK(wait_until_idle(first));
    return NULL;
}

TEST(a_child_hands_nothing_to_its_parents_idle_stand_ins)
{
    in_a_task_of(plait_pool_default(), leaves_one_idle);
    pid_t pid = fork_child(false);
    if (pid == 0) {
        in_a_task_of(plait_pool_default(), offloads_once);
        child_exit();
    }
    reap_ok(pid, 30);
}

/* The same for a child of _Fork(), which runs no fork handler: the list of idle threads
 * is known for the parent's by the fork epoch. */
TEST(a_child_of__Fork_hands_nothing_to_its_parents_idle_stand_ins)
{
#if defined(__SANITIZE_THREAD__)
    CHECK_SKIP("a child of _Fork starting threads: ThreadSanitizer stops it");
    return;
#endif
    in_a_task_of(plait_pool_default(), leaves_one_idle);
    if (CHECK_SANITIZED) /* (_Fork runs no sanitizer's fork handler: its locks free first) */
        others_asleep_before_fork();
    fflush(NULL);
    pid_t pid = _Fork();
    if (pid == 0) {
        alarm(30);
        in_a_task_of(plait_pool_default(), offloads_once);
        child_exit();
    }
    CHECK(pid > 0);
    reap_ok(pid, 40);
}

/* A cancel that a stand-in's function sent its own thread and left pending (it reached
 * no cancellation point) ends that thread after its task: the next task, which reaches
 * one, is not cancelled by it. */
static void *cancels_its_own_thread(void *unused)
{
    (void)unused;
    pthread_cancel(pthread_self());
    return ARG(gettid_());
}

static void *tid_after_a_cancellation_point(void *unused)
{
    (void)unused;
    struct timespec ns = {0, 1};
    nanosleep(&ns, NULL); /* a cancellation point */
    return ARG(gettid_());
}

static void *offloads_after_a_pending_cancel(void *unused)
{
    (void)unused;
    void *first = NULL;
    CHECK_EQ(plait_to_thread(cancels_its_own_thread, NULL, &first, SOON()), 0);
    int tid = INT(first);
    CHECK(tid > 0);
    int64_t deadline = SOON(); /* until it has ended, or gone idle (the next task's) */
    while (thread_exists(tid) && !asleep_as_idle(tid) && plait_now() < deadline)
        plait_sleep(PLAIT_MS);
    CHECK(!thread_exists(tid));
    void *next = NULL;
    CHECK_EQ(plait_to_thread(tid_after_a_cancellation_point, NULL, &next, SOON()), 0);
    CHECK(INT(next) > 0 && INT(next) != tid);
    return NULL;
}

TEST(a_cancel_left_pending_ends_the_stand_in_not_the_next_task)
{
    in_a_task_of(plait_pool_default(), offloads_after_a_pending_cancel);
}

/* A map's item run on a stand-in for a task of the pool is that pool's task: its
 * shutdown or destroy of the pool is -EDEADLK, as from a worker (the shutdown waited
 * until its deadline and left the pool shut, the destroy for ever: the map it serves
 * holds a task of the pool; a helper's audit of session 63). */
static void *shuts_down_its_pool(void *unused)
{
    (void)unused;
    int shutdown = plait_pool_shutdown(pool_of_one, PLAIT_POOL_DRAIN, SOON());
    int destroy = plait_pool_destroy(pool_of_one);
    return ARG((shutdown == -EDEADLK) + 2 * (destroy == -EDEADLK));
}

static void *maps_an_item_that_shuts_the_pool(void *unused)
{
    (void)unused;
    void *arg = NULL, *result = NULL;
    int error = 0;
    CHECK_EQ(plait_pool_map(pool_of_one, shuts_down_its_pool, &arg, 1, &result, &error, SOON()),
             0);
    CHECK_EQ(error, 0);
    CHECK_EQ(INT(result), 3); /* both refused */
    return NULL;
}

TEST(a_stand_in_for_a_task_may_not_shut_its_pool)
{
    plait_pool_options o = {.threads = 1, .name = "one"};
    CHECK_EQ(plait_pool_create(&pool_of_one, &o), 0);
    in_a_task_of(pool_of_one, maps_an_item_that_shuts_the_pool);
    CHECK_EQ(plait_pool_submit(pool_of_one, NULL, own_tid, NULL), 0); /* still open */
    CHECK_EQ(plait_pool_destroy(pool_of_one), 0);
}

RUN_TESTS(CASE(an_offload_runs_on_the_stand_in_the_last_one_left_idle),
          CASE(a_map_runner_runs_on_the_stand_in_the_last_one_left_idle),
          CASE(an_idle_stand_in_ends), CASE(offloads_at_once_each_get_a_thread),
          CASE(a_stand_in_that_ends_its_thread_is_not_kept),
          CASE(a_child_hands_nothing_to_its_parents_idle_stand_ins),
          CASE(a_child_of__Fork_hands_nothing_to_its_parents_idle_stand_ins),
          CASE(a_cancel_left_pending_ends_the_stand_in_not_the_next_task),
          CASE(a_stand_in_for_a_task_may_not_shut_its_pool))
