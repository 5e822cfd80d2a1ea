/*
 * test_chan_exactly_once.c — adversarial checks of channels, select and queues across
 * execution models: nothing sent successfully is lost or received twice, a send that
 * reports failure delivered nothing, whatever cancellation, deadline or close comes at
 * the instant of the hand-off.
 */
#include "fork_child.h"
#include "helpers.h"

#include <stdatomic.h>
#include <stdint.h>

/* ======================================================================== */
/* One hand-off per round, raced by a cancellation (and a deadline)          */
/* ======================================================================== */

/* The victim (a coroutine on a scheduler of its own thread, or a plait thread) does
 * one operation; the partner (a plain thread) does the opposite one with a short
 * deadline; the canceller (another plain thread) cancels the victim at a random
 * moment.  Exactly one of three things may happen: both succeed with the element, or
 * neither does.  A success on one side only is an element lost or made up. */
enum { OP_RECV, OP_SEND, OP_SELECT_RECV, OP_SELECT_SEND, OP_KINDS };

typedef struct {
    plait_chan *ch, *never; /* never: a channel nobody uses, the select's other case */
    int op;
    bool victim_deadline;   /* the victim's own deadline races too */
    atomic_int round;       /* the round the victim has started */
    atomic_int partner_done, cancel_done;
    plait_task victim;
    atomic_int victim_r, victim_v, partner_r, partner_v;
    int rounds;
    int mismatches, both_ok, neither, victim_cancelled;
} race_ctx;

static race_ctx *rc;

enum { NOT_RUN = 12345 };

static void *victim_fn(void *p)
{
    int round = INT(p);
    int v = round * 2 + 1; /* what a sending victim sends */
    int got = -1;
    int64_t deadline = rc->victim_deadline ? plait_deadline_in((round % 7) * 50 * PLAIT_US)
                                           : SOON();
    int r;
    plait_select_case cases[2];
    switch (rc->op) {
    case OP_RECV:
        r = plait_chan_recv(rc->ch, &got, deadline);
        break;
    case OP_SEND:
        r = plait_chan_send(rc->ch, &v, deadline);
        break;
    default: {
        int never = -7;
        cases[0] = (plait_select_case){.chan = rc->never, .op = PLAIT_RECV, .elem = &never};
        cases[1] = (plait_select_case){.chan = rc->ch,
                                       .op = rc->op == OP_SELECT_RECV ? PLAIT_RECV : PLAIT_SEND,
                                       .elem = rc->op == OP_SELECT_RECV ? (void *)&got : &v,
                                       .result = 99};
        r = plait_select(cases, 2, deadline);
        if (r >= 0) {
            CHECK_EQ(r, 1);
            CHECK_EQ(cases[1].result, 0);
            CHECK_EQ(never, -7);
            r = r == 1 && cases[1].result == 0 ? 0 : -EPROTO;
        }
        break;
    }
    }
    atomic_store(&rc->victim_r, r);
    atomic_store(&rc->victim_v, rc->op == OP_RECV || rc->op == OP_SELECT_RECV ? got : v);
    return NULL;
}

static void *partner_thread(void *p)
{
    (void)p;
    for (int round = 1; round <= rc->rounds; round++) {
        while (atomic_load(&rc->round) < round)
            sched_yield();
        bool victim_sends = rc->op == OP_SEND || rc->op == OP_SELECT_SEND;
        int v = victim_sends ? -1 : round * 2 + 1;
        int64_t deadline = plait_deadline_in(((round % 5) + 1) * 100 * PLAIT_US);
        int r = victim_sends ? plait_chan_recv(rc->ch, &v, deadline)
                             : plait_chan_send(rc->ch, &v, deadline);
        atomic_store(&rc->partner_r, r);
        atomic_store(&rc->partner_v, v);
        atomic_store(&rc->partner_done, round);
    }
    return NULL;
}

static void *canceller_thread(void *p)
{
    uint64_t seed = 0x1234567ull;
    (void)p;
    for (int round = 1; round <= rc->rounds; round++) {
        while (atomic_load(&rc->round) < round)
            sched_yield();
        unsigned spin = rnd(&seed) % 4000;
        for (volatile unsigned i = 0; i < spin; i++)
            ;
        int r = plait_cancel(rc->victim);
        CHECK(r == 0 || r == -ESRCH);
        atomic_store(&rc->cancel_done, round);
    }
    return NULL;
}

static void check_round(int round)
{
    int vr = atomic_load(&rc->victim_r), pr = atomic_load(&rc->partner_r);
    int vv = atomic_load(&rc->victim_v), pv = atomic_load(&rc->partner_v);
    /* NOT_RUN: a plait thread cancelled before it began never runs its function */
    CHECK(vr == 0 || vr == -ECANCELED || vr == -ETIMEDOUT || vr == NOT_RUN);
    CHECK(pr == 0 || pr == -ETIMEDOUT);
    if ((vr == 0) != (pr == 0)) {
        if (rc->mismatches++ < 5)
            fprintf(stderr, "  round %d op %d: victim %d (%d), partner %d (%d)\n", round,
                    rc->op, vr, vv, pr, pv);
    } else if (vr == 0) {
        rc->both_ok++;
        CHECK_EQ(vv, round * 2 + 1);
        CHECK_EQ(pv, round * 2 + 1);
    } else {
        rc->neither++;
        if (rc->op == OP_RECV || rc->op == OP_SELECT_RECV)
            CHECK_EQ(vv, -1); /* nothing written into a receive that failed */
        else
            CHECK_EQ(pv, -1);
    }
    rc->victim_cancelled += vr == -ECANCELED;
}

