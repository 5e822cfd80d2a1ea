/*
 * once.c — one-time initialisation across coroutines and threads.
 *
 * plait_once is a public struct (so it can be initialised statically) of two words:
 * the state, and who is running fn.  Callers that must wait for a running fn wait in
 * one of a few global wait queues, chosen by the once's address (as a parking lot
 * does), so a once needs no allocation and no destroy.  State changes happen under that
 * queue's lock; the fast path is one acquire load of a state that says done.
 *
 * A fn that fails leaves the once as it was: its waiters are woken, and the first to
 * get the lock runs fn again.
 */
#include "internal.h"

enum { NOT_DONE = 0, RUNNING = 1, DONE = 2, BUCKETS = 16 };

static struct bucket {
    plait__spinlock lock;
    plait__waitq waiters; /* node data: the once waited for */
} buckets[BUCKETS];

static struct bucket *bucket_of(const plait_once *once)
{
    uintptr_t a = (uintptr_t)once;
    return &buckets[(a >> 4 ^ a >> 9) % BUCKETS];
}

int plait_once_call(plait_once *once, int (*fn)(void *arg), void *arg, int64_t deadline)
{
    if (!once || !fn)
        return -EINVAL;
    if (__atomic_load_n(&once->state, __ATOMIC_ACQUIRE) == DONE)
        return 0;
    plait__fork_init(); /* the buckets' locks across fork (plait__once_atfork) */
    uint64_t self = plait__self();
    struct bucket *b = bucket_of(once);
    plait__spin_lock(&b->lock);
    for (;;) {
        int state = __atomic_load_n(&once->state, __ATOMIC_RELAXED);
        if (state == DONE) {
            plait__spin_unlock(&b->lock);
            return 0;
        }
        if (state == NOT_DONE) {
            __atomic_store_n(&once->state, RUNNING, __ATOMIC_RELAXED);
            once->runner = self;
            plait__spin_unlock(&b->lock);
            int r = fn(arg);
            plait__spin_lock(&b->lock);
            once->runner = 0;
            __atomic_store_n(&once->state, r < 0 ? NOT_DONE : DONE, __ATOMIC_RELEASE);
            plait__wakeups later = {.n = 0};
            plait__waitq_wake_matching(&b->waiters, once, 0, &later);
            plait__spin_unlock(&b->lock);
            plait__wakeups_deliver(&later);
            return r < 0 ? r : 0;
        }
        /* fn runs in the caller, or in a pool task it runs on top of (a helping join
         * inside fn): fn cannot finish until the caller returns */
        if (once->runner == self || plait__held_beneath(once->runner)) {
            plait__spin_unlock(&b->lock);
            return -EDEADLK;
        }
        int r = plait__wait_on(&b->waiters, &b->lock, once, deadline, true, "once", once);
        if (r < 0)
            return r;
        plait__spin_lock(&b->lock);
    }
}

/* The buckets' locks across fork (fork.c): they are plait's, shared by every once, and
 * a child must not inherit one that another thread held for its instant (every once of
 * that bucket would spin there for ever).  In the child the waits of the parent's other
 * threads go. */
void plait__once_atfork(int phase)
{
    for (int i = 0; i < BUCKETS; i++)
        plait__atfork_wait_queue(&buckets[i].lock, &buckets[i].waiters, phase);
}
