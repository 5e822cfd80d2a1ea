/*
 * peer_shm_pingpong.c — the floor of a round trip between two processes, for
 * bench_process.c's procpool.roundtrip: a turn handed back and forth through one
 * futex word in a shared mapping (peer_handoff.h), microseconds per round trip.  Two
 * peers: `shmfutex` sleeps at once (FUTEX_WAKE, then FUTEX_WAIT until the turn comes
 * back), `shmfutex-look` looks at the word for up to 50 us before it sleeps and wakes
 * only a side that said it sleeps, as plait's process pool does (src/procpool.c,
 * SPIN_NS).  Like bench_process, once with both processes left to the kernel ("free")
 * and once pinned to one CPU ("samecpu").
 *
 * Usage: peer_shm_pingpong [scale]   (default 1: 20,000 round trips each)
 * Prints: procpool.roundtrip.free shmfutex us_per_rt <us>
 *         procpool.roundtrip.free shmfutex-look us_per_rt <us>
 *         procpool.roundtrip.samecpu shmfutex us_per_rt <us>
 *         procpool.roundtrip.samecpu shmfutex-look us_per_rt <us>
 */
#ifndef _GNU_SOURCE /* CMake defines it for every file */
#define _GNU_SOURCE
#endif
#include "peer_handoff.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>

/* shmfutex-look's look before a sleep: plait's process pool's SPIN_NS (src/procpool.c). */
enum { LOOK_NS = 50 * 1000 };

static double round_trip_us(long long n, long long look_ns)
{
    handoff *h = mmap(NULL, sizeof *h, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (h == MAP_FAILED)
        exit(1);
    *h = (handoff){.look_ns = look_ns, .futex_private = 0};
    long long warm = n / 10;
    pid_t pid = fork();
    if (pid < 0) { /* else the turn would go to nobody, and never come back */
        perror("peer_shm_pingpong: fork");
        exit(1);
    }
    if (pid == 0) { /* side 1 */
        for (long long i = 0; i < warm + n; i++) {
            handoff_await(h, 1);
            handoff_give(h, 0);
        }
        _exit(0);
    }
    long long t0 = 0;
    for (long long i = 0; i < warm + n; i++) {
        if (i == warm)
            t0 = handoff_now_ns();
        handoff_give(h, 1);
        handoff_await(h, 0);
    }
    double us = (handoff_now_ns() - t0) / 1e3 / n;
    waitpid(pid, NULL, 0);
    munmap(h, sizeof *h);
    return us;
}

int main(int argc, char **argv)
{
    long long scale = argc > 1 ? atoll(argv[1]) : 1;
    if (scale <= 0 || scale > LLONG_MAX / 40000) { /* warm + 20000 * scale: no overflow */
        fprintf(stderr, "usage: %s [scale]\n", argv[0]);
        return 2;
    }
    static const struct { const char *name; long long look_ns; } peers[] = {
        {"shmfutex", 0}, {"shmfutex-look", LOOK_NS}};
    for (int p = 0; p < 2; p++)
        printf("procpool.roundtrip.free %s us_per_rt %.2f\n", peers[p].name,
               round_trip_us(20000 * scale, peers[p].look_ns));
    cpu_set_t allowed, one; /* the first CPU of the process's set (not CPU 0: it may be out) */
    CPU_ZERO(&one);
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
        perror("peer_shm_pingpong: sched_getaffinity");
        return 1;
    }
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &allowed)) {
            CPU_SET(c, &one);
            break;
        }
    if (sched_setaffinity(0, sizeof one, &one) != 0) {
        perror("peer_shm_pingpong: sched_setaffinity");
        return 1;
    }
    for (int p = 0; p < 2; p++)
        printf("procpool.roundtrip.samecpu %s us_per_rt %.2f\n", peers[p].name,
               round_trip_us(20000 * scale, peers[p].look_ns));
    return 0;
}
