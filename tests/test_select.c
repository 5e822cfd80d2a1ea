/* test_select.c — plait_select over several channels: choosing the ready case, send and
 * receive cases mixed, the random choice among ready cases, closed channels,
 * deadlines (0 as a poll), cancellation, bad input, select from plain threads, two
 * selectors pairing up, and a stress test of selectors of every kind over the same
 * channels with a timeout-heavy mix: every element is received exactly once.
 *
 * Ordering comes from the channels and other primitives, or from a single
 * scheduler's certainty that a yielding coroutine lets every ready one run until it
 * blocks.  A sleep appears only where the assertion holds either way, or to measure a
 * deadline, with a generous margin. */
#include "helpers.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>


static int send_int(plait_chan *ch, int v, int64_t deadline)
{
    return plait_chan_send(ch, &v, deadline);
}

/* A select run by a coroutine or thread, with its outcome recorded. */
typedef struct {
    plait_select_case cases[4];
    int vals[4];
    size_t n;
    int64_t deadline;
    int result;
    bool returned;
} select_op;

static void *do_select(void *p)
{
    select_op *s = p;
    s->result = plait_select(s->cases, s->n, s->deadline);
    s->returned = true;
    return NULL;
}

/* Cases receiving from (op = PLAIT_RECV) or sending vals[i] to each of chans. */
static void select_op_init(select_op *s, plait_chan **chans, const int *ops, size_t n)
{
    memset(s, 0, sizeof *s);
    s->n = n;
    s->deadline = PLAIT_FOREVER;
    s->result = 1;
    for (size_t i = 0; i < n; i++) {
        s->vals[i] = ops[i] == PLAIT_SEND ? 1000 + (int)i : -1;
        s->cases[i] = (plait_select_case){.chan = chans[i], .op = ops[i],
                                          .elem = &s->vals[i], .result = 1};
    }
}

static void make_chans(plait_chan **chans, size_t n, size_t capacity)
{
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(plait_chan_create(&chans[i], sizeof(int), capacity), 0);
}

static void destroy_chans(plait_chan **chans, size_t n)
{
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(plait_chan_destroy(chans[i]), 0);
}

/* ======================================================================== */
/* Bad input                                                                 */
/* ======================================================================== */

TEST(select_bad_input)
{
    plait_chan *ch[2];
    make_chans(ch, 2, 1);
    CHECK_EQ(send_int(ch[0], 5, 0), 0);
    int a = -1, b = -1;
    plait_select_case cases[2] = {{.chan = ch[0], .op = PLAIT_RECV, .elem = &a},
                                  {.chan = ch[1], .op = PLAIT_RECV, .elem = &b}};
    CHECK_EQ(plait_select(NULL, 1, 0), -EINVAL);
    CHECK_EQ(plait_select(NULL, 0, 0), -EINVAL);
    CHECK_EQ(plait_select(cases, 0, PLAIT_FOREVER), -EINVAL);
    cases[1].chan = NULL;
    CHECK_EQ(plait_select(cases, 2, PLAIT_FOREVER), -EINVAL);
    cases[1].chan = ch[1];
    cases[1].op = 0;
    CHECK_EQ(plait_select(cases, 2, PLAIT_FOREVER), -EINVAL);
    cases[1].op = 3; /* PLAIT_SEND | PLAIT_RECV is not an op */
    CHECK_EQ(plait_select(cases, 2, PLAIT_FOREVER), -EINVAL);
    cases[1].op = -1;
    CHECK_EQ(plait_select(cases, 2, PLAIT_FOREVER), -EINVAL);
    cases[1].op = PLAIT_SEND;
    cases[1].elem = NULL;
    CHECK_EQ(plait_select(cases, 2, PLAIT_FOREVER), -EINVAL);
    /* none of the refused calls took the element that was ready */
    CHECK_EQ(a, -1);
    CHECK_EQ(plait_chan_len(ch[0]), 1);
    CHECK_EQ(plait_chan_len(ch[1]), 0);
    cases[1].elem = &b;
    cases[1].op = PLAIT_RECV;
    CHECK_EQ(plait_select(cases, 2, 0), 0);
    CHECK_EQ(a, 5);
    CHECK_EQ(cases[0].result, 0);
    destroy_chans(ch, 2);
}

/* ======================================================================== */
/* Choosing                                                                  */
/* ======================================================================== */

static void picks_ready(void)
{
    plait_chan *ch[3];
    make_chans(ch, 3, 1);
    int recv3[3] = {PLAIT_RECV, PLAIT_RECV, PLAIT_RECV};
    select_op s;
    /* only one receive can complete */
    CHECK_EQ(send_int(ch[1], 11, 0), 0);
    select_op_init(&s, ch, recv3, 3);
    CHECK_EQ(plait_select(s.cases, 3, 0), 1);
    CHECK_EQ(s.vals[1], 11);
    CHECK_EQ(s.cases[1].result, 0);
    CHECK_EQ(s.vals[0], -1);
    CHECK_EQ(s.vals[2], -1);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(plait_chan_len(ch[i]), 0);
    /* only one send can complete: the others are full */
    CHECK_EQ(send_int(ch[0], 1, 0), 0);
    CHECK_EQ(send_int(ch[2], 1, 0), 0);
    int send3[3] = {PLAIT_SEND, PLAIT_SEND, PLAIT_SEND};
    select_op_init(&s, ch, send3, 3);
    CHECK_EQ(plait_select(s.cases, 3, PLAIT_FOREVER), 1);
    CHECK_EQ(s.cases[1].result, 0);
    int v = 0;
    CHECK_EQ(plait_chan_recv(ch[1], &v, 0), 0);
    CHECK_EQ(v, 1001);
    CHECK_EQ(plait_chan_len(ch[0]), 1); /* the others untouched */
    CHECK_EQ(plait_chan_len(ch[2]), 1);
    CHECK_EQ(plait_chan_recv(ch[0], &v, 0), 0);
    CHECK_EQ(v, 1);
    /* mixed: a receive on an empty channel, a send on a full one, a receive that
     * can complete */
    int mixed[3] = {PLAIT_RECV, PLAIT_SEND, PLAIT_RECV};
    plait_chan *order[3] = {ch[0], ch[2], ch[2]};
    select_op_init(&s, order, mixed, 3);
    /* ch[0] empty; ch[2] full: its send waits, its receive is ready */
    CHECK_EQ(plait_select(s.cases, 3, 0), 2);
    CHECK_EQ(s.vals[2], 1);
    CHECK_EQ(s.vals[0], -1);
    CHECK_EQ(plait_chan_len(ch[2]), 0);
    /* and the other way round */
    select_op_init(&s, order, mixed, 3);
    CHECK_EQ(plait_select(s.cases, 3, 0), 1); /* ch[2] now has room */
    CHECK_EQ(plait_chan_recv(ch[2], &v, 0), 0);
    CHECK_EQ(v, 1001);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(plait_chan_len(ch[i]), 0);
    destroy_chans(ch, 3);
}

static void *picks_ready_main(void *p)
{
    (void)p;
    picks_ready();
    return NULL;
}

TEST(select_picks_the_ready_case)
{
    picks_ready();
    check_run(picks_ready_main, NULL);
}

