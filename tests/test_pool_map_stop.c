/*
 * test_pool_map_stop.c — plait_pool_map called from a pool task and stopped by its
 * deadline while one of its runners still runs on another worker: the map waits for
 * that runner alone.  Its wait once helped (ran other queued tasks meanwhile), so an
 * unrelated task queued then ran inside the map, and the map returned only when that
 * task ended, however long after the deadline.
 *
 * plait__worker_blocking is wrapped (-Wl,--wrap) to see the map's thread block in a
 * wait that does not help: the runner still running waits for that, or for the
 * unrelated task to start on the map's thread (the defect), so neither outcome
 * depends on timing.
 */
#include "helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

enum { ITEMS = 2 }; /* one runner per worker of two, one item each */

static plait_pool *pool;
static int64_t deadline;               /* the map's */
static atomic_int map_tid;             /* the thread of the task that calls map */
static atomic_bool map_returned;
static int map_result;
static atomic_bool unrelated_inside_map; /* the unrelated task ran in the map's wait */
static plait_event *runner_elsewhere;  /* an item runs on the other worker */
static plait_event *release;           /* the unrelated task may end */
static _Thread_local bool in_item;

/* The map's thread blocks in its wait, or runs the unrelated task.  A plain flag under
 * a mutex, not a plait event: the map cancels the runner that waits for it. */
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
    /* past the deadline, the map's thread waits for nothing but the map's runners */
    if (gettid_() == atomic_load(&map_tid) && !in_item && plait_now() >= deadline)
        decide();
    return __real_plait__worker_blocking();
}

static void *item(void *arg)
{
    in_item = true;
    if (gettid_() == atomic_load(&map_tid)) {
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
    atomic_store(&map_tid, gettid_());
    map_result = plait_pool_map(pool, item, args, ITEMS, results, errors, deadline);
    atomic_store(&map_returned, true);
    return NULL;
}

static void *unrelated(void *unused)
{
    (void)unused;
    if (gettid_() == atomic_load(&map_tid) && !atomic_load(&map_returned))
        atomic_store(&unrelated_inside_map, true);
    decide();
    /* long, as far as the map can tell: it ends after the map returned (bounded, so
     * that the defect shows as a failure rather than a hang) */
    CHECK_EQ(plait_event_wait(release, SOON()), 0);
    return NULL;
}

TEST(map_stopped_by_its_deadline_runs_no_unrelated_task)
{
    plait_pool_options o = {.threads = 2, .name = "mapstop"};
    CHECK_EQ(plait_pool_create(&pool, &o), 0);
    CHECK_EQ(plait_event_create(&runner_elsewhere), 0);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&decided_cond, &ca);
    pthread_condattr_destroy(&ca);
    CHECK_EQ(plait_event_create(&release), 0);
    /* far enough for the second runner to start on the other worker first (it would
     * find the deadline passed and run no item), with room for a loaded machine or
     * an emulator */
    deadline = plait_deadline_in(2 * PLAIT_SEC);
    plait_task caller, other;
    CHECK_EQ(plait_pool_submit(pool, &caller, map_caller, NULL), 0);
    CHECK_EQ(plait_event_wait(runner_elsewhere, SOON()), 0);
    /* queued once the map's wait may start no task (its deadline has passed), while a
     * runner still runs */
    CHECK_EQ(plait_sleep_until(deadline), 0);
    CHECK_EQ(plait_pool_submit(pool, &other, unrelated, NULL), 0);
    CHECK_EQ(plait_join(caller, NULL, PLAIT_FOREVER), 0);
    CHECK_EQ(map_result, -ETIMEDOUT);
    CHECK(plait_now() - deadline < 5 * PLAIT_SEC); /* not held by the unrelated task */
    CHECK(!atomic_load(&unrelated_inside_map));
    CHECK_EQ(plait_event_set(release), 0);
    CHECK_EQ(plait_join(other, NULL, PLAIT_FOREVER), 0);
    CHECK_EQ(plait_pool_destroy(pool), 0);
    plait_event_destroy(runner_elsewhere);
    pthread_cond_destroy(&decided_cond);
    plait_event_destroy(release);
}

RUN_TESTS(CASE(map_stopped_by_its_deadline_runs_no_unrelated_task))
