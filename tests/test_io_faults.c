/*
 * test_io_faults.c — what plait does when the kernel refuses in ways it seldom does:
 * an io_uring that takes no request while a coroutine's read must be taken back, or
 * just when a queued write must go ahead of a write(2) or a removed watch let its
 * file go; and an accept that reports the network error of the connection it took.
 *
 * And a poll that does not wait yet fails with EINTR (a signal handler ran meanwhile).
 *
 * And completions the kernel drops (io_uring_enter's -EBADR: no memory for its overflow
 * list): each wait whose completion was lost still ends.
 *
 * The failures are made on demand: this test is linked with --wrap=syscall,
 * --wrap=accept4 and --wrap=poll (tests/CMakeLists.txt), so the library's calls pass
 * through the wrappers below, which fail while told to and otherwise make the real call.
 */
#define CHECK_WRAP_SYSCALL
#include "fork_child.h"

#include <linux/io_uring.h>
#include <poll.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <semaphore.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* ---- io_uring_enter, refused on demand ---- */

static atomic_int enter_refusals;      /* calls still to refuse; -1: every one */
static int enter_refusal_errno;
static atomic_bool full_ring_refused;  /* a refused call held a full submission ring */
static unsigned ring_entries;          /* the submission ring's size, seen at its setup */
static bool refuse_6_1_flags;          /* io_uring_setup acts as a kernel before 6.1 */
/* the scheduler's next sleep in io_uring_enter first lets another thread post to its
 * inbox (go, then done: the scheduler's eventfd is written), then goes on */
static atomic_bool post_in_next_sleep;
static sem_t post_go, post_done;
/* the next io_uring_enter that submits requests first lets another thread act
 * (pause_go), and enters once that thread is inside its act (let_the_closer_in) */
static atomic_bool pause_next_submit;
static sem_t pause_go;
static atomic_int closer_tid;  /* the other thread's, as it begins its act */
static atomic_int closer_done; /* it has ended its act */
static clockid_t closer_cpu;   /* its CPU time */

static atomic_uint last_to_submit;     /* io_uring_enter's count of requests, last call */
static atomic_uint enters;             /* io_uring_enter calls so far */
/* the next io_uring_enter after which the completion ring holds one that drop_if picks
 * takes it out, as the kernel drops a completion it has no memory to keep, and answers
 * -EBADR, as the kernel then does (once) */
static bool (*_Atomic drop_if)(const struct io_uring_cqe *cqe);
/* the first io_uring_enter after which the completion ring holds one that see_if picks
 * sets completion_seen (and see_if to NULL); the completion stays */
static bool (*_Atomic see_if)(const struct io_uring_cqe *cqe);
static atomic_bool completion_seen;
static struct io_uring_params ring_params; /* the last ring's, seen at its setup */

/* Whether ring_fd's completion ring holds one that pick picks; the first such one is
 * taken out when take says so (the older ones move up over it, and the head past it). */
static bool find_completion(int ring_fd, bool (*pick)(const struct io_uring_cqe *cqe), bool take)
{
    size_t len = ring_params.cq_off.cqes + ring_params.cq_entries * sizeof(struct io_uring_cqe);
    char *cq = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, ring_fd, IORING_OFF_CQ_RING);
    if (cq == MAP_FAILED)
        return false;
    unsigned *head = (unsigned *)(cq + ring_params.cq_off.head);
    unsigned tail = __atomic_load_n((unsigned *)(cq + ring_params.cq_off.tail), __ATOMIC_ACQUIRE);
    unsigned mask = *(unsigned *)(cq + ring_params.cq_off.ring_mask);
    struct io_uring_cqe *cqes = (struct io_uring_cqe *)(cq + ring_params.cq_off.cqes);
    bool found = false;
    for (unsigned i = *head; i != tail && !found; i++) {
        if (!pick(&cqes[i & mask]))
            continue;
        found = true;
        if (!take)
            continue;
        for (unsigned j = i; j != *head; j--)
            cqes[j & mask] = cqes[(j - 1) & mask];
        __atomic_store_n(head, *head + 1, __ATOMIC_RELEASE);
    }
    munmap(cq, len);
    return found;
}

static bool refuse_enter(unsigned to_submit)
{
    atomic_store(&last_to_submit, to_submit);
    int left = atomic_load(&enter_refusals);
    if (left == 0)
        return false;
    if (left > 0)
        atomic_fetch_sub(&enter_refusals, 1);
    if (to_submit == ring_entries)
        atomic_store(&full_ring_refused, true);
    return true;
}

static int64_t cpu_ns_of(clockid_t clock)
{
    struct timespec ts = {0, 0};
    CHECK_EQ(clock_gettime(clock, &ts), 0);
    return ts.tv_sec * PLAIT_SEC + ts.tv_nsec;
}

/* How many times thread tid has been switched off its CPU while it could run (a
 * preemption, or a sched_yield that let another thread run), from /proc; -1 when it
 * cannot be read. */
static long times_switched_out(int tid)
{
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
    FILE *f = fopen(path, "r");
    long n = -1;
    while (f && fgets(line, sizeof line, f) &&
           sscanf(line, "nonvoluntary_ctxt_switches: %ld", &n) != 1) {
    }
    if (f)
        fclose(f);
    return n;
}

/* Wait until the other thread has begun its act (a plait_close), and then until it has
 * ended it (a close that does not wait for the read being handed over), sleeps in it,
 * or is seen spinning in it until the kernel has taken the read: it has run 5 ms of its
 * own CPU time since, or been switched out 20 times while it could run (a spin that
 * yields its CPU on a busy machine runs little each time), where a few microseconds of
 * code take it into the spin.  A fixed 100 ms pause stood for this, which the other
 * thread could sleep through on a loaded machine, its close then coming after the
 * submission: a different case, which passes too. */
static void let_the_closer_in(void)
{
    if (!wait_for_flag(&closer_tid)) {
        CHECK(!"the closer never began its close");
        return;
    }
    int tid = atomic_load(&closer_tid);
    int64_t cpu_start = cpu_ns_of(closer_cpu), give_up = SOON();
    long switches_start = times_switched_out(tid);
    CHECK(switches_start >= 0);
    while (!atomic_load(&closer_done) && !thread_asleep_in_wait(tid) &&
           cpu_ns_of(closer_cpu) - cpu_start < 5 * PLAIT_MS &&
           times_switched_out(tid) - switches_start < 20) {
        if (plait_now() > give_up) {
            CHECK(!"the closer never got into its close");
            return;
        }
        nanosleep(&(struct timespec){0, PLAIT_MS}, NULL);
    }
}

static long wrapped_syscall(long n, const long a[6])
{
    if (n == __NR_io_uring_setup && refuse_6_1_flags &&
        (((const struct io_uring_params *)a[1])->flags & IORING_SETUP_DEFER_TASKRUN)) {
        errno = EINVAL;
        return -1;
    }
    if (n == __NR_io_uring_enter && (a[3] & IORING_ENTER_EXT_ARG) && a[2] == 1 &&
        atomic_exchange(&post_in_next_sleep, false)) {
        sem_post(&post_go);
        while (sem_wait(&post_done) < 0) {
        }
        __real_syscall(SYS_getpid); /* a return to user mode runs the ring's task work */
    }
    if (n == __NR_io_uring_enter && a[1] > 0 && atomic_exchange(&pause_next_submit, false)) {
        sem_post(&pause_go);
        let_the_closer_in();
    }
    if (n == __NR_io_uring_enter)
        atomic_fetch_add(&enters, 1);
    if (n == __NR_io_uring_enter && refuse_enter((unsigned)a[1])) {
        errno = enter_refusal_errno;
        return -1;
    }
    long r = real_syscall(n, a);
    if (n == __NR_io_uring_setup && r >= 0) {
        ring_params = *(const struct io_uring_params *)a[1];
        ring_entries = ring_params.sq_entries;
    }
    bool (*see)(const struct io_uring_cqe *) = atomic_load(&see_if);
    if (n == __NR_io_uring_enter && r >= 0 && see && find_completion((int)a[0], see, false)) {
        atomic_store(&see_if, NULL);
        atomic_store(&completion_seen, true);
    }
    bool (*drop)(const struct io_uring_cqe *) = atomic_load(&drop_if);
    if (n == __NR_io_uring_enter && r >= 0 && drop && find_completion((int)a[0], drop, true)) {
        atomic_store(&drop_if, NULL);
        errno = EBADR;
        return -1;
    }
    return r;
}


/* ---- a read taken back while the ring is full and the kernel refuses ---- */

typedef struct reader {
    int fd;
    char byte;
    ssize_t r;
} reader;

static void *read_one(void *arg)
{
    reader *rd = arg;
    rd->r = plait_read(rd->fd, &rd->byte, 1, PLAIT_FOREVER);
    return NULL;
}

typedef struct filler {
    int fd;
    int r;
} filler;

