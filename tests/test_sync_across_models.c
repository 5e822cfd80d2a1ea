/* test_sync_across_models.c — the lesser primitives (read-write lock, barrier, once, event,
 * wait group, semaphore) and plait threads, attacked across models: coroutines on two
 * schedulers, plain threads and plait threads waiting on the same object; bad input,
 * counts at their limits, handles misused, destroy with waiters parked, random
 * deadlines and cancellations against the invariants each promises (whole barrier
 * rounds with one serial party each, a once that runs fn alone and succeeds once, a
 * read-write lock left free and never shared with a writer).  The review that wrote
 * them found no defect here: they pin what plait.h and docs/API.md promise. */
#include "helpers.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- a waiter on another thread: a plain thread, a plait thread, or a coroutine (the
 * main of a scheduler of its own), each publishing its thread id just before the wait
 * (wait_asleep), then its outcome ---- */

enum { ON_PLAIN, ON_PLAIT, ON_CORO };
enum { W_SEM, W_EVENT, W_WG, W_BARRIER, W_RDLOCK, W_WRLOCK, W_ONCE };

typedef struct waiter {
    int on, what;
    void *object;
    int64_t deadline;
    bool unlock;        /* a lock taken: let it go again */
    atomic_int tid;     /* set just before the wait */
    atomic_int done;
    int r;
    pthread_t th;
    plait_task task;
    sched_thread st;
} waiter;


static int once_ok(void *arg)
{
    (void)arg;
    return 0;
}

static int waiter_call(waiter *w)
{
    switch (w->what) {
    case W_SEM:
        return plait_sem_acquire(w->object, w->deadline);
    case W_EVENT:
        return plait_event_wait(w->object, w->deadline);
    case W_WG:
        return plait_waitgroup_wait(w->object, w->deadline);
    case W_BARRIER:
        return plait_barrier_wait(w->object, w->deadline);
    case W_RDLOCK: {
        int r = plait_rwlock_rdlock(w->object, w->deadline);
        if (r == 0 && w->unlock)
            CHECK_EQ(plait_rwlock_rdunlock(w->object), 0);
        return r;
    }
    case W_WRLOCK: {
        int r = plait_rwlock_wrlock(w->object, w->deadline);
        if (r == 0 && w->unlock)
            CHECK_EQ(plait_rwlock_wrunlock(w->object), 0);
        return r;
    }
    case W_ONCE:
        return plait_once_call(w->object, once_ok, NULL, w->deadline);
    }
    return -ENOSYS;
}

static void *waiter_body(void *p)
{
    waiter *w = p;
    atomic_store(&w->tid, gettid_());
    w->r = waiter_call(w);
    atomic_store(&w->done, 1);
    return NULL;
}

static void waiter_start(waiter *w, int on, int what, void *object, int64_t deadline)
{
    w->on = on;
    w->what = what;
    w->object = object;
    w->deadline = deadline;
    atomic_store(&w->tid, 0);
    atomic_store(&w->done, 0);
    w->r = 1000;
    if (on == ON_PLAIN)
        thread_start(&w->th, waiter_body, w);
    else if (on == ON_PLAIT)
        CHECK_EQ(plait_thread_start(&w->task, waiter_body, w, NULL), 0);
    else
        sched_thread_start(&w->st, waiter_body, w);
}

static int waiter_join(waiter *w)
{
    if (w->on == ON_PLAIN)
        thread_join(w->th);
    else if (w->on == ON_PLAIT)
        CHECK_EQ(plait_join(w->task, NULL, SOON()), 0);
    else
        sched_thread_join(&w->st);
    return w->r;
}

/* ======================================================================== */
/* Destroy with waiters parked: -EBUSY, whatever model waits                 */
/* ======================================================================== */

