/* test_sync.c — mutex, condition, semaphore, event and wait group: behaviour, edge
 * cases and bad input, from coroutines, from plain threads and between the two
 * (coroutines on several schedulers, threads that run none), plus stress cases.
 *
 * Ordering between parties comes from the primitives themselves, or from the one
 * certainty a single scheduler gives: a coroutine that yields lets every ready
 * coroutine run until it blocks.  A sleep appears only where the assertion holds
 * whichever way the race goes (to give a waiter time to block), or to check that a
 * deadline elapsed, with a margin that survives a loaded 2-core machine. */
#include "helpers.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>


/* Spawn n coroutines fn(args[i]) on this scheduler and join them all. */
typedef struct {
    plait_fn fn;
    void **args;
    int n;
} spawn_set;

static void *spawn_set_main(void *p)
{
    spawn_set *set = p;
    plait_task tasks[16];
    CHECK(set->n <= 16);
    for (int i = 0; i < set->n; i++)
        CHECK_EQ(plait_spawn(&tasks[i], set->fn, set->args[i]), 0);
    for (int i = 0; i < set->n; i++)
        CHECK_EQ(plait_join(tasks[i], NULL, plait_deadline_in(60 * PLAIT_SEC)), 0);
    return NULL;
}

/* ======================================================================== */
/* Bad input                                                                 */
/* ======================================================================== */

TEST(null_arguments)
{
    plait_mutex *m;
    plait_cond *c;
    CHECK_EQ(plait_mutex_create(NULL), -EINVAL);
    CHECK_EQ(plait_mutex_destroy(NULL), -EINVAL);
    CHECK_EQ(plait_mutex_lock(NULL, PLAIT_FOREVER), -EINVAL);
    CHECK_EQ(plait_mutex_lock(NULL, 0), -EINVAL);
    CHECK_EQ(plait_mutex_unlock(NULL), -EINVAL);
    CHECK_EQ(plait_cond_create(NULL), -EINVAL);
    CHECK_EQ(plait_cond_destroy(NULL), -EINVAL);
    CHECK_EQ(plait_cond_signal(NULL), -EINVAL);
    CHECK_EQ(plait_cond_broadcast(NULL), -EINVAL);
    CHECK_EQ(plait_mutex_create(&m), 0);
    CHECK_EQ(plait_cond_create(&c), 0);
    CHECK_EQ(plait_mutex_lock(m, 0), 0);
    CHECK_EQ(plait_cond_wait(NULL, m, PLAIT_FOREVER), -EINVAL);
    CHECK_EQ(plait_cond_wait(c, NULL, PLAIT_FOREVER), -EINVAL);
    CHECK_EQ(plait_mutex_unlock(m), 0);
    CHECK_EQ(plait_cond_destroy(c), 0);
    CHECK_EQ(plait_mutex_destroy(m), 0);

    CHECK_EQ(plait_sem_create(NULL, 1), -EINVAL);
    CHECK_EQ(plait_sem_destroy(NULL), -EINVAL);
    CHECK_EQ(plait_sem_acquire(NULL, 0), -EINVAL);
    CHECK_EQ(plait_sem_acquire(NULL, PLAIT_FOREVER), -EINVAL);
    CHECK_EQ(plait_sem_release(NULL), -EINVAL);
    CHECK_EQ(plait_sem_value(NULL), -EINVAL);

    CHECK_EQ(plait_event_create(NULL), -EINVAL);
    CHECK_EQ(plait_event_destroy(NULL), -EINVAL);
    CHECK_EQ(plait_event_set(NULL), -EINVAL);
    CHECK_EQ(plait_event_reset(NULL), -EINVAL);
    CHECK_EQ(plait_event_wait(NULL, PLAIT_FOREVER), -EINVAL);
    CHECK_EQ(plait_event_is_set(NULL), -EINVAL);

    CHECK_EQ(plait_waitgroup_create(NULL), -EINVAL);
    CHECK_EQ(plait_waitgroup_destroy(NULL), -EINVAL);
    CHECK_EQ(plait_waitgroup_add(NULL, 1), -EINVAL);
    CHECK_EQ(plait_waitgroup_done(NULL), -EINVAL);
    CHECK_EQ(plait_waitgroup_wait(NULL, PLAIT_FOREVER), -EINVAL);
}

/* ======================================================================== */
/* Mutex                                                                     */
/* ======================================================================== */

typedef struct {
    plait_mutex *m;
    int r_unlock, r_lock0, r_lock_timed;
    int64_t took;
} mutex_probe;

/* From a party that does not own m: unlock is refused, a lock that cannot wait fails
 * at once, and one with a deadline waits for it. */
static void *probe_foreign(void *p)
{
    mutex_probe *mp = p;
    mp->r_unlock = plait_mutex_unlock(mp->m);
    int64_t start = plait_now();
    mp->r_lock0 = plait_mutex_lock(mp->m, 0);
    CHECK_EQ(plait_mutex_lock(mp->m, INT64_MIN), -ETIMEDOUT);
    CHECK_PROMPT(start);
    start = plait_now();
    mp->r_lock_timed = plait_mutex_lock(mp->m, start + 50 * PLAIT_MS);
    mp->took = plait_now() - start;
    return NULL;
}

static void check_probe(const mutex_probe *mp)
{
    CHECK_EQ(mp->r_unlock, -EPERM);
    CHECK_EQ(mp->r_lock0, -ETIMEDOUT);
    CHECK_EQ(mp->r_lock_timed, -ETIMEDOUT);
    CHECK(mp->took >= 50 * PLAIT_MS);
    CHECK(mp->took < 50 * PLAIT_MS + 2 * PLAIT_SEC);
}

static void *coro_probe_main(void *p)
{
    mutex_probe *mp = p;
    /* Another thread holds m; this coroutine is someone else. */
    probe_foreign(mp);
    return NULL;
}

static void *coro_probe_thread(void *p)
{
    check_run(coro_probe_main, p);
    return NULL;
}

TEST(mutex_between_threads)
{
    plait_mutex *m;
    CHECK_EQ(plait_mutex_create(&m), 0);
    CHECK_EQ(plait_mutex_unlock(m), -EPERM); /* not locked at all */
    int64_t start = plait_now();
    CHECK_EQ(plait_mutex_lock(m, 0), 0); /* a past deadline still takes a free mutex */
    CHECK_EQ(plait_mutex_lock(m, PLAIT_FOREVER), -EDEADLK);
    CHECK_EQ(plait_mutex_lock(m, 0), -EDEADLK);
    CHECK_PROMPT(start);
    CHECK_EQ(plait_mutex_destroy(m), -EBUSY);

    mutex_probe mp = {.m = m};
    pthread_t th;
    thread_start(&th, probe_foreign, &mp);
    thread_join(th);
    check_probe(&mp);

    /* A coroutine of another thread's scheduler is a party of its own.  (One of this
     * thread's own would get -EDEADLK: the holder beneath it cannot unlock before
     * plait_run returns; test_pool_identity.c.) */
    mutex_probe cp = {.m = m};
    thread_start(&th, coro_probe_thread, &cp);
    thread_join(th);
    check_probe(&cp);

    CHECK_EQ(plait_mutex_unlock(m), 0);
    CHECK_EQ(plait_mutex_unlock(m), -EPERM); /* twice */
    CHECK_EQ(plait_mutex_lock(m, plait_now() - PLAIT_SEC), 0);
    CHECK_EQ(plait_mutex_unlock(m), 0);
    CHECK_EQ(plait_mutex_destroy(m), 0);
}

/* An owner is named by an identity that is never reused.  A coroutine that ends
 * holding a mutex and a write lock leaves them held: a later coroutine, which gets the
 * ended one's stack slot, is not the owner (-EPERM); nor is a later thread, which may
 * get an ended thread's stack and thread-local block.  The locks stay held for good:
 * reachable from here, so not a leak. */
static struct {
    plait_mutex *m;
    plait_rwlock *rw;
    int unlock, wrunlock;
} orphan[2];

static void *locks_and_ends(void *p)
{
    int i = INT(p);
    CHECK_EQ(plait_mutex_lock(orphan[i].m, 0), 0);
    CHECK_EQ(plait_rwlock_wrlock(orphan[i].rw, 0), 0);
    return NULL;
}

static void *unlocks_orphan(void *p)
{
    int i = INT(p);
    orphan[i].unlock = plait_mutex_unlock(orphan[i].m);
    orphan[i].wrunlock = plait_rwlock_wrunlock(orphan[i].rw);
    return NULL;
}

static void *orphan_coroutines(void *p)
{
    plait_task t;
    CHECK_EQ(plait_spawn(&t, locks_and_ends, p), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(plait_spawn(&t, unlocks_orphan, p), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    return NULL;
}

TEST(owner_identity_not_reused)
{
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(plait_mutex_create(&orphan[i].m), 0);
        CHECK_EQ(plait_rwlock_create(&orphan[i].rw), 0);
        orphan[i].unlock = orphan[i].wrunlock = 1;
    }
    check_run(orphan_coroutines, ARG(0));
    pthread_t th;
    thread_start(&th, locks_and_ends, ARG(1));
    thread_join(th);
    thread_start(&th, unlocks_orphan, ARG(1));
    thread_join(th);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(orphan[i].unlock, -EPERM);
        CHECK_EQ(orphan[i].wrunlock, -EPERM);
        CHECK_EQ(plait_mutex_destroy(orphan[i].m), -EBUSY);
    }
}

typedef struct {
    plait_mutex *m;
    plait_event *locked, *go;
    atomic_int released;
    atomic_int tid; /* the thread's, just before it locks */
    int result;
} handoff_ctx;

/* A thread blocks on the mutex a coroutine holds. */
static void *thread_locks(void *p)
{
    handoff_ctx *h = p;
    CHECK_EQ(plait_event_wait(h->locked, SOON()), 0);
    atomic_store(&h->tid, gettid_());
    h->result = plait_mutex_lock(h->m, SOON());
    CHECK_EQ(atomic_load(&h->released), 1);
    CHECK_EQ(plait_mutex_unlock(h->m), 0);
    return NULL;
}

static void *coro_holds_main(void *p)
{
    handoff_ctx *h = p;
    CHECK_EQ(plait_mutex_lock(h->m, 0), 0);
    CHECK_EQ(plait_event_set(h->locked), 0);
    /* the thread sleeps in its lock, which the unlock must wake (unlocked before it
     * tried, it would take a free mutex, and pass) */
    wait_asleep(&h->tid);
    atomic_store(&h->released, 1);
    CHECK_EQ(plait_mutex_unlock(h->m), 0);
    return NULL;
}

typedef struct {
    plait_mutex *m;
    plait_event *locked, *ticked;
    atomic_int ticker_ran;
    int result;
} thread_holds_ctx;

static void *holder_thread(void *p)
{
    thread_holds_ctx *h = p;
    CHECK_EQ(plait_mutex_lock(h->m, 0), 0);
    CHECK_EQ(plait_event_set(h->locked), 0);
    /* The ticker runs only while the coroutine waits for the mutex. */
    CHECK_EQ(plait_event_wait(h->ticked, SOON()), 0);
    CHECK_EQ(plait_mutex_unlock(h->m), 0);
    return NULL;
}

static void *ticker(void *p)
{
    thread_holds_ctx *h = p;
    atomic_store(&h->ticker_ran, 1);
    CHECK_EQ(plait_event_set(h->ticked), 0);
    return NULL;
}

