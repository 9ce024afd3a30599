"""The scripted caller: what it sends, when, and what it keeps."""

from __future__ import annotations

import numpy as np

from graphcomms.callers.simulated import (
    CallerAction,
    SimulatedCaller,
    speech_for,
    speech_sample,
)
from graphcomms.types import FRAME_SAMPLES, SILENCE


def frames_until_quiet(caller: SimulatedCaller) -> list[np.ndarray]:
    frames = []
    while (frame := caller.next_frame()) is not None:
        frames.append(frame)
    return frames


def test_speech_longer_than_the_sample_goes_round_it_exactly():
    caller = SimulatedCaller([CallerAction("speak", ms=10_000)])
    sent = np.concatenate(frames_until_quiet(caller))
    assert np.array_equal(sent, speech_for(10_000))


def test_an_hour_of_speech_is_not_built_up_front():
    caller = SimulatedCaller([CallerAction("speak", ms=3_600_000)])
    caller.next_frame()
    assert caller._audio is speech_sample()


def test_silence_then_keys_then_hang_up_run_in_order():
    caller = SimulatedCaller(
        [
            CallerAction("silence", ms=100),
            CallerAction("dtmf", keys="1"),
            CallerAction("hangup"),
        ]
    )
    assert [caller.next_frame() for _ in range(5)] == [None] * 5
    # 100 ms tone + 100 ms closing gap
    assert len(frames_until_quiet(caller)) == 10
    assert caller.hung_up


def test_heard_silence_is_a_count_and_audio_is_kept():
    caller = SimulatedCaller()
    tone = np.full(FRAME_SAMPLES, 1000, dtype=np.int16)
    for frame in (SILENCE, SILENCE, tone, SILENCE):
        caller.hear(frame)
    heard = caller.heard()
    assert len(heard) == 4 * FRAME_SAMPLES
    assert np.array_equal(heard[2 * FRAME_SAMPLES : 3 * FRAME_SAMPLES], tone)
    assert not heard[: 2 * FRAME_SAMPLES].any()
