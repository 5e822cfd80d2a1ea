/*
 * test_fdio.c — waiting on descriptors and reading/writing them with deadlines: from
 * coroutines (the scheduler's poller; other coroutines run meanwhile), from threads
 * (poll, cancellable for plait threads), and the edges: end of file, a reader that has
 * gone (EPIPE, not SIGPIPE), a full pipe, past deadlines, bad descriptors, two
 * coroutines waiting for the same thing, regular files, cancellation mid-read; and the
 * writes of coroutines that are ready together (which io_uring once made in one batch;
 * a write(2) each now, as on epoll).
 */
#include "helpers.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

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
    /* the largest number: no overflow in the table of waits by descriptor (UBSan) */
    CHECK_EQ(plait_wait_fd(INT_MAX, PLAIT_READABLE, plait_deadline_in(PLAIT_SEC)), -EBADF);
    CHECK_EQ(plait_close(INT_MAX), -EBADF);
}

static void *wait_closed(void *arg)
{
    (void)arg;
    int closed = 1000;
    while (fcntl(closed, F_GETFD) >= 0)
        closed++;
    CHECK_EQ(plait_wait_fd(closed, PLAIT_READABLE, plait_deadline_in(PLAIT_SEC)), -EBADF);
    /* numbers past the poller's table: -EBADF, not -ENOMEM, and no table grown for
     * them (the largest cost gigabytes) */
    CHECK_EQ(plait_wait_fd(4000000, PLAIT_READABLE, plait_deadline_in(PLAIT_SEC)), -EBADF);
    CHECK_EQ(plait_wait_fd(INT_MAX, PLAIT_READABLE, plait_deadline_in(PLAIT_SEC)), -EBADF);
    char c;
    CHECK_EQ(plait_read(INT_MAX, &c, 1, plait_deadline_in(PLAIT_SEC)), -EBADF);
    CHECK_EQ(plait_close(INT_MAX), -EBADF);
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

typedef struct file_reader {
    int fd;
    int waits;          /* wait first (else read) */
    ssize_t r;
} file_reader;

static void *wait_or_read_file(void *arg)
{
    file_reader *f = arg;
    char buf[16];
    f->r = f->waits ? plait_wait_fd(f->fd, PLAIT_READABLE, SOON())
                    : plait_read(f->fd, buf, sizeof buf, SOON());
    return NULL;
}

/* A regular file of ten bytes, read to its end through plait_read on this scheduler,
 * after a wait on a pipe (fds, which the caller closes) that gives the poller a slot
 * for the file's number. */
static int read_ten_byte_file(int fds[2])
{
    char path[] = "/tmp/plait-fdio-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    make_pipe(fds);
    CHECK_EQ(write(fds[1], "x", 1), 1);
    CHECK(plait_wait_fd(fds[0], PLAIT_READABLE, SOON()) > 0);
    CHECK_EQ(write(fd, "0123456789", 10), 10);
    CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
    char buf[16];
    CHECK_EQ(plait_read(fd, buf, sizeof buf, SOON()), 10);
    return fd;
}

/* Two coroutines wait on one regular file, then read it (after a read that came back
 * short, which on streams makes the next read wait first): a regular file is always
 * ready, so neither is told that another waits (-EBUSY) - as on epoll, where a file
 * cannot be watched at all. */
static void *coroutines_on_one_file(void *arg)
{
    (void)arg;
    int fds[2];
    int fd = read_ten_byte_file(fds);
    CHECK_EQ(pwrite(fd, "abcdefghij", 10, 10), 10);
    for (int waits = 1; waits >= 0; waits--) {
        file_reader f[2] = {{fd, waits, -1}, {fd, waits, -1}};
        plait_task t[2];
        for (int i = 0; i < 2; i++)
            CHECK_EQ(plait_spawn(&t[i], wait_or_read_file, &f[i]), 0);
        for (int i = 0; i < 2; i++)
            CHECK_EQ(plait_join(t[i], NULL, SOON()), 0);
        if (waits) {
            CHECK(f[0].r > 0 && (f[0].r & PLAIT_READABLE));
            CHECK(f[1].r > 0 && (f[1].r & PLAIT_READABLE));
        } else { /* one read takes the rest, the other finds the end */
            CHECK_EQ(f[0].r + f[1].r, 10);
            CHECK(f[0].r == 0 || f[1].r == 0);
        }
    }
    close(fds[0]);
    close(fds[1]);
    close(fd);
    return NULL;
}

TEST(coroutines_wait_on_one_regular_file) { check_run(coroutines_on_one_file, NULL); }

/* A regular file read through plait_read and closed with close(2), not plait_close:
 * when a pipe then takes its number, a read of the pipe sleeps until its deadline.
 * (The io_uring poller once kept "a file: always ready" for the number, and the read
 * spun - a read(2), EAGAIN, an answer at once - for the whole wait.) */
static void *file_number_reused_by_pipe(void *arg)
{
    (void)arg;
    int fds[2];
    int fd = read_ten_byte_file(fds);
    char buf[16];
    CHECK_EQ(plait_read(fd, buf, sizeof buf, SOON()), 0); /* the end: the next read waits */
    close(fd);
    int empty[2];
    make_pipe(empty);
    CHECK_EQ(dup2(empty[0], fd), fd);
    struct timespec t0, t1;
    CHECK_EQ(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0), 0);
    CHECK_EQ(plait_read(fd, buf, sizeof buf, plait_deadline_in(300 * PLAIT_MS)), -ETIMEDOUT);
    CHECK_EQ(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1), 0);
    int64_t cpu_ns = (t1.tv_sec - t0.tv_sec) * PLAIT_SEC + (t1.tv_nsec - t0.tv_nsec);
    /* sleeping: well under a millisecond (a few under a sanitizer); spinning: most of
     * the 300 ms, a third of it even on a loaded machine */
    CHECK(cpu_ns < 50 * PLAIT_MS);
    plait_close(fd);
    close(empty[0]);
    close(empty[1]);
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

TEST(file_number_reused_by_a_pipe_waits) { check_run(file_number_reused_by_pipe, NULL); }

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

/* A thread's write of one byte into a pipe that a coroutine reads, once the reader
 * waits: its scheduler's thread is seen asleep (a write before the wait would be found
 * at once, and the case pass without a wake-up).  A fixed 20 ms pause stood for this.
 * Where other coroutines keep the scheduler from sleeping, busy_watching says instead
 * that the reader waits. */
typedef struct late_write {
    int fd;
    atomic_int tid;     /* the scheduler's thread's, just before the reader reads */
    bool never_asleep;  /* the scheduler never sleeps: wait for `waiting` instead */
    atomic_int waiting; /* another coroutine has run since the reader said it reads */
} late_write;

static void *late_writer(void *arg)
{
    late_write *lw = arg;
    if (lw->never_asleep)
        wait_for(&lw->waiting);
    else
        wait_asleep(&lw->tid);
    CHECK_EQ(write(lw->fd, "z", 1), 1);
    return NULL;
}

/* A late_writer into fd, started now on a plain thread (*th); the reader says when it
 * reads (about_to_read). */
static void late_write_start(late_write *lw, pthread_t *th, int fd)
{
    *lw = (late_write){.fd = fd};
    thread_start(th, late_writer, lw);
}

/* Said by the reader just before it reads (or waits otherwise), on its scheduler's
 * thread. */
static void about_to_read(late_write *lw) { atomic_store(&lw->tid, gettid_()); }

/* A thread writes what a coroutine waits for: the parked scheduler is woken by the
 * descriptor, and by its inbox while it sleeps in epoll. */
static void *wait_for_thread(void *arg)
{
    (void)arg;
    int fds[2];
    make_pipe(fds);
    late_write lw;
    pthread_t th;
    late_write_start(&lw, &th, fds[1]);
    char c = 0;
    about_to_read(&lw);
    CHECK_EQ(plait_read(fds[0], &c, 1, SOON()), 1);
    CHECK_EQ(c, 'z');
    thread_join(th);
    /* while this coroutine waits on a descriptor, the scheduler sleeps in epoll: a
     * wake-up through the inbox (a thread completing a future) must still reach it */
    lw = (late_write){.fd = fds[1]};
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, late_writer, &lw, NULL), 0);
    about_to_read(&lw); /* (the join, here) */
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(plait_read(fds[0], &c, 1, SOON()), 1);
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

