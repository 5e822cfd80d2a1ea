/*
 * test_socket_edges.c — sockets and the two pollers at their edges (review 121):
 * datagrams cut, empty or too big, Unix paths at the length limit and abstract names,
 * connects refused or past their deadline, whole-buffer calls that end early (their
 * progress reported), shut down sockets, waits and calls on descriptors that are not
 * open, and option values refused.  Each scenario runs in a coroutine and on a plain
 * thread; the file runs once per poller (PLAIT_POLLER=io_uring and =epoll,
 * tests/CMakeLists.txt).
 *
 * Cases that failed before their fix: a first plait_wait_fd on a number just closed
 * (it waited on plait's own eventfd, which took the number), plait_shutdown of an
 * unconnected UDP socket (-ENOTCONN for a shutdown that was made), the text of a
 * scope whose interface is named by digits (it parsed back as another index), and a
 * cancelled caller's connect to a Unix listener with room (-ECANCELED).
 */
#include "fork_child.h"

#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Run fn(arg) in a coroutine and on this thread; neither leaves a descriptor open.  The
 * first wait on a thread makes its wake-up eventfd, which it keeps: made before. */
static void both_ways(plait_fn fn, void *arg)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    CHECK_EQ(plait_wait_fd(sv[0], PLAIT_WRITABLE, SOON()), PLAIT_WRITABLE);
    close(sv[0]);
    close(sv[1]);
    int before = count_fds();
    check_run(fn, arg);
    CHECK_EQ(count_fds(), before);
    fn(arg);
    CHECK_EQ(count_fds(), before);
}

/* The caller's first wait makes what its waits need (a scheduler's poller, a thread's
 * wake-up eventfd): made here, before descriptors are counted. */
static void warm_up(void)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    CHECK_EQ(plait_wait_fd(sv[0], PLAIT_WRITABLE, SOON()), PLAIT_WRITABLE);
    close(sv[0]);
    close(sv[1]);
}

static int udp_on(const char *host, plait_addr *a)
{
    CHECK_EQ(plait_addr_ip(a, host, 0), 0);
    int fd = plait_udp_bind(a);
    CHECK(fd >= 0);
    CHECK_EQ(plait_local_addr(fd, a), 0);
    return fd;
}

static void tcp_pair(int *c, int *s)
{
    plait_addr a;
    CHECK_EQ(plait_addr_ip(&a, "127.0.0.1", 0), 0);
    int l = plait_listen(&a, 0);
    CHECK(l >= 0);
    CHECK_EQ(plait_local_addr(l, &a), 0);
    *c = plait_connect(&a, SOON());
    CHECK(*c >= 0);
    *s = plait_accept(l, NULL, SOON());
    CHECK(*s >= 0);
    CHECK_EQ(plait_close(l), 0);
}

/* ---- datagrams ---- */

