"""A small threaded HTTP server that can go down and come back on its port.

The webhook receiver and the prompt server both need a real listening socket
on 127.0.0.1 that a test can stop and restart without changing its URL, and
whose handler threads never keep a test run alive.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

POLL_INTERVAL_S = 0.02
"""How often the serving loop looks for a shutdown request."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def server_activate(self) -> None:
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Cut every open connection, kept-alive ones included."""
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class HttpThread:
    """Serve one handler class on 127.0.0.1 from a background thread.

    Args:
        handler: The request handler class; it can reach its owner through
            ``self.server.owner``.
        owner: Any object the handler needs (stored on the server).
        host: The address to listen on.
    """

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        owner: object,
        host: str = "127.0.0.1",
    ) -> None:
        self._handler = handler
        self._owner = owner
        self._host = host
        self._port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "up" if self.is_up else "down"
        return f"<HttpThread {self._host}:{self._port} {state}>"

    @property
    def port(self) -> int:
        """The port, fixed by the first ``start()`` and kept across restarts."""
        if not self._port:
            raise RuntimeError("the server has not been started")
        return self._port

    @property
    def is_up(self) -> bool:
        """Whether the socket is listening."""
        return self._server is not None

    def start(self) -> None:
        """Listen and serve; on a restart, on the same port as before."""
        with self._lock:
            if self._server is not None:
                return
            server = _Server((self._host, self._port), self._handler)
            server.owner = self._owner  # type: ignore[attr-defined]
            self._port = server.server_address[1]
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": POLL_INTERVAL_S},
                name=f"graphcomms-testing-http:{self._port}",
                daemon=True,
            )
            self._thread.start()

    def stop(self) -> None:
        """Close the socket, so connections are refused; idempotent."""
        with self._lock:
            server, self._server = self._server, None
            thread, self._thread = self._thread, None
        if server is None:
            return
        server.shutdown()
        # a down server refuses kept-alive connections too, not only new ones
        server.drop_connections()
        server.server_close()
        if thread is not None:
            thread.join()


def free_port(host: str = "127.0.0.1") -> socket.socket:
    """Return a socket bound to a free port on ``host`` (not yet listening).

    The protocol is given explicitly: asyncio sets TCP_NODELAY only on
    sockets whose ``proto`` is TCP, and without it every response on a
    kept-alive connection waits ~40 ms for a delayed ACK.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


@functools.cache
def tls_context() -> ssl.SSLContext:
    """Return one default TLS context for every client this package makes.

    Loading the CA bundle costs about 0.1 s per context; clients that talk
    to 127.0.0.1 over plain HTTP should not pay it on every test.
    """
    return ssl.create_default_context()
