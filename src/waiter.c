/*
 * waiter.c — the one wait protocol under every blocking primitive.
 *
 * A waiter is a blocked party: a suspended coroutine (woken by making it ready on
 * its scheduler, directly or through that scheduler's inbox) or a blocked plain
 * thread (woken through the futex word `signalled`).  It is enqueued on one or more
 * wait queues through wait nodes; all of it lives on the waiter's own stack.
 *
 * Invariants, and why they make races harmless:
 *
 *  1. Exactly one party decides a wait's outcome: whoever first moves `claimed` from
 *     0 to 1.  Candidates are a waker holding a queue's lock (a send, an unlock, a
 *     completed future), the timer of the deadline, a cancellation, and the waiter
 *     itself completing one case of a multi-wait at once.  Losers leave the waiter
 *     alone; a waker that loses simply moves on to the next node in its queue, so a
 *     hand-off (a channel element, a mutex, a semaphore permit) is never given to a
 *     waiter that will not take it.
 *  2. The claimer writes the outcome (status, index, any payload the node points
 *     at) before it signals, and never touches a thread's waiter after signalling.
 *     The signal is a release: the ready-queue push or inbox lock for a coroutine,
 *     the store to `signalled` for a thread (an exchange where the thread sleeps on
 *     it, which says whether it sleeps: futex_block).  The wake-up itself (making the
 *     coroutine ready, the futex wake) is delivered after the primitive's lock is
 *     released (plait__wakeups in internal.h), so the woken party does not find it
 *     held.  A coroutine's wake-up is its waiter, which the delivery reads and links
 *     into its scheduler's inbox: the coroutine stays suspended, and so its waiter
 *     alive, until that wake-up has arrived.
 *  3. A waiter returns only after unlinking all its nodes under their locks, so no
 *     waker can still be looking at a node when the stack frame holding it dies.
 *     The one exception is the node its outcome came through: a waker that claims
 *     through a node unlinks it and signals with the node's index (other claimers
 *     signal -1), so the waiter does not take that lock again.  It must not: the
 *     party that wakes the last waiter may destroy the object as soon as it
 *     unlocks, as POSIX allows after sem_post or a broadcast.
 *  4. Nobody else unlinks a node.  A waker that meets the node of a waiter claimed
 *     elsewhere (a select woken through another channel, a wait that timed out)
 *     leaves it: that waiter will still take this object's lock to unlink it, so
 *     the object must stay in use, and destroy (which refuses a queue with nodes)
 *     answers -EBUSY until it has.  The one exception: a select's cases on one
 *     channel (two receives; a send and a receive) are under one lock, and whoever
 *     claims through one of them unlinks the others with it (same_next), so that
 *     the channel, closed or handed through, may be destroyed at once as after a
 *     single wait; the waiter then sees their queue NULL and leaves them.
 *  5. A coroutine waiter with a deadline keeps its timer in its own scheduler's
 *     heap; the timer is removed before the wait returns.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

void plait__waiter_init(plait__waiter *w, const char *what, const void *object)
{
    atomic_init(&w->claimed, 0);
    atomic_init(&w->signalled, 0);
    w->status = 0;
    w->index = -1;
    w->fd_closed = false;
    w->coro = plait__coro_current();
    /* a shielded task's waits are not cancellable; callers may only turn it off too */
    if (w->coro) {
        w->cancellable = !w->coro->shielded;
        w->sched = w->coro->sched;
        w->inbox_next = NULL;
    } else {
        w->cancellable = !(plait__tls_work && plait__tls_work->shielded);
        w->helper = NULL;
        w->shared_word = NULL;
    }
    w->poll_fd = -1;
    w->wake_fd = -1;
    w->io = NULL;
    w->timer.index = SIZE_MAX;
    w->timer.when = PLAIT_FOREVER; /* (no deadline: a fork's look, plait__sched_strand_after_fork) */
    w->timer.waiter = w;
    w->what = what;
    w->object = object;
    w->node.lock = NULL; /* (set when the node is linked) */
    w->nodes = NULL;
    w->n_nodes = 0;
}

