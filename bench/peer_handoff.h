/*
 * peer_handoff.h — the turn that the raw floors of the wake-up figures hand back and
 * forth (peer_futex_pingpong.c between threads, peer_shm_pingpong.c between processes):
 * one futex word says whose turn it is, 0 or 1.  Two policies:
 *
 *   look_ns == 0  no looking: a side whose turn has not come sleeps at once
 *                 (FUTEX_WAIT), and a hand-over always makes a FUTEX_WAKE, so every
 *                 round trip is two sleeps and two wake-ups through the kernel;
 *   look_ns > 0   plait's own policy by hand: a side whose turn has not come looks at
 *                 the word for up to look_ns (16 pauses, then sched_yield) before it
 *                 sleeps, and raises its flag before it does; a hand-over makes a
 *                 FUTEX_WAKE only where it finds the flag.  Where the turn comes back
 *                 within the look, a round trip makes no system call.
 *
 * The flag's ordering: a sleeper raises its flag, then reads the turn; a hand-over
 * stores the turn, then reads the flag, all sequentially consistent, so either the
 * hand-over sees the flag or the sleeper sees its turn (and FUTEX_WAIT itself refuses
 * to sleep on a word that has moved on).
 */
#ifndef PEER_HANDOFF_H
#define PEER_HANDOFF_H

#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef struct handoff {
    _Atomic int turn;      /* whose turn: 0 or 1 */
    _Atomic int asleep[2]; /* look_ns > 0: side i is about to sleep, or sleeps */
    long long look_ns;     /* how long a side looks before it sleeps (0: not at all) */
    int futex_private;     /* FUTEX_PRIVATE_FLAG between threads, 0 between processes */
} handoff;

static inline long long handoff_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline void handoff_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Give the turn to side `to`, waking it where it may sleep. */
static inline void handoff_give(handoff *h, int to)
{
    atomic_store(&h->turn, to);
    if (!h->look_ns || atomic_load(&h->asleep[to]))
        syscall(SYS_futex, &h->turn, FUTEX_WAKE | h->futex_private, 1, NULL, NULL, 0);
}

/* Return once the turn is side `self`'s: look first (look_ns > 0), then sleep. */
static inline void handoff_await(handoff *h, int self)
{
    if (h->look_ns) {
        long long until = handoff_now_ns() + h->look_ns;
        for (int pauses = 0; atomic_load(&h->turn) != self; pauses++) {
            if (pauses < 16)
                handoff_pause();
            else if (handoff_now_ns() >= until)
                break;
            else
                sched_yield();
        }
        if (atomic_load(&h->turn) == self)
            return; /* came within the look: the flag untouched, as plait's wait leaves
                     * its word (two stores on the line the other side reads, each
                     * round trip, were work plait's path does not do) */
        atomic_store(&h->asleep[self], 1);
    }
    while (atomic_load(&h->turn) != self)
        syscall(SYS_futex, &h->turn, FUTEX_WAIT | h->futex_private, !self, NULL, NULL, 0);
    if (h->look_ns)
        atomic_store(&h->asleep[self], 0);
}

#endif
