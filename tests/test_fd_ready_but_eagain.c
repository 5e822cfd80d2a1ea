/*
 * test_fd_ready_but_eagain.c — a descriptor that keeps polling ready while its call
 * keeps saying EAGAIN: an eventfd whose counter a write would overflow polls writable
 * (the counter is below its maximum) and its write(2) fails with EAGAIN until a reader
 * takes the count.  plait_write must not spin on it, a CPU busy, until its deadline:
 * after a few such turns it pauses between them.  The deadline and a cancellation
 * still end the call, and promptly.  From a coroutine and from a plain thread, on
 * both pollers (PLAIT_IO_TESTS).
 *
 * The same for a receive on a socket whose error queue nobody reads (IP_RECVERR): it
 * polls POLLERR for good while recv(2) says EAGAIN.  plait_read retried at once, for
 * ever, and plait_recvfrom's pauses looked for POLLIN only (a review measured a CPU
 * busy until the deadline); on io_uring a coroutine's read, which the kernel had made
 * blocking in a worker thread of its own, answered its deadline's cancellation -EINTR.
 *
 * Linked with --wrap=write, read, recv and recvfrom (tests/CMakeLists.txt): the
 * wrappers count the calls on the descriptor under test.
 */
#include "helpers.h"

#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

static atomic_int watched_fd = -1;
static atomic_int writes;

ssize_t __real_write(int fd, const void *buf, size_t len);
ssize_t __wrap_write(int fd, const void *buf, size_t len);
ssize_t __wrap_write(int fd, const void *buf, size_t len)
{
    if (fd == atomic_load(&watched_fd))
        atomic_fetch_add(&writes, 1);
    return __real_write(fd, buf, len);
}

ssize_t __real_read(int fd, void *buf, size_t len);
ssize_t __wrap_read(int fd, void *buf, size_t len);
ssize_t __wrap_read(int fd, void *buf, size_t len)
{
    if (fd == atomic_load(&watched_fd))
        atomic_fetch_add(&writes, 1);
    return __real_read(fd, buf, len);
}

ssize_t __real_recv(int fd, void *buf, size_t len, int flags);
ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags);
ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags)
{
    if (fd == atomic_load(&watched_fd))
        atomic_fetch_add(&writes, 1);
    return __real_recv(fd, buf, len, flags);
}

ssize_t __real_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from,
                        socklen_t *from_len);
ssize_t __wrap_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from,
                        socklen_t *from_len);
ssize_t __wrap_recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from,
                        socklen_t *from_len)
{
    if (fd == atomic_load(&watched_fd))
        atomic_fetch_add(&writes, 1);
    return __real_recvfrom(fd, buf, len, flags, from, from_len);
}

/* A non-blocking eventfd at count 1, watched by the wrapper: a write of the largest
 * value it takes, 0xfffffffffffffffe, would overflow it. */
static int full_eventfd(void)
{
    int fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
    CHECK(fd >= 0);
    atomic_store(&writes, 0);
    atomic_store(&watched_fd, fd);
    return fd;
}

static const uint64_t overflowing = 0xfffffffffffffffeULL;

/* The count is untouched: nothing was written. */
static void check_count_is_one(int fd)
{
    atomic_store(&watched_fd, -1);
    uint64_t count = 0;
    CHECK_EQ(read(fd, &count, sizeof count), (ssize_t)sizeof count);
    CHECK_EQ(count, 1);
    close(fd);
}

/* 300 ms of a write that cannot go: without pauses it makes tens of thousands of
 * tries; with them about fifty (eight quick ones, then pauses doubling from 50 µs to
 * 10 ms). */
static void write_until_deadline(void)
{
    int fd = full_eventfd();
    int64_t start = plait_now();
    ssize_t n = plait_write(fd, &overflowing, sizeof overflowing,
                            plait_deadline_in(300 * PLAIT_MS));
    int tries = atomic_load(&writes);
    fprintf(stderr, "  write -> %zd after %lld ms, %d tries\n", n,
            (long long)((plait_now() - start) / PLAIT_MS), tries);
    CHECK_EQ(n, -ETIMEDOUT);
    CHECK_TOOK(start, 300 * PLAIT_MS);
    CHECK(tries >= 2);
    CHECK(tries < 200);
    check_count_is_one(fd);
}

static void *write_in_coroutine(void *arg)
{
    (void)arg;
    write_until_deadline();
    return NULL;
}

TEST(coroutine_write_pauses_until_its_deadline) { check_run(write_in_coroutine, NULL); }

TEST(thread_write_pauses_until_its_deadline) { write_until_deadline(); }

/* A cancellation reaches a write that is pausing between tries. */
static atomic_long write_result;
static void *write_forever(void *arg)
{
    int fd = INT(arg);
    atomic_store(&write_result, plait_write(fd, &overflowing, sizeof overflowing,
                                            PLAIT_FOREVER));
    return NULL;
}

