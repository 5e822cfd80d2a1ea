/*
 * test_fdio.c — waiting on descriptors and reading/writing them with deadlines: from
 * coroutines (the scheduler's poller; other coroutines run meanwhile), from threads
 * (poll, cancellable for plait threads), and the edges: end of file, a reader that has
 * gone (EPIPE, not SIGPIPE), a full pipe, past deadlines, bad descriptors, two
 * coroutines waiting for the same thing, regular files, cancellation mid-read.
 */
#include "helpers.h"

#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>

static void make_pipe(int fds[2])
{
    CHECK_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
}

TEST(bad_input)
{
    CHECK_EQ(plait_wait_fd(-1, PLAIT_READABLE, SOON()), -EBADF);
    CHECK_EQ(plait_wait_fd(0, 0, SOON()), -EINVAL);
    CHECK_EQ(plait_wait_fd(0, PLAIT_HANGUP, SOON()), -EINVAL);
    CHECK_EQ(plait_wait_fd(0, 0x100 | PLAIT_READABLE, SOON()), -EINVAL);
    char c;
    CHECK_EQ(plait_read(-1, &c, 1, SOON()), -EBADF);
    CHECK_EQ(plait_write(-1, &c, 1, SOON()), -EBADF);
    CHECK_EQ(plait_read(0, NULL, 1, SOON()), -EINVAL);
    CHECK_EQ(plait_write_all(1, NULL, 1, NULL, SOON()), -EINVAL);
    size_t done = 99;
    CHECK_EQ(plait_read_exactly(-1, &c, 1, &done, SOON()), -EBADF);
    CHECK_EQ(done, 0);
    CHECK_EQ(plait_fd_set_nonblock(-1, 1), -EBADF);
    /* a descriptor number that is not open (a high one: a low one that was just
     * closed would be the next one plait itself opens) */
    int closed = 1000;
    while (fcntl(closed, F_GETFD) >= 0)
        closed++;
    CHECK_EQ(plait_wait_fd(closed, PLAIT_READABLE, plait_deadline_in(PLAIT_SEC)), -EBADF);
}

static void *wait_closed(void *arg)
{
    (void)arg;
    int closed = 1000;
    while (fcntl(closed, F_GETFD) >= 0)
        closed++;
    CHECK_EQ(plait_wait_fd(closed, PLAIT_READABLE, plait_deadline_in(PLAIT_SEC)), -EBADF);
    return NULL;
}

TEST(bad_descriptor_in_a_coroutine) { check_run(wait_closed, NULL); }

TEST(past_deadline_tries_once)
{
    int fds[2];
    make_pipe(fds);
    CHECK_EQ(plait_wait_fd(fds[0], PLAIT_READABLE, 0), -ETIMEDOUT);
    CHECK_EQ(plait_wait_fd(fds[1], PLAIT_WRITABLE, 0), PLAIT_WRITABLE);
    char c = 'x';
    CHECK_EQ(plait_read(fds[0], &c, 1, 0), -ETIMEDOUT);
    CHECK_EQ(plait_write(fds[1], &c, 1, 0), 1);
    CHECK(plait_wait_fd(fds[0], PLAIT_READABLE, 0) & PLAIT_READABLE);
    CHECK_EQ(plait_read(fds[0], &c, 1, 0), 1);
    close(fds[0]);
    close(fds[1]);
}

TEST(thread_waits_with_deadline)
{
    int fds[2];
    make_pipe(fds);
    int64_t start = plait_now();
    char c;
    CHECK_EQ(plait_read(fds[0], &c, 1, plait_deadline_in(50 * PLAIT_MS)), -ETIMEDOUT);
    CHECK_TOOK(start, 50 * PLAIT_MS);
    close(fds[0]);
    close(fds[1]);
}

TEST(end_of_file_and_broken_pipe)
{
    int fds[2];
    make_pipe(fds);
    CHECK_EQ(plait_write_all(fds[1], "abc", 3, NULL, SOON()), 0);
    close(fds[1]);
    char buf[8];
    size_t got = 0;
    CHECK_EQ(plait_read_exactly(fds[0], buf, 8, &got, SOON()), -ENODATA);
    CHECK_EQ(got, 3); /* what arrived is reported, not lost */
    CHECK_EQ(plait_read(fds[0], buf, 8, SOON()), 0);
    CHECK(plait_wait_fd(fds[0], PLAIT_READABLE, SOON()) & (PLAIT_READABLE | PLAIT_HANGUP));
    close(fds[0]);

    make_pipe(fds);
    close(fds[0]);
    /* plait ignores SIGPIPE once it has made a pipe; this program has not made one yet
     * in this test, so make sure the write does not kill it */
    signal(SIGPIPE, SIG_IGN);
    size_t put = 7;
    CHECK_EQ(plait_write_all(fds[1], "abc", 3, &put, SOON()), -EPIPE);
    CHECK_EQ(put, 0);
    CHECK(plait_wait_fd(fds[1], PLAIT_WRITABLE, SOON()) & PLAIT_ERROR);
    close(fds[1]);
}

