/*
 * test_pthread_cancel_sites.c — pthread_cancel against plait's own calls: no plait call
 * is a cancellation point (docs/ARCHITECTURE.md, "pthread_cancel"), so a thread with
 * a pthread_cancel pending, or one that arrives while it is inside plait, unwinds only
 * at a cancellation point of its own, never half way through plait's state.  Each case
 * has the thread reach a site that was a cancellation point, then checks that the call
 * finished and that what it used still works for others.
 *
 *   thread_cancelled_waiting_on_a_descriptor: a plain thread waiting on a pipe
 *       (ppoll, wrapped to say when it is reached) is cancelled there: it unwound with
 *       its wait still linked, by descriptor, on its dead stack, where the next
 *       plait_close of the number walked (here it crashed on the stack reused).
 *   scheduler_cancelled_in_its_poller: the thread of a scheduler asleep in epoll_wait
 *       (epoll_pwait2 now, through syscall(2), where the kernel has it)
 *       (a coroutine reading a pipe) is cancelled there: the scheduler and its
 *       coroutines were left for ever, the read never returned.
 *   coroutine_with_a_cancellation_pending: a coroutine that asks for its thread's
 *       cancellation, then writes to a pipe: write(2) acted on it, ending the
 *       scheduler under its coroutines.
 *   connect_with_a_cancellation_pending: a thread with a pthread_cancel pending
 *       connects: its socket, made before connect(2) acted on the cancellation, was
 *       left open.
 *   process_start_with_a_cancellation_pending: a thread with a pthread_cancel pending
 *       starts a function in a child process: the flush of the streams before the fork
 *       acted on it, leaving the process's record and future half made.
 *   pool_create_that_fails_with_a_cancellation_pending: a thread with a pthread_cancel
 *       pending makes a thread pool whose second worker the system refuses: the
 *       pthread_join of the first, as the create gave up, acted on it, leaving the pool
 *       and the create never returning.
 *   channel_receive_with_a_cancellation_pending: a thread with a pthread_cancel
 *       pending sleeps in a channel's receive (a futex wait: raw system calls, no
 *       cancellation point of plait's own) when a signal comes whose handler, the
 *       program's, calls write(2): that acted on the cancellation inside the wait when
 *       the wait left cancellation on (tried in session 41, for its two locked
 *       instructions), and the thread unwound with its wait linked on its dead stack,
 *       where the send that came next handed the element to.
 *   signal_during_a_wake_up: a watched signal's handler runs on a thread with a
 *       pthread_cancel pending while it wakes a semaphore's waiter, its lock held: the
 *       handler's write(2) acted on the cancellation, the lock stayed held and the
 *       waiter was never woken.
 */
#include "check.h"
#define CHECK_WRAP_SYSCALL
#include "helpers.h"

#include <fcntl.h>
#include <linux/time_types.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>

/* The poller is epoll's, whose wait may be a libc call, epoll_wait, a cancellation point
 * (io_uring's is a raw system call, which no pthread_cancel acts on; so is
 * epoll_pwait2, where the kernel has it, but the loop's other calls are libc's). */
__attribute__((constructor)) static void poller_is_epoll(void)
{
    setenv("PLAIT_POLLER", "epoll", 1);
}

enum { NOT_RETURNED = -12345 }; /* no -errno: the call never returned */

/* ---- the sites, wrapped: each says when the watched thread reaches it ---- */

static _Thread_local bool reports_arrival; /* set by the thread under test */
static atomic_int arrived;

/* The thread under test reports its first arrival at a wrapped site: true then. */
static bool arriving(void)
{
    if (!reports_arrival)
        return false;
    reports_arrival = false;
    atomic_store(&arrived, 1);
    return true;
}

int __real_ppoll(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
                 const sigset_t *mask);
int __wrap_ppoll(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
                 const sigset_t *mask);
int __wrap_ppoll(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
                 const sigset_t *mask)
{
    arriving();
    return __real_ppoll(fds, n, timeout, mask);
}

int __real_epoll_wait(int epfd, void *events, int max, int timeout);
int __wrap_epoll_wait(int epfd, void *events, int max, int timeout);
int __wrap_epoll_wait(int epfd, void *events, int max, int timeout)
{
    if (timeout != 0)
        arriving();
    return __real_epoll_wait(epfd, events, max, timeout);
}

/* The scheduler's sleep in epoll_pwait2 (through syscall(2)), where the kernel has it;
 * epoll_wait where it has not. */
static long wrapped_syscall(long n, const long a[6])
{
#ifdef SYS_epoll_pwait2
    const struct __kernel_timespec *timeout = (const void *)a[3];
    if (n == SYS_epoll_pwait2 && (!timeout || timeout->tv_sec || timeout->tv_nsec))
        arriving();
#endif
    return real_syscall(n, a);
}