TEST(destroy_with_waiters_parked_is_busy)
{
    for (int on = ON_PLAIN; on <= ON_CORO; on++) {
        plait_sem *s;
        plait_event *e;
        plait_waitgroup *wg;
        plait_barrier *b;
        plait_rwlock *rw;
        CHECK_EQ(plait_sem_create(&s, 0), 0);
        CHECK_EQ(plait_event_create(&e), 0);
        CHECK_EQ(plait_waitgroup_create(&wg), 0);
        CHECK_EQ(plait_waitgroup_add(wg, 1), 0);
        CHECK_EQ(plait_barrier_create(&b, 2), 0);
        CHECK_EQ(plait_rwlock_create(&rw), 0);
        CHECK_EQ(plait_rwlock_wrlock(rw, 0), 0);

        waiter w[5] = {0};
        waiter_start(&w[0], on, W_SEM, s, SOON());
        waiter_start(&w[1], on, W_EVENT, e, SOON());
        waiter_start(&w[2], on, W_WG, wg, SOON());
        waiter_start(&w[3], on, W_BARRIER, b, SOON());
        w[4].unlock = true;
        waiter_start(&w[4], on, W_RDLOCK, rw, SOON());
        for (int i = 0; i < 5; i++)
            wait_asleep(&w[i].tid);
        CHECK_EQ(plait_sem_destroy(s), -EBUSY);
        CHECK_EQ(plait_event_destroy(e), -EBUSY);
        CHECK_EQ(plait_waitgroup_destroy(wg), -EBUSY);
        CHECK_EQ(plait_barrier_destroy(b), -EBUSY);
        CHECK_EQ(plait_rwlock_destroy(rw), -EBUSY);
        /* nothing was lost to the refusals: each waiter is released as it should be */
        CHECK_EQ(plait_sem_release(s), 0);
        CHECK_EQ(plait_event_set(e), 0);
        CHECK_EQ(plait_waitgroup_done(wg), 0);
        CHECK_EQ(plait_barrier_wait(b, SOON()), PLAIT_BARRIER_SERIAL); /* the last */
        CHECK_EQ(plait_rwlock_wrunlock(rw), 0);
        CHECK_EQ(waiter_join(&w[0]), 0);
        CHECK_EQ(waiter_join(&w[1]), 0);
        CHECK_EQ(waiter_join(&w[2]), 0);
        CHECK_EQ(waiter_join(&w[3]), 0);
        CHECK_EQ(waiter_join(&w[4]), 0);
        CHECK_EQ(plait_sem_value(s), 0);
        CHECK_EQ(plait_sem_destroy(s), 0);
        CHECK_EQ(plait_event_destroy(e), 0);
        CHECK_EQ(plait_waitgroup_destroy(wg), 0);
        CHECK_EQ(plait_barrier_destroy(b), 0);
        CHECK_EQ(plait_rwlock_destroy(rw), 0);
    }
}

/* ======================================================================== */
/* Semaphore and wait group counts at their limits                           */
/* ======================================================================== */

TEST(sem_counts_at_the_limits)
{
    plait_sem *s;
    CHECK_EQ(plait_sem_create(&s, UINT_MAX), 0);
    CHECK_EQ(plait_sem_value(s), INT_MAX);
    CHECK_EQ(plait_sem_release(s), -EOVERFLOW);
    CHECK_EQ(plait_sem_value(s), INT_MAX);
    CHECK_EQ(plait_sem_acquire(s, 0), 0);
    CHECK_EQ(plait_sem_release(s), 0);
    CHECK_EQ(plait_sem_release(s), -EOVERFLOW);
    CHECK_EQ(plait_sem_destroy(s), 0);

    CHECK_EQ(plait_sem_create(&s, 0), 0);
    int64_t past[] = {0, 1, -1, INT64_MIN, plait_now() - PLAIT_SEC, plait_now()};
    for (size_t i = 0; i < sizeof past / sizeof past[0]; i++) {
        int64_t start = plait_now();
        CHECK_EQ(plait_sem_acquire(s, past[i]), -ETIMEDOUT);
        CHECK_PROMPT(start);
    }
    /* a permit there is taken whatever the deadline */
    CHECK_EQ(plait_sem_release(s), 0);
    CHECK_EQ(plait_sem_acquire(s, INT64_MIN), 0);
    CHECK_EQ(plait_sem_value(s), 0);
    CHECK_EQ(plait_sem_create(NULL, 1), -EINVAL);
    CHECK_EQ(plait_sem_acquire(NULL, 0), -EINVAL);
    CHECK_EQ(plait_sem_release(NULL), -EINVAL);
    CHECK_EQ(plait_sem_value(NULL), -EINVAL);
    CHECK_EQ(plait_sem_destroy(NULL), -EINVAL);
    CHECK_EQ(plait_sem_destroy(s), 0);
}

