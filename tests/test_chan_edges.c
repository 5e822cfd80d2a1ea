/* test_chan_edges.c — channels and select at their edges: cases the other
 * channel and select tests leave out (a select with both ops on one unbuffered
 * channel against a plain thread, close with more waiters than one wake-up batch
 * of every kind, a select cancelled in a pool task and a plait thread, a select whose
 * peer's deadline claims it between the select's look and the hand-off). */
#include "helpers.h"

#include "../src/internal.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- a select with a send and a receive case on one unbuffered channel, its partner
 * a plain thread ---- */

typedef struct {
    plait_chan *ch;
    int mode; /* 0: the thread receives, 1: it sends */
    int value;
    int result;
    atomic_int tid;
} partner;

static void *partner_thread(void *p)
{
    partner *t = p;
    atomic_store(&t->tid, gettid_());
    if (t->mode == 0)
        t->result = plait_chan_recv(t->ch, &t->value, SOON());
    else
        t->result = plait_chan_send(t->ch, &t->value, SOON());
    return NULL;
}

static void *both_ops_main(void *p)
{
    (void)p;
    for (int mode = 0; mode < 2; mode++) {
        for (int thread_first = 0; thread_first < 2; thread_first++) {
            plait_chan *ch;
            CHECK_EQ(plait_chan_create(&ch, sizeof(int), 0), 0);
            partner t = {.ch = ch, .mode = mode, .value = mode ? 77 : -1, .result = 1};
            atomic_init(&t.tid, 0);
            pthread_t th;
            thread_start(&th, partner_thread, &t);
            if (thread_first)
                wait_asleep(&t.tid);
            int out = 55, in = -1;
            plait_select_case cases[3] = {
                {.chan = ch, .op = PLAIT_SEND, .elem = &out, .result = 9},
                {.chan = ch, .op = PLAIT_RECV, .elem = &in, .result = 9},
                {.chan = ch, .op = PLAIT_RECV, .elem = &in, .result = 9},
            };
            int i = plait_select(cases, 3, SOON());
            thread_join(th);
            CHECK_EQ(t.result, 0);
            if (mode == 0) {
                CHECK_EQ(i, 0);
                CHECK_EQ(t.value, 55);
                CHECK_EQ(cases[0].result, 0);
                CHECK_EQ(cases[1].result, 9);
                CHECK_EQ(cases[2].result, 9);
            } else {
                CHECK(i == 1 || i == 2);
                CHECK_EQ(in, 77);
                CHECK_EQ(cases[i].result, 0);
                CHECK_EQ(cases[0].result, 9);
            }
            CHECK_EQ(plait_chan_len(ch), 0);
            CHECK_EQ(plait_chan_destroy(ch), 0);
        }
    }
    return NULL;
}

TEST(select_both_ops_one_unbuffered_channel_with_a_thread)
{
    check_run(both_ops_main, NULL);
}

/* ---- close with many waiters of every kind ---- */

enum { N_THREADS = 5, N_CORO = 5 };

typedef struct {
    plait_chan *ch;
    atomic_int waiting; /* coroutines of the other scheduler about to wait */
    atomic_int results[N_CORO + 1];
    atomic_int sched_tid;
} many;

static void *coro_recv(void *p)
{
    many *m = p;
    int v;
    int slot = atomic_fetch_add(&m->waiting, 1);
    int r = plait_chan_recv(m->ch, &v, SOON());
    atomic_store(&m->results[slot], r == -EPIPE ? 1 : 1000 + r);
    return NULL;
}

static void *coro_select_twice(void *p)
{
    many *m = p;
    int a, b;
    int slot = atomic_fetch_add(&m->waiting, 1);
    plait_select_case cases[2] = {{.chan = m->ch, .op = PLAIT_RECV, .elem = &a},
                                  {.chan = m->ch, .op = PLAIT_RECV, .elem = &b}};
    int i = plait_select(cases, 2, SOON());
    atomic_store(&m->results[slot], i >= 0 && cases[i].result == -EPIPE ? 1 : 2000 + i * 100 + (i >= 0 ? cases[i].result : 0));
    return NULL;
}

