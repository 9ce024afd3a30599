"""The engine rules of design.md, on a virtual clock with real media."""

from __future__ import annotations

import numpy as np
import pytest

from graphcomms.callers import CallerAction
from graphcomms.engine.call import MediaMode
from graphcomms.engine.engine import NewCall
from graphcomms.engine.operation import ApiVersion, PromptSource, RecordSettings
from graphcomms.errors import (
    CallNotEstablished,
    CallNotFound,
    CallStateConflict,
    MediaModeNotSupported,
    OperationNotFound,
)
from graphcomms.types import FRAME_SAMPLES

from .conftest import Harness, make_harness

V1 = ApiVersion.V1
BOT = "https://bot.example.test/api/calls"


def play(h: Harness, call_id: str, ctx: str, uri: str = "menu-20s.wav"):
    return h.engine.play_prompt(
        call_id,
        (PromptSource(f"https://prompts.example.test/{uri}"),),
        client_context=ctx,
        loop=False,
        api_version=V1,
    )


def record(h: Harness, call_id: str, ctx: str, **settings):
    return h.engine.record_response(
        call_id, RecordSettings(**settings), client_context=ctx, api_version=V1
    )


def cancel(h: Harness, call_id: str, *, all_operations: bool = True, ctx: str = "c"):
    return h.engine.cancel_media_processing(
        call_id, all_operations=all_operations, client_context=ctx, api_version=V1
    )


async def test_outgoing_call_established_after_answer_delay(harness: Harness):
    call = harness.engine.create_call(NewCall(callback_uri=BOT, api_version=V1))
    assert call.state.value == "establishing"
    await harness.advance(980)
    assert call.state.value == "establishing"
    await harness.advance(20)
    assert call.state.value == "established"
    states = [e.state for e in harness.notifier.events if e.kind == "call"]
    assert states == ["establishing", "established"]


async def test_queue_head_running_and_rest_not_started(harness: Harness):
    call = await harness.established_call()
    first = play(harness, call.id, "p1")
    second = play(harness, call.id, "p2")
    third = record(harness, call.id, "r1")
    assert [first.status, second.status, third.status] == [
        "running",
        "notStarted",
        "notStarted",
    ]


async def test_prompt_completes_at_its_exact_duration(harness: Harness):
    call = await harness.established_call()
    start = harness.clock.now_ms()
    op = play(harness, call.id, "p", "p3200.wav")
    await harness.advance(3180)
    assert op.status == "running"
    await harness.advance(20)
    assert op.status == "completed"
    assert op.finished_ms - start == 3200
    [done] = harness.notifier.ops()
    assert (done.code, done.subcode, done.reason) == (200, 0, "completedSuccessfully")


async def test_cancel_all_stops_running_and_queued_in_order_bl01(harness: Harness):
    call = await harness.established_call()
    harness.engine.subscribe_to_tone(call.id, client_context="ctx-tone", api_version=V1)
    p1 = play(harness, call.id, "ctx-p1")
    p2 = play(harness, call.id, "ctx-p2")
    r1 = record(harness, call.id, "ctx-r1", max_record_duration_s=10)
    await harness.advance(3000)
    harness.press(call, "1")
    await harness.advance(200)

    op = cancel(harness, call.id, ctx="ctx-cancel")

    assert (op.status, op.client_context, op.cancel_all) == (
        "completed",
        "ctx-cancel",
        True,
    )
    ops = harness.notifier.ops()
    assert [e.client_context for e in ops] == ["ctx-p1", "ctx-p2", "ctx-r1"]
    assert all((e.status, e.code, e.subcode) == ("failed", 400, 8508) for e in ops)
    assert [e.reason for e in ops] == [
        "mediaOperationCanceled",
        "mediaOperationCanceled",
        "operationCanceled",
    ]
    assert r1.recording_location == "" and r1.recording_access_token == ""
    assert {p1.status, p2.status, r1.status} == {"failed"}
    # nothing plays after the cancel, and the tone subscription survives
    cancelled_at = len(harness.heard(call))
    await harness.advance(1000)
    harness.press(call, "2")
    await harness.advance(500)
    assert not np.any(harness.heard(call)[cancelled_at:])
    assert [e.tone for e in harness.notifier.tones()] == ["tone1", "tone2"]
    assert [e.sequence for e in harness.notifier.tones()] == [1, 2]
    assert len(harness.notifier.ops()) == 3


