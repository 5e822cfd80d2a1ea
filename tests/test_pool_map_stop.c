/*
 * test_pool_map_stop.c — calls that stop work of theirs running elsewhere and wait for
 * it, made from a pool task and cut short by their deadline while that work still runs:
 * they wait for it alone.  Their wait once helped (ran other queued tasks meanwhile), so
 * an unrelated task queued then ran inside the call, and the call returned only when
 * that task ended, however long after the deadline.
 *
 *   - plait_pool_map, one of whose runners still runs on another worker;
 *   - plait_to_thread, whose task still runs on the default pool (its wait after the
 *     cancel, plait__join_to_the_end).
 *
 * plait__worker_blocking is wrapped (-Wl,--wrap) to see the caller's thread block in a
 * wait that does not help: the work still running waits for that, or for the
 * unrelated task to start on the caller's thread (the defect), so neither outcome
 * depends on timing.  (The process pool's map and imap: test_procpool_map_stop.)
 */
#include "stopped_call.h"

#include <pthread.h>
#include <time.h>

enum { ITEMS = 2 }; /* one runner per worker of two, one item each */

static plait_pool *pool;
static plait_event *runner_elsewhere;  /* the call's work runs elsewhere */
static _Thread_local bool in_item;

/* The caller's thread blocks in its wait, or runs the unrelated task.  A plain flag
 * under a mutex, not a plait event: the call cancels the work that waits for it. */
static pthread_mutex_t decided_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t decided_cond;
static bool decided;

static void decide(void)
{
    pthread_mutex_lock(&decided_lock);
    decided = true;
    pthread_cond_broadcast(&decided_cond);
    pthread_mutex_unlock(&decided_lock);
}

/* true once decided, false after 10 s */
static bool wait_decided(void)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&decided_lock);
    int r = 0;
    while (!decided && r == 0)
        r = pthread_cond_timedwait(&decided_cond, &decided_lock, &until);
    bool seen = decided;
    pthread_mutex_unlock(&decided_lock);
    return seen;
}

struct plait__worker;
struct plait__worker *__real_plait__worker_blocking(void);
struct plait__worker *__wrap_plait__worker_blocking(void);

struct plait__worker *__wrap_plait__worker_blocking(void)
{
    /* past the deadline, the caller's thread waits for nothing but the call's work */
    if (gettid_() == atomic_load(&caller_tid) && !in_item && plait_now() >= deadline)
        decide();
    return __real_plait__worker_blocking();
}

static void *item(void *arg)
{
    in_item = true;
    if (gettid_() == atomic_load(&caller_tid)) {
        /* the map's own wait runs this runner: end at the deadline, once the other
         * runner runs on the other worker (this wait hands it over) */
        CHECK_EQ(plait_event_wait(runner_elsewhere, SOON()), 0);
        CHECK_EQ(plait_sleep_until(deadline), 0);
    } else {
        /* still running when the map stops (which happens past the deadline): end
         * once the map's thread has shown what its wait for this runner does */
        CHECK_EQ(plait_event_set(runner_elsewhere), 0);
        CHECK(wait_decided());
    }
    in_item = false;
    return arg;
}

static void *map_caller(void *unused)
{
    (void)unused;
    void *args[ITEMS] = {ARG(1), ARG(2)}, *results[ITEMS];
    int errors[ITEMS];
    call_begins();
    call_returns(plait_pool_map(pool, item, args, ITEMS, results, errors, deadline));
    return NULL;
}

/* plait_to_thread's task, on the default pool (never on the caller's pool): still
 * running when the call's deadline passes, it ends once the caller's thread has shown
 * what its wait for it does (the cancellation does not stop it: it looks at none) */
static void *offloaded(void *arg)
{
    CHECK(gettid_() != atomic_load(&caller_tid));
    CHECK_EQ(plait_event_set(runner_elsewhere), 0);
    CHECK(wait_decided());
    return arg;
}

static void *to_thread_caller(void *unused)
{
    (void)unused;
    void *result = NULL;
    call_begins();
    call_returns(plait_to_thread(offloaded, ARG(3), &result, deadline));
    return NULL;
}

/* A pool of `threads` workers runs caller, whose call's work runs elsewhere (it sets
 * runner_elsewhere) past the call's deadline; an unrelated task is queued on that pool
 * once the deadline has passed. */
static void stopped_call_runs_no_unrelated_task(unsigned threads, plait_fn caller_fn)
{
    decided = false;
    plait_pool_options o = {.threads = threads, .name = "callstop"};
    CHECK_EQ(plait_pool_create(&pool, &o), 0);
    CHECK_EQ(plait_event_create(&runner_elsewhere), 0);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&decided_cond, &ca);
    pthread_condattr_destroy(&ca);
    stopped_call_start();
    plait_task caller;
    CHECK_EQ(plait_pool_submit(pool, &caller, caller_fn, NULL), 0);
    CHECK_EQ(plait_event_wait(runner_elsewhere, SOON()), 0);
    stopped_call_finish(pool, caller);
    CHECK_EQ(plait_pool_destroy(pool), 0);
    plait_event_destroy(runner_elsewhere);
    pthread_cond_destroy(&decided_cond);
}

/* one runner per worker of two: the other worker is busy with the runner still
 * running, so only the map's thread can take the unrelated task meanwhile */
TEST(map_stopped_by_its_deadline_runs_no_unrelated_task)
{
    stopped_call_runs_no_unrelated_task(2, map_caller);
}

/* plait_to_thread from a task of a pool of one worker (its task runs on the default
 * pool): cut short by its deadline, it cancels its task and waits for it to end; only
 * that wait could run the unrelated task while the caller's task holds the worker */
TEST(to_thread_stopped_by_its_deadline_runs_no_unrelated_task)
{
    stopped_call_runs_no_unrelated_task(1, to_thread_caller);
}

RUN_TESTS(CASE(map_stopped_by_its_deadline_runs_no_unrelated_task),
          CASE(to_thread_stopped_by_its_deadline_runs_no_unrelated_task))