static void *wait_readable(void *arg)
{
    filler *f = arg;
    f->r = plait_wait_fd(f->fd, PLAIT_READABLE, PLAIT_FOREVER);
    return NULL;
}

static void *wait_writable(void *arg)
{
    filler *f = arg;
    f->r = plait_wait_fd(f->fd, PLAIT_WRITABLE, PLAIT_FOREVER);
    return NULL;
}

/* A socket pair whose sv[0] has no room to write, a reader (*rt, its outcome in r->r)
 * and a writer (*wt, in w->r) waiting on it with one watch, in the kernel. */
static void reader_and_writer_in_ring(int sv[2], filler *r, plait_task *rt, filler *w,
                                      plait_task *wt)
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    static char junk[4096];
    while (write(sv[0], junk, sizeof junk) > 0) { /* no room: the writer waits */
    }
    *r = (filler){.fd = sv[0]};
    *w = (filler){.fd = sv[0]};
    CHECK_EQ(plait_spawn(rt, wait_readable, r), 0);
    CHECK_EQ(plait_spawn(wt, wait_writable, w), 0);
    settle();
    /* a wait that ends at once, as the scheduler has entered the kernel: the watch
     * went with it */
    CHECK_EQ(plait_wait_fd(sv[1], PLAIT_WRITABLE, SOON()), PLAIT_WRITABLE);
}

enum { FILLERS = 600 }; /* more watches than the ring holds */
static filler fillers[FILLERS];
static plait_task filler_tasks[FILLERS];

/* Coroutines whose watches fill the submission ring while io_uring_enter refuses
 * (err) every call: the later watches wait for room. */
static void fill_refused_ring(int err)
{
    enter_refusal_errno = err;
    atomic_store(&full_ring_refused, false);
    atomic_store(&enter_refusals, -1);
    for (int i = 0; i < FILLERS; i++) {
        fillers[i].fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        CHECK(fillers[i].fd >= 0);
        CHECK_EQ(plait_spawn(&filler_tasks[i], wait_readable, &fillers[i]), 0);
    }
    settle();
    CHECK(atomic_load(&full_ring_refused));
}

/* Close the fillers from `first` on: each wait, armed or still waiting for room,
 * ends closed. */
static void close_fillers(int first)
{
    for (int i = first; i < FILLERS; i++) {
        CHECK_EQ(plait_close(fillers[i].fd), 0);
        CHECK_EQ(plait_join(filler_tasks[i], NULL, SOON()), 0);
        CHECK_EQ(fillers[i].r, -EBADF);
    }
}

/* A coroutine's read waits in the kernel; the watches of FILLERS coroutines fill the
 * submission ring while io_uring_enter refuses (err), so the later ones wait for room;
 * the reader is cancelled and io_uring_enter refuses `after_cancel` more calls (-1:
 * every one, and the cancellation never gets in).  The read must be taken back as
 * soon as the kernel takes requests again (it never gets data), and a watch that
 * fired meanwhile must wake its coroutine. */
typedef struct refusal {
    int err;
    int after_cancel;
} refusal;

static void *cancel_read_in_full_ring(void *arg)
{
    const refusal *how = arg;
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    reader rd = {.fd = sv[0]};
    plait_task rt;
    CHECK_EQ(plait_spawn(&rt, read_one, &rd), 0);
    CHECK_EQ(plait_yield(), 0); /* the reader runs: its read waits in the ring */
    /* a wait that ends at once, as the scheduler has entered the kernel: the read went
     * with it */
    CHECK_EQ(plait_wait_fd(sv[1], PLAIT_WRITABLE, SOON()), PLAIT_WRITABLE);

    fill_refused_ring(how->err);
    /* the first watch is in the ring: it fires once the kernel has it */
    CHECK_EQ(eventfd_write(fillers[0].fd, 1), 0);

    atomic_store(&enter_refusals, how->after_cancel);
    CHECK_EQ(plait_cancel(rt), 0);
    CHECK_EQ(plait_join(rt, NULL, SOON()), -ECANCELED);
    CHECK_EQ(rd.r, -ECANCELED);
    CHECK_EQ(plait_join(filler_tasks[0], NULL, SOON()), 0);
    CHECK_EQ(fillers[0].r, PLAIT_READABLE);
    close_fillers(1);
    CHECK_EQ(plait_close(fillers[0].fd), 0);
    CHECK_EQ(plait_close(sv[0]), 0);
    CHECK_EQ(plait_close(sv[1]), 0);
    return NULL;
}

/* The kernel refuses for a while (EAGAIN: short of memory, try again): the
 * cancellation gets into the ring once there is room, and the read ends cancelled.
 * (ur_io_cancel once waited for the read to finish without a cancellation in the
 * ring when it found no room: here, for ever.) */
TEST(cancel_a_read_while_the_ring_is_full)
{
    if (!check_on_io_uring())
        return;
    refusal how = {.err = EAGAIN, .after_cancel = 64};
    check_run(cancel_read_in_full_ring, &how);
    atomic_store(&enter_refusals, 0);
}

/* Run fn(arg) as a scheduler's main coroutine in a child process, which must abort
 * within 10 s saying that the ring was refused. */
static void check_aborts_refused(plait_fn fn, void *arg)
{
    int out[2];
    CHECK_EQ(pipe2(out, O_CLOEXEC), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], STDERR_FILENO);
        plait_run(fn, arg, NULL);
        _exit(0);
    }
    CHECK(pid > 0);
    close(out[1]);
    int status = reap_within(pid, 10);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    char said[512] = "";
    ssize_t n = read(out[0], said, sizeof said - 1);
    said[n > 0 ? n : 0] = 0;
    CHECK(strstr(said, "plait: fatal: io_uring_enter refused the scheduler's ring") != NULL);
    close(out[0]);
}

static void *cancel_read_refused_for_good(void *arg)
{
    (void)arg;
    refusal how = {.err = EINVAL, .after_cancel = -1};
    return cancel_read_in_full_ring(&how);
}

/* The kernel refuses for good (EINVAL): the read's buffer stays the kernel's, so the
 * coroutine cannot go on; the process aborts instead of spinning (as it once did). */
TEST(a_ring_that_refuses_for_good_aborts)
{
    if (check_on_io_uring())
        check_aborts_refused(cancel_read_refused_for_good, NULL);
}

/* The kernel refuses the ring for good in the scheduler's wait (EBADF: its descriptor
 * closed behind plait's back).  The scheduler could never again learn that a
 * descriptor is ready: it looked again and again at full speed until the coroutine's
 * deadline, and the program went on as if nothing were wrong (the child exited
 * normally).  It now aborts, saying why. */
static void *wait_in_refused_ring(void *arg)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    /* the scheduler has made its ring */
    CHECK_EQ(plait_wait_fd(sv[1], PLAIT_WRITABLE, SOON()), PLAIT_WRITABLE);
    enter_refusal_errno = EBADF;
    atomic_store(&enter_refusals, -1);
    plait_wait_fd(sv[0], PLAIT_READABLE, plait_deadline_in(PLAIT_SEC / 2)); /* no data */
    return arg;
}

TEST(a_ring_refused_in_a_wait_aborts)
{
    if (check_on_io_uring())
        check_aborts_refused(wait_in_refused_ring, NULL);
}

/* ---- requests that must reach the kernel before the caller goes on ---- */

typedef struct writer {
    int fd;
    const char *text;
    bool refuse_first; /* io_uring_enter refuses (EAGAIN) once, just before the write */
    ssize_t r;
} writer;

static void *write_text(void *arg)
{
    writer *w = arg;
    if (w->refuse_first) {
        enter_refusal_errno = EAGAIN;
        atomic_store(&enter_refusals, 1);
    }
    w->r = plait_write(w->fd, w->text, strlen(w->text), SOON());
    return NULL;
}

/* Two coroutines of one scheduler write to one socket, in turn, the second after the
 * kernel is set to refuse the ring once (EAGAIN, a temporary refusal).  When a write
 * beside a ready coroutine waited in the ring, the second's had to make the ring go
 * to the kernel before its own write(2), and the refusal once let the second write's
 * bytes out first.  Writes are write(2) now (fdio.c, transfer), whatever the ring
 * does: writes from one scheduler keep the order of the calls. */
static void *writes_keep_order_past_a_refusal(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    /* the scheduler has made its ring */
    CHECK_EQ(plait_wait_fd(sv[0], PLAIT_WRITABLE, SOON()), PLAIT_WRITABLE);
    writer first = {.fd = sv[0], .text = "first,"};
    writer second = {.fd = sv[0], .text = "second", .refuse_first = true};
    plait_task t1, t2;
    CHECK_EQ(plait_spawn(&t1, write_text, &first), 0);
    CHECK_EQ(plait_spawn(&t2, write_text, &second), 0);
    CHECK_EQ(plait_join(t1, NULL, SOON()), 0);
    CHECK_EQ(plait_join(t2, NULL, SOON()), 0);
    atomic_store(&enter_refusals, 0); /* met or not: the writes did not need the ring */
    CHECK_EQ(first.r, 6);
    CHECK_EQ(second.r, 6);
    char got[16] = "";
    CHECK_EQ(plait_read_exactly(sv[1], got, 12, NULL, SOON()), 0);
    CHECK(memcmp(got, "first,second", 12) == 0);
    CHECK_EQ(plait_close(sv[0]), 0);
    CHECK_EQ(plait_close(sv[1]), 0);
    return NULL;
}

