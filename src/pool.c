/*
 * pool.c — the thread pool: per-worker deques with work stealing, a shared queue for
 * work that comes from outside, sleeping and waking, helping joins, shutdown.
 *
 * Where a task goes.  A task submitted by one of the pool's own workers (a task that
 * spawns tasks) is pushed on that worker's deque; a task from anywhere else goes on
 * the pool's injection queue (inject.h).  A worker looks for work in its own deque
 * (newest first), then takes a batch from the injection queue into its deque, then
 * steals the oldest task of another worker, starting from a random one.
 *
 * Helping.  A worker waiting on a future (plait_join, wait-any, wait-all inside a
 * task) does not block: it runs queued tasks until the future is done (waiter.c calls
 * plait__worker_help).  That is what lets fork-join recursion of any depth run on a
 * fixed number of threads, and keeps every core busy while a parent waits.  (A map
 * stopped early waits for its runners without helping: pool_map.c.)  Each task run so
 * is one more on the worker's stack: a wait with three quarters of its stack used
 * (help_too_deep) runs only its own deque's tasks (its children, in fork-join) and
 * otherwise sleeps until its own signal, as many queued tasks that each wait on
 * something outside the pool would otherwise nest until the stack overflowed.
 *
 * Sleeping.  A worker with nothing to do keeps looking for a while (SPIN_NS, yielding
 * the CPU between looks, so that where threads outnumber cores the others run): waking
 * a sleeping thread costs tens of microseconds on a virtual machine, longer than most
 * gaps between the tasks of a fork-join.  A helping join always looks that long; of
 * the idle workers, at most half do (the others give up after SPIN_SHORT_NS).  Then a
 * worker sleeps on its own futex word (park_word) with `sleeping` set and the pool's
 * `idle` count raised.  Whoever makes work public (a public push, an injection) then
 * reads `idle` and, when it is not zero, wakes one sleeper.  Both sides use
 * sequentially consistent accesses, so of "the pusher sees idle > 0" and "the sleeper,
 * looking once more, sees the work" at least one happens: no wake-up is lost.
 *
 * Private pushes.  Where the deques have a private part (deque.h, the SPLIT kind: on
 * x86-64 with asymmetric fences), a push that stays private wakes no one and costs no
 * locked instruction.  The pusher then reads `idle` with only the compiler held back,
 * and when workers sleep makes its private items public and wakes one; the sleeper,
 * between raising `idle` and its last look, runs the heavy fence (fence.c).  Either
 * the pusher sees the sleeper, or the sleeper sees the private item.  Only workers
 * that run task code push, and `active` counts them (a worker leaves the count while
 * it looks for work or sleeps, once per idle spell, not per task): a sleeper that
 * finds it zero skips the fence.  Each side raises its own count with a locked
 * instruction before it reads the other's, so a worker that becomes active after the
 * sleeper read zero sees the sleeper when it pushes; and one that went idle has made
 * its pushes visible and left an empty deque, or published what its deque holds (a
 * helping wait past its stack floor, which takes only what its own task pushed: the
 * rest stayed private, and a sleeper that read zero slept beside it).  A sleeper that sees private items of a
 * worker still running sleeps only EXPOSE_AFTER_NS (that worker's next push will wake
 * it) and then exposes the oldest one itself (plait__deque_expose): an owner that
 * pushed and then computes, or blocks outside the pool, for long does not keep its
 * tasks from the other workers.  A worker about to block in a wait that does not help
 * (an event, a mutex) publishes its private tasks itself and leaves `active` until it
 * is back (plait__worker_blocking, from waiter.c).  The heavy fence is
 * an interrupt to each CPU running a thread of the process, some tens of microseconds
 * on this virtual machine while another thread runs: paid only by a worker that goes
 * to sleep while another runs tasks, next to the futex wake-up that ends its sleep,
 * and never by a pool fed one task at a time, whose workers sleep when none runs.  If
 * the kernel refuses it after the pool was made (a seccomp filter installed since),
 * `idle` gets a bias for good, so that every push publishes from then on, and such
 * sleepers look again every millisecond; private tasks pushed before that wait for
 * their owner's next push, or for it to block in plait, or to take them itself.
 *
 * A signal to a helping worker's wait pokes the same word.  A wake-up for a push may
 * pick a helping worker whose wait has just been signalled (or claimed, its signal on
 * the way, or whose deadline has passed): that worker goes back to its task without
 * looking for work, so it wakes another sleeper in its place (park tells it that a
 * waker, not its signal, took it off the sleepers).
 *
 * Shutting down.  `closed` stops submissions from outside; tasks already queued, and
 * the tasks they spawn, still run (or, with PLAIT_POOL_CANCEL, complete as cancelled
 * without running: the shutdown takes them off the queues itself, cancel_queued, and
 * a worker that comes across one later, pushed meanwhile, completes it so; running ones
 * are cancelled through the chain of tasks each worker runs: see "The running chain"
 * below).  The pool is finished when every
 * worker is asleep in its main loop at once with no work visible: a worker counted
 * there holds no task, so nothing can push any more.  The last worker to see that
 * sets `done`, wakes the others, and they all exit; the last to exit sets the
 * `stopped` event that shutdown waits on.  A shutdown whose deadline passes first
 * reports -ETIMEDOUT only when a task still runs or is queued: otherwise the workers
 * are on their way out, and it waits for them (wait_stopped).  A shutdown looks at the
 * pool until it returns, so a destroy that finds one inside once the pool has stopped
 * is refused (`shutting`), before it joins or frees anything.  Destroy's own
 * waits are not cut short by the caller's cancellation: it is clean-up, which must
 * finish in a cancelled task too (a shutdown's wait is: the pool stays shut).
 *
 * Forked children.  A fork copies only the thread that forks: a pool's workers are not
 * in the child, and whatever the child queued on its copy of the pool would never run
 * (and a shutdown there would wait for workers that will never count themselves).  So
 * a pool belongs to the process that made it, as a process pool does: every call from
 * another process is -EPERM (the fork epoch, raised in each child, tells the copy from the
 * original).  The default pool is no exception for its old address; but the child's
 * plait_pool_default() makes a new one, the child's own.
 *
 * Invariants:
 *  - A task is in exactly one place: a deque, the injection queue, a worker's running
 *    chain, or completed.  Each of these hands it on exactly once (deque CAS, queue
 *    lock), so a task runs at most once, and every path ends in plait__future_complete.
 *  - A worker leaves its running chain before completing its task, and waits out a
 *    cancelling walk that may have seen the task there, so shutdown's cancellation
 *    only ever touches tasks that are still running.
 *
 * The running chain.  Each worker keeps the tasks it runs, innermost first (a helping
 * join runs tasks inside a task), for shutdown's cancellation to find.  Entering and
 * leaving happen for every task, cancelling almost never, so the two shake hands
 * through asymmetric fences (fence.c): the worker publishes the chain's new head and
 * then reads `cancelling` with only the compiler held back; shutdown sets
 * `cancelling`, makes every thread execute a full fence, and then walks the chains,
 * each under its worker's running_lock.  Either the worker sees the flag, or the walk
 * sees the chain as the worker left it.  So a worker entering a task that sees the
 * flag cancels the task itself, and a worker leaving one that sees the flag takes and
 * drops running_lock, waiting out a walk that may still look at the task, before it
 * completes the task and its future is reused.  (A locked chain cost two atomic
 * exchanges per task, a sixth of the time of a task that only forks and joins.)
 * Without membarrier (or off x86-64, see fence.c) both sides use sequentially
 * consistent accesses instead; where the heavy fence fails after all, shutdown does
 * not walk (see plait_pool_shutdown).
 */
