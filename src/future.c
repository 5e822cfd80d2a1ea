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
 * freed memory.  A generation's high bits name the process that started the task (its
 * id, mixed with its id namespace's: process_named_now), the rest count starts and
 * consumes (gen_next): a parent and its child reuse the
 * same copied free futures in the same order, so without the name a handle one of them
 * made after the fork could be the other's to the bit, and act on its task; and a
 * future of the forking scheduler's coroutines goes on in both under the parent's
 * name, where the counts keep them apart.  A handle is looked up among the process's
 * chunks first (handle_foreign) where it may name memory this process never had.
 *
 * Allocation is per-thread: every thread keeps a cache of free futures, so a
 * spawn/join or submit/join pair takes no global lock; a thread's cache goes back to
 * the global list when the thread (or its scheduler) ends.  The global list is a
 * stack of batches, each a list through free_next whose first future holds the
 * batch's length and the next batch: a cache takes or gives back a whole batch in
 * one step under the lock.  A batch holds BATCH futures at most (a chunk and a
 * flushed cache are cut into such), so a cache takes no more than the list walk took.
 * (Cutting a batch off one long list walked it: a chain of cache misses under the
 * lock, a tenth of a submit's time when a program keeps a million tasks in flight and
 * their futures leave the caches.)
 *
 * Cancellation has two kinds of target.  A running coroutine is cancelled through its
 * scheduler (plait__coro_cancel).  Work on a plain thread (a plait thread, a pool task)
 * carries its own flag, `cancelled`, and the cancellable wait it is blocked in,
 * `blocked`, which waiter.c registers under the future's lock: plait_cancel claims that
 * wait under the same lock, so it never touches a wait that has already returned, and
 * sets the flag under it, which the completion reads under it (a coroutine's flag too,
 * and the flag of a process's future, whose ops drop what the child returned): a
 * cancellation that came before the outcome was recorded, even after the function
 * returned, makes it -ECANCELED.
 * Both targets are cleared when the future completes, under its lock.  A thread that
 * runs a scheduler (plait_run) is blocked in no such wait: it names the scheduler's
 * main coroutine, `sched_main`, which plait_cancel cancels (and plait_run, as main
 * returns, the others); main stops being named, under the lock, before it ends.
 *
 * In a forked child, a task whose producer is not there (a task of the parent's other
 * threads, or of another process) is not touched at all: every call on its handle is
 * -EPERM, decided before its lock is taken, as the parent's threads may have held that
 * lock at the fork (made_elsewhere).  The forking thread's scheduler goes on in the
 * child, and its coroutines' tasks with it: the fork takes their locks, and those of the
 * sets watching them, from the parent's other threads first (plait__future_sched_atfork).
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { CHUNK = 256, CACHE_MAX = 1024, BATCH = 64 };
enum { WORK_QUEUED, WORK_RUNNING, WORK_WITHDRAWN };

typedef struct future_chunk {
    struct future_chunk *next;
    plait__future items[CHUNK];
} future_chunk;

static pthread_mutex_t global_lock = PTHREAD_MUTEX_INITIALIZER;
static plait__future *global_batches; /* first futures of batches, through next */
static future_chunk *chunks; /* every chunk ever made: futures are never freed */
static size_t chunk_count;
/* the chunks by address, for future_known (a forked process's look at a handle);
 * behind chunks when an insertion found no memory (then the list is walked) */
static const future_chunk **chunks_sorted;
static size_t chunks_sorted_n, chunks_sorted_cap;
static PLAIT_TLS plait__future *cache;
static PLAIT_TLS unsigned cache_len;
static PLAIT_TLS bool cache_registered;
static PLAIT_TLS bool cache_gone; /* the thread's exit hook has flushed its cache */

PLAIT_TLS plait__future *plait__tls_work;

/* Push a batch: n futures from first, through free_next to a NULL; the lock held. */
static void batch_push(plait__future *first, unsigned n)
{
    first->batch_len = n;
    first->next = global_batches;
    global_batches = first;
}

static void global_put(plait__future *first, plait__future *last, unsigned n)
{
    last->free_next = NULL;
    pthread_mutex_lock(&global_lock);
    batch_push(first, n);
    pthread_mutex_unlock(&global_lock);
}

/* Record a new chunk in chunks_sorted (global_lock held). */
static void chunk_sorted_add(const future_chunk *c)
{
    if (chunks_sorted_n + 1 != ++chunk_count)
        return; /* behind already: future_known walks the list */
    if (chunks_sorted_n == chunks_sorted_cap) {
        size_t cap = chunks_sorted_cap ? 2 * chunks_sorted_cap : 16;
        const future_chunk **grown = realloc(chunks_sorted, cap * sizeof *grown);
        if (!grown)
            return;
        chunks_sorted = grown;
        chunks_sorted_cap = cap;
    }
    size_t at = chunks_sorted_n;
    while (at > 0 && (uintptr_t)chunks_sorted[at - 1] > (uintptr_t)c)
        at--;
    memmove(&chunks_sorted[at + 1], &chunks_sorted[at],
            (chunks_sorted_n - at) * sizeof *chunks_sorted);
    chunks_sorted[at] = c;
    chunks_sorted_n++;
}

/* Take a batch from the global list (a chunk made anew when it is empty), or only its
 * first future when one is all the caller can keep: the first, linked through
 * free_next, *n of them; NULL when out of memory. */
static plait__future *global_take(bool one, unsigned *n)
{
    plait__fork_init();
    pthread_mutex_lock(&global_lock);
    if (!global_batches) {
        future_chunk *c = calloc(1, sizeof *c);
        if (!c) {
            pthread_mutex_unlock(&global_lock);
            return NULL;
        }
        c->next = chunks;
        chunks = c;
        chunk_sorted_add(c);
        /* in batches of BATCH, as a cache takes no more at once (a thread that makes
         * one future keeps no whole chunk) */
        _Static_assert(CHUNK % BATCH == 0, "a chunk is whole batches");
        for (int i = 0; i < CHUNK; i++) /* (each batch's last: NULL) */
            c->items[i].free_next = (i + 1) % BATCH ? &c->items[i + 1] : NULL;
        for (int i = CHUNK - BATCH; i >= 0; i -= BATCH)
            batch_push(&c->items[i], BATCH);
    }
    plait__future *first = global_batches;
    global_batches = first->next;
    first->next = NULL;
    *n = first->batch_len;
    if (one && *n > 1) {
        batch_push(first->free_next, *n - 1);
        first->free_next = NULL;
        *n = 1;
    }
    pthread_mutex_unlock(&global_lock);
    return first;
}

static bool cache_usable(void);

static plait__future *future_alloc(void)
{
    if (PLAIT_UNLIKELY(!cache)) {
        unsigned n;
        /* a thread whose exit would not give a cache back takes one at a time */
        bool usable = cache_usable();
        plait__future *first = global_take(!usable, &n);
        if (!usable || !first)
            return first;
        cache = first;
        cache_len = n;
    }
    plait__future *f = cache;
    if (f) {
        cache = f->free_next;
        cache_len--;
    }
    return f;
}

static void cache_thread_exit(void *unused)
{
    (void)unused;
    plait__future_flush_cache();
    /* Other exit hooks run after this one (a task-local destructor that joins a task):
     * what they free goes straight back, not into a cache nobody flushes again. */
    cache_gone = true;
    cache_registered = false;
}

static plait__exit_key cache_key = PLAIT__EXIT_KEY(cache_thread_exit);

/* A thread may cache futures once its exit is sure to return them: a scheduler's
 * thread flushes its cache as plait_run() returns; another thread registers a key
 * destructor.  (Not from a coroutine: pthread calls may not fit a 2 KiB stack.) */
static bool cache_usable(void)
{
    if (PLAIT_LIKELY(cache_registered) || plait__sched_current())
        return true;
    if (cache_gone)
        return false;
    pthread_key_t key;
    if (!plait__exit_key_get(&cache_key, &key) || pthread_setspecific(key, &cache_key) != 0)
        return false;
    return cache_registered = true;
}

static void future_free(plait__future *f)
{
    if (!cache_usable()) {
        global_put(f, f, 1);
        return;
    }
    f->free_next = cache;
    cache = f;
    if (++cache_len > CACHE_MAX) {
        /* give a batch back, in one lock */
        plait__future *last = cache;
        for (unsigned i = 1; i < BATCH; i++)
            last = last->free_next;
        plait__future *first = cache;
        cache = last->free_next;
        cache_len -= BATCH;
        global_put(first, last, BATCH);
    }
}

void plait__future_flush_cache(void)
{
    if (!cache)
        return;
    /* Cut into batches of BATCH at most as the cache is walked (outside the lock, as
     * the walk to its end was), so that no cache takes more than BATCH from the global
     * list at once: a whole cache of up to CACHE_MAX would be kept by a thread that
     * makes one future. */
    plait__future *head = NULL, *tail = NULL, *f = cache;
    while (f) {
        plait__future *first = f, *last = f;
        unsigned n = 1;
        while (n < BATCH && last->free_next) {
            last = last->free_next;
            n++;
        }
        f = last->free_next;
        last->free_next = NULL;
        first->batch_len = n;
        first->next = NULL;
        if (tail)
            tail->next = first;
        else
            head = first;
        tail = first;
    }
    pthread_mutex_lock(&global_lock);
    tail->next = global_batches;
    global_batches = head;
    pthread_mutex_unlock(&global_lock);
    cache = NULL;
    cache_len = 0;
}

static bool made_elsewhere(const plait__future *f);

/* A generation: the process's name (22 bits: its id, below Linux's PID_MAX_LIMIT of
 * 2^22, mixed with its namespace's) above GEN_COUNT_BITS bits of count, which a start
 * and a consumed handle move on (2^42 of them on one future before the count wraps, and
 * a stale handle could match again: no real program holds one that long). */
enum { GEN_COUNT_BITS = 42 };
#define GEN_COUNT_MASK ((UINT64_C(1) << GEN_COUNT_BITS) - 1)

static uint64_t gen_process(uint64_t generation) { return generation >> GEN_COUNT_BITS; }
static uint64_t gen_count(uint64_t generation) { return generation & GEN_COUNT_MASK; }

/* The generation after this one: the same process, the count one on.  Both a start and
 * a consume count, so that after a fork, where a future's copies go on apart in the
 * two processes, the count of a task the parent starts is past any the child's copy
 * has or reaches under the parent's name (the child counts once, consuming a handle it
 * had from before the fork; a start of its own names the child): a handle the parent
 * made after the fork is never the child's to the bit, and is told from a stale handle
 * from before it by a count above the copy's (handle_misfit). */
static uint64_t gen_next(uint64_t generation)
{
    return (generation & ~GEN_COUNT_MASK) | gen_count(generation + 1);
}

/* The answer to a handle whose generation is not the future's, now: a stale handle of
 * this process's, or one from before the fork (counted below the future), -ESRCH; one
 * that another process made, -EPERM: named for another process than the future's
 * task, or, in a forked child, counted past it (the parent's, after the fork). */
static int handle_misfit(uint64_t handle, uint64_t future)
{
    return gen_process(handle) != gen_process(future) || gen_count(handle) > gen_count(future)
               ? -EPERM
               : -ESRCH;
}

/* This process's name in a generation: its id, mixed with its id namespace's number.
 * Ids are unique within a namespace only: a child that is the first process of a new
 * one has id 1, as its parent may have in its own.  The namespace's number (its inode; a
 * /proc that cannot be read counts as 0) is hashed and xor'ed in: within a namespace,
 * distinct ids still make distinct names, and across namespaces two meet only by chance
 * (added, an id p of one and 1 of the next-numbered met whenever p was the difference of
 * their numbers plus one, 2 for two made in a row; a review).  Kept in a word that is 0 in
 * every child (plait__process_name), with two flags: NAMED, so that it is never 0 once
 * named, and FORKED, a forked process's (see handle_foreign): one load on the hot
 * paths, where the look at the fork epoch and a word of its own took three. */
#define PROCESS_NAMED UINT64_C(1)
#define PROCESS_FORKED UINT64_C(2)

static __attribute__((noinline)) uint64_t process_named_now(void)
{
    struct stat ns;
    uint64_t space = stat("/proc/self/ns/pid", &ns) == 0 ? (uint64_t)ns.st_ino : 0;
    uint64_t mixed = (space * UINT64_C(0x9E3779B97F4A7C15)) >> GEN_COUNT_BITS;
    /* the name where a generation has it, the flags in the bits of the count */
    uint64_t named = ((uint64_t)getpid() ^ mixed) << GEN_COUNT_BITS | PROCESS_NAMED |
                     (plait__fork_epoch() != 0 ? PROCESS_FORKED : 0);
    atomic_store_explicit(plait__process_name, named, memory_order_relaxed);
    return named;
}

static inline uint64_t process_named(void)
{
    uint64_t named = atomic_load_explicit(plait__process_name, memory_order_relaxed);
    return PLAIT_LIKELY(named) ? named : process_named_now();
}

/* This process's name as a generation has it (the count 0). */
static inline uint64_t this_process(void) { return process_named() & ~GEN_COUNT_MASK; }

/* sched_id: the scheduler whose coroutine produces it, 0 for other work. */
static plait__future *future_start(plait_task *task, uint64_t sched_id)
{
    plait__future *f = future_alloc();
    if (!f)
        return NULL;
    /* Last started before this process was forked, and not by the forking thread's
     * scheduler: a thread of the parent may have held its lock at the fork (a stale
     * handle's check), held for ever in this copy, which nothing here has taken since
     * (made_elsewhere keeps every call off it).  The task it starts now is this
     * process's. */
    if (PLAIT_UNLIKELY(made_elsewhere(f)))
        plait__spin_unlock(&f->lock);
    atomic_store_explicit(&f->done, false, memory_order_relaxed);
    f->refs = task ? 2 : 1;
    f->value = NULL;
    f->error = 0;
    f->joiners.head = f->joiners.tail = NULL;
    f->coro = NULL;
    f->on_thread = false;
    f->withdrawable = false;
    atomic_store_explicit(&f->work_state, WORK_QUEUED, memory_order_relaxed);
    atomic_store_explicit(&f->cancelled, 0, memory_order_relaxed);
    f->shielded = false;
    f->blocked = NULL;
    f->sched_main = NULL;
    f->fn = NULL;
    f->arg = NULL;
    f->next = NULL;
    f->ops = NULL;
    f->ext = NULL;
    /* NULL already: a set lets go of a future (completed_release, completed_push of a
     * dead set) before its last reference goes.  Not written then, as a fork from a
     * coroutine may be reading it (plait__future_sched_atfork). */
    if (atomic_load_explicit(&f->watch, memory_order_relaxed))
        atomic_store_explicit(&f->watch, NULL, memory_order_relaxed);
    atomic_store_explicit(&f->epoch, plait__fork_epoch(), memory_order_relaxed);
    atomic_store_explicit(&f->sched_id, sched_id, memory_order_relaxed);
    /* named for this process, and counted on (see gen_next) */
    uint64_t generation =
        this_process() |
        gen_count(atomic_load_explicit(&f->generation, memory_order_relaxed) + 1);
    atomic_store_explicit(&f->generation, generation, memory_order_relaxed);
    if (task) {
        task->future = f;
        task->generation = generation;
    }
    return f;
}

plait__future *plait__future_start(plait__coro *coro, plait_task *task)
{
    plait__future *f = future_start(task, coro->sched->id);
    if (f)
        f->coro = coro;
    return f;
}

plait__future *plait__future_start_work(plait_fn fn, void *arg, plait_task *task,
                                        bool withdrawable)
{
    plait__future *f = future_start(task, 0);
    if (f) {
        f->on_thread = true;
        f->withdrawable = withdrawable;
        f->fn = fn;
        f->arg = arg;
    }
    return f;
}

plait__future *plait__future_start_ext(const plait__future_ops *ops, void *ext,
                                       plait_task *task)
{
    plait__future *f = future_start(task, 0);
    if (f) {
        f->ops = ops;
        f->ext = ext;
    }
    return f;
}

/* Drop one reference; the caller holds f->lock, which this releases. */
static void unref_unlock(plait__future *f)
{
    bool last = --f->refs == 0;
    plait__spin_unlock(&f->lock);
    if (last) {
        if (f->ops)
            f->ops->release(f);
        future_free(f);
    }
}

/* The scheduler of the thread that forked this process (0: none), whose coroutines'
 * tasks go on here (fork.c); and the first id drawn after the fork (0 in a process
 * never forked): a scheduler with a lower id is an ancestor's. */
uint64_t plait__forked_sched_id;
uint64_t plait__forked_id_floor;

/* Whether f is a future of this process's memory: one of a chunk it has (made here, or
 * copied at the fork).  A handle made in another process (in the parent after this
 * process was forked, given to a process pool's task in its argument, say; in a child,
 * sent back through a pipe) names memory this process may never have had, or that
 * holds something else here: reading it could crash, or spin on a "lock" that is not
 * one.  Such a handle is not the process's, so every call on it is -EPERM without
 * touching it.  Chunks are never
 * freed, so the one found last (per thread) is looked at first, without the lock; then
 * a binary search of the chunks by address. */
static PLAIT_TLS const future_chunk *known_chunk;

static bool in_chunk(const future_chunk *c, const plait__future *f)
{
    uintptr_t at = (uintptr_t)f, start = (uintptr_t)c->items;
    return at >= start && at < start + sizeof c->items &&
           (at - start) % sizeof c->items[0] == 0;
}

static bool future_known(const plait__future *f)
{
    const future_chunk *c = known_chunk;
    if (c && in_chunk(c, f))
        return true;
    pthread_mutex_lock(&global_lock);
    if (chunks_sorted_n == chunk_count) {
        /* the last chunk that starts at or below f */
        size_t lo = 0, hi = chunks_sorted_n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if ((uintptr_t)chunks_sorted[mid] <= (uintptr_t)f)
                lo = mid + 1;
            else
                hi = mid;
        }
        c = lo > 0 && in_chunk(chunks_sorted[lo - 1], f) ? chunks_sorted[lo - 1] : NULL;
    } else {
        for (c = chunks; c && !in_chunk(c, f); c = c->next) {
        }
    }
    pthread_mutex_unlock(&global_lock);
    if (c)
        known_chunk = c;
    return c != NULL;
}