TEST(coroutine_woken_by_a_thread) { check_run(wait_for_thread, NULL); }

/* A coroutine's wait on fd with a deadline, its outcome and how long it took. */
typedef struct timed_wait {
    int fd;
    int64_t ns;
    int r;
    int64_t took;
} timed_wait;

static void *wait_timed(void *arg)
{
    timed_wait *t = arg;
    int64_t start = plait_now();
    t->r = plait_wait_fd(t->fd, PLAIT_READABLE, start + t->ns);
    t->took = plait_now() - start;
    return NULL;
}

/* Deadlines that come in every order while the scheduler sleeps.  On io_uring one
 * timeout request in the ring ends its sleeps (poll_uring.c, timeout_by): armed for
 * the earliest deadline, moved when an earlier one comes, kept when the wait it was
 * armed for ends first (the loop then wakes early, and arms it again).  Each wait
 * still ends at its own deadline: not before it, not long after. */
static void *deadlines_in_any_order(void *arg)
{
    (void)arg;
    int long_fds[2], short_fds[2], woken[2];
    make_pipe(long_fds);
    make_pipe(short_fds);
    make_pipe(woken);
    char c;
    /* asleep with only a 10 s deadline; then a 50 ms one comes: the timeout moves */
    timed_wait longer = {long_fds[0], 10 * PLAIT_SEC, 0, 0};
    plait_task t;
    CHECK_EQ(plait_spawn(&t, wait_timed, &longer), 0);
    pthread_t th;
    late_write lw;
    late_write_start(&lw, &th, woken[1]);
    about_to_read(&lw);
    CHECK_EQ(plait_read(woken[0], &c, 1, PLAIT_FOREVER), 1);
    thread_join(th);
    timed_wait shorter = {short_fds[0], 50 * PLAIT_MS, 0, 0};
    wait_timed(&shorter);
    CHECK_EQ(shorter.r, -ETIMEDOUT);
    CHECK(shorter.took >= 50 * PLAIT_MS && shorter.took < 50 * PLAIT_MS + 2 * PLAIT_SEC);
    /* the 10 s wait ends early, by data: a later deadline must not wait on its timeout */
    CHECK_EQ(write(long_fds[1], "x", 1), 1);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(longer.r & PLAIT_READABLE, PLAIT_READABLE);
    /* armed for, then ended by data from a thread started now: a second is room for a
     * thread start and two wake-ups on a loaded machine */
    timed_wait armed = {short_fds[0], PLAIT_SEC, 0, 0};
    CHECK_EQ(plait_spawn(&t, wait_timed, &armed), 0);
    late_write_start(&lw, &th, short_fds[1]);
    /* (it writes once the scheduler sleeps: in this read, or in the join after it) */
    about_to_read(&lw);
    CHECK_EQ(plait_read(woken[0], &c, 1, plait_deadline_in(20 * PLAIT_MS)), -ETIMEDOUT);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(armed.r & PLAIT_READABLE, PLAIT_READABLE);
    CHECK(armed.took < PLAIT_SEC);
    thread_join(th);
    CHECK_EQ(read(short_fds[0], &c, 1), 1);
    /* past the armed wait's deadline, whose timeout may still be in the ring */
    timed_wait later = {short_fds[0], 1200 * PLAIT_MS, 0, 0};
    wait_timed(&later);
    CHECK_EQ(later.r, -ETIMEDOUT);
    CHECK(later.took >= 1200 * PLAIT_MS && later.took < 1200 * PLAIT_MS + 2 * PLAIT_SEC);
    int all[] = {long_fds[0], long_fds[1], short_fds[0], short_fds[1], woken[0], woken[1]};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        close(all[i]);
    return NULL;
}

TEST(deadlines_in_any_order_while_asleep) { check_run(deadlines_in_any_order, NULL); }

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
    /* a second plait_read is refused too.  After a short read (the pipe drained) the
     * first reader's read is the kernel's, in the ring, on io_uring: the second finds
     * it there, not a wait */
    char two[2];
    CHECK_EQ(plait_read(fds[0], two, sizeof two, SOON()), 1);
    CHECK_EQ(plait_spawn(&first, wait_read, &fds[0]), 0);
    settle();
    CHECK_EQ(plait_read(fds[0], two, 1, SOON()), -EBUSY);
    CHECK_EQ(write(fds[1], "r", 1), 1); /* the first reader's, untouched by the refusal */
    void *v = NULL;
    CHECK_EQ(plait_join(first, &v, SOON()), 0);
    CHECK_EQ((intptr_t)v, 1); /* wait_read returns what its read did: the one byte */
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

TEST(one_reader_per_descriptor) { check_run(same_descriptor_twice, NULL); }

static void *wait_write(void *arg)
{
    int fd = *(int *)arg;
    return PLAIT_FAIL((int)plait_write(fd, "w", 1, SOON()));
}

/* The same for a writer, and for the calls that loop (write_all, read_exactly): a
 * second one on this scheduler that must wait is refused, moving nothing. */
