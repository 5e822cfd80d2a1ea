/*
 * check.h — the test harness: CHECK macros, a per-test watchdog, and the closing line.
 *
 * Each test file defines its cases with TEST(name) and lists them in RUN_TESTS(...).
 * A test binary prints one line per case and closes with "N passed, N failed" (and
 * ", N skipped" when a case could not run here: CHECK_SKIP); it exits non-zero if
 * anything failed, 77 (ctest's SKIP_RETURN_CODE where set) if every case it ran was
 * skipped.  alarm() turns a hang into a failure: every
 * binary runs under PLAIT_TEST_TIMEOUT seconds (default 60) besides ctest's timeout,
 * and one that runs out prints the stacks of its threads (gdb) before it exits 2.
 * PLAIT_TEST_ONLY=NAME runs that one case (none found: a failure).
 * PLAIT_POLLER=io_uring where plait would wait on epoll: every case skipped (77), but
 * where the kernel makes the ring plait asks for (then it is a failure).
 * A forked child starts with no failures counted (pthread_atfork): the status a child
 * ends with (fork_child.h's child_exit) speaks for its own checks, not for the
 * parent's before the fork; and with an alarm CHECK_CHILD_GRACE seconds past the
 * run's (check_in_child).
 */
#ifndef PLAIT_CHECK_H
#define PLAIT_CHECK_H

#include <plait.h>

#include "io_uring_why.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* (atomic: a case checks from its threads and coroutines on other threads too) */
static atomic_int check_failures;
static const char *check_current = "";

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "  FAIL %s:%d in %s: %s\n", __FILE__, __LINE__, check_current, \
                    #cond);                                                              \
            check_failures++;                                                            \
        }                                                                                \
    } while (0)

#define CHECK_EQ(a, b)                                                                   \
    do {                                                                                 \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                  \
        if (check_a_ != check_b_) {                                                      \
            fprintf(stderr, "  FAIL %s:%d in %s: %s == %s (%lld != %lld)\n", __FILE__,    \
                    __LINE__, check_current, #a, #b, check_a_, check_b_);                \
            check_failures++;                                                            \
        }                                                                                \
    } while (0)

#define TEST(name) static void name(void)

/* The current case cannot run here (no io_uring, ptrace refused, ...): it is reported
 * as skipped, with why, not as passed.  The case returns after this. */
static const char *check_skip_reason;
#define CHECK_SKIP(why) (check_skip_reason = (why))

/* A part of the current case that cannot run here, where the rest ran (so the case is
 * not a skip): a line says so, once per case. */
static inline void check_part_not_run(const char *part, const char *why)
{
    static const char *noted; /* the case that said so */
    if (noted != check_current)
        printf("  note: %s: %s not run (%s)\n", check_current, part, why);
    noted = check_current;
}

typedef struct check_case {
    const char *name;
    void (*fn)(void);
} check_case;

/* Run fn as main of a scheduler and check that plait_run succeeded. */
static inline void check_run(plait_fn fn, void *arg)
{
    int r = plait_run(fn, arg, NULL);
    if (r != 0) {
        fprintf(stderr, "  FAIL in %s: plait_run returned %d (%s)\n", check_current, r,
                plait_strerror(r));
        check_failures++;
    }
}

/* The stacks of every thread of this process, by gdb (where installed), onto stderr:
 * what a hang in CI leaves to look at.  Called from the alarm's handler, so made of
 * system calls only: a raw clone (no fork handlers, no sanitizer's interceptor, either
 * of which may wait on a lock the hung process holds) that executes gdb, and a wait
 * of at most a minute for it. */
static void check_dump_stacks(void)
{
    char pid[24], *end = pid + sizeof pid;
    *--end = 0;
    long v = (long)getpid();
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    static char *const envp[] = {"PATH=/usr/bin:/bin", NULL};
    char *const argv[] = {"gdb", "-q", "-batch", "-nx", "-p", end,
                          "-ex", "thread apply all bt", NULL};
    prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY); /* where Yama limits ptrace to ancestors */
    long child = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (child == 0) {
        syscall(SYS_dup3, STDERR_FILENO, STDOUT_FILENO, 0);
        syscall(SYS_execve, "/usr/bin/gdb", argv, envp);
        syscall(SYS_exit_group, 127);
    }
    if (child < 0)
        return;
    for (int i = 0; i < 600; i++) { /* 60 s */
        if (syscall(SYS_wait4, (pid_t)child, NULL, WNOHANG, NULL) != 0)
            return;
        struct timespec tenth = {0, 100 * 1000 * 1000};
        nanosleep(&tenth, NULL);
    }
    kill((pid_t)child, SIGKILL);
    syscall(SYS_wait4, (pid_t)child, NULL, 0, NULL);
}