static void *datagram_edges_s(void *arg)
{
    (void)arg;
    plait_addr a, b, from;
    int x = udp_on("127.0.0.1", &a), y = udp_on("127.0.0.1", &b);
    char big[100], small[10];
    for (int i = 0; i < 100; i++)
        big[i] = (char)i;
    /* cut to the buffer; the rest of that datagram is gone, the next is whole */
    CHECK_EQ(plait_sendto(x, big, sizeof big, &b, SOON()), (ssize_t)sizeof big);
    CHECK_EQ(plait_sendto(x, big + 1, 5, &b, SOON()), 5);
    CHECK_EQ(plait_recvfrom(y, small, sizeof small, &from, SOON()), (ssize_t)sizeof small);
    CHECK_EQ(memcmp(small, big, sizeof small), 0);
    CHECK_EQ(plait_addr_port(&from), plait_addr_port(&a));
    CHECK_EQ(plait_recvfrom(y, small, sizeof small, &from, SOON()), 5);
    CHECK_EQ(memcmp(small, big + 1, 5), 0);
    /* an empty datagram is one */
    CHECK_EQ(plait_sendto(x, big, 0, &b, SOON()), 0);
    memset(&from, 0, sizeof from);
    CHECK_EQ(plait_recvfrom(y, small, sizeof small, &from, SOON()), 0);
    CHECK_EQ(plait_addr_port(&from), plait_addr_port(&a));
    /* too big for UDP: at once, nothing sent */
    static char huge[70000];
    int64_t start = plait_now();
    CHECK_EQ(plait_sendto(x, huge, sizeof huge, &b, SOON()), -EMSGSIZE);
    CHECK_EQ(plait_sendto(x, huge, (size_t)SSIZE_MAX + 1, &b, SOON()), -EMSGSIZE);
    CHECK_PROMPT(start);
    CHECK_EQ(plait_recvfrom(y, small, sizeof small, NULL, 0), -ETIMEDOUT);
    /* bad buffers */
    CHECK_EQ(plait_sendto(x, NULL, 1, &b, SOON()), -EINVAL);
    CHECK_EQ(plait_recvfrom(y, NULL, 1, NULL, SOON()), -EINVAL);
    /* a receive longer than a return value could count: at once, as plait_read's (it
     * waited, and a datagram then failed -EFAULT) */
    CHECK_EQ(plait_recvfrom(y, small, (size_t)SSIZE_MAX + 1, NULL, plait_deadline_in(50 * PLAIT_MS)),
             -EINVAL);
    /* no address on a socket not connected */
    CHECK_EQ(plait_sendto(x, big, 1, NULL, SOON()), -EDESTADDRREQ);
    CHECK_EQ(plait_close(x), 0);
    CHECK_EQ(plait_close(y), 0);
    return NULL;
}

TEST(datagram_edges) { both_ways(datagram_edges_s, NULL); }

/* ---- Unix paths at the limit ---- */