/* When several cases are ready, each gets chosen. */
static void random_choice(void)
{
    plait_chan *ch[3];
    make_chans(ch, 3, 1);
    int counts[3] = {0};
    int ops[3] = {PLAIT_RECV, PLAIT_SEND, PLAIT_RECV};
    plait_chan *order[3] = {ch[0], ch[1], ch[2]};
    for (int round = 0; round < 300; round++) {
        /* ch[0] and ch[2] hold one element each; ch[1] has room */
        if (plait_chan_len(ch[0]) == 0)
            CHECK_EQ(send_int(ch[0], 100, 0), 0);
        if (plait_chan_len(ch[2]) == 0)
            CHECK_EQ(send_int(ch[2], 300, 0), 0);
        int v;
        if (plait_chan_len(ch[1]) == 1)
            CHECK_EQ(plait_chan_recv(ch[1], &v, 0), 0);
        select_op s;
        select_op_init(&s, order, ops, 3);
        int r = plait_select(s.cases, 3, round % 2 ? 0 : PLAIT_FOREVER);
        CHECK(r >= 0 && r < 3);
        if (r < 0 || r >= 3)
            break;
        counts[r]++;
        CHECK_EQ(s.cases[r].result, 0);
        if (r == 0)
            CHECK_EQ(s.vals[0], 100);
        if (r == 2)
            CHECK_EQ(s.vals[2], 300);
        /* exactly one case happened */
        CHECK_EQ(plait_chan_len(ch[0]), r == 0 ? 0 : 1);
        CHECK_EQ(plait_chan_len(ch[1]), r == 1 ? 1 : 0);
        CHECK_EQ(plait_chan_len(ch[2]), r == 2 ? 0 : 1);
    }
    for (int i = 0; i < 3; i++)
        CHECK(counts[i] > 10); /* 300 tries: each ~1/3; under 11 is ~1e-30 unlikely */
    int v;
    for (int i = 0; i < 3; i++)
        while (plait_chan_len(ch[i]))
            CHECK_EQ(plait_chan_recv(ch[i], &v, 0), 0);
    destroy_chans(ch, 3);
}

static void *random_choice_main(void *p)
{
    (void)p;
    random_choice();
    return NULL;
}

TEST(select_random_among_ready)
{
    random_choice(); /* from a plain thread */
    check_run(random_choice_main, NULL);
}

/* More cases than fit the select's on-stack array. */
enum { WIDE = 12 };

typedef struct {
    plait_select_case cases[WIDE];
    int vals[WIDE];
    int result;
} wide_select;

static void *do_wide_select(void *p)
{
    wide_select *w = p;
    w->result = plait_select(w->cases, WIDE, PLAIT_FOREVER);
    return NULL;
}

static void *many_cases_main(void *p)
{
    (void)p;
    plait_chan *ch[WIDE];
    make_chans(ch, WIDE, 0);
    wide_select w;
    for (int i = 0; i < WIDE; i++) {
        w.vals[i] = -1;
        w.cases[i] = (plait_select_case){.chan = ch[i], .op = PLAIT_RECV, .elem = &w.vals[i]};
    }
    w.result = 1;
    CHECK_EQ(plait_select(w.cases, WIDE, 0), -ETIMEDOUT);
    int64_t start = plait_now();
    CHECK_EQ(plait_select(w.cases, WIDE, start + 30 * PLAIT_MS), -ETIMEDOUT);
    CHECK_TOOK(start, 30 * PLAIT_MS);
    /* a sender waits on ch[9]; the select finds it at once */
    plait_chan *one[1] = {ch[9]};
    int send1[1] = {PLAIT_SEND};
    select_op s;
    select_op_init(&s, one, send1, 1);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, do_select, &s), 0);
    settle();
    CHECK(!s.returned);
    CHECK_EQ(plait_select(w.cases, WIDE, 0), 9);
    CHECK_EQ(w.vals[9], 1000);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(s.result, 0);
    /* a select waits on all twelve; a send on ch[6] completes it */
    plait_task tw;
    CHECK_EQ(plait_spawn(&tw, do_wide_select, &w), 0);
    settle();
    CHECK_EQ(w.result, 1);
    for (int i = 0; i < WIDE; i++)
        CHECK_EQ(plait_chan_destroy(ch[i]), -EBUSY); /* every one is waited on */
    CHECK_EQ(send_int(ch[6], 66, 0), 0);
    CHECK_EQ(plait_join(tw, NULL, SOON()), 0);
    CHECK_EQ(w.result, 6);
    CHECK_EQ(w.vals[6], 66);
    CHECK_EQ(w.cases[6].result, 0);
    for (int i = 0; i < WIDE; i++)
        if (i != 6 && i != 9)
            CHECK_EQ(w.vals[i], -1);
    destroy_chans(ch, WIDE); /* no node of it is left behind */
    return NULL;
}

TEST(select_many_cases) { check_run(many_cases_main, NULL); }

/* The same channel in two receive cases: one element completes one case only. */
static void *same_channel_twice_main(void *p)
{
    (void)p;
    for (size_t cap = 0; cap <= 2; cap += 2) {
        plait_chan *ch;
        CHECK_EQ(plait_chan_create(&ch, sizeof(int), cap), 0);
        plait_chan *twice[2] = {ch, ch};
        int ops[2] = {PLAIT_RECV, PLAIT_RECV};
        select_op s;
        select_op_init(&s, twice, ops, 2);
        plait_task t;
        CHECK_EQ(plait_spawn(&t, do_select, &s), 0);
        settle();
        CHECK(!s.returned);
        CHECK_EQ(send_int(ch, 5, 0), 0);
        /* the select's other node must not take this one */
        CHECK_EQ(send_int(ch, 6, 0), cap > 0 ? 0 : -ETIMEDOUT);
        CHECK_EQ(plait_join(t, NULL, SOON()), 0);
        CHECK(s.result == 0 || s.result == 1);
        if (s.result == 0 || s.result == 1) {
            CHECK_EQ(s.vals[s.result], 5);
            CHECK_EQ(s.vals[1 - s.result], -1);
        }
        CHECK_EQ(plait_chan_len(ch), cap > 0 ? 1 : 0);
        int v;
        if (cap > 0) {
            CHECK_EQ(plait_chan_recv(ch, &v, 0), 0);
            CHECK_EQ(v, 6);
        }
        CHECK_EQ(plait_chan_destroy(ch), 0);
    }
    return NULL;
}

TEST(select_same_channel_twice) { check_run(same_channel_twice_main, NULL); }

/* ======================================================================== */
/* Closed channels                                                           */
/* ======================================================================== */

