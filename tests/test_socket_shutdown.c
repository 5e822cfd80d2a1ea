/*
 * test_socket_shutdown.c — sockets shut down for reading: an accept on a listener
 * (-EINVAL; on a Unix one once the connections queued before are taken, a TCP one's
 * are reset), reads and receives on
 * datagram sockets (end of file), on both pollers, also for a try (deadline 0) and a
 * cancelled caller; none may spin to its deadline.
 *
 * Linked with --wrap=accept4 (tests/CMakeLists.txt): the wrapper counts the calls.
 */
#include "helpers.h"

#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

int __real_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags);
int __wrap_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags);
static atomic_int accepts;
int __wrap_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    atomic_fetch_add(&accepts, 1);
    return __real_accept4(fd, sa, len, flags);
}

static void unix_path(char *buf, size_t cap)
{
    snprintf(buf, cap, "/tmp/plait_review_sock_%d", (int)getpid());
    unlink(buf);
}

/* An accept on a listener shut down for reading ends at once with an error (as
 * "waiting readers see end of file"): it does not spin, trying accept(2) over and over,
 * until its deadline.  Unix and TCP listeners alike. */
static void *accept_after_shutdown(void *arg)
{
    int mode = (int)(intptr_t)arg; /* 0: TCP; 1: Unix, SHUT_RDWR; 2: Unix, SHUT_RD */
    bool use_unix = mode != 0;
    char path[64];
    int l;
    if (use_unix) {
        unix_path(path, sizeof path);
        l = plait_unix_listen(path, 4);
    } else {
        l = plait_tcp_listen("127.0.0.1", 0, 4);
    }
    CHECK(l >= 0);
    /* a connection queued before the shutdown: a Unix listener's is still taken; Linux
     * resets a TCP listener's (docs/API.md, "Accepting") */
    plait_addr la;
    CHECK_EQ(plait_local_addr(l, &la), 0);
    int early = use_unix ? plait_unix_connect(path, SOON()) : plait_connect(&la, SOON());
    CHECK(early >= 0);
    CHECK_EQ(plait_shutdown(l, mode == 2 ? SHUT_RD : SHUT_RDWR), 0);
    if (use_unix) {
        int a = plait_accept(l, NULL, SOON());
        CHECK(a >= 0);
        plait_close(a);
    } else {
        char byte;
        CHECK_EQ(plait_read(early, &byte, 1, SOON()), -ECONNRESET);
    }
    plait_close(early);
    /* a try sees it too (it said -ETIMEDOUT, on a Unix listener) */
    CHECK_EQ(plait_accept(l, NULL, 0), -EINVAL);
    atomic_store(&accepts, 0);
    int64_t start = plait_now();
    int c = plait_accept(l, NULL, plait_deadline_in(500 * PLAIT_MS));
    int64_t took = plait_now() - start;
    int n = atomic_load(&accepts);
    fprintf(stderr, "  %s: accept -> %d after %lld ms, %d accept4 calls\n",
            use_unix ? "unix" : "tcp", c, (long long)(took / PLAIT_MS), n);
    CHECK_EQ(c, -EINVAL); /* as for a socket that is not listening */
    CHECK(n < 10);
    if (c >= 0)
        plait_close(c);
    plait_close(l);
    if (use_unix)
        unlink(path);
    return NULL;
}

TEST(tcp_accept_after_shutdown_ends) { check_run(accept_after_shutdown, NULL); }
TEST(unix_accept_after_shutdown_ends) { check_run(accept_after_shutdown, (void *)1); }
TEST(unix_accept_after_shutdown_rd_ends) { check_run(accept_after_shutdown, (void *)2); }

/* The same from a plain thread (no scheduler): it must not spin either. */
static void *accept_after_shutdown_thread(void *arg)
{
    return accept_after_shutdown(arg);
}
TEST(unix_accept_after_shutdown_ends_on_a_thread)
{
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, accept_after_shutdown_thread, (void *)1, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
}

/* A datagram socket shut down for reading: its reads and receives see end of file (0)
 * at once, as a blocking recv(2) would, and as plait_shutdown promises its waiting
 * readers; they do not spin on a descriptor that polls readable while recv(2) says
 * EAGAIN, until their deadline.  arg: 0, a Unix datagram pair, plait_read; 1, the
 * same, plait_recvfrom; 2, a connected UDP socket, plait_recvfrom; 3, the same,
 * plait_read. */
