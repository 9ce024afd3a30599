"""cancelMediaProcessing at every point of an IVR queue's life.

The promises (design.md, "Engine rules"): a cancel answers a completed
operation carrying the ``all`` it applied; it stops the running operation
and, with ``all`` true or absent, the queue; each stopped operation gets
exactly one ``deleted`` notification (running first, then the queued ones in
order); the caller hears silence within one 20 ms frame; the tone
subscription survives.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler

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


@pytest.mark.parametrize("all_ops", [True, False, None])
def test_cancel_before_any_operation_completes_and_notifies_nothing(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    all_ops: bool | None,
) -> None:
    """An empty queue: the cancel completes, echoes ``all``, and ends nothing."""
    server, receiver = graphcomms_server, webhook_receiver
    call_id = rs.answered_call(server, receiver)

    op = rs.cancel(server, call_id, all_ops)
    second = rs.cancel(server, call_id, all_ops)

    applied = True if all_ops is None else all_ops
    assert op["all"] is applied and second["all"] is applied
    assert op["resultInfo"]["code"] == 200
    server.advance(100)
    assert rs.hang_up(server, call_id).status_code == 204
    server.advance(20)
    rs.assert_call_story(server, receiver, call_id)
    ops = [n for n in receiver.for_call(call_id) if n.operation_id is not None]
    assert ops == []


@pytest.mark.graphcomms(prompt_timeout_s=3.0)
def test_cancel_while_prompt_downloads_fails_it_once_and_never_plays_it(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    prompt_server: PromptServer,
) -> None:
    """all:false while the running prompt is still downloading (1 s stall).

    The download ends after the cancel; the cancelled prompt must not start
    then, and the next prompt plays in its place.
    """
    server, receiver = graphcomms_server, webhook_receiver
    slow_wav = tone_wav(2000, 1000.0)

    def slow(handler: BaseHTTPRequestHandler, _: bytes) -> None:
        time.sleep(1.0)
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(slow_wav)))
        handler.end_headers()
        handler.wfile.write(slow_wav)

    side = rs.SideServer(slow)
    try:
        short = prompt_server.add("short.wav", tone_wav(200))
        call_id = rs.answered_call(server, receiver)
        before = rs.heard_count(server, call_id)
        stalled = rs.play(server, call_id, side.url("/slow.wav"))
        queued = rs.play(server, call_id, short)
        assert (stalled["status"], queued["status"]) == ("running", "notStarted")

        rs.cancel(server, call_id, all_ops=False)
        server.advance(1000)  # waits for the slow download first

        assert rs.result_of(rs.wait_for_end(server, receiver, stalled["id"])) == (
            CANCELLED
        )
        done = rs.wait_for_end(server, receiver, queued["id"])
        assert rs.result_of(done) == ("completed", 200, 0)
        # only the 200 ms prompt was heard: 10 frames, none of the 2 s one
        assert rs.loud_frames(rs.heard(server, call_id)[before:]) == 10
        assert side.requests == 1
    finally:
        side.close()
    assert rs.hang_up(server, call_id).status_code == 204
    server.advance(20)
    rs.assert_call_story(server, receiver, call_id)


@pytest.mark.parametrize("all_ops", [True, False, None])
def test_cancel_during_prompt_silences_caller_within_one_frame(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    prompt_server: PromptServer,
    all_ops: bool | None,
) -> None:
    """A queue of one, cancelled mid-prompt: silence from the next frame on."""
    server, receiver = graphcomms_server, webhook_receiver
    long = prompt_server.add("long.wav", tone_wav(3000))
    call_id = rs.answered_call(server, receiver)
    op = rs.play(server, call_id, long)
    server.advance(500)
    cut = rs.heard_count(server, call_id)
    assert rs.loud_frames(rs.heard(server, call_id)) >= 20  # it was playing

    rs.cancel(server, call_id, all_ops)
    server.advance(400)

    after = rs.heard(server, call_id)[cut + rs.FRAME_SAMPLES :]
    assert len(after) >= 19 * rs.FRAME_SAMPLES
    assert rs.loud_frames(after) == 0
    ended = rs.wait_for_end(server, receiver, op["id"])
    assert rs.result_of(ended) == CANCELLED
    assert ended["completionReason"] == "mediaOperationCanceled"


def test_cancel_on_the_frame_the_first_prompt_ends_fails_only_the_second(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    prompt_server: PromptServer,
) -> None:
    """Between two queued prompts, exactly at the tick the first one ends."""
    server, receiver = graphcomms_server, webhook_receiver
    short = prompt_server.add("short.wav", tone_wav(100))
    long = prompt_server.add("long.wav", tone_wav(3000, 600.0))
    call_id = rs.answered_call(server, receiver)
    first = rs.play(server, call_id, short)
    second = rs.play(server, call_id, long)

    rs.advance_until(server, lambda: bool(rs.ends(receiver, first["id"])))
    cut = rs.heard_count(server, call_id)
    rs.cancel(server, call_id)
    server.advance(300)

    assert rs.result_of(rs.wait_for_end(server, receiver, first["id"])) == (
        "completed",
        200,
        0,
    )
    assert rs.result_of(rs.wait_for_end(server, receiver, second["id"])) == CANCELLED
    assert rs.loud_frames(rs.heard(server, call_id)[cut + rs.FRAME_SAMPLES :]) == 0


def test_cancel_during_record_beep_fails_record_with_no_recording(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
) -> None:
    """The beep is cut and the record ends 8508 with empty recording fields."""
    server, receiver = graphcomms_server, webhook_receiver
    call_id = rs.answered_call(server, receiver)
    record = rs.operation(server, call_id, "recordResponse", rs.RECORD)
    server.advance(60)
    assert rs.loud_frames(rs.heard(server, call_id)) >= 2  # the beep sounds
    cut = rs.heard_count(server, call_id)

    rs.cancel(server, call_id)
    server.advance(400)

    assert rs.loud_frames(rs.heard(server, call_id)[cut + rs.FRAME_SAMPLES :]) == 0
    ended = rs.wait_for_end(server, receiver, record["id"])
    assert rs.result_of(ended) == CANCELLED
    assert ended["completionReason"] == "operationCanceled"
    assert ended["recordingLocation"] == "" and ended["recordingAccessToken"] == ""


def test_cancel_during_recording_leaves_no_downloadable_recording(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
) -> None:
    """Mid-speech: the record fails 8508 and its recording URL answers 404."""
    server, receiver = graphcomms_server, webhook_receiver
    call_id = rs.answered_call(server, receiver, script=[speak(3000)])
    record = rs.operation(server, call_id, "recordResponse", rs.RECORD)
    server.advance(1500)

    rs.cancel(server, call_id, all_ops=False)
    server.advance(4000)

    ended = rs.wait_for_end(server, receiver, record["id"])
    assert rs.result_of(ended) == CANCELLED
    wanted = server.http.get(
        f"/recordings/{record['id']}", headers={"Authorization": "Bearer anything"}
    )
    rs.assert_graph_error(wanted, 404, "itemNotFound")


def test_cancel_right_after_stop_tone_keeps_the_completed_recording(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    prompt_server: PromptServer,
) -> None:
    """The recording ended on ``#``; a cancel on the next tick cannot undo it.

    The tone update comes before the recording's end, the recording stays
    downloadable, and only the prompt queued behind it is cancelled.
    """
    server, receiver = graphcomms_server, webhook_receiver
    long = prompt_server.add("long.wav", tone_wav(3000))
    call_id = rs.answered_call(server, receiver, script=[speak(1000), press("#")])
    rs.operation(server, call_id, "subscribeToTone")
    record = rs.operation(server, call_id, "recordResponse", rs.RECORD)
    queued = rs.play(server, call_id, long)

    rs.advance_until(server, lambda: bool(rs.ends(receiver, record["id"])))
    rs.cancel(server, call_id)
    server.advance(200)

    ended = rs.wait_for_end(server, receiver, record["id"])
    assert rs.result_of(ended) == ("completed", 200, 8514)
    assert rs.result_of(rs.wait_for_end(server, receiver, queued["id"])) == CANCELLED
    notes = receiver.for_call(call_id)
    tone_at = next(i for i, n in enumerate(notes) if "toneInfo" in n.data)
    end_at = next(i for i, n in enumerate(notes) if n.operation_id == record["id"])
    assert tone_at < end_at
    token = ended["recordingAccessToken"]
    path = ended["recordingLocation"].removeprefix(server.base_url)
    got = server.http.get(path, headers={"Authorization": f"Bearer {token}"})
    assert got.status_code == 200 and got.content[:4] == b"RIFF"
    rs.assert_graph_error(
        server.http.get(path, headers={"Authorization": "Bearer wrong"}),
        401,
        "InvalidAuthenticationToken",
    )
    rs.assert_graph_error(server.http.get(path), 401, "InvalidAuthenticationToken")


def test_cancel_twice_in_a_row_ends_each_operation_once(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    prompt_server: PromptServer,
) -> None:
    """Running and queued ops, cancelled twice: one ``deleted`` each, in order."""
    server, receiver = graphcomms_server, webhook_receiver
    long = prompt_server.add("long.wav", tone_wav(3000))
    call_id = rs.answered_call(server, receiver)
    ops = [rs.play(server, call_id, long)["id"] for _ in range(3)]
    server.advance(200)

    rs.cancel(server, call_id)
    rs.cancel(server, call_id)
    server.advance(100)

    assert server.drain(5.0)
    ended = [n.operation_id for n in receiver.for_call(call_id) if n.operation_id]
    assert ended == ops
    assert rs.hang_up(server, call_id).status_code == 204
    server.advance(20)
    rs.assert_call_story(server, receiver, call_id)


def test_cancel_all_false_stops_running_and_next_prompt_plays(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    prompt_server: PromptServer,
) -> None:
    """all:false on a queue of two: the first fails, the second completes."""
    server, receiver = graphcomms_server, webhook_receiver
    long = prompt_server.add("long.wav", tone_wav(3000))
    short = prompt_server.add("short.wav", tone_wav(200))
    call_id = rs.answered_call(server, receiver)
    first = rs.play(server, call_id, long)
    second = rs.play(server, call_id, short)
    server.advance(200)

    assert rs.cancel(server, call_id, all_ops=False)["all"] is False
    server.advance(400)

    assert rs.result_of(rs.wait_for_end(server, receiver, first["id"])) == CANCELLED
    done = rs.wait_for_end(server, receiver, second["id"])
    assert rs.result_of(done) == ("completed", 200, 0)


def test_cancel_with_dtmf_in_flight_stops_tones_and_keeps_subscription(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
) -> None:
    """sendDtmfTones is stopped (completed, 8508) and key presses still arrive."""
    server, receiver = graphcomms_server, webhook_receiver
    call_id = rs.answered_call(server, receiver)
    rs.operation(server, call_id, "subscribeToTone")
    tones = rs.operation(server, call_id, "sendDtmfTones", {"tones": ["tone1"] * 20})
    server.advance(100)
    assert rs.loud_frames(rs.heard(server, call_id)) >= 3
    cut = rs.heard_count(server, call_id)

    rs.cancel(server, call_id)
    server.advance(300)

    assert rs.loud_frames(rs.heard(server, call_id)[cut + rs.FRAME_SAMPLES :]) == 0
    ended = rs.wait_for_end(server, receiver, tones["id"])
    assert rs.result_of(ended) == ("completed", 400, 8508)
    assert ended["completionReason"] == "mediaOperationCanceled"
    server.caller(call_id).press("5")
    server.advance(400)
    assert [t.tone for t in receiver.tones(call_id, at_least=1)] == ["tone5"]


def test_cancel_from_many_threads_ends_each_operation_once(
    graphcomms_server: GraphcommsServer,
    webhook_receiver: WebhookReceiver,
    prompt_server: PromptServer,
) -> None:
    """16 concurrent cancels (all true and false) on a queue of ten."""
    server, receiver = graphcomms_server, webhook_receiver
    long = prompt_server.add("long.wav", tone_wav(3000))
    call_id = rs.answered_call(server, receiver)
    ops = [rs.play(server, call_id, long)["id"] for _ in range(10)]
    server.advance(100)

    def cancel(i: int) -> int:
        body = {"all": i % 2 == 0}
        return rs.graph(server, call_id, "cancelMediaProcessing", body).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(cancel, range(16)))
    server.advance(100)

    assert statuses == [200] * 16
    assert server.drain(5.0)
    ended = [n.operation_id for n in receiver.for_call(call_id) if n.operation_id]
    assert ended == ops
    assert rs.hang_up(server, call_id).status_code == 204
    server.advance(20)
    rs.assert_call_story(server, receiver, call_id)
