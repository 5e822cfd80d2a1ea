/* test_chaos.c — a seeded random "chaos" driver.
 *
 * Coroutines on three schedulers, plain pthreads, plait threads and pool tasks pick
 * random operations on a small shared set of objects: channel send, receive, close and
 * select (buffered and unbuffered, deadlines near now), mutex, rwlock, semaphore,
 * condition, event, wait group, barrier, sleeps, futures (spawn / submit / thread
 * start, then join with a deadline, wait_any, wait_all, cancel, detach), structured
 * groups cancelled from outside and from inside, and a cancellation storm: every child
 * task is published in a registry, and any party may cancel any of them at any moment,
 * whatever wait it is in.  Deadlines are picked near now so that they expire together
 * with wake-ups.
 *
 * Invariants checked at the end: every item a send reported sent (0) was received
 * exactly once, and no item a send reported unsent (-EPIPE, -ETIMEDOUT, -ECANCELED,
 * or a select case not chosen) was received; the semaphore count is back to its
 * initial value and never exceeded; the mutex and rwlock were exclusive; every
 * condition ticket handed over is accounted for and cond_wait returned holding the
 * mutex on every outcome; every completed barrier round released exactly `parties`
 * callers with one serial; every join gave either the child's own result or
 * -ECANCELED; every child that started finished; every object can be destroyed (no
 * waiter left behind).  Every wait has a deadline, so a hang is a failure.
 *
 * CHAOS_SEED=n picks the seed (printed), CHAOS_OPS=n the operations per party (the
 * default keeps the program under 3 s).
 *
 * Two focused cases beside it: cross_thread_wakeups (ping-pong between a plain thread or
 * a coroutine of another scheduler and a scheduler parked on its futex or, with a
 * descriptor watched, on its poller: a lost wake-up fails the round's 5 s wait), and
 * timeout_meets_wakeup (a plain thread's deadline expiring at the moment of a release or
 * a send: the permit or element is taken exactly once).  CHAOS_PP_ROUNDS sets their
 * rounds. */
#include "helpers.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define N_CHANS 8
#define N_SCHEDS 3
#define CORO_PARTIES 4 /* per scheduler */
#define PTHREAD_PARTIES 2
#define PLAIT_THREAD_PARTIES 2
#define POOL_PARTIES 2
/* the pool's size, the semaphore's count and the barrier's parties vary with the seed */
#define POOL_THREADS (1 + (int)(S.seed % 4))
#define N_PARTIES (N_SCHEDS * CORO_PARTIES + PTHREAD_PARTIES + PLAIT_THREAD_PARTIES + POOL_PARTIES)
#define SEM_LIMIT (1 + (int)(S.seed / 4 % 3))
#define BAR_PARTIES (2 + (long)(S.seed / 12 % 3))
#define N_VICTIMS 64
#define MAX_ITEMS (1 << 22)
#define MAX_CHILDREN (1 << 20)
#define LONG_WAIT() plait_deadline_in(30 * PLAIT_SEC)

enum kind { CORO, PTHREAD, PLAIT_THREAD, POOL_TASK };

static struct {
    uint64_t seed;
    int ops;
    plait_event *go;
    plait_pool *pool;

    plait_chan *ch[N_CHANS];
    atomic_int next_item;
    atomic_uchar item_state[MAX_ITEMS]; /* 1 sent, 2 unsent */
    atomic_uchar item_recv[MAX_ITEMS];
    atomic_long sent, unsent, received, closes;

    plait_mutex *m;
    long m_counter; /* under m */
    atomic_int m_inside;
    atomic_long m_incs;

    plait_rwlock *rw;
    atomic_int rw_readers, rw_writers;

    plait_sem *sem;
    atomic_int sem_inside;

    plait_mutex *cm;
    plait_cond *cv;
    long tickets;        /* under cm */
    atomic_int cm_inside;
    atomic_long tickets_given, tickets_taken;

    plait_event *ev;
    plait_waitgroup *wg;

    plait_barrier *bar;
    atomic_long bar_released, bar_serial;

    pthread_mutex_t vlock;
    plait_task victims[N_VICTIMS];
    atomic_long cancels, cancels_hit;

    atomic_int next_child;
    atomic_long child_started, child_finished;
    /* detached plait thread children are joined at the end instead */
    plait_task deferred[MAX_CHILDREN / 16];
    int deferred_ids[MAX_CHILDREN / 16];
    int n_deferred; /* under vlock */
    atomic_long joins_ok, joins_canceled, joins_timedout;

    atomic_int pool_closing; /* the end's destroy: a detached pool task's submit gets -EPIPE */
    atomic_long violations;
    atomic_long bad_codes;
    atomic_long ops_done;
} S;

static void bad(const char *what, int code)
{
    if (atomic_fetch_add(&S.bad_codes, 1) < 20)
        fprintf(stderr, "  chaos seed %llu: %s returned %d (%s)\n", (unsigned long long)S.seed,
                what, code, plait_strerror(code));
}

static void violation(const char *what)
{
    if (atomic_fetch_add(&S.violations, 1) < 20)
        fprintf(stderr, "  chaos seed %llu: violation: %s\n", (unsigned long long)S.seed, what);
}

/* a wait that may fail with a timeout or a cancellation */
static bool ok_wait(const char *what, int r)
{
    if (r == 0 || r == -ETIMEDOUT || r == -ECANCELED)
        return r == 0;
    bad(what, r);
    return false;
}

static void pause_(void)
{
    if (plait_in_coroutine())
        plait_yield();
    else
        sched_yield();
}

/* deadlines near now: past, a few µs, a few hundred µs, a few ms */
static int64_t pick_deadline(uint64_t *rs)
{
    uint32_t x = rnd(rs);
    switch (x % 8) {
    case 0: return 0;
    case 1: return plait_now();
    case 2: case 3: return plait_deadline_in((x >> 8) % (20 * PLAIT_US));
    case 4: case 5: return plait_deadline_in((x >> 8) % (500 * PLAIT_US));
    default: return plait_deadline_in((x >> 8) % (5 * PLAIT_MS));
    }
}

/* a timeout before its deadline, or a wait that ends far past it */
static void timing(const char *what, int r, int64_t d)
{
    int64_t now = plait_now();
    if (r == -ETIMEDOUT && now < d) {
        if (atomic_fetch_add(&S.violations, 1) < 20)
            fprintf(stderr, "  chaos seed %llu: %s timed out %lld ns before its deadline\n",
                    (unsigned long long)S.seed, what, (long long)(d - now));
    }
    if (d > 0 && now - d > 10 * PLAIT_SEC)
        violation("a wait overran its deadline by 10 s");
}

/* ---- channels ---- */

static int new_item(void)
{
    int v = atomic_fetch_add(&S.next_item, 1);
    if (v >= MAX_ITEMS) {
        violation("too many items");
        abort();
    }
    return v;
}

static void mark_sent(int v, bool ok)
{
    if (atomic_exchange(&S.item_state[v], ok ? 1 : 2) != 0)
        violation("item marked twice");
    atomic_fetch_add(ok ? &S.sent : &S.unsent, 1);
}

static void got(int v)
{
    if (v < 0 || v >= atomic_load(&S.next_item)) {
        violation("received a value never sent");
        return;
    }
    if (atomic_fetch_add(&S.item_recv[v], 1) != 0)
        violation("item received twice");
    atomic_fetch_add(&S.received, 1);
}

static void op_send(uint64_t *rs)
{
    plait_chan *c = S.ch[rnd(rs) % N_CHANS];
    int v = new_item();
    int64_t d = pick_deadline(rs);
    int r = plait_chan_send(c, &v, d);
    timing("chan_send", r, d);
    if (r != 0 && r != -EPIPE && r != -ETIMEDOUT && r != -ECANCELED)
        bad("chan_send", r);
    mark_sent(v, r == 0);
}

static void op_recv(uint64_t *rs)
{
    plait_chan *c = S.ch[rnd(rs) % N_CHANS];
    int v = -1;
    int64_t d = pick_deadline(rs);
    int r = plait_chan_recv(c, &v, d);
    timing("chan_recv", r, d);
    if (r == 0)
        got(v);
    else if (r != -EPIPE && r != -ETIMEDOUT && r != -ECANCELED)
        bad("chan_recv", r);
}

