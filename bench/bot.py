"""The bot's side of a benchmark: a webhook receiver and a prompt host.

One small HTTP/1.1 server (keep-alive, Content-Length bodies, nothing else)
so that the receiving end costs next to nothing and never limits a figure:

- ``POST <any other path>``: a commsNotifications webhook. Its arrival time
  (``time.monotonic()``, comparable across processes) is kept with what each
  notification is about; answered 202.
- ``GET /prompt/<ms>.wav``: a prompt of ``<ms>`` milliseconds, a steady sine
  (no frame of it is silent, so silence in what a caller hears marks a stop).
- ``GET /_receipts?since=K``: the receipts from index K on, as JSON rows
  ``[t, resourceUrl, changeType, odataType, status, enqueuedAt]``.
- ``GET /_count``, ``POST /_reset``, ``GET /health``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import time
import wave
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

SAMPLE_RATE_HZ = 16_000
MAX_PROMPT_MS = 600_000

_receipts: list[list[Any]] = []
_prompts: dict[tuple[int, int], bytes] = {}


def prompt_wav(ms: int, freq_hz: int = 440) -> bytes:
    """Return a WAV (16 kHz mono 16-bit) of a sine, ``ms`` long."""
    key = (ms, freq_hz)
    if key not in _prompts:
        t = np.arange(ms * SAMPLE_RATE_HZ // 1000) / SAMPLE_RATE_HZ
        # a sine offset from zero phase never gives a frame of all zeros
        samples = (6000 * np.sin(2 * np.pi * freq_hz * t + 0.3)).astype("<i2")
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE_HZ)
            out.writeframes(samples.tobytes())
        _prompts[key] = buffer.getvalue()
    return _prompts[key]


def keep(body: bytes, arrived: float) -> None:
    """Keep one receipt per notification in a commsNotifications body."""
    try:
        payload = json.loads(body)
    except ValueError:
        _receipts.append([arrived, "?", "?", "?", None, None])
        return
    enqueued = payload.get("benchEnqueuedAt")
    for item in payload.get("value", ()):
        data = item.get("resourceData") or {}
        _receipts.append(
            [
                arrived,
                item.get("resourceUrl"),
                item.get("changeType"),
                data.get("@odata.type") if isinstance(data, dict) else None,
                data.get("status") if isinstance(data, dict) else None,
                enqueued,
            ]
        )


def respond(status: int, body: bytes = b"", kind: str = "application/json") -> bytes:
    """Return a whole HTTP/1.1 response."""
    reason = {200: "OK", 202: "Accepted", 404: "Not Found"}.get(status, "")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def route(method: str, target: str, body: bytes, arrived: float) -> bytes:
    """Answer one request."""
    url = urlsplit(target)
    path = url.path
    if method == "POST" and not path.startswith("/_"):
        keep(body, arrived)
        return respond(202)
    if method == "GET" and path.startswith("/prompt/") and path.endswith(".wav"):
        try:
            ms = int(path[len("/prompt/") : -len(".wav")])
        except ValueError:
            return respond(404)
        query = parse_qs(url.query)
        freq_hz = int(query.get("freq", ["440"])[0])
        return respond(200, prompt_wav(min(ms, MAX_PROMPT_MS), freq_hz), "audio/wav")
    if method == "GET" and path == "/_receipts":
        since = int(parse_qs(url.query).get("since", ["0"])[0])
        return respond(200, json.dumps(_receipts[since:]).encode())
    if method == "GET" and path == "/_count":
        return respond(200, json.dumps({"count": len(_receipts)}).encode())
    if method == "POST" and path == "/_reset":
        _receipts.clear()
        return respond(200, b"{}")
    if method == "GET" and path == "/health":
        return respond(200, b'{"status":"ok"}')
    return respond(404)


async def serve_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Answer requests on one keep-alive connection until it closes."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                if line[:15].lower() == "content-length:":
                    length = int(line[15:].strip())
            body = await reader.readexactly(length) if length else b""
            arrived = time.monotonic()
            writer.write(route(method, target, body, arrived))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    """Serve on 127.0.0.1:port until killed."""
    server = await asyncio.start_server(
        serve_connection, "127.0.0.1", port, backlog=1024
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(args.port))
    else:
        uvloop.run(main(args.port))