/* A handle that names no future of this process's memory: one made in another
 * process.  Looked up where a handle may not be the process's: one that names another
 * process, and any in a forked process (a handle made by a process gone since, whose id
 * the kernel gave to this one, names it too: forked children are where such handles
 * travel).  A process never forked takes a handle that names it for its own. */
static bool handle_foreign(plait_task task)
{
    uint64_t named = process_named();
    return PLAIT_UNLIKELY((((task.generation ^ named) & ~GEN_COUNT_MASK) |
                           (named & PROCESS_FORKED)) != 0) &&
           !future_known(task.future);
}

static bool made_elsewhere(const plait__future *f);

/* made_elsewhere for a handle the caller gave: a foreign one is not the process's
 * either. */
static bool handle_elsewhere(plait_task task)
{
    return handle_foreign(task) || made_elsewhere(task.future);
}

/* Whether a future is a copy, in a forked child, of one whose producer is not here:
 * made before the fork, and not a coroutine of the forking thread's scheduler — a task
 * of the parent's other threads (a coroutine of another scheduler, a plait thread, a
 * pool task, the work the forking thread ran: plait__future_atfork), finished or not,
 * or one that runs in another process (a process, a process pool task).  Threads of
 * the parent may have held its lock at the fork (a canceller posting to the
 * coroutine's scheduler, a joiner, the producer finishing): held for ever in the copy.
 * Its waits are copies too, some with descriptors the two processes share (a thread's
 * wake-up eventfd, a pidfd), so touching them would reach into the parent.  So it is
 * answered from the fields that say where it runs, read without the lock: nothing in
 * the child writes them, as the handle it cannot consume keeps the future from being
 * freed and started again. */