static void *closed_main(void *p)
{
    (void)p;
    plait_chan *ch[3];
    make_chans(ch, 3, 2);
    int recv3[3] = {PLAIT_RECV, PLAIT_RECV, PLAIT_RECV};
    select_op s;
    /* a closed channel still holding elements gives them first */
    CHECK_EQ(send_int(ch[1], 7, 0), 0);
    CHECK_EQ(plait_chan_close(ch[1]), 0);
    select_op_init(&s, ch, recv3, 3);
    CHECK_EQ(plait_select(s.cases, 3, 0), 1);
    CHECK_EQ(s.cases[1].result, 0);
    CHECK_EQ(s.vals[1], 7);
    /* then its case completes with -EPIPE: a return value >= 0, not an error */
    select_op_init(&s, ch, recv3, 3);
    CHECK_EQ(plait_select(s.cases, 3, PLAIT_FOREVER), 1);
    CHECK_EQ(s.cases[1].result, -EPIPE);
    CHECK_EQ(s.vals[1], -1);
    /* a send case on a closed channel completes with -EPIPE too */
    int ops[2] = {PLAIT_RECV, PLAIT_SEND};
    plait_chan *pair[2] = {ch[0], ch[1]};
    select_op_init(&s, pair, ops, 2);
    CHECK_EQ(plait_select(s.cases, 2, 0), 1);
    CHECK_EQ(s.cases[1].result, -EPIPE);
    CHECK_EQ(plait_chan_len(ch[1]), 0);

    /* a select waiting on open channels is woken by a close */
    plait_chan *open2[2] = {ch[0], ch[2]};
    int r2[2] = {PLAIT_RECV, PLAIT_RECV};
    select_op_init(&s, open2, r2, 2);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, do_select, &s), 0);
    settle();
    CHECK(!s.returned);
    CHECK_EQ(plait_chan_close(ch[2]), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(s.result, 1);
    CHECK_EQ(s.cases[1].result, -EPIPE);
    CHECK_EQ(s.vals[1], -1);
    /* a select waiting to send on a full channel is woken by its close */
    CHECK_EQ(send_int(ch[0], 1, 0), 0);
    CHECK_EQ(send_int(ch[0], 2, 0), 0);
    int s1[1] = {PLAIT_SEND};
    select_op_init(&s, ch, s1, 1);
    CHECK_EQ(plait_spawn(&t, do_select, &s), 0);
    settle();
    CHECK(!s.returned);
    CHECK_EQ(plait_chan_close(ch[0]), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(s.result, 0);
    CHECK_EQ(s.cases[0].result, -EPIPE);
    int v;
    CHECK_EQ(plait_chan_recv(ch[0], &v, 0), 0); /* only what was there before */
    CHECK_EQ(v, 1);
    CHECK_EQ(plait_chan_recv(ch[0], &v, 0), 0);
    CHECK_EQ(v, 2);
    CHECK_EQ(plait_chan_recv(ch[0], &v, 0), -EPIPE);
    destroy_chans(ch, 3);
    return NULL;
}

TEST(select_closed_channels) { check_run(closed_main, NULL); }

/* ======================================================================== */
/* Deadlines, polling, waiting and being woken                              */
/* ======================================================================== */

static void deadlines(void)
{
    plait_chan *ch[3];
    make_chans(ch, 2, 0);
    CHECK_EQ(plait_chan_create(&ch[2], sizeof(int), 1), 0);
    CHECK_EQ(send_int(ch[2], 1, 0), 0); /* full: its send case cannot complete */
    int ops[3] = {PLAIT_RECV, PLAIT_SEND, PLAIT_SEND};
    select_op s;
    select_op_init(&s, ch, ops, 3);
    int64_t start = plait_now();
    CHECK_EQ(plait_select(s.cases, 3, 0), -ETIMEDOUT); /* a poll */
    CHECK_EQ(plait_select(s.cases, 3, start - PLAIT_SEC), -ETIMEDOUT);
    CHECK_PROMPT(start);
    start = plait_now();
    CHECK_EQ(plait_select(s.cases, 3, start + 50 * PLAIT_MS), -ETIMEDOUT);
    CHECK_TOOK(start, 50 * PLAIT_MS);
    CHECK_EQ(s.vals[0], -1);
    CHECK_EQ(plait_chan_len(ch[2]), 1);
    /* a poll that finds something ready completes it */
    int v;
    CHECK_EQ(plait_chan_recv(ch[2], &v, 0), 0);
    CHECK_EQ(plait_select(s.cases, 3, 0), 2);
    CHECK_EQ(plait_chan_recv(ch[2], &v, 0), 0);
    CHECK_EQ(v, 1002);
    destroy_chans(ch, 3); /* the timed-out waits left nothing linked */
}

static void *deadlines_main(void *p)
{
    (void)p;
    deadlines();
    return NULL;
}

TEST(select_deadlines_and_poll)
{
    deadlines();
    check_run(deadlines_main, NULL);
}

/* A selecting thread is woken by a coroutine, and the other way round. */
typedef struct {
    plait_chan *ch[2];
    select_op s;
    atomic_int tid; /* the selector's thread's (or its scheduler's), as it selects */
} wake_ctx;

static void *selecting_thread(void *p)
{
    wake_ctx *w = p;
    w->s.deadline = SOON();
    atomic_store(&w->tid, gettid_());
    do_select(&w->s);
    return NULL;
}

/* The selecting side sleeps in its select, which the waker must wake (woken before it
 * selected, it would find its case ready at once, and pass). */
static void *waker_coro(void *p)
{
    wake_ctx *w = p;
    wait_asleep(&w->tid);
    int v = 0;
    /* its cases: receive ch[0], send ch[1]; take what it sends */
    CHECK_EQ(plait_chan_recv(w->ch[1], &v, SOON()), 0);
    CHECK_EQ(v, 1001);
    return NULL;
}

static void *selecting_coro(void *p)
{
    wake_ctx *w = p;
    w->s.deadline = SOON();
    atomic_store(&w->tid, gettid_());
    do_select(&w->s);
    return NULL;
}

static void *waker_thread(void *p)
{
    wake_ctx *w = p;
    wait_asleep(&w->tid);
    CHECK_EQ(send_int(w->ch[0], 55, SOON()), 0);
    return NULL;
}

TEST(select_across_models)
{
    wake_ctx w;
    make_chans(w.ch, 2, 0);
    atomic_init(&w.tid, 0);
    int ops[2] = {PLAIT_RECV, PLAIT_SEND};
    /* a plain thread selects; a coroutine completes its send case */
    select_op_init(&w.s, w.ch, ops, 2);
    pthread_t th;
    thread_start(&th, selecting_thread, &w);
    check_run(waker_coro, &w);
    thread_join(th);
    CHECK_EQ(w.s.result, 1);
    CHECK_EQ(w.s.cases[1].result, 0);
    CHECK_EQ(w.s.vals[0], -1);
    /* a coroutine selects; a plain thread completes its receive case */
    atomic_store(&w.tid, 0);
    select_op_init(&w.s, w.ch, ops, 2);
    thread_start(&th, waker_thread, &w);
    check_run(selecting_coro, &w);
    thread_join(th);
    CHECK_EQ(w.s.result, 0);
    CHECK_EQ(w.s.cases[0].result, 0);
    CHECK_EQ(w.s.vals[0], 55);
    /* a coroutine selects; a coroutine on another scheduler wakes it */
    atomic_store(&w.tid, 0);
    select_op_init(&w.s, w.ch, ops, 2);
    sched_thread a, b;
    sched_thread_start(&a, selecting_coro, &w);
    sched_thread_start(&b, waker_coro, &w);
    sched_thread_join(&a);
    sched_thread_join(&b);
    CHECK_EQ(w.s.result, 1);
    CHECK_EQ(w.s.cases[1].result, 0);
    /* a thread's select times out */
    select_op_init(&w.s, w.ch, ops, 2);
    int64_t start = plait_now();
    w.s.deadline = start + 40 * PLAIT_MS;
    thread_start(&th, do_select, &w.s);
    thread_join(th);
    CHECK_EQ(w.s.result, -ETIMEDOUT);
    CHECK_TOOK(start, 40 * PLAIT_MS);
    destroy_chans(w.ch, 2);
}

/* ======================================================================== */
/* Cancellation                                                              */
/* ======================================================================== */

static void *cancel_main(void *p)
{
    (void)p;
    plait_chan *ch[2];
    make_chans(ch, 1, 0);
    CHECK_EQ(plait_chan_create(&ch[1], sizeof(int), 1), 0);
    CHECK_EQ(send_int(ch[1], 9, 0), 0); /* full */
    int ops[2] = {PLAIT_RECV, PLAIT_SEND};
    select_op a, b;
    plait_task ta, tb;
    select_op_init(&a, ch, ops, 2);
    select_op_init(&b, ch, ops, 2);
    CHECK_EQ(plait_spawn(&ta, do_select, &a), 0);
    CHECK_EQ(plait_spawn(&tb, do_select, &b), 0);
    settle();
    CHECK(!a.returned && !b.returned);
    /* a is cancelled but has not run yet: its nodes are still queued on both
     * channels.  Neither a send nor a receive may complete through them. */
    CHECK_EQ(plait_cancel(ta), 0);
    CHECK_EQ(send_int(ch[0], 70, 0), 0); /* must reach b, not a */
    int v;
    CHECK_EQ(plait_chan_recv(ch[1], &v, 0), 0);
    CHECK_EQ(v, 9);
    CHECK_EQ(plait_chan_len(ch[1]), 0); /* a's send case did not slip in */
    CHECK_EQ(plait_join(ta, NULL, SOON()), -ECANCELED);
    CHECK_EQ(a.result, -ECANCELED);
    CHECK_EQ(a.vals[0], -1);
    CHECK_EQ(plait_join(tb, NULL, SOON()), 0);
    CHECK_EQ(b.result, 0);
    CHECK_EQ(b.vals[0], 70);

    /* a cancelled coroutine: a ready case still completes... */
    CHECK_EQ(send_int(ch[1], 9, 0), 0);
    plait_chan *rev[2] = {ch[0], ch[1]};
    int rops[2] = {PLAIT_RECV, PLAIT_RECV};
    select_op_init(&a, rev, rops, 2);
    CHECK_EQ(plait_spawn(&ta, do_select, &a), 0);
    CHECK_EQ(plait_cancel(ta), 0);
    CHECK_EQ(plait_join(ta, NULL, SOON()), -ECANCELED);
    CHECK_EQ(a.result, 1);
    CHECK_EQ(a.vals[1], 9);
    /* ...and with none ready it fails at once, whatever the deadline */
    int64_t start = plait_now();
    for (int k = 0; k < 2; k++) {
        select_op_init(&a, rev, rops, 2);
        a.deadline = k ? 0 : PLAIT_FOREVER;
        CHECK_EQ(plait_spawn(&ta, do_select, &a), 0);
        CHECK_EQ(plait_cancel(ta), 0);
        CHECK_EQ(plait_join(ta, NULL, SOON()), -ECANCELED);
        CHECK_EQ(a.result, -ECANCELED);
    }
    CHECK_PROMPT(start);
    /* a hand-off that won before the cancellation stands */
    select_op_init(&a, rev, rops, 2);
    CHECK_EQ(plait_spawn(&ta, do_select, &a), 0);
    settle();
    CHECK_EQ(send_int(ch[1], 31, 0), 0);
    CHECK_EQ(plait_cancel(ta), 0);
    CHECK_EQ(plait_join(ta, NULL, SOON()), -ECANCELED);
    CHECK_EQ(a.result, 1);
    CHECK_EQ(a.vals[1], 31);
    CHECK_EQ(plait_chan_len(ch[1]), 0);
    destroy_chans(ch, 2);
    return NULL;
}

TEST(select_cancel) { check_run(cancel_main, NULL); }

/* Cancelled from another thread while a thread races to complete one of its cases:
 * the element moves exactly when the select reports that case. */
#define XC_ROUNDS (CHECK_SANITIZED ? 60 : 300)

typedef struct {
    select_op s;
    plait_task task;
    plait_event *spawned;
} xc_ctx;

static void *xc_sched(void *p)
{
    xc_ctx *x = p;
    CHECK_EQ(plait_spawn(&x->task, do_select, &x->s), 0);
    CHECK_EQ(plait_event_set(x->spawned), 0);
    int r = plait_join(x->task, NULL, SOON());
    CHECK(r == 0 || r == -ECANCELED);
    return NULL;
}

TEST(select_cancel_races_partner)
{
    uint64_t seed = 99;
    int completed = 0, cancelled = 0;
    for (int round = 0; round < XC_ROUNDS; round++) {
        plait_chan *ch[2];
        make_chans(ch, 2, 0);
        xc_ctx x;
        int ops[2] = {PLAIT_RECV, PLAIT_SEND};
        select_op_init(&x.s, ch, ops, 2);
        CHECK_EQ(plait_event_create(&x.spawned), 0);
        sched_thread st;
        sched_thread_start(&st, xc_sched, &x);
        CHECK_EQ(plait_event_wait(x.spawned, SOON()), 0);
        uint32_t spin = rnd(&seed) % 20000;
        for (volatile uint32_t i = 0; i < spin; i++)
            ;
        bool feed = round % 2; /* send into its receive case, or take its send */
        int v = feed ? round : -1, r;
        bool cancel_first = rnd(&seed) % 2;
        if (cancel_first)
            CHECK_EQ(plait_cancel(x.task), 0);
        r = feed ? plait_chan_send(ch[0], &v, plait_deadline_in(PLAIT_MS))
                 : plait_chan_recv(ch[1], &v, plait_deadline_in(PLAIT_MS));
        if (!cancel_first) {
            /* the task may have finished and been joined by now: a stale handle */
            int c = plait_cancel(x.task);
            CHECK(c == 0 || c == -ESRCH);
        }
        sched_thread_join(&st);
        CHECK(x.s.returned);
        CHECK(r == 0 || r == -ETIMEDOUT);
        if (r == 0) {
            CHECK_EQ(x.s.result, feed ? 0 : 1);
            if (feed)
                CHECK_EQ(x.s.vals[0], round);
            else
                CHECK_EQ(v, 1001);
            completed++;
        } else {
            CHECK_EQ(x.s.result, -ECANCELED);
            CHECK_EQ(x.s.vals[0], -1);
            cancelled++;
        }
        destroy_chans(ch, 2);
        plait_event_destroy(x.spawned);
    }
    CHECK_EQ(completed + cancelled, XC_ROUNDS);
}

/* A select still waiting when main returns is cancelled out of it. */
typedef struct {
    plait_chan *ch[2];
    select_op s;
} sel_leftover;

static void *leaves_selector(void *p)
{
    sel_leftover *l = p;
    CHECK_EQ(plait_spawn(NULL, do_select, &l->s), 0);
    settle();
    CHECK(!l->s.returned);
    return NULL;
}

TEST(select_main_returns_with_selector)
{
    sel_leftover l;
    make_chans(l.ch, 2, 0);
    int ops[2] = {PLAIT_RECV, PLAIT_SEND};
    select_op_init(&l.s, l.ch, ops, 2);
    check_run(leaves_selector, &l);
    CHECK(l.s.returned);
    CHECK_EQ(l.s.result, -ECANCELED);
    CHECK_EQ(l.s.vals[0], -1);
    destroy_chans(l.ch, 2);
}

/* ======================================================================== */
/* Two selectors pairing up                                                  */
/* ======================================================================== */

/* A offers {send c1, recv c2}, B offers {recv c1, send c2}, over unbuffered
 * channels, from threads and coroutines on two schedulers at once.  Exactly one
 * exchange happens per round and both sides agree on which. */
#define PAIR_ROUNDS (CHECK_SANITIZED ? 1500 : 4000)

typedef struct {
    plait_chan *c1, *c2;
    int a_picks[PAIR_ROUNDS], b_picks[PAIR_ROUNDS];
    int a_got[PAIR_ROUNDS], b_got[PAIR_ROUNDS];
} pairing_ctx;

static void *pair_side_a(void *p)
{
    pairing_ctx *pc = p;
    for (int i = 0; i < PAIR_ROUNDS; i++) {
        int out = 2 * i, in = -1;
        plait_select_case c[2] = {{.chan = pc->c1, .op = PLAIT_SEND, .elem = &out},
                                  {.chan = pc->c2, .op = PLAIT_RECV, .elem = &in}};
        pc->a_picks[i] = plait_select(c, 2, SOON());
        pc->a_got[i] = in;
        if (pc->a_picks[i] < 0)
            break;
    }
    return NULL;
}

static void *pair_side_b(void *p)
{
    pairing_ctx *pc = p;
    for (int i = 0; i < PAIR_ROUNDS; i++) {
        int out = 2 * i + 1, in = -1;
        plait_select_case c[2] = {{.chan = pc->c1, .op = PLAIT_RECV, .elem = &in},
                                  {.chan = pc->c2, .op = PLAIT_SEND, .elem = &out}};
        pc->b_picks[i] = plait_select(c, 2, SOON());
        pc->b_got[i] = in;
        if (pc->b_picks[i] < 0)
            break;
    }
    return NULL;
}

static void check_pairing(pairing_ctx *pc)
{
    int via_c1 = 0, via_c2 = 0, bad = 0;
    for (int i = 0; i < PAIR_ROUNDS; i++) {
        if (pc->a_picks[i] == 0 && pc->b_picks[i] == 0 && pc->b_got[i] == 2 * i &&
            pc->a_got[i] == -1)
            via_c1++;
        else if (pc->a_picks[i] == 1 && pc->b_picks[i] == 1 && pc->a_got[i] == 2 * i + 1 &&
                 pc->b_got[i] == -1)
            via_c2++;
        else if (bad++ < 3)
            fprintf(stderr, "  round %d: a picked %d got %d, b picked %d got %d\n", i,
                    pc->a_picks[i], pc->a_got[i], pc->b_picks[i], pc->b_got[i]);
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(via_c1 + via_c2, PAIR_ROUNDS);
}

TEST(two_selectors_pair_up)
{
    pairing_ctx *pc = calloc(1, sizeof *pc);
    CHECK(pc);
    CHECK_EQ(plait_chan_create(&pc->c1, sizeof(int), 0), 0);
    CHECK_EQ(plait_chan_create(&pc->c2, sizeof(int), 0), 0);
    for (int mode = 0; mode < 3; mode++) {
        pthread_t th[2];
        sched_thread st[2];
        if (mode == 0) { /* two plain threads */
            thread_start(&th[0], pair_side_a, pc);
            thread_start(&th[1], pair_side_b, pc);
            thread_join(th[0]);
            thread_join(th[1]);
        } else if (mode == 1) { /* a thread and a coroutine */
            thread_start(&th[0], pair_side_a, pc);
            sched_thread_start(&st[0], pair_side_b, pc);
            thread_join(th[0]);
            sched_thread_join(&st[0]);
        } else { /* coroutines on two schedulers */
            sched_thread_start(&st[0], pair_side_a, pc);
            sched_thread_start(&st[1], pair_side_b, pc);
            sched_thread_join(&st[0]);
            sched_thread_join(&st[1]);
        }
        check_pairing(pc);
    }
    CHECK_EQ(plait_chan_destroy(pc->c1), 0);
    CHECK_EQ(plait_chan_destroy(pc->c2), 0);
    free(pc);
}

/* ======================================================================== */
/* Stress: selectors of every kind over the same channels                   */
/* ======================================================================== */

#define SX_N (CHECK_SANITIZED ? 12000 : 30000)
#define SX_CHANS 3
#define SX_PROD_CORO 1    /* per scheduler */
#define SX_PROD_THREADS 2
#define SX_PRODUCERS (2 * SX_PROD_CORO + SX_PROD_THREADS)
#define SX_SEL_CORO 3     /* per scheduler */
#define SX_SEL_THREADS 2
#define SX_VICTIMS 4      /* per scheduler: selectors that get cancelled */
#define SX_SELECTORS (2 * SX_SEL_CORO + SX_SEL_THREADS + 2 * SX_VICTIMS)
#define SX_TOKENS 4096    /* per selector, sent on the back channel */

typedef struct {
    plait_chan *ch[SX_CHANS];
    plait_chan *back;             /* selectors offer tokens here as a send case */
    plait_waitgroup *producers, *selectors;
    atomic_uchar seen[SX_N];
    atomic_long sum;
    atomic_int received, dups, bad;
    int tokens_sent[SX_SELECTORS]; /* written by its selector only */
    atomic_uchar token_seen[SX_SELECTORS][SX_TOKENS];
    atomic_int token_dups, token_bad;
    atomic_int timeouts, victims_cancelled, epipe_cases;
} sx_ctx;

static sx_ctx *sx;

static int64_t sx_deadline(uint64_t *seed)
{
    uint32_t x = rnd(seed);
    switch (x % 6) {
    case 0:
        return 0;
    case 1:
        return plait_now() - PLAIT_US;
    case 2:
    case 3:
        return plait_deadline_in((x >> 8) % (200 * PLAIT_US));
    default:
        return plait_deadline_in(10 * PLAIT_SEC);
    }
}

static void *sx_producer(void *p)
{
    int id = INT(p);
    uint64_t seed = (uint64_t)(id + 3) * 0x9e3779b97f4a7c15ull;
    int per = SX_N / SX_PRODUCERS;
    int lo = id * per, hi = id == SX_PRODUCERS - 1 ? SX_N : lo + per;
    for (int v = lo; v < hi;) {
        uint32_t x = rnd(&seed);
        int r;
        if (x % 2) {
            r = plait_chan_send(sx->ch[x % SX_CHANS], &v, sx_deadline(&seed));
        } else {
            plait_select_case c[SX_CHANS];
            for (int i = 0; i < SX_CHANS; i++)
                c[i] = (plait_select_case){.chan = sx->ch[i], .op = PLAIT_SEND, .elem = &v};
            r = plait_select(c, SX_CHANS, sx_deadline(&seed));
            if (r >= 0) {
                CHECK_EQ(c[r].result, 0);
                r = c[r].result;
            }
        }
        if (r == -ETIMEDOUT) {
            atomic_fetch_add(&sx->timeouts, 1);
            continue;
        }
        CHECK_EQ(r, 0);
        if (r)
            break;
        v++;
    }
    CHECK_EQ(plait_waitgroup_done(sx->producers), 0);
    return NULL;
}

static void sx_record(int v)
{
    if (v < 0 || v >= SX_N) {
        atomic_fetch_add(&sx->bad, 1);
        return;
    }
    if (atomic_fetch_add(&sx->seen[v], 1) != 0)
        atomic_fetch_add(&sx->dups, 1);
    atomic_fetch_add(&sx->sum, v);
    atomic_fetch_add(&sx->received, 1);
}

/* Select over the open ones of the three channels, and sometimes a send case on the
 * back channel, until all three are closed (or this selector is cancelled). */
static void *sx_selector(void *p)
{
    int id = INT(p);
    uint64_t seed = (uint64_t)(id + 17) * 0x9e3779b97f4a7c15ull;
    bool open[SX_CHANS] = {true, true, true};
    int n_open = SX_CHANS;
    int token = 0;
    while (n_open > 0) {
        plait_select_case c[SX_CHANS + 1];
        int vals[SX_CHANS], which[SX_CHANS + 1];
        size_t n = 0;
        uint32_t x = rnd(&seed);
        for (int i = 0; i < SX_CHANS; i++) {
            if (!open[i])
                continue;
            vals[i] = -1;
            which[n] = i;
            c[n++] = (plait_select_case){.chan = sx->ch[i], .op = PLAIT_RECV,
                                         .elem = &vals[i], .result = 1};
        }
        int tok = id * SX_TOKENS + token;
        bool offer = x % 4 == 0 && token < SX_TOKENS;
        if (offer) {
            which[n] = -1;
            c[n++] = (plait_select_case){.chan = sx->back, .op = PLAIT_SEND, .elem = &tok,
                                         .result = 1};
        }
        int r = plait_select(c, n, sx_deadline(&seed));
        if (r == -ETIMEDOUT) {
            atomic_fetch_add(&sx->timeouts, 1);
            continue;
        }
        if (r == -ECANCELED) {
            atomic_fetch_add(&sx->victims_cancelled, 1);
            break;
        }
        CHECK(r >= 0 && (size_t)r < n);
        if (r < 0 || (size_t)r >= n)
            break;
        if (which[r] < 0) { /* the token went out */
            CHECK_EQ(c[r].result, 0);
            token++;
            continue;
        }
        int i = which[r];
        if (c[r].result == -EPIPE) {
            atomic_fetch_add(&sx->epipe_cases, 1);
            CHECK_EQ(vals[i], -1);
            open[i] = false;
            n_open--;
            continue;
        }
        CHECK_EQ(c[r].result, 0);
        sx_record(vals[i]);
    }
    sx->tokens_sent[id] = token;
    CHECK_EQ(plait_waitgroup_done(sx->selectors), 0);
    return NULL;
}

static void *sx_back_drain(void *p)
{
    (void)p;
    for (;;) {
        int tok = -1;
        int r = plait_chan_recv(sx->back, &tok, plait_deadline_in(30 * PLAIT_SEC));
        if (r == -EPIPE)
            return NULL;
        CHECK_EQ(r, 0);
        if (r)
            return NULL;
        int sel = tok / SX_TOKENS, k = tok % SX_TOKENS;
        if (tok < 0 || sel >= SX_SELECTORS) {
            atomic_fetch_add(&sx->token_bad, 1);
            continue;
        }
        if (atomic_fetch_add(&sx->token_seen[sel][k], 1) != 0)
            atomic_fetch_add(&sx->token_dups, 1);
    }
}

static void *sx_sched(void *p)
{
    int s = INT(p);
    uint64_t seed = (uint64_t)(s + 1) * 0x2545F4914F6CDD1Dull;
    plait_task prod[SX_PROD_CORO], sel[SX_SEL_CORO], vic[SX_VICTIMS], drain;
    for (int i = 0; i < SX_PROD_CORO; i++)
        CHECK_EQ(plait_spawn(&prod[i], sx_producer, ARG(s * SX_PROD_CORO + i)), 0);
    for (int i = 0; i < SX_SEL_CORO; i++)
        CHECK_EQ(plait_spawn(&sel[i], sx_selector, ARG(s * SX_SEL_CORO + i)), 0);
    int vbase = 2 * SX_SEL_CORO + SX_SEL_THREADS + s * SX_VICTIMS;
    for (int i = 0; i < SX_VICTIMS; i++)
        CHECK_EQ(plait_spawn(&vic[i], sx_selector, ARG(vbase + i)), 0);
    CHECK_EQ(plait_spawn(&drain, sx_back_drain, NULL), 0);
    for (int i = 0; i < SX_VICTIMS; i++) {
        plait_sleep((int64_t)(rnd(&seed) % 4000) * PLAIT_US);
        CHECK_EQ(plait_cancel(vic[i]), 0);
    }
    int64_t far = plait_deadline_in(60 * PLAIT_SEC);
    for (int i = 0; i < SX_VICTIMS; i++) {
        int r = plait_join(vic[i], NULL, far);
        CHECK(r == 0 || r == -ECANCELED);
    }
    for (int i = 0; i < SX_PROD_CORO; i++)
        CHECK_EQ(plait_join(prod[i], NULL, far), 0);
    for (int i = 0; i < SX_SEL_CORO; i++)
        CHECK_EQ(plait_join(sel[i], NULL, far), 0);
    CHECK_EQ(plait_join(drain, NULL, far), 0);
    return NULL;
}

TEST(select_stress_mixed)
{
    sx = calloc(1, sizeof *sx);
    CHECK(sx);
    size_t caps[SX_CHANS] = {0, 1, 4};
    for (int i = 0; i < SX_CHANS; i++)
        CHECK_EQ(plait_chan_create(&sx->ch[i], sizeof(int), caps[i]), 0);
    CHECK_EQ(plait_chan_create(&sx->back, sizeof(int), 2), 0);
    CHECK_EQ(plait_waitgroup_create(&sx->producers), 0);
    CHECK_EQ(plait_waitgroup_create(&sx->selectors), 0);
    CHECK_EQ(plait_waitgroup_add(sx->producers, SX_PRODUCERS), 0);
    CHECK_EQ(plait_waitgroup_add(sx->selectors, SX_SELECTORS), 0);
    sched_thread st[2];
    pthread_t prod[SX_PROD_THREADS], sel[SX_SEL_THREADS], drain;
    for (int s = 0; s < 2; s++)
        sched_thread_start(&st[s], sx_sched, ARG(s));
    for (int i = 0; i < SX_PROD_THREADS; i++)
        thread_start(&prod[i], sx_producer, ARG(2 * SX_PROD_CORO + i));
    for (int i = 0; i < SX_SEL_THREADS; i++)
        thread_start(&sel[i], sx_selector, ARG(2 * SX_SEL_CORO + i));
    thread_start(&drain, sx_back_drain, NULL);
    int64_t far = plait_deadline_in(60 * PLAIT_SEC);
    CHECK_EQ(plait_waitgroup_wait(sx->producers, far), 0);
    for (int i = 0; i < SX_CHANS; i++)
        CHECK_EQ(plait_chan_close(sx->ch[i]), 0);
    CHECK_EQ(plait_waitgroup_wait(sx->selectors, far), 0);
    CHECK_EQ(plait_chan_close(sx->back), 0);
    for (int i = 0; i < SX_PROD_THREADS; i++)
        thread_join(prod[i]);
    for (int i = 0; i < SX_SEL_THREADS; i++)
        thread_join(sel[i]);
    thread_join(drain);
    for (int s = 0; s < 2; s++)
        sched_thread_join(&st[s]);

    int missing = 0;
    long want_sum = 0;
    for (int v = 0; v < SX_N; v++) {
        missing += atomic_load(&sx->seen[v]) == 0;
        want_sum += v;
    }
    CHECK_EQ(missing, 0);
    CHECK_EQ(atomic_load(&sx->dups), 0);
    CHECK_EQ(atomic_load(&sx->bad), 0);
    CHECK_EQ(atomic_load(&sx->received), SX_N);
    CHECK_EQ(atomic_load(&sx->sum), want_sum);
    /* tokens: exactly those a select reported sent arrived, each once */
    int token_missing = 0, token_ghosts = 0, tokens = 0;
    for (int s = 0; s < SX_SELECTORS; s++)
        for (int k = 0; k < SX_TOKENS; k++) {
            int seen = atomic_load(&sx->token_seen[s][k]);
            if (k < sx->tokens_sent[s]) {
                token_missing += seen == 0;
                tokens++;
            } else {
                token_ghosts += seen != 0;
            }
        }
    CHECK_EQ(token_missing, 0);
    CHECK_EQ(token_ghosts, 0);
    CHECK_EQ(atomic_load(&sx->token_dups), 0);
    CHECK_EQ(atomic_load(&sx->token_bad), 0);
    CHECK(tokens > 0);
    for (int i = 0; i < SX_CHANS; i++) {
        CHECK_EQ(plait_chan_len(sx->ch[i]), 0);
        CHECK_EQ(plait_chan_destroy(sx->ch[i]), 0);
    }
    CHECK_EQ(plait_chan_destroy(sx->back), 0);
    CHECK_EQ(plait_waitgroup_destroy(sx->producers), 0);
    CHECK_EQ(plait_waitgroup_destroy(sx->selectors), 0);
    if (getenv("PLAIT_TEST_VERBOSE"))
        printf("     %d timeouts, %d victims cancelled, %d -EPIPE cases, %d tokens\n",
               atomic_load(&sx->timeouts), atomic_load(&sx->victims_cancelled),
               atomic_load(&sx->epipe_cases), tokens);
    free(sx);
    sx = NULL;
}

/* ======================================================================== */
/* A select cannot pair with itself                                          */
/* ======================================================================== */

/* {send c, recv c} on an unbuffered channel with nobody else around can never
 * complete (as in Go): it must wait out its deadline.  Run on its own thread so a
 * spinning select fails this case instead of hanging the binary; it runs last. */
typedef struct {
    plait_chan *ch;
    int result;
    int64_t took;
    plait_event *done;
} self_pair_ctx;

static void *self_pair(void *p)
{
    self_pair_ctx *sp = p;
    int out = 1, in = -1;
    plait_select_case c[2] = {{.chan = sp->ch, .op = PLAIT_SEND, .elem = &out},
                              {.chan = sp->ch, .op = PLAIT_RECV, .elem = &in}};
    int64_t start = plait_now();
    sp->result = plait_select(c, 2, start + 50 * PLAIT_MS);
    sp->took = plait_now() - start;
    plait_event_set(sp->done);
    return NULL;
}

static void *self_pair_coro(void *p)
{
    self_pair(p);
    return NULL;
}

TEST(select_does_not_pair_with_itself)
{
    for (int mode = 0; mode < 2; mode++) {
        static self_pair_ctx sp; /* static: it outlives a stuck thread */
        sp = (self_pair_ctx){.result = 1};
        CHECK_EQ(plait_chan_create(&sp.ch, sizeof(int), 0), 0);
        CHECK_EQ(plait_event_create(&sp.done), 0);
        pthread_t th;
        sched_thread st;
        if (mode == 0)
            thread_start(&th, self_pair, &sp);
        else
            sched_thread_start(&st, self_pair_coro, &sp);
        int r = plait_event_wait(sp.done, plait_deadline_in(5 * PLAIT_SEC));
        CHECK_EQ(r, 0);
        if (r != 0) {
            fprintf(stderr, "  select over {send c, recv c} still running after 5 s "
                            "(deadline 50 ms); leaving it spinning\n");
            return; /* cannot join or free what it uses */
        }
        if (mode == 0)
            thread_join(th);
        else
            sched_thread_join(&st);
        CHECK_EQ(sp.result, -ETIMEDOUT);
        CHECK(sp.took >= 50 * PLAIT_MS && sp.took < 50 * PLAIT_MS + 2 * PLAIT_SEC);
        CHECK_EQ(plait_chan_len(sp.ch), 0);
        CHECK_EQ(plait_chan_destroy(sp.ch), 0);
        CHECK_EQ(plait_event_destroy(sp.done), 0);
    }
}

/* A select woken through one channel still has its node on the other until it
 * returns.  A sender on that other channel that meets the stale node must leave it
 * there: the channel is still in use, so destroying it must answer -EBUSY (it freed
 * it, and the select then took the freed channel's lock). */
static void *stale_node_main(void *p)
{
    (void)p;
    plait_chan *chans[2];
    make_chans(chans, 2, 0);
    select_op s;
    select_op_init(&s, chans, (const int[]){PLAIT_RECV, PLAIT_RECV}, 2);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, do_select, &s), 0);
    settle(); /* the select waits on both */
    CHECK_EQ(send_int(chans[1], 7, 0), 0); /* hands 7 to it: it is woken, not yet run */
    CHECK_EQ(send_int(chans[0], 8, 0), -ETIMEDOUT); /* meets only the stale node */
    CHECK_EQ(plait_chan_destroy(chans[0]), -EBUSY);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK(s.returned);
    CHECK_EQ(s.result, 1);
    CHECK_EQ(s.vals[1], 7);
    destroy_chans(chans, 2);
    return NULL;
}