static void op_select(uint64_t *rs)
{
    plait_select_case cs[10];
    int vals[10];
    size_t n = 1 + rnd(rs) % (rnd(rs) % 4 ? 4 : 10);
    for (size_t i = 0; i < n; i++) {
        bool send = rnd(rs) & 1;
        vals[i] = send ? new_item() : -1;
        cs[i] = (plait_select_case){.chan = S.ch[rnd(rs) % N_CHANS],
                                    .op = send ? PLAIT_SEND : PLAIT_RECV,
                                    .elem = &vals[i], .result = 12345};
    }
    int64_t d = pick_deadline(rs);
    int r = plait_select(cs, n, d);
    timing("select", r, d);
    if (r < 0 && r != -ETIMEDOUT && r != -ECANCELED)
        bad("select", r);
    if (r >= (int)n)
        bad("select index", r);
    for (size_t i = 0; i < n; i++) {
        bool chosen = r == (int)i;
        if (chosen && cs[i].result != 0 && cs[i].result != -EPIPE)
            bad("select case result", cs[i].result);
        if (!chosen && cs[i].result != 12345)
            violation("select wrote the result of a case not chosen");
        if (cs[i].op == PLAIT_SEND)
            mark_sent(vals[i], chosen && cs[i].result == 0);
        else if (chosen && cs[i].result == 0)
            got(vals[i]);
        else if (vals[i] != -1)
            violation("select wrote into a receive case not completed");
    }
}

static void op_close(uint64_t *rs)
{
    /* rare: most channels stay open most of the run */
    if (rnd(rs) % (uint32_t)(S.ops / 3 + 1) != 0)
        return;
    int r = plait_chan_close(S.ch[rnd(rs) % N_CHANS]);
    if (r != 0 && r != -EPIPE)
        bad("chan_close", r);
    if (r == 0)
        atomic_fetch_add(&S.closes, 1);
}

/* ---- locks ---- */

static void op_mutex(uint64_t *rs)
{
    int64_t d = pick_deadline(rs);
    int r = plait_mutex_lock(S.m, d);
    timing("mutex_lock", r, d);
    if (!ok_wait("mutex_lock", r))
        return;
    if (atomic_fetch_add(&S.m_inside, 1) != 0)
        violation("mutex not exclusive");
    S.m_counter++;
    atomic_fetch_add(&S.m_incs, 1);
    if (rnd(rs) % 4 == 0)
        pause_();
    if (rnd(rs) % 8 == 0)
        plait_sleep_until(plait_deadline_in(rnd(rs) % (50 * PLAIT_US)));
    atomic_fetch_sub(&S.m_inside, 1);
    r = plait_mutex_unlock(S.m);
    if (r != 0)
        bad("mutex_unlock", r);
}

static void op_rw(uint64_t *rs)
{
    bool write = rnd(rs) % 3 == 0;
    int64_t d = pick_deadline(rs);
    int r = write ? plait_rwlock_wrlock(S.rw, d) : plait_rwlock_rdlock(S.rw, d);
    timing("rwlock", r, d);
    if (!ok_wait(write ? "wrlock" : "rdlock", r))
        return;
    if (write) {
        if (atomic_fetch_add(&S.rw_writers, 1) != 0 || atomic_load(&S.rw_readers) != 0)
            violation("writer not exclusive");
        if (rnd(rs) % 4 == 0)
            pause_();
        atomic_fetch_sub(&S.rw_writers, 1);
        r = plait_rwlock_wrunlock(S.rw);
    } else {
        atomic_fetch_add(&S.rw_readers, 1);
        if (atomic_load(&S.rw_writers) != 0)
            violation("reader beside a writer");
        if (rnd(rs) % 4 == 0)
            pause_();
        atomic_fetch_sub(&S.rw_readers, 1);
        r = plait_rwlock_rdunlock(S.rw);
    }
    if (r != 0)
        bad("rw unlock", r);
}

static void op_sem(uint64_t *rs)
{
    int64_t d = pick_deadline(rs);
    int r = plait_sem_acquire(S.sem, d);
    timing("sem_acquire", r, d);
    if (!ok_wait("sem_acquire", r))
        return;
    if (atomic_fetch_add(&S.sem_inside, 1) >= SEM_LIMIT)
        violation("semaphore over its count");
    if (rnd(rs) % 3 == 0)
        pause_();
    atomic_fetch_sub(&S.sem_inside, 1);
    r = plait_sem_release(S.sem);
    if (r != 0)
        bad("sem_release", r);
}

static void op_cond(uint64_t *rs)
{
    int r = plait_mutex_lock(S.cm, pick_deadline(rs));
    if (!ok_wait("cond mutex_lock", r))
        return;
    if (atomic_fetch_add(&S.cm_inside, 1) != 0)
        violation("cond mutex not exclusive");
    uint32_t x = rnd(rs);
    if (x % 3 == 0) {
        S.tickets++;
        atomic_fetch_add(&S.tickets_given, 1);
        r = x % 2 ? plait_cond_signal(S.cv) : plait_cond_broadcast(S.cv);
        if (r != 0)
            bad("cond_signal", r);
    } else {
        int64_t d = pick_deadline(rs);
        r = 0;
        while (S.tickets == 0 && r == 0) {
            atomic_fetch_sub(&S.cm_inside, 1);
            r = plait_cond_wait(S.cv, S.cm, d);
            timing("cond_wait", r, d);
            /* the mutex is held again on every outcome */
            if (atomic_fetch_add(&S.cm_inside, 1) != 0)
                violation("cond_wait returned without the mutex");
            if (r != 0 && r != -ETIMEDOUT && r != -ECANCELED)
                bad("cond_wait", r);
        }
        if (S.tickets > 0) {
            S.tickets--;
            atomic_fetch_add(&S.tickets_taken, 1);
        }
    }
    atomic_fetch_sub(&S.cm_inside, 1);
    r = plait_mutex_unlock(S.cm);
    if (r != 0)
        bad("cond mutex_unlock", r);
}

static void op_event(uint64_t *rs)
{
    uint32_t x = rnd(rs) % 4;
    int r;
    if (x == 0)
        r = plait_event_set(S.ev);
    else if (x == 1)
        r = plait_event_reset(S.ev);
    else {
        int64_t d = pick_deadline(rs);
        int r2 = plait_event_wait(S.ev, d);
        timing("event_wait", r2, d);
        ok_wait("event_wait", r2);
        return;
    }
    if (r != 0)
        bad("event set/reset", r);
}

static void op_wg(uint64_t *rs)
{
    if (rnd(rs) % 2) {
        int64_t d = pick_deadline(rs);
        int r2 = plait_waitgroup_wait(S.wg, d);
        timing("waitgroup_wait", r2, d);
        ok_wait("waitgroup_wait", r2);
        return;
    }
    int r = plait_waitgroup_add(S.wg, 1);
    if (r != 0) {
        bad("waitgroup_add", r);
        return;
    }
    if (rnd(rs) % 2)
        plait_sleep_until(pick_deadline(rs));
    else
        pause_();
    r = plait_waitgroup_done(S.wg);
    if (r != 0)
        bad("waitgroup_done", r);
}

static void op_barrier(uint64_t *rs)
{
    int64_t d = pick_deadline(rs);
    int r = plait_barrier_wait(S.bar, d);
    timing("barrier_wait", r, d);
    if (r == PLAIT_BARRIER_SERIAL) {
        atomic_fetch_add(&S.bar_serial, 1);
        atomic_fetch_add(&S.bar_released, 1);
    } else if (r == 0) {
        atomic_fetch_add(&S.bar_released, 1);
    } else if (r != -ETIMEDOUT && r != -ECANCELED) {
        bad("barrier_wait", r);
    }
}

static void op_sleep(uint64_t *rs)
{
    int64_t d = pick_deadline(rs);
    int r = plait_sleep_until(d);
    timing("sleep_until", r == 0 ? -ETIMEDOUT : r, d); /* 0: the deadline has passed */
    if (r != 0 && r != -ECANCELED)
        bad("sleep_until", r);
}

/* ---- the cancellation storm ---- */

static void publish(plait_task t, uint64_t *rs)
{
    pthread_mutex_lock(&S.vlock);
    S.victims[rnd(rs) % N_VICTIMS] = t;
    pthread_mutex_unlock(&S.vlock);
}

static void op_cancel(uint64_t *rs)
{
    pthread_mutex_lock(&S.vlock);
    plait_task t = S.victims[rnd(rs) % N_VICTIMS];
    pthread_mutex_unlock(&S.vlock);
    if (!t.future)
        return;
    int r = plait_cancel(t); /* may be stale: -ESRCH */
    atomic_fetch_add(&S.cancels, 1);
    if (r == 0)
        atomic_fetch_add(&S.cancels_hit, 1);
    else if (r != -ESRCH)
        bad("cancel", r);
}

