/*
 * test_procpool_map_stop.c — the process pool's map, and an imap iterator's destroy,
 * called from a thread-pool task while a chunk of theirs runs in a worker process past
 * the caller's deadline: they cancel the chunk (killing its worker) and wait for it
 * alone.  That wait once helped (ran other queued tasks of the caller's thread pool
 * meanwhile), so an unrelated task queued then ran inside the call, and the call
 * returned only when that task ended, however long after the deadline.
 *
 * Two wraps (-Wl,--wrap) make neither outcome depend on timing:
 *   - plait__pidfd_kill: the kill that cancels the running chunk, made on the caller's
 *     thread, is held back until the caller's thread has shown what its wait for the
 *     chunk does (the chunk would otherwise end at once, before the unrelated task is
 *     queued);
 *   - plait__worker_blocking: the caller's thread blocking in a wait that does not help,
 *     once the kill is held back, shows it; so does the unrelated task starting on the
 *     caller's thread (the defect).
 * (The thread pool's map and plait_to_thread: test_pool_map_stop.)
 */
#include "stopped_call.h"

#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <time.h>

static plait_pool *pool;           /* the caller's: one worker */
static plait_procpool *procs;      /* one worker process */
static int destroy_result, item_error;
static atomic_int *chunk_running;  /* shared with the worker process: its item runs */

/* The caller's thread blocks in its wait, or runs the unrelated task; the kill it made
 * to cancel the chunk is held back until then. */
static pthread_mutex_t decided_lock = PTHREAD_MUTEX_INITIALIZER;
static bool decided;
static int held_kill_fd = -1;      /* the pidfd of the held-back kill */
static int kills_held;

int __real_plait__pidfd_kill(int pidfd, int sig);
int __wrap_plait__pidfd_kill(int pidfd, int sig);
struct plait__worker;
struct plait__worker *__real_plait__worker_blocking(void);
struct plait__worker *__wrap_plait__worker_blocking(void);

static void decide(void)
{
    pthread_mutex_lock(&decided_lock);
    decided = true;
    if (held_kill_fd >= 0)
        CHECK_EQ(__real_plait__pidfd_kill(held_kill_fd, SIGKILL), 0);
    held_kill_fd = -1;
    pthread_mutex_unlock(&decided_lock);
}

int __wrap_plait__pidfd_kill(int pidfd, int sig)
{
    if (gettid_() != atomic_load(&caller_tid) || sig != SIGKILL)
        return __real_plait__pidfd_kill(pidfd, sig);
    /* the cancellation of the running chunk */
    pthread_mutex_lock(&decided_lock);
    kills_held++;
    bool now = decided;
    if (!now)
        held_kill_fd = pidfd;
    pthread_mutex_unlock(&decided_lock);
    return now ? __real_plait__pidfd_kill(pidfd, sig) : 0;
}

struct plait__worker *__wrap_plait__worker_blocking(void)
{
    if (gettid_() == atomic_load(&caller_tid)) {
        /* the chunk cancelled (its kill held back): the caller's thread now waits for
         * nothing but the chunk */
        pthread_mutex_lock(&decided_lock);
        bool held = held_kill_fd >= 0;
        pthread_mutex_unlock(&decided_lock);
        if (held)
            decide();
    }
    return __real_plait__worker_blocking();
}

/* In the worker process: runs until its worker is killed (bounded, so that a test that
 * went wrong ends rather than hangs). */
static ssize_t hold(const void *arg, size_t len, void *out, size_t cap)
{
    (void)arg, (void)len, (void)out, (void)cap;
    atomic_store(chunk_running, 1);
    struct timespec ten_s = {10, 0};
    nanosleep(&ten_s, NULL);
    return 0;
}

static void *map_caller(void *unused)
{
    (void)unused;
    int arg = 1;
    call_begins();
    call_returns(plait_procpool_map(procs, hold, &arg, sizeof arg, 1, NULL, 0, &item_error, 1,
                                    deadline));
    return NULL;
}

static void *imap_caller(void *unused)
{
    (void)unused;
    static const int arg = 1;
    call_begins();
    plait_procpool_iter *it;
    CHECK_EQ(plait_procpool_imap(&it, procs, hold, &arg, sizeof arg, 1, 0, 1, 0), 0);
    size_t index;
    int r = plait_procpool_imap_next(it, &index, NULL, &item_error, deadline);
    destroy_result = plait_procpool_imap_destroy(it);
    call_returns(r);
    return NULL;
}

/* caller_fn, a task of a thread pool of one worker, makes a call whose chunk runs in
 * the worker process past the call's deadline; an unrelated task is queued on that
 * thread pool once the deadline has passed.  Only the call's wait could run it while
 * the caller's task holds the worker. */
static void stopped_call_runs_no_unrelated_task(plait_fn caller_fn)
{
    destroy_result = item_error = 1;
    decided = false;
    held_kill_fd = -1;
    kills_held = 0;
    chunk_running = mmap(NULL, sizeof *chunk_running, PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(chunk_running != MAP_FAILED);
    atomic_store(chunk_running, 0);
    plait_procpool_options po = {.processes = 1};
    CHECK_EQ(plait_procpool_create(&procs, &po), 0);
    plait_pool_options o = {.threads = 1, .name = "callstop"};
    CHECK_EQ(plait_pool_create(&pool, &o), 0);
    stopped_call_start();
    plait_task caller;
    CHECK_EQ(plait_pool_submit(pool, &caller, caller_fn, NULL), 0);
    int64_t soon = SOON();
    while (!atomic_load(chunk_running) && plait_now() < soon)
        plait_sleep(PLAIT_MS);
    CHECK(atomic_load(chunk_running));
    CHECK(plait_now() < deadline); /* else the call may cancel a chunk not started */
    stopped_call_finish(pool, caller);
    CHECK_EQ(kills_held, 1); /* the chunk ran when cancelled */
    CHECK_EQ(plait_pool_destroy(pool), 0);
    CHECK_EQ(plait_procpool_destroy(procs), 0);
    munmap(chunk_running, sizeof *chunk_running);
}

TEST(procpool_map_stopped_by_its_deadline_runs_no_unrelated_task)
{
    stopped_call_runs_no_unrelated_task(map_caller);
    CHECK_EQ(item_error, -ETIMEDOUT);
}

/* imap_next cut short by its deadline leaves the chunk running; destroy cancels it and
 * waits for it */
TEST(procpool_imap_destroy_after_its_deadline_runs_no_unrelated_task)
{
    stopped_call_runs_no_unrelated_task(imap_caller);
    CHECK_EQ(destroy_result, 0);
}

RUN_TESTS(CASE(procpool_map_stopped_by_its_deadline_runs_no_unrelated_task),
          CASE(procpool_imap_destroy_after_its_deadline_runs_no_unrelated_task))