TEST(select_stale_node_keeps_its_channel_busy) { check_run(stale_node_main, NULL); }

/* A select with two cases on one channel ({receive, receive} or {receive, send}) that
 * is woken through one of them leaves the channel with none of its nodes: closing the
 * channel, or a hand-off through it, may be followed at once by its destroy, as with a
 * plain waiter, though the select has not run since (it once kept its other node
 * there, and the destroy answered -EBUSY until it had). */
typedef struct {
    select_op op;
    atomic_int tid; /* the thread's, once it is about to select */
} thread_select;

static void *select_on_a_thread(void *p)
{
    thread_select *ts = p;
    atomic_store(&ts->tid, gettid_());
    return do_select(&ts->op);
}

static void both_cases_on_one_channel(bool on_thread, bool close_it, int second_op,
                                      size_t capacity)
{
    plait_chan *ch;
    CHECK_EQ(plait_chan_create(&ch, sizeof(int), capacity), 0);
    plait_chan *twice[2] = {ch, ch};
    thread_select ts;
    select_op *s = &ts.op;
    select_op_init(s, twice, (const int[]){PLAIT_RECV, second_op}, 2);
    atomic_init(&ts.tid, 0);
    plait_task t;
    pthread_t th;
    if (on_thread) {
        thread_start(&th, select_on_a_thread, &ts);
        wait_asleep(&ts.tid);
    } else {
        CHECK_EQ(plait_spawn(&t, do_select, s), 0);
        settle(); /* it waits on both of its cases */
        CHECK(!s->returned);
    }
    if (close_it)
        CHECK_EQ(plait_chan_close(ch), 0);
    else
        CHECK_EQ(send_int(ch, 9, 0), 0); /* to the receive case */
    CHECK_EQ(plait_chan_destroy(ch), 0); /* (the coroutine is woken, not run yet) */
    if (on_thread)
        thread_join(th);
    else
        CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK(s->returned);
    if (close_it) {
        CHECK(s->result == 0 || s->result == 1);
        if (s->result == 0 || s->result == 1)
            CHECK_EQ(s->cases[s->result].result, -EPIPE);
    } else { /* a receive case took the 9 (the send case cannot: nobody receives) */
        CHECK(s->result == 0 || (s->result == 1 && second_op == PLAIT_RECV));
        if (s->result == 0 || s->result == 1) {
            CHECK_EQ(s->cases[s->result].result, 0);
            CHECK_EQ(s->vals[s->result], 9);
        }
    }
}

