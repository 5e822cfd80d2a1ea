/*
 * test_review_sock.c — review probes of socket.c / fdio.c.
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
    CHECK_EQ(plait_shutdown(l, mode == 2 ? SHUT_RD : SHUT_RDWR), 0);
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

RUN_TESTS(CASE(tcp_accept_after_shutdown_ends), CASE(unix_accept_after_shutdown_ends),
          CASE(unix_accept_after_shutdown_rd_ends),
          CASE(unix_accept_after_shutdown_ends_on_a_thread))
