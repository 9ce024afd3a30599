"""Request bodies of the Graph calling actions, validated as Graph does.

Every body is a pydantic model with Graph's camelCase names. The rules are
the same for all of them:

- Unknown properties are ignored, and so are mis-cased ones: Graph names are
  case-sensitive, so ``resourceid`` is not ``resourceId`` (BL-07).
- Types are strict: a string where an integer belongs, or ``1`` where a
  boolean belongs, is a 400, never a silent conversion.
- The documented limits hold: 1..20 prompts for playPrompt, at most 1 for
  recordResponse, clientContext up to 256 characters, timeouts 1..120 s.
- An explicit ``null`` on an optional property means "not given".

v1.0 and beta differ only where Graph's schemas do: beta's playPrompt has a
request-level ``loop`` (Boolean) and honours the 2018 per-prompt ``loop``
(Int32, 0 = forever); on v1.0 both are unknown properties, so a prompt plays
once (BL-10).

``parse_body`` turns raw bytes into a model and raises ``InvalidRequest``
with a message that names the property and the problem.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
)
from pydantic.alias_generators import to_camel

from graphcomms.engine.call import MediaMode
from graphcomms.engine.engine import NewCall
from graphcomms.engine.operation import ApiVersion, PromptSource, RecordSettings
from graphcomms.errors import InvalidRequest
from graphcomms.graph.tones import TONE_NAMES, key_of

# limits, as documented (and ours where Graph documents none)
CLIENT_CONTEXT_MAX_CHARS = 256
PLAY_PROMPTS_MAX = 20
RECORD_PROMPTS_MAX = 1
TIMEOUT_S_MIN = 1
TIMEOUT_S_MAX = 120
LEGACY_RECORD_DURATION_S_MAX = 300
"""The 2018 beta ``record`` allowed recordings of up to 5 minutes."""
STOP_TONES_MAX = 16
DTMF_TONES_MAX = 100
"""Ours: tones per sendDtmfTones request (Graph documents no bound)."""
DTMF_DELAY_MS_MAX = 10_000
"""Ours: the longest delayBetweenTonesMs accepted (Graph documents none)."""
DTMF_DELAY_MS_DEFAULT = 100
"""Ours: the delay used when delayBetweenTonesMs is absent."""
REDIRECT_TARGETS_MAX = 25
REDIRECT_TIMEOUT_S_MIN = 15
REDIRECT_TIMEOUT_S_MAX = 90
ERRORS_REPORTED_MAX = 5

MODALITIES = ("unknown", "audio", "video", "videoBasedScreenSharing", "data")
REJECT_REASONS = ("none", "busy", "forbidden")
RECORDING_STATUSES = ("notRecording", "recording", "failed")


# -- value types ----------------------------------------------------------------


def _one_of(values: Sequence[str]) -> Callable[[object], str]:
    """Return a validator that maps a string to its canonical spelling.

    Graph's enum values are camelCase, but its docs capitalise some of them
    (``Busy``) and SDKs may send ``Running``; matching ignores case.
    """
    canonical = {value.lower(): value for value in values}

    def check(value: object) -> str:
        if not isinstance(value, str):
            raise ValueError("must be a string")
        try:
            return canonical[value.lower()]
        except KeyError:
            raise ValueError(f"must be one of: {', '.join(values)}") from None

    return check


def _absolute_uri(value: str) -> str:
    parts = urlsplit(value)
    if not parts.scheme or not parts.netloc:
        raise ValueError("must be an absolute URI, e.g. https://host/path")
    return value


def _http_uri(value: str) -> str:
    _absolute_uri(value)
    if urlsplit(value).scheme.lower() not in ("http", "https"):
        raise ValueError("must be an http or https URI")
    return value


def _stop_tone_key(value: str) -> str:
    key = key_of(value)
    if key is None:
        raise ValueError("must be a DTMF key: 0-9, *, #, A-D (or tone0, pound...)")
    return key


ClientContext = Annotated[str, Field(max_length=CLIENT_CONTEXT_MAX_CHARS)]
AbsoluteUri = Annotated[str, AfterValidator(_absolute_uri)]
CallbackUri = Annotated[str, AfterValidator(_http_uri)]
TimeoutSeconds = Annotated[int, Field(ge=TIMEOUT_S_MIN, le=TIMEOUT_S_MAX)]
Tone = Annotated[str, PlainValidator(_one_of(TONE_NAMES))]
StopTone = Annotated[str, AfterValidator(_stop_tone_key)]
Modality = Annotated[str, PlainValidator(_one_of(MODALITIES))]
StopTones = Annotated[list[StopTone], Field(max_length=STOP_TONES_MAX)]
DtmfDelayMs = Annotated[int, Field(ge=0, le=DTMF_DELAY_MS_MAX)]
LegacyDurationSeconds = Annotated[
    int, Field(ge=TIMEOUT_S_MIN, le=LEGACY_RECORD_DURATION_S_MAX)
]
RedirectTimeoutSeconds = Annotated[
    int, Field(ge=REDIRECT_TIMEOUT_S_MIN, le=REDIRECT_TIMEOUT_S_MAX)
]
JsonObject = dict[str, Any]


class GraphBody(BaseModel):
    """Base of every request body: camelCase, strict, unknown keys ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        extra="ignore",
        strict=True,
        frozen=True,
    )


