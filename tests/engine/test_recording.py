"""recordResponse end to end on the virtual clock: each way a recording ends."""

from __future__ import annotations

import wave

from graphcomms.callers import CallerAction
from graphcomms.engine.operation import ApiVersion, PromptSource, RecordSettings
from graphcomms.media.levels import beep_pcm
from graphcomms.types import samples_to_ms

from .conftest import Harness

V1 = ApiVersion.V1
BEEP_MS = samples_to_ms(len(beep_pcm()))


def record(h: Harness, call_id: str, **settings):
    return h.engine.record_response(
        call_id, RecordSettings(**settings), client_context="rec", api_version=V1
    )


async def test_silent_caller_ends_at_initial_silence_after_beep(harness: Harness):
    call = await harness.established_call()
    start = harness.clock.now_ms()
    op = record(harness, call.id, initial_silence_timeout_s=2, max_record_duration_s=30)
    await harness.advance(BEEP_MS + 2000 + 200)
    assert (op.status, op.completion_reason) == ("failed", "initialSilenceTimeout")
    assert (op.result_info.code, op.result_info.subcode) == (400, 8510)
    assert op.finished_ms - start == BEEP_MS + 2000
    assert op.recording_location == ""


async def test_initial_silence_counts_from_end_of_prompt(harness: Harness):
    call = await harness.established_call()
    start = harness.clock.now_ms()
    op = record(
        harness,
        call.id,
        prompt=PromptSource("https://prompts.example.test/p3200.wav"),
        play_beep=False,
        initial_silence_timeout_s=1,
    )
    await harness.advance(5000)
    assert op.finished_ms - start == 3200 + 1000


async def test_speaking_caller_ends_at_max_silence(harness: Harness):
    call = await harness.established_call()
    op = record(
        harness,
        call.id,
        play_beep=False,
        max_silence_timeout_s=2,
        max_record_duration_s=60,
    )
    start = harness.clock.now_ms()
    harness.engine.caller_action(call.id, CallerAction("speak", ms=4000))
    await harness.advance(8000)
    assert (op.status, op.completion_reason) == ("completed", "maxSilenceTimeout")
    # speech may end a little before 4 s where the sample has a pause
    elapsed = op.finished_ms - start
    assert 5500 <= elapsed <= 6100, elapsed
    assert op.recording_location.endswith(f"/recordings/{op.id}")


async def test_max_duration_ends_recording_with_wav_file(harness: Harness, tmp_path):
    call = await harness.established_call()
    op = record(harness, call.id, play_beep=False, max_record_duration_s=3)
    harness.engine.caller_action(call.id, CallerAction("speak", ms=10_000))
    await harness.advance(4000)
    assert (op.status, op.result_info.subcode) == ("completed", 8515)
    assert op.completion_reason == "maxRecordDurationReached"
    path = await harness.engine.recording_file(op.id, op.recording_access_token)
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (
            16_000,
            1,
            2,
        )
        assert wav.getnframes() == 3 * 16_000


async def test_stop_tone_ends_recording(harness: Harness):
    call = await harness.established_call()
    op = record(
        harness, call.id, play_beep=False, stop_tones=("#",), max_record_duration_s=30
    )
    harness.engine.caller_action(call.id, CallerAction("speak", ms=2000))
    harness.engine.caller_action(call.id, CallerAction("dtmf", keys="#"))
    await harness.advance(3000)
    assert (op.status, op.completion_reason) == ("completed", "stopToneDetected")
    assert 2000 <= op.recording_ms <= 2200


async def test_other_keys_do_not_stop_recording(harness: Harness):
    call = await harness.established_call()
    op = record(
        harness, call.id, play_beep=False, stop_tones=("#",), max_record_duration_s=2
    )
    harness.engine.caller_action(call.id, CallerAction("dtmf", keys="1"))
    await harness.advance(3000)
    assert op.completion_reason == "maxRecordDurationReached"


async def test_recording_refused_with_wrong_token(harness: Harness):
    import pytest

    from graphcomms.errors import RecordingAccessDenied, RecordingNotFound

    call = await harness.established_call()
    op = record(harness, call.id, play_beep=False, max_record_duration_s=1)
    harness.engine.caller_action(call.id, CallerAction("speak", ms=2000))
    await harness.advance(1500)
    with pytest.raises(RecordingAccessDenied):
        harness.engine.recording_path(op.id, "not-the-token")
    with pytest.raises(RecordingNotFound):
        harness.engine.recording_path("no-such-op", op.recording_access_token)


async def test_recording_token_never_reaches_the_logs(harness: Harness, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    call = await harness.established_call()
    op = record(harness, call.id, play_beep=False, max_record_duration_s=1)
    harness.engine.caller_action(call.id, CallerAction("speak", ms=2000))
    await harness.advance(1500)
    await harness.engine.recording_file(op.id, op.recording_access_token)
    assert op.recording_access_token
    assert f"op={op.id}" in caplog.text  # the lifecycle was logged
    assert op.recording_access_token not in caplog.text