/* A select of more than 8 cases finds its cases on one channel by sorting them. */
typedef struct {
    plait_select_case cases[12];
    int vals[12];
    int result;
} many_select;

static void *do_many_select(void *p)
{
    many_select *m = p;
    m->result = plait_select(m->cases, 12, PLAIT_FOREVER);
    return NULL;
}

static void many_cases_two_on_one_channel(void)
{
    plait_chan *idle[12], *ch;
    make_chans(idle, 12, 0);
    CHECK_EQ(plait_chan_create(&ch, sizeof(int), 0), 0);
    many_select m = {.result = 1};
    for (int i = 0; i < 12; i++)
        m.cases[i] = (plait_select_case){.chan = i == 3 || i == 9 ? ch : idle[i],
                                         .op = i == 9 ? PLAIT_SEND : PLAIT_RECV,
                                         .elem = &m.vals[i], .result = 1};
    plait_task t;
    CHECK_EQ(plait_spawn(&t, do_many_select, &m), 0);
    settle();
    CHECK_EQ(plait_chan_close(ch), 0);
    CHECK_EQ(plait_chan_destroy(ch), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK(m.result == 3 || m.result == 9);
    if (m.result == 3 || m.result == 9)
        CHECK_EQ(m.cases[m.result].result, -EPIPE);
    destroy_chans(idle, 12); /* (its nodes there are gone: it returned) */
}

/* The same while the select is still linking its cases: {receive A, receive B1..B200,
 * receive A}, on a plain thread, and another thread's send to A, then A's destroy at
 * once.  The select once linked its cases one by one in a random order, so a hand-off
 * through its first case on A could come while it had yet to reach the other: it then
 * took A's lock after the destroy (a use after free; a review found it), or linked that
 * node, and the destroy said -EBUSY.  A select now tries all its cases on a channel in
 * one hold of that channel's lock. */
enum { MID_B = 200, MID_ROUNDS = 300 };

static struct {
    plait_chan *a, *b[MID_B];
    atomic_int round; /* 2r + 1: round r's select has begun; 2r + 2: A destroyed */
    atomic_int busy;  /* destroys right after the hand-off that said -EBUSY */
} mid;

static bool mid_wait_round(int value)
{
    int64_t until = SOON();
    while (atomic_load(&mid.round) != value)
        if (plait_now() > until)
            return false;
    return true;
}

static void *mid_sender(void *arg)
{
    (void)arg;
    for (int r = 0; r < MID_ROUNDS; r++) {
        if (!mid_wait_round(2 * r + 1)) {
            CHECK(!"the select's round never began");
            return NULL;
        }
        int v = r, sent;
        int64_t until = SOON();
        while ((sent = plait_chan_send(mid.a, &v, 0)) == -ETIMEDOUT && plait_now() < until)
            ;
        CHECK_EQ(sent, 0);
        int d = plait_chan_destroy(mid.a);
        if (d != 0)
            atomic_fetch_add(&mid.busy, 1);
        atomic_store(&mid.round, d == 0 ? 2 * r + 2 : -(2 * r + 2));
    }
    return NULL;
}

TEST(select_woken_while_linking_leaves_the_channel_at_once)
{
    for (int i = 0; i < MID_B; i++)
        CHECK_EQ(plait_chan_create(&mid.b[i], sizeof(int), 0), 0);
    pthread_t th;
    thread_start(&th, mid_sender, NULL);
    static plait_select_case c[MID_B + 2];
    static int x[MID_B + 2];
    for (int r = 0; r < MID_ROUNDS; r++) {
        CHECK_EQ(plait_chan_create(&mid.a, sizeof(int), 0), 0);
        c[0] = (plait_select_case){.chan = mid.a, .op = PLAIT_RECV, .elem = &x[0]};
        for (int i = 0; i < MID_B; i++)
            c[i + 1] = (plait_select_case){.chan = mid.b[i], .op = PLAIT_RECV, .elem = &x[i + 1]};
        c[MID_B + 1] = (plait_select_case){.chan = mid.a, .op = PLAIT_RECV, .elem = &x[MID_B + 1]};
        atomic_store(&mid.round, 2 * r + 1);
        int k = plait_select(c, MID_B + 2, SOON());
        CHECK(k == 0 || k == MID_B + 1);
        if (k == 0 || k == MID_B + 1)
            CHECK_EQ(x[k], r);
        int64_t until = SOON();
        int done;
        while ((done = atomic_load(&mid.round)) != 2 * r + 2 && done != -(2 * r + 2) &&
               plait_now() < until)
            ;
        if (done != 2 * r + 2) /* (not destroyed at once: now that the select is over) */
            CHECK_EQ(plait_chan_destroy(mid.a), 0);
        if (k < 0)
            break;
    }
    thread_join(th);
    CHECK_EQ(atomic_load(&mid.busy), 0);
    for (int i = 0; i < MID_B; i++)
        CHECK_EQ(plait_chan_destroy(mid.b[i]), 0);
}

static void *one_channel_main(void *p)
{
    (void)p;
    many_cases_two_on_one_channel();
    for (int on_thread = 0; on_thread <= 1; on_thread++) {
        both_cases_on_one_channel(on_thread, true, PLAIT_RECV, 0);
        both_cases_on_one_channel(on_thread, true, PLAIT_RECV, 2);
        both_cases_on_one_channel(on_thread, true, PLAIT_SEND, 0);
        both_cases_on_one_channel(on_thread, false, PLAIT_SEND, 0);
        both_cases_on_one_channel(on_thread, false, PLAIT_RECV, 0);
    }
    return NULL;
}

TEST(select_on_one_channel_leaves_it_free_once_woken) { check_run(one_channel_main, NULL); }

/* Each ready case is as likely to be chosen as any other, wherever it stands among the
 * cases: eight receive cases of which only the first two are ready.  (The select once
 * looked at the cases in order from a random one, so the ready case after the run of
 * cases not ready won 7 times in 8.) */
static void two_ready_of_eight(void)
{
    enum { N = 8, ROUNDS = 1600 };
    plait_chan *ch[N];
    for (int i = 0; i < N; i++)
        CHECK_EQ(plait_chan_create(&ch[i], sizeof(int), 1), 0);
    int counts[N] = {0};
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < 2; i++)
            if (plait_chan_len(ch[i]) == 0)
                CHECK_EQ(plait_chan_send(ch[i], &i, 0), 0);
        int vals[N];
        plait_select_case c[N];
        for (int i = 0; i < N; i++)
            c[i] = (plait_select_case){.chan = ch[i], .op = PLAIT_RECV, .elem = &vals[i]};
        int r = plait_select(c, N, 0);
        CHECK(r == 0 || r == 1);
        if (r < 0 || r >= N)
            break;
        counts[r]++;
    }
    /* each about 800 times: under 600 is more than 10 standard deviations away */
    CHECK(counts[0] > 600 && counts[1] > 600);
    int v;
    for (int i = 0; i < N; i++) {
        while (plait_chan_len(ch[i]))
            CHECK_EQ(plait_chan_recv(ch[i], &v, 0), 0);
        CHECK_EQ(plait_chan_destroy(ch[i]), 0);
    }
}

