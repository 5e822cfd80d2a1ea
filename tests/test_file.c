/* test_file.c — files read and written without blocking the scheduler: results,
 * positions, bad input, and the rule that an operation once started is waited for to
 * its end even when the coroutine is cancelled meanwhile.
 *
 * A FIFO makes the blocking visible without timing: opening or reading one blocks
 * until a writer comes, and the writer is another coroutine of the same scheduler, so
 * the tests would hang (and fail by their deadline) if the file call blocked the
 * scheduler's thread. */
#include "helpers.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>

static char dir[] = "/tmp/plait-file-XXXXXX";

static void path_in_dir(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

static void check_rw(void)
{
    char path[128];
    path_in_dir(path, sizeof path, "data");
    int fd = plait_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    CHECK_EQ(plait_file_write(fd, "hello, ", 7, -1), 7);
    CHECK_EQ(plait_file_write(fd, "world", 5, -1), 5);
    CHECK_EQ(plait_file_write(fd, "W", 1, 7), 1); /* at an offset: the position stays */
    CHECK_EQ(plait_file_sync(fd), 0);
    char buf[32] = "";
    CHECK_EQ(plait_file_read(fd, buf, sizeof buf, 0), 12);
    CHECK(memcmp(buf, "hello, World", 12) == 0);
    CHECK_EQ(plait_file_read(fd, buf, sizeof buf, -1), 0); /* at the end already */
    CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
    CHECK_EQ(plait_file_read(fd, buf, 5, -1), 5);
    CHECK_EQ(plait_file_read(fd, buf, sizeof buf, -1), 7);
    CHECK(memcmp(buf, ", World", 7) == 0);
    CHECK_EQ(close(fd), 0);
    CHECK_EQ(unlink(path), 0);
}

static void *rw_main(void *p)
{
    (void)p;
    check_rw();
    return NULL;
}

TEST(read_write_from_a_coroutine) { check_run(rw_main, NULL); }

TEST(read_write_from_a_thread) { check_rw(); }

static void check_bad_input(void)
{
    char buf[4];
    CHECK_EQ(plait_file_open(NULL, O_RDONLY, 0), -EINVAL);
    CHECK_EQ(plait_file_open("/nonexistent/plait", O_RDONLY, 0), -ENOENT);
    CHECK_EQ(plait_file_read(0, NULL, 4, 0), -EINVAL);
    CHECK_EQ(plait_file_write(1, NULL, 4, 0), -EINVAL);
    CHECK_EQ(plait_file_read(-1, buf, sizeof buf, 0), -EBADF);
    CHECK_EQ(plait_file_write(-1, buf, sizeof buf, -1), -EBADF);
    CHECK_EQ(plait_file_sync(-1), -EBADF);
    int fd = plait_file_open("/dev/null", O_RDONLY, 0);
    CHECK(fd >= 0);
    CHECK_EQ(plait_file_write(fd, "x", 1, -1), -EBADF); /* not open for writing */
    CHECK_EQ(plait_file_read(fd, buf, 0, -1), 0);
    CHECK_EQ(close(fd), 0);
}

static void *bad_main(void *p)
{
    (void)p;
    check_bad_input();
    return NULL;
}

TEST(bad_input_from_a_coroutine) { check_run(bad_main, NULL); }
TEST(bad_input_from_a_thread) { check_bad_input(); }

/* ---- the scheduler goes on while a call waits ---- */

typedef struct {
    char path[128];
    int fd;
    ssize_t got;
    char buf[16];
    plait_event *opened;
} fifo_ctx;

static void *fifo_reader(void *p)
{
    fifo_ctx *c = p;
    c->fd = plait_file_open(c->path, O_RDONLY, 0); /* blocks until a writer opens */
    CHECK_EQ(plait_event_set(c->opened), 0);
    if (c->fd >= 0)
        c->got = plait_file_read(c->fd, c->buf, sizeof c->buf, -1); /* until it writes */
    return NULL;
}

static void *fifo_main(void *p)
{
    fifo_ctx *c = p;
    plait_task t;
    CHECK_EQ(plait_spawn(&t, fifo_reader, c), 0);
    settle(); /* the reader is in its open, on the pool */
    int w = plait_file_open(c->path, O_WRONLY, 0);
    CHECK(w >= 0);
    CHECK_EQ(plait_event_wait(c->opened, SOON()), 0);
    settle(); /* the reader is in its read, on the pool */
    CHECK_EQ(plait_file_write(w, "ping", 4, -1), 4);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(c->got, 4);
    CHECK(memcmp(c->buf, "ping", 4) == 0);
    CHECK_EQ(close(w), 0);
    CHECK_EQ(close(c->fd), 0);
    return NULL;
}

TEST(scheduler_runs_while_a_call_waits)
{
    fifo_ctx c = {.fd = -1, .got = -1};
    path_in_dir(c.path, sizeof c.path, "fifo1");
    CHECK_EQ(mkfifo(c.path, 0600), 0);
    CHECK_EQ(plait_event_create(&c.opened), 0);
    check_run(fifo_main, &c);
    CHECK_EQ(plait_event_destroy(c.opened), 0);
    CHECK_EQ(unlink(c.path), 0);
}

/* ---- cancellation ---- */

typedef struct {
    char path[128];
    int fd, after;
} cancel_ctx;

static void *cancelled_opener(void *p)
{
    cancel_ctx *c = p;
    c->fd = plait_file_open(c->path, O_RDONLY, 0);
    c->after = plait_sleep(10 * PLAIT_SEC); /* the next wait */
    return NULL;
}

/* Cancelled while asleep, then calls: the call is not started at all. */
static void *opener_after_cancel(void *p)
{
    cancel_ctx *c = p;
    CHECK_EQ(plait_sleep(PLAIT_FOREVER), -ECANCELED);
    c->fd = plait_file_open(c->path, O_RDONLY, 0);
    return NULL;
}

/* Whether a thread of this process is in system call nr (blocked in it). */
static bool a_thread_is_in(long nr)
{
    DIR *d = opendir("/proc/self/task");
    CHECK(d != NULL);
    bool found = false;
    for (struct dirent *e; d && !found && (e = readdir(d));) {
        char path[320];
        snprintf(path, sizeof path, "/proc/self/task/%s/syscall", e->d_name);
        FILE *f = fopen(path, "r");
        long got;
        if (f && fscanf(f, "%ld", &got) == 1 && got == nr)
            found = true;
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    return found;
}

/* Whether a thread of this process is blocked in openat.  Under qemu-user /proc shows
 * the host's system call numbers (the build says which: tests/CMakeLists.txt). */
static bool in_openat(void)
{
#ifdef PLAIT_TEST_HOST_SYS_OPENAT
    if (a_thread_is_in(PLAIT_TEST_HOST_SYS_OPENAT))
        return true;
#endif
    return a_thread_is_in(SYS_openat);
}

static void *cancel_main(void *p)
{
    cancel_ctx *c = p;
    plait_task t;
    CHECK_EQ(plait_spawn(&t, cancelled_opener, c), 0);
    /* it waits for its open, which blocks on the pool: started, not merely queued */
    int64_t until = plait_deadline_in(10 * PLAIT_SEC);
    while (!in_openat() && plait_now() < until)
        CHECK_EQ(plait_sleep(PLAIT_SEC / 1000), 0);
    CHECK(in_openat());
    CHECK_EQ(plait_cancel(t), 0);
    settle();
    int w = plait_file_open(c->path, O_WRONLY, 0); /* now the open can finish */
    CHECK(w >= 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
    CHECK(c->fd >= 0);              /* its result was not lost */
    CHECK_EQ(c->after, -ECANCELED); /* the cancellation shows at the next wait */
    CHECK_EQ(close(w), 0);
    if (c->fd >= 0)
        CHECK_EQ(close(c->fd), 0);

    /* a cancellation before the call: not started at all (else it would block) */
    plait_task u;
    CHECK_EQ(plait_spawn(&u, opener_after_cancel, c), 0);
    settle();
    CHECK_EQ(plait_cancel(u), 0);
    CHECK_EQ(plait_join(u, NULL, SOON()), -ECANCELED);
    CHECK_EQ(c->fd, -ECANCELED);
    return NULL;
}

TEST(cancellation_does_not_lose_a_started_call)
{
    cancel_ctx c = {.fd = -1};
    path_in_dir(c.path, sizeof c.path, "fifo2");
    CHECK_EQ(mkfifo(c.path, 0600), 0);
    check_run(cancel_main, &c);
    CHECK_EQ(unlink(c.path), 0);
}

/* The same from a thread, where the call is made in place: a plait thread cancelled
 * while it runs does not make it either. */
static atomic_int writer_running, writer_r = 1;

static void *writer_after_cancel(void *p)
{
    int fd = INT(p);
    atomic_store(&writer_running, 1);
    while (!plait_cancelled())
        sched_yield();
    atomic_store(&writer_r, (int)plait_file_write(fd, "x", 1, -1)); /* (its value is lost) */
    return NULL;
}

TEST(cancelled_thread_starts_no_call)
{
    char path[128];
    path_in_dir(path, sizeof path, "untouched");
    int fd = plait_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, writer_after_cancel, ARG(fd), NULL), 0);
    while (!atomic_load(&writer_running)) /* cancelled before it ran, it would not run */
        sched_yield();
    CHECK_EQ(plait_cancel(t), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
    CHECK_EQ(atomic_load(&writer_r), -ECANCELED);
    struct stat st;
    CHECK_EQ(fstat(fd, &st), 0);
    CHECK_EQ(st.st_size, 0); /* the write was not made */
    CHECK_EQ(close(fd), 0);
    CHECK_EQ(unlink(path), 0);
}

/* Cancelled while its call waits in the pool's queue (every worker held): the call
 * had not started, so it is -ECANCELED at once and never made, as a cancellation that
 * comes first is. */
typedef struct {
    plait_event *go;
    plait_sem *started;
    int fd;
    ssize_t wrote;
} queued_ctx;

static void *hold_a_worker(void *p)
{
    queued_ctx *c = p;
    CHECK_EQ(plait_sem_release(c->started), 0);
    CHECK_EQ(plait_event_wait(c->go, SOON()), 0);
    return NULL;
}

static void *queued_writer(void *p)
{
    queued_ctx *c = p;
    c->wrote = plait_file_write(c->fd, "x", 1, -1);
    return NULL;
}

/* Hold every worker of the default pool (held[], their number), then start writer: its
 * call waits in the pool's queue. */
static unsigned hold_the_pool_then_write(queued_ctx *c, plait_task *held, plait_fn writer,
                                         plait_task *t)
{
    plait_pool *pool = plait_pool_default();
    CHECK(pool != NULL);
    unsigned n = plait_pool_threads(pool);
    for (unsigned i = 0; i < n; i++)
        CHECK_EQ(plait_pool_submit(pool, &held[i], hold_a_worker, c), 0);
    for (unsigned i = 0; i < n; i++)
        CHECK_EQ(plait_sem_acquire(c->started, SOON()), 0);
    CHECK_EQ(plait_spawn(t, writer, c), 0);
    settle(); /* its write waits in the queue */
    return n;
}

static void *queued_main(void *p)
{
    queued_ctx *c = p;
    plait_task held[PLAIT_POOL_THREADS_MAX], t;
    unsigned n = hold_the_pool_then_write(c, held, queued_writer, &t);
    int64_t start = plait_now();
    CHECK_EQ(plait_cancel(t), 0);
    int r = plait_join(t, NULL, plait_deadline_in(PLAIT_SEC));
    CHECK_EQ(r, -ECANCELED);
    CHECK_PROMPT(start);
    CHECK_EQ(plait_event_set(c->go), 0); /* the pool is free again */
    if (r == -ETIMEDOUT)
        CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
    CHECK_EQ(plait_wait_all(held, n, NULL, NULL, SOON()), 0);
    CHECK_EQ(c->wrote, -ECANCELED);
    return NULL;
}

TEST(cancelled_while_queued_starts_no_call)
{
    char path[128];
    path_in_dir(path, sizeof path, "queued");
    queued_ctx c = {.wrote = -1};
    c.fd = plait_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(c.fd >= 0);
    CHECK_EQ(plait_event_create(&c.go), 0);
    CHECK_EQ(plait_sem_create(&c.started, 0), 0);
    check_run(queued_main, &c);
    struct stat st;
    CHECK_EQ(fstat(c.fd, &st), 0);
    CHECK_EQ(st.st_size, 0); /* the write was not made */
    CHECK_EQ(plait_event_destroy(c.go), 0);
    CHECK_EQ(plait_sem_destroy(c.started), 0);
    CHECK_EQ(close(c.fd), 0);
    CHECK_EQ(unlink(path), 0);
}

/* plait_close of the descriptor while its write waits in the pool's queue (every worker
 * held): the write is withdrawn, -EBADF at once, and never made, neither into the file
 * closed nor into the one that took its number.  (Failed first: the close did not find
 * the queued call, which wrote "SECRET" into the new file once a worker was free;
 * session 53's I/O audit.) */
static void *queued_secret_writer(void *p)
{
    queued_ctx *c = p;
    c->wrote = plait_file_write(c->fd, "SECRET", 6, 0);
    return NULL;
}

static void *closed_main(void *p)
{
    queued_ctx *c = p;
    plait_task held[PLAIT_POOL_THREADS_MAX], t;
    unsigned n = hold_the_pool_then_write(c, held, queued_secret_writer, &t);
    int64_t start = plait_now();
    CHECK_EQ(plait_close(c->fd), 0);
    char path[128];
    path_in_dir(path, sizeof path, "took-the-number");
    int taker = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK_EQ(taker, c->fd); /* the lowest number free */
    int r = plait_join(t, NULL, plait_deadline_in(PLAIT_SEC));
    CHECK_EQ(r, 0);
    CHECK_PROMPT(start);
    CHECK_EQ(plait_event_set(c->go), 0); /* the pool is free again */
    if (r == -ETIMEDOUT)
        CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(plait_wait_all(held, n, NULL, NULL, SOON()), 0);
    CHECK_EQ(c->wrote, -EBADF);
    struct stat st;
    CHECK_EQ(fstat(taker, &st), 0);
    CHECK_EQ(st.st_size, 0); /* nothing written into the file that took the number */
    CHECK_EQ(close(taker), 0);
    CHECK_EQ(unlink(path), 0);
    return NULL;
}

TEST(closed_while_queued_makes_no_call)
{
    char path[128];
    path_in_dir(path, sizeof path, "closed");
    queued_ctx c = {.wrote = -1};
    c.fd = plait_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(c.fd >= 0);
    CHECK_EQ(plait_event_create(&c.go), 0);
    CHECK_EQ(plait_sem_create(&c.started, 0), 0);
    check_run(closed_main, &c);
    struct stat st;
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_size, 0); /* nor into the file closed */
    CHECK_EQ(plait_event_destroy(c.go), 0);
    CHECK_EQ(plait_sem_destroy(c.started), 0);
    CHECK_EQ(unlink(path), 0);
}

/* plait_close of the descriptor while its write has started (the worker is at its
 * pwrite, held there by the wrapper below, not yet in the kernel): the write never
 * reaches a file that takes the number.  The number stays taken (a placeholder) until
 * the call has ended, which here is -EBADF, nothing written anywhere; then it is free.
 * (Failed first: the worker made the call on the number, and wrote into the new file;
 * a review found it.) */
ssize_t __real_pwrite(int fd, const void *buf, size_t n, off_t offset);
ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t offset);

