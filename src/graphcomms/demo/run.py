"""``graphcomms demo``: the service, an IVR bot and a caller, in one process.

Three parts talk over real HTTP on 127.0.0.1:

- the graphcomms service (Runtime + the FastAPI app), SQLite in a temporary
  data directory;
- the demo bot (``DemoBot``), a webhook app driving the call through
  ``/v1.0``;
- a simulated caller, placed and scripted through ``/_sim``.

In real time the call takes about 22 s. With ``fast`` the service runs on
its virtual clock and the demo moves it 20 ms at a time; before each tick
it waits until the service's outbox is drained, and since the bot answers
each webhook only after its own Graph requests, a drained outbox means the
bot has reacted. The call then takes about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import ssl
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TextIO

import httpx

from graphcomms.api.app import create_app
from graphcomms.demo.bot import CALLBACK_PATH, DemoBot, Session, wav_seconds
from graphcomms.demo.caller import CallerSchedule, ivr_script
from graphcomms.demo.serving import LocalServer, free_socket
from graphcomms.demo.timeline import Event, Timeline, header
from graphcomms.media.levels import beep_pcm
from graphcomms.media.wav import parse_prompt_wav
from graphcomms.runtime import Runtime, Settings
from graphcomms.types import FRAME_MS, samples_to_ms

VIRTUAL_LIMIT_MS = 120_000
"""A fast run gives up when the virtual clock reaches this."""
FAST_WALL_LIMIT_S = 60.0
REAL_WALL_LIMIT_S = 90.0
DRAIN_AT_END_S = 5.0
BOT_HANG_UP = "200/7000"


@dataclass(frozen=True, slots=True)
class DemoResult:
    """How a demo run went.

    Attributes:
        ok: Whether the whole flow completed, hang-up included.
        message: The one-line summary, or where the flow stopped.
        events: The timeline, in order.
        out_dir: Where the files were saved.
        recording: The recording the bot downloaded.
        heard: What the caller heard, as a WAV file.
        call_id: The id of the demo's call.
        wall_s: How long the run took, in seconds of wall time.
    """

    ok: bool
    message: str
    events: list[Event]
    out_dir: Path
    recording: Path | None = None
    heard: Path | None = None
    call_id: str | None = None
    wall_s: float = 0.0


@dataclass(slots=True)
class _Parts:
    runtime: Runtime
    timeline: Timeline
    bot: DemoBot
    client: httpx.AsyncClient
    schedule: CallerSchedule
    out_dir: Path


async def run_demo(
    *, fast: bool = False, out_dir: Path | None = None, out: TextIO | None = None
) -> DemoResult:
    """Play the demo call once and return how it went.

    Args:
        fast: Run on the virtual clock instead of in real time.
        out_dir: Where to save the recording, what the caller heard and the
            timeline (``timeline.json``); a new temporary directory if None.
        out: Where the timeline is printed as it happens; None prints nothing.
    """
    started = time.perf_counter()
    out_dir = _output_dir(out_dir)
    async with _assembled(fast=fast, out_dir=out_dir, out=out) as parts:
        timeline = parts.timeline
        heard: Path | None = None
        try:
            call_id = await _ring(parts)
            stopped = await (_drive_virtual(parts) if fast else _drive_real(parts))
            await parts.runtime.delivery.drain(DRAIN_AT_END_S)
            heard = await _save_heard(parts, call_id) if call_id else None
        except Exception as exc:
            # say where the flow was, then show the failure in full
            traceback.print_exc()
            stopped = f"the run failed unexpectedly ({exc!r})"

    wall_s = time.perf_counter() - started
    session = parts.bot.sessions.get(call_id or "")
    failure = stopped or parts.bot.failure or _incomplete(session)
    if failure is None and session is not None:
        message = _summary(session, timeline, wall_s, fast=fast)
    else:
        message = _where_it_stopped(failure or "no call", parts)
    _write_timeline(out_dir / "timeline.json", timeline.events)
    timeline.print()
    if session is not None and session.recording is not None:
        timeline.print(f"  recording      {session.recording}")
    if heard is not None:
        timeline.print(f"  caller heard   {heard}")
    timeline.print(f"  timeline       {out_dir / 'timeline.json'}")
    timeline.print()
    timeline.print(message)
    return DemoResult(
        ok=failure is None,
        message=message,
        events=list(timeline.events),
        out_dir=out_dir,
        recording=session.recording if session else None,
        heard=heard,
        call_id=call_id,
        wall_s=wall_s,
    )


def main(*, fast: bool, out_dir: Path | None) -> int:
    """Run the demo, printing to stdout; return the process exit code."""
    try:
        result = asyncio.run(run_demo(fast=fast, out_dir=out_dir, out=sys.stdout))
    except KeyboardInterrupt:
        print("graphcomms demo: interrupted", file=sys.stderr)
        return 130
    if not result.ok:
        print(f"graphcomms demo: {result.message}", file=sys.stderr)
        return 1
    return 0


# -- assembly -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _assembled(
    *, fast: bool, out_dir: Path, out: TextIO | None
) -> AsyncIterator[_Parts]:
    """Start the service and the bot; stop both, whatever happens."""
    with tempfile.TemporaryDirectory(prefix="graphcomms-demo-data-") as data_dir:
        service_sock, bot_sock = free_socket(), free_socket()
        settings = Settings(
            data_dir=Path(data_dir),
            port=service_sock.getsockname()[1],
            clock_mode="virtual" if fast else "real",
        )
        runtime = Runtime(settings)
        tls = ssl.create_default_context()
        service = LocalServer(create_app(runtime), service_sock)
        timeline = Timeline(runtime.clock.now_ms, out)
        bot = DemoBot(
            graph_url=f"{service.url}/v1.0",
            prompts_url=f"{service.url}/_sim/sounds",
            callback_url=f"http://127.0.0.1:{bot_sock.getsockname()[1]}"
            + CALLBACK_PATH,
            out_dir=out_dir,
            timeline=timeline,
            tls=tls,
        )
        bot_server = LocalServer(bot.app, bot_sock)
        client = httpx.AsyncClient(
            base_url=service.url, trust_env=False, timeout=10, verify=tls
        )
        parts = _Parts(runtime, timeline, bot, client, _caller_schedule(), out_dir)
        try:
            await service.start()
            await bot_server.start()
            _print_header(parts, service.url, data_dir, fast=fast)
            yield parts
        finally:
            await client.aclose()
            await bot.aclose()
            await asyncio.gather(service.stop(), bot_server.stop())


def _caller_schedule() -> CallerSchedule:
    sounds = resources.files("graphcomms.media").joinpath("sounds")

    def length_ms(name: str) -> int:
        pcm = parse_prompt_wav(sounds.joinpath(f"{name}.wav").read_bytes())
        return samples_to_ms(len(pcm))

    steps = ivr_script(
        welcome_ms=length_ms("welcome"),
        menu_ms=length_ms("menu"),
        billing_ms=length_ms("billing"),
        beep_ms=samples_to_ms(len(beep_pcm())),
    )
    return CallerSchedule(steps)


def _output_dir(out_dir: Path | None) -> Path:
    if out_dir is None:
        return Path(tempfile.mkdtemp(prefix="graphcomms-demo-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir.resolve()


def _print_header(
    parts: _Parts, service_url: str, data_dir: str, *, fast: bool
) -> None:
    timeline = parts.timeline
    mode = "on the virtual clock (--fast)" if fast else "in real time"
    timeline.print(f"graphcomms demo: one IVR call, played {mode}")
    timeline.print(f"  service   {service_url}/v1.0   (data in {data_dir})")
    timeline.print(f"  IVR bot   {parts.bot.callback_url}")
    timeline.print(f"  output    {parts.out_dir}")
    timeline.print()
    timeline.print(header())


# -- the call -------------------------------------------------------------------


async def _ring(parts: _Parts) -> str | None:
    """Place the incoming call, with the caller's script; return its id."""
    parts.timeline.add(
        "caller",
        "caller",
        "rings the bot (POST /_sim/calls)",
        outcome=f"script of {len(parts.schedule.script)} steps",
        name="ring",
    )
    body = {"callbackUri": parts.bot.callback_url, "script": parts.schedule.script}
    response = await parts.client.post("/_sim/calls", json=body)
    if response.status_code != 201:
        parts.timeline.add(
            "caller",
            "note",
            "the call could not be placed",
            outcome=f"{response.status_code} {response.text[:200]}",
        )
        return None
    call_id: str = response.json()["id"]
    return call_id


