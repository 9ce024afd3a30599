"""DTMF tones and the batched tone detector."""

import wave
from importlib import resources

import numpy as np
import numpy.typing as npt
import pytest

from graphcomms.media.dtmf import (
    COLUMN_FREQS_HZ,
    KEY_FOR_TONE,
    KEYS,
    ROW_FREQS_HZ,
    TONE_NAMES,
    ToneDetector,
    key_sequence_pcm,
    tone_pcm,
)
from graphcomms.media.levels import FULL_SCALE, mix, sines_pcm
from graphcomms.types import FRAME_SAMPLES, SAMPLE_RATE_HZ, Pcm, ms_to_samples

SEED = 20240611


def _speech() -> Pcm:
    sound = resources.files("graphcomms.media") / "sounds" / "speech-sample.wav"
    with sound.open("rb") as file, wave.open(file) as reader:
        assert reader.getframerate() == SAMPLE_RATE_HZ
        assert reader.getnchannels() == 1 and reader.getsampwidth() == 2
        return np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")


def _framed(pcm: Pcm, offset: int = 0, tail_ms: int = 100) -> npt.NDArray[np.int16]:
    """Cut ``pcm`` into frames after ``offset`` samples of silence, then pad."""
    lead = np.zeros(offset, dtype=np.int16)
    tail = np.zeros(ms_to_samples(tail_ms), dtype=np.int16)
    audio = np.concatenate((lead, pcm, tail))
    audio = np.concatenate((audio, np.zeros(-len(audio) % FRAME_SAMPLES, np.int16)))
    return audio.reshape(-1, FRAME_SAMPLES)


def _heard(pcm: Pcm, offset: int = 0) -> str:
    """Return the keys one slot reports while hearing ``pcm``."""
    detector = ToneDetector()
    slot = np.array([0], dtype=np.intp)
    keys = ""
    for frame in _framed(pcm, offset):
        keys += "".join(key for _, key in detector.detect(slot, frame[None]))
    return keys


def _heard_by_slot(sounds: list[Pcm], offsets: list[int]) -> list[str]:
    """Play one sound per slot, all slots batched together, and collect keys."""
    framed = [_framed(pcm, offset) for pcm, offset in zip(sounds, offsets, strict=True)]
    ticks = max(len(frames) for frames in framed)
    batch = np.zeros((len(sounds), ticks, FRAME_SAMPLES), dtype=np.int16)
    for slot, frames in enumerate(framed):
        batch[slot, : len(frames)] = frames
    detector = ToneDetector(capacity=4)
    slots = np.arange(len(sounds), dtype=np.intp)
    heard = [""] * len(sounds)
    for tick in range(ticks):
        for slot, key in detector.detect(slots, batch[:, tick]):
            heard[slot] += key
    return heard


def _two_tones(key: str, row_dbfs: float, column_dbfs: float, ms: int) -> Pcm:
    row, column = divmod(KEYS.index(key), 4)
    low = sines_pcm([ROW_FREQS_HZ[row]], ms, row_dbfs, ramp_ms=2)
    high = sines_pcm([COLUMN_FREQS_HZ[column]], ms, column_dbfs, ramp_ms=2)
    return mix(low, high)


def _sine(freqs_hz: list[float], ms: int, dbfs: float) -> Pcm:
    return sines_pcm(freqs_hz, ms, dbfs, ramp_ms=5)


# tone synthesis


def test_tone_names_every_key_maps_both_ways() -> None:
    assert set(TONE_NAMES) == set(KEYS)
    assert TONE_NAMES["1"] == "tone1" and TONE_NAMES["0"] == "tone0"
    assert TONE_NAMES["*"] == "star" and TONE_NAMES["#"] == "pound"
    assert TONE_NAMES["A"] == "a" and TONE_NAMES["D"] == "d"
    assert all(KEY_FOR_TONE[tone] == key for key, tone in TONE_NAMES.items())


@pytest.mark.parametrize("key", ["", "E", "11", "a", " "])
def test_tone_pcm_unknown_key_raises(key: str) -> None:
    with pytest.raises(ValueError, match="not a DTMF key"):
        tone_pcm(key)


def test_tone_pcm_default_tone_lasts_100ms_at_each_sine_level() -> None:
    pcm = tone_pcm("5")
    assert pcm.dtype == np.int16 and len(pcm) == ms_to_samples(100)
    # two sines at -10 dBFS peak: mean square is two halves of amplitude squared
    amplitude = FULL_SCALE * 10 ** (-10 / 20)
    rms = np.sqrt(np.mean(pcm.astype(np.float64) ** 2))
    assert rms == pytest.approx(amplitude, rel=0.03)


def test_tone_pcm_edges_ramp_from_silence() -> None:
    pcm = tone_pcm("D").astype(np.int32)
    assert abs(pcm[0]) < 200 and abs(pcm[-1]) < 200
    assert np.abs(pcm[:8]).max() < np.abs(pcm[100:200]).max() / 4


