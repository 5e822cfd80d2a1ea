/*
 * test_http_stop.c — the HTTP example (examples/http_server.c) stopped by SIGTERM with
 * a connection its kernel has queued but its acceptor has not taken yet: the client
 * was told it is connected and its request is acknowledged, so its answer must come
 * back.  The server closed its listener at once, and Linux resets what a TCP listener
 * has queued when it is closed: the client got ECONNRESET, its request lost.  The
 * server is built into this file and run in a child (tests/stopped_server.h).
 */
#include <plait.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

int server_main(int argc, char **argv);
#define main server_main
#include "../examples/http_server.c"
#undef main

/* the request the client queued at the stop sends, and what must answer it */
#define LATE_REQUEST "GET / HTTP/1.1\r\nHost: t\r\n\r\n"
static bool late_answer_ok(const char *answer)
{
    return strncmp(answer, "HTTP/1.1 200 ", 13) == 0 && strstr(answer, "Hello, world!");
}
#include "stopped_server.h"

TEST(http_server_stop_answers_queued_connection)
{
    server_child_run ec = server_start();
    server_stop(&ec, SIGTERM);
}

/* A client that pipelines requests, the last saying "Connection: close", then keeps
 * sending (100 bytes every 50 ms for 3 s) before it reads its answers, through a small
 * receive buffer.  The server's lingering close read and dropped what came for 2 s at
 * most, then closed with data still coming: the kernel reset the connection and threw
 * away the answers the client had not read (52 of 2,000 came; an examples audit),
 * though the server gives a client TIMEOUT seconds (10) to take an answer.  It lingers
 * now while data keeps coming, as nginx does (2 s without any ends it), up to TIMEOUT. */
enum { PIPELINED = 2000 };