/* Wait (spinning, on a thread of its own) until the partner and canceller are done
 * with round; false past SOON(). */
static bool others_done(int round)
{
    int64_t deadline = SOON();
    while (atomic_load(&rc->partner_done) < round || atomic_load(&rc->cancel_done) < round) {
        if (plait_now() > deadline)
            return false;
        sched_yield();
    }
    return true;
}

static void *coro_host(void *p)
{
    (void)p;
    for (int round = 1; round <= rc->rounds; round++) {
        atomic_store(&rc->victim_r, NOT_RUN);
        atomic_store(&rc->victim_v, -1);
        CHECK_EQ(plait_spawn(&rc->victim, victim_fn, ARG(round)), 0);
        atomic_store(&rc->round, round);
        int r = plait_join(rc->victim, NULL, SOON());
        CHECK(r == 0 || r == -ECANCELED);
        if (!others_done(round)) {
            CHECK(!"partner or canceller stuck");
            return NULL;
        }
        check_round(round);
    }
    return NULL;
}

static plait_pool *race_pool; /* victims as pool tasks when set */

static void thread_host(void)
{
    for (int round = 1; round <= rc->rounds; round++) {
        atomic_store(&rc->victim_r, NOT_RUN);
        atomic_store(&rc->victim_v, -1);
        if (race_pool)
            CHECK_EQ(plait_pool_submit(race_pool, &rc->victim, victim_fn, ARG(round)), 0);
        else
            CHECK_EQ(plait_thread_start(&rc->victim, victim_fn, ARG(round), NULL), 0);
        atomic_store(&rc->round, round);
        int r = plait_join(rc->victim, NULL, SOON());
        CHECK(r == 0 || r == -ECANCELED);
        if (!others_done(round)) {
            CHECK(!"partner or canceller stuck");
            return;
        }
        check_round(round);
    }
}

static void run_race(int op, size_t capacity, bool on_thread, bool victim_deadline, int rounds)
{
    rc = calloc(1, sizeof *rc);
    CHECK(rc);
    rc->op = op;
    rc->rounds = rounds;
    rc->victim_deadline = victim_deadline;
    CHECK_EQ(plait_chan_create(&rc->ch, sizeof(int), capacity), 0);
    CHECK_EQ(plait_chan_create(&rc->never, sizeof(int), 0), 0);
    pthread_t partner, canceller;
    thread_start(&partner, partner_thread, NULL);
    thread_start(&canceller, canceller_thread, NULL);
    if (on_thread)
        thread_host();
    else
        check_run(coro_host, NULL);
    thread_join(partner);
    thread_join(canceller);
    CHECK_EQ(rc->mismatches, 0);
    CHECK_EQ(rc->both_ok + rc->neither + rc->mismatches, rounds);
    CHECK_EQ(plait_chan_len(rc->ch), 0);
    CHECK_EQ(plait_chan_destroy(rc->ch), 0);
    CHECK_EQ(plait_chan_destroy(rc->never), 0);
    if (getenv("PLAIT_TEST_VERBOSE"))
        printf("     op %d %s: %d both, %d neither, %d cancelled\n", op,
               on_thread ? "thread" : "coroutine", rc->both_ok, rc->neither,
               rc->victim_cancelled);
    free(rc);
    rc = NULL;
}

enum { RACE_ROUNDS = 400 };

TEST(cancel_at_handoff_coroutine)
{
    for (int op = 0; op < OP_KINDS; op++)
        run_race(op, 0, false, false, RACE_ROUNDS);
}

TEST(cancel_at_handoff_thread)
{
    for (int op = 0; op < OP_KINDS; op++)
        run_race(op, 0, true, false, RACE_ROUNDS);
}

TEST(cancel_at_handoff_pool_task)
{
    plait_pool_options o = {.threads = 2};
    CHECK_EQ(plait_pool_create(&race_pool, &o), 0);
    for (int op = 0; op < OP_KINDS; op++) {
        run_race(op, 0, true, false, RACE_ROUNDS / 2);
        run_race(op, 0, true, true, RACE_ROUNDS / 2);
    }
    CHECK_EQ(plait_pool_shutdown(race_pool, PLAIT_POOL_DRAIN, SOON()), 0);
    CHECK_EQ(plait_pool_destroy(race_pool), 0);
    race_pool = NULL;
}

TEST(cancel_and_deadline_at_handoff)
{
    for (int op = 0; op < OP_KINDS; op++) {
        run_race(op, 0, false, true, RACE_ROUNDS);
        run_race(op, 0, true, true, RACE_ROUNDS / 2);
    }
}

/* ======================================================================== */
/* Bounds and bad input                                                      */
/* ======================================================================== */