static void *other_sched(void *p)
{
    many *m = p;
    plait_task t[N_CORO];
    atomic_store(&m->sched_tid, gettid_());
    for (int i = 0; i < N_CORO; i++)
        CHECK_EQ(plait_spawn(&t[i], i == 0 ? coro_select_twice : coro_recv, m), 0);
    for (int i = 0; i < N_CORO; i++)
        CHECK_EQ(plait_join(t[i], NULL, SOON()), 0);
    return NULL;
}

typedef struct {
    plait_chan *ch;
    atomic_int tid;
    int result;
} thr_recv;

static void *thread_recv(void *p)
{
    thr_recv *t = p;
    int v;
    atomic_store(&t->tid, gettid_());
    t->result = plait_chan_recv(t->ch, &v, SOON());
    return NULL;
}

TEST(close_wakes_more_than_a_batch_then_destroy)
{
    many m;
    memset(&m, 0, sizeof m);
    CHECK_EQ(plait_chan_create(&m.ch, sizeof(int), 0), 0);
    thr_recv t[N_THREADS];
    pthread_t th[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        t[i].ch = m.ch;
        atomic_init(&t[i].tid, 0);
        t[i].result = 1;
        thread_start(&th[i], thread_recv, &t[i]);
    }
    sched_thread st;
    sched_thread_start(&st, other_sched, &m);
    for (int i = 0; i < N_THREADS; i++)
        wait_asleep(&t[i].tid);
    /* the coroutines: each has said it is about to wait; their scheduler's thread
     * sleeps once every one of them (and main, joining) waits */
    int64_t deadline = SOON();
    while (atomic_load(&m.waiting) < N_CORO && plait_now() < deadline)
        sched_yield();
    CHECK_EQ(atomic_load(&m.waiting), N_CORO);
    wait_asleep(&m.sched_tid);
    CHECK_EQ(plait_chan_close(m.ch), 0);
    for (int i = 0; i < N_THREADS; i++)
        thread_join(th[i]);
    sched_thread_join(&st);
    for (int i = 0; i < N_THREADS; i++)
        CHECK_EQ(t[i].result, -EPIPE);
    for (int i = 0; i < N_CORO; i++)
        CHECK_EQ(atomic_load(&m.results[i]), 1);
    CHECK_EQ(plait_chan_destroy(m.ch), 0);
}

/* ---- a select cancelled in a pool task and in a plait thread ---- */

typedef struct {
    plait_chan *ch[2];
    atomic_int tid;
    int result;
} sel_task;

static void *select_task(void *p)
{
    sel_task *s = p;
    int a = -1, b = -1;
    plait_select_case cases[2] = {{.chan = s->ch[0], .op = PLAIT_RECV, .elem = &a},
                                  {.chan = s->ch[1], .op = PLAIT_SEND, .elem = &b}};
    atomic_store(&s->tid, gettid_());
    s->result = plait_select(cases, 2, SOON());
    return NULL;
}

TEST(select_cancelled_in_pool_task_and_plait_thread)
{
    for (int kind = 0; kind < 2; kind++) {
        sel_task s = {.result = 1};
        atomic_init(&s.tid, 0);
        CHECK_EQ(plait_chan_create(&s.ch[0], sizeof(int), 0), 0);
        CHECK_EQ(plait_chan_create(&s.ch[1], sizeof(int), 0), 0);
        plait_pool *pool = NULL;
        plait_task task;
        if (kind == 0) {
            plait_pool_options o = {.threads = 1, .name = "rvc"};
            CHECK_EQ(plait_pool_create(&pool, &o), 0);
            CHECK_EQ(plait_pool_submit(pool, &task, select_task, &s), 0);
        } else {
            CHECK_EQ(plait_thread_start(&task, select_task, &s, NULL), 0);
        }
        wait_asleep(&s.tid);
        CHECK_EQ(plait_chan_destroy(s.ch[0]), -EBUSY);
        int64_t start = plait_now();
        CHECK_EQ(plait_cancel(task), 0);
        CHECK_EQ(plait_join(task, NULL, SOON()), -ECANCELED);
        CHECK_PROMPT(start);
        CHECK_EQ(s.result, -ECANCELED);
        CHECK_EQ(plait_chan_destroy(s.ch[0]), 0);
        CHECK_EQ(plait_chan_destroy(s.ch[1]), 0);
        if (pool) {
            CHECK_EQ(plait_pool_destroy(pool), 0);
        }
    }
}


