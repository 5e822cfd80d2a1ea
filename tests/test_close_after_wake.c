/* test_close_after_wake.c — plait_close of a descriptor whose wait has already ended
 * (woken by the poller, or by its deadline) while the call has not yet run again: the
 * call must not go on to read or write the number, which by then may be another file's.
 * plait.h, plait_close: it wakes "every plait wait on it", which returns -EBADF.  A
 * coroutine's write woken by room wrote its bytes into the new pipe that took the
 * number, a read woken by data (epoll) or ended by its deadline took the new pipe's
 * bytes; the close woke only waits nobody had claimed yet (session 42's I/O audit;
 * every case but the control failed before the fix).  Bytes the kernel had already
 * read for the call (io_uring's ring read) are its to return: none is lost.  Last, a
 * plait_read_exactly closed while it yields its turn between two reads (session 50's
 * I/O audit: it read on into the new file).
 *
 * One scheduler, one thread: coroutine A waits on a pipe, B ends A's wait and then,
 * before A runs again, closes the number and puts a new pipe's end on it (dup3).
 * Built with -Wl,--wrap=plait__poller_fire and -Wl,--wrap=plait__poller_io_done, which
 * say when the poller has woken A (B yields until then, so A is queued behind B). */
#include "helpers.h"

#include "../src/internal.h"

#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void __real_plait__poller_fire(struct plait__poller *p, int fd, int revents);
void __wrap_plait__poller_fire(struct plait__poller *p, int fd, int revents);
void __real_plait__poller_io_done(struct plait__poller *p, int fd, int res);
void __wrap_plait__poller_io_done(struct plait__poller *p, int fd, int res);

static atomic_int woken_fd = -1; /* the last descriptor the poller woke a wait of */

void __wrap_plait__poller_fire(struct plait__poller *p, int fd, int revents)
{
    __real_plait__poller_fire(p, fd, revents);
    atomic_store(&woken_fd, fd);
}

void __wrap_plait__poller_io_done(struct plait__poller *p, int fd, int res)
{
    __real_plait__poller_io_done(p, fd, res);
    atomic_store(&woken_fd, fd);
}

static struct {
    int old_read, old_write;  /* the pipe A waits on */
    int new_read, new_write;  /* the pipe whose end takes A's number */
    bool a_reads;             /* A reads (else it writes) */
    bool exactly;             /* A reads with plait_read_exactly, 16 bytes */
    size_t done;              /* what its read_exactly moved */
    int64_t deadline;         /* A's (B sleeps until it, to end A's wait by it) */
    bool by_deadline;         /* B ends A's wait by its deadline (else by the poller) */
    ssize_t a_result;
    char a_buf[64];
} t;

static void *a_calls(void *unused)
{
    (void)unused;
    if (t.exactly)
        t.a_result = plait_read_exactly(t.old_read, t.a_buf, 16, &t.done, t.deadline);
    else if (t.a_reads)
        t.a_result = plait_read(t.old_read, t.a_buf, sizeof t.a_buf, t.deadline);
    else
        t.a_result = plait_write(t.old_write, "SECRET!!", 8, t.deadline);
    return NULL;
}

/* Close A's number and put the new pipe's matching end on it. */
static void replace_a_s_number(void)
{
    int q[2];
    CHECK_EQ(pipe2(q, O_NONBLOCK | O_CLOEXEC), 0); /* first: its numbers are others */
    int target = t.a_reads ? t.old_read : t.old_write;
    int mine = t.a_reads ? q[0] : q[1];
    CHECK_EQ(plait_close(target), 0); /* A's call is still inside plait */
    CHECK_EQ(dup3(mine, target, O_CLOEXEC), target);
    CHECK_EQ(close(mine), 0);
    t.new_read = t.a_reads ? target : q[0];
    t.new_write = t.a_reads ? q[1] : target;
    if (t.a_reads)
        CHECK_EQ(write(t.new_write, "NEWFILE!", 8), 8);
}

static void *b_ends_a_s_wait_then_closes(void *unused)
{
    (void)unused;
    if (t.by_deadline) {
        CHECK_EQ(plait_sleep_until(t.deadline), 0); /* began first: runs first then */
    } else {
        atomic_store(&woken_fd, -1);
        if (t.a_reads) {
            CHECK_EQ(write(t.old_write, "OLDDATA!", 8), 8);
        } else {
            static char room[1 << 17];
            CHECK(read(t.old_read, room, sizeof room) > 0);
        }
        int a_fd = t.a_reads ? t.old_read : t.old_write;
        for (int i = 0; i < 100000 && atomic_load(&woken_fd) != a_fd; i++)
            CHECK_EQ(plait_yield(), 0); /* the loop looks at the poller every few turns */
        CHECK_EQ(atomic_load(&woken_fd), a_fd);
    }
    replace_a_s_number();
    return NULL;
}