TEST(chan_bounds)
{
    plait_chan *ch = NULL;
    CHECK_EQ(plait_chan_create(&ch, 0, 1), -EINVAL);
    CHECK_EQ(plait_chan_create(&ch, 0, 0), -EINVAL);
    CHECK_EQ(plait_chan_create(&ch, PLAIT_CHAN_ELEM_MAX + 1, 0), -EINVAL);
    CHECK_EQ(plait_chan_create(&ch, 1, PLAIT_CHAN_CAPACITY_MAX + 1), -EINVAL);
    CHECK_EQ(plait_chan_create(&ch, 1, SIZE_MAX), -EINVAL);
    CHECK_EQ(plait_chan_create(&ch, SIZE_MAX, 1), -EINVAL);
    CHECK_EQ(plait_chan_create(NULL, 1, 1), -EINVAL);
    int r = 0;
    /* the largest element, unbuffered and buffered, round trips */
    size_t big = PLAIT_CHAN_ELEM_MAX;
    unsigned char *a = malloc(big), *b = malloc(big);
    CHECK(a && b);
    for (size_t i = 0; i < big; i++)
        a[i] = (unsigned char)(i * 131 + 7);
    CHECK_EQ(plait_chan_create(&ch, big, 2), 0);
    CHECK_EQ(plait_chan_send(ch, a, 0), 0);
    CHECK_EQ(plait_chan_send(ch, a, 0), 0);
    CHECK_EQ(plait_chan_send(ch, a, 0), -ETIMEDOUT);
    CHECK_EQ(plait_chan_len(ch), 2);
    memset(b, 0, big);
    CHECK_EQ(plait_chan_recv(ch, b, 0), 0);
    CHECK(memcmp(a, b, big) == 0);
    CHECK_EQ(plait_chan_close(ch), 0);
    CHECK_EQ(plait_chan_close(ch), -EPIPE);
    CHECK_EQ(plait_chan_send(ch, a, PLAIT_FOREVER), -EPIPE);
    memset(b, 0, big);
    CHECK_EQ(plait_chan_recv(ch, b, PLAIT_FOREVER), 0); /* buffered: still there */
    CHECK(memcmp(a, b, big) == 0);
    CHECK_EQ(plait_chan_recv(ch, b, PLAIT_FOREVER), -EPIPE);
    CHECK_EQ(plait_chan_recv(ch, b, 0), -EPIPE);
    CHECK_EQ(plait_chan_destroy(ch), 0);
    free(a);
    free(b);
    /* nulls */
    CHECK_EQ(plait_chan_send(NULL, &r, 0), -EINVAL);
    CHECK_EQ(plait_chan_recv(NULL, &r, 0), -EINVAL);
    CHECK_EQ(plait_chan_close(NULL), -EINVAL);
    CHECK_EQ(plait_chan_destroy(NULL), -EINVAL);
    CHECK_EQ(plait_chan_len(NULL), 0);
    CHECK_EQ(plait_chan_create(&ch, 1, 0), 0);
    CHECK_EQ(plait_chan_send(ch, NULL, 0), -EINVAL);
    CHECK_EQ(plait_chan_recv(ch, NULL, 0), -EINVAL);
    CHECK_EQ(plait_chan_destroy(ch), 0);
}

/* ======================================================================== */
/* Select over closed channels only, and over both ends of one channel       */
/* ======================================================================== */

TEST(select_all_closed)
{
    plait_chan *ch[3];
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(plait_chan_create(&ch[i], sizeof(int), (size_t)i), 0);
        CHECK_EQ(plait_chan_close(ch[i]), 0);
    }
    int v[3] = {1, 2, 3};
    int hits[3] = {0};
    for (int k = 0; k < 300; k++) {
        plait_select_case cases[3];
        for (int i = 0; i < 3; i++)
            cases[i] = (plait_select_case){.chan = ch[i], .op = i == 1 ? PLAIT_SEND : PLAIT_RECV,
                                           .elem = &v[i], .result = 77};
        int r = plait_select(cases, 3, k % 2 ? PLAIT_FOREVER : 0);
        CHECK(r >= 0 && r < 3);
        if (r < 0 || r >= 3)
            break;
        hits[r]++;
        CHECK_EQ(cases[r].result, -EPIPE);
        for (int i = 0; i < 3; i++)
            if (i != r)
                CHECK_EQ(cases[i].result, 77);
    }
    CHECK_EQ(v[0], 1);
    CHECK_EQ(v[2], 3);
    for (int i = 0; i < 3; i++) {
        CHECK(hits[i] > 0);
        CHECK_EQ(plait_chan_destroy(ch[i]), 0);
    }
}

/* ======================================================================== */
/* Close while senders and receivers of every kind are parked; destroy       */
/* ======================================================================== */

typedef struct {
    plait_chan *ch;
    int v;
    atomic_int r;
    atomic_int tid; /* published just before the call */
} parked;

static void *parked_send(void *p)
{
    parked *x = p;
    atomic_store(&x->tid, gettid_());
    atomic_store(&x->r, plait_chan_send(x->ch, &x->v, SOON()));
    return NULL;
}

static void *parked_recv(void *p)
{
    parked *x = p;
    atomic_store(&x->tid, gettid_());
    atomic_store(&x->r, plait_chan_recv(x->ch, &x->v, SOON()));
    return NULL;
}

static parked close_parked[4];

static void *close_coros(void *p)
{
    (void)p;
    plait_task t[2];
    CHECK_EQ(plait_spawn(&t[0], parked_send, &close_parked[0]), 0);
    CHECK_EQ(plait_spawn(&t[1], parked_send, &close_parked[1]), 0);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(plait_join(t[i], NULL, SOON()), 0);
    return NULL;
}

