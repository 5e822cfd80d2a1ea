/* test_sync_races.c — the synchronisation primitives where a wake-up races a
 * cancellation or deadline of the waiter it chose, and the mutex's queue order when a
 * running locker takes the mutex before the waiter it woke. */
#include "helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- a condition signal raced by plait_cancel of a plait thread waiting: the signal
 * must reach the other waiter (a plain thread) when the cancelled one does not take it */

static struct {
    plait_mutex *m;
    plait_cond *c;
    int tokens;
    bool stop;
    atomic_int waiting;
    atomic_int lost; /* the plain waiter timed out with a token there */
} cr;

static void *cr_plait_thread(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_mutex_lock(cr.m, SOON()), 0);
    atomic_fetch_add(&cr.waiting, 1);
    int r = 0;
    while (cr.tokens == 0 && r == 0)
        r = plait_cond_wait(cr.c, cr.m, SOON());
    CHECK(r == 0 || r == -ECANCELED);
    if (cr.tokens > 0)
        cr.tokens--;
    CHECK_EQ(plait_mutex_unlock(cr.m), 0);
    return NULL;
}

static void *cr_plain_thread(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_mutex_lock(cr.m, SOON()), 0);
    atomic_fetch_add(&cr.waiting, 1);
    while (!cr.stop) {
        if (cr.tokens > 0) {
            cr.tokens--;
            continue;
        }
        int r = plait_cond_wait(cr.c, cr.m, plait_deadline_in(2 * PLAIT_SEC));
        if (r == -ETIMEDOUT && cr.tokens > 0 && !cr.stop)
            atomic_fetch_add(&cr.lost, 1);
    }
    CHECK_EQ(plait_mutex_unlock(cr.m), 0);
    return NULL;
}

TEST(cond_signal_raced_by_cancel_of_a_thread_waiter)
{
    CHECK_EQ(plait_mutex_create(&cr.m), 0);
    CHECK_EQ(plait_cond_create(&cr.c), 0);
    for (int i = 0; i < 200; i++) {
        cr.tokens = 0;
        cr.stop = false;
        atomic_store(&cr.waiting, 0);
        plait_task t;
        pthread_t th;
        CHECK_EQ(plait_thread_start(&t, cr_plait_thread, NULL, NULL), 0);
        thread_start(&th, cr_plain_thread, NULL);
        while (atomic_load(&cr.waiting) < 2)
            sched_yield();
        CHECK_EQ(plait_mutex_lock(cr.m, SOON()), 0); /* both are in cond_wait now */
        cr.tokens = 1;
        CHECK_EQ(plait_cond_signal(cr.c), 0);
        CHECK_EQ(plait_mutex_unlock(cr.m), 0);
        CHECK_EQ(plait_cancel(t), 0);
        int r = plait_join(t, NULL, SOON());
        CHECK(r == 0 || r == -ECANCELED);
        /* the token is taken by one of them, promptly */
        int64_t until = plait_deadline_in(PLAIT_SEC);
        for (;;) {
            CHECK_EQ(plait_mutex_lock(cr.m, SOON()), 0);
            int left = cr.tokens;
            if (left == 0 || plait_now() > until) {
                CHECK_EQ(left, 0);
                cr.stop = true;
                CHECK_EQ(plait_cond_broadcast(cr.c), 0);
                CHECK_EQ(plait_mutex_unlock(cr.m), 0);
                break;
            }
            CHECK_EQ(plait_mutex_unlock(cr.m), 0);
            sched_yield();
        }
        thread_join(th);
    }
    CHECK_EQ(atomic_load(&cr.lost), 0);
    CHECK_EQ(plait_cond_destroy(cr.c), 0);
    CHECK_EQ(plait_mutex_destroy(cr.m), 0);
}

/* ---- a barrier party (a plait thread) cancelled while the round completes: exactly
 * one SERIAL, and a withdrawn party leaves the round needing another arrival ---- */

static plait_barrier *bc_b;
static atomic_int bc_in, bc_ra;

static void *bc_party(void *arg)
{
    (void)arg;
    atomic_fetch_add(&bc_in, 1);
    atomic_store(&bc_ra, plait_barrier_wait(bc_b, SOON()));
    return NULL;
}

static void *bc_plain(void *arg)
{
    *(int *)arg = plait_barrier_wait(bc_b, SOON());
    return NULL;
}