static void *coro_waits_main(void *p)
{
    thread_holds_ctx *h = p;
    CHECK_EQ(plait_event_wait(h->locked, SOON()), 0);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, ticker, h), 0);
    /* Blocks this coroutine only: the ticker runs, which lets the thread unlock. */
    h->result = plait_mutex_lock(h->m, SOON());
    CHECK_EQ(atomic_load(&h->ticker_ran), 1);
    CHECK_EQ(plait_mutex_lock(h->m, 0), -EDEADLK);
    CHECK_EQ(plait_mutex_unlock(h->m), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    return NULL;
}

TEST(mutex_thread_and_coroutine)
{
    /* a coroutine holds, a plain thread waits */
    handoff_ctx h = {0};
    CHECK_EQ(plait_mutex_create(&h.m), 0);
    CHECK_EQ(plait_event_create(&h.locked), 0);
    pthread_t th;
    thread_start(&th, thread_locks, &h);
    check_run(coro_holds_main, &h);
    thread_join(th);
    CHECK_EQ(h.result, 0);

    /* a plain thread holds, a coroutine waits while its scheduler goes on */
    thread_holds_ctx t = {.m = h.m};
    CHECK_EQ(plait_event_create(&t.locked), 0);
    CHECK_EQ(plait_event_create(&t.ticked), 0);
    thread_start(&th, holder_thread, &t);
    check_run(coro_waits_main, &t);
    thread_join(th);
    CHECK_EQ(t.result, 0);

    CHECK_EQ(plait_mutex_destroy(h.m), 0);
    plait_event_destroy(h.locked);
    plait_event_destroy(t.locked);
    plait_event_destroy(t.ticked);
}

typedef struct {
    plait_mutex *m;
    int order[8];
    int n;
    int results[8];
} fifo_ctx;

static fifo_ctx *fifo;

static void *fifo_locker(void *p)
{
    int id = INT(p);
    fifo->results[id] = plait_mutex_lock(fifo->m, SOON());
    if (fifo->results[id] == 0) {
        fifo->order[fifo->n++] = id;
        CHECK_EQ(plait_mutex_unlock(fifo->m), 0);
    }
    return NULL;
}

static void *mutex_coro_main(void *p)
{
    (void)p;
    fifo_ctx ctx = {0};
    fifo = &ctx;
    CHECK_EQ(plait_mutex_create(&ctx.m), 0);
    CHECK_EQ(plait_mutex_lock(ctx.m, PLAIT_FOREVER), 0);
    CHECK_EQ(plait_mutex_lock(ctx.m, PLAIT_FOREVER), -EDEADLK);

    /* another coroutine cannot unlock it, and times out waiting for it */
    mutex_probe mp = {.m = ctx.m};
    plait_task t;
    CHECK_EQ(plait_spawn(&t, probe_foreign, &mp), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    check_probe(&mp);

    /* normal mode: unlock wakes a waiter to try again, and the unlocker may take the
     * mutex straight back (mutex.c: no convoy); every waiter gets it exactly once */
    plait_task w[3];
    int64_t spawned = plait_now();
    for (int i = 0; i < 3; i++)
        CHECK_EQ(plait_spawn(&w[i], fifo_locker, ARG(i)), 0);
    settle(); /* all three block */
    CHECK_EQ(ctx.n, 0);
    CHECK_EQ(plait_mutex_destroy(ctx.m), -EBUSY);
    CHECK_EQ(plait_mutex_unlock(ctx.m), 0);
    /* barging: waiter 0 has not run yet.  Unless it had waited over 1 ms by the unlock
     * (mutex.c, STARVING_NS: a loaded machine, TSan), which then handed it the mutex:
     * that took 1.6 s of a CI run's TSan stage once, and this check failed. */
    bool may_have_starved = plait_now() - spawned > PLAIT_MS;
    int r = plait_mutex_lock(ctx.m, 0);
    if (!(may_have_starved && r == -ETIMEDOUT)) { /* (else handed to waiter 0) */
        CHECK_EQ(r, 0);
        if (r == 0)
            CHECK_EQ(plait_mutex_unlock(ctx.m), 0);
    }
    for (int i = 0; i < 3; i++)
        CHECK_EQ(plait_join(w[i], NULL, SOON()), 0);
    CHECK_EQ(ctx.n, 3);
    int seen = 0;
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(ctx.results[i], 0);
        seen |= 1 << ctx.order[i];
    }
    CHECK_EQ(seen, 7);
    CHECK_EQ(plait_mutex_lock(ctx.m, 0), 0);
    CHECK_EQ(plait_mutex_unlock(ctx.m), 0);
    CHECK_EQ(plait_mutex_destroy(ctx.m), 0);
    return NULL;
}

TEST(mutex_coroutines) { check_run(mutex_coro_main, NULL); }

/* Starvation mode: a coroutine that relocks the mutex as soon as it lets go cannot keep
 * a waiter out for ever: once the waiter has waited past 1 ms, unlock hands it over. */
typedef struct {
    plait_mutex *m;
    int stop;
    long hog_rounds;
} hog_ctx;

static void *mutex_hog(void *p)
{
    hog_ctx *h = p;
    while (!h->stop) {
        CHECK_EQ(plait_mutex_lock(h->m, SOON()), 0);
        plait_yield(); /* the waiter runs while the hog holds the mutex */
        CHECK_EQ(plait_mutex_unlock(h->m), 0);
        h->hog_rounds++;
    }
    return NULL;
}

static void *starving_main(void *p)
{
    (void)p;
    hog_ctx h = {0};
    CHECK_EQ(plait_mutex_create(&h.m), 0);
    plait_task hog;
    CHECK_EQ(plait_spawn(&hog, mutex_hog, &h), 0);
    settle(); /* the hog is in its loop */
    int64_t start = plait_now();
    CHECK_EQ(plait_mutex_lock(h.m, SOON()), 0);
    CHECK(plait_now() - start < 5 * PLAIT_SEC);
    CHECK(h.hog_rounds > 0);
    h.stop = 1;
    CHECK_EQ(plait_mutex_unlock(h.m), 0);
    CHECK_EQ(plait_join(hog, NULL, SOON()), 0);
    CHECK_EQ(plait_mutex_destroy(h.m), 0);
    return NULL;
}

TEST(mutex_no_starvation) { check_run(starving_main, NULL); }

/* The unlock hands the mutex to a waiter that has waited over 1 ms, even on its first
 * wait: the unlocker cannot take it straight back.  (Whether a waiter had waited long
 * was once decided as it began its wait, so a first wait never counted, however long.) */
static void *lock_then_unlock(void *p)
{
    int r = plait_mutex_lock(p, SOON());
    if (r == 0)
        r = plait_mutex_unlock(p);
    return ARG(r);
}

static void *handed_over_main(void *p)
{
    (void)p;
    plait_mutex *m;
    CHECK_EQ(plait_mutex_create(&m), 0);
    for (int round = 0; round < 3; round++) {
        CHECK_EQ(plait_mutex_lock(m, SOON()), 0);
        plait_task t;
        CHECK_EQ(plait_spawn(&t, lock_then_unlock, m), 0);
        CHECK_EQ(plait_sleep(20 * PLAIT_MS), 0); /* it waits 20 ms */
        CHECK_EQ(plait_mutex_unlock(m), 0);
        CHECK_EQ(plait_mutex_lock(m, 0), -ETIMEDOUT); /* it holds the mutex now */
        void *r;
        CHECK_EQ(plait_join(t, &r, SOON()), 0);
        CHECK_EQ(INT(r), 0);
    }
    CHECK_EQ(plait_mutex_destroy(m), 0);
    return NULL;
}

TEST(mutex_handed_to_a_waiter_of_over_a_millisecond) { check_run(handed_over_main, NULL); }

typedef struct {
    plait_mutex *m;
    int result;
    bool returned;
} lock_waiter_ctx;

static void *lock_waiter(void *p)
{
    lock_waiter_ctx *w = p;
    w->result = plait_mutex_lock(w->m, PLAIT_FOREVER);
    w->returned = true;
    if (w->result == 0)
        plait_mutex_unlock(w->m);
    return NULL;
}

static void *mutex_cancel_main(void *p)
{
    (void)p;
    plait_mutex *m;
    CHECK_EQ(plait_mutex_create(&m), 0);
    CHECK_EQ(plait_mutex_lock(m, 0), 0);
    lock_waiter_ctx a = {.m = m, .result = 1}, b = {.m = m, .result = 1};
    plait_task ta, tb;
    CHECK_EQ(plait_spawn(&ta, lock_waiter, &a), 0);
    CHECK_EQ(plait_spawn(&tb, lock_waiter, &b), 0);
    settle();
    CHECK(!a.returned && !b.returned);
    CHECK_EQ(plait_cancel(ta), 0); /* the first in line gives up */
    CHECK_EQ(plait_join(ta, NULL, SOON()), -ECANCELED);
    CHECK_EQ(a.result, -ECANCELED);
    CHECK(!b.returned);
    /* the cancelled waiter must not have been made owner: b gets it on unlock */
    CHECK_EQ(plait_mutex_destroy(m), -EBUSY);
    CHECK_EQ(plait_mutex_unlock(m), 0);
    CHECK_EQ(plait_join(tb, NULL, SOON()), 0);
    CHECK_EQ(b.result, 0);
    CHECK_EQ(plait_mutex_lock(m, 0), 0);

    /* a cancelled coroutine: a held mutex answers -ECANCELED at once, even with a
     * deadline; a free one is still taken (the call does not block) */
    lock_waiter_ctx c = {.m = m, .result = 1};
    plait_task tc;
    CHECK_EQ(plait_spawn(&tc, lock_waiter, &c), 0);
    CHECK_EQ(plait_cancel(tc), 0); /* before it ever runs */
    CHECK_EQ(plait_join(tc, NULL, SOON()), -ECANCELED);
    CHECK_EQ(c.result, -ECANCELED);
    CHECK_EQ(plait_mutex_unlock(m), 0);
    c.result = 1;
    CHECK_EQ(plait_spawn(&tc, lock_waiter, &c), 0);
    CHECK_EQ(plait_cancel(tc), 0);
    CHECK_EQ(plait_join(tc, NULL, SOON()), -ECANCELED);
    CHECK_EQ(c.result, 0);
    CHECK_EQ(plait_mutex_lock(m, 0), 0); /* and it unlocked it */
    CHECK_EQ(plait_mutex_unlock(m), 0);
    CHECK_EQ(plait_mutex_destroy(m), 0);
    return NULL;
}

TEST(mutex_cancel_waiter) { check_run(mutex_cancel_main, NULL); }

/* Unlock wakes a waiter to try again; a destroy right after it, before the waiter has
 * come back, must see the mutex as still waited on (the waiter is about to touch it). */
static void *destroy_after_unlock_main(void *p)
{
    (void)p;
    plait_mutex *m;
    CHECK_EQ(plait_mutex_create(&m), 0);
    CHECK_EQ(plait_mutex_lock(m, 0), 0);
    lock_waiter_ctx w = {.m = m, .result = 1};
    plait_task t;
    CHECK_EQ(plait_spawn(&t, lock_waiter, &w), 0);
    settle(); /* one scheduler: the waiter ran until it blocked in the lock */
    CHECK(!w.returned);
    CHECK_EQ(plait_mutex_unlock(m), 0); /* it is told to try again, and has not run */
    CHECK_EQ(plait_mutex_destroy(m), -EBUSY);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(w.result, 0);
    CHECK_EQ(plait_mutex_destroy(m), 0);
    return NULL;
}

TEST(mutex_destroy_while_a_waiter_tries_again) { check_run(destroy_after_unlock_main, NULL); }

