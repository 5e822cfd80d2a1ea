/*
 * peer_ucontext_switch.c — glibc ucontext peer of bench_switch.c: ns per
 * swapcontext() switch.  swapcontext saves and restores the signal mask with a
 * system call each time, which is why it is two orders of magnitude slower than a
 * user-space switch; this is the figure the textbooks' "coroutines with
 * ucontext" pay.
 *
 * Usage: peer_ucontext_switch [round_trips]   (default 1,000,000)
 * Prints: switch ucontext ns_per_op <ns per swapcontext>
 */
#ifndef _GNU_SOURCE /* CMake defines it for every file */
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <ucontext.h>

static ucontext_t main_ctx, coro_ctx;

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void bounce(void)
{
    for (;;)
        swapcontext(&coro_ctx, &main_ctx);
}

int main(int argc, char **argv)
{
    long long n = argc > 1 ? atoll(argv[1]) : 1000000LL;
    if (n <= 0) {
        fprintf(stderr, "usage: %s [round_trips]\n", argv[0]);
        return 2;
    }
    size_t size = 64 * 1024;
    char *stack = malloc(size);
    if (!stack || getcontext(&coro_ctx) != 0)
        return 1;
    coro_ctx.uc_stack.ss_sp = stack;
    coro_ctx.uc_stack.ss_size = size;
    coro_ctx.uc_link = NULL;
    makecontext(&coro_ctx, bounce, 0);

    for (long long i = 0; i < n / 10 + 1; i++) /* warm up */
        swapcontext(&main_ctx, &coro_ctx);

    long long t0 = now_ns();
    for (long long i = 0; i < n; i++)
        swapcontext(&main_ctx, &coro_ctx); /* there and back: two switches */
    long long t1 = now_ns();

    printf("switch ucontext ns_per_op %.2f\n", (double)(t1 - t0) / (2.0 * (double)n));
    return 0;
}