TEST(writes_keep_their_order_when_the_ring_is_refused_once)
{
    if (!check_on_io_uring())
        return;
    check_run(writes_keep_order_past_a_refusal, NULL);
    atomic_store(&enter_refusals, 0);
}

/* A coroutine waits to read a socket, so a watch in the kernel holds the socket open;
 * it is cancelled, and the kernel refuses once (EAGAIN) the removal of its watch.
 * plait_close must still close: the peer sees the end at once.  (The removal stayed
 * in the ring until the next wait, and the socket stayed open in the kernel.) */
static void *close_past_a_refused_removal(void *arg)
{
    (void)arg;
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    filler f = {.fd = sv[0]};
    plait_task t;
    CHECK_EQ(plait_spawn(&t, wait_readable, &f), 0);
    CHECK_EQ(plait_yield(), 0); /* its watch is in the ring */
    /* a wait that ends at once, as the scheduler has entered the kernel: the watch
     * went with it */
    CHECK_EQ(plait_wait_fd(sv[1], PLAIT_WRITABLE, SOON()), PLAIT_WRITABLE);
    enter_refusal_errno = EAGAIN;
    atomic_store(&enter_refusals, 1);
    CHECK_EQ(plait_cancel(t), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
    CHECK_EQ(f.r, -ECANCELED);
    CHECK_EQ(atomic_load(&enter_refusals), 0); /* the refusal was met */
    CHECK_EQ(plait_close(sv[0]), 0);
    struct pollfd pfd = {.fd = sv[1], .events = POLLIN | POLLRDHUP};
    CHECK_EQ(poll(&pfd, 1, 0), 1);
    CHECK(pfd.revents & (POLLHUP | POLLRDHUP));
    CHECK_EQ(plait_close(sv[1]), 0);
    return NULL;
}

TEST(close_closes_when_a_watch_s_removal_is_refused_once)
{
    if (!check_on_io_uring())
        return;
    check_run(close_past_a_refused_removal, NULL);
    atomic_store(&enter_refusals, 0);
}

/* ---- completions the kernel drops ---- */

static int drop_fd; /* the descriptor whose completion drop_if picks */

/* A watch on drop_fd that fired, or a read on it that moved bytes (the request's name
 * has the descriptor in its low bits: poll_uring.c). */
static bool answer_on_fd(const struct io_uring_cqe *cqe)
{
    return ((uint32_t)cqe->user_data & 0x3fffffff) == (uint32_t)drop_fd && cqe->res > 0;
}

/* drop_fd's watch, ended by its removal. */
static bool removal_on_fd(const struct io_uring_cqe *cqe)
{
    return ((uint32_t)cqe->user_data & 0x3fffffff) == (uint32_t)drop_fd &&
           cqe->res == -ECANCELED;
}

/* The ring's timeout request, fired. */
static bool timeout_fired(const struct io_uring_cqe *cqe) { return cqe->res == -ETIME; }

/* The scheduler's inbox watch (its name is all ones), fired. */
static bool inbox_fired(const struct io_uring_cqe *cqe) { return cqe->user_data == UINT64_MAX; }

/* The scenario check_run_in_child runs. */
static void (*child_scenario)(void);

static void *run_scenario(void *arg)
{
    (void)arg;
    child_scenario();
    return NULL;
}

/* On io_uring, run scenario in a scheduler's main coroutine in a child, which must end
 * within 20 s with every check held: a wait that never ends is a failure, not a hang. */
static void check_run_in_child(void (*scenario)(void))
{
    if (!check_on_io_uring())
        return;
    child_scenario = scenario;
    pid_t pid = fork_child(true);
    if (pid == 0) {
        check_run(run_scenario, NULL);
        CHECK(atomic_load(&drop_if) == NULL); /* the completion was dropped */
        child_exit();
    }
    reap_ok(pid, 20);
}

static void make_pair(int sv[2])
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

static void close_pair(const int sv[2])
{
    CHECK_EQ(plait_close(sv[0]), 0);
    CHECK_EQ(plait_close(sv[1]), 0);
}

/* A coroutine (fn) waiting in the ring on the first socket of the pair sv: its request
 * went to the kernel with the main coroutine's wait on the second. */
static plait_task start_in_ring(const int sv[2], void *(*fn)(void *), void *arg)
{
    plait_task t;
    CHECK_EQ(plait_spawn(&t, fn, arg), 0);
    CHECK_EQ(plait_yield(), 0);
    CHECK_EQ(plait_wait_fd(sv[1], PLAIT_WRITABLE, SOON()), PLAIT_WRITABLE);
    return t;
}

/* Data comes to the first socket of the pair sv, and the completion that says so (its
 * watch's or its read's) is dropped. */
static void drop_as_data_comes(const int sv[2])
{
    drop_fd = sv[0];
    atomic_store(&drop_if, answer_on_fd);
    CHECK_EQ(write(sv[1], "x", 1), 1);
}

/* A wait on a socket whose watch's completion is dropped as data comes (failed first:
 * the process aborted on -EBADR; a wait whose completion was lost slept for ever). */
static void wait_past_a_dropped_answer(void)
{
    int sv[2];
    make_pair(sv);
    filler f = {.fd = sv[0]};
    plait_task t = start_in_ring(sv, wait_readable, &f);
    drop_as_data_comes(sv);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK(f.r > 0 && (f.r & PLAIT_READABLE));
    close_pair(sv);
}

TEST(a_wait_whose_completion_is_dropped_ends) { check_run_in_child(wait_past_a_dropped_answer); }

/* A read the kernel makes whose completion is dropped: its bytes, taken from the
 * socket, are lost, and the read fails with -EIO rather than waiting for ever. */
static void read_past_a_dropped_answer(void)
{
    int sv[2];
    make_pair(sv);
    reader rd = {.fd = sv[0]};
    plait_task t = start_in_ring(sv, read_one, &rd);
    drop_as_data_comes(sv);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(rd.r, -EIO);
    /* the socket reads on */
    CHECK_EQ(write(sv[1], "y", 1), 1);
    CHECK_EQ(plait_read(sv[0], &rd.byte, 1, SOON()), 1);
    CHECK_EQ(rd.byte, 'y');
    close_pair(sv);
}

TEST(a_read_whose_completion_is_dropped_fails) { check_run_in_child(read_past_a_dropped_answer); }

/* Another descriptor's completion is dropped while a read waits in the kernel: the
 * read, cancelled as every request is looked at again, goes on (its caller reads), and
 * returns the bytes that come later (not -ECANCELED). */
static void read_on_past_another_dropped_answer(void)
{
    int sv[2];
    make_pair(sv);
    reader rd = {.fd = sv[0]};
    plait_task t = start_in_ring(sv, read_one, &rd);
    wait_past_a_dropped_answer();
    CHECK_EQ(write(sv[1], "r", 1), 1);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    CHECK_EQ(rd.r, 1);
    CHECK_EQ(rd.byte, 'r');
    close_pair(sv);
}

TEST(a_read_goes_on_past_another_dropped_completion)
{
    check_run_in_child(read_on_past_another_dropped_answer);
}

static int see_fd; /* the descriptor whose completion see_if picks */

/* The read the kernel makes on see_fd, cancelled (the request's name has the
 * descriptor in its low bits, and bit 31 set: poll_uring.c's READ_BIT). */
static bool read_cancelled_on_fd(const struct io_uring_cqe *cqe)
{
    return ((uint32_t)cqe->user_data & 0x3fffffff) == (uint32_t)see_fd &&
           ((uint32_t)cqe->user_data & 0x80000000u) && cqe->res == -ECANCELED;
}

/* Once the read's cancellation has come (completion_seen), close its descriptor and
 * give the number to a pipe that holds a byte; the reader has not run again yet. */
static void *close_and_reuse_once_cancelled(void *arg)
{
    int fd = *(int *)arg, p[2];
    int64_t give_up = SOON();
    while (!atomic_load(&completion_seen) && plait_now() < give_up)
        CHECK_EQ(plait_yield(), 0);
    CHECK(atomic_load(&completion_seen));
    CHECK_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    CHECK_EQ(plait_close(fd), 0);
    CHECK_EQ(dup2(p[0], fd), fd);
    CHECK_EQ(close(p[0]), 0);
    CHECK_EQ(write(p[1], "z", 1), 1);
    CHECK_EQ(close(p[1]), 0);
    return NULL;
}

/* A read the kernel makes is cancelled by the look again after another descriptor's
 * completion was dropped (its caller then reads by itself), and, before the reader runs
 * again, another coroutine closes its descriptor and the number is a pipe's.  The read
 * must fail with -EBADF, not read the pipe (it did: the byte of the other file). */
static void read_cancelled_by_a_look_again_then_closed(void)
{
    int sv[2], other[2];
    make_pair(sv);
    make_pair(other);
    reader rd = {.fd = sv[0]};
    plait_task reader_task = start_in_ring(sv, read_one, &rd);
    filler f = {.fd = other[0]};
    plait_task waiter_task = start_in_ring(other, wait_readable, &f);
    plait_task closer_task;
    CHECK_EQ(plait_spawn(&closer_task, close_and_reuse_once_cancelled, &sv[0]), 0);
    see_fd = sv[0];
    atomic_store(&see_if, read_cancelled_on_fd);
    drop_as_data_comes(other);
    CHECK_EQ(plait_join(reader_task, NULL, SOON()), 0);
    CHECK_EQ(plait_join(closer_task, NULL, SOON()), 0);
    CHECK_EQ(plait_join(waiter_task, NULL, SOON()), 0);
    CHECK_EQ(rd.r, -EBADF);
    CHECK(f.r > 0 && (f.r & PLAIT_READABLE));
    CHECK_EQ(close(sv[0]), 0); /* the pipe's, now */
    CHECK_EQ(plait_close(sv[1]), 0);
    close_pair(other);
}

TEST(a_read_looked_at_again_then_closed_fails)
{
    check_run_in_child(read_cancelled_by_a_look_again_then_closed);
}

/* A wait given up (cancelled), the completion of its watch's removal dropped: the
 * removal is done, and plait_close closes (the peer sees it). */
static void close_past_a_dropped_removal(void)
{
    int sv[2];
    make_pair(sv);
    filler f = {.fd = sv[0]};
    plait_task t = start_in_ring(sv, wait_readable, &f);
    drop_fd = sv[0];
    atomic_store(&drop_if, removal_on_fd);
    CHECK_EQ(plait_cancel(t), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
    CHECK_EQ(plait_close(sv[0]), 0);
    struct pollfd pfd = {.fd = sv[1], .events = POLLIN | POLLRDHUP};
    CHECK_EQ(poll(&pfd, 1, 0), 1);
    CHECK(pfd.revents & (POLLHUP | POLLRDHUP));
    CHECK_EQ(plait_close(sv[1]), 0);
}

TEST(close_closes_when_a_removal_s_completion_is_dropped)
{
    check_run_in_child(close_past_a_dropped_removal);
}

/* A reader and a writer wait on a socket (one watch for both); the writer's wait ends
 * (cancelled), and the watch is replaced by one for the reader alone.  The completion
 * of the first request's removal is dropped: the look again (recheck) takes the live
 * watch back too, so two removals are due, and it must ask after each, or plait_close
 * would wait for the lost one for ever.  plait_close returns, and the peer sees the
 * close. */
static void close_past_an_older_dropped_removal(void)
{
    int sv[2];
    filler r, w;
    plait_task rt, wt;
    reader_and_writer_in_ring(sv, &r, &rt, &w, &wt);
    drop_fd = sv[0];
    atomic_store(&drop_if, removal_on_fd);
    CHECK_EQ(plait_cancel(wt), 0);
    CHECK_EQ(plait_join(wt, NULL, SOON()), -ECANCELED);
    CHECK_EQ(w.r, -ECANCELED);
    CHECK_EQ(plait_close(sv[0]), 0);
    struct pollfd pfd = {.fd = sv[1], .events = POLLRDHUP};
    CHECK_EQ(poll(&pfd, 1, 0), 1);
    CHECK(pfd.revents & (POLLHUP | POLLRDHUP));
    CHECK_EQ(plait_join(rt, NULL, SOON()), 0);
    CHECK_EQ(r.r, -EBADF);
    CHECK_EQ(plait_close(sv[1]), 0);
}

TEST(close_closes_when_an_older_removal_s_completion_is_dropped)
{
    check_run_in_child(close_past_an_older_dropped_removal);
}

/* Run fn while another coroutine waits on a socket: the scheduler then sleeps in its
 * ring. */
static void beside_a_wait_in_the_ring(void (*fn)(void))
{
    int sv[2];
    make_pair(sv);
    filler f = {.fd = sv[0]};
    plait_task t = start_in_ring(sv, wait_readable, &f);
    fn();
    CHECK_EQ(plait_cancel(t), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
    close_pair(sv);
}

/* The ring's timeout request fires and its completion is dropped: that sleep ends
 * (its time has come), and so does the next, which once found the request armed still
 * and slept without a timeout, for ever. */
static void sleep_twice(void)
{
    atomic_store(&drop_if, timeout_fired);
    CHECK_EQ(plait_sleep(5 * PLAIT_MS), 0);
    CHECK_EQ(plait_sleep(5 * PLAIT_MS), 0);
}

static void sleep_past_a_dropped_timeout(void) { beside_a_wait_in_the_ring(sleep_twice); }

TEST(a_sleep_after_a_dropped_timeout_ends) { check_run_in_child(sleep_past_a_dropped_timeout); }

/* ---- accept: a connection's network error ---- */

/* accept(2) reports a network error pending on the connection it takes off the queue
 * (ENETDOWN, EPROTO, ...) instead of the connection: the next accept4 calls while
 * accept_failures > 0 do that, taking the connection and failing with accept_errno. */
static atomic_int accept_failures;
static int accept_errno;

int __real_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int __wrap_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int __wrap_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    int c = __real_accept4(fd, addr, len, flags);
    if (c >= 0 && atomic_load(&accept_failures) > 0) {
        atomic_fetch_sub(&accept_failures, 1);
        close(c);
        errno = accept_errno;
        return -1;
    }
    return c;
}

/* A connection to l: its descriptor, its local address into local. */
static int connect_to(int l, plait_addr *local)
{
    plait_addr a;
    CHECK_EQ(plait_local_addr(l, &a), 0);
    int c = plait_connect(&a, SOON());
    CHECK(c >= 0);
    CHECK_EQ(plait_local_addr(c, local), 0);
    return c;
}

/* Each error the manual says to retry after: plait_accept gives the next connection.
 * (It once returned the error, which ends a server's accept loop.) */
static void *accept_past_network_errors(void *arg)
{
    (void)arg;
    static const int errors[] = {ENETDOWN,     EPROTO,      ENOPROTOOPT, EHOSTDOWN,
                                 ENONET,       EHOSTUNREACH, ENETUNREACH};
    int l = plait_tcp_listen("127.0.0.1", 0, 0);
    CHECK(l >= 0);
    for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
        plait_addr failed, good, peer = {0};
        int c1 = connect_to(l, &failed), c2 = connect_to(l, &good);
        accept_errno = errors[i];
        atomic_store(&accept_failures, 1);
        int s = plait_accept(l, &peer, SOON());
        CHECK(s >= 0);
        CHECK_EQ(atomic_load(&accept_failures), 0);
        CHECK_EQ(peer.u.in4.sin_port, good.u.in4.sin_port);
        if (s >= 0)
            CHECK_EQ(plait_close(s), 0);
        CHECK_EQ(plait_close(c1), 0);
        CHECK_EQ(plait_close(c2), 0);
    }
    atomic_store(&accept_failures, 0);
    CHECK_EQ(plait_close(l), 0);
    /* EOPNOTSUPP, also on the manual's list, is what a socket that is not a stream
     * answers every time: it is returned, not tried again for ever */
    plait_addr any;
    CHECK_EQ(plait_addr_ip(&any, "127.0.0.1", 0), 0);
    int u = plait_udp_bind(&any);
    CHECK(u >= 0);
    CHECK_EQ(plait_accept(u, NULL, SOON()), -EOPNOTSUPP);
    CHECK_EQ(plait_close(u), 0);
    return NULL;
}

TEST(accept_goes_on_past_a_connection_s_network_error)
{
    check_run(accept_past_network_errors, NULL);
}

/* A read or write whose descriptor is ready, made while the ring is full and
 * io_uring_enter refuses to make room for a moment (EBUSY, EINTR), moves its bytes
 * with the system call, as on epoll: it once failed with the refusal's errno. */
static void *yield_a_few(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(plait_yield(), 0);
    return NULL;
}

static void *transfer_past_a_full_refused_ring(void *arg)
{
    int err = INT(arg);
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    char c;
    /* nothing there: the socket is known drained, so its next read goes to the ring */
    CHECK_EQ(plait_read(sv[0], &c, 1, plait_deadline_in(PLAIT_MS)), -ETIMEDOUT);
    fill_refused_ring(err);
    CHECK_EQ(write(sv[1], "a", 1), 1);
    CHECK_EQ(plait_read(sv[0], &c, 1, SOON()), 1);
    CHECK_EQ(c, 'a');
    plait_task y; /* another coroutine ready: the write goes to the ring */
    CHECK_EQ(plait_spawn(&y, yield_a_few, NULL), 0);
    CHECK_EQ(plait_write(sv[0], "b", 1, SOON()), 1);
    CHECK_EQ(read(sv[1], &c, 1), 1);
    CHECK_EQ(c, 'b');
    atomic_store(&enter_refusals, 0);
    CHECK_EQ(plait_join(y, NULL, SOON()), 0);
    close_fillers(0);
    CHECK_EQ(plait_close(sv[0]), 0);
    CHECK_EQ(plait_close(sv[1]), 0);
    return NULL;
}

TEST(transfer_goes_on_past_a_full_refused_ring)
{
    if (!check_on_io_uring())
        return;
    check_run(transfer_past_a_full_refused_ring, ARG(EBUSY));
    check_run(transfer_past_a_full_refused_ring, ARG(EINTR));
}

/* Watches that find the submission ring full while the kernel refuses it for a
 * moment (err) wait on: each is armed once the kernel takes requests again, and fires
 * when its descriptor is ready.  (Such a watch once ended at once with the refusal's
 * errno: plait_wait_fd said -EBUSY or -EINTR of a descriptor nobody else waited on.) */
static void *watches_wait_past_a_full_refused_ring(void *arg)
{
    fill_refused_ring(INT(arg));
    atomic_store(&enter_refusals, 0);
    for (int i = 0; i < FILLERS; i++)
        CHECK_EQ(eventfd_write(fillers[i].fd, 1), 0);
    for (int i = 0; i < FILLERS; i++) {
        CHECK_EQ(plait_join(filler_tasks[i], NULL, SOON()), 0);
        CHECK_EQ(fillers[i].r, PLAIT_READABLE);
        CHECK_EQ(plait_close(fillers[i].fd), 0);
    }
    return NULL;
}

TEST(watches_wait_on_past_a_full_refused_ring)
{
    if (!check_on_io_uring())
        return;
    check_run(watches_wait_past_a_full_refused_ring, ARG(EBUSY));
    check_run(watches_wait_past_a_full_refused_ring, ARG(EINTR));
    check_run(watches_wait_past_a_full_refused_ring, ARG(EAGAIN));
}

/* ---- realloc, refused on demand ---- */

static atomic_bool refuse_realloc;

void *__real_realloc(void *ptr, size_t size);
void *__wrap_realloc(void *ptr, size_t size);
void *__wrap_realloc(void *ptr, size_t size)
{
    if (atomic_load(&refuse_realloc)) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_realloc(ptr, size);
}

/* Watches waiting for room in a full ring whose next arming the kernel refuses once
 * while no memory is left to put them off again: each fails (-ENOMEM), and their
 * coroutines run at once.  (The scheduler went to sleep with them ready, until the
 * next event or deadline: here the join's, 3 s on.) */
static void *fail_watches_armed_late(void *arg)
{
    (void)arg;
    fill_refused_ring(EBUSY);
    int last = FILLERS - 1; /* put off: the ring was full before its turn */
    atomic_store(&enter_refusals, 1);
    atomic_store(&refuse_realloc, true);
    int64_t start = plait_now();
    CHECK_EQ(plait_join(filler_tasks[last], NULL, plait_deadline_in(3 * PLAIT_SEC)), 0);
    CHECK_PROMPT(start);
    atomic_store(&refuse_realloc, false);
    atomic_store(&enter_refusals, 0);
    CHECK_EQ(fillers[last].r, -ENOMEM);
    for (int i = 0; i < last; i++) { /* armed (then closed: -EBADF), or failed too */
        CHECK_EQ(plait_close(fillers[i].fd), 0);
        CHECK_EQ(plait_join(filler_tasks[i], NULL, SOON()), 0);
        CHECK(fillers[i].r == -EBADF || fillers[i].r == -ENOMEM);
    }
    CHECK_EQ(plait_close(fillers[last].fd), 0);
    return NULL;
}

TEST(watches_failed_while_armed_late_run_at_once)
{
    if (!check_on_io_uring())
        return;
    check_run(fail_watches_armed_late, NULL);
}

/* A socket pair whose sv[0] a coroutine (the task returned; its outcome in r->r)
 * waits to read on, its watch in the kernel, and whose send buffer is full: a wait to
 * write on it waits. */
static plait_task reader_with_no_room_to_write(int sv[2], filler *r)
{
    make_pair(sv);
    *r = (filler){.fd = sv[0]};
    plait_task rt = start_in_ring(sv, wait_readable, r);
    while (write(sv[0], "f", 1) == 1) {
    }
    CHECK_EQ(errno, EAGAIN);
    return rt;
}

/* A reader waits on a socket; a writer's wait on it (one watch for both) ends at its
 * deadline while the kernel refuses to take requests, so the first watch's removal is
 * still due, and the watch for the reader alone needs room for a third removal, which
 * no memory is left for.  The reader keeps a watch, and wakes when data comes.  (Its
 * watch was taken back before the room was looked for, and it slept for ever.) */
static void *reader_kept_watched_past_a_failed_narrowing(void *arg)
{
    (void)arg;
    int sv[2];
    filler r;
    plait_task rt = reader_with_no_room_to_write(sv, &r);
    enter_refusal_errno = EBUSY;
    atomic_store(&enter_refusals, -1);
    atomic_store(&refuse_realloc, true);
    CHECK_EQ(plait_wait_fd(sv[0], PLAIT_WRITABLE, plait_deadline_in(20 * PLAIT_MS)), -ETIMEDOUT);
    atomic_store(&refuse_realloc, false);
    atomic_store(&enter_refusals, 0);
    CHECK_EQ(write(sv[1], "x", 1), 1);
    int joined = plait_join(rt, NULL, plait_deadline_in(3 * PLAIT_SEC));
    CHECK_EQ(joined, 0);
    if (joined < 0) {
        CHECK_EQ(plait_cancel(rt), 0);
        CHECK_EQ(plait_join(rt, NULL, SOON()), -ECANCELED);
    }
    CHECK(r.r > 0 && (r.r & PLAIT_READABLE));
    close_pair(sv);
    return NULL;
}

TEST(a_reader_keeps_its_watch_when_no_memory_is_left_to_narrow_it)
{
    if (!check_on_io_uring())
        return;
    check_run(reader_kept_watched_past_a_failed_narrowing, NULL);
}

/* ---- a watch taken back or fired, its successor neither written nor put off ---- */

/* On io_uring, check_run(fn) in a child whose rings are made as a kernel before 6.1
 * makes them (no DEFER_TASKRUN: completions come while the kernel refuses to take
 * requests), within 30 s. */
static void check_run_before_6_1(void *(*fn)(void *))
{
    if (!check_on_io_uring())
        return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        refuse_6_1_flags = true;
        check_run(fn, NULL);
        fflush(NULL);
        _exit(check_failures ? 1 : 0);
    }
    CHECK(pid > 0);
    int status = reap_within(pid, 30);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}