TEST(regular_file_is_always_ready)
{
    char path[] = "/tmp/plait-fdio-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    CHECK_EQ(plait_write_all(fd, "hello", 5, NULL, SOON()), 0);
    CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
    char buf[5];
    CHECK_EQ(plait_read_exactly(fd, buf, 5, NULL, SOON()), 0);
    CHECK_EQ(memcmp(buf, "hello", 5), 0);
    CHECK_EQ(plait_wait_fd(fd, PLAIT_READABLE | PLAIT_WRITABLE, SOON()) &
                 (PLAIT_READABLE | PLAIT_WRITABLE),
             PLAIT_READABLE | PLAIT_WRITABLE);
    close(fd);
}

TEST(set_nonblock)
{
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    CHECK_EQ(fcntl(fds[0], F_GETFL) & O_NONBLOCK, 0);
    CHECK_EQ(plait_fd_set_nonblock(fds[0], 1), 0);
    CHECK(fcntl(fds[0], F_GETFL) & O_NONBLOCK);
    CHECK_EQ(plait_fd_set_nonblock(fds[0], 0), 0);
    CHECK_EQ(fcntl(fds[0], F_GETFL) & O_NONBLOCK, 0);
    close(fds[0]);
    close(fds[1]);
}

/* ---- coroutines ---- */

typedef struct pipe_pair {
    int fds[2];
    atomic_int progress;
    size_t bytes;
} pipe_pair;

static void *reader(void *arg)
{
    pipe_pair *pp = arg;
    size_t total = 0;
    char buf[4096];
    for (;;) {
        ssize_t n = plait_read(pp->fds[0], buf, sizeof buf, SOON());
        if (n <= 0) {
            CHECK_EQ(n, 0);
            break;
        }
        for (ssize_t i = 0; i < n; i++)
            CHECK_EQ((unsigned char)buf[i], (unsigned char)((total + (size_t)i) * 31));
        total += (size_t)n;
    }
    pp->bytes = total;
    return NULL;
}

static void *writer(void *arg)
{
    pipe_pair *pp = arg;
    enum { TOTAL = 1 << 20 };
    char *data = malloc(TOTAL);
    for (size_t i = 0; i < TOTAL; i++)
        data[i] = (char)(i * 31);
    size_t put = 0;
    CHECK_EQ(plait_write_all(pp->fds[1], data, TOTAL, &put, SOON()), 0);
    CHECK_EQ(put, TOTAL);
    close(pp->fds[1]);
    free(data);
    return NULL;
}

static void *counter(void *arg)
{
    pipe_pair *pp = arg;
    while (atomic_load(&pp->progress) >= 0) {
        atomic_fetch_add(&pp->progress, 1);
        if (plait_yield() < 0)
            break;
    }
    return NULL;
}

/* A megabyte through a 64 KiB pipe between two coroutines of one scheduler: each waits
 * for the other in turn (full, empty), and a third keeps running. */
static void *pipe_between_coroutines(void *arg)
{
    (void)arg;
    pipe_pair pp = {.progress = 0};
    make_pipe(pp.fds);
    plait_task r, w, c;
    CHECK_EQ(plait_spawn(&c, counter, &pp), 0);
    CHECK_EQ(plait_spawn(&r, reader, &pp), 0);
    CHECK_EQ(plait_spawn(&w, writer, &pp), 0);
    CHECK_EQ(plait_join(w, NULL, SOON()), 0);
    CHECK_EQ(plait_join(r, NULL, SOON()), 0);
    CHECK_EQ(pp.bytes, 1 << 20);
    CHECK(atomic_load(&pp.progress) > 10);
    atomic_store(&pp.progress, -1000000);
    CHECK_EQ(plait_join(c, NULL, SOON()), 0);
    close(pp.fds[0]);
    return NULL;
}

TEST(coroutines_share_a_pipe) { check_run(pipe_between_coroutines, NULL); }

/* A thread writes what a coroutine waits for: the parked scheduler is woken by the
 * descriptor, and by its inbox while it sleeps in epoll. */
static void *late_writer(void *arg)
{
    int fd = *(int *)arg;
    plait_sleep(20 * PLAIT_MS);
    CHECK_EQ(write(fd, "z", 1), 1);
    return NULL;
}