static void *same_descriptor_twice_writing(void *arg)
{
    (void)arg;
    int fds[2];
    make_pipe(fds);
    char block[4096] = {0};
    size_t filled = 0;
    ssize_t n;
    while ((n = write(fds[1], block, sizeof block)) > 0) /* full: a writer waits */
        filled += (size_t)n;
    plait_task first;
    CHECK_EQ(plait_spawn(&first, wait_write, &fds[1]), 0);
    settle();
    CHECK_EQ(plait_write(fds[1], "x", 1, SOON()), -EBUSY);
    size_t done = 7;
    CHECK_EQ(plait_write_all(fds[1], "xy", 2, &done, SOON()), -EBUSY);
    CHECK_EQ(done, 0);
    /* the pipe emptied, the first writer's byte goes, and only it */
    char *sink = malloc(filled + 2);
    CHECK(sink != NULL);
    CHECK_EQ(plait_read_exactly(fds[0], sink, filled + 1, NULL, SOON()), 0);
    CHECK_EQ(sink[filled], 'w');
    void *v = NULL;
    CHECK_EQ(plait_join(first, &v, SOON()), 0);
    CHECK_EQ((intptr_t)v, 1);
    CHECK_EQ(read(fds[0], sink, 2), -1); /* nothing else came */
    CHECK_EQ(errno, EAGAIN);
    /* a reader waits on the empty pipe; a second read_exactly is refused */
    CHECK_EQ(plait_spawn(&first, wait_read, &fds[0]), 0);
    settle();
    done = 7;
    CHECK_EQ(plait_read_exactly(fds[0], sink, 2, &done, SOON()), -EBUSY);
    CHECK_EQ(done, 0);
    CHECK_EQ(write(fds[1], "z", 1), 1); /* the first reader's, untouched by the refusal */
    CHECK_EQ(plait_join(first, &v, SOON()), 0);
    CHECK_EQ((intptr_t)v, 1);
    free(sink);
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

TEST(one_writer_per_descriptor) { check_run(same_descriptor_twice_writing, NULL); }

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

/* As busy, on the scheduler of a reader that a late_writer writes to: once the reader
 * has said it reads, this coroutine running says that the reader waits (one coroutine
 * of a scheduler runs at a time: the reader has gone into its wait). */
typedef struct busy_beside {
    atomic_int stop;
    late_write *lw;
} busy_beside;

static void *busy_watching(void *arg)
{
    busy_beside *b = arg;
    while (!atomic_load(&b->stop)) {
        if (atomic_load(&b->lw->tid))
            atomic_store(&b->lw->waiting, 1);
        if (plait_yield() < 0)
            break;
    }
    return NULL;
}

static void *served_under_load(void *arg)
{
    (void)arg;
    int fds[2];
    make_pipe(fds);
    late_write lw = {.fd = fds[1], .never_asleep = true};
    busy_beside bb = {.lw = &lw};
    pthread_t th;
    thread_start(&th, late_writer, &lw);
    plait_task b[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(plait_spawn(&b[i], busy_watching, &bb), 0);
    char c;
    int64_t start = plait_now();
    about_to_read(&lw);
    CHECK_EQ(plait_read(fds[0], &c, 1, SOON()), 1);
    CHECK(plait_now() - start < 2 * PLAIT_SEC);
    atomic_store(&bb.stop, 1);
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

/* A read's "likely empty" hint (the last read was short: wait first, read after) is
 * the file's, not the number's: a FIFO that took the number of a pipe whose last read
 * was short, opened with no writer yet, reads 0 at once (read(2) says so at once, and
 * poll never says readable).  On epoll it waited until its deadline: the hint outlived
 * plait_close (an audit of session 61). */
static void *fifo_on_a_drained_number(void *arg)
{
    const char *path = arg;
    int a[2];
    make_pipe(a);
    /* the scheduler's table has the number */
    CHECK_EQ(plait_wait_fd(a[0], PLAIT_READABLE, plait_deadline_in(PLAIT_MS)), -ETIMEDOUT);
    char got[16];
    CHECK_EQ(write(a[1], "x", 1), 1);
    CHECK_EQ(plait_read(a[0], got, sizeof got, SOON()), 1); /* short: the hint is set */
    int number = a[0];
    CHECK_EQ(plait_close(a[0]), 0);
    CHECK_EQ(plait_close(a[1]), 0);
    int fifo = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    CHECK(fifo >= 0);
    if (fifo != number) { /* make the FIFO take the old number */
        CHECK_EQ(dup3(fifo, number, O_CLOEXEC), number);
        close(fifo);
        fifo = number;
    }
    int64_t start = plait_now();
    CHECK_EQ(plait_read(fifo, got, sizeof got, plait_deadline_in(2 * PLAIT_SEC)), 0);
    CHECK(plait_now() - start < PLAIT_SEC);
    CHECK_EQ(plait_close(fifo), 0);
    return NULL;
}

TEST(a_fifo_on_the_number_of_a_drained_pipe_reads_at_once)
{
    char dir[] = "/tmp/plait-fifo-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[64];
    snprintf(path, sizeof path, "%s/fifo", dir);
    CHECK_EQ(mkfifo(path, 0600), 0);
    check_run(fifo_on_a_drained_number, path);
    unlink(path);
    rmdir(dir);
}

static void *nothing(void *arg) { return arg; }

/* Cancelled before it ran: what needs no wait still completes, what would wait is
 * -ECANCELED.  (A read after a short one, which goes to the ring or waits first, was
 * -ECANCELED with data there, on both backends; a plait_wait_fd on a ready
 * descriptor too; and a write beside a ready coroutine, on io_uring only.) */
static void *cancelled_transfers(void *arg)
{
    int *sv = arg;
    char buf[16];
    CHECK(plait_cancelled());
    CHECK_EQ(plait_read(sv[0], buf, sizeof buf, SOON()), 4); /* short: nothing more */
    CHECK_EQ(plait_read(sv[0], buf, sizeof buf, SOON()), -ECANCELED);
    CHECK_EQ(write(sv[1], "efgh", 4), 4);
    CHECK_EQ(plait_read(sv[0], buf, sizeof buf, SOON()), 4);
    CHECK_EQ(memcmp(buf, "efgh", 4), 0);
    CHECK_EQ(plait_wait_fd(sv[0], PLAIT_WRITABLE, SOON()), PLAIT_WRITABLE);
    CHECK_EQ(plait_wait_fd(sv[0], PLAIT_READABLE, SOON()), -ECANCELED);
    CHECK_EQ(plait_spawn(NULL, nothing, NULL), 0); /* ready to run beside the write */
    CHECK_EQ(plait_write(sv[0], "ijkl", 4, SOON()), 4);
    return NULL;
}

static void *transfers_when_cancelled(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    /* the scheduler's poller holds the numbers: a short read is remembered */
    CHECK_EQ(plait_wait_fd(sv[0], PLAIT_WRITABLE, SOON()), PLAIT_WRITABLE);
    CHECK_EQ(write(sv[1], "abcd", 4), 4);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, cancelled_transfers, sv), 0);
    CHECK_EQ(plait_cancel(t), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
    char buf[8];
    CHECK_EQ(read(sv[1], buf, sizeof buf), 4);
    CHECK_EQ(memcmp(buf, "ijkl", 4), 0);
    CHECK_EQ(plait_close(sv[0]), 0);
    CHECK_EQ(plait_close(sv[1]), 0);
    return NULL;
}

TEST(cancelled_coroutine_transfers_what_needs_no_wait)
{
    check_run(transfers_when_cancelled, NULL);
}

/* A read the file refuses whatever is there (an eventfd's buffer under 8 bytes) is
 * answered at once on both backends, as from a thread, after a short read of the same
 * file, and on a number a socket's short read left its hint on: a read after a short
 * one waited for data first on epoll (the read hint), so the refusal came only at the
 * deadline, and never with none (session 50's I/O audit). */
static void *refused_reads_after_short_ones(void *arg)
{
    (void)arg;
    int e = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    CHECK(e >= 0);
    uint64_t one = 1, got[2];
    CHECK_EQ(write(e, &one, sizeof one), (ssize_t)sizeof one);
    /* the scheduler's poller holds the number: a short read is remembered */
    CHECK_EQ(plait_wait_fd(e, PLAIT_READABLE, SOON()), PLAIT_READABLE);
    CHECK_EQ(plait_read(e, got, sizeof got, SOON()), 8); /* short: 8 of 16 */
    int64_t start = plait_now();
    CHECK_EQ(plait_read(e, got, 4, plait_deadline_in(10 * PLAIT_SEC)), -EINVAL);
    CHECK_PROMPT(start);

    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    CHECK_EQ(plait_wait_fd(sv[0], PLAIT_WRITABLE, SOON()), PLAIT_WRITABLE);
    CHECK_EQ(write(sv[1], "ab", 2), 2);
    char buf[8];
    CHECK_EQ(plait_read(sv[0], buf, sizeof buf, SOON()), 2); /* short */
    CHECK_EQ(plait_close(sv[0]), 0);
    CHECK_EQ(dup3(e, sv[0], O_CLOEXEC), sv[0]); /* the eventfd (count 0) takes it */
    start = plait_now();
    CHECK_EQ(plait_read(sv[0], got, 4, plait_deadline_in(10 * PLAIT_SEC)), -EINVAL);
    CHECK_PROMPT(start);
    CHECK_EQ(plait_close(sv[0]), 0);
    CHECK_EQ(plait_close(sv[1]), 0);
    CHECK_EQ(plait_close(e), 0);
    return NULL;
}

TEST(refused_read_after_a_short_one_is_answered_at_once)
{
    check_run(refused_reads_after_short_ones, NULL);
}

/* Lengths too large: over SSIZE_MAX (what no return value could count) -EINVAL at once
 * for every call; up to it, read(2)'s answer on both backends (-EFAULT for a length
 * that runs past the address space), where io_uring's read cut the length to 32 bits
 * and took the pipe's bytes (session 50's I/O audit).  Nothing read either way. */
static void *reads_of_lengths_too_large(void *arg)
{
    (void)arg;
    int fds[2];
    make_pipe(fds);
    char buf[8];
    size_t done = 1;
    CHECK_EQ(write(fds[1], "ab", 2), 2);
    CHECK_EQ(plait_wait_fd(fds[0], PLAIT_READABLE, SOON()), PLAIT_READABLE);
    CHECK_EQ(plait_read(fds[0], buf, 1, SOON()), 1); /* then 1 of 8: short, a hint */
    CHECK_EQ(plait_read(fds[0], buf, sizeof buf, SOON()), 1);
    CHECK_EQ(write(fds[1], "cd", 2), 2);
    int64_t start = plait_now();
    CHECK_EQ(plait_read(fds[0], buf, SIZE_MAX, SOON()), -EINVAL);
    CHECK_EQ(plait_read(fds[0], buf, (size_t)SSIZE_MAX + 1, SOON()), -EINVAL);
    CHECK_EQ(plait_read(fds[0], buf, SSIZE_MAX, SOON()), -EFAULT);
    CHECK_EQ(plait_read_exactly(fds[0], buf, SIZE_MAX, &done, SOON()), -EINVAL);
    CHECK_EQ(done, 0);
    CHECK_EQ(plait_write(fds[1], buf, SIZE_MAX, SOON()), -EINVAL);
    CHECK_EQ(plait_write_all(fds[1], buf, SIZE_MAX, &done, SOON()), -EINVAL);
    CHECK_PROMPT(start);
    CHECK_EQ(read(fds[0], buf, sizeof buf), 2); /* the pipe's bytes, and only those */
    CHECK_EQ(memcmp(buf, "cd", 2), 0);
    CHECK_EQ(plait_close(fds[0]), 0);
    CHECK_EQ(plait_close(fds[1]), 0);
    return NULL;
}

TEST(lengths_too_large)
{
    check_run(reads_of_lengths_too_large, NULL); /* a coroutine */
    reads_of_lengths_too_large(NULL);           /* a plain thread */
}

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

/* Two coroutines wait on one socket, one to read and one to write, and both become
 * ready at once: each is told of its own direction only, as a thread is (each was told
 * both: the other waiter's event came along; session 50's I/O audit). */
static int one_direction_fd;
static void *waits_for(void *arg)
{
    return ARG(plait_wait_fd(one_direction_fd, INT(arg), SOON())); /* (< 0: a failure) */
}

static void *two_directions_at_once(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    one_direction_fd = sv[0];
    static char room[1 << 16];
    while (write(sv[0], room, sizeof room) > 0) { /* full: the writer waits */
    }
    plait_task reader, writer;
    CHECK_EQ(plait_spawn(&reader, waits_for, ARG(PLAIT_READABLE)), 0);
    CHECK_EQ(plait_spawn(&writer, waits_for, ARG(PLAIT_WRITABLE)), 0);
    CHECK_EQ(plait_yield(), 0); /* both wait */
    while (read(sv[1], room, sizeof room) > 0) { /* room, and data, before either runs */
    }
    CHECK_EQ(write(sv[1], "x", 1), 1);
    void *got;
    CHECK_EQ(plait_join(reader, &got, SOON()), 0);
    CHECK_EQ((intptr_t)got, PLAIT_READABLE);
    CHECK_EQ(plait_join(writer, &got, SOON()), 0);
    CHECK_EQ((intptr_t)got, PLAIT_WRITABLE);
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

TEST(each_waiter_is_told_its_own_direction) { check_run(two_directions_at_once, NULL); }

/* ---- writes of coroutines that are ready together (io_uring: one batch) ---- */

/* The write(2) calls this process has made (/proc/self/io): a write the kernel makes
 * from an io_uring is not one. */
static long write_calls(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    CHECK(f != NULL);
    long n = -1;
    char line[64];
    while (f && fgets(line, sizeof line, f) && sscanf(line, "syscw: %ld", &n) != 1) {
    }
    if (f)
        fclose(f);
    CHECK(n >= 0);
    return n;
}

typedef struct message_writer {
    int fd;
    const char *text;
    ssize_t r;
} message_writer;

static void *write_message(void *arg)
{
    message_writer *m = arg;
    m->r = plait_write(m->fd, m->text, strlen(m->text), SOON());
    return NULL;
}

enum { WRITERS = 32 };

/* Coroutines that write while others are ready to run: every message arrives whole.
 * (On io_uring such writes once went to the kernel together in the ring; a write(2)
 * each costs less, as the writer does not wait: fdio.c, transfer.) */
static void *ready_writers(void *arg)
{
    (void)arg;
    static const char *texts[] = {"alpha", "beta", "gamma", "delta"};
    int fds[WRITERS][2];
    message_writer m[WRITERS];
    plait_task t[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        make_pipe(fds[i]);
        m[i] = (message_writer){.fd = fds[i][1], .text = texts[i % 4]};
    }
    long before = write_calls();
    for (int i = 0; i < WRITERS; i++)
        CHECK_EQ(plait_spawn(&t[i], write_message, &m[i]), 0);
    for (int i = 0; i < WRITERS; i++)
        CHECK_EQ(plait_join(t[i], NULL, SOON()), 0);
    long calls = write_calls() - before;
    for (int i = 0; i < WRITERS; i++) {
        size_t len = strlen(m[i].text);
        CHECK_EQ(m[i].r, (ssize_t)len);
        char got[16] = {0};
        CHECK_EQ(read(fds[i][0], got, sizeof got), (ssize_t)len);
        CHECK_EQ(strcmp(got, m[i].text), 0);
        close(fds[i][0]);
        close(fds[i][1]);
    }
    CHECK(calls >= WRITERS); /* a write(2) each, on io_uring too (fdio.c, transfer) */
    return NULL;
}

TEST(writes_of_ready_coroutines_arrive_whole) { check_run(ready_writers, NULL); }

static void *yield_once(void *arg)
{
    (void)arg;
    plait_yield();
    return NULL;
}

/* A deadline that passed a moment ago, on the paths where io_uring would read or
 * write in the ring (a read after one that emptied the descriptor, a write beside a
 * ready coroutine): the call still tries once, as with any past deadline.  A read
 * with nothing there times out, one with data there gets it, a write with room
 * writes; none of them waits.  (Such a deadline is not known past when the call
 * begins, as the clock is not read there: the request goes to the ring, its timer
 * takes it back before the kernel saw it, and the call then tries once itself.) */
static void *deadline_just_passed(void *arg)
{
    int fds[2];
    if (arg) /* a socket: io_uring receives, not reads, once it waits */
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    else
        make_pipe(fds);
    char buf[16];
    int64_t start = plait_now();
    CHECK_EQ(write(fds[1], "a", 1), 1);
    CHECK(plait_wait_fd(fds[0], PLAIT_READABLE, SOON()) & PLAIT_READABLE); /* poller knows it */
    CHECK_EQ(plait_read(fds[0], buf, sizeof buf, SOON()), 1); /* short: read in the ring next */
    CHECK_EQ(plait_read(fds[0], buf, sizeof buf, plait_now()), -ETIMEDOUT);
    plait_task ready[2];
    CHECK_EQ(write(fds[1], "b", 1), 1);
    CHECK_EQ(plait_spawn(&ready[0], yield_once, NULL), 0); /* the loop has more to do */
    CHECK_EQ(plait_read(fds[0], buf, sizeof buf, plait_now()), 1);
    CHECK_EQ(buf[0], 'b');
    CHECK_EQ(plait_spawn(&ready[1], yield_once, NULL), 0); /* so the write may join a batch */
    CHECK_EQ(plait_write(fds[1], "cd", 2, plait_now()), 2);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(plait_join(ready[i], NULL, SOON()), 0);
    CHECK_EQ(plait_read(fds[0], buf, sizeof buf, plait_now()), 2);
    CHECK_EQ(memcmp(buf, "cd", 2), 0);
    CHECK(plait_now() - start < PLAIT_SEC);
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

TEST(deadline_just_passed_in_a_coroutine) { check_run(deadline_just_passed, NULL); }
TEST(deadline_just_passed_on_a_socket) { check_run(deadline_just_passed, ARG(1)); }

/* A pipe whose `end` (0 read, 1 write) has the number of a socket that the calling
 * coroutine's poller knows as one, read empty (so the next read waits first), and
 * closed with close(2) behind plait's back. */
static void pipe_on_a_socket_number(int fds[2], int end)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    char buf[16];
    CHECK(plait_wait_fd(sv[0], PLAIT_WRITABLE, SOON()) & PLAIT_WRITABLE); /* known to the poller */
    CHECK_EQ(write(sv[1], "a", 1), 1);
    CHECK_EQ(plait_read(sv[0], buf, sizeof buf, SOON()), 1); /* short: emptied */
    int number = sv[0];
    CHECK_EQ(close(sv[0]), 0);
    CHECK_EQ(close(sv[1]), 0);
    make_pipe(fds);
    if (fds[end] != number) {
        if (fds[1 - end] == number) /* the other end has it: keep that end elsewhere */
            CHECK((fds[1 - end] = fcntl(fds[1 - end], F_DUPFD_CLOEXEC, 0)) >= 0);
        CHECK_EQ(dup2(fds[end], number), number);
        CHECK_EQ(close(fds[end]), 0);
        fds[end] = number;
    }
}

/* The pipe reads as a pipe, its data is not refused as "not a socket". */
static void *socket_number_reused_then_read(void *arg)
{
    (void)arg;
    int fds[2];
    pipe_on_a_socket_number(fds, 0);
    char buf[16];
    CHECK_EQ(write(fds[1], "pipe", 4), 4);
    CHECK_EQ(plait_read(fds[0], buf, sizeof buf, SOON()), 4);
    CHECK_EQ(memcmp(buf, "pipe", 4), 0);
    CHECK_EQ(write(fds[1], "more", 4), 4);
    CHECK_EQ(plait_read(fds[0], buf, sizeof buf, SOON()), 4);
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

TEST(socket_number_reused_by_a_pipe) { check_run(socket_number_reused_then_read, NULL); }

/* The same for writes: the pipe is written as a pipe, not refused as "not a socket",
 * in the ring (io_uring, beside a ready coroutine) and by the system call. */
static void *socket_number_reused_then_written(void *arg)
{
    (void)arg;
    int fds[2];
    pipe_on_a_socket_number(fds, 1);
    plait_task ready;
    CHECK_EQ(plait_spawn(&ready, yield_once, NULL), 0);
    CHECK_EQ(plait_write(fds[1], "pipe", 4, SOON()), 4);
    CHECK_EQ(plait_join(ready, NULL, SOON()), 0);
    CHECK_EQ(plait_write(fds[1], "more", 4, SOON()), 4);
    char buf[16];
    CHECK_EQ(read(fds[0], buf, sizeof buf), 8);
    CHECK_EQ(memcmp(buf, "pipemore", 8), 0);
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

TEST(socket_number_reused_by_a_pipe_then_written)
{
    check_run(socket_number_reused_then_written, NULL);
}

static void *wait_on(void *arg)
{
    int fd = *(int *)arg;
    CHECK_EQ(plait_wait_fd(fd, PLAIT_READABLE, plait_deadline_in(20 * PLAIT_MS)), -ETIMEDOUT);
    return NULL;
}

/* The same write in the ring while another coroutine's wait on a high number grows the
 * poller's table (a realloc): the write must not use its descriptor's entry from before
 * the wait (a review found a read and a write of the freed table, under ASan). */
static void *written_while_the_table_grows(void *arg)
{
    (void)arg;
    int fds[2];
    pipe_on_a_socket_number(fds, 1);
    int high[2];
    make_pipe(high);
    int far = fcntl(high[0], F_DUPFD_CLOEXEC, 900); /* beyond the table's first 64 slots */
    CHECK(far >= 900);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, wait_on, &far), 0); /* ready: the write goes to the ring */
    CHECK_EQ(plait_write(fds[1], "pipe", 4, SOON()), 4);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    char buf[8];
    CHECK_EQ(read(fds[0], buf, sizeof buf), 4);
    int all[] = {far, high[0], high[1], fds[0], fds[1]};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        close(all[i]);
    return NULL;
}

TEST(written_in_the_ring_while_the_table_grows)
{
    check_run(written_while_the_table_grows, NULL);
}

/* Records of a SOCK_SEQPACKET socket keep their bounds, written and read in the ring
 * and out of it (its writes stay write(2)s, which end a record). */
static void *seqpacket_records(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    CHECK(plait_wait_fd(sv[0], PLAIT_WRITABLE, SOON()) & PLAIT_WRITABLE);
    CHECK(plait_wait_fd(sv[1], PLAIT_WRITABLE, SOON()) & PLAIT_WRITABLE);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, yield_once, NULL), 0);
    CHECK_EQ(plait_write(sv[0], "abc", 3, SOON()), 3); /* in the ring, io_uring */
    CHECK_EQ(plait_write(sv[0], "de", 2, SOON()), 2);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    char buf[16];
    CHECK_EQ(plait_read(sv[1], buf, sizeof buf, SOON()), 3);
    CHECK_EQ(memcmp(buf, "abc", 3), 0);
    CHECK_EQ(plait_read(sv[1], buf, sizeof buf, SOON()), 2); /* in the ring, io_uring */
    CHECK_EQ(memcmp(buf, "de", 2), 0);
    CHECK_EQ(plait_read(sv[1], buf, sizeof buf, plait_deadline_in(PLAIT_MS)), -ETIMEDOUT);
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

TEST(seqpacket_records_keep_their_bounds) { check_run(seqpacket_records, NULL); }

/* A write to a socket whose peer has gone, with SIGPIPE at its default, ends the same
 * way in the ring and out of it: killed by SIGPIPE, as write(2) would be.  (A SEND in
 * the ring never raises it: for a few days the ring's socket writes were SENDs, and
 * the same call ended by -EPIPE or by the signal depending on whether another
 * coroutine was ready; a review found it.)  In a child, whose end says how. */
static void *write_to_a_gone_peer(void *arg)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    CHECK(plait_wait_fd(sv[0], PLAIT_WRITABLE, SOON()) & PLAIT_WRITABLE); /* known to the poller */
    CHECK_EQ(close(sv[1]), 0);
    plait_task t;
    if (arg)
        CHECK_EQ(plait_spawn(&t, yield_once, NULL), 0); /* so the write goes to the ring */
    plait_write(sv[0], "b", 1, SOON());
    return NULL;
}

static void gone_peer_in_a_child(bool beside_a_ready_coroutine)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        check_run(write_to_a_gone_peer, beside_a_ready_coroutine ? ARG(1) : NULL);
        _exit(0);
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFSIGNALED(status));
    CHECK_EQ(WTERMSIG(status), SIGPIPE);
}