/* A condition waiter locks its mutex again before it returns: while it waits (the
 * mutex unlocked, nobody queued on it), a destroy of the mutex must be refused, or the
 * waiter's relock takes freed memory (it did: the destroy said 0 and the relock spun
 * for ever on the freed lock word). */
typedef struct {
    plait_mutex *m;
    plait_cond *c;
    plait_event *waiting;
    int result;
} cond_destroy_ctx;

static void *cond_destroy_waiter(void *p)
{
    cond_destroy_ctx *x = p;
    CHECK_EQ(plait_mutex_lock(x->m, SOON()), 0);
    CHECK_EQ(plait_event_set(x->waiting), 0);
    x->result = plait_cond_wait(x->c, x->m, SOON());
    CHECK_EQ(plait_mutex_unlock(x->m), 0);
    return NULL;
}

static void *cond_destroy_main(void *p)
{
    cond_destroy_ctx *x = p;
    plait_task t;
    CHECK_EQ(plait_spawn(&t, cond_destroy_waiter, x), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    return NULL;
}

TEST(mutex_destroy_refused_during_cond_wait)
{
    for (int coroutine = 0; coroutine < 2; coroutine++) {
        cond_destroy_ctx x = {.result = 1};
        CHECK_EQ(plait_mutex_create(&x.m), 0);
        CHECK_EQ(plait_cond_create(&x.c), 0);
        CHECK_EQ(plait_event_create(&x.waiting), 0);
        pthread_t th;
        sched_thread st;
        if (coroutine)
            sched_thread_start(&st, cond_destroy_main, &x);
        else
            thread_start(&th, cond_destroy_waiter, &x);
        CHECK_EQ(plait_event_wait(x.waiting, SOON()), 0);
        CHECK_EQ(plait_mutex_lock(x.m, SOON()), 0); /* it waits on the condition now */
        CHECK_EQ(plait_mutex_unlock(x.m), 0);
        CHECK_EQ(plait_mutex_destroy(x.m), -EBUSY);
        CHECK_EQ(plait_cond_signal(x.c), 0);
        if (coroutine)
            sched_thread_join(&st);
        else
            thread_join(th);
        CHECK_EQ(x.result, 0);
        CHECK_EQ(plait_mutex_destroy(x.m), 0);
        CHECK_EQ(plait_cond_destroy(x.c), 0);
        CHECK_EQ(plait_event_destroy(x.waiting), 0);
    }
}

/* A coroutine on one scheduler thread waits for a mutex a coroutine on another
 * holds; cancelling it from a third thread leaves the mutex consistent. */
typedef struct {
    plait_mutex *m;
    plait_event *held, *waiting, *done;
    plait_task waiter_task;
    plait_event *task_known;
    atomic_int tid; /* the waiter's scheduler thread's, just before the task locks */
    int wait_result, second_result;
} xsched_mutex_ctx;

static void *xs_holder(void *p)
{
    xsched_mutex_ctx *x = p;
    CHECK_EQ(plait_mutex_lock(x->m, PLAIT_FOREVER), 0);
    CHECK_EQ(plait_event_set(x->held), 0);
    CHECK_EQ(plait_event_wait(x->done, SOON()), 0);
    CHECK_EQ(plait_mutex_unlock(x->m), 0);
    return NULL;
}

static void *xs_waiter_task(void *p)
{
    xsched_mutex_ctx *x = p;
    CHECK_EQ(plait_event_set(x->waiting), 0);
    atomic_store(&x->tid, gettid_());
    x->wait_result = plait_mutex_lock(x->m, SOON());
    if (x->wait_result == 0)
        plait_mutex_unlock(x->m);
    return NULL;
}

static void *xs_waiter(void *p)
{
    xsched_mutex_ctx *x = p;
    CHECK_EQ(plait_event_wait(x->held, SOON()), 0);
    CHECK_EQ(plait_spawn(&x->waiter_task, xs_waiter_task, x), 0);
    CHECK_EQ(plait_event_set(x->task_known), 0);
    CHECK_EQ(plait_join(x->waiter_task, NULL, SOON()), -ECANCELED);
    CHECK_EQ(x->wait_result, -ECANCELED);
    CHECK_EQ(plait_event_set(x->done), 0);
    /* the holder on the other scheduler releases it; this one gets it */
    x->second_result = plait_mutex_lock(x->m, SOON());
    if (x->second_result == 0)
        CHECK_EQ(plait_mutex_unlock(x->m), 0);
    return NULL;
}

TEST(mutex_across_schedulers_with_cancel)
{
    xsched_mutex_ctx x = {.wait_result = 1, .second_result = 1};
    CHECK_EQ(plait_mutex_create(&x.m), 0);
    CHECK_EQ(plait_event_create(&x.held), 0);
    CHECK_EQ(plait_event_create(&x.waiting), 0);
    CHECK_EQ(plait_event_create(&x.done), 0);
    CHECK_EQ(plait_event_create(&x.task_known), 0);
    sched_thread a, b;
    sched_thread_start(&a, xs_holder, &x);
    sched_thread_start(&b, xs_waiter, &x);
    CHECK_EQ(plait_event_wait(x.task_known, SOON()), 0);
    CHECK_EQ(plait_event_wait(x.waiting, SOON()), 0);
    /* its scheduler sleeps: the task waits for the mutex (its main, in join, too).  A
     * task cancelled before it locked would fail at once, and pass, without testing
     * the cancellation of a waiter */
    wait_asleep(&x.tid);
    CHECK_EQ(plait_cancel(x.waiter_task), 0);
    sched_thread_join(&a);
    sched_thread_join(&b);
    CHECK_EQ(x.second_result, 0);
    CHECK_EQ(plait_mutex_lock(x.m, 0), 0);
    CHECK_EQ(plait_mutex_unlock(x.m), 0);
    CHECK_EQ(plait_mutex_destroy(x.m), 0);
    plait_event_destroy(x.held);
    plait_event_destroy(x.waiting);
    plait_event_destroy(x.done);
    plait_event_destroy(x.task_known);
}

/* ---- stress: coroutines on two schedulers and plain threads share one counter ---- */

#define MSTRESS_CORO_PER_SCHED 4
#define MSTRESS_THREADS 2
#define MSTRESS_WORKERS (2 * MSTRESS_CORO_PER_SCHED + MSTRESS_THREADS)
#define MSTRESS_TOTAL (CHECK_SANITIZED ? 5000 : 20000)

typedef struct {
    plait_mutex *m;
    long counter;          /* guarded by m only */
    atomic_int inside;     /* parties inside the critical section: must stay <= 1 */
    atomic_int violations;
    atomic_int timeouts;
} mstress_ctx;

static mstress_ctx mstress;

static void mstress_work(uint64_t seed, bool coroutine)
{
    int per = MSTRESS_TOTAL / MSTRESS_WORKERS;
    for (int i = 0; i < per;) {
        uint32_t x = rnd(&seed);
        int64_t deadline = PLAIT_FOREVER;
        if (x % 8 == 0)
            deadline = 0;
        else if (x % 8 == 1)
            deadline = plait_deadline_in((x >> 8) % (200 * PLAIT_US));
        int r = plait_mutex_lock(mstress.m, deadline);
        if (r == -ETIMEDOUT) {
            atomic_fetch_add(&mstress.timeouts, 1);
            continue;
        }
        CHECK_EQ(r, 0);
        if (r != 0)
            return;
        if (atomic_fetch_add(&mstress.inside, 1) != 0)
            atomic_fetch_add(&mstress.violations, 1);
        mstress.counter++;
        if (coroutine && x % 16 == 2)
            plait_yield(); /* hold it across a switch: siblings must block */
        atomic_fetch_sub(&mstress.inside, 1);
        CHECK_EQ(plait_mutex_unlock(mstress.m), 0);
        i++;
    }
}

static void *mstress_coro(void *p)
{
    mstress_work((uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull + 1, true);
    return NULL;
}

static void *mstress_thread(void *p)
{
    mstress_work((uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull + 7, false);
    return NULL;
}

TEST(mutex_stress_mixed)
{
    memset(&mstress, 0, sizeof mstress);
    CHECK_EQ(plait_mutex_create(&mstress.m), 0);
    void *args[2][MSTRESS_CORO_PER_SCHED];
    spawn_set sets[2];
    sched_thread st[2];
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < MSTRESS_CORO_PER_SCHED; i++)
            args[s][i] = ARG(s * 100 + i + 1);
        sets[s] = (spawn_set){mstress_coro, args[s], MSTRESS_CORO_PER_SCHED};
        sched_thread_start(&st[s], spawn_set_main, &sets[s]);
    }
    pthread_t th[MSTRESS_THREADS];
    for (int i = 0; i < MSTRESS_THREADS; i++)
        thread_start(&th[i], mstress_thread, ARG(1000 + i));
    for (int i = 0; i < MSTRESS_THREADS; i++)
        thread_join(th[i]);
    for (int s = 0; s < 2; s++)
        sched_thread_join(&st[s]);
    CHECK_EQ(mstress.counter, (MSTRESS_TOTAL / MSTRESS_WORKERS) * MSTRESS_WORKERS);
    CHECK_EQ(atomic_load(&mstress.violations), 0);
    CHECK_EQ(plait_mutex_lock(mstress.m, 0), 0); /* nobody left holding it */
    CHECK_EQ(plait_mutex_unlock(mstress.m), 0);
    CHECK_EQ(plait_mutex_destroy(mstress.m), 0);
}

/* ======================================================================== */
/* Condition                                                                 */
/* ======================================================================== */

typedef struct {
    plait_mutex *m;
    plait_cond *c;
    int r_not_held, r_foreign, r_past, r_timed, unlock_after_past, unlock_after_timed;
    int64_t took_past, took_timed;
} cond_probe;

static void cond_probe_run(cond_probe *cp)
{
    cp->r_not_held = plait_cond_wait(cp->c, cp->m, PLAIT_FOREVER);
    CHECK_EQ(plait_mutex_lock(cp->m, 0), 0);
    int64_t start = plait_now();
    cp->r_past = plait_cond_wait(cp->c, cp->m, start - PLAIT_MS);
    cp->took_past = plait_now() - start;
    cp->unlock_after_past = plait_mutex_unlock(cp->m); /* still held */
    CHECK_EQ(plait_mutex_lock(cp->m, 0), 0);
    start = plait_now();
    cp->r_timed = plait_cond_wait(cp->c, cp->m, start + 50 * PLAIT_MS);
    cp->took_timed = plait_now() - start;
    cp->unlock_after_timed = plait_mutex_unlock(cp->m); /* held again */
}

static void check_cond_probe(const cond_probe *cp)
{
    CHECK_EQ(cp->r_not_held, -EPERM);
    CHECK_EQ(cp->r_past, -ETIMEDOUT);
    CHECK(cp->took_past < PLAIT_SEC);
    CHECK_EQ(cp->unlock_after_past, 0);
    CHECK_EQ(cp->r_timed, -ETIMEDOUT);
    CHECK(cp->took_timed >= 50 * PLAIT_MS);
    CHECK(cp->took_timed < 50 * PLAIT_MS + 2 * PLAIT_SEC);
    CHECK_EQ(cp->unlock_after_timed, 0);
}

static void *cond_probe_thread(void *p)
{
    cond_probe *cp = p;
    cp->r_foreign = plait_cond_wait(cp->c, cp->m, PLAIT_FOREVER); /* main thread holds m */
    return NULL;
}

static void *cond_probe_main(void *p)
{
    cond_probe_run(p);
    return NULL;
}

TEST(cond_basics_threads_and_coroutines)
{
    cond_probe cp = {0};
    CHECK_EQ(plait_mutex_create(&cp.m), 0);
    CHECK_EQ(plait_cond_create(&cp.c), 0);
    /* a signal with nobody waiting is not remembered */
    CHECK_EQ(plait_cond_signal(cp.c), 0);
    CHECK_EQ(plait_cond_broadcast(cp.c), 0);
    cond_probe_run(&cp); /* from this plain thread */
    check_cond_probe(&cp);

    CHECK_EQ(plait_mutex_lock(cp.m, 0), 0);
    pthread_t th;
    cp.r_foreign = 1;
    thread_start(&th, cond_probe_thread, &cp);
    thread_join(th);
    CHECK_EQ(cp.r_foreign, -EPERM); /* locked, but by someone else */
    CHECK_EQ(plait_mutex_unlock(cp.m), 0);

    memset(&cp.r_not_held, 0, sizeof cp - offsetof(cond_probe, r_not_held));
    check_run(cond_probe_main, &cp); /* from a coroutine */
    check_cond_probe(&cp);

    CHECK_EQ(plait_cond_destroy(cp.c), 0);
    CHECK_EQ(plait_mutex_destroy(cp.m), 0);
}

typedef struct {
    plait_mutex *m;
    plait_cond *c;
    int tokens;   /* guarded by m */
    int woken;    /* guarded by m */
    int waits;    /* guarded by m */
} cond_crowd;

static cond_crowd *crowd;

static void *crowd_member(void *p)
{
    (void)p;
    CHECK_EQ(plait_mutex_lock(crowd->m, SOON()), 0);
    crowd->waits++;
    int r = plait_cond_wait(crowd->c, crowd->m, SOON());
    CHECK_EQ(r, 0);
    crowd->woken++;
    CHECK_EQ(plait_mutex_unlock(crowd->m), 0); /* the wait relocked it */
    return NULL;
}

static void *cond_signal_main(void *p)
{
    (void)p;
    cond_crowd cc = {0};
    crowd = &cc;
    CHECK_EQ(plait_mutex_create(&cc.m), 0);
    CHECK_EQ(plait_cond_create(&cc.c), 0);
    enum { K = 5 };
    plait_task t[K];
    for (int i = 0; i < K; i++)
        CHECK_EQ(plait_spawn(&t[i], crowd_member, NULL), 0);
    settle();
    CHECK_EQ(cc.waits, K);
    CHECK_EQ(plait_cond_destroy(cc.c), -EBUSY);
    /* signal wakes exactly one */
    CHECK_EQ(plait_mutex_lock(cc.m, 0), 0);
    CHECK_EQ(plait_cond_signal(cc.c), 0);
    CHECK_EQ(plait_mutex_unlock(cc.m), 0);
    settle();
    CHECK_EQ(cc.woken, 1);
    /* broadcast wakes all the rest */
    CHECK_EQ(plait_cond_broadcast(cc.c), 0); /* without holding the mutex: allowed */
    settle();
    CHECK_EQ(cc.woken, K);
    for (int i = 0; i < K; i++)
        CHECK_EQ(plait_join(t[i], NULL, SOON()), 0);
    CHECK_EQ(plait_cond_destroy(cc.c), 0);
    CHECK_EQ(plait_mutex_destroy(cc.m), 0);
    return NULL;
}

TEST(cond_signal_one_broadcast_all) { check_run(cond_signal_main, NULL); }

typedef struct {
    plait_mutex *m;
    plait_cond *c;
    int result;
    int unlock_result;
    bool returned;
    int64_t deadline;
} cond_waiter_ctx;

static void *cond_waiter(void *p)
{
    cond_waiter_ctx *w = p;
    CHECK_EQ(plait_mutex_lock(w->m, PLAIT_FOREVER), 0);
    w->result = plait_cond_wait(w->c, w->m, w->deadline);
    w->returned = true;
    w->unlock_result = plait_mutex_unlock(w->m); /* 0 only if the wait relocked it */
    return NULL;
}

static void *cond_cancel_main(void *p)
{
    (void)p;
    cond_waiter_ctx w = {.result = 1, .unlock_result = 1, .deadline = PLAIT_FOREVER};
    CHECK_EQ(plait_mutex_create(&w.m), 0);
    CHECK_EQ(plait_cond_create(&w.c), 0);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, cond_waiter, &w), 0);
    settle(); /* it waits, having released the mutex */
    CHECK(!w.returned);
    CHECK_EQ(plait_mutex_lock(w.m, 0), 0);
    CHECK_EQ(plait_cancel(t), 0);
    settle(); /* cancelled, but the mutex is ours: it must wait to relock */
    CHECK(!w.returned);
    CHECK_EQ(plait_mutex_unlock(w.m), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
    CHECK(w.returned);
    CHECK_EQ(w.result, -ECANCELED);
    CHECK_EQ(w.unlock_result, 0);
    CHECK_EQ(plait_cond_destroy(w.c), 0); /* its node is gone */

    /* already cancelled: fails at once, the mutex never let go */
    CHECK_EQ(plait_cond_create(&w.c), 0);
    w = (cond_waiter_ctx){.m = w.m, .c = w.c, .result = 1, .unlock_result = 1,
                          .deadline = PLAIT_FOREVER};
    CHECK_EQ(plait_spawn(&t, cond_waiter, &w), 0);
    CHECK_EQ(plait_cancel(t), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
    CHECK_EQ(w.result, -ECANCELED);
    CHECK_EQ(w.unlock_result, 0);

    /* a deadline that expires while the mutex is held by someone else: the wait
     * still returns with the mutex locked, after the holder lets go.  Taking the mutex
     * before the deadline needs this thread not to be preempted for the whole wait;
     * on a loaded machine it may be, so the case is tried again with a longer one. */
    for (int64_t wait = 30 * PLAIT_MS;; wait *= 2) {
        if (wait > 2 * PLAIT_SEC) {
            CHECK(!"never took the mutex before the waiter's deadline");
            break;
        }
        w = (cond_waiter_ctx){.m = w.m, .c = w.c, .result = 1, .unlock_result = 1};
        int64_t start = plait_now();
        w.deadline = start + wait;
        CHECK_EQ(plait_spawn(&t, cond_waiter, &w), 0);
        settle();
        CHECK_EQ(plait_mutex_lock(w.m, SOON()), 0);
        bool in_time = plait_now() < w.deadline; /* then it cannot return until we unlock */
        if (in_time) {
            CHECK_EQ(plait_sleep_until(w.deadline + 50 * PLAIT_MS), 0);
            CHECK(!w.returned);
        }
        CHECK_EQ(plait_mutex_unlock(w.m), 0);
        CHECK_EQ(plait_join(t, NULL, SOON()), 0);
        CHECK_EQ(w.result, -ETIMEDOUT);
        CHECK_EQ(w.unlock_result, 0);
        if (in_time) {
            CHECK_TOOK(start, wait + 50 * PLAIT_MS);
            break;
        }
    }

    /* a signal racing a cancellation: whichever wins, the wait relocks */
    for (int i = 0; i < 20; i++) {
        w = (cond_waiter_ctx){.m = w.m, .c = w.c, .result = 1, .unlock_result = 1,
                              .deadline = PLAIT_FOREVER};
        CHECK_EQ(plait_spawn(&t, cond_waiter, &w), 0);
        settle();
        if (i % 2) {
            CHECK_EQ(plait_cond_signal(w.c), 0);
            CHECK_EQ(plait_cancel(t), 0);
        } else {
            CHECK_EQ(plait_cancel(t), 0);
            CHECK_EQ(plait_cond_signal(w.c), 0);
        }
        CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
        CHECK_EQ(w.result, i % 2 ? 0 : -ECANCELED); /* the first to claim decides */
        CHECK_EQ(w.unlock_result, 0);
    }

    CHECK_EQ(plait_cond_destroy(w.c), 0);
    CHECK_EQ(plait_mutex_destroy(w.m), 0);
    return NULL;
}

TEST(cond_cancel_and_timeout_relock) { check_run(cond_cancel_main, NULL); }

/* Broadcast reaches waiters of every kind: plain threads and coroutines on two
 * schedulers.  The waiters count themselves in under the mutex before waiting, so
 * once the broadcaster sees them all (holding the mutex) every one is enqueued. */
#define BCAST_THREADS 2
#define BCAST_CORO 3
#define BCAST_TOTAL (BCAST_THREADS + 2 * BCAST_CORO)

typedef struct {
    plait_mutex *m;
    plait_cond *c, *arrived;
    int waiting;   /* guarded by m */
    bool go;       /* guarded by m */
    int ok;        /* guarded by m */
    int waits;     /* guarded by m: cond_wait calls, spurious ones included */
} bcast_ctx;

static bcast_ctx bcast;

static void *bcast_waiter(void *p)
{
    (void)p;
    CHECK_EQ(plait_mutex_lock(bcast.m, SOON()), 0);
    bcast.waiting++;
    CHECK_EQ(plait_cond_signal(bcast.arrived), 0);
    int r = 0;
    while (!bcast.go && r == 0) {
        bcast.waits++;
        r = plait_cond_wait(bcast.c, bcast.m, SOON());
    }
    CHECK_EQ(r, 0);
    if (bcast.go && r == 0)
        bcast.ok++;
    CHECK_EQ(plait_mutex_unlock(bcast.m), 0);
    return NULL;
}

TEST(cond_broadcast_mixed)
{
    memset(&bcast, 0, sizeof bcast);
    CHECK_EQ(plait_mutex_create(&bcast.m), 0);
    CHECK_EQ(plait_cond_create(&bcast.c), 0);
    CHECK_EQ(plait_cond_create(&bcast.arrived), 0);
    void *args[BCAST_CORO] = {0};
    spawn_set set = {bcast_waiter, args, BCAST_CORO};
    sched_thread st[2];
    pthread_t th[BCAST_THREADS];
    for (int s = 0; s < 2; s++)
        sched_thread_start(&st[s], spawn_set_main, &set);
    for (int i = 0; i < BCAST_THREADS; i++)
        thread_start(&th[i], bcast_waiter, NULL);
    CHECK_EQ(plait_mutex_lock(bcast.m, SOON()), 0);
    int r = 0;
    while (bcast.waiting < BCAST_TOTAL && r == 0)
        r = plait_cond_wait(bcast.arrived, bcast.m, SOON());
    CHECK_EQ(r, 0);
    CHECK_EQ(bcast.waiting, BCAST_TOTAL);
    CHECK_EQ(plait_cond_destroy(bcast.c), -EBUSY); /* all of them wait on it */
    bcast.go = true;
    CHECK_EQ(plait_cond_broadcast(bcast.c), 0);
    CHECK_EQ(plait_mutex_unlock(bcast.m), 0);
    for (int i = 0; i < BCAST_THREADS; i++)
        thread_join(th[i]);
    for (int s = 0; s < 2; s++)
        sched_thread_join(&st[s]);
    CHECK_EQ(bcast.ok, BCAST_TOTAL);
    CHECK_EQ(plait_cond_destroy(bcast.c), 0);
    CHECK_EQ(plait_cond_destroy(bcast.arrived), 0);
    CHECK_EQ(plait_mutex_destroy(bcast.m), 0);
}

/* A bounded queue on mutex + two conditions, producers and consumers of every kind:
 * every item arrives exactly once. */
#define CQ_CAP 4
#define CQ_ITEMS (CHECK_SANITIZED ? 2000 : 12000)
#define CQ_PRODUCERS 4 /* 1 coroutine per scheduler + 2 threads */
#define CQ_CONSUMERS 4

typedef struct {
    plait_mutex *m;
    plait_cond *not_full, *not_empty;
    int buf[CQ_CAP], head, len;
    int producers_left;
    atomic_uchar seen[CQ_ITEMS];
    atomic_int dups, timeouts;
    atomic_long received;
} cq_ctx;

static cq_ctx cq;

/* Mostly long deadlines, a quarter of them short: timed-out waits race the signals,
 * and a timed-out wait must still come back holding the mutex. */
static int64_t cq_deadline(uint64_t *seed)
{
    uint32_t x = rnd(seed);
    return x % 4 == 0 ? plait_deadline_in((x >> 8) % (200 * PLAIT_US)) : SOON();
}

static void cq_lock(uint64_t *seed)
{
    int r;
    while ((r = plait_mutex_lock(cq.m, cq_deadline(seed))) == -ETIMEDOUT)
        atomic_fetch_add(&cq.timeouts, 1);
    CHECK_EQ(r, 0);
}

/* One wait on cond; a timeout is just another reason to look at the predicate. */
static void cq_wait(plait_cond *c, uint64_t *seed)
{
    int r = plait_cond_wait(c, cq.m, cq_deadline(seed));
    if (r == -ETIMEDOUT)
        atomic_fetch_add(&cq.timeouts, 1);
    else
        CHECK_EQ(r, 0);
}

static void *cq_producer(void *p)
{
    int id = INT(p);
    uint64_t seed = (uint64_t)(id + 1) * 0x9e3779b97f4a7c15ull;
    int per = CQ_ITEMS / CQ_PRODUCERS;
    for (int v = id * per; v < (id + 1) * per; v++) {
        cq_lock(&seed);
        while (cq.len == CQ_CAP)
            cq_wait(cq.not_full, &seed);
        cq.buf[(cq.head + cq.len++) % CQ_CAP] = v;
        CHECK_EQ(plait_cond_signal(cq.not_empty), 0);
        CHECK_EQ(plait_mutex_unlock(cq.m), 0);
    }
    cq_lock(&seed);
    if (--cq.producers_left == 0)
        CHECK_EQ(plait_cond_broadcast(cq.not_empty), 0);
    CHECK_EQ(plait_mutex_unlock(cq.m), 0);
    return NULL;
}

static void *cq_consumer(void *p)
{
    uint64_t seed = (uint64_t)(INT(p) + 50) * 0x9e3779b97f4a7c15ull;
    for (;;) {
        cq_lock(&seed);
        while (cq.len == 0 && cq.producers_left > 0)
            cq_wait(cq.not_empty, &seed);
        if (cq.len == 0) {
            CHECK_EQ(plait_mutex_unlock(cq.m), 0);
            return NULL;
        }
        int v = cq.buf[cq.head];
        cq.head = (cq.head + 1) % CQ_CAP;
        cq.len--;
        CHECK_EQ(plait_cond_signal(cq.not_full), 0);
        CHECK_EQ(plait_mutex_unlock(cq.m), 0); /* -EPERM if a wait failed to relock */
        if (v < 0 || v >= CQ_ITEMS || atomic_fetch_add(&cq.seen[v], 1) != 0)
            atomic_fetch_add(&cq.dups, 1);
        atomic_fetch_add(&cq.received, 1);
    }
}

static void *cq_sched(void *p)
{
    int id = INT(p);
    plait_task prod, cons;
    CHECK_EQ(plait_spawn(&prod, cq_producer, ARG(id)), 0);
    CHECK_EQ(plait_spawn(&cons, cq_consumer, ARG(id)), 0);
    CHECK_EQ(plait_join(prod, NULL, plait_deadline_in(60 * PLAIT_SEC)), 0);
    CHECK_EQ(plait_join(cons, NULL, plait_deadline_in(60 * PLAIT_SEC)), 0);
    return NULL;
}

TEST(cond_queue_mixed)
{
    memset(&cq, 0, sizeof cq);
    cq.producers_left = CQ_PRODUCERS;
    CHECK_EQ(plait_mutex_create(&cq.m), 0);
    CHECK_EQ(plait_cond_create(&cq.not_full), 0);
    CHECK_EQ(plait_cond_create(&cq.not_empty), 0);
    sched_thread st[2];
    pthread_t prod[2], cons[2];
    for (int s = 0; s < 2; s++)
        sched_thread_start(&st[s], cq_sched, ARG(s));
    for (int i = 0; i < 2; i++) {
        thread_start(&prod[i], cq_producer, ARG(2 + i));
        thread_start(&cons[i], cq_consumer, ARG(2 + i));
    }
    for (int i = 0; i < 2; i++) {
        thread_join(prod[i]);
        thread_join(cons[i]);
    }
    for (int s = 0; s < 2; s++)
        sched_thread_join(&st[s]);
    int per = CQ_ITEMS / CQ_PRODUCERS;
    CHECK_EQ(atomic_load(&cq.received), per * CQ_PRODUCERS);
    CHECK_EQ(atomic_load(&cq.dups), 0);
    int missing = 0;
    for (int v = 0; v < per * CQ_PRODUCERS; v++)
        missing += atomic_load(&cq.seen[v]) != 1;
    CHECK_EQ(missing, 0);
    if (getenv("PLAIT_TEST_VERBOSE"))
        printf("     %d timeouts\n", atomic_load(&cq.timeouts));
    CHECK_EQ(plait_cond_destroy(cq.not_full), 0);
    CHECK_EQ(plait_cond_destroy(cq.not_empty), 0);
    CHECK_EQ(plait_mutex_destroy(cq.m), 0);
}

/* ======================================================================== */
/* Semaphore                                                                 */
/* ======================================================================== */

typedef struct {
    plait_sem *s;
    int result;
    bool returned;
} sem_waiter_ctx;

static void *sem_waiter(void *p)
{
    sem_waiter_ctx *w = p;
    w->result = plait_sem_acquire(w->s, PLAIT_FOREVER);
    w->returned = true;
    return NULL;
}

static void sem_deadlines(plait_sem *s)
{
    CHECK_EQ(plait_sem_value(s), 0);
    int64_t start = plait_now();
    CHECK_EQ(plait_sem_acquire(s, 0), -ETIMEDOUT);
    CHECK_EQ(plait_sem_acquire(s, start - PLAIT_SEC), -ETIMEDOUT);
    CHECK_EQ(plait_sem_acquire(s, -1), -ETIMEDOUT);
    CHECK_EQ(plait_sem_acquire(s, INT64_MIN), -ETIMEDOUT);
    CHECK_PROMPT(start);
    start = plait_now();
    CHECK_EQ(plait_sem_acquire(s, start + 50 * PLAIT_MS), -ETIMEDOUT);
    CHECK_TOOK(start, 50 * PLAIT_MS);
    CHECK_EQ(plait_sem_value(s), 0);
}

static void *sem_coro_main(void *p)
{
    (void)p;
    plait_sem *s;
    CHECK_EQ(plait_sem_create(&s, 2), 0);
    CHECK_EQ(plait_sem_value(s), 2);
    CHECK_EQ(plait_sem_acquire(s, 0), 0); /* a past deadline still takes a permit */
    CHECK_EQ(plait_sem_acquire(s, PLAIT_FOREVER), 0);
    sem_deadlines(s);

    /* a release with a waiter hands the permit over instead of counting it */
    sem_waiter_ctx a = {.s = s, .result = 1}, b = {.s = s, .result = 1};
    plait_task ta, tb;
    CHECK_EQ(plait_spawn(&ta, sem_waiter, &a), 0);
    CHECK_EQ(plait_spawn(&tb, sem_waiter, &b), 0);
    settle();
    CHECK(!a.returned && !b.returned);
    CHECK_EQ(plait_sem_destroy(s), -EBUSY);
    CHECK_EQ(plait_sem_release(s), 0);
    CHECK_EQ(plait_sem_value(s), 0);
    CHECK_EQ(plait_sem_acquire(s, 0), -ETIMEDOUT); /* cannot steal it back */
    CHECK_EQ(plait_join(ta, NULL, SOON()), 0);
    CHECK_EQ(a.result, 0);
    CHECK(!b.returned);

    /* cancel the remaining waiter: it takes no permit with it */
    CHECK_EQ(plait_cancel(tb), 0);
    CHECK_EQ(plait_join(tb, NULL, SOON()), -ECANCELED);
    CHECK_EQ(b.result, -ECANCELED);
    CHECK_EQ(plait_sem_release(s), 0);
    CHECK_EQ(plait_sem_value(s), 1);

    /* a release that reached the waiter first wins over a later cancellation */
    CHECK_EQ(plait_sem_acquire(s, 0), 0);
    b = (sem_waiter_ctx){.s = s, .result = 1};
    CHECK_EQ(plait_spawn(&tb, sem_waiter, &b), 0);
    settle();
    CHECK_EQ(plait_sem_release(s), 0);
    CHECK_EQ(plait_cancel(tb), 0);
    CHECK_EQ(plait_join(tb, NULL, SOON()), -ECANCELED); /* the task was cancelled */
    CHECK_EQ(b.result, 0);                              /* but its acquire succeeded */
    CHECK_EQ(plait_sem_value(s), 0);                    /* and holds the permit */

    /* a cancelled coroutine still takes a free permit, but never waits */
    CHECK_EQ(plait_sem_release(s), 0);
    b = (sem_waiter_ctx){.s = s, .result = 1};
    CHECK_EQ(plait_spawn(&tb, sem_waiter, &b), 0);
    CHECK_EQ(plait_cancel(tb), 0);
    CHECK_EQ(plait_join(tb, NULL, SOON()), -ECANCELED);
    CHECK_EQ(b.result, 0);
    b = (sem_waiter_ctx){.s = s, .result = 1};
    CHECK_EQ(plait_spawn(&tb, sem_waiter, &b), 0);
    CHECK_EQ(plait_cancel(tb), 0);
    CHECK_EQ(plait_join(tb, NULL, SOON()), -ECANCELED);
    CHECK_EQ(b.result, -ECANCELED);
    CHECK_EQ(plait_sem_value(s), 0);
    CHECK_EQ(plait_sem_destroy(s), 0);
    return NULL;
}

TEST(sem_coroutines) { check_run(sem_coro_main, NULL); }

typedef struct {
    plait_sem *s;
    int result;
    atomic_int tid; /* the thread's, just before it acquires */
} sem_thread_ctx;

static void *sem_thread_waiter(void *p)
{
    sem_thread_ctx *t = p;
    atomic_store(&t->tid, gettid_());
    t->result = plait_sem_acquire(t->s, SOON());
    return NULL;
}

TEST(sem_threads)
{
    plait_sem *s;
    CHECK_EQ(plait_sem_create(&s, 0), 0);
    sem_deadlines(s);
    sem_thread_ctx t = {.s = s, .result = 1};
    pthread_t th;
    thread_start(&th, sem_thread_waiter, &t);
    /* it sleeps in its acquire, which the release must wake (released before it
     * tried, it would take a free permit, and pass) */
    wait_asleep(&t.tid);
    CHECK_EQ(plait_sem_release(s), 0);
    thread_join(th);
    CHECK_EQ(t.result, 0);
    CHECK_EQ(plait_sem_value(s), 0);

    /* the count tops out at UINT32_MAX; the value reads as INT32_MAX beyond that */
    plait_sem *big;
    CHECK_EQ(plait_sem_create(&big, UINT32_MAX), 0);
    CHECK_EQ(plait_sem_value(big), INT32_MAX);
    CHECK_EQ(plait_sem_release(big), -EOVERFLOW);
    CHECK_EQ(plait_sem_value(big), INT32_MAX);
    CHECK_EQ(plait_sem_acquire(big, 0), 0);
    CHECK_EQ(plait_sem_release(big), 0);
    CHECK_EQ(plait_sem_release(big), -EOVERFLOW);
    CHECK_EQ(plait_sem_destroy(big), 0);
    CHECK_EQ(plait_sem_create(&big, (unsigned)INT32_MAX + 1u), 0);
    CHECK_EQ(plait_sem_value(big), INT32_MAX);
    CHECK_EQ(plait_sem_acquire(big, 0), 0);
    CHECK_EQ(plait_sem_value(big), INT32_MAX);
    CHECK_EQ(plait_sem_acquire(big, 0), 0);
    CHECK_EQ(plait_sem_value(big), INT32_MAX - 1);
    CHECK_EQ(plait_sem_destroy(big), 0);

    CHECK_EQ(plait_sem_destroy(s), 0);
}

/* Strict ping-pong through two semaphores: between a plain thread and a coroutine,
 * and between coroutines on two schedulers.  The turn counter is plain memory: the
 * semaphores are what orders it. */
#define PP_ROUNDS (CHECK_SANITIZED ? 500 : 3000)

typedef struct {
    plait_sem *to_b, *to_a;
    int turn;
} pingpong_ctx;

static void *ping_side(void *p)
{
    pingpong_ctx *pp = p;
    for (int i = 0; i < PP_ROUNDS; i++) {
        CHECK_EQ(pp->turn, 2 * i);
        pp->turn = 2 * i + 1;
        CHECK_EQ(plait_sem_release(pp->to_b), 0);
        int r = plait_sem_acquire(pp->to_a, SOON());
        CHECK_EQ(r, 0);
        if (r)
            return NULL;
    }
    return NULL;
}

static void *pong_side(void *p)
{
    pingpong_ctx *pp = p;
    for (int i = 0; i < PP_ROUNDS; i++) {
        int r = plait_sem_acquire(pp->to_b, SOON());
        CHECK_EQ(r, 0);
        if (r)
            return NULL;
        CHECK_EQ(pp->turn, 2 * i + 1);
        pp->turn = 2 * i + 2;
        CHECK_EQ(plait_sem_release(pp->to_a), 0);
    }
    return NULL;
}

TEST(sem_pingpong_across_models)
{
    pingpong_ctx pp = {0};
    CHECK_EQ(plait_sem_create(&pp.to_b, 0), 0);
    CHECK_EQ(plait_sem_create(&pp.to_a, 0), 0);
    /* thread pings, coroutine pongs */
    pthread_t th;
    thread_start(&th, ping_side, &pp);
    check_run(pong_side, &pp);
    thread_join(th);
    CHECK_EQ(pp.turn, 2 * PP_ROUNDS);
    /* coroutine pings, thread pongs */
    pp.turn = 0;
    thread_start(&th, pong_side, &pp);
    check_run(ping_side, &pp);
    thread_join(th);
    CHECK_EQ(pp.turn, 2 * PP_ROUNDS);
    /* coroutines on two schedulers */
    pp.turn = 0;
    sched_thread a, b;
    sched_thread_start(&a, ping_side, &pp);
    sched_thread_start(&b, pong_side, &pp);
    sched_thread_join(&a);
    sched_thread_join(&b);
    CHECK_EQ(pp.turn, 2 * PP_ROUNDS);
    CHECK_EQ(plait_sem_value(pp.to_a), 0);
    CHECK_EQ(plait_sem_value(pp.to_b), 0);
    CHECK_EQ(plait_sem_destroy(pp.to_a), 0);
    CHECK_EQ(plait_sem_destroy(pp.to_b), 0);
}

/* A semaphore as a limiter: never more than LIMIT parties inside at once. */
#define LIM_LIMIT 3
#define LIM_ROUNDS (CHECK_SANITIZED ? 100 : 400)
#define LIM_CORO 4
#define LIM_THREADS 2

typedef struct {
    plait_sem *s;
    atomic_int inside, max_inside, done, timeouts;
} limiter_ctx;

static limiter_ctx lim;

static void limiter_work(uint64_t seed, bool coroutine)
{
    for (int i = 0; i < LIM_ROUNDS;) {
        uint32_t x = rnd(&seed);
        int64_t deadline = x % 4 == 0 ? plait_deadline_in((x >> 8) % (100 * PLAIT_US))
                                      : PLAIT_FOREVER;
        int r = plait_sem_acquire(lim.s, deadline);
        if (r == -ETIMEDOUT) {
            atomic_fetch_add(&lim.timeouts, 1);
            continue;
        }
        CHECK_EQ(r, 0);
        if (r)
            return;
        int now = atomic_fetch_add(&lim.inside, 1) + 1;
        int max = atomic_load(&lim.max_inside);
        while (now > max && !atomic_compare_exchange_weak(&lim.max_inside, &max, now))
            ;
        if (coroutine)
            plait_yield();
        else
            sched_yield();
        atomic_fetch_sub(&lim.inside, 1);
        CHECK_EQ(plait_sem_release(lim.s), 0);
        atomic_fetch_add(&lim.done, 1);
        i++;
    }
}

static void *limiter_coro(void *p)
{
    limiter_work((uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull + 3, true);
    return NULL;
}

static void *limiter_thread(void *p)
{
    limiter_work((uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull + 5, false);
    return NULL;
}

TEST(sem_limiter_mixed)
{
    memset(&lim, 0, sizeof lim);
    CHECK_EQ(plait_sem_create(&lim.s, LIM_LIMIT), 0);
    void *args[2][LIM_CORO];
    spawn_set sets[2];
    sched_thread st[2];
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < LIM_CORO; i++)
            args[s][i] = ARG(s * 10 + i + 1);
        sets[s] = (spawn_set){limiter_coro, args[s], LIM_CORO};
        sched_thread_start(&st[s], spawn_set_main, &sets[s]);
    }
    pthread_t th[LIM_THREADS];
    for (int i = 0; i < LIM_THREADS; i++)
        thread_start(&th[i], limiter_thread, ARG(100 + i));
    for (int i = 0; i < LIM_THREADS; i++)
        thread_join(th[i]);
    for (int s = 0; s < 2; s++)
        sched_thread_join(&st[s]);
    CHECK_EQ(atomic_load(&lim.done), (2 * LIM_CORO + LIM_THREADS) * LIM_ROUNDS);
    CHECK(atomic_load(&lim.max_inside) >= 1);
    CHECK(atomic_load(&lim.max_inside) <= LIM_LIMIT);
    CHECK_EQ(plait_sem_value(lim.s), LIM_LIMIT); /* every permit came back */
    CHECK_EQ(plait_sem_destroy(lim.s), 0);
}

/* ======================================================================== */
/* Event                                                                     */
/* ======================================================================== */

static void event_deadlines(plait_event *e)
{
    CHECK_EQ(plait_event_is_set(e), 0);
    int64_t start = plait_now();
    CHECK_EQ(plait_event_wait(e, 0), -ETIMEDOUT);
    CHECK_EQ(plait_event_wait(e, start - PLAIT_SEC), -ETIMEDOUT);
    CHECK_EQ(plait_event_wait(e, INT64_MIN), -ETIMEDOUT);
    CHECK_PROMPT(start);
    start = plait_now();
    CHECK_EQ(plait_event_wait(e, start + 50 * PLAIT_MS), -ETIMEDOUT);
    CHECK_TOOK(start, 50 * PLAIT_MS);
}

typedef struct {
    plait_event *e;
    int result;
    bool returned;
} event_waiter_ctx;

static void *event_waiter(void *p)
{
    event_waiter_ctx *w = p;
    w->result = plait_event_wait(w->e, PLAIT_FOREVER);
    w->returned = true;
    return NULL;
}

static void *event_coro_main(void *p)
{
    (void)p;
    plait_event *e;
    CHECK_EQ(plait_event_create(&e), 0);
    event_deadlines(e);
    event_waiter_ctx w[4];
    plait_task t[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (event_waiter_ctx){.e = e, .result = 1};
        CHECK_EQ(plait_spawn(&t[i], event_waiter, &w[i]), 0);
    }
    settle();
    for (int i = 0; i < 4; i++)
        CHECK(!w[i].returned);
    CHECK_EQ(plait_event_destroy(e), -EBUSY);
    /* cancel one; the others still wake on set */
    CHECK_EQ(plait_cancel(t[1]), 0);
    CHECK_EQ(plait_join(t[1], NULL, SOON()), -ECANCELED);
    CHECK_EQ(w[1].result, -ECANCELED);
    CHECK(!w[0].returned && !w[2].returned && !w[3].returned);
    CHECK_EQ(plait_event_set(e), 0);
    CHECK_EQ(plait_event_reset(e), 0); /* a reset right after set: the waiters were woken */
    for (int i = 0; i < 4; i++) {
        if (i == 1)
            continue;
        CHECK_EQ(plait_join(t[i], NULL, SOON()), 0);
        CHECK_EQ(w[i].result, 0);
    }
    /* set lets every later wait through until reset */
    CHECK_EQ(plait_event_set(e), 0);
    CHECK_EQ(plait_event_set(e), 0); /* twice is harmless */
    CHECK_EQ(plait_event_is_set(e), 1);
    CHECK_EQ(plait_event_wait(e, 0), 0);
    CHECK_EQ(plait_event_wait(e, PLAIT_FOREVER), 0);
    CHECK_EQ(plait_event_reset(e), 0);
    CHECK_EQ(plait_event_reset(e), 0);
    event_deadlines(e);
    /* a cancelled coroutine passes a set event, and fails at once on a reset one */
    CHECK_EQ(plait_event_set(e), 0);
    w[0] = (event_waiter_ctx){.e = e, .result = 1};
    CHECK_EQ(plait_spawn(&t[0], event_waiter, &w[0]), 0);
    CHECK_EQ(plait_cancel(t[0]), 0);
    CHECK_EQ(plait_join(t[0], NULL, SOON()), -ECANCELED);
    CHECK_EQ(w[0].result, 0);
    CHECK_EQ(plait_event_reset(e), 0);
    w[0] = (event_waiter_ctx){.e = e, .result = 1};
    CHECK_EQ(plait_spawn(&t[0], event_waiter, &w[0]), 0);
    CHECK_EQ(plait_cancel(t[0]), 0);
    CHECK_EQ(plait_join(t[0], NULL, SOON()), -ECANCELED);
    CHECK_EQ(w[0].result, -ECANCELED);
    CHECK_EQ(plait_event_destroy(e), 0);
    return NULL;
}

TEST(event_coroutines) { check_run(event_coro_main, NULL); }

/* Plain threads and coroutines on two schedulers wait; a coroutine sets. */
#define EV_THREADS 2
#define EV_CORO 2

typedef struct {
    plait_event *e;
    plait_waitgroup *ready;
    atomic_int woke;
    atomic_int arrived;
    /* each waiter's thread's (a plain one's, or its scheduler's), just before it waits */
    atomic_int tids[EV_THREADS + 2 * EV_CORO];
} event_mixed_ctx;

static event_mixed_ctx evm;

static void *evm_waiter(void *p)
{
    (void)p;
    CHECK_EQ(plait_waitgroup_done(evm.ready), 0);
    atomic_store(&evm.tids[atomic_fetch_add(&evm.arrived, 1)], gettid_());
    int r = plait_event_wait(evm.e, SOON());
    CHECK_EQ(r, 0);
    if (r == 0)
        atomic_fetch_add(&evm.woke, 1);
    return NULL;
}

static void *evm_setter(void *p)
{
    (void)p;
    CHECK_EQ(plait_waitgroup_wait(evm.ready, SOON()), 0);
    /* every one waits: each plain thread sleeps, and each scheduler (its coroutines
     * and its main all wait).  Set before they waited, the event would let them
     * through at once, and pass, without testing the wake-up */
    for (int i = 0; i < EV_THREADS + 2 * EV_CORO; i++)
        wait_asleep(&evm.tids[i]);
    CHECK_EQ(plait_event_set(evm.e), 0);
    return NULL;
}

TEST(event_mixed)
{
    memset(&evm, 0, sizeof evm);
    CHECK_EQ(plait_event_create(&evm.e), 0);
    event_deadlines(evm.e); /* from a plain thread */
    CHECK_EQ(plait_waitgroup_create(&evm.ready), 0);
    CHECK_EQ(plait_waitgroup_add(evm.ready, EV_THREADS + 2 * EV_CORO), 0);
    void *args[EV_CORO] = {0};
    spawn_set set = {evm_waiter, args, EV_CORO};
    sched_thread st[2], setter;
    for (int s = 0; s < 2; s++)
        sched_thread_start(&st[s], spawn_set_main, &set);
    pthread_t th[EV_THREADS];
    for (int i = 0; i < EV_THREADS; i++)
        thread_start(&th[i], evm_waiter, NULL);
    sched_thread_start(&setter, evm_setter, NULL);
    sched_thread_join(&setter);
    for (int i = 0; i < EV_THREADS; i++)
        thread_join(th[i]);
    for (int s = 0; s < 2; s++)
        sched_thread_join(&st[s]);
    CHECK_EQ(atomic_load(&evm.woke), EV_THREADS + 2 * EV_CORO);
    CHECK_EQ(plait_event_is_set(evm.e), 1);
    CHECK_EQ(plait_event_destroy(evm.e), 0);
    CHECK_EQ(plait_waitgroup_destroy(evm.ready), 0);
}

/* Repeated set/reset rounds between a thread and a coroutine on another scheduler:
 * every round's wait ends, none is missed. */
#define EVR_ROUNDS (CHECK_SANITIZED ? 300 : 2000)

typedef struct {
    plait_event *ping, *pong;
    int rounds_seen;
} event_rounds_ctx;

static void *evr_thread(void *p)
{
    event_rounds_ctx *r = p;
    for (int i = 0; i < EVR_ROUNDS; i++) {
        int rc = plait_event_wait(r->ping, SOON());
        CHECK_EQ(rc, 0);
        if (rc)
            return NULL;
        CHECK_EQ(plait_event_reset(r->ping), 0);
        r->rounds_seen++;
        CHECK_EQ(plait_event_set(r->pong), 0);
    }
    return NULL;
}

static void *evr_coro(void *p)
{
    event_rounds_ctx *r = p;
    for (int i = 0; i < EVR_ROUNDS; i++) {
        CHECK_EQ(plait_event_set(r->ping), 0);
        int rc = plait_event_wait(r->pong, SOON());
        CHECK_EQ(rc, 0);
        if (rc)
            return NULL;
        CHECK_EQ(plait_event_reset(r->pong), 0);
        CHECK_EQ(r->rounds_seen, i + 1);
    }
    return NULL;
}

TEST(event_rounds_thread_coroutine)
{
    event_rounds_ctx r = {0};
    CHECK_EQ(plait_event_create(&r.ping), 0);
    CHECK_EQ(plait_event_create(&r.pong), 0);
    pthread_t th;
    thread_start(&th, evr_thread, &r);
    check_run(evr_coro, &r);
    thread_join(th);
    CHECK_EQ(r.rounds_seen, EVR_ROUNDS);
    CHECK_EQ(plait_event_destroy(r.ping), 0);
    CHECK_EQ(plait_event_destroy(r.pong), 0);
}

/* ======================================================================== */
/* Wait group                                                                */
/* ======================================================================== */

static void wg_deadlines(plait_waitgroup *wg)
{
    int64_t start = plait_now();
    CHECK_EQ(plait_waitgroup_wait(wg, 0), -ETIMEDOUT);
    CHECK_EQ(plait_waitgroup_wait(wg, start - PLAIT_SEC), -ETIMEDOUT);
    CHECK_PROMPT(start);
    start = plait_now();
    CHECK_EQ(plait_waitgroup_wait(wg, start + 50 * PLAIT_MS), -ETIMEDOUT);
    CHECK_TOOK(start, 50 * PLAIT_MS);
}

TEST(waitgroup_counts)
{
    plait_waitgroup *wg;
    CHECK_EQ(plait_waitgroup_create(&wg), 0);
    CHECK_EQ(plait_waitgroup_wait(wg, 0), 0); /* zero: passes, even without time */
    CHECK_EQ(plait_waitgroup_wait(wg, PLAIT_FOREVER), 0);
    CHECK_EQ(plait_waitgroup_done(wg), -EINVAL); /* below zero */
    CHECK_EQ(plait_waitgroup_add(wg, -1), -EINVAL);
    CHECK_EQ(plait_waitgroup_wait(wg, 0), 0);    /* unchanged */
    CHECK_EQ(plait_waitgroup_add(wg, 0), 0);
    CHECK_EQ(plait_waitgroup_add(wg, 2), 0);
    wg_deadlines(wg);
    CHECK_EQ(plait_waitgroup_add(wg, -3), -EINVAL); /* refused whole: still 2 */
    CHECK_EQ(plait_waitgroup_done(wg), 0);
    CHECK_EQ(plait_waitgroup_wait(wg, 0), -ETIMEDOUT);
    /* in use with nobody waiting: a done() is still to come (it was freed, and that
     * done() wrote freed memory) */
    CHECK_EQ(plait_waitgroup_destroy(wg), -EBUSY);
    CHECK_EQ(plait_waitgroup_done(wg), 0);
    CHECK_EQ(plait_waitgroup_wait(wg, 0), 0);
    CHECK_EQ(plait_waitgroup_done(wg), -EINVAL);
    /* the top end */
    CHECK_EQ(plait_waitgroup_add(wg, INT32_MAX), 0);
    CHECK_EQ(plait_waitgroup_add(wg, 1), -EOVERFLOW);
    CHECK_EQ(plait_waitgroup_add(wg, INT32_MAX), -EOVERFLOW);
    CHECK_EQ(plait_waitgroup_add(wg, -INT32_MAX), 0);
    CHECK_EQ(plait_waitgroup_wait(wg, 0), 0);
    CHECK_EQ(plait_waitgroup_add(wg, INT32_MIN), -EINVAL);
    CHECK_EQ(plait_waitgroup_add(wg, 1), 0);
    CHECK_EQ(plait_waitgroup_add(wg, INT32_MIN), -EINVAL);
    CHECK_EQ(plait_waitgroup_done(wg), 0);
    CHECK_EQ(plait_waitgroup_wait(wg, 0), 0);
    CHECK_EQ(plait_waitgroup_destroy(wg), 0);
}

typedef struct {
    plait_waitgroup *wg;
    int result;
    bool returned;
} wg_waiter_ctx;

static void *wg_waiter(void *p)
{
    wg_waiter_ctx *w = p;
    w->result = plait_waitgroup_wait(w->wg, PLAIT_FOREVER);
    w->returned = true;
    return NULL;
}

static void *wg_coro_main(void *p)
{
    (void)p;
    plait_waitgroup *wg;
    CHECK_EQ(plait_waitgroup_create(&wg), 0);
    CHECK_EQ(plait_waitgroup_add(wg, 3), 0);
    wg_deadlines(wg);
    wg_waiter_ctx w[3];
    plait_task t[3];
    for (int i = 0; i < 3; i++) {
        w[i] = (wg_waiter_ctx){.wg = wg, .result = 1};
        CHECK_EQ(plait_spawn(&t[i], wg_waiter, &w[i]), 0);
    }
    settle();
    CHECK_EQ(plait_waitgroup_destroy(wg), -EBUSY);
    CHECK_EQ(plait_cancel(t[2]), 0);
    CHECK_EQ(plait_join(t[2], NULL, SOON()), -ECANCELED);
    CHECK_EQ(w[2].result, -ECANCELED);
    CHECK_EQ(plait_waitgroup_done(wg), 0);
    CHECK_EQ(plait_waitgroup_done(wg), 0);
    settle();
    CHECK(!w[0].returned && !w[1].returned); /* one left */
    CHECK_EQ(plait_waitgroup_add(wg, -2), -EINVAL);
    CHECK_EQ(plait_waitgroup_done(wg), 0);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(plait_join(t[i], NULL, SOON()), 0);
        CHECK_EQ(w[i].result, 0);
    }
    /* a cancelled coroutine passes a zero wait group, fails at once on a busy one */
    w[0] = (wg_waiter_ctx){.wg = wg, .result = 1};
    CHECK_EQ(plait_spawn(&t[0], wg_waiter, &w[0]), 0);
    CHECK_EQ(plait_cancel(t[0]), 0);
    CHECK_EQ(plait_join(t[0], NULL, SOON()), -ECANCELED);
    CHECK_EQ(w[0].result, 0);
    CHECK_EQ(plait_waitgroup_add(wg, 1), 0);
    w[0] = (wg_waiter_ctx){.wg = wg, .result = 1};
    CHECK_EQ(plait_spawn(&t[0], wg_waiter, &w[0]), 0);
    CHECK_EQ(plait_cancel(t[0]), 0);
    CHECK_EQ(plait_join(t[0], NULL, SOON()), -ECANCELED);
    CHECK_EQ(w[0].result, -ECANCELED);
    CHECK_EQ(plait_waitgroup_done(wg), 0);
    CHECK_EQ(plait_waitgroup_destroy(wg), 0);
    return NULL;
}