/* Fill the submission ring with fillers' watches while the kernel refuses (EBUSY), to
 * `left` entries from full; how many fillers. */
static int fill_refused_ring_to(unsigned left)
{
    enter_refusal_errno = EBUSY;
    atomic_store(&enter_refusals, -1);
    atomic_store(&last_to_submit, 0);
    int n = 0;
    while (n < FILLERS && atomic_load(&last_to_submit) < ring_entries - left) {
        fillers[n].fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        CHECK(fillers[n].fd >= 0);
        CHECK_EQ(plait_spawn(&filler_tasks[n], wait_readable, &fillers[n]), 0);
        n++;
        CHECK_EQ(plait_sleep(PLAIT_MS), 0);
    }
    CHECK_EQ(atomic_load(&last_to_submit), ring_entries - left);
    return n;
}

static void close_n_fillers(int n)
{
    for (int i = 0; i < n; i++) {
        CHECK_EQ(plait_close(fillers[i].fd), 0);
        CHECK_EQ(plait_join(filler_tasks[i], NULL, SOON()), 0);
    }
}

/* Join t within 3 s: it must have ended (cancelled and joined otherwise). */
static void joined_in_time(plait_task t)
{
    int joined = plait_join(t, NULL, plait_deadline_in(3 * PLAIT_SEC));
    CHECK_EQ(joined, 0);
    if (joined < 0) {
        CHECK_EQ(plait_cancel(t), 0);
        CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED);
    }
}

