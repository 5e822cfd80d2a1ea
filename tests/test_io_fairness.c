/*
 * test_io_fairness.c — a coroutine whose reads and writes never have to wait (its
 * peer keeps data ready and room free) still lets the other coroutines of its
 * scheduler run: every PLAIT__IO_TURN calls in a row without a switch, the call yields
 * before it returns.  Without that, one greedy client kept an HTTP or echo server's
 * coroutine running for seconds, the acceptor and every other connection stalled.
 * Nothing moved is lost by the yield, and a cancellation during it leaves the call's
 * bytes reported (the next call says -ECANCELED).  On both pollers (PLAIT_IO_TESTS).
 */
#include "helpers.h"

#include "../src/internal.h"

#include <stdatomic.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

enum { CALLS = 4096 };

static atomic_int calls_made;  /* by the greedy coroutine so far */
static atomic_int seen_after;  /* calls_made when the other coroutine first ran */

static void *note_when_run(void *arg)
{
    (void)arg;
    atomic_store(&seen_after, atomic_load(&calls_made));
    return NULL;
}

/* One byte per call, CALLS calls, the other coroutine spawned first: it must run
 * within a turn of calls. */
static void *greedy(void *arg)
{
    bool writing = INT(arg);
    int p[2]; /* a pipe: room for CALLS one-byte writes, which a socket's skbs lack */
    CHECK_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    int sv[2] = {writing ? p[1] : p[0], writing ? p[0] : p[1]}; /* ours, the peer's */
    static char data[CALLS];
    for (int i = 0; i < CALLS; i++)
        data[i] = (char)i;
    if (!writing)
        CHECK_EQ(write(sv[1], data, sizeof data), (ssize_t)sizeof data);
    atomic_store(&calls_made, 0);
    atomic_store(&seen_after, -1);
    plait_task other;
    CHECK_EQ(plait_spawn(&other, note_when_run, NULL), 0);
    static char got[CALLS];
    for (int i = 0; i < CALLS; i++) {
        ssize_t n = writing ? plait_write(sv[0], &data[i], 1, SOON())
                            : plait_read(sv[0], &got[i], 1, SOON());
        CHECK_EQ(n, 1);
        atomic_fetch_add(&calls_made, 1);
    }
    CHECK_EQ(plait_join(other, NULL, SOON()), 0);
    int seen = atomic_load(&seen_after);
    fprintf(stderr, "  the other coroutine ran after %d of %d calls\n", seen, CALLS);
    CHECK(seen >= 0 && seen <= PLAIT__IO_TURN);
    if (writing)
        CHECK_EQ(read(sv[1], got, sizeof got), (ssize_t)sizeof got);
    CHECK(memcmp(got, data, sizeof data) == 0); /* every byte, in order */
    plait_close(sv[0]);
    plait_close(sv[1]);
    return NULL;
}

TEST(greedy_reader_lets_others_run) { check_run(greedy, ARG(0)); }
TEST(greedy_writer_lets_others_run) { check_run(greedy, ARG(1)); }

/* A cancellation that comes while a read yields: the byte it read is reported, the
 * next read is -ECANCELED, and the bytes read plus those left are all there were. */
static int cancel_reads;
static void *read_until_cancelled(void *arg)
{
    int fd = INT(arg);
    char c;
    ssize_t n;
    while ((n = plait_read(fd, &c, 1, SOON())) == 1)
        cancel_reads++;
    CHECK_EQ(n, -ECANCELED);
    return NULL;
}

static void *cancel_during_yield(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    static char data[CALLS];
    CHECK_EQ(write(sv[1], data, sizeof data), (ssize_t)sizeof data);
    cancel_reads = 0;
    plait_task reader;
    CHECK_EQ(plait_spawn(&reader, read_until_cancelled, ARG(sv[0])), 0);
    CHECK_EQ(plait_yield(), 0); /* the reader runs until its turn is up */
    CHECK(cancel_reads > 0 && cancel_reads < CALLS);
    CHECK_EQ(plait_cancel(reader), 0); /* it is in its yield */
    CHECK_EQ(plait_join(reader, NULL, SOON()), -ECANCELED);
    static char left[CALLS];
    ssize_t rest = read(sv[0], left, sizeof left);
    CHECK_EQ(cancel_reads + (rest > 0 ? rest : 0), CALLS);
    plait_close(sv[0]);
    plait_close(sv[1]);
    return NULL;
}

TEST(cancel_during_a_reads_yield_keeps_its_byte) { check_run(cancel_during_yield, NULL); }

RUN_TESTS(CASE(greedy_reader_lets_others_run), CASE(greedy_writer_lets_others_run),
          CASE(cancel_during_a_reads_yield_keeps_its_byte))