static struct {
    atomic_int hold; /* 1: the next pwrite waits for go, having said it is in */
    atomic_int in, go;
    int fd;
    ssize_t wrote;
} sp;

ssize_t __wrap_pwrite(int fd, const void *buf, size_t n, off_t offset)
{
    if (atomic_exchange(&sp.hold, 0)) {
        atomic_store(&sp.in, 1);
        int64_t until = SOON();
        while (!atomic_load(&sp.go) && plait_now() < until)
            sched_yield();
    }
    return __real_pwrite(fd, buf, n, offset);
}

static void *started_writer(void *p)
{
    (void)p;
    sp.wrote = plait_file_write(sp.fd, "X", 1, 0);
    return NULL;
}

static void *started_main(void *p)
{
    const char *taker_path = p;
    atomic_store(&sp.hold, 1);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, started_writer, NULL), 0);
    int64_t until = SOON();
    while (!atomic_load(&sp.in) && plait_now() < until)
        CHECK_EQ(plait_sleep_until(plait_deadline_in(PLAIT_MS)), 0);
    CHECK(atomic_load(&sp.in));
    CHECK_EQ(plait_close(sp.fd), 0);
    int taker = open(taker_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(taker >= 0 && taker != sp.fd); /* the number is not free while the call runs */
    CHECK_EQ(plait_close(sp.fd), -EBADF); /* closed already: the placeholder stays */
    /* a child forked now has the number free: no call of its own keeps it */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        _exit(fcntl(sp.fd, F_GETFD) < 0 && errno == EBADF ? 0 : 1);
    int status = reap_within(pid, 10);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    atomic_store(&sp.go, 1);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(sp.wrote, -EBADF);
    struct stat st;
    CHECK_EQ(fstat(taker, &st), 0);
    CHECK_EQ(st.st_size, 0); /* nothing written into another file */
    /* the call has ended: the number is free again */
    int next = open(taker_path, O_RDONLY | O_CLOEXEC);
    CHECK_EQ(next, sp.fd);
    CHECK_EQ(close(next), 0);
    CHECK_EQ(close(taker), 0);
    return NULL;
}

