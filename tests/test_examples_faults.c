/*
 * test_examples_faults.c — cases a review of the example programs found (each failed
 * first).
 *
 *  - echo_server, stopped by SIGTERM with a connection its kernel has queued but its
 *    acceptor has not taken yet: the client was told it is connected and its line is
 *    acknowledged, so its echo must come back.  The server shut the listener down at
 *    once, and Linux resets what a TCP listener has queued when it is shut down: the
 *    client got ECONNRESET, its line lost.  The server is examples/echo_server.c itself,
 *    built into this file (its main renamed) and run in a child; the queued connection
 *    is made from inside it, between the signal's arrival and the server's next step
 *    (plait_signals_wait is wrapped: -Wl,--wrap), which is where a client that
 *    connects as the signal comes, or one the acceptor had not come round to, stands.
 *  - crash_isolation started with SIGSEGV blocked (a mask is inherited through exec):
 *    its raise() left the signal pending, task 3 returned 9 like any other, and the
 *    example still said "one task failed, the others all arrived", status 0.  It must
 *    crash task 3 whatever the mask, and must not call a run where it did not crash
 *    a success.
 *  - the numeric arguments (args.h): " 0", "+0", "-0" were taken for port 0 (strtol
 *    skips white space and takes a sign) while "0 " was refused; and echo_client's
 *    empty HOST failed as a run ("Invalid argument", status 1), not as bad usage.
 */
#include <plait.h>

int echo_server_main(int argc, char **argv);
#define main echo_server_main
#include "../examples/echo_server.c"
#undef main

#include "check.h"
#include "helpers.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>

/* ---- the wrapped calls (in the echo server's child only) ---- */

static int server_listener = -1; /* the echo server's listener (plait_tcp_listen) */
static int late_client = -1;     /* connected once the stop signal has come */

int __real_plait_tcp_listen(const char *host, int port, int backlog);
int __wrap_plait_tcp_listen(const char *host, int port, int backlog);
int __real_plait_signals_wait(plait_signals *w, int64_t deadline);
int __wrap_plait_signals_wait(plait_signals *w, int64_t deadline);

int __wrap_plait_tcp_listen(const char *host, int port, int backlog)
{
    int fd = __real_plait_tcp_listen(host, port, backlog);
    server_listener = fd;
    return fd;
}

/* The signal has come and the server has not acted on it yet: a client connects (a
 * blocking connect on loopback returns once the kernel has queued the connection),
 * sends a line and says it is done (half-close).  The acceptor cannot have taken it:
 * this coroutine has not let it run since. */
int __wrap_plait_signals_wait(plait_signals *w, int64_t deadline)
{
    int sig = __real_plait_signals_wait(w, deadline);
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    if (sig > 0 && server_listener >= 0 &&
        getsockname(server_listener, (struct sockaddr *)&a, &len) == 0) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c >= 0 && connect(c, (struct sockaddr *)&a, len) == 0 &&
            send(c, "hello\n", 6, MSG_NOSIGNAL) == 6 && shutdown(c, SHUT_WR) == 0)
            late_client = c;
        else if (c >= 0)
            close(c);
    }
    return sig;
}

/* ---- helpers ---- */

/* fork(), stdio flushed first (the child runs a server, or execs an example). */
static pid_t fork_child_plain(void)
{
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    return pid;
}

/* Read fd until end of file, an error or `seconds`, into buf (NUL-terminated); the
 * length, and *err the errno that ended it (0: end of file, ETIMEDOUT: the time). */
static size_t read_all(int fd, char *buf, size_t cap, int seconds, int *err)
{
    size_t got = 0;
    int64_t end = plait_now() + seconds * PLAIT_SEC;
    *err = ETIMEDOUT;
    while (got < cap - 1) {
        int64_t left = (end - plait_now()) / PLAIT_MS;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) != 1)
            break;
        ssize_t n = read(fd, buf + got, cap - 1 - got);
        if (n <= 0) {
            *err = n == 0 ? 0 : errno;
            break;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    return got;
}

/* Read one line from fd within `seconds` (a byte at a time: nothing after it is taken). */
static bool read_line(int fd, char *buf, size_t cap, int seconds)
{
    size_t got = 0;
    int64_t end = plait_now() + seconds * PLAIT_SEC;
    while (got < cap - 1) {
        int64_t left = (end - plait_now()) / PLAIT_MS;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) != 1 || read(fd, buf + got, 1) != 1)
            break;
        if (buf[got++] == '\n') {
            buf[got] = '\0';
            return true;
        }
    }
    buf[got] = '\0';
    return false;
}

/* ---- echo_server ---- */

