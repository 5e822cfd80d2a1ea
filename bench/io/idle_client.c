/* idle_client.c — holds many idle connections open to a server, so that the
 * memory the server spends on each can be measured (bench/io/run_io.sh).
 *
 *   idle_client HOST PORT N
 *
 * Opens N TCP connections, 256 at a time (non-blocking connect, then poll until
 * each is established; a connection refused or timed out because the server's
 * backlog was full is tried again, briefly).  It sends nothing.  Once all N are
 * established it prints `connected=N` on one line and waits until a line is read
 * from stdin or stdin is closed, then closes them all and exits 0.  Raises its
 * own RLIMIT_NOFILE soft limit to the hard limit first.  Any failure: a message on
 * stderr and exit status 1. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <err.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 256
#define ATTEMPTS 100 /* per connection, up to 50 ms apart */
#define BATCH_TIMEOUT_MS 30000

static struct addrinfo *addr;

/* A non-blocking connect: returns the socket (connecting or connected), or -1
 * with errno set when the attempt failed at once. */
static int start_connect(void)
{
    int fd = socket(addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        errx(1, "socket: %s (raise the hard RLIMIT_NOFILE?)", strerror(errno));
    if (connect(fd, addr->ai_addr, addr->ai_addrlen) == 0 || errno == EINPROGRESS)
        return fd;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

static int retryable(int e)
{
    return e == ECONNREFUSED || e == EAGAIN || e == ETIMEDOUT || e == EINTR;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Open n (at most BATCH) connections into fds[0..n) and wait until every one is
 * established, trying again those refused or timed out. */
static void establish(int *fds, int n)
{
    struct pollfd pfd[BATCH];
    int tries[BATCH] = { 0 };
    char up[BATCH] = { 0 };
    int left = n;
    double deadline = now() + BATCH_TIMEOUT_MS / 1000.0;
    for (int i = 0; i < n; i++)
        fds[i] = -1;
    while (left > 0) {
        for (int i = 0; i < n; i++) {
            if (!up[i] && fds[i] < 0) {
                if (tries[i]++ >= ATTEMPTS)
                    errx(1, "gave up connecting after %d attempts: %s", ATTEMPTS, strerror(errno));
                fds[i] = start_connect();
                if (fds[i] < 0 && !retryable(errno))
                    errx(1, "connect: %s", strerror(errno));
            }
            pfd[i].fd = up[i] ? -1 : fds[i]; /* poll skips a negative fd */
            pfd[i].events = POLLOUT;
            pfd[i].revents = 0;
        }
        if (poll(pfd, (nfds_t)n, 50) < 0 && errno != EINTR)
            errx(1, "poll: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            if (up[i] || fds[i] < 0 || !pfd[i].revents)
                continue;
            int err = 0;
            socklen_t len = sizeof err;
            if (getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
            if (err == 0) {
                up[i] = 1;
                left--;
            } else if (retryable(err)) {
                close(fds[i]);
                fds[i] = -1;
                errno = err;
            } else {
                errx(1, "connect: %s", strerror(err));
            }
        }
        if (left > 0 && now() > deadline)
            errx(1, "%d connections still not established after %d s", left, BATCH_TIMEOUT_MS / 1000);
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s HOST PORT N\n", argv[0]);
        return 2;
    }
    char *end;
    long n = strtol(argv[3], &end, 10);
    if (*end || end == argv[3] || n < 1 || n > 1000000) {
        fprintf(stderr, "idle_client: bad N '%s'\n", argv[3]);
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (rlim_t)n + 16 > rl.rlim_cur)
        errx(1, "%ld connections need more descriptors than RLIMIT_NOFILE allows (%llu)", n,
             (unsigned long long)rl.rlim_cur);

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    int err = getaddrinfo(argv[1], argv[2], &hints, &addr);
    if (err)
        errx(1, "%s port %s: %s", argv[1], argv[2], gai_strerror(err));

    int *fds = malloc((size_t)n * sizeof *fds);
    if (!fds)
        errx(1, "out of memory");
    for (long i = 0; i < n; i += BATCH)
        establish(fds + i, n - i < BATCH ? (int)(n - i) : BATCH);
    printf("connected=%ld\n", n);
    fflush(stdout);

    char line[256];
    while (fgets(line, sizeof line, stdin) == NULL && ferror(stdin) && errno == EINTR)
        clearerr(stdin);
    for (long i = 0; i < n; i++)
        close(fds[i]);
    free(fds);
    freeaddrinfo(addr);
    return 0;
}
