/*
 * bench_common.h — the few helpers every plait benchmark shares.
 *
 * Each benchmark prints one figure per line, `<bench> <impl> <unit> <value>`, so
 * bench/run.sh can take medians over runs and ratios against the peers measured
 * in the same run.  A benchmark that sees a plait call fail says which and exits
 * non-zero: a figure from a run that went wrong is worse than none.
 */
#ifndef PLAIT_BENCH_COMMON_H
#define PLAIT_BENCH_COMMON_H

/* First include of every benchmark: clock_gettime, fork and friends under -std=c17. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "plait.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline long long bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The count given as argv[1], or fallback; exits with usage on garbage or a count over
 * max: the largest for which the benchmark's own arithmetic on it (a scale times the
 * messages per unit, a warm-up added, an array's bytes) cannot overflow.  (Without
 * it a count that overflowed ran no work, or work of another size, and printed a
 * figure all the same: bench_queue 10000000000000 printed -134050319169540 msgs/s.) */
static inline long long bench_count(int argc, char **argv, long long fallback, const char *what,
                                    long long max)
{
    if (argc < 2)
        return fallback;
    char *end;
    errno = 0;
    long long n = strtoll(argv[1], &end, 10);
    if (*argv[1] == '\0' || *end != '\0' || errno == ERANGE || n <= 0 || n > max) {
        fprintf(stderr, "usage: %s [%s]   (1 to %lld)\n", argv[0], what, max);
        exit(2);
    }
    return n;
}

/* Stop the benchmark when a plait call fails. */
#define BENCH_CHECK(call)                                                              \
    do {                                                                               \
        int bench_rc_ = (call);                                                        \
        if (bench_rc_ < 0) {                                                           \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call,              \
                    plait_strerror(bench_rc_));                                        \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

#endif