/* Send n requests at once on c, the last saying "Connection: close". */
static void send_pipelined_closing(int c, int n)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    static const char last[] = "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    static char all[PIPELINED * sizeof last];
    size_t len = 0;
    for (int i = 0; i < n - 1 && i < PIPELINED - 1; i++) {
        memcpy(all + len, req, sizeof req - 1);
        len += sizeof req - 1;
    }
    memcpy(all + len, last, sizeof last - 1);
    len += sizeof last - 1;
    CHECK_EQ(send(c, all, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void sends_after_close_then_reads(int port)
{
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(c >= 0);
    int small = 4096;
    CHECK_EQ(setsockopt(c, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(connect(c, (struct sockaddr *)&a, sizeof a), 0);
    send_pipelined_closing(c, PIPELINED);
    char junk[100];
    memset(junk, 'x', sizeof junk);
    for (int i = 0; i < 60; i++) { /* 3 s: longer than the 2 s the server lingered */
        CHECK_EQ(send(c, junk, sizeof junk, MSG_NOSIGNAL), (ssize_t)sizeof junk);
        poll(NULL, 0, 50);
    }
    static char answers[PIPELINED * 200];
    int err;
    size_t got = read_all(c, answers, sizeof answers, 20, &err);
    int count = 0;
    for (const char *at = answers; (at = strstr(at, "HTTP/1.1 200 ")) != NULL; at++)
        count++;
    CHECK_EQ(count, PIPELINED);
    CHECK_EQ(err, 0); /* end of file, not a reset */
    if (count != PIPELINED)
        fprintf(stderr, "  %d answers of %d (%zu bytes), then %s\n", count, PIPELINED, got,
                err ? strerror(err) : "end of file");
    close(c);
}

TEST(http_server_lingers_while_a_closing_client_sends)
{
    server_child_run ec = server_start();
    if (ec.port)
        sends_after_close_then_reads(ec.port);
    server_stop(&ec, SIGTERM);
}

/* SIGTERM while the server lingers on a connection whose client still sends (its last
 * request said "Connection: close", and it sends more before it reads): the stop shut
 * every open connection down for reading, this one too, which lingering_close had shut
 * for writing, and Linux resets a connection shut both ways as soon as data comes: the
 * client's sends failed, and the answers it had not read yet were destroyed (15 of 200
 * came in session 51's examples audit).  A lingering connection is left to its linger. */
enum { LINGERED_REQUESTS = 10 };

/* Whether a connection to port is refused now (the listener shut down). */
static bool connect_refused(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool refused = s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) < 0 &&
                   errno == ECONNREFUSED;
    if (s >= 0)
        close(s);
    return refused;
}

static void sigterm_while_the_server_lingers(server_child_run *ec)
{
    int c = client_to(ec->port);
    if (c < 0)
        return;
    send_pipelined_closing(c, LINGERED_REQUESTS);
    /* the answers and then the server's end of file have come (nothing read yet): it
     * has shut its side for writing, and lingers */
    int64_t until = SOON();
    bool their_end_came = false;
    while (!their_end_came && plait_now() < until) {
        struct tcp_info info;
        socklen_t info_len = sizeof info;
        their_end_came = getsockopt(c, IPPROTO_TCP, TCP_INFO, &info, &info_len) == 0 &&
                         info.tcpi_state == TCP_CLOSE_WAIT;
        if (!their_end_came)
            poll(NULL, 0, 5);
    }
    CHECK(their_end_came);
    server_signal(ec, SIGTERM);
    /* the client goes on sending, 100 bytes every 50 ms, until the server has surely
     * taken the stop (its listener, shut down after its connections, refuses), and ten
     * times more */
    char junk[100];
    memset(junk, 'x', sizeof junk);
    bool refused = false, sends_failed = false;
    int after = 0;
    until = SOON();
    while (after < 10 && plait_now() < until) {
        if (send(c, junk, sizeof junk, MSG_NOSIGNAL) != (ssize_t)sizeof junk) {
            sends_failed = true; /* reset */
            break;
        }
        poll(NULL, 0, 50);
        if (refused)
            after++;
        else
            refused = connect_refused(ec->port);
    }
    CHECK(!sends_failed);
    CHECK(refused);
    char answers[LINGERED_REQUESTS * 200];
    int err;
    read_all(c, answers, sizeof answers, 20, &err);
    int count = 0;
    for (const char *at = answers; (at = strstr(at, "HTTP/1.1 200 ")) != NULL; at++)
        count++;
    CHECK_EQ(count, LINGERED_REQUESTS);
    CHECK_EQ(err, 0); /* end of file, not a reset */
    close(c);
}

TEST(http_server_stop_leaves_a_lingering_connection_to_its_linger)
{
    server_child_run ec = server_start();
    if (ec.port)
        sigterm_while_the_server_lingers(&ec);
    else
        server_signal(&ec, SIGTERM);
    server_stopped(&ec, SIGTERM);
}

/* Out of descriptors at the stop (stopped_server.h): the open connections, told to
 * stop, give their descriptors back, and the queued ones are taken as they do.  Idle
 * ones give theirs back at once: they waited 2 s each for their client to close, so
 * the queue, some three limits long here, was still reset at the stop's 5 s (a
 * review). */
TEST(http_server_stop_out_of_descriptors_answers_queued_connections)
{
    server_full_at_stop(SIGTERM, false);
}

/* A client that keeps sending while the server reads and drops what comes before it
 * closes (a lingering close; the close at a stop): each is bounded by the clock, but a
 * read past its deadline still takes what is there, so under a flood the reading went
 * on for as long as the client sent (an examples audit; the stop then ended at its
 * 5 s, "some did not finish").  A flood is made certain here: plait_read is wrapped
 * (-Wl,--wrap=plait_read, tests/CMakeLists.txt), and in read_floods mode a read that
 * ends at or after its deadline with nothing (or at an end of file) finds a byte, as a
 * read always does under a flood.  A server that read on so 1,000 times says
 * FLOODED_ON on its stdout (and its read then ends as it did). */
#define FLOODED_ON "read on past its deadline\n"
static bool read_floods; /* set before server_start: the child's mode */
static int flood_reads;

/* In never_waits mode (the child's), every read of the first connection that reads
 * finds a whole request and every write goes at once, as they do with a client that
 * keeps the server's queue full and reads its answers as fast: the connection's calls
 * never wait, so never say -ECANCELED (a yield each, as plait's calls make now and then,
 * lets the stop run).  The others' calls are plait's (the late client's, at the stop:
 * stopped_server.h). */
static bool never_waits;
static int never_waits_fd = -1;
#define NEVER_WAITS_REQUEST "GET / HTTP/1.1\r\nHost: t\r\n\r\n"

ssize_t __real_plait_read(int fd, void *buf, size_t len, int64_t deadline);
ssize_t __wrap_plait_read(int fd, void *buf, size_t len, int64_t deadline);
ssize_t __wrap_plait_read(int fd, void *buf, size_t len, int64_t deadline)
{
    if (never_waits && never_waits_fd < 0)
        never_waits_fd = fd;
    if (never_waits && fd == never_waits_fd && len >= sizeof NEVER_WAITS_REQUEST - 1) {
        plait_yield();
        memcpy(buf, NEVER_WAITS_REQUEST, sizeof NEVER_WAITS_REQUEST - 1);
        return sizeof NEVER_WAITS_REQUEST - 1;
    }
    ssize_t n = __real_plait_read(fd, buf, len, deadline);
    if (read_floods && (n == 0 || n == -ETIMEDOUT) && len > 0 && flood_reads < 1000 &&
        plait_now() >= deadline) {
        if (++flood_reads == 1000) {
            fputs(FLOODED_ON, stdout);
            fflush(stdout);
        }
        ((char *)buf)[0] = 'j';
        return 1;
    }
    return n;
}

int __real_plait_write_all(int fd, const void *buf, size_t len, size_t *written,
                           int64_t deadline);
int __wrap_plait_write_all(int fd, const void *buf, size_t len, size_t *written,
                           int64_t deadline);
int __wrap_plait_write_all(int fd, const void *buf, size_t len, size_t *written,
                           int64_t deadline)
{
    if (!never_waits || fd != never_waits_fd)
        return __real_plait_write_all(fd, buf, len, written, deadline);
    plait_yield();
    if (written)
        *written = len;
    return 0;
}

/* A connection to port on which one request has been answered (200), kept alive. */
static int kept_alive_client(int port)
{
    int c = client_to(port);
    static const char req[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    CHECK_EQ(send(c, req, sizeof req - 1, MSG_NOSIGNAL), (ssize_t)(sizeof req - 1));
    char answer[256];
    CHECK(read_line(c, answer, sizeof answer, 10) && strncmp(answer, "HTTP/1.1 200 ", 13) == 0);
    return c;
}

/* A client that asked once, then keeps sending after SIGTERM: the stop drops what comes
 * for 2 s at most, then closes. */
TEST(http_server_stop_ends_a_flooding_connection_within_its_2_s)
{
    read_floods = true;
    server_child_run ec = server_start();
    read_floods = false;
    if (!ec.port) {
        server_stop(&ec, SIGTERM);
        return;
    }
    int c = kept_alive_client(ec.port);
    server_signal(&ec, SIGTERM);
    char said[512];
    server_stopped_saying(&ec, SIGTERM, said, sizeof said);
    CHECK(strstr(said, FLOODED_ON) == NULL);
    CHECK(strstr(said, "did not finish") == NULL);
    close(c);
}

/* A connection whose calls never wait (above) learnt of the stop only from a call's
 * -ECANCELED, so it never did: it went on answering what came after SIGTERM, the stop's
 * 5 s passed, and the server waited for it for ever (a review: 20 s and more, a
 * pipelining client that reads as fast as it sends, the server on one CPU).  It looks
 * for the stop at each round now, and ends within the stop's 2 s linger. */
TEST(http_server_stop_ends_a_connection_whose_calls_never_wait)
{
    never_waits = true;
    server_child_run ec = server_start();
    never_waits = false;
    if (!ec.port) {
        server_stop(&ec, SIGTERM);
        return;
    }
    int c = client_to(ec.port);
    CHECK_EQ(send(c, "G", 1, MSG_NOSIGNAL), 1); /* its first wait ends: it serves */
    poll(NULL, 0, 100);
    server_signal(&ec, SIGTERM);
    char said[512];
    server_stopped_saying(&ec, SIGTERM, said, sizeof said);
    CHECK(strstr(said, "did not finish") == NULL);
    close(c);
}

/* A request too large is answered, and the connection closed lingering, for the
 * server's timeout (1 s here) at most while data keeps coming. */
TEST(http_server_lingering_close_ends_at_its_timeout_under_a_flood)
{
    read_floods = true;
    server_timeout = "1";
    server_child_run ec = server_start();
    read_floods = false;
    server_timeout = NULL;
    if (!ec.port) {
        server_stop(&ec, SIGTERM);
        return;
    }
    int c = client_to(ec.port);
    static char junk[20 * 1024]; /* no end of line: 414 */
    memset(junk, 'j', sizeof junk);
    CHECK_EQ(send(c, junk, sizeof junk, MSG_NOSIGNAL), (ssize_t)sizeof junk);
    char answer[512];
    int err;
    read_all(c, answer, sizeof answer, 10, &err); /* the answer, then the server's close */
    CHECK_EQ(strncmp(answer, "HTTP/1.1 414 ", 13), 0);
    server_signal(&ec, SIGTERM);
    char said[512];
    server_stopped_saying(&ec, SIGTERM, said, sizeof said);
    CHECK(strstr(said, FLOODED_ON) == NULL);
    close(c);
}

/* Connections that never sent a byte, open at SIGTERM, close at once: the stop's
 * "N connections closed" counts them too (it counted those still open after the
 * listener's end, 2 of 5 here: the kept-alive one and the late client's). */
TEST(http_server_stop_counts_the_idle_connections_it_closed)
{
    server_child_run ec = server_start();
    if (!ec.port) {
        server_stop(&ec, SIGTERM);
        return;
    }
    int idle[3];
    for (int i = 0; i < 3; i++)
        idle[i] = client_to(ec.port);
    /* taken: a request on a fourth connection, kept alive, is answered after they were
     * accepted */
    int c = kept_alive_client(ec.port);
    server_signal(&ec, SIGTERM);
    char said[512];
    server_stopped_saying(&ec, SIGTERM, said, sizeof said);
    /* the three idle ones, the kept-alive one and the late client's (stopped_server.h) */
    CHECK(strstr(said, ": stopped accepting, 5 connections closed, 2 requests served") != NULL);
    if (!strstr(said, "5 connections closed"))
        fprintf(stderr, "  the server said: %s", said);
    close(c);
    for (int i = 0; i < 3; i++)
        close(idle[i]);
}

RUN_TESTS(CASE(http_server_stop_answers_queued_connection),
          CASE(http_server_stop_out_of_descriptors_answers_queued_connections),
          CASE(http_server_lingers_while_a_closing_client_sends),
          CASE(http_server_stop_leaves_a_lingering_connection_to_its_linger),
          CASE(http_server_stop_ends_a_flooding_connection_within_its_2_s),
          CASE(http_server_stop_ends_a_connection_whose_calls_never_wait),
          CASE(http_server_lingering_close_ends_at_its_timeout_under_a_flood),
          CASE(http_server_stop_counts_the_idle_connections_it_closed))