TEST(waitgroup_coroutines) { check_run(wg_coro_main, NULL); }

/* Workers of every kind finish; waiters of every kind wake, once the last is done. */
#define WGM_CORO 3
#define WGM_THREADS 2
#define WGM_WORKERS (2 * WGM_CORO + WGM_THREADS)

typedef struct {
    plait_waitgroup *wg;
    atomic_int finished;
    atomic_int early; /* waiters that woke before every worker finished */
    atomic_int woke;
} wg_mixed_ctx;

static wg_mixed_ctx wgm;

static void *wgm_worker(void *p)
{
    uint64_t seed = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull + 11;
    int n = (int)(rnd(&seed) % 5);
    for (int i = 0; i < n; i++) {
        if (plait_in_coroutine())
            plait_yield();
        else
            sched_yield();
    }
    atomic_fetch_add(&wgm.finished, 1);
    CHECK_EQ(plait_waitgroup_done(wgm.wg), 0);
    return NULL;
}

static void *wgm_waiter(void *p)
{
    (void)p;
    int r = plait_waitgroup_wait(wgm.wg, SOON());
    CHECK_EQ(r, 0);
    if (atomic_load(&wgm.finished) != WGM_WORKERS)
        atomic_fetch_add(&wgm.early, 1);
    atomic_fetch_add(&wgm.woke, 1);
    return NULL;
}

