/*
 * test_chan_handoff.c — a channel's element handed straight to or from a party that
 * waits: every byte arrives, and no byte more, whether the element travels in the
 * waiter itself (up to PLAIT__WAITER_PAYLOAD bytes: waiter.c, plait__wait_on_element)
 * or through the caller's buffer (larger ones); a wait that fails leaves the
 * receiver's buffer as it was; a select meets such a waiter from either side; and many
 * coroutines of two schedulers woken from threads each get their own elements, once.
 *
 * The sizes straddle the payload's: 1, 3, PAYLOAD - 1, PAYLOAD, PAYLOAD + 1, 64, 1000.
 * The waiting party is a plain thread or a coroutine of a scheduler on another thread,
 * seen asleep in its wait (wait_asleep) before the other side comes.
 */
#include "helpers.h"

#include "../src/internal.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum { BIG = 1000, GUARD = 16, GUARD_BYTE = 0xEE };

static const size_t sizes[] = {1, 3, PLAIT__WAITER_PAYLOAD - 1, PLAIT__WAITER_PAYLOAD,
                               PLAIT__WAITER_PAYLOAD + 1, 64, BIG};
#define N_SIZES (sizeof sizes / sizeof sizes[0])

static void fill(unsigned char *buf, size_t size, unsigned seed)
{
    for (size_t i = 0; i < size; i++)
        buf[i] = (unsigned char)(seed * 31u + i * 7u + 1u);
}

static bool holds(const unsigned char *buf, size_t size, unsigned seed)
{
    for (size_t i = 0; i < size; i++)
        if (buf[i] != (unsigned char)(seed * 31u + i * 7u + 1u))
            return false;
    return true;
}

static bool untouched(const unsigned char *buf, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        if (buf[i] != GUARD_BYTE)
            return false;
    return true;
}

/* ---- the waiting party: a plain thread or a scheduler's main coroutine ---- */

typedef struct {
    plait_chan *ch;
    size_t size;
    bool sends;       /* it sends (seed) rather than receives */
    unsigned seed;
    int64_t deadline;
    atomic_int tid;   /* published just before the wait */
    int result;
    unsigned char buf[BIG + GUARD];
} party;

static void party_wait(party *p)
{
    atomic_store(&p->tid, gettid_());
    p->result = p->sends ? plait_chan_send(p->ch, p->buf, p->deadline)
                         : plait_chan_recv(p->ch, p->buf, p->deadline);
}

static void *party_coroutine(void *arg)
{
    party_wait(arg);
    return NULL;
}

static void *party_thread(void *arg)
{
    party_wait(arg);
    return NULL;
}

typedef struct {
    bool coroutine;
    pthread_t th;
    sched_thread st;
} party_runner;

static void party_init(party *p, plait_chan *ch, size_t size, bool sends, unsigned seed)
{
    p->ch = ch;
    p->size = size;
    p->sends = sends;
    p->seed = seed;
    p->deadline = SOON();
    atomic_init(&p->tid, 0);
    p->result = 1;
    memset(p->buf, GUARD_BYTE, sizeof p->buf);
    if (sends)
        fill(p->buf, size, seed);
}

static void party_start(party_runner *r, party *p)
{
    if (r->coroutine)
        sched_thread_start(&r->st, party_coroutine, p);
    else
        thread_start(&r->th, party_thread, p);
    wait_asleep(&p->tid);
}

static void party_join(party_runner *r)
{
    if (r->coroutine)
        sched_thread_join(&r->st);
    else
        thread_join(r->th);
}

/* ---- the cases ---- */

/* one(party runner, unbuffered channel of the size, the size, its index) for each kind
 * of waiting party and each size; the channel is destroyed after. */
static void each_party_and_size(void (*one)(party_runner *, plait_chan *, size_t, unsigned))
{
    for (int coroutine = 0; coroutine < 2; coroutine++)
        for (size_t k = 0; k < N_SIZES; k++) {
            plait_chan *ch;
            CHECK_EQ(plait_chan_create(&ch, sizes[k], 0), 0);
            party_runner r = {.coroutine = coroutine};
            one(&r, ch, sizes[k], (unsigned)k);
            CHECK_EQ(plait_chan_destroy(ch), 0);
        }
}

static party waiting; /* the waiting party of the case running (its buffer is large) */

static void receiver_gets(party_runner *r, plait_chan *ch, size_t size, unsigned k)
{
    party_init(&waiting, ch, size, false, 0);
    party_start(r, &waiting);
    unsigned char out[BIG];
    fill(out, size, k + 5);
    CHECK_EQ(plait_chan_send(ch, out, SOON()), 0);
    party_join(r);
    CHECK_EQ(waiting.result, 0);
    CHECK(holds(waiting.buf, size, k + 5));
    CHECK(untouched(waiting.buf, size, size + GUARD));
}