/* A plain thread's shield: nothing can cancel it, but the state round-trips. */
static PLAIT_TLS bool plain_thread_shielded;

/* The calling task's shield: its coroutine's, its work's (a plait thread, a pool task:
 * a worker that helps while a task waits runs other tasks, each with its own), or the
 * plain thread's. */
static bool *shield_of_caller(void)
{
    plait__coro *c = plait__coro_current();
    if (c)
        return &c->shielded;
    plait__future *work = plait__tls_work;
    return work ? &work->shielded : &plain_thread_shielded;
}

bool plait__shielded(void) { return *shield_of_caller(); }

void plait__shield_keep_as_plain(bool shielded) { plain_thread_shielded = shielded; }

int plait_cancel_shield(int on)
{
    if (on != 0 && on != 1)
        return -EINVAL;
    bool *shield = shield_of_caller();
    bool was = *shield;
    *shield = on;
    return was;
}

int plait__check_cancel(void)
{
    plait__coro *c = plait__coro_current();
    if (c)
        return !c->shielded && atomic_load_explicit(&c->cancelled, memory_order_relaxed)
                   ? -ECANCELED
                   : 0;
    plait__future *work = plait__tls_work;
    if (work && !work->shielded && atomic_load_explicit(&work->cancelled, memory_order_relaxed))
        return -ECANCELED;
    return 0;
}

/* Link node into q just before at, a node of q (NULL: at the tail). */
static void waitq_insert(plait__waitq *q, plait__spinlock *lock, plait__wait_node *node,
                         plait__waiter *w, int index, int same_next, void *data,
                         plait__wait_node *at)
{
    node->waiter = w;
    node->queue = q;
    node->lock = lock;
    node->index = index;
    node->same_next = same_next;
    node->data = data;
    node->next = at;
    node->prev = at ? at->prev : q->tail;
    if (node->prev)
        node->prev->next = node;
    else
        q->head = node;
    if (at)
        at->prev = node;
    else
        q->tail = node;
}

void plait__waitq_push(plait__waitq *q, plait__spinlock *lock, plait__wait_node *node,
                       plait__waiter *w, int index, void *data)
{
    waitq_insert(q, lock, node, w, index, index, data, NULL);
}

void plait__waitq_push_case(plait__waitq *q, plait__spinlock *lock, plait__wait_node *node,
                            plait__waiter *w, int index, void *data, int same_next)
{
    waitq_insert(q, lock, node, w, index, same_next, data, NULL);
}

static void waitq_unlink(plait__waitq *q, plait__wait_node *node)
{
    if (node->prev)
        node->prev->next = node->next;
    else
        q->head = node->next;
    if (node->next)
        node->next->prev = node->prev;
    else
        q->tail = node->prev;
    node->queue = NULL;
}

bool plait__waiter_claim(plait__waiter *w)
{
    int expected = 0;
    return atomic_compare_exchange_strong_explicit(&w->claimed, &expected, 1,
                                                   memory_order_acq_rel,
                                                   memory_order_acquire);
}

/* Unlink node, claimed through, and a select's other nodes on the same channel
 * (invariant 4's exception): they are under the lock the claimer holds, and a select's
 * nodes are an array indexed by case, those of the ring its round has not linked with
 * queue NULL. */
static void unlink_claimed(plait__waitq *q, plait__wait_node *node)
{
    waitq_unlink(q, node);
    for (int i = node->same_next; PLAIT_UNLIKELY(i != node->index);) {
        plait__wait_node *other = node + (i - node->index);
        if (other->queue)
            waitq_unlink(other->queue, other);
        i = other->same_next;
    }
}

plait__wait_node *plait__waitq_claim_except(plait__waitq *q, const plait__waiter *except)
{
    plait__wait_node *node = q->head;
    for (; node; node = node->next)
        if (node->waiter != except && plait__waiter_claim(node->waiter)) {
            unlink_claimed(q, node);
            return node;
        }
    return NULL;
}

bool plait__waitq_claim_node(plait__waitq *q, plait__wait_node *node)
{
    if (!plait__waiter_claim(node->waiter))
        return false;
    unlink_claimed(q, node);
    return true;
}

