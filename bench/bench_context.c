/*
 * bench_context.c — ns per one-way switch of plait's bare context switch, the
 * primitive under every coroutine switch (bench_switch.c measures the switch a user
 * gets from plait_yield(), scheduler included).
 *
 * Two contexts run the same function and hand the CPU to each other, as coroutines
 * of one scheduler do (every switch of plait's scheduler goes through one call
 * site): each switch then returns where the CPU's return predictor expects.  Every
 * switch call is one one-way switch.  The Boost.Context peer (peer_boost_switch.cpp)
 * bounces between main and one context; its switch ends in an indirect jump, which
 * does not care about call sites, so the shape costs it nothing.
 *
 * It uses plait's internal src/context.h, so it links the static library.
 *
 * Usage: bench_context [switches]   (default 20,000,000)
 * Prints: switch plait-context ns_per_op <ns per one-way switch>
 */
#include "bench_common.h"

#include "../src/context.h"

static plait__context main_ctx, ctx[2];
static long long remaining;

static void player(void *arg)
{
    int self = (int)(intptr_t)arg;
    for (;;) {
        if (--remaining < 0)
            plait__context_switch(&ctx[self], &main_ctx);
        else
            plait__context_switch(&ctx[self], &ctx[!self]);
    }
}

static double measure(char *stacks[2], size_t size, long long n)
{
    for (int i = 0; i < 2; i++)
        plait__context_make(&ctx[i], stacks[i], size, player, (void *)(intptr_t)i);
    remaining = n;
    long long t0 = bench_now();
    plait__context_switch(&main_ctx, &ctx[0]);
    long long t1 = bench_now();
    return (double)(t1 - t0) / (double)(n + 2); /* n hops, plus in and out */
}

int main(int argc, char **argv)
{
    long long n = bench_count(argc, argv, 20000000LL, "switches", LLONG_MAX - 2);
    const size_t size = 64 * 1024;
    char *stacks[2] = {malloc(size), malloc(size)};
    if (!stacks[0] || !stacks[1])
        return 1;
    measure(stacks, size, n / 10 + 1); /* warm up */
    printf("switch plait-context ns_per_op %.2f\n", measure(stacks, size, n));
    free(stacks[0]); /* the contexts are simply dropped */
    free(stacks[1]);
    return 0;
}