async def test_cancel_silences_audio_within_one_frame(harness: Harness):
    call = await harness.established_call()
    play(harness, call.id, "p")
    await harness.advance(1000)
    before = len(harness.heard(call))
    assert np.any(harness.heard(call)[-FRAME_SAMPLES:])
    cancel(harness, call.id)
    await harness.advance(20)
    assert not np.any(harness.heard(call)[before:])


async def test_cancel_with_empty_queue_completes_without_notifications(
    harness: Harness,
):
    call = await harness.established_call()
    op = cancel(harness, call.id)
    assert op.status == "completed"
    assert harness.notifier.ops() == []


async def test_cancel_not_all_stops_only_running_and_queue_goes_on(harness: Harness):
    call = await harness.established_call()
    p1 = play(harness, call.id, "p1")
    p2 = play(harness, call.id, "p2", "beep.wav")
    await harness.advance(100)
    op = cancel(harness, call.id, all_operations=False)
    assert op.cancel_all is False
    assert p1.status == "failed"
    assert p2.status == "running"
    await harness.advance(500)
    assert p2.status == "completed"
    assert [e.client_context for e in harness.notifier.ops()] == ["p1", "p2"]


async def test_barge_in_record_stops_prompt_and_starts_at_once_bl02(harness: Harness):
    call = await harness.established_call()
    long = play(harness, call.id, "ctx-long")
    await harness.advance(2000)
    rec = record(
        harness, call.id, "ctx-rec", barge_in_allowed=True, max_record_duration_s=5
    )
    assert long.status == "failed"
    assert rec.status == "running"
    await harness.advance(20)
    # the beep follows the barge-in at once
    assert np.any(harness.heard(call)[-FRAME_SAMPLES:])


async def test_record_without_barge_in_waits_for_prompt_bl02(harness: Harness):
    call = await harness.established_call()
    long = play(harness, call.id, "ctx-long")
    await harness.advance(2000)
    rec = record(harness, call.id, "ctx-rec", max_record_duration_s=5)
    assert rec.status == "notStarted"
    await harness.advance(18_000)
    assert long.status == "completed"
    assert rec.status == "running"


async def test_cancel_stops_dtmf_sending_as_its_page_says_bl03(harness: Harness):
    call = await harness.established_call()
    dtmf = harness.engine.send_dtmf_tones(
        call.id,
        ("tone1", "tone2", "tone3"),
        delay_between_tones_ms=1000,
        client_context="ctx-dtmf",
        api_version=V1,
    )
    rec = record(harness, call.id, "ctx-rec")
    op = cancel(harness, call.id)
    assert op.status == "completed"
    assert (rec.status, rec.completion_reason) == ("failed", "operationCanceled")
    assert (dtmf.status, dtmf.completion_reason) == (
        "completed",
        "mediaOperationCanceled",
    )


async def test_cancelled_dtmf_flavour_configurable_bl03(tmp_path):
    h = make_harness(tmp_path, cancelled_dtmf_status="failed")
    call = await h.established_call()
    dtmf = h.engine.send_dtmf_tones(
        call.id,
        ("tone1",),
        delay_between_tones_ms=500,
        client_context=None,
        api_version=V1,
    )
    cancel(h, call.id)
    assert (dtmf.status, dtmf.result_info.subcode) == ("failed", 8508)


async def test_dtmf_tones_sent_complete_and_are_heard_as_keys(harness: Harness):
    call = await harness.established_call()
    op = harness.engine.send_dtmf_tones(
        call.id,
        ("tone1", "pound"),
        delay_between_tones_ms=100,
        client_context="d",
        api_version=V1,
    )
    await harness.advance(1000)
    assert (op.status, op.completion_reason) == ("completed", "completedSuccessfully")
    from graphcomms.media.dtmf import ToneDetector

    heard = harness.heard(call)
    frames = heard[: len(heard) // FRAME_SAMPLES * FRAME_SAMPLES].reshape(
        -1, FRAME_SAMPLES
    )
    detector = ToneDetector()
    keys = []
    for frame in frames:
        keys += [k for _, k in detector.detect(np.array([0]), frame[None, :])]
    assert keys == ["1", "#"]