struct plait__waiter;
void __real_plait__waiter_signal(struct plait__waiter *w, int status, int index, void *later);
void __wrap_plait__waiter_signal(struct plait__waiter *w, int status, int index, void *later);
void __wrap_plait__waiter_signal(struct plait__waiter *w, int status, int index, void *later)
{
    if (arriving()) /* the handler runs on this thread, here, before it goes on */
        pthread_kill(pthread_self(), SIGUSR1);
    __real_plait__waiter_signal(w, status, index, later);
}

/* pthread_create refuses the calling thread's Nth thread from now (0: none). */
static _Thread_local int creates_to_refusal;

int __real_pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *),
                          void *arg);
int __wrap_pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *),
                          void *arg);
int __wrap_pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *),
                          void *arg)
{
    if (creates_to_refusal && --creates_to_refusal == 0)
        return EAGAIN;
    return __real_pthread_create(th, attr, fn, arg);
}

/* The calling thread's next arrival at a wrapped site is reported in `arrived`. */
static void report_arrival(void)
{
    reports_arrival = true;
}

/* ---- cases ---- */

/* Join th, which must have ended at a cancellation point of its own. */
static void join_cancelled(pthread_t th)
{
    void *ended = NULL;
    CHECK_EQ(pthread_join(th, &ended), 0);
    CHECK(ended == PTHREAD_CANCELED);
}

static int pipe_fds[2];
static atomic_int waited = NOT_RETURNED;

static void *wait_on_pipe(void *unused)
{
    (void)unused;
    report_arrival();
    atomic_store(&waited, plait_wait_fd(pipe_fds[0], PLAIT_READABLE, SOON()));
    pthread_testcancel();
    return NULL;
}

TEST(thread_cancelled_waiting_on_a_descriptor)
{
    CHECK_EQ(pipe(pipe_fds), 0);
    /* the thread's stack is ours, to be reused (written over) once it is joined */
    size_t stack_size = 2u << 20; /* ThreadSanitizer's floor is some 900 KiB */
    void *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
    CHECK(stack != MAP_FAILED);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstack(&attr, stack, stack_size);
    pthread_t th;
    atomic_store(&waited, NOT_RETURNED);
    atomic_store(&arrived, 0);
    int created = pthread_create(&th, &attr, wait_on_pipe, NULL);
    pthread_attr_destroy(&attr);
    CHECK_EQ(created, 0);
    if (created != 0)
        return;
    wait_for(&arrived);
    CHECK_EQ(pthread_cancel(th), 0);
    CHECK_EQ(write(pipe_fds[1], "x", 1), 1); /* the wait ends with the descriptor ready */
    join_cancelled(th); /* at its own cancellation point, after the wait */
    CHECK_EQ(atomic_load(&waited), PLAIT_READABLE);
    memset(stack, 0xa5, stack_size);
    CHECK_EQ(plait_close(pipe_fds[0]), 0); /* finds no wait of the dead thread */
    CHECK_EQ(close(pipe_fds[1]), 0);
    munmap(stack, stack_size);
}

/* A scheduler's thread: main is fn; what main returned (or plait_run's failure) goes
 * to `result`, then the thread acts on a pthread_cancel pending. */
typedef struct scheduler_run {
    plait_fn fn;
    atomic_int result;
} scheduler_run;

/* (Out of line, as every call with locals whose address is taken before a
 * pthread_testcancel: AddressSanitizer does not clear the redzones of frames a
 * cancellation unwinds, and took the thread's exit in them for an overflow.) */
__attribute__((noinline)) static void scheduler_runs(scheduler_run *run)
{
    void *n = NULL;
    report_arrival();
    int r = plait_run(run->fn, NULL, &n);
    atomic_store(&run->result, r < 0 ? r : INT(n));
}

static void *run_scheduler(void *arg)
{
    scheduler_runs(arg);
    pthread_testcancel();
    return NULL;
}

/* Run a scheduler thread for run and join it (it must end cancelled); cancel it first
 * once it sleeps in its poller, then give its read a byte. */
static void run_scheduler_thread(scheduler_run *run, bool cancel_it_in_its_poller)
{
    atomic_store(&run->result, NOT_RETURNED);
    atomic_store(&arrived, 0);
    pthread_t th;
    thread_start(&th, run_scheduler, run);
    if (cancel_it_in_its_poller) {
        wait_for(&arrived);
        CHECK_EQ(pthread_cancel(th), 0);
        CHECK_EQ(write(pipe_fds[1], "x", 1), 1); /* the read goes on */
    }
    join_cancelled(th);
}

static void *read_pipe(void *unused)
{
    (void)unused;
    char c;
    return (void *)(intptr_t)plait_read(pipe_fds[0], &c, 1, SOON());
}

