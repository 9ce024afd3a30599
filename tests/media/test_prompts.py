"""Prompt fetching and caching against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest

from graphcomms.clock import Clock, VirtualDriver
from graphcomms.engine.operation import PromptSource
from graphcomms.engine.ports import PromptError
from graphcomms.media.prompts import PromptCache
from graphcomms.media.wav import wav_bytes

HELLO = (np.sin(np.arange(16_000) / 8) * 8000).astype(np.int16)  # 1 s, 32000 bytes
BYE = (np.arange(8_000) % 200 - 100).astype(np.int16)  # 0.5 s


def foreign_wav(*, channels: int = 1, rate_hz: int = 16_000, bits: int = 16) -> bytes:
    block = channels * bits // 8
    payload = b"\0" * block * 400
    fmt = struct.pack("<HHIIHH", 1, channels, rate_hz, rate_hz * block, block, bits)
    body = b"WAVEfmt " + struct.pack("<I", 16) + fmt
    body += b"data" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


@dataclass
class Route:
    """How the test server answers one path."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    stall: bool = False
    drip_s: float | None = None
    repeat_body: int = 1
    content_length: bool = True


class PromptServer:
    """A minimal HTTP/1.1 server that counts requests per path."""

    def __init__(self) -> None:
        self.routes: dict[str, Route | list[Route]] = {}
        self.hits: Counter[str] = Counter()
        self.bytes_sent: Counter[str] = Counter()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def idle(self) -> None:
        """Wait until every connection has been handled."""
        async with asyncio.timeout(5):
            while self._handlers:
                await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: Any) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ")[1].decode()
            self.hits[path] += 1
            route = self.routes.get(path, Route(404, b"<html>Not Found</html>"))
            if isinstance(route, list):
                route = route[min(self.hits[path], len(route)) - 1]
            await self._answer(path, route, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)

    async def _answer(self, path: str, route: Route, writer: Any) -> None:
        await asyncio.sleep(route.delay_s)
        if route.stall:
            await asyncio.sleep(3600)
        lines = [f"HTTP/1.1 {route.status} X", "Connection: close"]
        if route.content_length:
            lines.append(f"Content-Length: {len(route.body) * route.repeat_body}")
        lines += [f"{k}: {v}" for k, v in route.headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        step = 10 if route.drip_s is not None else 65536
        for _ in range(route.repeat_body):
            for start in range(0, len(route.body), step):
                part = route.body[start : start + step]
                writer.write(part)
                await writer.drain()
                self.bytes_sent[path] += len(part)
                if route.drip_s is not None:
                    await asyncio.sleep(route.drip_s)


@pytest.fixture
async def server() -> AsyncIterator[PromptServer]:
    srv = PromptServer()
    srv.routes.update(
        {
            "/hello.wav": Route(body=wav_bytes(HELLO)),
            "/bye.wav": Route(body=wav_bytes(BYE)),
            "/slow-hello.wav": Route(body=wav_bytes(HELLO), delay_s=0.1),
            "/22k.wav": Route(body=foreign_wav(rate_hz=22_050)),
            "/stereo.wav": Route(body=foreign_wav(channels=2)),
            "/8bit.wav": Route(body=foreign_wav(bits=8)),
            "/song.mp3": Route(body=b"ID3\x04\0\0\0\0\0\x21" + bytes(range(256)) * 8),
            "/stall.wav": Route(stall=True),
            "/drip.wav": Route(body=wav_bytes(HELLO[:800]), drip_s=0.05),
            "/big.wav": Route(body=b"\0" * 65536, repeat_body=16),
            "/big-unsized.wav": Route(
                body=b"\0" * 65536, repeat_body=1024, content_length=False
            ),
            "/flaky.wav": [Route(503), Route(body=wav_bytes(HELLO))],
            "/moved.wav": Route(302, headers={"Location": "/hello.wav"}),
            "/to-file.wav": Route(302, headers={"Location": "file:///etc/passwd"}),
            "/loop.wav": Route(302, headers={"Location": "/loop.wav"}),
        }
    )
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def new_cache() -> AsyncIterator[Callable[..., PromptCache]]:
    made: list[PromptCache] = []

    def make(**options: Any) -> PromptCache:
        cache = PromptCache(**options)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        await cache.aclose()


async def load_error(cache: PromptCache, source: PromptSource) -> PromptError:
    with pytest.raises(PromptError) as caught:
        await cache.load(source)
    return caught.value


async def test_load_valid_prompt_returns_read_only_samples(
    server: PromptServer, new_cache: Callable[..., PromptCache]
) -> None:
    audio = await new_cache().load(PromptSource(server.url("/hello.wav")))
    np.testing.assert_array_equal(audio, HELLO)
    assert not audio.flags.writeable


async def test_load_same_uri_twice_fetches_once(
    server: PromptServer, new_cache: Callable[..., PromptCache]
) -> None:
    cache = new_cache()
    first = await cache.load(PromptSource(server.url("/hello.wav")))
    second_future = cache.load(PromptSource(server.url("/hello.wav")))
    assert second_future.done()
    assert second_future.result() is first
    assert server.hits["/hello.wav"] == 1


async def test_load_same_resource_id_in_any_case_fetches_once(
    server: PromptServer, new_cache: Callable[..., PromptCache]
) -> None:
    cache = new_cache()
    uri = server.url("/hello.wav")
    await cache.load(PromptSource(uri, resource_id="A1B2-C3"))
    await cache.load(PromptSource(uri, resource_id="a1b2-c3"))
    assert server.hits["/hello.wav"] == 1


async def test_load_different_uris_without_resource_id_fetch_each(
    server: PromptServer, new_cache: Callable[..., PromptCache]
) -> None:
    cache = new_cache()
    hello = await cache.load(PromptSource(server.url("/hello.wav")))
    bye = await cache.load(PromptSource(server.url("/bye.wav")))
    np.testing.assert_array_equal(hello, HELLO)
    np.testing.assert_array_equal(bye, BYE)
    assert server.hits == Counter({"/hello.wav": 1, "/bye.wav": 1})


async def test_load_concurrent_same_key_share_one_download(
    server: PromptServer, new_cache: Callable[..., PromptCache]
) -> None:
    cache = new_cache()
    futures = [
        cache.load(PromptSource(server.url("/slow-hello.wav"), resource_id="hello"))
        for _ in range(5)
    ]
    assert len({id(f) for f in futures}) == 5
    results = await asyncio.gather(*futures)
    assert server.hits["/slow-hello.wav"] == 1
    assert all(r is results[0] for r in results)


async def test_load_resource_id_with_new_uri_serves_cached_audio_and_warns_once(
    server: PromptServer,
    new_cache: Callable[..., PromptCache],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """BL-22: a reused resourceId keeps its first URI's audio; say so once."""
    cache = new_cache()
    hello, bye = server.url("/hello.wav"), server.url("/bye.wav")
    await cache.load(PromptSource(hello, resource_id="greeting"))
    with caplog.at_level(logging.WARNING, logger="graphcomms.media.prompts"):
        first = await cache.load(PromptSource(bye, resource_id="GREETING"))
        second = await cache.load(PromptSource(bye, resource_id="greeting"))
    np.testing.assert_array_equal(first, HELLO)
    np.testing.assert_array_equal(second, HELLO)
    assert server.hits["/bye.wav"] == 0
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        f"resourceId GREETING already maps to URI {hello}; ignoring URI {bye} "
        "and playing the cached audio"
    ]


async def test_load_resource_id_with_new_uri_during_download_shares_it(
    server: PromptServer,
    new_cache: Callable[..., PromptCache],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = new_cache()
    first = cache.load(PromptSource(server.url("/slow-hello.wav"), resource_id="g"))
    with caplog.at_level(logging.WARNING, logger="graphcomms.media.prompts"):
        second = cache.load(PromptSource(server.url("/bye.wav"), resource_id="g"))
    np.testing.assert_array_equal(await second, HELLO)
    await first
    assert server.hits["/bye.wav"] == 0
    assert "ignoring URI" in caplog.text


@pytest.mark.parametrize(
    ("path", "fault"),
    [
        ("/22k.wav", "22050 Hz"),
        ("/stereo.wav", "2 channels"),
        ("/8bit.wav", "8-bit"),
        ("/song.mp3", "looks like MP3"),
        ("/missing.wav", "404"),
    ],
)
async def test_load_invalid_prompt_fails_with_reason_and_uri(
    server: PromptServer,
    new_cache: Callable[..., PromptCache],
    path: str,
    fault: str,
) -> None:
    uri = server.url(path)
    error = await load_error(new_cache(), PromptSource(uri))
    assert error.reason == ("download" if path == "/missing.wav" else "format")
    assert uri in error.detail
    assert fault in error.detail


async def test_load_404_names_the_request_and_status(
    server: PromptServer, new_cache: Callable[..., PromptCache]
) -> None:
    uri = server.url("/missing.wav")
    error = await load_error(new_cache(), PromptSource(uri))
    assert error.detail == f"GET {uri} returned 404 X"


@pytest.mark.parametrize("path", ["/missing.wav", "/22k.wav"])
async def test_load_failure_is_not_cached_and_retried(
    server: PromptServer, new_cache: Callable[..., PromptCache], path: str
) -> None:
    cache = new_cache()
    for _ in range(2):
        await load_error(cache, PromptSource(server.url(path), resource_id="r"))
    assert server.hits[path] == 2


async def test_load_after_failed_download_succeeds_when_server_recovers(
    server: PromptServer, new_cache: Callable[..., PromptCache]
) -> None:
    cache = new_cache()
    source = PromptSource(server.url("/flaky.wav"))
    error = await load_error(cache, source)
    assert "returned 503" in error.detail
    np.testing.assert_array_equal(await cache.load(source), HELLO)
    assert server.hits["/flaky.wav"] == 2


async def test_load_stalled_server_times_out_within_bound(
    server: PromptServer, new_cache: Callable[..., PromptCache]
) -> None:
    loop = asyncio.get_running_loop()
    started_s = loop.time()
    error = await load_error(
        new_cache(timeout_s=0.3), PromptSource(server.url("/stall.wav"))
    )
    assert error.reason == "download"
    assert "timed out" in error.detail
    assert loop.time() - started_s < 2


async def test_load_dripping_body_hits_total_timeout(
    server: PromptServer, new_cache: Callable[..., PromptCache]
) -> None:
    """Each read is quick, so only the bound on the whole download stops it."""
    error = await load_error(
        new_cache(timeout_s=0.3), PromptSource(server.url("/drip.wav"))
    )
    assert error.detail == f"GET {server.url('/drip.wav')} timed out after 0.3 s"


async def test_load_declared_oversized_body_fails_unread(
    server: PromptServer, new_cache: Callable[..., PromptCache]
) -> None:
    error = await load_error(
        new_cache(max_bytes=100_000), PromptSource(server.url("/big.wav"))
    )
    assert error.reason == "download"
    assert "1048576 bytes" in error.detail
    assert "100000-byte limit" in error.detail


async def test_load_unsized_oversized_body_stops_reading_past_cap(
    server: PromptServer, new_cache: Callable[..., PromptCache]
) -> None:
    error = await load_error(
        new_cache(max_bytes=100_000), PromptSource(server.url("/big-unsized.wav"))
    )
    assert error.reason == "download"
    assert "more than the 100000-byte limit" in error.detail
    await server.idle()
    assert server.bytes_sent["/big-unsized.wav"] < 65536 * 1024


async def test_load_unresolvable_host_fails_download(
    new_cache: Callable[..., PromptCache],
) -> None:
    uri = "http://unreachable.example.invalid/a.wav"
    error = await load_error(new_cache(timeout_s=5), PromptSource(uri))
    assert error.reason == "download"
    assert uri in error.detail


async def test_load_refused_connection_fails_download(
    new_cache: Callable[..., PromptCache],
) -> None:
    closed = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = closed.sockets[0].getsockname()[1]
    closed.close()
    await closed.wait_closed()
    uri = f"http://127.0.0.1:{port}/a.wav"
    error = await load_error(new_cache(), PromptSource(uri))
    assert error.reason == "download"
    assert f"GET {uri} could not connect" in error.detail


@pytest.mark.parametrize(
    ("uri", "fault"),
    [
        ("file:///etc/passwd", "scheme 'file'"),
        ("ftp://prompts.example.test/a.wav", "scheme 'ftp'"),
        ("http://[::1/a.wav", "malformed"),
        ("hello.wav", "not absolute"),
        ("http:///a.wav", "no host"),
        ("", "not absolute"),
    ],
)
async def test_load_refused_uri_fails_download_without_raising(
    new_cache: Callable[..., PromptCache], uri: str, fault: str
) -> None:
    future = new_cache().load(PromptSource(uri))
    assert future.done()
    error = future.exception()
    assert isinstance(error, PromptError)
    assert error.reason == "download"
    assert fault in error.detail


async def test_load_scheme_outside_allowed_set_is_not_requested(
    server: PromptServer, new_cache: Callable[..., PromptCache]
) -> None:
    cache = new_cache(allowed_schemes=frozenset({"https"}))
    error = await load_error(cache, PromptSource(server.url("/hello.wav")))
    assert "scheme 'http', which is not allowed (allowed: https)" in error.detail
    assert server.hits["/hello.wav"] == 0


async def test_load_redirect_is_followed(
    server: PromptServer, new_cache: Callable[..., PromptCache]
) -> None:
    audio = await new_cache().load(PromptSource(server.url("/moved.wav")))
    np.testing.assert_array_equal(audio, HELLO)
    assert server.hits == Counter({"/moved.wav": 1, "/hello.wav": 1})


async def test_load_redirect_to_refused_scheme_fails_download(
    server: PromptServer, new_cache: Callable[..., PromptCache]
) -> None:
    error = await load_error(new_cache(), PromptSource(server.url("/to-file.wav")))
    assert error.reason == "download"
    assert "redirected" in error.detail
    assert "scheme 'file'" in error.detail


async def test_load_redirect_loop_fails_download(
    server: PromptServer, new_cache: Callable[..., PromptCache]
) -> None:
    error = await load_error(new_cache(), PromptSource(server.url("/loop.wav")))
    assert "redirected more than 5 times" in error.detail
    assert server.hits["/loop.wav"] == 6


async def test_load_query_token_never_reaches_detail_or_logs(
    server: PromptServer,
    new_cache: Callable[..., PromptCache],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SAS tokens in the query string are not logged or reported."""
    uri = server.url("/missing.wav") + "?sv=2024&sig=SECRET"
    with caplog.at_level(logging.DEBUG, logger="graphcomms.media.prompts"):
        error = await load_error(new_cache(), PromptSource(uri))
    assert "SECRET" not in error.detail
    assert error.detail == f"GET {server.url('/missing.wav')}?… returned 404 X"
    assert "prompt.fetch.started" in caplog.text
    assert "prompt.fetch.failed" in caplog.text
    assert "SECRET" not in caplog.text


async def test_load_with_clock_holds_virtual_ticks_until_downloaded(
    server: PromptServer, new_cache: Callable[..., PromptCache]
) -> None:
    clock = Clock()
    driver = VirtualDriver(clock)
    future = new_cache(clock=clock).load(PromptSource(server.url("/slow-hello.wav")))
    assert clock.pending()
    await driver.advance(20)
    assert future.done()
    assert clock.pending() == []


async def test_load_cancelled_by_one_caller_still_serves_the_others(
    server: PromptServer, new_cache: Callable[..., PromptCache]
) -> None:
    cache = new_cache()
    source = PromptSource(server.url("/slow-hello.wav"))
    quitter, stayer = cache.load(source), cache.load(source)
    quitter.cancel()
    np.testing.assert_array_equal(await stayer, HELLO)
    assert cache.load(source).done()
    assert server.hits["/slow-hello.wav"] == 1


async def test_prefetch_then_load_is_served_from_cache(
    server: PromptServer, new_cache: Callable[..., PromptCache]
) -> None:
    cache = new_cache()
    source = PromptSource(server.url("/slow-hello.wav"), resource_id="pre")
    cache.prefetch([source])
    await cache.load(source)
    assert cache.load(source).done()
    assert server.hits["/slow-hello.wav"] == 1


async def test_prefetch_failure_is_logged_and_retried_on_load(
    server: PromptServer,
    new_cache: Callable[..., PromptCache],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = new_cache()
    source = PromptSource(server.url("/flaky.wav"))
    with caplog.at_level(logging.WARNING, logger="graphcomms.media.prompts"):
        cache.prefetch([source])
        await server.idle()
        await asyncio.sleep(0.05)
    assert "prompt.prefetch.failed" in caplog.text
    assert "fetched again when played" in caplog.text
    np.testing.assert_array_equal(await cache.load(source), HELLO)


async def test_cache_over_cache_bytes_evicts_least_recently_used(
    server: PromptServer, new_cache: Callable[..., PromptCache]
) -> None:
    """Two 32000-byte prompts fit in 70000 bytes; a third evicts the LRU one."""
    assert HELLO.nbytes == 32_000
    cache = new_cache(cache_bytes=70_000)
    a, b, c = (PromptSource(server.url("/hello.wav"), resource_id=k) for k in "abc")
    await cache.load(a)
    await cache.load(b)
    await cache.load(a)  # a is now the most recently used
    await cache.load(c)
    assert server.hits["/hello.wav"] == 3
    assert cache.load(a).done()
    assert cache.load(c).done()
    await cache.load(b)
    assert server.hits["/hello.wav"] == 4


async def test_cache_prompt_larger_than_cache_is_served_but_not_kept(
    server: PromptServer, new_cache: Callable[..., PromptCache]
) -> None:
    cache = new_cache(cache_bytes=1_000)
    source = PromptSource(server.url("/hello.wav"))
    for _ in range(2):
        np.testing.assert_array_equal(await cache.load(source), HELLO)
    assert server.hits["/hello.wav"] == 2


async def test_aclose_cancels_waiters_and_later_loads_fail(
    server: PromptServer, new_cache: Callable[..., PromptCache]
) -> None:
    cache = new_cache()
    waiting = cache.load(PromptSource(server.url("/stall.wav")))
    await asyncio.sleep(0.05)
    await cache.aclose()
    assert waiting.cancelled()
    error = await load_error(cache, PromptSource(server.url("/hello.wav")))
    assert "closed" in error.detail
    await cache.aclose()


async def test_aclose_leaves_a_supplied_client_open(
    server: PromptServer, new_cache: Callable[..., PromptCache]
) -> None:
    async with httpx.AsyncClient() as client:
        cache = new_cache(client=client)
        await cache.load(PromptSource(server.url("/hello.wav")))
        await cache.aclose()
        assert not client.is_closed
        response = await client.get(server.url("/bye.wav"))
        assert response.status_code == 200


async def test_prompt_cache_repr_shows_state(
    server: PromptServer, new_cache: Callable[..., PromptCache]
) -> None:
    cache = new_cache()
    await cache.load(PromptSource(server.url("/hello.wav")))
    assert repr(cache) == "<PromptCache open cached=1 bytes=32000 downloading=0>"


async def test_port_out_of_range_fails_as_download_without_request() -> None:
    from graphcomms.media.jobs import PromptError, PromptSource
    from graphcomms.media.prompts import PromptCache

    cache = PromptCache()
    try:
        future = cache.load(PromptSource("http://127.0.0.1:99999/a.wav"))
        error = await asyncio.wait_for(asyncio.shield(future), 5)
    except PromptError as exc:
        error = exc
    finally:
        await cache.aclose()
    assert isinstance(error, PromptError)
    assert error.reason == "download"
    assert "port 99999" in error.detail
