"""What the media plane is asked to do and reports back: its contract.

The engine drives media with these types; they live here, below the engine,
so that media never imports from the layer above it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from graphcomms.types import CallId, OperationId, Pcm


@dataclass(frozen=True, slots=True)
class PromptSource:
    """Where a prompt's audio comes from: Graph's mediaInfo, plus legacy loop."""

    uri: str
    resource_id: str | None = None
    loop: int = 1
    """How often to play it; 0 means forever (the 2018 beta mediaPrompt.loop)."""


class PromptError(Exception):
    """A prompt could not be used: download failed or format invalid."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        """``"download"`` or ``"format"``."""
        self.detail = detail


class RecordOutcome(enum.StrEnum):
    """How a recording ended by itself."""

    STOP_TONE = "stopTone"
    MAX_DURATION = "maxDuration"
    MAX_SILENCE = "maxSilence"
    INITIAL_SILENCE = "initialSilence"


@dataclass(frozen=True, slots=True)
class RecordJob:
    """What the media plane needs to run a recordResponse."""

    prompt: Pcm | None
    play_beep: bool
    initial_silence_ms: int
    max_silence_ms: int
    max_duration_ms: int
    stop_tones: frozenset[str]


class MediaListener(Protocol):
    """Media events the engine reacts to; called from the media tick."""

    def play_finished(self, call_id: CallId, op_id: OperationId) -> None: ...

    def recording_finished(
        self, call_id: CallId, op_id: OperationId, outcome: RecordOutcome, audio: Pcm
    ) -> None: ...

    def tones_sent(self, call_id: CallId, op_id: OperationId) -> None: ...

    def tone_detected(self, call_id: CallId, key: str) -> None: ...

    def caller_hung_up(self, call_id: CallId) -> None: ...