static void *scenario(void *unused)
{
    (void)unused;
    int p[2];
    CHECK_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    t.old_read = p[0], t.old_write = p[1];
    if (t.a_reads) { /* a short read first: the next read waits before it tries */
        char b[8];
        CHECK_EQ(write(t.old_write, "P", 1), 1);
        CHECK_EQ(plait_read(t.old_read, b, sizeof b, SOON()), 1);
    } else { /* full: the write waits */
        static char fill[1 << 16];
        while (write(t.old_write, fill, sizeof fill) > 0) {
        }
    }
    /* (A must link its wait before the deadline: a margin for a loaded machine) */
    t.deadline = t.by_deadline ? plait_deadline_in(PLAIT_SEC) : SOON();
    plait_task a, b;
    if (t.by_deadline) { /* B's sleep begins before A's wait */
        CHECK_EQ(plait_spawn(&b, b_ends_a_s_wait_then_closes, NULL), 0);
        CHECK_EQ(plait_yield(), 0);
        CHECK_EQ(plait_spawn(&a, a_calls, NULL), 0);
    } else {
        CHECK_EQ(plait_spawn(&a, a_calls, NULL), 0);
        CHECK_EQ(plait_yield(), 0); /* A tries, and waits */
        CHECK_EQ(plait_spawn(&b, b_ends_a_s_wait_then_closes, NULL), 0);
    }
    CHECK_EQ(plait_join(b, NULL, SOON()), 0);
    CHECK_EQ(plait_join(a, NULL, SOON()), 0);
    return NULL;
}

/* The new pipe holds what it should: NEWFILE! for a read end A must not have taken
 * from, nothing of A's for a write end. */
static void check_the_new_pipe(void)
{
    char got[64];
    ssize_t n = read(t.new_read, got, sizeof got);
    if (t.a_reads) {
        CHECK_EQ(n, 8);
        CHECK(n == 8 && memcmp(got, "NEWFILE!", 8) == 0);
    } else {
        CHECK(n < 0 && errno == EAGAIN); /* A's SECRET!! did not go there */
    }
    close(t.new_read);
    close(t.new_write);
    if (t.a_reads)
        close(t.old_write);
    else
        close(t.old_read);
}

static void run_as(bool a_reads, bool by_deadline, bool exactly)
{
    memset(&t, 0, sizeof t);
    t.a_reads = a_reads;
    t.by_deadline = by_deadline;
    t.exactly = exactly;
    CHECK_EQ(plait_run(scenario, NULL, NULL), 0);
}

static void run(bool a_reads, bool by_deadline) { run_as(a_reads, by_deadline, false); }

TEST(write_woken_by_room_then_closed)
{
    run(false, false);
    CHECK_EQ(t.a_result, -EBADF);
    check_the_new_pipe();
}

TEST(read_woken_by_data_then_closed)
{
    run(true, false);
    /* -EBADF, or the old pipe's bytes when the kernel read them for A (io_uring) */
    CHECK(t.a_result == -EBADF ||
          (t.a_result == 8 && memcmp(t.a_buf, "OLDDATA!", 8) == 0));
    check_the_new_pipe();
}

/* The same for plait_read_exactly: the bytes the kernel read for it are counted, and it
 * reads no further.  (Failed first on io_uring: it got 0 and 16 bytes, OLDDATA!NEWFILE!,
 * the second half from the new pipe: its ring read returned the bytes and dropped the
 * close, and the next read went to the number; session 53's I/O audit.) */
TEST(read_exactly_woken_by_data_then_closed)
{
    run_as(true, false, true);
    fprintf(stderr, "  read_exactly -> %zd, %zu bytes\n", t.a_result, t.done);
    CHECK_EQ(t.a_result, -EBADF);
    CHECK(t.done == 0 || (t.done == 8 && memcmp(t.a_buf, "OLDDATA!", 8) == 0));
    check_the_new_pipe();
}

TEST(read_ended_by_its_deadline_then_closed)
{
    run(true, true);
    CHECK_EQ(t.a_result, -EBADF);
    check_the_new_pipe();
}

/* plait_wait_fd woken by the poller, then its number closed: -EBADF, not "readable". */
static int wait_r;
static int wait_read_end, wait_write_end;

static void *waits(void *unused)
{
    (void)unused;
    wait_r = plait_wait_fd(wait_read_end, PLAIT_READABLE, SOON());
    return NULL;
}

static void *wakes_then_closes(void *unused)
{
    (void)unused;
    atomic_store(&woken_fd, -1);
    CHECK_EQ(write(wait_write_end, "x", 1), 1);
    for (int i = 0; i < 100000 && atomic_load(&woken_fd) != wait_read_end; i++)
        CHECK_EQ(plait_yield(), 0);
    CHECK_EQ(atomic_load(&woken_fd), wait_read_end);
    CHECK_EQ(plait_close(wait_read_end), 0);
    return NULL;
}