plait__wait_node *plait__waitq_claim(plait__waitq *q)
{
    return plait__waitq_claim_except(q, NULL);
}

bool plait__waitq_has_other(plait__waitq *q, const plait__waiter *except)
{
    for (plait__wait_node *node = q->head; node; node = node->next)
        if (node->waiter != except &&
            !atomic_load_explicit(&node->waiter->claimed, memory_order_acquire))
            return true;
    return false;
}

static void wake_one(plait__waiter *coro_wait, atomic_uint *futex, atomic_uint *shared)
{
    if (coro_wait)
        plait__coro_wake(coro_wait);
    else if (futex)
        plait__futex_wake(futex, 1);
    else
        plait__futex_wake_shared(shared, INT32_MAX); /* others sleep on it too */
}

static void wakeups_add(plait__wakeups *later, plait__waiter *coro_wait, atomic_uint *futex,
                        atomic_uint *shared)
{
    if (later->n == PLAIT__WAKEUPS_MAX) { /* full: wake now, under the lock */
        wake_one(coro_wait, futex, shared);
        return;
    }
    later->to[later->n].waiter = coro_wait;
    later->to[later->n].futex = futex;
    later->to[later->n].shared = shared;
    later->n++;
}

void plait__wakeups_deliver(plait__wakeups *later)
{
    for (unsigned i = 0; i < later->n; i++)
        wake_one(later->to[i].waiter, later->to[i].futex, later->to[i].shared);
    later->n = 0;
}

void plait__waiter_signal(plait__waiter *w, int status, int index, plait__wakeups *later)
{
    w->status = status;
    w->index = index;
    if (w->coro) {
        /* it stays suspended, and its coroutine alive, until this wake-up arrives;
         * `signalled` says only that the outcome is written (a forked child makes
         * ready the coroutines whose wake-up was on its way: plait__sched_after_fork) */
        atomic_store_explicit(&w->signalled, 1, memory_order_release);
        wakeups_add(later, w, NULL, NULL);
    } else if (w->wake_fd >= 0) {
        /* Written before `signalled` is published: the thread cannot return, end and
         * close its wake-up descriptor until it sees that store. */
        plait__wake_fd_write(w->wake_fd);
        atomic_store_explicit(&w->signalled, 1, memory_order_release);
    } else if (w->shared_word) {
        /* read before `signalled` is published: the thread may return at once (GCC
         * read the field again after the store, from what could be a dead frame) */
        atomic_uint *word = w->shared_word;
        atomic_store_explicit(&w->signalled, 1, memory_order_release);
        wakeups_add(later, NULL, NULL, word);
    } else if (w->helper) {
        /* The worker is alive now: it cannot return from its wait before it unlinks
         * its nodes under the lock the signaller holds (invariant 3).  Only the word
         * to wake is kept for later. */
        struct plait__worker *worker = w->helper;
        atomic_store_explicit(&w->signalled, 1, memory_order_seq_cst);
        atomic_uint *word = plait__worker_poke(worker);
        if (word)
            wakeups_add(later, NULL, word, NULL);
    } else if (atomic_exchange_explicit(&w->signalled, 1, memory_order_acq_rel) ==
               PLAIT__SIGNAL_AWAITED_ASLEEP) {
        wakeups_add(later, NULL, &w->signalled, NULL); /* else it wakes by looking */
    }
}

void plait__waiter_signal_now(plait__waiter *w, int status, int index)
{
    plait__wakeups now;
    now.n = 0;
    plait__waiter_signal(w, status, index, &now);
    plait__wakeups_deliver(&now);
}

void plait__wait_node_withdraw(plait__wait_node *node)
{
    if (PLAIT_UNLIKELY(node->same_next == PLAIT__STRANDED))
        return; /* its object's lock is held for ever (plait__sched_after_fork) */
    plait__spin_lock(node->lock);
    if (node->queue)
        waitq_unlink(node->queue, node);
    plait__spin_unlock(node->lock);
}