async def _drive_virtual(parts: _Parts) -> str | None:
    """Tick the virtual clock until the call ends; return why it stopped early."""
    runtime = parts.runtime
    try:
        async with asyncio.timeout(FAST_WALL_LIMIT_S):
            await runtime.delivery.drain()
            while not parts.bot.finished.is_set():
                now_ms = runtime.clock.now_ms()
                if now_ms >= VIRTUAL_LIMIT_MS:
                    return f"the call was not over after {now_ms / 1000:.0f} s"
                # announce what the caller does in the coming tick
                _announce_caller(parts, now_ms + FRAME_MS)
                await runtime.advance_clock(FRAME_MS)
                await runtime.delivery.drain()
    except TimeoutError:
        return f"the fast run took longer than {FAST_WALL_LIMIT_S:.0f} s"
    return None


async def _drive_real(parts: _Parts) -> str | None:
    """Wait, announcing the caller, until the call ends; return why it stopped."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REAL_WALL_LIMIT_S
    while not parts.bot.finished.is_set():
        if loop.time() > deadline:
            return f"the call was not over after {REAL_WALL_LIMIT_S:.0f} s"
        _announce_caller(parts, parts.runtime.clock.now_ms())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(parts.bot.finished.wait(), FRAME_MS / 2000)
    return None


def _announce_caller(parts: _Parts, upto_ms: int) -> None:
    """Print the caller's steps that start by ``upto_ms``."""
    schedule = parts.schedule
    if schedule.established_ms is None:
        established = parts.timeline.first(
            lambda e: e.name == "call" and e.status == "established"
        )
        if established is None:
            return
        schedule.established_ms = established.at_ms
    for at_ms, step in schedule.due(upto_ms):
        parts.timeline.add(
            "caller", "caller", step.says, at_ms=at_ms, name=step.name, tone=step.keys
        )


