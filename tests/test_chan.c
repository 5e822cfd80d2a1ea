/* test_chan.c — channels, buffered and unbuffered: order, capacity, close, deadlines,
 * cancellation, bad input, every pairing of coroutines (on one or two schedulers) and
 * plain threads, and a stress test that checks every element arrives exactly once.
 *
 * Ordering between parties comes from the channels and other primitives, or from a
 * single scheduler's certainty that a yielding coroutine lets every ready one run
 * until it blocks.  A sleep appears only where the assertion holds either way (to
 * give a waiter time to block) or to measure a deadline, with a generous margin. */
#include "helpers.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>


/* A coroutine (or thread) that does one send or receive and records the outcome. */
typedef struct {
    plait_chan *ch;
    int value;   /* sent, or received */
    int result;
    bool returned;
    int64_t deadline;
} chan_op;

static void *do_send(void *p)
{
    chan_op *op = p;
    op->result = plait_chan_send(op->ch, &op->value, op->deadline);
    op->returned = true;
    return NULL;
}

static void *do_recv(void *p)
{
    chan_op *op = p;
    op->result = plait_chan_recv(op->ch, &op->value, op->deadline);
    op->returned = true;
    return NULL;
}

static chan_op op_of(plait_chan *ch, int value)
{
    return (chan_op){.ch = ch, .value = value, .result = 1, .deadline = PLAIT_FOREVER};
}

/* ======================================================================== */
/* Bad input                                                                 */
/* ======================================================================== */

TEST(chan_bad_input)
{
    plait_chan *ch = NULL;
    int v = 0;
    CHECK_EQ(plait_chan_create(NULL, sizeof(int), 1), -EINVAL);
    CHECK_EQ(plait_chan_create(&ch, 0, 1), -EINVAL);
    CHECK_EQ(plait_chan_create(&ch, 0, 0), -EINVAL);
    CHECK_EQ(plait_chan_create(&ch, PLAIT_CHAN_ELEM_MAX + 1, 0), -EINVAL);
    CHECK_EQ(plait_chan_create(&ch, SIZE_MAX, 1), -EINVAL);
    CHECK_EQ(plait_chan_create(&ch, sizeof(int), PLAIT_CHAN_CAPACITY_MAX + 1), -EINVAL);
    CHECK_EQ(plait_chan_create(&ch, 1, SIZE_MAX), -EINVAL);
    CHECK(ch == NULL); /* untouched by the failures */
    CHECK_EQ(plait_chan_destroy(NULL), -EINVAL);
    CHECK_EQ(plait_chan_send(NULL, &v, 0), -EINVAL);
    CHECK_EQ(plait_chan_recv(NULL, &v, 0), -EINVAL);
    CHECK_EQ(plait_chan_close(NULL), -EINVAL);
    CHECK_EQ(plait_chan_len(NULL), 0);

    CHECK_EQ(plait_chan_create(&ch, sizeof(int), 2), 0);
    CHECK_EQ(plait_chan_send(ch, NULL, 0), -EINVAL);
    CHECK_EQ(plait_chan_recv(ch, NULL, 0), -EINVAL);
    CHECK_EQ(plait_chan_len(ch), 0); /* the refused calls changed nothing */
    CHECK_EQ(plait_chan_destroy(ch), 0);

    /* the limits themselves are accepted */
    CHECK_EQ(plait_chan_create(&ch, 1, PLAIT_CHAN_CAPACITY_MAX), 0);
    char c = 'x', d = 0;
    CHECK_EQ(plait_chan_send(ch, &c, 0), 0);
    CHECK_EQ(plait_chan_recv(ch, &d, 0), 0);
    CHECK_EQ(d, 'x');
    CHECK_EQ(plait_chan_destroy(ch), 0);

    size_t big = PLAIT_CHAN_ELEM_MAX;
    unsigned char *in = malloc(big), *out = malloc(big);
    CHECK(in && out);
    for (size_t i = 0; i < big; i++)
        in[i] = (unsigned char)(i * 131 + 7);
    memset(out, 0, big);
    CHECK_EQ(plait_chan_create(&ch, big, 1), 0);
    CHECK_EQ(plait_chan_send(ch, in, 0), 0);
    CHECK_EQ(plait_chan_send(ch, in, 0), -ETIMEDOUT);
    CHECK_EQ(plait_chan_recv(ch, out, 0), 0);
    CHECK(memcmp(in, out, big) == 0);
    CHECK_EQ(plait_chan_destroy(ch), 0);
    free(in);
    free(out);
}

/* ======================================================================== */
/* Buffered and unbuffered behaviour                                         */
/* ======================================================================== */

typedef struct {
    uint64_t seq;
    char tag[12];
    uint32_t check;
} item;

static item make_item(uint64_t seq)
{
    item it;
    memset(&it, 0, sizeof it);
    it.seq = seq;
    snprintf(it.tag, sizeof it.tag, "i%llu", (unsigned long long)seq);
    it.check = (uint32_t)(seq * 2654435761u);
    return it;
}

static bool item_ok(const item *it, uint64_t seq)
{
    item want = make_item(seq);
    return memcmp(it, &want, sizeof want) == 0;
}

/* Runs from a plain thread and from a coroutine. */
static void buffered_basics(void)
{
    plait_chan *ch;
    CHECK_EQ(plait_chan_create(&ch, sizeof(item), 4), 0);
    int64_t start = plait_now();
    for (uint64_t i = 0; i < 4; i++) {
        item it = make_item(i);
        CHECK_EQ(plait_chan_send(ch, &it, 0), 0); /* room: no waiting needed */
        CHECK_EQ(plait_chan_len(ch), i + 1);
    }
    item extra = make_item(99), got;
    CHECK_EQ(plait_chan_send(ch, &extra, 0), -ETIMEDOUT); /* full */
    CHECK_EQ(plait_chan_send(ch, &extra, start - PLAIT_SEC), -ETIMEDOUT);
    CHECK_PROMPT(start);
    start = plait_now();
    CHECK_EQ(plait_chan_send(ch, &extra, start + 50 * PLAIT_MS), -ETIMEDOUT);
    CHECK_TOOK(start, 50 * PLAIT_MS);
    CHECK_EQ(plait_chan_len(ch), 4);
    for (uint64_t i = 0; i < 4; i++) {
        memset(&got, 0xff, sizeof got);
        CHECK_EQ(plait_chan_recv(ch, &got, 0), 0);
        CHECK(item_ok(&got, i));
    }
    CHECK_EQ(plait_chan_len(ch), 0);
    start = plait_now();
    CHECK_EQ(plait_chan_recv(ch, &got, 0), -ETIMEDOUT);
    CHECK_EQ(plait_chan_recv(ch, &got, start - PLAIT_SEC), -ETIMEDOUT);
    CHECK_PROMPT(start);
    start = plait_now();
    CHECK_EQ(plait_chan_recv(ch, &got, start + 50 * PLAIT_MS), -ETIMEDOUT);
    CHECK_TOOK(start, 50 * PLAIT_MS);
    /* the ring wraps many times; order holds */
    uint64_t next_in = 0, next_out = 0;
    for (int round = 0; round < 300; round++) {
        int burst = 1 + round % 4;
        for (int k = 0; k < burst && plait_chan_len(ch) < 4; k++) {
            item it = make_item(next_in++);
            CHECK_EQ(plait_chan_send(ch, &it, 0), 0);
        }
        int take = 1 + (round * 7) % 3;
        for (int k = 0; k < take && plait_chan_len(ch) > 0; k++) {
            CHECK_EQ(plait_chan_recv(ch, &got, 0), 0);
            CHECK(item_ok(&got, next_out++));
        }
    }
    while (plait_chan_len(ch) > 0) {
        CHECK_EQ(plait_chan_recv(ch, &got, 0), 0);
        CHECK(item_ok(&got, next_out++));
    }
    CHECK_EQ(next_in, next_out);
    CHECK(next_in > 300);
    CHECK_EQ(plait_chan_destroy(ch), 0);
}