TEST(waitgroup_counts_at_the_limits)
{
    plait_waitgroup *wg;
    CHECK_EQ(plait_waitgroup_create(&wg), 0);
    CHECK_EQ(plait_waitgroup_done(wg), -EINVAL);
    CHECK_EQ(plait_waitgroup_add(wg, -1), -EINVAL);
    CHECK_EQ(plait_waitgroup_add(wg, INT_MIN), -EINVAL);
    CHECK_EQ(plait_waitgroup_wait(wg, 0), 0);
    CHECK_EQ(plait_waitgroup_add(wg, INT_MAX), 0);
    CHECK_EQ(plait_waitgroup_add(wg, 1), -EOVERFLOW);
    CHECK_EQ(plait_waitgroup_add(wg, INT_MAX), -EOVERFLOW);
    CHECK_EQ(plait_waitgroup_add(wg, INT_MIN), -EINVAL);
    CHECK_EQ(plait_waitgroup_wait(wg, 0), -ETIMEDOUT);
    /* the refused adds changed nothing: INT_MAX - 1 more dones reach zero after one */
    CHECK_EQ(plait_waitgroup_add(wg, -(INT_MAX - 1)), 0);
    CHECK_EQ(plait_waitgroup_wait(wg, 0), -ETIMEDOUT);

    /* waiters of every model parked; an add while they wait keeps them waiting */
    waiter w[3] = {0};
    for (int on = ON_PLAIN; on <= ON_CORO; on++)
        waiter_start(&w[on], on, W_WG, wg, SOON());
    for (int on = ON_PLAIN; on <= ON_CORO; on++)
        wait_asleep(&w[on].tid);
    CHECK_EQ(plait_waitgroup_add(wg, 2), 0);
    CHECK_EQ(plait_waitgroup_add(wg, -2), 0);
    CHECK_EQ(plait_waitgroup_add(wg, 0), 0);
    for (int on = ON_PLAIN; on <= ON_CORO; on++)
        CHECK_EQ(atomic_load(&w[on].done), 0);
    CHECK_EQ(plait_waitgroup_done(wg), 0);
    for (int on = ON_PLAIN; on <= ON_CORO; on++)
        CHECK_EQ(waiter_join(&w[on]), 0);
    CHECK_EQ(plait_waitgroup_done(wg), -EINVAL);
    CHECK_EQ(plait_waitgroup_destroy(wg), 0);
}

/* ======================================================================== */
/* Read-write lock misuse                                                    */
/* ======================================================================== */

static plait_rwlock *mis_rw;

static void *mis_other(void *arg)
{
    (void)arg;
    /* not the writer: neither unlock is its to make */
    CHECK_EQ(plait_rwlock_wrunlock(mis_rw), -EPERM);
    CHECK_EQ(plait_rwlock_rdunlock(mis_rw), -EPERM);
    CHECK_EQ(plait_rwlock_rdlock(mis_rw, 0), -ETIMEDOUT);
    CHECK_EQ(plait_rwlock_wrlock(mis_rw, 0), -ETIMEDOUT);
    return NULL;
}

static void *mis_coro(void *arg)
{
    (void)arg;
    /* a coroutine of a scheduler that the writer runs: it cannot unlock, and a lock
     * of either kind would wait for itself */
    CHECK_EQ(plait_rwlock_wrunlock(mis_rw), -EPERM);
    CHECK_EQ(plait_rwlock_rdlock(mis_rw, SOON()), -EDEADLK);
    CHECK_EQ(plait_rwlock_wrlock(mis_rw, SOON()), -EDEADLK);
    return NULL;
}

TEST(rwlock_misuse)
{
    CHECK_EQ(plait_rwlock_create(&mis_rw), 0);
    CHECK_EQ(plait_rwlock_rdunlock(mis_rw), -EPERM);
    CHECK_EQ(plait_rwlock_wrunlock(mis_rw), -EPERM);
    CHECK_EQ(plait_rwlock_wrlock(mis_rw, 0), 0);
    CHECK_EQ(plait_rwlock_wrlock(mis_rw, SOON()), -EDEADLK);
    CHECK_EQ(plait_rwlock_rdlock(mis_rw, SOON()), -EDEADLK);
    CHECK_EQ(plait_rwlock_rdunlock(mis_rw), -EPERM);
    CHECK_EQ(plait_rwlock_destroy(mis_rw), -EBUSY);
    pthread_t th;
    thread_start(&th, mis_other, NULL);
    thread_join(th);
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, mis_other, NULL, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    check_run(mis_coro, NULL);
    CHECK_EQ(plait_rwlock_wrunlock(mis_rw), 0);
    CHECK_EQ(plait_rwlock_wrunlock(mis_rw), -EPERM);
    /* read-held: a write unlock is nobody's, the read unlock the readers' count */
    CHECK_EQ(plait_rwlock_rdlock(mis_rw, 0), 0);
    CHECK_EQ(plait_rwlock_wrunlock(mis_rw), -EPERM);
    CHECK_EQ(plait_rwlock_destroy(mis_rw), -EBUSY);
    CHECK_EQ(plait_rwlock_rdunlock(mis_rw), 0);
    CHECK_EQ(plait_rwlock_rdunlock(mis_rw), -EPERM);
    CHECK_EQ(plait_rwlock_destroy(mis_rw), 0);
}

