"""A real graphcomms service in a background thread, for tests.

``GraphcommsServer`` runs the same ``Runtime`` and FastAPI app as
``graphcomms serve``, under uvicorn, on 127.0.0.1 and a free port, with its
own event loop in its own thread. A test talks to it over real HTTP (the
Graph SDKs, httpx, a bot under test) and steers the world around the bot
through the emulator's ``/_sim`` surface: ring the bot, act as the caller,
move the virtual clock, read a call's history.

Every method is thread-safe and blocking, so it works the same from a plain
test, an async test or a webhook handler thread. Methods that reach into
the service (``advance``, ``now_ms``, ``drain``) run on the server's loop
through ``asyncio.run_coroutine_threadsafe``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import socket
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import uvicorn

from graphcomms.testing._httpd import free_port, tls_context

if TYPE_CHECKING:
    from graphcomms.runtime import Runtime, Settings

T = TypeVar("T")

TEST_SETTINGS: Mapping[str, Any] = {
    "clock_mode": "virtual",
    "answer_delay_ms": 100,
    "prompt_timeout_s": 2.0,
    "delivery_attempts": 5,
    "delivery_initial_delay_s": 0.02,
    "delivery_max_delay_s": 0.2,
    "delivery_timeout_s": 2.0,
}
"""Settings for tests, over the service's defaults: a virtual clock, a
callee that answers after 100 ms of clock time, fast and few webhook retries,
and a short prompt download bound."""

STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_POLL_S = 0.005
STOP_TIMEOUT_S = 15.0
CALL_TIMEOUT_S = 60.0
"""Bound on one blocking call into the server (an ``advance`` waits for
prompt downloads, which ``prompt_timeout_s`` bounds in turn)."""


class SimRequestFailed(AssertionError):
    """A request to the emulator's control surface was not accepted."""

    def __init__(self, response: httpx.Response) -> None:
        request = response.request
        super().__init__(
            f"{request.method} {request.url.path} answered "
            f"{response.status_code}: {response.text}"
        )
        self.response = response


class CallerControl:
    """The simulated caller of one call: each method queues one action.

    Actions run one after another on the media clock, so ``speak(ms=2000)``
    then ``press("#")`` presses the key after 2 s of clock time. Advance the
    clock for them to happen.
    """

    def __init__(self, server: GraphcommsServer, call_id: str) -> None:
        self._server = server
        self.call_id = call_id

    def __repr__(self) -> str:
        return f"<CallerControl call={self.call_id}>"

    def press(
        self, keys: str, *, tone_ms: int | None = None, gap_ms: int | None = None
    ) -> None:
        """Press DTMF keys (``0-9 * # A-D``), sent in-band as real tones.

        Args:
            keys: The keys, pressed in order.
            tone_ms: How long each key sounds (the service's default if None).
            gap_ms: The pause between two keys of ``keys``.
        """
        self._act(press(keys, tone_ms=tone_ms, gap_ms=gap_ms))

    def speak(self, ms: int | None = None, wav: bytes | None = None) -> None:
        """Speak ``ms`` of the built-in speech sample, or play a WAV file.

        The WAV must be PCM, mono, 16-bit, 16 kHz.
        """
        self._act(speak(ms, wav))

    def silence(self, ms: int) -> None:
        """Stay silent for ``ms`` milliseconds."""
        self._act(silence(ms))

    def hang_up(self) -> None:
        """Hang up once the actions queued before have run."""
        self._act(hang_up())

    def _act(self, action: dict[str, Any]) -> None:
        self._server.sim("POST", f"/_sim/calls/{self.call_id}/caller", json=action)


# caller script steps, in the wire form of /_sim


def press(
    keys: str, *, tone_ms: int | None = None, gap_ms: int | None = None
) -> dict[str, Any]:
    """Return a script step that presses ``keys``."""
    step: dict[str, Any] = {"action": "dtmf", "tones": keys}
    if tone_ms is not None:
        step["toneMs"] = tone_ms
    if gap_ms is not None:
        step["gapMs"] = gap_ms
    return step


def speak(ms: int | None = None, wav: bytes | None = None) -> dict[str, Any]:
    """Return a script step that speaks ``ms`` of speech or the given WAV."""
    if (ms is None) == (wav is None):
        raise ValueError("speak: give either ms or wav")
    if wav is not None:
        return {"action": "speak", "audio": base64.b64encode(wav).decode("ascii")}
    return {"action": "speak", "ms": ms}