/* Memory and the ring given back, data comes to the reader (rt, r) of sv[0]: it wakes
 * within 3 s, or was told -ENOMEM; then n fillers and the pair are closed. */
static void reader_not_left_unwatched(int sv[2], plait_task rt, const filler *r, int n)
{
    atomic_store(&refuse_realloc, false);
    atomic_store(&enter_refusals, 0);
    CHECK_EQ(plait_sleep(10 * PLAIT_MS), 0);
    CHECK_EQ(write(sv[1], "x", 1), 1);
    joined_in_time(rt);
    CHECK(r->r == -ENOMEM || (r->r > 0 && (r->r & PLAIT_READABLE)));
    close_n_fillers(n);
    close_pair(sv);
}

/* A reader and a writer share one watch; the writer's wait ends (cancelled) while the
 * ring has one entry left, which the live watch's removal takes; the kernel refuses to
 * take the ring, and no memory is left to put the reader's new watch off.  The reader
 * keeps a watch and wakes when data comes, or is told -ENOMEM (a deferred watch the
 * full ring refuses again with no memory to put it off once more: arm_deferred); it
 * had none, and slept for ever. */
static void *narrowed_with_a_full_ring_and_no_memory(void *arg)
{
    (void)arg;
    int sv[2];
    filler r, w;
    plait_task rt, wt;
    reader_and_writer_in_ring(sv, &r, &rt, &w, &wt);
    int n = fill_refused_ring_to(1);
    atomic_store(&refuse_realloc, true);
    CHECK_EQ(plait_cancel(wt), 0);
    CHECK_EQ(plait_join(wt, NULL, SOON()), -ECANCELED);
    reader_not_left_unwatched(sv, rt, &r, n);
    return NULL;
}

