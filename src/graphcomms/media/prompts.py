"""Prompt audio: fetched over HTTP once per resourceId (or URI), then cached.

A prompt is keyed by its ``resourceId`` when it has one (compared without
case) and by its URI otherwise, as Graph's mediaInfo documents. Loads of one
key share one download; the decoded samples stay cached, bounded by total
size, for the life of the process. A failed download or an invalid file is
not cached, so the next play of that prompt tries again.

URIs are written to logs and error details without their query string and
user info, which is where storage access tokens (SAS ``sig=``) travel.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable

import httpx

from graphcomms.clock import Clock
from graphcomms.media.jobs import PromptError, PromptSource
from graphcomms.media.wav import WavFormatError, parse_prompt_wav
from graphcomms.outbound import outbound_client
from graphcomms.types import Pcm

logger = logging.getLogger(__name__)

_MAX_REDIRECTS = 5
_SHOWN_URI_CHARS = 300

_CacheKey = tuple[str, str]
"""("id", lower-cased resourceId) or ("uri", URI as given)."""


class _Download:
    """One fetch in flight and the futures handed out for it."""

    __slots__ = ("key", "task", "uri", "waiters")

    def __init__(self, key: _CacheKey, uri: str) -> None:
        self.key = key
        self.uri = uri
        self.waiters: list[asyncio.Future[Pcm]] = []
        self.task: asyncio.Task[object] | None = None


class PromptCache:
    """Fetch, validate and cache prompt audio; the engine's ``PromptLoader``.

    Args:
        max_bytes: Largest prompt file accepted, in bytes (default 20 MiB,
            about 10 minutes of 16 kHz audio). A larger body fails the load
            without being read past the limit.
        timeout_s: Bound on one whole download, connect to last byte, in
            seconds (default 10). It also sets the owned client's connect and
            read timeouts.
        allowed_schemes: URI schemes that may be fetched (default http and
            https); any other scheme fails the load without a request.
        client: The HTTP client to use; left open by ``aclose()``. When
            omitted, the cache owns a client of its own.
        clock: When given, each download is held on it (``Clock.hold``), so
            a virtual clock does not tick while a prompt is being fetched.
        cache_bytes: Bound on the decoded audio kept, in bytes (default
            200 MiB); the least recently used prompts are dropped first.
    """

    def __init__(
        self,
        *,
        max_bytes: int = 20 * 1024 * 1024,
        timeout_s: float = 10.0,
        allowed_schemes: frozenset[str] = frozenset({"http", "https"}),
        client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        cache_bytes: int = 200 * 1024 * 1024,
    ) -> None:
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s
        self._allowed_schemes = frozenset(s.lower() for s in allowed_schemes)
        self._owns_client = client is None
        self._client = client or outbound_client(timeout=httpx.Timeout(timeout_s))
        self._clock = clock
        self._cache_bytes = cache_bytes
        self._cached: OrderedDict[_CacheKey, Pcm] = OrderedDict()
        self._cached_total_bytes = 0
        self._uri_of: dict[_CacheKey, str] = {}
        self._warned: set[tuple[_CacheKey, str]] = set()
        self._downloads: dict[_CacheKey, _Download] = {}
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<PromptCache {state} cached={len(self._cached)} "
            f"bytes={self._cached_total_bytes} downloading={len(self._downloads)}>"
        )

    def load(self, source: PromptSource) -> asyncio.Future[Pcm]:
        """Return a future of the prompt's samples, or of a ``PromptError``.

        Never raises (it needs a running event loop). A cached prompt gives
        a future that is already done; otherwise the future resolves when
        the shared download ends. Each caller gets a future of its own, so
        cancelling it stops nobody else's wait and not the download. The
        samples are read-only, as every call playing the prompt shares them.
        The error's reason is ``"download"`` for a refused URI, a network
        failure, a non-2xx status, a timeout or an oversized body, and
        ``"format"`` for a file that is not a valid Graph prompt.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Pcm] = loop.create_future()
        if self._closed:
            future.set_exception(
                PromptError("download", f"GET {_redact(source.uri)}: cache closed")
            )
            return future
        key = _key_of(source)
        cached = self._cached.get(key)
        if cached is not None:
            self._cached.move_to_end(key)
            self._warn_if_remapped(key, source)
            logger.debug("prompt.cache.hit uri=%s", _redact(self._uri_of[key]))
            future.set_result(cached)
            return future
        download = self._downloads.get(key)
        if download is not None:
            self._warn_if_remapped(key, source)
            download.waiters.append(future)
            return future
        refusal = self._refusal(source.uri)
        if refusal is not None:
            logger.debug("prompt.fetch.failed uri=%s: %s", _redact(source.uri), refusal)
            future.set_exception(PromptError("download", refusal))
            return future
        download = _Download(key, source.uri)
        download.waiters.append(future)
        self._downloads[key] = download
        self._uri_of[key] = source.uri
        task: asyncio.Task[object] = loop.create_task(
            self._run(download), name=f"prompt.fetch {_redact(source.uri)}"
        )
        download.task = task
        if self._clock is not None:
            self._clock.hold(task)
        return future

    def prefetch(self, sources: Iterable[PromptSource]) -> None:
        """Start loading ``sources`` now (serviceHostedMediaConfig.preFetchMedia).

        A failure is logged and dropped: the prompt is fetched again when it
        is played, and fails that operation then.
        """
        for source in sources:
            self.load(source).add_done_callback(_log_prefetch_failure)

    async def aclose(self) -> None:
        """Cancel downloads in flight and close the owned client; idempotent.

        The futures waiting on a cancelled download are cancelled too.
        """
        self._closed = True
        tasks = [d.task for d in self._downloads.values() if d.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if self._owns_client:
            await self._client.aclose()

    def _refusal(self, uri: str) -> str | None:
        """Return why ``uri`` may not be fetched, or None if it may."""
        shown = _redact(uri)
        try:
            url = httpx.URL(uri)
            scheme, host = url.scheme, url.host
        except (httpx.InvalidURL, UnicodeError) as exc:
            # UnicodeError covers host names that IDNA cannot decode
            return f"URI {shown} is malformed: {exc}"
        if not scheme:
            return f"URI {shown} is not absolute"
        if scheme not in self._allowed_schemes:
            allowed = ", ".join(sorted(self._allowed_schemes))
            return (
                f"URI {shown} has scheme {scheme!r}, which is not allowed "
                f"(allowed: {allowed})"
            )
        if not host:
            return f"URI {shown} has no host"
        if url.port is not None and not 0 < url.port < 65536:
            return f"URI {shown} has port {url.port}, which does not exist"
        return None

    async def _run(self, download: _Download) -> None:
        shown = _redact(download.uri)
        logger.debug("prompt.fetch.started uri=%s", shown)
        loop = asyncio.get_running_loop()
        started_s = loop.time()
        try:
            audio = await self._fetch(download.uri, shown)
        except PromptError as exc:
            logger.debug("prompt.fetch.failed uri=%s: %s", shown, exc)
            self._settle(download, error=exc)
        except asyncio.CancelledError:
            logger.debug("prompt.fetch.failed uri=%s: cancelled", shown)
            self._settle(download, cancelled=True)
            raise
        except Exception as exc:
            logger.exception(
                "prompt.fetch.failed uri=%s unexpectedly; its play fails", shown
            )
            error = PromptError("download", f"GET {shown} failed: {exc!r}")
            self._settle(download, error=error)
        else:
            elapsed_ms = (loop.time() - started_s) * 1000
            logger.debug(
                "prompt.fetch.complete uri=%s samples=%d in %.0f ms",
                shown,
                audio.size,
                elapsed_ms,
            )
            self._store(download.key, audio)
            self._settle(download, audio=audio)

    async def _fetch(self, uri: str, shown: str) -> Pcm:
        """Download and validate ``uri``; raise ``PromptError`` on any failure."""
        try:
            async with asyncio.timeout(self._timeout_s):
                body = await self._get(uri, shown)
        except TimeoutError:
            raise PromptError(
                "download", f"GET {shown} timed out after {self._timeout_s:g} s"
            ) from None
        except httpx.TimeoutException as exc:
            raise PromptError("download", f"GET {shown} timed out: {exc}") from exc
        except httpx.ConnectError as exc:
            raise PromptError(
                "download", f"GET {shown} could not connect: {exc}"
            ) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise PromptError(
                "download", f"GET {shown} failed: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            audio = parse_prompt_wav(body)
        except WavFormatError as exc:
            raise PromptError("format", f"{shown}: {exc}") from exc
        audio.flags.writeable = False
        return audio

    async def _get(self, uri: str, shown: str) -> bytes:
        # redirects are followed here, not by httpx, so each hop meets the
        # scheme policy before it is requested
        url = uri
        for _ in range(_MAX_REDIRECTS + 1):
            async with self._client.stream(
                "GET", url, follow_redirects=False
            ) as response:
                next_request = response.next_request
                if next_request is None:
                    return await self._read_body(response, shown)
            url = str(next_request.url)
            refusal = self._refusal(url)
            if refusal is not None:
                raise PromptError("download", f"GET {shown} redirected: {refusal}")
        raise PromptError(
            "download", f"GET {shown} redirected more than {_MAX_REDIRECTS} times"
        )

    async def _read_body(self, response: httpx.Response, shown: str) -> bytes:
        if not response.is_success:
            raise PromptError(
                "download",
                f"GET {shown} returned {response.status_code} "
                f"{response.reason_phrase}".rstrip(),
            )
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise PromptError("download", self._too_large(shown, int(declared)))
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > self._max_bytes:
                raise PromptError("download", self._too_large(shown, None))
        return bytes(body)

    def _too_large(self, shown: str, size_bytes: int | None) -> str:
        size = "more" if size_bytes is None else f"{size_bytes} bytes"
        return f"GET {shown} body is {size} than the {self._max_bytes}-byte limit"

    def _settle(
        self,
        download: _Download,
        *,
        audio: Pcm | None = None,
        error: PromptError | None = None,
        cancelled: bool = False,
    ) -> None:
        """Hand the outcome to every waiter and forget the download."""
        if self._downloads.get(download.key) is download:
            del self._downloads[download.key]
        if download.key not in self._cached:
            self._forget(download.key)
        for waiter in download.waiters:
            if waiter.done():
                continue
            if cancelled:
                waiter.cancel()
            elif error is not None:
                # one instance per waiter, so each await gets its own traceback
                waiter.set_exception(PromptError(error.reason, error.detail))
            elif audio is not None:
                waiter.set_result(audio)

    def _store(self, key: _CacheKey, audio: Pcm) -> None:
        if audio.nbytes > self._cache_bytes:
            logger.debug(
                "prompt.cache.skipped uri=%s: %d bytes exceed the cache",
                _redact(self._uri_of[key]),
                audio.nbytes,
            )
            return
        self._cached[key] = audio
        self._cached_total_bytes += audio.nbytes
        while self._cached_total_bytes > self._cache_bytes:
            old_key, old = self._cached.popitem(last=False)
            self._cached_total_bytes -= old.nbytes
            logger.debug("prompt.cache.evicted uri=%s", _redact(self._uri_of[old_key]))
            self._forget(old_key)

    def _forget(self, key: _CacheKey) -> None:
        """Drop what is known of ``key`` besides its audio."""
        self._uri_of.pop(key, None)
        self._warned = {w for w in self._warned if w[0] != key}

    def _warn_if_remapped(self, key: _CacheKey, source: PromptSource) -> None:
        """Warn, once per new URI, that a resourceId keeps its first URI."""
        known = self._uri_of.get(key)
        if known is None or known == source.uri or (key, source.uri) in self._warned:
            return
        self._warned.add((key, source.uri))
        logger.warning(
            "resourceId %s already maps to URI %s; ignoring URI %s "
            "and playing the cached audio",
            source.resource_id,
            _redact(known),
            _redact(source.uri),
        )


def _key_of(source: PromptSource) -> _CacheKey:
    if source.resource_id:
        return ("id", source.resource_id.lower())
    return ("uri", source.uri)


def _redact(uri: str) -> str:
    """Return ``uri`` without user info, query or fragment: safe to log or report."""
    shown, sep, _ = uri.partition("?")
    shown = shown.partition("#")[0]
    scheme, colons, rest = shown.partition("://")
    if colons:
        authority, slash, path = rest.partition("/")
        shown = f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
    if len(shown) > _SHOWN_URI_CHARS:
        shown = shown[:_SHOWN_URI_CHARS] + "…"
    return shown + ("?…" if sep else "")


def _log_prefetch_failure(future: asyncio.Future[Pcm]) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if error is not None:
        logger.warning(
            "prompt.prefetch.failed: %s; it is fetched again when played", error
        )