static void *wgm_sched(void *p)
{
    int id = INT(p);
    plait_task t[WGM_CORO + 1];
    CHECK_EQ(plait_spawn(&t[0], wgm_waiter, NULL), 0);
    for (int i = 0; i < WGM_CORO; i++)
        CHECK_EQ(plait_spawn(&t[i + 1], wgm_worker, ARG(id * 10 + i + 1)), 0);
    for (int i = 0; i <= WGM_CORO; i++)
        CHECK_EQ(plait_join(t[i], NULL, SOON()), 0);
    return NULL;
}

TEST(waitgroup_mixed)
{
    for (int round = 0; round < 20; round++) {
        memset(&wgm, 0, sizeof wgm);
        CHECK_EQ(plait_waitgroup_create(&wgm.wg), 0);
        CHECK_EQ(plait_waitgroup_add(wgm.wg, WGM_WORKERS), 0);
        sched_thread st[2];
        pthread_t workers[WGM_THREADS], waiter;
        thread_start(&waiter, wgm_waiter, NULL);
        for (int s = 0; s < 2; s++)
            sched_thread_start(&st[s], wgm_sched, ARG(round * 100 + s * 50));
        for (int i = 0; i < WGM_THREADS; i++)
            thread_start(&workers[i], wgm_worker, ARG(round * 100 + 90 + i));
        CHECK_EQ(plait_waitgroup_wait(wgm.wg, SOON()), 0); /* this thread waits too */
        CHECK_EQ(atomic_load(&wgm.finished), WGM_WORKERS);
        thread_join(waiter);
        for (int i = 0; i < WGM_THREADS; i++)
            thread_join(workers[i]);
        for (int s = 0; s < 2; s++)
            sched_thread_join(&st[s]);
        CHECK_EQ(atomic_load(&wgm.woke), 3);
        CHECK_EQ(atomic_load(&wgm.early), 0);
        CHECK_EQ(plait_waitgroup_destroy(wgm.wg), 0);
    }
}