static void *two_ready_of_eight_main(void *p)
{
    (void)p;
    two_ready_of_eight();
    return NULL;
}

TEST(select_fair_between_two_ready_of_eight)
{
    check_run(two_ready_of_eight_main, NULL); /* in a coroutine */
    two_ready_of_eight();                     /* from a plain thread */
}

/* The same where cases share a channel: a send to a full channel A (not ready), a
 * receive from A and a receive from B (both ready).  The select tried all of a
 * channel's cases at the turn of its first, so A's receive won whenever either of A's
 * cases came first: two times in three (a review counted 19,941 of 30,000). */
static void ready_beside_a_case_of_its_channel(void)
{
    enum { ROUNDS = 3000 };
    plait_chan *a, *b;
    CHECK_EQ(plait_chan_create(&a, sizeof(int), 1), 0);
    CHECK_EQ(plait_chan_create(&b, sizeof(int), 1), 0);
    int counts[3] = {0};
    for (int round = 0; round < ROUNDS; round++) {
        int one = 1, out = -1, in_a = -1, in_b = -1;
        if (plait_chan_len(a) == 0)
            CHECK_EQ(plait_chan_send(a, &one, 0), 0);
        if (plait_chan_len(b) == 0)
            CHECK_EQ(plait_chan_send(b, &one, 0), 0);
        plait_select_case c[3] = {{.chan = a, .op = PLAIT_SEND, .elem = &out},
                                  {.chan = a, .op = PLAIT_RECV, .elem = &in_a},
                                  {.chan = b, .op = PLAIT_RECV, .elem = &in_b}};
        int r = plait_select(c, 3, round % 2 ? 0 : PLAIT_FOREVER);
        CHECK(r == 1 || r == 2);
        if (r < 1 || r > 2)
            break;
        counts[r]++;
        CHECK_EQ(r == 1 ? in_a : in_b, 1);
    }
    /* each about 1,500: under 1,200 is more than 10 standard deviations away */
    CHECK(counts[1] > 1200 && counts[2] > 1200);
    int v;
    while (plait_chan_len(a))
        CHECK_EQ(plait_chan_recv(a, &v, 0), 0);
    while (plait_chan_len(b))
        CHECK_EQ(plait_chan_recv(b, &v, 0), 0);
    CHECK_EQ(plait_chan_destroy(a), 0);
    CHECK_EQ(plait_chan_destroy(b), 0);
}