TEST(close_with_parked_senders_keeps_the_buffer)
{
    plait_chan *ch;
    CHECK_EQ(plait_chan_create(&ch, sizeof(int), 2), 0);
    int one = 1, two = 2;
    CHECK_EQ(plait_chan_send(ch, &one, 0), 0);
    CHECK_EQ(plait_chan_send(ch, &two, 0), 0);
    memset(close_parked, 0, sizeof close_parked);
    for (int i = 0; i < 4; i++) {
        close_parked[i].ch = ch;
        close_parked[i].v = 100 + i;
        atomic_store(&close_parked[i].r, 1);
    }
    sched_thread st;
    sched_thread_start(&st, close_coros, NULL);
    plait_task th[2];
    for (int i = 0; i < 2; i++)
        CHECK_EQ(plait_thread_start(&th[i], parked_send, &close_parked[2 + i], NULL), 0);
    /* the scheduler's thread sleeps once both coroutines wait (main joins them) */
    for (int i = 1; i < 4; i++)
        wait_asleep(&close_parked[i].tid);
    CHECK_EQ(plait_chan_destroy(ch), -EBUSY);
    CHECK_EQ(plait_chan_len(ch), 2);
    CHECK_EQ(plait_chan_close(ch), 0);
    sched_thread_join(&st);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(plait_join(th[i], NULL, SOON()), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(atomic_load(&close_parked[i].r), -EPIPE);
    int v = 0;
    CHECK_EQ(plait_chan_recv(ch, &v, 0), 0);
    CHECK_EQ(v, 1);
    CHECK_EQ(plait_chan_recv(ch, &v, PLAIT_FOREVER), 0);
    CHECK_EQ(v, 2);
    CHECK_EQ(plait_chan_recv(ch, &v, PLAIT_FOREVER), -EPIPE);
    CHECK_EQ(plait_chan_destroy(ch), 0);
}

/* Parked waiters of a closed channel have been taken off it by the close: a destroy
 * right after the close succeeds, before any of them has run again. */
static void *close_then_destroy_main(void *p)
{
    (void)p;
    plait_chan *ch;
    CHECK_EQ(plait_chan_create(&ch, sizeof(int), 0), 0);
    parked x[3];
    memset(x, 0, sizeof x);
    for (int i = 0; i < 3; i++) {
        x[i].ch = ch;
        x[i].v = -1;
        atomic_store(&x[i].r, 1);
    }
    plait_task t[3];
    CHECK_EQ(plait_spawn(&t[0], parked_recv, &x[0]), 0);
    CHECK_EQ(plait_spawn(&t[1], parked_recv, &x[1]), 0);
    CHECK_EQ(plait_thread_start(&t[2], parked_recv, &x[2], NULL), 0);
    settle(); /* the coroutines park */
    wait_asleep(&x[2].tid);
    CHECK_EQ(plait_chan_destroy(ch), -EBUSY);
    int five = 5;
    CHECK_EQ(plait_chan_send(ch, &five, 0), 0); /* to one of the receivers */
    CHECK_EQ(plait_chan_close(ch), 0);
    CHECK_EQ(plait_chan_destroy(ch), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(plait_join(t[i], NULL, SOON()), 0);
    int got = 0;
    for (int i = 0; i < 3; i++) {
        int r = atomic_load(&x[i].r);
        CHECK(r == 0 || r == -EPIPE);
        CHECK_EQ(x[i].v, r == 0 ? 5 : -1);
        got += r == 0;
    }
    CHECK_EQ(got, 1);
    return NULL;
}

TEST(close_then_destroy_at_once) { check_run(close_then_destroy_main, NULL); }

/* ======================================================================== */
/* Selects that each offer to send and to receive on one channel, on two     */
/* schedulers and threads at once: they pair with each other (never with     */
/* themselves), and every element sent is received exactly once              */
/* ======================================================================== */

enum { SB_PARTIES = 6, SB_ROUNDS = 3000 };

typedef struct {
    plait_chan *ch[2];
    atomic_int sent[SB_PARTIES * SB_ROUNDS];
    atomic_int got[SB_PARTIES * SB_ROUNDS];
    atomic_int bad, self_pairs, timeouts;
} sb_ctx;

static sb_ctx *sb;

static void *sb_party(void *p)
{
    int id = INT(p);
    uint64_t seed = (uint64_t)(id + 1) * 0x2545f4914f6cdd1dull;
    for (int k = 0; k < SB_ROUNDS; k++) {
        int out = id * SB_ROUNDS + k, in[2] = {-1, -1};
        int out2 = out;
        plait_select_case cases[4] = {
            {.chan = sb->ch[0], .op = PLAIT_SEND, .elem = &out},
            {.chan = sb->ch[0], .op = PLAIT_RECV, .elem = &in[0]},
            {.chan = sb->ch[1], .op = PLAIT_RECV, .elem = &in[1]},
            {.chan = sb->ch[1], .op = PLAIT_SEND, .elem = &out2},
        };
        size_t n = rnd(&seed) % 2 ? 4 : 2;
        int64_t deadline = rnd(&seed) % 8 ? plait_deadline_in(300 * PLAIT_US) : 0;
        int r = plait_select(cases, n, deadline);
        if (r == -ETIMEDOUT) {
            atomic_fetch_add(&sb->timeouts, 1);
            if (in[0] != -1 || in[1] != -1)
                atomic_fetch_add(&sb->bad, 1);
            continue;
        }
        if (r < 0 || r >= (int)n || cases[r].result != 0) {
            atomic_fetch_add(&sb->bad, 1);
            continue;
        }
        if (cases[r].op == PLAIT_SEND) {
            if (atomic_fetch_add(&sb->sent[out], 1))
                atomic_fetch_add(&sb->bad, 1);
        } else {
            int v = in[r == 1 ? 0 : 1];
            if (v < 0 || v >= SB_PARTIES * SB_ROUNDS) {
                atomic_fetch_add(&sb->bad, 1);
                continue;
            }
            if (v / SB_ROUNDS == id)
                atomic_fetch_add(&sb->self_pairs, 1);
            atomic_fetch_add(&sb->got[v], 1);
        }
    }
    return NULL;
}

static void *sb_sched(void *p)
{
    int base = INT(p);
    plait_task t[2];
    for (int i = 0; i < 2; i++)
        CHECK_EQ(plait_spawn(&t[i], sb_party, ARG(base + i)), 0);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(plait_join(t[i], NULL, plait_deadline_in(60 * PLAIT_SEC)), 0);
    return NULL;
}

TEST(select_both_ends_stress_across_models)
{
    sb = calloc(1, sizeof *sb);
    CHECK(sb);
    CHECK_EQ(plait_chan_create(&sb->ch[0], sizeof(int), 0), 0);
    CHECK_EQ(plait_chan_create(&sb->ch[1], sizeof(int), 1), 0);
    sched_thread st[2];
    sched_thread_start(&st[0], sb_sched, ARG(0));
    sched_thread_start(&st[1], sb_sched, ARG(2));
    plait_task th[2];
    for (int i = 0; i < 2; i++)
        CHECK_EQ(plait_thread_start(&th[i], sb_party, ARG(4 + i), NULL), 0);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(plait_join(th[i], NULL, plait_deadline_in(60 * PLAIT_SEC)), 0);
    for (int s = 0; s < 2; s++)
        sched_thread_join(&st[s]);
    /* what the buffered channel still holds was sent and not received */
    int left = -1;
    while (plait_chan_recv(sb->ch[1], &left, 0) == 0)
        atomic_fetch_add(&sb->got[left], 1);
    int lost = 0, made_up = 0, sends = 0;
    for (int v = 0; v < SB_PARTIES * SB_ROUNDS; v++) {
        int s1 = atomic_load(&sb->sent[v]), g = atomic_load(&sb->got[v]);
        sends += s1;
        lost += s1 && g != 1;
        made_up += !s1 && g;
    }
    CHECK_EQ(lost, 0);
    CHECK_EQ(made_up, 0);
    CHECK_EQ(atomic_load(&sb->bad), 0);
    CHECK(sends > 0);
    if (getenv("PLAIT_TEST_VERBOSE"))
        printf("     %d sends, %d timeouts, %d received through the buffer from itself\n",
               sends, atomic_load(&sb->timeouts), atomic_load(&sb->self_pairs));
    for (int i = 0; i < 2; i++)
        CHECK_EQ(plait_chan_destroy(sb->ch[i]), 0);
    free(sb);
    sb = NULL;
}

/* ======================================================================== */
/* Queue: coroutines on two schedulers and threads, with deadlines and       */
/* cancellations, then a close: every message sent is received exactly once */
/* ======================================================================== */

enum { QS_SENDERS = 6, QS_PER = 3000, QS_TOTAL = QS_SENDERS * QS_PER, QS_RECEIVERS = 6 };

typedef struct {
    plait_queue *q;
    atomic_int seen[QS_TOTAL];
    atomic_int dups, bad, received, senders_left;
    atomic_long sum;
    plait_task victims[2][4];
    atomic_int victims_ready[2];
} qs_ctx;

static qs_ctx *qs;

static void *qs_sender(void *p)
{
    int id = INT(p);
    uint64_t seed = (uint64_t)(id + 3) * 0x9e3779b97f4a7c15ull;
    for (int k = 0; k < QS_PER;) {
        int v[2] = {id * QS_PER + k, ~(id * QS_PER + k)};
        int64_t deadline = rnd(&seed) % 3 ? plait_deadline_in(200 * PLAIT_US) : 0;
        int r = plait_queue_send(qs->q, v, sizeof v, deadline);
        if (r == -ETIMEDOUT)
            continue;
        CHECK_EQ(r, 0);
        if (r)
            break;
        k++;
    }
    if (atomic_fetch_sub(&qs->senders_left, 1) == 1)
        CHECK_EQ(plait_queue_close(qs->q), 0);
    return NULL;
}

static void qs_record(const int *v, ssize_t len)
{
    if (len != 2 * (ssize_t)sizeof(int) || v[0] < 0 || v[0] >= QS_TOTAL || v[1] != ~v[0]) {
        atomic_fetch_add(&qs->bad, 1);
        return;
    }
    if (atomic_fetch_add(&qs->seen[v[0]], 1))
        atomic_fetch_add(&qs->dups, 1);
    atomic_fetch_add(&qs->sum, v[0]);
    atomic_fetch_add(&qs->received, 1);
}

static void *qs_receiver(void *p)
{
    uint64_t seed = (uint64_t)(INT(p) + 11) * 0x9e3779b97f4a7c15ull;
    for (;;) {
        int v[4] = {-1, -1, -1, -1};
        uint32_t x = rnd(&seed);
        int64_t deadline = x % 4 == 0 ? 0 : plait_deadline_in((x >> 8) % (500 * PLAIT_US));
        ssize_t n = plait_queue_recv(qs->q, v, sizeof v, deadline);
        if (n == -ETIMEDOUT)
            continue;
        if (n == -EPIPE)
            return NULL;
        if (n == -ECANCELED) {
            CHECK_EQ(v[0], -1); /* nothing taken */
            return NULL;
        }
        CHECK(n >= 0);
        if (n < 0)
            return NULL;
        qs_record(v, n);
    }
}

static void *qs_sched(void *p)
{
    int s = INT(p);
    plait_task snd[2], rcv[2];
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(plait_spawn(&snd[i], qs_sender, ARG(s * 2 + i)), 0);
        CHECK_EQ(plait_spawn(&rcv[i], qs_receiver, ARG(s * 2 + i)), 0);
    }
    /* victims: receivers cancelled while the traffic flows */
    for (int i = 0; i < 4; i++)
        CHECK_EQ(plait_spawn(&qs->victims[s][i], qs_receiver, ARG(100 + s * 4 + i)), 0);
    atomic_store(&qs->victims_ready[s], 1);
    for (int i = 0; i < 4; i++) {
        int r = plait_join(qs->victims[s][i], NULL, plait_deadline_in(30 * PLAIT_SEC));
        CHECK(r == 0 || r == -ECANCELED);
    }
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(plait_join(snd[i], NULL, plait_deadline_in(30 * PLAIT_SEC)), 0);
        CHECK_EQ(plait_join(rcv[i], NULL, plait_deadline_in(30 * PLAIT_SEC)), 0);
    }
    return NULL;
}