static void *unix_path_limit_s(void *arg)
{
    (void)arg;
    char dir[] = "/tmp/plait-rs-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[200];
    size_t n = strlen(dir);
    memcpy(path, dir, n);
    path[n++] = '/';
    while (n < 107)
        path[n++] = 'p';
    path[n] = '\0';
    plait_addr a;
    CHECK_EQ(plait_addr_unix(&a, path), 0); /* 107 bytes and the NUL: fits */
    int l = plait_listen(&a, 0);
    CHECK(l >= 0);
    int c = plait_unix_connect(path, SOON());
    CHECK(c >= 0);
    plait_addr peer;
    int s = plait_accept(l, &peer, SOON());
    CHECK(s >= 0);
    plait_addr local;
    CHECK_EQ(plait_local_addr(l, &local), 0);
    char text[PLAIT_ADDR_STRLEN];
    CHECK_EQ(plait_addr_format(&local, text, sizeof text), 107);
    CHECK_EQ(strcmp(text, path), 0);
    CHECK_EQ(plait_addr_format(&peer, text, sizeof text), 0); /* unnamed */
    plait_close(s);
    plait_close(c);
    plait_close(l);
    unlink(path);
    /* 108 bytes fill sun_path, no NUL: Linux takes that (unix(7)), and plait_addr_format
     * gives such paths, so plait takes it too (it said -ENAMETOOLONG, and a socket bound
     * there could not be named) */
    path[107] = 'p';
    path[108] = '\0';
    CHECK_EQ(plait_addr_unix(&a, path), 0);
    l = plait_unix_listen(path, 0);
    CHECK(l >= 0);
    c = plait_unix_connect(path, SOON());
    CHECK(c >= 0);
    CHECK_EQ(plait_local_addr(l, &local), 0);
    CHECK_EQ(plait_addr_format(&local, text, sizeof text), 108);
    CHECK_EQ(strcmp(text, path), 0);
    /* and the address plait gives back goes back to plait: the kernel's length counts
     * the NUL it put past sun_path (111), which its own calls refuse, and plait said
     * -EINVAL (session 51's audit) */
    CHECK_EQ(local.len, sizeof(struct sockaddr_un));
    int again = plait_connect(&local, SOON());
    CHECK(again >= 0);
    if (again >= 0)
        plait_close(again);
    plait_close(c);
    plait_close(l);
    CHECK_EQ(unlink(path), 0);
    /* a datagram from a socket bound there is answered to the sender it names */
    int sender = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int receiver = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(sender >= 0 && receiver >= 0);
    CHECK_EQ(bind(sender, &a.u.sa, a.len), 0);
    plait_addr to;
    char rpath[64];
    snprintf(rpath, sizeof rpath, "%s/r", dir);
    CHECK_EQ(plait_addr_unix(&to, rpath), 0);
    CHECK_EQ(bind(receiver, &to.u.sa, to.len), 0);
    CHECK_EQ(plait_sendto(sender, "hi", 2, &to, SOON()), 2);
    plait_addr from;
    char got[4];
    CHECK_EQ(plait_recvfrom(receiver, got, sizeof got, &from, SOON()), 2);
    CHECK_EQ(from.len, sizeof(struct sockaddr_un));
    CHECK_EQ(plait_sendto(receiver, "ok", 2, &from, SOON()), 2);
    CHECK_EQ(plait_recvfrom(sender, got, sizeof got, NULL, SOON()), 2);
    CHECK_EQ(memcmp(got, "ok", 2), 0);
    plait_close(sender);
    plait_close(receiver);
    CHECK_EQ(unlink(path), 0);
    CHECK_EQ(unlink(rpath), 0);
    path[108] = 'p';
    path[109] = '\0';
    CHECK_EQ(plait_addr_unix(&a, path), -ENAMETOOLONG);
    CHECK_EQ(plait_unix_listen(path, 0), -ENAMETOOLONG);
    CHECK_EQ(plait_unix_connect(path, SOON()), -ENAMETOOLONG);
    CHECK_EQ(rmdir(dir), 0);

    /* an abstract name (a leading NUL) of the full 107 bytes: "@" and the name */
    memset(&a, 0, sizeof a);
    a.u.un.sun_family = AF_UNIX;
    int m = snprintf(a.u.un.sun_path + 1, sizeof a.u.un.sun_path - 1, "plait-rs-%d-", (int)getpid());
    memset(a.u.un.sun_path + 1 + m, 'q', sizeof a.u.un.sun_path - 1 - (size_t)m);
    a.len = sizeof a.u.un;
    l = plait_listen(&a, 0);
    CHECK(l >= 0);
    c = plait_connect(&a, SOON());
    CHECK(c >= 0);
    CHECK_EQ(plait_peer_addr(c, &peer), 0);
    CHECK_EQ(plait_addr_format(&peer, text, sizeof text), 108);
    CHECK_EQ(text[0], '@');
    CHECK_EQ(memcmp(text + 1, a.u.un.sun_path + 1, 107), 0);
    CHECK_EQ(plait_addr_format(&peer, text, 108), -ENOSPC); /* no room for the NUL */
    plait_close(c);
    plait_close(l);
    return NULL;
}

TEST(unix_path_limit) { both_ways(unix_path_limit_s, NULL); }

/* ---- connects that fail ---- */

static void *connect_failures_s(void *arg)
{
    (void)arg;
    plait_addr a;
    CHECK_EQ(plait_addr_ip(&a, "127.0.0.1", 0), 0);
    int l = plait_listen(&a, 0);
    CHECK_EQ(plait_local_addr(l, &a), 0);
    CHECK_EQ(plait_close(l), 0); /* nobody listens there now */
    warm_up();
    int before = count_fds();
    CHECK_EQ(plait_connect(&a, SOON()), -ECONNREFUSED);
    CHECK_EQ(plait_connect(&a, 0), -ECONNREFUSED); /* refused at once: not a timeout */
    CHECK_EQ(count_fds(), before);
    /* a listener there and a deadline past: connected at once (loopback) or timed out */
    l = plait_listen(&a, 0);
    CHECK(l >= 0);
    int c = plait_connect(&a, plait_now() - PLAIT_SEC);
    CHECK(c >= 0 || c == -ETIMEDOUT);
    if (c >= 0)
        CHECK_EQ(plait_close(c), 0);
    CHECK_EQ(plait_close(l), 0);
    CHECK_EQ(count_fds(), before);
    return NULL;
}