TEST(a_waiting_receiver_gets_every_byte_and_no_more)
{
    each_party_and_size(receiver_gets);
}

TEST(a_waiting_sender_gives_every_byte_straight_or_into_the_buffer)
{
    for (int coroutine = 0; coroutine < 2; coroutine++)
        for (size_t capacity = 0; capacity < 2; capacity++)
            for (size_t k = 0; k < N_SIZES; k++) {
                size_t size = sizes[k];
                plait_chan *ch;
                CHECK_EQ(plait_chan_create(&ch, size, capacity), 0);
                unsigned char first[BIG];
                fill(first, size, 90);
                if (capacity == 1) /* full: the sender waits behind this one */
                    CHECK_EQ(plait_chan_send(ch, first, SOON()), 0);
                party_init(&waiting, ch, size, true, (unsigned)k + 11);
                party_runner r = {.coroutine = coroutine};
                party_start(&r, &waiting);
                unsigned char in[BIG + GUARD];
                memset(in, GUARD_BYTE, sizeof in);
                CHECK_EQ(plait_chan_recv(ch, in, SOON()), 0);
                if (capacity == 1) {
                    /* the ring's element; the waiting sender's went into the ring */
                    CHECK(holds(in, size, 90));
                    party_join(&r);
                    CHECK_EQ(plait_chan_len(ch), 1);
                    memset(in, GUARD_BYTE, sizeof in);
                    CHECK_EQ(plait_chan_recv(ch, in, SOON()), 0);
                } else {
                    party_join(&r);
                }
                CHECK_EQ(waiting.result, 0);
                CHECK(holds(in, size, (unsigned)k + 11));
                CHECK(untouched(in, size, size + GUARD));
                CHECK_EQ(plait_chan_len(ch), 0);
                CHECK_EQ(plait_chan_destroy(ch), 0);
            }
}

static void failed_receive_leaves_buffer(party_runner *r, plait_chan *ch, size_t size,
                                         unsigned k)
{
    (void)k;
    /* its deadline passes */
    party_init(&waiting, ch, size, false, 0);
    waiting.deadline = plait_deadline_in(20 * PLAIT_MS);
    if (r->coroutine)
        sched_thread_start(&r->st, party_coroutine, &waiting);
    else
        thread_start(&r->th, party_thread, &waiting);
    party_join(r);
    CHECK_EQ(waiting.result, -ETIMEDOUT);
    CHECK(untouched(waiting.buf, 0, size + GUARD));
    /* the channel is closed under it */
    party_init(&waiting, ch, size, false, 0);
    party_start(r, &waiting);
    CHECK_EQ(plait_chan_close(ch), 0);
    party_join(r);
    CHECK_EQ(waiting.result, -EPIPE);
    CHECK(untouched(waiting.buf, 0, size + GUARD));
}

TEST(a_receive_that_fails_leaves_its_buffer_as_it_was)
{
    each_party_and_size(failed_receive_leaves_buffer);
}

/* A coroutine's receive cancelled mid-wait. */
static void *cancelled_receiver_main(void *arg)
{
    (void)arg;
    for (size_t k = 0; k < N_SIZES; k++) {
        plait_chan *ch;
        CHECK_EQ(plait_chan_create(&ch, sizes[k], 0), 0);
        party_init(&waiting, ch, sizes[k], false, 0);
        plait_task t;
        CHECK_EQ(plait_spawn(&t, party_coroutine, &waiting), 0);
        CHECK_EQ(plait_yield(), 0); /* it runs until it waits */
        CHECK(atomic_load(&waiting.tid) != 0);
        CHECK_EQ(plait_cancel(t), 0);
        CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
        CHECK_EQ(waiting.result, -ECANCELED);
        CHECK(untouched(waiting.buf, 0, sizes[k] + GUARD));
        CHECK_EQ(plait_chan_destroy(ch), 0);
    }
    return NULL;
}

TEST(a_cancelled_receive_leaves_its_buffer_as_it_was)
{
    check_run(cancelled_receiver_main, NULL);
}

