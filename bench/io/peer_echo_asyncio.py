#!/usr/bin/env python3
"""peer_echo_asyncio.py — TCP echo server on Python's asyncio (stdlib only, the
default event loop, an asyncio.Protocol).

    peer_echo_asyncio.py PORT    listens on 127.0.0.1:PORT until SIGTERM/SIGINT

Whatever one read brings is written straight back; reading pauses while the
transport's write buffer is over its high mark.  The server loop and the
backpressure are peer_http_asyncio.py's.
"""
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from peer_http_asyncio import Backpressure, serve  # noqa: E402


class Echo(Backpressure):
    def data_received(self, data):
        self.transport.write(data)


if __name__ == "__main__":
    serve(Echo)