static bool made_elsewhere(const plait__future *f)
{
    if (PLAIT_LIKELY(atomic_load_explicit(&f->epoch, memory_order_relaxed) ==
                     plait__fork_epoch()))
        return false;
    uint64_t sched = atomic_load_explicit(&f->sched_id, memory_order_relaxed);
    return !sched || sched != plait__forked_sched_id;
}

void plait__joiner_push(plait__future *f, plait__wait_node *node, plait__waiter *w, int index)
{
    f->refs++;
    plait__waitq_push(&f->joiners, &f->lock, node, w, index, NULL);
}

void plait__joiner_unlink(plait__wait_node *node)
{
    /* a joiner's node was pushed with its future's lock: that names the future */
    plait__future *f = (plait__future *)(void *)((char *)node->lock -
                                                 offsetof(plait__future, lock));
    /* In a forked child, a coroutine of the forking thread's scheduler that was waiting
     * for a task that is not the child's gives its node up without that future's lock,
     * which a parent thread may have held at the fork (its wait ended at a deadline or
     * a cancellation here, then spun for ever).  The copy keeps the node and its
     * reference: nothing in the child walks or frees it (made_elsewhere). */
    if (PLAIT_UNLIKELY(made_elsewhere(f)))
        return;
    plait__wait_node_unlink(node);
    plait__spin_lock(&f->lock);
    unref_unlock(f);
}

