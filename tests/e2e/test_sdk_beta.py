"""The beta flow of issue 2 through the official msgraph-beta-sdk.

Beta's cancelMediaProcessing request body has no ``all`` property in the
SDK (it was removed from Graph in Dec 2019), so the test sends it through
``additional_data``, which the SDK serialises as it is. With ``all: false``
only the running prompt stops, and the queue goes on.
"""

from __future__ import annotations

from typing import Any

from msgraph_beta.generated.communications.calls.item.cancel_media_processing.cancel_media_processing_post_request_body import (  # noqa: E501
    CancelMediaProcessingPostRequestBody,
)
from msgraph_beta.generated.communications.calls.item.play_prompt.play_prompt_post_request_body import (  # noqa: E501
    PlayPromptPostRequestBody,
)
from msgraph_beta.generated.communications.calls.item.record_response.record_response_post_request_body import (  # noqa: E501
    RecordResponsePostRequestBody,
)
from msgraph_beta.generated.communications.calls.item.subscribe_to_tone.subscribe_to_tone_post_request_body import (  # noqa: E501
    SubscribeToTonePostRequestBody,
)
from msgraph_beta.generated.models.call import Call
from msgraph_beta.generated.models.cancel_media_processing_operation import (
    CancelMediaProcessingOperation,
)
from msgraph_beta.generated.models.identity import Identity
from msgraph_beta.generated.models.identity_set import IdentitySet
from msgraph_beta.generated.models.invitation_participant_info import (
    InvitationParticipantInfo,
)
from msgraph_beta.generated.models.media_info import MediaInfo
from msgraph_beta.generated.models.media_prompt import MediaPrompt
from msgraph_beta.generated.models.modality import Modality
from msgraph_beta.generated.models.operation_status import OperationStatus
from msgraph_beta.generated.models.play_prompt_operation import PlayPromptOperation
from msgraph_beta.generated.models.service_hosted_media_config import (
    ServiceHostedMediaConfig,
)

from graphcomms.testing import GraphcommsServer, ToneInfo, WebhookReceiver, tone_wav

from .helpers import ANSWER_MS, operation_view, result


def play_body(context: str, uri: str) -> PlayPromptPostRequestBody:
    """Return a beta playPrompt body of one prompt."""
    return PlayPromptPostRequestBody(
        client_context=context, prompts=[MediaPrompt(media_info=MediaInfo(uri=uri))]
    )


async def test_cancel_media_processing_sdk_beta_all_false_stops_only_running(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    prompt_server: Any,
    graph_beta_client: Any,
) -> None:
    """all=false: the running prompt fails 8508, the next one plays out."""
    server, receiver = graphcomms_server, webhook_receiver
    menu = prompt_server.add("menu-20s.wav", tone_wav(20_000, 440))
    call = await graph_beta_client.communications.calls.post(
        Call(
            callback_uri=receiver.url,
            targets=[
                InvitationParticipantInfo(
                    identity=IdentitySet(user=Identity(id="8f1e-user"))
                )
            ],
            requested_modalities=[Modality.Audio],
            media_config=ServiceHostedMediaConfig(),
        )
    )
    server.advance(ANSWER_MS)
    receiver.call_state(call.id, "established")
    item = graph_beta_client.communications.calls.by_call_id(call.id)

    await item.subscribe_to_tone.post(
        SubscribeToTonePostRequestBody(client_context="ctx-tone")
    )
    p1 = await item.play_prompt.post(play_body("ctx-p1", menu))
    p2 = await item.play_prompt.post(play_body("ctx-p2", menu))
    r1 = await item.record_response.post(
        RecordResponsePostRequestBody(client_context="ctx-r1")
    )
    server.advance(3000)
    server.caller(call.id).press("1")
    server.advance(300)
    assert receiver.tones(call.id, at_least=1) == [ToneInfo(1, "tone1")]

    # all: false goes through additional_data, and reaches the service
    cancel = await item.cancel_media_processing.post(
        CancelMediaProcessingPostRequestBody(
            client_context="ctx-cancel", additional_data={"all": False}
        )
    )
    assert isinstance(cancel, CancelMediaProcessingOperation)
    assert cancel.status == OperationStatus.Completed
    assert cancel.client_context == "ctx-cancel"
    assert cancel.additional_data["all"] is False
    assert operation_view(server, call.id, cancel.id)["resource"]["all"] is False

    # only the running prompt stopped
    stopped = receiver.operation_ended(p1.id)
    assert stopped["status"] == "failed" and result(stopped) == (400, 8508)
    assert stopped["completionReason"] == "mediaOperationCanceled"
    now_running = await item.operations.by_comms_operation_id(p2.id).get()
    assert isinstance(now_running, PlayPromptOperation)
    assert now_running.status == OperationStatus.Running

    # the next prompt plays its whole 20 s, then completes; the record follows
    server.advance(20_000)
    done = receiver.operation_ended(p2.id)
    assert done["status"] == "completed" and result(done) == (200, 0)
    assert done["completionReason"] == "completedSuccessfully"
    p2_view = operation_view(server, call.id, p2.id)
    assert p2_view["finishedMs"] - p2_view["startedMs"] == 20_000
    assert operation_view(server, call.id, r1.id)["startedMs"] == p2_view["finishedMs"]

    # tones still arrive
    server.caller(call.id).press("2")
    server.advance(300)
    assert receiver.tones(call.id, at_least=2)[-1] == ToneInfo(2, "tone2")