# -- media ----------------------------------------------------------------------


class MediaInfo(GraphBody):
    """Graph's mediaInfo: where a prompt is, and the key it is cached by."""

    uri: AbsoluteUri
    resource_id: str | None = None

    def to_source(self, loop: int = 1) -> PromptSource:
        """Return the engine's view of this media, played ``loop`` times."""
        return PromptSource(uri=self.uri, resource_id=self.resource_id, loop=loop)


class MediaPrompt(GraphBody):
    """v1.0 mediaPrompt: media info only; a ``loop`` on it is ignored (BL-10)."""

    odata_type: Literal["#microsoft.graph.mediaPrompt"] | None = Field(
        default=None, alias="@odata.type"
    )
    media_info: MediaInfo

    def to_source(self) -> PromptSource:
        """Return the prompt for the engine, played once."""
        return self.media_info.to_source()


class BetaMediaPrompt(MediaPrompt):
    """Beta mediaPrompt, which keeps the 2018 ``loop``: plays, 0 = forever."""

    loop: Annotated[int, Field(ge=0, le=INT32_MAX)] | None = None

    def to_source(self) -> PromptSource:
        """Return the prompt for the engine, played ``loop`` times (default 1)."""
        return self.media_info.to_source(1 if self.loop is None else self.loop)


class ServiceHostedMediaConfig(GraphBody):
    """serviceHostedMediaConfig: Graph hosts the media; IVR actions work."""

    odata_type: Literal["#microsoft.graph.serviceHostedMediaConfig"] = Field(
        alias="@odata.type"
    )
    pre_fetch_media: list[MediaInfo] | None = None


class AppHostedMediaConfig(GraphBody):
    """appHostedMediaConfig: the bot hosts the media; no IVR actions."""

    odata_type: Literal["#microsoft.graph.appHostedMediaConfig"] = Field(
        alias="@odata.type"
    )
    blob: str | None = None


MediaConfig = Annotated[
    ServiceHostedMediaConfig | AppHostedMediaConfig,
    Field(discriminator="odata_type"),
]


def media_mode_of(config: ServiceHostedMediaConfig | AppHostedMediaConfig) -> MediaMode:
    """Return who hosts the media under ``config``."""
    if isinstance(config, AppHostedMediaConfig):
        return MediaMode.APP_HOSTED
    return MediaMode.SERVICE_HOSTED


def prefetch_of(
    config: ServiceHostedMediaConfig | AppHostedMediaConfig,
) -> tuple[PromptSource, ...]:
    """Return the media to fetch in advance (``preFetchMedia``), if any."""
    if isinstance(config, AppHostedMediaConfig) or not config.pre_fetch_media:
        return ()
    return tuple(info.to_source() for info in config.pre_fetch_media)


# -- call lifecycle -------------------------------------------------------------


class CreateCallRequest(GraphBody):
    """POST /communications/calls: an outgoing call."""

    odata_type: Literal["#microsoft.graph.call"] | None = Field(
        default=None, alias="@odata.type"
    )
    callback_uri: CallbackUri
    targets: Annotated[list[JsonObject], Field(min_length=1)]
    source: JsonObject | None = None
    requested_modalities: list[Modality] | None = None
    media_config: MediaConfig
    subject: str | None = None
    tenant_id: str | None = None

    def to_new_call(self, version: ApiVersion) -> NewCall:
        """Return the engine's request for this call, as made on ``version``."""
        return NewCall(
            callback_uri=self.callback_uri,
            api_version=version,
            targets=list(self.targets),
            source=self.source,
            requested_modalities=list(self.requested_modalities or ["audio"]),
            media_mode=media_mode_of(self.media_config),
            prefetch=prefetch_of(self.media_config),
            subject=self.subject,
            tenant_id=self.tenant_id,
        )