static void *buffered_basics_main(void *p)
{
    (void)p;
    buffered_basics();
    return NULL;
}

TEST(buffered_fifo_capacity_deadlines)
{
    buffered_basics();
    check_run(buffered_basics_main, NULL);
}

static void *unbuffered_main(void *p)
{
    (void)p;
    plait_chan *ch;
    int v = 0;
    CHECK_EQ(plait_chan_create(&ch, sizeof(int), 0), 0);
    int64_t start = plait_now();
    CHECK_EQ(plait_chan_send(ch, &v, 0), -ETIMEDOUT); /* nobody receives */
    CHECK_EQ(plait_chan_recv(ch, &v, 0), -ETIMEDOUT);
    CHECK_PROMPT(start);
    start = plait_now();
    CHECK_EQ(plait_chan_send(ch, &v, start + 30 * PLAIT_MS), -ETIMEDOUT);
    CHECK_TOOK(start, 30 * PLAIT_MS);
    CHECK_EQ(plait_chan_len(ch), 0);

    /* a waiting receiver: a send completes without waiting, straight into it */
    chan_op r = op_of(ch, -1);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, do_recv, &r), 0);
    settle();
    CHECK(!r.returned);
    CHECK_EQ(plait_chan_destroy(ch), -EBUSY);
    v = 41;
    CHECK_EQ(plait_chan_send(ch, &v, 0), 0);
    CHECK_EQ(plait_chan_len(ch), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(r.result, 0);
    CHECK_EQ(r.value, 41);

    /* a waiting sender: the send is a rendezvous, it returns once received */
    chan_op s = op_of(ch, 42);
    CHECK_EQ(plait_spawn(&t, do_send, &s), 0);
    settle();
    CHECK(!s.returned);
    CHECK_EQ(plait_chan_len(ch), 0);
    CHECK_EQ(plait_chan_destroy(ch), -EBUSY);
    v = 0;
    CHECK_EQ(plait_chan_recv(ch, &v, 0), 0);
    CHECK_EQ(v, 42);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(s.result, 0);

    /* several waiting senders are received in arrival order */
    chan_op ss[3];
    plait_task ts[3];
    for (int i = 0; i < 3; i++) {
        ss[i] = op_of(ch, 100 + i);
        CHECK_EQ(plait_spawn(&ts[i], do_send, &ss[i]), 0);
    }
    settle();
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(plait_chan_recv(ch, &v, SOON()), 0);
        CHECK_EQ(v, 100 + i);
    }
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(plait_join(ts[i], NULL, SOON()), 0);
        CHECK_EQ(ss[i].result, 0);
    }
    CHECK_EQ(plait_chan_destroy(ch), 0);
    return NULL;
}

TEST(unbuffered_rendezvous) { check_run(unbuffered_main, NULL); }

static void *full_buffer_main(void *p)
{
    (void)p;
    plait_chan *ch;
    CHECK_EQ(plait_chan_create(&ch, sizeof(int), 2), 0);
    int v;
    for (v = 0; v < 2; v++)
        CHECK_EQ(plait_chan_send(ch, &v, 0), 0);
    /* senders that wait on a full buffer get in, in order, as room appears */
    chan_op ss[3];
    plait_task ts[3];
    for (int i = 0; i < 3; i++) {
        ss[i] = op_of(ch, 2 + i);
        CHECK_EQ(plait_spawn(&ts[i], do_send, &ss[i]), 0);
    }
    settle();
    CHECK_EQ(plait_chan_len(ch), 2);
    CHECK_EQ(plait_chan_destroy(ch), -EBUSY);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(plait_chan_recv(ch, &v, 0), 0); /* each frees a slot a sender fills */
        CHECK_EQ(v, i);
        CHECK_EQ(plait_chan_len(ch), i < 3 ? 2 : 4 - i);
    }
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(plait_join(ts[i], NULL, SOON()), 0);
        CHECK_EQ(ss[i].result, 0);
    }
    /* receivers that wait on an empty buffer are served in order */
    chan_op rs[3];
    for (int i = 0; i < 3; i++) {
        rs[i] = op_of(ch, -1);
        CHECK_EQ(plait_spawn(&ts[i], do_recv, &rs[i]), 0);
    }
    settle();
    CHECK_EQ(plait_chan_destroy(ch), -EBUSY);
    for (v = 10; v < 13; v++)
        CHECK_EQ(plait_chan_send(ch, &v, 0), 0);
    CHECK_EQ(plait_chan_len(ch), 0); /* handed straight over */
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(plait_join(ts[i], NULL, SOON()), 0);
        CHECK_EQ(rs[i].result, 0);
        CHECK_EQ(rs[i].value, 10 + i);
    }
    CHECK_EQ(plait_chan_destroy(ch), 0);
    return NULL;
}

TEST(buffered_waiters) { check_run(full_buffer_main, NULL); }

