/*
 * stopped_server.h — an example server (examples/echo_server.c, http_server.c) built
 * into a test (its main renamed) and run in a forked child, to check how it stops on a
 * signal.  Include the server's source first, with main defined to server_main.
 *
 * The case it is for: a client whose connection the kernel has queued (the client is
 * told it is connected, and what it sends is acknowledged) but the server's acceptor
 * has not taken, when SIGTERM comes.  Linux resets what a TCP listener has queued when
 * it is shut down or closed, so a server that stops by closing its listener at once
 * loses that client's request.  The client connects from inside the server, between
 * the signal's arrival and the server's next step (plait_signals_wait is wrapped:
 * -Wl,--wrap=plait_signals_wait, and plait_tcp_listen to know the listener): the
 * acceptor cannot have taken it, as the coroutine that got the signal has not let it
 * run since.  The child then reads what comes back and exits 0 only when the server
 * stopped with status 0 and the answer satisfied late_answer_ok.
 *
 * The including test defines LATE_REQUEST (the bytes the queued client sends before
 * it half-closes) and late_answer_ok(const char *answer).
 */
#ifndef PLAIT_TEST_STOPPED_SERVER_H
#define PLAIT_TEST_STOPPED_SERVER_H

#include "check.h"
#include "helpers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

int server_main(int argc, char **argv);
static bool late_answer_ok(const char *answer);

/* ---- the wrapped calls (in the server's child only) ---- */

static int server_listener = -1; /* the server's listener (plait_tcp_listen) */
static int late_client = -1;     /* connected once the stop signal has come */
static int server_fd_limit; /* > 0: the server's RLIMIT_NOFILE (server_full_at_stop) */
static const char *server_timeout; /* the server's second argument, if any */
#define STOP_BEGUN "stop begun\n"

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
 * sends LATE_REQUEST and says it is done (half-close).  The acceptor cannot have taken
 * it: this coroutine has not let it run since.  A server out of descriptors (no late
 * client then) says STOP_BEGUN on its stdout instead, for server_signal_taken. */
int __wrap_plait_signals_wait(plait_signals *w, int64_t deadline)
{
    int sig = __real_plait_signals_wait(w, deadline);
    if (sig > 0 && server_fd_limit > 0) {
        fflush(stdout);
        (void)!write(STDOUT_FILENO, STOP_BEGUN, sizeof STOP_BEGUN - 1);
        return sig;
    }
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    if (sig > 0 && server_listener >= 0 &&
        getsockname(server_listener, (struct sockaddr *)&a, &len) == 0) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c >= 0 && connect(c, (struct sockaddr *)&a, len) == 0 &&
            send(c, LATE_REQUEST, sizeof LATE_REQUEST - 1, MSG_NOSIGNAL) ==
                (ssize_t)(sizeof LATE_REQUEST - 1) &&
            shutdown(c, SHUT_WR) == 0)
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

/* ---- the server in a child ---- */

/* The child: the server on a free port, its stdout the pipe; then what came back to
 * the connection queued at the stop.  Exit 0 when the server stopped with status 0
 * and the answer is right, then end of file. */
static _Noreturn void server_child(int out)
{
    dup2(out, STDOUT_FILENO);
    close(out);
    struct rlimit few = {(rlim_t)server_fd_limit, (rlim_t)server_fd_limit};
    if (server_fd_limit > 0 && setrlimit(RLIMIT_NOFILE, &few) != 0)
        _exit(4);
    char *argv[] = {"example_server", "0", (char *)server_timeout, NULL};
    int status = server_main(server_timeout ? 3 : 2, argv);
    fflush(stdout);
    if (server_fd_limit > 0) /* (no descriptor was left for the late client) */
        _exit(status == 0 ? 0 : 1);
    if (late_client < 0) {
        fprintf(stderr, "  the late client could not connect\n");
        _exit(3);
    }
    char buf[1024];
    int err;
    read_all(late_client, buf, sizeof buf, 5, &err);
    bool answered = late_answer_ok(buf) && err == 0;
    if (!answered)
        fprintf(stderr, "  the connection queued at the stop got \"%s\", then %s\n", buf,
                err ? strerror(err) : "end of file");
    _exit(status == 0 && answered ? 0 : 1);
}

typedef struct server_child_run {
    pid_t pid;
    int out;  /* its stdout */
    int port; /* 0: it never listened */
} server_child_run;

