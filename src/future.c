/*
 * future.c — a task's outcome, and join, detach, cancel, wait-all and wait-any.
 *
 * A future is shared by its producer (the running coroutine) and its handle (the
 * plait_task the spawner got).  It is freed when both have let go.
 *
 * Handles are checked, not trusted: a plait_task is {future, generation}, and the
 * future's generation moves on the moment its handle is consumed (join, detach).
 * Futures are type-stable — allocated from chunks that are never freed — so reading
 * the generation through a stale handle is always safe, and a double join, a join
 * after detach or a cancel of a long-gone task all answer -ESRCH instead of touching
 * freed memory.
 *
 * Allocation is per-thread: a scheduler thread keeps a cache of free futures, so a
 * spawn/join pair takes no global lock; plain threads return futures to the global
 * list.
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct plait__future {
    atomic_ullong generation;
    plait__spinlock lock;
    bool done;
    int refs;                 /* producer + handle */
    void *value;
    int error;
    plait__waitq joiners;
    plait__coro *coro;        /* while it runs: the target of plait_cancel */
    struct plait__future *free_next;
} plait__future;

enum { CHUNK = 256, CACHE_MAX = 1024 };

typedef struct future_chunk {
    struct future_chunk *next;
    plait__future items[CHUNK];
} future_chunk;

static pthread_mutex_t global_lock = PTHREAD_MUTEX_INITIALIZER;
static plait__future *global_free;
static future_chunk *chunks; /* every chunk ever made: futures are never freed */
static PLAIT_TLS plait__future *cache;
static PLAIT_TLS unsigned cache_len;

static plait__future *future_alloc(void)
{
    if (cache) {
        plait__future *f = cache;
        cache = f->free_next;
        cache_len--;
        return f;
    }
    pthread_mutex_lock(&global_lock);
    if (!global_free) {
        future_chunk *c = calloc(1, sizeof *c);
        if (!c) {
            pthread_mutex_unlock(&global_lock);
            return NULL;
        }
        c->next = chunks;
        chunks = c;
        for (int i = CHUNK; i-- > 0;) {
            c->items[i].free_next = global_free;
            global_free = &c->items[i];
        }
    }
    plait__future *f = global_free;
    global_free = f->free_next;
    pthread_mutex_unlock(&global_lock);
    return f;
}

static void global_put(plait__future *first, plait__future *last)
{
    pthread_mutex_lock(&global_lock);
    last->free_next = global_free;
    global_free = first;
    pthread_mutex_unlock(&global_lock);
}

static void future_free(plait__future *f)
{
    if (!plait__sched_current() || cache_len >= CACHE_MAX) {
        global_put(f, f);
        return;
    }
    f->free_next = cache;
    cache = f;
    cache_len++;
}

void plait__future_flush_cache(void)
{
    if (!cache)
        return;
    plait__future *last = cache;
    while (last->free_next)
        last = last->free_next;
    global_put(cache, last);
    cache = NULL;
    cache_len = 0;
}

plait__future *plait__future_start(plait__coro *coro, plait_task *task)
{
    plait__future *f = future_alloc();
    if (!f)
        return NULL;
    f->done = false;
    f->refs = task ? 2 : 1;
    f->value = NULL;
    f->error = 0;
    f->joiners.head = f->joiners.tail = NULL;
    f->coro = coro;
    if (task) {
        task->future = f;
        task->generation = atomic_load_explicit(&f->generation, memory_order_relaxed);
    }
    return f;
}

/* Drop one reference; the caller holds f->lock, which this releases. */
static void unref_unlock(plait__future *f)
{
    bool last = --f->refs == 0;
    plait__spin_unlock(&f->lock);
    if (last)
        future_free(f);
}

void plait__future_complete(plait__future *f, void *value, int error)
{
    plait__spin_lock(&f->lock);
    f->value = value;
    f->error = error;
    f->done = true;
    f->coro = NULL;
    plait__waitq_wake_all(&f->joiners);
    unref_unlock(f);
}