/* ======================================================================== */
/* Read-write lock: a waiting writer that gives up lets the readers it held  */
/* back in, across models                                                    */
/* ======================================================================== */

TEST(rwlock_writer_giving_up_admits_readers_of_every_model)
{
    plait_rwlock *rw;
    CHECK_EQ(plait_rwlock_create(&rw), 0);
    CHECK_EQ(plait_rwlock_rdlock(rw, 0), 0); /* this thread reads */
    /* a writer (a plait thread) waits behind it */
    waiter wr = {0};
    wr.unlock = true;
    waiter_start(&wr, ON_PLAIT, W_WRLOCK, rw, SOON());
    wait_asleep(&wr.tid);
    /* readers of every model queue behind the writer */
    waiter rd[3] = {0};
    for (int on = ON_PLAIN; on <= ON_CORO; on++) {
        rd[on].unlock = false; /* they hold it until checked */
        waiter_start(&rd[on], on, W_RDLOCK, rw, SOON());
    }
    for (int on = ON_PLAIN; on <= ON_CORO; on++)
        wait_asleep(&rd[on].tid);
    for (int on = ON_PLAIN; on <= ON_CORO; on++)
        CHECK_EQ(atomic_load(&rd[on].done), 0);
    /* the writer gives up (cancelled) while this reader still holds: the readers it
     * held back get in */
    CHECK_EQ(plait_cancel(wr.task), 0);
    CHECK_EQ(plait_join(wr.task, NULL, SOON()), -ECANCELED);
    CHECK_EQ(wr.r, -ECANCELED);
    for (int on = ON_PLAIN; on <= ON_CORO; on++)
        CHECK_EQ(waiter_join(&rd[on]), 0);
    /* four readers hold it now */
    CHECK_EQ(plait_rwlock_wrlock(rw, 0), -ETIMEDOUT);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(plait_rwlock_rdunlock(rw), 0);
    CHECK_EQ(plait_rwlock_rdunlock(rw), -EPERM);
    CHECK_EQ(plait_rwlock_wrlock(rw, 0), 0);
    CHECK_EQ(plait_rwlock_wrunlock(rw), 0);
    CHECK_EQ(plait_rwlock_destroy(rw), 0);
}

/* ======================================================================== */
/* Barrier: a generation with a party withdrawn, then the next               */
/* ======================================================================== */

TEST(barrier_generations_with_withdrawals_across_models)
{
    plait_barrier *b;
    CHECK_EQ(plait_barrier_create(&b, 3), 0);
    for (int gen = 0; gen < 3; gen++) {
        /* two parties arrive; one of them withdraws by its deadline; the third model
         * arrives after, and the round still needs this thread's call */
        int quitter = gen % 3, stayer = (gen + 1) % 3, late = (gen + 2) % 3;
        waiter w[3] = {0};
        waiter_start(&w[stayer], stayer, W_BARRIER, b, SOON());
        waiter_start(&w[quitter], quitter, W_BARRIER, b, plait_deadline_in(100 * PLAIT_MS));
        CHECK_EQ(waiter_join(&w[quitter]), -ETIMEDOUT);
        waiter_start(&w[late], late, W_BARRIER, b, SOON());
        for (int on = ON_PLAIN; on <= ON_CORO; on++)
            if (on != quitter) {
                wait_asleep(&w[on].tid);
                CHECK_EQ(atomic_load(&w[on].done), 0); /* two of three: still waiting */
            }
        /* the third: it completes the round at once, whatever its deadline */
        CHECK_EQ(plait_barrier_wait(b, 0), PLAIT_BARRIER_SERIAL);
        int serials = 1;
        for (int on = ON_PLAIN; on <= ON_CORO; on++)
            if (on != quitter) {
                int r = waiter_join(&w[on]);
                CHECK(r == 0 || r == PLAIT_BARRIER_SERIAL);
                serials += r == PLAIT_BARRIER_SERIAL;
            }
        CHECK_EQ(serials, 1);
        /* the next round needs three again (a past deadline: withdrawn at once) */
        CHECK_EQ(plait_barrier_wait(b, 0), -ETIMEDOUT);
        waiter x = {0};
        waiter_start(&x, (gen + 1) % 3, W_BARRIER, b, SOON());
        wait_asleep(&x.tid);
        CHECK_EQ(plait_barrier_wait(b, 0), -ETIMEDOUT);
        waiter y = {0};
        waiter_start(&y, (gen + 2) % 3, W_BARRIER, b, SOON());
        wait_asleep(&y.tid);
        CHECK_EQ(plait_barrier_wait(b, 0), PLAIT_BARRIER_SERIAL);
        CHECK_EQ(waiter_join(&x), 0);
        CHECK_EQ(waiter_join(&y), 0);
    }
    CHECK_EQ(plait_barrier_destroy(b), 0);
}