void plait__wait_node_unlink(plait__wait_node *node)
{
    /* The node the outcome came through was unlinked by its signaller, which may
     * have destroyed the object since (invariant 3), and so were a select's other
     * nodes on that channel: queue is read without the lock, as once the outcome is
     * decided only its claimer writes it, before the signal this waiter has seen. */
    if (node->index != node->waiter->index && node->queue)
        plait__wait_node_withdraw(node);
}

/* A plain thread's wait: look at `signalled` a while (futex.c), then mark it
 * PLAIT__SIGNAL_AWAITED_ASLEEP and sleep on it.  The signaller exchanges the word for 1
 * and wakes only a waiter it finds so marked: a hand-off to a thread still looking
 * costs no system call.  The mark and the exchange are on the one word, so either the
 * mark comes first and the signaller wakes, or the signal does and the mark fails. */
static int futex_block(plait__waiter *w, int64_t deadline)
{
    plait__spin_while(&w->signalled, 0, PLAIT__WAIT_SPIN_NS, deadline); /* futex.c */
    for (;;) {
        unsigned seen = 0;
        if (!atomic_compare_exchange_strong_explicit(&w->signalled, &seen,
                                                     PLAIT__SIGNAL_AWAITED_ASLEEP,
                                                     memory_order_acquire,
                                                     memory_order_acquire) &&
            seen != PLAIT__SIGNAL_AWAITED_ASLEEP)
            return w->status; /* signalled: the outcome is written */
        if (plait__futex_wait(&w->signalled, PLAIT__SIGNAL_AWAITED_ASLEEP, deadline) ==
                -ETIMEDOUT &&
            atomic_load_explicit(&w->signalled, memory_order_acquire) != 1) {
            if (plait__waiter_claim(w))
                return w->status = -ETIMEDOUT;
            /* a waker claimed it first and is about to signal: wait for that */
            deadline = PLAIT_FOREVER;
        }
    }
}

/* A thread blocks: as work that plait_cancel can reach (registered as the future's
 * `blocked` wait under its lock, see future.c), and helping its pool if it is a worker
 * (in a wait that cannot help, a worker hands its private tasks to the others first). */
static int thread_block_cancel_off(plait__waiter *w, int64_t deadline)
{
    plait__future *work = w->cancellable ? plait__tls_work : NULL;
    if (work) {
        plait__spin_lock(&work->lock);
        bool cancelled = atomic_load_explicit(&work->cancelled, memory_order_relaxed);
        bool refused = cancelled && plait__waiter_claim(w);
        if (!cancelled)
            work->blocked = w;
        plait__spin_unlock(&work->lock);
        if (refused)
            return w->status = -ECANCELED;
    }
    struct plait__worker *worker = w->helper ? NULL : plait__worker_blocking();
    int r = w->helper        ? plait__worker_help(w, deadline)
            : w->shared_word ? plait__shared_word_block(w, deadline)
            : w->poll_fd >= 0 ? plait__poll_block(w, deadline)
                             : futex_block(w, deadline);
    if (worker)
        plait__worker_unblocked(worker);
    if (work) {
        plait__spin_lock(&work->lock);
        work->blocked = NULL;
        plait__spin_unlock(&work->lock);
    }
    return r;
}

/* With pthread cancellation off (internal.h): the wait's nodes are linked on this
 * stack and its waiter is the work's `blocked`, and ppoll() (a wait on a descriptor) is
 * a cancellation point: a thread unwound there left them pointing into a dead frame.
 * So is a cancellation point in a handler of the program's that a signal runs during
 * any wait, a futex one too (channel_receive_with_a_cancellation_pending). */
static int thread_block(plait__waiter *w, int64_t deadline)
{
    int cancel_state = plait__cancel_off();
    int r = thread_block_cancel_off(w, deadline);
    plait__cancel_restore(cancel_state);
    return r;
}

