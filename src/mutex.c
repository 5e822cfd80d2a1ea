/*
 * mutex.c — a mutex that coroutines and threads share, and the condition on it.
 *
 * Two modes, as Go's sync.Mutex.  Normally unlock frees the mutex and wakes the first
 * waiter to try again: the unlocker (or anyone running) may take it back at once, so
 * two threads taking turns on a short critical section do not pay a sleep and a
 * wake-up per acquisition (handing it to a thread that is not running yet would make
 * a convoy: every lock a context switch).  A waiter that has already waited more than
 * STARVING_NS asks for a hand-off instead: unlock makes it the owner before it wakes,
 * so no waiter is overtaken for ever.  A waiter told to try again has left the queue
 * but will touch the mutex once more: it is counted in `retrying` until it is back
 * under the lock, and destroy answers -EBUSY meanwhile, as for a queued waiter.  So is
 * a condition waiter, from the unlock in plait_cond_wait to its relock, and a thread
 * between two looks of its spin.
 *
 * A plain thread spins briefly before it sleeps; a coroutine never spins (the owner
 * may be a coroutine of its own scheduler).
 *
 * The owner is the calling coroutine, pool task or plain thread (plait__self), which is
 * how unlock by a non-owner and relocking one's own mutex are caught; so is a lock by
 * a pool task run inside a helping join of the holder, on the same worker, or by a
 * coroutine of a scheduler the holder runs (waiting, either would never see the holder
 * resume: plait__held_beneath).
 */
#include "internal.h"

#include <stdlib.h>

struct plait_mutex {
    plait__spinlock lock;
    uint64_t owner;       /* plait__self() of the holder; 0 when free */
    plait__waitq waiters; /* node data: the waiter's lock_request */
    unsigned retrying;    /* waiters told to try again that have not come back yet, and
                             condition waiters (each locks it again before it returns) */
    uint64_t arrivals;    /* first waits so far: each waiter's ticket (lock_request) */
};

struct plait_cond {
    plait__spinlock lock;
    plait__waitq waiters;
};

int plait_mutex_create(plait_mutex **mutex)
{
    if (!mutex)
        return -EINVAL;
    *mutex = calloc(1, sizeof **mutex);
    return *mutex ? 0 : -ENOMEM;
}

int plait_mutex_destroy(plait_mutex *m)
{
    if (!m)
        return -EINVAL;
    plait__spin_lock(&m->lock);
    bool busy = m->owner || !plait__waitq_empty(&m->waiters) || m->retrying;
    plait__spin_unlock(&m->lock);
    if (busy)
        return -EBUSY;
    free(m);
    return 0;
}

#define STARVING_NS (1 * PLAIT_MS)
enum { SPIN_ROUNDS = 8, SPIN_PAUSES = 32 };

/* A waiter's node data: who it is, and since when it has waited (its first wait):
 * the unlock hands the mutex over to one that has waited over STARVING_NS by then; and
 * its place in the order of arrival (its ticket, from its first wait; 0 before), which
 * the queue keeps. */
typedef struct lock_request {
    uint64_t self;
    int64_t since;
    uint64_t ticket;
} lock_request;

/* The outcomes of a wait: the mutex was handed over, or the waiter should try again. */
enum { HANDED_OVER = 0, TRY_AGAIN = 1 };

/* came_back: the caller is counted in `retrying` (a condition waiter). */
static int mutex_lock(plait_mutex *m, int64_t deadline, bool cancellable, bool came_back)
{
    lock_request request = {plait__self(), 0, 0};
    bool spin = !plait__coro_current();
    for (int round = 0;; round++) {
        plait__spin_lock(&m->lock);
        if (came_back) {
            m->retrying--;
            came_back = false;
        }
        if (!m->owner) {
            m->owner = request.self;
            plait__spin_unlock(&m->lock);
            return 0;
        }
        /* held by the caller, or by a pool task it runs on top of (which cannot go on
         * to unlock it until the caller returns) */
        if (m->owner == request.self || (!round && plait__held_beneath(m->owner))) {
            plait__spin_unlock(&m->lock);
            return -EDEADLK;
        }
        if (spin && round < SPIN_ROUNDS) {
            m->retrying++; /* it touches the mutex again: destroy is -EBUSY meanwhile */
            plait__spin_unlock(&m->lock);
            for (int i = 0; i < SPIN_PAUSES; i++)
                plait__cpu_relax();
            came_back = true;
            continue;
        }
        /* A waiter the unlock woke to try again (the first in the queue) that a running
         * locker beat to the mutex waits again in its place, as with Go's sync.Mutex:
         * behind the waiters that came after it, the next unlock would wake one of
         * those first.  Its place, not the head: two unlocks, each beaten by a running
         * locker, wake two waiters, and the second to come back must not go before the
         * first.  The queue is in ticket order (a first wait goes at the tail with the
         * highest yet), so the place is before the first node with a later ticket; the
         * data of a node claimed elsewhere is still there to read, as its waiter has yet
         * to take this lock to unlink it.  (Its first wait's time stays too, for the
         * hand-over.) */
        plait__wait_node *before = NULL;
        if (request.ticket) {
            before = m->waiters.head;
            while (before && ((const lock_request *)before->data)->ticket < request.ticket)
                before = before->next;
        } else {
            request.since = plait_now();
            request.ticket = ++m->arrivals;
        }
        int r = plait__wait_on_before(&m->waiters, &m->lock, &request, deadline, cancellable,
                                      "mutex", m, before);
        if (r != TRY_AGAIN)
            return r; /* HANDED_OVER (0) or an error */
        came_back = true;
    }
}