/* ======================================================================== */
/* Once: called again from inside fn, on a plait thread, through a scheduler */
/* ======================================================================== */

static plait_once rec_once = PLAIT_ONCE_INIT;
static atomic_int rec_runs;
static int rec_inner;

static int rec_fn(void *arg);

static void *rec_coro(void *arg)
{
    (void)arg;
    rec_inner = plait_once_call(&rec_once, rec_fn, NULL, SOON());
    return NULL;
}

static int rec_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&rec_runs, 1);
    /* directly, and from a coroutine of a scheduler this fn runs */
    CHECK_EQ(plait_once_call(&rec_once, rec_fn, NULL, SOON()), -EDEADLK);
    rec_inner = 1000;
    CHECK_EQ(plait_run(rec_coro, NULL, NULL), 0);
    CHECK_EQ(rec_inner, -EDEADLK);
    return 0;
}

static void *rec_thread(void *arg)
{
    (void)arg;
    return ARG(plait_once_call(&rec_once, rec_fn, NULL, SOON()));
}

TEST(once_recursive_on_a_plait_thread)
{
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, rec_thread, NULL, NULL), 0);
    void *r;
    CHECK_EQ(plait_join(t, &r, SOON()), 0);
    CHECK_EQ(INT(r), 0);
    CHECK_EQ(atomic_load(&rec_runs), 1);
    CHECK_EQ(plait_once_call(&rec_once, rec_fn, NULL, 0), 0);
    CHECK_EQ(atomic_load(&rec_runs), 1);
    CHECK_EQ(plait_once_call(NULL, rec_fn, NULL, 0), -EINVAL);
    CHECK_EQ(plait_once_call(&rec_once, NULL, NULL, 0), -EINVAL);
}

/* ======================================================================== */
/* Threads: handles misused, bad starts, the CPU count                       */
/* ======================================================================== */

typedef struct self_join {
    plait_event *go;
    plait_task self;
    int r_join, r_detach, r_any;
} self_join;

static void *sj_body(void *p)
{
    self_join *sj = p;
    CHECK_EQ(plait_event_wait(sj->go, SOON()), 0);
    sj->r_join = plait_join(sj->self, NULL, SOON());
    sj->r_any = plait_wait_any(&sj->self, 1, SOON());
    return ARG(7);
}

static void *ret_arg(void *p) { return p; }

TEST(thread_handles_misused)
{
    plait_task t = {0};
    CHECK_EQ(plait_thread_start(&t, NULL, NULL, NULL), -EINVAL);
    CHECK_EQ(plait_thread_start(NULL, NULL, NULL, NULL), -EINVAL);
    CHECK(t.future == NULL);

    self_join sj = {0};
    CHECK_EQ(plait_event_create(&sj.go), 0);
    CHECK_EQ(plait_thread_start(&sj.self, sj_body, &sj, NULL), 0);
    CHECK_EQ(plait_join(sj.self, NULL, 0), -ETIMEDOUT);
    CHECK_EQ(plait_join(sj.self, NULL, plait_deadline_in(10 * PLAIT_MS)), -ETIMEDOUT);
    CHECK_EQ(plait_event_set(sj.go), 0);
    void *v = NULL;
    CHECK_EQ(plait_join(sj.self, &v, SOON()), 0);
    CHECK_EQ(INT(v), 7);
    CHECK_EQ(sj.r_join, -EDEADLK);
    CHECK_EQ(sj.r_any, -EDEADLK);
    CHECK_EQ(plait_join(sj.self, NULL, SOON()), -ESRCH);
    CHECK_EQ(plait_detach(sj.self), -ESRCH);
    CHECK_EQ(plait_cancel(sj.self), -ESRCH);
    CHECK_EQ(plait_event_destroy(sj.go), 0);

    /* detached: every later call on the handle is -ESRCH, even once the future is
     * reused by a new thread */
    plait_task d;
    CHECK_EQ(plait_thread_start(&d, ret_arg, ARG(1), NULL), 0);
    CHECK_EQ(plait_detach(d), 0);
    CHECK_EQ(plait_detach(d), -ESRCH);
    CHECK_EQ(plait_join(d, NULL, SOON()), -ESRCH);
    for (int i = 0; i < 20; i++) {
        plait_task n;
        CHECK_EQ(plait_thread_start(&n, ret_arg, ARG(2), NULL), 0);
        CHECK_EQ(plait_join(d, NULL, 0), -ESRCH);
        CHECK_EQ(plait_cancel(d), -ESRCH);
        void *nv = NULL;
        CHECK_EQ(plait_join(n, &nv, SOON()), 0);
        CHECK_EQ(INT(nv), 2);
    }
    plait_task z = {0};
    CHECK_EQ(plait_join(z, NULL, 0), -EINVAL);
}