/* ======================================================================== */
/* Whole-scheduler behaviour                                                 */
/* ======================================================================== */

/* Coroutines still blocked when main returns are cancelled out of their waits; every
 * primitive is left consistent (nothing holds, nothing waits). */
typedef struct {
    plait_mutex *m;
    plait_cond *c;
    plait_sem *s;
    plait_event *e;
    plait_waitgroup *wg;
    int results[5];
    int cond_unlock, lock_unlock;
} leftovers_ctx;

static void *left_lock(void *p)
{
    leftovers_ctx *l = p;
    l->results[0] = plait_mutex_lock(l->m, PLAIT_FOREVER);
    if (l->results[0] == 0)
        l->lock_unlock = plait_mutex_unlock(l->m); /* cancelled, it can still let go */
    return NULL;
}

static void *left_cond(void *p)
{
    leftovers_ctx *l = p;
    static plait_mutex *cm;
    CHECK_EQ(plait_mutex_create(&cm), 0);
    CHECK_EQ(plait_mutex_lock(cm, 0), 0);
    l->results[1] = plait_cond_wait(l->c, cm, PLAIT_FOREVER);
    l->cond_unlock = plait_mutex_unlock(cm);
    CHECK_EQ(plait_mutex_destroy(cm), 0);
    return NULL;
}