/* ---- a select's retry: the peer it saw is claimed (its deadline) between the look
 * and the hand-off ---- */

/* Armed for one thread: at its next delivery of wake-ups (after each hold of a
 * channel's lock in a select), deliver_hook runs. */
static atomic_int deliver_hook_tid;
static void (*deliver_hook)(void);

void __real_plait__wakeups_deliver(plait__wakeups *later);
void __wrap_plait__wakeups_deliver(plait__wakeups *later);
void __wrap_plait__wakeups_deliver(plait__wakeups *later)
{
    int tid = atomic_load(&deliver_hook_tid);
    if (tid && tid == gettid_()) {
        atomic_store(&deliver_hook_tid, 0);
        deliver_hook();
    }
    __real_plait__wakeups_deliver(later);
}

/* Armed for one thread: the first look of that thread that finds a waiting peer
 * claims that peer and fails it with -ETIMEDOUT, as its deadline would at that moment
 * (the peer is a plain thread: its wait then ends with the status written here), and
 * arms deliver_hook, if any, for the end of that hold. */
static atomic_int peer_timeout_armed_tid;
static atomic_int peer_timeouts_made;

bool __real_plait__waitq_has_other(plait__waitq *q, const plait__waiter *except);
bool __wrap_plait__waitq_has_other(plait__waitq *q, const plait__waiter *except);
bool __wrap_plait__waitq_has_other(plait__waitq *q, const plait__waiter *except)
{
    bool r = __real_plait__waitq_has_other(q, except);
    int tid = atomic_load(&peer_timeout_armed_tid);
    if (r && tid && tid == gettid_()) {
        atomic_store(&peer_timeout_armed_tid, 0);
        for (plait__wait_node *n = q->head; n; n = n->next)
            if (n->waiter != except && plait__waiter_claim(n->waiter)) {
                plait__waiter_signal_now(n->waiter, -ETIMEDOUT, -1);
                atomic_fetch_add(&peer_timeouts_made, 1);
                if (deliver_hook) /* after this hold */
                    atomic_store(&deliver_hook_tid, tid);
                break;
            }
    }
    return r;
}

/* Armed for one thread: right after its first withdrawal of a node (a select's retry
 * takes its nodes off their channels), withdraw_hook runs. */
static atomic_int withdraw_hook_tid;
static void (*withdraw_hook)(void);

void __real_plait__wait_node_withdraw(plait__wait_node *node);
void __wrap_plait__wait_node_withdraw(plait__wait_node *node);
void __wrap_plait__wait_node_withdraw(plait__wait_node *node)
{
    __real_plait__wait_node_withdraw(node);
    int tid = atomic_load(&withdraw_hook_tid);
    if (tid && tid == gettid_()) {
        atomic_store(&withdraw_hook_tid, 0);
        withdraw_hook();
    }
}

/* A destroy of the channel named right after the withdrawal: the select is still under
 * way and comes back to it, so it must be -EBUSY (it was 0, and the select locked the
 * freed channel; a helper's audit of session 63). */
static plait_chan *destroy_in_withdraw_chan;
static atomic_int destroy_in_withdraw_result; /* 1: not made (read by the test's thread) */

static void destroy_in_withdraw(void)
{
    atomic_store(&destroy_in_withdraw_result, plait_chan_destroy(destroy_in_withdraw_chan));
}

typedef struct {
    plait_chan *ch[2];
    atomic_int tid;
    int value[2];
    int op0; /* the op of case 0, on ch[0], where the peer waits */
    int index, result;
} retry_sel;

/* The select of the retry cases, on the calling thread, with the look's injection and
 * the withdraw hook armed for it. */
