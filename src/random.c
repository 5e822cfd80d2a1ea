/*
 * random.c — cheap pseudo-random numbers for choices that must favour no one: which of
 * several ready select cases wins, which worker a thief looks at first.  Not for
 * anything that must be unpredictable.
 *
 * One xorshift64 generator per thread, seeded on first use from the clock and the
 * thread's own address, so that threads started at the same moment draw different
 * numbers.  A bound is applied by multiplying and shifting rather than by a remainder,
 * which keeps every value in range about equally likely without a division.
 */
#include "internal.h"

static PLAIT_TLS uint64_t state;

uint32_t plait__random(uint32_t bound)
{
    if (!state)
        state = ((uint64_t)plait_now() ^ (uint64_t)(uintptr_t)&state) * 0x9e3779b97f4a7c15ull | 1;
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (uint32_t)(((state >> 32) * bound) >> 32);
}
