/* test_sync_liveness.c — review of the synchronisation primitives across models: liveness
 * of patient waiters (long deadlines that must never expire) beside impatient ones
 * (deadlines at about now) and cancelled ones, on coroutines of two schedulers, raw
 * pthreads, plait threads and pool tasks; and the documented edges one by one (review
 * 122).  Its defect: two mutex waiters woken to try again, each beaten by a running
 * locker, came back in reverse order (mutex_two_woken_waiters_that_lose_keep_their_order). */
#include "helpers.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A patient wait: one that never expires unless a wake-up was lost. */
#define PATIENT() plait_deadline_in(4 * PLAIT_SEC)

enum kind { K_CORO_A, K_CORO_B, K_PTHREAD, K_PLAIT_THREAD, K_POOL, K_KINDS };

/* ---- running a party of each kind ---- */

typedef struct party party;
struct party {
    void *(*fn)(party *p);
    int id;
    int kind;
    int mode; /* what the scenario makes of it */
    uint64_t rng;
    plait_task task; /* for plait threads, pool tasks and coroutines */
    pthread_t th;
    atomic_int started;
};

typedef struct {
    party *parties;
    int n;
    int sched; /* which scheduler (0: A, 1: B) */
    atomic_int *cancel_go;
} sched_arg;

static void *party_body(void *p)
{
    party *pp = p;
    atomic_store(&pp->started, 1);
    return pp->fn(pp);
}

static void *sched_main(void *arg)
{
    sched_arg *sa = arg;
    for (int i = 0; i < sa->n; i++) {
        party *p = &sa->parties[i];
        if (p->kind == (sa->sched ? K_CORO_B : K_CORO_A))
            CHECK_EQ(plait_spawn(&p->task, party_body, p), 0);
    }
    for (int i = 0; i < sa->n; i++) {
        party *p = &sa->parties[i];
        if (p->kind == (sa->sched ? K_CORO_B : K_CORO_A)) {
            int r = plait_join(p->task, NULL, plait_deadline_in(20 * PLAIT_SEC));
            CHECK(r == 0 || r == -ECANCELED);
        }
    }
    return NULL;
}

static void *raw_body(void *p)
{
    party_body(p);
    return NULL;
}

/* Start every party; coroutines go to two schedulers on their own threads.  The caller
 * then waits for them with join_parties. */
typedef struct {
    sched_thread st[2];
    sched_arg sa[2];
} crew;

static void start_parties(crew *c, party *ps, int n)
{
    for (int s = 0; s < 2; s++) {
        c->sa[s] = (sched_arg){ps, n, s, NULL};
    }
    for (int i = 0; i < n; i++) {
        party *p = &ps[i];
        atomic_init(&p->started, 0);
        p->id = i;
        if (!p->rng)
            p->rng = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
        switch (p->kind) {
        case K_PTHREAD:
            thread_start(&p->th, raw_body, p);
            break;
        case K_PLAIT_THREAD:
            CHECK_EQ(plait_thread_start(&p->task, party_body, p, NULL), 0);
            break;
        case K_POOL:
            CHECK_EQ(plait_pool_submit(plait_pool_default(), &p->task, party_body, p), 0);
            break;
        default:
            break;
        }
    }
    sched_thread_start(&c->st[0], sched_main, &c->sa[0]);
    sched_thread_start(&c->st[1], sched_main, &c->sa[1]);
}

static void join_parties(crew *c, party *ps, int n)
{
    for (int i = 0; i < n; i++) {
        party *p = &ps[i];
        if (p->kind == K_PTHREAD) {
            thread_join(p->th);
        } else if (p->kind == K_PLAIT_THREAD || p->kind == K_POOL) {
            int r = plait_join(p->task, NULL, plait_deadline_in(20 * PLAIT_SEC));
            CHECK(r == 0 || r == -ECANCELED);
        }
    }
    sched_thread_join(&c->st[0]);
    sched_thread_join(&c->st[1]);
}

/* Cancel a party that can be cancelled (not a raw pthread): false for one that cannot. */
static bool cancel_party(party *p)
{
    if (p->kind == K_PTHREAD || !atomic_load(&p->started))
        return false;
    int r = plait_cancel(p->task);
    CHECK(r == 0 || r == -ESRCH);
    return true;
}

enum mode { PATIENT_MODE, IMPATIENT, VICTIM };

static int64_t deadline_for(party *p)
{
    if (p->mode == IMPATIENT)
        return plait_deadline_in((int64_t)(rnd(&p->rng) % 50) * PLAIT_US);
    return PATIENT();
}

