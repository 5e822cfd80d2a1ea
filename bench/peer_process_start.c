/*
 * peer_process_start.c — the by-hand ways to start a process that does nothing and
 * wait for it, for bench_process.c's process.start_join: fork + _exit + waitpid, and
 * posix_spawn of /bin/true + waitpid.  Microseconds each.
 *
 * Usage: peer_process_start [scale]   (default 1: 2,000 of each)
 * Prints: process.start_join fork us_per_proc <us>
 *         process.start_join posix_spawn us_per_proc <us>
 */
#ifndef _GNU_SOURCE /* CMake defines it for every file */
#define _GNU_SOURCE
#endif
#include <spawn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void by_fork(void)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid < 0 || waitpid(pid, NULL, 0) != pid) {
        perror("peer_process_start: fork");
        exit(1);
    }
}

static void by_spawn(void)
{
    char *argv[] = {"true", NULL};
    pid_t pid;
    if (posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ) != 0 ||
        waitpid(pid, NULL, 0) != pid) {
        perror("peer_process_start: posix_spawn");
        exit(1);
    }
}

static double each_us(void (*start)(void), long long n)
{
    for (long long i = 0; i < n / 10; i++)
        start();
    long long t0 = now_ns();
    for (long long i = 0; i < n; i++)
        start();
    return (now_ns() - t0) / 1e3 / n;
}

int main(int argc, char **argv)
{
    long long scale = argc > 1 ? atoll(argv[1]) : 1;
    if (scale <= 0 || scale > LLONG_MAX / 2000) { /* 2000 * scale: no overflow */
        fprintf(stderr, "usage: %s [scale]\n", argv[0]);
        return 2;
    }
    printf("process.start_join fork us_per_proc %.2f\n", each_us(by_fork, 2000 * scale));
    printf("process.start_join posix_spawn us_per_proc %.2f\n", each_us(by_spawn, 2000 * scale));
    return 0;
}