/* ---- children ---- */

static void random_op(uint64_t *rs, int depth);

/* how deep the caller is: 0 for a party, 1 for its children, 2 for theirs */
static plait_key depth_key;
static atomic_uchar depth_of[MAX_CHILDREN];
static int current_depth(void) { return (int)(intptr_t)plait_local_get(depth_key); }

static void *child(void *p)
{
    int id = INT(p);
    atomic_fetch_add(&S.child_started, 1);
    uint64_t rs = S.seed ^ ((uint64_t)id * 0x9e3779b97f4a7c15ull) ^ 0x5555;
    rnd(&rs);
    int n = 1 + (int)(rnd(&rs) % 6);
    int depth = atomic_load(&depth_of[id % MAX_CHILDREN]);
    void *old = plait_local_get(depth_key);
    if (plait_local_set(depth_key, ARG(depth)) != 0)
        bad("local_set", -1);
    for (int i = 0; i < n && !plait_cancelled(); i++)
        random_op(&rs, depth);
    plait_local_set(depth_key, old); /* a pool task run on top of another */
    atomic_fetch_add(&S.child_finished, 1);
    return ARG(2 * id + 1);
}

static void *thread_child(void *p) { return child(p); }


static int new_child_id(void);
static _Thread_local bool in_nested_main; /* nothing cancels a nested main on its own */

/* a child that runs a short-lived scheduler of its own: its main is a child too, and
 * spawns a few more coroutine children there (published for the storm) */
static void *sched_child_main(void *p)
{
    uint64_t rs = S.seed ^ ((uint64_t)INT(p) * 0x2545f4914f6cdd1dull) ^ 0xabcd;
    rnd(&rs);
    plait_task t[3];
    int ids[3];
    size_t n = rnd(&rs) % 4;
    for (size_t i = 0; i < n; i++) {
        ids[i] = new_child_id();
        if (plait_spawn(&t[i], child, ARG(ids[i])) != 0) {
            bad("nested spawn", -1);
            return NULL;
        }
        pthread_mutex_lock(&S.vlock);
        S.victims[rnd(&rs) % N_VICTIMS] = t[i];
        pthread_mutex_unlock(&S.vlock);
    }
    in_nested_main = true;
    void *v = child(p);
    in_nested_main = false;
    for (size_t i = 0; i < n; i++) {
        void *cv = NULL;
        int r = plait_join(t[i], &cv, pick_deadline(&rs));
        if (r == -ETIMEDOUT || (r == -ECANCELED && plait_cancelled())) {
            plait_detach(t[i]); /* plait_run cancels it and waits */
            continue;
        }
        if (r == 0) {
            atomic_fetch_add(&S.joins_ok, 1);
            if ((intptr_t)cv != 2 * ids[i] + 1)
                violation("nested join gave a wrong result");
        } else if (r != -ECANCELED) {
            bad("nested join", r);
        }
    }
    return v;
}

static void *sched_child(void *p)
{
    void *v = NULL;
    int r = plait_run(sched_child_main, p, &v);
    if (r != 0 && r != -ECANCELED)
        bad("nested plait_run", r);
    return r == 0 ? v : PLAIT_FAIL(r);
}

/* detach, but keep plait threads' handles to join at the end (a withdrawn thread
 * runs nothing, so no counter can tell when detached ones have all ended) */
static int detach_child(plait_task t, int id)
{
    if (id > 0)
        return plait_detach(t);
    pthread_mutex_lock(&S.vlock);
    int i = S.n_deferred++;
    if (i >= (int)(sizeof S.deferred / sizeof S.deferred[0]))
        abort();
    S.deferred[i] = t;
    S.deferred_ids[i] = -id;
    pthread_mutex_unlock(&S.vlock);
    return 0;
}

static int new_child_id(void)
{
    int id = atomic_fetch_add(&S.next_child, 1) + 1;
    atomic_store(&depth_of[id % MAX_CHILDREN], (unsigned char)(current_depth() + 1));
    return id;
}

/* start one child of a kind the caller can have */
static int start_child(uint64_t *rs, plait_task *t, int *id)
{
    *id = new_child_id();
    uint32_t x = rnd(rs) % 16;
    int r;
    if (plait_in_coroutine() && x < 10) {
        r = plait_spawn(t, child, ARG(*id));
    } else if (x == 15 || x == 14) {
        r = plait_thread_start(t, x == 15 ? thread_child : sched_child, ARG(*id), NULL);
        *id = -*id; /* a thread child: negative id */
    } else if (x == 13) {
        r = plait_pool_submit(S.pool, t, sched_child, ARG(*id));
    } else {
        r = plait_pool_submit(S.pool, t, child, ARG(*id));
    }
    if (r == -EPIPE && atomic_load(&S.pool_closing))
        return r;
    if (r != 0)
        bad("start child", r);
    else
        publish(*t, rs);
    return r;
}

static void check_outcome(int r, void *v, int id)
{
    if (r == 0) {
        atomic_fetch_add(&S.joins_ok, 1);
        if ((intptr_t)v != 2 * (id < 0 ? -id : id) + 1)
            violation("join gave a wrong result");
    } else if (r == -ECANCELED) {
        atomic_fetch_add(&S.joins_canceled, 1);
    } else {
        bad("join outcome", r);
    }
}

/* whether a handle is consumed after a join's r: -ECANCELED is the task's outcome, or
 * the caller's own cancellation (the handle stays valid) */
static bool consumed_by(int r, plait_task t)
{
    if (r == -ETIMEDOUT)
        return false;
    if (r == -ECANCELED && plait_cancelled())
        return plait_wait_any(&t, 1, 0) == -ESRCH;
    return true;
}

/* join for good: cancel, then wait long (a cancelled caller looks again and again) */
static void join_for_good(plait_task t, int id)
{
    int r = plait_cancel(t);
    if (r != 0)
        bad("cancel own child", r);
    int64_t until = plait_deadline_in(20 * PLAIT_SEC);
    for (;;) {
        void *v = NULL;
        r = plait_join(t, &v, plait_cancelled() ? 0 : LONG_WAIT());
        if (consumed_by(r, t)) {
            check_outcome(r, v, id);
            return;
        }
        if (plait_now() > until) {
            violation("a cancelled child did not finish (hang)");
            plait_detach(t);
            return;
        }
        pause_();
    }
}