def silence(ms: int) -> dict[str, Any]:
    """Return a script step that stays silent for ``ms``."""
    return {"action": "silence", "ms": ms}


def hang_up() -> dict[str, Any]:
    """Return a script step that hangs up."""
    return {"action": "hangup"}


class GraphcommsServer:
    """Run graphcomms in-process on a free port; a context manager.

    Args:
        data_dir: Where the service keeps its SQLite state and recordings.
            Start a second server on the same directory to test a restart.
        **settings: Overrides of ``graphcomms.runtime.Settings`` fields on
            top of ``TEST_SETTINGS`` (e.g. ``prompt_timeout_s=0.5``,
            ``clock_mode="real"``). ``host`` and ``port`` are chosen here.

    Example::

        with GraphcommsServer(tmp_path) as server:
            call_id = server.place_call(receiver.url)
            server.advance(1000)
    """

    def __init__(self, data_dir: Path | str, **settings: Any) -> None:
        from graphcomms.runtime import Settings

        self.settings: Settings = dataclasses.replace(
            Settings(), **{**TEST_SETTINGS, **settings, "data_dir": Path(data_dir)}
        )
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runtime: Runtime | None = None
        self._uvicorn: _Uvicorn | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._http: httpx.Client | None = None

    def __repr__(self) -> str:
        state = "running" if self._http is not None else "stopped"
        return f"<GraphcommsServer {self.settings.base_url} {state}>"

    def __enter__(self) -> GraphcommsServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # lifecycle

    def start(self) -> GraphcommsServer:
        """Start the service and wait until it answers; returns ``self``.

        Raises:
            RuntimeError: The service failed to start.
        """
        if self._thread is not None:
            return self
        sock = free_port(self.settings.host)
        self.settings = dataclasses.replace(
            self.settings, host="127.0.0.1", port=sock.getsockname()[1]
        )
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(
            target=self._serve, args=(sock,), name="graphcomms-server", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(STARTUP_TIMEOUT_S) or self._error is not None:
            self.stop()
            raise RuntimeError(f"graphcomms did not start: {self._error!r}")
        self._http = httpx.Client(
            base_url=self.base_url,
            trust_env=False,
            timeout=CALL_TIMEOUT_S,
            verify=tls_context(),
        )
        return self

    def stop(self) -> None:
        """Stop the service; undelivered notifications stay in the data dir.

        Idempotent.
        """
        http, self._http = self._http, None
        if http is not None:
            http.close()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        server, loop = self._uvicorn, self._loop
        if server is not None and loop is not None:
            server.should_exit = True
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(server.wake)
        thread.join(STOP_TIMEOUT_S)
        if thread.is_alive():
            raise RuntimeError("graphcomms did not stop in time")

    def _serve(self, sock: socket.socket) -> None:
        from graphcomms.api.app import create_app
        from graphcomms.runtime import Runtime

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            self._runtime = Runtime(self.settings)
            config = uvicorn.Config(
                create_app(self._runtime),
                log_config=None,
                access_log=False,
                lifespan="on",
                ws="none",
                timeout_graceful_shutdown=5,
            )
            self._uvicorn = _Uvicorn(config, self._ready)
            loop.run_until_complete(self._uvicorn.serve(sockets=[sock]))
            if not self._uvicorn.started:
                self._error = RuntimeError("uvicorn exited during startup")
        except BaseException as exc:  # SystemExit when the lifespan fails
            self._error = exc
        finally:
            self._ready.set()
            _close(loop)
            sock.close()

    # where it is

    @property
    def base_url(self) -> str:
        """The service root, e.g. ``http://127.0.0.1:54321``."""
        return self.settings.base_url

    def graph_url(self, version: str = "v1.0") -> str:
        """Return the Graph base URL for ``version`` (``v1.0`` or ``beta``)."""
        return f"{self.base_url}/{version}"

    @property
    def http(self) -> httpx.Client:
        """An HTTP client rooted at ``base_url``, for raw requests."""
        if self._http is None:
            raise RuntimeError("the server is not running")
        return self._http

    @property
    def runtime(self) -> Runtime:
        """The service's runtime (an escape hatch).

        It belongs to the server's event loop thread: read or change it only
        from code running on that loop, as ``advance`` and ``drain`` do.
        """
        if self._runtime is None:
            raise RuntimeError("the server is not running")
        return self._runtime

    # the clock and delivery

    def advance(self, ms: int) -> int:
        """Move the virtual clock ``ms`` forward (whole 20 ms ticks).

        Returns:
            The clock time after the move, in milliseconds.
        """
        return self._run(lambda: self.runtime.advance_clock(ms))

    @property
    def now_ms(self) -> int:
        """The service clock's time in milliseconds."""
        return self._run(lambda: _value_of(self.runtime.clock.now_ms))

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until no notification is queued or being delivered.

        Returns:
            True once delivery is idle; False if ``timeout`` passed first
            (for example while a receiver that is down is being retried).
        """
        return self._run(lambda: self.runtime.delivery.drain(timeout), timeout + 5.0)

    def _run(
        self, work: Callable[[], Awaitable[T]], timeout: float = CALL_TIMEOUT_S
    ) -> T:
        """Run ``work()`` on the server's loop and return its result."""
        loop = self._loop
        if loop is None or self._http is None:
            raise RuntimeError("the server is not running")
        if threading.current_thread() is self._thread:
            raise RuntimeError("blocking server calls cannot run on its own loop")
        future = asyncio.run_coroutine_threadsafe(_awaited(work), loop)
        return future.result(timeout)

    # the emulator's control surface, over HTTP

    def sim(
        self, method: str, path: str, *, json: Any = None, expect: int | None = None
    ) -> httpx.Response:
        """Send a request to the control surface; fail unless it succeeded.

        Raises:
            SimRequestFailed: The answer was not 2xx (or not ``expect``).
        """
        response = self.http.request(method, path, json=json)
        ok = response.status_code == expect if expect else response.is_success
        if not ok:
            raise SimRequestFailed(response)
        return response

    def place_call(
        self,
        callback_uri: str,
        *,
        script: Sequence[Mapping[str, Any]] | None = None,
        source: Mapping[str, Any] | None = None,
        version: str = "v1.0",
    ) -> str:
        """Ring the bot with an incoming call; return the call's id.

        The callback gets ``created`` with state ``incoming``; the bot has
        15 s of clock time to answer.

        Args:
            callback_uri: The bot's webhook.
            script: What the caller does once the call is established, as
                steps from ``press``/``speak``/``silence``/``hang_up``.
            source: The caller's participantInfo (a phone number by default).
            version: The API version the call is offered on.
        """
        body: dict[str, Any] = {"callbackUri": callback_uri}
        if script is not None:
            body["script"] = [dict(step) for step in script]
        if source is not None:
            body["source"] = dict(source)
        response = self.sim("POST", f"/{version}/_sim/calls", json=body, expect=201)
        call_id: str = response.json()["id"]
        return call_id

    def caller(self, call_id: str) -> CallerControl:
        """Return the control of the call's simulated caller."""
        return CallerControl(self, call_id)

    def history(self, call_id: str) -> dict[str, Any]:
        """Return the call's whole story: call, operations, notifications."""
        story: dict[str, Any] = self.sim("GET", f"/_sim/calls/{call_id}").json()
        return story

    def heard(self, call_id: str) -> bytes:
        """Return what the call's caller heard so far, as a WAV file."""
        return self.sim("GET", f"/_sim/calls/{call_id}/heard.wav").content


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, told when it is ready and woken at once to stop."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready_event = ready
        self._wake = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self._ready_event.set()

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._wake.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Shut down as uvicorn does, minus its fixed 0.1 s pause.

        uvicorn sleeps 0.1 s after asking connections to close; polling for
        them instead makes each test's teardown that much faster.
        """
        state = getattr(self, "server_state", None)
        if state is None or not hasattr(self, "servers"):
            await super().shutdown(sockets=sockets)
            return
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(state.connections):
            connection.shutdown()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.timeout_graceful_shutdown):
                # uvicorn offers no event for "connections closed"
                while state.connections or state.tasks:  # noqa: ASYNC110
                    await asyncio.sleep(SHUTDOWN_POLL_S)
        for task in list(state.tasks):
            task.cancel()
        for server in self.servers:
            await server.wait_closed()
        await self.lifespan.shutdown()

    def wake(self) -> None:
        """Wake the main loop so it sees ``should_exit`` at once."""
        self._wake.set()


async def _awaited(work: Callable[[], Awaitable[T]]) -> T:
    return await work()


async def _value_of(read: Callable[[], T]) -> T:
    return read()


def _close(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left on ``loop`` and close it."""
    try:
        tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