static void completed_push(struct plait_completed *set, plait__future *f,
                           plait__wakeups *later);

/* Publish the outcome of a locked future; the wake-ups go into later. */
static void finish_locked(plait__future *f, void *value, int error, plait__wakeups *later)
{
    f->value = value;
    f->error = error;
    f->coro = NULL;
    f->on_thread = false;
    atomic_store_explicit(&f->done, true, memory_order_release);
    plait__waitq_wake_all(&f->joiners, later);
    plait_completed *watch = atomic_load_explicit(&f->watch, memory_order_relaxed);
    if (watch)
        completed_push(watch, f, later);
}

/* Whether the producer of a locked future has been cancelled: its work's flag (a pool
 * task, a plait thread; a process, whose ops drop what it returned) or its coroutine's,
 * each set under the lock by plait_cancel. */
static bool producer_cancelled(const plait__future *f)
{
    if (f->on_thread || (f->ops && f->ops->drop))
        return atomic_load_explicit(&f->cancelled, memory_order_relaxed);
    return f->coro && atomic_load_explicit(&f->coro->cancelled, memory_order_relaxed);
}

int plait__future_complete_into(plait__future *f, void *value, int error,
                                plait__wakeups *later)
{
    plait__spin_lock(&f->lock);
    /* A cancellation that came after the function had returned (while task-local
     * destructors ran, or just now) reached the task before its outcome was recorded:
     * the outcome is the cancellation, and what the function returned is dropped
     * (plait_cancel, plait_to_thread).  Looked at here, under the lock plait_cancel
     * takes, not as the function returns: one that came in between was lost
     * (tests/test_cancel_as_fn_returns.c). */
    void (*drop)(void *) = NULL;
    void *dropped = NULL;
    if (producer_cancelled(f)) {
        if (f->ops) /* freed after the unlock, as everything (see "Lock order") */
            drop = f->ops->drop, dropped = value;
        value = NULL;
        error = -ECANCELED;
    }
    finish_locked(f, value, error, later);
    unref_unlock(f);
    if (dropped)
        drop(dropped);
    return error;
}

void plait__future_complete(plait__future *f, void *value, int error)
{
    plait__wakeups later;
    later.n = 0;
    plait__future_complete_into(f, value, error, &later);
    plait__wakeups_deliver(&later);
}

void plait__future_release(plait__future *f)
{
    plait__spin_lock(&f->lock);
    unref_unlock(f);
}

int plait__future_run_work(plait__future *f, void **value)
{
    *value = NULL;
    int queued = WORK_QUEUED;
    if (!atomic_compare_exchange_strong(&f->work_state, &queued, WORK_RUNNING))
        return PLAIT__WITHDRAWN;
    /* cancelled as it began: a pool task does not start; a plait thread's function
     * runs, and its blocking calls see the cancellation (it may own its argument) */
    if (f->withdrawable && atomic_load_explicit(&f->cancelled, memory_order_relaxed))
        return -ECANCELED;
    plait__future *outer = plait__tls_work;
    f->identity = 0; /* a new owner for locks (plait__self): each run is one */
    plait__tls_work = f;
    void *result = f->fn(f->arg);
    plait__tls_work = outer;
    if (PLAIT_IS_FAIL(result))
        return (int)(intptr_t)result;
    *value = result;
    return 0;
}

/* Cancel the producer of a locked future; the wake-ups go into later.  (A future whose
 * producer is not in this process is never locked here: plait__future_lock.) */
static int cancel_locked(plait__future *f, plait__wakeups *later)
{
    if (atomic_load_explicit(&f->done, memory_order_relaxed))
        return 0;
    if (f->coro) {
        plait__coro_cancel(f->coro); /* alive: it clears f->coro under this lock */
    } else if (f->ops) {
        atomic_store_explicit(&f->cancelled, 1, memory_order_relaxed);
        if (f->ops->cancel(f))
            finish_locked(f, NULL, -ECANCELED, later);
    } else if (f->on_thread) {
        atomic_store_explicit(&f->cancelled, 1, memory_order_relaxed);
        int queued = WORK_QUEUED;
        if (f->withdrawable &&
            atomic_compare_exchange_strong(&f->work_state, &queued, WORK_WITHDRAWN)) {
            /* not started: it never will, so its outcome is known now; the queue keeps
             * the producer's reference until a worker comes across it */
            finish_locked(f, NULL, -ECANCELED, later);
            return 0;
        }
        if (f->sched_main)
            plait__coro_cancel(f->sched_main); /* alive: it clears sched_main first */
        plait__waiter *w = f->blocked;
        if (w && plait__waiter_claim(w))
            plait__waiter_signal(w, -ECANCELED, -1, later);
    }
    return 0;
}

void plait__work_set_main(plait__future *work, plait__coro *main)
{
    plait__spin_lock(&work->lock);
    work->sched_main = main;
    if (main && atomic_load_explicit(&work->cancelled, memory_order_relaxed))
        plait__coro_cancel(main);
    plait__spin_unlock(&work->lock);
}