async def test_bad_prompts_fail_with_codes_and_queue_goes_on_bl06(harness: Harness):
    call = await harness.established_call()
    missing = play(harness, call.id, "m", "missing.wav")
    bad = play(harness, call.id, "b", "bad-format.wav")
    beep = play(harness, call.id, "ok", "beep.wav")
    await harness.advance(1000)
    assert (missing.status, missing.result_info.subcode) == ("failed", 8536)
    assert (bad.status, bad.result_info.subcode) == ("failed", 8535)
    assert (beep.status, beep.result_info.code) == ("completed", 200)
    assert call.state.value == "established"


async def test_hang_up_fails_every_pending_op_before_call_ends_bl12(harness: Harness):
    call = await harness.established_call()
    rec = record(harness, call.id, "r", max_record_duration_s=60)
    queued = play(harness, call.id, "p")
    harness.engine.caller_action(call.id, CallerAction("silence", ms=1000))
    harness.engine.caller_action(call.id, CallerAction("hangup"))
    await harness.advance(2000)
    assert rec.status == "failed" and queued.status == "failed"
    kinds = [(e.kind, e.change_type, e.state) for e in harness.notifier.events[2:]]
    assert kinds == [
        ("operation", "deleted", None),
        ("operation", "deleted", None),
        ("call", "updated", "terminating"),
        ("call", "deleted", "terminated"),
    ]
    with pytest.raises(CallNotFound):
        play(harness, call.id, "late")


async def test_bot_hang_up_ends_prompt_then_call_bl23(harness: Harness):
    call = await harness.established_call()
    op = play(harness, call.id, "p")
    await harness.advance(5000)
    harness.engine.hang_up(call.id)
    assert op.status == "failed" and op.result_info.subcode == 8528
    assert call.result_info.subcode == 7000
    assert harness.notifier.events[-1].change_type == "deleted"


async def test_unanswered_incoming_call_ends_at_deadline_bl17(harness: Harness):
    call = harness.engine.place_incoming_call(
        NewCall(callback_uri=BOT, api_version=V1), []
    )
    assert harness.notifier.events[0].change_type == "created"
    await harness.advance(15_000)
    assert call.state.value == "terminated"
    assert (call.result_info.code, call.result_info.subcode) == (408, 1106)
    with pytest.raises(CallNotFound):
        harness.engine.answer(
            call.id,
            callback_uri=None,
            media_mode=MediaMode.SERVICE_HOSTED,
            prefetch=(),
            api_version=V1,
        )


async def test_answer_incoming_call_establishes_it(harness: Harness):
    call = harness.engine.place_incoming_call(
        NewCall(callback_uri=BOT, api_version=V1), []
    )
    harness.engine.answer(
        call.id,
        callback_uri="http://localhost:9/cb",
        media_mode=MediaMode.SERVICE_HOSTED,
        prefetch=(),
        api_version=V1,
    )
    await harness.advance(500)
    assert call.state.value == "established"
    assert call.callback_uri == "http://localhost:9/cb"
    with pytest.raises(CallStateConflict):
        harness.engine.reject(call.id, reason="busy")


async def test_media_actions_before_established_are_refused(harness: Harness):
    call = harness.engine.create_call(NewCall(callback_uri=BOT, api_version=V1))
    with pytest.raises(CallNotEstablished):
        play(harness, call.id, "p")


async def test_app_hosted_call_refuses_ivr_actions_bl14(harness: Harness):
    call = harness.engine.place_incoming_call(
        NewCall(callback_uri=BOT, api_version=V1), []
    )
    harness.engine.answer(
        call.id,
        callback_uri=None,
        media_mode=MediaMode.APP_HOSTED,
        prefetch=(),
        api_version=V1,
    )
    await harness.advance(500)
    with pytest.raises(MediaModeNotSupported):
        harness.engine.subscribe_to_tone(call.id, client_context="c", api_version=V1)
    with pytest.raises(MediaModeNotSupported):
        play(harness, call.id, "p")


async def test_finished_operation_is_gone_from_get(harness: Harness):
    call = await harness.established_call()
    op = play(harness, call.id, "p", "beep.wav")
    assert harness.engine.get_operation(call.id, op.id) is op
    await harness.advance(600)
    with pytest.raises(OperationNotFound):
        harness.engine.get_operation(call.id, op.id)
    assert [o.id for o in harness.engine.operations_record(call.id)] == [op.id]