TEST(scheduler_cancelled_in_its_poller)
{
    CHECK_EQ(pipe2(pipe_fds, O_NONBLOCK), 0);
    scheduler_run run = {.fn = read_pipe};
    run_scheduler_thread(&run, true);
    CHECK_EQ(atomic_load(&run.result), 1); /* the coroutine read its byte */
    CHECK_EQ(plait_close(pipe_fds[0]), 0);
    CHECK_EQ(close(pipe_fds[1]), 0);
}

static void *cancel_itself_and_write(void *unused)
{
    (void)unused;
    CHECK_EQ(pthread_cancel(pthread_self()), 0);
    return (void *)(intptr_t)plait_write(pipe_fds[1], "x", 1, SOON());
}

TEST(coroutine_with_a_cancellation_pending)
{
    CHECK_EQ(pipe2(pipe_fds, O_NONBLOCK), 0);
    scheduler_run run = {.fn = cancel_itself_and_write};
    run_scheduler_thread(&run, false);
    CHECK_EQ(atomic_load(&run.result), 1);
    char c;
    CHECK_EQ(read(pipe_fds[0], &c, 1), 1);
    CHECK_EQ(close(pipe_fds[0]), 0);
    CHECK_EQ(close(pipe_fds[1]), 0);
}

static plait_addr listener_addr;
static atomic_int connected = NOT_RETURNED;

static void *cancel_itself_and_connect(void *unused)
{
    (void)unused;
    CHECK_EQ(pthread_cancel(pthread_self()), 0);
    atomic_store(&connected, plait_connect(&listener_addr, SOON()));
    pthread_testcancel();
    return NULL;
}

TEST(connect_with_a_cancellation_pending)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/plait-cancel-sites-%d", (int)getpid());
    unlink(path);
    CHECK_EQ(plait_addr_unix(&listener_addr, path), 0);
    int listener = plait_listen(&listener_addr, 8);
    CHECK(listener >= 0);
    int fds_before = count_fds();
    atomic_store(&connected, NOT_RETURNED);
    pthread_t th;
    thread_start(&th, cancel_itself_and_connect, NULL);
    join_cancelled(th);
    int c = atomic_load(&connected);
    CHECK(c >= 0);
    if (c >= 0)
        CHECK_EQ(plait_close(c), 0);
    CHECK_EQ(count_fds(), fds_before); /* no socket left behind */
    CHECK_EQ(plait_close(listener), 0);
    unlink(path);
}

static plait_chan *cancel_chan;
static atomic_int receiver_tid, received = NOT_RETURNED, receive_result = NOT_RETURNED;
static int handler_pipe[2] = {-1, -1};
static atomic_int handled;

/* The program's own handler: a write(2), a cancellation point. */
static void write_in_handler(int sig)
{
    (void)sig;
    atomic_store(&handled, 1);
    char byte = 1;
    ssize_t n = write(handler_pipe[1], &byte, 1);
    (void)n;
}

static void *cancel_itself_and_receive(void *unused)
{
    (void)unused;
    CHECK_EQ(pthread_cancel(pthread_self()), 0);
    int v = 0;
    atomic_store(&receiver_tid, gettid_());
    atomic_store(&receive_result, plait_chan_recv(cancel_chan, &v, SOON()));
    atomic_store(&received, v);
    pthread_testcancel();
    return NULL;
}

TEST(channel_receive_with_a_cancellation_pending)
{
    CHECK_EQ(plait_chan_create(&cancel_chan, sizeof(int), 0), 0);
    atomic_store(&receiver_tid, 0);
    pthread_t th;
    thread_start(&th, cancel_itself_and_receive, NULL);
    wait_asleep(&receiver_tid); /* in the futex wait, past its look */
    CHECK_EQ(pipe(handler_pipe), 0);
    atomic_store(&handled, 0);
    struct sigaction sa = {.sa_handler = write_in_handler}, old;
    sigemptyset(&sa.sa_mask);
    CHECK_EQ(sigaction(SIGUSR2, &sa, &old), 0);
    CHECK_EQ(pthread_kill(th, SIGUSR2), 0);
    while (!atomic_load(&handled)) /* the handler runs on the waiting thread */
        sched_yield();
    int v = 4242;
    CHECK_EQ(plait_chan_send(cancel_chan, &v, SOON()), 0);
    join_cancelled(th);
    CHECK_EQ(atomic_load(&receive_result), 0);
    CHECK_EQ(atomic_load(&received), 4242);
    CHECK_EQ(plait_chan_destroy(cancel_chan), 0);
    CHECK_EQ(sigaction(SIGUSR2, &old, NULL), 0);
    close(handler_pipe[0]);
    close(handler_pipe[1]);
}

static atomic_int started = NOT_RETURNED, squared = NOT_RETURNED;