TEST(queue_exactly_once_across_models)
{
    qs = calloc(1, sizeof *qs);
    CHECK(qs);
    CHECK_EQ(plait_queue_create(&qs->q, 2 * sizeof(int), 4), 0);
    atomic_store(&qs->senders_left, QS_SENDERS);
    sched_thread st[2];
    for (int s = 0; s < 2; s++)
        sched_thread_start(&st[s], qs_sched, ARG(s));
    plait_task snd[2], rcv[2];
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(plait_thread_start(&snd[i], qs_sender, ARG(4 + i), NULL), 0);
        CHECK_EQ(plait_thread_start(&rcv[i], qs_receiver, ARG(4 + i), NULL), 0);
    }
    uint64_t seed = 99;
    for (int s = 0; s < 2; s++) {
        wait_for(&qs->victims_ready[s]);
        for (int i = 0; i < 4; i++) {
            struct timespec ts = {0, (long)(rnd(&seed) % 2000) * 1000};
            nanosleep(&ts, NULL);
            CHECK_EQ(plait_cancel(qs->victims[s][i]), 0);
        }
    }
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(plait_join(snd[i], NULL, plait_deadline_in(30 * PLAIT_SEC)), 0);
        CHECK_EQ(plait_join(rcv[i], NULL, plait_deadline_in(30 * PLAIT_SEC)), 0);
    }
    for (int s = 0; s < 2; s++)
        sched_thread_join(&st[s]);
    int missing = 0;
    long want = 0;
    for (int v = 0; v < QS_TOTAL; v++) {
        missing += atomic_load(&qs->seen[v]) == 0;
        want += v;
    }
    CHECK_EQ(missing, 0);
    CHECK_EQ(atomic_load(&qs->dups), 0);
    CHECK_EQ(atomic_load(&qs->bad), 0);
    CHECK_EQ(atomic_load(&qs->received), QS_TOTAL);
    CHECK_EQ(atomic_load(&qs->sum), want);
    CHECK_EQ(plait_queue_len(qs->q), 0);
    int v[2];
    CHECK_EQ(plait_queue_send(qs->q, v, sizeof v, PLAIT_FOREVER), -EPIPE);
    CHECK_EQ(plait_queue_recv(qs->q, v, sizeof v, PLAIT_FOREVER), -EPIPE);
    CHECK_EQ(plait_queue_close(qs->q), -EPIPE);
    CHECK_EQ(plait_queue_destroy(qs->q), 0);
    free(qs);
    qs = NULL;
}