int plait__waiter_block(plait__waiter *w, int64_t deadline)
{
    plait__coro *c = w->coro;
    if (!c)
        return thread_block(w, deadline);
    plait__sched *s = c->sched;
    /* A deadline already past is not looked at here (the callers answer one before
     * they wait, and a clock read per wait shows in I/O-bound work): its timer fires
     * on the scheduler's next turn, which does not sleep. */
    if (deadline != PLAIT_FOREVER) {
        w->timer.when = deadline;
        if (plait__timer_add(&s->timers, &w->timer) < 0) {
            if (plait__waiter_claim(w))
                return w->status = -ENOMEM;
            /* claimed meanwhile: the outcome is on its way, and no timer is kept (a
             * fork's look must not take it for one that fired: strand_held_nodes) */
            w->timer.when = PLAIT_FOREVER;
        }
    }
    c->waiter = w;
    c->wait_since = plait__coarse_now();
    /* A cancellation that arrived between the caller's check and now must not be
     * missed: it found no waiter to claim. */
    if (w->cancellable && atomic_load_explicit(&c->cancelled, memory_order_relaxed) &&
        plait__waiter_claim(w)) {
        w->status = -ECANCELED;
    } else {
        c->state = PLAIT__WAITING;
        plait__coro_suspend();
    }
    c->waiter = NULL;
    if (w->timer.index != SIZE_MAX)
        plait__timer_remove(&s->timers, &w->timer);
    return w->status;
}

/* What a single-queue wait is (plait__wait_on and its variants, internal.h). */
typedef struct wait_spec {
    plait__waitq *q;
    plait__spinlock *lock;
    void *data;                /* the node's data */
    size_t element;            /* a channel element of this many bytes at data (0: none) */
    bool receiving;            /* ... which the waker copies in (else out of) */
    bool cancellable;
    bool helps;                /* plait__wait_on_helping */
    bool *locked;              /* plait__wait_on_keep_lock */
    plait__wait_node *before;  /* plait__wait_on_before */
    const char *what;
    const void *object;
} wait_spec;

static int wait_on(const wait_spec *spec, int64_t deadline)
{
    int r = 0;
    if (spec->cancellable && plait__check_cancel() < 0)
        r = -ECANCELED;
    else if (plait__deadline_passed(deadline))
        r = -ETIMEDOUT;
    if (r < 0) {
        if (spec->locked)
            *spec->locked = true;
        else
            plait__spin_unlock(spec->lock);
        return r;
    }
    plait__waiter w;
    plait__waiter_init(&w, spec->what, spec->object);
    w.cancellable = w.cancellable && spec->cancellable;
    if (spec->helps && !w.coro)
        w.helper = plait__worker_helping(); /* a pool task runs others while it waits */
    void *data = spec->data;
    bool carried = spec->element > 0 && spec->element <= PLAIT__WAITER_PAYLOAD;
    if (carried) {
        if (!spec->receiving)
            memcpy(w.payload, data, spec->element);
        data = w.payload;
    }
    waitq_insert(spec->q, spec->lock, &w.node, &w, 0, 0, data, spec->before);
    plait__spin_unlock(spec->lock);
    r = plait__waiter_block(&w, deadline);
    /* Whether the outcome came through the node: its waker unlinked it.  Told by the
     * outcome's index (the node's is 0), not by the node, which the waker wrote last:
     * one cache line less to fetch back (the waiter is not aligned to lines, but its
     * outcome and its node are apart). */
    bool through_node = w.index == 0;
    if (carried && spec->receiving && r == 0 && through_node)
        memcpy(spec->data, w.payload, spec->element);
    if (spec->locked) {
        *spec->locked = r < 0 && !through_node && w.node.same_next != PLAIT__STRANDED;
        if (*spec->locked) {
            plait__spin_lock(spec->lock);
            if (w.node.queue)
                waitq_unlink(w.node.queue, &w.node);
            return r;
        }
    }
    if (!through_node)
        plait__wait_node_withdraw(&w.node);
    return r;
}

int plait__wait_on(plait__waitq *q, plait__spinlock *lock, void *data, int64_t deadline,
                   bool cancellable, const char *what, const void *object)
{
    wait_spec spec = {.q = q, .lock = lock, .data = data, .cancellable = cancellable,
                      .what = what, .object = object};
    return wait_on(&spec, deadline);
}