static void op_children(uint64_t *rs)
{
    plait_task t[10];
    int ids[10];
    size_t n = 0, want = 1 + rnd(rs) % (rnd(rs) % 8 ? 3 : 10);
    for (size_t i = 0; i < want; i++)
        if (start_child(rs, &t[n], &ids[n]) == 0)
            n++;
    if (n == 0)
        return;
    /* cancel some at once (before they start, perhaps) or after a moment */
    for (size_t i = 0; i < n; i++) {
        uint32_t x = rnd(rs) % 8;
        if (x == 0)
            plait_cancel(t[i]);
    }
    uint32_t how = rnd(rs) % 6;
    if (how == 0) {
        /* detach them all */
        for (size_t i = 0; i < n; i++)
            if (detach_child(t[i], ids[i]) != 0)
                bad("detach", -1);
        return;
    }
    if (how == 1) {
        void *res[10];
        int errs[10];
        int r = plait_wait_all(t, n, res, errs, pick_deadline(rs));
        if (r == -ETIMEDOUT || (r == -ECANCELED && plait_cancelled() &&
                                plait_wait_any(&t[0], 1, 0) != -ESRCH)) { /* none consumed */
            for (size_t i = 0; i < n; i++)
                join_for_good(t[i], ids[i]);
            return;
        }
        if (r != 0 && r != -ECANCELED)
            bad("wait_all", r);
        for (size_t i = 0; i < n; i++)
            check_outcome(errs[i], res[i], ids[i]);
        return;
    }
    if (how == 2) {
        int r = plait_wait_any(t, n, pick_deadline(rs));
        if (r < 0 && r != -ETIMEDOUT && r != -ECANCELED)
            bad("wait_any", r);
        if (r >= (int)n)
            bad("wait_any index", r);
        if (r >= 0) {
            void *v = NULL;
            int j = plait_join(t[r], &v, 0);
            if (j == -ETIMEDOUT)
                violation("wait_any's task not finished");
            else
                check_outcome(j, v, ids[r]);
            if (j != -ETIMEDOUT) {
                t[r] = t[n - 1];
                ids[r] = ids[n - 1];
                n--;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        void *v = NULL;
        int r = plait_join(t[i], &v, pick_deadline(rs));
        if (!consumed_by(r, t[i])) {
            atomic_fetch_add(&S.joins_timedout, 1);
            if (rnd(rs) % 2) {
                if (detach_child(t[i], ids[i]) != 0)
                    bad("detach after timeout", -1);
            } else {
                join_for_good(t[i], ids[i]);
            }
            continue;
        }
        check_outcome(r, v, ids[i]);
    }
}

static void *group_canceller(void *g)
{
    plait_sleep(rnd(&(uint64_t){(uint64_t)(uintptr_t)g ^ (uint64_t)plait_now()}) % (200 * PLAIT_US));
    int r = plait_group_cancel(g);
    if (r != 0)
        bad("group_cancel from inside", r);
    return NULL;
}

typedef struct {
    int id;
    atomic_int *ended;
} group_child_arg;

static void *group_child(void *p)
{
    group_child_arg *a = p;
    void *v = child(ARG(a->id));
    atomic_fetch_add(a->ended, 1);
    return v;
}

static void op_group(uint64_t *rs)
{
    atomic_int ended = 0;
    int nspawned = 0;
    group_child_arg args[4];
    if (!plait_in_coroutine())
        return;
    plait_group *g;
    int r = plait_group_create(&g);
    if (r != 0) {
        bad("group_create", r);
        return;
    }
    plait_task kept[4];
    int kept_ids[4];
    size_t nk = 0;
    size_t n = 1 + rnd(rs) % 4;
    for (size_t i = 0; i < n; i++) {
        int id = new_child_id();
        bool keep = rnd(rs) & 1;
        args[i] = (group_child_arg){id, &ended};
        r = plait_group_spawn(g, keep ? &kept[nk] : NULL, group_child, &args[i]);
        if (r != 0) {
            bad("group_spawn", r);
            continue;
        }
        nspawned++;
        if (keep) {
            publish(kept[nk], rs);
            kept_ids[nk++] = id;
        }
    }
    if (rnd(rs) % 3 == 0) {
        r = plait_group_spawn(g, NULL, group_canceller, g);
        if (r != 0 && r != -EPIPE)
            bad("group_spawn canceller", r);
    }
    uint32_t x = rnd(rs) % 4;
    if (x == 0)
        plait_group_cancel(g);
    else if (x == 1)
        plait_sleep_until(pick_deadline(rs));
    if (x != 0 && rnd(rs) % 2)
        plait_group_cancel(g);
    int64_t wait_deadline = pick_deadline(rs);
    r = plait_group_wait(g, wait_deadline);
    if (r != 0 && r != -ETIMEDOUT && !(r == -ECANCELED && plait_cancelled()))
        bad("group_wait", r);
    /* a coroutine runs its function even when cancelled before it started; a cancelled
     * wait waits for the children to its deadline */
    bool waited_out = r == 0 || (r == -ECANCELED && plait_now() < wait_deadline);
    if (waited_out && atomic_load(&ended) != nspawned)
        violation("group_wait returned 0 (or its caller's -ECANCELED before its deadline) "
                  "while a child still runs");
    for (size_t i = 0; i < nk; i++) {
        void *v = NULL;
        r = plait_join(kept[i], &v, pick_deadline(rs));
        if (!consumed_by(r, kept[i]))
            join_for_good(kept[i], kept_ids[i]);
        else
            check_outcome(r, v, kept_ids[i]);
    }
    r = plait_group_destroy(g);
    if (r != 0)
        bad("group_destroy", r);
    if (atomic_load(&ended) != nspawned)
        violation("group_destroy returned while a child still runs");
}


/* ---- pairs: a child waits with deadline T on a private object, the caller acts on
 * it at T (and perhaps cancels the child at T): timeouts, cancellations and wake-ups
 * at the same moment, with exact invariants ---- */

enum { P_SEM, P_UNBUF, P_BUF, P_MUTEX, P_RW, P_EVENT, P_BARRIER, P_WG, P_COND, P_KINDS };

typedef struct {
    int kind;
    int64_t T;
    plait_sem *sem;
    plait_chan *ch;
    plait_mutex *m;
    plait_rwlock *rw;
    plait_event *ev;
    plait_barrier *bar;
    plait_waitgroup *wg;
    plait_cond *cv;
    int flag; /* under m, for P_COND */
    int r, value, held_ok;
} pair_t;

static void *pair_child(void *p)
{
    pair_t *pr = p;
    int r = 0;
    switch (pr->kind) {
    case P_SEM: r = plait_sem_acquire(pr->sem, pr->T); break;
    case P_UNBUF: case P_BUF: r = plait_chan_recv(pr->ch, &pr->value, pr->T); break;
    case P_MUTEX:
        r = plait_mutex_lock(pr->m, pr->T);
        if (r == 0)
            pr->held_ok = plait_mutex_unlock(pr->m) == 0;
        break;
    case P_RW:
        r = plait_rwlock_rdlock(pr->rw, pr->T);
        if (r == 0)
            pr->held_ok = plait_rwlock_rdunlock(pr->rw) == 0;
        break;
    case P_EVENT: r = plait_event_wait(pr->ev, pr->T); break;
    case P_BARRIER: r = plait_barrier_wait(pr->bar, pr->T); break;
    case P_WG: r = plait_waitgroup_wait(pr->wg, pr->T); break;
    case P_COND: {
        int64_t lock_deadline = plait_deadline_in(5 * PLAIT_SEC);
        r = plait_mutex_lock(pr->m, lock_deadline);
        if (r != 0)
            break;
        while (!pr->flag && r == 0)
            r = plait_cond_wait(pr->cv, pr->m, pr->T);
        pr->value = pr->flag;
        pr->held_ok = plait_mutex_unlock(pr->m) == 0; /* held on every outcome */
        break;
    }
    }
    pr->r = r;
    return pr;
}

static void op_pair(uint64_t *rs)
{
    pair_t pr = {.kind = (int)(rnd(rs) % P_KINDS), .r = 999, .value = -1};
    int r = 0;
    switch (pr.kind) {
    case P_SEM: r = plait_sem_create(&pr.sem, 0); break;
    case P_UNBUF: r = plait_chan_create(&pr.ch, sizeof(int), 0); break;
    case P_BUF: r = plait_chan_create(&pr.ch, sizeof(int), 1); break;
    case P_MUTEX: r = plait_mutex_create(&pr.m); if (!r) r = plait_mutex_lock(pr.m, 0); break;
    case P_RW: r = plait_rwlock_create(&pr.rw); if (!r) r = plait_rwlock_wrlock(pr.rw, 0); break;
    case P_EVENT: r = plait_event_create(&pr.ev); break;
    case P_BARRIER: r = plait_barrier_create(&pr.bar, 2); break;
    case P_WG: r = plait_waitgroup_create(&pr.wg); if (!r) r = plait_waitgroup_add(pr.wg, 1); break;
    case P_COND: r = plait_mutex_create(&pr.m); if (!r) r = plait_cond_create(&pr.cv); break;
    }
    if (r != 0) {
        bad("pair create", r);
        return;
    }
    pr.T = plait_deadline_in(20 * PLAIT_US + rnd(rs) % (300 * PLAIT_US));
    plait_task t;
    uint32_t x = rnd(rs) % 8;
    if (plait_in_coroutine() && x < 5)
        r = plait_spawn(&t, pair_child, &pr);
    else if (x == 7)
        r = plait_thread_start(&t, pair_child, &pr, NULL);
    else
        r = plait_pool_submit(S.pool, &t, pair_child, &pr);
    if (r != 0) {
        bad("pair start", r);
        return;
    }
    uint32_t cancel = rnd(rs) % 4; /* 0: before acting, 1: after, else not */
    /* act at T, or a hair before or after it */
    int64_t skew = (int64_t)(rnd(rs) % 21) * 1000 - 10000;
    plait_sleep_until(pr.T + skew);
    if (cancel == 0)
        plait_cancel(t);
    int cr = 0, send_r = 0;
    int v = 42;
    switch (pr.kind) {
    case P_SEM: cr = plait_sem_release(pr.sem); break;
    case P_UNBUF: send_r = plait_chan_send(pr.ch, &v, pr.T + 50 * PLAIT_US); break;
    case P_BUF: cr = plait_chan_send(pr.ch, &v, 0); break;
    case P_MUTEX: cr = plait_mutex_unlock(pr.m); break;
    case P_RW: cr = plait_rwlock_wrunlock(pr.rw); break;
    case P_EVENT: cr = plait_event_set(pr.ev); break;
    case P_BARRIER: send_r = plait_barrier_wait(pr.bar, pr.T + 50 * PLAIT_US); break;
    case P_WG: cr = plait_waitgroup_done(pr.wg); break;
    case P_COND:
        cr = plait_mutex_lock(pr.m, plait_deadline_in(5 * PLAIT_SEC));
        if (cr == 0) {
            pr.flag = 1;
            cr = plait_cond_signal(pr.cv);
            if (plait_mutex_unlock(pr.m) != 0)
                bad("pair cond unlock", -1);
        }
        break;
    }
    if (cr != 0)
        bad("pair act", cr);
    if (cancel == 1)
        plait_cancel(t);
    void *res = NULL;
    r = plait_join(t, &res, plait_deadline_in(20 * PLAIT_SEC));
    if (r == -ETIMEDOUT) {
        violation("pair child hangs");
        abort(); /* its argument is on this stack */
    }
    if (r != 0 && r != -ECANCELED)
        bad("pair join", r);
    /* r == -ECANCELED with pr.r == 999: cancelled before it ran */
    int cr_ = pr.r;
    if (cr_ != 999 && cr_ != 0 && cr_ != -ETIMEDOUT && cr_ != -ECANCELED &&
        !(pr.kind == P_BARRIER && cr_ == PLAIT_BARRIER_SERIAL))
        bad("pair child wait", cr_);
    bool got = cr_ == 0 || (pr.kind == P_BARRIER && cr_ == PLAIT_BARRIER_SERIAL);
    switch (pr.kind) {
    case P_SEM:
        if (got + (plait_sem_acquire(pr.sem, 0) == 0) != 1)
            violation("pair sem: the release was taken twice or lost");
        CHECK_EQ(plait_sem_destroy(pr.sem), 0);
        break;
    case P_UNBUF:
        if ((send_r == 0) != got || (got && pr.value != 42))
            violation("pair unbuffered: send and receive disagree");
        if (send_r != 0 && send_r != -ETIMEDOUT)
            bad("pair send", send_r);
        if (plait_chan_destroy(pr.ch) != 0)
            violation("pair unbuffered: a waiter left on the channel");
        break;
    case P_BUF: {
        int w;
        bool left = plait_chan_recv(pr.ch, &w, 0) == 0;
        if (got + left != 1 || (got && pr.value != 42))
            violation("pair buffered: the element was taken twice or lost");
        if (plait_chan_destroy(pr.ch) != 0)
            violation("pair buffered: a waiter left on the channel");
        break;
    }
    case P_MUTEX:
        if (got && !pr.held_ok)
            violation("pair mutex: not the owner after lock");
        if (plait_mutex_lock(pr.m, 0) != 0)
            violation("pair mutex: left locked");
        else
            plait_mutex_unlock(pr.m);
        if (plait_mutex_destroy(pr.m) != 0)
            violation("pair mutex: a waiter left");
        break;
    case P_RW:
        if (got && !pr.held_ok)
            violation("pair rwlock: rdunlock failed");
        if (plait_rwlock_wrlock(pr.rw, 0) != 0)
            violation("pair rwlock: left locked");
        else
            plait_rwlock_wrunlock(pr.rw);
        if (plait_rwlock_destroy(pr.rw) != 0)
            violation("pair rwlock: a waiter left");
        break;
    case P_EVENT:
        if (plait_event_destroy(pr.ev) != 0)
            violation("pair event: a waiter left");
        break;
    case P_BARRIER: {
        bool cgot = send_r == 0 || send_r == PLAIT_BARRIER_SERIAL;
        if (send_r != 0 && send_r != PLAIT_BARRIER_SERIAL && send_r != -ETIMEDOUT)
            bad("pair barrier caller", send_r);
        if (cgot != got)
            violation("pair barrier: one party released, the other not");
        if (cgot && got && (send_r == PLAIT_BARRIER_SERIAL) == (cr_ == PLAIT_BARRIER_SERIAL))
            violation("pair barrier: not exactly one serial");
        if (plait_barrier_destroy(pr.bar) != 0)
            violation("pair barrier: a waiter left");
        break;
    }
    case P_WG:
        if (plait_waitgroup_destroy(pr.wg) != 0)
            violation("pair waitgroup: a waiter left");
        break;
    case P_COND:
        if (cr_ != 999 && cr_ != -ECANCELED && cr_ != 0 && cr_ != -ETIMEDOUT)
            bad("pair cond", cr_);
        if (cr_ != 999 && pr.held_ok != 1 && !(cr_ == -ECANCELED && pr.value == -1))
            violation("pair cond: cond_wait returned without the mutex");
        if (plait_cond_destroy(pr.cv) != 0)
            violation("pair cond: a waiter left");
        if (plait_mutex_destroy(pr.m) != 0)
            violation("pair cond: mutex busy");
        break;
    }
}

/* a function run for a caller that must not return while it runs */
typedef struct {
    int id;
    atomic_int *inflight;
} watched_arg;

static void *watched_child(void *p)
{
    watched_arg *a = p;
    atomic_fetch_add(a->inflight, 1);
    void *v = child(ARG(a->id));
    atomic_fetch_sub(a->inflight, 1);
    return v;
}

static void op_to_thread(uint64_t *rs)
{
    int id = new_child_id();
    void *v = NULL;
    atomic_int inflight = 0;
    watched_arg a = {id, &inflight};
    int r = plait_to_thread(watched_child, &a, &v, pick_deadline(rs));
    if (atomic_load(&inflight) != 0)
        violation("to_thread returned while its function runs");
    if (r == 0) {
        atomic_fetch_add(&S.joins_ok, 1);
        if ((intptr_t)v != 2 * id + 1)
            violation("to_thread gave a wrong result");
    } else if (r != -ETIMEDOUT && r != -ECANCELED) {
        bad("to_thread", r);
    }
}

static void op_completed(uint64_t *rs)
{
    plait_completed *set;
    int r = plait_completed_create(&set);
    if (r != 0) {
        bad("completed_create", r);
        return;
    }
    plait_task t[4];
    int ids[4];
    size_t n = 0, want = 1 + rnd(rs) % 4;
    for (size_t i = 0; i < want; i++)
        if (start_child(rs, &t[n], &ids[n]) == 0) {
            r = plait_completed_add(set, t[n]);
            if (r != 0)
                bad("completed_add", r);
            n++;
        }
    bool joined[4] = {false, false, false, false};
    for (size_t k = 0; k < n; k++) {
        plait_task d;
        r = plait_completed_next(set, &d, pick_deadline(rs));
        if (r == -ETIMEDOUT || r == -ECANCELED)
            break;
        if (r != 0) {
            bad("completed_next", r);
            break;
        }
        size_t i = 0;
        while (i < n && (t[i].future != d.future || t[i].generation != d.generation))
            i++;
        if (i == n || joined[i]) {
            violation("completed_next gave back a task not watched, or twice");
            break;
        }
        void *v = NULL;
        r = plait_join(d, &v, 0);
        if (r == -ETIMEDOUT)
            violation("completed_next gave back a task not finished");
        check_outcome(r, v, ids[i]);
        joined[i] = true;
        if (rnd(rs) % 3 == 0 && k + 1 < n)
            plait_cancel(t[(k + 1) % n]);
    }
    r = plait_completed_destroy(set);
    if (r != 0)
        bad("completed_destroy", r);
    for (size_t i = 0; i < n; i++)
        if (!joined[i])
            join_for_good(t[i], ids[i]);
}

static atomic_int once_tries;
static plait_once the_once = PLAIT_ONCE_INIT;
static atomic_int once_runs;

static int once_fn(void *arg)
{
    uint64_t *rs = arg;
    plait_sleep_until(pick_deadline(rs));
    if (atomic_fetch_add(&once_tries, 1) < 5)
        return -EIO; /* the first few runs fail: a waiter runs it again */
    atomic_fetch_add(&once_runs, 1);
    return 0;
}

static void op_once(uint64_t *rs)
{
    int r = plait_once_call(&the_once, once_fn, rs, pick_deadline(rs));
    if (r == 0 && atomic_load(&once_runs) != 1)
        violation("once returned 0 before its function succeeded");
    if (r != 0 && r != -EIO && r != -ETIMEDOUT && r != -ECANCELED)
        bad("once_call", r);
}

static void op_pool_map(uint64_t *rs)
{
    enum { MAXN = 12 };
    void *args[MAXN];
    watched_arg wa[MAXN];
    atomic_int inflight = 0;
    /* on the heap, looked at again after a moment: nothing is written after the return */
    void **results = malloc(MAXN * sizeof *results);
    int *errors = malloc(MAXN * sizeof *errors);
    int ids[MAXN];
    if (!results || !errors)
        abort();
    size_t n = 1 + rnd(rs) % MAXN;
    for (size_t i = 0; i < n; i++) {
        ids[i] = new_child_id();
        wa[i] = (watched_arg){ids[i], &inflight};
        args[i] = &wa[i];
        results[i] = ARG(-7);
        errors[i] = 777;
    }
    int r = plait_pool_map(S.pool, watched_child, args, n, results, errors, pick_deadline(rs));
    if (atomic_load(&inflight) != 0)
        violation("pool_map returned while a call runs");
    void *res_copy[MAXN];
    int err_copy[MAXN];
    memcpy(res_copy, results, n * sizeof *results);
    memcpy(err_copy, errors, n * sizeof *errors);
    plait_sleep(rnd(rs) % (200 * PLAIT_US));
    if (memcmp(res_copy, results, n * sizeof *results) || memcmp(err_copy, errors, n * sizeof *errors))
        violation("pool_map wrote into the arrays after it returned");
    free(results);
    free(errors);
    if (r == -EPIPE && atomic_load(&S.pool_closing))
        return;
    if (r != 0 && r != -ETIMEDOUT && r != -ECANCELED)
        bad("pool_map", r);
    for (size_t i = 0; i < n; i++) {
        if (err_copy[i] == 0) {
            if ((intptr_t)res_copy[i] != 2 * ids[i] + 1)
                violation("pool_map gave a wrong result");
        } else if (err_copy[i] != -ECANCELED) {
            bad("pool_map item", err_copy[i]);
        } else if (res_copy[i] != NULL) {
            violation("pool_map: a failed item's result is not NULL");
        }
    }
}

/* a pool of its own, its tasks cancelled by a shutdown while they wait */
static void op_private_pool(uint64_t *rs)
{
    plait_pool *pool;
    plait_pool_options po = {.threads = 1 + rnd(rs) % 2, .name = "chaos-p"};
    int r = plait_pool_create(&pool, &po);
    if (r != 0) {
        bad("pool_create", r);
        return;
    }
    plait_task t[6];
    int ids[6];
    size_t n = 1 + rnd(rs) % 6;
    for (size_t i = 0; i < n; i++) {
        ids[i] = new_child_id();
        r = plait_pool_submit(pool, &t[i], child, ARG(ids[i]));
        if (r != 0) {
            bad("private submit", r);
            n = i;
            break;
        }
        publish(t[i], rs);
    }
    plait_sleep_until(pick_deadline(rs));
    int how = rnd(rs) % 2 ? PLAIT_POOL_CANCEL : PLAIT_POOL_DRAIN;
    r = plait_pool_shutdown(pool, how, pick_deadline(rs));
    if (r != 0 && r != -ETIMEDOUT && r != -ECANCELED)
        bad("pool_shutdown", r);
    if (r != 0) {
        r = plait_pool_shutdown(pool, PLAIT_POOL_CANCEL, plait_cancelled() ? 0 : LONG_WAIT());
        if (r != 0 && !(plait_cancelled() && (r == -ECANCELED || r == -ETIMEDOUT)))
            bad("pool_shutdown cancel", r);
    }
    /* a cancelled caller's shutdown may have returned before the tasks ended */
    int64_t until = plait_deadline_in(20 * PLAIT_SEC);
    while ((r = plait_pool_destroy(pool)) == -EBUSY && plait_now() < until) {
        pause_();
        plait_pool_shutdown(pool, PLAIT_POOL_CANCEL, 0);
    }
    if (r != 0) {
        bad("pool_destroy", r);
        return;
    }
    /* after the shutdown every task has an outcome */
    for (size_t i = 0; i < n; i++) {
        void *v = NULL;
        r = plait_join(t[i], &v, 0);
        if (r == -ETIMEDOUT)
            violation("a task of a shut pool has no outcome");
        else
            check_outcome(r, v, ids[i]);
    }
}

static void random_op(uint64_t *rs, int depth)
{
    bool is_child = depth >= 2;
    uint32_t x = rnd(rs) % (is_child ? 16 : 25);
    if (is_child && x == 15) {
        /* a child coroutine waits until it is cancelled (its parent's join_for_good,
         * the storm, or plait_run's end): nothing else ends this wait */
        if (plait_in_coroutine() && !in_nested_main) {
            int r = rnd(rs) % 2 ? plait_sleep_until(PLAIT_FOREVER)
                                : plait_event_wait(S.ev, PLAIT_FOREVER);
            if (r != -ECANCELED && r != 0)
                bad("wait for ever", r);
        }
        atomic_fetch_add(&S.ops_done, 1);
        return;
    }
    switch (x) {
    case 0: case 1: op_send(rs); break;
    case 2: case 3: op_recv(rs); break;
    case 4: op_select(rs); break;
    case 5: op_mutex(rs); break;
    case 6: op_rw(rs); break;
    case 7: op_sem(rs); break;
    case 8: op_cond(rs); break;
    case 9: op_event(rs); break;
    case 10: op_wg(rs); break;
    case 11: op_barrier(rs); break;
    case 12: op_sleep(rs); break;
    case 13: op_cancel(rs); break;
    case 14: op_close(rs); break;
    case 15: case 16: op_children(rs); break;
    case 17: op_group(rs); break;
    case 18: case 19:
        if (depth == 0)
            op_pair(rs); /* its argument is on this stack: a caller that cannot be cancelled */
        else
            op_sleep(rs);
        break;
    case 20: op_to_thread(rs); break;
    case 21: op_completed(rs); break;
    case 22: op_once(rs); break;
    case 23: op_pool_map(rs); break;
    case 24: if (rnd(rs) % 4 == 0) op_private_pool(rs); break;
    }
    atomic_fetch_add(&S.ops_done, 1);
}

/* ---- parties ---- */

static void *party(void *p)
{
    int id = INT(p);
    if (plait_event_wait(S.go, LONG_WAIT()) != 0)
        violation("go");
    uint64_t rs = S.seed * 0x2545f4914f6cdd1dull + (uint64_t)id * 0x9e3779b97f4a7c15ull + 1;
    rnd(&rs);
    for (int i = 0; i < S.ops; i++) {
        random_op(&rs, 0);
        if (plait_cancelled())
            violation("a party was cancelled");
    }
    return ARG(id);
}

/* a thread that only cancels: published tasks, in whatever wait they are */
static atomic_int storm_stop;
static void *stormer(void *p)
{
    uint64_t rs = S.seed ^ 0x5707;
    (void)p;
    rnd(&rs);
    while (!atomic_load(&storm_stop)) {
        op_cancel(&rs);
        uint32_t x = rnd(&rs) % 4;
        if (x == 0)
            sched_yield();
        else if (x == 1)
            nanosleep(&(struct timespec){0, (long)(rnd(&rs) % 50000)}, NULL);
    }
    return NULL;
}

static void *sched_main(void *p)
{
    int s = INT(p);
    plait_task t[CORO_PARTIES];
    for (int i = 0; i < CORO_PARTIES; i++)
        CHECK_EQ(plait_spawn(&t[i], party, ARG(s * CORO_PARTIES + i)), 0);
    void *res[CORO_PARTIES];
    CHECK_EQ(plait_wait_all(t, CORO_PARTIES, res, NULL, plait_deadline_in(100 * PLAIT_SEC)), 0);
    return NULL;
}

/* the plait thread children that were "detached" */
static void join_deferred(void)
{
    static int done; /* one run per process */
    for (;; done++) {
        pthread_mutex_lock(&S.vlock);
        bool more = done < S.n_deferred;
        plait_task t = more ? S.deferred[done] : (plait_task){0};
        int id = more ? S.deferred_ids[done] : 0;
        pthread_mutex_unlock(&S.vlock);
        if (!more)
            break;
        void *v = NULL;
        int r = plait_join(t, &v, plait_deadline_in(30 * PLAIT_SEC));
        CHECK(r == 0 || r == -ECANCELED);
        check_outcome(r, v, -id);
    }
}

static void chaos_run(uint64_t seed, int ops)
{
    memset(&S, 0, sizeof S);
    static bool key_made;
    if (!key_made)
        CHECK_EQ(plait_key_create(&depth_key, NULL), 0);
    key_made = true;
    the_once = (plait_once)PLAIT_ONCE_INIT;
    atomic_store(&once_tries, 0);
    atomic_store(&once_runs, 0);
    S.seed = seed;
    S.ops = ops;
    pthread_mutex_init(&S.vlock, NULL);
    CHECK_EQ(plait_event_create(&S.go), 0);
    plait_pool_options po = {.threads = (unsigned)POOL_THREADS, .name = "chaos"};
    CHECK_EQ(plait_pool_create(&S.pool, &po), 0);
    for (int i = 0; i < N_CHANS; i++)
        CHECK_EQ(plait_chan_create(&S.ch[i], sizeof(int), (size_t)(i % 4 == 0 ? 0 : i % 4 == 1 ? 1 : i)), 0);
    CHECK_EQ(plait_mutex_create(&S.m), 0);
    CHECK_EQ(plait_rwlock_create(&S.rw), 0);
    CHECK_EQ(plait_sem_create(&S.sem, (unsigned)SEM_LIMIT), 0);
    CHECK_EQ(plait_mutex_create(&S.cm), 0);
    CHECK_EQ(plait_cond_create(&S.cv), 0);
    CHECK_EQ(plait_event_create(&S.ev), 0);
    CHECK_EQ(plait_waitgroup_create(&S.wg), 0);
    CHECK_EQ(plait_barrier_create(&S.bar, (unsigned)BAR_PARTIES), 0);
    int64_t start = plait_now();

    int pid = N_SCHEDS * CORO_PARTIES;
    sched_thread st[N_SCHEDS];
    for (int s = 0; s < N_SCHEDS; s++)
        sched_thread_start(&st[s], sched_main, ARG(s));
    pthread_t pth[PTHREAD_PARTIES];
    for (int i = 0; i < PTHREAD_PARTIES; i++)
        thread_start(&pth[i], party, ARG(pid++));
    plait_task h[PLAIT_THREAD_PARTIES + POOL_PARTIES];
    int nh = 0;
    for (int i = 0; i < PLAIT_THREAD_PARTIES; i++)
        CHECK_EQ(plait_thread_start(&h[nh++], party, ARG(pid++), NULL), 0);
    for (int i = 0; i < POOL_PARTIES; i++)
        CHECK_EQ(plait_pool_submit(S.pool, &h[nh++], party, ARG(pid++)), 0);
    pthread_t storm;
    atomic_store(&storm_stop, 0);
    thread_start(&storm, stormer, NULL);
    CHECK_EQ(plait_event_set(S.go), 0);

    for (int i = 0; i < nh; i++) {
        void *v = NULL;
        CHECK_EQ(plait_join(h[i], &v, plait_deadline_in(100 * PLAIT_SEC)), 0);
    }
    for (int i = 0; i < PTHREAD_PARTIES; i++)
        thread_join(pth[i]);
    atomic_store(&storm_stop, 1);
    thread_join(storm);
    for (int s = 0; s < N_SCHEDS; s++)
        sched_thread_join(&st[s]);
    join_deferred();
    /* the pool drains its detached children */
    atomic_store(&S.pool_closing, 1);
    CHECK_EQ(plait_pool_destroy(S.pool), 0);
    join_deferred(); /* those its last tasks started */
    CHECK_EQ(atomic_load(&S.child_started), atomic_load(&S.child_finished));

    /* close every channel and drain it */
    for (int i = 0; i < N_CHANS; i++) {
        int r = plait_chan_close(S.ch[i]);
        CHECK(r == 0 || r == -EPIPE);
        int v, rr;
        while ((rr = plait_chan_recv(S.ch[i], &v, 0)) == 0)
            got(v);
        CHECK_EQ(rr, -EPIPE);
    }
    int n_items = atomic_load(&S.next_item);
    long unmarked = 0, lost = 0, ghost = 0;
    for (int v = 0; v < n_items; v++) {
        int s = atomic_load(&S.item_state[v]), rc = atomic_load(&S.item_recv[v]);
        if (s == 0)
            unmarked++;
        else if (s == 1 && rc != 1)
            lost++;
        else if (s == 2 && rc != 0)
            ghost++;
    }
    if (getenv("PLAIT_TEST_VERBOSE") || lost || ghost || unmarked)
        printf("     seed %llu: %.2f s, %ld ops, %d items (%ld sent, %ld unsent, %ld received), "
               "%ld closes, %d children, joins %ld ok / %ld cancelled / %ld timed out, "
               "cancels %ld (%ld live), barrier %ld/%ld\n",
               (unsigned long long)seed, (double)(plait_now() - start) / PLAIT_SEC,
               atomic_load(&S.ops_done), n_items, atomic_load(&S.sent), atomic_load(&S.unsent),
               atomic_load(&S.received), atomic_load(&S.closes), atomic_load(&S.next_child),
               atomic_load(&S.joins_ok), atomic_load(&S.joins_canceled),
               atomic_load(&S.joins_timedout), atomic_load(&S.cancels),
               atomic_load(&S.cancels_hit), atomic_load(&S.bar_released),
               atomic_load(&S.bar_serial));
    CHECK_EQ(unmarked, 0);
    CHECK_EQ(lost, 0);   /* reported sent, never received */
    CHECK_EQ(ghost, 0);  /* reported unsent, yet received */

    CHECK_EQ(atomic_load(&S.violations), 0);
    CHECK_EQ(atomic_load(&S.bad_codes), 0);
    CHECK_EQ(S.m_counter, atomic_load(&S.m_incs));
    CHECK_EQ(plait_sem_value(S.sem), SEM_LIMIT);
    CHECK_EQ(atomic_load(&S.tickets_given), atomic_load(&S.tickets_taken) + S.tickets);
    CHECK_EQ(atomic_load(&S.bar_released), BAR_PARTIES * atomic_load(&S.bar_serial));
    CHECK_EQ(plait_waitgroup_wait(S.wg, 0), 0);
    CHECK(atomic_load(&once_runs) <= 1);

    /* everything idle: no waiter left behind anywhere */
    CHECK_EQ(plait_mutex_lock(S.m, 0), 0);
    CHECK_EQ(plait_mutex_unlock(S.m), 0);
    CHECK_EQ(plait_rwlock_wrlock(S.rw, 0), 0);
    CHECK_EQ(plait_rwlock_wrunlock(S.rw), 0);
    for (int i = 0; i < N_CHANS; i++)
        CHECK_EQ(plait_chan_destroy(S.ch[i]), 0);
    CHECK_EQ(plait_mutex_destroy(S.m), 0);
    CHECK_EQ(plait_rwlock_destroy(S.rw), 0);
    CHECK_EQ(plait_sem_destroy(S.sem), 0);
    CHECK_EQ(plait_mutex_destroy(S.cm), 0);
    CHECK_EQ(plait_cond_destroy(S.cv), 0);
    CHECK_EQ(plait_event_destroy(S.ev), 0);
    CHECK_EQ(plait_waitgroup_destroy(S.wg), 0);
    CHECK_EQ(plait_barrier_destroy(S.bar), 0);
    CHECK_EQ(plait_event_destroy(S.go), 0);
    pthread_mutex_destroy(&S.vlock);
}

/* ---- cross-thread wake-ups: none lost (each round's wait would time out) ---- */

#define PP_ROUNDS_DEFAULT (CHECK_TSAN ? 600 : CHECK_SANITIZED ? 2000 : 5000)
static int PP_ROUNDS; /* CHAOS_PP_ROUNDS, else PP_ROUNDS_DEFAULT */

static struct {
    plait_sem *ping, *pong;
    plait_chan *a, *b;
    int pipe_fd[2];
    atomic_int failures;
    atomic_int poller_up;
} P;

static void pp_fail(const char *what, int r, int round)
{
    if (atomic_fetch_add(&P.failures, 1) < 5)
        fprintf(stderr, "  ping-pong: %s returned %d (%s) at round %d\n", what, r,
                plait_strerror(r), round);
}

/* the answering side: a coroutine on its own scheduler */
static void *pp_answer_sem(void *p)
{
    (void)p;
    for (int i = 0; i < PP_ROUNDS; i++) {
        int r = plait_sem_acquire(P.ping, plait_deadline_in(5 * PLAIT_SEC));
        if (r != 0) {
            pp_fail("coroutine sem_acquire", r, i);
            return NULL;
        }
        if ((r = plait_sem_release(P.pong)) != 0)
            pp_fail("sem_release", r, i);
    }
    return NULL;
}

static void *pp_answer_chan(void *p)
{
    (void)p;
    for (int i = 0; i < PP_ROUNDS; i++) {
        int v;
        int r = plait_chan_recv(P.a, &v, plait_deadline_in(5 * PLAIT_SEC));
        if (r != 0 || v != i) {
            pp_fail("coroutine chan_recv", r ? r : -EPROTO, i);
            return NULL;
        }
        if ((r = plait_chan_send(P.b, &v, plait_deadline_in(5 * PLAIT_SEC))) != 0)
            pp_fail("coroutine chan_send", r, i);
    }
    return NULL;
}

/* keeps the answering scheduler's poller busy: it then sleeps in epoll / io_uring and
 * is woken through its eventfd */
static void *pp_fd_waiter(void *p)
{
    (void)p;
    atomic_store(&P.poller_up, 1);
    int r = plait_wait_fd(P.pipe_fd[0], PLAIT_READABLE, plait_deadline_in(50 * PLAIT_SEC));
    if (r != -ECANCELED && r <= 0)
        pp_fail("wait_fd", r, -1);
    return NULL;
}

static void *pp_sched_main(void *p)
{
    int mode = INT(p);
    plait_task fdw, t;
    if (mode & 1)
        CHECK_EQ(plait_spawn(&fdw, pp_fd_waiter, NULL), 0);
    CHECK_EQ(plait_spawn(&t, mode & 2 ? pp_answer_chan : pp_answer_sem, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, plait_deadline_in(50 * PLAIT_SEC)), 0);
    if (mode & 1) {
        CHECK_EQ(plait_cancel(fdw), 0);
        int r = plait_join(fdw, NULL, SOON());
        CHECK(r == 0 || r == -ECANCELED);
    }
    return NULL;
}

/* the asking side, on a plain thread or (mode & 4) a coroutine of another scheduler */
static void *pp_ask(void *p)
{
    int mode = INT(p);
    uint64_t rs = 12345;
    for (int i = 0; i < PP_ROUNDS; i++) {
        /* now and then let the answering scheduler go to sleep first */
        uint32_t x = rnd(&rs) % 64;
        if (x == 0) {
            if (plait_in_coroutine())
                plait_sleep(20 * PLAIT_US);
            else
                nanosleep(&(struct timespec){0, 20000}, NULL);
        }
        int r;
        if (mode & 2) {
            int v = i, w = -1;
            r = plait_chan_send(P.a, &v, plait_deadline_in(5 * PLAIT_SEC));
            if (r == 0)
                r = plait_chan_recv(P.b, &w, plait_deadline_in(5 * PLAIT_SEC));
            if (r == 0 && w != i)
                r = -EPROTO;
        } else {
            r = plait_sem_release(P.ping);
            if (r == 0)
                r = plait_sem_acquire(P.pong, plait_deadline_in(5 * PLAIT_SEC));
        }
        if (r != 0) {
            pp_fail("asking side", r, i);
            return NULL;
        }
    }
    return NULL;
}

TEST(cross_thread_wakeups)
{
    const char *e = getenv("CHAOS_PP_ROUNDS");
    PP_ROUNDS = e ? atoi(e) : PP_ROUNDS_DEFAULT;
    for (int mode = 0; mode < 8; mode++) {
        memset(&P, 0, sizeof P);
        CHECK_EQ(pipe(P.pipe_fd), 0);
        CHECK_EQ(plait_sem_create(&P.ping, 0), 0);
        CHECK_EQ(plait_sem_create(&P.pong, 0), 0);
        CHECK_EQ(plait_chan_create(&P.a, sizeof(int), 0), 0);
        CHECK_EQ(plait_chan_create(&P.b, sizeof(int), 0), 0);
        sched_thread answer, ask;
        pthread_t th;
        sched_thread_start(&answer, pp_sched_main, ARG(mode));
        if (mode & 4)
            sched_thread_start(&ask, pp_ask, ARG(mode));
        else
            thread_start(&th, pp_ask, ARG(mode));
        if (mode & 4)
            sched_thread_join(&ask);
        else
            thread_join(th);
        sched_thread_join(&answer);
        CHECK_EQ(atomic_load(&P.failures), 0);
        CHECK_EQ(plait_sem_destroy(P.ping), 0);
        CHECK_EQ(plait_sem_destroy(P.pong), 0);
        CHECK_EQ(plait_chan_destroy(P.a), 0);
        CHECK_EQ(plait_chan_destroy(P.b), 0);
        close(P.pipe_fd[0]);
        close(P.pipe_fd[1]);
    }
}

/* ---- a plain thread's timeout at the moment of a release: the permit is taken
 * exactly once (by the waiter, or left in the semaphore) ---- */

static struct {
    plait_sem *sem;
    plait_chan *ch;
    _Atomic int64_t T;
    atomic_int round, got, ready;
    int rounds;
} M;

static void *meet_waiter(void *p)
{
    bool chan = INT(p);
    for (int i = 0; i < M.rounds; i++) {
        while (atomic_load(&M.round) != 2 * i + 1)
            sched_yield();
        int64_t T = atomic_load(&M.T);
        int v = -1;
        int r = chan ? plait_chan_recv(M.ch, &v, T) : plait_sem_acquire(M.sem, T);
        if (r != 0 && r != -ETIMEDOUT)
            pp_fail("meet wait", r, i);
        if (r == -ETIMEDOUT && plait_now() < T)
            pp_fail("meet wait early timeout", r, i);
        atomic_store(&M.got, r == 0);
        atomic_store(&M.round, 2 * i + 2);
    }
    return NULL;
}

TEST(timeout_meets_wakeup)
{
    const char *e = getenv("CHAOS_PP_ROUNDS");
    M.rounds = e ? atoi(e) : (CHECK_TSAN ? 300 : 1000);
    memset(&P, 0, sizeof P);
    for (int chan = 0; chan < 2; chan++) {
        CHECK_EQ(plait_sem_create(&M.sem, 0), 0);
        CHECK_EQ(plait_chan_create(&M.ch, sizeof(int), 1), 0);
        atomic_store(&M.round, 0);
        pthread_t th;
        thread_start(&th, meet_waiter, ARG(chan));
        uint64_t rs = 99;
        int taken = 0, left = 0;
        for (int i = 0; i < M.rounds; i++) {
            int64_t T = plait_deadline_in(30 * PLAIT_US + rnd(&rs) % (30 * PLAIT_US));
            atomic_store(&M.T, T);
            atomic_store(&M.round, 2 * i + 1);
            /* release at T, a hair before or after */
            int64_t at = T + (int64_t)(rnd(&rs) % 205000) - 5000;
            while (plait_now() < at)
                ;
            int v = i;
            int r = chan ? plait_chan_send(M.ch, &v, 0) : plait_sem_release(M.sem);
            CHECK_EQ(r, 0);
            while (atomic_load(&M.round) != 2 * i + 2)
                sched_yield();
            int back = chan ? plait_chan_recv(M.ch, &v, 0) : plait_sem_acquire(M.sem, 0);
            bool got = atomic_load(&M.got);
            taken += got;
            left += back == 0;
            if (got == (back == 0)) {
                pp_fail(got ? "a permit taken twice" : "a permit lost", -EPROTO, i);
                break;
            }
        }
        thread_join(th);
        if (getenv("PLAIT_TEST_VERBOSE"))
            printf("     %s: %d taken by the waiter, %d left\n", chan ? "chan" : "sem", taken, left);
        CHECK_EQ(atomic_load(&P.failures), 0);
        CHECK_EQ(plait_sem_destroy(M.sem), 0);
        CHECK_EQ(plait_chan_destroy(M.ch), 0);
    }
}

TEST(chaos)
{
    const char *s = getenv("CHAOS_SEED");
    const char *o = getenv("CHAOS_OPS");
    uint64_t seed = s ? strtoull(s, NULL, 0) : 1;
    int ops = o ? atoi(o) : (CHECK_TSAN ? 60 : CHECK_SANITIZED ? 120 : 300);
    printf("     chaos seed %llu, %d ops per party\n", (unsigned long long)seed, ops);
    fflush(stdout);
    chaos_run(seed, ops);
}

RUN_TESTS(CASE(chaos), CASE(cross_thread_wakeups), CASE(timeout_meets_wakeup))