#include "deque.h"
#include "inject.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    SPIN_PAUSES = 64,       /* looks for work a CPU pause apart, then ... */
    SPIN_NS = 100 * 1000,   /* ... a CPU yield apart, for this long, before sleeping */
    SPIN_SHORT_NS = 1000,   /* the same, for an idle worker beyond the spinning half */
    IDLE_BIAS = 1 << 20,    /* added to idle for good when the heavy fence fails */
    EXPOSE_AFTER_NS = 50 * 1000, /* a sleeper that saw private work exposes it after */
    STOP_LOOK_NS = 1000 * 1000, /* a shutdown past its deadline looks for tasks again */
    UNFENCED_LOOK_NS = 1000 * 1000, /* a sleeper without the heavy fence looks again */
    BATCH_MAX = 64,         /* tasks taken from the injection queue at once */
    SLEEPING_FOR_SIGNAL = 2, /* `sleeping` of a helping wait too deep to help (park_for_signal) */
    HELP_STACK_RESERVE_MIN = 256 * 1024, /* stack a helping wait keeps for its own tasks */
    STEALS_MIN = 4096,      /* a cancelling shutdown's steals from one deque, at least
                             * (cancel_queued) */
    EXPOSE_TRIES = 64,      /* failed exposes in a row that end them (cancel_queued) */
};

typedef struct plait__worker {
    plait__deque deque;
    plait_pool *pool;
    unsigned index;
    pthread_t thread;
    plait__spinlock running_lock;       /* held by a cancelling walk of the chain */
    _Atomic(plait__future *) running;   /* innermost running task; ->next: the one it helps */
    int64_t own_from;                   /* the deque's mark as the running task began
                                         * (lowered by a push of its that finds the
                                         * deque below it: plait_pool_submit): what it
                                         * pushed lies at or above it (beside
                                         * `running`, which the owner writes as often:
                                         * not on park_word's line, which wakers write) */
    _Alignas(64) atomic_uint park_word;
    atomic_int sleeping;
    uintptr_t help_floor;               /* below this stack address, no help from others */
    char name[16];
} plait__worker;

struct plait_pool {
    unsigned threads;
    plait__worker *workers;
    unsigned started;           /* workers whose thread was created */
    bool is_default;
    bool asymmetric;            /* the running chains use asymmetric fences */
    bool private_parts;         /* the deques are SPLIT (see "Private pushes") */
    _Alignas(64) plait__inject inject; /* the tasks from outside (inject.h) */
    /* sleeping */
    _Alignas(64) atomic_int idle;
    atomic_uint active;         /* workers outside spin_for_news and park: they may push */
    atomic_bool fence_lost;     /* the heavy fence failed once: private pushes publish */
    atomic_uint wake_cursor;
    atomic_uint spinning;       /* idle workers looking for work for long */
    /* shutting down */
    _Alignas(64) atomic_bool closed;
    atomic_bool cancelling;
    plait__spinlock park_lock;
    unsigned parked_closed;     /* under park_lock */
    atomic_bool done;
    atomic_uint exited;
    plait_event *stopped;
    atomic_uint shutting;       /* callers inside plait_pool_shutdown: destroy is -EBUSY */
    unsigned epoch;             /* the fork epoch where it was made ("Forked children") */
};

static PLAIT_TLS plait__worker *tls_worker;
/* The worker whose running chain this thread's tasks are on: tls_worker, and in a child
 * forked inside a task still the parent's worker (the child's copy of it), though the
 * child is no worker: the child goes on as the task on top of that chain, whose tasks
 * beneath it can never resume there (plait__held_beneath reads it). */
static PLAIT_TLS plait__worker *tls_chain;

/* 0 when the pool was made in this process, -EPERM in a forked child's copy (made at
 * another fork epoch, an ancestor's, whose workers are not in this process). */
static int pool_here(const plait_pool *pool)
{
    return pool->epoch == plait__fork_epoch() ? 0 : -EPERM;
}

struct plait__worker *plait__worker_helping(void) { return tls_worker; }

/* ---- waking ---- */

static void wake(plait__worker *wk)
{
    atomic_fetch_add(&wk->park_word, 1);
    plait__futex_wake(&wk->park_word, 1);
}

/* The caller has just published a signal to a helping wait of wk (seq_cst): either wk
 * sees it before it sleeps, or we see it asleep (seq_cst, see park) and the caller
 * wakes the word returned, after its unlock. */
atomic_uint *plait__worker_poke(plait__worker *wk)
{
    atomic_fetch_add(&wk->park_word, 1);
    return atomic_load(&wk->sleeping) ? &wk->park_word : NULL;
}

/* Work was just made visible (seq_cst): wake a sleeping worker, if there is one. */
static void wake_one(plait_pool *pool)
{
    if (atomic_load(&pool->idle) == 0)
        return;
    unsigned start = atomic_fetch_add_explicit(&pool->wake_cursor, 1, memory_order_relaxed);
    for (unsigned i = 0; i < pool->threads; i++) {
        plait__worker *wk = &pool->workers[(start + i) % pool->threads];
        int one = 1;
        if (atomic_load_explicit(&wk->sleeping, memory_order_relaxed) &&
            atomic_compare_exchange_strong(&wk->sleeping, &one, 0)) {
            atomic_fetch_sub(&pool->idle, 1);
            wake(wk);
            return;
        }
    }
}

static void poke_all(plait_pool *pool)
{
    for (unsigned i = 0; i < pool->started; i++)
        wake(&pool->workers[i]);
}

static bool work_visible(plait_pool *pool)
{
    if (atomic_load(&pool->inject.len))
        return true;
    for (unsigned i = 0; i < pool->threads; i++)
        if (plait__deque_public(&pool->workers[i].deque))
            return true;
    return false;
}

