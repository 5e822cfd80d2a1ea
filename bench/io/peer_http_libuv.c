/* peer_http_libuv.c — HTTP/1.1 "hello" server on one libuv loop
 * (peer_libuv_common.h, peer_http_common.h).
 *
 *   peer_http_libuv PORT     listens on 127.0.0.1:PORT until SIGTERM/SIGINT
 *
 * Same behaviour as peer_http_epoll: keep-alive, pipelined requests answered in
 * order with one write per read, requests split over reads kept until complete. */
#include "peer_libuv_common.h"
#include "peer_http_common.h"

static int send_to(void *c, const char *p, size_t n)
{
    return peer_send(c, p, n);
}

static void peer_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = (struct conn *)h;
    char *at;
    size_t cap;
    (void)suggested;
    http_read_place(c->in, peer_recv_buf, sizeof peer_recv_buf, &at, &cap);
    *buf = uv_buf_init(at, (unsigned)cap);
}

static void peer_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = (struct conn *)s;
    (void)buf; /* where peer_alloc put it, as http_consume expects */
    if (nread < 0) {
        peer_close(c);
        return;
    }
    if (nread > 0 && http_consume(&c->in, peer_recv_buf, (size_t)nread, send_to, c) < 0)
        peer_close(c);
}

int main(int argc, char **argv)
{
    return peer_main(argc, argv);
}