static void *left_sem(void *p)
{
    leftovers_ctx *l = p;
    l->results[2] = plait_sem_acquire(l->s, PLAIT_FOREVER);
    return NULL;
}

static void *left_event(void *p)
{
    leftovers_ctx *l = p;
    l->results[3] = plait_event_wait(l->e, PLAIT_FOREVER);
    return NULL;
}

static void *left_wg(void *p)
{
    leftovers_ctx *l = p;
    l->results[4] = plait_waitgroup_wait(l->wg, plait_deadline_in(60 * PLAIT_SEC));
    return NULL;
}

static void *leaves_waiters(void *p)
{
    leftovers_ctx *l = p;
    CHECK_EQ(plait_mutex_lock(l->m, 0), 0);
    plait_fn fns[5] = {left_lock, left_cond, left_sem, left_event, left_wg};
    for (int i = 0; i < 5; i++)
        CHECK_EQ(plait_spawn(NULL, fns[i], l), 0);
    settle();
    CHECK_EQ(plait_mutex_unlock(l->m), 0); /* wakes left_lock's waiter to try again... */
    return NULL; /* ...which is cancelled before it runs, yet takes the free mutex:
                  * taking a free mutex does not block, so cancellation does not stop it */
}

TEST(main_returns_with_waiters)
{
    leftovers_ctx l = {.results = {1, 1, 1, 1, 1}, .cond_unlock = 1, .lock_unlock = 1};
    CHECK_EQ(plait_mutex_create(&l.m), 0);
    CHECK_EQ(plait_cond_create(&l.c), 0);
    CHECK_EQ(plait_sem_create(&l.s, 0), 0);
    CHECK_EQ(plait_event_create(&l.e), 0);
    CHECK_EQ(plait_waitgroup_create(&l.wg), 0);
    CHECK_EQ(plait_waitgroup_add(l.wg, 1), 0);
    check_run(leaves_waiters, &l);
    CHECK_EQ(l.results[0], 0); /* the wake-up won before the cancellation */
    for (int i = 1; i < 5; i++)
        CHECK_EQ(l.results[i], -ECANCELED);
    CHECK_EQ(l.cond_unlock, 0);
    CHECK_EQ(l.lock_unlock, 0);
    CHECK_EQ(plait_mutex_destroy(l.m), 0);
    CHECK_EQ(plait_cond_destroy(l.c), 0);
    CHECK_EQ(plait_sem_destroy(l.s), 0);
    CHECK_EQ(plait_event_destroy(l.e), 0);
    CHECK_EQ(plait_waitgroup_destroy(l.wg), -EBUSY); /* its counter is still 1 */
    CHECK_EQ(plait_waitgroup_done(l.wg), 0);
    CHECK_EQ(plait_waitgroup_destroy(l.wg), 0);
}