int plait__wait_on_before(plait__waitq *q, plait__spinlock *lock, void *data,
                          int64_t deadline, bool cancellable, const char *what,
                          const void *object, plait__wait_node *before)
{
    wait_spec spec = {.q = q, .lock = lock, .data = data, .cancellable = cancellable,
                      .before = before, .what = what, .object = object};
    return wait_on(&spec, deadline);
}

int plait__wait_on_helping(plait__waitq *q, plait__spinlock *lock, int64_t deadline,
                           const char *what, const void *object)
{
    wait_spec spec = {.q = q, .lock = lock, .cancellable = true, .helps = true,
                      .what = what, .object = object};
    return wait_on(&spec, deadline);
}

int plait__wait_on_keep_lock(plait__waitq *q, plait__spinlock *lock, void *data,
                             int64_t deadline, bool cancellable, const char *what,
                             const void *object, bool *locked)
{
    wait_spec spec = {.q = q, .lock = lock, .data = data, .cancellable = cancellable,
                      .locked = locked, .what = what, .object = object};
    return wait_on(&spec, deadline);
}

int plait__wait_on_element(plait__waitq *q, plait__spinlock *lock, void *elem,
                           size_t size, bool receiving, int64_t deadline,
                           const char *what, const void *object)
{
    wait_spec spec = {.q = q, .lock = lock, .data = elem, .element = size,
                      .receiving = receiving, .cancellable = true, .what = what,
                      .object = object};
    return wait_on(&spec, deadline);
}

static PLAIT_TLS uint64_t thread_identity;
/* ids for the thread's work, drawn from the global counter a block at a time: a pool
 * whose every task takes a lock pays no shared increment per task */
static PLAIT_TLS uint64_t ids_next, ids_end;
enum { ID_BLOCK = 64 };

static uint64_t local_id(void)
{
    if (PLAIT_UNLIKELY(ids_next == ids_end)) {
        ids_next = plait__new_ids(ID_BLOCK);
        ids_end = ids_next + ID_BLOCK;
    }
    return ids_next++;
}

uint64_t plait__self(void)
{
    plait__coro *c = plait__coro_current();
    if (c)
        return c->id;
    /* A pool task is an owner of its own, not its worker: a task that a helping join
     * runs on top of another on the same worker, or a later task on that worker, is
     * not the owner of what the other locked. */
    plait__future *work = plait__tls_work;
    if (work) {
        if (PLAIT_UNLIKELY(!work->identity))
            work->identity = local_id();
        return work->identity;
    }
    if (PLAIT_UNLIKELY(!thread_identity))
        thread_identity = local_id();
    return thread_identity;
}

void plait__self_become(uint64_t id) { thread_identity = id; }

uint64_t plait__self_outside_coroutines(void)
{
    plait__future *work = plait__tls_work;
    return work ? work->identity : thread_identity;
}

void plait__waitq_wake_all(plait__waitq *q, plait__wakeups *later)
{
    plait__wait_node *node;
    while ((node = plait__waitq_claim(q)))
        plait__waiter_signal(node->waiter, 0, node->index, later);
}

void plait__waitq_wake_matching(plait__waitq *q, const void *data, int status,
                                plait__wakeups *later)
{
    for (plait__wait_node *node = q->head, *next; node; node = next) {
        next = node->next;
        if (node->data == data && plait__waiter_claim(node->waiter)) {
            waitq_unlink(q, node);
            plait__waiter_signal(node->waiter, status, node->index, later);
        }
    }
}

void plait__waitq_forget_other_threads(plait__waitq *q, const plait__sched *sched)
{
    for (plait__wait_node *node = q->head, *next; node; node = next) {
        next = node->next;
        if (!node->waiter->coro || node->waiter->coro->sched != sched)
            waitq_unlink(q, node);
    }
}

int plait__destroy_idle(plait__spinlock *lock, plait__waitq *q, void *object)
{
    plait__spin_lock(lock);
    bool busy = !plait__waitq_empty(q);
    plait__spin_unlock(lock);
    if (busy)
        return -EBUSY;
    free(object);
    return 0;
}