TEST(closed_once_started_reaches_no_file_that_took_the_number)
{
    char path[128], taker_path[128];
    path_in_dir(path, sizeof path, "began-with");
    path_in_dir(taker_path, sizeof taker_path, "took-the-number-later");
    sp.fd = plait_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(sp.fd >= 0);
    check_run(started_main, taker_path);
    struct stat st;
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_size, 0); /* nor into the file closed: it never reached the kernel */
    CHECK_EQ(unlink(path), 0);
    CHECK_EQ(unlink(taker_path), 0);
}

/* A fork while other threads' coroutines make file calls: the child's own file calls
 * work.  The list of calls a close may withdraw has a lock those calls take; held by
 * another thread at the fork, it was held for ever in the child, whose first file call
 * spun on it (a review found it: a few dozen forks showed it). */
static struct {
    int fd;
    atomic_int stop;
} fk;

static void *fk_reader(void *p)
{
    (void)p;
    char b[1];
    while (!atomic_load(&fk.stop))
        CHECK_EQ(plait_file_read(fk.fd, b, 1, 0), 1);
    return NULL;
}

static void *fk_readers(void *p)
{
    (void)p;
    plait_task t[8];
    for (int i = 0; i < 8; i++)
        CHECK_EQ(plait_spawn(&t[i], fk_reader, NULL), 0);
    CHECK_EQ(plait_wait_all(t, 8, NULL, NULL, PLAIT_FOREVER), 0);
    return NULL;
}

