"""Engine objects in Graph's wire form, for v1.0 and beta.

Each function returns a fresh JSON-ready dict that shares nothing mutable
with the engine, so a payload stored in the outbox never changes after the
fact. Property names and enum values are Graph's exactly (camelCase:
``notStarted``, ``operationCanceled``); null-valued properties are written
where Graph's own examples write them (``resultInfo: null`` on a GET call or
a running record operation) and left out where they leave them out.

The two versions share one shape with two exceptions that follow
design.md: ``completionReason`` is written on playPrompt operations in v1.0
too, and the 2018 beta ``record`` operations keep their old field names
(``recordResourceLocation``, ``recordResourceAccessToken``).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Literal

from graphcomms.engine.call import Call, CallState, Direction, MediaMode
from graphcomms.engine.operation import (
    ApiVersion,
    Operation,
    OperationKind,
    PromptSource,
    ResultInfo,
)
from graphcomms.graph.tones import tone_name

JsonObject = dict[str, Any]
ChangeType = Literal["created", "updated", "deleted"]
Roster = Literal["participants"]
PARTICIPANTS: Roster = "participants"
"""The ``resource`` of a roster notification (mute, unmute)."""

GRAPH = "#microsoft.graph."
CALL_FIELDS_ALL = "*"
"""In ``fields``: the whole call, as in an incoming call's ``created``."""

_OPERATION_TYPES: dict[OperationKind, str] = {
    OperationKind.PLAY_PROMPT: "playPromptOperation",
    OperationKind.RECORD: "recordOperation",
    OperationKind.SUBSCRIBE_TO_TONE: "subscribeToToneOperation",
    OperationKind.SEND_DTMF_TONES: "sendDtmfTonesOperation",
    OperationKind.CANCEL_MEDIA_PROCESSING: "cancelMediaProcessingOperation",
    OperationKind.MUTE: "muteParticipantOperation",
    OperationKind.UNMUTE: "unmuteParticipantOperation",
    OperationKind.UPDATE_RECORDING_STATUS: "updateRecordingStatusOperation",
}


def odata_type(name: str) -> str:
    """Return the ``@odata.type`` value of Graph type ``name``."""
    return GRAPH + name


def render_result_info(info: ResultInfo | None) -> JsonObject | None:
    """Return a resultInfo object, or None."""
    if info is None:
        return None
    return {
        "@odata.type": odata_type("resultInfo"),
        "code": info.code,
        "subcode": info.subcode,
        "message": info.message,
    }


# -- calls ----------------------------------------------------------------------


def render_call(call: Call, version: ApiVersion) -> JsonObject:
    """Return the call resource as ``GET /communications/calls/{id}`` shows it.

    The shape is the same in both versions: v1.0's own GET example already
    carries the beta-era nulls (``ringingTimeoutInSeconds``, ``answeredBy``).
    """
    return {
        "@odata.type": odata_type("call"),
        "id": call.id,
        "state": call.state.value,
        "direction": call.direction.value,
        "callbackUri": call.callback_uri,
        "source": copy.deepcopy(call.source),
        "targets": copy.deepcopy(call.targets),
        "requestedModalities": list(call.requested_modalities),
        "mediaConfig": _media_config(call),
        "mediaState": _media_state(call),
        "myParticipantId": call.my_participant_id or None,
        "callChainId": call.call_chain_id or None,
        "tenantId": call.tenant_id,
        "subject": call.subject,
        "resultInfo": render_result_info(call.result_info),
        "toneInfo": _tone_info(call),
        "ringingTimeoutInSeconds": None,
        "answeredBy": None,
        "chatInfo": None,
        "meetingInfo": None,
        "transcription": None,
    }


def _media_config(call: Call) -> JsonObject:
    if call.media_mode is MediaMode.APP_HOSTED:
        return {"@odata.type": odata_type("appHostedMediaConfig"), "blob": None}
    return {
        "@odata.type": odata_type("serviceHostedMediaConfig"),
        "preFetchMedia": [_media_info(source) for source in call.prefetch],
    }


