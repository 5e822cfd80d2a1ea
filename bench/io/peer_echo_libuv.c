/* peer_echo_libuv.c — TCP echo server on one libuv loop (peer_libuv_common.h).
 *
 *   peer_echo_libuv PORT     listens on 127.0.0.1:PORT until SIGTERM/SIGINT
 *
 * Whatever one read brings is written straight back (uv_try_write, then a queued
 * copy of the rest; reading pauses while more than 256 KiB waits). */
#include "peer_libuv_common.h"

static void peer_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(peer_recv_buf, sizeof peer_recv_buf);
}

static void peer_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = (struct conn *)s;
    if (nread < 0 || (nread > 0 && peer_send(c, buf->base, (size_t)nread) < 0))
        peer_close(c);
}

int main(int argc, char **argv)
{
    return peer_main(argc, argv);
}
