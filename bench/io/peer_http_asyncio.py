#!/usr/bin/env python3
"""peer_http_asyncio.py — HTTP/1.1 "hello" server on Python's asyncio (stdlib
only, the default event loop, an asyncio.Protocol: the fastest pure-stdlib way).

    peer_http_asyncio.py PORT    listens on 127.0.0.1:PORT until SIGTERM/SIGINT

Every complete request (up to its blank line) is parsed with the checks plait's
example server and the C peers make (examples/http_request.h: the request line, each
header line a token name and a colon, one valid Host for HTTP/1.1, Connection,
Content-Length, Transfer-Encoding), with regular expressions, and gets the answer
they give (the hello, HEAD's without its body, 400, 405; HTTP/1.0's keep-alive and a
"Connection: close" said and obeyed); pipelined requests are answered in order with
one write for all that one read brought; a request split over reads is kept until its
end arrives; 16 KiB without a complete request closes the connection.  (Until
2026-12-06 it only counted blank lines: less work a request than its peers did.)

serve() is shared with peer_echo_asyncio.py.
"""
import asyncio
import re
import signal
import socket
import sys

HELLO = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n"
BODY = b"Hello, world!"
RESPONSE = HELLO + b"\r\n" + BODY
KEEP_ALIVE = HELLO + b"Connection: keep-alive\r\n\r\n" + BODY
CLOSE = HELLO + b"Connection: close\r\n\r\n" + BODY
NOT_ALLOWED = (b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\n"
               b"Content-Length: 0\r\nConnection: close\r\n\r\n")
BAD_REQUEST = (b"HTTP/1.1 400 Bad Request\r\n"
               b"Content-Length: 0\r\nConnection: close\r\n\r\n")
REQUEST_MAX = 16 * 1024

TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
REQUEST_LINE = re.compile(rb"(" + TOKEN + rb") [\x21-\x7e]+ HTTP/1\.([0-9])\r\n")
FIELD = re.compile(rb"(" + TOKEN + rb"):([^\r\n]*)\r\n")
HOST = re.compile(rb"[ \t]*(?:\[[0-9A-Fa-f:.]+\]|[-A-Za-z0-9._~!$&'()*+,;=%]*)"
                  rb"(?::[0-9]*)?[ \t]*")
ZERO = re.compile(rb"[ \t]*0+[ \t]*")


def answer(block):
    """The answer to the request whose header block (request line to its empty line)
    is block, and whether the connection closes after it."""
    line = REQUEST_LINE.match(block)
    if not line:
        return BAD_REQUEST, True
    method, http10 = line.group(1), line.group(2) == b"0"
    hosts, close_asked, keep_asked, body = 0, False, False, False
    at, end = line.end(), len(block) - 2
    while at < end:
        field = FIELD.match(block, at)
        if not field:
            return BAD_REQUEST, True
        name, value = field.group(1).lower(), field.group(2)
        if name == b"connection":
            tokens = [t.strip(b" \t").lower() for t in value.split(b",")]
            close_asked |= b"close" in tokens
            keep_asked |= b"keep-alive" in tokens
        elif name == b"content-length":
            body |= not ZERO.fullmatch(value)
        elif name == b"transfer-encoding":
            body = True
        elif name == b"host":
            if not HOST.fullmatch(value):
                return BAD_REQUEST, True
            hosts += 1
        at = field.end()
    get, head = method == b"GET", method == b"HEAD"
    if hosts > 1 or (not http10 and hosts == 0) or ((get or head) and body):
        return BAD_REQUEST, True
    if not get and not head:
        return NOT_ALLOWED, True
    close = close_asked or (http10 and not keep_asked)
    text = CLOSE if close else KEEP_ALIVE if http10 else RESPONSE
    return (text[:-len(BODY)] if head else text), close


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
        out, start = [], 0
        while True:
            end = buf.find(b"\r\n\r\n", start)
            if end < 0:
                break
            text, close = answer(buf[start:end + 4])
            out.append(text)
            start = end + 4
            if close:
                self.transport.write(b"".join(out))
                self.transport.close()
                self.pending = b""
                return
        if out:
            self.transport.write(b"".join(out))
        buf = buf[start:]
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
