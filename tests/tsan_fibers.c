/*
 * tsan_fibers.c (test_tsan_fibers, ThreadSanitizer builds only) — what ThreadSanitizer
 * reports about coroutines whose fibers were used before.
 *
 * Under ThreadSanitizer each coroutine is a fiber, and an ended coroutine's fiber goes to
 * the next coroutine of its scheduler (sched.c, "ThreadSanitizer's fibers").  Each case
 * runs a scenario in a forked child that first ends REUSES coroutines one after the other
 * on its scheduler, then races (or does not) between a coroutine and a plain thread, and
 * reads the child's report:
 *  - a race is reported, with the coroutine's own frames at the bottom of its stack: a
 *    fiber that kept the frames of its last switch from coroutine to coroutine would show
 *    hundreds of them there (or, with a frame too many taken off, a broken report);
 *  - a race is still reported after an earlier coroutine on the same fiber synchronised
 *    with the thread (what the fiber's clock carries over is no licence for later);
 *  - accesses ordered by a plait event are not reported.
 * The child's status: 66 where ThreadSanitizer reported (its exitcode), 0 where not.
 */
#include "check.h"

#include <stdatomic.h>
#include <stdint.h>

enum { REUSES = 300 };

static int shared_word;
static atomic_int step; /* relaxed only: to ThreadSanitizer no order at all */
static plait_event *ordered;

static void *returns(void *arg) { return arg; }

/* REUSES coroutines, each ended before the next is spawned. */
static void reuse_fibers(void)
{
    for (int i = 0; i < REUSES; i++) {
        plait_task t;
        CHECK_EQ(plait_spawn(&t, returns, NULL), 0);
        CHECK_EQ(plait_join(t, NULL, PLAIT_FOREVER), 0);
    }
}

__attribute__((noipa)) static void coroutine_writes_the_word(void) { shared_word = 1; }
__attribute__((noipa)) static int thread_reads_the_word(void) { return shared_word; }
__attribute__((noipa)) static void thread_writes_the_word(void) { shared_word = 2; }
__attribute__((noipa)) static int coroutine_reads_the_word(void) { return shared_word; }

static void wait_for_step(int n)
{
    while (atomic_load_explicit(&step, memory_order_relaxed) < n)
        sched_yield();
}

/* ---- scenario 1: a coroutine writes, then a thread reads, unordered ---- */
static void *racing_writer(void *arg)
{
    (void)arg;
    coroutine_writes_the_word();
    atomic_store_explicit(&step, 1, memory_order_relaxed);
    return NULL;
}
static void *reader_thread(void *arg)
{
    (void)arg;
    wait_for_step(1);
    return (void *)(intptr_t)thread_reads_the_word();
}
static void *write_after_reuse(void *arg)
{
    (void)arg;
    reuse_fibers();
    plait_task t;
    CHECK_EQ(plait_spawn(&t, racing_writer, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, PLAIT_FOREVER), 0);
    return NULL;
}

/* ---- scenario 2: a thread writes after an earlier coroutine synchronised with it ---- */
static void *synchronises_then_ends(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_event_wait(ordered, PLAIT_FOREVER), 0); /* the thread's set: acquired */
    return NULL;
}
static void *racing_reader(void *arg)
{
    (void)arg;
    wait_for_step(1);
    return (void *)(intptr_t)coroutine_reads_the_word();
}
static void *writer_thread(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_event_set(ordered), 0);
    thread_writes_the_word(); /* after the set: unordered with what waits for it */
    atomic_store_explicit(&step, 1, memory_order_relaxed);
    return NULL;
}
static void *read_after_synchronised_reuse(void *arg)
{
    (void)arg;
    plait_task t;
    CHECK_EQ(plait_spawn(&t, synchronises_then_ends, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, PLAIT_FOREVER), 0);
    reuse_fibers();
    CHECK_EQ(plait_spawn(&t, racing_reader, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, PLAIT_FOREVER), 0);
    return NULL;
}

/* ---- scenario 3: a coroutine writes and sets an event; the thread waits, then reads ---- */
static void *ordered_writer(void *arg)
{
    (void)arg;
    coroutine_writes_the_word();
    CHECK_EQ(plait_event_set(ordered), 0);
    return NULL;
}
static void *ordered_reader_thread(void *arg)
{
    (void)arg;
    CHECK_EQ(plait_event_wait(ordered, PLAIT_FOREVER), 0);
    return (void *)(intptr_t)thread_reads_the_word();
}
static void *ordered_after_reuse(void *arg)
{
    (void)arg;
    reuse_fibers();
    plait_task t;
    CHECK_EQ(plait_spawn(&t, ordered_writer, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, PLAIT_FOREVER), 0);
    return NULL;
}