/* Lock the future a handle names; NULL (and *err) when the handle is null or stale. */
static plait__future *lock_handle(plait_task task, int *err)
{
    plait__future *f = task.future;
    if (!f) {
        *err = -EINVAL;
        return NULL;
    }
    plait__spin_lock(&f->lock);
    if (atomic_load_explicit(&f->generation, memory_order_relaxed) != task.generation) {
        plait__spin_unlock(&f->lock);
        *err = -ESRCH;
        return NULL;
    }
    return f;
}

/* Consume the handle of a locked future; releases the lock. */
static void consume_unlock(plait__future *f)
{
    atomic_store_explicit(&f->generation, atomic_load_explicit(&f->generation, memory_order_relaxed) + 1, memory_order_relaxed);
    unref_unlock(f);
}

int plait_detach(plait_task task)
{
    int err;
    plait__future *f = lock_handle(task, &err);
    if (!f)
        return err;
    consume_unlock(f);
    return 0;
}

int plait_cancel(plait_task task)
{
    int err;
    plait__future *f = lock_handle(task, &err);
    if (!f)
        return err;
    if (f->coro)
        plait__coro_cancel(f->coro); /* alive: it clears f->coro under this lock */
    plait__spin_unlock(&f->lock);
    return 0;
}

int plait_wait_any(const plait_task *tasks, size_t n, int64_t deadline)
{
    if (!tasks || n == 0 || n > INT32_MAX)
        return -EINVAL;
    plait__wait_node small[8];
    plait__wait_node *nodes = n <= 8 ? small : malloc(n * sizeof *nodes);
    if (!nodes)
        return -ENOMEM;
    plait__waiter w;
    plait__waiter_init(&w, "wait-any", tasks);
    plait__coro *self = plait__coro_current();
    size_t linked = 0;
    int r = 0;
    bool decided = false, claimed_here = false;
    for (size_t i = 0; i < n && !decided; i++) {
        plait__future *f = lock_handle(tasks[i], &r);
        if (!f)
            break;
        if (f->done) {
            claimed_here = plait__waiter_claim(&w);
            if (claimed_here)
                w.index = (int)i;
            decided = true; /* by us, or by a waker that got there first */
        } else if (self && f->coro == self) {
            r = -EDEADLK;
        } else {
            plait__waitq_push(&f->joiners, &f->lock, &nodes[linked++], &w, (int)i, NULL);
        }
        plait__spin_unlock(&f->lock);
        if (r < 0)
            break;
    }
    if (r < 0) {
        /* bad handle: withdraw; if a task finished meanwhile its signal is absorbed */
        if (!plait__waiter_claim(&w))
            plait__waiter_block(&w, PLAIT_FOREVER);
    } else if (!claimed_here) {
        r = plait__waiter_block(&w, deadline);
    }
    for (size_t i = 0; i < linked; i++)
        plait__wait_node_unlink(&nodes[i]);
    if (nodes != small)
        free(nodes);
    return r < 0 ? r : w.index;
}

/* Take the outcome of a finished future through its handle. */
static int take(plait_task task, void **result)
{
    int err;
    plait__future *f = lock_handle(task, &err);
    if (!f)
        return err;
    if (!f->done) {
        plait__spin_unlock(&f->lock);
        return -EAGAIN;
    }
    if (result)
        *result = f->value;
    err = f->error;
    consume_unlock(f);
    return err;
}

int plait_join(plait_task task, void **result, int64_t deadline)
{
    for (;;) {
        int r = take(task, result);
        if (r != -EAGAIN)
            return r;
        r = plait_wait_any(&task, 1, deadline);
        if (r < 0)
            return r;
    }
}

int plait_wait_all(const plait_task *tasks, size_t n, void **results, int *errors,
                   int64_t deadline)
{
    if (!tasks || n == 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        int err;
        plait__future *f = lock_handle(tasks[i], &err);
        if (!f)
            return err;
        plait__spin_unlock(&f->lock);
    }
    for (size_t i = 0; i < n; i++) {
        int r = plait_wait_any(&tasks[i], 1, deadline);
        if (r < 0)
            return r;
    }
    int first = 0;
    for (size_t i = 0; i < n; i++) {
        void *value = NULL;
        int r = take(tasks[i], &value);
        if (results)
            results[i] = value;
        if (errors)
            errors[i] = r;
        if (r < 0 && !first)
            first = r;
    }
    return first;
}
