"""A harness for the engine: real clock, media plane and callers; fake edges.

Prompts come from memory, notifications are recorded in order, state lives
in the in-memory store. Time moves only when a test advances it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from graphcomms.clock import Clock, VirtualDriver
from graphcomms.engine.call import Call
from graphcomms.engine.engine import Engine, EngineSettings, NewCall
from graphcomms.engine.operation import ApiVersion, Operation, PromptSource
from graphcomms.engine.ports import PromptError
from graphcomms.media.dtmf import tone_pcm
from graphcomms.media.plane import MediaPlane
from graphcomms.store.memory import MemoryStore
from graphcomms.types import Pcm, ms_to_samples


def prompt_audio(ms: int, freq_hz: int = 440) -> Pcm:
    """Return a test prompt: a quiet sine of ``ms`` milliseconds."""
    t = np.arange(ms_to_samples(ms)) / 16_000
    return (3000 * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


class FakePrompts:
    """Prompts served from memory; some URIs fail as download or format errors."""

    def __init__(self) -> None:
        self.audio: dict[str, Pcm] = {
            "https://prompts.example.test/menu-20s.wav": prompt_audio(20_000),
            "https://prompts.example.test/beep.wav": prompt_audio(500, 1000),
            "https://prompts.example.test/p3200.wav": prompt_audio(3200),
        }
        self.loads: list[str] = []

    def load(self, source: PromptSource) -> asyncio.Future[Pcm]:
        self.loads.append(source.uri)
        future: asyncio.Future[Pcm] = asyncio.get_running_loop().create_future()
        if source.uri in self.audio:
            future.set_result(self.audio[source.uri])
        elif "bad-format" in source.uri:
            future.set_exception(PromptError("format", f"{source.uri} is 8 kHz"))
        else:
            future.set_exception(PromptError("download", f"GET {source.uri}: 404"))
        return future


@dataclass(frozen=True)
class Event:
    """One notification as the engine handed it over."""

    kind: str
    call_id: str
    change_type: str
    fields: tuple[str, ...] = ()
    op_id: str | None = None
    op_kind: str | None = None
    client_context: str | None = None
    status: str | None = None
    code: int | None = None
    subcode: int | None = None
    reason: str | None = None
    state: str | None = None
    tone: str | None = None
    sequence: int | None = None


@dataclass
class RecordingNotifier:
    """Keeps every notification the engine emits, in order."""

    events: list[Event] = field(default_factory=list)

    def call_changed(self, call: Call, change_type: str, fields: Any) -> None:
        self.events.append(
            Event(
                "call",
                call.id,
                change_type,
                tuple(fields),
                state=call.state.value,
                tone=call.last_tone if "toneInfo" in fields else None,
                sequence=call.tone_sequence if "toneInfo" in fields else None,
            )
        )

    def operation_finished(self, call: Call, op: Operation) -> None:
        result = op.result_info
        self.events.append(
            Event(
                "operation",
                call.id,
                "deleted",
                op_id=op.id,
                op_kind=op.kind.value,
                client_context=op.client_context,
                status=op.status.value,
                code=result.code if result else None,
                subcode=result.subcode if result else None,
                reason=op.completion_reason.value if op.completion_reason else None,
            )
        )

    def roster_changed(self, call: Call) -> None:
        self.events.append(Event("roster", call.id, "updated"))

    def ops(self) -> list[Event]:
        """Return the operation notifications."""
        return [e for e in self.events if e.kind == "operation"]

    def tones(self) -> list[Event]:
        """Return the toneInfo updates."""
        return [e for e in self.events if e.tone is not None]


@dataclass
class Harness:
    """An engine on a virtual clock, with everything it talks to."""

    engine: Engine
    clock: Clock
    driver: VirtualDriver
    media: MediaPlane
    notifier: RecordingNotifier
    prompts: FakePrompts
    store: MemoryStore

    async def advance(self, ms: int) -> None:
        """Move the clock forward by ``ms``."""
        await self.driver.advance(ms)

    async def established_call(self, version: ApiVersion = ApiVersion.V1) -> Call:
        """Place an outgoing call and let the simulated callee answer."""
        call = self.engine.create_call(
            NewCall(
                callback_uri="https://bot.example.test/api/calls", api_version=version
            )
        )
        await self.advance(self.engine.settings.answer_delay_ms)
        assert call.state.value == "established"
        return call

    def press(self, call: Call, keys: str) -> None:
        """Make the caller press ``keys`` now (real DTMF audio)."""
        from graphcomms.callers import CallerAction

        self.engine.caller_action(call.id, CallerAction("dtmf", keys=keys))

    def heard(self, call: Call) -> Pcm:
        """Return what the caller heard."""
        audio = self.engine.heard_audio(call.id)
        assert audio is not None
        return audio


def make_harness(tmp_path: Any, **settings: Any) -> Harness:
    """Build a harness; ``settings`` override EngineSettings fields."""
    clock = Clock()
    media = MediaPlane(clock)
    notifier = RecordingNotifier()
    prompts = FakePrompts()
    store = MemoryStore()
    engine = Engine(
        clock=clock,
        media=media,
        prompts=prompts,
        notifier=notifier,
        store=store,
        settings=EngineSettings(recordings_dir=tmp_path / "recordings", **settings),
    )
    media.listener = engine
    return Harness(engine, clock, VirtualDriver(clock), media, notifier, prompts, store)


@pytest.fixture
def harness(tmp_path: Any) -> Harness:
    return make_harness(tmp_path)


def menu(ms: int = 20_000) -> tuple[PromptSource, ...]:
    """Return the prompts of a playPrompt of the 20 s menu."""
    del ms
    return (PromptSource("https://prompts.example.test/menu-20s.wav"),)


__all__ = ["Event", "Harness", "make_harness", "menu", "prompt_audio", "tone_pcm"]
