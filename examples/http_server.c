/* An HTTP/1.1 "hello" server: a coroutine per connection on one scheduler, keep-alive,
 * pipelining (every complete request received is answered, in order, before the next
 * read; 16 KiB of answers per write) and correct on partial reads (a request split
 * over reads is answered once whole).  GET only (405 for other methods; 400 for a GET
 * that says it has a body, which this server does not read: a body taken for the next
 * request would let a client smuggle one; 400 too for a request it cannot read safely:
 * a request line that is not "METHOD TARGET HTTP/1.x", a line not ended by CRLF (as soon
 * as its bare LF comes, not after the timeout) or with
 * a CR inside, a header line without a colon or with space before it, a folded header
 * line, an HTTP/1.1 request without a Host, any with two, a Content-Length that is not
 * a number); "Connection: close" and HTTP/1.0 close after the answer (which says so),
 * as does a request over 16 KiB (431), with a lingering close; an HTTP/1.0 client that
 * asks for keep-alive is told it has it.  A peer
 * gets TIMEOUT seconds (default 10) to finish a request from its first byte, however
 * it trickles in, and to take an answer, and six times that idle between requests
 * (counted from its last bytes read); then it is closed.
 * SIGTERM or SIGINT shuts it down gracefully: it stops accepting, lets every
 * connection finish the requests it has received, and waits for them (5 s at most).
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

#include <plait.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

static const char response[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n"
                               "Content-Type: text/plain\r\n\r\nHello, world!";
/* The same, saying what becomes of the connection where the default does not: an
 * HTTP/1.0 client keeps it only when told so, and one that asked to close is told. */