static void *cpu_one(void *arg)
{
    (void)arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CHECK_EQ(sched_getaffinity(0, sizeof set, &set), 0);
    int first = -1;
    for (int i = 0; i < CPU_SETSIZE && first < 0; i++)
        if (CPU_ISSET(i, &set))
            first = i;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    CHECK_EQ(sched_setaffinity(0, sizeof one, &one), 0);
    return ARG(plait_cpu_count());
}

TEST(cpu_count_follows_a_one_cpu_mask)
{
    int before = plait_cpu_count();
    CHECK(before >= 1);
    pthread_t th;
    void *r = NULL;
    CHECK_EQ(pthread_create(&th, NULL, cpu_one, NULL), 0);
    CHECK_EQ(pthread_join(th, &r), 0);
    CHECK_EQ(INT(r), 1);
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, cpu_one, NULL, NULL), 0);
    CHECK_EQ(plait_join(t, &r, SOON()), 0);
    CHECK_EQ(INT(r), 1);
    CHECK_EQ(plait_cpu_count(), before); /* this thread's mask is as it was */
}

/* ======================================================================== */
/* Event: set and reset raced by timed waiters of every model                */
/* ======================================================================== */

TEST(event_set_reset_with_timed_waiters)
{
    plait_event *e;
    CHECK_EQ(plait_event_create(&e), 0);
    CHECK_EQ(plait_event_wait(e, 0), -ETIMEDOUT);
    for (int round = 0; round < 20; round++) {
        waiter w[3] = {0};
        for (int on = ON_PLAIN; on <= ON_CORO; on++)
            waiter_start(&w[on], on, W_EVENT, e,
                         round % 2 ? plait_deadline_in((round % 5) * PLAIT_MS) : SOON());
        if (round % 2 == 0)
            for (int on = ON_PLAIN; on <= ON_CORO; on++)
                wait_asleep(&w[on].tid);
        /* a set released every waiter there, even though a reset follows at once */
        CHECK_EQ(plait_event_set(e), 0);
        CHECK_EQ(plait_event_reset(e), 0);
        for (int on = ON_PLAIN; on <= ON_CORO; on++) {
            int r = waiter_join(&w[on]);
            if (round % 2 == 0)
                CHECK_EQ(r, 0);
            else
                CHECK(r == 0 || r == -ETIMEDOUT);
        }
        CHECK_EQ(plait_event_is_set(e), 0);
        CHECK_EQ(plait_event_wait(e, 0), -ETIMEDOUT);
    }
    CHECK_EQ(plait_event_destroy(e), 0);
}

/* ======================================================================== */
/* Barrier under random withdrawals across models: the parties released are  */
/* always whole rounds, each with exactly one serial party                    */
/* ======================================================================== */

enum { BS_PARTIES = 3, BS_WAITS = 400 };

static struct {
    plait_barrier *b;
    atomic_long released, serials, withdrawn;
} bs;

static void *bs_worker(void *p)
{
    uint64_t seed = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull + 1;
    for (int i = 0; i < BS_WAITS; i++) {
        uint32_t x = rnd(&seed);
        int64_t deadline = x % 4 == 0 ? 0 : plait_deadline_in((x >> 8) % (400 * PLAIT_US));
        int r = plait_barrier_wait(bs.b, deadline);
        if (r == PLAIT_BARRIER_SERIAL)
            atomic_fetch_add(&bs.serials, 1);
        if (r == 0 || r == PLAIT_BARRIER_SERIAL)
            atomic_fetch_add(&bs.released, 1);
        else if (r == -ETIMEDOUT)
            atomic_fetch_add(&bs.withdrawn, 1);
        else
            CHECK_EQ(r, 0);
        if (!plait_in_coroutine() && x % 8 == 3)
            sched_yield();
    }
    return NULL;
}

static void *bs_sched(void *p)
{
    plait_task t[2];
    for (int i = 0; i < 2; i++)
        CHECK_EQ(plait_spawn(&t[i], bs_worker, ARG(INT(p) + i)), 0);
    CHECK_EQ(plait_wait_all(t, 2, NULL, NULL, plait_deadline_in(60 * PLAIT_SEC)), 0);
    return NULL;
}