static void *read_after_shutdown(void *arg)
{
    int mode = (int)(intptr_t)arg;
    int fd, other;
    if (mode < 2) {
        int sv[2];
        CHECK_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
        fd = sv[0];
        other = sv[1];
    } else {
        plait_addr a, b;
        CHECK_EQ(plait_addr_ip(&a, "127.0.0.1", 0), 0);
        fd = plait_udp_bind(&a);
        other = plait_udp_bind(&a);
        CHECK(fd >= 0 && other >= 0);
        CHECK_EQ(plait_local_addr(other, &b), 0);
        CHECK_EQ(connect(fd, &b.u.sa, b.len), 0);
    }
    CHECK_EQ(plait_shutdown(fd, SHUT_RD), 0);
    char buf[16];
    /* a try sees the end too, and so does a cancelled caller (both said they could not
     * wait: -ETIMEDOUT, -ECANCELED, where a wait would have said 0 at once) */
    ssize_t tried = mode == 0 || mode == 3 ? plait_read(fd, buf, sizeof buf, 0)
                                           : plait_recvfrom(fd, buf, sizeof buf, NULL, 0);
    CHECK_EQ(tried, 0);
    int64_t start = plait_now();
    int64_t deadline = plait_deadline_in(3 * PLAIT_SEC); /* (a wait would reach it) */
    ssize_t n = mode == 0 || mode == 3 ? plait_read(fd, buf, sizeof buf, deadline)
                                       : plait_recvfrom(fd, buf, sizeof buf, NULL, deadline);
    int64_t took = plait_now() - start;
    fprintf(stderr, "  mode %d: %zd after %lld ms\n", mode, n, (long long)(took / PLAIT_MS));
    CHECK_EQ(n, 0);
    CHECK_PROMPT(start);
    plait_close(fd);
    plait_close(other);
    return NULL;
}

TEST(unix_dgram_read_after_shutdown) { check_run(read_after_shutdown, (void *)0); }
TEST(unix_dgram_recvfrom_after_shutdown) { check_run(read_after_shutdown, (void *)1); }
TEST(udp_recvfrom_after_shutdown) { check_run(read_after_shutdown, (void *)2); }
TEST(udp_read_after_shutdown) { check_run(read_after_shutdown, (void *)3); }
static void *cancelled_then_read_after_shutdown(void *arg)
{
    plait_task t;
    CHECK_EQ(plait_spawn(&t, read_after_shutdown, arg), 0);
    CHECK_EQ(plait_cancel(t), 0); /* before it ran (its checks are its own) */
    CHECK_EQ(plait_join(t, NULL, SOON()), -ECANCELED); /* what it returned is dropped */
    return NULL;
}
TEST(udp_recvfrom_after_shutdown_cancelled)
{
    check_run(cancelled_then_read_after_shutdown, (void *)2);
}
TEST(udp_read_after_shutdown_cancelled) { check_run(cancelled_then_read_after_shutdown, (void *)3); }
TEST(udp_recvfrom_after_shutdown_on_a_thread)
{
    plait_task t;
    CHECK_EQ(plait_thread_start(&t, read_after_shutdown, (void *)2, NULL), 0);
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
}

/* A coroutine waiting in plait_recvfrom on a UDP socket sees end of file when another
 * shuts the socket down for reading, on either poller. */
static ssize_t waiter_result;
static void *recv_waiter(void *arg)
{
    int fd = *(int *)arg;
    char buf[8];
    waiter_result = plait_recvfrom(fd, buf, sizeof buf, NULL, plait_deadline_in(2 * PLAIT_SEC));
    return NULL;
}

static void *shutdown_under_a_waiting_receiver(void *arg)
{
    (void)arg;
    plait_addr a, b;
    CHECK_EQ(plait_addr_ip(&a, "127.0.0.1", 0), 0);
    int fd = plait_udp_bind(&a), other = plait_udp_bind(&a);
    CHECK(fd >= 0 && other >= 0);
    CHECK_EQ(plait_local_addr(other, &b), 0);
    CHECK_EQ(connect(fd, &b.u.sa, b.len), 0);
    plait_task t;
    CHECK_EQ(plait_spawn(&t, recv_waiter, &fd), 0);
    CHECK_EQ(plait_yield(), 0); /* it runs until it waits */
    int64_t start = plait_now();
    CHECK_EQ(plait_shutdown(fd, SHUT_RD), 0);
    waiter_result = 1;
    CHECK_EQ(plait_join(t, NULL, SOON()), 0);
    int64_t took = plait_now() - start;
    fprintf(stderr, "  waiting receiver: %zd after %lld ms\n", waiter_result,
            (long long)(took / PLAIT_MS));
    CHECK_EQ(waiter_result, 0);
    CHECK(took < PLAIT_SEC);
    plait_close(fd);
    plait_close(other);
    return NULL;
}

TEST(udp_shutdown_wakes_a_waiting_receiver) { check_run(shutdown_under_a_waiting_receiver, NULL); }

RUN_TESTS(CASE(tcp_accept_after_shutdown_ends), CASE(unix_accept_after_shutdown_ends),
          CASE(unix_accept_after_shutdown_rd_ends),
          CASE(unix_accept_after_shutdown_ends_on_a_thread),
          CASE(unix_dgram_read_after_shutdown), CASE(unix_dgram_recvfrom_after_shutdown),
          CASE(udp_recvfrom_after_shutdown), CASE(udp_read_after_shutdown),
          CASE(udp_recvfrom_after_shutdown_cancelled), CASE(udp_read_after_shutdown_cancelled),
          CASE(udp_recvfrom_after_shutdown_on_a_thread),
          CASE(udp_shutdown_wakes_a_waiting_receiver))