void plait__future_cancel(plait__future *f)
{
    plait__wakeups later;
    later.n = 0;
    plait__spin_lock(&f->lock);
    cancel_locked(f, &later);
    plait__spin_unlock(&f->lock);
    plait__wakeups_deliver(&later);
}

plait__future *plait__future_lock(plait_task task, int *err)
{
    plait__future *f = task.future;
    if (!f) {
        *err = -EINVAL;
        return NULL;
    }
    if (handle_foreign(task)) {
        *err = -EPERM;
        return NULL;
    }
    if (PLAIT_UNLIKELY(made_elsewhere(f))) {
        uint64_t generation = atomic_load_explicit(&f->generation, memory_order_relaxed);
        *err = generation == task.generation ? -EPERM
                                             : handle_misfit(task.generation, generation);
        return NULL;
    }
    plait__spin_lock(&f->lock);
    uint64_t generation = atomic_load_explicit(&f->generation, memory_order_relaxed);
    if (generation != task.generation) {
        plait__spin_unlock(&f->lock);
        *err = handle_misfit(task.generation, generation);
        return NULL;
    }
    return f;
}

/* Consume the handle of a locked future; releases the lock. */
static void consume_unlock(plait__future *f)
{
    atomic_store_explicit(&f->generation,
                          gen_next(atomic_load_explicit(&f->generation, memory_order_relaxed)),
                          memory_order_relaxed);
    unref_unlock(f);
}

int plait_detach(plait_task task)
{
    int err;
    plait__future *f = plait__future_lock(task, &err);
    if (!f)
        return err;
    consume_unlock(f);
    return 0;
}

int plait_cancel(plait_task task)
{
    int err;
    plait__future *f = plait__future_lock(task, &err);
    if (!f)
        return err;
    plait__wakeups later;
    later.n = 0;
    int r = cancel_locked(f, &later);
    plait__spin_unlock(&f->lock);
    plait__wakeups_deliver(&later);
    return r;
}

/* The future named by a handle when it is current (not stale), else NULL. */
static plait__future *future_of(plait_task task)
{
    int err;
    plait__future *f = plait__future_lock(task, &err);
    if (f)
        plait__spin_unlock(&f->lock);
    return f;
}

bool plait__join_cut_short(int r, plait_task task)
{
    /* -ENOMEM too: a coroutine's timed wait whose timer could not be kept (the task's
     * own -ENOMEM consumes the handle, which future_of then tells) */
    return (r == -ETIMEDOUT || r == -ECANCELED || r == -ENOMEM) && future_of(task);
}

/* plait_cancel, telling whether the task had finished already (its outcome its own). */
static bool cancel_unless_finished(plait_task task)
{
    int err;
    plait__future *f = plait__future_lock(task, &err);
    if (!f)
        return false; /* the join that follows says why */
    bool finished = atomic_load_explicit(&f->done, memory_order_relaxed);
    plait__wakeups later;
    later.n = 0;
    if (!finished)
        cancel_locked(f, &later);
    plait__spin_unlock(&f->lock);
    plait__wakeups_deliver(&later);
    return finished;
}

int plait__join_to_the_end(plait_task task, void **result, int64_t deadline)
{
    int r = plait_join(task, result, deadline);
    if (plait__join_cut_short(r, task)) {
        /* A task that finished before the cancellation gives its outcome whatever its
         * code: its own -ECANCELED too, which the outcome alone cannot tell from the
         * cancellation's (that one was reported as the wait's -ETIMEDOUT). */
        bool finished = cancel_unless_finished(task);
        int outcome = plait__join_stopped(task, result);
        if (finished || outcome != -ECANCELED)
            r = outcome;
    }
    return r;
}

/* Whether a locked future is the caller's own outcome: that of the running coroutine
 * self, or of the work this thread runs (a plait thread or pool task, which cannot
 * return while a coroutine of the scheduler it runs waits).  The caller cannot finish
 * while it waits, so waiting for it alone is a deadlock. */
static bool is_caller(const plait__future *f, const plait__coro *self)
{
    return (self && f->coro == self) || f == plait__tls_work;
}

/* helps: a pool task runs queued tasks while it waits (see plait__join_stopped).  nodes:
 * room for n. */
static int wait_any_in(const plait_task *tasks, size_t n, int64_t deadline, bool cancellable,
                       bool helps, plait__wait_node *nodes)
{
    plait__waiter w;
    plait__waiter_init(&w, "wait-any", tasks);
    w.cancellable = w.cancellable && cancellable;
    plait__coro *self = plait__coro_current();
    if (!self && helps)
        w.helper = plait__worker_helping(); /* a pool task runs others while it waits */
    size_t linked = 0;
    int r = 0;
    bool decided = false, claimed_here = false, itself = false;
    for (size_t i = 0; i < n; i++) {
        plait__future *f = plait__future_lock(tasks[i], &r);
        if (!f)
            break;
        if (decided) {
            /* only checked: a bad handle is refused wherever it is in the list, not
             * only while none before it has finished */
        } else if (atomic_load_explicit(&f->done, memory_order_relaxed)) {
            claimed_here = plait__waiter_claim(&w);
            if (claimed_here)
                w.index = (int)i;
            decided = true; /* by us, or by a waker that got there first */
        } else if (is_caller(f, self)) {
            itself = true; /* a deadlock unless another one has finished */
        } else {
            plait__joiner_push(f, &nodes[linked++], &w, (int)i);
        }
        plait__spin_unlock(&f->lock);
    }
    /* waiting for itself, and none finished: do not block either */
    bool now_only = itself && !decided && r == 0;
    if (now_only)
        r = -EDEADLK;
    if (r == 0 && !decided) { /* a deadline past (or a cancelled caller): do not block */
        if (cancellable && plait__check_cancel() < 0)
            r = -ECANCELED;
        else if (plait__deadline_passed(deadline))
            r = -ETIMEDOUT;
        now_only = r < 0;
    }
    if (r < 0) {
        /* bad handle, itself, or no waiting: withdraw; if a task finished meanwhile its
         * signal is absorbed (and, when the call was only not to block, reported: a
         * task that finished is no deadlock either).  A claim of our own (a finished
         * task, then a bad handle) has no signal coming. */
        if (!claimed_here && !plait__waiter_claim(&w)) {
            plait__waiter_block(&w, PLAIT_FOREVER);
            if (now_only)
                r = w.status;
        }
    } else if (!claimed_here) {
        r = plait__waiter_block(&w, deadline);
    }
    for (size_t i = 0; i < linked; i++)
        plait__joiner_unlink(&nodes[i]);
    return r < 0 ? r : w.index;
}

