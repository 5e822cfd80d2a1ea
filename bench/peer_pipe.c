/*
 * peer_pipe.c — bench_queue.c's peer: the same transfer through a pipe.  A child
 * writes whole messages (64 bytes, then 64 KiB), the parent reads them whole; messages
 * per second and megabytes per second, timed from the first message read to the last.
 * With the default pipe (64 KiB) and with one enlarged to 1 MiB (F_SETPIPE_SZ), as
 * much as the plait queue holds.
 *
 * Usage: peer_pipe [scale]   (default 1: 1,000,000 small and 20,000 large messages)
 * Prints: queue.small pipe msgs_per_s <n>       queue.large pipe mb_per_s <n>
 *         queue.small pipe1m msgs_per_s <n>     queue.large pipe1m mb_per_s <n>
 */
#ifndef _GNU_SOURCE /* CMake defines it for every file */
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int whole(ssize_t (*io)(int, void *, size_t), int fd, char *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = io(fd, buf + done, len - done);
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

static ssize_t write_fd(int fd, void *buf, size_t len) { return write(fd, buf, len); }

static double transfer(long long count, size_t size, int big_pipe)
{
    int fds[2];
    if (pipe(fds) < 0 || (big_pipe && fcntl(fds[1], F_SETPIPE_SZ, 1 << 20) < 0))
        exit(1);
    char *buf = calloc(1, size);
    if (!buf) {
        perror("peer_pipe: calloc");
        exit(1);
    }
    pid_t pid = fork();
    if (pid < 0) { /* (unchecked, it read end of file and said "message 0 lost") */
        perror("peer_pipe: fork");
        exit(1);
    }
    if (pid == 0) {
        close(fds[0]);
        for (long long i = 0; i < count; i++) {
            memcpy(buf, &i, sizeof i);
            if (whole(write_fd, fds[1], buf, size) < 0)
                _exit(1);
        }
        _exit(0);
    }
    close(fds[1]);
    long long t0 = 0;
    for (long long i = 0; i < count; i++) {
        long long seq;
        if (whole(read, fds[0], buf, size) < 0 || (memcpy(&seq, buf, sizeof seq), seq != i)) {
            fprintf(stderr, "peer_pipe: message %lld lost\n", i);
            exit(1);
        }
        if (i == 0)
            t0 = now_ns();
    }
    double seconds = (now_ns() - t0) / 1e9;
    waitpid(pid, NULL, 0);
    close(fds[0]);
    free(buf);
    return (count - 1) / seconds;
}

int main(int argc, char **argv)
{
    long long scale = argc > 1 ? atoll(argv[1]) : 1;
    if (scale <= 0 || scale > LLONG_MAX / 1000000) { /* 1000000 * scale: no overflow */
        fprintf(stderr, "usage: %s [scale]\n", argv[0]);
        return 2;
    }
    for (int big = 0; big < 2; big++) {
        const char *name = big ? "pipe1m" : "pipe";
        printf("queue.small %s msgs_per_s %.0f\n", name, transfer(1000000 * scale, 64, big));
        printf("queue.large %s mb_per_s %.1f\n", name,
               transfer(20000 * scale, 65536, big) * 65536 / 1e6);
    }
    return 0;
}