/* The child: the echo server on a free port, its stdout the pipe; then what came back
 * to the connection queued at the stop.  Exit 0 when the server stopped with status 0
 * and the line came back, then end of file. */
static _Noreturn void echo_server_child(int out)
{
    dup2(out, STDOUT_FILENO);
    close(out);
    char *argv[] = {"example_echo_server", "0", NULL};
    int status = echo_server_main(2, argv);
    fflush(stdout);
    if (late_client < 0) {
        fprintf(stderr, "  the late client could not connect\n");
        _exit(3);
    }
    char buf[64];
    int err;
    read_all(late_client, buf, sizeof buf, 5, &err);
    bool echoed = strcmp(buf, "hello\n") == 0 && err == 0;
    if (!echoed)
        fprintf(stderr, "  the connection queued at the stop got \"%s\", then %s\n", buf,
                err ? strerror(err) : "end of file");
    _exit(status == 0 && echoed ? 0 : 1);
}

typedef struct echo_child {
    pid_t pid;
    int out;  /* its stdout */
    int port; /* 0: it never listened */
} echo_child;

/* Start the echo server in a child and read its "listening on" line. */
static echo_child echo_server_start(void)
{
    echo_child ec = {.out = -1};
    int out[2];
    CHECK_EQ(pipe2(out, O_CLOEXEC), 0);
    ec.pid = fork_child_plain();
    if (ec.pid == 0) {
        close(out[0]);
        echo_server_child(out[1]);
    }
    close(out[1]);
    ec.out = out[0];
    char line[128];
    const char *at = read_line(ec.out, line, sizeof line, 10)
                         ? strstr(line, "listening on 127.0.0.1:") : NULL;
    CHECK(at != NULL);
    if (at)
        ec.port = atoi(at + strlen("listening on 127.0.0.1:"));
    return ec;
}

/* SIGTERM: the server stops with status 0, saying so (and the child's own check, the
 * connection made at the stop echoed, held). */
static void echo_server_stop(echo_child *ec, int sig)
{
    if (ec->port)
        CHECK_EQ(kill(ec->pid, sig), 0);
    else
        kill(ec->pid, SIGKILL);
    int status = reap_within(ec->pid, 15);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    char rest[256], want[64];
    int err;
    read_all(ec->out, rest, sizeof rest, 5, &err);
    snprintf(want, sizeof want, "signal %d: stopped", sig);
    CHECK(strstr(rest, want) != NULL);
    close(ec->out);
}

TEST(echo_server_stop_serves_queued_connection)
{
    echo_child ec = echo_server_start();
    echo_server_stop(&ec, SIGTERM);
}

/* A connected loopback client socket (blocking); -1 on failure. */
static int client_to(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c >= 0 && connect(c, (struct sockaddr *)&a, sizeof a) < 0) {
        close(c);
        c = -1;
    }
    CHECK(c >= 0);
    return c;
}

