"""Outbound HTTP reaches loopback hosts directly, whatever the proxy settings."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from graphcomms.outbound import USER_AGENT, outbound_client


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.headers.get("User-Agent", "").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


async def test_loopback_bypasses_a_configured_proxy(
    local_url: str, monkeypatch: pytest.MonkeyPatch
):
    # a proxy that does not exist: going through it would fail to connect
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    async with outbound_client() as client:
        response = await client.get(local_url)
    assert response.status_code == 200
    assert response.text == USER_AGENT
