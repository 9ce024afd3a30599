"""The v1.0 flow of issue 2 through the official msgraph-sdk (BL-01).

A bot creates a call, subscribes to tones, queues two 20 s prompts and a
recording, and cancels media processing when the caller presses a key.
Every request goes through ``msgraph.GraphServiceClient`` to a running
graphcomms; every notification arrives at a real webhook.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_http.middleware.options import HeadersInspectionHandlerOption
from msgraph.generated.communications.calls.item.answer.answer_post_request_body import (  # noqa: E501
    AnswerPostRequestBody,
)
from msgraph.generated.communications.calls.item.cancel_media_processing.cancel_media_processing_post_request_body import (  # noqa: E501
    CancelMediaProcessingPostRequestBody,
)
from msgraph.generated.communications.calls.item.mute.mute_post_request_body import (
    MutePostRequestBody,
)
from msgraph.generated.communications.calls.item.play_prompt.play_prompt_post_request_body import (  # noqa: E501
    PlayPromptPostRequestBody,
)
from msgraph.generated.communications.calls.item.record_response.record_response_post_request_body import (  # noqa: E501
    RecordResponsePostRequestBody,
)
from msgraph.generated.communications.calls.item.redirect.redirect_post_request_body import (  # noqa: E501
    RedirectPostRequestBody,
)
from msgraph.generated.communications.calls.item.reject.reject_post_request_body import (  # noqa: E501
    RejectPostRequestBody,
)
from msgraph.generated.communications.calls.item.send_dtmf_tones.send_dtmf_tones_post_request_body import (  # noqa: E501
    SendDtmfTonesPostRequestBody,
)
from msgraph.generated.communications.calls.item.subscribe_to_tone.subscribe_to_tone_post_request_body import (  # noqa: E501
    SubscribeToTonePostRequestBody,
)
from msgraph.generated.communications.calls.item.unmute.unmute_post_request_body import (  # noqa: E501
    UnmutePostRequestBody,
)
from msgraph.generated.communications.calls.item.update_recording_status.update_recording_status_post_request_body import (  # noqa: E501
    UpdateRecordingStatusPostRequestBody,
)
from msgraph.generated.models.call import Call
from msgraph.generated.models.call_direction import CallDirection
from msgraph.generated.models.call_state import CallState
from msgraph.generated.models.cancel_media_processing_operation import (
    CancelMediaProcessingOperation,
)
from msgraph.generated.models.identity import Identity
from msgraph.generated.models.identity_set import IdentitySet
from msgraph.generated.models.invitation_participant_info import (
    InvitationParticipantInfo,
)
from msgraph.generated.models.media_info import MediaInfo
from msgraph.generated.models.media_prompt import MediaPrompt
from msgraph.generated.models.modality import Modality
from msgraph.generated.models.mute_participant_operation import (
    MuteParticipantOperation,
)
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.operation_status import OperationStatus
from msgraph.generated.models.play_prompt_operation import PlayPromptOperation
from msgraph.generated.models.record_operation import RecordOperation
from msgraph.generated.models.recording_status import RecordingStatus
from msgraph.generated.models.reject_reason import RejectReason
from msgraph.generated.models.send_dtmf_tones_operation import SendDtmfTonesOperation
from msgraph.generated.models.service_hosted_media_config import (
    ServiceHostedMediaConfig,
)
from msgraph.generated.models.tone import Tone
from msgraph.generated.models.unmute_participant_operation import (
    UnmuteParticipantOperation,
)
from msgraph.generated.models.update_recording_status_operation import (
    UpdateRecordingStatusOperation,
)

from graphcomms.testing import (
    GraphcommsServer,
    ToneInfo,
    WebhookReceiver,
    tone_wav,
)
from graphcomms.testing import graph_client as make_client

from .helpers import ANSWER_MS, FRAME_MS, frame_at, heard_frames, result


def new_call(callback_uri: str) -> Call:
    """Return the S0 call: service-hosted audio to one user."""
    return Call(
        callback_uri=callback_uri,
        targets=[
            InvitationParticipantInfo(
                identity=IdentitySet(user=Identity(id="8f1e-user", display_name="U"))
            )
        ],
        requested_modalities=[Modality.Audio],
        media_config=ServiceHostedMediaConfig(),
    )


def play_body(context: str, uri: str) -> PlayPromptPostRequestBody:
    """Return a playPrompt body of one prompt."""
    return PlayPromptPostRequestBody(
        client_context=context, prompts=[MediaPrompt(media_info=MediaInfo(uri=uri))]
    )


async def established_call(
    client: Any, server: GraphcommsServer, receiver: WebhookReceiver
) -> Any:
    """Create the S0 call through the SDK and wait until it is established."""
    call = await client.communications.calls.post(new_call(receiver.url))
    assert call is not None and call.id
    server.advance(ANSWER_MS)
    receiver.call_state(call.id, "established")
    return call


async def test_cancel_media_processing_sdk_v1_stops_queue_and_keeps_tones(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    prompt_server: Any,
    graph_client: Any,
) -> None:
    """BL-01: cancel flushes the queue, notifies each op once, keeps tones."""
    server, receiver = graphcomms_server, webhook_receiver
    menu = prompt_server.add("menu-20s.wav", tone_wav(20_000, 440))
    call = await established_call(graph_client, server, receiver)
    item = graph_client.communications.calls.by_call_id(call.id)

    # queue the IVR
    tone_op = await item.subscribe_to_tone.post(
        SubscribeToTonePostRequestBody(client_context="ctx-tone")
    )
    assert tone_op.status == OperationStatus.Completed
    p1 = await item.play_prompt.post(play_body("ctx-p1", menu))
    p2 = await item.play_prompt.post(play_body("ctx-p2", menu))
    r1 = await item.record_response.post(
        RecordResponsePostRequestBody(
            client_context="ctx-r1", max_record_duration_in_seconds=10
        )
    )
    assert isinstance(p1, PlayPromptOperation) and isinstance(r1, RecordOperation)
    assert p1.status == OperationStatus.Running
    assert p2.status == OperationStatus.NotStarted
    assert r1.status == OperationStatus.NotStarted

    # the caller presses 1 three seconds in
    server.advance(3000)
    server.caller(call.id).press("1")
    server.advance(300)
    assert receiver.tones(call.id, at_least=1) == [ToneInfo(1, "tone1")]

    # cancel through the SDK, reading the Location header too
    headers = HeadersInspectionHandlerOption(inspect_response_headers=True)
    cancel = await item.cancel_media_processing.post(
        CancelMediaProcessingPostRequestBody(client_context="ctx-cancel"),
        request_configuration=RequestConfiguration(options=[headers]),
    )
    cancel_ms = server.now_ms
    assert isinstance(cancel, CancelMediaProcessingOperation)
    assert cancel.status == OperationStatus.Completed
    assert cancel.client_context == "ctx-cancel"
    location = headers.response_headers.get("location")
    assert location and next(iter(location)).endswith(f"/operations/{cancel.id}")

    # each stopped operation ends once, failed 400/8508, the running one first
    ended = [receiver.operation_ended(op.id) for op in (p1, p2, r1)]
    for data, op in zip(ended, (p1, p2, r1), strict=True):
        assert data["status"] == "failed"
        assert result(data) == (400, 8508)
        assert data["clientContext"] == op.client_context
    assert [d["completionReason"] for d in ended] == [
        "mediaOperationCanceled",
        "mediaOperationCanceled",
        "operationCanceled",
    ]
    assert ended[2]["recordingLocation"] == ""
    order = [
        next(n.index for n in receiver.notifications if n.operation_id == op.id)
        for op in (p1, p2, r1)
    ]
    assert order == sorted(order)

    # the tone subscription survives the cancel
    server.caller(call.id).press("2")
    server.advance(1000)
    assert receiver.tones(call.id, at_least=2) == [
        ToneInfo(1, "tone1"),
        ToneInfo(2, "tone2"),
    ]

    # exactly one notification per stopped op, none for completed-at-once ops
    assert server.drain()
    by_op = [n.operation_id for n in receiver.for_call(call.id) if n.operation_id]
    assert sorted(by_op) == sorted([p1.id, p2.id, r1.id])
    assert cancel.id not in by_op and tone_op.id not in by_op

    # nothing queued ever started; the caller heard silence after the cancel
    views = {v["resource"]["id"]: v for v in server.history(call.id)["operations"]}
    assert views[p2.id]["startedMs"] is None and views[r1.id]["startedMs"] is None
    frames = heard_frames(server, call.id)
    last_prompt_frame = frame_at(server, call.id, cancel_ms)
    assert np.abs(frames[last_prompt_frame - 1]).max() > 1000
    assert not frames[last_prompt_frame + 1 :].any(), "audio after the cancel"
    assert len(frames) - last_prompt_frame > 1000 // FRAME_MS


async def test_get_operation_sdk_v1_running_then_404_after_its_end(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    prompt_server: Any,
    graph_client: Any,
) -> None:
    """A running operation is readable (typed); after its end, 404 envelope."""
    beep = prompt_server.add("beep.wav", tone_wav(500, 1000))
    call = await established_call(graph_client, graphcomms_server, webhook_receiver)
    item = graph_client.communications.calls.by_call_id(call.id)
    op = await item.play_prompt.post(play_body("ctx-get", beep))

    running = await item.operations.by_comms_operation_id(op.id).get()
    assert isinstance(running, PlayPromptOperation)
    assert running.status == OperationStatus.Running
    assert running.client_context == "ctx-get"

    graphcomms_server.advance(600)
    assert webhook_receiver.operation_ended(op.id)["status"] == "completed"
    with pytest.raises(ODataError) as raised:
        await item.operations.by_comms_operation_id(op.id).get()
    assert raised.value.response_status_code == 404
    assert raised.value.error is not None and raised.value.error.code == "8522"


async def test_call_lifecycle_sdk_v1_every_action_round_trips(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    graph_client: Any,
) -> None:
    """answer, keepAlive, sendDtmfTones, mute, unmute, updateRecordingStatus,
    delete, reject, redirect: each request serialises and each answer parses."""
    server, receiver = graphcomms_server, webhook_receiver
    calls = graph_client.communications.calls
    incoming = server.place_call(receiver.url)
    item = calls.by_call_id(incoming)
    ringing = await item.get()
    assert ringing.state == CallState.Incoming
    assert ringing.direction == CallDirection.Incoming

    await item.answer.post(
        AnswerPostRequestBody(
            callback_uri=receiver.url,
            accepted_modalities=[Modality.Audio],
            media_config=ServiceHostedMediaConfig(),
        )
    )
    server.advance(300)
    receiver.call_state(incoming, "established")
    assert await item.keep_alive.post() is None
    dtmf = await item.send_dtmf_tones.post(
        SendDtmfTonesPostRequestBody(
            tones=[Tone.Tone1, Tone.Pound], delay_between_tones_ms=100
        )
    )
    assert isinstance(dtmf, SendDtmfTonesOperation)
    assert dtmf.status == OperationStatus.Running
    muted = await item.mute.post(MutePostRequestBody(client_context="m"))
    unmuted = await item.unmute.post(UnmutePostRequestBody(client_context="u"))
    status = await item.update_recording_status.post(
        UpdateRecordingStatusPostRequestBody(status=RecordingStatus.Recording)
    )
    assert isinstance(muted, MuteParticipantOperation)
    assert isinstance(unmuted, UnmuteParticipantOperation)
    assert isinstance(status, UpdateRecordingStatusOperation)
    assert {muted.status, unmuted.status, status.status} == {OperationStatus.Completed}
    server.advance(500)
    sent = receiver.operation_ended(dtmf.id)
    assert sent["completionReason"] == "completedSuccessfully"
    await item.delete()
    assert result(receiver.call_state(incoming, "terminated")) == (200, 7000)

    # reject and redirect end a ringing call at once
    rejected, redirected = (
        server.place_call(receiver.url),
        server.place_call(receiver.url),
    )
    await calls.by_call_id(rejected).reject.post(
        RejectPostRequestBody(reason=RejectReason.Busy)
    )
    await calls.by_call_id(redirected).redirect.post(
        RedirectPostRequestBody(
            targets=[
                InvitationParticipantInfo(identity=IdentitySet(user=Identity(id="x")))
            ]
        )
    )
    for call_id in (rejected, redirected):
        assert receiver.call_state(call_id, "terminated")["state"] == "terminated"
    live = await calls.get()
    assert live is not None and live.value == []


async def test_graph_client_does_not_retry_503(prompt_server: Any) -> None:
    """The plugin's clients make one request on 503, not four over 12 s."""
    prompt_server.add_error("v1.0/communications/calls/x", 503)
    client = make_client(prompt_server.base_url + "/v1.0")
    with pytest.raises(APIError) as raised:
        await client.communications.calls.by_call_id("x").get()
    assert raised.value.response_status_code == 503
    # one request, not the SDK's default retries with their 12 s of backoff
    assert prompt_server.requests("v1.0/communications/calls/x") == 1
