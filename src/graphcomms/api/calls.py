"""The Graph surface: ``/{version}/communications/calls`` and its actions.

One route per shape. Actions go through a table: each entry names the
body it validates, the engine method it calls and how it is answered (spec
§6.10): an operation with 200 and a Location, 202 with nothing, or, for the
2018 beta ``record``, 202 with a Location and no body.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from graphcomms.api.http import (
    RequestRejected,
    base_url,
    canonical_id,
    graph_json,
    parse_version,
    read_body,
    runtime_of,
)
from graphcomms.engine.call import Call
from graphcomms.engine.engine import Engine
from graphcomms.engine.operation import ApiVersion, Operation
from graphcomms.graph.errors import error_for_status
from graphcomms.graph.render import render_call, render_operation
from graphcomms.graph.requests import (
    AnswerRequest,
    BetaPlayPromptRequest,
    CancelMediaProcessingRequest,
    ClientContextRequest,
    CreateCallRequest,
    LegacyRecordRequest,
    PlayPromptRequest,
    RecordResponseRequest,
    RedirectRequest,
    RejectRequest,
    SendDtmfTonesRequest,
    UpdateRecordingStatusRequest,
    parse_body,
)

router = APIRouter()

CALLS = "/{version}/communications/calls"
NAMESPACE = "microsoft.graph."

# Graph actions on a call that graphcomms does not offer (yet)
UNIMPLEMENTED = frozenset(
    {
        "transfer",
        "changescreensharingrole",
        "addlargegalleryview",
        "startholdmusic",
        "stopholdmusic",
    }
)


# -- the call collection and calls ----------------------------------------------


@router.post(CALLS)
async def create_call(request: Request, version: str) -> Response:
    """Place an outgoing call: 201, a Location and the call."""
    api = parse_version(version)
    body = parse_body(CreateCallRequest, await read_body(request))
    call = runtime_of(request).engine.create_call(body.to_new_call(api))
    url = f"{base_url(request)}/{api.value}/communications/calls/{call.id}"
    return graph_json(_call_entity(request, call, api), 201, {"Location": url})


@router.get(CALLS)
async def list_calls(request: Request, version: str) -> Response:
    """List the live calls."""
    api = parse_version(version)
    calls = runtime_of(request).store.live_calls()
    context = f"{base_url(request)}/{api.value}/$metadata#communications/calls"
    value = [render_call(call, api) for call in calls]
    return graph_json({"@odata.context": context, "value": value})


@router.get(CALLS + "/{call_id}")
async def get_call(request: Request, version: str, call_id: str) -> Response:
    """Return a live call."""
    api = parse_version(version)
    call = runtime_of(request).engine.get_call(canonical_id(call_id))
    return graph_json(_call_entity(request, call, api))


@router.delete(CALLS + "/{call_id}")
async def hang_up(request: Request, version: str, call_id: str) -> Response:
    """Hang up: 204, then terminating and terminated notifications."""
    parse_version(version)
    runtime_of(request).engine.hang_up(canonical_id(call_id))
    return Response(status_code=204)


@router.get(CALLS + "/{call_id}/operations/{op_id}")
async def get_operation(
    request: Request, version: str, call_id: str, op_id: str
) -> Response:
    """Return an operation that has not sent its terminal notification yet."""
    api = parse_version(version)
    engine = runtime_of(request).engine
    op = engine.get_operation(canonical_id(call_id), canonical_id(op_id))
    return graph_json(render_operation(op, api))


def _call_entity(request: Request, call: Call, api: ApiVersion) -> dict[str, Any]:
    context = f"{base_url(request)}/{api.value}/$metadata#communications/calls/$entity"
    return {"@odata.context": context, **render_call(call, api)}


# -- actions --------------------------------------------------------------------


class Reply(enum.Enum):
    """How an action is answered."""

    OPERATION = "200 + Location + operation"
    ACCEPTED = "202, no body"
    ACCEPTED_AT = "202 + Location, no body"
    OK = "200, no body"


Runner = Callable[[Engine, str, bytes, ApiVersion], Operation | None]


@dataclass(frozen=True, slots=True)
class Action:
    """One action on a call: its Graph name, what runs it, how it answers."""

    name: str
    run: Runner
    reply: Reply
    beta_only: bool = False


@router.post(CALLS + "/{call_id}/{action}")
async def call_action(
    request: Request, version: str, call_id: str, action: str
) -> Response:
    """Run an action such as playPrompt or answer on a call."""
    api = parse_version(version)
    found = find_action(action, api)
    engine = runtime_of(request).engine
    call_id = canonical_id(call_id)
    engine.get_call(call_id)  # an unknown or ended call is 404 whatever the body
    raw = await read_body(request)
    op = found.run(engine, call_id, raw, api)
    return _reply(request, found, op, api)


def find_action(segment: str, version: ApiVersion) -> Action:
    """Return the action a path segment names, in any case, namespaced or not.

    Raises:
        RequestRejected: 404 for a name Graph does not have (or not in this
            version), 501 for a Graph action graphcomms does not offer.
    """
    name = segment.lower().removeprefix(NAMESPACE)
    action = ACTIONS.get(name)
    if action is not None and (version is ApiVersion.BETA or not action.beta_only):
        return action
    if name in UNIMPLEMENTED:
        message = f"graphcomms does not implement the {segment} action."
        raise RequestRejected(error_for_status(501, message))
    message = f"Resource not found for the segment '{segment}'."
    raise RequestRejected(error_for_status(404, message))


def _reply(
    request: Request, action: Action, op: Operation | None, api: ApiVersion
) -> Response:
    if action.reply is Reply.ACCEPTED:
        return Response(status_code=202)
    if action.reply is Reply.OK:
        return Response(status_code=200)
    if op is None:
        raise RuntimeError(f"{action.name} returned no operation")
    location = (
        f"{base_url(request)}/{api.value}/communications/calls/"
        f"{op.call_id}/operations/{op.id}"
    )
    if action.reply is Reply.ACCEPTED_AT:
        return Response(status_code=202, headers={"Location": location})
    return graph_json(render_operation(op, api), 200, {"Location": location})


def _answer(engine: Engine, call_id: str, raw: bytes, api: ApiVersion) -> None:
    body = parse_body(AnswerRequest, raw)
    engine.answer(
        call_id,
        callback_uri=body.callback_uri,
        media_mode=body.media_mode,
        prefetch=body.prefetch,
        api_version=api,
    )


def _reject(engine: Engine, call_id: str, raw: bytes, api: ApiVersion) -> None:
    engine.reject(call_id, reason=parse_body(RejectRequest, raw).reason)


def _redirect(engine: Engine, call_id: str, raw: bytes, api: ApiVersion) -> None:
    body = parse_body(RedirectRequest, raw)
    engine.redirect(call_id, targets=list(body.targets))


def _keep_alive(engine: Engine, call_id: str, raw: bytes, api: ApiVersion) -> None:
    engine.keep_alive(call_id)


def _play_prompt(
    engine: Engine, call_id: str, raw: bytes, api: ApiVersion
) -> Operation:
    model = BetaPlayPromptRequest if api is ApiVersion.BETA else PlayPromptRequest
    body = parse_body(model, raw)
    return engine.play_prompt(
        call_id,
        body.prompt_sources(),
        client_context=body.client_context,
        loop=body.loop_forever,
        api_version=api,
    )


def _record_response(
    engine: Engine, call_id: str, raw: bytes, api: ApiVersion
) -> Operation:
    body = parse_body(RecordResponseRequest, raw)
    return engine.record_response(
        call_id, body.to_settings(), client_context=body.client_context, api_version=api
    )


def _legacy_record(
    engine: Engine, call_id: str, raw: bytes, api: ApiVersion
) -> Operation:
    body = parse_body(LegacyRecordRequest, raw)
    return engine.record_response(
        call_id,
        body.to_settings(),
        client_context=body.client_context,
        api_version=api,
        legacy=True,
    )


def _subscribe_to_tone(
    engine: Engine, call_id: str, raw: bytes, api: ApiVersion
) -> Operation:
    body = parse_body(ClientContextRequest, raw)
    return engine.subscribe_to_tone(
        call_id, client_context=body.client_context, api_version=api
    )


def _send_dtmf_tones(
    engine: Engine, call_id: str, raw: bytes, api: ApiVersion
) -> Operation:
    body = parse_body(SendDtmfTonesRequest, raw)
    return engine.send_dtmf_tones(
        call_id,
        tuple(body.tones),
        delay_between_tones_ms=body.delay_ms,
        client_context=body.client_context,
        api_version=api,
    )


def _cancel_media_processing(
    engine: Engine, call_id: str, raw: bytes, api: ApiVersion
) -> Operation:
    body = parse_body(CancelMediaProcessingRequest, raw)
    return engine.cancel_media_processing(
        call_id,
        all_operations=body.cancel_all,
        client_context=body.client_context,
        api_version=api,
    )


def _mute(engine: Engine, call_id: str, raw: bytes, api: ApiVersion) -> Operation:
    body = parse_body(ClientContextRequest, raw)
    return engine.mute(call_id, client_context=body.client_context, api_version=api)


def _unmute(engine: Engine, call_id: str, raw: bytes, api: ApiVersion) -> Operation:
    body = parse_body(ClientContextRequest, raw)
    return engine.unmute(call_id, client_context=body.client_context, api_version=api)


def _update_recording_status(
    engine: Engine, call_id: str, raw: bytes, api: ApiVersion
) -> Operation:
    body = parse_body(UpdateRecordingStatusRequest, raw)
    return engine.update_recording_status(
        call_id, body.status, client_context=body.client_context, api_version=api
    )


_ACTIONS = (
    Action("answer", _answer, Reply.ACCEPTED),
    Action("reject", _reject, Reply.ACCEPTED),
    Action("redirect", _redirect, Reply.ACCEPTED),
    Action("keepAlive", _keep_alive, Reply.OK),
    Action("playPrompt", _play_prompt, Reply.OPERATION),
    Action("recordResponse", _record_response, Reply.OPERATION),
    Action("record", _legacy_record, Reply.ACCEPTED_AT, beta_only=True),
    Action("subscribeToTone", _subscribe_to_tone, Reply.OPERATION),
    Action("sendDtmfTones", _send_dtmf_tones, Reply.OPERATION),
    Action("cancelMediaProcessing", _cancel_media_processing, Reply.OPERATION),
    Action("mute", _mute, Reply.OPERATION),
    Action("unmute", _unmute, Reply.OPERATION),
    Action("updateRecordingStatus", _update_recording_status, Reply.OPERATION),
)
ACTIONS: dict[str, Action] = {action.name.lower(): action for action in _ACTIONS}
"""Every action graphcomms offers, by lower-case name."""