TEST(sigpipe_in_the_ring_and_out_of_it)
{
    gone_peer_in_a_child(false);
    gone_peer_in_a_child(true);
}

/* Three coroutines write one pipe in turn, each while the next is ready to run: the
 * bytes come in the order of the calls (a write that waits in the ring goes to the
 * kernel before a later one on the same descriptor). */
static void *writers_in_order(void *arg)
{
    (void)arg;
    int fds[2];
    make_pipe(fds);
    message_writer m[3] = {{fds[1], "one", 0}, {fds[1], "two", 0}, {fds[1], "three", 0}};
    plait_task t[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(plait_spawn(&t[i], write_message, &m[i]), 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(plait_join(t[i], NULL, SOON()), 0);
        CHECK_EQ(m[i].r, (ssize_t)strlen(m[i].text));
    }
    char got[32] = {0};
    CHECK_EQ(read(fds[0], got, sizeof got), 11);
    CHECK_EQ(strcmp(got, "onetwothree"), 0);
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

TEST(writers_of_one_descriptor_keep_their_order) { check_run(writers_in_order, NULL); }

/* Fill fd (a pipe) until it takes no more. */
static void fill_pipe(int fd)
{
    char zeros[4096] = {0};
    while (write(fd, zeros, sizeof zeros) > 0) {
    }
    while (write(fd, zeros, 1) > 0) {
    }
    CHECK_EQ(errno, EAGAIN);
}

/* Read fd (a pipe) empty; the bytes, after checking each is zero (fill_pipe's). */
static size_t drain_zeros(int fd)
{
    char buf[4096];
    size_t total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            CHECK_EQ(buf[i], 0);
        total += (size_t)n;
    }
    return total;
}

/* A write to a full pipe, made while another coroutine is ready (so it waits in the
 * ring on io_uring), ended by each of its ways out. */
enum { END_DEADLINE, END_CANCEL, END_CLOSE, END_ROOM };

typedef struct full_pipe_writer {
    int fd;
    int end;
    ssize_t r;
    int64_t took;
} full_pipe_writer;

static void *write_to_full_pipe(void *arg)
{
    full_pipe_writer *w = arg;
    plait_task other;
    CHECK_EQ(plait_spawn(&other, nothing, NULL), 0); /* ready: the write joins a batch */
    int64_t start = plait_now();
    int64_t deadline = w->end == END_DEADLINE ? plait_deadline_in(30 * PLAIT_MS) : SOON();
    CHECK_EQ(plait_detach(other), 0);
    w->r = plait_write(w->fd, "late", 4, deadline);
    w->took = plait_now() - start;
    return NULL;
}

static void *full_pipe_write_ends(void *arg)
{
    int end = INT(arg);
    int fds[2];
    make_pipe(fds);
    fill_pipe(fds[1]);
    full_pipe_writer w = {.fd = fds[1], .end = end};
    plait_task t;
    CHECK_EQ(plait_spawn(&t, write_to_full_pipe, &w), 0);
    settle(); /* the writer waits in its write */
    if (end == END_CANCEL)
        CHECK_EQ(plait_cancel(t), 0);
    if (end == END_CLOSE)
        CHECK_EQ(plait_close(fds[1]), 0);
    size_t drained = end == END_ROOM ? drain_zeros(fds[0]) : 0;
    CHECK_EQ(plait_join(t, NULL, SOON()), end == END_CANCEL ? -ECANCELED : 0);
    static const ssize_t expect[] = {-ETIMEDOUT, -ECANCELED, -EBADF, 4};
    CHECK_EQ(w.r, expect[end]);
    if (end == END_DEADLINE)
        CHECK(w.took >= 30 * PLAIT_MS);
    if (end != END_CLOSE)
        CHECK_EQ(close(fds[1]), 0);
    /* what the writer reported is exactly what the pipe holds: nothing lost, nothing
     * written after its call returned */
    if (end != END_ROOM) {
        CHECK(drain_zeros(fds[0]) > 0);
    } else {
        CHECK(drained > 0);
        char got[8] = {0};
        CHECK_EQ(read(fds[0], got, sizeof got), 4);
        CHECK_EQ(memcmp(got, "late", 4), 0);
    }
    CHECK_EQ(read(fds[0], &(char){0}, 1), 0); /* end of file: nothing more came */
    close(fds[0]);
    return NULL;
}

TEST(full_pipe_write_times_out) { check_run(full_pipe_write_ends, ARG(END_DEADLINE)); }
TEST(full_pipe_write_cancelled) { check_run(full_pipe_write_ends, ARG(END_CANCEL)); }
TEST(full_pipe_write_closed) { check_run(full_pipe_write_ends, ARG(END_CLOSE)); }
TEST(full_pipe_write_gets_room) { check_run(full_pipe_write_ends, ARG(END_ROOM)); }

/* Writes to a regular file while another coroutine is ready: in order, at the file's
 * position, as write(2) would. */
static void *file_writes_in_a_batch(void *arg)
{
    (void)arg;
    char path[] = "/tmp/plait-fdio-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    static const char *parts[] = {"abc", "defg", "hi"};
    for (int i = 0; i < 3; i++) {
        plait_task other;
        CHECK_EQ(plait_spawn(&other, nothing, NULL), 0);
        CHECK_EQ(plait_write(fd, parts[i], strlen(parts[i]), SOON()), (ssize_t)strlen(parts[i]));
        CHECK_EQ(plait_join(other, NULL, SOON()), 0);
    }
    CHECK_EQ(lseek(fd, 0, SEEK_CUR), 9);
    char got[16] = {0};
    CHECK_EQ(pread(fd, got, sizeof got, 0), 9);
    CHECK_EQ(strcmp(got, "abcdefghi"), 0);
    close(fd);
    return NULL;
}

TEST(file_writes_beside_ready_coroutines) { check_run(file_writes_in_a_batch, NULL); }

/* A fork while another coroutine has just written beside it (a write that once waited
 * in the ring): the child does not make that write again (the message is in the pipe
 * once). */
static void *fork_beside_a_queued_write(void *arg)
{
    (void)arg;
    int fds[2];
    make_pipe(fds);
    message_writer m = {.fd = fds[1], .text = "once"};
    plait_task t;
    CHECK_EQ(plait_spawn(&t, write_message, &m), 0);
    CHECK_EQ(plait_yield(), 0); /* the writer runs; its write waits while this is ready */
    pid_t pid = fork();
    if (pid == 0)
        _exit(plait_join(t, NULL, SOON()) == 0 && m.r == 4 ? 0 : 1);
    CHECK(pid > 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(m.r, 4);
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char got[16] = {0};
    CHECK_EQ(read(fds[0], got, sizeof got), 4);
    CHECK_EQ(memcmp(got, "once", 4), 0);
    close(fds[0]);
    close(fds[1]);
    return NULL;
}

TEST(fork_beside_a_write_in_the_ring) { check_run(fork_beside_a_queued_write, NULL); }

/* Forks while another thread closes descriptors: plait_close holds the lock of its
 * descriptor's stripe of the table of blocking waits for an instant.  A fork in that
 * instant copied the lock held, and the child's first wait or close on that stripe
 * spun for ever (the tour's processes hung that way).  Each child closes a descriptor
 * of the same stripe and exits; each must be done within 10 s. */
static atomic_int closer_stop;

static void *closer(void *arg)
{
    (void)arg;
    while (!atomic_load(&closer_stop))
        plait_close(1 << 20); /* not open: -EBADF, after the stripe's lock */
    return NULL;
}

TEST(fork_while_another_thread_closes)
{
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, closer, NULL), 0);
    int stuck = 0;
    for (int i = 0; i < 200 && !stuck; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(plait_close((1 << 20) + 64) == -EBADF ? 0 : 1); /* the same stripe */
        CHECK(pid > 0);
        int status = 0;
        pid_t done = 0;
        for (int ms = 0; ms < 10000 && (done = waitpid(pid, &status, WNOHANG)) == 0; ms++)
            nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
        if (done == 0) {
            stuck = 1;
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        } else {
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
    }
    CHECK(!stuck);
    atomic_store(&closer_stop, 1);
    CHECK_EQ(pthread_join(t, NULL), 0);
}

/* ---- registrations kept between waits (epoll) ---- */

static void *close_there(void *arg)
{
    CHECK_EQ(plait_close(*(int *)arg), 0);
    return NULL;
}

/* A coroutine that empties a pipe (fill_pipe's zeros) once it runs. */
static void *drain_later(void *arg)
{
    CHECK(drain_zeros(*(int *)arg) > 0);
    return NULL;
}

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    CHECK_EQ(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts), 0);
    return (int64_t)ts.tv_sec * PLAIT_SEC + ts.tv_nsec;
}