static const char response_keep_alive[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n"
                                          "Content-Type: text/plain\r\n"
                                          "Connection: keep-alive\r\n\r\nHello, world!";
static const char response_close[] = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n"
                                     "Content-Type: text/plain\r\n"
                                     "Connection: close\r\n\r\nHello, world!";
static const char not_allowed[] = "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n"
                                  "Content-Length: 0\r\nConnection: close\r\n\r\n";
static const char bad_request[] = "HTTP/1.1 400 Bad Request\r\n"
                                  "Content-Length: 0\r\nConnection: close\r\n\r\n";
static const char too_large[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                                "Content-Length: 0\r\nConnection: close\r\n\r\n";

enum { REQUEST_MAX = 16384, OUT_MAX = 16384, ANSWER_MAX = 128, STACK = 32 * 1024 };
_Static_assert(sizeof response_keep_alive <= ANSWER_MAX && sizeof response_close <= ANSWER_MAX &&
                   sizeof response <= ANSWER_MAX && sizeof not_allowed <= ANSWER_MAX &&
                   sizeof bad_request <= ANSWER_MAX && sizeof too_large <= ANSWER_MAX,
               "an answer fits the room kept for one");

typedef struct connection connection;

typedef struct server {
    int listener;
    int64_t timeout;            /* to finish a request begun, or to take an answer */
    plait_group *connections;
    connection *open_list;      /* one scheduler: no lock needed */
    size_t open, served;
} server;

struct connection {
    server *srv;
    int fd;
    connection *prev, *next;
};

/* What a request's header block says about the connection and its body. */
typedef struct request_info {
    bool bad;                   /* malformed: answered 400 (see the top of the file) */
    bool get;                   /* the method is GET */
    bool close;                 /* HTTP/1.0 without keep-alive, or "Connection: close" */
    bool keep_alive_10;         /* HTTP/1.0 with keep-alive (kept only if the answer says) */
    bool body;                  /* a Content-Length other than 0, or a Transfer-Encoding */
} request_info;

/* Whether the header value [p, end) lists the token (comma-separated, any case). */
static bool has_token(const char *p, const char *end, const char *token)
{
    size_t len = strlen(token);
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *stop = p;
        while (stop < end && *stop != ',' && *stop != '\r' && *stop != '\n')
            stop++;
        const char *last = stop;
        while (last > p && (last[-1] == ' ' || last[-1] == '\t'))
            last--;
        if ((size_t)(last - p) == len && strncasecmp(p, token, len) == 0)
            return true;
        if (stop == end || *stop != ',')
            return false; /* the end of the line */
        p = stop + 1;
    }
    return false;
}

static bool blank(char c) { return c == ' ' || c == '\t'; }

/* Whether the header value [p, end) is 0, with blanks around it (anything else, a
 * malformed number included, is refused as a body would be). */
static bool zero_length(const char *p, const char *end)
{
    while (p < end && blank(*p))
        p++;
    const char *digits = p;
    while (p < end && *p == '0')
        p++;
    if (p == digits)
        return false; /* no number at all */
    while (p < end && blank(*p))
        p++;
    return p == end || *p == '\r' || *p == '\n';
}

/* The request line [start, eol) (its CR included) is "METHOD TARGET HTTP/1.x\r":
 * 1 for HTTP/1.0, 0 for HTTP/1.1 and any later 1.x (served as 1.1, RFC 9110, 2.5),
 * -1 when malformed. */
static int request_line(const char *start, const char *eol, bool *get)
{
    const char *sp1 = memchr(start, ' ', (size_t)(eol - start));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (!sp2 || sp1 == start || sp2 == sp1 + 1 || eol - sp2 != 10 || eol[-1] != '\r' ||
        memcmp(sp2 + 1, "HTTP/1.", 7) != 0 || sp2[8] < '0' || sp2[8] > '9')
        return -1;
    *get = sp1 - start == 3 && memcmp(start, "GET", 3) == 0;
    return sp2[8] == '0';
}

/* Whether the header line [line, next) names the field (of len bytes, with its
 * colon, in lower case); *value is where its value starts.  (The first letter is
 * compared first: most lines name none of the fields looked for.) */
static bool field(const char *line, const char *next, const char *name, size_t len,
                  const char **value)
{
    *value = line + len;
    return (size_t)(next - line) > len && (*line | 0x20) == name[0] &&
           strncasecmp(line, name, len) == 0;
}

/* Reads the request that begins at start, as far as end: where its header block ends
 * (past its empty line), or NULL, with info->bad false when the block has not ended
 * by end (a request still coming), true as soon as a line is malformed. */
static const char *read_headers(const char *start, const char *end, request_info *info)
{
    *info = (request_info){.bad = true};
    const char *eol = memchr(start, '\n', (size_t)(end - start));
    if (!eol) {
        info->bad = false; /* the request line is still coming */
        return NULL;
    }
    int http10 = eol > start && !memchr(start, '\r', (size_t)(eol - start) - 1)
                     ? request_line(start, eol, &info->get) : -1;
    if (http10 < 0)
        return NULL;
    bool close_asked = false, keep = false;
    int hosts = 0;
    const char *line = eol + 1, *next;
    for (;; line = next) {
        next = memchr(line, '\n', (size_t)(end - line));
        if (!next) {
            info->bad = false; /* the block goes on past what came */
            return NULL;
        }
        next++;
        /* every line ends in CRLF, with no other CR: a bare LF ending a line (or an
         * empty one) would end the block early for this loop only, and the headers
         * after it (a Content-Length, a Connection: close) would go unread; a bare LF
         * is refused as soon as it comes, not after the timeout */
        if (next - line < 2 || next[-2] != '\r' ||
            memchr(line, '\r', (size_t)(next - line - 2)))
            return NULL;
        if (next - line == 2)
            break; /* the empty line that ends the block (the first CRLF CRLF) */
        const char *colon = memchr(line, ':', (size_t)(next - line)), *value;
        if (blank(*line) || !colon || colon == line || blank(colon[-1]))
            return NULL; /* folded, no name, or space before the colon (RFC 9112, 5) */
        if (field(line, next, "connection:", 11, &value)) {
            close_asked |= has_token(value, next, "close");
            keep |= has_token(value, next, "keep-alive");
        } else if (field(line, next, "content-length:", 15, &value)) {
            info->body |= !zero_length(value, next);
        } else if (field(line, next, "transfer-encoding:", 18, &value)) {
            info->body = true;
        } else if (field(line, next, "host:", 5, &value)) {
            hosts++;
        }
    }
    if (hosts > 1 || (!http10 && hosts == 0))
        return NULL; /* HTTP/1.1 needs one, and none may have two (RFC 9112, 3.2) */
    info->bad = false;
    info->close = close_asked || (http10 && !keep);
    info->keep_alive_10 = http10 && !info->close;
    return next;
}

/* Closing while the client may still be sending (pipelined requests after one that
 * said "Connection: close"): a close with unread data makes the kernel send a reset,
 * which can destroy the answers not yet read by the client.  So stop sending, and read
 * and drop what still comes until the client closes (2 s at most), as nginx does. */
static void lingering_close(int fd, char *buf, size_t cap)
{
    plait_shutdown(fd, SHUT_WR);
    int64_t deadline = plait_deadline_in(2 * PLAIT_SEC);
    while (plait_read(fd, buf, cap, deadline) > 0) {
    }
}

/* Append the answer to out (room for ANSWER_MAX bytes is kept). */
static size_t answer(char *out, size_t out_len, const char *text, size_t len)
{
    memcpy(out + out_len, text, len);
    return out_len + len;
}

/* The first "\r\n\r\n" in [from, end), or NULL: memmem's answer, found from the line
 * ends (memchr), without the set-up that memmem makes for every call. */
static char *blank_line(char *from, char *end)
{
    if (end - from < 4)
        return NULL;
    for (char *lf = from + 3; (lf = memchr(lf, '\n', (size_t)(end - lf))) != NULL; lf++)
        if (lf[-1] == '\r' && lf[-2] == '\n' && lf[-3] == '\r')
            return lf - 3;
    return NULL;
}

static void *serve(void *arg)
{
    connection *c = arg;
    int64_t timeout = c->srv->timeout, idle = 6 * timeout;
    /* The buffers come when the first request does: an idle connection costs its
     * coroutine (one page of stack) and nothing more. */
    char *in = NULL, *out = NULL;
    size_t have = 0, scanned = 0; /* bytes buffered; how far "\r\n\r\n" was looked for */
    bool open = plait_wait_fd(c->fd, PLAIT_READABLE, plait_deadline_in(idle)) > 0 &&
                (in = malloc(REQUEST_MAX + OUT_MAX)) != NULL;
    if (open)
        out = in + REQUEST_MAX;
    bool more = false; /* out filled up: whole requests may still be buffered */
    int64_t finish_by = 0; /* the deadline of the request begun (have > 0) */
    /* The clock is read once per read: the deadlines set until the next one count from
     * then (what follows a read takes microseconds; the clock costs tens of ns). */
    int64_t now = plait_now();
    while (open) {
        if (!more) { /* idle between requests, or the rest of one begun */
            ssize_t n = plait_read(c->fd, in + have, REQUEST_MAX - have,
                                   have ? finish_by : now + idle);
            if (n <= 0)
                break; /* closed, reset, shut down, timed out, or cancelled */
            now = plait_now();
            if (!have) /* its first bytes: the whole request is due within the timeout */
                finish_by = now + timeout;
            have += (size_t)n;
        }
        more = false;
        size_t done = 0, out_len = 0;
        for (;;) {
            /* a client may send an empty line before a request (RFC 9112, 2.2) */
            while (have - done >= 2 && in[done] == '\r' && in[done + 1] == '\n')
                done += 2;
            /* A request read whole (the common case) is parsed in one pass, which also
             * finds its end.  One that came in pieces is parsed once its end has come:
             * each new piece is only looked through for "\r\n\r\n" (from where the
             * last look stopped), so a client that trickles a large request byte by
             * byte does not have it parsed again for each byte. */
            const char *until = in + have;
            if (scanned > done) {
                size_t from = scanned > done + 3 ? scanned - 3 : done; /* an end across reads */
                char *end = blank_line(in + from, in + have);
                /* a line ended by a bare LF: the block would never end as it must, and
                 * the client would wait for the timeout instead of its 400 */
                bool bare_lf = false;
                for (char *lf = in + from; !end && !bare_lf &&
                                           (lf = memchr(lf, '\n', have - (size_t)(lf - in)));
                     lf++)
                    bare_lf = lf == in + done || lf[-1] != '\r';
                if (!end && !bare_lf) {
                    scanned = have;
                    break;
                }
                if (end)
                    until = end + 4;
            }
            request_info info;
            const char *request_end = read_headers(in + done, until, &info);
            if (!request_end && !info.bad) { /* the rest is still coming */
                scanned = have;
                break;
            }
            bool last = info.close;
            if (info.bad) {
                out_len = answer(out, out_len, bad_request, sizeof bad_request - 1);
                last = true;
            } else if (!info.get) {
                out_len = answer(out, out_len, not_allowed, sizeof not_allowed - 1);
                last = true;
            } else if (info.body) {
                out_len = answer(out, out_len, bad_request, sizeof bad_request - 1);
                last = true;
            } else if (info.close) {
                out_len = answer(out, out_len, response_close, sizeof response_close - 1);
                c->srv->served++;
            } else if (info.keep_alive_10) {
                out_len = answer(out, out_len, response_keep_alive,
                                 sizeof response_keep_alive - 1);
                c->srv->served++;
            } else {
                out_len = answer(out, out_len, response, sizeof response - 1);
                c->srv->served++;
            }
            done = scanned = request_end ? (size_t)(request_end - in) : have;
            open = !last;
            more = !last && out_len + ANSWER_MAX > OUT_MAX;
            if (last || more)
                break;
        }
        if (!more && open && have - done == REQUEST_MAX) { /* a request larger than we take */
            out_len = answer(out, out_len, too_large, sizeof too_large - 1);
            open = false;
        }
        if (out_len &&
            plait_write_all(c->fd, out, out_len, NULL, now + timeout) < 0)
            break;
        if (more) /* the next answer comes without a read: its time counts from here */
            now = plait_now();
        memmove(in, in + done, have - done); /* keep what is not yet a whole request */
        have -= done;
        scanned -= done;
        if (done && have) /* the next request has begun */
            finish_by = now + timeout;
    }
    if (in && !open) /* our decision to close: see lingering_close() */
        lingering_close(c->fd, in, REQUEST_MAX);
    free(in);
    plait_close(c->fd);
    server *srv = c->srv;
    *(c->prev ? &c->prev->next : &srv->open_list) = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->open--;
    free(c);
    return NULL;
}

static void *accept_loop(void *arg)
{
    server *srv = arg;
    plait_spawn_options opts = {.name = "http connection", .stack_size = STACK,
                                .group = srv->connections};
    for (;;) {
        int fd = plait_accept(srv->listener, NULL, PLAIT_FOREVER);
        if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
            plait_sleep(10 * PLAIT_MS); /* out of descriptors: let connections end */
            continue;
        }
        if (fd < 0)
            return NULL; /* closed (shutting down) or cancelled */
        plait_socket_set(fd, PLAIT_NODELAY, 1);
        connection *c = malloc(sizeof *c);
        if (!c) {
            plait_close(fd);
            continue;
        }
        *c = (connection){.srv = srv, .fd = fd, .next = srv->open_list};
        if (plait_spawn_opts(NULL, serve, c, &opts) < 0) {
            plait_close(fd);
            free(c);
            continue;
        }
        if (c->next)
            c->next->prev = c;
        srv->open_list = c;
        srv->open++;
    }
}

static void *run(void *arg)
{
    int port = ((const int *)arg)[0]; /* and the timeout in seconds */
    int sigs[] = {SIGTERM, SIGINT};
    plait_signals *stop = NULL;
    server srv = {.listener = plait_tcp_listen("127.0.0.1", port, 4096),
                  .timeout = ((const int *)arg)[1] * PLAIT_SEC};
    int r = srv.listener < 0 ? srv.listener : plait_signals_create(&stop, sigs, 2);
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
    /* graceful: no new connections; each open one answers what it has, then ends */
    plait_close(srv.listener);
    plait_join(acceptor, NULL, PLAIT_FOREVER);
    size_t open = srv.open;
    for (connection *c = srv.open_list; c; c = c->next)
        plait_shutdown(c->fd, SHUT_RD); /* its read ends once what came is answered */
    int w = plait_group_wait(srv.connections, plait_deadline_in(5 * PLAIT_SEC));
    printf("signal %d: stopped accepting, %zu connections closed, %zu requests served%s\n",
           sig, open, srv.served, w == 0 ? "" : " (some did not finish in 5 s)");
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
