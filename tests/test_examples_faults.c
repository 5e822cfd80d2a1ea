/*
 * test_examples_faults.c — cases a review of the example programs found (each failed
 * first).
 *
 *  - echo_server, stopped by SIGTERM with a connection its kernel has queued but its
 *    acceptor has not taken yet: the client was told it is connected and its line is
 *    acknowledged, so its echo must come back.  The server shut the listener down at
 *    once, and Linux resets what a TCP listener has queued when it is shut down: the
 *    client got ECONNRESET, its line lost.  The server is examples/echo_server.c itself,
 *    built into this file and run in a child (tests/stopped_server.h, shared with
 *    test_http_stop.c).  Out of descriptors, the stop ended at the first -EMFILE and
 *    closed the listener, which reset the queued clients too.
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

int server_main(int argc, char **argv);
#define main server_main
#include "../examples/echo_server.c"
#undef main

/* the line the client queued at the stop sends, and its echo */
#define LATE_REQUEST "hello\n"
static bool late_answer_ok(const char *answer) { return strcmp(answer, "hello\n") == 0; }
#include "stopped_server.h"

#include <dirent.h>

TEST(echo_server_stop_serves_queued_connection)
{
    server_child_run ec = server_start();
    server_stop(&ec, SIGTERM);
}

/* Out of descriptors at the stop (stopped_server.h): its connections end as their
 * clients close, which they do once the stop has begun; the connections the kernel has
 * queued are taken as descriptors come back, and each queued client's line is echoed. */
TEST(echo_server_stop_out_of_descriptors_serves_queued_connections)
{
    server_full_at_stop(SIGTERM, true);
}

/* The echo server started (its TIMEOUT argument `timeout`, NULL: its default), a
 * client of it after one round trip (*good), and the server's open descriptors then
 * (*base: its own, its poller's, are made by then).  false when it never listened
 * (it was stopped). */
static bool started_with_a_client(const char *timeout, server_child_run *ec, int *good,
                                  int *base)
{
    server_timeout = timeout;
    *ec = server_start();
    server_timeout = NULL;
    if (!ec->port) {
        server_stop(ec, SIGINT);
        return false;
    }
    *good = client_to(ec->port);
    char buf[5];
    CHECK_EQ(send(*good, "ping\n", 5, 0), 5);
    CHECK_EQ(recv(*good, buf, 5, MSG_WAITALL), 5);
    *base = open_descriptors(ec->pid);
    return true;
}

/* Clients that misbehave: reset at once, send a lot and reset, half-close without
 * reading the echo, close without reading.  Each connection's descriptor is given back
 * (the count comes back to what it was), a well-behaved client beside them is
 * answered, and the stop on SIGINT is clean. */
TEST(echo_server_clients_that_vanish)
{
    server_child_run ec;
    int good, base;
    if (!started_with_a_client(NULL, &ec, &good, &base))
        return;
    char buf[256];
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
    server_stop(&ec, SIGINT);
}

/* A client that stops reading its echo while it sends, or sends nothing at all, held
 * its coroutine and its descriptor for ever: the server waited without a deadline.
 * It gets TIMEOUT seconds (1 here) to take an echo and six times that between what it
 * sends; then the server closes it.  Counted by the server's open descriptors, which
 * come back to what they were (within 20 s: 6 s idle, the rest a loaded machine's
 * margin), while a client that goes on asking and reading beside them is answered. */
TEST(echo_server_closes_clients_that_stop_reading_or_say_nothing)
{
    server_child_run ec;
    int good, base;
    if (!started_with_a_client("1", &ec, &good, &base))
        return;
    char buf[256];
    int silent = client_to(ec.port);
    int deaf = client_to(ec.port); /* sends until every buffer on the way is full */
    int small = 4096;
    setsockopt(deaf, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    static char lot[1 << 16];
    for (int idle = 0; idle < 20;) {
        if (send(deaf, lot, sizeof lot, MSG_DONTWAIT) > 0) {
            idle = 0;
        } else {
            idle++;
            poll(NULL, 0, 10);
        }
    }
    CHECK(open_descriptors(ec.pid) >= base + 1); /* (the silent one, for 6 s) */
    /* both closed by the server within 20 s; the good client asks once a second */
    int now = open_descriptors(ec.pid);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(good, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    for (int64_t end = plait_now() + 20 * PLAIT_SEC; now > base && plait_now() < end;) {
        CHECK_EQ(send(good, "pong\n", 5, 0), 5);
        CHECK_EQ(recv(good, buf, 5, MSG_WAITALL), 5);
        poll(NULL, 0, 1000);
        now = open_descriptors(ec.pid);
    }
    CHECK_EQ(now, base);
    /* the silent one sees the server's end of file */
    CHECK_EQ(recv(silent, buf, sizeof buf, MSG_DONTWAIT), 0);
    close(silent);
    close(deaf);
    close(good);
    server_stop(&ec, SIGINT);
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

RUN_TESTS(CASE(echo_server_stop_serves_queued_connection),
          CASE(echo_server_stop_out_of_descriptors_serves_queued_connections),
          CASE(echo_server_clients_that_vanish),
          CASE(echo_server_closes_clients_that_stop_reading_or_say_nothing),
          CASE(crash_isolation_crashes),
          CASE(crash_isolation_crashes_with_sigsegv_blocked),
          CASE(numbers_leading_space_or_sign_refused), CASE(echo_client_empty_host_is_usage))