/* A coroutine waits on a pipe, is woken, reads only part of what came and goes to
 * sleep; then the other direction, a pipe with room that nobody waits to write.  The
 * scheduler sleeps in the poller meanwhile (another coroutine waits on an idle pipe):
 * a registration still reporting the descriptor ready must not keep it spinning (it
 * is narrowed once a report finds no one waiting). */
static void *ready_but_not_waited_for(void *arg)
{
    (void)arg;
    int idle[2];
    make_pipe(idle);
    plait_task idler;
    CHECK_EQ(plait_spawn(&idler, wait_read, &idle[0]), 0);
    int fds[2];
    make_pipe(fds);
    pthread_t th;
    late_write lw;
    late_write_start(&lw, &th, fds[1]);
    char c;
    about_to_read(&lw);
    CHECK_EQ(plait_read(fds[0], &c, 1, SOON()), 1);
    thread_join(th);
    CHECK_EQ(write(fds[1], "more", 4), 4); /* unread while this coroutine sleeps */
    int64_t cpu = thread_cpu_ns();
    CHECK_EQ(plait_sleep(200 * PLAIT_MS), 0);
    CHECK(thread_cpu_ns() - cpu < 50 * PLAIT_MS);
    char rest[8];
    CHECK_EQ(plait_read(fds[0], rest, sizeof rest, SOON()), 4); /* and it is all there */

    fill_pipe(fds[1]);
    plait_task reader;
    CHECK_EQ(plait_spawn(&reader, drain_later, &fds[0]), 0);
    CHECK(plait_wait_fd(fds[1], PLAIT_WRITABLE, SOON()) & PLAIT_WRITABLE);
    CHECK_EQ(plait_join(reader, NULL, SOON()), 0);
    cpu = thread_cpu_ns();
    CHECK_EQ(plait_sleep(200 * PLAIT_MS), 0);
    CHECK(thread_cpu_ns() - cpu < 50 * PLAIT_MS);
    CHECK_EQ(plait_cancel(idler), 0);
    CHECK_EQ(plait_join(idler, NULL, SOON()), -ECANCELED);
    close(fds[0]);
    close(fds[1]);
    close(idle[0]);
    close(idle[1]);
    return NULL;
}