int plait_mutex_lock(plait_mutex *m, int64_t deadline)
{
    if (!m)
        return -EINVAL;
    return mutex_lock(m, deadline, true, false);
}

int plait_mutex_unlock(plait_mutex *m)
{
    if (!m)
        return -EINVAL;
    plait__wakeups later;
    later.n = 0;
    plait__spin_lock(&m->lock);
    if (m->owner != plait__self()) {
        plait__spin_unlock(&m->lock);
        return -EPERM;
    }
    plait__wait_node *node = plait__waitq_claim(&m->waiters);
    lock_request *request = node ? node->data : NULL; /* blocked until signalled */
    m->owner = request && plait_now() - request->since > STARVING_NS ? request->self : 0;
    if (node && !m->owner)
        m->retrying++; /* destroy is refused until it has come back */
    if (node)
        plait__waiter_signal(node->waiter, m->owner ? HANDED_OVER : TRY_AGAIN, node->index,
                             &later);
    plait__spin_unlock(&m->lock);
    plait__wakeups_deliver(&later);
    return 0;
}

int plait_cond_create(plait_cond **cond)
{
    if (!cond)
        return -EINVAL;
    *cond = calloc(1, sizeof **cond);
    return *cond ? 0 : -ENOMEM;
}

int plait_cond_destroy(plait_cond *c)
{
    return c ? plait__destroy_idle(&c->lock, &c->waiters, c) : -EINVAL;
}

int plait_cond_wait(plait_cond *c, plait_mutex *m, int64_t deadline)
{
    if (!c || !m)
        return -EINVAL;
    plait__spin_lock(&m->lock);
    bool owner = m->owner == plait__self();
    plait__spin_unlock(&m->lock);
    if (!owner)
        return -EPERM;
    int r = plait__wait_refused(deadline);
    if (r < 0)
        return r;
    /* Enqueue before unlocking the mutex: a signal sent after the unlock finds us. */
    plait__waiter w;
    plait__wait_node node;
    plait__waiter_init(&w, "condition", c);
    w.nodes = &node;
    w.n_nodes = 1;
    plait__spin_lock(&c->lock);
    plait__waitq_push(&c->waiters, &c->lock, &node, &w, 0, NULL);
    plait__spin_unlock(&c->lock);
    /* Counted until it has the mutex again: a destroy meanwhile is refused (-EBUSY)
     * instead of freeing what the relock below takes. */
    plait__spin_lock(&m->lock);
    m->retrying++;
    plait__spin_unlock(&m->lock);
    plait_mutex_unlock(m);
    r = plait__waiter_block(&w, deadline);
    plait__wait_node_unlink(&node);
    mutex_lock(m, PLAIT_FOREVER, false, true);
    return r;
}

static int cond_wake(plait_cond *c, bool all)
{
    if (!c)
        return -EINVAL;
    plait__wakeups later;
    later.n = 0;
    plait__spin_lock(&c->lock);
    plait__wait_node *node;
    while ((node = plait__waitq_claim(&c->waiters))) {
        plait__waiter_signal(node->waiter, 0, node->index, &later);
        if (!all)
            break;
    }
    plait__spin_unlock(&c->lock);
    plait__wakeups_deliver(&later);
    return 0;
}

int plait_cond_signal(plait_cond *c) { return cond_wake(c, false); }
int plait_cond_broadcast(plait_cond *c) { return cond_wake(c, true); }
