/*
 * check.h — the test harness: CHECK macros, a per-test watchdog, and the closing line.
 *
 * Each test file defines its cases with TEST(name) and lists them in RUN_TESTS(...).
 * A test binary prints one line per case and closes with "N passed, N failed"; it
 * exits non-zero if anything failed.  alarm() turns a hang into a failure: every
 * binary runs under PLAIT_TEST_TIMEOUT seconds (default 60) besides ctest's timeout.
 * PLAIT_TEST_ONLY=NAME runs that one case (none found: a failure).
 */
#ifndef PLAIT_CHECK_H
#define PLAIT_CHECK_H

#include <plait.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int check_failures;
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

static void check_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "test timed out (hang)\n";
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0)
        _exit(3);
    _exit(2);
}

static inline int check_main(const check_case *cases, size_t n)
{
    const char *t = getenv("PLAIT_TEST_TIMEOUT");
    signal(SIGALRM, check_alarm);
    alarm(t ? (unsigned)atoi(t) : 60);
    /* PLAIT_TEST_ONLY=NAME runs that case alone (to look at one, under a debugger) */
    const char *only = getenv("PLAIT_TEST_ONLY");
    int passed = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (only && *only && strcmp(only, cases[i].name) != 0)
            continue;
        int before = check_failures;
        check_current = cases[i].name;
        cases[i].fn();
        if (check_failures == before) {
            passed++;
            printf("ok   %s\n", cases[i].name);
        } else {
            failed++;
            printf("FAIL %s\n", cases[i].name);
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed\n", passed, failed);
    if (only && *only && passed + failed == 0)
        fprintf(stderr, "PLAIT_TEST_ONLY=%s: no such case\n", only);
    return failed || passed == 0 ? 1 : 0;
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

/* True under a sanitizer build (the million-coroutine tests scale down there). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CHECK_SANITIZED 1
#else
#define CHECK_SANITIZED 0
#endif
/* Each coroutine costs ThreadSanitizer a thread state of its own (some 770 KiB, mapped
 * and zeroed as the coroutine is made): a test that repeats a race for many rounds of
 * thousands of coroutines runs fewer rounds under it (120,000 coroutines took minutes). */
#if defined(__SANITIZE_THREAD__)
#define CHECK_TSAN 1
#else
#define CHECK_TSAN 0
#endif
/* ThreadSanitizer counts each coroutine (fiber) against its 8128-thread limit. */
#if defined(__SANITIZE_THREAD__)
#define CHECK_MAX_COROUTINES 6000
#elif CHECK_SANITIZED
#define CHECK_MAX_COROUTINES 50000
#else
#define CHECK_MAX_COROUTINES 1000000
#endif
/* The smallest stack a test coroutine that blocks can live on: sanitizer frames are
 * several times larger. */
#define CHECK_SMALL_STACK (CHECK_SANITIZED ? 16 * PLAIT_STACK_MIN : PLAIT_STACK_MIN)

#endif