TEST(connect_failures) { both_ways(connect_failures_s, NULL); }

/* ---- a cancelled caller's connect ----
 * Cancellation is sticky, but a call that can complete without blocking still does
 * (docs/API.md): a connect to a Unix listener with room in its backlog is made at once,
 * so a cancelled coroutine gets its connection, whatever its deadline; to one whose
 * backlog is full it would wait, so it gets -ECANCELED at once (not the deadline's
 * -ETIMEDOUT, not a wait), its half-made socket closed; a TCP connect, which never
 * completes at once, is not started.  (The connect refused a
 * cancelled caller before it tried: -ECANCELED for a connection it could have had.) */

typedef struct cancelled_connect {
    plait_event *never;
    const plait_addr *to;
    int64_t deadline;
    int r;
    int64_t took;
} cancelled_connect;

static void *connect_once_cancelled(void *p)
{
    cancelled_connect *cc = p;
    CHECK_EQ(plait_event_wait(cc->never, PLAIT_FOREVER), -ECANCELED);
    int64_t start = plait_now();
    cc->r = plait_connect(cc->to, cc->deadline);
    cc->took = plait_now() - start;
    return NULL;
}

/* plait_connect(to, deadline) from a coroutine cancelled before it calls it. */
static int connect_cancelled(const plait_addr *to, int64_t deadline, int64_t *took)
{
    cancelled_connect cc = {.to = to, .deadline = deadline, .r = 1};
    CHECK_EQ(plait_event_create(&cc.never), 0);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, connect_once_cancelled, &cc), 0);
    settle(); /* it waits on the event */
    CHECK_EQ(plait_cancel(t), 0);
    CHECK_EQ(plait_join(t, NULL, PLAIT_FOREVER), -ECANCELED);
    CHECK_EQ(plait_event_destroy(cc.never), 0);
    *took = cc.took;
    return cc.r;
}

static void *cancelled_connect_main(void *arg)
{
    (void)arg;
    char path[64];
    snprintf(path, sizeof path, "/tmp/plait_cancelled_connect_%d", (int)getpid());
    unlink(path);
    plait_addr a;
    CHECK_EQ(plait_addr_unix(&a, path), 0);
    int l = plait_listen(&a, 1);
    CHECK(l >= 0);
    warm_up();
    int before = count_fds();
    const int64_t deadlines[] = {PLAIT_FOREVER, 0};
    for (int i = 0; i < 2; i++) { /* room in the backlog: connected */
        int64_t took;
        int c = connect_cancelled(&a, deadlines[i], &took);
        CHECK(c >= 0);
        if (c >= 0) {
            int s = plait_accept(l, NULL, SOON());
            CHECK(s >= 0);
            if (s >= 0)
                CHECK_EQ(plait_close(s), 0);
            CHECK_EQ(plait_close(c), 0);
        }
    }
    CHECK_EQ(count_fds(), before);
    /* fill the backlog (Linux takes backlog + 1): the next connect answers EAGAIN */
    int queued[8], n = 0;
    for (; n < 8; n++) {
        queued[n] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        CHECK(queued[n] >= 0);
        if (connect(queued[n], &a.u.sa, a.len) < 0) {
            CHECK_EQ(errno, EAGAIN);
            close(queued[n]);
            break;
        }
    }
    CHECK(n < 8);
    for (int i = 0; i < 2; i++) {
        int64_t took;
        CHECK_EQ(connect_cancelled(&a, deadlines[i], &took), -ECANCELED);
        CHECK(took < PLAIT_SEC); /* at once, not after a back-off to the deadline */
    }
    for (int i = 0; i < n; i++)
        close(queued[i]);
    CHECK_EQ(count_fds(), before);
    CHECK_EQ(plait_close(l), 0);
    unlink(path);
    /* a TCP connect never completes at once: a cancelled caller starts none (it sent a
     * SYN, and the listener took a connection closed at once: a review found it) */
    plait_addr t;
    CHECK_EQ(plait_addr_ip(&t, "127.0.0.1", 0), 0);
    int tl = plait_listen(&t, 4);
    CHECK(tl >= 0);
    CHECK_EQ(plait_local_addr(tl, &t), 0);
    for (int i = 0; i < 2; i++) {
        int64_t took;
        CHECK_EQ(connect_cancelled(&t, deadlines[i], &took), -ECANCELED);
    }
    CHECK_EQ(plait_accept(tl, NULL, plait_deadline_in(50 * PLAIT_MS)), -ETIMEDOUT);
    CHECK_EQ(plait_close(tl), 0);
    return NULL;
}

