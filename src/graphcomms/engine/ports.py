"""What the engine needs from the layers below it, as Protocols.

Real implementations live in ``media``, ``notify`` and ``store``; unit tests
of the engine plug in fakes. The engine calls these synchronously from its
own transitions; anything slow (HTTP, disk sync) happens behind them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from graphcomms.engine.call import Call
from graphcomms.engine.operation import Operation
from graphcomms.media.jobs import (
    MediaListener,
    PromptError,
    PromptSource,
    RecordJob,
    RecordOutcome,
)
from graphcomms.types import CallId, OperationId, Pcm


class MediaPort(Protocol):
    """The media plane as the engine drives it. Every call is non-blocking."""

    def attach(self, call_id: CallId, caller: Any) -> None:
        """Connect ``caller`` (a ``callers`` endpoint) to the call's media."""

    def detach(self, call_id: CallId) -> None:
        """Disconnect the call's media; idempotent."""

    def play(
        self, call_id: CallId, op_id: OperationId, audio: Pcm, *, loop: bool
    ) -> None:
        """Play ``audio`` from the next frame; report ``play_finished`` at its end."""

    def record(self, call_id: CallId, op_id: OperationId, job: RecordJob) -> None:
        """Run a recording; report ``recording_finished`` when it ends by itself."""

    def stop(self, call_id: CallId, op_id: OperationId) -> None:
        """Stop the play or record ``op_id`` within one frame, reporting nothing."""

    def send_tones(
        self, call_id: CallId, op_id: OperationId, keys: str, gap_ms: int
    ) -> None:
        """Send DTMF ``keys`` beside the queue; report ``tones_sent`` at the end."""

    def stop_tones(self, call_id: CallId, op_id: OperationId) -> None:
        """Stop sending ``op_id``'s tones within one frame, reporting nothing."""

    def set_muted(self, call_id: CallId, muted: bool) -> None:
        """Silence (or restore) everything the bot sends on this call."""


class PromptLoader(Protocol):
    """Fetches and validates prompts once per resourceId (or URI)."""

    def load(self, source: PromptSource) -> asyncio.Future[Pcm]:
        """Return a future of the prompt's samples, or of a ``PromptError``."""


class Notifier(Protocol):
    """Turns engine events into commsNotifications for the call's callback."""

    def call_changed(self, call: Call, change_type: str, fields: Sequence[str]) -> None:
        """Notify ``change_type`` of ``call`` carrying ``fields`` (Graph names)."""

    def operation_finished(self, call: Call, op: Operation) -> None:
        """Notify the terminal ``deleted`` of ``op``."""

    def roster_changed(self, call: Call) -> None:
        """Notify the participants roster of ``call`` (mute state)."""


class Store(Protocol):
    """Durable state: calls, operations, recordings. Writes are synchronous."""

    def transaction(self) -> AbstractContextManager[None]:
        """Group the writes inside into one commit."""

    def save_call(self, call: Call) -> None: ...

    def get_call(self, call_id: str) -> Call | None: ...

    def save_operation(self, op: Operation) -> None: ...

    def live_calls(self) -> list[Call]: ...

    def operations_of(self, call_id: CallId) -> list[Operation]: ...

    def all_calls(self) -> Iterator[Call]: ...

    def save_recording(
        self, op_id: str, call_id: str, path: str, token: str, expires_at: float
    ) -> None: ...

    def get_recording(self, op_id: str) -> RecordingInfo | None: ...


class RecordingInfo(Protocol):
    """A stored recording as the engine reads it."""

    @property
    def path(self) -> str: ...

    @property
    def token(self) -> str: ...


__all__ = [
    "MediaListener",
    "MediaPort",
    "Notifier",
    "PromptError",
    "PromptLoader",
    "PromptSource",
    "RecordJob",
    "RecordOutcome",
    "RecordingInfo",
    "Store",
]