static void select_meets_party(party_runner *r, plait_chan *ch, size_t size, unsigned k)
{
    (void)k;
    plait_chan *idle;
    CHECK_EQ(plait_chan_create(&idle, size, 0), 0);
    unsigned char mine[BIG + GUARD], spare[BIG];
    /* the party receives; the select sends */
    party_init(&waiting, ch, size, false, 0);
    party_start(r, &waiting);
    fill(mine, size, 40);
    plait_select_case send_cases[2] = {
        {.chan = idle, .op = PLAIT_RECV, .elem = spare},
        {.chan = ch, .op = PLAIT_SEND, .elem = mine},
    };
    CHECK_EQ(plait_select(send_cases, 2, SOON()), 1);
    CHECK_EQ(send_cases[1].result, 0);
    party_join(r);
    CHECK_EQ(waiting.result, 0);
    CHECK(holds(waiting.buf, size, 40));
    CHECK(untouched(waiting.buf, size, size + GUARD));
    /* the party sends; the select receives */
    party_init(&waiting, ch, size, true, 41);
    party_start(r, &waiting);
    memset(mine, GUARD_BYTE, sizeof mine);
    plait_select_case recv_cases[2] = {
        {.chan = idle, .op = PLAIT_RECV, .elem = spare},
        {.chan = ch, .op = PLAIT_RECV, .elem = mine},
    };
    CHECK_EQ(plait_select(recv_cases, 2, SOON()), 1);
    CHECK_EQ(recv_cases[1].result, 0);
    party_join(r);
    CHECK_EQ(waiting.result, 0);
    CHECK(holds(mine, size, 41));
    CHECK(untouched(mine, size, size + GUARD));
    CHECK_EQ(plait_chan_destroy(idle), 0);
}

TEST(a_select_meets_a_waiting_party_from_either_side)
{
    each_party_and_size(select_meets_party);
}

/* ---- many coroutines of two schedulers, woken by two threads ---- */

enum { PRODUCERS = 2, SCHEDULERS = 2, CONSUMERS = 4, ITEMS = 20000 };

typedef struct {
    uint64_t seq, inverse, product; /* PLAIT__WAITER_PAYLOAD bytes, checked on arrival */
} item;
_Static_assert(sizeof(item) == PLAIT__WAITER_PAYLOAD, "the element fills the payload");

typedef struct {
    plait_chan *ch;
    atomic_uchar seen[ITEMS];
    atomic_int torn;    /* elements whose three words disagree */
    atomic_int ended;   /* consumers that saw the close */
} crowd;

typedef struct {
    crowd *c;
    int first;
} producer;

static void *produce(void *arg)
{
    producer *p = arg;
    for (int i = p->first; i < ITEMS; i += PRODUCERS) {
        item it = {(uint64_t)i, ~(uint64_t)i, (uint64_t)i * 0x9E3779B97F4A7C15u};
        CHECK_EQ(plait_chan_send(p->c->ch, &it, SOON()), 0);
    }
    return NULL;
}

static void *consume(void *arg)
{
    crowd *c = arg;
    item it;
    int r;
    while ((r = plait_chan_recv(c->ch, &it, SOON())) == 0) {
        if (it.seq >= ITEMS || it.inverse != ~it.seq ||
            it.product != it.seq * 0x9E3779B97F4A7C15u) {
            atomic_fetch_add(&c->torn, 1);
            continue;
        }
        atomic_fetch_add(&c->seen[it.seq], 1);
    }
    if (r == -EPIPE)
        atomic_fetch_add(&c->ended, 1);
    return NULL;
}

static void *consumers_main(void *arg)
{
    plait_task t[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++)
        CHECK_EQ(plait_spawn(&t[i], consume, arg), 0);
    for (int i = 0; i < CONSUMERS; i++)
        CHECK_EQ(plait_join(t[i], NULL, SOON()), 0);
    return NULL;
}

TEST(coroutines_of_two_schedulers_woken_by_threads_get_each_element_once)
{
    static crowd c;
    memset(&c, 0, sizeof c);
    CHECK_EQ(plait_chan_create(&c.ch, sizeof(item), 0), 0);
    sched_thread st[SCHEDULERS];
    for (int i = 0; i < SCHEDULERS; i++)
        sched_thread_start(&st[i], consumers_main, &c);
    pthread_t th[PRODUCERS];
    producer p[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (producer){.c = &c, .first = i};
        thread_start(&th[i], produce, &p[i]);
    }
    for (int i = 0; i < PRODUCERS; i++)
        thread_join(th[i]);
    CHECK_EQ(plait_chan_close(c.ch), 0);
    for (int i = 0; i < SCHEDULERS; i++)
        sched_thread_join(&st[i]);
    CHECK_EQ(atomic_load(&c.torn), 0);
    CHECK_EQ(atomic_load(&c.ended), SCHEDULERS * CONSUMERS);
    int wrong = 0;
    for (int i = 0; i < ITEMS; i++)
        wrong += atomic_load(&c.seen[i]) != 1;
    CHECK_EQ(wrong, 0);
    CHECK_EQ(plait_chan_destroy(c.ch), 0);
}

RUN_TESTS(CASE(a_waiting_receiver_gets_every_byte_and_no_more),
          CASE(a_waiting_sender_gives_every_byte_straight_or_into_the_buffer),
          CASE(a_receive_that_fails_leaves_its_buffer_as_it_was),
          CASE(a_cancelled_receive_leaves_its_buffer_as_it_was),
          CASE(a_select_meets_a_waiting_party_from_either_side),
          CASE(coroutines_of_two_schedulers_woken_by_threads_get_each_element_once))