static void check_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "test timed out (hang); the stacks of its threads:\n";
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0)
        _exit(3);
    check_dump_stacks();
    _exit(2);
}

/* When the run's alarm fires (CLOCK_MONOTONIC seconds); 0: it has none. */
static time_t check_alarm_at;
enum { CHECK_CHILD_GRACE = 5 }; /* seconds a forked child may outlive the run's alarm */

/* A forked child's alarm: it says so and ends (no stacks: gdb takes tens of seconds to
 * attach to a ThreadSanitizer process, and the run's own alarm has printed the
 * parent's). */
static void check_child_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "a child of the test timed out (hang): ended\n";
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0)
        _exit(3);
    _exit(2);
}

/* In every child forked (pthread_atfork): its checks are its own, and it has an alarm
 * of its own, a few seconds past the run's (an alarm is not inherited), so that a child
 * that hangs ends too, and does not hold ctest's output open for ever (nor share the
 * CPUs with the tests after it).  A child that sets its own alarm replaces this one; a
 * program it executes keeps it (with SIGALRM's default action, which ends it too). */
static void check_in_child(void)
{
    check_failures = 0;
    if (!check_alarm_at)
        return; /* no alarm for the run (PLAIT_TEST_TIMEOUT=0, under a debugger) */
    signal(SIGALRM, check_child_alarm);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    time_t left = check_alarm_at - now.tv_sec;
    alarm((unsigned)(left > 0 ? left : 0) + CHECK_CHILD_GRACE);
}

/* PLAIT_POLLER=io_uring (ctest's io_uring runs of the I/O tests: tests/CMakeLists.txt)
 * where plait uses epoll (src/poll.c falls back to it, and a ThreadSanitizer build
 * always does): those runs would be epoll runs reported as io_uring ones.  The binary
 * says so and exits 77, every case skipped; or, where nothing but plait's own setup
 * kept it from io_uring (check_no_io_uring_why), fails (tests/check_uring_probe.c).
 * The library is asked in a child forked
 * before any thread: in this process its answer would settle the backend before the
 * cases run, some of which see how the first poller settles it (test_no_descriptors). */
static void check_io_uring_asked_for(void)
{
    const char *want = getenv("PLAIT_POLLER");
    if (!want || strcmp(want, "io_uring") != 0)
        return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(strcmp(plait_io_backend(), "io_uring") == 0 ? 0 : 1);
    int status = 0;
    pid_t r = -1;
    if (pid > 0)
        while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
        }
    if (r != pid || !WIFEXITED(status) || WEXITSTATUS(status) > 1) {
        printf("  (PLAIT_POLLER=io_uring: which poller runs here is unknown, the child "
               "asked did not say)\n");
        return;
    }
    if (WEXITSTATUS(status) == 0)
        return;
    const char *why = check_no_io_uring_why();
    if (!why) {
        printf("FAIL: io_uring asked for, and the kernel makes a ring with what plait "
               "requires, but plait waits on epoll: its own setup failed\n");
        exit(1);
    }
    printf("io_uring asked for, epoll is what runs here: %s\n", why);
    exit(77);
}

/* In a case that needs plait to wait on io_uring: true where it does; else the case is
 * skipped where PLAIT_POLLER=epoll asks for epoll or something outside plait keeps it
 * on epoll (check_no_io_uring_why), and fails where only plait's own setup can have. */
static inline bool check_on_io_uring(void)
{
    if (strcmp(plait_io_backend(), "io_uring") == 0)
        return true;
    const char *asked = getenv("PLAIT_POLLER");
    const char *why = asked && strcmp(asked, "epoll") == 0
                          ? "PLAIT_POLLER=epoll asks for epoll" /* (a run by hand: no fault) */
                          : check_no_io_uring_why();
    if (why) {
        CHECK_SKIP(why);
    } else {
        fprintf(stderr, "  FAIL in %s: plait waits on epoll, where the kernel makes a ring "
                        "with what plait requires: its own setup failed\n", check_current);
        check_failures++;
    }
    return false;
}

static inline int check_main(const check_case *cases, size_t n)
{
    pthread_atfork(NULL, NULL, check_in_child);
    const char *t = getenv("PLAIT_TEST_TIMEOUT");
    unsigned limit = t ? (unsigned)atoi(t) : 60;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    check_alarm_at = limit ? now.tv_sec + (time_t)limit : 0;
    signal(SIGALRM, check_alarm);
    alarm(limit);
    check_io_uring_asked_for();
    /* PLAIT_TEST_ONLY=NAME runs that case alone (to look at one, under a debugger) */
    const char *only = getenv("PLAIT_TEST_ONLY");
    int passed = 0, failed = 0, skipped = 0;
    for (size_t i = 0; i < n; i++) {
        if (only && *only && strcmp(only, cases[i].name) != 0)
            continue;
        int before = check_failures;
        check_current = cases[i].name;
        check_skip_reason = NULL;
        cases[i].fn();
        if (check_failures == before && check_skip_reason) {
            skipped++;
            printf("skip %s (%s)\n", cases[i].name, check_skip_reason);
        } else if (check_failures == before) {
            passed++;
            printf("ok   %s\n", cases[i].name);
        } else {
            failed++;
            printf("FAIL %s\n", cases[i].name);
        }
        fflush(stdout);
    }
    if (skipped)
        printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    else
        printf("%d passed, %d failed\n", passed, failed);
    if (only && *only && passed + failed + skipped == 0)
        fprintf(stderr, "PLAIT_TEST_ONLY=%s: no such case\n", only);
    if (failed)
        return 1;
    return passed ? 0 : skipped ? 77 : 1;
}