/* Whether some other worker's deque holds private items (see "Private pushes"). */
static bool private_work(plait_pool *pool, plait__worker *self)
{
    for (unsigned i = 0; i < pool->threads; i++)
        if (&pool->workers[i] != self && plait__deque_private(&pool->workers[i].deque))
            return true;
    return false;
}

/* Make the oldest private item of some other worker public, for this one to steal.
 * Each looks first at the worker after itself, so that sleepers of a large pool do not
 * all pay their fences on the same deque. */
static void expose_private_work(plait_pool *pool, plait__worker *self)
{
    unsigned n = pool->threads, me = (unsigned)(self - pool->workers);
    for (unsigned i = 1; i < n; i++)
        if (plait__deque_expose(&pool->workers[(me + i) % n].deque, false))
            return;
}

/* The heavy fence failed (a seccomp filter installed since the pool was made): no
 * handshake protects private pushes any more, so from now on every pusher sees
 * sleepers and publishes what it pushes. */
static void fence_lost(plait_pool *pool)
{
    if (!atomic_exchange(&pool->fence_lost, true))
        atomic_fetch_add(&pool->idle, IDLE_BIAS);
}

/* Sleep until poked (or the deadline); w, when given, is a helping wait whose signal
 * ends the sleep too; until_closed: the pool closing ends it (the sleeper must then
 * count itself in, see idle_wait).  The caller looks for work again afterwards.  True
 * when a waker took the worker off the sleepers (wake_one): that wake-up was meant
 * for a push. */
static bool park(plait__worker *wk, plait__waiter *w, int64_t deadline, bool until_closed)
{
    plait_pool *pool = wk->pool;
    unsigned seen = atomic_load(&wk->park_word);
    /* `sleeping` before `idle`: a pusher whose load of idle reads this increment has
     * the store happen before its relaxed look at `sleeping` (wake_one); in the other
     * order C11 would let that look miss this worker, the only sleeper, and the push
     * would wake nobody (ARM would not show it, so no test would catch the swap) */
    atomic_store(&wk->sleeping, 1);
    atomic_fetch_add(&pool->idle, 1);
    int64_t until = deadline;
    bool hidden = false; /* private items seen: expose one unless woken first */
    /* private pushes come only from workers that run task code ("Private pushes") */
    if (pool->private_parts && atomic_load(&pool->active)) {
        int64_t look_again = UNFENCED_LOOK_NS;
        if (plait__heavy_fence() == 0) /* see every private push so far */
            look_again = (hidden = private_work(pool, wk)) ? EXPOSE_AFTER_NS : 0;
        else
            fence_lost(pool);
        if (look_again && deadline - plait_now() > look_again)
            until = plait_now() + look_again;
    }
    if (!work_visible(pool) && !(w && atomic_load(&w->signalled)) &&
        !(until_closed && atomic_load(&pool->closed)) && !atomic_load(&pool->done))
        plait__futex_wait(&wk->park_word, seen, until);
    int one = 1;
    if (!atomic_compare_exchange_strong(&wk->sleeping, &one, 0))
        return true;
    atomic_fetch_sub(&pool->idle, 1);
    if (hidden && !(w && atomic_load(&w->signalled)) && !work_visible(pool))
        expose_private_work(pool, wk);
    return false;
}

/* A helping wait too deep in its stack to run other tasks (help_too_deep), its own
 * deque empty: sleep until its own signal or the deadline, as a wait that does not
 * help.  `sleeping` says SLEEPING_FOR_SIGNAL, which a poke sees and wake_one passes
 * over: no push's wake-up is spent on a worker that would not look for the work. */
static void park_for_signal(plait__worker *wk, plait__waiter *w, int64_t deadline)
{
    unsigned seen = atomic_load(&wk->park_word);
    atomic_store(&wk->sleeping, SLEEPING_FOR_SIGNAL);
    if (!atomic_load(&w->signalled))
        plait__futex_wait(&wk->park_word, seen, deadline);
    atomic_store(&wk->sleeping, 0);
}

/* ---- finding and running work ---- */

/* Withdraw a queued task taken off its queue once a cancelling shutdown has begun (by
 * the shutdown's sweep, or by a worker carrying a batch from the injection queue): it
 * completes as cancelled (as plait_cancel makes it), and the queue's reference, the
 * producer's, is let go, as a worker does when it comes across a withdrawn task
 * (run_task). */
static void withdraw_taken(plait__future *f)
{
    plait__future_cancel(f);
    plait__future_release(f);
}

static plait__future *inject_grab(plait__worker *wk)
{
    plait_pool *pool = wk->pool;
    if (!atomic_load_explicit(&pool->inject.len, memory_order_relaxed))
        return NULL;
    plait__future *batch[BATCH_MAX];
    plait__inject_block *dropped = NULL;
    plait__spin_lock(&pool->inject.lock);
    size_t len = atomic_load_explicit(&pool->inject.len, memory_order_relaxed);
    size_t take = len / pool->threads + 1;
    if (take > BATCH_MAX)
        take = BATCH_MAX;
    take = plait__inject_take(&pool->inject, batch, take, &dropped);
    plait__spin_unlock(&pool->inject.lock);
    plait__inject_blocks_free(dropped);
    if (!take)
        return NULL;
    /* Their futures were written by the submitter, on another CPU as a rule: fetch
     * them all at once rather than one miss per task as each runs. */
    for (size_t i = 0; i < take; i++)
        __builtin_prefetch(batch[i], 1);
    if (take == 1)
        return batch[0];
    /* Keep the first, queue the rest here where idle workers can steal them, newest
     * first, so that this worker takes them in the order they came.  The pushes cannot
     * fail: find_work comes here only with the deque empty, and a batch is smaller
     * than a deque's first array. */
    _Static_assert((int)BATCH_MAX < (int)PLAIT__DEQUE_INITIAL_CAPACITY, "a batch fits a deque");
    for (size_t i = take; i-- > 1;)
        (void)plait__deque_push(&wk->deque, batch[i]);
    plait__deque_publish(&wk->deque); /* work from outside is everyone's */
    /* A cancelling shutdown's sweep (cancel_queued) may have passed while the batch was
     * in neither the injection queue nor this deque, and every worker be held (this one
     * too, once the helping wait that took the batch returns to a task that runs on):
     * the batch is then this worker's to withdraw.  The pushes' and the publish's
     * stores are sequentially consistent, as are shutdown's store of `cancelling` and
     * the sweep's loads after it (Dekker): either the sweep finds the batch here, or
     * this sees the flag (session 50's audit). */
    plait__store_load_fence();
    if (atomic_load_explicit(&pool->cancelling, memory_order_seq_cst)) {
        for (plait__future *f; (f = plait__deque_take(&wk->deque));)
            withdraw_taken(f);
        withdraw_taken(batch[0]);
        return NULL;
    }
    wake_one(pool);
    return batch[0];
}