def test_key_sequence_pcm_gaps_go_between_tones_only() -> None:
    pcm = key_sequence_pcm("12#", tone_ms=60, gap_ms=40)
    assert len(pcm) == ms_to_samples(3 * 60 + 2 * 40)
    gap = pcm[ms_to_samples(60) : ms_to_samples(100)]
    assert not gap.any()
    assert np.array_equal(pcm[: ms_to_samples(60)], tone_pcm("1", 60))


def test_key_sequence_pcm_empty_is_no_audio() -> None:
    assert len(key_sequence_pcm("")) == 0


# detection: timing


def test_detect_every_key_at_random_alignment_found_once() -> None:
    rng = np.random.default_rng(SEED)
    for _ in range(4):
        offsets = rng.integers(0, FRAME_SAMPLES, len(KEYS)).tolist()
        heard = _heard_by_slot([tone_pcm(key) for key in KEYS], offsets)
        assert heard == list(KEYS)


def test_detect_40ms_tones_every_alignment_found_once() -> None:
    for offset in range(0, FRAME_SAMPLES, 8):
        heard = _heard_by_slot([tone_pcm(key, 40) for key in KEYS], [offset] * 16)
        assert heard == list(KEYS), f"offset {offset}"


def test_detect_40ms_tones_with_40ms_gaps_found_in_order() -> None:
    rng = np.random.default_rng(SEED)
    sequences = ["15#", "*0D", "123A456B789C*0#D"]
    for keys in sequences:
        pcm = key_sequence_pcm(keys, tone_ms=40, gap_ms=40)
        for offset in rng.integers(0, FRAME_SAMPLES, 12).tolist():
            assert _heard(pcm, offset) == keys, f"offset {offset}"


def test_detect_30ms_tone_not_accepted() -> None:
    for offset in range(0, FRAME_SAMPLES, 8):
        heard = _heard_by_slot([tone_pcm(key, 30) for key in KEYS], [offset] * 16)
        assert heard == [""] * 16, f"offset {offset}"


def test_detect_same_key_after_40ms_gap_counted_twice() -> None:
    rng = np.random.default_rng(SEED)
    for key in KEYS:
        pcm = key_sequence_pcm(key * 3, tone_ms=40, gap_ms=40)
        offset = int(rng.integers(0, FRAME_SAMPLES))
        assert _heard(pcm, offset) == key * 3, f"key {key} offset {offset}"


def test_detect_same_key_after_long_gap_counted_twice() -> None:
    assert _heard(key_sequence_pcm("77", tone_ms=100, gap_ms=100)) == "77"


def test_detect_10ms_dropout_in_a_press_counted_once() -> None:
    tone = tone_pcm("9", 60)
    pcm = np.concatenate((tone, np.zeros(ms_to_samples(10), np.int16), tone))
    for offset in range(0, FRAME_SAMPLES, 40):
        assert _heard(pcm, offset) == "9", f"offset {offset}"


def test_detect_key_change_without_gap_counts_both() -> None:
    pcm = np.concatenate((tone_pcm("4", 80), tone_pcm("8", 80)))
    assert _heard(pcm, 123) == "48"


def test_detect_long_press_reported_once_within_60ms() -> None:
    detector = ToneDetector()
    slot = np.array([0], dtype=np.intp)
    reported_at = []
    for tick, frame in enumerate(_framed(tone_pcm("6", 2000), offset=200)):
        if detector.detect(slot, frame[None]):
            reported_at.append(tick)
    # the tone starts 200 samples into tick 0; 60 ms later is within tick 3
    assert reported_at == [3] or reported_at == [2]


# detection: levels and twist


@pytest.mark.parametrize("level_dbfs", [-3.0, -10.0, -20.0, -30.0])
def test_detect_tone_at_usual_levels_found(level_dbfs: float) -> None:
    pcm = np.concatenate([tone_pcm(key, 50, level_dbfs) for key in "3C"])
    assert _heard(pcm, 50) == "3C"


def test_detect_tone_below_gate_ignored() -> None:
    assert _heard(tone_pcm("5", 200, level_dbfs=-55.0)) == ""


def test_detect_8db_twist_either_way_found() -> None:
    for key in KEYS:
        for row_dbfs, column_dbfs in ((-10.0, -18.0), (-18.0, -10.0)):
            pcm = _two_tones(key, row_dbfs, column_dbfs, 60)
            assert _heard(pcm, 77) == key, f"key {key} {row_dbfs}/{column_dbfs}"


def test_detect_12db_twist_either_way_rejected() -> None:
    for key in KEYS:
        for row_dbfs, column_dbfs in ((-8.0, -20.0), (-20.0, -8.0)):
            pcm = _two_tones(key, row_dbfs, column_dbfs, 100)
            assert _heard(pcm, 77) == "", f"key {key} {row_dbfs}/{column_dbfs}"


def _off_pitch(key: str, error: float) -> Pcm:
    row, column = divmod(KEYS.index(key), 4)
    freqs_hz = [ROW_FREQS_HZ[row] * (1 + error), COLUMN_FREQS_HZ[column] * (1 + error)]
    return sines_pcm(freqs_hz, 60, -10.0, ramp_ms=2)