static void *ready_beside_a_case_of_its_channel_main(void *p)
{
    (void)p;
    ready_beside_a_case_of_its_channel();
    return NULL;
}

TEST(select_fair_where_cases_share_a_channel)
{
    check_run(ready_beside_a_case_of_its_channel_main, NULL);
    ready_beside_a_case_of_its_channel();
}

/* A case the select did not complete keeps the result the caller gave it.  A send
 * case finds a receiver that its own short deadline may claim a moment later; the
 * select then starts over, and once wrote 0 ("completed") into that case's result
 * first, even when it went on to time out. */
static atomic_int rr_stop;
static plait_chan *rr_ch;

static void *rr_receiver(void *p)
{
    (void)p;
    while (!atomic_load(&rr_stop)) {
        int v;
        int r = plait_chan_recv(rr_ch, &v, plait_deadline_in(PLAIT_US));
        CHECK(r == 0 || r == -ETIMEDOUT);
    }
    return NULL;
}

/* The same as coroutines: their scheduler's timers claim them. */
static void *rr_receivers_main(void *p)
{
    (void)p;
    plait_task t[4];
    for (int i = 0; i < 4; i++)
        CHECK_EQ(plait_spawn(&t[i], rr_receiver, NULL), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(plait_join(t[i], NULL, PLAIT_FOREVER), 0);
    return NULL;
}

TEST(select_keeps_the_result_of_cases_not_completed)
{
    plait_chan *idle;
    CHECK_EQ(plait_chan_create(&rr_ch, sizeof(int), 0), 0);
    CHECK_EQ(plait_chan_create(&idle, sizeof(int), 0), 0);
    atomic_store(&rr_stop, 0);
    pthread_t th;
    sched_thread st;
    thread_start(&th, rr_receiver, NULL);
    sched_thread_start(&st, rr_receivers_main, NULL);
    long clobbered = 0;
    int64_t end = plait_deadline_in(3 * PLAIT_SEC);
    while (plait_now() < end && clobbered == 0) {
        int v = 1, w = -1;
        plait_select_case c[2] = {{.chan = rr_ch, .op = PLAIT_SEND, .elem = &v, .result = 77},
                                  {.chan = idle, .op = PLAIT_RECV, .elem = &w, .result = 77}};
        int r = plait_select(c, 2, 0);
        CHECK(r == 0 || r == -ETIMEDOUT);
        if (r == -ETIMEDOUT) /* nothing completed */
            clobbered += c[0].result != 77 || c[1].result != 77;
        else
            clobbered += c[1].result != 77;
    }
    atomic_store(&rr_stop, 1);
    thread_join(th);
    sched_thread_join(&st);
    CHECK_EQ(clobbered, 0);
    CHECK_EQ(plait_chan_destroy(rr_ch), 0);
    CHECK_EQ(plait_chan_destroy(idle), 0);
}

RUN_TESTS(CASE(select_bad_input), CASE(select_picks_the_ready_case),
          CASE(select_random_among_ready), CASE(select_many_cases),
          CASE(select_same_channel_twice), CASE(select_closed_channels),
          CASE(select_deadlines_and_poll), CASE(select_across_models), CASE(select_cancel),
          CASE(select_cancel_races_partner), CASE(select_main_returns_with_selector),
          CASE(two_selectors_pair_up), CASE(select_stress_mixed),
          CASE(select_does_not_pair_with_itself), CASE(select_stale_node_keeps_its_channel_busy),
          CASE(select_on_one_channel_leaves_it_free_once_woken),
          CASE(select_woken_while_linking_leaves_the_channel_at_once),
          CASE(select_fair_between_two_ready_of_eight),
          CASE(select_fair_where_cases_share_a_channel),
          CASE(select_keeps_the_result_of_cases_not_completed))
