/*
 * peer_futex_pingpong.c — the raw floor for bench_wakeup.c: two threads hand a turn
 * back and forth through one shared word with FUTEX_WAIT / FUTEX_WAKE; microseconds
 * per round trip.  Two peers:
 *
 *   futex       The word is 1 when it is B's turn and 0 when it is A's.  Each side
 *               stores the other's turn, calls FUTEX_WAKE (always: no waiter
 *               bookkeeping to skip it), then FUTEX_WAITs until its own turn comes
 *               back.  No looking: a side that finds it is not its turn goes straight
 *               to sleep, so every round trip is two sleeps and two wake-ups through
 *               the kernel, which is what a blocked scheduler thread or a blocked plain
 *               thread costs at least.
 *   futex-look  plait's own policy by hand (src/futex.c, PLAIT__WAIT_SPIN_NS): a side
 *               whose turn has not come looks at the word for up to 20 us before it
 *               sleeps, and a hand-over wakes only a side that said it sleeps
 *               (peer_handoff.h).  Where the turn comes back within the look (two
 *               CPUs), a round trip makes no system call: this is the peer whose work
 *               plait's two-CPU figure does.
 *
 * As bench_wakeup.c, it runs with the two threads pinned to one CPU ("samecpu") and
 * to two CPUs ("twocpu"; only when the process may use two).
 *
 * Usage: peer_futex_pingpong [round_trips]   (default 20,000 per peer and placement)
 * Prints: wakeup.samecpu futex us_per_rt <us>
 *         wakeup.samecpu futex-look us_per_rt <us>
 *         wakeup.twocpu futex us_per_rt <us>
 *         wakeup.twocpu futex-look us_per_rt <us>
 */
#ifndef _GNU_SOURCE /* CMake defines it for every file */
#define _GNU_SOURCE
#endif
#include "peer_handoff.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

/* futex-look's look before a sleep: plait's PLAIT__WAIT_SPIN_NS (src/internal.h). */
enum { LOOK_NS = 20 * 1000 };

static handoff turn; /* 0: A's turn, 1: B's */

typedef struct side {
    long long warm, n; /* round trips before timing, and timed */
    int cpu;
    long long ns;      /* A: wall time of the n timed round trips */
} side;

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) {
        fprintf(stderr, "peer_futex_pingpong: cannot pin a thread to CPU %d\n", cpu);
        exit(1);
    }
}

/* A: hand the turn to B, then wait until B hands it back. */
static void *side_a(void *arg)
{
    side *s = arg;
    pin(s->cpu);
    long long t0 = 0;
    for (long long i = 0; i < s->warm + s->n; i++) {
        if (i == s->warm)
            t0 = handoff_now_ns();
        handoff_give(&turn, 1);
        handoff_await(&turn, 0);
    }
    s->ns = handoff_now_ns() - t0;
    return NULL;
}

static void *side_b(void *arg)
{
    side *s = arg;
    pin(s->cpu);
    for (long long i = 0; i < s->warm + s->n; i++) {
        handoff_await(&turn, 1);
        handoff_give(&turn, 0);
    }
    return NULL;
}

/* Microseconds per round trip with A on cpu_a and B on cpu_b. */
static double measure(long long n, int cpu_a, int cpu_b, long long look_ns)
{
    side a = {.warm = n / 10 + 1, .n = n, .cpu = cpu_a};
    side b = {.warm = n / 10 + 1, .n = n, .cpu = cpu_b};
    turn = (handoff){.look_ns = look_ns, .futex_private = FUTEX_PRIVATE_FLAG};
    pthread_t ta, tb;
    if (pthread_create(&tb, NULL, side_b, &b) != 0 ||
        pthread_create(&ta, NULL, side_a, &a) != 0) {
        fprintf(stderr, "peer_futex_pingpong: pthread_create failed\n");
        exit(1);
    }
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    return (double)a.ns / (double)n / 1e3;
}

int main(int argc, char **argv)
{
    long long n = argc > 1 ? atoll(argv[1]) : 20000;
    if (n <= 0 || n > LLONG_MAX / 2) { /* warm + n: no overflow */
        fprintf(stderr, "usage: %s [round_trips]\n", argv[0]);
        return 2;
    }
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        perror("peer_futex_pingpong: sched_getaffinity");
        return 1;
    }
    int cpus[2] = {-1, -1}, found = 0;
    for (int c = 0; c < CPU_SETSIZE && found < 2; c++)
        if (CPU_ISSET(c, &set))
            cpus[found++] = c;
    static const struct { const char *name; long long look_ns; } peers[] = {
        {"futex", 0}, {"futex-look", LOOK_NS}};
    for (int p = 0; p < 2; p++) {
        printf("wakeup.samecpu %s us_per_rt %.2f\n", peers[p].name,
               measure(n, cpus[0], cpus[0], peers[p].look_ns));
        if (found == 2)
            printf("wakeup.twocpu %s us_per_rt %.2f\n", peers[p].name,
                   measure(n, cpus[0], cpus[1], peers[p].look_ns));
    }
    return 0;
}
