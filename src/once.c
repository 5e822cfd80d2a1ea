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
 * get the lock runs fn again.  So does a fn that never returns because its thread ends
 * inside it (pthread_exit, or a pthread_cancel acted on in fn): the end of a run is a
 * cleanup of its frame (run_end), which the unwinder runs too — this file is compiled
 * with -fexceptions for that (CMakeLists.txt), where glibc's own pthread_cleanup_push
 * would not do: its C form chains its records through the thread, and a fn run in a
 * coroutine that suspends would interleave that chain with other coroutines' records.
 * Without the cleanup, the once stayed RUNNING for good and every caller waited for a
 * fn that no thread would finish (pthread_once likewise resets a cancelled init).
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

/* One caller's run of fn: its outcome, -ECANCELED until fn returns one. */
typedef struct run {
    plait_once *once;
    struct bucket *b;
    int result;
} run;

/* A run ends (fn returned, or its thread unwinds through it): done or undone, and its
 * waiters woken. */
static void run_end(run *r)
{
    plait__spin_lock(&r->b->lock);
    r->once->runner = 0;
    __atomic_store_n(&r->once->state, r->result < 0 ? NOT_DONE : DONE, __ATOMIC_RELEASE);
    plait__wakeups later = {.n = 0};
    plait__waitq_wake_matching(&r->b->waiters, r->once, 0, &later);
    plait__spin_unlock(&r->b->lock);
    plait__wakeups_deliver(&later);
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
            run running __attribute__((cleanup(run_end))) = {once, b, -ECANCELED};
            running.result = fn(arg);
            return running.result < 0 ? running.result : 0;
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