static void *wait_for_thread(void *arg)
{
    (void)arg;
    int fds[2];
    make_pipe(fds);
    pthread_t th;
    thread_start(&th, late_writer, &fds[1]);
    char c = 0;
    CHECK_EQ(plait_read(fds[0], &c, 1, SOON()), 1);
    CHECK_EQ(c, 'z');
    thread_join(th);
    /* while this coroutine waits on a descriptor, the scheduler sleeps in epoll: a
     * wake-up through the inbox (a thread completing a future) must still reach it */
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, late_writer, &fds[1], NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(plait_read(fds[0], &c, 1, SOON()), 1);
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

TEST(coroutine_woken_by_a_thread) { check_run(wait_for_thread, NULL); }

static void *wait_read(void *arg)
{
    int fd = *(int *)arg;
    char c;
    return PLAIT_FAIL((int)plait_read(fd, &c, 1, SOON()));
}

static void *same_descriptor_twice(void *arg)
{
    (void)arg;
    int fds[2];
    make_pipe(fds);
    plait_task first;
    CHECK_EQ(plait_spawn(&first, wait_read, &fds[0]), 0);
    settle();
    /* a second reader on this scheduler: refused, the first is not disturbed */
    CHECK_EQ(plait_wait_fd(fds[0], PLAIT_READABLE, SOON()), -EBUSY);
    /* a writer wait on the same pipe end is another direction: fine (and ready) */
    CHECK_EQ(plait_wait_fd(fds[1], PLAIT_WRITABLE, SOON()), PLAIT_WRITABLE);
    /* the first reader's deadline, cancellation */
    CHECK_EQ(plait_cancel(first), 0);
    CHECK_EQ(plait_join(first, NULL, SOON()), -ECANCELED);
    /* after it is gone the descriptor can be waited on again */
    CHECK_EQ(plait_wait_fd(fds[0], PLAIT_READABLE, plait_deadline_in(10 * PLAIT_MS)), -ETIMEDOUT);
    CHECK_EQ(write(fds[1], "q", 1), 1);
    CHECK(plait_wait_fd(fds[0], PLAIT_READABLE, SOON()) & PLAIT_READABLE);
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

TEST(one_reader_per_descriptor) { check_run(same_descriptor_twice, NULL); }

static void *both_directions(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    /* fill the socket so a writer must wait, and start a reader on the same descriptor */
    char block[4096] = {0};
    size_t filled = 0;
    while (write(sv[0], block, sizeof block) > 0)
        filled += sizeof block;
    plait_task r;
    CHECK_EQ(plait_spawn(&r, wait_read, &sv[0]), 0);
    settle();
    int64_t start = plait_now();
    CHECK_EQ(plait_wait_fd(sv[0], PLAIT_WRITABLE, plait_deadline_in(20 * PLAIT_MS)), -ETIMEDOUT);
    CHECK_TOOK(start, 20 * PLAIT_MS);
    /* the peer reads: sv[0] becomes writable; then it writes: sv[0] readable */
    char *sink = malloc(filled);
    CHECK_EQ(plait_read_exactly(sv[1], sink, filled, NULL, SOON()), 0);
    free(sink);
    CHECK(plait_wait_fd(sv[0], PLAIT_WRITABLE, SOON()) & PLAIT_WRITABLE);
    CHECK_EQ(write(sv[1], "r", 1), 1);
    CHECK_EQ(plait_join(r, NULL, SOON()), 0); /* PLAIT_FAIL(1): one byte read */
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

TEST(reader_and_writer_on_one_socket) { check_run(both_directions, NULL); }

/* Descriptors are served while other coroutines keep the scheduler busy. */
static void *busy(void *arg)
{
    atomic_int *stop = arg;
    while (!atomic_load(stop))
        if (plait_yield() < 0)
            break;
    return NULL;
}

static void *served_under_load(void *arg)
{
    (void)arg;
    atomic_int stop = 0;
    plait_task b[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(plait_spawn(&b[i], busy, &stop), 0);
    int fds[2];
    make_pipe(fds);
    pthread_t th;
    thread_start(&th, late_writer, &fds[1]);
    char c;
    int64_t start = plait_now();
    CHECK_EQ(plait_read(fds[0], &c, 1, SOON()), 1);
    CHECK(plait_now() - start < 2 * PLAIT_SEC);
    atomic_store(&stop, 1);
    CHECK_EQ(plait_wait_all(b, 3, NULL, NULL, SOON()), 0);
    thread_join(th);
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

TEST(descriptors_served_under_load) { check_run(served_under_load, NULL); }

/* Many coroutines, each on its own pipe, woken in a random order. */
enum { MANY = 200 };

static void *many_pipes(void *arg)
{
    (void)arg;
    static int fds[MANY][2];
    plait_task t[MANY];
    for (int i = 0; i < MANY; i++) {
        make_pipe(fds[i]);
        CHECK_EQ(plait_spawn(&t[i], wait_read, &fds[i][0]), 0);
    }
    settle();
    uint64_t seed = 12345;
    int order[MANY];
    for (int i = 0; i < MANY; i++)
        order[i] = i;
    for (int i = MANY - 1; i > 0; i--) {
        int j = (int)(rnd(&seed) % (unsigned)(i + 1)), tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    for (int i = 0; i < MANY; i++)
        CHECK_EQ(write(fds[order[i]][1], "m", 1), 1);
    for (int i = 0; i < MANY; i++) {
        CHECK_EQ(plait_join(t[i], NULL, SOON()), 0);
        close(fds[i][0]);
        close(fds[i][1]);
    }
    return NULL;
}

TEST(many_waiting_coroutines) { check_run(many_pipes, NULL); }

/* A descriptor closed and its number reused between two waits on one scheduler. */
static void *reuse_number(void *arg)
{
    (void)arg;
    int a[2];
    make_pipe(a);
    CHECK_EQ(plait_wait_fd(a[0], PLAIT_READABLE, plait_deadline_in(5 * PLAIT_MS)), -ETIMEDOUT);
    int number = a[0];
    close(a[0]);
    close(a[1]);
    int b[2];
    make_pipe(b);
    if (b[0] != number) { /* make the new read end take the old number */
        CHECK_EQ(dup3(b[0], number, O_CLOEXEC), number);
        close(b[0]);
        b[0] = number;
    }
    CHECK_EQ(write(b[1], "n", 1), 1);
    CHECK(plait_wait_fd(b[0], PLAIT_READABLE, SOON()) & PLAIT_READABLE);
    close(b[0]);
    close(b[1]);
    return NULL;
}

TEST(descriptor_number_reused) { check_run(reuse_number, NULL); }

/* ---- threads: cancellation of a blocked read ---- */

static void *thread_reads(void *arg)
{
    int fd = *(int *)arg;
    char c;
    return PLAIT_FAIL((int)plait_read(fd, &c, 1, PLAIT_FOREVER));
}

TEST(cancel_a_thread_blocked_on_a_read)
{
    int fds[2];
    make_pipe(fds);
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, thread_reads, &fds[0], NULL), 0);
    CHECK_EQ(plait_join(t, NULL, plait_deadline_in(20 * PLAIT_MS)), -ETIMEDOUT);
    CHECK_EQ(plait_cancel(t), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
    /* the same thread's wait again, after a cancellation: a fresh thread, fresh state */
    CHECK_EQ(plait_thread_start(&t, thread_reads, &fds[0], NULL), 0);
    CHECK_EQ(write(fds[1], "k", 1), 1);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0); /* PLAIT_FAIL(1) is not a failure code */
    close(fds[0]);
    close(fds[1]);
}

/* One coroutine waiting for readable or writable: either wakes it (a write-only event
 * once found no one to wake, re-armed, and spun the scheduler). */
static void *either_direction(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    int64_t start = plait_now();
    int r = plait_wait_fd(sv[0], PLAIT_READABLE | PLAIT_WRITABLE, SOON());
    CHECK(r > 0 && (r & PLAIT_WRITABLE));
    CHECK_PROMPT(start);
    CHECK_EQ(write(sv[1], "x", 1), 1);
    r = plait_wait_fd(sv[0], PLAIT_READABLE | PLAIT_WRITABLE, SOON());
    CHECK(r > 0 && (r & PLAIT_READABLE));
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

TEST(wait_for_either_direction) { check_run(either_direction, NULL); }

RUN_TESTS(CASE(bad_input), CASE(bad_descriptor_in_a_coroutine), CASE(past_deadline_tries_once), CASE(thread_waits_with_deadline),
          CASE(end_of_file_and_broken_pipe), CASE(regular_file_is_always_ready),
          CASE(set_nonblock), CASE(coroutines_share_a_pipe), CASE(coroutine_woken_by_a_thread),
          CASE(one_reader_per_descriptor), CASE(reader_and_writer_on_one_socket),
          CASE(descriptors_served_under_load), CASE(many_waiting_coroutines),
          CASE(descriptor_number_reused), CASE(cancel_a_thread_blocked_on_a_read),
          CASE(wait_for_either_direction))