static int wait_any(const plait_task *tasks, size_t n, int64_t deadline, bool cancellable,
                    bool helps)
{
    plait__wait_node small[8];
    plait__wait_node *nodes = n <= 8 ? small : malloc(n * sizeof *nodes);
    if (!nodes)
        return -ENOMEM;
    int r = wait_any_in(tasks, n, deadline, cancellable, helps, nodes);
    if (nodes != small)
        free(nodes);
    return r;
}

int plait_wait_any(const plait_task *tasks, size_t n, int64_t deadline)
{
    if (!tasks || n == 0 || n > INT32_MAX)
        return -EINVAL;
    return wait_any(tasks, n, deadline, true, true);
}

/* Take the outcome of a finished future through its handle: *outcome gets the task's
 * code (0, or its error, which may be any code, -EAGAIN included: a process's own) or
 * the handle's (-ESRCH, -EINVAL).  false, with *outcome -EAGAIN and nothing taken,
 * while the task is not done. */
static bool take(plait_task task, void **result, int *outcome)
{
    plait__future *f = plait__future_lock(task, outcome);
    if (!f)
        return true;
    if (!atomic_load_explicit(&f->done, memory_order_relaxed)) {
        plait__spin_unlock(&f->lock);
        *outcome = -EAGAIN;
        return false;
    }
    if (result) {
        *result = f->value;
        f->value = NULL; /* the joiner's now: not for the release hook */
    }
    *outcome = f->error;
    consume_unlock(f);
    return true;
}

/* A plain thread's join of a task whose kind helps (a process pool task collects the
 * pool's completions itself).  Another thread may join a copy of the handle meanwhile
 * and consume it, which would free the task's extension under the helper: so the help
 * holds a reference of its own, taken while the handle is still current. */
static void help_holding_a_reference(plait_task task, int64_t deadline)
{
    int err;
    plait__future *f = plait__future_lock(task, &err);
    if (!f)
        return; /* take() says why */
    const plait__future_ops *ops = f->ops;
    if (!ops || !ops->help) {
        plait__spin_unlock(&f->lock);
        return;
    }
    f->refs++;
    plait__spin_unlock(&f->lock);
    ops->help(f, deadline);
    plait__spin_lock(&f->lock);
    unref_unlock(f);
}

static int join(plait_task task, void **result, int64_t deadline, bool cancellable,
                bool helps)
{
    plait__future *f = task.future;
    /* (not for a task that is not the child's, in a forked child: -EPERM at once, where
     * a pool task would run the queued tasks first, made_elsewhere) */
    bool current = f && !handle_elsewhere(task) && !plait__coro_current() &&
                   atomic_load_explicit(&f->generation, memory_order_relaxed) == task.generation;
    /* (not for the caller's own future, which cannot finish meanwhile: wait_any says
     * -EDEADLK at once, where running the queue first would only delay it) */
    if (current && helps && plait__worker_helping() && f != plait__tls_work)
        plait__worker_run_until_done(f, deadline, cancellable); /* take() checks the handle again */
    else if (current)
        help_holding_a_reference(task, deadline);
    for (;;) {
        int r;
        if (take(task, result, &r))
            return r;
        /* one node, not wait_any's eight (with them, 816 bytes of frame: a join, and a
         * map's joins, from a coroutine on the smallest stack, ran off it) */
        plait__wait_node node;
        r = wait_any_in(&task, 1, deadline, cancellable, helps, &node);
        if (r < 0)
            return r;
    }
}

int plait_join(plait_task task, void **result, int64_t deadline)
{
    return join(task, result, deadline, true, true);
}

int plait__join_stopped(plait_task task, void **result)
{
    return join(task, result, PLAIT_FOREVER, false, false);
}

int plait__join_without_helping(plait_task task, void **result, int64_t deadline)
{
    return join(task, result, deadline, true, false);
}

/* -EINVAL when two of the (current) handles name the same task: its outcome can be
 * taken once, so the second take would fail after the first had consumed it. */
static int check_distinct(const plait_task *tasks, size_t n)
{
    uintptr_t small[8];
    uintptr_t *futures = n <= 8 ? small : malloc(n * sizeof *futures);
    if (!futures)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        futures[i] = (uintptr_t)tasks[i].future;
    plait__sort(futures, n, sizeof *futures, plait__by_address); /* (not qsort: sort.c) */
    int r = 0;
    for (size_t i = 1; i < n && r == 0; i++)
        if (futures[i] == futures[i - 1])
            r = -EINVAL;
    if (futures != small)
        free(futures);
    return r;
}

int plait_wait_all(const plait_task *tasks, size_t n, void **results, int *errors,
                   int64_t deadline)
{
    if (!tasks || n == 0)
        return -EINVAL;
    /* Every check before the first wait, so that a failure of the call itself consumes
     * nothing and costs no time: the caller among the tasks would otherwise be found
     * only once the wait for those before it had ended (at the deadline, or never). */
    plait__coro *self = plait__coro_current();
    for (size_t i = 0; i < n; i++) {
        int err;
        plait__future *f = plait__future_lock(tasks[i], &err);
        if (!f)
            return err;
        bool itself = is_caller(f, self);
        plait__spin_unlock(&f->lock);
        if (itself)
            return -EDEADLK;
    }
    int r = check_distinct(tasks, n);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        r = plait_wait_any(&tasks[i], 1, deadline);
        if (r < 0)
            return r;
    }
    int first = 0;
    for (size_t i = 0; i < n; i++) {
        void *value = NULL;
        int outcome; /* each is done: waited for above */
        take(tasks[i], results ? &value : NULL, &outcome); /* untaken values are freed */
        if (results)
            results[i] = value;
        if (errors)
            errors[i] = outcome;
        if (outcome < 0 && !first)
            first = outcome;
    }
    return first;
}

/* ---- as completed ----
 *
 * A set holds a reference on each future it watches, from plait_completed_add() until
 * next() hands it back (or destroy() lets it go), so a finished future waits in the
 * done list even when its handle is joined meanwhile.  Lock order: future, then set.
 * A set destroyed while watched tasks still run is marked dead; the last of them to
 * finish frees it.  The finished ones on its done list at the destroy are the
 * destroy's to let go: until it has, they still name the set, and another set cannot
 * take them (-EBUSY), as they are not yet let go.  Callers inside next() are counted:
 * one woken takes the set's lock again, so destroy is refused until it has left.  A
 * take that leaves two or fewer watched wakes the others inside: what is left may be
 * only a waiter's own tasks, which no push would come for (-EDEADLK). */