TEST(barrier_random_withdrawals_release_whole_rounds)
{
    CHECK_EQ(plait_barrier_create(&bs.b, BS_PARTIES), 0);
    sched_thread s1, s2;
    sched_thread_start(&s1, bs_sched, ARG(10));
    sched_thread_start(&s2, bs_sched, ARG(20));
    pthread_t th;
    thread_start(&th, bs_worker, ARG(30));
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, bs_worker, ARG(40), NULL), 0);
    sched_thread_join(&s1);
    sched_thread_join(&s2);
    thread_join(th);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    long released = atomic_load(&bs.released), serials = atomic_load(&bs.serials);
    if (getenv("PLAIT_TEST_VERBOSE"))
        printf("     %ld released, %ld rounds, %ld withdrawn\n", released, serials,
               atomic_load(&bs.withdrawn));
    CHECK_EQ(released, serials * BS_PARTIES);
    CHECK_EQ(released + atomic_load(&bs.withdrawn), 6L * BS_WAITS);
    CHECK_EQ(plait_barrier_destroy(bs.b), 0);
}

/* ======================================================================== */
/* Once under failures, deadlines and cancellation across models: fn never   */
/* runs twice at once and succeeds exactly once                               */
/* ======================================================================== */

enum { OS_ONCES = 64 };

static struct {
    plait_once once[OS_ONCES];
    atomic_int inside[OS_ONCES], successes[OS_ONCES], overlap;
    atomic_uint fail_seed;
} os;

static int os_fn(void *arg)
{
    int i = INT(arg);
    if (atomic_fetch_add(&os.inside[i], 1) != 0)
        atomic_fetch_add(&os.overlap, 1);
    unsigned x = atomic_fetch_add(&os.fail_seed, 0x9e3779b9u);
    if (plait_in_coroutine() && x % 3 == 0)
        plait_yield();
    else if (x % 5 == 0)
        sched_yield();
    atomic_fetch_sub(&os.inside[i], 1);
    if (x % 2 == 0)
        return -EIO;
    atomic_fetch_add(&os.successes[i], 1);
    return 0;
}

static void *os_worker(void *p)
{
    uint64_t seed = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull + 3;
    for (int round = 0; round < 6; round++)
        for (int i = 0; i < OS_ONCES; i++) {
            uint32_t x = rnd(&seed);
            int64_t deadline = x % 3 == 0 ? 0 : plait_deadline_in((x >> 8) % (200 * PLAIT_US));
            int r = plait_once_call(&os.once[i], os_fn, ARG(i), deadline);
            CHECK(r == 0 || r == -EIO || r == -ETIMEDOUT);
        }
    /* at the end, each once done: by this caller or another */
    for (int i = 0; i < OS_ONCES; i++) {
        int r;
        while ((r = plait_once_call(&os.once[i], os_fn, ARG(i), SOON())) == -EIO) {
        }
        CHECK_EQ(r, 0);
    }
    return NULL;
}

static void *os_sched(void *p)
{
    plait_task t[2];
    for (int i = 0; i < 2; i++)
        CHECK_EQ(plait_spawn(&t[i], os_worker, ARG(INT(p) + i)), 0);
    CHECK_EQ(plait_wait_all(t, 2, NULL, NULL, plait_deadline_in(60 * PLAIT_SEC)), 0);
    return NULL;
}

TEST(once_random_failures_across_models)
{
    for (int i = 0; i < OS_ONCES; i++)
        os.once[i] = (plait_once)PLAIT_ONCE_INIT;
    sched_thread s1, s2;
    sched_thread_start(&s1, os_sched, ARG(10));
    sched_thread_start(&s2, os_sched, ARG(20));
    pthread_t th;
    thread_start(&th, os_worker, ARG(30));
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, os_worker, ARG(40), NULL), 0);
    sched_thread_join(&s1);
    sched_thread_join(&s2);
    thread_join(th);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(atomic_load(&os.overlap), 0);
    for (int i = 0; i < OS_ONCES; i++)
        CHECK_EQ(atomic_load(&os.successes[i]), 1);
}

/* ======================================================================== */
/* Read-write lock under cancellation across models: holders are exclusive,  */
/* and nothing is left held or stranded once every canceled party has gone   */
/* ======================================================================== */

static struct {
    plait_rwlock *rw;
    atomic_int readers_in, writers_in, violations;
    atomic_long ops, cancelled;
} rc;

