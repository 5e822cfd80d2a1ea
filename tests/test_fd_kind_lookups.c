/*
 * test_fd_kind_lookups.c — how often a coroutine's calls on a descriptor look its kind
 * up (fstat(2), and getsockopt(2) for a socket's type).
 *
 * A read or write that moves bytes needs the kind (send(2)/recv(2) on a socket, and on
 * io_uring whether the ring may read it); the scheduler keeps it per descriptor number,
 * valid until a plait_close of a number of the same close stripe (fd % 64).  An accept,
 * a send-to or a receive-from needs no kind: once (3334e99) each of them looked it up
 * again after every such close, two system calls for nothing per call.
 *
 * Linked with --wrap=fstat and --wrap=getsockopt (tests/CMakeLists.txt): the wrappers
 * count the library's calls, then make the real ones.
 */
#include "helpers.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static atomic_int fstats, getsockopts;

int __real_fstat(int fd, struct stat *st);
int __wrap_fstat(int fd, struct stat *st);
int __wrap_fstat(int fd, struct stat *st)
{
    atomic_fetch_add(&fstats, 1);
    return __real_fstat(fd, st);
}

int __real_getsockopt(int fd, int level, int name, void *value, socklen_t *len);
int __wrap_getsockopt(int fd, int level, int name, void *value, socklen_t *len);
int __wrap_getsockopt(int fd, int level, int name, void *value, socklen_t *len)
{
    atomic_fetch_add(&getsockopts, 1);
    return __real_getsockopt(fd, level, name, value, len);
}

enum { ROUNDS = 50 };

/* plait_close a number of fd's close stripe: the kind the scheduler keeps for fd is no
 * longer current. */
static void close_in_stripe_of(int fd)
{
    int other = fcntl(fd, F_DUPFD_CLOEXEC, fd + 64);
    CHECK(other >= 0 && other % 64 == fd % 64);
    CHECK_EQ(plait_close(other), 0);
}

/* Have the scheduler keep a slot for fd (it makes one for a descriptor it waits on). */
static void wait_once_on(int fd)
{
    CHECK_EQ(plait_wait_fd(fd, PLAIT_READABLE, plait_deadline_in(PLAIT_MS)), -ETIMEDOUT);
}

static void *datagrams(void *arg)
{
    (void)arg;
    plait_addr loopback;
    CHECK_EQ(plait_addr_ip(&loopback, "127.0.0.1", 0), 0);
    int a = plait_udp_bind(&loopback), b = plait_udp_bind(&loopback);
    CHECK(a >= 0 && b >= 0);
    plait_addr to;
    CHECK_EQ(plait_local_addr(b, &to), 0);
    wait_once_on(a);
    wait_once_on(b);
    int before_stat = atomic_load(&fstats), before_opt = atomic_load(&getsockopts);
    for (int i = 0; i < ROUNDS; i++) {
        char out = (char)i, in = 0;
        close_in_stripe_of(a);
        CHECK_EQ(plait_sendto(a, &out, 1, &to, SOON()), 1);
        close_in_stripe_of(b);
        CHECK_EQ(plait_recvfrom(b, &in, 1, NULL, SOON()), 1);
        CHECK_EQ(in, out);
    }
    /* (the kind is never needed here: none looked up) */
    CHECK_EQ(atomic_load(&fstats) - before_stat, 0);
    CHECK_EQ(atomic_load(&getsockopts) - before_opt, 0);
    CHECK_EQ(plait_close(a), 0);
    CHECK_EQ(plait_close(b), 0);
    return NULL;
}

static void *accepts(void *arg)
{
    (void)arg;
    int listener = plait_tcp_listen("127.0.0.1", 0, 64);
    CHECK(listener >= 0);
    plait_addr at;
    CHECK_EQ(plait_local_addr(listener, &at), 0);
    wait_once_on(listener);
    int looked = 0;
    for (int i = 0; i < ROUNDS; i++) {
        int client = plait_connect(&at, SOON());
        CHECK(client >= 0);
        close_in_stripe_of(listener);
        int before = atomic_load(&fstats);
        int server = plait_accept(listener, NULL, SOON()); /* one is waiting: no wait */
        looked += atomic_load(&fstats) - before;
        CHECK(server >= 0);
        CHECK_EQ(plait_close(server), 0);
        CHECK_EQ(plait_close(client), 0);
    }
    CHECK_EQ(looked, 0);
    CHECK_EQ(plait_close(listener), 0);
    return NULL;
}

TEST(sendto_and_recvfrom_look_no_kind_up)
{
    check_run(datagrams, NULL);
}

TEST(accept_looks_no_kind_up)
{
    check_run(accepts, NULL);
}

RUN_TESTS(CASE(sendto_and_recvfrom_look_no_kind_up), CASE(accept_looks_no_kind_up))
