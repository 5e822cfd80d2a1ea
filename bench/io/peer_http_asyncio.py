#!/usr/bin/env python3
"""peer_http_asyncio.py — HTTP/1.1 "hello" server on Python's asyncio (stdlib
only, the default event loop, an asyncio.Protocol: the fastest pure-stdlib way).

    peer_http_asyncio.py PORT    listens on 127.0.0.1:PORT until SIGTERM/SIGINT

Every complete request (up to its blank line; GET only, no body) gets the same
response; keep-alive always; pipelined requests are answered in order with one
write for all that one read brought; a request split over reads is kept until its
end arrives; 16 KiB without a complete request closes the connection.

serve() is shared with peer_echo_asyncio.py.
"""
import asyncio
import signal
import socket
import sys

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n"
            b"Content-Type: text/plain\r\n\r\nHello, world!")
REQUEST_MAX = 16 * 1024


class Backpressure(asyncio.Protocol):
    """Stops reading while the transport's write buffer is over its high mark."""

    transport = None

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:  # asyncio sets TCP_NODELAY already; make sure
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def pause_writing(self):
        self.transport.pause_reading()

    def resume_writing(self):
        self.transport.resume_reading()


class Hello(Backpressure):
    def __init__(self):
        self.pending = b""

    def data_received(self, data):
        buf = self.pending + data if self.pending else data
        count = buf.count(b"\r\n\r\n")
        if count:
            done = buf.rfind(b"\r\n\r\n") + 4
            self.transport.write(RESPONSE * count)
            buf = buf[done:]
        if len(buf) >= REQUEST_MAX:
            self.transport.close()
            buf = b""
        self.pending = buf


def serve(protocol):
    """Serve protocol on 127.0.0.1:argv[1] until SIGTERM or SIGINT, then exit 0."""
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} PORT")
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(protocol, "127.0.0.1", int(sys.argv[1]), backlog=4096))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    loop.run_forever()
    server.close()
    sys.exit(0)


if __name__ == "__main__":
    serve(Hello)