/* Start the server in a child and read its "listening on" line. */
static server_child_run server_start(void)
{
    server_child_run ec = {.out = -1};
    int out[2];
    CHECK_EQ(pipe2(out, O_CLOEXEC), 0);
    ec.pid = fork_child_plain();
    if (ec.pid == 0) {
        close(out[0]);
        server_child(out[1]);
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

/* The server stops with status 0, saying so (and the child's own check, the
 * connection made at the stop echoed, held), once sig has been sent; what it said
 * after its first line into rest (cap bytes, with the NUL). */
static void server_stopped_saying(server_child_run *ec, int sig, char *rest, size_t cap)
{
    int status = reap_within(ec->pid, 15);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    char want[64];
    int err;
    read_all(ec->out, rest, cap, 5, &err); /* (NUL-terminated) */
    snprintf(want, sizeof want, "signal %d: stopped", sig);
    CHECK(strstr(rest, want) != NULL);
    close(ec->out);
}

static void server_stopped(server_child_run *ec, int sig)
{
    char rest[256];
    server_stopped_saying(ec, sig, rest, sizeof rest);
}

/* Send sig (SIGTERM, SIGINT), or SIGKILL to a server that never listened. */
static void server_signal(server_child_run *ec, int sig)
{
    if (ec->port)
        CHECK_EQ(kill(ec->pid, sig), 0);
    else
        kill(ec->pid, SIGKILL);
}

static void server_stop(server_child_run *ec, int sig)
{
    server_signal(ec, sig);
    server_stopped(ec, sig);
}

/* Send sig to a server started with a descriptor limit, and wait until it has taken
 * the signal: what the test does next happens during the stop. */
static void server_signal_taken(server_child_run *ec, int sig)
{
    server_signal(ec, sig);
    char line[64];
    CHECK(read_line(ec->out, line, sizeof line, 10) && strcmp(line, STOP_BEGUN) == 0);
}

/* ---- clients and counts ---- */

/* A connected loopback client socket (blocking; the kernel queues it if the server
 * does not take it); -1 on failure. */
static inline int client_to(int port)
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

/* The descriptors numbered under `limit` that process pid has open (a process may hold
 * some above its RLIMIT_NOFILE, from before it was set). */
static inline int descriptors_under(pid_t pid, int limit)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.' && atoi(e->d_name) < limit;
    if (d)
        closedir(d);
    return n;
}

/* The descriptors process pid has open. */
static inline int open_descriptors(pid_t pid) { return descriptors_under(pid, INT_MAX); }

/* ---- out of descriptors at the stop ---- */

/* The server, limited to FULL_LIMIT descriptors, holds as many idle connections as it
 * can take (more are queued by its kernel), then QUEUED_ASKING clients queued behind
 * them send LATE_REQUEST and half-close, then the stop signal comes.  Its stop takes
 * what the kernel has queued; it stopped at the first -EMFILE and closed its listener,
 * which reset the queued clients, requests acknowledged and all.  Now it takes them as
 * its open connections give their descriptors back (which the HTTP server's do when
 * told to stop; the echo server's only as their clients close: with
 * idle_close_at_stop the idle clients close once the server has taken the signal):
 * each client that asked gets its answer (late_answer_ok). */
enum { FULL_LIMIT = 40, IDLE_CLIENTS = 110, QUEUED_ASKING = 5 };

static void server_full_at_stop(int sig, bool idle_close_at_stop)
{
    server_fd_limit = FULL_LIMIT;
    server_child_run ec = server_start();
    server_fd_limit = 0;
    int idle[IDLE_CLIENTS], asking[QUEUED_ASKING];
    for (int i = 0; i < IDLE_CLIENTS; i++)
        CHECK((idle[i] = ec.port ? client_to(ec.port) : -1) >= 0);
    /* the server took all it could: every number under its limit taken */
    int64_t give_up = SOON();
    while (descriptors_under(ec.pid, FULL_LIMIT) < FULL_LIMIT && plait_now() < give_up)
        sched_yield();
    CHECK_EQ(descriptors_under(ec.pid, FULL_LIMIT), FULL_LIMIT);
    for (int i = 0; i < QUEUED_ASKING; i++) {
        CHECK((asking[i] = ec.port ? client_to(ec.port) : -1) >= 0);
        if (asking[i] >= 0) {
            size_t len = sizeof LATE_REQUEST - 1;
            CHECK_EQ(send(asking[i], LATE_REQUEST, len, MSG_NOSIGNAL), (ssize_t)len);
            CHECK_EQ(shutdown(asking[i], SHUT_WR), 0);
        }
    }
    if (idle_close_at_stop) {
        server_signal_taken(&ec, sig);
        for (int i = 0; i < IDLE_CLIENTS; i++)
            close(idle[i]);
        server_stopped(&ec, sig);
    } else {
        server_stop(&ec, sig);
    }
    /* (the answers wait in the clients' sockets) */
    for (int i = 0; i < QUEUED_ASKING; i++) {
        char answer[1024];
        int err = 0;
        if (asking[i] >= 0)
            read_all(asking[i], answer, sizeof answer, 10, &err);
        CHECK(asking[i] >= 0 && err == 0 && late_answer_ok(answer));
        if (asking[i] >= 0 && (err || !late_answer_ok(answer)))
            fprintf(stderr, "  queued client %d got \"%s\", then %s\n", i, answer,
                    err ? strerror(err) : "end of file");
        close(asking[i]);
    }
    if (!idle_close_at_stop)
        for (int i = 0; i < IDLE_CLIENTS; i++)
            close(idle[i]);
}

#endif