TEST(a_reader_is_not_left_unwatched_narrowed_with_a_full_ring_and_no_memory)
{
    if (!check_on_io_uring())
        return;
    check_run(narrowed_with_a_full_ring_and_no_memory, NULL);
}

/* The other way: a reader waits, and a writer's wait on the same socket begins while
 * the ring has one entry left, the kernel refuses and no memory is left: the writer is
 * told -ENOMEM, and the reader wakes or is told too (it had no watch, and slept for
 * ever). */
static void *widened_with_a_full_ring_and_no_memory(void *arg)
{
    (void)arg;
    int sv[2];
    filler r;
    plait_task rt = reader_with_no_room_to_write(sv, &r);
    int n = fill_refused_ring_to(1);
    atomic_store(&refuse_realloc, true);
    CHECK_EQ(plait_wait_fd(sv[0], PLAIT_WRITABLE, plait_deadline_in(20 * PLAIT_MS)), -ENOMEM);
    reader_not_left_unwatched(sv, rt, &r, n);
    return NULL;
}

TEST(a_reader_is_not_left_unwatched_widened_with_a_full_ring_and_no_memory)
{
    if (!check_on_io_uring())
        return;
    check_run(widened_with_a_full_ring_and_no_memory, NULL);
}

/* A reader and a writer share a watch; the ring is full, the kernel refuses, and data
 * comes: the watch fires for the reader, and the writer's new watch can neither be
 * written nor put off (no memory).  The writer is told (-ENOMEM), not left unwatched
 * (it slept for ever, though room came). */
static void *fired_then_no_room_to_watch_again(void *arg)
{
    (void)arg;
    int sv[2];
    filler r, w;
    plait_task rt, wt;
    reader_and_writer_in_ring(sv, &r, &rt, &w, &wt);
    int n = fill_refused_ring_to(0);
    atomic_store(&refuse_realloc, true);
    CHECK_EQ(write(sv[1], "x", 1), 1);
    __real_syscall(SYS_getpid); /* a return to user mode runs the ring's task work */
    CHECK_EQ(plait_sleep(5 * PLAIT_MS), 0);
    atomic_store(&refuse_realloc, false);
    joined_in_time(rt);
    CHECK(r.r > 0 && (r.r & PLAIT_READABLE));
    atomic_store(&enter_refusals, 0);
    static char junk[1 << 16];
    while (read(sv[1], junk, sizeof junk) > 0) { /* room for the writer */
    }
    joined_in_time(wt);
    CHECK(w.r == -ENOMEM || (w.r > 0 && (w.r & PLAIT_WRITABLE)));
    close_n_fillers(n);
    close_pair(sv);
    return NULL;
}

TEST(a_waiter_left_unwatched_after_a_fire_is_told)
{
    check_run_before_6_1(fired_then_no_room_to_watch_again);
}

/* A writer waits for room; the ring is full, the kernel refuses, and the peer shuts its
 * side: the watch fires with nothing asked for, is made again (multishot), and can
 * neither be written nor put off.  The writer is told -ENOMEM (it was told the
 * kernel's passing refusal, -EBUSY: "another coroutine waits" in plait.h). */
static void *remade_with_no_memory(void *arg)
{
    (void)arg;
    int sv[2];
    make_pair(sv);
    static char junk[4096];
    while (write(sv[0], junk, sizeof junk) > 0) {
    }
    filler w = {.fd = sv[0]};
    plait_task wt = start_in_ring(sv, wait_writable, &w);
    int n = fill_refused_ring_to(0);
    atomic_store(&refuse_realloc, true);
    CHECK_EQ(shutdown(sv[1], SHUT_WR), 0);
    __real_syscall(SYS_getpid);
    CHECK_EQ(plait_sleep(5 * PLAIT_MS), 0);
    atomic_store(&refuse_realloc, false);
    atomic_store(&enter_refusals, 0);
    joined_in_time(wt);
    CHECK_EQ(w.r, -ENOMEM);
    close_n_fillers(n);
    close_pair(sv);
    return NULL;
}

TEST(a_watch_remade_with_no_memory_says_so)
{
    check_run_before_6_1(remade_with_no_memory);
}

/* A socket pair whose sv[0] a coroutine (*ct, its outcome in c->r) waits on with its
 * watch in the kernel; then the ring is filled while the kernel refuses (EBUSY). */
static void watched_then_ring_filled(int sv[2], filler *c, plait_task *ct)
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    c->fd = sv[0];
    CHECK_EQ(plait_spawn(ct, wait_readable, c), 0);
    CHECK_EQ(plait_yield(), 0); /* its watch is written */
    /* a wait that ends at once, as the scheduler has entered the kernel: the watch
     * went with it */
    CHECK_EQ(plait_wait_fd(sv[1], PLAIT_WRITABLE, SOON()), PLAIT_WRITABLE);
    fill_refused_ring(EBUSY);
}

/* plait_close while the ring is full and the kernel refuses for a moment: the watch's
 * removal waits for room, so that the close is a close when plait_close returns (the
 * removal was put off to the next wait, and the socket stayed open, for ever if no
 * coroutine waited on a descriptor again). */
static void *close_past_a_full_refused_ring(void *arg)
{
    (void)arg;
    int sv[2];
    filler c;
    plait_task ct;
    watched_then_ring_filled(sv, &c, &ct);
    atomic_store(&enter_refusals, 64); /* the moment passes after 64 more refusals */
    CHECK_EQ(plait_close(sv[0]), 0);
    struct pollfd pfd = {.fd = sv[1], .events = POLLIN | POLLRDHUP};
    CHECK_EQ(poll(&pfd, 1, 0), 1); /* the peer sees the close at once */
    CHECK(pfd.revents & (POLLHUP | POLLRDHUP));
    atomic_store(&enter_refusals, 0);
    CHECK_EQ(plait_join(ct, NULL, SOON()), 0);
    CHECK_EQ(c.r, -EBADF);
    close_fillers(0);
    CHECK_EQ(plait_close(sv[1]), 0);
    return NULL;
}

TEST(close_closes_past_a_full_refused_ring)
{
    if (!check_on_io_uring())
        return;
    check_run(close_past_a_full_refused_ring, NULL);
}

/* A wait that ends otherwise (cancelled) while the ring is full and the kernel refuses
 * for a moment: its watch's removal is put off, and made once the kernel takes requests
 * again, even if no coroutine waits on a descriptor after it.  (It was made only by a
 * later wait on a descriptor: the poll request held the socket open, and a close(2)
 * closed nothing the peer could see.) */
/* watched_then_ring_filled, then every wait ends otherwise (cancelled) while the
 * kernel refuses: each removal is put off. */
static void removals_put_off(int sv[2])
{
    filler c;
    plait_task ct;
    watched_then_ring_filled(sv, &c, &ct);
    CHECK_EQ(plait_cancel(ct), 0);
    for (int i = 0; i < FILLERS; i++)
        CHECK_EQ(plait_cancel(filler_tasks[i]), 0);
    CHECK_EQ(plait_join(ct, NULL, SOON()), -ECANCELED);
    for (int i = 0; i < FILLERS; i++)
        CHECK_EQ(plait_join(filler_tasks[i], NULL, SOON()), -ECANCELED);
}

static void *removal_made_though_nobody_waits(void *arg)
{
    (void)arg;
    int sv[2];
    removals_put_off(sv);
    atomic_store(&enter_refusals, 0); /* the moment passes; nobody waits on a descriptor */
    CHECK_EQ(close(sv[0]), 0);
    struct pollfd pfd = {.fd = sv[1], .events = POLLIN | POLLRDHUP};
    int n = 0;
    for (int i = 0; i < 100 && n == 0; i++) { /* 1 s at most: the scheduler's next sleeps */
        CHECK_EQ(plait_sleep(10 * PLAIT_MS), 0);
        n = poll(&pfd, 1, 0);
    }
    CHECK_EQ(n, 1); /* the peer sees the close */
    CHECK(pfd.revents & (POLLHUP | POLLRDHUP));
    for (int i = 0; i < FILLERS; i++)
        CHECK_EQ(close(fillers[i].fd), 0);
    CHECK_EQ(plait_close(sv[1]), 0);
    return NULL;
}