/* Whether the caller's stack is too far used up to run a task from the injection
 * queue or another worker's deque on top of it.  A helping wait runs any queued task on
 * top of the waiting one, and that task's own wait another: where many queued tasks
 * each wait (on a thread, an outside event: nothing the tasks run on top of them will
 * do), the stack grew by a task's frames for each, until it overflowed.  Past the floor
 * a wait takes only the tasks its own task pushed (in fork-join, its children, whose
 * depth is the program's: the deque above own_from; below it lies what outer tasks
 * left there, the rest of a batch from the injection queue among them, up to 63 tasks
 * as unrelated as the queue's), and otherwise sleeps until its own signal
 * (park_for_signal). */
static bool help_too_deep(const plait__worker *wk)
{
    return (uintptr_t)__builtin_frame_address(0) < wk->help_floor;
}

/* deep: the caller's help_too_deep, asked in its own frame (find_work's is lower:
 * asked here, a wait just above the floor would look as one past it, yet park as one
 * that helps, and keep a push's wake-up it would not use). */
static plait__future *find_work(plait__worker *wk, bool deep)
{
    if (deep)
        return plait__deque_mark(&wk->deque) > wk->own_from ? plait__deque_take(&wk->deque)
                                                            : NULL;
    plait__future *f = plait__deque_take(&wk->deque);
    if (f)
        return f;
    if ((f = inject_grab(wk)))
        return f;
    plait_pool *pool = wk->pool;
    unsigned n = pool->threads;
    if (n == 1)
        return NULL;
    unsigned start = plait__random(n);
    for (unsigned i = 0; i < n; i++) {
        plait__worker *victim = &pool->workers[(start + i) % n];
        if (victim != wk && (f = plait__deque_steal(&victim->deque)))
            return f;
    }
    return NULL;
}

/* Make head the running chain's head; true when the pool is cancelling (the
 * handshake of "The running chain", above). */
static bool running_publish(plait__worker *wk, plait__future *head)
{
    plait_pool *pool = wk->pool;
    if (PLAIT_LIKELY(pool->asymmetric)) {
        atomic_store_explicit(&wk->running, head, memory_order_release);
        plait__light_fence();
        return atomic_load_explicit(&pool->cancelling, memory_order_relaxed);
    }
    atomic_store_explicit(&wk->running, head, memory_order_seq_cst);
    plait__store_load_fence();
    return atomic_load_explicit(&pool->cancelling, memory_order_seq_cst);
}

static void run_task(plait__worker *wk, plait__future *f)
{
    f->next = atomic_load_explicit(&wk->running, memory_order_relaxed);
    if (running_publish(wk, f))
        atomic_store_explicit(&f->cancelled, 1, memory_order_relaxed);
    int64_t outer_own_from = wk->own_from;
    wk->own_from = plait__deque_mark(&wk->deque);
    void *value;
    int error = plait__future_run_work(f, &value);
    wk->own_from = outer_own_from;
    if (PLAIT_UNLIKELY(pool_here(wk->pool) < 0))
        _exit(0); /* a child the task forked, returning from it too: no worker of the
                   * pool (it would complete the parent's future, then run the parent's
                   * queued tasks a second time and park for ever) */
    if (running_publish(wk, f->next)) {
        /* a cancelling walk may be looking at f: wait until it is done */
        plait__spin_lock(&wk->running_lock);
        plait__spin_unlock(&wk->running_lock);
    }
    f->next = NULL;
    if (error == PLAIT__WITHDRAWN)
        plait__future_release(f);
    else
        plait__future_complete(f, value, error);
}

/* wk stops counting as a worker that may push.  One that will not take its private
 * tasks itself meanwhile (it blocks, or helps past its stack floor) publishes them
 * first and wakes a sleeper for them: an idle worker that then reads no active worker
 * looks only at published work ("Private pushes"). */
static void leave_active(plait__worker *wk, bool publish_private)
{
    if (publish_private && plait__deque_publish(&wk->deque))
        wake_one(wk->pool);
    atomic_fetch_sub(&wk->pool->active, 1);
}

struct plait__worker *plait__worker_blocking(void)
{
    plait__worker *wk = tls_worker;
    if (!wk || plait__coro_current())
        return NULL;
    leave_active(wk, true);
    return wk;
}

void plait__worker_unblocked(struct plait__worker *wk) { atomic_fetch_add(&wk->pool->active, 1); }

void plait__worker_run_until_done(plait__future *f, int64_t deadline, bool cancellable)
{
    plait__worker *wk = tls_worker;
    plait__future *g;
    /* a cancellation has no wait to claim here: looked at before each task, as the
     * deadline is (the caller's wait then answers it).  The caller is the worker's task
     * itself (no coroutine gets here): its cancellation is its work's flag. */
    plait__future *caller = plait__tls_work;
    const atomic_int *cancelled =
        cancellable && caller && !caller->shielded ? &caller->cancelled : NULL;
    while (!atomic_load_explicit(&f->done, memory_order_acquire) &&
           !plait__deadline_passed(deadline) &&
           !(cancelled && atomic_load_explicit(cancelled, memory_order_relaxed)) &&
           (g = find_work(wk, help_too_deep(wk))))
        run_task(wk, g);
}

/* Look again and again, without sleeping, for work in the pool or w's signal (when w
 * is given) until SPIN_NS or the deadline has passed: true when something came. */
static bool spin_for_news(plait_pool *pool, plait__waiter *w, int64_t deadline)
{
    plait__spin spin = {.pauses = SPIN_PAUSES, .ns = SPIN_NS, .deadline = deadline};
    do {
        if ((w && atomic_load_explicit(&w->signalled, memory_order_acquire)) ||
            work_visible(pool))
            return true;
    } while (plait__spin_again(&spin));
    return false;
}

/* w was claimed by a waker or a canceller, whose signal comes as soon as it has let go
 * of the lock it claimed under: wait for that, starting no task meanwhile. */
static int await_claimed_signal(plait__waiter *w)
{
    while (!atomic_load_explicit(&w->signalled, memory_order_acquire))
        sched_yield();
    return w->status;
}