TEST(cancelled_connect_completes_when_it_can) { check_run(cancelled_connect_main, NULL); }

/* ---- whole-buffer calls that end early ---- */

static void *whole_buffer_progress_s(void *arg)
{
    (void)arg;
    int c, s;
    tcp_pair(&c, &s);
    char buf[10] = {0};
    CHECK_EQ(plait_write(c, "abc", 3, SOON()), 3);
    size_t done = 99;
    int64_t start = plait_now();
    CHECK_EQ(plait_read_exactly(s, buf, sizeof buf, &done, plait_deadline_in(50 * PLAIT_MS)),
             -ETIMEDOUT);
    CHECK_TOOK(start, 50 * PLAIT_MS);
    CHECK_EQ(done, 3);
    CHECK_EQ(memcmp(buf, "abc", 3), 0);
    CHECK_EQ(plait_write(c, "defghij", 7, SOON()), 7);
    CHECK_EQ(plait_read_exactly(s, buf + 3, 7, &done, SOON()), 0);
    CHECK_EQ(done, 7);
    CHECK_EQ(memcmp(buf, "abcdefghij", 10), 0);
    /* end of file after 2 of 5 */
    CHECK_EQ(plait_write(c, "kl", 2, SOON()), 2);
    CHECK_EQ(plait_shutdown(c, SHUT_WR), 0);
    CHECK_EQ(plait_read_exactly(s, buf, 5, &done, SOON()), -ENODATA);
    CHECK_EQ(done, 2);
    /* written after a shutdown: -EPIPE, nothing moved */
    CHECK_EQ(plait_write_all(c, "x", 1, &done, SOON()), -EPIPE);
    CHECK_EQ(done, 0);
    CHECK_EQ(plait_write(c, "x", 1, SOON()), -EPIPE);
    /* read after a shutdown for reading: end of file, at once */
    CHECK_EQ(plait_shutdown(s, SHUT_RD), 0);
    start = plait_now();
    CHECK_EQ(plait_read(s, buf, 1, SOON()), 0);
    CHECK_PROMPT(start);
    CHECK_EQ(plait_close(c), 0);
    CHECK_EQ(plait_close(s), 0);
    return NULL;
}

TEST(whole_buffer_progress) { both_ways(whole_buffer_progress_s, NULL); }

/* ---- waits on what is not open ---- */