TEST(barrier_cancel_raced_by_completion)
{
    CHECK_EQ(plait_barrier_create(&bc_b, 2), 0);
    int serial_a = 0, withdrawn = 0;
    for (int i = 0; i < 300; i++) {
        atomic_store(&bc_in, 0);
        plait_task t;
        CHECK_EQ(plait_thread_start(&t, bc_party, NULL, NULL), 0);
        while (!atomic_load(&bc_in))
            sched_yield();
        int rb = 1000;
        pthread_t th;
        thread_start(&th, bc_plain, &rb);
        if (i & 1)
            sched_yield();
        CHECK_EQ(plait_cancel(t), 0);
        int rj = plait_join(t, NULL, SOON());
        CHECK(rj == 0 || rj == -ECANCELED); /* -ECANCELED whatever it returned */
        int ra = atomic_load(&bc_ra);
        int rc = 1000;
        if (ra == -ECANCELED) { /* withdrawn: the round needs another party */
            withdrawn++;
            rc = plait_barrier_wait(bc_b, SOON());
        }
        thread_join(th);
        CHECK(ra == 0 || ra == PLAIT_BARRIER_SERIAL || ra == -ECANCELED);
        int serials = (ra == PLAIT_BARRIER_SERIAL) + (rb == PLAIT_BARRIER_SERIAL) +
                      (rc == PLAIT_BARRIER_SERIAL);
        serial_a += ra == PLAIT_BARRIER_SERIAL;
        CHECK_EQ(serials, 1);
        CHECK(rb == 0 || rb == PLAIT_BARRIER_SERIAL);
        CHECK(rc == 1000 || rc == 0 || rc == PLAIT_BARRIER_SERIAL);
    }
    if (getenv("PLAIT_TEST_VERBOSE"))
        printf("     %d withdrawn, %d serial A\n", withdrawn, serial_a);
    CHECK_EQ(plait_barrier_destroy(bc_b), 0);
}

/* ---- a waiting writer cancelled while the last reader leaves: the reader queued
 * behind the writer gets in either way ---- */

static plait_rwlock *rc_rw;
static atomic_int rc_w;

static void *rc_writer(void *arg)
{
    (void)arg;
    int r = plait_rwlock_wrlock(rc_rw, SOON());
    atomic_store(&rc_w, r);
    if (r == 0)
        CHECK_EQ(plait_rwlock_wrunlock(rc_rw), 0);
    return NULL;
}

static void *rc_reader(void *arg)
{
    int r = plait_rwlock_rdlock(rc_rw, SOON());
    *(int *)arg = r;
    if (r == 0)
        CHECK_EQ(plait_rwlock_rdunlock(rc_rw), 0);
    return NULL;
}

TEST(rwlock_writer_cancel_raced_by_last_reader)
{
    CHECK_EQ(plait_rwlock_create(&rc_rw), 0);
    for (int i = 0; i < 300; i++) {
        CHECK_EQ(plait_rwlock_rdlock(rc_rw, 0), 0);
        atomic_store(&rc_w, 1000);
        plait_task t;
        CHECK_EQ(plait_thread_start(&t, rc_writer, NULL, NULL), 0);
        for (;;) { /* until the writer waits: a new reader is held back then */
            int r = plait_rwlock_rdlock(rc_rw, 0);
            if (r == -ETIMEDOUT)
                break;
            CHECK_EQ(r, 0);
            CHECK_EQ(plait_rwlock_rdunlock(rc_rw), 0);
            sched_yield();
        }
        int rr = 1000;
        pthread_t th;
        thread_start(&th, rc_reader, &rr);
        if (i & 1)
            sched_yield();
        if (i & 2) {
            CHECK_EQ(plait_cancel(t), 0);
            CHECK_EQ(plait_rwlock_rdunlock(rc_rw), 0);
        } else {
            CHECK_EQ(plait_rwlock_rdunlock(rc_rw), 0);
            CHECK_EQ(plait_cancel(t), 0);
        }
        int rj = plait_join(t, NULL, SOON());
        CHECK(rj == 0 || rj == -ECANCELED);
        thread_join(th);
        int rw = atomic_load(&rc_w);
        CHECK(rw == 0 || rw == -ECANCELED);
        CHECK_EQ(rr, 0);
    }
    CHECK_EQ(plait_rwlock_destroy(rc_rw), 0);
}

/* ---- "Unlock wakes the first waiter (FIFO)", as Go's sync.Mutex: a waiter woken to
 * try again that finds the mutex taken by a running locker (barging) keeps its place
 * at the head of the queue; it is not sent behind the waiters that came after it ---- */

static struct {
    plait_mutex *m;
    int order[2];
    int n;
} ff;

static void *ff_locker(void *p)
{
    CHECK_EQ(plait_mutex_lock(ff.m, SOON()), 0);
    ff.order[ff.n++] = INT(p);
    CHECK_EQ(plait_mutex_unlock(ff.m), 0);
    return NULL;
}