/* A result that must not be: a patient party that timed out (a lost wake-up). */
static atomic_int lost;

static void check_outcome(party *p, int r)
{
    if (r == -ETIMEDOUT && p->mode != IMPATIENT) {
        atomic_fetch_add(&lost, 1);
        fprintf(stderr, "  party %d (kind %d, mode %d) timed out\n", p->id, p->kind, p->mode);
    }
    if (r == -ECANCELED)
        CHECK(p->mode == VICTIM);
}

static void assign(party *ps, int n, uint64_t seed)
{
    memset(ps, 0, sizeof *ps * (size_t)n);
    for (int i = 0; i < n; i++) {
        ps[i].kind = i % K_KINDS;
        ps[i].mode = (i / K_KINDS) % 3;
        if (ps[i].kind == K_PTHREAD && ps[i].mode == VICTIM)
            ps[i].mode = PATIENT_MODE;
        ps[i].rng = seed * 1000003u + (uint64_t)i + 1;
    }
}

static void spin_a_little(unsigned n)
{
    for (volatile unsigned k = 0; k < n; k++)
        ;
}

/* Yield the CPU: a coroutine lets the others of its scheduler run (a cancelled one
 * too), a thread gives way to the other threads. */
static void give_way(void)
{
    if (plait_in_coroutine())
        (void)plait_yield();
    else
        sched_yield();
}

/* Cancel the victims, one by one, while they work. */
static void cancel_victims(party *ps, int n, uint64_t *rng)
{
    for (int i = 0; i < n; i++) {
        if (ps[i].mode != VICTIM)
            continue;
        spin_a_little(rnd(rng) % 20000);
        cancel_party(&ps[i]);
    }
}

/* ======================================================================== */
/* Liveness: read-write lock                                                 */
/* ======================================================================== */

static struct {
    plait_rwlock *rw;
    atomic_int readers, writers;
    atomic_int bad;
} rl;

static void *rl_party(party *p)
{
    for (int i = 0; i < 300; i++) {
        bool write = rnd(&p->rng) % 3 == 0;
        int r = write ? plait_rwlock_wrlock(rl.rw, deadline_for(p))
                      : plait_rwlock_rdlock(rl.rw, deadline_for(p));
        check_outcome(p, r);
        if (r == -ECANCELED)
            break;
        if (r < 0)
            continue;
        CHECK_EQ(r, 0);
        if (write) {
            if (atomic_fetch_add(&rl.writers, 1) != 0 || atomic_load(&rl.readers) != 0)
                atomic_fetch_add(&rl.bad, 1);
            spin_a_little(rnd(&p->rng) % 500);
            atomic_fetch_sub(&rl.writers, 1);
            CHECK_EQ(plait_rwlock_wrunlock(rl.rw), 0);
        } else {
            atomic_fetch_add(&rl.readers, 1);
            if (atomic_load(&rl.writers) != 0)
                atomic_fetch_add(&rl.bad, 1);
            spin_a_little(rnd(&p->rng) % 500);
            atomic_fetch_sub(&rl.readers, 1);
            CHECK_EQ(plait_rwlock_rdunlock(rl.rw), 0);
        }
        if (rnd(&p->rng) % 4 == 0)
            give_way();
    }
    return NULL;
}

TEST(rwlock_patient_waiters_never_expire)
{
    for (uint64_t seed = 1; seed <= 3; seed++) {
        enum { N = 15 };
        party ps[N];
        assign(ps, N, seed);
        for (int i = 0; i < N; i++)
            ps[i].fn = rl_party;
        CHECK_EQ(plait_rwlock_create(&rl.rw), 0);
        crew c;
        start_parties(&c, ps, N);
        uint64_t rng = seed;
        cancel_victims(ps, N, &rng);
        join_parties(&c, ps, N);
        CHECK_EQ(atomic_load(&rl.bad), 0);
        CHECK_EQ(atomic_load(&lost), 0);
        CHECK_EQ(plait_rwlock_destroy(rl.rw), 0);
    }
}

/* ======================================================================== */
/* Liveness: mutex and condition (tokens handed round with signal, not      */
/* broadcast: a signal that went to no one who takes the token would strand */
/* a patient waiter)                                                          */
/* ======================================================================== */

static struct {
    plait_mutex *m;
    plait_cond *c;
    int tokens;
    int holders;
    atomic_int bad;
} mc;

/* Lock for a party that must get it (to give a token back): a cancelled one tries
 * again until the mutex is free (a lock that can complete at once does). */
static void mc_lock_surely(party *p)
{
    for (;;) {
        int r = plait_mutex_lock(mc.m, PATIENT());
        if (r == 0)
            return;
        check_outcome(p, r);
        if (r != -ECANCELED)
            continue;
        give_way();
    }
}