async def test_tones_not_delivered_without_subscription(harness: Harness):
    call = await harness.established_call()
    harness.press(call, "5")
    await harness.advance(500)
    assert harness.notifier.tones() == []


async def test_loop_forever_prompt_never_completes(harness: Harness):
    call = await harness.established_call()
    op = harness.engine.play_prompt(
        call.id,
        (PromptSource("https://prompts.example.test/beep.wav"),),
        client_context="loop",
        loop=True,
        api_version=ApiVersion.BETA,
    )
    await harness.advance(5000)
    assert op.status == "running"
    assert np.any(harness.heard(call)[-FRAME_SAMPLES * 5 :])


async def test_legacy_loop_count_repeats_prompt(harness: Harness):
    call = await harness.established_call()
    op = harness.engine.play_prompt(
        call.id,
        (PromptSource("https://prompts.example.test/beep.wav", loop=3),),
        client_context="loop",
        loop=False,
        api_version=ApiVersion.BETA,
    )
    start = harness.clock.now_ms()
    await harness.advance(2000)
    assert op.finished_ms - start == 1500


async def test_keep_alive_timeout_ends_call(tmp_path):
    h = make_harness(tmp_path, keep_alive_timeout_ms=2000)
    call = await h.established_call()
    await h.advance(500)
    h.engine.keep_alive(call.id)
    await h.advance(1900)
    assert call.state.value == "established"
    await h.advance(200)
    assert (call.state.value, call.result_info.subcode) == ("terminated", 8537)


async def test_mute_silences_bot_audio_and_notifies_roster(harness: Harness):
    call = await harness.established_call()
    play(harness, call.id, "p")
    op = harness.engine.mute(call.id, client_context="m", api_version=V1)
    assert op.status == "completed"
    before = len(harness.heard(call))
    await harness.advance(200)
    assert not np.any(harness.heard(call)[before:])
    assert harness.notifier.events[-1].kind == "roster"


async def test_ended_calls_keep_heard_audio_for_the_latest_hundred(harness: Harness):
    from graphcomms.engine.engine import ENDED_CALLS_KEPT

    first = await harness.established_call()
    play(harness, first.id, "p", "beep.wav")
    await harness.advance(600)
    harness.engine.hang_up(first.id)
    assert np.any(harness.engine.heard_audio(first.id))
    for _ in range(ENDED_CALLS_KEPT):
        call = harness.engine.create_call(NewCall(callback_uri=BOT, api_version=V1))
        harness.engine.hang_up(call.id)
    assert harness.engine.heard_audio(first.id) is None
    assert harness.engine.call_record(first.id).state == "terminated"


async def test_same_key_twice_with_silence_between_counts_twice(harness: Harness):
    call = await harness.established_call()
    harness.engine.subscribe_to_tone(call.id, client_context="t", api_version=V1)
    harness.press(call, "5")
    harness.engine.caller_action(call.id, CallerAction("silence", ms=500))
    harness.press(call, "5")
    await harness.advance(1500)
    assert [e.tone for e in harness.notifier.tones()] == ["tone5", "tone5"]


async def test_quiet_call_keeps_heard_silence_as_a_count(harness: Harness):
    call = await harness.established_call()
    before = len(harness.heard(call))
    await harness.advance(60_000)
    caller = harness.engine._live[call.id].caller
    # a minute of silence is one run, not 3000 frames
    assert len(caller._heard) == 1
    assert len(harness.heard(call)) - before == 60_000 * 16
    assert not np.any(harness.heard(call))


async def test_single_prompt_plays_without_a_copy(harness: Harness):
    from graphcomms.engine.engine import _join_prompts

    audio = harness.prompts.audio["https://prompts.example.test/beep.wav"]
    sources = (PromptSource("https://prompts.example.test/beep.wav"),)
    assert _join_prompts([audio], sources, loop_forever=False) is audio


def test_join_prompts_makes_no_more_copies_than_thirty_minutes_hold():
    from graphcomms.engine.engine import MAX_LOOPED_PROMPT_SAMPLES, _join_prompts

    second = np.ones(16_000, dtype=np.int16)
    sources = (
        PromptSource("https://prompts.example.test/one-second.wav", loop=2**31 - 1),
    )
    joined = _join_prompts([second], sources, loop_forever=False)
    assert len(joined) == MAX_LOOPED_PROMPT_SAMPLES