static void *waits_on_nothing_s(void *arg)
{
    (void)arg;
    warm_up();
    int p[2];
    CHECK_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    int closed = p[0];
    CHECK_EQ(plait_close(p[0]), 0);
    CHECK_EQ(plait_close(p[1]), 0);
    CHECK_EQ(plait_wait_fd(-1, PLAIT_READABLE, SOON()), -EBADF);
    CHECK_EQ(plait_wait_fd(-5, PLAIT_WRITABLE, 0), -EBADF);
    CHECK_EQ(plait_wait_fd(closed, PLAIT_READABLE, SOON()), -EBADF);
    CHECK_EQ(plait_wait_fd(closed, PLAIT_READABLE, 0), -EBADF);
    CHECK_EQ(plait_wait_fd(100000, PLAIT_READABLE, SOON()), -EBADF);
    char b;
    CHECK_EQ(plait_read(-1, &b, 1, SOON()), -EBADF);
    CHECK_EQ(plait_write(-1, &b, 1, SOON()), -EBADF);
    CHECK_EQ(plait_recvfrom(-1, &b, 1, NULL, SOON()), -EBADF);
    CHECK_EQ(plait_sendto(-1, &b, 1, NULL, SOON()), -EBADF);
    CHECK_EQ(plait_close(-1), -EBADF);
    CHECK_EQ(plait_close(closed), -EBADF);
    return NULL;
}

TEST(waits_on_nothing) { both_ways(waits_on_nothing_s, NULL); }

/* ---- shutting a UDP socket down ---- */

/* Every UDP socket plait makes is unconnected (plait_udp_bind), and Linux shuts such a
 * socket down all the same (its receivers read end of file, a waiting one is woken, as
 * plait_shutdown promises) but says ENOTCONN: plait_shutdown returned -ENOTCONN for a
 * shutdown that was made.  A connected one said 0. */
static ssize_t waiting_receiver_got;

static void *waiting_receiver(void *arg)
{
    int fd = *(int *)arg;
    char b[8];
    waiting_receiver_got = plait_recvfrom(fd, b, sizeof b, NULL, SOON());
    return NULL;
}

static void *udp_shutdown_s(void *arg)
{
    (void)arg;
    plait_addr a, b, from;
    int x = udp_on("127.0.0.1", &a), y = udp_on("127.0.0.1", &b);
    CHECK_EQ(plait_sendto(x, "abc", 3, &b, SOON()), 3);
    CHECK_EQ(plait_shutdown(y, SHUT_RD), 0);
    char buf[8];
    CHECK_EQ(plait_recvfrom(y, buf, sizeof buf, &from, SOON()), 3); /* queued before */
    int64_t start = plait_now();
    CHECK_EQ(plait_recvfrom(y, buf, sizeof buf, &from, SOON()), 0); /* then end of file */
    CHECK_EQ(from.len, 0);
    CHECK_PROMPT(start);
    CHECK_EQ(plait_shutdown(x, SHUT_WR), 0);
    CHECK_EQ(plait_shutdown(x, SHUT_RDWR), 0);
    CHECK_EQ(plait_shutdown(x, 7), -EINVAL);
    if (plait_in_coroutine()) { /* a receiver that waits is woken, and reads end of file */
        int z = udp_on("127.0.0.1", &a);
        plait_task t;
        waiting_receiver_got = 99;
        CHECK_EQ(plait_spawn(&t, waiting_receiver, &z), 0);
        CHECK_EQ(plait_yield(), 0); /* it runs until it waits */
        start = plait_now();
        CHECK_EQ(plait_shutdown(z, SHUT_RD), 0);
        CHECK_EQ(plait_join(t, NULL, SOON()), 0);
        CHECK_EQ(waiting_receiver_got, 0);
        CHECK_PROMPT(start);
        CHECK_EQ(plait_close(z), 0);
    }
    /* a stream socket not connected is still -ENOTCONN */
    CHECK_EQ(plait_addr_ip(&a, "127.0.0.1", 0), 0);
    int l = plait_listen(&a, 0);
    CHECK(l >= 0);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK_EQ(plait_shutdown(s, SHUT_RD), -ENOTCONN);
    close(s);
    CHECK_EQ(plait_close(l), 0);
    CHECK_EQ(plait_close(x), 0);
    CHECK_EQ(plait_close(y), 0);
    return NULL;
}

