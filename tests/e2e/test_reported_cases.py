"""The reported cases of cases/reported.md that touch the API, over HTTP.

Each test drives a running graphcomms with raw Graph requests (httpx) and
reads the notifications a real webhook received. Clock times come from the
emulator's history, so timing assertions are exact on the virtual clock.
"""

from __future__ import annotations

import uuid

import pytest

from graphcomms.testing import (
    GraphcommsServer,
    PromptServer,
    ToneInfo,
    WebhookReceiver,
    tone_wav,
)

from .helpers import (
    APP_HOSTED,
    SERVICE_HOSTED,
    action,
    assert_graph_error,
    create_call,
    dominant_hz,
    frame_at,
    heard_frames,
    operation,
    operation_view,
    play,
    prompt,
    result,
)

PROMPT_HZ = 440
BEEP_HZ = 1000
"""graphcomms' record beep."""


@pytest.fixture
def menu(prompt_server: PromptServer) -> str:
    """A valid 20 s prompt (BL conventions' menu-20s.wav)."""
    return prompt_server.add("menu-20s.wav", tone_wav(20_000, PROMPT_HZ))


@pytest.fixture
def beep(prompt_server: PromptServer) -> str:
    """A valid 0.5 s prompt (BL conventions' beep.wav)."""
    return prompt_server.add("beep.wav", tone_wav(500, BEEP_HZ))


# BL-02 -------------------------------------------------------------------------


def test_record_barge_in_true_cuts_running_prompt_at_once(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver, menu: str
) -> None:
    """bargeInAllowed: the prompt ends 8508 at 2 s; the beep plays at once."""
    server, receiver = graphcomms_server, webhook_receiver
    call_id = create_call(server, receiver)
    long = play(server, call_id, menu, "ctx-long")
    server.advance(2000)

    record = operation(
        server,
        call_id,
        "recordResponse",
        {
            "clientContext": "ctx-rec",
            "bargeInAllowed": True,
            "playBeep": True,
            "maxRecordDurationInSeconds": 5,
        },
    )
    barge_ms = server.now_ms
    assert record["status"] == "running"
    ended = receiver.operation_ended(long["id"])
    assert ended["status"] == "failed" and result(ended) == (400, 8508)
    assert ended["completionReason"] == "mediaOperationCanceled"
    assert operation_view(server, call_id, record["id"])["startedMs"] == barge_ms

    server.advance(400)
    frames = heard_frames(server, call_id)
    at = frame_at(server, call_id, barge_ms)
    assert dominant_hz(frames[at - 10 : at].ravel()) == pytest.approx(PROMPT_HZ, abs=10)
    assert dominant_hz(frames[at + 2 : at + 12].ravel()) == pytest.approx(
        BEEP_HZ, abs=10
    )


def test_record_barge_in_false_waits_for_prompt_end(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver, menu: str
) -> None:
    """Without barge-in the record queues and starts when the prompt ends."""
    server, receiver = graphcomms_server, webhook_receiver
    call_id = create_call(server, receiver)
    long = play(server, call_id, menu, "ctx-long")
    server.advance(2000)
    record = operation(
        server,
        call_id,
        "recordResponse",
        {"clientContext": "ctx-rec", "bargeInAllowed": False, "playBeep": True},
    )
    assert record["status"] == "notStarted"

    server.advance(17_900)
    assert server.drain()
    assert not [n for n in receiver.for_call(call_id) if n.operation_id]
    server.advance(200)
    ended = receiver.operation_ended(long["id"])
    assert ended["status"] == "completed" and result(ended) == (200, 0)
    long_view = operation_view(server, call_id, long["id"])
    assert long_view["finishedMs"] - long_view["startedMs"] == 20_000
    record_view = operation_view(server, call_id, record["id"])
    assert record_view["startedMs"] == long_view["finishedMs"]


# BL-03 -------------------------------------------------------------------------


def test_cancel_media_processing_with_dtmf_and_record_ends_each_as_its_page_says(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver
) -> None:
    """Cancel: record failed 8508; sendDtmfTones completed mediaOperationCanceled."""
    server, receiver = graphcomms_server, webhook_receiver
    call_id = create_call(server, receiver)
    dtmf = operation(
        server,
        call_id,
        "sendDtmfTones",
        {
            "tones": ["tone1", "tone2", "tone3"],
            "delayBetweenTonesMs": 1000,
            "clientContext": "ctx-dtmf",
        },
    )
    record = operation(server, call_id, "recordResponse", {"clientContext": "ctx-rec"})
    cancel = operation(server, call_id, "cancelMediaProcessing", {})

    assert cancel["@odata.type"] == "#microsoft.graph.cancelMediaProcessingOperation"
    assert cancel["status"] == "completed"
    record_end = receiver.operation_ended(record["id"])
    assert record_end["status"] == "failed" and result(record_end) == (400, 8508)
    assert record_end["completionReason"] == "operationCanceled"
    assert record_end["recordingLocation"] == ""
    dtmf_end = receiver.operation_ended(dtmf["id"])
    assert dtmf_end["status"] == "completed"
    assert dtmf_end["completionReason"] == "mediaOperationCanceled"