/* Elements of odd sizes keep their bytes and order across many wraps. */
TEST(odd_element_sizes)
{
    size_t sizes[] = {1, 3, 7, 13, 33};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t es = sizes[k];
        plait_chan *ch;
        CHECK_EQ(plait_chan_create(&ch, es, 5), 0);
        unsigned char in[64], out[64];
        unsigned next_in = 0, next_out = 0;
        for (int round = 0; round < 200; round++) {
            for (int j = 0; j < 1 + round % 5 && plait_chan_len(ch) < 5; j++) {
                for (size_t b = 0; b < es; b++)
                    in[b] = (unsigned char)(next_in * 29 + b);
                memset(in + es, 0xee, sizeof in - es);
                CHECK_EQ(plait_chan_send(ch, in, 0), 0);
                next_in++;
            }
            for (int j = 0; j < 1 + round % 3 && plait_chan_len(ch) > 0; j++) {
                memset(out, 0xab, sizeof out);
                CHECK_EQ(plait_chan_recv(ch, out, 0), 0);
                int bad = 0;
                for (size_t b = 0; b < es; b++)
                    bad += out[b] != (unsigned char)(next_out * 29 + b);
                for (size_t b = es; b < sizeof out; b++)
                    bad += out[b] != 0xab; /* nothing written past the element */
                CHECK_EQ(bad, 0);
                next_out++;
            }
        }
        CHECK(next_out > 100);
        CHECK_EQ(next_in - next_out, plait_chan_len(ch));
        CHECK_EQ(plait_chan_destroy(ch), 0);
    }
}

/* ======================================================================== */
/* Close                                                                     */
/* ======================================================================== */

static void *close_main(void *p)
{
    (void)p;
    plait_chan *ch;
    int v;
    CHECK_EQ(plait_chan_create(&ch, sizeof(int), 4), 0);
    for (v = 1; v <= 3; v++)
        CHECK_EQ(plait_chan_send(ch, &v, 0), 0);
    CHECK_EQ(plait_chan_close(ch), 0);
    CHECK_EQ(plait_chan_close(ch), -EPIPE);
    v = 9;
    CHECK_EQ(plait_chan_send(ch, &v, PLAIT_FOREVER), -EPIPE);
    CHECK_EQ(plait_chan_send(ch, &v, 0), -EPIPE); /* closed beats the deadline */
    CHECK_EQ(plait_chan_len(ch), 3);
    for (int i = 1; i <= 3; i++) {
        CHECK_EQ(plait_chan_recv(ch, &v, 0), 0); /* what was buffered still drains */
        CHECK_EQ(v, i);
    }
    v = -7;
    CHECK_EQ(plait_chan_recv(ch, &v, PLAIT_FOREVER), -EPIPE);
    CHECK_EQ(plait_chan_recv(ch, &v, 0), -EPIPE);
    CHECK_EQ(plait_chan_recv(ch, &v, plait_now() - PLAIT_SEC), -EPIPE);
    CHECK_EQ(v, -7); /* untouched */
    CHECK_EQ(plait_chan_destroy(ch), 0);

    /* waiting receivers are woken with -EPIPE */
    CHECK_EQ(plait_chan_create(&ch, sizeof(int), 2), 0);
    chan_op rs[3];
    plait_task ts[3];
    for (int i = 0; i < 3; i++) {
        rs[i] = op_of(ch, -1);
        CHECK_EQ(plait_spawn(&ts[i], do_recv, &rs[i]), 0);
    }
    settle();
    CHECK_EQ(plait_chan_close(ch), 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(plait_join(ts[i], NULL, SOON()), 0);
        CHECK_EQ(rs[i].result, -EPIPE);
        CHECK_EQ(rs[i].value, -1);
    }
    CHECK_EQ(plait_chan_destroy(ch), 0);

    /* waiting senders are woken with -EPIPE; what was buffered still drains, and the
     * refused elements never show up */
    CHECK_EQ(plait_chan_create(&ch, sizeof(int), 2), 0);
    for (v = 0; v < 2; v++)
        CHECK_EQ(plait_chan_send(ch, &v, 0), 0);
    chan_op ss[3];
    for (int i = 0; i < 3; i++) {
        ss[i] = op_of(ch, 50 + i);
        CHECK_EQ(plait_spawn(&ts[i], do_send, &ss[i]), 0);
    }
    settle();
    CHECK_EQ(plait_chan_close(ch), 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(plait_join(ts[i], NULL, SOON()), 0);
        CHECK_EQ(ss[i].result, -EPIPE);
    }
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(plait_chan_recv(ch, &v, 0), 0);
        CHECK_EQ(v, i);
    }
    CHECK_EQ(plait_chan_recv(ch, &v, SOON()), -EPIPE);
    CHECK_EQ(plait_chan_destroy(ch), 0);

    /* unbuffered: a waiting sender's element is not delivered after close */
    CHECK_EQ(plait_chan_create(&ch, sizeof(int), 0), 0);
    ss[0] = op_of(ch, 5);
    CHECK_EQ(plait_spawn(&ts[0], do_send, &ss[0]), 0);
    settle();
    CHECK_EQ(plait_chan_close(ch), 0);
    CHECK_EQ(plait_chan_recv(ch, &v, SOON()), -EPIPE);
    CHECK_EQ(plait_join(ts[0], NULL, SOON()), 0);
    CHECK_EQ(ss[0].result, -EPIPE);

    /* a cancelled coroutine still sees the close: that does not block */
    rs[0] = op_of(ch, -1);
    CHECK_EQ(plait_spawn(&ts[0], do_recv, &rs[0]), 0);
    CHECK_EQ(plait_cancel(ts[0]), 0);
    CHECK_EQ(plait_join(ts[0], NULL, SOON()), -ECANCELED);
    CHECK_EQ(rs[0].result, -EPIPE);
    CHECK_EQ(plait_chan_destroy(ch), 0);
    return NULL;
}

TEST(close_semantics) { check_run(close_main, NULL); }

/* A producer closes (or hands over its last element) and destroys the channel at
 * once, while the consumer it woke has not run yet: that is not "waited on" any more,
 * and the woken consumer must not touch the freed channel.  ASan reports it if it does. */