static void *fk_scheduler(void *p)
{
    CHECK_EQ(plait_run(fk_readers, p, NULL), 0);
    return NULL;
}

static void *fk_child_read(void *p)
{
    (void)p;
    char b[1];
    return plait_file_read(fk.fd, b, 1, 0) == 1 ? NULL : PLAIT_FAIL(EIO);
}

TEST(a_fork_beside_file_calls_leaves_the_child_its_own)
{
    if (CHECK_FORK_BESIDE_ALLOCATION_HANGS) { /* (these threads allocate as they go) */
        CHECK_SKIP("forks beside threads that allocate: a sanitizer's allocator is not "
                   "fork-safe");
        return;
    }
#ifdef PLAIT_TEST_EMULATED
    CHECK_SKIP("qemu-user does not emulate a fork beside running threads (it aborts)");
    return;
#endif
    char path[128];
    path_in_dir(path, sizeof path, "forked");
    fk.fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fk.fd >= 0 && write(fk.fd, "x", 1) == 1);
    atomic_store(&fk.stop, 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        thread_start(&th[i], fk_scheduler, NULL);
    int64_t until = plait_deadline_in(3 * PLAIT_SEC);
    for (int i = 0; i < 300 && plait_now() < until; i++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0)
            _exit(plait_run(fk_child_read, NULL, NULL) == 0 ? 0 : 1);
        int status = reap_within(pid, 10);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            CHECK(!"a child's file call failed or never ended");
            break;
        }
    }
    atomic_store(&fk.stop, 1);
    for (int i = 0; i < 2; i++)
        thread_join(th[i]);
    CHECK_EQ(close(fk.fd), 0);
    CHECK_EQ(unlink(path), 0);
}

static void setup(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
}

static void teardown(void) { rmdir(dir); }

int main(void)
{
    setup();
    static const check_case cases[] = {
        CASE(read_write_from_a_coroutine), CASE(read_write_from_a_thread),
        CASE(bad_input_from_a_coroutine), CASE(bad_input_from_a_thread),
        CASE(scheduler_runs_while_a_call_waits), CASE(cancellation_does_not_lose_a_started_call),
        CASE(cancelled_thread_starts_no_call), CASE(cancelled_while_queued_starts_no_call),
        CASE(closed_once_started_reaches_no_file_that_took_the_number),
        CASE(a_fork_beside_file_calls_leaves_the_child_its_own),
        CASE(closed_while_queued_makes_no_call)};
    int r = check_main(cases, sizeof cases / sizeof cases[0]);
    teardown();
    return r;
}