# BL-05 / BL-06 -----------------------------------------------------------------


@pytest.mark.graphcomms(prompt_timeout_s=0.5)
def test_prompt_fetch_failures_fail_their_ops_and_call_plays_on(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    prompt_server: PromptServer,
    beep: str,
) -> None:
    """404, DNS failure, stall: 8536; 8 kHz WAV: 8535; then the beep plays."""
    server, receiver = graphcomms_server, webhook_receiver
    bad = {
        "ctx-404": (prompt_server.url("missing.wav"), 8536),
        "ctx-dns": ("https://unreachable.example.invalid/a.wav", 8536),
        "ctx-stall": (prompt_server.add_stalling("slow.wav"), 8536),
        "ctx-8k": (
            prompt_server.add("narrow.wav", tone_wav(500, 440, sample_rate_hz=8000)),
            8535,
        ),
    }
    call_id = create_call(server, receiver)
    ops = {ctx: play(server, call_id, uri, ctx) for ctx, (uri, _) in bad.items()}
    good = play(server, call_id, beep, "ctx-beep")
    assert {op["status"] for op in ops.values()} <= {"running", "notStarted"}

    server.advance(1000)
    for ctx, (_, subcode) in bad.items():
        ended = receiver.operation_ended(ops[ctx]["id"])
        assert ended["status"] == "failed", ctx
        assert result(ended) == (400, subcode), ctx
    played = receiver.operation_ended(good["id"])
    assert played["status"] == "completed" and result(played) == (200, 0)
    assert played["completionReason"] == "completedSuccessfully"
    assert prompt_server.requests("slow.wav") >= 1
    call = server.http.get(f"/v1.0/communications/calls/{call_id}").json()
    assert call["state"] == "established"


# BL-07 -------------------------------------------------------------------------


def test_beta_app_calls_play_prompt_with_lowercase_resourceid_answers_at_once(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver, beep: str
) -> None:
    """/beta/app/calls/{id}/playPrompt: 200, the operation, a Location, no wait."""
    server, receiver = graphcomms_server, webhook_receiver
    call_id = create_call(server, receiver, version="beta")
    before_ms = server.now_ms
    body = {
        "prompts": [
            {
                "@odata.type": "#microsoft.graph.mediaPrompt",
                "mediaInfo": {"uri": beep, "resourceid": str(uuid.uuid4())},
                "loop": 5,
            }
        ]
    }
    response = server.http.post(f"/beta/app/calls/{call_id}/playPrompt", json=body)

    assert response.status_code == 200, response.text
    op = response.json()
    assert op["@odata.type"] == "#microsoft.graph.playPromptOperation"
    assert op["status"] == "running" and op["id"]
    assert response.headers["Location"].endswith(f"/operations/{op['id']}")
    assert server.now_ms == before_ms
    server.advance(3000)
    assert receiver.operation_ended(op["id"])["status"] == "completed"
    # beta keeps the 2018 per-prompt loop: five plays of 0.5 s
    view = operation_view(server, call_id, op["id"])
    assert view["finishedMs"] - view["startedMs"] == 2500


@pytest.mark.parametrize(
    "spelling",
    [
        "/v1.0/communications/calls/{id}/microsoft.graph.playPrompt",
        "/V1.0/Communications/Calls/{ID}/PLAYPROMPT",
        "/beta/app/calls/{id}/Microsoft.Graph.PlayPrompt",
        "/beta/applications/00000000-app/calls/{id}/playPrompt",
    ],
)
def test_action_path_spellings_reach_the_same_action(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    beep: str,
    spelling: str,
) -> None:
    """Namespaced, any case, GUID without dashes, legacy prefixes: all 200."""
    server = graphcomms_server
    call_id = create_call(server, webhook_receiver)
    path = spelling.format(id=call_id, ID=call_id.replace("-", "").upper())
    response = server.http.post(path, json={"prompts": [prompt(beep)]})
    assert response.status_code == 200, response.text
    op = response.json()
    assert op["@odata.type"] == "#microsoft.graph.playPromptOperation"
    found = server.http.get(
        f"/v1.0/communications/calls/{call_id}/operations/{op['id']}"
    )
    assert found.status_code == 200


