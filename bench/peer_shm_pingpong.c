/*
 * peer_shm_pingpong.c — the floor of a round trip between two processes, for
 * bench_process.c's procpool.roundtrip: a turn handed back and forth through one
 * futex word in a shared mapping (FUTEX_WAKE, then FUTEX_WAIT until the turn comes
 * back; no spinning), microseconds per round trip.  Like bench_process, once with both
 * processes left to the kernel ("free") and once pinned to one CPU ("samecpu").
 *
 * Usage: peer_shm_pingpong [scale]   (default 1: 20,000 round trips each)
 * Prints: procpool.roundtrip.free shmfutex us_per_rt <us>
 *         procpool.roundtrip.samecpu shmfutex us_per_rt <us>
 */
#ifndef _GNU_SOURCE /* CMake defines it for every file */
#define _GNU_SOURCE
#endif
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Hand the turn to `to`, then wait until it is `mine` again. */
static void pass(_Atomic int *turn, int to, int mine)
{
    atomic_store(turn, to);
    syscall(SYS_futex, turn, FUTEX_WAKE, 1, NULL, NULL, 0);
    while (atomic_load(turn) != mine)
        syscall(SYS_futex, turn, FUTEX_WAIT, to, NULL, NULL, 0);
}

static double round_trip_us(long long n)
{
    _Atomic int *turn = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (turn == MAP_FAILED)
        exit(1);
    atomic_store(turn, 0);
    long long warm = n / 10;
    pid_t pid = fork();
    if (pid < 0) { /* else the turn would go to nobody, and never come back */
        perror("peer_shm_pingpong: fork");
        exit(1);
    }
    if (pid == 0) {
        while (atomic_load(turn) != 1)
            syscall(SYS_futex, turn, FUTEX_WAIT, 0, NULL, NULL, 0);
        for (long long i = 0; i < warm + n; i++)
            pass(turn, 0, i + 1 < warm + n ? 1 : 0);
        _exit(0);
    }
    long long t0 = 0;
    for (long long i = 0; i < warm + n; i++) {
        if (i == warm)
            t0 = now_ns();
        pass(turn, 1, 0);
    }
    double us = (now_ns() - t0) / 1e3 / n;
    waitpid(pid, NULL, 0);
    munmap((void *)turn, 4096);
    return us;
}

int main(int argc, char **argv)
{
    long long scale = argc > 1 ? atoll(argv[1]) : 1;
    if (scale <= 0 || scale > LLONG_MAX / 40000) { /* warm + 20000 * scale: no overflow */
        fprintf(stderr, "usage: %s [scale]\n", argv[0]);
        return 2;
    }
    printf("procpool.roundtrip.free shmfutex us_per_rt %.2f\n", round_trip_us(20000 * scale));
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0)
        return 1;
    printf("procpool.roundtrip.samecpu shmfutex us_per_rt %.2f\n", round_trip_us(20000 * scale));
    return 0;
}