static void *mc_party(party *p)
{
    for (int i = 0; i < 200; i++) {
        int r = plait_mutex_lock(mc.m, deadline_for(p));
        check_outcome(p, r);
        if (r == -ECANCELED)
            break;
        if (r < 0)
            continue;
        while (mc.tokens == 0 && r == 0)
            r = plait_cond_wait(mc.c, mc.m, deadline_for(p));
        check_outcome(p, r);
        bool took = mc.tokens > 0;
        if (took) {
            mc.tokens--;
            mc.holders++;
        }
        CHECK_EQ(plait_mutex_unlock(mc.m), 0);
        if (!took) {
            if (r == -ECANCELED)
                break;
            continue;
        }
        spin_a_little(rnd(&p->rng) % 500);
        mc_lock_surely(p);
        mc.holders--;
        mc.tokens++;
        CHECK_EQ(plait_cond_signal(mc.c), 0);
        CHECK_EQ(plait_mutex_unlock(mc.m), 0);
        if (r == -ECANCELED || plait_cancelled())
            break;
        if (rnd(&p->rng) % 4 == 0)
            give_way();
    }
    return NULL;
}

TEST(cond_tokens_patient_waiters_never_expire)
{
    for (uint64_t seed = 1; seed <= 3; seed++) {
        enum { N = 15 };
        party ps[N];
        assign(ps, N, seed);
        for (int i = 0; i < N; i++)
            ps[i].fn = mc_party;
        CHECK_EQ(plait_mutex_create(&mc.m), 0);
        CHECK_EQ(plait_cond_create(&mc.c), 0);
        mc.tokens = 2;
        crew c;
        start_parties(&c, ps, N);
        uint64_t rng = seed;
        cancel_victims(ps, N, &rng);
        join_parties(&c, ps, N);
        CHECK_EQ(mc.tokens, 2);
        CHECK_EQ(mc.holders, 0);
        CHECK_EQ(atomic_load(&lost), 0);
        CHECK_EQ(plait_cond_destroy(mc.c), 0);
        CHECK_EQ(plait_mutex_destroy(mc.m), 0);
    }
}

/* ======================================================================== */
/* Liveness and conservation: channels and select                           */
/* ======================================================================== */

enum { CH_ITEMS = 3000 };

static struct {
    plait_chan *ch[2]; /* unbuffered, buffered */
    atomic_int next_item;
    atomic_int consumed;
    atomic_int seen[CH_ITEMS];
} cs;

/* Send item with a select over both channels; a cancelled party (whose sends that
 * would block are refused) tries again until one can complete at once. */
static void cs_forward(party *p, int item)
{
    for (;;) {
        int a = item, b = item;
        plait_select_case cases[2] = {{.chan = cs.ch[0], .op = PLAIT_SEND, .elem = &a},
                                      {.chan = cs.ch[1], .op = PLAIT_SEND, .elem = &b}};
        int r = plait_select(cases, 2, PATIENT());
        if (r >= 0) {
            CHECK_EQ(cases[r].result, 0);
            return;
        }
        check_outcome(p, r);
        if (r == -ECANCELED)
            give_way();
    }
}

static void *cs_party(party *p)
{
    bool sender = p->mode == PATIENT_MODE && p->id % 2 == 0;
    if (sender) {
        for (;;) {
            int item = atomic_fetch_add(&cs.next_item, 1);
            if (item >= CH_ITEMS)
                return NULL;
            cs_forward(p, item);
        }
    }
    for (;;) {
        int a = -1, b = -1;
        plait_select_case cases[2] = {{.chan = cs.ch[0], .op = PLAIT_RECV, .elem = &a},
                                      {.chan = cs.ch[1], .op = PLAIT_RECV, .elem = &b}};
        int r = plait_select(cases, 2, deadline_for(p));
        if (r < 0) {
            check_outcome(p, r);
            if (r == -ECANCELED)
                return NULL;
            continue;
        }
        if (cases[r].result == -EPIPE)
            return NULL;
        CHECK_EQ(cases[r].result, 0);
        int item = r == 0 ? a : b;
        CHECK(item >= 0 && item < CH_ITEMS);
        if (item < 0 || item >= CH_ITEMS)
            return NULL;
        if (p->mode == PATIENT_MODE) {
            atomic_fetch_add(&cs.seen[item], 1);
            atomic_fetch_add(&cs.consumed, 1);
        } else {
            cs_forward(p, item); /* passed on: only patient parties consume */
        }
    }
}