static void *select_two(retry_sel *s)
{
    plait_select_case cases[2] = {{.chan = s->ch[0], .op = s->op0, .elem = &s->value[0]},
                                  {.chan = s->ch[1], .op = PLAIT_RECV, .elem = &s->value[1]}};
    atomic_store(&peer_timeout_armed_tid, gettid_());
    atomic_store(&withdraw_hook_tid, gettid_());
    atomic_store(&s->tid, gettid_());
    s->index = plait_select(cases, 2, SOON());
    s->result = s->index >= 0 ? cases[s->index].result : 1;
    return NULL;
}

static void *retry_selector(void *p)
{
    retry_sel *s = p;
    destroy_in_withdraw_chan = s->ch[1];
    atomic_store(&destroy_in_withdraw_result, 1);
    withdraw_hook = destroy_in_withdraw;
    return select_two(s);
}

TEST(select_retries_when_its_peer_times_out_in_between)
{
    int withdrew = 0; /* rounds whose select had linked ch[1] before it met the peer */
    for (int round = 0; round < 24; round++) {
        bool sel_sends = round % 2;
        retry_sel s = {.value = {sel_sends ? 5 : -1, -1}, .index = 9, .result = 9,
                       .op0 = sel_sends ? PLAIT_SEND : PLAIT_RECV};
        atomic_init(&s.tid, 0);
        CHECK_EQ(plait_chan_create(&s.ch[0], sizeof(int), 0), 0);
        CHECK_EQ(plait_chan_create(&s.ch[1], sizeof(int), 0), 0);
        /* the peer: a thread that sends 1 into ch[0] (or receives from it) and waits */
        partner p = {.ch = s.ch[0], .mode = !sel_sends, .value = sel_sends ? -1 : 1,
                     .result = 1};
        atomic_init(&p.tid, 0);
        pthread_t pth, sth;
        thread_start(&pth, partner_thread, &p);
        wait_asleep(&p.tid);
        atomic_store(&peer_timeouts_made, 0);
        thread_start(&sth, retry_selector, &s);
        thread_join(pth);
        CHECK_EQ(p.result, -ETIMEDOUT); /* nothing moved through it... */
        CHECK_EQ(p.value, sel_sends ? -1 : 1);
        CHECK_EQ(atomic_load(&peer_timeouts_made), 1);
        wait_asleep(&s.tid);            /* ...and the select waits on */
        atomic_store(&withdraw_hook_tid, 0);
        if (atomic_load(&destroy_in_withdraw_result) != 1) {
            CHECK_EQ(atomic_load(&destroy_in_withdraw_result), -EBUSY);
            withdrew++;
        }
        CHECK_EQ(plait_chan_destroy(s.ch[0]), -EBUSY);
        int v = sel_sends ? -1 : 2;
        if (sel_sends)
            CHECK_EQ(plait_chan_recv(s.ch[0], &v, SOON()), 0);
        else
            CHECK_EQ(plait_chan_send(s.ch[0], &v, SOON()), 0);
        thread_join(sth);
        CHECK_EQ(s.index, 0);
        CHECK_EQ(s.result, 0);
        CHECK_EQ(sel_sends ? v : s.value[0], sel_sends ? 5 : 2);
        CHECK_EQ(s.value[1], -1);
        CHECK_EQ(plait_chan_destroy(s.ch[0]), 0);
        CHECK_EQ(plait_chan_destroy(s.ch[1]), 0);
    }
    CHECK(withdrew > 0); /* half the rounds, in the random order (none: 24 coin tosses) */
}

/* A second retry, at the channel the first one had pinned: a select receiving on A and
 * W links W, meets a peer on A that times out (retry 1: W pinned, its node withdrawn),
 * then a new peer on W that times out too (retry 2, at W).  W was unpinned as that hold
 * began, and had neither node nor pin until the third pass locked it: a destroy in
 * between freed it (the review of d4b3c34).  It must be -EBUSY. */
static partner second_peer;
static pthread_t second_peer_thread;
static atomic_int second_peer_started; /* 1: as the hook begins, 2: once it is done */
static atomic_int second_peer_returned;
static atomic_int destroy_of_w; /* 1: not made */

static void *second_peer_sends(void *unused)
{
    (void)unused;
    partner_thread(&second_peer);
    atomic_store(&second_peer_returned, 1);
    return NULL;
}

/* After W's hold that met its peer timed out: once that peer has left W's queue (its
 * send returned), W has no waiter at all, only the select that comes back to it. */