int plait__worker_help(plait__waiter *w, int64_t deadline)
{
    plait__worker *wk = w->helper;
    /* A wake-up for a push (park), not yet spent on a look for work: a wait found over
     * afterwards (signalled, claimed by a waker whose signal is on its way, or past
     * its deadline, whenever that is seen) returns without looking, so it passes the
     * wake-up on to another sleeper first. */
    bool owed = false;
    for (;;) {
        if (atomic_load_explicit(&w->signalled, memory_order_acquire)) {
            if (owed)
                wake_one(wk->pool);
            return w->status;
        }
        /* The deadline is looked at before each task, not only when there is none:
         * a task once started runs to its end here, but no new one starts late. */
        if (plait__deadline_passed(deadline)) {
            if (owed)
                wake_one(wk->pool);
            return plait__waiter_claim(w) ? (w->status = -ETIMEDOUT) : await_claimed_signal(w);
        }
        /* Decided (its outcome is on its way): no task starts now, which might run for
         * any time before the outcome is seen (a poll, a cancelled join). */
        if (atomic_load_explicit(&w->claimed, memory_order_acquire)) {
            if (owed)
                wake_one(wk->pool);
            return await_claimed_signal(w);
        }
        bool deep = help_too_deep(wk);
        plait__future *f = find_work(wk, deep);
        owed = false; /* looked: the push's task is run here, or was taken elsewhere */
        if (f) {
            run_task(wk, f);
            continue;
        }
        leave_active(wk, deep); /* deep: it takes only its own task's pushes */
        if (deep)
            park_for_signal(wk, w, deadline); /* no push's wake-up comes here */
        else
            owed = !spin_for_news(wk->pool, w, deadline) && park(wk, w, deadline, false);
        atomic_fetch_add(&wk->pool->active, 1);
    }
}

/* The main loop found nothing: look a while, then sleep.  false when the pool is
 * finished. */
static bool idle_wait(plait__worker *wk)
{
    plait_pool *pool = wk->pool;
    /* Half the workers at most look for long (as Go's scheduler bounds its spinning
     * threads): where a thread outside the pool feeds it, spinners compete with that
     * thread for the CPUs and for the queue's cache lines. */
    bool long_look = atomic_fetch_add(&pool->spinning, 1) < (pool->threads + 1) / 2;
    int64_t until = long_look ? PLAIT_FOREVER : plait_now() + SPIN_SHORT_NS;
    bool news = spin_for_news(pool, NULL, until);
    atomic_fetch_sub(&pool->spinning, 1);
    if (news)
        return true;
    if (!atomic_load(&pool->closed)) {
        park(wk, NULL, PLAIT_FOREVER, true);
        return true;
    }
    plait__spin_lock(&pool->park_lock);
    if (atomic_load(&pool->done)) {
        plait__spin_unlock(&pool->park_lock);
        return false;
    }
    if (++pool->parked_closed == pool->threads && !work_visible(pool)) {
        /* every worker is here, holding no task, with nothing queued: finished */
        atomic_store(&pool->done, true);
        plait__spin_unlock(&pool->park_lock);
        poke_all(pool);
        return false;
    }
    plait__spin_unlock(&pool->park_lock);
    park(wk, NULL, PLAIT_FOREVER, false);
    plait__spin_lock(&pool->park_lock);
    pool->parked_closed--;
    plait__spin_unlock(&pool->park_lock);
    return !atomic_load(&pool->done);
}

static void *worker_main(void *arg)
{
    plait__worker *wk = arg;
    plait_pool *pool = wk->pool;
    tls_worker = tls_chain = wk;
    plait__tls_thread_name = wk->name;
    pthread_attr_t attr;
    void *stack;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        if (pthread_attr_getstack(&attr, &stack, &size) == 0) {
            /* a quarter of the stack, at least HELP_STACK_RESERVE_MIN of a large one */
            size_t reserve = size / 4;
            if (reserve < HELP_STACK_RESERVE_MIN)
                reserve = size / 2 < HELP_STACK_RESERVE_MIN ? size / 2 : HELP_STACK_RESERVE_MIN;
            wk->help_floor = (uintptr_t)stack + reserve;
        }
        pthread_attr_destroy(&attr);
    }
    pthread_setname_np(pthread_self(), wk->name);
    atomic_fetch_add(&pool->active, 1);
    for (;;) {
        plait__future *f = find_work(wk, false); /* the stack's top: never too deep */
        if (f) {
            run_task(wk, f);
            continue;
        }
        leave_active(wk, false); /* its deque is empty: nothing private is left */
        if (!idle_wait(wk))
            break;
        atomic_fetch_add(&pool->active, 1);
    }
    tls_worker = tls_chain = NULL;
    /* (the task-local values pool tasks set, their worker's, are destroyed as the thread
     * exits, after this: plait_pool_destroy, which joins the threads, waits for their
     * destructors, a shutdown does not; run here, a slow destructor held a shutdown
     * past its deadline, and one that shut its own pool down hung it) */
    if (atomic_fetch_add(&pool->exited, 1) + 1 == pool->threads)
        plait_event_set(pool->stopped); /* the last touch of the pool */
    return NULL;
}

/* ---- the public calls ---- */

static void pool_free(plait_pool *pool)
{
    /* (workers is NULL when its allocation failed at create) */
    for (unsigned i = 0; pool->workers && i < pool->threads; i++)
        plait__deque_free(&pool->workers[i].deque);
    plait__inject_free(&pool->inject);
    if (pool->stopped)
        plait_event_destroy(pool->stopped);
    free(pool->workers);
    free(pool);
}

typedef struct joining {
    plait_pool *pool;
    unsigned workers;
} joining;

/* A destroy's waits (for the pool to stop, for its workers to end) cannot be cut short,
 * and a child that another coroutine of the caller's scheduler forks meanwhile goes on
 * with them, where nothing they wait for is: it would wait for ever, and hold up its
 * plait_run's return for ever.  So they look every FORKED_LOOK_NS, and there give up
 * (-EPERM: the pool is the parent's; nothing is freed). */
#define FORKED_LOOK_NS (50 * PLAIT_MS)

static int64_t forked_look_at(int64_t deadline)
{
    int64_t look = plait_deadline_in(FORKED_LOOK_NS);
    return deadline < look ? deadline : look;
}

static void join_workers(void *arg)
{
    const joining *j = arg;
    for (unsigned i = 0; i < j->workers; i++)
        pthread_join(j->pool->workers[i].thread, NULL);
}

static void *join_workers_on_a_thread(void *arg)
{
    join_workers(arg);
    return NULL;
}

/* Join the first `workers` workers (told to end) and free the pool.  With pthread
 * cancellation off (internal.h): pthread_join is a cancellation point, and a caller
 * with a pthread_cancel pending unwound at the first worker, leaving the pool.  A
 * worker's task-local destructors run as it exits, for as long as they take, and may
 * wait for what a coroutine does: so a coroutine has a plait thread of its own join the
 * workers and waits for that thread, only it suspended (made on its scheduler's loop,
 * the joins held every coroutine of the scheduler, and a destructor that waited for
 * one of them waited for ever; a helper's audit).  Where no thread can be had, and on a
 * plain thread, the joins are made on the thread's own stack: past glibc's cache of
 * ended threads' stacks (40 MiB: six workers' 8 MiB), a join frees them through a call
 * into the dynamic linker bound at its first use, whose resolver's frames (some KiB)
 * overflowed a coroutine's smallest stack (SIGSEGV; a review). */