/* The same, where the parties that pass items on keep a stash and select over a send
 * and a receive case on each channel at once (a select never pairs with itself, and
 * two such selects pair with each other). */
static void *cs_stash_party(party *p)
{
    if (p->mode == PATIENT_MODE)
        return cs_party(p);
    int stash[8], n = 0;
    for (;;) {
        int in[2] = {-1, -1}, out[2];
        plait_select_case cases[4];
        size_t k = 0;
        cases[k++] = (plait_select_case){.chan = cs.ch[0], .op = PLAIT_RECV, .elem = &in[0]};
        cases[k++] = (plait_select_case){.chan = cs.ch[1], .op = PLAIT_RECV, .elem = &in[1]};
        if (n > 0) {
            out[0] = out[1] = stash[n - 1];
            cases[k++] = (plait_select_case){.chan = cs.ch[0], .op = PLAIT_SEND, .elem = &out[0]};
            cases[k++] = (plait_select_case){.chan = cs.ch[1], .op = PLAIT_SEND, .elem = &out[1]};
        }
        /* full: only the send cases */
        plait_select_case *base = n == 8 ? cases + 2 : cases;
        size_t count = n == 8 ? 2 : k;
        int r = plait_select(base, count, deadline_for(p));
        if (r < 0) {
            check_outcome(p, r);
            if (r == -ECANCELED) {
                while (n > 0)
                    cs_forward(p, stash[--n]);
                return NULL;
            }
            continue;
        }
        r += (int)(base - cases);
        if (cases[r].result == -EPIPE) {
            CHECK_EQ(n, 0); /* closed only once everything was consumed */
            return NULL;
        }
        CHECK_EQ(cases[r].result, 0);
        if (r < 2) {
            int item = in[r];
            CHECK(item >= 0 && item < CH_ITEMS);
            stash[n++] = item;
        } else {
            n--;
        }
    }
}

static void run_chan_scenario(void *(*fn)(party *p))
{
    for (uint64_t seed = 1; seed <= 2; seed++) {
        enum { N = 15 };
        party ps[N];
        assign(ps, N, seed);
        for (int i = 0; i < N; i++)
            ps[i].fn = fn;
        CHECK_EQ(plait_chan_create(&cs.ch[0], sizeof(int), 0), 0);
        CHECK_EQ(plait_chan_create(&cs.ch[1], sizeof(int), 2), 0);
        atomic_store(&cs.next_item, 0);
        atomic_store(&cs.consumed, 0);
        for (int i = 0; i < CH_ITEMS; i++)
            atomic_store(&cs.seen[i], 0);
        crew c;
        start_parties(&c, ps, N);
        uint64_t rng = seed;
        cancel_victims(ps, N, &rng);
        int64_t until = plait_deadline_in(15 * PLAIT_SEC);
        while (atomic_load(&cs.consumed) < CH_ITEMS && plait_now() < until)
            sched_yield();
        CHECK_EQ(atomic_load(&cs.consumed), CH_ITEMS);
        CHECK_EQ(plait_chan_close(cs.ch[0]), 0);
        CHECK_EQ(plait_chan_close(cs.ch[1]), 0);
        join_parties(&c, ps, N);
        for (int i = 0; i < CH_ITEMS; i++)
            if (atomic_load(&cs.seen[i]) != 1) {
                CHECK_EQ(atomic_load(&cs.seen[i]), 1);
                break;
            }
        CHECK_EQ(atomic_load(&lost), 0);
        CHECK_EQ(plait_chan_destroy(cs.ch[0]), 0);
        CHECK_EQ(plait_chan_destroy(cs.ch[1]), 0);
    }
}

TEST(select_items_conserved_patient_parties_never_expire) { run_chan_scenario(cs_party); }

TEST(select_send_and_receive_cases_items_conserved) { run_chan_scenario(cs_stash_party); }

/* ======================================================================== */
/* Liveness: once whose fn fails a few times                                */
/* ======================================================================== */

static struct {
    plait_once once;
    atomic_int calls, running, successes;
    int fail_first;
} on;

static int on_fn(void *arg)
{
    (void)arg;
    if (atomic_fetch_add(&on.running, 1) != 0)
        CHECK(!"fn ran twice at once");
    int call = atomic_fetch_add(&on.calls, 1);
    spin_a_little(20000);
    if (plait_in_coroutine())
        (void)plait_yield(); /* the others of its scheduler wait meanwhile */
    atomic_fetch_sub(&on.running, 1);
    if (call < on.fail_first)
        return -EIO;
    atomic_fetch_add(&on.successes, 1);
    return 0;
}

