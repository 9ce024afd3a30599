"""An in-process graphcomms for the media benchmarks: engine, media, store.

It is composed from the same parts as ``Runtime`` (Clock, MediaPlane, Engine,
SqliteStore, GraphNotifier, simulated callers) with two edges replaced, so a
figure measures the media plane and the engine rather than the network:

- prompts come from memory (one shared array per prompt, as the prompt cache
  hands out), and
- rendered notifications are counted instead of POSTed (benchmark 5 measures
  delivery).

Calls are placed with ``Engine.create_call`` and given work with the
engine's public methods; callers are scripted with ``Engine.caller_action``.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graphcomms.callers.simulated import CallerAction, speech_for
from graphcomms.clock import Clock
from graphcomms.engine.engine import Engine, EngineSettings, NewCall
from graphcomms.engine.operation import ApiVersion, PromptSource, RecordSettings
from graphcomms.media.plane import MediaPlane
from graphcomms.notify.notifier import GraphNotifier
from graphcomms.store.sqlite import SqliteStore

PROMPT_URI = "http://127.0.0.1:9/prompt.wav"
CALLBACK_URI = "http://127.0.0.1:9/callback"


def sine(ms: int, freq_hz: int = 440, amplitude: int = 6000) -> np.ndarray:
    """Return a read-only sine of ``ms`` milliseconds, 16 kHz int16."""
    t = np.arange(ms * 16) / 16_000
    pcm = (amplitude * np.sin(2 * np.pi * freq_hz * t + 0.3)).astype(np.int16)
    pcm.flags.writeable = False
    return pcm


class MemoryPrompts:
    """The engine's PromptLoader, from memory: every load is a cache hit."""

    def __init__(self, audio: dict[str, np.ndarray]) -> None:
        self.audio = audio

    def load(self, source: PromptSource) -> asyncio.Future[Any]:
        """Return a finished future of the prompt's samples."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(self.audio[source.uri])
        return future


@dataclass
class CountingOutbox:
    """Where GraphNotifier's payloads go: counted, not sent."""

    count: int = 0

    def enqueue(self, call_id: str, url: str, payload: dict[str, object]) -> int:
        """Count one notification."""
        self.count += 1
        return self.count


class World:
    """One engine and media plane on a clock, with its own SQLite file."""

    def __init__(
        self, data_dir: Path | None = None, *, prompt_ms: int = 10_000
    ) -> None:
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="graphcomms-world-"))
        self.clock = Clock()
        self.media = MediaPlane(self.clock)
        self.store = SqliteStore(self.data_dir / "graphcomms.db")
        self.outbox = CountingOutbox()
        self.prompts = MemoryPrompts(
            {
                PROMPT_URI: sine(prompt_ms),
                PROMPT_URI + "?short": sine(2_000, 523),
            }
        )
        self.engine = Engine(
            clock=self.clock,
            media=self.media,
            prompts=self.prompts,
            notifier=GraphNotifier(self.outbox),
            store=self.store,
            settings=EngineSettings(
                recordings_dir=self.data_dir / "recordings", answer_delay_ms=20
            ),
        )
        self.media.listener = self.engine
        self.call_ids: list[str] = []

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def place_calls(self, n: int) -> list[str]:
        """Place ``n`` outgoing calls; they are established 20 ms of clock later."""
        spec = NewCall(callback_uri=CALLBACK_URI, api_version=ApiVersion.V1)
        ids = [str(self.engine.create_call(spec).id) for _ in range(n)]
        self.call_ids.extend(ids)
        return ids

    def play(self, call_id: str, *, loop: bool = True, uri: str = PROMPT_URI) -> None:
        """Queue a prompt on the call (looping by default, so it never ends)."""
        self.engine.play_prompt(
            call_id,
            (PromptSource(uri=uri, resource_id=uri),),
            client_context=None,
            loop=loop,
            api_version=ApiVersion.BETA,
        )

    def record(self, call_id: str, *, max_s: int = 3600, stop_tones: str = "#") -> None:
        """Queue a recording that runs until ``max_s`` or a stop tone."""
        self.engine.record_response(
            call_id,
            RecordSettings(
                play_beep=True,
                initial_silence_timeout_s=max_s,
                max_silence_timeout_s=max_s,
                max_record_duration_s=max_s,
                stop_tones=tuple(stop_tones),
            ),
            client_context=None,
            api_version=ApiVersion.V1,
        )

    def talkative_callers(self, ids: list[str], seconds: float, seed: int = 1) -> None:
        """Script each caller: speech, a key press, a pause, over and over.

        Callers start at random offsets, so key presses are spread over ticks.
        All callers speak the same shared 3 s of speech (no copy per caller).
        """
        speech = speech_for(3000)
        speech.flags.writeable = False
        rng = random.Random(seed)
        rounds = int(seconds / 3.5) + 2
        for call_id in ids:
            self.engine.caller_action(
                call_id, CallerAction("silence", ms=rng.randrange(20, 3500, 20))
            )
            for _ in range(rounds):
                self.engine.caller_action(call_id, CallerAction("speak", audio=speech))
                self.engine.caller_action(call_id, CallerAction("dtmf", keys="5"))
                self.engine.caller_action(call_id, CallerAction("silence", ms=400))

    def load(self, n: int, seconds: float, record_share: float = 0.1) -> None:
        """Give ``n`` established calls the capacity workload.

        Every call: a looping prompt and a talkative caller (tone detection
        and speech detection run on its audio); ``record_share`` of them
        record instead of playing.
        """
        ids = self.call_ids[-n:]
        recorders = int(n * record_share)
        for index, call_id in enumerate(ids):
            if index < recorders:
                self.record(call_id)
            else:
                self.play(call_id)
        self.talkative_callers(ids, seconds)


async def settle(ticks: int = 2) -> None:
    """Let callbacks scheduled by engine calls run (prompt futures)."""
    for _ in range(ticks):
        await asyncio.sleep(0)