TEST(a_removal_put_off_is_made_though_nobody_waits_again)
{
    if (!check_on_io_uring())
        return;
    check_run(removal_made_though_nobody_waits, NULL);
}

/* Waits end otherwise (cancelled) while the ring is full and the kernel refuses for a
 * moment, their watches' removals put off, and main returns before the moment passes:
 * the scheduler ends with them still to make.  plait_run must let the files go before
 * it returns, so that a close(2) after it closes what the peer sees.  (It closed the
 * ring with the watches armed, which the kernel cancels in the background: the socket
 * stayed open a moment after the program's close, and its peer saw no hang-up, in 3
 * runs of 30; and the end made no system call, leaving the refusals below unmet.)
 * The kernel refuses `refusals` more calls after main (-1: every one). */
static int ended_pair[2];

static void *removals_put_off_at_the_end(void *refusals)
{
    removals_put_off(ended_pair);
    atomic_store(&enter_refusals, INT(refusals));
    return NULL;
}

static void close_ended_files(void)
{
    CHECK_EQ(close(ended_pair[1]), 0);
    for (int i = 0; i < FILLERS; i++)
        CHECK_EQ(close(fillers[i].fd), 0);
}

/* The moment passes as the scheduler ends. */
TEST(plait_run_lets_go_of_the_files_whose_removals_were_put_off)
{
    if (!check_on_io_uring())
        return;
    check_run(removals_put_off_at_the_end, ARG(16));
    CHECK_EQ(atomic_load(&enter_refusals), 0); /* the scheduler's end met the refusals */
    CHECK_EQ(close(ended_pair[0]), 0);
    struct pollfd pfd = {.fd = ended_pair[1], .events = POLLIN | POLLRDHUP};
    CHECK_EQ(poll(&pfd, 1, 0), 1); /* the peer sees the close at once */
    CHECK(pfd.revents & (POLLHUP | POLLRDHUP));
    close_ended_files();
}

/* The moment never passes: plait_run still returns, after a second of trying. */
TEST(plait_run_ends_though_the_kernel_refuses_the_put_off_removals)
{
    if (!check_on_io_uring())
        return;
    int64_t start = plait_now();
    check_run(removals_put_off_at_the_end, ARG(-1));
    CHECK_TOOK(start, PLAIT_SEC);
    atomic_store(&enter_refusals, 0);
    CHECK_EQ(close(ended_pair[0]), 0);
    close_ended_files();
}

/* A plait_close on another thread, landing as the scheduler hands a coroutine's read to
 * the kernel, with the number reused at once: the read is never made on the new file.
 * (The kernel finds the file by its number as it takes the request; the close and the
 * reuse fell between the scheduler's last look and that, and the read took the new
 * socket's bytes from its owner.)  The scheduler's submission pauses until the other
 * thread is inside its close (let_the_closer_in), which must wait for the kernel to take
 * the read before it makes a new socket at the same number and sends it bytes; and
 * once more with that submission then refused (EBUSY): the read marked as being handed
 * over is queued again, and the close takes it back. */
typedef struct reuse {
    int old_fd, new_fd, new_peer;
} reuse;

static void *close_and_reuse(void *arg)
{
    reuse *ru = arg;
    while (sem_wait(&pause_go) < 0) {
    }
    atomic_store(&closer_tid, gettid_());
    CHECK_EQ(plait_close(ru->old_fd), 0);
    int nv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, nv), 0);
    ru->new_fd = nv[0];
    ru->new_peer = nv[1];
    CHECK_EQ(write(nv[1], "NEWDATA", 7), 7);
    atomic_store(&closer_done, 1);
    return NULL;
}

static void *read_across_a_close_and_reuse(void *arg)
{
    int refusals = INT(arg);
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    char buf[16] = "";
    /* nothing there: the socket is known drained, so its next read goes to the ring */
    CHECK_EQ(plait_read(sv[0], buf, 1, plait_deadline_in(PLAIT_MS)), -ETIMEDOUT);
    reuse ru = {.old_fd = sv[0], .new_fd = -1, .new_peer = -1};
    CHECK_EQ(sem_init(&pause_go, 0, 0), 0);
    atomic_store(&closer_tid, 0);
    atomic_store(&closer_done, 0);
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, close_and_reuse, &ru), 0);
    CHECK_EQ(pthread_getcpuclockid(th, &closer_cpu), 0);
    enter_refusal_errno = EBUSY;
    atomic_store(&pause_next_submit, true);
    atomic_store(&enter_refusals, refusals);
    ssize_t n = plait_read(sv[0], buf, sizeof buf - 1, SOON());
    atomic_store(&enter_refusals, 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_EQ(ru.new_fd, sv[0]); /* the number was reused */
    CHECK_EQ(n, -EBADF);
    char got[16] = "";
    CHECK_EQ(read(ru.new_fd, got, sizeof got - 1), 7); /* its bytes are its owner's */
    CHECK_EQ(memcmp(got, "NEWDATA", 7), 0);
    CHECK_EQ(plait_close(ru.new_fd), 0);
    CHECK_EQ(plait_close(ru.new_peer), 0);
    CHECK_EQ(plait_close(sv[1]), 0);
    CHECK_EQ(sem_destroy(&pause_go), 0);
    return NULL;
}

TEST(a_read_is_never_made_on_the_file_that_reuses_a_closed_number)
{
    if (!check_on_io_uring())
        return;
    check_run(read_across_a_close_and_reuse, ARG(0));
    check_run(read_across_a_close_and_reuse, ARG(1));
}

/* On a ring without DEFER_TASKRUN (a kernel before 6.1), the scheduler's inbox watch
 * fires while the submission ring is full and the kernel refuses for a moment: its new
 * watch waits for the next wait, and the scheduler can still be woken (it once
 * aborted the process).  Run in a child, as the old code aborted. */
static void *post_to_the_sleeper(void *arg)
{
    while (sem_wait(&post_go) < 0) {
    }
    CHECK_EQ(plait_event_set(arg), 0); /* to the scheduler's inbox: it sleeps in the ring */
    sem_post(&post_done);
    return NULL;
}

static void *wake_while_the_ring_is_full(void *arg)
{
    (void)arg;
    plait_event *ev;
    CHECK_EQ(plait_event_create(&ev), 0);
    pthread_t th;
    thread_start(&th, post_to_the_sleeper, ev);
    /* a wait that ends at once, as the scheduler has entered the kernel: its inbox
     * watch went with it */
    int w = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    CHECK_EQ(plait_wait_fd(w, PLAIT_WRITABLE, SOON()), PLAIT_WRITABLE);
    CHECK_EQ(plait_close(w), 0);
    fill_refused_ring(EBUSY);
    atomic_store(&post_in_next_sleep, true);
    CHECK_EQ(plait_event_wait(ev, SOON()), 0);
    atomic_store(&enter_refusals, 0);
    thread_join(th);
    close_fillers(0);
    CHECK_EQ(plait_event_destroy(ev), 0);
    return NULL;
}

TEST(inbox_watch_waits_past_a_full_refused_ring)
{
    sem_init(&post_go, 0, 0);
    sem_init(&post_done, 0, 0);
    check_run_before_6_1(wake_while_the_ring_is_full);
}

/* The inbox watch's completion is dropped as another thread wakes the scheduler, which
 * sleeps in its ring: that wake-up comes all the same (the loop drains its inbox), and
 * so does the next one (the watch is made again: it was lost, and the scheduler slept
 * on while a thread posted to it). */
static void wake_twice(void)
{
    plait_event *ev;
    CHECK_EQ(plait_event_create(&ev), 0);
    sem_init(&post_go, 0, 0);
    sem_init(&post_done, 0, 0);
    for (int i = 0; i < 2; i++) {
        /* what went before is done, so that only the post can end the next sleep */
        CHECK_EQ(plait_sleep(10 * PLAIT_MS), 0);
        pthread_t th;
        thread_start(&th, post_to_the_sleeper, ev);
        atomic_store(&drop_if, i == 0 ? inbox_fired : NULL);
        atomic_store(&post_in_next_sleep, true);
        int64_t start = plait_now();
        CHECK_EQ(plait_event_wait(ev, SOON()), 0);
        CHECK_PROMPT(start); /* not at the deadline, the next look at the inbox */
        CHECK(atomic_load(&drop_if) == NULL); /* the first time, its completion dropped */
        thread_join(th);
        CHECK_EQ(plait_event_reset(ev), 0);
    }
    CHECK_EQ(plait_event_destroy(ev), 0);
}