#define RUN_TESTS(...)                                                                   \
    int main(void)                                                                       \
    {                                                                                    \
        static const check_case cases_[] = {__VA_ARGS__};                                \
        return check_main(cases_, sizeof cases_ / sizeof cases_[0]);                     \
    }
#define CASE(fn) {#fn, fn}

/* Crashes are part of what the tests check (a child process that segfaults must be
 * reported as killed by SIGSEGV): under a sanitizer, let the signal take its default
 * action instead of the sanitizer's report-and-exit.  Memory errors are still caught
 * by the instrumentation itself.  Children that start threads (a process that starts
 * processes has a manager thread) are allowed under ThreadSanitizer. */
#if defined(__SANITIZE_ADDRESS__)
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "handle_segv=0:handle_sigbus=0"; }
#endif
#if defined(__SANITIZE_THREAD__)
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) { return "handle_segv=0:handle_sigbus=0:die_after_fork=0"; }
#endif

/* clang's AddressSanitizer calls __asan_memcpy where the source says memcpy: a test that
 * wraps memcpy (-Wl,--wrap=memcpy) wraps that too in such a build (tests/CMakeLists.txt)
 * and sends it to its __wrap_memcpy with this, written after that. */
#if defined(__clang__) && defined(__SANITIZE_ADDRESS__)
#define CHECK_WRAP_ASAN_MEMCPY                                                           \
    void *__wrap___asan_memcpy(void *dst, const void *src, size_t n);                    \
    void *__wrap___asan_memcpy(void *dst, const void *src, size_t n)                     \
    {                                                                                    \
        return __wrap_memcpy(dst, src, n);                                               \
    }
#else
#define CHECK_WRAP_ASAN_MEMCPY
#endif

/* True under a sanitizer build (the million-coroutine tests scale down there). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CHECK_SANITIZED 1
#else
#define CHECK_SANITIZED 0
#endif
/* True where a child forked while another thread allocates may hang in the sanitizer's
 * allocator, whose lock it inherits taken: gcc 12's ASan (no fork handlers; clang's has
 * them, docs/ARCHITECTURE.md, "Sanitizers"); ThreadSanitizer is counted in, untried. */
#if (defined(__SANITIZE_ADDRESS__) && !defined(__clang__)) || defined(__SANITIZE_THREAD__)
#define CHECK_FORK_BESIDE_ALLOCATION_HANGS 1
#else
#define CHECK_FORK_BESIDE_ALLOCATION_HANGS 0
#endif
/* True where a child that plait forks is slow to end: under a sanitizer, and in a
 * coverage build (scripts/test.sh coverage), whose children write their counts into the
 * .gcda files that every test program of the suite shares as they end (process.c): a
 * second or more while the suite's other programs do the same. */
#if CHECK_SANITIZED || defined(PLAIT_COVERAGE)
#define CHECK_SLOW_CHILDREN 1
#else
#define CHECK_SLOW_CHILDREN 0
#endif
/* Each coroutine costs ThreadSanitizer a thread state of its own (some 770 KiB, mapped
 * and zeroed as the coroutine is made): a test that repeats a race for many rounds of
 * thousands of coroutines runs fewer rounds under it (120,000 coroutines took minutes). */
#if defined(__SANITIZE_THREAD__)
#define CHECK_TSAN 1
#else
#define CHECK_TSAN 0
#endif
/* ThreadSanitizer counts each coroutine (fiber) against its 8128-thread limit, and a
 * fiber alive costs it 0.9 MB that it clears (4 ms each on a slow virtual machine). */
#if defined(__SANITIZE_THREAD__)
#define CHECK_MAX_COROUTINES 2000
#elif CHECK_SANITIZED
#define CHECK_MAX_COROUTINES 50000
#else
#define CHECK_MAX_COROUTINES 1000000
#endif
/* The smallest stack a test coroutine that blocks can live on: sanitizer frames are
 * several times larger. */
#define CHECK_SMALL_STACK (CHECK_SANITIZED ? 16 * PLAIT_STACK_MIN : PLAIT_STACK_MIN)

#endif
