/* An HTTP/1.1 "hello" server: a coroutine per connection on one scheduler, keep-alive,
 * pipelining (every complete request in a read is answered, in order, in one write)
 * and correct on partial reads (a request split over reads is answered once whole).
 * GET only (405 for other methods); "Connection: close" and HTTP/1.0 close after the
 * answer, as does a request over 16 KiB, with a lingering close.
 * SIGTERM or SIGINT shuts it down gracefully: it stops accepting, lets every
 * connection finish the requests it has received, and waits for them (5 s at most).
 *
 *     example_http_server [PORT]      (default 8080; 0 picks a free port)
 *
 * It prints "listening on 127.0.0.1:PORT" once it accepts.  This is also the plait
 * server of the HTTP benchmark (bench/io/).  Go's net/http would say:
 *
 *     http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
 *         io.WriteString(w, "Hello, world!") })
 *     http.ListenAndServe(":8080", nil)
 */
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
static const char not_allowed[] = "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n"
                                  "Content-Length: 0\r\nConnection: close\r\n\r\n";

enum { REQUEST_MAX = 16384, OUT_MAX = 16384, STACK = 32 * 1024 };

typedef struct connection connection;

typedef struct server {
    int listener;
    plait_group *connections;
    connection *open_list;      /* one scheduler: no lock needed */
    size_t open, served;
} server;

struct connection {
    server *srv;
    int fd;
    connection *prev, *next;
};

/* Whether the header block [start, end) asks to close after the response: HTTP/1.0
 * without keep-alive, or "Connection: close". */
static bool wants_close(const char *start, const char *end)
{
    bool http10 = false, close_asked = false, keep = false;
    const char *eol = memchr(start, '\n', (size_t)(end - start));
    if (eol && eol - start >= 9 && memcmp(eol - 9, "HTTP/1.0", 8) == 0)
        http10 = true;
    for (const char *line = eol ? eol + 1 : end; line < end;) {
        const char *next = memchr(line, '\n', (size_t)(end - line));
        next = next ? next + 1 : end;
        if ((size_t)(next - line) > 11 && strncasecmp(line, "connection:", 11) == 0) {
            for (const char *p = line + 11; p + 5 <= next; p++) {
                if (strncasecmp(p, "close", 5) == 0)
                    close_asked = true;
                if (p + 10 <= next && strncasecmp(p, "keep-alive", 10) == 0)
                    keep = true;
            }
        }
        line = next;
    }
    return close_asked || (http10 && !keep);
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

static void *serve(void *arg)
{
    connection *c = arg;
    /* The buffers come when the first request does: an idle connection costs its
     * coroutine (one page of stack) and nothing more. */
    char *in = NULL, *out = NULL;
    size_t have = 0, scanned = 0; /* bytes buffered; how far "\r\n\r\n" was looked for */
    bool open = plait_wait_fd(c->fd, PLAIT_READABLE, PLAIT_FOREVER) > 0 &&
                (in = malloc(REQUEST_MAX + OUT_MAX)) != NULL;
    if (open)
        out = in + REQUEST_MAX;
    while (open) {
        ssize_t n = plait_read(c->fd, in + have, REQUEST_MAX - have, PLAIT_FOREVER);
        if (n <= 0)
            break; /* closed by the peer, reset, shut down, or cancelled */
        have += (size_t)n;
        size_t done = 0, out_len = 0;
        for (;;) {
            size_t from = scanned > 3 ? scanned - 3 : done; /* a terminator across reads */
            if (from < done)
                from = done;
            char *end = memmem(in + from, have - from, "\r\n\r\n", 4);
            if (!end) {
                scanned = have;
                break;
            }
            size_t request_end = (size_t)(end - in) + 4;
            bool last = wants_close(in + done, in + request_end);
            if (memcmp(in + done, "GET ", 4) != 0) {
                memcpy(out + out_len, not_allowed, sizeof not_allowed - 1);
                out_len += sizeof not_allowed - 1;
                last = true;
            } else {
                memcpy(out + out_len, response, sizeof response - 1);
                out_len += sizeof response - 1;
                c->srv->served++;
            }
            done = scanned = request_end;
            if (last || out_len + sizeof response > OUT_MAX) {
                open = !last;
                break;
            }
        }
        if (out_len && plait_write_all(c->fd, out, out_len, NULL, PLAIT_FOREVER) < 0)
            break;
        memmove(in, in + done, have - done); /* keep what is not yet a whole request */
        have -= done;
        scanned -= done;
        if (have == REQUEST_MAX)
            open = false; /* a request larger than we take */
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
    int port = *(int *)arg;
    int sigs[] = {SIGTERM, SIGINT};
    plait_signals *stop = NULL;
    server srv = {.listener = plait_tcp_listen("127.0.0.1", port, 4096)};
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
    char name[64] = "?";
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
    int port = argc > 1 ? atoi(argv[1]) : 8080;
    if (argc > 2 || port < 0 || port > 65535) {
        fprintf(stderr, "usage: %s [PORT]\n", argv[0]);
        return 2;
    }
    return plait_run(run, &port, NULL) == 0 ? 0 : 1;
}
