"""A call: its state, its parties and its media settings."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from graphcomms.engine.operation import ApiVersion, PromptSource, ResultInfo
from graphcomms.types import CallId


class CallState(enum.StrEnum):
    """Graph's callState values that graphcomms reaches."""

    INCOMING = "incoming"
    ESTABLISHING = "establishing"
    ESTABLISHED = "established"
    TERMINATING = "terminating"
    TERMINATED = "terminated"

    @property
    def live(self) -> bool:
        """Return whether the call still exists for the Graph API."""
        return self not in (CallState.TERMINATING, CallState.TERMINATED)


class Direction(enum.StrEnum):
    """Who placed the call."""

    INCOMING = "incoming"
    OUTGOING = "outgoing"


class MediaMode(enum.StrEnum):
    """Who hosts the call's media; IVR actions need service-hosted media."""

    SERVICE_HOSTED = "serviceHosted"
    APP_HOSTED = "appHosted"


# call end reasons (Graph's end-code table, v1.0 call-delete)
ENDED_BY_BOT = ResultInfo(200, 7000, "The conversation has ended by bot.")
ENDED_BY_PEER = ResultInfo(200, 4097, "The call was ended by the other participant.")
REJECTED = ResultInfo(200, 7000, "The call was rejected by the bot.")
REDIRECTED = ResultInfo(200, 7000, "The call was redirected by the bot.")
NOT_ANSWERED = ResultInfo(408, 1106, "Call acceptance acknowledgement timed out.")
KEEP_ALIVE_TIMEOUT = ResultInfo(408, 8537, "Keep Alive timeout, the call was ended.")
SERVICE_RESTARTED = ResultInfo(
    500, 9999, "The call was ended because the graphcomms service restarted."
)


@dataclass(slots=True)
class Call:
    """One call leg between the bot and a caller."""

    id: CallId
    direction: Direction
    api_version: ApiVersion
    callback_uri: str
    state: CallState = CallState.ESTABLISHING
    media_mode: MediaMode = MediaMode.SERVICE_HOSTED
    source: dict[str, Any] | None = None
    targets: list[dict[str, Any]] = field(default_factory=list)
    requested_modalities: list[str] = field(default_factory=lambda: ["audio"])
    subject: str | None = None
    tenant_id: str | None = None
    my_participant_id: str = ""
    call_chain_id: str = ""
    prefetch: tuple[PromptSource, ...] = ()
    result_info: ResultInfo | None = None
    tone_subscribed: bool = False
    tone_sequence: int = 0
    last_tone: str | None = None
    muted: bool = False
    recording_status: str | None = None
    created_ms: int = 0
    ended_ms: int | None = None
    history: list[tuple[int, str]] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"<Call id={self.id} {self.direction.value} {self.state.value}>"

    def note(self, now_ms: int, what: str) -> None:
        """Append a line to this call's history."""
        self.history.append((now_ms, what))
