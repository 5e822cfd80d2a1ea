/* peer_libuv_common.h — what the libuv peers (peer_http_libuv.c,
 * peer_echo_libuv.c) share: one uv loop on one thread, a TCP listener on
 * 127.0.0.1:PORT, TCP_NODELAY on every connection, SIGTERM/SIGINT through
 * uv_signal_t (exit status 0).
 *
 * The usual fast libuv pattern: reads land in one buffer shared by every
 * connection (the loop runs one read callback at a time), a reply is tried with
 * uv_try_write first, and only what the socket does not take is copied into a
 * uv_write request; while more than 256 KiB waits to be written, the connection
 * stops reading.  A peer defines peer_alloc() and peer_on_read() and calls
 * peer_main(). */
#ifndef PEER_LIBUV_COMMON_H
#define PEER_LIBUV_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct conn {
    uv_tcp_t tcp;   /* first: a uv_stream_t * is a struct conn * */
    int paused;     /* reading stopped until the write queue drains */
    struct http_partial *in; /* an incomplete request (HTTP only), or NULL */
};

/* The peer's callbacks: where the next read goes, and what to do with it. */
static void peer_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void peer_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

#define PEER_RECV_SIZE (64 * 1024)
#define PEER_QUEUE_MAX (256 * 1024)
static char peer_recv_buf[PEER_RECV_SIZE];

static void peer_on_closed(uv_handle_t *h)
{
    struct conn *c = (struct conn *)h;
    free(c->in);
    free(c);
}

static void peer_close(struct conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, peer_on_closed);
}

static void peer_written(uv_write_t *req, int status)
{
    struct conn *c = (struct conn *)req->handle;
    free(req);
    if (status < 0) {
        peer_close(c);
        return;
    }
    if (c->paused && c->tcp.write_queue_size == 0 && !uv_is_closing((uv_handle_t *)&c->tcp)) {
        c->paused = 0;
        uv_read_start((uv_stream_t *)&c->tcp, peer_alloc, peer_on_read);
    }
}

/* Send n bytes: at once where the socket takes them, else through a queued write
 * of a copy.  Returns 0, or -1 when the connection is broken (the caller closes). */
static int peer_send(struct conn *c, const char *p, size_t n)
{
    uv_stream_t *s = (uv_stream_t *)&c->tcp;
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int w = uv_try_write(s, &b, 1);
    if (w == (int)n)
        return 0;
    if (w < 0 && w != UV_EAGAIN)
        return -1;
    size_t sent = w > 0 ? (size_t)w : 0;
    uv_write_t *req = malloc(sizeof *req + n - sent);
    if (!req)
        return -1;
    char *copy = (char *)(req + 1);
    memcpy(copy, p + sent, n - sent);
    b = uv_buf_init(copy, (unsigned)(n - sent));
    if (uv_write(req, s, &b, 1, peer_written) < 0) {
        free(req);
        return -1;
    }
    if (s->write_queue_size > PEER_QUEUE_MAX && !c->paused) {
        c->paused = 1;
        uv_read_stop(s);
    }
    return 0;
}

static void peer_on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    uv_tcp_init(server->loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        peer_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, peer_alloc, peer_on_read);
}

static void peer_on_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    uv_stop(h->loop);
}

static int peer_main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    struct sockaddr_in addr;
    int err = uv_ip4_addr("127.0.0.1", atoi(argv[1]), &addr);
    if (!err)
        err = uv_tcp_init(loop, &server);
    if (!err)
        err = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (!err)
        err = uv_listen((uv_stream_t *)&server, 4096, peer_on_connection);
    if (err) {
        fprintf(stderr, "%s: listen on 127.0.0.1:%s: %s\n", argv[0], argv[1], uv_strerror(err));
        return 1;
    }
    uv_signal_t term, intr;
    uv_signal_init(loop, &term);
    uv_signal_start(&term, peer_on_signal, SIGTERM);
    uv_signal_init(loop, &intr);
    uv_signal_start(&intr, peer_on_signal, SIGINT);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0; /* stopped by a signal: the kernel closes the rest */
}

#endif