static int pool_join_and_free(plait_pool *pool, unsigned workers)
{
    if (pool_here(pool) < 0)
        return -EPERM; /* a forked child's copy, whose workers are not here (a destroy
                        * that waited for the pool to stop as its scheduler forked) */
    int cancel_state = plait__cancel_off();
    joining j = {pool, workers};
    plait_task joiner;
    bool forked = false;
    if (plait__coro_current() &&
        plait_thread_start(&joiner, join_workers_on_a_thread, &j, NULL) == 0) {
        /* clean-up: shielded, the join has none of the caller's failures but its
         * deadline's (a look for a fork) and its timer's -ENOMEM (then it waits without
         * one), and returns once the joiner has */
        int shield = plait_cancel_shield(1);
        for (;;) {
            int r = plait_join(joiner, NULL, forked_look_at(PLAIT_FOREVER));
            if (r == -ENOMEM)
                r = plait_join(joiner, NULL, PLAIT_FOREVER);
            if (r != -ETIMEDOUT)
                break;
            if (pool_here(pool) < 0) {
                forked = true; /* the parent's pool, whose workers are not here */
                break;
            }
        }
        plait_cancel_shield(shield);
    } else {
        plait__call_on_thread_stack(join_workers, &j);
    }
    if (!forked)
        pool_free(pool);
    plait__cancel_restore(cancel_state);
    return forked ? -EPERM : 0;
}

/* Stop the workers started so far (creation failed part-way). */
static void pool_abandon(plait_pool *pool)
{
    atomic_store(&pool->closed, true);
    atomic_store(&pool->done, true);
    poke_all(pool);
    (void)pool_join_and_free(pool, pool->started); /* (this process's: it was just made) */
}

_Static_assert(PLAIT_POOL_THREADS_MAX <= 10000, "a worker's number fits its name in 4 digits");

/* The pool and its workers keep their hot words on lines of their own (_Alignas(64)),
 * more than calloc's alignment (which placed them 16 bytes into a line: undefined, and
 * the lines shared).  size is a multiple of align, as sizeof of such a type is. */
static void *zeroed_aligned(size_t size, size_t align)
{
    void *p = aligned_alloc(align, size);
    if (p)
        memset(p, 0, size);
    return p;
}

int plait_pool_create(plait_pool **out, const plait_pool_options *options)
{
    if (!out)
        return -EINVAL;
    if (options && options->threads > PLAIT_POOL_THREADS_MAX)
        return -EINVAL;
    unsigned threads = options && options->threads ? options->threads
                                                   : (unsigned)plait_cpu_count();
    if (threads > PLAIT_POOL_THREADS_MAX) /* sized from the CPUs: as many as allowed */
        threads = PLAIT_POOL_THREADS_MAX;
    const char *name = options && options->name ? options->name : "pool";
    plait_pool *pool = zeroed_aligned(sizeof *pool, _Alignof(plait_pool));
    if (!pool)
        return -ENOMEM;
    pool->threads = threads;
    plait__fork_init(); /* so that a child's copy knows itself (pool_here) */
    pool->epoch = plait__fork_epoch();
    pool->asymmetric = plait__asymmetric_fences();
    pool->private_parts = threads > 1 && pool->asymmetric;
    plait__deque_kind kind = threads == 1         ? PLAIT__DEQUE_SOLO /* no thieves */
                             : pool->private_parts ? PLAIT__DEQUE_SPLIT
                                                   : PLAIT__DEQUE_SHARED;
    pool->workers = zeroed_aligned(threads * sizeof *pool->workers, _Alignof(plait__worker));
    int r = pool->workers ? plait_event_create(&pool->stopped) : -ENOMEM;
    for (unsigned i = 0; r == 0 && i < threads; i++) {
        plait__worker *wk = &pool->workers[i];
        wk->pool = pool;
        wk->index = i;
        /* "<name>-<i>", the name's first 10 bytes: 15 fit the OS thread's (not
         * snprintf, whose frames a coroutine's smallest stack does not hold) */
        plait__text t = {wk->name, sizeof wk->name, 0};
        plait__text_add(&t, name, strnlen(name, 10));
        plait__text_str(&t, "-");
        plait__text_uint(&t, i);
        plait__text_end(&t);
        r = plait__deque_init(&wk->deque, kind);
    }
    if (r < 0) {
        pool_free(pool);
        return r;
    }
    for (unsigned i = 0; i < threads; i++) {
        int e = plait__thread_create(&pool->workers[i].thread, NULL, worker_main,
                                     &pool->workers[i]);
        if (e != 0) {
            pool_abandon(pool);
            return e == EAGAIN ? -EAGAIN : -e;
        }
        pool->started++;
    }
    *out = pool;
    return 0;
}

/* Give up a task that will not be queued (the pool closed meanwhile). */
static void discard(plait__future *f, plait_task *task, int error)
{
    plait__future_complete(f, NULL, error);
    if (task)
        plait_detach(*task);
}

int plait_pool_submit(plait_pool *pool, plait_task *task, plait_fn fn, void *arg)
{
    if (!pool || !fn)
        return -EINVAL;
    plait__worker *wk = tls_worker;
    /* (a coroutine on a worker runs a scheduler, not the worker loop: no local push) */
    bool local = wk && wk->pool == pool && !plait__coro_current();
    if (!local) {
        /* (a worker of the pool is in the pool's process: tls_worker is reset in a child) */
        if (pool_here(pool) < 0)
            return -EPERM;
        if (atomic_load_explicit(&pool->closed, memory_order_relaxed))
            return -EPIPE;
    }
    plait__future *f = plait__future_start_work(fn, arg, task, true);
    if (!f)
        return -ENOMEM;
    int pushed = -1;
    if (local) {
        /* The running task's pushes lie at or above own_from (a deep wait takes only
         * those): where its helping waits have taken what lay below the mark it began
         * with (outer tasks' leftovers, the rest of a batch), the deque is lower now,
         * and this push lands below that mark. */
        int64_t mark = plait__deque_mark(&wk->deque);
        if (PLAIT_UNLIKELY(mark < wk->own_from))
            wk->own_from = mark;
        pushed = plait__deque_push(&wk->deque, f);
    }
    if (pushed >= 0) {
        /* a private push wakes no one, unless workers sleep ("Private pushes") */
        if (pushed == 0) {
            plait__light_fence();
            if (!atomic_load_explicit(&pool->idle, memory_order_relaxed) ||
                !plait__deque_publish(&wk->deque))
                return 0;
        }
        wake_one(pool);
        return 0;
    }
    /* from outside (or a worker whose deque could not grow) */
    plait__inject_block *fresh = NULL;
    int error = 0;
    plait__spin_lock(&pool->inject.lock);
    for (;;) {
        /* closed first: a shut pool is -EPIPE, and allocates no block for nothing */
        if (!local && atomic_load(&pool->closed)) {
            error = -EPIPE;
            break;
        }
        if (fresh || plait__inject_room(&pool->inject))
            break;
        plait__spin_unlock(&pool->inject.lock);
        if (!(fresh = plait__inject_block_new())) {
            discard(f, task, -ENOMEM);
            return -ENOMEM;
        }
        plait__spin_lock(&pool->inject.lock);
    }
    if (!error)
        plait__inject_push(&pool->inject, f, &fresh);
    plait__spin_unlock(&pool->inject.lock);
    free(fresh); /* not needed after all (a worker emptied a block meanwhile) */
    if (error) {
        discard(f, task, error);
        return error;
    }
    wake_one(pool);
    return 0;
}