static void *wait_scenario(void *unused)
{
    (void)unused;
    int p[2];
    CHECK_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    wait_read_end = p[0], wait_write_end = p[1];
    plait_task a, b;
    CHECK_EQ(plait_spawn(&a, waits, NULL), 0);
    CHECK_EQ(plait_yield(), 0); /* A waits */
    CHECK_EQ(plait_spawn(&b, wakes_then_closes, NULL), 0);
    CHECK_EQ(plait_join(b, NULL, SOON()), 0);
    CHECK_EQ(plait_join(a, NULL, SOON()), 0);
    close(wait_write_end);
    return NULL;
}

TEST(wait_fd_woken_then_closed)
{
    CHECK_EQ(plait_run(wait_scenario, NULL, NULL), 0);
    CHECK_EQ(wait_r, -EBADF);
}

/* The control: a close after the call returned leaves its outcome. */
TEST(write_that_returned_before_the_close_keeps_its_count)
{
    int p[2];
    CHECK_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    CHECK_EQ(plait_write(p[1], "abc", 3, SOON()), 3);
    CHECK_EQ(plait_close(p[1]), 0);
    char got[4];
    CHECK_EQ(read(p[0], got, sizeof got), 3);
    close(p[0]);
}

/* plait_read_exactly gives its scheduler a turn between two reads (every PLAIT__IO_TURN
 * reads in a row that did not wait, sched.c), and B, run in that turn, closes the
 * number and puts another file there: the call must end with -EBADF, the bytes it read
 * counted in *done, none of the new file's taken (before the fix it went on reading the
 * new file: the turn was a plain yield, which plait_close did not find).  Datagrams of
 * ten bytes, so each read takes one; the descriptor is new to the scheduler, so no read
 * waits first (the read hint) and none switches. */
enum { DATAGRAM = 10, OLD_DATAGRAMS = PLAIT__IO_TURN + 6, NEW_DATAGRAMS = 100 };
static struct {
    int old_read, old_write, new_write;
    int r;
    size_t done;
    char buf[(OLD_DATAGRAMS + NEW_DATAGRAMS) * DATAGRAM];
} turn;

static void *reads_exactly(void *unused)
{
    (void)unused;
    turn.r = plait_read_exactly(turn.old_read, turn.buf, sizeof turn.buf, &turn.done,
                                SOON());
    return NULL;
}

static void *closes_in_its_turn(void *unused)
{
    (void)unused;
    int q[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, q), 0);
    CHECK_EQ(plait_close(turn.old_read), 0);
    CHECK_EQ(dup3(q[0], turn.old_read, O_CLOEXEC), turn.old_read);
    CHECK_EQ(close(q[0]), 0);
    turn.new_write = q[1];
    for (int i = 0; i < NEW_DATAGRAMS; i++)
        CHECK_EQ(write(turn.new_write, "NEWFILE!!!", DATAGRAM), DATAGRAM);
    return NULL;
}

static void *turn_scenario(void *unused)
{
    (void)unused;
    int p[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p), 0);
    turn.old_read = p[0], turn.old_write = p[1];
    for (int i = 0; i < OLD_DATAGRAMS; i++)
        CHECK_EQ(write(turn.old_write, "olddata...", DATAGRAM), DATAGRAM);
    plait_task a, b;
    CHECK_EQ(plait_spawn(&a, reads_exactly, NULL), 0);
    CHECK_EQ(plait_spawn(&b, closes_in_its_turn, NULL), 0); /* runs in A's turn */
    CHECK_EQ(plait_join(a, NULL, SOON()), 0);
    CHECK_EQ(plait_join(b, NULL, SOON()), 0);
    return NULL;
}

TEST(read_exactly_closed_in_its_turn)
{
    memset(&turn, 0, sizeof turn);
    CHECK_EQ(plait_run(turn_scenario, NULL, NULL), 0);
    fprintf(stderr, "  read_exactly -> %d, %zu bytes\n", turn.r, turn.done);
    CHECK_EQ(turn.r, -EBADF);
    /* the close came in the middle: the old file still had datagrams */
    CHECK(turn.done > 0 && turn.done < OLD_DATAGRAMS * DATAGRAM);
    CHECK_EQ(turn.done % DATAGRAM, 0);
    for (size_t i = 0; i < turn.done; i += DATAGRAM)
        CHECK(memcmp(turn.buf + i, "olddata...", DATAGRAM) == 0);
    /* the new file kept every datagram */
    char got[DATAGRAM];
    for (int i = 0; i < NEW_DATAGRAMS; i++)
        CHECK_EQ(read(turn.old_read, got, sizeof got), DATAGRAM);
    CHECK(read(turn.old_read, got, sizeof got) < 0 && errno == EAGAIN);
    close(turn.old_read);
    close(turn.old_write);
    close(turn.new_write);
}

RUN_TESTS(CASE(write_woken_by_room_then_closed), CASE(read_woken_by_data_then_closed),
          CASE(read_exactly_woken_by_data_then_closed),
          CASE(read_ended_by_its_deadline_then_closed), CASE(wait_fd_woken_then_closed),
          CASE(write_that_returned_before_the_close_keeps_its_count),
          CASE(read_exactly_closed_in_its_turn))