/* ======================================================================== */
/* Queue: close while senders and receivers of every kind are parked         */
/* ======================================================================== */

typedef struct {
    plait_queue *q;
    atomic_int r;
    atomic_int tid;
    char m[8];
} qparked;

static void *qparked_send(void *p)
{
    qparked *x = p;
    atomic_store(&x->tid, gettid_());
    atomic_store(&x->r, plait_queue_send(x->q, "late", 5, SOON()));
    return NULL;
}

static void *qparked_recv(void *p)
{
    qparked *x = p;
    atomic_store(&x->tid, gettid_());
    atomic_store(&x->r, (int)plait_queue_recv(x->q, x->m, sizeof x->m, SOON()));
    return NULL;
}

static qparked qp[4];

static void *qparked_coros(void *p)
{
    plait_fn fn = INT(p) ? qparked_send : qparked_recv;
    plait_task t[2];
    for (int i = 0; i < 2; i++)
        CHECK_EQ(plait_spawn(&t[i], fn, &qp[i]), 0);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(plait_join(t[i], NULL, SOON()), 0);
    return NULL;
}

static void queue_close_parked(bool senders)
{
    plait_queue *q;
    CHECK_EQ(plait_queue_create(&q, 8, 2), 0);
    if (senders) { /* full: the senders wait */
        CHECK_EQ(plait_queue_send(q, "one", 4, 0), 0);
        CHECK_EQ(plait_queue_send(q, "two", 4, 0), 0);
    }
    memset(qp, 0, sizeof qp);
    for (int i = 0; i < 4; i++) {
        qp[i].q = q;
        atomic_store(&qp[i].r, 1);
    }
    sched_thread st;
    sched_thread_start(&st, qparked_coros, ARG(senders));
    plait_task th[2];
    for (int i = 0; i < 2; i++)
        CHECK_EQ(plait_thread_start(&th[i], senders ? qparked_send : qparked_recv, &qp[2 + i],
                                    NULL),
                 0);
    /* the threads sleep in their waits; the coroutines' scheduler sleeps once both wait
     * (through the watcher: wait until its thread, too, has gone to sleep) */
    for (int i = 1; i < 4; i++)
        wait_asleep(&qp[i].tid);
    CHECK_EQ(plait_queue_destroy(q), -EBUSY);
    CHECK_EQ(plait_queue_len(q), senders ? 2 : 0);
    CHECK_EQ(plait_queue_close(q), 0);
    sched_thread_join(&st);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(plait_join(th[i], NULL, SOON()), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(atomic_load(&qp[i].r), -EPIPE);
    char m[8];
    if (senders) { /* what was queued before the close is still there, in order */
        CHECK_EQ(plait_queue_recv(q, m, sizeof m, 0), 4);
        CHECK(strcmp(m, "one") == 0);
        CHECK_EQ(plait_queue_recv(q, m, sizeof m, PLAIT_FOREVER), 4);
        CHECK(strcmp(m, "two") == 0);
    }
    CHECK_EQ(plait_queue_recv(q, m, sizeof m, PLAIT_FOREVER), -EPIPE);
    CHECK_EQ(plait_queue_send(q, "x", 2, PLAIT_FOREVER), -EPIPE);
    CHECK_EQ(plait_queue_destroy(q), 0);
}

TEST(queue_close_with_parked_receivers) { queue_close_parked(false); }
TEST(queue_close_with_parked_senders) { queue_close_parked(true); }

/* ======================================================================== */
/* Queue: child processes send, coroutines on two schedulers and a thread    */
/* receive; one child is killed mid-stream                                   */
/* ======================================================================== */

enum { PX_FULL = 2000, PX_CAP = 200000 };

typedef struct {
    plait_queue *q;
    atomic_int seen_full[PX_FULL];
    atomic_int seen_killed[PX_CAP];
    atomic_int bad, dups, from_killed, epipes;
} px_ctx;

static px_ctx *px;

/* In the child: send (id, seq) for seq from 0 while seq < n. */
static ssize_t px_child(const void *arg, size_t len, void *out, size_t cap)
{
    (void)len, (void)out, (void)cap;
    const int *a = arg; /* id, n */
    for (int k = 0; k < a[1]; k++) {
        int m[2] = {a[0], k};
        if (plait_queue_send(px->q, m, sizeof m, SOON()) != 0)
            return -EIO;
    }
    return 0;
}

static void *px_receiver(void *p)
{
    (void)p;
    for (;;) {
        int m[2] = {-1, -1};
        ssize_t n = plait_queue_recv(px->q, m, sizeof m, SOON());
        if (n == -EPIPE) {
            atomic_fetch_add(&px->epipes, 1);
            return NULL;
        }
        CHECK_EQ(n, (ssize_t)sizeof m);
        if (n != (ssize_t)sizeof m)
            return NULL;
        atomic_int *seen = NULL;
        if (m[0] == 0 && m[1] >= 0 && m[1] < PX_FULL)
            seen = &px->seen_full[m[1]];
        else if (m[0] == 1 && m[1] >= 0 && m[1] < PX_CAP) {
            seen = &px->seen_killed[m[1]];
            atomic_fetch_add(&px->from_killed, 1);
        }
        if (!seen)
            atomic_fetch_add(&px->bad, 1);
        else if (atomic_fetch_add(seen, 1))
            atomic_fetch_add(&px->dups, 1);
    }
}

static void *px_sched(void *p)
{
    (void)p;
    plait_task t[2];
    for (int i = 0; i < 2; i++)
        CHECK_EQ(plait_spawn(&t[i], px_receiver, NULL), 0);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(plait_join(t[i], NULL, plait_deadline_in(30 * PLAIT_SEC)), 0);
    return NULL;
}

TEST(queue_from_child_processes_one_killed)
{
    px = calloc(1, sizeof *px);
    CHECK(px);
    CHECK_EQ(plait_queue_create(&px->q, 2 * sizeof(int), 8), 0);
    int m[2];
    /* this process takes the receiving side before any sender can end */
    CHECK_EQ(plait_queue_recv(px->q, m, sizeof m, 0), -ETIMEDOUT);
    sched_thread st[2];
    for (int s = 0; s < 2; s++)
        sched_thread_start(&st[s], px_sched, NULL);
    plait_task th;
    CHECK_EQ(plait_thread_start(&th, px_receiver, NULL, NULL), 0);
    int full[2] = {0, PX_FULL}, killed[2] = {1, PX_CAP};
    plait_task kid[2];
    CHECK_EQ(plait_process_start(&kid[0], px_child, full, sizeof full, NULL, NULL), 0);
    CHECK_EQ(plait_process_start(&kid[1], px_child, killed, sizeof killed, NULL, NULL), 0);
    /* kill the endless sender once some of its messages came through */
    int64_t deadline = SOON();
    while (atomic_load(&px->from_killed) < 300 && plait_now() < deadline)
        sched_yield();
    CHECK_EQ(plait_process_kill(kid[1], SIGKILL), 0);
    CHECK_EQ(plait_join(kid[0], NULL, SOON()), 0);
    CHECK_EQ(plait_join(kid[1], NULL, SOON()), PLAIT_KILLED(SIGKILL));
    /* both senders gone: the receivers drain the queue, then get -EPIPE */
    CHECK_EQ(plait_join(th, NULL, SOON()), 0);
    for (int s = 0; s < 2; s++)
        sched_thread_join(&st[s]);
    CHECK_EQ(atomic_load(&px->epipes), 5);
    CHECK_EQ(atomic_load(&px->bad), 0);
    CHECK_EQ(atomic_load(&px->dups), 0);
    int missing = 0;
    for (int k = 0; k < PX_FULL; k++)
        missing += atomic_load(&px->seen_full[k]) != 1;
    CHECK_EQ(missing, 0);
    /* what the killed child sent is a prefix of its stream: nothing lost before its
     * last message, nothing made up after */
    int k = 0;
    while (k < PX_CAP && atomic_load(&px->seen_killed[k]))
        k++;
    CHECK(k >= 300);
    int after = 0;
    for (int j = k; j < PX_CAP; j++)
        after += atomic_load(&px->seen_killed[j]) != 0;
    CHECK_EQ(after, 0);
    CHECK_EQ(atomic_load(&px->from_killed), k);
    CHECK_EQ(plait_queue_len(px->q), 0);
    CHECK_EQ(plait_queue_destroy(px->q), 0);
    free(px);
    px = NULL;
}

/* ======================================================================== */
/* A queue's wait from a coroutine on the smallest stack                     */
/* ======================================================================== */

/* A coroutine waits on a queue through a watcher thread (pfutex.c), which the first
 * such wait in a process starts.  It was started on the waiting coroutine's stack and
 * named from there: pthread_setname_np for another thread formats the path of its comm
 * file with sprintf, kilobytes of glibc's frames, and a coroutine on a PLAIT_STACK_MIN
 * stack, which holds plait's own frames (plait.h), overflowed its stack ("stack
 * overflow in coroutine") in its first plait_queue_recv or plait_queue_send that had
 * to wait.  In a child process: a fresh one has no watcher yet, and a crash is this
 * case's failure.  Only an optimised build without a sanitizer makes that promise. */
static plait_queue *tiny_q;
static atomic_int tiny_first_done; /* the first, timed-out wait is over */

/* Until the other coroutine's first wait has timed out: it then enters its second
 * before this one runs again (one scheduler). */
static void tiny_wait_first_done(void)
{
    int64_t until = SOON();
    while (!atomic_load(&tiny_first_done) && plait_now() < until)
        CHECK_EQ(plait_sleep(5 * PLAIT_MS), 0);
    CHECK(atomic_exchange(&tiny_first_done, 0));
}

static void *tiny_recv(void *p)
{
    (void)p;
    char m[8] = {0};
    CHECK_EQ(plait_queue_recv(tiny_q, m, sizeof m, plait_deadline_in(20 * PLAIT_MS)), -ETIMEDOUT);
    atomic_store(&tiny_first_done, 1);
    CHECK_EQ(plait_queue_recv(tiny_q, m, sizeof m, SOON()), 3); /* woken by a send */
    CHECK(memcmp(m, "ab", 3) == 0);
    return NULL;
}

static void *tiny_send(void *p)
{
    (void)p;
    CHECK_EQ(plait_queue_send(tiny_q, "xy", 3, plait_deadline_in(20 * PLAIT_MS)), -ETIMEDOUT);
    atomic_store(&tiny_first_done, 1);
    CHECK_EQ(plait_queue_send(tiny_q, "cd", 3, SOON()), 0); /* woken by a receive */
    return NULL;
}

static void *tiny_main(void *p)
{
    (void)p;
    plait_spawn_options o = {.name = "tiny", .stack_size = PLAIT_STACK_MIN};
    plait_task t;
    CHECK_EQ(plait_spawn_opts(&t, tiny_recv, NULL, &o), 0);
    tiny_wait_first_done(); /* past its first wait, into its second */
    CHECK_EQ(plait_queue_send(tiny_q, "ab", 3, 0), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(plait_queue_send(tiny_q, "zz", 3, 0), 0); /* full now */
    CHECK_EQ(plait_spawn_opts(&t, tiny_send, NULL, &o), 0);
    tiny_wait_first_done();
    char m[8];
    CHECK_EQ(plait_queue_recv(tiny_q, m, sizeof m, 0), 3);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(plait_queue_recv(tiny_q, m, sizeof m, 0), 3);
    CHECK(memcmp(m, "cd", 3) == 0);
    return NULL;
}

TEST(queue_wait_on_the_smallest_stack)
{
    if (CHECK_SANITIZED) {
        CHECK_SKIP("sanitizer frames need larger stacks than PLAIT_STACK_MIN");
        return;
    }
    pid_t pid = fork_child(true);
    if (pid == 0) {
        CHECK_EQ(plait_queue_create(&tiny_q, 8, 1), 0);
        check_run(tiny_main, NULL);
        CHECK_EQ(plait_queue_destroy(tiny_q), 0);
        child_exit();
    }
    reap_ok(pid, 30);
}

RUN_TESTS(CASE(cancel_at_handoff_coroutine), CASE(cancel_at_handoff_thread),
          CASE(cancel_at_handoff_pool_task),
          CASE(cancel_and_deadline_at_handoff), CASE(chan_bounds), CASE(select_all_closed),
          CASE(close_with_parked_senders_keeps_the_buffer), CASE(close_then_destroy_at_once),
          CASE(queue_exactly_once_across_models),
          CASE(select_both_ends_stress_across_models),
          CASE(queue_wait_on_the_smallest_stack),
          CASE(queue_close_with_parked_receivers), CASE(queue_close_with_parked_senders),
          CASE(queue_from_child_processes_one_killed))
