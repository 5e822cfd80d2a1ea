/* An HTTP/1.1 "hello" server: a coroutine per connection on one scheduler, keep-alive,
 * pipelining (every complete request received is answered, in order, before the next
 * read; 16 KiB of answers per write) and correct on partial reads (a request split
 * over reads is answered once whole).  GET and HEAD only (HEAD: GET's header fields,
 * no body; RFC 9110, 9.1 has every server serve both): 405 for other methods; 400
 * for a GET or HEAD that says it has a body (which this server does not read: a body
 * taken for the next request would let a client smuggle one) and for a request it
 * cannot read safely, as
 * soon as its malformed line has come, not after the timeout (http_request.h says
 * what is refused; the C peers of the benchmark share that parser).  "Connection:
 * close" and HTTP/1.0 close after the answer (which says so), as does a request over
 * 16 KiB (431; 414 when its request line is, RFC 9112, 3), with a lingering close; an
 * HTTP/1.0 client that asks for keep-alive is told it has it.  A peer
 * gets TIMEOUT seconds (default 10) to finish a request from its first byte, however
 * it trickles in, and to take an answer, and six times that idle between requests
 * (counted from the last request read, or from its connection; the empty lines a
 * client may send between requests do not count); then it is closed.
 * SIGTERM or SIGINT shuts it down gracefully: it stops accepting (taking the
 * connections the kernel had queued already), lets every
 * connection finish the requests it has received, and waits for them (5 s at most;
 * each waits up to 2 s for its client to close first, so that no answer is lost).
 *
 *     example_http_server [PORT [TIMEOUT]]   (port 8080 by default; 0 picks a free one)
 *
 * It prints "listening on 127.0.0.1:PORT" once it accepts.  This is also the plait
 * server of the HTTP benchmark (bench/io/).  Go's net/http would say:
 *
 *     http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
 *         io.WriteString(w, "Hello, world!") })
 *     http.ListenAndServe(":8080", nil)
 */
#include "args.h"
#include "http_request.h"
#include "stop.h"

#include <plait.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