static void *on_party(party *p)
{
    for (;;) {
        int r = plait_once_call(&on.once, on_fn, NULL, deadline_for(p));
        if (r == 0)
            return NULL;
        if (r == -EIO || (r == -ETIMEDOUT && p->mode == IMPATIENT)) {
            give_way();
            continue;
        }
        check_outcome(p, r);
        if (r == -ECANCELED)
            return NULL;
    }
}

TEST(once_failing_fn_patient_callers_never_expire)
{
    for (uint64_t seed = 1; seed <= 6; seed++) {
        enum { N = 15 };
        party ps[N];
        assign(ps, N, seed);
        for (int i = 0; i < N; i++)
            ps[i].fn = on_party;
        on.once = (plait_once)PLAIT_ONCE_INIT;
        atomic_store(&on.calls, 0);
        atomic_store(&on.successes, 0);
        on.fail_first = (int)seed;
        crew c;
        start_parties(&c, ps, N);
        uint64_t rng = seed;
        cancel_victims(ps, N, &rng);
        join_parties(&c, ps, N);
        CHECK_EQ(atomic_load(&on.successes), 1);
        CHECK_EQ(atomic_load(&lost), 0);
    }
}

/* ======================================================================== */
/* Mutex: FIFO for waiters woken to try again that a running locker beat     */
/* ======================================================================== */

/* "Unlock wakes the first waiter (FIFO) ... the woken waiter that finds it taken waits
 * again first in the queue, before those that came after it" (docs/API.md).  Two
 * unlocks, each followed by a running locker taking the mutex back, wake waiters 1 and
 * 2 to try again; both find it taken and wait again.  Waiter 1 came first, so it must
 * stay before waiter 2: each used to go back at the head, and waiter 2, coming back
 * last, went in front of waiter 1. */

static struct {
    plait_mutex *m;
    int order[3];
    int n;
} fo;

static void *fo_locker(void *p)
{
    CHECK_EQ(plait_mutex_lock(fo.m, SOON()), 0);
    fo.order[fo.n++] = INT(p);
    CHECK_EQ(plait_mutex_unlock(fo.m), 0);
    return NULL;
}

/* One try of the scenario: 1 when it ran as intended, 0 when an unlock handed the
 * mutex over instead (a waiter waited over 1 ms: a slow machine), to try again. */
static int fo_round(void)
{
    fo.n = 0;
    CHECK_EQ(plait_mutex_lock(fo.m, SOON()), 0);
    plait_task w[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(plait_spawn(&w[i], fo_locker, ARG(i + 1)), 0);
    (void)plait_yield(); /* they queue in order: 1, 2, 3 */
    bool intended = true;
    for (int k = 0; k < 2 && intended; k++) {
        /* wakes the first waiter to try again, then takes the mutex back before it runs
         * (refused when the unlock handed it over instead) */
        CHECK_EQ(plait_mutex_unlock(fo.m), 0);
        int r = plait_mutex_lock(fo.m, 0);
        CHECK(r == 0 || r == -ETIMEDOUT);
        intended = r == 0;
    }
    if (intended) {
        (void)plait_yield(); /* waiters 1 and 2 find it taken and wait again */
        CHECK_EQ(plait_mutex_unlock(fo.m), 0);
    }
    for (int i = 0; i < 3; i++)
        CHECK_EQ(plait_join(w[i], NULL, SOON()), 0);
    CHECK_EQ(fo.n, 3);
    if (intended) {
        CHECK_EQ(fo.order[0], 1);
        CHECK_EQ(fo.order[1], 2);
        CHECK_EQ(fo.order[2], 3);
    }
    return intended;
}

static void *fo_main(void *p)
{
    (void)p;
    CHECK_EQ(plait_mutex_create(&fo.m), 0);
    int ran = 0;
    for (int i = 0; i < 50 && ran < 5; i++)
        ran += fo_round();
    if (ran == 0)
        CHECK_SKIP("every unlock handed the mutex over (waiters waited over 1 ms)");
    CHECK_EQ(plait_mutex_destroy(fo.m), 0);
    return NULL;
}

TEST(mutex_two_woken_waiters_that_lose_keep_their_order) { check_run(fo_main, NULL); }

RUN_TESTS(CASE(mutex_two_woken_waiters_that_lose_keep_their_order),
          CASE(rwlock_patient_waiters_never_expire),
          CASE(cond_tokens_patient_waiters_never_expire),
          CASE(select_items_conserved_patient_parties_never_expire),
          CASE(select_send_and_receive_cases_items_conserved),
          CASE(once_failing_fn_patient_callers_never_expire))