static int open_descriptors(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

/* Clients that misbehave: reset at once, send a lot and reset, half-close without
 * reading the echo, close without reading.  Each connection's descriptor is given back
 * (the count comes back to what it was), a well-behaved client beside them is
 * answered, and the stop on SIGINT is clean. */
TEST(echo_server_clients_that_vanish)
{
    echo_child ec = echo_server_start();
    if (!ec.port) {
        echo_server_stop(&ec, SIGINT);
        return;
    }
    /* one round trip first: the server's own descriptors (its poller) are made */
    int good = client_to(ec.port);
    char buf[256];
    CHECK_EQ(send(good, "ping\n", 5, 0), 5);
    CHECK_EQ(recv(good, buf, 5, MSG_WAITALL), 5);
    int base = open_descriptors(ec.pid);
    static char lot[200000];
    struct linger reset = {.l_onoff = 1, .l_linger = 0};
    for (int i = 0; i < 200; i++) {
        int c = client_to(ec.port);
        if (c < 0)
            break;
        switch (i % 4) {
        case 0:
            break;
        case 1:
            CHECK(send(c, lot, sizeof lot, MSG_DONTWAIT) > 0);
            break;
        case 2:
            CHECK_EQ(send(c, lot, 1000, 0), 1000);
            CHECK_EQ(shutdown(c, SHUT_WR), 0);
            break;
        case 3:
            CHECK_EQ(send(c, "x", 1, 0), 1);
            break;
        }
        if (i % 4 < 2)
            setsockopt(c, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        close(c);
    }
    /* the well-behaved client is answered meanwhile */
    struct timeval tv = {.tv_sec = 5};
    setsockopt(good, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    CHECK_EQ(send(good, "pong\n", 5, 0), 5);
    CHECK_EQ(recv(good, buf, 5, MSG_WAITALL), 5);
    CHECK(memcmp(buf, "pong\n", 5) == 0);
    /* every connection's descriptor comes back (within 5 s) */
    int now = open_descriptors(ec.pid);
    for (int64_t end = plait_now() + 5 * PLAIT_SEC; now > base && plait_now() < end;) {
        struct timespec ms = {0, 10000000};
        nanosleep(&ms, NULL);
        now = open_descriptors(ec.pid);
    }
    CHECK_EQ(now, base);
    close(good);
    echo_server_stop(&ec, SIGINT);
}

/* ---- crash_isolation ---- */

/* Run the example path with args (NULL-terminated, after the program's name) and
 * `blocked` blocked (none: -1); its output into buf, its wait status returned (one not
 * ended within `seconds` is a failure, and killed). */
static int run_example(const char *path, const char *const *args, int blocked, char *buf,
                       size_t cap, int seconds)
{
    int out[2];
    CHECK_EQ(pipe2(out, O_CLOEXEC), 0);
    pid_t pid = fork_child_plain();
    if (pid == 0) {
        char *argv[8] = {(char *)path};
        for (int i = 0; args && args[i] && i < 6; i++)
            argv[i + 1] = (char *)args[i];
        dup2(out[1], STDOUT_FILENO);
        dup2(out[1], STDERR_FILENO);
        if (blocked > 0) {
            sigset_t s;
            sigemptyset(&s);
            sigaddset(&s, blocked);
            sigprocmask(SIG_BLOCK, &s, NULL);
        }
        execv(path, argv);
        _exit(127);
    }
    close(out[1]);
    int64_t start = plait_now();
    int err;
    read_all(out[0], buf, cap, seconds, &err);
    close(out[0]);
    int64_t left = seconds - (plait_now() - start) / PLAIT_SEC;
    return reap_within(pid, left > 1 ? (int)left : 1);
}

static void check_crash_isolation(int blocked)
{
    char out[4096];
    int before = check_failures;
    int status = run_example(EXAMPLE_CRASH_ISOLATION, NULL, blocked, out, sizeof out, 30);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    /* task 3 crashed, and was reported so; the others' squares arrived */
    CHECK(strstr(out, "task 3 failed: the process was killed by signal 11") != NULL);
    CHECK(strstr(out, "task 3: ") == NULL);
    CHECK(strstr(out, "task 5: 25") != NULL);
    if (check_failures != before)
        fprintf(stderr, "%s", out);
}

TEST(crash_isolation_crashes)
{
    check_crash_isolation(-1);
}

TEST(crash_isolation_crashes_with_sigsegv_blocked)
{
    check_crash_isolation(SIGSEGV);
}

/* ---- the numeric arguments (args.h) ---- */

/* Bad usage: status 2 and the usage message, at once (not a server listening on the
 * port a sloppy reading made of it). */
static void check_usage(const char *path, const char *const *args)
{
    char out[1024];
    int before = check_failures;
    int status = run_example(path, args, -1, out, sizeof out, 3);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 2);
    CHECK(strstr(out, "usage:") != NULL);
    if (check_failures != before)
        fprintf(stderr, "  with '%s': %s\n", args[0], out);
}

/* "the whole argument a decimal number within range": strtol skips leading white
 * space and takes a sign, so " 0", "+0", "\t0" and "-0" were port 0 (a free port: the
 * server ran), where "0 " was refused. */
TEST(numbers_leading_space_or_sign_refused)
{
    static const char *const bad[] = {" 0", "+0", "-0", "\t0", "\n0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        check_usage(EXAMPLE_ECHO_SERVER, (const char *const[]){bad[i], NULL});
    check_usage(EXAMPLE_ECHO_CLIENT, (const char *const[]){"127.0.0.1", " 7", NULL});
    check_usage(EXAMPLE_ECHO_CLIENT, (const char *const[]){"127.0.0.1", "7", "+1", NULL});
    /* what was refused before still is */
    static const char *const refused[] = {"", "0 ", "-1", "65536", "0x10", "1e3",
                                          "99999999999999999999"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        check_usage(EXAMPLE_ECHO_SERVER, (const char *const[]){refused[i], NULL});
}

/* An empty HOST is bad usage too (status 2), not a run that fails with "Invalid
 * argument" (status 1). */
TEST(echo_client_empty_host_is_usage)
{
    check_usage(EXAMPLE_ECHO_CLIENT, (const char *const[]){"", "7", "1", "1", "1", NULL});
}

RUN_TESTS(CASE(echo_server_stop_serves_queued_connection), CASE(echo_server_clients_that_vanish),
          CASE(crash_isolation_crashes),
          CASE(crash_isolation_crashes_with_sigsegv_blocked),
          CASE(numbers_leading_space_or_sign_refused), CASE(echo_client_empty_host_is_usage))
