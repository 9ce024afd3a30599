"""Big and crowded IVR queues: barge-ins, 20 prompts, 200 operations, tones.

The promises: barge-in stops the running and queued operations as a cancel
does (one ``deleted`` each, in order) and starts at once; playPrompt takes up
to 20 prompts; every operation reaches exactly one terminal state.
"""

from __future__ import annotations

import pytest
import robustness_support as rs

from graphcomms.testing import (
    GraphcommsServer,
    PromptServer,
    WebhookReceiver,
    press,
    speak,
    tone_wav,
)

CANCELLED = ("failed", 400, 8508)
BARGE_IN = {**rs.RECORD, "bargeInAllowed": True}


def test_barge_in_record_during_barge_in_record_cancels_the_first_once(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
) -> None:
    """A second barge-in record stops the first (8508) and records itself."""
    server, receiver = graphcomms_server, webhook_receiver
    call_id = rs.answered_call(
        server, receiver, script=[speak(2000), press("#"), speak(500), press("#")]
    )
    first = rs.operation(server, call_id, "recordResponse", BARGE_IN)
    server.advance(1000)
    second = rs.operation(server, call_id, "recordResponse", BARGE_IN)

    assert (first["status"], second["status"]) == ("running", "running")
    server.advance(3000)

    ended = rs.wait_for_end(server, receiver, first["id"])
    assert rs.result_of(ended) == CANCELLED
    assert ended["completionReason"] == "operationCanceled"
    assert ended["recordingLocation"] == ""
    done = rs.wait_for_end(server, receiver, second["id"])
    assert rs.result_of(done) == ("completed", 200, 8514)
    assert done["recordingLocation"].endswith(second["id"])


def test_barge_in_record_with_five_queued_prompts_cancels_all_in_order(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    prompt_server: PromptServer,
) -> None:
    """Running + 4 waiting prompts end 8508 in queue order; the beep is at once."""
    server, receiver = graphcomms_server, webhook_receiver
    long = prompt_server.add("long.wav", tone_wav(3000, 500.0))
    call_id = rs.answered_call(server, receiver)
    rs.operation(server, call_id, "subscribeToTone")
    plays = [rs.play(server, call_id, long)["id"] for _ in range(5)]
    server.advance(200)

    record = rs.operation(server, call_id, "recordResponse", BARGE_IN)
    assert record["status"] == "running"
    server.caller(call_id).press("5")  # the subscription outlives the barge-in
    server.advance(400)

    assert server.drain(5.0)
    ended = [n.operation_id for n in receiver.for_call(call_id) if n.operation_id]
    assert ended == plays
    for op_id in plays:
        assert rs.result_of(rs.ends(receiver, op_id)[0]) == CANCELLED
    views = {v["resource"]["id"]: v for v in server.history(call_id)["operations"]}
    assert views[record["id"]]["startedMs"] == views[record["id"]]["createdMs"]
    assert [t.tone for t in receiver.tones(call_id, at_least=1)] == ["tone5"]
    assert rs.hang_up(server, call_id).status_code == 204
    server.advance(20)
    rs.assert_call_story(server, receiver, call_id)


def test_play_prompt_with_20_prompts_plays_them_all_in_one_operation(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    prompt_server: PromptServer,
) -> None:
    """20 prompts of 100 ms: one operation that completes 2 s after it starts."""
    server, receiver = graphcomms_server, webhook_receiver
    uris = [prompt_server.add(f"p{i}.wav", tone_wav(100)) for i in range(20)]
    call_id = rs.answered_call(server, receiver)

    op = rs.play(server, call_id, *uris)
    too_many = rs.graph(
        server, call_id, "playPrompt", {"prompts": rs.prompts(*uris, uris[0])}
    )
    server.advance(2500)

    rs.assert_graph_error(too_many, 400, "8523")
    assert rs.result_of(rs.wait_for_end(server, receiver, op["id"])) == (
        "completed",
        200,
        0,
    )
    view = server.history(call_id)["operations"][0]
    assert view["finishedMs"] - view["startedMs"] == 2000
    assert rs.loud_frames(rs.heard(server, call_id)) == 100


def test_200_queued_operations_cancelled_end_once_each_in_order(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    prompt_server: PromptServer,
) -> None:
    """199 prompts and a record behind a running prompt, one cancel: 200 ends."""
    server, receiver = graphcomms_server, webhook_receiver
    long = prompt_server.add("long.wav", tone_wav(3000))
    call_id = rs.answered_call(server, receiver)
    ops = [rs.play(server, call_id, long)["id"] for _ in range(199)]
    ops.append(rs.operation(server, call_id, "recordResponse", rs.RECORD)["id"])
    server.advance(100)

    rs.cancel(server, call_id)
    server.advance(100)

    assert server.drain(10.0)
    ended = [n.operation_id for n in receiver.for_call(call_id) if n.operation_id]
    assert ended == ops
    assert rs.hang_up(server, call_id).status_code == 204
    server.advance(20)
    rs.assert_call_story(server, receiver, call_id)


@pytest.mark.parametrize("second", [["tone3"], ["flash"]])
def test_send_dtmf_tones_twice_both_complete(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    second: list[str],
) -> None:
    """Two sends back to back: both end ``completed`` and both are heard."""
    server, receiver = graphcomms_server, webhook_receiver
    call_id = rs.answered_call(server, receiver)
    first = rs.operation(
        server, call_id, "sendDtmfTones", {"tones": ["tone1", "tone2"]}
    )
    then = rs.operation(server, call_id, "sendDtmfTones", {"tones": second})
    server.advance(2000)

    assert server.drain(5.0)
    assert rs.result_of(rs.wait_for_end(server, receiver, then["id"]))[0] == (
        "completed"
    )
    ended = rs.ends(receiver, first["id"])
    assert [rs.result_of(e) for e in ended] == [("completed", 200, 0)]


def test_beta_prompt_loop_beyond_int32_is_400(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    prompt_server: PromptServer,
) -> None:
    """loop = 10**20 on a beta mediaPrompt is refused as an invalid Int32."""
    server, receiver = graphcomms_server, webhook_receiver
    short = prompt_server.add("short.wav", tone_wav(100))
    call_id = rs.answered_call(server, receiver)
    body = {"prompts": [{**rs.prompts(short)[0], "loop": 10**20}]}

    response = rs.graph(server, call_id, "playPrompt", body, version="beta")

    rs.assert_graph_error(response, 400, "8523")


def test_beta_prompt_loop_count_plays_that_many_times(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    prompt_server: PromptServer,
) -> None:
    """A large but sane loop count (500 x 20 ms) plays 10 s, then completes."""
    server, receiver = graphcomms_server, webhook_receiver
    blip = prompt_server.add("blip.wav", tone_wav(20))
    call_id = rs.answered_call(server, receiver)
    body = {"prompts": [{**rs.prompts(blip)[0], "loop": 500}]}
    op = rs.operation(server, call_id, "playPrompt", body, version="beta")

    server.advance(10_200)

    assert rs.result_of(rs.wait_for_end(server, receiver, op["id"])) == (
        "completed",
        200,
        0,
    )
    assert rs.loud_frames(rs.heard(server, call_id)) == 500