__attribute__((noinline)) static void start_a_process(void) /* (see scheduler_runs) */
{
    int64_t x = 12;
    plait_task t;
    atomic_store(&started, plait_process_start(&t, proc_square, &x, sizeof x, NULL, NULL));
    void *v = NULL;
    if (atomic_load(&started) == 0 && plait_join(t, &v, SOON()) == 0) {
        memcpy(&x, ((plait_bytes *)v)->data, sizeof x);
        atomic_store(&squared, (int)x);
    }
    free(v);
}

static void *cancel_itself_and_start_a_process(void *unused)
{
    (void)unused;
    CHECK_EQ(pthread_cancel(pthread_self()), 0);
    start_a_process();
    pthread_testcancel();
    return NULL;
}

TEST(process_start_with_a_cancellation_pending)
{
    /* a stream with bytes in its buffer: the start's fflush(NULL) before its fork writes
     * them, write(2) a cancellation point */
    FILE *buffered = fopen("/dev/null", "w");
    CHECK(buffered != NULL);
    if (!buffered)
        return;
    fputs("not yet written", buffered);
    atomic_store(&started, NOT_RETURNED);
    atomic_store(&squared, NOT_RETURNED);
    pthread_t th;
    thread_start(&th, cancel_itself_and_start_a_process, NULL);
    join_cancelled(th);
    CHECK_EQ(atomic_load(&started), 0);
    CHECK_EQ(atomic_load(&squared), 144);
    fclose(buffered);
}

static atomic_int pool_made = NOT_RETURNED;

__attribute__((noinline)) static void make_a_pool(void) /* (see scheduler_runs) */
{
    creates_to_refusal = 2;
    plait_pool *pool = NULL;
    atomic_store(&pool_made, plait_pool_create(&pool, &(plait_pool_options){.threads = 3}));
    creates_to_refusal = 0;
}

static void *cancel_itself_and_make_a_pool(void *unused)
{
    (void)unused;
    CHECK_EQ(pthread_cancel(pthread_self()), 0);
    make_a_pool();
    pthread_testcancel();
    return NULL;
}

TEST(pool_create_that_fails_with_a_cancellation_pending)
{
    atomic_store(&pool_made, NOT_RETURNED);
    pthread_t th;
    thread_start(&th, cancel_itself_and_make_a_pool, NULL);
    join_cancelled(th);
    CHECK_EQ(atomic_load(&pool_made), -EAGAIN); /* the first worker joined, the pool freed */
}

static plait_sem *sem;
static atomic_int released = NOT_RETURNED, acquired, acquirer_tid;

static void *acquire_sem(void *unused)
{
    (void)unused;
    atomic_store(&acquirer_tid, gettid_());
    CHECK_EQ(plait_sem_acquire(sem, SOON()), 0);
    atomic_store(&acquired, 1);
    return NULL;
}

static void *cancel_itself_and_release(void *unused)
{
    (void)unused;
    report_arrival();
    CHECK_EQ(pthread_cancel(pthread_self()), 0);
    atomic_store(&released, plait_sem_release(sem));
    pthread_testcancel();
    return NULL;
}

TEST(signal_during_a_wake_up)
{
    plait_signals *watcher;
    CHECK_EQ(plait_signals_create(&watcher, (int[]){SIGUSR1}, 1), 0);
    CHECK_EQ(plait_sem_create(&sem, 0), 0);
    atomic_store(&acquired, 0);
    atomic_store(&released, NOT_RETURNED);
    atomic_store(&acquirer_tid, 0);
    pthread_t waiter, releaser;
    thread_start(&waiter, acquire_sem, NULL);
    wait_asleep(&acquirer_tid); /* queued on the semaphore */
    atomic_store(&arrived, 0);
    thread_start(&releaser, cancel_itself_and_release, NULL);
    CHECK(wait_for_flag(&acquired)); /* not if the releaser unwound holding the lock */
    if (!atomic_load(&acquired))
        return; /* both threads are stuck: nothing more to look at */
    join_cancelled(releaser);
    CHECK_EQ(atomic_load(&released), 0);
    thread_join(waiter);
    CHECK_EQ(plait_signals_wait(watcher, SOON()), SIGUSR1); /* the signal was seen */
    CHECK_EQ(atomic_load(&arrived), 1); /* the handler ran inside the wake-up */
    CHECK_EQ(plait_sem_destroy(sem), 0);
    CHECK_EQ(plait_signals_destroy(watcher), 0);
}

RUN_TESTS(CASE(scheduler_cancelled_in_its_poller), CASE(coroutine_with_a_cancellation_pending),
          CASE(connect_with_a_cancellation_pending),
          CASE(process_start_with_a_cancellation_pending),
          CASE(pool_create_that_fails_with_a_cancellation_pending), CASE(signal_during_a_wake_up),
          CASE(thread_cancelled_waiting_on_a_descriptor),
          CASE(channel_receive_with_a_cancellation_pending))