struct plait_completed {
    plait__spinlock lock;
    size_t watched;             /* added and not handed back */
    plait__future *done_head, *done_tail;
    plait__waitq waiters;
    unsigned inside;            /* callers in plait_completed_next() */
    bool dead;
    bool fork_held;             /* locked by a fork's prepare (plait__future_sched_atfork) */
};

int plait_completed_create(plait_completed **set)
{
    if (!set)
        return -EINVAL;
    *set = calloc(1, sizeof **set);
    return *set ? 0 : -ENOMEM;
}

/* A watched future has finished (its lock held); the wake-up goes into later. */
static void completed_push(plait_completed *set, plait__future *f, plait__wakeups *later)
{
    plait__spin_lock(&set->lock);
    if (set->dead) {
        bool last = --set->watched == 0;
        plait__spin_unlock(&set->lock);
        f->watch = NULL;
        f->refs--; /* the set's; the producer's reference is dropped by our caller */
        if (last)
            free(set);
        return;
    }
    f->watch_next = NULL;
    if (set->done_tail)
        set->done_tail->watch_next = f;
    else
        set->done_head = f;
    set->done_tail = f;
    /* The oldest waiter is handed it.  One that is a pool task's helping wait may have
     * another consumer of this set stacked on it (run by its wait), and cannot run
     * again before that one returns, while that one slept beside the task it waited
     * for: so every helping waiter looks too (one that finds nothing waits again). */
    plait__wait_node *node = plait__waitq_claim(&set->waiters);
    bool helping = node && !node->waiter->coro && node->waiter->helper;
    if (node)
        plait__waiter_signal(node->waiter, 0, node->index, later);
    for (plait__wait_node *n = helping ? set->waiters.head : NULL, *next; n; n = next) {
        next = n->next;
        if (!n->waiter->coro && n->waiter->helper && plait__waitq_claim_node(&set->waiters, n))
            plait__waiter_signal(n->waiter, 0, n->index, later);
    }
    plait__spin_unlock(&set->lock);
}

/* A locked future still names the set that watched it when that set was destroyed
 * before it finished: let go of that set (freeing it if it was the last).  false when
 * the set is alive, or when the future had finished before the destroy (the destroy
 * lets go of it, and is about to). */
static bool completed_let_go_if_dead(plait__future *f)
{
    plait_completed *old = f->watch;
    plait__spin_lock(&old->lock);
    if (!old->dead || atomic_load_explicit(&f->done, memory_order_relaxed)) {
        plait__spin_unlock(&old->lock);
        return false;
    }
    bool last = --old->watched == 0;
    plait__spin_unlock(&old->lock);
    if (last)
        free(old);
    f->watch = NULL;
    f->refs--; /* the old set's; the caller holds the handle's */
    return true;
}

int plait_completed_add(plait_completed *set, plait_task task)
{
    if (!set)
        return -EINVAL;
    int err;
    plait__future *f = plait__future_lock(task, &err);
    if (!f)
        return err;
    if (f->watch && !completed_let_go_if_dead(f)) {
        plait__spin_unlock(&f->lock);
        return -EBUSY;
    }
    f->watch_generation = task.generation;
    f->refs++;
    plait__spin_lock(&set->lock);
    set->watched++;
    /* named in the set's lock with the count: own_tasks_watched reads it under that
     * lock alone */
    atomic_store_explicit(&f->watch, set, memory_order_relaxed);
    plait__spin_unlock(&set->lock);
    plait__wakeups later;
    later.n = 0;
    if (atomic_load_explicit(&f->done, memory_order_relaxed))
        completed_push(set, f, &later);
    plait__spin_unlock(&f->lock);
    plait__wakeups_deliver(&later);
    return 0;
}

/* Let go of a future taken off a set's done list; returns its handle.  In a forked
 * child, a task that is not the child's is let go without its lock, which a parent
 * thread may have held at the fork (a joiner of it: held for ever in the copy): the
 * handle is the one plait_completed_add() recorded, read without the lock as nothing
 * in the child writes it, and the copy keeps the set's reference (made_elsewhere). */
static plait_task completed_release(plait__future *f)
{
    if (PLAIT_UNLIKELY(made_elsewhere(f)))
        return (plait_task){f, f->watch_generation};
    plait__spin_lock(&f->lock);
    plait_task task = {f, f->watch_generation};
    f->watch = NULL;
    unref_unlock(f);
    return task;
}

/* How many of the caller's own tasks (its coroutine's, and the plait thread's or pool
 * task's its thread runs) set watches: none of them can finish while it waits.  Looked
 * at with the set's lock held, as the caller enters next() and each time its wait is
 * woken, without the futures' locks (which come before the set's): an add names the set
 * in the future in the set's lock, as it counts the future in `watched`, so what is
 * read agrees with the count.  An add of the caller's handle by another thread while it
 * waits wakes nobody, but the take that leaves only the caller's own tasks does. */
static size_t own_tasks_watched(const plait_completed *set)
{
    plait__coro *self = plait__coro_current();
    plait__future *own[2] = {self ? self->future : NULL, plait__tls_work};
    size_t mine = 0;
    for (size_t i = 0; i < 2; i++) {
        if (!own[i] || (i == 1 && own[i] == own[0]))
            continue;
        mine += atomic_load_explicit(&own[i]->watch, memory_order_relaxed) == set &&
                !atomic_load_explicit(&own[i]->done, memory_order_relaxed);
    }
    return mine;
}

int plait_completed_next(plait_completed *set, plait_task *task, int64_t deadline)
{
    if (!set || !task)
        return -EINVAL;
    plait__spin_lock(&set->lock);
    size_t mine = own_tasks_watched(set);
    set->inside++;
    int r = 0;
    plait__future *f;
    while (!(f = set->done_head) && set->watched > 0 && r == 0) {
        if (set->watched <= mine) { /* every one left is the caller's own */
            r = -EDEADLK;
            break;
        }
        r = plait__wait_on_helping(&set->waiters, &set->lock, deadline, "completed", set);
        plait__spin_lock(&set->lock); /* still ours: destroy waits for `inside` */
        mine = own_tasks_watched(set);
    }
    plait__wakeups later;
    later.n = 0;
    bool taken = f && r == 0;
    if (taken) {
        set->done_head = f->watch_next;
        if (!set->done_head)
            set->done_tail = NULL;
        /* That was the last: the others waiting get -EPIPE now (no push will come).  Or
         * one or two are left, which may be a waiter's own tasks (no push would come
         * for them, and its handle may have been added by another thread while it
         * waited): each looks again (-EDEADLK).  Only callers inside wait. */
        if (--set->watched <= 2 && set->inside > 1)
            plait__waitq_wake_all(&set->waiters, &later);
    } else {
        set->inside--;
    }
    plait__spin_unlock(&set->lock);
    plait__wakeups_deliver(&later);
    if (r < 0)
        return r;
    if (!f)
        return -EPIPE;
    /* Still counted inside until f is let go: f names the set until then, and whoever
     * holds f's lock meanwhile reads the set through it (a fork's walk of the forking
     * scheduler's tasks, another set's add): a destroy must not free it under them. */
    *task = completed_release(f);
    plait__spin_lock(&set->lock);
    set->inside--;
    plait__spin_unlock(&set->lock);
    return 0;
}