# BL-10 -------------------------------------------------------------------------


def test_v1_play_prompt_loop_100_plays_once(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver, beep: str
) -> None:
    """v1.0 mediaPrompt has no loop: one play, completed after 0.5 s."""
    server, receiver = graphcomms_server, webhook_receiver
    call_id = create_call(server, receiver)
    body = {"clientContext": "ctx-loop", "prompts": [{**prompt(beep), "loop": 100}]}
    op = operation(server, call_id, "playPrompt", body)

    server.advance(600)
    ended = receiver.operation_ended(op["id"])
    assert ended["status"] == "completed" and result(ended) == (200, 0)
    view = operation_view(server, call_id, op["id"])
    assert view["finishedMs"] - view["startedMs"] == 500


# BL-12 / BL-23 -----------------------------------------------------------------


def _assert_ops_end_before_call(
    receiver: WebhookReceiver, call_id: str, op_ids: list[str]
) -> dict[str, object]:
    """Check: each op ended once, before terminating, before terminated."""
    terminated = receiver.call_state(call_id, "terminated")
    notes = receiver.for_call(call_id)
    op_ends = [n.index for n in notes if n.operation_id in op_ids]
    assert len(op_ends) == len(op_ids)
    terminating = [n.index for n in notes if n.data.get("state") == "terminating"]
    deleted = [
        n.index for n in notes if n.change_type == "deleted" and not n.operation_id
    ]
    assert len(terminating) == 1 and len(deleted) == 1
    assert max(op_ends) < terminating[0] < deleted[0]
    for op_id in op_ids:
        ended = receiver.operation_ended(op_id)
        assert ended["status"] == "failed" and result(ended) == (400, 8528)
    return terminated


def test_caller_hang_up_mid_record_ends_every_op_before_the_call(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver, menu: str
) -> None:
    """BL-12: record and queued prompt end, then terminating, then terminated."""
    server, receiver = graphcomms_server, webhook_receiver
    call_id = create_call(server, receiver)
    record = operation(
        server,
        call_id,
        "recordResponse",
        {"clientContext": "ctx-rec", "maxRecordDurationInSeconds": 10},
    )
    queued = play(server, call_id, menu, "ctx-queued")
    server.caller(call_id).speak(ms=1000)
    server.advance(2000)
    server.caller(call_id).hang_up()
    server.advance(40)

    terminated = _assert_ops_end_before_call(
        receiver, call_id, [record["id"], queued["id"]]
    )
    assert terminated["resultInfo"]["code"] == 200
    views = server.history(call_id)["operations"]
    assert all(v["resource"]["status"] in ("completed", "failed") for v in views)
    response = server.http.get(f"/v1.0/communications/calls/{call_id}")
    assert_graph_error(response, 404, "8522")


def test_caller_hang_up_during_prompt_notifies_localhost_callback(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver, menu: str
) -> None:
    """BL-23: a http://localhost callback hears the prompt end and the call end."""
    server, receiver = graphcomms_server, webhook_receiver
    local = receiver.url.replace("127.0.0.1", "localhost")
    call_id = create_call(server, receiver, callback_uri=local)
    op = play(server, call_id, menu, "ctx-menu")
    server.advance(5000)
    server.caller(call_id).hang_up()
    server.advance(40)

    terminated = _assert_ops_end_before_call(receiver, call_id, [op["id"]])
    assert terminated["resultInfo"]["code"] == 200
    assert server.drain()
    delivered = server.history(call_id)["notifications"]
    assert {n["url"] for n in delivered} == {local}
    assert all(n["status"] == "delivered" for n in delivered)


# BL-14 -------------------------------------------------------------------------


def test_ivr_actions_on_app_hosted_call_answer_400_naming_the_media_mode(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver, beep: str
) -> None:
    """subscribeToTone, playPrompt, recordResponse: 400/8500, never 500."""
    server, receiver = graphcomms_server, webhook_receiver
    call_id = create_call(server, receiver, mediaConfig=APP_HOSTED)
    for name, body in [
        ("subscribeToTone", {"clientContext": "ctx"}),
        ("playPrompt", {"prompts": [prompt(beep)]}),
        ("recordResponse", {"clientContext": "ctx"}),
    ]:
        error = assert_graph_error(action(server, call_id, name, body), 400, "8500")
        assert "appHostedMediaConfig" in error["message"], name
        assert "serviceHostedMediaConfig" in error["message"], name


# BL-15 -------------------------------------------------------------------------


