/* peer_echo_epoll.c — TCP echo server on a hand-written single-thread epoll loop
 * (peer_epoll_common.h): the yardstick for plait_echo.
 *
 *   peer_echo_epoll PORT     listens on 127.0.0.1:PORT until SIGTERM/SIGINT
 *
 * Whatever one recv brings is sent straight back; what the socket does not take is
 * queued, and the connection reads nothing more until the queue is flushed. */
#include "peer_epoll_common.h"

static int peer_on_readable(struct conn *c)
{
    ssize_t r = peer_recv(c, peer_recv_buf, sizeof peer_recv_buf);
    if (r <= 0)
        return (int)r;
    return peer_send(c, peer_recv_buf, (size_t)r);
}

int main(int argc, char **argv)
{
    return peer_main(argc, argv);
}