int plait_completed_destroy(plait_completed *set)
{
    if (!set)
        return -EINVAL;
    plait__spin_lock(&set->lock);
    if (set->inside) {
        plait__spin_unlock(&set->lock);
        return -EBUSY;
    }
    plait__future *done = set->done_head;
    set->done_head = set->done_tail = NULL;
    set->dead = true;
    /* With none finished, the set is not this call's to touch after the unlock: the
     * last running task to finish (or another set's add of it) may free it then. */
    bool last = !done && set->watched == 0;
    plait__spin_unlock(&set->lock);
    if (!done) {
        if (last)
            free(set);
        return 0;
    }
    /* The finished ones stay counted in `watched` until they are let go: until then
     * another set's add may look at this set through them (-EBUSY), so the last
     * running task to finish must not free it meanwhile. */
    size_t released = 0;
    while (done) {
        plait__future *f = done;
        done = f->watch_next;
        completed_release(f);
        released++;
    }
    plait__spin_lock(&set->lock);
    set->watched -= released;
    last = set->watched == 0;
    plait__spin_unlock(&set->lock);
    if (last)
        free(set);
    return 0;
}

/* ---- the tasks of the forking thread's scheduler across a fork ----
 *
 * A forked child goes on with the forking thread's scheduler and its coroutines' tasks
 * (made_elsewhere).  Another thread of the parent may be inside a call on one of those
 * tasks at the fork, holding its lock (a join, a wait, a cancel posting to the
 * scheduler's inbox, a detach, a set's add), or inside one on a set watching one
 * (plait_completed_next): held for ever in the child, where the task's end and the
 * child's own calls on it would spin.  So the forking thread takes those locks in
 * fork.c's prepare, and in the child it forgets, in each, the waits of the parent's
 * other threads: their copies, which a wake-up would reach through descriptors the two
 * processes share (a thread's eventfd), and which nothing there will ever withdraw.
 *
 * Which futures: every one whose sched_id names the scheduler — running, finished, or
 * free (a stale handle's check may hold one, and the child may start it again).  Only
 * the scheduler's own thread starts one, so none appears while it forks; but one freed
 * meanwhile may be started again by another thread for another kind of task, whose
 * holder may be waiting for a lock prepare holds: a future is let go of, not waited
 * for, as soon as its sched_id names another.  They are found by a walk of every future
 * ever made (the chunks), under global_lock, which prepare holds (no chunk is added
 * meanwhile); fork_held marks the ones taken, for the walks of the parent and child.
 * A fork from a coroutine costs a look at each future the process has made (tens of
 * nanoseconds each: more than the fork itself once a hundred thousand were in use at
 * once; plait.h says so).  A list of each scheduler's futures, kept instead, would
 * cost every spawn and every free.
 *
 * Lock order (fork.c): these come after all of prepare's global locks and before the
 * scheduler's inbox lock.  Whoever holds a future's lock takes, meanwhile, a set's lock
 * (completed_push, plait_completed_add) and, cancelling a coroutine, its scheduler's
 * inbox lock (cancel_locked), and nothing else that could wait (a set's holder takes no
 * lock, and what they free goes back after the unlock); so the forking thread takes
 * every future's lock first, then the sets', whose holders may hold a future of the
 * scheduler not yet taken, then the inbox's. */

/* Take a lock for the fork; a future's (sched_id: its own) only while the future is the
 * scheduler id's.  Whether it was taken. */
static bool fork_lock(plait__spinlock *lock, const atomic_ullong *sched_id, uint64_t id)
{
    for (unsigned spins = 0;; spins++) {
        if (sched_id && atomic_load_explicit(sched_id, memory_order_relaxed) != id)
            return false;
        if (plait__spin_trylock(lock))
            return true;
        plait__spin_pause(spins);
    }
}

void plait__future_sched_atfork(const plait__sched *s, int phase)
{
    if (phase == PLAIT__FORK_PREPARE) {
        for (future_chunk *c = chunks; c; c = c->next)
            for (plait__future *f = c->items; f < c->items + CHUNK; f++)
                if (fork_lock(&f->lock, &f->sched_id, s->id))
                    f->fork_held = true;
        for (future_chunk *c = chunks; c; c = c->next)
            for (plait__future *f = c->items; f < c->items + CHUNK; f++)
                if (f->fork_held && f->watch && !f->watch->fork_held &&
                    fork_lock(&f->watch->lock, NULL, 0))
                    f->watch->fork_held = true;
        return;
    }
    for (future_chunk *c = chunks; c; c = c->next) {
        for (plait__future *f = c->items; f < c->items + CHUNK; f++) {
            if (!f->fork_held)
                continue;
            plait_completed *set = f->watch; /* held as long as f is */
            if (set && set->fork_held) {
                if (phase == PLAIT__FORK_CHILD)
                    plait__waitq_forget_other_threads(&set->waiters, s);
                set->fork_held = false;
                plait__spin_unlock(&set->lock);
            }
            if (phase == PLAIT__FORK_CHILD)
                plait__waitq_forget_other_threads(&f->joiners, s);
            f->fork_held = false;
            plait__spin_unlock(&f->lock);
        }
    }
}

void plait__future_atfork(int phase)
{
    /* a child forked inside a thread's work runs none: nobody there can cancel it */
    if (phase == PLAIT__FORK_CHILD) {
        /* the child's thread goes on as the owner of what the work had locked */
        if (plait__tls_work && plait__tls_work->identity)
            plait__self_become(plait__tls_work->identity);
        if (plait__tls_work)
            plait__shield_keep_as_plain(plait__tls_work->shielded);
        plait__tls_work = NULL;
        /* nor does the scheduler it runs name that work: as its main ends, plait_run
         * took the parent's future's lock, which a joiner or canceller of the parent
         * may have held at the fork (the child then spun there for ever) */
        plait__sched *s = plait__sched_current();
        if (s)
            s->work = NULL;
        /* its coroutines go on here: their tasks are the child's (made_elsewhere) */
        plait__forked_sched_id = s ? s->id : 0;
        plait__forked_id_floor = plait__new_id();
    }
    plait__atfork_mutex(&global_lock, phase);
}
