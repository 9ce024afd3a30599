"""Operations on a call: what the bot asked for and how it ended."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from graphcomms.media.jobs import PromptSource as PromptSource
from graphcomms.types import CallId, OperationId


class ApiVersion(enum.StrEnum):
    """The Graph API version a request came in on; it shapes the wire form."""

    V1 = "v1.0"
    BETA = "beta"


class OperationKind(enum.StrEnum):
    """What an operation does; the IVR queue holds only play and record."""

    PLAY_PROMPT = "playPrompt"
    RECORD = "record"
    SUBSCRIBE_TO_TONE = "subscribeToTone"
    SEND_DTMF_TONES = "sendDtmfTones"
    CANCEL_MEDIA_PROCESSING = "cancelMediaProcessing"
    MUTE = "mute"
    UNMUTE = "unmute"
    UPDATE_RECORDING_STATUS = "updateRecordingStatus"

    @property
    def queued(self) -> bool:
        """Return whether operations of this kind join the call's IVR queue."""
        return self in (OperationKind.PLAY_PROMPT, OperationKind.RECORD)


class OperationStatus(enum.StrEnum):
    """commsOperation status, with Graph's wire values."""

    NOT_STARTED = "notStarted"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        """Return whether no further change can follow this status."""
        return self in (OperationStatus.COMPLETED, OperationStatus.FAILED)


class CompletionReason(enum.StrEnum):
    """Why an operation ended; the values are the union of Graph's enums."""

    COMPLETED_SUCCESSFULLY = "completedSuccessfully"
    MEDIA_OPERATION_CANCELED = "mediaOperationCanceled"
    UNKNOWN = "unknown"
    OPERATION_CANCELED = "operationCanceled"
    STOP_TONE_DETECTED = "stopToneDetected"
    MAX_RECORD_DURATION_REACHED = "maxRecordDurationReached"
    INITIAL_SILENCE_TIMEOUT = "initialSilenceTimeout"
    MAX_SILENCE_TIMEOUT = "maxSilenceTimeout"
    PLAY_PROMPT_FAILED = "playPromptFailed"
    PLAY_BEEP_FAILED = "playBeepFailed"
    MEDIA_RECEIVE_TIMEOUT = "mediaReceiveTimeout"
    UNSPECIFIED_ERROR = "unspecifiedError"


@dataclass(frozen=True, slots=True)
class ResultInfo:
    """Graph's resultInfo: an HTTP-class code, a subcode and a message."""

    code: int
    subcode: int
    message: str


# the outcomes the engine reports, by name (codes from the spec's tables)
PLAY_COMPLETED = ResultInfo(200, 0, "Action completed successfully.")
CANCELLED = ResultInfo(400, 8508, "Action failed, the operation was cancelled.")
CALL_TERMINATED = ResultInfo(400, 8528, "Action failed, the call was terminated.")
DOWNLOAD_FAILED = ResultInfo(
    400, 8536, "Action failed, the file could not be downloaded."
)
INVALID_FORMAT = ResultInfo(
    400,
    8535,
    "Action failed, the file format is invalid: it must be WAV, PCM, "
    "mono, 16-bit, 16 kHz.",
)
RECORD_MAX_DURATION = ResultInfo(
    200, 8515, "Action completed, max record duration reached."
)
RECORD_STOP_TONE = ResultInfo(200, 8514, "Action completed, stop tone detected.")
RECORD_MAX_SILENCE = ResultInfo(
    200, 8509, "Action completed, max silence timeout reached."
)
RECORD_INITIAL_SILENCE = ResultInfo(
    400, 8510, "Action failed, initial silence timeout reached."
)
OPERATION_COMPLETED = ResultInfo(200, 0, "Action completed successfully.")
RECORDING_NOT_SAVED = ResultInfo(
    500, 9999, "Action failed, the recording could not be saved."
)


@dataclass(frozen=True, slots=True)
class RecordSettings:
    """recordResponse parameters, defaults as documented."""

    prompt: PromptSource | None = None
    barge_in_allowed: bool = False
    initial_silence_timeout_s: int = 5
    max_silence_timeout_s: int = 5
    max_record_duration_s: int = 5
    play_beep: bool = True
    stop_tones: tuple[str, ...] = ()
    """Keys as characters: "0".."9", "*", "#", "A".."D"."""


@dataclass(slots=True)
class Operation:
    """One commsOperation with its full history."""

    id: OperationId
    call_id: CallId
    kind: OperationKind
    api_version: ApiVersion
    client_context: str | None = None
    status: OperationStatus = OperationStatus.NOT_STARTED
    result_info: ResultInfo | None = None
    completion_reason: CompletionReason | None = None
    created_ms: int = 0
    started_ms: int | None = None
    finished_ms: int | None = None

    # what was asked
    prompts: tuple[PromptSource, ...] = ()
    loop_forever: bool = False
    record: RecordSettings | None = None
    tones: tuple[str, ...] = ()
    delay_between_tones_ms: int = 0
    cancel_all: bool | None = None
    recording_status: str | None = None
    legacy_record: bool = False
    """True for beta's 2018 ``record`` action: old field names, 202 reply."""

    # what came of it
    recording_location: str | None = None
    recording_access_token: str | None = None
    recording_ms: int | None = None
    history: list[tuple[int, str]] = field(default_factory=list)
    """(clock ms, what happened) for the inspection API."""

    def __repr__(self) -> str:
        return f"<Operation {self.kind.value} id={self.id} status={self.status.value}>"

    def note(self, now_ms: int, what: str) -> None:
        """Append a line to this operation's history."""
        self.history.append((now_ms, what))