def test_detect_tones_1_5_percent_off_pitch_found() -> None:
    for error in (-0.015, 0.015):
        heard = _heard_by_slot([_off_pitch(key, error) for key in KEYS], [99] * 16)
        assert heard == list(KEYS), f"pitch error {error}"


def test_detect_tones_3_5_percent_off_pitch_rejected() -> None:
    for error in (-0.035, 0.035):
        heard = _heard_by_slot([_off_pitch(key, error) for key in KEYS], [99] * 16)
        assert heard == [""] * 16, f"pitch error {error}"


def test_detect_single_frequency_of_a_key_ignored() -> None:
    for freq_hz in ROW_FREQS_HZ + COLUMN_FREQS_HZ:
        assert _heard(_sine([freq_hz], 200, -10.0)) == ""


# detection: no false keys


def test_detect_white_noise_no_keys() -> None:
    rng = np.random.default_rng(SEED)
    rms = FULL_SCALE * 10 ** (-20 / 20)
    noise = np.clip(rng.normal(0.0, rms, ms_to_samples(10_000)), -32768, 32767)
    assert _heard(noise.astype(np.int16)) == ""


def test_detect_1khz_sine_no_keys() -> None:
    assert _heard(_sine([1000], 3000, -6.0)) == ""


def test_detect_dial_tone_no_keys() -> None:
    assert _heard(_sine([350, 440], 3000, -13.0)) == ""


def test_detect_speech_no_keys() -> None:
    speech = _speech()
    for offset in range(0, FRAME_SAMPLES, 40):
        assert _heard(speech, offset) == "", f"offset {offset}"


def test_detect_speech_louder_no_keys() -> None:
    louder = np.clip(_speech().astype(np.int32) * 3, -32768, 32767).astype(np.int16)
    assert _heard(louder) == ""


def test_detect_keys_mixed_into_speech_found() -> None:
    speech = _speech()
    keys = "14#7"
    tones = key_sequence_pcm(keys, tone_ms=80, gap_ms=200)
    rng = np.random.default_rng(SEED)
    for start in rng.integers(0, len(speech) - len(tones), 10).tolist():
        tone_track = np.zeros_like(speech)
        tone_track[start : start + len(tones)] = tones
        assert _heard(mix(speech, tone_track)) == keys, f"at sample {start}"


# the detector's bookkeeping


def test_detect_calls_keep_their_own_state() -> None:
    # slot 0 presses a key while slot 1 only ever hears its ending
    tone = tone_pcm("2", 100)
    detector = ToneDetector()
    frames = _framed(tone)
    heard: list[tuple[int, str]] = []
    for tick, frame in enumerate(frames):
        batch = np.stack((frame, frame if tick >= 4 else np.zeros_like(frame)))
        heard += detector.detect(np.array([0, 1], dtype=np.intp), batch)
    assert heard == [(0, "2")]


def test_detect_slots_beyond_capacity_grow_the_detector() -> None:
    detector = ToneDetector(capacity=2)
    slots = np.array([700, 3], dtype=np.intp)
    heard: list[tuple[int, str]] = []
    for frame in _framed(tone_pcm("#", 100)):
        heard += detector.detect(slots, np.stack((frame, np.zeros_like(frame))))
    assert heard == [(700, "#")]
    assert "capacity=1024" in repr(detector)


def test_detect_no_slots_reports_nothing() -> None:
    empty = np.zeros((0, FRAME_SAMPLES), dtype=np.int16)
    assert ToneDetector().detect(np.zeros(0, dtype=np.intp), empty) == []


def test_reset_forgets_a_press_in_progress() -> None:
    detector = ToneDetector()
    slot = np.array([5], dtype=np.intp)
    heard = []
    for tick, frame in enumerate(_framed(tone_pcm("0", 300))):
        heard += detector.detect(slot, frame[None])
        if tick == 4:
            detector.reset(5)
    # a new call on the slot hears the rest of the held key as its own press
    assert heard == [(5, "0"), (5, "0")]


def test_reset_after_press_allows_same_key_at_once() -> None:
    detector = ToneDetector()
    slot = np.array([0], dtype=np.intp)
    frames = _framed(tone_pcm("A", 100), tail_ms=0)
    first = [key for frame in frames for _, key in detector.detect(slot, frame[None])]
    detector.reset(0)
    again = [key for frame in frames for _, key in detector.detect(slot, frame[None])]
    assert first == ["A"] and again == ["A"]


def test_detect_same_key_after_two_silent_frames_counted_twice() -> None:
    # a caller that falls silent is fed only a few silent frames, then none
    detector = ToneDetector()
    slot = np.array([0], dtype=np.intp)
    silence = np.zeros((2, FRAME_SAMPLES), dtype=np.int16)
    heard = []
    for _ in range(2):
        frames = np.concatenate((_framed(tone_pcm("3", 90), 150, tail_ms=0), silence))
        for frame in frames:
            heard += detector.detect(slot, frame[None])
    assert heard == [(0, "3"), (0, "3")]