static void wake_past_a_dropped_inbox(void) { beside_a_wait_in_the_ring(wake_twice); }

TEST(a_wake_up_whose_completion_is_dropped_comes)
{
    check_run_in_child(wake_past_a_dropped_inbox);
}

/* ---- poll, interrupted on demand ---- */

static atomic_int poll_interruptions; /* calls still to fail with EINTR */

int __real_poll(struct pollfd *fds, nfds_t n, int timeout);
int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout);
int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout)
{
    if (atomic_load(&poll_interruptions) > 0) {
        atomic_fetch_sub(&poll_interruptions, 1);
        errno = EINTR;
        return -1;
    }
    return __real_poll(fds, n, timeout);
}

/* A wait with a past deadline looks at the descriptor once, with a poll that does not
 * wait; under a storm of signals (handlers without SA_RESTART) that poll fails with
 * EINTR all the same, and the wait answered -EINTR (test_deadline_edges'
 * under_a_signal_storm failed so, now and then, in CI). */
TEST(a_look_interrupted_by_a_signal_looks_again)
{
    int fds[2];
    CHECK_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    atomic_store(&poll_interruptions, 2);
    CHECK_EQ(plait_wait_fd(fds[0], PLAIT_READABLE, -1), -ETIMEDOUT);
    CHECK_EQ(write(fds[1], "x", 1), 1);
    atomic_store(&poll_interruptions, 2);
    CHECK_EQ(plait_wait_fd(fds[0], PLAIT_READABLE, 0), PLAIT_READABLE);
    CHECK_EQ(atomic_load(&poll_interruptions), 0);
    close(fds[0]);
    close(fds[1]);
}


/* ---- a removal written, the watch after it refused ---- */

/* A reader and a writer wait on a socket (one watch in the kernel, which holds the
 * socket open).  The writer's wait ends (cancelled) when the submission ring has room
 * for one request only, and the kernel refuses to take them: the watch's removal gets
 * the last entry, the reader's new watch none (it waits for room).  plait_close must
 * still close: the removal goes to the kernel, and is done, before close(2).  (It
 * stayed in the ring, the slot no longer counted as watched, and the socket open.) */
static void *close_past_a_written_removal(void *arg)
{
    (void)arg;
    int sv[2];
    filler r, w;
    plait_task rt, wt;
    reader_and_writer_in_ring(sv, &r, &rt, &w, &wt);
    enter_refusal_errno = EBUSY;
    atomic_store(&enter_refusals, -1);
    /* watches written until one entry of the ring is left */
    int n = 0;
    atomic_store(&last_to_submit, 0);
    while (n < FILLERS && atomic_load(&last_to_submit) < ring_entries - 1) {
        fillers[n].fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        CHECK_EQ(plait_spawn(&filler_tasks[n], wait_readable, &fillers[n]), 0);
        n++;
        CHECK_EQ(plait_sleep(PLAIT_MS), 0); /* it arms; the loop's sleeps are refused, counting */
    }
    CHECK_EQ(atomic_load(&last_to_submit), ring_entries - 1);
    CHECK_EQ(plait_cancel(wt), 0);
    CHECK_EQ(plait_join(wt, NULL, SOON()), -ECANCELED);
    CHECK_EQ(plait_sleep(PLAIT_MS), 0);
    CHECK_EQ(atomic_load(&last_to_submit), ring_entries); /* the removal is in */
    atomic_store(&enter_refusals, 64); /* the moment passes after 64 more refusals */
    CHECK_EQ(plait_close(sv[0]), 0);
    struct pollfd pfd = {.fd = sv[1], .events = POLLRDHUP};
    CHECK_EQ(poll(&pfd, 1, 0), 1); /* the peer sees the close at once */
    CHECK(pfd.revents & (POLLHUP | POLLRDHUP));
    atomic_store(&enter_refusals, 0);
    CHECK_EQ(plait_join(rt, NULL, SOON()), 0);
    CHECK_EQ(r.r, -EBADF);
    for (int i = 0; i < n; i++) {
        CHECK_EQ(plait_close(fillers[i].fd), 0);
        CHECK_EQ(plait_join(filler_tasks[i], NULL, SOON()), 0);
        CHECK_EQ(fillers[i].r, -EBADF);
    }
    CHECK_EQ(plait_close(sv[1]), 0);
    return NULL;
}

TEST(close_closes_past_a_removal_written_in_the_last_entry)
{
    if (!check_on_io_uring())
        return;
    check_run(close_past_a_written_removal, NULL);
    atomic_store(&enter_refusals, 0);
}


/* ---- a wait to write while the peer has shut its side ---- */

static void *wait_for_room(void *arg)
{
    filler *f = arg;
    f->r = plait_wait_fd(f->fd, PLAIT_WRITABLE, SOON());
    return NULL;
}

/* A socket with no room to write, whose peer has shut its sending side: the kernel
 * adds POLLRDHUP to every io_uring poll request, so the watch for room fires at once,
 * and each time it is made again.  The waiter must sleep until its deadline, not have
 * its scheduler enter the kernel again and again (it spun at full speed). */
static void *wait_for_room_past_a_shutdown(void *arg)
{
    (void)arg;
    int u[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, u), 0);
    static char junk[4096];
    while (write(u[0], junk, sizeof junk) > 0) { /* no room */
    }
    CHECK_EQ(shutdown(u[1], SHUT_WR), 0);
    unsigned before = atomic_load(&enters);
    CHECK_EQ(plait_wait_fd(u[0], PLAIT_WRITABLE, plait_deadline_in(100 * PLAIT_MS)),
             -ETIMEDOUT);
    unsigned made = atomic_load(&enters) - before;
    if (made >= 20)
        fprintf(stderr, "  %u calls of io_uring_enter in one wait of 100 ms\n", made);
    CHECK(made < 20);
    /* and it wakes once there is room: the peer reads */
    filler w = {.fd = u[0]};
    plait_task wt;
    CHECK_EQ(plait_spawn(&wt, wait_for_room, &w), 0);
    CHECK_EQ(plait_sleep(10 * PLAIT_MS), 0); /* it waits, its watch in the kernel */
    while (read(u[1], junk, sizeof junk) > 0) {
    }
    CHECK_EQ(plait_join(wt, NULL, SOON()), 0);
    CHECK_EQ(w.r, PLAIT_WRITABLE);
    CHECK_EQ(plait_close(u[0]), 0);
    CHECK_EQ(plait_close(u[1]), 0);
    return NULL;
}

TEST(a_wait_for_room_sleeps_past_a_peer_s_shutdown)
{
    check_run(wait_for_room_past_a_shutdown, NULL);
}

RUN_TESTS(CASE(cancel_a_read_while_the_ring_is_full),
          CASE(watches_failed_while_armed_late_run_at_once),
          CASE(a_reader_keeps_its_watch_when_no_memory_is_left_to_narrow_it),
          CASE(a_reader_is_not_left_unwatched_narrowed_with_a_full_ring_and_no_memory),
          CASE(a_reader_is_not_left_unwatched_widened_with_a_full_ring_and_no_memory),
          CASE(a_waiter_left_unwatched_after_a_fire_is_told),
          CASE(a_watch_remade_with_no_memory_says_so),
          CASE(a_wait_for_room_sleeps_past_a_peer_s_shutdown),
          CASE(close_closes_past_a_removal_written_in_the_last_entry), CASE(a_ring_that_refuses_for_good_aborts),
          CASE(a_ring_refused_in_a_wait_aborts),
          CASE(writes_keep_their_order_when_the_ring_is_refused_once),
          CASE(close_closes_when_a_watch_s_removal_is_refused_once),
          CASE(accept_goes_on_past_a_connection_s_network_error),
          CASE(transfer_goes_on_past_a_full_refused_ring),
          CASE(watches_wait_on_past_a_full_refused_ring),
          CASE(close_closes_past_a_full_refused_ring),
          CASE(inbox_watch_waits_past_a_full_refused_ring),
          CASE(a_removal_put_off_is_made_though_nobody_waits_again),
          CASE(plait_run_lets_go_of_the_files_whose_removals_were_put_off),
          CASE(plait_run_ends_though_the_kernel_refuses_the_put_off_removals),
          CASE(a_read_is_never_made_on_the_file_that_reuses_a_closed_number),
          CASE(a_look_interrupted_by_a_signal_looks_again),
          CASE(a_wait_whose_completion_is_dropped_ends),
          CASE(a_read_whose_completion_is_dropped_fails),
          CASE(a_read_goes_on_past_another_dropped_completion),
          CASE(a_read_looked_at_again_then_closed_fails),
          CASE(close_closes_when_a_removal_s_completion_is_dropped),
          CASE(close_closes_when_an_older_removal_s_completion_is_dropped),
          CASE(a_sleep_after_a_dropped_timeout_ends),
          CASE(a_wake_up_whose_completion_is_dropped_comes))