TEST(ready_descriptor_nobody_waits_for) { check_run(ready_but_not_waited_for, NULL); }

/* A descriptor closed with plait_close() by a thread while a scheduler keeps its
 * registration, and its number reused: the scheduler's next wait is served. */
static void *wait_on_reused_after_close(void *arg)
{
    (void)arg;
    int a[2];
    make_pipe(a);
    CHECK_EQ(write(a[1], "x", 1), 1);
    CHECK(plait_wait_fd(a[0], PLAIT_READABLE, SOON()) & PLAIT_READABLE);
    int number = a[0];
    pthread_t th;
    thread_start(&th, close_there, &a[0]); /* plait_close() from a plain thread */
    thread_join(th);
    close(a[1]);
    int b[2];
    make_pipe(b);
    if (b[0] != number) {
        CHECK_EQ(dup3(b[0], number, O_CLOEXEC), number);
        close(b[0]);
        b[0] = number;
    }
    CHECK_EQ(write(b[1], "y", 1), 1);
    CHECK(plait_wait_fd(b[0], PLAIT_READABLE, SOON()) & PLAIT_READABLE);
    char c;
    CHECK_EQ(plait_read(b[0], &c, 1, SOON()), 1);
    CHECK_EQ(c, 'y');
    close(b[0]);
    close(b[1]);
    return NULL;
}

