/*
 * pool_map.c — what is built on plait_pool_submit: map over an array, and offloading
 * one call from a coroutine (plait_to_thread).
 *
 * Map does not make a task per item: it submits one runner per worker (fewer for
 * short arrays), and the runners claim chunks of indices from a shared counter, so a
 * million small items cost a few dozen tasks and uneven items still balance.  The
 * first failure in index order is kept as one 64-bit word, (index << 12) | -code,
 * lowered with compare-and-swap: no array is needed when the caller passes none.  A
 * map from a coroutine whose scheduler runs on a worker of the same pool has its
 * runners run on threads of their own (plait__pool_submit_reachable): the coroutine's
 * wait runs no queued task, and the workers may all be taken.
 *
 * Neither call returns while work it started may still touch the caller's memory
 * (the args and results arrays, or the arguments of an offloaded call): on a deadline
 * or a cancellation they stop what has not started, then wait for what has.  Map's
 * wait for its stopped runners, in a pool task, does not help (runs no queued task):
 * a runner cancelled before it started is done at once, one that runs ends after its
 * item, but an unrelated task that the help picked up would run to its end first,
 * however long, and the map return that late.
 */
#include "internal.h"

#include <stdlib.h>
#include <unistd.h>

enum { CODE_BITS = 12, CHUNKS_PER_RUNNER = 16 };

typedef struct map_job {
    plait_fn fn;
    void *const *args;
    void **results;
    int *errors;
    size_t n, chunk;
    atomic_size_t next;
    atomic_bool stop;
    atomic_bool expired;         /* a runner saw the deadline pass: the call times out */
    plait__future *caller;       /* the pool task or plait thread that called map: NULL for
                                  * a coroutine, a shielded caller or another thread */
    int64_t deadline;
    atomic_ullong first_failure; /* (index << CODE_BITS) | -code; UINT64_MAX: none */
    plait_task tasks[];          /* the runners' */
} map_job;

static void note_failure(map_job *m, size_t i, int code)
{
    unsigned long long word = ((unsigned long long)i << CODE_BITS) | (unsigned)-code;
    unsigned long long seen = atomic_load_explicit(&m->first_failure, memory_order_relaxed);
    while (word < seen && !atomic_compare_exchange_weak(&m->first_failure, &seen, word))
        ;
}

/* A map refused as a whole: every item says why. */
static int fail_every_item(void **results, int *errors, size_t n, int code)
{
    for (size_t i = 0; i < n; i++) {
        results[i] = NULL;
        if (errors)
            errors[i] = code;
    }
    return code;
}

/* Whether the runner should start no more items: the map was stopped, the runner
 * cancelled, or the map's caller cancelled.  A runner may run inside its caller's own
 * wait (a map from a task of this pool: the wait helps), which sees its cancellation
 * only once the runner returns: the runner must see it itself.  (The caller's future
 * outlives every runner: map returns only when they have all ended.) */
static bool map_stopping(map_job *m)
{
    if (atomic_load_explicit(&m->stop, memory_order_relaxed) || plait_cancelled())
        return true;
    if (m->caller && atomic_load_explicit(&m->caller->cancelled, memory_order_relaxed)) {
        atomic_store(&m->stop, true);
        return true;
    }
    return false;
}

static void *map_runner(void *arg)
{
    map_job *m = arg;
    unsigned epoch = plait__fork_epoch();
    while (!map_stopping(m)) {
        size_t i = atomic_fetch_add_explicit(&m->next, m->chunk, memory_order_relaxed);
        if (i >= m->n)
            break;
        /* a runner may run inside the caller's own wait (a map from a task of this
         * pool: the wait helps), where nothing else would stop it at the deadline */
        if (m->deadline != PLAIT_FOREVER && plait_now() >= m->deadline) {
            atomic_store(&m->expired, true);
            atomic_store(&m->stop, true);
        }
        size_t end = i + m->chunk < m->n ? i + m->chunk : m->n;
        for (; i < end; i++) {
            void *value = NULL;
            int code = -ECANCELED;
            if (!map_stopping(m)) {
                value = m->fn(m->args[i]);
                if (PLAIT_UNLIKELY(plait__fork_epoch() != epoch))
                    _exit(0); /* a child the item forked, returning from it too: the map
                               * is the parent's (it ran the other items a second time),
                               * as a task is (pool.c, run_task) */
                code = 0;
                if (PLAIT_IS_FAIL(value)) {
                    code = (int)(intptr_t)value;
                    value = NULL;
                }
            }
            m->results[i] = value;
            if (m->errors)
                m->errors[i] = code;
            if (code < 0)
                note_failure(m, i, code);
        }
    }
    return NULL;
}