static void *rc_party(void *p)
{
    uint64_t seed = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull + 5;
    for (int i = 0; i < 30; i++) {
        uint32_t x = rnd(&seed);
        bool write = x % 3 == 0;
        int64_t deadline = x % 7 == 0 ? plait_deadline_in((x >> 8) % (100 * PLAIT_US)) : SOON();
        int r = write ? plait_rwlock_wrlock(rc.rw, deadline) : plait_rwlock_rdlock(rc.rw, deadline);
        if (r == -ECANCELED) {
            atomic_fetch_add(&rc.cancelled, 1);
            return NULL;
        }
        if (r == -ETIMEDOUT)
            continue;
        CHECK_EQ(r, 0);
        if (r != 0)
            return NULL;
        if (write) {
            if (atomic_fetch_add(&rc.writers_in, 1) != 0 || atomic_load(&rc.readers_in))
                atomic_fetch_add(&rc.violations, 1);
        } else {
            atomic_fetch_add(&rc.readers_in, 1);
            if (atomic_load(&rc.writers_in))
                atomic_fetch_add(&rc.violations, 1);
        }
        if (plait_in_coroutine())
            plait_yield(); /* hold it across a switch (cancelled or not) */
        else if (x % 4 == 1)
            sched_yield();
        if (write) {
            atomic_fetch_sub(&rc.writers_in, 1);
            CHECK_EQ(plait_rwlock_wrunlock(rc.rw), 0);
        } else {
            atomic_fetch_sub(&rc.readers_in, 1);
            CHECK_EQ(plait_rwlock_rdunlock(rc.rw), 0);
        }
        atomic_fetch_add(&rc.ops, 1);
    }
    return NULL;
}

enum { RC_BATCH = 6, RC_BATCHES = 25 };

/* Spawn batches of parties (coroutines here, or plait threads) and cancel some of each
 * batch at random moments. */
static void rc_batches(int base, bool coroutines)
{
    uint64_t seed = (uint64_t)base * 77 + 1;
    for (int b = 0; b < RC_BATCHES; b++) {
        plait_task t[RC_BATCH];
        for (int i = 0; i < RC_BATCH; i++) {
            void *arg = ARG(base + b * RC_BATCH + i);
            if (coroutines)
                CHECK_EQ(plait_spawn(&t[i], rc_party, arg), 0);
            else
                CHECK_EQ(plait_thread_start(&t[i], rc_party, arg, NULL), 0);
        }
        for (int i = 0; i < RC_BATCH; i++) {
            uint32_t x = rnd(&seed);
            if (coroutines)
                for (uint32_t k = x % 5; k > 0; k--)
                    plait_yield();
            else
                for (uint32_t k = x % 5; k > 0; k--)
                    sched_yield();
            if (x % 2)
                CHECK_EQ(plait_cancel(t[i]), 0);
        }
        for (int i = 0; i < RC_BATCH; i++) {
            int r = plait_join(t[i], NULL, SOON());
            CHECK(r == 0 || r == -ECANCELED);
        }
    }
}

static void *rc_sched(void *p)
{
    rc_batches(INT(p), true);
    return NULL;
}

static void *rc_threads(void *p)
{
    rc_batches(INT(p), false);
    return NULL;
}

TEST(rwlock_cancellations_across_models_leave_it_free)
{
    CHECK_EQ(plait_rwlock_create(&rc.rw), 0);
    sched_thread s1, s2;
    sched_thread_start(&s1, rc_sched, ARG(1000));
    sched_thread_start(&s2, rc_sched, ARG(2000));
    pthread_t th;
    thread_start(&th, rc_threads, ARG(3000));
    sched_thread_join(&s1);
    sched_thread_join(&s2);
    thread_join(th);
    if (getenv("PLAIT_TEST_VERBOSE"))
        printf("     %ld ops, %ld cancelled in a wait\n", atomic_load(&rc.ops),
               atomic_load(&rc.cancelled));
    CHECK_EQ(atomic_load(&rc.violations), 0);
    CHECK_EQ(plait_rwlock_wrlock(rc.rw, 0), 0);
    CHECK_EQ(plait_rwlock_wrunlock(rc.rw), 0);
    CHECK_EQ(plait_rwlock_rdlock(rc.rw, 0), 0);
    CHECK_EQ(plait_rwlock_rdunlock(rc.rw), 0);
    CHECK_EQ(plait_rwlock_destroy(rc.rw), 0);
}

RUN_TESTS(CASE(destroy_with_waiters_parked_is_busy), CASE(sem_counts_at_the_limits),
          CASE(waitgroup_counts_at_the_limits), CASE(rwlock_misuse),
          CASE(rwlock_writer_giving_up_admits_readers_of_every_model),
          CASE(barrier_generations_with_withdrawals_across_models),
          CASE(once_recursive_on_a_plait_thread), CASE(thread_handles_misused),
          CASE(cpu_count_follows_a_one_cpu_mask), CASE(event_set_reset_with_timed_waiters),
          CASE(barrier_random_withdrawals_release_whole_rounds),
          CASE(once_random_failures_across_models),
          CASE(rwlock_cancellations_across_models_leave_it_free))
