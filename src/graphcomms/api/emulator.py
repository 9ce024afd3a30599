"""The emulator's control surface under ``/_sim`` (and ``/{version}/_sim``).

What a test or a developer does to the world around the bot: ring it with an
incoming call, act as the caller (keys, speech, silence, hang-up), move a
virtual clock, and look at everything that happened: each call's history,
every operation ever, every notification with each delivery attempt.
Bodies are camelCase JSON like Graph's; errors use Graph's envelope.
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import re
from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import Field
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from graphcomms.api.http import (
    RequestRejected,
    base_url,
    canonical_id,
    read_body,
    runtime_of,
    scope_version,
)
from graphcomms.callers import CallerAction
from graphcomms.engine.call import Call
from graphcomms.engine.engine import NewCall
from graphcomms.engine.operation import Operation
from graphcomms.errors import InvalidRequest
from graphcomms.graph.errors import error_for_status
from graphcomms.graph.render import render_call, render_operation
from graphcomms.graph.requests import (
    CallbackUri,
    GraphBody,
    JsonObject,
    Modality,
    parse_body,
)
from graphcomms.graph.tones import DTMF_KEYS
from graphcomms.media.wav import WavFormatError, parse_prompt_wav, wav_bytes
from graphcomms.notify.faults import FaultPlan
from graphcomms.store.outbox import OutboxEntry
from graphcomms.types import Pcm

router = APIRouter(prefix="/_sim")

CALLER_MS_MAX = 60 * 60 * 1000
"""The longest speech or silence one caller action may ask for (1 hour)."""
CLOCK_ADVANCE_MS_MAX = 60 * 60 * 1000
"""The furthest one request may move the virtual clock (1 hour)."""
SCRIPT_ACTIONS_MAX = 1000
SEQ = re.compile(r"[0-9]{1,18}")
"""A notification's seq as a path segment: ASCII digits within SQLite's range."""

DEFAULT_CALLER: JsonObject = {
    "@odata.type": "#microsoft.graph.participantInfo",
    "identity": {
        "@odata.type": "#microsoft.graph.identitySet",
        "phone": {"@odata.type": "#microsoft.graph.identity", "id": "+15550100100"},
    },
}
DEFAULT_BOT: JsonObject = {
    "@odata.type": "#microsoft.graph.invitationParticipantInfo",
    "identity": {
        "@odata.type": "#microsoft.graph.identitySet",
        "application": {
            "@odata.type": "#microsoft.graph.identity",
            "displayName": "Bot",
            "id": "00000000-0000-0000-0000-000000000000",
        },
    },
}


# -- bodies ---------------------------------------------------------------------


class CallerActionBody(GraphBody):
    """One caller action: ``dtmf`` with ``tones``, ``speak``, ``silence``, ``hangup``.

    ``speak`` takes either ``ms`` (the built-in speech sample, cut to length)
    or ``audio`` (a base64 WAV, PCM mono 16-bit 16 kHz).
    """

    action: Literal["dtmf", "speak", "silence", "hangup"]
    tones: str | None = None
    ms: Annotated[int, Field(ge=1, le=CALLER_MS_MAX)] | None = None
    audio: str | None = None
    tone_ms: Annotated[int, Field(ge=20, le=2000)] | None = None
    gap_ms: Annotated[int, Field(ge=0, le=10_000)] | None = None


class IncomingCallBody(GraphBody):
    """An incoming call to ring the bot with, and its caller's script."""

    callback_uri: CallbackUri
    source: JsonObject | None = None
    targets: list[JsonObject] | None = None
    requested_modalities: list[Modality] | None = None
    subject: str | None = None
    tenant_id: str | None = None
    script: (
        Annotated[list[CallerActionBody], Field(max_length=SCRIPT_ACTIONS_MAX)] | None
    ) = None


Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class FaultsBody(GraphBody):
    """The faults to inject; every field is optional and off by default."""

    seed: int = 0
    delay_ms: Annotated[int, Field(ge=0, le=60_000)] = 0
    reorder: bool = False
    duplicate: Probability = 0.0
    drop: Probability = 0.0
    api_errors: Probability = 0.0


class AdvanceBody(GraphBody):
    """How far to move the virtual clock."""

    ms: Annotated[int, Field(ge=0, le=CLOCK_ADVANCE_MS_MAX)]


