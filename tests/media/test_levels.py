"""Frame levels, the energy speech detector, the beep and mixing."""

import wave
from importlib import resources

import numpy as np
import numpy.typing as npt
import pytest

from graphcomms.media.levels import (
    FLOOR_DBFS,
    FULL_SCALE,
    beep_pcm,
    frame_rms_dbfs,
    is_speech,
    mix,
    sines_pcm,
)
from graphcomms.types import FRAME_SAMPLES, SAMPLE_RATE_HZ, Pcm, ms_to_samples

SEED = 20240611


def _frames(pcm: Pcm) -> npt.NDArray[np.int16]:
    whole = len(pcm) // FRAME_SAMPLES * FRAME_SAMPLES
    return pcm[:whole].reshape(-1, FRAME_SAMPLES)


def _noise(rms_dbfs: float, samples: int) -> Pcm:
    rng = np.random.default_rng(SEED)
    noise = rng.normal(0.0, FULL_SCALE * 10 ** (rms_dbfs / 20), samples)
    return np.clip(np.rint(noise), -32768, 32767).astype(np.int16)


def _speech() -> Pcm:
    sound = resources.files("graphcomms.media") / "sounds" / "speech-sample.wav"
    with sound.open("rb") as file, wave.open(file) as reader:
        return np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")


def test_frame_rms_dbfs_full_scale_sine_reads_minus_3() -> None:
    sine = sines_pcm([1000], 100, level_dbfs=0.0, ramp_ms=0)
    levels = frame_rms_dbfs(_frames(sine))
    assert levels.dtype == np.float32 and levels.shape == (5,)
    assert levels == pytest.approx(-3.01, abs=0.05)


def test_frame_rms_dbfs_noise_reads_its_rms() -> None:
    levels = frame_rms_dbfs(_frames(_noise(-30.0, ms_to_samples(1000))))
    # 320 samples of noise give its power to within about 8 % per frame
    assert levels == pytest.approx(-30.0, abs=1.5)
    assert float(levels.mean()) == pytest.approx(-30.0, abs=0.2)


def test_frame_rms_dbfs_silence_reads_floor() -> None:
    silence = np.zeros((3, FRAME_SAMPLES), dtype=np.int16)
    assert frame_rms_dbfs(silence).tolist() == [FLOOR_DBFS] * 3


def test_frame_rms_dbfs_quietest_sound_reads_above_floor() -> None:
    frame = np.zeros((1, FRAME_SAMPLES), dtype=np.int16)
    frame[0, 0] = 1
    assert frame_rms_dbfs(frame)[0] > FLOOR_DBFS


def test_is_speech_exact_silence_false() -> None:
    silence = np.zeros((4, FRAME_SAMPLES), dtype=np.int16)
    assert not is_speech(silence).any()


def test_is_speech_line_noise_false() -> None:
    assert not is_speech(_frames(_noise(-55.0, ms_to_samples(1000)))).any()


def test_is_speech_spoken_sample_mostly_true() -> None:
    speech = is_speech(_frames(_speech()))
    # words, with short pauses between them
    assert 0.6 < speech.mean() < 0.95


def test_is_speech_threshold_moves_the_decision() -> None:
    frames = _frames(_noise(-30.0, ms_to_samples(100)))
    assert is_speech(frames).all()
    assert not is_speech(frames, threshold_dbfs=-20.0).any()


def test_beep_pcm_default_is_300ms_1khz_at_minus_12() -> None:
    beep = beep_pcm()
    assert beep.dtype == np.int16 and len(beep) == ms_to_samples(300)
    spectrum = np.abs(np.fft.rfft(beep.astype(np.float64)))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE_HZ / len(beep)
    assert peak_hz == pytest.approx(1000, abs=5)
    middle = beep[ms_to_samples(100) : ms_to_samples(200)]
    assert np.abs(middle).max() == pytest.approx(
        FULL_SCALE * 10 ** (-12 / 20), rel=0.01
    )


def test_beep_pcm_starts_and_ends_softly() -> None:
    beep = beep_pcm(duration_ms=100, freq_hz=440, level_dbfs=-6.0).astype(np.int32)
    full = np.abs(beep).max()
    edge = ms_to_samples(1)
    assert np.abs(beep[:edge]).max() < full / 4
    assert np.abs(beep[-edge:]).max() < full / 4


def test_sines_pcm_too_short_for_ramps_still_sounds() -> None:
    pcm = sines_pcm([1000], 4, level_dbfs=-6.0, ramp_ms=5)
    assert len(pcm) == ms_to_samples(4) and np.abs(pcm).max() > 1000


def test_mix_adds_samples() -> None:
    a = np.array([1, -2, 300], dtype=np.int16)
    b = np.array([10, 20, -300], dtype=np.int16)
    mixed = mix(a, b)
    assert mixed.dtype == np.int16 and mixed.tolist() == [11, 18, 0]


def test_mix_loud_sum_clips_instead_of_wrapping() -> None:
    a = np.array([30000, -30000], dtype=np.int16)
    assert mix(a, a).tolist() == [32767, -32768]


def test_mix_different_lengths_raises() -> None:
    with pytest.raises(ValueError, match="cannot mix"):
        mix(np.zeros(3, dtype=np.int16), np.zeros(4, dtype=np.int16))
