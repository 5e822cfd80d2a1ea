// peer_boost_switch.cpp — Boost.Context peer of bench_switch.c: ns per one-way
// switch with jump_fcontext, the primitive under boost::context::fiber.
//
// The main context and one fcontext bounce control back and forth; every
// jump_fcontext() call is one one-way switch.
//
// Usage: peer_boost_switch [round_trips]   (default 10,000,000)
// Prints: switch boost ns_per_op <ns per one-way switch>
#include <boost/context/detail/fcontext.hpp>

#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace ctx = boost::context::detail;

static long long now_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

[[noreturn]] static void bounce(ctx::transfer_t t)
{
    for (;;)
        t = ctx::jump_fcontext(t.fctx, nullptr);
}

int main(int argc, char **argv)
{
    long long n = argc > 1 ? atoll(argv[1]) : 10000000LL;
    if (n <= 0) {
        fprintf(stderr, "usage: %s [round_trips]\n", argv[0]);
        return 2;
    }
    const size_t size = 64 * 1024;
    char *stack = static_cast<char *>(malloc(size));
    if (!stack)
        return 1;
    ctx::fcontext_t c = ctx::make_fcontext(stack + size, size, bounce);
    ctx::transfer_t t = ctx::jump_fcontext(c, nullptr); // start it: it jumps straight back

    for (long long i = 0; i < n / 10; i++) // warm up
        t = ctx::jump_fcontext(t.fctx, nullptr);

    long long t0 = now_ns();
    for (long long i = 0; i < n; i++)
        t = ctx::jump_fcontext(t.fctx, nullptr); // there and back: two switches
    long long t1 = now_ns();

    printf("switch boost ns_per_op %.2f\n", (double)(t1 - t0) / (2.0 * (double)n));
    // The fcontext never returns; its stack is simply dropped with the process.
    return 0;
}