class AnswerRequest(GraphBody):
    """POST .../answer: take an incoming call."""

    callback_uri: CallbackUri | None = None
    accepted_modalities: Annotated[list[Modality], Field(min_length=1)]
    media_config: MediaConfig

    @property
    def media_mode(self) -> MediaMode:
        """Return who hosts the call's media once answered."""
        return media_mode_of(self.media_config)

    @property
    def prefetch(self) -> tuple[PromptSource, ...]:
        """Return the media to fetch in advance."""
        return prefetch_of(self.media_config)


class RejectRequest(GraphBody):
    """POST .../reject: turn an incoming call down."""

    reason: Annotated[str, PlainValidator(_one_of(REJECT_REASONS))] | None = None
    callback_uri: CallbackUri | None = None


class RedirectRequest(GraphBody):
    """POST .../redirect: send an incoming call elsewhere (simulring if many)."""

    targets: Annotated[
        list[JsonObject], Field(min_length=1, max_length=REDIRECT_TARGETS_MAX)
    ]
    timeout: RedirectTimeoutSeconds | None = None
    callback_uri: CallbackUri | None = None


# -- media operations -----------------------------------------------------------


class ClientContextRequest(GraphBody):
    """A body with only ``clientContext``: subscribeToTone, mute, unmute."""

    client_context: ClientContext | None = None


class PlayPromptRequest(GraphBody):
    """v1.0 playPrompt: 1 to 20 prompts, played once each, in order."""

    prompts: Annotated[
        Sequence[MediaPrompt], Field(min_length=1, max_length=PLAY_PROMPTS_MAX)
    ]
    client_context: ClientContext | None = None

    @property
    def loop_forever(self) -> bool:
        """Return whether the prompts repeat until cancelled (never on v1.0)."""
        return False

    def prompt_sources(self) -> tuple[PromptSource, ...]:
        """Return the prompts for the engine, in order."""
        return tuple(prompt.to_source() for prompt in self.prompts)


class BetaPlayPromptRequest(PlayPromptRequest):
    """beta playPrompt: adds ``loop`` (Boolean) and the 2018 per-prompt loop."""

    prompts: Annotated[
        Sequence[BetaMediaPrompt], Field(min_length=1, max_length=PLAY_PROMPTS_MAX)
    ]
    loop: bool | None = None

    @property
    def loop_forever(self) -> bool:
        """Return whether the prompts repeat until cancelled."""
        return bool(self.loop)


RecordPrompts = Annotated[Sequence[MediaPrompt], Field(max_length=RECORD_PROMPTS_MAX)]


class RecordResponseRequest(GraphBody):
    """recordResponse: an optional prompt, a beep, then a short recording.

    A ``loop`` on the prompt is ignored in every version: the prompt before a
    recording plays once.
    """

    prompts: RecordPrompts | None = None
    barge_in_allowed: bool | None = None
    initial_silence_timeout_in_seconds: TimeoutSeconds | None = None
    max_silence_timeout_in_seconds: TimeoutSeconds | None = None
    max_record_duration_in_seconds: TimeoutSeconds | None = None
    play_beep: bool | None = None
    stop_tones: StopTones | None = None
    client_context: ClientContext | None = None

    def to_settings(self) -> RecordSettings:
        """Return the recording settings, with Graph's defaults filled in."""
        defaults = RecordSettings()
        return RecordSettings(
            prompt=self.prompts[0].media_info.to_source() if self.prompts else None,
            barge_in_allowed=_given(self.barge_in_allowed, defaults.barge_in_allowed),
            initial_silence_timeout_s=_given(
                self.initial_silence_timeout_in_seconds,
                defaults.initial_silence_timeout_s,
            ),
            max_silence_timeout_s=_given(
                self.max_silence_timeout_in_seconds, defaults.max_silence_timeout_s
            ),
            max_record_duration_s=_given(
                self.max_record_duration_in_seconds, defaults.max_record_duration_s
            ),
            play_beep=_given(self.play_beep, defaults.play_beep),
            stop_tones=tuple(dict.fromkeys(self.stop_tones or ())),
        )


class LegacyRecordRequest(RecordResponseRequest):
    """The 2018 beta ``record``: recordResponse's body, recordings up to 5 min.

    ``streamWhileRecording`` and ``recordingFormat`` are accepted and ignored.
    """

    max_record_duration_in_seconds: LegacyDurationSeconds | None = None


class SendDtmfTonesRequest(GraphBody):
    """sendDtmfTones: tones by Graph name, sent beside the IVR queue."""

    tones: Annotated[list[Tone], Field(min_length=1, max_length=DTMF_TONES_MAX)]
    delay_between_tones_ms: DtmfDelayMs | None = None
    client_context: ClientContext | None = None

    @property
    def delay_ms(self) -> int:
        """Return the delay between tones, defaulted when absent."""
        return _given(self.delay_between_tones_ms, DTMF_DELAY_MS_DEFAULT)


