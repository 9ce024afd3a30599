"""Serve an ASGI app with uvicorn on 127.0.0.1, at a free port, in this event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

STARTUP_TIMEOUT_S = 10.0


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its host process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def free_socket(host: str = "127.0.0.1") -> socket.socket:
    """Return a TCP socket bound to a free port on ``host``, not yet listening."""
    # IPPROTO_TCP lets asyncio set TCP_NODELAY on accepted connections
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


class LocalServer:
    """One ASGI app served on a socket bound beforehand, so its URL is known first.

    Args:
        app: The ASGI application; its lifespan runs on start and stop.
        sock: A bound socket, e.g. from ``free_socket()``; the server owns it.
    """

    def __init__(self, app: Any, sock: socket.socket) -> None:
        self._sock = sock
        host, port = sock.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        self._server = _QuietServer(config)
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        state = "serving" if self._task and not self._task.done() else "stopped"
        return f"<LocalServer {self.url} {state}>"

    async def start(self) -> None:
        """Start serving; return once the app's startup is complete.

        Raises:
            RuntimeError: The server stopped during startup, or took too long.
        """
        self._task = asyncio.create_task(
            self._server.serve(sockets=[self._sock]), name=f"uvicorn {self.url}"
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT_S
        while not self._server.started:
            if self._task.done() or loop.time() > deadline:
                await self.stop()
                raise RuntimeError(f"the server at {self.url} did not start")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """Stop serving and run the app's shutdown; idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        self._server.should_exit = True
        # a failed startup ends in SystemExit; there is nothing left to stop
        with contextlib.suppress(SystemExit):
            await task
        self._sock.close()
