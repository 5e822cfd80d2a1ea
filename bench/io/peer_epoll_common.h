/* peer_epoll_common.h — the loop shared by the hand-written epoll peers
 * (peer_http_epoll.c, peer_echo_epoll.c): the yardstick a coroutine server is held
 * against, so it is written the way a careful C programmer would write it.
 *
 *  - one thread, one epoll set, level-triggered: a readable socket costs one
 *    epoll_wait slot, one recv and (usually) one send; no drain-until-EAGAIN read
 *    that edge triggering would add to every event;
 *  - one shared receive buffer for every connection (the loop handles one socket
 *    at a time), so an idle connection costs only its small `struct conn` and the
 *    kernel's socket: what a connection has not yet used is not allocated;
 *  - a reply is sent at once; only what the socket does not take is copied into a
 *    per-connection queue, and then the connection stops reading (EPOLLOUT only)
 *    until the queue is flushed, which bounds memory under a client that does not
 *    read;
 *  - accept4(SOCK_NONBLOCK | SOCK_CLOEXEC) until EAGAIN, TCP_NODELAY on each;
 *  - SIGTERM and SIGINT arrive through a signalfd in the same epoll set, so the
 *    loop leaves cleanly (exit status 0) with no race against epoll_wait.
 *
 * A peer defines peer_on_readable() and calls peer_main(): */
#ifndef PEER_EPOLL_COMMON_H
#define PEER_EPOLL_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

struct conn {
    int fd;
    int writing;       /* 1 while `out` holds bytes and only EPOLLOUT is armed */
    char *out;         /* bytes the socket did not take yet */
    size_t out_len, out_off, out_cap;
    struct http_partial *in; /* a request split over reads (HTTP only), or NULL */
};

/* The peer's handler: the socket is readable (and nothing is queued to send).
 * Returns 0 to keep the connection, -1 to close it. */
static int peer_on_readable(struct conn *c);

/* Shared by every connection: the loop serves one socket at a time. */
#define PEER_RECV_SIZE (64 * 1024)
static char peer_recv_buf[PEER_RECV_SIZE];

static int peer_epfd;

static void peer_die(const char *what)
{
    perror(what);
    exit(1);
}

static int peer_rearm(struct conn *c, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = c };
    return epoll_ctl(peer_epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static int peer_queue(struct conn *c, const char *p, size_t n)
{
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n)
            cap *= 2;
        char *grown = realloc(c->out, cap);
        if (!grown)
            return -1;
        c->out = grown;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    return 0;
}

/* Send n bytes now; queue what the socket does not take and switch the
 * connection to EPOLLOUT.  Returns 0, or -1 when the connection is broken. */
static int peer_send(struct conn *c, const char *p, size_t n)
{
    if (c->writing)
        return peer_queue(c, p, n);
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (peer_queue(c, p, n) < 0 || peer_rearm(c, EPOLLOUT) < 0)
                return -1;
            c->writing = 1;
            return 0;
        } else {
            return -1;
        }
    }
    return 0;
}

/* EPOLLOUT: flush the queue; once empty, read again. */
static int peer_flush(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w > 0)
            c->out_off += (size_t)w;
        else if (w < 0 && errno == EINTR)
            continue;
        else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        else
            return -1;
    }
    c->out_len = c->out_off = 0;
    c->writing = 0;
    /* A large queue was a one-off: give it back rather than keep it per connection. */
    if (c->out_cap > 64 * 1024) {
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
    return peer_rearm(c, EPOLLIN);
}

/* recv into buf; returns the byte count, 0 when nothing is there yet (EAGAIN),
 * -1 on end of stream or error. */
static ssize_t peer_recv(struct conn *c, char *buf, size_t cap)
{
    for (;;) {
        ssize_t r = recv(c->fd, buf, cap, 0);
        if (r > 0)
            return r;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
}

static void peer_close(struct conn *c)
{
    close(c->fd); /* also leaves the epoll set: the fd is not duplicated */
    free(c->out);
    free(c->in);
    free(c);
}

static void peer_accept(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                perror("accept4"); /* out of descriptors: keep serving the others */
                return;
            }
            peer_die("accept4");
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(peer_epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            perror("epoll_ctl");
            peer_close(c);
        }
    }
}

static int peer_listen(const char *port_arg)
{
    char *end;
    long port = strtol(port_arg, &end, 10);
    if (*end || port <= 0 || port > 65535) {
        fprintf(stderr, "bad port '%s'\n", port_arg);
        exit(2);
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        peer_die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0)
        peer_die("bind");
    if (listen(lfd, 4096) < 0)
        peer_die("listen");
    return lfd;
}

static int peer_main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    if (sigprocmask(SIG_BLOCK, &stop, NULL) < 0)
        peer_die("sigprocmask");
    int sfd = signalfd(-1, &stop, SFD_NONBLOCK | SFD_CLOEXEC);
    int lfd = peer_listen(argv[1]);
    peer_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (sfd < 0 || peer_epfd < 0)
        peer_die("signalfd/epoll_create1");
    /* The listening socket and the signalfd are told apart from connections by
     * their data: a connection's is its struct conn, theirs are these markers. */
    static char listen_mark, signal_mark;
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &listen_mark };
    if (epoll_ctl(peer_epfd, EPOLL_CTL_ADD, lfd, &ev) < 0)
        peer_die("epoll_ctl");
    ev.data.ptr = &signal_mark;
    if (epoll_ctl(peer_epfd, EPOLL_CTL_ADD, sfd, &ev) < 0)
        peer_die("epoll_ctl");

    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(peer_epfd, events, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            peer_die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            void *p = events[i].data.ptr;
            if (p == &listen_mark) {
                peer_accept(lfd);
                continue;
            }
            if (p == &signal_mark)
                return 0; /* SIGTERM or SIGINT: the kernel closes the rest */
            struct conn *c = p;
            uint32_t e = events[i].events;
            int rc;
            if (c->writing)
                rc = (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) ? peer_flush(c) : 0;
            else
                rc = peer_on_readable(c);
            if (rc < 0)
                peer_close(c);
        }
    }
}

#endif