def _media_info(source: PromptSource) -> JsonObject:
    return {
        "@odata.type": odata_type("mediaInfo"),
        "uri": source.uri,
        "resourceId": source.resource_id,
    }


def _media_state(call: Call) -> JsonObject:
    audio = "active" if call.state is CallState.ESTABLISHED else "inactive"
    return {"@odata.type": odata_type("callMediaState"), "audio": audio}


def _tone_info(call: Call) -> JsonObject | None:
    if call.last_tone is None:
        return None
    return {
        "@odata.type": odata_type("toneInfo"),
        "sequenceId": call.tone_sequence,
        "tone": tone_name(call.last_tone),
    }


# -- operations -----------------------------------------------------------------


def render_operation(op: Operation, version: ApiVersion) -> JsonObject:
    """Return the typed commsOperation, as an action's response shows it."""
    body: JsonObject = {
        "@odata.type": odata_type(_OPERATION_TYPES[op.kind]),
        "id": op.id,
        "status": op.status.value,
        "clientContext": op.client_context,
    }
    if op.result_info is not None:
        body["resultInfo"] = render_result_info(op.result_info)
    body.update(_EXTRAS[op.kind](op, version))
    return body


def _completion_reason(op: Operation) -> JsonObject:
    if op.completion_reason is None:
        return {}
    return {"completionReason": op.completion_reason.value}


def _record_extras(op: Operation, version: ApiVersion) -> JsonObject:
    # the doc examples show null while running and "" on a cancelled one
    location: str | None = op.recording_location
    token: str | None = op.recording_access_token
    if op.status.terminal:
        location, token = location or "", token or ""
    names = ("recordingLocation", "recordingAccessToken")
    if op.legacy_record:
        names = ("recordResourceLocation", "recordResourceAccessToken")
    reason = op.completion_reason.value if op.completion_reason else None
    return {
        "resultInfo": render_result_info(op.result_info),
        names[0]: location,
        names[1]: token,
        "completionReason": reason,
    }


def _cancel_extras(op: Operation, version: ApiVersion) -> JsonObject:
    return {"all": True if op.cancel_all is None else op.cancel_all}


def _recording_status_extras(op: Operation, version: ApiVersion) -> JsonObject:
    return {"resultInfo": render_result_info(op.result_info)}


def _no_extras(op: Operation, version: ApiVersion) -> JsonObject:
    return {}


_EXTRAS: dict[OperationKind, Callable[[Operation, ApiVersion], JsonObject]] = {
    OperationKind.PLAY_PROMPT: lambda op, _: _completion_reason(op),
    OperationKind.RECORD: _record_extras,
    OperationKind.SUBSCRIBE_TO_TONE: _no_extras,
    OperationKind.SEND_DTMF_TONES: lambda op, _: _completion_reason(op),
    OperationKind.CANCEL_MEDIA_PROCESSING: _cancel_extras,
    OperationKind.MUTE: _no_extras,
    OperationKind.UNMUTE: _no_extras,
    OperationKind.UPDATE_RECORDING_STATUS: _recording_status_extras,
}


# -- participants ---------------------------------------------------------------


def render_participants(call: Call) -> list[JsonObject]:
    """Return the call's roster: the bot's own participant, then the others."""
    bot, others = _parties(call)
    roster = [_participant(call, call.my_participant_id, bot, muted=call.muted)]
    for index, info in enumerate(others):
        pid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{call.id}/participants/{index}"))
        roster.append(_participant(call, pid, info, muted=False))
    return roster


def _parties(call: Call) -> tuple[JsonObject | None, list[JsonObject]]:
    """Return the bot's participantInfo and the other parties' ones."""
    if call.direction is Direction.OUTGOING:
        return call.source, list(call.targets)
    bot = call.targets[0] if call.targets else None
    return bot, [call.source] if call.source is not None else []