static int check_owner_call(plait_pool *pool)
{
    if (!pool)
        return -EINVAL;
    if (pool->is_default || pool_here(pool) < 0)
        return -EPERM;
    /* the caller is a task of the pool (on a worker, or on a thread in its stead),
     * which the shutdown would wait for */
    if ((tls_worker && tls_worker->pool == pool) ||
        (plait__tls_runs_a_task && plait__tls_stands_in_for == pool))
        return -EDEADLK;
    return 0;
}

/* The wait for the pool to stop, to the deadline; a destroy's (not cancellable) looks
 * for a fork as it waits. */
static int destroy_wait_look(plait_pool *pool, int64_t deadline, bool cancellable)
{
    if (cancellable)
        return plait__event_wait(pool->stopped, deadline, true);
    int r;
    while ((r = plait__event_wait(pool->stopped, forked_look_at(deadline), false)) ==
               -ETIMEDOUT &&
           !plait__deadline_passed(deadline))
        if (pool_here(pool) < 0)
            return -EPERM;
    return r;
}

/* Whether a worker runs a task now, or a queued one is visible. */
static bool task_seen(plait_pool *pool)
{
    if (work_visible(pool))
        return true;
    for (unsigned i = 0; i < pool->threads; i++)
        if (atomic_load(&pool->workers[i].running))
            return true;
    return false;
}

/* Wait until every worker of a closed pool has exited: 0, or -ETIMEDOUT when a task
 * still runs or is queued at the deadline.  Without one the pool is only finishing:
 * its workers, holding no task, count themselves in and exit without running any of
 * the program's code, so they are waited for past the deadline.  One look can miss a
 * task (a worker between taking it and putting it on its running chain, or between
 * two tasks of its private part), so the looks go on, a wait for the exits apart,
 * until the workers have exited or a task is seen; a task that runs is seen. */
static int wait_stopped(plait_pool *pool, int64_t deadline, bool cancellable)
{
    int r;
    while ((r = destroy_wait_look(pool, deadline, cancellable)) == -ETIMEDOUT &&
           !task_seen(pool))
        deadline = plait_deadline_in(STOP_LOOK_NS);
    return r;
}

/* A cancelling shutdown completes the queued tasks as cancelled itself.  A worker
 * would, as it took each one, but every worker may be held by a task that runs on (one
 * that neither returns nor blocks where the cancellation reaches it): the futures of
 * tasks that will never run must not wait for that.  Those from outside are taken off
 * the injection queue under its lock; those on the workers' deques (a batch a worker
 * took from that queue, the children of a running task) are stolen, as an idle worker
 * would, the private ones exposed first, all of a deque's at once (one heavy fence:
 * one each, as an idle worker exposes them, held a shutdown seconds past its deadline
 * for a held worker's 50,000 children).  A one-worker pool's deque has no thieves:
 * what its worker holds there (a batch it took, children its task queued) completes
 * when its task returns.  Nor, where the heavy fence fails (membarrier refused since the
 * pool was made), can the private part of a deque be exposed: those tasks complete when
 * their worker publishes or takes them (plait.h says so).  A task that pushes without
 * end could keep the steals going: a deque's steals stop after as many tries as the
 * tasks it held when they began take (a steal and an expose each, and lost races), or
 * STEALS_MIN if more.  So every task queued before the shutdown is reached
 * (a cap of 4,096 alone left a held worker's children past the first 4,096 waiting for
 * as long as it ran on), and one that pushes without end keeps neither the shutdown nor
 * the steals from the other deques (with no deadline, they once stayed on its deque
 * for as long as it pushed); what it queues later completes as cancelled when a worker
 * takes it. */
static void cancel_queued(plait_pool *pool)
{
    plait__future *batch[16]; /* (a shutdown may come from a coroutine's small stack) */
    size_t n;
    do {
        plait__inject_block *dropped = NULL;
        plait__spin_lock(&pool->inject.lock);
        n = plait__inject_take(&pool->inject, batch, sizeof batch / sizeof *batch, &dropped);
        plait__spin_unlock(&pool->inject.lock);
        plait__inject_blocks_free(dropped);
        for (size_t i = 0; i < n; i++)
            withdraw_taken(batch[i]);
    } while (n);
    if (pool->threads == 1)
        return; /* SOLO */
    for (unsigned i = 0; i < pool->threads; i++) {
        plait__deque *d = &pool->workers[i].deque;
        /* a steal and an expose for each task, a private one (and a few lost races) */
        int64_t tries_for_those_there = 3 * plait__deque_size(d) + BATCH_MAX;
        unsigned unexposed = 0; /* exposes in a row that failed, private tasks left */
        for (int64_t tries = 0;; tries++) {
            if (tries >= STEALS_MIN && tries >= tries_for_those_there)
                break; /* the rest complete as cancelled as workers take them */
            plait__future *f = plait__deque_steal(d);
            if (f) {
                withdraw_taken(f);
                continue;
            }
            /* None taken.  Another thief (an idle worker) may have won the race for the
             * oldest, or be exposing one (and take it as soon as it is public): that is
             * no reason to leave the others (giving up there left thousands of a held
             * worker's children pending while an idle worker exposed them one at a
             * time).  Only an empty deque, or a private part that cannot be exposed
             * (the fence refused: EXPOSE_TRIES in a row), ends the steals. */
            if (plait__deque_public(d) || plait__deque_expose(d, true)) {
                unexposed = 0;
                continue;
            }
            if (plait__deque_claimed(d) ||
                (plait__deque_private(d) && ++unexposed < EXPOSE_TRIES)) {
                sched_yield(); /* another thief's expose: a heavy fence long */
                continue;
            }
            break;
        }
    }
}

