"""Rendering: calls, operations and notifications in Graph's exact wire shapes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from graphcomms.engine.call import Call, CallState, Direction, MediaMode
from graphcomms.engine.operation import (
    CANCELLED,
    OPERATION_COMPLETED,
    PLAY_COMPLETED,
    RECORD_MAX_DURATION,
    ApiVersion,
    CompletionReason,
    Operation,
    OperationKind,
    OperationStatus,
    PromptSource,
)
from graphcomms.graph.render import (
    PARTICIPANTS,
    render_call,
    render_notification,
    render_operation,
    render_participants,
)
from graphcomms.types import CallId, OperationId

CALL_ID = CallId("57dab8b1-894c-409a-b240-bd8beae78896")
OP_ID = OperationId("0fe0623f-d628-42ed-b4bd-8ac290072cc5")
BOTH = pytest.mark.parametrize("version", [ApiVersion.V1, ApiVersion.BETA])
BOT = {
    "@odata.type": "#microsoft.graph.participantInfo",
    "identity": {"application": {"id": "app-1", "displayName": "Calling Bot"}},
}
CALLEE = {"identity": {"user": {"id": "user-1", "displayName": "John"}}}


def make_call(**changes: Any) -> Call:
    """Return an established outgoing call, changed by ``changes``."""
    call = Call(
        id=CALL_ID,
        direction=Direction.OUTGOING,
        api_version=ApiVersion.V1,
        callback_uri="https://bot.example.test/api/calls",
        state=CallState.ESTABLISHED,
        source=BOT,
        targets=[CALLEE],
        my_participant_id="499ff390-7a72-40e8-83a0-8fac6295ae7e",
        call_chain_id="chain-1",
    )
    for name, value in changes.items():
        setattr(call, name, value)
    return call


def make_op(kind: OperationKind, **changes: Any) -> Operation:
    """Return a running operation of ``kind``, changed by ``changes``."""
    op = Operation(
        id=OP_ID,
        call_id=CALL_ID,
        kind=kind,
        api_version=ApiVersion.V1,
        client_context="d45324c1",
        status=OperationStatus.RUNNING,
    )
    for name, value in changes.items():
        setattr(op, name, value)
    return op


# -- calls ----------------------------------------------------------------------


@BOTH
def test_render_call_has_get_shape_with_explicit_nulls(version: ApiVersion) -> None:
    call = make_call(prefetch=(PromptSource("https://cdn/beep.wav", "r1"),))
    body = render_call(call, version)
    assert body["@odata.type"] == "#microsoft.graph.call"
    assert body["id"] == CALL_ID
    assert body["state"] == "established"
    assert body["direction"] == "outgoing"
    assert body["callbackUri"] == "https://bot.example.test/api/calls"
    assert body["source"] == BOT
    assert body["targets"] == [CALLEE]
    assert body["requestedModalities"] == ["audio"]
    assert body["mediaConfig"] == {
        "@odata.type": "#microsoft.graph.serviceHostedMediaConfig",
        "preFetchMedia": [
            {
                "@odata.type": "#microsoft.graph.mediaInfo",
                "uri": "https://cdn/beep.wav",
                "resourceId": "r1",
            }
        ],
    }
    assert body["mediaState"]["audio"] == "active"
    assert body["myParticipantId"] == "499ff390-7a72-40e8-83a0-8fac6295ae7e"
    for name in ("subject", "resultInfo", "toneInfo", "chatInfo", "meetingInfo"):
        assert name in body
        assert body[name] is None


def test_render_call_shares_nothing_mutable_with_the_call() -> None:
    call = make_call()
    body = render_call(call, ApiVersion.V1)
    body["targets"][0]["identity"]["user"]["id"] = "changed"
    body["source"]["identity"] = None
    assert call.targets == [CALLEE]
    assert call.source == BOT


def test_render_call_states_media_and_tone() -> None:
    call = make_call(
        state=CallState.ESTABLISHING,
        media_mode=MediaMode.APP_HOSTED,
        tone_sequence=2,
        last_tone="#",
    )
    body = render_call(call, ApiVersion.V1)
    assert body["state"] == "establishing"
    assert body["mediaState"]["audio"] == "inactive"
    assert body["mediaConfig"]["@odata.type"] == "#microsoft.graph.appHostedMediaConfig"
    assert body["toneInfo"] == {
        "@odata.type": "#microsoft.graph.toneInfo",
        "sequenceId": 2,
        "tone": "pound",
    }


def test_render_call_result_info_has_its_type_and_integers() -> None:
    call = make_call(state=CallState.TERMINATED, result_info=OPERATION_COMPLETED)
    assert render_call(call, ApiVersion.V1)["resultInfo"] == {
        "@odata.type": "#microsoft.graph.resultInfo",
        "code": 200,
        "subcode": 0,
        "message": "Action completed successfully.",
    }


# -- operations -----------------------------------------------------------------


@BOTH
def test_render_play_prompt_running_matches_the_doc_response(
    version: ApiVersion,
) -> None:
    body = render_operation(make_op(OperationKind.PLAY_PROMPT), version)
    assert body == {
        "@odata.type": "#microsoft.graph.playPromptOperation",
        "id": OP_ID,
        "status": "running",
        "clientContext": "d45324c1",
    }
    assert next(iter(body)) == "@odata.type"


@BOTH
def test_render_play_prompt_completed_has_completion_reason_in_both_versions(
    version: ApiVersion,
) -> None:
    op = make_op(
        OperationKind.PLAY_PROMPT,
        status=OperationStatus.COMPLETED,
        result_info=PLAY_COMPLETED,
        completion_reason=CompletionReason.COMPLETED_SUCCESSFULLY,
    )
    body = render_operation(op, version)
    assert body["status"] == "completed"
    assert body["resultInfo"]["code"] == 200
    assert body["resultInfo"]["subcode"] == 0
    assert body["completionReason"] == "completedSuccessfully"


def test_render_queued_operation_is_not_started() -> None:
    op = make_op(OperationKind.PLAY_PROMPT, status=OperationStatus.NOT_STARTED)
    assert render_operation(op, ApiVersion.V1)["status"] == "notStarted"


def test_render_record_running_shows_doc_nulls() -> None:
    body = render_operation(make_op(OperationKind.RECORD), ApiVersion.BETA)
    assert body == {
        "@odata.type": "#microsoft.graph.recordOperation",
        "id": OP_ID,
        "status": "running",
        "clientContext": "d45324c1",
        "resultInfo": None,
        "recordingLocation": None,
        "recordingAccessToken": None,
        "completionReason": None,
    }


def test_render_record_completed_has_location_and_token() -> None:
    op = make_op(
        OperationKind.RECORD,
        status=OperationStatus.COMPLETED,
        result_info=RECORD_MAX_DURATION,
        completion_reason=CompletionReason.MAX_RECORD_DURATION_REACHED,
        recording_location="http://127.0.0.1:8000/recordings/x",
        recording_access_token="tok",
    )
    body = render_operation(op, ApiVersion.V1)
    assert body["recordingLocation"] == "http://127.0.0.1:8000/recordings/x"
    assert body["recordingAccessToken"] == "tok"
    assert body["resultInfo"]["subcode"] == 8515
    assert body["completionReason"] == "maxRecordDurationReached"


def test_render_record_cancelled_has_empty_recording_fields() -> None:
    op = make_op(
        OperationKind.RECORD,
        status=OperationStatus.FAILED,
        result_info=CANCELLED,
        completion_reason=CompletionReason.OPERATION_CANCELED,
    )
    body = render_operation(op, ApiVersion.V1)
    assert body["status"] == "failed"
    assert body["resultInfo"] == {
        "@odata.type": "#microsoft.graph.resultInfo",
        "code": 400,
        "subcode": 8508,
        "message": "Action failed, the operation was cancelled.",
    }
    assert body["recordingLocation"] == ""
    assert body["recordingAccessToken"] == ""
    assert body["completionReason"] == "operationCanceled"


def test_render_legacy_record_uses_the_2018_names() -> None:
    op = make_op(
        OperationKind.RECORD,
        api_version=ApiVersion.BETA,
        legacy_record=True,
        status=OperationStatus.COMPLETED,
        recording_location="http://h/recordings/x",
        recording_access_token="tok",
    )
    body = render_operation(op, ApiVersion.BETA)
    assert body["recordResourceLocation"] == "http://h/recordings/x"
    assert body["recordResourceAccessToken"] == "tok"
    assert "recordingLocation" not in body


@pytest.mark.parametrize(
    ("kind", "odata_type"),
    [
        (OperationKind.SUBSCRIBE_TO_TONE, "subscribeToToneOperation"),
        (OperationKind.MUTE, "muteParticipantOperation"),
        (OperationKind.UNMUTE, "unmuteParticipantOperation"),
    ],
)
def test_render_completed_at_once_operations(
    kind: OperationKind, odata_type: str
) -> None:
    op = make_op(kind, status=OperationStatus.COMPLETED)
    assert render_operation(op, ApiVersion.V1) == {
        "@odata.type": f"#microsoft.graph.{odata_type}",
        "id": OP_ID,
        "status": "completed",
        "clientContext": "d45324c1",
    }


@pytest.mark.parametrize("applied", [True, False])
def test_render_cancel_reports_the_all_that_was_applied(applied: bool) -> None:
    op = make_op(
        OperationKind.CANCEL_MEDIA_PROCESSING,
        status=OperationStatus.COMPLETED,
        cancel_all=applied,
    )
    body = render_operation(op, ApiVersion.V1)
    assert body["@odata.type"] == "#microsoft.graph.cancelMediaProcessingOperation"
    assert body["status"] == "completed"
    assert body["all"] is applied


def test_render_send_dtmf_cancelled_stays_completed_with_reason() -> None:
    op = make_op(
        OperationKind.SEND_DTMF_TONES,
        status=OperationStatus.COMPLETED,
        completion_reason=CompletionReason.MEDIA_OPERATION_CANCELED,
    )
    body = render_operation(op, ApiVersion.V1)
    assert body["@odata.type"] == "#microsoft.graph.sendDtmfTonesOperation"
    assert body["status"] == "completed"
    assert body["completionReason"] == "mediaOperationCanceled"


def test_render_update_recording_status_shows_result_info_null() -> None:
    op = make_op(
        OperationKind.UPDATE_RECORDING_STATUS, status=OperationStatus.COMPLETED
    )
    body = render_operation(op, ApiVersion.V1)
    assert body["@odata.type"] == "#microsoft.graph.updateRecordingStatusOperation"
    assert body["resultInfo"] is None


def test_render_operation_without_client_context_writes_null() -> None:
    op = make_op(OperationKind.PLAY_PROMPT, client_context=None)
    assert render_operation(op, ApiVersion.V1)["clientContext"] is None


# -- notifications --------------------------------------------------------------


def only_change(payload: dict[str, Any]) -> dict[str, Any]:
    """Return the single commsNotification of an envelope, checking the envelope."""
    assert payload["@odata.type"] == "#microsoft.graph.commsNotifications"
    assert len(payload["value"]) == 1
    change: dict[str, Any] = payload["value"][0]
    assert change["@odata.type"] == "#microsoft.graph.commsNotification"
    json.dumps(payload)  # JSON-ready all the way down
    return change


@BOTH
def test_operation_deleted_notification_matches_the_doc_example(
    version: ApiVersion,
) -> None:
    op = make_op(
        OperationKind.PLAY_PROMPT,
        status=OperationStatus.COMPLETED,
        result_info=PLAY_COMPLETED,
        completion_reason=CompletionReason.COMPLETED_SUCCESSFULLY,
    )
    op.note(0, "requested")
    op.note(20, "running")
    change = only_change(render_notification(make_call(), "deleted", op, version))
    url = f"/communications/calls/{CALL_ID}/operations/{OP_ID}"
    assert change["changeType"] == "deleted"
    assert change["resourceUrl"] == url
    assert change["resource"] == f"/app/calls/{CALL_ID}/operations/{OP_ID}"
    data = change["resourceData"]
    assert list(data)[:3] == ["@odata.type", "@odata.id", "@odata.etag"]
    assert data["@odata.type"] == "#microsoft.graph.playPromptOperation"
    assert data["@odata.id"] == url
    assert data["@odata.etag"] == 'W/"2"'
    assert data["id"] == OP_ID
    assert data["clientContext"] == "d45324c1"
    assert data["status"] == "completed"
    assert data["resultInfo"]["message"] == "Action completed successfully."


def test_tone_update_carries_state_and_tone_info_only() -> None:
    call = make_call(tone_sequence=1, last_tone="tone1")
    payload = render_notification(
        call, "updated", call, ApiVersion.V1, fields=["state", "toneInfo"]
    )
    change = only_change(payload)
    assert change["changeType"] == "updated"
    assert change["resourceUrl"] == f"/communications/calls/{CALL_ID}"
    assert change["resource"] == f"/app/calls/{CALL_ID}"
    data = change["resourceData"]
    assert data["@odata.type"] == "#microsoft.graph.call"
    assert data["@odata.id"] == f"/communications/calls/{CALL_ID}"
    assert data["@odata.etag"].startswith('W/"')
    assert data["state"] == "established"
    assert data["toneInfo"] == {
        "@odata.type": "#microsoft.graph.toneInfo",
        "sequenceId": 1,
        "tone": "tone1",
    }
    assert set(data) == {"@odata.type", "@odata.id", "@odata.etag", "state", "toneInfo"}


def test_call_update_with_only_state() -> None:
    call = make_call(state=CallState.TERMINATING)
    data = only_change(render_notification(call, "updated", call, ApiVersion.V1))[
        "resourceData"
    ]
    assert data["state"] == "terminating"
    assert set(data) == {"@odata.type", "@odata.id", "@odata.etag", "state"}


def test_call_deleted_carries_terminated_and_result_info() -> None:
    call = make_call(state=CallState.TERMINATED, result_info=OPERATION_COMPLETED)
    change = only_change(render_notification(call, "deleted", call, ApiVersion.V1))
    assert change["changeType"] == "deleted"
    data = change["resourceData"]
    assert data["state"] == "terminated"
    assert data["resultInfo"]["@odata.type"] == "#microsoft.graph.resultInfo"


def test_incoming_call_created_carries_the_whole_call() -> None:
    call = make_call(
        direction=Direction.INCOMING,
        state=CallState.INCOMING,
        source=CALLEE,
        targets=[BOT],
        tenant_id="t1",
    )
    for fields in ((), ("*",)):
        change = only_change(
            render_notification(call, "created", call, ApiVersion.V1, fields=fields)
        )
        data = change["resourceData"]
        assert change["changeType"] == "created"
        assert data["state"] == "incoming"
        assert data["direction"] == "incoming"
        assert data["source"] == CALLEE
        assert data["myParticipantId"] == call.my_participant_id
        assert data["callbackUri"] == call.callback_uri
        assert data["tenantId"] == "t1"
        assert data["id"] == CALL_ID


def test_roster_notification_has_the_bot_participant_muted() -> None:
    call = make_call(muted=True)
    change = only_change(
        render_notification(call, "updated", PARTICIPANTS, ApiVersion.V1)
    )
    assert change["resourceUrl"] == f"/communications/calls/{CALL_ID}/participants"
    assert change["resource"] == f"/app/calls/{CALL_ID}/participants"
    roster = change["resourceData"]
    assert isinstance(roster, list)
    bot, callee = roster
    assert bot["@odata.type"] == "#microsoft.graph.participant"
    assert bot["id"] == call.my_participant_id
    assert bot["isMuted"] is True
    assert bot["info"]["identity"] == BOT["identity"]
    assert callee["isMuted"] is False
    assert callee["info"]["identity"] == CALLEE["identity"]


def test_roster_of_incoming_call_puts_the_bot_first() -> None:
    call = make_call(direction=Direction.INCOMING, source=CALLEE, targets=[BOT])
    bot, caller = render_participants(call)
    assert bot["info"]["identity"] == BOT["identity"]
    assert caller["info"]["identity"] == CALLEE["identity"]
    assert render_participants(call)[1]["id"] == caller["id"]  # stable ids