/* In a child: a thread running thread_fn beside a scheduler running main_fn; the child's
 * stderr (ThreadSanitizer's report) into out.  Returns the child's exit status, -1 if it
 * did not exit. */
static int run_child(plait_fn main_fn, void *(*thread_fn)(void *), char *out, size_t size)
{
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        if (plait_event_create(&ordered) != 0)
            _exit(3);
        pthread_t th;
        if (pthread_create(&th, NULL, thread_fn, NULL) != 0)
            _exit(3);
        if (plait_run(main_fn, NULL, NULL) != 0 || pthread_join(th, NULL) != 0)
            _exit(3);
        exit(check_failures ? 4 : 0); /* (exit: ThreadSanitizer's 66 where it reported) */
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t n;
    char spill[4096];
    while ((n = read(fds[0], len < size - 1 ? out + len : spill,
                     len < size - 1 ? size - 1 - len : sizeof spill)) > 0)
        if (len < size - 1)
            len += (size_t)n; /* (past the buffer: read to the end all the same) */
    out[len] = '\0';
    close(fds[0]);
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The frames of the access whose first frame names `first`: how many lines "#N ..."
 * follow (that one included) up to the blank line that ends the stack; 0 if not found. */
static int frames_below(const char *report, const char *first)
{
    const char *p = strstr(report, first);
    if (!p)
        return 0;
    while (p > report && p[-1] != '\n') /* to the line's start */
        p--;
    int frames = 0;
    while (*p == ' ') {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *hash = memchr(p, '#', len);
        if (!hash)
            break;
        frames++;
        if (!end)
            break;
        p = end + 1;
    }
    return frames;
}

static void print_report(const char *out)
{
    fprintf(stderr, "  the child's report:\n%s\n", out);
}

TEST(race_of_a_coroutine_on_a_reused_fiber_is_reported_with_its_own_frames)
{
    static char out[1 << 16];
    int status = run_child(write_after_reuse, reader_thread, out, sizeof out);
    CHECK_EQ(status, 66);
    CHECK(strstr(out, "WARNING: ThreadSanitizer: data race") != NULL);
    CHECK(strstr(out, "thread_reads_the_word") != NULL);
    /* its stack: the write, the coroutine's function, and plait's frames that called it
     * (coro_run, and the call site in coro_entry); not one more frame for each earlier
     * coroutine's last switch (the call site of switch_to in coro_entry, REUSES times) */
    int frames = frames_below(out, "coroutine_writes_the_word");
    CHECK(frames >= 2 && frames <= 4);
    CHECK(strstr(out, "racing_writer") != NULL);
#ifndef PLAIT_CONTEXT_UCONTEXT /* (whose builds keep no fiber: sched.c) */
    /* the fiber was reused: it was made for a coroutine of reuse_fibers, and the
     * report's "created at" names that spawn (write_after_reuse's, were it new) */
    CHECK(strstr(out, "reuse_fibers") != NULL);
#endif
    if (check_failures)
        print_report(out);
}

TEST(race_after_an_earlier_coroutine_synchronised_is_reported)
{
    static char out[1 << 16];
    int status = run_child(read_after_synchronised_reuse, writer_thread, out, sizeof out);
    CHECK_EQ(status, 66);
    CHECK(strstr(out, "WARNING: ThreadSanitizer: data race") != NULL);
    CHECK(strstr(out, "coroutine_reads_the_word") != NULL);
    CHECK(strstr(out, "thread_writes_the_word") != NULL);
    int frames = frames_below(out, "coroutine_reads_the_word");
    CHECK(frames >= 2 && frames <= 4);
    if (check_failures)
        print_report(out);
}

TEST(accesses_ordered_by_an_event_are_not_reported)
{
    static char out[1 << 16];
    int status = run_child(ordered_after_reuse, ordered_reader_thread, out, sizeof out);
    CHECK_EQ(status, 0);
    CHECK(strstr(out, "ThreadSanitizer") == NULL);
    if (check_failures)
        print_report(out);
}

RUN_TESTS(CASE(race_of_a_coroutine_on_a_reused_fiber_is_reported_with_its_own_frames),
          CASE(race_after_an_earlier_coroutine_synchronised_is_reported),
          CASE(accesses_ordered_by_an_event_are_not_reported))
