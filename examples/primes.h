/* primes.h — the CPU-bound job the examples share: count the primes below BOUND by
 * trial division, split into CHUNKS ranges.  PRIMES is their number, pi(BOUND). */
#ifndef PLAIT_EXAMPLE_PRIMES_H
#define PLAIT_EXAMPLE_PRIMES_H

#include <stdint.h>

enum { BOUND = 4000000, PRIMES = 283146, CHUNKS = 64 };

typedef struct range {
    uint32_t lo, hi;
} range;

static inline long primes_in(const range *r)
{
    long count = 0;
    for (uint32_t n = r->lo < 2 ? 2 : r->lo; n < r->hi; n++) {
        int prime = n == 2 || n % 2;
        for (uint32_t d = 3; prime && d * d <= n; d += 2)
            prime = n % d != 0;
        count += prime;
    }
    return count;
}

/* The CHUNKS ranges, and pointers to them (for a thread pool's map). */
static inline void primes_ranges(range ranges[CHUNKS], void *args[CHUNKS])
{
    for (int i = 0; i < CHUNKS; i++) {
        ranges[i] = (range){(uint32_t)((uint64_t)BOUND * i / CHUNKS),
                            (uint32_t)((uint64_t)BOUND * (i + 1) / CHUNKS)};
        args[i] = &ranges[i];
    }
}

#endif
