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
 *
 * A fork ends every run of the parent's other threads in the child, where no thread
 * would finish them either: each run in progress is listed in its once's bucket, with
 * the thread that runs it, and the child's fork handler undoes the onces whose runs
 * were another thread's, waking their waiters (the forking thread's coroutines), so
 * the next caller runs fn again, as glibc's pthread_once does in a child.  A run of the
 * forking thread itself (fn forked, or a coroutine of its scheduler was inside fn)
 * goes on in the child and is left to finish.  pthread_self() names the thread: the
 * child's one thread keeps the forking one's, and a coroutine never changes threads.
 * A run whose fn had returned, its end waiting for the bucket's lock (held across the
 * fork), is done in the child, as fn's work is there; only the few instructions
 * between fn's return and the store of its result are a window (as glibc's).  The
 * records of other threads' runs are read in the child from the copies of their
 * stacks: a stack the program keeps from children (MADV_DONTFORK, WIPEONFORK, a shared
 * mapping) is not supported there.
 */
#include "internal.h"

enum { NOT_DONE = 0, RUNNING = 1, DONE = 2, BUCKETS = 16 };

/* One caller's run of fn: its outcome, -ECANCELED until fn returns one. */
typedef struct run {
    plait_once *once;
    struct bucket *b;
    int result;
    pthread_t thread; /* the thread fn runs on */
    struct run *next; /* the bucket's runs in progress */
} run;

static struct bucket {
    plait__spinlock lock;
    plait__waitq waiters; /* node data: the once waited for */
    run *runs;            /* in progress: what a fork ends in its child */
} buckets[BUCKETS];

static struct bucket *bucket_of(const plait_once *once)
{
    uintptr_t a = (uintptr_t)once;
    return &buckets[(a >> 4 ^ a >> 9) % BUCKETS];
}

/* Take r off its bucket's list, leave its once done (or undone, when fn failed or
 * never returned) and wake the once's waiters, woken later; the bucket's lock held. */
static void run_over(run *r, bool done, plait__wakeups *later)
{
    run **link = &r->b->runs;
    while (*link && *link != r)
        link = &(*link)->next;
    if (*link) /* always, but for a run left by longjmp (undefined: plait.h) */
        *link = r->next;
    r->once->runner = 0;
    __atomic_store_n(&r->once->state, done ? DONE : NOT_DONE, __ATOMIC_RELEASE);
    plait__waitq_wake_matching(&r->b->waiters, r->once, 0, later);
}

/* A run ends (fn returned, or its thread unwinds through it). */
static void run_end(run *r)
{
    plait__wakeups later;
    later.n = 0;
    plait__spin_lock(&r->b->lock);
    run_over(r, r->result >= 0, &later);
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
            run running __attribute__((cleanup(run_end))) = {
                .once = once, .b = b, .result = -ECANCELED, .thread = pthread_self(),
                .next = b->runs};
            b->runs = &running;
            __atomic_store_n(&once->state, RUNNING, __ATOMIC_RELAXED);
            once->runner = self;
            plait__spin_unlock(&b->lock);
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
 * threads go, and so do their runs (see the top of this file). */
void plait__once_atfork(int phase)
{
    for (int i = 0; i < BUCKETS; i++) {
        struct bucket *b = &buckets[i];
        plait__atfork_wait_queue(&b->lock, &b->waiters, phase);
        if (phase != PLAIT__FORK_CHILD)
            continue;
        plait__wakeups later;
        later.n = 0;
        plait__spin_lock(&b->lock);
        /* a run whose fn has returned (its result stored) but whose end waited for
         * this lock, held across the fork, is done: fn's work is in the child */
        for (run *r = b->runs, *next; r; r = next) {
            next = r->next;
            if (!pthread_equal(r->thread, pthread_self()))
                run_over(r, r->result >= 0, &later);
        }
        plait__spin_unlock(&b->lock);
        plait__wakeups_deliver(&later);
    }
}
