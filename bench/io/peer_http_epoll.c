/* peer_http_epoll.c — HTTP/1.1 "hello" server on a hand-written single-thread
 * epoll loop (peer_epoll_common.h): the yardstick for plait_http.
 *
 *   peer_http_epoll PORT     listens on 127.0.0.1:PORT until SIGTERM/SIGINT
 *
 * Every complete request gets the same 76-byte response (peer_http_common.h).
 * Keep-alive always; pipelined requests are answered in order with one send for
 * all that one recv brought; a request split over reads is kept until its end. */
#include "peer_epoll_common.h"
#include "peer_http_common.h"

static int send_to(void *c, const char *p, size_t n)
{
    return peer_send(c, p, n);
}

static int peer_on_readable(struct conn *c)
{
    char *at;
    size_t cap;
    http_read_place(c->in, peer_recv_buf, sizeof peer_recv_buf, &at, &cap);
    ssize_t r = peer_recv(c, at, cap);
    if (r <= 0)
        return (int)r;
    return http_consume(&c->in, peer_recv_buf, (size_t)r, send_to, c);
}

int main(int argc, char **argv)
{
    return peer_main(argc, argv);
}