static const char too_large[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                                "Content-Length: 0\r\nConnection: close\r\n\r\n";
/* a request line over 16 KiB: its target is longer than we parse (RFC 9112, 3: 414) */
static const char uri_too_long[] = "HTTP/1.1 414 URI Too Long\r\n"
                                   "Content-Length: 0\r\nConnection: close\r\n\r\n";

enum { REQUEST_MAX = 16384, OUT_MAX = 16384, STACK = 32 * 1024, BACKLOG = 4096 };
_Static_assert(sizeof too_large <= HTTP_ANSWER_MAX && sizeof uri_too_long <= HTTP_ANSWER_MAX,
               "an answer fits the room kept for one");
/* A request served is answered with at least the hello's header fields (HEAD's answer),
 * so one write holds at most so many of them. */
enum { SERVED_PER_WRITE_MAX = OUT_MAX / (sizeof http_hello - sizeof "Hello, world!") + 1 };
_Static_assert(OUT_MAX <= UINT16_MAX, "an offset into the answers fits 16 bits");
_Static_assert((REQUEST_MAX + OUT_MAX) % _Alignof(uint16_t) == 0,
               "the ends of the answers follow the two buffers, aligned");

typedef struct server {
    int listener;
    int64_t timeout;            /* to finish a request begun, or to take an answer */
    plait_group *connections;   /* a coroutine per connection */
    size_t closed_stopping;     /* connections closed since the stop began */
    size_t served;              /* requests whose hello was written in full */
    int64_t stop_by;            /* stopping: when the last connection must be done */
    bool stopping;              /* SIGTERM: the connections were cancelled */
    bool shut;                  /* SIGTERM: the listener was shut down */
} server;

/* The stop.  SIGTERM cancels every connection's coroutine (plait_group_cancel: those
 * taken from the listener afterwards start cancelled).  A connection that sees it (a
 * read, a write or a wait says -ECANCELED) shields itself from it and goes on as a
 * stopped one: it answers the requests that had come by then (the bytes its kernel
 * had queued, `left`: what came later is not read for requests), then closes
 * lingering (below), 2 s at most, every deadline by the stop's end (`stop_by`).
 * The read side is not shut down: Linux, once a socket is shut down for reading, no
 * longer tells the peer that room has been made by a read (no window update, only
 * its answers to the peer's probes, 0.2 s, 0.4 s, 0.8 s... apart), so what a client
 * had queued behind came in at a trickle, the close came with some still unread, and
 * the reset that follows destroyed the answers the client had not read yet
 * (test_examples_edges: of 4 MB of pipelined requests behind those answered, 1-2.4 MB
 * were read in the 2 s). */
typedef struct connection {
    server *srv;
    int fd;
    bool stopped; /* has seen the stop: shielded from it */
    size_t left;  /* stopped: the bytes queued at the stop, not read yet */
} connection;

enum { STOP_LINGER = 2 * PLAIT_SEC };

/* c takes the stop: it becomes a stopped connection, and goes on. */
static void take_the_stop(connection *c)
{
    plait_cancel_shield(1);
    c->stopped = true;
    int queued = 0;
    c->left = ioctl(c->fd, FIONREAD, &queued) == 0 && queued > 0 ? (size_t)queued : 0;
}

/* Whether r is the stop's cancellation, seen now for the first time (then c takes
 * it). */
static bool stop_seen(connection *c, int64_t r)
{
    if (r != -ECANCELED || !c->srv->stopping || c->stopped)
        return false;
    take_the_stop(c);
    return true;
}

/* The stop, looked for at each round: a connection whose calls never wait (its client
 * keeps the queue full and reads the answers) is never told by a -ECANCELED, and it
 * went on answering what came after the stop for as long as the client sent (a
 * review: 20 s and more, past the stop's 5 s). */
static void look_for_the_stop(connection *c)
{
    if (c->srv->stopping && !c->stopped)
        take_the_stop(c);
}

/* A deadline of c's, brought forward to the stop's end once it is stopped. */
static int64_t until_stop(const connection *c, int64_t deadline)
{
    return c->stopped && deadline > c->srv->stop_by ? c->srv->stop_by : deadline;
}

/* Closing while the client may still be sending (pipelined requests after one that
 * said "Connection: close", or after those a stop answers): a close with unread data
 * makes the kernel send a reset, which can destroy the answers not yet read by the
 * client.  So stop sending, and read and drop what still comes until the client
 * closes, as nginx does: while data keeps coming (2 s without any ends it), for
 * `linger` at most: the time the client has to take an answer (2 s in all, as it
 * was, reset a client that went on sending for longer before it read:
 * test_http_stop), 2 s at a stop; a stop that comes meanwhile ends it by its own end.
 * A read past its deadline still takes what is there: a client that never stops
 * sending is cut off by the clock. */
static void lingering_close(connection *c, char *buf, size_t cap, int64_t linger)
{
    plait_shutdown(c->fd, SHUT_WR);
    int64_t give_up = plait_deadline_in(linger);
    for (;;) {
        look_for_the_stop(c);
        int64_t now = plait_now(), end = until_stop(c, give_up);
        if (now >= end)
            return;
        int64_t quiet_until = now + 2 * PLAIT_SEC;
        ssize_t n = plait_read(c->fd, buf, cap, quiet_until < end ? quiet_until : end);
        if (n <= 0 && !stop_seen(c, n))
            return;
    }
}

/* Read requests into buf: waiting until the deadline; once stopped, only what had
 * come at the stop, without waiting (0 when that is all read). */
static ssize_t read_requests(connection *c, char *buf, size_t len, int64_t deadline)
{
    if (!c->stopped) {
        ssize_t n = plait_read(c->fd, buf, len, deadline);
        if (!stop_seen(c, n))
            return n;
    }
    if (len > c->left)
        len = c->left;
    if (len == 0)
        return 0;
    ssize_t n = plait_read(c->fd, buf, len, 0); /* it is there: a try */
    if (n > 0)
        c->left -= (size_t)n;
    return n;
}

/* Write the answers whole by the deadline (the stop's end, once stopped): 0 or the
 * write's error; *written says how much went. */
static int write_answers(connection *c, const char *out, size_t len, int64_t deadline,
                         size_t *written)
{
    int r = plait_write_all(c->fd, out, len, written, until_stop(c, deadline));
    if (stop_seen(c, r)) { /* the rest, as a stopped connection */
        size_t more = 0;
        r = plait_write_all(c->fd, out + *written, len - *written, &more,
                            until_stop(c, deadline));
        *written += more;
    }
    return r;
}

/* Append the answer to out (room for HTTP_ANSWER_MAX bytes is kept). */
static size_t answer(char *out, size_t out_len, const char *text, size_t len)
{
    memcpy(out + out_len, text, len);
    return out_len + len;
}

/* How many of the answers ending at ends[0..count) (ascending) lie within the first
 * `written` bytes: the requests a write that stopped there served. */
static size_t answers_written(const uint16_t *ends, size_t count, size_t written)
{
    size_t n = 0;
    while (n < count && ends[n] <= written)
        n++;
    return n;
}

static void *serve(void *arg)
{
    connection *c = arg;
    int64_t timeout = c->srv->timeout, idle = 6 * timeout;
    /* The buffers come when the first request does: an idle connection costs its
     * coroutine (one page of stack) and nothing more.  So nothing large lives in this
     * frame, which a coroutine parked before its first request holds: with the ends of
     * the answers (served_end, 506 bytes) here it reached a second page, and an idle
     * connection cost 8.5 KiB, not 4.5 (tests/test_examples_edges.sh). */
    char *in = NULL, *out = NULL;
    uint16_t *served_end = NULL; /* where each hello of out ends */
    size_t have = 0; /* bytes buffered: the request at in[0] and any after it */
    http_request req; /* the parse of the request at in[done] (http_request.h) */
    http_request_begin(&req);
    /* idle since the last request read (or the connection came): empty lines alone do
     * not end that (a client that sent only those, one every few seconds, was never
     * closed) */
    int64_t idle_from = plait_now();
    int ready = plait_wait_fd(c->fd, PLAIT_READABLE, idle_from + idle);
    bool open = (ready > 0 || (stop_seen(c, ready) && c->left > 0)) &&
                (in = malloc(REQUEST_MAX + OUT_MAX +
                             SERVED_PER_WRITE_MAX * sizeof *served_end)) != NULL;
    if (open) {
        out = in + REQUEST_MAX;
        served_end = (uint16_t *)(out + OUT_MAX);
    }
    bool more = false; /* out filled up: whole requests may still be buffered */
    bool read_any = false; /* a byte came: an answer may be on its way to the client */
    int64_t finish_by = 0; /* the deadline of the request begun (have > 0) */
    /* The clock is read once per read: the deadlines set until the next one count from
     * then (what follows a read takes microseconds; the clock costs tens of ns). */
    int64_t now = plait_now();
    while (open) {
        look_for_the_stop(c);
        if (!more) { /* idle between requests, or the rest of one begun */
            ssize_t n = read_requests(c, in + have, REQUEST_MAX - have,
                                      have ? finish_by : idle_from + idle);
            if (n <= 0)
                break; /* closed, reset, timed out, cancelled, or all that came by the stop */
            now = plait_now();
            read_any = true;
            if (!have) /* its first bytes: the whole request is due within the timeout */
                finish_by = now + timeout;
            have += (size_t)n;
        }
        more = false;
        size_t done = 0, out_len = 0;
        size_t served_count = 0;
        for (;;) {
            /* each line is looked at once, as it completes: a request read whole is
             * parsed in one pass, one that trickles in costs no more, and a malformed
             * line is answered as soon as it has come */
            const char *request_end = http_request_parse(&req, in + done, in + have);
            if (!request_end && !req.bad) { /* the rest is still coming */
                if (req.http10 < 0) { /* only empty lines so far (RFC 9112, 2.2): */
                    done += req.parsed; /* dropped, so that the connection stays idle */
                    req.parsed = 0;
                }
                break;
            }
            const char *text;
            size_t len;
            bool last;
            bool hello = http_request_answer(&req, &text, &len, &last);
            out_len = answer(out, out_len, text, len);
            if (hello)
                served_end[served_count++] = (uint16_t)out_len;
            done = request_end ? (size_t)(request_end - in) : have;
            idle_from = now;
            http_request_begin(&req);
            open = !last;
            more = !last && out_len + HTTP_ANSWER_MAX > OUT_MAX;
            if (last || more)
                break;
        }
        if (!more && open && have - done == REQUEST_MAX) { /* a request larger than we take */
            if (req.http10 < 0) /* its request line has not even ended */
                out_len = answer(out, out_len, uri_too_long, sizeof uri_too_long - 1);
            else
                out_len = answer(out, out_len, too_large, sizeof too_large - 1);
            open = false;
        }
        /* a request counts as served once its answer is written whole: a write cut
         * short (a reset, the timeout, the stop giving up) counts only what it sent */
        size_t written = 0;
        int wrote = out_len ? write_answers(c, out, out_len, now + timeout, &written) : 0;
        c->srv->served += answers_written(served_end, served_count, written);
        if (wrote < 0)
            break;
        if (more) /* the next answer comes without a read: its time counts from here */
            now = plait_now();
        memmove(in, in + done, have - done); /* keep what is not yet a whole request */
        have -= done;
        if (done && have) /* the next request has begun */
            finish_by = now + timeout;
    }
    /* (one that never read a byte has no answer to lose: its descriptor goes back at
     * once, for the connections still queued, stop.h; it waited 2 s, and a stop out of
     * descriptors took the queue two rounds of the limit a 5 s stop) */
    if (c->stopped && read_any) /* answers may be on their way: see lingering_close() */
        lingering_close(c, in, REQUEST_MAX, STOP_LINGER);
    else if (in && !open) /* our decision to close: see lingering_close() */
        lingering_close(c, in, REQUEST_MAX, timeout);
    free(in);
    plait_close(c->fd);
    server *srv = c->srv;
    if (srv->stopping)
        srv->closed_stopping++;
    free(c);
    return NULL;
}

/* Serve a connection taken off the listener in a coroutine of the group (or close it). */
static void start_connection(void *server_arg, int fd)
{
    server *srv = server_arg;
    plait_spawn_options opts = {.name = "http connection", .stack_size = STACK,
                                .group = srv->connections};
    plait_socket_set(fd, PLAIT_NODELAY, 1);
    connection *c = malloc(sizeof *c);
    if (!c) {
        plait_close(fd);
        return;
    }
    /* (taken as the server stops, it starts cancelled: it answers what came, then ends) */
    *c = (connection){.srv = srv, .fd = fd};
    if (plait_spawn_opts(NULL, serve, c, &opts) < 0) {
        plait_close(fd);
        free(c);
    }
}

static void *accept_loop(void *arg)
{
    server *srv = arg;
    int64_t pause = 0;
    for (;;) {
        int fd = plait_accept(srv->listener, NULL, PLAIT_FOREVER);
        if (fd >= 0) {
            pause = 0;
            start_connection(srv, fd);
            continue;
        }
        /* Shut down (stopping: an accept out of descriptors goes on failing so, the
         * kernel takes the descriptor before it looks at the listener) or cancelled:
         * the end.  Else waited out. */
        if (srv->shut || fd == -ECANCELED ||
            example_accept_failed("http_server", fd, &pause) < 0)
            return NULL;
    }
}

static void *run(void *arg)
{
    int port = ((const int *)arg)[0]; /* and the timeout in seconds */
    int sigs[] = {SIGTERM, SIGINT};
    plait_signals *stop = NULL;
    server srv = {.listener = plait_tcp_listen("127.0.0.1", port, BACKLOG),
                  .timeout = ((const int *)arg)[1] * PLAIT_SEC};
    int r = srv.listener < 0 ? srv.listener : plait_signals_create(&stop, sigs, 2);
    if (r == 0)
        r = example_poller_ready();
    if (r == 0)
        r = plait_group_create(&srv.connections);
    plait_task acceptor;
    if (r == 0)
        r = plait_spawn(&acceptor, accept_loop, &srv);
    if (r < 0) {
        fprintf(stderr, "http_server: %s\n", plait_strerror(r));
        return PLAIT_FAIL(r);
    }
    plait_addr local;
    char name[PLAIT_ADDR_STRLEN] = "?";
    if (plait_local_addr(srv.listener, &local) == 0)
        plait_addr_format(&local, name, sizeof name);
    printf("listening on %s (poller: %s)\n", name, plait_io_backend());
    fflush(stdout);

    int sig = plait_signals_wait(stop, PLAIT_FOREVER);
    /* Graceful: no new connections; each open one answers what it has, then ends (the
     * stop, above connection: cancelled, it goes on shielded, so does every one taken
     * from now on).  The connections the kernel has queued already are taken too
     * (stop.h), as the open ones give back descriptors where none is left. */
    int64_t stop_by = plait_deadline_in(5 * PLAIT_SEC);
    srv.stop_by = stop_by;
    srv.stopping = true;
    plait_group_cancel(srv.connections);
    example_take_queued(srv.listener, BACKLOG, stop_by, start_connection, &srv);
    /* then the acceptor's accept ends (-EINVAL, or it sees `shut`), and the listener is
     * closed once it has (as the echo server does) */
    srv.shut = true;
    plait_shutdown(srv.listener, SHUT_RDWR);
    plait_join(acceptor, NULL, PLAIT_FOREVER);
    plait_close(srv.listener);
    /* (their deadlines end by stop_by: a second more for those cut off then to close,
     * or the wait's own timer, at the same instant, called them unfinished) */
    int w = plait_group_wait(srv.connections, stop_by + PLAIT_SEC);
    printf("signal %d: stopped accepting, %zu connections closed, %zu requests served%s\n",
           sig, srv.closed_stopping, srv.served, w == 0 ? "" : " (some did not finish in 5 s)");
    plait_group_destroy(srv.connections); /* cancels the ones still running */
    plait_signals_destroy(stop);
    return NULL;
}

int main(int argc, char **argv)
{
    int args[2];
    if (argc > 3 || !example_number(argc > 1 ? argv[1] : NULL, 8080, 0, 65535, &args[0]) ||
        !example_number(argc > 2 ? argv[2] : NULL, 10, 1, 3600, &args[1])) {
        fprintf(stderr, "usage: %s [PORT [TIMEOUT]]   (TIMEOUT: 1 to 3600 seconds)\n", argv[0]);
        return 2;
    }
    return plait_run(run, args, NULL) == 0 ? 0 : 1;
}
