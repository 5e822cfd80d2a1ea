/*
 * test_io_pauses.c — a plait_close reaches a call that pauses between its tries (a
 * write whose descriptor polls ready yet says EAGAIN; a send-to backing off from a full
 * Unix datagram receiver): both paused in a plain sleep, and then moved bytes through
 * the file that took the number.  Review 112.
 *
 * Linked with --wrap=write (tests/CMakeLists.txt): the wrapper counts the writes to
 * the eventfd under test and, at a given count, sets an event for another coroutine.
 */
#include "helpers.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/eventfd.h>
#include <unistd.h>

ssize_t __real_write(int fd, const void *buf, size_t len);
ssize_t __wrap_write(int fd, const void *buf, size_t len);
static atomic_int watched_fd = -1;
static atomic_int writes;
static int signal_at;           /* the count of writes at which `reached` is set */
static plait_event *reached;
ssize_t __wrap_write(int fd, const void *buf, size_t len)
{
    if (fd == atomic_load(&watched_fd) &&
        atomic_fetch_add(&writes, 1) + 1 == signal_at && reached)
        CHECK_EQ(plait_event_set(reached), 0);
    return __real_write(fd, buf, len);
}

static const uint64_t overflowing = 0xfffffffffffffffeULL;

/* ---- plait_close of a descriptor whose write is pausing ---- */

static atomic_long write_result;
static void *write_forever(void *arg)
{
    int fd = INT(arg);
    atomic_store(&write_result, plait_write(fd, &overflowing, sizeof overflowing,
                                            SOON()));
    return NULL;
}

/* The writer's ninth write says EAGAIN past its eight quick tries: its next
 * suspension is the pause (the eventfd still polls writable).  Another coroutine
 * then closes the descriptor with plait_close and puts a new file at its number.  The
 * write was waiting on the descriptor when plait_close came: it must fail with -EBADF
 * (plait.h: plait_close wakes every plait wait on it, which returns -EBADF), not write
 * its value into the file that took the number. */
static void *close_while_pausing(void *arg)
{
    int fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
    CHECK(fd >= 0);
    CHECK_EQ(plait_event_create(&reached), 0);
    atomic_store(&writes, 0);
    signal_at = INT(arg);
    atomic_store(&watched_fd, fd);
    atomic_store(&write_result, 0);
    plait_task writer;
    CHECK_EQ(plait_spawn(&writer, write_forever, ARG(fd)), 0);
    CHECK_EQ(plait_event_wait(reached, SOON()), 0);
    /* the writer is in its pause now (this coroutine runs only when it is suspended) */
    atomic_store(&watched_fd, -1);
    int fresh = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    CHECK(fresh >= 0);
    int64_t start = plait_now();
    CHECK_EQ(plait_close(fd), 0);
    CHECK_EQ(dup2(fresh, fd), fd); /* the number names a new file */
    close(fresh);
    CHECK_EQ(plait_join(writer, NULL, SOON()), 0);
    CHECK_PROMPT(start);
    long r = atomic_load(&write_result);
    fprintf(stderr, "  pausing write after plait_close -> %ld\n", r);
    CHECK_EQ(r, -EBADF);
    uint64_t count = 0;
    ssize_t got = read(fd, &count, sizeof count); /* the new file's count: nothing written */
    CHECK_EQ(got, -1);
    CHECK_EQ(errno, EAGAIN);
    close(fd);
    CHECK_EQ(plait_event_destroy(reached), 0);
    reached = NULL;
    return NULL;
}

TEST(plait_close_reaches_a_pausing_write) { check_run(close_while_pausing, ARG(9)); }
/* the same at the fifth write: the writer's next suspension is a quick wait (passes) */
TEST(plait_close_reaches_a_waiting_write) { check_run(close_while_pausing, ARG(5)); }

/* ---- plait_close of a socket whose send-to backs off (pre-existing, same kind) ---- */

/* plait_sendto to a named Unix datagram receiver whose queue is full backs off (1 ms
 * doubling to 50 ms) in a plain sleep, which plait_close does not wake: another
 * coroutine closes the socket with plait_close meanwhile, a new socket takes the
 * number, the receiver's queue empties, and the datagram goes from the new socket,
 * the call saying it was sent.  It must fail with -EBADF, as a wait would. */
static atomic_long send_result;
static plait_addr receiver_addr;
static void *send_one(void *arg)
{
    atomic_store(&send_result,
                 plait_sendto(INT(arg), "late", 4, &receiver_addr, SOON()));
    return NULL;
}

static void *close_while_backing_off(void *arg)
{
    (void)arg;
    char path[64];
    snprintf(path, sizeof path, "/tmp/plait-review-io24-%d", (int)getpid());
    unlink(path);
    CHECK_EQ(plait_addr_unix(&receiver_addr, path), 0);
    int r = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(r >= 0);
    CHECK_EQ(bind(r, &receiver_addr.u.sa, receiver_addr.len), 0);
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(s >= 0);
    int queued = 0; /* fill the receiver's queue */
    while (sendto(s, "fill", 4, 0, &receiver_addr.u.sa, receiver_addr.len) == 4)
        queued++;
    CHECK_EQ(errno, EAGAIN);
    CHECK(queued > 0);
    atomic_store(&send_result, 0);
    plait_task sender;
    CHECK_EQ(plait_spawn(&sender, send_one, ARG(s)), 0);
    /* the sender runs until its send says EAGAIN and it backs off: its only suspension */
    CHECK_EQ(plait_yield(), 0);
    int fresh = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(fresh >= 0);
    CHECK_EQ(plait_close(s), 0);
    CHECK_EQ(dup2(fresh, s), s); /* the number names a new socket */
    close(fresh);
    char buf[16];
    for (int i = 0; i < queued; i++) /* the receiver has room again */
        CHECK_EQ(recv(r, buf, sizeof buf, 0), 4);
    CHECK_EQ(plait_join(sender, NULL, SOON()), 0);
    long sent = atomic_load(&send_result);
    fprintf(stderr, "  backing-off send-to after plait_close -> %ld\n", sent);
    CHECK_EQ(sent, -EBADF);
    CHECK_EQ(recv(r, buf, sizeof buf, 0), -1); /* nothing came from the new socket */
    close(s);
    close(r);
    unlink(path);
    return NULL;
}

TEST(plait_close_reaches_a_backing_off_sendto) { check_run(close_while_backing_off, NULL); }

RUN_TESTS(CASE(plait_close_reaches_a_pausing_write), CASE(plait_close_reaches_a_waiting_write),
          CASE(plait_close_reaches_a_backing_off_sendto))