static void *ff_main(void *p)
{
    (void)p;
    CHECK_EQ(plait_mutex_create(&ff.m), 0);
    ff.n = 0;
    CHECK_EQ(plait_mutex_lock(ff.m, SOON()), 0);
    plait_task w[2];
    CHECK_EQ(plait_spawn(&w[0], ff_locker, ARG(1)), 0);
    settle(); /* waiter 1 queues first */
    CHECK_EQ(plait_spawn(&w[1], ff_locker, ARG(2)), 0);
    settle(); /* then waiter 2 */
    /* wakes waiter 1 to try again (or, past 1 ms, hands it the mutex) */
    CHECK_EQ(plait_mutex_unlock(ff.m), 0);
    int r = plait_mutex_lock(ff.m, 0); /* barging: waiter 1 has not run yet */
    if (r == 0) {
        settle(); /* waiter 1 finds it held and waits again */
        CHECK_EQ(plait_mutex_unlock(ff.m), 0); /* the first waiter is waiter 1 still */
    } else {
        CHECK_EQ(r, -ETIMEDOUT); /* handed to waiter 1 (over 1 ms): it is first anyway */
    }
    for (int i = 0; i < 2; i++)
        CHECK_EQ(plait_join(w[i], NULL, SOON()), 0);
    CHECK_EQ(ff.n, 2);
    CHECK_EQ(ff.order[0], 1);
    CHECK_EQ(ff.order[1], 2);
    CHECK_EQ(plait_mutex_destroy(ff.m), 0);
    return NULL;
}

TEST(mutex_woken_waiter_that_loses_keeps_its_place) { check_run(ff_main, NULL); }

/* ---- a once whose runner (a coroutine) is cancelled in fn: a waiter on another
 * scheduler and a plain thread waiter run it again, exactly one of them ---- */

static struct {
    plait_once once;
    plait_event *go;    /* fn of the first run blocks on it */
    atomic_int runs, successes, entered;
} oc;

static int oc_fn(void *arg)
{
    (void)arg;
    int run = atomic_fetch_add(&oc.runs, 1);
    if (run == 0) {
        atomic_store(&oc.entered, 1);
        int r = plait_event_wait(oc.go, SOON()); /* cancelled here */
        return r < 0 ? r : -EIO;
    }
    atomic_fetch_add(&oc.successes, 1);
    return 0;
}

static void *oc_runner(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_once_call(&oc.once, oc_fn, NULL, SOON()), -ECANCELED);
    return NULL;
}

static void *oc_waiter(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_once_call(&oc.once, oc_fn, NULL, SOON()), 0);
    return NULL;
}

static void *oc_s1(void *arg)
{
    plait_task *t = arg;
    CHECK_EQ(plait_spawn(t, oc_runner, NULL), 0);
    CHECK_EQ(plait_join(*t, NULL, SOON()), -ECANCELED);
    return NULL;
}

static void *oc_s2(void *arg)
{
    (void)arg;
    return oc_waiter(NULL);
}

TEST(once_runner_cancelled_waiters_elsewhere_run_it)
{
    memset(&oc, 0, sizeof oc);
    oc.once = (plait_once)PLAIT_ONCE_INIT;
    CHECK_EQ(plait_event_create(&oc.go), 0);
    plait_task runner;
    sched_thread s1, s2;
    sched_thread_start(&s1, oc_s1, &runner);
    while (!atomic_load(&oc.entered))
        sched_yield();
    sched_thread_start(&s2, oc_s2, NULL);
    pthread_t th;
    thread_start(&th, oc_waiter, NULL);
    for (int i = 0; i < 50; i++)
        sched_yield(); /* (they wait, or are about to) */
    CHECK_EQ(plait_cancel(runner), 0);
    sched_thread_join(&s1);
    sched_thread_join(&s2);
    thread_join(th);
    CHECK_EQ(atomic_load(&oc.runs), 2);
    CHECK_EQ(atomic_load(&oc.successes), 1);
    CHECK_EQ(plait_once_call(&oc.once, oc_fn, NULL, 0), 0);
    CHECK_EQ(atomic_load(&oc.runs), 2);
    CHECK_EQ(plait_event_destroy(oc.go), 0);
}

RUN_TESTS(CASE(mutex_woken_waiter_that_loses_keeps_its_place),
          CASE(once_runner_cancelled_waiters_elsewhere_run_it),
          CASE(cond_signal_raced_by_cancel_of_a_thread_waiter),
          CASE(rwlock_writer_cancel_raced_by_last_reader),
          CASE(barrier_cancel_raced_by_completion))
