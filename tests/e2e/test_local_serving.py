"""Serving on a socket bound beforehand: kept-alive responses must not stall.

asyncio sets TCP_NODELAY only on accepted sockets whose listening socket was
made with ``proto=IPPROTO_TCP``; ``socket.socket(AF_INET, SOCK_STREAM)`` has
proto 0. Without TCP_NODELAY, uvicorn's two writes per response (head, then
body) meet Nagle's algorithm and the client's delayed ACK, and every response
on a kept-alive connection waits about 40 ms.
"""

from __future__ import annotations

import socket

from graphcomms.demo.serving import free_socket


def test_free_socket_is_tcp_so_asyncio_sets_nodelay() -> None:
    sock = free_socket()
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