def caller_action(body: CallerActionBody) -> CallerAction:
    """Return the engine's caller action for a request body.

    Raises:
        InvalidRequest: A field the action needs is missing or wrong.
    """
    if body.action == "dtmf":
        action = CallerAction("dtmf", keys=_keys(body.tones))
        if body.tone_ms is not None:
            action = dataclasses.replace(action, tone_ms=body.tone_ms)
        if body.gap_ms is not None:
            action = dataclasses.replace(action, gap_ms=body.gap_ms)
        length_ms = len(action.keys) * (action.tone_ms + action.gap_ms)
        if length_ms > CALLER_MS_MAX:
            raise InvalidRequest("tones: the key presses would last over an hour.")
        return action
    if body.action == "speak":
        if body.audio is not None and body.ms is None:
            return CallerAction("speak", audio=_decode_audio(body.audio))
        if body.ms is not None and body.audio is None:
            return CallerAction("speak", ms=body.ms)
        raise InvalidRequest("speak: give either ms or audio (a base64 WAV).")
    if body.action == "silence":
        if body.ms is None:
            raise InvalidRequest("ms: is required for silence.")
        return CallerAction("silence", ms=body.ms)
    return CallerAction("hangup")


def _keys(tones: str | None) -> str:
    if not tones:
        raise InvalidRequest('tones: is required for dtmf, e.g. "12#".')
    keys = tones.upper()
    wrong = sorted({key for key in keys if key not in DTMF_KEYS})
    if wrong:
        raise InvalidRequest(
            f"tones: {''.join(wrong)!r} are not DTMF keys (use 0-9, *, #, A-D)."
        )
    return keys


def _decode_audio(text: str) -> Pcm:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("audio: is not valid base64.") from None
    try:
        return parse_prompt_wav(data)
    except WavFormatError as exc:
        raise InvalidRequest(f"audio: {exc}.") from None


# -- calls ----------------------------------------------------------------------


@router.post("/calls")
async def place_incoming_call(request: Request) -> Response:
    """Ring the bot: the callback gets ``created`` with state incoming."""
    body = parse_body(IncomingCallBody, await read_body(request))
    version = scope_version(request)
    spec = NewCall(
        callback_uri=body.callback_uri,
        api_version=version,
        targets=list(body.targets) if body.targets else [copy.deepcopy(DEFAULT_BOT)],
        source=copy.deepcopy(DEFAULT_CALLER) if body.source is None else body.source,
        requested_modalities=list(body.requested_modalities or ["audio"]),
        subject=body.subject,
        tenant_id=body.tenant_id,
    )
    script = [caller_action(step) for step in body.script or ()]
    call = runtime_of(request).engine.place_incoming_call(spec, script)
    url = f"{base_url(request)}/{version.value}/communications/calls/{call.id}"
    return JSONResponse(render_call(call, version), 201, {"Location": url})


@router.get("/calls")
async def list_calls(request: Request) -> Response:
    """Summarise every call ever, live or ended."""
    calls = runtime_of(request).store.all_calls()
    return JSONResponse({"value": [_summary(call) for call in calls]})


@router.get("/calls/{call_id}")
async def inspect_call(request: Request, call_id: str) -> Response:
    """Return a call's whole story: call, operations, notifications."""
    runtime = runtime_of(request)
    call = runtime.engine.call_record(canonical_id(call_id))
    operations = runtime.engine.operations_record(call.id)
    notifications = runtime.store.notifications_of(call.id)
    return JSONResponse(
        {
            **_summary(call),
            "call": render_call(call, call.api_version),
            "history": _history(call.history),
            "operations": [_operation_view(op) for op in operations],
            "notifications": [_outbox_view(entry) for entry in notifications],
        }
    )


@router.get("/calls/{call_id}/heard.wav")
async def heard_audio(request: Request, call_id: str) -> Response:
    """Return what the simulated caller heard, as a WAV file."""
    engine = runtime_of(request).engine
    call = engine.call_record(canonical_id(call_id))
    pcm = engine.heard_audio(call.id)
    if pcm is None:
        message = "This call's caller does not keep what it heard."
        raise RequestRejected(error_for_status(404, message))
    return Response(wav_bytes(pcm), media_type="audio/wav")


@router.post("/calls/{call_id}/caller")
async def act_as_caller(request: Request, call_id: str) -> Response:
    """Make the simulated caller press keys, speak, fall silent or hang up."""
    action = caller_action(parse_body(CallerActionBody, await read_body(request)))
    runtime_of(request).engine.caller_action(canonical_id(call_id), action)
    return Response(status_code=202)


def _summary(call: Call) -> JsonObject:
    result = call.result_info
    return {
        "id": call.id,
        "direction": call.direction.value,
        "state": call.state.value,
        "apiVersion": call.api_version.value,
        "mediaMode": call.media_mode.value,
        "callbackUri": call.callback_uri,
        "createdMs": call.created_ms,
        "endedMs": call.ended_ms,
        "result": None if result is None else f"{result.code}/{result.subcode}",
    }