def test_tones_from_one_caller_arrive_in_sequence_without_participant(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver
) -> None:
    """5 then 6: two call updates, sequenceId 1 and 2, no participant field."""
    server, receiver = graphcomms_server, webhook_receiver
    call_id = create_call(server, receiver)
    operation(server, call_id, "subscribeToTone", {"clientContext": "ctx"})
    caller = server.caller(call_id)
    caller.press("5")
    caller.silence(200)
    caller.press("6")
    server.advance(800)

    tones = receiver.tones(call_id, at_least=2)
    assert tones == [ToneInfo(1, "tone5"), ToneInfo(2, "tone6")]
    updates = [n for n in receiver.for_call(call_id) if "toneInfo" in n.data]
    assert [n.change_type for n in updates] == ["updated", "updated"]
    for note in updates:
        assert set(note.data["toneInfo"]) == {"@odata.type", "sequenceId", "tone"}
        assert not [key for key in note.data if "participant" in key.lower()]


def test_same_key_pressed_twice_as_two_caller_actions_gives_two_tones(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver
) -> None:
    """press("5"), press("5"): a caller entering "55" key by key, two tones."""
    server, receiver = graphcomms_server, webhook_receiver
    call_id = create_call(server, receiver)
    operation(server, call_id, "subscribeToTone", {"clientContext": "ctx"})
    server.caller(call_id).press("5")
    server.caller(call_id).press("5")
    server.advance(800)
    assert server.drain()
    assert receiver.tones(call_id) == [ToneInfo(1, "tone5"), ToneInfo(2, "tone5")]


# BL-17 -------------------------------------------------------------------------


def test_incoming_call_not_answered_in_15_s_is_deleted_and_late_answer_404(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver
) -> None:
    """The deadline is exact: alive at 14.98 s, deleted at 15 s with resultInfo."""
    server, receiver = graphcomms_server, webhook_receiver
    call_id = server.place_call(receiver.url)
    created = receiver.wait_for(lambda n: n.change_type == "created")
    assert created.call_id == call_id and created.data["state"] == "incoming"

    server.advance(14_980)
    assert server.drain()
    assert not [n for n in receiver.for_call(call_id) if n.change_type == "deleted"]
    server.advance(20)
    deleted = receiver.wait_for(
        lambda n: n.call_id == call_id and n.change_type == "deleted"
    )
    assert deleted.data["state"] == "terminated"
    assert result(deleted.data) == (408, 1106)
    late = action(
        server,
        call_id,
        "answer",
        {
            "callbackUri": receiver.url,
            "acceptedModalities": ["audio"],
            "mediaConfig": SERVICE_HOSTED,
        },
    )
    assert_graph_error(late, 404, "8522")


# BL-22 -------------------------------------------------------------------------


def test_client_context_256_chars_is_echoed_and_257_is_400(
    graphcomms_server: GraphcommsServer, webhook_receiver: WebhookReceiver, beep: str
) -> None:
    """clientContext up to 256 characters, echoed in response and notification."""
    server, receiver = graphcomms_server, webhook_receiver
    call_id = create_call(server, receiver)
    longest = "c" * 256
    op = play(server, call_id, beep, longest)
    assert op["clientContext"] == longest
    server.advance(600)
    assert receiver.operation_ended(op["id"])["clientContext"] == longest

    too_long = {"clientContext": "c" * 257, "prompts": [prompt(beep)]}
    error = assert_graph_error(
        action(server, call_id, "playPrompt", too_long), 400, "8523"
    )
    assert "clientContext" in error["message"]


def test_resource_id_reused_with_new_uri_plays_cached_audio(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    prompt_server: PromptServer,
) -> None:
    """A resourceId keys the first URI's audio; a new URI under it is not fetched."""
    server, receiver = graphcomms_server, webhook_receiver
    first_uri = prompt_server.add("first.wav", tone_wav(500, 440))
    other_uri = prompt_server.add("other.wav", tone_wav(2000, 880))
    resource_id = str(uuid.uuid4())
    call_id = create_call(server, receiver)

    ops = []
    for uri in (first_uri, other_uri):
        body = {"prompts": [prompt(uri, resourceId=resource_id)]}
        ops.append(operation(server, call_id, "playPrompt", body))
        server.advance(600)
        assert receiver.operation_ended(ops[-1]["id"])["status"] == "completed"
    second = operation_view(server, call_id, ops[1]["id"])
    assert second["finishedMs"] - second["startedMs"] == 500
    assert prompt_server.requests("other.wav") == 0
    frames = heard_frames(server, call_id)
    start = frame_at(server, call_id, second["startedMs"]) + 1
    assert dominant_hz(frames[start : start + 20].ravel()) == pytest.approx(440, abs=10)

    # no resourceId at all is fine too
    plain = play(server, call_id, other_uri)
    server.advance(2100)
    assert receiver.operation_ended(plain["id"])["status"] == "completed"