static void *destroy_after_wakeup_main(void *arg)
{
    (void)arg;
    plait_chan *ch;
    plait_task t;
    int v = 9;
    CHECK_EQ(plait_chan_create(&ch, sizeof(int), 0), 0);
    chan_op r = op_of(ch, -1);
    CHECK_EQ(plait_spawn(&t, do_recv, &r), 0);
    settle();
    CHECK_EQ(plait_chan_close(ch), 0);
    CHECK_EQ(plait_chan_destroy(ch), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(r.result, -EPIPE);

    CHECK_EQ(plait_chan_create(&ch, sizeof(int), 0), 0);
    r = op_of(ch, -1);
    CHECK_EQ(plait_spawn(&t, do_recv, &r), 0);
    settle();
    CHECK_EQ(plait_chan_send(ch, &v, 0), 0);
    CHECK_EQ(plait_chan_destroy(ch), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(r.result, 0);
    CHECK_EQ(r.value, 9);
    return NULL;
}

TEST(destroy_right_after_wakeup) { check_run(destroy_after_wakeup_main, NULL); }

/* Close from one party of each kind while parties of the other kinds wait. */
typedef struct {
    plait_chan *ch;
    plait_waitgroup *arrived;
    atomic_int epipe, other;
    bool senders; /* wait in send (full channel) rather than receive */
    atomic_int waiting;
    /* each waiter's thread's (a plain one's, or its scheduler's), just before it waits */
    atomic_int tids[2 * 3 + 2];
} close_mixed_ctx;

static close_mixed_ctx cm;

static void *cm_waiter(void *p)
{
    (void)p;
    int v = 77;
    CHECK_EQ(plait_waitgroup_done(cm.arrived), 0);
    atomic_store(&cm.tids[atomic_fetch_add(&cm.waiting, 1)], gettid_());
    int r = cm.senders ? plait_chan_send(cm.ch, &v, SOON()) : plait_chan_recv(cm.ch, &v, SOON());
    atomic_fetch_add(r == -EPIPE ? &cm.epipe : &cm.other, 1);
    return NULL;
}

static void *cm_sched(void *p)
{
    (void)p;
    plait_task t[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(plait_spawn(&t[i], cm_waiter, NULL), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(plait_join(t[i], NULL, SOON()), 0);
    return NULL;
}

static void *cm_closer(void *p)
{
    (void)p;
    CHECK_EQ(plait_waitgroup_wait(cm.arrived, SOON()), 0);
    /* every one waits: each plain thread sleeps, and each scheduler (its coroutines
     * and its main all wait).  Closed before they waited, the channel would fail their
     * calls at once, and pass, without testing the wake-up */
    for (int i = 0; i < 2 * 3 + 2; i++)
        wait_asleep(&cm.tids[i]);
    CHECK_EQ(plait_chan_close(cm.ch), 0);
    return NULL;
}

TEST(close_wakes_every_kind)
{
    for (int mode = 0; mode < 8; mode++) {
        memset(&cm, 0, sizeof cm);
        cm.senders = mode & 1;
        bool buffered = mode & 2;
        CHECK_EQ(plait_chan_create(&cm.ch, sizeof(int), buffered ? 1 : 0), 0);
        int fill = 1;
        if (cm.senders && buffered)
            CHECK_EQ(plait_chan_send(cm.ch, &fill, 0), 0);
        CHECK_EQ(plait_waitgroup_create(&cm.arrived), 0);
        CHECK_EQ(plait_waitgroup_add(cm.arrived, 2 * 3 + 2), 0);
        sched_thread st[2], closer;
        pthread_t th[2];
        for (int s = 0; s < 2; s++)
            sched_thread_start(&st[s], cm_sched, NULL);
        for (int i = 0; i < 2; i++)
            thread_start(&th[i], cm_waiter, NULL);
        if (mode & 4) {
            sched_thread_start(&closer, cm_closer, NULL); /* a coroutine closes */
            sched_thread_join(&closer);
        } else {
            cm_closer(NULL); /* a plain thread closes */
        }
        for (int i = 0; i < 2; i++)
            thread_join(th[i]);
        for (int s = 0; s < 2; s++)
            sched_thread_join(&st[s]);
        CHECK_EQ(atomic_load(&cm.epipe), 8);
        CHECK_EQ(atomic_load(&cm.other), 0);
        int v = 0;
        if (cm.senders && buffered) {
            CHECK_EQ(plait_chan_recv(cm.ch, &v, 0), 0);
            CHECK_EQ(v, 1);
        }
        CHECK_EQ(plait_chan_recv(cm.ch, &v, 0), -EPIPE);
        CHECK_EQ(plait_chan_destroy(cm.ch), 0);
        CHECK_EQ(plait_waitgroup_destroy(cm.arrived), 0);
    }
}

/* ======================================================================== */
/* Deadlines and cancellation                                                */
/* ======================================================================== */

typedef struct {
    plait_chan *ch;
    int ticks;
    bool stop;
} ticker_ctx;

static void *ticker(void *p)
{
    ticker_ctx *t = p;
    while (!t->stop) {
        t->ticks++;
        plait_sleep(2 * PLAIT_MS);
    }
    return NULL;
}

static void *deadline_main(void *p)
{
    (void)p;
    plait_chan *ch;
    CHECK_EQ(plait_chan_create(&ch, sizeof(int), 1), 0);
    ticker_ctx tk = {.ch = ch};
    plait_task tt;
    CHECK_EQ(plait_spawn(&tt, ticker, &tk), 0);
    /* a receive times out while the scheduler runs the others */
    int v = -1;
    int64_t start = plait_now();
    CHECK_EQ(plait_chan_recv(ch, &v, start + 60 * PLAIT_MS), -ETIMEDOUT);
    CHECK_TOOK(start, 60 * PLAIT_MS);
    CHECK(tk.ticks >= 1);
    CHECK_EQ(v, -1);
    /* a send on a full channel likewise; the element is not added */
    v = 1;
    CHECK_EQ(plait_chan_send(ch, &v, 0), 0);
    v = 2;
    start = plait_now();
    CHECK_EQ(plait_chan_send(ch, &v, start + 60 * PLAIT_MS), -ETIMEDOUT);
    CHECK_TOOK(start, 60 * PLAIT_MS);
    CHECK_EQ(plait_chan_len(ch), 1);
    CHECK_EQ(plait_chan_recv(ch, &v, 0), 0);
    CHECK_EQ(v, 1);
    CHECK_EQ(plait_chan_recv(ch, &v, 0), -ETIMEDOUT);
    /* a receiver that timed out is not handed a later element */
    chan_op r = op_of(ch, -1);
    r.deadline = plait_deadline_in(20 * PLAIT_MS);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, do_recv, &r), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(r.result, -ETIMEDOUT);
    v = 3;
    CHECK_EQ(plait_chan_send(ch, &v, 0), 0);
    CHECK_EQ(plait_chan_len(ch), 1);
    CHECK_EQ(r.value, -1);
    CHECK_EQ(plait_chan_recv(ch, &v, 0), 0);
    CHECK_EQ(v, 3);
    tk.stop = true;
    CHECK_EQ(plait_join(tt, NULL, SOON()), 0);
    CHECK_EQ(plait_chan_destroy(ch), 0);
    return NULL;
}

TEST(deadlines_coroutine) { check_run(deadline_main, NULL); }

static void *thread_times_out(void *p)
{
    plait_chan *ch = p;
    int v = -1;
    int64_t start = plait_now();
    CHECK_EQ(plait_chan_recv(ch, &v, start + 50 * PLAIT_MS), -ETIMEDOUT);
    CHECK_TOOK(start, 50 * PLAIT_MS);
    CHECK_EQ(v, -1);
    v = 8;
    start = plait_now();
    CHECK_EQ(plait_chan_send(ch, &v, start + 50 * PLAIT_MS), -ETIMEDOUT); /* unbuffered */
    CHECK_TOOK(start, 50 * PLAIT_MS);
    return NULL;
}

TEST(deadlines_thread)
{
    plait_chan *ch[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) { /* two at once, each on its own channel */
        CHECK_EQ(plait_chan_create(&ch[i], sizeof(int), 0), 0);
        thread_start(&th[i], thread_times_out, ch[i]);
    }
    for (int i = 0; i < 2; i++) {
        thread_join(th[i]);
        CHECK_EQ(plait_chan_destroy(ch[i]), 0);
    }
}

static void *cancel_main(void *p)
{
    int capacity = INT(p);
    plait_chan *ch;
    CHECK_EQ(plait_chan_create(&ch, sizeof(int), (size_t)capacity), 0);
    int v;
    for (v = 0; v < capacity; v++)
        CHECK_EQ(plait_chan_send(ch, &v, 0), 0);

    /* a blocked sender cancelled: its element never enters the channel */
    chan_op a = op_of(ch, 100), b = op_of(ch, 101), c = op_of(ch, 102);
    plait_task ta, tb, tc;
    CHECK_EQ(plait_spawn(&ta, do_send, &a), 0);
    CHECK_EQ(plait_spawn(&tb, do_send, &b), 0);
    CHECK_EQ(plait_spawn(&tc, do_send, &c), 0);
    settle();
    CHECK_EQ(plait_cancel(ta), 0);
    CHECK_EQ(plait_join(ta, NULL, SOON()), -ECANCELED);
    CHECK_EQ(a.result, -ECANCELED);
    /* b's element is handed over first, and then b is cancelled: the hand-off stands */
    for (int i = 0; i < capacity; i++) {
        CHECK_EQ(plait_chan_recv(ch, &v, 0), 0);
        CHECK_EQ(v, i);
    }
    CHECK_EQ(plait_chan_recv(ch, &v, 0), 0);
    CHECK_EQ(v, 101);
    CHECK_EQ(plait_cancel(tb), 0);
    CHECK_EQ(plait_join(tb, NULL, SOON()), -ECANCELED); /* cancelled task... */
    CHECK_EQ(b.result, 0);                              /* ...whose send had succeeded */
    /* c is cancelled before a receiver comes: 102 must not arrive */
    CHECK_EQ(plait_cancel(tc), 0);
    if (capacity > 0)
        CHECK_EQ(plait_chan_recv(ch, &v, 0), 0); /* capacity > 0: c got in before */
    else
        CHECK_EQ(plait_chan_recv(ch, &v, 0), -ETIMEDOUT);
    /* capacity > 0: c was woken when its element got in, and finished while this
     * coroutine joined b, before the cancel */
    CHECK_EQ(plait_join(tc, NULL, SOON()), capacity > 0 ? 0 : -ECANCELED);
    if (capacity > 0) {
        CHECK_EQ(v, 102);
        CHECK_EQ(c.result, 0);
    } else {
        CHECK_EQ(c.result, -ECANCELED);
    }
    CHECK_EQ(plait_chan_len(ch), 0);
    CHECK_EQ(plait_chan_recv(ch, &v, 0), -ETIMEDOUT);

    /* a blocked receiver cancelled: a later element is not lost to it */
    chan_op r1 = op_of(ch, -1), r2 = op_of(ch, -1);
    plait_task t1, t2;
    CHECK_EQ(plait_spawn(&t1, do_recv, &r1), 0);
    CHECK_EQ(plait_spawn(&t2, do_recv, &r2), 0);
    settle();
    CHECK_EQ(plait_cancel(t1), 0); /* cancelled, not yet run: its node is still queued */
    v = 200;
    CHECK_EQ(plait_chan_send(ch, &v, 0), 0); /* must skip r1 and reach r2 */
    CHECK_EQ(plait_join(t1, NULL, SOON()), -ECANCELED);
    CHECK_EQ(plait_join(t2, NULL, SOON()), 0);
    CHECK_EQ(r1.result, -ECANCELED);
    CHECK_EQ(r1.value, -1);
    CHECK_EQ(r2.result, 0);
    CHECK_EQ(r2.value, 200);
    CHECK_EQ(plait_chan_len(ch), 0);

    /* the last waiter cancelled: the element buffers (or, unbuffered, is refused) */
    r1 = op_of(ch, -1);
    CHECK_EQ(plait_spawn(&t1, do_recv, &r1), 0);
    settle();
    CHECK_EQ(plait_cancel(t1), 0);
    v = 300;
    CHECK_EQ(plait_chan_send(ch, &v, 0), capacity > 0 ? 0 : -ETIMEDOUT);
    CHECK_EQ(plait_join(t1, NULL, SOON()), -ECANCELED);
    CHECK_EQ(r1.result, -ECANCELED);
    CHECK_EQ(r1.value, -1);
    if (capacity > 0) {
        CHECK_EQ(plait_chan_recv(ch, &v, 0), 0);
        CHECK_EQ(v, 300);
    }

    /* sticky: a cancelled coroutine that would wait fails at once... */
    chan_op s = op_of(ch, 400);
    CHECK_EQ(plait_spawn(&t1, do_send, &s), 0);
    CHECK_EQ(plait_cancel(t1), 0);
    for (v = 0; v < capacity; v++)
        CHECK_EQ(plait_chan_send(ch, &v, 0), 0); /* full again */
    int64_t start = plait_now();
    CHECK_EQ(plait_join(t1, NULL, SOON()), -ECANCELED);
    CHECK_PROMPT(start);
    CHECK_EQ(s.result, -ECANCELED);
    /* ...but one that need not wait still completes */
    r1 = op_of(ch, -1);
    CHECK_EQ(plait_spawn(&t1, do_recv, &r1), 0);
    CHECK_EQ(plait_cancel(t1), 0);
    CHECK_EQ(plait_join(t1, NULL, SOON()), -ECANCELED);
    CHECK_EQ(r1.result, capacity > 0 ? 0 : -ECANCELED);
    CHECK_EQ(r1.value, capacity > 0 ? 0 : -1);
    while (plait_chan_len(ch) > 0)
        CHECK_EQ(plait_chan_recv(ch, &v, 0), 0);
    CHECK_EQ(plait_chan_destroy(ch), 0);
    return NULL;
}

TEST(cancel_blocked_unbuffered) { check_run(cancel_main, ARG(0)); }
TEST(cancel_blocked_buffered) { check_run(cancel_main, ARG(2)); }

/* A coroutine on one scheduler blocked in a channel call, cancelled from a plain
 * thread while a thread on the other side races it: the element is delivered exactly
 * when the coroutine's call reports success. */
#define XCANCEL_ROUNDS (CHECK_SANITIZED ? 60 : 300)

typedef struct {
    plait_chan *ch;
    plait_task task;
    plait_event *spawned;
    chan_op op;
    bool receive; /* the coroutine receives (else it sends) */
} xcancel_ctx;

static void *xcancel_sched(void *p)
{
    xcancel_ctx *x = p;
    CHECK_EQ(plait_spawn(&x->task, x->receive ? do_recv : do_send, &x->op), 0);
    CHECK_EQ(plait_event_set(x->spawned), 0);
    int r = plait_join(x->task, NULL, SOON());
    CHECK(r == 0 || r == -ECANCELED);
    return NULL;
}

TEST(cancel_races_partner_across_threads)
{
    uint64_t seed = 12345;
    int delivered = 0, cancelled = 0;
    for (int round = 0; round < XCANCEL_ROUNDS; round++) {
        xcancel_ctx x = {.receive = round % 2};
        CHECK_EQ(plait_chan_create(&x.ch, sizeof(int), 0), 0);
        CHECK_EQ(plait_event_create(&x.spawned), 0);
        x.op = op_of(x.ch, x.receive ? -1 : round);
        sched_thread st;
        sched_thread_start(&st, xcancel_sched, &x);
        CHECK_EQ(plait_event_wait(x.spawned, SOON()), 0);
        uint32_t spin = rnd(&seed) % 20000;
        for (volatile uint32_t i = 0; i < spin; i++)
            ;
        int v = round, r;
        if (rnd(&seed) % 2) {
            CHECK_EQ(plait_cancel(x.task), 0);
            r = x.receive ? plait_chan_send(x.ch, &v, plait_deadline_in(PLAIT_MS))
                          : plait_chan_recv(x.ch, &v, plait_deadline_in(PLAIT_MS));
        } else {
            r = x.receive ? plait_chan_send(x.ch, &v, plait_deadline_in(PLAIT_MS))
                          : plait_chan_recv(x.ch, &v, plait_deadline_in(PLAIT_MS));
            /* the task may have finished and been joined by now: a stale handle */
            int c = plait_cancel(x.task);
            CHECK(c == 0 || c == -ESRCH);
        }
        sched_thread_join(&st);
        CHECK(x.op.returned);
        CHECK(r == 0 || r == -ETIMEDOUT);
        CHECK(x.op.result == 0 || x.op.result == -ECANCELED);
        CHECK_EQ(r == 0, x.op.result == 0); /* both sides agree */
        if (r == 0) {
            if (x.receive)
                CHECK_EQ(x.op.value, round);
            else
                CHECK_EQ(v, round);
            delivered++;
        } else {
            CHECK_EQ(x.op.result, -ECANCELED);
            if (x.receive)
                CHECK_EQ(x.op.value, -1);
            cancelled++;
        }
        CHECK_EQ(plait_chan_destroy(x.ch), 0);
        plait_event_destroy(x.spawned);
    }
    CHECK_EQ(delivered + cancelled, XCANCEL_ROUNDS);
}

/* Coroutines still blocked in a send or receive when main returns are cancelled out
 * of them, and leave the channels idle. */
typedef struct {
    plait_chan *full, *empty;
    chan_op send, recv;
} leftover_ctx;

static void *leaves_blocked(void *p)
{
    leftover_ctx *l = p;
    CHECK_EQ(plait_spawn(NULL, do_send, &l->send), 0);
    CHECK_EQ(plait_spawn(NULL, do_recv, &l->recv), 0);
    settle();
    CHECK(!l->send.returned && !l->recv.returned);
    return NULL;
}

TEST(main_returns_with_blocked)
{
    leftover_ctx l;
    CHECK_EQ(plait_chan_create(&l.full, sizeof(int), 1), 0);
    CHECK_EQ(plait_chan_create(&l.empty, sizeof(int), 0), 0);
    int v = 1;
    CHECK_EQ(plait_chan_send(l.full, &v, 0), 0);
    l.send = op_of(l.full, 2);
    l.recv = op_of(l.empty, -1);
    check_run(leaves_blocked, &l);
    CHECK_EQ(l.send.result, -ECANCELED);
    CHECK_EQ(l.recv.result, -ECANCELED);
    CHECK_EQ(l.recv.value, -1);
    CHECK_EQ(plait_chan_len(l.full), 1);
    CHECK_EQ(plait_chan_recv(l.full, &v, 0), 0);
    CHECK_EQ(v, 1);
    CHECK_EQ(plait_chan_destroy(l.full), 0);
    CHECK_EQ(plait_chan_destroy(l.empty), 0);
}

/* ======================================================================== */
/* Every pairing of execution models                                         */
/* ======================================================================== */

#define PAIR_N (CHECK_SANITIZED ? 5000 : 20000)

typedef struct {
    plait_chan *ch;
    int received;
    int out_of_order;
    int errors;
} pair_ctx;

static void *pair_producer(void *p)
{
    pair_ctx *pc = p;
    for (int i = 0; i < PAIR_N; i++) {
        int r = plait_chan_send(pc->ch, &i, SOON());
        if (r != 0) {
            CHECK_EQ(r, 0);
            break;
        }
    }
    CHECK_EQ(plait_chan_close(pc->ch), 0);
    return NULL;
}

static void *pair_consumer(void *p)
{
    pair_ctx *pc = p;
    for (int expect = 0;; expect++) {
        int v = -1;
        int r = plait_chan_recv(pc->ch, &v, SOON());
        if (r == -EPIPE)
            break;
        if (r != 0) {
            pc->errors++;
            break;
        }
        if (v != expect)
            pc->out_of_order++;
        pc->received++;
    }
    return NULL;
}

enum model { THREAD, CORO_HERE, CORO_OTHER };

/* Producer as one model, consumer as another; CORO_HERE puts both on one scheduler
 * when both are coroutines, CORO_OTHER on a second one. */
static void run_pair(size_t capacity, enum model prod, enum model cons)
{
    pair_ctx pc = {0};
    CHECK_EQ(plait_chan_create(&pc.ch, sizeof(int), capacity), 0);
    pthread_t th[2];
    sched_thread st[2];
    int nth = 0, nst = 0;
    if (prod == THREAD)
        thread_start(&th[nth++], pair_producer, &pc);
    else
        sched_thread_start(&st[nst++], pair_producer, &pc);
    if (cons == THREAD)
        thread_start(&th[nth++], pair_consumer, &pc);
    else
        sched_thread_start(&st[nst++], pair_consumer, &pc);
    for (int i = 0; i < nth; i++)
        thread_join(th[i]);
    for (int i = 0; i < nst; i++)
        sched_thread_join(&st[i]);
    CHECK_EQ(pc.received, PAIR_N);
    CHECK_EQ(pc.out_of_order, 0);
    CHECK_EQ(pc.errors, 0);
    CHECK_EQ(plait_chan_destroy(pc.ch), 0);
}

static void *same_sched_pair(void *p)
{
    pair_ctx *pc = p;
    plait_task a, b;
    CHECK_EQ(plait_spawn(&a, pair_consumer, pc), 0);
    CHECK_EQ(plait_spawn(&b, pair_producer, pc), 0);
    CHECK_EQ(plait_join(a, NULL, plait_deadline_in(60 * PLAIT_SEC)), 0);
    CHECK_EQ(plait_join(b, NULL, plait_deadline_in(60 * PLAIT_SEC)), 0);
    return NULL;
}

TEST(models_pairwise)
{
    size_t caps[] = {0, 1, 16};
    for (size_t i = 0; i < 3; i++) {
        run_pair(caps[i], THREAD, CORO_OTHER);     /* thread -> coroutine */
        run_pair(caps[i], CORO_OTHER, THREAD);     /* coroutine -> thread */
        run_pair(caps[i], CORO_OTHER, CORO_OTHER); /* two schedulers */
        run_pair(caps[i], THREAD, THREAD);
        pair_ctx pc = {0};                         /* one scheduler */
        CHECK_EQ(plait_chan_create(&pc.ch, sizeof(int), caps[i]), 0);
        check_run(same_sched_pair, &pc);
        CHECK_EQ(pc.received, PAIR_N);
        CHECK_EQ(pc.out_of_order, 0);
        CHECK_EQ(plait_chan_destroy(pc.ch), 0);
    }
}

/* Large elements cross between threads intact. */
#define BIG_ELEM 4096
#define BIG_N (CHECK_SANITIZED ? 200 : 1000)

static void fill_big(unsigned char *b, int seq)
{
    for (int i = 0; i < BIG_ELEM; i++)
        b[i] = (unsigned char)(seq * 31 + i * 7);
}

static void *big_producer(void *p)
{
    plait_chan *ch = p;
    unsigned char *b = malloc(BIG_ELEM);
    CHECK(b);
    for (int s = 0; s < BIG_N; s++) {
        fill_big(b, s);
        CHECK_EQ(plait_chan_send(ch, b, SOON()), 0);
    }
    free(b);
    return NULL;
}

static void *big_consumer(void *p)
{
    plait_chan *ch = p;
    unsigned char *b = malloc(BIG_ELEM), *want = malloc(BIG_ELEM);
    CHECK(b && want);
    int bad = 0;
    for (int s = 0; s < BIG_N; s++) {
        CHECK_EQ(plait_chan_recv(ch, b, SOON()), 0);
        fill_big(want, s);
        bad += memcmp(b, want, BIG_ELEM) != 0;
    }
    CHECK_EQ(bad, 0);
    free(b);
    free(want);
    return NULL;
}

TEST(large_elements_cross_models)
{
    for (size_t cap = 0; cap <= 3; cap += 3) {
        plait_chan *ch;
        CHECK_EQ(plait_chan_create(&ch, BIG_ELEM, cap), 0);
        pthread_t th;
        sched_thread st;
        thread_start(&th, big_producer, ch);
        sched_thread_start(&st, big_consumer, ch);
        thread_join(th);
        sched_thread_join(&st);
        sched_thread_start(&st, big_producer, ch);
        thread_start(&th, big_consumer, ch);
        thread_join(th);
        sched_thread_join(&st);
        CHECK_EQ(plait_chan_destroy(ch), 0);
    }
}

/* ======================================================================== */
/* Stress: many producers and consumers of every kind, random deadlines,     */
/* cancelled parties; every value arrives exactly once.                      */
/* ======================================================================== */

#define ST_N (CHECK_SANITIZED ? 15000 : 40000)
#define ST_CORO 2      /* producers and consumers per scheduler, each */
#define ST_THREADS 2   /* plain-thread producers and consumers, each */
#define ST_PRODUCERS (2 * ST_CORO + ST_THREADS)
#define ST_VICTIMS 8   /* per scheduler: senders and receivers that get cancelled */
#define ST_TOTAL (ST_N + 2 * ST_VICTIMS)

typedef struct {
    plait_chan *ch;
    plait_waitgroup *senders; /* producers and victim senders still sending */
    atomic_uchar seen[ST_TOTAL];
    atomic_int victim_sent[ST_TOTAL]; /* victim values: 1 sent, -1 not */
    atomic_long sum;
    atomic_int received, dups, bad;
    atomic_int send_timeouts, recv_timeouts, victims_cancelled;
} stress_ctx;

static stress_ctx *sx;

static int64_t random_deadline(uint64_t *seed)
{
    uint32_t x = rnd(seed);
    switch (x % 5) {
    case 0:
        return 0; /* a poll */
    case 1:
        return plait_now() - PLAIT_MS;
    case 2:
        return plait_deadline_in((x >> 8) % (300 * PLAIT_US));
    default:
        return plait_deadline_in(10 * PLAIT_SEC);
    }
}

static void record(int v)
{
    if (v < 0 || v >= ST_TOTAL) {
        atomic_fetch_add(&sx->bad, 1);
        return;
    }
    if (atomic_fetch_add(&sx->seen[v], 1) != 0)
        atomic_fetch_add(&sx->dups, 1);
    atomic_fetch_add(&sx->sum, v);
    atomic_fetch_add(&sx->received, 1);
}

static void *st_producer(void *p)
{
    int id = INT(p);
    uint64_t seed = (uint64_t)(id + 1) * 0x9e3779b97f4a7c15ull;
    int per = ST_N / ST_PRODUCERS;
    int lo = id * per, hi = id == ST_PRODUCERS - 1 ? ST_N : lo + per;
    for (int v = lo; v < hi;) {
        int r = plait_chan_send(sx->ch, &v, random_deadline(&seed));
        if (r == -ETIMEDOUT) {
            atomic_fetch_add(&sx->send_timeouts, 1);
            continue;
        }
        CHECK_EQ(r, 0);
        if (r)
            break;
        v++;
    }
    CHECK_EQ(plait_waitgroup_done(sx->senders), 0);
    return NULL;
}

static void *st_consumer(void *p)
{
    uint64_t seed = (uint64_t)(INT(p) + 77) * 0x9e3779b97f4a7c15ull;
    for (;;) {
        int v = -1;
        int r = plait_chan_recv(sx->ch, &v, random_deadline(&seed));
        if (r == -ETIMEDOUT) {
            atomic_fetch_add(&sx->recv_timeouts, 1);
            continue;
        }
        if (r == -EPIPE)
            return NULL;
        CHECK_EQ(r, 0);
        if (r)
            return NULL;
        record(v);
        if (plait_in_coroutine() && v % 64 == 0)
            plait_yield();
    }
}

static void *st_victim_sender(void *p)
{
    int v = INT(p);
    int r = plait_chan_send(sx->ch, &v, PLAIT_FOREVER);
    CHECK(r == 0 || r == -ECANCELED);
    atomic_store(&sx->victim_sent[v], r == 0 ? 1 : -1);
    if (r == -ECANCELED)
        atomic_fetch_add(&sx->victims_cancelled, 1);
    CHECK_EQ(plait_waitgroup_done(sx->senders), 0);
    return NULL;
}

static void *st_victim_receiver(void *p)
{
    (void)p;
    for (;;) {
        int v = -1;
        int r = plait_chan_recv(sx->ch, &v, PLAIT_FOREVER);
        if (r == -ECANCELED) {
            atomic_fetch_add(&sx->victims_cancelled, 1);
            CHECK_EQ(v, -1); /* nothing was written into a cancelled receive */
            return NULL;
        }
        if (r == -EPIPE)
            return NULL;
        CHECK_EQ(r, 0);
        record(v);
    }
}

static void *st_sched(void *p)
{
    int s = INT(p);
    uint64_t seed = (uint64_t)(s + 5) * 0x9e3779b97f4a7c15ull;
    plait_task prod[ST_CORO], cons[ST_CORO], vs[ST_VICTIMS], vr[ST_VICTIMS];
    for (int i = 0; i < ST_CORO; i++) {
        CHECK_EQ(plait_spawn(&prod[i], st_producer, ARG(s * ST_CORO + i)), 0);
        CHECK_EQ(plait_spawn(&cons[i], st_consumer, ARG(s * ST_CORO + i)), 0);
    }
    for (int i = 0; i < ST_VICTIMS; i++) {
        CHECK_EQ(plait_spawn(&vs[i], st_victim_sender, ARG(ST_N + s * ST_VICTIMS + i)), 0);
        CHECK_EQ(plait_spawn(&vr[i], st_victim_receiver, NULL), 0);
    }
    /* cancel the victims one by one at random moments while the traffic flows */
    for (int i = 0; i < ST_VICTIMS; i++) {
        plait_sleep((int64_t)(rnd(&seed) % 3000) * PLAIT_US);
        CHECK_EQ(plait_cancel(vs[i]), 0);
        CHECK_EQ(plait_cancel(vr[i]), 0);
    }
    for (int i = 0; i < ST_VICTIMS; i++) {
        int r = plait_join(vs[i], NULL, plait_deadline_in(60 * PLAIT_SEC));
        CHECK(r == 0 || r == -ECANCELED);
        r = plait_join(vr[i], NULL, plait_deadline_in(60 * PLAIT_SEC));
        CHECK(r == 0 || r == -ECANCELED);
    }
    for (int i = 0; i < ST_CORO; i++) {
        CHECK_EQ(plait_join(prod[i], NULL, plait_deadline_in(60 * PLAIT_SEC)), 0);
        CHECK_EQ(plait_join(cons[i], NULL, plait_deadline_in(60 * PLAIT_SEC)), 0);
    }
    return NULL;
}

static void run_stress(size_t capacity)
{
    sx = calloc(1, sizeof *sx);
    CHECK(sx);
    CHECK_EQ(plait_chan_create(&sx->ch, sizeof(int), capacity), 0);
    CHECK_EQ(plait_waitgroup_create(&sx->senders), 0);
    CHECK_EQ(plait_waitgroup_add(sx->senders, ST_PRODUCERS + 2 * ST_VICTIMS), 0);
    sched_thread st[2];
    pthread_t prod[ST_THREADS], cons[ST_THREADS];
    for (int s = 0; s < 2; s++)
        sched_thread_start(&st[s], st_sched, ARG(s));
    for (int i = 0; i < ST_THREADS; i++) {
        thread_start(&prod[i], st_producer, ARG(2 * ST_CORO + i));
        thread_start(&cons[i], st_consumer, ARG(100 + i));
    }
    /* once every sender is done, close: the consumers drain and stop */
    CHECK_EQ(plait_waitgroup_wait(sx->senders, plait_deadline_in(60 * PLAIT_SEC)), 0);
    CHECK_EQ(plait_chan_close(sx->ch), 0);
    for (int i = 0; i < ST_THREADS; i++) {
        thread_join(prod[i]);
        thread_join(cons[i]);
    }
    for (int s = 0; s < 2; s++)
        sched_thread_join(&st[s]);

    long want_sum = 0;
    int want_count = 0, missing = 0, ghosts = 0;
    for (int v = 0; v < ST_TOTAL; v++) {
        bool sent = v < ST_N || atomic_load(&sx->victim_sent[v]) == 1;
        if (v >= ST_N)
            CHECK(atomic_load(&sx->victim_sent[v]) != 0); /* every victim reported */
        int seen = atomic_load(&sx->seen[v]);
        if (sent) {
            want_sum += v;
            want_count++;
            missing += seen == 0;
        } else {
            ghosts += seen != 0; /* a send that failed must not deliver */
        }
    }
    CHECK_EQ(missing, 0);
    CHECK_EQ(ghosts, 0);
    CHECK_EQ(atomic_load(&sx->dups), 0);
    CHECK_EQ(atomic_load(&sx->bad), 0);
    CHECK_EQ(atomic_load(&sx->received), want_count);
    CHECK_EQ(atomic_load(&sx->sum), want_sum);
    CHECK_EQ(plait_chan_len(sx->ch), 0);
    CHECK_EQ(plait_chan_destroy(sx->ch), 0);
    CHECK_EQ(plait_waitgroup_destroy(sx->senders), 0);
    if (getenv("PLAIT_TEST_VERBOSE"))
        printf("     cap %zu: %d send / %d recv timeouts, %d victims cancelled\n", capacity,
               atomic_load(&sx->send_timeouts), atomic_load(&sx->recv_timeouts),
               atomic_load(&sx->victims_cancelled));
    free(sx);
    sx = NULL;
}

TEST(stress_buffered) { run_stress(3); }
TEST(stress_unbuffered) { run_stress(0); }

RUN_TESTS(CASE(chan_bad_input), CASE(buffered_fifo_capacity_deadlines),
          CASE(unbuffered_rendezvous), CASE(buffered_waiters), CASE(odd_element_sizes),
          CASE(close_semantics), CASE(destroy_right_after_wakeup),
          CASE(close_wakes_every_kind), CASE(deadlines_coroutine),
          CASE(deadlines_thread), CASE(cancel_blocked_unbuffered),
          CASE(cancel_blocked_buffered), CASE(cancel_races_partner_across_threads),
          CASE(main_returns_with_blocked), CASE(models_pairwise),
          CASE(large_elements_cross_models), CASE(stress_buffered),
          CASE(stress_unbuffered))