TEST(descriptor_closed_elsewhere_and_reused) { check_run(wait_on_reused_after_close, NULL); }

/* A socket whose file stays open elsewhere (a dup, as a forked child's copy would keep
 * it) after its number is closed — with plait_close() or close(2) — while data keeps
 * coming: the scheduler, sleeping in the poller, must not spin on reports for it. */
static void *closed_but_open_elsewhere(void *arg)
{
    int plain_close = INT(arg);
    int idle[2];
    make_pipe(idle);
    plait_task idler;
    CHECK_EQ(plait_spawn(&idler, wait_read, &idle[0]), 0);
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    int other = dup(sv[0]);
    CHECK(other >= 0);
    message_writer m = {.fd = sv[1], .text = "a"};
    plait_task w;
    CHECK_EQ(plait_spawn(&w, write_message, &m), 0); /* after the read below waits */
    char c;
    CHECK_EQ(plait_read(sv[0], &c, 1, SOON()), 1);
    CHECK_EQ(plait_join(w, NULL, SOON()), 0);
    if (plain_close)
        CHECK_EQ(close(sv[0]), 0);
    else
        CHECK_EQ(plait_close(sv[0]), 0);
    CHECK_EQ(write(sv[1], "b", 1), 1); /* readable, through the copy */
    int64_t cpu = thread_cpu_ns();
    CHECK_EQ(plait_sleep(200 * PLAIT_MS), 0);
    CHECK(thread_cpu_ns() - cpu < 50 * PLAIT_MS);
    CHECK_EQ(read(other, &c, 1), 1);
    CHECK_EQ(c, 'b');
    CHECK_EQ(plait_cancel(idler), 0);
    CHECK_EQ(plait_join(idler, NULL, SOON()), -ECANCELED);
    close(other);
    close(sv[1]);
    close(idle[0]);
    close(idle[1]);
    return NULL;
}

TEST(plait_close_of_a_file_open_elsewhere) { check_run(closed_but_open_elsewhere, ARG(0)); }
TEST(plain_close_of_a_file_open_elsewhere) { check_run(closed_but_open_elsewhere, ARG(1)); }

typedef struct file_writer {
    int fd;
    char fill;
} file_writer;

enum { FILE_WRITES = 400, FILE_BLOCK = 4096 };

static void *write_blocks(void *arg)
{
    file_writer *w = arg;
    char block[FILE_BLOCK];
    memset(block, w->fill, sizeof block);
    for (int i = 0; i < FILE_WRITES; i++)
        CHECK_EQ(plait_write_all(w->fd, block, sizeof block, NULL, SOON()), 0);
    return NULL;
}

/* Two coroutines append blocks to one regular file while a third keeps the scheduler
 * busy: no block overwrites another (write(2) takes the file position under a lock; a
 * write made from an io_uring would not). */