static void *cancel_while_pausing(void *arg)
{
    (void)arg;
    int fd = full_eventfd();
    atomic_store(&write_result, 0);
    plait_task writer;
    CHECK_EQ(plait_spawn(&writer, write_forever, ARG(fd)), 0);
    /* wait until the writer is past its quick tries, into its pauses */
    int64_t give_up = SOON();
    while (atomic_load(&writes) < 12 && plait_now() < give_up)
        CHECK_EQ(plait_sleep(PLAIT_MS), 0);
    CHECK(atomic_load(&writes) >= 12);
    int64_t start = plait_now();
    CHECK_EQ(plait_cancel(writer), 0);
    CHECK_EQ(plait_join(writer, NULL, SOON()), -ECANCELED);
    CHECK_PROMPT(start);
    CHECK_EQ(atomic_load(&write_result), -ECANCELED);
    check_count_is_one(fd);
    return NULL;
}

TEST(cancel_reaches_a_pausing_write) { check_run(cancel_while_pausing, NULL); }

/* A write that goes after a reader took the count: the pauses do not make it miss the
 * moment by more than the longest pause. */
static void *take_count_later(void *arg)
{
    int fd = INT(arg);
    int64_t give_up = SOON();
    while (atomic_load(&writes) < 20 && plait_now() < give_up)
        CHECK_EQ(plait_sleep(PLAIT_MS), 0);
    uint64_t count = 0;
    CHECK_EQ(read(fd, &count, sizeof count), (ssize_t)sizeof count);
    CHECK_EQ(count, 1);
    return NULL;
}

static void *write_after_room_is_made(void *arg)
{
    (void)arg;
    int fd = full_eventfd();
    plait_task reader;
    CHECK_EQ(plait_spawn(&reader, take_count_later, ARG(fd)), 0);
    CHECK_EQ(plait_write(fd, &overflowing, sizeof overflowing, SOON()),
             (ssize_t)sizeof overflowing);
    CHECK_EQ(plait_join(reader, NULL, SOON()), 0);
    atomic_store(&watched_fd, -1);
    uint64_t count = 0;
    CHECK_EQ(read(fd, &count, sizeof count), (ssize_t)sizeof count);
    CHECK_EQ(count, overflowing);
    close(fd);
    return NULL;
}

TEST(write_goes_once_room_is_made) { check_run(write_after_room_is_made, NULL); }

/* A UDP socket with an error in its error queue (IP_RECVERR: a datagram sent to a
 * port nobody listens on came back as ICMP port unreachable), which no call takes: it
 * polls POLLERR from then on, while a receive finds nothing (EAGAIN).  Watched. */
static int socket_with_an_error_queued(void)
{
    plait_addr a, closed;
    CHECK_EQ(plait_addr_ip(&a, "127.0.0.1", 0), 0);
    int other = plait_udp_bind(&a);
    CHECK(other >= 0);
    CHECK_EQ(plait_local_addr(other, &closed), 0);
    CHECK_EQ(plait_close(other), 0); /* its port now closed */
    int fd = plait_udp_bind(&a);
    CHECK(fd >= 0);
    int on = 1;
    CHECK_EQ(setsockopt(fd, IPPROTO_IP, IP_RECVERR, &on, sizeof on), 0);
    CHECK_EQ(plait_sendto(fd, "x", 1, &closed, SOON()), 1);
    char c;
    /* the error itself, once (the queue keeps its entry) */
    CHECK_EQ(plait_recvfrom(fd, &c, 1, NULL, SOON()), -ECONNREFUSED);
    atomic_store(&writes, 0);
    atomic_store(&watched_fd, fd);
    return fd;
}

/* 300 ms of a read and of a receive-from on it: -ETIMEDOUT, without a spin (tens of
 * thousands of tries, or the kernel's for the coroutine's read on io_uring). */
static void receive_until_deadline(void)
{
    for (int recvfrom_ = 0; recvfrom_ < 2; recvfrom_++) {
        int fd = socket_with_an_error_queued();
        char buf[8];
        int64_t start = plait_now();
        ssize_t n = recvfrom_ ? plait_recvfrom(fd, buf, sizeof buf, NULL,
                                               plait_deadline_in(300 * PLAIT_MS))
                              : plait_read(fd, buf, sizeof buf, plait_deadline_in(300 * PLAIT_MS));
        int tries = atomic_load(&writes);
        atomic_store(&watched_fd, -1);
        fprintf(stderr, "  %s -> %zd after %lld ms, %d tries\n",
                recvfrom_ ? "recvfrom" : "read", n,
                (long long)((plait_now() - start) / PLAIT_MS), tries);
        CHECK_EQ(n, -ETIMEDOUT);
        CHECK_TOOK(start, 300 * PLAIT_MS);
        CHECK(tries < 200);
        CHECK_EQ(plait_close(fd), 0);
    }
}

static void *receive_in_coroutine(void *arg)
{
    (void)arg;
    receive_until_deadline();
    return NULL;
}

TEST(coroutine_receive_beside_an_error_queue_pauses_until_its_deadline)
{
    check_run(receive_in_coroutine, NULL);
}

TEST(thread_receive_beside_an_error_queue_pauses_until_its_deadline)
{
    receive_until_deadline();
}

RUN_TESTS(CASE(coroutine_write_pauses_until_its_deadline),
           CASE(thread_write_pauses_until_its_deadline), CASE(cancel_reaches_a_pausing_write),
           CASE(write_goes_once_room_is_made),
          CASE(coroutine_receive_beside_an_error_queue_pauses_until_its_deadline),
          CASE(thread_receive_beside_an_error_queue_pauses_until_its_deadline))