TEST(udp_shutdown) { both_ways(udp_shutdown_s, NULL); }

/* ---- a first wait on a number closed just before ---- */

/* A thread's first wait makes its wake-up eventfd, a scheduler's first wait its poller
 * (an eventfd, an epoll or io_uring instance): each takes the lowest number free, the
 * one the caller has just closed.  plait_wait_fd on that number then waited on plait's
 * own descriptor, until its deadline (or said "readable" once the scheduler was woken),
 * where a read or write says -EBADF (plait__fd_call_begin). */
typedef struct {
    int r;
    int64_t took;
} first_wait;

static void *wait_on_the_number_just_closed(void *arg)
{
    first_wait *f = arg;
    int p[2];
    CHECK_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    int closed = p[0] < p[1] ? p[0] : p[1]; /* the lowest number free once both close */
    CHECK_EQ(close(p[0]), 0);
    CHECK_EQ(close(p[1]), 0);
    int64_t start = plait_now();
    f->r = plait_wait_fd(closed, PLAIT_READABLE, plait_deadline_in(2 * PLAIT_SEC));
    f->took = plait_now() - start;
    return NULL;
}

static void *fresh_thread_waits(void *arg)
{
    first_wait *f = arg;
    if (f->r) /* in a coroutine, whose scheduler has no poller yet */
        CHECK_EQ(plait_run(wait_on_the_number_just_closed, f, NULL), 0);
    else /* on a thread that has no wake-up descriptor yet */
        wait_on_the_number_just_closed(f);
    return NULL;
}

static void first_wait_case(bool in_coroutine)
{
    int before = count_fds();
    first_wait f = {.r = in_coroutine};
    pthread_t th;
    thread_start(&th, fresh_thread_waits, &f);
    thread_join(th);
    CHECK_EQ(f.r, -EBADF);
    CHECK(f.took < PLAIT_SEC);
    CHECK_EQ(count_fds(), before);
}

TEST(first_wait_of_a_thread_on_a_number_just_closed) { first_wait_case(false); }
TEST(first_wait_of_a_scheduler_on_a_number_just_closed) { first_wait_case(true); }

/* ---- a scope whose interface's name is all digits ---- */

/* plait_addr_format writes a scope by its interface's name, and plait_addr_ip reads a
 * scope of digits as an index: an interface named "7" (legal, if rare) made
 * "[fe80::1%7]" of the scope of index 1, which parsed back to index 7, not the same
 * scope as promised.  In a network namespace of its own (a user namespace gives the
 * right to rename), the loopback (index 1) is named "7". */
static void rename_loopback_and_format(void)
{
    if (unshare(CLONE_NEWUSER | CLONE_NEWNET) < 0 && unshare(CLONE_NEWNET) < 0)
        _exit(77); /* no namespace to be had here */
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    snprintf(ifr.ifr_newname, sizeof ifr.ifr_newname, "7");
    if (s < 0 || ioctl(s, SIOCSIFNAME, &ifr) < 0)
        _exit(77);
    close(s);
    unsigned index = if_nametoindex("7");
    CHECK(index > 0 && index != 7);
    char host[32], text[PLAIT_ADDR_STRLEN];
    snprintf(host, sizeof host, "fe80::1%%%u", index);
    plait_addr a, back;
    CHECK_EQ(plait_addr_ip(&a, host, 80), 0);
    CHECK_EQ(a.u.in6.sin6_scope_id, index);
    int n = plait_addr_format(&a, text, sizeof text);
    CHECK(n > 0);
    fprintf(stderr, "  scope of index %u, named \"7\": %s\n", index, text);
    /* less its ":80", the text parses back to the same scope */
    if (n > 3)
        text[n - 3] = '\0';
    CHECK_EQ(plait_addr_ip(&back, text, 80), 0);
    CHECK_EQ(back.u.in6.sin6_scope_id, index);
    /* a name that is not all digits is still written as the name */
    s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "7");
    snprintf(ifr.ifr_newname, sizeof ifr.ifr_newname, "7a");
    CHECK_EQ(ioctl(s, SIOCSIFNAME, &ifr), 0);
    close(s);
    CHECK(plait_addr_format(&a, text, sizeof text) > 0);
    CHECK(strstr(text, "%7a]") != NULL);
    child_exit();
}