static void *two_writers_of_one_file(void *arg)
{
    (void)arg;
    char path[] = "/tmp/plait-fdio-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    atomic_int stop = 0;
    plait_task spinner, t[2];
    CHECK_EQ(plait_spawn(&spinner, busy, &stop), 0);
    file_writer w[2] = {{fd, 'a'}, {fd, 'b'}};
    for (int i = 0; i < 2; i++)
        CHECK_EQ(plait_spawn(&t[i], write_blocks, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(plait_join(t[i], NULL, SOON()), 0);
    atomic_store(&stop, 1);
    CHECK_EQ(plait_join(spinner, NULL, SOON()), 0);
    CHECK_EQ(lseek(fd, 0, SEEK_END), (off_t)2 * FILE_WRITES * FILE_BLOCK);
    close(fd);
    return NULL;
}

TEST(coroutines_writing_one_file) { check_run(two_writers_of_one_file, NULL); }

/* ---- a read or write in another scheduler's ring when plait_close() comes ---- */

typedef struct queued_transfer {
    int fd;             /* what the transfer reads or writes */
    int writing;
    bool reread;        /* the holder reads fd itself once resumed */
    ssize_t r;          /* the transfer's result */
    ssize_t reread_r;   /* the holder's read's */
    char got[16];
    sem_t queued, resume;
} queued_transfer;

static void *transfer_once(void *arg)
{
    queued_transfer *q = arg;
    q->r = q->writing ? plait_write(q->fd, "secret", 6, SOON())
                      : plait_read(q->fd, q->got, sizeof q->got, SOON());
    return NULL;
}

/* Runs once transfer_once waits (io_uring: its request is queued in the ring, not yet
 * handed to the kernel) and holds the scheduler's thread until the test says; then,
 * if asked, reads fd before transfer_once has run again. */
static void *hold_the_thread(void *arg)
{
    queued_transfer *q = arg;
    CHECK_EQ(sem_post(&q->queued), 0);
    while (sem_wait(&q->resume) < 0 && errno == EINTR) {
    }
    if (q->reread)
        q->reread_r = plait_read(q->fd, q->got, sizeof q->got, SOON());
    return NULL;
}

static void *transfer_then_hold(void *arg)
{
    queued_transfer *q = arg;
    /* the poller's table holds fd: the transfer's EAGAIN is remembered there */
    if (q->reread)
        CHECK_EQ(plait_wait_fd(q->fd, PLAIT_READABLE, plait_deadline_in(PLAIT_MS)), -ETIMEDOUT);
    plait_task t[2];
    CHECK_EQ(plait_spawn(&t[0], transfer_once, arg), 0);
    CHECK_EQ(plait_spawn(&t[1], hold_the_thread, arg), 0);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(plait_join(t[i], NULL, SOON()), 0);
    return NULL;
}

/* A coroutine reads (an empty pipe) or writes (a pipe with room) while another of its
 * scheduler is ready; before that scheduler goes on, a thread closes the descriptor
 * with plait_close() and its number comes back as another pipe.  The transfer must not
 * reach the new pipe: a read would take its bytes, a write would put ours there.
 * reread: the other coroutine then reads the new pipe at once, before the first has
 * run again: the first's read, ended, must not make that one -EBUSY (as it did). */
static void queued_transfer_then_closed(int writing, bool reread)
{
    int old[2], fresh[2];
    make_pipe(old);
    make_pipe(fresh);
    queued_transfer q = {.fd = old[writing], .writing = writing, .reread = reread};
    CHECK_EQ(sem_init(&q.queued, 0, 0), 0);
    CHECK_EQ(sem_init(&q.resume, 0, 0), 0);
    sched_thread st;
    sched_thread_start(&st, transfer_then_hold, &q);
    while (sem_wait(&q.queued) < 0 && errno == EINTR) {
    }
    CHECK_EQ(plait_close(q.fd), 0);
    CHECK_EQ(write(fresh[1], "private", 7), 7);
    CHECK_EQ(dup3(fresh[writing], q.fd, O_CLOEXEC), q.fd); /* the number, reused */
    close(fresh[writing]);
    fresh[writing] = q.fd;
    CHECK_EQ(sem_post(&q.resume), 0);
    sched_thread_join(&st);
    char got[16] = {0};
    if (writing) {
        /* written before the close (epoll: at once), or not at all */
        CHECK(q.r == 6 || q.r == -EBADF);
        CHECK_EQ(read(old[0], got, sizeof got), q.r == 6 ? 6 : 0);
        CHECK_EQ(read(fresh[0], got, sizeof got), 7);
        CHECK_EQ(memcmp(got, "private", 7), 0);
    } else if (reread) {
        CHECK_EQ(q.r, -EBADF);
        CHECK_EQ(q.reread_r, 7);
        CHECK_EQ(memcmp(q.got, "private", 7), 0);
    } else {
        CHECK_EQ(q.r, -EBADF);
        CHECK_EQ(read(fresh[0], got, sizeof got), 7);
        CHECK_EQ(memcmp(got, "private", 7), 0);
    }
    CHECK_EQ(read(fresh[0], got, sizeof got), -1); /* and nothing else came */
    close(old[!writing]);
    close(fresh[0]);
    close(fresh[1]);
    sem_destroy(&q.queued);
    sem_destroy(&q.resume);
}

TEST(read_queued_in_another_ring_then_closed) { queued_transfer_then_closed(0, false); }
TEST(write_queued_in_another_ring_then_closed) { queued_transfer_then_closed(1, false); }
TEST(number_closed_elsewhere_and_reused_is_read_at_once) { queued_transfer_then_closed(0, true); }

/* plait_close closes: when it returns the peer sees the hang-up, however much other
 * work the kernel has due.  A coroutine waits to read sv[0] (its io_uring watch holds
 * the socket open), 100 other watched eventfds become ready, then plait_close(sv[0]).
 * (The watch's removal was only handed to the kernel; on a DEFER_TASKRUN ring the
 * kernel finishes a few dozen items per entry, the removal behind the 100 events, so
 * the socket stayed open until the scheduler's next wait.) */
typedef struct ready_waiter {
    int fd;
    int r;
} ready_waiter;

static void *wait_ready(void *arg)
{
    ready_waiter *w = arg;
    w->r = plait_wait_fd(w->fd, PLAIT_READABLE, SOON());
    return NULL;
}

enum { DUE = 100 };

static void *close_with_events_due(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    static ready_waiter ev[DUE];
    static plait_task et[DUE];
    for (int i = 0; i < DUE; i++) {
        ev[i].fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        CHECK(ev[i].fd >= 0);
        CHECK_EQ(plait_spawn(&et[i], wait_ready, &ev[i]), 0);
    }
    ready_waiter c = {.fd = sv[0]};
    plait_task ct;
    CHECK_EQ(plait_spawn(&ct, wait_ready, &c), 0);
    settle(); /* every watch is written */
    /* a wait that ends at once, as the scheduler has entered the kernel: the watches
     * went with it */
    CHECK_EQ(plait_wait_fd(sv[1], PLAIT_WRITABLE, SOON()), PLAIT_WRITABLE);
    for (int i = 0; i < DUE; i++)
        CHECK_EQ(eventfd_write(ev[i].fd, 1), 0);
    CHECK_EQ(plait_close(sv[0]), 0);
    struct pollfd pfd = {.fd = sv[1], .events = POLLIN | POLLRDHUP};
    CHECK_EQ(poll(&pfd, 1, 0), 1); /* the peer sees the close at once */
    CHECK(pfd.revents & (POLLHUP | POLLRDHUP));
    CHECK_EQ(plait_join(ct, NULL, SOON()), 0);
    CHECK_EQ(c.r, -EBADF);
    for (int i = 0; i < DUE; i++) {
        CHECK_EQ(plait_join(et[i], NULL, SOON()), 0);
        CHECK_EQ(ev[i].r, PLAIT_READABLE);
        CHECK_EQ(plait_close(ev[i].fd), 0);
    }
    CHECK_EQ(plait_close(sv[1]), 0);
    return NULL;
}

TEST(close_closes_with_many_events_due) { check_run(close_with_events_due, NULL); }

/* A call on a descriptor closed before it began, whose number is the lowest free one:
 * the call makes its poller (or a thread its wake-up descriptor) before its try, and
 * that takes the number.  The call is -EBADF; it read, and waited on, plait's own
 * descriptor (until its deadline) when that was not looked for. */
static int closed_number;

static void *read_the_closed_number(void *arg)
{
    (void)arg;
    char b[8];
    return ARG(plait_read(closed_number, b, sizeof b, plait_deadline_in(2 * PLAIT_SEC)));
}

static void *read_the_closed_number_in_a_coroutine(void *arg)
{
    void *v = NULL;
    int r = plait_run(read_the_closed_number, arg, &v);
    return ARG(r < 0 ? r : INT(v));
}

TEST(a_call_on_a_number_plait_took_since_is_ebadf)
{
    for (int in_coroutine = 0; in_coroutine < 2; in_coroutine++) {
        int p[2];
        CHECK_EQ(pipe(p), 0);
        CHECK_EQ(close(p[0]), 0);
        CHECK_EQ(close(p[1]), 0);
        closed_number = p[0]; /* now the lowest free number (the test opens nothing else) */
        plait_task t;
        CHECK_EQ(plait_thread_start(&t, in_coroutine ? read_the_closed_number_in_a_coroutine
                                                      : read_the_closed_number,
                                    NULL, NULL),
                 0);
        CHECK_EQ(plait_join(t, NULL, SOON()), -EBADF); /* the call's failure */
    }
}

RUN_TESTS(CASE(bad_input), CASE(a_call_on_a_number_plait_took_since_is_ebadf), CASE(close_closes_with_many_events_due), CASE(bad_descriptor_in_a_coroutine), CASE(past_deadline_tries_once), CASE(deadline_just_passed_in_a_coroutine), CASE(deadline_just_passed_on_a_socket), CASE(socket_number_reused_by_a_pipe), CASE(socket_number_reused_by_a_pipe_then_written), CASE(written_in_the_ring_while_the_table_grows), CASE(seqpacket_records_keep_their_bounds), CASE(sigpipe_in_the_ring_and_out_of_it), CASE(thread_waits_with_deadline),
          CASE(end_of_file_and_broken_pipe), CASE(regular_file_is_always_ready),
          CASE(set_nonblock), CASE(coroutines_share_a_pipe), CASE(coroutine_woken_by_a_thread),
          CASE(deadlines_in_any_order_while_asleep), CASE(one_writer_per_descriptor),
          CASE(one_reader_per_descriptor), CASE(reader_and_writer_on_one_socket),
          CASE(descriptors_served_under_load), CASE(many_waiting_coroutines),
          CASE(descriptor_number_reused), CASE(cancel_a_thread_blocked_on_a_read),
          CASE(wait_for_either_direction), CASE(writes_of_ready_coroutines_arrive_whole),
          CASE(writers_of_one_descriptor_keep_their_order), CASE(full_pipe_write_times_out),
          CASE(full_pipe_write_cancelled), CASE(full_pipe_write_closed),
          CASE(full_pipe_write_gets_room), CASE(file_writes_beside_ready_coroutines),
          CASE(fork_beside_a_write_in_the_ring), CASE(fork_while_another_thread_closes), CASE(ready_descriptor_nobody_waits_for),
          CASE(descriptor_closed_elsewhere_and_reused), CASE(plait_close_of_a_file_open_elsewhere),
          CASE(plain_close_of_a_file_open_elsewhere), CASE(coroutines_writing_one_file),
          CASE(read_queued_in_another_ring_then_closed),
          CASE(write_queued_in_another_ring_then_closed),
          CASE(number_closed_elsewhere_and_reused_is_read_at_once),
          CASE(cancelled_coroutine_transfers_what_needs_no_wait),
          CASE(coroutines_wait_on_one_regular_file), CASE(file_number_reused_by_a_pipe_waits),
          CASE(refused_read_after_a_short_one_is_answered_at_once),
          CASE(lengths_too_large), CASE(each_waiter_is_told_its_own_direction),
          CASE(a_fifo_on_the_number_of_a_drained_pipe_reads_at_once))