int plait_pool_map(plait_pool *pool, plait_fn fn, void *const *args, size_t n,
                   void **results, int *errors, int64_t deadline)
{
    if (!pool || !fn || !args || !results || n == 0 || n > (SIZE_MAX >> CODE_BITS))
        return -EINVAL;
    int r = plait__check_cancel();
    if (r < 0)
        return fail_every_item(results, errors, n, r);
    size_t threads = plait_pool_threads(pool);
    size_t chunk = n / (threads * CHUNKS_PER_RUNNER);
    if (chunk == 0)
        chunk = 1;
    size_t runners = (n + chunk - 1) / chunk;
    if (runners > threads)
        runners = threads;
    /* the job and the runners' handles on the heap: on the caller's stack (464 bytes),
     * with the wait's frames below, a map from a coroutine on the smallest stack ran off
     * it (a review) */
    map_job *m = malloc(sizeof *m + runners * sizeof(plait_task));
    if (!m)
        return fail_every_item(results, errors, n, -ENOMEM);
    *m = (map_job){.fn = fn, .args = args, .results = results, .errors = errors, .n = n,
                   .chunk = chunk, .deadline = deadline,
                   .caller = plait__coro_current() || plait__shielded() ? NULL : plait__tls_work};
    atomic_init(&m->next, 0);
    atomic_init(&m->stop, false);
    atomic_init(&m->expired, false);
    atomic_init(&m->first_failure, UINT64_MAX);
    plait_task *tasks = m->tasks;
    size_t started = 0;
    for (; started < runners; started++)
        if ((r = plait__pool_submit_reachable(pool, &tasks[started], map_runner, m)) < 0)
            break;
    if (started == 0) { /* refused (shut down, or a forked child's copy) */
        free(m);
        return fail_every_item(results, errors, n, r);
    }
    /* the runners claim indices as they go: those started cover every item.  They
     * are joined one by one, which needs no memory: plait_wait_all of more than 8
     * takes some, and its -ENOMEM, once every item had run, said that none had (a
     * review) */
    r = 0;
    for (size_t i = 0; i < started && r == 0; i++) {
        r = plait_join(tasks[i], NULL, deadline);
        /* a runner's own failure (its handle consumed: it now says -ESRCH) is a
         * cancelling shutdown of the pool meeting it: no failure of the map's, as
         * the items say what ran and what was skipped (-ECANCELED, below); the
         * join's own failures consume none */
        if (r < 0 && plait_wait_any(&tasks[i], 1, 0) == -ESRCH)
            r = 0;
    }
    if (r == 0 && atomic_load(&m->expired))
        r = -ETIMEDOUT; /* every runner has returned: nothing left to stop */
    if (r < 0) {
        /* stop, then wait for the runners: none may outlive this call (handles
         * already consumed just answer -ESRCH).  A runner still queued never runs
         * (the cancellation withdraws it), one a worker has taken stops after its
         * item: the wait runs no other queued task, which might run far longer */
        atomic_store(&m->stop, true);
        for (size_t i = 0; i < started; i++)
            plait_cancel(tasks[i]);
        for (size_t i = 0; i < started; i++)
            plait__join_stopped(tasks[i], NULL);
    }
    /* items no runner claimed (stopped, or runners that never started) */
    size_t claimed = atomic_load(&m->next);
    for (size_t i = claimed < n ? claimed : n; i < n; i++) {
        results[i] = NULL;
        if (errors)
            errors[i] = -ECANCELED;
        note_failure(m, i, -ECANCELED);
    }
    unsigned long long first = atomic_load(&m->first_failure);
    free(m);
    if (r < 0)
        return r;
    return first == UINT64_MAX ? 0 : -(int)(first & ((1u << CODE_BITS) - 1));
}

int plait__submit_default(plait_task *task, plait_fn fn, void *arg)
{
    int r = plait__check_cancel();
    if (r < 0)
        return r;
    plait_pool *pool;
    r = plait__pool_default_get(&pool); /* its creation's code: -EAGAIN, -ENOMEM */
    return r < 0 ? r : plait__pool_submit_reachable(pool, task, fn, arg);
}

int plait_to_thread(plait_fn fn, void *arg, void **result, int64_t deadline)
{
    if (!fn)
        return -EINVAL;
    plait_task task;
    int r = plait__submit_default(&task, fn, arg);
    if (r < 0)
        return r;
    /* our wait may end before the task: it is stopped then, and waited for until it no
     * longer runs; an outcome it reached first is not lost */
    return plait__join_to_the_end(task, result, deadline);
}