static void destroy_w_once_its_peer_left(void)
{
    int64_t until = SOON();
    while (!atomic_load(&second_peer_returned) && plait_now() < until)
        sched_yield();
    atomic_store(&destroy_of_w, plait_chan_destroy(second_peer.ch));
}

static void second_peer_on_w(void)
{
    atomic_store(&second_peer_started, 1);
    thread_start(&second_peer_thread, second_peer_sends, NULL);
    wait_asleep(&second_peer.tid);
    deliver_hook = destroy_w_once_its_peer_left;
    atomic_store(&peer_timeout_armed_tid, gettid_()); /* it times out as W is looked at */
    atomic_store(&second_peer_started, 2);
}

/* Whether the selector (tid) sleeps in its select's wait, not in the hook's own (which
 * starts only while it runs: seen not begun both before and after it was seen asleep). */
static bool selector_waits(int tid)
{
    return atomic_load(&second_peer_started) != 1 && thread_asleep_in_wait(tid) &&
           atomic_load(&second_peer_started) != 1;
}

TEST(a_second_retry_keeps_the_channel_busy)
{
    int retried_twice = 0;
    for (int round = 0; round < 24; round++) {
        retry_sel s = {.value = {-1, -1}, .index = 9, .result = 9, .op0 = PLAIT_RECV};
        atomic_init(&s.tid, 0);
        CHECK_EQ(plait_chan_create(&s.ch[0], sizeof(int), 0), 0); /* A */
        CHECK_EQ(plait_chan_create(&s.ch[1], sizeof(int), 0), 0); /* W */
        partner first = {.ch = s.ch[0], .mode = 1, .value = 1, .result = 1};
        atomic_init(&first.tid, 0);
        second_peer = (partner){.ch = s.ch[1], .mode = 1, .value = 2, .result = 1};
        atomic_init(&second_peer.tid, 0);
        atomic_store(&second_peer_started, 0);
        atomic_store(&second_peer_returned, 0);
        atomic_store(&destroy_of_w, 1);
        deliver_hook = NULL;
        pthread_t pth, sth;
        thread_start(&pth, partner_thread, &first);
        wait_asleep(&first.tid);
        withdraw_hook = second_peer_on_w; /* (armed by the selector, with its tid) */
        thread_start(&sth, (void *(*)(void *))select_two, &s);
        thread_join(pth);
        CHECK_EQ(first.result, -ETIMEDOUT);
        wait_for_flag(&s.tid);
        int64_t until = SOON();
        while (!selector_waits(atomic_load(&s.tid)) && plait_now() < until)
            nanosleep(&(struct timespec){0, PLAIT_MS}, NULL);
        CHECK(selector_waits(atomic_load(&s.tid))); /* on both */
        if (atomic_load(&second_peer_started)) {
            thread_join(second_peer_thread);
            CHECK_EQ(second_peer.result, -ETIMEDOUT);
            CHECK_EQ(atomic_load(&destroy_of_w), -EBUSY);
            retried_twice++;
        }
        atomic_store(&withdraw_hook_tid, 0);
        atomic_store(&peer_timeout_armed_tid, 0);
        atomic_store(&deliver_hook_tid, 0);
        deliver_hook = NULL;
        int v = 3;
        CHECK_EQ(plait_chan_send(s.ch[1], &v, SOON()), 0);
        thread_join(sth);
        CHECK_EQ(s.index, 1);
        CHECK_EQ(s.result, 0);
        CHECK_EQ(s.value[1], 3);
        CHECK_EQ(plait_chan_destroy(s.ch[0]), 0);
        CHECK_EQ(plait_chan_destroy(s.ch[1]), 0);
    }
    CHECK(retried_twice > 0); /* half the rounds link W first (none: 24 coin tosses) */
}

RUN_TESTS(CASE(select_both_ops_one_unbuffered_channel_with_a_thread),
          CASE(close_wakes_more_than_a_batch_then_destroy),
          CASE(select_cancelled_in_pool_task_and_plait_thread),
          CASE(select_retries_when_its_peer_times_out_in_between),
          CASE(a_second_retry_keeps_the_channel_busy))