def _history(lines: list[tuple[int, str]]) -> list[JsonObject]:
    return [{"atMs": at_ms, "event": what} for at_ms, what in lines]


def _operation_view(op: Operation) -> JsonObject:
    return {
        "kind": op.kind.value,
        "apiVersion": op.api_version.value,
        "createdMs": op.created_ms,
        "startedMs": op.started_ms,
        "finishedMs": op.finished_ms,
        "resource": render_operation(op, op.api_version),
        "history": _history(op.history),
    }


def _outbox_view(entry: OutboxEntry) -> JsonObject:
    """Return a notification with its delivery story (times in epoch seconds)."""
    return {
        "seq": entry.seq,
        "url": entry.url,
        "status": entry.status,
        "attempts": entry.attempts,
        "lastError": entry.last_error,
        "createdAt": entry.created_at,
        "deliveredAt": entry.delivered_at,
        "payload": entry.payload,
        "attemptLog": [
            {
                "at": attempt.at,
                "statusCode": attempt.status_code,
                "error": attempt.error,
                "outcome": attempt.outcome,
            }
            for attempt in entry.attempt_log
        ],
    }


# -- clock, faults, notifications, sounds ---------------------------------------


@router.put("/faults")
async def set_faults(request: Request) -> Response:
    """Inject faults into webhook delivery and the Graph API (BL-20)."""
    body = parse_body(FaultsBody, await read_body(request))
    plan = FaultPlan(
        seed=body.seed,
        delay_ms=body.delay_ms,
        reorder=body.reorder,
        duplicate=body.duplicate,
        drop=body.drop,
        api_errors=body.api_errors,
    )
    runtime_of(request).set_faults(plan)
    return JSONResponse(_faults_view(plan))


@router.get("/faults")
async def get_faults(request: Request) -> Response:
    """Return the faults being injected."""
    return JSONResponse(_faults_view(runtime_of(request).faults))


@router.delete("/faults")
async def clear_faults(request: Request) -> Response:
    """Stop injecting faults."""
    runtime_of(request).set_faults(FaultPlan())
    return Response(status_code=204)


def _faults_view(plan: FaultPlan) -> JsonObject:
    return {
        "seed": plan.seed,
        "delayMs": plan.delay_ms,
        "reorder": plan.reorder,
        "duplicate": plan.duplicate,
        "drop": plan.drop,
        "apiErrors": plan.api_errors,
        "active": plan.active,
    }


@router.post("/clock/advance")
async def advance_clock(request: Request) -> Response:
    """Move the virtual clock; 400 when the service runs in real time."""
    body = parse_body(AdvanceBody, await read_body(request))
    now_ms = await runtime_of(request).advance_clock(body.ms)
    return JSONResponse({"nowMs": now_ms})


@router.get("/clock")
async def read_clock(request: Request) -> Response:
    """Return the clock mode and its time."""
    runtime = runtime_of(request)
    mode = runtime.settings.clock_mode
    return JSONResponse({"mode": mode, "nowMs": runtime.engine.clock.now_ms()})


@router.get("/notifications")
async def list_notifications(request: Request) -> Response:
    """List the notifications not delivered: ``status=failed`` (default) or pending.

    Delivered ones are listed per call, in ``GET /_sim/calls/{id}``.
    """
    status = request.query_params.get("status", "failed")
    store = runtime_of(request).store
    if status == "failed":
        entries = store.failed_notifications()
    elif status == "pending":
        entries = store.pending_notifications()
    else:
        raise InvalidRequest(
            "status: 'failed' or 'pending'; delivered notifications are listed "
            "per call, in GET /_sim/calls/{id}."
        )
    return JSONResponse({"value": [_outbox_view(entry) for entry in entries]})


@router.post("/notifications/{seq}/redeliver")
async def redeliver(request: Request, seq: str) -> Response:
    """Put a failed notification back in line for delivery."""
    if not SEQ.fullmatch(seq) or not runtime_of(request).delivery.redeliver(int(seq)):
        message = f"No failed notification has seq {seq}."
        raise RequestRejected(error_for_status(404, message))
    return JSONResponse({"seq": int(seq), "status": "pending"}, 202)


@router.get("/sounds/{name}")
async def sound(request: Request, name: str) -> Response:
    """Serve one of the WAV files graphcomms ships (beep, welcome...)."""
    path = runtime_of(request).sound_path(name)
    if path is None:
        message = f"No shipped sound is called {name!r}."
        raise RequestRejected(error_for_status(404, message))
    return FileResponse(path, media_type="audio/wav")