def _participant(
    call: Call, pid: str, info: JsonObject | None, *, muted: bool
) -> JsonObject:
    identity = copy.deepcopy(info.get("identity")) if info else None
    return {
        "@odata.type": odata_type("participant"),
        "@odata.id": f"{_call_url(call)}/participants/{pid}",
        "id": pid,
        "info": {"@odata.type": odata_type("participantInfo"), "identity": identity},
        "isMuted": muted,
        "isInLobby": False,
        "mediaStreams": [
            {
                "@odata.type": odata_type("mediaStream"),
                "mediaType": "audio",
                "label": "main-audio",
                "sourceId": "1",
                "direction": "sendReceive",
                "serverMuted": False,
            }
        ],
        "metadata": None,
    }


# -- notifications --------------------------------------------------------------


def render_notification(
    call: Call,
    change_type: ChangeType,
    resource: Call | Operation | Roster,
    version: ApiVersion,
    *,
    fields: Sequence[str] = (),
) -> JsonObject:
    """Return a one-change ``commsNotifications`` payload for the callback.

    Args:
        call: The call the change belongs to.
        change_type: ``created``, ``updated`` or ``deleted``.
        resource: The call itself, one of its operations, or
            ``PARTICIPANTS`` for its roster.
        version: The API version the call was made or answered on.
        fields: For a call update, the Graph properties that changed;
            ``state`` is always sent, ``"*"`` sends the whole call.
    """
    if isinstance(resource, Operation):
        item = operation_change(call, resource, version, change_type)
    elif isinstance(resource, Call):
        item = call_change(resource, change_type, fields, version)
    else:
        item = roster_change(call, change_type)
    return notifications([item])


def notifications(items: Sequence[JsonObject]) -> JsonObject:
    """Return the ``commsNotifications`` envelope around changes."""
    return {"@odata.type": odata_type("commsNotifications"), "value": list(items)}


def call_change(
    call: Call, change_type: ChangeType, fields: Sequence[str], version: ApiVersion
) -> JsonObject:
    """Return one commsNotification about the call itself.

    ``created`` carries the whole call; ``deleted`` carries the state and
    the resultInfo; an update carries the state and the changed ``fields``.
    """
    whole = render_call(call, version)
    if change_type == "created" or CALL_FIELDS_ALL in fields:
        data = whole
    else:
        wanted = ["@odata.type", "state", *fields]
        if change_type == "deleted":
            wanted.append("resultInfo")
        data = {name: whole[name] for name in dict.fromkeys(wanted) if name in whole}
    url = _call_url(call)
    return _change(change_type, url, _legacy(url), _entity(data, url, call.history))


def operation_change(
    call: Call,
    op: Operation,
    version: ApiVersion,
    change_type: ChangeType = "deleted",
) -> JsonObject:
    """Return a commsNotification about an operation (``deleted`` ends one)."""
    url = f"{_call_url(call)}/operations/{op.id}"
    data = render_operation(op, version)
    return _change(change_type, url, _legacy(url), _entity(data, url, op.history))


def roster_change(call: Call, change_type: ChangeType = "updated") -> JsonObject:
    """Return a commsNotification carrying the call's whole roster."""
    url = f"{_call_url(call)}/participants"
    return _change(change_type, url, _legacy(url), render_participants(call))


def _change(
    change_type: ChangeType, url: str, legacy_url: str, data: object
) -> JsonObject:
    return {
        "@odata.type": odata_type("commsNotification"),
        "changeType": change_type,
        "resourceUrl": url,
        "resource": legacy_url,
        "resourceData": data,
    }


def _entity(data: JsonObject, url: str, history: Sequence[object]) -> JsonObject:
    """Return ``data`` with the entity annotations first, as Graph orders them."""
    odata = data.pop("@odata.type")
    # the etag only needs to grow with each change; history does
    etag = f'W/"{len(history)}"'
    return {"@odata.type": odata, "@odata.id": url, "@odata.etag": etag, **data}


def _call_url(call: Call) -> str:
    return f"/communications/calls/{call.id}"


def _legacy(url: str) -> str:
    return "/app/" + url.removeprefix("/communications/")