TEST(scope_of_an_interface_named_by_digits_parses_back)
{
    pid_t pid = fork_child(true);
    if (pid == 0)
        rename_loopback_and_format();
    int status = reap_within(pid, 10);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
        CHECK_SKIP("no network namespace of its own to be had");
        return;
    }
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
}

/* ---- options ---- */

static void *option_edges_s(void *arg)
{
    (void)arg;
    int c, s;
    tcp_pair(&c, &s);
    int v = -1;
    CHECK_EQ(plait_socket_set(c, (enum plait_sockopt)0, 1), -EINVAL);
    CHECK_EQ(plait_socket_set(c, (enum plait_sockopt)99, 1), -EINVAL);
    CHECK_EQ(plait_socket_set(c, PLAIT_NODELAY, -1), -EINVAL);
    CHECK_EQ(plait_socket_get(c, PLAIT_NODELAY, NULL), -EINVAL);
    CHECK_EQ(plait_socket_get(c, (enum plait_sockopt)99, &v), -EINVAL);
    CHECK_EQ(plait_socket_set(c, PLAIT_KEEPALIVE, 40000), -EINVAL);
    CHECK_EQ(plait_socket_get(c, PLAIT_KEEPALIVE, &v), 0);
    CHECK_EQ(v, 0);
    CHECK_EQ(plait_socket_set(c, PLAIT_KEEPALIVE, 30), 0);
    CHECK_EQ(plait_socket_get(c, PLAIT_KEEPALIVE, &v), 0);
    CHECK_EQ(v, 30);
    CHECK_EQ(plait_socket_set(c, PLAIT_NODELAY, 7), 0);
    CHECK_EQ(plait_socket_get(c, PLAIT_NODELAY, &v), 0);
    CHECK_EQ(v, 1);
    CHECK_EQ(plait_socket_set(-1, PLAIT_RCVBUF, 1), -EBADF);
    CHECK_EQ(plait_socket_set(-1, PLAIT_NODELAY, 1), -EBADF);
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    CHECK_EQ(plait_socket_set(p[0], PLAIT_RCVBUF, 1), -ENOTSOCK);
    CHECK_EQ(plait_socket_get(p[0], PLAIT_NODELAY, &v), -ENOTSOCK);
    close(p[0]);
    close(p[1]);
    plait_addr a;
    int u = udp_on("127.0.0.1", &a);
    CHECK_EQ(plait_socket_set(u, PLAIT_NODELAY, 1), -ENOPROTOOPT);
    CHECK_EQ(plait_socket_set(u, PLAIT_KEEPALIVE, 1), -ENOPROTOOPT);
    CHECK_EQ(plait_close(u), 0);
    CHECK_EQ(plait_close(c), 0);
    CHECK_EQ(plait_close(s), 0);
    return NULL;
}

TEST(option_edges) { both_ways(option_edges_s, NULL); }

RUN_TESTS(CASE(datagram_edges), CASE(unix_path_limit), CASE(connect_failures),
          CASE(cancelled_connect_completes_when_it_can),
          CASE(whole_buffer_progress), CASE(waits_on_nothing), CASE(option_edges),
          CASE(first_wait_of_a_thread_on_a_number_just_closed),
          CASE(first_wait_of_a_scheduler_on_a_number_just_closed), CASE(udp_shutdown),
          CASE(scope_of_an_interface_named_by_digits_parses_back))