class CancelMediaProcessingRequest(GraphBody):
    """cancelMediaProcessing: ``clientContext`` and the historic ``all``."""

    client_context: ClientContext | None = None
    all_operations: bool | None = Field(default=None, alias="all")

    @property
    def cancel_all(self) -> bool:
        """Return whether to drop the queue too; absent means yes."""
        return _given(self.all_operations, True)


class UpdateRecordingStatusRequest(GraphBody):
    """updateRecordingStatus: tell Graph whether the bot records."""

    status: Annotated[str, PlainValidator(_one_of(RECORDING_STATUSES))]
    client_context: ClientContext | None = None


# -- parsing --------------------------------------------------------------------

Body = TypeVar("Body", bound=BaseModel)
_T = TypeVar("_T")


def _given(value: _T | None, default: _T) -> _T:
    return default if value is None else value


def parse_body(model: type[Body], raw: bytes) -> Body:
    """Validate a request body; an empty body counts as ``{}``.

    Raises:
        InvalidRequest: The body is not a JSON object, or breaks the model;
            the message names each offending property and its problem.
    """
    data = decode_json_object(raw)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(describe_errors(exc.errors())) from None


INT32_MAX = 2**31 - 1

JSON_DEPTH_MAX = 64
"""The deepest nesting a request body may have; Graph bodies need under 10."""


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range for a JSON number")
    return value


def decode_json_object(raw: bytes) -> JsonObject:
    """Return the JSON object in ``raw`` (``{}`` when empty).

    Raises:
        InvalidRequest: ``raw`` is not UTF-8 JSON, is nested too deeply, or
            holds something other than an object.
    """
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
    except UnicodeDecodeError:
        raise InvalidRequest("The request body is not UTF-8 text.") from None
    except ValueError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}.") from None
    except RecursionError:
        raise InvalidRequest("The request body is nested too deeply.") from None
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "null"
        raise InvalidRequest(f"The request body must be a JSON object, not {kind}.")
    _check_values(data, depth=1)
    return data


def _check_values(value: object, depth: int) -> None:
    """Refuse what parses but cannot be stored: deep nesting, lone surrogates."""
    if depth > JSON_DEPTH_MAX:
        raise InvalidRequest(
            f"The request body is nested deeper than {JSON_DEPTH_MAX} levels."
        )
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_values(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_values(item, depth + 1)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # "\ud800" escapes decode to lone surrogates, which are not text
        raise InvalidRequest(
            "The request body holds a string that is not valid Unicode "
            "(a lone surrogate escape)."
        ) from None


def describe_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    """Return validation errors as one readable line.

    >>> describe_errors([{"loc": ("prompts",), "type": "too_long",
    ...                   "msg": "", "ctx": {"max_length": 20, "actual_length": 21}}])
    'prompts: at most 20 items (got 21).'
    """
    lines = [_describe(error) for error in errors[:ERRORS_REPORTED_MAX]]
    more = len(errors) - ERRORS_REPORTED_MAX
    if more > 0:
        lines.append(f"and {more} more")
    return "; ".join(lines) + "."


def _describe(error: Mapping[str, Any]) -> str:
    where = _location(error.get("loc", ()))
    problem = _problem(str(error.get("type", "")), error.get("ctx") or {})
    problem = problem or str(error.get("msg", "is invalid"))
    return f"{where}: {problem}" if where else problem


def _location(loc: Sequence[int | str]) -> str:
    # FastAPI prefixes "body"/"path"/"query"; Graph clients know property names
    parts = [part for part in loc if part not in ("body",)]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


_PROBLEMS: dict[str, str] = {
    "missing": "is required",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be an array",
    "sequence_str": "must be an array, not a string",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "union_tag_not_found": "needs an @odata.type",
}


def _problem(kind: str, ctx: Mapping[str, Any]) -> str | None:
    if kind in _PROBLEMS:
        return _PROBLEMS[kind]
    if kind == "too_long":
        return f"at most {ctx['max_length']} items (got {ctx['actual_length']})"
    if kind == "too_short":
        return f"at least {ctx['min_length']} item(s)"
    if kind == "string_too_long":
        return f"at most {ctx['max_length']} characters"
    if kind == "string_too_short":
        return f"at least {ctx['min_length']} character(s)"
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}"
    if kind == "literal_error":
        return f"must be {ctx['expected']}"
    if kind == "union_tag_invalid":
        return f"@odata.type {ctx['tag']!r} is not one of {ctx['expected_tags']}"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", "")) or None
    return None
