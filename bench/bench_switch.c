/*
 * bench_switch.c — ns per one-way coroutine switch in plait.
 *
 * Two coroutines call plait_yield() in turn inside plait_run(); with only the two
 * of them ready (main is blocked in plait_join), every yield hands the thread to
 * the other one: one yield is one switch.  The figure is the time from the first
 * yield to the last divided by the number of yields, so it includes what a yield
 * costs on top of the bare register swap (the ready queue, the cancellation check,
 * the stack canary check), which is the switch a plait user actually gets.  Each
 * coroutine checks that the other ran while it yielded (a store and a load a yield):
 * a yield that came back at once would print a fast figure for no switch at all.
 *
 * Peers: peer_boost_switch.cpp (jump_fcontext), peer_ucontext_switch.c (swapcontext).
 *
 * Usage: bench_switch [yields_per_coroutine]   (default 10,000,000)
 * Prints: switch plait ns_per_op <ns per switch>
 */
#include "bench_common.h"

typedef struct shared {
    long long n;          /* yields each coroutine makes */
    long long start;      /* set by whichever coroutine runs first */
    long long end;        /* set by whichever finishes last */
    int finished;
    int turn;             /* the coroutine that ran last: each yield must hand over */
} shared;

typedef struct yielder_arg {
    shared *s;
    int me;
} yielder_arg;

static void *yielder(void *arg)
{
    shared *s = ((yielder_arg *)arg)->s;
    int me = ((yielder_arg *)arg)->me;
    if (s->start == 0)
        s->start = bench_now();
    for (long long i = 0; i < s->n; i++) {
        s->turn = me;
        BENCH_CHECK(plait_yield());
        if (s->turn == me) { /* a yield that switched to nobody: no figure */
            fprintf(stderr, "bench_switch: a yield came back without the other running\n");
            exit(1);
        }
    }
    s->turn = me; /* (the other's last yield comes back after this one's end) */
    if (++s->finished == 2)
        s->end = bench_now();
    return NULL;
}

static double measure(long long n)
{
    shared s = {.n = n};
    yielder_arg first = {&s, 1}, second = {&s, 2};
    plait_task a, b;
    BENCH_CHECK(plait_spawn(&a, yielder, &first));
    BENCH_CHECK(plait_spawn(&b, yielder, &second));
    BENCH_CHECK(plait_join(a, NULL, PLAIT_FOREVER));
    BENCH_CHECK(plait_join(b, NULL, PLAIT_FOREVER));
    return (double)(s.end - s.start) / (2.0 * (double)n);
}

static void *bench_main(void *arg)
{
    long long n = *(long long *)arg;
    measure(n / 10 + 1); /* warm up: caches, branch predictors, the stack pool */
    printf("switch plait ns_per_op %.2f\n", measure(n));
    return NULL;
}

int main(int argc, char **argv)
{
    long long n = bench_count(argc, argv, 10000000LL, "yields_per_coroutine", LLONG_MAX);
    BENCH_CHECK(plait_run(bench_main, &n, NULL));
    return 0;
}