async def _save_heard(parts: _Parts, call_id: str) -> Path | None:
    """Fetch what the caller heard from the emulator and save it."""
    response = await parts.client.get(f"/_sim/calls/{call_id}/heard.wav")
    if response.status_code != 200:
        return None
    path = parts.out_dir / "heard.wav"
    path.write_bytes(response.content)
    seconds = wav_seconds(response.content)
    parts.timeline.add(
        "caller",
        "file",
        "saved what the caller heard",
        outcome=f"{seconds:.2f} s  (GET /_sim/calls/.../heard.wav)",
        name="heard",
        path=path,
    )
    return path


# -- the verdict ----------------------------------------------------------------


def _incomplete(session: Session | None) -> str | None:
    """Return what is missing from a finished call, or None if nothing is."""
    if session is None:
        return "the bot never got the call"
    if session.recording is None:
        return "no recording was downloaded"
    if len(session.cancelled) < 2:
        return "the cancel did not stop both the running and the queued prompt"
    if session.ended != BOT_HANG_UP:
        return f"the call ended with {session.ended}, not the bot's hang-up"
    return None


def _where_it_stopped(reason: str, parts: _Parts) -> str:
    last = parts.timeline.events[-1].line().strip() if parts.timeline.events else ""
    at = parts.runtime.clock.now_ms() / 1000
    return (
        f"FAILED: {reason}; the bot was {parts.bot.stage} at {at:.3f}s "
        f"(last event: {last})"
    )


def _summary(session: Session, timeline: Timeline, wall_s: float, *, fast: bool) -> str:
    ended = timeline.first(lambda e: e.name == "call" and e.change_type == "deleted")
    call_s = (ended.at_ms if ended else timeline.now_ms()) / 1000
    clock = "virtual" if fast else "real-time"
    return (
        f"OK: answered, key 2 cancelled {len(session.cancelled)} prompts, "
        f"{session.recording_s or 0:.2f} s recorded and downloaded, hung up at "
        f"{call_s:.3f}s on the {clock} clock ({wall_s:.2f} s of wall time)."
    )


def _write_timeline(path: Path, events: list[Event]) -> None:
    rows = [
        {k: (str(v) if isinstance(v, Path) else v) for k, v in row.items()}
        for row in (dataclasses.asdict(event) for event in events)
    ]
    path.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
