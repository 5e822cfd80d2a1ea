/*
 * test_fd_ready_but_eagain.c — a descriptor that keeps polling ready while its call
 * keeps saying EAGAIN: an eventfd whose counter a write would overflow polls writable
 * (the counter is below its maximum) and its write(2) fails with EAGAIN until a reader
 * takes the count.  plait_write must not spin on it, a CPU busy, until its deadline:
 * after a few such turns it pauses between them.  The deadline and a cancellation
 * still end the call, and promptly.  From a coroutine and from a plain thread, on
 * both pollers (PLAIT_IO_TESTS).
 *
 * Linked with --wrap=write (tests/CMakeLists.txt): the wrapper counts the writes to
 * the eventfd under test.
 */
#include "helpers.h"

#include <stdatomic.h>
#include <sys/eventfd.h>
#include <unistd.h>

ssize_t __real_write(int fd, const void *buf, size_t len);
ssize_t __wrap_write(int fd, const void *buf, size_t len);
static atomic_int watched_fd = -1;
static atomic_int writes;
ssize_t __wrap_write(int fd, const void *buf, size_t len)
{
    if (fd == atomic_load(&watched_fd))
        atomic_fetch_add(&writes, 1);
    return __real_write(fd, buf, len);
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

RUN_TESTS(CASE(coroutine_write_pauses_until_its_deadline),
           CASE(thread_write_pauses_until_its_deadline), CASE(cancel_reaches_a_pausing_write),
           CASE(write_goes_once_room_is_made))