/* The party that wakes the last waiter may destroy the object at once: the waiter's
 * wait is over, so the object is not waited on any more (POSIX allows the same for a
 * semaphore after sem_post and a condition after a broadcast).  The woken waiter
 * must not touch the freed object when it runs.  ASan reports it if it does. */
typedef struct {
    plait_sem *s;
    plait_event *e;
    plait_mutex *m;
    plait_cond *c;
    plait_waitgroup *wg;
    int results[4];
} woken_ctx;

static void *woken_sem(void *p)
{
    woken_ctx *w = p;
    w->results[0] = plait_sem_acquire(w->s, SOON());
    return NULL;
}

static void *woken_event(void *p)
{
    woken_ctx *w = p;
    w->results[1] = plait_event_wait(w->e, SOON());
    return NULL;
}

static void *woken_cond(void *p)
{
    woken_ctx *w = p;
    CHECK_EQ(plait_mutex_lock(w->m, SOON()), 0);
    w->results[2] = plait_cond_wait(w->c, w->m, SOON());
    CHECK_EQ(plait_mutex_unlock(w->m), 0);
    return NULL;
}

static void *woken_wg(void *p)
{
    woken_ctx *w = p;
    w->results[3] = plait_waitgroup_wait(w->wg, SOON());
    return NULL;
}

static void *destroy_after_wakeup_main(void *arg)
{
    (void)arg;
    woken_ctx w = {.results = {1, 1, 1, 1}};
    CHECK_EQ(plait_sem_create(&w.s, 0), 0);
    CHECK_EQ(plait_event_create(&w.e), 0);
    CHECK_EQ(plait_mutex_create(&w.m), 0);
    CHECK_EQ(plait_cond_create(&w.c), 0);
    CHECK_EQ(plait_waitgroup_create(&w.wg), 0);
    CHECK_EQ(plait_waitgroup_add(w.wg, 1), 0);
    plait_fn fns[4] = {woken_sem, woken_event, woken_cond, woken_wg};
    plait_task t[4];
    for (int i = 0; i < 4; i++)
        CHECK_EQ(plait_spawn(&t[i], fns[i], &w), 0);
    settle(); /* all four wait */
    /* wake each, and destroy it before the woken coroutine runs again */
    CHECK_EQ(plait_sem_release(w.s), 0);
    CHECK_EQ(plait_sem_destroy(w.s), 0);
    CHECK_EQ(plait_event_set(w.e), 0);
    CHECK_EQ(plait_event_destroy(w.e), 0);
    CHECK_EQ(plait_cond_signal(w.c), 0);
    CHECK_EQ(plait_cond_destroy(w.c), 0);
    CHECK_EQ(plait_waitgroup_done(w.wg), 0);
    CHECK_EQ(plait_waitgroup_destroy(w.wg), 0);
    CHECK_EQ(plait_wait_all(t, 4, NULL, NULL, SOON()), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(w.results[i], 0);
    CHECK_EQ(plait_mutex_destroy(w.m), 0);
    return NULL;
}

TEST(destroy_right_after_wakeup) { check_run(destroy_after_wakeup_main, NULL); }

/* A deadline far in the future but not PLAIT_FOREVER: a plain thread sleeps on it
 * (it does not spin) and is woken normally. */
typedef struct {
    plait_sem *s;
    int64_t deadline;
    int result;
    int64_t cpu_ns;
    atomic_int tid; /* the waiter's thread's, just before it acquires */
} far_ctx;

static void *far_waiter(void *p)
{
    far_ctx *f = p;
    struct timespec a, b;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    atomic_store(&f->tid, gettid_());
    f->result = plait_sem_acquire(f->s, f->deadline);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    f->cpu_ns = (b.tv_sec - a.tv_sec) * PLAIT_SEC + (b.tv_nsec - a.tv_nsec);
    return NULL;
}

static void *far_coro(void *p)
{
    far_waiter(p);
    return NULL;
}

TEST(far_deadlines)
{
    int64_t deadlines[] = {PLAIT_FOREVER - 1, plait_now() + 100LL * 365 * 86400 * PLAIT_SEC};
    for (int k = 0; k < 4; k++) {
        far_ctx f = {.deadline = deadlines[k % 2], .result = 1};
        CHECK_EQ(plait_sem_create(&f.s, 0), 0);
        pthread_t th;
        sched_thread st;
        if (k < 2)
            thread_start(&th, far_waiter, &f);
        else
            sched_thread_start(&st, far_coro, &f);
        /* it sleeps in its acquire (released before it tried, it would take a free
         * permit, and pass without waiting on the deadline); then waits 100 ms more,
         * which a wait that spun would show in its CPU time */
        wait_asleep(&f.tid);
        plait_sleep(100 * PLAIT_MS);
        CHECK_EQ(plait_sem_release(f.s), 0);
        if (k < 2)
            thread_join(th);
        else
            sched_thread_join(&st);
        CHECK_EQ(f.result, 0);
        CHECK(f.cpu_ns < 50 * PLAIT_MS); /* blocked, not spinning */
        CHECK_EQ(plait_sem_destroy(f.s), 0);
    }
}

RUN_TESTS(CASE(null_arguments), CASE(mutex_between_threads), CASE(owner_identity_not_reused),
          CASE(mutex_thread_and_coroutine), CASE(mutex_coroutines), CASE(mutex_no_starvation),
          CASE(mutex_handed_to_a_waiter_of_over_a_millisecond),
          CASE(mutex_cancel_waiter), CASE(mutex_destroy_while_a_waiter_tries_again),
          CASE(mutex_destroy_refused_during_cond_wait),
          CASE(mutex_across_schedulers_with_cancel),
          CASE(mutex_stress_mixed), CASE(cond_basics_threads_and_coroutines),
          CASE(cond_signal_one_broadcast_all), CASE(cond_cancel_and_timeout_relock),
          CASE(cond_broadcast_mixed), CASE(cond_queue_mixed), CASE(sem_coroutines),
          CASE(sem_threads), CASE(sem_pingpong_across_models), CASE(sem_limiter_mixed),
          CASE(event_coroutines), CASE(event_mixed), CASE(event_rounds_thread_coroutine),
          CASE(waitgroup_counts), CASE(waitgroup_coroutines), CASE(waitgroup_mixed),
          CASE(main_returns_with_waiters), CASE(destroy_right_after_wakeup),
          CASE(far_deadlines))