/* Shut the pool and wait for its workers (plait_pool_shutdown, checked). */
static int shut(plait_pool *pool, int how, int64_t deadline, bool cancellable)
{
    plait__spin_lock(&pool->inject.lock);
    atomic_store(&pool->closed, true);
    plait__spin_unlock(&pool->inject.lock);
    if (how == PLAIT_POOL_CANCEL) {
        atomic_store(&pool->cancelling, true);
        /* The running chain's handshake.  Without the heavy fence (membarrier refused
         * since the pool was made, or the kernel out of memory) a walk could meet a
         * task its worker has just completed, and its future reused: the running
         * tasks are then left to finish, or to the deadline; queued ones still
         * complete as cancelled, their workers seeing the flag. */
        bool walk = !pool->asymmetric || plait__heavy_fence() == 0;
        for (unsigned i = 0; walk && i < pool->threads; i++) {
            plait__worker *wk = &pool->workers[i];
            plait__spin_lock(&wk->running_lock);
            for (plait__future *f = atomic_load(&wk->running); f; f = f->next)
                plait__future_cancel(f);
            plait__spin_unlock(&wk->running_lock);
        }
        cancel_queued(pool);
    }
    poke_all(pool); /* sleepers recount themselves as finished */
    return wait_stopped(pool, deadline, cancellable);
}

int plait_pool_shutdown(plait_pool *pool, int how, int64_t deadline)
{
    int r = check_owner_call(pool);
    if (r < 0)
        return r;
    if (how != PLAIT_POOL_DRAIN && how != PLAIT_POOL_CANCEL)
        return -EINVAL;
    atomic_fetch_add(&pool->shutting, 1);
    r = shut(pool, how, deadline, true);
    atomic_fetch_sub(&pool->shutting, 1); /* the last touch of the pool */
    return r;
}

int plait_pool_destroy(plait_pool *pool)
{
    int r = check_owner_call(pool);
    if (r < 0)
        return r;
    if (!atomic_load(&pool->closed))
        r = shut(pool, PLAIT_POOL_DRAIN, PLAIT_FOREVER, false);
    else if ((r = wait_stopped(pool, 0, false)) == -ETIMEDOUT)
        return -EBUSY; /* a task still runs: the workers cannot be joined */
    if (r < 0)
        return r;
    /* looked at once stopped, so that a shutdown that began meanwhile is seen too (its
     * last touch, the decrement, then comes before the free) */
    if (atomic_load(&pool->shutting))
        return -EBUSY; /* another caller is inside plait_pool_shutdown */
    return pool_join_and_free(pool, pool->threads);
}

unsigned plait_pool_threads(const plait_pool *pool) { return pool ? pool->threads : 0; }

static _Atomic(plait_pool *) default_pool;
static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;

int plait__pool_default_get(plait_pool **out)
{
    plait_pool *pool = atomic_load_explicit(&default_pool, memory_order_acquire);
    if (PLAIT_LIKELY(pool && pool_here(pool) == 0)) {
        *out = pool;
        return 0;
    }
    /* no cancellation point under the lock: a thread with a pthread_cancel pending
     * unwound there holding it, and every later user of the default pool waited */
    int cancel_state = plait__cancel_off();
    pthread_mutex_lock(&default_lock);
    pool = atomic_load_explicit(&default_pool, memory_order_relaxed);
    if (pool && pool_here(pool) != 0)
        pool = NULL; /* a child of _Fork()'s copy of its parent's (its workers are not
                      * here): one of its own, as a forked child's fork handler makes */
    int r = 0;
    if (!pool && (r = plait_pool_create(&pool, &(plait_pool_options){.name = "plait"})) == 0) {
        pool->is_default = true;
        atomic_store_explicit(&default_pool, pool, memory_order_release);
    }
    pthread_mutex_unlock(&default_lock);
    plait__cancel_restore(cancel_state);
    *out = r == 0 ? pool : NULL;
    return r;
}

plait_pool *plait_pool_default(void)
{
    plait_pool *pool;
    plait__pool_default_get(&pool);
    return pool;
}

bool plait__held_beneath(uint64_t owner)
{
    if (!owner)
        return false;
    bool in_coroutine = plait__coro_current() != NULL;
    if (in_coroutine && owner == plait__self_outside_coroutines())
        return true;
    plait__worker *wk = tls_chain;
    if (!wk)
        return false;
    /* the chain is this worker's own: only it changes it (a cancelling walk reads); its
     * top is the running task, which is the caller itself outside coroutines, and the
     * task that called plait_run inside them */
    plait__future *f = atomic_load_explicit(&wk->running, memory_order_relaxed);
    for (f = f && !in_coroutine ? f->next : f; f; f = f->next)
        if (f->identity == owner)
            return true;
    return false;
}

const plait_pool *plait__pool_waiting_here(void)
{
    if (plait__coro_current() && tls_worker)
        return tls_worker->pool;
    return plait__tls_stands_in_for;
}

int plait__pool_submit_reachable(plait_pool *pool, plait_task *task, plait_fn fn, void *arg)
{
    /* A coroutine of a scheduler that runs in a task of this pool would wait on its own
     * pool, and a coroutine's wait does not run queued tasks as a thread's does: with
     * every worker so taken (the only one, on one CPU) the task would never run.  It
     * gets a thread of its own, joined and cancelled like a pool task (withdrawn when
     * cancelled before it starts: a plait thread's function runs all the same, and an
     * offload past its deadline ran fn for nothing), and refused as the pool would
     * refuse it.  So does what such a thread submits to this pool, for the same reason:
     * it is no worker, and its waits run no queued task (a map's items that map on the
     * pool themselves never started). */
    if (plait__pool_waiting_here() == pool) {
        int refused = pool_here(pool); /* (a child forked on such a thread keeps its mark) */
        if (refused == 0 && atomic_load(&pool->closed))
            refused = -EPIPE;
        return refused < 0 ? refused : plait__thread_start_as_task(task, fn, arg, pool);
    }
    return plait_pool_submit(pool, task, fn, arg);
}

void plait__pool_atfork(int phase)
{
    /* its workers are not in the child: a child that wants one gets a new one; and a
     * child forked inside a task is no worker (else its joins would run the parent's
     * queued tasks, which the parent runs too) */
    if (phase == PLAIT__FORK_CHILD) {
        atomic_store(&default_pool, NULL);
        tls_worker = NULL; /* (tls_chain stays: the child runs on top of its tasks) */
    }
    plait__atfork_mutex(&default_lock, phase);
}
