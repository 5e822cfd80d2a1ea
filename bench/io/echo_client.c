/* echo_client.c — load generator for the echo servers (bench/io/run_io.sh).
 *
 *   echo_client HOST PORT CONNS SECONDS [SIZE=64]
 *
 * Opens CONNS connections (TCP_NODELAY); each plays ping-pong: send SIZE bytes,
 * wait until SIZE bytes are back, check them, send the next SIZE bytes.  The
 * bytes differ from connection to connection and from round to round, so a reply
 * that is wrong, late or belongs to another connection is a mismatch.  After a
 * warm-up (half a second, or a fifth of SECONDS if less) it counts the round trips
 * completed in SECONDS and prints
 *
 *   round_trips_per_s=<n>
 *   round_trips=<every round trip, the warm-up's included>
 *
 * (the second line lets run_io.sh divide the server's CPU time by its work).  One thread, one epoll set, non-blocking sockets.  Any error, a
 * mismatch, a connection closed by the server, or 5 s without a reply on any
 * connection: a message on stderr and exit status 1. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct client {
    int fd;
    uint32_t id;
    uint64_t round;
    size_t sent, got;
};

static size_t size;
static int epfd;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Byte i of round r on connection id. */
static inline unsigned char pattern(const struct client *c, size_t i)
{
    return (unsigned char)(c->id * 131u + (uint32_t)c->round * 29u + (uint32_t)i * 7u + (uint32_t)(i >> 8));
}

static void arm(struct client *c, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = c };
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        errx(1, "epoll_ctl: %s (connection %u)", strerror(errno), c->id);
}

/* Send what is left of this round; wait for EPOLLOUT if the socket is full. */
static void send_rest(struct client *c)
{
    static unsigned char chunk[64 * 1024];
    while (c->sent < size) {
        size_t n = size - c->sent;
        if (n > sizeof chunk)
            n = sizeof chunk;
        for (size_t i = 0; i < n; i++)
            chunk[i] = pattern(c, c->sent + i);
        ssize_t w = send(c->fd, chunk, n, MSG_NOSIGNAL);
        if (w > 0) {
            c->sent += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            arm(c, EPOLLIN | EPOLLOUT);
            return;
        } else {
            errx(1, "send: %s (connection %u)", strerror(errno), c->id);
        }
    }
    arm(c, EPOLLIN);
}

/* Read what has come back; returns 1 when the round is complete. */
static int receive(struct client *c)
{
    static unsigned char buf[64 * 1024];
    for (;;) {
        size_t want = size - c->got;
        if (want == 0)
            return 1;
        if (want > sizeof buf)
            want = sizeof buf;
        ssize_t r = recv(c->fd, buf, want, 0);
        if (r == 0)
            errx(1, "connection %u closed by the server", c->id);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            errx(1, "recv: %s (connection %u)", strerror(errno), c->id);
        }
        if (c->got + (size_t)r > c->sent)
            errx(1, "connection %u: more bytes back than were sent", c->id);
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] != pattern(c, c->got + (size_t)i))
                errx(1, "connection %u: echoed bytes do not match (round %llu, byte %zu)",
                     c->id, (unsigned long long)c->round, c->got + (size_t)i);
        c->got += (size_t)r;
    }
}

static int connect_to(const char *host, const char *port)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
    int err = getaddrinfo(host, port, &hints, &res);
    if (err)
        errx(1, "%s: %s", host, gai_strerror(err));
    int fd = -1;
    for (int attempt = 0; fd < 0; attempt++) {
        fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            errx(1, "socket: %s", strerror(errno));
        if (connect(fd, res->ai_addr, res->ai_addrlen) == 0)
            break;
        int e = errno;
        close(fd);
        fd = -1;
        if ((e != ECONNREFUSED && e != EAGAIN && e != EINTR) || attempt >= 50)
            errx(1, "connect to %s port %s: %s", host, port, strerror(e));
        usleep(20000); /* the backlog was full: try again briefly */
    }
    freeaddrinfo(res);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static long parse(const char *s, const char *what, long lo, long hi)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || end == s || v < lo || v > hi) {
        fprintf(stderr, "echo_client: bad %s '%s' (%ld to %ld)\n", what, s, lo, hi);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT CONNS SECONDS [SIZE=64]\n", argv[0]);
        return 2;
    }
    long conns = parse(argv[3], "CONNS", 1, 100000);
    long seconds = parse(argv[4], "SECONDS", 1, 3600);
    size = argc == 6 ? (size_t)parse(argv[5], "SIZE", 1, 64L << 20) : 64;
    signal(SIGPIPE, SIG_IGN);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        errx(1, "epoll_create1: %s", strerror(errno));
    struct client *cs = calloc((size_t)conns, sizeof *cs);
    if (!cs)
        errx(1, "out of memory for %ld connections", conns);
    for (long i = 0; i < conns; i++) {
        cs[i].fd = connect_to(argv[1], argv[2]);
        cs[i].id = (uint32_t)i;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &cs[i] };
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0)
            errx(1, "epoll_ctl: %s (connection %ld)", strerror(errno), i);
    }
    for (long i = 0; i < conns; i++)
        send_rest(&cs[i]);

    double warmup = (double)seconds / 5 < 0.5 ? (double)seconds / 5 : 0.5;
    double t = now(), start = t + warmup, stop = start + (double)seconds;
    int counting = 0;
    uint64_t trips = 0, all_trips = 0; /* counted; and with the warm-up's */
    struct epoll_event events[256];
    while (t < stop) {
        int n = epoll_wait(epfd, events, 256, 5000);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            errx(1, "epoll_wait: %s", strerror(errno));
        if (n == 0)
            errx(1, "no reply on any of %ld connections for 5 s", conns);
        for (int i = 0; i < n; i++) {
            struct client *c = events[i].data.ptr;
            if (c->sent < size && (events[i].events & EPOLLOUT))
                send_rest(c);
            if (!(events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) || !receive(c))
                continue;
            trips += (uint64_t)counting;
            all_trips++;
            c->round++;
            c->sent = c->got = 0;
            send_rest(c);
        }
        t = now();
        if (!counting && t >= start) {
            counting = 1;
            start = t;
            stop = t + (double)seconds;
        }
    }
    printf("round_trips_per_s=%.0f\n", (double)trips / (t - start));
    printf("round_trips=%llu\n", (unsigned long long)all_trips);
    for (long i = 0; i < conns; i++)
        close(cs[i].fd);
    free(cs);
    return 0;
}
